//! Torrent-level tests of when unchoke slots change hands and what a seed is asked for:
//! the disconnect ordering (sim finding 2) and issue 7's quota rotation and fresh pieces from
//! seeds; the netns benchmark's findings (regular slots only for interested peers, no slot
//! taken on a tie, one connection per peer id). Uses the hand-driven torrent of `tests.rs`.

use super::*;
use crate::UPLOAD_WINDOW_MIN;

/// Regression (sim finding 2): the slot freed by a disconnect was given to a waiting peer
/// before the `Disconnect` went out, so for a moment one peer too many was unchoked.
#[test]
fn disconnect_goes_out_before_its_slot_is_refilled() {
    let config = TorrentConfig {
        unchoke_slots: 1,
        ..TorrentConfig::default()
    };
    let mut s = T::seeding(8, 1, config);
    for k in [A, B, C] {
        s.connect(k, true);
        s.msg(k, Message::Interested);
    }
    let unchoked = |s: &T| {
        s.t.peer_stats()
            .filter(|(_, st)| !st.am_choking)
            .map(|(k, _)| k)
            .collect::<Vec<_>>()
    };
    assert_eq!(unchoked(&s), vec![A, B], "A regular, B optimistic, C waits");
    let actions = s.msg(A, Message::Have { piece: 100 });
    let gone = actions
        .iter()
        .position(|a| matches!(a, Action::Disconnect { peer, .. } if *peer == A));
    let refill = actions
        .iter()
        .position(|a| matches!(a, Action::Send { peer, message: Message::Unchoke } if *peer == C));
    assert!(gone.is_some() && refill.is_some(), "{actions:?}");
    assert!(gone < refill, "Disconnect first: {actions:?}");
}

/// Issue 7 (sim finding 3): a seed's regular slot and the optimistic slot move on as soon as
/// the holder has had its one-piece quota and someone waits — at the piece boundary, so the
/// blocks of the piece it is getting are still served — not at the next 10 s / 30 s timer.
#[test]
fn quota_moves_slots_on_at_a_piece_boundary_without_waiting_for_the_timer() {
    let config = TorrentConfig {
        unchoke_slots: 1,
        ..TorrentConfig::default()
    };
    let mut s = T::seeding(8, 2, config);
    for k in [A, B, C] {
        s.connect(k, true);
        s.msg(k, Message::Interested);
    }
    let block = |piece, b: u32| BlockRef {
        piece,
        offset: b * BLOCK_LEN,
        length: BLOCK_LEN,
    };
    let served = |actions: &[Action], key| {
        actions
            .iter()
            .filter(|a| matches!(a, Action::ServeBlock { peer, .. } if *peer == key))
            .count()
    };
    // A holds the regular slot: piece 0 is served whole, the start of piece 1 is refused
    // and the slot goes to C at once.
    let mut actions = s.msg(A, Message::Request(block(0, 0)));
    actions.extend(s.msg(A, Message::Request(block(0, 1))));
    assert_eq!(served(&actions, A), 2);
    let actions = s.msg(A, Message::Request(block(1, 0)));
    assert_eq!(served(&actions, A), 0, "{actions:?}");
    assert!(sent(&actions, A).contains(&Message::Choke), "{actions:?}");
    assert!(sent(&actions, C).contains(&Message::Unchoke), "{actions:?}");
    // B holds the optimistic slot: the same after its piece, and A (waiting) takes it.
    s.msg(B, Message::Request(block(2, 0)));
    s.msg(B, Message::Request(block(2, 1)));
    let actions = s.msg(B, Message::Request(block(3, 0)));
    assert!(sent(&actions, B).contains(&Message::Choke), "{actions:?}");
    assert!(sent(&actions, A).contains(&Message::Unchoke), "{actions:?}");
}

