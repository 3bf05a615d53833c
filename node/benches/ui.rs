//! The browser UI: time until a 200-cell notebook with figures and math is readable after
//! navigating to its project page, against the same notebook as static HTML made beforehand
//! by nbconvert (the cheapest way a browser can show it: nothing left to render), measured in
//! the same run by the same browser (Debian's Chromium through playwright-core). Also the size
//! of the UI's JavaScript, compressed as a browser receives it.
//!
//! `cargo bench -p orrery-node --bench ui` (installs Chromium with `scripts/browser-env` as
//! root, builds the UI with `scripts/ui-build`, and provisions the lab environment, whose
//! nbconvert makes the static page). `ORRERY_BENCH_RUNS` (default 10) sizes it.

#[path = "../tests/support/http.rs"]
mod http;
#[path = "../tests/support/run.rs"]
mod run;

use std::io::Write;
use std::path::Path;
use std::process::Command;

use http::call;
use orrery_node::labs::env::{Environment, provision};
use run::{Running, add_user, free_port, orrery, repo, token_for, use_loopback};
use serde_json::{Value, json};

const CELLS: usize = 200;

/// A 48×48 figure, different per cell.
fn figure(i: usize) -> String {
    use base64::Engine as _;
    let (w, h) = (48u32, 48u32);
    let mut raw = Vec::new();
    for y in 0..h {
        raw.push(0u8);
        for x in 0..w {
            raw.extend_from_slice(&[(x * 5) as u8, (y * 5) as u8, (i * 7 % 256) as u8]);
        }
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&raw).expect("deflate");
    let idat = z.finish().expect("deflate");
    let chunk = |t: &[u8], d: &[u8]| {
        let mut c = (d.len() as u32).to_be_bytes().to_vec();
        c.extend_from_slice(t);
        c.extend_from_slice(d);
        let mut crc = flate2::Crc::new();
        crc.update(t);
        crc.update(d);
        c.extend_from_slice(&crc.sum().to_be_bytes());
        c
    };
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(b"IDAT", &idat));
    png.extend(chunk(b"IEND", &[]));
    base64::engine::general_purpose::STANDARD.encode(png)
}

/// Half Markdown with math, half code with a printed line and a figure.
fn notebook() -> Value {
    let cells: Vec<Value> = (0..CELLS)
        .map(|i| {
            if i % 2 == 0 {
                json!({ "id": format!("m{i}"), "cell_type": "markdown", "metadata": {},
                        "source": format!("## Step {i}\n\nThe residual $r_{{{i}}} = t_{{{i}}} - \\hat t_{{{i}}}$ is **small**:\n\n$$\\chi^2 = \\sum_k r_k^2 / \\sigma_k^2$$\n") })
            } else {
                json!({ "id": format!("c{i}"), "cell_type": "code", "metadata": {}, "execution_count": i,
                        "source": format!("import numpy as np\nr = np.random.default_rng({i}).normal(size=100)\nprint(r.std())\nplot(r)"),
                        "outputs": [
                            { "output_type": "stream", "name": "stdout", "text": "0.98\n" },
                            { "output_type": "display_data", "metadata": {},
                              "data": { "image/png": figure(i), "text/plain": "<Figure>" } }
                        ] })
            }
        })
        .collect();
    json!({ "nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    for setup in ["scripts/browser-env", "scripts/ui-build"] {
        let status = Command::new(repo().join(setup)).status().expect(setup);
        assert!(status.success(), "{setup} failed");
    }
    let runs: usize = std::env::var("ORRERY_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10);
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("node");
    orrery(&data, &["init", "--name", "ESAC"]);
    use_loopback(&data, free_port());
    let config = data.join("orrery.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replace("listen = \"127.0.0.1:7480\"", "listen = \"127.0.0.1:0\"")
            .replace("listen = \"127.0.0.1:9480\"", "listen = \"127.0.0.1:0\""),
    )
    .expect("config");
    let user = add_user(&data, "Ada Lovelace");
    let token = token_for(&data, &user, "read,write");
    let _running = Running::start(&data);
    let addr = std::fs::read_to_string(data.join("web.addr")).expect("web.addr");
    let base = format!("http://{}", addr.trim());

    let file = notebook();
    let (status, made) = call(
        "POST",
        &format!("{base}/api/v1/projects"),
        Some(&token),
        Some(json!({ "title": "Two hundred cells", "visibility": "public" })),
    );
    assert_eq!(status, 201, "{made}");
    let project = made["id"].as_str().expect("id").to_owned();
    let (status, nb) = call(
        "POST",
        &format!("{base}/api/v1/projects/{project}/notebooks/import"),
        Some(&token),
        Some(json!({ "title": "Residuals", "notebook": file })),
    );
    assert_eq!(status, 201, "{nb}");

    // The static page, made beforehand by nbconvert from the same file.
    let envs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("lab-envs");
    let env = provision(
        &envs,
        &Environment::jupyter(),
        Path::new("/usr/bin/python3"),
        &mut |_| {},
    )
    .expect("the jupyter environment (its nbconvert)");
    let ipynb = tmp.path().join("residuals.ipynb");
    std::fs::write(&ipynb, serde_json::to_vec(&file).expect("json")).expect("write");
    let status = Command::new(env.root.join("bin/jupyter-nbconvert"))
        .args(["--to", "html", "--template", "basic", "--log-level", "WARN"])
        .arg(&ipynb)
        .status()
        .expect("nbconvert runs");
    assert!(status.success(), "nbconvert failed");
    let html = tmp.path().join("residuals.html");

    let figures = (CELLS / 2).to_string();
    let out = Command::new("node")
        .arg(repo().join("tests/browser/bench-notebook.mjs"))
        .arg(format!("{base}/ui/#/projects/{project}"))
        .arg(&html)
        .args([&CELLS.to_string(), &figures, &runs.to_string()])
        .output()
        .expect("node runs");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let times: Value = serde_json::from_str(said.lines().last().unwrap_or("")).expect("json");
    let sorted = |side: &str| {
        let mut v: Vec<f64> = times[side]
            .as_array()
            .expect("times")
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let (ours, baseline) = (sorted("orrery"), sorted("static"));
    println!(
        "200-cell notebook (100 figures, 200 formulas), readable after navigation, {runs} runs:"
    );
    for (name, v) in [
        ("project page", &ours),
        ("nbconvert static HTML", &baseline),
    ] {
        println!(
            "  {name:24} p50 {:6.0} ms   p95 {:6.0} ms",
            percentile(v, 0.5),
            percentile(v, 0.95)
        );
    }
    println!(
        "  ratio (p50): {:.2}x the static page",
        percentile(&ours, 0.5) / percentile(&baseline, 0.5)
    );

    // The UI's JavaScript as sent (gzip -9): the pages' own, and the math renderer loaded
    // only where math is shown.
    let assets = repo().join("ui/dist/assets");
    for (prefix, what) in [("main-", "the pages"), ("katex-", "math, on demand")] {
        let file = std::fs::read_dir(&assets)
            .expect("assets")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".js"))
            })
            .expect("a bundle");
        let bytes = std::fs::read(&file).expect("read");
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&bytes).expect("gzip");
        let gz = z.finish().expect("gzip").len();
        println!(
            "  JavaScript, {what}: {} KB, {} KB compressed",
            bytes.len() / 1000,
            gz / 1000
        );
    }
}
