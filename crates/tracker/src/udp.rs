//! The UDP tracker protocol (BEP 15): requests and responses as fixed big-endian layouts,
//! parsed from and written to byte buffers, for both the server and the client side.
//!
//! Parsing never panics: a packet is checked against its layout's length before any field is
//! read, and every failure is a [`TrackerError`]. Bytes after a 98-byte announce are BEP 41
//! options (URL data); they are tolerated and can be read with [`url_data`].

use std::net::Ipv4Addr;

use crate::compact::CompactPeers;
use crate::error::TrackerError;
use crate::types::{Event, InfoHash, PeerId};

/// The magic constant that opens every connect request.
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;
/// Bytes of a connect request and of a connect response.
pub const CONNECT_LEN: usize = 16;
/// Bytes of an announce request without BEP 41 options.
pub const ANNOUNCE_LEN: usize = 98;
/// Bytes of an announce response before its peers.
pub const ANNOUNCE_RESPONSE_HEADER_LEN: usize = 20;
/// Bytes of a scrape request before its info-hashes, and of any request header.
pub const HEADER_LEN: usize = 16;
/// Most info-hashes one scrape may name (what fits a 1500-byte packet: BEP 15's own figure).
pub const SCRAPE_INFO_HASHES_MAX: usize = 74;
/// Longest request accepted: a scrape of [`SCRAPE_INFO_HASHES_MAX`] info-hashes (which also
/// leaves an announce 1398 bytes of BEP 41 options). Anything longer is not a tracker client.
pub const REQUEST_LEN_MAX: usize = HEADER_LEN + 20 * SCRAPE_INFO_HASHES_MAX;

const ACTION_CONNECT: u32 = 0;
const ACTION_ANNOUNCE: u32 = 1;
const ACTION_SCRAPE: u32 = 2;
const ACTION_ERROR: u32 = 3;

/// A connection id, handed out by a connect response and echoed by every later request.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ConnectionId(pub u64);

/// A transaction id, chosen by the client and echoed by the response.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TransactionId(pub u32);

/// The first 16 bytes every request shares, readable even when the rest is malformed, so a
/// server can address an error response.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RequestHeader {
    /// The connection id (the protocol id, for a connect request).
    pub connection_id: ConnectionId,
    /// The action number.
    pub action: u32,
    /// The transaction id.
    pub transaction_id: TransactionId,
}

impl RequestHeader {
    /// The header of `packet`, or `None` if it is shorter than 16 bytes.
    #[must_use]
    pub fn parse(packet: &[u8]) -> Option<Self> {
        let mut r = Reader::new(packet);
        Some(Self {
            connection_id: ConnectionId(r.u64()?),
            action: r.u32()?,
            transaction_id: TransactionId(r.u32()?),
        })
    }
}

/// A parsed UDP tracker request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Request<'a> {
    /// Asks for a connection id.
    Connect {
        /// Echoed in the response.
        transaction_id: TransactionId,
    },
    /// Joins or updates the peer in a swarm and asks for other peers.
    Announce(AnnounceRequest),
    /// Asks for the counts of some swarms.
    Scrape(ScrapeRequest<'a>),
}

/// A BEP 15 announce request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AnnounceRequest {
    /// Must be one this server handed out.
    pub connection_id: ConnectionId,
    /// Echoed in the response.
    pub transaction_id: TransactionId,
    /// The swarm.
    pub info_hash: InfoHash,
    /// The announcing peer.
    pub peer_id: PeerId,
    /// Bytes downloaded so far.
    pub downloaded: u64,
    /// Bytes still missing: zero for a seeder.
    pub left: u64,
    /// Bytes uploaded so far.
    pub uploaded: u64,
    /// State change being reported.
    pub event: Event,
    /// An address the client claims (0 on the wire means none); servers ignore it.
    pub ip: Option<Ipv4Addr>,
    /// A client key that stays the same across address changes.
    pub key: u32,
    /// Peers wanted; negative asks for the server's default.
    pub num_want: i32,
    /// The port the peer listens on.
    pub port: u16,
}

