//! Tests of the extension protocol in a running torrent: serving the info dictionary (BEP 9)
//! with its rate limit and private torrents, and PEX (BEP 11) both ways with its bounds.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use bitswarm_wire::extended::METADATA_PIECE_LEN;
use bitswarm_wire::{Bitfield, ExtendedHandshake, Message, MetadataMessage, PexFlags, PexMessage};
use bytes::Bytes;

use crate::{
    Action, Geometry, PeerInfo, PeerKey, Torrent, TorrentConfig, METADATA_REQUESTS_PER_SEC,
    METADATA_REQUEST_BURST, PEX_ADDED_MAX, PEX_FIRST_DELAY, PEX_INTERVAL, PEX_RECEIVED_ADDED_MAX,
    UT_METADATA_ID, UT_PEX_ID,
};

/// The ids the remote peers give the extensions (different from ours on purpose).
const THEIR_METADATA: u8 = 3;
const THEIR_PEX: u8 = 4;

struct T {
    t: Torrent,
    now: Instant,
}

impl T {
    fn new(connections_max: usize) -> Self {
        let now = Instant::now();
        let config = TorrentConfig {
            connections_max,
            ..TorrentConfig::default()
        };
        let g = Geometry::new(16_384, 16_384 * 4);
        Self {
            t: Torrent::new(g, Bitfield::new(4), config, 1, now),
            now,
        }
    }

    fn connect(&mut self, key: PeerKey, addr: SocketAddr, outgoing: bool) -> Vec<Action> {
        let info = PeerInfo {
            addr,
            peer_id: [key.0 as u8; 20],
            fast: true,
            extensions: true,
            outgoing,
        };
        self.t.peer_connected(self.now, key, info);
        self.drain()
    }

    /// The peer's extension handshake: both extensions, and `port` as its listen port.
    fn hello(&mut self, key: PeerKey, port: Option<u16>) -> Vec<Action> {
        let hs = ExtendedHandshake {
            extensions: [
                ("ut_metadata".to_owned(), THEIR_METADATA),
                ("ut_pex".to_owned(), THEIR_PEX),
            ]
            .into(),
            port,
            ..ExtendedHandshake::default()
        };
        self.msg(key, hs.to_message())
    }

    fn msg(&mut self, key: PeerKey, m: Message) -> Vec<Action> {
        self.t.peer_message(self.now, key, m);
        self.drain()
    }

    fn advance(&mut self, d: Duration) -> Vec<Action> {
        self.now += d;
        self.t.handle_timeout(self.now);
        self.drain()
    }

    fn drain(&mut self) -> Vec<Action> {
        self.t.check_invariants().expect("invariants");
        std::iter::from_fn(|| self.t.poll_action()).collect()
    }
}

fn v4(a: u8, b: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, a, b)), port)
}

/// Extended messages with id `id` sent to `key`.
fn extended(actions: &[Action], key: PeerKey, id: u8) -> Vec<Bytes> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send {
                peer,
                message: Message::Extended { id: i, payload },
            } if *peer == key && *i == id => Some(payload.clone()),
            _ => None,
        })
        .collect()
}

fn metadata_replies(actions: &[Action], key: PeerKey) -> Vec<MetadataMessage> {
    extended(actions, key, THEIR_METADATA)
        .iter()
        .map(|p| MetadataMessage::parse(p).unwrap())
        .collect()
}

fn request(piece: u32) -> Message {
    MetadataMessage::Request { piece }.to_message(UT_METADATA_ID)
}

fn pex(actions: &[Action], key: PeerKey) -> Vec<PexMessage> {
    extended(actions, key, THEIR_PEX)
        .iter()
        .map(|p| PexMessage::parse(p).unwrap())
        .collect()
}

#[test]
fn metadata_is_advertised_and_served_in_pieces() {
    let mut t = T::new(50);
    let info: Bytes = (0..40_000u32)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>()
        .into();
    t.t.set_metadata(info.clone());
    let a = PeerKey(1);
    let greeting = extended(&t.connect(a, v4(0, 1, 1), true), a, 0);
    let ours = ExtendedHandshake::parse(&greeting[0]).unwrap();
    assert_eq!(ours.extension_id("ut_metadata"), Some(UT_METADATA_ID));
    assert_eq!(ours.extension_id("ut_pex"), Some(UT_PEX_ID));
    assert_eq!(ours.metadata_size, Some(40_000));
    // Before its handshake we do not know how to answer.
    assert!(t.msg(a, request(0)).is_empty());
    t.hello(a, None);
    let replies = metadata_replies(&t.msg(a, request(2)), a);
    let expected = MetadataMessage::Data {
        piece: 2,
        total_size: 40_000,
        data: info.slice(2 * METADATA_PIECE_LEN..),
    };
    assert_eq!(replies, vec![expected]);
    let replies = metadata_replies(&t.msg(a, request(3)), a);
    assert_eq!(replies, vec![MetadataMessage::Reject { piece: 3 }]);
    // Garbage on our ut_metadata id is ignored, not fatal.
    let garbage = Message::Extended {
        id: UT_METADATA_ID,
        payload: Bytes::from_static(b"d8:msg_typei0ee"),
    };
    assert!(t.msg(a, garbage).is_empty());
}

