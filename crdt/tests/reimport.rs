//! Updating a notebook from a newer version of its `.ipynb` file: only the difference is
//! applied, an unchanged file changes nothing, concurrent edits by others survive, and no cell is
//! ever duplicated.

use std::collections::{BTreeMap, BTreeSet};

use automerge::ReadDoc;
use orrery_crdt::nbformat::base::MAX_EXPORT_RECORDS;
use orrery_crdt::nbformat::{FileOrigin, NbformatError, parse};
use orrery_crdt::{
    Batch, CellId, CellKind, EditError, NewCell, NotebookId, Project, Role, Session, UpdateSummary,
    Visibility,
};
use orrery_protocol::{AuthorId, SecretKey};
use serde_json::{Value, json};

/// nbformat 4.5, every cell with an id.
const GAIA: &str = include_str!("../../node/samples/gaia-variable-stars.ipynb");
/// nbformat 4.4, no cell ids.
const XMM: &str = include_str!("../../node/samples/xmm-spectrum.ipynb");

fn session(i: u8) -> Session {
    let key = SecretKey::from_bytes(&[i; 32]).expect("32 bytes");
    Session::with_session_part(key, [i; 16])
}

/// Alice's project with Bob as an editor and Carol as a viewer, and `file` imported by Alice.
fn project_with(file: &str) -> (Project, NotebookId, Session, Session) {
    let (alice, bob) = (session(1), session(2));
    let (mut p, _) = Project::create(&alice, "Variables", Visibility::Shared).expect("create");
    p.set_member(&alice, bob.author(), Role::Editor)
        .expect("bob");
    p.set_member(&alice, session(3).author(), Role::Viewer)
        .expect("carol");
    let nb = p
        .import_ipynb(&alice, file.as_bytes(), "notebook")
        .expect("import");
    p.seal(&alice);
    (p, nb, alice, bob)
}

/// A second replica with everything `p` has.
fn replica_of(p: &Project) -> Project {
    let mut r = Project::empty(p.id());
    r.ingest(p.history()).expect("history ingests");
    r
}

/// Each side's sealed changes delivered to the other.
fn exchange(a: &mut Project, from_a: Batch, b: &mut Project, from_b: Batch) {
    a.ingest(from_b).expect("a ingests b's changes");
    b.ingest(from_a).expect("b ingests a's changes");
    assert_eq!(a.heads(), b.heads(), "both replicas have the same history");
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("json")
}

fn joined(source: &Value) -> String {
    match source {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => String::new(),
    }
}

fn lines(source: &str) -> Value {
    Value::Array(
        source
            .split_inclusive('\n')
            .map(|l| Value::String(l.into()))
            .collect(),
    )
}

fn source_of(cell: &Value) -> String {
    joined(&cell["source"])
}

fn set_source(cell: &mut Value, source: &str) {
    cell["source"] = lines(source);
}

/// What a cell of a file is, with the source joined: (id, type, source, outputs, execution
/// count, metadata, attachments). Ids are left out when `with_ids` is false.
fn cells(file: &Value, with_ids: bool) -> Vec<Value> {
    file["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .map(|c| {
            let outputs = c.get("outputs").cloned().unwrap_or(json!([]));
            json!({
                "id": if with_ids { c["id"].clone() } else { Value::Null },
                "type": c["cell_type"],
                "source": source_of(c),
                "outputs": outputs,
                "execution_count": c.get("execution_count").cloned().unwrap_or(Value::Null),
                "metadata": c.get("metadata").cloned().unwrap_or(json!({})),
                "attachments": c.get("attachments").cloned().unwrap_or(Value::Null),
            })
        })
        .collect()
}

/// A notebook's own metadata: without `orrery`, where an export records its origin (the heads
/// it was exported at, which differ from one export to the next).
fn own_metadata(file: &Value) -> Value {
    let mut metadata = file["metadata"].clone();
    if let Some(m) = metadata.as_object_mut() {
        m.remove("orrery");
    }
    metadata
}

/// The notebook, exported, equals `file` cell for cell, and its metadata too.
fn assert_matches(p: &Project, nb: &NotebookId, file: &Value, with_ids: bool) {
    let exported = json(&p.export_ipynb(nb).expect("export"));
    assert_eq!(cells(&exported, with_ids), cells(file, with_ids));
    assert_eq!(own_metadata(&exported), own_metadata(file));
}

fn authors_of_cell(p: &Project, nb: &NotebookId, cell: &CellId) -> BTreeMap<AuthorId, usize> {
    p.text_authors(&p.source_obj(nb, cell).expect("source"))
}

/// Authors credited for a cell (characters or changes).
fn credited(p: &Project, nb: &NotebookId, cell: &CellId) -> BTreeSet<AuthorId> {
    p.credits()
        .notebooks
        .into_iter()
        .find(|n| &n.notebook == nb)
        .expect("notebook credited")
        .cells
        .into_iter()
        .find(|c| &c.cell == cell)
        .expect("cell credited")
        .shares
        .into_iter()
        .map(|s| s.author)
        .collect()
}

fn id(s: &str) -> CellId {
    s.parse().expect("cell id")
}

#[test]
fn an_unchanged_file_makes_no_change() {
    for file in [GAIA, XMM] {
        let (mut p, nb, alice, bob) = project_with(file);
        let exported = p.export_ipynb(&nb).expect("export");
        let (heads, count) = (p.heads(), p.change_count());
        // The export, the original file, by the importer or by someone else: nothing to do.
        for (who, bytes) in [
            (&alice, exported.as_bytes()),
            (&bob, exported.as_bytes()),
            (&alice, file.as_bytes()),
            (&bob, file.as_bytes()),
        ] {
            let summary = p.update_from_ipynb(who, &nb, bytes).expect("update");
            assert_eq!(summary, UpdateSummary::default());
            assert!(summary.is_unchanged());
        }
        assert_eq!(p.heads(), heads);
        assert_eq!(p.change_count(), count);
        assert!(!p.has_unsealed(), "nothing to seal");
        assert_eq!(p.export_ipynb(&nb).expect("export"), exported);
    }
}

