//! KRPC, the DHT's message layer (BEP 5, with BEP 32 `want`/`nodes6`, BEP 42 `ip`, BEP 43 `ro`):
//! a parsed [`Message`] with tight, named bounds, and its canonical encoding.
//!
//! Parsing never panics and never allocates more than the datagram it reads; anything that
//! does not fit the bounds is an error, and the caller drops the datagram.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use bitswarm_bencode::encode::{write_bytes, write_int};
use bitswarm_bencode::{decode_with, Dict, Limits, Value};

use crate::NodeId;

/// Largest datagram parsed; bigger ones are dropped unread (one Ethernet MTU).
pub const DATAGRAM_LEN_MAX: usize = 1500;
/// Longest transaction id accepted (ours are [`crate::Dht`]'s 4 bytes; others use 2–8).
pub const TRANSACTION_ID_LEN_MAX: usize = 16;
/// Longest token accepted in a response or an `announce_peer`.
pub const TOKEN_LEN_MAX: usize = 64;
/// Most entries in a `values` list.
pub const VALUES_COUNT_MAX: usize = 200;
/// Longest client version string (`v`) kept; a longer one is ignored.
pub const VERSION_LEN_MAX: usize = 16;
/// Longest error message kept; a longer one is truncated.
pub const ERROR_MESSAGE_LEN_MAX: usize = 256;
/// Bytes of one IPv4 compact node (`nodes`): id, address, port.
pub const COMPACT_NODE_V4_LEN: usize = 26;
/// Bytes of one IPv6 compact node (`nodes6`).
pub const COMPACT_NODE_V6_LEN: usize = 38;

/// KRPC error code 201: generic error.
pub const ERROR_GENERIC: i64 = 201;
/// KRPC error code 202: server error.
pub const ERROR_SERVER: i64 = 202;
/// KRPC error code 203: protocol error (malformed packet, invalid arguments, bad token).
pub const ERROR_PROTOCOL: i64 = 203;
/// KRPC error code 204: method unknown.
pub const ERROR_METHOD_UNKNOWN: i64 = 204;

/// Decoder bounds for one datagram.
const LIMITS: Limits = Limits {
    input_len_max: DATAGRAM_LEN_MAX,
    string_len_max: DATAGRAM_LEN_MAX,
    depth_max: 4,
    items_max: VALUES_COUNT_MAX + 64,
    strict_key_order: false,
};

/// One KRPC message: the envelope keys, and a query, response or error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `t`: chosen by the querier, echoed by the responder (at most
    /// [`TRANSACTION_ID_LEN_MAX`] bytes).
    pub transaction_id: Vec<u8>,
    /// `v`: client version, if given (at most [`VERSION_LEN_MAX`] bytes).
    pub version: Option<Vec<u8>>,
    /// `ro: 1` (BEP 43): the sender answers no queries.
    pub read_only: bool,
    /// `ip` (BEP 42): in a response, the address the responder saw the query come from.
    pub ip: Option<SocketAddr>,
    /// What the message says.
    pub body: Body,
}

/// The three kinds of KRPC message (`y` = `q`, `r`, `e`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// A query, with the querier's id and the families it wants nodes of.
    Query {
        /// `a.id`: the querier's id.
        id: NodeId,
        /// `a.want` (BEP 32).
        want: Want,
        /// The method and its arguments.
        query: Query,
    },
    /// A response (`r`). Which query it answers is known only from the transaction id.
    Response(Response),
    /// An error (`e: [code, message]`).
    Error {
        /// One of the `ERROR_*` codes, or whatever the sender used.
        code: i64,
        /// Human-readable text (at most [`ERROR_MESSAGE_LEN_MAX`] bytes kept).
        message: Vec<u8>,
    },
}

/// The four BEP 5 methods, with their arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// `ping`.
    Ping,
    /// `find_node`: the `bucket_size` closest nodes to `target`.
    FindNode {
        /// What to find.
        target: NodeId,
    },
    /// `get_peers`: peers for `info_hash`, or the closest nodes, and a token.
    GetPeers {
        /// The torrent.
        info_hash: [u8; 20],
    },
    /// `announce_peer`: the querier downloads `info_hash` on `port`.
    AnnouncePeer {
        /// The torrent.
        info_hash: [u8; 20],
        /// The peer's port (ignored when `implied_port`).
        port: u16,
        /// Use the UDP source port instead of `port`.
        implied_port: bool,
        /// The token from an earlier `get_peers` response.
        token: Vec<u8>,
    },
}

/// `want` (BEP 32): which families of nodes the querier asks for. Both false: not given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Want {
    /// `n4`.
    pub v4: bool,
    /// `n6`.
    pub v6: bool,
}

