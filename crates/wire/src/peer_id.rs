//! The 20-byte peer id: a newtype so it is never mixed up with an info-hash, a generator for
//! our own, and a reader of the client conventions other peers use (for display only).

use std::fmt;

use rand::Rng;

/// Bytes in a peer id.
pub const PEER_ID_LEN: usize = 20;

/// The Azureus-style prefix of peer ids this crate's version generates: `-BW0100-`.
pub const CLIENT_PREFIX: [u8; 8] = *b"-BW0100-";

/// A peer's self-chosen 20-byte identifier, as sent in the handshake.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub [u8; PEER_ID_LEN]);

/// A client recognised from its peer id, for display: `libtorrent (Rasterbar) 2.0.9`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// The client's name.
    pub name: &'static str,
    /// Its version as encoded in the peer id, dotted (`2.0.9`); empty when not readable.
    pub version: String,
}

impl PeerId {
    /// A fresh peer id: `prefix` (at most 20 bytes are used, e.g. [`CLIENT_PREFIX`]) followed
    /// by random alphanumeric characters, so the whole id is printable.
    pub fn generate(prefix: &[u8], rng: &mut impl Rng) -> Self {
        const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let mut id = [0u8; PEER_ID_LEN];
        let used = prefix.len().min(PEER_ID_LEN);
        id[..used].copy_from_slice(&prefix[..used]);
        for byte in &mut id[used..] {
            *byte = ALPHABET[rng.gen_range(0..ALPHABET.len())];
        }
        Self(id)
    }

    /// The raw bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; PEER_ID_LEN] {
        &self.0
    }

    /// The client that made this id, when it follows the Azureus (`-LT2090-`) or Mainline
    /// (`M7-4-3--`) convention with a known client code. For display and statistics only:
    /// nothing stops a peer from sending any id it likes.
    #[must_use]
    pub fn client(&self) -> Option<Client> {
        azureus_style(&self.0).or_else(|| mainline_style(&self.0))
    }
}

impl From<[u8; PEER_ID_LEN]> for PeerId {
    fn from(bytes: [u8; PEER_ID_LEN]) -> Self {
        Self(bytes)
    }
}

impl AsRef<[u8]> for PeerId {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for PeerId {
    /// The id as text, with non-printable bytes escaped (`-LT2090-\x01...`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.escape_ascii())
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId(\"{}\")", self.0.escape_ascii())
    }
}

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.version.is_empty() {
            f.write_str(self.name)
        } else {
            write!(f, "{} {}", self.name, self.version)
        }
    }
}

/// Two-character client codes of the Azureus convention (`-XXvvvv-`), the common ones.
const AZUREUS_CODES: &[(&[u8; 2], &str)] = &[
    (b"A2", "aria2"),
    (b"AZ", "Vuze"),
    (b"BC", "BitComet"),
    (b"BI", "BiglyBT"),
    (b"BT", "BitTorrent"),
    (b"BW", "bitswarm"),
    (b"DE", "Deluge"),
    (b"FD", "Free Download Manager"),
    (b"FW", "FrostWire"),
    (b"KT", "KTorrent"),
    (b"LT", "libtorrent (Rasterbar)"),
    (b"lt", "libtorrent (rakshasa)"),
    (b"PI", "PicoTorrent"),
    (b"qB", "qBittorrent"),
    (b"SD", "Thunder"),
    (b"TR", "Transmission"),
    (b"UM", "\u{b5}Torrent Mac"),
    (b"UT", "\u{b5}Torrent"),
    (b"UW", "\u{b5}Torrent Web"),
    (b"WW", "WebTorrent"),
    (b"XL", "Xunlei"),
];

