//! The extension protocol (BEP 10) and the extensions carried over it: the extension handshake
//! ([`ExtendedHandshake`]), metadata exchange (BEP 9, [`MetadataMessage`]) and peer exchange
//! (BEP 11, [`PexMessage`]).
//!
//! These types parse the payload of a [`Message::Extended`](crate::Message::Extended) (the
//! bytes after the extended id) and build one. Which extended id means which extension is the
//! engine's business: the ids are chosen by each receiver in its handshake's `m` dictionary.
//! Bencoded parts are decoded with [`Limits::MESSAGE`](bitswarm_bencode::Limits::MESSAGE).

mod handshake;
mod metadata;
mod pex;

use bitswarm_bencode::{Dict, Limits, Value};

use crate::error::WireError;

pub use handshake::{ExtendedHandshake, CLIENT_NAME_LEN_MAX};
pub use metadata::{MetadataMessage, METADATA_PIECE_LEN};
pub use pex::{PexFlags, PexMessage, PEX_PEERS_MAX};

/// The extended id of the extension handshake; every other id is negotiated.
pub const HANDSHAKE_ID: u8 = 0;
/// The name of the metadata exchange extension (BEP 9) in the `m` dictionary.
pub const UT_METADATA: &str = "ut_metadata";
/// The name of the peer exchange extension (BEP 11) in the `m` dictionary.
pub const UT_PEX: &str = "ut_pex";

/// Decodes a whole bencoded payload and checks it is a dictionary.
fn decode_dict(payload: &[u8]) -> Result<Value<'_>, WireError> {
    let value = bitswarm_bencode::decode_with(payload, &Limits::MESSAGE)?;
    as_dict(&value)?;
    Ok(value)
}

fn as_dict<'v, 'a>(value: &'v Value<'a>) -> Result<&'v Dict<'a>, WireError> {
    value.as_dict().ok_or(WireError::NotADictionary {
        found: value.kind_name(),
    })
}

/// An integer field that must be present and fit `T`.
fn required_int<T: TryFrom<i64>>(dict: &Dict<'_>, field: &'static str) -> Result<T, WireError> {
    let value = dict
        .get(field.as_bytes())
        .ok_or(WireError::MissingField { field })?;
    value
        .as_int()
        .and_then(|n| T::try_from(n).ok())
        .ok_or(WireError::BadField { field })
}

/// A byte-string field, `None` when absent; present but not a byte string is an error.
fn optional_bytes<'a>(dict: &Dict<'a>, field: &'static str) -> Result<Option<&'a [u8]>, WireError> {
    match dict.get(field.as_bytes()) {
        None => Ok(None),
        Some(value) => value
            .as_bytes()
            .map(Some)
            .ok_or(WireError::BadField { field }),
    }
}
