//! The node: routing table, lookups and peer store tied together behind the sans-IO API.
//! Receiving (answering queries, matching responses) lives in `dht/receive.rs`.

pub(crate) mod receive;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::krpc::{Body, Message, Query, Want};
use crate::lookup::{Kind, Lookup};
use crate::routing::{Insert, RoutingTable};
use crate::store::{PeerStore, Tokens};
use crate::{AddressFamily, DhtConfig, DhtEvent, DhtStats, LookupId, NodeId, Transmit};

/// Most requests awaiting an answer at once (lookups wait, pings are skipped beyond it).
pub const REQUESTS_IN_FLIGHT_MAX: usize = 512;
/// Most verification pings (to nodes that queried us) in flight at once.
pub const VERIFY_PINGS_MAX: usize = 16;
/// Most lookups waiting for a slot beyond `max_lookups`; more are finished at once, empty.
pub const LOOKUP_QUEUE_MAX: usize = 256;
/// Most bootstrap routers remembered (they seed lookups while the table is thin).
pub const ROUTERS_MAX: usize = 16;
/// Interval of housekeeping: token rotation check, peer expiry, bucket refresh.
pub const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(60);
/// Most pings of questionable table entries per housekeeping round.
pub const QUESTIONABLE_PINGS_PER_ROUND: usize = 8;
/// Most outgoing datagrams queued for the driver; beyond it new ones are dropped.
pub const TRANSMIT_QUEUE_MAX: usize = 4096;
/// Most events queued for the driver; beyond it the oldest are dropped.
pub const EVENT_QUEUE_MAX: usize = 4096;
/// Client version we send as `v`: "BS" and version 0.1.
pub const VERSION: &[u8; 4] = b"BS\x00\x01";

/// Why we sent a request, i.e. what to do with its answer or its timeout.
#[derive(Debug, Clone, Copy)]
enum Purpose {
    /// A lookup step; `router`: the node must not enter the table.
    Lookup { lookup: LookupId, router: bool },
    /// Verifying a node (it queried us, or came as a hint without id).
    Verify,
    /// Ping-before-replace: if `old` fails, `new` takes its place.
    Replace { new: NodeId, new_addr: SocketAddr },
    /// Liveness check of a questionable entry during refresh.
    Ping,
    /// `announce_peer` after a lookup.
    Announce,
}

#[derive(Debug, Clone)]
struct Request {
    to: SocketAddr,
    id: Option<NodeId>,
    sent: Instant,
    slow: bool,
    purpose: Purpose,
}

/// One DHT node (one address family). See the crate docs for the driving loop.
#[derive(Debug)]
pub struct Dht {
    config: DhtConfig,
    rng: SmallRng,
    id: NodeId,
    table: RoutingTable,
    tokens: Tokens,
    store: PeerStore,
    requests: HashMap<u32, Request>,
    lookups: Vec<Lookup>,
    queued: VecDeque<Lookup>,
    next_lookup: u64,
    routers: Vec<SocketAddr>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<DhtEvent>,
    /// The latest `now` we were given.
    now: Option<Instant>,
    next_housekeeping: Option<Instant>,
    next_rotation: Option<Instant>,
    /// Recent `ip` votes: (voter, the address it saw us at).
    votes: VecDeque<(IpAddr, IpAddr)>,
    external_ip: Option<IpAddr>,
    queries_received: u64,
    dropped: u64,
}

impl Dht {
    /// A node with `config`; all randomness comes from a `SmallRng` seeded with `seed`.
    #[must_use]
    pub fn new(config: DhtConfig, seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let id = config.node_id.unwrap_or_else(|| match config.external_ip {
            Some(ip) => NodeId::secure(ip, &mut rng),
            None => NodeId::random(&mut rng),
        });
        let table = RoutingTable::new(id, config.bucket_size, config.restrict_routing_ips);
        let tokens = Tokens::new(&mut rng);
        let store = PeerStore::new(
            config.max_torrents,
            config.max_peers_per_torrent,
            config.peer_ttl,
        );
        Self {
            external_ip: config.external_ip,
            config,
            rng,
            id,
            table,
            tokens,
            store,
            requests: HashMap::new(),
            lookups: Vec::new(),
            queued: VecDeque::new(),
            next_lookup: 1,
            routers: Vec::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            now: None,
            next_housekeeping: None,
            next_rotation: None,
            votes: VecDeque::new(),
            queries_received: 0,
            dropped: 0,
        }
    }