/// A BEP 15 scrape request: a borrowed, validated list of info-hashes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ScrapeRequest<'a> {
    /// Must be one this server handed out.
    pub connection_id: ConnectionId,
    /// Echoed in the response.
    pub transaction_id: TransactionId,
    info_hashes: &'a [u8],
}

impl<'a> ScrapeRequest<'a> {
    /// The info-hashes asked about, in request order.
    #[must_use]
    pub fn info_hashes(&self) -> impl ExactSizeIterator<Item = InfoHash> + 'a {
        self.info_hashes
            .chunks_exact(20)
            .map(|c| InfoHash::from_bytes(c.try_into().unwrap_or([0; 20])))
    }
}

impl<'a> Request<'a> {
    /// Parses one request packet.
    pub fn parse(packet: &'a [u8]) -> Result<Self, TrackerError> {
        if packet.len() > REQUEST_LEN_MAX {
            return Err(TrackerError::PacketTooLong {
                len: packet.len(),
                max: REQUEST_LEN_MAX,
            });
        }
        let header = RequestHeader::parse(packet).ok_or(TrackerError::PacketTooShort {
            len: packet.len(),
            need: HEADER_LEN,
        })?;
        match header.action {
            ACTION_CONNECT => {
                if header.connection_id.0 != PROTOCOL_ID {
                    return Err(TrackerError::BadProtocolId);
                }
                Ok(Self::Connect {
                    transaction_id: header.transaction_id,
                })
            }
            ACTION_ANNOUNCE => parse_announce(header, packet).map(Self::Announce),
            ACTION_SCRAPE => parse_scrape(header, packet).map(Self::Scrape),
            other => Err(TrackerError::UnknownAction(other)),
        }
    }

    /// Appends the wire form of this request to `out` (the client side).
    pub fn emit(&self, out: &mut Vec<u8>) {
        match self {
            Self::Connect { transaction_id } => {
                put_header(out, PROTOCOL_ID, ACTION_CONNECT, *transaction_id);
            }
            Self::Announce(a) => {
                put_header(out, a.connection_id.0, ACTION_ANNOUNCE, a.transaction_id);
                out.extend_from_slice(a.info_hash.as_bytes());
                out.extend_from_slice(&a.peer_id.0);
                for n in [a.downloaded, a.left, a.uploaded] {
                    out.extend_from_slice(&n.to_be_bytes());
                }
                out.extend_from_slice(&a.event.to_udp().to_be_bytes());
                out.extend_from_slice(&a.ip.map_or([0; 4], |ip| ip.octets()));
                out.extend_from_slice(&a.key.to_be_bytes());
                out.extend_from_slice(&a.num_want.to_be_bytes());
                out.extend_from_slice(&a.port.to_be_bytes());
            }
            Self::Scrape(s) => {
                put_header(out, s.connection_id.0, ACTION_SCRAPE, s.transaction_id);
                out.extend_from_slice(s.info_hashes);
            }
        }
    }
}

/// Appends a scrape request for `info_hashes` to `out` (the client side).
pub fn emit_scrape_request(
    out: &mut Vec<u8>,
    connection_id: ConnectionId,
    transaction_id: TransactionId,
    info_hashes: &[InfoHash],
) {
    put_header(out, connection_id.0, ACTION_SCRAPE, transaction_id);
    for h in info_hashes {
        out.extend_from_slice(h.as_bytes());
    }
}

/// The BEP 41 URL data (path and query) carried after an announce, concatenated, if the
/// options are well formed and carry any; malformed options yield `None` (they are tolerated,
/// not an error).
#[must_use]
pub fn url_data(packet: &[u8]) -> Option<Vec<u8>> {
    let mut options = packet.get(ANNOUNCE_LEN..)?;
    let mut out = Vec::new();
    while let Some((&kind, rest)) = options.split_first() {
        match kind {
            0 => break,
            1 => options = rest,
            2 => {
                let (&len, rest) = rest.split_first()?;
                let data = rest.get(..usize::from(len))?;
                out.extend_from_slice(data);
                options = rest.get(usize::from(len)..)?;
            }
            _ => return None,
        }
    }
    (!out.is_empty()).then_some(out)
}

