//! Scale: two hundred leechers and one seed on a 32 MiB torrent, in one process. Every
//! leecher completes, every node's store is byte-for-byte the torrent (its SHA-1 equals the
//! source's), and the run prints its simulated time, wall time and steps. Wall time is printed,
//! never asserted (`cargo test --release -p bitswarm-sim --test scale -- --nocapture` to see
//! the release figure).

// Times and ratios are printed as floating point.
#![allow(clippy::cast_precision_loss)]

use std::time::{Duration, Instant};

use bitswarm_engine::TorrentConfig;
use bitswarm_sim::{EngineChecks, NodeSpec, Report, SeedGuard, Sim, SimSpec, WireCheck};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const LEECHERS: usize = 200;

/// One seed at 2 MiB/s; leechers upload 256 KiB/s to 1 MiB/s (a quarter each), download
/// 4 MiB/s, with one-way latencies from 5 to 50 ms. Peers come from the harness's tracker
/// (50 at random per announce) and from PEX.
fn swarm() -> Vec<NodeSpec> {
    let config = TorrentConfig::default();
    let mut nodes = vec![NodeSpec::seeder().up(2 * MIB).config(config.clone())];
    for i in 0..LEECHERS as u64 {
        nodes.push(
            NodeSpec::leecher()
                .up((i % 4 + 1) * 256 * KIB)
                .down(4 * MIB)
                .latency(Duration::from_millis(5 + (i % 10) * 5))
                .config(config.clone()),
        );
    }
    nodes
}

#[test]
fn two_hundred_leechers_complete_with_identical_data() {
    let seed = bitswarm_sim::seed_or(200);
    let _guard = SeedGuard::new("two_hundred_leechers", seed);
    let mut spec = SimSpec::new(seed, 256 * KIB as u32, 32 * MIB);
    // Piece payloads travel as shared buffers (every control message still goes through the
    // codec), so 201 stores hold about one copy of the 32 MiB.
    spec.wire = WireCheck::Control;
    // The engines' full self-check is O(pieces × peers) (~80 µs here in a release build):
    // after all ~3.6 million steps it would take minutes, so each engine runs it on one step
    // in 1000 that touches it (about 20 times over the run) and once at the end. The
    // harness's own checks run on every message.
    spec.engine_checks = EngineChecks::Sampled { every: 1000 };
    spec.steps_max = 50_000_000;
    spec.time_max = Duration::from_secs(900);
    let mut sim = Sim::new(spec, swarm());
    let started = Instant::now();
    sim.run_to_completion()
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    let wall = started.elapsed();
    let source = sim.source_digest();
    for i in 0..sim.nodes().len() {
        assert!(sim.node(i).torrent().is_complete(), "seed {seed}: node {i}");
        assert!(sim.store_matches(i), "seed {seed}: node {i}'s bytes differ");
    }
    // 201 × 32 MiB of SHA-1: on two threads.
    let nodes = sim.nodes().len();
    let digests: Vec<Option<[u8; 20]>> = std::thread::scope(|s| {
        let sim = &sim;
        let half = s.spawn(move || {
            (0..nodes / 2)
                .map(|i| sim.store_digest(i))
                .collect::<Vec<_>>()
        });
        let rest: Vec<_> = (nodes / 2..nodes).map(|i| sim.store_digest(i)).collect();
        let mut all = half.join().expect("hashing thread panicked");
        all.extend(rest);
        all
    });
    for (i, digest) in digests.into_iter().enumerate() {
        assert_eq!(
            digest,
            Some(source),
            "seed {seed}: node {i}'s SHA-1 differs"
        );
    }
    let report = Report::of(&sim);
    let last = report.last_completion().unwrap_or_default();
    let bound = report.fluid_bound.unwrap_or_default();
    let from_seed = sim.transfers().sent_by(0);
    println!(
        "seed {seed}: {LEECHERS} leechers + 1 seed, 32 MiB in 256 KiB pieces: last completion at \
         {:.1} s simulated (fluid bound {:.1} s, ratio {:.2}), {} steps, wall time {:.2} s; \
         the seed uploaded {:.1} copies",
        last.as_secs_f64(),
        bound.as_secs_f64(),
        last.as_secs_f64() / bound.as_secs_f64(),
        sim.steps(),
        wall.as_secs_f64(),
        from_seed as f64 / (32 * MIB) as f64,
    );
}
