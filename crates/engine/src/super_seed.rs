//! Super-seeding (BEP 16): an initial seeder with little upload hides what it has and reveals
//! one piece per peer, so that it uploads each piece about once and the leechers spread it.
//!
//! **Rules** (BEP 16, strict variant, and libtorrent's way of ending it):
//! - Greeting: HAVE-NONE with the fast extension, else no bitfield at all; then one HAVE: the
//!   piece *offered* to that peer.
//! - Picking an offer: a piece never offered to anyone (at random), else among the pieces the
//!   peer lacks the one offered to the fewest peers, then the rarest, ties at random.
//! - A peer gets its next offer only when it has its current one **and** the piece has shown
//!   up at another peer (a HAVE from someone else: it spread), or when no other connected
//!   peer lacks it (nobody left to spread it to — with one leecher, offers go one after
//!   another).
//! - Liveness valve (not in BEP 16): a peer that has held its finished offer for
//!   [`SUPER_SEED_SPREAD_WAIT_MAX`] without it spreading gets the next one anyway, so leechers
//!   that cannot reach each other (no tracker, no PEX yet, firewalls) are not stuck forever.
//! - Requests are served only for pieces revealed to that peer.
//! - It ends (for good) when every piece is held by at least two connected peers (seeds
//!   included), as libtorrent does; then each peer is told, by HAVEs, every piece it lacks.
//! - It starts only if the torrent is complete when created (an *initial* seeder).
//!
//! **Deliberately absent**: more than one offer per peer at a time; restarting super-seeding
//! after it ended.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bitswarm_wire::{Bitfield, Message};
use rand::Rng;

use crate::torrent::Torrent;

/// How long a peer that finished its offered piece waits for the piece to spread before it
/// is shown the next one anyway.
pub const SUPER_SEED_SPREAD_WAIT_MAX: Duration = Duration::from_secs(30);

/// Super-seeding state of a torrent (empty and inactive unless configured and complete).
#[derive(Debug, Default)]
pub(crate) struct SuperSeed {
    active: bool,
    /// Pieces never offered to anyone (picked at random, removed by swap).
    fresh: Vec<u32>,
    /// Per peer slot: its offer.
    peers: BTreeMap<u32, Offer>,
    /// Per piece: how many peers it is the current offer of.
    offered: BTreeMap<u32, u32>,
}

/// What one peer was shown.
#[derive(Debug)]
struct Offer {
    /// The piece offered now, if any.
    current: Option<u32>,
    /// When the peer was first seen holding `current` (it waits for the piece to spread).
    holding_since: Option<Instant>,
    /// Every piece revealed to this peer (it may request these).
    revealed: Bitfield,
}

impl SuperSeed {
    /// Super-seeding for a torrent of `piece_count` pieces; `active` only for a complete one.
    pub(crate) fn new(active: bool, piece_count: u32) -> Self {
        Self {
            active,
            fresh: if active {
                (0..piece_count).collect()
            } else {
                Vec::new()
            },
            peers: BTreeMap::new(),
            offered: BTreeMap::new(),
        }
    }

    fn offer_count(&self, piece: u32) -> u32 {
        self.offered.get(&piece).copied().unwrap_or(0)
    }

    fn unoffer(&mut self, piece: u32) {
        if let Some(n) = self.offered.get_mut(&piece) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.offered.remove(&piece);
            }
        }
    }
}

impl Torrent {
    /// Whether the torrent is super-seeding now (BEP 16; see `TorrentConfig::super_seeding`).
    #[must_use]
    pub fn is_super_seeding(&self) -> bool {
        self.super_seed.active
    }

    /// The piece currently offered to `key` while super-seeding (for tests and display).
    #[must_use]
    pub fn super_seed_offer(&self, key: crate::PeerKey) -> Option<u32> {
        let slot = self.keys.get(&key)?;
        self.super_seed.peers.get(slot)?.current
    }

    /// The greeting while super-seeding: HAVE-NONE (fast extension) or nothing, then the
    /// first offer. `false` when not super-seeding (the caller sends the usual greeting).
    pub(crate) fn super_seed_greeting(&mut self, slot: u32) -> bool {
        if !self.super_seed.active {
            return false;
        }
        let Some(fast) = self.peer(slot).map(|p| p.info.fast) else {
            return true;
        };
        if fast {
            self.send(slot, Message::HaveNone);
        }
        let revealed = Bitfield::new(self.geometry.piece_count());
        self.super_seed.peers.insert(
            slot,
            Offer {
                current: None,
                holding_since: None,
                revealed,
            },
        );
        self.offer_next(slot);
        true
    }

