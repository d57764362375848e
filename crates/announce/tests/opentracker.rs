//! Against a real tracker: opentracker (Debian package) on 127.0.0.1, over HTTP and UDP.
//! Two announcers of one swarm learn each other's address; `stopped` takes a peer out of the
//! swarm; dead trackers fall back to the next tier; opentracker's refusals reach the user.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bitswarm_announce::{AnnounceError, AnnounceEvent};
use bitswarm_tracker::TrackerError;
use support::{
    closed_tcp_port, closed_udp_port, config, has_peer, spawn, wait_for, Opentracker, TEST_TIMEOUT,
};

const HASH: [u8; 20] = *b"bitswarm-announce-01";
const UNLISTED: [u8; 20] = *b"not-on-the-whitelist";

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Two announcers on one tracker URL find each other, then one stops and the other stops
/// hearing of it.
async fn two_peers_meet_then_one_leaves(url: String, hash: [u8; 20]) {
    let (a, mut a_rx) = spawn(config(vec![vec![url.clone()]], hash, b'a', 40001));
    let (b, mut b_rx) = spawn(config(vec![vec![url.clone()]], hash, b'b', 40002));
    let (mut a_seen, mut b_seen) = (Vec::new(), Vec::new());
    let a_found_b = wait_for(&mut a_rx, &mut a_seen, TEST_TIMEOUT, |e| {
        has_peer(e, local(40002))
    });
    let b_found_a = wait_for(&mut b_rx, &mut b_seen, TEST_TIMEOUT, |e| {
        has_peer(e, local(40001))
    });
    let (a_found_b, b_found_a) = tokio::join!(a_found_b, b_found_a);
    assert!(a_found_b, "a never learned b from {url}: {a_seen:?}");
    assert!(b_found_a, "b never learned a from {url}: {b_seen:?}");
    let stats = a.stats();
    assert_eq!(stats.len(), 1);
    assert!(
        stats[0].last_announce.is_some() && stats[0].last_error.is_none(),
        "{stats:?}"
    );
    assert!(
        stats[0].seeders.is_some() && stats[0].leechers >= Some(1),
        "{stats:?}"
    );

    a.stop().await;
    // b re-announces every second (intervals are clamped to 1 s in these tests); the tracker
    // must stop listing a once it has a's `stopped`.
    let mut gone = false;
    let mut later = Vec::new();
    for _ in 0..10 {
        let got = wait_for(&mut b_rx, &mut later, Duration::from_secs(3), |e| {
            matches!(e, AnnounceEvent::Peers(_))
        })
        .await;
        if got && !later.iter().rev().any(|e| has_peer(e, local(40001))) {
            gone = true;
            break;
        }
        later.clear();
    }
    assert!(gone, "a is still listed after stopping: {later:?}");
    b.stop().await;
}

#[tokio::test]
async fn http_announcers_learn_each_other_and_stopped_leaves() {
    let ot = Opentracker::start(&[HASH]);
    two_peers_meet_then_one_leaves(ot.http_url(), HASH).await;
}

#[tokio::test]
async fn udp_announcers_learn_each_other_and_stopped_leaves() {
    let ot = Opentracker::start(&[HASH]);
    two_peers_meet_then_one_leaves(ot.udp_url(), HASH).await;
}

#[tokio::test]
async fn dead_trackers_fall_back_to_the_next_tier() {
    let ot = Opentracker::start(&[HASH]);
    let dead_http = format!("http://127.0.0.1:{}/announce", closed_tcp_port());
    let dead_udp = format!("udp://127.0.0.1:{}/announce", closed_udp_port());
    let tiers = vec![
        vec![dead_http.clone(), dead_udp.clone()],
        vec![ot.udp_url()],
    ];
    let (handle, mut rx) = spawn(config(tiers, HASH, b'c', 40003));
    let mut seen = Vec::new();
    let found = wait_for(&mut rx, &mut seen, TEST_TIMEOUT, |e| {
        has_peer(e, local(40003))
    })
    .await;
    assert!(found, "no peers through the second tier: {seen:?}");
    let http_refused = seen.iter().any(|e| {
        matches!(e, AnnounceEvent::Error { tracker, error: AnnounceError::Connect(_) }
            if *tracker == dead_http)
    });
    let udp_timed_out = seen.iter().any(|e| {
        matches!(e, AnnounceEvent::Error { tracker, error: AnnounceError::Timeout }
            if *tracker == dead_udp)
    });
    assert!(http_refused && udp_timed_out, "{seen:?}");
    let stats = handle.stats();
    let of = |url: &str| stats.iter().find(|s| s.url == url).unwrap().clone();
    assert!(of(&dead_http).last_error.is_some() && of(&dead_http).last_announce.is_none());
    assert!(of(&dead_udp).last_error.is_some() && of(&dead_udp).failures >= 1);
    let live = of(&ot.udp_url());
    assert_eq!(live.tier, 1);
    assert!(
        live.last_announce.is_some() && live.last_error.is_none(),
        "{stats:?}"
    );
    handle.stop().await;
}

#[tokio::test]
async fn opentracker_http_refusal_is_a_failure_reason() {
    let ot = Opentracker::start(&[HASH]);
    let url = ot.http_url();
    let (handle, mut rx) = spawn(config(vec![vec![url.clone()]], UNLISTED, b'd', 40004));
    let mut seen = Vec::new();
    let refused = wait_for(&mut rx, &mut seen, TEST_TIMEOUT, |e| {
        matches!(e, AnnounceEvent::Failure { .. })
    })
    .await;
    assert!(refused, "{seen:?}");
    let Some(AnnounceEvent::Failure { tracker, reason }) = seen.last() else {
        unreachable!()
    };
    assert_eq!(tracker, &url);
    assert!(reason.contains("not authorized"), "{reason}");
    assert_eq!(
        handle.stats()[0].last_error.as_deref(),
        Some(reason.as_str())
    );
    handle.stop().await;
}

/// opentracker refuses an unlisted info-hash over UDP with a bare 8-byte announce header
/// (no BEP 15 error message): it must surface as a malformed answer, not hang or panic.
#[tokio::test]
async fn opentracker_udp_refusal_is_a_short_answer() {
    let ot = Opentracker::start(&[HASH]);
    let url = ot.udp_url();
    let (handle, mut rx) = spawn(config(vec![vec![url.clone()]], UNLISTED, b'e', 40005));
    let mut seen = Vec::new();
    let refused = wait_for(&mut rx, &mut seen, TEST_TIMEOUT, |e| {
        matches!(e, AnnounceEvent::Error { .. })
    })
    .await;
    assert!(refused, "{seen:?}");
    let Some(AnnounceEvent::Error { tracker, error }) = seen.last() else {
        unreachable!()
    };
    assert_eq!(tracker, &url);
    assert!(
        matches!(
            error,
            AnnounceError::Tracker(TrackerError::PacketTooShort { len: 8, need: 20 })
        ),
        "{error:?}"
    );
    handle.stop().await;
}
