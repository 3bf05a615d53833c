//! Collaboration benchmark on loopback, written to `BENCHMARKS.md`: 32 simulated authors on 4
//! running nodes type into one notebook of a project carrying the signed `automerge-paper`
//! history, 6 characters per second each; for every keystroke and every other node, the delay
//! from the edit's return at the typist's node until that node holds it; whether the backlog
//! grows; against one typist on the same nodes and an in-memory automerge apply of one keystroke.
//!
//! Run with `cargo bench -p orrery-node --bench typists`. `ORRERY_BENCH_TYPISTS_SECS` shortens
//! the typing (default 300 s); only a full run writes its section of `BENCHMARKS.md`.

#[path = "../../crdt/benches/support/sections.rs"]
mod sections;
#[path = "../../crdt/tests/support/trace_data.rs"]
mod trace_data;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use automerge::ReadDoc;
use automerge::transaction::Transactable;
use orrery_crdt::{CellId, CellKind, NewCell, NotebookId, Project, Role, Session, Visibility};
use orrery_node::config::Config;
use orrery_node::home::Home;
use orrery_node::service::{NodeEvent, NodeHandle};
use orrery_node::store::Store;
use orrery_protocol::{AuthorId, ChangeHash, ProjectId};
use tokio::sync::{broadcast, mpsc, oneshot};

const NODES: usize = 4;
const AUTHORS_PER_NODE: usize = 8;
const CHARS_PER_SEC: u32 = 6;
const FULL_SECS: u64 = 300;
const BASELINE_SECS: u64 = 30;
/// How long the nodes get after the typing stops for what is still on its way.
const DRAIN: Duration = Duration::from_secs(120);
const SECTION: &str = "## Collaboration: 32 typists";

/// What the nodes' own `sync frame received` / `sync message` debug events add up to: frames
/// received (and of those, frames that applied changes), the milliseconds they report for
/// verifying and applying, storing and building the reply, and frames sent.
static FRAMES: AtomicU64 = AtomicU64::new(0);
static FRAMES_APPLYING: AtomicU64 = AtomicU64::new(0);
static VERIFY_US: AtomicU64 = AtomicU64::new(0);
static STORE_US: AtomicU64 = AtomicU64::new(0);
static REPLY_US: AtomicU64 = AtomicU64::new(0);
static SENT: AtomicU64 = AtomicU64::new(0);
/// Frames that brought several changes new to the receiver (applied together), and the most
/// one frame brought.
static FRAMES_BATCHED: AtomicU64 = AtomicU64::new(0);
static LARGEST_BATCH: AtomicU64 = AtomicU64::new(0);

/// Counts the nodes' sync debug events (see the statics above); prints nothing.
struct FrameCounter;

#[derive(Default)]
struct FrameFields {
    message: String,
    changes: u64,
    verify_us: u64,
    store_us: u64,
    reply_us: u64,
}

