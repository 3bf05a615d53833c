//! Two `orrery` processes on loopback: found, invite, join, run, and a shared project edited from
//! the command line at one node appears at the other.

#[path = "support/run.rs"]
mod run;
use run::{Running, free_port, orrery, use_loopback};

use std::process::Command;

#[test]
fn two_processes_federate_and_share_a_project() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("esac"), dir.path().join("heidelberg"));
    orrery(&a, &["init", "--name", "ESAC"]);
    orrery(&b, &["init", "--name", "Heidelberg"]);
    use_loopback(&a, free_port());
    use_loopback(&b, free_port());
    orrery(&a, &["federation", "create", "esa-archives"]);
    let ada = orrery(&a, &["author", "new", "--name", "Ada Lovelace"]);
    let grace = orrery(&b, &["author", "new", "--name", "Grace Hopper"]);
    let grace = grace
        .trim()
        .strip_prefix("author id: ")
        .expect("id")
        .to_string();
    assert!(ada.contains("author id"));

    let _a_running = Running::start(&a);
    let b_id = orrery(&b, &["id"]).trim().to_string();
    let token = orrery(&a, &["federation", "invite", "--node", &b_id]);
    let joined = orrery(&b, &["federation", "join", token.trim()]);
    assert!(joined.contains("2 members"), "{joined}");
    // A token for another node is refused.
    let c = dir.path().join("stranger");
    orrery(&c, &["init", "--name", "Stranger"]);
    use_loopback(&c, free_port());
    let out = Command::new(env!("CARGO_BIN_EXE_orrery"))
        .arg("--data-dir")
        .arg(&c)
        .args(["federation", "join", token.trim(), "--timeout", "10"])
        .output()
        .expect("runs");
    assert!(!out.status.success(), "a token for another node is refused");

    let _b_running = Running::start(&b);
    // A shared project with Grace as editor, made at ESAC while both nodes run.
    orrery(
        &a,
        &["project", "new", "Solar wind", "--visibility", "shared"],
    );
    orrery(
        &a,
        &[
            "project",
            "member",
            "add",
            "Solar wind",
            &grace,
            "--role",
            "editor",
        ],
    );

    // Wait (bounded) until Heidelberg holds the project: its running node writes it to its store.
    let mut seen = false;
    for _ in 0..600 {
        let list = orrery(&b, &["project", "list"]);
        if list.contains("Solar wind") {
            seen = true;
            break;
        }
        // Each `orrery project list` costs a process start; no sleep is needed between tries.
    }
    assert!(seen, "the project reached the other node");
    let status = orrery(&a, &["federation", "status"]);
    assert!(
        status.contains("Heidelberg") && status.contains("connected"),
        "{status}"
    );
}
