//! The driver task: one loop that feeds the sans-IO announcer the time, datagrams, HTTP
//! results and the handle's requests, and carries out what it hands back. It owns all state;
//! HTTP exchanges and name lookups run as child tasks that only report back.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitswarm_tracker::client::{
    self, ClientConfig, ClientEvent, Payload, RequestId, TrackerId, TrackerStatus, Transmit,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::error::AnnounceError;
use crate::http::{self, default_tls_config};
use crate::udp::{self, Udp, DATAGRAM_LEN_MAX};
use crate::{AnnounceConfig, AnnounceEvent, Control, ProgressFn};

/// Most transmits carried out per loop turn; the state machine never asks for more than one
/// per tracker, so hitting this means a bug, and the rest wait a turn.
const TRANSMITS_PER_TURN_MAX: usize = 2 * client::TRACKERS_MAX;
/// Time a child task gets beyond the state machine's own timeout, so that the state machine
/// is the one that decides a tracker timed out.
const CHILD_GRACE: Duration = Duration::from_secs(1);

/// What a child task reports.
enum Job {
    Http {
        request: RequestId,
        tracker: TrackerId,
        result: Result<http::Response, AnnounceError>,
    },
    Resolved {
        tracker: TrackerId,
        result: Result<SocketAddr, AnnounceError>,
    },
}

/// A datagram waiting for its tracker's name to resolve.
struct Pending {
    request: RequestId,
    packet: Vec<u8>,
}

pub(crate) struct Driver {
    sm: client::Announcer,
    progress: ProgressFn,
    events: mpsc::Sender<AnnounceEvent>,
    stats: watch::Sender<Vec<TrackerStatus>>,
    control: watch::Receiver<Control>,
    control_seen: Control,
    control_open: bool,
    udp: Udp,
    http: Arc<http::Client>,
    child_timeout: Duration,
    jobs: JoinSet<Job>,
    resolving: HashMap<TrackerId, Pending>,
}

impl Driver {
    pub(crate) fn new(
        config: AnnounceConfig,
        sm_config: ClientConfig,
        progress: ProgressFn,
        events: mpsc::Sender<AnnounceEvent>,
        stats: watch::Sender<Vec<TrackerStatus>>,
        control: watch::Receiver<Control>,
    ) -> Self {
        let timing = sm_config.timing;
        let sm = client::Announcer::new(sm_config, &config.tiers, now(), &mut rand::thread_rng());
        let tls = config.tls.map_or_else(default_tls_config, Ok);
        let http = http::Client::new(tls, config.user_agent, timing.http_timeout);
        Self {
            sm,
            progress,
            events,
            stats,
            control,
            control_seen: Control::default(),
            control_open: true,
            udp: Udp::new(config.udp_bind_v4, config.udp_bind_v6),
            http: Arc::new(http),
            child_timeout: timing.http_timeout + CHILD_GRACE,
            jobs: JoinSet::new(),
            resolving: HashMap::new(),
        }
    }

    pub(crate) async fn run(mut self) {
        let mut buf4 = vec![0u8; DATAGRAM_LEN_MAX];
        let mut buf6 = vec![0u8; DATAGRAM_LEN_MAX];
        loop {
            self.flush(now()).await;
            if self.sm.is_stopped() {
                break;
            }
            let deadline = self.sm.poll_timeout();
            let (v4, v6) = (self.udp.v4.clone(), self.udp.v6.clone());
            tokio::select! {
                () = sleep_until(deadline) => self.sm.handle_timeout(now()),
                r = udp::recv(v4.as_deref(), &mut buf4) => self.on_datagram(r, &buf4),
                r = udp::recv(v6.as_deref(), &mut buf6) => self.on_datagram(r, &buf6),
                Some(joined) = self.jobs.join_next(), if !self.jobs.is_empty() => match joined {
                    Ok(job) => self.on_job(job).await,
                    Err(e) => tracing::warn!(error = %e, "announce child task failed"),
                },
                r = self.control.changed(), if self.control_open => self.on_control(r.is_ok()),
            }
        }
        self.flush(now()).await;
        tracing::debug!("announcer stopped");
    }

    /// Carries out every transmit, forwards every event, publishes the status.
    async fn flush(&mut self, now: Instant) {
        let progress = (self.progress)();
        for _ in 0..TRANSMITS_PER_TURN_MAX {
            let Some(t) = self.sm.poll_transmit(now, progress) else {
                break;
            };
            self.dispatch(t, now).await;
        }
        while let Some(event) = self.sm.poll_event() {
            let event = self.translate(event);
            if let Err(mpsc::error::TrySendError::Full(e)) = self.events.try_send(event) {
                tracing::warn!(event = ?e, "announce event dropped: receiver is not reading");
            }
        }
        let status = self.sm.status();
        self.stats.send_if_modified(|s| {
            let changed = *s != status;
            if changed {
                s.clone_from(&status);
            }
            changed
        });
    }

