//! The node's configuration file (`orrery.toml`).

use std::path::Path;

use orrery_protocol::advert::ComputeOffer;
use serde::{Deserialize, Serialize};

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("{path} is not a valid configuration: {source}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's complaint.
        #[source]
        source: toml::de::Error,
    },
    /// The network section is invalid.
    #[error("invalid [network] configuration: {0}")]
    Network(String),
    /// A value is out of range.
    #[error("invalid configuration: {field} {problem}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Who this node is.
    pub node: NodeSection,
    /// How the store keeps history.
    pub store: StoreSection,
    /// How the node talks to the federation.
    pub network: orrery_federation::Config,
    /// The HTTP face: TAP, the search API and product downloads.
    pub web: WebSection,
    /// The Prometheus metrics listener.
    pub metrics: MetricsSection,
    /// How the node logs.
    pub log: LogSection,
    /// The compute environments this node offers to the federation.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub compute: Vec<ComputeOffer>,
    /// Sandboxed labs on this node.
    pub labs: LabsSection,
    /// Where pipelines (jobs) run: in labs here, or through a batch system.
    pub jobs: JobsSection,
    /// Copies this node keeps of other members' collections.
    pub preservation: PreservationSection,
    /// The data plane (iroh): where it listens.
    pub data: crate::dataplane::DataSection,
}

/// Where the metrics listener binds unless told otherwise: loopback, beside the HTTP face's
/// default port. If it is taken (a second node on the machine) a free port is used instead;
/// `metrics.addr` in the data directory always holds the address taken.
pub const DEFAULT_METRICS_LISTEN: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9480);

/// The Prometheus metrics listener: `/metrics` (OpenMetrics text) on its own address, apart
/// from the public HTTP face, so that it can stay on an internal network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    /// Whether `orrery run` serves metrics at all.
    pub enabled: bool,
    /// Where `/metrics` is served; by default [`DEFAULT_METRICS_LISTEN`]. Port 0 picks a free
    /// port. An address given here that is taken stops the node.
    pub listen: std::net::SocketAddr,
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: DEFAULT_METRICS_LISTEN,
        }
    }
}

/// How the node logs (to standard error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    /// `text` (for people) or `json` (one object a line, for log collectors).
    /// `ORRERY_LOG_FORMAT` overrides it; `ORRERY_LOG` sets the level filter.
    pub format: crate::logging::LogFormat,
}

/// Where a node serves HTTP unless told otherwise: loopback, so a node on one machine is
/// reached by its own user at a stable address (`http://127.0.0.1:7480`) and by no one else.
/// If that port is taken (a second node on the machine), the node serves on a free port
/// instead and says so; `web.addr` in the data directory always holds the address taken.
pub const DEFAULT_WEB_LISTEN: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 7480);

/// The HTTP face.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSection {
    /// Where `orrery run` listens for HTTP (TAP at `/tap`, the API at `/api`); by default
    /// [`DEFAULT_WEB_LISTEN`]. Port 0 picks a free port; the address taken is written to
    /// `web.addr` in the data directory. An address given here that is taken stops the node.
    pub listen: std::net::SocketAddr,
    /// The address clients reach this node at, if not the listening address (behind a proxy),
    /// e.g. `https://archive.example.org/orrery`.
    pub public_url: Option<String>,
    /// OpenID Connect providers users sign in with (`[[web.oidc]]`: `id`, `display_name`,
    /// `issuer`, `client_id`, `client_secret`, `orcid`). The redirect URL to register with each
    /// is `<public URL>/auth/callback/<id>`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub oidc: Vec<orrery_web::oidc::ProviderConfig>,
    /// Where to serve the same routes over HTTPS (TLS 1.3), besides `listen`; needs
    /// `tls_cert` and `tls_key`. Port 0 picks a free port, written to `https.addr`.
    pub tls_listen: Option<std::net::SocketAddr>,
    /// The certificate chain (PEM, leaf first); relative to the data directory if relative.
    pub tls_cert: Option<std::path::PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1), readable by the node's
    /// user only; relative to the data directory if relative.
    pub tls_key: Option<std::path::PathBuf>,
}