fn parse_announce(header: RequestHeader, packet: &[u8]) -> Result<AnnounceRequest, TrackerError> {
    let short = TrackerError::PacketTooShort {
        len: packet.len(),
        need: ANNOUNCE_LEN,
    };
    let body = packet.get(HEADER_LEN..ANNOUNCE_LEN).ok_or(short.clone())?;
    let (mut request, event) = read_announce(header, body).ok_or(short)?;
    request.event = Event::from_udp(event).ok_or(TrackerError::UnknownEvent(event))?;
    Ok(request)
}

/// Reads the 82 bytes after the header; the event comes back raw, for the caller to check.
fn read_announce(header: RequestHeader, body: &[u8]) -> Option<(AnnounceRequest, u32)> {
    let mut r = Reader::new(body);
    let info_hash = InfoHash::from_bytes(r.array()?);
    let peer_id = PeerId(r.array()?);
    let (downloaded, left, uploaded) = (r.u64()?, r.u64()?, r.u64()?);
    let event = r.u32()?;
    let ip = Ipv4Addr::from(r.u32()?);
    let request = AnnounceRequest {
        connection_id: header.connection_id,
        transaction_id: header.transaction_id,
        info_hash,
        peer_id,
        downloaded,
        left,
        uploaded,
        event: Event::None,
        ip: (!ip.is_unspecified()).then_some(ip),
        key: r.u32()?,
        num_want: r.i32()?,
        port: r.u16()?,
    };
    Some((request, event))
}

fn parse_scrape(header: RequestHeader, packet: &[u8]) -> Result<ScrapeRequest<'_>, TrackerError> {
    let info_hashes = packet.get(HEADER_LEN..).unwrap_or_default();
    if info_hashes.len() % 20 != 0 {
        return Err(TrackerError::ScrapeLength);
    }
    let count = info_hashes.len() / 20;
    if count == 0 || count > SCRAPE_INFO_HASHES_MAX {
        return Err(TrackerError::ScrapeCount {
            count,
            max: SCRAPE_INFO_HASHES_MAX,
        });
    }
    Ok(ScrapeRequest {
        connection_id: header.connection_id,
        transaction_id: header.transaction_id,
        info_hashes,
    })
}

/// Appends a connect response.
pub fn emit_connect_response(out: &mut Vec<u8>, tid: TransactionId, cid: ConnectionId) {
    out.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
    out.extend_from_slice(&tid.0.to_be_bytes());
    out.extend_from_slice(&cid.0.to_be_bytes());
}