impl tracing::field::Visit for FrameFields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        }
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        match field.name() {
            "changes" => self.changes = value,
            "verify_us" => self.verify_us = value,
            "store_us" => self.store_us = value,
            "reply_us" => self.reply_us = value,
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for FrameCounter {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut f = FrameFields::default();
        event.record(&mut f);
        match f.message.as_str() {
            "sync frame received" => {
                FRAMES.fetch_add(1, Ordering::Relaxed);
                if f.changes > 0 {
                    FRAMES_APPLYING.fetch_add(1, Ordering::Relaxed);
                }
                if f.changes > 1 {
                    FRAMES_BATCHED.fetch_add(1, Ordering::Relaxed);
                }
                LARGEST_BATCH.fetch_max(f.changes, Ordering::Relaxed);
                VERIFY_US.fetch_add(f.verify_us, Ordering::Relaxed);
                STORE_US.fetch_add(f.store_us, Ordering::Relaxed);
                REPLY_US.fetch_add(f.reply_us, Ordering::Relaxed);
            }
            "sync message" => {
                SENT.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

/// A reading of the frame counters.
#[derive(Clone, Copy, Default)]
struct Frames {
    received: u64,
    applying: u64,
    verify_us: u64,
    store_us: u64,
    reply_us: u64,
    sent: u64,
    batched: u64,
    /// The most changes one frame brought (since the reading the phase started from).
    largest: u64,
}

impl Frames {
    fn now() -> Self {
        Frames {
            received: FRAMES.load(Ordering::Relaxed),
            applying: FRAMES_APPLYING.load(Ordering::Relaxed),
            verify_us: VERIFY_US.load(Ordering::Relaxed),
            store_us: STORE_US.load(Ordering::Relaxed),
            reply_us: REPLY_US.load(Ordering::Relaxed),
            sent: SENT.load(Ordering::Relaxed),
            batched: FRAMES_BATCHED.load(Ordering::Relaxed),
            largest: LARGEST_BATCH.load(Ordering::Relaxed),
        }
    }

    /// A reading to measure a phase from (the largest batch starts again).
    fn start() -> Self {
        LARGEST_BATCH.store(0, Ordering::Relaxed);
        Self::now()
    }

    fn since(self, before: Frames) -> Frames {
        Frames {
            received: self.received - before.received,
            applying: self.applying - before.applying,
            verify_us: self.verify_us - before.verify_us,
            store_us: self.store_us - before.store_us,
            reply_us: self.reply_us - before.reply_us,
            sent: self.sent - before.sent,
            batched: self.batched - before.batched,
            largest: self.largest,
        }
    }
}

/// Where the typists type: the project, its one notebook and one cell per author.
#[derive(Clone)]
struct Target {
    project: ProjectId,
    nb: NotebookId,
    cells: Vec<CellId>,
}

/// One author at one node, typing at the end of its own cell.
#[derive(Clone)]
struct Typist {
    node: usize,
    author: AuthorId,
    cell: usize,
}

/// One keystroke as its typist saw it.
struct Keystroke {
    node: usize,
    /// When the typist pressed the key (the tick it was scheduled for).
    pressed: Instant,
    /// When `NodeHandle::edit` returned: the change is stored and on its way.
    returned: Instant,
    hash: ChangeHash,
}

/// What one receiving node saw.
#[derive(Default)]
struct Watched {
    arrivals: HashMap<ChangeHash, Instant>,
    /// `ProjectChanged` events for the project (local edits included).
    events: usize,
}

/// Everything a typing phase recorded.
struct Phase {
    start: Instant,
    end: Instant,
    planned: usize,
    keys: Vec<Keystroke>,
    watched: Vec<Watched>,
    /// Process CPU time (seconds) sampled once a second: (since start, cumulative).
    cpu: Vec<(Duration, f64)>,
    drained: Instant,
    /// The nodes' sync frames during the phase.
    frames: Frames,
}

/// One delivery: a keystroke at one other node. `None` if it had not arrived by the drain's end.
struct Delivery {
    key: usize,
    delay: Option<Duration>,
    from_press: Option<Duration>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1000.0;
    if v < 1.0 {
        format!("{:.0} µs", v * 1000.0)
    } else if v >= 10_000.0 {
        format!("{:.1} s", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0} ms")
    } else {
        format!("{v:.1} ms")
    }
}

/// Process CPU time (user + system) in seconds, from `/proc/self/stat` (100 ticks a second).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(11) + tick(12)) / 100.0
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    format!("{cores} cores ({cpu})")
}

/// A node's data directory with `AUTHORS_PER_NODE` local authors.
fn node_home(dir: &std::path::Path, i: usize) -> (Home, Vec<AuthorId>) {
    let name = format!("node{i}");
    let home = Home::new(dir.join(&name));
    let mut config = Config::default();
    config.node.name = name.clone();
    config.network = orrery_federation::Config::loopback();
    config.network.advert_interval_secs = 2;
    config.network.advert_ttl_secs = 60;
    config.web.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    orrery_node::setup::init(&home, &config).expect("init");
    let mut store = Store::open(&home.database()).expect("store");
    let authors = (0..AUTHORS_PER_NODE)
        .map(|k| {
            orrery_node::setup::new_author(
                &home,
                &mut store,
                &format!("typist {i}.{k}"),
                None,
                None,
            )
            .expect("author")
        })
        .collect();
    (home, authors)
}

/// The signed `automerge-paper` history in a public project founded by `founder`, every other
/// author an editor, and one empty code cell per author after the paper's cell, in the same
/// notebook.
fn paper_project(founder: &Session, authors: &[AuthorId]) -> (Project, NotebookId, Vec<CellId>) {
    let trace = trace_data::load("automerge-paper");
    let (mut p, _) = Project::create(founder, "typists", Visibility::Public).expect("create");
    let nb = p.add_notebook(founder, "paper").expect("notebook");
    let paper = p
        .insert_cell(founder, &nb, 0, NewCell::new(CellKind::Markdown, ""))
        .expect("cell");
    let text = p.source_obj(&nb, &paper).expect("text");
    for (i, txn) in trace.txns.iter().enumerate() {
        for patch in &txn.patches {
            p.splice_text(founder, &text, patch.0, patch.1, &patch.2)
                .expect("splice");
        }
        if i % 256 == 255 {
            p.seal(founder);
        }
    }
    for a in authors.iter().filter(|a| **a != founder.author()) {
        p.set_member(founder, *a, Role::Editor).expect("member");
    }
    let cells = (0..authors.len())
        .map(|i| {
            p.insert_cell(founder, &nb, 1 + i, NewCell::new(CellKind::Code, ""))
                .expect("cell")
        })
        .collect();
    p.seal(founder);
    (p, nb, cells)
}

/// Median time automerge takes to apply one keystroke, made on a fork, to a replica of the same
/// document (no verification, no store, no network): the floor under every delivery.
fn in_memory_apply(
    p: &Project,
    nb: &NotebookId,
    cell: &CellId,
    rounds: usize,
    loaded: bool,
) -> Duration {
    let text = p.source_obj(nb, cell).expect("text");
    let mut replica = if loaded {
        automerge::Automerge::load(&p.save()).expect("load")
    } else {
        p.doc().clone()
    };
    let mut writer = p.doc().fork();
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let mut tx = writer.transaction();
        let end = tx.length(&text);
        tx.splice_text(&text, end, 0, "x").expect("splice");
        tx.commit();
        let change = writer.get_last_local_change().expect("change");
        let t0 = Instant::now();
        replica.apply_changes([change]).expect("apply");
        times.push(t0.elapsed());
    }
    times.sort();
    percentile(&times, 0.5)
}

/// Automerge's own sync protocol, in memory, on two up-to-date forks of a project's document.
#[derive(Clone, Copy, Default)]
struct SyncCost {
    /// Changes in the document.
    changes: usize,
    /// Median time to bring the other fork one keystroke further (messages encoded and
    /// decoded, rounds until both sides are quiet).
    exchange: Duration,
    /// Median time of one `receive_sync_message` call in those exchanges.
    receive: Duration,
    /// Messages received per exchange.
    messages: usize,
}

/// Measures [`SyncCost`] on `p`: what the protocol costs before any verification, storage or
/// network, on a document of this size.
fn sync_cost(p: &Project, nb: &NotebookId, cell: &CellId, rounds: usize) -> SyncCost {
    use automerge::sync::{Message, State, SyncDoc};
    let text = p.source_obj(nb, cell).expect("text");
    let (mut a, mut b) = (p.doc().fork(), p.doc().fork());
    let (mut sa, mut sb) = (State::new(), State::new());
    let mut receives = Vec::new();
    let mut exchange = |a: &mut automerge::Automerge,
                        b: &mut automerge::Automerge,
                        receives: &mut Vec<Duration>| loop {
        let mut quiet = true;
        if let Some(m) = a.generate_sync_message(&mut sa) {
            let m = Message::decode(&m.encode()).expect("decode");
            let t0 = Instant::now();
            b.receive_sync_message(&mut sb, m).expect("receive");
            receives.push(t0.elapsed());
            quiet = false;
        }
        if let Some(m) = b.generate_sync_message(&mut sb) {
            let m = Message::decode(&m.encode()).expect("decode");
            let t0 = Instant::now();
            a.receive_sync_message(&mut sa, m).expect("receive");
            receives.push(t0.elapsed());
            quiet = false;
        }
        if quiet {
            break;
        }
    };
    exchange(&mut a, &mut b, &mut Vec::new());
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let mut tx = a.transaction();
        let end = tx.length(&text);
        tx.splice_text(&text, end, 0, "x").expect("splice");
        tx.commit();
        let t0 = Instant::now();
        exchange(&mut a, &mut b, &mut receives);
        times.push(t0.elapsed());
        assert_eq!(a.get_heads(), b.get_heads(), "in sync");
    }
    times.sort();
    let messages = receives.len() / rounds.max(1);
    receives.sort();
    SyncCost {
        changes: a.get_changes_meta(&[]).len(),
        exchange: percentile(&times, 0.5),
        receive: percentile(&receives, 0.5),
        messages,
    }
}

/// Waits until `check` holds, re-checking after any event of any node; panics after `timeout`.
async fn until<F, Fut>(nodes: &[NodeHandle], timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let (tx, mut rx) = mpsc::channel::<()>(64);
    let mut forwarders = tokio::task::JoinSet::new();
    for n in nodes {
        let mut events = n.subscribe();
        let tx = tx.clone();
        forwarders.spawn(async move {
            loop {
                match events.recv().await {
                    Err(broadcast::error::RecvError::Closed) => break,
                    _ if tx.try_send(()).is_err() && tx.is_closed() => break,
                    _ => {}
                }
            }
        });
    }
    drop(tx);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            break;
        }
        // Adverts are re-published every 2 s, so some event always comes.
        if tokio::time::timeout_at(deadline, rx.recv()).await.is_err() {
            panic!("timed out after {timeout:?} waiting until {what}");
        }
    }
    forwarders.abort_all();
}

