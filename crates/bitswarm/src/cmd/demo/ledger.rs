//! Who sent how much to whom: per-connection byte counts turned into a peer-to-peer table,
//! and the demo's closing tables.
//!
//! Each direction of a connection is counted by its receiver (payload bytes that arrived),
//! which knows the sender by the peer id of its handshake. A sender's own counter is not
//! used for the table: it counts blocks when they are queued for the socket, and blocks still
//! queued when a peer leaves never arrive. Counters are sampled while the swarm runs, so a
//! connection that closes loses what it carried since the last sample; the table's
//! cross-check against each peer's own received total would show it.

use std::collections::HashMap;
use std::fmt::Write as _;

use bitswarm_runtime::{PeerKey, PeerStats};

use super::swarm::{limit_text, Outcome};

/// A received total that differs from the per-connection sum by more than this fraction is
/// pointed out under the table.
const COVERAGE_TOLERANCE: f64 = 0.01;

/// Per-connection counters of the demo's peers.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Peer index by peer id.
    by_peer_id: HashMap<[u8; 20], usize>,
    /// (receiver, its connection) -> (the sender, payload bytes received from it).
    received: HashMap<(usize, PeerKey), (usize, u64)>,
    peer_count: usize,
}

impl Ledger {
    /// A ledger for peers with these peer ids (peer `i` has `peer_ids[i]`).
    pub fn new(peer_ids: &[[u8; 20]]) -> Self {
        Self {
            by_peer_id: peer_ids
                .iter()
                .enumerate()
                .map(|(i, &id)| (id, i))
                .collect(),
            received: HashMap::new(),
            peer_count: peer_ids.len(),
        }
    }

    /// Records the connections of peer `receiver` as it sees them now.
    pub fn observe(&mut self, receiver: usize, connections: &[(PeerKey, PeerStats)]) {
        for (key, stats) in connections {
            match self.by_peer_id.get(&stats.peer_id) {
                Some(&sender) if sender != receiver => {
                    self.received
                        .insert((receiver, *key), (sender, stats.downloaded));
                }
                // Not one of ours, or ourselves (trackers list us too).
                _ => {}
            }
        }
    }

    /// `sent[i][j]`: payload bytes peer `j` received from peer `i`.
    pub fn sent(&self) -> Vec<Vec<u64>> {
        let n = self.peer_count;
        let mut sent = vec![vec![0u64; n]; n];
        for (&(receiver, _), &(sender, bytes)) in &self.received {
            if let Some(cell) = sent.get_mut(sender).and_then(|r| r.get_mut(receiver)) {
                *cell += bytes;
            }
        }
        sent
    }
}

/// Prints when each leecher finished, fastest first.
pub fn print_finish_times(outcome: &Outcome) {
    println!("== when each leecher finished (seconds after all peers were up)");
    let mut leechers: Vec<_> = outcome.peers.iter().filter(|p| !p.is_seed).collect();
    leechers.sort_by_key(|p| p.finished_after);
    for p in leechers {
        let secs = p.finished_after.map_or(f64::NAN, |d| d.as_secs_f64());
        println!(
            "{:<8} upload limit {:<12} finished after {secs:5.1} s",
            p.name,
            limit_text(p.upload_limit)
        );
    }
}

/// Prints the who-sent-whom table with each peer's totals.
pub fn print_table(outcome: &Outcome) {
    print!("{}", table(outcome));
}

