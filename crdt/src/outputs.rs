//! Large cell outputs kept outside the document.
//!
//! A plot, a table rendered as HTML or a long log can be megabytes, and everything written into
//! an automerge document stays in its history for good and travels in every first sync. So an
//! output whose JSON is larger than [`INLINE_OUTPUT_BYTES`] is stored as a content-addressed
//! blob beside the document, and the document's outputs list holds only a reference to it: a
//! byte string ([`BlobRef::encode`]) where a small output is a JSON string.
//!
//! In memory ([`crate::Cell::outputs`], [`crate::NewCell::outputs`]) a stored output appears as a
//! stub, an output object of the reserved type [`STORED_OUTPUT_TYPE`] naming the blob's BLAKE3
//! hash and length. Stubs compare equal exactly when the outputs do, so the three-way update of a
//! notebook from its file sees an unchanged 20 MB output as unchanged without reading it.
//! Exporting resolves stubs through a [`BlobSource`]; a file naming the reserved type is refused
//! on import.
//!
//! A cell can also hold many outputs that are each small (300 plots of 30 KiB, 50,000 lines of
//! a log printed one by one) and large together: written into the document as they are, they
//! would make one change larger than any peer accepts. When a cell's outputs left in the
//! document would exceed [`INLINE_CELL_OUTPUT_BYTES`] or [`MAX_INLINE_OUTPUTS`], each run of
//! consecutive small outputs is stored as one blob holding the run as a JSON list, named by a
//! stub of type [`STORED_LIST_TYPE`]; export puts the run back in its place. A change therefore
//! never carries more than about [`INLINE_CELL_OUTPUT_BYTES`] of one cell's outputs.
//!
//! This crate never stores a blob: an edit that externalises an output hands the blob to its
//! caller ([`Project::take_blobs`]), which must store it before it stores the edit.

use std::collections::BTreeSet;
use std::fmt;

use automerge::{ObjType, ReadDoc, ScalarValue, ScalarValueRef, ValueRef};
use serde_json::{Value, json};

use crate::project::Project;
use crate::schema::{K_CELLS, K_OUTPUTS};

/// Largest output kept inside the document, as serialised JSON bytes.
pub const INLINE_OUTPUT_BYTES: usize = 32 * 1024;

/// The `output_type` of a stub standing for a stored output. Never valid in a file.
pub const STORED_OUTPUT_TYPE: &str = "orrery:stored";

/// The `output_type` of a stub standing for a stored run of outputs. Never valid in a file.
pub const STORED_LIST_TYPE: &str = "orrery:stored-list";

/// Most bytes of one cell's outputs kept inside the document (beyond, runs of small outputs are
/// stored as blobs).
pub const INLINE_CELL_OUTPUT_BYTES: usize = 256 * 1024;

/// Most outputs of one cell kept inside the document one by one.
pub const MAX_INLINE_OUTPUTS: usize = 256;

const REF_VERSION: u8 = 1;
const LIST_REF_VERSION: u8 = 2;
const REF_LEN: usize = 1 + 32 + 8;

/// A stored output: the BLAKE3 hash of its serialised JSON and its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobRef {
    /// BLAKE3 of the bytes.
    pub hash: [u8; 32],
    /// Length of the bytes.
    pub len: u64,
}

