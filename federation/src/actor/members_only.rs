//! Kademlia served to members only: a wrapper around the Kademlia behaviour that gives a
//! connection Kademlia's handler only if its peer was a member when it connected. On any other
//! connection the Kademlia protocol is not even offered, so an outsider's FIND_NODE has nowhere
//! to go and learns no member's id or address; and a peer that is not a member never enters the
//! routing table.

use std::collections::{HashMap, HashSet};
use std::ops::{Deref, DerefMut};
use std::task::{Context, Poll};

use either::Either;
use libp2p::core::{Endpoint, transport::PortUse};
use libp2p::kad;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, NotifyHandler, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};
use tracing::debug;

type Kad = kad::Behaviour<kad::store::MemoryStore>;

/// Kademlia, reachable by members only.
pub(super) struct MembersOnly {
    inner: Kad,
    members: HashSet<PeerId>,
    /// Connections that carry Kademlia, per peer.
    open: HashMap<PeerId, Vec<ConnectionId>>,
    /// Connections that do not (their peer was not a member when it connected).
    gated: HashSet<ConnectionId>,
}

impl MembersOnly {
    /// Wraps `inner`; nobody is a member until [`MembersOnly::set_members`].
    pub(super) fn new(inner: Kad) -> Self {
        Self {
            inner,
            members: HashSet::new(),
            open: HashMap::new(),
            gated: HashSet::new(),
        }
    }

    /// Sets who may use Kademlia on connections opened from now on, and drops every other peer
    /// from the routing table.
    pub(super) fn set_members(&mut self, members: HashSet<PeerId>) {
        let gone: Vec<PeerId> = self.members.difference(&members).copied().collect();
        for p in gone {
            self.inner.remove_peer(&p);
        }
        self.members = members;
    }

    fn handler(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        open: impl FnOnce(&mut Kad) -> Result<THandler<Kad>, ConnectionDenied>,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        if self.members.contains(&peer) {
            Ok(Either::Left(open(&mut self.inner)?))
        } else {
            debug!(%peer, "Kademlia not offered: the peer is not a member");
            self.gated.insert(connection);
            Ok(Either::Right(dummy::ConnectionHandler))
        }
    }
}

impl Deref for MembersOnly {
    type Target = Kad;
    fn deref(&self) -> &Kad {
        &self.inner
    }
}

impl DerefMut for MembersOnly {
    fn deref_mut(&mut self) -> &mut Kad {
        &mut self.inner
    }
}

impl NetworkBehaviour for MembersOnly {
    type ConnectionHandler = Either<THandler<Kad>, dummy::ConnectionHandler>;
    type ToSwarm = kad::Event;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.handler(connection_id, peer, |k| {
            k.handle_established_inbound_connection(connection_id, peer, local_addr, remote_addr)
        })
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.handler(connection_id, peer, |k| {
            k.handle_established_outbound_connection(
                connection_id,
                peer,
                addr,
                role_override,
                port_use,
            )
        })
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        // Kademlia counts a peer's other connections to know when it connects first and leaves
        // last; it must count only the connections that carry it, or a peer whose first
        // connection was gated (it was not a member yet) never counts as connected to it.
        match event {
            FromSwarm::ConnectionEstablished(mut e) => {
                if self.gated.contains(&e.connection_id) {
                    return;
                }
                let open = self.open.entry(e.peer_id).or_default();
                e.other_established = open.len();
                open.push(e.connection_id);
                self.inner
                    .on_swarm_event(FromSwarm::ConnectionEstablished(e));
            }
            FromSwarm::ConnectionClosed(mut e) => {
                if self.gated.remove(&e.connection_id) {
                    return;
                }
                let remaining = match self.open.get_mut(&e.peer_id) {
                    Some(c) => {
                        c.retain(|id| *id != e.connection_id);
                        let n = c.len();
                        if n == 0 {
                            self.open.remove(&e.peer_id);
                        }
                        n
                    }
                    None => 0,
                };
                e.remaining_established = remaining;
                self.inner.on_swarm_event(FromSwarm::ConnectionClosed(e));
            }
            FromSwarm::AddressChange(e) if self.gated.contains(&e.connection_id) => {}
            event => self.inner.on_swarm_event(event),
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {
            Either::Left(e) => self.inner.on_connection_handler_event(peer, connection, e),
            Either::Right(never) => match never {},
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<kad::Event, THandlerInEvent<Self>>> {
        loop {
            let event = match self.inner.poll(cx) {
                Poll::Ready(e) => e,
                Poll::Pending => return Poll::Pending,
            };
            // "Any connection" must mean one that carries Kademlia.
            if let ToSwarm::NotifyHandler {
                peer_id,
                handler: NotifyHandler::Any,
                event,
            } = event
            {
                match self.open.get(&peer_id).and_then(|c| c.first()) {
                    Some(c) => {
                        return Poll::Ready(ToSwarm::NotifyHandler {
                            peer_id,
                            handler: NotifyHandler::One(*c),
                            event: Either::Left(event),
                        });
                    }
                    None => {
                        debug!(peer = %peer_id, "Kademlia message dropped: no connection carries it");
                        continue;
                    }
                }
            }
            return Poll::Ready(event.map_in(Either::Left));
        }
    }
}
