//! The Kubernetes backend against a mock of the cluster's API (`tower-test` under the `kube`
//! client): every request it makes is checked, and answered as an API server would. Its
//! objects are validated against the Kubernetes schemas (kubernetes-validate, strict, the
//! oldest and newest versions it ships). No cluster runs here: what a real one adds (a
//! scheduler, a kubelet, a CNI enforcing the NetworkPolicy) is not tested.

#[path = "support/http.rs"]
mod http;
#[path = "support/python.rs"]
mod python;
#[path = "support/run.rs"]
mod run;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::{Method, Request, Response};
use kube::client::Body;
use orrery_node::config::Config;
use orrery_node::labs::backend::{ComputeBackend, LabRequest, Launched};
use orrery_node::labs::cgroup::Limits;
use orrery_node::labs::endpoint::Endpoint;
use orrery_node::labs::kubernetes::{Kubernetes, PodSettings, manifest};
use orrery_node::labs::sandbox::DataVolume;
use serde_json::{Value, json};
use tower_test::mock;

const NS: &str = "labs";
const WAIT: Duration = Duration::from_secs(20);

type Handle = Pin<Box<mock::Handle<Request<Body>, Response<Body>>>>;
type Reply = mock::SendResponse<Response<Body>>;

fn settings() -> PodSettings {
    PodSettings {
        node: "esac".into(),
        image: "quay.io/jupyter/scipy-notebook:2026-11-30".into(),
        uid: 1000,
        data_claim: Some("archive".into()),
        data_mount: Some("/archive".into()),
        storage_class: Some("fast".into()),
        workspace_bytes: 2 << 30,
        node_labels: BTreeMap::from([("app.kubernetes.io/name".into(), "orrery".into())]),
        pinned_images: vec!["quay.io/jupyter/".into()],
    }
}

fn request(lab: &str, data: &[(&str, &str)]) -> LabRequest {
    LabRequest {
        lab: lab.into(),
        limits: Limits {
            memory_bytes: 2 << 30,
            pids: 512,
            millicores: 1500,
        },
        data: data
            .iter()
            .map(|(c, h)| DataVolume {
                collection: (*c).into(),
                host: PathBuf::from(h),
            })
            .collect(),
        data_root: None,
        workspace: PathBuf::from("/unused"),
        workspace_read_only: false,
        workspace_image: None,
        run_dir: PathBuf::from("/unused"),
        read_only: Vec::new(),
        tmp_bytes: 256 << 20,
        env: vec![("HOME".into(), "/home/lab".into())],
        command: Vec::new(),
        base_url: format!("/labs/{lab}/"),
        token: "s3cret-token-of-the-lab".into(),
        log: None,
        image: None,
    }
}

/// A backend over a mocked API, and the mock's handle.
fn backend() -> (Arc<Kubernetes>, Handle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let k = Kubernetes::over(
        settings(),
        move || kube::Client::new(service, NS),
        Duration::from_secs(30),
        Duration::from_millis(5),
    )
    .expect("backend");
    (Arc::new(k), Box::pin(handle))
}

/// The next request, which must be `method` on `path`; its body as JSON (if any).
async fn expect(handle: &mut Handle, method: Method, path: &str) -> (Value, Reply) {
    let (request, reply) = tokio::time::timeout(WAIT, handle.as_mut().next_request())
        .await
        .unwrap_or_else(|_| panic!("no request came; expected {method} {path}"))
        .expect("the client is gone");
    assert_eq!(
        (request.method(), request.uri().path()),
        (&method, path),
        "unexpected request {}",
        request.uri()
    );
    let bytes = request.into_body().collect_bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("a JSON body")
    };
    (body, reply)
}

fn answer(reply: Reply, status: u16, body: &Value) {
    let response = Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).expect("json")))
        .expect("response");
    reply.send_response(response);
}

fn status(code: u16, reason: &str) -> Value {
    json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "message": reason, "reason": reason, "code": code })
}

