//! Preserved copies on the data plane: the files this node keeps of other members' collections
//! (`crate::service::preservation`) are served to the nodes that make or repair copies of them,
//! so a copy can be mended while its publisher is away. A file is served only to a node the
//! collection's access policy lets have it, as the publisher's last advert states the policy;
//! a collection that advert does not describe is served to no one.

use std::path::{Path, PathBuf};

use orrery_protocol::NodeId;
use orrery_protocol::advert::NodeAdvert;
use tracing::warn;

use super::outboards::Outboards;
use super::serve::{Refusal, Source};
use crate::home::Home;
use crate::store::{PreservedFile, Store};

/// Serves preserved copies to the data plane.
#[derive(Debug, Clone)]
pub struct Preserved {
    db: PathBuf,
    dir: PathBuf,
    outboards: Outboards,
}

impl Preserved {
    /// The copies the node at `home` keeps under `dir`.
    pub fn new(home: &Home, dir: PathBuf, outboards: Outboards) -> Self {
        Self {
            db: home.database(),
            dir,
            outboards,
        }
    }

    /// The kept file whose bytes hash to `hash`, opened for `peer` if its collection's access
    /// policy lets `peer` have it.
    pub async fn open(&self, peer: NodeId, hash: [u8; 32]) -> Result<Source, Refusal> {
        let db = self.db.clone();
        let found = tokio::task::spawn_blocking(move || {
            let store = Store::open(&db)?;
            let files = store.preserved_files_with(&hash)?;
            // Only the publishers' adverts are read (one, mostly).
            let mut adverts: Vec<NodeAdvert> = Vec::new();
            for f in &files {
                if !adverts.iter().any(|a| a.node == f.publisher)
                    && let Some(a) = store.advert(f.publisher)?
                {
                    adverts.push(a);
                }
            }
            Ok::<_, crate::store::StoreError>((files, adverts))
        })
        .await
        .map_err(|_| Refusal::Busy)?;
        let (files, adverts) = found.map_err(|e| {
            warn!(error = %e, "the store could not be read for a data-plane request");
            Refusal::Busy
        })?;
        let Some(f) = files.iter().find(|f| allowed(&adverts, f, peer)) else {
            return Err(match files.first() {
                Some(f) => Refusal::NotPermitted {
                    rule: format!(
                        "a preserved copy of collection {}, whose publisher's access policy does not name the peer",
                        f.collection
                    ),
                },
                None => Refusal::Missing,
            });
        };
        let root = self.dir.join(f.publisher.to_string()).join(&f.collection);
        let what = format!("{}/{} (preserved)", f.collection, f.path);
        let (db, at, damaged, shown) = (self.db.clone(), root.clone(), f.clone(), what.clone());
        self.outboards
            .serve(root, f.path.clone(), f.size, hash, what, move || {
                warn!(file = %shown, "a preserved file no longer matches its BLAKE3: it is removed and fetched again");
                forget(&db, &at, damaged);
            })
            .await
    }
}

/// Whether the publisher's last advert among `adverts` lets `peer` have `f` (the publisher
/// always may).
fn allowed(adverts: &[NodeAdvert], f: &PreservedFile, peer: NodeId) -> bool {
    peer == f.publisher
        || adverts
            .iter()
            .find(|a| a.node == f.publisher)
            .and_then(|a| a.collections.iter().find(|c| c.id == f.collection))
            .is_some_and(|c| c.readers.as_ref().is_none_or(|r| r.contains(&peer)))
}

/// Marks a damaged kept file so and removes it: the next look fetches it again.
fn forget(db: &Path, root: &Path, f: PreservedFile) {
    let _ = std::fs::remove_file(root.join(&f.path));
    // Only a file still recorded is marked: a copy released meanwhile stays forgotten.
    if let Err(e) = Store::open(db).and_then(|s| s.mark_preserved_damaged(&f)) {
        warn!(error = %e, "a damaged preserved file could not be marked so; its next audit finds it");
    }
}
