//! The federation as this node knows it — members, their adverts and reachability — read from
//! the store, for `orrery federation status` and the browser's federation page alike.

use anyhow::Result;
use orrery_protocol::NodeId;
use orrery_web::{FederationView, MemberView, Reach};

use crate::config::Config;
use crate::home::{Home, read_key};
use crate::store::Store;

/// The federation view, or `None` when this node belongs to no federation.
pub fn view(home: &Home, config: &Config, store: &Store) -> Result<Option<FederationView>> {
    let Some(m) = store.membership()? else {
        return Ok(None);
    };
    let adverts = store.adverts()?;
    let peers = store.peers()?;
    let me = NodeId(read_key(&home.node_key())?.public());
    // This node's own collections come from its catalog, not from an advert about itself.
    let own_collections = crate::catalog::Catalog::open_read_only(&home.database())
        .and_then(|c| c.summaries())
        .unwrap_or_default();
    let members = m
        .members()
        .into_iter()
        .map(|(node, joined_as)| {
            let advert = adverts.iter().find(|a| a.node == node);
            let reach = if node == me {
                Reach::ThisNode
            } else {
                match peers.iter().find(|p| p.0 == node) {
                    Some((_, true, _)) => Reach::Connected,
                    Some((_, false, t)) if *t > 0 => Reach::LastSeen { at: *t },
                    _ => Reach::NeverSeen,
                }
            };
            let (name, institution, collections, compute) = if node == me {
                (
                    config.node.name.clone(),
                    config.node.institution.clone(),
                    own_collections.clone(),
                    config.compute.clone(),
                )
            } else {
                (
                    advert.map_or(joined_as, |a| a.name.clone()),
                    advert.map(|a| a.institution.clone()).unwrap_or_default(),
                    advert.map(|a| a.collections.clone()).unwrap_or_default(),
                    advert.map(|a| a.compute.clone()).unwrap_or_default(),
                )
            };
            MemberView {
                node: node.to_string(),
                short: node.short(),
                name,
                institution,
                reach,
                advert_issued_at: advert.map(|a| a.issued_at),
                collections,
                compute,
            }
        })
        .collect();
    Ok(Some(FederationView {
        name: m.name().to_string(),
        id: m.id().to_string(),
        this_node: me.to_string(),
        members,
    }))
}
