//! What a simulation is made of, described before it runs: the torrent and the run's bounds
//! ([`SimSpec`]) and each node's links, behaviour, engine configuration and life span
//! ([`NodeSpec`]). Plain data with builder methods; nothing here runs.

use std::time::Duration;

use bitswarm_engine::TorrentConfig;

/// How a node behaves beyond what its engine decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Does what its engine says.
    Honest,
    /// Serves wrong data (first byte flipped) for about one block in `one_in`, chosen by a
    /// hash of the block and the run's seed, so a replay corrupts the same blocks.
    Corrupt {
        /// One block in this many is corrupted (0 is taken as 1: every block).
        one_in: u32,
    },
    /// Never uploads: its `Unchoke` messages are dropped on the way out, so no peer ever
    /// believes it is unchoked, and any block its engine asks to serve is not sent. Its
    /// engine is unmodified (it still thinks it unchokes, as a patched client would pretend).
    FreeRider,
}

/// How much of the traffic goes through the real wire codec on its way between engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireCheck {
    /// Every message, piece payloads included, is encoded and decoded by
    /// `bitswarm_wire` (payloads are copied: each node then stores its own bytes).
    All,
    /// Every message but piece messages; piece payloads travel as shared, immutable
    /// buffers, so a swarm of hundreds of nodes stores the torrent's bytes about once.
    Control,
    /// Messages are handed over as values.
    Off,
}

/// How often engines check their own invariants.
///
/// The engine's `check_invariants` is O(pieces × peers); after every step it dominates a swarm
/// of hundreds of nodes, so large runs sample it. Whatever the choice, every present engine is
/// checked once more when a run ends without error, and the harness's own checks (HAVE only
/// after verification, requests only for pieces we lack and the peer has, unchoked peers
/// within the slots, served pieces verified, the wire codec) run on every message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineChecks {
    /// After every step, every engine the step touched.
    EveryStep,
    /// Each engine on every `every`-th step that touches it (0 is taken as 1).
    Sampled {
        /// Check on one in this many of the steps that touch an engine.
        every: u32,
    },
    /// Never (but still once at the end of a run).
    Off,
}

/// The torrent and the bounds of one run.
#[derive(Debug, Clone)]
pub struct SimSpec {
    /// Seeds the payload bytes, every engine's RNG and the network's (loss, peer lists).
    pub seed: u64,
    /// Bytes per piece (the last piece may be shorter).
    pub piece_length: u32,
    /// Bytes in the torrent.
    pub total_length: u64,
    /// Most steps (events or timer firings) before the run fails with
    /// [`SimError::StepLimit`](crate::SimError::StepLimit).
    pub steps_max: u64,
    /// Most virtual time before the run fails with
    /// [`SimError::TimeLimit`](crate::SimError::TimeLimit).
    pub time_max: Duration,
    /// Which messages go through the wire codec.
    pub wire: WireCheck,
    /// Virtual time a piece check takes (between `VerifyPiece` and its result).
    pub hash_delay: Duration,
    /// Peers a node is told about when it joins and at every re-announce, chosen at random
    /// among the nodes present (a tracker's `numwant`).
    pub announce_peers: usize,
    /// How often a node asks the "tracker" for peers again (`None`: only when it joins).
    pub announce_interval: Option<Duration>,
    /// How often each engine runs its own full `check_invariants` (the harness's checks on
    /// what engines say to each other run on every message regardless).
    pub engine_checks: EngineChecks,
}

impl SimSpec {
    /// A run of `total_length` bytes in pieces of `piece_length`, with defaults: 2 million
    /// steps, 600 s of virtual time, every message through the codec, 2 ms per piece check,
    /// 50 peers per announce, re-announce every 60 s, engine checks after every step.
    #[must_use]
    pub fn new(seed: u64, piece_length: u32, total_length: u64) -> Self {
        Self {
            seed,
            piece_length,
            total_length,
            steps_max: 2_000_000,
            time_max: Duration::from_secs(600),
            wire: WireCheck::All,
            hash_delay: Duration::from_millis(2),
            announce_peers: 50,
            announce_interval: Some(Duration::from_secs(60)),
            engine_checks: EngineChecks::EveryStep,
        }
    }
}

