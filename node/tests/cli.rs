//! The `orrery` binary as a user drives it: init, authors, projects, notebooks, credits, citations,
//! and what happens when things go wrong.

#[path = "support/python.rs"]
mod python;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    fn new() -> Self {
        let node = Self {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        node.ok(&["init", "--name", "ESAC"]);
        node
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("node")
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_orrery"))
            .arg("--data-dir")
            .arg(self.data())
            .args(args)
            .output()
            .expect("orrery runs")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "orrery {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "orrery {args:?} should fail");
        String::from_utf8(out.stderr).expect("utf-8")
    }

    /// Creates an author and returns their id.
    fn author(&self, name: &str, orcid: Option<&str>) -> String {
        let mut args = vec!["author", "new", "--name", name];
        if let Some(o) = orcid {
            args.extend(["--orcid", o]);
        }
        let out = self.ok(&args);
        out.trim()
            .strip_prefix("author id: ")
            .expect("prints the id")
            .to_string()
    }
}

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("samples")
        .join(name)
}

fn validate_with_nbformat(file: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/validate-ipynb.py");
    let out = Command::new(python::python())
        .arg(script)
        .arg(file)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "nbformat rejects {}: {}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn joined(source: &Value) -> String {
    match source {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => String::new(),
    }
}

/// Cells, sources, outputs and metadata of `exported` equal those of `original`.
fn assert_same_notebook(original: &Value, exported: &Value, ids_kept: bool) {
    // An export also names where it came from (`metadata.orrery`); the rest is the original's.
    let own = |v: &Value| {
        let mut m = v["metadata"].clone();
        if let Some(o) = m.as_object_mut() {
            o.remove("orrery");
        }
        m
    };
    assert_eq!(own(original), own(exported), "notebook metadata");
    assert!(
        exported["metadata"]["orrery"]["heads"].is_array(),
        "the export names the heads it shows"
    );
    let (a, b) = (
        original["cells"].as_array().expect("cells"),
        exported["cells"].as_array().expect("cells"),
    );
    assert_eq!(a.len(), b.len(), "cell count");
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x["cell_type"], y["cell_type"]);
        assert_eq!(joined(&x["source"]), joined(&y["source"]), "source");
        assert_eq!(x["metadata"], y["metadata"], "cell metadata");
        assert_eq!(
            x.get("outputs").cloned().unwrap_or(Value::Null),
            y.get("outputs").cloned().unwrap_or(Value::Null),
            "outputs"
        );
        assert_eq!(
            x.get("execution_count").cloned().unwrap_or(Value::Null),
            y.get("execution_count").cloned().unwrap_or(Value::Null)
        );
        assert_eq!(x.get("attachments"), y.get("attachments"));
        if ids_kept {
            assert_eq!(x["id"], y["id"], "cell id");
        } else {
            assert!(y["id"].is_string(), "exported cells have ids");
        }
    }
}

#[test]
fn init_refuses_to_overwrite_and_writes_owner_only_keys() {
    let node = Node::new();
    let err = node.fails(&["init"]);
    assert!(err.contains("refusing to overwrite"), "{err}");
    let mode = std::fs::metadata(node.data().join("node.key"))
        .expect("key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let author = node.author("Ada Lovelace", None);
    let key = node.data().join("authors").join(format!("{author}.key"));
    assert_eq!(
        std::fs::metadata(&key).expect("key").permissions().mode() & 0o777,
        0o600
    );

    // A key others can read is refused, with the fix in the message.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let err = node.fails(&["project", "new", "Leaky"]);
    assert!(err.contains("chmod 600"), "{err}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    // A truncated key is refused.
    std::fs::write(&key, [7u8; 12]).expect("write");
    let err = node.fails(&["project", "new", "Broken"]);
    assert!(err.contains("not a key file"), "{err}");
}

#[test]
fn commands_explain_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_orrery"))
        .arg("--data-dir")
        .arg(dir.path().join("nothing"))
        .args(["project", "list"])
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("orrery init"), "{err}");

    let node = Node::new();
    let err = node.fails(&["project", "new", "No author yet"]);
    assert!(err.contains("orrery author new"), "{err}");
    node.author("Ada Lovelace", None);
    let err = node.fails(&["project", "show", "no-such-project"]);
    assert!(err.contains("orrery project list"), "{err}");
    let err = node.fails(&[
        "author",
        "new",
        "--name",
        "X",
        "--orcid",
        "0000-0002-1825-0098",
    ]);
    assert!(err.contains("check digit"), "{err}");
    let err = node.fails(&["project", "new", "T", "--visibility", "secret"]);
    assert!(err.contains("public shared restricted"), "{err}");
    node.ok(&["project", "new", "Vega"]);
    let bad = node.dir.path().join("bad.ipynb");
    std::fs::write(
        &bad,
        b"{\"nbformat\": 3, \"nbformat_minor\": 0, \"cells\": []}",
    )
    .expect("write");
    let err = node.fails(&[
        "project",
        "import-ipynb",
        "Vega",
        bad.to_str().expect("utf-8"),
    ]);
    assert!(err.contains("nbformat 3 is not supported"), "{err}");
}