impl Default for WebSection {
    fn default() -> Self {
        Self {
            listen: DEFAULT_WEB_LISTEN,
            public_url: None,
            oidc: Vec::new(),
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// Where and with what the node serves HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The HTTPS listener's address.
    pub listen: std::net::SocketAddr,
    /// The certificate chain file.
    pub cert: std::path::PathBuf,
    /// The private key file.
    pub key: std::path::PathBuf,
}

impl WebSection {
    /// The HTTPS settings, with relative paths taken from the data directory `root`; `None`
    /// when HTTPS is not configured.
    pub fn tls(&self, root: &Path) -> Option<TlsSettings> {
        match (&self.tls_listen, &self.tls_cert, &self.tls_key) {
            (Some(listen), Some(cert), Some(key)) => Some(TlsSettings {
                listen: *listen,
                cert: root.join(cert),
                key: root.join(key),
            }),
            _ => None,
        }
    }

    /// Whether clients reach the node over HTTPS: its own TLS listener, or a `public_url`
    /// (a proxy in front) that starts with `https://`. Cookies must then be `Secure`.
    pub fn is_https(&self) -> bool {
        self.tls_listen.is_some()
            || self
                .public_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://"))
    }
}

/// Who this node is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeSection {
    /// Display name, e.g. "ESAC".
    pub name: String,
    /// The institution running the node.
    pub institution: String,
    /// A contact address for the node's operators.
    pub contact: String,
}

/// How the store keeps history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSection {
    /// Fold a project's individually stored changes into its compacted snapshot once this many
    /// have accumulated.
    pub compact_after_changes: usize,
}

impl Default for NodeSection {
    fn default() -> Self {
        Self {
            name: "orrery-node".into(),
            institution: String::new(),
            contact: String::new(),
        }
    }
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            compact_after_changes: 1000,
        }
    }
}

/// What runs a node's labs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LabBackend {
    /// bubblewrap on this machine, each lab in its own cgroup.
    #[default]
    Local,
    /// Pods of the cluster the node runs in (`[labs.kubernetes]`).
    Kubernetes,
}

/// Labs as pods of a cluster (`[labs.kubernetes]`, with `[labs] backend = "kubernetes"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesSection {
    /// The namespace labs run in (by default the node's own, from its service account or
    /// kubeconfig).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The image labs run, with `jupyter-server` on its PATH (Jupyter's docker-stacks images
    /// have it); pin it to a tag or digest: it is the environment other members are offered.
    pub image: String,
    /// Where images that projects pin (by digest) may come from, as prefixes
    /// (`quay.io/jupyter/`); empty: pinned images are refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pinned_images: Vec<String>,
    /// The user (and group) id labs run as in their pods.
    pub uid: u32,
    /// A PersistentVolumeClaim (ReadOnlyMany or ReadWriteMany) holding the node's datasets,
    /// mounted read-only in labs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_claim: Option<String>,
    /// Where that claim is mounted in the node's own container: datasets labs see are under it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_mount: Option<std::path::PathBuf>,
    /// The storage class of labs' workspace claims (by default the cluster's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// The labels of the node's own pods, as `key=value,…`: only they may reach a lab (its
    /// NetworkPolicy).
    pub node_pods: String,
    /// How long a lab's pod may take to be scheduled, pull its image and run.
    pub start_secs: u64,
}

impl KubernetesSection {
    /// The labels of [`KubernetesSection::node_pods`], if they are well formed.
    pub fn node_labels(&self) -> Option<std::collections::BTreeMap<String, String>> {
        let labels: Option<std::collections::BTreeMap<_, _>> = self
            .node_pods
            .split(',')
            .map(|pair| {
                let (k, v) = pair.split_once('=')?;
                let (k, v) = (k.trim(), v.trim());
                let fine = |s: &str, extra: &[char]| {
                    s.len() <= 253
                        && s.chars().all(|c| {
                            c.is_ascii_alphanumeric() || "-_.".contains(c) || extra.contains(&c)
                        })
                };
                (!k.is_empty() && fine(k, &['/']) && fine(v, &[]) && v.len() <= 63)
                    .then(|| (k.to_owned(), v.to_owned()))
            })
            .collect();
        labels.filter(|l| !l.is_empty())
    }
}

impl Default for KubernetesSection {
    fn default() -> Self {
        Self {
            namespace: None,
            image: String::new(),
            uid: 1000,
            data_claim: None,
            data_mount: None,
            storage_class: None,
            node_pods: "app.kubernetes.io/name=orrery".into(),
            start_secs: 300,
            pinned_images: Vec::new(),
        }
    }
}

