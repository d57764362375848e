//! Tests of [`MetadataFetch`]: a scripted swarm of honest, lying and silent peers answering
//! its requests, with SHA-1 checked the way the runtime does, plus property tests over
//! arbitrary event sequences.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bitswarm_wire::extended::METADATA_PIECE_LEN;
use bitswarm_wire::{ExtendedHandshake, Message, MetadataMessage};
use bytes::Bytes;
use proptest::prelude::*;
use sha1::{Digest, Sha1};

use super::*;

/// The peer's own id for `ut_metadata` (different from ours, to catch mix-ups).
const THEIR_ID: u8 = 7;

fn info(n: u8, fast: bool) -> PeerInfo {
    PeerInfo {
        addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)), 6881),
        peer_id: [n; 20],
        fast,
        extensions: true,
        outgoing: true,
    }
}

fn handshake(size: Option<u64>, metadata: bool) -> Message {
    let mut hs = ExtendedHandshake {
        metadata_size: size,
        ..ExtendedHandshake::default()
    };
    if metadata {
        hs.extensions.insert("ut_metadata".to_owned(), THEIR_ID);
    }
    hs.to_message()
}

fn metadata(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

/// How a scripted peer answers requests.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Behaviour {
    Honest,
    /// Sends bytes of the right size that do not hash right.
    Liar,
    /// Rejects everything.
    Rejecter,
    /// Never answers.
    Silent,
}

struct Swarm {
    fetch: MetadataFetch,
    now: Instant,
    truth: Bytes,
    hash: [u8; 20],
    peers: Vec<(PeerKey, Behaviour)>,
    verified: Option<Bytes>,
    bans: Vec<IpAddr>,
    disconnects: Vec<(PeerKey, FetchDisconnectReason)>,
    /// Requests received per peer.
    asked: Vec<(PeerKey, u32)>,
}

impl Swarm {
    fn new(len: usize) -> Self {
        let truth = metadata(len, 1);
        let hash = Sha1::digest(&truth).into();
        Self {
            fetch: MetadataFetch::new("test", Some(1)),
            now: Instant::now(),
            truth,
            hash,
            peers: Vec::new(),
            verified: None,
            bans: Vec::new(),
            disconnects: Vec::new(),
            asked: Vec::new(),
        }
    }

    fn join(&mut self, n: u8, behaviour: Behaviour, size: Option<u64>) -> PeerKey {
        let key = PeerKey(u64::from(n));
        self.peers.push((key, behaviour));
        self.fetch.peer_connected(self.now, key, &info(n, true));
        self.fetch
            .peer_message(self.now, key, &handshake(size, true));
        key
    }

    fn size(&self) -> u64 {
        self.truth.len() as u64
    }

    /// Delivers actions and the answers they provoke until nothing moves.
    fn run(&mut self) {
        for _ in 0..10_000 {
            self.fetch.check_invariants().unwrap();
            let Some(action) = self.fetch.poll_action() else {
                return;
            };
            match action {
                FetchAction::Send { peer, message } => self.answer(peer, &message),
                FetchAction::Verify { metadata } => {
                    let ok = <[u8; 20]>::from(Sha1::digest(&metadata)) == self.hash;
                    if ok {
                        self.verified = Some(metadata);
                    }
                    self.fetch.verified(self.now, ok);
                }
                FetchAction::Disconnect { peer, reason } => {
                    self.disconnects.push((peer, reason));
                    self.peers.retain(|(k, _)| *k != peer);
                }
                FetchAction::Ban { addr } => self.bans.push(addr),
            }
        }
        panic!("no quiescence");
    }

