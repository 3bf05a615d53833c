//! The labs page in a real browser (Debian's Chromium through playwright-core, set up by
//! `scripts/browser-env`): a signed-in researcher starts a lab over a collection from the
//! node's pages, sees its steps as they happen, opens JupyterLab through the node's proxy on
//! the lab's own origin, and stops it. Sign-in itself goes through a real OpenID provider in
//! `tests/tests/browser.rs`; here the session is made on the node directly. Screenshots go to
//! `target/tmp/screenshots/`.

#[path = "support/browser.rs"]
mod browser;
#[path = "support/run.rs"]
mod run;

use std::path::PathBuf;
use std::process::Command;

use orrery_node::home::Home;
use orrery_node::store::Store;
use run::{
    Running, add_csv_collection, add_user, free_port, orrery, repo, share_lab_envs, use_loopback,
};
use serde_json::Value;

#[test]
fn a_researcher_starts_opens_and_stops_a_lab_from_the_browser() {
    assert!(
        rustix::process::getuid().is_root() && std::path::Path::new("/usr/bin/bwrap").exists(),
        "the lab tests need root and /usr/bin/bwrap: run scripts/lab-env as root"
    );
    for setup in ["scripts/browser-env", "scripts/ui-build"] {
        let status = Command::new(repo().join(setup))
            .status()
            .unwrap_or_else(|e| panic!("{setup}: {e}"));
        assert!(status.success(), "{setup} failed");
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("node");
    orrery(&data, &["init", "--name", "Heidelberg"]);
    // The page offers the federation's collections: this node founds one.
    orrery(&data, &["federation", "create", "labs-in-a-browser"]);
    use_loopback(&data, free_port());
    share_lab_envs(&data);
    // Cold starts only, so that every step of a start is there to be shown (a warm lab is
    // claimed at once, running).
    let config = data.join("orrery.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    assert!(text.contains("warm = 1"), "{text}");
    std::fs::write(&config, text.replace("warm = 1", "warm = 0")).expect("config");
    add_csv_collection(
        &data,
        &tmp.path().join("gaia"),
        "gaia",
        ("sources.csv", "ra,dec\n83.6,22.0\n"),
        ("sources", "Gaia"),
    );
    // A second collection, added to the running lab from a search result.
    add_csv_collection(
        &data,
        &tmp.path().join("tycho"),
        "tycho",
        ("stars.csv", "hip,vmag\n32349,-1.46\n"),
        ("stars", "Hipparcos"),
    );
    let user = add_user(&data, "Ada Lovelace");
    let session = Store::open(&Home::new(data.clone()).database())
        .expect("store")
        .create_session(&user)
        .expect("a session");

    let _running = Running::start(&data);
    let addr = std::fs::read_to_string(data.join("web.addr")).expect("web.addr");
    let port = addr.trim().rsplit(':').next().expect("a port").to_owned();
    // A name, not an address: labs get origins of their own under it.
    let base = format!("http://localhost:{port}");
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    let out = Command::new("node")
        .arg(repo().join("tests/browser/labs.mjs"))
        .args([&base, &session, shots.to_str().expect("utf-8")])
        .output()
        .expect("node runs the browser script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "labs.mjs failed:\n{stdout}\n{}\nthe node's log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(data.join("run.log")).unwrap_or_default()
    );
    let seen: Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("the script prints JSON");

    assert_eq!(seen["who"], "Ada Lovelace", "{seen}");
    assert_eq!(seen["preselected"], true, "{seen}");
    let steps: Vec<&str> = seen["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        !steps.is_empty() && steps.iter().all(|s| !s.starts_with("running")),
        "the start's steps were shown as they happened: {seen}"
    );
    assert_eq!(seen["runsAt"], "Heidelberg", "{seen}");
    let lab = seen["lab"].as_str().expect("a lab id");
    assert!(
        seen["labUrl"]
            .as_str()
            .is_some_and(|u| u.starts_with(&format!("http://{lab}.localhost:{port}/labs/{lab}/"))),
        "JupyterLab opens on the lab's own origin: {seen}"
    );
    assert!(
        seen["labTitle"]
            .as_str()
            .is_some_and(|t| t.contains("JupyterLab")),
        "{seen}"
    );
    assert_eq!(seen["newsPrompt"], 0, "{seen}");
    assert!(
        seen["added"]
            .as_str()
            .is_some_and(|a| a.starts_with(&format!("tycho is in lab {lab}"))),
        "{seen}"
    );
    assert_eq!(seen["data"], "gaia, tycho", "{seen}");
    assert_eq!(seen["after"], "stopped", "{seen}");
    assert_eq!(seen["restartOffered"], true, "{seen}");
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    let serious = browser::serious(&seen["violations"]);
    assert!(serious.is_empty(), "{serious:?}");
}
