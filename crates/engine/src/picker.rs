//! The piece picker's ordering: which piece to start next for a peer. Rarest first over
//! availability counts with random tie-breaks, random pieces until the first few are verified.
//!
//! **Structure.** Pieces that are wanted, missing and not started ("open") live in
//! availability buckets: `buckets[a]` holds the open pieces exactly `a` non-seed peers have.
//! Seeds are counted apart (`seeds`), since a seed has everything and adding it to every
//! piece would cost O(pieces) for nothing: the order by non-seed count is the order by total
//! count. A piece's position in its bucket is stored with it, so an availability change moves
//! it to the next bucket in O(1) (swap-remove, push, swap with a random slot — that swap is the
//! random tie-break). Picking for a seed takes the first piece of the lowest non-empty bucket;
//! for another peer it scans buckets upward (a non-seed peer never has a bucket-0 piece) or,
//! when the peer has few pieces, scans the peer's pieces instead: whichever is smaller.
//! Nothing here is O(pieces) per block; starting a piece happens once per piece.
//!
//! In-progress pieces and their blocks are in `partial.rs` (same struct, second `impl`).

use bitswarm_wire::Bitfield;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::Rng;

use crate::geometry::Geometry;
use crate::partial::Partial;

/// "No index" in the compact u32 index fields.
pub(crate) const NONE: u32 = u32::MAX;

/// Where a piece is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PieceState {
    /// Missing and not wanted (file selection).
    Unwanted,
    /// Wanted, missing, not started: in an availability bucket.
    Open,
    /// Some blocks requested or received: has a [`Partial`].
    Partial,
    /// Every block received, hash check pending: still has its [`Partial`] (senders).
    Verifying,
    /// Verified.
    Have,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct PieceInfo {
    /// Non-seed peers that have the piece.
    pub(crate) avail: u32,
    /// Position in `buckets[avail]` when open.
    pub(crate) pos: u32,
    pub(crate) state: PieceState,
    /// Slot in `partials` when partial or verifying.
    pub(crate) partial: u32,
}

/// A peer as the picker sees it.
#[derive(Clone, Copy)]
pub(crate) struct PeerView<'a> {
    pub(crate) has: &'a Bitfield,
    pub(crate) seed: bool,
}

/// Piece ordering and in-progress pieces of one torrent.
pub(crate) struct Picker {
    pub(crate) geometry: Geometry,
    pub(crate) pieces: Vec<PieceInfo>,
    pub(crate) buckets: Vec<Vec<u32>>,
    pub(crate) open_count: u32,
    /// Connected peers that have every piece (not counted in `avail`).
    pub(crate) seeds: u32,
    /// Blocks nobody is asked for: all blocks of open pieces plus free blocks of partials.
    pub(crate) free_blocks: u64,
    /// In-progress pieces (a slab: `None` slots are reused).
    pub(crate) partials: Vec<Option<Partial>>,
    pub(crate) partial_free_slots: Vec<u32>,
    /// Partial slots with at least one free block (not verifying), for cheap scans.
    pub(crate) with_free: Vec<u32>,
    pub(crate) rng: SmallRng,
}

impl Picker {
    /// A picker for `geometry` where `have` pieces are verified and `wanted` are wanted.
    pub(crate) fn new(
        geometry: Geometry,
        have: &Bitfield,
        wanted: &Bitfield,
        rng: SmallRng,
    ) -> Self {
        let count = geometry.piece_count();
        let mut picker = Self {
            geometry,
            pieces: Vec::with_capacity(count as usize),
            buckets: vec![Vec::new()],
            open_count: 0,
            seeds: 0,
            free_blocks: 0,
            partials: Vec::new(),
            partial_free_slots: Vec::new(),
            with_free: Vec::new(),
            rng,
        };
        for piece in 0..count {
            let state = if have.has(piece) {
                PieceState::Have
            } else if wanted.has(piece) {
                PieceState::Open
            } else {
                PieceState::Unwanted
            };
            picker.pieces.push(PieceInfo {
                avail: 0,
                pos: NONE,
                state,
                partial: NONE,
            });
        }
        let mut open: Vec<u32> = (0..count)
            .filter(|&p| picker.state(p) == PieceState::Open)
            .collect();
        open.shuffle(&mut picker.rng);
        for (pos, &piece) in open.iter().enumerate() {
            if let Some(info) = picker.pieces.get_mut(piece as usize) {
                info.pos = pos as u32;
            }
            picker.free_blocks += u64::from(geometry.blocks_in_piece(piece));
        }
        picker.open_count = open.len() as u32;
        picker.buckets[0] = open;
        picker
    }

