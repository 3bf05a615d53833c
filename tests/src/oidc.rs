//! A real OpenID provider on loopback for sign-in tests (the npm package oidc-provider,
//! installed by `scripts/oidc-env`), and a node that trusts it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use orrery_node::config::Config;
use orrery_node::home::Home;
use orrery_node::service::NodeHandle;
use orrery_web::oidc::ProviderConfig;

/// The secret the provider and the node share.
pub const SECRET: &str = "a secret the provider shares with the node";

/// The running provider; stopped when dropped.
pub struct Provider {
    child: Child,
    /// Its issuer URL.
    pub issuer: String,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a provider that knows one client, the node, coming back at `redirect`.
pub fn provider(redirect: &str) -> Provider {
    provider_for(&[redirect])
}

/// Starts a provider that knows one client, the nodes, coming back at any of `redirects`.
pub fn provider_for(redirects: &[&str]) -> Provider {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    assert!(
        Command::new(repo.join("scripts/oidc-env"))
            .status()
            .expect("oidc-env")
            .success()
    );
    let clients = serde_json::json!([{
        "client_id": "orrery-node",
        "client_secret": SECRET,
        "redirect_uris": redirects,
    }]);
    let mut child = Command::new("node")
        .arg(repo.join("tests/oidc/provider.mjs"))
        .env("OIDC_CLIENTS", clients.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node starts the provider");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(issuer) = line.strip_prefix("ready ") {
                let _ = tx.send(issuer.to_owned());
            }
        }
    });
    let issuer = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the provider is ready");
    Provider { child, issuer }
}

/// A port free now on 127.0.0.1 (a node's address must be registered with the provider
/// before either starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A node named `name` on web port `port` whose researchers sign in with `op` (as `orcid`, an
/// ORCID-vouching provider); its home, handle and task.
pub async fn node_signing_in_with(
    dir: &std::path::Path,
    name: &str,
    port: u16,
    op: &Provider,
) -> (Home, NodeHandle, tokio::task::JoinHandle<()>) {
    let home = Home::new(dir.join(name));
    let mut config = Config::default();
    config.node.name = name.into();
    config.network = orrery_federation::Config::loopback();
    signing_in_with(&mut config, port, op);
    orrery_node::setup::init(&home, &config).expect("init");
    let (node, task) = orrery_node::service::start(home.clone())
        .await
        .expect("node starts");
    (home, node, task)
}

/// Configures a node to serve its web face on `port` and sign researchers in with `op` (as
/// `orcid`, an ORCID-vouching provider).
pub fn signing_in_with(config: &mut Config, port: u16, op: &Provider) {
    config.web.listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    config.web.oidc = vec![ProviderConfig {
        id: "orcid".into(),
        display_name: "ORCID (test provider)".into(),
        issuer: op.issuer.clone(),
        client_id: "orrery-node".into(),
        client_secret: Some(SECRET.into()),
        orcid: true,
    }];
}
