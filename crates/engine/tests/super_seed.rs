//! Super-seeding (BEP 16) in a simulated swarm: an initial seeder with little upload and
//! eight leechers with as much upload each. With super-seeding the seeder uploads each piece
//! about once and the leechers spread it among themselves; every leecher still completes
//! with identical bytes. The same swarm without super-seeding is run next to it, and both
//! factors (seeder upload / torrent size) are printed.

// Ratios are printed and compared as floating point.
#![allow(clippy::cast_precision_loss)]

use std::time::Duration;

use bitswarm_engine::TorrentConfig;
use bitswarm_sim::{NodeSpec, SeedGuard, Sim, SimSpec};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const LEECHERS: usize = 8;
const SIZE: u64 = 4 * MIB;

/// The seeder's upload over the torrent's size, and the time the last leecher completed.
fn run(seed: u64, super_seeding: bool) -> (f64, Duration) {
    let config = TorrentConfig {
        super_seeding,
        ..TorrentConfig::default()
    };
    let mut nodes = vec![NodeSpec::seeder().up(256 * KIB).config(config)];
    for i in 0..LEECHERS as u64 {
        nodes.push(
            NodeSpec::leecher()
                .up(256 * KIB)
                .down(2 * MIB)
                .latency(Duration::from_millis(5 + i * 5)),
        );
    }
    let mut spec = SimSpec::new(seed, 64 * KIB as u32, SIZE);
    spec.time_max = Duration::from_secs(600);
    let mut sim = Sim::new(spec, nodes);
    sim.run_to_completion()
        .unwrap_or_else(|e| panic!("seed {seed}, super-seeding {super_seeding}: {e}"));
    let source = sim.source_digest();
    let mut last = Duration::ZERO;
    for i in 1..=LEECHERS {
        assert!(
            sim.node(i).torrent().is_complete(),
            "seed {seed}: leecher {i}"
        );
        assert_eq!(
            sim.store_digest(i),
            Some(source),
            "seed {seed}: leecher {i}"
        );
        last = last.max(sim.node(i).log().completed_at.unwrap_or_default());
    }
    let uploaded: u64 = (1..=LEECHERS).map(|i| sim.uploaded(0, i)).sum();
    (uploaded as f64 / SIZE as f64, last)
}

#[test]
fn a_super_seeder_uploads_each_piece_about_once() {
    for seed in bitswarm_sim::seeds(&[16, 17, 18]) {
        let _guard = SeedGuard::new("super_seeding", seed);
        let (factor, last) = run(seed, true);
        let (plain, plain_last) = run(seed, false);
        eprintln!(
            "seed {seed}: seeder upload {factor:.2}x the torrent with super-seeding \
             (last leecher done at {:.1} s), {plain:.2}x without ({:.1} s)",
            last.as_secs_f64(),
            plain_last.as_secs_f64()
        );
        assert!(
            factor <= 1.25,
            "seed {seed}: super-seeding uploaded {factor:.2}x the torrent"
        );
        assert!(
            factor < plain,
            "seed {seed}: {factor:.2}x with super-seeding, {plain:.2}x without"
        );
    }
}
