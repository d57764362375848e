//! Which pieces a peer has: a bit per piece, most significant bit of the first byte first
//! (BEP 3), with a running count so "how many" and "complete?" cost nothing.
//!
//! **Invariant**: the byte vector is exactly `ceil(piece_count / 8)` long and the spare bits
//! after the last piece are zero, so two bitfields of the same torrent compare bytewise and
//! [`Bitfield::as_bytes`] can go on the wire as is.

use std::fmt;

use bytes::Bytes;

use crate::error::WireError;
use crate::message::Message;

/// A set of piece indices below a fixed piece count.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Bitfield {
    bytes: Vec<u8>,
    piece_count: u32,
    ones: u32,
}

impl Bitfield {
    /// No piece of `piece_count`.
    #[must_use]
    pub fn new(piece_count: u32) -> Self {
        Self {
            bytes: vec![0; byte_len(piece_count)],
            piece_count,
            ones: 0,
        }
    }

    /// Every piece of `piece_count`.
    #[must_use]
    pub fn full(piece_count: u32) -> Self {
        let mut bytes = vec![0xff; byte_len(piece_count)];
        if let Some(last) = bytes.last_mut() {
            *last &= last_byte_mask(piece_count);
        }
        Self {
            bytes,
            piece_count,
            ones: piece_count,
        }
    }

    /// A peer's bitfield message checked against the torrent's piece count: the length must
    /// be `ceil(piece_count / 8)` and the spare bits zero.
    pub fn from_bytes(bytes: &[u8], piece_count: u32) -> Result<Self, WireError> {
        let expected = byte_len(piece_count);
        if bytes.len() != expected {
            return Err(WireError::BitfieldLength {
                len: bytes.len(),
                expected,
            });
        }
        if let Some(&last) = bytes.last() {
            if last & !last_byte_mask(piece_count) != 0 {
                return Err(WireError::BitfieldSpareBits);
            }
        }
        let ones = bytes.iter().map(|b| b.count_ones()).sum();
        Ok(Self {
            bytes: bytes.to_vec(),
            piece_count,
            ones,
        })
    }

    /// The number of pieces this bitfield covers.
    #[must_use]
    pub fn piece_count(&self) -> u32 {
        self.piece_count
    }

    /// Whether `piece` is in the set (false for indices out of range).
    #[must_use]
    pub fn has(&self, piece: u32) -> bool {
        let (byte, mask) = position(piece);
        piece < self.piece_count && self.bytes.get(byte).is_some_and(|b| b & mask != 0)
    }

    /// Adds `piece`; returns whether it was new.
    pub fn set(&mut self, piece: u32) -> Result<bool, WireError> {
        let slot = self.slot(piece)?;
        let (_, mask) = position(piece);
        let new = *slot & mask == 0;
        *slot |= mask;
        self.ones += u32::from(new);
        Ok(new)
    }

    /// Removes `piece`; returns whether it was there.
    pub fn unset(&mut self, piece: u32) -> Result<bool, WireError> {
        let slot = self.slot(piece)?;
        let (_, mask) = position(piece);
        let was = *slot & mask != 0;
        *slot &= !mask;
        self.ones -= u32::from(was);
        Ok(was)
    }

    /// How many pieces are in the set.
    #[must_use]
    pub fn count_ones(&self) -> u32 {
        self.ones
    }

    /// Whether every piece is in the set.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.ones == self.piece_count
    }

    /// Whether no piece is in the set.
    #[must_use]
    pub fn has_none(&self) -> bool {
        self.ones == 0
    }

    /// Whether this set holds a piece `other` lacks ("is this peer interesting to me?").
    /// Bitfields of different piece counts compare over the shorter one.
    #[must_use]
    pub fn has_any_not_in(&self, other: &Bitfield) -> bool {
        let mut extra = self
            .bytes
            .get(other.bytes.len()..)
            .unwrap_or_default()
            .iter();
        self.bytes
            .iter()
            .zip(&other.bytes)
            .any(|(mine, theirs)| mine & !theirs != 0)
            || extra.any(|&b| b != 0)
    }

    /// The pieces in the set, ascending.
    pub fn iter_ones(&self) -> impl Iterator<Item = u32> + '_ {
        self.bytes
            .iter()
            .enumerate()
            .filter(|(_, &b)| b != 0)
            .flat_map(|(i, &b)| {
                (0..8u32)
                    .filter(move |bit| b & (0x80 >> bit) != 0)
                    .map(move |bit| i as u32 * 8 + bit)
            })
    }

    /// The bytes as they go on the wire.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// A bitfield message announcing this set.
    #[must_use]
    pub fn to_message(&self) -> Message {
        Message::Bitfield(Bytes::copy_from_slice(&self.bytes))
    }

    fn slot(&mut self, piece: u32) -> Result<&mut u8, WireError> {
        let out_of_range = WireError::PieceOutOfRange {
            piece,
            piece_count: self.piece_count,
        };
        if piece >= self.piece_count {
            return Err(out_of_range);
        }
        self.bytes.get_mut(position(piece).0).ok_or(out_of_range)
    }
}

