//! The simulation itself: the nodes, the virtual clock, the event queue and the engines'
//! timers, and the step loop that runs them with checks after every step. What each event and
//! action does to links and stores is in `net.rs`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bitswarm_engine::{BanReason, DisconnectReason, Geometry, Torrent};
use bitswarm_wire::{Bitfield, BlockRef, Message};
use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::queue::{nanos, EventQueue};
use crate::report::TransferMatrix;
use crate::spec::{EngineChecks, NodeSpec, SimSpec};
use crate::store::{Source, Store};
use crate::SimError;

/// Most actions carried out in one step before the run fails with
/// [`SimError::ActionFlood`] (an engine flooding actions).
pub const ACTIONS_PER_STEP_MAX: usize = 1_000_000;

/// What the harness saw a node do and go through, in virtual time since the start.
#[derive(Debug, Clone, Default)]
pub struct NodeLog {
    /// When it joined.
    pub joined_at: Option<Duration>,
    /// When it left.
    pub left_at: Option<Duration>,
    /// When its first connection was established.
    pub connected_at: Option<Duration>,
    /// When it sent its first request.
    pub first_request_at: Option<Duration>,
    /// When its first block arrived.
    pub first_block_at: Option<Duration>,
    /// Who sent its first block.
    pub first_block_from: Option<usize>,
    /// When it had every piece (`Some(0)` for a node that started as a seed).
    pub completed_at: Option<Duration>,
    /// Requests it sent.
    pub requests_sent: u64,
    /// Cancels it sent.
    pub cancels_sent: u64,
    /// Requests it sent for each block, blocks numbered through the torrent (piece by
    /// piece), for duplicate accounting.
    pub requests_per_block: Vec<u32>,
    /// Addresses it banned, and why.
    pub bans: Vec<(IpAddr, BanReason)>,
    /// Connections it closed, and why.
    pub disconnects: Vec<DisconnectReason>,
    /// Pieces that failed their check in its store.
    pub hash_failures: u32,
    /// Blocks its engine asked to serve that a [`Behaviour::FreeRider`](crate::Behaviour)
    /// did not send.
    pub serves_refused: u64,
}

/// Where a node is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Presence {
    NotYet,
    Joined,
    Left,
}

/// One node: its engine, its store and what the harness saw of it.
#[derive(Debug)]
pub struct Node {
    pub(crate) torrent: Torrent,
    pub(crate) spec: NodeSpec,
    pub(crate) addr: SocketAddr,
    pub(crate) store: Store,
    /// Pieces whose check passed in this node's store (what it may announce and serve).
    pub(crate) verified: Bitfield,
    pub(crate) presence: Presence,
    /// When its upload and download links are next free.
    pub(crate) up_free: Duration,
    pub(crate) down_free: Duration,
    /// Peers its engine has unchoked (by its own messages) and not choked or dropped since.
    pub(crate) unchoked: usize,
    /// Connections this node's engine has been told about (some may have closed since).
    pub(crate) conns: Vec<usize>,
    /// The engine timer the harness has queued for this node.
    pub(crate) timer_at: Option<Duration>,
    /// Steps that touched this node (for sampled engine checks).
    pub(crate) touches: u32,
    pub(crate) log: NodeLog,
}

impl Node {
    /// The node's engine.
    #[must_use]
    pub fn torrent(&self) -> &Torrent {
        &self.torrent
    }

    /// What the node was built from.
    #[must_use]
    pub fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    /// Its address (10.x.y.z, one per node, port 6881).
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the harness saw it do.
    #[must_use]
    pub fn log(&self) -> &NodeLog {
        &self.log
    }

    /// Pieces that passed their check in its store.
    #[must_use]
    pub fn verified(&self) -> &Bitfield {
        &self.verified
    }

    /// It has joined and not left.
    #[must_use]
    pub fn is_present(&self) -> bool {
        self.presence == Presence::Joined
    }

    /// It has left.
    #[must_use]
    pub fn has_left(&self) -> bool {
        self.presence == Presence::Left
    }
}