    /// The state of `piece` (`Have` for indices out of range, so nothing picks them).
    pub(crate) fn state(&self, piece: u32) -> PieceState {
        self.pieces
            .get(piece as usize)
            .map_or(PieceState::Have, |i| i.state)
    }

    /// Total availability: non-seed peers with the piece plus seeds.
    pub(crate) fn availability(&self, piece: u32) -> u32 {
        self.pieces.get(piece as usize).map_or(0, |i| i.avail) + self.seeds
    }

    /// A non-seed peer announced `piece`.
    pub(crate) fn inc_availability(&mut self, piece: u32) {
        self.change_availability(piece, true);
    }

    /// A non-seed peer that had `piece` left (or became a seed).
    pub(crate) fn dec_availability(&mut self, piece: u32) {
        self.change_availability(piece, false);
    }

    /// Sets whether `piece` is wanted. A partial piece must have been abandoned by the caller
    /// first (`abandon_partial`); verifying and verified pieces are left alone.
    pub(crate) fn set_wanted(&mut self, piece: u32, wanted: bool) {
        match (self.state(piece), wanted) {
            (PieceState::Open, false) => {
                self.bucket_remove(piece);
                self.free_blocks -= u64::from(self.geometry.blocks_in_piece(piece));
                self.set_state(piece, PieceState::Unwanted);
            }
            (PieceState::Unwanted, true) => self.open(piece),
            _ => {}
        }
    }

    /// Makes a missing piece open again (wanted) or unwanted, after a failed check or an
    /// abandoned download. Its partial must be gone.
    pub(crate) fn reopen(&mut self, piece: u32, wanted: bool) {
        if wanted {
            self.open(piece);
        } else {
            self.set_state(piece, PieceState::Unwanted);
        }
    }

    /// Marks a verifying piece as verified.
    pub(crate) fn mark_have(&mut self, piece: u32) {
        self.set_state(piece, PieceState::Have);
    }

    /// The next piece to start for `peer`: random among open pieces it has while `random`,
    /// else rarest first. `None` when it has no open piece.
    pub(crate) fn pick_new_piece(&mut self, peer: PeerView<'_>, random: bool) -> Option<u32> {
        if self.open_count == 0 {
            return None;
        }
        let few = !peer.seed && peer.has.count_ones() < self.open_count / 4;
        match (random, peer.seed, few) {
            // From a seed, a piece no other peer has, if any: the seed's upload is best spent
            // on what nobody else can give (any piece comes as fast from a seed).
            (true, true, _) if self.has_unshared_open() => {
                self.buckets.first().and_then(|b| b.first().copied())
            }
            (true, true, _) => self.random_open_piece(),
            (true, false, _) => self.sample_peer_pieces(peer.has, true),
            (false, true, _) => self.buckets.iter().find_map(|b| b.first().copied()),
            (false, false, true) => self.sample_peer_pieces(peer.has, false),
            (false, false, false) => self.scan_buckets(peer.has),
        }
    }

    /// Whether an open piece is held by no non-seed peer (only seeds can give it).
    pub(crate) fn has_unshared_open(&self) -> bool {
        self.buckets.first().is_some_and(|b| !b.is_empty())
    }