/// Forms one federation of the running nodes and waits until each knows every other's advert
/// and is connected to it.
async fn federate(nodes: &[NodeHandle]) {
    nodes[0].create_federation("typists").await.expect("found");
    for n in &nodes[1..] {
        let token = nodes[0]
            .invite(Some(n.id()), None, 3600)
            .await
            .expect("invite");
        n.join(token).await.expect("join");
    }
    let all = nodes.to_vec();
    until(
        nodes,
        Duration::from_secs(60),
        "every node knows every advert",
        || {
            let all = all.clone();
            async move {
                for h in &all {
                    let Ok(s) = h.status().await else {
                        return false;
                    };
                    let others = s.members.iter().filter(|m| m.node != h.id());
                    if s.members.len() != all.len()
                        || others.clone().any(|m| m.advert.is_none() || !m.connected)
                    {
                        return false;
                    }
                }
                true
            }
        },
    )
    .await;
}

/// Waits until every node holds `project` at exactly `heads`.
async fn hold_all(nodes: &[NodeHandle], project: ProjectId, heads: Vec<ChangeHash>) {
    let all = nodes.to_vec();
    until(
        nodes,
        Duration::from_secs(900),
        "every node holds the whole project",
        || {
            let (all, heads) = (all.clone(), heads.clone());
            async move {
                for h in &all {
                    let held = h.read(project, |p| p.map(Project::heads)).await;
                    if held.ok().flatten().as_ref() != Some(&heads) {
                        return false;
                    }
                }
                true
            }
        },
    )
    .await;
}

/// One typist: a character every 1/6 s from `first`, at the end of its own cell, until `end`
/// (a tick missed while an edit was waiting is typed at once, so the offered load stays the
/// same); each keystroke is announced to the other nodes' watchers.
async fn type_until(
    node: NodeHandle,
    target: Target,
    who: Typist,
    first: tokio::time::Instant,
    end: tokio::time::Instant,
    watchers: Vec<mpsc::Sender<ChangeHash>>,
) -> Vec<Keystroke> {
    let (nb, cell) = (target.nb.clone(), target.cells[who.cell].clone());
    let (nb2, cell2) = (nb.clone(), cell.clone());
    let mut pos = node
        .read(target.project, move |p| {
            p.and_then(|p| p.cell(&nb2, &cell2).ok())
                .map_or(0, |c| c.source.chars().count())
        })
        .await
        .expect("read");
    let mut every = tokio::time::interval_at(first, Duration::from_secs(1) / CHARS_PER_SEC);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut keys = Vec::new();
    loop {
        let pressed = every.tick().await;
        // A typist stuck far behind stops a minute after the end; what it did not type shows
        // as keystrokes missing from the plan.
        if pressed >= end || tokio::time::Instant::now() > end + Duration::from_secs(60) {
            break;
        }
        let (tx, rx) = oneshot::channel();
        let (nb, cell) = (nb.clone(), cell.clone());
        let ch = char::from(b'a' + (pos % 26) as u8).to_string();
        node.edit(target.project, who.author, move |p, s| {
            p.splice_source(s, &nb, &cell, pos, 0, &ch)?;
            // A local change depends on every head, so it is the only head now.
            let _ = tx.send(p.heads());
            Ok(())
        })
        .await
        .expect("edit");
        let returned = Instant::now();
        let heads = rx.await.expect("the edit ran");
        assert_eq!(heads.len(), 1, "a local change is the only head");
        pos += 1;
        for w in &watchers {
            let _ = w.send(heads[0]).await;
        }
        keys.push(Keystroke {
            node: who.node,
            pressed: pressed.into_std(),
            returned,
            hash: heads[0],
        });
    }
    keys
}

