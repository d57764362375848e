//! The per-torrent announce state machine, sans-IO in the quinn style: the driver feeds it
//! datagrams, HTTP answers and the time, and drains transmits, events and the next deadline.
//!
//! Invariants: outside of stopping, at most one transaction is in flight, to the first
//! eligible tracker in tier order (BEP 12: tiers shuffled once, a tracker that answers moves
//! to the front of its tier); every transaction ends — answer, refusal, driver-reported
//! failure or timeout — and every waiting state has a deadline, so nothing waits forever.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::http::{parse_announce_response, HttpReply, RESPONSE_PEERS_MAX};
use super::model::{
    AnnounceProgress, ClientConfig, ClientEvent, Fault, RequestId, Timing, TrackerId,
    TrackerStatus, Transmit, EVENTS_QUEUE_MAX, TRACKERS_MAX, UDP_RETRANSMITS_MAX,
};
use super::slot::{Slot, Step, Txn};
use super::udp::{parse_response, response_transaction_id, Expect};
use crate::error::TrackerError;
use crate::types::Event;
use crate::udp::{Response, TransactionId};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// No usable tracker: nothing will ever be sent.
    Idle,
    /// The next announce starts at this instant.
    Waiting(Instant),
    /// One announce is in flight, to this slot.
    Busy(usize),
    /// `stopped` announces are in flight until this deadline.
    Stopping(Instant),
    /// Done.
    Stopped,
}

/// A successful answer, whichever protocol carried it.
struct Answer {
    interval_s: Option<u32>,
    min_interval_s: Option<u32>,
    seeders: Option<u32>,
    leechers: Option<u32>,
    peers: Vec<SocketAddr>,
    warning: Option<String>,
    tracker_id: Option<Vec<u8>>,
}

/// The announce state machine of one torrent.
#[derive(Debug)]
pub struct Announcer {
    config: ClientConfig,
    slots: Vec<Slot>,
    /// Slot indices per tier, in the order they are tried.
    tiers: Vec<Vec<usize>>,
    phase: Phase,
    rng: SmallRng,
    key: u32,
    next_request: u64,
    events: VecDeque<ClientEvent>,
    completed_pending: bool,
    /// The slot that answered last, and when.
    last_success: Option<(usize, Instant)>,
}

impl Announcer {
    /// An announcer for `tiers` of tracker URLs (BEP 12; a single `announce` URL is one tier of
    /// one). Each tier is shuffled with `rng`; the first announce is due at `now`. Unusable
    /// URLs are reported once as [`Fault::UnsupportedUrl`] and never tried.
    pub fn new(
        config: ClientConfig,
        tiers: &[Vec<String>],
        now: Instant,
        rng: &mut impl Rng,
    ) -> Self {
        let mut rng = SmallRng::from_rng(rng).unwrap_or_else(|_| SmallRng::seed_from_u64(0));
        let mut slots: Vec<Slot> = Vec::new();
        let mut tier_lists = Vec::new();
        for (tier, urls) in tiers.iter().enumerate() {
            let mut list = Vec::new();
            for url in urls {
                if slots.len() < TRACKERS_MAX && !slots.iter().any(|s| &s.url == url) {
                    list.push(slots.len());
                    slots.push(Slot::new(url.clone(), tier));
                }
            }
            list.shuffle(&mut rng);
            tier_lists.push(list);
        }
        let mut config = config;
        config.timing.udp_retransmits_max =
            config.timing.udp_retransmits_max.min(UDP_RETRANSMITS_MAX);
        let mut this = Self {
            config,
            phase: if slots.iter().any(|s| s.parsed.is_some()) {
                Phase::Waiting(now)
            } else {
                Phase::Idle
            },
            key: rng.gen(),
            slots,
            tiers: tier_lists,
            rng,
            next_request: 0,
            events: VecDeque::new(),
            completed_pending: false,
            last_success: None,
        };
        for i in 0..this.slots.len() {
            if this.slots[i].parsed.is_none() {
                this.slots[i].last_error = Some(Fault::UnsupportedUrl.to_string());
                this.push_event(ClientEvent::Error {
                    tracker: TrackerId(i),
                    fault: Fault::UnsupportedUrl,
                });
            }
        }
        this
    }

