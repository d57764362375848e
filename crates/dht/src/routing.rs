//! The routing table: k-buckets split only where our own id falls, node liveness states, and
//! the ping-before-replace rule for full buckets.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::id::is_local;
use crate::NodeId;

/// A node is good if it answered us within this long (BEP 5: 15 minutes).
pub(crate) const GOOD_FOR: Duration = Duration::from_secs(15 * 60);
/// A bucket untouched for this long is refreshed (BEP 5: 15 minutes).
pub(crate) const REFRESH_AFTER: Duration = Duration::from_secs(15 * 60);
/// Failed queries after which a node is bad.
pub(crate) const FAILS_BAD: u8 = 2;
/// Most buckets: one per bit of the id.
const BUCKETS_MAX: usize = 160;

/// One table entry.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub id: NodeId,
    pub addr: SocketAddr,
    /// Last answer to one of our queries; `None` for an entry added as a hint.
    pub last_response: Option<Instant>,
    /// Last time we heard from it at all (answer or query); orders pings.
    pub last_seen: Instant,
    /// Queries that failed since the last answer.
    pub fails: u8,
}

impl Entry {
    pub fn is_bad(&self) -> bool {
        self.fails >= FAILS_BAD
    }

    pub fn is_good(&self, now: Instant) -> bool {
        self.fails == 0
            && self
                .last_response
                .is_some_and(|t| now.saturating_duration_since(t) < GOOD_FOR)
    }
}

/// What the table wants done after an insertion attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Insert {
    /// Inserted, updated, or refused: nothing more to do.
    Done,
    /// The bucket is full of live-looking nodes: ping this questionable one; if it fails,
    /// [`RoutingTable::replace`] it with the candidate.
    PingFirst(NodeId, SocketAddr),
}

#[derive(Debug)]
struct Bucket {
    entries: Vec<Entry>,
    /// Last time a node in this bucket answered or was added: drives refresh (`None`
    /// before the first clock reading).
    last_active: Option<Instant>,
}

/// The table. Invariants: every bucket holds at most `k` entries; only the last bucket (the
/// one containing our own id) is ever split; an id appears once; with `restrict_ips`, a
/// non-local IP appears once.
#[derive(Debug)]
pub(crate) struct RoutingTable {
    own: NodeId,
    k: usize,
    restrict_ips: bool,
    buckets: Vec<Bucket>,
    ips: HashMap<IpAddr, NodeId>,
}

impl RoutingTable {
    pub fn new(own: NodeId, k: usize, restrict_ips: bool) -> Self {
        Self {
            own,
            k: k.max(1),
            restrict_ips,
            buckets: vec![Bucket {
                entries: Vec::new(),
                last_active: None,
            }],
            ips: HashMap::new(),
        }
    }

    /// First clock reading: refresh timers start now.
    pub fn start_clock(&mut self, now: Instant) {
        for b in &mut self.buckets {
            b.last_active.get_or_insert(now);
        }
    }

    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    pub fn len(&self) -> usize {
        self.buckets
            .iter()
            .map(|b| b.entries.iter().filter(|e| !e.is_bad()).count())
            .sum()
    }

    pub fn good_count(&self, now: Instant) -> usize {
        self.entries().filter(|e| e.is_good(now)).count()
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.buckets.iter().flat_map(|b| b.entries.iter())
    }

    pub fn get(&self, id: &NodeId) -> Option<&Entry> {
        let b = self.bucket_index(id);
        self.buckets.get(b)?.entries.iter().find(|e| e.id == *id)
    }

    /// Whether `addr` answered one of our queries within [`GOOD_FOR`] (the table's idea of
    /// a verified address, for the anti-amplification bound).
    pub fn is_verified(&self, id: &NodeId, addr: SocketAddr, now: Instant) -> bool {
        self.get(id)
            .is_some_and(|e| e.addr == addr && e.is_good(now))
    }

