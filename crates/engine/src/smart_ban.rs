//! Smart ban: who to blame for a piece that failed its hash check. A piece sent entirely by
//! one address that fails convicts that address. When several shared the piece, the per-block
//! SHA-1 digests of the failed attempt are kept (with who sent each block), the piece is
//! downloaded again, and when it passes, every address whose block differed from the good one
//! is banned. Addresses that shared blame get strikes; `hash_failures_ban` strikes ban.
//!
//! Bounded: digests are kept for at most [`SUSPECT_PIECES_MAX`] pieces and
//! [`SUSPECT_ATTEMPTS_MAX`] failed attempts each.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::action::BanReason;

/// Pieces whose failed-attempt digests are kept at once.
pub const SUSPECT_PIECES_MAX: usize = 256;
/// Failed attempts of one piece whose digests are kept.
pub const SUSPECT_ATTEMPTS_MAX: usize = 4;
/// Addresses whose strikes are remembered.
const STRIKES_MAX: usize = 4096;

/// A block of a failed attempt: who sent it and its digest.
type BlockRecord = (Option<IpAddr>, [u8; 20]);

#[derive(Debug, Default)]
pub(crate) struct SmartBan {
    strikes_to_ban: u32,
    /// Per piece, per failed attempt, per block.
    suspects: BTreeMap<u32, Vec<Vec<BlockRecord>>>,
    /// Pieces that failed at least once (digests are asked for from then on).
    failed_before: BTreeSet<u32>,
    strikes: BTreeMap<IpAddr, u32>,
}

impl SmartBan {
    pub(crate) fn new(strikes_to_ban: u32) -> Self {
        Self {
            strikes_to_ban,
            ..Self::default()
        }
    }

    /// Whether the runtime should report per-block digests when verifying `piece`: when the
    /// piece failed before (to compare), or when several addresses sent its blocks (to keep
    /// if it fails).
    pub(crate) fn wants_digests(&self, piece: u32, senders: &[Option<IpAddr>]) -> bool {
        self.failed_before.contains(&piece) || distinct(senders).len() > 1
    }

    /// A failed check of `piece` whose blocks came from `senders`. `banned` tells which
    /// addresses are already banned: if one of them took part, it alone is blamed. Returns the
    /// addresses to ban now.
    pub(crate) fn failed(
        &mut self,
        piece: u32,
        senders: &[Option<IpAddr>],
        digests: Option<&[[u8; 20]]>,
        banned: &BTreeSet<IpAddr>,
    ) -> Vec<(IpAddr, BanReason)> {
        self.failed_before.insert(piece);
        let mut liars = Vec::new();
        if let Some(digests) = digests.filter(|d| d.len() == senders.len()) {
            liars = self.changed_their_story(piece, senders, digests);
            self.keep_digests(piece, senders, digests);
        }
        if !liars.is_empty() {
            return liars
                .into_iter()
                .map(|ip| (ip, BanReason::BadBlock { piece }))
                .collect();
        }
        let who = distinct(senders);
        if let [only] = who.as_slice() {
            return vec![(*only, BanReason::SoleContributor { piece })];
        }
        if who.iter().any(|ip| banned.contains(ip)) {
            return Vec::new();
        }
        let mut bans = Vec::new();
        for ip in who {
            if self.strikes.len() >= STRIKES_MAX && !self.strikes.contains_key(&ip) {
                continue;
            }
            let strikes = self.strikes.entry(ip).or_insert(0);
            *strikes += 1;
            if *strikes >= self.strikes_to_ban {
                bans.push((ip, BanReason::HashFailures));
            }
        }
        bans
    }

    /// A passed check of `piece` whose blocks came from `senders`: each of them loses a strike
    /// (libtorrent's trust points), and every address that sent a block differing from the
    /// good one in a failed attempt is returned for banning.
    pub(crate) fn passed(
        &mut self,
        piece: u32,
        senders: &[Option<IpAddr>],
        digests: Option<&[[u8; 20]]>,
    ) -> Vec<(IpAddr, BanReason)> {
        for ip in distinct(senders) {
            if let Some(strikes) = self.strikes.get_mut(&ip) {
                *strikes = strikes.saturating_sub(1);
            }
        }
        self.failed_before.remove(&piece);
        let Some(attempts) = self.suspects.remove(&piece) else {
            return Vec::new();
        };
        let Some(good) = digests else {
            return Vec::new();
        };
        let mut bans: Vec<(IpAddr, BanReason)> = Vec::new();
        for attempt in &attempts {
            for ((sender, digest), good) in attempt.iter().zip(good) {
                let Some(ip) = sender else {
                    continue;
                };
                if digest != good && !bans.iter().any(|(b, _)| b == ip) {
                    bans.push((*ip, BanReason::BadBlock { piece }));
                }
            }
        }
        bans
    }

    /// Strikes against `ip` so far.
    #[cfg(test)]
    pub(crate) fn strikes(&self, ip: IpAddr) -> u32 {
        self.strikes.get(&ip).copied().unwrap_or(0)
    }

    /// Whether `piece` failed before: its re-download should come from one peer, so that the
    /// next result convicts (a failure) or clears and compares (a pass) unambiguously.
    pub(crate) fn is_suspect(&self, piece: u32) -> bool {
        self.failed_before.contains(&piece)
    }