#[test]
fn metadata_requests_are_rate_limited_per_peer() {
    let mut t = T::new(50);
    t.t.set_metadata(Bytes::from(vec![7; 1000]));
    let a = PeerKey(1);
    t.connect(a, v4(0, 1, 1), true);
    t.hello(a, None);
    let mut data = 0;
    let mut rejects = 0;
    for _ in 0..METADATA_REQUEST_BURST + 10 {
        for reply in metadata_replies(&t.msg(a, request(0)), a) {
            match reply {
                MetadataMessage::Data { .. } => data += 1,
                _ => rejects += 1,
            }
        }
    }
    assert_eq!((data, rejects), (METADATA_REQUEST_BURST, 10));
    t.now += Duration::from_secs(1);
    let mut data = 0;
    for _ in 0..METADATA_REQUESTS_PER_SEC + 5 {
        let replies = metadata_replies(&t.msg(a, request(0)), a);
        data += replies
            .iter()
            .filter(|r| matches!(r, MetadataMessage::Data { .. }))
            .count() as u32;
    }
    assert_eq!(data, METADATA_REQUESTS_PER_SEC, "refilled at the set rate");
}

#[test]
fn private_torrents_offer_no_extension_and_reject_requests() {
    let mut t = T::new(50);
    t.t.set_metadata(Bytes::from(vec![7; 1000]));
    t.t.set_private(true);
    let a = PeerKey(1);
    let greeting = extended(&t.connect(a, v4(0, 1, 1), true), a, 0);
    let ours = ExtendedHandshake::parse(&greeting[0]).unwrap();
    assert!(ours.extensions.is_empty());
    assert_eq!(ours.metadata_size, None);
    t.hello(a, Some(9000));
    let replies = metadata_replies(&t.msg(a, request(0)), a);
    assert_eq!(replies, vec![MetadataMessage::Reject { piece: 0 }]);
    // No PEX sent, none taken.
    t.connect(PeerKey(2), v4(0, 2, 2), true);
    assert!(pex(&t.advance(PEX_INTERVAL * 2), a).is_empty());
    let offer = PexMessage {
        added: vec![(
            SocketAddrV4::new(Ipv4Addr::new(10, 9, 9, 9), 1),
            PexFlags(0),
        )],
        ..PexMessage::default()
    };
    t.msg(a, offer.to_message(UT_PEX_ID));
    assert_eq!(t.t.stats().candidates, 0);
}

#[test]
fn pex_tells_who_joined_and_left_with_listen_ports() {
    let mut t = T::new(50);
    let (a, b, c, d) = (PeerKey(1), PeerKey(2), PeerKey(3), PeerKey(4));
    t.connect(a, v4(0, 1, 1111), true);
    t.connect(b, v4(0, 2, 40000), false);
    t.hello(b, Some(2222));
    t.connect(c, v4(0, 3, 40001), false); // incoming, no listen port: not told about
    t.connect(d, v4(0, 4, 4444), true);
    t.hello(d, None);
    assert!(pex(
        &t.advance(PEX_FIRST_DELAY.saturating_sub(Duration::from_secs(1))),
        d
    )
    .is_empty());
    let actions = t.advance(Duration::from_secs(1));
    let sent = pex(&actions, d);
    assert_eq!(sent.len(), 1);
    let to_b = pex(&actions, b);
    let told_b: Vec<SocketAddrV4> = to_b[0].added.iter().map(|(a, _)| *a).collect();
    assert_eq!(
        told_b,
        vec![
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 1111),
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 4), 4444),
        ]
    );
    let added: Vec<(SocketAddr, PexFlags)> = sent[0]
        .added
        .iter()
        .map(|(a, f)| (SocketAddr::V4(*a), *f))
        .collect();
    assert_eq!(
        added,
        vec![
            (v4(0, 1, 1111), PexFlags(PexFlags::REACHABLE)),
            (v4(0, 2, 2222), PexFlags(0)),
        ],
        "the outgoing peer as reached, the incoming one at its listen port, not d itself"
    );
    // Nothing more until a minute has passed, then only the change.
    t.t.peer_disconnected(t.now, a);
    assert!(pex(
        &t.advance(PEX_INTERVAL.saturating_sub(Duration::from_secs(1))),
        d
    )
    .is_empty());
    let sent = pex(&t.advance(Duration::from_secs(1)), d);
    assert_eq!(sent.len(), 1);
    assert!(sent[0].added.is_empty());
    assert_eq!(
        sent[0].dropped,
        vec![SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 1111)]
    );
}

