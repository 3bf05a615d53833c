//! Live editing without a replica: splices made at an older version merge with what happened
//! since, and a reader that applies the deltas it is sent holds exactly the notebook.

use std::collections::BTreeMap;

use orrery_crdt::NotebookDelta;
use orrery_crdt::{
    CellId, CellKind, CellSplices, EditError, NewCell, Project, Role, Session, Splice, Visibility,
};
use orrery_protocol::SecretKey;

fn session(i: u8) -> Session {
    let key = SecretKey::from_bytes(&[i; 32]).expect("32 bytes");
    Session::with_session_part(key, [i; 16])
}

/// A project of Alice's with Bob an editor, and an empty notebook in it.
fn shared_notebook(alice: &Session, bob: &Session) -> (Project, orrery_crdt::NotebookId) {
    let (mut p, _) = Project::create(alice, "Timing", Visibility::Shared).expect("create");
    p.set_member(alice, bob.author(), Role::Editor)
        .expect("bob");
    let nb = p.add_notebook(alice, "Residuals").expect("notebook");
    (p, nb)
}

fn splice(pos: usize, delete: usize, insert: &str) -> Splice {
    Splice {
        pos,
        delete,
        insert: insert.into(),
    }
}

/// Applies splices (code point positions) to a text.
fn apply(text: &str, splices: &[Splice]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for s in splices {
        chars.splice(s.pos..s.pos + s.delete, s.insert.chars());
    }
    chars.into_iter().collect()
}

/// A reader holding no replica: cell sources and order, as deltas leave them.
#[derive(Debug, Default)]
struct Reader {
    texts: BTreeMap<CellId, String>,
    order: Vec<CellId>,
}

impl Reader {
    fn apply(&mut self, d: &NotebookDelta) {
        for t in &d.texts {
            let text = self.texts.get_mut(&t.cell).expect("a known cell");
            *text = apply(text, &t.splices);
        }
        // A whole cell's source is its source now (equal to the spliced text, unless the text
        // was replaced whole).
        for c in &d.cells {
            self.texts.insert(c.id.clone(), c.source.clone());
        }
        for r in &d.removed {
            self.texts.remove(r);
        }
        if let Some(order) = &d.order {
            self.order = order.clone();
        }
    }

    fn check(&self, p: &Project, nb: &orrery_crdt::NotebookId) {
        let notebook = p.notebook(nb).expect("notebook");
        let order: Vec<CellId> = notebook.cells.iter().map(|c| c.id.clone()).collect();
        assert_eq!(self.order, order, "the reader's order");
        for c in &notebook.cells {
            assert_eq!(self.texts.get(&c.id), Some(&c.source), "cell {}", c.id);
        }
        assert_eq!(self.texts.len(), notebook.cells.len());
    }
}

#[test]
fn splices_made_at_an_older_version_merge_with_what_happened_since() {
    let (alice, bob) = (session(1), session(2));
    let (mut p, nb) = shared_notebook(&alice, &bob);
    let cell = p
        .insert_cell(&alice, &nb, 0, NewCell::new(CellKind::Code, "hello world"))
        .expect("cell");
    let seen = p.heads();
    // Alice types at the start; Bob's browser, which had seen the version before, changes the
    // end.
    p.splice_source(&alice, &nb, &cell, 0, 0, "Hey, ")
        .expect("alice");
    let own = p
        .splice_at(
            &bob,
            &nb,
            &seen,
            &[CellSplices {
                cell: cell.clone(),
                splices: vec![splice(11, 0, "!"), splice(6, 1, "W")],
            }],
        )
        .expect("bob's splices");
    assert_eq!(
        p.cell(&nb, &cell).expect("cell").source,
        "Hey, hello World!"
    );
    // Bob's browser holds "hello World!" (the version of his change): the delta from it
    // brings Alice's words.
    let delta = p.notebook_delta(&nb, &[own]).expect("delta");
    assert_eq!(
        apply("hello World!", &delta.texts[0].splices),
        "Hey, hello World!"
    );
    assert_eq!(delta.heads, p.heads());
    // The change is Bob's, sealed with his key.
    let batch = p.seal(&bob);
    assert_eq!(batch.changes.len(), 1);
}