/// Issue 7: from a seed, a piece nobody else has goes before an abandoned partial piece that
/// a non-seed peer could finish (an initial seed sent a third of its first copy twice).
#[test]
fn a_seed_is_asked_for_what_nobody_else_has_first() {
    let mut t = T::new(4, 2, TorrentConfig::default());
    t.connect(A, false);
    let mut bits = Bitfield::new(4);
    let _ = bits.set(0);
    t.msg(A, bits.to_message());
    let a = requests(&t.msg(A, Message::Unchoke), A);
    assert!(!a.is_empty() && a.iter().all(|r| r.piece == 0), "{a:?}");
    t.msg(A, Message::Choke); // piece 0 is abandoned, A can still finish it
    let b = t.seed_peer(B, true);
    assert!(!b.is_empty(), "the seed is asked for something");
    assert!(b.iter().all(|r| r.piece != 0), "{b:?}");
}

/// Issue 7: when the piece's last block has gone out and the holder asks for nothing more
/// (its next requests are still on the way, or a super-seeded peer waits for its next piece),
/// the slot moves on then, not at its next request — the slot would sit idle meanwhile.
#[test]
fn quota_moves_an_idle_slot_on_when_its_piece_went_out() {
    let config = TorrentConfig {
        unchoke_slots: 1,
        ..TorrentConfig::default()
    };
    let mut s = T::seeding(8, 2, config);
    for k in [A, B, C] {
        s.connect(k, true);
        s.msg(k, Message::Interested);
    }
    let blocks: Vec<BlockRef> = (0..2)
        .map(|b| BlockRef {
            piece: 0,
            offset: b * BLOCK_LEN,
            length: BLOCK_LEN,
        })
        .collect();
    for &b in &blocks {
        s.msg(A, Message::Request(b));
    }
    s.t.block_sent(s.now, A, blocks[0]);
    assert!(
        !sent(&s.drain(), A).contains(&Message::Choke),
        "not mid-piece"
    );
    s.t.block_sent(s.now, A, blocks[1]);
    let actions = s.drain();
    assert!(sent(&actions, A).contains(&Message::Choke), "{actions:?}");
    assert!(sent(&actions, C).contains(&Message::Unchoke), "{actions:?}");
}

const D: PeerKey = PeerKey(4);

/// Who holds our unchoke now: `(peer, optimistic)`, in key order.
fn unchoked(t: &T) -> Vec<(PeerKey, bool)> {
    let mut v: Vec<_> =
        t.t.peer_stats()
            .filter(|(_, st)| !st.am_choking)
            .map(|(k, st)| (k, st.optimistic))
            .collect();
    v.sort_by_key(|&(k, _)| k.0);
    v
}

/// Netns addendum 5: a peer that gave us data but is not interested in us (here a seed)
/// counted as a tit-for-tat "partner" and took a regular slot at the rechoke, so one slot
/// fewer went to peers that want something. Regular slots go only to interested peers.
#[test]
fn regular_slots_go_only_to_interested_peers() {
    let config = TorrentConfig {
        unchoke_slots: 1,
        ..TorrentConfig::default()
    };
    let mut t = T::new(8, 2, config);
    let asked = t.seed_peer(A, true);
    let first = *asked.first().expect("the seed is asked for a block");
    t.block(A, first, 1); // A gave us data; it is a seed and never interested
    for k in [B, C] {
        t.connect(k, true);
        t.msg(k, Message::Interested);
    }
    assert_eq!(unchoked(&t), vec![(B, false), (C, true)]);
    t.advance(Duration::from_secs(10)); // rechoke
    let actions = t.drain();
    assert!(
        !sent(&actions, A).contains(&Message::Unchoke),
        "{actions:?}"
    );
    assert_eq!(
        unchoked(&t),
        vec![(B, false), (C, true)],
        "A must not hold a slot"
    );
}