impl BlobRef {
    /// The reference to `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self {
            hash: *blake3::hash(bytes).as_bytes(),
            len: bytes.len() as u64,
        }
    }

    /// Whether `bytes` are what this reference names.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        bytes.len() as u64 == self.len && blake3::hash(bytes).as_bytes() == &self.hash
    }

    /// The hash as lowercase hex.
    pub fn hex(&self) -> String {
        blake3::Hash::from_bytes(self.hash).to_hex().to_string()
    }

    /// The form kept in the document: a version byte, the hash, the length (little-endian).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(REF_LEN);
        out.push(REF_VERSION);
        out.extend_from_slice(&self.hash);
        out.extend_from_slice(&self.len.to_le_bytes());
        out
    }

    /// Reads [`BlobRef::encode`]'s form; `None` for anything else.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        match Self::decode_any(bytes)? {
            (r, false) => Some(r),
            (_, true) => None,
        }
    }

    /// The form kept in the document for a stored run of outputs.
    pub fn encode_list(&self) -> Vec<u8> {
        let mut out = self.encode();
        out[0] = LIST_REF_VERSION;
        out
    }

    /// Reads either form: the reference, and whether it names a run of outputs.
    pub fn decode_any(bytes: &[u8]) -> Option<(Self, bool)> {
        if bytes.len() != REF_LEN {
            return None;
        }
        let list = match bytes[0] {
            REF_VERSION => false,
            LIST_REF_VERSION => true,
            _ => return None,
        };
        let hash: [u8; 32] = bytes[1..33].try_into().ok()?;
        let len = u64::from_le_bytes(bytes[33..].try_into().ok()?);
        Some((Self { hash, len }, list))
    }

    /// The in-memory stub standing for a stored run of outputs.
    pub fn list_stub(&self) -> Value {
        self.stub_of(STORED_LIST_TYPE)
    }

    /// The reference a run stub names; `None` if `output` is not a well-formed run stub.
    pub fn from_list_stub(output: &Value) -> Option<Self> {
        Self::from_stub_of(output, STORED_LIST_TYPE)
    }

    /// The in-memory stub standing for the stored output.
    pub fn stub(&self) -> Value {
        self.stub_of(STORED_OUTPUT_TYPE)
    }

    /// The reference a stub names; `None` if `output` is not a well-formed stub.
    pub fn from_stub(output: &Value) -> Option<Self> {
        Self::from_stub_of(output, STORED_OUTPUT_TYPE)
    }

    fn stub_of(&self, output_type: &str) -> Value {
        json!({"output_type": output_type, "blake3": self.hex(), "bytes": self.len})
    }

    fn from_stub_of(output: &Value, output_type: &str) -> Option<Self> {
        let o = output.as_object()?;
        if o.get("output_type")?.as_str()? != output_type {
            return None;
        }
        let mut hash = [0u8; 32];
        hex_decode(o.get("blake3")?.as_str()?, &mut hash)?;
        Some(Self {
            hash,
            len: o.get("bytes")?.as_u64()?,
        })
    }
}

impl fmt::Display for BlobRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} bytes)", self.hex(), self.len)
    }
}

fn hex_decode(s: &str, out: &mut [u8; 32]) -> Option<()> {
    if s.len() != 64 {
        return None;
    }
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(())
}

/// A stored output's bytes and their reference.
#[derive(Clone, PartialEq, Eq)]
pub struct Blob {
    /// The reference.
    pub id: BlobRef,
    /// The serialised output.
    pub bytes: Vec<u8>,
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Blob({})", self.id)
    }
}

/// Where stored outputs are read from when a notebook is exported.
pub trait BlobSource {
    /// The bytes of `id`, if held. Implementations need not check them: the caller does.
    fn blob(&self, id: &BlobRef) -> Option<Vec<u8>>;
}

/// A source holding nothing: exporting with it fails on the first stored output.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoBlobs;

impl BlobSource for NoBlobs {
    fn blob(&self, _: &BlobRef) -> Option<Vec<u8>> {
        None
    }
}

/// Blobs held in memory.
impl BlobSource for std::collections::HashMap<BlobRef, Vec<u8>> {
    fn blob(&self, id: &BlobRef) -> Option<Vec<u8>> {
        self.get(id).cloned()
    }
}

/// Why a stored output could not be resolved.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BlobError {
    /// The blob is not held here.
    #[error("the stored output {0} is not held on this node")]
    Missing(BlobRef),
    /// The bytes held do not match the reference, or are not an output.
    #[error("the stored output {0} held on this node is damaged: its bytes do not match its hash")]
    Damaged(BlobRef),
}

/// `output` in the form kept in memory and in the document: itself when small, otherwise a stub,
/// with the blob to store pushed onto `blobs`. A stub stays a stub.
pub(crate) fn externalise(output: &Value, blobs: &mut Vec<Blob>) -> Value {
    if BlobRef::from_stub(output).is_some() {
        return output.clone();
    }
    let bytes = output.to_string().into_bytes();
    if bytes.len() <= INLINE_OUTPUT_BYTES {
        return output.clone();
    }
    let id = BlobRef::of(&bytes);
    let stub = id.stub();
    if !blobs.iter().any(|b| b.id == id) {
        blobs.push(Blob { id, bytes });
    }
    stub
}

