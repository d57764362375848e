//! Torrent-level unit tests: one engine driven by hand, message by message, asserting on the
//! exact actions it emits (greeting, interest, immediate unchoke, requests, HAVE after
//! verification, serving, protocol violations, choke handling, endgame, snubbing, timeouts,
//! smart ban, seed-mode rotation, file selection, connection candidates).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bitswarm_wire::{Bitfield, BlockRef, ExtendedHandshake, Message};
use bytes::Bytes;

use crate::{
    Action, BanReason, DisconnectReason, Event, Geometry, PeerInfo, PeerKey, ProtocolViolation,
    Torrent, TorrentConfig, Verification, BLOCK_LEN,
};

const A: PeerKey = PeerKey(1);
const B: PeerKey = PeerKey(2);
const C: PeerKey = PeerKey(3);

struct T {
    t: Torrent,
    now: Instant,
}

impl T {
    /// A torrent of `pieces` pieces of `blocks` full blocks each.
    fn new(pieces: u32, blocks: u32, config: TorrentConfig) -> Self {
        let g = Geometry::new(blocks * BLOCK_LEN, u64::from(pieces * blocks * BLOCK_LEN));
        let now = Instant::now();
        let config = TorrentConfig {
            random_first_pieces: 0,
            ..config
        };
        Self {
            t: Torrent::new(g, Bitfield::new(pieces), config, 7, now),
            now,
        }
    }

    fn seeding(pieces: u32, blocks: u32, config: TorrentConfig) -> Self {
        let g = Geometry::new(blocks * BLOCK_LEN, u64::from(pieces * blocks * BLOCK_LEN));
        let now = Instant::now();
        Self {
            t: Torrent::new(g, Bitfield::full(pieces), config, 7, now),
            now,
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.t.handle_timeout(self.now);
    }

    fn connect(&mut self, key: PeerKey, fast: bool) -> Vec<Action> {
        let info = PeerInfo {
            addr: addr(key),
            peer_id: [key.0 as u8; 20],
            fast,
            extensions: true,
            outgoing: false,
        };
        self.t.peer_connected(self.now, key, info);
        self.drain()
    }

    fn msg(&mut self, key: PeerKey, m: Message) -> Vec<Action> {
        self.t.peer_message(self.now, key, m);
        self.drain()
    }

    fn drain(&mut self) -> Vec<Action> {
        self.t.check_invariants().expect("invariants");
        std::iter::from_fn(|| self.t.poll_action()).collect()
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.t.poll_event()).collect()
    }

    /// Connects `key` as an unchoking seed and returns the requests sent to it.
    fn seed_peer(&mut self, key: PeerKey, fast: bool) -> Vec<BlockRef> {
        self.connect(key, fast);
        let bits = Bitfield::full(self.t.geometry().piece_count());
        self.msg(key, bits.to_message());
        requests(&self.msg(key, Message::Unchoke), key)
    }

    fn block(&mut self, key: PeerKey, b: BlockRef, fill: u8) -> Vec<Action> {
        let data = Bytes::from(vec![fill; b.length as usize]);
        self.msg(
            key,
            Message::Piece {
                piece: b.piece,
                offset: b.offset,
                data,
            },
        )
    }

    fn verified(&mut self, piece: u32, result: Verification) -> Vec<Action> {
        self.t.piece_verified(self.now, piece, result);
        self.drain()
    }
}

fn addr(key: PeerKey) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, key.0 as u8)), 6881)
}

fn sent(actions: &[Action], key: PeerKey) -> Vec<Message> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { peer, message } if *peer == key => Some(message.clone()),
            _ => None,
        })
        .collect()
}

fn requests(actions: &[Action], key: PeerKey) -> Vec<BlockRef> {
    sent(actions, key)
        .into_iter()
        .filter_map(|m| {
            if let Message::Request(b) = m {
                Some(b)
            } else {
                None
            }
        })
        .collect()
}

fn disconnect_reason(actions: &[Action], key: PeerKey) -> Option<DisconnectReason> {
    actions.iter().find_map(|a| match a {
        Action::Disconnect { peer, reason } if *peer == key => Some(*reason),
        _ => None,
    })
}

fn passed() -> Verification {
    Verification::Passed {
        block_digests: None,
    }
}

