//! A deterministic in-process swarm: N engines joined by simulated links, a virtual clock, a
//! seeded RNG, in-memory piece stores that answer `StoreBlock`, `VerifyPiece` and
//! `ServeBlock`. Every run is bounded by a step count and a virtual-time limit and fails with
//! a typed [`SimError`] instead of hanging; every failure names the seed, and
//! `BITSWARM_SIM_SEED` replays it.
//!
//! Time: `base + now`, where `now` jumps to the next delivery or engine timer. Links: a node
//! has an upload and a download bandwidth (piece data queues through both, FIFO) and a
//! one-way latency; a link's latency is the sum of its two ends', and a link delivers in
//! order (TCP). Control messages pay latency only. Messages travel as `bitswarm_wire::Message`
//! values, and with `wire_roundtrip` each is encoded and decoded by the wire codec on the way.
#![allow(dead_code)] // Each test binary uses a different part of the harness.

mod net;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bitswarm_engine::{
    BanReason, DisconnectReason, Geometry, InvariantViolation, PeerKey, Torrent, TorrentConfig,
    BLOCK_LEN,
};
use bitswarm_wire::{Bitfield, BlockRef, Message};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sha1::{Digest, Sha1};

/// Most actions carried out in one step before the run fails (an engine flooding actions).
pub const ACTIONS_PER_STEP_MAX: usize = 1_000_000;

/// The environment variable that replays a seed.
pub const SEED_ENV: &str = "BITSWARM_SIM_SEED";

/// The seed to run: `BITSWARM_SIM_SEED` if set, else `default`.
pub fn seed_or(default: u64) -> u64 {
    replay_seed().unwrap_or(default)
}

/// The seeds to run: only `BITSWARM_SIM_SEED` if set, else `defaults`.
pub fn seeds(defaults: &[u64]) -> Vec<u64> {
    replay_seed().map_or_else(|| defaults.to_vec(), |seed| vec![seed])
}

fn replay_seed() -> Option<u64> {
    std::env::var(SEED_ENV).ok().and_then(|s| s.parse().ok())
}

/// Prints the seed to replay if the test panics while this is alive.
pub struct SeedGuard(pub &'static str, pub u64);

impl Drop for SeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "simulation {} failed with seed {}; replay with {SEED_ENV}={}",
                self.0, self.1, self.1
            );
        }
    }
}

/// How a node behaves beyond what its engine decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Honest,
    /// Serves wrong data for about one block in `one_in` (chosen by hash, so repeatably).
    Corrupt {
        one_in: u32,
    },
    /// Never unchokes anyone (its unchoke messages are dropped), so it never uploads.
    FreeRider,
}

#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub seed: bool,
    /// Bytes per second, 0 for unlimited.
    pub up_bw: u64,
    pub down_bw: u64,
    pub latency: Duration,
    pub behaviour: Behaviour,
    pub config: TorrentConfig,
    pub fast: bool,
    pub extensions: bool,
    pub join_at: Duration,
    /// When the node closes every connection and stops (churn).
    pub leave_at: Option<Duration>,
}

impl NodeSpec {
    pub fn seeder() -> Self {
        Self {
            seed: true,
            ..Self::leecher()
        }
    }

    pub fn leecher() -> Self {
        Self {
            seed: false,
            up_bw: 0,
            down_bw: 0,
            latency: Duration::from_millis(10),
            behaviour: Behaviour::Honest,
            config: TorrentConfig::default(),
            fast: true,
            extensions: true,
            join_at: Duration::ZERO,
            leave_at: None,
        }
    }

    pub fn up(mut self, bytes_per_sec: u64) -> Self {
        self.up_bw = bytes_per_sec;
        self
    }

    pub fn down(mut self, bytes_per_sec: u64) -> Self {
        self.down_bw = bytes_per_sec;
        self
    }

    pub fn latency(mut self, one_way: Duration) -> Self {
        self.latency = one_way;
        self
    }

    pub fn config(mut self, config: TorrentConfig) -> Self {
        self.config = config;
        self
    }

    pub fn fast(mut self, fast: bool) -> Self {
        self.fast = fast;
        self
    }

