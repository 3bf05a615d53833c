//! Making a copy: a collection listed at its publisher, and each file fetched over the data
//! plane from the publisher or a holder, verified chunk by chunk.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use orrery_catalog::Query;
use orrery_catalog::query::MAX_DEPTH;
use orrery_protocol::NodeId;
use orrery_protocol::preservation::plain_collection_id;
use orrery_protocol::wire::{Request, Response};
use tracing::{debug, info, warn};

use super::plan::Plan;
use super::{NodeEvent, Preserver, now};
use crate::dataplane::fetch::{FetchError, fetch};
use crate::store::{PreservedFile, Store};

/// Files asked for per page while listing a collection at its publisher (most a search answers).
const PAGE: u32 = 1000;
/// How long a listing waits for the publisher's answer.
const LISTING: Duration = Duration::from_secs(15);

/// The nodes a copy is fetched from, in order, with where their data planes listen, asked
/// once per copy.
struct Sources {
    order: Vec<NodeId>,
    addrs: std::collections::HashMap<NodeId, Option<Vec<std::net::SocketAddr>>>,
}

impl Sources {
    async fn addrs_of(
        &mut self,
        fed: &orrery_federation::FederationHandle,
        peer: NodeId,
    ) -> Option<Vec<std::net::SocketAddr>> {
        if let Some(known) = self.addrs.get(&peer) {
            return known.clone();
        }
        let found = crate::service::dataplane::addrs_of(fed, peer).await;
        self.addrs.insert(peer, found.clone());
        found
    }
}

