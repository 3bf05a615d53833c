//! A running `orrery` process serves only the catalogued files of its collections: a file or a
//! directory replaced by a symbolic link after ingest (to the node's key, to another directory)
//! is refused, and a file whose bytes changed on disk never reaches a client whole. The client is
//! a real HTTP client over loopback.

#[path = "support/run.rs"]
mod run;
use run::{Running, free_port, orrery, use_loopback};

use std::os::unix::fs::symlink;
use std::path::Path;

fn described(dir: &Path, name: &str, body: &str) {
    std::fs::write(dir.join(name), body).expect("file");
    std::fs::write(
        dir.join(format!("{name}.meta.json")),
        format!(r#"{{"title": "{name}", "mission": "Test", "format": "text/csv"}}"#),
    )
    .expect("sidecar");
}

/// GET `url`: the status and the body as far as it arrived, and whether it arrived whole.
fn get(url: &str) -> (u16, Vec<u8>, bool) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent.get(url).call().expect("the node answers");
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    let whole = std::io::Read::read_to_end(&mut resp.body_mut().as_reader(), &mut body).is_ok();
    (status, body, whole)
}

#[test]
fn only_catalogued_files_inside_a_collection_are_served() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("node");
    orrery(&data, &["init", "--name", "ESAC"]);
    use_loopback(&data, free_port());
    let files = tmp.path().join("files");
    std::fs::create_dir_all(files.join("sub")).expect("mkdir");
    described(&files, "a.csv", "t,flux\n0,1\n");
    described(&files.join("sub"), "b.csv", "t,flux\n1,2\n");
    described(&files, "c.csv", "t,flux\n2,3\n");
    let added = orrery(
        &data,
        &[
            "dataset",
            "add",
            files.to_str().expect("utf-8"),
            "--collection",
            "test",
        ],
    );
    assert!(added.contains('3'), "{added}");

    // A directory that holds the node's data, or lies inside it, is never a collection.
    for root in [tmp.path().to_path_buf(), data.join("blobs")] {
        std::fs::create_dir_all(&root).expect("mkdir");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_orrery"))
            .arg("--data-dir")
            .arg(&data)
            .args(["dataset", "add"])
            .arg(&root)
            .args(["--collection", "all"])
            .output()
            .expect("runs");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("data directory"), "{err}");
    }

    let _running = Running::start(&data);
    let addr = std::fs::read_to_string(data.join("web.addr")).expect("web.addr");
    let url = |p: &str| format!("http://{}/data/test/{p}", addr.trim());
    let (status, body, whole) = get(&url("a.csv"));
    assert_eq!((status, whole), (200, true));
    assert_eq!(body, b"t,flux\n0,1\n");

    let key = std::fs::read(data.join("node.key")).expect("the node's key");
    let leaks = |body: &[u8]| body.windows(key.len().min(16)).any(|w| key.starts_with(w));

    // The file replaced by a link to the node's key.
    std::fs::remove_file(files.join("a.csv")).expect("rm");
    symlink(data.join("node.key"), files.join("a.csv")).expect("link");
    let (status, body, _) = get(&url("a.csv"));
    assert_eq!(status, 410);
    assert!(!leaks(&body), "the key was served");

    // A directory on the path replaced by a link to a directory with a file of that name.
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("mkdir");
    std::fs::copy(data.join("node.key"), elsewhere.join("b.csv")).expect("cp");
    std::fs::rename(files.join("sub"), tmp.path().join("sub-moved")).expect("mv");
    symlink(&elsewhere, files.join("sub")).expect("link");
    let (status, body, _) = get(&url("sub/b.csv"));
    assert_eq!(status, 410);
    assert!(
        !leaks(&body),
        "the key was served through a linked directory"
    );

    // Paths out of the collection name no product.
    for p in [
        "../node/node.key",
        "..%2Fnode%2Fnode.key",
        "%2Fetc%2Fpasswd",
    ] {
        let (status, body, _) = get(&url(p));
        assert!(status == 404 || status == 400, "{p}: {status}");
        assert!(!leaks(&body), "{p}");
    }

    // The same size, other bytes: the download is cut before its end.
    std::fs::write(files.join("c.csv"), "t,flux\n9,9\n").expect("damage");
    // The file fits in one piece, which is held back: the connection may close before or
    // after the status line went out, but the client never gets the file whole.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    match agent.get(&url("c.csv")).call() {
        Ok(mut resp) => {
            assert_eq!(resp.status().as_u16(), 200);
            let mut body = Vec::new();
            let whole = std::io::Read::read_to_end(&mut resp.body_mut().as_reader(), &mut body);
            assert!(whole.is_err(), "the client sees an error");
            assert!(body.len() < "t,flux\n2,3\n".len(), "never the whole file");
        }
        Err(ureq::Error::Io(e)) => {
            assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}");
        }
        Err(e) => panic!("the node answered otherwise: {e}"),
    }
}
