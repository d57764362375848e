//! In-progress pieces: per block, whether it was received, which peers hold a request for it
//! (at most [`BLOCK_HOLDERS_MAX`]) and who sent it (for smart ban). The picker's global count
//! of free blocks and its list of partial pieces with free blocks are kept exact here, so
//! "is there anything left to request?" and endgame detection are O(1).
//!
//! A block is *free* when it is not received and no peer holds an *active* request for it.
//! A request that timed out (or belongs to a snubbed peer) is *released*: still a holder, so
//! its data is accepted and cancelled when someone else delivers, but no longer active, so the
//! block is free to be asked of someone else.

use std::net::IpAddr;

use crate::config::BLOCK_HOLDERS_MAX;
use crate::picker::{Picker, PieceState, NONE};

/// One block of an in-progress piece.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockSlot {
    pub(crate) received: bool,
    /// Holders whose request is active (not released).
    pub(crate) active: u8,
    /// Peer slots holding a request, active or released; `NONE` marks an empty entry.
    pub(crate) holders: [u32; BLOCK_HOLDERS_MAX],
    /// Who sent the block of this attempt.
    pub(crate) sender: Option<IpAddr>,
}

impl BlockSlot {
    const EMPTY: Self = Self {
        received: false,
        active: 0,
        holders: [NONE; BLOCK_HOLDERS_MAX],
        sender: None,
    };

    pub(crate) fn is_free(&self) -> bool {
        !self.received && self.active == 0
    }

    pub(crate) fn holds(&self, peer: u32) -> bool {
        self.holders.contains(&peer)
    }

    pub(crate) fn holder_count(&self) -> usize {
        self.holders.iter().filter(|&&h| h != NONE).count()
    }

    /// The peers holding a request for this block, active or released.
    pub(crate) fn holder_slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.holders.iter().copied().filter(|&h| h != NONE)
    }
}

/// An in-progress piece.
#[derive(Debug, Clone)]
pub(crate) struct Partial {
    pub(crate) piece: u32,
    pub(crate) blocks: Vec<BlockSlot>,
    pub(crate) free: u32,
    pub(crate) received: u32,
    /// Every block before this index is not free.
    next_free: u32,
    /// The peer slot working through this piece (the one that started it), or `NONE`.
    pub(crate) owner: u32,
    /// Index in `Picker::with_free`, or `NONE`.
    with_free_pos: u32,
    pub(crate) verifying: bool,
    /// The piece failed before: one peer downloads it whole (no sharing, no endgame
    /// duplicates), so smart ban can tell who sent bad data.
    pub(crate) exclusive: bool,
}

impl Partial {
    pub(crate) fn is_complete(&self) -> bool {
        self.received as usize == self.blocks.len()
    }
}

impl Picker {
    /// Starts an open piece: takes it out of its bucket and makes it partial. Returns its slot.
    pub(crate) fn start_partial(&mut self, piece: u32, owner: u32) -> u32 {
        self.take_open(piece);
        let blocks = self.geometry.blocks_in_piece(piece);
        let partial = Partial {
            piece,
            blocks: vec![BlockSlot::EMPTY; blocks as usize],
            free: blocks,
            received: 0,
            next_free: 0,
            owner,
            with_free_pos: NONE,
            verifying: false,
            exclusive: false,
        };
        let slot = if let Some(slot) = self.partial_free_slots.pop() {
            if let Some(s) = self.partials.get_mut(slot as usize) {
                *s = Some(partial);
            }
            slot
        } else {
            self.partials.push(Some(partial));
            (self.partials.len() - 1) as u32
        };
        self.free_blocks += u64::from(blocks);
        self.with_free_insert(slot);
        if let Some(info) = self.pieces.get_mut(piece as usize) {
            info.state = PieceState::Partial;
            info.partial = slot;
        }
        slot
    }

    pub(crate) fn partial(&self, slot: u32) -> Option<&Partial> {
        self.partials.get(slot as usize)?.as_ref()
    }

    pub(crate) fn partial_mut(&mut self, slot: u32) -> Option<&mut Partial> {
        self.partials.get_mut(slot as usize)?.as_mut()
    }

    /// The partial slot of `piece`, if it is partial or verifying.
    pub(crate) fn partial_slot(&self, piece: u32) -> Option<u32> {
        let info = self.pieces.get(piece as usize)?;
        (info.partial != NONE).then_some(info.partial)
    }

    /// The block slot of `block` of `piece`.
    pub(crate) fn block(&self, piece: u32, block: u32) -> Option<&BlockSlot> {
        self.partial(self.partial_slot(piece)?)?
            .blocks
            .get(block as usize)
    }

    /// The first free block of a partial that `peer` does not already hold a (released)
    /// request for. Amortised O(1) through a hint that marks where free blocks start.
    pub(crate) fn next_free_block(&mut self, slot: u32, peer: u32) -> Option<u32> {
        let partial = self.partial_mut(slot)?;
        if partial.free == 0 || partial.verifying {
            return None;
        }
        let start = partial.next_free as usize;
        let mut first_free = None;
        let mut found = None;
        for (i, b) in partial.blocks.iter().enumerate().skip(start) {
            if b.is_free() {
                first_free = first_free.or(Some(i));
                if !b.holds(peer) {
                    found = Some(i as u32);
                    break;
                }
            }
        }
        partial.next_free = first_free.map_or(partial.blocks.len() as u32, |i| i as u32);
        found
    }

