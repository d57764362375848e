//! Transfer rate estimation from byte counts fed with the caller's clock: a ring of one-second
//! buckets, so adding is O(1) (amortised over idle seconds) and a rate over the last few
//! seconds is a short sum. Time is a millisecond count since the torrent's epoch, never a
//! clock read.

/// Seconds of history kept: the choker looks at ~20 s of download.
pub const RATE_WINDOW_SECS: usize = 20;

/// Bytes per second over a sliding window of whole seconds.
#[derive(Debug, Clone, Default)]
pub(crate) struct RateMeter {
    buckets: [u64; RATE_WINDOW_SECS],
    /// The second (since the epoch) the newest bucket counts.
    second: u64,
    total: u64,
}

impl RateMeter {
    /// Counts `bytes` transferred at `now_ms` (milliseconds since the epoch).
    pub(crate) fn add(&mut self, now_ms: u64, bytes: u64) {
        self.advance(now_ms / 1000);
        if let Some(b) = self.buckets.get_mut(slot(self.second)) {
            *b = b.saturating_add(bytes);
        }
        self.total = self.total.saturating_add(bytes);
    }

    /// Every byte ever counted.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Bytes counted in the last `window` seconds (the current, partial second included).
    pub(crate) fn bytes_in(&self, now_ms: u64, window: usize) -> u64 {
        let current = now_ms / 1000;
        let window = window.clamp(1, RATE_WINDOW_SECS) as u64;
        let oldest = current.saturating_sub(window - 1);
        (oldest..=current)
            .filter(|&s| s <= self.second && self.second - s < RATE_WINDOW_SECS as u64)
            .filter_map(|s| self.buckets.get(slot(s)))
            .sum()
    }

    /// Bytes per second over the last `window` seconds, or since `since_ms` if that is more
    /// recent (a new peer is not averaged over time it was not connected).
    pub(crate) fn rate(&self, now_ms: u64, window: usize, since_ms: u64) -> u64 {
        let window = window.clamp(1, RATE_WINDOW_SECS) as u64;
        // The window covers whole seconds before the current one plus the part of the
        // current second that has passed.
        let span_ms = ((window - 1) * 1000 + now_ms % 1000).min(now_ms.saturating_sub(since_ms));
        let span_ms = span_ms.max(250);
        self.bytes_in(now_ms, window as usize).saturating_mul(1000) / span_ms
    }

    fn advance(&mut self, now_s: u64) {
        if now_s <= self.second {
            return;
        }
        let gap = (now_s - self.second).min(RATE_WINDOW_SECS as u64);
        for s in 1..=gap {
            if let Some(b) = self.buckets.get_mut(slot(self.second + s)) {
                *b = 0;
            }
        }
        self.second = now_s;
    }
}

fn slot(second: u64) -> usize {
    (second % RATE_WINDOW_SECS as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_rate() {
        let mut m = RateMeter::default();
        for ms in (0..10_000).step_by(100) {
            m.add(ms, 1000);
        }
        // 10 kB/s for 10 s.
        assert_eq!(m.total(), 100_000);
        let r = m.rate(10_000, 5, 0);
        assert!((9_000..=11_000).contains(&r), "{r}");
        assert_eq!(m.bytes_in(9_999, 20), 100_000);
    }

    #[test]
    fn old_seconds_fall_out() {
        let mut m = RateMeter::default();
        m.add(500, 5000);
        assert_eq!(m.bytes_in(500, 3), 5000);
        assert_eq!(m.bytes_in(3_500, 3), 0);
        m.add(60_000, 10);
        assert_eq!(m.bytes_in(60_000, 20), 10, "a long gap clears every bucket");
        assert_eq!(m.total(), 5010);
    }

    #[test]
    fn young_peers_are_averaged_over_their_age() {
        let mut m = RateMeter::default();
        m.add(10_000, 1000);
        // Connected at 9.5 s: 1000 bytes over 0.5 s.
        assert_eq!(m.rate(10_000, 5, 9_500), 2000);
    }
}
