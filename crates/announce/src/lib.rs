//! The tracker client of one torrent, on tokio: a thin driver around the sans-IO
//! [`bitswarm_tracker::client::Announcer`]. It owns the sockets (one UDP socket per address
//! family, one TCP or TLS connection per HTTP announce), resolves names, keeps the timers, and
//! turns what the state machine decides into datagrams and `GET`s — and answers back into
//! its inputs. Which tracker to ask, when, with which event, and what an answer means is
//! decided there, not here.
//!
//! [`Announcer::spawn`] starts the driver as a task and returns an [`AnnounceHandle`] (to
//! report completion, force a re-announce, read per-tracker [`TrackerStatus`], and stop with
//! a bounded `stopped` announce) and a channel of [`AnnounceEvent`]s: peers to connect to,
//! and tracker warnings, refusals and errors to show the user.
//!
//! Every wait is bounded: HTTP exchanges and name lookups run under the state machine's HTTP
//! timeout, UDP under BEP 15's retransmit schedule, `stop` under its own timeout. This crate
//! knows nothing of peers or pieces: it hands out addresses, and its user connects to them.

mod driver;
mod error;
pub mod http;
mod udp;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bitswarm_tracker::client::ClientConfig;
use bitswarm_tracker::{InfoHash, PeerId};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use bitswarm_tracker::client::{AnnounceProgress, Timing, TrackerId, TrackerStatus};
pub use bitswarm_tracker::TrackerError;
pub use error::AnnounceError;
pub use http::{default_tls_config, tls_config_with_roots};
pub use tokio_rustls::rustls;

/// How the driver learns the transfer counters, read at each announce.
pub type ProgressFn = Arc<dyn Fn() -> AnnounceProgress + Send + Sync>;

/// Events buffered for the user; more are dropped (with a log line) until it reads them.
pub const EVENTS_CHANNEL_LEN: usize = 256;

/// What to announce, where, and how.
#[derive(Clone, Debug)]
pub struct AnnounceConfig {
    /// Tracker URLs in tiers (BEP 12); a torrent with only `announce` is one tier of one.
    pub tiers: Vec<Vec<String>>,
    /// The swarm.
    pub info_hash: [u8; 20],
    /// Our peer id.
    pub peer_id: [u8; 20],
    /// The port we accept peers on.
    pub port: u16,
    /// Peers wanted per announce; `None` leaves it to the tracker.
    pub numwant: Option<u32>,
    /// Timers (BEP 15 retransmits, HTTP timeout, interval bounds, backoff, stop timeout).
    pub timing: Timing,
    /// TLS for `https://` trackers; `None` trusts Mozilla's roots ([`default_tls_config`]).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Local address of the IPv4 UDP socket.
    pub udp_bind_v4: SocketAddr,
    /// Local address of the IPv6 UDP socket.
    pub udp_bind_v6: SocketAddr,
    /// The HTTP `User-Agent`.
    pub user_agent: String,
}

impl AnnounceConfig {
    /// A configuration with default timing, any local address, and the tracker's default
    /// number of peers.
    #[must_use]
    pub fn new(tiers: Vec<Vec<String>>, info_hash: [u8; 20], peer_id: [u8; 20], port: u16) -> Self {
        Self {
            tiers,
            info_hash,
            peer_id,
            port,
            numwant: None,
            timing: Timing::default(),
            tls: None,
            udp_bind_v4: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            udp_bind_v6: SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
            user_agent: concat!("bitswarm/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// What the announcer tells its user.
#[derive(Debug)]
pub enum AnnounceEvent {
    /// Peers from a tracker (possibly including ourselves, as many trackers do).
    Peers(Vec<SocketAddr>),
    /// A tracker's `warning message`.
    Warning {
        /// The tracker's URL.
        tracker: String,
        /// The message.
        message: String,
    },
    /// A tracker refused the announce (`failure reason`, UDP error).
    Failure {
        /// The tracker's URL.
        tracker: String,
        /// Its reason.
        reason: String,
    },
    /// An announce failed: unreachable, timed out, or a malformed answer.
    Error {
        /// The tracker's URL.
        tracker: String,
        /// What went wrong.
        error: AnnounceError,
    },
}

/// Starts announcers.
#[derive(Debug)]
pub struct Announcer;

impl Announcer {
    /// Starts announcing `config.info_hash` on the current tokio runtime; `progress` is read
    /// at each announce. The first announce (`started`) goes out at once. Must be called
    /// within a tokio runtime.
    #[must_use]
    pub fn spawn(
        config: AnnounceConfig,
        progress: ProgressFn,
    ) -> (AnnounceHandle, mpsc::Receiver<AnnounceEvent>) {
        let (events_tx, events_rx) = mpsc::channel(EVENTS_CHANNEL_LEN);
        let (control_tx, control_rx) = watch::channel(Control::default());
        let (stats_tx, stats_rx) = watch::channel(Vec::new());
        let stop_timeout = config.timing.stop_timeout;
        let sm_config = ClientConfig {
            info_hash: InfoHash::from_bytes(config.info_hash),
            peer_id: PeerId(config.peer_id),
            port: config.port,
            numwant: config.numwant,
            timing: config.timing,
        };
        let driver =
            driver::Driver::new(config, sm_config, progress, events_tx, stats_tx, control_rx);
        let task = tokio::spawn(driver.run());
        let handle = AnnounceHandle {
            control: control_tx,
            stats: stats_rx,
            task,
            stop_timeout,
        };
        (handle, events_rx)
    }
}

/// What the handle asks of the driver: latest state wins, so nothing queues up.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(crate) struct Control {
    pub(crate) completed: bool,
    /// Bumped by each `reannounce`.
    pub(crate) reannounce: u64,
    pub(crate) stop: bool,
}

/// Controls a running announcer. Dropping it stops the announcer as [`AnnounceHandle::stop`]
/// does, without waiting.
#[derive(Debug)]
pub struct AnnounceHandle {
    control: watch::Sender<Control>,
    stats: watch::Receiver<Vec<TrackerStatus>>,
    task: JoinHandle<()>,
    stop_timeout: Duration,
}

/// Time granted to the driver beyond its own stop timeout before it is aborted.
const STOP_GRACE: Duration = Duration::from_secs(1);

impl AnnounceHandle {
    /// The download finished: announce `completed` now (once).
    pub fn completed(&self) {
        self.control.send_modify(|c| c.completed = true);
    }

    /// Announce soon: now, or when the tracker's `min interval` allows.
    pub fn reannounce(&self) {
        self.control
            .send_modify(|c| c.reannounce = c.reannounce.wrapping_add(1));
    }

    /// Every tracker's state, in the order they are tried.
    #[must_use]
    pub fn stats(&self) -> Vec<TrackerStatus> {
        self.stats.borrow().clone()
    }

    /// Sends `stopped` to the trackers that know us and waits for them, at most the stop
    /// timeout of [`Timing`] (plus a second's grace, after which the task is aborted).
    pub async fn stop(self) {
        self.control.send_modify(|c| c.stop = true);
        let mut task = self.task;
        let wait = self.stop_timeout + STOP_GRACE;
        if tokio::time::timeout(wait, &mut task).await.is_err() {
            task.abort();
        }
    }
}
