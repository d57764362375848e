//! A fixed-length set of piece indices, stored MSB-first like the wire protocol's bitfield so the
//! resume blob and a BITFIELD message share one encoding.

/// A set of pieces `0..len`, one bit each, most significant bit of byte 0 is piece 0.
/// Spare bits in the last byte are always zero.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Bitfield {
    bytes: Vec<u8>,
    len: u32,
}

impl Bitfield {
    /// An empty set over `len` pieces.
    #[must_use]
    pub fn new(len: u32) -> Self {
        Self {
            bytes: vec![0; byte_len(len)],
            len,
        }
    }

    /// A full set over `len` pieces.
    #[must_use]
    pub fn full(len: u32) -> Self {
        let mut field = Self {
            bytes: vec![0xff; byte_len(len)],
            len,
        };
        field.clear_spare_bits();
        field
    }

    /// Parses `bytes` as a set over `len` pieces. `None` unless `bytes` has exactly
    /// `ceil(len / 8)` bytes; spare bits in the last byte are ignored (cleared).
    #[must_use]
    pub fn from_bytes(len: u32, bytes: &[u8]) -> Option<Self> {
        if bytes.len() != byte_len(len) {
            return None;
        }
        let mut field = Self {
            bytes: bytes.to_vec(),
            len,
        };
        field.clear_spare_bits();
        Some(field)
    }

    /// The number of pieces the set ranges over.
    #[must_use]
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether the set ranges over zero pieces.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `piece` is in the set (`false` when out of range).
    #[must_use]
    pub fn get(&self, piece: u32) -> bool {
        let Some(byte) = self.bytes.get((piece / 8) as usize) else {
            return false;
        };
        piece < self.len && byte & mask(piece) != 0
    }

    /// Adds or removes `piece`; out-of-range indices are ignored.
    pub fn set(&mut self, piece: u32, value: bool) {
        if piece >= self.len {
            return;
        }
        if let Some(byte) = self.bytes.get_mut((piece / 8) as usize) {
            if value {
                *byte |= mask(piece);
            } else {
                *byte &= !mask(piece);
            }
        }
    }

    /// How many pieces are in the set.
    #[must_use]
    pub fn count_ones(&self) -> u32 {
        self.bytes.iter().map(|b| b.count_ones()).sum()
    }

    /// Whether every piece is in the set.
    #[must_use]
    pub fn is_full(&self) -> bool {
        self.count_ones() == self.len
    }

    /// The pieces in the set, ascending.
    pub fn iter_ones(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.len).filter(|&piece| self.get(piece))
    }

    /// The MSB-first bytes, `ceil(len / 8)` of them, spare bits zero.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn clear_spare_bits(&mut self) {
        let spare = (8 - self.len % 8) % 8;
        if let Some(last) = self.bytes.last_mut() {
            *last &= 0xffu8 << spare;
        }
    }
}

impl std::fmt::Debug for Bitfield {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bitfield({}/{})", self.count_ones(), self.len)
    }
}

fn byte_len(len: u32) -> usize {
    len.div_ceil(8) as usize
}

fn mask(piece: u32) -> u8 {
    0x80 >> (piece % 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msb_first_like_the_wire() {
        let mut field = Bitfield::new(10);
        field.set(0, true);
        field.set(9, true);
        assert_eq!(field.as_bytes(), &[0x80, 0x40]);
        assert!(field.get(0) && field.get(9) && !field.get(1));
        assert_eq!(field.iter_ones().collect::<Vec<_>>(), vec![0, 9]);
    }

    #[test]
    fn full_clears_spare_bits_and_from_bytes_checks_length() {
        let full = Bitfield::full(10);
        assert_eq!(full.as_bytes(), &[0xff, 0xc0]);
        assert!(full.is_full());
        assert_eq!(Bitfield::from_bytes(10, &[0xff, 0xff]), Some(full));
        assert_eq!(Bitfield::from_bytes(10, &[0xff]), None);
        assert_eq!(Bitfield::from_bytes(10, &[0, 0, 0]), None);
    }

    proptest::proptest! {
        /// Any stored blob (the resume database is a file we read back) parses or is refused
        /// without panicking, and what parses re-encodes to itself minus spare bits.
        #[test]
        fn arbitrary_bytes_never_panic(len in 0u32..200, bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..30)) {
            if let Some(field) = Bitfield::from_bytes(len, &bytes) {
                proptest::prop_assert_eq!(field.as_bytes().len(), bytes.len());
                proptest::prop_assert!(field.iter_ones().all(|p| p < len));
                proptest::prop_assert_eq!(Bitfield::from_bytes(len, field.as_bytes()), Some(field.clone()));
                proptest::prop_assert_eq!(field.count_ones() as usize, field.iter_ones().count());
            } else {
                proptest::prop_assert_ne!(bytes.len(), len.div_ceil(8) as usize);
            }
        }
    }

    #[test]
    fn out_of_range_is_ignored() {
        let mut field = Bitfield::new(3);
        field.set(3, true);
        field.set(100, true);
        assert_eq!(field.count_ones(), 0);
        assert!(!field.get(3) && !field.get(u32::MAX));
    }
}
