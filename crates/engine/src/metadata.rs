//! Fetching a torrent's info dictionary from peers for a magnet link (BEP 9, `ut_metadata`):
//! [`MetadataFetch`], a sans-IO state machine for one info-hash.
//!
//! The runtime feeds it connections (`peer_connected`), their messages and disconnects, and
//! the clock; it answers with [`FetchAction`]s: messages to send (our extension handshake,
//! `request`s), `Verify` once every piece is in, disconnects and bans. It asks for 16 KiB
//! pieces from several peers at once (each round gives every eligible peer one more piece, up
//! to [`METADATA_PEER_IN_FLIGHT_MAX`]), hands a piece that timed out or was rejected to
//! another peer, and backs off from a peer that rejected or stalled. It never hashes: the
//! caller checks SHA-1(bytes) against the info-hash and calls [`MetadataFetch::verified`]. On
//! a mismatch (smart ban, as for pieces): the sole sender of the bad bytes is banned; when
//! several peers sent pieces, each gets a strike, the failed pieces are kept, and the next
//! attempt is fetched from **one** peer (the least struck) — if that fails too, that peer
//! alone sent it and is banned; when it passes, every peer whose piece of the failed attempt
//! differs from the good bytes is banned. The size is chosen again before each new attempt.
//!
//! **Sizes.** Peers announce `metadata_size` in their extension handshake. The size fetched is
//! the one most connected, unstruck peers announce (the first one seen wins ties); only peers
//! that announced it, or announced none, are asked; data whose `total_size` differs is
//! dropped. A size above [`METADATA_SIZE_MAX`] is ignored.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bitswarm_wire::extended::{METADATA_PIECE_LEN, UT_METADATA};
use bitswarm_wire::{ExtendedHandshake, Message, MetadataMessage};
use bytes::{Bytes, BytesMut};

use crate::peer::{PeerInfo, PeerKey};
use crate::UT_METADATA_ID;

/// Largest info dictionary fetched (libtorrent's default limit is 30 MiB; 8 MiB holds 400,000
/// piece hashes).
pub const METADATA_SIZE_MAX: u64 = 8 * 1024 * 1024;
/// Requests outstanding per peer.
pub const METADATA_PEER_IN_FLIGHT_MAX: usize = 4;
/// A request unanswered this long goes to another peer.
pub const METADATA_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// A peer that rejected or let a request time out is not asked again for this long.
pub const METADATA_PEER_BACKOFF: Duration = Duration::from_secs(2);
/// Data messages for pieces we never asked a peer for, before it is disconnected.
pub const METADATA_UNREQUESTED_MAX: u32 = 16;
/// Connections one fetch takes; more are refused.
pub const METADATA_PEERS_MAX: usize = 64;
/// Rejects, timeouts and answers of another size from a peer (since its last good piece)
/// after which its announced size no longer counts in the vote.
pub const METADATA_PEER_FAILURES_MAX: u32 = 2;

/// What the runtime must do for a [`MetadataFetch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchAction {
    /// Send `message` to `peer`.
    Send {
        /// The connection.
        peer: PeerKey,
        /// The message.
        message: Message,
    },
    /// Every piece is in: check SHA-1(`metadata`) against the info-hash, then call
    /// [`MetadataFetch::verified`].
    Verify {
        /// The assembled info dictionary.
        metadata: Bytes,
    },
    /// Close the connection (the fetch has forgotten it already).
    Disconnect {
        /// The connection.
        peer: PeerKey,
        /// Why.
        reason: FetchDisconnectReason,
    },
    /// Never connect to this address again for this torrent.
    Ban {
        /// The address.
        addr: IpAddr,
    },
}

/// Why a fetch closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchDisconnectReason {
    /// The peer does not speak the extension protocol (BEP 10).
    NoExtensionProtocol,
    /// Its extension handshake has no `ut_metadata`, or is not a dictionary.
    NoMetadataExtension,
    /// Its address is banned.
    Banned,
    /// It sent too many pieces we did not ask for.
    UnrequestedData,
    /// [`METADATA_PEERS_MAX`] peers are connected already.
    TooManyPeers,
    /// A connection with this key is already open.
    DuplicateKey,
}

