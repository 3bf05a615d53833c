//! Real editing traces replayed through signed project documents.
//!
//! * `friendsforever` (2 agents) and `clownschool` (3 agents): concurrent traces. Every agent is
//!   an author with its own key, typing into its own replica; each transaction is applied on a
//!   replica holding exactly the merge of its parents, then sealed. The sealed batches are the
//!   only thing that travels between replicas. At the end every replica has everything and must
//!   show the trace's final text, the same heads, and credit that adds up.
//! * `automerge-paper`: the sequential trace, typed by one author (a prefix in debug builds).
//!
//! The traces live in `shared/data/editing-traces` (see `support/trace_data.rs`); the tests fail,
//! not skip, without them.

#[path = "support/trace_data.rs"]
mod trace_data;

use std::collections::{BTreeMap, BTreeSet};

use automerge::ObjId;
use orrery_crdt::{
    Batch, CellId, CellKind, NewCell, NotebookId, Project, Role, Session, Visibility,
};
use orrery_protocol::{AuthorId, ChangeHash, SecretKey};
use trace_data::{Trace, Txn};

fn session() -> Session {
    Session::new(SecretKey::generate().expect("random")).expect("random")
}

/// Concatenates batches (in the given order) into one.
fn join<'a>(batches: impl IntoIterator<Item = &'a Batch>) -> Batch {
    let mut out = Batch::default();
    for b in batches {
        out.changes.extend(b.changes.iter().cloned());
        out.seals.extend(b.seals.iter().cloned());
    }
    out
}

/// One agent: its author session and its replica, with the transactions the replica holds.
struct Agent {
    key: SecretKey,
    session: Session,
    replica: Project,
    /// `has[i]`: transaction `i`'s batch has been made on or ingested into `replica`.
    has: Vec<bool>,
}

/// A concurrent trace being replayed.
struct Replay<'t> {
    trace: &'t Trace,
    host: Session,
    setup: Batch,
    setup_heads: Vec<ChangeHash>,
    id: orrery_protocol::ProjectId,
    nb: NotebookId,
    cell: CellId,
    text: ObjId,
    agents: Vec<Agent>,
    /// Per transaction: the sealed batch it produced.
    batches: Vec<Batch>,
    /// Per transaction: the heads of its author's replica right after it.
    heads_after: Vec<Vec<ChangeHash>>,
    /// How often an agent's replica was ahead of a transaction's parents and had to be rebuilt.
    rebuilds: usize,
    /// Number of ingest calls made while replaying.
    syncs: usize,
}

impl<'t> Replay<'t> {
    /// A host (owner, not an agent) creates the project with one empty markdown cell and makes
    /// every agent an editor; every agent's replica starts from that signed history.
    fn new(trace: &'t Trace) -> Self {
        let host = session();
        let keys: Vec<SecretKey> = (0..trace.num_agents)
            .map(|_| SecretKey::generate().expect("random"))
            .collect();
        let (mut p, _) = Project::create(&host, "trace", Visibility::Shared).expect("create");
        for k in &keys {
            p.set_member(&host, AuthorId(k.public()), Role::Editor)
                .expect("host adds agent");
        }
        let nb = p.add_notebook(&host, "trace").expect("notebook");
        let cell = p
            .insert_cell(&host, &nb, 0, NewCell::new(CellKind::Markdown, ""))
            .expect("cell");
        p.seal(&host);
        let text = p.source_obj(&nb, &cell).expect("source");
        let setup = p.history();
        let agents = keys
            .into_iter()
            .map(|key| Agent {
                session: Session::new(key.clone()).expect("random"),
                key,
                replica: replica(p.id(), &setup, []),
                has: vec![false; trace.txns.len()],
            })
            .collect();
        Replay {
            trace,
            host,
            setup_heads: p.heads(),
            setup,
            id: p.id(),
            nb,
            cell,
            text,
            agents,
            batches: Vec::with_capacity(trace.txns.len()),
            heads_after: Vec::with_capacity(trace.txns.len()),
            rebuilds: 0,
            syncs: 0,
        }
    }

