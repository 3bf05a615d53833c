//! Cross-crate journeys for Orrery: several real nodes on 127.0.0.1 in one process, each with its
//! own data directory, driven through [`NodeHandle`] and waited on through their events with
//! timeouts — never with sleeps.

pub mod oidc;
pub mod rest;

use std::future::Future;
use std::time::Duration;

use clap::Parser as _;
use futures::StreamExt;
use orrery_crdt::{Project, Session};
use orrery_node::config::Config;
use orrery_node::home::Home;
use orrery_node::service::{NodeEvent, NodeHandle, start};
use orrery_node::store::Store;
use orrery_protocol::{AuthorId, ChangeHash, NodeId, ProjectId};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;

/// One node of a test federation.
pub struct TestNode {
    /// Its data directory (removed when the node is dropped).
    pub dir: tempfile::TempDir,
    /// The data directory's layout.
    pub home: Home,
    /// The running node, if started.
    pub node: Option<NodeHandle>,
    /// Its node id.
    pub id: NodeId,
    /// The local author created with it.
    pub author: AuthorId,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestNode {
    /// Initialises a node named `name` with one author, on loopback with ephemeral ports, and
    /// starts it.
    pub async fn create(name: &str) -> TestNode {
        Self::create_with(name, |_| {}).await
    }

    /// As [`TestNode::create`], with `configure` changing the configuration first.
    pub async fn create_with(name: &str, configure: impl FnOnce(&mut Config)) -> TestNode {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("ORRERY_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::new(dir.path().join(name));
        let mut config = Config::default();
        config.node.name = name.to_string();
        config.node.institution = format!("{name} institute");
        config.network = orrery_federation::Config::loopback();
        config.web.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        config.network.advert_interval_secs = 2;
        config.network.advert_ttl_secs = 30;
        configure(&mut config);
        let id = orrery_node::setup::init(&home, &config).expect("init");
        let mut store = Store::open(&home.database()).expect("store");
        let author = orrery_node::setup::new_author(
            &home,
            &mut store,
            &format!("{name} researcher"),
            None,
            None,
        )
        .expect("author");
        drop(store);
        let mut node = TestNode {
            dir,
            home,
            node: None,
            id,
            author,
            task: None,
        };
        node.start().await;
        node
    }

    /// Starts (or restarts) the node from its data directory.
    pub async fn start(&mut self) {
        let (handle, task) = start(self.home.clone()).await.expect("node starts");
        self.node = Some(handle);
        self.task = Some(task);
    }

    /// Stops the node and waits until it has stopped.
    pub async fn stop(&mut self) {
        if let Some(n) = self.node.take() {
            n.shutdown();
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    /// The running node's handle.
    pub fn handle(&self) -> &NodeHandle {
        self.node.as_ref().expect("node is running")
    }

    /// Edits `project` as the local `author` directly in the stopped node's store, as the
    /// author's own tools do while the node is down: runs `edit` on the stored replica, seals
    /// whatever it committed (also when it then failed, as the node does) and appends that
    /// durably, so the restarted node holds and sends it. Returns `edit`'s result.
    ///
    /// Panics if the node is running (it owns the store) or the store, project or key is missing.
    pub fn edit_offline<T, E>(
        &self,
        project: ProjectId,
        author: AuthorId,
        edit: impl FnOnce(&mut Project, &Session) -> Result<T, E>,
    ) -> Result<T, E> {
        assert!(self.node.is_none(), "stop the node before editing offline");
        let mut store = Store::open(&self.home.database()).expect("store");
        let mut replica = store.load(project).expect("project held");
        let key = orrery_node::home::read_key(&self.home.author_key(&author)).expect("key");
        let session = Session::new(key).expect("session");
        let result = edit(&mut replica, &session);
        let batch = replica.seal(&session);
        if !batch.is_empty() {
            store.append(&replica, &batch).expect("durable");
        }
        result
    }
}

/// Forms a federation of `n` fresh nodes: the first founds it and invites each other node by
/// its key; returns once every node holds every member's advert.
pub async fn federation(n: usize) -> Vec<TestNode> {
    federation_with(n, |_, _| {}).await
}

/// As [`federation`], with `configure` changing node `i`'s configuration first.
pub async fn federation_with(n: usize, configure: impl Fn(usize, &mut Config)) -> Vec<TestNode> {
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        nodes.push(TestNode::create_with(&format!("node{i}"), |c| configure(i, c)).await);
    }
    nodes[0]
        .handle()
        .create_federation("test-federation")
        .await
        .expect("found");
    for i in 1..n {
        let token = nodes[0]
            .handle()
            .invite(Some(nodes[i].id), None, 3600)
            .await
            .expect("invite");
        nodes[i].handle().join(token).await.expect("join");
    }
    let handles: Vec<NodeHandle> = nodes.iter().map(|t| t.handle().clone()).collect();
    eventually(
        &handles,
        Duration::from_secs(30),
        "every node holds every advert",
        || {
            let handles = handles.clone();
            async move { all_adverts_known(&handles).await }
        },
    )
    .await;
    nodes
}

/// Whether every node knows every other member's advert.
pub async fn all_adverts_known(handles: &[NodeHandle]) -> bool {
    for h in handles {
        let Ok(status) = h.status().await else {
            return false;
        };
        if status.members.len() != handles.len() {
            return false;
        }
        let missing = status
            .members
            .iter()
            .filter(|m| m.node != h.id())
            .any(|m| m.advert.is_none());
        if missing {
            return false;
        }
    }
    true
}

/// The handles of the nodes of `nodes` that are running.
pub fn running(nodes: &[TestNode]) -> Vec<NodeHandle> {
    nodes.iter().filter_map(|n| n.node.clone()).collect()
}

/// The heads of `project` at `node`; `None` if the node does not hold it or has stopped.
pub async fn heads(node: &NodeHandle, project: ProjectId) -> Option<Vec<ChangeHash>> {
    node.read(project, |p| p.map(Project::heads))
        .await
        .ok()
        .flatten()
}

/// The heads of `project` if every node of `nodes` holds it with the same heads.
pub async fn same_heads(nodes: &[NodeHandle], project: ProjectId) -> Option<Vec<ChangeHash>> {
    let mut first: Option<Vec<ChangeHash>> = None;
    for n in nodes {
        let h = heads(n, project).await?;
        match &first {
            None => first = Some(h),
            Some(f) if *f != h => return None,
            Some(_) => {}
        }
    }
    first
}

/// Waits until every node of `nodes` holds `project` with the same heads, and returns them;
/// panics with `what` after `timeout`.
pub async fn converged(
    nodes: &[NodeHandle],
    project: ProjectId,
    timeout: Duration,
    what: &str,
) -> Vec<ChangeHash> {
    let all = nodes.to_vec();
    eventually(nodes, timeout, what, || {
        let all = all.clone();
        async move { same_heads(&all, project).await.is_some() }
    })
    .await;
    same_heads(nodes, project).await.unwrap_or_default()
}

/// Waits until `check` holds, re-checking after every event of any of `nodes`; panics with
/// `what` after `timeout`.
pub async fn eventually<F, Fut>(nodes: &[NodeHandle], timeout: Duration, what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    if !within(nodes, timeout, check).await {
        panic!("timed out after {timeout:?} (or every node stopped) waiting until {what}");
    }
}

/// Waits until `check` holds, re-checking after every event of any of `nodes`; returns whether
/// it held before `timeout` (or before every node stopped), so that the caller can say why not.
pub async fn within<F, Fut>(nodes: &[NodeHandle], timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let receivers: Vec<broadcast::Receiver<NodeEvent>> =
        nodes.iter().map(NodeHandle::subscribe).collect();
    let mut events = futures::stream::select_all(receivers.into_iter().map(BroadcastStream::new));
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        // Adverts are re-published periodically, so some event always comes.
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => return check().await,
        }
    }
}

/// A member node running hostile software: a bare federation actor with its own key, admitted
/// properly by `inviter` (invited by key, joined with a signed request), so it can send crafted
/// requests as a member. Cancel the token to stop it.
pub struct HostileMember {
    /// Its key.
    pub key: orrery_protocol::SecretKey,
    /// Its node id.
    pub id: NodeId,
    /// Its federation actor.
    pub fed: orrery_federation::FederationHandle,
    /// Stops it.
    pub cancel: tokio_util::sync::CancellationToken,
}

/// Admits a [`HostileMember`] through `inviter`.
pub async fn hostile_member(inviter: &TestNode) -> HostileMember {
    hostile_member_with_events(inviter).await.0
}

/// Admits a [`HostileMember`] through `inviter`, with the events of its federation actor: the
/// requests other nodes send it, which the test answers as it likes.
pub async fn hostile_member_with_events(
    inviter: &TestNode,
) -> (
    HostileMember,
    tokio::sync::mpsc::Receiver<orrery_federation::Event>,
) {
    use orrery_protocol::Signed;
    use orrery_protocol::federation::JoinRequest;
    let key = orrery_protocol::SecretKey::generate().expect("random");
    let id = NodeId(key.public());
    let cancel = tokio_util::sync::CancellationToken::new();
    let (fed, events, _task) = orrery_federation::spawn(
        key.clone(),
        orrery_federation::Config::loopback(),
        None,
        cancel.clone(),
    )
    .expect("spawn");
    let token = inviter
        .handle()
        .invite(Some(id), None, 3600)
        .await
        .expect("invite");
    let request = Signed::sign(
        &key,
        JoinRequest {
            invitation: token.invitation.clone(),
            node: id,
            name: "mallory".into(),
            code: None,
            at: 0,
        },
    );
    let addrs = token.addrs.iter().filter_map(|a| a.parse().ok()).collect();
    fed.join(request.into_unverified(), inviter.id, addrs)
        .await
        .expect("join");
    (
        HostileMember {
            key,
            id,
            fed,
            cancel,
        },
        events,
    )
}

/// The Python interpreter of the project's virtual environment (`ORRERY_PYTHON`, set by
/// `scripts/test`, or `.venv/bin/python`), for tests that drive the real Python clients.
pub fn python() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("ORRERY_PYTHON") {
        return std::path::PathBuf::from(p);
    }
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        venv.exists(),
        "the Python tools are missing: run `scripts/test` (it installs them into .venv) or set ORRERY_PYTHON"
    );
    venv
}

