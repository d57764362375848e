//! The request-to-answer logic, driven as a client would drive it over UDP and HTTP.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::access::{AccessList, AccessMode};
use crate::client::http::{parse_announce_response, HttpAnnounce, HttpReply};
use crate::http::query::percent_encode;
use crate::http::response::parse_scrape;
use crate::server::{Handled, Refusal, ServerConfig, Tracker};
use crate::swarm::{Stored, SwarmTable, TableConfig, TableStats};
use crate::udp::*;
use crate::{Event, InfoHash, PeerId};

const HASH: InfoHash = InfoHash::from_bytes([0x42; 20]);

fn tracker() -> Tracker {
    let mut rng = SmallRng::seed_from_u64(11);
    let table = SwarmTable::new(
        TableConfig {
            shards: 8,
            torrents_max: 100,
            peers_per_torrent_max: 100,
            peers_max: 1000,
            peer_ttl_s: 2000,
        },
        &mut rng,
    );
    let config = ServerConfig {
        interval_s: 1800,
        min_interval_s: 60,
        numwant_default: 50,
        numwant_max: 100,
    };
    Tracker::new(table, config, &mut rng)
}

fn udp(
    t: &Tracker,
    packet: &[u8],
    src: SocketAddr,
    now: u32,
    access: &AccessList,
) -> (Handled, Vec<u8>) {
    let mut out = Vec::new();
    let h = t.handle_udp(
        packet,
        src,
        now,
        access,
        &mut SmallRng::seed_from_u64(1),
        &mut out,
    );
    (h, out)
}

fn connect(t: &Tracker, src: SocketAddr, now: u32) -> ConnectionId {
    let mut p = Vec::new();
    Request::Connect {
        transaction_id: TransactionId(1),
    }
    .emit(&mut p);
    let (h, out) = udp(t, &p, src, now, &AccessList::open());
    assert_eq!(h, Handled::Connect);
    match Response::parse(&out, false).unwrap() {
        Response::Connect {
            transaction_id,
            connection_id,
        } => {
            assert_eq!(transaction_id, TransactionId(1));
            connection_id
        }
        other => panic!("{other:?}"),
    }
}

fn announce_packet(cid: ConnectionId, left: u64, port: u16) -> Vec<u8> {
    let a = AnnounceRequest {
        connection_id: cid,
        transaction_id: TransactionId(2),
        info_hash: HASH,
        peer_id: PeerId([port as u8; 20]),
        downloaded: 0,
        left,
        uploaded: 0,
        event: Event::Started,
        ip: None,
        key: 0,
        num_want: -1,
        port,
    };
    let mut p = Vec::new();
    Request::Announce(a).emit(&mut p);
    p
}

