//! Deterministic swarm simulation: many `bitswarm-engine` torrents in one process, joined by
//! simulated links under a virtual clock, every run reproducible from one seed.
//!
//! A [`Sim`] is built from a [`SimSpec`] (the torrent's size and piece length, the seed, the
//! run's bounds) and one [`NodeSpec`] per node (seed or leecher, upload and download capacity,
//! latency, loss, [`Behaviour`], engine configuration, when it joins and leaves). The harness
//! plays the runtime for every engine: it carries out their actions (messages onto
//! connections, blocks into and out of in-memory stores, piece checks, connections), feeds
//! them what happened, and moves virtual time to the next event or engine timer.
//!
//! ```
//! use bitswarm_sim::{NodeSpec, Report, Sim, SimSpec};
//!
//! let seed = bitswarm_sim::seed_or(1); // BITSWARM_SIM_SEED replays a failing seed
//! let _guard = bitswarm_sim::SeedGuard::new("doc example", seed); // prints it on panic
//! // 1 MiB in 64 KiB pieces; one seed uploading 512 KiB/s, three leechers at 128 KiB/s.
//! let mut sim = Sim::new(
//!     SimSpec::new(seed, 64 * 1024, 1024 * 1024),
//!     vec![
//!         NodeSpec::seeder().up(512 * 1024),
//!         NodeSpec::leecher().up(128 * 1024),
//!         NodeSpec::leecher().up(128 * 1024),
//!         NodeSpec::leecher().up(128 * 1024),
//!     ],
//! );
//! sim.run_to_completion()?;
//! for i in 0..4 {
//!     assert!(sim.store_matches(i));
//!     assert_eq!(sim.store_digest(i), Some(sim.source_digest()));
//! }
//! let report = Report::of(&sim);
//! let last = report.last_completion().expect("all complete");
//! // No swarm beats the fluid-model bound.
//! assert!(last >= report.fluid_bound.expect("capacities are set"));
//! // Leechers upload to each other, not only the seed to them.
//! assert!(sim.uploaded(1, 2) + sim.uploaded(2, 3) + sim.uploaded(3, 1) > 0);
//! # Ok::<(), bitswarm_sim::SimError>(())
//! ```
//!
//! **Model.** Virtual time is `Sim::base() + offset`; it jumps to the next event or engine
//! timer, so a run takes as long as its events, not as long as its virtual time. Each node has
//! an uplink and a downlink of its capacity: piece data queues through both, FIFO, so a node
//! uploading to five peers shares its capacity among them in the order its engine served.
//! A connection's one-way latency is the sum of its ends' latencies and it delivers in order
//! (TCP): control messages pay latency only but never overtake data sent before them on the
//! same connection. Loss is modelled as TCP sees it: a lost message is retransmitted after
//! `retransmit_delay`, holding up everything behind it on that connection (the bandwidth of
//! the retransmission is not counted). Connecting takes three one-way latencies. Nodes find
//! each other through an idealised tracker: on joining and every `announce_interval` a node
//! is told of up to `announce_peers` present nodes at random.
//!
//! **Checks, after every step** (one event or one instant's engine timers): every engine
//! touched in the step runs its own `check_invariants` ([`EngineChecks`]: every step by
//! default, sampled for swarms of hundreds of nodes, and once more at the end of a run), and
//! the harness checks what engines say to each other as it leaves them — HAVE, HAVE ALL and
//! bitfields only for pieces that passed their check in the sender's store; requests only
//! for pieces the requester lacks and the peer has; blocks served only from verified pieces;
//! at most `unchoke_slots + 1` peers unchoked by a node's messages; and every message
//! survives the wire codec unchanged ([`WireCheck`]). The first violation ends the run with
//! a [`SimError`]. Every run is bounded by `steps_max` and `time_max`, so a livelock fails
//! instead of hanging.
//!
//! **Determinism.** The payload, each engine's RNG and the network's RNG derive from
//! `SimSpec::seed`; events at the same instant run in the order they were scheduled. The
//! same seed and specs give the same run, step for step. Tests take seeds through
//! [`seed_or`]/[`seeds`] so `BITSWARM_SIM_SEED=N` replays a failure, and hold a [`SeedGuard`]
//! that prints the seed when they panic.
//!
//! **Measurements.** Per node, [`NodeLog`] (join, first block and its sender, completion,
//! requests, bans, hash failures); across nodes, a [`TransferMatrix`] of payload bytes by
//! sender and receiver (snapshots subtract, for windows); [`Report`] for a table;
//! [`FluidModel`] for the lower bound T* on the last completion; [`jain_index`] for fairness.
//!
//! **Cost.** Stores share immutable block buffers, so with [`WireCheck::Control`] a swarm of
//! hundreds of nodes holds about one copy of the payload. A step costs O(log events) plus the
//! engines it touches; with [`EngineChecks::EveryStep`] each touched engine also pays its full
//! O(pieces × peers) self-check, which dominates large swarms.
//!
//! **Deliberately absent.** No sockets, threads, files or wall clock; no handshake bytes
//! (engines are told of connections as the runtime would after a handshake); no metadata
//! exchange or real tracker. A piece check compares the stored blocks with the source
//! (equivalent to the SHA-1 check, without hashing the payload once per node); per-block
//! digests for smart ban are real SHA-1.

mod error;
mod net;
mod queue;
mod report;
mod seed;
mod sim;
mod spec;
mod store;

pub use error::SimError;
pub use report::{jain_index, FluidModel, NodeReport, Report, TransferMatrix};
pub use seed::{seed_or, seeds, SeedGuard, SEED_ENV};
pub use sim::{Node, NodeLog, Sim, ACTIONS_PER_STEP_MAX};
pub use spec::{Behaviour, EngineChecks, NodeSpec, SimSpec, WireCheck};
