//! The crate's one error enum (what makes a torrent or magnet link unusable) and the
//! [`Warning`]s for what was wrong but tolerated.

use std::fmt;

use bitswarm_bencode::DecodeError;

/// Why a `.torrent` file, an info dictionary, an info-hash or a magnet link was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetainfoError {
    /// The input is not valid bencode (or exceeds the decoder's bounds).
    #[error("metainfo: {0}")]
    Bencode(#[from] DecodeError),
    /// A required field is absent.
    #[error("metainfo: required field `{field}` is missing")]
    MissingField {
        /// The field's key (dotted for nested fields, e.g. `info.files[].length`).
        field: &'static str,
    },
    /// A field has the wrong bencode type.
    #[error("metainfo: field `{field}` should be {expected}")]
    WrongType {
        /// The field's key.
        field: &'static str,
        /// The expected kind of value.
        expected: &'static str,
    },
    /// `piece length` is zero, negative or larger than [`PIECE_LENGTH_MAX`](crate::PIECE_LENGTH_MAX).
    #[error("metainfo: piece length {piece_length} is outside 1 ..= {max}")]
    InvalidPieceLength {
        /// The declared piece length.
        piece_length: i64,
        /// The largest piece length accepted.
        max: u32,
    },
    /// `pieces` is not a whole number of 20-byte SHA-1 hashes.
    #[error("metainfo: `pieces` is {len} bytes, not a multiple of 20")]
    PiecesNotMultipleOf20 {
        /// Length of the `pieces` string.
        len: usize,
    },
    /// The number of piece hashes does not match the total length and piece length.
    #[error(
        "metainfo: {total_length} bytes in pieces of {piece_length} need {expected_pieces} \
         piece hashes, but `pieces` holds {actual_pieces}"
    )]
    LengthMismatch {
        /// Sum of all file lengths.
        total_length: u64,
        /// The piece length.
        piece_length: u32,
        /// `ceil(total_length / piece_length)`.
        expected_pieces: u64,
        /// Hashes present in `pieces`.
        actual_pieces: usize,
    },
    /// A file length is negative.
    #[error("metainfo: `{field}` is negative ({value})")]
    NegativeLength {
        /// The field's key.
        field: &'static str,
        /// The value found.
        value: i64,
    },
    /// The file lengths add up to more than 2^64 - 1 bytes.
    #[error("metainfo: total length overflows 64 bits")]
    TotalLengthOverflow,
    /// The torrent has no files or no bytes at all.
    #[error("metainfo: the torrent has no data (no files, or all files are empty)")]
    EmptyTorrent,
    /// The info dictionary has both `length` (single-file) and `files` (multi-file).
    #[error("metainfo: info has both `length` and `files`; the layout is ambiguous")]
    AmbiguousLayout,
    /// A BitTorrent v2-only info dictionary (`meta version` without v1 `pieces`): recognised,
    /// but v2 is not supported yet. Hybrid v1+v2 torrents parse as v1.
    #[error("metainfo: a BitTorrent v2-only torrent; v2 is not supported yet")]
    V2OnlyUnsupported,
    /// A hex info-hash is not 40 hexadecimal digits.
    #[error("info-hash: not 40 hexadecimal digits")]
    InvalidHex,
    /// A base32 info-hash is not 32 characters of the RFC 4648 alphabet.
    #[error("info-hash: not 32 base32 characters")]
    InvalidBase32,
    /// An info-hash string is neither 40 (hex) nor 32 (base32) characters long.
    #[error("info-hash: {len} characters, expected 40 (hex) or 32 (base32)")]
    InvalidInfoHashLength {
        /// Length of the string, in bytes.
        len: usize,
    },
    /// The string does not start with `magnet:?`.
    #[error("magnet: not a magnet link (no `magnet:?` prefix)")]
    MagnetNotMagnet,
    /// The magnet link is longer than [`MAGNET_LEN_MAX`](crate::MAGNET_LEN_MAX).
    #[error("magnet: {len} bytes, more than the limit of {max}")]
    MagnetTooLong {
        /// Length of the link.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The magnet link has more than [`MAGNET_PARAMS_MAX`](crate::MAGNET_PARAMS_MAX) parameters.
    #[error("magnet: more than {max} parameters")]
    MagnetTooManyParams {
        /// The limit.
        max: usize,
    },
    /// A `%` not followed by two hexadecimal digits.
    #[error("magnet: bad percent-encoding at byte {offset}")]
    MagnetBadPercentEncoding {
        /// Offset of the `%` in the link.
        offset: usize,
    },
    /// A key or value that percent-decodes to bytes that are not UTF-8.
    #[error("magnet: parameter `{key}` is not UTF-8 once decoded")]
    MagnetInvalidUtf8 {
        /// The parameter's key (lossily decoded).
        key: String,
    },
    /// `xl` (or another numeric parameter) is not a decimal number.
    #[error("magnet: parameter `{key}` is not a number")]
    MagnetInvalidNumber {
        /// The parameter's key.
        key: &'static str,
    },
    /// `so` is not a comma-separated list of indices and `a-b` ranges.
    #[error("magnet: `so` is not a list of file indices and ranges")]
    MagnetInvalidSelectOnly,
    /// A `urn:btmh:` value that is not a hex SHA-256 multihash (`1220` + 64 hex digits).
    #[error("magnet: `urn:btmh:` value is not a hex SHA-256 multihash")]
    MagnetInvalidV2Hash,
    /// No `xt=urn:btih:` (and no `urn:btmh:` either).
    #[error("magnet: no `xt=urn:btih:` info-hash")]
    MagnetNoInfoHash,
    /// Only a v2 info-hash (`urn:btmh:`) is given: recognised, but v2 torrents are not
    /// supported yet.
    #[error("magnet: only a BitTorrent v2 info-hash (urn:btmh); v2 is not supported yet")]
    MagnetV2Unsupported,
}

