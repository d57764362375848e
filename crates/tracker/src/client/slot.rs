//! One tracker as the announcer sees it: what it last said, how often it failed, the UDP
//! connection id it handed out, and the one transaction in flight to it — and how that
//! transaction turns into bytes to send.

use std::time::{Duration, Instant};

use super::model::{AnnounceProgress, ClientConfig, Payload, RequestId};
use super::udp::{emit_announce, emit_connect};
use super::url::{AnnounceParams, Scheme, TrackerUrl};
use crate::types::Event;
use crate::udp::{AnnounceRequest, ConnectionId, TransactionId};

/// Where a transaction is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Step {
    /// An HTTP(S) announce, handed to the driver.
    Http,
    /// Waiting for a UDP connect response.
    UdpConnect(TransactionId),
    /// Waiting for a UDP announce response.
    UdpAnnounce(TransactionId, ConnectionId),
}

/// One announce to one tracker, from first send to answer or give-up.
#[derive(Clone, Copy, Debug)]
pub(super) struct Txn {
    pub(super) request: RequestId,
    pub(super) event: Event,
    pub(super) step: Step,
    /// Retransmissions of the current step so far (the `n` of BEP 15's 15·2^n).
    pub(super) attempt: u32,
    /// Needs (re)sending: `poll_transmit` will hand it out.
    pub(super) due: bool,
    /// When the current send times out (meaningless while `due`).
    pub(super) deadline: Instant,
    /// The `completed` call came before this was sent, so its `left` already said so.
    pub(super) after_completion: bool,
}

impl Txn {
    /// The UDP transaction id this transaction waits on, if any.
    pub(super) fn udp_tid(&self) -> Option<TransactionId> {
        match self.step {
            Step::Http => None,
            Step::UdpConnect(t) | Step::UdpAnnounce(t, _) => Some(t),
        }
    }
}

/// Everything known about one tracker.
#[derive(Clone, Debug)]
pub(super) struct Slot {
    pub(super) url: String,
    /// `None` for a URL this client cannot use; such a tracker is never announced to.
    pub(super) parsed: Option<TrackerUrl>,
    pub(super) tier: usize,
    /// The tracker acknowledged our `started` (and has not seen `stopped` since).
    pub(super) started: bool,
    /// A UDP connection id and when it arrived.
    pub(super) connection: Option<(ConnectionId, Instant)>,
    /// Failures since the last success.
    pub(super) fails: u32,
    /// Not to be tried before this, after failures.
    pub(super) retry_at: Option<Instant>,
    pub(super) tracker_id: Option<Vec<u8>>,
    pub(super) min_interval: Duration,
    pub(super) last_announce: Option<Instant>,
    pub(super) seeders: Option<u32>,
    pub(super) leechers: Option<u32>,
    pub(super) last_error: Option<String>,
    pub(super) warning: Option<String>,
    pub(super) txn: Option<Txn>,
}

impl Slot {
    pub(super) fn new(url: String, tier: usize) -> Self {
        Self {
            parsed: TrackerUrl::parse(&url),
            url,
            tier,
            started: false,
            connection: None,
            fails: 0,
            retry_at: None,
            tracker_id: None,
            min_interval: Duration::ZERO,
            last_announce: None,
            seeders: None,
            leechers: None,
            last_error: None,
            warning: None,
            txn: None,
        }
    }

    /// May be announced to at `now`: a usable URL, out of any failure backoff, idle.
    pub(super) fn eligible(&self, now: Instant) -> bool {
        self.parsed.is_some() && self.retry_at.is_none_or(|t| t <= now) && self.txn.is_none()
    }

    /// The UDP connection id, if it is still valid at `now`.
    pub(super) fn live_connection(&self, now: Instant, lifetime: Duration) -> Option<ConnectionId> {
        self.connection
            .filter(|&(_, got)| now.saturating_duration_since(got) < lifetime)
            .map(|(id, _)| id)
    }

    /// The payload for this slot's transaction at this step.
    pub(super) fn payload(
        &self,
        txn: &Txn,
        config: &ClientConfig,
        key: u32,
        progress: AnnounceProgress,
    ) -> Option<Payload> {
        let url = self.parsed.as_ref()?;
        let numwant = if txn.event == Event::Stopped {
            Some(0)
        } else {
            config.numwant
        };
        let mut packet = Vec::new();
        match (url.scheme(), txn.step) {
            (Scheme::Http | Scheme::Https, Step::Http) => {
                let params = AnnounceParams {
                    info_hash: &config.info_hash,
                    peer_id: &config.peer_id,
                    port: config.port,
                    uploaded: progress.uploaded,
                    downloaded: progress.downloaded,
                    left: progress.left,
                    event: txn.event,
                    numwant,
                    key,
                    tracker_id: self.tracker_id.as_deref(),
                };
                return Some(Payload::Http(url.with_announce_query(&params)));
            }
            (Scheme::Udp, Step::UdpConnect(tid)) => emit_connect(&mut packet, tid),
            (Scheme::Udp, Step::UdpAnnounce(tid, cid)) => {
                let request = AnnounceRequest {
                    connection_id: cid,
                    transaction_id: tid,
                    info_hash: config.info_hash,
                    peer_id: config.peer_id,
                    downloaded: progress.downloaded,
                    left: progress.left,
                    uploaded: progress.uploaded,
                    event: txn.event,
                    ip: None,
                    key,
                    num_want: numwant.map_or(-1, |n| i32::try_from(n).unwrap_or(i32::MAX)),
                    port: config.port,
                };
                emit_announce(&mut packet, &request, url.path_and_query().as_bytes());
            }
            _ => return None,
        }
        Some(Payload::Udp {
            host: url.host().to_owned(),
            port: url.port(),
            packet,
        })
    }
}
