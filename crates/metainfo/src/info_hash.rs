//! Identifier newtypes: the v1 [`InfoHash`] (with its hex and base32 spellings) and
//! [`PieceIndex`], so that neither is mixed up with other 20-byte arrays or integers.

use std::fmt;
use std::str::FromStr;

use sha1::{Digest, Sha1};

use crate::error::MetainfoError;

/// A BitTorrent v1 info-hash: SHA-1 over the exact bytes of a torrent's info dictionary.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoHash([u8; 20]);

impl InfoHash {
    /// Wraps 20 raw bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 20]) -> Self {
        Self(bytes)
    }

    /// The 20 raw bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// SHA-1 of an info dictionary's bytes, exactly as received.
    #[must_use]
    pub fn of_info(raw_info: &[u8]) -> Self {
        Self(Sha1::digest(raw_info).into())
    }

    /// Lowercase hexadecimal, 40 characters.
    #[must_use]
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(40);
        for b in self.0 {
            s.push(char::from(HEX_DIGITS[usize::from(b >> 4)]));
            s.push(char::from(HEX_DIGITS[usize::from(b & 0xf)]));
        }
        s
    }

    /// Parses 40 hexadecimal digits (either case).
    pub fn from_hex(s: &str) -> Result<Self, MetainfoError> {
        let bytes = s.as_bytes();
        if bytes.len() != 40 {
            return Err(MetainfoError::InvalidHex);
        }
        let mut out = [0u8; 20];
        for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let hi = hex_value(pair[0]).ok_or(MetainfoError::InvalidHex)?;
            let lo = hex_value(pair[1]).ok_or(MetainfoError::InvalidHex)?;
            *o = hi << 4 | lo;
        }
        Ok(Self(out))
    }

    /// Parses 32 characters of RFC 4648 base32 (`A`-`Z`, `2`-`7`, either case, no padding),
    /// the older magnet-link spelling.
    pub fn from_base32(s: &str) -> Result<Self, MetainfoError> {
        let bytes = s.as_bytes();
        if bytes.len() != 32 {
            return Err(MetainfoError::InvalidBase32);
        }
        let mut out = [0u8; 20];
        // Each group of 8 characters carries 40 bits = 5 bytes.
        for (group, chunk) in out.chunks_exact_mut(5).zip(bytes.chunks_exact(8)) {
            let mut acc: u64 = 0;
            for &c in chunk {
                acc = acc << 5 | u64::from(base32_value(c).ok_or(MetainfoError::InvalidBase32)?);
            }
            group.copy_from_slice(&acc.to_be_bytes()[3..]);
        }
        Ok(Self(out))
    }

    /// Uppercase RFC 4648 base32, 32 characters, no padding.
    #[must_use]
    pub fn to_base32(&self) -> String {
        let mut s = String::with_capacity(32);
        for group in self.0.chunks_exact(5) {
            let mut buf = [0u8; 8];
            buf[3..].copy_from_slice(group);
            let acc = u64::from_be_bytes(buf);
            for i in (0..8).rev() {
                let v = (acc >> (i * 5)) & 0x1f;
                s.push(char::from(BASE32_ALPHABET[v as usize]));
            }
        }
        s
    }
}

impl fmt::Display for InfoHash {
    /// Lowercase hexadecimal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({})", self.to_hex())
    }
}

impl FromStr for InfoHash {
    type Err = MetainfoError;

    /// Accepts 40 hex digits or 32 base32 characters.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.len() {
            40 => Self::from_hex(s),
            32 => Self::from_base32(s),
            len => Err(MetainfoError::InvalidInfoHashLength { len }),
        }
    }
}

impl From<[u8; 20]> for InfoHash {
    fn from(bytes: [u8; 20]) -> Self {
        Self(bytes)
    }
}

/// The index of a piece within a torrent (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PieceIndex(pub u32);

impl fmt::Display for PieceIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u32> for PieceIndex {
    fn from(n: u32) -> Self {
        Self(n)
    }
}

impl From<PieceIndex> for u32 {
    fn from(p: PieceIndex) -> Self {
        p.0
    }
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";
const BASE32_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// The value of one hex digit, either case.
pub(crate) fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn base32_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a'),
        b'2'..=b'7' => Some(c - b'2' + 26),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn of_info_matches_sha1_fips_vector() {
        // FIPS 180 test vector: SHA-1("abc").
        assert_eq!(
            InfoHash::of_info(b"abc").to_hex(),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    #[test]
    fn hex_round_trip_and_case() {
        let h = InfoHash::from_hex("A9993E364706816ABA3E25717850C26C9CD0D89D").unwrap();
        assert_eq!(h.to_string(), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(InfoHash::from_hex(&h.to_hex()).unwrap(), h);
        assert_eq!(
            InfoHash::from_hex("g9993e364706816aba3e25717850c26c9cd0d89d"),
            Err(MetainfoError::InvalidHex)
        );
        assert_eq!(InfoHash::from_hex("ab"), Err(MetainfoError::InvalidHex));
    }

    #[test]
    fn base32_matches_rfc4648_and_round_trips() {
        // RFC 4648 section 10: BASE32("fooba") = "MZXW6YTB"; four such groups make 20 bytes.
        let h = InfoHash::from_bytes(*b"foobafoobafoobafooba");
        assert_eq!(h.to_base32(), "MZXW6YTBMZXW6YTBMZXW6YTBMZXW6YTB");
        assert_eq!(InfoHash::from_base32(&h.to_base32()).unwrap(), h);
        assert_eq!(
            InfoHash::from_base32("mzxw6ytbmzxw6ytbmzxw6ytbmzxw6ytb").unwrap(),
            h
        );
        assert_eq!(
            InfoHash::from_base32("MZXW6YTBMZXW6YTBMZXW6YTBMZXW6YT1"),
            Err(MetainfoError::InvalidBase32)
        );
    }

    #[test]
    fn from_str_dispatches_on_length() {
        let h = InfoHash::from_bytes([0xab; 20]);
        assert_eq!(h.to_hex().parse::<InfoHash>().unwrap(), h);
        assert_eq!(h.to_base32().parse::<InfoHash>().unwrap(), h);
        assert_eq!(
            "abc".parse::<InfoHash>(),
            Err(MetainfoError::InvalidInfoHashLength { len: 3 })
        );
    }
}
