//! HTTP/1.1 message framing for a tracker `GET`, without I/O: the request bytes, the response
//! head (status, `Content-Length`, `Transfer-Encoding`, `Location`), and chunked bodies.
//! Everything is bounded; anything malformed is an [`AnnounceError`], never a panic.

use bitswarm_tracker::client::url::TrackerUrl;

use crate::error::AnnounceError;

/// Longest response head accepted, in bytes.
pub const HEAD_LEN_MAX: usize = 16 << 10;
/// Most response headers accepted.
pub const HEADERS_MAX: usize = 64;
/// Longest response body accepted: the bencode bound for a tracker message.
pub const BODY_LEN_MAX: usize = 1 << 20;
/// Longest chunk-size line (size, extensions) or trailer line accepted.
const CHUNK_LINE_LEN_MAX: usize = 1024;
/// Most trailer lines after the last chunk.
const TRAILERS_MAX: usize = 32;

/// How the body of a response is delimited.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BodyKind {
    /// No body (1xx, 204, 304).
    Empty,
    /// Exactly this many bytes.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the server closes.
    UntilClose,
}

/// A parsed response head.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Head {
    /// The status code.
    pub status: u16,
    /// How the body is delimited.
    pub body: BodyKind,
    /// The `Location` header, for redirects.
    pub location: Option<String>,
    /// Bytes of the head, blank line included: the body starts here.
    pub len: usize,
}

/// The bytes of `GET url` with a closed connection asked for and no compression.
#[must_use]
pub fn request(url: &TrackerUrl, user_agent: &str) -> Vec<u8> {
    format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {user_agent}\r\n\
         Accept-Encoding: identity\r\nConnection: close\r\n\r\n",
        url.path_and_query(),
        url.host_header()
    )
    .into_bytes()
}

/// Parses the head at the start of `buf`: `Ok(None)` while it is incomplete.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, AnnounceError> {
    let Some(len) = head_end(buf) else {
        if buf.len() > HEAD_LEN_MAX {
            return Err(AnnounceError::HeadTooLarge(HEAD_LEN_MAX));
        }
        return Ok(None);
    };
    if len > HEAD_LEN_MAX {
        return Err(AnnounceError::HeadTooLarge(HEAD_LEN_MAX));
    }
    let text = buf.get(..len).unwrap_or_default();
    let mut lines = text
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status = parse_status_line(lines.next().unwrap_or_default())?;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut location = None;
    let mut count = 0;
    for line in lines.take_while(|l| !l.is_empty()) {
        count += 1;
        if count > HEADERS_MAX {
            return Err(AnnounceError::TooManyHeaders(HEADERS_MAX));
        }
        let (name, value) = split_header(line)?;
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_length(value)?;
            if length.is_some_and(|m| m != n) {
                return Err(AnnounceError::ContentLength);
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = transfer_is_chunked(value)?;
        } else if name.eq_ignore_ascii_case("location") {
            location = Some(value.to_owned());
        }
    }
    let body = if status < 200 || status == 204 || status == 304 {
        BodyKind::Empty
    } else if chunked {
        BodyKind::Chunked
    } else if let Some(n) = length {
        if n > BODY_LEN_MAX {
            return Err(AnnounceError::BodyTooLarge(BODY_LEN_MAX));
        }
        BodyKind::Length(n)
    } else {
        BodyKind::UntilClose
    };
    Ok(Some(Head {
        status,
        body,
        location,
        len,
    }))
}

/// Decodes a chunked body from `raw` (the bytes after the head): `Ok(None)` while the last
/// chunk and its trailers have not all arrived; the decoded body is at most `max` bytes.
pub fn decode_chunked(raw: &[u8], max: usize) -> Result<Option<Vec<u8>>, AnnounceError> {
    let mut body = Vec::new();
    let mut rest = raw;
    loop {
        let Some((line, after)) = take_line(rest)? else {
            return Ok(None);
        };
        let size = parse_chunk_size(line)?;
        rest = after;
        if size == 0 {
            return Ok(skip_trailers(rest)?.map(|()| body));
        }
        if body.len().saturating_add(size) > max {
            return Err(AnnounceError::BodyTooLarge(max));
        }
        let Some(data) = rest.get(..size) else {
            return Ok(None);
        };
        let Some(after) = rest.get(size..) else {
            return Ok(None);
        };
        match after {
            [b'\r', b'\n', tail @ ..] => rest = tail,
            [] | [b'\r'] => return Ok(None),
            _ => return Err(AnnounceError::Chunked),
        }
        body.extend_from_slice(data);
    }
}

