//! Where a swarm's upload capacity goes, window by window: the measurement behind issue 7
//! (last completion against the fluid bound T*). Runs the fluid test's swarm or one shaped
//! like the netns bench and prints, per window, the leechers' upload as a share of `Σu_i`,
//! the seed's uplink use, and the leechers' unused capacity split by why it was unused.
//!
//! `cargo run --release -p bitswarm-sim --example swarm_eff -- SHAPE [MIB] [WINDOW_S] [SEEDS]`
//! SHAPE: `fluid` (16 MiB, the fluid test's swarm) or `netns` (`bench/swarm.sh` defaults:
//! 64 MiB, seed 10 000 kbit/s, leechers 2 000–8 000 kbit/s up, 4× down); SEEDS a comma list
//! (default 20..=25). Environment: `QUIET=1` prints only a summary line per seed, `DETAIL=1`
//! adds a table per leecher (pieces held and uplink use per window), `DUMP_AT=S` prints at
//! S seconds what the `starved` leechers' unchoked peers see of them; `IN_FLIGHT=N` and
//! `SLOTS=N`, `REQ_MIN=N`, `REQ_TIME_MS=N`, `RANDOM_FIRST=N` and `OPT_QUOTA=N` override
//! `upload_in_flight_max`, `unchoke_slots`, `request_queue_min`, `request_queue_time`,
//! `random_first_pieces` and `optimistic_quota_pieces` for what-if runs.
//!
//! Unused capacity (capacity minus bytes sent, per 250 ms tick, so a block finishing in the
//! next tick makes up for it) is attributed to the leecher's state at the start
//! of the tick: `empty` (no verified piece), `unwanted` (no connected peer is interested in
//! it), `choking` (interested peers, all choked by it), `starved` (it unchokes interested
//! peers, none of which has a request out to it: what it has, they are fetching elsewhere)
//! and `inflight` (requests are out to it but not here yet, or its receivers are the limit).

// Figures are printed as floating point.
#![allow(clippy::cast_precision_loss)]

use std::fmt::Write as _;
use std::time::Duration;

use bitswarm_engine::TorrentConfig;
use bitswarm_sim::{EngineChecks, FluidModel, NodeSpec, Report, Sim, SimSpec, WireCheck};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const TICK: Duration = Duration::from_millis(250);
const REASONS: [&str; 5] = ["empty", "unwanted", "choking", "starved", "inflight"];

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

fn env_num<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// The engine configuration, with the environment's overrides.
fn config() -> TorrentConfig {
    let mut c = TorrentConfig::default();
    if let Some(v) = env_num("IN_FLIGHT") {
        c.upload_in_flight_max = v;
    }
    if let Some(v) = env_num("SLOTS") {
        c.unchoke_slots = v;
    }
    if let Some(v) = env_num("REQ_MIN") {
        c.request_queue_min = v;
    }
    if let Some(v) = env_num::<u64>("REQ_TIME_MS") {
        c.request_queue_time = Duration::from_millis(v);
    }
    if let Some(v) = env_num("RANDOM_FIRST") {
        c.random_first_pieces = v;
    }
    if let Some(v) = env_num("OPT_QUOTA") {
        c.optimistic_quota_pieces = v;
    }
    c
}

/// The fluid test's swarm: seed 1 MiB/s; leecher i uploads 64 + 48·i KiB/s, downloads 4 MiB/s.
fn fluid_nodes() -> Vec<NodeSpec> {
    let mut nodes = vec![NodeSpec::seeder().up(MIB)];
    for i in 0..20u64 {
        nodes.push(
            NodeSpec::leecher()
                .up((64 + 48 * i) * KIB)
                .down(4 * MIB)
                .latency(Duration::from_millis(10 + (i % 4) * 10)),
        );
    }
    nodes
}

/// `bench/swarm.sh 20` with its defaults (its hosts share a bridge: 1 ms latency).
fn netns_nodes() -> Vec<NodeSpec> {
    let kbit = |k: u64| k * 1000 / 8;
    let mut nodes = vec![NodeSpec::seeder().up(kbit(10_000)).down(kbit(40_000))];
    let n = 20u64;
    for i in 0..n {
        let up = 2000 + ((8000 - 2000) * i + (n - 1) / 2) / (n - 1);
        nodes.push(
            NodeSpec::leecher()
                .up(kbit(up))
                .down(kbit(4 * up))
                .latency(Duration::from_millis(1)),
        );
    }
    nodes
}

