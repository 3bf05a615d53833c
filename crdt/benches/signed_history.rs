//! What signing the history costs over plain automerge, on the `automerge-paper` trace
//! (259,778 transactions, one change each), measured in one run against baselines measured in
//! the same run:
//!
//! * a. typing: a plain automerge text, one transaction and commit per trace transaction, against
//!   [`Project::splice_text`] into a cell with a seal every [`SEAL_EVERY`] commits;
//! * b. receiving the whole history: automerge's `apply_changes` of all changes in one call, and
//!   `load(save())`, against `Project::empty(id).ingest(history())` (verify, judge, apply);
//! * c. bytes at rest: automerge's `save()` against the project's `save()` plus its kept seals.
//!
//! Run with `cargo bench -p orrery-crdt --bench signed_history`. Each timing is the median of
//! `ORRERY_BENCH_REPS` repetitions (default 3). The result is printed as a Markdown table and
//! written to the section `## Signed history (issue: Foundation)` of `BENCHMARKS.md` at the
//! repository root (replacing an older copy of the section).

#[path = "support/sections.rs"]
mod sections;
#[path = "../tests/support/trace_data.rs"]
mod trace_data;

use std::time::{Duration, Instant};

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{Automerge, Change, LoadOptions, ObjId, ObjType, ReadDoc, TextEncoding};
use orrery_crdt::{CellId, CellKind, NewCell, NotebookId, Project, Session, Visibility};
use orrery_protocol::SecretKey;
use trace_data::Trace;

