//! The node behind the HTTP face: `orrery_web::Port` over a [`NodeHandle`].

use std::time::Duration;

use orrery_catalog::{FederatedResults, Query};
use orrery_web::{ApiError, FileRefusal, Port, Principal, ProductFile, TapError, TapTable, api};
use tracing::warn;

use super::NodeHandle;
use crate::catalog::CatalogError;
use crate::catalog::tap::TapQueryError;
use crate::metrics::{Outcome, Scope};

pub(super) struct NodePort {
    pub(super) node: NodeHandle,
    /// The data directory and configuration, for what is read from the store.
    pub(super) home: crate::home::Home,
    pub(super) config: crate::config::Config,
    /// What the HTTP face may tell anyone of the node's events.
    pub(super) events: tokio::sync::broadcast::Sender<orrery_web::WebEvent>,
    /// The federation view as last read, and when: reading it scans the catalog's summaries, so
    /// it is read at most once per [`VIEW_FRESH_FOR`], by one request while the others wait.
    pub(super) view:
        tokio::sync::Mutex<Option<(std::time::Instant, Option<orrery_web::FederationView>)>>,
    /// Who recent credentials stood for.
    pub(super) auth: super::auth_cache::AuthCache,
    /// The node's labs.
    pub(super) labs: std::sync::Arc<super::labs::Labs>,
    /// The job queue's worker.
    pub(super) jobs: std::sync::Arc<super::jobs::Jobs>,
}

/// How long a read federation view is served before it is read again.
const VIEW_FRESH_FOR: Duration = Duration::from_secs(2);

/// The node's events that anyone may see, as they happen: changes to public projects and to
/// this node's catalog. Changes to other projects are not announced (their ids and timing are
/// the members' business).
pub(super) fn public_events(
    node: &NodeHandle,
) -> tokio::sync::broadcast::Sender<orrery_web::WebEvent> {
    use orrery_web::WebEvent;
    let (tx, _) = tokio::sync::broadcast::channel(1024);
    let out = tx.clone();
    let mut rx = node.subscribe();
    let node = node.clone();
    tokio::spawn(async move {
        let cancel = node.cancel.clone();
        loop {
            let received = tokio::select! {
                _ = cancel.cancelled() => break,
                r = rx.recv() => r,
            };
            let event = match received {
                Ok(e) => e,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    // Subscribers are told they missed changes (their own channel lags too).
                    warn!(
                        missed = n,
                        "the HTTP face fell behind the node's events; GraphQL subscribers miss some changes"
                    );
                    let _ = out.send(orrery_web::WebEvent::Lagged);
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            };
            let web = match event {
                super::NodeEvent::ProjectChanged { project, heads } => {
                    let public = node
                        .read(project, |p| {
                            p.is_some_and(|p| p.visibility() == orrery_crdt::Visibility::Public)
                        })
                        .await
                        .unwrap_or(false);
                    if !public {
                        continue;
                    }
                    WebEvent::ProjectChanged {
                        project: project.to_string(),
                        heads: heads.iter().map(ToString::to_string).collect(),
                    }
                }
                super::NodeEvent::CatalogChanged => WebEvent::CatalogChanged,
                _ => continue,
            };
            // Nobody listening is fine.
            let _ = out.send(web);
        }
    });
    tx
}

impl Port for NodePort {
    async fn authenticate(
        &self,
        credential: orrery_web::Credential,
    ) -> Result<Option<orrery_web::Principal>, String> {
        if let Some(p) = self.auth.get(&credential) {
            return Ok(Some(p));
        }
        let home = self.home.clone();
        let c = credential.clone();
        let found = tokio::task::spawn_blocking(move || super::accounts::authenticate(&home, c))
            .await
            .map_err(|e| e.to_string())??;
        if let Some(p) = &found {
            self.auth.put(&credential, p);
            if let Ok(author) = p.author.parse() {
                self.node.learn_author(author).await;
            }
        }
        Ok(found)
    }

    async fn sign_in(&self, who: orrery_web::oidc::SignedIn) -> Result<String, String> {
        let home = self.home.clone();
        tokio::task::spawn_blocking(move || super::accounts::sign_in(&home, who))
            .await
            .map_err(|e| e.to_string())?
    }

