//! The [`Torrent`] state machine: its fields, construction, the public entry points the runtime
//! calls, and the small helpers every other module uses (peer slab access, sending, clock).
//! The behaviour behind each entry point lives in its own module: `messages.rs` (what a peer
//! tells us), `requests.rs` (download pipeline), `upload.rs` (serving), `choker.rs`,
//! `verify.rs` (hash results and smart ban), `candidates.rs` (whom to connect to).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bitswarm_wire::{Bitfield, BlockRef, Message};
use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::action::{Action, DisconnectReason, Event, Verification};
use crate::candidates::Candidates;
use crate::config::TorrentConfig;
use crate::geometry::Geometry;
use crate::peer::{Peer, PeerInfo, PeerKey, PeerStats};
use crate::picker::{Picker, NONE};
use crate::rate::RateMeter;
use crate::smart_ban::SmartBan;

/// How often the periodic work runs: timeouts, snubbing, keep-alives, pipeline re-evaluation,
/// rechoke scheduling (libtorrent's `second_tick`).
pub const TICK_INTERVAL: Duration = Duration::from_secs(1);

/// Torrent-wide counters, for display and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorrentStats {
    /// Pieces in the torrent.
    pub piece_count: u32,
    /// Verified pieces.
    pub pieces_have: u32,
    /// Wanted pieces not yet verified.
    pub pieces_missing: u32,
    /// Every payload byte received from peers: accepted blocks (including pieces that later
    /// failed) and blocks dropped on arrival (unrequested or redundant); `downloaded − wasted`
    /// is what was kept.
    pub downloaded: u64,
    /// Payload bytes sent to peers.
    pub uploaded: u64,
    /// Payload bytes thrown away: unrequested or redundant blocks, failed pieces.
    pub wasted: u64,
    /// Pieces that failed their hash check.
    pub hash_failures: u32,
    /// Connected peers.
    pub peers: usize,
    /// Connected peers that have every piece.
    pub seeds: u32,
    /// Payload bytes per second received (last few seconds).
    pub download_rate: u64,
    /// Payload bytes per second sent (last few seconds).
    pub upload_rate: u64,
    /// Every wanted block is requested or received; duplicates are allowed.
    pub endgame: bool,
    /// Banned addresses.
    pub banned: usize,
    /// Known peer addresses not connected.
    pub candidates: usize,
}

/// The per-torrent core: peers, piece picker, choker. One owner, `&mut self`, no I/O.
pub struct Torrent {
    pub(crate) config: TorrentConfig,
    pub(crate) geometry: Geometry,
    pub(crate) epoch: Instant,
    pub(crate) now: Instant,
    pub(crate) rng: SmallRng,
    pub(crate) have: Bitfield,
    pub(crate) wanted: Bitfield,
    /// Wanted pieces not verified.
    pub(crate) wanted_missing: u32,
    pub(crate) picker: Picker,
    pub(crate) peers: Vec<Option<Peer>>,
    pub(crate) free_peer_slots: Vec<u32>,
    pub(crate) keys: BTreeMap<PeerKey, u32>,
    pub(crate) actions: VecDeque<Action>,
    pub(crate) events: VecDeque<Event>,
    pub(crate) smart_ban: SmartBan,
    pub(crate) candidates: Candidates,
    pub(crate) banned: BTreeSet<IpAddr>,
    /// Peers holding a regular unchoke slot.
    pub(crate) regular_unchoked: usize,
    /// The peer slot holding the optimistic unchoke, or `NONE`.
    pub(crate) optimistic: u32,
    pub(crate) next_tick: Instant,
    pub(crate) next_rechoke: Instant,
    pub(crate) next_optimistic: Instant,
    pub(crate) download: RateMeter,
    pub(crate) upload: RateMeter,
    pub(crate) wasted: u64,
    /// Payload bytes of blocks dropped on arrival (unrequested or redundant), part of `wasted`.
    pub(crate) dropped: u64,
    pub(crate) hash_failures: u32,
    /// Extension protocol state: metadata to serve, per-peer ids, PEX (`extension.rs`).
    pub(crate) extensions: crate::extension::Extensions,
    /// BEP 16 state (`super_seed.rs`); inactive unless configured and complete at start.
    pub(crate) super_seed: crate::super_seed::SuperSeed,
}

