//! Tests of the whole node: a few `Dht`s wired by hand with instant delivery, and hostile
//! inputs (forged tokens, bad ids, unsolicited answers, floods, amplification attempts).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use crate::krpc::{Body, Message, NodeInfo, Query, Response, Want, ERROR_PROTOCOL};
use crate::{
    AddressFamily, Dht, DhtConfig, DhtEvent, NodeId, UNVERIFIED_ITEMS_MAX,
    UNVERIFIED_RESPONSE_LEN_MAX,
};

fn local(n: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, n], 6881))
}

fn node(seed: u64) -> Dht {
    Dht::new(DhtConfig::default(), seed)
}

/// Delivers every queued datagram instantly until the network is quiet (bounded).
fn pump(net: &mut [(SocketAddr, Dht)], now: Instant) {
    for _ in 0..10_000 {
        let mut moved = false;
        for i in 0..net.len() {
            while let Some(t) = net[i].1.poll_transmit() {
                moved = true;
                let from = net[i].0;
                if let Some(dst) = net.iter_mut().find(|(a, _)| *a == t.to) {
                    dst.1.handle_datagram(now, from, &t.payload);
                }
            }
        }
        if !moved {
            return;
        }
    }
    panic!("network did not go quiet");
}

fn query(tid: &[u8], id: NodeId, query: Query) -> Vec<u8> {
    Message {
        transaction_id: tid.to_vec(),
        version: None,
        read_only: false,
        ip: None,
        body: Body::Query {
            id,
            want: Want::default(),
            query,
        },
    }
    .encode()
}

fn only_reply(dht: &mut Dht) -> Message {
    let t = dht.poll_transmit().expect("a reply");
    while let Some(next) = dht.poll_transmit() {
        // Verification pings may follow the reply; they are not replies.
        assert!(matches!(
            Message::parse(&next.payload).unwrap().body,
            Body::Query {
                query: Query::Ping,
                ..
            }
        ));
    }
    Message::parse(&t.payload).unwrap()
}

#[test]
fn three_nodes_announce_and_find() {
    let now = Instant::now();
    let mut net: Vec<(SocketAddr, Dht)> = (1..=3).map(|n| (local(n), node(u64::from(n)))).collect();
    for (_, dht) in &mut net[1..] {
        dht.bootstrap(now, &[local(1)]);
    }
    pump(&mut net, now);
    // Node 2 knows node 3 through the router's answer (and vice versa).
    assert!(net[1].1.stats().nodes >= 1, "{:?}", net[1].1.stats());
    let ih = [7u8; 20];
    let a = net[1].1.announce(now, ih, Some(5000));
    pump(&mut net, now);
    let done = std::iter::from_fn(|| net[1].1.poll_event())
        .find(|e| matches!(e, DhtEvent::LookupDone { lookup, .. } if *lookup == a));
    let Some(DhtEvent::LookupDone { announced_to, .. }) = done else {
        panic!("announce did not finish")
    };
    assert!(announced_to >= 1);
    let g = net[2].1.get_peers(now, ih);
    pump(&mut net, now);
    let events: Vec<DhtEvent> = std::iter::from_fn(|| net[2].1.poll_event()).collect();
    assert!(
        events.contains(&DhtEvent::Peers {
            lookup: g,
            info_hash: ih,
            peers: vec![SocketAddr::from(([127, 0, 0, 2], 5000))],
        }),
        "{events:?}"
    );
    assert!(events
        .iter()
        .any(|e| matches!(e, DhtEvent::LookupDone { lookup, peers_found: 1, .. } if *lookup == g)));
}

