//! Matching the engine's `VerifyPiece` with the storage's answer. Storage hashes a piece by
//! itself when its last block arrives (the `PieceDone` completion), so the runtime only pairs
//! the two, in whichever order they come. When the engine asks for per-block digests (smart
//! ban), they are computed from the blocks the runtime kept for that piece (shared `Bytes`, not
//! copies), within `digest_buffer_bytes_max`.

use std::collections::HashMap;

use bitswarm_engine::{Verification, BLOCK_LEN};
use bytes::Bytes;
use sha1::{Digest, Sha1};

/// Blocks of one piece kept for digests.
#[derive(Debug, Default)]
struct Retained {
    blocks: Vec<(u32, Bytes)>,
    /// A block was not kept (over budget): no digests for this attempt.
    incomplete: bool,
}

/// Where one piece's check stands.
#[derive(Debug, Default)]
struct Pending {
    /// The engine asked (`VerifyPiece`) and waits for an answer.
    requested: bool,
    /// The storage's verdict, once it came.
    passed: Option<bool>,
    /// Digests being computed (not yet back).
    computing: bool,
    digests: Option<Vec<[u8; 20]>>,
}

/// What to do after a `VerifyPiece`.
#[derive(Debug)]
pub(super) struct Requested {
    /// Blocks to hash off the runtime, in order, when digests were asked for and all kept.
    pub hash: Option<Vec<Bytes>>,
    /// The answer, when it is already known.
    pub ready: Option<Verification>,
}

/// Checks in progress, by piece.
#[derive(Debug)]
pub(super) struct VerifyTracker {
    retained: HashMap<u32, Retained>,
    retained_bytes: usize,
    retained_max: usize,
    pending: HashMap<u32, Pending>,
}

impl VerifyTracker {
    pub(super) fn new(retained_max: usize) -> Self {
        Self {
            retained: HashMap::new(),
            retained_bytes: 0,
            retained_max,
            pending: HashMap::new(),
        }
    }

    /// A block was handed to storage: keep a reference for digests while the budget allows.
    pub(super) fn retain(&mut self, piece: u32, offset: u32, data: &Bytes) {
        let entry = self.retained.entry(piece).or_default();
        if self.retained_bytes + data.len() > self.retained_max {
            entry.incomplete = true;
            return;
        }
        self.retained_bytes += data.len();
        entry.blocks.push((offset, data.clone()));
    }

    /// The engine asks for `piece`'s verdict.
    pub(super) fn requested(&mut self, piece: u32, want_digests: bool, blocks: u32) -> Requested {
        let kept = self.release(piece);
        let hash = want_digests
            .then(|| kept.filter(|r| !r.incomplete))
            .flatten()
            .and_then(|r| ordered_blocks(r.blocks, blocks));
        let pending = self.pending.entry(piece).or_default();
        pending.requested = true;
        pending.computing = hash.is_some();
        pending.digests = None;
        let ready = self.take_ready(piece);
        Requested { hash, ready }
    }

    /// The storage hashed `piece`.
    pub(super) fn storage_done(&mut self, piece: u32, passed: bool) -> Option<Verification> {
        self.pending.entry(piece).or_default().passed = Some(passed);
        self.take_ready(piece)
    }

    /// Digests asked for by [`VerifyTracker::requested`] are back.
    pub(super) fn digests_done(
        &mut self,
        piece: u32,
        digests: Option<Vec<[u8; 20]>>,
    ) -> Option<Verification> {
        let pending = self.pending.get_mut(&piece)?;
        if !pending.computing {
            return None;
        }
        pending.computing = false;
        pending.digests = digests;
        self.take_ready(piece)
    }

    /// The engine these requests came from is gone (pause): forget its requests and kept
    /// blocks, but keep storage verdicts that nobody asked for yet.
    pub(super) fn forget_requests(&mut self) {
        self.retained.clear();
        self.retained_bytes = 0;
        self.pending.retain(|_, p| {
            p.requested = false;
            p.computing = false;
            p.digests = None;
            p.passed.is_some()
        });
    }

    /// Drops a verdict nobody will ask for (the piece is known good from elsewhere).
    pub(super) fn forget_piece(&mut self, piece: u32) {
        self.release(piece);
        self.pending.remove(&piece);
    }