/// A non-fatal finding while parsing a torrent: the torrent is usable, but something was
/// unusual or had to be fixed. Shown to the user (`bitswarm info`), never silently dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// The info dictionary (or a dictionary inside it) is not in canonical bencode form. The
    /// info-hash is still computed over the bytes as received.
    NonCanonicalInfo {
        /// Whether some dictionary repeats a key (the first occurrence is used).
        duplicate_keys: bool,
    },
    /// A path (or the torrent's name) was unsafe or unportable and was rewritten.
    /// See [`sanitize_component`](crate::sanitize_component) for the rules.
    PathSanitised {
        /// Index of the file, or `None` for the torrent's `name`.
        file_index: Option<usize>,
        /// The path as given (lossy UTF-8, components joined with `/`).
        original: String,
        /// The path as it will be used.
        sanitised: String,
    },
    /// Two files (after sanitising, compared case-insensitively) had the same path, or a
    /// file's path equals another file's directory: this file was renamed.
    DuplicatePathRenamed {
        /// Index of the renamed file.
        file_index: usize,
        /// The colliding path.
        original: String,
        /// The path it was given instead.
        renamed: String,
    },
    /// `piece length` is not a power of two (legal, but unusual).
    PieceLengthNotPowerOfTwo {
        /// The piece length.
        piece_length: u32,
    },
    /// `piece length` is outside the usual 16 KiB ..= 256 MiB.
    PieceLengthUnusual {
        /// The piece length.
        piece_length: u32,
    },
    /// A string field is not valid UTF-8; invalid sequences were replaced with U+FFFD.
    InvalidUtf8 {
        /// The field's key.
        field: &'static str,
    },
    /// An optional field had the wrong type or an unusable value and was ignored.
    FieldIgnored {
        /// The field's key.
        field: &'static str,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// A file has the symlink attribute (`l`) but no usable `symlink path`; it is treated as
    /// a regular file.
    SymlinkWithoutTarget {
        /// Index of the file.
        file_index: usize,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NonCanonicalInfo { duplicate_keys } => {
                write!(f, "info dictionary is not canonical bencode")?;
                if *duplicate_keys {
                    write!(f, " (duplicate keys: the first of each is used)")?;
                }
                write!(f, "; the info-hash covers the bytes as received")
            }
            Self::PathSanitised {
                file_index,
                original,
                sanitised,
            } => {
                match file_index {
                    Some(i) => write!(f, "file {i}: ")?,
                    None => write!(f, "name: ")?,
                }
                write!(f, "unsafe path {original:?} sanitised to {sanitised:?}")
            }
            Self::DuplicatePathRenamed {
                file_index,
                original,
                renamed,
            } => write!(
                f,
                "file {file_index}: path {original:?} collides with another file; renamed to {renamed:?}"
            ),
            Self::PieceLengthNotPowerOfTwo { piece_length } => {
                write!(f, "piece length {piece_length} is not a power of two")
            }
            Self::PieceLengthUnusual { piece_length } => {
                write!(f, "piece length {piece_length} is outside 16 KiB ..= 256 MiB")
            }
            Self::InvalidUtf8 { field } => {
                write!(f, "`{field}` is not valid UTF-8; bad bytes replaced")
            }
            Self::FieldIgnored { field, reason } => write!(f, "`{field}` ignored: {reason}"),
            Self::SymlinkWithoutTarget { file_index } => write!(
                f,
                "file {file_index}: symlink attribute without a usable target; treated as a file"
            ),
        }
    }
}
