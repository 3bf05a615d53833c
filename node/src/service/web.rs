//! The node behind the HTTP face: `orrery_web::Port` over a [`NodeHandle`].

use std::time::Duration;

use orrery_catalog::{FederatedResults, Query};
use orrery_web::{FileRefusal, Port, ProductFile, TapError, TapTable};
use tracing::warn;

use super::NodeHandle;
use crate::catalog::CatalogError;
use crate::catalog::tap::TapQueryError;

pub(super) struct NodePort {
    pub(super) node: NodeHandle,
}

impl Port for NodePort {
    async fn tap(&self, adql: String, maxrec: u64) -> Result<TapTable, TapError> {
        match self.node.tap(adql, maxrec).await {
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
        self.node
            .search(query, local, deadline)
            .await
            .map_err(|e| e.to_string())
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
