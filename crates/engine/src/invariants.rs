//! A full consistency check of a torrent's state, for tests and simulations to run after every
//! step. O(pieces + peers × queue): never called by the engine itself.

use crate::config::BLOCK_HOLDERS_MAX;
use crate::picker::{PieceState, NONE};
use crate::torrent::Torrent;

/// A broken internal invariant: a bug in the engine, never caused by a peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvariantViolation {
    /// A request is out for a piece we have, the peer lacks, or that is not in progress.
    #[error("request to peer slot {peer} for piece {piece} block {block}: {why}")]
    BadRequest {
        /// The peer's slot.
        peer: u32,
        /// The piece.
        piece: u32,
        /// The block.
        block: u32,
        /// What is wrong.
        why: &'static str,
    },
    /// Block bookkeeping disagrees with the peers' request queues.
    #[error("piece {piece} block {block}: {why}")]
    BlockState {
        /// The piece.
        piece: u32,
        /// The block.
        block: u32,
        /// What is wrong.
        why: &'static str,
    },
    /// A piece's state disagrees with the have or wanted sets, or the availability index.
    #[error("piece {piece}: {why}")]
    PieceState {
        /// The piece.
        piece: u32,
        /// What is wrong.
        why: &'static str,
    },
    /// A torrent-wide counter disagrees with a recount.
    #[error("counter {name} is {actual}, recount gives {expected}")]
    Counter {
        /// The counter.
        name: &'static str,
        /// Its value.
        actual: u64,
        /// The recount.
        expected: u64,
    },
    /// A per-peer rule is broken.
    #[error("peer slot {peer}: {why}")]
    Peer {
        /// The peer's slot.
        peer: u32,
        /// What is wrong.
        why: &'static str,
    },
}

