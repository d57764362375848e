//! Where a lookup's results go, and when each announced torrent is due again. Plain data, no
//! I/O: the driver asks it what to start and hands it the state machine's events.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bitswarm_dht::LookupId;
use tokio::sync::mpsc::{self, error::TrySendError};

use crate::{DhtPeers, LookupSummary, ANNOUNCE_INTERVAL};

/// Most torrents announced at once; more are refused (their `Announcement` ends at once).
pub(crate) const ANNOUNCED_MAX: usize = 10_000;
/// Wait before trying again an announce round that reached no node at all (doubling up to
/// [`ANNOUNCE_INTERVAL`]): the table was empty, the routers unreachable.
pub(crate) const ANNOUNCE_RETRY_MIN: Duration = Duration::from_secs(5);
/// Longest wait before looking again for a torrent whose last round reached nodes but found no
/// peer: a magnet opened before anyone announced must not wait a full [`ANNOUNCE_INTERVAL`]
/// for the first seeder (the wait starts at [`ANNOUNCE_RETRY_MIN`] and doubles up to this).
pub(crate) const NO_PEERS_RETRY_MAX: Duration = Duration::from_secs(120);

/// One announced torrent.
struct Announced {
    port: Option<u16>,
    tx: mpsc::Sender<DhtPeers>,
    /// The round in progress.
    running: Option<LookupId>,
    next_at: Instant,
    /// Wait after a round that reached nobody or found no peer.
    retry: Duration,
}

/// Who gets a lookup's events.
enum Sink {
    /// A one-off `get_peers`: the channel closes when the lookup ends.
    Once {
        info_hash: [u8; 20],
        tx: mpsc::Sender<DhtPeers>,
    },
    /// A round of an announced torrent.
    Round { info_hash: [u8; 20] },
}

#[derive(Default)]
pub(crate) struct Routes {
    lookups: HashMap<LookupId, Sink>,
    announced: HashMap<[u8; 20], Announced>,
    /// Batches of peers dropped because a reader was too far behind.
    pub(crate) dropped_batches: u64,
}

impl Routes {
    /// A one-off lookup was started.
    pub(crate) fn get_peers(
        &mut self,
        lookup: LookupId,
        info_hash: [u8; 20],
        tx: mpsc::Sender<DhtPeers>,
    ) {
        self.lookups.insert(lookup, Sink::Once { info_hash, tx });
    }

    /// Starts (or replaces) announcing `info_hash`; its first round is due at once. `false`
    /// when [`ANNOUNCED_MAX`] torrents are announced already (the channel is dropped).
    pub(crate) fn announce(
        &mut self,
        now: Instant,
        info_hash: [u8; 20],
        port: Option<u16>,
        tx: mpsc::Sender<DhtPeers>,
    ) -> bool {
        if self.announced.len() >= ANNOUNCED_MAX && !self.announced.contains_key(&info_hash) {
            return false;
        }
        let running = self.announced.get(&info_hash).and_then(|a| a.running);
        self.announced.insert(
            info_hash,
            Announced {
                port,
                tx,
                running,
                next_at: now,
                retry: ANNOUNCE_RETRY_MIN,
            },
        );
        true
    }

    /// Stops announcing `info_hash`.
    pub(crate) fn stop(&mut self, info_hash: &[u8; 20]) {
        self.announced.remove(info_hash);
    }

    /// Torrents announced now.
    #[cfg(test)]
    pub(crate) fn announced(&self) -> usize {
        self.announced.len()
    }

    /// Announce rounds due at `now` (none of them running), as `(info_hash, port)`. Torrents
    /// whose `Announcement` was dropped are forgotten here.
    pub(crate) fn due(&mut self, now: Instant) -> Vec<([u8; 20], Option<u16>)> {
        self.announced.retain(|_, a| !a.tx.is_closed());
        let mut due: Vec<_> = self
            .announced
            .iter()
            .filter(|(_, a)| a.running.is_none() && a.next_at <= now)
            .map(|(ih, a)| (*ih, a.port))
            .collect();
        due.sort_unstable();
        due
    }

    /// A round of `info_hash` was started as `lookup`.
    pub(crate) fn round_started(&mut self, info_hash: [u8; 20], lookup: LookupId) {
        if let Some(a) = self.announced.get_mut(&info_hash) {
            a.running = Some(lookup);
            self.lookups.insert(lookup, Sink::Round { info_hash });
        }
    }