#[test]
fn forged_token_is_refused_and_valid_one_accepted() {
    let now = Instant::now();
    let mut dht = node(1);
    let from = local(9);
    let querier = NodeId([9; 20]);
    let ih = [3u8; 20];
    let announce = |token: Vec<u8>| Query::AnnouncePeer {
        info_hash: ih,
        port: 4000,
        implied_port: false,
        token,
    };
    dht.handle_datagram(
        now,
        from,
        &query(b"a1", querier, announce(b"forged!!".to_vec())),
    );
    let reply = only_reply(&mut dht);
    assert!(matches!(
        reply.body,
        Body::Error {
            code: ERROR_PROTOCOL,
            ..
        }
    ));
    assert_eq!(dht.stats().peers_stored, 0);
    // A token issued to another IP is refused too.
    dht.handle_datagram(
        now,
        local(10),
        &query(b"g1", querier, Query::GetPeers { info_hash: ih }),
    );
    let Body::Response(Response {
        token: Some(other), ..
    }) = only_reply(&mut dht).body
    else {
        panic!("no token")
    };
    dht.handle_datagram(now, from, &query(b"a2", querier, announce(other)));
    assert!(matches!(only_reply(&mut dht).body, Body::Error { .. }));
    dht.handle_datagram(
        now,
        from,
        &query(b"g2", querier, Query::GetPeers { info_hash: ih }),
    );
    let Body::Response(Response {
        token: Some(token), ..
    }) = only_reply(&mut dht).body
    else {
        panic!("no token")
    };
    dht.handle_datagram(now, from, &query(b"a3", querier, announce(token.clone())));
    assert!(matches!(only_reply(&mut dht).body, Body::Response(_)));
    assert_eq!(dht.stats().peers_stored, 1);
    // Still valid after one rotation, not after two.
    dht.handle_timeout(now + Duration::from_secs(301));
    dht.handle_datagram(now, from, &query(b"a4", querier, announce(token.clone())));
    assert!(matches!(only_reply(&mut dht).body, Body::Response(_)));
    dht.handle_timeout(now + Duration::from_secs(602));
    dht.handle_datagram(now, from, &query(b"a5", querier, announce(token)));
    assert!(matches!(only_reply(&mut dht).body, Body::Error { .. }));
}

#[test]
fn wrong_length_ids_are_dropped() {
    let now = Instant::now();
    let mut dht = node(1);
    for bad in [
        &b"d1:ad2:id19:abcdefghij012345678e1:q4:ping1:t2:aa1:y1:qe"[..],
        &b"d1:ad2:id21:abcdefghij0123456789Xe1:q4:ping1:t2:aa1:y1:qe"[..],
        &b"d1:ad2:id20:abcdefghij01234567896:target19:abcdefghij012345678e1:q9:find_node1:t2:aa1:y1:qe"[..],
    ] {
        dht.handle_datagram(now, local(9), bad);
    }
    assert!(dht.poll_transmit().is_none());
    assert_eq!(dht.stats().responses_dropped, 3);
    assert_eq!(dht.stats().queries_received, 0);
}

#[test]
fn unsolicited_and_misaddressed_responses_are_dropped() {
    let now = Instant::now();
    let mut dht = node(1);
    let peer = local(9);
    dht.add_node(now, peer, None); // sends a ping
    let ping = dht.poll_transmit().unwrap();
    let tid = Message::parse(&ping.payload).unwrap().transaction_id;
    let response = |tid: &[u8]| {
        Message {
            transaction_id: tid.to_vec(),
            version: None,
            read_only: false,
            ip: None,
            body: Body::Response(Response {
                id: NodeId([9; 20]),
                nodes: Vec::new(),
                nodes6: Vec::new(),
                values: Vec::new(),
                token: None,
            }),
        }
        .encode()
    };
    dht.handle_datagram(now, peer, &response(b"zzzz"));
    dht.handle_datagram(now, local(10), &response(&tid));
    assert_eq!(dht.stats().responses_dropped, 2);
    assert_eq!(dht.stats().nodes, 0);
    dht.handle_datagram(now, peer, &response(&tid));
    assert_eq!(dht.stats().nodes, 1);
    // The same answer again is now unsolicited.
    dht.handle_datagram(now, peer, &response(&tid));
    assert_eq!(dht.stats().responses_dropped, 3);
    assert_eq!(dht.nodes(), vec![(NodeId([9; 20]), peer)]);
}

