//! The one error type of torrent creation: every way a scan, a hash run or the options can fail.

use std::path::PathBuf;

/// Why a torrent could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// Reading a file or directory failed (missing, unreadable, broken symbolic link, ...).
    #[error("cannot read {}", path.display())]
    Io {
        /// The file or directory being read.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The input holds no data: a directory without files, or only empty files.
    #[error("{}: nothing to put in a torrent (no files, or only empty ones)", path.display())]
    EmptyInput {
        /// The root given to [`scan`](crate::scan) or [`create_torrent`](crate::create_torrent).
        path: PathBuf,
    },
    /// The cancel flag was set before hashing finished.
    #[error("torrent creation cancelled")]
    Cancelled,
    /// A file's size differs from what the scan saw: it changed while being hashed.
    #[error("{} changed size while the torrent was being made", path.display())]
    FileChanged {
        /// The file that changed.
        path: PathBuf,
    },
    /// The data needs more pieces than a torrent can count (`u32`), or its size does not fit
    /// a bencode integer.
    #[error("{total_length} bytes is too large for pieces of {piece_length} bytes")]
    TooLarge {
        /// Total length of all files.
        total_length: u64,
        /// The piece length in use.
        piece_length: u32,
    },
    /// A file or directory name is not valid UTF-8, which a torrent's `path` cannot carry.
    #[error("{}: file name is not valid UTF-8; rename it to put it in a torrent", path.display())]
    NonUtf8Path {
        /// The offending path.
        path: PathBuf,
    },
    /// Something that is neither a regular file nor a directory (a FIFO, socket or device).
    #[error("{}: not a regular file or directory", path.display())]
    NotRegularFile {
        /// The offending path.
        path: PathBuf,
    },
    /// A symbolic link leads back to a directory that contains it.
    #[error("{}: symbolic link loop (a directory that contains itself)", path.display())]
    SymlinkLoop {
        /// The link that closes the loop.
        path: PathBuf,
    },
    /// An explicit piece length that is not a power of two in the allowed range.
    #[error(
        "piece length {piece_length} is not a power of two between {} and {}",
        crate::PIECE_LENGTH_MIN,
        crate::PIECE_LENGTH_MAX
    )]
    InvalidPieceLength {
        /// The rejected value.
        piece_length: u32,
    },
    /// A torrent name that is empty, `.`, `..` or contains `/` or a NUL byte.
    #[error("{name:?} cannot be a torrent name")]
    InvalidName {
        /// The rejected name.
        name: String,
    },
}

impl CreateError {
    /// An [`CreateError::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
