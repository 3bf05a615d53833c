//! An `orrery` process killed with SIGKILL in the middle of a stream of edits loses nothing it
//! acknowledged, and its project loads afterwards.

#[path = "support/run.rs"]
mod run;
use run::orrery;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

#[test]
fn acknowledged_edits_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("node");
    orrery(&data, &["init", "--name", "crash"]);
    // Compact often, so that the kill can also land in the middle of a compaction.
    let config = data.join("orrery.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replace("compact_after_changes = 1000", "compact_after_changes = 25"),
    )
    .expect("config");
    orrery(&data, &["author", "new", "--name", "Ada Lovelace"]);
    orrery(&data, &["project", "new", "Stream"]);
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/gaia-variable-stars.ipynb");
    let out = orrery(
        &data,
        &[
            "project",
            "import-ipynb",
            "Stream",
            sample.to_str().expect("utf-8"),
            "--title",
            "nb",
        ],
    );
    assert!(out.contains("imported"));
    let cell = "e5a6c3b2-summary";
    let before = orrery(&data, &["project", "export-ipynb", "Stream", "nb"]);
    assert!(before.contains(cell));

    let mut child = Command::new(env!("CARGO_BIN_EXE_orrery"))
        .arg("--data-dir")
        .arg(&data)
        .args(["project", "append", "Stream", "nb", cell])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawns");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        for i in 0..100_000 {
            if writeln!(stdin, "line {i:06}").is_err() {
                break;
            }
        }
    });
    let mut acked = Vec::new();
    let reader = BufReader::new(child.stdout.take().expect("stdout"));
    for line in reader.lines() {
        let line = line.expect("read");
        let hash = line.strip_prefix("durable ").expect("ack line").to_string();
        acked.push(hash);
        if acked.len() == 137 {
            child.kill().expect("SIGKILL");
            break;
        }
    }
    child.wait().expect("reaped");
    let _ = writer.join();
    assert_eq!(acked.len(), 137);

    // After restart every acknowledged line is in the cell, in order, and the log has every
    // acknowledged change.
    let exported = orrery(&data, &["project", "export-ipynb", "Stream", "nb"]);
    let nb: serde_json::Value = serde_json::from_str(&exported).expect("json");
    let cells = nb["cells"].as_array().expect("cells");
    let source: String = cells
        .iter()
        .find(|c| c["id"] == cell)
        .expect("cell survives")["source"]
        .as_array()
        .expect("lines")
        .iter()
        .filter_map(|l| l.as_str())
        .collect();
    for i in 0..acked.len() {
        assert!(source.contains(&format!("line {i:06}\n")), "line {i} lost");
    }
    let log = orrery(&data, &["project", "log", "Stream", "--limit", "100000"]);
    for hash in &acked {
        assert!(log.contains(&hash[..12]), "change {hash} lost");
    }
    // The node keeps working after the crash.
    orrery(&data, &["project", "comment", "Stream", "still here"]);
    assert!(orrery(&data, &["project", "show", "Stream"]).contains("still here"));
}