impl fmt::Debug for Bitfield {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bitfield({}/{})", self.ones, self.piece_count)
    }
}

fn byte_len(piece_count: u32) -> usize {
    piece_count.div_ceil(8) as usize
}

/// Which bits of the last byte belong to pieces.
fn last_byte_mask(piece_count: u32) -> u8 {
    match piece_count % 8 {
        0 => 0xff,
        used => !(0xff >> used),
    }
}

fn position(piece: u32) -> (usize, u8) {
    ((piece / 8) as usize, 0x80 >> (piece % 8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msb_first_layout() {
        let mut b = Bitfield::new(10);
        assert_eq!(b.as_bytes(), &[0, 0]);
        assert_eq!(b.set(0), Ok(true));
        assert_eq!(b.set(9), Ok(true));
        assert_eq!(b.set(9), Ok(false));
        assert_eq!(b.as_bytes(), &[0x80, 0x40]);
        assert_eq!(b.count_ones(), 2);
        assert_eq!(b.iter_ones().collect::<Vec<_>>(), vec![0, 9]);
        assert!(b.has(9) && !b.has(8) && !b.has(10) && !b.has(u32::MAX));
        assert_eq!(b.unset(0), Ok(true));
        assert_eq!(b.unset(0), Ok(false));
        assert_eq!(b.count_ones(), 1);
        assert_eq!(
            b.set(10),
            Err(WireError::PieceOutOfRange {
                piece: 10,
                piece_count: 10
            })
        );
        assert_eq!(
            b.to_message(),
            Message::Bitfield(Bytes::from_static(&[0, 0x40]))
        );
    }

    #[test]
    fn full_has_no_spare_bits() {
        assert_eq!(Bitfield::full(10).as_bytes(), &[0xff, 0xc0]);
        assert_eq!(Bitfield::full(16).as_bytes(), &[0xff, 0xff]);
        assert!(Bitfield::full(0).is_complete());
        assert!(Bitfield::full(13).is_complete());
        let f = Bitfield::full(13);
        assert_eq!(Bitfield::from_bytes(f.as_bytes(), 13), Ok(f));
    }

    #[test]
    fn from_bytes_checks_length_and_spare_bits() {
        assert_eq!(
            Bitfield::from_bytes(&[0xff], 10),
            Err(WireError::BitfieldLength {
                len: 1,
                expected: 2
            })
        );
        assert_eq!(
            Bitfield::from_bytes(&[0xff, 0xe0], 10),
            Err(WireError::BitfieldSpareBits)
        );
        assert_eq!(Bitfield::from_bytes(&[], 0), Ok(Bitfield::new(0)));
        let b = Bitfield::from_bytes(&[0xa0, 0x40], 10).unwrap();
        assert_eq!(b.count_ones(), 3);
        assert_eq!(b.iter_ones().collect::<Vec<_>>(), vec![0, 2, 9]);
    }

    #[test]
    fn interest() {
        let mut mine = Bitfield::new(20);
        let mut theirs = Bitfield::new(20);
        assert!(!theirs.has_any_not_in(&mine));
        theirs.set(17).unwrap();
        assert!(theirs.has_any_not_in(&mine));
        mine.set(17).unwrap();
        assert!(!theirs.has_any_not_in(&mine));
        assert!(Bitfield::full(20).has_any_not_in(&Bitfield::full(8)));
    }
}