/// Progress of a fetch, for display and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchStats {
    /// The size being fetched, once a peer announced one.
    pub size: Option<u64>,
    /// Pieces received of the current attempt.
    pub pieces_have: usize,
    /// Pieces of the current size.
    pub piece_count: usize,
    /// Connected peers.
    pub peers: usize,
    /// Connected peers that may be asked (they support `ut_metadata`).
    pub metadata_peers: usize,
    /// Attempts whose bytes did not hash to the info-hash.
    pub hash_failures: u32,
    /// Banned addresses.
    pub banned: usize,
}

#[derive(Debug, Clone)]
enum Piece {
    Missing,
    Requested { peer: PeerKey, at: Instant },
    Have { data: Bytes, from: IpAddr },
}

#[derive(Debug)]
struct FetchPeer {
    addr: IpAddr,
    /// Its id for `ut_metadata`, once its extension handshake said so.
    ut_metadata: Option<u8>,
    size: Option<u64>,
    in_flight: usize,
    /// Pieces we asked it for in this attempt (late answers are still taken).
    asked: BTreeSet<u32>,
    not_before: Instant,
    unrequested: u32,
    /// Rejects, timeouts and off-size answers since its last good piece.
    failures: u32,
}

/// Fetches one torrent's info dictionary from its peers. Sans-IO: no sockets, no clock, no
/// hashing.
#[derive(Debug)]
pub struct MetadataFetch {
    handshake: ExtendedHandshake,
    peers: BTreeMap<PeerKey, FetchPeer>,
    size: Option<u64>,
    pieces: Vec<Piece>,
    received: usize,
    verifying: bool,
    done: bool,
    hash_failures: u32,
    strikes: BTreeMap<IpAddr, u32>,
    banned: BTreeSet<IpAddr>,
    actions: VecDeque<FetchAction>,
    /// The pieces of the first failed attempt with shared senders, and their senders.
    suspect: Option<Vec<Option<(Bytes, IpAddr)>>>,
    /// After a shared failure, attempts come from one peer only: this one, once chosen.
    exclusive: Option<PeerKey>,
    single_source: bool,
}

impl MetadataFetch {
    /// A fetch that introduces itself with `client_name` and `listen_port` in its extension
    /// handshakes.
    #[must_use]
    pub fn new(client_name: &str, listen_port: Option<u16>) -> Self {
        let handshake = ExtendedHandshake {
            extensions: [(UT_METADATA.to_owned(), UT_METADATA_ID)].into(),
            port: listen_port,
            client: Some(client_name.to_owned()),
            ..ExtendedHandshake::default()
        };
        Self {
            handshake,
            peers: BTreeMap::new(),
            size: None,
            pieces: Vec::new(),
            received: 0,
            verifying: false,
            done: false,
            hash_failures: 0,
            strikes: BTreeMap::new(),
            banned: BTreeSet::new(),
            actions: VecDeque::new(),
            suspect: None,
            exclusive: None,
            single_source: false,
        }
    }

    /// A connection finished its BitTorrent handshake: we send have-none (fast extension) and
    /// our extension handshake, and wait for the peer's.
    pub fn peer_connected(&mut self, now: Instant, key: PeerKey, info: &PeerInfo) {
        let refuse = if self.peers.contains_key(&key) {
            self.remove(now, key);
            Some(FetchDisconnectReason::DuplicateKey)
        } else if self.banned.contains(&info.addr.ip()) {
            Some(FetchDisconnectReason::Banned)
        } else if !info.extensions {
            Some(FetchDisconnectReason::NoExtensionProtocol)
        } else if self.peers.len() >= METADATA_PEERS_MAX {
            Some(FetchDisconnectReason::TooManyPeers)
        } else {
            None
        };
        if let Some(reason) = refuse {
            self.actions
                .push_back(FetchAction::Disconnect { peer: key, reason });
            return;
        }
        let peer = FetchPeer {
            addr: info.addr.ip(),
            ut_metadata: None,
            size: None,
            in_flight: 0,
            asked: BTreeSet::new(),
            not_before: now,
            unrequested: 0,
            failures: 0,
        };
        self.peers.insert(key, peer);
        if info.fast {
            self.send(key, Message::HaveNone);
        }
        let handshake = self.handshake.to_message();
        self.send(key, handshake);
    }

