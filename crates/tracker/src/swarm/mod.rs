//! The server's swarm table: which peers are in which swarm, sharded by info-hash so that no
//! lock is global. Every bound is named in [`TableConfig`]; memory per peer is constant (see
//! [`PEER_BYTES_V4_MAX`]) and a peer's expiry is a number compared with `now`, never a timer.
//!
//! Invariants: a peer is keyed by its compact address (source IP of the request, announced
//! port), so a client can only ever add or refresh entries for its own IP; the announcing peer
//! is never in its own answer; a seeder is only ever sent leechers; a `stopped` peer is removed
//! at once and an absent one after `peer_ttl_s`; no announce of an already-known peer
//! allocates.

mod peers;

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, MutexGuard, PoisonError};

use foldhash::fast::FixedState;
use rand::Rng;

use crate::compact::{canonical_ip, CompactV4, CompactV6};
use crate::types::{Event, InfoHash};
use crate::udp::ScrapeStats;
use peers::{PeerList, Upsert, PEERS_PER_TORRENT_LIMIT};

/// Largest table memory one stored IPv4 peer can account for, in bytes: its 10 bytes (6-byte
/// compact address, 4-byte expiry) in lists that may have just doubled, plus a 13-byte index
/// slot in an index that may have just grown to 16/7 slots per entry: 49. At steady state it
/// is about 25 bytes; in swarms of at most 128 peers (which keep no index) 10 to 20.
pub const PEER_BYTES_V4_MAX: usize =
    2 * PeerList::<6>::ENTRY_BYTES + PeerList::<6>::INDEX_SLOT_BYTES * 16 / 7;
/// Largest table memory one stored IPv6 peer can account for, in bytes (22 bytes in the lists,
/// a 25-byte index slot: 101; about 51 at steady state).
pub const PEER_BYTES_V6_MAX: usize =
    2 * PeerList::<18>::ENTRY_BYTES + PeerList::<18>::INDEX_SLOT_BYTES * 16 / 7;
/// Bytes one swarm costs before any peer, at worst: its 145-byte map slot (key, IPv4 lists,
/// boxed IPv6 lists and index, download count, control byte) in a map that may have just grown
/// to 16/7 slots per swarm (331; about 166 at steady state).
pub const TORRENT_BYTES_MAX: usize = (size_of::<(InfoHash, Torrent)>() + 1) * 16 / 7;

/// The named bounds and timing of a [`SwarmTable`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TableConfig {
    /// Number of shards (rounded up to a power of two, at least 1): each has its own lock.
    pub shards: usize,
    /// Most swarms tracked at once; announces for new swarms beyond it are answered but not
    /// stored.
    pub torrents_max: usize,
    /// Most peers stored per swarm (both families together; at most 2^31).
    pub peers_per_torrent_max: usize,
    /// Most peers stored in the whole table.
    pub peers_max: usize,
    /// Seconds a peer stays after its last announce: the announce interval plus a grace.
    pub peer_ttl_s: u32,
}

impl TableConfig {
    /// The peer bound that keeps the peers' memory under `bytes`, counting every peer at the
    /// IPv6 worst case and leaving room for `torrents_max` empty swarms.
    #[must_use]
    pub fn peers_max_for_memory(bytes: usize, torrents_max: usize) -> usize {
        bytes.saturating_sub(torrents_max.saturating_mul(TORRENT_BYTES_MAX)) / PEER_BYTES_V6_MAX
    }
}

/// One announce, as the table sees it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AnnounceParams {
    /// The swarm.
    pub info_hash: InfoHash,
    /// The peer: source IP of the request and the port it announced.
    pub addr: SocketAddr,
    /// Whether the peer has everything (`left == 0`).
    pub seeder: bool,
    /// State change reported.
    pub event: Event,
    /// Peers to return at most (already bounded by the caller).
    pub numwant: usize,
}

/// What the table did with an announce.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Stored {
    /// A new peer was stored.
    Added,
    /// A known peer was refreshed.
    #[default]
    Updated,
    /// The peer was removed (or was not there) after `stopped`.
    Removed,
    /// The peer was not stored: its swarm, the table, or the table's swarm count is full.
    Full,
}

/// The table's answer to one announce.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AnnounceOutcome {
    /// Seeders in the swarm (both families), after this announce.
    pub seeders: u32,
    /// Leechers in the swarm (both families), after this announce.
    pub leechers: u32,
    /// Peers appended to the output.
    pub peers_written: usize,
    /// What happened to the announcing peer's entry.
    pub stored: Stored,
}

/// Totals over the whole table, for metrics.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TableStats {
    /// Swarms tracked.
    pub torrents: usize,
    /// Seeders stored.
    pub seeders: usize,
    /// Leechers stored.
    pub leechers: usize,
    /// Bytes the peer lists and indexes have allocated.
    pub peer_bytes: usize,
}

