//! The one error type of this crate: what was wrong with the input, and at which byte.

/// Why a byte string is not acceptable bencode. Every variant carries the byte offset (from the
/// start of the input) where the problem was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside a value.
    #[error("bencode ends early: a value starting before byte {offset} is incomplete")]
    UnexpectedEof {
        /// Offset of the end of the input.
        offset: usize,
    },
    /// A byte that cannot appear here.
    #[error("bencode: unexpected byte {byte:#04x} at byte {offset}, expected {expected}")]
    UnexpectedByte {
        /// Offset of the byte.
        offset: usize,
        /// The byte found.
        byte: u8,
        /// What the grammar allows here.
        expected: &'static str,
    },
    /// An integer that is empty, has leading zeros, is `-0`, or has a stray sign.
    #[error("bencode: malformed integer at byte {offset}")]
    MalformedInteger {
        /// Offset of the `i` that opens the integer.
        offset: usize,
    },
    /// An integer outside the signed 64-bit range.
    #[error("bencode: integer at byte {offset} does not fit in 64 bits")]
    IntegerOverflow {
        /// Offset of the `i` that opens the integer.
        offset: usize,
    },
    /// A string length with a leading zero or too many digits.
    #[error("bencode: malformed string length at byte {offset}")]
    MalformedLength {
        /// Offset of the first digit of the length.
        offset: usize,
    },
    /// A string length larger than [`Limits::string_len_max`](crate::Limits::string_len_max).
    #[error("bencode: string at byte {offset} is {len} bytes, more than the limit of {max}")]
    StringTooLong {
        /// Offset of the first digit of the length.
        offset: usize,
        /// The declared length.
        len: u64,
        /// The limit in force.
        max: usize,
    },
    /// A string whose declared length runs past the end of the input.
    #[error("bencode: string at byte {offset} claims {len} bytes but the input ends first")]
    LengthPastEnd {
        /// Offset of the first digit of the length.
        offset: usize,
        /// The declared length.
        len: u64,
    },
    /// Lists and dictionaries nested deeper than [`Limits::depth_max`](crate::Limits::depth_max).
    #[error("bencode: nesting deeper than {max} levels at byte {offset}")]
    DepthExceeded {
        /// Offset of the list or dictionary that went too deep.
        offset: usize,
        /// The limit in force.
        max: usize,
    },
    /// More values than [`Limits::items_max`](crate::Limits::items_max).
    #[error("bencode: more than {max} values (at byte {offset})")]
    TooManyItems {
        /// Offset of the first value past the limit.
        offset: usize,
        /// The limit in force.
        max: usize,
    },
    /// The input is longer than [`Limits::input_len_max`](crate::Limits::input_len_max).
    #[error("bencode: input is {len} bytes, more than the limit of {max}")]
    InputTooLarge {
        /// Length of the input.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// Bytes left over after one complete value.
    #[error("bencode: {count} trailing bytes after the value, starting at byte {offset}")]
    TrailingBytes {
        /// Offset of the first extra byte.
        offset: usize,
        /// How many extra bytes there are.
        count: usize,
    },
    /// A dictionary key that sorts before the key preceding it (strict mode only).
    #[error("bencode: dictionary key at byte {offset} is out of order")]
    UnsortedKey {
        /// Offset of the offending key.
        offset: usize,
    },
    /// A dictionary key equal to the key preceding it (strict mode only).
    #[error("bencode: duplicate dictionary key at byte {offset}")]
    DuplicateKey {
        /// Offset of the offending key.
        offset: usize,
    },
}

impl DecodeError {
    /// The byte offset at which the problem was found.
    #[must_use]
    pub fn offset(&self) -> usize {
        match *self {
            Self::UnexpectedEof { offset }
            | Self::UnexpectedByte { offset, .. }
            | Self::MalformedInteger { offset }
            | Self::IntegerOverflow { offset }
            | Self::MalformedLength { offset }
            | Self::StringTooLong { offset, .. }
            | Self::LengthPastEnd { offset, .. }
            | Self::DepthExceeded { offset, .. }
            | Self::TooManyItems { offset, .. }
            | Self::TrailingBytes { offset, .. }
            | Self::UnsortedKey { offset }
            | Self::DuplicateKey { offset } => offset,
            Self::InputTooLarge { .. } => 0,
        }
    }
}
