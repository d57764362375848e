//! The client's formats against real bytes: announce URLs (escaping, existing queries),
//! HTTP announce responses as real trackers send them, and BEP 15 responses byte by byte.

use std::net::{Ipv6Addr, SocketAddr};

use proptest::prelude::*;

use crate::client::http::{parse_announce_response, HttpAnnounce, HttpReply};
use crate::client::udp::{emit_announce, emit_connect, parse_response, Expect};
use crate::client::url::{announce_url, AnnounceParams, Scheme, TrackerUrl};
use crate::http::query::parse_announce_query;
use crate::udp::{AnnounceRequest, ConnectionId, Request, Response, TransactionId};
use crate::{Event, InfoHash, PeerId, TrackerError};

/// The info-hash of the well-known example in the BitTorrent protocol documentation, whose
/// escaped form is `%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A`.
const EXAMPLE_HASH: [u8; 20] = [
    0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf1, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x12,
    0x34, 0x56, 0x78, 0x9a,
];

fn params<'a>(hash: &'a InfoHash, peer: &'a PeerId) -> AnnounceParams<'a> {
    AnnounceParams {
        info_hash: hash,
        peer_id: peer,
        port: 6881,
        uploaded: 1,
        downloaded: 2,
        left: 3,
        event: Event::Started,
        numwant: Some(50),
        key: 0xdead_beef,
        tracker_id: None,
    }
}

#[test]
fn announce_url_escapes_binary_bytes() {
    let hash = InfoHash::from_bytes(EXAMPLE_HASH);
    let peer = PeerId(*b"-BS0001-\x00\xff ~.-_abcde");
    let url = announce_url("http://t.example/announce", &params(&hash, &peer));
    assert_eq!(
        url,
        "http://t.example/announce?info_hash=%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A\
         &peer_id=-BS0001-%00%FF%20~.-_abcde&port=6881&uploaded=1&downloaded=2&left=3\
         &compact=1&no_peer_id=1&key=DEADBEEF&event=started&numwant=50"
    );
}

#[test]
fn announce_url_keeps_an_existing_query() {
    let hash = InfoHash::from_bytes([b'a'; 20]);
    let peer = PeerId([b'b'; 20]);
    let p = AnnounceParams {
        event: Event::None,
        numwant: None,
        ..params(&hash, &peer)
    };
    let start = "info_hash=aaaaaaaaaaaaaaaaaaaa&peer_id=bbbbbbbbbbbbbbbbbbbb&port=6881";
    for (base, prefix) in [
        ("http://t/a?key=K%20x", "http://t/a?key=K%20x&"),
        ("http://t/a?passkey=1&", "http://t/a?passkey=1&"),
        ("http://t/a?", "http://t/a?"),
        ("http://t/a#frag", "http://t/a?"),
        ("https://t:8443/x/y?p=1#frag", "https://t:8443/x/y?p=1&"),
    ] {
        let url = announce_url(base, &p);
        assert!(
            url.starts_with(&format!("{prefix}{start}")),
            "{base} -> {url}"
        );
        assert!(
            !url.contains("event="),
            "no event for a regular announce: {url}"
        );
        assert!(!url.contains("numwant="), "{url}");
    }
}

#[test]
fn announce_url_echoes_tracker_id() {
    let hash = InfoHash::from_bytes([1; 20]);
    let peer = PeerId([2; 20]);
    let p = AnnounceParams {
        tracker_id: Some(b"id 7/x"),
        ..params(&hash, &peer)
    };
    assert!(announce_url("http://t/a", &p).ends_with("&trackerid=id%207%2Fx"));
}

