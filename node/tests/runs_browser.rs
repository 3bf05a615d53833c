//! A cell run from the project page in a real browser (Debian's Chromium through
//! playwright-core, set up by `scripts/browser-env`): the researcher presses Run; the first
//! output shows while the cell still runs; the result and the record of the run (the node that
//! computed and signed it, the requester, how it ended, what it read) show beside the outputs.
//! Needs root and bubblewrap (`scripts/lab-env`). Screenshots go to `target/tmp/screenshots/`.

#[path = "support/browser.rs"]
mod browser;
#[path = "support/http.rs"]
mod http;
#[path = "support/run.rs"]
mod run;

use std::path::PathBuf;
use std::process::Command;

use http::call;
use orrery_node::home::Home;
use orrery_node::store::Store;
use run::{Running, add_user, lab_node, repo, token_for};
use serde_json::{Value, json};

#[test]
fn a_researcher_runs_a_cell_from_the_project_page_and_sees_where_it_ran() {
    for setup in ["scripts/browser-env", "scripts/ui-build"] {
        let status = Command::new(repo().join(setup))
            .status()
            .unwrap_or_else(|e| panic!("{setup}: {e}"));
        assert!(status.success(), "{setup} failed");
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("node");
    lab_node(&data, "Heidelberg");
    let user = add_user(&data, "Ada Lovelace");
    let token = token_for(&data, &user, "read,write");
    let session = Store::open(&Home::new(data.clone()).database())
        .expect("store")
        .create_session(&user)
        .expect("a session");

    let _running = Running::start(&data);
    let addr = std::fs::read_to_string(data.join("web.addr")).expect("web.addr");
    let base = format!("http://{}", addr.trim());
    let post = |path: &str, body: Value| {
        call(
            "POST",
            &format!("{base}/api/v1{path}"),
            Some(&token),
            Some(body),
        )
    };
    let (status, p) = post(
        "/projects",
        json!({ "title": "Pulsar timing", "visibility": "shared" }),
    );
    assert_eq!(status, 201, "{p}");
    let p = p["id"].as_str().expect("id").to_owned();
    let (status, nb) = post(
        &format!("/projects/{p}/notebooks"),
        json!({ "title": "Fold" }),
    );
    assert_eq!(status, 201, "{nb}");
    let nb = nb["id"].as_str().expect("id").to_owned();
    let (status, cell) = post(
        &format!("/projects/{p}/notebooks/{nb}/cells"),
        json!({ "source": "import time\nprint('streamed', flush=True)\ntime.sleep(2)\n6 * 7" }),
    );
    assert_eq!(status, 201, "{cell}");
    // A cell that uses a job's parameter (`factor`, 1 unless a job injects another).
    let (status, cell) = post(
        &format!("/projects/{p}/notebooks/{nb}/cells"),
        json!({ "source": "factor = globals().get('factor', 1)\nprint('folded', 14 * factor)" }),
    );
    assert_eq!(status, 201, "{cell}");
    // A plot-sized image (about 90 KB as base64): kept beside the project, not in it.
    let (status, cell) = post(
        &format!("/projects/{p}/notebooks/{nb}/cells"),
        json!({ "source": "import io, numpy as np\nfrom PIL import Image as P\nfrom IPython.display import Image, display\n\
            a = np.random.default_rng(2).integers(0, 256, (150, 150, 3), dtype=np.uint8)\n\
            b = io.BytesIO()\nP.fromarray(a).save(b, 'PNG')\ndisplay(Image(data=b.getvalue()))" }),
    );
    assert_eq!(status, 201, "{cell}");

    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    let out = Command::new("node")
        .arg(repo().join("tests/browser/runs.mjs"))
        .args([&base, &session, &p, shots.to_str().expect("utf-8")])
        .output()
        .expect("node runs the browser script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "runs.mjs failed:\n{stdout}\n{}\nthe node's log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(data.join("run.log")).unwrap_or_default()
    );
    let seen: Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("the script prints JSON");
    let text = |key: &str| seen[key].as_str().unwrap_or_default().to_owned();
    let saw = |key: &str, holds: &dyn Fn(&str) -> bool| {
        assert!(holds(&text(key)), "{key}: {seen}");
    };
    assert_eq!(seen["streamedWhileRunning"], true, "{seen}");
    saw("outputs", &|o| {
        o.starts_with("streamed") && o.ends_with("42")
    });
    saw("provenance", &|p| {
        p.starts_with("Computed at Heidelberg for Ada Lovelace · ok")
    });
    saw("prompt", &|p| {
        p != "[ ]" && !p.is_empty() && !p.contains('*')
    });
    saw("record", &|r| {
        r.contains("jupyter") && r.contains("both signatures were checked here")
    });
    saw("status", &|s| s.starts_with("Ran at Heidelberg"));
    assert_eq!(
        seen["storedImage"], 150,
        "the stored image is drawn on the page: {seen}"
    );
    saw("queued", &|q| q.starts_with("Job job-"));
    saw("jobRun", &|r| {
        r.starts_with("Run 1 · ok") && r.ends_with("signature checked")
    });
    saw("jobParameters", &|p| p.starts_with("factor = 3"));
    assert_eq!(seen["jobOutput"], "folded 42", "{seen}");
    assert_eq!(seen["errors"], json!([]), "{seen}");
    for page in ["violations", "jobViolations"] {
        let serious = browser::serious(&seen[page]);
        assert!(serious.is_empty(), "{page}: {serious:?}");
    }
}