    /// Our node id.
    #[must_use]
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// A node to start from (a saved table entry or a hint): with a known `id` it enters the
    /// table as questionable; without, it is pinged and enters when it answers.
    pub fn add_node(&mut self, now: Instant, addr: SocketAddr, id: Option<NodeId>) {
        self.start_clock(now);
        if !self.family_ok(&addr) {
            return;
        }
        match id {
            Some(id) if self.id_acceptable(&id, addr) => {
                let _ = self.table.insert(id, addr, now, false);
            }
            Some(_) => {}
            None => {
                let _ = self.send_query(now, addr, None, Query::Ping, Purpose::Verify);
            }
        }
    }

    /// Looks up our own id through `routers` (which never enter the table), then refreshes
    /// the buckets that are not full.
    pub fn bootstrap(&mut self, now: Instant, routers: &[SocketAddr]) {
        self.start_clock(now);
        for r in routers {
            if self.family_ok(r) && !self.routers.contains(r) && self.routers.len() < ROUTERS_MAX {
                self.routers.push(*r);
            }
        }
        let kind = Kind::FindNode {
            after_bootstrap: true,
        };
        let _ = self.start_lookup(now, self.id, kind, false);
    }

    /// Handles one received datagram; malformed or unsolicited ones are dropped and counted.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.start_clock(now);
        self.receive(now, from, bytes);
    }

    /// The next datagram to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// When [`Dht::handle_timeout`] should next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let requests = self.requests.values().map(|r| {
            let slow_at = r.sent + self.config.slow_after;
            if !r.slow && matches!(r.purpose, Purpose::Lookup { .. }) {
                slow_at
            } else {
                r.sent + self.config.request_timeout
            }
        });
        requests
            .chain(self.next_housekeeping)
            .chain(self.next_rotation)
            .min()
    }

    /// Advances timers: request timeouts, lookup widening, refreshes, token rotation, expiry.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.start_clock(now);
        self.expire_requests(now);
        if self.next_rotation.is_some_and(|t| t <= now) {
            self.tokens.rotate(&mut self.rng);
            self.next_rotation = Some(now + self.config.token_rotation);
        }
        if self.next_housekeeping.is_some_and(|t| t <= now) {
            self.next_housekeeping = Some(now + HOUSEKEEPING_INTERVAL);
            self.housekeeping(now, false);
        }
        self.drive_lookups(now);
    }

    /// Starts a `get_peers` lookup; peers arrive as [`DhtEvent::Peers`].
    pub fn get_peers(&mut self, now: Instant, info_hash: [u8; 20]) -> LookupId {
        self.start_clock(now);
        let kind = Kind::GetPeers;
        self.start_lookup(now, NodeId(info_hash), kind, true)
    }

    /// A `get_peers` lookup, then `announce_peer` to the closest nodes that gave tokens.
    /// `port: None` announces with `implied_port = 1` (the UDP source port).
    pub fn announce(&mut self, now: Instant, info_hash: [u8; 20], port: Option<u16>) -> LookupId {
        self.start_clock(now);
        let kind = Kind::Announce { port };
        self.start_lookup(now, NodeId(info_hash), kind, true)
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<DhtEvent> {
        self.events.pop_front()
    }

    /// Counters and sizes.
    #[must_use]
    pub fn stats(&self) -> DhtStats {
        let now = self.now;
        DhtStats {
            nodes: self.table.len(),
            good_nodes: now.map_or(0, |now| self.table.good_count(now)),
            buckets: self.table.bucket_count(),
            in_flight: self.requests.len(),
            lookups: self.lookups.len() + self.queued.len(),
            torrents_stored: self.store.torrents(),
            peers_stored: self.store.peers(),
            queries_received: self.queries_received,
            responses_dropped: self.dropped,
        }
    }

    /// Good and questionable table entries, for saving.
    #[must_use]
    pub fn nodes(&self) -> Vec<(NodeId, SocketAddr)> {
        self.table
            .entries()
            .filter(|e| !e.is_bad())
            .map(|e| (e.id, e.addr))
            .collect()
    }

    /// Our external address, as voted by the `ip` key of responses (or as configured).
    #[must_use]
    pub fn external_ip(&self) -> Option<IpAddr> {
        self.external_ip
    }
}

