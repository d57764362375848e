//! Compact peer lists (BEP 23 for IPv4, BEP 7 for IPv6): 6 or 18 bytes per peer, address then
//! port, big-endian. Shared by the HTTP and UDP formats and by the swarm table, which stores
//! peers in exactly this form so a response is a copy of stored bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Bytes of one compact IPv4 peer.
pub const PEER_V4_LEN: usize = 6;
/// Bytes of one compact IPv6 peer.
pub const PEER_V6_LEN: usize = 18;

/// An IPv4 peer in compact form: 4 address bytes, 2 port bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CompactV4(pub [u8; PEER_V4_LEN]);

/// An IPv6 peer in compact form: 16 address bytes, 2 port bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CompactV6(pub [u8; PEER_V6_LEN]);

impl CompactV4 {
    /// The compact form of an address and port.
    #[must_use]
    pub fn new(ip: Ipv4Addr, port: u16) -> Self {
        let mut b = [0u8; PEER_V4_LEN];
        b[..4].copy_from_slice(&ip.octets());
        b[4..].copy_from_slice(&port.to_be_bytes());
        Self(b)
    }

    /// The socket address this compact form names.
    #[must_use]
    pub fn to_socket_addr(self) -> SocketAddr {
        let [a, b, c, d, p0, p1] = self.0;
        SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::new(a, b, c, d),
            u16::from_be_bytes([p0, p1]),
        ))
    }
}

impl CompactV6 {
    /// The compact form of an address and port.
    #[must_use]
    pub fn new(ip: Ipv6Addr, port: u16) -> Self {
        let mut b = [0u8; PEER_V6_LEN];
        b[..16].copy_from_slice(&ip.octets());
        b[16..].copy_from_slice(&port.to_be_bytes());
        Self(b)
    }

    /// The socket address this compact form names.
    #[must_use]
    pub fn to_socket_addr(self) -> SocketAddr {
        let mut ip = [0u8; 16];
        ip.copy_from_slice(&self.0[..16]);
        let port = u16::from_be_bytes([self.0[16], self.0[17]]);
        SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, 0))
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack socket reports for an
/// IPv4 client) as the IPv4 address it is; any other address unchanged.
#[must_use]
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// A borrowed compact peer list as received in a response.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CompactPeers<'a> {
    bytes: &'a [u8],
    v6: bool,
}

impl<'a> CompactPeers<'a> {
    /// A view of `bytes` as IPv4 (`v6 == false`) or IPv6 compact peers; a trailing partial
    /// entry is ignored.
    #[must_use]
    pub fn new(bytes: &'a [u8], v6: bool) -> Self {
        Self { bytes, v6 }
    }

    /// The raw bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Number of whole entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.bytes.len() / self.entry_len()
    }

    /// Whether there is no whole entry.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The peers' socket addresses.
    pub fn iter(&self) -> impl Iterator<Item = SocketAddr> + 'a {
        let v6 = self.v6;
        self.bytes
            .chunks_exact(self.entry_len())
            .filter_map(move |c| {
                if v6 {
                    c.try_into().ok().map(|b| CompactV6(b).to_socket_addr())
                } else {
                    c.try_into().ok().map(|b| CompactV4(b).to_socket_addr())
                }
            })
    }

    fn entry_len(&self) -> usize {
        if self.v6 {
            PEER_V6_LEN
        } else {
            PEER_V4_LEN
        }
    }
}
