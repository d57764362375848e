//! What a run produced, in numbers: who sent how much to whom ([`TransferMatrix`]), when each
//! node finished ([`Report`]), the fluid-model lower bound on the last completion
//! ([`FluidModel`]) and Jain's fairness index. Plain data for tests, `bitswarm demo` and
//! reports; `Display` renders a table, nothing here prints.

// Byte counts and rates become f64 for ratios; precision beyond 2^52 bytes is moot.
#![allow(clippy::cast_precision_loss)]

use std::fmt;
use std::time::Duration;

use crate::sim::Node;
use crate::spec::Behaviour;
use crate::Sim;

/// Payload bytes sent from each node to each other node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferMatrix {
    n: usize,
    bytes: Vec<u64>,
}

impl TransferMatrix {
    /// An all-zero matrix for `n` nodes.
    #[must_use]
    pub fn new(n: usize) -> Self {
        Self {
            n,
            bytes: vec![0; n * n],
        }
    }

    /// The number of nodes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are no nodes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Bytes `from` sent to `to` (0 for indices out of range).
    #[must_use]
    pub fn get(&self, from: usize, to: usize) -> u64 {
        if from >= self.n || to >= self.n {
            return 0;
        }
        self.bytes[from * self.n + to]
    }

    /// Adds `bytes` sent from `from` to `to` (ignored for indices out of range).
    pub fn add(&mut self, from: usize, to: usize, bytes: u64) {
        if from < self.n && to < self.n {
            self.bytes[from * self.n + to] += bytes;
        }
    }

    /// Bytes `from` sent to anyone.
    #[must_use]
    pub fn sent_by(&self, from: usize) -> u64 {
        (0..self.n).map(|to| self.get(from, to)).sum()
    }

    /// Bytes `to` received from anyone.
    #[must_use]
    pub fn received_by(&self, to: usize) -> u64 {
        (0..self.n).map(|from| self.get(from, to)).sum()
    }

    /// What was sent since `earlier` (a snapshot of the same run): this minus `earlier`,
    /// entry by entry, for measurements over a window.
    #[must_use]
    pub fn since(&self, earlier: &TransferMatrix) -> TransferMatrix {
        let bytes = self
            .bytes
            .iter()
            .enumerate()
            .map(|(i, &b)| b.saturating_sub(earlier.bytes.get(i).copied().unwrap_or(0)))
            .collect();
        TransferMatrix { n: self.n, bytes }
    }
}

/// Jain's fairness index of `values`: `(Σx)² / (n · Σx²)`, 1 when all are equal, `1/n` when
/// one value holds everything; `None` when empty or all zero.
#[must_use]
pub fn jain_index(values: &[f64]) -> Option<f64> {
    let sum: f64 = values.iter().sum();
    let squares: f64 = values.iter().map(|v| v * v).sum();
    if values.is_empty() || squares <= 0.0 {
        return None;
    }
    Some(sum * sum / (values.len() as f64 * squares))
}

/// The fluid model of a swarm (Kumar and Ross): one file of `file_bytes`, seeds uploading
/// `seed_upload` bytes/s in total, leechers uploading `leecher_uploads`, the slowest leecher
/// downloading at `download_min` (if limited).
#[derive(Debug, Clone, PartialEq)]
pub struct FluidModel {
    /// F: bytes in the file.
    pub file_bytes: u64,
    /// `u_s`: the seeds' total upload, bytes/s.
    pub seed_upload: u64,
    /// `u_i`: each leecher's upload, bytes/s (0 for a free-rider).
    pub leecher_uploads: Vec<u64>,
    /// `d_min`: the smallest leecher download capacity, bytes/s, if any is limited.
    pub download_min: Option<u64>,
}

