//! Stateless UDP connection ids (BEP 15): a keyed hash of the client's IP address and a time
//! window, so a server hands out and checks ids without remembering anything — a flood of
//! connects from spoofed sources costs it no memory.
//!
//! An id issued in window `w` (windows are [`CONNECTION_ID_WINDOW_S`] long) is accepted during
//! windows `w`, `w + 1` and `w + 2`: at least two minutes, as BEP 15 asks of servers, and at most
//! three. The key is drawn from the caller's RNG when the issuer is made, so ids do not survive
//! a restart and cannot be predicted without it.

use std::hash::Hasher;
use std::net::IpAddr;

use rand::Rng;
use siphasher::sip::SipHasher13;

use crate::compact::canonical_ip;
use crate::udp::ConnectionId;

/// Length of one connection-id time window, in seconds.
pub const CONNECTION_ID_WINDOW_S: u32 = 60;
/// How many windows after the one it was issued in an id stays valid.
pub const CONNECTION_ID_WINDOWS_AFTER: u32 = 2;

/// Issues and checks connection ids with one secret key.
#[derive(Clone)]
pub struct ConnectionIdIssuer {
    k0: u64,
    k1: u64,
}

impl std::fmt::Debug for ConnectionIdIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectionIdIssuer { .. }")
    }
}

impl ConnectionIdIssuer {
    /// An issuer with a fresh random key.
    pub fn new(rng: &mut impl Rng) -> Self {
        Self {
            k0: rng.gen(),
            k1: rng.gen(),
        }
    }

    /// The id for a client at `ip` at time `now_s` (seconds on the server's clock).
    #[must_use]
    pub fn issue(&self, ip: IpAddr, now_s: u32) -> ConnectionId {
        self.for_window(ip, now_s / CONNECTION_ID_WINDOW_S)
    }

    /// Whether `id` was issued to `ip` no more than the allowed windows before `now_s`.
    #[must_use]
    pub fn is_valid(&self, id: ConnectionId, ip: IpAddr, now_s: u32) -> bool {
        let window = now_s / CONNECTION_ID_WINDOW_S;
        (0..=CONNECTION_ID_WINDOWS_AFTER)
            .filter_map(|back| window.checked_sub(back))
            .any(|w| self.for_window(ip, w) == id)
    }

    fn for_window(&self, ip: IpAddr, window: u32) -> ConnectionId {
        let mut h = SipHasher13::new_with_keys(self.k0, self.k1);
        match canonical_ip(ip) {
            IpAddr::V4(v4) => {
                h.write_u8(4);
                h.write(&v4.octets());
            }
            IpAddr::V6(v6) => {
                h.write_u8(6);
                h.write(&v6.octets());
            }
        }
        h.write_u32(window);
        ConnectionId(h.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    fn issuer(seed: u64) -> ConnectionIdIssuer {
        ConnectionIdIssuer::new(&mut SmallRng::seed_from_u64(seed))
    }

    #[test]
    fn valid_for_at_least_two_minutes_and_at_most_three() {
        let ids = issuer(1);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        for issued_at in [0, 1, 59, 60, 1000, 86_399] {
            let id = ids.issue(ip, issued_at);
            for age in [0, 1, 60, 119, 120] {
                assert!(
                    ids.is_valid(id, ip, issued_at + age),
                    "issued {issued_at} age {age}"
                );
            }
            assert!(
                !ids.is_valid(id, ip, issued_at + 180),
                "issued {issued_at} age 180"
            );
        }
    }

    #[test]
    fn bound_to_address_and_key() {
        let ids = issuer(2);
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        let b: IpAddr = "192.0.2.8".parse().unwrap();
        let id = ids.issue(a, 500);
        assert!(!ids.is_valid(id, b, 500));
        assert!(!issuer(3).is_valid(id, a, 500));
        assert!(!ids.is_valid(ConnectionId(id.0 ^ 1), a, 500));
    }

    #[test]
    fn mapped_ipv4_is_the_same_client() {
        let ids = issuer(4);
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert!(ids.is_valid(ids.issue(v4, 10), mapped, 10));
    }
}