impl Preserver {
    /// Lists `publisher`'s collection `id` and fetches every file not yet held, if the listing
    /// is whole (every file its advert counts, each with a plain path and a BLAKE3) and fits in
    /// `room`; files the publisher no longer lists are removed.
    pub(super) async fn fetch_copy(
        &self,
        publisher: NodeId,
        id: &str,
        plan: &Plan,
        room: u64,
        sources: &[NodeId],
    ) -> Result<(), String> {
        if !plain_collection_id(id) {
            return Err("its id is not a plain name".into());
        }
        if plan.files > u64::from(MAX_DEPTH) {
            return Err(format!(
                "it has {} files; a listing pages through at most {MAX_DEPTH}, so copies of larger collections are not made yet",
                plan.files
            ));
        }
        let files = match self.listing(publisher, id, plan).await {
            Ok(files) => files,
            Err(why) => {
                // The publisher may be away: a copy it listed whole before is mended from the
                // listing kept here, from the holders that have it.
                let (db, collection) = (self.home.database(), id.to_owned());
                let kept = tokio::task::spawn_blocking(move || {
                    Store::open(&db)?.preserved_files(publisher, &collection)
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("the copy's record could not be read: {e}"))?;
                if kept.is_empty() || kept.len() as u64 != plan.files {
                    return Err(why);
                }
                info!(collection = %id, publisher = %publisher.short(), %why, "the collection's publisher did not list it; the copy is mended from the listing kept here");
                kept.into_iter()
                    .map(|f| (f.path, f.blake3, f.size))
                    .collect()
            }
        };
        let publisher_id = publisher.to_string();
        // The room was set aside for what the advert says: a listing of other bytes waits.
        let bytes = files
            .iter()
            .try_fold(0u64, |sum, f| sum.checked_add(f.2))
            .filter(|b| *b == plan.bytes)
            .ok_or_else(|| {
                format!(
                    "its publisher lists other bytes than the {} its advert says; the copy waits for an advert that agrees",
                    plan.bytes
                )
            })?;
        if bytes > room {
            return Err(format!(
                "its files need more than the {room} bytes of room left"
            ));
        }
        self.drop_stale_partials(publisher, id, &files);
        let root = self.dir().join(&publisher_id).join(id);
        let (db, collection, count) = (self.home.database(), id.to_owned(), files.len() as u64);
        let listed: Vec<(String, [u8; 32])> = files.iter().map(|f| (f.0.clone(), f.1)).collect();
        let kept = tokio::task::spawn_blocking(move || {
            let mut store = Store::open(&db)?;
            store.set_preserved_copy(publisher, &collection, count, bytes)?;
            let stale = store.retain_preserved_files(publisher, &collection, &listed)?;
            let held = store.preserved_files(publisher, &collection)?;
            Ok::<_, crate::store::StoreError>((stale, held))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("the copy could not be recorded in the store: {e}"))?;
        let (stale, held) = kept;
        for path in stale {
            let gone = root.join(&path);
            if let Err(e) = std::fs::remove_file(&gone)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                warn!(path = %gone.display(), error = %e, "a file its publisher no longer lists could not be removed from the copy");
            }
        }
        let mut sources = Sources {
            order: sources.to_vec(),
            addrs: std::collections::HashMap::new(),
        };
        for (path, hash, size) in files {
            let dest = root.join(&path);
            if held
                .iter()
                .any(|f| f.path == path && f.blake3 == hash && f.intact)
                && dest.exists()
            {
                continue;
            }
            self.fetch_file(publisher, id, &path, hash, size, &dest, &mut sources)
                .await?;
        }
        Ok(())
    }

    /// The files of `publisher`'s collection `id`, as it lists them now: whole (every file its
    /// advert counts), each with a plain path and a BLAKE3.
    async fn listing(
        &self,
        publisher: NodeId,
        id: &str,
        plan: &Plan,
    ) -> Result<Vec<(String, [u8; 32], u64)>, String> {
        let mut files: Vec<(String, [u8; 32], u64)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        // Page by page, in product-id order, asking the publisher itself.
        for offset in (0..MAX_DEPTH).step_by(PAGE as usize) {
            let q = Query::collection_page(id, offset, PAGE);
            let answer =
                tokio::time::timeout(LISTING, self.fed.request(publisher, Request::Search(q)))
                    .await;
            let hits = match answer {
                Ok(Ok(Response::Search(r))) => r.hits,
                Ok(Ok(other)) => {
                    return Err(format!(
                        "its publisher did not list it: {}",
                        match other {
                            Response::Refused(why) => format!("refused ({why:?})"),
                            _ => "it answered something else".into(),
                        }
                    ));
                }
                Ok(Err(e)) => return Err(format!("its publisher could not be reached: {e}")),
                Err(_) => return Err(format!("its publisher did not answer within {LISTING:?}")),
            };
            let last = hits.len() < PAGE as usize;
            for hit in hits {
                let path = hit
                    .id
                    .strip_prefix(&format!("{id}/"))
                    .map(str::to_owned)
                    .filter(|p| plain(p).is_some())
                    .ok_or_else(|| {
                        format!("its publisher lists {:?}, not a plain path in it", hit.id)
                    })?;
                let hash = hex32(&hit.blake3)
                    .ok_or_else(|| format!("its publisher lists {path} without a valid BLAKE3"))?;
                if !seen.insert(path.clone()) {
                    return Err(format!("its publisher lists {path} twice"));
                }
                files.push((path, hash, hit.size));
            }
            if last || files.len() as u64 >= plan.files {
                break;
            }
        }
        if files.len() as u64 != plan.files {
            return Err(format!(
                "its publisher listed {} of the {} files its advert counts (is it reachable?)",
                files.len(),
                plan.files
            ));
        }
        Ok(files)
    }

    /// Removes the partial files of `publisher`'s `collection` that no listed file is fetched
    /// to any more (the publisher changed them).
    fn drop_stale_partials(
        &self,
        publisher: NodeId,
        collection: &str,
        listed: &[(String, [u8; 32], u64)],
    ) {
        let wanted: std::collections::HashSet<String> = listed
            .iter()
            .map(|f| blake3::Hash::from_bytes(f.1).to_hex().to_string())
            .collect();
        let Ok(entries) = std::fs::read_dir(self.partials(publisher, collection)) else {
            return;
        };
        for e in entries.flatten() {
            if !wanted.contains(e.file_name().to_string_lossy().as_ref())
                && let Err(err) = std::fs::remove_file(e.path())
            {
                warn!(path = %e.path().display(), error = %err, "a partial file its publisher no longer lists could not be removed; remove it by hand");
            }
        }
    }

    /// Fetches one file from the first of `sources` that has it whole; a source that sends
    /// bytes that do not match is penalised and the next resumes from what was verified.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_file(
        &self,
        publisher: NodeId,
        collection: &str,
        path: &str,
        hash: [u8; 32],
        size: u64,
        dest: &Path,
        sources: &mut Sources,
    ) -> Result<(), String> {
        let partial = self
            .partials(publisher, collection)
            .join(blake3::Hash::from_bytes(hash).to_hex().as_str());
        let _permit = self.permits.acquire().await.map_err(|e| e.to_string())?;
        let mut why = String::from("no holder could be reached");
        for peer in sources.order.clone() {
            let Some(addrs) = sources.addrs_of(&self.fed, peer).await else {
                why = format!("{} did not say where its data plane listens", peer.short());
                continue;
            };
            let mut quiet = |_| {};
            match fetch(
                &self.endpoint,
                peer,
                &addrs,
                hash,
                size,
                &partial,
                &mut quiet,
            )
            .await
            {
                Ok(done) => {
                    debug!(peer = %peer.short(), path, resumed_from = done.resumed_from, "a preserved file was fetched");
                    if let Some(dir) = dest.parent() {
                        std::fs::create_dir_all(dir)
                            .map_err(|e| format!("{} could not be made: {e}", dir.display()))?;
                    }
                    std::fs::rename(&partial, dest)
                        .map_err(|e| format!("{} could not be kept: {e}", dest.display()))?;
                    let file = PreservedFile {
                        publisher,
                        collection: collection.to_owned(),
                        path: path.to_owned(),
                        blake3: hash,
                        size,
                        checked_at: now(),
                        intact: true,
                    };
                    let db = self.home.database();
                    let kept = tokio::task::spawn_blocking(move || {
                        Store::open(&db)?.put_preserved_file(&file)
                    })
                    .await;
                    return match kept {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => {
                            Err(format!("{path} was fetched but could not be recorded: {e}"))
                        }
                        Err(e) => Err(format!("{path} was fetched but could not be recorded: {e}")),
                    };
                }
                Err(e @ FetchError::WrongSize { .. }) if peer != publisher => {
                    // The size came from the publisher's listing: this holder is not to blame.
                    warn!(peer = %peer.short(), path, error = %e, "a holder's file has another size than the publisher lists; asking another holder");
                    why = e.to_string();
                }
                Err(e) if e.is_offence() => {
                    warn!(peer = %peer.short(), path, error = %e, "a holder sent bytes that do not match a preserved file's hash: penalised, asking another holder");
                    let reason = orrery_federation::Offence::BadOutput {
                        detail: e.to_string(),
                    };
                    let _ = self.fed.penalise(peer, reason).await;
                    let _ = self.events.send(NodeEvent::BadBytes { peer });
                    why = e.to_string();
                }
                Err(e @ FetchError::Io { .. }) => return Err(e.to_string()),
                Err(e) => {
                    debug!(peer = %peer.short(), path, error = %e, "a preserved file was not fetched from this holder");
                    why = format!("{}: {e}", peer.short());
                }
            }
        }
        Err(format!("{path} could not be fetched: {why}"))
    }
}

/// `path` if it is a plain relative path (no `..`, no root).
fn plain(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    (!path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_))))
        .then(|| p.to_path_buf())
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    blake3::Hash::from_hex(s).ok().map(|h| *h.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_kept() {
        assert!(plain("a/b.fits").is_some());
        assert!(plain("../etc/passwd").is_none());
        assert!(plain("/etc/passwd").is_none());
        assert!(plain("a/../../b").is_none());
        assert!(plain("").is_none());
    }
}
