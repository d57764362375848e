//! BEP 15 layouts byte by byte, round-trips, and total parsing.

use std::net::{Ipv4Addr, SocketAddr};

use proptest::prelude::*;

use crate::udp::*;
use crate::{Event, InfoHash, PeerId, TrackerError};

/// A connect request exactly as BEP 15 lays it out.
const CONNECT: [u8; 16] = [
    0x00, 0x00, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80, // protocol id
    0x00, 0x00, 0x00, 0x00, // action: connect
    0xde, 0xad, 0xbe, 0xef, // transaction id
];

fn announce_packet() -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&0x1122_3344_5566_7788u64.to_be_bytes()); // connection id
    p.extend_from_slice(&1u32.to_be_bytes()); // action: announce
    p.extend_from_slice(&7u32.to_be_bytes()); // transaction id
    p.extend_from_slice(&[0xaa; 20]); // info-hash
    p.extend_from_slice(&[0xbb; 20]); // peer id
    p.extend_from_slice(&10u64.to_be_bytes()); // downloaded
    p.extend_from_slice(&0u64.to_be_bytes()); // left
    p.extend_from_slice(&30u64.to_be_bytes()); // uploaded
    p.extend_from_slice(&2u32.to_be_bytes()); // event: started
    p.extend_from_slice(&[0, 0, 0, 0]); // ip: default
    p.extend_from_slice(&0x0102_0304u32.to_be_bytes()); // key
    p.extend_from_slice(&(-1i32).to_be_bytes()); // num_want: default
    p.extend_from_slice(&6881u16.to_be_bytes()); // port
    assert_eq!(p.len(), ANNOUNCE_LEN);
    p
}

#[test]
fn connect_request_layout() {
    let r = Request::parse(&CONNECT).unwrap();
    assert_eq!(
        r,
        Request::Connect {
            transaction_id: TransactionId(0xdead_beef)
        }
    );
    let mut out = Vec::new();
    r.emit(&mut out);
    assert_eq!(out, CONNECT);
    let mut bad = CONNECT;
    bad[0] = 1;
    assert_eq!(Request::parse(&bad), Err(TrackerError::BadProtocolId));
}

#[test]
fn announce_request_layout() {
    let packet = announce_packet();
    let Request::Announce(a) = Request::parse(&packet).unwrap() else {
        panic!("not an announce")
    };
    assert_eq!(a.connection_id, ConnectionId(0x1122_3344_5566_7788));
    assert_eq!(a.transaction_id, TransactionId(7));
    assert_eq!(a.info_hash, InfoHash::from_bytes([0xaa; 20]));
    assert_eq!(a.peer_id, PeerId([0xbb; 20]));
    assert_eq!((a.downloaded, a.left, a.uploaded), (10, 0, 30));
    assert_eq!(
        (a.event, a.ip, a.key, a.num_want, a.port),
        (Event::Started, None, 0x0102_0304, -1, 6881)
    );
    let mut out = Vec::new();
    Request::Announce(a).emit(&mut out);
    assert_eq!(out, packet);
}

#[test]
fn announce_with_bep41_url_data_is_tolerated() {
    let mut packet = announce_packet();
    packet.extend_from_slice(&[2, 5]);
    packet.extend_from_slice(b"/ann?");
    packet.extend_from_slice(&[1, 2, 3]);
    packet.extend_from_slice(b"x=1");
    packet.push(0);
    assert!(matches!(Request::parse(&packet), Ok(Request::Announce(_))));
    assert_eq!(url_data(&packet).as_deref(), Some(&b"/ann?x=1"[..]));
    // Malformed options are ignored, not an error.
    let mut bad = announce_packet();
    bad.extend_from_slice(&[2, 200, b'/']);
    assert!(matches!(Request::parse(&bad), Ok(Request::Announce(_))));
    assert_eq!(url_data(&bad), None);
}

#[test]
fn malformed_requests_are_errors() {
    let packet = announce_packet();
    assert_eq!(
        Request::parse(&packet[..97]),
        Err(TrackerError::PacketTooShort {
            len: 97,
            need: ANNOUNCE_LEN
        })
    );
    assert_eq!(
        Request::parse(&CONNECT[..15]),
        Err(TrackerError::PacketTooShort { len: 15, need: 16 })
    );
    let mut unknown = CONNECT;
    unknown[11] = 9;
    assert_eq!(
        Request::parse(&unknown),
        Err(TrackerError::UnknownAction(9))
    );
    let mut event = packet.clone();
    event[83] = 4;
    assert_eq!(Request::parse(&event), Err(TrackerError::UnknownEvent(4)));
    let oversized = vec![0u8; REQUEST_LEN_MAX + 1];
    assert!(matches!(
        Request::parse(&oversized),
        Err(TrackerError::PacketTooLong { .. })
    ));
}

