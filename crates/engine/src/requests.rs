//! The download side of a peer: keeping its request pipeline full (depth from its rate), which
//! block to ask for (own piece first, abandoned pieces, a new piece, someone else's piece,
//! endgame duplicates), taking delivered blocks (the hot path: O(1), no allocation beyond the
//! action queue), rejects, chokes, block timeouts and snubbing.

use bitswarm_wire::{BlockRef, Message};
use bytes::Bytes;

use crate::action::{Action, DisconnectReason, ProtocolViolation};
use crate::config::BLOCK_HOLDERS_MAX;
use crate::geometry::BLOCK_LEN;
use crate::peer::Outstanding;
use crate::picker::NONE;
use crate::torrent::{slot_mut, Torrent};

/// Seconds of history behind the rate that sets a peer's pipeline depth.
const PIPELINE_RATE_WINDOW_SECS: usize = 3;

impl Torrent {
    /// Asks `slot` for blocks until its pipeline holds its target depth.
    pub(crate) fn fill_requests(&mut self, slot: u32) {
        let Some(peer) = self.peer(slot) else {
            return;
        };
        if !peer.am_interested {
            return;
        }
        let choked = peer.peer_choking;
        if choked && (!peer.info.fast || peer.allowed_fast.is_empty()) {
            return;
        }
        let target = self.pipeline_target(slot);
        while self.peer(slot).is_some_and(|p| p.active < target) {
            let pick = if choked {
                self.pick_allowed_fast(slot)
            } else {
                self.pick_block(slot)
            };
            let Some((piece, block)) = pick else {
                break;
            };
            if !self.issue_request(slot, piece, block) {
                break;
            }
        }
    }

    /// How many requests `slot` should have in flight: its rate × `request_queue_time`, in
    /// blocks, clamped; 1 when snubbed; never more than the peer's `reqq`.
    pub(crate) fn pipeline_target(&self, slot: u32) -> usize {
        let Some(peer) = self.peer(slot) else {
            return 0;
        };
        if peer.snubbed {
            return 1;
        }
        let rate = peer
            .download
            .rate(self.now_ms(), PIPELINE_RATE_WINDOW_SECS, peer.connected_ms);
        let queue_ms = self.config.request_queue_time.as_millis() as u64;
        let blocks = (rate.saturating_mul(queue_ms) / 1000 / u64::from(BLOCK_LEN)) as usize;
        let cap = peer.reqq.map_or(usize::MAX, |q| q as usize).max(1);
        blocks
            .clamp(self.config.request_queue_min, self.config.request_queue_max)
            .min(cap)
    }

    /// The next block to ask `slot` for, in order of preference: its own piece, a piece
    /// nobody works on, a new piece (random first, then rarest first), a piece another peer
    /// works on, and in endgame (if the peer is idle) a block already asked of someone else.
    /// Never a block this peer already holds a request for.
    fn pick_block(&mut self, slot: u32) -> Option<(u32, u32)> {
        let peer = self.peer(slot)?;
        let current = peer.current;
        if current != NONE {
            let usable = self
                .picker
                .partial(current)
                .is_some_and(|p| peer.has_piece(p.piece));
            if usable {
                if let Some(found) = self.next_in_partial(current, slot) {
                    return Some(found);
                }
            }
            self.leave_current(slot);
        }
        // From a seed, a piece nobody else has goes before an abandoned partial piece that
        // other peers can complete: otherwise an initial seed sends many pieces twice
        // (sim: a third of its first copy) while others could send them.
        let skip_shared = self.peer(slot)?.seed && self.picker.has_unshared_open();
        if let Some(found) = self.take_partial_with_free(slot, true, skip_shared) {
            return Some(found);
        }
        let random = self.have.count_ones() < self.config.random_first_pieces;
        let view = self.peers.get(slot as usize)?.as_ref()?.view();
        // A snubbed peer owns nothing: what it starts is open to everyone.
        let owner = if self.peer(slot)?.snubbed { NONE } else { slot };
        if let Some(piece) = self.picker.pick_new_piece(view, random) {
            let partial = self.picker.start_partial(piece, owner);
            let exclusive = self.smart_ban.is_suspect(piece);
            if let Some(p) = self.picker.partial_mut(partial) {
                p.exclusive = exclusive;
            }
            if let Some(peer) = self.peer_mut(slot) {
                peer.current = partial;
            }
            return self.next_in_partial(partial, slot);
        }
        if let Some(found) = self.take_partial_with_free(slot, false, false) {
            return Some(found);
        }
        // Endgame duplicates go to idle peers only, one at a time (libtorrent's strict end
        // game mode): enough to finish without waiting on a slow peer, and every duplicate
        // in flight is a block that will likely arrive twice.
        if self.in_endgame() && self.peer(slot)?.active == 0 {
            return self.pick_endgame(slot);
        }
        None
    }

