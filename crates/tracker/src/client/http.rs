//! The body of an HTTP announce response as a client reads it (BEP 3, BEP 23 compact peers,
//! BEP 7 `peers6`): every field a client acts on, decoded under
//! [`bitswarm_bencode::Limits::MESSAGE`]. Lenient where trackers differ (a peer entry that is
//! not a usable address is skipped), strict where a wrong type means a broken tracker.

use std::net::{IpAddr, SocketAddr};

use bitswarm_bencode::{decode_with, Dict, Limits, Value};

use crate::compact::CompactPeers;
use crate::error::TrackerError;

/// Most peers taken from one response; the rest are ignored. A tracker that sends more is
/// either broken or hostile, and this many is plenty for one announce.
pub const RESPONSE_PEERS_MAX: usize = 2000;

/// A parsed HTTP announce response.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum HttpReply {
    /// The tracker refused the announce (`failure reason`).
    Failure(String),
    /// The tracker answered.
    Announce(HttpAnnounce),
}

/// What a successful announce response says. Counts and intervals are `None` when absent.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct HttpAnnounce {
    /// Seconds until the next regular announce.
    pub interval_s: Option<u32>,
    /// Seconds to wait at least before announcing again.
    pub min_interval_s: Option<u32>,
    /// Seeders in the swarm.
    pub complete: Option<u32>,
    /// Leechers in the swarm.
    pub incomplete: Option<u32>,
    /// Peers from `peers` (compact or dictionaries) then `peers6`, in response order, at most
    /// [`RESPONSE_PEERS_MAX`]; entries that are not an IP address and a non-zero port are
    /// skipped.
    pub peers: Vec<SocketAddr>,
    /// A `warning message` to show the user.
    pub warning: Option<String>,
    /// A `tracker id` to echo in later announces.
    pub tracker_id: Option<Vec<u8>>,
}

/// Parses an HTTP announce response body.
pub fn parse_announce_response(body: &[u8]) -> Result<HttpReply, TrackerError> {
    let value = decode_with(body, &Limits::MESSAGE)?;
    let dict = value
        .as_dict()
        .ok_or(TrackerError::ResponseField("(top level)"))?;
    if let Some(reason) = dict.get(b"failure reason") {
        let text = reason
            .as_bytes()
            .ok_or(TrackerError::ResponseField("failure reason"))?;
        return Ok(HttpReply::Failure(lossy(text)));
    }
    let mut reply = HttpAnnounce {
        interval_s: count(dict, "interval")?,
        min_interval_s: count(dict, "min interval")?,
        complete: count(dict, "complete")?,
        incomplete: count(dict, "incomplete")?,
        warning: bytes(dict, "warning message")?.map(lossy),
        tracker_id: bytes(dict, "tracker id")?.map(<[u8]>::to_vec),
        peers: Vec::new(),
    };
    match dict.get(b"peers") {
        None => {}
        Some(v) => {
            if let Some(b) = v.as_bytes() {
                push_bounded(&mut reply.peers, CompactPeers::new(b, false).iter());
            } else {
                let list = v.as_list().ok_or(TrackerError::ResponseField("peers"))?;
                push_bounded(&mut reply.peers, list.iter().filter_map(dict_peer));
            }
        }
    }
    if let Some(b) = bytes(dict, "peers6")? {
        push_bounded(&mut reply.peers, CompactPeers::new(b, true).iter());
    }
    Ok(HttpReply::Announce(reply))
}

/// A non-negative integer field that fits 32 bits; a larger one saturates (an interval of
/// years is as good as `u32::MAX` seconds), a negative one or another type is an error.
fn count(dict: &Dict<'_>, key: &'static str) -> Result<Option<u32>, TrackerError> {
    dict.get(key.as_bytes())
        .map(|v| {
            let n = v.as_int().ok_or(TrackerError::ResponseField(key))?;
            if n < 0 {
                return Err(TrackerError::ResponseField(key));
            }
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        })
        .transpose()
}

fn bytes<'a>(dict: &Dict<'a>, key: &'static str) -> Result<Option<&'a [u8]>, TrackerError> {
    dict.get(key.as_bytes())
        .map(|v| v.as_bytes().ok_or(TrackerError::ResponseField(key)))
        .transpose()
}

fn push_bounded(out: &mut Vec<SocketAddr>, peers: impl Iterator<Item = SocketAddr>) {
    let room = RESPONSE_PEERS_MAX.saturating_sub(out.len());
    out.extend(peers.filter(|p| p.port() != 0).take(room));
}

/// A BEP 3 peer dictionary `{ip, port[, peer id]}`; `None` unless `ip` is an IP address
/// (BEP 3 also allows a DNS name, which no tracker in use sends) and `port` fits 16 bits.
fn dict_peer(p: &Value<'_>) -> Option<SocketAddr> {
    let d = p.as_dict()?;
    let ip: IpAddr = d.get(b"ip")?.as_str()?.parse().ok()?;
    let port = u16::try_from(d.get(b"port")?.as_int()?).ok()?;
    Some(SocketAddr::new(crate::compact::canonical_ip(ip), port))
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
