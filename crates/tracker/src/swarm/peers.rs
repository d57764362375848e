//! One swarm's peers of one address family: two dense groups (seeders, leechers), each a list
//! of compact addresses beside a list of expiry times, plus an address index once the swarm is
//! big enough to need one. Addresses are stored exactly as they go on the wire, side by side,
//! so the peers of an answer are one or a few `memcpy`s of stored bytes; the index makes
//! finding the announcing peer O(1) in big swarms, and small swarms (most of them) pay
//! nothing for it.

use std::collections::HashMap;

use foldhash::fast::FixedState;
use rand::Rng;

/// Above this many peers a swarm keeps an address index; at or below it, a linear scan of
/// the dense lists is as fast (the scan reads the same cache lines the answer is then copied
/// from, where an index lookup costs two cache misses of its own) and costs no memory.
#[cfg(not(test))]
pub(crate) const INDEX_THRESHOLD: usize = 128;
/// Tests use a small threshold so that their small swarms build, use and drop the index often.
#[cfg(test)]
pub(crate) const INDEX_THRESHOLD: usize = 8;

/// Most peers one swarm can hold, whatever the configuration says (positions are 31 bits).
pub(crate) const PEERS_PER_TORRENT_LIMIT: usize = 1 << 31;

/// Where a peer lives: which group (the top bit: set for seeders), and its position there
/// (the other 31 bits). One `u32`, so an index slot of an IPv4 peer is 12 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Slot(u32);

impl Slot {
    fn new(seeder: bool, pos: usize) -> Self {
        Self(u32::from(seeder) << 31 | (pos as u32 & !(1 << 31)))
    }

    pub(crate) fn seeder(self) -> bool {
        self.0 >> 31 == 1
    }

    pub(crate) fn pos(self) -> usize {
        (self.0 & !(1 << 31)) as usize
    }
}

/// What an upsert did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Upsert {
    /// A new peer was stored.
    Added,
    /// A known peer was refreshed; it was a seeder before if `was_seeder`.
    Updated { was_seeder: bool },
    /// A new peer was not stored: the caller said there is no room.
    Full,
}

/// Peers of one role: compact addresses (`N` bytes each) and, at the same positions, the
/// second at which each expires.
#[derive(Debug, Default)]
struct Group<const N: usize> {
    addrs: Vec<[u8; N]>,
    expires_s: Vec<u32>,
}

impl<const N: usize> Group<N> {
    fn push(&mut self, addr: [u8; N], expires_s: u32) -> usize {
        self.addrs.push(addr);
        self.expires_s.push(expires_s);
        self.addrs.len() - 1
    }

    /// Removes position `pos`, moving the last peer into it; returns the moved address.
    fn swap_remove(&mut self, pos: usize) -> Option<[u8; N]> {
        if pos >= self.addrs.len() {
            return None;
        }
        self.addrs.swap_remove(pos);
        self.expires_s.swap_remove(pos);
        self.addrs.get(pos).copied()
    }

    fn expire(&mut self, now_s: u32) -> usize {
        let before = self.addrs.len();
        let mut i = 0;
        while let Some(&t) = self.expires_s.get(i) {
            if t > now_s {
                i += 1;
            } else {
                self.swap_remove(i);
            }
        }
        let dropped = before - self.addrs.len();
        if dropped > 0 {
            shrink(&mut self.addrs);
            shrink(&mut self.expires_s);
        }
        dropped
    }

    fn capacity_bytes(&self) -> usize {
        self.addrs.capacity() * N + self.expires_s.capacity() * size_of::<u32>()
    }
}

/// The peers of one family in one swarm; `N` is the compact address length (6 or 18).
#[derive(Debug)]
pub(crate) struct PeerList<const N: usize> {
    seeders: Group<N>,
    leechers: Group<N>,
    /// Boxed on purpose (the extra allocation is one per big swarm): most swarms are small
    /// and keep no index, and a `None` box costs 8 bytes in every swarm where an empty map
    /// costs 40.
    #[allow(clippy::box_collection)]
    index: Option<Box<HashMap<[u8; N], Slot, FixedState>>>,
}

