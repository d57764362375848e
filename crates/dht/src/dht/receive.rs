//! Receiving: answering queries (within the anti-amplification bound) and matching responses
//! to the requests we sent.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::{Dht, Purpose, Request, VERIFY_PINGS_MAX};
use crate::id::is_local;
use crate::krpc::{Body, Message, NodeInfo, Query, Response, ERROR_PROTOCOL};
use crate::{AddressFamily, DhtEvent, NodeId, Transmit};

/// Most `values` in a response to a verified node (keeps the datagram under ~1 KB).
pub const VALUES_PER_RESPONSE_MAX: usize = 100;
/// Most `values` or `nodes` in a response to an address that has never answered us: the
/// anti-amplification bound.
pub const UNVERIFIED_ITEMS_MAX: usize = 8;
/// The resulting bound on the size of any response to an unverified address, in bytes
/// (checked by tests for both families, longest transaction id and token).
pub const UNVERIFIED_RESPONSE_LEN_MAX: usize = 512;
/// `ip` votes remembered for the external-address election.
const VOTES_MAX: usize = 32;
/// Votes an address needs before we believe it.
const VOTES_MIN: usize = 3;

impl Dht {
    pub(super) fn receive(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        if !self.family_ok(&from) {
            self.dropped += 1;
            return;
        }
        let Ok(msg) = Message::parse(bytes) else {
            self.dropped += 1;
            return;
        };
        match msg.body {
            Body::Query { id, query, .. } => {
                self.queries_received += 1;
                if !self.config.read_only {
                    self.answer(now, from, &msg.transaction_id, id, msg.read_only, query);
                }
            }
            Body::Response(ref r) => {
                let Some(req) = self.take_request(from, &msg.transaction_id) else {
                    self.dropped += 1;
                    return;
                };
                self.on_response(now, from, &msg, r, &req);
            }
            Body::Error { .. } => {
                let Some(req) = self.take_request(from, &msg.transaction_id) else {
                    self.dropped += 1;
                    return;
                };
                // Alive but unhelpful: the request failed, the node is not penalised.
                if let Purpose::Lookup { lookup, .. } = req.purpose {
                    if let Some(l) = self.lookups.iter_mut().find(|l| l.id == lookup) {
                        l.on_failure(from);
                    }
                }
                self.drive_lookups(now);
            }
        }
    }

    /// The request this answer is for: same transaction id and same source address.
    fn take_request(&mut self, from: SocketAddr, tid: &[u8]) -> Option<Request> {
        let tid = u32::from_be_bytes(tid.try_into().ok()?);
        if self.requests.get(&tid)?.to != from {
            return None;
        }
        self.requests.remove(&tid)
    }