    pub fn join_at(mut self, at: Duration) -> Self {
        self.join_at = at;
        self
    }

    pub fn leave_at(mut self, at: Duration) -> Self {
        self.leave_at = Some(at);
        self
    }

    pub fn behaviour(mut self, behaviour: Behaviour) -> Self {
        self.behaviour = behaviour;
        self
    }
}

#[derive(Debug, Clone)]
pub struct SimSpec {
    pub seed: u64,
    pub piece_length: u32,
    pub total_length: u64,
    pub steps_max: u64,
    pub time_max: Duration,
    pub wire_roundtrip: bool,
    pub hash_delay: Duration,
}

impl SimSpec {
    pub fn new(seed: u64, piece_length: u32, total_length: u64) -> Self {
        Self {
            seed,
            piece_length,
            total_length,
            steps_max: 2_000_000,
            time_max: Duration::from_secs(600),
            wire_roundtrip: true,
            hash_delay: Duration::from_millis(2),
        }
    }
}

/// Why a run failed.
#[derive(Debug)]
pub enum SimError {
    Invariant {
        node: usize,
        at: Duration,
        violation: InvariantViolation,
    },
    HaveBeforeVerified {
        node: usize,
        piece: u32,
    },
    RequestForPieceWeHave {
        node: usize,
        piece: u32,
    },
    RequestForPiecePeerLacks {
        node: usize,
        peer: usize,
        piece: u32,
    },
    ServeUnverified {
        node: usize,
        piece: u32,
    },
    UnchokeSlotsExceeded {
        node: usize,
        unchoked: usize,
    },
    ActionFlood {
        node: usize,
    },
    StepLimit {
        steps: u64,
    },
    TimeLimit {
        at: Duration,
    },
    Stalled {
        at: Duration,
    },
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

pub struct Node {
    pub torrent: Torrent,
    pub spec: NodeSpec,
    pub addr: SocketAddr,
    pub store: Vec<u8>,
    /// Pieces whose check passed in this node's store (what it may announce and serve).
    pub verified: Bitfield,
    pub joined: bool,
    up_free: Duration,
    down_free: Duration,
    /// Payload bytes this node uploaded to each other node.
    pub uploaded_to: Vec<u64>,
    pub first_request_at: Option<Duration>,
    pub connected_at: Option<Duration>,
    pub completed_at: Option<Duration>,
    pub requests_sent: u64,
    pub cancels_sent: u64,
    /// Requests per (piece, offset) sent by this node, for duplicate accounting.
    pub requests_per_block: HashMap<(u32, u32), u32>,
    pub bans: Vec<(IpAddr, BanReason)>,
    pub disconnects: Vec<DisconnectReason>,
    pub hash_failures: u32,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Conn {
    pub(crate) a: usize,
    pub(crate) b: usize,
    pub(crate) open: bool,
}

#[derive(Debug)]
pub(crate) enum SimEvent {
    Arrive {
        conn: u64,
        from: usize,
        to: usize,
        message: Message,
    },
    Deliver {
        conn: u64,
        to: usize,
        message: Message,
    },
    BlockSent {
        conn: u64,
        node: usize,
        block: BlockRef,
    },
    Verify {
        node: usize,
        piece: u32,
        digests: bool,
    },
    Connect {
        from: usize,
        to: usize,
    },
    ConnectFailed {
        node: usize,
        addr: SocketAddr,
    },
    Closed {
        conn: u64,
        node: usize,
    },
    Join {
        node: usize,
    },
    Leave {
        node: usize,
    },
}

pub struct Sim {
    pub spec: SimSpec,
    pub base: Instant,
    pub now: Duration,
    pub geometry: Geometry,
    pub data: Vec<u8>,
    pub hashes: Vec<[u8; 20]>,
    pub nodes: Vec<Node>,
    pub(crate) conns: HashMap<u64, Conn>,
    pub(crate) queue: BinaryHeap<Reverse<(Duration, u64)>>,
    pub(crate) events: HashMap<u64, SimEvent>,
    /// Per directed link: the last arrival time (sending order) and the last delivery time.
    pub(crate) link_last: HashMap<(usize, usize), Duration>,
    pub(crate) deliver_last: HashMap<(usize, usize), Duration>,
    pub(crate) seq: u64,
    pub steps: u64,
    touched: Vec<bool>,
}

impl Sim {
    pub fn new(spec: SimSpec, nodes: Vec<NodeSpec>) -> Self {
        let geometry = Geometry::new(spec.piece_length, spec.total_length);
        let mut rng = SmallRng::seed_from_u64(spec.seed);
        let mut data = vec![0u8; spec.total_length as usize];
        rng.fill(&mut data[..]);
        let hashes: Vec<[u8; 20]> = (0..geometry.piece_count())
            .map(|p| Sha1::digest(piece_bytes(&geometry, &data, p)).into())
            .collect();
        let base = Instant::now();
        let count = geometry.piece_count();
        let n = nodes.len();
        let nodes = nodes
            .into_iter()
            .enumerate()
            .map(|(i, spec_i)| {
                let have = if spec_i.seed {
                    Bitfield::full(count)
                } else {
                    Bitfield::new(count)
                };
                let store = if spec_i.seed {
                    data.clone()
                } else {
                    vec![0; data.len()]
                };
                let node_seed = spec
                    .seed
                    .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                    .wrapping_add(i as u64);
                Node {
                    torrent: Torrent::new(
                        geometry,
                        have.clone(),
                        spec_i.config.clone(),
                        node_seed,
                        base,
                    ),
                    addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, i as u8 + 1)), 6881),
                    store,
                    verified: have,
                    joined: false,
                    up_free: Duration::ZERO,
                    down_free: Duration::ZERO,
                    uploaded_to: vec![0; n],
                    first_request_at: None,
                    connected_at: None,
                    completed_at: if spec_i.seed {
                        Some(Duration::ZERO)
                    } else {
                        None
                    },
                    requests_sent: 0,
                    cancels_sent: 0,
                    requests_per_block: HashMap::new(),
                    bans: Vec::new(),
                    disconnects: Vec::new(),
                    hash_failures: 0,
                    spec: spec_i,
                }
            })
            .collect::<Vec<_>>();
        let mut sim = Self {
            touched: vec![false; nodes.len()],
            spec,
            base,
            now: Duration::ZERO,
            geometry,
            data,
            hashes,
            nodes,
            conns: HashMap::new(),
            queue: BinaryHeap::new(),
            events: HashMap::new(),
            link_last: HashMap::new(),
            deliver_last: HashMap::new(),
            seq: 0,
            steps: 0,
        };
        for i in 0..n {
            let at = sim.nodes[i].spec.join_at;
            sim.schedule(at, SimEvent::Join { node: i });
            if let Some(at) = sim.nodes[i].spec.leave_at {
                sim.schedule(at, SimEvent::Leave { node: i });
            }
        }
        sim
    }

    pub fn instant(&self) -> Instant {
        self.base + self.now
    }

    /// Runs until `done` holds, checking every invariant after every step.
    pub fn run_until(&mut self, mut done: impl FnMut(&Sim) -> bool) -> Result<(), SimError> {
        while self.steps < self.spec.steps_max {
            self.steps += 1;
            self.drain_actions()?;
            self.check()?;
            if done(self) {
                return Ok(());
            }
            let next_event = self.queue.peek().map(|Reverse((t, _))| *t);
            let next_timer = self
                .nodes
                .iter()
                .filter(|n| n.joined)
                .filter_map(|n| n.torrent.poll_timeout())
                .map(|t| t.saturating_duration_since(self.base))
                .min();
            let Some(next) = next_event.into_iter().chain(next_timer).min() else {
                return Err(SimError::Stalled { at: self.now });
            };
            if next > self.spec.time_max {
                return Err(SimError::TimeLimit { at: self.now });
            }
            self.now = self.now.max(next);
            if next_event.is_some_and(|t| t <= self.now) {
                let Some(Reverse((_, seq))) = self.queue.pop() else {
                    continue;
                };
                if let Some(event) = self.events.remove(&seq) {
                    self.apply(event);
                }
            } else {
                let now = self.instant();
                for i in 0..self.nodes.len() {
                    let node = &mut self.nodes[i];
                    if node.joined && node.torrent.poll_timeout().is_some_and(|t| t <= now) {
                        node.torrent.handle_timeout(now);
                        self.touched[i] = true;
                    }
                }
            }
        }
        Err(SimError::StepLimit { steps: self.steps })
    }

    /// Runs until every node that has not left is complete.
    pub fn run_to_completion(&mut self) -> Result<(), SimError> {
        self.run_until(|sim| {
            sim.nodes
                .iter()
                .all(|n| n.torrent.is_complete() || n.spec.leave_at.is_some_and(|t| t <= sim.now))
        })
    }

    /// Payload bytes node `i` uploaded to node `j`.
    pub fn uploaded(&self, i: usize, j: usize) -> u64 {
        self.nodes[i].uploaded_to[j]
    }

    /// Whether node `i`'s store holds exactly the torrent's data.
    pub fn store_matches(&self, i: usize) -> bool {
        self.nodes[i].store == self.data
    }

    /// Whether some node banned node `j`'s address.
    pub fn is_banned_by_anyone(&self, j: usize) -> bool {
        let ip = self.nodes[j].addr.ip();
        self.nodes
            .iter()
            .any(|n| n.bans.iter().any(|(b, _)| *b == ip))
    }

    pub(crate) fn schedule(&mut self, at: Duration, event: SimEvent) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq)));
        self.events.insert(self.seq, event);
    }

    pub(crate) fn touch(&mut self, node: usize) {
        self.touched[node] = true;
    }

    /// Engine invariants of every node touched in this step, plus the unchoke bound seen from
    /// outside.
    fn check(&mut self) -> Result<(), SimError> {
        for i in 0..self.nodes.len() {
            if !std::mem::take(&mut self.touched[i]) {
                continue;
            }
            let node = &self.nodes[i];
            node.torrent
                .check_invariants()
                .map_err(|violation| SimError::Invariant {
                    node: i,
                    at: self.now,
                    violation,
                })?;
            let unchoked = node
                .torrent
                .peer_stats()
                .filter(|(_, s)| !s.am_choking)
                .count();
            if unchoked > node.torrent.config().unchoke_slots + 1 {
                return Err(SimError::UnchokeSlotsExceeded { node: i, unchoked });
            }
        }
        Ok(())
    }

    /// The SHA-1 check of `piece` in node `i`'s store, with per-block digests if asked.
    pub(crate) fn verify(
        &self,
        i: usize,
        piece: u32,
        digests: bool,
    ) -> (bool, Option<Vec<[u8; 20]>>) {
        let bytes = piece_bytes(&self.geometry, &self.nodes[i].store, piece);
        let ok = <[u8; 20]>::from(Sha1::digest(bytes)) == self.hashes[piece as usize];
        let digests = digests.then(|| {
            bytes
                .chunks(BLOCK_LEN as usize)
                .map(|b| <[u8; 20]>::from(Sha1::digest(b)))
                .collect()
        });
        (ok, digests)
    }

    pub(crate) fn key_of(conn: u64) -> PeerKey {
        PeerKey(conn)
    }

    /// The other end of `conn` seen from `node`.
    pub(crate) fn other(&self, conn: u64, node: usize) -> Option<usize> {
        let c = self.conns.get(&conn)?;
        Some(if c.a == node { c.b } else { c.a })
    }

    pub(crate) fn link_latency(&self, a: usize, b: usize) -> Duration {
        self.nodes[a].spec.latency + self.nodes[b].spec.latency
    }
}

pub fn piece_bytes<'a>(g: &Geometry, data: &'a [u8], piece: u32) -> &'a [u8] {
    let start = u64::from(piece) * u64::from(g.piece_length);
    let end = start + u64::from(g.piece_len(piece));
    &data[start as usize..end as usize]
}

/// Transfer time of `len` bytes at `bw` bytes/s (0: instant).
pub fn transfer_time(len: usize, bw: u64) -> Duration {
    let nanos = (len as u64).saturating_mul(1_000_000_000);
    Duration::from_nanos(nanos.checked_div(bw).unwrap_or(0))
}