/// Copies of other members' collections (`[preservation]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PreservationSection {
    /// Room offered for copies of other members' collections, in GiB (0: none; this node then
    /// holds no copies, but its own collections can still be preserved elsewhere).
    pub spare_gib: u64,
    /// Seconds between two looks at which copies this node should hold.
    pub check_secs: u64,
    /// Each file of a copy is read again and checked against its BLAKE3 this often (a week).
    pub audit_secs: u64,
    /// How fast audits read, in MiB per second, so that they never crowd out serving.
    pub audit_mib_per_sec: u64,
    /// How long after its advert expired a holder still counts (a day): one away longer has
    /// its copies re-homed to other nodes.
    pub away_secs: u64,
    /// Where copies are kept (by default `preserved` in the data directory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<std::path::PathBuf>,
}

impl Default for PreservationSection {
    fn default() -> Self {
        Self {
            spare_gib: 0,
            check_secs: 60,
            audit_secs: 7 * 24 * 3600,
            audit_mib_per_sec: 64,
            away_secs: 24 * 3600,
            dir: None,
        }
    }
}

impl PreservationSection {
    /// The room offered, in bytes.
    pub fn spare_bytes(&self) -> u64 {
        self.spare_gib.saturating_mul(1 << 30)
    }

    /// Where copies are kept for the node at `home`.
    pub fn dir_in(&self, home: &crate::home::Home) -> std::path::PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| home.root().join("preserved"))
    }
}

/// What runs a node's jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum JobBackend {
    /// A fresh kernel in the requester's lab on this node, one job at a time.
    #[default]
    Local,
    /// Batch jobs of the centre's Slurm cluster (`[jobs.slurm]`), each run in the labs' sandbox
    /// on the compute node Slurm picks.
    Slurm,
}

/// Where pipelines run (`[jobs]`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsSection {
    /// `local` (the default) or `slurm`.
    pub backend: JobBackend,
    /// The Slurm cluster, with `backend = "slurm"`.
    pub slurm: SlurmSection,
}

/// Jobs as Slurm batch jobs (`[jobs.slurm]`). The node submits with `sbatch`, follows with
/// `squeue` and reads how each ended with `sacct`; Slurm's own configuration (`SLURM_CONF`, or
/// its default) says which cluster. The spool directory, the lab environments (`[labs] envs`),
/// the datasets and the `orrery` binary must be at the same paths on the compute nodes (a
/// shared filesystem), and jobs must run as root there, as labs do here, to enter the sandbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlurmSection {
    /// The partition jobs go to (none: the cluster's default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// The account jobs are charged to (none: the submitting user's default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Each run's time limit, in minutes: Slurm ends a run that passes it.
    pub time_limit_mins: u64,
    /// Memory per run, in MiB.
    pub memory_mib: u64,
    /// Cores per run.
    pub cpus: u32,
    /// Runs of this node in Slurm at once (queued or running there); more wait in the node's
    /// queue.
    pub max_submitted: usize,
    /// Seconds between two looks at a submitted run's state.
    pub poll_secs: u64,
    /// Where each run's files go (its notebook, sandbox and result); by default `jobs/slurm` in
    /// the data directory. Compute nodes must see it at the same path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spool: Option<std::path::PathBuf>,
    /// The directory holding `sbatch`, `squeue`, `sacct` and `scancel` (none: looked up on PATH).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bin: Option<std::path::PathBuf>,
}

impl Default for SlurmSection {
    fn default() -> Self {
        Self {
            partition: None,
            account: None,
            time_limit_mins: 60,
            memory_mib: 2048,
            cpus: 1,
            max_submitted: 32,
            poll_secs: 5,
            spool: None,
            bin: None,
        }
    }
}

