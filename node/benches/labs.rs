//! Labs: time from a lab request to a kernel answering `1+1`, with the environment provisioned
//! and the sandbox in place, on the node holding the data and placed there from another node
//! over loopback; side by side, in the same run, with JupyterHub's default local spawner
//! measured by the same client (`labs_hub.py`), cold (a new sandboxed server per request) and
//! warm (a waiting server claimed, its data added while it runs). Also memory per idle lab
//! against one idle JupyterHub single-user server, and how many labs one node holds at once.
//!
//! `cargo bench -p orrery-node --bench labs` (as root: labs need cgroups; it installs
//! bubblewrap with `scripts/lab-env` and JupyterHub into `target/bench-hub` with
//! `scripts/jupyterhub-env`). `ORRERY_BENCH_RUNS` (default 10) and `ORRERY_BENCH_HOLD`
//! (default 30) size it.

#[path = "../tests/support/http.rs"]
mod http;
#[path = "../tests/support/run.rs"]
mod run;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use http::call;
use run::{
    Running, add_user, free_port, orrery, repo, share_lab_envs, token_for, use_loopback, web_addr,
};
use serde_json::{Value, json};

fn script(name: &str) {
    let status = Command::new("bash")
        .arg(repo().join("scripts").join(name))
        .status()
        .expect("bash runs");
    assert!(status.success(), "scripts/{name} failed");
}

/// Runs a benchmark script with the bench venv's Python; its JSON answer.
fn python(script: &str, args: &[&str]) -> Value {
    let py = repo().join("target/bench-hub/venv/bin/python");
    let out = Command::new(py)
        .arg(repo().join("node/benches").join(script))
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{script} failed");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or_default()).expect("a JSON line")
}

