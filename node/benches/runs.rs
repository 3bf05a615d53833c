//! Runs at the data: `1+1` from the request at the researcher's node to signed outputs stored
//! there, with a warm kernel, run on that node and placed on another node over loopback; beside
//! it, in the same run, the same cell executed directly on a Jupyter kernel in the same lab
//! (`runs_kernel.py`: an execute_request until idle, on the lab server's Unix socket as the
//! node's kernel client goes, and through the node's lab proxy). Then a 5 MB
//! PNG output: the run here and there, and the time until a replica holds it after it was
//! recorded, against a plain TCP transfer of as many bytes on loopback.
//!
//! `cargo bench -p orrery-node --bench runs` (as root: labs need cgroups; it installs bubblewrap
//! with `scripts/lab-env`). `ORRERY_BENCH_RUNS` (default 20) sizes it.

#[path = "../tests/support/http.rs"]
mod http;
#[path = "../tests/support/run.rs"]
mod run;

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use http::call;
use run::{Running, add_user, lab_node, orrery, repo, token_for, web_addr};
use serde_json::{Value, json};

/// A cell making a 5 MB PNG (random pixels do not compress) and showing it.
const IMAGE: &str = "import io, numpy as np\nfrom PIL import Image as P\nfrom IPython.display import Image, display\n\
     a = np.random.default_rng(1).integers(0, 256, (1300, 1300, 3), dtype=np.uint8)\n\
     b = io.BytesIO()\nP.fromarray(a).save(b, 'PNG')\ndisplay(Image(data=b.getvalue()))";

fn percentile(samples: &[f64], q: f64) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    s[((q * (s.len() - 1) as f64).round() as usize).min(s.len() - 1)]
}

fn ms(s: f64) -> String {
    format!("{:.1} ms", s * 1000.0)
}

/// A project at `api` as `token`, with `cells` in one notebook, referencing `dataset` if any.
fn project(
    api: &str,
    token: &str,
    title: &str,
    dataset: Option<Value>,
    cells: &[&str],
) -> (String, String, Vec<String>) {
    let post =
        |path: &str, body: Value| call("POST", &format!("{api}{path}"), Some(token), Some(body));
    let (status, p) = post(
        "/projects",
        json!({ "title": title, "visibility": "public" }),
    );
    assert_eq!(status, 201, "{p}");
    let p = p["id"].as_str().expect("id").to_owned();
    if let Some(d) = dataset {
        let (status, answer) = post(&format!("/projects/{p}/datasets"), d);
        assert_eq!(status, 201, "{answer}");
    }
    let (status, nb) = post(&format!("/projects/{p}/notebooks"), json!({ "title": "n" }));
    assert_eq!(status, 201, "{nb}");
    let nb = nb["id"].as_str().expect("id").to_owned();
    let ids = cells
        .iter()
        .map(|source| {
            let (status, c) = post(
                &format!("/projects/{p}/notebooks/{nb}/cells"),
                json!({ "source": source }),
            );
            assert_eq!(status, 201, "{c}");
            c["id"].as_str().expect("id").to_owned()
        })
        .collect();
    (p, nb, ids)
}

/// Runs a cell; the seconds from the request until the answer (the outputs stored here), and
/// the answer.
fn run(api: &str, token: &str, p: &str, nb: &str, cell: &str) -> (f64, Value) {
    let t0 = Instant::now();
    let (status, ran) = call(
        "POST",
        &format!("{api}/projects/{p}/notebooks/{nb}/cells/{cell}/run"),
        Some(token),
        None,
    );
    let took = t0.elapsed().as_secs_f64();
    assert_eq!(status, 200, "{ran}");
    assert_eq!(ran["status"], "ok", "{ran}");
    (took, ran)
}

