//! Concurrent work on one notebook: a re-import while two others type, a laptop that sleeps
//! through the others' edits, and one file imported twice independently.

use std::collections::BTreeSet;

use orrery_crdt::nbformat::parse;
use orrery_crdt::{CellId, CellKind, NewCell, NotebookId, Project, Visibility};
use orrery_protocol::AuthorId;
use orrery_tests::running;

use crate::support::*;

/// A imports the gaia notebook; B and C type into it (the same cell, other cells) while A brings
/// in a newer version of the file, edited in Jupyter: a cell edited, one added, one removed.
///
/// A's file was imported before B and C typed, so none of their keystrokes is in it, including
/// those A's node has already received when A updates: B's first line is made to reach A's node
/// before the update ("B typed this morning"). `Project::update_from_ipynb` must apply the file
/// as its difference from the notebook *at the file's base* (here the import, which the
/// notebook records), merged with everything typed since, not as its difference from the
/// notebook as A's replica holds it now, which would delete every keystroke A's node had
/// received. The last assertion names each lost edit and whether A's replica held it when A
/// updated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notebook_reimported_while_two_others_edit() {
    let (nodes, p) = setup(3, "RR Lyrae period", Visibility::Shared).await;
    let all = running(&nodes);
    let a = nodes[0].author;
    let nb = import(&all[0], p, a, GAIA, "gaia-variable-stars").await;
    converge(&nodes, p, "the notebook reaches every node").await;
    // A has had the file open in Jupyter since importing it, and edits it there.
    let (newer, file_ids) = gaia_edited_in_jupyter();
    let (imports, load, fold, notes) = (cell(IMPORTS), cell(LOAD), cell(FOLD), cell(NOTES));
    let (bob, carol) = (
        Typist::new(&nodes[1], "B", p, &nb),
        Typist::new(&nodes[2], "C", p, &nb),
    );

    // Earlier: B typed into the imports cell, and A's node received it.
    let mut typed = vec![bob.types(&imports, At::Start, "# B: units first\n").await];
    let (node0, first) = (all[0].clone(), typed[0].clone());
    wait_for(&nodes, p, "A's node has B's earlier line", || {
        let (node0, first, nb) = (node0.clone(), first.clone(), nb.clone());
        async move {
            node0
                .read(p, move |proj| {
                    proj.and_then(|x| x.cell(&nb, &first.cell).ok())
                        .is_some_and(|c| c.source.contains(&first.text))
                })
                .await
                .unwrap_or(false)
        }
    })
    .await;

    // Now, interleaved, never waiting for the others: B and C type — into the cell the file
    // edits, into other cells, into the same cells as each other — while A updates from the file.
    typed.push(
        bob.types(&load, At::Start, "# B: read the epoch photometry\n")
            .await,
    );
    typed.push(
        carol
            .types(&load, At::End, "\n# C: about 40 transits expected")
            .await,
    );
    typed.push(
        carol
            .types(&fold, At::End, "\nfig.savefig(\"fold.png\")")
            .await,
    );
    let (nb2, file) = (nb.clone(), newer.clone());
    let (seen, summary) = edit(&all[0], p, a, move |proj, s| {
        let seen = proj.notebook(&nb2)?;
        let summary = proj
            .update_from_ipynb(s, &nb2, file.as_bytes())
            .map_err(nb_err)?;
        Ok((seen, summary))
    })
    .await
    .expect("A updates the notebook from the file");
    typed.push(
        bob.types(&load, At::Before("good = "), "# B: clean transits only\n")
            .await,
    );
    typed.push(
        carol
            .types(&imports, At::Start, "# C: plotting below\n")
            .await,
    );
    typed.push(
        bob.types(&fold, At::Before("ax.invert_yaxis"), "ax.grid(True)\n")
            .await,
    );
    typed.push(
        carol
            .types(
                &load,
                At::Before("with fits.open"),
                "# C: the DataLink product\n",
            )
            .await,
    );

    let notebooks = settled(&nodes, p, "the re-import and the typing converge").await;
    assert_eq!(notebooks.len(), 1, "still one notebook");
    let final_nb = &notebooks[0];
    assert_eq!(final_nb.id, nb);
    // The file's cells, in its order, each once: the edited, added and removed cells included.
    assert_eq!(ids_of(final_nb), file_ids);
    assert!(!ids_of(final_nb).contains(&cell(LOMBSCARGLE)));
    assert_eq!(source(final_nb, &notes), "## Notes\n\nAdded in Jupyter.");
    assert!(
        source(final_nb, &load).contains(FILE_LINE),
        "the file's new line is missing: {:?}",
        source(final_nb, &load)
    );
    assert_eq!((summary.added, summary.removed), (1, 1), "{summary:?}");

    // Every acknowledged keystroke of B and C is in the final text.
    let lost: Vec<String> = missing(&typed, final_nb)
        .into_iter()
        .map(|t| {
            let held = seen
                .cells
                .iter()
                .any(|c| c.id == t.cell && c.source.contains(&t.text));
            format!(
                "{}'s {:?} in {} (A's replica held it when A updated: {held})",
                t.who, t.text, t.cell
            )
        })
        .collect();
    assert!(
        lost.is_empty(),
        "the re-import deleted acknowledged edits: {lost:#?}\nupdate: {summary:?}"
    );
}

