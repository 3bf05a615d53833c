//! `orrery doctor` on real nodes made by the real binary: a healthy node passes, stopped and
//! running; each broken thing fails with its fix named and a non-zero exit.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use orrery_node::config::Config;

fn orrery(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_orrery"));
    c.arg("--data-dir")
        .arg(dir)
        .env_remove("ORRERY_LOG_FORMAT")
        .env_remove("ORRERY_DATA_DIR");
    c
}

/// A fresh node whose every listener takes a free port.
fn node(parent: &Path) -> PathBuf {
    let dir = parent.join("node");
    let out = orrery(&dir)
        .args(["init", "--name", "Doctor"])
        .output()
        .expect("init runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    edit_config(&dir, |c| {
        c.web.listen = "127.0.0.1:0".parse().expect("addr");
        c.metrics.listen = "127.0.0.1:0".parse().expect("addr");
        c.network.listen = vec![
            "/ip4/127.0.0.1/tcp/0".into(),
            "/ip4/127.0.0.1/udp/0/quic-v1".into(),
        ];
    });
    dir
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut Config)) {
    let path = dir.join("orrery.toml");
    let mut c = Config::load(&path).expect("config loads");
    edit(&mut c);
    std::fs::write(&path, c.to_commented_toml()).expect("config written");
}

fn doctor(dir: &Path) -> (bool, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = orrery(dir)
        .args(["doctor", "--timeout", "2"])
        .output()
        .expect("doctor runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    (status.success(), text)
}

/// The report's row for `check` with `status`, if there is one.
fn row<'a>(report: &'a str, check: &str, status: &str) -> Option<&'a str> {
    report.lines().find(|l| {
        let cells: Vec<&str> = l.split(['│', '┆']).map(str::trim).collect();
        cells.get(1) == Some(&check) && cells.get(2) == Some(&status)
    })
}

/// Every check passes; the disk may only warn (this machine's free space is not the node's).
fn assert_healthy(report: &str) {
    assert!(!report.contains("FAIL"), "{report}");
    assert!(
        report
            .lines()
            .filter(|l| l.contains("WARN"))
            .all(|l| row(l, "disk", "WARN").is_some()),
        "{report}"
    );
    for check in [
        "config",
        "node",
        "data dir",
        "keys",
        "database",
        "http face",
        "metrics",
    ] {
        assert!(
            row(report, check, "OK").is_some(),
            "no OK for {check}:\n{report}"
        );
    }
}

/// `orrery run` in the background, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the node and waits (at most a minute) for it to say it runs.
fn run(dir: &Path) -> Running {
    let mut child = orrery(dir)
        .arg("run")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run starts");
    let stdout = child.stdout.take().expect("stdout");
    let running = Running(child);
    let (tx, rx) = std::sync::mpsc::sync_channel(16);
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the node says it runs within a minute");
        if line.contains("running") {
            return running;
        }
    }
}

#[test]
fn a_healthy_node_passes_stopped_and_running() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = node(tmp.path());
    let (ok, report) = doctor(&dir);
    assert!(ok, "{report}");
    assert_healthy(&report);
    assert!(row(&report, "node", "OK").is_some_and(|r| r.contains("not running")));

    let _node = run(&dir);
    let (ok, report) = doctor(&dir);
    assert!(ok, "{report}");
    assert_healthy(&report);
    assert!(row(&report, "node", "OK").is_some_and(|r| r.contains("holds node.lock")));
    assert!(row(&report, "http face", "OK").is_some_and(|r| r.contains("answers at http://")));
    assert!(row(&report, "metrics", "OK").is_some_and(|r| r.contains("/metrics")));
}

#[test]
fn a_world_readable_key_fails_with_chmod() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = node(tmp.path());
    let key = dir.join("node.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (ok, report) = doctor(&dir);
    assert!(!ok, "{report}");
    let fail = row(&report, "keys", "FAIL").unwrap_or_else(|| panic!("{report}"));
    assert!(
        fail.contains("mode 644") && fail.contains("chmod 600"),
        "{report}"
    );
}