    /// Records that peer slot `peer` requested `block` of `piece` (an active request).
    /// The caller made sure the block is not received, `peer` does not hold it yet and a
    /// holder entry is free. Returns false if it could not be recorded.
    pub(crate) fn add_request(&mut self, piece: u32, block: u32, peer: u32) -> bool {
        let Some(slot) = self.partial_slot(piece) else {
            return false;
        };
        let Some(b) = self
            .partial_mut(slot)
            .and_then(|p| p.blocks.get_mut(block as usize))
        else {
            return false;
        };
        let Some(entry) = b.holders.iter_mut().find(|h| **h == NONE) else {
            return false;
        };
        *entry = peer;
        let was_free = b.is_free();
        b.active += 1;
        if was_free {
            self.block_taken(slot);
        }
        true
    }

    /// Turns peer `peer`'s active request for a block into a released one.
    pub(crate) fn release_request(&mut self, piece: u32, block: u32) {
        let Some(slot) = self.partial_slot(piece) else {
            return;
        };
        let Some(b) = self
            .partial_mut(slot)
            .and_then(|p| p.blocks.get_mut(block as usize))
        else {
            return;
        };
        b.active = b.active.saturating_sub(1);
        if b.is_free() {
            self.block_freed(slot, block);
        }
    }

    /// Removes peer `peer`'s request for a block (`active` says whether it was still active).
    pub(crate) fn remove_request(&mut self, piece: u32, block: u32, peer: u32, active: bool) {
        let Some(slot) = self.partial_slot(piece) else {
            return;
        };
        let Some(b) = self
            .partial_mut(slot)
            .and_then(|p| p.blocks.get_mut(block as usize))
        else {
            return;
        };
        if let Some(entry) = b.holders.iter_mut().find(|h| **h == peer) {
            *entry = NONE;
        }
        if active {
            b.active = b.active.saturating_sub(1);
            if b.is_free() {
                self.block_freed(slot, block);
            }
        }
    }

    /// Records a received block (its holders were removed, or are removed right after, by the
    /// caller). Returns true if that completed the piece, which is now verifying.
    pub(crate) fn receive_block(&mut self, piece: u32, block: u32, sender: IpAddr) -> bool {
        let Some(slot) = self.partial_slot(piece) else {
            return false;
        };
        let Some(partial) = self.partial_mut(slot) else {
            return false;
        };
        let Some(b) = partial.blocks.get_mut(block as usize) else {
            return false;
        };
        if b.received {
            return false;
        }
        let was_free = b.is_free();
        b.received = true;
        b.sender = Some(sender);
        partial.received += 1;
        if was_free {
            self.block_taken(slot);
        }
        let complete = self.partial(slot).is_some_and(Partial::is_complete);
        if complete {
            if let Some(p) = self.partial_mut(slot) {
                p.verifying = true;
            }
            self.with_free_remove(slot);
            self.set_state(piece, PieceState::Verifying);
        }
        complete
    }

    /// Drops the partial of `piece` (after verification, or when abandoning it: the caller
    /// removed every request first) and returns it.
    pub(crate) fn remove_partial(&mut self, piece: u32) -> Option<Partial> {
        let slot = self.partial_slot(piece)?;
        self.with_free_remove(slot);
        let partial = self.partials.get_mut(slot as usize)?.take()?;
        if !partial.verifying {
            self.free_blocks -= u64::from(partial.free);
        }
        self.partial_free_slots.push(slot);
        if let Some(info) = self.pieces.get_mut(piece as usize) {
            info.partial = NONE;
        }
        Some(partial)
    }

    /// Sets the owner of a partial.
    pub(crate) fn set_owner(&mut self, slot: u32, owner: u32) {
        if let Some(p) = self.partial_mut(slot) {
            p.owner = owner;
        }
    }

    /// The slots of every in-progress piece.
    pub(crate) fn partial_slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.partials
            .iter()
            .enumerate()
            .filter(|(_, p)| p.is_some())
            .map(|(i, _)| i as u32)
    }

    fn block_taken(&mut self, slot: u32) {
        self.free_blocks -= 1;
        let now_empty = self.partial_mut(slot).is_some_and(|p| {
            p.free -= 1;
            p.free == 0
        });
        if now_empty {
            self.with_free_remove(slot);
        }
    }

    fn block_freed(&mut self, slot: u32, block: u32) {
        self.free_blocks += 1;
        let Some(p) = self.partial_mut(slot) else {
            return;
        };
        p.free += 1;
        p.next_free = p.next_free.min(block);
        if p.free == 1 {
            self.with_free_insert(slot);
        }
    }

    fn with_free_insert(&mut self, slot: u32) {
        let pos = self.with_free.len() as u32;
        if let Some(p) = self.partial_mut(slot) {
            if p.with_free_pos == NONE {
                p.with_free_pos = pos;
                self.with_free.push(slot);
            }
        }
    }

    fn with_free_remove(&mut self, slot: u32) {
        let Some(pos) = self.partial(slot).map(|p| p.with_free_pos) else {
            return;
        };
        if pos == NONE || pos as usize >= self.with_free.len() {
            return;
        }
        self.with_free.swap_remove(pos as usize);
        if let Some(&moved) = self.with_free.get(pos as usize) {
            if let Some(p) = self.partial_mut(moved) {
                p.with_free_pos = pos;
            }
        }
        if let Some(p) = self.partial_mut(slot) {
            p.with_free_pos = NONE;
        }
    }
}