    /// The ancestors of `txn` (its parents, theirs, ...) that `has` lacks, in index order
    /// (which is a topological order: parents always come first in a trace).
    fn missing_ancestors(&self, txn: &Txn, has: &[bool]) -> Vec<usize> {
        let mut seen = vec![false; has.len()];
        let mut stack: Vec<usize> = txn.parents.clone();
        let mut out = Vec::new();
        while let Some(p) = stack.pop() {
            if has[p] || seen[p] {
                continue;
            }
            seen[p] = true;
            out.push(p);
            stack.extend(self.trace.txns[p].parents.iter().copied());
        }
        out.sort_unstable();
        out
    }

    /// Every ancestor of `txn`, in index order.
    fn ancestors(&self, txn: &Txn) -> Vec<usize> {
        self.missing_ancestors(txn, &vec![false; self.trace.txns.len()])
    }

    /// The heads a replica holding exactly the merge of `txn`'s parents may have: the heads
    /// after each parent (a parent that is an ancestor of another is not a head).
    fn allowed_heads(&self, txn: &Txn) -> BTreeSet<ChangeHash> {
        if txn.parents.is_empty() {
            return self.setup_heads.iter().copied().collect();
        }
        txn.parents
            .iter()
            .flat_map(|&p| self.heads_after[p].iter().copied())
            .collect()
    }

    /// Brings agent `a`'s replica to exactly the merge of `txn`'s parents.
    fn prepare(&mut self, a: usize, txn: &Txn) {
        let missing = self.missing_ancestors(txn, &self.agents[a].has);
        if !missing.is_empty() {
            let batch = join(missing.iter().map(|&i| &self.batches[i]));
            let agent = &mut self.agents[a];
            let report = agent.replica.ingest(batch).expect("honest batches ingest");
            assert_eq!(report.pending, 0, "ancestors ingested in order never wait");
            for i in missing {
                agent.has[i] = true;
            }
            self.syncs += 1;
        }
        // The replica holds every ancestor of the parents. It holds nothing else exactly when
        // each of its heads is a parent's head: a change outside the parents' ancestry would
        // leave a head outside them.
        let allowed = self.allowed_heads(txn);
        let ahead = self.agents[a]
            .replica
            .heads()
            .iter()
            .any(|h| !allowed.contains(h));
        if ahead {
            // Start over from the parents' ancestry alone, under a new session part so this
            // agent's new changes never reuse a (actor, sequence) pair of its old replica.
            let ancestors = self.ancestors(txn);
            let agent = &mut self.agents[a];
            agent.replica = replica(
                self.id,
                &self.setup,
                ancestors.iter().map(|&i| &self.batches[i]),
            );
            agent.session = Session::new(agent.key.clone()).expect("random");
            agent.has = vec![false; self.trace.txns.len()];
            for i in ancestors {
                agent.has[i] = true;
            }
            self.rebuilds += 1;
        }
        let heads: BTreeSet<ChangeHash> = self.agents[a].replica.heads().into_iter().collect();
        assert!(
            heads.is_subset(&allowed),
            "replica of agent {a} is not at the merge of its parents"
        );
    }

    fn run(&mut self) {
        let trace = self.trace;
        for (i, txn) in trace.txns.iter().enumerate() {
            assert!(
                txn.parents.iter().all(|&p| p < i),
                "txn {i}: parent after child"
            );
            let a = txn.agent;
            self.prepare(a, txn);
            let agent = &mut self.agents[a];
            for (k, patch) in txn.patches.iter().enumerate() {
                agent
                    .replica
                    .splice_text(&agent.session, &self.text, patch.0, patch.1, &patch.2)
                    .unwrap_or_else(|e| panic!("txn {i} patch {k}: {e}"));
            }
            self.batches.push(agent.replica.seal(&agent.session));
            self.heads_after.push(agent.replica.heads());
            agent.has[i] = true;
        }
    }

    /// Every replica ingests every batch it lacks (one batch, in trace order).
    fn exchange_all(&mut self) {
        for agent in &mut self.agents {
            let missing: Vec<usize> = (0..self.batches.len()).filter(|&i| !agent.has[i]).collect();
            if missing.is_empty() {
                continue;
            }
            let batch = join(missing.iter().map(|&i| &self.batches[i]));
            let report = agent.replica.ingest(batch).expect("honest batches ingest");
            assert_eq!(report.pending, 0);
            for i in missing {
                agent.has[i] = true;
            }
        }
    }
}