/// The seconds to send `bytes` over a TCP connection on loopback and have them all read.
fn tcp_transfer(bytes: &[u8]) -> f64 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let at = listener.local_addr().expect("addr");
    let len = bytes.len();
    let reader = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut got = vec![0u8; len];
        s.read_exact(&mut got).expect("read");
        Instant::now()
    });
    let t0 = Instant::now();
    let mut s = std::net::TcpStream::connect(at).expect("connect");
    s.write_all(bytes).expect("write");
    let done = reader.join().expect("reader");
    (done - t0).as_secs_f64()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    assert!(
        rustix::process::getuid().is_root(),
        "the runs benchmark needs root (cgroup limits for labs)"
    );
    let runs: usize = std::env::var("ORRERY_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let status = Command::new("bash")
        .arg(repo().join("scripts/lab-env"))
        .status()
        .expect("bash runs");
    assert!(status.success(), "scripts/lab-env failed");

    // Kept when the run fails, for its nodes' logs (`run.log` in each).
    let tmp = tempfile::Builder::new()
        .prefix("orrery-bench-runs")
        .disable_cleanup(true)
        .tempdir()
        .expect("tempdir");
    let (a, b) = (tmp.path().join("esac"), tmp.path().join("heidelberg"));
    lab_node(&a, "ESAC");
    lab_node(&b, "Heidelberg");
    orrery(&a, &["federation", "create", "bench"]);
    let files = tmp.path().join("crab");
    std::fs::create_dir_all(&files).expect("mkdir");
    std::fs::write(files.join("crab.csv"), "ra,dec\n83.63,22.01\n").expect("file");
    std::fs::write(
        files.join("crab.csv.meta.json"),
        r#"{"title": "Crab", "mission": "XMM-Newton", "format": "text/csv"}"#,
    )
    .expect("sidecar");
    let dir = files.to_str().expect("utf-8");
    orrery(&b, &["dataset", "add", dir, "--collection", "crab"]);
    let user = add_user(&a, "Bench");
    let token = token_for(&a, &user, "read,write,labs");
    let reader_b = add_user(&b, "Reader");
    let token_b = token_for(&b, &reader_b, "read");
    let _a = Running::start(&a);
    let b_id = orrery(&b, &["id"]).trim().to_owned();
    let invite = orrery(&a, &["federation", "invite", "--node", &b_id]);
    orrery(&b, &["federation", "join", invite.trim()]);
    let _b = Running::start(&b);
    let (node_a, node_b) = (web_addr(&a), web_addr(&b));
    let api = format!("http://{node_a}/api/v1");

    // The product's checksum, once ESAC knows Heidelberg's catalog.
    let deadline = Instant::now() + Duration::from_secs(120);
    let hit = loop {
        let (_, found) = call(
            "POST",
            &format!("{api}/search"),
            Some(&token),
            Some(json!({ "text": "Crab" })),
        );
        if let Some(h) = found["results"]["hits"]
            .as_array()
            .and_then(|h| h.iter().find(|h| h["id"] == "crab/crab.csv").cloned())
        {
            break h;
        }
        assert!(
            Instant::now() < deadline,
            "Heidelberg's catalog never showed"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let reference = json!({ "node": b_id, "product": "crab/crab.csv", "checksum": hit["blake3"] });
    let here = project(&api, &token, "here", None, &["1+1", IMAGE]);
    let there = project(&api, &token, "there", Some(reference), &["1+1", IMAGE]);

    // Warm: the labs, kernels and environments exist before anything is timed.
    let (_, first) = run(&api, &token, &here.0, &here.1, &here.2[0]);
    let lab = first["lab"].as_str().expect("a lab").to_owned();
    let (_, placed) = run(&api, &token, &there.0, &there.1, &there.2[0]);
    assert_eq!(placed["node"], b_id.as_str(), "{placed}");

    let series = |(p, nb, cells): &(String, String, Vec<String>)| -> Vec<f64> {
        (0..runs)
            .map(|_| run(&api, &token, p, nb, &cells[0]).0)
            .collect()
    };
    eprintln!("== 1+1 run at ESAC");
    let local = series(&here);
    eprintln!("== 1+1 placed at Heidelberg");
    let remote = series(&there);
    // The baseline: the same cell on a kernel of the same lab, straight to its server's Unix
    // socket as the node's own kernel client goes; and, beside it, through the lab proxy.
    let kernel = |how: &[&str]| -> Vec<f64> {
        let out = Command::new(repo().join(".venv/bin/python"))
            .arg(repo().join("node/benches/runs_kernel.py"))
            .args(["--lab", &lab, "--runs", &runs.to_string(), "--code", "1+1"])
            .args(how)
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("python runs");
        assert!(out.status.success(), "runs_kernel.py failed");
        let answer: Value = serde_json::from_slice(&out.stdout).expect("a JSON line");
        answer["samples_s"]
            .as_array()
            .expect("samples")
            .iter()
            .filter_map(Value::as_f64)
            .collect()
    };
    eprintln!("== 1+1 directly on a kernel of the same lab");
    let socket = a.join("labs/run").join(&lab).join("jupyter.sock");
    let direct = kernel(&["--socket", socket.to_str().expect("utf-8")]);
    eprintln!("== 1+1 on the same kernel through the lab proxy");
    let proxied = kernel(&["--node", &node_a, "--token", &token]);

    // A 5 MB image: the run here and there, then until Heidelberg (a replica of the public
    // project made here) holds it.
    eprintln!("== a 5 MB PNG");
    let (image_here, _) = run(&api, &token, &here.0, &here.1, &here.2[1]);
    let recorded = Instant::now();
    // The output is stored beside the project; a notebook file carries it inline.
    let ipynb = |node: &str, t: &str| {
        let url = format!(
            "http://{node}/api/v1/projects/{}/notebooks/{}/ipynb",
            here.0, here.1
        );
        let (status, file) = call("GET", &url, Some(t), None);
        (status == 200).then(|| file["cells"][1]["outputs"][0].clone())
    };
    let image = ipynb(&node_a, &token).expect("the notebook file");
    let png = image["data"]["image/png"]
        .as_str()
        .expect("a PNG")
        .to_owned();
    let replica_deadline = recorded + Duration::from_secs(120);
    while ipynb(&node_b, &token_b).as_ref() != Some(&image) {
        assert!(
            Instant::now() < replica_deadline,
            "the replica never held the image"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let to_replica = recorded.elapsed().as_secs_f64();
    let (image_there, _) = run(&api, &token, &there.0, &there.1, &there.2[1]);
    let bytes = png.len();
    let plain = tcp_transfer(png.as_bytes());

    let (d50, d95) = (percentile(&direct, 0.5), percentile(&direct, 0.95));
    println!(
        "| `1+1`, request → signed outputs stored at the requester ({runs} runs each) | p50 | p95 | p50 − direct p50 |"
    );
    println!("|---|---|---|---|");
    for (what, s) in [
        ("run on the researcher's node", &local),
        (
            "placed at the node holding the data, over loopback",
            &remote,
        ),
    ] {
        let (p50, p95) = (percentile(s, 0.5), percentile(s, 0.95));
        println!("| {what} | {} | {} | {} |", ms(p50), ms(p95), ms(p50 - d50));
    }
    println!(
        "| directly on a Jupyter kernel of the same lab, on its server's socket (baseline) | {} | {} | — |",
        ms(d50),
        ms(d95)
    );
    println!(
        "| the same kernel through the node's lab proxy (as JupyterLab reaches it) | {} | {} | {} |",
        ms(percentile(&proxied, 0.5)),
        ms(percentile(&proxied, 0.95)),
        ms(percentile(&proxied, 0.5) - d50)
    );
    println!();
    println!(
        "| a PNG of {:.1} MB (base64 in the notebook, {bytes} bytes) | time |",
        bytes as f64 * 3.0 / 4.0 / 1e6
    );
    println!("|---|---|");
    println!(
        "| run on the researcher's node, request → stored | {} |",
        ms(image_here)
    );
    println!(
        "| placed at the other node, request → stored at the requester | {} |",
        ms(image_there)
    );
    println!(
        "| recorded here → a replica at the other node holds it | {} |",
        ms(to_replica)
    );
    println!(
        "| plain TCP transfer of the same {bytes} bytes on loopback (baseline) | {} |",
        ms(plain)
    );
    drop((_a, _b));
    let _ = std::fs::remove_dir_all(tmp.path());
}