    async fn dispatch(&mut self, t: Transmit, now: Instant) {
        tracing::debug!(tracker = ?self.sm.url(t.tracker), event = ?t.event, "announce");
        match t.payload {
            Payload::Http(url) => {
                let (http, timeout) = (self.http.clone(), self.child_timeout);
                let (request, tracker) = (t.request, t.tracker);
                self.jobs.spawn(async move {
                    let result = tokio::time::timeout(timeout, http.get(url))
                        .await
                        .unwrap_or(Err(AnnounceError::Timeout));
                    Job::Http {
                        request,
                        tracker,
                        result,
                    }
                });
            }
            Payload::Udp { host, port, packet } => {
                if let Some(addr) = self.udp.cached(t.tracker, now) {
                    self.send_udp(t.tracker, t.request, addr, &packet).await;
                    return;
                }
                let pending = Pending {
                    request: t.request,
                    packet,
                };
                if self.resolving.insert(t.tracker, pending).is_some() {
                    return; // a lookup is already under way; it will send the newest packet
                }
                let (tracker, timeout) = (t.tracker, self.child_timeout);
                self.jobs.spawn(async move {
                    let result = tokio::time::timeout(timeout, udp::resolve(host, port))
                        .await
                        .unwrap_or(Err(AnnounceError::Timeout));
                    Job::Resolved { tracker, result }
                });
            }
        }
    }

    async fn send_udp(&mut self, tracker: TrackerId, request: RequestId, to: SocketAddr, p: &[u8]) {
        if let Err(e) = self.udp.send(to, p).await {
            self.unreachable(tracker, request, e);
        }
    }

    fn on_datagram(&mut self, received: std::io::Result<(usize, SocketAddr)>, buf: &[u8]) {
        match received {
            Ok((n, from)) if self.udp.is_tracker(from) => {
                let packet = buf.get(..n).unwrap_or_default();
                self.sm.handle_udp(now(), from, packet);
            }
            Ok((_, from)) => tracing::debug!(%from, "datagram from a stranger dropped"),
            // ICMP errors surface here on some systems; the retransmit timer deals with them.
            Err(e) => tracing::debug!(error = %e, "UDP receive"),
        }
    }

    async fn on_job(&mut self, job: Job) {
        let now = now();
        match job {
            Job::Http {
                request,
                tracker,
                result,
            } => match result {
                Ok(r) => self.sm.handle_http(now, request, r.status, &r.body),
                Err(e) => self.unreachable(tracker, request, e),
            },
            Job::Resolved { tracker, result } => {
                let Some(pending) = self.resolving.remove(&tracker) else {
                    return;
                };
                match result {
                    Ok(addr) => {
                        self.udp.remember(tracker, addr, now);
                        self.send_udp(tracker, pending.request, addr, &pending.packet)
                            .await;
                    }
                    Err(e) => self.unreachable(tracker, pending.request, e),
                }
            }
        }
    }

    /// A transport failure: the state machine moves on, the user hears why (unless the
    /// request was already given up on).
    fn unreachable(&mut self, tracker: TrackerId, request: RequestId, error: AnnounceError) {
        if self
            .sm
            .handle_unreachable(now(), request, &error.to_string())
        {
            let tracker = self.sm.url(tracker).unwrap_or_default().to_owned();
            let event = AnnounceEvent::Error { tracker, error };
            if self.events.try_send(event).is_err() {
                tracing::debug!("announce error event dropped");
            }
        }
    }

    fn on_control(&mut self, open: bool) {
        let now = now();
        if !open {
            // The handle is gone: leave the swarm politely, bounded by the stop timeout.
            self.control_open = false;
            self.sm.stop(now);
            return;
        }
        let c = *self.control.borrow_and_update();
        let seen = self.control_seen;
        if c.completed && !seen.completed {
            self.sm.completed(now);
        }
        if c.reannounce != seen.reannounce {
            self.sm.reannounce(now);
        }
        if c.stop && !seen.stop {
            self.sm.stop(now);
        }
        self.control_seen = c;
    }

    fn translate(&self, event: ClientEvent) -> AnnounceEvent {
        let url = |t: TrackerId| self.sm.url(t).unwrap_or_default().to_owned();
        match event {
            ClientEvent::Peers { peers, .. } => AnnounceEvent::Peers(peers),
            ClientEvent::Warning { tracker, message } => AnnounceEvent::Warning {
                tracker: url(tracker),
                message,
            },
            ClientEvent::Failure { tracker, reason } => AnnounceEvent::Failure {
                tracker: url(tracker),
                reason,
            },
            ClientEvent::Error { tracker, fault } => AnnounceEvent::Error {
                tracker: url(tracker),
                error: fault.into(),
            },
        }
    }
}

/// The time on tokio's clock (so that a paused test clock is obeyed), as a std `Instant`.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}
