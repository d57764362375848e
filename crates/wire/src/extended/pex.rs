//! Peer exchange (BEP 11, `ut_pex`): peers a connected peer added or dropped since its last
//! message, as compact address lists with a flag byte per added peer.
//!
//! Lists are bounded by [`PEX_PEERS_MAX`] before anything is allocated for them. A missing
//! list is empty; an `added.f` whose length does not match `added` is ignored (flags are
//! advisory), but a compact list whose length is not a whole number of entries is an error.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use bitswarm_bencode::{Dict, OwnedValue};
use bytes::Bytes;

use super::{as_dict, decode_dict, optional_bytes};
use crate::error::WireError;
use crate::message::Message;

/// Most entries accepted in any one list of a `ut_pex` message. BEP 11 caps messages after
/// the first at 50 added and 50 dropped; the first may list every connected peer, and no
/// client keeps more than a few hundred connections per torrent.
pub const PEX_PEERS_MAX: usize = 500;

const V4_LEN: usize = 6;
const V6_LEN: usize = 18;

/// The flag byte BEP 11 attaches to each added peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PexFlags(pub u8);

impl PexFlags {
    /// `0x01`: prefers encryption.
    pub const PREFERS_ENCRYPTION: u8 = 0x01;
    /// `0x02`: seed or upload-only.
    pub const SEED: u8 = 0x02;
    /// `0x04`: supports uTP.
    pub const UTP: u8 = 0x04;
    /// `0x08`: supports `ut_holepunch`.
    pub const HOLEPUNCH: u8 = 0x08;
    /// `0x10`: reachable (the sender connected out to it).
    pub const REACHABLE: u8 = 0x10;

    /// Whether the peer prefers encryption.
    #[must_use]
    pub fn prefers_encryption(self) -> bool {
        self.0 & Self::PREFERS_ENCRYPTION != 0
    }

    /// Whether the peer is a seed (or upload-only).
    #[must_use]
    pub fn seed(self) -> bool {
        self.0 & Self::SEED != 0
    }

    /// Whether the peer supports uTP.
    #[must_use]
    pub fn utp(self) -> bool {
        self.0 & Self::UTP != 0
    }

    /// Whether the peer supports `ut_holepunch`.
    #[must_use]
    pub fn holepunch(self) -> bool {
        self.0 & Self::HOLEPUNCH != 0
    }

    /// Whether the peer accepted an outgoing connection from the sender.
    #[must_use]
    pub fn reachable(self) -> bool {
        self.0 & Self::REACHABLE != 0
    }
}

/// One `ut_pex` message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PexMessage {
    /// `added` with `added.f`: IPv4 peers connected since the last message.
    pub added: Vec<(SocketAddrV4, PexFlags)>,
    /// `added6` with `added6.f`: IPv6 peers connected since the last message.
    pub added6: Vec<(SocketAddrV6, PexFlags)>,
    /// `dropped`: IPv4 peers disconnected since the last message.
    pub dropped: Vec<SocketAddrV4>,
    /// `dropped6`: IPv6 peers disconnected since the last message.
    pub dropped6: Vec<SocketAddrV6>,
}

impl PexMessage {
    /// Parses the payload of a `ut_pex` extended message.
    pub fn parse(payload: &[u8]) -> Result<Self, WireError> {
        let value = decode_dict(payload)?;
        let dict = as_dict(&value)?;
        let added = compact(dict, "added", V4_LEN, v4)?;
        let added6 = compact(dict, "added6", V6_LEN, v6)?;
        Ok(Self {
            added: with_flags(dict, "added.f", added)?,
            added6: with_flags(dict, "added6.f", added6)?,
            dropped: compact(dict, "dropped", V4_LEN, v4)?,
            dropped6: compact(dict, "dropped6", V6_LEN, v6)?,
        })
    }

    /// Whether the message lists no peer at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.added6.is_empty()
            && self.dropped.is_empty()
            && self.dropped6.is_empty()
    }

    /// The canonical bencoding: each non-empty list, and the flags of each added list.
    #[must_use]
    pub fn encode(&self) -> Bytes {
        let lists: [(&str, Vec<u8>); 6] = [
            (
                "added",
                self.added.iter().flat_map(|(a, _)| v4_bytes(*a)).collect(),
            ),
            ("added.f", self.added.iter().map(|(_, f)| f.0).collect()),
            (
                "added6",
                self.added6.iter().flat_map(|(a, _)| v6_bytes(*a)).collect(),
            ),
            ("added6.f", self.added6.iter().map(|(_, f)| f.0).collect()),
            (
                "dropped",
                self.dropped.iter().flat_map(|a| v4_bytes(*a)).collect(),
            ),
            (
                "dropped6",
                self.dropped6.iter().flat_map(|a| v6_bytes(*a)).collect(),
            ),
        ];
        let dict = lists
            .into_iter()
            .filter(|(_, bytes)| !bytes.is_empty())
            .fold(OwnedValue::dict(), |dict, (key, bytes)| {
                dict.insert(key, OwnedValue::Bytes(bytes))
            });
        Bytes::from(dict.encode())
    }

    /// This message as an extended message with the id the receiver chose for `ut_pex`.
    #[must_use]
    pub fn to_message(&self, extended_id: u8) -> Message {
        Message::Extended {
            id: extended_id,
            payload: self.encode(),
        }
    }
}

