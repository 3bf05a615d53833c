//! Labs as pods, for a centre that runs a cluster: the node (itself a pod there) makes each
//! lab's pod, Secret, workspace claim and NetworkPolicy through the cluster's API with the
//! `kube` crate, reaches the lab's server at the pod's address, and watches the pod.
//!
//! The [`ComputeBackend`] trait is synchronous (the lab manager calls it from blocking
//! threads); the API is asynchronous. The backend runs its client on a small runtime of its
//! own and waits for each call on a scoped thread, so it never blocks the node's runtime on
//! itself and works from any thread.

pub mod manifest;
pub mod status;

use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::warn;

use super::backend::{BackendError, ComputeBackend, LabProcess, LabRequest, Launched};
use super::endpoint::Endpoint;
use super::jupyter::POD_PORT;
use super::sandbox::DataVolume;
pub use manifest::PodSettings;

/// How long a stopped lab's pod may take to go.
const STOP_DEADLINE: Duration = Duration::from_secs(60);

/// Labs as pods of a cluster.
pub struct Kubernetes {
    settings: PodSettings,
    namespace: String,
    pods: Api<Pod>,
    secrets: Api<Secret>,
    claims: Api<PersistentVolumeClaim>,
    policies: Api<NetworkPolicy>,
    /// The runtime the client runs on (taken when the backend goes).
    runtime: Option<tokio::runtime::Runtime>,
    /// How long a pod may take to be scheduled, pull its image and run.
    start_deadline: Duration,
    /// How often a pod is asked about.
    poll: Duration,
}

fn cluster(e: impl std::fmt::Display) -> BackendError {
    BackendError::Cluster(format!("the cluster's API: {e}"))
}

fn not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_not_found())
}

