//! The one error type of this crate: every way a tracker message, an access list or a
//! tracker's answer can be malformed, each a variant tests can match on.

use bitswarm_bencode::DecodeError;

/// Why a tracker message (UDP packet, HTTP request or response) or an access list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackerError {
    /// A UDP packet shorter than its action's fixed layout.
    #[error("packet of {len} bytes is shorter than the {need} its layout needs")]
    PacketTooShort {
        /// Bytes received.
        len: usize,
        /// Bytes the layout needs.
        need: usize,
    },
    /// A UDP packet longer than any request we accept.
    #[error("packet of {len} bytes is longer than the {max} allowed")]
    PacketTooLong {
        /// Bytes received.
        len: usize,
        /// Most bytes allowed.
        max: usize,
    },
    /// A connect request without the BEP 15 protocol id.
    #[error("connect request without the protocol id")]
    BadProtocolId,
    /// A UDP action number this protocol does not define.
    #[error("unknown action {0}")]
    UnknownAction(u32),
    /// A UDP announce with an event number outside 0..=3.
    #[error("unknown event {0}")]
    UnknownEvent(u32),
    /// A scrape naming no info-hash or more than the bound.
    #[error("scrape names {count} info-hashes; 1 to {max} are allowed")]
    ScrapeCount {
        /// Info-hashes named.
        count: usize,
        /// The bound.
        max: usize,
    },
    /// A scrape whose info-hash list is not a whole number of 20-byte hashes.
    #[error("scrape info-hash list is not a multiple of 20 bytes")]
    ScrapeLength,
    /// An HTTP query lacks a parameter the request needs.
    #[error("missing parameter {0}")]
    MissingParam(&'static str),
    /// An HTTP query has a `%` not followed by two hexadecimal digits.
    #[error("bad percent-encoding at byte {offset}")]
    PercentEncoding {
        /// Offset of the `%` in the query.
        offset: usize,
    },
    /// A binary HTTP parameter (info-hash, peer id) that does not decode to 20 bytes.
    #[error("{param} must be 20 bytes, not {len}")]
    WrongLength {
        /// The parameter.
        param: &'static str,
        /// Its decoded length (counting stops just past 20).
        len: usize,
    },
    /// A numeric HTTP parameter that is not a number in its range.
    #[error("{0} is not a valid number")]
    BadNumber(&'static str),
    /// An HTTP `event` other than started, completed, stopped or empty.
    #[error("unknown event")]
    BadEvent,
    /// An HTTP query with more parameters than the bound.
    #[error("more than {0} query parameters")]
    TooManyParams(usize),
    /// An HTTP request head longer than the bound.
    #[error("request head longer than {0} bytes")]
    HeadTooLarge(usize),
    /// An HTTP request line that is not `METHOD TARGET HTTP/1.x`.
    #[error("malformed request line")]
    RequestLine,
    /// An HTTP header line without a colon or with bytes HTTP forbids.
    #[error("malformed header line")]
    HeaderLine,
    /// More HTTP headers than the bound.
    #[error("more than {0} headers")]
    TooManyHeaders(usize),
    /// A request with a body (trackers take none) or an unreadable `Content-Length`.
    #[error("request bodies are not accepted")]
    RequestBody,
    /// A line of an access list that is not a 40-digit hexadecimal info-hash.
    #[error("access list line {line}: not a 40-digit hexadecimal info-hash")]
    AccessListLine {
        /// 1-based line number.
        line: usize,
    },
    /// A tracker response that is not valid bencode.
    #[error("response is not bencode: {0}")]
    Bencode(#[from] DecodeError),
    /// A tracker response that lacks a field or has it with the wrong type.
    #[error("response field {0} missing or malformed")]
    ResponseField(&'static str),
    /// A UDP response whose transaction id is not the request's.
    #[error("response transaction id does not match the request")]
    TransactionMismatch,
}
