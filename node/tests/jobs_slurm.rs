//! Jobs on the centre's Slurm cluster. A real single-machine Slurm with accounting (slurmctld,
//! slurmd, slurmdbd and MariaDB from Debian's packages, started by the test) runs the jobs of a
//! node configured with `[jobs] backend = "slurm"`: a notebook reading a dataset under `/data`
//! completes as a batch job (`sacct` knows it), and its record matches, cell by cell, the
//! record of the same job run locally by a second node; a run that raises keeps its error and
//! the cells before it; a cancelled job is cancelled in Slurm; and a node restarted while its
//! run is in Slurm follows it again and keeps its record.
//! Needs root, bubblewrap and Slurm (`scripts/lab-env`, `scripts/slurm-env`).

#[path = "support/http.rs"]
mod http;
#[path = "support/run.rs"]
mod run;
#[path = "support/slurm.rs"]
mod slurm;
use http::call;
use run::{Running, add_csv_collection, add_user, lab_node, orrery, token_for, web_addr};

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn code(id: &str, source: &str, tags: &[&str]) -> Value {
    json!({ "cell_type": "code", "id": id, "metadata": { "tags": tags }, "outputs": [],
            "execution_count": null, "source": source })
}

/// Waits until `check` gives something, or fails saying `what`.
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        if let Some(t) = check() {
            return t;
        }
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

const TIDES: &str = "station,height\nBrest,4.2\nCadiz,1.9\nOslo,0.3\n";

/// A node with Ada, a `tides` collection, and a project whose notebook reads it; the API, her
/// token and the notebook's jobs path.
struct Site {
    data: std::path::PathBuf,
    ada: String,
    token: String,
    jobs: String,
}

fn site(root: &Path, name: &str, slurm: bool) -> Site {
    let data = root.join(name);
    lab_node(&data, name);
    if slurm {
        let config = data.join("orrery.toml");
        let text = std::fs::read_to_string(&config).expect("config");
        let slurm = text
            .replace("[jobs]\nbackend = \"local\"", "[jobs]\nbackend = \"slurm\"")
            .replace("poll_secs = 5", "poll_secs = 1");
        assert!(slurm.contains("backend = \"slurm\"") && slurm.contains("poll_secs = 1"));
        std::fs::write(&config, slurm).expect("config");
    }
    add_csv_collection(
        &data,
        &root.join(format!("{name}-tides")),
        "tides",
        ("tides.csv", TIDES),
        ("Tide gauges", "Coastal"),
    );
    let ada = add_user(&data, "Ada");
    let token = token_for(&data, &ada, "read,write,labs");
    Site {
        data,
        ada,
        token,
        jobs: String::new(),
    }
}

impl Site {
    fn api(&self) -> String {
        format!("http://{}/api/v1", web_addr(&self.data))
    }

    fn post(&self, path: &str, body: Value) -> (u16, Value) {
        call(
            "POST",
            &format!("{}{path}", self.api()),
            Some(&self.token),
            Some(body),
        )
    }

    fn get(&self, path: &str) -> Value {
        let (status, v) = call(
            "GET",
            &format!("{}{path}", self.api()),
            Some(&self.token),
            None,
        );
        assert_eq!(status, 200, "{path}: {v}");
        v
    }

    /// Makes the project and its notebook (once the node runs).
    fn notebook(&mut self) {
        let (status, p) = self.post(
            "/projects",
            json!({ "title": "Tides", "visibility": "shared" }),
        );
        assert_eq!(status, 201, "{p}");
        let p = p["id"].as_str().expect("id").to_owned();
        let said = orrery(
            &self.data,
            &[
                "project",
                "reference",
                &p,
                "tides/tides.csv",
                "--user",
                &self.ada,
            ],
        );
        assert!(said.contains("tides/tides.csv"), "{said}");
        let notebook = json!({ "nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
            code("read", "import csv\nrows = list(csv.DictReader(open('/data/tides/tides.csv')))", &[]),
            code("params", "scale = 1\npause = 0", &["parameters"]),
            code("sum", "import time\ntime.sleep(pause)\ntotal = sum(float(r['height']) for r in rows) / scale\nprint(f'{len(rows)} stations, {total:.2f}')", &[]),
            code("show", "{'stations': [r['station'] for r in rows], 'total': round(total, 3)}", &[]),
        ]});
        let (status, nb) = self.post(
            &format!("/projects/{p}/notebooks/import"),
            json!({ "title": "Sum", "notebook": notebook }),
        );
        assert_eq!(status, 201, "{nb}");
        self.jobs = format!(
            "/projects/{p}/notebooks/{}/jobs",
            nb["id"].as_str().expect("id")
        );
    }

    fn submit(&self, parameters: Value) -> String {
        let (status, job) = self.post(&self.jobs, json!({ "parameters": parameters }));
        assert_eq!(status, 201, "{job}");
        job["id"].as_str().expect("id").to_owned()
    }

    /// Waits until job `id` is in one of `states`; the job.
    fn ended(&self, id: &str, states: &[&str]) -> Value {
        wait_for(&format!("job {id} ends as one of {states:?}"), || {
            let j = self.get(&format!("/jobs/{id}"));
            states.contains(&j["state"].as_str()?).then_some(j)
        })
    }
}