fn exists(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

impl Kubernetes {
    /// A backend talking to the cluster the node finds itself in (its service account), or
    /// the one its kubeconfig names; labs go into `namespace` (`None`: the client's own).
    pub fn connect(
        settings: PodSettings,
        namespace: Option<String>,
        start_deadline: Duration,
    ) -> Result<Self, BackendError> {
        let runtime = Self::runtime()?;
        let client = on(&runtime, kube::Client::try_default())?
            .map_err(|e| BackendError::Cluster(format!("no cluster to run labs in: {e}")))?;
        Ok(Self::with(
            settings,
            client,
            namespace,
            runtime,
            start_deadline,
        ))
    }

    /// The backend a node's `[labs]` section describes, for the node `node` (its short id).
    pub fn from_config(
        config: &crate::config::LabsSection,
        node: &str,
    ) -> Result<Self, BackendError> {
        let k = &config.kubernetes;
        let settings = PodSettings {
            // A label value: at most 63 characters.
            node: node.chars().take(63).collect(),
            image: k.image.clone(),
            uid: k.uid,
            data_claim: k.data_claim.clone(),
            data_mount: k.data_mount.clone(),
            storage_class: k.storage_class.clone(),
            workspace_bytes: config.workspace_mib << 20,
            node_labels: k.node_labels().ok_or_else(|| {
                BackendError::Cluster("[labs.kubernetes] node_pods is not `key=value,…`".into())
            })?,
            pinned_images: k.pinned_images.clone(),
        };
        Self::connect(
            settings,
            k.namespace.clone(),
            Duration::from_secs(k.start_secs),
        )
    }

    /// Whether the cluster's API answers and lets the node see labs: how many labs of any
    /// node run in the namespace, and the namespace.
    pub fn probe(&self) -> Result<(usize, String), BackendError> {
        let pods = self
            .call(
                self.pods
                    .list(&ListParams::default().labels("app.kubernetes.io/managed-by=orrery")),
            )?
            .map_err(cluster)?;
        Ok((pods.items.len(), self.namespace.clone()))
    }

    /// A backend over the client `make` makes (over a test's mock of the API), asking about
    /// pods every `poll`.
    pub fn over(
        settings: PodSettings,
        make: impl FnOnce() -> kube::Client + Send,
        start_deadline: Duration,
        poll: Duration,
    ) -> Result<Self, BackendError> {
        let runtime = Self::runtime()?;
        // The client's buffer task belongs on the backend's runtime.
        let client = on(&runtime, async { make() })?;
        let mut me = Self::with(settings, client, None, runtime, start_deadline);
        me.poll = poll;
        Ok(me)
    }

    fn runtime() -> Result<tokio::runtime::Runtime, BackendError> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("orrery-kube")
            .enable_all()
            .build()
            .map_err(|e| BackendError::Cluster(format!("no runtime for the cluster's client: {e}")))
    }

    fn with(
        settings: PodSettings,
        client: kube::Client,
        namespace: Option<String>,
        runtime: tokio::runtime::Runtime,
        start_deadline: Duration,
    ) -> Self {
        let ns = namespace.unwrap_or_else(|| client.default_namespace().to_owned());
        Self {
            settings,
            namespace: ns.clone(),
            pods: Api::namespaced(client.clone(), &ns),
            secrets: Api::namespaced(client.clone(), &ns),
            claims: Api::namespaced(client.clone(), &ns),
            policies: Api::namespaced(client, &ns),
            runtime: Some(runtime),
            start_deadline,
            poll: Duration::from_millis(500),
        }
    }

    /// Runs `f` on the backend's runtime and waits for it, from any thread.
    fn call<T: Send>(
        &self,
        f: impl std::future::Future<Output = T> + Send,
    ) -> Result<T, BackendError> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| BackendError::Cluster("the cluster's client is closed".into()))?;
        on(runtime, f)
    }

    /// Makes `object`, or replaces the one of that name (a Secret or policy from an earlier run).
    async fn put<K>(api: &Api<K>, name: &str, object: &K, replace: bool) -> Result<(), BackendError>
    where
        K: kube::Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
    {
        match api.create(&PostParams::default(), object).await {
            Ok(_) => Ok(()),
            Err(e) if exists(&e) && replace => api
                .replace(name, &PostParams::default(), object)
                .await
                .map(|_| ())
                .map_err(cluster),
            Err(e) if exists(&e) => Ok(()),
            Err(e) => Err(cluster(e)),
        }
    }

    async fn delete<K>(api: &Api<K>, name: &str) -> Result<(), BackendError>
    where
        K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
    {
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(cluster(e)),
        }
    }

    async fn launch_async(&self, r: &LabRequest) -> Result<Launched, BackendError> {
        let s = &self.settings;
        let name = manifest::name(&r.lab);
        let pod = manifest::pod(s, r)?;
        Self::put(
            &self.secrets,
            &name,
            &manifest::secret(s, &r.lab, &r.token)?,
            true,
        )
        .await?;
        let claim = manifest::claim(s, &r.lab)?;
        Self::put(
            &self.claims,
            &manifest::workspace_claim(&r.lab),
            &claim,
            false,
        )
        .await?;
        Self::put(&self.policies, &name, &manifest::policy(s, &r.lab)?, true).await?;
        match self.pods.create(&PostParams::default(), &pod).await {
            Ok(_) => {}
            Err(e) if exists(&e) => {
                return Err(BackendError::Cluster(format!(
                    "the pod {name} of an earlier run is still there (it may be terminating); start the lab again in a minute"
                )));
            }
            Err(e) => return Err(cluster(e)),
        }
        let address = match self.address(&name).await {
            Ok(a) => a,
            Err(e) => {
                // Nothing of a failed start is left running.
                let _ = self.stop_async(&r.lab).await;
                return Err(e);
            }
        };
        Ok(Launched {
            process: Box::new(PodProcess::watch(
                self.runtime.as_ref(),
                self.pods.clone(),
                name,
                self.poll,
            )?),
            endpoint: Endpoint::Tcp(SocketAddr::new(address, POD_PORT)),
        })
    }

    /// Waits until the pod runs and has an address; fails at once when waiting cannot help.
    async fn address(&self, name: &str) -> Result<std::net::IpAddr, BackendError> {
        let started = Instant::now();
        loop {
            let pod = self
                .pods
                .get_opt(name)
                .await
                .map_err(cluster)?
                .ok_or_else(|| {
                    BackendError::Cluster(format!("its pod {name} was deleted while it started"))
                })?;
            if let Some(address) = status::address(&pod) {
                return Ok(address);
            }
            if let Some(how) = status::ended(&pod) {
                return Err(BackendError::Cluster(format!("{how} before it ran")));
            }
            if let Some(why) = status::hopeless(&pod) {
                return Err(BackendError::Cluster(format!(
                    "its pod cannot run the image {} ({why}); the node's operator should check [labs.kubernetes] image",
                    self.settings.image
                )));
            }
            if started.elapsed() > self.start_deadline {
                return Err(BackendError::Cluster(format!(
                    "its pod was not running within {} s ({}); the cluster may be full: try again later",
                    self.start_deadline.as_secs(),
                    status::pending(&pod)
                )));
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    async fn stop_async(&self, lab: &str) -> Result<(), BackendError> {
        let name = manifest::name(lab);
        Self::delete(&self.pods, &name).await?;
        Self::delete(&self.secrets, &name).await?;
        Self::delete(&self.policies, &name).await?;
        // Stopped means nothing of it runs: wait until the pod is gone.
        let started = Instant::now();
        while self.pods.get_opt(&name).await.map_err(cluster)?.is_some() {
            if started.elapsed() > STOP_DEADLINE {
                return Err(BackendError::Cluster(format!(
                    "its pod {name} was still terminating after {} s",
                    STOP_DEADLINE.as_secs()
                )));
            }
            tokio::time::sleep(self.poll).await;
        }
        Ok(())
    }

    fn pod(&self, lab: &str) -> Result<Option<Pod>, BackendError> {
        self.call(self.pods.get_opt(&manifest::name(lab)))?
            .map_err(cluster)
    }
}

/// Runs `f` on `runtime` from a thread of its own, so that any thread may wait for it (one of
/// another runtime's too).
fn on<T: Send>(
    runtime: &tokio::runtime::Runtime,
    f: impl std::future::Future<Output = T> + Send,
) -> Result<T, BackendError> {
    std::thread::scope(|s| {
        s.spawn(|| runtime.block_on(f))
            .join()
            .map_err(|_| BackendError::Cluster("a call to the cluster's API failed".into()))
    })
}

impl Drop for Kubernetes {
    fn drop(&mut self) {
        // A runtime may not be dropped on one of another runtime's threads; this one goes
        // without waiting.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl ComputeBackend for Kubernetes {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn on_this_machine(&self) -> bool {
        false
    }

    fn output(&self, lab: &str, lines: usize) -> Option<String> {
        let params = LogParams {
            container: Some("lab".into()),
            tail_lines: Some(i64::try_from(lines).unwrap_or(i64::MAX)),
            ..LogParams::default()
        };
        let name = manifest::name(lab);
        Some(match self.call(self.pods.logs(&name, &params)) {
            Ok(Ok(text)) => text,
            Ok(Err(e)) if not_found(&e) => "(its pod is gone, and its output with it)".into(),
            Ok(Err(e)) => format!("(its output could not be read from the cluster: {e})"),
            Err(e) => format!("(its output could not be read from the cluster: {e})"),
        })
    }

    fn launch(&self, request: &LabRequest) -> Result<Launched, BackendError> {
        self.call(self.launch_async(request))?
    }

    fn processes(&self, lab: &str) -> Result<usize, BackendError> {
        Ok(self.pod(lab)?.as_ref().map_or(0, status::running))
    }

    fn out_of_memory(&self, lab: &str) -> bool {
        self.pod(lab)
            .ok()
            .flatten()
            .is_some_and(|p| status::out_of_memory(&p))
    }

    fn attach(
        &self,
        _lab: &str,
        _data_root: Option<&std::path::Path>,
        volume: &DataVolume,
    ) -> Result<(), BackendError> {
        Err(BackendError::Attach(format!(
            "a pod's volumes are fixed when it is made: stop the lab and start it again to see {}",
            volume.collection
        )))
    }

    fn stop(&self, lab: &str) -> Result<(), BackendError> {
        self.call(self.stop_async(lab))?
    }

    fn reap_orphans(&self) -> Result<Vec<String>, BackendError> {
        let selector = manifest::node_selector(&self.settings);
        self.call(async {
            let pods = self
                .pods
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(cluster)?;
            let mut reaped = Vec::new();
            for pod in pods {
                let Some(lab) = pod
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(manifest::LAB_LABEL))
                    .cloned()
                else {
                    continue;
                };
                self.stop_async(&lab).await?;
                reaped.push(lab);
            }
            Ok(reaped)
        })?
    }
}

/// A lab's pod, watched: ends when the pod ends or goes.
struct PodProcess {
    ended: Ended,
    watcher: tokio::task::JoinHandle<()>,
}

impl PodProcess {
    fn watch(
        runtime: Option<&tokio::runtime::Runtime>,
        pods: Api<Pod>,
        name: String,
        poll: Duration,
    ) -> Result<Self, BackendError> {
        let runtime = runtime
            .ok_or_else(|| BackendError::Cluster("the cluster's client is closed".into()))?;
        let ended = Ended::default();
        let tell = Tell(ended.clone());
        let watcher = runtime.spawn(async move {
            let mut warned = false;
            let how = loop {
                tokio::time::sleep(poll).await;
                match pods.get_opt(&name).await {
                    Ok(None) => break "its pod is gone".to_owned(),
                    Ok(Some(pod)) => {
                        warned = false;
                        if let Some(how) = status::ended(&pod) {
                            break how;
                        }
                    }
                    // The API being away does not end a lab; it is said once.
                    Err(e) => {
                        if !warned {
                            warn!(pod = %name, error = %e, "a lab's pod cannot be asked about; it is asked again");
                        }
                        warned = true;
                    }
                }
            };
            tell.say(how);
        });
        Ok(Self { ended, watcher })
    }
}

type Ended = Arc<(Mutex<Option<String>>, Condvar)>;

/// Tells a waiter how the pod ended; a watch that stops without knowing (the node stops)
/// says so rather than leave the waiter waiting.
struct Tell(Ended);

impl Tell {
    fn say(&self, how: String) {
        let (lock, cv) = &*self.0;
        lock.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_or_insert(how);
        cv.notify_all();
    }
}

impl Drop for Tell {
    fn drop(&mut self) {
        self.say("the node stopped watching its pod".into());
    }
}

impl LabProcess for PodProcess {
    fn try_wait(&mut self) -> Option<String> {
        self.ended
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn wait(&mut self) -> String {
        let (lock, cv) = &*self.ended;
        let guard = lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let guard = cv
            .wait_while(guard, |how| how.is_none())
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.clone().unwrap_or_default()
    }
}

impl Drop for PodProcess {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}
