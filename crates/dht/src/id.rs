//! Node ids: the 160-bit XOR metric space of the DHT, and BEP 42's binding of ids to addresses.

use std::fmt;
use std::net::IpAddr;

use rand::Rng;

/// A 160-bit DHT node id (also the shape of an info-hash, the target of a lookup).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NodeId(pub [u8; 20]);

impl NodeId {
    /// Length of an id on the wire, in bytes.
    pub const LEN: usize = 20;

    /// A uniformly random id.
    pub fn random(rng: &mut impl Rng) -> Self {
        let mut id = [0u8; 20];
        rng.fill(&mut id[..]);
        Self(id)
    }

    /// A BEP 42 id for a node whose external address is `ip`: the first 21 bits are derived
    /// from a CRC32-C of the masked address, the last byte is the random seed `r`.
    pub fn secure(ip: IpAddr, rng: &mut impl Rng) -> Self {
        let seed: u8 = rng.gen();
        let mut id = Self::random(rng);
        let crc = secure_prefix(ip, seed);
        let [c0, c1, c2, _] = crc.to_be_bytes();
        id.0[0] = c0;
        id.0[1] = c1;
        id.0[2] = (c2 & 0xf8) | (id.0[2] & 0x07);
        id.0[19] = seed;
        id
    }

    /// Whether this id satisfies BEP 42 for `ip`. Addresses BEP 42 exempts (loopback,
    /// private, link-local, unspecified) accept every id.
    #[must_use]
    pub fn is_secure_for(&self, ip: IpAddr) -> bool {
        if is_local(ip) {
            return true;
        }
        let crc = secure_prefix(ip, self.0[19]);
        let [c0, c1, c2, _] = crc.to_be_bytes();
        self.0[0] == c0 && self.0[1] == c1 && (self.0[2] & 0xf8) == (c2 & 0xf8)
    }

    /// The XOR distance to `other`, comparable as a big-endian number.
    #[must_use]
    pub fn distance(&self, other: &NodeId) -> [u8; 20] {
        let mut d = [0u8; 20];
        for (i, byte) in d.iter_mut().enumerate() {
            *byte = self.0[i] ^ other.0[i];
        }
        d
    }

    /// Number of leading bits shared with `other` (160 when equal).
    #[must_use]
    pub fn common_prefix_len(&self, other: &NodeId) -> usize {
        let d = self.distance(other);
        for (i, byte) in d.iter().enumerate() {
            if *byte != 0 {
                return i * 8 + byte.leading_zeros() as usize;
            }
        }
        160
    }

    /// The id from a 20-byte slice, or `None` for any other length.
    #[must_use]
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 20]>::try_from(bytes).ok().map(Self)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Whether BEP 42 (and the one-entry-per-IP rule) exempts `ip`: loopback, private,
/// link-local, unique-local or unspecified addresses.
#[must_use]
pub fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified()
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_local(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// CRC32-C of the masked address with `r = seed & 7` folded into the top bits (BEP 42).
fn secure_prefix(ip: IpAddr, seed: u8) -> u32 {
    const V4_MASK: [u8; 4] = [0x03, 0x0f, 0x3f, 0xff];
    const V6_MASK: [u8; 8] = [0x01, 0x03, 0x07, 0x0f, 0x1f, 0x3f, 0x7f, 0xff];
    let r = seed & 0x07;
    match ip {
        IpAddr::V4(v4) => {
            let mut b = v4.octets();
            for (x, m) in b.iter_mut().zip(V4_MASK) {
                *x &= m;
            }
            b[0] |= r << 5;
            crc32c(&b)
        }
        IpAddr::V6(v6) => {
            let o = v6.octets();
            let mut b = [0u8; 8];
            for (i, x) in b.iter_mut().enumerate() {
                *x = o[i] & V6_MASK[i];
            }
            b[0] |= r << 5;
            crc32c(&b)
        }
    }
}

/// CRC32-C (Castagnoli, reflected polynomial 0x82F63B78), bitwise: it runs on 4 or 8 bytes.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0x82F6_3B78 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    fn id(hex_str: &str) -> NodeId {
        NodeId::from_slice(&hex::decode(hex_str).unwrap()).unwrap()
    }

    /// The five vectors of BEP 42 ("Test vectors").
    const VECTORS: [(&str, &str); 5] = [
        ("124.31.75.21", "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401"),
        ("21.75.31.124", "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256"),
        ("65.23.51.170", "a5d43220bc8f112a3d426c84764f8c2a1150e616"),
        ("84.124.73.14", "1b0321dd1bb1fe518101ceef99462b947a01ff41"),
        ("43.213.53.83", "e56f6cbf5b7c4be0237986d5243b87aa6d51305a"),
    ];

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn bep42_vectors_are_secure() {
        for (ip, hex_id) in VECTORS {
            let ip: IpAddr = ip.parse().unwrap();
            let node = id(hex_id);
            assert!(node.is_secure_for(ip), "{ip} {hex_id}");
            let mut bad = node;
            bad.0[0] ^= 0x80;
            assert!(!bad.is_secure_for(ip), "{ip} flipped");
        }
    }

    #[test]
    fn bep42_vectors_prefix_matches_seed() {
        for (ip, hex_id) in VECTORS {
            let ip: IpAddr = ip.parse().unwrap();
            let node = id(hex_id);
            let crc = secure_prefix(ip, node.0[19]).to_be_bytes();
            assert_eq!(&node.0[..2], &crc[..2]);
            assert_eq!(node.0[2] & 0xf8, crc[2] & 0xf8);
        }
    }

    #[test]
    fn generated_secure_ids_verify() {
        let mut rng = SmallRng::seed_from_u64(7);
        for ip in ["8.8.8.8", "2001:db8::1", "198.51.100.7"] {
            let ip: IpAddr = ip.parse().unwrap();
            for _ in 0..50 {
                assert!(NodeId::secure(ip, &mut rng).is_secure_for(ip));
            }
        }
        let random = NodeId([0x11; 20]);
        assert!(!random.is_secure_for("8.8.8.8".parse().unwrap()));
        assert!(random.is_secure_for("127.0.0.1".parse().unwrap()));
        assert!(random.is_secure_for("192.168.1.9".parse().unwrap()));
    }

    #[test]
    fn distance_and_prefix() {
        let a = NodeId([0; 20]);
        let mut b = NodeId([0; 20]);
        b.0[1] = 0x10;
        assert_eq!(a.common_prefix_len(&b), 11);
        assert_eq!(a.common_prefix_len(&a), 160);
        assert_eq!(a.distance(&b)[1], 0x10);
        assert_eq!(format!("{:?}", NodeId([0xab; 20])).len(), 48);
    }
}
