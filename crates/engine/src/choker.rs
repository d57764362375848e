//! Whom we upload to. Regular slots: while downloading, tit-for-tat (the interested peers that
//! gave us the most over the last ~20 s; ties by what we gave them, then current holders, then
//! at random); once finished, libtorrent's round robin (a peer keeps its slot until it got its
//! quota or its time slice, then the peers that waited longest come in). One optimistic slot on
//! top, rotated every `optimistic_interval`, newcomers and peers holding almost nothing three
//! times as likely, peers that never answered an optimistic unchoke with one half as likely. A peer that becomes interested is unchoked at once if a slot is free, so
//! the first block flows within a round trip of connecting. Slots move on at a piece boundary
//! as soon as their holder has had its quota and someone waits (`rotate_on_quota`): the seed's
//! round robin and the optimistic slot do not wait for the next 10 s / 30 s timer, so peers
//! with nothing get a piece, and start uploading it, sooner. The ranking functions are pure,
//! over [`Candidate`] values.

use std::cmp::Reverse;
use std::time::Duration;

use bitswarm_wire::Message;
use rand::Rng;

use crate::picker::NONE;
use crate::rate::RATE_WINDOW_SECS;
use crate::torrent::Torrent;

/// What a rechoke gives a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Regular,
    Optimistic,
    Choked,
}

/// A peer as the choker sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) slot: u32,
    /// It holds a regular slot now.
    pub(crate) unchoked: bool,
    /// It is interested in us now.
    pub(crate) interested: bool,
    /// Bytes it sent us over the choke window.
    pub(crate) downloaded_recent: u64,
    /// Bytes we sent it over the choke window.
    pub(crate) uploaded_recent: u64,
    /// Bytes we sent it since its current unchoke.
    pub(crate) uploaded_since_unchoke: u64,
    /// How long its current unchoke has lasted.
    pub(crate) unchoked_for: Option<Duration>,
    /// How long ago it was last unchoked (`None`: never).
    pub(crate) last_unchoked_ago: Option<Duration>,
    /// How much of the torrent it has announced, in steps of `1 / PROGRESS_STEPS`.
    pub(crate) progress: u32,
    pub(crate) tiebreak: u32,
}

/// Leecher mode order, best first: interested, most downloaded from, current holders, least
/// uploaded to, random (a peer that wants nothing from us never outranks one that does). Among peers that gave us equally (typically nothing), the one we gave
/// least goes first: ties rotate instead of rewarding whoever we already fed (a free-rider
/// fresh from an optimistic unchoke would otherwise win every tie).
pub(crate) fn rank_leecher(candidates: &mut [Candidate]) {
    candidates.sort_by_key(|c| {
        (
            !c.interested,
            Reverse(c.downloaded_recent),
            !c.unchoked,
            c.uploaded_recent,
            c.tiebreak,
        )
    });
}

/// Seed mode round robin, best first: current holders still under their quota and time
/// slice; then the least complete (by `progress`: the round robin runs among peers within
/// the same step); then those never unchoked; then those unchoked longest ago; then those we
/// uploaded least to recently; random.
pub(crate) fn rank_seeder(candidates: &mut [Candidate], quota_bytes: u64, slice: Duration) {
    candidates.sort_by_key(|c| {
        let keep = c.unchoked
            && c.uploaded_since_unchoke < quota_bytes
            && c.unchoked_for.is_some_and(|d| d < slice);
        (
            !keep,
            c.progress,
            c.last_unchoked_ago.is_some(),
            Reverse(c.last_unchoked_ago),
            c.uploaded_recent,
            c.tiebreak,
        )
    });
}

/// Seed mode serves the least complete peers first, by steps of this fraction of the
/// torrent: the last completion of a swarm is its slowest leecher's, and under tit-for-tat a
/// slow uploader gets about what it gives and falls behind; when the fast ones are done it is
/// left alone, held back by its own download link (sim, netns-shaped swarm: 36 % when the
/// first leecher completed). Coarse steps, not exact piece counts: within a step the round
/// robin still spreads the initial seed's fresh pieces over everyone, fast uploaders
/// included (sim, seeds 20–31, mean last completion / T* on the netns-shaped swarm and on the
/// fluid test's: exact counts 1.11× and 1.30×, eighths 1.14× and 1.25×, quarters 1.15× and
/// 1.25×; without this 1.26× and 1.30×).
const PROGRESS_STEPS: u32 = 8;