/// Why leecher `i` is not using its uplink now (an index into `REASONS`).
fn reason(sim: &Sim, i: usize) -> usize {
    let node = sim.node(i);
    if node.verified().count_ones() == 0 {
        return 0;
    }
    let interested: Vec<_> = node
        .torrent()
        .peer_stats()
        .map(|(_, s)| s)
        .filter(|s| s.peer_interested)
        .collect();
    if interested.is_empty() {
        return 1;
    }
    if interested.iter().all(|s| s.am_choking) {
        return 2;
    }
    let ip = node.addr().ip();
    let asked = interested.iter().filter(|s| !s.am_choking).any(|s| {
        sim.nodes()
            .iter()
            .find(|r| r.addr().ip() == s.addr.ip())
            .and_then(|r| r.torrent().peer_stats().find(|(_, v)| v.addr.ip() == ip))
            .is_some_and(|(_, v)| v.requests_in_flight > 0)
    });
    if asked {
        4
    } else {
        3
    }
}

/// For every `starved` leecher: its unchoked interested peers, as they see it.
fn dump(sim: &Sim) {
    let n = sim.nodes().len();
    let which = env_num::<usize>("DUMP_REASON").unwrap_or(3);
    for j in (1..n).filter(|&j| reason(sim, j) == which) {
        let node = sim.node(j);
        println!(
            "J {j} (up {} KiB/s) holds {} pieces",
            node.spec().up_bw / KIB,
            node.verified().count_ones()
        );
        let unchoked = node
            .torrent()
            .peer_stats()
            .filter(|(_, s)| s.peer_interested && !s.am_choking);
        for (_, s) in unchoked {
            let Some(r) = (0..n).find(|&r| sim.node(r).addr().ip() == s.addr.ip()) else {
                continue;
            };
            let rn = sim.node(r);
            let lacks = (0..sim.geometry().piece_count())
                .filter(|&p| node.verified().has(p) && !rn.verified().has(p))
                .count();
            let st = rn.torrent().stats();
            let view = rn
                .torrent()
                .peer_stats()
                .find(|(_, v)| v.addr.ip() == node.addr().ip())
                .map(|(_, v)| (v.am_interested, v.peer_choking, v.requests_in_flight));
            println!(
                "   R {r}: lacks {lacks} of J's; R missing {}, endgame {}; R's view of J \
                 (interested, choked, requests): {view:?}",
                st.pieces_missing, st.endgame
            );
        }
    }
}

/// The figures of one run, gathered tick by tick.
struct Meter {
    caps: Vec<u64>,
    file: f64,
    window: Duration,
    quiet: bool,
    detail: bool,
    start: Duration,
    prev: bitswarm_sim::TransferMatrix,
    sent: Vec<u64>,
    lost: [f64; 5],
    totals: [f64; 5],
    total_cap: f64,
    progress: Vec<String>,
}

impl Meter {
    fn new(sim: &Sim, window: Duration, quiet: bool) -> Self {
        let n = sim.nodes().len();
        Self {
            caps: sim.nodes().iter().map(|n| n.spec().up_bw).collect(),
            file: sim.geometry().total_length as f64,
            window,
            quiet,
            detail: env_flag("DETAIL"),
            start: Duration::ZERO,
            prev: sim.transfers().clone(),
            sent: vec![0; n],
            lost: [0.0; 5],
            totals: [0.0; 5],
            total_cap: 0.0,
            progress: vec![String::new(); n],
        }
    }

    /// After a tick: bytes sent, and capacity unused by the reasons sampled before it.
    fn tick(&mut self, sim: &Sim, reasons: &[usize]) {
        let d = sim.transfers().since(&self.prev);
        self.prev = sim.transfers().clone();
        for (j, &r) in reasons.iter().enumerate() {
            let sent = d.sent_by(j);
            self.sent[j] += sent;
            if j > 0 {
                let cap = self.caps[j] as f64 * TICK.as_secs_f64();
                // Not clipped at 0: a block sent in the next tick makes up for this one.
                self.lost[r] += cap - sent as f64;
            }
        }
    }

    fn window_due(&self, sim: &Sim) -> bool {
        sim.now().saturating_sub(self.start) >= self.window
    }

    /// Prints the window that ends now and starts the next.
    fn close_window(&mut self, sim: &Sim) {
        let secs = sim.now().saturating_sub(self.start).as_secs_f64();
        let n = self.caps.len();
        let cap = self.caps.iter().skip(1).sum::<u64>() as f64 * secs;
        let leech: u64 = self.sent.iter().skip(1).sum();
        for k in 0..5 {
            self.totals[k] += self.lost[k];
        }
        self.total_cap += cap;
        let done = (1..n)
            .filter(|&j| sim.node(j).torrent().is_complete())
            .count();
        let empty = (1..n)
            .filter(|&j| sim.node(j).verified().count_ones() == 0)
            .count();
        if !self.quiet {
            let mut line = format!(
                "{:6.1} {:5.2} {:5.2} {:5.2} {done:3} {empty:3} ",
                sim.now().as_secs_f64(),
                leech as f64 / cap,
                self.sent[0] as f64 / (self.caps[0] as f64 * secs),
                sim.transfers().sent_by(0) as f64 / self.file,
            );
            for l in self.lost {
                let _ = write!(line, " {:5.2}", l / cap);
            }
            println!("{line}");
        }
        if self.detail {
            let pieces = f64::from(sim.geometry().piece_count());
            for j in 1..n {
                let have = f64::from(sim.node(j).verified().count_ones()) / pieces;
                let up = self.sent[j] as f64 / (self.caps[j] as f64 * secs);
                let _ = write!(self.progress[j], " {:3.0}/{:3.0}", have * 100.0, up * 100.0);
            }
        }
        self.sent.iter_mut().for_each(|s| *s = 0);
        self.lost = [0.0; 5];
        self.start = sim.now();
    }