/// A replica of `id` built from the setup history and then `batches`, in order.
fn replica<'a>(
    id: orrery_protocol::ProjectId,
    setup: &Batch,
    batches: impl IntoIterator<Item = &'a Batch>,
) -> Project {
    let mut r = Project::empty(id);
    r.ingest(setup.clone()).expect("setup history ingests");
    let rest = join(batches);
    if !rest.is_empty() {
        let report = r.ingest(rest).expect("honest batches ingest");
        assert_eq!(report.pending, 0);
    }
    r
}

fn replay_concurrent(name: &str) {
    let trace = trace_data::load(name);
    assert!(trace.num_agents >= 2, "{name} is not a concurrent trace");
    check_replay(name, &trace);
}

/// Replays a concurrent trace, exchanges everything and checks text, heads and credit.
fn check_replay(name: &str, trace: &Trace) -> usize {
    let mut replay = Replay::new(trace);
    replay.run();
    replay.exchange_all();
    eprintln!(
        "{name}: {} txns, {} agents, {} ingests while replaying, {} replica rebuilds",
        trace.txns.len(),
        trace.num_agents,
        replay.syncs,
        replay.rebuilds
    );

    let want_chars = trace.end_content.chars().count();
    let first = &replay.agents[0].replica;
    let heads = first.heads();
    let credits = first.credits();
    for (a, agent) in replay.agents.iter().enumerate() {
        let r = &agent.replica;
        let cell = r.cell(&replay.nb, &replay.cell).expect("cell");
        assert!(
            cell.source == trace.end_content,
            "{name}: replica of agent {a} ends with {} chars, not the trace's {want_chars} \
             (first difference at char {})",
            cell.source.chars().count(),
            cell.source
                .chars()
                .zip(trace.end_content.chars())
                .position(|(x, y)| x != y)
                .unwrap_or(cell.source.chars().count().min(want_chars))
        );
        assert_eq!(r.heads(), heads, "{name}: heads of agent {a} differ");
        assert_eq!(r.credits(), credits, "{name}: credit at agent {a} differs");
    }
    check_credit(&replay, &credits, want_chars);
    replay.rebuilds
}

/// Credit of the one cell: every surviving character is attributed to exactly one agent, every
/// agent's changes are counted, and the host typed nothing.
fn check_credit(replay: &Replay<'_>, credits: &orrery_crdt::credit::Credits, want_chars: usize) {
    let trace = replay.trace;
    let [nb] = credits.notebooks.as_slice() else {
        panic!(
            "one notebook expected, credit has {}",
            credits.notebooks.len()
        );
    };
    let [cell] = nb.cells.as_slice() else {
        panic!("one cell expected, credit has {}", nb.cells.len());
    };
    assert_eq!(cell.cell, replay.cell);
    let agent_of: BTreeMap<AuthorId, usize> = replay
        .agents
        .iter()
        .enumerate()
        .map(|(a, g)| (g.session.author(), a))
        .collect();
    let mut patches = vec![0usize; trace.num_agents];
    let mut inserted = vec![0usize; trace.num_agents];
    for t in &trace.txns {
        patches[t.agent] += t.patches.len();
        inserted[t.agent] += t.patches.iter().map(|p| p.2.chars().count()).sum::<usize>();
    }
    let total: usize = cell.shares.iter().map(|s| s.chars).sum();
    assert_eq!(
        total, want_chars,
        "surviving chars must add up to the final text"
    );
    let authors: BTreeSet<AuthorId> = cell.shares.iter().map(|s| s.author).collect();
    assert_eq!(authors.len(), cell.shares.len(), "one share per author");
    let by_text = replay.agents[0].replica.text_authors(&replay.text);
    for share in &cell.shares {
        if share.author == replay.host.author() {
            assert_eq!(share.chars, 0, "the host typed nothing");
            assert_eq!(share.changes, 1, "the host only created the cell");
            continue;
        }
        let a = *agent_of
            .get(&share.author)
            .unwrap_or_else(|| panic!("a share for {}, who is no agent", share.author));
        assert_eq!(
            share.changes, patches[a],
            "agent {a}: every patch is one change"
        );
        assert!(
            share.chars <= inserted[a],
            "agent {a}: more chars than typed"
        );
        assert_eq!(
            by_text.get(&share.author).copied().unwrap_or(0),
            share.chars
        );
    }
    // Every agent that typed text which survives has a share with those chars; agents whose
    // text all went have none with chars.
    let with_chars: BTreeSet<usize> = cell
        .shares
        .iter()
        .filter(|s| s.chars > 0)
        .filter_map(|s| agent_of.get(&s.author).copied())
        .collect();
    let typists: BTreeSet<usize> = by_text
        .keys()
        .filter_map(|a| agent_of.get(a).copied())
        .collect();
    assert_eq!(with_chars, typists);
    for (a, agent) in replay.agents.iter().enumerate() {
        if patches[a] > 0 {
            assert!(
                authors.contains(&agent.session.author()),
                "agent {a} made changes but has no share"
            );
        }
    }
}