/// Watches one node: after each `ProjectChanged` (or newly announced keystroke), asks the node
/// which of the keystrokes still outstanding there it now holds. A keystroke's arrival is the
/// moment the node ran that question and held it (it was not there at the question before).
async fn watch(
    node: NodeHandle,
    project: ProjectId,
    mut events: broadcast::Receiver<NodeEvent>,
    mut announced: mpsc::Receiver<ChangeHash>,
    give_up: tokio::time::Instant,
) -> Watched {
    let mut seen = Watched::default();
    let mut pending: HashSet<ChangeHash> = HashSet::new();
    let mut open = true;
    loop {
        let mut dirty = false;
        tokio::select! {
            biased;
            e = events.recv() => match e {
                Ok(NodeEvent::ProjectChanged { project: p, .. }) if p == project => {
                    seen.events += 1;
                    dirty = true;
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => dirty = true,
                Err(broadcast::error::RecvError::Closed) => break,
            },
            k = announced.recv(), if open => match k {
                Some(h) => {
                    pending.insert(h);
                    dirty = true;
                }
                None => open = false,
            },
            _ = tokio::time::sleep_until(give_up) => break,
        }
        // Take whatever else is waiting, so that one question covers it all.
        loop {
            match events.try_recv() {
                Ok(NodeEvent::ProjectChanged { project: p, .. }) if p == project => {
                    seen.events += 1;
                    dirty = true;
                }
                Ok(_) => {}
                Err(broadcast::error::TryRecvError::Lagged(_)) => dirty = true,
                Err(_) => break,
            }
        }
        while let Ok(h) = announced.try_recv() {
            pending.insert(h);
            dirty = true;
        }
        if dirty && !pending.is_empty() {
            let ask: Vec<ChangeHash> = pending.iter().copied().collect();
            let (at, held) = node
                .read(project, move |p| {
                    let at = Instant::now();
                    let held: Vec<ChangeHash> = p
                        .map(|p| ask.into_iter().filter(|h| p.has_change(h)).collect())
                        .unwrap_or_default();
                    (at, held)
                })
                .await
                .expect("read");
            for h in held {
                pending.remove(&h);
                seen.arrivals.insert(h, at);
            }
        }
        if !open && pending.is_empty() {
            break;
        }
    }
    seen
}

/// Runs one typing phase: `typists` type for `secs`; every node is watched until every
/// keystroke has arrived everywhere or `DRAIN` has passed after the typing.
async fn run_phase(nodes: &[NodeHandle], target: &Target, typists: &[Typist], secs: u64) -> Phase {
    let frames_before = Frames::start();
    let start = tokio::time::Instant::now() + Duration::from_millis(500);
    let end = start + Duration::from_secs(secs);
    let give_up = end + Duration::from_secs(60) + DRAIN;
    let mut senders = Vec::new();
    let mut watchers = Vec::new();
    for n in nodes {
        let (tx, rx) = mpsc::channel(1 << 16);
        senders.push(tx);
        watchers.push(tokio::spawn(watch(
            n.clone(),
            target.project,
            n.subscribe(),
            rx,
            give_up,
        )));
    }
    let (stop, mut stopped) = oneshot::channel::<()>();
    let cpu_sampler = tokio::spawn(async move {
        let mut every = tokio::time::interval_at(start, Duration::from_secs(1));
        let mut samples = Vec::new();
        loop {
            tokio::select! {
                t = every.tick() => samples.push((t - start, cpu_secs())),
                _ = &mut stopped => break,
            }
        }
        samples.push((start.elapsed(), cpu_secs()));
        samples
    });
    let period = Duration::from_secs(1) / CHARS_PER_SEC;
    let mut tasks = Vec::new();
    let mut planned = 0;
    for (i, who) in typists.iter().enumerate() {
        // Jittered starts spread the typists evenly over one keystroke period.
        let first = start + period * i as u32 / typists.len() as u32;
        planned += (end - first).as_nanos().div_ceil(period.as_nanos()) as usize;
        let others: Vec<_> = (0..nodes.len())
            .filter(|j| *j != who.node)
            .map(|j| senders[j].clone())
            .collect();
        tasks.push(tokio::spawn(type_until(
            nodes[who.node].clone(),
            target.clone(),
            who.clone(),
            first,
            end,
            others,
        )));
    }
    drop(senders);
    let mut keys = Vec::new();
    for t in tasks {
        keys.extend(t.await.expect("typist"));
    }
    let mut watched = Vec::new();
    for w in watchers {
        watched.push(w.await.expect("watcher"));
    }
    let drained = Instant::now();
    let _ = stop.send(());
    let cpu = cpu_sampler.await.unwrap_or_default();
    Phase {
        start: start.into_std(),
        end: end.into_std(),
        planned,
        keys,
        watched,
        cpu,
        drained,
        frames: Frames::now().since(frames_before),
    }
}

impl Phase {
    fn deliveries(&self) -> Vec<Delivery> {
        let mut out = Vec::new();
        for (i, k) in self.keys.iter().enumerate() {
            for (n, w) in self.watched.iter().enumerate() {
                if n == k.node {
                    continue;
                }
                let at = w.arrivals.get(&k.hash);
                out.push(Delivery {
                    key: i,
                    delay: at.map(|a| a.saturating_duration_since(k.returned)),
                    from_press: at.map(|a| a.saturating_duration_since(k.pressed)),
                });
            }
        }
        out
    }

    /// When a keystroke had arrived at every other node, if it did.
    fn everywhere(&self) -> Vec<Option<Instant>> {
        self.keys
            .iter()
            .map(|k| {
                let mut last = k.returned;
                for (n, w) in self.watched.iter().enumerate() {
                    if n != k.node {
                        last = last.max(*w.arrivals.get(&k.hash)?);
                    }
                }
                Some(last)
            })
            .collect()
    }

    /// Each second of the typing: keystrokes typed (edit returned) but not yet at every other
    /// node, and keystrokes pressed whose edit had not returned yet.
    fn backlog(&self) -> Vec<(usize, usize)> {
        let everywhere = self.everywhere();
        let secs = (self.end - self.start).as_secs();
        (1..=secs)
            .map(|s| {
                let t = self.start + Duration::from_secs(s);
                let outstanding = self
                    .keys
                    .iter()
                    .zip(&everywhere)
                    .filter(|(k, e)| k.returned <= t && e.is_none_or(|e| e > t))
                    .count();
                let queued = self
                    .keys
                    .iter()
                    .filter(|k| k.pressed <= t && k.returned > t)
                    .count();
                (outstanding, queued)
            })
            .collect()
    }

    fn cpu_between(&self, from: Duration, to: Duration) -> f64 {
        let at = |d: Duration| {
            self.cpu
                .iter()
                .find(|(t, _)| *t >= d)
                .or(self.cpu.last())
                .map_or(0.0, |(_, c)| *c)
        };
        at(to) - at(from)
    }
}

/// Delays of the arrived deliveries, sorted; the missing ones counted apart.
fn sorted_delays(ds: &[&Delivery], from_press: bool) -> (Vec<Duration>, usize) {
    let mut v: Vec<Duration> = ds
        .iter()
        .filter_map(|d| if from_press { d.from_press } else { d.delay })
        .collect();
    v.sort();
    let missing = ds.len() - v.len();
    (v, missing)
}

struct Summary {
    p50: Duration,
    p95: Duration,
    p99: Duration,
    max: Duration,
    count: usize,
    missing: usize,
}

/// Percentiles with every missing delivery counted as slower than any arrived one.
fn summarise(ds: &[&Delivery], from_press: bool) -> Summary {
    let (v, missing) = sorted_delays(ds, from_press);
    let total = v.len() + missing;
    let at = |p: f64| {
        let i = ((total as f64 - 1.0) * p).round() as usize;
        v.get(i).copied().unwrap_or(Duration::MAX)
    };
    Summary {
        p50: at(0.5),
        p95: at(0.95),
        p99: at(0.99),
        max: if missing > 0 {
            Duration::MAX
        } else {
            v.last().copied().unwrap_or_default()
        },
        count: total,
        missing,
    }
}

fn show(d: Duration) -> String {
    if d == Duration::MAX {
        "not arrived".into()
    } else {
        ms(d)
    }
}

/// Least-squares slope of `ys` over their index (per second), in units per minute.
fn slope_per_min(ys: &[f64]) -> f64 {
    let n = ys.len() as f64;
    if ys.len() < 2 {
        return 0.0;
    }
    let mx = (n - 1.0) / 2.0;
    let my = ys.iter().sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (i, y) in ys.iter().enumerate() {
        num += (i as f64 - mx) * (y - my);
        den += (i as f64 - mx).powi(2);
    }
    num / den * 60.0
}

/// Per-window figures of the 32-typist phase and the growth verdict.
struct Windows {
    table: String,
    first_p95: Duration,
    last_p95: Duration,
    first_outstanding: f64,
    last_outstanding: f64,
    max_outstanding: usize,
    max_queued: usize,
    slope: f64,
    grows: bool,
}

fn windows(phase: &Phase, deliveries: &[Delivery]) -> Windows {
    let secs = (phase.end - phase.start).as_secs().max(1);
    let width = if secs >= 120 { 60 } else { secs.div_ceil(4) };
    let count = secs.div_ceil(width) as usize;
    let backlog = phase.backlog();
    let mut table = String::from(
        "| window | keystrokes | p50 | p95 | max | outstanding, mean / max | waiting at the typists, max | CPU |\n|---|---|---|---|---|---|---|---|\n",
    );
    let mut p95s = Vec::new();
    let mut means = Vec::new();
    for w in 0..count {
        let (lo, hi) = (w as u64 * width, ((w as u64 + 1) * width).min(secs));
        let in_window = |t: Instant| {
            let s = t.saturating_duration_since(phase.start).as_secs();
            // The last window also takes what returned after the typing's end.
            s >= lo && (s < hi || w + 1 == count)
        };
        let ds: Vec<&Delivery> = deliveries
            .iter()
            .filter(|d| in_window(phase.keys[d.key].returned))
            .collect();
        let keys = phase.keys.iter().filter(|k| in_window(k.returned)).count();
        let s = summarise(&ds, false);
        let slice = &backlog[lo as usize..hi as usize];
        let mean = slice.iter().map(|b| b.0 as f64).sum::<f64>() / slice.len().max(1) as f64;
        let max = slice.iter().map(|b| b.0).max().unwrap_or(0);
        let queued = slice.iter().map(|b| b.1).max().unwrap_or(0);
        let cpu = phase.cpu_between(Duration::from_secs(lo), Duration::from_secs(hi))
            / (hi - lo).max(1) as f64;
        table.push_str(&format!(
            "| {lo}–{hi} s | {keys} | {} | {} | {} | {mean:.0} / {max} | {queued} | {:.0} % of a core |\n",
            show(s.p50),
            show(s.p95),
            show(s.max),
            cpu * 100.0
        ));
        p95s.push(s.p95);
        means.push(mean);
    }
    let ys: Vec<f64> = backlog.iter().map(|b| b.0 as f64).collect();
    let slope = slope_per_min(&ys);
    let (first_p95, last_p95) = (p95s[0], p95s[count - 1]);
    let (first_outstanding, last_outstanding) = (means[0], means[count - 1]);
    // Growth: the last window's p95 or mean outstanding count more than a quarter above the
    // first's (plus a margin for tiny figures).
    let grows = last_p95 > first_p95.mul_f64(1.25) + Duration::from_millis(20)
        || last_outstanding > first_outstanding * 1.25 + 10.0;
    Windows {
        table,
        first_p95,
        last_p95,
        first_outstanding,
        last_outstanding,
        max_outstanding: backlog.iter().map(|b| b.0).max().unwrap_or(0),
        max_queued: backlog.iter().map(|b| b.1).max().unwrap_or(0),
        slope,
        grows,
    }
}

fn edit_times(phase: &Phase) -> (Duration, Duration, Duration) {
    let mut v: Vec<Duration> = phase
        .keys
        .iter()
        .map(|k| k.returned.saturating_duration_since(k.pressed))
        .collect();
    v.sort();
    (
        percentile(&v, 0.5),
        percentile(&v, 0.95),
        v.last().copied().unwrap_or_default(),
    )
}

/// Remote applies per receiving node: its `ProjectChanged` events minus its own edits.
fn applies(phase: &Phase) -> Vec<usize> {
    phase
        .watched
        .iter()
        .enumerate()
        .map(|(n, w)| {
            let own = phase.keys.iter().filter(|k| k.node == n).count();
            w.events.saturating_sub(own)
        })
        .collect()
}

struct Setup {
    _dir: tempfile::TempDir,
    nodes: Vec<NodeHandle>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    target: Target,
    typists: Vec<Typist>,
    changes: usize,
    apply_one: Duration,
    apply_loaded: Duration,
    sync_one: SyncCost,
    built: Duration,
    spread: Duration,
}

async fn set_up() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut homes = Vec::new();
    let mut typists = Vec::new();
    for i in 0..NODES {
        let (home, authors) = node_home(dir.path(), i);
        for author in authors {
            let cell = typists.len();
            typists.push(Typist {
                node: i,
                author,
                cell,
            });
        }
        homes.push(home);
    }
    let founder_id = typists[0].author;
    let founder =
        Session::new(orrery_node::home::read_key(&homes[0].author_key(&founder_id)).expect("key"))
            .expect("session");
    let all: Vec<AuthorId> = typists.iter().map(|t| t.author).collect();
    eprintln!("building the signed automerge-paper history…");
    let t0 = Instant::now();
    let (project, nb, cells) = tokio::task::block_in_place(|| paper_project(&founder, &all));
    let built = t0.elapsed();
    let apply_one = in_memory_apply(&project, &nb, &cells[0], 21, false);
    let apply_loaded = in_memory_apply(&project, &nb, &cells[0], 21, true);
    let sync_one = sync_cost(&project, &nb, &cells[0], 21);
    eprintln!(
        "built in {} ({} changes); in memory, one keystroke: apply {} (into a loaded replica: {}), automerge sync {} ({} messages, {} a receive)",
        ms(built),
        project.change_count(),
        ms(apply_one),
        ms(apply_loaded),
        ms(sync_one.exchange),
        sync_one.messages,
        ms(sync_one.receive),
    );
    {
        let mut store = Store::open(&homes[0].database()).expect("store");
        store
            .create_project(&project, &project.history())
            .expect("store project");
        store.compact(&project).expect("compact");
    }
    let mut nodes = Vec::new();
    let mut tasks = Vec::new();
    for home in homes {
        let (h, t) = orrery_node::service::start(home).await.expect("start");
        nodes.push(h);
        tasks.push(t);
    }
    let t0 = Instant::now();
    federate(&nodes).await;
    hold_all(&nodes, project.id(), project.heads()).await;
    let spread = t0.elapsed();
    eprintln!("every node holds the project after {}", ms(spread));
    Setup {
        _dir: dir,
        nodes,
        tasks,
        target: Target {
            project: project.id(),
            nb,
            cells,
        },
        typists,
        changes: project.change_count(),
        apply_one,
        apply_loaded,
        sync_one,
        built,
        spread,
    }
}