    fn answer(&mut self, key: PeerKey, message: &Message) {
        let Message::Extended { id, payload } = message else {
            return;
        };
        let Ok(MetadataMessage::Request { piece }) = MetadataMessage::parse(payload) else {
            return;
        };
        assert_eq!(*id, THEIR_ID, "requests use the peer's id");
        self.asked.push((key, piece));
        let Some(&(_, behaviour)) = self.peers.iter().find(|(k, _)| *k == key) else {
            return;
        };
        let start = piece as usize * METADATA_PIECE_LEN;
        let end = (start + METADATA_PIECE_LEN).min(self.truth.len());
        let reply = match behaviour {
            Behaviour::Silent => return,
            _ if start >= end => MetadataMessage::Reject { piece },
            Behaviour::Rejecter => MetadataMessage::Reject { piece },
            Behaviour::Honest => MetadataMessage::Data {
                piece,
                total_size: self.size(),
                data: self.truth.slice(start..end),
            },
            Behaviour::Liar => MetadataMessage::Data {
                piece,
                total_size: self.size(),
                data: Bytes::from(vec![0xEE; end - start]),
            },
        };
        let reply = reply.to_message(UT_METADATA_ID);
        self.fetch.peer_message(self.now, key, &reply);
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.fetch.handle_timeout(self.now);
        self.run();
    }
}

#[test]
fn handshake_is_sent_with_have_none_and_our_id() {
    let mut f = MetadataFetch::new("bitswarm test", Some(6881));
    f.peer_connected(Instant::now(), PeerKey(1), &info(1, true));
    assert_eq!(
        f.poll_action(),
        Some(FetchAction::Send {
            peer: PeerKey(1),
            message: Message::HaveNone
        })
    );
    let Some(FetchAction::Send {
        message: Message::Extended { id: 0, payload },
        ..
    }) = f.poll_action()
    else {
        panic!("no extension handshake");
    };
    let hs = ExtendedHandshake::parse(&payload).unwrap();
    assert_eq!(hs.extension_id("ut_metadata"), Some(UT_METADATA_ID));
    assert_eq!(hs.port, Some(6881));
    assert_eq!(hs.metadata_size, None, "we have none to offer");
}

#[test]
fn one_honest_peer_gives_the_metadata() {
    let mut s = Swarm::new(40_000);
    s.join(1, Behaviour::Honest, Some(40_000));
    s.run();
    assert!(s.verified.as_ref() == Some(&s.truth));
    assert!(s.fetch.is_done());
    assert_eq!(s.fetch.stats().piece_count, 3);
}

#[test]
fn pieces_are_spread_over_several_peers() {
    let mut s = Swarm::new(10 * METADATA_PIECE_LEN);
    // Join silent peers first so their requests stay outstanding and visible.
    for n in 1..=3 {
        s.join(n, Behaviour::Silent, Some(s.size()));
    }
    s.run();
    let mut per_peer = std::collections::HashMap::new();
    for (key, _) in &s.asked {
        *per_peer.entry(*key).or_insert(0) += 1;
    }
    assert_eq!(per_peer.len(), 3, "every peer is asked: {per_peer:?}");
    assert!(
        per_peer.values().all(|&n| n <= METADATA_PEER_IN_FLIGHT_MAX),
        "{per_peer:?}"
    );
    let pieces: std::collections::HashSet<u32> = s.asked.iter().map(|(_, p)| *p).collect();
    assert_eq!(pieces.len(), 10, "no piece asked twice while others wait");
}

#[test]
fn timeouts_and_rejects_move_pieces_to_other_peers() {
    let mut s = Swarm::new(5 * METADATA_PIECE_LEN);
    s.join(1, Behaviour::Silent, Some(s.size()));
    s.join(2, Behaviour::Rejecter, Some(s.size()));
    s.run();
    assert!(s.verified.is_none());
    s.join(3, Behaviour::Honest, Some(s.size()));
    s.run();
    // The honest peer takes what is free now; the silent peer's pieces wait for its timeout.
    s.advance(METADATA_REQUEST_TIMEOUT);
    s.advance(METADATA_PEER_BACKOFF);
    assert!(s.verified.as_ref() == Some(&s.truth));
    assert!(s.fetch.poll_timeout().is_none());
}