#[test]
fn greeting_says_what_we_have_and_advertises_reqq() {
    let mut t = T::new(10, 1, TorrentConfig::default());
    let out = sent(&t.connect(A, true), A);
    assert_eq!(out[0], Message::HaveNone);
    let Message::Extended { id: 0, payload } = &out[1] else {
        panic!("no extension handshake: {out:?}");
    };
    let hs = ExtendedHandshake::parse(payload).unwrap();
    assert_eq!(hs.request_queue_len, Some(500));
    assert!(hs.client.as_deref().unwrap().starts_with("bitswarm"));
    // PEX always; ut_metadata only once the torrent has its info dictionary to serve.
    assert_eq!(hs.extension_id("ut_pex"), Some(crate::UT_PEX_ID));
    assert_eq!(hs.extension_id("ut_metadata"), None);
    assert_eq!(hs.metadata_size, None);
    assert_eq!(
        sent(&t.connect(B, false), B).len(),
        1,
        "no bitfield when we have nothing"
    );
    let mut s = T::seeding(10, 1, TorrentConfig::default());
    assert_eq!(sent(&s.connect(A, true), A)[0], Message::HaveAll);
    assert_eq!(
        sent(&s.connect(B, false), B)[0],
        Bitfield::full(10).to_message()
    );
}

#[test]
fn interested_peer_is_unchoked_at_once_and_served() {
    let mut s = T::seeding(4, 2, TorrentConfig::default());
    s.connect(A, true);
    assert_eq!(
        sent(&s.msg(A, Message::Interested), A),
        vec![Message::Unchoke]
    );
    let block = BlockRef {
        piece: 1,
        offset: BLOCK_LEN,
        length: BLOCK_LEN,
    };
    let out = s.msg(A, Message::Request(block));
    assert_eq!(out, vec![Action::ServeBlock { peer: A, block }]);
    s.t.block_sent(s.now, A, block);
    assert_eq!(s.t.stats().uploaded, u64::from(BLOCK_LEN));
}

#[test]
fn upload_slots_bound_serve_blocks_and_cancel_and_choke_reject() {
    let config = TorrentConfig {
        upload_in_flight_max: 2,
        unchoke_slots: 1,
        ..TorrentConfig::default()
    };
    let mut s = T::seeding(4, 4, config);
    s.connect(A, true);
    s.msg(A, Message::Interested);
    let blocks: Vec<BlockRef> = (0..4)
        .map(|i| BlockRef {
            piece: 0,
            offset: i * BLOCK_LEN,
            length: BLOCK_LEN,
        })
        .collect();
    let mut served = 0;
    for b in &blocks {
        served += s.msg(A, Message::Request(*b)).len();
    }
    assert_eq!(served, 2, "at most upload_in_flight_max blocks handed out");
    assert_eq!(
        sent(&s.msg(A, Message::Cancel(blocks[3])), A),
        vec![Message::RejectRequest(blocks[3])]
    );
    s.t.block_sent(s.now, A, blocks[0]);
    assert_eq!(
        s.drain(),
        vec![Action::ServeBlock {
            peer: A,
            block: blocks[2]
        }]
    );
    // Not interested any more: A keeps its slot until the rechoke gives it to a peer that
    // wants it (a newcomer takes only a free slot: B gets the optimistic one meanwhile).
    assert!(s.msg(A, Message::NotInterested).is_empty());
    s.connect(B, true);
    let out = s.msg(B, Message::Interested);
    assert_eq!(sent(&out, A), vec![]);
    assert_eq!(sent(&out, B), vec![Message::Unchoke]);
    s.advance(Duration::from_secs(10));
    assert_eq!(sent(&s.drain(), A), vec![Message::Choke]);
    assert_eq!(
        sent(&s.msg(A, Message::Request(blocks[3])), A),
        vec![Message::RejectRequest(blocks[3])]
    );
}

#[test]
fn invalid_requests_are_rejected_then_end_the_connection() {
    let config = TorrentConfig {
        bad_requests_max: 3,
        ..TorrentConfig::default()
    };
    let mut s = T::seeding(2, 1, config);
    s.connect(A, true);
    s.msg(A, Message::Interested);
    let bad = BlockRef {
        piece: 1,
        offset: 1,
        length: BLOCK_LEN,
    };
    for _ in 0..3 {
        assert_eq!(
            sent(&s.msg(A, Message::Request(bad)), A),
            vec![Message::RejectRequest(bad)]
        );
    }
    let out = s.msg(A, Message::Request(bad));
    assert_eq!(
        disconnect_reason(&out, A),
        Some(DisconnectReason::Protocol(ProtocolViolation::BadRequests))
    );
}

