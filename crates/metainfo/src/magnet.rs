//! Magnet links (BEP 9 `magnet:?xt=urn:btih:…`): a bounded parser that keeps what it does not
//! understand, and an emitter whose output parses back to the same [`MagnetLink`].

use std::fmt::{self, Write as _};
use std::ops::RangeInclusive;

use crate::error::MetainfoError;
use crate::info_hash::{hex_value, InfoHash};

/// Longest magnet link accepted, in bytes.
pub const MAGNET_LEN_MAX: usize = 64 << 10;
/// Most `key=value` parameters accepted in one magnet link.
pub const MAGNET_PARAMS_MAX: usize = 1024;

/// A parsed magnet link.
///
/// Parameters: `xt` (`urn:btih:` as 40 hex or 32 base32 characters; `urn:btmh:` kept as
/// hex), `dn`, `tr` (also `tr.1`, `tr.2`, …), `ws`, `x.pe`, `xl`, `so`. Anything else — and
/// repeats of single-valued parameters — lands in `extra`, in order, so that nothing is lost
/// when the link is emitted again.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MagnetLink {
    /// The v1 info-hash (`xt=urn:btih:`). Always `Some` in a parsed link.
    pub info_hash: Option<InfoHash>,
    /// The v2 multihash (`xt=urn:btmh:`), lowercase hex including the `1220` prefix.
    pub info_hash_v2: Option<String>,
    /// `dn`: a name to show until the metadata arrives (not sanitised: not a path).
    pub display_name: Option<String>,
    /// `tr` (and `tr.N`): tracker URLs in the order given.
    pub trackers: Vec<String>,
    /// `ws`: web seed URLs (BEP 19).
    pub web_seeds: Vec<String>,
    /// `x.pe`: peer addresses (`host:port`) to try directly.
    pub peers: Vec<String>,
    /// `xl`: the exact length of the torrent's content, in bytes.
    pub exact_length: Option<u64>,
    /// `so` (BEP 53): file indices to download, as inclusive ranges.
    pub select_only: Vec<RangeInclusive<u32>>,
    /// Unrecognised parameters (percent-decoded), in order.
    pub extra: Vec<(String, String)>,
}

impl MagnetLink {
    /// A link with only an info-hash.
    #[must_use]
    pub fn new(info_hash: InfoHash) -> Self {
        Self {
            info_hash: Some(info_hash),
            ..Self::default()
        }
    }

    /// Parses a magnet link (surrounding whitespace ignored, `magnet:` in any case). A link
    /// with only a v2 info-hash is [`MetainfoError::MagnetV2Unsupported`].
    pub fn parse(link: &str) -> Result<Self, MetainfoError> {
        if link.len() > MAGNET_LEN_MAX {
            return Err(MetainfoError::MagnetTooLong {
                len: link.len(),
                max: MAGNET_LEN_MAX,
            });
        }
        let trimmed = link.trim_start();
        let lead = link.len() - trimmed.len();
        let trimmed = trimmed.trim_end();
        let query = trimmed
            .get(..8)
            .filter(|p| p.eq_ignore_ascii_case("magnet:?"))
            .and_then(|_| trimmed.get(8..))
            .ok_or(MetainfoError::MagnetNotMagnet)?;
        let mut out = Self::default();
        let mut offset = lead + 8;
        let mut params = 0usize;
        for segment in query.split('&') {
            let segment_offset = offset;
            offset += segment.len() + 1;
            if segment.is_empty() {
                continue;
            }
            params += 1;
            if params > MAGNET_PARAMS_MAX {
                return Err(MetainfoError::MagnetTooManyParams {
                    max: MAGNET_PARAMS_MAX,
                });
            }
            let (raw_key, raw_value) = segment.split_once('=').unwrap_or((segment, ""));
            let key = percent_decode(raw_key, segment_offset, None)?;
            let value = percent_decode(raw_value, segment_offset + raw_key.len() + 1, Some(&key))?;
            out.apply(key, value)?;
        }
        if out.info_hash.is_none() {
            return Err(if out.info_hash_v2.is_some() {
                MetainfoError::MagnetV2Unsupported
            } else {
                MetainfoError::MagnetNoInfoHash
            });
        }
        Ok(out)
    }

    /// Files selected by `so`, if the link has one: whether file `index` is wanted.
    #[must_use]
    pub fn selects(&self, index: u32) -> bool {
        self.select_only.is_empty() || self.select_only.iter().any(|r| r.contains(&index))
    }

    /// Bytes that `&key=value` adds to the emitted link.
    pub(crate) fn emitted_param_len(key: &str, value: &str) -> usize {
        let encoded_len =
            |s: &str| -> usize { s.bytes().map(|b| if is_unescaped(b) { 1 } else { 3 }).sum() };
        2 + encoded_len(key) + encoded_len(value)
    }

    fn apply(&mut self, key: String, value: String) -> Result<(), MetainfoError> {
        match key.as_str() {
            k if is_numbered(k, "xt") => return self.apply_xt(key, value),
            "dn" if self.display_name.is_none() => self.display_name = Some(value),
            k if is_numbered(k, "tr") => self.trackers.push(value),
            "ws" => self.web_seeds.push(value),
            "x.pe" => self.peers.push(value),
            "xl" if self.exact_length.is_none() => {
                let n = parse_decimal(&value)
                    .ok_or(MetainfoError::MagnetInvalidNumber { key: "xl" })?;
                self.exact_length = Some(n);
            }
            "so" => self.select_only.extend(parse_select_only(&value)?),
            _ => self.extra.push((key, value)),
        }
        Ok(())
    }