/// One node: a torrent engine with its links, behaviour and life span.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Starts with every piece.
    pub seed: bool,
    /// Upload capacity in bytes per second, 0 for unlimited.
    pub up_bw: u64,
    /// Download capacity in bytes per second, 0 for unlimited.
    pub down_bw: u64,
    /// One-way latency of this node's access link; a connection's latency is the sum of
    /// its two ends'.
    pub latency: Duration,
    /// Probability that a message this node sends needs a TCP retransmission, which delays
    /// it (and, since TCP delivers in order, everything behind it on that connection) by
    /// `retransmit_delay`. Bandwidth spent on the retransmission is not modelled.
    pub loss: f64,
    /// The delay a retransmission adds (Linux's minimum RTO is 200 ms).
    pub retransmit_delay: Duration,
    /// What the node does beyond its engine.
    pub behaviour: Behaviour,
    /// The engine's configuration.
    pub config: TorrentConfig,
    /// Advertises the fast extension (BEP 6); a connection uses it if both ends do.
    pub fast: bool,
    /// Advertises the extension protocol (BEP 10).
    pub extensions: bool,
    /// When the node starts (announces and connects).
    pub join_at: Duration,
    /// When the node closes every connection and stops, if ever.
    pub leave_at: Option<Duration>,
    /// Leave this long after completing its download, if set (a user who stops seeding);
    /// a node that starts as a seed never leaves this way.
    pub seed_for: Option<Duration>,
}

impl NodeSpec {
    /// A seed: every piece from the start, unlimited links, 10 ms latency, honest.
    #[must_use]
    pub fn seeder() -> Self {
        Self {
            seed: true,
            ..Self::leecher()
        }
    }

    /// A leecher: no pieces, unlimited links, 10 ms latency, honest, default engine
    /// configuration, fast extension and extension protocol, present from the start.
    #[must_use]
    pub fn leecher() -> Self {
        Self {
            seed: false,
            up_bw: 0,
            down_bw: 0,
            latency: Duration::from_millis(10),
            loss: 0.0,
            retransmit_delay: Duration::from_millis(200),
            behaviour: Behaviour::Honest,
            config: TorrentConfig::default(),
            fast: true,
            extensions: true,
            join_at: Duration::ZERO,
            leave_at: None,
            seed_for: None,
        }
    }

    /// With an upload capacity in bytes per second (0: unlimited).
    #[must_use]
    pub fn up(mut self, bytes_per_sec: u64) -> Self {
        self.up_bw = bytes_per_sec;
        self
    }

    /// With a download capacity in bytes per second (0: unlimited).
    #[must_use]
    pub fn down(mut self, bytes_per_sec: u64) -> Self {
        self.down_bw = bytes_per_sec;
        self
    }

    /// With a one-way access-link latency.
    #[must_use]
    pub fn latency(mut self, one_way: Duration) -> Self {
        self.latency = one_way;
        self
    }

    /// With a per-message retransmission probability (clamped to `0.0..=1.0`).
    #[must_use]
    pub fn loss(mut self, probability: f64) -> Self {
        self.loss = if probability.is_nan() {
            0.0
        } else {
            probability.clamp(0.0, 1.0)
        };
        self
    }

    /// With an engine configuration.
    #[must_use]
    pub fn config(mut self, config: TorrentConfig) -> Self {
        self.config = config;
        self
    }

    /// With or without the fast extension.
    #[must_use]
    pub fn fast(mut self, fast: bool) -> Self {
        self.fast = fast;
        self
    }

    /// With or without the extension protocol.
    #[must_use]
    pub fn extensions(mut self, extensions: bool) -> Self {
        self.extensions = extensions;
        self
    }

    /// Joining at `at` instead of at the start.
    #[must_use]
    pub fn join_at(mut self, at: Duration) -> Self {
        self.join_at = at;
        self
    }

    /// Leaving at `at`.
    #[must_use]
    pub fn leave_at(mut self, at: Duration) -> Self {
        self.leave_at = Some(at);
        self
    }

    /// Leaving `after` completing.
    #[must_use]
    pub fn seed_for(mut self, after: Duration) -> Self {
        self.seed_for = Some(after);
        self
    }

    /// With a behaviour.
    #[must_use]
    pub fn behaviour(mut self, behaviour: Behaviour) -> Self {
        self.behaviour = behaviour;
        self
    }
}