/// The gaia notebook, exported, with cell 3 edited, a cell added at 4, cell 5 removed, cell 9
/// moved to the front and cell 4's outputs refreshed.
fn newer_gaia(p: &Project, nb: &NotebookId) -> (Value, String) {
    newer_gaia_from(&p.export_ipynb(nb).expect("export"))
}

/// [`newer_gaia`]'s edits made to `exported` (the gaia notebook as a file), as Jupyter would
/// make them: the rest of the file, its metadata included, is kept.
fn newer_gaia_from(exported: &str) -> (Value, String) {
    let mut file = json(exported);
    let cells = file["cells"].as_array_mut().expect("cells");
    let load = source_of(&cells[3]);
    let at = load.find("\ngood").expect("a line to edit after");
    let inserted = "\nprint(len(lc), \"transits\")";
    set_source(
        &mut cells[3],
        &format!("{}{inserted}{}", &load[..at], &load[at..]),
    );
    cells[4]["execution_count"] = json!(12);
    cells[4]["outputs"] = json!([{"output_type": "execute_result", "execution_count": 12,
        "metadata": {}, "data": {"text/plain": ["(15.2, 0.31)"]}}]);
    assert_eq!(cells[5]["id"], "f2c8d610-lombscargle");
    cells.remove(5);
    let moved = cells.remove(8);
    assert_eq!(moved["id"], "3d8b7e6a-mismatch");
    cells.insert(0, moved);
    cells.insert(
        4,
        json!({"cell_type": "markdown", "id": "new-notes", "metadata": {"tags": ["added"]},
            "source": lines("## Notes\n\nAdded in the newer file.")}),
    );
    let text = serde_json::to_string_pretty(&file).expect("serialise");
    (file, text)
}

#[test]
fn a_newer_file_is_applied_as_its_difference() {
    let (mut p, nb, alice, bob) = project_with(GAIA);
    let before = p.notebook(&nb).expect("notebook");
    let source_objs: Vec<_> = before
        .cells
        .iter()
        .map(|c| p.source_obj(&nb, &c.id).expect("source"))
        .collect();
    let (file, text) = newer_gaia(&p, &nb);
    let count = p.change_count();

    let summary = p
        .update_from_ipynb(&bob, &nb, text.as_bytes())
        .expect("update");
    let inserted = "\nprint(len(lc), \"transits\")".chars().count();
    assert_eq!(
        summary,
        UpdateSummary {
            added: 1,
            removed: 1,
            moved: 1,
            edited: 1,
            refreshed: 1,
            chars_inserted: inserted,
            chars_deleted: 0,
            notebook_metadata: false,
            kept: 0,
            left_deleted: 0,
            changes: 1,
        }
    );
    assert_eq!(
        summary.to_string(),
        "1 cell added, 1 edited (+27 −0 chars), 1 moved, 1 removed, 1 with new outputs or metadata"
    );
    assert_eq!(
        p.change_count(),
        count + 1,
        "one change for the whole update"
    );
    assert_matches(&p, &nb, &file, true);

    // The same source objects, edited in place: Alice keeps the credit for what she wrote.
    for (cell, obj) in before.cells.iter().zip(&source_objs) {
        if cell.id.as_str() == "f2c8d610-lombscargle" {
            continue;
        }
        assert_eq!(&p.source_obj(&nb, &cell.id).expect("source"), obj);
    }
    let load = id("d41b7f08-load");
    let authors = authors_of_cell(&p, &nb, &load);
    assert_eq!(authors.get(&bob.author()), Some(&inserted));
    assert_eq!(
        authors.get(&alice.author()),
        Some(&before.cells[3].source.chars().count())
    );
    // Cells the update left alone are untouched by Bob, moved ones only have a new place.
    for untouched in ["a3f1c2d4-title", "b7e20c91-imports", "1b6f5c48-fold"] {
        let cell = id(untouched);
        assert_eq!(
            credited(&p, &nb, &cell),
            [alice.author()].into(),
            "{untouched}"
        );
    }
    let moved = id("3d8b7e6a-mismatch");
    assert_eq!(
        authors_of_cell(&p, &nb, &moved).keys().collect::<Vec<_>>(),
        [&alice.author()]
    );
    let refreshed = p.cell(&nb, &id("e5a6c3b2-summary")).expect("cell");
    assert_eq!(refreshed.source, before.cells[4].source);
    assert_eq!(refreshed.execution_count, Some(12));

    // Applying the same file again changes nothing more.
    let again = p
        .update_from_ipynb(&bob, &nb, text.as_bytes())
        .expect("update");
    assert!(again.is_unchanged(), "{again:?}");
    assert_eq!(p.change_count(), count + 1);
}

