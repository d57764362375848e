//! Fuzz target: the client's UDP response parser (BEP 15) never panics whatever it expects,
//! and the announce state machine survives any sequence of datagrams that carry the
//! transaction id it waits on, never losing its next deadline.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bitswarm_tracker::client::udp::{parse_response, Expect};
use bitswarm_tracker::client::{AnnounceProgress, Announcer, ClientConfig, Payload, Timing};
use bitswarm_tracker::udp::{Request, Response, TransactionId};
use bitswarm_tracker::{InfoHash, PeerId};
use libfuzzer_sys::fuzz_target;
use rand::rngs::SmallRng;
use rand::SeedableRng;

fuzz_target!(|data: &[u8]| {
    let tid = TransactionId(
        data.get(4..8)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
    );
    for expect in [Expect::Connect, Expect::Announce, Expect::Scrape] {
        for v6 in [false, true] {
            if let Ok(r) = parse_response(data, tid, expect, v6) {
                let _ = r.scrape_stats().count();
                if let Response::Announce { peers, .. } = r {
                    assert!(peers.iter().count() * if v6 { 18 } else { 6 } <= data.len());
                }
            }
        }
    }

    let config = ClientConfig {
        info_hash: InfoHash::from_bytes([1; 20]),
        peer_id: PeerId([2; 20]),
        port: 6881,
        numwant: None,
        timing: Timing::default(),
    };
    let mut now = Instant::now();
    let tiers = vec![
        vec!["udp://a:1/x".to_owned()],
        vec!["udp://[::1]:2".to_owned()],
    ];
    let mut a = Announcer::new(config, &tiers, now, &mut SmallRng::seed_from_u64(0));
    let from: SocketAddr = "127.0.0.1:1".parse().expect("literal address");
    for chunk in data.split(|&b| b == 0xfe).take(64) {
        let mut packet = chunk.to_vec();
        if let Some(t) = a.poll_transmit(now, AnnounceProgress::default()) {
            let Payload::Udp { packet: sent, .. } = &t.payload else {
                panic!("UDP only")
            };
            let live = match Request::parse(sent).expect("we parse what we send") {
                Request::Connect { transaction_id } => transaction_id,
                Request::Announce(r) => r.transaction_id,
                Request::Scrape(_) => panic!("the announcer does not scrape"),
            };
            if let Some(slot) = packet.get_mut(4..8) {
                slot.copy_from_slice(&live.0.to_be_bytes());
            }
        }
        a.handle_udp(now, from, &packet);
        while a.poll_event().is_some() {}
        let Some(next) = a.poll_timeout() else {
            assert!(a.poll_transmit(now, AnnounceProgress::default()).is_some());
            continue;
        };
        now = now.max(next).min(now + Duration::from_secs(3600));
        a.handle_timeout(now);
    }
});