/// How much likelier the least complete optimistic candidate is than the most complete one
/// (sim, 12 seeds: 8–32 all bring the netns-shaped swarm from 1.26 to 1.16–1.19 × T*).
const LAGGARD_WEIGHT: u32 = 16;

/// Scales each `(slot, weight, pieces)` weight by `1 + LAGGARD_WEIGHT × behind`, `behind`
/// running from 0 (the most pieces among them) to almost 1 (the fewest).
pub(crate) fn weigh_laggards(choices: &mut [(u32, u32, u32)]) {
    let most = choices.iter().map(|c| c.2).max().unwrap_or(0);
    let fewest = choices.iter().map(|c| c.2).min().unwrap_or(0);
    let span = u64::from(most - fewest) + 1;
    for c in choices.iter_mut() {
        let scale = 1 + u64::from(LAGGARD_WEIGHT) * u64::from(most - c.2) / span;
        c.1 = u32::try_from(u64::from(c.1) * scale).unwrap_or(u32::MAX);
    }
}

/// A weighted random choice among `(slot, weight)`.
pub(crate) fn pick_weighted(choices: &[(u32, u32)], rng: &mut impl Rng) -> Option<u32> {
    let total: u64 = choices.iter().map(|&(_, w)| u64::from(w)).sum();
    if total == 0 {
        return None;
    }
    let mut r = rng.gen_range(0..total);
    for &(slot, weight) in choices {
        if r < u64::from(weight) {
            return Some(slot);
        }
        r -= u64::from(weight);
    }
    None
}

impl Torrent {
    pub(crate) fn on_interested(&mut self, slot: u32) {
        if let Some(peer) = self.peer_mut(slot) {
            peer.peer_interested = true;
        }
        self.try_unchoke_now(slot);
    }

    /// The peer keeps its unchoke until the next rechoke (which gives it to an interested
    /// peer if one waits), or until a newly interested peer that gave us more needs the slot:
    /// a good partner that is briefly not interested (it caught up with us) does not lose its
    /// slot to whoever is waiting — and a free-rider is always waiting.
    pub(crate) fn on_not_interested(&mut self, slot: u32) {
        if let Some(peer) = self.peer_mut(slot) {
            peer.peer_interested = false;
        }
    }