    fn release(&mut self, piece: u32) -> Option<Retained> {
        let kept = self.retained.remove(&piece)?;
        let bytes: usize = kept.blocks.iter().map(|(_, b)| b.len()).sum();
        self.retained_bytes -= bytes;
        Some(kept)
    }

    fn take_ready(&mut self, piece: u32) -> Option<Verification> {
        let pending = self.pending.get(&piece)?;
        if !pending.requested || pending.computing {
            return None;
        }
        let passed = pending.passed?;
        let block_digests = self.pending.remove(&piece).and_then(|p| p.digests);
        Some(if passed {
            Verification::Passed { block_digests }
        } else {
            Verification::Failed { block_digests }
        })
    }
}

/// The blocks sorted by offset, if they are exactly the piece's `count` 16 KiB blocks.
fn ordered_blocks(mut blocks: Vec<(u32, Bytes)>, count: u32) -> Option<Vec<Bytes>> {
    blocks.sort_unstable_by_key(|(offset, _)| *offset);
    let aligned = blocks
        .iter()
        .zip(0u32..)
        .all(|((offset, _), i)| u64::from(*offset) == u64::from(i) * u64::from(BLOCK_LEN));
    (aligned && blocks.len() == count as usize)
        .then(|| blocks.into_iter().map(|(_, b)| b).collect())
}

/// SHA-1 of each block (run off the runtime).
pub(super) fn block_digests(blocks: &[Bytes]) -> Vec<[u8; 20]> {
    blocks.iter().map(|b| Sha1::digest(b).into()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(byte: u8) -> Bytes {
        Bytes::from(vec![byte; BLOCK_LEN as usize])
    }

    #[test]
    fn answers_in_either_order() {
        let mut t = VerifyTracker::new(1 << 20);
        let r = t.requested(1, false, 2);
        assert!(r.hash.is_none() && r.ready.is_none());
        assert_eq!(
            t.storage_done(1, true),
            Some(Verification::Passed {
                block_digests: None
            })
        );
        assert!(t.storage_done(2, false).is_none(), "nobody asked yet");
        let r = t.requested(2, false, 2);
        assert_eq!(
            r.ready,
            Some(Verification::Failed {
                block_digests: None
            })
        );
        assert!(t.pending.is_empty());
    }

    #[test]
    fn digests_from_kept_blocks_in_offset_order() {
        let mut t = VerifyTracker::new(1 << 20);
        t.retain(0, BLOCK_LEN, &block(2));
        t.retain(0, 0, &block(1));
        let r = t.requested(0, true, 2);
        let blocks = r.hash.expect("digests wanted and every block kept");
        assert!(r.ready.is_none());
        assert_eq!(t.retained_bytes, 0, "kept blocks released once handed out");
        assert!(t.storage_done(0, true).is_none(), "waits for the digests");
        let digests = block_digests(&blocks);
        assert_eq!(digests[0], <[u8; 20]>::from(Sha1::digest(block(1))));
        let v = t.digests_done(0, Some(digests.clone()));
        assert_eq!(
            v,
            Some(Verification::Passed {
                block_digests: Some(digests)
            })
        );
    }

    #[test]
    fn over_budget_means_no_digests() {
        let mut t = VerifyTracker::new(BLOCK_LEN as usize);
        t.retain(3, 0, &block(1));
        t.retain(3, BLOCK_LEN, &block(2));
        let r = t.requested(3, true, 2);
        assert!(r.hash.is_none());
        assert_eq!(
            t.storage_done(3, false),
            Some(Verification::Failed {
                block_digests: None
            })
        );
    }

    #[test]
    fn pause_keeps_unasked_verdicts_only() {
        let mut t = VerifyTracker::new(1 << 20);
        t.requested(1, false, 1);
        t.storage_done(2, true);
        t.retain(5, 0, &block(0));
        t.forget_requests();
        assert_eq!(t.retained_bytes, 0);
        assert!(t.storage_done(1, true).is_none(), "request 1 was forgotten");
        assert_eq!(
            t.requested(2, false, 1).ready,
            Some(Verification::Passed {
                block_digests: None
            })
        );
    }
}
