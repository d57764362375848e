//! The UDP hot path without the kernel: `Tracker::handle_udp` over pre-built announces in the
//! load generator's mix (1,000 swarms, 100 peers each, 20 % seeders, 50 peers wanted), so the
//! user-space cost per announce can be measured apart from the sockets' (which dominate a real
//! run; see BENCHMARKS.md). Prints nanoseconds per announce, best of 5 rounds.
//!
//! Run: `cargo bench -p bitswarm-tracker --bench handle_udp`

use std::net::SocketAddr;
use std::time::Instant;

use bitswarm_tracker::access::AccessList;
use bitswarm_tracker::server::{Handled, ServerConfig, Tracker};
use bitswarm_tracker::swarm::{SwarmTable, TableConfig};
use bitswarm_tracker::udp::{AnnounceRequest, Request, Response, TransactionId};
use bitswarm_tracker::{Event, InfoHash, PeerId};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const TORRENTS: usize = 1000;
const PEERS: u16 = 100;
const REQUESTS: u32 = 200_000;

fn main() {
    let mut rng = SmallRng::seed_from_u64(1);
    let config = TableConfig {
        shards: 256,
        torrents_max: 1 << 20,
        peers_per_torrent_max: 1 << 20,
        peers_max: 1 << 24,
        peer_ttl_s: 2100,
    };
    let table = SwarmTable::new(config, &mut rng);
    let server = ServerConfig {
        interval_s: 1800,
        min_interval_s: 60,
        numwant_default: 50,
        numwant_max: 200,
    };
    let tracker = Tracker::new(table, server, &mut rng);
    let src: SocketAddr = "127.0.0.1:40000".parse().expect("literal");
    let access = AccessList::open();
    let mut out = Vec::with_capacity(2048);
    let mut connect = Vec::new();
    Request::Connect {
        transaction_id: TransactionId(1),
    }
    .emit(&mut connect);
    tracker.handle_udp(&connect, src, 0, &access, &mut rng, &mut out);
    let Ok(Response::Connect { connection_id, .. }) = Response::parse(&out, false) else {
        panic!("no connect answer")
    };
    let hashes: Vec<InfoHash> = (0..TORRENTS)
        .map(|_| InfoHash::from_bytes(rng.gen()))
        .collect();
    let packets: Vec<Vec<u8>> = (0..REQUESTS)
        .map(|i| {
            let port = 10_000 + rng.gen_range(0..PEERS);
            let a = AnnounceRequest {
                connection_id,
                transaction_id: TransactionId(i),
                info_hash: hashes[rng.gen_range(0..TORRENTS)],
                peer_id: PeerId([0; 20]),
                downloaded: 0,
                left: if port % 100 < 20 { 0 } else { 1 << 20 },
                uploaded: 0,
                event: Event::None,
                ip: None,
                key: 0,
                num_want: 50,
                port,
            };
            let mut p = Vec::new();
            Request::Announce(a).emit(&mut p);
            p
        })
        .collect();
    let mut best = f64::MAX;
    for round in 0..5 {
        let start = Instant::now();
        let mut peers = 0usize;
        for p in &packets {
            out.clear();
            let h = tracker.handle_udp(p, src, 10, &access, &mut rng, &mut out);
            assert!(matches!(h, Handled::Announce(_)));
            peers += out.len();
        }
        let ns = start.elapsed().as_secs_f64() * 1e9 / f64::from(REQUESTS);
        best = best.min(ns);
        println!("round {round}: {ns:.0} ns per announce ({peers} answer bytes)");
    }
    println!("handle_udp announce: best {best:.0} ns per announce");
}