    /// A free block of an in-progress piece `slot` has: of one nobody owns (`orphans`, which
    /// the peer then owns) or of one another peer owns; with `skip_shared`, not of a piece a
    /// non-seed peer has. O(in-progress pieces with free blocks).
    fn take_partial_with_free(
        &mut self,
        slot: u32,
        orphans: bool,
        skip_shared: bool,
    ) -> Option<(u32, u32)> {
        for i in 0..self.picker.with_free.len() {
            let partial = *self.picker.with_free.get(i)?;
            let Some(p) = self.picker.partial(partial) else {
                continue;
            };
            if (p.owner == NONE) != orphans
                || (!orphans && p.exclusive)
                || (skip_shared && self.picker.is_shared(p.piece))
                || !self.peer(slot)?.has_piece(p.piece)
            {
                continue;
            }
            if let Some(found) = self.next_in_partial(partial, slot) {
                if orphans && !self.peer(slot).is_some_and(|p| p.snubbed) {
                    self.picker.set_owner(partial, slot);
                }
                if let Some(peer) = self.peer_mut(slot) {
                    peer.current = partial;
                }
                return Some(found);
            }
        }
        None
    }

    /// While choked (fast extension): a block of an allowed-fast piece.
    fn pick_allowed_fast(&mut self, slot: u32) -> Option<(u32, u32)> {
        let pieces = self.peer(slot)?.allowed_fast.clone();
        for piece in pieces {
            if !self.peer(slot)?.has_piece(piece) || !self.wants(piece) {
                continue;
            }
            let partial = match self.picker.partial_slot(piece) {
                Some(partial) => partial,
                None if self.picker.state(piece) == crate::picker::PieceState::Open => {
                    self.picker.start_partial(piece, NONE)
                }
                None => continue,
            };
            if let Some(found) = self.next_in_partial(partial, slot) {
                return Some(found);
            }
        }
        None
    }

    fn next_in_partial(&mut self, partial: u32, slot: u32) -> Option<(u32, u32)> {
        let piece = self.picker.partial(partial)?.piece;
        Some((piece, self.picker.next_free_block(partial, slot)?))
    }

    /// The peer moves on from its current piece: it no longer owns it, so blocks freed there
    /// later count as abandoned and anyone takes them first.
    pub(crate) fn leave_current(&mut self, slot: u32) {
        let Some(peer) = self.peer_mut(slot) else {
            return;
        };
        let current = std::mem::replace(&mut peer.current, NONE);
        if self
            .picker
            .partial(current)
            .is_some_and(|p| p.owner == slot)
        {
            self.picker.set_owner(current, NONE);
        }
    }

    /// Endgame: a block not received, that `slot` has not been asked for, asked of fewer than
    /// `endgame_duplicates_max` peers; the least-asked first. Scans in-progress pieces only
    /// (endgame is the tail of a download, where there are few).
    fn pick_endgame(&self, slot: u32) -> Option<(u32, u32)> {
        let peer = self.peer(slot)?;
        let max = self.config.endgame_duplicates_max;
        let mut best: Option<(u8, u32, u32)> = None;
        for partial in self.picker.partial_slots() {
            let Some(p) = self.picker.partial(partial) else {
                continue;
            };
            if p.verifying || p.exclusive || !peer.has_piece(p.piece) {
                continue;
            }
            for (i, b) in p.blocks.iter().enumerate() {
                if b.received || usize::from(b.active) >= max || b.holds(slot) {
                    continue;
                }
                if best.is_none_or(|(active, _, _)| b.active < active) {
                    best = Some((b.active, p.piece, i as u32));
                }
            }
        }
        best.map(|(_, piece, block)| (piece, block))
    }

    /// Records and sends one request. Makes room first if the peer's queue or the block's
    /// holder list is full of released requests (those are cancelled). False if impossible.
    fn issue_request(&mut self, slot: u32, piece: u32, block: u32) -> bool {
        if self
            .picker
            .block(piece, block)
            .is_none_or(|b| b.received || b.holds(slot))
        {
            return false;
        }
        let queue_max = self.config.request_queue_max;
        if self
            .peer(slot)
            .is_some_and(|p| p.outstanding.len() >= queue_max)
        {
            let Some(oldest) = self
                .peer(slot)
                .and_then(|p| p.outstanding.iter().position(|o| o.released))
            else {
                return false;
            };
            self.cancel_entry(slot, oldest);
        }
        let holders_full = self
            .picker
            .block(piece, block)
            .is_some_and(|b| b.holder_count() >= BLOCK_HOLDERS_MAX);
        if holders_full && !self.evict_released_holder(piece, block) {
            return false;
        }
        if !self.picker.add_request(piece, block, slot) {
            return false;
        }
        let now = self.now;
        let Some(peer) = self.peer_mut(slot) else {
            return false;
        };
        if peer.outstanding.is_empty() {
            peer.last_progress = now;
        }
        peer.outstanding.push_back(Outstanding {
            piece,
            block,
            requested_at: now,
            released: false,
        });
        peer.active += 1;
        let request = self.geometry.block_ref(piece, block);
        self.send(slot, Message::Request(request));
        true
    }

