//! The info dictionary (BEP 3, with BEP 27 `private` and BEP 47 file attributes): validation
//! of piece length, piece hashes and file lengths, and the sanitised file list.

use std::path::PathBuf;

use bitswarm_bencode::{decode_with, Dict, Limits, Value};

use crate::error::{MetainfoError, Warning};
use crate::fields::{has_duplicate_keys, required, required_bytes, required_int, Ctx};
use crate::files::{is_legacy_pad_path, FileAttr, FileEntry};
use crate::info_hash::InfoHash;
use crate::path_safety::{disambiguate, sanitize_component, sanitize_path};

/// Largest piece length accepted (512 MiB); larger ones are rejected as absurd.
pub const PIECE_LENGTH_MAX: u32 = 512 << 20;
/// Smallest piece length that is not reported as unusual (16 KiB, one block).
pub const PIECE_LENGTH_USUAL_MIN: u32 = 16 << 10;
/// Largest piece length that is not reported as unusual (256 MiB).
pub const PIECE_LENGTH_USUAL_MAX: u32 = 256 << 20;

/// A parsed, validated info dictionary.
///
/// Invariants established by the parser: `piece_length` is in `1 ..= PIECE_LENGTH_MAX`;
/// `files` is non-empty, in torrent order, with `offset`s that tile the byte stream
/// `0 .. total_length()` exactly; `total_length() > 0`; `pieces.len()` equals
/// `ceil(total_length() / piece_length)`; every path is sanitised and (pad files aside) unique
/// case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// The torrent's name, sanitised as one path component (for a multi-file torrent the root
    /// folder, for a single-file torrent the file name). If nothing usable is left after
    /// sanitising, the hex info-hash.
    pub name: String,
    /// Bytes per piece (the last piece may be shorter).
    pub piece_length: u32,
    /// The SHA-1 hash of every piece.
    pub pieces: Vec<[u8; 20]>,
    /// The files, in torrent order (pad files included).
    pub files: Vec<FileEntry>,
    /// BEP 27: peers only from the torrent's trackers (no DHT, no `PeX`, no local discovery).
    pub private: bool,
    /// Whether the torrent uses the multi-file layout (`files`), even with a single file.
    pub multi_file: bool,
    /// The `source` field private trackers use to give each tracker's copy its own info-hash.
    pub source: Option<String>,
}

impl Info {
    /// Parses a bare info dictionary, e.g. one received through BEP 9 metadata exchange. The
    /// caller checks that its SHA-1 is the expected info-hash (see [`InfoHash::of_info`]).
    pub fn from_bytes(raw_info: &[u8]) -> Result<(Self, Vec<Warning>), MetainfoError> {
        let value = decode_with(raw_info, &Limits::DEFAULT)?;
        let mut ctx = Ctx::default();
        let info = parse_info(&value, &mut ctx)?;
        Ok((info, ctx.warnings))
    }

    /// Where a file goes relative to the download directory: `name/path` for a multi-file
    /// torrent, `name` for a single-file one. Safe to `join` onto the download directory.
    #[must_use]
    pub fn file_path(&self, file: &FileEntry) -> PathBuf {
        if self.multi_file {
            let mut p = PathBuf::from(&self.name);
            p.push(file.relative_path());
            p
        } else {
            file.relative_path()
        }
    }
}

