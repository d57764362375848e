//! Piece and block geometry of a torrent: how many pieces, how long each one is, and how a
//! piece splits into the 16 KiB blocks that requests name (the last block of a piece, and the
//! last piece of the torrent, may be short).

use bitswarm_wire::BlockRef;

/// Bytes in a block, the unit of requests (BEP 3 practice: 16 KiB).
pub const BLOCK_LEN: u32 = 16 * 1024;

/// The shape of a torrent's payload.
///
/// Both fields are public so the runtime can build one from metainfo; every method is total:
/// a `piece_length` of 0 gives a torrent of no pieces, and indices out of range give 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Geometry {
    /// Bytes in every piece but the last.
    pub piece_length: u32,
    /// Bytes in the whole torrent.
    pub total_length: u64,
}

impl Geometry {
    /// The geometry of a torrent of `total_length` bytes in pieces of `piece_length`.
    #[must_use]
    pub fn new(piece_length: u32, total_length: u64) -> Self {
        Self {
            piece_length,
            total_length,
        }
    }

    /// How many pieces the torrent has (saturating at `u32::MAX`).
    #[must_use]
    pub fn piece_count(&self) -> u32 {
        if self.piece_length == 0 {
            return 0;
        }
        let count = self.total_length.div_ceil(u64::from(self.piece_length));
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// Bytes in piece `piece` (0 when out of range).
    #[must_use]
    pub fn piece_len(&self, piece: u32) -> u32 {
        if piece >= self.piece_count() {
            return 0;
        }
        let start = u64::from(piece) * u64::from(self.piece_length);
        let len = self
            .total_length
            .saturating_sub(start)
            .min(u64::from(self.piece_length));
        // At most `piece_length`, so it fits.
        len as u32
    }

    /// How many blocks piece `piece` has (0 when out of range).
    #[must_use]
    pub fn blocks_in_piece(&self, piece: u32) -> u32 {
        self.piece_len(piece).div_ceil(BLOCK_LEN)
    }

    /// How many blocks a full-length piece has.
    #[must_use]
    pub fn blocks_per_piece(&self) -> u32 {
        self.piece_length.div_ceil(BLOCK_LEN)
    }

    /// Bytes in block `block` of piece `piece` (0 when either is out of range).
    #[must_use]
    pub fn block_len(&self, piece: u32, block: u32) -> u32 {
        let piece_len = self.piece_len(piece);
        let Some(offset) = block.checked_mul(BLOCK_LEN) else {
            return 0;
        };
        piece_len.saturating_sub(offset).min(BLOCK_LEN)
    }

    /// The request for block `block` of piece `piece`.
    #[must_use]
    pub fn block_ref(&self, piece: u32, block: u32) -> BlockRef {
        BlockRef {
            piece,
            offset: block.saturating_mul(BLOCK_LEN),
            length: self.block_len(piece, block),
        }
    }

    /// The block index of a request if it names exactly one of our blocks (aligned offset,
    /// the block's full length), else `None`.
    #[must_use]
    pub fn block_index(&self, piece: u32, offset: u32, length: u32) -> Option<u32> {
        if offset % BLOCK_LEN != 0 {
            return None;
        }
        let block = offset / BLOCK_LEN;
        let expected = self.block_len(piece, block);
        (expected != 0 && expected == length).then_some(block)
    }

    /// Whether a peer's request is one we may serve: non-empty, at most [`BLOCK_LEN`] bytes and
    /// inside the piece (it need not be aligned: BEP 3 allows any range).
    #[must_use]
    pub fn is_valid_request(&self, block: &BlockRef) -> bool {
        block.length > 0
            && block.length <= BLOCK_LEN
            && block.end() <= u64::from(self.piece_len(block.piece))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_last_piece_and_block() {
        // 3 pieces of 40 KiB, the last one 10 KiB + 100 bytes.
        let g = Geometry::new(40 * 1024, 90 * 1024 + 100);
        assert_eq!(g.piece_count(), 3);
        assert_eq!(g.piece_len(0), 40 * 1024);
        assert_eq!(g.piece_len(2), 10 * 1024 + 100);
        assert_eq!(g.piece_len(3), 0);
        assert_eq!(g.blocks_in_piece(0), 3);
        assert_eq!(g.blocks_per_piece(), 3);
        assert_eq!(g.block_len(0, 2), 8 * 1024);
        assert_eq!(g.blocks_in_piece(2), 1);
        assert_eq!(g.block_len(2, 0), 10 * 1024 + 100);
        assert_eq!(g.block_len(2, 1), 0);
        assert_eq!(
            g.block_ref(0, 1),
            BlockRef {
                piece: 0,
                offset: 16384,
                length: 16384
            }
        );
        assert_eq!(g.block_index(0, 32768, 8192), Some(2));
        assert_eq!(g.block_index(0, 32768, 16384), None);
        assert_eq!(g.block_index(0, 100, 16384), None);
        assert_eq!(g.block_index(3, 0, 16384), None);
    }

    #[test]
    fn degenerate_geometries_are_total() {
        let zero = Geometry::new(0, 1000);
        assert_eq!(zero.piece_count(), 0);
        assert_eq!(zero.blocks_in_piece(0), 0);
        let empty = Geometry::new(16384, 0);
        assert_eq!(empty.piece_count(), 0);
        let huge = Geometry::new(1, u64::MAX);
        assert_eq!(huge.piece_count(), u32::MAX);
        assert_eq!(huge.block_len(0, u32::MAX), 0);
    }

    #[test]
    fn request_validity() {
        let g = Geometry::new(32768, 40000);
        let ok = BlockRef {
            piece: 1,
            offset: 100,
            length: 7000,
        };
        assert!(g.is_valid_request(&ok));
        assert!(!g.is_valid_request(&BlockRef { length: 7133, ..ok }));
        assert!(!g.is_valid_request(&BlockRef { length: 0, ..ok }));
        assert!(!g.is_valid_request(&BlockRef {
            piece: 0,
            offset: 0,
            length: 16385
        }));
        assert!(!g.is_valid_request(&BlockRef {
            piece: 2,
            offset: 0,
            length: 1
        }));
        assert!(!g.is_valid_request(&BlockRef {
            piece: 0,
            offset: u32::MAX,
            length: 16384
        }));
    }
}
