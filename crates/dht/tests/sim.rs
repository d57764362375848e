//! Deterministic simulation of a whole DHT: thousands of `Dht` nodes in one process under a
//! virtual clock, lognormal link RTTs, 5% loss each way, churn, announces and lookups. Prints
//! the lookup latencies and success rate; replay a run with `BITSWARM_DHT_SIM_SEED=<seed>`.

// Statistics over counts and times far below 2^52, and RTTs drawn as positive floats.
#![allow(clippy::cast_precision_loss, clippy::cast_sign_loss)]

#[path = "sim/net.rs"]
mod net;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bitswarm_dht::{Dht, DhtConfig, DhtEvent, LookupId};
use net::{link_rtt, mix, quantile, Event, Queue, LOSS};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The shape of one run.
#[derive(Debug, Clone)]
struct Params {
    nodes: usize,
    routers: usize,
    /// Nodes join uniformly over this window, then churn starts.
    join_window: Duration,
    info_hashes: usize,
    lookups: usize,
    /// Fraction of nodes that leave (and as many new ones that join) after the join window.
    churn: f64,
}

/// UDP port every node listens on; announced peers use [`PEER_PORT`].
const DHT_PORT: u16 = 6881;
const PEER_PORT: u16 = 51413;
/// Give up after this many events (a livelock fails instead of hanging).
const EVENTS_MAX: u64 = 50_000_000;
/// Virtual time limit of a run.
const SIM_TIME_MAX: Duration = Duration::from_secs(3600);

enum Action {
    Join,
    Leave,
    Announce([u8; 20]),
    Lookup([u8; 20]),
}

struct Node {
    dht: Dht,
    addr: SocketAddr,
    alive: bool,
    timer: Option<Duration>,
}

#[derive(Debug, Default)]
struct Record {
    start: Duration,
    expected: Option<SocketAddr>,
    first_peer: Option<Duration>,
    done: Option<Duration>,
}

struct World {
    seed: u64,
    rng: SmallRng,
    base: Instant,
    now: Duration,
    queue: Queue,
    nodes: Vec<Node>,
    by_addr: HashMap<SocketAddr, usize>,
    routers: Vec<SocketAddr>,
    actions: Vec<Action>,
    announced: HashMap<[u8; 20], SocketAddr>,
    lookups: HashMap<(usize, LookupId), Record>,
    announces_done: Vec<usize>,
    /// Recorded lookups not yet done.
    pending: usize,
    /// Lookups lost because their node left before they finished.
    abandoned: usize,
    delivered: u64,
    lost: u64,
    /// Datagrams sent, by kind (query method, or "response"/"error").
    kinds: Option<HashMap<&'static str, u64>>,
}

impl World {
    fn new(seed: u64) -> Self {
        Self {
            seed,
            rng: SmallRng::seed_from_u64(seed),
            base: Instant::now(),
            now: Duration::ZERO,
            queue: Queue::default(),
            nodes: Vec::new(),
            by_addr: HashMap::new(),
            routers: Vec::new(),
            actions: Vec::new(),
            announced: HashMap::new(),
            lookups: HashMap::new(),
            announces_done: Vec::new(),
            pending: 0,
            abandoned: 0,
            delivered: 0,
            lost: 0,
            kinds: std::env::var_os("BITSWARM_DHT_SIM_KINDS").map(|_| HashMap::new()),
        }
    }

    fn at(&self) -> Instant {
        self.base + self.now
    }

    /// A node on a global address (20.0.0.0/8), with a BEP 42 id for it.
    fn spawn(&mut self) -> usize {
        let i = self.nodes.len();
        let ip = Ipv4Addr::from(0x1400_0000 + u32::try_from(i).unwrap() * 3 + 1);
        let addr = SocketAddr::new(IpAddr::V4(ip), DHT_PORT);
        let mut config = DhtConfig {
            external_ip: Some(addr.ip()),
            ..DhtConfig::default()
        };
        // Tuning knobs for experiments; the defaults are what the crate ships.
        if let Some(ms) = env_u64("BITSWARM_DHT_SIM_SLOW_MS") {
            config.slow_after = Duration::from_millis(ms);
        }
        if let Some(ms) = env_u64("BITSWARM_DHT_SIM_TIMEOUT_MS") {
            config.request_timeout = Duration::from_millis(ms);
        }
        let dht = Dht::new(config, mix(self.seed ^ i as u64));
        self.nodes.push(Node {
            dht,
            addr,
            alive: true,
            timer: None,
        });
        self.by_addr.insert(addr, i);
        i
    }