#[test]
fn tracker_urls_parse() {
    let u = TrackerUrl::parse("udp://tracker.opentrackr.org:1337/announce").unwrap();
    assert_eq!(
        (u.scheme(), u.host(), u.port(), u.path_and_query()),
        (Scheme::Udp, "tracker.opentrackr.org", 1337, "/announce")
    );
    let u = TrackerUrl::parse("HTTP://Tracker.Example").unwrap();
    assert_eq!(
        (u.scheme(), u.host(), u.port()),
        (Scheme::Http, "tracker.example", 80)
    );
    assert_eq!(
        (u.path_and_query(), u.host_header()),
        ("/", "tracker.example".into())
    );
    let u = TrackerUrl::parse("https://t.example?passkey=9").unwrap();
    assert_eq!((u.port(), u.path_and_query()), (443, "/?passkey=9"));
    let u = TrackerUrl::parse("http://[::1]:6969/announce#x").unwrap();
    assert_eq!((u.host(), u.host_port()), ("::1", "[::1]:6969".into()));
    assert_eq!(u.host_header(), "[::1]:6969");
    assert_eq!(u.path_and_query(), "/announce");
    for bad in [
        "udp://t.example/announce",
        "wss://t.example/announce",
        "http://user:pw@t.example/",
        "http://t.example:0/",
        "http://t.example:70000/",
        "http://t.example:+80/",
        "http://:80/",
        "http://t example/",
        "http://[nothex]:80/",
        "http://t.example/é",
        "t.example:80",
        "",
    ] {
        assert_eq!(TrackerUrl::parse(bad), None, "{bad}");
    }
    let long = format!("http://t/{}", "a".repeat(3000));
    assert_eq!(TrackerUrl::parse(&long), None);
}

#[test]
fn redirect_locations_join() {
    let base = TrackerUrl::parse("https://t.example:8443/announce?info_hash=x").unwrap();
    let rel = base.join("/v2/announce?info_hash=x").unwrap();
    assert_eq!(
        (rel.scheme(), rel.host_port()),
        (Scheme::Https, "t.example:8443".into())
    );
    assert_eq!(rel.path_and_query(), "/v2/announce?info_hash=x");
    let abs = base.join("http://other.example/a?b").unwrap();
    assert_eq!(
        (abs.scheme(), abs.port(), abs.path_and_query()),
        (Scheme::Http, 80, "/a?b")
    );
    for bad in ["udp://t:1/a", "announce", "//evil.example/x", ""] {
        assert_eq!(base.join(bad), None, "{bad}");
    }
}

/// A body captured from opentracker (Debian package) answering a second peer.
const OPENTRACKER_COMPACT: &[u8] =
    b"d8:completei0e10:downloadedi0e10:incompletei2e8:intervali1964e\
12:min intervali982e5:peers12:\x7f\x00\x00\x01\x15\xb3\x7f\x00\x00\x01\x15\xb4e";

#[test]
fn http_compact_response() {
    let HttpReply::Announce(a) = parse_announce_response(OPENTRACKER_COMPACT).unwrap() else {
        panic!("not an announce");
    };
    let expect = HttpAnnounce {
        interval_s: Some(1964),
        min_interval_s: Some(982),
        complete: Some(0),
        incomplete: Some(2),
        peers: vec![
            "127.0.0.1:5555".parse().unwrap(),
            "127.0.0.1:5556".parse().unwrap(),
        ],
        warning: None,
        tracker_id: None,
    };
    assert_eq!(a, expect);
}

#[test]
fn http_dictionary_peers_response() {
    let body = b"d8:intervali1800e5:peersld2:ip8:10.0.0.17:peer id20:-TR2940-abcdefghijkl\
4:porti51413eed2:ip11:example.org4:porti1ee\
d2:ip3:::14:porti6881eed2:ip8:10.0.0.24:porti0eed2:ip16:::ffff:192.0.2.14:porti7eeee";
    let HttpReply::Announce(a) = parse_announce_response(body).unwrap() else {
        panic!("not an announce");
    };
    let expect: Vec<SocketAddr> = vec![
        "10.0.0.1:51413".parse().unwrap(),
        "[::1]:6881".parse().unwrap(),
        "192.0.2.1:7".parse().unwrap(),
    ];
    assert_eq!(
        a.peers, expect,
        "host names and port 0 are skipped, v4-mapped unwrapped"
    );
    assert_eq!((a.complete, a.min_interval_s), (None, None));
}