    /// Cancels one released holder of a block to make room for a new request.
    fn evict_released_holder(&mut self, piece: u32, block: u32) -> bool {
        let Some(b) = self.picker.block(piece, block) else {
            return false;
        };
        let holders: Vec<u32> = b.holder_slots().collect();
        for holder in holders {
            let pos = self.peer(holder).and_then(|p| {
                p.find_outstanding(piece, block)
                    .filter(|&i| p.outstanding.get(i).is_some_and(|o| o.released))
            });
            if let Some(pos) = pos {
                self.cancel_entry(holder, pos);
                return true;
            }
        }
        false
    }

    /// Removes entry `pos` of `slot`'s queue and sends a cancel for it.
    pub(crate) fn cancel_entry(&mut self, slot: u32, pos: usize) {
        let Some(entry) = self.remove_entry(slot, pos) else {
            return;
        };
        let cap = self.config.request_queue_max as u32;
        if let Some(peer) = self.peer_mut(slot) {
            peer.cancel_credit = (peer.cancel_credit + 1).min(cap);
        }
        let block = self.geometry.block_ref(entry.piece, entry.block);
        self.send(slot, Message::Cancel(block));
    }

    /// Removes entry `pos` of `slot`'s queue from the peer and from the picker.
    fn remove_entry(&mut self, slot: u32, pos: usize) -> Option<Outstanding> {
        let peer = self.peer_mut(slot)?;
        let entry = peer.outstanding.remove(pos)?;
        if !entry.released {
            peer.active -= 1;
        }
        self.picker
            .remove_request(entry.piece, entry.block, slot, !entry.released);
        Some(entry)
    }

    /// A block arrived: the hot path.
    pub(crate) fn on_piece(&mut self, slot: u32, piece: u32, offset: u32, data: Bytes) {
        let len = data.len() as u64;
        let block = offset / BLOCK_LEN;
        let found = if offset % BLOCK_LEN == 0 {
            self.peer(slot)
                .and_then(|p| p.find_outstanding(piece, block))
        } else {
            None
        };
        let expected_len = u64::from(self.geometry.block_len(piece, block));
        if found.is_some() && len != expected_len {
            let reason = DisconnectReason::Protocol(ProtocolViolation::BlockLength);
            self.disconnect(slot, reason);
            return;
        }
        // A block we did not (or no longer) ask this peer for is still taken if we need it:
        // requests that crossed a choke on the wire are answered after the unchoke.
        let needed = offset % BLOCK_LEN == 0
            && len == expected_len
            && self.picker.block(piece, block).is_some_and(|b| !b.received)
            && self.picker.state(piece) == crate::picker::PieceState::Partial;
        if found.is_none() && !needed {
            self.unrequested_block(slot, len);
            return;
        }
        let Some(ip) = self.peer(slot).map(|p| p.info.addr.ip()) else {
            return;
        };
        let complete = self.picker.receive_block(piece, block, ip);
        if let Some(pos) = found {
            self.remove_entry(slot, pos);
        }
        self.cancel_other_holders(piece, block);
        let (now, now_ms) = (self.now, self.now_ms());
        self.download.add(now_ms, len);
        let Some(peer) = self.peer_mut(slot) else {
            return;
        };
        peer.download.add(now_ms, len);
        peer.last_progress = now;
        peer.snubbed = false;
        let key = peer.key;
        self.actions.push_back(Action::StoreBlock {
            peer: key,
            piece,
            offset,
            data,
        });
        if complete {
            self.piece_downloaded(piece);
        }
        self.fill_requests(slot);
    }

    /// Every other peer asked for a block that just arrived gets a cancel.
    fn cancel_other_holders(&mut self, piece: u32, block: u32) {
        let Some(b) = self.picker.block(piece, block) else {
            return;
        };
        let mut holders = [NONE; BLOCK_HOLDERS_MAX];
        for (dst, h) in holders.iter_mut().zip(b.holder_slots()) {
            *dst = h;
        }
        for holder in holders.into_iter().filter(|&h| h != NONE) {
            if let Some(pos) = self
                .peer(holder)
                .and_then(|p| p.find_outstanding(piece, block))
            {
                self.cancel_entry(holder, pos);
                self.fill_requests(holder);
            }
        }
    }

