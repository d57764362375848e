//! The crate's one error type: every fallible storage, pool and resume operation returns it.

use std::path::PathBuf;

/// What went wrong in storage. Tests match on variants, never on the message text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A system call on `path` failed (open, create, read, write, sync, stat).
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or folder the call was about.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A file path would leave the download folder (absolute, `..`, a separator inside a
    /// component, an empty path, or a symlink under the root that points outside it).
    #[error("path {} would leave the download folder", path.display())]
    PathEscape {
        /// The offending path, as given (relative to the root) or as resolved.
        path: PathBuf,
    },
    /// A complete piece did not match its expected SHA-1. Nothing of it was recorded as
    /// verified, and none of its buffered blocks were written.
    #[error("piece {piece} failed its hash check")]
    PieceHashFailed {
        /// The piece index.
        piece: u32,
    },
    /// The disk job queue is full (`PoolConfig::job_queue_len_max`); retry after a completion.
    #[error("disk job queue is full")]
    Busy,
    /// The disk pool has shut down and accepts no more jobs.
    #[error("disk pool has shut down")]
    PoolClosed,
    /// A disk thread could not be started.
    #[error("cannot start a disk thread: {0}")]
    ThreadSpawn(#[source] std::io::Error),
    /// The resume database failed.
    #[error("resume database: {0}")]
    Database(#[from] rusqlite::Error),
    /// A resume record exists but cannot be used (a blob of the wrong size, a negative size).
    #[error("resume record for this torrent is corrupt: {what}")]
    CorruptResume {
        /// Which part of the record was wrong.
        what: &'static str,
    },
    /// The layout's piece length is zero.
    #[error("piece length is zero")]
    ZeroPieceLength,
    /// The layout's files add up to zero bytes, or to more than `u64` can hold.
    #[error("torrent length is zero or overflows")]
    BadTotalLength,
    /// The number of piece hashes does not match the total length and piece length.
    #[error("torrent needs {expected} piece hashes, got {got}")]
    PieceCountMismatch {
        /// `ceil(total_length / piece_length)`.
        expected: u64,
        /// How many hashes the layout carried.
        got: usize,
    },
    /// A piece index at or past the piece count.
    #[error("piece {piece} out of range (torrent has {count} pieces)")]
    PieceOutOfRange {
        /// The index asked for.
        piece: u32,
        /// The torrent's piece count.
        count: u32,
    },
    /// A block that is empty or does not fit inside its piece.
    #[error("block {offset}+{len} does not fit piece {piece} of {piece_len} bytes")]
    BlockOutOfRange {
        /// The piece index.
        piece: u32,
        /// The block's offset in the piece.
        offset: u32,
        /// The block's length.
        len: u32,
        /// The piece's length.
        piece_len: u32,
    },
    /// A block partly overlaps a different block already received for the same piece.
    #[error("block at {offset} overlaps another block of piece {piece}")]
    BlockOverlap {
        /// The piece index.
        piece: u32,
        /// The rejected block's offset in the piece.
        offset: u32,
    },
    /// A file index at or past the layout's file count.
    #[error("file {file} out of range")]
    FileOutOfRange {
        /// The index asked for.
        file: usize,
    },
}

impl StorageError {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// Whether this is an I/O error meaning "the data is not there" (missing file, short
    /// file): a recheck treats such a piece as absent rather than failing.
    #[must_use]
    pub fn is_missing_data(&self) -> bool {
        matches!(self, Self::Io { source, .. } if matches!(
            source.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::UnexpectedEof
        ))
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
