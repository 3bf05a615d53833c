//! Loading the editing traces of `shared/data/editing-traces` (josephg/editing-traces, CC BY 4.0).
//!
//! Shared by `tests/traces.rs` and `benches/signed_history.rs` through `#[path]`. The folder is
//! `../../shared/data/editing-traces` from the crate (the `shared` folder sits beside the
//! repository root), or `$ORRERY_SHARED_DATA/editing-traces` (or `$ORRERY_SHARED_DATA` itself if
//! it holds the traces) when that variable is set. A missing trace is an error, never a skip.

#![allow(dead_code)]

use std::io::Read;
use std::path::PathBuf;

use serde::Deserialize;

/// One patch: at code point `pos`, delete `deleted` code points, then insert `inserted`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Patch(pub(crate) usize, pub(crate) usize, pub(crate) String);

/// One transaction of a trace.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Txn {
    /// The transactions this one was made on top of (concurrent traces only).
    #[serde(default)]
    pub(crate) parents: Vec<usize>,
    /// The agent that made it (concurrent traces only; 0 in sequential ones).
    #[serde(default)]
    pub(crate) agent: usize,
    /// Its patches, applied in order, each to the text the previous one left.
    pub(crate) patches: Vec<Patch>,
}

/// A whole trace.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Trace {
    /// The text at the start (sequential traces; empty when absent).
    #[serde(rename = "startContent", default)]
    pub(crate) start_content: String,
    /// The text every replica must end with.
    #[serde(rename = "endContent")]
    pub(crate) end_content: String,
    /// Number of agents (concurrent traces; 1 when absent).
    #[serde(rename = "numAgents", default = "one")]
    pub(crate) num_agents: usize,
    /// The transactions, each after all of its parents.
    pub(crate) txns: Vec<Txn>,
}

fn one() -> usize {
    1
}

/// The folder holding the traces.
pub(crate) fn trace_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ORRERY_SHARED_DATA") {
        let dir = PathBuf::from(dir);
        let nested = dir.join("editing-traces");
        return if nested.is_dir() { nested } else { dir };
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/editing-traces")
}

/// Loads trace `name` (`automerge-paper`, `friendsforever`, ...). Panics with a message that
/// says where the file was looked for and how to point at it: these tests must not pass
/// without their data.
pub(crate) fn load(name: &str) -> Trace {
    let path = trace_dir().join(format!("{name}.json.gz"));
    let file = std::fs::File::open(&path).unwrap_or_else(|e| {
        panic!(
            "editing trace `{name}` not found at {}: {e}. The traces live in \
             shared/data/editing-traces beside the repository root; set ORRERY_SHARED_DATA to \
             the folder holding them (or its parent) if they are elsewhere.",
            path.display()
        )
    });
    let mut json = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut json)
        .unwrap_or_else(|e| panic!("{} is not gzip'd UTF-8 text: {e}", path.display()));
    let trace: Trace = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("{} is not an editing trace: {e}", path.display()));
    assert!(
        !trace.txns.is_empty(),
        "{} holds no transactions",
        path.display()
    );
    trace
}

/// Applies one patch to a plain string, positions in code points (the reference model).
pub(crate) fn apply_to_string(text: &mut String, patch: &Patch) {
    let Patch(pos, deleted, inserted) = patch;
    let start = byte_offset(text, *pos);
    let end = start
        + text[start..]
            .char_indices()
            .nth(*deleted)
            .map_or(text.len() - start, |(i, _)| i);
    text.replace_range(start..end, inserted);
}

fn byte_offset(text: &str, chars: usize) -> usize {
    text.char_indices()
        .nth(chars)
        .map_or(text.len(), |(i, _)| i)
}