/// The who-sent-whom table: one row per sender, one column per receiver, in MiB.
fn table(outcome: &Outcome) -> String {
    let names: Vec<&str> = outcome.peers.iter().map(|p| p.name.as_str()).collect();
    let width = names.iter().map(|n| n.len()).max().unwrap_or(0).max(7) + 1;
    let mut out =
        String::from("== who sent how much to whom (MiB; each row sent to each column)\n");
    let _ = write!(out, "{:<width$}", "from \\ to");
    for name in &names {
        let _ = write!(out, "{name:>width$}");
    }
    let _ = writeln!(out, " | {:>9} {:>9} {:>6}", "sent", "received", "ratio");
    for (i, peer) in outcome.peers.iter().enumerate() {
        let _ = write!(out, "{:<width$}", peer.name);
        for j in 0..names.len() {
            let cell = if i == j {
                "-".to_owned()
            } else {
                mib(outcome
                    .sent
                    .get(i)
                    .and_then(|r| r.get(j))
                    .copied()
                    .unwrap_or(0))
            };
            let _ = write!(out, "{cell:>width$}");
        }
        let sent: u64 = outcome.sent.get(i).map_or(0, |r| r.iter().sum());
        let ratio = if peer.is_seed {
            "-".to_owned()
        } else {
            #[allow(clippy::cast_precision_loss)] // display only
            let r = sent as f64 / peer.stats.downloaded.max(1) as f64;
            format!("{r:.2}")
        };
        let _ = writeln!(
            out,
            " | {:>9} {:>9} {ratio:>6}",
            mib(sent),
            mib(peer.stats.downloaded)
        );
    }
    out.push_str(&coverage_note(outcome));
    out
}

/// A note for each peer whose received total the per-connection counts do not explain.
fn coverage_note(outcome: &Outcome) -> String {
    let mut note = String::new();
    for (j, peer) in outcome.peers.iter().enumerate() {
        let counted: u64 = outcome.sent.iter().filter_map(|r| r.get(j)).sum();
        let total = peer.stats.downloaded;
        #[allow(clippy::cast_precision_loss)] // display only
        let off = counted.abs_diff(total) as f64 / total.max(1) as f64;
        if off > COVERAGE_TOLERANCE {
            let _ = writeln!(
                note,
                "note: the connections of {} account for {} of the {} it received \
                 (connections closed between two samples)",
                peer.name,
                crate::units::bytes(counted),
                crate::units::bytes(total)
            );
        }
    }
    note
}

/// Bytes as MiB with one decimal.
fn mib(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)] // display only
    let m = bytes as f64 / f64::from(1u32 << 20);
    format!("{m:.1}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(peer_id: [u8; 20], uploaded: u64, downloaded: u64) -> PeerStats {
        PeerStats {
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], 6881)),
            peer_id,
            outgoing: true,
            am_choking: false,
            am_interested: false,
            peer_choking: false,
            peer_interested: false,
            optimistic: false,
            snubbed: false,
            seed: false,
            pieces: 0,
            download_rate: 0,
            upload_rate: 0,
            downloaded,
            uploaded,
            requests_in_flight: 0,
            upload_queue_len: 0,
            client: None,
        }
    }

    #[test]
    fn each_direction_counts_once_by_its_receiver() {
        let ids: Vec<[u8; 20]> = (0..3).map(|i| [i; 20]).collect();
        let mut ledger = Ledger::new(&ids);
        // Peer 1 received 500 from peer 0 and 30 from peer 2; peer 0 received 10 from peer 1.
        ledger.observe(
            1,
            &[
                (PeerKey(1), conn(ids[0], 999, 500)),
                (PeerKey(2), conn(ids[2], 70, 30)),
            ],
        );
        ledger.observe(0, &[(PeerKey(9), conn(ids[1], 500, 10))]);
        // Later samples replace earlier ones; a reconnect (new key) adds to them.
        ledger.observe(1, &[(PeerKey(1), conn(ids[0], 999, 600))]);
        ledger.observe(1, &[(PeerKey(3), conn(ids[0], 1, 4))]);
        // A connection to ourselves (the tracker lists us too) or a stranger is not counted.
        ledger.observe(
            2,
            &[
                (PeerKey(5), conn(ids[2], 99, 99)),
                (PeerKey(6), conn([9; 20], 9, 9)),
            ],
        );
        let sent = ledger.sent();
        assert_eq!(sent, vec![vec![0, 604, 0], vec![10, 0, 0], vec![0, 30, 0]]);
    }
}
