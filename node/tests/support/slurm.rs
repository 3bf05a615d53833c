//! A single-machine Slurm cluster with accounting, started for a test from Debian's packages
//! (`scripts/slurm-env`): MariaDB, slurmdbd, slurmctld and slurmd, each on a free loopback port,
//! with their state, spool and logs in a directory of the test's. Stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running cluster.
pub(crate) struct Cluster {
    /// Its `slurm.conf`: give it to the node and to Slurm's commands as `SLURM_CONF`.
    pub(crate) conf: PathBuf,
    daemons: Vec<Child>,
    dir: PathBuf,
}

/// Four distinct free ports on loopback (each held until all are found).
fn free_ports() -> (u16, u16, u16, u16) {
    let held: Vec<std::net::TcpListener> = (0..4)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    let port = |i: usize| held[i].local_addr().expect("addr").port();
    (port(0), port(1), port(2), port(3))
}

fn slurm_command(conf: &Path, command: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(command)
        .args(args)
        .env("SLURM_CONF", conf)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn sbin(name: &str) -> PathBuf {
    ["/usr/sbin", "/usr/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{name} is missing: run scripts/slurm-env as root"))
}

impl Cluster {
    /// Starts a cluster in `dir` and waits until its one node takes jobs.
    pub(crate) fn start(dir: &Path) -> Self {
        assert!(
            rustix::process::getuid().is_root(),
            "the Slurm test needs root (its daemons run as root here): run it as root"
        );
        let dir = dir.to_owned();
        for d in ["db", "state", "spool", "log"] {
            std::fs::create_dir_all(dir.join(d)).expect("mkdir");
        }
        let mut cluster = Cluster {
            conf: dir.join("slurm.conf"),
            daemons: Vec::new(),
            dir: dir.clone(),
        };
        let (db_port, dbd_port, ctld_port, d_port) = free_ports();
        let socket = dir.join("mysql.sock");
        let out = Command::new(sbin("mariadb-install-db"))
            .args([
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ])
            .arg(format!("--datadir={}", dir.join("db").display()))
            .output()
            .expect("mariadb-install-db runs");
        assert!(
            out.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.spawn(
            "mariadbd",
            &[
                "--user=root".into(),
                format!("--datadir={}", dir.join("db").display()),
                format!("--socket={}", socket.display()),
                format!("--port={db_port}"),
                "--bind-address=127.0.0.1".into(),
                format!("--pid-file={}", dir.join("mariadb.pid").display()),
                format!("--log-error={}", dir.join("log/mariadb.log").display()),
            ],
        );
        cluster.wait("MariaDB to answer", || {
            socket.exists() && {
                Command::new("mariadb")
                    .arg(format!("--socket={}", socket.display()))
                    .args(["-u", "root", "-e", "SELECT 1"])
                    .output()
                    .is_ok_and(|o| o.status.success())
            }
        });
        let sql = "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'orrery-test'; \
                   GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';";
        let out = Command::new("mariadb")
            .arg(format!("--socket={}", socket.display()))
            .args(["-u", "root", "-e", sql])
            .output()
            .expect("mariadb runs");
        assert!(
            out.status.success(),
            "mariadb: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .expect("the host's name")
            .trim()
            .to_owned();
        // The node as slurmd finds it: a node configured with more than it has is drained.
        let found = Command::new(sbin("slurmd"))
            .arg("-C")
            .output()
            .expect("slurmd -C runs");
        let found = String::from_utf8_lossy(&found.stdout).into_owned();
        let field = |name: &str| -> u64 {
            found
                .split_whitespace()
                .find_map(|w| w.strip_prefix(name)?.parse().ok())
                .unwrap_or_else(|| panic!("slurmd -C names no {name}: {found}"))
        };
        let (cpus, memory) = (field("CPUs="), field("RealMemory="));
        let d = dir.display();
        let dbd = format!(
            "AuthType=auth/none\nDbdHost=localhost\nDbdAddr=127.0.0.1\nDbdPort={dbd_port}\nSlurmUser=root\n\
             LogFile={d}/log/slurmdbd.log\nPidFile={d}/slurmdbd.pid\n\
             StorageType=accounting_storage/mysql\nStorageHost=127.0.0.1\nStoragePort={db_port}\n\
             StorageUser=slurm\nStoragePass=orrery-test\nStorageLoc=slurm_acct_db\n"
        );
        let conf = format!(
            "ClusterName=orrerytest\nSlurmctldHost={host}(127.0.0.1)\nSlurmctldPort={ctld_port}\n\
             SlurmdPort={d_port}\nSlurmUser=root\nSlurmdUser=root\nAuthType=auth/none\n\
             CredType=cred/none\nProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n\
             SelectType=select/cons_tres\nSchedulerType=sched/backfill\nMpiDefault=none\n\
             ReturnToService=2\nStateSaveLocation={d}/state\nSlurmdSpoolDir={d}/spool\n\
             SlurmctldPidFile={d}/slurmctld.pid\nSlurmdPidFile={d}/slurmd.pid\n\
             SlurmctldLogFile={d}/log/slurmctld.log\nSlurmdLogFile={d}/log/slurmd.log\n\
             AccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost=127.0.0.1\n\
             AccountingStoragePort={dbd_port}\nJobAcctGatherType=jobacct_gather/none\n\
             NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN\n\
             PartitionName=batch Nodes={host} Default=YES MaxTime=INFINITE State=UP\n"
        );
        // slurmdbd reads slurmdbd.conf beside slurm.conf, and only if no one else may read it.
        let dbd_conf = dir.join("slurmdbd.conf");
        std::fs::write(&dbd_conf, dbd).expect("slurmdbd.conf");
        rustix::fs::chmod(&dbd_conf, rustix::fs::Mode::from_raw_mode(0o600)).expect("chmod");
        std::fs::write(&cluster.conf, conf).expect("slurm.conf");

        let conf = cluster.conf.clone();
        cluster.spawn("slurmdbd", &["-D".into()]);
        cluster.wait("slurmdbd to answer", || {
            slurm_command(&conf, "sacctmgr", &["-n", "list", "cluster"]).is_some()
        });
        let added = cluster.slurm("sacctmgr", &["-i", "add", "cluster", "orrerytest"]);
        assert!(added.is_some(), "sacctmgr could not add the cluster");
        cluster.spawn("slurmctld", &["-D".into()]);
        cluster.spawn("slurmd", &["-D".into()]);
        cluster.wait("the node to take jobs", || {
            slurm_command(&conf, "sinfo", &["--noheader", "--format=%T"])
                .is_some_and(|s| s.trim() == "idle")
        });
        cluster
    }

    fn spawn(&mut self, program: &str, args: &[String]) {
        let log = std::fs::File::create(self.dir.join("log").join(format!("{program}.out")))
            .expect("log");
        let child = Command::new(sbin(program))
            .args(args)
            .env("SLURM_CONF", &self.conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{program} does not start: {e}"));
        self.daemons.push(child);
    }

    /// Waits until `ready`, or fails saying `what` with the daemons' logs.
    fn wait(&mut self, what: &str, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready() {
            for child in &mut self.daemons {
                if let Ok(Some(how)) = child.try_wait() {
                    panic!(
                        "a Slurm daemon ended ({how}) while waiting for {what}:\n{}",
                        self.logs()
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "gave up waiting for {what}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs one of Slurm's commands on this cluster; its output if it succeeded.
    pub(crate) fn slurm(&self, command: &str, args: &[&str]) -> Option<String> {
        slurm_command(&self.conf, command, args)
    }

    /// The daemons' logs, for a failure's message.
    pub(crate) fn logs(&self) -> String {
        let mut all = String::new();
        for entry in std::fs::read_dir(self.dir.join("log"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            all.push_str(&format!("== {}\n", entry.path().display()));
            for line in tail.into_iter().rev() {
                all.push_str(line);
                all.push('\n');
            }
        }
        all
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.daemons.iter_mut().rev() {
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_child(child),
                rustix::process::Signal::TERM,
            );
        }
        for child in self.daemons.iter_mut().rev() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
