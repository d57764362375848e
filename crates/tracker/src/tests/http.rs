//! HTTP query, head and body formats: real client queries, every malformation the issue
//! names, and total parsing.

use std::fmt::Write as _;
use std::net::SocketAddr;

use proptest::prelude::*;

use crate::client::http::{parse_announce_response, HttpAnnounce, HttpReply};
use crate::http::head::*;
use crate::http::query::*;
use crate::http::response::*;
use crate::udp::ScrapeStats;
use crate::{Event, InfoHash, PeerId, TrackerError};

/// A query as libtorrent sends it.
const QUERY: &[u8] = b"info_hash=%12%34Vx%9a%bc%de%f1%23Eg%89%ab%cd%ef%124Vx%9a\
&peer_id=-LT2080-abcdefghijkl&port=6881&uploaded=0&downloaded=0&left=1048576&corrupt=0\
&key=1A2B3C4D&event=started&numwant=200&compact=1&no_peer_id=1&supportcrypto=1&redundant=0";

fn hash() -> InfoHash {
    InfoHash::from_hex("123456789abcdef123456789abcdef123456789a").unwrap()
}

#[test]
fn libtorrent_announce_query() {
    let a = parse_announce_query(QUERY).unwrap();
    assert_eq!(a.info_hash, hash());
    assert_eq!(a.peer_id, PeerId(*b"-LT2080-abcdefghijkl"));
    assert_eq!(
        (a.port, a.left, a.event, a.numwant),
        (6881, 1_048_576, Event::Started, Some(200))
    );
    assert!(a.compact && a.no_peer_id);
}

#[test]
fn malformed_queries_are_named() {
    let with = |from: &str, to: &str| {
        let q = String::from_utf8(QUERY.to_vec()).unwrap().replace(from, to);
        parse_announce_query(q.as_bytes())
    };
    assert_eq!(
        with("info_hash=%12", "info_hash="),
        Err(TrackerError::WrongLength {
            param: "info_hash",
            len: 19
        })
    );
    assert_eq!(
        with("info_hash=%12", "info_hash=%12%12"),
        Err(TrackerError::WrongLength {
            param: "info_hash",
            len: 21
        })
    );
    assert_eq!(
        with("info_hash=%12", "info_hash=%1"),
        Err(TrackerError::PercentEncoding { offset: 10 })
    );
    assert_eq!(
        with("info_hash=%12", "info_hash=%zz"),
        Err(TrackerError::PercentEncoding { offset: 10 })
    );
    assert_eq!(
        with("port=6881", "port=68810"),
        Err(TrackerError::BadNumber("port"))
    );
    assert_eq!(
        with("port=6881", "port=-1"),
        Err(TrackerError::BadNumber("port"))
    );
    assert_eq!(
        with("&port=6881", ""),
        Err(TrackerError::MissingParam("port"))
    );
    assert_eq!(
        with("left=1048576", "left=99999999999999999999"),
        Err(TrackerError::BadNumber("left"))
    );
    assert_eq!(
        with("event=started", "event=begun"),
        Err(TrackerError::BadEvent)
    );
    let truncated = &QUERY[..QUERY.len() - 5];
    assert!(
        parse_announce_query(truncated).is_ok(),
        "a cut-off trailing parameter is just ignored"
    );
    let many = "a=1&".repeat(QUERY_PARAMS_MAX + 1);
    assert_eq!(
        parse_announce_query(many.as_bytes()),
        Err(TrackerError::TooManyParams(QUERY_PARAMS_MAX))
    );
}

#[test]
fn numwant_is_bounded_not_refused() {
    let q = |n: &str| {
        let s = String::from_utf8(QUERY.to_vec())
            .unwrap()
            .replace("numwant=200", &format!("numwant={n}"));
        parse_announce_query(s.as_bytes()).map(|a| a.numwant)
    };
    assert_eq!(q("99999999999999999999999999"), Ok(Some(u32::MAX)));
    assert_eq!(q("-1"), Ok(None));
    assert_eq!(q("0"), Ok(Some(0)));
    assert_eq!(q("ten"), Err(TrackerError::BadNumber("numwant")));
}

#[test]
fn scrape_query() {
    let mut q = String::from("info_hash=");
    percent_encode(&mut q, hash().as_bytes());
    q.push_str("&info_hash=");
    percent_encode(&mut q, &[0; 20]);
    assert_eq!(
        parse_scrape_query(q.as_bytes()),
        Ok(vec![hash(), InfoHash::from_bytes([0; 20])])
    );
    assert_eq!(parse_scrape_query(b""), Ok(vec![]));
    let too_many = format!("{q}&").repeat(HTTP_SCRAPE_INFO_HASHES_MAX / 2 + 1);
    assert!(matches!(
        parse_scrape_query(too_many.as_bytes()),
        Err(TrackerError::ScrapeCount { .. })
    ));
}