fn main() {
    let secs: u64 = std::env::var("ORRERY_BENCH_TYPISTS_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(FULL_SECS);
    let base_secs = BASELINE_SECS.min(secs);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    {
        use tracing_subscriber::Layer;
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        let shown = tracing_subscriber::EnvFilter::try_from_env("ORRERY_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let counted = tracing_subscriber::filter::Targets::new()
            .with_target("orrery_node::service", tracing::Level::DEBUG);
        let _ = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_filter(shown),
            )
            .with(FrameCounter.with_filter(counted))
            .try_init();
    }
    let revision = revision();
    let cpu0 = cpu_secs();
    let setup = runtime.block_on(set_up());
    runtime.block_on(quiet(Duration::from_secs(300)));
    let project = setup.target.project;
    let (nb, cell) = (setup.target.nb.clone(), setup.target.cells[0].clone());
    let cost_read = move |p: Option<&Project>| p.map(|p| sync_cost(p, &nb, &cell, 11));
    let cost_at_first = runtime
        .block_on(setup.nodes[1].read(project, cost_read.clone()))
        .expect("read")
        .unwrap_or_default();
    eprintln!("baseline: one typist for {base_secs} s…");
    let base = runtime.block_on(run_phase(
        &setup.nodes,
        &setup.target,
        &setup.typists[..1],
        base_secs,
    ));
    runtime.block_on(hold_all_now(&setup));
    runtime.block_on(quiet(Duration::from_secs(300)));
    eprintln!("{} typists for {secs} s…", NODES * AUTHORS_PER_NODE);
    let cpu_before = cpu_secs();
    let main = runtime.block_on(run_phase(&setup.nodes, &setup.target, &setup.typists, secs));
    let cpu_typing = cpu_secs() - cpu_before;
    // The per-frame cost again, on the same replica as the run left it.
    let cost_at_end = runtime
        .block_on(setup.nodes[1].read(project, cost_read))
        .expect("read")
        .unwrap_or_default();
    for n in &setup.nodes {
        n.shutdown();
    }
    for t in &setup.tasks {
        t.abort();
    }
    let run = Run {
        revision,
        secs,
        cpu_typing,
        cpu_all: cpu_secs() - cpu0,
        cost_at_first,
        cost_at_end,
        setup,
        base,
        main,
    };
    let out = report(&run);
    println!("{out}");
    if secs == FULL_SECS {
        sections::write_section(env!("CARGO_MANIFEST_DIR"), SECTION, &out);
    } else {
        eprintln!("a {secs} s run: BENCHMARKS.md is written only by the full {FULL_SECS} s run");
    }
}

/// Waits until no node has received a sync frame for two seconds (after the first sync the
/// nodes go on comparing the history among themselves for a while), at most `timeout`.
async fn quiet(timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut last = FRAMES.load(Ordering::Relaxed);
    let mut still = 0;
    while still < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = FRAMES.load(Ordering::Relaxed);
        still = if now == last { still + 1 } else { 0 };
        last = now;
    }
}

