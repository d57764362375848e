//! Runs one simulated swarm and prints its figures: for profiling the harness and for quick
//! what-if runs. `cargo run --release -p bitswarm-sim --example swarm -- LEECHERS MIB EVERY`
//! (defaults: 200 leechers, 32 MiB, EVERY 1: every engine checks itself after every step that
//! touches it; N: on one step in N; 0: only at the end). The swarm is the scale test's.

// Figures are printed as floating point.
#![allow(clippy::cast_precision_loss)]

use std::time::{Duration, Instant};

use bitswarm_engine::TorrentConfig;
use bitswarm_sim::{EngineChecks, NodeSpec, Report, Sim, SimSpec, WireCheck};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let leechers: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(200);
    let mib: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(32);
    let every: u32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1);
    let checks = match every {
        0 => EngineChecks::Off,
        1 => EngineChecks::EveryStep,
        every => EngineChecks::Sampled { every },
    };
    let seed = bitswarm_sim::seed_or(200);
    let mut spec = SimSpec::new(seed, 256 * KIB as u32, mib * MIB);
    spec.wire = WireCheck::Control;
    spec.engine_checks = checks;
    spec.steps_max = 500_000_000;
    spec.time_max = Duration::from_secs(3600);
    // PEX off, as in the scale test: with it on a run does not replay from its seed.
    let config = TorrentConfig {
        pex: false,
        ..TorrentConfig::default()
    };
    let mut nodes = vec![NodeSpec::seeder().up(2 * MIB).config(config.clone())];
    for i in 0..leechers {
        nodes.push(
            NodeSpec::leecher()
                .up((i % 4 + 1) * 256 * KIB)
                .down(4 * MIB)
                .latency(Duration::from_millis(5 + (i % 10) * 5))
                .config(config.clone()),
        );
    }
    let mut sim = Sim::new(spec, nodes);
    let started = Instant::now();
    if let Err(e) = sim.run_to_completion() {
        eprintln!("seed {seed}: {e}");
        std::process::exit(1);
    }
    let wall = started.elapsed();
    let report = Report::of(&sim);
    let last = report.last_completion().unwrap_or_default();
    let bound = report.fluid_bound.unwrap_or_default();
    println!(
        "{leechers} leechers, {mib} MiB, engine checks {checks:?}: last completion {:.1} s \
         (T* {:.1} s, ratio {:.2}), {} steps, wall {:.2} s",
        last.as_secs_f64(),
        bound.as_secs_f64(),
        last.as_secs_f64() / bound.as_secs_f64(),
        sim.steps(),
        wall.as_secs_f64()
    );
}
