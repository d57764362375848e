//! The server's protocol logic, sans-IO: one UDP datagram or one HTTP request in, the bytes
//! of the answer out. The runtime owns sockets and clock; this owns every decision — which
//! requests get an answer, which are dropped, what the answer says.
//!
//! UDP rule: a request is answered only with at most as many bytes as it had, so the server
//! never amplifies traffic towards a spoofed source; a request without a readable header or a
//! connect without the protocol id is dropped silently.

use std::net::{IpAddr, SocketAddr};

use rand::Rng;

use crate::access::AccessList;
use crate::compact::canonical_ip;
use crate::connection_id::ConnectionIdIssuer;
use crate::error::TrackerError;
use crate::http::{query, response};
use crate::swarm::{AnnounceParams, Stored, SwarmTable};
use crate::udp::{self, Request, RequestHeader, ScrapeStats};

/// Most peers in one UDP announce response to an IPv4 client (20 + 6 * 200 bytes).
pub const UDP_PEERS_V4_MAX: u32 = 200;
/// Most peers in one UDP announce response to an IPv6 client (20 + 18 * 80 bytes: one
/// unfragmented 1500-byte packet).
pub const UDP_PEERS_V6_MAX: u32 = 80;

/// Answers the server gives regardless of the request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ServerConfig {
    /// Seconds between a client's regular announces.
    pub interval_s: u32,
    /// Seconds a client must wait at least between announces (HTTP only).
    pub min_interval_s: u32,
    /// Peers returned when the client does not say.
    pub numwant_default: u32,
    /// Most peers returned, whatever the client asks.
    pub numwant_max: u32,
}

/// Why a request was refused or dropped: the label of the errors metric.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Refusal {
    /// The request does not parse.
    Malformed,
    /// A UDP request with a connection id this server did not issue, or issued too long ago.
    ConnectionId,
    /// The access list does not serve this info-hash.
    AccessDenied,
    /// An HTTP scrape naming no info-hash (a full scrape): not served.
    FullScrape,
}

impl Refusal {
    /// The metric label.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::ConnectionId => "connection_id",
            Self::AccessDenied => "access_denied",
            Self::FullScrape => "full_scrape",
        }
    }
}

/// What a request was, and what became of it, for the runtime's metrics and logs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Handled {
    /// A UDP connect, answered.
    Connect,
    /// An announce, answered; what the table did with the peer.
    Announce(Stored),
    /// A scrape, answered.
    Scrape,
    /// Refused: answered with an error if the output is not empty, else dropped.
    Refused(Refusal),
}

/// A tracker: the swarm table, the connection-id key and the fixed answers.
#[derive(Debug)]
pub struct Tracker {
    table: SwarmTable,
    ids: ConnectionIdIssuer,
    config: ServerConfig,
}

impl Tracker {
    /// A tracker over `table`; `rng` draws the connection-id key.
    pub fn new(table: SwarmTable, config: ServerConfig, rng: &mut impl Rng) -> Self {
        Self {
            table,
            ids: ConnectionIdIssuer::new(rng),
            config,
        }
    }

    /// The swarm table, for expiry and metrics.
    #[must_use]
    pub fn table(&self) -> &SwarmTable {
        &self.table
    }

    /// The fixed answers.
    #[must_use]
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Handles one UDP datagram from `src` at `now_s`, appending the answer (if any) to the
    /// empty `out`.
    pub fn handle_udp(
        &self,
        packet: &[u8],
        src: SocketAddr,
        now_s: u32,
        access: &AccessList,
        rng: &mut impl Rng,
        out: &mut Vec<u8>,
    ) -> Handled {
        let ip = canonical_ip(src.ip());
        let request = match Request::parse(packet) {
            Ok(r) => r,
            Err(e) => return udp_error(packet, &e, Refusal::Malformed, out),
        };
        match request {
            Request::Connect { transaction_id } => {
                udp::emit_connect_response(out, transaction_id, self.ids.issue(ip, now_s));
                Handled::Connect
            }
            Request::Announce(a) => {
                if !self.ids.is_valid(a.connection_id, ip, now_s) {
                    return udp_refuse(
                        packet,
                        b"connection id expired",
                        Refusal::ConnectionId,
                        out,
                    );
                }
                if !access.permits(&a.info_hash) {
                    return udp_refuse(
                        packet,
                        b"info-hash not allowed",
                        Refusal::AccessDenied,
                        out,
                    );
                }
                if a.port == 0 {
                    return udp_refuse(packet, b"port 0", Refusal::Malformed, out);
                }
                let cap = if ip.is_ipv4() {
                    UDP_PEERS_V4_MAX
                } else {
                    UDP_PEERS_V6_MAX
                };
                let want = u32::try_from(a.num_want).ok();
                let params = AnnounceParams {
                    info_hash: a.info_hash,
                    addr: SocketAddr::new(ip, a.port),
                    seeder: a.left == 0,
                    event: a.event,
                    numwant: self.numwant(want).min(cap) as usize,
                };
                udp::emit_announce_response_header(
                    out,
                    a.transaction_id,
                    self.config.interval_s,
                    0,
                    0,
                );
                let outcome = self.table.announce(&params, now_s, rng, out);
                udp::set_announce_counts(out, outcome.leechers, outcome.seeders);
                Handled::Announce(outcome.stored)
            }
            Request::Scrape(s) => {
                if !self.ids.is_valid(s.connection_id, ip, now_s) {
                    return udp_refuse(
                        packet,
                        b"connection id expired",
                        Refusal::ConnectionId,
                        out,
                    );
                }
                udp::emit_scrape_response_header(out, s.transaction_id);
                for hash in s.info_hashes() {
                    let stats = if access.permits(&hash) {
                        self.table.scrape(&hash)
                    } else {
                        ScrapeStats::default()
                    };
                    udp::emit_scrape_entry(out, stats);
                }
                Handled::Scrape
            }
        }
    }