/// Appends the 20-byte head of an announce response; the compact peers follow it.
pub fn emit_announce_response_header(
    out: &mut Vec<u8>,
    tid: TransactionId,
    interval_s: u32,
    leechers: u32,
    seeders: u32,
) {
    for n in [ACTION_ANNOUNCE, tid.0, interval_s, leechers, seeders] {
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// Appends the 8-byte head of a scrape response; one [`emit_scrape_entry`] per info-hash
/// follows it, in request order.
pub fn emit_scrape_response_header(out: &mut Vec<u8>, tid: TransactionId) {
    out.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
    out.extend_from_slice(&tid.0.to_be_bytes());
}

/// Appends one swarm's counts to a scrape response.
pub fn emit_scrape_entry(out: &mut Vec<u8>, stats: ScrapeStats) {
    for n in [stats.seeders, stats.completed, stats.leechers] {
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// Appends an error response carrying `message`.
pub fn emit_error_response(out: &mut Vec<u8>, tid: TransactionId, message: &[u8]) {
    out.extend_from_slice(&ACTION_ERROR.to_be_bytes());
    out.extend_from_slice(&tid.0.to_be_bytes());
    out.extend_from_slice(message);
}

/// One swarm's counts, as a scrape reports them.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ScrapeStats {
    /// Peers with the whole torrent.
    pub seeders: u32,
    /// Completed downloads seen.
    pub completed: u32,
    /// Peers still downloading.
    pub leechers: u32,
}

/// A parsed UDP tracker response (the client side).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Response<'a> {
    /// Hands out a connection id.
    Connect {
        /// The request's transaction id.
        transaction_id: TransactionId,
        /// To echo in later requests.
        connection_id: ConnectionId,
    },
    /// Answers an announce.
    Announce {
        /// The request's transaction id.
        transaction_id: TransactionId,
        /// Seconds until the next announce.
        interval_s: u32,
        /// Peers still downloading.
        leechers: u32,
        /// Peers with the whole torrent.
        seeders: u32,
        /// Some peers of the swarm.
        peers: CompactPeers<'a>,
    },
    /// Answers a scrape: 12 bytes of counts per info-hash asked about.
    Scrape {
        /// The request's transaction id.
        transaction_id: TransactionId,
        /// The raw counts; read them with [`Response::scrape_stats`].
        raw: &'a [u8],
    },
    /// The tracker refused the request.
    Error {
        /// The request's transaction id.
        transaction_id: TransactionId,
        /// Why, as the tracker put it.
        message: &'a [u8],
    },
}

impl<'a> Response<'a> {
    /// Parses one response packet; `v6` says whether the announce went over IPv6 (and so
    /// whether its peers are 18 bytes each).
    pub fn parse(packet: &'a [u8], v6: bool) -> Result<Self, TrackerError> {
        let mut r = Reader::new(packet);
        let short = |need| TrackerError::PacketTooShort {
            len: packet.len(),
            need,
        };
        let action = r.u32().ok_or(short(8))?;
        let transaction_id = TransactionId(r.u32().ok_or(short(8))?);
        let rest = packet.get(8..).unwrap_or_default();
        match action {
            ACTION_CONNECT => Ok(Self::Connect {
                transaction_id,
                connection_id: ConnectionId(r.u64().ok_or(short(CONNECT_LEN))?),
            }),
            ACTION_ANNOUNCE => {
                let need = short(ANNOUNCE_RESPONSE_HEADER_LEN);
                let (interval_s, leechers, seeders) = (
                    r.u32().ok_or(need.clone())?,
                    r.u32().ok_or(need.clone())?,
                    r.u32().ok_or(need)?,
                );
                let peers = CompactPeers::new(r.rest(), v6);
                Ok(Self::Announce {
                    transaction_id,
                    interval_s,
                    leechers,
                    seeders,
                    peers,
                })
            }
            ACTION_SCRAPE => Ok(Self::Scrape {
                transaction_id,
                raw: rest,
            }),
            ACTION_ERROR => Ok(Self::Error {
                transaction_id,
                message: rest,
            }),
            other => Err(TrackerError::UnknownAction(other)),
        }
    }

    /// The counts of a scrape response, in request order (empty for other responses).
    pub fn scrape_stats(&self) -> impl Iterator<Item = ScrapeStats> + 'a {
        let raw: &'a [u8] = match self {
            Self::Scrape { raw, .. } => raw,
            _ => &[],
        };
        raw.chunks_exact(12).filter_map(|c| {
            let mut r = Reader::new(c);
            Some(ScrapeStats {
                seeders: r.u32()?,
                completed: r.u32()?,
                leechers: r.u32()?,
            })
        })
    }
}

fn put_header(out: &mut Vec<u8>, connection_id: u64, action: u32, tid: TransactionId) {
    out.extend_from_slice(&connection_id.to_be_bytes());
    out.extend_from_slice(&action.to_be_bytes());
    out.extend_from_slice(&tid.0.to_be_bytes());
}

/// A cursor over big-endian fields that returns `None` instead of reading past the end.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, tail) = self.rest.split_first_chunk::<N>()?;
        self.rest = tail;
        Some(*head)
    }

    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    fn i32(&mut self) -> Option<i32> {
        self.array().map(i32::from_be_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_be_bytes)
    }

    fn rest(self) -> &'a [u8] {
        self.rest
    }
}

/// Overwrites the leecher and seeder counts of an announce response whose head is at the
/// start of `response` (written first, counts known only once its peers are appended).
pub fn set_announce_counts(response: &mut [u8], leechers: u32, seeders: u32) {
    if let Some(counts) = response.get_mut(12..ANNOUNCE_RESPONSE_HEADER_LEN) {
        counts[..4].copy_from_slice(&leechers.to_be_bytes());
        counts[4..].copy_from_slice(&seeders.to_be_bytes());
    }
}
