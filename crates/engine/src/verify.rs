//! What happens when a piece's hash check comes back: HAVE to every peer (only now), interest
//! updates, completion, or re-download and blame (smart ban); bans themselves; and file
//! selection changes, which touch the same piece states.

use std::net::IpAddr;

use bitswarm_wire::{Bitfield, Message};

use crate::action::{Action, BanReason, DisconnectReason, Event, Verification};
use crate::picker::PieceState;
use crate::torrent::Torrent;

impl Torrent {
    /// Whether to ask for per-block digests when verifying `piece` (see `smart_ban.rs`).
    pub(crate) fn wants_block_digests(&self, piece: u32) -> bool {
        let Some(partial) = self
            .picker
            .partial_slot(piece)
            .and_then(|s| self.picker.partial(s))
        else {
            return false;
        };
        let senders: Vec<Option<IpAddr>> = partial.blocks.iter().map(|b| b.sender).collect();
        self.smart_ban.wants_digests(piece, &senders)
    }

    pub(crate) fn on_piece_verified(&mut self, piece: u32, result: Verification) {
        if self.picker.state(piece) != PieceState::Verifying {
            return;
        }
        let Some(partial) = self.picker.remove_partial(piece) else {
            return;
        };
        let senders: Vec<Option<IpAddr>> = partial.blocks.iter().map(|b| b.sender).collect();
        match result {
            Verification::Passed { block_digests } => {
                let bans = self
                    .smart_ban
                    .passed(piece, &senders, block_digests.as_deref());
                self.piece_passed(piece);
                for (ip, reason) in bans {
                    self.ban(ip, reason);
                }
            }
            Verification::Failed { block_digests } => {
                let bans =
                    self.smart_ban
                        .failed(piece, &senders, block_digests.as_deref(), &self.banned);
                self.hash_failures = self.hash_failures.saturating_add(1);
                self.wasted += u64::from(self.geometry.piece_len(piece));
                self.picker.reopen(piece, self.wanted.has(piece));
                self.events.push_back(Event::PieceFailed { piece });
                for (ip, reason) in bans {
                    self.ban(ip, reason);
                }
                for slot in self.peer_slots() {
                    self.fill_requests(slot);
                }
            }
        }
    }

    /// A verified piece: HAVE to everyone, interest, completion.
    fn piece_passed(&mut self, piece: u32) {
        let was_wanted = self.wants(piece);
        let _ = self.have.set(piece);
        self.picker.mark_have(piece);
        if was_wanted {
            self.wanted_missing -= 1;
        }
        self.events.push_back(Event::PieceVerified(piece));
        let complete = self.have.is_complete();
        for slot in self.peer_slots() {
            self.send(slot, Message::Have { piece });
            let Some(peer) = self.peer_mut(slot) else {
                continue;
            };
            if was_wanted && peer.has_piece(piece) {
                peer.interesting -= 1;
            }
            if complete && peer.seed {
                self.disconnect(slot, DisconnectReason::BothSeeds);
                continue;
            }
            self.update_interest(slot);
        }
        if was_wanted && self.wanted_missing == 0 {
            self.events.push_back(Event::Completed);
        }
    }

    /// Bans `ip`: every connection from it is closed and it is never connected again.
    pub(crate) fn ban(&mut self, ip: IpAddr, reason: BanReason) {
        if !self.banned.insert(ip) {
            return;
        }
        self.actions.push_back(Action::Ban { addr: ip, reason });
        self.events.push_back(Event::PeerBanned { addr: ip });
        self.candidates.remove_ip(ip);
        for slot in self.peer_slots() {
            if self.peer(slot).is_some_and(|p| p.info.addr.ip() == ip) {
                self.disconnect(slot, DisconnectReason::Banned);
            }
        }
    }

    /// File selection changed (O(pieces + peers × pieces), a user action).
    pub(crate) fn apply_wanted(&mut self, wanted: &Bitfield) {
        let count = self.geometry.piece_count();
        let mut new = Bitfield::new(count);
        for piece in wanted.iter_ones().filter(|&p| p < count) {
            let _ = new.set(piece);
        }
        let was_finished = self.is_finished();
        for piece in 0..count {
            let want = new.has(piece);
            if want == self.wanted.has(piece) {
                continue;
            }
            if !want && self.picker.state(piece) == PieceState::Partial {
                self.abandon_piece(piece);
            }
            self.picker.set_wanted(piece, want);
        }
        self.wanted = new;
        self.wanted_missing = (0..count).filter(|&p| self.wants(p)).count() as u32;
        for slot in self.peer_slots() {
            self.recount_interest(slot);
            self.update_interest(slot);
            self.fill_requests(slot);
        }
        if !was_finished && self.is_finished() {
            self.events.push_back(Event::Completed);
        }
    }

    /// Cancels every request for a partial piece and drops its data.
    fn abandon_piece(&mut self, piece: u32) {
        for slot in self.peer_slots() {
            while let Some(pos) = self
                .peer(slot)
                .and_then(|p| p.outstanding.iter().position(|o| o.piece == piece))
            {
                self.cancel_entry(slot, pos);
            }
        }
        if self.picker.remove_partial(piece).is_some() {
            self.picker.reopen(piece, false);
        }
    }
}