#[test]
fn a_sole_liar_is_banned_and_the_honest_peer_completes() {
    let mut s = Swarm::new(3 * METADATA_PIECE_LEN + 100);
    s.join(1, Behaviour::Liar, Some(s.size()));
    s.run();
    assert_eq!(s.bans, vec![info(1, true).addr.ip()]);
    assert_eq!(
        s.disconnects,
        vec![(PeerKey(1), FetchDisconnectReason::Banned)]
    );
    assert_eq!(s.fetch.stats().hash_failures, 1);
    s.join(2, Behaviour::Honest, Some(s.size()));
    s.run();
    assert!(s.verified.as_ref() == Some(&s.truth));
    // A banned address is refused when it comes back.
    s.fetch.peer_connected(s.now, PeerKey(9), &info(1, false));
    assert_eq!(
        s.fetch.poll_action(),
        Some(FetchAction::Disconnect {
            peer: PeerKey(9),
            reason: FetchDisconnectReason::Banned
        })
    );
}

#[test]
fn shared_blame_strikes_then_bans_the_liar() {
    let mut s = Swarm::new(8 * METADATA_PIECE_LEN);
    s.join(1, Behaviour::Liar, Some(s.size()));
    s.join(2, Behaviour::Honest, Some(s.size()));
    s.run();
    // The first attempt mixes both peers' pieces and fails; the next comes from one peer
    // (the liar has the lower key, so it goes first, fails alone and is banned); the honest
    // peer's attempt passes.
    assert_eq!(s.bans, vec![info(1, true).addr.ip()]);
    assert!(s.verified.as_ref() == Some(&s.truth));
    assert_eq!(s.fetch.stats().hash_failures, 2);

    // The honest peer goes first this time: its single-source attempt passes and the
    // comparison with the failed attempt convicts the liar.
    let mut s = Swarm::new(8 * METADATA_PIECE_LEN);
    s.join(1, Behaviour::Honest, Some(s.size()));
    s.join(2, Behaviour::Liar, Some(s.size()));
    s.run();
    assert!(s.verified.as_ref() == Some(&s.truth));
    assert_eq!(s.fetch.stats().hash_failures, 1);
    assert_eq!(s.bans, vec![info(2, true).addr.ip()]);
}

#[test]
fn disagreeing_sizes_follow_the_majority_and_recover_from_a_wrong_one() {
    let mut s = Swarm::new(2 * METADATA_PIECE_LEN);
    // The first peer claims a bigger size and sends bytes for it.
    let big = 3 * METADATA_PIECE_LEN as u64;
    let truth = s.truth.clone();
    s.truth = metadata(big as usize, 9);
    s.join(1, Behaviour::Honest, Some(big));
    s.run();
    assert_eq!(
        s.bans,
        vec![info(1, true).addr.ip()],
        "hash fails, sole sender"
    );
    s.truth = truth;
    s.join(2, Behaviour::Silent, Some(s.size()));
    s.join(3, Behaviour::Honest, Some(s.size()));
    s.run();
    assert!(s.verified.is_none(), "the silent peer holds every request");
    s.advance(METADATA_REQUEST_TIMEOUT);
    assert!(s.verified.as_ref() == Some(&s.truth));

    // Two peers announce the true size, one another: the majority's size is fetched, and
    // the odd peer is never asked.
    let mut s = Swarm::new(METADATA_PIECE_LEN + 1);
    s.join(1, Behaviour::Silent, Some(999));
    s.join(2, Behaviour::Silent, Some(s.size()));
    s.join(3, Behaviour::Silent, Some(s.size()));
    s.run();
    assert_eq!(
        s.fetch.stats().size,
        Some(999),
        "the first size is kept while announced"
    );
    s.fetch.peer_disconnected(s.now, PeerKey(1));
    s.run();
    assert_eq!(s.fetch.stats().size, Some(s.size()));
    assert!(s.asked.iter().any(|(k, _)| *k == PeerKey(2)));
}

#[test]
fn oversized_and_missing_extension_are_handled() {
    let mut f = MetadataFetch::new("t", None);
    let now = Instant::now();
    f.peer_connected(now, PeerKey(1), &info(1, false));
    f.peer_message(
        now,
        PeerKey(1),
        &handshake(Some(METADATA_SIZE_MAX + 1), true),
    );
    assert_eq!(f.stats().size, None, "an oversized claim is ignored");
    f.peer_connected(now, PeerKey(2), &info(2, false));
    f.peer_message(now, PeerKey(2), &handshake(Some(100), false));
    let actions: Vec<_> = std::iter::from_fn(|| f.poll_action()).collect();
    assert!(actions.contains(&FetchAction::Disconnect {
        peer: PeerKey(2),
        reason: FetchDisconnectReason::NoMetadataExtension
    }));
    let mut no_ext = info(3, false);
    no_ext.extensions = false;
    f.peer_connected(now, PeerKey(3), &no_ext);
    assert_eq!(
        f.poll_action(),
        Some(FetchAction::Disconnect {
            peer: PeerKey(3),
            reason: FetchDisconnectReason::NoExtensionProtocol
        })
    );
}