    /// Unchokes a newly interested peer at once if a regular slot is free, or held by a peer
    /// that is not interested and gave us strictly less than this one did recently; else
    /// takes the optimistic slot if it is free or its holder is not interested. Never on a
    /// tie: both gave nothing, and a free-rider that toggles its interest would re-grab a
    /// slot between rechokes (and a partner that caught up with us would lose its own).
    fn try_unchoke_now(&mut self, slot: u32) {
        let seed_mode = self.is_finished();
        let now_ms = self.now_ms();
        let Some(peer) = self.peer(slot) else {
            return;
        };
        if !peer.am_choking || !peer.peer_interested || (!seed_mode && peer.snubbed) {
            return;
        }
        let given = |p: &crate::peer::Peer| p.download.bytes_in(now_ms, RATE_WINDOW_SECS);
        let newcomer_gave = given(peer);
        let idle = |p: &crate::peer::Peer| !p.am_choking && !p.peer_interested;
        let idle_regular = self
            .peers
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((i as u32, p.as_ref()?)))
            .filter(|(_, p)| idle(p) && !p.optimistic && given(p) < newcomer_gave)
            .min_by_key(|(_, p)| given(p))
            .map(|(i, _)| i);
        let idle_optimistic = self.peer(self.optimistic).is_some_and(idle);
        if self.regular_unchoked < self.config.unchoke_slots {
            self.unchoke_peer(slot, false);
        } else if let Some(holder) = idle_regular {
            self.choke_peer(holder);
            self.unchoke_peer(slot, false);
        } else if self.optimistic == NONE {
            self.unchoke_peer(slot, true);
        } else if idle_optimistic {
            self.choke_peer(self.optimistic);
            self.unchoke_peer(slot, true);
        }
    }

    /// Before `slot` is handed a block that starts a new piece: if it has had its share
    /// since it was unchoked (blocks sent and in flight) and a choked peer is waiting, the
    /// slot moves on now instead of at the next rechoke or optimistic rotation; returns
    /// whether `slot` was choked. Seed mode, regular slot: `seed_quota_pieces` pieces' worth,
    /// then the round robin runs (4 slots rotated every 10 s serve 20 leechers once in 40 s,
    /// while each could be uploading what it got). Optimistic slot, either mode:
    /// `optimistic_quota_pieces` pieces' worth, then another peer gets it — a peer with
    /// nothing becomes an uploader as soon as it holds one piece. Only at a piece boundary: a
    /// peer choked mid-piece holds a partial piece that perhaps only we can complete.
    pub(crate) fn rotate_on_quota(&mut self, slot: u32) -> bool {
        let seed_mode = self.is_finished();
        let piece = u64::from(self.geometry.piece_length);
        let (seed_quota, optimistic_quota) = (
            u64::from(self.config.seed_quota_pieces) * piece,
            u64::from(self.config.optimistic_quota_pieces) * piece,
        );
        let Some(peer) = self.peer(slot) else {
            return false;
        };
        let in_flight = peer.upload_in_flight as u64 * u64::from(crate::BLOCK_LEN);
        let given = peer.upload.total() - peer.uploaded_at_unchoke + in_flight;
        let rotate_regular =
            seed_mode && !peer.am_choking && !peer.optimistic && given >= seed_quota;
        let rotate_optimistic =
            optimistic_quota > 0 && peer.optimistic && given >= optimistic_quota;
        if !(rotate_regular || rotate_optimistic) {
            return false;
        }
        let waiting = self
            .peers
            .iter()
            .flatten()
            .any(|p| p.am_choking && p.peer_interested);
        if !waiting {
            return false;
        }
        if rotate_optimistic {
            self.rotate_optimistic();
        } else {
            self.choke_peer(slot);
            self.fill_unchoke_slots();
        }
        self.peer(slot).is_none_or(|p| p.am_choking)
    }

    pub(crate) fn choke_peer(&mut self, slot: u32) {
        let Some(peer) = self.peer_mut(slot) else {
            return;
        };
        if peer.am_choking {
            return;
        }
        peer.am_choking = true;
        peer.unchoked_at = None;
        let was_optimistic = std::mem::replace(&mut peer.optimistic, false);
        if was_optimistic {
            self.optimistic = NONE;
        } else {
            self.regular_unchoked -= 1;
        }
        self.send(slot, Message::Choke);
        self.drop_upload_queue(slot);
    }

    fn unchoke_peer(&mut self, slot: u32, optimistic: bool) {
        let now = self.now;
        let Some(peer) = self.peer_mut(slot) else {
            return;
        };
        if !peer.am_choking {
            return;
        }
        peer.am_choking = false;
        peer.optimistic = optimistic;
        peer.ever_optimistic |= optimistic;
        peer.unchoked_at = Some(now);
        peer.last_unchoked = Some(now);
        peer.uploaded_at_unchoke = peer.upload.total();
        peer.choked_requests = 0;
        if optimistic {
            self.optimistic = slot;
        } else {
            self.regular_unchoked += 1;
        }
        self.send(slot, Message::Unchoke);
    }

    /// Interested peers eligible for a regular slot, best first for the current mode.
    fn ranked_candidates(&mut self) -> Vec<Candidate> {
        let seed_mode = self.is_finished();
        let (now, now_ms) = (self.now, self.now_ms());
        let mut candidates = Vec::new();
        let pieces = u64::from(self.geometry.piece_count().max(1));
        for (slot, peer) in self.peers.iter_mut().enumerate() {
            let Some(peer) = peer else {
                continue;
            };
            // Only interested peers: a peer that gave us data but wants nothing from us (a
            // seed, a finished leecher, a partner that caught up) would hold a slot it does
            // not use. It keeps its slot only when no interested peer needs it (`rechoke`).
            if !peer.peer_interested || (!seed_mode && peer.snubbed) {
                continue;
            }
            let downloaded_recent = peer.download.bytes_in(now_ms, RATE_WINDOW_SECS);
            peer.choke_tiebreak = self.rng.gen();
            candidates.push(Candidate {
                slot: slot as u32,
                unchoked: !peer.am_choking && !peer.optimistic,
                interested: peer.peer_interested,
                downloaded_recent,
                uploaded_recent: peer.upload.bytes_in(now_ms, RATE_WINDOW_SECS),
                uploaded_since_unchoke: peer.upload.total() - peer.uploaded_at_unchoke,
                unchoked_for: peer.unchoked_at.map(|t| now.saturating_duration_since(t)),
                last_unchoked_ago: peer.last_unchoked.map(|t| now.saturating_duration_since(t)),
                progress: u32::try_from(
                    u64::from(peer.has.count_ones()) * u64::from(PROGRESS_STEPS) / pieces,
                )
                .unwrap_or(PROGRESS_STEPS),
                tiebreak: peer.choke_tiebreak,
            });
        }
        if seed_mode {
            let quota =
                u64::from(self.config.seed_quota_pieces) * u64::from(self.geometry.piece_length);
            rank_seeder(&mut candidates, quota, self.config.optimistic_interval);
        } else {
            rank_leecher(&mut candidates);
        }
        candidates
    }

    /// Gives free regular slots (and a free optimistic slot) to the best choked candidates.
    pub(crate) fn fill_unchoke_slots(&mut self) {
        if self.regular_unchoked < self.config.unchoke_slots {
            for c in self.ranked_candidates() {
                if self.regular_unchoked >= self.config.unchoke_slots {
                    break;
                }
                if self.peer(c.slot).is_some_and(|p| p.am_choking) {
                    self.unchoke_peer(c.slot, false);
                }
            }
        }
        if self.optimistic == NONE {
            self.choose_optimistic();
        }
    }

    /// The periodic reassignment of regular slots. The new assignment (regular holders and
    /// the optimistic peer) is decided first, so a peer that stays unchoked in another role
    /// gets no choke/unchoke pair.
    pub(crate) fn rechoke(&mut self) {
        let ranked = self.ranked_candidates();
        let mut keep = vec![false; self.peers.len()];
        for c in ranked.iter().take(self.config.unchoke_slots) {
            if let Some(k) = keep.get_mut(c.slot as usize) {
                *k = true;
            }
        }
        // Slots no interested peer needs stay with their current (not interested) holders.
        let mut spare = self.config.unchoke_slots.saturating_sub(ranked.len());
        for (slot, peer) in self.peers.iter().enumerate() {
            let holder = peer
                .as_ref()
                .is_some_and(|p| !p.am_choking && !p.optimistic && !p.peer_interested);
            if spare > 0 && holder {
                if let Some(k) = keep.get_mut(slot) {
                    *k = true;
                    spare -= 1;
                }
            }
        }
        let is_kept = |slot: u32| keep.get(slot as usize).copied().unwrap_or(false);
        let current = self.optimistic;
        let optimistic = if current != NONE && !is_kept(current) {
            current
        } else {
            self.optimistic_choice(&keep).unwrap_or(NONE)
        };
        let slots = self.peer_slots();
        let role = |slot: u32| {
            if is_kept(slot) {
                Role::Regular
            } else if slot == optimistic {
                Role::Optimistic
            } else {
                Role::Choked
            }
        };
        // Chokes first, then role changes without messages, then unchokes: the regular count
        // never exceeds the slots.
        for &slot in &slots {
            if role(slot) == Role::Choked {
                self.choke_peer(slot);
            }
        }
        for &slot in &slots {
            let unchoked = self.peer(slot).is_some_and(|p| !p.am_choking);
            match role(slot) {
                Role::Choked => {}
                r if unchoked => self.change_role(slot, r == Role::Optimistic),
                r => self.unchoke_peer(slot, r == Role::Optimistic),
            }
        }
    }

    /// Switches an unchoked peer between a regular and the optimistic slot, silently.
    fn change_role(&mut self, slot: u32, optimistic: bool) {
        let Some(peer) = self.peer_mut(slot) else {
            return;
        };
        if peer.optimistic == optimistic {
            return;
        }
        peer.optimistic = optimistic;
        peer.ever_optimistic |= optimistic;
        if optimistic {
            self.regular_unchoked -= 1;
            self.optimistic = slot;
        } else {
            if self.optimistic == slot {
                self.optimistic = NONE;
            }
            self.regular_unchoked += 1;
        }
    }

    /// The periodic rotation of the optimistic unchoke.
    pub(crate) fn rotate_optimistic(&mut self) {
        let old = self.optimistic;
        if let Some(chosen) = self.optimistic_choice(&[]) {
            if old != NONE {
                self.choke_peer(old);
            }
            self.unchoke_peer(chosen, true);
        }
    }

    fn choose_optimistic(&mut self) {
        if let Some(chosen) = self.optimistic_choice(&[]) {
            self.unchoke_peer(chosen, true);
        }
    }

    /// An interested peer that is choked (or, during a rechoke, losing its regular slot:
    /// `keep` marks the slots that keep theirs) at random: newcomers (connected within three
    /// optimistic intervals and never optimistically unchoked) and peers holding almost
    /// nothing three times as likely as others; while downloading, also weighted by how far
    /// behind the others a peer is (the least complete `LAGGARD_WEIGHT + 1` times as likely as
    /// the most complete): the optimistic slot is where a fast leecher's upload reaches the
    /// slow ones that tit-for-tat leaves behind. Peers that had an optimistic unchoke from us
    /// and an interval since but never unchoked us, though they have what we want (a
    /// free-rider is one), are half as likely as others and get no laggard weight.
    fn optimistic_choice(&mut self, keep: &[bool]) -> Option<u32> {
        let rechoke = !keep.is_empty();
        let now = self.now;
        let new_window = self.config.optimistic_interval * 3;
        let starter_pieces = self.config.random_first_pieces.max(1);
        let candidates: Vec<(u32, u32, u32, bool)> = self
            .peers
            .iter()
            .enumerate()
            .filter_map(|(slot, p)| {
                let p = p.as_ref()?;
                let kept = keep.get(slot).copied().unwrap_or(false);
                let available = if rechoke {
                    !kept && !p.optimistic
                } else {
                    p.am_choking
                };
                if !available || !p.peer_interested {
                    return None;
                }
                let new = !p.ever_optimistic
                    && now.saturating_duration_since(p.connected_at) < new_window;
                // A peer that holds almost nothing cannot pay back yet; one piece makes it an
                // uploader, so it is as likely as a newcomer.
                let pieces = p.has.count_ones();
                let starter = !p.seed && pieces < starter_pieces;
                // Given its chance and an interval to answer it, it never unchoked us though
                // it has what we want: it may be a free-rider.
                let unanswered = p.ever_optimistic
                    && p.am_interested
                    && !p.ever_unchoked_us
                    && now.saturating_duration_since(p.connected_at)
                        >= self.config.optimistic_interval;
                let weight = if new || starter {
                    6
                } else if unanswered {
                    1
                } else {
                    2
                };
                Some((slot as u32, weight, pieces, unanswered))
            })
            .collect();
        let (unanswered, answered): (Vec<_>, Vec<_>) = candidates.into_iter().partition(|c| c.3);
        let mut weighed: Vec<(u32, u32, u32)> =
            answered.iter().map(|&(s, w, p, _)| (s, w, p)).collect();
        if !self.is_finished() {
            weigh_laggards(&mut weighed);
        }
        let choices: Vec<(u32, u32)> = weighed
            .iter()
            .map(|&(s, w, _)| (s, w))
            .chain(unanswered.iter().map(|&(s, w, _, _)| (s, w)))
            .collect();
        pick_weighted(&choices, &mut self.rng)
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    use super::*;

    fn cand(slot: u32) -> Candidate {
        Candidate {
            slot,
            unchoked: false,
            interested: true,
            downloaded_recent: 0,
            uploaded_recent: 0,
            uploaded_since_unchoke: 0,
            unchoked_for: None,
            last_unchoked_ago: None,
            progress: 0,
            tiebreak: slot,
        }
    }

    fn order(c: &[Candidate]) -> Vec<u32> {
        c.iter().map(|c| c.slot).collect()
    }

    #[test]
    fn leecher_rewards_who_gives_us_most() {
        let c = |slot, downloaded_recent, uploaded_recent| Candidate {
            downloaded_recent,
            uploaded_recent,
            ..cand(slot)
        };
        let mut list = vec![
            c(0, 100, 10),
            c(1, 900, 0),
            c(2, 100, 50),
            Candidate {
                unchoked: true,
                ..c(3, 100, 0)
            },
            Candidate {
                interested: false,
                ..c(4, 100, 0)
            },
            c(5, 0, 500),
            c(6, 0, 0),
        ];
        rank_leecher(&mut list);
        // Interested first (4 gave as much as 3 but wants nothing: last); most given first;
        // among equals the current holder, then whoever we gave least (6 before 5: no
        // rewarding a peer only because we already fed it).
        assert_eq!(order(&list), vec![1, 3, 0, 2, 6, 5, 4]);
    }

    #[test]
    fn seeder_rotates_holders_that_had_their_share() {
        let secs = Duration::from_secs;
        let quota = 1000;
        let mut c = vec![
            // Holder under quota and within its slice: keeps its slot.
            Candidate {
                unchoked: true,
                uploaded_since_unchoke: 10,
                unchoked_for: Some(secs(5)),
                last_unchoked_ago: Some(secs(5)),
                ..cand(0)
            },
            // Holder over quota: goes behind those waiting.
            Candidate {
                unchoked: true,
                uploaded_since_unchoke: 5000,
                unchoked_for: Some(secs(5)),
                last_unchoked_ago: Some(secs(5)),
                ..cand(1)
            },
            // Waiting, unchoked 100 s ago.
            Candidate {
                last_unchoked_ago: Some(secs(100)),
                ..cand(2)
            },
            // Never unchoked.
            cand(3),
            // Holder past its time slice.
            Candidate {
                unchoked: true,
                unchoked_for: Some(secs(40)),
                last_unchoked_ago: Some(secs(40)),
                ..cand(4)
            },
        ];
        rank_seeder(&mut c, quota, secs(30));
        assert_eq!(order(&c), vec![0, 3, 2, 4, 1]);
        // The least complete first, the round robin's order among equals; a holder under
        // its quota still keeps its slot.
        let progress = [7, 1, 5, 5, 1];
        for c in &mut c {
            c.progress = progress[c.slot as usize];
        }
        rank_seeder(&mut c, quota, secs(30));
        assert_eq!(order(&c), vec![0, 4, 1, 3, 2]);
    }

    #[test]
    fn optimistic_weights_favour_laggards() {
        let mut choices = vec![(0, 1, 100), (1, 3, 100), (2, 1, 0), (3, 1, 50)];
        weigh_laggards(&mut choices);
        let weights: Vec<u32> = choices.iter().map(|c| c.1).collect();
        // The most complete keep their weight (a newcomer's 3 stays 3); the fewest pieces
        // get 1 + 16 × 100/101, halfway 1 + 16 × 50/101.
        assert_eq!(weights, vec![1, 3, 16, 8]);
        let mut same = vec![(0, 1, 7), (1, 3, 7)];
        weigh_laggards(&mut same);
        assert_eq!(same, vec![(0, 1, 7), (1, 3, 7)]);
    }

    #[test]
    fn weighted_choice_follows_weights() {
        let mut rng = SmallRng::seed_from_u64(3);
        let choices = [(7, 3), (8, 1)];
        let sevens = (0..4000)
            .filter(|_| pick_weighted(&choices, &mut rng) == Some(7))
            .count();
        assert!((2800..3200).contains(&sevens), "{sevens}");
        assert_eq!(pick_weighted(&[], &mut rng), None);
        assert_eq!(pick_weighted(&[(1, 0)], &mut rng), None);
    }
}