/// Netns addendum 7: a newly interested peer took the regular slot of a holder that was not
/// interested whenever it had given us no less — both 0, so a free-rider that toggles its
/// interest re-grabbed a slot between rechokes. A newcomer takes only a free slot.
#[test]
fn a_newcomer_never_displaces_a_regular_holder_on_a_tie() {
    let config = TorrentConfig {
        unchoke_slots: 1,
        ..TorrentConfig::default()
    };
    let mut s = T::seeding(8, 2, config);
    for k in [A, B] {
        s.connect(k, true);
        s.msg(k, Message::Interested);
    }
    assert_eq!(unchoked(&s), vec![(A, false), (B, true)]);
    s.msg(A, Message::NotInterested); // A is idle, its slot is still its own
    s.connect(C, true);
    for _ in 0..3 {
        let mut actions = s.msg(C, Message::Interested);
        actions.extend(s.msg(C, Message::NotInterested));
        assert!(sent(&actions, A).is_empty(), "{actions:?}");
        assert!(sent(&actions, C).is_empty(), "{actions:?}");
    }
    s.msg(C, Message::Interested);
    assert_eq!(unchoked(&s), vec![(A, false), (B, true)]);
    // A free slot is still taken at once.
    let actions = s.msg(A, Message::Have { piece: 100 });
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Disconnect { peer, .. } if *peer == A)),
        "{actions:?}"
    );
    assert_eq!(unchoked(&s), vec![(B, true), (C, false)]);
}

/// Netns addendum 6: the same peer connected twice (both sides dialled, or after a
/// re-announce) was kept twice, so every peer counted each other double. The newer
/// connection of a peer id already connected is closed; an all-zero id proves nothing.
#[test]
fn a_second_connection_to_a_connected_peer_id_is_closed() {
    let mut t = T::new(8, 2, TorrentConfig::default());
    let info = |key: PeerKey, peer_id| PeerInfo {
        addr: addr(key),
        peer_id,
        fast: true,
        extensions: true,
        outgoing: false,
    };
    let now = t.now;
    t.t.peer_connected(now, A, info(A, [9; 20]));
    assert!(t
        .drain()
        .iter()
        .all(|a| !matches!(a, Action::Disconnect { .. })));
    t.t.peer_connected(now, B, info(B, [9; 20]));
    let actions = t.drain();
    assert_eq!(
        actions,
        vec![Action::Disconnect {
            peer: B,
            reason: DisconnectReason::DuplicatePeer
        }]
    );
    for k in [C, D] {
        t.t.peer_connected(now, k, info(k, [0; 20]));
    }
    let actions = t.drain();
    assert!(
        actions
            .iter()
            .all(|a| !matches!(a, Action::Disconnect { .. })),
        "{actions:?}"
    );
    let mut keys: Vec<u64> = t.t.peer_stats().map(|(k, _)| k.0).collect();
    keys.sort_unstable();
    assert_eq!(keys, vec![A.0, C.0, D.0]);
}

#[test]
fn both_ends_of_a_simultaneous_dial_keep_the_same_connection() {
    // Peers X (id 1…) and Y (id 2…) dial each other at once. Connection P is X's dial, Q is
    // Y's. Each end sees both, in either order; both must keep P (dialled by the lower id).
    let x_id = [1; 20];
    let y_id = [2; 20];
    let info = |key: PeerKey, peer_id, outgoing| PeerInfo {
        addr: addr(key),
        peer_id,
        fast: true,
        extensions: true,
        outgoing,
    };
    for x_first_sees_p in [true, false] {
        for (own, other, p_is_outgoing_here) in [(x_id, y_id, true), (y_id, x_id, false)] {
            let config = TorrentConfig {
                own_peer_id: own,
                ..TorrentConfig::default()
            };
            let mut t = T::new(8, 2, config);
            let now = t.now;
            let (p, q) = (A, B);
            let order = if x_first_sees_p { [p, q] } else { [q, p] };
            for key in order {
                let outgoing = (key == p) == p_is_outgoing_here;
                t.t.peer_connected(now, key, info(key, other, outgoing));
            }
            let closed: Vec<PeerKey> = t
                .drain()
                .into_iter()
                .filter_map(|a| match a {
                    Action::Disconnect { peer, reason } => {
                        assert_eq!(reason, DisconnectReason::DuplicatePeer);
                        Some(peer)
                    }
                    _ => None,
                })
                .collect();
            assert_eq!(closed, vec![q], "own {:?}, order {order:?}", own[0]);
            let kept: Vec<PeerKey> = t.t.peer_stats().map(|(k, _)| k).collect();
            assert_eq!(kept, vec![p]);
        }
    }
}

