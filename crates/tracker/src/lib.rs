//! The BitTorrent tracker protocol, sans-IO: HTTP (BEP 3, 7, 23) and UDP (BEP 15, 41) announce
//! and scrape messages for both sides, stateless UDP connection ids, access lists, and the
//! server's sharded swarm table with the logic that turns a request into its answer.
//!
//! This crate knows nothing of sockets, threads, clocks or global randomness: time comes in as
//! `now_s` (seconds on the caller's monotonic clock), randomness as `&mut impl Rng`, bytes as
//! slices, and answers go out into caller-owned buffers. Every parser is total — malformed
//! input is a [`TrackerError`], never a panic — and every size it accepts is a named bound.
//!
//! Map: [`udp`] and [`http`] are the wire formats; [`connection_id`] the stateless UDP
//! handshake; [`swarm`] the table of peers; [`access`] the allow/deny lists; [`server`] the
//! request-to-answer logic a tracker server runs per datagram or HTTP request.

pub mod access;
pub mod client;
pub mod compact;
pub mod connection_id;
mod error;
pub mod http;
pub mod server;
pub mod swarm;
mod types;
pub mod udp;

pub use error::TrackerError;
pub use types::{Event, InfoHash, PeerId};

#[cfg(test)]
mod tests;