#[test]
fn concurrent_edits_by_others_survive_an_update() {
    let (mut a, nb, alice, bob) = project_with(GAIA);
    let mut b = replica_of(&a);
    let (file, text) = newer_gaia(&a, &nb);
    let imports = id("b7e20c91-imports");
    let fold = id("1b6f5c48-fold");
    let load = id("d41b7f08-load");

    // Alice brings in the newer file...
    a.update_from_ipynb(&alice, &nb, text.as_bytes())
        .expect("update");
    // ...while Bob, who has not seen it, types into another cell and into the edited cell.
    b.splice_source(&bob, &nb, &imports, 0, 0, "# bob: imports\n")
        .expect("edit");
    let fold_len = b.cell(&nb, &fold).expect("cell").source.chars().count();
    b.splice_source(&bob, &nb, &fold, fold_len, 0, "\nfig.savefig(\"fold.png\")")
        .expect("edit");
    // In the middle of the load cell, before the line the file adds.
    let load_src = b.cell(&nb, &load).expect("cell").source;
    let open_at = load_src
        .find("with fits.open")
        .expect("a line to type before");
    let open_chars = load_src[..open_at].chars().count();
    b.splice_source(&bob, &nb, &load, open_chars, 0, "# bob: open\n")
        .expect("edit");
    let (from_a, from_b) = (a.seal(&alice), b.seal(&bob));
    exchange(&mut a, from_a, &mut b, from_b);

    let (na, nb_b) = (
        a.notebook(&nb).expect("notebook"),
        b.notebook(&nb).expect("notebook"),
    );
    assert_eq!(na, nb_b, "the replicas agree");
    let ids: Vec<String> = na.cells.iter().map(|c| c.id.to_string()).collect();
    let file_ids: Vec<String> = file["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(ids, file_ids, "the file's cells, in its order, none twice");

    let file_cells = file["cells"].as_array().expect("cells");
    let file_source = |cell: &CellId| {
        source_of(
            file_cells
                .iter()
                .find(|c| c["id"] == cell.as_str())
                .expect("in file"),
        )
    };
    let cell = |c: &CellId| a.cell(&nb, c).expect("cell").source;
    assert_eq!(
        cell(&imports),
        format!("# bob: imports\n{}", file_source(&imports))
    );
    assert_eq!(
        cell(&fold),
        format!("{}\nfig.savefig(\"fold.png\")", file_source(&fold))
    );
    // Both edits of the load cell, each where it was made: Bob's line and the file's new one.
    let newer_load = file_source(&load);
    let open_at = newer_load.find("with fits.open").expect("still there");
    assert_eq!(
        cell(&load),
        format!(
            "{}# bob: open\n{}",
            &newer_load[..open_at],
            &newer_load[open_at..]
        )
    );
}

#[test]
fn cells_without_ids_are_matched_by_position_and_content() {
    let (mut p, nb, alice, _) = project_with(XMM);
    let ids = p.cell_ids(&nb).expect("cells");
    let original = json(XMM);

    // One cell edited.
    let mut file = original.clone();
    let cell2 = source_of(&file["cells"][2]);
    set_source(
        &mut file["cells"][2],
        &cell2.replace("exposure = ", "exposure_s = "),
    );
    let text = serde_json::to_string(&file).expect("serialise");
    let summary = p
        .update_from_ipynb(&alice, &nb, text.as_bytes())
        .expect("update");
    assert_eq!(
        (
            summary.edited,
            summary.added,
            summary.removed,
            summary.moved
        ),
        (1, 0, 0, 0),
        "{summary:?}"
    );
    assert_eq!(
        p.cell_ids(&nb).expect("cells"),
        ids,
        "every cell kept its id"
    );
    assert_matches(&p, &nb, &file, false);

    // A cell added, the last removed and another edited: still no duplicate.
    let cells = file["cells"].as_array_mut().expect("cells");
    cells.insert(
        2,
        json!({"cell_type": "markdown", "metadata": {}, "source": ["## Count rates"]}),
    );
    cells.pop();
    let cell3 = source_of(&cells[3]);
    set_source(&mut cells[3], &format!("{cell3}\nrates"));
    let text = serde_json::to_string(&file).expect("serialise");
    let summary = p
        .update_from_ipynb(&alice, &nb, text.as_bytes())
        .expect("update");
    assert_eq!(
        (
            summary.edited,
            summary.added,
            summary.removed,
            summary.moved
        ),
        (1, 1, 1, 0),
        "{summary:?}"
    );
    let now = p.cell_ids(&nb).expect("cells");
    assert_eq!(now.len(), 5);
    assert_eq!(
        [&now[..2], &now[3..]].concat(),
        ids[..4].to_vec(),
        "the kept cells are the same cells"
    );
    assert_matches(&p, &nb, &file, false);
    // The same id-less file again: nothing.
    assert!(
        p.update_from_ipynb(&alice, &nb, text.as_bytes())
            .expect("update")
            .is_unchanged()
    );
}

#[test]
fn independent_imports_of_one_file_stay_two_notebooks() {
    let (mut a, _, alice, bob) = project_with(GAIA);
    let mut b = replica_of(&a);
    let first = a.notebook_ids();
    let na = a
        .import_ipynb(&alice, GAIA.as_bytes(), "gaia")
        .expect("import");
    let nb = b
        .import_ipynb(&bob, GAIA.as_bytes(), "gaia")
        .expect("import");
    assert_ne!(na, nb, "every import is a new notebook");
    let (from_a, from_b) = (a.seal(&alice), b.seal(&bob));
    exchange(&mut a, from_a, &mut b, from_b);
    for r in [&a, &b] {
        let ids: Vec<NotebookId> = r.notebook_ids().into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids.len(), first.len() + 2);
        assert!(ids.contains(&na) && ids.contains(&nb));
        for (notebook, author) in [(&na, alice.author()), (&nb, bob.author())] {
            let n = r.notebook(notebook).expect("notebook");
            assert_eq!(n.cells.len(), 12, "one import's cells, not both");
            assert_eq!(n.created_by, Some(author));
        }
    }
}

