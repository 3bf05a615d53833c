//! The browser UI in a real browser (Debian's Chromium, driven by playwright-core; installed by
//! `scripts/browser-env`): a researcher searches two nodes' catalogs from one node's pages, by
//! text, a facet and a cone, in both themes, with an accessibility check (axe-core) of each
//! state. Screenshots are saved under `target/tmp/screenshots/`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use orrery_tests::oidc::{
    free_port, node_signing_in_with, provider, provider_for, signing_in_with,
};
use orrery_tests::rest::{Http, user, user_with};
use orrery_tests::two_archives;
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `script` (in tests/browser) with `args`, after making sure the browser, its driver and
/// the UI are there; returns what it printed.
fn drive(script: &str, args: &[&str]) -> Value {
    // One browser at a time: on two cores, browsers side by side starve each other's pages.
    static ONE_BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE_BROWSER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for setup in ["scripts/browser-env", "scripts/ui-build"] {
        let status = Command::new(repo().join(setup))
            .status()
            .unwrap_or_else(|e| panic!("{setup}: {e}"));
        assert!(status.success(), "{setup} failed");
    }
    let out = Command::new("node")
        .arg(repo().join("tests/browser").join(script))
        .args(args)
        .output()
        .expect("node runs the browser script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("the script prints JSON")
}

/// A credit view's spans as (author, text) pairs.
fn authored(spans: &Value) -> Vec<(String, String)> {
    spans
        .as_array()
        .expect("spans")
        .iter()
        .map(|s| {
            (
                s["author"].as_str().unwrap_or_default().to_owned(),
                s["text"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Serious or critical accessibility violations in an axe-core report.
fn serious(report: &Value) -> Vec<&Value> {
    report
        .as_array()
        .expect("a list")
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_researcher_searches_the_federation_from_a_browser() {
    let (_nodes, asker) = two_archives().await;
    let base = format!("http://{}", asker.web_addr().expect("web"));
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    let seen = tokio::task::spawn_blocking(move || {
        drive("search.mjs", &[&base, shots.to_str().expect("utf-8")])
    })
    .await
    .expect("browser");

    assert!(
        seen["url"].as_str().is_some_and(|u| u.ends_with("/ui/")),
        "{seen}"
    );
    assert_eq!(seen["title"], "Orrery");
    assert_eq!(seen["total"], 10, "{seen}");
    assert_eq!(seen["rows"], 10, "{seen}");
    assert_eq!(
        seen["skyHits"], 10,
        "every hit has a place on the sky: {seen}"
    );
    let picked: Vec<f64> = seen["picked"]
        .as_array()
        .expect("picked")
        .iter()
        .map(|v| v.as_str().and_then(|s| s.parse().ok()).expect("a number"))
        .collect();
    assert!(
        (picked[0] - 180.0).abs() < 2.0 && picked[1].abs() < 2.0 && picked[2] == 1.0,
        "a click at the map's centre picks RA 180, Dec 0, radius 1: {seen}"
    );
    assert_eq!(
        seen["nodes"],
        serde_json::json!(["node0", "node1"]),
        "{seen}"
    );
    // The first mission listed narrows to its own products.
    let facet = seen["facetLabel"].as_str().expect("a facet");
    let expected = if facet.contains("XMM") { 6 } else { 4 };
    assert_eq!(seen["facetTotal"], expected, "{seen}");
    assert_eq!(seen["theme"], "dark");
    assert_eq!(seen["coneTotal"], 10, "{seen}");
    assert!(
        seen["coneError"]
            .as_str()
            .is_some_and(|e| e.contains("cone needs")),
        "{seen}"
    );
    assert!(serious(&seen["violationsLight"]).is_empty(), "{seen}");
    assert!(serious(&seen["violationsDark"]).is_empty(), "{seen}");
    // The federation page lists both members, both collections, and their sky coverage.
    let members: Vec<String> = seen["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m.as_str().map(str::to_owned))
        .collect();
    assert!(
        members.iter().any(|m| m.starts_with("node0"))
            && members.iter().any(|m| m.starts_with("node1")),
        "{seen}"
    );
    assert_eq!(seen["collections"], 2, "{seen}");
    assert!(seen["skyCells"].as_u64().is_some_and(|n| n >= 1), "{seen}");
    assert!(
        seen["reach"]
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x == "this node")),
        "{seen}"
    );
    assert!(serious(&seen["violationsFederation"]).is_empty(), "{seen}");
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    // GraphiQL ran its default query against the node, with nothing refused by the page's
    // content security policy.
    assert!(
        seen["graphiqlResult"]
            .as_str()
            .is_some_and(|r| r.contains("\"total\": 10")),
        "{seen}"
    );
    let gq_errors = seen["graphiqlErrors"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        gq_errors.is_empty(),
        "GraphiQL reported errors: {:.2000}",
        Value::Array(gq_errors.clone()).to_string()
    );
    // The API reference lists the REST operations from the node's document, and one tried
    // from the page reaches the node.
    let operations: Vec<&str> = seen["docsOperations"]
        .as_array()
        .expect("operations")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        operations
            .iter()
            .any(|o| o.contains("/api/v1/projects/{project}/notebooks"))
            && operations.len() >= 20,
        "{operations:?}"
    );
    assert_eq!(seen["docsTried"], "200", "{seen}");
    assert_eq!(seen["docsErrors"], serde_json::json!([]), "{seen}");
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    for shot in [
        "search-light.png",
        "search-dark.png",
        "federation.png",
        "graphiql.png",
        "api-docs.png",
    ] {
        assert!(shots.join(shot).is_file(), "no {shot}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_researcher_signs_in_and_out_from_the_node_s_pages() {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let op = provider(&format!("{base}/auth/callback/orcid"));
    let dir = tempfile::tempdir().expect("tempdir");
    let (_home, _node, task) = node_signing_in_with(dir.path(), "esac", port, &op).await;
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    let seen = tokio::task::spawn_blocking(move || {
        drive(
            "signin.mjs",
            &[&base, "0000-0002-1825-0097", shots.to_str().expect("utf-8")],
        )
    })
    .await
    .expect("browser");

    assert_eq!(
        seen["offered"],
        serde_json::json!(["Sign in"]),
        "one provider, offered by the header: {seen}"
    );
    assert!(
        seen["landed"].as_str().is_some_and(|u| u.ends_with("/ui/")),
        "{seen}"
    );
    // The provider vouched for an ORCID iD; the node verified it and the header shows it.
    assert_eq!(seen["orcid"], "0000-0002-1825-0097", "{seen}");
    assert!(
        seen["name"].as_str().is_some_and(|n| !n.is_empty()),
        "{seen}"
    );
    assert_eq!(
        seen["sessionAfter"],
        Value::Null,
        "signed out on the node too: {seen}"
    );
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    assert!(serious(&seen["violationsSignedOut"]).is_empty(), "{seen}");
    assert!(serious(&seen["violationsSignedIn"]).is_empty(), "{seen}");
    task.abort();
}

/// "Crab pulsar timing", made by `owner` through `http` with `visibility`, with `editor` an
/// editor; its id.
fn project_with_an_editor(
    http: &Http,
    owner: &orrery_tests::rest::User,
    editor: &orrery_tests::rest::User,
    visibility: &str,
) -> String {
    let (status, made) = http.as_user(
        "POST",
        "/api/v1/projects",
        &owner.token,
        Some(&serde_json::json!({ "title": "Crab pulsar timing", "visibility": visibility })),
    );
    assert_eq!(status, 201, "{made}");
    let project = made["id"].as_str().expect("id").to_owned();
    let (status, answer) = http.as_user(
        "PUT",
        &format!("/api/v1/projects/{project}/members/{}", editor.author),
        &owner.token,
        Some(&serde_json::json!({ "role": "editor" })),
    );
    assert_eq!(status, 200, "{answer}");
    project
}

/// A notebook as a Jupyter user would have saved it: Markdown with math, code with a printed
/// line, a figure and HTML (with a script that must never run), and a traceback in colour.
fn timing_notebook() -> Value {
    // A 2×2 PNG.
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAEElEQVR4nGOQj98PRAwQCgAgOgT1QJuqeQAAAABJRU5ErkJggg==";
    serde_json::json!({
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [
            { "id": "intro", "cell_type": "markdown", "metadata": {},
              "source": "# Crab pulsar timing\n\nThe period $P = 33.5\\,\\mathrm{ms}$ slows down:\n\n$$\\dot{P} = 4.2 \\times 10^{-13}$$\n" },
            { "id": "period", "cell_type": "code", "metadata": {}, "execution_count": 1,
              "source": "import numpy as np\nperiod = 0.0334\nprint(period)",
              "outputs": [
                  { "output_type": "stream", "name": "stdout", "text": "0.0334\n" },
                  { "output_type": "display_data", "metadata": {},
                    "data": { "image/png": png, "text/plain": "<Figure>" } },
                  { "output_type": "execute_result", "execution_count": 1, "metadata": {},
                    "data": { "text/html": "<b>bold</b><script>alert('from an output')</script><img src=x onerror=alert(1)>",
                              "text/plain": "bold" } }
              ] },
            { "id": "oops", "cell_type": "code", "metadata": {}, "execution_count": 2,
              "source": "1 / 0",
              "outputs": [
                  { "output_type": "error", "ename": "ZeroDivisionError", "evalue": "division by zero",
                    "traceback": ["\u{1b}[0;31mZeroDivisionError\u{1b}[0m: division by zero"] }
              ] }
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_reads_as_jupyter_renders_it_with_each_author_s_part() {
    let nodes = orrery_tests::federation(1).await;
    let node = &nodes[0];
    let http = Http::new(node);
    let ada = user(node, "Ada Lovelace", "read,write");
    let grace = user(node, "Grace Hopper", "read,write");
    let project = project_with_an_editor(&http, &ada, &grace, "public");
    let (status, nb) = http.as_user(
        "POST",
        &format!("/api/v1/projects/{project}/notebooks/import"),
        &ada.token,
        Some(&serde_json::json!({ "title": "Residuals", "notebook": timing_notebook() })),
    );
    assert_eq!(status, 201, "{nb}");
    let nb = nb["id"].as_str().expect("notebook id").to_owned();
    // Grace adds a line to Ada's cell.
    let (status, answer) = http.as_user(
        "PUT",
        &format!("/api/v1/projects/{project}/notebooks/{nb}/cells/period"),
        &grace.token,
        Some(&serde_json::json!({
            "source": "import numpy as np\nperiod = 0.0334\nprint(period)\n# checked by Grace"
        })),
    );
    assert_eq!(status, 200, "{answer}");

    let base = http.base.clone();
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    let seen = tokio::task::spawn_blocking(move || {
        drive(
            "project.mjs",
            &[&base, &project, shots.to_str().expect("utf-8")],
        )
    })
    .await
    .expect("browser");

    assert_eq!(seen["title"], "Crab pulsar timing", "{seen}");
    assert_eq!(seen["heading"], "Crab pulsar timing", "{seen}");
    assert_eq!(seen["math"], 2, "inline and display math as MathML: {seen}");
    assert_eq!(seen["displayMath"], 1, "{seen}");
    assert!(seen["keywords"].as_u64().is_some_and(|n| n >= 1), "{seen}");
    assert_eq!(seen["images"], 1, "{seen}");
    assert_eq!(seen["imageLoaded"], true, "{seen}");
    assert_eq!(seen["stream"], "0.0334", "{seen}");
    assert_eq!(seen["bold"], "bold", "{seen}");
    assert_eq!(seen["scripts"], 0, "an output's script is removed: {seen}");
    assert_eq!(seen["alerts"], 0, "no output's script ran: {seen}");
    assert_eq!(
        seen["handlers"], 0,
        "an output's event handler is removed: {seen}"
    );
    assert!(
        seen["blocked"].as_u64().is_some_and(|n| n <= 1),
        "only the hostile handler was refused by the policy: {seen}"
    );
    assert!(seen["ansiRed"].as_u64().is_some_and(|n| n >= 1), "{seen}");
    assert!(seen["history"].as_u64().is_some_and(|n| n >= 3), "{seen}");
    // The credit view: Ada's text and Grace's line, each by its author.
    let spans = authored(&seen["spans"]);
    assert_eq!(
        spans,
        vec![
            (
                ada.author.clone(),
                "import numpy as np\nperiod = 0.0334\nprint(period)".to_owned()
            ),
            (grace.author.clone(), "\n# checked by Grace".to_owned()),
        ],
        "{seen}"
    );
    let legend = seen["legend"].to_string();
    assert!(
        legend.contains("Ada Lovelace") && legend.contains("Grace Hopper"),
        "{seen}"
    );
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    assert!(serious(&seen["violations"]).is_empty(), "{seen}");
    assert!(serious(&seen["violationsCredit"]).is_empty(), "{seen}");
    assert!(serious(&seen["violationsDark"]).is_empty(), "{seen}");
    assert_eq!(
        seen["listed"],
        serde_json::json!(["Crab pulsar timing"]),
        "{seen}"
    );
    assert!(serious(&seen["violationsList"]).is_empty(), "{seen}");
}

/// A one-time sign-in link for `user` at `node`, as its operator makes one.
fn sign_in_link(node: &orrery_tests::TestNode, user: &str) -> String {
    let out = orrery_tests::cli(node, &["user", "link", user]);
    out.lines().next().expect("the link").trim().to_owned()
}

/// The status of a GET of `url`, redirects not followed.
fn status_of(url: &str) -> u16 {
    ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .new_agent()
        .get(url)
        .call()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

const ADA_ORCID: &str = "0000-0002-1825-0097";
const GRACE_ORCID: &str = "0000-0001-5109-3700";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_researchers_at_two_nodes_type_into_one_cell_from_their_browsers() {
    // Both nodes sign researchers in with one OpenID provider, which must know their addresses
    // before any starts.
    let ports = [free_port(), free_port()];
    let callbacks = ports.map(|p| format!("http://127.0.0.1:{p}/auth/callback/orcid"));
    let op = provider_for(&[&callbacks[0], &callbacks[1]]);
    let nodes = orrery_tests::federation_with(2, |i, c| signing_in_with(c, ports[i], &op)).await;
    let (at_esac, at_heidelberg) = (Http::new(&nodes[0]), Http::new(&nodes[1]));
    // Each is a user of their node before they first sign in, bound to their ORCID iD.
    let ada = user_with(
        &nodes[0],
        "Ada Lovelace",
        "read,write",
        &["--sign-in", &format!("orcid:{ADA_ORCID}")],
    );
    let grace = user_with(
        &nodes[1],
        "Grace Hopper",
        "read,write",
        &["--sign-in", &format!("orcid:{GRACE_ORCID}")],
    );
    let project = project_with_an_editor(&at_esac, &ada, &grace, "shared");
    let (status, nb) = at_esac.as_user(
        "POST",
        &format!("/api/v1/projects/{project}/notebooks"),
        &ada.token,
        Some(&serde_json::json!({ "title": "Residuals" })),
    );
    assert_eq!(status, 201, "{nb}");
    let nb = nb["id"].as_str().expect("notebook id").to_owned();
    let (status, cell) = at_esac.as_user(
        "POST",
        &format!("/api/v1/projects/{project}/notebooks/{nb}/cells"),
        &ada.token,
        Some(&serde_json::json!({ "kind": "code", "source": "period = 0.0334" })),
    );
    assert_eq!(status, 201, "{cell}");
    let cell = cell["id"].as_str().expect("cell id").to_owned();
    // Heidelberg holds the project (it hosts Grace) with Ada's cell in it.
    let path = format!("/api/v1/projects/{project}/notebooks/{nb}");
    let reached = orrery_tests::within(
        &orrery_tests::running(&nodes),
        Duration::from_secs(30),
        || {
            let (status, view) = at_heidelberg.as_user("GET", &path, &grace.token, None);
            async move { status == 200 && view.to_string().contains("period = 0.0334") }
        },
    )
    .await;
    assert!(reached, "the project does not reach Heidelberg");

    // An operator's one-time sign-in link (for a researcher who cannot use the provider)
    // works once.
    let link = sign_in_link(&nodes[0], &ada.id);
    assert!(link.starts_with(&at_esac.base), "{link}");
    assert_eq!(status_of(&link), 303, "{link}");
    assert_eq!(status_of(&link), 410, "a sign-in link works once");

    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    let (p, c) = (project.clone(), cell.clone());
    let (a, b) = (at_esac.base.clone(), at_heidelberg.base.clone());
    let seen = tokio::task::spawn_blocking(move || {
        drive(
            "coedit.mjs",
            &[
                &a,
                ADA_ORCID,
                &b,
                GRACE_ORCID,
                &p,
                &c,
                shots.to_str().expect("utf-8"),
            ],
        )
    })
    .await
    .expect("browser");

    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    // Each signed in through the provider as the user made for them.
    assert_eq!(
        seen["names"],
        serde_json::json!(["Ada Lovelace", "Grace Hopper"]),
        "{seen}"
    );
    assert_eq!(seen["before"], "period = 0.0334", "{seen}");
    let merged = seen["merged"].as_str().expect("merged text");
    assert!(
        merged.starts_with("# Grace was here\nperiod = 0.0334") && merged.contains("# by Ada"),
        "{seen}"
    );
    assert_eq!(seen["presenceA"], "Grace Hopper", "{seen}");
    // Ada sees Grace's caret, named, where Grace left it (the start of the second line), and
    // then where Grace moved it (the end of the first).
    let caret = &seen["graceCaret"];
    assert_eq!(caret["name"], "Grace Hopper", "{seen}");
    assert_eq!(caret["line"], 1, "{seen}");
    assert!(caret["x"].as_i64().is_some_and(|x| x.abs() <= 2), "{seen}");
    let moved = &seen["graceCaretMoved"];
    assert_eq!(moved["line"], 0, "{seen}");
    assert!(moved["x"].as_i64().is_some_and(|x| x > 50), "{seen}");
    // Offline, Grace kept typing, and was told so; nothing of Ada's reached her meanwhile.
    assert!(
        seen["offlineShown"]
            .as_str()
            .is_some_and(|s| s.starts_with("Offline")),
        "{seen}"
    );
    let offline = seen["offlineGrace"].as_str().expect("Grace's text offline");
    assert!(
        offline.starts_with("# typed offline\n") && !offline.contains("while Grace was away"),
        "{seen}"
    );
    assert!(serious(&seen["violations"]).is_empty(), "{seen}");
    assert!(serious(&seen["violationsDark"]).is_empty(), "{seen}");
    // A notebook added from a file, then updated in place from a newer one.
    assert_eq!(seen["uploaded"], 1, "{seen}");
    assert_eq!(seen["reimportedCells"], 2, "{seen}");
    assert!(
        seen["reimported"]
            .as_str()
            .is_some_and(|s| s.starts_with("Updated from the file") && s.contains("added")),
        "{seen}"
    );
    // Both nodes hold what the browsers show.
    let final_text = seen["final"].as_str().expect("final text").to_owned();
    for (http, token) in [(&at_esac, &ada.token), (&at_heidelberg, &grace.token)] {
        let path = path.clone();
        let want = final_text.clone();
        let same = orrery_tests::within(
            &orrery_tests::running(&nodes),
            Duration::from_secs(30),
            || {
                let (_, view) = http.as_user("GET", &path, token, None);
                let got = view["cells"][0]["source"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let want = want.clone();
                async move { got == want }
            },
        )
        .await;
        assert!(
            same,
            "{} does not hold the text the browsers show",
            http.base
        );
    }
    // The credit view attributes each part to who typed it.
    let (_, spans) = at_esac.as_user(
        "GET",
        &format!("/api/v1/projects/{project}/notebooks/{nb}/authorship"),
        &ada.token,
        None,
    );
    let runs = authored(&spans["cells"][0]["spans"]);
    assert_eq!(
        runs.first(),
        Some(&(
            grace.author.clone(),
            "# typed offline\n# Grace was here\n".to_owned()
        )),
        "{spans}"
    );
    assert!(
        runs.iter()
            .any(|(who, text)| who == &ada.author && text.contains("# by Ada")),
        "{spans}"
    );
    // The history holds changes signed by each user's key.
    let (_, log) = at_esac.as_user(
        "GET",
        &format!("/api/v1/projects/{project}/history?limit=1000"),
        &ada.token,
        None,
    );
    for who in [&ada.author, &grace.author] {
        assert!(
            log.as_array()
                .expect("history")
                .iter()
                .any(|e| e["author"].as_str() == Some(who.as_str())),
            "no change signed by {who}: {log}"
        );
    }
    // Beside it, in the same run: a keystroke made at ESAC's node until Heidelberg's holds it.
    let project_id: orrery_protocol::ProjectId = project.parse().expect("project id");
    let ada_author: orrery_protocol::AuthorId = ada.author.parse().expect("author");
    let (nb_id, cell_id): (orrery_crdt::NotebookId, orrery_crdt::CellId) =
        (nb.parse().expect("notebook"), cell.parse().expect("cell"));
    let running = orrery_tests::running(&nodes);
    let mut node_to_node = Vec::new();
    for _ in 0..30 {
        let (n, c) = (nb_id.clone(), cell_id.clone());
        let t0 = std::time::Instant::now();
        nodes[0]
            .handle()
            .edit(project_id, ada_author, move |p, s| {
                let len = p.cell(&n, &c)?.source.chars().count();
                p.splice_source(s, &n, &c, len, 0, "x")
            })
            .await
            .expect("a keystroke at ESAC");
        let head = nodes[0]
            .handle()
            .read(project_id, |p| p.map(|p| p.heads()))
            .await
            .expect("read")
            .expect("held");
        let arrived = orrery_tests::within(&running, Duration::from_secs(10), || {
            let (node, head) = (nodes[1].handle().clone(), head.clone());
            async move {
                node.read(project_id, move |p| {
                    p.is_some_and(|p| head.iter().all(|h| p.has_change(h)))
                })
                .await
                .unwrap_or(false)
            }
        })
        .await;
        assert!(arrived, "a keystroke did not reach Heidelberg");
        node_to_node.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    node_to_node.sort_by(f64::total_cmp);
    println!(
        "keystroke to the other browser, at the other node: {}; node to node in the same run: p50 {:.1} ms, p95 {:.1} ms",
        seen["latency"], node_to_node[15], node_to_node[28]
    );
    assert!(
        seen["latency"]["p95"].as_u64().is_some_and(|ms| ms < 1000),
        "keystrokes reach the other browser within a second: {seen}"
    );
}