impl Torrent {
    /// A torrent of `geometry` whose `have` pieces are verified (from resume data; bits past
    /// the piece count are ignored), with every piece wanted.
    #[must_use]
    pub fn new(
        geometry: Geometry,
        have: Bitfield,
        config: TorrentConfig,
        rng_seed: u64,
        now: Instant,
    ) -> Self {
        let config = config.sanitized();
        let count = geometry.piece_count();
        let own = if have.piece_count() == count {
            have
        } else {
            let mut own = Bitfield::new(count);
            for piece in have.iter_ones().filter(|&p| p < count) {
                let _ = own.set(piece);
            }
            own
        };
        let wanted = Bitfield::full(count);
        let mut rng = SmallRng::seed_from_u64(rng_seed);
        let picker_rng =
            SmallRng::from_rng(&mut rng).unwrap_or_else(|_| SmallRng::seed_from_u64(!rng_seed));
        let picker = Picker::new(geometry, &own, &wanted, picker_rng);
        let super_seed =
            crate::super_seed::SuperSeed::new(config.super_seeding && own.is_complete(), count);
        Self {
            smart_ban: SmartBan::new(config.hash_failures_ban),
            candidates: Candidates::new(config.peer_candidates_max),
            wanted_missing: count - own.count_ones(),
            config,
            geometry,
            epoch: now,
            now,
            rng,
            have: own,
            wanted,
            picker,
            peers: Vec::new(),
            free_peer_slots: Vec::new(),
            keys: BTreeMap::new(),
            actions: VecDeque::new(),
            events: VecDeque::new(),
            banned: BTreeSet::new(),
            regular_unchoked: 0,
            optimistic: NONE,
            next_tick: now + TICK_INTERVAL,
            next_rechoke: now,
            next_optimistic: now,
            download: RateMeter::default(),
            upload: RateMeter::default(),
            wasted: 0,
            dropped: 0,
            hash_failures: 0,
            extensions: crate::extension::Extensions::default(),
            super_seed,
        }
    }

    /// Sets the pieces we want (file selection). Requests for pieces no longer wanted are
    /// cancelled and their partial data dropped.
    pub fn set_wanted(&mut self, wanted: &Bitfield) {
        self.apply_wanted(wanted);
    }

    /// Adds peer addresses (from trackers, DHT, PEX, the command line) to connect to.
    /// Duplicates and banned addresses are ignored; at most `peer_candidates_max` are kept.
    pub fn add_peer_candidates(
        &mut self,
        now: Instant,
        addrs: impl IntoIterator<Item = SocketAddr>,
    ) {
        self.clock(now);
        for addr in addrs {
            if !self.banned.contains(&addr.ip()) {
                self.candidates.add(addr, now);
            }
        }
        self.connect_more();
    }

    /// A connection finished its handshake: we send what we have and our extension handshake.
    /// Of two connections to one peer id (not all zeros), one is closed with
    /// [`DisconnectReason::DuplicatePeer`]: when they run in opposite directions and our own
    /// id is known (`TorrentConfig::own_peer_id`), the one dialled by the side with the lower
    /// peer id stays — both ends pick the same one, so a simultaneous dial never closes both;
    /// otherwise the newer one goes.
    pub fn peer_connected(&mut self, now: Instant, key: PeerKey, info: PeerInfo) {
        self.clock(now);
        let refuse = if let Some(&slot) = self.keys.get(&key) {
            self.remove_peer(slot);
            Some(DisconnectReason::DuplicateKey)
        } else if self.banned.contains(&info.addr.ip()) {
            Some(DisconnectReason::Banned)
        } else if let Some(existing) = self.connected_peer_id(&info.peer_id) {
            if self.keep_new_connection(existing, &info) {
                self.disconnect(existing, DisconnectReason::DuplicatePeer);
                None
            } else {
                Some(DisconnectReason::DuplicatePeer)
            }
        } else if self.keys.len() >= self.config.connections_max {
            Some(DisconnectReason::TooManyPeers)
        } else {
            None
        };
        if info.outgoing {
            self.candidates.connected(info.addr);
            if refuse.is_some() {
                self.candidates.disconnected(info.addr, now);
            }
        }
        if let Some(reason) = refuse {
            self.actions
                .push_back(Action::Disconnect { peer: key, reason });
            return;
        }
        let peer = Peer::new(key, info, self.geometry.piece_count(), now, self.now_ms());
        let slot = self.insert_peer(peer);
        self.send_greeting(slot);
    }