/// The sharded swarm table. Shared by reference between worker threads; each call locks one
/// shard (one per info-hash involved) for the time of the call.
#[derive(Debug)]
pub struct SwarmTable {
    shards: Box<[Shard]>,
    config: TableConfig,
    shard_peers_max: usize,
    shard_torrents_max: usize,
    hash_seed: u64,
}

/// A shard on its own cache lines, so that two threads locking neighbouring shards do not
/// slow each other down.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard(Mutex<ShardState>);

#[derive(Debug, Default)]
struct ShardState {
    torrents: HashMap<InfoHash, Torrent, FixedState>,
    peers: usize,
}

#[derive(Debug, Default)]
struct Torrent {
    v4: PeerList<6>,
    v6: V6,
    completed: u32,
}

impl SwarmTable {
    /// An empty table; `rng` seeds the hash functions, so lookups cannot be steered into
    /// collisions by someone who does not know the seed.
    pub fn new(config: TableConfig, rng: &mut impl Rng) -> Self {
        let count = config.shards.max(1).next_power_of_two();
        let hash_seed = rng.gen();
        let shards = (0..count)
            .map(|_| {
                let torrents = HashMap::with_hasher(FixedState::with_seed(hash_seed));
                Shard(Mutex::new(ShardState { torrents, peers: 0 }))
            })
            .collect();
        Self {
            shards,
            config,
            shard_peers_max: config.peers_max.div_ceil(count),
            shard_torrents_max: config.torrents_max.div_ceil(count),
            hash_seed,
        }
    }

    /// The bounds this table was made with.
    #[must_use]
    pub fn config(&self) -> &TableConfig {
        &self.config
    }

    /// Records an announce at `now_s` and appends up to `p.numwant` other peers of the
    /// announcer's address family to `peers_out`, in compact form (6 or 18 bytes each).
    pub fn announce(
        &self,
        p: &AnnounceParams,
        now_s: u32,
        rng: &mut impl Rng,
        peers_out: &mut Vec<u8>,
    ) -> AnnounceOutcome {
        let mut guard = self.lock(&p.info_hash);
        let shard = &mut *guard;
        let table_full = shard.torrents.len() >= self.shard_torrents_max;
        let torrent = match shard.torrents.entry(p.info_hash) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(v) => {
                if p.event == Event::Stopped || table_full {
                    let stored = if p.event == Event::Stopped {
                        Stored::Removed
                    } else {
                        Stored::Full
                    };
                    let (seeders, leechers, peers_written) = (0, 0, 0);
                    return AnnounceOutcome {
                        seeders,
                        leechers,
                        peers_written,
                        stored,
                    };
                }
                v.insert(Torrent::default())
            }
        };
        let per_torrent_max = self
            .config
            .peers_per_torrent_max
            .min(PEERS_PER_TORRENT_LIMIT);
        let room = shard.peers < self.shard_peers_max
            && torrent.v4.len() + torrent.v6.len() < per_torrent_max;
        let expires_s = now_s.saturating_add(self.config.peer_ttl_s);
        let ip = canonical_ip(p.addr.ip());
        let mut change = Change::default();
        let peers_written = match ip {
            IpAddr::V4(v4) => {
                let addr = CompactV4::new(v4, p.addr.port()).0;
                let ctx = Ctx {
                    p,
                    expires_s,
                    room,
                    seed: self.hash_seed,
                };
                step(&mut torrent.v4, addr, &ctx, &mut change, rng, peers_out)
            }
            IpAddr::V6(v6) => {
                let addr = CompactV6::new(v6, p.addr.port()).0;
                let ctx = Ctx {
                    p,
                    expires_s,
                    room,
                    seed: self.hash_seed,
                };
                let written = step(torrent.v6.list(), addr, &ctx, &mut change, rng, peers_out);
                torrent.v6.release_if_empty();
                written
            }
        };
        if change.completed {
            torrent.completed = torrent.completed.saturating_add(1);
        }
        let seeders = torrent.v4.seeders() + torrent.v6.seeders();
        let leechers = torrent.v4.leechers() + torrent.v6.leechers();
        let now_empty = seeders + leechers == 0;
        shard.peers = shard.peers.saturating_add_signed(change.peers_delta);
        if now_empty && torrent.completed == 0 {
            shard.torrents.remove(&p.info_hash);
        }
        AnnounceOutcome {
            seeders: saturate(seeders),
            leechers: saturate(leechers),
            peers_written,
            stored: change.stored,
        }
    }

    /// The counts of one swarm (zero for an unknown one).
    #[must_use]
    pub fn scrape(&self, info_hash: &InfoHash) -> ScrapeStats {
        let shard = self.lock(info_hash);
        shard
            .torrents
            .get(info_hash)
            .map_or_else(ScrapeStats::default, |t| ScrapeStats {
                seeders: saturate(t.v4.seeders() + t.v6.seeders()),
                completed: t.completed,
                leechers: saturate(t.v4.leechers() + t.v6.leechers()),
            })
    }

    /// Drops every peer whose time ran out by `now_s`, and every swarm left with no peer.
    /// Locks one shard at a time. Returns the number of peers dropped.
    #[must_use = "the count is for logs and metrics"]
    pub fn expire(&self, now_s: u32) -> usize {
        let mut dropped = 0;
        for shard in &self.shards {
            let mut guard = lock(shard);
            let shard = &mut *guard;
            let mut shard_dropped = 0;
            shard.torrents.retain(|_, t| {
                let (s4, l4) = t.v4.expire(now_s, self.hash_seed);
                let (s6, l6) = t.v6.expire(now_s, self.hash_seed);
                shard_dropped += s4 + l4 + s6 + l6;
                t.v4.len() + t.v6.len() > 0
            });
            shard.peers = shard.peers.saturating_sub(shard_dropped);
            dropped += shard_dropped;
        }
        dropped
    }

    /// Totals over the table; locks one shard at a time, so the figures are not a snapshot.
    #[must_use]
    pub fn stats(&self) -> TableStats {
        let mut stats = TableStats::default();
        for shard in &self.shards {
            let shard = lock(shard);
            stats.torrents += shard.torrents.len();
            for t in shard.torrents.values() {
                stats.seeders += t.v4.seeders() + t.v6.seeders();
                stats.leechers += t.v4.leechers() + t.v6.leechers();
                stats.peer_bytes += t.v4.allocated_bytes() + t.v6.allocated_bytes();
            }
        }
        stats
    }

    fn lock(&self, info_hash: &InfoHash) -> MutexGuard<'_, ShardState> {
        let [a, b, ..] = *info_hash.as_bytes();
        let i = usize::from(u16::from_le_bytes([a, b])) & (self.shards.len() - 1);
        // `i` is masked to the power-of-two shard count, so the index is in bounds.
        lock(&self.shards[i])
    }
}