    /// The URL of a tracker, as given.
    #[must_use]
    pub fn url(&self, tracker: TrackerId) -> Option<&str> {
        self.slots.get(tracker.0).map(|s| s.url.as_str())
    }

    /// The next thing to send, if any; call until `None` after every input. `progress` is
    /// what the announce reports. An announce that is due by `now` starts here, without
    /// waiting for [`Announcer::handle_timeout`].
    pub fn poll_transmit(&mut self, now: Instant, progress: AnnounceProgress) -> Option<Transmit> {
        if let Phase::Waiting(at) = self.phase {
            if at <= now {
                self.start_cycle(now);
            }
        }
        let i = self
            .slots
            .iter()
            .position(|s| s.txn.is_some_and(|t| t.due))?;
        let completed_pending = self.completed_pending;
        let timing = self.config.timing;
        let slot = &mut self.slots[i];
        let mut txn = slot.txn?;
        let payload = slot.payload(&txn, &self.config, self.key, progress)?;
        txn.due = false;
        txn.after_completion |= completed_pending;
        txn.deadline = now + step_timeout(&timing, txn.step, txn.attempt);
        slot.txn = Some(txn);
        Some(Transmit {
            request: txn.request,
            tracker: TrackerId(i),
            event: txn.event,
            payload,
        })
    }