/// Whether a status asks to follow `Location`.
#[must_use]
pub fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

fn head_end(buf: &[u8]) -> Option<usize> {
    let window = &buf[..buf.len().min(HEAD_LEN_MAX + 4)];
    window.windows(2).enumerate().find_map(|(i, w)| match w {
        [b'\n', b'\n'] => Some(i + 2),
        [b'\n', b'\r'] if window.get(i + 2) == Some(&b'\n') => Some(i + 3),
        _ => None,
    })
}

fn parse_status_line(line: &[u8]) -> Result<u16, AnnounceError> {
    let line = std::str::from_utf8(line).map_err(|_| AnnounceError::StatusLine)?;
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !matches!(version, "HTTP/1.1" | "HTTP/1.0") || code.len() != 3 {
        return Err(AnnounceError::StatusLine);
    }
    if !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AnnounceError::StatusLine);
    }
    code.parse().map_err(|_| AnnounceError::StatusLine)
}

fn split_header(line: &[u8]) -> Result<(&str, &str), AnnounceError> {
    let line = std::str::from_utf8(line).map_err(|_| AnnounceError::HeaderLine)?;
    let (name, value) = line.split_once(':').ok_or(AnnounceError::HeaderLine)?;
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty()
        || !name.bytes().all(token)
        || value.bytes().any(|b| b.is_ascii_control() && b != b'\t')
    {
        return Err(AnnounceError::HeaderLine);
    }
    Ok((name, value.trim_matches([' ', '\t'])))
}

fn parse_length(value: &str) -> Result<usize, AnnounceError> {
    if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AnnounceError::ContentLength);
    }
    value.parse().map_err(|_| AnnounceError::ContentLength)
}

/// `chunked` as the last (here: only, besides `identity`) coding; any other coding is refused.
fn transfer_is_chunked(value: &str) -> Result<bool, AnnounceError> {
    let mut chunked = false;
    for coding in value.split(',').map(str::trim) {
        if coding.eq_ignore_ascii_case("chunked") {
            chunked = true;
        } else if !coding.eq_ignore_ascii_case("identity") && !coding.is_empty() {
            return Err(AnnounceError::TransferEncoding);
        }
    }
    Ok(chunked)
}

/// A line (without its CRLF) and the bytes after it.
type Line<'a> = (&'a [u8], &'a [u8]);

/// The next CRLF-terminated line and what follows; `Ok(None)` if the CRLF has not arrived.
fn take_line(buf: &[u8]) -> Result<Option<Line<'_>>, AnnounceError> {
    let window = &buf[..buf.len().min(CHUNK_LINE_LEN_MAX + 2)];
    match window.windows(2).position(|w| w == b"\r\n") {
        Some(i) => Ok(buf.get(..i).zip(buf.get(i + 2..))),
        None if buf.len() > CHUNK_LINE_LEN_MAX => Err(AnnounceError::Chunked),
        None => Ok(None),
    }
}

fn parse_chunk_size(line: &[u8]) -> Result<usize, AnnounceError> {
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = digits.trim_ascii();
    if digits.is_empty() || digits.len() > 8 {
        return Err(AnnounceError::Chunked);
    }
    digits.iter().try_fold(0usize, |acc, &b| {
        let d = char::from(b).to_digit(16).ok_or(AnnounceError::Chunked)?;
        Ok(acc * 16 + d as usize)
    })
}

fn skip_trailers(mut rest: &[u8]) -> Result<Option<()>, AnnounceError> {
    for _ in 0..=TRAILERS_MAX {
        let Some((line, after)) = take_line(rest)? else {
            return Ok(None);
        };
        if line.is_empty() {
            return Ok(Some(()));
        }
        rest = after;
    }
    Err(AnnounceError::Chunked)
}
