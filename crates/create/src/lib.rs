//! Making v1 .torrent files (BEP 3) fast: scan a file or directory, SHA-1 every piece on all
//! cores, and write the canonical metainfo.
//!
//! [`create_torrent`] is the whole job; [`scan`], [`auto_piece_length`] and [`hash_pieces`]
//! are its steps, public for callers that want them alone. The data of a torrent is the
//! concatenation of its files in [`scan`] order, cut into pieces of one length; pieces span
//! file boundaries (classic v1 layout, no pad files). When the root is a file the torrent is a
//! single-file torrent (`length`); when it is a directory, a multi-file torrent (`files`, each
//! with its `path` relative to the root) named after the directory.
//!
//! Speed is the point of this crate: hashing runs on one worker thread per core, straight
//! from memory maps of the page cache (see [`hash_pieces`]), and SHA-1 is RustCrypto's
//! `sha1`, which picks the SHA-NI instructions at run time where the CPU has them (measured as
//! fast as OpenSSL's SHA-1 on the development machine; `ring` has no SHA-NI path and was ~4×
//! slower). The workspace enables `sha1`'s `asm` feature, which in 0.10.7 changes nothing on
//! x86-64: SHA-NI comes from run-time CPU detection either way.
//!
//! Known limit of hashing from memory maps: if another process *shrinks* a file while its
//! window is being hashed, the kernel kills the process with `SIGBUS` (size changes seen
//! before a window is mapped are a [`CreateError::FileChanged`]). See `map.rs`.
//!
//! Deliberately absent: parsing torrents (that is `bitswarm-metainfo`), v2/hybrid torrents,
//! pad files, writing the output file (the caller owns where and how — e.g. not leaving a
//! half-written file after [`CreateError::Cancelled`]).

mod error;
mod hash;
mod map;
mod piece_length;
mod scan;
mod torrent;

use std::path::Path;
use std::sync::atomic::AtomicBool;

pub use error::CreateError;
pub use hash::{hash_pieces, BATCH_LEN_MIN, MAP_LEN_MIN, MAP_WINDOW_LEN, PROGRESS_INTERVAL};
pub use piece_length::{
    auto_piece_length, check_piece_length, AUTO_PIECE_COUNT_MAX, AUTO_PIECE_LENGTH_MAX,
    PIECE_LENGTH_MAX, PIECE_LENGTH_MIN,
};
pub use scan::{root_name, scan, FileToHash};

/// Everything about a new torrent that is not its data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateOptions {
    /// Piece length in bytes, a power of two in [`PIECE_LENGTH_MIN`] ..= [`PIECE_LENGTH_MAX`];
    /// `None` picks [`auto_piece_length`].
    pub piece_length: Option<u32>,
    /// Tracker tiers (BEP 12). The first tracker of the first non-empty tier becomes
    /// `announce`; `announce-list` (the non-empty tiers) is written when there is more than
    /// one tracker in total.
    pub trackers: Vec<Vec<String>>,
    /// Web seed URLs (BEP 19), written as the `url-list` list when not empty.
    pub web_seeds: Vec<String>,
    /// Sets `private: 1` in the info dictionary (BEP 27).
    pub private: bool,
    /// The `comment` field.
    pub comment: Option<String>,
    /// The `created by` field, e.g. `"bitswarm 0.1.0"`.
    pub created_by: Option<String>,
    /// The `creation date` field (Unix seconds); `None` omits it, which makes the output
    /// depend only on the data and the other options.
    pub creation_date: Option<i64>,
    /// The torrent's `name`; default: the file or directory name of the root.
    pub name: Option<String>,
    /// Hashing threads; 0 = one per core.
    pub threads: usize,
    /// The `source` field of the info dictionary (changes the info-hash; used by private
    /// trackers to tell cross-seeded copies apart).
    pub source: Option<String>,
}

/// Hashing progress, reported by [`create_torrent`] and [`hash_pieces`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes read and hashed so far.
    pub bytes_hashed: u64,
    /// Total bytes to hash.
    pub total: u64,
}

/// A finished torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedTorrent {
    /// The whole .torrent file, canonical bencode.
    pub bytes: Vec<u8>,
    /// SHA-1 of the encoded `info` dictionary.
    pub info_hash: [u8; 20],
    /// Piece length in bytes.
    pub piece_length: u32,
    /// Number of pieces.
    pub piece_count: u32,
    /// Total length of the data in bytes.
    pub total_length: u64,
    /// The torrent's `name`.
    pub name: String,
    /// Number of files (1 for a single-file torrent; empty files count).
    pub file_count: usize,
}

impl CreatedTorrent {
    /// The info-hash as 40 lowercase hex digits, as magnet links and trackers show it.
    #[must_use]
    pub fn info_hash_hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        self.info_hash
            .iter()
            .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]])
            .map(char::from)
            .collect()
    }
}

/// Makes a v1 torrent of `root` (a file or a directory).
///
/// Scans with [`scan`], picks the piece length (explicit or [`auto_piece_length`]), hashes
/// with [`hash_pieces`] on `opts.threads` threads and encodes the metainfo. `on_progress` is
/// called from the calling thread about every [`PROGRESS_INTERVAL`]; setting `cancel` makes
/// it return [`CreateError::Cancelled`] once each worker finishes its current segment (at
/// most [`MAP_WINDOW_LEN`] bytes, a few milliseconds). Input with no data (no files, or only
/// empty files) is a [`CreateError::EmptyInput`].
pub fn create_torrent(
    root: &Path,
    opts: &CreateOptions,
    on_progress: &(dyn Fn(Progress) + Sync),
    cancel: &AtomicBool,
) -> Result<CreatedTorrent, CreateError> {
    let name = match &opts.name {
        Some(name) => check_name(name)?,
        None => root_name(root)?,
    };
    let files = scan(root)?;
    let single_file = std::fs::metadata(root)
        .map_err(|e| CreateError::Io {
            path: root.to_path_buf(),
            source: e,
        })?
        .is_file();
    let total_length: u64 = files.iter().map(|f| f.length).sum();
    if total_length == 0 {
        return Err(CreateError::EmptyInput {
            path: root.to_path_buf(),
        });
    }
    let piece_length = match opts.piece_length {
        Some(p) => check_piece_length(p)?,
        None => auto_piece_length(total_length),
    };
    let piece_count =
        u32::try_from(total_length.div_ceil(u64::from(piece_length))).map_err(|_| {
            CreateError::TooLarge {
                total_length,
                piece_length,
            }
        })?;
    let pieces = hash_pieces(&files, piece_length, opts.threads, on_progress, cancel)?;
    let parts = torrent::InfoParts {
        name: &name,
        files: &files,
        single_file,
        piece_length,
        pieces: &pieces,
    };
    let (bytes, info_hash) = torrent::encode(&parts, opts)?;
    Ok(CreatedTorrent {
        bytes,
        info_hash,
        piece_length,
        piece_count,
        total_length,
        name,
        file_count: files.len(),
    })
}

/// Accepts a name unless it is empty, `.`, `..`, or holds `/` or NUL.
fn check_name(name: &str) -> Result<String, CreateError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        Err(CreateError::InvalidName {
            name: name.to_owned(),
        })
    } else {
        Ok(name.to_owned())
    }
}
