//! The one error type of this crate: every way a peer's bytes (or a message we were asked to
//! emit) can be unacceptable, as typed variants the engine can match on.

use bitswarm_bencode::DecodeError;

/// Why bytes from a peer are not an acceptable message, or why a message cannot be emitted.
///
/// Every error from [`FrameDecoder`](crate::FrameDecoder) means the byte stream can no longer
/// be framed: the connection must be dropped. Errors from the typed extension helpers
/// ([`ExtendedHandshake`](crate::ExtendedHandshake), [`MetadataMessage`](crate::MetadataMessage),
/// [`PexMessage`](crate::PexMessage)) and from [`Bitfield::from_bytes`](crate::Bitfield::from_bytes)
/// concern one message only; the engine decides whether they are worth a disconnect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The first 20 bytes of a handshake are not `\x13BitTorrent protocol`.
    #[error("handshake does not start with the BitTorrent protocol string")]
    BadProtocol,
    /// A handshake of the wrong size was handed to [`Handshake::parse`](crate::Handshake::parse).
    #[error("handshake is {len} bytes, expected {expected}")]
    HandshakeLength {
        /// Bytes given.
        len: usize,
        /// Bytes a handshake (or its part) has.
        expected: usize,
    },
    /// A message's length prefix is larger than the limit in force (checked before anything
    /// of that size is buffered), or a message to emit does not fit a 32-bit length prefix.
    #[error("message (id {id:?}) of {len} bytes exceeds the limit of {max}")]
    MessageTooLarge {
        /// The message id, when it was known at the time of the check.
        id: Option<u8>,
        /// The length prefix (id byte plus payload).
        len: u64,
        /// The limit in force.
        max: u64,
    },
    /// A known message whose length does not fit its id: a fixed-size message of another size,
    /// a piece message shorter than its 9-byte header, an extended message without its id.
    #[error("message id {id} cannot have length {len}")]
    BadLength {
        /// The message id.
        id: u8,
        /// The length prefix (id byte plus payload).
        len: u32,
    },
    /// An empty frame was handed to [`Message::parse`](crate::Message::parse).
    #[error("empty message frame")]
    EmptyFrame,
    /// A bitfield whose byte length does not match the torrent's piece count.
    #[error("bitfield is {len} bytes, expected {expected} for the piece count")]
    BitfieldLength {
        /// Bytes received.
        len: usize,
        /// Bytes the piece count needs.
        expected: usize,
    },
    /// A bitfield with bits set past the last piece.
    #[error("bitfield has spare bits set past the last piece")]
    BitfieldSpareBits,
    /// A piece index at or past the piece count.
    #[error("piece {piece} is out of range for {piece_count} pieces")]
    PieceOutOfRange {
        /// The index given.
        piece: u32,
        /// The number of pieces.
        piece_count: u32,
    },
    /// An extension message whose bencoded part does not decode.
    #[error("extension message: {0}")]
    Bencode(#[from] DecodeError),
    /// An extension message whose bencoded part is not a dictionary.
    #[error("extension message is a {found}, expected a dictionary")]
    NotADictionary {
        /// The kind of value found.
        found: &'static str,
    },
    /// A required field of an extension message is missing.
    #[error("extension message lacks the required field {field:?}")]
    MissingField {
        /// The field's key.
        field: &'static str,
    },
    /// A field of an extension message has the wrong type or an out-of-range value.
    #[error("extension message field {field:?} has a wrong type or value")]
    BadField {
        /// The field's key.
        field: &'static str,
    },
    /// A `ut_metadata` data message whose block length does not fit its piece and total size.
    #[error("metadata piece {piece} carries {len} bytes, expected {expected}")]
    MetadataBlockLength {
        /// The metadata piece index.
        piece: u32,
        /// Bytes carried.
        len: usize,
        /// Bytes that piece must have.
        expected: usize,
    },
    /// Bytes after the bencoded part of a `ut_metadata` request or reject.
    #[error("metadata {msg_type} message has {count} trailing bytes")]
    MetadataTrailingBytes {
        /// The message type (0 request, 2 reject).
        msg_type: i64,
        /// How many extra bytes.
        count: usize,
    },
    /// A compact peer list whose length is not a multiple of its entry size.
    #[error("compact list {field:?} is {len} bytes, not a multiple of {entry_len}")]
    CompactLength {
        /// The field's key.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// Bytes per entry (6 for IPv4, 18 for IPv6).
        entry_len: usize,
    },
    /// A `ut_pex` list with more entries than [`PEX_PEERS_MAX`](crate::extended::PEX_PEERS_MAX).
    #[error("pex field {field:?} has {count} peers, more than the limit of {max}")]
    TooManyPeers {
        /// The field's key.
        field: &'static str,
        /// Entries in it.
        count: usize,
        /// The limit in force.
        max: usize,
    },
}