    fn on_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        msg: &Message,
        r: &Response,
        req: &Request,
    ) {
        if req.id.is_some_and(|expected| expected != r.id) {
            // Another node at that address now, or a spoof: not the one we asked.
            self.dropped += 1;
            self.on_request_failed(now, req);
            self.drive_lookups(now);
            return;
        }
        let router = matches!(req.purpose, Purpose::Lookup { router: true, .. });
        if !router && !msg.read_only && self.id_acceptable(&r.id, from) {
            self.learn(now, r.id, from);
        }
        if let Some(ip) = msg.ip {
            self.vote(from.ip(), ip.ip());
        }
        if let Purpose::Lookup { lookup, .. } = req.purpose {
            self.lookup_response(now, lookup, from, r);
        }
    }

    fn lookup_response(
        &mut self,
        now: Instant,
        lookup: crate::LookupId,
        from: SocketAddr,
        r: &Response,
    ) {
        let family = self.config.family;
        let own = self.id;
        let Some(l) = self.lookups.iter_mut().find(|l| l.id == lookup) else {
            return;
        };
        let nodes = match family {
            AddressFamily::V4 => &r.nodes,
            AddressFamily::V6 => &r.nodes6,
        };
        let mut heard = Vec::new();
        for n in nodes {
            if n.id != own && n.addr.port() != 0 && AddressFamily::of(&n.addr) == family {
                l.add_candidate(Some(n.id), n.addr, false);
                heard.push(*n);
            }
        }
        let peers = l.on_response(from, r.id, r.token.clone(), &r.values);
        let (user, info_hash) = (l.user, l.target.0);
        // Nodes we heard about fill free room in the table as unverified hints.
        for n in heard {
            if self.id_acceptable(&n.id, n.addr) {
                let _ = self.table.insert(n.id, n.addr, now, false);
            }
        }
        if user && !peers.is_empty() {
            self.push_event(DhtEvent::Peers {
                lookup,
                info_hash,
                peers,
            });
        }
        self.drive_lookups(now);
    }

    fn answer(
        &mut self,
        now: Instant,
        from: SocketAddr,
        tid: &[u8],
        id: NodeId,
        ro: bool,
        query: Query,
    ) {
        let verified = self.table.is_verified(&id, from, now);
        let items = if verified {
            self.config.bucket_size
        } else {
            self.config.bucket_size.min(UNVERIFIED_ITEMS_MAX)
        };
        let mut response = Response {
            id: self.id,
            nodes: Vec::new(),
            nodes6: Vec::new(),
            values: Vec::new(),
            token: None,
        };
        let body = match query {
            Query::Ping => Body::Response(response),
            Query::FindNode { target } => {
                self.fill_nodes(&mut response, &target, items);
                Body::Response(response)
            }
            Query::GetPeers { info_hash } => {
                let max = if verified {
                    VALUES_PER_RESPONSE_MAX
                } else {
                    UNVERIFIED_ITEMS_MAX
                };
                response.values = self.store.get(&info_hash, max, now);
                if verified || response.values.is_empty() {
                    self.fill_nodes(&mut response, &NodeId(info_hash), items);
                }
                response.token = Some(self.tokens.issue(from.ip()));
                Body::Response(response)
            }
            Query::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
            } => self.accept_announce(now, from, info_hash, port, implied_port, &token, response),
        };
        let msg = Message {
            transaction_id: tid.to_vec(),
            version: Some(super::VERSION.to_vec()),
            read_only: false,
            ip: Some(from),
            body,
        };
        if self.transmits.len() < super::TRANSMIT_QUEUE_MAX {
            self.transmits.push_back(Transmit {
                to: from,
                payload: msg.encode(),
            });
        }
        if !ro && !verified {
            self.consider(now, from, id);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn accept_announce(
        &mut self,
        now: Instant,
        from: SocketAddr,
        info_hash: [u8; 20],
        port: u16,
        implied_port: bool,
        token: &[u8],
        response: Response,
    ) -> Body {
        let port = if implied_port { from.port() } else { port };
        if !self.tokens.verify(from.ip(), token) || port == 0 {
            return Body::Error {
                code: ERROR_PROTOCOL,
                message: b"bad token".to_vec(),
            };
        }
        self.store
            .announce(info_hash, SocketAddr::new(from.ip(), port), now);
        Body::Response(response)
    }

    fn fill_nodes(&self, response: &mut Response, target: &NodeId, count: usize) {
        let nodes: Vec<NodeInfo> = self
            .table
            .closest(target, count)
            .into_iter()
            .map(|(id, addr)| NodeInfo { id, addr })
            .collect();
        match self.config.family {
            AddressFamily::V4 => response.nodes = nodes,
            AddressFamily::V6 => response.nodes6 = nodes,
        }
    }

    /// A node queried us and is not (verified) in the table: ping it if it could get in.
    fn consider(&mut self, now: Instant, from: SocketAddr, id: NodeId) {
        if !self.id_acceptable(&id, from) || !self.table.has_room_for(&id) {
            return;
        }
        let verifying = self
            .requests
            .values()
            .filter(|r| matches!(r.purpose, Purpose::Verify))
            .take(VERIFY_PINGS_MAX)
            .collect::<Vec<_>>();
        if verifying.len() >= VERIFY_PINGS_MAX || verifying.iter().any(|r| r.to == from) {
            return;
        }
        let _ = self.send_query(now, from, Some(id), Query::Ping, Purpose::Verify);
    }

    /// Records that `voter` saw us at `seen`; a clear majority of recent votes (at least
    /// `VOTES_MIN`) becomes our external address.
    fn vote(&mut self, voter: IpAddr, seen: IpAddr) {
        if seen.is_unspecified() || (is_local(seen) && !is_local(voter)) {
            return;
        }
        self.votes.retain(|(v, _)| *v != voter);
        if self.votes.len() >= VOTES_MAX {
            self.votes.pop_front();
        }
        self.votes.push_back((voter, seen));
        let count = |ip: IpAddr| self.votes.iter().filter(|(_, s)| *s == ip).count();
        let n = count(seen);
        let current = self.external_ip.map_or(0, count);
        if n >= VOTES_MIN && n > current && self.external_ip != Some(seen) {
            self.external_ip = Some(seen);
            self.push_event(DhtEvent::ExternalIp(seen));
        }
    }
}
