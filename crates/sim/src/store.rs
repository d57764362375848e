//! In-memory piece storage. The torrent's payload (the [`Source`]) is one buffer cut into 16 KiB
//! blocks; a node's [`Store`] holds one shared, immutable `Bytes` per block it has received.
//! Blocks that travel without a codec copy share the source's buffer, so hundreds of nodes
//! cost one copy of the payload plus 32 bytes per block each.
//!
//! A piece check compares the stored blocks with the source, which is what a SHA-1 check
//! against the torrent's piece hashes decides (barring collisions) without hashing the payload
//! once per node; a block that is the very buffer the source holds is equal without reading it
//! (the buffers are immutable and kept alive by the store). Per-block SHA-1 digests, which
//! smart ban compares between attempts, are real.

use std::ops::Range;

use bitswarm_engine::Geometry;
use bytes::Bytes;
use rand::Rng;
use sha1::{Digest, Sha1};

/// Where each piece's blocks sit in a flat block array.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) geometry: Geometry,
    /// Index of each piece's first block, plus the total block count at the end.
    first_block: Vec<usize>,
}

impl Layout {
    pub(crate) fn new(geometry: Geometry) -> Self {
        let mut first_block = Vec::with_capacity(geometry.piece_count() as usize + 1);
        let mut next = 0usize;
        for piece in 0..geometry.piece_count() {
            first_block.push(next);
            next += geometry.blocks_in_piece(piece) as usize;
        }
        first_block.push(next);
        Self {
            geometry,
            first_block,
        }
    }

    pub(crate) fn block_count(&self) -> usize {
        self.first_block.last().copied().unwrap_or(0)
    }

    /// The blocks of `piece` (empty when out of range).
    pub(crate) fn piece_blocks(&self, piece: u32) -> Range<usize> {
        let p = piece as usize;
        match (self.first_block.get(p), self.first_block.get(p + 1)) {
            (Some(&start), Some(&end)) => start..end,
            _ => 0..0,
        }
    }

    /// The flat index of the block at `offset` in `piece` if it is exactly one of the
    /// torrent's blocks (aligned, of its full length).
    pub(crate) fn block_index(&self, piece: u32, offset: u32, length: u32) -> Option<usize> {
        let block = self.geometry.block_index(piece, offset, length)?;
        Some(self.piece_blocks(piece).start + block as usize)
    }
}

/// The torrent's payload, in blocks, with each block's SHA-1.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub(crate) layout: Layout,
    pub(crate) blocks: Vec<Bytes>,
    digests: Vec<[u8; 20]>,
}

impl Source {
    /// Random bytes of the torrent's length, cut into blocks.
    pub(crate) fn random(geometry: Geometry, rng: &mut impl Rng) -> Self {
        let layout = Layout::new(geometry);
        let mut data = vec![0u8; usize::try_from(geometry.total_length).unwrap_or(0)];
        rng.fill(&mut data[..]);
        let data = Bytes::from(data);
        let mut blocks = Vec::with_capacity(layout.block_count());
        let mut start = 0usize;
        for piece in 0..geometry.piece_count() {
            for block in 0..geometry.blocks_in_piece(piece) {
                let len = geometry.block_len(piece, block) as usize;
                blocks.push(data.slice(start..start + len));
                start += len;
            }
        }
        let digests = blocks.iter().map(|b| Sha1::digest(b).into()).collect();
        Self {
            layout,
            blocks,
            digests,
        }
    }

    /// SHA-1 of the whole payload.
    pub(crate) fn digest(&self) -> [u8; 20] {
        let mut hasher = Sha1::new();
        for block in &self.blocks {
            hasher.update(block);
        }
        hasher.finalize().into()
    }
}

/// One node's blocks.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    blocks: Vec<Option<Bytes>>,
}

impl Store {
    /// Everything (a seed's store shares the source's buffers).
    pub(crate) fn full(source: &Source) -> Self {
        Self {
            blocks: source.blocks.iter().cloned().map(Some).collect(),
        }
    }

    /// Nothing.
    pub(crate) fn empty(source: &Source) -> Self {
        Self {
            blocks: vec![None; source.blocks.len()],
        }
    }

    pub(crate) fn put(&mut self, index: usize, data: Bytes) {
        if let Some(slot) = self.blocks.get_mut(index) {
            *slot = Some(data);
        }
    }