// Private machinery: timers, lookups, sending.
impl Dht {
    fn start_clock(&mut self, now: Instant) {
        self.now = Some(self.now.map_or(now, |t| t.max(now)));
        if self.next_housekeeping.is_none() {
            self.next_housekeeping = Some(now + HOUSEKEEPING_INTERVAL);
            self.next_rotation = Some(now + self.config.token_rotation);
            self.table.start_clock(now);
        }
    }

    fn family_ok(&self, addr: &SocketAddr) -> bool {
        addr.port() != 0 && AddressFamily::of(addr) == self.config.family
    }

    /// BEP 42: a global address must carry an id derived from it (when enforced).
    fn id_acceptable(&self, id: &NodeId, addr: SocketAddr) -> bool {
        *id != self.id && (!self.config.enforce_node_id || id.is_secure_for(addr.ip()))
    }

    fn housekeeping(&mut self, now: Instant, empty_too: bool) {
        self.store.expire(now);
        let targets = self.table.due_refresh(now, empty_too, &mut self.rng);
        for target in targets {
            let kind = Kind::FindNode {
                after_bootstrap: false,
            };
            let _ = self.start_lookup(now, target, kind, false);
        }
        if !empty_too {
            let questionable = self.table.questionable(now);
            for (id, addr) in questionable.into_iter().take(QUESTIONABLE_PINGS_PER_ROUND) {
                let _ = self.send_query(now, addr, Some(id), Query::Ping, Purpose::Ping);
            }
        }
    }

    fn start_lookup(&mut self, now: Instant, target: NodeId, kind: Kind, user: bool) -> LookupId {
        let id = LookupId(self.next_lookup);
        self.next_lookup += 1;
        let k = self.config.bucket_size;
        let mut lookup = Lookup::new(id, target, kind, user, k, self.config.alpha);
        let seeds = self.table.closest(&target, 2 * k);
        let thin = seeds.len() < k;
        for (nid, addr) in seeds {
            lookup.add_candidate(Some(nid), addr, false);
        }
        if thin {
            for r in &self.routers {
                lookup.add_candidate(None, *r, true);
            }
        }
        if self.lookups.len() < self.config.max_lookups.max(1) {
            lookup.started = Some(now);
            self.lookups.push(lookup);
            self.drive_lookups(now);
        } else if self.queued.len() < LOOKUP_QUEUE_MAX {
            self.queued.push_back(lookup);
        } else {
            self.finish_lookup(now, &lookup);
        }
        id
    }

    /// Sends what every running lookup wants sent, finishes the done ones and starts queued
    /// ones in their place.
    fn drive_lookups(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.lookups.len() {
            self.step_lookup(now, i);
            if self.lookups[i].is_done() {
                let done = self.lookups.swap_remove(i);
                self.finish_lookup(now, &done);
                if let Some(mut next) = self.queued.pop_front() {
                    next.started = Some(now);
                    self.lookups.push(next);
                }
            } else {
                i += 1;
            }
        }
    }

    fn step_lookup(&mut self, now: Instant, i: usize) {
        while self.requests.len() < REQUESTS_IN_FLIGHT_MAX {
            let Some((nid, addr, router)) = self.lookups[i].next_to_query() else {
                return;
            };
            let lookup = self.lookups[i].id;
            let query = match self.lookups[i].kind {
                Kind::FindNode { .. } => Query::FindNode {
                    target: self.lookups[i].target,
                },
                Kind::GetPeers | Kind::Announce { .. } => Query::GetPeers {
                    info_hash: self.lookups[i].target.0,
                },
            };
            let purpose = Purpose::Lookup { lookup, router };
            if !self.send_query(now, addr, nid, query, purpose) {
                self.lookups[i].on_failure(addr);
            }
        }
    }

