//! The 68-byte handshake that opens every peer connection (BEP 3), and the reserved bits by
//! which peers announce the extension protocol (BEP 10), the fast extension (BEP 6) and DHT
//! (BEP 5).
//!
//! The handshake is split in a 48-byte [`HandshakeHead`] (protocol, reserved bits, info-hash)
//! and the 20-byte peer id, because the side accepting a connection must read the info-hash
//! to find the torrent before it answers, and some peers hold their peer id back until then.

use std::fmt;

use crate::error::WireError;
use crate::peer_id::{PeerId, PEER_ID_LEN};

/// The protocol name every handshake starts with (after its length byte, 19).
pub const PROTOCOL: &[u8; 19] = b"BitTorrent protocol";
/// Bytes in a whole handshake.
pub const HANDSHAKE_LEN: usize = 68;
/// Bytes in the handshake before the peer id: length byte, protocol, reserved, info-hash.
pub const HANDSHAKE_HEAD_LEN: usize = 48;

/// The protocol prefix as it appears on the wire: length byte then name.
const PROTOCOL_PREFIX_LEN: usize = 20;

/// The 8 reserved bytes of the handshake, where each side flags the extensions it supports.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Reserved(pub [u8; 8]);

impl Reserved {
    /// No extension flagged.
    pub const NONE: Self = Self([0; 8]);

    /// Whether the extension protocol (BEP 10: byte 5, bit `0x10`) is flagged.
    #[must_use]
    pub const fn extension_protocol(self) -> bool {
        self.0[5] & 0x10 != 0
    }

    /// Whether the fast extension (BEP 6: byte 7, bit `0x04`) is flagged.
    #[must_use]
    pub const fn fast(self) -> bool {
        self.0[7] & 0x04 != 0
    }

    /// Whether DHT support (BEP 5: byte 7, bit `0x01`) is flagged.
    #[must_use]
    pub const fn dht(self) -> bool {
        self.0[7] & 0x01 != 0
    }

    /// These bits with the extension protocol flag set or cleared.
    #[must_use]
    pub const fn with_extension_protocol(self, on: bool) -> Self {
        self.with_bit(5, 0x10, on)
    }

    /// These bits with the fast extension flag set or cleared.
    #[must_use]
    pub const fn with_fast(self, on: bool) -> Self {
        self.with_bit(7, 0x04, on)
    }

    /// These bits with the DHT flag set or cleared.
    #[must_use]
    pub const fn with_dht(self, on: bool) -> Self {
        self.with_bit(7, 0x01, on)
    }

    const fn with_bit(mut self, byte: usize, mask: u8, on: bool) -> Self {
        if on {
            self.0[byte] |= mask;
        } else {
            self.0[byte] &= !mask;
        }
        self
    }
}

impl fmt::Debug for Reserved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reserved({:02x?}", self.0)?;
        for (on, name) in [
            (self.extension_protocol(), "ext"),
            (self.fast(), "fast"),
            (self.dht(), "dht"),
        ] {
            if on {
                write!(f, " {name}")?;
            }
        }
        f.write_str(")")
    }
}

/// The first 48 bytes of a handshake: enough to find the torrent before the peer id arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeHead {
    /// The sender's reserved bits.
    pub reserved: Reserved,
    /// The info-hash of the torrent the sender wants to exchange.
    pub info_hash: [u8; 20],
}

/// A whole handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    /// The sender's reserved bits.
    pub reserved: Reserved,
    /// The info-hash of the torrent the sender wants to exchange.
    pub info_hash: [u8; 20],
    /// The sender's peer id.
    pub peer_id: PeerId,
}

impl HandshakeHead {
    /// Parses exactly [`HANDSHAKE_HEAD_LEN`] bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let bytes: &[u8; HANDSHAKE_HEAD_LEN] =
            bytes.try_into().map_err(|_| WireError::HandshakeLength {
                len: bytes.len(),
                expected: HANDSHAKE_HEAD_LEN,
            })?;
        check_protocol_prefix(bytes)?;
        let mut reserved = [0u8; 8];
        reserved.copy_from_slice(&bytes[20..28]);
        let mut info_hash = [0u8; 20];
        info_hash.copy_from_slice(&bytes[28..48]);
        Ok(Self {
            reserved: Reserved(reserved),
            info_hash,
        })
    }

    /// The 48 bytes on the wire.
    #[must_use]
    pub fn encode(&self) -> [u8; HANDSHAKE_HEAD_LEN] {
        let mut out = [0u8; HANDSHAKE_HEAD_LEN];
        out[0] = PROTOCOL.len() as u8;
        out[1..20].copy_from_slice(PROTOCOL);
        out[20..28].copy_from_slice(&self.reserved.0);
        out[28..48].copy_from_slice(&self.info_hash);
        out
    }

    /// The whole handshake once the peer id is known.
    #[must_use]
    pub fn with_peer_id(self, peer_id: PeerId) -> Handshake {
        Handshake {
            reserved: self.reserved,
            info_hash: self.info_hash,
            peer_id,
        }
    }
}