#[test]
fn text_edits_count_code_points() {
    let base = json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "markdown", "id": "words", "metadata": {},
         "source": "naïve café 🎉 done\nλ = 1\n"}]});
    let (mut a, nb, alice, bob) = project_with(&base.to_string());
    let mut b = replica_of(&a);
    let words = id("words");
    let mut newer = base.clone();
    newer["cells"][0]["source"] = json!("naïve café 🎉🚀 done — ok\nλ = 2\n");
    let summary = a
        .update_from_ipynb(&alice, &nb, newer.to_string().as_bytes())
        .expect("update");
    assert_eq!((summary.chars_inserted, summary.chars_deleted), (7, 1));
    // Bob, concurrently, types before "done": code point 13, byte 18, UTF-16 unit 14.
    b.splice_source(&bob, &nb, &words, 13, 0, "très ")
        .expect("edit");
    let (from_a, from_b) = (a.seal(&alice), b.seal(&bob));
    exchange(&mut a, from_a, &mut b, from_b);
    for r in [&a, &b] {
        assert_eq!(
            r.cell(&nb, &words).expect("cell").source,
            "naïve café 🎉🚀 très done — ok\nλ = 2\n"
        );
    }
}

#[test]
fn a_viewer_may_not_update_and_a_missing_notebook_is_named() {
    let (mut p, nb, _, bob) = project_with(GAIA);
    let carol = session(3);
    let count = p.change_count();
    let err = p
        .update_from_ipynb(&carol, &nb, GAIA.as_bytes())
        .expect_err("viewer");
    assert!(
        matches!(err, NbformatError::Edit(EditError::NotPermitted { .. })),
        "{err}"
    );
    let missing: NotebookId = "nope".parse().expect("id");
    let err = p
        .update_from_ipynb(&bob, &missing, GAIA.as_bytes())
        .expect_err("no such notebook");
    assert!(
        matches!(err, NbformatError::Edit(EditError::NoNotebook(_))),
        "{err}"
    );
    assert_eq!(p.change_count(), count);
}

#[test]
fn cell_types_and_attachments_change_in_place() {
    let base = json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "id": "was-code", "metadata": {}, "execution_count": 3,
         "outputs": [{"output_type": "stream", "name": "stdout", "text": ["hi\n"]}],
         "source": "print('hi')"},
        {"cell_type": "markdown", "id": "was-text", "metadata": {}, "source": "x = 1",
         "attachments": {"a.png": {"image/png": "iVBORw0KGgo="}}}]});
    let (mut p, nb, alice, _) = project_with(&base.to_string());
    let mut newer = base.clone();
    newer["cells"] = json!([
        {"cell_type": "markdown", "id": "was-code", "metadata": {}, "source": "print('hi')"},
        {"cell_type": "code", "id": "was-text", "metadata": {"tags": ["t"]},
         "execution_count": null, "outputs": [], "source": "x = 1"}]);
    let summary = p
        .update_from_ipynb(&alice, &nb, newer.to_string().as_bytes())
        .expect("update");
    assert_eq!((summary.refreshed, summary.edited), (2, 0), "{summary:?}");
    assert_matches(&p, &nb, &newer, true);
    let was_code = p.cell(&nb, &id("was-code")).expect("cell");
    assert!(was_code.outputs.is_empty() && was_code.execution_count.is_none());
    assert!(
        p.update_from_ipynb(&alice, &nb, newer.to_string().as_bytes())
            .expect("update")
            .is_unchanged()
    );
}

#[test]
fn a_cell_goes_between_cells_whose_positions_tie() {
    let base = json!({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "markdown", "id": "c0", "metadata": {}, "source": "first"},
        {"cell_type": "markdown", "id": "c1", "metadata": {}, "source": "last"}]});
    let (mut a, nb, alice, bob) = project_with(&base.to_string());
    let mut b = replica_of(&a);
    // Both insert at index 1 at once: both cells get the same position key.
    let mut x = NewCell::new(CellKind::Markdown, "from alice");
    x.id = id("x");
    let mut y = NewCell::new(CellKind::Markdown, "from bob");
    y.id = id("y");
    a.insert_cell(&alice, &nb, 1, x).expect("insert");
    b.insert_cell(&bob, &nb, 1, y).expect("insert");
    let (from_a, from_b) = (a.seal(&alice), b.seal(&bob));
    exchange(&mut a, from_a, &mut b, from_b);
    let mut file = json(&a.export_ipynb(&nb).expect("export"));
    assert_eq!(
        file["cells"]
            .as_array()
            .expect("cells")
            .iter()
            .map(|c| c["id"].as_str().expect("id"))
            .collect::<Vec<_>>(),
        ["c0", "x", "y", "c1"]
    );
    file["cells"].as_array_mut().expect("cells").insert(
        2,
        json!({"cell_type": "markdown", "id": "between", "metadata": {}, "source": "mid"}),
    );
    let summary = a
        .update_from_ipynb(&alice, &nb, file.to_string().as_bytes())
        .expect("update");
    assert_eq!((summary.added, summary.moved), (1, 1), "{summary:?}");
    assert_matches(&a, &nb, &file, true);
}

// ---- three-way: the file is applied relative to its base --------------------------------------

/// The line [`newer_gaia`] adds to the load cell.
const FILE_LINE: &str = "\nprint(len(lc), \"transits\")";

/// What [`newer_gaia`] does, as an update summary.
fn newer_gaia_summary() -> UpdateSummary {
    UpdateSummary {
        added: 1,
        removed: 1,
        moved: 1,
        edited: 1,
        refreshed: 1,
        chars_inserted: FILE_LINE.chars().count(),
        changes: 1,
        ..Default::default()
    }
}

/// `from`'s changes by `s`, sealed and delivered to `to` through ingest, as a node sends them.
fn deliver(from: &mut Project, s: &Session, to: &mut Project) {
    let batch = from.seal(s);
    to.ingest(batch)
        .expect("the other replica accepts the sealed changes");
}

