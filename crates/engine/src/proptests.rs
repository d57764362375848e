//! Property tests: the picker never offers a piece we have, do not want, or the peer lacks,
//! and always offers one of the rarest; a torrent driven by arbitrary peer behaviour (random
//! bitfields, chokes, deliveries, rejects, disconnects, failed checks, timeouts) keeps every
//! invariant after every step, including the endgame duplicate bound.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bitswarm_wire::{Bitfield, BlockRef, Message};
use bytes::Bytes;
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::geometry::Geometry;
use crate::picker::{PeerView, Picker, PieceState};
use crate::{Action, PeerInfo, PeerKey, Torrent, TorrentConfig, Verification, BLOCK_LEN};

fn bits(count: u32, mask: &[bool]) -> Bitfield {
    let mut b = Bitfield::new(count);
    for (i, &on) in mask.iter().enumerate().take(count as usize) {
        if on {
            let _ = b.set(i as u32);
        }
    }
    b
}

proptest! {
    /// Whatever the availability, have and wanted sets: a pick is open, wanted, missing, owned
    /// by the peer, and (rarest first) of minimal availability among such pieces.
    #[test]
    fn picks_are_wanted_missing_owned_and_rarest(
        count in 1u32..200,
        have in proptest::collection::vec(any::<bool>(), 200),
        wanted in proptest::collection::vec(any::<bool>(), 200),
        peer in proptest::collection::vec(any::<bool>(), 200),
        avail in proptest::collection::vec(0u32..6, 200),
        random in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let g = Geometry::new(BLOCK_LEN, u64::from(count) * u64::from(BLOCK_LEN));
        let have = bits(count, &have);
        let wanted = bits(count, &wanted);
        let mut picker = Picker::new(g, &have, &wanted, SmallRng::seed_from_u64(seed));
        let peer = bits(count, &peer);
        // Other peers' pieces, plus this peer's own (a connected non-seed peer is counted).
        for piece in 0..count {
            for _ in 0..avail[piece as usize] + u32::from(peer.has(piece)) {
                picker.inc_availability(piece);
            }
        }
        let view = PeerView { has: &peer, seed: false };
        let mut picked = 0;
        while let Some(piece) = picker.pick_new_piece(view, random) {
            prop_assert!(peer.has(piece) && wanted.has(piece) && !have.has(piece));
            prop_assert_eq!(picker.state(piece), PieceState::Open);
            if !random {
                let min = (0..count)
                    .filter(|&p| picker.state(p) == PieceState::Open && peer.has(p))
                    .map(|p| picker.availability(p))
                    .min();
                prop_assert_eq!(Some(picker.availability(piece)), min, "not the rarest");
            }
            picker.start_partial(piece, 0);
            picked += 1;
            prop_assert!(picked <= count, "picked more pieces than exist");
        }
        let expected = (0..count).filter(|&p| peer.has(p) && wanted.has(p) && !have.has(p)).count();
        prop_assert_eq!(picked, expected as u32, "every eligible piece is eventually offered");
    }
}

/// One step of arbitrary peer behaviour.
#[derive(Debug, Clone)]
enum Op {
    Connect(u8, bool),
    Bitfield(u8, Vec<bool>),
    HaveAll(u8),
    Have(u8, u32),
    Unchoke(u8),
    Choke(u8),
    /// Deliver the `n`-th outstanding request we sent to this peer (possibly corrupt).
    Deliver(u8, usize),
    Reject(u8, usize),
    Disconnect(u8),
    /// Answer the oldest pending verification.
    Verify(bool),
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let peer = 0u8..5;
    prop_oneof![
        (peer.clone(), any::<bool>()).prop_map(|(p, f)| Op::Connect(p, f)),
        (peer.clone(), proptest::collection::vec(any::<bool>(), 12))
            .prop_map(|(p, b)| Op::Bitfield(p, b)),
        peer.clone().prop_map(Op::HaveAll),
        (peer.clone(), 0u32..13).prop_map(|(p, i)| Op::Have(p, i)),
        peer.clone().prop_map(Op::Unchoke),
        peer.clone().prop_map(Op::Choke),
        (peer.clone(), 0usize..8).prop_map(|(p, n)| Op::Deliver(p, n)),
        (peer.clone(), 0usize..8).prop_map(|(p, n)| Op::Deliver(p, n)),
        (peer.clone(), 0usize..8).prop_map(|(p, n)| Op::Reject(p, n)),
        peer.prop_map(Op::Disconnect),
        any::<bool>().prop_map(Op::Verify),
        (1u64..30).prop_map(Op::Wait),
    ]
}

struct Driver {
    t: Torrent,
    now: Instant,
    /// Requests sent, per peer, in order.
    sent: Vec<Vec<BlockRef>>,
    verify: Vec<u32>,
}

impl Driver {
    fn drain(&mut self) {
        while let Some(action) = self.t.poll_action() {
            match action {
                Action::Send {
                    peer,
                    message: Message::Request(b),
                } => self.sent[peer.0 as usize].push(b),
                Action::Send {
                    peer,
                    message: Message::Cancel(b),
                } => self.sent[peer.0 as usize].retain(|x| *x != b),
                Action::Disconnect { peer, .. } => self.sent[peer.0 as usize].clear(),
                Action::VerifyPiece { piece, .. } => self.verify.push(piece),
                _ => {}
            }
        }
    }