    /// Handles an HTTP announce with query `query` from `src` at `now_s`, appending the
    /// bencoded body (an answer or a `failure reason`) to `body`. `scratch` is a reusable
    /// buffer for the peer list.
    #[allow(clippy::too_many_arguments)] // each is one independent input of a sans-IO step
    pub fn handle_http_announce(
        &self,
        query: &[u8],
        src: IpAddr,
        now_s: u32,
        access: &AccessList,
        rng: &mut impl Rng,
        body: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
    ) -> Handled {
        let a = match query::parse_announce_query(query) {
            Ok(a) => a,
            Err(e) => return http_refuse(body, &e.to_string(), Refusal::Malformed),
        };
        if !access.permits(&a.info_hash) {
            return http_refuse(body, "info-hash not allowed", Refusal::AccessDenied);
        }
        if a.port == 0 {
            return http_refuse(body, "port 0", Refusal::Malformed);
        }
        let ip = canonical_ip(src);
        let params = AnnounceParams {
            info_hash: a.info_hash,
            addr: SocketAddr::new(ip, a.port),
            seeder: a.left == 0,
            event: a.event,
            numwant: self.numwant(a.numwant) as usize,
        };
        scratch.clear();
        let outcome = self.table.announce(&params, now_s, rng, scratch);
        let (peers4, peers6) = if ip.is_ipv4() {
            (&scratch[..], &[][..])
        } else {
            (&[][..], &scratch[..])
        };
        let reply = response::AnnounceReply {
            interval_s: self.config.interval_s,
            min_interval_s: self.config.min_interval_s,
            complete: outcome.seeders,
            incomplete: outcome.leechers,
            peers4,
            peers6,
        };
        response::emit_announce(body, &reply, a.compact);
        Handled::Announce(outcome.stored)
    }

    /// Handles an HTTP scrape with query `query`, appending the bencoded body to `body`.
    /// Swarms the access list does not serve are reported with zero counts.
    pub fn handle_http_scrape(
        &self,
        query: &[u8],
        access: &AccessList,
        body: &mut Vec<u8>,
    ) -> Handled {
        let hashes = match query::parse_scrape_query(query) {
            Ok(h) if h.is_empty() => {
                return http_refuse(body, "full scrape is not served", Refusal::FullScrape)
            }
            Ok(h) => h,
            Err(e) => return http_refuse(body, &e.to_string(), Refusal::Malformed),
        };
        let mut entries: Vec<_> = hashes
            .into_iter()
            .map(|h| {
                (
                    h,
                    if access.permits(&h) {
                        self.table.scrape(&h)
                    } else {
                        ScrapeStats::default()
                    },
                )
            })
            .collect();
        response::emit_scrape(body, &mut entries);
        Handled::Scrape
    }

    /// The number of peers to return for a request asking `asked` (`None`: the default).
    fn numwant(&self, asked: Option<u32>) -> u32 {
        asked
            .unwrap_or(self.config.numwant_default)
            .min(self.config.numwant_max)
    }
}

fn udp_error(packet: &[u8], e: &TrackerError, refusal: Refusal, out: &mut Vec<u8>) -> Handled {
    if matches!(
        e,
        TrackerError::BadProtocolId | TrackerError::PacketTooLong { .. }
    ) {
        return Handled::Refused(refusal);
    }
    let message: &[u8] = match e {
        TrackerError::UnknownAction(_) => b"unknown action",
        TrackerError::UnknownEvent(_) => b"unknown event",
        TrackerError::ScrapeCount { .. } | TrackerError::ScrapeLength => b"bad scrape",
        _ => b"malformed request",
    };
    udp_refuse(packet, message, refusal, out)
}

/// Appends an error response if the packet has a header and the answer is no larger than it.
fn udp_refuse(packet: &[u8], message: &[u8], refusal: Refusal, out: &mut Vec<u8>) -> Handled {
    if let Some(header) = RequestHeader::parse(packet) {
        if 8 + message.len() <= packet.len() {
            udp::emit_error_response(out, header.transaction_id, message);
        }
    }
    Handled::Refused(refusal)
}

fn http_refuse(body: &mut Vec<u8>, reason: &str, refusal: Refusal) -> Handled {
    response::emit_failure(body, reason);
    Handled::Refused(refusal)
}
