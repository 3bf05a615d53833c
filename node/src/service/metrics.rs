//! The metrics listener of a running node: `/metrics` on its own address (see
//! [`crate::config::MetricsSection`]), and the port that renders it.

use std::net::SocketAddr;
use std::time::Duration;

use orrery_web::MetricsPort;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{NodeError, NodeHandle};
use crate::config::{DEFAULT_METRICS_LISTEN, MetricsSection};
use crate::home::Home;
use crate::metrics::FederationGauges;

/// How long a scrape waits for the federation's status before answering with the gauges as
/// last read.
const STATUS_WAIT: Duration = Duration::from_secs(2);

struct NodeMetrics {
    node: NodeHandle,
}

impl MetricsPort for NodeMetrics {
    async fn metrics(&self) -> String {
        match tokio::time::timeout(STATUS_WAIT, self.node.status()).await {
            Ok(Ok(s)) => self.node.metrics.set_federation(FederationGauges {
                members: count(s.members.len()),
                members_connected: count(s.members.iter().filter(|m| m.connected).count()),
                adverts_held: count(s.members.iter().filter(|m| m.advert.is_some()).count()),
                connections: count(s.connections),
            }),
            Ok(Err(e)) => warn!(error = %e, "federation status not read for metrics"),
            Err(_) => warn!("federation status not read for metrics within 2 s"),
        }
        self.node.metrics.set_labs(&self.node.labs.counts());
        self.node.metrics.encode()
    }
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Binds the metrics listener (if enabled), writes its address to `metrics.addr` and serves
/// until `cancel`. The default address falls back to a free port when taken, as the HTTP
/// face's does; any other address taken is an error.
pub(super) async fn serve(
    config: &MetricsSection,
    home: &Home,
    node: NodeHandle,
    cancel: CancellationToken,
) -> Result<Option<SocketAddr>, NodeError> {
    if !config.enabled {
        let _ = std::fs::remove_file(home.metrics_addr());
        return Ok(None);
    }
    let listener = bind(config.listen).await?;
    let addr = listener.local_addr().map_err(|source| NodeError::Web {
        addr: config.listen,
        source,
    })?;
    std::fs::write(home.metrics_addr(), addr.to_string())
        .map_err(|source| NodeError::Web { addr, source })?;
    let router = orrery_web::metrics_router(NodeMetrics { node });
    tokio::spawn(async move {
        let stop = async move { cancel.cancelled().await };
        if let Err(e) = orrery_web::serve(listener, router, stop).await {
            warn!(error = %e, "metrics listener stopped");
        }
    });
    info!(%addr, "serving metrics at http://{addr}/metrics");
    Ok(Some(addr))
}

async fn bind(listen: SocketAddr) -> Result<tokio::net::TcpListener, NodeError> {
    match tokio::net::TcpListener::bind(listen).await {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && listen == DEFAULT_METRICS_LISTEN => {
            let free = SocketAddr::new(listen.ip(), 0);
            let l = tokio::net::TcpListener::bind(free)
                .await
                .map_err(|source| NodeError::Web { addr: free, source })?;
            info!(
                taken = %listen,
                "the default metrics port is taken (another node on this machine?); serving metrics on a free port instead: set [metrics] listen in orrery.toml to choose one"
            );
            Ok(l)
        }
        other => other.map_err(|source| NodeError::Web {
            addr: listen,
            source,
        }),
    }
}
