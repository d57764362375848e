//! HTTP announce and scrape query strings (BEP 3, BEP 23 `compact`, `no_peer_id`): bounded,
//! percent-decoding straight into fixed-size arrays, never allocating for an announce.

use crate::error::TrackerError;
use crate::types::{hex_value, Event, InfoHash, PeerId};

/// Most `key=value` pairs one query may hold (room for a full scrape and then some).
pub const QUERY_PARAMS_MAX: usize = 100;
/// Most info-hashes one HTTP scrape may name.
pub const HTTP_SCRAPE_INFO_HASHES_MAX: usize = 74;

/// A parsed HTTP announce query.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct HttpAnnounce {
    /// The swarm.
    pub info_hash: InfoHash,
    /// The announcing peer.
    pub peer_id: PeerId,
    /// The port the peer listens on.
    pub port: u16,
    /// Bytes uploaded so far (0 if absent).
    pub uploaded: u64,
    /// Bytes downloaded so far (0 if absent).
    pub downloaded: u64,
    /// Bytes still missing: zero for a seeder.
    pub left: u64,
    /// State change being reported.
    pub event: Event,
    /// Whether the client accepts a compact peer list (absent means yes, as clients expect).
    pub compact: bool,
    /// Whether the client asked not to get peer ids.
    pub no_peer_id: bool,
    /// Peers wanted, saturated at `u32::MAX`; `None` asks for the server's default.
    pub numwant: Option<u32>,
}

/// Parses the query of an announce (the bytes after `?`).
pub fn parse_announce_query(query: &[u8]) -> Result<HttpAnnounce, TrackerError> {
    let mut info_hash = None;
    let mut peer_id = None;
    let mut port = None;
    let mut left = None;
    let mut out = HttpAnnounce {
        info_hash: InfoHash::from_bytes([0; 20]),
        peer_id: PeerId([0; 20]),
        port: 0,
        uploaded: 0,
        downloaded: 0,
        left: 0,
        event: Event::None,
        compact: true,
        no_peer_id: false,
        numwant: None,
    };
    for param in params(query)? {
        let (key, value, offset) = param;
        match key {
            b"info_hash" => {
                info_hash = Some(InfoHash::from_bytes(decode_20(value, offset, "info_hash")?));
            }
            b"peer_id" => peer_id = Some(PeerId(decode_20(value, offset, "peer_id")?)),
            b"port" => {
                let n = parse_u64(value, "port")?;
                port = Some(u16::try_from(n).map_err(|_| TrackerError::BadNumber("port"))?);
            }
            b"uploaded" => out.uploaded = parse_u64(value, "uploaded")?,
            b"downloaded" => out.downloaded = parse_u64(value, "downloaded")?,
            b"left" => left = Some(parse_u64(value, "left")?),
            b"event" => out.event = parse_event(value)?,
            b"compact" => out.compact = value != b"0",
            b"no_peer_id" => out.no_peer_id = value != b"0",
            b"numwant" => out.numwant = parse_numwant(value)?,
            _ => {}
        }
    }
    out.info_hash = info_hash.ok_or(TrackerError::MissingParam("info_hash"))?;
    out.peer_id = peer_id.ok_or(TrackerError::MissingParam("peer_id"))?;
    out.port = port.ok_or(TrackerError::MissingParam("port"))?;
    out.left = left.ok_or(TrackerError::MissingParam("left"))?;
    Ok(out)
}

/// Parses the query of a scrape: the info-hashes it names, in order, duplicates kept. An empty
/// list asks about every swarm, which servers usually refuse.
pub fn parse_scrape_query(query: &[u8]) -> Result<Vec<InfoHash>, TrackerError> {
    let mut hashes = Vec::new();
    for (key, value, offset) in params(query)? {
        if key == b"info_hash" {
            if hashes.len() == HTTP_SCRAPE_INFO_HASHES_MAX {
                return Err(TrackerError::ScrapeCount {
                    count: hashes.len() + 1,
                    max: HTTP_SCRAPE_INFO_HASHES_MAX,
                });
            }
            hashes.push(InfoHash::from_bytes(decode_20(value, offset, "info_hash")?));
        }
    }
    Ok(hashes)
}