/// Mallory, a member running hostile software, joins through `a` and advertises `collections`;
/// `a` holds her advert and is connected to her.
pub async fn hostile_member_advertising(
    a: &TestNode,
    collections: Vec<orrery_protocol::advert::CollectionSummary>,
) -> (
    HostileMember,
    tokio::sync::mpsc::Receiver<orrery_federation::Event>,
) {
    hostile_member_with_advert(a, collections, &[]).await
}

/// Mallory joins through `a` and says in her advert that she hosts `authors` (with their
/// signed consent, as an honest node does); `a` holds her advert and is connected to her.
pub async fn hostile_member_hosting(
    a: &TestNode,
    authors: &[&orrery_protocol::SecretKey],
) -> (
    HostileMember,
    tokio::sync::mpsc::Receiver<orrery_federation::Event>,
) {
    hostile_member_with_advert(a, Vec::new(), authors).await
}

async fn hostile_member_with_advert(
    a: &TestNode,
    collections: Vec<orrery_protocol::advert::CollectionSummary>,
    authors: &[&orrery_protocol::SecretKey],
) -> (
    HostileMember,
    tokio::sync::mpsc::Receiver<orrery_federation::Event>,
) {
    let (mallory, events) = hostile_member_with_events(a).await;
    let (_, federation_id) = a
        .handle()
        .status()
        .await
        .expect("status")
        .federation
        .expect("a member");
    mallory
        .fed
        .set_advert(orrery_protocol::advert::NodeAdvert {
            federation: federation_id,
            node: mallory.id,
            seq: 0,
            issued_at: 0,
            expires_at: 0,
            name: "Mallory".into(),
            institution: String::new(),
            contact: String::new(),
            addresses: Vec::new(),
            authors: authors
                .iter()
                .map(|key| {
                    orrery_protocol::Signed::sign(
                        key,
                        orrery_protocol::advert::Hosting {
                            author: orrery_protocol::AuthorId(key.public()),
                            node: mallory.id,
                            federation: federation_id,
                            expires_at: i64::MAX,
                        },
                    )
                    .into_unverified()
                })
                .collect(),
            collections,
            compute: Vec::new(),
            spare_bytes: 0,
            policies: Vec::new(),
            held: Vec::new(),
        })
        .await
        .expect("advert");
    let all = vec![a.handle().clone()];
    eventually(
        &all,
        Duration::from_secs(30),
        "A holds Mallory's advert",
        || async {
            a.handle().status().await.is_ok_and(|s| {
                s.members
                    .iter()
                    .any(|m| m.node == mallory.id && m.advert.is_some() && m.connected)
            })
        },
    )
    .await;
    (mallory, events)
}