#[test]
fn http_peers6_warning_and_tracker_id() {
    let mut v6 = Vec::new();
    v6.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).octets());
    v6.extend_from_slice(&6881u16.to_be_bytes());
    v6.extend_from_slice(&[0xff; 7]); // a trailing partial entry is ignored
    let mut body = b"d8:intervali900e5:peers6:\x0a\x00\x00\x03\x1a\xe1".to_vec();
    body.extend_from_slice(format!("6:peers6{}:", v6.len()).as_bytes());
    body.extend_from_slice(&v6);
    body.extend_from_slice(b"10:tracker id3:T\x01\x0215:warning message19:tracker is driftinge");
    let HttpReply::Announce(a) = parse_announce_response(&body).unwrap() else {
        panic!("not an announce");
    };
    assert_eq!(
        a.peers,
        vec![
            "10.0.0.3:6881".parse::<SocketAddr>().unwrap(),
            "[2001:db8::1]:6881".parse().unwrap()
        ]
    );
    assert_eq!(a.warning.as_deref(), Some("tracker is drifting"));
    assert_eq!(a.tracker_id.as_deref(), Some(&b"T\x01\x02"[..]));
}

#[test]
fn http_failure_reason() {
    // opentracker's answer for an info-hash outside its whitelist.
    let body =
        b"d14:failure reason63:Requested download is not authorized for use with this tracker.e";
    assert_eq!(
        parse_announce_response(body).unwrap(),
        HttpReply::Failure(
            "Requested download is not authorized for use with this tracker.".into()
        )
    );
}

#[test]
fn http_malformed_responses() {
    let field = |f| Err(TrackerError::ResponseField(f));
    assert_eq!(parse_announce_response(b"le"), field("(top level)"));
    assert_eq!(
        parse_announce_response(b"d8:intervali-5ee"),
        field("interval")
    );
    assert_eq!(
        parse_announce_response(b"d8:interval2:10e"),
        field("interval")
    );
    assert_eq!(parse_announce_response(b"d5:peersi3ee"), field("peers"));
    assert_eq!(parse_announce_response(b"d6:peers6lee"), field("peers6"));
    assert_eq!(
        parse_announce_response(b"d14:failure reasoni1ee"),
        field("failure reason")
    );
    assert!(matches!(
        parse_announce_response(b"<html>502 Bad Gateway</html>"),
        Err(TrackerError::Bencode(_))
    ));
    let huge = parse_announce_response(b"d8:intervali99999999999ee").unwrap();
    assert!(matches!(
        huge,
        HttpReply::Announce(HttpAnnounce {
            interval_s: Some(u32::MAX),
            ..
        })
    ));
}

fn connect_response(tid: u32, cid: u64) -> Vec<u8> {
    let mut p = 0u32.to_be_bytes().to_vec(); // action: connect
    p.extend_from_slice(&tid.to_be_bytes());
    p.extend_from_slice(&cid.to_be_bytes());
    p
}

#[test]
fn udp_connect_request_and_response_layout() {
    let mut out = Vec::new();
    emit_connect(&mut out, TransactionId(0x0102_0304));
    assert_eq!(
        out,
        [0, 0, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0, 1, 2, 3, 4]
    );
    let packet = connect_response(0x0102_0304, 0x1122_3344_5566_7788);
    let r = parse_response(&packet, TransactionId(0x0102_0304), Expect::Connect, false);
    assert_eq!(
        r,
        Ok(Response::Connect {
            transaction_id: TransactionId(0x0102_0304),
            connection_id: ConnectionId(0x1122_3344_5566_7788)
        })
    );
    let short = parse_response(
        &packet[..15],
        TransactionId(0x0102_0304),
        Expect::Connect,
        false,
    );
    assert_eq!(
        short,
        Err(TrackerError::PacketTooShort { len: 15, need: 16 })
    );
    let wrong = parse_response(&packet, TransactionId(9), Expect::Connect, false);
    assert_eq!(wrong, Err(TrackerError::TransactionMismatch));
    let other = parse_response(&packet, TransactionId(0x0102_0304), Expect::Announce, false);
    assert_eq!(other, Err(TrackerError::ResponseField("action")));
}