/// Parses an info dictionary already decoded (its `raw()` bytes are what the info-hash
/// covers).
pub(crate) fn parse_info(value: &Value<'_>, ctx: &mut Ctx) -> Result<Info, MetainfoError> {
    let dict = value.as_dict().ok_or(MetainfoError::WrongType {
        field: "info",
        expected: "a dictionary",
    })?;
    if !value.is_canonical() {
        ctx.warn(Warning::NonCanonicalInfo {
            duplicate_keys: has_duplicate_keys(value),
        });
    }
    if dict.get(b"pieces").is_none() && dict.get(b"meta version").is_some() {
        return Err(MetainfoError::V2OnlyUnsupported);
    }
    let piece_length = piece_length(dict, ctx)?;
    let pieces = pieces(dict)?;
    let name = name(dict, value.raw(), ctx)?;
    let (mut files, multi_file) = match (dict.get(b"length"), dict.get(b"files")) {
        (Some(_), Some(_)) => return Err(MetainfoError::AmbiguousLayout),
        (Some(_), None) => (vec![single_file(dict, &name, ctx)?], false),
        (None, Some(list)) => (multi_files(list, ctx)?, true),
        (None, None) => {
            return Err(MetainfoError::MissingField {
                field: "info.length or info.files",
            })
        }
    };
    let total_length = assign_offsets(&mut files)?;
    let expected_pieces = total_length.div_ceil(u64::from(piece_length));
    if expected_pieces != pieces.len() as u64 {
        return Err(MetainfoError::LengthMismatch {
            total_length,
            piece_length,
            expected_pieces,
            actual_pieces: pieces.len(),
        });
    }
    if multi_file {
        disambiguate(&mut files, &mut ctx.warnings);
    }
    let private = match ctx.opt_int(dict, "private") {
        None | Some(0) => false,
        Some(1) => true,
        Some(_) => {
            ctx.ignored("private", "not 0 or 1; any non-zero value means private");
            true
        }
    };
    let source = ctx.opt_text(dict, "source", None);
    Ok(Info {
        name,
        piece_length,
        pieces,
        files,
        private,
        multi_file,
        source,
    })
}

fn piece_length(dict: &Dict<'_>, ctx: &mut Ctx) -> Result<u32, MetainfoError> {
    let raw = required_int(dict, b"piece length", "info.piece length")?;
    let piece_length = u32::try_from(raw)
        .ok()
        .filter(|n| (1..=PIECE_LENGTH_MAX).contains(n))
        .ok_or(MetainfoError::InvalidPieceLength {
            piece_length: raw,
            max: PIECE_LENGTH_MAX,
        })?;
    if !piece_length.is_power_of_two() {
        ctx.warn(Warning::PieceLengthNotPowerOfTwo { piece_length });
    }
    if !(PIECE_LENGTH_USUAL_MIN..=PIECE_LENGTH_USUAL_MAX).contains(&piece_length) {
        ctx.warn(Warning::PieceLengthUnusual { piece_length });
    }
    Ok(piece_length)
}

fn pieces(dict: &Dict<'_>) -> Result<Vec<[u8; 20]>, MetainfoError> {
    let bytes = required_bytes(dict, b"pieces", "info.pieces")?;
    let chunks = bytes.chunks_exact(20);
    if !chunks.remainder().is_empty() {
        return Err(MetainfoError::PiecesNotMultipleOf20 { len: bytes.len() });
    }
    Ok(chunks
        .filter_map(|c| <[u8; 20]>::try_from(c).ok())
        .collect())
}

/// The sanitised name; falls back to the hex info-hash when nothing usable is left.
fn name(dict: &Dict<'_>, raw_info: &[u8], ctx: &mut Ctx) -> Result<String, MetainfoError> {
    let original = if let Some(s) = ctx.utf8_variant(dict, "name.utf-8") {
        s
    } else {
        let bytes = required_bytes(dict, b"name", "info.name")?;
        ctx.lossy(bytes, "info.name")
    };
    let mut name = sanitize_component(&original).into_owned();
    if name.is_empty() {
        name = InfoHash::of_info(raw_info).to_hex();
    }
    if name != original {
        ctx.warn(Warning::PathSanitised {
            file_index: None,
            original,
            sanitised: name.clone(),
        });
    }
    Ok(name)
}

fn single_file(dict: &Dict<'_>, name: &str, ctx: &mut Ctx) -> Result<FileEntry, MetainfoError> {
    let length = file_length(dict, "info.length")?;
    let path = vec![name.to_owned()];
    Ok(file_entry(dict, 0, path, length, ctx))
}

