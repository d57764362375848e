//! The Mainline DHT (BEP 5, with BEP 32 IPv6, BEP 42 secure ids and BEP 43 read-only nodes) as
//! a sans-IO state machine.
//!
//! [`Dht`] owns one node: its routing table, its lookups and the peers others announced to it.
//! It never touches a socket or reads the clock: datagrams come in through
//! [`Dht::handle_datagram`], go out through [`Dht::poll_transmit`], time comes in as `now`
//! arguments, and randomness from a `SmallRng` seeded in [`Dht::new`]. A driver (the tokio
//! crate `bitswarm-dht-node`, or the simulation in `tests/sim.rs`) loops over
//! `poll_transmit`, `poll_timeout`/`handle_timeout` and `poll_event`.
//!
//! One `Dht` serves one address family (BEP 32): run two for dual-stack.
//!
//! Invariants (each with a named bound, checked by tests):
//! - every queue and table is bounded: [`REQUESTS_IN_FLIGHT_MAX`], [`VERIFY_PINGS_MAX`],
//!   [`LOOKUP_QUEUE_MAX`], [`TRANSMIT_QUEUE_MAX`], [`EVENT_QUEUE_MAX`], `bucket_size` per
//!   bucket, `max_torrents` × `max_peers_per_torrent` in the peer store, and the KRPC bounds
//!   in [`krpc`];
//! - a node enters the routing table only after it answered one of our queries (nodes named
//!   in answers and `add_node` hints only fill free room, unverified, and give way to any node
//!   that answered); read-only nodes, routers and (when enforced) global addresses with a
//!   non-BEP 42 id never enter it;
//! - an answer to an address that never answered us carries at most
//!   [`UNVERIFIED_ITEMS_MAX`] values or nodes and is at most [`UNVERIFIED_RESPONSE_LEN_MAX`]
//!   bytes (no amplification);
//! - a response counts only if its transaction id and source address match a request we sent.
//!
//! Deliberately absent: sockets, clocks, DNS (routers are addresses), persistence (the driver
//! saves [`Dht::nodes`]), BEP 44 storage, and bridging IPv4 and IPv6 tables.

mod dht;
mod id;
pub mod krpc;
mod lookup;
mod routing;
mod store;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub use dht::receive::{
    UNVERIFIED_ITEMS_MAX, UNVERIFIED_RESPONSE_LEN_MAX, VALUES_PER_RESPONSE_MAX,
};
pub use dht::{
    Dht, EVENT_QUEUE_MAX, HOUSEKEEPING_INTERVAL, LOOKUP_QUEUE_MAX, QUESTIONABLE_PINGS_PER_ROUND,
    REQUESTS_IN_FLIGHT_MAX, ROUTERS_MAX, TRANSMIT_QUEUE_MAX, VERIFY_PINGS_MAX, VERSION,
};
pub use id::{is_local, NodeId};

/// The address family one [`Dht`] serves (BEP 32: one table per family).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressFamily {
    /// IPv4: compact nodes of 26 bytes under `nodes`.
    V4,
    /// IPv6: compact nodes of 38 bytes under `nodes6`.
    V6,
}

impl AddressFamily {
    /// The family of `addr` (an IPv4-mapped IPv6 address counts as IPv6).
    #[must_use]
    pub fn of(addr: &SocketAddr) -> Self {
        match addr {
            SocketAddr::V4(_) => Self::V4,
            SocketAddr::V6(_) => Self::V6,
        }
    }
}

