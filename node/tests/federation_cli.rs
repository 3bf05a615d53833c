//! Two `orrery` processes on loopback: found, invite, join, run, and a shared project edited from
//! the command line at one node appears at the other.

#[path = "support/run.rs"]
mod run;
use run::orrery;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn use_loopback(data: &Path, port: u16) {
    let config = data.join("orrery.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text
        .replace(
            r#"listen = ["/ip4/0.0.0.0/tcp/4100", "/ip4/0.0.0.0/udp/4100/quic-v1"]"#,
            &format!(r#"listen = ["/ip4/127.0.0.1/tcp/{port}"]"#),
        )
        .replace("advert_interval_secs = 60", "advert_interval_secs = 1");
    assert!(
        text.contains(&format!("tcp/{port}")),
        "listen address replaced"
    );
    std::fs::write(&config, text).expect("config");
}

/// A running `orrery run`, killed when dropped.
struct Running(Child);

impl Running {
    fn start(data: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_orrery"))
            .arg("--data-dir")
            .arg(data)
            .arg("run")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().expect("stdout"))
            .read_line(&mut line)
            .expect("read");
        assert!(line.contains("running"), "{line}");
        Running(child)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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