    fn apply_xt(&mut self, key: String, value: String) -> Result<(), MetainfoError> {
        if let Some(hash) = strip_prefix_ci(&value, "urn:btih:") {
            let hash: InfoHash = hash.parse()?;
            match self.info_hash {
                None => self.info_hash = Some(hash),
                Some(first) if first == hash => {}
                Some(_) => self.extra.push((key, value)),
            }
        } else if let Some(multihash) = strip_prefix_ci(&value, "urn:btmh:") {
            let multihash = parse_v2_multihash(multihash)?;
            match &self.info_hash_v2 {
                None => self.info_hash_v2 = Some(multihash),
                Some(first) if *first == multihash => {}
                Some(_) => self.extra.push((key, value)),
            }
        } else {
            self.extra.push((key, value));
        }
        Ok(())
    }
}

impl fmt::Display for MagnetLink {
    /// Emits the link: `xt`, `dn`, `xl`, `tr`…, `ws`…, `x.pe`…, `so`, then the extra
    /// parameters, percent-encoding what needs it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("magnet:?")?;
        let mut params = Params { f, first: true };
        if let Some(h) = &self.info_hash {
            params.raw("xt", &format!("urn:btih:{}", h.to_hex()))?;
        }
        if let Some(v2) = &self.info_hash_v2 {
            params.encoded("xt", &format!("urn:btmh:{v2}"))?;
        }
        if let Some(dn) = &self.display_name {
            params.encoded("dn", dn)?;
        }
        if let Some(xl) = self.exact_length {
            params.raw("xl", &xl.to_string())?;
        }
        for (key, values) in [
            ("tr", &self.trackers),
            ("ws", &self.web_seeds),
            ("x.pe", &self.peers),
        ] {
            for value in values {
                params.encoded(key, value)?;
            }
        }
        if !self.select_only.is_empty() {
            params.raw("so", &format_select_only(&self.select_only))?;
        }
        for (key, value) in &self.extra {
            params.encoded(key, value)?;
        }
        Ok(())
    }
}

impl std::str::FromStr for MagnetLink {
    type Err = MetainfoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Writes `key=value` pairs separated by `&`.
struct Params<'a, 'b> {
    f: &'a mut fmt::Formatter<'b>,
    first: bool,
}

impl Params<'_, '_> {
    fn raw(&mut self, key: &str, value: &str) -> fmt::Result {
        self.separator()?;
        write!(self.f, "{key}={value}")
    }

    fn encoded(&mut self, key: &str, value: &str) -> fmt::Result {
        self.separator()?;
        percent_encode(self.f, key)?;
        self.f.write_char('=')?;
        percent_encode(self.f, value)
    }

    fn separator(&mut self) -> fmt::Result {
        if !std::mem::take(&mut self.first) {
            self.f.write_char('&')?;
        }
        Ok(())
    }
}

/// Characters written as they are; everything else is `%XX`. Excludes `&`, `=`, `+`, `#`,
/// `%` and `;`, which delimit or change meaning inside a query.
fn is_unescaped(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~:/@!$'()*,?".contains(&b)
}

fn percent_encode(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    for &b in s.as_bytes() {
        if is_unescaped(b) {
            f.write_char(char::from(b))?;
        } else {
            write!(f, "%{b:02X}")?;
        }
    }
    Ok(())
}

/// Percent-decodes `s` (`+` is a space, as in form encoding). `offset` is where `s` starts in
/// the link, for error positions; `key` names the parameter for UTF-8 errors (`None` while
/// decoding the key itself).
fn percent_decode(s: &str, offset: usize, key: Option<&str>) -> Result<String, MetainfoError> {
    if !s.contains(['%', '+']) {
        return Ok(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_value);
                let lo = bytes.get(i + 2).copied().and_then(hex_value);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(MetainfoError::MagnetBadPercentEncoding { offset: offset + i });
                };
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|e| MetainfoError::MagnetInvalidUtf8 {
        key: key.map_or_else(
            || String::from_utf8_lossy(e.as_bytes()).into_owned(),
            str::to_owned,
        ),
    })
}

/// `key` or `key.<digits>` (e.g. `tr.1`).
fn is_numbered(k: &str, base: &str) -> bool {
    match k.strip_prefix(base) {
        Some("") => true,
        Some(rest) => rest
            .strip_prefix('.')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
        None => false,
    }
}

fn strip_prefix_ci<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn parse_decimal<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A v2 info-hash multihash: `1220` (SHA-256, 32 bytes) and 64 hex digits; lowercased.
fn parse_v2_multihash(s: &str) -> Result<String, MetainfoError> {
    let valid =
        s.len() == 68 && s.get(..4) == Some("1220") && s.bytes().all(|b| hex_value(b).is_some());
    if valid {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(MetainfoError::MagnetInvalidV2Hash)
    }
}

/// `0,2,4-6` → `[0..=0, 2..=2, 4..=6]`; an empty value selects nothing extra.
fn parse_select_only(s: &str) -> Result<Vec<RangeInclusive<u32>>, MetainfoError> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|item| {
            let (a, b) = item.split_once('-').unwrap_or((item, item));
            match (parse_decimal::<u32>(a), parse_decimal::<u32>(b)) {
                (Some(a), Some(b)) if a <= b => Ok(a..=b),
                _ => Err(MetainfoError::MagnetInvalidSelectOnly),
            }
        })
        .collect()
}

fn format_select_only(ranges: &[RangeInclusive<u32>]) -> String {
    let mut s = String::new();
    for (i, r) in ranges.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        if r.start() == r.end() {
            let _ = write!(s, "{}", r.start());
        } else {
            let _ = write!(s, "{}-{}", r.start(), r.end());
        }
    }
    s
}