#[test]
fn a_version_that_is_unknown_or_lacks_the_session_s_own_change_is_refused() {
    let alice = session(1);
    let (mut p, _) = Project::create(&alice, "Timing", Visibility::Shared).expect("create");
    let nb = p.add_notebook(&alice, "Residuals").expect("notebook");
    let cell = p
        .insert_cell(&alice, &nb, 0, NewCell::new(CellKind::Code, "abc"))
        .expect("cell");
    let old = p.heads();
    let edit = |s: Splice| {
        vec![CellSplices {
            cell: cell.clone(),
            splices: vec![s],
        }]
    };
    // Alice's own latest change is not in `old`'s past.
    p.splice_source(&alice, &nb, &cell, 0, 0, "x")
        .expect("edit");
    let before = p.heads();
    let stale = p.splice_at(&alice, &nb, &old, &edit(splice(0, 0, "y")));
    assert!(matches!(stale, Err(EditError::Stale(_))), "{stale:?}");
    let unknown = p.splice_at(
        &alice,
        &nb,
        &[orrery_protocol::ChangeHash([7; 32])],
        &edit(splice(0, 0, "y")),
    );
    assert!(matches!(unknown, Err(EditError::Stale(_))), "{unknown:?}");
    let outside = p.splice_at(&alice, &nb, &before, &edit(splice(3, 2, "")));
    assert!(
        matches!(outside, Err(EditError::OutOfRange { .. })),
        "{outside:?}"
    );
    assert_eq!(p.heads(), before, "nothing changed");
    assert!(p.notebook_delta(&nb, &[]).is_err());
}

/// A small deterministic generator, so that a failure replays.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

#[test]
fn a_reader_applying_deltas_holds_the_notebook_through_concurrent_edits() {
    let (alice, bob) = (session(1), session(2));
    let (mut p, nb) = shared_notebook(&alice, &bob);
    for (i, text) in ["import numpy as np", "x = 1", "# Notes ✓ é"]
        .iter()
        .enumerate()
    {
        p.insert_cell(&alice, &nb, i, NewCell::new(CellKind::Code, text))
            .expect("cell");
    }
    // Bob's browser opens the notebook.
    let mut reader = Reader::default();
    let notebook = p.notebook(&nb).expect("notebook");
    for c in &notebook.cells {
        reader.texts.insert(c.id.clone(), c.source.clone());
        reader.order.push(c.id.clone());
    }
    let mut known = p.heads();
    let mut rng = Lcg(42);
    let words = ["a", "ß", "λx", "\n", "🙂", "  "];
    for round in 0..300 {
        match rng.next(4) {
            // Alice edits at her node: text, and now and then a cell added or deleted.
            0 | 1 => {
                let ids = p.cell_ids(&nb).expect("ids");
                if round % 37 == 0 && ids.len() > 1 {
                    p.delete_cell(&alice, &nb, &ids[rng.next(ids.len())])
                        .expect("delete");
                } else if round % 23 == 0 {
                    p.insert_cell(
                        &alice,
                        &nb,
                        rng.next(ids.len() + 1),
                        NewCell::new(CellKind::Markdown, "new"),
                    )
                    .expect("insert");
                } else {
                    let id = &ids[rng.next(ids.len())];
                    let len = p.cell(&nb, id).expect("cell").source.chars().count();
                    let pos = rng.next(len + 1);
                    let del = rng.next(len - pos + 1).min(3);
                    p.splice_source(&alice, &nb, id, pos, del, words[rng.next(words.len())])
                        .expect("alice types");
                }
            }
            // Bob types in his browser, at the version it holds; the answer is the delta
            // from his change to now.
            2 => {
                let id = reader.order[rng.next(reader.order.len())].clone();
                let mut text = reader.texts[&id].clone();
                let mut splices = Vec::new();
                for _ in 0..1 + rng.next(3) {
                    let len = text.chars().count();
                    let pos = rng.next(len + 1);
                    let s = splice(
                        pos,
                        rng.next(len - pos + 1).min(2),
                        words[rng.next(words.len())],
                    );
                    text = apply(&text, std::slice::from_ref(&s));
                    splices.push(s);
                }
                let made = p.splice_at(
                    &bob,
                    &nb,
                    &known,
                    &[CellSplices {
                        cell: id.clone(),
                        splices,
                    }],
                );
                let own = match made {
                    Ok(own) => own,
                    // Alice deleted the cell meanwhile: Bob's browser learns it from the next
                    // update.
                    Err(EditError::NoCell { .. }) => continue,
                    Err(e) => panic!("bob's splices: {e}"),
                };
                reader.texts.insert(id, text);
                let delta = p.notebook_delta(&nb, &[own]).expect("ack");
                reader.apply(&delta);
                reader.check(&p, &nb);
                known = delta.heads;
            }
            // Bob's browser is told what changed.
            _ => {
                let delta = p.notebook_delta(&nb, &known).expect("update");
                reader.apply(&delta);
                reader.check(&p, &nb);
                known = delta.heads;
            }
        }
    }
    let delta = p.notebook_delta(&nb, &known).expect("update");
    reader.apply(&delta);
    reader.check(&p, &nb);
    assert!(p.notebook_delta(&nb, &p.heads()).expect("none").is_empty());
}

