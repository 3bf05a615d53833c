//! Labs: sandboxed Jupyter labs next to the data a node holds.
//!
//! This first layer holds the pieces a lab's lifecycle is built from, each testable alone:
//! - [`state`]: the lab state machine (pending → placed → provisioning → starting → running →
//!   stopping → stopped, or failed with a reason); progress only moves forward.
//! - [`cgroup`]: a [`cgroup::CgroupDriver`] for cgroups v1 and v2 that limits a lab's memory,
//!   processes and CPU and is the source of truth for killing everything a lab left behind.
//! - [`sandbox`]: the bubblewrap command line that confines a lab: unprivileged uid, every
//!   namespace unshared, capabilities dropped, datasets read-only under `/data/<collection>`,
//!   the workspace the only writable place.
//! - [`check`]: what `orrery lab check` reports (bubblewrap, user namespaces, cgroup version,
//!   Landlock) and the refusal a lab gets when a layer is missing.
//! - [`backend`]: the [`backend::ComputeBackend`] boundary that the local sandbox, and later a
//!   remote placement or Kubernetes backend, implement.
//! - [`env`]: lab environments, provisioned into virtual environments from pinned locks (the
//!   default `jupyter` one from `node/labs/jupyter.lock`), named by the lock's hash.
//! - [`jupyter`]: a lab's Jupyter Server on a Unix socket in its run directory, and asking it
//!   over that socket whether it is up.
//! - [`manager`]: the labs of a node: start (quotas, environment, sandbox, server), watch,
//!   stop, restart with the same workspace, logs; failures carry their reason.
//! - [`landlock`]: the second layer, inside the sandbox: the lab's first process restricts
//!   itself to the paths it was given before its program runs.
//! - [`spawner`]: the one thread labs are forked from (a sandbox dies with its parent thread).
//! - [`cull`]: when an idle lab is warned and stopped, judged by its kernels (never a busy one).
//! - [`placement`]: which member runs a lab (data first, then room), from the adverts.
//! - [`order`]: judging an author's signed lab order from another node before anything starts.
//!
//! Isolation is enforced by the operating system, never by path checks in this code.

pub mod backend;
pub mod cgroup;
pub mod check;
pub mod cull;
pub mod endpoint;
pub mod env;
pub mod jupyter;
pub mod kernel;
pub mod kubernetes;
pub mod landlock;
pub mod manager;
pub mod order;
pub mod placement;
pub mod sandbox;
pub mod spawner;
pub mod state;
