//! The federation actor: owns the swarm, the member list and the advert book, and runs one loop
//! over commands, swarm events and a periodic tick.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent, behaviour::toggle::Toggle};
use libp2p::{Multiaddr, PeerId, Swarm, gossipsub, identify, kad, mdns, request_response};
use orrery_protocol::advert::{AdvertBook, AdvertOutcome, NodeAdvert};
use orrery_protocol::federation::{Membership, MembershipEvent};
use orrery_protocol::wire::{Gossip, MAX_GOSSIP_BYTES, Refusal, Request, Response};
use orrery_protocol::{NodeId, SecretKey, Signed};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

mod admission;
mod members_only;
mod peers;
mod refusal;
mod requests;

use admission::{Admit, Strangers};
use members_only::MembersOnly;
pub use refusal::Reason as RefusalReason;
use refusal::{Refused, Verdict};

/// How long a removed node that connected may stay, to hear of its removal.
const TELL_REMOVED: Duration = Duration::from_secs(5);

/// A removed node that connected, being told of its removal.
#[derive(Debug, Clone, Copy)]
struct Leaving {
    /// When it is disconnected.
    until: Instant,
    /// Whether it answered the telling (until then it is told again every second).
    heard: bool,
}

use crate::codec::{Codec, PROTOCOL};
use crate::config::Config;
use crate::handle::{
    Command, Event, FederationError, FederationHandle, MemberStatus, RefusedPeer, RemovedSelf,
    Status,
};
use crate::peer::{keypair, node_id, peer_id};

#[derive(NetworkBehaviour)]
struct Behaviour {
    identify: identify::Behaviour,
    kad: MembersOnly,
    gossipsub: gossipsub::Behaviour,
    rr: request_response::Behaviour<Codec>,
    mdns: Toggle<mdns::tokio::Behaviour>,
}

enum Pending {
    Request {
        to: NodeId,
        reply: oneshot::Sender<Result<Response, FederationError>>,
    },
    Join {
        reply: oneshot::Sender<Result<Vec<MembershipEvent>, FederationError>>,
    },
    /// Membership events asked of a member; asked again (up to [`PULL_TRIES`] in all) if the
    /// request fails while the member is still connected.
    Pull {
        from: PeerId,
        tries: u8,
    },
    PullAdverts,
    /// A removed node told of its removal.
    Told,
}

/// How many times a membership pull is sent to a connected member before it is left to the
/// next round.
const PULL_TRIES: u8 = 3;

type Reply = BoxFuture<
    'static,
    (
        Option<Response>,
        request_response::ResponseChannel<Response>,
    ),
>;

/// The IP address a connection comes from, if its address names one.
fn remote_ip(addr: &Multiaddr) -> Option<std::net::IpAddr> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::Ip4(ip) => Some(ip.into()),
        libp2p::multiaddr::Protocol::Ip6(ip) => Some(ip.into()),
        _ => None,
    })
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Starts the federation actor on the current tokio runtime. `membership` is the stored member
/// list, if the node already belongs to a federation.
pub fn spawn(
    key: SecretKey,
    config: Config,
    membership: Option<Membership>,
    cancel: CancellationToken,
) -> Result<
    (
        FederationHandle,
        mpsc::Receiver<Event>,
        tokio::task::JoinHandle<()>,
    ),
    FederationError,