/// Waits (after the baseline) until every node holds the same heads again.
async fn hold_all_now(setup: &Setup) {
    let heads = setup.nodes[0]
        .read(setup.target.project, |p| p.map(Project::heads))
        .await
        .expect("read")
        .expect("held");
    hold_all(&setup.nodes, setup.target.project, heads).await;
}

/// Everything one run measured.
struct Run {
    /// What was measured (see [`revision`]).
    revision: String,
    setup: Setup,
    base: Phase,
    main: Phase,
    secs: u64,
    cpu_typing: f64,
    cpu_all: f64,
    /// Automerge's sync protocol on node 1's replica before the typing.
    cost_at_first: SyncCost,
    /// The same after the run.
    cost_at_end: SyncCost,
}

fn report(run: &Run) -> String {
    let Run {
        setup,
        base,
        main,
        secs,
        cpu_typing,
        cpu_all,
        ..
    } = run;
    let (secs, cpu_typing, cpu_all) = (*secs, *cpu_typing, *cpu_all);
    let base_d = base.deliveries();
    let main_d = main.deliveries();
    let b = summarise(&base_d.iter().collect::<Vec<_>>(), false);
    let m = summarise(&main_d.iter().collect::<Vec<_>>(), false);
    let mp = summarise(&main_d.iter().collect::<Vec<_>>(), true);
    let w = windows(main, &main_d);
    let (e50, e95, emax) = edit_times(main);
    let typists = NODES * AUTHORS_PER_NODE;
    let applies = applies(main);
    let arrived_remote = m.count - m.missing;
    let met = m.p95 < Duration::from_millis(200) && m.missing == 0 && !w.grows;
    let ratio = |a: Duration, b: Duration| {
        if a == Duration::MAX || b.is_zero() {
            "∞".to_string()
        } else {
            format!("{:.1}×", a.as_secs_f64() / b.as_secs_f64())
        }
    };
    let drain = main.drained.saturating_duration_since(main.end);
    let mut out = String::new();
    out.push_str(&format!(
        "Command: `cargo bench -p orrery-node --bench typists` (release build, one run of {secs} s, on {}). Machine: {}.\n\n",
        run.revision,
        machine()
    ));
    out.push_str(&format!(
        "{NODES} nodes started in one process (`service::start`, libp2p on 127.0.0.1, 2 worker threads, each node's SQLite in a temporary directory on ext4, `synchronous = FULL`), one federation. One public project founded at node 0 holds the signed `automerge-paper` history ({} changes; built in {}, stored at node 0, then replicated: every node held it {} after the federation formed) and, in the paper's notebook, one empty code cell per author. {AUTHORS_PER_NODE} authors per node, all {typists} editors; each types one character every 1/{CHARS_PER_SEC} s (a tokio interval, starts spread over one period; a missed tick is typed at once) at the end of its own cell with `NodeHandle::edit` → `Project::splice_source`, so every keystroke is one signed, durably stored change. Each other node is watched: after every `ProjectChanged` it is asked (`Project::has_change`) which outstanding keystrokes it now holds; a delivery's delay runs from the edit's return at the typist's node to that question's answer. Typing into the same cell at different places would add merge work inside one text object; one cell per author keeps the notebook shared but the text objects apart.\n\n",
        setup.changes,
        ms(setup.built),
        ms(setup.spread),
    ));
    out.push_str("| what | keystrokes | deliveries | p50 | p95 | p99 | max | ratio (p50 / p95) | goal |\n|---|---|---|---|---|---|---|---|---|\n");
    out.push_str(&format!(
        "| context: in memory, automerge `apply_changes` of one keystroke into a replica of the same document (median of 21; into a replica loaded from `save()`: {}) | | | {} | | | | | |\n",
        ms(setup.apply_loaded),
        ms(setup.apply_one)
    ));
    out.push_str(&format!(
        "| context: in memory, automerge's sync protocol bringing an up-to-date replica of the same document one keystroke further (median of 21, until both sides are quiet: {} messages, {} a `receive_sync_message`) | | | {} | | | | | |\n",
        setup.sync_one.messages,
        ms(setup.sync_one.receive),
        ms(setup.sync_one.exchange)
    ));
    out.push_str(&format!(
        "| baseline: 1 typist at node 0 for {} s, the same 4 nodes | {} | {} | {} | {} | {} | {} | 1.0× / 1.0× | |\n",
        (base.end - base.start).as_secs(),
        base.keys.len(),
        b.count,
        show(b.p50),
        show(b.p95),
        show(b.p99),
        show(b.max),
    ));
    out.push_str(&format!(
        "| {typists} typists on {NODES} nodes for {secs} s, edit return → arrival | {} of {} planned | {} | {} | {} | {} | {} | {} / {} | p95 < 200 ms and no growth: {} |\n",
        main.keys.len(),
        main.planned,
        m.count,
        show(m.p50),
        show(m.p95),
        show(m.p99),
        show(m.max),
        ratio(m.p50, b.p50),
        ratio(m.p95, b.p95),
        if met { "met" } else { "**missed**" }
    ));
    out.push_str(&format!(
        "| the same, from the key press (the tick) → arrival | | | {} | {} | {} | {} | | |\n",
        show(mp.p50),
        show(mp.p95),
        show(mp.p99),
        show(mp.max),
    ));
    out.push_str(&format!(
        "| the same, key press → edit returned at the typist's node | | | {} | {} | | {} | | |\n",
        ms(e50),
        ms(e95),
        ms(emax),
    ));
    let (b50, b95, bmax) = edit_times(base);
    out.push_str(&format!(
        "| 1 typist, key press → edit returned | | | {} | {} | | {} | | |\n\n",
        ms(b50),
        ms(b95),
        ms(bmax),
    ));
    out.push_str(&format!(
        "{} of {} deliveries arrived ({} missing {} after the typing stopped); the nodes applied remote changes in {} batches at the 4 nodes (`ProjectChanged` minus own edits: {}), {:.1} keystrokes a batch on average.\n\n",
        arrived_remote,
        m.count,
        m.missing,
        ms(drain),
        applies.iter().sum::<usize>(),
        applies.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        arrived_remote as f64 / applies.iter().sum::<usize>().max(1) as f64,
    ));
    out.push_str(&format!(
        "Backlog over the run (keystrokes typed but not yet at every other node, sampled every second; \"waiting at the typists\": pressed but the edit not yet returned):\n\n{}\n",
        w.table
    ));
    out.push_str(&format!(
        "Backlog growth: p95 {} in the first window, {} in the last; outstanding {:.0} on average in the first window, {:.0} in the last, at most {}; least-squares trend {:+.1} keystrokes a minute; at most {} keystrokes waiting at the typists — {}.\n\n",
        show(w.first_p95),
        show(w.last_p95),
        w.first_outstanding,
        w.last_outstanding,
        w.max_outstanding,
        w.slope,
        w.max_queued,
        if w.grows { "**the backlog grows**" } else { "no growth" }
    ));
    out.push_str(&format!(
        "CPU time of the process (`/proc/self/stat`, user + system): {:.1} s during the {typists}-typist phase ({:.0} % of the 2 cores over {}), {:.1} s for the whole run.\n",
        cpu_typing,
        cpu_typing / (main.drained - main.start).as_secs_f64() / 2.0 * 100.0,
        ms(main.drained - main.start),
        cpu_all,
    ));
    out.push_str(&where_the_time_goes(run));
    out
}

