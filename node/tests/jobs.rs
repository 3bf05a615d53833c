//! Pipelines: a notebook run whole as a job through a running `orrery run`, with parameters
//! injected after its cell tagged `parameters`, as papermill does. A repeating job runs twice
//! and keeps both signed records (compared from the command line); a run that raises keeps its
//! error and the outputs before it; the quota and bad parameters are refused; and a node
//! restarted while a job runs fails that job saying so, while a queued one goes on.
//! Needs root and bubblewrap (`scripts/lab-env`).

#[path = "support/http.rs"]
mod http;
#[path = "support/run.rs"]
mod run;
use http::call;
use run::{Running, add_user, lab_node, orrery, token_for};

use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn code(id: &str, source: &str, tags: &[&str]) -> Value {
    json!({ "cell_type": "code", "id": id, "metadata": { "tags": tags }, "outputs": [],
            "execution_count": null, "source": source })
}

/// Waits until `check` gives something, or fails saying `what`.
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Some(t) = check() {
            return t;
        }
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn notebooks_run_whole_as_jobs_with_parameters_on_a_schedule_and_survive_a_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("node");
    lab_node(&data, "Heidelberg");
    let ada = add_user(&data, "Ada");
    let token = token_for(&data, &ada, "read,write,labs");
    let running = Running::start(&data);
    let addr = std::fs::read_to_string(data.join("web.addr")).expect("web.addr");
    let api = format!("http://{}/api/v1", addr.trim());
    let post =
        |path: &str, body: Value| call("POST", &format!("{api}{path}"), Some(&token), Some(body));
    let get = |path: &str| call("GET", &format!("{api}{path}"), Some(&token), None);

    let (status, p) = post(
        "/projects",
        json!({ "title": "Folding", "visibility": "shared" }),
    );
    assert_eq!(status, 201, "{p}");
    let p = p["id"].as_str().expect("id").to_owned();
    let notebook = json!({ "nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        code("setup", "import time", &[]),
        code("params", "period = 1\nlabel = 'none'\npause = 0", &["parameters"]),
        code("fold", "time.sleep(pause)\nprint(label, 10 / period)", &[]),
        code("after", "print('after')", &[]),
    ]});
    let (status, nb) = post(
        &format!("/projects/{p}/notebooks/import"),
        json!({ "title": "Fold", "notebook": notebook }),
    );
    assert_eq!(status, 201, "{nb}");
    let nb = nb["id"].as_str().expect("id").to_owned();
    let jobs = format!("/projects/{p}/notebooks/{nb}/jobs");

    // Refused: a name that is no Python identifier; a schedule too tight.
    let (status, refused) = post(&jobs, json!({ "parameters": { "1x": 2 } }));
    assert_eq!(status, 400, "{refused}");
    let (status, refused) = post(&jobs, json!({ "every_secs": 0 }));
    assert_eq!(status, 400, "{refused}");

    // A repeating job runs twice and keeps both records.
    let (status, job) = post(
        &jobs,
        json!({ "parameters": { "period": 4, "label": "crab" }, "every_secs": 1 }),
    );
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().expect("id").to_owned();
    wait_for("two runs of the repeating job", || {
        let (_, j) = get(&format!("/jobs/{id}"));
        (j["runs"].as_u64() >= Some(2)).then_some(())
    });
    let (status, cancelled) = call("DELETE", &format!("{api}/jobs/{id}"), Some(&token), None);
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled");
    let (status, runs) = get(&format!("/jobs/{id}/runs"));
    assert_eq!(status, 200, "{runs}");
    let runs = runs.as_array().expect("runs").clone();
    assert!(runs.len() >= 2, "{runs:?}");
    for (i, r) in runs.iter().enumerate() {
        assert_eq!(r["run"], i + 1);
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["verified"], true, "{r}");
        assert_eq!(
            r["parameters"],
            json!([["period", "4"], ["label", "\"crab\""]]),
            "{r}"
        );
        let cells: Vec<&str> = r["cells"]
            .as_array()
            .expect("cells")
            .iter()
            .filter_map(|c| c["cell"].as_str())
            .collect();
        assert_eq!(
            cells,
            ["setup", "params", "injected-parameters", "fold", "after"],
            "{r}"
        );
        assert_eq!(r["cells"][3]["outputs"][0]["text"], "crab 2.5\n", "{r}");
    }
    let compared = orrery(&data, &["job", "compare", &id, "1", "2", "--user", &ada]);
    assert!(compared.contains("parameters        same"), "{compared}");
    assert!(
        compared.contains("every cell's outputs are the same"),
        "{compared}"
    );

    // A run that raises keeps its error and what ran before it; the job fails, saying so.
    let (status, job) = post(&jobs, json!({ "parameters": { "period": 0 } }));
    assert_eq!(status, 201, "{job}");
    let failing = job["id"].as_str().expect("id").to_owned();
    let j = wait_for("the failing job ends", || {
        let (_, j) = get(&format!("/jobs/{failing}"));
        (j["state"] == "failed").then_some(j)
    });
    assert!(
        j["note"]
            .as_str()
            .is_some_and(|n| n.contains("ZeroDivisionError")),
        "{j}"
    );
    let (_, runs) = get(&format!("/jobs/{failing}/runs"));
    let r = &runs[0];
    assert!(
        r["status"]
            .as_str()
            .is_some_and(|s| s.starts_with("ZeroDivisionError")),
        "{r}"
    );
    assert_eq!(r["cells"][0]["status"], "ok", "{r}");
    assert_eq!(r["cells"][3]["outputs"][0]["output_type"], "error", "{r}");
    assert_eq!(r["cells"][4]["status"], "not run", "{r}");
    let shown = orrery(&data, &["job", "runs", &failing, "--user", &ada]);
    assert!(shown.contains("ZeroDivisionError"), "{shown}");

    // A job cancelled while it runs has its cell interrupted; its record says so.
    let (status, stopped) = post(&jobs, json!({ "parameters": { "pause": 600 } }));
    assert_eq!(status, 201, "{stopped}");
    let stopped = stopped["id"].as_str().expect("id").to_owned();
    wait_for("the job to cancel runs", || {
        let (_, j) = get(&format!("/jobs/{stopped}"));
        (j["state"] == "running").then_some(())
    });
    let (status, j) = call(
        "DELETE",
        &format!("{api}/jobs/{stopped}"),
        Some(&token),
        None,
    );
    assert_eq!(status, 200, "{j}");
    let j = wait_for("the cancelled run ends", || {
        let (_, j) = get(&format!("/jobs/{stopped}"));
        (j["runs"] == 1).then_some(j)
    });
    assert_eq!(j["state"], "cancelled", "{j}");
    let (_, runs) = get(&format!("/jobs/{stopped}/runs"));
    let r = &runs[0];
    assert!(
        r["status"].as_str().is_some_and(
            |s| s.starts_with("cancelled while it ran") && s.contains("KeyboardInterrupt")
        ),
        "{r}"
    );
    assert_eq!(r["cells"][4]["status"], "not run", "{r}");

    // The node stops while a job runs: after the restart that job has failed, saying so; a
    // job waiting for its next time is still queued.
    let (status, later) = post(&jobs, json!({ "every_secs": 3600 }));
    assert_eq!(status, 201, "{later}");
    let later = later["id"].as_str().expect("id").to_owned();
    wait_for("the hourly job's first run", || {
        let (_, j) = get(&format!("/jobs/{later}"));
        (j["runs"] == 1 && j["state"] == "queued").then_some(())
    });
    let (status, long) = post(&jobs, json!({ "parameters": { "pause": 600 } }));
    assert_eq!(status, 201, "{long}");
    let long = long["id"].as_str().expect("id").to_owned();
    wait_for("the long job runs", || {
        let (_, j) = get(&format!("/jobs/{long}"));
        (j["state"] == "running").then_some(())
    });
    drop(running);
    let _again = Running::start(&data);
    let addr = std::fs::read_to_string(data.join("web.addr")).expect("web.addr");
    let api = format!("http://{}/api/v1", addr.trim());
    let get = |path: &str| call("GET", &format!("{api}{path}"), Some(&token), None);
    let (_, j) = get(&format!("/jobs/{long}"));
    assert_eq!(j["state"], "failed", "{j}");
    assert!(
        j["note"].as_str().is_some_and(|n| n.contains("stopped")),
        "{j}"
    );
    let (_, j) = get(&format!("/jobs/{later}"));
    assert_eq!(j["state"], "queued", "{j}");
    let listed = orrery(&data, &["job", "list", "--user", &ada]);
    assert!(
        listed.contains(&long) && listed.contains("failed"),
        "{listed}"
    );
}