/// Tit-for-tat in the optimistic slot: a peer that had an optimistic unchoke from us and
/// never unchoked us in return, though it has what we want (a free-rider), is picked half as
/// often as peers that did.
#[test]
fn optimistic_slot_favours_peers_that_answered_an_unchoke() {
    let config = TorrentConfig {
        unchoke_slots: 1,
        ..TorrentConfig::default()
    };
    let mut t = T::new(8, 2, config);
    let e = PeerKey(5);
    for k in [A, B, C, D, e] {
        t.connect(k, true);
        t.msg(k, Message::Interested);
        for piece in 0..6 {
            t.msg(k, Message::Have { piece }); // not a starter, and we want what it has
        }
    }
    let mut picked = std::collections::BTreeMap::<PeerKey, u32>::new();
    for round in 0..1000 {
        t.advance(Duration::from_secs(30));
        for k in [A, B, C, D, e] {
            t.msg(k, Message::KeepAlive);
        }
        let holder = unchoked(&t).into_iter().find(|&(_, optimistic)| optimistic);
        if let Some((k, _)) = holder {
            // Everyone but B answers an unchoke with one of its own.
            if k != B {
                t.msg(k, Message::Unchoke);
            }
            if round >= 40 {
                *picked.entry(k).or_default() += 1;
            }
        }
    }
    let b = picked.get(&B).copied().unwrap_or(0);
    let others: Vec<u32> = [C, D, e]
        .iter()
        .map(|k| picked.get(k).copied().unwrap_or(0))
        .collect();
    let mean = f64::from(others.iter().sum::<u32>()) / 3.0;
    assert!(
        f64::from(b) < 0.85 * mean && b > 0,
        "B (never answers) picked {b} times, the others {others:?}"
    );
}

/// Issue 7: how many blocks a peer may have handed to the runtime follows our upload rate
/// (`upload_queue_time` of it per unchoked peer): two while we send slowly, so that our own
/// messages to it do not wait behind seconds of queued blocks, up to `upload_in_flight_max`
/// while we send fast.
#[test]
fn upload_window_follows_the_upload_rate() {
    let config = TorrentConfig {
        unchoke_slots: 1,
        ..TorrentConfig::default()
    };
    let max = config.upload_in_flight_max;
    let mut s = T::seeding(8, 16, config);
    s.connect(A, true);
    s.msg(A, Message::Interested);
    let mut in_flight = std::collections::VecDeque::new();
    let take = |actions: Vec<Action>, in_flight: &mut std::collections::VecDeque<BlockRef>| {
        for a in actions {
            if let Action::ServeBlock { peer, block } = a {
                assert_eq!(peer, A);
                in_flight.push_back(block);
            }
        }
    };
    for i in 0..96 {
        let block = BlockRef {
            piece: i / 16,
            offset: (i % 16) * BLOCK_LEN,
            length: BLOCK_LEN,
        };
        let actions = s.msg(A, Message::Request(block));
        take(actions, &mut in_flight);
    }
    assert_eq!(
        in_flight.len(),
        UPLOAD_WINDOW_MIN,
        "nothing sent yet: the minimum"
    );
    // The runtime sends 40 blocks at once: a fast link, the window opens to the maximum.
    for _ in 0..40 {
        let block = in_flight.pop_front().expect("a block in flight");
        s.t.block_sent(s.now, A, block);
        let actions = s.drain();
        take(actions, &mut in_flight);
    }
    assert_eq!(in_flight.len(), max);
    // Ten quiet seconds later the rate is gone: as blocks go out, the peer is served again
    // only once fewer than the minimum are in flight.
    s.advance(Duration::from_secs(10));
    s.drain();
    for _ in 0..max {
        let block = in_flight.pop_front().expect("a block in flight");
        s.t.block_sent(s.now, A, block);
        let actions = s.drain();
        take(actions, &mut in_flight);
    }
    assert_eq!(in_flight.len(), UPLOAD_WINDOW_MIN);
}