    fn schedule(&mut self, at: Duration, action: Action) {
        self.actions.push(action);
        self.queue.push(at, Event::Action(self.actions.len() - 1));
    }

    /// Moves node `i`'s datagrams onto the network and its events into the records, and
    /// re-arms its timer.
    fn flush(&mut self, i: usize) {
        while let Some(t) = self.nodes[i].dht.poll_transmit() {
            let Some(&to) = self.by_addr.get(&t.to) else {
                continue;
            };
            if let Some(kinds) = &mut self.kinds {
                *kinds.entry(kind_of(&t.payload)).or_default() += 1;
            }
            if self.rng.gen_bool(LOSS) {
                self.lost += 1;
                continue;
            }
            let one_way = link_rtt(self.seed, i, to) / 2;
            let event = Event::Deliver {
                to,
                from: i,
                payload: t.payload,
            };
            self.queue.push(self.now + one_way, event);
        }
        while let Some(e) = self.nodes[i].dht.poll_event() {
            self.record(i, e);
        }
        if let Some(t) = self.nodes[i].dht.poll_timeout() {
            let at = t
                .saturating_duration_since(self.base)
                .max(self.now + Duration::from_millis(1));
            if self.nodes[i].timer.is_none_or(|old| at < old) {
                self.nodes[i].timer = Some(at);
                self.queue.push(at, Event::Timer { node: i, at });
            }
        }
    }

    fn record(&mut self, i: usize, event: DhtEvent) {
        match event {
            DhtEvent::Peers { lookup, peers, .. } => {
                if let Some(r) = self.lookups.get_mut(&(i, lookup)) {
                    if r.first_peer.is_none() && r.expected.is_some_and(|p| peers.contains(&p)) {
                        r.first_peer = Some(self.now.saturating_sub(r.start));
                    }
                }
            }
            DhtEvent::LookupDone {
                lookup,
                announced_to,
                ..
            } => {
                if let Some(r) = self.lookups.get_mut(&(i, lookup)) {
                    r.done = Some(self.now.saturating_sub(r.start));
                    self.pending -= 1;
                } else {
                    self.announces_done.push(announced_to);
                }
            }
            DhtEvent::ExternalIp(_) => {}
        }
    }

    fn random_live_node(&mut self) -> usize {
        let routers = self.routers.len();
        loop {
            let i = self.rng.gen_range(routers..self.nodes.len());
            if self.nodes[i].alive {
                return i;
            }
        }
    }

    fn act(&mut self, action: usize) {
        let now = self.at();
        match std::mem::replace(&mut self.actions[action], Action::Join) {
            Action::Join => {
                let i = self.spawn();
                let routers = self.routers.clone();
                self.nodes[i].dht.bootstrap(now, &routers);
                self.flush(i);
            }
            Action::Leave => {
                let i = self.random_live_node();
                self.nodes[i].alive = false;
                let before = self.lookups.len();
                self.lookups.retain(|(n, _), r| *n != i || r.done.is_some());
                self.abandoned += before - self.lookups.len();
                self.pending -= before - self.lookups.len();
            }
            Action::Announce(ih) => {
                let i = self.random_live_node();
                let _ = self.nodes[i].dht.announce(now, ih, Some(PEER_PORT));
                self.announced
                    .insert(ih, SocketAddr::new(self.nodes[i].addr.ip(), PEER_PORT));
                self.flush(i);
            }
            Action::Lookup(ih) => {
                let i = self.random_live_node();
                let id = self.nodes[i].dht.get_peers(now, ih);
                let record = Record {
                    start: self.now,
                    expected: self.announced.get(&ih).copied(),
                    ..Record::default()
                };
                self.lookups.insert((i, id), record);
                self.pending += 1;
                self.flush(i);
            }
        }
    }