    /// Whether `slot` may be served `piece` (always, unless super-seeding hid it from it).
    pub(crate) fn super_seed_allows(&self, slot: u32, piece: u32) -> bool {
        !self.super_seed.active
            || self
                .super_seed
                .peers
                .get(&slot)
                .is_some_and(|o| o.revealed.has(piece))
    }

    /// After a peer's pieces changed (bitfield, have-all, have): if it now holds its offer
    /// and the piece has spread, it gets the next one.
    pub(crate) fn super_seed_announced(&mut self, slot: u32) {
        if !self.super_seed.active {
            return;
        }
        let current = self.super_seed.peers.get(&slot).and_then(|o| o.current);
        if let Some(piece) = current {
            self.super_seed_holding(slot, piece);
        }
    }

    /// `slot` announced `piece`: every other peer that was offered it and holds it has seen
    /// its piece spread, and gets its next offer.
    pub(crate) fn super_seed_have(&mut self, slot: u32, piece: u32) {
        if !self.super_seed.active || self.super_seed.offer_count(piece) == 0 {
            return;
        }
        let holders: Vec<u32> = self
            .super_seed
            .peers
            .iter()
            .filter(|(&s, o)| s != slot && o.current == Some(piece))
            .map(|(&s, _)| s)
            .collect();
        for other in holders {
            if self.peer(other).is_some_and(|p| p.has_piece(piece)) {
                self.offer_next(other);
            }
        }
    }

    /// A peer left: its offer is withdrawn; a piece nobody holds any more goes back to the
    /// never-offered pool.
    pub(crate) fn super_seed_peer_left(&mut self, slot: u32) {
        let Some(offer) = self.super_seed.peers.remove(&slot) else {
            return;
        };
        if let Some(piece) = offer.current {
            self.super_seed.unoffer(piece);
            if self.super_seed.offer_count(piece) == 0 && self.picker.availability(piece) == 0 {
                self.super_seed.fresh.push(piece);
            }
        }
    }

    /// Once a second: end super-seeding when every piece is held by two peers; otherwise
    /// give waiting peers their next offer if it is due (peers come and go).
    pub(crate) fn super_seed_tick(&mut self) {
        if !self.super_seed.active {
            return;
        }
        let count = self.geometry.piece_count();
        if !self.keys.is_empty() && (0..count).all(|p| self.picker.availability(p) >= 2) {
            self.end_super_seeding();
            return;
        }
        let slots: Vec<u32> = self.super_seed.peers.keys().copied().collect();
        for slot in slots {
            let current = self.super_seed.peers.get(&slot).and_then(|o| o.current);
            match current {
                None => self.offer_next(slot),
                Some(piece) => self.super_seed_holding(slot, piece),
            }
        }
    }

    /// `slot`'s offer is `piece`: the next offer if it holds it and the piece has spread (or
    /// it has waited [`SUPER_SEED_SPREAD_WAIT_MAX`]).
    fn super_seed_holding(&mut self, slot: u32, piece: u32) {
        if !self.peer(slot).is_some_and(|p| p.has_piece(piece)) {
            return;
        }
        let now = self.now;
        let Some(offer) = self.super_seed.peers.get_mut(&slot) else {
            return;
        };
        let since = *offer.holding_since.get_or_insert(now);
        let waited = now.saturating_duration_since(since) >= SUPER_SEED_SPREAD_WAIT_MAX;
        if waited || self.super_seed_spread(slot, piece) {
            self.offer_next(slot);
        }
    }

    /// Whether `slot` holds `piece` and it has spread: another peer has it too, or no other
    /// connected peer lacks it.
    fn super_seed_spread(&self, slot: u32, piece: u32) -> bool {
        let Some(peer) = self.peer(slot) else {
            return false;
        };
        if !peer.has_piece(piece) {
            return false;
        }
        if self.picker.availability(piece) >= 2 {
            return true;
        }
        !self
            .peers
            .iter()
            .enumerate()
            .filter_map(|(s, p)| Some((s, p.as_ref()?)))
            .any(|(s, p)| s as u32 != slot && !p.has_piece(piece))
    }

