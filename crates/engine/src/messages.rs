//! What a peer tells us: dispatch of every [`Message`] to its handler, and the handlers for
//! what the peer has (bitfield, have, have-all/none), interest both ways, choke from the peer,
//! allowed-fast and the extension handshake. Data-path messages go to `requests.rs` (piece,
//! reject) and `upload.rs` (request, cancel).

use bitswarm_wire::{Bitfield, ExtendedHandshake, Message};
use bytes::Bytes;

use crate::action::{DisconnectReason, ProtocolViolation};
use crate::peer::ALLOWED_FAST_MAX;
use crate::torrent::Torrent;

impl Torrent {
    pub(crate) fn handle_message(&mut self, slot: u32, message: Message) {
        let now = self.now;
        let Some(peer) = self.peer_mut(slot) else {
            return;
        };
        peer.last_received = now;
        let fast_only = matches!(
            message,
            Message::HaveAll
                | Message::HaveNone
                | Message::SuggestPiece { .. }
                | Message::RejectRequest(_)
                | Message::AllowedFast { .. }
        );
        if fast_only && !peer.info.fast {
            let reason = DisconnectReason::Protocol(ProtocolViolation::FastWithoutExtension);
            self.disconnect(slot, reason);
            return;
        }
        match message {
            // Suggestions are hints we do not use; the DHT port is the runtime's business.
            Message::KeepAlive
            | Message::Port(_)
            | Message::Unknown { .. }
            | Message::SuggestPiece { .. } => {}
            Message::Choke => self.on_peer_choke(slot),
            Message::Unchoke => self.on_peer_unchoke(slot),
            Message::Interested => self.on_interested(slot),
            Message::NotInterested => self.on_not_interested(slot),
            Message::Have { piece } => self.on_have(slot, piece),
            Message::Bitfield(bytes) => self.on_bitfield(slot, &bytes),
            Message::Request(block) => self.on_request(slot, block),
            Message::Piece {
                piece,
                offset,
                data,
            } => self.on_piece(slot, piece, offset, data),
            Message::Cancel(block) => self.on_cancel(slot, block),
            Message::HaveAll => self.on_have_all(slot),
            Message::HaveNone => self.on_have_none(slot),
            Message::RejectRequest(block) => self.on_reject(slot, block),
            Message::AllowedFast { piece } => self.on_allowed_fast(slot, piece),
            Message::Extended { id, payload } => self.on_extended(slot, id, &payload),
        }
    }

    fn on_have(&mut self, slot: u32, piece: u32) {
        if piece >= self.geometry.piece_count() {
            let reason = DisconnectReason::Protocol(ProtocolViolation::HaveOutOfRange);
            self.disconnect(slot, reason);
            return;
        }
        let wanted = self.wants(piece);
        let Some(peer) = self.peer_mut(slot) else {
            return;
        };
        peer.announced = true;
        if peer.has_piece(piece) {
            return;
        }
        let _ = peer.has.set(piece);
        peer.interesting += u32::from(wanted);
        let now_seed = peer.has.is_complete();
        self.picker.inc_availability(piece);
        if now_seed {
            self.become_seed(slot);
        }
        self.super_seed_have(slot, piece);
        self.after_announcement(slot);
    }

    fn on_bitfield(&mut self, slot: u32, bytes: &Bytes) {
        let count = self.geometry.piece_count();
        let Ok(bits) = Bitfield::from_bytes(bytes, count) else {
            let reason = DisconnectReason::Protocol(ProtocolViolation::BadBitfield);
            self.disconnect(slot, reason);
            return;
        };
        if !self.start_announcement(slot) {
            return;
        }
        if bits.is_complete() {
            self.on_have_all_checked(slot);
            return;
        }
        let interesting = bits.iter_ones().filter(|&p| self.wants(p)).count() as u32;
        for piece in bits.iter_ones() {
            self.picker.inc_availability(piece);
        }
        if let Some(peer) = self.peer_mut(slot) {
            peer.has = bits;
            peer.interesting = interesting;
        }
        self.after_announcement(slot);
    }

    fn on_have_all(&mut self, slot: u32) {
        if self.start_announcement(slot) {
            self.on_have_all_checked(slot);
        }
    }

    fn on_have_none(&mut self, slot: u32) {
        self.start_announcement(slot);
    }

    /// Marks the peer as having announced its pieces; false (and a disconnect) if it had.
    fn start_announcement(&mut self, slot: u32) -> bool {
        let Some(peer) = self.peer_mut(slot) else {
            return false;
        };
        if peer.announced {
            let reason = DisconnectReason::Protocol(ProtocolViolation::LateBitfield);
            self.disconnect(slot, reason);
            return false;
        }
        peer.announced = true;
        true
    }

