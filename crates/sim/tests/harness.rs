//! The harness itself: a seed replays step for step, the transfer matrix agrees with the
//! engines' own counters, loss slows a swarm without corrupting it, every wire mode gives the
//! same bytes, nodes leave when told, and the report renders.

use std::time::Duration;

use bitswarm_engine::TorrentConfig;
use bitswarm_sim::{NodeSpec, Report, SeedGuard, Sim, SimSpec, WireCheck};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// One seed and six leechers of mixed capacities.
fn swarm(config: &TorrentConfig) -> Vec<NodeSpec> {
    let mut nodes = vec![NodeSpec::seeder().up(512 * KIB).config(config.clone())];
    for i in 0..6u64 {
        nodes.push(
            NodeSpec::leecher()
                .up((i + 1) * 64 * KIB)
                .down(MIB)
                .latency(Duration::from_millis(5 + i * 7))
                .config(config.clone()),
        );
    }
    nodes
}

fn run(spec: SimSpec, nodes: Vec<NodeSpec>) -> Sim {
    let seed = spec.seed;
    let mut sim = Sim::new(spec, nodes);
    sim.run_to_completion()
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    for i in 0..sim.nodes().len() {
        assert!(sim.store_matches(i), "seed {seed}: node {i}'s bytes differ");
    }
    sim
}

/// Two runs of one seed take the same steps and end the same way; another seed differs.
/// With the default configuration, PEX included (the engine once sent PEX in hash-map order
/// and runs diverged).
#[test]
fn same_seed_same_run() {
    let seed = bitswarm_sim::seed_or(30);
    let _guard = SeedGuard::new("same_seed_same_run", seed);
    let outcome = |seed| {
        let sim = run(
            SimSpec::new(seed, 64 * KIB as u32, 2 * MIB),
            swarm(&TorrentConfig::default()),
        );
        let report = Report::of(&sim);
        (sim.steps(), sim.now(), report.transfers)
    };
    let first = outcome(seed);
    assert_eq!(first, outcome(seed), "seed {seed} did not replay");
    assert_ne!(
        first,
        outcome(seed + 1),
        "seeds {seed} and {} agree",
        seed + 1
    );
}

/// The matrix counts what left each uplink on an open connection. Between one seed and one
/// leecher that is exactly what both engines count; in a swarm a node's row is at most what
/// its engine counts (blocks still queued when a peer hung up count there, not here), and its
/// column at least what its engine accepted (duplicates from endgame count here, not there).
#[test]
fn transfer_matrix_agrees_with_the_engines() {
    let seed = bitswarm_sim::seed_or(31);
    let _guard = SeedGuard::new("transfer_matrix_agrees_with_the_engines", seed);
    let spec = SimSpec::new(seed, 64 * KIB as u32, 2 * MIB + 5000);
    let pair = vec![NodeSpec::seeder().up(MIB), NodeSpec::leecher()];
    let sim = run(spec.clone(), pair);
    let sent = sim.uploaded(0, 1);
    assert_eq!(sent, 2 * MIB + 5000, "seed {seed}");
    assert_eq!(sim.node(0).torrent().stats().uploaded, sent, "seed {seed}");
    assert_eq!(
        sim.node(1).torrent().stats().downloaded,
        sent,
        "seed {seed}"
    );
    let sim = run(spec, swarm(&TorrentConfig::default()));
    for i in 0..sim.nodes().len() {
        let stats = sim.node(i).torrent().stats();
        let (sent, received) = (sim.transfers().sent_by(i), sim.transfers().received_by(i));
        println!(
            "seed {seed}: node {i} sent {sent} (engine {}), received {received} (engine {} + \
             {} wasted)",
            stats.uploaded, stats.downloaded, stats.wasted
        );
        assert!(sent <= stats.uploaded, "seed {seed}: node {i}");
        assert!(received >= stats.downloaded, "seed {seed}: node {i}");
    }
}

/// Loss as TCP sees it: when every message needs a retransmission (200 ms), the first block
/// arrives at least two retransmissions later (the request and the block are both held up)
/// and the bytes are the same; a swarm with one message in ten retransmitted completes with
/// identical bytes too.
#[test]
fn loss_delays_but_does_not_corrupt() {
    let seed = bitswarm_sim::seed_or(32);
    let _guard = SeedGuard::new("loss_delays_but_does_not_corrupt", seed);
    let spec = SimSpec::new(seed, 64 * KIB as u32, MIB);
    let pair = |loss| {
        vec![
            NodeSpec::seeder().up(MIB).loss(loss),
            NodeSpec::leecher().loss(loss),
        ]
    };
    let first_block = |sim: &Sim| sim.node(1).log().first_block_at.unwrap_or_default();
    let clean = run(spec.clone(), pair(0.0));
    let lossy = run(spec.clone(), pair(1.0));
    println!(
        "seed {seed}: first block after {:.3} s without loss, {:.3} s with every message \
         retransmitted",
        first_block(&clean).as_secs_f64(),
        first_block(&lossy).as_secs_f64()
    );
    assert!(first_block(&lossy) >= first_block(&clean) + Duration::from_millis(400));
    let lossy_swarm = swarm(&TorrentConfig::default())
        .into_iter()
        .map(|n| n.loss(0.1))
        .collect();
    let sim = run(SimSpec::new(seed, 64 * KIB as u32, 2 * MIB), lossy_swarm);
    println!(
        "seed {seed}: swarm with 10% retransmissions: last completion {:.2} s",
        Report::of(&sim)
            .last_completion()
            .unwrap_or_default()
            .as_secs_f64()
    );
}

/// Every wire mode delivers the same bytes; the shared-buffer modes hold no copies.
#[test]
fn wire_modes_agree() {
    let seed = bitswarm_sim::seed_or(33);
    let _guard = SeedGuard::new("wire_modes_agree", seed);
    for wire in [WireCheck::All, WireCheck::Control, WireCheck::Off] {
        let mut spec = SimSpec::new(seed, 64 * KIB as u32, MIB + 777);
        spec.wire = wire;
        let sim = run(spec, swarm(&TorrentConfig::default()));
        for i in 0..sim.nodes().len() {
            assert_eq!(
                sim.store_digest(i),
                Some(sim.source_digest()),
                "seed {seed}, {wire:?}: node {i}"
            );
        }
    }
}

/// A leecher told to seed for 5 s leaves 5 s after completing; one told to leave at 1 s does,
/// incomplete; the rest still complete, and the report shows it.
#[test]
fn nodes_leave_when_told() {
    let seed = bitswarm_sim::seed_or(34);
    let _guard = SeedGuard::new("nodes_leave_when_told", seed);
    let mut nodes = swarm(&TorrentConfig::default());
    nodes[1] = nodes[1].clone().seed_for(Duration::from_secs(5));
    nodes[2] = nodes[2].clone().leave_at(Duration::from_secs(1));
    let mut sim = Sim::new(SimSpec::new(seed, 64 * KIB as u32, 2 * MIB), nodes);
    sim.run_until(|sim| sim.node(1).has_left() && sim.node(3).torrent().is_complete())
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    let log = sim.node(1).log();
    let (done, left) = (log.completed_at.unwrap_or_default(), log.left_at);
    assert_eq!(left, Some(done + Duration::from_secs(5)), "seed {seed}");
    assert!(sim.node(2).has_left() && !sim.node(2).torrent().is_complete());
    let report = Report::of(&sim);
    assert_eq!(report.nodes[2].left_at, Some(Duration::from_secs(1)));
    let table = report.to_string();
    assert!(table.contains("KiB sent (row) to (column)"), "{table}");
    println!("{table}");
}