    /// Withdraws `slot`'s offer and reveals a new piece to it, if one is left it lacks.
    fn offer_next(&mut self, slot: u32) {
        if let Some(old) = self
            .super_seed
            .peers
            .get_mut(&slot)
            .and_then(|o| o.current.take())
        {
            self.super_seed.unoffer(old);
        }
        let Some(piece) = self.pick_offer(slot) else {
            return;
        };
        let Some(offer) = self.super_seed.peers.get_mut(&slot) else {
            return;
        };
        offer.current = Some(piece);
        offer.holding_since = None;
        let _ = offer.revealed.set(piece);
        *self.super_seed.offered.entry(piece).or_insert(0) += 1;
        self.send(slot, Message::Have { piece });
    }

    /// The piece to offer `slot`: never offered before if any it lacks, else the one offered
    /// to the fewest, then the rarest, ties at random.
    fn pick_offer(&mut self, slot: u32) -> Option<u32> {
        let peer = self.peer(slot)?;
        if peer.seed {
            return None;
        }
        let has = peer.has.clone();
        let revealed = &self.super_seed.peers.get(&slot)?.revealed;
        // The fresh pool: a few random tries, then a scan of it (it rarely holds pieces the
        // peer has: only a peer that arrived with data).
        let fresh = &mut self.super_seed.fresh;
        for _ in 0..4 {
            if fresh.is_empty() {
                break;
            }
            let i = self.rng.gen_range(0..fresh.len());
            if !has.has(fresh[i]) {
                return Some(fresh.swap_remove(i));
            }
        }
        if let Some(i) = fresh.iter().position(|&p| !has.has(p)) {
            return Some(fresh.swap_remove(i));
        }
        let mut best: Option<((u32, u32), u32)> = None;
        let mut ties = 0u32;
        for piece in 0..self.geometry.piece_count() {
            if has.has(piece) || revealed.has(piece) {
                continue;
            }
            let key = (
                self.super_seed.offer_count(piece),
                self.picker.availability(piece),
            );
            match best {
                Some((k, _)) if k < key => {}
                Some((k, _)) if k == key => {
                    ties += 1;
                    if self.rng.gen_range(0..ties) == 0 {
                        best = Some((key, piece));
                    }
                }
                _ => {
                    best = Some((key, piece));
                    ties = 1;
                }
            }
        }
        best.map(|(_, piece)| piece)
    }