#[test]
fn a_port_taken_by_another_process_fails_with_the_fix() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = node(tmp.path());
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = squatter.local_addr().expect("addr");
    edit_config(&dir, |c| c.web.listen = taken);
    let (ok, report) = doctor(&dir);
    assert!(!ok, "{report}");
    assert!(report.contains("FAIL"), "{report}");
    assert!(
        report.contains(&format!("sport = :{}", taken.port())),
        "{report}"
    );
    assert!(report.contains("[web] listen"), "{report}");
    drop(squatter);
    let (ok, report) = doctor(&dir);
    assert!(ok, "once the port is free: {report}");
}

#[test]
fn a_broken_config_fails_naming_the_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = node(tmp.path());
    let path = dir.join("orrery.toml");
    let mut text = std::fs::read_to_string(&path).expect("read");
    text.push_str("\n[web]\nlisten = \"not an address\"\n");
    std::fs::write(&path, text).expect("write");
    let (ok, report) = doctor(&dir);
    assert!(!ok, "{report}");
    assert!(row(&report, "config", "FAIL").is_some(), "{report}");
    assert!(
        report.contains(&format!("correct {}", path.display())),
        "{report}"
    );
}

#[test]
fn unreachable_federation_peers_fail() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = node(tmp.path());
    // A port that answers, and one that was just released and refuses connections.
    let peer = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let up = format!(
        "/ip4/127.0.0.1/tcp/{}",
        peer.local_addr().expect("addr").port()
    );
    let down = format!("/ip4/127.0.0.1/tcp/{}", closed.port());
    edit_config(&dir, |c| c.network.bootstrap = vec![down.clone()]);
    let (ok, report) = doctor(&dir);
    assert!(!ok, "{report}");
    assert!(
        row(&report, "federation", "FAIL").is_some_and(|r| r.contains("nothing reachable")),
        "{report}"
    );
    edit_config(&dir, |c| {
        c.network.bootstrap = vec![up.clone(), down.clone()]
    });
    let (ok, report) = doctor(&dir);
    assert!(ok, "one of two reachable is a warning: {report}");
    assert!(row(&report, "federation", "WARN").is_some(), "{report}");
    edit_config(&dir, |c| c.network.bootstrap = vec![up.clone()]);
    let (ok, report) = doctor(&dir);
    assert!(ok && row(&report, "federation", "OK").is_some(), "{report}");
}

#[test]
fn a_tls_key_that_is_not_the_certificates_fails() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = node(tmp.path());
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    std::fs::write(dir.join("cert.pem"), cert.cert.pem()).expect("write");
    std::fs::write(dir.join("key.pem"), cert.key_pair.serialize_pem()).expect("write");
    edit_config(&dir, |c| {
        c.web.tls_listen = Some("127.0.0.1:0".parse().expect("addr"));
        c.web.tls_cert = Some("cert.pem".into());
        c.web.tls_key = Some("key.pem".into());
    });
    // Written with the usual umask: readable by everyone, which is a warning.
    let (ok, report) = doctor(&dir);
    assert!(ok, "{report}");
    assert!(
        row(&report, "https", "WARN").is_some_and(|r| r.contains("readable by every user")),
        "{report}"
    );
    let owner_only = || {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("key.pem"), std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
    };
    owner_only();
    let (ok, report) = doctor(&dir);
    assert!(ok, "{report}");
    assert!(
        row(&report, "https", "OK").is_some_and(|r| r.contains("key match")),
        "{report}"
    );
    std::fs::write(dir.join("key.pem"), other.key_pair.serialize_pem()).expect("write");
    owner_only();
    let (ok, report) = doctor(&dir);
    assert!(!ok, "{report}");
    assert!(row(&report, "https", "FAIL").is_some(), "{report}");
    assert!(
        report.contains("tls_key at its own private key"),
        "{report}"
    );
}
