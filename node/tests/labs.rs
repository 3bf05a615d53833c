//! Labs in the local sandbox, with real bubblewrap, real cgroups and real processes: a lab's
//! processes stay in its cgroup, limits hold, stopping leaves nothing, and a node that lost
//! track of a lab (a crash) reaps it from the cgroup alone.
//!
//! Needs root and bubblewrap (`scripts/lab-env` installs it; `scripts/test` runs it first).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use orrery_node::labs::backend::{ComputeBackend, LabRequest, LocalSandbox};
use orrery_node::labs::cgroup::{CgroupDriver, Limits};
use orrery_node::labs::endpoint::Endpoint;
use orrery_node::labs::sandbox::DataVolume;

const NOBODY: u32 = 65534;

/// A backend whose labs live under a cgroup prefix of their own, removed at the end.
struct Bench {
    backend: LocalSandbox,
    dir: tempfile::TempDir,
}

impl Bench {
    fn new(name: &str) -> Option<Self> {
        assert!(
            rustix::process::getuid().is_root() && Path::new("/usr/bin/bwrap").exists(),
            "the lab tests need root and /usr/bin/bwrap: run scripts/lab-env as root"
        );
        let prefix = format!("orrery-test-{}-{name}/labs", std::process::id());
        let cgroups = CgroupDriver::detect_at(Path::new("/sys/fs/cgroup"), Path::new(&prefix))
            .expect("cgroups on a root test machine");
        let dir = tempfile::tempdir().expect("tempdir");
        rustix::fs::chmod(dir.path(), rustix::fs::Mode::from_raw_mode(0o755)).expect("chmod");
        Some(Self {
            backend: LocalSandbox {
                helper: PathBuf::from(env!("CARGO_BIN_EXE_orrery")),
                bwrap: "/usr/bin/bwrap".into(),
                uid: NOBODY,
                gid: NOBODY,
                cgroups,
                confine: Some(PathBuf::from(env!("CARGO_BIN_EXE_orrery"))),
            },
            dir,
        })
    }