/// Sandboxed labs on this node (`[labs]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabsSection {
    /// What runs labs: `local` (bubblewrap on this machine) or `kubernetes` (pods; see
    /// `[labs.kubernetes]`).
    pub backend: LabBackend,
    /// The bubblewrap binary: a name looked up on PATH, or a path.
    pub bwrap: std::path::PathBuf,
    /// The unprivileged uid (and gid) labs run as; by default `nobody` (65534).
    pub uid: u32,
    /// The Python that builds lab environments. It must live under `/usr`, the only part of the
    /// host a lab sees (Debian's `python3` with `python3-venv`).
    pub python: std::path::PathBuf,
    /// Memory per lab, in MiB.
    pub memory_mib: u64,
    /// Processes and threads per lab at once.
    pub pids: u64,
    /// CPU per lab, in thousandths of a core.
    pub millicores: u64,
    /// Size of each lab's `/tmp`, in MiB.
    pub tmp_mib: u64,
    /// Each lab's workspace is an ext4 image of this many MiB, a hard quota (0: a plain
    /// directory, no quota); one larger than a quota lowered later starts read-only.
    pub workspace_mib: u64,
    /// Labs running at once on this node.
    pub max_labs: usize,
    /// Labs running at once per author.
    pub max_labs_per_author: usize,
    /// Sandboxed servers of each environment kept started and waiting, so that a new lab is
    /// claimed in a fraction of a second instead of started (0: every start is cold).
    pub warm: usize,
    /// A lab whose kernels have been idle this long is stopped, its workspace kept (0: never).
    /// A busy kernel is never culled.
    pub cull_idle_secs: u64,
    /// How long before an idle lab is stopped its owner is warned.
    pub cull_warning_secs: u64,
    /// Confine each lab with Landlock too, inside its sandbox (a second layer beside
    /// bubblewrap; a lab refuses to start where the kernel cannot enforce it).
    pub landlock: bool,
    /// The `orrery` binary that moves a lab into its cgroup before the sandbox starts (by
    /// default the running binary).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub helper: Option<std::path::PathBuf>,
    /// Where lab environments are provisioned (by default `labs/envs` in the data directory;
    /// nodes on one machine may share one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub envs: Option<std::path::PathBuf>,
    /// Labs as pods, with `backend = "kubernetes"`.
    pub kubernetes: KubernetesSection,
}

impl Default for LabsSection {
    fn default() -> Self {
        Self {
            bwrap: "bwrap".into(),
            uid: 65534,
            python: "/usr/bin/python3".into(),
            memory_mib: 2048,
            pids: 512,
            millicores: 1000,
            tmp_mib: 256,
            workspace_mib: 10240,
            max_labs: 8,
            max_labs_per_author: 2,
            warm: 1,
            cull_idle_secs: 3600,
            cull_warning_secs: 600,
            landlock: true,
            helper: None,
            envs: None,
            backend: LabBackend::Local,
            kubernetes: KubernetesSection::default(),
        }
    }
}