impl FluidModel {
    /// The model of `sim`'s nodes: every node that starts as a seed adds to `u_s`, every
    /// other one is a leecher (a free-rider uploads 0). `None` if a node that uploads has
    /// unlimited upload (the model needs capacities), or there are no leechers.
    #[must_use]
    pub fn of(sim: &Sim) -> Option<Self> {
        let nodes = sim.nodes();
        let unlimited =
            |n: &&Node| n.spec().up_bw == 0 && n.spec().behaviour != Behaviour::FreeRider;
        if nodes.iter().any(|n| unlimited(&n)) {
            return None;
        }
        let leechers: Vec<&Node> = nodes.iter().filter(|n| !n.spec().seed).collect();
        if leechers.is_empty() {
            return None;
        }
        let upload = |n: &Node| match n.spec().behaviour {
            Behaviour::FreeRider => 0,
            _ => n.spec().up_bw,
        };
        Some(Self {
            file_bytes: sim.geometry().total_length,
            seed_upload: nodes.iter().filter(|n| n.spec().seed).map(upload).sum(),
            leecher_uploads: leechers.iter().map(|n| upload(n)).collect(),
            download_min: leechers
                .iter()
                .map(|n| n.spec().down_bw)
                .filter(|&d| d > 0)
                .min(),
        })
    }

    /// `T* = max(F/u_s, N·F/(u_s + Σu_i), F/d_min)`: no swarm can finish every leecher sooner;
    /// `None` when `u_s` is 0.
    #[must_use]
    pub fn bound(&self) -> Option<Duration> {
        if self.seed_upload == 0 {
            return None;
        }
        let f = self.file_bytes as f64;
        let us = self.seed_upload as f64;
        let n = self.leecher_uploads.len() as f64;
        let total: f64 = us + self.leecher_uploads.iter().map(|&u| u as f64).sum::<f64>();
        let mut t = (f / us).max(n * f / total);
        if let Some(d) = self.download_min {
            t = t.max(f / d as f64);
        }
        Some(Duration::from_secs_f64(t))
    }
}

/// One node's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeReport {
    /// It started as a seed.
    pub seed: bool,
    /// Its behaviour.
    pub behaviour: Behaviour,
    /// Its upload capacity, bytes/s (0: unlimited).
    pub up_bw: u64,
    /// Its download capacity, bytes/s (0: unlimited).
    pub down_bw: u64,
    /// When it joined.
    pub joined_at: Option<Duration>,
    /// When it completed (`Some(0)` for a seed).
    pub completed_at: Option<Duration>,
    /// When it left.
    pub left_at: Option<Duration>,
    /// Payload bytes it sent.
    pub uploaded: u64,
    /// Payload bytes it received.
    pub downloaded: u64,
}

/// A run's outcome: per node, who sent what to whom, and the fluid bound.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Virtual time of the report.
    pub at: Duration,
    /// Steps taken.
    pub steps: u64,
    /// Per node, in order.
    pub nodes: Vec<NodeReport>,
    /// Who sent how much to whom.
    pub transfers: TransferMatrix,
    /// The fluid-model bound, when the model applies.
    pub fluid_bound: Option<Duration>,
}

impl Report {
    /// The report of `sim` as it stands.
    #[must_use]
    pub fn of(sim: &Sim) -> Self {
        let transfers = sim.transfers().clone();
        let nodes = sim
            .nodes()
            .iter()
            .enumerate()
            .map(|(i, n)| NodeReport {
                seed: n.spec().seed,
                behaviour: n.spec().behaviour,
                up_bw: n.spec().up_bw,
                down_bw: n.spec().down_bw,
                joined_at: n.log().joined_at,
                completed_at: n.log().completed_at,
                left_at: n.log().left_at,
                uploaded: transfers.sent_by(i),
                downloaded: transfers.received_by(i),
            })
            .collect();
        Self {
            at: sim.now(),
            steps: sim.steps(),
            nodes,
            transfers,
            fluid_bound: FluidModel::of(sim).and_then(|m| m.bound()),
        }
    }

    /// The latest completion among nodes that did not start as seeds (`None` if one has
    /// not completed, or there are none).
    #[must_use]
    pub fn last_completion(&self) -> Option<Duration> {
        let mut last = None;
        for n in self.nodes.iter().filter(|n| !n.seed) {
            last = last.max(Some(n.completed_at?));
        }
        last
    }
}

