//! Prometheus text metrics. Workers count into plain local integers and publish them once per
//! batch, so counting costs the hot path no shared-cache-line traffic per request.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use bitswarm_tracker::server::{Handled, Refusal};
use bitswarm_tracker::swarm::{Stored, TableStats};

/// Request kinds counted per protocol, in metric-label order.
const KINDS: [&str; 3] = ["connect", "announce", "scrape"];
/// Error kinds counted per protocol, in metric-label order.
const ERRORS: [&str; 6] = [
    "malformed",
    "connection_id",
    "access_denied",
    "full_scrape",
    "table_full",
    "io",
];

/// One worker's counts since it last published them.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LocalCounts {
    requests: [u64; KINDS.len()],
    errors: [u64; ERRORS.len()],
}

impl LocalCounts {
    /// Counts one handled request.
    pub(crate) fn record(&mut self, handled: Handled) {
        let (kind, error) = match handled {
            Handled::Connect => (Some(0), None),
            Handled::Announce(Stored::Full) => (Some(1), Some(4)),
            Handled::Announce(_) => (Some(1), None),
            Handled::Scrape => (Some(2), None),
            Handled::Refused(r) => (None, Some(refusal_index(r))),
        };
        if let Some(slot) = kind.and_then(|k| self.requests.get_mut(k)) {
            *slot += 1;
        }
        if let Some(slot) = error.and_then(|e| self.errors.get_mut(e)) {
            *slot += 1;
        }
    }

    /// Counts one failed socket operation.
    pub(crate) fn io_error(&mut self) {
        self.errors[5] += 1;
    }
}

/// Shared counters of one protocol.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    requests: [AtomicU64; KINDS.len()],
    errors: [AtomicU64; ERRORS.len()],
}

impl Counters {
    /// Adds a worker's local counts and zeroes them.
    pub(crate) fn publish(&self, local: &mut LocalCounts) {
        for (shared, n) in self.requests.iter().zip(local.requests) {
            if n > 0 {
                shared.fetch_add(n, Relaxed);
            }
        }
        for (shared, n) in self.errors.iter().zip(local.errors) {
            if n > 0 {
                shared.fetch_add(n, Relaxed);
            }
        }
        *local = LocalCounts::default();
    }

    fn requests(&self) -> [u64; KINDS.len()] {
        self.requests.each_ref().map(|a| a.load(Relaxed))
    }
}

/// Every metric the server exports.
#[derive(Debug, Default)]
pub struct Metrics {
    pub(crate) udp: Counters,
    pub(crate) http: Counters,
    pub(crate) expired_peers: AtomicU64,
    pub(crate) access_reloads_ok: AtomicU64,
    pub(crate) access_reloads_failed: AtomicU64,
    pub(crate) access_entries: AtomicU64,
    /// Requests per second over the last housekeeping tick: (udp, http) by kind.
    rates: Mutex<Rates>,
}

#[derive(Debug, Default)]
struct Rates {
    last: [[u64; KINDS.len()]; 2],
    per_second: [[f64; KINDS.len()]; 2],
}

impl Metrics {
    /// Updates the per-second rates from the counters, `elapsed_s` after the last update.
    pub(crate) fn tick(&self, elapsed_s: f64) {
        let now = [self.udp.requests(), self.http.requests()];
        let mut rates = self
            .rates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Rates { last, per_second } = &mut *rates;
        for ((now, last), rate) in now.iter().zip(last.iter_mut()).zip(per_second.iter_mut()) {
            for ((n, l), r) in now.iter().zip(last.iter_mut()).zip(rate.iter_mut()) {
                // Counts per second stay far below 2^52, so the conversion is exact.
                #[allow(clippy::cast_precision_loss)]
                let delta = n.saturating_sub(*l) as f64;
                *r = if elapsed_s > 0.0 {
                    delta / elapsed_s
                } else {
                    0.0
                };
                *l = *n;
            }
        }
    }

