//! Per-torrent piece state under one lock: blocks of incomplete pieces (in memory while the
//! shared `MemoryBudget` allows, otherwise already on disk), pieces being hashed, and the set
//! of verified pieces. Keeping all three together makes "a block for a verified piece is
//! dropped" and "a piece completes exactly once" atomic.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::bitfield::Bitfield;
use crate::error::{Result, StorageError};

/// A bound on the bytes of block data held in memory while their pieces are incomplete,
/// shared by every torrent on a `DiskPool`. Past it, blocks are written through to disk and
/// their piece is hashed partly from disk when it completes.
#[derive(Debug)]
pub struct MemoryBudget {
    max: usize,
    used: AtomicUsize,
}

impl MemoryBudget {
    /// A budget of `max_bytes`.
    #[must_use]
    pub fn new(max_bytes: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max_bytes,
            used: AtomicUsize::new(0),
        })
    }

    /// The configured bound in bytes.
    #[must_use]
    pub fn max(&self) -> usize {
        self.max
    }

    /// Bytes currently held.
    #[must_use]
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Reserves `bytes` if that stays within the bound; released when the guard drops.
    pub(crate) fn try_reserve(self: &Arc<Self>, bytes: usize) -> Option<Reservation> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.max)
            })
            .ok()?;
        Some(Reservation {
            budget: Arc::clone(self),
            bytes,
        })
    }
}

/// Bytes held against a `MemoryBudget`; given back on drop, whichever way the block leaves.
#[derive(Debug)]
pub(crate) struct Reservation {
    budget: Arc<MemoryBudget>,
    bytes: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// One received block of an incomplete piece.
#[derive(Debug)]
pub(crate) enum Block {
    /// Held in memory (hashed and written when the piece completes).
    Mem {
        /// The block.
        data: Bytes,
        /// Its share of the budget, released when the block is dropped.
        _held: Reservation,
    },
    /// Being written through to disk right now; does not count as received yet.
    Writing(u32),
    /// Already on disk; re-read for hashing.
    Disk(u32),
}

impl Block {
    pub(crate) fn len(&self) -> u32 {
        match self {
            // Block lengths were checked against the piece length (a u32) on insert.
            Block::Mem { data, .. } => data.len() as u32,
            Block::Writing(len) | Block::Disk(len) => *len,
        }
    }
}

/// The blocks of a piece that just completed, in offset order.
pub(crate) type PieceBlocks = BTreeMap<u32, Block>;

/// What inserting a block did.
#[derive(Debug)]
pub(crate) enum Insert {
    /// Kept; the piece is still incomplete (or, for `Writing`, the slot is reserved).
    Stored,
    /// Dropped: the piece is verified or being hashed, or the block is a duplicate.
    Ignored,
    /// This block completed the piece; the caller now owns its blocks and must call `finish`.
    Complete(PieceBlocks),
}

#[derive(Debug, Default)]
struct PendingPiece {
    blocks: BTreeMap<u32, Block>,
    received: u32,
}

/// Piece state of one torrent; see the module docs.
#[derive(Debug)]
pub(crate) struct PieceState {
    pending: HashMap<u32, PendingPiece>,
    hashing: HashSet<u32>,
    verified: Bitfield,
}

impl PieceState {
    pub(crate) fn new(piece_count: u32) -> Self {
        Self {
            pending: HashMap::new(),
            hashing: HashSet::new(),
            verified: Bitfield::new(piece_count),
        }
    }

    pub(crate) fn verified(&self) -> &Bitfield {
        &self.verified
    }

    pub(crate) fn verified_mut(&mut self) -> &mut Bitfield {
        &mut self.verified
    }

    /// Adds a block (`Mem` or `Writing`) covering `offset..offset+len` of a piece of
    /// `piece_len` bytes. The range was validated by the caller.
    pub(crate) fn insert(
        &mut self,
        piece: u32,
        piece_len: u32,
        offset: u32,
        block: Block,
    ) -> Result<Insert> {
        if self.verified.get(piece) || self.hashing.contains(&piece) {
            return Ok(Insert::Ignored);
        }
        let entry = self.pending.entry(piece).or_default();
        if entry.blocks.contains_key(&offset) {
            return Ok(Insert::Ignored);
        }
        if overlaps(&entry.blocks, offset, block.len()) {
            return Err(StorageError::BlockOverlap { piece, offset });
        }
        if !matches!(block, Block::Writing(_)) {
            entry.received += block.len();
        }
        entry.blocks.insert(offset, block);
        Ok(self.take_if_complete(piece, piece_len))
    }

    /// Turns a `Writing` slot into `Disk` after its write succeeded.
    pub(crate) fn settle(&mut self, piece: u32, piece_len: u32, offset: u32) -> Insert {
        let Some(entry) = self.pending.get_mut(&piece) else {
            return Insert::Ignored;
        };
        match entry.blocks.get_mut(&offset) {
            Some(block @ Block::Writing(_)) => {
                let len = block.len();
                *block = Block::Disk(len);
                entry.received += len;
                self.take_if_complete(piece, piece_len)
            }
            _ => Insert::Ignored,
        }
    }

