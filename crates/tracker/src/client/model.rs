//! The announcer's vocabulary: its configuration and timers, what it asks the driver to send,
//! what it reports, and how it describes each tracker. Kept apart from the state machine so
//! that a driver reads one short file to learn the interface.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::url::TrackerUrl;
use crate::error::TrackerError;
use crate::types::{Event, InfoHash, PeerId};

/// Most trackers one torrent may list; the rest are ignored.
pub const TRACKERS_MAX: usize = 256;
/// BEP 15's ceiling on `n` in the 15·2^n retransmit schedule.
pub const UDP_RETRANSMITS_MAX: u32 = 8;
/// Most events queued for the driver; more are dropped until it drains them.
pub const EVENTS_QUEUE_MAX: usize = 256;

/// The timers of the announcer. `Default` gives the BEP values where a BEP gives one.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Timing {
    /// First UDP timeout; attempt `n` waits `base·2^n` (BEP 15: 15 s).
    pub udp_timeout_base: Duration,
    /// Retransmissions before a UDP tracker counts as failed; at most
    /// [`UDP_RETRANSMITS_MAX`]. The default, 2 (15 + 30 + 60 s), gives up well before BEP 15's
    /// two hours so that a dead tracker does not keep a torrent from its next tier.
    pub udp_retransmits_max: u32,
    /// How long a UDP connection id may be reused (BEP 15: one minute).
    pub connection_id_lifetime: Duration,
    /// How long an HTTP announce may take, end to end.
    pub http_timeout: Duration,
    /// Interval used when a tracker names none.
    pub interval_default: Duration,
    /// Shortest interval obeyed, whatever a tracker says.
    pub interval_floor: Duration,
    /// Longest interval obeyed, whatever a tracker says.
    pub interval_ceiling: Duration,
    /// Backoff after a tracker's first failure; doubles per further failure.
    pub retry_base: Duration,
    /// Longest backoff.
    pub retry_max: Duration,
    /// How long `stopped` announces may take before the announcer gives up on them.
    pub stop_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            udp_timeout_base: Duration::from_secs(15),
            udp_retransmits_max: 2,
            connection_id_lifetime: Duration::from_secs(60),
            http_timeout: Duration::from_secs(30),
            interval_default: Duration::from_secs(30 * 60),
            interval_floor: Duration::from_secs(60),
            interval_ceiling: Duration::from_secs(2 * 3600),
            retry_base: Duration::from_secs(60),
            retry_max: Duration::from_secs(3600),
            stop_timeout: Duration::from_secs(5),
        }
    }
}

/// What the announcer announces.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ClientConfig {
    /// The swarm.
    pub info_hash: InfoHash,
    /// Our peer id.
    pub peer_id: PeerId,
    /// The port we accept peers on.
    pub port: u16,
    /// Peers wanted per announce; `None` leaves it to the tracker.
    pub numwant: Option<u32>,
    /// Timers.
    pub timing: Timing,
}

/// The transfer counters an announce reports, read by the driver when it sends.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct AnnounceProgress {
    /// Bytes uploaded since `started`.
    pub uploaded: u64,
    /// Bytes downloaded since `started`.
    pub downloaded: u64,
    /// Bytes still missing (zero for a seeder).
    pub left: u64,
}

/// A tracker: its index in the flattened tier list as given (duplicates dropped).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct TrackerId(pub usize);

/// One transaction, as the driver refers to it when reporting how an HTTP request went.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct RequestId(pub u64);

/// Something for the driver to send.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Transmit {
    /// The transaction; HTTP results and transport failures are reported against it.
    pub request: RequestId,
    /// The tracker it goes to.
    pub tracker: TrackerId,
    /// The event this announce carries.
    pub event: Event,
    /// What to send.
    pub payload: Payload,
}

/// The bytes or request of a [`Transmit`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Payload {
    /// A datagram for `host:port`; answers come back through [`Announcer::handle_udp`].
    Udp {
        /// DNS name or IP address.
        host: String,
        /// UDP port.
        port: u16,
        /// The datagram.
        packet: Vec<u8>,
    },
    /// A `GET` of this URL (query included); the answer comes back through
    /// [`Announcer::handle_http`].
    Http(TrackerUrl),
}

/// Why one announce to one tracker did not succeed, when the announcer itself can tell.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum Fault {
    /// The URL is not an `http`, `https` or `udp` tracker URL this client can use.
    #[error("unsupported tracker URL")]
    UnsupportedUrl,
    /// No answer in time (UDP after every retransmission, HTTP after the timeout).
    #[error("tracker did not answer in time")]
    Timeout,
    /// An HTTP status other than 2xx, without a `failure reason`.
    #[error("HTTP status {0}")]
    HttpStatus(u16),
    /// An answer that is not a valid response.
    #[error("malformed response: {0}")]
    Malformed(TrackerError),
}

/// What the announcer reports to its user.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ClientEvent {
    /// A tracker gave peers.
    Peers {
        /// Which tracker.
        tracker: TrackerId,
        /// The peers, as given (possibly including ourselves).
        peers: Vec<SocketAddr>,
    },
    /// A tracker answered with a `warning message`.
    Warning {
        /// Which tracker.
        tracker: TrackerId,
        /// The message.
        message: String,
    },
    /// A tracker refused the announce (`failure reason`, or a UDP error response).
    Failure {
        /// Which tracker.
        tracker: TrackerId,
        /// The reason it gave.
        reason: String,
    },
    /// An announce failed for a reason the announcer detected itself.
    Error {
        /// Which tracker.
        tracker: TrackerId,
        /// What went wrong.
        fault: Fault,
    },
}

/// One tracker's state, for display.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TrackerStatus {
    /// The tracker.
    pub tracker: TrackerId,
    /// Its URL as given.
    pub url: String,
    /// Its tier (0 first).
    pub tier: usize,
    /// When it last answered an announce.
    pub last_announce: Option<Instant>,
    /// When it is next due: the regular re-announce for the tracker that answered last, the
    /// end of the backoff for one that failed.
    pub next_announce: Option<Instant>,
    /// Seeders it last reported.
    pub seeders: Option<u32>,
    /// Leechers it last reported.
    pub leechers: Option<u32>,
    /// What went wrong last, cleared by an answer.
    pub last_error: Option<String>,
    /// The warning in its last answer.
    pub warning: Option<String>,
    /// Failures since its last answer.
    pub failures: u32,
    /// A transaction is in flight to it.
    pub announcing: bool,
}