impl fmt::Display for Report {
    /// A table: one row per node (role, links, completion, totals), then who sent how many
    /// KiB to whom.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = |d: Option<Duration>| {
            d.map_or_else(|| "-".to_owned(), |d| format!("{:.1}", d.as_secs_f64()))
        };
        let kib = |b: u64| b / 1024;
        writeln!(
            f,
            "{:>4} {:<8} {:>9} {:>9} {:>8} {:>8} {:>10} {:>10}",
            "node", "role", "up KiB/s", "dn KiB/s", "done s", "left s", "sent KiB", "recv KiB"
        )?;
        for (i, n) in self.nodes.iter().enumerate() {
            let role = match (n.seed, n.behaviour) {
                (_, Behaviour::FreeRider) => "freeride",
                (_, Behaviour::Corrupt { .. }) => "corrupt",
                (true, Behaviour::Honest) => "seed",
                (false, Behaviour::Honest) => "leech",
            };
            let bw = |b: u64| {
                if b == 0 {
                    "inf".to_owned()
                } else {
                    kib(b).to_string()
                }
            };
            writeln!(
                f,
                "{i:>4} {role:<8} {:>9} {:>9} {:>8} {:>8} {:>10} {:>10}",
                bw(n.up_bw),
                bw(n.down_bw),
                secs(n.completed_at),
                secs(n.left_at),
                kib(n.uploaded),
                kib(n.downloaded)
            )?;
        }
        if let Some(t) = self.fluid_bound {
            writeln!(f, "fluid-model bound T* = {:.2} s", t.as_secs_f64())?;
        }
        writeln!(f, "KiB sent (row) to (column):")?;
        write!(f, "{:>6}", "")?;
        for j in 0..self.transfers.len() {
            write!(f, " {j:>6}")?;
        }
        writeln!(f)?;
        for i in 0..self.transfers.len() {
            write!(f, "{i:>6}")?;
            for j in 0..self.transfers.len() {
                write!(f, " {:>6}", kib(self.transfers.get(i, j)))?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jain_index_bounds() {
        assert_eq!(jain_index(&[]), None);
        assert_eq!(jain_index(&[0.0, 0.0]), None);
        assert!((jain_index(&[5.0, 5.0, 5.0, 5.0]).unwrap_or(0.0) - 1.0).abs() < 1e-12);
        assert!((jain_index(&[8.0, 0.0, 0.0, 0.0]).unwrap_or(0.0) - 0.25).abs() < 1e-12);
    }

    #[test]
    fn fluid_bound_takes_the_tightest_term() {
        let mib = 1024 * 1024;
        // F = 10 MiB, u_s = 1 MiB/s, two leechers of 0.5 MiB/s: seed term 10 s, swarm term
        // 2 × 10 / 2 = 10 s; a 0.25 MiB/s download makes 40 s.
        let mut m = FluidModel {
            file_bytes: 10 * mib,
            seed_upload: mib,
            leecher_uploads: vec![mib / 2, mib / 2],
            download_min: None,
        };
        assert_eq!(m.bound(), Some(Duration::from_secs(10)));
        m.leecher_uploads = vec![0, 0, 0, 0];
        assert_eq!(m.bound(), Some(Duration::from_secs(40)), "N·F/u_s");
        m.download_min = Some(mib / 8);
        assert_eq!(m.bound(), Some(Duration::from_secs(80)));
        m.seed_upload = 0;
        assert_eq!(m.bound(), None);
    }

    #[test]
    fn transfer_matrix_windows() {
        let mut m = TransferMatrix::new(3);
        m.add(0, 1, 10);
        let before = m.clone();
        m.add(0, 1, 5);
        m.add(2, 0, 7);
        m.add(3, 0, 99);
        let window = m.since(&before);
        assert_eq!(window.get(0, 1), 5);
        assert_eq!(window.get(2, 0), 7);
        assert_eq!(m.sent_by(0), 15);
        assert_eq!(m.received_by(0), 7);
        assert_eq!(m.get(5, 5), 0);
    }
}
