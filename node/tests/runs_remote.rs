//! A cell run at the data, on another node: three `orrery` processes on loopback. A collection
//! only Heidelberg holds; Ada, a researcher of ESAC, references its FITS image in a public
//! project and runs a cell that reads it with astropy and plots it. ESAC places the run at
//! Heidelberg and sends it Ada's signed request with the project; Heidelberg runs it in Ada's
//! lab there and answers with the change recording the outputs, signed with its node key. The
//! PNG is stored at ESAC, the provenance names the image's checksum and Heidelberg, and Madrid,
//! a third node, takes the outputs in after checking Heidelberg's signature and Ada's request.
//! The kernel keeps its state between runs, and a long cell is interrupted through the API.
//! Needs root and bubblewrap (`scripts/lab-env`).

#[path = "support/http.rs"]
mod http;
#[path = "support/run.rs"]
mod run;
use http::call;
use run::{Running, add_user, free_port, lab_node, orrery, token_for, use_loopback};

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// A FITS file holding a 16×16 image of 8-bit values (a ramp), whose header names the object.
fn fits_image(object: &str) -> Vec<u8> {
    let cards = [
        format!("{:<8}= {:>20}", "SIMPLE", "T"),
        format!("{:<8}= {:>20}", "BITPIX", "8"),
        format!("{:<8}= {:>20}", "NAXIS", "2"),
        format!("{:<8}= {:>20}", "NAXIS1", "16"),
        format!("{:<8}= {:>20}", "NAXIS2", "16"),
        format!("{:<8}= '{object}'", "OBJECT"),
        "END".to_owned(),
    ];
    let mut bytes: Vec<u8> = cards
        .iter()
        .flat_map(|c| format!("{c:<80}").into_bytes())
        .collect();
    bytes.resize(2880, b' ');
    bytes.extend((0..256u32).map(|i| (i % 16 + i / 16) as u8));
    bytes.resize(2 * 2880, 0);
    bytes
}