    /// Addresses that sent different data for the same block in two failed attempts: honest
    /// data never changes, so one of the two was a lie.
    fn changed_their_story(
        &self,
        piece: u32,
        senders: &[Option<IpAddr>],
        digests: &[[u8; 20]],
    ) -> Vec<IpAddr> {
        let mut liars: Vec<IpAddr> = Vec::new();
        for attempt in self.suspects.get(&piece).into_iter().flatten() {
            for ((old_sender, old_digest), (sender, digest)) in
                attempt.iter().zip(senders.iter().zip(digests))
            {
                if let (Some(old), Some(new)) = (old_sender, sender) {
                    if old == new && old_digest != digest && !liars.contains(new) {
                        liars.push(*new);
                    }
                }
            }
        }
        liars
    }

    fn keep_digests(&mut self, piece: u32, senders: &[Option<IpAddr>], digests: &[[u8; 20]]) {
        if self.suspects.len() >= SUSPECT_PIECES_MAX && !self.suspects.contains_key(&piece) {
            return;
        }
        let attempts = self.suspects.entry(piece).or_default();
        if attempts.len() < SUSPECT_ATTEMPTS_MAX {
            attempts.push(
                senders
                    .iter()
                    .copied()
                    .zip(digests.iter().copied())
                    .collect(),
            );
        }
    }
}

fn distinct(senders: &[Option<IpAddr>]) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for ip in senders.iter().flatten() {
        if !out.contains(ip) {
            out.push(*ip);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block sender (senders are `Option<IpAddr>`: `None` for a block nobody sent yet).
    #[allow(clippy::unnecessary_wraps)]
    fn ip(n: u8) -> Option<IpAddr> {
        Some(IpAddr::from([127, 0, 0, n]))
    }

    #[test]
    fn sole_contributor_is_banned_at_once() {
        let mut sb = SmartBan::new(3);
        let senders = [ip(1), ip(1), ip(1)];
        assert!(!sb.wants_digests(0, &senders));
        let bans = sb.failed(0, &senders, None, &BTreeSet::new());
        assert_eq!(
            bans,
            vec![(ip(1).unwrap(), BanReason::SoleContributor { piece: 0 })]
        );
        assert!(
            sb.wants_digests(0, &senders),
            "digests are asked for after a failure"
        );
    }

    #[test]
    fn differing_block_convicts_its_sender_only() {
        let mut sb = SmartBan::new(3);
        let senders = [ip(1), ip(2), ip(3)];
        assert!(sb.wants_digests(5, &senders));
        let bad = [[1; 20], [9; 20], [3; 20]];
        assert!(sb
            .failed(5, &senders, Some(&bad), &BTreeSet::new())
            .is_empty());
        assert_eq!(sb.strikes(ip(2).unwrap()), 1);
        let good = [[1; 20], [2; 20], [3; 20]];
        let bans = sb.passed(5, &senders, Some(&good));
        assert_eq!(
            bans,
            vec![(ip(2).unwrap(), BanReason::BadBlock { piece: 5 })]
        );
        assert!(
            sb.passed(5, &senders, Some(&good)).is_empty(),
            "records are consumed"
        );
    }

    #[test]
    fn strikes_accumulate_to_a_ban() {
        let mut sb = SmartBan::new(2);
        let senders = [ip(1), ip(2)];
        assert!(sb.failed(1, &senders, None, &BTreeSet::new()).is_empty());
        let bans = sb.failed(2, &senders, None, &BTreeSet::new());
        assert_eq!(bans.len(), 2);
        assert!(bans.iter().all(|(_, r)| *r == BanReason::HashFailures));
    }

    #[test]
    fn passed_pieces_forgive_strikes() {
        let mut sb = SmartBan::new(2);
        let senders = [ip(1), ip(2)];
        assert!(sb.failed(1, &senders, None, &BTreeSet::new()).is_empty());
        sb.passed(7, &[ip(1)], None);
        assert_eq!(sb.strikes(ip(1).unwrap()), 0);
        let bans = sb.failed(2, &senders, None, &BTreeSet::new());
        assert_eq!(bans, vec![(ip(2).unwrap(), BanReason::HashFailures)]);
    }

    #[test]
    fn a_sender_changing_its_data_is_a_liar() {
        let mut sb = SmartBan::new(9);
        let senders = [ip(1), ip(2)];
        assert!(sb
            .failed(3, &senders, Some(&[[1; 20], [2; 20]]), &BTreeSet::new())
            .is_empty());
        let bans = sb.failed(3, &senders, Some(&[[1; 20], [7; 20]]), &BTreeSet::new());
        assert_eq!(
            bans,
            vec![(ip(2).unwrap(), BanReason::BadBlock { piece: 3 })]
        );
    }

    #[test]
    fn a_banned_participant_takes_the_blame() {
        let mut sb = SmartBan::new(1);
        let senders = [ip(1), ip(2)];
        let banned: BTreeSet<IpAddr> = [ip(2).unwrap()].into();
        assert!(sb.failed(1, &senders, None, &banned).is_empty());
        assert_eq!(sb.strikes(ip(1).unwrap()), 0);
    }
}