#[test]
fn request_heads() {
    let req = b"GET /announce?a=1&b=2 HTTP/1.1\r\nHost: x\r\nUser-Agent: lt\r\n\r\nrest";
    let head = parse_request_head(req).unwrap().unwrap();
    assert_eq!(
        (head.method, head.path, head.query),
        (&b"GET"[..], &b"/announce"[..], &b"a=1&b=2"[..])
    );
    assert!(head.keep_alive);
    assert_eq!(&req[head.len..], b"rest");
    let close = parse_request_head(b"GET /scrape HTTP/1.0\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(!close.keep_alive && close.query.is_empty());
    let close = parse_request_head(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(!close.keep_alive);
    assert_eq!(
        parse_request_head(b"GET / HTTP/1.1\r\nHost: x\r\n"),
        Ok(None)
    );
    assert_eq!(
        parse_request_head(b"GET / HTTP/2\r\n\r\n"),
        Err(TrackerError::RequestLine)
    );
    assert_eq!(
        parse_request_head(b"GET  / HTTP/1.1\r\n\r\n"),
        Err(TrackerError::RequestLine)
    );
    assert_eq!(
        parse_request_head(b"GET / HTTP/1.1\r\nNoColon\r\n\r\n"),
        Err(TrackerError::HeaderLine)
    );
    assert_eq!(
        parse_request_head(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"),
        Err(TrackerError::RequestBody)
    );
    let big = vec![b'a'; REQUEST_HEAD_LEN_MAX];
    assert_eq!(
        parse_request_head(&big),
        Err(TrackerError::HeadTooLarge(REQUEST_HEAD_LEN_MAX))
    );
    let many = format!(
        "GET / HTTP/1.1\r\n{}\r\n",
        "A: b\r\n".repeat(HEADERS_MAX + 1)
    );
    assert_eq!(
        parse_request_head(many.as_bytes()),
        Err(TrackerError::TooManyHeaders(HEADERS_MAX))
    );
}

#[test]
fn announce_body_round_trips() {
    let peers4 = [127, 0, 0, 1, 0x1a, 0xe1, 10, 0, 0, 2, 0, 80];
    let mut peers6 = vec![0u8; 15];
    peers6.extend_from_slice(&[1, 0x1a, 0xe1]);
    let reply = AnnounceReply {
        interval_s: 1800,
        min_interval_s: 60,
        complete: 1,
        incomplete: 2,
        peers4: &peers4,
        peers6: &peers6,
    };
    let mut body = Vec::new();
    emit_announce(&mut body, &reply, true);
    assert!(body.starts_with(
        b"d8:completei1e10:incompletei2e8:intervali1800e12:min intervali60e5:peers12:"
    ));
    assert!(bitswarm_bencode::decode(&body).unwrap().is_canonical());
    let expected: Vec<SocketAddr> = vec![
        "127.0.0.1:6881".parse().unwrap(),
        "10.0.0.2:80".parse().unwrap(),
        "[::1]:6881".parse().unwrap(),
    ];
    let HttpReply::Announce(HttpAnnounce {
        interval_s,
        complete,
        incomplete,
        peers,
        ..
    }) = parse_announce_response(&body).unwrap()
    else {
        panic!("failure")
    };
    assert_eq!(
        (interval_s, complete, incomplete),
        (Some(1800), Some(1), Some(2))
    );
    assert_eq!(peers, expected);
    let mut body = Vec::new();
    emit_announce(&mut body, &reply, false);
    assert!(bitswarm_bencode::decode(&body).unwrap().is_canonical());
    let HttpReply::Announce(HttpAnnounce { peers, .. }) = parse_announce_response(&body).unwrap()
    else {
        panic!("failure")
    };
    assert_eq!(peers, expected);
}

#[test]
fn failure_and_scrape_bodies() {
    let mut body = Vec::new();
    emit_failure(&mut body, "info-hash not allowed");
    assert_eq!(body, b"d14:failure reason21:info-hash not allowede");
    assert_eq!(
        parse_announce_response(&body),
        Ok(HttpReply::Failure("info-hash not allowed".into()))
    );
    let s = ScrapeStats {
        seeders: 1,
        completed: 2,
        leechers: 3,
    };
    let mut entries = vec![
        (hash(), s),
        (InfoHash::from_bytes([0; 20]), ScrapeStats::default()),
        (hash(), s),
    ];
    let mut body = Vec::new();
    emit_scrape(&mut body, &mut entries);
    assert!(bitswarm_bencode::decode(&body).unwrap().is_canonical());
    assert_eq!(
        parse_scrape(&body),
        Ok(vec![
            (InfoHash::from_bytes([0; 20]), ScrapeStats::default()),
            (hash(), s)
        ])
    );
}

proptest! {
    #[test]
    fn http_parsers_are_total(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_announce_query(&bytes);
        let _ = parse_scrape_query(&bytes);
        let _ = parse_request_head(&bytes);
        let _ = parse_announce_response(&bytes);
        let _ = parse_scrape(&bytes);
    }

    #[test]
    fn query_like_input_is_total(parts in prop::collection::vec(
        ("(info_hash|peer_id|port|left|numwant|event|compact)", "[%0-9a-fA-F&=x-]{0,70}"), 0..12)) {
        let q: String = parts.iter().fold(String::new(), |mut q, (k, v)| {
            let _ = write!(q, "{k}={v}&");
            q
        });
        let _ = parse_announce_query(q.as_bytes());
        let _ = parse_scrape_query(q.as_bytes());
    }

    #[test]
    fn percent_encoding_round_trips(ih: [u8; 20], pid: [u8; 20], port in 1u16.., left: u64) {
        let mut q = String::from("info_hash=");
        percent_encode(&mut q, &ih);
        q.push_str("&peer_id=");
        percent_encode(&mut q, &pid);
        let _ = write!(q, "&port={port}&left={left}");
        let a = parse_announce_query(q.as_bytes()).unwrap();
        prop_assert_eq!((a.info_hash, a.peer_id, a.port, a.left), (InfoHash::from_bytes(ih), PeerId(pid), port, left));
    }
}
