//! What other nodes give us to keep: announced peers (bounded, expiring) and the rotating
//! secrets behind the write tokens that guard `announce_peer`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};

/// Bytes of a token we hand out: a truncated SHA-1 of secret and IP.
pub(crate) const TOKEN_LEN: usize = 8;

/// Write tokens: `SHA-1(secret || ip)[..8]`, valid for the current and the previous secret.
#[derive(Debug)]
pub(crate) struct Tokens {
    current: [u8; 20],
    previous: [u8; 20],
}

impl Tokens {
    pub fn new(rng: &mut impl rand::Rng) -> Self {
        let mut t = Self {
            current: [0; 20],
            previous: [0; 20],
        };
        rng.fill(&mut t.current[..]);
        t.previous = t.current;
        t
    }

    /// New current secret; the old current one stays valid until the next rotation.
    pub fn rotate(&mut self, rng: &mut impl rand::Rng) {
        self.previous = self.current;
        rng.fill(&mut self.current[..]);
    }

    pub fn issue(&self, ip: IpAddr) -> Vec<u8> {
        token_for(&self.current, ip).to_vec()
    }

    pub fn verify(&self, ip: IpAddr, token: &[u8]) -> bool {
        token == token_for(&self.current, ip) || token == token_for(&self.previous, ip)
    }
}

fn token_for(secret: &[u8; 20], ip: IpAddr) -> [u8; TOKEN_LEN] {
    let mut h = Sha1::new();
    h.update(secret);
    match ip {
        IpAddr::V4(v4) => h.update(v4.octets()),
        IpAddr::V6(v6) => h.update(v6.octets()),
    }
    let digest = h.finalize();
    let mut out = [0u8; TOKEN_LEN];
    out.copy_from_slice(&digest[..TOKEN_LEN]);
    out
}

/// Peers announced to us, per info-hash. Invariants: at most `max_torrents` info-hashes, at
/// most `max_peers` peers each, no peer older than `ttl` survives [`PeerStore::expire`].
#[derive(Debug)]
pub(crate) struct PeerStore {
    torrents: HashMap<[u8; 20], Torrent>,
    max_torrents: usize,
    max_peers: usize,
    ttl: Duration,
    peers: usize,
}

#[derive(Debug, Default)]
struct Torrent {
    /// Peers in announce order (oldest first), with the time of their last announce.
    peers: Vec<(SocketAddr, Instant)>,
    last_announce: Option<Instant>,
}

impl PeerStore {
    pub fn new(max_torrents: usize, max_peers: usize, ttl: Duration) -> Self {
        Self {
            torrents: HashMap::new(),
            max_torrents: max_torrents.max(1),
            max_peers: max_peers.max(1),
            ttl,
            peers: 0,
        }
    }

    pub fn torrents(&self) -> usize {
        self.torrents.len()
    }

    pub fn peers(&self) -> usize {
        self.peers
    }

    /// Records `peer` for `info_hash`, evicting the oldest peer or the stalest torrent when
    /// a bound is reached.
    pub fn announce(&mut self, info_hash: [u8; 20], peer: SocketAddr, now: Instant) {
        if !self.torrents.contains_key(&info_hash) && self.torrents.len() >= self.max_torrents {
            self.evict_stalest_torrent();
        }
        let t = self.torrents.entry(info_hash).or_default();
        t.last_announce = Some(now);
        if let Some(pos) = t.peers.iter().position(|(a, _)| *a == peer) {
            t.peers.remove(pos);
            self.peers -= 1;
        } else if t.peers.len() >= self.max_peers {
            t.peers.remove(0);
            self.peers -= 1;
        }
        t.peers.push((peer, now));
        self.peers += 1;
    }

    /// Up to `max` of the most recently announced live peers for `info_hash`.
    pub fn get(&self, info_hash: &[u8; 20], max: usize, now: Instant) -> Vec<SocketAddr> {
        self.torrents.get(info_hash).map_or_else(Vec::new, |t| {
            t.peers
                .iter()
                .rev()
                .filter(|(_, at)| now.saturating_duration_since(*at) < self.ttl)
                .take(max)
                .map(|(a, _)| *a)
                .collect()
        })
    }

    /// Drops peers older than the TTL and torrents left empty.
    pub fn expire(&mut self, now: Instant) {
        let ttl = self.ttl;
        let mut removed = 0;
        self.torrents.retain(|_, t| {
            let before = t.peers.len();
            t.peers
                .retain(|(_, at)| now.saturating_duration_since(*at) < ttl);
            removed += before - t.peers.len();
            !t.peers.is_empty()
        });
        self.peers -= removed;
    }

    fn evict_stalest_torrent(&mut self) {
        let stalest = self
            .torrents
            .iter()
            .min_by_key(|(_, t)| t.last_announce)
            .map(|(k, _)| *k);
        if let Some(t) = stalest.and_then(|k| self.torrents.remove(&k)) {
            self.peers -= t.peers.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    #[test]
    fn tokens_survive_one_rotation_not_two() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut t = Tokens::new(&mut rng);
        let ip: IpAddr = "203.0.113.5".parse().unwrap();
        let other: IpAddr = "203.0.113.6".parse().unwrap();
        let tok = t.issue(ip);
        assert_eq!(tok.len(), TOKEN_LEN);
        assert!(t.verify(ip, &tok));
        assert!(!t.verify(other, &tok));
        assert!(!t.verify(ip, b"forged!!"));
        t.rotate(&mut rng);
        assert!(t.verify(ip, &tok));
        t.rotate(&mut rng);
        assert!(!t.verify(ip, &tok));
    }

    #[test]
    fn store_is_bounded_and_expires() {
        let now = Instant::now();
        let mut s = PeerStore::new(10, 5, Duration::from_secs(60));
        for t in 0..50u8 {
            for p in 0..20u16 {
                let peer = SocketAddr::from(([10, 0, 0, t], 1000 + p));
                s.announce([t; 20], peer, now + Duration::from_secs(u64::from(t)));
            }
        }
        assert_eq!(s.torrents(), 10);
        assert_eq!(s.peers(), 50);
        // The newest torrents survive, each with its five latest peers.
        let got = s.get(&[49; 20], 100, now + Duration::from_secs(49));
        assert_eq!(got.len(), 5);
        assert_eq!(got[0].port(), 1019);
        assert!(s.get(&[0; 20], 100, now).is_empty());
        s.expire(now + Duration::from_secs(100));
        // Announced at +40 s..+49 s with a 60 s TTL: at +100 s only +40 s is gone.
        assert_eq!(s.torrents(), 9);
        assert_eq!(s.peers(), 45);
    }

    #[test]
    fn reannounce_does_not_duplicate() {
        let now = Instant::now();
        let mut s = PeerStore::new(10, 5, Duration::from_secs(60));
        let peer = SocketAddr::from(([10, 0, 0, 1], 1));
        for _ in 0..10 {
            s.announce([1; 20], peer, now);
        }
        assert_eq!(s.peers(), 1);
    }
}