#[test]
fn requests_only_what_the_peer_has_rarest_first() {
    let mut t = T::new(8, 2, TorrentConfig::default());
    t.connect(A, true);
    t.connect(B, true);
    let mut bits = Bitfield::new(8);
    for p in [2, 5] {
        bits.set(p).unwrap();
    }
    assert_eq!(
        sent(&t.msg(B, bits.to_message()), B),
        vec![Message::Interested]
    );
    bits.set(6).unwrap();
    t.msg(A, bits.to_message());
    // Piece 6 is the rarest of A's: only A has it.
    let reqs = requests(&t.msg(A, Message::Unchoke), A);
    assert_eq!(reqs.len(), 4, "pipeline minimum");
    assert!(reqs[..2].iter().all(|r| r.piece == 6), "{reqs:?}");
    assert!(reqs.iter().all(|r| [2, 5, 6].contains(&r.piece)));
}

#[test]
fn have_only_after_verification() {
    let mut t = T::new(2, 2, TorrentConfig::default());
    t.connect(B, true);
    let reqs = t.seed_peer(A, true);
    let piece0: Vec<BlockRef> = reqs
        .iter()
        .copied()
        .filter(|r| r.piece == reqs[0].piece)
        .collect();
    let mut verify = Vec::new();
    for b in &piece0 {
        let out = t.block(A, *b, 1);
        assert!(out.iter().any(|a| matches!(a, Action::StoreBlock { .. })));
        assert!(
            !sent(&out, B)
                .iter()
                .any(|m| matches!(m, Message::Have { .. })),
            "HAVE before verification"
        );
        verify.extend(
            out.into_iter()
                .filter(|a| matches!(a, Action::VerifyPiece { .. })),
        );
    }
    let piece = piece0[0].piece;
    assert_eq!(
        verify,
        vec![Action::VerifyPiece {
            piece,
            block_digests: false
        }]
    );
    let out = t.verified(piece, passed());
    assert_eq!(sent(&out, B), vec![Message::Have { piece }]);
    assert!(t.t.have().has(piece));
    assert_eq!(t.events(), vec![Event::PieceVerified(piece)]);
}

#[test]
fn completion_sends_not_interested_and_drops_seeds() {
    let mut t = T::new(1, 1, TorrentConfig::default());
    let reqs = t.seed_peer(A, true);
    t.block(A, reqs[0], 0);
    let out = t.verified(0, passed());
    assert_eq!(
        disconnect_reason(&out, A),
        Some(DisconnectReason::BothSeeds)
    );
    assert!(t.t.is_complete());
    assert_eq!(t.events(), vec![Event::PieceVerified(0), Event::Completed]);
}

#[test]
fn protocol_violations_disconnect() {
    let v = |p| Some(DisconnectReason::Protocol(p));
    let mut t = T::new(10, 1, TorrentConfig::default());
    t.connect(A, true);
    assert_eq!(
        disconnect_reason(&t.msg(A, Message::Bitfield(Bytes::from_static(&[0xff]))), A),
        v(ProtocolViolation::BadBitfield)
    );
    t.connect(A, true);
    assert_eq!(
        disconnect_reason(&t.msg(A, Message::Have { piece: 10 }), A),
        v(ProtocolViolation::HaveOutOfRange)
    );
    t.connect(A, false);
    assert_eq!(
        disconnect_reason(&t.msg(A, Message::HaveAll), A),
        v(ProtocolViolation::FastWithoutExtension)
    );
    t.connect(A, true);
    t.msg(A, Message::HaveNone);
    assert_eq!(
        disconnect_reason(&t.msg(A, Message::HaveAll), A),
        v(ProtocolViolation::LateBitfield)
    );
    assert_eq!(
        disconnect_reason(&t.msg(C, Message::Unchoke), C),
        v(ProtocolViolation::UnknownPeer)
    );
    let reqs = t.seed_peer(B, true);
    let short = Message::Piece {
        piece: reqs[0].piece,
        offset: reqs[0].offset,
        data: Bytes::from_static(b"x"),
    };
    assert_eq!(
        disconnect_reason(&t.msg(B, short), B),
        v(ProtocolViolation::BlockLength)
    );
    assert_eq!(t.t.stats().peers, 0, "every offender forgotten");
}

