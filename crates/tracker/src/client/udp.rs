//! The client's half of the UDP tracker protocol (BEP 15, BEP 41): requests written with the
//! shared emitters of [`crate::udp`], responses read with its parser and then checked against
//! the request they answer (transaction id, action).

use crate::error::TrackerError;
use crate::udp::{AnnounceRequest, Request, Response, TransactionId};

/// Longest BEP 41 URL data (path and query of a `udp://` URL) sent after an announce; a
/// longer one is not sent at all rather than cut (a cut passkey is no passkey). Keeps the
/// request well under a 1500-byte MTU.
pub const URL_DATA_LEN_MAX: usize = 1024;

/// BEP 41 option: end of options.
const OPTION_END: u8 = 0;
/// BEP 41 option: URL data, a length byte then that many bytes.
const OPTION_URL_DATA: u8 = 2;

/// The request a response is expected to answer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Expect {
    /// A connect response.
    Connect,
    /// An announce response.
    Announce,
    /// A scrape response.
    Scrape,
}

/// Appends a connect request.
pub fn emit_connect(out: &mut Vec<u8>, transaction_id: TransactionId) {
    Request::Connect { transaction_id }.emit(out);
}

/// Appends an announce request, then `url_data` (the URL's path and query, BEP 41) as options
/// unless it is empty, just `/`, or longer than [`URL_DATA_LEN_MAX`].
pub fn emit_announce(out: &mut Vec<u8>, request: &AnnounceRequest, url_data: &[u8]) {
    Request::Announce(*request).emit(out);
    if url_data.is_empty() || url_data == b"/" || url_data.len() > URL_DATA_LEN_MAX {
        return;
    }
    for chunk in url_data.chunks(usize::from(u8::MAX)) {
        out.push(OPTION_URL_DATA);
        // A chunk is at most 255 bytes long.
        out.push(u8::try_from(chunk.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(chunk);
    }
    out.push(OPTION_END);
}

/// The transaction id a response carries (bytes 4..8), or `None` if it is shorter than 8
/// bytes: how a client finds which of its requests a datagram answers.
#[must_use]
pub fn response_transaction_id(packet: &[u8]) -> Option<TransactionId> {
    let b: [u8; 4] = packet.get(4..8)?.try_into().ok()?;
    Some(TransactionId(u32::from_be_bytes(b)))
}

/// Parses a response to the request with transaction id `expected`, of kind `expect`; `v6`
/// says whether it came over IPv6 (18-byte peers). An error response is returned as
/// [`Response::Error`] whatever was expected; a response of another action is
/// [`TrackerError::ResponseField`]`("action")`; another transaction id is
/// [`TrackerError::TransactionMismatch`].
pub fn parse_response(
    packet: &[u8],
    expected: TransactionId,
    expect: Expect,
    v6: bool,
) -> Result<Response<'_>, TrackerError> {
    let response = Response::parse(packet, v6)?;
    let (tid, matches) = match response {
        Response::Connect { transaction_id, .. } => (transaction_id, expect == Expect::Connect),
        Response::Announce { transaction_id, .. } => (transaction_id, expect == Expect::Announce),
        Response::Scrape { transaction_id, .. } => (transaction_id, expect == Expect::Scrape),
        Response::Error { transaction_id, .. } => (transaction_id, true),
    };
    if tid != expected {
        return Err(TrackerError::TransactionMismatch);
    }
    if !matches {
        return Err(TrackerError::ResponseField("action"));
    }
    Ok(response)
}
