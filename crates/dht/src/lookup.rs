//! One iterative lookup (`find_node` or `get_peers`): candidates ordered by XOR distance to the
//! target, `alpha` requests in flight (more while some are slow), done when the `k` closest
//! live candidates have all answered.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Instant;

use crate::{LookupId, NodeId};

/// Most candidates a lookup remembers; the farthest unqueried ones are dropped beyond it.
pub(crate) const CANDIDATES_MAX: usize = 64;
/// Most distinct peers one lookup collects (and reports).
pub(crate) const LOOKUP_PEERS_MAX: usize = 2000;

/// What a lookup is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `find_node`: bootstrap (`after_bootstrap` refreshes thin buckets when done) or refresh.
    FindNode { after_bootstrap: bool },
    /// `get_peers`.
    GetPeers,
    /// `get_peers`, then `announce_peer` (`port: None`: implied port).
    Announce { port: Option<u16> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Fresh,
    InFlight { slow: bool },
    Responded,
    Failed,
}

/// Sort key of a candidate: known ids by XOR distance, unknown ids (routers) after them.
type Key = (bool, [u8; 20]);

#[derive(Debug, Clone)]
struct Candidate {
    key: Key,
    id: Option<NodeId>,
    addr: SocketAddr,
    router: bool,
    state: State,
    token: Option<Vec<u8>>,
}

/// The state of one lookup. It sends nothing itself: [`Lookup::next_to_query`] says whom to
/// ask next and the `on_*` methods record what happened.
#[derive(Debug)]
pub(crate) struct Lookup {
    pub id: LookupId,
    pub target: NodeId,
    pub kind: Kind,
    /// Started by the driver (events are reported), not by maintenance.
    pub user: bool,
    pub started: Option<Instant>,
    pub responded: usize,
    k: usize,
    alpha: usize,
    candidates: Vec<Candidate>,
    peers: HashSet<SocketAddr>,
}

impl Lookup {
    pub fn new(
        id: LookupId,
        target: NodeId,
        kind: Kind,
        user: bool,
        k: usize,
        alpha: usize,
    ) -> Self {
        Self {
            id,
            target,
            kind,
            user,
            started: None,
            responded: 0,
            k: k.max(1),
            alpha: alpha.max(1),
            candidates: Vec::new(),
            peers: HashSet::new(),
        }
    }

    pub fn peers_found(&self) -> usize {
        self.peers.len()
    }

    /// Adds nodes to ask (unknown ids sort last); duplicates by address or id are ignored.
    pub fn add_candidate(&mut self, id: Option<NodeId>, addr: SocketAddr, router: bool) {
        if self
            .candidates
            .iter()
            .any(|c| c.addr == addr || (id.is_some() && c.id == id))
        {
            return;
        }
        let key = self.key(id.as_ref());
        let pos = self.candidates.partition_point(|c| c.key <= key);
        if pos >= CANDIDATES_MAX {
            return;
        }
        self.candidates.insert(
            pos,
            Candidate {
                key,
                id,
                addr,
                router,
                state: State::Fresh,
                token: None,
            },
        );
        if self.candidates.len() > CANDIDATES_MAX {
            if let Some(drop) = self
                .candidates
                .iter()
                .rposition(|c| c.state == State::Fresh)
            {
                self.candidates.remove(drop);
            }
        }
    }

    /// The next node to ask, if the lookup wants another request in flight now; it is
    /// marked in flight. Returns its expected id, address and whether it is a router.
    pub fn next_to_query(&mut self) -> Option<(Option<NodeId>, SocketAddr, bool)> {
        let active = self
            .candidates
            .iter()
            .filter(|c| c.state == State::InFlight { slow: false })
            .count();
        if active >= self.alpha {
            return None;
        }
        let k = self.k;
        let c = self
            .candidates
            .iter_mut()
            .filter(|c| counts(c.state))
            .take(k)
            .find(|c| c.state == State::Fresh)?;
        c.state = State::InFlight { slow: false };
        Some((c.id, c.addr, c.router))
    }

    /// The request to `addr` has been outstanding for `slow_after`: one more may go out.
    pub fn on_slow(&mut self, addr: SocketAddr) {
        if let Some(c) = self.find(addr) {
            if c.state == (State::InFlight { slow: false }) {
                c.state = State::InFlight { slow: true };
            }
        }
    }

    pub fn on_failure(&mut self, addr: SocketAddr) {
        if let Some(c) = self.find(addr) {
            if matches!(c.state, State::InFlight { .. }) {
                c.state = State::Failed;
            }
        }
    }

    /// `addr` answered as `id`; returns the peers not seen before in this lookup.
    pub fn on_response(
        &mut self,
        addr: SocketAddr,
        id: NodeId,
        token: Option<Vec<u8>>,
        values: &[SocketAddr],
    ) -> Vec<SocketAddr> {
        let Some(pos) = self.candidates.iter().position(|c| c.addr == addr) else {
            return Vec::new();
        };
        if !matches!(self.candidates[pos].state, State::InFlight { .. }) {
            return Vec::new();
        }
        self.responded += 1;
        let mut c = self.candidates.remove(pos);
        c.state = State::Responded;
        c.token = token;
        if c.id.is_none() {
            c.id = Some(id);
            c.key = self.key(c.id.as_ref());
        }
        let at = self.candidates.partition_point(|x| x.key <= c.key);
        self.candidates.insert(at, c);
        let mut new = Vec::new();
        for v in values {
            if self.peers.len() < LOOKUP_PEERS_MAX && self.peers.insert(*v) {
                new.push(*v);
            }
        }
        new
    }

