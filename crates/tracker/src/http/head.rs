//! A small, bounded HTTP/1.x request-head parser and response-head writer: all a tracker
//! needs (GET, a target, keep-alive), with every length and count bounded, so it can sit in
//! front of untrusted sockets and be fuzzed.

use crate::error::TrackerError;

/// Longest request head accepted, request line and headers together.
pub const REQUEST_HEAD_LEN_MAX: usize = 8 * 1024;
/// Most header lines accepted.
pub const HEADERS_MAX: usize = 48;

/// A parsed request head, borrowing from the receive buffer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RequestHead<'a> {
    /// The method, e.g. `GET`.
    pub method: &'a [u8],
    /// The target's path, before any `?`.
    pub path: &'a [u8],
    /// The target's query, after the `?` (empty if none).
    pub query: &'a [u8],
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    /// Bytes of the head, including the blank line that ends it.
    pub len: usize,
}

/// Parses the request head at the start of `buf`: `Ok(None)` if it is not complete yet.
/// Requests with a body are refused ([`TrackerError::RequestBody`]): trackers take none.
pub fn parse_request_head(buf: &[u8]) -> Result<Option<RequestHead<'_>>, TrackerError> {
    let window = buf.get(..REQUEST_HEAD_LEN_MAX).unwrap_or(buf);
    let Some(end) = window.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() >= REQUEST_HEAD_LEN_MAX {
            Err(TrackerError::HeadTooLarge(REQUEST_HEAD_LEN_MAX))
        } else {
            Ok(None)
        };
    };
    let head = window.get(..end).unwrap_or_default();
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = lines.next().ok_or(TrackerError::RequestLine)?;
    let (method, target, http11) = parse_request_line(request_line)?;
    let (path, query) = match target.iter().position(|&b| b == b'?') {
        Some(i) => (
            target.get(..i).unwrap_or_default(),
            target.get(i + 1..).unwrap_or_default(),
        ),
        None => (target, &[][..]),
    };
    let mut keep_alive = http11;
    let mut count = 0;
    for line in lines {
        count += 1;
        if count > HEADERS_MAX {
            return Err(TrackerError::TooManyHeaders(HEADERS_MAX));
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(TrackerError::HeaderLine)?;
        let (name, value) = (line.get(..colon).unwrap_or_default(), line.get(colon + 1..));
        let value = trim(value.unwrap_or_default());
        if name.is_empty() || !name.iter().all(|&b| b.is_ascii_graphic()) {
            return Err(TrackerError::HeaderLine);
        }
        if name.eq_ignore_ascii_case(b"connection") {
            if value.eq_ignore_ascii_case(b"close") {
                keep_alive = false;
            } else if value.eq_ignore_ascii_case(b"keep-alive") {
                keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            || (name.eq_ignore_ascii_case(b"content-length") && value != b"0")
        {
            return Err(TrackerError::RequestBody);
        }
    }
    Ok(Some(RequestHead {
        method,
        path,
        query,
        keep_alive,
        len: end + 4,
    }))
}

/// Appends a response head with a `Content-Length` of `body_len`; the body follows it.
pub fn emit_response_head(
    out: &mut Vec<u8>,
    status: u16,
    content_type: &str,
    body_len: usize,
    keep_alive: bool,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\nContent-Type: ");
    out.extend_from_slice(content_type.as_bytes());
    out.extend_from_slice(b"\r\nContent-Length: ");
    out.extend_from_slice(body_len.to_string().as_bytes());
    out.extend_from_slice(if keep_alive {
        b"\r\nConnection: keep-alive\r\n\r\n".as_slice()
    } else {
        b"\r\nConnection: close\r\n\r\n".as_slice()
    });
}

fn parse_request_line(line: &[u8]) -> Result<(&[u8], &[u8], bool), TrackerError> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TrackerError::RequestLine);
    };
    let http11 = match version {
        b"HTTP/1.1" => true,
        b"HTTP/1.0" => false,
        _ => return Err(TrackerError::RequestLine),
    };
    let token = |s: &[u8]| !s.is_empty() && s.iter().all(|&b| b.is_ascii_graphic());
    if !token(method) || !token(target) {
        return Err(TrackerError::RequestLine);
    }
    Ok((method, target, http11))
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}