#[test]
fn every_command_has_help() {
    let commands: &[&[&str]] = &[
        &[],
        &["init"],
        &["author"],
        &["author", "new"],
        &["author", "list"],
        &["project"],
        &["project", "new"],
        &["project", "list"],
        &["project", "show"],
        &["project", "log"],
        &["project", "credits"],
        &["project", "cite"],
        &["project", "import-ipynb"],
        &["project", "export-ipynb"],
        &["project", "member"],
        &["project", "member", "add"],
        &["project", "member", "remove"],
        &["project", "append"],
        &["project", "comment"],
    ];
    for cmd in commands {
        let out = Command::new(env!("CARGO_BIN_EXE_orrery"))
            .args(*cmd)
            .arg("--help")
            .output()
            .expect("runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{cmd:?} --help failed");
        assert!(text.contains("Usage: orrery"), "{cmd:?}: {text}");
    }
}

#[test]
fn notebooks_round_trip_through_import_and_export_and_pass_nbformat() {
    let node = Node::new();
    node.author("Ada Lovelace", Some("0000-0002-1825-0097"));
    node.ok(&["project", "new", "Variables"]);
    for (file, ids_kept) in [
        ("gaia-variable-stars.ipynb", true),
        ("xmm-spectrum.ipynb", false),
    ] {
        let path = sample(file);
        let out = node.ok(&[
            "project",
            "import-ipynb",
            "Variables",
            path.to_str().expect("utf-8"),
        ]);
        let nb = out
            .split("as notebook ")
            .nth(1)
            .expect("id")
            .split(' ')
            .next()
            .expect("id");
        // Cells whose ids could not be kept are named.
        assert_eq!(out.contains("the file gives it no id"), !ids_kept, "{out}");
        let exported = node.dir.path().join(format!("out-{file}"));
        node.ok(&[
            "project",
            "export-ipynb",
            "Variables",
            nb,
            "--output",
            exported.to_str().expect("utf-8"),
        ]);
        validate_with_nbformat(&exported);
        let original: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        let back: Value =
            serde_json::from_slice(&std::fs::read(&exported).expect("read")).expect("json");
        assert_same_notebook(&original, &back, ids_kept);

        // Exporting again gives the same file.
        let again = node.ok(&["project", "export-ipynb", "Variables", nb]);
        assert_eq!(again, std::fs::read_to_string(&exported).expect("read"));
    }
}