    fn finish_lookup(&mut self, now: Instant, lookup: &Lookup) {
        let mut announced_to = 0;
        match lookup.kind {
            Kind::Announce { port } => {
                for (nid, addr, token) in lookup.announce_targets() {
                    let query = Query::AnnouncePeer {
                        info_hash: lookup.target.0,
                        port: port.unwrap_or(0),
                        implied_port: port.is_none(),
                        token,
                    };
                    if self.send_query(now, addr, Some(nid), query, Purpose::Announce) {
                        announced_to += 1;
                    }
                }
            }
            Kind::FindNode {
                after_bootstrap: true,
            } => self.housekeeping(now, true),
            _ => {}
        }
        if lookup.user {
            self.push_event(DhtEvent::LookupDone {
                lookup: lookup.id,
                info_hash: lookup.target.0,
                peers_found: lookup.peers_found(),
                nodes_responded: lookup.responded,
                announced_to,
            });
        }
    }

    /// Request timeouts: a lookup request past `slow_after` lets its lookup widen; any
    /// request past `request_timeout` counts as a failure of its node.
    fn expire_requests(&mut self, now: Instant) {
        let slow_after = self.config.slow_after;
        let timeout = self.config.request_timeout;
        let mut expired = Vec::new();
        for (tid, r) in &mut self.requests {
            if now.saturating_duration_since(r.sent) >= timeout {
                expired.push(*tid);
            } else if !r.slow && now.saturating_duration_since(r.sent) >= slow_after {
                r.slow = true;
                if let Purpose::Lookup { lookup, .. } = r.purpose {
                    if let Some(l) = self.lookups.iter_mut().find(|l| l.id == lookup) {
                        l.on_slow(r.to);
                    }
                }
            }
        }
        expired.sort_unstable(); // HashMap order is not seeded by us: keep runs replayable.
        for tid in expired {
            if let Some(r) = self.requests.remove(&tid) {
                self.on_request_failed(now, &r);
            }
        }
    }

    fn on_request_failed(&mut self, now: Instant, r: &Request) {
        if let Some(id) = r.id {
            self.table.on_failure(&id, r.to);
        }
        match r.purpose {
            Purpose::Lookup { lookup, .. } => {
                if let Some(l) = self.lookups.iter_mut().find(|l| l.id == lookup) {
                    l.on_failure(r.to);
                }
            }
            Purpose::Replace { new, new_addr } => {
                if let Some(old) = r.id {
                    self.table.replace(&old, new, new_addr, now);
                }
            }
            Purpose::Verify | Purpose::Ping | Purpose::Announce => {}
        }
    }

    /// Encodes and queues a query; false when the in-flight bound or queue refused it.
    fn send_query(
        &mut self,
        now: Instant,
        to: SocketAddr,
        id: Option<NodeId>,
        query: Query,
        purpose: Purpose,
    ) -> bool {
        if self.requests.len() >= REQUESTS_IN_FLIGHT_MAX
            || self.transmits.len() >= TRANSMIT_QUEUE_MAX
        {
            return false;
        }
        let mut tid: u32 = self.rng.gen();
        while self.requests.contains_key(&tid) {
            tid = self.rng.gen();
        }
        let msg = Message {
            transaction_id: tid.to_be_bytes().to_vec(),
            version: Some(VERSION.to_vec()),
            read_only: self.config.read_only,
            ip: None,
            body: Body::Query {
                id: self.id,
                want: Want::default(),
                query,
            },
        };
        self.transmits.push_back(Transmit {
            to,
            payload: msg.encode(),
        });
        let request = Request {
            to,
            id,
            sent: now,
            slow: false,
            purpose,
        };
        self.requests.insert(tid, request);
        true
    }

    fn push_event(&mut self, event: DhtEvent) {
        if self.events.len() >= EVENT_QUEUE_MAX {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    /// Inserts a node that answered us; a full bucket may ask for a ping-before-replace.
    fn learn(&mut self, now: Instant, id: NodeId, addr: SocketAddr) {
        if let Insert::PingFirst(old, old_addr) = self.table.insert(id, addr, now, true) {
            let pending = self
                .requests
                .values()
                .any(|r| matches!(r.purpose, Purpose::Replace { .. }) && r.id == Some(old));
            if !pending {
                let purpose = Purpose::Replace {
                    new: id,
                    new_addr: addr,
                };
                let _ = self.send_query(now, old_addr, Some(old), Query::Ping, purpose);
            }
        }
    }
}

#[cfg(test)]
mod tests;