    /// A message from a connected peer; everything but the extension protocol is ignored.
    pub fn peer_message(&mut self, now: Instant, key: PeerKey, message: &Message) {
        if !self.peers.contains_key(&key) {
            return;
        }
        match message {
            Message::Extended { id: 0, payload } => self.on_handshake(now, key, payload),
            Message::Extended {
                id: UT_METADATA_ID,
                payload,
            } => match MetadataMessage::parse(payload) {
                Ok(MetadataMessage::Data {
                    piece,
                    total_size,
                    data,
                }) => self.on_data(now, key, piece, total_size, data),
                Ok(MetadataMessage::Reject { piece }) => self.on_reject(now, key, piece),
                Ok(MetadataMessage::Request { piece }) => self.refuse_request(key, piece),
                Ok(MetadataMessage::Unknown { .. }) | Err(_) => {}
            },
            _ => {}
        }
    }

    /// The connection closed; its requests go to other peers.
    pub fn peer_disconnected(&mut self, now: Instant, key: PeerKey) {
        if self.peers.contains_key(&key) {
            self.remove(now, key);
            self.choose_size(false);
            self.fill(now);
        }
    }

    /// The caller's verdict on the bytes of the last [`FetchAction::Verify`]: `ok` when their
    /// SHA-1 is the info-hash. On a mismatch the bytes are discarded, their senders blamed,
    /// and the fetch starts over.
    pub fn verified(&mut self, now: Instant, ok: bool) {
        if !self.verifying {
            return;
        }
        self.verifying = false;
        if ok {
            self.done = true;
            self.convict(now);
            return;
        }
        self.hash_failures += 1;
        let held: Vec<Option<(Bytes, IpAddr)>> = self
            .pieces
            .iter()
            .map(|p| match p {
                Piece::Have { data, from } => Some((data.clone(), *from)),
                _ => None,
            })
            .collect();
        let senders: BTreeSet<IpAddr> = held.iter().flatten().map(|(_, from)| *from).collect();
        if senders.len() == 1 {
            if let Some(&addr) = senders.first() {
                self.ban(now, addr);
            }
        } else {
            for addr in &senders {
                *self.strikes.entry(*addr).or_insert(0) += 1;
            }
            if self.suspect.is_none() {
                self.suspect = Some(held);
            }
        }
        self.single_source = true;
        self.exclusive = None;
        self.choose_size(true);
        self.fill(now);
    }

    /// Re-requests what timed out and asks peers whose back-off ended.
    pub fn handle_timeout(&mut self, now: Instant) {
        for index in 0..self.pieces.len() {
            let Some(Piece::Requested { peer, at }) = self.pieces.get(index) else {
                continue;
            };
            if now.saturating_duration_since(*at) < METADATA_REQUEST_TIMEOUT {
                continue;
            }
            let peer = *peer;
            self.release(index, peer, now);
            if let Some(p) = self.peers.get_mut(&peer) {
                p.failures += 1;
            }
        }
        self.choose_size(false);
        self.fill(now);
    }

