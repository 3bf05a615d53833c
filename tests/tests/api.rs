//! The REST API as its clients meet it. Every change the OpenAPI document lists is refused, with
//! nothing changed, to a request with no credential, to a credential without the scope, to a user
//! whose role does not allow it, and to another site's page riding a signed-in browser's cookie.
//! A Python client then drives the API from its document, every answer checked against it.

use orrery_tests::rest::{Http, token, user};
use orrery_tests::{TestNode, cli, python_client};
use serde_json::{Value, json};

/// A user of the node, with a token.
/// A body each change would accept, so that a refusal is the guard's and not the parser's.
fn body_for(operation: &str, carol: &str) -> Value {
    match operation {
        "create" => json!({ "title": "Forged" }),
        "patch" => json!({ "title": "Renamed", "visibility": "restricted" }),
        "set_member" => json!({ "role": "owner" }),
        "add_notebook" => json!({ "title": "Forged notebook" }),
        "import_notebook" => json!({
            "title": "Forged import",
            "notebook": { "nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [] }
        }),
        "add_cell" => json!({ "source": "print('forged')" }),
        "move_cell" => json!({ "index": 0 }),
        "reimport_notebook" => {
            json!({ "nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [] })
        }
        "set_source" => json!({ "source": "print('forged')" }),
        "add_comment" => json!({ "text": "forged" }),
        "create_token" => json!({ "scopes": ["read", "write"] }),
        "add_dataset" => json!({ "dataset": "gaia" }),
        "reference_dataset" => json!({
            // The Ed25519 base point: a valid key.
            "node": format!("58{}", "66".repeat(31)),
            "product": "gaia/dr4.fits",
            "checksum": "0".repeat(64),
        }),
        _ => {
            let _ = carol;
            json!({})
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_refused_without_a_user_scope_role_or_same_origin_and_changes_nothing() {
    let node = TestNode::create("api").await;
    let http = Http::new(&node);
    let alice = user(&node, "Alice Owner", "read,write");
    let alice_reads = token(&node, &alice.id, "read");
    let bob = user(&node, "Bob Outsider", "read,write");
    let carol = user(&node, "Carol Viewer", "read,write");

    // Alice makes a public project with a notebook and a cell, and adds Carol as a viewer.
    let (s, p) = http.as_user(
        "POST",
        "/api/v1/projects",
        &alice.token,
        Some(&json!({ "title": "Pulsar timing", "visibility": "public" })),
    );
    assert_eq!(s, 201, "{p}");
    let project = p["id"].as_str().expect("an id").to_owned();
    let (s, nb) = http.as_user(
        "POST",
        &format!("/api/v1/projects/{project}/notebooks"),
        &alice.token,
        Some(&json!({ "title": "Timing" })),
    );
    assert_eq!(s, 201, "{nb}");
    let notebook = nb["id"].as_str().expect("an id").to_owned();
    let (s, cell) = http.as_user(
        "POST",
        &format!("/api/v1/projects/{project}/notebooks/{notebook}/cells"),
        &alice.token,
        Some(&json!({ "source": "period = 0.0334" })),
    );
    assert_eq!(s, 201, "{cell}");
    let cell = cell["id"].as_str().expect("an id").to_owned();
    let (s, m) = http.as_user(
        "PUT",
        &format!("/api/v1/projects/{project}/members/{}", carol.author),
        &alice.token,
        Some(&json!({ "role": "viewer" })),
    );
    assert_eq!(s, 200, "{m}");
    // Alice's own token, to check that no one else can revoke it.
    let (_, alice_tokens) = http.as_user("GET", "/api/v1/tokens", &alice.token, None);
    let alice_token_id = alice_tokens[0]["id"].as_str().expect("a token").to_owned();

    let before = http.as_user(
        "GET",
        &format!("/api/v1/projects/{project}"),
        &alice.token,
        None,
    );
    assert_eq!(before.0, 200);
    let tokens_before = http.as_user("GET", "/api/v1/tokens", &alice.token, None);

    // A signed-in browser of Bob's, and a page of another site sending its cookie.
    let session = {
        let mut store =
            orrery_node::store::Store::open(&node.home.database()).expect("the store opens");
        store.create_session(&bob.id).expect("a session")
    };
    let cookie = format!("{}={session}", orrery_web::SESSION_COOKIE);

    let (s, doc) = http.send("GET", "/api/openapi.json", &[], None);
    assert_eq!(s, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let mut walked = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("operations") {
            if !["post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            let operation = op["operationId"].as_str().expect("an operation id");
            // Every change is documented as needing a credential; the one POST that changes
            // nothing (a search) is open to anyone.
            let security = op["security"].as_array().expect("security listed");
            let open = security
                .iter()
                .any(|s| s.as_object().is_some_and(|o| o.is_empty()));
            if open {
                assert_eq!(operation, "search", "{method} {path} is open to anyone");
                continue;
            }
            let url = path
                .replace("{project}", &project)
                .replace("{notebook}", &notebook)
                .replace("{cell}", &cell)
                .replace("{author}", &alice.author)
                .replace("{id}", &alice_token_id)
                .replace("{lab}", "lab-000000000000");
            let body = body_for(operation, &carol.author);
            let m = method.to_uppercase();
            let refused = |who: &str, (status, answer): (u16, Value), allowed: &[u16]| {
                assert!(
                    allowed.contains(&status),
                    "{m} {path} as {who}: {status} {answer}"
                );
                assert!(
                    answer["error"]["code"].is_string(),
                    "{m} {path} as {who}: the refusal is not an API error: {answer}"
                );
                answer["error"]["code"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            };
            refused("no one", http.send(&m, &url, &[], Some(&body)), &[401]);
            let code = refused(
                "a read-only token",
                http.as_user(&m, &url, &alice_reads, Some(&body)),
                &[401, 403],
            );
            assert!(
                code == "insufficient_scope" || code == "unauthenticated",
                "{m} {path}: {code}"
            );
            let code = refused(
                "another site's page",
                http.send(
                    &m,
                    &url,
                    &[("cookie", &cookie), ("origin", "https://elsewhere.example")],
                    Some(&body),
                ),
                &[403],
            );
            assert_eq!(code, "csrf", "{m} {path}");
            if path.contains("{project}") {
                refused(
                    "a user who is not a member",
                    http.as_user(&m, &url, &bob.token, Some(&body)),
                    &[403],
                );
                refused(
                    "a viewer",
                    http.as_user(&m, &url, &carol.token, Some(&body)),
                    &[403],
                );
            }
            if path.contains("{id}") {
                refused(
                    "another user",
                    http.as_user(&m, &url, &bob.token, Some(&body)),
                    &[403, 404],
                );
            }
            walked.push(format!("{m} {path}"));
        }
    }
    assert!(
        walked.len() >= 17,
        "the document lists only {} changes: {walked:?}",
        walked.len()
    );

    let after = http.as_user(
        "GET",
        &format!("/api/v1/projects/{project}"),
        &alice.token,
        None,
    );
    assert_eq!(before, after, "a refused change changed the project");
    let tokens_after = http.as_user("GET", "/api/v1/tokens", &alice.token, None);
    let kept = |(_, list): &(u16, Value)| -> Vec<(Value, Value, Value)> {
        // Using a token notes when it was last used: everything else must stay.
        list.as_array()
            .expect("a list")
            .iter()
            .map(|t| (t["id"].clone(), t["scopes"].clone(), t["revoked"].clone()))
            .collect()
    };
    assert_eq!(
        kept(&tokens_before),
        kept(&tokens_after),
        "a refused change changed the tokens"
    );
    let (s, bobs) = http.as_user("GET", "/api/v1/tokens", &bob.token, None);
    assert_eq!(s, 200);
    assert_eq!(
        bobs.as_array().map(Vec::len),
        Some(1),
        "tokens were made for Bob: {bobs}"
    );
    let projects = cli(&node, &["project", "list"]);
    assert_eq!(projects.matches("Forged").count(), 0, "{projects}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_tap_job_is_theirs_alone() {
    let node = TestNode::create("tap-owner").await;
    let http = Http::new(&node);
    let alice = user(&node, "Alice Owner", "read");
    let bob = user(&node, "Bob Other", "read");
    python_client(
        "tap_owner_client.py",
        &[&http.base, &alice.token, &bob.token],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_drives_the_api_from_its_document() {
    let node = TestNode::create("api-client").await;
    let http = Http::new(&node);
    let ada = user(&node, "Ada Lovelace", "read,write");
    python_client("api_client.py", &[&http.base, &ada.token]).await;
    // What the client made is in the node's store, as the command line sees it.
    let listed = cli(&node, &["project", "list"]);
    assert!(listed.contains("Crab pulsar timing"), "{listed}");
    let credits = cli(&node, &["project", "credits", "Crab pulsar timing"]);
    assert!(credits.contains("Ada Lovelace"), "{credits}");
}

/// A notebook file with one code cell per source, cell ids `c0`, `c1`…
fn ipynb(sources: &[&str]) -> Value {
    let cells: Vec<Value> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| {
            json!({ "cell_type": "code", "id": format!("c{i}"), "metadata": {}, "source": s,
                    "outputs": [], "execution_count": null })
        })
        .collect();
    json!({ "nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cell_moves_and_a_notebook_updates_in_place_from_a_newer_file() {
    let node = TestNode::create("api").await;
    let http = Http::new(&node);
    let ada = user(&node, "Ada Lovelace", "read,write");
    let (s, p) = http.as_user(
        "POST",
        "/api/v1/projects",
        &ada.token,
        Some(&json!({ "title": "Pulsar timing" })),
    );
    assert_eq!(s, 201, "{p}");
    let project = p["id"].as_str().expect("id").to_owned();
    let (s, nb) = http.as_user(
        "POST",
        &format!("/api/v1/projects/{project}/notebooks/import"),
        &ada.token,
        Some(&json!({ "title": "Timing", "notebook": ipynb(&["a = 1", "b = 2", "c = 3"]) })),
    );
    assert_eq!(s, 201, "{nb}");
    let nb = nb["id"].as_str().expect("id").to_owned();
    let order = |v: &Value| -> Vec<String> {
        v["cells"]
            .as_array()
            .expect("cells")
            .iter()
            .map(|c| c["source"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    // The last cell to the top.
    let (s, moved) = http.as_user(
        "POST",
        &format!("/api/v1/projects/{project}/notebooks/{nb}/cells/c2/move"),
        &ada.token,
        Some(&json!({ "index": 0 })),
    );
    assert_eq!(s, 200, "{moved}");
    assert_eq!(order(&moved), ["c = 3", "a = 1", "b = 2"]);
    let (s, refused) = http.as_user(
        "POST",
        &format!("/api/v1/projects/{project}/notebooks/{nb}/cells/c2/move"),
        &ada.token,
        Some(&json!({ "index": 3 })),
    );
    assert_eq!(s, 400, "past the end: {refused}");
    // A newer file: one cell edited, one added. What Ada did in the notebook (the move) stays.
    let (s, updated) = http.as_user(
        "PUT",
        &format!("/api/v1/projects/{project}/notebooks/{nb}/ipynb"),
        &ada.token,
        Some(&ipynb(&["a = 1", "b = 20", "c = 3", "d = 4"])),
    );
    assert_eq!(s, 200, "{updated}");
    let summary = updated["summary"].as_str().expect("summary");
    assert!(
        summary.contains("added") && summary.contains("edited"),
        "{summary}"
    );
    let after = order(&updated["notebook"]);
    assert_eq!(after.len(), 4, "{after:?}");
    assert_eq!(after[0], "c = 3", "the move is kept: {after:?}");
    assert!(
        after.contains(&"b = 20".to_owned()) && after.contains(&"d = 4".to_owned()),
        "{after:?}"
    );
    // Not a notebook: refused, nothing changed.
    let (s, refused) = http.as_user(
        "PUT",
        &format!("/api/v1/projects/{project}/notebooks/{nb}/ipynb"),
        &ada.token,
        Some(&json!({ "cells": "no" })),
    );
    assert_eq!(s, 400, "{refused}");
    let (_, now) = http.as_user(
        "GET",
        &format!("/api/v1/projects/{project}/notebooks/{nb}"),
        &ada.token,
        None,
    );
    assert_eq!(order(&now), after);
}