/// The ids of `file`'s cells, in order.
fn file_ids(file: &Value) -> Vec<CellId> {
    file["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .map(|c| id(c["id"].as_str().expect("id")))
        .collect()
}

/// The source `file` gives cell `cell`.
fn file_source(file: &Value, cell: &str) -> String {
    source_of(
        file["cells"]
            .as_array()
            .expect("cells")
            .iter()
            .find(|c| c["id"] == cell)
            .expect("the file has the cell"),
    )
}

#[test]
fn what_others_typed_before_an_update_survives_it() {
    let (mut a, nb, alice, bob) = project_with(GAIA);
    let mut b = replica_of(&a);
    let exported = a.export_ipynb(&nb).expect("export");
    let (title, imports, load, fold) = (
        id("a3f1c2d4-title"),
        id("b7e20c91-imports"),
        id("d41b7f08-load"),
        id("1b6f5c48-fold"),
    );

    // After the export Bob types into three cells, one of which the file edits, and adds a
    // cell; Alice's replica receives all of it before she brings the file back.
    let bob_load = "# bob: epoch photometry\n";
    b.splice_source(&bob, &nb, &load, 0, 0, bob_load)
        .expect("edit");
    b.splice_source(&bob, &nb, &imports, 0, 0, "# bob: imports\n")
        .expect("edit");
    let fold_len = b.cell(&nb, &fold).expect("cell").source.chars().count();
    b.splice_source(&bob, &nb, &fold, fold_len, 0, "\nfig.savefig(\"fold.png\")")
        .expect("edit");
    let mut caveats = NewCell::new(CellKind::Markdown, "Bob's caveats");
    caveats.id = id("bob-caveats");
    b.insert_cell(&bob, &nb, 2, caveats).expect("insert");
    deliver(&mut b, &bob, &mut a);
    // Alice edits too after exporting: her session has changes that the file's base lacks,
    // so changes made at the base under her session would reuse their sequence numbers.
    a.splice_source(&alice, &nb, &title, 0, 0, "Draft: ")
        .expect("edit");

    // The export, edited as Jupyter would: its `metadata.orrery` names the base.
    let (file, text) = newer_gaia_from(&exported);
    let summary = a
        .update_from_ipynb(&alice, &nb, text.as_bytes())
        .expect("update");
    assert_eq!(summary, newer_gaia_summary(), "only the file's own edits");

    let mut ids = file_ids(&file);
    let after_imports = ids.iter().position(|c| *c == imports).expect("imports") + 1;
    ids.insert(after_imports, id("bob-caveats"));
    let expected = |file: &Value, cell: &CellId| -> String {
        let f = || file_source(file, cell.as_str());
        match cell.as_str() {
            "a3f1c2d4-title" => format!("Draft: {}", f()),
            "b7e20c91-imports" => format!("# bob: imports\n{}", f()),
            "d41b7f08-load" => format!("{bob_load}{}", f()),
            "1b6f5c48-fold" => format!("{}\nfig.savefig(\"fold.png\")", f()),
            "bob-caveats" => "Bob's caveats".into(),
            _ => f(),
        }
    };
    let check = |p: &Project, file: &Value, who: &str| {
        let n = p.notebook(&nb).expect("notebook");
        assert_eq!(
            n.cells.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
            ids,
            "{who}: the file's cells in its order, Bob's added cell, none twice"
        );
        for cell in &n.cells {
            assert_eq!(
                cell.source,
                expected(file, &cell.id),
                "{who}: cell {}",
                cell.id
            );
        }
        let load_now = p.cell(&nb, &load).expect("cell").source;
        assert_eq!(load_now.matches(FILE_LINE).count(), 1, "{who}: {load_now}");
        assert_eq!(load_now.matches(bob_load).count(), 1, "{who}: {load_now}");
    };
    check(&a, &file, "Alice's replica");

    // The update's change is Alice's: credited to her, sealed with her edit in one batch, and
    // accepted by Bob's replica (no reused sequence number, every change covered by her seal).
    let load_authors = authors_of_cell(&a, &nb, &load);
    let original_load = json(GAIA)["cells"][3].clone();
    assert_eq!(
        load_authors.get(&alice.author()),
        Some(&(source_of(&original_load).chars().count() + FILE_LINE.chars().count()))
    );
    assert_eq!(
        load_authors.get(&bob.author()),
        Some(&bob_load.chars().count())
    );
    let batch = a.seal(&alice);
    assert_eq!(batch.changes.len(), 2, "Alice's edit and the update");
    assert_eq!(batch.seals.len(), 1);
    b.ingest(batch).expect("Bob's replica accepts the update");
    assert_eq!(a.heads(), b.heads());
    check(&b, &file, "Bob's replica");
    check(&replica_of(&a), &file, "a new replica");

    // The same file again: nothing. A later version of it: only what is new in it.
    let again = a
        .update_from_ipynb(&alice, &nb, text.as_bytes())
        .expect("update");
    assert!(again.is_unchanged(), "{again:?}");
    let mut v2 = file.clone();
    let summary_cell = v2["cells"]
        .as_array_mut()
        .expect("cells")
        .iter_mut()
        .find(|c| c["id"] == "e5a6c3b2-summary")
        .expect("cell");
    let src = source_of(summary_cell);
    set_source(summary_cell, &format!("{src}\n# v2"));
    let summary = a
        .update_from_ipynb(&alice, &nb, v2.to_string().as_bytes())
        .expect("update");
    assert_eq!(
        (
            summary.edited,
            summary.chars_inserted,
            summary.chars_deleted
        ),
        (1, "\n# v2".chars().count(), 0),
        "{summary:?}"
    );
    assert_eq!(summary.added + summary.removed + summary.moved, 0);
    check(&a, &v2, "after a second version");
    deliver(&mut a, &alice, &mut b);
    assert_eq!(
        a.notebook(&nb).expect("notebook"),
        b.notebook(&nb).expect("notebook")
    );
}

#[test]
fn a_file_saved_from_the_imported_one_starts_from_the_import() {
    let (mut a, nb, alice, bob) = project_with(GAIA);
    let mut b = replica_of(&a);
    let load = id("d41b7f08-load");
    let bob_load = "# bob: epoch photometry\n";
    b.splice_source(&bob, &nb, &load, 0, 0, bob_load)
        .expect("edit");
    let end = b.cell(&nb, &load).expect("cell").source.chars().count();
    b.splice_source(&bob, &nb, &load, end, 0, "\n# bob: 40 transits expected")
        .expect("edit");
    deliver(&mut b, &bob, &mut a);

    // The file Alice imported, edited in Jupyter since: it names no base of its own.
    assert!(json(GAIA)["metadata"].get("orrery").is_none());
    let (file, text) = newer_gaia_from(GAIA);
    let summary = a
        .update_from_ipynb(&alice, &nb, text.as_bytes())
        .expect("update");
    assert_eq!(summary, newer_gaia_summary());
    assert_eq!(
        a.cell(&nb, &load).expect("cell").source,
        format!(
            "{bob_load}{}\n# bob: 40 transits expected",
            file_source(&file, load.as_str())
        )
    );
    assert_eq!(a.cell_ids(&nb).expect("cells"), file_ids(&file));
    deliver(&mut a, &alice, &mut b);
    assert_eq!(a.heads(), b.heads());
    assert_eq!(
        a.notebook(&nb).expect("notebook"),
        b.notebook(&nb).expect("notebook")
    );
    // Applied again, or by Bob: nothing more.
    for (p, who) in [(&mut a, &alice), (&mut b, &bob)] {
        let again = p
            .update_from_ipynb(who, &nb, text.as_bytes())
            .expect("update");
        assert!(again.is_unchanged(), "{again:?}");
    }
}

#[test]
fn where_the_file_and_others_disagree_about_a_cell_the_others_win() {
    let (mut a, nb, alice, bob) = project_with(GAIA);
    let mut b = replica_of(&a);
    let exported = a.export_ipynb(&nb).expect("export");
    let (period, fold, compare, relative, summary_md) = (
        id("0a9e4b37-period"),
        id("1b6f5c48-fold"),
        id("2c7a6d59-compare"),
        id("4e9c8f7b-relative"),
        id("5fad9a8c-summary"),
    );

    // Since the export Bob edited the period cell, deleted the fold and comparison cells and
    // moved the last cell to the front.
    let end = b.cell(&nb, &period).expect("cell").source.chars().count();
    b.splice_source(&bob, &nb, &period, end, 0, "\n# bob: check aliases")
        .expect("edit");
    b.delete_cell(&bob, &nb, &fold).expect("delete");
    b.delete_cell(&bob, &nb, &compare).expect("delete");
    b.move_cell(&bob, &nb, &summary_md, 0).expect("move");
    deliver(&mut b, &bob, &mut a);

    // Meanwhile, in the file: the period cell removed, the fold cell edited, a cell added right
    // after the comparison cell, and the `relative` cell moved to the front.
    let mut file = json(&exported);
    let cells = file["cells"].as_array_mut().expect("cells");
    cells.retain(|c| c["id"] != period.as_str());
    let fold_at = cells
        .iter()
        .position(|c| c["id"] == fold.as_str())
        .expect("fold");
    let fold_src = source_of(&cells[fold_at]);
    set_source(&mut cells[fold_at], &format!("{fold_src}\nplt.show()"));
    let compare_at = cells
        .iter()
        .position(|c| c["id"] == compare.as_str())
        .expect("compare");
    cells.insert(
        compare_at + 1,
        json!({"cell_type": "markdown", "id": "after-compare", "metadata": {},
            "source": "Added after the comparison."}),
    );
    let relative_at = cells
        .iter()
        .position(|c| c["id"] == relative.as_str())
        .expect("relative");
    let moved = cells.remove(relative_at);
    cells.insert(0, moved);

    let summary = a
        .update_from_ipynb(&alice, &nb, file.to_string().as_bytes())
        .expect("update");
    assert_eq!(
        summary,
        UpdateSummary {
            added: 1,
            moved: 1,
            kept: 1,
            left_deleted: 1,
            changes: 1,
            ..Default::default()
        }
    );
    assert_eq!(
        summary.to_string(),
        "1 cell added, 1 moved, 1 kept (others edited it since the file's base), 1 left \
         deleted (others deleted it since the file's base)"
    );
    deliver(&mut a, &alice, &mut b);
    assert_eq!(a.heads(), b.heads());
    let n = a.notebook(&nb).expect("notebook");
    assert_eq!(n, b.notebook(&nb).expect("notebook"));
    let ids: Vec<&str> = n.cells.iter().map(|c| c.id.as_str()).collect();
    // Both moved cells lead; the removed-but-edited cell stays with Bob's edit; the deleted
    // cells stay deleted; the new cell sits where the comparison cell was.
    assert_eq!(
        ids.iter().take(2).copied().collect::<BTreeSet<_>>(),
        [relative.as_str(), summary_md.as_str()].into()
    );
    assert_eq!(
        ids[2..],
        [
            "a3f1c2d4-title",
            "b7e20c91-imports",
            "c0d93e5a-photometry",
            "d41b7f08-load",
            "e5a6c3b2-summary",
            "f2c8d610-lombscargle",
            "0a9e4b37-period",
            "after-compare",
            "3d8b7e6a-mismatch",
        ]
    );
    assert!(
        n.cells
            .iter()
            .find(|c| c.id == period)
            .expect("kept")
            .source
            .ends_with("\n# bob: check aliases")
    );
}

#[test]
fn an_editor_who_joined_after_the_import_can_update_from_the_file() {
    let (mut p, nb, alice, bob) = project_with(GAIA);
    let dave = session(4);
    p.set_member(&alice, dave.author(), Role::Editor)
        .expect("dave");
    let load = id("d41b7f08-load");
    p.splice_source(&bob, &nb, &load, 0, 0, "# bob: epoch photometry\n")
        .expect("edit");
    p.seal(&alice);
    p.seal(&bob);
    let mut other = replica_of(&p);

    // The file's base (the import) predates Dave's membership: changes made there would be
    // refused everywhere, so the update starts from where Dave became an editor.
    let (file, text) = newer_gaia_from(GAIA);
    let summary = p
        .update_from_ipynb(&dave, &nb, text.as_bytes())
        .expect("update");
    assert_eq!(summary, newer_gaia_summary());
    assert_eq!(
        p.cell(&nb, &load).expect("cell").source,
        format!(
            "# bob: epoch photometry\n{}",
            file_source(&file, load.as_str())
        )
    );
    deliver(&mut p, &dave, &mut other);
    assert_eq!(
        p.notebook(&nb).expect("notebook"),
        other.notebook(&nb).expect("notebook")
    );
}

#[test]
fn an_export_names_its_notebook_and_heads() {
    let (mut p, nb, alice, _) = project_with(GAIA);
    let exported = p.export_ipynb(&nb).expect("export");
    let file = json(&exported);
    let heads: Vec<String> = p.heads().iter().map(ToString::to_string).collect();
    assert_eq!(
        file["metadata"]["orrery"],
        json!({"notebook": nb.as_str(), "heads": heads})
    );
    assert_eq!(own_metadata(&file), json(GAIA)["metadata"]);
    let parsed = parse(exported.as_bytes()).expect("parses");
    assert_eq!(
        parsed.origin,
        Some(FileOrigin {
            notebook: nb.clone(),
            heads: p.heads()
        })
    );
    assert_eq!(
        parsed.metadata,
        json(GAIA)["metadata"],
        "not the notebook's own"
    );

    // Imported as a new notebook, the export is that notebook's file from then on.
    let copy = p
        .import_ipynb(&alice, exported.as_bytes(), "copy")
        .expect("import");
    assert_eq!(
        p.notebook(&copy).expect("notebook").metadata,
        json(GAIA)["metadata"]
    );
    let copy_file = json(&p.export_ipynb(&copy).expect("export"));
    assert_eq!(copy_file["metadata"]["orrery"]["notebook"], copy.as_str());
    // The first notebook's export, edited, brought into the copy: it names another notebook,
    // so it starts from the copy's import; the first notebook is untouched.
    let before = p.notebook(&nb).expect("notebook");
    let (_, text) = newer_gaia_from(&exported);
    let summary = p
        .update_from_ipynb(&alice, &copy, text.as_bytes())
        .expect("update");
    assert_eq!(summary, newer_gaia_summary());
    assert_eq!(p.notebook(&nb).expect("notebook"), before);
}

#[test]
fn a_notebook_keeps_a_bounded_number_of_export_records() {
    let (mut p, nb, alice, _) = project_with(GAIA);
    let load = id("d41b7f08-load");
    for round in 0..MAX_EXPORT_RECORDS + 3 {
        let mut file = json(&p.export_ipynb(&nb).expect("export"));
        let cell = &mut file["cells"][3];
        assert_eq!(cell["id"], load.as_str());
        let src = source_of(cell);
        set_source(cell, &format!("{src}\n# round {round}"));
        let summary = p
            .update_from_ipynb(&alice, &nb, file.to_string().as_bytes())
            .expect("update");
        assert_eq!((summary.edited, summary.changes), (1, 1));
    }
    let doc = p.doc();
    let notebooks = match doc.get(automerge::ROOT, "notebooks").expect("read") {
        Some((_, obj)) => obj,
        None => panic!("no notebooks"),
    };
    let nb_obj = match doc.get(&notebooks, nb.as_str()).expect("read") {
        Some((_, obj)) => obj,
        None => panic!("no notebook"),
    };
    let records: Vec<String> = doc
        .keys(&nb_obj)
        .filter(|k| k.starts_with("file_base:"))
        .collect();
    assert!(records.contains(&"file_base:import".to_string()));
    assert_eq!(records.len(), MAX_EXPORT_RECORDS + 1, "{records:?}");
}

/// A new source for a cell, from its old one.
type Rewrite<'a> = &'a dyn Fn(&str) -> String;

/// Copy `i` of a file: its cells edited by `edit` (cell index → new source), cells removed and
/// cells added (at an index, with an id).
struct CopyEdits<'a> {
    edit: &'a [(usize, Rewrite<'a>)],
    remove: &'a [usize],
    add: &'a [(usize, &'a str, &'a str)],
}