    /// When the next announce round is due (for the driver's timer).
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.announced
            .values()
            .filter(|a| a.running.is_none())
            .map(|a| a.next_at)
            .min()
    }

    /// A lookup found peers.
    pub(crate) fn peers(&mut self, lookup: LookupId, peers: Vec<SocketAddr>) {
        let Some((info_hash, tx)) = self.sink(lookup) else {
            return;
        };
        let msg = DhtPeers {
            info_hash,
            peers,
            done: None,
        };
        self.deliver(lookup, &tx, msg);
    }

    /// A lookup ended: its reader gets the summary; an announce round schedules the next.
    pub(crate) fn done(&mut self, now: Instant, lookup: LookupId, summary: LookupSummary) {
        let Some((info_hash, tx)) = self.sink(lookup) else {
            return;
        };
        let msg = DhtPeers {
            info_hash,
            peers: Vec::new(),
            done: Some(summary),
        };
        self.deliver(lookup, &tx, msg);
        if let Some(Sink::Round { info_hash }) = self.lookups.remove(&lookup) {
            if let Some(a) = self.announced.get_mut(&info_hash) {
                a.running = None;
                if summary.nodes_responded == 0 || summary.peers_found == 0 {
                    let cap = if summary.nodes_responded == 0 {
                        ANNOUNCE_INTERVAL
                    } else {
                        NO_PEERS_RETRY_MAX
                    };
                    a.next_at = now + a.retry;
                    a.retry = (a.retry * 2).min(cap);
                } else {
                    a.next_at = now + ANNOUNCE_INTERVAL;
                    a.retry = ANNOUNCE_RETRY_MIN;
                }
            }
        }
    }

    fn sink(&self, lookup: LookupId) -> Option<([u8; 20], mpsc::Sender<DhtPeers>)> {
        match self.lookups.get(&lookup)? {
            Sink::Once { info_hash, tx } => Some((*info_hash, tx.clone())),
            Sink::Round { info_hash } => {
                let a = self.announced.get(info_hash)?;
                (a.running == Some(lookup)).then(|| (*info_hash, a.tx.clone()))
            }
        }
    }

    fn deliver(&mut self, lookup: LookupId, tx: &mpsc::Sender<DhtPeers>, msg: DhtPeers) {
        match tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped_batches += 1;
                tracing::debug!(?lookup, "a DHT peer reader is behind; batch dropped");
            }
            Err(TrySendError::Closed(_)) => {
                if matches!(self.lookups.get(&lookup), Some(Sink::Once { .. })) {
                    self.lookups.remove(&lookup);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IH: [u8; 20] = [9; 20];

    fn summary(nodes_responded: usize) -> LookupSummary {
        LookupSummary {
            peers_found: 1,
            nodes_responded,
            announced_to: nodes_responded,
        }
    }

    #[test]
    fn a_one_off_lookup_delivers_peers_then_the_summary_then_closes() {
        let mut routes = Routes::default();
        let (tx, mut rx) = mpsc::channel(4);
        routes.get_peers(LookupId(1), IH, tx);
        let peer = SocketAddr::from(([127, 0, 0, 1], 7000));
        routes.peers(LookupId(1), vec![peer]);
        routes.peers(LookupId(2), vec![peer]); // someone else's lookup
        routes.done(Instant::now(), LookupId(1), summary(3));
        assert_eq!(rx.try_recv().unwrap().peers, vec![peer]);
        assert_eq!(rx.try_recv().unwrap().done, Some(summary(3)));
        assert!(rx.try_recv().is_err());
        assert!(rx.blocking_recv().is_none(), "closed once the lookup ended");
    }

    #[test]
    fn announce_rounds_repeat_and_back_off_when_nobody_answers() {
        let mut routes = Routes::default();
        let t0 = Instant::now();
        let (tx, mut rx) = mpsc::channel(8);
        assert!(routes.announce(t0, IH, Some(6881), tx));
        assert_eq!(routes.due(t0), vec![(IH, Some(6881))]);
        routes.round_started(IH, LookupId(1));
        assert!(
            routes.due(t0).is_empty(),
            "a running round is not due again"
        );
        routes.done(t0, LookupId(1), summary(0));
        assert_eq!(routes.next_due(), Some(t0 + ANNOUNCE_RETRY_MIN));
        routes.round_started(IH, LookupId(2));
        routes.done(t0, LookupId(2), summary(0));
        assert_eq!(routes.next_due(), Some(t0 + ANNOUNCE_RETRY_MIN * 2));
        routes.round_started(IH, LookupId(3));
        routes.done(t0, LookupId(3), summary(5));
        assert_eq!(routes.next_due(), Some(t0 + ANNOUNCE_INTERVAL));
        assert_eq!(rx.try_recv().unwrap().done, Some(summary(0)));
        drop(rx);
        assert!(routes.due(t0 + ANNOUNCE_INTERVAL).is_empty());
        assert_eq!(
            routes.announced(),
            0,
            "a dropped Announcement stops the rounds"
        );
    }

    #[test]
    fn rounds_that_find_no_peer_repeat_within_two_minutes() {
        let mut routes = Routes::default();
        let t0 = Instant::now();
        let (tx, _rx) = mpsc::channel(64);
        assert!(routes.announce(t0, IH, None, tx));
        let no_peers = LookupSummary {
            peers_found: 0,
            nodes_responded: 8,
            announced_to: 8,
        };
        let mut waits = Vec::new();
        for id in 1..=8 {
            routes.round_started(IH, LookupId(id));
            routes.done(t0, LookupId(id), no_peers);
            waits.push(routes.next_due().map(|t| t - t0));
        }
        let secs: Vec<u64> = waits.iter().flatten().map(Duration::as_secs).collect();
        assert_eq!(secs, vec![5, 10, 20, 40, 80, 120, 120, 120]);
        routes.round_started(IH, LookupId(9));
        routes.done(t0, LookupId(9), summary(8));
        assert_eq!(routes.next_due(), Some(t0 + ANNOUNCE_INTERVAL));
    }

    #[test]
    fn a_slow_reader_loses_batches_but_never_blocks() {
        let mut routes = Routes::default();
        let (tx, _rx) = mpsc::channel(1);
        routes.get_peers(LookupId(1), IH, tx);
        for port in 0..10 {
            routes.peers(LookupId(1), vec![SocketAddr::from(([127, 0, 0, 1], port))]);
        }
        assert_eq!(routes.dropped_batches, 9);
    }

    #[test]
    fn the_number_of_announced_torrents_is_bounded() {
        let mut routes = Routes::default();
        let now = Instant::now();
        let mut keep = Vec::new();
        for i in 0..ANNOUNCED_MAX {
            let (tx, rx) = mpsc::channel(1);
            keep.push(rx);
            let mut ih = [0; 20];
            ih[..8].copy_from_slice(&(i as u64).to_be_bytes());
            assert!(routes.announce(now, ih, None, tx));
        }
        let (tx, _rx) = mpsc::channel(1);
        assert!(!routes.announce(now, [0xff; 20], None, tx));
    }
}
