//! Real DHT nodes on 127.0.0.1 (and `::1`) in one process: announce and find peers through a
//! bootstrap node, and a restart that comes back with the saved table and id. Every wait is
//! bounded.

use std::net::SocketAddr;
use std::time::Duration;

use bitswarm_dht_node::{DhtNode, DhtNodeConfig, DhtNodeError, DhtPeers};
use tokio::sync::mpsc;

/// Bound on any one lookup or wait in these tests.
const WAIT: Duration = Duration::from_secs(20);

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn node(bootstrap: &[SocketAddr], state: Option<std::path::PathBuf>) -> DhtNode {
    DhtNode::start(DhtNodeConfig {
        bootstrap: bootstrap.iter().map(ToString::to_string).collect(),
        state,
        ..DhtNodeConfig::new(loopback())
    })
    .expect("start a DHT node")
}

/// Collects a lookup's peers until its last message.
async fn collect(mut rx: mpsc::Receiver<DhtPeers>) -> (Vec<SocketAddr>, Option<usize>) {
    let mut peers = Vec::new();
    let done = tokio::time::timeout(WAIT, async {
        while let Some(batch) = rx.recv().await {
            peers.extend(batch.peers);
            if let Some(summary) = batch.done {
                return Some(summary.nodes_responded);
            }
        }
        None
    })
    .await
    .expect("the lookup ends in time");
    (peers, done)
}

/// `announcer` announces `info_hash` on `port` and its first round reaches a node; then
/// `seeker` looks it up (some node answers); returns the peers found.
async fn announce_then_find(
    announcer: &DhtNode,
    seeker: &DhtNode,
    info_hash: [u8; 20],
    port: u16,
) -> Vec<SocketAddr> {
    let mut announcement = announcer
        .announce(info_hash, Some(port))
        .await
        .expect("announce");
    let round = tokio::time::timeout(WAIT, async {
        loop {
            match announcement.recv().await {
                Some(DhtPeers { done: Some(s), .. }) => break s,
                Some(_) => {}
                None => panic!("the announcement ended"),
            }
        }
    })
    .await
    .expect("the first announce round ends in time");
    assert!(round.announced_to >= 1, "{round:?}");
    let (peers, responded) = collect(seeker.get_peers(info_hash).await.expect("get_peers")).await;
    assert!(responded.is_some_and(|n| n >= 1), "{responded:?}");
    peers
}

/// BEP 32: nodes on IPv6 (`::1`) announce and find an IPv6 peer, and an IPv4 node can share
/// the port number of an IPv6 one.
#[tokio::test]
async fn ipv6_nodes_announce_and_find_peers() {
    let v6 = |bootstrap: &[SocketAddr], port| {
        DhtNode::start(DhtNodeConfig {
            bootstrap: bootstrap.iter().map(ToString::to_string).collect(),
            ..DhtNodeConfig::new(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)))
        })
        .expect("start an IPv6 DHT node")
    };
    let hub = v6(&[], 0);
    assert!(hub.local_addr().is_ipv6());
    let same_port_v4 = DhtNode::start(DhtNodeConfig::new(SocketAddr::from((
        [127, 0, 0, 1],
        hub.local_addr().port(),
    ))))
    .expect("an IPv4 node on the IPv6 node's port number");
    let announcer = v6(&[hub.local_addr()], 0);
    let seeker = v6(&[hub.local_addr()], 0);
    let info_hash = [0x6b; 20];
    let peers = announce_then_find(&announcer, &seeker, info_hash, 7006).await;
    let expected = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 7006));
    assert!(peers.contains(&expected), "{peers:?}");
    let stats = hub.stats().await.expect("stats");
    assert!(stats.peers_stored >= 1, "{stats:?}");
    for node in [hub, same_port_v4, announcer, seeker] {
        node.shutdown().await.expect("shutdown");
    }
}

#[tokio::test]
async fn a_peer_announced_through_a_bootstrap_node_is_found_by_another_node() {
    let hub = node(&[], None);
    let announcer = node(&[hub.local_addr()], None);
    let seeker = node(&[hub.local_addr()], None);
    let info_hash = [0x5a; 20];
    let peers = announce_then_find(&announcer, &seeker, info_hash, 7000).await;
    assert!(
        peers.contains(&SocketAddr::from(([127, 0, 0, 1], 7000))),
        "{peers:?}"
    );
    let stats = hub.stats().await.expect("stats");
    assert!(stats.peers_stored >= 1, "{stats:?}");
    assert!(stats.queries_received >= 2, "{stats:?}");

    // An unknown torrent: the lookup ends, with no peers.
    let (none, _) = collect(seeker.get_peers([0x11; 20]).await.expect("get_peers")).await;
    assert!(none.is_empty());
}

#[tokio::test]
async fn a_restarted_node_keeps_its_id_and_its_table() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state_file = dir.path().join("state.sqlite");
    let hub = node(&[], None);
    let first = node(&[hub.local_addr()], Some(state_file.clone()));
    let id = first.id();
    tokio::time::timeout(WAIT, async {
        while first.stats().await.expect("stats").nodes == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the hub enters the table");
    let port = first.local_addr();
    first.shutdown().await.expect("shutdown saves");
    assert!(matches!(first.stats().await, Err(DhtNodeError::Stopped)));
    // The socket is closed once shutdown returns: the port can be bound again at once.
    drop(std::net::UdpSocket::bind(port).expect("the port is free after shutdown"));

    // No bootstrap this time: only the saved table.
    let second = node(&[], Some(state_file));
    assert_eq!(second.id(), id, "the saved id is reused");
    let stats = second.stats().await.expect("stats");
    assert!(stats.nodes >= 1, "the saved table is restored: {stats:?}");
    let (_, responded) = collect(second.get_peers([0x22; 20]).await.expect("get_peers")).await;
    assert!(
        responded.is_some_and(|n| n >= 1),
        "the restored node answers: {responded:?}"
    );
}