    /// Whether inserting `id` could succeed without evicting a live node: used to decide
    /// whether a node that queried us is worth a verification ping.
    pub fn has_room_for(&self, id: &NodeId) -> bool {
        if *id == self.own || self.get(id).is_some() {
            return false;
        }
        let b = self.bucket_index(id);
        let Some(bucket) = self.buckets.get(b) else {
            return false;
        };
        bucket.entries.len() < self.k
            || b + 1 == self.buckets.len() && b + 1 < BUCKETS_MAX
            || bucket.entries.iter().any(Entry::is_bad)
    }

    /// A node answered a query: insert it (or refresh its entry). `verified` is false for
    /// hints (`add_node` with an id, nodes named in responses), which only fill free room and
    /// give way to any node that answered.
    pub fn insert(&mut self, id: NodeId, addr: SocketAddr, now: Instant, verified: bool) -> Insert {
        if id == self.own {
            return Insert::Done;
        }
        let b = self.bucket_index(&id);
        if let Some(e) = self.buckets[b].entries.iter_mut().find(|e| e.id == id) {
            if e.addr != addr && !e.is_bad() {
                return Insert::Done; // an id moving address: keep the one we know
            }
            e.addr = addr;
            e.last_seen = now;
            if verified {
                e.last_response = Some(now);
                e.fails = 0;
                self.buckets[b].last_active = Some(now);
            }
            return Insert::Done;
        }
        if self.restrict_ips && !is_local(addr.ip()) && self.ips.contains_key(&addr.ip()) {
            return Insert::Done;
        }
        let entry = Entry {
            id,
            addr,
            last_response: verified.then_some(now),
            last_seen: now,
            fails: 0,
        };
        self.place(b, entry, now, verified)
    }

    /// The ping-before-replace of `old` failed (after [`RoutingTable::on_failure`]): put
    /// `new` in its place.
    pub fn replace(&mut self, old: &NodeId, new: NodeId, addr: SocketAddr, now: Instant) {
        let b = self.bucket_index(old);
        if let Some(pos) = self.buckets[b].entries.iter().position(|e| e.id == *old) {
            if self.buckets[b].entries[pos].fails > 0 {
                self.remove_at(b, pos);
                let _ = self.insert(new, addr, now, true);
            }
        }
    }

    /// A query to `id` failed.
    pub fn on_failure(&mut self, id: &NodeId, addr: SocketAddr) {
        let b = self.bucket_index(id);
        if let Some(e) = self.buckets[b]
            .entries
            .iter_mut()
            .find(|e| e.id == *id && e.addr == addr)
        {
            e.fails = e.fails.saturating_add(1);
        }
    }

    /// The `count` non-bad entries closest to `target`.
    pub fn closest(&self, target: &NodeId, count: usize) -> Vec<(NodeId, SocketAddr)> {
        let mut all: Vec<([u8; 20], NodeId, SocketAddr)> = self
            .entries()
            .filter(|e| !e.is_bad())
            .map(|e| (e.id.distance(target), e.id, e.addr))
            .collect();
        if all.len() > count && count > 0 {
            all.select_nth_unstable_by(count - 1, |a, b| a.0.cmp(&b.0));
            all.truncate(count);
        }
        all.sort_unstable_by_key(|a| a.0);
        all.into_iter()
            .take(count)
            .map(|(_, id, addr)| (id, addr))
            .collect()
    }

    /// Buckets idle for [`REFRESH_AFTER`] (and, when `empty_too` is set, empty ones): a
    /// random id in each, and marks them active.
    pub fn due_refresh(
        &mut self,
        now: Instant,
        empty_too: bool,
        rng: &mut impl rand::Rng,
    ) -> Vec<NodeId> {
        let mut targets = Vec::new();
        for i in 0..self.buckets.len() {
            let bucket = &mut self.buckets[i];
            let since = now.saturating_duration_since(*bucket.last_active.get_or_insert(now));
            if since >= REFRESH_AFTER || (empty_too && bucket.entries.is_empty()) {
                bucket.last_active = Some(now);
                targets.push(self.random_id_in(i, rng));
            }
        }
        targets
    }

