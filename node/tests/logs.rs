//! The `orrery` binary's log format: `[log] format = "json"` in the node's configuration gives
//! one JSON object per line on standard error, and `ORRERY_LOG_FORMAT` overrides it.

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use orrery_node::config::Config;
use orrery_node::logging::LogFormat;

fn orrery(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_orrery"));
    c.arg("--data-dir")
        .arg(dir)
        .env_remove("ORRERY_LOG_FORMAT")
        .env("ORRERY_LOG", "info");
    c
}

/// Runs the node until its first log line naming where it serves TAP; returns that line.
fn first_serving_line(dir: &Path, env_format: Option<&str>) -> String {
    let mut cmd = orrery(dir);
    cmd.arg("run").stdout(Stdio::null()).stderr(Stdio::piped());
    if let Some(f) = env_format {
        cmd.env("ORRERY_LOG_FORMAT", f);
    }
    let mut child = cmd.spawn().expect("run starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::sync_channel(64);
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let found = loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.contains("serving TAP") => break Some(line),
            Ok(_) => continue,
            Err(_) => break None,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    found.expect("the node logs where it serves TAP within a minute")
}

#[test]
fn json_logs_by_configuration_and_text_by_environment() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("node");
    let out = orrery(&dir)
        .args(["init", "--name", "Logs"])
        .output()
        .expect("init runs");
    assert!(out.status.success());
    let path = dir.join("orrery.toml");
    let mut c = Config::load(&path).expect("loads");
    c.web.listen = "127.0.0.1:0".parse().expect("addr");
    c.metrics.listen = "127.0.0.1:0".parse().expect("addr");
    c.network.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
    c.log.format = LogFormat::Json;
    std::fs::write(&path, c.to_commented_toml()).expect("write");

    let line = first_serving_line(&dir, None);
    let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(v["level"], "INFO", "{line}");
    assert!(
        v["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("orrery_node::service")),
        "{line}"
    );
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("serving TAP at http://")),
        "{line}"
    );
    assert!(v["addr"].is_string(), "{line}");

    let line = first_serving_line(&dir, Some("text"));
    assert!(
        serde_json::from_str::<serde_json::Value>(&line).is_err(),
        "{line}"
    );
    assert!(line.contains("INFO"), "{line}");
}