> {
    config.validate().map_err(|e| FederationError::Listen {
        addr: String::new(),
        reason: e.to_string(),
    })?;
    let me = NodeId(key.public());
    let kp = keypair(&key);
    let local = kp.public().to_peer_id();
    let timeout = config.request_timeout();
    let mdns_on = config.mdns;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(kp)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default().nodelay(true),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .map_err(|e| FederationError::Listen {
            addr: "tcp".into(),
            reason: e.to_string(),
        })?
        .with_quic()
        .with_behaviour(|key| {
            let gossip_config = gossipsub::ConfigBuilder::default()
                .validation_mode(gossipsub::ValidationMode::Strict)
                .validate_messages()
                .max_transmit_size(MAX_GOSSIP_BYTES)
                .heartbeat_interval(Duration::from_millis(700))
                .build()
                .map_err(|e| e.to_string())?;
            let gossipsub = gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Signed(key.clone()),
                gossip_config,
            )?;
            let mut kad_config = kad::Config::new(libp2p::StreamProtocol::new("/orrery/kad/1"));
            // Only members' addresses enter the routing table (from their adverts and identify).
            kad_config.set_kbucket_inserts(kad::BucketInserts::Manual);
            // No timer-driven bootstrap: members are found from the membership and adverts, and
            // Kademlia bootstraps by itself when a member enters its table. The timer warned
            // "no known peers" every five minutes on a node alone.
            kad_config.set_periodic_bootstrap_interval(None);
            let mut kad =
                kad::Behaviour::with_config(local, kad::store::MemoryStore::new(local), kad_config);
            kad.set_mode(Some(kad::Mode::Server));
            let kad = MembersOnly::new(kad);
            let mdns = if mdns_on {
                Some(mdns::tokio::Behaviour::new(mdns::Config::default(), local)?)
            } else {
                None
            };
            Ok(Behaviour {
                identify: identify::Behaviour::new(identify::Config::new(
                    "/orrery/1".into(),
                    key.public(),
                )),
                kad,
                gossipsub,
                rr: request_response::Behaviour::with_codec(
                    Codec,
                    [(PROTOCOL, request_response::ProtocolSupport::Full)],
                    request_response::Config::default().with_request_timeout(timeout),
                ),
                mdns: Toggle::from(mdns),
            })
        })
        .map_err(|e| FederationError::Listen {
            addr: "behaviour".into(),
            reason: e.to_string(),
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();

    for addr in &config.listen {
        let a: Multiaddr = addr.parse().map_err(|_| FederationError::Listen {
            addr: addr.clone(),
            reason: "not a multiaddr".into(),
        })?;
        swarm.listen_on(a).map_err(|e| FederationError::Listen {
            addr: addr.clone(),
            reason: e.to_string(),
        })?;
    }
    for addr in &config.bootstrap {
        if let Ok(a) = addr.parse::<Multiaddr>() {
            let _ = swarm.dial(a);
        }
    }

    let (tx, rx) = mpsc::channel(256);
    let (events, events_rx) = mpsc::channel(1024);
    let mut actor = Actor {
        key,
        me,
        config,
        swarm,
        membership: None,
        adverts: AdvertBook::default(),
        template: None,
        seq: 0,
        pending: HashMap::new(),
        replies: FuturesUnordered::new(),
        offences: HashMap::new(),
        banned: HashMap::new(),
        ban_reasons: HashMap::new(),
        connected: HashSet::new(),
        announced: HashSet::new(),
        remembered: Vec::new(),
        strangers: Strangers::default(),
        remote_ip: HashMap::new(),
        refused: Refused::default(),
        leaving: HashMap::new(),
        stranger_pull: None,
        pull_turn: 0,
        membership_unsent: std::cell::Cell::new(false),
        listening: Vec::new(),
        events,
    };
    if let Some(m) = membership {
        actor.enter(m);
    }
    let task = tokio::spawn(async move { actor.run(rx, cancel).await });
    Ok((FederationHandle { tx, me }, events_rx, task))
}

struct Actor {
    key: SecretKey,
    me: NodeId,
    config: Config,
    swarm: Swarm<Behaviour>,
    membership: Option<Membership>,
    adverts: AdvertBook,
    template: Option<NodeAdvert>,
    seq: u64,
    pending: HashMap<request_response::OutboundRequestId, Pending>,
    replies: FuturesUnordered<Reply>,
    offences: HashMap<NodeId, u32>,
    banned: HashMap<PeerId, Instant>,
    /// Why each banned node was banned, and until when (pruned as bans end).
    ban_reasons: HashMap<NodeId, (Instant, crate::offence::Offence)>,
    connected: HashSet<PeerId>,
    /// Connected peers reported to the node as connected members.
    announced: HashSet<PeerId>,
    /// Addresses the node asked to dial (members it knew before it stopped): dialled again on
    /// each tick while no member is connected, so that one failed window strands no one.
    remembered: Vec<Multiaddr>,
    /// Connected non-members: their slots and the per-address budget of new ones.
    strangers: Strangers,
    /// The address each connected peer last connected from.
    remote_ip: HashMap<PeerId, std::net::IpAddr>,
    /// Refused peers and their backoff.
    refused: Refused,
    /// Removed nodes allowed to stay connected for a few seconds, to hear of their removal (at
    /// most one entry per refused peer whose backoff ended).
    leaving: HashMap<PeerId, Leaving>,
    /// When members were last asked for membership because a stranger connected.
    stranger_pull: Option<Instant>,
    /// Whose turn it is to be asked for adverts.
    pull_turn: usize,
    /// A membership event could not be handed to the node and must be sent again.
    membership_unsent: std::cell::Cell<bool>,
    listening: Vec<Multiaddr>,
    events: mpsc::Sender<Event>,
}

impl Actor {
    async fn run(&mut self, mut commands: mpsc::Receiver<Command>, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(self.config.advert_interval_secs));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sweep = tokio::time::interval(Duration::from_secs(1));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => break,
                },
                Some((response, channel)) = self.replies.next(), if !self.replies.is_empty() => {
                    let response = response.unwrap_or(Response::Refused(Refusal::Busy));
                    let _ = self.swarm.behaviour_mut().rr.send_response(channel, response);
                }
                event = self.swarm.select_next_some() => self.on_swarm(event),
                _ = tick.tick() => self.on_tick(),
                _ = sweep.tick() => self.sweep_strangers(),
            }
        }
        self.close_all().await;
        debug!(node = %self.me.short(), "federation actor stopped");
    }

    /// Closes every connection before the swarm goes, so that peers learn of it at once: a
    /// QUIC connection dropped unclosed lingers at the peer until its idle timeout, and what
    /// the peer sends over it meanwhile is lost.
    async fn close_all(&mut self) {
        let peers: Vec<PeerId> = self.connected.iter().copied().collect();
        for p in peers {
            let _ = self.swarm.disconnect_peer_id(p);
        }
        let deadline = tokio::time::sleep(Duration::from_millis(500));
        tokio::pin!(deadline);
        while !self.connected.is_empty() {
            tokio::select! {
                _ = &mut deadline => break,
                event = self.swarm.select_next_some() => {
                    if let SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } = event {
                        self.connected.remove(&peer_id);
                    }
                }
            }
        }
    }

    fn emit(&self, event: Event) {
        let membership = matches!(event, Event::Membership(_));
        if self.events.try_send(event).is_err() {
            warn!("federation event dropped: the node is not keeping up");
            // The member list must reach the node; it is sent again on the next tick.
            if membership {
                self.membership_unsent.set(true);
            }
        }
    }

    fn topic(&self) -> Option<gossipsub::IdentTopic> {
        self.membership
            .as_ref()
            .map(|m| gossipsub::IdentTopic::new(format!("orrery/{}/gossip", m.id())))
    }

    /// Tells Kademlia who the members are (only they may use it).
    fn gate_kad(&mut self) {
        let members = self
            .membership
            .as_ref()
            .map(|m| m.members().into_iter().map(|(n, _)| peer_id(&n)).collect())
            .unwrap_or_default();
        self.swarm.behaviour_mut().kad.set_members(members);
    }

    /// Becomes a member of `m`: subscribe to its topic and start advertising.
    fn enter(&mut self, m: Membership) {
        self.membership = Some(m);
        self.gate_kad();
        if let Some(topic) = self.topic() {
            let _ = self.swarm.behaviour_mut().gossipsub.subscribe(&topic);
        }
        let peers: Vec<PeerId> = self.connected.iter().copied().collect();
        for p in peers {
            self.classify_peer(p);
        }
        self.publish_advert();
    }

    fn is_member(&self, node: &NodeId) -> bool {
        self.membership.as_ref().is_some_and(|m| m.is_member(node))
    }

    /// Gossip is not reliable: a member admitted while its peers still treated it as a stranger
    /// may never hear their subscriptions, and its adverts then reach no one. Each tick asks
    /// one connected member, in turn, for every advert it holds, so adverts converge whatever
    /// gossip does.
    fn pull_adverts_round_robin(&mut self) {
        let mut members: Vec<PeerId> = self.announced.iter().copied().collect();
        if members.is_empty() {
            return;
        }
        members.sort();
        self.pull_turn = self.pull_turn.wrapping_add(1);
        let peer = members[self.pull_turn % members.len()];
        let id = self
            .swarm
            .behaviour_mut()
            .rr
            .send_request(&peer, Request::Adverts);
        self.pending.insert(id, Pending::PullAdverts);
        // Membership events converge the same way: a removal or admission whose gossip was
        // lost (or a removed node whose first pull failed) is learnt by the next round.
        self.pull_membership(peer, 1);
    }

    /// Asks a member for the membership events it holds.
    fn pull_membership(&mut self, peer: PeerId, tries: u8) {
        let id = self
            .swarm
            .behaviour_mut()
            .rr
            .send_request(&peer, Request::Membership);
        self.pending.insert(id, Pending::Pull { from: peer, tries });
    }

    fn publish(&mut self, gossip: &Gossip) {
        if let Some(topic) = self.topic()
            && let Err(e) = self
                .swarm
                .behaviour_mut()
                .gossipsub
                .publish(topic, gossip.encode())
        {
            debug!(error = %e, "gossip not published");
        }
    }

    fn publish_advert(&mut self) {
        let (Some(m), Some(template)) = (&self.membership, &self.template) else {
            return;
        };
        self.seq = (self.seq + 1).max(now_millis());
        let mut advert = template.clone();
        advert.federation = m.id();
        advert.node = self.me;
        advert.seq = self.seq;
        advert.issued_at = now();
        advert.expires_at = now() + self.config.advert_ttl_secs as i64;
        advert.addresses = self.listening.iter().map(ToString::to_string).collect();
        let signed = Signed::sign(&self.key, advert).into_unverified();
        // An advert this node would refuse itself would cost it an offence at every member.
        if let Err(e) = self.adverts.offer(signed.clone(), m, now()) {
            warn!(error = %e, "own advert not valid; not published");
            return;
        }
        self.publish(&Gossip::Advert(signed));
    }

    fn on_tick(&mut self) {
        if self.membership_unsent.replace(false)
            && let Some(m) = &self.membership
        {
            self.emit(Event::Membership(m.events()));
        }
        let t = Instant::now();
        self.banned.retain(|_, until| *until > t);
        if let Some(m) = &self.membership {
            self.adverts.prune(m, now());
        }
        self.publish_advert();
        self.pull_adverts_round_robin();
        if self.removed_self() {
            return;
        }
        // Dial members we know how to reach but are not connected to.
        let targets: Vec<(PeerId, Vec<Multiaddr>)> = self
            .adverts
            .all()
            .filter(|a| a.node != self.me)
            .map(|a| {
                (
                    peer_id(&a.node),
                    a.addresses.iter().filter_map(|s| s.parse().ok()).collect(),
                )
            })
            .filter(|(p, _)| !self.connected.contains(p))
            .collect();
        for (p, addrs) in targets {
            for a in addrs {
                self.swarm.add_peer_address(p, a);
            }
            let _ = self.swarm.dial(p);
        }
        // Alone: the members this node knew are tried again (a node whose first dials failed,
        // or a removed node not yet told of its removal, would otherwise never hear from
        // anyone: adverts only come through members).
        if self.announced.is_empty() {
            for a in self.remembered.clone() {
                let _ = self.swarm.dial(a);
            }
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Request { to, request, reply } => {
                if self.removed_self() {
                    let _ = reply.send(Err(FederationError::Removed));
                    return;
                }
                if !self.is_member(&to) {
                    let _ = reply.send(Err(FederationError::NotAMember(to)));
                    return;
                }
                let id = self
                    .swarm
                    .behaviour_mut()
                    .rr
                    .send_request(&peer_id(&to), request);
                self.pending.insert(id, Pending::Request { to, reply });
            }
            Command::SetAdvert { advert } => {
                self.template = Some(*advert);
                self.publish_advert();
            }
            Command::Join {
                request,
                inviter,
                addrs,
                reply,
            } => {
                let peer = peer_id(&inviter);
                for a in addrs {
                    self.swarm.add_peer_address(peer, a);
                }
                let id = self
                    .swarm
                    .behaviour_mut()
                    .rr
                    .send_request(&peer, Request::Join(request));
                self.pending.insert(id, Pending::Join { reply });
            }
            Command::Invite {
                invitee,
                code,
                expires_at,
                reply,
            } => {
                let result = match &self.membership {
                    None => Err(FederationError::NoFederation),
                    Some(m) => {
                        let mut nonce = [0u8; 16];
                        let _ = getrandom::fill(&mut nonce);
                        m.invite(&self.key, invitee, code, expires_at, nonce)
                            .map(Signed::into_unverified)
                            .map_err(|e| FederationError::Join(e.to_string()))
                    }
                };
                let _ = reply.send(result);
            }
            Command::Remove {
                node,
                reason,
                reply,
            } => {
                let result = match self.membership.as_mut() {
                    None => Err(FederationError::NoFederation),
                    Some(m) => m
                        .remove(&self.key, node, &reason, now())
                        .map_err(|e| FederationError::Join(e.to_string())),
                };
                match result {
                    Ok(removal) => {
                        self.publish(&Gossip::Membership(MembershipEvent::Removal(
                            removal.into_unverified(),
                        )));
                        self.after_membership_change();
                        let _ = reply.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Command::Penalise { peer, reason } => self.penalise(peer, reason),
            Command::Dial { addr } => {
                if self.removed_self() {
                    warn!(%addr, "not dialled: this node was removed from the federation");
                    return;
                }
                if !self.remembered.contains(&addr) && self.remembered.len() < 64 {
                    self.remembered.push(addr.clone());
                }
                let _ = self.swarm.dial(addr);
            }
            Command::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Command::IsMember { node, reply } => {
                let _ = reply.send(self.is_member(&node));
            }
            Command::Adopt { membership } => {
                if self.membership.as_ref().map(Membership::id) != Some(membership.id()) {
                    self.enter(*membership);
                } else {
                    self.absorb(membership.events());
                }
            }
            Command::Announce { events } => {
                let Some(m) = self.membership.as_mut() else {
                    return;
                };
                let mut fresh = Vec::new();
                for e in events {
                    if let Ok(true) = m.apply(e.clone()) {
                        fresh.push(e);
                    }
                }
                if !fresh.is_empty() {
                    for e in fresh {
                        self.publish(&Gossip::Membership(e));
                    }
                    self.after_membership_change();
                }
            }
            Command::Provide { key } => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .start_providing(kad::RecordKey::new(&key));
            }
        }
    }

    fn status(&self) -> Status {
        let members = self
            .membership
            .as_ref()
            .map(|m| {
                m.members()
                    .into_iter()
                    .map(|(node, name)| MemberStatus {
                        connected: node == self.me || self.connected.contains(&peer_id(&node)),
                        advert: self.adverts.get(&node).cloned(),
                        name,
                        node,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Status {
            me: self.me,
            federation: self
                .membership
                .as_ref()
                .map(|m| (m.name().to_string(), m.id())),
            members,
            removed: self
                .membership
                .as_ref()
                .map(|m| m.removed().into_iter().collect())
                .unwrap_or_default(),
            listening: self.listening.clone(),
            connections: self.connected.len(),
            removed_self: self.membership.as_ref().and_then(|m| {
                m.removal(&self.me).map(|r| RemovedSelf {
                    by: NodeId(*r.signer()),
                    at: r.value().at,
                    reason: r.value().reason.clone(),
                })
            }),
            refused: self
                .refused
                .list()
                .map(|(peer, reason, attempts)| RefusedPeer {
                    peer,
                    node: node_id(&peer),
                    reason,
                    attempts,
                })
                .collect(),
            banned: self.bans(),
        }
    }

    /// The bans in force, with their reasons.
    fn bans(&self) -> Vec<crate::offence::Ban> {
        let now = Instant::now();
        let mut bans: Vec<crate::offence::Ban> = self
            .ban_reasons
            .iter()
            .filter(|(_, (until, _))| *until > now)
            .map(|(node, (until, reason))| crate::offence::Ban {
                node: *node,
                reason: reason.clone(),
                remaining_secs: until.duration_since(now).as_secs(),
            })
            .collect();
        bans.sort_by_key(|b| b.node);
        bans
    }

    fn penalise(&mut self, node: NodeId, reason: crate::offence::Offence) {
        let count = self.offences.entry(node).or_insert(0);
        *count += 1;
        warn!(peer = %node.short(), offences = *count, kind = reason.kind(), %reason, "peer penalised");
        let peer = peer_id(&node);
        self.swarm
            .behaviour_mut()
            .gossipsub
            .set_application_score(&peer, -(*count as f64) * 10.0);
        if *count >= self.config.max_offences {
            self.banned.insert(
                peer,
                Instant::now() + Duration::from_secs(self.config.ban_secs),
            );
            self.swarm.behaviour_mut().gossipsub.blacklist_peer(&peer);
            let _ = self.swarm.disconnect_peer_id(peer);
            warn!(peer = %node.short(), offences = *count, kind = reason.kind(), %reason, "peer banned");
            let now = Instant::now();
            self.ban_reasons.retain(|_, (until, _)| *until > now);
            self.ban_reasons.insert(
                node,
                (
                    now + Duration::from_secs(self.config.ban_secs),
                    reason.clone(),
                ),
            );
            self.emit(Event::Banned { node, reason });
        }
    }

    fn after_membership_change(&mut self) {
        let Some(m) = &self.membership else { return };
        let events = m.events();
        let removed_self = m.is_removed(&self.me);
        self.gate_kad();
        let Some(m) = &self.membership else { return };
        self.emit(Event::Membership(events));
        if removed_self {
            if let Some(r) = m.removal(&self.me) {
                warn!(by = %NodeId(*r.signer()).short(), reason = %r.value().reason, "this node was removed from the federation: it no longer dials members; ask the founder for a new invitation to return");
            }
            self.emit(Event::RemovedSelf);
        }
        let peers: Vec<PeerId> = self.connected.iter().copied().collect();
        for p in peers {
            self.classify_peer(p);
        }
        if let Some(m) = &self.membership {
            self.adverts.prune(m, now());
        }
    }

    fn on_swarm(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(node = %self.me.short(), %address, "listening");
                self.listening.push(address.clone());
                self.emit(Event::Listening(address));
                self.publish_advert();
            }
            SwarmEvent::ConnectionEstablished {
                peer_id: peer,
                endpoint,
                ..
            } => {
                if let Some(ip) = remote_ip(endpoint.get_remote_address()) {
                    self.remote_ip.insert(peer, ip);
                }
                self.connected.insert(peer);
                if self.banned.contains_key(&peer) {
                    self.refuse(peer, RefusalReason::Banned);
                    return;
                }
                self.classify_peer(peer);
            }
            SwarmEvent::ConnectionClosed {
                peer_id: peer,
                num_established: 0,
                ..
            } => {
                self.connected.remove(&peer);
                self.remote_ip.remove(&peer);
                self.strangers.remove(&peer);
                // A removed node being told stays in `leaving` until the window ends: it often
                // opens a second connection (TCP and QUIC) while the first closes.
                if self.announced.remove(&peer)
                    && let Some(node) = node_id(&peer)
                {
                    self.emit(Event::Disconnected(node));
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => self.on_gossip(propagation_source, message_id, message),
            SwarmEvent::Behaviour(BehaviourEvent::Rr(e)) => self.on_rr(e),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id: peer,
                info,
                ..
            })) if node_id(&peer).is_some_and(|n| self.is_member(&n)) => {
                for a in info.listen_addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer, a);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer, addr) in found {
                    self.swarm.add_peer_address(peer, addr);
                    let _ = self.swarm.dial(peer);
                }
            }
            _ => {}
        }
    }

    fn on_gossip(&mut self, via: PeerId, id: gossipsub::MessageId, message: gossipsub::Message) {
        let from = message.source.and_then(|p| node_id(&p));
        let from_member = from.is_some_and(|f| self.is_member(&f));
        let verdict = match from_member {
            true => match Gossip::decode(&message.data) {
                Ok(Gossip::Advert(advert)) => match self.offer_advert(advert) {
                    Ok(AdvertOutcome::Accepted) => gossipsub::MessageAcceptance::Accept,
                    Ok(_) => gossipsub::MessageAcceptance::Ignore,
                    Err(e) => {
                        debug!(error = %e, "advert refused");
                        gossipsub::MessageAcceptance::Reject
                    }
                },
                Ok(Gossip::Membership(event)) => {
                    let result = self.membership.as_mut().map(|m| m.apply(event));
                    match result {
                        Some(Ok(true)) => {
                            self.after_membership_change();
                            gossipsub::MessageAcceptance::Accept
                        }
                        Some(Ok(false)) => gossipsub::MessageAcceptance::Ignore,
                        _ => gossipsub::MessageAcceptance::Reject,
                    }
                }
                Err(_) => gossipsub::MessageAcceptance::Reject,
            },
            false => gossipsub::MessageAcceptance::Reject,
        };
        if verdict == gossipsub::MessageAcceptance::Reject
            && let Some(n) = node_id(&via)
        {
            self.penalise(n, crate::offence::Offence::BadGossip);
        }
        let _ = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&id, &via, verdict);
    }
}