/// A response's arguments; absent keys are empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The responder's id.
    pub id: NodeId,
    /// `nodes`: IPv4 nodes (entries with an IPv6 address are not encoded here).
    pub nodes: Vec<NodeInfo>,
    /// `nodes6`: IPv6 nodes (entries with an IPv4 address are not encoded here).
    pub nodes6: Vec<NodeInfo>,
    /// `values`: peers (at most [`VALUES_COUNT_MAX`]).
    pub values: Vec<SocketAddr>,
    /// `token`, for a later `announce_peer`.
    pub token: Option<Vec<u8>>,
}

/// A node's id and address, as in compact node info.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeInfo {
    /// Its id.
    pub id: NodeId,
    /// Its UDP address.
    pub addr: SocketAddr,
}

/// Why a datagram is not a KRPC message we accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KrpcError {
    /// Larger than [`DATAGRAM_LEN_MAX`].
    #[error("datagram of {0} bytes is over the bound")]
    TooLong(usize),
    /// Not bencode, or over the decoder's bounds.
    #[error("bencode: {0}")]
    Bencode(#[from] bitswarm_bencode::DecodeError),
    /// The top level is not a dictionary.
    #[error("message is not a dictionary")]
    NotADict,
    /// A required key is absent.
    #[error("missing key {0}")]
    Missing(&'static str),
    /// A key has the wrong type, length or range.
    #[error("invalid value for key {0}")]
    Invalid(&'static str),
    /// `y` is not `q`, `r` or `e`.
    #[error("unknown message type")]
    UnknownType,
    /// `q` names a method we do not implement.
    #[error("unknown method")]
    UnknownMethod,
}

impl Message {
    /// Parses one datagram.
    pub fn parse(bytes: &[u8]) -> Result<Message, KrpcError> {
        if bytes.len() > DATAGRAM_LEN_MAX {
            return Err(KrpcError::TooLong(bytes.len()));
        }
        let value = decode_with(bytes, &LIMITS)?;
        let dict = value.as_dict().ok_or(KrpcError::NotADict)?;
        let transaction_id = bytes_of(dict, b"t", "t")?;
        if transaction_id.len() > TRANSACTION_ID_LEN_MAX {
            return Err(KrpcError::Invalid("t"));
        }
        let version = dict
            .get(b"v")
            .and_then(Value::as_bytes)
            .filter(|v| v.len() <= VERSION_LEN_MAX)
            .map(<[u8]>::to_vec);
        let read_only = dict.get(b"ro").and_then(Value::as_int) == Some(1);
        let ip = dict
            .get(b"ip")
            .and_then(Value::as_bytes)
            .and_then(parse_compact_addr);
        let body = match bytes_of(dict, b"y", "y")? {
            b"q" => parse_query(dict)?,
            b"r" => Body::Response(parse_response(dict)?),
            b"e" => parse_error(dict)?,
            _ => return Err(KrpcError::UnknownType),
        };
        Ok(Message {
            transaction_id: transaction_id.to_vec(),
            version,
            read_only,
            ip,
            body,
        })
    }

    /// The canonical encoding (keys sorted).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        out.push(b'd');
        match &self.body {
            Body::Query { id, want, query } => encode_query_args(&mut out, id, *want, query),
            Body::Error { code, message } => {
                write_bytes(&mut out, b"e");
                out.push(b'l');
                write_int(&mut out, *code);
                write_bytes(&mut out, message);
                out.push(b'e');
            }
            Body::Response(_) => {}
        }
        if let Some(ip) = &self.ip {
            write_bytes(&mut out, b"ip");
            write_bytes(&mut out, &compact_addr(ip));
        }
        if let Body::Query { query, .. } = &self.body {
            write_bytes(&mut out, b"q");
            write_bytes(&mut out, query.method());
        }
        if let Body::Response(r) = &self.body {
            write_bytes(&mut out, b"r");
            encode_response(&mut out, r);
        }
        if self.read_only {
            write_bytes(&mut out, b"ro");
            write_int(&mut out, 1);
        }
        write_bytes(&mut out, b"t");
        write_bytes(&mut out, &self.transaction_id);
        if let Some(v) = &self.version {
            write_bytes(&mut out, b"v");
            write_bytes(&mut out, v);
        }
        write_bytes(&mut out, b"y");
        write_bytes(
            &mut out,
            match self.body {
                Body::Query { .. } => b"q",
                Body::Response(_) => b"r",
                Body::Error { .. } => b"e",
            },
        );
        out.push(b'e');
        out
    }
}

impl Query {
    /// The method name (`q`).
    #[must_use]
    pub fn method(&self) -> &'static [u8] {
        match self {
            Query::Ping => b"ping",
            Query::FindNode { .. } => b"find_node",
            Query::GetPeers { .. } => b"get_peers",
            Query::AnnouncePeer { .. } => b"announce_peer",
        }
    }
}