fn edited_copy(file: &Value, e: &CopyEdits<'_>) -> (Value, String) {
    let mut copy = file.clone();
    let cells = copy["cells"].as_array_mut().expect("cells");
    for (i, f) in e.edit {
        let s = source_of(&cells[*i]);
        set_source(&mut cells[*i], &f(&s));
    }
    let mut remove = e.remove.to_vec();
    remove.sort_unstable();
    for i in remove.into_iter().rev() {
        cells.remove(i);
    }
    for (at, cid, text) in e.add {
        cells.insert(
            *at,
            json!({"cell_type": "markdown", "id": cid, "metadata": {}, "source": lines(text)}),
        );
    }
    let text = serde_json::to_string(&copy).expect("serialise");
    (copy, text)
}

fn sources(p: &Project, nb: &NotebookId) -> BTreeMap<String, String> {
    p.notebook(nb)
        .expect("notebook")
        .cells
        .into_iter()
        .map(|c| (c.id.to_string(), c.source))
        .collect()
}

/// Two (or three) people each take a copy of the same file, edit it apart and bring it back one
/// after the other: every copy's edits survive, none is reverted, nothing is typed twice.
fn copies_of_one_file_all_survive(from_export: bool) {
    let (mut p, nb, alice, bob) = project_with(GAIA);
    let carol = session(4);
    p.set_member(&alice, carol.author(), Role::Editor)
        .expect("carol edits");
    let start = if from_export {
        json(&p.export_ipynb(&nb).expect("export"))
    } else {
        json(GAIA)
    };
    let before = sources(&p, &nb);
    let cell_id = |i: usize| start["cells"][i]["id"].as_str().expect("id").to_string();

    // Alice edits cell 1 and 3 (appending), deletes cell 5 and adds a cell.
    let (_, alice_file) = edited_copy(
        &start,
        &CopyEdits {
            edit: &[
                (1, &|s: &str| format!("{s}\n# alice: one")),
                (3, &|s: &str| format!("# alice: three\n{s}")),
            ],
            remove: &[5],
            add: &[(2, "alice-notes", "Alice's notes")],
        },
    );
    // Bob edits cell 1 too (elsewhere in it) and cell 2, and adds a cell of his own.
    let (_, bob_file) = edited_copy(
        &start,
        &CopyEdits {
            edit: &[
                (1, &|s: &str| format!("# bob: one\n{s}")),
                (2, &|s: &str| format!("{s}\n# bob: two")),
            ],
            remove: &[],
            add: &[(4, "bob-notes", "Bob's notes")],
        },
    );
    // Carol removes cell 6 and edits cell 3 at its end.
    let (_, carol_file) = edited_copy(
        &start,
        &CopyEdits {
            edit: &[(3, &|s: &str| format!("{s}\n# carol: three"))],
            remove: &[6],
            add: &[],
        },
    );
    for (who, s, file) in [
        ("alice", &alice, &alice_file),
        ("bob", &bob, &bob_file),
        ("carol", &carol, &carol_file),
    ] {
        p.update_from_ipynb(s, &nb, file.as_bytes())
            .unwrap_or_else(|e| panic!("{who}'s copy: {e}"));
    }
    let now = sources(&p, &nb);
    let (one, two, three) = (cell_id(1), cell_id(2), cell_id(3));
    assert_eq!(
        now[&one],
        format!("# bob: one\n{}\n# alice: one", before[&one]),
        "both edits of one cell"
    );
    assert_eq!(now[&two], format!("{}\n# bob: two", before[&two]));
    assert_eq!(
        now[&three],
        format!("# alice: three\n{}\n# carol: three", before[&three])
    );
    assert_eq!(now["alice-notes"], "Alice's notes");
    assert_eq!(now["bob-notes"], "Bob's notes");
    assert!(!now.contains_key(&cell_id(5)), "Alice's delete holds");
    assert!(!now.contains_key(&cell_id(6)), "Carol's delete holds");
    assert_eq!(now.len(), before.len() - 2 + 2, "no cell doubled or lost");

    // Alice edits her copy again and brings it back: only her new edit arrives.
    let (_, again) = edited_copy(
        &json(&alice_file),
        &CopyEdits {
            edit: &[(1, &|s: &str| format!("{s}\n# alice: later"))],
            remove: &[],
            add: &[],
        },
    );
    p.update_from_ipynb(&alice, &nb, again.as_bytes())
        .expect("alice again");
    let now = sources(&p, &nb);
    assert_eq!(
        now[&one],
        format!("# bob: one\n{}\n# alice: one\n# alice: later", before[&one])
    );
    assert!(now.contains_key("bob-notes"), "Bob's cell is not reverted");
    assert_eq!(
        now[&three],
        format!("# alice: three\n{}\n# carol: three", before[&three]),
        "nothing typed twice"
    );
}