/// C's laptop (node 2) sleeps right after C's edit is acknowledged; meanwhile A and B edit the
/// same notebook, the same cell included, and B adds a cell; C keeps working offline (the
/// laptop's own store) and adds a cell too; the laptop wakes and everyone converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn laptop_sleep() {
    let (mut nodes, p) = setup(3, "NGC 4151", Visibility::Shared).await;
    let all = running(&nodes);
    let (a, b, c) = (nodes[0].author, nodes[1].author, nodes[2].author);
    let nb = import(&all[0], p, a, XMM, "xmm-spectrum").await;
    converge(&nodes, p, "the notebook reaches every node").await;
    let imported = {
        let nb = nb.clone();
        all[0]
            .read(p, move |x| x.and_then(|x| x.cell_ids(&nb).ok()))
            .await
            .expect("read")
            .expect("held")
    };
    assert_eq!(imported.len(), 5);
    let (spectrum, ratio) = (imported[2].clone(), imported[3].clone());
    let (alice, bob, carol) = (
        Typist::new(&nodes[0], "A", p, &nb),
        Typist::new(&nodes[1], "B", p, &nb),
        Typist::new(&nodes[2], "C", p, &nb),
    );

    // C types; the lid closes as soon as the edit is acknowledged, perhaps before it left.
    let mut typed = vec![
        carol
            .types(&spectrum, At::End, "\n# C: before the lid closed")
            .await,
    ];
    nodes[2].stop().await;
    let awake = running(&nodes);

    // Meanwhile A and B edit the same notebook, the same cell included, and B adds a cell.
    typed.push(
        alice
            .types(&spectrum, At::Start, "# A: rates per band\n")
            .await,
    );
    typed.push(
        bob.types(
            &spectrum,
            At::Before("bands = "),
            "# B: 6.2-6.7 keV is Fe K\n",
        )
        .await,
    );
    typed.push(
        alice
            .types(
                &ratio,
                At::End,
                "\nhr_err = 2 * (soft * hard) ** 0.5 / (hard + soft) ** 1.5",
            )
            .await,
    );
    let b_cell = {
        let nb = nb.clone();
        edit(&awake[1], p, b, move |proj, s| {
            proj.insert_cell(
                s,
                &nb,
                4,
                NewCell::new(CellKind::Markdown, "B: check for pile-up"),
            )
        })
        .await
        .expect("B adds a cell")
    };

    // C, asleep as far as the federation knows, keeps working in the laptop's store.
    typed.push(type_offline(
        &nodes[2],
        p,
        "C (offline)",
        &nb,
        &spectrum,
        At::End,
        "\n# C: offline, on the train",
    ));
    typed.push(type_offline(
        &nodes[2],
        p,
        "C (offline)",
        &nb,
        &ratio,
        At::Start,
        "# C: hardness ratio\n",
    ));
    let c_cell = nodes[2]
        .edit_offline(p, c, |proj, s| {
            proj.insert_cell(
                s,
                &nb,
                1,
                NewCell::new(CellKind::Markdown, "C: offline notes"),
            )
        })
        .expect("C adds a cell offline");
    converge(&nodes, p, "the awake nodes converge").await;

    // The laptop wakes.
    nodes[2].start().await;
    let notebooks = settled(&nodes, p, "the woken laptop and the others converge").await;
    assert_eq!(notebooks.len(), 1);
    let final_nb = &notebooks[0];
    let expected: BTreeSet<CellId> = imported
        .iter()
        .cloned()
        .chain([b_cell.clone(), c_cell.clone()])
        .collect();
    assert_eq!(
        ids_of(final_nb).into_iter().collect::<BTreeSet<_>>(),
        expected
    );
    assert_eq!(final_nb.cells.len(), 7, "no cell lost or duplicated");
    assert_eq!(source(final_nb, &b_cell), "B: check for pile-up");
    assert_eq!(source(final_nb, &c_cell), "C: offline notes");
    let lost = missing(&typed, final_nb);
    assert!(lost.is_empty(), "acknowledged edits lost: {lost:#?}");
}