    fn print_detail(&self, sim: &Sim) {
        if !self.detail {
            return;
        }
        println!(
            "per leecher: up KiB/s, completed at; per window: % of pieces held / % uplink used"
        );
        for j in 1..self.caps.len() {
            let at = sim
                .node(j)
                .log()
                .completed_at
                .map_or(f64::NAN, |d| d.as_secs_f64());
            println!("{:5} {at:6.1} {}", self.caps[j] / KIB, self.progress[j]);
        }
    }

    fn unused_summary(&self) -> String {
        REASONS
            .iter()
            .zip(self.totals)
            .map(|(r, l)| format!("{r} {:.3}", l / self.total_cap))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn build(shape: &str, mib: u64, seed: u64) -> Sim {
    let mut spec = SimSpec::new(seed, 256 * KIB as u32, mib * MIB);
    spec.wire = WireCheck::Control;
    spec.engine_checks = EngineChecks::Sampled { every: 10 };
    spec.steps_max = 200_000_000;
    spec.time_max = Duration::from_secs(3600);
    let nodes = if shape == "netns" {
        netns_nodes()
    } else {
        fluid_nodes()
    };
    let nodes = nodes.into_iter().map(|n| n.config(config())).collect();
    Sim::new(spec, nodes)
}

/// One run; returns last completion / T*.
fn run(shape: &str, mib: u64, window: Duration, seed: u64, quiet: bool) -> f64 {
    let mut sim = build(shape, mib, seed);
    let n = sim.nodes().len();
    let bound = FluidModel::of(&sim)
        .and_then(|m| m.bound())
        .expect("capacities are set")
        .as_secs_f64();
    if !quiet {
        println!(
            "seed {seed} {shape} {mib} MiB: T* {bound:.1} s; per {} s window: leech up/Σu_i, \
             seed up/u_s, seed copies (cum), done, empty; unused Σu_i share by {REASONS:?}",
            window.as_secs_f64()
        );
    }
    let mut meter = Meter::new(&sim, window, quiet);
    let done = |sim: &Sim| (1..n).all(|j| sim.node(j).torrent().is_complete());
    let mut dump_at: Option<f64> = env_num("DUMP_AT");
    while !done(&sim) {
        if dump_at.is_some_and(|t| sim.now().as_secs_f64() >= t) {
            dump_at = None;
            dump(&sim);
        }
        let reasons: Vec<usize> = (0..n).map(|j| reason(&sim, j)).collect();
        let to = sim.now() + TICK;
        sim.run_to(to)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        meter.tick(&sim, &reasons);
        if meter.window_due(&sim) || done(&sim) {
            meter.close_window(&sim);
        }
    }
    meter.print_detail(&sim);
    let report = Report::of(&sim);
    let last = report.last_completion().expect("all done").as_secs_f64();
    let mut times: Vec<f64> = report
        .nodes
        .iter()
        .filter(|n| !n.seed)
        .filter_map(|n| n.completed_at)
        .map(|d| d.as_secs_f64())
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "seed {seed} {shape}: T* {bound:.1} s, first {:.1} s, median {:.1} s, last {last:.1} s, \
         ratio {:.3}; seed copies {:.2}; unused Σu_i {}",
        times.first().copied().unwrap_or(f64::NAN),
        times.get(times.len() / 2).copied().unwrap_or(f64::NAN),
        last / bound,
        sim.transfers().sent_by(0) as f64 / meter.file,
        meter.unused_summary()
    );
    last / bound
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let shape = args.first().map_or("fluid", String::as_str).to_owned();
    let netns = shape == "netns";
    let mib: u64 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(if netns { 64 } else { 16 });
    let window = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(if netns { 5.0 } else { 2.0 });
    let seeds: Vec<u64> = args.get(3).map_or_else(
        || (20..=25).collect(),
        |s| s.split(',').filter_map(|x| x.parse().ok()).collect(),
    );
    let quiet = env_flag("QUIET");
    let ratios: Vec<f64> = seeds
        .iter()
        .map(|&s| run(&shape, mib, Duration::from_secs_f64(window), s, quiet))
        .collect();
    let mean = ratios.iter().sum::<f64>() / ratios.len().max(1) as f64;
    let max = ratios.iter().copied().fold(0.0, f64::max);
    let list: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
    println!(
        "{shape}: ratios {} mean {mean:.3} max {max:.3}",
        list.join(" ")
    );
}
