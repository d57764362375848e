//! The canonical allowed-fast set of BEP 6: which pieces a peer may request from us while
//! choked, derived from its IPv4 address and the info-hash so that every client computes the
//! same set for the same peer.

use std::net::Ipv4Addr;

use sha1::{Digest, Sha1};

/// Largest allowed-fast set this function computes (BEP 6 suggests 10).
pub const ALLOWED_FAST_SET_LEN_MAX: usize = 256;
/// Most SHA-1 rounds spent filling a set: far beyond what any set up to
/// [`ALLOWED_FAST_SET_LEN_MAX`] needs, it only keeps the loop bounded.
const ROUNDS_MAX: usize = 10_000;

/// The first `k` pieces of `peer_ip`'s allowed-fast set for a torrent of `piece_count` pieces
/// (BEP 6, "Allowed Fast Set Generation"). `k` is capped at the piece count and at
/// [`ALLOWED_FAST_SET_LEN_MAX`]; the set is a prefix of the set for any larger `k`.
#[must_use]
pub fn allowed_fast_set(
    info_hash: &[u8; 20],
    peer_ip: Ipv4Addr,
    piece_count: u32,
    k: usize,
) -> Vec<u32> {
    let k = k.min(piece_count as usize).min(ALLOWED_FAST_SET_LEN_MAX);
    let mut set = Vec::with_capacity(k);
    let mut x = Vec::with_capacity(24);
    x.extend_from_slice(&(u32::from(peer_ip) & 0xffff_ff00).to_be_bytes());
    x.extend_from_slice(info_hash);
    for _ in 0..ROUNDS_MAX {
        if set.len() >= k {
            break;
        }
        let digest = Sha1::digest(&x);
        for word in digest.chunks_exact(4) {
            if set.len() >= k {
                break;
            }
            let y = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
            let index = y % piece_count;
            if !set.contains(&index) {
                set.push(index);
            }
        }
        x.clear();
        x.extend_from_slice(&digest);
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example results printed in BEP 6.
    #[test]
    fn bep6_vectors() {
        let ip = Ipv4Addr::new(80, 4, 4, 200);
        let hash = [0xaa; 20];
        assert_eq!(
            allowed_fast_set(&hash, ip, 1313, 7),
            vec![1059, 431, 808, 1217, 287, 376, 1188]
        );
        assert_eq!(
            allowed_fast_set(&hash, ip, 1313, 9),
            vec![1059, 431, 808, 1217, 287, 376, 1188, 353, 508]
        );
        // Only the top three octets count.
        assert_eq!(
            allowed_fast_set(&hash, Ipv4Addr::new(80, 4, 4, 1), 1313, 9),
            allowed_fast_set(&hash, ip, 1313, 9)
        );
    }

    #[test]
    fn small_torrents_are_bounded() {
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        assert!(allowed_fast_set(&[1; 20], ip, 0, 10).is_empty());
        assert_eq!(allowed_fast_set(&[1; 20], ip, 1, 10), vec![0]);
        let mut all = allowed_fast_set(&[1; 20], ip, 5, 10);
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2, 3, 4]);
    }
}