    /// When [`MetadataFetch::handle_timeout`] should be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.done || self.verifying {
            return None;
        }
        let requests = self.pieces.iter().filter_map(|p| match p {
            Piece::Requested { at, .. } => Some(*at + METADATA_REQUEST_TIMEOUT),
            _ => None,
        });
        let missing = self.pieces.iter().any(|p| matches!(p, Piece::Missing));
        let backoffs = self
            .peers
            .values()
            .filter(|p| missing && p.ut_metadata.is_some())
            .map(|p| p.not_before);
        requests.chain(backoffs).min()
    }

    /// The next thing the runtime must do.
    pub fn poll_action(&mut self) -> Option<FetchAction> {
        self.actions.pop_front()
    }

    /// The metadata was verified: the fetch is over.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether `addr` is banned.
    #[must_use]
    pub fn is_banned(&self, addr: IpAddr) -> bool {
        self.banned.contains(&addr)
    }

    /// Progress counters.
    #[must_use]
    pub fn stats(&self) -> FetchStats {
        FetchStats {
            size: self.size,
            pieces_have: self.received,
            piece_count: self.pieces.len(),
            peers: self.peers.len(),
            metadata_peers: self
                .peers
                .values()
                .filter(|p| p.ut_metadata.is_some())
                .count(),
            hash_failures: self.hash_failures,
            banned: self.banned.len(),
        }
    }

    /// Checks the internal bookkeeping (for tests): each peer's in-flight count matches the
    /// pieces requested from it and stays within bounds; requested pieces name connected
    /// peers; the received count matches.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut counts: BTreeMap<PeerKey, usize> = BTreeMap::new();
        for piece in &self.pieces {
            if let Piece::Requested { peer, .. } = piece {
                if !self.peers.contains_key(peer) {
                    return Err(format!("piece requested from unknown peer {peer:?}"));
                }
                *counts.entry(*peer).or_insert(0) += 1;
            }
        }
        for (key, peer) in &self.peers {
            let n = counts.get(key).copied().unwrap_or(0);
            if n != peer.in_flight || n > METADATA_PEER_IN_FLIGHT_MAX {
                return Err(format!(
                    "{key:?}: in_flight {} but {n} requested",
                    peer.in_flight
                ));
            }
            if self.banned.contains(&peer.addr) {
                return Err(format!("{key:?} is banned but connected"));
            }
        }
        let have = self
            .pieces
            .iter()
            .filter(|p| matches!(p, Piece::Have { .. }))
            .count();
        if have != self.received {
            return Err(format!("received {} but {have} pieces held", self.received));
        }
        Ok(())
    }

    // ----- private -----

    /// The metadata passed: bans every sender of a piece of the failed attempt that differs
    /// from the good bytes.
    fn convict(&mut self, now: Instant) {
        let Some(suspect) = self.suspect.take() else {
            return;
        };
        let mut guilty = BTreeSet::new();
        for (good, bad) in self.pieces.iter().zip(&suspect) {
            if let (Piece::Have { data, .. }, Some((old, from))) = (good, bad) {
                if data != old {
                    guilty.insert(*from);
                }
            }
        }
        for addr in guilty {
            self.ban(now, addr);
        }
    }

    /// In single-source mode, the one peer that may be asked: the current one while it has
    /// not failed, else the eligible peer with the fewest strikes and failures together.
    fn choose_exclusive(&mut self, now: Instant) -> Option<PeerKey> {
        if let Some(key) = self.exclusive {
            match self.peers.get(&key) {
                Some(p) if p.failures == 0 => return Some(key),
                _ => {}
            }
        }
        let size = self.size;
        let choice = self
            .peers
            .iter()
            .filter(|(_, p)| {
                p.ut_metadata.is_some()
                    && (p.size.is_none() || p.size == size)
                    && p.not_before <= now
            })
            .min_by_key(|(k, p)| {
                let strikes = self.strikes.get(&p.addr).copied().unwrap_or(0);
                (strikes.saturating_add(p.failures), **k)
            })
            .map(|(k, _)| *k);
        self.exclusive = choice;
        choice
    }

    fn send(&mut self, peer: PeerKey, message: Message) {
        self.actions.push_back(FetchAction::Send { peer, message });
    }

    fn on_handshake(&mut self, now: Instant, key: PeerKey, payload: &Bytes) {
        let parsed = ExtendedHandshake::parse(payload).ok();
        let id = parsed.as_ref().and_then(|h| h.extension_id(UT_METADATA));
        let Some((handshake, id)) = parsed.zip(id) else {
            self.remove(now, key);
            let reason = FetchDisconnectReason::NoMetadataExtension;
            self.actions
                .push_back(FetchAction::Disconnect { peer: key, reason });
            self.fill(now);
            return;
        };
        if let Some(peer) = self.peers.get_mut(&key) {
            peer.ut_metadata = Some(id);
            peer.size = handshake
                .metadata_size
                .filter(|&n| n > 0 && n <= METADATA_SIZE_MAX);
        }
        self.choose_size(false);
        self.fill(now);
    }

    fn on_data(&mut self, now: Instant, key: PeerKey, piece: u32, total_size: u64, data: Bytes) {
        if self.done || self.verifying {
            return;
        }
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if Some(total_size) != self.size {
            // It has another size than it announced (or than we fetch): believe the data.
            if peer.asked.contains(&piece) {
                peer.failures += 1;
                peer.size = Some(total_size).filter(|&n| n <= METADATA_SIZE_MAX);
                self.release_by(now, key, piece);
                self.choose_size(false);
                self.fill(now);
            }
            return;
        }
        peer.failures = 0;
        if !peer.asked.contains(&piece) {
            peer.unrequested += 1;
            if peer.unrequested > METADATA_UNREQUESTED_MAX {
                self.remove(now, key);
                let reason = FetchDisconnectReason::UnrequestedData;
                self.actions
                    .push_back(FetchAction::Disconnect { peer: key, reason });
                self.fill(now);
            }
            return;
        }
        let from = peer.addr;
        let index = piece as usize;
        match self.pieces.get(index) {
            None | Some(Piece::Have { .. }) => return,
            Some(Piece::Requested { peer: holder, .. }) => {
                let holder = *holder;
                if let Some(p) = self.peers.get_mut(&holder) {
                    p.in_flight = p.in_flight.saturating_sub(1);
                }
            }
            Some(Piece::Missing) => {}
        }
        if let Some(slot) = self.pieces.get_mut(index) {
            *slot = Piece::Have { data, from };
            self.received += 1;
        }
        if self.received == self.pieces.len() {
            self.assemble();
        } else {
            self.fill(now);
        }
    }

    fn on_reject(&mut self, now: Instant, key: PeerKey, piece: u32) {
        self.release_by(now, key, piece);
        self.choose_size(false);
        self.fill(now);
    }

    /// Hands back `piece` if `key` holds its request, counting a failure against it.
    fn release_by(&mut self, now: Instant, key: PeerKey, piece: u32) {
        let index = piece as usize;
        if matches!(self.pieces.get(index), Some(Piece::Requested { peer, .. }) if *peer == key) {
            self.release(index, key, now);
            if let Some(peer) = self.peers.get_mut(&key) {
                peer.failures += 1;
            }
        }
    }

    /// We have no metadata to give while fetching it.
    fn refuse_request(&mut self, key: PeerKey, piece: u32) {
        let Some(id) = self.peers.get(&key).and_then(|p| p.ut_metadata) else {
            return;
        };
        let message = MetadataMessage::Reject { piece }.to_message(id);
        self.send(key, message);
    }

    /// Hands a requested piece back and makes its peer wait before it is asked again.
    fn release(&mut self, index: usize, key: PeerKey, now: Instant) {
        if let Some(slot) = self.pieces.get_mut(index) {
            *slot = Piece::Missing;
        }
        if let Some(peer) = self.peers.get_mut(&key) {
            peer.in_flight = peer.in_flight.saturating_sub(1);
            peer.not_before = now + METADATA_PEER_BACKOFF;
        }
    }

    fn remove(&mut self, now: Instant, key: PeerKey) {
        for index in 0..self.pieces.len() {
            if matches!(self.pieces.get(index), Some(Piece::Requested { peer, .. }) if *peer == key)
            {
                self.release(index, key, now);
            }
        }
        self.peers.remove(&key);
    }

    fn ban(&mut self, now: Instant, addr: IpAddr) {
        if !self.banned.insert(addr) {
            return;
        }
        self.actions.push_back(FetchAction::Ban { addr });
        let keys: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| p.addr == addr)
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            self.remove(now, key);
            let reason = FetchDisconnectReason::Banned;
            self.actions
                .push_back(FetchAction::Disconnect { peer: key, reason });
        }
    }

    /// Picks the size most unstruck peers announce (peers failing to deliver it do not
    /// count). Without `restart`, the current size is kept while any counted peer announces
    /// it (pieces already in stay); with it, every piece is dropped and the vote decides
    /// afresh.
    fn choose_size(&mut self, restart: bool) {
        if self.done || self.verifying {
            return;
        }
        let mut votes: BTreeMap<u64, usize> = BTreeMap::new();
        for peer in self.peers.values() {
            let failing = peer.failures >= METADATA_PEER_FAILURES_MAX;
            if let Some(size) = peer.size.filter(|_| peer.ut_metadata.is_some() && !failing) {
                let weight = usize::from(!self.strikes.contains_key(&peer.addr));
                *votes.entry(size).or_insert(0) += weight * 2 + 1;
            }
        }
        let current_votes = self.size.and_then(|s| votes.get(&s)).copied();
        if !restart && current_votes.is_some() {
            return;
        }
        let best_count = votes.values().copied().max();
        let best = match (self.size, current_votes, best_count) {
            (Some(s), Some(v), Some(b)) if v == b => Some(s),
            (_, _, Some(b)) => votes.iter().find(|(_, &v)| v == b).map(|(&s, _)| s),
            _ => None,
        };
        if best.is_none() && !restart {
            return; // nobody announces a size: keep what we have until someone does
        }
        self.reset(best);
    }

    /// Starts a fresh attempt at `size` (all pieces missing).
    fn reset(&mut self, size: Option<u64>) {
        for peer in self.peers.values_mut() {
            peer.in_flight = 0;
            peer.asked.clear();
        }
        self.size = size;
        self.received = 0;
        let count = size.map_or(0, |s| s.div_ceil(METADATA_PIECE_LEN as u64) as usize);
        self.pieces = vec![Piece::Missing; count];
    }

    /// Gives every eligible peer one more request per round until none can take more.
    fn fill(&mut self, now: Instant) {
        if self.done || self.verifying || self.size.is_none() {
            return;
        }
        let size = self.size;
        let exclusive = if self.single_source {
            match self.choose_exclusive(now) {
                Some(key) => Some(key),
                None => return,
            }
        } else {
            None
        };
        loop {
            let mut assigned = false;
            // Peers that delivered go first; among equals, in key order.
            let keys: Vec<PeerKey> = if let Some(key) = exclusive {
                vec![key]
            } else {
                let mut keys: Vec<(u32, PeerKey)> =
                    self.peers.iter().map(|(k, p)| (p.failures, *k)).collect();
                keys.sort_unstable();
                keys.into_iter().map(|(_, k)| k).collect()
            };
            for key in keys {
                let Some(peer) = self.peers.get(&key) else {
                    continue;
                };
                let eligible = peer.ut_metadata.is_some()
                    && (peer.size.is_none() || peer.size == size)
                    && peer.in_flight < METADATA_PEER_IN_FLIGHT_MAX
                    && peer.not_before <= now;
                if !eligible {
                    continue;
                }
                let Some(index) = self.next_piece_for(peer) else {
                    return;
                };
                self.request(now, key, index);
                assigned = true;
            }
            if !assigned {
                return;
            }
        }
    }

    /// A missing piece, preferring one this peer was not asked for before.
    fn next_piece_for(&self, peer: &FetchPeer) -> Option<u32> {
        let mut fallback = None;
        for (index, piece) in self.pieces.iter().enumerate() {
            if matches!(piece, Piece::Missing) {
                let index = u32::try_from(index).ok()?;
                if !peer.asked.contains(&index) {
                    return Some(index);
                }
                fallback = fallback.or(Some(index));
            }
        }
        fallback
    }

    fn request(&mut self, now: Instant, key: PeerKey, index: u32) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let Some(id) = peer.ut_metadata else {
            return;
        };
        peer.in_flight += 1;
        peer.asked.insert(index);
        if let Some(slot) = self.pieces.get_mut(index as usize) {
            *slot = Piece::Requested { peer: key, at: now };
        }
        let message = MetadataMessage::Request { piece: index }.to_message(id);
        self.send(key, message);
    }

    fn assemble(&mut self) {
        let mut out = BytesMut::with_capacity(self.size.unwrap_or(0) as usize);
        for piece in &self.pieces {
            if let Piece::Have { data, .. } = piece {
                out.extend_from_slice(data);
            }
        }
        self.verifying = true;
        for peer in self.peers.values_mut() {
            peer.in_flight = 0;
        }
        self.actions.push_back(FetchAction::Verify {
            metadata: out.freeze(),
        });
    }
}

#[cfg(test)]
#[path = "metadata_tests.rs"]
mod tests;