#[test]
fn pex_messages_are_bounded_and_continue_next_time() {
    let mut t = T::new(200);
    let d = PeerKey(1000);
    t.connect(d, v4(9, 9, 9), true);
    t.hello(d, None);
    for i in 0..60u16 {
        t.connect(PeerKey(u64::from(i)), v4(1, i as u8, 1000 + i), true);
    }
    let first = pex(&t.advance(PEX_FIRST_DELAY), d);
    assert_eq!(first[0].added.len(), PEX_ADDED_MAX);
    let second = pex(&t.advance(PEX_INTERVAL), d);
    assert_eq!(second[0].added.len(), 60 - PEX_ADDED_MAX);
    let all: std::collections::HashSet<_> = first[0].added.iter().chain(&second[0].added).collect();
    assert_eq!(all.len(), 60, "no repeats, nobody left out");
}

#[test]
fn received_pex_becomes_bounded_rate_limited_candidates() {
    let mut t = T::new(1); // room for a only: candidates stay candidates
    let a = PeerKey(1);
    t.t.peer_connected(
        t.now,
        a,
        PeerInfo {
            addr: v4(0, 1, 1),
            peer_id: [1; 20],
            fast: true,
            extensions: true,
            outgoing: false,
        },
    );
    t.drain();
    let offer = |base: u8| PexMessage {
        added: (0..80u16)
            .map(|i| {
                let ip = Ipv4Addr::new(10, base, (i / 250) as u8, (i % 250) as u8 + 1);
                (SocketAddrV4::new(ip, 6881), PexFlags(0))
            })
            .collect(),
        ..PexMessage::default()
    };
    // Without its handshake the peer has no PEX state: ignored.
    t.msg(a, offer(1).to_message(UT_PEX_ID));
    assert_eq!(t.t.stats().candidates, 0);
    t.hello(a, Some(1));
    t.msg(a, offer(1).to_message(UT_PEX_ID));
    assert_eq!(t.t.stats().candidates, PEX_RECEIVED_ADDED_MAX);
    // Again at once: dropped. The same addresses later: deduplicated.
    t.msg(a, offer(2).to_message(UT_PEX_ID));
    assert_eq!(t.t.stats().candidates, PEX_RECEIVED_ADDED_MAX);
    t.now += PEX_INTERVAL;
    t.msg(a, offer(1).to_message(UT_PEX_ID));
    assert_eq!(t.t.stats().candidates, PEX_RECEIVED_ADDED_MAX);
    // Malformed PEX is ignored.
    let bad = Message::Extended {
        id: UT_PEX_ID,
        payload: Bytes::from_static(b"d5:added5:12345e"),
    };
    assert!(t.msg(a, bad).is_empty());
}

#[test]
fn pex_can_be_switched_off() {
    let now = Instant::now();
    let config = TorrentConfig {
        pex: false,
        ..TorrentConfig::default()
    };
    let g = Geometry::new(16_384, 16_384 * 4);
    let mut t = T {
        t: Torrent::new(g, Bitfield::new(4), config, 1, now),
        now,
    };
    let (a, b) = (PeerKey(1), PeerKey(2));
    let greeting = extended(&t.connect(a, v4(0, 1, 1), true), a, 0);
    let ours = ExtendedHandshake::parse(&greeting[0]).unwrap();
    assert_eq!(ours.extension_id("ut_pex"), None);
    t.hello(a, None);
    t.connect(b, v4(0, 2, 2), true);
    assert!(pex(&t.advance(PEX_INTERVAL), a).is_empty());
    let offer = PexMessage {
        added: vec![(
            SocketAddrV4::new(Ipv4Addr::new(10, 9, 9, 9), 1),
            PexFlags(0),
        )],
        ..PexMessage::default()
    };
    t.msg(a, offer.to_message(UT_PEX_ID));
    assert_eq!(t.t.stats().candidates, 0);
}

/// Regression (sim finding 1): `pex_tick` walked a `HashMap` of peers, so the order of its
/// PEX messages differed from one map to the next and a swarm did not replay from its seed.
/// Two torrents fed the same inputs must now emit the same actions in the same order.
#[test]
fn pex_messages_go_out_in_the_same_order_for_the_same_inputs() {
    let run = || {
        let mut t = T::new(50);
        let mut all = Vec::new();
        for i in 0..16u8 {
            let key = PeerKey(100 + u64::from(i) * 7 % 16);
            all.extend(t.connect(key, v4(10, i, 6881), true));
            all.extend(t.hello(key, Some(6881)));
        }
        all.extend(t.advance(PEX_FIRST_DELAY + Duration::from_secs(1)));
        all
    };
    let first = run();
    assert!(
        first
            .iter()
            .filter(|a| matches!(
                a,
                Action::Send {
                    message: Message::Extended { id: THEIR_PEX, .. },
                    ..
                }
            ))
            .count()
            >= 16,
        "every peer got a PEX message"
    );
    assert_eq!(first, run());
}