/// A node with its own user and a token with the `labs` scope.
fn node(dir: &Path, name: &str, hold: usize) -> String {
    // Room for the labs held at once and for the warm ones waiting beside them.
    let runs: usize = std::env::var("ORRERY_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10);
    let hold = hold + runs;
    orrery(dir, &["init", "--name", name]);
    use_loopback(dir, free_port());
    share_lab_envs(dir);
    let config = dir.join("orrery.toml");
    let text = std::fs::read_to_string(&config)
        .expect("config")
        .replace("max_labs = 8", &format!("max_labs = {}", hold + 2))
        .replace(
            "max_labs_per_author = 2",
            &format!("max_labs_per_author = {}", hold + 2),
        )
        .replace("cull_idle_secs = 3600", "cull_idle_secs = 0")
        .replace("warm = 1", "warm = 0");
    std::fs::write(&config, text).expect("config");
    let user = add_user(dir, "Bench");
    token_for(dir, &user, "labs")
}

/// Sets how many warm labs the node in `dir` keeps (it reads it when it starts).
fn set_warm(dir: &Path, from: usize, to: usize) {
    let config = dir.join("orrery.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    let old = format!("warm = {from}");
    assert!(text.contains(&old), "{old}");
    std::fs::write(&config, text.replace(&old, &format!("warm = {to}"))).expect("config");
}

/// Waits until the node in `dir` has `n` warm labs waiting (its metrics say so).
fn until_warm(dir: &Path, n: usize) {
    let metrics = std::fs::read_to_string(dir.join("metrics.addr")).expect("metrics.addr");
    let url = format!("http://{}/metrics", metrics.trim());
    let want = format!("orrery_labs{{state=\"warm\"}} {n}");
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (_, text) = call("GET", &url, None, None);
        if text.as_str().is_some_and(|t| t.contains(&want)) {
            return;
        }
        assert!(Instant::now() < deadline, "{n} warm labs never waited");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Starts and stops one lab at `node` over `data` once it can be placed: the environment is
/// provisioned and the adverts known before anything is timed.
fn warm(node: &str, token: &str, data: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(900);
    let labs = format!("http://{node}/api/v1/labs");
    loop {
        let (status, lab) = call(
            "POST",
            &labs,
            Some(token),
            Some(json!({ "datasets": data })),
        );
        if status == 201 {
            assert_eq!(lab["state"], "running", "{lab}");
            let id = lab["id"].as_str().expect("an id");
            call("DELETE", &format!("{labs}/{id}"), Some(token), None);
            return;
        }
        assert!(
            status == 404 && Instant::now() < deadline,
            "{status}: {lab}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    assert!(
        rustix::process::getuid().is_root(),
        "the labs benchmark needs root (cgroup limits for labs, a user for JupyterHub)"
    );
    let runs: usize = std::env::var("ORRERY_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10);
    let hold: usize = std::env::var("ORRERY_BENCH_HOLD")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(30);
    script("lab-env");
    script("jupyterhub-env");

    let tmp = tempfile::tempdir().expect("tempdir");
    let (a, b) = (tmp.path().join("esac"), tmp.path().join("heidelberg"));
    let token_a = node(&a, "ESAC", hold);
    let token_b = node(&b, "Heidelberg", hold);
    orrery(&a, &["federation", "create", "bench"]);
    let files = tmp.path().join("crab");
    std::fs::create_dir_all(&files).expect("mkdir");
    std::fs::write(files.join("crab.csv"), "ra,dec\n83.63,22.01\n").expect("file");
    std::fs::write(
        files.join("crab.csv.meta.json"),
        r#"{"title": "Crab", "mission": "XMM-Newton", "format": "text/csv"}"#,
    )
    .expect("sidecar");
    orrery(
        &b,
        &[
            "dataset",
            "add",
            files.to_str().expect("utf-8"),
            "--collection",
            "crab",
        ],
    );
    let _a = Running::start(&a);
    let b_id = orrery(&b, &["id"]).trim().to_owned();
    let invite = orrery(&a, &["federation", "invite", "--node", &b_id]);
    orrery(&b, &["federation", "join", invite.trim()]);
    let b_running = Running::start(&b);
    let (node_a, node_b) = (web_addr(&a), web_addr(&b));
    warm(&node_b, &token_b, &["crab"]);
    warm(&node_a, &token_a, &["crab"]);

    let runs_s = runs.to_string();
    eprintln!("== Orrery, the lab on the node holding the data");
    let local = python(
        "labs_orrery.py",
        &[
            "spawn",
            "--node",
            &node_b,
            "--token",
            &token_b,
            "--runs",
            &runs_s,
            "--data",
            "crab",
            "--measure-memory",
        ],
    );
    eprintln!("== Orrery, asked for at another node and placed at the holder");
    let remote = python(
        "labs_orrery.py",
        &[
            "spawn", "--node", &node_a, "--token", &token_a, "--runs", &runs_s, "--data", "crab",
        ],
    );
    // Warm: Heidelberg restarts keeping as many servers waiting as there are runs.
    drop(b_running);
    set_warm(&b, 0, runs);
    let _b = Running::start(&b);
    let node_b = web_addr(&b);
    warm(&node_a, &token_a, &["crab"]);
    until_warm(&b, runs);
    let spawn = |node: &str, token: &str| {
        python(
            "labs_orrery.py",
            &[
                "spawn", "--node", node, "--token", token, "--runs", &runs_s, "--data", "crab",
            ],
        )
    };
    eprintln!("== Orrery, warm, on the node holding the data");
    let warm_local = spawn(&node_b, &token_b);
    until_warm(&b, runs);
    eprintln!("== Orrery, warm, asked for at another node and placed at the holder");
    let warm_remote = spawn(&node_a, &token_a);
    until_warm(&b, runs);
    eprintln!("== JupyterHub, default local spawner");
    let hub = python(
        "labs_hub.py",
        &["--runs", &runs_s, "--user", "orrery-hub-bench"],
    );
    eprintln!("== labs held at once by one node");
    let held = python(
        "labs_orrery.py",
        &[
            "hold",
            "--node",
            &node_b,
            "--token",
            &token_b,
            "--labs",
            &hold.to_string(),
        ],
    );

    let (hub50, hub95) = (f(&hub["p50_s"]), f(&hub["p95_s"]));
    println!(
        "\n| request → kernel answers `1+1` ({runs} runs each) | p50 | p95 | p50 vs JupyterHub |"
    );
    println!("|---|---|---|---|");
    for (what, r) in [
        ("Orrery, warm, on the node holding the data", &warm_local),
        (
            "Orrery, warm, placed from another node over loopback",
            &warm_remote,
        ),
        ("Orrery, cold, on the node holding the data", &local),
        (
            "Orrery, cold, placed from another node over loopback",
            &remote,
        ),
        ("JupyterHub local spawner (baseline)", &hub),
    ] {
        println!(
            "| {what} | {:.2} s | {:.2} s | {:.2}× |",
            f(&r["p50_s"]),
            f(&r["p95_s"]),
            hub50 / f(&r["p50_s"])
        );
    }
    let (lab_mib, hub_mib) = (
        f(&local["idle_lab_rss_mib"]),
        f(&hub["idle_server_rss_mib"]),
    );
    println!(
        "\nIdle lab (sandbox and Jupyter Server, no kernel): {lab_mib:.1} MiB; idle JupyterHub single-user server: {hub_mib:.1} MiB ({:.2} of it); JupyterHub and its proxy themselves: {:.1} MiB.",
        lab_mib / hub_mib,
        f(&hub["hub_and_proxy_rss_mib"])
    );
    println!(
        "Labs held at once by one node: {} of {hold} asked ({:.1} MiB each on average, {:.1} MiB in all).",
        held["held"],
        f(&held["rss_mib_each_mean"]),
        f(&held["rss_mib_total"])
    );
    println!(
        "JupyterHub {}; baseline p95 {hub95:.2} s.",
        hub["jupyterhub"].as_str().unwrap_or("?")
    );
}