/// Appends `bytes` percent-encoded (every byte outside RFC 3986's unreserved set) to `out`:
/// how a client puts an info-hash or peer id in a query.
pub fn percent_encode(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

/// The `key=value` pairs of a query with the value's offset in it; at most
/// [`QUERY_PARAMS_MAX`] of them.
fn params(query: &[u8]) -> Result<impl Iterator<Item = (&[u8], &[u8], usize)>, TrackerError> {
    let count = query
        .split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .count();
    if count > QUERY_PARAMS_MAX {
        return Err(TrackerError::TooManyParams(QUERY_PARAMS_MAX));
    }
    let mut offset = 0;
    Ok(query.split(|&b| b == b'&').filter_map(move |pair| {
        let start = offset;
        offset += pair.len() + 1;
        if pair.is_empty() {
            return None;
        }
        let eq = pair.iter().position(|&b| b == b'=');
        let (key, value) = match eq {
            Some(i) => (pair.get(..i)?, pair.get(i + 1..)?),
            None => (pair, &[][..]),
        };
        Some((key, value, start + eq.map_or(pair.len(), |i| i + 1)))
    }))
}

/// Percent-decodes `value` into exactly 20 bytes. `offset` is where `value` starts in the
/// query, for the error.
fn decode_20(value: &[u8], offset: usize, param: &'static str) -> Result<[u8; 20], TrackerError> {
    let mut out = [0u8; 20];
    let mut len = 0;
    let mut i = 0;
    while let Some(&b) = value.get(i) {
        let byte = if b == b'%' {
            let hi = value.get(i + 1).copied().and_then(hex_value);
            let lo = value.get(i + 2).copied().and_then(hex_value);
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(TrackerError::PercentEncoding { offset: offset + i });
            };
            i += 3;
            hi << 4 | lo
        } else {
            i += 1;
            b
        };
        let slot = out
            .get_mut(len)
            .ok_or(TrackerError::WrongLength { param, len: 21 })?;
        *slot = byte;
        len += 1;
    }
    if len != 20 {
        return Err(TrackerError::WrongLength { param, len });
    }
    Ok(out)
}

fn parse_u64(value: &[u8], param: &'static str) -> Result<u64, TrackerError> {
    if value.is_empty() || value.len() > 20 {
        return Err(TrackerError::BadNumber(param));
    }
    value.iter().try_fold(0u64, |acc, &b| {
        let digit = b.is_ascii_digit().then(|| u64::from(b - b'0'));
        digit
            .and_then(|d| acc.checked_mul(10)?.checked_add(d))
            .ok_or(TrackerError::BadNumber(param))
    })
}

/// `numwant`: digits saturate at `u32::MAX` (a huge number is a big ask, not an error); a
/// negative number asks for the default.
fn parse_numwant(value: &[u8]) -> Result<Option<u32>, TrackerError> {
    if let Some(digits) = value.strip_prefix(b"-") {
        return if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
            Ok(None)
        } else {
            Err(TrackerError::BadNumber("numwant"))
        };
    }
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(TrackerError::BadNumber("numwant"));
    }
    let n = value.iter().fold(0u64, |acc, &b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    });
    Ok(Some(u32::try_from(n).unwrap_or(u32::MAX)))
}

fn parse_event(value: &[u8]) -> Result<Event, TrackerError> {
    match value {
        b"" | b"empty" | b"paused" => Ok(Event::None),
        b"started" => Ok(Event::Started),
        b"completed" => Ok(Event::Completed),
        b"stopped" => Ok(Event::Stopped),
        _ => Err(TrackerError::BadEvent),
    }
}
