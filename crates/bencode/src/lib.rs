//! Bencode, the serialisation format of BitTorrent (BEP 3): a zero-copy decoder with named
//! bounds and the exact byte span of every value, and a canonical encoder.
//!
//! Decoding never panics and never allocates more than the [`Limits`] allow: every malformed
//! input gets a [`DecodeError`] carrying the byte offset where it went wrong. Each decoded
//! [`Value`] remembers the exact bytes it was decoded from ([`Value::raw`]), so the info-hash of
//! a torrent is SHA-1 over the `info` dictionary *as received*, even when those bytes are not in
//! canonical form (unsorted or duplicate keys are accepted by default and reported through
//! [`Dict::is_canonical`]; [`Limits::strict`] rejects them instead).
//!
//! Encoding goes through [`OwnedValue`], whose dictionaries are ordered maps, so every encoding
//! it produces is canonical. The low-level [`encode`] functions let hot paths (tracker
//! responses, peer messages) write bencode straight into a buffer without building a tree.

mod decode;
pub mod encode;
mod error;
mod value;

pub use decode::{decode, decode_prefix, decode_with, Limits};
pub use encode::OwnedValue;
pub use error::DecodeError;
pub use value::{Dict, Kind, Value};

#[cfg(test)]
mod tests;