/// Commits per seal while typing: one signature per 256 changes (a count, not a time window,
/// so that runs are comparable; at the trace's typing speed it is a few seconds of typing).
const SEAL_EVERY: usize = 256;
/// Bytes a kept seal adds beyond its payload: the signer's key and the signature.
const SEAL_OVERHEAD: usize = 32 + 64;
const SECTION: &str = "## Signed history (issue: Foundation)";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn new_doc() -> Automerge {
    Automerge::new_with_encoding(TextEncoding::UnicodeCodePoint)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

/// a, baseline: plain automerge, a text at the root, one transaction and commit per txn.
fn replay_plain(trace: &Trace) -> (Duration, Automerge, ObjId) {
    let mut doc = new_doc();
    let mut tx = doc.transaction();
    let text = tx
        .put_object(automerge::ROOT, "text", ObjType::Text)
        .expect("put");
    tx.commit_with(CommitOptions::default().with_time(now()));
    let start = Instant::now();
    for txn in &trace.txns {
        let mut tx = doc.transaction();
        for p in &txn.patches {
            tx.splice_text(&text, p.0, p.1 as isize, &p.2)
                .expect("splice");
        }
        tx.commit_with(CommitOptions::default().with_time(now()));
    }
    (start.elapsed(), doc, text)
}

struct SignedReplay {
    project: Project,
    nb: NotebookId,
    cell: CellId,
    /// Bytes of every change as sealed and sent, one by one.
    sent_change_bytes: usize,
    seals_made: usize,
    /// Time spent collecting the sealed changes' bytes (for the store or the network).
    sealing: Duration,
}

/// a, ours: a project cell typed through `Project::splice_text`, sealed every `SEAL_EVERY`.
fn replay_signed(trace: &Trace) -> (Duration, SignedReplay) {
    let author = Session::new(SecretKey::generate().expect("random")).expect("random");
    let (mut p, genesis) = Project::create(&author, "paper", Visibility::Public).expect("create");
    let nb = p.add_notebook(&author, "paper").expect("notebook");
    let cell = p
        .insert_cell(&author, &nb, 0, NewCell::new(CellKind::Raw, ""))
        .expect("cell");
    let setup = p.seal(&author);
    let text = p.source_obj(&nb, &cell).expect("source");
    let mut sent = genesis.change_bytes() + setup.change_bytes();
    let mut seals = 2;
    let mut sealing = Duration::ZERO;
    let mut collecting = Duration::ZERO;
    let start = Instant::now();
    for (i, txn) in trace.txns.iter().enumerate() {
        for patch in &txn.patches {
            p.splice_text(&author, &text, patch.0, patch.1, &patch.2)
                .expect("splice");
        }
        if i % SEAL_EVERY == SEAL_EVERY - 1 {
            // Signing is part of typing; collecting the changes' bytes for the store or the
            // network is timed apart (`collecting`).
            if let Some(sealed) = p.sign(&author) {
                seals += 1;
                let at = Instant::now();
                sent += p.batch_of(&sealed).change_bytes();
                collecting += at.elapsed();
            }
        }
    }
    if let Some(sealed) = p.sign(&author) {
        seals += 1;
        let at = Instant::now();
        sent += p.batch_of(&sealed).change_bytes();
        collecting += at.elapsed();
    }
    let elapsed = start.elapsed().saturating_sub(collecting);
    sealing += collecting;
    (
        elapsed,
        SignedReplay {
            project: p,
            nb,
            cell,
            sent_change_bytes: sent,
            seals_made: seals,
            sealing,
        },
    )
}

struct Figures {
    txns: usize,
    reps: usize,
    replay_plain: Duration,
    replay_signed: Duration,
    sealing: Duration,
    seals_made: usize,
    apply_plain: Duration,
    parse_same: Duration,
    apply_same: Duration,
    parse_apply_plain: Duration,
    load_plain: Duration,
    history: Duration,
    ingest: Duration,
    save_plain: usize,
    save_signed: usize,
    kept_seals: usize,
    kept_seal_bytes: usize,
    naive_plain: usize,
    naive_signed: usize,
}

fn main() {
    let reps: usize = std::env::var("ORRERY_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(3);
    let trace = trace_data::load("automerge-paper");
    eprintln!(
        "automerge-paper: {} txns, {} reps per figure",
        trace.txns.len(),
        reps
    );

    // a. Typing, baseline and ours alternating so that noise hits both alike.
    let mut plain_times = Vec::new();
    let mut signed_times = Vec::new();
    let mut sealing_times = Vec::new();
    let mut plain = None;
    let mut signed = None;
    for rep in 0..reps {
        let (t, doc, text) = replay_plain(&trace);
        plain_times.push(t);
        let (s, sig) = replay_signed(&trace);
        signed_times.push(s);
        sealing_times.push(sig.sealing);
        eprintln!("a. rep {rep}: plain {}, signed {}", secs(t), secs(s));
        plain = Some((doc, text));
        signed = Some(sig);
    }
    let (plain_doc, plain_text) = plain.expect("at least one rep");
    let signed = signed.expect("at least one rep");
    assert!(
        plain_doc.text(&plain_text).expect("text") == trace.end_content,
        "the plain replay does not end with the trace's text"
    );
    let p = &signed.project;
    assert!(
        p.cell(&signed.nb, &signed.cell).expect("cell").source == trace.end_content,
        "the signed replay does not end with the trace's text"
    );

    // b. Receiving the whole history.
    let plain_changes: Vec<Change> = plain_doc.get_changes(&[]);
    let plain_raw: Vec<Vec<u8>> = plain_changes
        .iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect();
    let plain_save = plain_doc.save();
    let mut apply_times = Vec::new();
    let mut parse_apply_times = Vec::new();
    let mut load_times = Vec::new();
    let mut history_times = Vec::new();
    let mut ingest_times = Vec::new();
    let mut parse_same_times = Vec::new();
    let mut apply_same_times = Vec::new();
    for rep in 0..reps {
        let changes = plain_changes.clone();
        let mut fresh = new_doc();
        let start = Instant::now();
        fresh.apply_changes(changes).expect("applies");
        apply_times.push(start.elapsed());
        assert_eq!(fresh.get_heads(), plain_doc.get_heads());
        drop(fresh);

        let mut fresh = new_doc();
        let start = Instant::now();
        let parsed: Vec<Change> = plain_raw
            .iter()
            .map(|b| Change::try_from(&b[..]).expect("parses"))
            .collect();
        fresh.apply_changes(parsed).expect("applies");
        parse_apply_times.push(start.elapsed());
        drop(fresh);

        let start = Instant::now();
        let loaded = Automerge::load_with_options(
            &plain_save,
            LoadOptions::new().text_encoding(TextEncoding::UnicodeCodePoint),
        )
        .expect("loads");
        load_times.push(start.elapsed());
        assert_eq!(loaded.get_heads(), plain_doc.get_heads());
        drop(loaded);

        let start = Instant::now();
        let history = p.history();
        history_times.push(start.elapsed());

        // The project's own changes through plain automerge, to split ingest's time.
        let start = Instant::now();
        let parsed: Vec<Change> = history
            .changes
            .iter()
            .map(|b| Change::try_from(&b[..]).expect("parses"))
            .collect();
        parse_same_times.push(start.elapsed());
        let mut fresh = new_doc();
        let start = Instant::now();
        fresh.apply_changes(parsed).expect("applies");
        apply_same_times.push(start.elapsed());
        drop(fresh);

        let mut replica = Project::empty(p.id());
        let start = Instant::now();
        let report = replica.ingest(history).expect("the history ingests");
        ingest_times.push(start.elapsed());
        assert_eq!(report.applied.len(), p.change_count());
        assert_eq!(replica.heads(), p.heads());
        eprintln!(
            "b. rep {rep}: apply {}, load {}, ingest {}",
            secs(apply_times[rep]),
            secs(load_times[rep]),
            secs(ingest_times[rep])
        );
    }

    // c. Bytes at rest.
    let seals = p.seals();
    let figures = Figures {
        txns: trace.txns.len(),
        reps,
        replay_plain: median(plain_times),
        replay_signed: median(signed_times),
        sealing: median(sealing_times),
        seals_made: signed.seals_made,
        apply_plain: median(apply_times),
        parse_same: median(parse_same_times),
        apply_same: median(apply_same_times),
        parse_apply_plain: median(parse_apply_times),
        load_plain: median(load_times),
        history: median(history_times),
        ingest: median(ingest_times),
        save_plain: plain_save.len(),
        save_signed: p.save().len(),
        kept_seals: seals.len(),
        kept_seal_bytes: seals
            .iter()
            .map(|s| s.payload().len() + SEAL_OVERHEAD)
            .sum(),
        naive_plain: plain_raw.iter().map(Vec::len).sum(),
        naive_signed: signed.sent_change_bytes,
    };
    let table = render(&figures);
    println!("{table}");
    sections::write_section(
        env!("CARGO_MANIFEST_DIR"),
        SECTION,
        &format!("Command: `cargo bench -p orrery-crdt --bench signed_history`\n\n{table}"),
    );
}

fn render(f: &Figures) -> String {
    let goal = |r: f64, g: f64| if r <= g { "met" } else { "**missed**" };
    let r_replay = ratio(f.replay_signed, f.replay_plain);
    let r_apply = ratio(f.ingest, f.parse_apply_plain);
    let r_apply_parsed = ratio(f.ingest, f.apply_plain);
    let r_load = ratio(f.ingest, f.load_plain);
    let stored = f.save_signed + f.kept_seal_bytes;
    let r_bytes = stored as f64 / f.save_plain as f64;
    let per = |d: Duration| d.as_secs_f64() * 1e6 / f.txns as f64;
    let mut s = String::new();
    s.push_str(&format!(
        "`automerge-paper`, {} transactions (one change each); release build; each time the \
         median of {} run(s); baselines measured in the same run.\n\n",
        f.txns, f.reps
    ));
    s.push_str("| what | plain automerge 0.12 | Orrery (signed) | ratio | goal |\n");
    s.push_str("|---|---|---|---|---|\n");
    s.push_str(&format!(
        "| a. replay, one commit per txn (ours: `Project::splice_text`, signed with a seal every \
         {SEAL_EVERY} commits, {} seals) | {} ({:.1} µs/txn) | {} ({:.1} µs/txn) | {:.2}× | ≤ \
         1.25×: {} |\n",
        f.seals_made,
        secs(f.replay_plain),
        per(f.replay_plain),
        secs(f.replay_signed),
        per(f.replay_signed),
        r_replay,
        goal(r_replay, 1.25)
    ));
    s.push_str(&format!(
        "| b. whole history into an empty replica, from the same raw change bytes: parse + \
         `apply_changes` (one call) vs `Project::ingest(history())` | {} | {} | {:.2}× | ≤ 1.5×: \
         {} |\n",
        secs(f.parse_apply_plain),
        secs(f.ingest),
        r_apply,
        goal(r_apply, 1.5)
    ));
    s.push_str(&format!(
        "| b. the same against `apply_changes` of changes parsed beforehand | {} | {} | {:.2}× | \
         |\n",
        secs(f.apply_plain),
        secs(f.ingest),
        r_apply_parsed
    ));
    s.push_str(&format!(
        "| b. context: `Automerge::load(save())` of the compressed document, unverified (a replica \
         with nothing is sent the document and verifies it whole: see Federation, first sync) | \
         {} | {} | {:.2}× | |\n",
        secs(f.load_plain),
        secs(f.ingest),
        r_load
    ));
    s.push_str(&format!(
        "| c. bytes at rest: `save()` vs `save()` + {} kept seal(s) ({} B) | {} B | {} B | \
         {:.3}× | ≤ 1.5×: {} |\n",
        f.kept_seals,
        f.kept_seal_bytes,
        f.save_plain,
        stored,
        r_bytes,
        goal(r_bytes, 1.5)
    ));
    s.push_str(&format!(
        "| context: every change stored one by one (raw change chunks) | {} B ({:.0}× `save()`) \
         | {} B ({:.0}× `save()`) | | |\n",
        f.naive_plain,
        f.naive_plain as f64 / f.save_plain as f64,
        f.naive_signed,
        f.naive_signed as f64 / f.save_plain as f64,
    ));
    s.push_str(&format!(
        "| a, after typing: collecting the sealed changes' bytes to store or send them \
         (`Project::batch_of`) | | {} ({:.0} % of the replay) | | |\n",
        secs(f.sealing),
        100.0 * f.sealing.as_secs_f64() / f.replay_signed.as_secs_f64()
    ));
    let checks = f
        .ingest
        .saturating_sub(f.parse_same)
        .saturating_sub(f.apply_same);
    s.push_str(&format!(
        "| b, split: ingest = parsing the project's changes {} + automerge `apply_changes` of \
         them {} + Orrery's checks {} | | {} | | |\n",
        secs(f.parse_same),
        secs(f.apply_same),
        secs(checks),
        secs(f.ingest)
    ));
    s.push_str(&format!(
        "| context: `Project::history()` (collecting the batch to send) | | {} | | |\n",
        secs(f.history)
    ));
    s.push_str(
        "\nThe baseline's text sits at the document root; ours is a cell's source inside the \
         project schema (notebooks → notebook → cells → cell → source). Both documents count \
         text in Unicode code points. Ingest verifies the seals, checks that every change is \
         covered by its author's seal, judges every change against the membership in its causal \
         past, and applies.\n",
    );
    s
}
