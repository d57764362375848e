//! The peer addresses a torrent task has heard of (from `add_peers`: trackers, the DHT, the
//! command line), to hand to its engine and to reconnect to after a pause. The engine forgets
//! an address after repeated failed connects; when a source reports it again later, it is
//! offered to the engine again, at most once per `reoffer_interval`, so a peer that was down
//! for a while comes back without one that stays down being retried on every report.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Addresses with when each was last offered to an engine; at most `len_max` of them.
#[derive(Debug)]
pub(super) struct KnownPeers {
    offered: HashMap<SocketAddr, Instant>,
    len_max: usize,
    reoffer_interval: Duration,
}

impl KnownPeers {
    pub(super) fn new(len_max: usize, reoffer_interval: Duration) -> Self {
        Self {
            offered: HashMap::new(),
            len_max,
            reoffer_interval,
        }
    }

    /// Records `addrs` as reported at `now`; returns those to offer the engine: the new ones
    /// and those last offered at least `reoffer_interval` ago. When the set is full, a new
    /// address takes the place of the one offered longest ago if that one is due for a
    /// re-offer too (so stale entries give way, recent ones do not).
    pub(super) fn report(
        &mut self,
        now: Instant,
        addrs: impl IntoIterator<Item = SocketAddr>,
    ) -> Vec<SocketAddr> {
        let mut offer = Vec::new();
        for addr in addrs {
            if let Some(at) = self.offered.get_mut(&addr) {
                if now.saturating_duration_since(*at) >= self.reoffer_interval {
                    *at = now;
                    offer.push(addr);
                }
            } else if self.offered.len() < self.len_max || self.evict_stale(now) {
                self.offered.insert(addr, now);
                offer.push(addr);
            }
        }
        offer
    }

    /// Every address, for a new engine (after a pause), marked as offered at `now`.
    pub(super) fn offer_all(&mut self, now: Instant) -> Vec<SocketAddr> {
        self.offered.values_mut().for_each(|at| *at = now);
        let mut all: Vec<SocketAddr> = self.offered.keys().copied().collect();
        all.sort_unstable();
        all
    }

    /// Forgets every address of a banned IP.
    pub(super) fn forget_ip(&mut self, ip: IpAddr) {
        self.offered.retain(|addr, _| addr.ip() != ip);
    }

    /// Addresses held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.offered.len()
    }

    /// Removes the entry offered longest ago if it is due for a re-offer; `true` if one was.
    fn evict_stale(&mut self, now: Instant) -> bool {
        let oldest = self
            .offered
            .iter()
            .min_by_key(|(addr, at)| (**at, **addr))
            .map(|(addr, at)| (*addr, *at));
        match oldest {
            Some((addr, at)) if now.saturating_duration_since(at) >= self.reoffer_interval => {
                self.offered.remove(&addr);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    const INTERVAL: Duration = Duration::from_secs(60);

    /// Issue 6: an address the engine dropped after failed connects was never offered again,
    /// whoever reported it later.
    #[test]
    fn a_re_reported_address_is_offered_again_after_the_interval() {
        let t0 = Instant::now();
        let mut known = KnownPeers::new(10, INTERVAL);
        assert_eq!(known.report(t0, [addr(1), addr(2)]), [addr(1), addr(2)]);
        assert_eq!(
            known.report(t0 + Duration::from_secs(59), [addr(1)]),
            [],
            "not before the interval"
        );
        let later = t0 + INTERVAL;
        assert_eq!(known.report(later, [addr(1), addr(3)]), [addr(1), addr(3)]);
        assert_eq!(
            known.report(later + Duration::from_secs(1), [addr(1)]),
            [],
            "the interval starts again from the re-offer"
        );
        assert_eq!(known.report(later + INTERVAL, [addr(1)]), [addr(1)]);
    }

    #[test]
    fn the_set_is_bounded_and_only_stale_entries_give_way() {
        let t0 = Instant::now();
        let mut known = KnownPeers::new(3, INTERVAL);
        assert_eq!(known.report(t0, (1..=3).map(addr)).len(), 3);
        let soon = t0 + Duration::from_secs(1);
        assert_eq!(known.report(soon, [addr(4)]), [], "full, nothing stale");
        assert_eq!(known.len(), 3);
        let later = t0 + INTERVAL;
        assert_eq!(known.report(later, [addr(4), addr(5)]), [addr(4), addr(5)]);
        assert_eq!(known.len(), 3);
        // 4 and 5 took the places of 1 and 2; 1 takes that of 3, the last stale one, and
        // 2 and 3 find none left.
        assert_eq!(known.report(later, (1..=3).map(addr)), [addr(1)]);
        assert_eq!(known.len(), 3);
    }

    #[test]
    fn offer_all_restarts_the_interval_and_bans_forget_addresses() {
        let t0 = Instant::now();
        let mut known = KnownPeers::new(10, INTERVAL);
        known.report(t0, [addr(2), addr(1)]);
        let resume = t0 + INTERVAL;
        assert_eq!(known.offer_all(resume), [addr(1), addr(2)]);
        assert_eq!(known.report(resume, [addr(1)]), []);
        known.forget_ip(addr(1).ip());
        assert_eq!(known.len(), 0);
    }
}