impl<const N: usize> Default for PeerList<N> {
    fn default() -> Self {
        Self {
            seeders: Group::default(),
            leechers: Group::default(),
            index: None,
        }
    }
}

impl<const N: usize> PeerList<N> {
    /// Bytes one stored peer takes in its group.
    pub(crate) const ENTRY_BYTES: usize = N + size_of::<u32>();
    /// Bytes one index slot takes (key, slot, and the map's control byte).
    pub(crate) const INDEX_SLOT_BYTES: usize = size_of::<([u8; N], Slot)>() + 1;

    pub(crate) fn seeders(&self) -> usize {
        self.seeders.addrs.len()
    }

    pub(crate) fn leechers(&self) -> usize {
        self.leechers.addrs.len()
    }

    pub(crate) fn len(&self) -> usize {
        self.seeders() + self.leechers()
    }

    /// Bytes this list has allocated (capacity, not length), for memory accounting.
    pub(crate) fn allocated_bytes(&self) -> usize {
        let index = self
            .index
            .as_ref()
            .map_or(0, |m| m.capacity() * Self::INDEX_SLOT_BYTES);
        self.seeders.capacity_bytes() + self.leechers.capacity_bytes() + index
    }

    pub(crate) fn find(&self, addr: &[u8; N]) -> Option<Slot> {
        if let Some(index) = &self.index {
            return index.get(addr).copied();
        }
        let pos = |g: &Group<N>| g.addrs.iter().position(|a| a == addr);
        if let Some(p) = pos(&self.leechers) {
            return Some(Slot::new(false, p));
        }
        pos(&self.seeders).map(|p| Slot::new(true, p))
    }

    /// Stores or refreshes `addr`. A new peer is stored only if `room`.
    pub(crate) fn upsert(
        &mut self,
        addr: [u8; N],
        seeder: bool,
        expires_s: u32,
        room: bool,
        seed: u64,
    ) -> (Upsert, Option<Slot>) {
        match self.find(&addr) {
            Some(slot) if slot.seeder() == seeder => {
                if let Some(t) = self.group_mut(seeder).expires_s.get_mut(slot.pos()) {
                    *t = expires_s;
                }
                (Upsert::Updated { was_seeder: seeder }, Some(slot))
            }
            Some(slot) => {
                self.remove_slot(addr, slot);
                let slot = self.push(addr, expires_s, seeder, seed);
                (
                    Upsert::Updated {
                        was_seeder: !seeder,
                    },
                    Some(slot),
                )
            }
            None if room => (
                Upsert::Added,
                Some(self.push(addr, expires_s, seeder, seed)),
            ),
            None => (Upsert::Full, None),
        }
    }

    /// Removes `addr`; returns whether it was a seeder, or `None` if it was not stored.
    pub(crate) fn remove(&mut self, addr: &[u8; N]) -> Option<bool> {
        let slot = self.find(addr)?;
        self.remove_slot(*addr, slot);
        Some(slot.seeder())
    }

    /// Appends up to `want` peers' compact bytes to `out`, never the one at `me`; a seeder
    /// (`for_seeder`) gets leechers only. The peers are a window of the stored order (seeders
    /// then leechers) starting at a random place, copied as whole runs of stored bytes: no
    /// allocation, no shuffling, no per-peer loop.
    pub(crate) fn select(
        &self,
        me: Option<Slot>,
        for_seeder: bool,
        want: usize,
        rng: &mut impl Rng,
        out: &mut Vec<u8>,
    ) -> usize {
        let first: &[[u8; N]] = if for_seeder { &[] } else { &self.seeders.addrs };
        let second: &[[u8; N]] = &self.leechers.addrs;
        let me_pos = me.filter(|s| !(for_seeder && s.seeder())).map(|s| {
            if s.seeder() {
                s.pos()
            } else {
                first.len() + s.pos()
            }
        });
        let candidates = first.len() + second.len() - usize::from(me_pos.is_some());
        let take = want.min(candidates);
        if take == 0 {
            return 0;
        }
        // The window in "candidate" positions (the order with `me` left out), then split where
        // it wraps around, where it steps over `me`, and where seeders end and leechers begin.
        let start = if take == candidates {
            0
        } else {
            rng.gen_range(0..candidates)
        };
        let end = start + take;
        for (a, b) in [
            (start, end.min(candidates)),
            (0, end.saturating_sub(candidates)),
        ] {
            for (ra, rb) in skip_me(a, b, me_pos) {
                copy_run(first, second, ra, rb, out);
            }
        }
        take
    }