impl Torrent {
    /// Checks every internal invariant; the first violation found is returned.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        self.check_pieces()?;
        self.check_requests()?;
        self.check_blocks()?;
        self.check_peers()?;
        Ok(())
    }

    fn check_pieces(&self) -> Result<(), InvariantViolation> {
        let bad = |piece, why| Err(InvariantViolation::PieceState { piece, why });
        let mut open = 0u64;
        let mut free = 0u64;
        for piece in 0..self.geometry.piece_count() {
            let state = self.picker.state(piece);
            let info = self.picker.pieces[piece as usize];
            if (state == PieceState::Have) != self.have.has(piece) {
                return bad(piece, "have set and piece state disagree");
            }
            if state == PieceState::Open {
                open += 1;
                free += u64::from(self.geometry.blocks_in_piece(piece));
                let bucket = self.picker.buckets.get(info.avail as usize);
                if bucket.and_then(|b| b.get(info.pos as usize)) != Some(&piece) {
                    return bad(
                        piece,
                        "open piece not at its place in its availability bucket",
                    );
                }
                if !self.wanted.has(piece) {
                    return bad(piece, "unwanted piece is open");
                }
            }
            if matches!(state, PieceState::Partial | PieceState::Verifying)
                == (info.partial == NONE)
            {
                return bad(piece, "partial slot and state disagree");
            }
            let avail = self
                .peers
                .iter()
                .flatten()
                .filter(|p| !p.seed && p.has.has(piece))
                .count();
            if avail as u32 != info.avail {
                return bad(piece, "availability count is wrong");
            }
        }
        for p in self.picker.partials.iter().flatten() {
            if !p.verifying {
                free += u64::from(p.free);
            }
        }
        let counter = |name, actual: u64, expected: u64| {
            if actual == expected {
                Ok(())
            } else {
                Err(InvariantViolation::Counter {
                    name,
                    actual,
                    expected,
                })
            }
        };
        counter("open_count", u64::from(self.picker.open_count), open)?;
        counter("free_blocks", self.picker.free_blocks, free)?;
        let seeds = self.peers.iter().flatten().filter(|p| p.seed).count() as u64;
        counter("seeds", u64::from(self.picker.seeds), seeds)?;
        let missing = (0..self.geometry.piece_count())
            .filter(|&p| self.wants(p))
            .count() as u64;
        counter("wanted_missing", u64::from(self.wanted_missing), missing)?;
        let bucketed: usize = self.picker.buckets.iter().map(Vec::len).sum();
        counter("bucketed pieces", bucketed as u64, open)
    }

    fn check_requests(&self) -> Result<(), InvariantViolation> {
        for (slot, peer) in self.peers.iter().enumerate() {
            let Some(peer) = peer else {
                continue;
            };
            let slot = slot as u32;
            let mut active = 0;
            for o in &peer.outstanding {
                let bad = |why| InvariantViolation::BadRequest {
                    peer: slot,
                    piece: o.piece,
                    block: o.block,
                    why,
                };
                if self.have.has(o.piece) {
                    return Err(bad("we have the piece"));
                }
                if !peer.has_piece(o.piece) {
                    return Err(bad("the peer lacks the piece"));
                }
                let Some(b) = self.picker.block(o.piece, o.block) else {
                    return Err(bad("piece not in progress"));
                };
                if b.received {
                    return Err(bad("block already received"));
                }
                if !b.holds(slot) {
                    return Err(bad("block does not list the peer as holder"));
                }
                active += usize::from(!o.released);
            }
            if active != peer.active {
                return Err(InvariantViolation::Peer {
                    peer: slot,
                    why: "active request count is wrong",
                });
            }
            if peer.outstanding.len() > self.config.request_queue_max {
                return Err(InvariantViolation::Peer {
                    peer: slot,
                    why: "request queue over its bound",
                });
            }
        }
        Ok(())
    }

    fn check_blocks(&self) -> Result<(), InvariantViolation> {
        let endgame_max = self.config.endgame_duplicates_max;
        for p in self.picker.partials.iter().flatten() {
            let mut free = 0;
            let mut received = 0;
            for (i, b) in p.blocks.iter().enumerate() {
                let bad = |why| {
                    Err(InvariantViolation::BlockState {
                        piece: p.piece,
                        block: i as u32,
                        why,
                    })
                };
                free += u32::from(b.is_free());
                received += u32::from(b.received);
                if b.received && b.holder_count() > 0 {
                    return bad("received block still has requests out");
                }
                if usize::from(b.active) > endgame_max.max(1)
                    || b.holder_count() > BLOCK_HOLDERS_MAX
                {
                    return bad("more requests out than endgame allows");
                }
                let mut active = 0;
                for h in b.holder_slots() {
                    let Some(peer) = self.peer(h) else {
                        return bad("holder is not a connected peer");
                    };
                    let Some(o) = peer
                        .outstanding
                        .iter()
                        .find(|o| o.piece == p.piece && o.block == i as u32)
                    else {
                        return bad("holder has no such request");
                    };
                    active += u8::from(!o.released);
                }
                if active != b.active {
                    return bad("active holder count is wrong");
                }
            }
            if free != p.free || received != p.received {
                return Err(InvariantViolation::PieceState {
                    piece: p.piece,
                    why: "partial counters are wrong",
                });
            }
            if p.verifying != p.is_complete() {
                return Err(InvariantViolation::PieceState {
                    piece: p.piece,
                    why: "verifying iff complete",
                });
            }
        }
        Ok(())
    }

    fn check_peers(&self) -> Result<(), InvariantViolation> {
        let mut regular = 0;
        let mut optimistic = 0;
        for (slot, peer) in self.peers.iter().enumerate() {
            let Some(peer) = peer else {
                continue;
            };
            let bad = |why| {
                Err(InvariantViolation::Peer {
                    peer: slot as u32,
                    why,
                })
            };
            if !peer.am_choking {
                if peer.optimistic {
                    optimistic += 1;
                } else {
                    regular += 1;
                }
            } else if peer.optimistic {
                return bad("optimistic but choked");
            }
            if peer.am_choking && !peer.upload_queue.is_empty() {
                return bad("requests queued from a choked peer");
            }
            if peer.upload_in_flight > self.config.upload_in_flight_max {
                return bad("too many blocks being served");
            }
            if peer.upload_queue.len() > self.config.peer_requests_max {
                return bad("upload queue over its bound");
            }
            if peer.upload_queue.iter().any(|b| !self.have.has(b.piece)) {
                return bad("queued request for a piece we lack");
            }
            let interesting = if peer.seed {
                self.wanted_missing
            } else {
                peer.has.iter_ones().filter(|&p| self.wants(p)).count() as u32
            };
            if interesting != peer.interesting || peer.am_interested != (interesting > 0) {
                return bad("interest out of date");
            }
            if self.keys.get(&peer.key) != Some(&(slot as u32)) {
                return bad("key map out of date");
            }
        }
        if regular > self.config.unchoke_slots || regular != self.regular_unchoked {
            return Err(InvariantViolation::Counter {
                name: "regular unchoked",
                actual: self.regular_unchoked as u64,
                expected: regular as u64,
            });
        }
        if optimistic > 1 || (optimistic == 1) == (self.optimistic == NONE) {
            return Err(InvariantViolation::Counter {
                name: "optimistic unchoked",
                actual: optimistic,
                expected: u64::from(self.optimistic != NONE),
            });
        }
        Ok(())
    }
}