    /// The next event for the user, if any.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// When [`Announcer::handle_timeout`] should next be called; `None` when nothing will
    /// ever happen without an input.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let phase = match self.phase {
            Phase::Waiting(at) | Phase::Stopping(at) => Some(at),
            Phase::Idle | Phase::Busy(_) | Phase::Stopped => None,
        };
        let txns = self
            .slots
            .iter()
            .filter_map(|s| s.txn.filter(|t| !t.due).map(|t| t.deadline));
        phase.into_iter().chain(txns).min()
    }

    /// Acts on the time: starts a due announce, retransmits or gives up on unanswered ones.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Phase::Stopping(deadline) = self.phase {
            if now >= deadline {
                for slot in &mut self.slots {
                    slot.txn = None;
                }
                self.phase = Phase::Stopped;
                return;
            }
        }
        for i in 0..self.slots.len() {
            if self.slots[i]
                .txn
                .is_some_and(|t| !t.due && t.deadline <= now)
            {
                self.expire(i, now);
            }
        }
        if let Phase::Waiting(at) = self.phase {
            if now >= at {
                self.start_cycle(now);
            }
        }
    }

    /// A datagram from `from`; anything that answers no transaction in flight is ignored.
    pub fn handle_udp(&mut self, now: Instant, from: SocketAddr, packet: &[u8]) {
        let Some(tid) = response_transaction_id(packet) else {
            return;
        };
        let Some(i) = self.find(|t| t.udp_tid() == Some(tid)) else {
            return;
        };
        let Some(txn) = self.slots[i].txn else {
            return;
        };
        let expect = match txn.step {
            Step::UdpConnect(_) => Expect::Connect,
            _ => Expect::Announce,
        };
        match parse_response(packet, tid, expect, from.is_ipv6()) {
            Err(e) => self.fail(i, now, Some(Fault::Malformed(e))),
            Ok(Response::Connect { connection_id, .. }) => {
                let tid = TransactionId(self.rng.gen());
                let slot = &mut self.slots[i];
                slot.connection = Some((connection_id, now));
                slot.txn = Some(Txn {
                    step: Step::UdpAnnounce(tid, connection_id),
                    attempt: 0,
                    due: true,
                    ..txn
                });
            }
            Ok(Response::Announce {
                interval_s,
                leechers,
                seeders,
                peers,
                ..
            }) => {
                let answer = Answer {
                    interval_s: Some(interval_s),
                    min_interval_s: None,
                    seeders: Some(seeders),
                    leechers: Some(leechers),
                    peers: peers.iter().take(RESPONSE_PEERS_MAX).collect(),
                    warning: None,
                    tracker_id: None,
                };
                self.succeed(i, now, answer);
            }
            Ok(Response::Error { message, .. }) => {
                self.slots[i].connection = None;
                self.refuse(i, now, String::from_utf8_lossy(message).into_owned());
            }
            Ok(Response::Scrape { .. }) => {
                let fault = Fault::Malformed(TrackerError::ResponseField("action"));
                self.fail(i, now, Some(fault));
            }
        }
    }

    /// The HTTP answer to `request`: its status code and (size-capped) body.
    pub fn handle_http(&mut self, now: Instant, request: RequestId, status: u16, body: &[u8]) {
        let Some(i) = self.find(|t| t.request == request && t.step == Step::Http) else {
            return;
        };
        let parsed = parse_announce_response(body);
        if !(200..300).contains(&status) {
            match parsed {
                Ok(HttpReply::Failure(reason)) => self.refuse(i, now, reason),
                _ => self.fail(i, now, Some(Fault::HttpStatus(status))),
            }
            return;
        }
        match parsed {
            Err(e) => self.fail(i, now, Some(Fault::Malformed(e))),
            Ok(HttpReply::Failure(reason)) => self.refuse(i, now, reason),
            Ok(HttpReply::Announce(a)) => {
                let answer = Answer {
                    interval_s: a.interval_s,
                    min_interval_s: a.min_interval_s,
                    seeders: a.complete,
                    leechers: a.incomplete,
                    peers: a.peers,
                    warning: a.warning,
                    tracker_id: a.tracker_id,
                };
                self.succeed(i, now, answer);
            }
        }
    }

    /// The driver could not reach the tracker of `request` (DNS, connect, TLS, I/O, a bad
    /// HTTP framing): the transaction fails, `description` is kept for display. Returns
    /// whether `request` was still in flight (a late report of an abandoned one is not news).
    pub fn handle_unreachable(
        &mut self,
        now: Instant,
        request: RequestId,
        description: &str,
    ) -> bool {
        let Some(i) = self.find(|t| t.request == request) else {
            return false;
        };
        self.slots[i].last_error = Some(description.to_owned());
        self.fail(i, now, None);
        true
    }

    /// The download finished: a `completed` announce goes out now. Not to be called for a
    /// torrent that was complete when it started (BEP 3).
    pub fn completed(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Stopping(_) | Phase::Stopped) {
            return;
        }
        self.completed_pending = true;
        if let Phase::Waiting(at) = self.phase {
            self.phase = Phase::Waiting(at.min(now));
        }
    }

    /// Asks for an announce soon: now, or when the last tracker's `min interval` allows.
    pub fn reannounce(&mut self, now: Instant) {
        if let Phase::Waiting(at) = self.phase {
            let allowed = self
                .last_success
                .map_or(now, |(i, t)| t + self.slots[i].min_interval)
                .max(now);
            self.phase = Phase::Waiting(at.min(allowed));
        }
    }

    /// Leaves the swarm: `stopped` goes to every tracker that acknowledged `started` (or may
    /// have: one in flight), bounded by [`Timing::stop_timeout`]; then the announcer is done.
    pub fn stop(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Stopping(_) | Phase::Stopped) {
            return;
        }
        let in_flight = match self.phase {
            Phase::Busy(i) => self.slots[i]
                .txn
                .filter(|t| t.event == Event::Started && !(t.due && t.attempt == 0))
                .map(|_| i),
            _ => None,
        };
        let mut any = false;
        for i in 0..self.slots.len() {
            self.slots[i].txn = None;
            if self.slots[i].started || in_flight == Some(i) {
                self.slots[i].txn = Some(self.new_txn(i, Event::Stopped, now));
                any = true;
            }
        }
        self.phase = if any {
            Phase::Stopping(now + self.config.timing.stop_timeout)
        } else {
            Phase::Stopped
        };
    }

    /// Whether the announcer is done (after [`Announcer::stop`]) and can be dropped.
    #[must_use]
    pub fn is_stopped(&self) -> bool {
        self.phase == Phase::Stopped
    }

    /// Every tracker's state, in the order they are tried.
    #[must_use]
    pub fn status(&self) -> Vec<TrackerStatus> {
        let next_regular = match (self.phase, self.last_success) {
            (Phase::Waiting(at), Some((i, _))) => Some((i, at)),
            _ => None,
        };
        self.tiers
            .iter()
            .flatten()
            .filter_map(|&i| {
                let s = self.slots.get(i)?;
                let next_announce = match next_regular {
                    Some((j, at)) if j == i => Some(at),
                    _ => s.retry_at,
                };
                Some(TrackerStatus {
                    tracker: TrackerId(i),
                    url: s.url.clone(),
                    tier: s.tier,
                    last_announce: s.last_announce,
                    next_announce,
                    seeders: s.seeders,
                    leechers: s.leechers,
                    last_error: s.last_error.clone(),
                    warning: s.warning.clone(),
                    failures: s.fails,
                    announcing: s.txn.is_some(),
                })
            })
            .collect()
    }
}