    fn step(&mut self, event: Event) {
        match event {
            Event::Deliver { to, from, payload } => {
                if !self.nodes[to].alive {
                    self.lost += 1;
                    return;
                }
                self.delivered += 1;
                let now = self.at();
                let from = self.nodes[from].addr;
                self.nodes[to].dht.handle_datagram(now, from, &payload);
                self.flush(to);
            }
            Event::Timer { node, at } => {
                if !self.nodes[node].alive || self.nodes[node].timer != Some(at) {
                    return;
                }
                self.nodes[node].timer = None;
                let now = self.at();
                self.nodes[node].dht.handle_timeout(now);
                self.flush(node);
            }
            Event::Action(a) => self.act(a),
        }
    }
}

/// Builds the scenario's script: routers, joins, churn, announces, lookups.
fn script(w: &mut World, p: &Params) -> Duration {
    for _ in 0..p.routers {
        let i = w.spawn();
        w.routers.push(w.nodes[i].addr);
    }
    for i in 0..p.routers {
        let now = w.at();
        let routers = w.routers.clone();
        w.nodes[i].dht.bootstrap(now, &routers);
        w.flush(i);
    }
    let join = p.join_window.as_secs_f64();
    for _ in 0..p.nodes {
        let at = w.rng.gen_range(0.0..join);
        w.schedule(Duration::from_secs_f64(at), Action::Join);
    }
    // Churn over the rest of the run: leaves and joins interleaved.
    let churn = (p.nodes as f64 * p.churn) as usize;
    let (churn_start, churn_end) = (join, join + 300.0);
    for _ in 0..churn {
        let at = w.rng.gen_range(churn_start..churn_end);
        w.schedule(Duration::from_secs_f64(at), Action::Leave);
        let at = w.rng.gen_range(churn_start..churn_end);
        w.schedule(Duration::from_secs_f64(at), Action::Join);
    }
    let mut hashes = Vec::new();
    for _ in 0..p.info_hashes {
        let ih: [u8; 20] = w.rng.gen();
        hashes.push(ih);
        let at = w.rng.gen_range(join + 30.0..join + 60.0);
        w.schedule(Duration::from_secs_f64(at), Action::Announce(ih));
    }
    let lookups_start = join + 100.0;
    let lookups_end = churn_end - 20.0;
    for _ in 0..p.lookups {
        let ih = hashes[w.rng.gen_range(0..hashes.len())];
        let at = w.rng.gen_range(lookups_start..lookups_end);
        w.schedule(Duration::from_secs_f64(at), Action::Lookup(ih));
    }
    Duration::from_secs_f64(lookups_end)
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

/// What kind of KRPC message a datagram is, for the per-kind counts.
fn kind_of(payload: &[u8]) -> &'static str {
    use bitswarm_dht::krpc::{Body, Message, Query};
    match Message::parse(payload).map(|m| m.body) {
        Ok(Body::Query {
            query: Query::Ping, ..
        }) => "ping",
        Ok(Body::Query {
            query: Query::FindNode { .. },
            ..
        }) => "find_node",
        Ok(Body::Query {
            query: Query::GetPeers { .. },
            ..
        }) => "get_peers",
        Ok(Body::Query {
            query: Query::AnnouncePeer { .. },
            ..
        }) => "announce_peer",
        Ok(Body::Response(_)) => "response",
        Ok(Body::Error { .. }) => "error",
        Err(_) => "malformed",
    }
}

struct Outcome {
    success: f64,
    first_peer: Vec<Duration>,
    done: Vec<Duration>,
}

