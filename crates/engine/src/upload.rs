//! The upload side of a peer: validating and queueing its requests, handing blocks to the
//! runtime at most `upload_in_flight_max` at a time, cancels, and upload accounting. What we
//! serve is only ever a verified piece, and only to a peer we unchoked.

use bitswarm_wire::{BlockRef, Message};

use crate::action::{Action, DisconnectReason, ProtocolViolation};
use crate::config::UPLOAD_WINDOW_MIN;
use crate::picker::NONE;
use crate::torrent::{slot_mut, Torrent};

/// Seconds of history behind the upload rate that sets the upload window.
const UPLOAD_RATE_WINDOW_SECS: usize = 3;

impl Torrent {
    /// A request from the peer: queued if valid, we have the piece and the peer is unchoked;
    /// otherwise rejected (fast extension) or ignored, and counted.
    pub(crate) fn on_request(&mut self, slot: u32, block: BlockRef) {
        let valid = self.geometry.is_valid_request(&block)
            && self.have.has(block.piece)
            && self.super_seed_allows(slot, block.piece);
        let queue_max = self.config.peer_requests_max;
        let Some(peer) = slot_mut(&mut self.peers, slot) else {
            return;
        };
        if valid && !peer.am_choking && peer.upload_queue.len() < queue_max {
            // Duplicates are not looked for: serving one twice costs us what serving another
            // block would, and the check would be O(queue) per request.
            peer.upload_queue.push_back(block);
            self.serve_uploads(slot);
            return;
        }
        // Requests that crossed our choke on the wire are expected; only many are abuse.
        if valid && peer.am_choking {
            peer.choked_requests += 1;
        } else {
            peer.bad_requests += 1;
        }
        let abuse = peer.choked_requests.max(peer.bad_requests) > self.config.bad_requests_max;
        if peer.info.fast {
            self.send(slot, Message::RejectRequest(block));
        }
        if abuse {
            let reason = DisconnectReason::Protocol(ProtocolViolation::BadRequests);
            self.disconnect(slot, reason);
        }
    }

    /// The peer withdrew a request: dropped if still queued (with the fast extension a
    /// cancelled request is answered with a reject, BEP 6).
    pub(crate) fn on_cancel(&mut self, slot: u32, block: BlockRef) {
        let Some(peer) = self.peer_mut(slot) else {
            return;
        };
        let Some(pos) = peer.upload_queue.iter().position(|b| *b == block) else {
            return;
        };
        peer.upload_queue.remove(pos);
        if peer.info.fast {
            self.send(slot, Message::RejectRequest(block));
        }
    }

    /// Hands queued requests to the runtime while the peer has upload slots free. Before a
    /// block that starts a piece, the peer's unchoke may move on (`rotate_on_quota`).
    pub(crate) fn serve_uploads(&mut self, slot: u32) {
        let max = self.upload_window();
        let now = self.now;
        loop {
            let Some(peer) = self.peer(slot) else {
                return;
            };
            let starts_piece = peer.upload_queue.front().is_some_and(|b| b.offset == 0);
            let window_full = peer.upload_in_flight >= max;
            if peer.upload_queue.is_empty() {
                return;
            }
            // The quota counts blocks in flight, so the slot can move on before they are sent.
            if starts_piece && self.rotate_on_quota(slot) {
                return; // choked: its queue is dropped
            }
            if window_full {
                return;
            }
            let Some(peer) = slot_mut(&mut self.peers, slot) else {
                return;
            };
            let Some(block) = peer.upload_queue.pop_front() else {
                return;
            };
            peer.upload_in_flight += 1;
            peer.last_sent = now;
            self.actions.push_back(Action::ServeBlock {
                peer: peer.key,
                block,
            });
        }
    }

    /// How many blocks each unchoked peer may have handed to the runtime and not yet sent:
    /// `upload_queue_time` of our upload rate shared equally among the unchoked peers (equal
    /// windows keep the uplink's share equal too), within `UPLOAD_WINDOW_MIN ..=
    /// upload_in_flight_max`. Deep enough to keep a fast link busy through the runtime's
    /// round trip, shallow enough that our own requests and HAVEs are not stuck behind
    /// seconds of queued blocks on a slow one.
    pub(crate) fn upload_window(&self) -> usize {
        let max = self.config.upload_in_flight_max;
        let unchoked = self.regular_unchoked as u64 + u64::from(self.optimistic != NONE);
        let rate = self.upload.rate(self.now_ms(), UPLOAD_RATE_WINDOW_SECS, 0);
        let queue_ms = self.config.upload_queue_time.as_millis() as u64;
        let bytes = rate.saturating_mul(queue_ms) / 1000 / unchoked.max(1);
        let blocks =
            usize::try_from(bytes.div_ceil(u64::from(crate::BLOCK_LEN))).unwrap_or(usize::MAX);
        blocks.clamp(UPLOAD_WINDOW_MIN.min(max), max)
    }

    /// The runtime sent a block: accounting, then the next queued one.
    pub(crate) fn on_block_sent(&mut self, slot: u32, block: BlockRef) {
        let now_ms = self.now_ms();
        let len = u64::from(block.length);
        self.upload.add(now_ms, len);
        let Some(peer) = self.peer_mut(slot) else {
            return;
        };
        peer.upload_in_flight = peer.upload_in_flight.saturating_sub(1);
        peer.upload.add(now_ms, len);
        // A piece just went out whole and the peer asks for nothing more yet (a super-seeded
        // peer waits for its next piece to be revealed): no need to wait for its next request
        // to move the slot on.
        let idle = peer.upload_in_flight == 0 && peer.upload_queue.is_empty();
        let ends_piece =
            u64::from(block.offset) + len >= u64::from(self.geometry.piece_len(block.piece));
        if idle && ends_piece && self.rotate_on_quota(slot) {
            return;
        }
        self.serve_uploads(slot);
    }

    /// Drops the peer's queued requests (we choked it), rejecting each with the fast extension.
    pub(crate) fn drop_upload_queue(&mut self, slot: u32) {
        let Some(peer) = self.peer_mut(slot) else {
            return;
        };
        let queue = std::mem::take(&mut peer.upload_queue);
        if peer.info.fast {
            for block in queue {
                self.send(slot, Message::RejectRequest(block));
            }
        }
    }
}