impl Config {
    /// Checks values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.node.name.trim().is_empty() || self.node.name.len() > 128 {
            return Err(ConfigError::Invalid {
                field: "node.name",
                problem: "must be 1 to 128 characters",
            });
        }
        self.network
            .validate()
            .map_err(|e| ConfigError::Network(e.to_string()))?;
        let tls = [
            self.web.tls_listen.is_some(),
            self.web.tls_cert.is_some(),
            self.web.tls_key.is_some(),
        ];
        if tls.contains(&true) && tls.contains(&false) {
            return Err(ConfigError::Invalid {
                field: "web.tls_listen, web.tls_cert, web.tls_key",
                problem: "must be given together (HTTPS needs an address, a certificate and its key)",
            });
        }
        if self.store.compact_after_changes == 0 {
            return Err(ConfigError::Invalid {
                field: "store.compact_after_changes",
                problem: "must be at least 1",
            });
        }
        if self.labs.backend == LabBackend::Kubernetes {
            let k = &self.labs.kubernetes;
            if k.image.trim().is_empty() {
                return Err(ConfigError::Invalid {
                    field: "labs.kubernetes.image",
                    problem: "must name the image labs run (one with jupyter-server on its PATH, pinned to a tag or digest)",
                });
            }
            if k.uid == 0 {
                return Err(ConfigError::Invalid {
                    field: "labs.kubernetes.uid",
                    problem: "must not be 0: labs run as an unprivileged user",
                });
            }
            if k.data_claim.is_some() != k.data_mount.is_some() {
                return Err(ConfigError::Invalid {
                    field: "labs.kubernetes.data_claim, labs.kubernetes.data_mount",
                    problem: "must be given together (the claim, and where the node mounts it)",
                });
            }
            if k.node_labels().is_none() {
                return Err(ConfigError::Invalid {
                    field: "labs.kubernetes.node_pods",
                    problem: "must be labels `key=value,…` naming the node's pods, the only ones that may reach a lab",
                });
            }
        }
        if self.preservation.check_secs == 0
            || self.preservation.audit_secs == 0
            || self.preservation.audit_mib_per_sec == 0
        {
            return Err(ConfigError::Invalid {
                field: "preservation",
                problem: "needs check_secs, audit_secs and audit_mib_per_sec of at least 1",
            });
        }
        let slurm = &self.jobs.slurm;
        if slurm.time_limit_mins == 0
            || slurm.memory_mib < 64
            || slurm.cpus == 0
            || slurm.max_submitted == 0
            || slurm.poll_secs == 0
        {
            return Err(ConfigError::Invalid {
                field: "jobs.slurm",
                problem: "needs time_limit_mins, cpus, max_submitted and poll_secs >= 1, and memory_mib >= 64",
            });
        }
        if slurm.partition.iter().chain(&slurm.account).any(|v| {
            v.is_empty()
                || !v
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        }) {
            return Err(ConfigError::Invalid {
                field: "jobs.slurm.partition, jobs.slurm.account",
                problem: "must be names of letters, digits, '-', '_' and '.'",
            });
        }
        if self.labs.uid == 0 {
            return Err(ConfigError::Invalid {
                field: "labs.uid",
                problem: "must not be 0: labs run as an unprivileged user",
            });
        }
        if self.labs.memory_mib < 64 || self.labs.pids < 16 || self.labs.millicores == 0 {
            return Err(ConfigError::Invalid {
                field: "labs",
                problem: "needs memory_mib >= 64, pids >= 16 and millicores >= 1",
            });
        }
        Ok(())
    }

    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates configuration text.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: origin.to_string(),
            source,
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The configuration as TOML with a commented header, as `orrery init` writes it.
    pub fn to_commented_toml(&self) -> String {
        let body = toml::to_string(self).unwrap_or_default();
        format!(
            "# Orrery node configuration. `deploy/orrery.example.toml` documents every field.\n\n{body}"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_config_reads_back() {
        let mut c = Config::default();
        c.node.name = "ESAC \"archive\"".into();
        let back = Config::parse(&c.to_commented_toml(), "test").expect("parses");
        assert_eq!(back, c);
    }

    #[test]
    fn the_deploy_example_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/orrery.example.toml");
        let c = Config::load(&path).expect("example loads");
        assert_eq!(c.node.name, "ESAC");
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(matches!(
            Config::parse("[store]\ncompact_after_changes = 0\n", "t"),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(
            Config::parse("[labs]\nuid = 0\n", "t"),
            Err(ConfigError::Invalid {
                field: "labs.uid",
                ..
            })
        ));
        assert!(matches!(
            Config::parse("[jobs.slurm]\ncpus = 0\n", "t"),
            Err(ConfigError::Invalid {
                field: "jobs.slurm",
                ..
            })
        ));
        assert!(matches!(
            Config::parse("[jobs.slurm]\npartition = \"a b\"\n", "t"),
            Err(ConfigError::Invalid {
                field: "jobs.slurm.partition, jobs.slurm.account",
                ..
            })
        ));
        let slurm = Config::parse("[jobs]\nbackend = \"slurm\"\n", "t").expect("parses");
        assert_eq!(slurm.jobs.backend, JobBackend::Slurm);
        assert!(matches!(
            Config::parse("[nod]\nname = \"x\"\n", "t"),
            Err(ConfigError::Parse { .. })
        ));
        assert!(matches!(
            Config::parse("[web]\ntls_cert = \"cert.pem\"\n", "t"),
            Err(ConfigError::Invalid { .. })
        ));
    }

    #[test]
    fn https_is_known_from_the_listener_or_the_public_url() {
        let mut web = WebSection::default();
        assert!(!web.is_https());
        assert_eq!(web.tls(Path::new("/data")), None);
        web.public_url = Some("https://archive.example.org/orrery".into());
        assert!(web.is_https());
        web.public_url = None;
        web.tls_listen = Some("0.0.0.0:7443".parse().expect("addr"));
        web.tls_cert = Some("tls/cert.pem".into());
        web.tls_key = Some("/etc/orrery/key.pem".into());
        assert!(web.is_https());
        let tls = web.tls(Path::new("/data")).expect("configured");
        assert_eq!(tls.cert, Path::new("/data/tls/cert.pem"));
        assert_eq!(tls.key, Path::new("/etc/orrery/key.pem"));
    }
}