/// The outputs of a cell externalised: each large one (see [`externalise`]), and, when what
/// is left would still be too much for the document, each run of small ones as one blob.
pub(crate) fn externalise_all(outputs: &[Value], blobs: &mut Vec<Blob>) -> Vec<Value> {
    let each: Vec<Value> = outputs.iter().map(|o| externalise(o, blobs)).collect();
    let is_stub =
        |o: &Value| BlobRef::from_stub(o).is_some() || BlobRef::from_list_stub(o).is_some();
    let inline: Vec<&Value> = each.iter().filter(|o| !is_stub(o)).collect();
    let bytes: usize = inline.iter().map(|o| o.to_string().len()).sum();
    if inline.len() <= MAX_INLINE_OUTPUTS && bytes <= INLINE_CELL_OUTPUT_BYTES {
        return each;
    }
    let mut out = Vec::new();
    let mut run: Vec<Value> = Vec::new();
    let flush = |run: &mut Vec<Value>, out: &mut Vec<Value>, blobs: &mut Vec<Blob>| {
        if run.is_empty() {
            return;
        }
        let bytes = Value::Array(std::mem::take(run)).to_string().into_bytes();
        let id = BlobRef::of(&bytes);
        if !blobs.iter().any(|b| b.id == id) {
            blobs.push(Blob { id, bytes });
        }
        out.push(id.list_stub());
    };
    for o in each {
        if is_stub(&o) {
            flush(&mut run, &mut out, blobs);
            out.push(o);
        } else {
            run.push(o);
        }
    }
    flush(&mut run, &mut out, blobs);
    out
}

/// The value written into a document's outputs list for `output` (already externalised).
pub(crate) fn to_scalar(output: &Value) -> ScalarValue {
    if let Some(r) = BlobRef::from_stub(output) {
        return ScalarValue::Bytes(r.encode());
    }
    if let Some(r) = BlobRef::from_list_stub(output) {
        return ScalarValue::Bytes(r.encode_list());
    }
    ScalarValue::Str(output.to_string().into())
}

/// The in-memory form of one item of a document's outputs list; `None` for anything else.
pub(crate) fn from_item(item: &ValueRef<'_>) -> Option<Value> {
    match item {
        ValueRef::Scalar(ScalarValueRef::Str(s)) => crate::json::parse_str(s),
        ValueRef::Scalar(ScalarValueRef::Bytes(b)) => match BlobRef::decode_any(b)? {
            (r, false) => Some(r.stub()),
            (r, true) => Some(r.list_stub()),
        },
        _ => None,
    }
}

/// The bytes a stub names, checked against it.
fn fetch(r: BlobRef, source: &dyn BlobSource) -> Result<Value, BlobError> {
    let bytes = source.blob(&r).ok_or(BlobError::Missing(r))?;
    if !r.matches(&bytes) {
        return Err(BlobError::Damaged(r));
    }
    crate::json::parse(&bytes).map_err(|_| BlobError::Damaged(r))
}

/// `outputs` with every stub replaced by the output, or the run of outputs, it stands for.
pub(crate) fn resolve(outputs: &[Value], source: &dyn BlobSource) -> Result<Vec<Value>, BlobError> {
    let mut out = Vec::with_capacity(outputs.len());
    for o in outputs {
        if let Some(r) = BlobRef::from_stub(o) {
            out.push(fetch(r, source)?);
        } else if let Some(r) = BlobRef::from_list_stub(o) {
            match fetch(r, source)? {
                Value::Array(run) if run.iter().all(Value::is_object) => out.extend(run),
                _ => return Err(BlobError::Damaged(r)),
            }
        } else {
            out.push(o.clone());
        }
    }
    Ok(out)
}

impl Project {
    /// The blobs of outputs externalised by this replica's edits since the last call. Store
    /// them before storing the edits' changes: a change naming a blob nobody holds cannot be
    /// exported anywhere.
    pub fn take_blobs(&mut self) -> Vec<Blob> {
        std::mem::take(&mut self.new_blobs)
    }