#[test]
fn scrape_request_layout_and_bounds() {
    let hashes = [InfoHash::from_bytes([1; 20]), InfoHash::from_bytes([2; 20])];
    let mut packet = Vec::new();
    emit_scrape_request(&mut packet, ConnectionId(5), TransactionId(6), &hashes);
    assert_eq!(packet.len(), 16 + 40);
    assert_eq!(&packet[8..12], &2u32.to_be_bytes());
    let Request::Scrape(s) = Request::parse(&packet).unwrap() else {
        panic!("not a scrape")
    };
    assert_eq!(s.info_hashes().collect::<Vec<_>>(), hashes);
    assert_eq!(
        Request::parse(&packet[..16]),
        Err(TrackerError::ScrapeCount { count: 0, max: 74 })
    );
    assert_eq!(
        Request::parse(&packet[..30]),
        Err(TrackerError::ScrapeLength)
    );
    let many = vec![InfoHash::from_bytes([3; 20]); 75];
    let mut packet = Vec::new();
    emit_scrape_request(&mut packet, ConnectionId(5), TransactionId(6), &many);
    assert_eq!(
        Request::parse(&packet),
        Err(TrackerError::PacketTooLong {
            len: 1516,
            max: 1496
        })
    );
}

#[test]
fn responses_layout_and_parse() {
    let mut out = Vec::new();
    emit_connect_response(
        &mut out,
        TransactionId(0xdead_beef),
        ConnectionId(0x0102_0304_0506_0708),
    );
    assert_eq!(
        out,
        [0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8]
    );

    let mut out = Vec::new();
    emit_announce_response_header(&mut out, TransactionId(9), 1800, 0, 0);
    out.extend_from_slice(&[127, 0, 0, 1, 0x1a, 0xe1]);
    set_announce_counts(&mut out, 3, 4);
    assert_eq!(
        &out[..20],
        &[0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 7, 8, 0, 0, 0, 3, 0, 0, 0, 4]
    );
    let Response::Announce {
        interval_s,
        leechers,
        seeders,
        peers,
        ..
    } = Response::parse(&out, false).unwrap()
    else {
        panic!("not an announce response")
    };
    assert_eq!((interval_s, leechers, seeders), (1800, 3, 4));
    assert_eq!(
        peers.iter().collect::<Vec<_>>(),
        vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 6881))]
    );

    let mut out = Vec::new();
    emit_scrape_response_header(&mut out, TransactionId(1));
    emit_scrape_entry(
        &mut out,
        ScrapeStats {
            seeders: 1,
            completed: 2,
            leechers: 3,
        },
    );
    assert_eq!(
        out,
        [0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]
    );
    let r = Response::parse(&out, false).unwrap();
    assert_eq!(
        r.scrape_stats().collect::<Vec<_>>(),
        vec![ScrapeStats {
            seeders: 1,
            completed: 2,
            leechers: 3
        }]
    );

    let mut out = Vec::new();
    emit_error_response(&mut out, TransactionId(2), b"no");
    assert_eq!(out, [0, 0, 0, 3, 0, 0, 0, 2, b'n', b'o']);
    assert_eq!(
        Response::parse(&out, false).unwrap(),
        Response::Error {
            transaction_id: TransactionId(2),
            message: b"no"
        }
    );
}

proptest! {
    #[test]
    fn request_parse_is_total(bytes in prop::collection::vec(any::<u8>(), 0..700)) {
        let _ = Request::parse(&bytes);
        let _ = url_data(&bytes);
        let _ = RequestHeader::parse(&bytes);
        for v6 in [false, true] {
            if let Ok(r) = Response::parse(&bytes, v6) {
                let _ = r.scrape_stats().count();
                if let Response::Announce { peers, .. } = r { let _ = peers.iter().count(); }
            }
        }
    }

    #[test]
    fn announce_round_trips(cid: u64, tid: u32, ih: [u8; 20], pid: [u8; 20], d: u64, l: u64, u: u64,
                            ev in 0u32..4, key: u32, nw: i32, port: u16) {
        let a = AnnounceRequest {
            connection_id: ConnectionId(cid), transaction_id: TransactionId(tid),
            info_hash: InfoHash::from_bytes(ih), peer_id: PeerId(pid), downloaded: d, left: l,
            uploaded: u, event: Event::from_udp(ev).unwrap(), ip: None, key, num_want: nw, port,
        };
        let mut out = Vec::new();
        Request::Announce(a).emit(&mut out);
        prop_assert_eq!(Request::parse(&out), Ok(Request::Announce(a)));
    }
}