fn multi_files(list: &Value<'_>, ctx: &mut Ctx) -> Result<Vec<FileEntry>, MetainfoError> {
    let items = list.as_list().ok_or(MetainfoError::WrongType {
        field: "info.files",
        expected: "a list",
    })?;
    let mut files = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let dict = item.as_dict().ok_or(MetainfoError::WrongType {
            field: "info.files[]",
            expected: "a dictionary",
        })?;
        let length = file_length(dict, "info.files[].length")?;
        let original = file_path(dict, ctx)?;
        let path = sanitize_path(&original);
        if path != original {
            ctx.warn(Warning::PathSanitised {
                file_index: Some(index),
                original: original.join("/"),
                sanitised: path.join("/"),
            });
        }
        files.push(file_entry(dict, index, path, length, ctx));
    }
    Ok(files)
}

fn file_length(dict: &Dict<'_>, field: &'static str) -> Result<u64, MetainfoError> {
    let value = required_int(dict, b"length", field)?;
    u64::try_from(value).map_err(|_| MetainfoError::NegativeLength { field, value })
}

/// A file's path components as given (`path.utf-8` preferred when valid), not yet sanitised.
fn file_path(dict: &Dict<'_>, ctx: &mut Ctx) -> Result<Vec<String>, MetainfoError> {
    if let Some(value) = dict.get(b"path.utf-8") {
        let utf8: Option<Vec<String>> = value
            .as_list()
            .and_then(|l| l.iter().map(|c| c.as_str().map(str::to_owned)).collect());
        match utf8 {
            Some(components) => return Ok(components),
            None => ctx.ignored("info.files[].path.utf-8", "not a list of UTF-8 strings"),
        }
    }
    let list = required(dict, b"path", "info.files[].path")?
        .as_list()
        .ok_or(MetainfoError::WrongType {
            field: "info.files[].path",
            expected: "a list of byte strings",
        })?;
    list.iter()
        .map(|c| {
            let bytes = c.as_bytes().ok_or(MetainfoError::WrongType {
                field: "info.files[].path",
                expected: "a list of byte strings",
            })?;
            Ok(ctx.lossy(bytes, "info.files[].path"))
        })
        .collect()
}

/// Attributes, symlink target and `sha1` hint of one file (from its dictionary, or from the
/// info dictionary of a single-file torrent).
fn file_entry(
    dict: &Dict<'_>,
    index: usize,
    path: Vec<String>,
    length: u64,
    ctx: &mut Ctx,
) -> FileEntry {
    let mut attr = match dict.get(b"attr").map(Value::as_bytes) {
        Some(Some(bytes)) => FileAttr::from_attr_bytes(bytes),
        Some(None) => {
            ctx.ignored("attr", "not a byte string");
            FileAttr::default()
        }
        None => FileAttr::default(),
    };
    attr.pad |= is_legacy_pad_path(&path);
    let symlink_path = if attr.symlink {
        let target = symlink_target(dict);
        if target.is_none() {
            ctx.warn(Warning::SymlinkWithoutTarget { file_index: index });
            attr.symlink = false;
        }
        target
    } else {
        None
    };
    let sha1 = match dict.get(b"sha1").map(Value::as_bytes) {
        Some(Some(bytes)) => <[u8; 20]>::try_from(bytes).ok(),
        _ => None,
    };
    FileEntry {
        path,
        length,
        offset: 0,
        attr,
        symlink_path,
        sha1,
    }
}

/// The sanitised `symlink path`; `None` if absent, malformed, or empty once sanitised (a link
/// to the root folder itself would make a loop).
fn symlink_target(dict: &Dict<'_>) -> Option<Vec<String>> {
    let list = dict.get(b"symlink path")?.as_list()?;
    let components: Vec<&str> = list.iter().map(Value::as_str).collect::<Option<_>>()?;
    let sanitised: Vec<String> = components
        .iter()
        .map(|c| sanitize_component(c).into_owned())
        .filter(|c| !c.is_empty())
        .collect();
    (!sanitised.is_empty()).then_some(sanitised)
}

/// Sets each file's offset and returns the total length.
fn assign_offsets(files: &mut [FileEntry]) -> Result<u64, MetainfoError> {
    let mut total: u64 = 0;
    for file in files.iter_mut() {
        file.offset = total;
        total = total
            .checked_add(file.length)
            .ok_or(MetainfoError::TotalLengthOverflow)?;
    }
    if total == 0 {
        return Err(MetainfoError::EmptyTorrent);
    }
    Ok(total)
}
