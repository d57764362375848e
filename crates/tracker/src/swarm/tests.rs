//! Swarm table tests: the BEP rules one at a time, then a model-based property test that
//! checks every invariant after every step of random announce sequences.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};

use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::*;
use crate::compact::CompactPeers;

const HASH: InfoHash = InfoHash::from_bytes([0xab; 20]);

fn config() -> TableConfig {
    TableConfig {
        shards: 4,
        torrents_max: 100,
        peers_per_torrent_max: 1000,
        peers_max: 10_000,
        peer_ttl_s: 100,
    }
}

fn table(config: TableConfig) -> SwarmTable {
    SwarmTable::new(config, &mut SmallRng::seed_from_u64(7))
}

fn v4(n: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(10, 0, (n >> 8) as u8, n as u8), 6881))
}

fn announce(
    t: &SwarmTable,
    addr: SocketAddr,
    seeder: bool,
    event: Event,
    now: u32,
) -> (AnnounceOutcome, Vec<SocketAddr>) {
    let p = AnnounceParams {
        info_hash: HASH,
        addr,
        seeder,
        event,
        numwant: 50,
    };
    let mut out = Vec::new();
    let outcome = t.announce(
        &p,
        now,
        &mut SmallRng::seed_from_u64(u64::from(now)),
        &mut out,
    );
    let peers = CompactPeers::new(&out, addr.is_ipv6()).iter().collect();
    (outcome, peers)
}

#[test]
fn peers_learn_each_other_but_never_themselves() {
    let t = table(config());
    let (o, peers) = announce(&t, v4(1), false, Event::Started, 0);
    assert_eq!((o.seeders, o.leechers, o.stored), (0, 1, Stored::Added));
    assert!(peers.is_empty());
    let (o, peers) = announce(&t, v4(2), true, Event::Started, 1);
    assert_eq!((o.seeders, o.leechers), (1, 1));
    assert_eq!(peers, vec![v4(1)]);
    let (o, peers) = announce(&t, v4(1), false, Event::None, 2);
    assert_eq!(o.stored, Stored::Updated);
    assert_eq!(peers, vec![v4(2)]);
}

#[test]
fn seeders_get_only_leechers() {
    let t = table(config());
    for n in 1..=5 {
        announce(&t, v4(n), true, Event::Started, 0);
    }
    announce(&t, v4(9), false, Event::Started, 0);
    let (o, peers) = announce(&t, v4(1), true, Event::None, 1);
    assert_eq!((o.seeders, o.leechers), (5, 1));
    assert_eq!(peers, vec![v4(9)]);
    let (_, peers) = announce(&t, v4(9), false, Event::None, 1);
    assert_eq!(peers.len(), 5);
}

#[test]
fn stopped_removes_and_completed_counts_once() {
    let t = table(config());
    announce(&t, v4(1), false, Event::Started, 0);
    announce(&t, v4(2), false, Event::Started, 0);
    announce(&t, v4(1), true, Event::Completed, 1);
    announce(&t, v4(1), true, Event::Completed, 2); // a repeat must not count again
    assert_eq!(
        t.scrape(&HASH),
        ScrapeStats {
            seeders: 1,
            completed: 1,
            leechers: 1
        }
    );
    let (o, peers) = announce(&t, v4(2), false, Event::Stopped, 3);
    assert_eq!((o.stored, o.seeders, o.leechers), (Stored::Removed, 1, 0));
    assert!(peers.is_empty());
    assert_eq!(
        t.scrape(&HASH),
        ScrapeStats {
            seeders: 1,
            completed: 1,
            leechers: 0
        }
    );
}

#[test]
fn stopped_for_unknown_swarm_creates_nothing() {
    let t = table(config());
    let (o, _) = announce(&t, v4(1), false, Event::Stopped, 0);
    assert_eq!(o.stored, Stored::Removed);
    assert_eq!(t.stats().torrents, 0);
}

#[test]
fn peers_expire_after_ttl() {
    let t = table(config());
    announce(&t, v4(1), false, Event::Started, 0);
    announce(&t, v4(2), false, Event::Started, 50);
    assert_eq!(t.expire(99), 0);
    assert_eq!(t.expire(100), 1);
    assert_eq!(t.scrape(&HASH).leechers, 1);
    assert_eq!(t.expire(150), 1);
    assert_eq!(t.stats(), TableStats::default());
}

#[test]
fn families_are_kept_apart() {
    let t = table(config());
    let six: SocketAddr = "[2001:db8::1]:6881".parse().unwrap();
    let mapped: SocketAddr = "[::ffff:10.0.0.1]:6881".parse().unwrap();
    announce(&t, v4(1), true, Event::Started, 0);
    let (o, peers) = announce(&t, six, false, Event::Started, 0);
    assert_eq!((o.seeders, o.leechers), (1, 1));
    assert!(peers.is_empty(), "an IPv6 client gets IPv6 peers only");
    // The mapped form of 10.0.0.1 is the same IPv4 peer, not a new one.
    let (o, _) = announce(&t, mapped, true, Event::None, 1);
    assert_eq!((o.stored, o.seeders), (Stored::Updated, 1));
}