/// Settings of one [`Dht`]. [`Default`] gives the values documented on each field.
#[derive(Debug, Clone)]
pub struct DhtConfig {
    /// Our id. `None`: a BEP 42 id for `external_ip` if known, else a random one.
    pub node_id: Option<NodeId>,
    /// Our external address if the driver knows it (default `None`; otherwise voted from the
    /// `ip` key of responses).
    pub external_ip: Option<IpAddr>,
    /// The family of addresses in the table (default V4).
    pub family: AddressFamily,
    /// BEP 43: send `ro: 1` and answer no queries (default false).
    pub read_only: bool,
    /// Entries per routing-table bucket, and the "k" of lookups and announces (default 8).
    pub bucket_size: usize,
    /// Requests in flight per lookup (default 3).
    pub alpha: usize,
    /// Hard timeout of a request: the node counts as failed (default 2 s).
    pub request_timeout: Duration,
    /// A request slower than this lets its lookup send one more request (default 400 ms).
    pub slow_after: Duration,
    /// Token secret rotation; tokens stay valid for the current and previous secret
    /// (default 5 min).
    pub token_rotation: Duration,
    /// How long an announced peer is kept (default 30 min).
    pub peer_ttl: Duration,
    /// Most info-hashes in the peer store (default 2000).
    pub max_torrents: usize,
    /// Most peers kept per info-hash (default 500).
    pub max_peers_per_torrent: usize,
    /// Check BEP 42 ids of others (never for loopback/private/link-local addresses)
    /// (default true).
    pub enforce_node_id: bool,
    /// At most one routing-table entry per IP, except local addresses (default true).
    pub restrict_routing_ips: bool,
    /// Lookups running at once; more wait in a queue (default 16).
    pub max_lookups: usize,
}

impl Default for DhtConfig {
    fn default() -> Self {
        Self {
            node_id: None,
            external_ip: None,
            family: AddressFamily::V4,
            read_only: false,
            bucket_size: 8,
            alpha: 3,
            request_timeout: Duration::from_secs(2),
            slow_after: Duration::from_millis(400),
            token_rotation: Duration::from_secs(5 * 60),
            peer_ttl: Duration::from_secs(30 * 60),
            max_torrents: 2000,
            max_peers_per_torrent: 500,
            enforce_node_id: true,
            restrict_routing_ips: true,
            max_lookups: 16,
        }
    }
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// The encoded KRPC message.
    pub payload: Vec<u8>,
}

/// Identifies one lookup started by [`Dht::get_peers`] or [`Dht::announce`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LookupId(pub u64);

/// What the DHT reports to its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhtEvent {
    /// Peers found by a lookup; each peer is reported once per lookup.
    Peers {
        /// The lookup.
        lookup: LookupId,
        /// What it looks for.
        info_hash: [u8; 20],
        /// New peers.
        peers: Vec<SocketAddr>,
    },
    /// A lookup ended (and, for an announce, the announces were sent).
    LookupDone {
        /// The lookup.
        lookup: LookupId,
        /// What it looked for.
        info_hash: [u8; 20],
        /// Distinct peers found.
        peers_found: usize,
        /// Nodes that answered.
        nodes_responded: usize,
        /// Nodes we sent `announce_peer` to (0 for a plain `get_peers`).
        announced_to: usize,
    },
    /// Our external address as voted by responders changed.
    ExternalIp(IpAddr),
}

/// Counters and sizes, for `bitswarm dht stats` and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DhtStats {
    /// Routing-table entries (good and questionable; bad ones are not counted).
    pub nodes: usize,
    /// Entries that answered within the last 15 minutes.
    pub good_nodes: usize,
    /// Buckets in the routing table.
    pub buckets: usize,
    /// Requests awaiting an answer.
    pub in_flight: usize,
    /// Lookups running or queued.
    pub lookups: usize,
    /// Info-hashes in the peer store.
    pub torrents_stored: usize,
    /// Peers in the peer store, over all info-hashes.
    pub peers_stored: usize,
    /// Queries received (answered or not).
    pub queries_received: u64,
    /// Datagrams dropped: malformed, oversized, unsolicited or from a refused node.
    pub responses_dropped: u64,
}

/// Errors of this crate's fallible conversions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DhtError {
    /// A KRPC message could not be parsed.
    #[error("KRPC: {0}")]
    Krpc(#[from] krpc::KrpcError),
    /// A node id was not 20 bytes.
    #[error("node id of {0} bytes, expected 20")]
    NodeIdLength(usize),
}

impl TryFrom<&[u8]> for NodeId {
    type Error = DhtError;
    fn try_from(bytes: &[u8]) -> Result<Self, DhtError> {
        NodeId::from_slice(bytes).ok_or(DhtError::NodeIdLength(bytes.len()))
    }
}

pub use krpc::KrpcError;