fn src(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn udp_connect_announce_scrape() {
    let t = tracker();
    let open = AccessList::open();
    let cid = connect(&t, src(1000), 0);
    let (h, _) = udp(&t, &announce_packet(cid, 0, 7000), src(1000), 10, &open);
    assert_eq!(h, Handled::Announce(Stored::Added));
    let cid2 = connect(&t, src(1001), 10);
    let (_, out) = udp(&t, &announce_packet(cid2, 5, 7001), src(1001), 10, &open);
    let Response::Announce {
        transaction_id,
        interval_s,
        leechers,
        seeders,
        peers,
    } = Response::parse(&out, false).unwrap()
    else {
        panic!("not an announce response")
    };
    assert_eq!(
        (transaction_id, interval_s, leechers, seeders),
        (TransactionId(2), 1800, 1, 1)
    );
    assert_eq!(
        peers.iter().collect::<Vec<_>>(),
        vec![SocketAddr::from(([127, 0, 0, 1], 7000))]
    );

    let mut scrape = Vec::new();
    emit_scrape_request(
        &mut scrape,
        cid,
        TransactionId(3),
        &[HASH, InfoHash::from_bytes([0; 20])],
    );
    let (h, out) = udp(&t, &scrape, src(1000), 11, &open);
    assert_eq!(h, Handled::Scrape);
    let stats: Vec<_> = Response::parse(&out, false)
        .unwrap()
        .scrape_stats()
        .collect();
    assert_eq!(
        stats,
        vec![
            ScrapeStats {
                seeders: 1,
                completed: 0,
                leechers: 1
            },
            ScrapeStats::default()
        ]
    );
}

#[test]
fn wrong_or_expired_connection_id_gets_an_error() {
    let t = tracker();
    let open = AccessList::open();
    let cid = connect(&t, src(1000), 0);
    for (cid, from, now) in [
        (ConnectionId(cid.0 ^ 1), src(1000), 0),
        (cid, src(1000), 180),
        (cid, "10.1.1.1:1000".parse().unwrap(), 0),
    ] {
        let (h, out) = udp(&t, &announce_packet(cid, 0, 7000), from, now, &open);
        assert_eq!(h, Handled::Refused(Refusal::ConnectionId));
        assert!(matches!(
            Response::parse(&out, false),
            Ok(Response::Error {
                transaction_id: TransactionId(2),
                ..
            })
        ));
    }
    assert_eq!(
        t.table().stats().torrents,
        0,
        "no state from unconnected clients"
    );
}

#[test]
fn flood_of_connects_grows_no_state_and_never_amplifies() {
    let t = tracker();
    let open = AccessList::open();
    let mut p = Vec::new();
    Request::Connect {
        transaction_id: TransactionId(1),
    }
    .emit(&mut p);
    for n in 0..10_000u16 {
        let (_, out) = udp(&t, &p, src(n), u32::from(n), &open);
        assert!(out.len() <= p.len());
    }
    assert_eq!(t.table().stats(), TableStats::default());
    // A short scrape with a bad connection id: an error would be larger, so it is dropped.
    let mut scrape = Vec::new();
    emit_scrape_request(&mut scrape, ConnectionId(9), TransactionId(3), &[HASH]);
    let (h, out) = udp(&t, &scrape[..16], src(1), 0, &open);
    assert_eq!(h, Handled::Refused(Refusal::Malformed));
    assert!(out.len() <= 16);
}

#[test]
fn short_and_garbage_packets_are_dropped() {
    let t = tracker();
    for packet in [&b""[..], &[0u8; 15][..], &[0xffu8; 16][..]] {
        let (h, out) = udp(&t, packet, src(1), 0, &AccessList::open());
        assert!(matches!(h, Handled::Refused(_)));
        assert!(out.len() <= packet.len());
    }
}

#[test]
fn access_list_refuses_with_a_reason() {
    let t = tracker();
    let deny = AccessList::new(AccessMode::Deny, [HASH]);
    let cid = connect(&t, src(1000), 0);
    let (h, out) = udp(&t, &announce_packet(cid, 0, 7000), src(1000), 0, &deny);
    assert_eq!(h, Handled::Refused(Refusal::AccessDenied));
    assert_eq!(
        Response::parse(&out, false).unwrap(),
        Response::Error {
            transaction_id: TransactionId(2),
            message: b"info-hash not allowed"
        }
    );
    let mut body = Vec::new();
    let h = t.handle_http_announce(
        &http_query(0, 7000, 5),
        IpAddr::from([127, 0, 0, 1]),
        0,
        &deny,
        &mut SmallRng::seed_from_u64(1),
        &mut body,
        &mut Vec::new(),
    );
    assert_eq!(h, Handled::Refused(Refusal::AccessDenied));
    assert_eq!(
        parse_announce_response(&body),
        Ok(HttpReply::Failure("info-hash not allowed".into()))
    );
}

fn http_query(left: u64, port: u16, numwant: u64) -> Vec<u8> {
    let mut q = String::from("info_hash=");
    percent_encode(&mut q, HASH.as_bytes());
    let _ = write!(
        q,
        "&peer_id=-XX0001-{port:012}&port={port}&left={left}&numwant={numwant}&compact=1"
    );
    q.into_bytes()
}

#[test]
fn http_announce_and_scrape() {
    let t = tracker();
    let open = AccessList::open();
    let ip = IpAddr::from([127, 0, 0, 1]);
    let mut rng = SmallRng::seed_from_u64(1);
    for port in 7000..7150 {
        let mut body = Vec::new();
        let h = t.handle_http_announce(
            &http_query(u64::from(port % 2), port, 1_000_000),
            ip,
            0,
            &open,
            &mut rng,
            &mut body,
            &mut Vec::new(),
        );
        assert!(
            matches!(h, Handled::Announce(Stored::Added | Stored::Full)),
            "{h:?}"
        );
    }
    let mut body = Vec::new();
    t.handle_http_announce(
        &http_query(1, 7001, 1_000_000),
        ip,
        0,
        &open,
        &mut rng,
        &mut body,
        &mut Vec::new(),
    );
    let HttpReply::Announce(HttpAnnounce {
        peers,
        complete,
        incomplete,
        ..
    }) = parse_announce_response(&body).unwrap()
    else {
        panic!("failure")
    };
    assert_eq!(
        (complete, incomplete),
        (Some(50), Some(50)),
        "peers_per_torrent_max bounds the swarm"
    );
    assert_eq!(
        peers.len(),
        99,
        "numwant_max bounds the answer; the announcer is left out"
    );

    let mut q = String::from("info_hash=");
    percent_encode(&mut q, HASH.as_bytes());
    let mut body = Vec::new();
    assert_eq!(
        t.handle_http_scrape(q.as_bytes(), &open, &mut body),
        Handled::Scrape
    );
    assert_eq!(
        parse_scrape(&body).unwrap(),
        vec![(
            HASH,
            ScrapeStats {
                seeders: 50,
                completed: 0,
                leechers: 50
            }
        )]
    );
    let mut body = Vec::new();
    assert_eq!(
        t.handle_http_scrape(b"", &open, &mut body),
        Handled::Refused(Refusal::FullScrape)
    );
}

proptest! {
    #[test]
    fn handler_is_total(bytes in prop::collection::vec(any::<u8>(), 0..700), now: u32, v6: bool) {
        let t = tracker();
        let from: SocketAddr = if v6 { "[2001:db8::1]:1".parse().unwrap() } else { src(1) };
        let (_, out) = udp(&t, &bytes, from, now, &AccessList::open());
        prop_assert!(out.len() <= bytes.len().max(16), "never amplifies");
        let mut body = Vec::new();
        let _ = t.handle_http_announce(&bytes, from.ip(), now, &AccessList::open(), &mut SmallRng::seed_from_u64(1), &mut body, &mut Vec::new());
        let _ = t.handle_http_scrape(&bytes, &AccessList::open(), &mut body);
    }
}