/// A swarm's IPv6 peers, allocated only once it has some: most swarms have none, and an
/// empty box costs 8 bytes where an empty list costs 112.
#[derive(Debug, Default)]
struct V6(Option<Box<PeerList<18>>>);

impl V6 {
    fn seeders(&self) -> usize {
        self.0.as_ref().map_or(0, |l| l.seeders())
    }

    fn leechers(&self) -> usize {
        self.0.as_ref().map_or(0, |l| l.leechers())
    }

    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |l| l.len())
    }

    fn allocated_bytes(&self) -> usize {
        self.0
            .as_ref()
            .map_or(0, |l| size_of::<PeerList<18>>() + l.allocated_bytes())
    }

    fn list(&mut self) -> &mut PeerList<18> {
        self.0.get_or_insert_with(Box::default)
    }

    fn release_if_empty(&mut self) {
        if self.len() == 0 {
            self.0 = None;
        }
    }

    fn expire(&mut self, now_s: u32, seed: u64) -> (usize, usize) {
        let dropped = self.0.as_mut().map_or((0, 0), |l| l.expire(now_s, seed));
        self.release_if_empty();
        dropped
    }
}

/// What one announce changed, for the shard's counters.
#[derive(Default)]
struct Change {
    peers_delta: isize,
    completed: bool,
    stored: Stored,
}

struct Ctx<'a> {
    p: &'a AnnounceParams,
    expires_s: u32,
    room: bool,
    seed: u64,
}

/// The family-specific part of an announce: update the list, then pick peers from it.
fn step<const N: usize>(
    list: &mut PeerList<N>,
    addr: [u8; N],
    ctx: &Ctx<'_>,
    change: &mut Change,
    rng: &mut impl Rng,
    out: &mut Vec<u8>,
) -> usize {
    let p = ctx.p;
    if p.event == Event::Stopped {
        if list.remove(&addr).is_some() {
            change.peers_delta = -1;
        }
        change.stored = Stored::Removed;
        return 0;
    }
    let (upsert, me) = list.upsert(addr, p.seeder, ctx.expires_s, ctx.room, ctx.seed);
    change.stored = match upsert {
        Upsert::Added => {
            change.peers_delta = 1;
            Stored::Added
        }
        Upsert::Updated { .. } => Stored::Updated,
        Upsert::Full => Stored::Full,
    };
    // A download counts once: on `completed` from a peer not already known as a seeder.
    let was_seeder = matches!(upsert, Upsert::Updated { was_seeder: true });
    change.completed = p.event == Event::Completed && !was_seeder;
    list.select(me, p.seeder, p.numwant, rng, out)
}

fn lock(shard: &Shard) -> MutexGuard<'_, ShardState> {
    // A panic while a shard was locked cannot leave it inconsistent in a way that matters
    // more than losing the whole table would, so a poisoned lock is used as it is.
    shard.0.lock().unwrap_or_else(PoisonError::into_inner)
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests;