#[test]
fn copies_of_one_export_edited_apart_all_survive() {
    copies_of_one_file_all_survive(true);
}

#[test]
fn copies_of_the_imported_file_edited_apart_all_survive() {
    copies_of_one_file_all_survive(false);
}

#[test]
fn a_file_that_cannot_be_placed_is_refused() {
    let (mut p, nb, alice, bob) = project_with(GAIA);
    let start = json(&p.export_ipynb(&nb).expect("export"));
    // Alice turns `x` into `y` in a cell, Bob turns it into `z`: Bob's copy is as near to the
    // export as to Alice's version.
    let cell = start["cells"][1]["id"].as_str().expect("id").to_string();
    let swap = |to: &'static str| {
        move |s: &str| format!("{}\n{to}", s.strip_suffix("\nx").expect("ends with x"))
    };
    let (alice_x, _) = edited_copy(
        &start,
        &CopyEdits {
            edit: &[(1, &|s: &str| format!("{s}\nx"))],
            remove: &[],
            add: &[],
        },
    );
    let base_with_x = serde_json::to_string(&alice_x).expect("json");
    p.update_from_ipynb(&alice, &nb, base_with_x.as_bytes())
        .expect("x added");
    let exported = json(&p.export_ipynb(&nb).expect("export"));
    let (_, alice_y) = edited_copy(
        &exported,
        &CopyEdits {
            edit: &[(1, &swap("y"))],
            remove: &[],
            add: &[],
        },
    );
    let (_, bob_z) = edited_copy(
        &exported,
        &CopyEdits {
            edit: &[(1, &swap("z"))],
            remove: &[],
            add: &[],
        },
    );
    p.update_from_ipynb(&alice, &nb, alice_y.as_bytes())
        .expect("alice's copy");
    let before = p.heads();
    let err = p
        .update_from_ipynb(&bob, &nb, bob_z.as_bytes())
        .expect_err("ambiguous");
    assert!(matches!(err, NbformatError::AmbiguousBase), "{err}");
    assert!(
        err.to_string().contains("Export the notebook again"),
        "{err}"
    );
    assert_eq!(p.heads(), before, "nothing changed");
    assert!(sources(&p, &nb)[&cell].ends_with("\ny"));
}