/// Runs the Python client `tests/<script>` (of this crate) with `args`, as a researcher's
/// script would run; fails the test with its output unless it succeeds. Returns what it printed.
pub async fn python_client(script: &str, args: &[&str]) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(script);
    let out = tokio::process::Command::new(python())
        .arg(&path)
        .args(args)
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Outsiders that speak the wire protocol directly: bare libp2p swarms with throwaway keys that
/// dial a member and hold their connections open, doing nothing else, until dropped.
pub struct Squatters {
    /// Their peer ids.
    pub peers: Vec<libp2p::PeerId>,
    tasks: tokio::task::JoinSet<()>,
}

impl Squatters {
    /// Connects `n` throwaway identities to `addr` and returns once each holds a connection
    /// (or panics after `timeout`).
    pub async fn connect(n: usize, addr: libp2p::Multiaddr, timeout: Duration) -> Squatters {
        use libp2p::swarm::{SwarmEvent, dummy};
        let mut tasks = tokio::task::JoinSet::new();
        let mut peers = Vec::with_capacity(n);
        let (connected, mut connected_rx) = tokio::sync::mpsc::channel(n.max(1));
        for _ in 0..n {
            let mut swarm = libp2p::SwarmBuilder::with_new_identity()
                .with_tokio()
                .with_tcp(
                    libp2p::tcp::Config::default(),
                    libp2p::noise::Config::new,
                    libp2p::yamux::Config::default,
                )
                .expect("tcp")
                .with_behaviour(|_| dummy::Behaviour)
                .expect("behaviour")
                .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
                .build();
            peers.push(*swarm.local_peer_id());
            swarm.dial(addr.clone()).expect("dial");
            let connected = connected.clone();
            tasks.spawn(async move {
                loop {
                    if let SwarmEvent::ConnectionEstablished { .. } = swarm.select_next_some().await
                    {
                        let _ = connected.try_send(());
                    }
                }
            });
        }
        for _ in 0..n {
            tokio::time::timeout(timeout, connected_rx.recv())
                .await
                .expect("every squatter connects in time");
        }
        Squatters { peers, tasks }
    }
}

