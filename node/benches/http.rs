//! The node's HTTP face under load from a second process (wrk, two threads, 32 connections, on
//! loopback; the node and wrk share the machine's two cores), written to the section
//! `## HTTP face (issue: Accounts and API)` of `BENCHMARKS.md`:
//!
//! * baseline: an anonymous TAP synchronous query (`/tap/sync`, ADQL over `ivoa.obscore`, 20
//!   rows), the path every IVOA client takes;
//! * a search of this node's catalog (`POST /api/search?local=true`, facets counted, 20 hits),
//!   answered from the node's kept answers after the first request;
//! * the federation view (`GET /api/federation`), read from the store at most every 2 s;
//! * the REST API's search (`POST /api/v1/search?local=true`) and a project read
//!   (`GET /api/v1/projects/{id}`, a public project with a notebook of 20 cells), each
//!   anonymous and with an API token, so that what authentication adds is measured against the
//!   same request without it.
//!
//! Run with
//! `cargo bench -p orrery-node --bench http` (it installs wrk through `scripts/wrk-env`).

#[path = "../../crdt/benches/support/sections.rs"]
mod sections;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use orrery_node::catalog::Catalog;
use orrery_node::catalog::ingest::{Described, add_described};
use orrery_node::catalog::meta::ProductMeta;
use orrery_node::config::Config;
use orrery_node::home::Home;

const SECTION: &str = "## HTTP face (issue: Accounts and API)";
const PRODUCTS: usize = 20_000;
const SECONDS: u32 = 10;

/// What wrk measured.
#[derive(Debug, Default)]
struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

fn millis(s: &str) -> f64 {
    let s = s.trim();
    let (n, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map_or((s, "ms"), |i| (&s[..i], &s[i..]));
    let v: f64 = n.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => v / 1000.0,
        "s" => v * 1000.0,
        _ => v,
    }
}

fn wrk(url: &str, script: Option<&Path>) -> Load {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", "-c32", &format!("-d{SECONDS}s"), "--latency"]);
    if let Some(s) = script {
        cmd.arg("-s").arg(s);
    }
    let out = cmd.arg(url).output().expect("wrk runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("{text}");
    let mut load = Load::default();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", n] => load.rps = n.parse().unwrap_or(0.0),
            ["50%", v] => load.p50_ms = millis(v),
            ["99%", v] => load.p99_ms = millis(v),
            ["Non-2xx", "or", "3xx", "responses:", n] => load.errors += n.parse().unwrap_or(0),
            ["Socket", "errors:", ..] => load.errors += 1,
            _ => {}
        }
    }
    load
}