#[test]
fn unrequested_blocks_are_dropped_then_disconnect() {
    let config = TorrentConfig {
        unrequested_blocks_max: 2,
        ..TorrentConfig::default()
    };
    let mut t = T::new(4, 1, config);
    t.connect(A, true);
    let junk = BlockRef {
        piece: 3,
        offset: 0,
        length: BLOCK_LEN,
    };
    assert!(t.block(A, junk, 0).is_empty());
    assert!(t.block(A, junk, 0).is_empty());
    let out = t.block(A, junk, 0);
    assert_eq!(
        disconnect_reason(&out, A),
        Some(DisconnectReason::Protocol(
            ProtocolViolation::UnrequestedBlocks
        ))
    );
    assert_eq!(t.t.stats().wasted, 3 * u64::from(BLOCK_LEN));
    // Received, counted, and all thrown away: nothing kept.
    assert_eq!(t.t.stats().downloaded, 3 * u64::from(BLOCK_LEN));
}

#[test]
fn choke_without_fast_releases_and_unchoke_rerequests() {
    let mut t = T::new(2, 4, TorrentConfig::default());
    let a = t.seed_peer(A, false);
    assert_eq!(a.len(), 4);
    let p = a[0].piece;
    assert!(
        a.iter().all(|r| r.piece == p),
        "one peer takes a whole piece"
    );
    t.msg(A, Message::Choke);
    // Released: the abandoned piece is the first thing another peer is asked for.
    assert_eq!(t.seed_peer(B, true), a);
    // A's unchoke: its old requests are forgotten; it starts the other piece.
    let again = requests(&t.msg(A, Message::Unchoke), A);
    assert_eq!(again.len(), 4);
    assert!(again.iter().all(|r| r.piece != p), "{again:?}");
}

#[test]
fn choke_with_fast_waits_for_rejects() {
    let mut t = T::new(8, 4, TorrentConfig::default());
    let a = t.seed_peer(A, true);
    let p = a[0].piece;
    t.msg(A, Message::Choke);
    let b = t.seed_peer(B, true);
    assert!(
        b.iter().all(|r| r.piece != p),
        "A's requests still stand: {b:?}"
    );
    t.msg(A, Message::RejectRequest(a[0]));
    // B's next request, once it delivers one, is the rejected block.
    let next = requests(&t.block(B, b[0], 0), B);
    assert_eq!(next.first(), Some(&a[0]), "{next:?}");
    assert!(
        !next[1..].iter().any(|r| a.contains(r)),
        "blocks A still holds are not duplicated"
    );
}

#[test]
fn endgame_duplicates_go_to_idle_peers_bounded_and_cancelled() {
    let mut t = T::new(1, 2, TorrentConfig::default());
    let a = t.seed_peer(A, true);
    assert_eq!(a.len(), 2);
    assert!(t.t.stats().endgame);
    // Idle peers duplicate one block at a time.
    assert_eq!(t.seed_peer(B, true), vec![a[0]]);
    assert_eq!(t.seed_peer(C, true), vec![a[1]]);
    let out = t.block(A, a[0], 0);
    assert_eq!(sent(&out, B), vec![Message::Cancel(a[0])]);
    // B is idle again, but a[1] is already asked of two peers.
    assert!(requests(&out, B).is_empty());
    // B's late copy is expected (it answers our cancel) and dropped without penalty.
    t.block(B, a[0], 0);
    assert_eq!(t.t.stats().wasted, u64::from(BLOCK_LEN));
    assert_eq!(t.t.stats().peers, 3);
}

