//! Fuzz target: the client's HTTP announce response parser and tracker URL parser never
//! panic, and the announce state machine takes any body (with any status) without losing
//! its next deadline.
#![no_main]

use std::time::Instant;

use bitswarm_tracker::client::http::{parse_announce_response, HttpReply, RESPONSE_PEERS_MAX};
use bitswarm_tracker::client::url::TrackerUrl;
use bitswarm_tracker::client::{AnnounceProgress, Announcer, ClientConfig, Timing};
use bitswarm_tracker::{InfoHash, PeerId};
use libfuzzer_sys::fuzz_target;
use rand::rngs::SmallRng;
use rand::SeedableRng;

fuzz_target!(|data: &[u8]| {
    if let Ok(HttpReply::Announce(a)) = parse_announce_response(data) {
        assert!(a.peers.len() <= RESPONSE_PEERS_MAX);
        assert!(a.peers.iter().all(|p| p.port() != 0));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(url) = TrackerUrl::parse(text) {
            assert!(url.path_and_query().starts_with('/'));
            let _ = url.join(text);
            let _ = url.join("/x?y");
        }
    }

    let config = ClientConfig {
        info_hash: InfoHash::from_bytes([1; 20]),
        peer_id: PeerId([2; 20]),
        port: 6881,
        numwant: Some(10),
        timing: Timing::default(),
    };
    let now = Instant::now();
    let tiers = vec![vec![
        "http://a/announce?k=1".to_owned(),
        "https://b/x".to_owned(),
    ]];
    let mut a = Announcer::new(config, &tiers, now, &mut SmallRng::seed_from_u64(0));
    let status = data
        .first()
        .map_or(200, |&b| if b & 1 == 0 { 200 } else { 400 + u16::from(b) });
    let t = a
        .poll_transmit(now, AnnounceProgress::default())
        .expect("first announce");
    a.handle_http(now, t.request, status, data);
    while a.poll_event().is_some() {}
    assert!(
        a.poll_timeout().is_some() || a.poll_transmit(now, AnnounceProgress::default()).is_some()
    );
});