    /// Whether a non-seed peer has `piece`.
    pub(crate) fn is_shared(&self, piece: u32) -> bool {
        self.pieces.get(piece as usize).is_some_and(|i| i.avail > 0)
    }

    pub(crate) fn set_state(&mut self, piece: u32, state: PieceState) {
        if let Some(info) = self.pieces.get_mut(piece as usize) {
            info.state = state;
        }
    }

    /// Takes an open piece out of its bucket (it is being started).
    pub(crate) fn take_open(&mut self, piece: u32) {
        if self.state(piece) == PieceState::Open {
            self.bucket_remove(piece);
            self.free_blocks -= u64::from(self.geometry.blocks_in_piece(piece));
        }
    }

    fn open(&mut self, piece: u32) {
        self.set_state(piece, PieceState::Open);
        self.bucket_insert(piece);
        self.free_blocks += u64::from(self.geometry.blocks_in_piece(piece));
    }

    fn change_availability(&mut self, piece: u32, up: bool) {
        let Some(info) = self.pieces.get(piece as usize) else {
            return;
        };
        let open = info.state == PieceState::Open;
        if open {
            self.bucket_remove(piece);
        }
        if let Some(info) = self.pieces.get_mut(piece as usize) {
            info.avail = if up {
                info.avail + 1
            } else {
                info.avail.saturating_sub(1)
            };
        }
        if open {
            self.bucket_insert(piece);
        }
    }

    /// Puts an open piece into the bucket of its availability at a random position.
    fn bucket_insert(&mut self, piece: u32) {
        let Some(avail) = self.pieces.get(piece as usize).map(|i| i.avail as usize) else {
            return;
        };
        if self.buckets.len() <= avail {
            self.buckets.resize_with(avail + 1, Vec::new);
        }
        let bucket = &mut self.buckets[avail];
        let end = bucket.len();
        bucket.push(piece);
        let j = self.rng.gen_range(0..=end);
        bucket.swap(j, end);
        let moved = bucket[end];
        self.pieces[piece as usize].pos = j as u32;
        self.pieces[moved as usize].pos = end as u32;
        self.open_count += 1;
    }

    fn bucket_remove(&mut self, piece: u32) {
        let Some(&PieceInfo { avail, pos, .. }) = self.pieces.get(piece as usize) else {
            return;
        };
        let Some(bucket) = self.buckets.get_mut(avail as usize) else {
            return;
        };
        if bucket.get(pos as usize) != Some(&piece) {
            return;
        }
        bucket.swap_remove(pos as usize);
        if let Some(&moved) = bucket.get(pos as usize) {
            self.pieces[moved as usize].pos = pos;
        }
        self.pieces[piece as usize].pos = NONE;
        self.open_count -= 1;
    }

    /// A uniformly random open piece (for a seed, which has them all).
    fn random_open_piece(&mut self) -> Option<u32> {
        let mut r = self.rng.gen_range(0..self.open_count) as usize;
        for bucket in &self.buckets {
            if r < bucket.len() {
                return bucket.get(r).copied();
            }
            r -= bucket.len();
        }
        None
    }

    /// Over the peer's pieces that are open: a random one (`random`), or one of the rarest
    /// with a random tie-break (reservoir sampling either way).
    fn sample_peer_pieces(&mut self, has: &Bitfield, random: bool) -> Option<u32> {
        let mut best: Option<(u32, u32)> = None;
        let mut ties = 0u32;
        for piece in has.iter_ones() {
            let Some(info) = self.pieces.get(piece as usize) else {
                continue;
            };
            if info.state != PieceState::Open {
                continue;
            }
            let key = if random { 0 } else { info.avail };
            match best {
                Some((k, _)) if key > k => {}
                Some((k, _)) if key == k => {
                    ties += 1;
                    if self.rng.gen_range(0..ties) == 0 {
                        best = Some((key, piece));
                    }
                }
                _ => {
                    best = Some((key, piece));
                    ties = 1;
                }
            }
        }
        best.map(|(_, piece)| piece)
    }