/// A compact address list: absent is empty, a bad length or too many entries is an error.
fn compact<T>(
    dict: &Dict<'_>,
    field: &'static str,
    entry_len: usize,
    read: fn(&[u8]) -> T,
) -> Result<Vec<T>, WireError> {
    let Some(bytes) = optional_bytes(dict, field)? else {
        return Ok(Vec::new());
    };
    if bytes.len() % entry_len != 0 {
        return Err(WireError::CompactLength {
            field,
            len: bytes.len(),
            entry_len,
        });
    }
    let count = bytes.len() / entry_len;
    if count > PEX_PEERS_MAX {
        return Err(WireError::TooManyPeers {
            field,
            count,
            max: PEX_PEERS_MAX,
        });
    }
    Ok(bytes.chunks_exact(entry_len).map(read).collect())
}

/// Pairs each address with its flag byte; flags of the wrong length are ignored.
fn with_flags<T>(
    dict: &Dict<'_>,
    field: &'static str,
    addrs: Vec<T>,
) -> Result<Vec<(T, PexFlags)>, WireError> {
    let flags = optional_bytes(dict, field)?.filter(|f| f.len() == addrs.len());
    Ok(addrs
        .into_iter()
        .enumerate()
        .map(|(i, addr)| {
            let flag = flags.and_then(|f| f.get(i)).copied().unwrap_or(0);
            (addr, PexFlags(flag))
        })
        .collect())
}

/// Reads a 6-byte entry; `compact` only hands over whole entries.
fn v4(entry: &[u8]) -> SocketAddrV4 {
    let mut ip = [0u8; 4];
    ip.copy_from_slice(&entry[..4]);
    SocketAddrV4::new(Ipv4Addr::from(ip), u16::from_be_bytes([entry[4], entry[5]]))
}

/// Reads an 18-byte entry; `compact` only hands over whole entries.
fn v6(entry: &[u8]) -> SocketAddrV6 {
    let mut ip = [0u8; 16];
    ip.copy_from_slice(&entry[..16]);
    let port = u16::from_be_bytes([entry[16], entry[17]]);
    SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, 0)
}

fn v4_bytes(addr: SocketAddrV4) -> [u8; V4_LEN] {
    let mut out = [0u8; V4_LEN];
    out[..4].copy_from_slice(&addr.ip().octets());
    out[4..].copy_from_slice(&addr.port().to_be_bytes());
    out
}

fn v6_bytes(addr: SocketAddrV6) -> [u8; V6_LEN] {
    let mut out = [0u8; V6_LEN];
    out[..16].copy_from_slice(&addr.ip().octets());
    out[16..].copy_from_slice(&addr.port().to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_real_shaped_message() {
        let raw = b"d5:added12:\x7f\x00\x00\x01\x1a\xe1\x0a\x00\x00\x02\xc8\xd57:added.f2:\x12\x006:added618:\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01\x1a\xe18:added6.f1:\x047:dropped6:\x0a\x00\x00\x03\x00\x50e";
        let pex = PexMessage::parse(raw).unwrap();
        assert_eq!(pex.added.len(), 2);
        assert_eq!(pex.added[0].0, "127.0.0.1:6881".parse().unwrap());
        assert!(pex.added[0].1.seed() && pex.added[0].1.reachable() && !pex.added[0].1.utp());
        assert_eq!(
            pex.added[1],
            ("10.0.0.2:51413".parse().unwrap(), PexFlags(0))
        );
        assert_eq!(
            pex.added6,
            vec![(
                "[2001:db8::1]:6881".parse().unwrap(),
                PexFlags(PexFlags::UTP)
            )]
        );
        assert_eq!(pex.dropped, vec!["10.0.0.3:80".parse().unwrap()]);
        assert!(pex.dropped6.is_empty());
        assert_eq!(&pex.encode()[..], &raw[..]);
    }

    #[test]
    fn flags_of_the_wrong_length_are_ignored() {
        let raw = b"d5:added6:\x7f\x00\x00\x01\x1a\xe17:added.f2:\x01\x01e";
        let pex = PexMessage::parse(raw).unwrap();
        assert_eq!(pex.added[0].1, PexFlags(0));
    }

    #[test]
    fn bad_lists() {
        assert_eq!(
            PexMessage::parse(b"d5:added5:abcdee"),
            Err(WireError::CompactLength {
                field: "added",
                len: 5,
                entry_len: 6
            })
        );
        assert_eq!(
            PexMessage::parse(b"d8:dropped6i1ee"),
            Err(WireError::BadField { field: "dropped6" })
        );
        let mut raw = b"d7:dropped3006:".to_vec();
        raw.extend_from_slice(&[1; 3006]);
        raw.push(b'e');
        assert_eq!(
            PexMessage::parse(&raw),
            Err(WireError::TooManyPeers {
                field: "dropped",
                count: 501,
                max: PEX_PEERS_MAX
            })
        );
        assert_eq!(PexMessage::parse(b"de"), Ok(PexMessage::default()));
        assert!(PexMessage::default().is_empty());
    }
}