    async fn redeem_link(&self, code: String) -> Result<Option<String>, String> {
        let home = self.home.clone();
        tokio::task::spawn_blocking(move || {
            crate::store::Store::open(&home.database())
                .and_then(|mut s| s.redeem_sign_in_link(&code))
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }

    fn providers(&self) -> Vec<orrery_web::oidc::ProviderConfig> {
        self.config.web.oidc.clone()
    }

    async fn sign_out(&self, session: String) -> Result<(), ApiError> {
        self.auth
            .forget(&orrery_web::Credential::Session(session.clone()));
        self.blocking(move |home| super::accounts::sign_out(home, &session))
            .await
    }

    async fn projects(&self, who: Option<Principal>) -> Result<Vec<api::ProjectSummary>, ApiError> {
        super::api::projects(&self.node, who).await
    }

    async fn create_project(
        &self,
        who: Principal,
        new: api::NewProject,
    ) -> Result<api::ProjectSummary, ApiError> {
        super::api::create(&self.node, who, new).await
    }

    async fn read_project(
        &self,
        who: Option<Principal>,
        project: String,
        read: api::ProjectRead,
    ) -> Result<api::ProjectAnswer, ApiError> {
        super::api::read(&self.node, &self.home, who, project, read).await
    }

    async fn edit_project(
        &self,
        who: Principal,
        project: String,
        edit: api::ProjectEdit,
    ) -> Result<api::ProjectAnswer, ApiError> {
        super::api::edit(&self.node, who, project, edit).await
    }

    async fn run_cell(
        &self,
        who: Principal,
        cell: api::CellAddress,
        outputs: futures::channel::mpsc::UnboundedSender<serde_json::Value>,
    ) -> Result<api::RunView, ApiError> {
        super::api::run::run(&self.node, who, cell, outputs).await
    }

    async fn jobs(&self, who: Principal, call: api::JobCall) -> Result<api::JobAnswer, ApiError> {
        super::api::jobs::call(&self.node, &self.jobs, who, call).await
    }

    async fn labs(&self, who: Principal, call: api::LabCall) -> Result<api::LabAnswer, ApiError> {
        self.labs.call(who, call).await
    }

    async fn lab_events(
        &self,
        who: Principal,
    ) -> Result<futures::stream::BoxStream<'static, api::LabProgress>, ApiError> {
        Ok(self.labs.events(&who))
    }

    async fn live(
        &self,
        who: Principal,
        project: String,
        notebook: String,
        resume: orrery_web::live::Resume,
    ) -> Result<Box<dyn orrery_web::live::LiveNotebook>, ApiError> {
        super::api::live(&self.node, who, project, notebook, resume).await
    }

    async fn lab_connect(
        &self,
        who: Principal,
        lab: String,
    ) -> Result<orrery_web::LabConnection, ApiError> {
        self.labs.connect(&who, &lab).await
    }

    async fn tokens(&self, who: Principal) -> Result<Vec<api::TokenView>, ApiError> {
        self.blocking(move |home| super::accounts::tokens(home, &who))
            .await
    }

    async fn create_token(
        &self,
        who: Principal,
        new: api::NewToken,
    ) -> Result<api::CreatedToken, ApiError> {
        self.blocking(move |home| super::accounts::create_token(home, &who, new))
            .await
    }

    async fn revoke_token(&self, who: Principal, id: String) -> Result<(), ApiError> {
        let user = who.user.clone();
        let revoked = self
            .blocking(move |home| super::accounts::revoke_token(home, &who, &id))
            .await;
        // Every kept credential of the user is read again, the revoked token's among them.
        self.auth.forget_user(&user);
        revoked
    }

    fn events(&self) -> tokio::sync::broadcast::Receiver<orrery_web::WebEvent> {
        self.events.subscribe()
    }

    async fn federation(&self) -> Result<Option<orrery_web::FederationView>, String> {
        let mut kept = self.view.lock().await;
        if let Some((at, view)) = kept.as_ref()
            && at.elapsed() < VIEW_FRESH_FOR
        {
            return Ok(view.clone());
        }
        let (home, config) = (self.home.clone(), self.config.clone());
        let view = tokio::task::spawn_blocking(move || {
            let store = crate::store::Store::open(&home.database()).map_err(|e| e.to_string())?;
            crate::federation_view::view(&home, &config, &store).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        *kept = Some((std::time::Instant::now(), view.clone()));
        Ok(view)
    }

    async fn tap(&self, adql: String, maxrec: u64) -> Result<TapTable, TapError> {
        let started = std::time::Instant::now();
        let rows = self.node.tap(adql, maxrec).await;
        (self.node.metrics).tap(outcome(rows.is_ok()), started.elapsed());
        match rows {
            Ok(t) => Ok(TapTable {
                columns: t.columns,
                rows: t.rows,
                overflow: t.overflow,
            }),
            Err(e @ (TapQueryError::Adql(_) | TapQueryError::TooComplex { .. })) => {
                Err(TapError::Query(e.to_string()))
            }
            Err(TapQueryError::Catalog(e @ CatalogError::Timeout(_))) => {
                Err(TapError::Query(e.to_string()))
            }
            Err(TapQueryError::Catalog(e)) => Err(TapError::Service(e.to_string())),
        }
    }

    async fn search(
        &self,
        query: Query,
        local: bool,
        deadline: Duration,
    ) -> Result<FederatedResults, String> {
        let started = std::time::Instant::now();
        let found = self.node.search(query, local, deadline).await;
        let scope = if local {
            Scope::Local
        } else {
            Scope::Federated
        };
        (self.node.metrics).search(scope, outcome(found.is_ok()), started.elapsed());
        found.map_err(|e| e.to_string())
    }

    async fn product_file(
        &self,
        collection: String,
        path: String,
    ) -> Result<ProductFile, FileRefusal> {
        match self.node.product_file(collection, path).await {
            Ok(Some(f)) => Ok(ProductFile {
                file: f.file,
                size: f.size,
                blake3: f.blake3,
                format: f.format,
            }),
            Ok(None) => Err(FileRefusal::NotFound),
            Err(e) => {
                // The reason names paths on this machine: the operator's log, not the client.
                warn!(error = %e, "a product's file was not served");
                Err(FileRefusal::Unavailable(e.to_string()))
            }
        }
    }
}

impl NodePort {
    /// Runs `f` on a blocking thread with the data directory (it opens the store).
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&crate::home::Home) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let home = self.home.clone();
        tokio::task::spawn_blocking(move || f(&home))
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?
    }
}

fn outcome(ok: bool) -> Outcome {
    if ok { Outcome::Ok } else { Outcome::Error }
}

/// Binds the HTTP listener at `listen`. When that is the default address and it is taken (a
/// second node on the machine), a free port on the same address is taken instead, with a
/// warning; any other address taken is an error.
pub(super) async fn bind(
    listen: std::net::SocketAddr,
) -> Result<tokio::net::TcpListener, super::NodeError> {
    use super::NodeError;
    match tokio::net::TcpListener::bind(listen).await {
        Err(e)
            if e.kind() == std::io::ErrorKind::AddrInUse
                && listen == crate::config::DEFAULT_WEB_LISTEN =>
        {
            let free = std::net::SocketAddr::new(listen.ip(), 0);
            let l = tokio::net::TcpListener::bind(free)
                .await
                .map_err(|source| NodeError::Web { addr: free, source })?;
            warn!(
                taken = %listen,
                serving = %l.local_addr().map_or_else(|_| "?".into(), |a| a.to_string()),
                "the default HTTP port is taken (another node on this machine?); serving on a free port instead: set [web] listen in orrery.toml to choose one"
            );
            Ok(l)
        }
        other => other.map_err(|source| NodeError::Web {
            addr: listen,
            source,
        }),
    }
}

/// The HTTPS listener, bound, with its checked certificate and key.
pub(super) struct Https {
    listener: tokio::net::TcpListener,
    identity: orrery_web::TlsIdentity,
    addr: std::net::SocketAddr,
}

/// Loads the certificate and binds the HTTPS listener when `[web] tls_listen` is set, and
/// writes its address to `https.addr`; removes a stale `https.addr` otherwise.
pub(super) async fn bind_https(
    web: &crate::config::WebSection,
    home: &crate::home::Home,
) -> Result<Option<Https>, super::NodeError> {
    use super::NodeError;
    let Some(tls) = web.tls(home.root()) else {
        let _ = std::fs::remove_file(home.https_addr());
        return Ok(None);
    };
    let identity = orrery_web::TlsIdentity::load(&tls.cert, &tls.key)?;
    let listener = tokio::net::TcpListener::bind(tls.listen)
        .await
        .map_err(|source| NodeError::Web {
            addr: tls.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| NodeError::Web {
        addr: tls.listen,
        source,
    })?;
    std::fs::write(home.https_addr(), addr.to_string())
        .map_err(|source| NodeError::Web { addr, source })?;
    Ok(Some(Https {
        listener,
        identity,
        addr,
    }))
}

/// The address clients use: the configured public URL, else the HTTPS listener, else the
/// plain one.
pub(super) fn base_url(
    web: &crate::config::WebSection,
    plain: std::net::SocketAddr,
    https: Option<&Https>,
) -> String {
    match (&web.public_url, https) {
        (Some(url), _) => url.clone(),
        (None, Some(h)) => format!("https://{}", h.addr),
        (None, None) => format!("http://{plain}"),
    }
}

/// Serves `router` over HTTPS until `cancel`, if HTTPS is configured.
pub(super) fn serve_https(
    https: Option<Https>,
    router: axum::Router,
    cancel: tokio_util::sync::CancellationToken,
) {
    let Some(Https {
        listener,
        identity,
        addr,
    }) = https
    else {
        return;
    };
    tokio::spawn(async move {
        let stop = async move { cancel.cancelled().await };
        if let Err(e) = orrery_web::serve_tls(listener, router, identity, stop).await {
            warn!(error = %e, "HTTPS server stopped");
        }
    });
    tracing::info!(%addr, "serving HTTPS at https://{addr}/");
}