    pub(crate) fn get(&self, index: usize) -> Option<&Bytes> {
        self.blocks.get(index)?.as_ref()
    }

    /// Whether `piece` holds exactly the source's bytes.
    pub(crate) fn piece_matches(&self, source: &Source, piece: u32) -> bool {
        source
            .layout
            .piece_blocks(piece)
            .all(|i| self.block_matches(source, i))
    }

    /// Whether every block holds exactly the source's bytes.
    pub(crate) fn matches(&self, source: &Source) -> bool {
        (0..source.blocks.len()).all(|i| self.block_matches(source, i))
    }

    fn block_matches(&self, source: &Source, index: usize) -> bool {
        match (self.blocks.get(index), source.blocks.get(index)) {
            (Some(Some(ours)), Some(theirs)) => {
                (ours.as_ptr() == theirs.as_ptr() && ours.len() == theirs.len()) || ours == theirs
            }
            _ => false,
        }
    }

    /// SHA-1 of each block of `piece` (a missing block reads as zeros). A block equal to the
    /// source's takes the source's digest, computed once; only differing blocks are hashed.
    pub(crate) fn block_digests(&self, source: &Source, piece: u32) -> Vec<[u8; 20]> {
        source
            .layout
            .piece_blocks(piece)
            .map(|i| {
                if self.block_matches(source, i) {
                    source.digests.get(i).copied().unwrap_or_default()
                } else if let Some(data) = self.get(i) {
                    Sha1::digest(data).into()
                } else {
                    let len = source.blocks.get(i).map_or(0, Bytes::len);
                    Sha1::digest(vec![0u8; len]).into()
                }
            })
            .collect()
    }

    /// SHA-1 of the whole store read front to back (a missing block reads as zeros).
    pub(crate) fn digest(&self, source: &Source) -> [u8; 20] {
        let mut hasher = Sha1::new();
        for (i, block) in self.blocks.iter().enumerate() {
            match block {
                Some(data) => hasher.update(data),
                None => hasher.update(vec![0u8; source.blocks.get(i).map_or(0, Bytes::len)]),
            }
        }
        hasher.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    use bitswarm_engine::BLOCK_LEN;

    use super::*;

    #[test]
    fn layout_indexes_blocks_of_short_last_pieces() {
        // 3 pieces of 40 KiB (3 blocks: 16, 16, 8) and a last piece of 5000 bytes.
        let g = Geometry::new(40 * 1024, 3 * 40 * 1024 + 5000);
        let layout = Layout::new(g);
        assert_eq!(layout.block_count(), 10);
        assert_eq!(layout.piece_blocks(1), 3..6);
        assert_eq!(layout.piece_blocks(3), 9..10);
        assert_eq!(layout.piece_blocks(4), 0..0);
        assert_eq!(layout.block_index(1, 32 * 1024, 8 * 1024), Some(5));
        assert_eq!(layout.block_index(3, 0, 5000), Some(9));
        assert_eq!(
            layout.block_index(1, 32 * 1024, BLOCK_LEN),
            None,
            "wrong length"
        );
        assert_eq!(layout.block_index(1, 100, 8 * 1024), None, "unaligned");
        assert_eq!(layout.block_index(9, 0, BLOCK_LEN), None, "no such piece");
    }

    #[test]
    fn store_matches_only_the_source_bytes() {
        let g = Geometry::new(32 * 1024, 100_000);
        let source = Source::random(g, &mut SmallRng::seed_from_u64(1));
        assert_eq!(source.blocks.iter().map(Bytes::len).sum::<usize>(), 100_000);
        let mut store = Store::empty(&source);
        assert!(!store.piece_matches(&source, 0));
        // A copy (not the shared buffer) of the right bytes matches.
        store.put(0, Bytes::copy_from_slice(&source.blocks[0]));
        store.put(1, source.blocks[1].clone());
        assert!(store.piece_matches(&source, 0));
        let mut bad = source.blocks[1].to_vec();
        bad[7] ^= 1;
        store.put(1, Bytes::from(bad));
        assert!(!store.piece_matches(&source, 0));
        assert_ne!(store.block_digests(&source, 0)[1], {
            let d: [u8; 20] = Sha1::digest(&source.blocks[1]).into();
            d
        });
        assert_eq!(Store::full(&source).digest(&source), source.digest());
        assert!(Store::full(&source).matches(&source));
        assert!(!store.matches(&source));
    }
}