impl Announcer {
    fn find(&self, pred: impl Fn(&Txn) -> bool) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.txn.as_ref().is_some_and(&pred))
    }

    fn push_event(&mut self, event: ClientEvent) {
        if self.events.len() < EVENTS_QUEUE_MAX {
            self.events.push_back(event);
        }
    }

    fn new_txn(&mut self, i: usize, event: Event, now: Instant) -> Txn {
        let lifetime = self.config.timing.connection_id_lifetime;
        let slot = &self.slots[i];
        let udp = slot
            .parsed
            .as_ref()
            .is_some_and(|u| u.scheme() == super::url::Scheme::Udp);
        let step = if udp {
            let tid = TransactionId(self.rng.gen());
            match slot.live_connection(now, lifetime) {
                Some(cid) => Step::UdpAnnounce(tid, cid),
                None => Step::UdpConnect(tid),
            }
        } else {
            Step::Http
        };
        self.next_request += 1;
        Txn {
            request: RequestId(self.next_request),
            event,
            step,
            attempt: 0,
            due: true,
            deadline: now,
            after_completion: false,
        }
    }

    /// Starts an announce to the first eligible tracker in tier order, or waits for the
    /// first backoff to end.
    fn start_cycle(&mut self, now: Instant) {
        let pick = self
            .tiers
            .iter()
            .flatten()
            .copied()
            .find(|&i| self.slots.get(i).is_some_and(|s| s.eligible(now)));
        let Some(i) = pick else {
            let earliest = self
                .slots
                .iter()
                .filter(|s| s.parsed.is_some())
                .filter_map(|s| s.retry_at)
                .min();
            self.phase = earliest.map_or(Phase::Idle, |t| Phase::Waiting(t.max(now)));
            return;
        };
        let event = if !self.slots[i].started {
            Event::Started
        } else if self.completed_pending {
            Event::Completed
        } else {
            Event::None
        };
        self.slots[i].txn = Some(self.new_txn(i, event, now));
        self.phase = Phase::Busy(i);
    }

    /// A send of slot `i` timed out: retransmit (UDP, reconnecting if the connection id
    /// expired) or give up.
    fn expire(&mut self, i: usize, now: Instant) {
        let timing = self.config.timing;
        let Some(mut txn) = self.slots[i].txn else {
            return;
        };
        if txn.step == Step::Http || txn.attempt >= timing.udp_retransmits_max {
            self.fail(i, now, Some(Fault::Timeout));
            return;
        }
        txn.attempt += 1;
        txn.due = true;
        if let Step::UdpAnnounce(..) = txn.step {
            let slot = &self.slots[i];
            if slot
                .live_connection(now, timing.connection_id_lifetime)
                .is_none()
            {
                txn.step = Step::UdpConnect(TransactionId(self.rng.gen()));
            }
        }
        self.slots[i].txn = Some(txn);
    }

    /// Slot `i`'s transaction failed: back off from this tracker and try the next one.
    fn fail(&mut self, i: usize, now: Instant, fault: Option<Fault>) {
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        slot.txn = None;
        if let Some(fault) = fault {
            slot.last_error = Some(fault.to_string());
            self.push_event(ClientEvent::Error {
                tracker: TrackerId(i),
                fault,
            });
        }
        self.after_failure(i, now);
    }

    /// Slot `i`'s tracker refused: report its reason, then as for a failure.
    fn refuse(&mut self, i: usize, now: Instant, reason: String) {
        if let Some(slot) = self.slots.get_mut(i) {
            slot.txn = None;
            slot.last_error = Some(reason.clone());
        }
        self.push_event(ClientEvent::Failure {
            tracker: TrackerId(i),
            reason,
        });
        self.after_failure(i, now);
    }

    fn after_failure(&mut self, i: usize, now: Instant) {
        if let Phase::Stopping(_) = self.phase {
            self.finish_stop_if_done();
            return;
        }
        let timing = self.config.timing;
        let slot = &mut self.slots[i];
        slot.fails = slot.fails.saturating_add(1);
        let doublings = slot.fails.saturating_sub(1).min(16);
        let backoff = timing
            .retry_base
            .saturating_mul(1 << doublings)
            .min(timing.retry_max);
        slot.retry_at = Some(now + backoff);
        if self.phase == Phase::Busy(i) {
            self.start_cycle(now);
        }
    }

    /// Slot `i`'s tracker answered.
    fn succeed(&mut self, i: usize, now: Instant, answer: Answer) {
        let timing = self.config.timing;
        let slot = &mut self.slots[i];
        let Some(txn) = slot.txn.take() else {
            return;
        };
        slot.fails = 0;
        slot.retry_at = None;
        slot.last_announce = Some(now);
        slot.last_error = None;
        slot.seeders = answer.seeders.or(slot.seeders);
        slot.leechers = answer.leechers.or(slot.leechers);
        if answer.tracker_id.is_some() {
            slot.tracker_id = answer.tracker_id;
        }
        slot.warning.clone_from(&answer.warning);
        slot.started = txn.event != Event::Stopped;
        let min_interval = answer.min_interval_s.map_or(Duration::ZERO, secs);
        slot.min_interval = min_interval.min(timing.interval_ceiling);
        if let Some(message) = answer.warning {
            self.push_event(ClientEvent::Warning {
                tracker: TrackerId(i),
                message,
            });
        }
        if txn.event == Event::Stopped {
            self.finish_stop_if_done();
            return;
        }
        if txn.event == Event::Completed || (txn.event == Event::Started && txn.after_completion) {
            self.completed_pending = false;
        }
        self.promote(i);
        if !answer.peers.is_empty() {
            self.push_event(ClientEvent::Peers {
                tracker: TrackerId(i),
                peers: answer.peers,
            });
        }
        let interval = answer
            .interval_s
            .map_or(timing.interval_default, secs)
            .max(min_interval)
            .max(timing.interval_floor)
            .min(timing.interval_ceiling);
        let next = if self.completed_pending {
            now
        } else {
            now + interval
        };
        self.phase = Phase::Waiting(next);
        self.last_success = Some((i, now));
    }

    /// BEP 12: a tracker that answered moves to the front of its tier.
    fn promote(&mut self, i: usize) {
        for tier in &mut self.tiers {
            if let Some(pos) = tier.iter().position(|&j| j == i) {
                tier[..=pos].rotate_right(1);
            }
        }
    }

    fn finish_stop_if_done(&mut self) {
        if self.slots.iter().all(|s| s.txn.is_none()) {
            self.phase = Phase::Stopped;
        }
    }
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}

/// How long one send of `step` waits: HTTP's timeout, or BEP 15's `base·2^attempt`.
fn step_timeout(timing: &Timing, step: Step, attempt: u32) -> Duration {
    match step {
        Step::Http => timing.http_timeout,
        Step::UdpConnect(_) | Step::UdpAnnounce(..) => timing
            .udp_timeout_base
            .saturating_mul(1 << attempt.min(UDP_RETRANSMITS_MAX)),
    }
}