/// The 6- or 18-byte compact form of an address (BEP 5 / BEP 32).
#[must_use]
pub fn compact_addr(addr: &SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(18);
    match addr {
        SocketAddr::V4(a) => out.extend_from_slice(&a.ip().octets()),
        SocketAddr::V6(a) => out.extend_from_slice(&a.ip().octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
    out
}

/// An address from its 6- or 18-byte compact form; `None` for any other length.
#[must_use]
pub fn parse_compact_addr(bytes: &[u8]) -> Option<SocketAddr> {
    match bytes.len() {
        6 => {
            let ip: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
            let port = u16::from_be_bytes(bytes.get(4..6)?.try_into().ok()?);
            Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
        }
        18 => {
            let ip: [u8; 16] = bytes.get(..16)?.try_into().ok()?;
            let port = u16::from_be_bytes(bytes.get(16..18)?.try_into().ok()?);
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                port,
                0,
                0,
            )))
        }
        _ => None,
    }
}

fn bytes_of<'a>(dict: &Dict<'a>, key: &[u8], name: &'static str) -> Result<&'a [u8], KrpcError> {
    dict.get(key)
        .ok_or(KrpcError::Missing(name))?
        .as_bytes()
        .ok_or(KrpcError::Invalid(name))
}

fn id_of(dict: &Dict<'_>, key: &[u8], name: &'static str) -> Result<[u8; 20], KrpcError> {
    bytes_of(dict, key, name)?
        .try_into()
        .map_err(|_| KrpcError::Invalid(name))
}

fn parse_query(dict: &Dict<'_>) -> Result<Body, KrpcError> {
    let method = bytes_of(dict, b"q", "q")?;
    let args = dict
        .get(b"a")
        .ok_or(KrpcError::Missing("a"))?
        .as_dict()
        .ok_or(KrpcError::Invalid("a"))?;
    let id = NodeId(id_of(args, b"id", "id")?);
    let mut want = Want::default();
    if let Some(list) = args.get(b"want").and_then(Value::as_list) {
        for item in list {
            match item.as_bytes() {
                Some(b"n4") => want.v4 = true,
                Some(b"n6") => want.v6 = true,
                _ => {}
            }
        }
    }
    let query = match method {
        b"ping" => Query::Ping,
        b"find_node" => Query::FindNode {
            target: NodeId(id_of(args, b"target", "target")?),
        },
        b"get_peers" => Query::GetPeers {
            info_hash: id_of(args, b"info_hash", "info_hash")?,
        },
        b"announce_peer" => parse_announce(args)?,
        _ => return Err(KrpcError::UnknownMethod),
    };
    Ok(Body::Query { id, want, query })
}

fn parse_announce(args: &Dict<'_>) -> Result<Query, KrpcError> {
    let info_hash = id_of(args, b"info_hash", "info_hash")?;
    let implied_port = args
        .get(b"implied_port")
        .and_then(Value::as_int)
        .is_some_and(|n| n != 0);
    let port = match args.get(b"port") {
        Some(v) => v
            .as_int()
            .and_then(|n| u16::try_from(n).ok())
            .ok_or(KrpcError::Invalid("port"))?,
        None if implied_port => 0,
        None => return Err(KrpcError::Missing("port")),
    };
    let token = bytes_of(args, b"token", "token")?;
    if token.len() > TOKEN_LEN_MAX {
        return Err(KrpcError::Invalid("token"));
    }
    Ok(Query::AnnouncePeer {
        info_hash,
        port,
        implied_port,
        token: token.to_vec(),
    })
}

fn parse_response(dict: &Dict<'_>) -> Result<Response, KrpcError> {
    let r = dict
        .get(b"r")
        .ok_or(KrpcError::Missing("r"))?
        .as_dict()
        .ok_or(KrpcError::Invalid("r"))?;
    let id = NodeId(id_of(r, b"id", "id")?);
    let nodes = parse_nodes(r, b"nodes", "nodes", COMPACT_NODE_V4_LEN)?;
    let nodes6 = parse_nodes(r, b"nodes6", "nodes6", COMPACT_NODE_V6_LEN)?;
    let mut values = Vec::new();
    if let Some(v) = r.get(b"values") {
        let list = v.as_list().ok_or(KrpcError::Invalid("values"))?;
        if list.len() > VALUES_COUNT_MAX {
            return Err(KrpcError::Invalid("values"));
        }
        // Entries of another length are skipped, not fatal: the rest are still peers.
        values.extend(
            list.iter()
                .filter_map(Value::as_bytes)
                .filter_map(parse_compact_addr)
                .filter(|a| a.port() != 0),
        );
    }
    let token = match r.get(b"token") {
        None => None,
        Some(v) => {
            let t = v.as_bytes().ok_or(KrpcError::Invalid("token"))?;
            if t.len() > TOKEN_LEN_MAX {
                return Err(KrpcError::Invalid("token"));
            }
            Some(t.to_vec())
        }
    };
    Ok(Response {
        id,
        nodes,
        nodes6,
        values,
        token,
    })
}

