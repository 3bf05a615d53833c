//! Cells run at the data through a running `orrery run`, as a researcher's script and the
//! command line run them: in a kernel of the caller's lab on the node, its state kept from one
//! run to the next; each run's outputs written into the project signed by the node, with the
//! caller's signed request and the run's provenance; a cell that raises is a run like any; and
//! a credential without the right scopes, or someone who is no editor, is refused before
//! anything runs.
//! Needs root and bubblewrap (`scripts/lab-env`).

#[path = "support/http.rs"]
mod http;
#[path = "support/run.rs"]
mod run;
use http::call;
use run::{Running, add_user, lab_node, orrery, token_for};

use serde_json::{Value, json};

#[test]
fn cells_run_in_the_caller_s_lab_keep_their_state_and_their_outputs_are_signed_by_the_node() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("node");
    let envs = lab_node(&data, "Heidelberg");
    let (ada, bob) = (add_user(&data, "Ada"), add_user(&data, "Bob"));
    let token = |user: &str, scope: &str| token_for(&data, user, scope);
    let (runs, no_labs, bobs) = (
        token(&ada, "read,write,labs"),
        token(&ada, "read,write"),
        token(&bob, "read,write,labs"),
    );

    let _running = Running::start(&data);
    let addr = std::fs::read_to_string(data.join("web.addr")).expect("web.addr");
    let api = format!("http://{}/api/v1", addr.trim());
    let post = |path: &str, token: &str, body: Option<Value>| {
        call("POST", &format!("{api}{path}"), Some(token), body)
    };
    let (status, project) = post(
        "/projects",
        &runs,
        Some(json!({ "title": "Crab timing", "visibility": "shared" })),
    );
    assert_eq!(status, 201, "{project}");
    let p = project["id"].as_str().expect("id").to_owned();
    let (status, nb) = post(
        &format!("/projects/{p}/notebooks"),
        &runs,
        Some(json!({ "title": "Residuals" })),
    );
    assert_eq!(status, 201, "{nb}");
    let nb = nb["id"].as_str().expect("id").to_owned();
    let mut cells = Vec::new();
    for source in ["x = 20", "print(x + 1)\nx * 2", "1 / 0"] {
        let (status, cell) = post(
            &format!("/projects/{p}/notebooks/{nb}/cells"),
            &runs,
            Some(json!({ "kind": "code", "source": source })),
        );
        assert_eq!(status, 201, "{cell}");
        cells.push(cell["id"].as_str().expect("id").to_owned());
    }
    let run = |cell: &str, token: &str| {
        post(
            &format!("/projects/{p}/notebooks/{nb}/cells/{cell}/run"),
            token,
            None,
        )
    };

    // Refused before anything runs: no `labs` scope; someone who is not an editor.
    let (status, refused) = run(&cells[0], &no_labs);
    assert_eq!(status, 403, "{refused}");
    let (status, refused) = run(&cells[0], &bobs);
    assert!(matches!(status, 403 | 404), "Bob is no editor: {refused}");

    // Ada runs the first two cells: the second sees what the first set.
    let (status, first) = run(&cells[0], &runs);
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["status"], "ok", "{first}");
    let (status, second) = run(&cells[1], &runs);
    assert_eq!(status, 200, "{second}");
    assert_eq!(
        second["cell"]["outputs"],
        json!([
            { "output_type": "stream", "name": "stdout", "text": "21\n" },
            {
                "output_type": "execute_result",
                "execution_count": second["cell"]["execution_count"],
                "data": { "text/plain": "40" },
                "metadata": {},
            },
        ]),
        "{second}"
    );
    assert_eq!(first["lab"], second["lab"], "one lab, one kernel");
    // A cell that raises is a run too, recorded with its traceback.
    let (status, third) = run(&cells[2], &runs);
    assert_eq!(status, 200, "{third}");
    assert_eq!(
        third["status"], "ZeroDivisionError: division by zero",
        "{third}"
    );
    assert_eq!(third["cell"]["outputs"][0]["output_type"], "error");

    // The project holds the outputs, and its record: the node signed them for Ada's request.
    let (status, read) = call(
        "GET",
        &format!("{api}/projects/{p}/notebooks/{nb}"),
        Some(&runs),
        None,
    );
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["cells"][1]["outputs"], second["cell"]["outputs"]);
    let shown = orrery(&data, &["project", "provenance", &p, &nb, &cells[1]]);
    assert!(shown.contains("Heidelberg"), "{shown}");
    assert!(shown.contains("Ada"), "{shown}");
    let credits = orrery(&data, &["project", "credits", &p]);
    assert!(
        credits.contains("Heidelberg"),
        "outputs under the node: {credits}"
    );

    // From the command line: every code cell in order, stopping at the one that raises.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_orrery"))
        .arg("--data-dir")
        .arg(&data)
        .args(["project", "run", &p, &nb, "--user", &ada])
        .output()
        .expect("orrery runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "the last cell raises: {stdout}");
    assert!(stdout.contains("21\n40"), "{stdout}");
    assert!(stderr.contains("ZeroDivisionError"), "{stderr}");

    // Ada pins the project's environment to a lock of her own (the default's packages, so
    // nothing new is downloaded, but another lock): the next run provisions it and runs there.
    let default_lock = first_lock(&orrery(
        &data,
        &["project", "provenance", &p, &nb, &cells[0]],
    ));
    let lock = tmp.path().join("pinned.lock");
    let text = format!(
        "{}\n# pinned for Crab timing\n",
        include_str!("../labs/jupyter.lock")
    );
    std::fs::write(&lock, &text).expect("lock");
    let pinned_hash = &blake3::hash(text.as_bytes()).to_hex()[..16];
    assert_ne!(pinned_hash, default_lock, "another lock");
    let said = orrery(
        &data,
        &[
            "project",
            "pin-environment",
            &p,
            "--lock",
            lock.to_str().expect("utf-8"),
            "--as",
            "Ada",
        ],
    );
    assert!(said.contains(&format!("jupyter-{pinned_hash}")), "{said}");
    let shown = orrery(&data, &["project", "show", &p]);
    assert!(
        shown.contains(&format!("jupyter-{pinned_hash} (pinned")),
        "{shown}"
    );
    // A lock naming another index is refused before it is pinned.
    std::fs::write(
        &lock,
        "--index-url http://127.0.0.1:9/simple\nnumpy==2.1.3\n",
    )
    .expect("lock");
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_orrery"))
        .arg("--data-dir")
        .arg(&data)
        .args(["project", "pin-environment", &p, "--lock"])
        .arg(&lock)
        .args(["--as", "Ada"])
        .output()
        .expect("orrery runs");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not `name==version`"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // The running node reads the pin the command line stored; the project's view says so.
    let pinned_name = format!("jupyter-{pinned_hash}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (status, view) = call("GET", &format!("{api}/projects/{p}"), Some(&runs), None);
        assert_eq!(status, 200, "{view}");
        if view["environment"] == pinned_name.as_str() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the node never read the pin: {view}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (status, pinned_run) = run(&cells[0], &runs);
    assert_eq!(status, 200, "{pinned_run}");
    assert_eq!(pinned_run["status"], "ok", "{pinned_run}");
    assert_ne!(
        pinned_run["lab"], first["lab"],
        "a lab of the pinned environment"
    );
    let record = orrery(&data, &["project", "provenance", &p, &nb, &cells[0]]);
    assert_eq!(first_lock(&record), pinned_hash, "{record}");
    assert!(
        envs.join(format!("jupyter-{pinned_hash}")).exists(),
        "the pinned lock provisioned as its own environment"
    );
}

/// The lock hash `project provenance` shows.
fn first_lock(shown: &str) -> String {
    shown
        .lines()
        .find_map(|l| l.split("(lock ").nth(1))
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no lock in {shown}"))
        .to_owned()
}