    fn on_have_all_checked(&mut self, slot: u32) {
        let count = self.geometry.piece_count();
        if let Some(peer) = self.peer_mut(slot) {
            peer.has = Bitfield::full(count);
            peer.seed = true;
        }
        self.picker.seeds += 1;
        self.recount_interest(slot);
        self.after_announcement(slot);
    }

    /// A peer completed through haves: its pieces leave the per-piece counts and it is counted
    /// as a seed (O(pieces), once per peer).
    fn become_seed(&mut self, slot: u32) {
        let Some(peer) = self.peer_mut(slot) else {
            return;
        };
        peer.seed = true;
        for piece in 0..self.geometry.piece_count() {
            self.picker.dec_availability(piece);
        }
        self.picker.seeds += 1;
    }

    /// After the peer's pieces changed: both seeds → disconnect; else update interest and
    /// keep the pipeline full.
    fn after_announcement(&mut self, slot: u32) {
        let seed = self.peer(slot).is_some_and(|p| p.seed);
        if seed && self.is_complete() {
            self.disconnect(slot, DisconnectReason::BothSeeds);
            return;
        }
        self.super_seed_announced(slot);
        self.update_interest(slot);
        self.fill_requests(slot);
    }

    /// Whether we want `piece` and lack it.
    pub(crate) fn wants(&self, piece: u32) -> bool {
        self.wanted.has(piece) && !self.have.has(piece)
    }

    /// Recounts the pieces `slot` has that we want (O(pieces): bitfields, file selection).
    pub(crate) fn recount_interest(&mut self, slot: u32) {
        let Some(peer) = self.peer(slot) else {
            return;
        };
        let count = if peer.seed {
            self.wanted_missing
        } else {
            peer.has.iter_ones().filter(|&p| self.wants(p)).count() as u32
        };
        if let Some(peer) = self.peer_mut(slot) {
            peer.interesting = count;
        }
    }

    /// Sends interested / not interested when our interest in the peer changed.
    pub(crate) fn update_interest(&mut self, slot: u32) {
        let Some(peer) = self.peer_mut(slot) else {
            return;
        };
        let want = peer.interesting > 0;
        if want == peer.am_interested {
            return;
        }
        peer.am_interested = want;
        let message = if want {
            Message::Interested
        } else {
            Message::NotInterested
        };
        self.send(slot, message);
    }

    fn on_peer_choke(&mut self, slot: u32) {
        let Some(peer) = self.peer_mut(slot) else {
            return;
        };
        peer.peer_choking = true;
        self.leave_current(slot);
        let Some(peer) = self.peer(slot) else {
            return;
        };
        // With the fast extension the peer rejects each request explicitly (BEP 6), so they
        // stay until then. Without it a choke discards them all, but blocks already on the
        // wire still arrive: the requests are released (others may be asked) and kept until
        // the unchoke, so those blocks are still taken rather than wasted.
        if !peer.info.fast {
            self.release_all_requests(slot);
        }
    }

    fn on_peer_unchoke(&mut self, slot: u32) {
        let Some(peer) = self.peer_mut(slot) else {
            return;
        };
        let was_choking = std::mem::replace(&mut peer.peer_choking, false);
        peer.ever_unchoked_us = true;
        if was_choking && !peer.info.fast {
            // Every request we still hold predates the choke: the peer has forgotten them.
            self.drop_all_requests(slot, false);
        }
        self.fill_requests(slot);
    }

    fn on_allowed_fast(&mut self, slot: u32, piece: u32) {
        let count = self.geometry.piece_count();
        let Some(peer) = self.peer_mut(slot) else {
            return;
        };
        if piece < count
            && !peer.allowed_fast.contains(&piece)
            && peer.allowed_fast.len() < ALLOWED_FAST_MAX
        {
            peer.allowed_fast.push(piece);
        }
        self.fill_requests(slot);
    }

    fn on_extended(&mut self, slot: u32, id: u8, payload: &Bytes) {
        if id != 0 {
            self.on_extension_message(slot, id, payload);
            return;
        }
        let Ok(handshake) = ExtendedHandshake::parse(payload) else {
            let reason = DisconnectReason::Protocol(ProtocolViolation::BadExtensionHandshake);
            self.disconnect(slot, reason);
            return;
        };
        let Some(peer) = self.peer_mut(slot) else {
            return;
        };
        if let Some(reqq) = handshake.request_queue_len {
            peer.reqq = Some(reqq);
        }
        if let Some(upload_only) = handshake.upload_only {
            peer.upload_only = upload_only;
        }
        if handshake.client.is_some() {
            peer.client.clone_from(&handshake.client);
        }
        self.on_peer_extensions(slot, &handshake);
    }
}
