//! Culling by kernel activity through a running `orrery run`: a kernel busy for longer than the
//! idle limit is never culled; an idle lab is warned first (its notice), then stopped with its
//! workspace kept; started again, it has the same files. The workspace's quota is a hard limit
//! (writing past it fails, and the node's disk holds no more than it). A node killed with the
//! lab running reaps it when it starts again and lists it stopped; over a quota lowered
//! meanwhile, it starts read-only, saying so. Needs root and bubblewrap
//! (`scripts/lab-env`).

#[path = "support/http.rs"]
mod http;
#[path = "support/lab.rs"]
mod lab;
#[path = "support/run.rs"]
mod run;
use http::call;
use run::{Running, add_user, free_port, orrery, share_lab_envs, token_for, use_loopback};

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Runs `code` in a new kernel of the lab through the node's proxy; what it printed.
fn cell(python: &Path, addr: &str, lab: &str, token: &str, code: &str) -> String {
    let port = addr.rsplit(':').next().expect("a port");
    lab::cell(
        python,
        addr,
        lab,
        &format!("{lab}.localhost:{port}"),
        token,
        code,
    )
}

/// Asks for the lab until `done` holds of it, or `within` passed.
fn until(url: &str, token: &str, within: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, lab) = call("GET", url, Some(token), None);
        assert_eq!(status, 200, "{lab}");
        if done(&lab) {
            return lab;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting; the lab is {lab}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_idle_lab_is_warned_then_culled_a_busy_one_never_and_the_workspace_stays() {
    assert!(
        rustix::process::getuid().is_root() && Path::new("/usr/bin/bwrap").exists(),
        "the lab tests need root and /usr/bin/bwrap: run scripts/lab-env as root"
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("node");
    orrery(&data, &["init", "--name", "Heidelberg"]);
    use_loopback(&data, free_port());
    let envs = share_lab_envs(&data);
    let config = data.join("orrery.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text
        .replace("cull_idle_secs = 3600", "cull_idle_secs = 6")
        .replace("cull_warning_secs = 600", "cull_warning_secs = 4")
        .replace("workspace_mib = 10240", "workspace_mib = 2");
    assert!(text.contains("cull_idle_secs = 6"), "{text}");
    std::fs::write(&config, text).expect("config");
    let user = add_user(&data, "Ada");
    let token = token_for(&data, &user, "labs");
    let running = Running::start(&data);
    let addr = std::fs::read_to_string(data.join("web.addr")).expect("web.addr");
    let addr = addr.trim();
    let base = format!("http://{addr}/api/v1/labs");
    let (status, lab) = call("POST", &base, Some(&token), Some(json!({})));
    assert_eq!(
        (status, lab["state"].as_str()),
        (201, Some("running")),
        "{lab}"
    );
    let id = lab["id"].as_str().expect("an id").to_owned();
    let url = format!("{base}/{id}");
    let python = lab::env_python(&envs);

    assert_eq!(
        cell(
            &python,
            addr,
            &id,
            &token,
            "import errno\n\
             open('kept.txt', 'w').write('work')\n\
             try:\n    open('big.bin', 'wb').write(bytes(4 << 20))\n    full = 'written'\n\
             except OSError as e:\n    full = errno.errorcode[e.errno]\n\
             full"
        ),
        "'ENOSPC'",
        "the workspace's quota is a hard limit"
    );
    // The node's disk held no more than the quota for it.
    let image = data.join(format!("labs/workspaces/{id}.img"));
    let blocks =
        std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&image).expect("the image"));
    assert!(blocks * 512 <= 2 << 20, "{blocks} blocks");
    // Busy for longer than the idle limit: never culled.
    assert_eq!(
        cell(
            &python,
            addr,
            &id,
            &token,
            "import time; time.sleep(9); 'slept'"
        ),
        "'slept'"
    );
    let (_, lab) = call("GET", &url, Some(&token), None);
    assert_eq!(lab["state"], "running", "a busy kernel was culled: {lab}");

    // Idle: warned first, then stopped, saying so.
    let warned = until(&url, &token, Duration::from_secs(30), |l| {
        l["notice"]
            .as_str()
            .is_some_and(|n| n.contains("idle since"))
    });
    assert_eq!(warned["state"], "running", "{warned}");
    let culled = until(&url, &token, Duration::from_secs(30), |l| {
        l["state"] == "stopped"
    });
    assert!(
        culled["notice"]
            .as_str()
            .is_some_and(|n| n.contains("workspace is kept")),
        "{culled}"
    );

    // Started again, with the same workspace.
    let (status, again) = call("POST", &format!("{url}/start"), Some(&token), None);
    assert_eq!(
        (status, again["state"].as_str()),
        (200, Some("running")),
        "{again}"
    );
    assert_eq!(again["notice"], Value::Null, "{again}");
    assert_eq!(
        cell(&python, addr, &id, &token, "open('kept.txt').read()"),
        "'work'"
    );

    // The node dies with the lab running (killed, as in a crash); started again, it has reaped
    // the lab, lists it stopped, saying why, and starts it again with its workspace.
    drop(running);
    // Meanwhile the operator lowers the quota below the workspace's size.
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replace("workspace_mib = 2", "workspace_mib = 1"),
    )
    .expect("config");
    let _running = Running::start(&data);
    let addr = std::fs::read_to_string(data.join("web.addr")).expect("web.addr");
    let addr = addr.trim();
    let url = format!("http://{addr}/api/v1/labs/{id}");
    let (status, after) = call("GET", &url, Some(&token), None);
    assert_eq!(
        (status, after["state"].as_str()),
        (200, Some("stopped")),
        "{after}"
    );
    assert!(
        after["notice"]
            .as_str()
            .is_some_and(|n| n.contains("stopped when its node stopped")),
        "{after}"
    );
    // Over the lowered quota, it starts read-only, saying why, instead of failing.
    let (status, again) = call("POST", &format!("{url}/start"), Some(&token), None);
    assert_eq!(
        (status, again["state"].as_str()),
        (200, Some("running")),
        "{again}"
    );
    assert!(
        again["notice"]
            .as_str()
            .is_some_and(|n| n.contains("over its quota of 1 MiB") && n.contains("read-only")),
        "{again}"
    );
    assert_eq!(
        cell(
            &python,
            addr,
            &id,
            &token,
            "def probe(f):\n    try:\n        f()\n        return 'written'\n    except OSError as e:\n        return type(e).__name__\n\
             (open('kept.txt').read(), probe(lambda: open('more.txt', 'w')))"
        ),
        "('work', 'OSError')"
    );
    let (status, _) = call("DELETE", &url, Some(&token), None);
    assert_eq!(status, 200);
}