    /// A block we did not ask for (or no longer wanted): dropped. Answers to our cancels are
    /// expected; beyond those, too many end the connection.
    fn unrequested_block(&mut self, slot: u32, len: u64) {
        self.wasted += len;
        self.dropped += len;
        self.unexpected_answer(slot);
    }

    /// Counts a block or reject that answers no outstanding request: covered by a cancel we
    /// sent, or one more strike towards `unrequested_blocks_max` and a disconnect.
    fn unexpected_answer(&mut self, slot: u32) {
        let max = self.config.unrequested_blocks_max;
        let Some(peer) = self.peer_mut(slot) else {
            return;
        };
        if peer.cancel_credit > 0 {
            peer.cancel_credit -= 1;
            return;
        }
        peer.unrequested += 1;
        if peer.unrequested > max {
            let reason = DisconnectReason::Protocol(ProtocolViolation::UnrequestedBlocks);
            self.disconnect(slot, reason);
        }
    }

    /// A reject (fast extension): the request goes back to the picker. The peer is not asked
    /// again before the next tick, so a peer rejecting everything cannot spin us.
    pub(crate) fn on_reject(&mut self, slot: u32, block: BlockRef) {
        let index = self
            .geometry
            .block_index(block.piece, block.offset, block.length);
        let pos = index.and_then(|b| self.peer(slot)?.find_outstanding(block.piece, b));
        if let Some(pos) = pos {
            // The peer will not finish its piece: let others take it first.
            self.leave_current(slot);
            self.remove_entry(slot, pos);
            return;
        }
        self.unexpected_answer(slot);
    }

    /// Forgets every request to `slot` (choke without fast extension, disconnect, snub's
    /// bigger brother), optionally cancelling them on the wire.
    pub(crate) fn drop_all_requests(&mut self, slot: u32, cancel: bool) {
        while self.peer(slot).is_some_and(|p| !p.outstanding.is_empty()) {
            if cancel {
                self.cancel_entry(slot, 0);
            } else {
                self.remove_entry(slot, 0);
            }
        }
    }

    /// Periodic: requests older than `block_timeout` are released (others may be asked), and
    /// a peer that delivered nothing for `snub_timeout` while asked is snubbed.
    pub(crate) fn check_request_timeouts(&mut self, slot: u32) {
        let now = self.now;
        let timeout = self.config.block_timeout;
        let snub_timeout = self.config.snub_timeout;
        let Some(peer) = self.peer_mut(slot) else {
            return;
        };
        let mut released = Vec::new();
        for entry in &mut peer.outstanding {
            if entry.released {
                continue;
            }
            if now.saturating_duration_since(entry.requested_at) < timeout {
                break;
            }
            entry.released = true;
            released.push((entry.piece, entry.block));
        }
        let snub = !peer.snubbed
            && !peer.outstanding.is_empty()
            && now.saturating_duration_since(peer.last_progress) >= snub_timeout;
        peer.active -= released.len();
        let any_released = !released.is_empty();
        for (piece, block) in released {
            self.picker.release_request(piece, block);
        }
        if any_released {
            // Too slow for its piece: others take it over first.
            self.leave_current(slot);
        }
        if snub {
            // Silent that long: its requests are cancelled outright, so the blocks are free
            // for anyone (itself included, with a fresh request) even if it dropped them.
            if let Some(peer) = self.peer_mut(slot) {
                peer.snubbed = true;
            }
            self.leave_current(slot);
            self.drop_all_requests(slot, true);
        }
    }

    /// Releases every active request to `slot`: others may be asked for those blocks, but
    /// if the peer still delivers one it is taken.
    pub(crate) fn release_all_requests(&mut self, slot: u32) {
        self.leave_current(slot);
        let Some(peer) = slot_mut(&mut self.peers, slot) else {
            return;
        };
        let mut released = 0;
        for entry in peer.outstanding.iter_mut().filter(|e| !e.released) {
            entry.released = true;
            released += 1;
            self.picker.release_request(entry.piece, entry.block);
        }
        peer.active -= released;
    }

    /// Every block of `piece` arrived: hand it to the hasher.
    fn piece_downloaded(&mut self, piece: u32) {
        let block_digests = self.wants_block_digests(piece);
        self.actions.push_back(Action::VerifyPiece {
            piece,
            block_digests,
        });
    }
}
