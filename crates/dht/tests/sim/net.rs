//! The simulated world: a virtual clock, an event queue of datagrams with delivery times, and
//! per-link round-trip times drawn from a lognormal distribution, with loss each way.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Duration;

/// Median round-trip time of a link.
pub const RTT_MEDIAN_MS: f64 = 100.0;
/// Sigma of ln(RTT): with 1.0, p90 ≈ 360 ms and p99 ≈ 1.02 s.
pub const RTT_SIGMA: f64 = 1.0;
/// Longest RTT a link gets (the lognormal tail cut off here).
pub const RTT_MAX_MS: f64 = 5000.0;
/// Probability that one datagram is lost, each way.
pub const LOSS: f64 = 0.05;

/// Something that happens at a virtual time.
#[derive(Debug)]
pub enum Event {
    /// A datagram arrives at node `to`.
    Deliver {
        to: usize,
        from: usize,
        payload: Vec<u8>,
    },
    /// Node `node`'s `poll_timeout` deadline.
    Timer { node: usize, at: Duration },
    /// A scripted action of the scenario (join, leave, announce, lookup).
    Action(usize),
}

struct Queued {
    at: Duration,
    seq: u64,
    event: Event,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap, we want the earliest (then first queued).
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// The event queue, ordered by time then insertion order (so runs are replayable).
#[derive(Default)]
pub struct Queue {
    heap: BinaryHeap<Queued>,
    seq: u64,
}

impl Queue {
    pub fn push(&mut self, at: Duration, event: Event) {
        self.seq += 1;
        self.heap.push(Queued {
            at,
            seq: self.seq,
            event,
        });
    }

    pub fn pop(&mut self) -> Option<(Duration, Event)> {
        self.heap.pop().map(|q| (q.at, q.event))
    }
}

/// splitmix64: a fixed, fast mixing function (link RTTs are a pure function of the pair).
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A uniform number in (0, 1] from 53 bits of `x`.
fn unit(x: u64) -> f64 {
    ((x >> 11) as f64 + 1.0) / (1u64 << 53) as f64
}

/// A standard normal variate from two uniforms (Box–Muller).
pub fn normal(u1: f64, u2: f64) -> f64 {
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// The round-trip time of the link between nodes `a` and `b` (symmetric, fixed per run).
pub fn link_rtt(seed: u64, a: usize, b: usize) -> Duration {
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    let h = mix(seed ^ mix((lo as u64) << 32 | hi as u64));
    let z = normal(unit(h), unit(mix(h)));
    let ms = (RTT_MEDIAN_MS * (RTT_SIGMA * z).exp()).min(RTT_MAX_MS);
    Duration::from_micros((ms * 1000.0) as u64)
}

/// The `q`-quantile (0..=1) of sorted durations, in seconds.
pub fn quantile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64()
}
