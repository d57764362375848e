//! Peer addresses we may connect to (from trackers, DHT, PEX, the command line): deduplicated,
//! bounded, with retry back-off after failures, turned into `Connect` actions while the
//! torrent has room for more connections.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::action::Action;
use crate::torrent::Torrent;

/// Wait before reconnecting to a peer we were connected to.
const RECONNECT_DELAY: Duration = Duration::from_secs(60);
/// Back-off per failed attempt before the next one.
const RETRY_DELAY: Duration = Duration::from_secs(30);
/// The back-off grows with failures up to this many times `RETRY_DELAY`.
const RETRY_BACKOFF_MAX: u32 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Connecting,
    Connected,
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    state: State,
    failures: u32,
    next_attempt: Instant,
}

#[derive(Debug, Default)]
pub(crate) struct Candidates {
    max: usize,
    known: BTreeMap<SocketAddr, Candidate>,
}

impl Candidates {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            known: BTreeMap::new(),
        }
    }

    /// Known addresses (in any state).
    pub(crate) fn len(&self) -> usize {
        self.known.len()
    }

    /// Connection attempts in progress.
    pub(crate) fn connecting(&self) -> usize {
        self.known
            .values()
            .filter(|c| c.state == State::Connecting)
            .count()
    }

    pub(crate) fn add(&mut self, addr: SocketAddr, now: Instant) {
        if self.known.len() < self.max {
            self.known.entry(addr).or_insert(Candidate {
                state: State::Idle,
                failures: 0,
                next_attempt: now,
            });
        }
    }

    pub(crate) fn connected(&mut self, addr: SocketAddr) {
        if let Some(c) = self.known.get_mut(&addr) {
            c.state = State::Connected;
            c.failures = 0;
        }
    }

    pub(crate) fn disconnected(&mut self, addr: SocketAddr, now: Instant) {
        if let Some(c) = self.known.get_mut(&addr) {
            c.state = State::Idle;
            c.next_attempt = now + RECONNECT_DELAY;
        }
    }

    pub(crate) fn failed(&mut self, addr: SocketAddr, now: Instant, attempts_max: u32) {
        let Some(c) = self.known.get_mut(&addr) else {
            return;
        };
        c.failures += 1;
        if c.failures >= attempts_max {
            self.known.remove(&addr);
        } else {
            c.state = State::Idle;
            c.next_attempt = now + RETRY_DELAY * c.failures.min(RETRY_BACKOFF_MAX);
        }
    }

    pub(crate) fn remove_ip(&mut self, ip: IpAddr) {
        self.known.retain(|addr, _| addr.ip() != ip);
    }

    /// Up to `budget` idle addresses due for an attempt, marked as connecting.
    fn take_due(&mut self, now: Instant, budget: usize) -> Vec<SocketAddr> {
        // In address order (a `BTreeMap`), so a swarm replays from its seed.
        let due: Vec<SocketAddr> = self
            .known
            .iter()
            .filter(|(_, c)| c.state == State::Idle && c.next_attempt <= now)
            .map(|(addr, _)| *addr)
            .take(budget)
            .collect();
        for addr in &due {
            if let Some(c) = self.known.get_mut(addr) {
                c.state = State::Connecting;
            }
        }
        due
    }
}

impl Torrent {
    /// Asks for connections to due candidates while there is room.
    pub(crate) fn connect_more(&mut self) {
        let busy = self.keys.len() + self.candidates.connecting();
        let budget = self.config.connections_max.saturating_sub(busy);
        if budget == 0 || self.candidates.len() == 0 {
            return;
        }
        for addr in self.candidates.take_due(self.now, budget) {
            self.actions.push_back(Action::Connect { addr });
        }
    }
}