    /// Drops peers whose expiry is at or before `now_s`; returns (seeders, leechers) dropped.
    pub(crate) fn expire(&mut self, now_s: u32, seed: u64) -> (usize, usize) {
        let dropped = (self.seeders.expire(now_s), self.leechers.expire(now_s));
        if dropped != (0, 0) {
            self.rebuild_index(seed);
        }
        dropped
    }

    fn group_mut(&mut self, seeder: bool) -> &mut Group<N> {
        if seeder {
            &mut self.seeders
        } else {
            &mut self.leechers
        }
    }

    fn push(&mut self, addr: [u8; N], expires_s: u32, seeder: bool, seed: u64) -> Slot {
        let slot = Slot::new(seeder, self.group_mut(seeder).push(addr, expires_s));
        if let Some(index) = &mut self.index {
            index.insert(addr, slot);
        } else if self.len() > INDEX_THRESHOLD {
            self.rebuild_index(seed);
        }
        slot
    }

    fn remove_slot(&mut self, addr: [u8; N], slot: Slot) {
        let moved = self.group_mut(slot.seeder()).swap_remove(slot.pos());
        if let Some(index) = &mut self.index {
            index.remove(&addr);
            if let Some(moved) = moved {
                index.insert(moved, slot);
            }
        }
    }

    fn rebuild_index(&mut self, seed: u64) {
        if self.len() <= INDEX_THRESHOLD / 2 {
            self.index = None;
            return;
        }
        let mut index = HashMap::with_capacity_and_hasher(self.len(), FixedState::with_seed(seed));
        for (seeder, group) in [(true, &self.seeders), (false, &self.leechers)] {
            for (pos, addr) in group.addrs.iter().enumerate() {
                index.insert(*addr, Slot::new(seeder, pos));
            }
        }
        self.index = Some(Box::new(index));
    }
}

/// The stored positions of candidate positions `a..b`: the same, shifted by one past `me`.
fn skip_me(a: usize, b: usize, me: Option<usize>) -> [(usize, usize); 2] {
    match me {
        _ if a >= b => [(0, 0); 2],
        Some(m) if a >= m => [(a + 1, b + 1), (0, 0)],
        Some(m) if b > m => [(a, m), (m + 1, b + 1)],
        _ => [(a, b), (0, 0)],
    }
}

/// Appends stored positions `a..b` of `first` followed by `second` to `out`.
fn copy_run<const N: usize>(
    first: &[[u8; N]],
    second: &[[u8; N]],
    a: usize,
    b: usize,
    out: &mut Vec<u8>,
) {
    if a >= b {
        return;
    }
    let f = first.len();
    if a < f {
        out.extend_from_slice(first.get(a..b.min(f)).unwrap_or_default().as_flattened());
    }
    if b > f {
        out.extend_from_slice(
            second
                .get(a.max(f) - f..b - f)
                .unwrap_or_default()
                .as_flattened(),
        );
    }
}

/// Gives memory back when a list is mostly empty.
fn shrink<T>(list: &mut Vec<T>) {
    if list.capacity() > 8 && list.len() < list.capacity() / 4 {
        list.shrink_to(list.len() * 2);
    }
}