#[test]
fn udp_announce_request_layout_with_url_data() {
    let request = AnnounceRequest {
        connection_id: ConnectionId(0x41),
        transaction_id: TransactionId(7),
        info_hash: InfoHash::from_bytes([0xaa; 20]),
        peer_id: PeerId([0xbb; 20]),
        downloaded: 10,
        left: 20,
        uploaded: 30,
        event: Event::Completed,
        ip: None,
        key: 5,
        num_want: -1,
        port: 6881,
    };
    let mut out = Vec::new();
    emit_announce(&mut out, &request, b"/announce?passkey=x");
    let (fixed, options) = out.split_at(98);
    assert_eq!(&fixed[..8], &0x41u64.to_be_bytes());
    assert_eq!(&fixed[8..16], &[0, 0, 0, 1, 0, 0, 0, 7]);
    assert_eq!(&fixed[80..84], &1u32.to_be_bytes(), "event completed");
    assert_eq!(&fixed[92..96], &(-1i32).to_be_bytes());
    assert_eq!(&fixed[96..], &6881u16.to_be_bytes());
    assert_eq!(options, b"\x02\x13/announce?passkey=x\x00");
    assert_eq!(
        crate::udp::url_data(&out).as_deref(),
        Some(&b"/announce?passkey=x"[..]),
        "the server side reads back what the client wrote"
    );
    let Ok(Request::Announce(back)) = Request::parse(&out) else {
        panic!("server cannot parse our announce");
    };
    assert_eq!(back, request);

    let long = vec![b'p'; 300];
    out.clear();
    emit_announce(&mut out, &request, &long);
    assert_eq!((out[98], out[99]), (2, 255));
    assert_eq!((out[98 + 257], out[98 + 258]), (2, 45));
    assert_eq!(out.last(), Some(&0));
    assert_eq!(crate::udp::url_data(&out), Some(long));
    for none in [&b""[..], b"/"] {
        out.clear();
        emit_announce(&mut out, &request, none);
        assert_eq!(out.len(), 98);
    }
}

#[test]
fn udp_announce_scrape_and_error_responses() {
    let mut p = Vec::new();
    for n in [1u32, 77, 1800, 3, 4] {
        p.extend_from_slice(&n.to_be_bytes()); // action, tid, interval, leechers, seeders
    }
    p.extend_from_slice(&[192, 0, 2, 9, 0x1a, 0xe1, 198, 51, 100, 1, 0, 80]);
    let Ok(Response::Announce {
        interval_s,
        leechers,
        seeders,
        peers,
        ..
    }) = parse_response(&p, TransactionId(77), Expect::Announce, false)
    else {
        panic!("not an announce response");
    };
    assert_eq!((interval_s, leechers, seeders), (1800, 3, 4));
    let peers: Vec<SocketAddr> = peers.iter().collect();
    assert_eq!(
        peers,
        vec![
            "192.0.2.9:6881".parse().unwrap(),
            "198.51.100.1:80".parse().unwrap()
        ]
    );
    assert_eq!(
        parse_response(&p[..19], TransactionId(77), Expect::Announce, false),
        Err(TrackerError::PacketTooShort { len: 19, need: 20 })
    );
    assert_eq!(
        parse_response(&p[..7], TransactionId(77), Expect::Announce, false),
        Err(TrackerError::PacketTooShort { len: 7, need: 8 })
    );

    let mut s = Vec::new();
    for n in [2u32, 5, 10, 100, 3] {
        s.extend_from_slice(&n.to_be_bytes()); // action, tid, seeders, completed, leechers
    }
    let r = parse_response(&s, TransactionId(5), Expect::Scrape, false).unwrap();
    let stats: Vec<_> = r.scrape_stats().collect();
    assert_eq!(
        (stats[0].seeders, stats[0].completed, stats[0].leechers),
        (10, 100, 3)
    );

    let mut e = 3u32.to_be_bytes().to_vec();
    e.extend_from_slice(&8u32.to_be_bytes());
    e.extend_from_slice(b"Connection ID missmatch.");
    assert_eq!(
        parse_response(&e, TransactionId(8), Expect::Announce, false),
        Ok(Response::Error {
            transaction_id: TransactionId(8),
            message: b"Connection ID missmatch."
        })
    );
    let mut unknown = 9u32.to_be_bytes().to_vec();
    unknown.extend_from_slice(&8u32.to_be_bytes());
    assert_eq!(
        parse_response(&unknown, TransactionId(8), Expect::Announce, false),
        Err(TrackerError::UnknownAction(9))
    );
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        Just(Event::None),
        Just(Event::Started),
        Just(Event::Completed),
        Just(Event::Stopped)
    ]
}

