//! The fluid-model check, in process: one seed and 20 leechers with a spread of upload
//! speeds; the last completion is compared with the lower bound
//! `T* = max(F/u_s, N·F/(u_s + Σu_i), F/d_min)` that no swarm can beat. This is the
//! simulator's twin of the network-namespace benchmark (`bench/`); the ratio is printed, and
//! only a sanity bound (2.0) is asserted.

// Times and ratios are printed and compared as floating point.
#![allow(clippy::cast_precision_loss)]

use std::time::Duration;

use bitswarm_sim::{EngineChecks, FluidModel, NodeSpec, Report, SeedGuard, Sim, SimSpec};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// 16 MiB in 256 KiB pieces; the seed uploads 1 MiB/s; leecher i uploads 64 + 48·i KiB/s
/// (64 KiB/s to 976 KiB/s) and downloads 4 MiB/s; one-way latencies 10–40 ms.
#[test]
fn last_completion_against_the_fluid_bound() {
    for seed in bitswarm_sim::seeds(&[20, 21]) {
        let _guard = SeedGuard::new("last_completion_against_the_fluid_bound", seed);
        let mut spec = SimSpec::new(seed, 256 * KIB as u32, 16 * MIB);
        // A measurement: engines check themselves on one step in ten that touches them (the
        // checks only read, so the figures are the same as with every step).
        spec.engine_checks = EngineChecks::Sampled { every: 10 };
        let mut nodes = vec![NodeSpec::seeder().up(MIB)];
        for i in 0..20u64 {
            nodes.push(
                NodeSpec::leecher()
                    .up((64 + 48 * i) * KIB)
                    .down(4 * MIB)
                    .latency(Duration::from_millis(10 + (i % 4) * 10)),
            );
        }
        let mut sim = Sim::new(spec, nodes);
        sim.run_to_completion()
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let model = FluidModel::of(&sim).expect("every capacity is set");
        let bound = model.bound().expect("the seed's upload is set");
        let report = Report::of(&sim);
        let last = report.last_completion().expect("every leecher completed");
        let ratio = last.as_secs_f64() / bound.as_secs_f64();
        let mut times: Vec<f64> = report
            .nodes
            .iter()
            .filter(|n| !n.seed)
            .filter_map(|n| n.completed_at)
            .map(|d| d.as_secs_f64())
            .collect();
        times.sort_by(f64::total_cmp);
        println!(
            "seed {seed}: T* = {:.1} s (F/u_s {:.1} s, N·F/(u_s+Σu_i) {:.1} s), first completion \
             {:.1} s, last {:.1} s: last / T* = {ratio:.2}; the seed sent {:.2} copies",
            bound.as_secs_f64(),
            model.file_bytes as f64 / model.seed_upload as f64,
            20.0 * model.file_bytes as f64
                / (model.seed_upload + model.leecher_uploads.iter().sum::<u64>()) as f64,
            times.first().copied().unwrap_or(f64::NAN),
            last.as_secs_f64(),
            report.transfers.sent_by(0) as f64 / (16 * MIB) as f64,
        );
        assert!(last >= bound, "seed {seed}: faster than the fluid bound?");
        assert!(ratio <= 2.0, "seed {seed}: last completion {ratio:.2}× T*");
    }
}
