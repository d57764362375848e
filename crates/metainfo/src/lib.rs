//! BitTorrent v1 metainfo: `.torrent` files ([`Metainfo`]), bare info dictionaries received
//! through BEP 9 ([`Info::from_bytes`]), magnet links ([`MagnetLink`]), the [`InfoHash`], and
//! piece geometry (which file bytes each piece covers).
//!
//! # What is validated, what is tolerated
//!
//! Decoding uses [`bitswarm_bencode::Limits::DEFAULT`]. The info-hash is always SHA-1 over the
//! info dictionary's bytes *exactly as received* ([`bitswarm_bencode::Value::raw`]), even when
//! they are not canonical bencode (that is accepted, with a [`Warning`]).
//!
//! Rejected ([`MetainfoError`]): a piece length of 0, negative or above [`PIECE_LENGTH_MAX`];
//! `pieces` not a multiple of 20 bytes or not exactly `ceil(total / piece_length)` hashes;
//! negative file lengths; lengths whose sum overflows 64 bits; no data at all; both `length`
//! and `files`; v2-only torrents (hybrid v1+v2 torrents are read as v1).
//!
//! Tolerated with a [`Warning`]: a piece length that is not a power of two or outside
//! 16 KiB ..= 256 MiB; non-canonical info dictionaries; names that are not UTF-8 (replaced
//! lossily, unless a valid `name.utf-8` / `path.utf-8` is present, which is preferred);
//! optional fields of the wrong type (ignored); unsafe paths (sanitised, below).
//!
//! # Path safety: sanitise, do not reject
//!
//! A torrent's file names are attacker-controlled, so every path component — and the `name`
//! itself — goes through [`sanitize_component`]: separators (`/`, `\`), `:` (drive prefixes,
//! NTFS streams), NUL and control characters become `_`; `""`, `.` and `..` are dropped;
//! Windows device names (`CON`, `NUL.txt`, `com1`, …) get a `_` prefix; trailing dots and
//! spaces are trimmed; over-long components are shortened. The rules are the same on every
//! platform, so a torrent's layout does not depend on the OS. This follows libtorrent's choice
//! (sanitise rather than reject), because rejecting would make legitimate torrents with an odd
//! name undownloadable; every change is reported as [`Warning::PathSanitised`].
//!
//! The result: [`FileEntry::relative_path`] is never absolute, never contains `..`, and is
//! never empty, so `download_dir.join(info.file_path(file))` always stays inside
//! `download_dir`. A name with nothing usable left becomes the hex info-hash; a file path with
//! nothing left becomes `_`. Symlink targets (BEP 47) are sanitised the same way and are
//! relative to the torrent's root folder, so they cannot point outside it.
//!
//! Two files that end up with the same path — compared **case-insensitively**, so the layout
//! also works on case-insensitive file systems — or a file whose path is another file's
//! directory, are **disambiguated, not rejected**: the first keeps its path (directories win
//! over files) and later ones become `stem.N.ext` ([`Warning::DuplicatePathRenamed`]). Pad
//! files are never written and are left out of this.
//!
//! # What this crate does not do
//!
//! No I/O (callers pass bytes), no torrent creation, no v2 (`file tree`, `piece layers`) yet,
//! no `httpseeds` (BEP 17). It never touches the file system: path safety here is lexical;
//! the storage layer still opens files without following symlinks it did not create.

mod error;
mod fields;
mod files;
mod geometry;
mod info;
mod info_hash;
mod magnet;
mod metainfo;
mod path_safety;

pub use error::{MetainfoError, Warning};
pub use files::{FileAttr, FileEntry};
pub use geometry::{FileSlice, FileSlices};
pub use info::{Info, PIECE_LENGTH_MAX, PIECE_LENGTH_USUAL_MAX, PIECE_LENGTH_USUAL_MIN};
pub use info_hash::{InfoHash, PieceIndex};
pub use magnet::{MagnetLink, MAGNET_LEN_MAX, MAGNET_PARAMS_MAX};
pub use metainfo::Metainfo;
pub use path_safety::{sanitize_component, sanitize_path, COMPONENT_LEN_MAX};