/// A connection between two nodes. Direction `k` is from `ends[k]` to `ends[1 - k]`.
#[derive(Debug, Clone)]
pub(crate) struct Conn {
    pub(crate) ends: [usize; 2],
    pub(crate) open: bool,
    /// The engine at each end knows this connection (told of it, not told it closed).
    pub(crate) attached: [bool; 2],
    /// The engine at each end has unchoked the other (by its messages).
    pub(crate) unchoking: [bool; 2],
    /// Per direction: the latest arrival at the receiving host, and the latest delivery to
    /// its engine (TCP keeps both in sending order).
    pub(crate) arrive_last: [Duration; 2],
    pub(crate) deliver_last: [Duration; 2],
    /// Per direction: piece messages on their way that have not reached the receiving host.
    pub(crate) data_in_flight: [u32; 2],
}

/// Something scheduled for a virtual time.
#[derive(Debug)]
pub(crate) enum SimEvent {
    /// A message reached the receiving host (data then queues through its downlink).
    Arrive {
        conn: usize,
        dir: usize,
        message: Message,
    },
    /// A message reaches the receiving engine.
    Deliver {
        conn: usize,
        dir: usize,
        message: Message,
    },
    /// A block left the sender's uplink.
    BlockSent {
        conn: usize,
        dir: usize,
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
    /// The other end closed `conn`; `node` learns of it.
    Closed {
        conn: usize,
        node: usize,
    },
    Join {
        node: usize,
    },
    Leave {
        node: usize,
    },
    Announce {
        node: usize,
    },
}

/// A whole swarm in one process. See the crate docs for the model and an example.
#[derive(Debug)]
pub struct Sim {
    pub(crate) spec: SimSpec,
    pub(crate) base: Instant,
    pub(crate) now: Duration,
    pub(crate) source: Source,
    pub(crate) nodes: Vec<Node>,
    pub(crate) addr_index: HashMap<SocketAddr, usize>,
    pub(crate) conns: Vec<Conn>,
    /// Node pairs with an open connection, smaller index first.
    pub(crate) open_pairs: HashSet<(usize, usize)>,
    pub(crate) queue: EventQueue<SimEvent>,
    /// Engine timers as (time in nanoseconds, node); stale entries are skipped.
    pub(crate) timers: BinaryHeap<Reverse<(u64, usize)>>,
    pub(crate) steps: u64,
    pub(crate) rng: SmallRng,
    pub(crate) transfers: TransferMatrix,
    touched: Vec<bool>,
    touched_list: Vec<usize>,
}

impl Sim {
    /// A swarm of `nodes` sharing one torrent of random bytes drawn from `spec.seed`. Nothing
    /// runs until [`Sim::run_until`].
    #[must_use]
    pub fn new(spec: SimSpec, nodes: Vec<NodeSpec>) -> Self {
        let geometry = Geometry::new(spec.piece_length, spec.total_length);
        let mut rng = SmallRng::seed_from_u64(spec.seed);
        let source = Source::random(geometry, &mut rng);
        let base = Instant::now();
        let nodes: Vec<Node> = nodes
            .into_iter()
            .enumerate()
            .map(|(i, node)| build_node(&spec, &source, base, i, node))
            .collect();
        let n = nodes.len();
        let addr_index = nodes.iter().enumerate().map(|(i, n)| (n.addr, i)).collect();
        let mut sim = Self {
            touched: vec![false; n],
            touched_list: Vec::new(),
            transfers: TransferMatrix::new(n),
            rng: SmallRng::seed_from_u64(spec.seed.rotate_left(17) ^ 0x6e65_7477_6f72_6b00),
            spec,
            base,
            now: Duration::ZERO,
            source,
            nodes,
            addr_index,
            conns: Vec::new(),
            open_pairs: HashSet::new(),
            queue: EventQueue::new(),
            timers: BinaryHeap::new(),
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

    /// Runs until `done` holds (asked after every step), checking invariants after every
    /// step. Fails on the first violation, or when a bound of the [`SimSpec`] is reached.
    pub fn run_until(&mut self, mut done: impl FnMut(&Sim) -> bool) -> Result<(), SimError> {
        loop {
            self.settle()?;
            if done(self) {
                return self.check_all_engines();
            }
            if self.steps >= self.spec.steps_max {
                return Err(SimError::StepLimit { steps: self.steps });
            }
            self.steps += 1;
            self.step()?;
        }
    }

    /// Runs until every node is complete or has left.
    pub fn run_to_completion(&mut self) -> Result<(), SimError> {
        self.run_until(|sim| {
            sim.nodes
                .iter()
                .all(|n| n.torrent.is_complete() || n.presence == Presence::Left)
        })
    }

    /// Runs until virtual time `at` (or later: the step that crosses it completes).
    pub fn run_to(&mut self, at: Duration) -> Result<(), SimError> {
        self.run_until(|sim| sim.now >= at)
    }

    /// Virtual time since the start.
    #[must_use]
    pub fn now(&self) -> Duration {
        self.now
    }

    /// The `Instant` the engines see for virtual time zero.
    #[must_use]
    pub fn base(&self) -> Instant {
        self.base
    }

    /// Steps taken so far.
    #[must_use]
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// What the run was built from.
    #[must_use]
    pub fn spec(&self) -> &SimSpec {
        &self.spec
    }

    /// The torrent's geometry.
    #[must_use]
    pub fn geometry(&self) -> Geometry {
        self.source.layout.geometry
    }

    /// Every node, in the order given to [`Sim::new`].
    #[must_use]
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Node `i`.
    ///
    /// # Panics
    /// If there is no node `i`.
    #[must_use]
    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }

    /// Node `i`'s engine, to change it between steps (for example `set_wanted`); its actions
    /// are carried out and its invariants checked before the next step.
    ///
    /// # Panics
    /// If there is no node `i`.
    pub fn torrent_mut(&mut self, i: usize) -> &mut Torrent {
        self.touch(i);
        &mut self.nodes[i].torrent
    }

    /// Payload bytes node `from` has sent to node `to` so far (counted as they leave the
    /// sender's uplink).
    #[must_use]
    pub fn uploaded(&self, from: usize, to: usize) -> u64 {
        self.transfers.get(from, to)
    }

    /// A snapshot of who has sent how much to whom so far.
    #[must_use]
    pub fn transfers(&self) -> &TransferMatrix {
        &self.transfers
    }

    /// Whether node `i`'s store holds exactly the torrent's bytes, every block of it.
    #[must_use]
    pub fn store_matches(&self, i: usize) -> bool {
        self.nodes
            .get(i)
            .is_some_and(|n| n.store.matches(&self.source))
    }

    /// SHA-1 of node `i`'s store read front to back (missing blocks read as zeros); `None`
    /// if there is no node `i`.
    #[must_use]
    pub fn store_digest(&self, i: usize) -> Option<[u8; 20]> {
        Some(self.nodes.get(i)?.store.digest(&self.source))
    }

    /// SHA-1 of the torrent's bytes.
    #[must_use]
    pub fn source_digest(&self) -> [u8; 20] {
        self.source.digest()
    }

    /// Whether some node banned node `j`'s address.
    #[must_use]
    pub fn is_banned_by_anyone(&self, j: usize) -> bool {
        let Some(ip) = self.nodes.get(j).map(|n| n.addr.ip()) else {
            return false;
        };
        self.nodes
            .iter()
            .any(|n| n.log.bans.iter().any(|(b, _)| *b == ip))
    }

    /// The engine-visible instant of virtual time `at`.
    pub(crate) fn instant_at(&self, at: Duration) -> Instant {
        self.base + at
    }

    pub(crate) fn instant(&self) -> Instant {
        self.instant_at(self.now)
    }

    pub(crate) fn schedule(&mut self, at: Duration, event: SimEvent) {
        self.queue.push(at, event);
    }

    pub(crate) fn touch(&mut self, node: usize) {
        if let Some(t) = self.touched.get_mut(node) {
            if !*t {
                *t = true;
                self.touched_list.push(node);
            }
        }
    }

    /// One step: the next event, or the engine timers due at the next timer instant.
    fn step(&mut self) -> Result<(), SimError> {
        let next_event = self.queue.peek_time();
        let next_timer = self.next_timer();
        let Some(next) = next_event.into_iter().chain(next_timer).min() else {
            return Err(SimError::Stalled { at: self.now });
        };
        if next > self.spec.time_max {
            return Err(SimError::TimeLimit { at: self.now });
        }
        self.now = self.now.max(next);
        if next_event.is_some_and(|t| t <= next) {
            if let Some(event) = self.queue.pop() {
                self.apply(event);
            }
            return Ok(());
        }
        let now = self.instant();
        while let Some(&Reverse((at, node))) = self.timers.peek() {
            if at > nanos(next) {
                break;
            }
            self.timers.pop();
            let n = &mut self.nodes[node];
            if n.timer_at.map(nanos) == Some(at) && n.presence == Presence::Joined {
                n.timer_at = None;
                n.torrent.handle_timeout(now);
                self.touch(node);
            }
        }
        Ok(())
    }

    /// The earliest live engine timer (stale heap entries are dropped on the way).
    fn next_timer(&mut self) -> Option<Duration> {
        while let Some(&Reverse((at, node))) = self.timers.peek() {
            let n = &self.nodes[node];
            if n.timer_at.map(nanos) == Some(at) && n.presence == Presence::Joined {
                return Some(Duration::from_nanos(at));
            }
            self.timers.pop();
        }
        None
    }

    /// Carries out the actions of every node touched in this step, then checks them and
    /// refreshes their timers.
    fn settle(&mut self) -> Result<(), SimError> {
        let mut carried = 0usize;
        while let Some(i) = self.touched_list.pop() {
            self.touched[i] = false;
            while let Some(action) = self.nodes[i].torrent.poll_action() {
                carried += 1;
                if carried > ACTIONS_PER_STEP_MAX {
                    return Err(SimError::ActionFlood { node: i });
                }
                self.carry_out(i, action)?;
            }
            while self.nodes[i].torrent.poll_event().is_some() {}
            self.note_completion(i);
            self.refresh_timer(i);
            let node = &self.nodes[i];
            if node.unchoked > node.torrent.config().unchoke_slots + 1 {
                return Err(SimError::UnchokeSlotsExceeded {
                    node: i,
                    unchoked: node.unchoked,
                });
            }
            let node = &mut self.nodes[i];
            node.touches = node.touches.wrapping_add(1);
            let check = match self.spec.engine_checks {
                EngineChecks::EveryStep => true,
                EngineChecks::Sampled { every } => node.touches % every.max(1) == 0,
                EngineChecks::Off => false,
            };
            if check {
                self.check_engine(i)?;
            }
        }
        Ok(())
    }

    fn check_engine(&self, i: usize) -> Result<(), SimError> {
        self.nodes[i]
            .torrent
            .check_invariants()
            .map_err(|violation| SimError::Invariant {
                node: i,
                at: self.now,
                violation,
            })
    }

    /// Every present engine's own check, at the end of a run.
    fn check_all_engines(&self) -> Result<(), SimError> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].presence == Presence::Joined)
            .try_for_each(|i| self.check_engine(i))
    }

    fn note_completion(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if node.log.completed_at.is_some() || !node.torrent.is_complete() {
            return;
        }
        node.log.completed_at = Some(self.now);
        if let (Some(after), Presence::Joined) = (node.spec.seed_for, node.presence) {
            let at = self.now + after;
            self.schedule(at, SimEvent::Leave { node: i });
        }
    }

    fn refresh_timer(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let at = match node.presence {
            Presence::Joined => node
                .torrent
                .poll_timeout()
                .map(|t| t.saturating_duration_since(self.base)),
            _ => None,
        };
        if at != node.timer_at {
            node.timer_at = at;
            if let Some(at) = at {
                self.timers.push(Reverse((nanos(at), i)));
            }
        }
    }
}