#[test]
fn bounds_refuse_storage_but_still_answer() {
    let mut c = config();
    c.peers_per_torrent_max = 3;
    let t = table(c);
    for n in 1..=3 {
        assert_eq!(
            announce(&t, v4(n), false, Event::Started, 0).0.stored,
            Stored::Added
        );
    }
    let (o, peers) = announce(&t, v4(4), false, Event::Started, 0);
    assert_eq!((o.stored, o.leechers, peers.len()), (Stored::Full, 3, 3));

    let mut c = config();
    c.shards = 1;
    c.torrents_max = 1;
    let t = table(c);
    announce(&t, v4(1), false, Event::Started, 0);
    let p = AnnounceParams {
        info_hash: InfoHash::from_bytes([1; 20]),
        addr: v4(1),
        seeder: false,
        event: Event::Started,
        numwant: 10,
    };
    let o = t.announce(&p, 0, &mut SmallRng::seed_from_u64(1), &mut Vec::new());
    assert_eq!(o.stored, Stored::Full);
    assert_eq!(t.stats().torrents, 1);
}

#[test]
fn memory_per_peer_is_what_the_docs_say() {
    // ARCHITECTURE.md states these figures; this test keeps it honest.
    assert_eq!(PEER_BYTES_V4_MAX, 49);
    assert_eq!(PEER_BYTES_V6_MAX, 101);
    let t = table(config());
    for n in 0..1000 {
        announce(&t, v4(n), n % 2 == 0, Event::Started, 0);
    }
    let stats = t.stats();
    assert_eq!(stats.seeders + stats.leechers, 1000);
    assert!(
        stats.peer_bytes <= 1000 * PEER_BYTES_V4_MAX,
        "{} bytes",
        stats.peer_bytes
    );
}

/// One step of the model-based test: peer `peer` announces with `seeder` and `event`.
#[derive(Clone, Debug)]
struct Step {
    peer: u16,
    seeder: bool,
    event: Event,
    numwant: usize,
    advance_s: u32,
}

fn step_strategy() -> impl Strategy<Value = Step> {
    let event = prop_oneof![
        4 => Just(Event::None),
        2 => Just(Event::Started),
        1 => Just(Event::Completed),
        1 => Just(Event::Stopped),
    ];
    (0u16..80, any::<bool>(), event, 0usize..60, 0u32..30).prop_map(
        |(peer, seeder, event, numwant, advance_s)| Step {
            peer,
            seeder,
            event,
            numwant,
            advance_s,
        },
    )
}

proptest! {
    #[test]
    fn table_matches_a_model(steps in prop::collection::vec(step_strategy(), 1..300)) {
        let mut c = config();
        c.peers_per_torrent_max = 60;
        let t = table(c);
        // The model: address -> (seeder, expires_s).
        let mut model: HashMap<SocketAddr, (bool, u32)> = HashMap::new();
        let mut now = 0;
        let mut rng = SmallRng::seed_from_u64(3);
        for s in steps {
            now += s.advance_s;
            model.retain(|_, (_, exp)| *exp > now);
            let _ = t.expire(now);
            let addr = v4(s.peer);
            let p = AnnounceParams { info_hash: HASH, addr, seeder: s.seeder, event: s.event, numwant: s.numwant };
            let mut out = Vec::new();
            let o = t.announce(&p, now, &mut rng, &mut out);
            if s.event == Event::Stopped {
                model.remove(&addr);
            } else if model.contains_key(&addr) || model.len() < 60 {
                model.insert(addr, (s.seeder, now + 100));
            } else {
                prop_assert_eq!(o.stored, Stored::Full);
            }
            let seeders = model.values().filter(|(s, _)| *s).count();
            prop_assert_eq!(o.seeders as usize, seeders);
            prop_assert_eq!(o.leechers as usize, model.len() - seeders);
            let peers: Vec<_> = CompactPeers::new(&out, false).iter().collect();
            let mut seen = std::collections::HashSet::new();
            for peer in &peers {
                prop_assert!(*peer != addr, "announcer got itself");
                prop_assert!(seen.insert(*peer), "duplicate peer");
                let (peer_seeder, _) = model.get(peer).copied().ok_or_else(|| TestCaseError::fail("unknown peer"))?;
                prop_assert!(!(s.seeder && peer_seeder), "seeder got a seeder");
            }
            let available = model.iter().filter(|(a, (sd, _))| **a != addr && !(s.seeder && *sd)).count();
            let expected = if s.event == Event::Stopped { 0 } else { s.numwant.min(available) };
            prop_assert_eq!(peers.len(), expected);
        }
    }
}

#[test]
fn a_swarm_costs_little_before_its_peers() {
    // ARCHITECTURE.md quotes these figures (64-bit targets): a 145-byte map slot per swarm,
    // 331 bytes at worst just after the map grew. An empty IPv6 list or index must not cost
    // a full one (they took the slot to 305 bytes before they were boxed).
    assert_eq!(size_of::<(InfoHash, Torrent)>(), 144);
    assert_eq!(TORRENT_BYTES_MAX, 331);
}