/// A notebook written by a later nbformat: a key and a cell type nbformat 4.5 does not define,
/// a cell key it does not define, and metadata nested deeper than 128 levels.
fn notebook_from_the_future() -> Value {
    let mut deep = serde_json::json!("bottom");
    for _ in 0..300 {
        deep = serde_json::json!({ "inner": deep });
    }
    serde_json::json!({
        "cells": [
            {"cell_type": "markdown", "id": "intro", "metadata": {}, "source": ["# Light curves\n"],
             "reviewed_by": ["Ada"]},
            {"cell_type": "sql", "id": "query", "metadata": {"engine": "adql"},
             "source": ["SELECT TOP 5 * FROM ivoa.obscore"], "outputs": [], "dialect": "ADQL 2.1"},
            {"cell_type": "code", "execution_count": 1, "id": "plot",
             "metadata": {"widget_state": deep}, "outputs": [], "source": ["print(1)\n"]}
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 99,
        "signature": "sha256:0123"
    })
}

#[test]
fn notebooks_keep_what_nbformat_allows_and_orrery_does_not_model() {
    let node = Node::new();
    node.author("Ada Lovelace", None);
    node.ok(&["project", "new", "Future"]);
    let original = notebook_from_the_future();
    let path = node.dir.path().join("future.ipynb");
    std::fs::write(&path, serde_json::to_vec_pretty(&original).expect("json")).expect("write");
    validate_with_nbformat(&path);
    let out = node.ok(&[
        "project",
        "import-ipynb",
        "Future",
        path.to_str().expect("utf-8"),
        "--title",
        "future",
    ]);
    assert!(out.contains("(3 cells)"), "{out}");
    let exported = node.dir.path().join("back.ipynb");
    node.ok(&[
        "project",
        "export-ipynb",
        "Future",
        "future",
        "--output",
        exported.to_str().expect("utf-8"),
    ]);
    validate_with_nbformat(&exported);
    let text = std::fs::read(&exported).expect("read");
    // serde_json's own reader stops at 128 levels; the file is as deep as the original.
    let mut de = serde_json::Deserializer::from_slice(&text);
    de.disable_recursion_limit();
    let mut back: Value = serde::Deserialize::deserialize(&mut de).expect("json");
    assert!(
        back["metadata"]["orrery"]["heads"].is_array(),
        "the export names its origin"
    );
    back["metadata"]
        .as_object_mut()
        .expect("metadata")
        .remove("orrery");
    assert_eq!(back, original, "everything comes back as it was");

    let clean = node.ok(&["project", "export-ipynb", "Future", "future", "--clean"]);
    let mut de = serde_json::Deserializer::from_str(&clean);
    de.disable_recursion_limit();
    let clean: Value = serde::Deserialize::deserialize(&mut de).expect("json");
    assert_eq!(clean, original, "--clean writes no origin");

    // Orrery's own key in a file's metadata is refused, not taken for kept keys.
    let mut forged = original.clone();
    forged["cells"][0]["metadata"]["orrery:kept"] = serde_json::json!({"cell_type": "code"});
    std::fs::write(&path, serde_json::to_vec(&forged).expect("json")).expect("write");
    let err = node.fails(&[
        "project",
        "import-ipynb",
        "Future",
        path.to_str().expect("utf-8"),
    ]);
    assert!(err.contains("reserved"), "{err}");
    // Deeper than the documented bound: a clear refusal.
    let mut too_deep = serde_json::json!(1);
    for _ in 0..1100 {
        too_deep = serde_json::json!([too_deep]);
    }
    let mut file = original;
    file["metadata"]["deep"] = too_deep;
    let mut bytes = Vec::new();
    let mut ser = serde_json::Serializer::new(&mut bytes);
    serde::Serialize::serialize(&file, &mut ser).expect("json");
    std::fs::write(&path, bytes).expect("write");
    let err = node.fails(&[
        "project",
        "import-ipynb",
        "Future",
        path.to_str().expect("utf-8"),
    ]);
    assert!(err.contains("1024 levels"), "{err}");
}

#[test]
fn credits_and_citation_name_every_author() {
    let node = Node::new();
    let ada = node.author("Ada Lovelace", Some("0000-0002-1825-0097"));
    let grace = node.author("Grace Hopper", None);
    node.ok(&["project", "new", "Spectra", "--description", "XMM spectra"]);
    let path = sample("xmm-spectrum.ipynb");
    let out = node.ok(&[
        "project",
        "import-ipynb",
        "Spectra",
        path.to_str().expect("utf-8"),
    ]);
    let nb = out
        .split("as notebook ")
        .nth(1)
        .expect("id")
        .split(' ')
        .next()
        .expect("id")
        .to_string();
    node.ok(&[
        "project", "member", "add", "Spectra", &grace, "--role", "editor",
    ]);

    // Grace appends to the first cell.
    let exported: Value =
        serde_json::from_str(&node.ok(&["project", "export-ipynb", "Spectra", &nb])).expect("json");
    let cell = exported["cells"][0]["id"].as_str().expect("id").to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_orrery"))
        .arg("--data-dir")
        .arg(node.data())
        .args([
            "project",
            "append",
            "Spectra",
            &nb,
            &cell,
            "--as",
            "Grace Hopper",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawns");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"grace was here\n").expect("write");
    }
    let out = child.wait_with_output().expect("waits");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("durable ")
            .count(),
        1
    );

    let credits = node.ok(&["project", "credits", "Spectra"]);
    assert!(credits.contains("Ada Lovelace"), "{credits}");
    let grace_row = credits
        .lines()
        .find(|l| l.contains("project") && l.contains("Grace Hopper"))
        .expect("grace is credited");
    assert!(grace_row.contains(" 15 "), "15 characters: {grace_row}");

    let cff = node.ok(&["project", "cite", "Spectra"]);
    assert!(cff.contains("cff-version: 1.2.0"), "{cff}");
    assert!(cff.contains("family-names: \"Lovelace\""), "{cff}");
    assert!(
        cff.contains("orcid: \"https://orcid.org/0000-0002-1825-0097\""),
        "{cff}"
    );
    assert!(cff.contains("family-names: \"Hopper\""), "{cff}");
    assert!(
        cff.find("Lovelace") < cff.find("Hopper"),
        "ordered by contribution"
    );

    // A viewer cannot edit.
    node.ok(&[
        "project",
        "member",
        "add",
        "Spectra",
        &grace,
        "--role",
        "viewer",
        "--as",
        &ada[..8],
    ]);
    let err = node.fails(&[
        "project",
        "comment",
        "Spectra",
        "hi",
        "--as",
        "Grace Hopper",
    ]);
    assert!(err.contains("role is viewer"), "{err}");

    let log = node.ok(&["project", "log", "Spectra"]);
    assert!(
        log.contains("Grace Hopper") && log.contains("Ada Lovelace"),
        "{log}"
    );
}

#[test]
fn a_newer_file_updates_its_notebook_in_place() {
    let node = Node::new();
    node.author("Ada Lovelace", None);
    node.ok(&["project", "new", "Variables"]);
    let path = sample("gaia-variable-stars.ipynb");
    let out = node.ok(&[
        "project",
        "import-ipynb",
        "Variables",
        path.to_str().expect("utf-8"),
    ]);
    let nb = out
        .split("as notebook ")
        .nth(1)
        .expect("id")
        .split(' ')
        .next()
        .expect("id")
        .to_string();
    let exported = node.dir.path().join("gaia.ipynb");
    let exported_arg = exported.to_str().expect("utf-8");
    node.ok(&[
        "project",
        "export-ipynb",
        "Variables",
        &nb,
        "--output",
        exported_arg,
    ]);
    let changes = |node: &Node| {
        node.ok(&["project", "show", "Variables"])
            .lines()
            .find(|l| l.starts_with("changes:"))
            .expect("a changes line")
            .to_string()
    };
    let log = node.ok(&["project", "log", "Variables", "--limit", "1000"]);
    let before = changes(&node);

    // Unchanged: by id prefix and by title, nothing is written.
    for into in [&nb[..8], "gaia-variable-stars"] {
        let out = node.ok(&[
            "project",
            "import-ipynb",
            "Variables",
            exported_arg,
            "--into",
            into,
        ]);
        assert_eq!(
            out.trim(),
            "unchanged: the notebook already matches the file"
        );
    }
    assert_eq!(
        node.ok(&["project", "log", "Variables", "--limit", "1000"]),
        log,
        "no new entry in the log"
    );
    assert_eq!(changes(&node), before);
    let err = node.fails(&[
        "project",
        "import-ipynb",
        "Variables",
        exported_arg,
        "--into",
        &nb,
        "--title",
        "Other",
    ]);
    assert!(err.contains("cannot be used with"), "{err}");

    // The file edited outside Orrery: one line added to a cell, one cell removed.
    let mut file: Value =
        serde_json::from_slice(&std::fs::read(&exported).expect("read")).expect("json");
    let cells = file["cells"].as_array_mut().expect("cells");
    let mut source = joined(&cells[1]["source"]);
    source.push_str("\nimport scipy");
    cells[1]["source"] = Value::String(source.clone());
    let removed = cells.remove(2)["id"].as_str().expect("id").to_string();
    std::fs::write(&exported, serde_json::to_vec_pretty(&file).expect("json")).expect("write");
    let out = node.ok(&[
        "project",
        "import-ipynb",
        "Variables",
        exported_arg,
        "--into",
        &nb,
    ]);
    assert_eq!(
        out.trim(),
        format!("updated notebook {nb}: 1 cell edited (+13 −0 chars), 1 removed")
    );
    let now: Value = serde_json::from_str(&node.ok(&["project", "export-ipynb", "Variables", &nb]))
        .expect("json");
    assert_eq!(joined(&now["cells"][1]["source"]), source);
    assert_eq!(now["cells"].as_array().expect("cells").len(), 11);
    assert!(
        now["cells"]
            .as_array()
            .expect("cells")
            .iter()
            .all(|c| c["id"] != removed.as_str())
    );
    assert_same_notebook(&file, &now, true);
    let log_after = node.ok(&["project", "log", "Variables", "--limit", "1000"]);
    assert_eq!(
        log_after.lines().count(),
        log.lines().count() + 1,
        "one new entry: {log_after}"
    );
    // Still one notebook: the update did not import a second copy.
    let show = node.ok(&["project", "show", "Variables"]);
    assert_eq!(show.matches("gaia-variable-stars").count(), 1, "{show}");
}