/// Waits until `check` gives something, or fails saying `what` after two minutes.
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(t) = check() {
            return t;
        }
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_cell_run_at_esac_runs_at_heidelberg_where_the_data_is_and_madrid_verifies_its_outputs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (a, b, c) = (
        tmp.path().join("esac"),
        tmp.path().join("heidelberg"),
        tmp.path().join("madrid"),
    );
    lab_node(&a, "ESAC");
    lab_node(&b, "Heidelberg");
    orrery(&c, &["init", "--name", "Madrid"]);
    use_loopback(&c, free_port());
    orrery(&a, &["federation", "create", "esa-archives"]);

    // The image lives at Heidelberg only.
    let files = tmp.path().join("crab");
    std::fs::create_dir_all(&files).expect("mkdir");
    std::fs::write(files.join("crab.fits"), fits_image("Crab Nebula")).expect("fits");
    std::fs::write(
        files.join("crab.fits.meta.json"),
        r#"{"title": "Crab", "mission": "XMM-Newton", "format": "application/fits"}"#,
    )
    .expect("sidecar");
    let dir = files.to_str().expect("utf-8");
    orrery(&b, &["dataset", "add", dir, "--collection", "crab"]);

    let ada = add_user(&a, "Ada");
    let token = token_for(&a, &ada, "read,write,labs");
    let _a_running = Running::start(&a);
    let (b_id, c_id) = (
        orrery(&b, &["id"]).trim().to_owned(),
        orrery(&c, &["id"]).trim().to_owned(),
    );
    for (data, id) in [(&b, &b_id), (&c, &c_id)] {
        let invite = orrery(&a, &["federation", "invite", "--node", id]);
        orrery(data, &["federation", "join", invite.trim()]);
    }
    let _b_running = Running::start(&b);
    let _c_running = Running::start(&c);

    let addr = std::fs::read_to_string(a.join("web.addr")).expect("web.addr");
    let api = format!("http://{}/api/v1", addr.trim());
    let post =
        |path: &str, body: Option<Value>| call("POST", &format!("{api}{path}"), Some(&token), body);

    // Ada finds the image through a federated search at ESAC.
    let hit = wait_for("ESAC's search finds Heidelberg's image", || {
        let (status, found) = post("/search", Some(json!({ "text": "Crab" })));
        assert_eq!(status, 200, "{found}");
        found["results"]["hits"]
            .as_array()
            .and_then(|h| h.iter().find(|h| h["id"] == "crab/crab.fits").cloned())
    });
    assert_eq!(hit["node"], b_id.as_str(), "{hit}");
    let checksum = hit["blake3"].as_str().expect("a checksum").to_owned();
    assert_eq!(
        checksum,
        blake3::hash(&fits_image("Crab Nebula")).to_hex().as_str()
    );

    let (status, project) = post(
        "/projects",
        Some(json!({ "title": "Crab imaging", "visibility": "public" })),
    );
    assert_eq!(status, 201, "{project}");
    let p = project["id"].as_str().expect("id").to_owned();
    // Referenced from the command line, which finds the holder through ESAC's search.
    let said = orrery(
        &a,
        &["project", "reference", &p, "crab/crab.fits", "--user", &ada],
    );
    assert!(said.contains("at Heidelberg"), "{said}");
    let (status, referenced) = call("GET", &format!("{api}/projects/{p}"), Some(&token), None);
    assert_eq!(status, 200, "{referenced}");
    assert_eq!(referenced["datasets"][0]["checksum"], checksum.as_str());
    assert_eq!(referenced["datasets"][0]["product"], "crab/crab.fits");
    assert_eq!(referenced["datasets"][0]["node_name"], "Heidelberg");
    let (status, nb) = post(
        &format!("/projects/{p}/notebooks"),
        Some(json!({ "title": "Image" })),
    );
    assert_eq!(status, 201, "{nb}");
    let nb = nb["id"].as_str().expect("id").to_owned();
    let sources = [
        "from astropy.io import fits\n\
         import matplotlib.pyplot as plt\n\
         image = fits.getdata('/data/crab/crab.fits')\n\
         plt.imshow(image, origin='lower')\n\
         plt.title(fits.getheader('/data/crab/crab.fits')['OBJECT'])\n\
         plt.show()",
        "image.shape, int(image.max())",
        "import time\nprint('started', flush=True)\ntime.sleep(600)",
    ];
    let mut cells = Vec::new();
    for source in sources {
        let (status, cell) = post(
            &format!("/projects/{p}/notebooks/{nb}/cells"),
            Some(json!({ "kind": "code", "source": source })),
        );
        assert_eq!(status, 201, "{cell}");
        cells.push(cell["id"].as_str().expect("id").to_owned());
    }
    let run = |cell: &str| {
        post(
            &format!("/projects/{p}/notebooks/{nb}/cells/{cell}/run"),
            None,
        )
    };

    // The plot is made at Heidelberg, and its PNG is stored at ESAC.
    let (status, plotted) = run(&cells[0]);
    assert_eq!(status, 200, "{plotted}");
    assert_eq!(plotted["status"], "ok", "{plotted}");
    assert_eq!(
        plotted["node"],
        b_id.as_str(),
        "run at the holder: {plotted}"
    );
    assert_eq!(plotted["node_name"], "Heidelberg", "{plotted}");
    assert_eq!(
        plotted["cell"]["run"]["datasets"][0]["blake3"], checksum,
        "{plotted}"
    );
    let png = plotted["cell"]["outputs"]
        .as_array()
        .and_then(|o| o.iter().find_map(|o| o["data"]["image/png"].as_str()))
        .unwrap_or_else(|| panic!("no PNG among the outputs: {plotted}"));
    let png = base64::engine::general_purpose::STANDARD
        .decode(png.replace('\n', ""))
        .expect("base64");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        b.join("labs/workspaces").is_dir() && !a.join("labs/workspaces").exists(),
        "the lab ran at Heidelberg, nothing at ESAC"
    );

    // The provenance names the image read, its checksum, and the node.
    let shown = orrery(&a, &["project", "provenance", &p, &nb, &cells[0]]);
    assert!(shown.contains("Heidelberg"), "{shown}");
    assert!(shown.contains("crab/crab.fits"), "{shown}");
    assert!(shown.contains(&checksum), "{shown}");
    assert!(shown.contains("Ada"), "{shown}");
    let credits = orrery(&a, &["project", "credits", &p]);
    assert!(credits.contains("Heidelberg"), "{credits}");

    // The kernel at Heidelberg kept the image from the first run.
    let (status, second) = run(&cells[1]);
    assert_eq!(status, 200, "{second}");
    assert_eq!(
        second["cell"]["outputs"][0]["data"]["text/plain"], "((16, 16), 30)",
        "{second}"
    );

    // Madrid holds the public project and took Heidelberg's outputs in, having checked
    // Heidelberg's signature and Ada's request as every replica does.
    let at_madrid = wait_for("Madrid holds the outputs", || {
        let shown = std::process::Command::new(env!("CARGO_BIN_EXE_orrery"))
            .arg("--data-dir")
            .arg(&c)
            .args(["project", "provenance", &p, &nb, &cells[0]])
            .output()
            .expect("orrery runs");
        let text = String::from_utf8_lossy(&shown.stdout).into_owned();
        (shown.status.success() && text.contains(&checksum)).then_some(text)
    });
    assert!(at_madrid.contains("Heidelberg"), "{at_madrid}");

    // A notebook run whole as a job from ESAC runs at Heidelberg too, with its parameter
    // injected; the record Heidelberg signed carries Ada's request.
    let header = json!({ "nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        { "cell_type": "code", "id": "params", "metadata": { "tags": ["parameters"] },
          "outputs": [], "execution_count": null, "source": "card = 'SIMPLE'" },
        { "cell_type": "code", "id": "read", "metadata": {}, "outputs": [],
          "execution_count": null,
          "source": "from astropy.io import fits\nfits.getheader('/data/crab/crab.fits')[card]" },
    ]});
    let (status, imported) = post(
        &format!("/projects/{p}/notebooks/import"),
        Some(json!({ "title": "Header", "notebook": header })),
    );
    assert_eq!(status, 201, "{imported}");
    let header_nb = imported["id"].as_str().expect("id").to_owned();
    let (status, job) = post(
        &format!("/projects/{p}/notebooks/{header_nb}/jobs"),
        Some(json!({ "parameters": { "card": "OBJECT" } })),
    );
    assert_eq!(status, 201, "{job}");
    let job = job["id"].as_str().expect("id").to_owned();
    let job_state = wait_for("the job's run at Heidelberg", || {
        let (_, j) = call("GET", &format!("{api}/jobs/{job}"), Some(&token), None);
        matches!(j["state"].as_str(), Some("done" | "failed")).then_some(j)
    });
    assert_eq!(job_state["state"], "done", "{job_state}");
    let (status, runs) = call("GET", &format!("{api}/jobs/{job}/runs"), Some(&token), None);
    assert_eq!(status, 200, "{runs}");
    let r = &runs[0];
    assert_eq!(r["node"], b_id.as_str(), "ran where the data is: {r}");
    assert_eq!(r["verified"], true, "{r}");
    assert_eq!(
        r["cells"][2]["outputs"][0]["data"]["text/plain"], "'Crab Nebula'",
        "{r}"
    );
    assert_eq!(
        r["datasets"][0],
        format!("crab/crab.fits {checksum}"),
        "{r}"
    );

    // A long cell, run with its outputs streamed: its first line arrives while it runs; it is
    // then interrupted through ESAC, and the run ends, recorded as interrupted.
    let url = format!("{api}/projects/{p}/notebooks/{nb}/cells/{}/run", cells[2]);
    let mut lines = streamed_run(&url, &token);
    let first: Value = serde_json::from_str(&lines.next().expect("a line")).expect("json");
    assert_eq!(
        first["output"]["text"], "started\n",
        "the first output, while the cell runs: {first}"
    );
    let (status, answer) = post(
        &format!("/projects/{p}/notebooks/{nb}/kernel/interrupt"),
        None,
    );
    assert_eq!(status, 204, "{answer}");
    let last: Value = serde_json::from_str(&lines.last().expect("the run")).expect("json");
    assert!(
        last["run"]["status"]
            .as_str()
            .is_some_and(|s| s.starts_with("KeyboardInterrupt")),
        "{last}"
    );
    assert_eq!(last["run"]["node"], b_id.as_str(), "{last}");
}

/// The lines of a run's streamed answer (`application/x-ndjson`), as they arrive.
fn streamed_run(url: &str, token: &str) -> impl Iterator<Item = String> {
    use std::io::BufRead;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let response = agent
        .post(url)
        .header("authorization", format!("Bearer {token}"))
        .header("accept", "application/x-ndjson")
        .send_empty()
        .expect("the node answers");
    assert_eq!(response.status().as_u16(), 200);
    std::io::BufReader::new(response.into_body().into_reader())
        .lines()
        .map(|l| l.expect("a line"))
}