    /// Every stored output the current document refers to, in any notebook.
    pub fn blob_refs(&self) -> BTreeSet<BlobRef> {
        let mut out = BTreeSet::new();
        let Some(roots) = &self.roots else {
            return out;
        };
        for nb in self.doc.map_range(&roots.notebooks, ..) {
            let Some(cells) = self.get_obj(&nb.id(), K_CELLS, ObjType::Map) else {
                continue;
            };
            for cell in self.doc.map_range(&cells, ..) {
                let Some(list) = self.get_obj(&cell.id(), K_OUTPUTS, ObjType::List) else {
                    continue;
                };
                for item in self.doc.list_range(&list, ..) {
                    if let ValueRef::Scalar(ScalarValueRef::Bytes(b)) = &item.value
                        && let Some((r, _)) = BlobRef::decode_any(b)
                    {
                        out.insert(r);
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_round_trip_and_refuse_anything_else() {
        let r = BlobRef::of(b"a large output");
        assert_eq!(BlobRef::decode(&r.encode()), Some(r));
        assert_eq!(BlobRef::from_stub(&r.stub()), Some(r));
        assert!(r.matches(b"a large output"));
        assert!(!r.matches(b"a large outpuT"));
        assert_eq!(BlobRef::decode(&r.encode()[1..]), None);
        let mut wrong = r.encode();
        wrong[0] = 3;
        assert_eq!(BlobRef::decode(&wrong), None);
        assert_eq!(
            BlobRef::decode(&r.encode_list()),
            None,
            "a run is not one output"
        );
        assert_eq!(BlobRef::decode_any(&r.encode_list()), Some((r, true)));
        assert_eq!(BlobRef::from_list_stub(&r.list_stub()), Some(r));
        assert_eq!(BlobRef::from_stub(&r.list_stub()), None);
        let mut stub = r.stub();
        stub["blake3"] = json!("zz");
        assert_eq!(BlobRef::from_stub(&stub), None);
        assert_eq!(
            BlobRef::from_stub(&json!({"output_type": "stream", "text": "x"})),
            None
        );
    }

    #[test]
    fn many_small_outputs_leave_the_document_as_runs() {
        let plot = |i: usize| {
            json!({"output_type": "display_data", "metadata": {},
                   "data": {"image/png": format!("{i:05}{}", "A".repeat(30 * 1024 - 100))}})
        };
        let big = json!({"output_type": "stream", "name": "stdout",
                         "text": "x".repeat(INLINE_OUTPUT_BYTES + 1)});
        let mut outputs: Vec<Value> = (0..150).map(plot).collect();
        outputs.push(big.clone());
        outputs.extend((150..300).map(plot));
        let mut blobs = Vec::new();
        let kept = externalise_all(&outputs, &mut blobs);
        assert_eq!(kept.len(), 3, "a run, the large one, a run");
        assert!(BlobRef::from_list_stub(&kept[0]).is_some());
        assert!(BlobRef::from_stub(&kept[1]).is_some());
        assert!(BlobRef::from_list_stub(&kept[2]).is_some());
        let inline: usize = kept.iter().map(|o| o.to_string().len()).sum();
        assert!(inline < 1024, "{inline} bytes stay in the document");
        let held: std::collections::HashMap<BlobRef, Vec<u8>> =
            blobs.iter().map(|b| (b.id, b.bytes.clone())).collect();
        assert_eq!(resolve(&kept, &held).expect("resolves"), outputs);
        assert_eq!(externalise_all(&kept, &mut blobs), kept, "stubs stay stubs");

        // 50,000 lines printed one by one.
        let lines: Vec<Value> = (0..50_000)
            .map(|i| json!({"output_type": "stream", "name": "stdout", "text": format!("{i}\n")}))
            .collect();
        let kept = externalise_all(&lines, &mut blobs);
        assert_eq!(kept.len(), 1);
        let held: std::collections::HashMap<BlobRef, Vec<u8>> =
            blobs.iter().map(|b| (b.id, b.bytes.clone())).collect();
        assert_eq!(resolve(&kept, &held).expect("resolves"), lines);
        // A run that is not a list of outputs is damage.
        let fake = BlobRef::of(b"[1,2]");
        let held: std::collections::HashMap<BlobRef, Vec<u8>> = [(fake, b"[1,2]".to_vec())].into();
        assert!(matches!(
            resolve(&[fake.list_stub()], &held),
            Err(BlobError::Damaged(_))
        ));
    }

    #[test]
    fn only_large_outputs_leave_the_document() {
        let mut blobs = Vec::new();
        let small = json!({"output_type": "stream", "name": "stdout", "text": "ok\n"});
        assert_eq!(externalise(&small, &mut blobs), small);
        assert!(blobs.is_empty());
        let big = json!({"output_type": "stream", "name": "stdout",
                         "text": "x".repeat(INLINE_OUTPUT_BYTES)});
        let stub = externalise(&big, &mut blobs);
        let r = BlobRef::from_stub(&stub).expect("a stub");
        assert_eq!(blobs.len(), 1);
        assert!(r.matches(&blobs[0].bytes));
        assert_eq!(externalise(&stub, &mut blobs), stub, "a stub stays a stub");
        let held: std::collections::HashMap<BlobRef, Vec<u8>> =
            blobs.iter().map(|b| (b.id, b.bytes.clone())).collect();
        assert_eq!(
            resolve(&[small.clone(), stub.clone()], &held).expect("resolves"),
            vec![small, big]
        );
        assert!(matches!(
            resolve(std::slice::from_ref(&stub), &NoBlobs),
            Err(BlobError::Missing(_))
        ));
        let damaged: std::collections::HashMap<BlobRef, Vec<u8>> =
            [(r, b"something else".to_vec())].into();
        assert!(matches!(
            resolve(&[stub], &damaged),
            Err(BlobError::Damaged(_))
        ));
    }
}