    /// The Prometheus text exposition of every metric, with the table's current totals.
    #[must_use]
    pub fn render(&self, table: &TableStats) -> String {
        let mut s = String::with_capacity(4096);
        let protocols = [("udp", &self.udp), ("http", &self.http)];
        header(
            &mut s,
            "requests_total",
            "counter",
            "Requests answered, by protocol and kind.",
        );
        for (p, c) in protocols {
            for (k, n) in KINDS.iter().zip(c.requests()) {
                let _ = writeln!(
                    s,
                    "bitswarm_tracker_requests_total{{protocol=\"{p}\",kind=\"{k}\"}} {n}"
                );
            }
        }
        header(
            &mut s,
            "requests_per_second",
            "gauge",
            "Requests per second over the last second.",
        );
        let rates = self
            .rates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (i, (p, _)) in protocols.iter().enumerate() {
            for (k, r) in KINDS.iter().zip(rates.per_second[i]) {
                let _ = writeln!(
                    s,
                    "bitswarm_tracker_requests_per_second{{protocol=\"{p}\",kind=\"{k}\"}} {r:.1}"
                );
            }
        }
        drop(rates);
        header(
            &mut s,
            "errors_total",
            "counter",
            "Requests refused or dropped and socket errors, by kind.",
        );
        for (p, c) in protocols {
            for (k, a) in ERRORS.iter().zip(&c.errors) {
                let n = a.load(Relaxed);
                let _ = writeln!(
                    s,
                    "bitswarm_tracker_errors_total{{protocol=\"{p}\",kind=\"{k}\"}} {n}"
                );
            }
        }
        self.render_state(&mut s, table);
        s
    }

    /// The gauges of the table and the access list.
    fn render_state(&self, s: &mut String, table: &TableStats) {
        gauge(s, "torrents", "Swarms tracked.", table.torrents as u64);
        header(s, "peers", "gauge", "Peers stored, by role.");
        let _ = writeln!(
            s,
            "bitswarm_tracker_peers{{role=\"seeder\"}} {}",
            table.seeders
        );
        let _ = writeln!(
            s,
            "bitswarm_tracker_peers{{role=\"leecher\"}} {}",
            table.leechers
        );
        gauge(s, "seeders", "Seeders stored.", table.seeders as u64);
        gauge(
            s,
            "peer_memory_bytes",
            "Bytes allocated by the peer lists.",
            table.peer_bytes as u64,
        );
        gauge(
            s,
            "access_list_entries",
            "Info-hashes in the access list.",
            self.access_entries.load(Relaxed),
        );
        header(
            s,
            "expired_peers_total",
            "counter",
            "Peers dropped for not announcing in time.",
        );
        let _ = writeln!(
            s,
            "bitswarm_tracker_expired_peers_total {}",
            self.expired_peers.load(Relaxed)
        );
        header(
            s,
            "access_reloads_total",
            "counter",
            "Access list reloads, by result.",
        );
        let ok = self.access_reloads_ok.load(Relaxed);
        let failed = self.access_reloads_failed.load(Relaxed);
        let _ = writeln!(
            s,
            "bitswarm_tracker_access_reloads_total{{result=\"ok\"}} {ok}"
        );
        let _ = writeln!(
            s,
            "bitswarm_tracker_access_reloads_total{{result=\"error\"}} {failed}"
        );
    }
}

fn header(s: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(
        s,
        "# HELP bitswarm_tracker_{name} {help}\n# TYPE bitswarm_tracker_{name} {kind}"
    );
}

fn gauge(s: &mut String, name: &str, help: &str, value: u64) {
    header(s, name, "gauge", help);
    let _ = writeln!(s, "bitswarm_tracker_{name} {value}");
}

fn refusal_index(r: Refusal) -> usize {
    match r {
        Refusal::Malformed => 0,
        Refusal::ConnectionId => 1,
        Refusal::AccessDenied => 2,
        Refusal::FullScrape => 3,
    }
}
