//! `deploy/` against the code: every example configuration loads with the node's own parser and
//! the annotated example documents every key there is; the Kubernetes manifests, compose file
//! and Containerfile pass `deploy_check.py` (schemas and cross-checks, no engine or cluster
//! needed); the systemd unit passes `systemd-analyze`; the container entry point makes a node.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use orrery_node::config::Config;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// The project's Python (`ORRERY_PYTHON`, set by `scripts/test`, or `.venv/bin/python`).
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("ORRERY_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = workspace().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "the Python tools are missing: run `scripts/test` (it installs them into .venv) or set ORRERY_PYTHON"
    );
    venv
}

fn tomls_under(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("deploy/ lists") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            tomls_under(&path, found);
        } else if path.extension().is_some_and(|e| e == "toml") {
            found.push(path);
        }
    }
}

/// Runs `deploy_check.py`, which also writes the ConfigMap's orrery.toml into `out`.
fn deploy_check(out: &Path) -> String {
    let output = Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/deploy_check.py"))
        .arg(workspace())
        .arg(out)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn manifests_compose_file_and_containerfile_pass_their_checks() {
    let out = tempfile::tempdir().expect("tempdir");
    let report = deploy_check(out.path());
    assert!(report.contains("deploy: all checks passed"), "{report}");
}

#[test]
fn every_example_config_loads() {
    let out = tempfile::tempdir().expect("tempdir");
    deploy_check(out.path());
    let mut configs = Vec::new();
    tomls_under(&workspace().join("deploy"), &mut configs);
    configs.push(out.path().join("k8s-orrery.toml"));
    assert!(
        configs.len() >= 5,
        "example, three compose nodes, k8s: {configs:?}"
    );
    for path in &configs {
        if let Err(e) = Config::load(path) {
            panic!("{} does not load: {e}", path.display());
        }
    }
}

/// `section.key` for every key of `value`'s tables (arrays of tables count as sections).
fn key_paths(prefix: &str, value: &toml::Value, paths: &mut BTreeSet<String>) {
    let toml::Value::Table(t) = value else { return };
    for (k, v) in t {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(_) => key_paths(&path, v, paths),
            toml::Value::Array(items)
                if items.iter().all(toml::Value::is_table) && !items.is_empty() =>
            {
                for item in items {
                    key_paths(&path, item, paths);
                }
            }
            _ => {
                paths.insert(path);
            }
        }
    }
}

/// The keys the example mentions, set or commented out (`# key = …`), under their section.
fn documented(example: &str) -> BTreeSet<String> {
    let mut section = String::new();
    let mut keys = BTreeSet::new();
    for line in example.lines() {
        let line = line.trim();
        if let Some(s) = line.strip_prefix("[[").and_then(|s| s.strip_suffix("]]")) {
            section = s.trim().to_owned();
        } else if let Some(s) = line.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = s.trim().to_owned();
        } else {
            let body = line.trim_start_matches('#').trim();
            if let Some((key, _)) = body.split_once('=')
                && !key.trim().is_empty()
                && key
                    .trim()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                keys.insert(format!("{section}.{}", key.trim()));
            }
        }
    }
    keys
}

#[test]
fn the_annotated_example_documents_every_key() {
    let mut full = Config::default();
    // Optional keys are left out of the serialised default; give them values.
    full.web.public_url = Some("https://archive.example.org/orrery".into());
    full.web.tls_listen = Some("0.0.0.0:7443".parse().expect("addr"));
    full.web.tls_cert = Some("tls/fullchain.pem".into());
    full.web.tls_key = Some("tls/privkey.pem".into());
    full.labs.kubernetes.namespace = Some("orrery-labs".into());
    full.labs.kubernetes.data_claim = Some("orrery-archive".into());
    full.labs.kubernetes.data_mount = Some("/archive".into());
    full.labs.kubernetes.storage_class = Some("fast".into());
    full.compute = vec![orrery_protocol::advert::ComputeOffer {
        environment: "jupyter".into(),
        cores: 1,
        memory_mib: 1024,
        gpus: 0,
        free_slots: 1,
        lock: String::new(),
    }];
    let value = toml::Value::try_from(&full).expect("config as TOML");
    let mut keys = BTreeSet::new();
    key_paths("", &value, &mut keys);
    let example = std::fs::read_to_string(workspace().join("deploy/orrery.example.toml"))
        .expect("example reads");
    let documented = documented(&example);
    let missing: Vec<_> = keys.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "deploy/orrery.example.toml does not document {missing:?}"
    );
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = std::fs::read_to_string(workspace().join("deploy/systemd/orrery.service"))
        .expect("unit reads");
    // systemd checks that the programs exist: point it at the one just built.
    let unit = unit.replace("/usr/local/bin/orrery", env!("CARGO_BIN_EXE_orrery"));
    let path = dir.path().join("orrery.service");
    std::fs::write(&path, unit).expect("unit written");
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian's systemd package) is installed");
    let complaints = format!(
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(
        verify.status.success() && complaints.trim().is_empty(),
        "systemd-analyze verify: {complaints}"
    );
    // Exposure 2.0 or better on systemd's 0–10 scale ("OK").
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=20"])
        .arg(&path)
        .output()
        .expect("systemd-analyze runs");
    assert!(
        security.status.success(),
        "{}",
        String::from_utf8_lossy(&security.stdout)
    );
}

#[test]
fn the_container_entry_point_makes_a_node_and_runs_the_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("node");
    let bin = Path::new(env!("CARGO_BIN_EXE_orrery"))
        .parent()
        .expect("bin dir")
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let entry = workspace().join("deploy/entrypoint.sh");
    let run = |config: Option<&Path>| {
        let mut c = Command::new("sh");
        c.arg(&entry)
            .args(["orrery", "id"])
            .env("PATH", &path)
            .env("ORRERY_DATA_DIR", &data)
            .env("ORRERY_NODE_NAME", "container-node")
            .env_remove("ORRERY_CONFIG");
        if let Some(cfg) = config {
            c.env("ORRERY_CONFIG", cfg);
        }
        c.output().expect("sh runs")
    };
    let first = run(None);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let config = Config::load(&data.join("orrery.toml")).expect("the node's config loads");
    assert_eq!(config.node.name, "container-node");
    assert_eq!(config.web.listen.to_string(), "0.0.0.0:7480");
    assert_eq!(config.metrics.listen.to_string(), "0.0.0.0:9480");
    let id = String::from_utf8_lossy(&first.stdout).trim().to_owned();
    assert_eq!(id.len(), 64, "the command ran after the set-up: {id:?}");

    // A mounted configuration replaces the node's on every start; the key stays.
    let mounted = workspace().join("deploy/compose/node2.toml");
    let second = run(Some(&mounted));
    assert!(second.status.success());
    assert_eq!(String::from_utf8_lossy(&second.stdout).trim(), id);
    let config = Config::load(&data.join("orrery.toml")).expect("loads");
    assert_eq!(config.node.name, "node2");
}

#[test]
fn the_compose_scripts_are_valid_shell() {
    for script in ["deploy/entrypoint.sh", "deploy/compose/federate.sh"] {
        let out = Command::new("sh")
            .arg("-n")
            .arg(workspace().join(script))
            .output()
            .expect("sh runs");
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