fn pod(lab: &str, status: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": manifest::name(lab), "namespace": NS,
                      "labels": { "orrery.io/lab": lab, "orrery.io/node": "esac" } },
        "spec": { "containers": [{ "name": "lab", "image": "x" }] },
        "status": status,
    })
}

fn pending(lab: &str) -> Value {
    pod(
        lab,
        json!({ "phase": "Pending", "containerStatuses": [{ "name": "lab", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": { "waiting": { "reason": "ContainerCreating" } } }] }),
    )
}

fn running(lab: &str) -> Value {
    pod(
        lab,
        json!({ "phase": "Running", "podIP": "10.1.2.3", "containerStatuses": [{ "name": "lab", "image": "x", "imageID": "", "ready": true, "restartCount": 0,
            "state": { "running": { "startedAt": "2026-12-05T21:00:00Z" } } }] }),
    )
}

fn oom_killed(lab: &str) -> Value {
    pod(
        lab,
        json!({ "phase": "Failed", "containerStatuses": [{ "name": "lab", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": { "terminated": { "exitCode": 137, "reason": "OOMKilled" } } }] }),
    )
}

fn path(kind: &str, name: Option<&str>) -> String {
    let base = if kind == "networkpolicies" {
        format!("/apis/networking.k8s.io/v1/namespaces/{NS}/{kind}")
    } else {
        format!("/api/v1/namespaces/{NS}/{kind}")
    };
    name.map_or(base.clone(), |n| format!("{base}/{n}"))
}

/// Answers the requests of a stop: the pod, Secret and policy deleted (the policy already
/// gone), then the pod asked for until it is gone.
async fn answer_stop(handle: &mut Handle, lab: &str) {
    let name = manifest::name(lab);
    for kind in ["pods", "secrets", "networkpolicies"] {
        let (_, reply) = expect(handle, Method::DELETE, &path(kind, Some(&name))).await;
        if kind == "networkpolicies" {
            answer(reply, 404, &status(404, "NotFound"));
        } else {
            answer(
                reply,
                200,
                &json!({ "kind": "Status", "apiVersion": "v1", "status": "Success" }),
            );
        }
    }
    // Still terminating once, then gone.
    let (_, reply) = expect(handle, Method::GET, &path("pods", Some(&name))).await;
    answer(reply, 200, &running(lab));
    let (_, reply) = expect(handle, Method::GET, &path("pods", Some(&name))).await;
    answer(reply, 404, &status(404, "NotFound"));
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::time::timeout(WAIT, tokio::task::spawn_blocking(f))
        .await
        .expect("the backend answered in time")
        .expect("the backend did not panic")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lab_is_a_confined_pod_reached_at_its_address_and_its_end_is_seen() {
    let (k, mut handle) = backend();
    let lab = "0a1b2c3d4e5f6071";
    let r = request(
        lab,
        &[("gaia-dr3", "/archive/gaia/dr3"), ("alma", "/archive/alma")],
    );
    let launching = {
        let k = k.clone();
        tokio::task::spawn_blocking(move || k.launch(&r))
    };
    let name = manifest::name(lab);

    // The token goes into a Secret, never into the pod's description.
    let (secret, reply) = expect(&mut handle, Method::POST, &path("secrets", None)).await;
    assert_eq!(secret["stringData"]["token"], "s3cret-token-of-the-lab");
    assert_eq!(secret["metadata"]["name"], name);
    answer(reply, 201, &secret);

    // The workspace claim of an earlier run is kept (409 is fine).
    let (claim, reply) = expect(
        &mut handle,
        Method::POST,
        &path("persistentvolumeclaims", None),
    )
    .await;
    assert_eq!(
        claim["spec"]["resources"]["requests"]["storage"],
        "2147483648"
    );
    assert_eq!(claim["spec"]["storageClassName"], "fast");
    answer(reply, 409, &status(409, "AlreadyExists"));

    // Only the node's pods may reach it; it reaches nothing.
    let (policy, reply) = expect(&mut handle, Method::POST, &path("networkpolicies", None)).await;
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(policy["spec"]["egress"], json!([]));
    assert_eq!(
        policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"],
        json!({ "app.kubernetes.io/name": "orrery" })
    );
    assert_eq!(policy["spec"]["ingress"][0]["ports"][0]["port"], 8888);
    answer(reply, 201, &policy);

    let (spec, reply) = expect(&mut handle, Method::POST, &path("pods", None)).await;
    let text = spec.to_string();
    assert!(!text.contains("s3cret"), "the token is in the pod: {text}");
    let podspec = &spec["spec"];
    assert_eq!(podspec["automountServiceAccountToken"], false);
    assert_eq!(podspec["restartPolicy"], "Never");
    assert_eq!(podspec["securityContext"]["runAsNonRoot"], true);
    assert_eq!(podspec["securityContext"]["runAsUser"], 1000);
    let c = &podspec["containers"][0];
    assert_eq!(c["image"], "quay.io/jupyter/scipy-notebook:2026-11-30");
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(c["resources"]["limits"]["memory"], "2147483648");
    assert_eq!(c["resources"]["limits"]["cpu"], "1500m");
    assert_eq!(c["resources"]["requests"], c["resources"]["limits"]);
    assert!(
        c["command"]
            .as_array()
            .expect("command")
            .contains(&json!(format!("--ServerApp.base_url=/labs/{lab}/")))
    );
    assert_eq!(
        c["env"]
            .as_array()
            .expect("env")
            .iter()
            .find(|e| e["name"] == "JUPYTER_TOKEN")
            .expect("token variable")["valueFrom"]["secretKeyRef"],
        json!({ "name": name, "key": "token" })
    );
    let mounts = c["volumeMounts"].as_array().expect("mounts");
    let data: Vec<_> = mounts
        .iter()
        .filter(|m| m["name"] == "data")
        .map(|m| {
            (
                m["mountPath"].clone(),
                m["subPath"].clone(),
                m["readOnly"].clone(),
            )
        })
        .collect();
    assert_eq!(
        data,
        vec![
            (json!("/data/gaia-dr3"), json!("gaia/dr3"), json!(true)),
            (json!("/data/alma"), json!("alma"), json!(true)),
        ]
    );
    let volumes = podspec["volumes"].as_array().expect("volumes");
    let archive = volumes
        .iter()
        .find(|v| v["name"] == "data")
        .expect("data volume");
    assert_eq!(
        archive["persistentVolumeClaim"],
        json!({ "claimName": "archive", "readOnly": true })
    );
    answer(reply, 201, &spec);

    // Scheduled, then running with an address.
    let (_, reply) = expect(&mut handle, Method::GET, &path("pods", Some(&name))).await;
    answer(reply, 200, &pending(lab));
    let (_, reply) = expect(&mut handle, Method::GET, &path("pods", Some(&name))).await;
    answer(reply, 200, &running(lab));
    let Launched {
        mut process,
        endpoint,
    } = tokio::time::timeout(WAIT, launching)
        .await
        .expect("launched in time")
        .expect("no panic")
        .expect("launched");
    assert_eq!(
        endpoint,
        Endpoint::Tcp(SocketAddr::from(([10, 1, 2, 3], 8888)))
    );
    assert_eq!(process.try_wait(), None);

    // Its watcher asks; the pod runs, then is killed for its memory.
    let (_, reply) = expect(&mut handle, Method::GET, &path("pods", Some(&name))).await;
    answer(reply, 200, &running(lab));
    let (_, reply) = expect(&mut handle, Method::GET, &path("pods", Some(&name))).await;
    answer(reply, 200, &oom_killed(lab));
    let how = blocking(move || process.wait()).await;
    assert!(how.contains("OOMKilled") && how.contains("137"), "{how}");

    let asking = {
        let k = k.clone();
        tokio::task::spawn_blocking(move || k.out_of_memory(lab))
    };
    let (_, reply) = expect(&mut handle, Method::GET, &path("pods", Some(&name))).await;
    answer(reply, 200, &oom_killed(lab));
    assert!(asking.await.expect("no panic"), "the OOM kill was not seen");

    // A stop deletes the pod, Secret and policy and returns once the pod is gone; the
    // workspace claim stays.
    let stopping = {
        let k = k.clone();
        tokio::task::spawn_blocking(move || k.stop(lab))
    };
    answer_stop(&mut handle, lab).await;
    stopping.await.expect("no panic").expect("stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_that_cannot_be_pulled_fails_the_start_at_once_and_leaves_nothing_running() {
    let (k, mut handle) = backend();
    let lab = "badimage0000";
    let r = request(lab, &[]);
    let launching = {
        let k = k.clone();
        tokio::task::spawn_blocking(move || k.launch(&r))
    };
    let name = manifest::name(lab);
    for kind in [
        "secrets",
        "persistentvolumeclaims",
        "networkpolicies",
        "pods",
    ] {
        let (body, reply) = expect(&mut handle, Method::POST, &path(kind, None)).await;
        if kind == "pods" {
            // No dataset: no data volume.
            assert!(
                !body.to_string().contains("\"archive\""),
                "a lab without datasets mounts the archive: {body}"
            );
        }
        answer(reply, 201, &body);
    }
    let (_, reply) = expect(&mut handle, Method::GET, &path("pods", Some(&name))).await;
    answer(
        reply,
        200,
        &pod(
            lab,
            json!({ "phase": "Pending", "containerStatuses": [{ "name": "lab", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": { "waiting": { "reason": "ImagePullBackOff", "message": "Back-off pulling image \"x\"" } } }] }),
        ),
    );
    answer_stop(&mut handle, lab).await;
    let refused = match tokio::time::timeout(WAIT, launching).await {
        Ok(Ok(Err(e))) => e.to_string(),
        Ok(Ok(Ok(_))) => panic!("a pod that cannot pull its image was launched"),
        other => panic!("the launch did not end: {:?}", other.map(|r| r.is_ok())),
    };
    assert!(
        refused.contains("ImagePullBackOff")
            && refused.contains("quay.io/jupyter/scipy-notebook:2026-11-30"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataset_outside_the_claim_is_refused_before_anything_is_made() {
    let (k, _handle) = backend();
    let r = request("outside0000", &[("secret", "/etc")]);
    // Any request would wait for an answer that never comes, and the launch would not end.
    let refused = blocking(move || k.launch(&r)).await;
    let Err(e) = refused else {
        panic!("a dataset outside the claim was launched")
    };
    assert!(e.to_string().contains("outside /archive"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_left_by_an_earlier_run_are_reaped() {
    let (k, mut handle) = backend();
    let reaping = {
        let k = k.clone();
        tokio::task::spawn_blocking(move || k.reap_orphans())
    };
    let (request, reply) = tokio::time::timeout(WAIT, handle.as_mut().next_request())
        .await
        .expect("a request")
        .expect("client");
    assert_eq!(request.uri().path(), path("pods", None));
    let query = request.uri().query().unwrap_or_default().to_owned();
    assert!(
        query.contains(
            "labelSelector=app.kubernetes.io%2Fmanaged-by%3Dorrery%2Correry.io%2Fnode%3Desac"
        ),
        "{query}"
    );
    answer(
        reply,
        200,
        &json!({ "apiVersion": "v1", "kind": "PodList", "metadata": {},
                 "items": [running("left1"), running("left2")] }),
    );
    answer_stop(&mut handle, "left1").await;
    answer_stop(&mut handle, "left2").await;
    let reaped = tokio::time::timeout(WAIT, reaping)
        .await
        .expect("in time")
        .expect("no panic")
        .expect("reaped");
    assert_eq!(reaped, vec!["left1".to_owned(), "left2".to_owned()]);
}

#[test]
fn a_lab_s_objects_are_valid_kubernetes_objects() {
    let s = settings();
    let r = request("0a1b2c3d4e5f6071", &[("gaia-dr3", "/archive/gaia/dr3")]);
    let dir = tempfile::tempdir().expect("tempdir");
    let objects: Vec<(&str, Value)> = vec![
        (
            "pod",
            serde_json::to_value(manifest::pod(&s, &r).expect("pod")).expect("json"),
        ),
        (
            "secret",
            serde_json::to_value(manifest::secret(&s, &r.lab, &r.token).expect("secret"))
                .expect("json"),
        ),
        (
            "claim",
            serde_json::to_value(manifest::claim(&s, &r.lab).expect("claim")).expect("json"),
        ),
        (
            "policy",
            serde_json::to_value(manifest::policy(&s, &r.lab).expect("policy")).expect("json"),
        ),
    ];
    for (name, value) in &objects {
        std::fs::write(dir.path().join(format!("{name}.json")), value.to_string()).expect("write");
    }
    let check = r#"
import json, sys
from pathlib import Path
import kubernetes_validate
d = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
vs = sorted(tuple(int(x) for x in p.name[1:].split("-")[0].split(".")) for p in d.iterdir() if p.name.endswith("-local-strict"))
versions = [".".join(map(str, vs[0])), ".".join(map(str, vs[-1]))]
bad = 0
for f in sorted(Path(sys.argv[1]).glob("*.json")):
    doc = json.loads(f.read_text())
    for v in versions:
        try:
            kubernetes_validate.validate(doc, v, strict=True)
            print(f"{f.stem} {doc['kind']} valid for {v}")
        except Exception as e:
            bad += 1
            print(f"{f.stem} {doc['kind']} INVALID for {v}: {str(e).splitlines()[0]}")
sys.exit(1 if bad else 0)
"#;
    let out = std::process::Command::new(python::python())
        .args(["-c", check])
        .arg(dir.path())
        .output()
        .expect("python runs");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Four objects, two versions each.
    assert_eq!(said.matches(" valid for ").count(), 8, "{said}");
}

#[test]
fn the_kubernetes_backend_is_configured_with_an_image_and_the_node_s_pods() {
    let base = "[node]\nname = \"esac\"\n[labs]\nbackend = \"kubernetes\"\n";
    let missing = Config::parse(base, "test").expect_err("no image");
    assert!(
        missing.to_string().contains("labs.kubernetes.image"),
        "{missing}"
    );
    let half = format!(
        "{base}[labs.kubernetes]\nimage = \"quay.io/jupyter/scipy-notebook:2026-11-30\"\ndata_claim = \"archive\"\n"
    );
    let e = Config::parse(&half, "test").expect_err("claim without mount");
    assert!(e.to_string().contains("data_mount"), "{e}");
    let bad = format!(
        "{base}[labs.kubernetes]\nimage = \"quay.io/jupyter/scipy-notebook:2026-11-30\"\nnode_pods = \"app\"\n"
    );
    let e = Config::parse(&bad, "test").expect_err("labels without values");
    assert!(e.to_string().contains("node_pods"), "{e}");
    let good = format!(
        "{base}[labs.kubernetes]\nimage = \"quay.io/jupyter/scipy-notebook:2026-11-30\"\ndata_claim = \"archive\"\ndata_mount = \"/archive\"\nnode_pods = \"app.kubernetes.io/name=orrery, app.kubernetes.io/instance=esac\"\n"
    );
    let config = Config::parse(&good, "test").expect("valid");
    assert_eq!(
        config.labs.kubernetes.node_labels().expect("labels"),
        BTreeMap::from([
            ("app.kubernetes.io/instance".to_owned(), "esac".to_owned()),
            ("app.kubernetes.io/name".to_owned(), "orrery".to_owned()),
        ])
    );
}

/// A small stand-in for the API server's object store: objects are made, read and deleted;
/// the test sets the pod's status.
#[derive(Default)]
struct Objects {
    pod: Option<Value>,
    status: Value,
    token: Option<String>,
    command: Vec<String>,
}

/// Answers every request from `objects`, until the client goes.
async fn serve(
    mut handle: Handle,
    objects: Arc<std::sync::Mutex<Objects>>,
    asked: Arc<tokio::sync::Notify>,
) {
    while let Some((request, reply)) = handle.as_mut().next_request().await {
        let (method, path) = (request.method().clone(), request.uri().path().to_owned());
        let bytes = request.into_body().collect_bytes().await.expect("body");
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let mut o = objects.lock().expect("objects");
        if path.ends_with("/log") {
            let response = Response::builder()
                .status(200)
                .body(Body::from(
                    b"[I 21:00:00 ServerApp] the lab's server log\n".to_vec(),
                ))
                .expect("response");
            reply.send_response(response);
            continue;
        }
        let is_pod = path.contains("/pods");
        match method {
            Method::POST => {
                if is_pod {
                    o.command = body["spec"]["containers"][0]["command"]
                        .as_array()
                        .expect("command")
                        .iter()
                        .map(|a| a.as_str().expect("arg").to_owned())
                        .collect();
                    o.pod = Some(body.clone());
                } else if path.ends_with("/secrets") {
                    o.token = body["stringData"]["token"].as_str().map(str::to_owned);
                }
                answer(reply, 201, &body);
            }
            Method::GET if is_pod => match &o.pod {
                Some(p) => {
                    let mut p = p.clone();
                    p["status"] = o.status.clone();
                    answer(reply, 200, &p);
                }
                None => answer(reply, 404, &status(404, "NotFound")),
            },
            Method::DELETE => {
                if is_pod {
                    o.pod = None;
                }
                answer(
                    reply,
                    200,
                    &json!({ "kind": "Status", "apiVersion": "v1", "status": "Success" }),
                );
            }
            _ => answer(reply, 405, &status(405, "MethodNotAllowed")),
        }
        asked.notify_one();
    }
}

/// A loopback address of its own (127.0.0.0/8 is all loopback), so that the pod's fixed port
/// is free whatever else runs.
fn loopback_of_its_own() -> std::net::Ipv4Addr {
    let mut b = [0u8; 3];
    getrandom::fill(&mut b).expect("random");
    std::net::Ipv4Addr::new(127, b[0].max(1), b[1], b[2].clamp(2, 254))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lab_manager_runs_a_lab_as_a_pod_and_reports_its_memory_kill() {
    use orrery_node::labs::env::{Environment, provision};
    use orrery_node::labs::manager::{LabManager, LabsConfig, Quotas};
    use orrery_node::labs::state::LabState;

    // The real Jupyter Server stands in for the image's, at the pod's address.
    let envs = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("lab-envs");
    let provisioned = tokio::task::spawn_blocking({
        let envs = envs.clone();
        move || {
            provision(
                &envs,
                &Environment::jupyter(),
                std::path::Path::new("/usr/bin/python3"),
                &mut |_| {},
            )
        }
    })
    .await
    .expect("no panic")
    .expect("the jupyter environment");

    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let backend = Kubernetes::over(
        settings(),
        move || kube::Client::new(service, NS),
        Duration::from_secs(30),
        Duration::from_millis(20),
    )
    .expect("backend");
    let objects = Arc::new(std::sync::Mutex::new(Objects {
        status: json!({ "phase": "Pending" }),
        ..Objects::default()
    }));
    let asked = Arc::new(tokio::sync::Notify::new());
    let api = tokio::spawn(serve(Box::pin(handle), objects.clone(), asked.clone()));
    let dir = tempfile::tempdir().expect("tempdir");
    let manager = Arc::new(LabManager::new(
        Arc::new(backend),
        LabsConfig {
            dir: dir.path().join("labs"),
            envs: envs.clone(),
            python: "/usr/bin/python3".into(),
            limits: Limits {
                memory_bytes: 1 << 30,
                pids: 256,
                millicores: 1000,
            },
            tmp_bytes: 64 << 20,
            workspace_bytes: 1 << 30,
            uid: 65534,
            quotas: Quotas {
                labs: 4,
                labs_per_author: 2,
            },
            start_deadline: Duration::from_secs(60),
        },
        vec![Environment::jupyter()],
    ));
    let mut events = manager.subscribe();
    let creating = {
        let manager = manager.clone();
        tokio::spawn(async move {
            manager
                .create(
                    "alice",
                    "jupyter",
                    vec![("gaia-dr3".into(), "/archive/gaia/dr3".into())],
                )
                .await
        })
    };

    // Once the pod is made, its server starts as the image would run it, at its address.
    let ip = loopback_of_its_own();
    let deadline = tokio::time::Instant::now() + WAIT;
    let (command, token) = loop {
        let made = {
            let o = objects.lock().expect("objects");
            (o.pod.is_some() && o.token.is_some()).then(|| (o.command.clone(), o.token.clone()))
        };
        if let Some((command, Some(token))) = made {
            break (command, token);
        }
        assert!(
            tokio::time::timeout_at(deadline, asked.notified())
                .await
                .is_ok(),
            "no pod was made"
        );
    };
    assert_eq!(command[0], "jupyter-server");
    let root = tempfile::tempdir().expect("root");
    let mut server = std::process::Command::new(provisioned.root.join("bin/jupyter-server"))
        // The pod's address and root are this machine's here.
        .args(command[1..].iter().filter(|a| {
            !a.starts_with("--ServerApp.ip=") && !a.starts_with("--ServerApp.root_dir=")
        }))
        .arg(format!("--ServerApp.ip={ip}"))
        .arg(format!("--ServerApp.root_dir={}", root.path().display()))
        .arg("--allow-root")
        .env("JUPYTER_TOKEN", &token)
        .env("HOME", root.path())
        .env("JUPYTER_RUNTIME_DIR", root.path().join("runtime"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(root.path().join("server.log")).expect("log"))
        .spawn()
        .expect("jupyter-server starts");
    objects.lock().expect("objects").status = running("x")["status"].clone();
    objects.lock().expect("objects").status["podIP"] = json!(ip.to_string());

    let lab = tokio::time::timeout(Duration::from_secs(90), creating)
        .await
        .expect("started in time")
        .expect("no panic")
        .expect("created");
    assert_eq!(
        lab.state,
        LabState::Running,
        "{lab:?}\nthe server said: {}",
        std::fs::read_to_string(root.path().join("server.log")).unwrap_or_default()
    );
    let (endpoint, upstream_token) = manager.upstream(&lab.id, "alice").expect("upstream");
    assert_eq!(endpoint, Endpoint::Tcp(SocketAddr::from((ip, 8888))));
    let (code, _) = orrery_node::labs::jupyter::get(
        &endpoint,
        &format!("/labs/{}/api/kernels", lab.id),
        &upstream_token,
    )
    .await
    .expect("the server answers at the pod's address");
    assert_eq!(code, 200);
    let logs = {
        let manager = manager.clone();
        let id = lab.id.clone();
        tokio::task::spawn_blocking(move || manager.logs(&id, Some("alice"), 20))
            .await
            .expect("no panic")
            .expect("logs")
    };
    assert!(logs.contains("the lab's server log"), "{logs}");

    // The pod is killed for its memory: the lab fails, saying so, and its pod is deleted.
    objects.lock().expect("objects").status = oom_killed("x")["status"].clone();
    let failed = tokio::time::timeout(WAIT, async {
        loop {
            let e = events.recv().await.expect("events");
            if e.lab == lab.id
                && let LabState::Failed { reason } = e.state
            {
                return reason;
            }
        }
    })
    .await
    .expect("the lab failed in time");
    assert!(failed.contains("ran out of memory"), "{failed}");
    assert!(
        objects.lock().expect("objects").pod.is_none(),
        "its pod was left"
    );
    let _ = server.kill();
    let _ = server.wait();
    drop(manager);
    api.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_lists_the_labs_in_the_namespace() {
    let (k, mut handle) = backend();
    let probing = {
        let k = k.clone();
        tokio::task::spawn_blocking(move || k.probe())
    };
    let (request, reply) = tokio::time::timeout(WAIT, handle.as_mut().next_request())
        .await
        .expect("a request")
        .expect("client");
    assert_eq!(request.method(), Method::GET);
    assert_eq!(request.uri().path(), path("pods", None));
    answer(
        reply,
        200,
        &json!({ "apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [running("a")] }),
    );
    let (running, namespace) = probing.await.expect("no panic").expect("probe");
    assert_eq!((running, namespace.as_str()), (1, NS));
}

#[test]
fn lab_check_without_a_cluster_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("node");
    std::fs::create_dir_all(&data).expect("dir");
    std::fs::write(
        data.join("orrery.toml"),
        "[node]\nname = \"esac\"\n[labs]\nbackend = \"kubernetes\"\n[labs.kubernetes]\nimage = \"quay.io/jupyter/scipy-notebook:2026-11-30\"\n",
    )
    .expect("config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_orrery"))
        .args(["--data-dir"])
        .arg(&data)
        .args(["lab", "check"])
        .env("HOME", dir.path())
        .env("KUBECONFIG", dir.path().join("no-such-kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .output()
        .expect("orrery runs");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "lab check passed without a cluster");
    assert!(
        said.contains("labs cannot run in the cluster"),
        "{said}{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_node_whose_cluster_does_not_answer_refuses_labs_and_says_why() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("node");
    run::orrery(&data, &["init", "--name", "ESAC"]);
    run::use_loopback(&data, run::free_port());
    let config = data.join("orrery.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text
        .replace(
            "[labs]\nbackend = \"local\"",
            "[labs]\nbackend = \"kubernetes\"",
        )
        .replace(
            "image = \"\"",
            "image = \"quay.io/jupyter/scipy-notebook:2026-11-30\"",
        )
        .replace("listen = \"127.0.0.1:7480\"", "listen = \"127.0.0.1:0\"")
        .replace("listen = \"127.0.0.1:9480\"", "listen = \"127.0.0.1:0\"");
    assert!(text.contains("scipy-notebook") && text.contains("backend = \"kubernetes\""));
    std::fs::write(&config, text).expect("config");
    let user = run::add_user(&data, "Ada");
    let token = run::token_for(&data, &user, "read,labs");
    // No cluster: no kubeconfig, and not in a pod.
    let nothing = tmp.path().join("no-kubeconfig");
    let _node = run::Running::start_with(&data, &[("KUBECONFIG", &nothing), ("HOME", tmp.path())]);
    let addr = std::fs::read_to_string(data.join("web.addr")).expect("web.addr");
    let (status, refused) = http::call(
        "POST",
        &format!("http://{}/api/v1/labs", addr.trim()),
        Some(&token),
        Some(json!({ "environment": "jupyter", "datasets": [] })),
    );
    assert_eq!(status, 503, "{refused}");
    let said = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(said.contains("no cluster to run labs in"), "{refused}");
    let log = std::fs::read_to_string(data.join("run.log")).unwrap_or_default();
    assert!(
        log.contains("labs cannot run on this node"),
        "the node said nothing in its log: {log}"
    );
}

/// A project's pinned image (by digest) is the pod's image; without one, the node's.
#[test]
fn a_pinned_image_is_the_pod_s_image() {
    let s = settings();
    let mut r = request("0a1b2c3d4e5f6072", &[]);
    let image_of = |r: &LabRequest| {
        serde_json::to_value(manifest::pod(&s, r).expect("pod")).expect("json")["spec"]
            ["containers"][0]["image"]
            .clone()
    };
    assert_eq!(image_of(&r), "quay.io/jupyter/scipy-notebook:2026-11-30");
    let pinned = format!("quay.io/jupyter/scipy-notebook@sha256:{}", "7e".repeat(32));
    r.image = Some(pinned.clone());
    assert_eq!(image_of(&r), pinned.as_str());
    // From a registry the operator does not allow: refused, saying where to allow it.
    r.image = Some(format!("10.0.0.5:5000/private@sha256:{}", "7e".repeat(32)));
    let refused = manifest::pod(&s, &r).expect_err("refused");
    assert!(refused.to_string().contains("pinned_images"), "{refused}");
}