#[test]
fn silent_peer_is_snubbed_and_its_blocks_go_elsewhere() {
    let mut t = T::new(2, 4, TorrentConfig::default());
    let a = t.seed_peer(A, true);
    let mut out = Vec::new();
    for _ in 0..61 {
        t.now += Duration::from_secs(1);
        t.t.handle_timeout(t.now);
        out.extend(t.drain());
    }
    let a_stats = t.t.peer_stats().find(|(k, _)| *k == A).unwrap().1;
    assert!(a_stats.snubbed);
    assert_eq!(
        a_stats.requests_in_flight, 1,
        "a snubbed peer keeps one request"
    );
    let cancelled: Vec<Message> = sent(&out, A)
        .into_iter()
        .filter(|m| matches!(m, Message::Cancel(_)))
        .collect();
    for r in &a {
        assert!(
            cancelled.contains(&Message::Cancel(*r)),
            "{r:?} not handed back"
        );
    }
    // A newcomer is asked for what A was sitting on.
    let b = t.seed_peer(B, true);
    assert!(a.iter().filter(|r| b.contains(r)).count() >= 3, "{b:?}");
    // Snubbed peers get no regular unchoke slot from a leecher.
    assert!(a_stats.am_choking);
}

#[test]
fn timed_out_block_is_asked_of_another_peer() {
    let config = TorrentConfig {
        block_timeout: Duration::from_secs(5),
        ..TorrentConfig::default()
    };
    let mut t = T::new(8, 4, config);
    let a = t.seed_peer(A, true);
    t.advance(Duration::from_secs(3));
    let mut b = t.seed_peer(B, true);
    assert!(b.iter().all(|r| r.piece != a[0].piece));
    // B answers everything at once; A is silent. Once A's requests time out, B is asked
    // for them before any new piece.
    t.advance(Duration::from_secs(3));
    let mut asked = Vec::new();
    for _ in 0..3 {
        let mut next = Vec::new();
        for r in std::mem::take(&mut b) {
            next.extend(requests(&t.block(B, r, 0), B));
        }
        asked.extend(next.iter().copied());
        b = next;
    }
    let first_new = asked
        .iter()
        .position(|r| !a.contains(r) && r.piece != asked[0].piece);
    for r in &a {
        let at = asked.iter().position(|x| x == r);
        assert!(at.is_some(), "{r:?} not re-requested from B: {asked:?}");
        assert!(
            at < first_new.or(Some(usize::MAX)),
            "orphaned blocks first: {asked:?}"
        );
    }
    // A's late answer is still taken if the block is still missing, dropped otherwise.
    t.block(A, a[0], 0);
    t.drain();
}

#[test]
fn sole_contributor_of_a_bad_piece_is_banned() {
    let mut t = T::new(2, 2, TorrentConfig::default());
    let reqs = t.seed_peer(A, true);
    let piece = reqs[0].piece;
    for b in reqs.iter().filter(|r| r.piece == piece) {
        t.block(A, *b, 9);
    }
    let out = t.verified(
        piece,
        Verification::Failed {
            block_digests: None,
        },
    );
    assert!(out.contains(&Action::Ban {
        addr: addr(A).ip(),
        reason: BanReason::SoleContributor { piece }
    }));
    assert_eq!(disconnect_reason(&out, A), Some(DisconnectReason::Banned));
    assert!(t.t.is_banned(addr(A).ip()));
    assert_eq!(
        disconnect_reason(&t.connect(A, true), A),
        Some(DisconnectReason::Banned)
    );
    assert_eq!(
        t.events(),
        vec![
            Event::PieceFailed { piece },
            Event::PeerBanned { addr: addr(A).ip() }
        ]
    );
}