proptest! {
    /// The query we build is read back exactly by the server's independent query parser.
    #[test]
    fn announce_url_round_trips_through_the_server_parser(
        hash in any::<[u8; 20]>(), peer in any::<[u8; 20]>(), port in 1u16.., uploaded: u64,
        downloaded: u64, left: u64, event in event(), numwant in proptest::option::of(0u32..5000),
        passkey in "[a-zA-Z0-9]{0,12}",
    ) {
        let (hash, peer) = (InfoHash::from_bytes(hash), PeerId(peer));
        let p = AnnounceParams {
            port, uploaded, downloaded, left, event, numwant, ..params(&hash, &peer)
        };
        let base = if passkey.is_empty() { "http://t/a".to_owned() } else {
            format!("http://t/a?passkey={passkey}")
        };
        let url = announce_url(&base, &p);
        let parsed = TrackerUrl::parse(&url).unwrap();
        let query = parsed.path_and_query().split_once('?').unwrap().1;
        let back = parse_announce_query(query.as_bytes()).unwrap();
        prop_assert_eq!(back.info_hash, hash);
        prop_assert_eq!(back.peer_id, peer);
        prop_assert_eq!((back.port, back.uploaded, back.downloaded, back.left),
            (port, uploaded, downloaded, left));
        prop_assert_eq!(back.event, event);
        prop_assert_eq!(back.numwant, numwant);
        prop_assert!(back.compact);
    }

    #[test]
    fn http_response_parser_never_panics(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_announce_response(&body);
    }

    #[test]
    fn http_response_parser_never_panics_on_near_bencode(
        body in "d(8:interval|5:peers|6:peers6|14:failure reason|15:warning message|i[0-9-]{1,3}e|l|d|e|[0-9]{1,2}:[a-z]{0,6})*e?"
    ) {
        let _ = parse_announce_response(body.as_bytes());
    }

    #[test]
    fn udp_response_parser_never_panics(
        packet in proptest::collection::vec(any::<u8>(), 0..256), v6: bool, tid: u32,
    ) {
        for expect in [Expect::Connect, Expect::Announce, Expect::Scrape] {
            if let Ok(r) = parse_response(&packet, TransactionId(tid), expect, v6) {
                let _ = r.scrape_stats().count();
                if let Response::Announce { peers, .. } = r {
                    let _ = peers.iter().count();
                }
            }
        }
    }

    #[test]
    fn tracker_url_parser_never_panics(s in "\\PC{0,80}") {
        if let Some(u) = TrackerUrl::parse(&s) {
            prop_assert!(u.path_and_query().starts_with('/'));
            let _ = (u.host_port(), u.host_header());
        }
    }

    #[test]
    fn tracker_url_parser_never_panics_on_url_like(
        s in "(http|https|udp|HTTP)://(\\[[0-9a-f:]{0,10}\\]|[a-z0-9.@-]{0,10})(:[0-9]{0,6})?[/?#]?[a-z=&?#/]{0,10}"
    ) {
        let _ = TrackerUrl::parse(&s);
    }
}