fn parse_nodes(
    r: &Dict<'_>,
    key: &[u8],
    name: &'static str,
    entry_len: usize,
) -> Result<Vec<NodeInfo>, KrpcError> {
    let Some(v) = r.get(key) else {
        return Ok(Vec::new());
    };
    let bytes = v.as_bytes().ok_or(KrpcError::Invalid(name))?;
    if bytes.len() % entry_len != 0 {
        return Err(KrpcError::Invalid(name));
    }
    Ok(bytes
        .chunks_exact(entry_len)
        .filter_map(|c| {
            let (id, addr) = c.split_at(NodeId::LEN);
            Some(NodeInfo {
                id: NodeId::from_slice(id)?,
                addr: parse_compact_addr(addr)?,
            })
        })
        .collect())
}

fn parse_error(dict: &Dict<'_>) -> Result<Body, KrpcError> {
    let list = dict
        .get(b"e")
        .ok_or(KrpcError::Missing("e"))?
        .as_list()
        .ok_or(KrpcError::Invalid("e"))?;
    let code = list
        .first()
        .and_then(Value::as_int)
        .ok_or(KrpcError::Invalid("e"))?;
    let message = list.get(1).and_then(Value::as_bytes).unwrap_or_default();
    let message = message.get(..ERROR_MESSAGE_LEN_MAX).unwrap_or(message);
    Ok(Body::Error {
        code,
        message: message.to_vec(),
    })
}

fn encode_query_args(out: &mut Vec<u8>, id: &NodeId, want: Want, query: &Query) {
    write_bytes(out, b"a");
    out.push(b'd');
    write_bytes(out, b"id");
    write_bytes(out, &id.0);
    if let Query::AnnouncePeer {
        implied_port: true, ..
    } = query
    {
        write_bytes(out, b"implied_port");
        write_int(out, 1);
    }
    match query {
        Query::GetPeers { info_hash } | Query::AnnouncePeer { info_hash, .. } => {
            write_bytes(out, b"info_hash");
            write_bytes(out, info_hash);
        }
        Query::Ping | Query::FindNode { .. } => {}
    }
    if let Query::AnnouncePeer { port, .. } = query {
        write_bytes(out, b"port");
        write_int(out, i64::from(*port));
    }
    if let Query::FindNode { target } = query {
        write_bytes(out, b"target");
        write_bytes(out, &target.0);
    }
    if let Query::AnnouncePeer { token, .. } = query {
        write_bytes(out, b"token");
        write_bytes(out, token);
    }
    if want.v4 || want.v6 {
        write_bytes(out, b"want");
        out.push(b'l');
        if want.v4 {
            write_bytes(out, b"n4");
        }
        if want.v6 {
            write_bytes(out, b"n6");
        }
        out.push(b'e');
    }
    out.push(b'e');
}

fn encode_response(out: &mut Vec<u8>, r: &Response) {
    out.push(b'd');
    write_bytes(out, b"id");
    write_bytes(out, &r.id.0);
    let v4: Vec<&NodeInfo> = r.nodes.iter().filter(|n| n.addr.is_ipv4()).collect();
    if !v4.is_empty() {
        encode_nodes(out, b"nodes", &v4);
    }
    let v6: Vec<&NodeInfo> = r.nodes6.iter().filter(|n| n.addr.is_ipv6()).collect();
    if !v6.is_empty() {
        encode_nodes(out, b"nodes6", &v6);
    }
    if let Some(token) = &r.token {
        write_bytes(out, b"token");
        write_bytes(out, token);
    }
    if !r.values.is_empty() {
        write_bytes(out, b"values");
        out.push(b'l');
        for v in &r.values {
            write_bytes(out, &compact_addr(v));
        }
        out.push(b'e');
    }
    out.push(b'e');
}

fn encode_nodes(out: &mut Vec<u8>, key: &[u8], nodes: &[&NodeInfo]) {
    let mut buf = Vec::with_capacity(nodes.len() * COMPACT_NODE_V6_LEN);
    for n in nodes {
        buf.extend_from_slice(&n.id.0);
        buf.extend_from_slice(&compact_addr(&n.addr));
    }
    write_bytes(out, key);
    write_bytes(out, &buf);
}

#[cfg(test)]
mod tests;