fn main() {
    let status = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/wrk-env"))
        .status()
        .expect("scripts/wrk-env");
    assert!(status.success(), "wrk is needed");
    let dir = tempfile::tempdir().expect("tempdir");
    let home = Home::new(dir.path().join("esac"));
    let mut config = Config::default();
    config.node.name = "esac".into();
    config.network = orrery_federation::Config::loopback();
    config.web.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    orrery_node::setup::init(&home, &config).expect("init");
    // A user with an API token, as `orrery user add` and `orrery token create` make them.
    let (author, token) = {
        let mut store = orrery_node::store::Store::open(&home.database()).expect("store");
        let author =
            orrery_node::setup::new_author(&home, &mut store, "Bench", None, None).expect("author");
        let user = store.add_user("Bench", author).expect("user");
        let scopes = [
            orrery_node::store::Scope::Read,
            orrery_node::store::Scope::Write,
        ];
        let (_, token) = store.create_token(&user.id, &scopes, 3600).expect("token");
        (author, token)
    };
    {
        let mut cat = Catalog::open(&home.database()).expect("catalog");
        let products = (0..PRODUCTS).map(|i| Described {
            path: format!("obs-{i:06}.fits"),
            size: 2880,
            blake3: *blake3::hash(&i.to_le_bytes()).as_bytes(),
            meta: ProductMeta {
                mission: Some(["XMM-Newton", "Gaia", "Herschel"][i % 3].into()),
                instrument: Some("camera".into()),
                product_type: Some("image".into()),
                target: Some(["Crab Nebula", "M87", "Vega", "Orion"][i % 4].into()),
                ra: Some((i % 360) as f64),
                dec: Some(((i % 170) as f64) - 85.0),
                date_obs: Some(format!("20{:02}-03-01T00:00:00", 10 + i % 15)),
                licence: Some("CC-BY-4.0".into()),
                ..ProductMeta::default()
            },
        });
        add_described(&mut cat, "archive", dir.path(), products).expect("products");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (node, _task) = runtime
        .block_on(orrery_node::service::start(home.clone()))
        .expect("node starts");
    let base = format!("http://{}", node.web_addr().expect("web"));
    let project = runtime.block_on(async {
        node.create_federation("bench").await.expect("federation");
        let id = node
            .create_project(author, "Bench", orrery_crdt::Visibility::Public)
            .await
            .expect("project");
        node.edit(id, author, |p, s| {
            let nb = p.add_notebook(s, "Timing")?;
            for i in 0..20 {
                let cell =
                    orrery_crdt::NewCell::new(orrery_crdt::CellKind::Code, &format!("x{i} = {i}"));
                p.insert_cell(s, &nb, i, cell)?;
            }
            Ok(())
        })
        .await
        .expect("notebook");
        id
    });

    let tap = format!(
        "{base}/tap/sync?LANG=ADQL&QUERY=SELECT%20TOP%2020%20obs_id,s_ra,s_dec%20FROM%20ivoa.obscore%20WHERE%20target_name%20=%20'Crab%20Nebula'"
    );
    let search_body = r#"{"text":"crab","filters":{},"tags":[],"collections":[],"cone":null,"time":null,"sort":"Relevance","page":{"offset":0,"limit":20},"facets":true}"#;
    let script = dir.path().join("post.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{search_body}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
        ),
    )
    .expect("script");
    // Warm: the catalog's pages and the kept answer.
    for _ in 0..3 {
        let _ = ureq::get(&tap).call();
        let _ = ureq::post(&format!("{base}/api/search?local=true"))
            .header("content-type", "application/json")
            .send(search_body);
    }
    let authed = dir.path().join("post-authed.lua");
    std::fs::write(
        &authed,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{search_body}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Authorization\"] = \"Bearer {token}\"\n"
        ),
    )
    .expect("script");
    let get_authed = dir.path().join("get-authed.lua");
    std::fs::write(
        &get_authed,
        format!("wrk.headers[\"Authorization\"] = \"Bearer {token}\"\n"),
    )
    .expect("script");
    let v1_search = format!("{base}/api/v1/search?local=true");
    let v1_project = format!("{base}/api/v1/projects/{project}");
    for _ in 0..3 {
        let _ = ureq::get(&v1_project).call();
    }
    let tap_load = wrk(&tap, None);
    let search_load = wrk(&format!("{base}/api/search?local=true"), Some(&script));
    let fed_load = wrk(&format!("{base}/api/federation"), None);
    let v1_search_anon = wrk(&v1_search, Some(&script));
    let v1_search_auth = wrk(&v1_search, Some(&authed));
    let v1_project_anon = wrk(&v1_project, None);
    let v1_project_auth = wrk(&v1_project, Some(&get_authed));
    node.shutdown();
    std::thread::sleep(Duration::from_millis(200));

    let row = |what: &str, l: &Load, base: &Load| {
        format!(
            "| {what} | {:.0} | {:.2} ms | {:.2} ms | {} | {:.2}× |\n",
            l.rps,
            l.p50_ms,
            l.p99_ms,
            l.errors,
            l.rps / base.rps
        )
    };
    let goal = if search_load.rps >= 5000.0 {
        "met"
    } else {
        "**missed**"
    };
    let mut out = format!(
        "Command: `cargo bench -p orrery-node --bench http` (release build). One node with {PRODUCTS} described products; wrk from a second process, 2 threads, 32 connections, {SECONDS} s per figure, on loopback; the node (2 worker threads) and wrk share the 2 cores.\n\n"
    );
    out.push_str("| request | req/s | p50 | p99 | non-2xx or socket errors | throughput vs baseline |\n|---|---|---|---|---|---|\n");
    out.push_str(&row(
        "baseline: anonymous TAP sync, 20 rows of `ivoa.obscore`",
        &tap_load,
        &tap_load,
    ));
    out.push_str(&row("search of this node's catalog, facets counted, 20 hits (`POST /api/search?local=true`, kept answer)", &search_load, &tap_load));
    out.push_str(&row(
        "the federation view (`GET /api/federation`, read from the store at most every 2 s)",
        &fed_load,
        &tap_load,
    ));
    out.push_str(&row(
        "REST search, anonymous (`POST /api/v1/search?local=true`, kept answer)",
        &v1_search_anon,
        &tap_load,
    ));
    out.push_str(&row(
        "REST search with an API token",
        &v1_search_auth,
        &tap_load,
    ));
    out.push_str(&row(
        "REST project read, anonymous (`GET /api/v1/projects/{id}`, public project, 20 cells)",
        &v1_project_anon,
        &tap_load,
    ));
    out.push_str(&row(
        "REST project read with an API token",
        &v1_project_auth,
        &tap_load,
    ));
    let cost = |anon: &Load, auth: &Load| 100.0 * (1.0 - auth.rps / anon.rps);
    let (search_cost, read_cost) = (
        cost(&v1_search_anon, &v1_search_auth),
        cost(&v1_project_anon, &v1_project_auth),
    );
    let auth_goal = if search_cost < 10.0 && read_cost < 10.0 {
        "met"
    } else {
        "**missed**"
    };
    out.push_str(&format!(
        "\nGoal: a cached search holds 5,000 req/s on 2 cores: {goal} ({:.0} req/s). Goal: authentication adds less than 10 %: {auth_goal} (throughput lost to the token, against the same request anonymous in the same run: search {search_cost:.1} %, project read {read_cost:.1} %; a token's answer is kept for a second, so most requests cost a hash and a map lookup).\n",
        search_load.rps
    ));
    println!("{out}");
    sections::write_section(env!("CARGO_MANIFEST_DIR"), SECTION, &out);
}