/// A node full of stored peers and table entries answers strangers within the bound.
#[test]
fn responses_to_unverified_addresses_are_bounded() {
    for family in [AddressFamily::V4, AddressFamily::V6] {
        let now = Instant::now();
        let config = DhtConfig {
            family,
            enforce_node_id: false,
            restrict_routing_ips: false,
            bucket_size: 20,
            ..DhtConfig::default()
        };
        let mut dht = Dht::new(config, 5);
        let addr = |n: u32| match family {
            AddressFamily::V4 => SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n)), 1),
            AddressFamily::V6 => SocketAddr::new(
                IpAddr::V6(std::net::Ipv6Addr::new(
                    0x2001, 0xdb8, 0, 0, 0, 0, 0, n as u16,
                )),
                1,
            ),
        };
        let mut rng = rand::rngs::mock::StepRng::new(1, 0x9e37_79b9_7f4a_7c15);
        for n in 0..300 {
            dht.add_node(now, addr(n), Some(NodeId::random(&mut rng)));
        }
        let ih = [1u8; 20];
        for n in 0..200 {
            let from = addr(1000 + n);
            let id = NodeId([n as u8; 20]);
            dht.handle_datagram(
                now,
                from,
                &query(b"g", id, Query::GetPeers { info_hash: ih }),
            );
            let Body::Response(Response {
                token: Some(token), ..
            }) = only_reply(&mut dht).body
            else {
                panic!("no token")
            };
            let q = Query::AnnouncePeer {
                info_hash: ih,
                port: 9,
                implied_port: false,
                token,
            };
            dht.handle_datagram(now, from, &query(b"a", id, q));
            let _ = only_reply(&mut dht);
        }
        assert_eq!(dht.stats().peers_stored, 200);
        let long_tid = [0xee; crate::krpc::TRANSACTION_ID_LEN_MAX];
        let stranger = addr(5000);
        for q in [
            Query::GetPeers { info_hash: ih },
            Query::GetPeers { info_hash: [2; 20] },
            Query::FindNode {
                target: NodeId([0; 20]),
            },
        ] {
            dht.handle_datagram(now, stranger, &query(&long_tid, NodeId([0xab; 20]), q));
            let t = dht.poll_transmit().unwrap();
            assert!(
                t.payload.len() <= UNVERIFIED_RESPONSE_LEN_MAX,
                "{family:?} {}",
                t.payload.len()
            );
            let Body::Response(r) = Message::parse(&t.payload).unwrap().body else {
                panic!("not a response")
            };
            assert!(r.values.len() <= UNVERIFIED_ITEMS_MAX);
            assert!(r.nodes.len() + r.nodes6.len() <= UNVERIFIED_ITEMS_MAX);
            assert!(!r.values.is_empty() || !r.nodes.is_empty() || !r.nodes6.is_empty());
            while dht.poll_transmit().is_some() {}
        }
    }
}

#[test]
fn floods_stay_within_bounds() {
    let now = Instant::now();
    let config = DhtConfig {
        max_torrents: 50,
        max_peers_per_torrent: 10,
        ..DhtConfig::default()
    };
    let mut dht = Dht::new(config, 3);
    let mut pings = 0;
    for n in 0..5000u32 {
        let from = SocketAddr::from(([127, 1, (n >> 8) as u8, n as u8], 2000));
        let mut id = [0u8; 20];
        id[..4].copy_from_slice(&n.to_be_bytes());
        id[19] = 1;
        let id = NodeId(id);
        let ih = [(n % 256) as u8; 20];
        dht.handle_datagram(
            now,
            from,
            &query(b"g", id, Query::GetPeers { info_hash: ih }),
        );
        let reply = Message::parse(&dht.poll_transmit().unwrap().payload).unwrap();
        while dht.poll_transmit().is_some() {
            pings += 1;
        }
        let Body::Response(Response {
            token: Some(token), ..
        }) = reply.body
        else {
            panic!("no token")
        };
        let q = Query::AnnouncePeer {
            info_hash: ih,
            port: 9,
            implied_port: true,
            token,
        };
        dht.handle_datagram(now, from, &query(b"a", id, q));
        while dht.poll_transmit().is_some() {}
        let s = dht.stats();
        assert!(s.torrents_stored <= 50 && s.peers_stored <= 500, "{s:?}");
        assert!(s.in_flight <= crate::REQUESTS_IN_FLIGHT_MAX);
    }
    // Unanswered verification pings are capped, so a flood cannot make us ping the world.
    assert_eq!(pings, crate::VERIFY_PINGS_MAX);
    // Unverified querying nodes never entered the table.
    assert_eq!(dht.stats().nodes, 0);
}

#[test]
fn read_only_nodes_do_not_answer_and_are_not_inserted() {
    let now = Instant::now();
    let ro = DhtConfig {
        read_only: true,
        ..DhtConfig::default()
    };
    let mut net = vec![
        (local(1), node(1)),
        (local(2), Dht::new(ro, 2)),
        (local(3), node(3)),
    ];
    net[2].1.bootstrap(now, &[local(1)]);
    pump(&mut net, now);
    net[1].1.bootstrap(now, &[local(1)]);
    pump(&mut net, now);
    // The read-only node learnt the others, nobody learnt it.
    assert!(net[1].1.stats().nodes >= 1);
    assert!(net[0].1.nodes().iter().all(|(_, a)| *a != local(2)));
    assert!(net[2].1.nodes().iter().all(|(_, a)| *a != local(2)));
    net[1]
        .1
        .handle_datagram(now, local(9), &query(b"p", NodeId([9; 20]), Query::Ping));
    assert!(net[1].1.poll_transmit().is_none());
    assert_eq!(net[1].1.stats().queries_received, 1);
}