    /// Removes a `Writing` slot whose write failed.
    pub(crate) fn abandon(&mut self, piece: u32, offset: u32) {
        if let Some(entry) = self.pending.get_mut(&piece) {
            if matches!(entry.blocks.get(&offset), Some(Block::Writing(_))) {
                entry.blocks.remove(&offset);
            }
            if entry.blocks.is_empty() {
                self.pending.remove(&piece);
            }
        }
    }

    /// Ends the hashing of a completed piece; marks it verified when `ok`.
    pub(crate) fn finish(&mut self, piece: u32, ok: bool) {
        self.hashing.remove(&piece);
        self.verified.set(piece, ok);
    }

    /// Drops the buffered blocks of `piece` (all pieces when `None`), freeing their memory.
    /// Slots being written stay until their writer settles or abandons them.
    pub(crate) fn discard(&mut self, piece: Option<u32>) {
        self.pending.retain(|&p, entry| {
            if piece.is_some_and(|want| want != p) {
                return true;
            }
            entry
                .blocks
                .retain(|_, block| matches!(block, Block::Writing(_)));
            entry.received = 0;
            !entry.blocks.is_empty()
        });
    }

    /// Number of incomplete pieces with blocks held.
    pub(crate) fn pending_count(&self) -> usize {
        self.pending.len()
    }

    fn take_if_complete(&mut self, piece: u32, piece_len: u32) -> Insert {
        let complete = self
            .pending
            .get(&piece)
            .is_some_and(|entry| entry.received == piece_len);
        if !complete {
            return Insert::Stored;
        }
        self.hashing.insert(piece);
        match self.pending.remove(&piece) {
            Some(entry) => Insert::Complete(entry.blocks),
            None => Insert::Stored,
        }
    }
}

/// Whether `offset..offset+len` partly overlaps a neighbouring block.
fn overlaps(blocks: &BTreeMap<u32, Block>, offset: u32, len: u32) -> bool {
    let end = u64::from(offset) + u64::from(len);
    let before = blocks
        .range(..offset)
        .next_back()
        .is_some_and(|(&o, b)| u64::from(o) + u64::from(b.len()) > u64::from(offset));
    let after = blocks
        .range(offset..)
        .next()
        .is_some_and(|(&o, _)| u64::from(o) < end);
    before || after
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem(budget: &Arc<MemoryBudget>, len: usize) -> Block {
        Block::Mem {
            data: Bytes::from(vec![0; len]),
            _held: budget.try_reserve(len).unwrap(),
        }
    }

    #[test]
    fn budget_is_released_when_blocks_leave() {
        let budget = MemoryBudget::new(10);
        let mut state = PieceState::new(2);
        assert!(matches!(
            state.insert(0, 12, 0, mem(&budget, 4)).unwrap(),
            Insert::Stored
        ));
        assert!(matches!(
            state.insert(0, 12, 4, mem(&budget, 4)).unwrap(),
            Insert::Stored
        ));
        assert_eq!(budget.used(), 8);
        assert!(budget.try_reserve(4).is_none(), "over the bound");
        state.discard(None);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn completes_once_with_writing_slots() {
        let budget = MemoryBudget::new(100);
        let mut state = PieceState::new(1);
        assert!(matches!(
            state.insert(0, 8, 0, Block::Writing(4)).unwrap(),
            Insert::Stored
        ));
        assert!(matches!(
            state.insert(0, 8, 0, mem(&budget, 4)).unwrap(),
            Insert::Ignored
        ));
        assert!(matches!(
            state.insert(0, 8, 4, mem(&budget, 4)).unwrap(),
            Insert::Stored
        ));
        let Insert::Complete(blocks) = state.settle(0, 8, 0) else {
            panic!("not complete")
        };
        assert_eq!(blocks.len(), 2);
        assert!(matches!(
            state.insert(0, 8, 0, mem(&budget, 4)).unwrap(),
            Insert::Ignored
        ));
        state.finish(0, true);
        assert!(state.verified().get(0));
        assert!(matches!(
            state.insert(0, 8, 4, mem(&budget, 4)).unwrap(),
            Insert::Ignored
        ));
    }

    #[test]
    fn partial_overlaps_are_rejected() {
        let budget = MemoryBudget::new(100);
        let mut state = PieceState::new(1);
        state.insert(0, 32, 8, mem(&budget, 8)).unwrap();
        for (offset, len) in [(4, 8), (12, 8), (0, 32), (15, 1)] {
            let err = state.insert(0, 32, offset, mem(&budget, len)).unwrap_err();
            assert!(matches!(err, StorageError::BlockOverlap { piece: 0, .. }));
        }
        assert!(matches!(
            state.insert(0, 32, 16, mem(&budget, 16)).unwrap(),
            Insert::Stored
        ));
    }
}