impl Drop for Squatters {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

/// The command line's output for `args`, run in this process on `node`'s data directory (what
/// the operator of that node would see).
pub fn cli(node: &TestNode, args: &[&str]) -> String {
    cli_at(node.home.root().to_str().expect("utf-8"), args)
}

/// The command line's output for `args`, run in this process on the data directory `data`.
pub fn cli_at(data: &str, args: &[&str]) -> String {
    let mut argv = vec!["orrery", "--data-dir", data];
    argv.extend_from_slice(args);
    let mut out = Vec::new();
    orrery_node::cli::run(orrery_node::cli::Cli::parse_from(argv), &mut out).expect("runs");
    String::from_utf8(out).expect("utf-8")
}

/// `orrery preservation status --json` at `node`, which exits non-zero while copies are
/// missing (its output is still the JSON); `Null` if it printed none.
pub fn preservation_status(node: &TestNode) -> serde_json::Value {
    let data = node.home.root().display().to_string();
    let argv = [
        "orrery",
        "--data-dir",
        &data,
        "preservation",
        "status",
        "--json",
    ];
    let mut out = Vec::new();
    let _ = orrery_node::cli::run(orrery_node::cli::Cli::parse_from(argv), &mut out);
    serde_json::from_slice(&out).unwrap_or(serde_json::Value::Null)
}

/// The nodes (ids) `node`'s `orrery preservation status` names as holders of its first policy.
pub fn preservation_holders(node: &TestNode) -> Vec<String> {
    preservation_status(node)[0]["holders"]
        .as_array()
        .map(|h| {
            h.iter()
                .filter_map(|h| h["node"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Gives a node a collection of `n` products of one mission around one target.
pub fn publish(
    node: &TestNode,
    collection: &str,
    mission: &str,
    target: &str,
    ra: f64,
    dec: f64,
    n: usize,
) {
    let mut cat = orrery_node::catalog::Catalog::open(&node.home.database()).expect("catalog");
    let products = (0..n).map(|i| orrery_node::catalog::ingest::Described {
        path: format!("{target}-{i}.fits")
            .to_lowercase()
            .replace(' ', "-"),
        size: 2880 * (i as u64 + 1),
        blake3: *blake3::hash(format!("{collection}/{i}").as_bytes()).as_bytes(),
        meta: orrery_node::catalog::meta::ProductMeta {
            mission: Some(mission.into()),
            instrument: Some(format!("{mission} camera")),
            product_type: Some("image".into()),
            target: Some(target.into()),
            ra: Some(ra + i as f64 * 0.01),
            dec: Some(dec),
            date_obs: Some(format!("20{:02}-03-01T00:00:00", 10 + i)),
            exptime: Some(1000.0),
            licence: Some("CC-BY-4.0".into()),
            ..orrery_node::catalog::meta::ProductMeta::default()
        },
    });
    orrery_node::catalog::ingest::add_described(&mut cat, collection, node.dir.path(), products)
        .expect("products");
}

/// Writes `files` under a directory of `node` and catalogues them as `collection`, with their
/// real sizes and BLAKE3.
pub fn publish_files(node: &TestNode, collection: &str, files: &[(&str, Vec<u8>)]) {
    let root = node.dir.path().join(format!("archive-{collection}"));
    std::fs::create_dir_all(&root).expect("mkdir");
    for (name, data) in files {
        std::fs::write(root.join(name), data).expect("write");
    }
    let mut cat = orrery_node::catalog::Catalog::open(&node.home.database()).expect("catalog");
    let products = files
        .iter()
        .map(|(name, data)| orrery_node::catalog::ingest::Described {
            path: (*name).to_owned(),
            size: data.len() as u64,
            blake3: *blake3::hash(data).as_bytes(),
            meta: orrery_node::catalog::meta::ProductMeta {
                mission: Some("XMM-Newton".into()),
                target: Some("Crab Nebula".into()),
                ra: Some(83.63),
                dec: Some(22.01),
                licence: Some("CC-BY-4.0".into()),
                ..Default::default()
            },
        });
    orrery_node::catalog::ingest::add_described(&mut cat, collection, &root, products)
        .expect("products");
}

/// Publishes the two Crab Nebula collections the search tests share: six XMM-Newton products at
/// node 0 and four CAHA products at node 1.
pub fn publish_crabs(nodes: &[TestNode]) {
    publish(
        &nodes[0],
        "xmm-crab",
        "XMM-Newton",
        "Crab Nebula",
        83.63,
        22.01,
        6,
    );
    publish(
        &nodes[1],
        "caha-crab",
        "CAHA",
        "Crab Nebula",
        83.64,
        22.02,
        4,
    );
}

/// Two archive nodes with [`publish_crabs`], once node 0 finds all ten products with every
/// member answering; returns the nodes and node 0's handle.
pub async fn two_archives() -> (Vec<TestNode>, NodeHandle) {
    let nodes = federation(2).await;
    publish_crabs(&nodes);
    let handles: Vec<NodeHandle> = nodes.iter().filter_map(|t| t.node.clone()).collect();
    let asker = nodes[0].handle().clone();
    eventually(
        &handles,
        Duration::from_secs(30),
        "node 1's collection reaches node 0",
        || {
            let asker = asker.clone();
            async move {
                asker
                    .search(
                        orrery_catalog::Query::default(),
                        false,
                        Duration::from_secs(2),
                    )
                    .await
                    .is_ok_and(|r| r.results.total == 10 && r.missing.is_empty())
            }
        },
    )
    .await;
    (nodes, asker)
}
