//! HTTP tracker response bodies: bencode written straight into a buffer by the server (no
//! tree built per announce), scrape bodies parsed back for tests (announce replies are parsed by `client::http`).

use bitswarm_bencode::encode::{write_bytes, write_int};
use bitswarm_bencode::{decode_with, Limits};

use crate::compact::CompactPeers;
use crate::error::TrackerError;
use crate::types::InfoHash;
use crate::udp::ScrapeStats;

/// What an announce response says, borrowing its compact peer lists.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AnnounceReply<'a> {
    /// Seconds until the next regular announce.
    pub interval_s: u32,
    /// Seconds the client must wait at least before announcing again.
    pub min_interval_s: u32,
    /// Seeders in the swarm.
    pub complete: u32,
    /// Leechers in the swarm.
    pub incomplete: u32,
    /// Compact IPv4 peers (6 bytes each).
    pub peers4: &'a [u8],
    /// Compact IPv6 peers (18 bytes each).
    pub peers6: &'a [u8],
}

/// Appends an announce response: compact strings (BEP 23, BEP 7) when `compact`, else the
/// BEP 3 list of dictionaries, without peer ids (the table does not keep them; that is the
/// `no_peer_id` form).
pub fn emit_announce(out: &mut Vec<u8>, reply: &AnnounceReply<'_>, compact: bool) {
    out.push(b'd');
    write_bytes(out, b"complete");
    write_int(out, i64::from(reply.complete));
    write_bytes(out, b"incomplete");
    write_int(out, i64::from(reply.incomplete));
    write_bytes(out, b"interval");
    write_int(out, i64::from(reply.interval_s));
    write_bytes(out, b"min interval");
    write_int(out, i64::from(reply.min_interval_s));
    write_bytes(out, b"peers");
    if compact {
        write_bytes(out, reply.peers4);
    } else {
        out.push(b'l');
        let v4 = CompactPeers::new(reply.peers4, false).iter();
        for addr in v4.chain(CompactPeers::new(reply.peers6, true).iter()) {
            out.push(b'd');
            write_bytes(out, b"ip");
            write_bytes(out, addr.ip().to_string().as_bytes());
            write_bytes(out, b"port");
            write_int(out, i64::from(addr.port()));
            out.push(b'e');
        }
        out.push(b'e');
    }
    if compact && !reply.peers6.is_empty() {
        write_bytes(out, b"peers6");
        write_bytes(out, reply.peers6);
    }
    out.push(b'e');
}

/// Appends a refusal: `d14:failure reason<len>:<reason>e`.
pub fn emit_failure(out: &mut Vec<u8>, reason: &str) {
    out.push(b'd');
    write_bytes(out, b"failure reason");
    write_bytes(out, reason.as_bytes());
    out.push(b'e');
}

/// Appends a scrape response for `entries` (sorted by info-hash here, as bencode wants; a
/// repeated info-hash is written once).
pub fn emit_scrape(out: &mut Vec<u8>, entries: &mut [(InfoHash, ScrapeStats)]) {
    entries.sort_unstable_by_key(|e| e.0);
    out.push(b'd');
    write_bytes(out, b"files");
    out.push(b'd');
    let mut last = None;
    for (hash, stats) in entries.iter() {
        if last == Some(*hash) {
            continue;
        }
        last = Some(*hash);
        write_bytes(out, hash.as_bytes());
        out.push(b'd');
        write_bytes(out, b"complete");
        write_int(out, i64::from(stats.seeders));
        write_bytes(out, b"downloaded");
        write_int(out, i64::from(stats.completed));
        write_bytes(out, b"incomplete");
        write_int(out, i64::from(stats.leechers));
        out.push(b'e');
    }
    out.extend_from_slice(b"ee");
}

/// Parses a scrape response body into each swarm's counts, in info-hash order.
pub fn parse_scrape(body: &[u8]) -> Result<Vec<(InfoHash, ScrapeStats)>, TrackerError> {
    let value = decode_with(body, &Limits::MESSAGE)?;
    let dict = value
        .as_dict()
        .ok_or(TrackerError::ResponseField("(top level)"))?;
    if dict.get(b"failure reason").is_some() {
        return Err(TrackerError::ResponseField("failure reason"));
    }
    let files = dict
        .get(b"files")
        .and_then(|f| f.as_dict())
        .ok_or(TrackerError::ResponseField("files"))?;
    let mut out = Vec::new();
    for (key, stats) in files.iter() {
        let hash: [u8; 20] = key
            .try_into()
            .map_err(|_| TrackerError::ResponseField("files"))?;
        let stats = stats
            .as_dict()
            .ok_or(TrackerError::ResponseField("files"))?;
        let field = |k: &'static str| {
            stats
                .get(k.as_bytes())
                .and_then(bitswarm_bencode::Value::as_int)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or(TrackerError::ResponseField(k))
        };
        let s = ScrapeStats {
            seeders: field("complete")?,
            completed: field("downloaded")?,
            leechers: field("incomplete")?,
        };
        out.push((InfoHash::from_bytes(hash), s));
    }
    Ok(out)
}