#[test]
fn a_browser_back_from_a_lost_connection_learns_whether_its_edit_was_made() {
    let (alice, bob) = (session(1), session(2));
    let (mut p, nb) = shared_notebook(&alice, &bob);
    let cell = p
        .insert_cell(&alice, &nb, 0, NewCell::new(CellKind::Code, "abc"))
        .expect("cell");
    let held = p.heads();
    // Not made: nothing of Bob's browser session since the version it held.
    assert_eq!(
        p.session_change_since(&bob.author(), &[2; 16], &held)
            .expect("ask"),
        None
    );
    let own = p
        .splice_at(
            &bob,
            &nb,
            &held,
            &[CellSplices {
                cell: cell.clone(),
                splices: vec![splice(3, 0, "d")],
            }],
        )
        .expect("edit");
    p.splice_source(&alice, &nb, &cell, 0, 0, "x")
        .expect("alice");
    // Made: the node names the change, and what changed from it is what the browser lacks.
    assert_eq!(
        p.session_change_since(&bob.author(), &[2; 16], &held)
            .expect("ask"),
        Some(own)
    );
    assert_eq!(
        p.session_change_since(&bob.author(), &[9; 16], &held)
            .expect("ask"),
        None,
        "another session"
    );
    let delta = p.notebook_delta(&nb, &[own]).expect("delta");
    assert_eq!(apply("abcd", &delta.texts[0].splices), "xabcd");
}

#[test]
fn a_caret_stays_beside_its_character_as_others_edit() {
    let (alice, bob) = (session(1), session(2));
    let (mut p, nb) = shared_notebook(&alice, &bob);
    let cell = p
        .insert_cell(&alice, &nb, 0, NewCell::new(CellKind::Code, "x = 1\ny = 2"))
        .expect("cell");
    let seen = p.heads();
    // Bob's caret before "y", and at the end; an empty cell's caret is at its start.
    let before_y = p.caret_at(&nb, &cell, 6, &seen).expect("caret");
    let at_end = p.caret_at(&nb, &cell, 11, &seen).expect("caret");
    assert!(p.caret_at(&nb, &cell, 12, &seen).is_err(), "past the end");
    // Alice types before both, and appends after the end.
    p.splice_source(&alice, &nb, &cell, 0, 0, "# fit\n")
        .expect("alice");
    p.splice_source(&alice, &nb, &cell, 17, 0, " # more")
        .expect("alice");
    let now = p.heads();
    assert_eq!(
        p.cell(&nb, &cell).expect("cell").source,
        "# fit\nx = 1\ny = 2 # more"
    );
    assert_eq!(p.caret_position(&nb, &cell, &before_y, &now), Some(12));
    assert_eq!(
        p.caret_position(&nb, &cell, &at_end, &now),
        Some(17),
        "text appended after the caret does not carry it"
    );
    // At the version it was made, it is where it was put.
    assert_eq!(p.caret_position(&nb, &cell, &before_y, &seen), Some(6));
    // Its character deleted, it stays where the character was.
    p.splice_source(&alice, &nb, &cell, 12, 1, "")
        .expect("alice");
    assert_eq!(
        p.caret_position(&nb, &cell, &before_y, &p.heads()),
        Some(12)
    );
    // A caret of another cell, or bytes that name nothing, resolve to nothing; none panics.
    let other = p
        .insert_cell(&alice, &nb, 1, NewCell::new(CellKind::Code, "z"))
        .expect("cell");
    let heads = p.heads();
    assert_eq!(p.caret_position(&nb, &other, &before_y, &heads), None);
    // Characters that are not there (another actor, another counter) name nothing.
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let right = before_y.right.clone().expect("a character after");
    for round in 0..500_u64 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut actor = right.actor.clone();
        if round % 2 == 0 {
            let i = (rng as usize) % actor.len();
            actor[i] ^= 1 + (rng >> 8) as u8 % 255;
        } else {
            actor.truncate((rng as usize) % actor.len());
        }
        let forged = orrery_protocol::presence::CharId {
            actor,
            counter: right.counter + rng % 3,
        };
        let caret = orrery_protocol::presence::Caret {
            left: Some(forged.clone()),
            right: Some(forged),
        };
        assert_eq!(p.caret_position(&nb, &cell, &caret, &heads), None);
    }
}