/// Smart ban proper: A and B share a piece, B's block is bad. The failure bans nobody; the
/// re-download passes and the digests convict B only.
#[test]
fn smart_ban_convicts_the_sender_of_the_differing_block() {
    let mut t = T::new(1, 4, TorrentConfig::default());
    let a = t.seed_peer(A, true);
    t.block(A, a[0], 1);
    t.block(A, a[1], 2);
    t.msg(A, Message::Choke);
    t.msg(A, Message::RejectRequest(a[2]));
    t.msg(A, Message::RejectRequest(a[3]));
    let b = t.seed_peer(B, true);
    assert_eq!(b, a[2..].to_vec());
    t.block(B, b[0], 0xee);
    let out = t.block(B, b[1], 4);
    assert!(
        out.contains(&Action::VerifyPiece {
            piece: 0,
            block_digests: true
        }),
        "shared piece: digests"
    );
    let good = [[1; 20], [2; 20], [3; 20], [4; 20]];
    let bad = [[1; 20], [2; 20], [0xee; 20], [4; 20]];
    let out = t.verified(
        0,
        Verification::Failed {
            block_digests: Some(bad.to_vec()),
        },
    );
    assert!(
        !out.iter().any(|x| matches!(x, Action::Ban { .. })),
        "blame is shared: {out:?}"
    );
    // Re-download from A only.
    t.msg(B, Message::Choke);
    for r in requests(&out, B) {
        t.msg(B, Message::RejectRequest(r));
    }
    let again = requests(&t.msg(A, Message::Unchoke), A);
    let mut verify = Vec::new();
    for (i, r) in again.iter().enumerate() {
        verify.extend(t.block(A, *r, i as u8 + 1));
    }
    assert!(verify.contains(&Action::VerifyPiece {
        piece: 0,
        block_digests: true
    }));
    let out = t.verified(
        0,
        Verification::Passed {
            block_digests: Some(good.to_vec()),
        },
    );
    assert!(out.contains(&Action::Ban {
        addr: addr(B).ip(),
        reason: BanReason::BadBlock { piece: 0 }
    }));
    assert!(!t.t.is_banned(addr(A).ip()));
}

#[test]
fn seed_round_robin_rotates_the_slot() {
    let config = TorrentConfig {
        unchoke_slots: 1,
        seed_quota_pieces: 1,
        ..TorrentConfig::default()
    };
    let mut s = T::seeding(8, 1, config);
    for k in [A, B, C] {
        s.connect(k, true);
        s.msg(k, Message::Interested);
    }
    let mut holders = std::collections::BTreeSet::new();
    for _ in 0..6 {
        // Serve one piece's worth to every unchoked peer, then rechoke.
        for (k, st) in s.t.peer_stats().collect::<Vec<_>>() {
            if !st.am_choking && !st.optimistic {
                holders.insert(k);
                let b = BlockRef {
                    piece: 0,
                    offset: 0,
                    length: BLOCK_LEN,
                };
                s.msg(k, Message::Request(b));
                s.t.block_sent(s.now, k, b);
            }
        }
        for _ in 0..10 {
            s.advance(Duration::from_secs(1));
        }
        s.drain();
    }
    assert_eq!(
        holders.len(),
        3,
        "every peer got the regular slot in turn: {holders:?}"
    );
}

#[test]
fn unwanted_pieces_are_not_requested_and_completion_follows_wanted() {
    let mut t = T::new(4, 1, TorrentConfig::default());
    let mut wanted = Bitfield::new(4);
    wanted.set(2).unwrap();
    t.t.set_wanted(&wanted);
    let reqs = t.seed_peer(A, true);
    assert_eq!(
        reqs,
        vec![BlockRef {
            piece: 2,
            offset: 0,
            length: BLOCK_LEN
        }]
    );
    t.block(A, reqs[0], 0);
    let out = t.verified(2, passed());
    assert!(sent(&out, A).contains(&Message::NotInterested));
    assert!(t.t.is_finished() && !t.t.is_complete());
    assert_eq!(t.events(), vec![Event::PieceVerified(2), Event::Completed]);
}

#[test]
fn candidates_become_connects_deduplicated_and_backed_off() {
    let config = TorrentConfig {
        connections_max: 2,
        ..TorrentConfig::default()
    };
    let mut t = T::new(4, 1, config);
    let now = t.now;
    t.t.add_peer_candidates(now, [addr(A), addr(B), addr(A), addr(C)]);
    let connects: Vec<_> = t
        .drain()
        .into_iter()
        .filter(|a| matches!(a, Action::Connect { .. }))
        .collect();
    assert_eq!(
        connects,
        vec![
            Action::Connect { addr: addr(A) },
            Action::Connect { addr: addr(B) }
        ]
    );
    t.t.connect_failed(now, addr(A));
    assert_eq!(t.drain(), vec![Action::Connect { addr: addr(C) }]);
    t.t.connect_failed(now, addr(B));
    t.t.connect_failed(now, addr(C));
    assert!(
        t.drain().is_empty(),
        "failed candidates wait before a retry"
    );
    t.advance(Duration::from_secs(31));
    assert_eq!(
        t.drain()
            .iter()
            .filter(|a| matches!(a, Action::Connect { .. }))
            .count(),
        2
    );
}

#[path = "choke_tests.rs"]
mod choke;
