//! Running the `orrery` binary from the process-level tests.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Runs `orrery --data-dir DATA ARGS…`, asserts success and returns standard output.
pub(crate) fn orrery(data: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_orrery"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .expect("orrery runs");
    assert!(
        out.status.success(),
        "orrery {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Adds a user named `name` to the node in `data`; their id.
#[allow(dead_code)]
pub(crate) fn add_user(data: &Path, name: &str) -> String {
    let made = orrery(data, &["user", "add", "--name", name]);
    made.split_whitespace()
        .nth(1)
        .expect("a user id")
        .to_owned()
}

/// A one-day API token of `scopes` (comma-separated) for `user` of the node in `data`.
#[allow(dead_code)]
pub(crate) fn token_for(data: &Path, user: &str, scopes: &str) -> String {
    let out = orrery(
        data,
        &[
            "token", "create", "--user", user, "--scope", scopes, "--days", "1",
        ],
    );
    out.lines().nth(1).expect("the secret").trim().to_owned()
}

/// Publishes `dir`, holding one CSV file `name` with `contents` described as `title` of
/// `mission`, as the node's collection `collection`.
#[allow(dead_code)]
pub(crate) fn add_csv_collection(
    data: &Path,
    dir: &Path,
    collection: &str,
    (name, contents): (&str, &str),
    (title, mission): (&str, &str),
) {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(dir.join(name), contents).expect("file");
    std::fs::write(
        dir.join(format!("{name}.meta.json")),
        serde_json::json!({ "title": title, "mission": mission, "format": "text/csv" }).to_string(),
    )
    .expect("sidecar");
    orrery(
        data,
        &[
            "dataset",
            "add",
            dir.to_str().expect("utf-8"),
            "--collection",
            collection,
        ],
    );
}

/// A free TCP port on loopback.
#[allow(dead_code)]
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Makes the node in `data` listen for the federation on loopback at `port` only, with quick
/// adverts.
#[allow(dead_code)]
pub(crate) fn use_loopback(data: &Path, port: u16) {
    let config = data.join("orrery.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text
        .replace(
            r#"listen = ["/ip4/127.0.0.1/tcp/4100", "/ip4/127.0.0.1/udp/4100/quic-v1"]"#,
            &format!(r#"listen = ["/ip4/127.0.0.1/tcp/{port}"]"#),
        )
        .replace("advert_interval_secs = 60", "advert_interval_secs = 1");
    assert!(
        text.contains(&format!("tcp/{port}")),
        "listen address replaced"
    );
    std::fs::write(&config, text).expect("config");
}

/// Points the node in `data` at the lab environments shared by this build's lab tests
/// (provisioned once), with its HTTP and metrics listeners on free ports; returns where they are.
#[allow(dead_code)]
pub(crate) fn share_lab_envs(data: &Path) -> std::path::PathBuf {
    let envs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("lab-envs");
    let config = data.join("orrery.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text.replace(
        "[labs]\n",
        &format!("[labs]\nenvs = \"{}\"\n", envs.display()),
    );
    let text = text.replace("listen = \"127.0.0.1:7480\"", "listen = \"127.0.0.1:0\"");
    let text = text.replace("listen = \"127.0.0.1:9480\"", "listen = \"127.0.0.1:0\"");
    std::fs::write(&config, text).expect("config");
    envs
}

/// Initialises a node named `name` in `data`, on loopback, with this build's shared lab
/// environments; returns where they are. Panics unless labs can run here (root, bubblewrap).
#[allow(dead_code)]
pub(crate) fn lab_node(data: &Path, name: &str) -> std::path::PathBuf {
    assert!(
        rustix::process::getuid().is_root() && Path::new("/usr/bin/bwrap").exists(),
        "the lab tests need root and /usr/bin/bwrap: run scripts/lab-env as root"
    );
    orrery(data, &["init", "--name", name]);
    use_loopback(data, free_port());
    share_lab_envs(data)
}

/// A running `orrery run`, killed when dropped.
#[allow(dead_code)]
pub(crate) struct Running(pub(crate) Child);

#[allow(dead_code)]
impl Running {
    /// Starts `orrery run` on `data` and waits until it says it is running.
    pub(crate) fn start(data: &Path) -> Self {
        Self::start_with(data, &[])
    }

    /// Like [`Running::start`], with `env` set for the node.
    pub(crate) fn start_with(data: &Path, env: &[(&str, &Path)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_orrery"))
            .arg("--data-dir")
            .arg(data)
            .arg("run")
            .envs(env.iter().map(|(k, v)| (*k, *v)))
            .stdout(Stdio::piped())
            // Kept beside the data, for reading when a test fails.
            .stderr(
                std::fs::File::create(data.join("run.log"))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            )
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

/// The repository's root.
#[allow(dead_code)]
pub(crate) fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Where the node in `data` serves HTTP (`host:port`, as it wrote it when it started).
#[allow(dead_code)]
pub(crate) fn web_addr(data: &Path) -> String {
    std::fs::read_to_string(data.join("web.addr"))
        .expect("web.addr")
        .trim()
        .to_owned()
}
