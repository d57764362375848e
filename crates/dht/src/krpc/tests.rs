//! KRPC tests: the BEP 5 example messages byte for byte, the bounds, and round trips.

use super::*;
use proptest::prelude::*;

fn id(s: &[u8; 20]) -> NodeId {
    NodeId(*s)
}

/// BEP 5 "ping" query and response examples.
#[test]
fn bep5_ping() {
    let q = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
    let m = Message::parse(q).unwrap();
    assert_eq!(m.transaction_id, b"aa");
    assert_eq!(
        m.body,
        Body::Query {
            id: id(b"abcdefghij0123456789"),
            want: Want::default(),
            query: Query::Ping
        }
    );
    assert_eq!(m.encode(), q);
    let r = b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re";
    let m = Message::parse(r).unwrap();
    let Body::Response(resp) = &m.body else {
        panic!("not a response")
    };
    assert_eq!(resp.id, id(b"mnopqrstuvwxyz123456"));
    assert_eq!(m.encode(), r);
}

/// BEP 5 `find_node` query and a response with one compact node.
#[test]
fn bep5_find_node() {
    let q = b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe";
    let m = Message::parse(q).unwrap();
    assert!(matches!(
        m.body,
        Body::Query { query: Query::FindNode { target }, .. } if target == id(b"mnopqrstuvwxyz123456")
    ));
    assert_eq!(m.encode(), q);
    let mut r = b"d1:rd2:id20:0123456789abcdefghij5:nodes26:".to_vec();
    r.extend_from_slice(b"mnopqrstuvwxyz123456");
    r.extend_from_slice(&[192, 0, 2, 7, 0x1a, 0xe1]);
    r.extend_from_slice(b"e1:t2:aa1:y1:re");
    let m = Message::parse(&r).unwrap();
    let Body::Response(resp) = &m.body else {
        panic!("not a response")
    };
    assert_eq!(resp.nodes.len(), 1);
    assert_eq!(resp.nodes[0].addr, "192.0.2.7:6881".parse().unwrap());
    assert_eq!(m.encode(), r);
}

/// BEP 5 `get_peers` query, and responses with values and with nodes.
#[test]
fn bep5_get_peers() {
    let q = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe";
    let m = Message::parse(q).unwrap();
    assert!(matches!(
        m.body,
        Body::Query { query: Query::GetPeers { info_hash }, .. } if &info_hash == b"mnopqrstuvwxyz123456"
    ));
    assert_eq!(m.encode(), q);
    // "values": ["axje.u", "idhtnm"] as in the BEP.
    let r = b"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re";
    let m = Message::parse(r).unwrap();
    let Body::Response(resp) = &m.body else {
        panic!("not a response")
    };
    assert_eq!(resp.token.as_deref(), Some(&b"aoeusnth"[..]));
    assert_eq!(resp.values.len(), 2);
    assert_eq!(resp.values[0], "97.120.106.101:11893".parse().unwrap());
    assert_eq!(m.encode(), r);
}

/// BEP 5 `announce_peer` query (with `implied_port`) and an error.
#[test]
fn bep5_announce_peer_and_error() {
    let q = b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe";
    let m = Message::parse(q).unwrap();
    let Body::Query {
        query:
            Query::AnnouncePeer {
                port,
                implied_port,
                token,
                ..
            },
        ..
    } = &m.body
    else {
        panic!("not an announce")
    };
    assert_eq!(
        (*port, *implied_port, token.as_slice()),
        (6881, true, &b"aoeusnth"[..])
    );
    assert_eq!(m.encode(), q);
    let e = b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee";
    let m = Message::parse(e).unwrap();
    assert_eq!(
        m.body,
        Body::Error {
            code: 201,
            message: b"A Generic Error Ocurred".to_vec()
        }
    );
    assert_eq!(m.encode(), e);
}

#[test]
fn envelope_keys_ip_ro_want_version() {
    let msg = Message {
        transaction_id: b"xy".to_vec(),
        version: Some(b"LT\x01\x02".to_vec()),
        read_only: true,
        ip: Some("[2001:db8::1]:51413".parse().unwrap()),
        body: Body::Query {
            id: NodeId([1; 20]),
            want: Want { v4: true, v6: true },
            query: Query::FindNode {
                target: NodeId([2; 20]),
            },
        },
    };
    let bytes = msg.encode();
    assert!(bitswarm_bencode::decode(&bytes).unwrap().is_canonical());
    assert_eq!(Message::parse(&bytes).unwrap(), msg);
}