#[test]
fn external_ip_is_voted() {
    let now = Instant::now();
    let mut dht = node(1);
    let me: SocketAddr = "198.51.100.20:6881".parse().unwrap();
    for n in 1..=3u8 {
        let peer = SocketAddr::from(([127, 0, 0, n], 6881));
        dht.add_node(now, peer, None);
        let ping = Message::parse(&dht.poll_transmit().unwrap().payload).unwrap();
        let reply = Message {
            transaction_id: ping.transaction_id,
            version: None,
            read_only: false,
            ip: Some(me),
            body: Body::Response(Response {
                id: NodeId([n; 20]),
                nodes: vec![NodeInfo {
                    id: NodeId([1; 20]),
                    addr: local(1),
                }],
                nodes6: Vec::new(),
                values: Vec::new(),
                token: None,
            }),
        };
        dht.handle_datagram(now, peer, &reply.encode());
    }
    assert_eq!(dht.external_ip(), Some(me.ip()));
    assert_eq!(dht.poll_event(), Some(DhtEvent::ExternalIp(me.ip())));
}

#[test]
fn bep42_ids_enforced_for_global_addresses_only() {
    let now = Instant::now();
    let mut dht = node(1);
    let global: SocketAddr = "203.0.113.9:6881".parse().unwrap();
    dht.add_node(now, global, Some(NodeId([5; 20])));
    assert_eq!(dht.stats().nodes, 0);
    let mut rng = rand::rngs::mock::StepRng::new(3, 7);
    dht.add_node(now, global, Some(NodeId::secure(global.ip(), &mut rng)));
    dht.add_node(now, local(5), Some(NodeId([5; 20])));
    assert_eq!(dht.stats().nodes, 2);
    let config = DhtConfig {
        external_ip: Some(global.ip()),
        ..DhtConfig::default()
    };
    assert!(Dht::new(config, 9).id().is_secure_for(global.ip()));
}

/// BEP 5 maintenance: a bucket idle for 15 minutes is refreshed with a `find_node`, and
/// entries unheard of for 15 minutes are pinged (at most a bounded number per round).
#[test]
fn idle_buckets_are_refreshed_and_questionable_nodes_pinged() {
    let now = Instant::now();
    let mut dht = node(1);
    for n in 0..40u8 {
        let mut id = [n; 20];
        id[0] = n.wrapping_mul(37);
        dht.add_node(
            now,
            SocketAddr::from(([127, 0, 1, n], 6881)),
            Some(NodeId(id)),
        );
    }
    dht.handle_timeout(now + Duration::from_secs(61));
    assert!(
        dht.poll_transmit().is_none(),
        "nothing is due after one minute"
    );
    let later = now + Duration::from_secs(16 * 60);
    let mut due = dht.poll_timeout().unwrap();
    while due <= later {
        dht.handle_timeout(due);
        due = dht.poll_timeout().unwrap();
    }
    let mut kinds = (0, 0);
    while let Some(t) = dht.poll_transmit() {
        match Message::parse(&t.payload).unwrap().body {
            Body::Query {
                query: Query::FindNode { .. },
                ..
            } => kinds.0 += 1,
            Body::Query {
                query: Query::Ping, ..
            } => kinds.1 += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(kinds.0 >= 1, "{kinds:?}");
    assert!(
        kinds.1 >= 1 && kinds.1 <= crate::QUESTIONABLE_PINGS_PER_ROUND,
        "{kinds:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn arbitrary_datagrams_never_panic(
        datagrams in proptest::collection::vec(
            (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..300)), 1..20)
    ) {
        let now = Instant::now();
        let mut dht = node(1);
        dht.bootstrap(now, &[local(1)]);
        let mut sent = 0usize;
        for (i, (src, bytes)) in datagrams.iter().enumerate() {
            let t = now + Duration::from_millis(100 * i as u64);
            dht.handle_datagram(t, local(*src), bytes);
            dht.handle_timeout(t);
            while dht.poll_transmit().is_some() {
                sent += 1;
            }
        }
        let s = dht.stats();
        prop_assert!(s.responses_dropped + s.queries_received <= datagrams.len() as u64);
        prop_assert!(s.in_flight <= crate::REQUESTS_IN_FLIGHT_MAX);
        prop_assert!(sent <= 2 * datagrams.len() + 8);
    }
}