/// The nodes' own per-frame timing added up, the per-frame cost found by profiling measured on
/// this history, and what the profile showed.
fn where_the_time_goes(run: &Run) -> String {
    let mut out = String::from(
        "\nWhere the time goes. The nodes' own timing of every sync frame they receive (the `sync frame received` debug event: verifying and applying with `Project::receive_sync_message`, storing, building the reply), added up by this benchmark:\n\n| phase | keystrokes | frames received (sent) | frames a keystroke | frames with changes new to the receiver | verify + apply a frame | store a frame | reply a frame |\n|---|---|---|---|---|---|---|---|\n",
    );
    for (name, phase) in [("1 typist", &run.base), ("32 typists", &run.main)] {
        let f = phase.frames;
        let per = |v: u64| format!("{:.2} ms", v as f64 / 1000.0 / f.received.max(1) as f64);
        out.push_str(&format!(
            "| {name} | {} | {} ({}) | {:.2} | {} | {} | {} | {} |\n",
            phase.keys.len(),
            f.received,
            f.sent,
            f.received as f64 / phase.keys.len().max(1) as f64,
            f.applying,
            per(f.verify_us),
            per(f.store_us),
            per(f.reply_us),
        ));
    }
    let (a, b) = (run.cost_at_first, run.cost_at_end);
    out.push_str(&format!(
        "\nAutomerge's own sync protocol on node 1's replica (two forks of it, in memory, nodes idle; one keystroke, median of 11): {} a `receive_sync_message` ({} for the whole exchange of {} messages) at {} changes before the typing, {} ({}) at {} changes after it: {:.1}× the time for {:+.0} % changes.\n",
        ms(a.receive),
        ms(a.exchange),
        a.messages,
        a.changes,
        ms(b.receive),
        ms(b.exchange),
        b.changes,
        b.receive.as_secs_f64() / a.receive.as_secs_f64().max(1e-9),
        (b.changes as f64 / a.changes.max(1) as f64 - 1.0) * 100.0,
    ));
    let m = run.main.frames;
    out.push_str(&format!(
        "\nFrames of the 32-typist phase that brought several keystrokes at once (verified and applied as one batch, one `apply_changes`): {} of {}; the most one frame brought: {} changes. A node keeps one frame in flight per peer and project, and what is typed meanwhile goes in the next frame, so batches grow with the load instead of the frames.\n",
        m.batched,
        m.applying,
        m.largest,
    ));
    out.push_str(LIVE_MODE);
    out
}

