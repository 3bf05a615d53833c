//! A lab placed at the data: two `orrery` processes on loopback, a collection only Heidelberg
//! holds, a researcher of ESAC. Their lab request at ESAC is placed at Heidelberg (the holder),
//! sent there signed by the researcher's author key, and reached through ESAC's proxy over the
//! data plane: a kernel opens the collection's FITS file with astropy and cannot write it or
//! read Heidelberg's keys. Stopping it through ESAC stops it at Heidelberg. Needs root and
//! bubblewrap (`scripts/lab-env`).

#[path = "support/http.rs"]
mod http;
#[path = "support/lab.rs"]
mod lab;
#[path = "support/run.rs"]
mod run;
use http::{call, call_at};
use lab::{cell, env_python};
use run::{Running, add_user, free_port, orrery, share_lab_envs, token_for, use_loopback};

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

/// A FITS file of one empty primary HDU whose header names the object observed.
fn fits(object: &str) -> Vec<u8> {
    let cards = [
        format!("{:<8}= {:>20}", "SIMPLE", "T"),
        format!("{:<8}= {:>20}", "BITPIX", "8"),
        format!("{:<8}= {:>20}", "NAXIS", "0"),
        format!("{:<8}= '{object}'", "OBJECT"),
        "END".to_owned(),
    ];
    let mut header: String = cards.iter().map(|c| format!("{c:<80}")).collect();
    while !header.len().is_multiple_of(2880) {
        header.push(' ');
    }
    header.into_bytes()
}