    /// Stops super-seeding: every peer is told, by HAVEs, each piece it lacks and has not
    /// been shown (a second bitfield would be a protocol violation).
    fn end_super_seeding(&mut self) {
        let state = std::mem::take(&mut self.super_seed);
        for (slot, offer) in state.peers {
            let Some(peer) = self.peer(slot) else {
                continue;
            };
            if peer.seed {
                continue;
            }
            let missing: Vec<u32> = self
                .have
                .iter_ones()
                .filter(|&p| !peer.has.has(p) && !offer.revealed.has(p))
                .collect();
            for piece in missing {
                self.send(slot, Message::Have { piece });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::time::{Duration, Instant};

    use bitswarm_wire::{Bitfield, BlockRef, Message};

    use crate::{Action, Geometry, PeerInfo, PeerKey, Torrent, TorrentConfig, BLOCK_LEN};

    const A: PeerKey = PeerKey(1);
    const B: PeerKey = PeerKey(2);
    const C: PeerKey = PeerKey(3);

    struct S {
        t: Torrent,
        now: Instant,
    }

    impl S {
        /// A complete torrent of `pieces` one-block pieces, super-seeding.
        fn new(pieces: u32) -> Self {
            let g = Geometry::new(BLOCK_LEN, u64::from(pieces * BLOCK_LEN));
            let now = Instant::now();
            let config = TorrentConfig {
                super_seeding: true,
                ..TorrentConfig::default()
            };
            let t = Torrent::new(g, Bitfield::full(pieces), config, 11, now);
            assert!(t.is_super_seeding());
            Self { t, now }
        }

        fn connect(&mut self, key: PeerKey, fast: bool) -> Vec<Message> {
            let info = PeerInfo {
                addr: SocketAddr::from((Ipv4Addr::new(10, 0, 0, key.0 as u8), 6881)),
                peer_id: [key.0 as u8; 20],
                fast,
                extensions: false,
                outgoing: false,
            };
            self.t.peer_connected(self.now, key, info);
            self.sent(key)
        }

        fn msg(&mut self, key: PeerKey, m: Message) {
            self.t.peer_message(self.now, key, m);
        }

        fn tick(&mut self) {
            self.now += Duration::from_secs(1);
            self.t.handle_timeout(self.now);
        }

        /// Drains the actions, returning the messages sent to `key`.
        fn sent(&mut self, key: PeerKey) -> Vec<Message> {
            self.t.check_invariants().expect("invariants");
            self.drain()
                .into_iter()
                .filter_map(|a| match a {
                    Action::Send { peer, message } if peer == key => Some(message),
                    _ => None,
                })
                .collect()
        }

        fn drain(&mut self) -> Vec<Action> {
            std::iter::from_fn(|| self.t.poll_action()).collect()
        }

        fn offer(&self, key: PeerKey) -> u32 {
            self.t.super_seed_offer(key).expect("an offer")
        }
    }

    fn haves(messages: &[Message]) -> Vec<u32> {
        messages
            .iter()
            .filter_map(|m| match m {
                Message::Have { piece } => Some(*piece),
                _ => None,
            })
            .collect()
    }

    fn block(piece: u32) -> BlockRef {
        BlockRef {
            piece,
            offset: 0,
            length: BLOCK_LEN,
        }
    }

    #[test]
    fn greeting_hides_the_pieces_and_reveals_one() {
        let mut s = S::new(8);
        let a = s.connect(A, true);
        assert_eq!(a.first(), Some(&Message::HaveNone));
        assert_eq!(haves(&a), vec![s.offer(A)]);
        assert!(!a
            .iter()
            .any(|m| matches!(m, Message::HaveAll | Message::Bitfield(_))));
        let b = s.connect(B, false);
        assert_eq!(b.len(), 1, "no bitfield without the fast extension: {b:?}");
        assert_eq!(haves(&b), vec![s.offer(B)]);
        assert_ne!(s.offer(A), s.offer(B), "never-offered pieces go first");
    }

    #[test]
    fn next_offer_waits_until_the_piece_spread() {
        let mut s = S::new(8);
        s.connect(A, true);
        s.connect(B, true);
        let (pa, pb) = (s.offer(A), s.offer(B));
        s.msg(A, Message::HaveNone);
        s.msg(B, Message::HaveNone);
        s.sent(A);
        // A completes its piece: B still lacks it, so A waits.
        s.msg(A, Message::Have { piece: pa });
        assert!(haves(&s.sent(A)).is_empty());
        s.tick();
        assert!(haves(&s.sent(A)).is_empty());
        assert_eq!(s.offer(A), pa);
        // B got it from A: A's piece spread, A is shown a new one.
        s.msg(B, Message::Have { piece: pa });
        let next = haves(&s.sent(A));
        assert_eq!(next.len(), 1);
        assert!(next[0] != pa && next[0] != pb, "a fresh piece: {next:?}");
        assert_eq!(s.offer(A), next[0]);
        assert_eq!(s.offer(B), pb, "B still has its own offer to finish");
    }

    #[test]
    fn a_piece_that_cannot_spread_is_followed_by_another_after_the_wait() {
        let mut s = S::new(8);
        s.connect(A, true);
        s.connect(B, true);
        s.msg(A, Message::HaveNone);
        s.msg(B, Message::HaveNone);
        let pa = s.offer(A);
        s.msg(A, Message::Have { piece: pa });
        s.sent(A);
        let wait = super::SUPER_SEED_SPREAD_WAIT_MAX.as_secs();
        for _ in 1..wait {
            s.tick();
            assert!(haves(&s.sent(A)).is_empty(), "B never got {pa}");
        }
        s.tick();
        let next = haves(&s.sent(A));
        assert_eq!(next.len(), 1, "after {wait} s A is shown another piece");
        assert_ne!(next[0], pa);
    }

    #[test]
    fn a_lone_leecher_gets_offers_one_after_another() {
        let mut s = S::new(3);
        s.connect(A, true);
        s.msg(A, Message::HaveNone);
        let mut seen = vec![s.offer(A)];
        for _ in 0..2 {
            let piece = *seen.last().unwrap();
            s.msg(A, Message::Have { piece });
            let next = haves(&s.sent(A));
            assert_eq!(next.len(), 1, "nobody else could spread {piece}");
            seen.push(next[0]);
        }
        seen.sort_unstable();
        assert_eq!(seen, vec![0, 1, 2]);
    }

    #[test]
    fn only_revealed_pieces_are_served() {
        let mut s = S::new(4);
        s.connect(A, true);
        s.msg(A, Message::HaveNone);
        s.msg(A, Message::Interested);
        let unchoked = s.sent(A);
        assert!(unchoked.contains(&Message::Unchoke), "{unchoked:?}");
        let hidden = (0..4).find(|&p| p != s.offer(A)).unwrap();
        s.msg(A, Message::Request(block(hidden)));
        assert_eq!(s.sent(A), vec![Message::RejectRequest(block(hidden))]);
        s.msg(A, Message::Request(block(s.offer(A))));
        let served = s.drain();
        assert!(
            served
                .iter()
                .any(|a| matches!(a, Action::ServeBlock { peer, block: b } if *peer == A && b.piece == s.offer(A))),
            "{served:?}"
        );
    }

    #[test]
    fn an_offer_nobody_holds_returns_to_the_pool_when_its_peer_leaves() {
        let mut s = S::new(2);
        s.connect(A, true);
        s.connect(B, true);
        let pa = s.offer(A);
        s.t.peer_disconnected(s.now, A);
        s.drain();
        s.connect(C, true);
        assert_eq!(s.offer(C), pa, "the only never-offered piece again");
    }

    #[test]
    fn ends_when_every_piece_is_at_two_peers_and_tells_the_rest() {
        let mut s = S::new(3);
        let bits = |ps: &[u32]| {
            let mut b = Bitfield::new(3);
            for &p in ps {
                b.set(p).unwrap();
            }
            b.to_message()
        };
        let mut shown: Vec<(PeerKey, u32)> = Vec::new();
        let mut log = |actions: Vec<Action>| {
            for a in actions {
                if let Action::Send {
                    peer,
                    message: Message::Have { piece },
                } = a
                {
                    shown.push((peer, piece));
                }
            }
        };
        for (key, has) in [(A, [0, 1]), (B, [1, 2]), (C, [0, 2])] {
            let info = PeerInfo {
                addr: SocketAddr::from((Ipv4Addr::new(10, 0, 0, key.0 as u8), 6881)),
                peer_id: [key.0 as u8; 20],
                fast: true,
                extensions: false,
                outgoing: false,
            };
            s.t.peer_connected(s.now, key, info);
            s.msg(key, bits(&has));
            log(s.drain());
        }
        assert!(s.t.is_super_seeding());
        s.tick();
        assert!(!s.t.is_super_seeding());
        log(s.drain());
        // Each peer now knows we have its missing piece: shown as an offer or told at the end,
        // and told once only.
        for (key, missing) in [(A, 2), (B, 0), (C, 1)] {
            let told: Vec<u32> = shown
                .iter()
                .filter(|(k, _)| *k == key)
                .map(|(_, p)| *p)
                .collect();
            assert!(told.contains(&missing), "{key:?} was shown {told:?}");
            let mut unique = told.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), told.len(), "{key:?} was shown {told:?}");
        }
        // After the end every piece may be requested.
        s.msg(A, Message::Interested);
        s.drain();
        s.msg(A, Message::Request(block(2)));
        assert!(s
            .drain()
            .iter()
            .any(|a| matches!(a, Action::ServeBlock { peer, .. } if *peer == A)));
    }

    #[test]
    fn a_torrent_that_is_not_complete_does_not_super_seed() {
        let g = Geometry::new(BLOCK_LEN, u64::from(4 * BLOCK_LEN));
        let config = TorrentConfig {
            super_seeding: true,
            ..TorrentConfig::default()
        };
        let t = Torrent::new(g, Bitfield::new(4), config, 1, Instant::now());
        assert!(!t.is_super_seeding());
    }
}
