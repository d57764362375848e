//! The small identifiers every tracker message carries: info-hash, peer id, announce event.
//! Newtypes, so a 20-byte info-hash is never mixed up with a 20-byte peer id.

use std::fmt;

/// A BitTorrent v1 info-hash: 20 bytes naming a swarm.
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

    /// Parses 40 hexadecimal digits (either case); `None` for anything else.
    #[must_use]
    pub fn from_hex(s: &str) -> Option<Self> {
        let bytes = s.as_bytes();
        if bytes.len() != 40 {
            return None;
        }
        let mut out = [0u8; 20];
        for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let &[hi, lo] = pair else {
                return None;
            };
            *o = hex_value(hi)? << 4 | hex_value(lo)?;
        }
        Some(Self(out))
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
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({self})")
    }
}

/// A peer's self-chosen 20-byte id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct PeerId(pub [u8; 20]);

/// What an announce reports about the peer's state change (BEP 3 `event`, BEP 15 `event`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum Event {
    /// A regular re-announce.
    #[default]
    None,
    /// The peer finished downloading.
    Completed,
    /// The peer joined the swarm.
    Started,
    /// The peer left the swarm.
    Stopped,
}

impl Event {
    /// The BEP 15 number of this event.
    #[must_use]
    pub const fn to_udp(self) -> u32 {
        match self {
            Self::None => 0,
            Self::Completed => 1,
            Self::Started => 2,
            Self::Stopped => 3,
        }
    }

    /// The event for a BEP 15 number, `None` for unknown numbers.
    #[must_use]
    pub const fn from_udp(n: u32) -> Option<Self> {
        match n {
            0 => Some(Self::None),
            1 => Some(Self::Completed),
            2 => Some(Self::Started),
            3 => Some(Self::Stopped),
            _ => None,
        }
    }

    /// The BEP 3 spelling of this event (empty for a regular announce).
    #[must_use]
    pub const fn as_http(self) -> &'static str {
        match self {
            Self::None => "",
            Self::Completed => "completed",
            Self::Started => "started",
            Self::Stopped => "stopped",
        }
    }
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// The value of one hexadecimal digit.
pub(crate) const fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}