/// Node `i`'s engine, store and address.
fn build_node(spec: &SimSpec, source: &Source, base: Instant, i: usize, node: NodeSpec) -> Node {
    let geometry = source.layout.geometry;
    let count = geometry.piece_count();
    let (have, store) = if node.seed {
        (Bitfield::full(count), Store::full(source))
    } else {
        (Bitfield::new(count), Store::empty(source))
    };
    let node_seed = spec
        .seed
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(i as u64);
    // 10.0.0.1 onwards: one address per node, enough for 16 million nodes.
    let ip = Ipv4Addr::from(0x0a00_0001_u32.wrapping_add(i as u32));
    let log = NodeLog {
        completed_at: node.seed.then_some(Duration::ZERO),
        requests_per_block: vec![0; source.layout.block_count()],
        ..NodeLog::default()
    };
    Node {
        torrent: Torrent::new(geometry, have.clone(), node.config.clone(), node_seed, base),
        addr: SocketAddr::new(IpAddr::V4(ip), 6881),
        store,
        verified: have,
        presence: Presence::NotYet,
        up_free: Duration::ZERO,
        down_free: Duration::ZERO,
        unchoked: 0,
        conns: Vec::new(),
        timer_at: None,
        touches: 0,
        log,
        spec: node,
    }
}
