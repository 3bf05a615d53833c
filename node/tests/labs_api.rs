//! Labs through a running `orrery run` and its REST API, as a researcher's script meets them: a
//! token with the `labs` scope starts a `jupyter` lab next to a collection of the node, sees it
//! running with the collection, reads its server's output, and stops it; without the scope, or
//! with an unknown collection, the refusal says why. Needs root and bubblewrap (`scripts/lab-env`).

#[path = "support/http.rs"]
mod http;
#[path = "support/lab.rs"]
mod lab;
#[path = "support/run.rs"]
mod run;
use http::{call, call_at};
use lab::{cell, env_python};
use run::{Running, add_csv_collection, add_user, lab_node, orrery, token_for};

use serde_json::{Value, json};

/// A browser's GET, redirects not followed: the status, `Location` and `Set-Cookie`.
fn browse(url: &str, host: &str, cookie: &str) -> (u16, String, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_idle_connections(0)
        .build()
        .into();
    let r = agent
        .get(url)
        .header("host", host)
        .header("cookie", cookie)
        .call()
        .expect("the node answers");
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    (
        r.status().as_u16(),
        header("location"),
        header("set-cookie"),
    )
}

#[test]
fn a_script_starts_a_lab_next_to_a_collection_and_stops_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("node");
    let envs = lab_node(&data, "Heidelberg");

    add_csv_collection(
        &data,
        &tmp.path().join("gaia"),
        "gaia",
        ("sources.csv", "ra,dec\n83.6,22.0\n"),
        ("sources", "Gaia"),
    );
    // A second collection, added to the running lab later.
    let tycho = tmp.path().join("tycho");
    add_csv_collection(
        &data,
        &tycho,
        "tycho",
        ("stars.csv", "hip,vmag\n32349,-1.46\n"),
        ("stars", "Hipparcos"),
    );
    // Writable by anyone as far as permissions go: only the read-only mount protects it.
    for (path, mode) in [(tycho.join("stars.csv"), 0o666), (tycho.clone(), 0o777)] {
        rustix::fs::chmod(&path, rustix::fs::Mode::from_raw_mode(mode)).expect("chmod");
    }
    let user = add_user(&data, "Ada");
    let token = |scope: &str| token_for(&data, &user, scope);
    let (labs, reads) = (token("read,labs"), token("read"));

    let _running = Running::start(&data);
    let addr = std::fs::read_to_string(data.join("web.addr")).expect("web.addr");
    let base = format!("http://{}/api/v1/labs", addr.trim());

    let (status, refused) = call("POST", &base, Some(&reads), Some(json!({})));
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"]["code"], "insufficient_scope");
    let (status, refused) = call(
        "POST",
        &base,
        Some(&labs),
        Some(json!({ "datasets": ["hipparcos"] })),
    );
    assert_eq!(status, 404, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("hipparcos")),
        "{refused}"
    );

    // The caller's lab events, as a browser would follow a start: server-sent events.
    let steps = {
        let (tx, rx) = std::sync::mpsc::channel::<Value>();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let response = agent
            .get(&format!("{base}/events"))
            .header("authorization", format!("Bearer {labs}"))
            .call()
            .expect("the event stream opens");
        assert_eq!(response.status().as_u16(), 200);
        let reader = response.into_body().into_reader();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(reader)) {
                let Ok(line) = line else { break };
                let value = line
                    .strip_prefix("data:")
                    .and_then(|d| serde_json::from_str::<Value>(d.trim()).ok());
                if let Some(v) = value
                    && tx.send(v).is_err()
                {
                    break;
                }
            }
        });
        rx
    };
    let (status, lab) = call(
        "POST",
        &base,
        Some(&labs),
        Some(json!({ "environment": "jupyter", "datasets": ["gaia"] })),
    );
    assert_eq!(status, 201, "{lab}");
    assert_eq!(lab["state"], "running", "{lab}");
    assert_eq!(lab["datasets"], json!(["gaia"]));
    // The start was streamed as it went, its states only ever moving forward.
    let order = ["pending", "placed", "provisioning", "starting", "running"];
    let mut seen: Vec<String> = Vec::new();
    while seen.last().map(String::as_str) != Some("running") {
        let step = steps
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the start's steps arrive");
        if step["lab"]["id"] == lab["id"] {
            seen.push(step["lab"]["state"].as_str().unwrap_or_default().to_owned());
        }
    }
    let ranks: Vec<usize> = seen
        .iter()
        .map(|s| order.iter().position(|o| o == s).expect("a start's state"))
        .collect();
    assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert!(seen.iter().any(|s| s == "starting"), "{seen:?}");
    let id = lab["id"].as_str().expect("an id").to_owned();
    let (status, listed) = call("GET", &base, Some(&labs), None);
    assert_eq!(status, 200);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    let (status, logs) = call("GET", &format!("{base}/{id}/logs"), Some(&labs), None);
    assert_eq!(status, 200, "{logs}");

    // The lab is reached through the node, on its own origin, by its owner only.
    let port = addr.trim().rsplit(':').next().expect("a port");
    let lab_host = format!("{id}.localhost:{port}");
    let status_url = format!("http://{}/labs/{id}/api/status", addr.trim());
    let (status, answer) = call_at("GET", &status_url, Some(&lab_host), Some(&labs), None);
    assert_eq!(status, 200, "{answer}");
    assert!(answer["started"].is_string(), "Jupyter's status: {answer}");
    let (status, _) = call_at("GET", &status_url, Some(&lab_host), None, None);
    assert_eq!(status, 401, "anonymous");
    let (status, _) = call_at("GET", &status_url, Some(&lab_host), Some(&reads), None);
    assert_eq!(status, 403, "without the labs scope");
    let (status, _) = call("GET", &status_url, Some(&labs), None);
    assert_eq!(
        status, 404,
        "a lab is never served on the node's own origin"
    );
    let (status, answer) = call_at(
        "GET",
        &format!("http://{}/labs/{id}/api/contents", addr.trim()),
        Some(&lab_host),
        Some(&labs),
        None,
    );
    assert_eq!(status, 200, "{answer}");

    // A browser signed in on the node opens the lab: a one-time code carries it to the lab's own
    // host, which signs it in with a cookie of its own; the code works once.
    let session = orrery_node::store::Store::open(&data.join("orrery.db"))
        .expect("store")
        .create_session(&user)
        .expect("a session");
    let node_host = addr.trim().to_owned();
    let (status, location, _) = browse(
        &format!("http://{node_host}/api/v1/labs/{id}/open"),
        &node_host,
        &format!("orrery_session={session}"),
    );
    assert_eq!(status, 303, "{location}");
    let prefix = format!("http://{lab_host}/labs/{id}/orrery-open?code=");
    assert!(location.starts_with(&prefix), "{location}");
    let path = location.trim_start_matches(&format!("http://{lab_host}"));
    let (status, landing, cookie) = browse(&format!("http://{node_host}{path}"), &lab_host, "");
    assert_eq!(
        (status, landing.as_str()),
        (303, format!("/labs/{id}/lab").as_str())
    );
    assert!(
        cookie.starts_with("orrery_lab=") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let lab_cookie = cookie.split(';').next().expect("a cookie").to_owned();
    let (status, _, _) = browse(&status_url, &lab_host, &lab_cookie);
    assert_eq!(status, 200, "signed into the lab's origin");
    let (status, _, _) = browse(&format!("http://{node_host}{path}"), &lab_host, "");
    assert_eq!(status, 401, "a code works once");
    // The node's session cookie means nothing on the lab's host.
    let (status, _, _) = browse(&status_url, &lab_host, &format!("orrery_session={session}"));
    assert_eq!(status, 401);

    // A kernel through the proxy's WebSocket tunnel reads the collection, computes, and cannot
    // write under /data (the client is the websocket-client package of the lab's environment).
    let python = env_python(&envs);
    let code = "import os; (open('/data/gaia/sources.csv').read().splitlines()[1], 1+1, \
                os.access('/data/gaia', os.W_OK))";
    assert_eq!(
        cell(&python, addr.trim(), &id, &lab_host, &labs, code),
        "('83.6,22.0', 2, False)"
    );

    // Escapes tried from inside the kernel: the node's key and database, the labs' workspaces,
    // the node's processes and its HTTP port, writing the collection.
    let escape = format!(
        "import os, socket\n\
         def probe(f):\n    try:\n        f()\n        return 'open'\n    except Exception as e:\n        return type(e).__name__\n\
         ' '.join([\
         'key=' + probe(lambda: open({key:?}).read()),\
         'db=' + probe(lambda: open({db:?}, 'rb').read(1)),\
         'workspaces=' + probe(lambda: os.listdir({workspaces:?})),\
         'port=' + probe(lambda: socket.create_connection(('127.0.0.1', {port}), timeout=2)),\
         'write=' + probe(lambda: open('/data/gaia/new.csv', 'w')),\
         'uid=' + str(os.getuid()),\
         'few_pids=' + str(len([p for p in os.listdir('/proc') if p.isdigit()]) < 12)])",
        key = data.join("node.key").display().to_string(),
        db = data.join("orrery.db").display().to_string(),
        workspaces = data.join("labs/workspaces").display().to_string(),
    );
    assert_eq!(
        cell(&python, addr.trim(), &id, &lab_host, &labs, &escape),
        "'key=FileNotFoundError db=FileNotFoundError workspaces=FileNotFoundError \
         port=ConnectionRefusedError write=OSError uid=65534 few_pids=True'"
    );

    // "Add to data volume": a collection joins the running lab, read-only, and the kernel sees it
    // at once; writing under it fails, as under the first.
    let (status, added) = call(
        "POST",
        &format!("{base}/{id}/datasets"),
        Some(&labs),
        Some(json!({ "dataset": "tycho" })),
    );
    assert_eq!(status, 200, "{added}");
    assert_eq!(added["datasets"], json!(["gaia", "tycho"]), "{added}");
    let (status, refused) = call(
        "POST",
        &format!("{base}/{id}/datasets"),
        Some(&labs),
        Some(json!({ "dataset": "hipparcos" })),
    );
    assert_eq!(status, 404, "{refused}");
    let code = "import errno, os\n\
                def probe(f):\n    try:\n        f()\n        return 'open'\n    except OSError as e:\n        return errno.errorcode[e.errno]\n\
                (open('/data/tycho/stars.csv').read().splitlines()[1], os.access('/data/tycho', os.W_OK), \
                 probe(lambda: open('/data/tycho/new.csv', 'w')), probe(lambda: open('/data/tycho/stars.csv', 'a')))";
    assert_eq!(
        cell(&python, addr.trim(), &id, &lab_host, &labs, code),
        "('32349,-1.46', False, 'EROFS', 'EROFS')"
    );
    // The node's own mount namespace is untouched.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!mounts.contains("/data/tycho"), "{mounts}");

    let (status, stopped) = call("DELETE", &format!("{base}/{id}"), Some(&labs), None);
    assert_eq!(status, 200, "{stopped}");
    assert_eq!(stopped["state"], "stopped");
    let (status, shown) = call("GET", &format!("{base}/{id}"), Some(&labs), None);
    assert_eq!((status, shown["state"].clone()), (200, json!("stopped")));

    // A warm lab waits by now (the node keeps one from its first lab on): the next lab is that
    // server, claimed, with its collection added while it runs.
    let metrics = std::fs::read_to_string(data.join("metrics.addr")).expect("metrics.addr");
    let metrics_url = format!("http://{}/metrics", metrics.trim());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !call("GET", &metrics_url, None, None)
        .1
        .as_str()
        .is_some_and(|t| t.contains("orrery_labs{state=\"warm\"} 1"))
    {
        assert!(std::time::Instant::now() < deadline, "no warm lab waits");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // Its workspace exists before anyone asks: that is how a claimed lab is told from a new one.
    let waiting: Vec<String> = std::fs::read_dir(data.join("labs/workspaces"))
        .expect("workspaces")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let (status, claimed) = call(
        "POST",
        &base,
        Some(&labs),
        Some(json!({ "environment": "jupyter", "datasets": ["gaia"] })),
    );
    assert_eq!(status, 201, "{claimed}");
    let claimed_id = claimed["id"].as_str().expect("an id").to_owned();
    assert!(
        waiting.contains(&claimed_id),
        "{claimed_id} is not one of the labs that were waiting: {waiting:?}"
    );
    let claimed_host = format!("{claimed_id}.localhost:{port}");
    assert_eq!(
        cell(
            &python,
            addr.trim(),
            &claimed_id,
            &claimed_host,
            &labs,
            "open('/data/gaia/sources.csv').read().splitlines()[1]"
        ),
        "'83.6,22.0'"
    );
    let (status, _) = call("DELETE", &format!("{base}/{claimed_id}"), Some(&labs), None);
    assert_eq!(status, 200);

    // The same through GraphQL, under ESA Datalabs' names.
    let graphql = format!("http://{}/graphql", addr.trim());
    let ask = |query: &str| {
        let (status, answer) = call(
            "POST",
            &graphql,
            Some(&labs),
            Some(json!({ "query": query })),
        );
        assert_eq!(status, 200, "{answer}");
        assert!(answer["errors"].is_null(), "{answer}");
        answer["data"].clone()
    };
    let made =
        ask(r#"mutation { createDatalab(sapId: "jupyter", datasets: ["gaia"]) { id state } }"#);
    assert_eq!(made["createDatalab"]["state"], "running", "{made}");
    let cid = made["createDatalab"]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let listed = ask("{ datalabs { id state } }");
    assert!(
        listed["datalabs"].as_array().is_some_and(|l| l
            .iter()
            .any(|x| x["id"] == cid.as_str() && x["state"] == "running")),
        "{listed}"
    );
    let gone = ask(&format!(
        r#"mutation {{ destroyDatalab(cid: "{cid}") {{ state }} }}"#
    ));
    assert_eq!(gone["destroyDatalab"]["state"], "stopped", "{gone}");
    let (_, refused) = call(
        "POST",
        &graphql,
        Some(&reads),
        Some(json!({ "query": "mutation { createDatalab { id } }" })),
    );
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "insufficient_scope",
        "{refused}"
    );

    // The operator sees the labs by state in the node's metrics.
    let metrics = std::fs::read_to_string(data.join("metrics.addr")).expect("metrics.addr");
    let (status, text) = call(
        "GET",
        &format!("http://{}/metrics", metrics.trim()),
        None,
        None,
    );
    assert_eq!(status, 200);
    let text = text.as_str().expect("text").to_owned();
    assert!(text.contains("orrery_labs{state=\"stopped\"} 3"), "{text}");
    assert!(text.contains("orrery_labs{state=\"running\"} 0"), "{text}");

    // The operator's command line, as that user: no token of its own outlives a command.
    // It shows the start's steps as they happen (on standard error), the result on its output.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_orrery"))
        .arg("--data-dir")
        .arg(&data)
        .args(["lab", "start", "--data", "gaia", "--user", &user])
        .output()
        .expect("orrery runs");
    let started = String::from_utf8_lossy(&out.stdout).into_owned();
    let steps = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success() && started.contains("running"),
        "{started}{steps}"
    );
    let id = started
        .split_whitespace()
        .find(|w| w.starts_with("lab-"))
        .expect("the lab's id")
        .to_owned();
    assert!(
        steps
            .lines()
            .any(|l| l.contains(&id) && l.contains("running")),
        "the start's steps were not shown: {steps}"
    );
    let listed = orrery(&data, &["lab", "list", "--user", &user]);
    assert!(
        listed.contains(&id) && listed.contains("running"),
        "{listed}"
    );
    orrery(&data, &["lab", "logs", &id, "--user", &user]);
    let stopped = orrery(&data, &["lab", "stop", &id, "--user", &user]);
    assert!(stopped.contains("stopped"), "{stopped}");
    let shown = orrery(&data, &["lab", "show", &id, "--user", &user]);
    assert!(shown.contains("stopped"), "{shown}");
    let tokens = orrery(&data, &["token", "list", "--user", &user]);
    let live = tokens
        .lines()
        .skip(1)
        .filter(|l| l.contains(&user) && !l.contains("revoked"))
        .count();
    assert_eq!(live, 2, "the commands' tokens were not revoked:\n{tokens}");

    // A fork bomb from inside a kernel (each process starts two and waits for them), in a
    // session of its own so that it outlives the kernel, stops at the lab's process limit; the node keeps answering, and stopping the lab
    // leaves none of its processes. It goes off two seconds after the cell has answered: a
    // kernel at its lab's process limit cannot always start the thread that sends the answer.
    let (status, bombed) = call(
        "POST",
        &base,
        Some(&labs),
        Some(json!({ "environment": "jupyter" })),
    );
    assert_eq!(status, 201, "{bombed}");
    let bomb_id = bombed["id"].as_str().expect("an id").to_owned();
    let bomb_host = format!("{bomb_id}.localhost:{port}");
    assert_eq!(
        cell(
            &python,
            addr.trim(),
            &bomb_id,
            &bomb_host,
            &labs,
            "import subprocess as s; s.Popen(['sh', '-c', 'sleep 2; f() { f & f & wait; }; f'], \
             stdout=s.DEVNULL, stderr=s.DEVNULL, start_new_session=True); 'lit'"
        ),
        "'lit'"
    );
    // The lab's cgroup (pids controller), wherever this machine's hierarchy keeps it.
    let pids_dir = walkdir::WalkDir::new("/sys/fs/cgroup")
        .max_depth(5)
        .into_iter()
        .filter_map(Result::ok)
        .find(|e| {
            e.file_type().is_dir()
                && e.path().ends_with(format!("labs/{bomb_id}"))
                && e.path().join("pids.max").exists()
        })
        .map(|e| e.path().to_path_buf())
        .expect("the lab's pids cgroup");
    let limit: usize = std::fs::read_to_string(pids_dir.join("pids.max"))
        .expect("pids.max")
        .trim()
        .parse()
        .expect("a number");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let current: usize = std::fs::read_to_string(pids_dir.join("pids.current"))
            .expect("pids.current")
            .trim()
            .parse()
            .expect("a number");
        assert!(
            current <= limit,
            "{current} processes past the limit {limit}"
        );
        if current + 16 >= limit {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the bomb never reached the limit ({current} of {limit})"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (status, _) = call("GET", &base, Some(&labs), None);
    assert_eq!(status, 200, "the node answers beside the bomb");
    let (status, stopped) = call("DELETE", &format!("{base}/{bomb_id}"), Some(&labs), None);
    assert_eq!(
        (status, stopped["state"].as_str()),
        (200, Some("stopped")),
        "{stopped}"
    );
    let left = std::fs::read_to_string(pids_dir.join("cgroup.procs")).unwrap_or_default();
    assert!(left.trim().is_empty(), "processes outlived the lab: {left}");

    // Memory past the lab's limit, asked for from a kernel: the process that asked is killed
    // (the kernel survives to say so), and the lab and the node go on.
    let (status, hungry) = call(
        "POST",
        &base,
        Some(&labs),
        Some(json!({ "environment": "jupyter" })),
    );
    assert_eq!(status, 201, "{hungry}");
    let hungry_id = hungry["id"].as_str().expect("an id").to_owned();
    assert_eq!(
        cell(
            &python,
            addr.trim(),
            &hungry_id,
            &format!("{hungry_id}.localhost:{port}"),
            &labs,
            "import subprocess, sys; \
             subprocess.run([sys.executable, '-c', 'b = bytearray(3 << 30)']).returncode"
        ),
        "-9"
    );
    let (status, shown) = call("GET", &format!("{base}/{hungry_id}"), Some(&labs), None);
    assert_eq!(
        (status, shown["state"].as_str()),
        (200, Some("running")),
        "{shown}"
    );
    let (status, _) = call("DELETE", &format!("{base}/{hungry_id}"), Some(&labs), None);
    assert_eq!(status, 200);
}
