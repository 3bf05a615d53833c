//! The node behind the HTTP face: `orrery_web::Port` over a [`NodeHandle`].

use std::time::Duration;

use orrery_catalog::{FederatedResults, Query};
use orrery_web::{Port, ProductFile, TapError, TapTable};

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
            Err(TapQueryError::Adql(e)) => Err(TapError::Query(e.to_string())),
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

    async fn product_file(&self, collection: String, path: String) -> Option<ProductFile> {
        let (path, size, hash, format) = self.node.product_file(collection, path).await?;
        Some(ProductFile {
            path,
            size,
            blake3: hash.iter().map(|b| format!("{b:02x}")).collect(),
            format,
        })
    }
}
