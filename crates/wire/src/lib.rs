//! The BitTorrent peer wire protocol as pure parse and emit, plus a sans-IO framing codec.
//!
//! - [`Handshake`] / [`HandshakeHead`]: the 68-byte opening, with [`Reserved`] extension bits.
//! - [`Message`]: every BEP 3 message, BEP 5's `port`, BEP 6's fast-extension messages and
//!   BEP 10's `extended` envelope; [`Message::parse`] one frame, [`Message::encode_into`] one.
//! - [`FrameDecoder`]: splits a received byte stream into a handshake then messages, enforcing
//!   [`FrameLimits`] before buffering anything.
//! - [`Bitfield`]: a peer's pieces, validated against the piece count.
//! - [`extended`]: the extension handshake, `ut_metadata` (BEP 9) and `ut_pex` (BEP 11).
//! - [`allowed_fast_set`]: BEP 6's canonical allowed-fast set.
//!
//! **Invariants.** Nothing here performs I/O, reads a clock or uses a global RNG. Parsing never
//! panics, whatever the input, and never allocates more than a named limit allows. Block data
//! is never copied on the receive path: a [`Message::Piece`] holds a [`bytes::Bytes`] slice of
//! the caller's receive buffer, and on the send path [`Message::encode_header_into`] and
//! [`PieceHeader`] write only the 13-byte header so the block can follow by vectored write.
//!
//! **Deliberately absent.** This crate knows nothing of torrents beyond piece counts handed to
//! it, keeps no per-connection state beyond the decoder's phase, and makes no protocol
//! decisions: a message that is well-formed but unwelcome (a `have all` without the fast
//! extension, a piece nobody requested, an unknown id) is passed up for the engine to judge.

mod bitfield;
mod codec;
mod error;
pub mod extended;
mod fast;
mod handshake;
mod message;
mod peer_id;

pub use bitfield::Bitfield;
pub use codec::{Frame, FrameDecoder, FrameLimits, Phase, MESSAGE_LEN_MAX};
pub use error::WireError;
pub use extended::{ExtendedHandshake, MetadataMessage, PexFlags, PexMessage};
pub use fast::{allowed_fast_set, ALLOWED_FAST_SET_LEN_MAX};
pub use handshake::{
    Handshake, HandshakeHead, Reserved, HANDSHAKE_HEAD_LEN, HANDSHAKE_LEN, PROTOCOL,
};
pub use message::{
    id, BlockRef, Message, PieceHeader, BLOCK_LEN_MAX, LENGTH_PREFIX_LEN, PIECE_HEADER_LEN,
};
pub use peer_id::{Client, PeerId, CLIENT_PREFIX, PEER_ID_LEN};
