//! Peer exchange (BEP 11, `ut_pex`): telling connected peers whom else we are connected to,
//! and taking the peers they tell us about as connection candidates.
//!
//! **Sending.** Each PEX-capable peer gets its first message [`PEX_FIRST_DELAY`] after its
//! extension handshake, then one every [`PEX_INTERVAL`] at most: the addresses connected since
//! the last message to it (at most [`PEX_ADDED_MAX`]) and those gone since (at most
//! [`PEX_DROPPED_MAX`]); what did not fit goes in the next one. We remember per peer what we
//! told it, so a diff is exact even when messages are truncated. An outgoing peer is listed
//! at the address we reached (flag "reachable"); an incoming one at its IP with the listen
//! port from its extension handshake, or not at all without one.
//!
//! **Receiving.** At most one message per [`PEX_RECEIVE_INTERVAL_MIN`] per peer is used (the
//! rest are dropped), and at most [`PEX_RECEIVED_ADDED_MAX`] of its added peers; addresses
//! of peers we are connected to are skipped, the candidate list deduplicates the rest.
//!
//! Never for a private torrent (BEP 27), nor when `TorrentConfig::pex` is off.

use std::collections::BTreeSet;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::Duration;

use bitswarm_wire::{Message, PexFlags, PexMessage};

use crate::torrent::Torrent;

/// Time between two PEX messages to one peer.
pub const PEX_INTERVAL: Duration = Duration::from_secs(60);
/// Delay from a peer's extension handshake to our first PEX message to it.
pub const PEX_FIRST_DELAY: Duration = Duration::from_secs(3);
/// Most added peers in one message we send.
pub const PEX_ADDED_MAX: usize = 50;
/// Most dropped peers in one message we send.
pub const PEX_DROPPED_MAX: usize = 50;
/// Most added peers taken from one message we receive.
pub const PEX_RECEIVED_ADDED_MAX: usize = 50;
/// Messages from one peer closer together than this are dropped (BEP 11 asks for one a
/// minute; a little slack for timer jitter).
pub const PEX_RECEIVE_INTERVAL_MIN: Duration = Duration::from_secs(45);

impl Torrent {
    /// Sends every PEX-capable peer whose turn it is the changes since its last message.
    pub(crate) fn pex_tick(&mut self) {
        if self.extensions.private || !self.config.pex {
            return;
        }
        let now = self.now;
        let due: Vec<u32> = self
            .extensions
            .peers
            .iter()
            .filter(|(_, s)| s.ut_pex.is_some() && s.pex_due.is_some_and(|d| d <= now))
            .map(|(slot, _)| *slot)
            .collect();
        if due.is_empty() {
            return;
        }
        let connected = self.pex_connected();
        for slot in due {
            self.send_pex(slot, &connected);
        }
    }

    /// A PEX message from a peer.
    pub(crate) fn on_pex(&mut self, slot: u32, message: &PexMessage) {
        let now = self.now;
        if self.extensions.private || !self.config.pex {
            return;
        }
        let Some(state) = self.extensions.peers.get_mut(&slot) else {
            return;
        };
        if state
            .pex_received
            .is_some_and(|t| now.saturating_duration_since(t) < PEX_RECEIVE_INTERVAL_MIN)
        {
            return;
        }
        state.pex_received = Some(now);
        let connected: BTreeSet<SocketAddr> = self
            .pex_connected()
            .into_iter()
            .map(|(addr, _)| addr)
            .chain(self.peers.iter().flatten().map(|p| p.info.addr))
            .collect();
        let added: Vec<SocketAddr> = message
            .added
            .iter()
            .map(|(a, _)| SocketAddr::V4(*a))
            .chain(message.added6.iter().map(|(a, _)| SocketAddr::V6(*a)))
            .filter(|a| a.port() != 0 && !connected.contains(a))
            .take(PEX_RECEIVED_ADDED_MAX)
            .collect();
        if !added.is_empty() {
            self.add_peer_candidates(now, added);
        }
    }

    /// Every connected peer we can tell others about: its address and flags, by slot.
    fn pex_connected(&self) -> Vec<(SocketAddr, PexFlags)> {
        let mut out = Vec::new();
        for (slot, peer) in self.peers.iter().enumerate() {
            let Some(peer) = peer else {
                continue;
            };
            let state = self.extensions.peers.get(&(slot as u32));
            let addr = if peer.info.outgoing {
                Some(peer.info.addr)
            } else {
                state
                    .and_then(|s| s.listen_port)
                    .map(|port| SocketAddr::new(peer.info.addr.ip(), port))
            };
            let Some(addr) = addr else {
                continue;
            };
            let mut flags = 0;
            if peer.info.outgoing {
                flags |= PexFlags::REACHABLE;
            }
            if peer.seed || peer.upload_only {
                flags |= PexFlags::SEED;
            }
            out.push((addr, PexFlags(flags)));
        }
        out
    }

    fn send_pex(&mut self, slot: u32, connected: &[(SocketAddr, PexFlags)]) {
        let now = self.now;
        let own = self.pex_address_of(slot);
        let Some(state) = self.extensions.peers.get_mut(&slot) else {
            return;
        };
        let Some(id) = state.ut_pex else {
            return;
        };
        state.pex_due = Some(now + crate::pex::PEX_INTERVAL);
        let mut message = PexMessage::default();
        let current: BTreeSet<SocketAddr> = connected
            .iter()
            .map(|(a, _)| *a)
            .filter(|a| Some(*a) != own)
            .collect();
        let mut added = 0;
        for (addr, flags) in connected {
            if added == PEX_ADDED_MAX {
                break;
            }
            if Some(*addr) == own || state.pex_told.contains(addr) {
                continue;
            }
            state.pex_told.insert(*addr);
            added += 1;
            match addr {
                SocketAddr::V4(a) => message.added.push((*a, *flags)),
                SocketAddr::V6(a) => message.added6.push((*a, *flags)),
            }
        }
        let gone: Vec<SocketAddr> = state
            .pex_told
            .iter()
            .filter(|a| !current.contains(a))
            .take(PEX_DROPPED_MAX)
            .copied()
            .collect();
        for addr in gone {
            state.pex_told.remove(&addr);
            push_dropped(&mut message, addr);
        }
        if !message.is_empty() {
            let payload = message.encode();
            self.send(slot, Message::Extended { id, payload });
        }
    }

    /// The address others would know `slot` by (so it is not told about itself).
    fn pex_address_of(&self, slot: u32) -> Option<SocketAddr> {
        let peer = self.peer(slot)?;
        if peer.info.outgoing {
            return Some(peer.info.addr);
        }
        let port = self.extensions.peers.get(&slot)?.listen_port?;
        Some(SocketAddr::new(peer.info.addr.ip(), port))
    }
}

fn push_dropped(message: &mut PexMessage, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(a) => message.dropped.push(SocketAddrV4::new(*a.ip(), a.port())),
        SocketAddr::V6(a) => message
            .dropped6
            .push(SocketAddrV6::new(*a.ip(), a.port(), 0, 0)),
    }
}