/// Nodes 0 and 1 import the same file into the same project before either has seen the other's
/// import (node 1 is down and imports in its store): two notebooks, each with the file's cells,
/// none merged, told apart by their ids, their creators and their credit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_import_the_same_file_independently() {
    let (mut nodes, p) = setup(2, "Gaia DR3 variables", Visibility::Shared).await;
    let (a, b) = (nodes[0].author, nodes[1].author);
    nodes[1].stop().await;
    let from_a = import(nodes[0].handle(), p, a, GAIA, "gaia-variable-stars").await;
    let from_b = nodes[1]
        .edit_offline(p, b, |proj, s| {
            proj.import_ipynb(s, GAIA.as_bytes(), "gaia-variable-stars")
        })
        .expect("B imports offline");
    nodes[1].start().await;
    let all = running(&nodes);
    let notebooks = settled(&nodes, p, "both imports reach both nodes").await;

    assert_ne!(from_a, from_b, "every import is a new notebook");
    let ids: BTreeSet<NotebookId> = notebooks.iter().map(|n| n.id.clone()).collect();
    assert_eq!(ids, [from_a.clone(), from_b.clone()].into());
    let file = parse(GAIA.as_bytes()).expect("parses");
    let credits = all[0]
        .read(p, |x| x.map(Project::credits))
        .await
        .expect("read")
        .expect("held");
    for (id, importer) in [(&from_a, a), (&from_b, b)] {
        let n = notebooks.iter().find(|n| &n.id == id).expect("notebook");
        assert_eq!(n.title, "gaia-variable-stars");
        assert_eq!(n.created_by, Some(importer), "notebook {id}'s creator");
        // Exactly the file's cells, in its order: one import's, not both.
        let cells: Vec<(&CellId, CellKind, &str)> = n
            .cells
            .iter()
            .map(|c| (&c.id, c.kind, c.source.as_str()))
            .collect();
        let want: Vec<(&CellId, CellKind, &str)> = file
            .cells
            .iter()
            .map(|c| (&c.id, c.kind, c.source.as_str()))
            .collect();
        assert_eq!(cells, want, "notebook {id} is the file");
        let credited: BTreeSet<AuthorId> = credits
            .notebooks
            .iter()
            .find(|c| &c.notebook == id)
            .expect("credited")
            .shares
            .iter()
            .map(|s| s.author)
            .collect();
        assert_eq!(credited, [importer].into(), "notebook {id}'s credit");
    }
}
