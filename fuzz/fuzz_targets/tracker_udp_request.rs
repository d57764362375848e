//! Fuzz target: the UDP tracker request parser (BEP 15) and the server logic behind it never
//! panic, never answer with more bytes than they got, and what parses re-emits to the same
//! fixed-layout bytes.
#![no_main]

use std::net::SocketAddr;

use bitswarm_tracker::access::AccessList;
use bitswarm_tracker::server::{ServerConfig, Tracker};
use bitswarm_tracker::swarm::{SwarmTable, TableConfig};
use bitswarm_tracker::udp::{url_data, Request, ANNOUNCE_LEN};
use libfuzzer_sys::fuzz_target;
use rand::rngs::SmallRng;
use rand::SeedableRng;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = Request::parse(data) {
        let mut again = Vec::new();
        request.emit(&mut again);
        // Connect and announce tolerate bytes after their fixed layout (BEP 41 options, padding);
        // what re-emits is that layout, byte for byte.
        let fixed = match request {
            Request::Announce(_) => &data[..ANNOUNCE_LEN],
            Request::Connect { .. } => &data[..again.len().min(data.len())],
            Request::Scrape(_) => data,
        };
        assert_eq!(again, fixed);
    }
    let _ = url_data(data);
    let mut rng = SmallRng::seed_from_u64(1);
    let table = SwarmTable::new(
        TableConfig { shards: 2, torrents_max: 4, peers_per_torrent_max: 4, peers_max: 8, peer_ttl_s: 60 },
        &mut rng,
    );
    let config = ServerConfig { interval_s: 60, min_interval_s: 30, numwant_default: 10, numwant_max: 20 };
    let tracker = Tracker::new(table, config, &mut rng);
    let src: SocketAddr = "127.0.0.1:9".parse().expect("literal address");
    let mut out = Vec::new();
    tracker.handle_udp(data, src, 0, &AccessList::open(), &mut rng, &mut out);
    assert!(out.len() <= data.len().max(16));
});