    /// Done when the `k` closest candidates that count (not failed, not slow) have all
    /// answered, or when nothing is in flight and nobody is left to ask. A slow request's
    /// answer is still used if it comes first, but the lookup does not wait for it.
    pub fn is_done(&self) -> bool {
        let window = || {
            self.candidates
                .iter()
                .filter(|c| counts(c.state))
                .take(self.k)
        };
        if window().count() == self.k && window().all(|c| c.state == State::Responded) {
            return true;
        }
        let in_flight = self
            .candidates
            .iter()
            .any(|c| matches!(c.state, State::InFlight { .. }));
        !in_flight && !window().any(|c| c.state == State::Fresh)
    }

    /// The `k` closest responders that gave a token, for `announce_peer`. A router that
    /// answered `get_peers` with a token stores peers like any node, so it may be among them
    /// (it still never enters the routing table).
    pub fn announce_targets(&self) -> Vec<(NodeId, SocketAddr, Vec<u8>)> {
        self.candidates
            .iter()
            .filter(|c| c.state == State::Responded)
            .filter_map(|c| Some((c.id?, c.addr, c.token.clone()?)))
            .take(self.k)
            .collect()
    }

    fn find(&mut self, addr: SocketAddr) -> Option<&mut Candidate> {
        self.candidates.iter_mut().find(|c| c.addr == addr)
    }

    fn key(&self, id: Option<&NodeId>) -> Key {
        id.map_or((true, [0xff; 20]), |id| (false, id.distance(&self.target)))
    }
}

/// Whether a candidate in this state is one of "the k closest" a lookup waits for: failed
/// nodes and requests past `slow_after` are skipped.
fn counts(state: State) -> bool {
    !matches!(state, State::Failed | State::InFlight { slow: true })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(n: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, n], 6881))
    }

    fn node(n: u8) -> NodeId {
        let mut id = [0u8; 20];
        id[0] = n;
        NodeId(id)
    }

    #[test]
    fn queries_closest_first_alpha_at_a_time_and_widens_when_slow() {
        let mut l = Lookup::new(
            LookupId(1),
            NodeId([0; 20]),
            Kind::FindNode {
                after_bootstrap: false,
            },
            false,
            2,
            2,
        );
        for n in [5u8, 1, 3, 2, 4] {
            l.add_candidate(Some(node(n)), a(n), false);
        }
        assert_eq!(l.next_to_query().map(|q| q.1), Some(a(1)));
        assert_eq!(l.next_to_query().map(|q| q.1), Some(a(2)));
        assert_eq!(
            l.next_to_query(),
            None,
            "alpha reached; 3 is not among the k=2 closest"
        );
        l.on_slow(a(1));
        assert_eq!(
            l.next_to_query().map(|q| q.1),
            Some(a(3)),
            "slow: widen to the next"
        );
        assert_eq!(l.next_to_query(), None);
        assert!(l.on_response(a(2), node(2), None, &[a(99), a(99)]).len() == 1);
        assert!(!l.is_done());
        let _ = l.on_response(a(3), node(3), Some(b"tok".to_vec()), &[a(99)]);
        assert!(l.is_done());
        assert_eq!(l.peers_found(), 1);
        assert_eq!(l.announce_targets().len(), 1);
    }

    #[test]
    fn unsolicited_response_is_ignored_and_candidates_bounded() {
        let mut l = Lookup::new(LookupId(1), NodeId([0; 20]), Kind::GetPeers, true, 8, 3);
        assert!(l.on_response(a(7), node(7), None, &[a(1)]).is_empty());
        for n in 0..=255u8 {
            let mut id = [n; 20];
            id[19] = 1;
            l.add_candidate(
                Some(NodeId(id)),
                SocketAddr::from(([10, 1, 0, n], 1)),
                false,
            );
        }
        assert!(l.candidates.len() <= CANDIDATES_MAX);
        assert_eq!(l.candidates[0].id.unwrap().0[0], 0);
    }

    /// dht-node's request: a router that answered `get_peers` with a token is announced to
    /// (a node bootstrapped from one local node must be able to announce right away).
    #[test]
    fn router_with_token_is_an_announce_target() {
        let kind = Kind::Announce { port: None };
        let mut l = Lookup::new(LookupId(1), NodeId([0; 20]), kind, true, 8, 3);
        l.add_candidate(None, a(1), true);
        assert_eq!(l.next_to_query(), Some((None, a(1), true)));
        let _ = l.on_response(a(1), node(1), Some(b"tok".to_vec()), &[]);
        assert!(l.is_done());
        assert_eq!(l.announce_targets(), vec![(node(1), a(1), b"tok".to_vec())]);
    }

    #[test]
    fn empty_lookup_is_done() {
        let l = Lookup::new(LookupId(1), NodeId([0; 20]), Kind::GetPeers, true, 8, 3);
        assert!(l.is_done());
    }
}