#[test]
fn bounds_are_enforced() {
    let long_t = format!(
        "d1:rd2:id20:abcdefghij0123456789e1:t17:{}1:y1:re",
        "a".repeat(17)
    );
    assert_eq!(
        Message::parse(long_t.as_bytes()),
        Err(KrpcError::Invalid("t"))
    );
    let short_id = b"d1:ad2:id19:abcdefghij012345678e1:q4:ping1:t2:aa1:y1:qe";
    assert_eq!(Message::parse(short_id), Err(KrpcError::Invalid("id")));
    let long_id = b"d1:ad2:id21:abcdefghij0123456789Xe1:q4:ping1:t2:aa1:y1:qe";
    assert_eq!(Message::parse(long_id), Err(KrpcError::Invalid("id")));
    let token = format!(
        "d1:rd2:id20:abcdefghij01234567895:token65:{}e1:t2:aa1:y1:re",
        "t".repeat(65)
    );
    assert_eq!(
        Message::parse(token.as_bytes()),
        Err(KrpcError::Invalid("token"))
    );
    let nodes =
        b"d1:rd2:id20:abcdefghij01234567895:nodes25:aaaaaaaaaaaaaaaaaaaaaaaaae1:t2:aa1:y1:re";
    assert_eq!(Message::parse(nodes), Err(KrpcError::Invalid("nodes")));
    let big = vec![b'x'; DATAGRAM_LEN_MAX + 1];
    assert_eq!(
        Message::parse(&big),
        Err(KrpcError::TooLong(DATAGRAM_LEN_MAX + 1))
    );
    let port = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti70000e5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe";
    assert_eq!(Message::parse(port), Err(KrpcError::Invalid("port")));
    let method = b"d1:ad2:id20:abcdefghij0123456789e1:q3:get1:t2:aa1:y1:qe";
    assert_eq!(Message::parse(method), Err(KrpcError::UnknownMethod));
    assert_eq!(Message::parse(b"le"), Err(KrpcError::NotADict));
    assert_eq!(
        Message::parse(b"d1:t2:aa1:y1:ze"),
        Err(KrpcError::UnknownType)
    );
}

#[test]
fn too_many_values_rejected_and_odd_values_skipped() {
    let mut r = b"d1:rd2:id20:abcdefghij01234567896:valuesl".to_vec();
    for _ in 0..=VALUES_COUNT_MAX {
        r.extend_from_slice(b"6:abcdef");
    }
    r.extend_from_slice(b"ee1:t2:aa1:y1:re");
    assert!(Message::parse(&r).is_err());
    let odd = b"d1:rd2:id20:abcdefghij01234567896:valuesl5:abcde6:abcdefi3eee1:t2:aa1:y1:re";
    let Body::Response(resp) = Message::parse(odd).unwrap().body else {
        panic!("not a response")
    };
    assert_eq!(resp.values.len(), 1);
}

fn arb_addr(v6: bool) -> impl Strategy<Value = SocketAddr> {
    (any::<[u8; 16]>(), 1u16..).prop_map(move |(ip, port)| {
        if v6 {
            SocketAddr::new(Ipv6Addr::from(ip).into(), port)
        } else {
            SocketAddr::new(Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).into(), port)
        }
    })
}

fn arb_node(v6: bool) -> impl Strategy<Value = NodeInfo> {
    (any::<[u8; 20]>(), arb_addr(v6)).prop_map(|(id, addr)| NodeInfo {
        id: NodeId(id),
        addr,
    })
}

fn arb_query() -> impl Strategy<Value = Query> {
    prop_oneof![
        Just(Query::Ping),
        any::<[u8; 20]>().prop_map(|t| Query::FindNode { target: NodeId(t) }),
        any::<[u8; 20]>().prop_map(|info_hash| Query::GetPeers { info_hash }),
        (
            any::<[u8; 20]>(),
            any::<u16>(),
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..=TOKEN_LEN_MAX)
        )
            .prop_map(
                |(info_hash, port, implied_port, token)| Query::AnnouncePeer {
                    info_hash,
                    port,
                    implied_port,
                    token
                }
            ),
    ]
}

fn arb_body() -> impl Strategy<Value = Body> {
    let response = (
        any::<[u8; 20]>(),
        proptest::collection::vec(arb_node(false), 0..8),
        proptest::collection::vec(arb_node(true), 0..8),
        proptest::collection::vec(prop_oneof![arb_addr(false), arb_addr(true)], 0..20),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..=TOKEN_LEN_MAX)),
    )
        .prop_map(|(id, nodes, nodes6, values, token)| {
            Body::Response(Response {
                id: NodeId(id),
                nodes,
                nodes6,
                values,
                token,
            })
        });
    prop_oneof![
        (any::<[u8; 20]>(), any::<(bool, bool)>(), arb_query()).prop_map(
            |(id, (v4, v6), query)| {
                Body::Query {
                    id: NodeId(id),
                    want: Want { v4, v6 },
                    query,
                }
            }
        ),
        response,
        (
            any::<i64>(),
            proptest::collection::vec(any::<u8>(), 0..=ERROR_MESSAGE_LEN_MAX)
        )
            .prop_map(|(code, message)| Body::Error { code, message }),
    ]
}

proptest! {
    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = Message::parse(&bytes);
    }

    #[test]
    fn parse_never_panics_on_mutated_messages(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)
    ) {
        let mut bytes = b"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re".to_vec();
        for (at, b) in flips {
            let n = bytes.len();
            bytes[at % n] = b;
        }
        let _ = Message::parse(&bytes);
    }

    #[test]
    fn encode_parse_round_trip(
        t in proptest::collection::vec(any::<u8>(), 0..=TRANSACTION_ID_LEN_MAX),
        v in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..=VERSION_LEN_MAX)),
        ro in any::<bool>(),
        ip in proptest::option::of(prop_oneof![arb_addr(false), arb_addr(true)]),
        body in arb_body(),
    ) {
        let msg = Message { transaction_id: t, version: v, read_only: ro, ip, body };
        let bytes = msg.encode();
        prop_assume!(bytes.len() <= DATAGRAM_LEN_MAX);
        let back = Message::parse(&bytes).unwrap();
        prop_assert_eq!(back, msg);
    }
}