/// What must agree between two runs of one notebook: each cell's id, source, outputs and status,
/// the run's status, parameters, environment and its lock, and the data read.
fn comparable(run: &Value) -> Value {
    json!({
        "cells": run["cells"],
        "status": run["status"],
        "parameters": run["parameters"],
        "environment": run["environment"],
        "environment_lock": run["environment_lock"],
        "datasets": run["datasets"],
        "verified": run["verified"],
    })
}

#[test]
fn jobs_run_as_slurm_batch_jobs_and_their_records_match_local_runs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cluster = slurm::Cluster::start(&tmp.path().join("slurm"));
    let mut batch = site(tmp.path(), "Heidelberg", true);
    let mut local = site(tmp.path(), "Madrid", false);
    let conf = cluster.conf.clone();
    let mut running = Running::start_with(&batch.data, &[("SLURM_CONF", &conf)]);
    let _local_running = Running::start(&local.data);
    batch.notebook();
    local.notebook();

    // The same job, in Slurm and in a lab: both complete, and their records agree.
    let in_slurm = batch.submit(json!({ "scale": 2 }));
    let here = local.submit(json!({ "scale": 2 }));
    let j = batch.ended(&in_slurm, &["done", "failed"]);
    assert_eq!(j["state"], "done", "{j}\n{}", cluster.logs());
    local.ended(&here, &["done"]);
    let slurm_run = batch.get(&format!("/jobs/{in_slurm}/runs"))[0].clone();
    let local_run = local.get(&format!("/jobs/{here}/runs"))[0].clone();
    assert_eq!(slurm_run["status"], "ok", "{slurm_run}");
    assert_eq!(slurm_run["verified"], true, "{slurm_run}");
    assert_eq!(
        slurm_run["cells"][3]["outputs"][0]["text"], "3 stations, 3.20\n",
        "{slurm_run}"
    );
    assert_eq!(comparable(&slurm_run), comparable(&local_run));
    // Slurm ran it: its accounting has the batch job, completed.
    let accounted = cluster
        .slurm(
            "sacct",
            &[
                "--noheader",
                "--parsable2",
                "--allocations",
                "--format=JobName,State",
            ],
        )
        .expect("sacct answers");
    assert!(
        accounted
            .lines()
            .any(|l| l.starts_with("orrery-job-") && l.ends_with("|COMPLETED")),
        "{accounted}"
    );

    // A run that raises keeps its error and the cells before it, as a local run does.
    let failing = batch.submit(json!({ "scale": 0 }));
    let j = batch.ended(&failing, &["failed", "done"]);
    assert!(
        j["note"]
            .as_str()
            .is_some_and(|n| n.contains("ZeroDivisionError")),
        "{j}"
    );
    let r = &batch.get(&format!("/jobs/{failing}/runs"))[0];
    assert_eq!(r["cells"][0]["status"], "ok", "{r}");
    assert_eq!(r["cells"][3]["outputs"][0]["output_type"], "error", "{r}");
    assert_eq!(r["cells"][4]["status"], "not run", "{r}");

    // A cancelled job is cancelled in Slurm too; its record keeps the cells that ran.
    let long = batch.submit(json!({ "pause": 600 }));
    let spool = batch.data.join("jobs").join("slurm");
    wait_for("the long job's first cells have run in Slurm", || {
        std::fs::read_dir(&spool)
            .ok()?
            .flatten()
            // A run in Slurm now (a failed run's kept directory has no Slurm id).
            .any(|d| d.path().join("slurm.id").exists() && d.path().join("result.partial").exists())
            .then_some(())
    });
    let (status, cancelled) = call(
        "DELETE",
        &format!("{}/jobs/{long}", batch.api()),
        Some(&batch.token),
        None,
    );
    assert_eq!(status, 200, "{cancelled}");
    wait_for("Slurm cancels the long job's run", || {
        let accounted = cluster.slurm(
            "sacct",
            &[
                "--noheader",
                "--parsable2",
                "--allocations",
                "--format=JobName,State",
            ],
        )?;
        accounted
            .lines()
            .any(|l| l.starts_with("orrery-job-") && l.contains("|CANCELLED"))
            .then_some(())
    });
    let j = wait_for("the cancelled run's record is kept", || {
        let j = batch.get(&format!("/jobs/{long}"));
        (j["runs"] == 1).then_some(j)
    });
    assert_eq!(j["state"], "cancelled", "{j}");
    let r = &batch.get(&format!("/jobs/{long}/runs"))[0];
    assert!(
        r["status"]
            .as_str()
            .is_some_and(|s| s.contains("was cancelled")),
        "{r}"
    );
    assert_eq!(r["cells"][0]["status"], "ok", "{r}");
    assert_eq!(r["cells"][4]["status"], "not run", "{r}");

    // The node stops while a run is in Slurm: started again, it follows the run and keeps its
    // record.
    let resumed = batch.submit(json!({ "pause": 12 }));
    wait_for("the run runs in Slurm", || {
        let j = batch.get(&format!("/jobs/{resumed}"));
        j["note"]
            .as_str()?
            .contains("running in Slurm as job")
            .then_some(())
    });
    drop(running);
    running = Running::start_with(&batch.data, &[("SLURM_CONF", &conf)]);
    let j = batch.ended(&resumed, &["done", "failed"]);
    assert_eq!(j["state"], "done", "{j}");
    let r = &batch.get(&format!("/jobs/{resumed}/runs"))[0];
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(r["verified"], true, "{r}");
    assert_eq!(
        r["cells"][3]["outputs"][0]["text"], "3 stations, 6.40\n",
        "{r}"
    );
    drop(running);
}