    fn request(&self, lab: &str, limits: Limits, script: &str) -> LabRequest {
        let root = self.dir.path().join(lab);
        for d in ["data", "ws", "run"] {
            std::fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        rustix::fs::chmod(&root, rustix::fs::Mode::from_raw_mode(0o755)).expect("chmod");
        std::fs::write(root.join("data/table.csv"), "a,b\n").expect("data");
        for d in ["ws", "run"] {
            rustix::fs::chown(
                root.join(d),
                Some(rustix::fs::Uid::from_raw(NOBODY)),
                Some(rustix::fs::Gid::from_raw(NOBODY)),
            )
            .expect("chown");
        }
        LabRequest {
            lab: lab.into(),
            limits,
            data: vec![DataVolume {
                collection: "gaia".into(),
                host: root.join("data"),
            }],
            data_root: None,
            workspace: root.join("ws"),
            workspace_read_only: false,
            workspace_image: None,
            run_dir: root.join("run"),
            read_only: Vec::new(),
            tmp_bytes: 16 << 20,
            env: Vec::new(),
            command: ["sh", "-c", script].iter().map(OsString::from).collect(),
            base_url: format!("/labs/{lab}/"),
            token: String::new(),
            log: None,
            image: None,
        }
    }

    fn wait_for_processes(&self, lab: &str, at_least: usize) {
        let start = Instant::now();
        while self.backend.processes(lab).expect("processes") < at_least {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the lab never had {at_least} processes"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = self.backend.reap_orphans();
        let cg = &self.backend.cgroups;
        for c in ["", "memory", "pids", "cpu", "freezer"] {
            let labs = cg.root().join(c).join(cg.prefix());
            let _ = std::fs::remove_dir(&labs);
            if let Some(top) = labs.parent() {
                let _ = std::fs::remove_dir(top);
            }
        }
    }
}

fn limits() -> Limits {
    Limits {
        memory_bytes: 128 << 20,
        pids: 32,
        millicores: 500,
    }
}

#[test]
fn stopping_a_lab_leaves_no_process_even_a_daemon() {
    let Some(bench) = Bench::new("stop") else {
        return;
    };
    // A daemon that left its session and parent: only the cgroup still knows it.
    let req = bench.request("lab-a", limits(), "setsid sleep 300 & sleep 300");
    let mut launched = bench.backend.launch(&req).expect("launch");
    // bwrap, its init, sh, and both sleeps.
    bench.wait_for_processes("lab-a", 4);
    bench.backend.stop("lab-a").expect("stop");
    assert_eq!(bench.backend.processes("lab-a").expect("processes"), 0);
    let status = launched.process.wait();
    assert_ne!(status, "exit status: 0", "the lab was not killed");
}

#[test]
fn a_fork_bomb_stops_at_the_pids_limit() {
    let Some(bench) = Bench::new("fork") else {
        return;
    };
    // The shell gives up at the first fork refused (dash exits on it), so the loop runs in a
    // subshell and the lab's own shell then execs without forking: the lab lives on at its limit
    // instead of ending (and with it every process of its namespace).
    let script = "(i=0; while [ $i -lt 200 ]; do sleep 60 & i=$((i+1)); done) 2>/dev/null; \
                  exec sleep 60";
    let req = bench.request("lab-f", limits(), script);
    let mut launched = bench.backend.launch(&req).expect("launch");
    bench.wait_for_processes("lab-f", 20);
    // Give the loop time to hit the wall; the count must never pass the limit.
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(500) {
        let n = bench.backend.processes("lab-f").expect("processes");
        assert!(n <= 32, "{n} processes despite pids.max 32");
        std::thread::sleep(Duration::from_millis(20));
    }
    bench.backend.stop("lab-f").expect("stop");
    let _ = launched.process.wait();
}

#[test]
fn memory_past_the_limit_is_killed_and_reported() {
    let Some(bench) = Bench::new("oom") else {
        return;
    };
    let req = bench.request(
        "lab-m",
        limits(),
        "python3 -c 'b = bytearray(400 << 20); print(len(b))'",
    );
    let mut launched = bench.backend.launch(&req).expect("launch");
    let status = launched.process.wait();
    assert!(
        status != "exit status: 0",
        "400 MiB fit in a 128 MiB lab: {status:?}"
    );
    assert!(
        bench.backend.out_of_memory("lab-m"),
        "the OOM kill is not visible"
    );
    bench.backend.stop("lab-m").expect("stop");
}

#[test]
fn a_lab_the_node_forgot_is_reaped_from_its_cgroup() {
    let Some(bench) = Bench::new("reap") else {
        return;
    };
    let req = bench.request("lab-r", limits(), "sleep 300");
    let mut launched = bench.backend.launch(&req).expect("launch");
    bench.wait_for_processes("lab-r", 3);
    // A node restarting after a crash knows nothing but the cgroups.
    let fresh = LocalSandbox {
        cgroups: CgroupDriver::detect_at(
            bench.backend.cgroups.root(),
            bench.backend.cgroups.prefix(),
        )
        .expect("detect"),
        ..bench.backend.clone()
    };
    assert_eq!(
        fresh.reap_orphans().expect("reap"),
        vec!["lab-r".to_string()]
    );
    assert_eq!(fresh.processes("lab-r").expect("processes"), 0);
    let _ = launched.process.wait();
    // And the same lab starts again.
    let mut again = fresh.launch(&req).expect("relaunch");
    bench.wait_for_processes("lab-r", 3);
    fresh.stop("lab-r").expect("stop");
    let _ = again.process.wait();
}

/// The `jupyter` environment, provisioned once per build directory (the first run downloads its
/// pinned packages from PyPI; later runs reuse it).
fn jupyter_env() -> orrery_node::labs::env::Provisioned {
    use orrery_node::labs::env::{Environment, Progress, provision};
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("lab-envs");
    let mut last = Instant::now();
    // Labs see /usr of the host and nothing else of it: the environment is built with its Python.
    provision(
        &dir,
        &Environment::jupyter(),
        Path::new("/usr/bin/python3"),
        &mut |p| {
            if let Progress::Installing(line) = &p
                && last.elapsed() > Duration::from_secs(5)
            {
                eprintln!("provisioning the jupyter environment: {line}");
                last = Instant::now();
            }
        },
    )
    .expect("the jupyter environment provisions")
}

/// A lab `lab` of `bench` running Jupyter Server on its socket (with `notes.txt` in its
/// workspace), once it answers; the launched lab and its run directory.
async fn jupyter_lab(bench: &Bench, lab: &str) -> (orrery_node::labs::backend::Launched, PathBuf) {
    use orrery_node::labs::jupyter;
    let env = tokio::task::spawn_blocking(jupyter_env)
        .await
        .expect("provisioning");
    let mut req = bench.request(
        lab,
        Limits {
            memory_bytes: 1 << 30,
            pids: 256,
            millicores: 1000,
        },
        "",
    );
    let (argv, vars) = jupyter::command(&env, &base_url(lab), TOKEN);
    req.command = argv;
    req.env = vars;
    req.read_only = vec![env.root.clone()];
    std::fs::write(req.workspace.join("notes.txt"), "kept").expect("a workspace file");
    let started = Instant::now();
    let mut launched = bench.backend.launch(&req).expect("launch");
    let endpoint = launched.endpoint.clone();
    let ready = jupyter::ready(
        &endpoint,
        &base_url(lab),
        TOKEN,
        Duration::from_secs(60),
        &mut || launched.process.try_wait().is_none(),
    )
    .await;
    assert!(
        ready.is_ok(),
        "{ready:?} (the lab exited: {:?})",
        launched.process.try_wait()
    );
    eprintln!("Jupyter Server answered after {:?}", started.elapsed());
    (launched, req.run_dir)
}

/// The token of the test labs' servers.
const TOKEN: &str = "t0ken-of-the-lab";

fn base_url(lab: &str) -> String {
    format!("/lab/{lab}/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jupyter_server_starts_in_the_sandbox_and_answers_only_on_its_socket() {
    use orrery_node::labs::jupyter;
    let Some(bench) = Bench::new("jupyter") else {
        return;
    };
    let (mut launched, run_dir) = jupyter_lab(&bench, "lab-j").await;
    let (token, base_url) = (TOKEN, base_url("lab-j"));
    let socket = jupyter::socket_in(&run_dir);
    assert_eq!(launched.endpoint, Endpoint::Unix(socket.clone()));
    let endpoint = launched.endpoint.clone();

    // Its contents are the workspace; the dataset is at /data, outside it.
    let (status, body) = jupyter::get(&endpoint, &format!("{base_url}api/contents"), token)
        .await
        .expect("contents");
    assert_eq!(status, 200);
    let listing: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let names: Vec<&str> = listing["content"]
        .as_array()
        .expect("a directory")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(names, ["notes.txt"], "{listing}");
    // Without the token it answers nothing useful.
    let (status, _) = jupyter::get(&endpoint, &format!("{base_url}api/contents"), "wrong")
        .await
        .expect("an answer");
    assert_eq!(status, 403);
    // No TCP port: the lab has no network namespace shared with the node, and the socket is
    // the lab user's alone.
    let mode = std::fs::metadata(&socket).expect("socket").permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o077,
        0,
        "the socket is open to others"
    );

    bench.backend.stop("lab-j").expect("stop");
    assert_eq!(bench.backend.processes("lab-j").expect("processes"), 0);
    let _ = launched.process.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kernel_runs_cells_keeps_its_state_streams_and_is_interrupted_and_restarted() {
    use orrery_node::labs::kernel::{Ended, Kernel, KernelError};
    use serde_json::json;
    let Some(bench) = Bench::new("kernel") else {
        return;
    };
    let (mut launched, _) = jupyter_lab(&bench, "lab-k").await;
    let kernel = Kernel::start(&launched.endpoint, &base_url("lab-k"), TOKEN)
        .await
        .expect("a kernel");
    let long = Duration::from_secs(60);
    let run = |code: &'static str| {
        let kernel = kernel.clone();
        async move { kernel.execute(code, long, &mut |_| {}).await.expect("runs") }
    };
    let error_name = |e: &Ended| match e {
        Ended::Error { ename, .. } => ename.clone(),
        other => format!("{other:?}"),
    };

    // A result, as nbformat stores it; then state kept from one cell to the next.
    let two = run("1 + 1").await;
    assert_eq!(two.ended, Ended::Ok);
    assert_eq!(two.execution_count, Some(1));
    assert_eq!(
        two.outputs,
        vec![json!({
            "output_type": "execute_result",
            "execution_count": 1,
            "data": { "text/plain": "2" },
            "metadata": {},
        })]
    );
    run("x = 21").await;
    let printed = run("print(x * 2)\nprint('done')").await;
    assert_eq!(
        printed.outputs,
        vec![json!({ "output_type": "stream", "name": "stdout", "text": "42\ndone\n" })]
    );
    // Rich output, and an exception with its traceback.
    let shown = run("from IPython.display import HTML, display\ndisplay(HTML('<b>hi</b>'))").await;
    assert_eq!(shown.outputs[0]["output_type"], "display_data");
    assert_eq!(shown.outputs[0]["data"]["text/html"], "<b>hi</b>");
    let failed = run("1 / 0").await;
    assert_eq!(error_name(&failed.ended), "ZeroDivisionError");
    assert_eq!(failed.outputs[0]["output_type"], "error");
    assert!(
        !failed.outputs[0]["traceback"]
            .as_array()
            .expect("a traceback")
            .is_empty()
    );

    // Output is handed over while the cell runs: the first line long before the end.
    let t0 = Instant::now();
    let mut first = None;
    let streamed = kernel
        .execute(
            "import time\nprint('a', flush=True)\ntime.sleep(1.5)\nprint('b')",
            long,
            &mut |_| {
                first.get_or_insert(t0.elapsed());
            },
        )
        .await
        .expect("runs");
    let (first, total) = (first.expect("an output"), t0.elapsed());
    assert_eq!(streamed.outputs[0]["text"], "a\nb\n");
    assert!(
        total - first >= Duration::from_secs(1),
        "{first:?} of {total:?}"
    );

    // Interrupted, a cell ends with KeyboardInterrupt, and the kernel runs the next one.
    let (busy, is_busy) = tokio::sync::oneshot::channel();
    let sleeper = kernel.clone();
    let sleeping = tokio::spawn(async move {
        let mut busy = Some(busy);
        sleeper
            .execute(
                "import time\nprint('sleeping', flush=True)\ntime.sleep(600)",
                long,
                &mut |_| {
                    if let Some(b) = busy.take() {
                        let _ = b.send(());
                    }
                },
            )
            .await
    });
    is_busy.await.expect("the cell started");
    let asked = Instant::now();
    kernel.interrupt().await.expect("interrupt");
    let interrupted = sleeping.await.expect("task").expect("ends");
    assert_eq!(error_name(&interrupted.ended), "KeyboardInterrupt");
    assert!(asked.elapsed() < Duration::from_secs(30));
    assert_eq!(run("x").await.outputs[0]["data"]["text/plain"], "21");
    // A cell past its deadline is given up, and interrupted.
    let over = kernel
        .execute(
            "import time\ntime.sleep(600)",
            Duration::from_secs(2),
            &mut |_| {},
        )
        .await;
    assert!(matches!(over, Err(KernelError::Timeout(_))), "{over:?}");
    assert_eq!(run("x + 1").await.outputs[0]["data"]["text/plain"], "22");

    // Restarted, its variables are gone.
    kernel.restart().await.expect("restart");
    assert_eq!(error_name(&run("x").await.ended), "NameError");
    kernel.shutdown().await.expect("shutdown");

    bench.backend.stop("lab-k").expect("stop");
    let _ = launched.process.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lab_runs_fails_with_its_reason_restarts_with_its_workspace_and_stops() {
    use orrery_node::labs::env::Environment;
    use orrery_node::labs::jupyter;
    use orrery_node::labs::manager::{LabError, LabManager, LabsConfig, Quotas};
    use orrery_node::labs::state::LabState;
    use std::sync::Arc;

    let Some(bench) = Bench::new("manager") else {
        return;
    };
    let envs = tokio::task::spawn_blocking(jupyter_env)
        .await
        .expect("provisioning")
        .root
        .parent()
        .expect("the environments' directory")
        .to_path_buf();
    let data = bench.dir.path().join("gaia");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(data.join("source.csv"), "ra,dec\n83.6,22.0\n").expect("data");
    let manager = Arc::new(LabManager::new(
        Arc::new(bench.backend.clone()),
        LabsConfig {
            dir: bench.dir.path().join("labs"),
            envs,
            python: "/usr/bin/python3".into(),
            limits: Limits {
                memory_bytes: 1 << 30,
                pids: 256,
                millicores: 1000,
            },
            tmp_bytes: 64 << 20,
            workspace_bytes: 0,
            uid: NOBODY,
            quotas: Quotas {
                labs: 4,
                labs_per_author: 1,
            },
            start_deadline: Duration::from_secs(60),
        },
        vec![Environment::jupyter()],
    ));
    let mut events = manager.subscribe();
    let lab = manager
        .create("ada", "jupyter", vec![("gaia".into(), data.clone())])
        .await
        .expect("made");
    assert_eq!(lab.state, LabState::Running, "{lab:?}");
    let mut seen: Vec<&'static str> = Vec::new();
    while let Ok(e) = events.try_recv() {
        if seen.last() != Some(&e.state.name()) {
            seen.push(e.state.name());
        }
    }
    assert_eq!(seen, ["placed", "provisioning", "starting", "running"]);

    // Its server answers on its socket with its token, and only its owner finds it.
    let (endpoint, token) = manager.upstream(&lab.id, "ada").expect("upstream");
    assert!(matches!(endpoint, Endpoint::Unix(_)), "{endpoint}");
    let (status, _) = jupyter::get(&endpoint, &format!("{}api/status", lab.base_url), &token)
        .await
        .expect("status");
    assert_eq!(status, 200);
    assert!(matches!(
        manager.get(&lab.id, Some("bob")),
        Err(LabError::NoLab(_))
    ));
    assert!(manager.upstream(&lab.id, "bob").is_err());

    // Quotas and unknown environments are refused with what to do.
    let more = manager.create("ada", "jupyter", Vec::new()).await;
    assert!(
        matches!(&more, Err(LabError::Quota(why)) if why.contains("stop one first")),
        "{more:?}"
    );
    let unknown = manager.create("bob", "rstudio", Vec::new()).await;
    assert!(
        matches!(&unknown, Err(LabError::NoEnvironment(e, offered)) if e == "rstudio" && offered == "jupyter"),
        "{unknown:?}"
    );

    // Work in the workspace; then the server dies on its own: the lab failed, and says why.
    let workspace = bench.dir.path().join("labs/workspaces").join(&lab.id);
    std::fs::write(workspace.join("analysis.py"), "print(1)").expect("work");
    bench.backend.stop(&lab.id).expect("killed from outside");
    let failed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match events.recv().await {
                Ok(e) if e.lab == lab.id && e.state.name() == "failed" => break e.state,
                Ok(_) => continue,
                Err(e) => panic!("events: {e}"),
            }
        }
    })
    .await
    .expect("the failure is reported");
    let LabState::Failed { reason } = failed else {
        panic!("not failed")
    };
    assert!(reason.contains("server ended"), "{reason}");
    assert!(manager.logs(&lab.id, Some("ada"), 50).is_ok());

    // A failed lab starts again, with its workspace.
    let again = manager
        .restart(&lab.id, "ada", vec![("gaia".into(), data)])
        .await
        .expect("restarted");
    assert_eq!(again.state, LabState::Running, "{again:?}");
    let (endpoint, token) = manager.upstream(&lab.id, "ada").expect("upstream");
    let (status, body) = jupyter::get(&endpoint, &format!("{}api/contents", lab.base_url), &token)
        .await
        .expect("contents");
    assert_eq!(status, 200);
    assert!(
        String::from_utf8_lossy(&body).contains("analysis.py"),
        "the workspace was lost"
    );

    // Stopping leaves nothing running, and the lab stays stopped (not failed).
    let stopped = manager.stop(&lab.id, Some("ada")).await.expect("stopped");
    assert_eq!(stopped.state, LabState::Stopped);
    assert_eq!(bench.backend.processes(&lab.id).expect("processes"), 0);
    // (The stop waited for the run's watcher, so a wrong verdict of it would show now.)
    assert_eq!(
        manager.get(&lab.id, None).expect("lab").state,
        LabState::Stopped,
        "the watcher of the stopped run marked it failed"
    );
}
