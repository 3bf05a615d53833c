//! The node behind the HTTP face: `orrery_web::Port` over a [`NodeHandle`].

use std::time::Duration;

use orrery_catalog::{FederatedResults, Query};
use orrery_web::{FileRefusal, Port, ProductFile, TapError, TapTable};
use tracing::warn;

use super::NodeHandle;
use crate::catalog::CatalogError;
use crate::catalog::tap::TapQueryError;
use crate::metrics::{Outcome, Scope};

pub(super) struct NodePort {
    pub(super) node: NodeHandle,
}

impl Port for NodePort {
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