    /// Entries of a bucket refreshed just now that have not answered for [`GOOD_FOR`].
    pub fn questionable(&self, now: Instant) -> Vec<(NodeId, SocketAddr)> {
        self.entries()
            .filter(|e| !e.is_bad() && !e.is_good(now))
            .filter(|e| now.saturating_duration_since(e.last_seen) >= GOOD_FOR)
            .map(|e| (e.id, e.addr))
            .collect()
    }

    /// A random id that falls into bucket `i`.
    fn random_id_in(&self, i: usize, rng: &mut impl rand::Rng) -> NodeId {
        let mut id = NodeId::random(rng);
        let last = i + 1 == self.buckets.len();
        // Copy our first `i` bits, then (unless this is the last bucket) flip bit `i`.
        for bit in 0..=i.min(159) {
            let (byte, mask) = (bit / 8, 0x80u8 >> (bit % 8));
            let ours = self.own.0[byte] & mask;
            let want = if bit == i && !last { ours ^ mask } else { ours };
            if bit < i || !last {
                id.0[byte] = (id.0[byte] & !mask) | want;
            }
        }
        id
    }

    fn bucket_index(&self, id: &NodeId) -> usize {
        self.own
            .common_prefix_len(id)
            .min(self.buckets.len().saturating_sub(1))
    }