#[test]
fn a_lab_asked_for_at_esac_runs_at_heidelberg_where_the_data_is() {
    assert!(
        rustix::process::getuid().is_root() && Path::new("/usr/bin/bwrap").exists(),
        "the lab tests need root and /usr/bin/bwrap: run scripts/lab-env as root"
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let (a, b) = (tmp.path().join("esac"), tmp.path().join("heidelberg"));
    orrery(&a, &["init", "--name", "ESAC"]);
    orrery(&b, &["init", "--name", "Heidelberg"]);
    use_loopback(&a, free_port());
    use_loopback(&b, free_port());
    let envs = share_lab_envs(&a);
    share_lab_envs(&b);
    orrery(&a, &["federation", "create", "esa-archives"]);

    // The collection lives at Heidelberg only.
    let files = tmp.path().join("crab");
    std::fs::create_dir_all(&files).expect("mkdir");
    std::fs::write(files.join("crab.fits"), fits("Crab Nebula")).expect("fits");
    std::fs::write(
        files.join("crab.fits.meta.json"),
        r#"{"title": "Crab", "mission": "XMM-Newton", "format": "application/fits"}"#,
    )
    .expect("sidecar");
    orrery(
        &b,
        &[
            "dataset",
            "add",
            files.to_str().expect("utf-8"),
            "--collection",
            "crab",
        ],
    );

    let vela = tmp.path().join("vela");
    std::fs::create_dir_all(&vela).expect("mkdir");
    std::fs::write(vela.join("vela.fits"), fits("Vela Pulsar")).expect("fits");
    std::fs::write(
        vela.join("vela.fits.meta.json"),
        r#"{"title": "Vela", "mission": "XMM-Newton", "format": "application/fits"}"#,
    )
    .expect("sidecar");
    orrery(
        &b,
        &[
            "dataset",
            "add",
            vela.to_str().expect("utf-8"),
            "--collection",
            "vela",
        ],
    );

    // The researcher signs in at ESAC.
    let user = add_user(&a, "Ada");
    let token = token_for(&a, &user, "read,labs");

    let a_running = Running::start(&a);
    let b_id = orrery(&b, &["id"]).trim().to_owned();
    let invite = orrery(&a, &["federation", "invite", "--node", &b_id]);
    orrery(&b, &["federation", "join", invite.trim()]);
    let b_running = Running::start(&b);

    let addr = std::fs::read_to_string(a.join("web.addr")).expect("web.addr");
    let addr = addr.trim().to_owned();
    let labs = format!("http://{addr}/api/v1/labs");

    // Until ESAC has Heidelberg's advert, nobody holds `crab`; then the lab goes there.
    let deadline = Instant::now() + Duration::from_secs(120);
    let lab = loop {
        let (status, answer) = call(
            "POST",
            &labs,
            Some(&token),
            Some(json!({ "environment": "jupyter", "datasets": ["crab"] })),
        );
        if status == 201 {
            break answer;
        }
        assert!(
            status == 404 && Instant::now() < deadline,
            "{status}: {answer}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(lab["state"], "running", "{lab}");
    assert_eq!(lab["node"], b_id[..8], "placed at the holder: {lab}");
    let id = lab["id"].as_str().expect("an id").to_owned();
    let (status, listed) = call("GET", &labs, Some(&token), None);
    assert_eq!(status, 200);
    assert!(
        listed.as_array().is_some_and(|l| l
            .iter()
            .any(|x| x["id"] == id.as_str() && x["node"] == b_id[..8])),
        "{listed}"
    );
    // Heidelberg runs it for ESAC's researcher; ESAC runs nothing.
    assert!(
        b.join("labs/workspaces").join(&id).is_dir(),
        "the workspace is at Heidelberg"
    );
    assert!(!a.join("labs/workspaces").exists(), "nothing ran at ESAC");

    // Through ESAC's proxy, over the data plane, a kernel at Heidelberg reads the FITS header.
    let port = addr.rsplit(':').next().expect("a port");
    let lab_host = format!("{id}.localhost:{port}");
    let (status, answer) = call_at(
        "GET",
        &format!("http://{addr}/labs/{id}/api/status"),
        Some(&lab_host),
        Some(&token),
        None,
    );
    assert_eq!(status, 200, "{answer}");
    let code = format!(
        "import os\n\
         from astropy.io import fits\n\
         def probe(f):\n    try:\n        f()\n        return 'open'\n    except Exception as e:\n        return type(e).__name__\n\
         (fits.getheader('/data/crab/crab.fits')['OBJECT'], os.access('/data/crab', os.W_OK), \
          probe(lambda: open({key:?}).read()))",
        key = b.join("node.key").display().to_string(),
    );
    assert_eq!(
        cell(
            &env_python(&envs),
            addr.as_str(),
            &id,
            &lab_host,
            &token,
            &code
        ),
        "('Crab Nebula', False, 'FileNotFoundError')"
    );

    // Tunnels do not leak: 200 requests through ESAC's proxy leave both nodes with as many open
    // descriptors as before (give or take a few kept connections).
    let fds = |pid: u32| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .expect("the node's descriptors")
            .count()
    };
    let (pid_a, pid_b) = (a_running.0.id(), b_running.0.id());
    let status_url = format!("http://{addr}/labs/{id}/api/status");
    let soak = || {
        for _ in 0..100 {
            let (status, _) = call_at("GET", &status_url, Some(&lab_host), Some(&token), None);
            assert_eq!(status, 200);
        }
    };
    soak();
    let before = (fds(pid_a), fds(pid_b));
    soak();
    let after = (fds(pid_a), fds(pid_b));
    assert!(
        after.0 <= before.0 + 8 && after.1 <= before.1 + 8,
        "descriptors grew with tunnels: ESAC {} -> {}, Heidelberg {} -> {}",
        before.0,
        after.0,
        before.1,
        after.1
    );

    // Another of Heidelberg's collections joins the running lab, asked for at ESAC.
    let (status, added) = call(
        "POST",
        &format!("{labs}/{id}/datasets"),
        Some(&token),
        Some(json!({ "dataset": "vela" })),
    );
    assert_eq!(status, 200, "{added}");
    assert_eq!(added["datasets"], json!(["crab", "vela"]), "{added}");

    // Logs and stop go to Heidelberg through ESAC.
    let (status, logs) = call("GET", &format!("{labs}/{id}/logs"), Some(&token), None);
    assert_eq!(status, 200, "{logs}");
    let (status, stopped) = call("DELETE", &format!("{labs}/{id}"), Some(&token), None);
    assert_eq!(status, 200, "{stopped}");
    assert_eq!(stopped["state"], "stopped", "{stopped}");
    let (status, _) = call_at(
        "GET",
        &format!("http://{addr}/labs/{id}/api/status"),
        Some(&lab_host),
        Some(&token),
        None,
    );
    assert_eq!(status, 409, "a stopped lab is not reached");

    // A collection nobody holds is refused saying so.
    let (status, refused) = call(
        "POST",
        &labs,
        Some(&token),
        Some(json!({ "datasets": ["hipparcos"] })),
    );
    assert_eq!(status, 404, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("no member of the federation holds `hipparcos`")),
        "{refused}"
    );
}