/// Why the delays do not grow with the history.
const LIVE_MODE: &str = "\nThe nodes do not run automerge's sync protocol for live traffic: its `receive_sync_message` walks every ancestor of the peer's heads on every message (`Automerge::filter_changes` → `ChangeGraph::remove_ancestors`), the per-receive figure above, which grows with the history. Each node instead remembers, per peer, heads the peer is known to hold and sends the changes that are not their ancestors (`automerge::Automerge::get_changes_meta`, in the number of new changes), which the receiver verifies and applies itself (`crdt/src/sync.rs`, live mode). Automerge's protocol runs only when two replicas changed while apart and neither knows the other's heads.\n";

/// The commit measured, and any uncommitted changes to the code besides this benchmark's.
fn revision() -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(&root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
    };
    let Some(head) = git(&["rev-parse", "--short", "HEAD"]).map(|h| h.trim().to_string()) else {
        return "an unknown revision".into();
    };
    let dirty: Vec<String> = git(&["status", "--porcelain", "--untracked-files=no"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.get(3..).map(str::to_string))
        .filter(|f| {
            ![
                "BENCHMARKS.md",
                "node/Cargo.toml",
                "node/benches/typists.rs",
            ]
            .contains(&f.as_str())
        })
        .collect();
    if dirty.is_empty() {
        format!("commit {head}")
    } else {
        format!(
            "commit {head} with uncommitted changes to {}",
            dirty.join(", ")
        )
    }
}