/// `-XXvvvv-`: a known two-letter code and four version characters (digits, or letters for
/// values from 10 up as libtorrent does), shown with trailing zero components dropped.
fn azureus_style(id: &[u8; PEER_ID_LEN]) -> Option<Client> {
    if id[0] != b'-' || id[7] != b'-' {
        return None;
    }
    let code = [id[1], id[2]];
    let name = AZUREUS_CODES
        .iter()
        .find(|(c, _)| **c == code)
        .map(|(_, name)| *name)?;
    // The µTorrent family spends the last version character on a build tag (`S`table, `B`eta).
    let digits = if code[0] == b'U' {
        &id[3..6]
    } else {
        &id[3..7]
    };
    let parts: Option<Vec<u32>> = digits.iter().map(|&c| version_digit(c)).collect();
    let version = match parts {
        Some(mut parts) => {
            while parts.len() > 2 && parts.last() == Some(&0) {
                parts.pop();
            }
            join_dotted(&parts)
        }
        None => String::new(),
    };
    Some(Client { name, version })
}

/// `M7-4-3--`: the original client's convention, `M` then dash-separated version numbers.
fn mainline_style(id: &[u8; PEER_ID_LEN]) -> Option<Client> {
    if id[0] != b'M' {
        return None;
    }
    let head = &id[1..8];
    let end = head.iter().rposition(|&c| c != b'-')? + 1;
    let mut parts = Vec::new();
    for field in head[..end].split(|&c| c == b'-') {
        let text = std::str::from_utf8(field).ok()?;
        parts.push(text.parse::<u32>().ok()?);
    }
    Some(Client {
        name: "BitTorrent (mainline)",
        version: join_dotted(&parts),
    })
}

fn version_digit(c: u8) -> Option<u32> {
    match c {
        b'0'..=b'9' => Some(u32::from(c - b'0')),
        b'A'..=b'Z' => Some(u32::from(c - b'A') + 10),
        _ => None,
    }
}

fn join_dotted(parts: &[u32]) -> String {
    parts
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    fn id(prefix: &[u8]) -> PeerId {
        let mut bytes = [b'x'; PEER_ID_LEN];
        bytes[..prefix.len()].copy_from_slice(prefix);
        PeerId(bytes)
    }

    #[test]
    fn generated_ids_keep_the_prefix_and_are_printable() {
        let mut rng = StdRng::seed_from_u64(7);
        let a = PeerId::generate(&CLIENT_PREFIX, &mut rng);
        let b = PeerId::generate(&CLIENT_PREFIX, &mut rng);
        assert_eq!(&a.0[..8], b"-BW0100-");
        assert!(a.0.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-'));
        assert_ne!(a, b);
        assert_eq!(a.client().unwrap().to_string(), "bitswarm 0.1");
        let long = PeerId::generate(&[b'z'; 30], &mut rng);
        assert_eq!(long.0, [b'z'; 20]);
    }

    #[test]
    fn names_well_known_clients() {
        let cases: &[(&[u8], &str)] = &[
            (b"-LT2090-", "libtorrent (Rasterbar) 2.0.9"),
            (b"-lt0D80-", "libtorrent (rakshasa) 0.13.8"),
            (b"-TR4050-", "Transmission 4.0.5"),
            (b"-TR3000-", "Transmission 3.0"),
            (b"-qB4630-", "qBittorrent 4.6.3"),
            (b"-UT355S-", "\u{b5}Torrent 3.5.5"),
            (b"-DE13F0-", "Deluge 1.3.15"),
            (b"M7-4-3--", "BitTorrent (mainline) 7.4.3"),
            (b"M4-20-8-", "BitTorrent (mainline) 4.20.8"),
        ];
        for (prefix, want) in cases {
            assert_eq!(id(prefix).client().unwrap().to_string(), *want);
        }
        assert_eq!(id(b"-ZZ1000-").client(), None);
        assert_eq!(id(b"Mx-1----").client(), None);
        assert_eq!(PeerId([0; 20]).client(), None);
    }

    #[test]
    fn display_escapes_binary_bytes() {
        let mut bytes = [b'a'; 20];
        bytes[19] = 0xff;
        assert_eq!(PeerId(bytes).to_string(), "aaaaaaaaaaaaaaaaaaa\\xff");
    }
}