#[test]
fn unrequested_data_ends_the_connection() {
    let mut f = MetadataFetch::new("t", None);
    let now = Instant::now();
    f.peer_connected(now, PeerKey(1), &info(1, false));
    f.peer_message(
        now,
        PeerKey(1),
        &handshake(Some(20 * METADATA_PIECE_LEN as u64), true),
    );
    let data = MetadataMessage::Data {
        piece: 19,
        total_size: 20 * METADATA_PIECE_LEN as u64,
        data: Bytes::from(vec![0; METADATA_PIECE_LEN]),
    }
    .to_message(UT_METADATA_ID);
    for _ in 0..=METADATA_UNREQUESTED_MAX {
        f.peer_message(now, PeerKey(1), &data);
    }
    let actions: Vec<_> = std::iter::from_fn(|| f.poll_action()).collect();
    assert!(actions.contains(&FetchAction::Disconnect {
        peer: PeerKey(1),
        reason: FetchDisconnectReason::UnrequestedData
    }));
    assert_eq!(f.stats().peers, 0);
    f.check_invariants().unwrap();
}

/// One step of an arbitrary scenario.
#[derive(Debug, Clone)]
enum Step {
    Join(u8, u8, Option<u32>),
    Leave(u8),
    Advance(u16),
    Garbage(u8, Vec<u8>),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u8..6, 0u8..4, proptest::option::of(1u32..70_000))
            .prop_map(|(n, b, s)| Step::Join(n, b, s)),
        (0u8..6).prop_map(Step::Leave),
        (0u16..8000).prop_map(Step::Advance),
        (0u8..6, proptest::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(n, b)| Step::Garbage(n, b)),
    ]
}

proptest! {
    /// Any mix of peers, sizes, departures, garbage and time keeps the bookkeeping sound;
    /// once an honest peer stays connected long enough, the true metadata is fetched.
    #[test]
    fn never_stuck_never_inconsistent(steps in proptest::collection::vec(step(), 0..40)) {
        let mut s = Swarm::new(50_000);
        let behaviours = [Behaviour::Honest, Behaviour::Liar, Behaviour::Rejecter, Behaviour::Silent];
        for step in steps {
            match step {
                Step::Join(n, b, size) => {
                    if !s.peers.iter().any(|(k, _)| k.0 == u64::from(n)) {
                        s.join(n, behaviours[usize::from(b)], size.map(u64::from));
                    }
                }
                Step::Leave(n) => {
                    s.peers.retain(|(k, _)| k.0 != u64::from(n));
                    s.fetch.peer_disconnected(s.now, PeerKey(u64::from(n)));
                }
                Step::Advance(ms) => s.now += Duration::from_millis(u64::from(ms)),
                Step::Garbage(n, bytes) => {
                    let message = Message::Extended { id: UT_METADATA_ID, payload: bytes.into() };
                    s.fetch.peer_message(s.now, PeerKey(u64::from(n)), &message);
                }
            }
            s.fetch.handle_timeout(s.now);
            s.run();
            if let Some(v) = &s.verified {
                prop_assert!(v == &s.truth);
            }
        }
        // An honest peer on a fresh address, then enough time for back-offs and timeouts.
        s.join(200, Behaviour::Honest, Some(s.size()));
        s.run();
        for _ in 0..20 {
            if s.fetch.is_done() {
                break;
            }
            s.advance(METADATA_REQUEST_TIMEOUT);
        }
        prop_assert!(s.fetch.is_done(), "stats {:?}", s.fetch.stats());
        prop_assert!(s.verified.as_ref() == Some(&s.truth));
    }
}