fn run(p: &Params) -> Outcome {
    let seed = std::env::var("BITSWARM_DHT_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x05EE_DD47);
    let wall = Instant::now();
    let mut w = World::new(seed);
    let last_lookup = script(&mut w, p);
    let mut events = 0u64;
    while let Some((at, event)) = w.queue.pop() {
        events += 1;
        assert!(events < EVENTS_MAX, "livelock? seed {seed}");
        assert!(
            at < SIM_TIME_MAX,
            "run did not end in virtual time; seed {seed}"
        );
        w.now = at;
        w.step(event);
        if at > last_lookup && w.pending == 0 {
            break;
        }
    }
    let wall = wall.elapsed();
    let mut first_peer: Vec<Duration> = w.lookups.values().filter_map(|r| r.first_peer).collect();
    let mut done: Vec<Duration> = w.lookups.values().filter_map(|r| r.done).collect();
    first_peer.sort_unstable();
    done.sort_unstable();
    let success = first_peer.len() as f64 / w.lookups.len().max(1) as f64;
    let alive = w.nodes.iter().filter(|n| n.alive).count();
    let tables: Vec<usize> = w
        .nodes
        .iter()
        .filter(|n| n.alive)
        .map(|n| n.dht.stats().nodes)
        .collect();
    let announced_to: usize = w.announces_done.iter().sum();
    println!("dht sim: seed {seed} (replay: BITSWARM_DHT_SIM_SEED={seed})");
    println!(
        "  nodes {} joined ({} routers), {} alive at end, churn {:.0}%, RTT lognormal median {} ms sigma {}, loss {}% each way",
        w.nodes.len(), p.routers, alive, p.churn * 100.0, net::RTT_MEDIAN_MS, net::RTT_SIGMA, LOSS * 100.0
    );
    println!(
        "  datagrams delivered {}, lost {}; mean table size {:.1}; announces {} of {} info-hashes (avg {:.1} nodes each)",
        w.delivered, w.lost,
        tables.iter().sum::<usize>() as f64 / tables.len().max(1) as f64,
        w.announces_done.len(), p.info_hashes,
        announced_to as f64 / w.announces_done.len().max(1) as f64
    );
    if let Some(kinds) = &w.kinds {
        let mut kinds: Vec<_> = kinds.iter().collect();
        kinds.sort();
        println!("  sent by kind: {kinds:?}");
    }
    println!(
        "  lookups {}: success {:.2}% ({} found the announced peer; {} more abandoned: their node left)",
        w.lookups.len(), success * 100.0, first_peer.len(), w.abandoned
    );
    for (name, v) in [
        ("time to first peer", &first_peer),
        ("time to lookup done", &done),
    ] {
        println!(
            "  {name}: median {:.3} s, p90 {:.3} s, p99 {:.3} s, max {:.3} s",
            quantile(v, 0.5),
            quantile(v, 0.9),
            quantile(v, 0.99),
            quantile(v, 1.0)
        );
    }
    println!(
        "  simulated {:.1} s in {:.1} s wall, {} events",
        w.now.as_secs_f64(),
        wall.as_secs_f64(),
        events
    );
    Outcome {
        success,
        first_peer,
        done,
    }
}

/// 5,000 nodes, 10% churn, 120 info-hashes, 1,000 lookups: the figures in BENCHMARKS.md.
#[test]
fn five_thousand_nodes() {
    let nodes = std::env::var("BITSWARM_DHT_SIM_NODES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5000);
    let p = Params {
        nodes,
        routers: 4,
        join_window: Duration::from_secs(100),
        info_hashes: 120,
        lookups: 1000,
        churn: 0.10,
    };
    let o = run(&p);
    assert!(o.success >= 0.99, "success {:.3}", o.success);
    // Loose bounds (goals: median ≤ 0.5 s, p90 ≤ 1.5 s); the exact figures are printed.
    assert!(quantile(&o.first_peer, 0.5) <= 1.0);
    assert!(quantile(&o.first_peer, 0.9) <= 3.0);
    assert!(quantile(&o.done, 0.5) <= 5.0);
}

/// A bigger network for release-mode measurement:
/// `cargo test -p bitswarm-dht --release --test sim -- --ignored --nocapture`.
#[test]
#[ignore = "takes minutes; run in release for BENCHMARKS.md"]
fn twenty_thousand_nodes() {
    let p = Params {
        nodes: 20_000,
        routers: 8,
        join_window: Duration::from_secs(300),
        info_hashes: 500,
        lookups: 5000,
        churn: 0.10,
    };
    let o = run(&p);
    assert!(o.success >= 0.99, "success {:.3}", o.success);
}