    fn place(&mut self, b: usize, entry: Entry, now: Instant, verified: bool) -> Insert {
        let k = self.k;
        if self.buckets[b].entries.len() < k {
            return self.push(b, entry, now);
        }
        if b + 1 == self.buckets.len() && b + 1 < BUCKETS_MAX {
            self.split_last(now);
            let nb = self.bucket_index(&entry.id);
            return self.place(nb, entry, now, verified);
        }
        if let Some(pos) = self.buckets[b].entries.iter().position(Entry::is_bad) {
            self.remove_at(b, pos);
            return self.push(b, entry, now);
        }
        if !verified {
            return Insert::Done;
        }
        // A node that answered beats a hint that never did.
        let hint = self.buckets[b]
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.last_response.is_none())
            .min_by_key(|(_, e)| e.last_seen)
            .map(|(i, _)| i);
        if let Some(pos) = hint {
            self.remove_at(b, pos);
            return self.push(b, entry, now);
        }
        // Ping-before-replace: the least recently seen questionable entry, if any.
        self.buckets[b]
            .entries
            .iter()
            .filter(|e| !e.is_good(now))
            .min_by_key(|e| e.last_seen)
            .map_or(Insert::Done, |e| Insert::PingFirst(e.id, e.addr))
    }

    fn push(&mut self, b: usize, entry: Entry, now: Instant) -> Insert {
        if !is_local(entry.addr.ip()) {
            self.ips.insert(entry.addr.ip(), entry.id);
        }
        self.buckets[b].entries.push(entry);
        self.buckets[b].last_active = Some(now);
        Insert::Done
    }

    fn remove_at(&mut self, b: usize, pos: usize) {
        let e = self.buckets[b].entries.swap_remove(pos);
        if self.ips.get(&e.addr.ip()) == Some(&e.id) {
            self.ips.remove(&e.addr.ip());
        }
    }

    fn split_last(&mut self, now: Instant) {
        let depth = self.buckets.len() - 1;
        let own = self.own;
        let last = &mut self.buckets[depth];
        let (stay, go): (Vec<Entry>, Vec<Entry>) = last
            .entries
            .drain(..)
            .partition(|e| own.common_prefix_len(&e.id) == depth);
        last.entries = stay;
        self.buckets.push(Bucket {
            entries: go,
            last_active: Some(now),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn addr(n: u32) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(0x0100_0000 + n), 6881))
    }

    #[test]
    fn splits_only_own_bucket_and_stays_bounded() {
        let now = Instant::now();
        let mut rng = SmallRng::seed_from_u64(1);
        let own = NodeId::random(&mut rng);
        let mut t = RoutingTable::new(own, 8, true);
        for n in 0..5000 {
            let _ = t.insert(NodeId::random(&mut rng), addr(n), now, true);
        }
        for (i, b) in t.buckets.iter().enumerate() {
            assert!(b.entries.len() <= 8);
            for e in &b.entries {
                let cpl = own.common_prefix_len(&e.id);
                if i + 1 < t.buckets.len() {
                    assert_eq!(cpl, i);
                } else {
                    assert!(cpl >= i);
                }
            }
        }
        // About log2(5000 / 8) ≈ 9 splits; the first buckets are full.
        assert!(
            t.bucket_count() >= 8 && t.bucket_count() <= 20,
            "{}",
            t.bucket_count()
        );
        assert_eq!(t.buckets[0].entries.len(), 8);
    }

    #[test]
    fn one_entry_per_global_ip() {
        let now = Instant::now();
        let mut rng = SmallRng::seed_from_u64(2);
        let mut t = RoutingTable::new(NodeId::random(&mut rng), 8, true);
        for _ in 0..10 {
            let _ = t.insert(NodeId::random(&mut rng), addr(1), now, true);
        }
        assert_eq!(t.len(), 1);
        let local: SocketAddr = "127.0.0.1:1".parse().unwrap();
        for _ in 0..10 {
            let _ = t.insert(NodeId::random(&mut rng), local, now, true);
        }
        assert_eq!(t.len(), 11);
    }

    #[test]
    fn full_bucket_pings_questionable_then_replaces_bad() {
        let now = Instant::now();
        let own = NodeId([0xff; 20]);
        let mut t = RoutingTable::new(own, 2, true);
        // Ids starting with bit 0 all land in bucket 0 once it is split off.
        let ids: Vec<NodeId> = (0..3u8).map(|i| NodeId([i; 20])).collect();
        let _ = t.insert(NodeId([0xfe; 20]), addr(100), now, true); // forces a split later
        let _ = t.insert(ids[0], addr(0), now, true);
        let _ = t.insert(ids[1], addr(1), now, true);
        let later = now + GOOD_FOR + Duration::from_secs(1);
        // Both entries of bucket 0 are questionable now: a newcomer asks for a ping.
        let r = t.insert(ids[2], addr(2), later, true);
        let Insert::PingFirst(victim, _) = r else {
            panic!("expected ping-before-replace, got {r:?}")
        };
        assert!(t.get(&ids[2]).is_none());
        t.replace(&victim, ids[2], addr(2), later); // it has not failed: kept
        assert!(t.get(&ids[2]).is_none());
        t.on_failure(&victim, t.get(&victim).unwrap().addr);
        t.replace(&victim, ids[2], addr(2), later);
        assert!(t.get(&ids[2]).is_some());
        assert!(t.get(&victim).is_none());
    }

    #[test]
    fn random_id_lands_in_its_bucket() {
        let now = Instant::now();
        let mut rng = SmallRng::seed_from_u64(3);
        let mut t = RoutingTable::new(NodeId::random(&mut rng), 8, false);
        for n in 0..2000 {
            let _ = t.insert(NodeId::random(&mut rng), addr(n), now, true);
        }
        for i in 0..t.bucket_count() {
            for _ in 0..20 {
                let id = t.random_id_in(i, &mut rng);
                assert_eq!(t.bucket_index(&id), i);
            }
        }
    }

    proptest! {
        #[test]
        fn buckets_never_exceed_k(ids in proptest::collection::vec(any::<[u8; 20]>(), 0..300), k in 1usize..10) {
            let now = Instant::now();
            let mut t = RoutingTable::new(NodeId([0x5a; 20]), k, true);
            for (n, id) in ids.iter().enumerate() {
                let _ = t.insert(NodeId(*id), addr(n as u32), now, n % 3 != 0);
            }
            for b in &t.buckets {
                prop_assert!(b.entries.len() <= k);
            }
        }
    }
}