    /// A message from a connected peer. Anything unwelcome ends in a `Disconnect` action,
    /// never a panic.
    pub fn peer_message(&mut self, now: Instant, key: PeerKey, message: Message) {
        self.clock(now);
        let Some(&slot) = self.keys.get(&key) else {
            let reason = DisconnectReason::Protocol(crate::action::ProtocolViolation::UnknownPeer);
            self.actions
                .push_back(Action::Disconnect { peer: key, reason });
            return;
        };
        self.handle_message(slot, message);
    }

    /// The connection closed (for whatever reason). Unknown keys are ignored.
    pub fn peer_disconnected(&mut self, now: Instant, key: PeerKey) {
        self.clock(now);
        if let Some(&slot) = self.keys.get(&key) {
            self.remove_peer(slot);
            self.connect_more();
        }
    }

    /// An outgoing connection we asked for failed.
    pub fn connect_failed(&mut self, now: Instant, addr: SocketAddr) {
        self.clock(now);
        self.candidates
            .failed(addr, now, self.config.connect_attempts_max);
        self.connect_more();
    }

    /// The runtime sent a block it was asked to serve: upload accounting, and the peer's upload
    /// slot is free for the next one.
    pub fn block_sent(&mut self, now: Instant, key: PeerKey, block: BlockRef) {
        self.clock(now);
        if let Some(&slot) = self.keys.get(&key) {
            self.on_block_sent(slot, block);
        } else {
            // The peer left after the block was handed to its socket: it still counts as
            // uploaded (its rate no longer matters).
            let now_ms = self.now_ms();
            self.upload.add(now_ms, u64::from(block.length));
        }
    }

    /// The result of a `VerifyPiece` action.
    pub fn piece_verified(&mut self, now: Instant, piece: u32, result: Verification) {
        self.clock(now);
        self.on_piece_verified(piece, result);
    }