impl Handshake {
    /// Parses exactly [`HANDSHAKE_LEN`] bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        if bytes.len() != HANDSHAKE_LEN {
            return Err(WireError::HandshakeLength {
                len: bytes.len(),
                expected: HANDSHAKE_LEN,
            });
        }
        let (head, tail) = bytes.split_at(HANDSHAKE_HEAD_LEN);
        let head = HandshakeHead::parse(head)?;
        let mut peer_id = [0u8; PEER_ID_LEN];
        peer_id.copy_from_slice(tail);
        Ok(head.with_peer_id(PeerId(peer_id)))
    }

    /// The 68 bytes on the wire.
    #[must_use]
    pub fn encode(&self) -> [u8; HANDSHAKE_LEN] {
        let mut out = [0u8; HANDSHAKE_LEN];
        out[..HANDSHAKE_HEAD_LEN].copy_from_slice(&self.head().encode());
        out[HANDSHAKE_HEAD_LEN..].copy_from_slice(&self.peer_id.0);
        out
    }

    /// The first 48 bytes' worth.
    #[must_use]
    pub fn head(&self) -> HandshakeHead {
        HandshakeHead {
            reserved: self.reserved,
            info_hash: self.info_hash,
        }
    }
}

/// Checks whatever part of the 20-byte protocol prefix `bytes` holds, so a stream that is not
/// BitTorrent is refused from its first wrong byte rather than after 48 bytes.
pub(crate) fn check_protocol_prefix(bytes: &[u8]) -> Result<(), WireError> {
    let have = bytes.len().min(PROTOCOL_PREFIX_LEN);
    let mut expected = [0u8; PROTOCOL_PREFIX_LEN];
    expected[0] = PROTOCOL.len() as u8;
    expected[1..].copy_from_slice(PROTOCOL);
    if bytes[..have] == expected[..have] {
        Ok(())
    } else {
        Err(WireError::BadProtocol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A handshake as libtorrent 2.0 sends it: extension protocol, fast and DHT flagged.
    fn libtorrent_bytes() -> Vec<u8> {
        let mut v = b"\x13BitTorrent protocol".to_vec();
        v.extend_from_slice(&[0, 0, 0, 0, 0, 0x10, 0, 0x05]);
        v.extend_from_slice(&[0xaa; 20]);
        v.extend_from_slice(b"-LT2090-abcdefghijkl");
        v
    }

    #[test]
    fn parses_a_real_handshake() {
        let bytes = libtorrent_bytes();
        let hs = Handshake::parse(&bytes).unwrap();
        assert!(hs.reserved.extension_protocol());
        assert!(hs.reserved.fast());
        assert!(hs.reserved.dht());
        assert_eq!(hs.info_hash, [0xaa; 20]);
        assert_eq!(&hs.peer_id.0, b"-LT2090-abcdefghijkl");
        assert_eq!(hs.encode().to_vec(), bytes);
        assert_eq!(HandshakeHead::parse(&bytes[..48]).unwrap(), hs.head());
    }

    #[test]
    fn reserved_bits_set_and_clear() {
        let r = Reserved::NONE
            .with_extension_protocol(true)
            .with_fast(true)
            .with_dht(true);
        assert_eq!(r.0, [0, 0, 0, 0, 0, 0x10, 0, 0x05]);
        assert_eq!(
            format!("{r:?}"),
            "Reserved([00, 00, 00, 00, 00, 10, 00, 05] ext fast dht)"
        );
        let r = r.with_fast(false);
        assert!(!r.fast() && r.dht() && r.extension_protocol());
        assert_eq!(
            r.with_dht(false).with_extension_protocol(false),
            Reserved::NONE
        );
    }

    #[test]
    fn rejects_wrong_protocol_and_sizes() {
        let mut bytes = libtorrent_bytes();
        bytes[0] = 18;
        assert_eq!(Handshake::parse(&bytes), Err(WireError::BadProtocol));
        let mut bytes = libtorrent_bytes();
        bytes[19] = b'L';
        assert_eq!(Handshake::parse(&bytes), Err(WireError::BadProtocol));
        assert_eq!(
            Handshake::parse(&bytes[..67]),
            Err(WireError::HandshakeLength {
                len: 67,
                expected: 68
            })
        );
        assert_eq!(
            HandshakeHead::parse(&bytes[..47]),
            Err(WireError::HandshakeLength {
                len: 47,
                expected: 48
            })
        );
        assert_eq!(check_protocol_prefix(b"\x13Bit"), Ok(()));
        assert_eq!(
            check_protocol_prefix(b"GET / HTTP/1.1"),
            Err(WireError::BadProtocol)
        );
        assert_eq!(check_protocol_prefix(b""), Ok(()));
    }
}