    fn apply(&mut self, op: Op) {
        let now = self.now;
        let key = |p: u8| PeerKey(u64::from(p));
        match op {
            Op::Connect(p, fast) => {
                let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, p + 1)), 6881);
                let info = PeerInfo {
                    addr,
                    peer_id: [p; 20],
                    fast,
                    extensions: false,
                    outgoing: false,
                };
                self.t.peer_connected(now, key(p), info);
            }
            Op::Bitfield(p, mask) => self
                .t
                .peer_message(now, key(p), bits(12, &mask).to_message()),
            Op::HaveAll(p) => self.t.peer_message(now, key(p), Message::HaveAll),
            Op::Have(p, i) => self.t.peer_message(now, key(p), Message::Have { piece: i }),
            Op::Unchoke(p) => self.t.peer_message(now, key(p), Message::Unchoke),
            Op::Choke(p) => self.t.peer_message(now, key(p), Message::Choke),
            Op::Deliver(p, n) | Op::Reject(p, n) if self.sent[p as usize].is_empty() => {
                let _ = n;
            }
            Op::Deliver(p, n) => {
                let list = &mut self.sent[p as usize];
                let b = list.remove(n % list.len());
                let data = Bytes::from(vec![p; b.length as usize]);
                self.t.peer_message(
                    now,
                    key(p),
                    Message::Piece {
                        piece: b.piece,
                        offset: b.offset,
                        data,
                    },
                );
            }
            Op::Reject(p, n) => {
                let list = &mut self.sent[p as usize];
                let b = list.remove(n % list.len());
                self.t.peer_message(now, key(p), Message::RejectRequest(b));
            }
            Op::Disconnect(p) => {
                self.t.peer_disconnected(now, key(p));
                self.sent[p as usize].clear();
            }
            Op::Verify(ok) => {
                if !self.verify.is_empty() {
                    let piece = self.verify.remove(0);
                    let result = if ok {
                        Verification::Passed {
                            block_digests: None,
                        }
                    } else {
                        Verification::Failed {
                            block_digests: None,
                        }
                    };
                    self.t.piece_verified(now, piece, result);
                }
            }
            Op::Wait(secs) => {
                self.now += Duration::from_secs(secs);
                self.t.handle_timeout(self.now);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Arbitrary peer behaviour never breaks an invariant (requests only for pieces the peer
    /// has and we lack, holders consistent, endgame duplicates bounded, unchoke slots, ...).
    #[test]
    fn torrent_invariants_hold_under_arbitrary_peers(ops in proptest::collection::vec(op(), 1..300), seed in any::<u64>()) {
        // 12 pieces of 3 blocks, the last piece short.
        let g = Geometry::new(3 * BLOCK_LEN, u64::from(35 * BLOCK_LEN + 100));
        let config = TorrentConfig { random_first_pieces: 2, endgame_duplicates_max: 2, ..TorrentConfig::default() };
        let now = Instant::now();
        let mut d = Driver { t: Torrent::new(g, Bitfield::new(12), config, seed, now), now, sent: vec![Vec::new(); 5], verify: Vec::new() };
        for op in ops {
            d.apply(op.clone());
            d.drain();
            prop_assert_eq!(d.t.check_invariants(), Ok(()), "after {:?}", op);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// The fuzz target's property as a proptest: arbitrary frames the wire parser accepts,
    /// from a few peers, interleaved with connects, disconnects, time and hash results, never
    /// panic and never break an invariant.
    #[test]
    fn arbitrary_messages_never_panic(
        steps in proptest::collection::vec((any::<u8>(), 0u8..4, proptest::collection::vec(any::<u8>(), 0..40)), 1..200),
    ) {
        let mut now = Instant::now();
        let g = Geometry::new(2 * BLOCK_LEN, u64::from(9 * 2 * BLOCK_LEN + 5000));
        let mut t = Torrent::new(g, Bitfield::new(g.piece_count()), TorrentConfig::default(), 1, now);
        let mut verify = Vec::new();
        for (op, peer, mut frame) in steps {
            let key = PeerKey(u64::from(peer));
            match op % 8 {
                0 => {
                    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, peer + 1)), 6881);
                    let info = PeerInfo { addr, peer_id: [peer; 20], fast: op & 0x10 != 0, extensions: op & 0x20 != 0, outgoing: false };
                    t.peer_connected(now, key, info);
                }
                1 => t.peer_disconnected(now, key),
                2 => {
                    now += Duration::from_millis(u64::from(op) * 300);
                    t.handle_timeout(now);
                }
                3 => {
                    if let Some(piece) = verify.pop() {
                        let passed = op & 0x40 == 0;
                        let result = if passed { Verification::Passed { block_digests: None } } else { Verification::Failed { block_digests: None } };
                        t.piece_verified(now, piece, result);
                    }
                }
                _ => {
                    // Bias towards known ids so most frames parse.
                    if let Some(first) = frame.first_mut() {
                        *first %= 21;
                    }
                    if let Ok(message) = Message::parse(Bytes::from(frame)) {
                        t.peer_message(now, key, message);
                    }
                }
            }
            while let Some(action) = t.poll_action() {
                if let Action::VerifyPiece { piece, .. } = action {
                    verify.push(piece);
                }
            }
            prop_assert_eq!(t.check_invariants(), Ok(()));
        }
    }
}