    /// Runs whatever periodic work is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.clock(now);
        if self.now >= self.next_tick {
            self.tick();
            self.next_tick = self.now + TICK_INTERVAL;
        }
    }

    /// When `handle_timeout` should be called next; `None` when there is nothing to wait for
    /// (no peers and no candidates).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.keys.is_empty() || self.candidates.len() > 0).then_some(self.next_tick)
    }

    /// The next thing the runtime must do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next event for display.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The verified pieces.
    #[must_use]
    pub fn have(&self) -> &Bitfield {
        &self.have
    }

    /// The wanted pieces.
    #[must_use]
    pub fn wanted(&self) -> &Bitfield {
        &self.wanted
    }

    /// Every piece is verified.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.have.is_complete()
    }

    /// Every wanted piece is verified (we only upload from now on).
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.wanted_missing == 0
    }

    /// The torrent's geometry.
    #[must_use]
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// The configuration in force (after sanitising).
    #[must_use]
    pub fn config(&self) -> &TorrentConfig {
        &self.config
    }

    /// Torrent-wide counters.
    #[must_use]
    pub fn stats(&self) -> TorrentStats {
        let now_ms = self.now_ms();
        TorrentStats {
            piece_count: self.geometry.piece_count(),
            pieces_have: self.have.count_ones(),
            pieces_missing: self.wanted_missing,
            downloaded: self.download.total() + self.dropped,
            uploaded: self.upload.total(),
            wasted: self.wasted,
            hash_failures: self.hash_failures,
            peers: self.keys.len(),
            seeds: self.picker.seeds,
            download_rate: self.download.rate(now_ms, 5, 0),
            upload_rate: self.upload.rate(now_ms, 5, 0),
            endgame: self.in_endgame(),
            banned: self.banned.len(),
            candidates: self.candidates.len(),
        }
    }

    /// A snapshot of every connected peer.
    pub fn peer_stats(&self) -> impl Iterator<Item = (PeerKey, PeerStats)> + '_ {
        let now_ms = self.now_ms();
        self.peers
            .iter()
            .flatten()
            .map(move |p| (p.key, p.stats(now_ms)))
    }

    /// How many connected peers have `piece` (0 for indices out of range).
    #[must_use]
    pub fn availability(&self, piece: u32) -> u32 {
        if piece < self.geometry.piece_count() {
            self.picker.availability(piece)
        } else {
            0
        }
    }

    /// Whether `addr` is banned.
    #[must_use]
    pub fn is_banned(&self, addr: IpAddr) -> bool {
        self.banned.contains(&addr)
    }

    // ----- helpers shared by the other modules -----

    /// Moves the clock forward (never back: a runtime clock that steps back is ignored).
    pub(crate) fn clock(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    /// Milliseconds since the torrent was created, the rate meters' time base.
    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.now.saturating_duration_since(self.epoch).as_millis())
            .unwrap_or(u64::MAX)
    }

    pub(crate) fn peer(&self, slot: u32) -> Option<&Peer> {
        self.peers.get(slot as usize)?.as_ref()
    }

    pub(crate) fn peer_mut(&mut self, slot: u32) -> Option<&mut Peer> {
        self.peers.get_mut(slot as usize)?.as_mut()
    }

    /// Slots of every connected peer (a snapshot, so the caller may mutate peers meanwhile).
    pub(crate) fn peer_slots(&self) -> Vec<u32> {
        self.peers
            .iter()
            .enumerate()
            .filter(|(_, p)| p.is_some())
            .map(|(i, _)| i as u32)
            .collect()
    }

    pub(crate) fn send(&mut self, slot: u32, message: Message) {
        let now = self.now;
        if let Some(peer) = self.peer_mut(slot) {
            peer.last_sent = now;
            let key = peer.key;
            self.actions.push_back(Action::Send { peer: key, message });
        }
    }

    /// Whether every wanted block is requested or received.
    pub(crate) fn in_endgame(&self) -> bool {
        self.picker.free_blocks == 0 && self.wanted_missing > 0
    }

    /// Closes a connection for `reason` and forgets the peer.
    /// The slot of a connected peer with this peer id (all zeros says nothing: `None`).
    fn connected_peer_id(&self, peer_id: &[u8; 20]) -> Option<u32> {
        if *peer_id == [0; 20] {
            return None;
        }
        self.peers
            .iter()
            .position(|p| p.as_ref().is_some_and(|p| p.info.peer_id == *peer_id))
            .and_then(|i| u32::try_from(i).ok())
    }

    /// Whether a new connection `info` to the peer already connected in `existing` replaces
    /// it: only when they run in opposite directions and the new one was dialled by the side
    /// with the lower peer id (the rule both ends apply, so they keep the same connection).
    fn keep_new_connection(&self, existing: u32, info: &PeerInfo) -> bool {
        let own = self.config.own_peer_id;
        if own == [0; 20] || own == info.peer_id {
            return false;
        }
        let Some(old) = self.peer(existing) else {
            return false;
        };
        let we_are_lower = own < info.peer_id;
        old.info.outgoing != info.outgoing && info.outgoing == we_are_lower
    }

    pub(crate) fn disconnect(&mut self, slot: u32, reason: DisconnectReason) {
        // The `Disconnect` goes out before `remove_peer` may hand the peer's unchoke slot to
        // another: seen from the wire, never more than the slots unchoked (sim finding 2).
        if let Some(key) = self.peer(slot).map(|p| p.key) {
            self.actions
                .push_back(Action::Disconnect { peer: key, reason });
            self.remove_peer(slot);
        }
    }

    fn insert_peer(&mut self, peer: Peer) -> u32 {
        let key = peer.key;
        let slot = if let Some(slot) = self.free_peer_slots.pop() {
            if let Some(s) = self.peers.get_mut(slot as usize) {
                *s = Some(peer);
            }
            slot
        } else {
            self.peers.push(Some(peer));
            (self.peers.len() - 1) as u32
        };
        self.keys.insert(key, slot);
        slot
    }

    /// Forgets a peer: its requests go back to the picker, its pieces leave the availability
    /// counts, its unchoke slot is given to someone else.
    pub(crate) fn remove_peer(&mut self, slot: u32) {
        self.drop_all_requests(slot, false);
        let Some(peer) = self.peers.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        self.keys.remove(&peer.key);
        self.extensions.peers.remove(&slot);
        self.free_peer_slots.push(slot);
        if peer.current != NONE
            && self
                .picker
                .partial(peer.current)
                .is_some_and(|p| p.owner == slot)
        {
            self.picker.set_owner(peer.current, NONE);
        }
        if peer.seed {
            self.picker.seeds -= 1;
        } else {
            for piece in peer.has.iter_ones() {
                self.picker.dec_availability(piece);
            }
        }
        if peer.info.outgoing {
            self.candidates.disconnected(peer.info.addr, self.now);
        }
        if !peer.am_choking {
            if peer.optimistic {
                self.optimistic = NONE;
            } else {
                self.regular_unchoked -= 1;
            }
            self.fill_unchoke_slots();
        }
        self.super_seed_peer_left(slot);
    }

    /// Our bitfield (or have-all / have-none) and extension handshake.
    fn send_greeting(&mut self, slot: u32) {
        let Some(info) = self.peer(slot).map(|p| p.info.clone()) else {
            return;
        };
        let bitfield = if self.super_seed_greeting(slot) {
            None
        } else if info.fast && self.have.is_complete() {
            Some(Message::HaveAll)
        } else if info.fast && self.have.has_none() {
            Some(Message::HaveNone)
        } else if self.have.has_none() {
            None
        } else {
            Some(self.have.to_message())
        };
        if let Some(message) = bitfield {
            self.send(slot, message);
        }
        if info.extensions {
            let handshake = self.our_extended_handshake();
            self.send(slot, handshake.to_message());
        }
    }

    /// The periodic work: request timeouts and snubbing, liveness, rechoke, pipelines,
    /// connections.
    fn tick(&mut self) {
        let now = self.now;
        for slot in self.peer_slots() {
            self.check_request_timeouts(slot);
            let Some(peer) = self.peer(slot) else {
                continue;
            };
            if now.saturating_duration_since(peer.last_received) >= self.config.peer_timeout {
                self.disconnect(slot, DisconnectReason::Inactive);
                continue;
            }
            if now.saturating_duration_since(peer.last_sent) >= self.config.keepalive_interval {
                self.send(slot, Message::KeepAlive);
            }
        }
        if now >= self.next_rechoke {
            self.rechoke();
            self.next_rechoke = now + self.config.rechoke_interval;
        }
        if now >= self.next_optimistic {
            self.rotate_optimistic();
            self.next_optimistic = now + self.config.optimistic_interval;
        }
        for slot in self.peer_slots() {
            self.fill_requests(slot);
        }
        self.pex_tick();
        self.super_seed_tick();
        self.connect_more();
    }
}

/// A peer in the slab, borrowing only the slab (so other fields of the torrent stay usable).
pub(crate) fn slot_mut(peers: &mut [Option<Peer>], slot: u32) -> Option<&mut Peer> {
    peers.get_mut(slot as usize)?.as_mut()
}

impl std::fmt::Debug for Torrent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Torrent")
            .field("geometry", &self.geometry)
            .field("have", &self.have)
            .field("peers", &self.keys.len())
            .finish_non_exhaustive()
    }
}