#[test]
fn friendsforever_converges_with_two_signed_authors() {
    replay_concurrent("friendsforever");
}

#[test]
fn clownschool_converges_with_three_signed_authors() {
    replay_concurrent("clownschool");
}

/// The real traces never need it, so a small made-up one checks the path where an agent's
/// replica is ahead of a transaction's parents: agent 0 types "a", then "b" after it, then
/// (on the state with only "a") "c" before it; agent 1 then merges everything and adds "!".
#[test]
fn an_agent_ahead_of_a_transactions_parents_replays_on_a_rebuilt_replica() {
    let txn = |parents: Vec<usize>, agent: usize, pos: usize, text: &str| Txn {
        parents,
        agent,
        patches: vec![trace_data::Patch(pos, 0, text.to_string())],
    };
    let trace = Trace {
        start_content: String::new(),
        end_content: "cab!".into(),
        num_agents: 2,
        txns: vec![
            txn(vec![], 0, 0, "a"),
            txn(vec![0], 0, 1, "b"),
            txn(vec![0], 0, 0, "c"),
            txn(vec![1, 2], 1, 3, "!"),
        ],
    };
    assert_eq!(check_replay("made-up", &trace), 1, "one rebuild expected");
}

/// How much of `automerge-paper` a debug build replays (all of it in release builds). In debug
/// builds automerge checks every insert against a linear scan of the text (a `debug_assert`),
/// so the cost per keystroke grows with the text: 20,000 transactions take about 19 s there,
/// 10,000 about 5 s.
const DEBUG_PREFIX: usize = 10_000;

#[test]
fn automerge_paper_replays_through_one_signed_author() {
    let trace = trace_data::load("automerge-paper");
    let n = if cfg!(debug_assertions) {
        DEBUG_PREFIX.min(trace.txns.len())
    } else {
        trace.txns.len()
    };
    let author = session();
    let (mut p, genesis) = Project::create(&author, "paper", Visibility::Public).expect("create");
    let nb = p.add_notebook(&author, "paper").expect("notebook");
    let cell = p
        .insert_cell(
            &author,
            &nb,
            0,
            NewCell::new(CellKind::Raw, &trace.start_content),
        )
        .expect("cell");
    let text = p.source_obj(&nb, &cell).expect("source");
    let mut sealed = vec![genesis, p.seal(&author)];
    let mut expected = trace.start_content.clone();
    for (i, txn) in trace.txns[..n].iter().enumerate() {
        for patch in &txn.patches {
            p.splice_text(&author, &text, patch.0, patch.1, &patch.2)
                .unwrap_or_else(|e| panic!("txn {i}: {e}"));
            if n < trace.txns.len() {
                trace_data::apply_to_string(&mut expected, patch);
            }
        }
        if i % 256 == 255 {
            sealed.push(p.seal(&author));
        }
    }
    sealed.push(p.seal(&author));
    if n == trace.txns.len() {
        expected = trace.end_content.clone();
    }
    let source = p.cell(&nb, &cell).expect("cell").source;
    assert!(
        source == expected,
        "replayed text differs from the reference after {n} txns"
    );

    // A replica built from the sealed batches, as they would have been sent, agrees.
    let mut r = Project::empty(p.id());
    for b in sealed {
        r.ingest(b).expect("own batches ingest");
    }
    assert_eq!(r.heads(), p.heads());
    assert!(r.cell(&nb, &cell).expect("cell").source == expected);
    let credits = r.credits();
    let shares = &credits.notebooks[0].cells[0].shares;
    assert_eq!(shares.len(), 1);
    assert_eq!(shares[0].author, author.author());
    assert_eq!(shares[0].chars, expected.chars().count());
}