    /// The first piece the peer has in bucket order (rarest first). Bucket 0 holds pieces no
    /// non-seed peer has, so a non-seed peer cannot have any of them.
    fn scan_buckets(&self, has: &Bitfield) -> Option<u32> {
        self.buckets
            .iter()
            .skip(1)
            .flat_map(|b| b.iter().copied())
            .find(|&piece| has.has(piece))
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn picker(pieces: u32) -> Picker {
        let g = Geometry::new(32768, u64::from(pieces) * 32768);
        Picker::new(
            g,
            &Bitfield::new(pieces),
            &Bitfield::full(pieces),
            SmallRng::seed_from_u64(7),
        )
    }

    fn bits(count: u32, ones: &[u32]) -> Bitfield {
        let mut b = Bitfield::new(count);
        for &p in ones {
            b.set(p).unwrap();
        }
        b
    }

    #[test]
    fn rarest_first_for_non_seeds() {
        let mut p = picker(10);
        // Piece 3: 3 peers, piece 5: 1 peer, piece 7: 2 peers.
        for (piece, n) in [(3, 3), (5, 1), (7, 2)] {
            for _ in 0..n {
                p.inc_availability(piece);
            }
        }
        let has = bits(10, &[3, 5, 7]);
        let peer = PeerView {
            has: &has,
            seed: false,
        };
        assert_eq!(p.pick_new_piece(peer, false), Some(5));
        p.take_open(5);
        assert_eq!(p.pick_new_piece(peer, false), Some(7));
        p.take_open(7);
        assert_eq!(p.pick_new_piece(peer, false), Some(3));
        p.take_open(3);
        assert_eq!(p.pick_new_piece(peer, false), None);
        assert_eq!(p.open_count, 7);
    }

    #[test]
    fn seeds_take_pieces_nobody_else_has_first() {
        let mut p = picker(4);
        for piece in [0, 1, 2] {
            p.inc_availability(piece);
        }
        let none = Bitfield::new(4);
        let seed = PeerView {
            has: &none,
            seed: true,
        };
        assert_eq!(p.pick_new_piece(seed, false), Some(3));
    }

    #[test]
    fn ties_are_broken_at_random() {
        let mut firsts = std::collections::BTreeSet::new();
        for seed in 0..40 {
            let g = Geometry::new(16384, 16 * 16384);
            let mut p = Picker::new(
                g,
                &Bitfield::new(16),
                &Bitfield::full(16),
                SmallRng::seed_from_u64(seed),
            );
            let full = Bitfield::full(16);
            for piece in 0..16 {
                p.inc_availability(piece);
            }
            firsts.insert(p.pick_new_piece(
                PeerView {
                    has: &full,
                    seed: false,
                },
                false,
            ));
        }
        assert!(firsts.len() > 5, "{firsts:?}");
    }

    #[test]
    fn wanted_and_have_are_never_picked() {
        let g = Geometry::new(16384, 6 * 16384);
        let have = bits(6, &[0, 1]);
        let wanted = bits(6, &[0, 1, 2, 3, 4]);
        let mut p = Picker::new(g, &have, &wanted, SmallRng::seed_from_u64(1));
        assert_eq!(p.open_count, 3);
        assert_eq!(p.free_blocks, 3);
        p.set_wanted(2, false);
        p.set_wanted(5, true);
        let full = Bitfield::full(6);
        let mut picked = Vec::new();
        while let Some(piece) = p.pick_new_piece(
            PeerView {
                has: &full,
                seed: true,
            },
            true,
        ) {
            p.take_open(piece);
            picked.push(piece);
        }
        picked.sort_unstable();
        assert_eq!(picked, vec![3, 4, 5]);
        assert_eq!(p.free_blocks, 0);
    }
}
