//! The file list of a torrent: one [`FileEntry`] per file, with its sanitised path, its place
//! in the torrent's byte stream and its BEP 47 attributes.

use std::fmt;
use std::path::PathBuf;

/// One file of a torrent.
///
/// `path` has already been through [`sanitize_path`](crate::sanitize_path) and collision
/// renaming, so [`FileEntry::relative_path`] is always safe to join onto a download directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Sanitised path components, relative to the torrent's root folder (the `name` folder of
    /// a multi-file torrent; for a single-file torrent this is `[name]`). Never empty, never
    /// contains `..`, `.`, empty components or separators.
    pub path: Vec<String>,
    /// Length in bytes.
    pub length: u64,
    /// Offset of the file's first byte in the torrent's byte stream (the concatenation of all
    /// files, pad files included).
    pub offset: u64,
    /// BEP 47 attributes.
    pub attr: FileAttr,
    /// For a symlink (`attr` contains `l`): the sanitised target, relative to the torrent's root
    /// folder. `None` for other files.
    pub symlink_path: Option<Vec<String>>,
    /// BEP 47 `sha1` of the file's contents, a deduplication hint only (never trusted for
    /// integrity; piece hashes are).
    pub sha1: Option<[u8; 20]>,
}

impl FileEntry {
    /// The path relative to the torrent's root folder. Never absolute, never contains `..`:
    /// safe to `join` onto a download directory.
    #[must_use]
    pub fn relative_path(&self) -> PathBuf {
        self.path.iter().collect()
    }

    /// Whether this is a padding file (BEP 47 `attr` `p`, or a legacy `.pad/` or
    /// `BitComet` `_____padding_file_` name). Pad files are zeros that are never written to
    /// disk; their paths may repeat.
    #[must_use]
    pub fn is_pad(&self) -> bool {
        self.attr.pad
    }

    /// For a symlink, the target relative to the torrent's root folder; like
    /// [`FileEntry::relative_path`], it never leaves that folder.
    #[must_use]
    pub fn symlink_target(&self) -> Option<PathBuf> {
        self.symlink_path.as_ref().map(|p| p.iter().collect())
    }

    /// Offset one past the file's last byte in the torrent's byte stream.
    #[must_use]
    pub fn end(&self) -> u64 {
        // Parsed entries never overflow; saturate for hand-built ones.
        self.offset.saturating_add(self.length)
    }
}

/// BEP 47 file attributes (the `attr` string). Unknown characters are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[allow(clippy::struct_excessive_bools)] // four independent flags, exactly as BEP 47 has them
pub struct FileAttr {
    /// `p`: a padding file (zeros, not stored).
    pub pad: bool,
    /// `x`: executable.
    pub executable: bool,
    /// `h`: hidden.
    pub hidden: bool,
    /// `l`: a symbolic link (see [`FileEntry::symlink_path`]).
    pub symlink: bool,
}

impl FileAttr {
    /// Parses an `attr` string.
    #[must_use]
    pub fn from_attr_bytes(attr: &[u8]) -> Self {
        Self {
            pad: attr.contains(&b'p'),
            executable: attr.contains(&b'x'),
            hidden: attr.contains(&b'h'),
            symlink: attr.contains(&b'l'),
        }
    }

    /// Whether no attribute is set.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl fmt::Display for FileAttr {
    /// The `attr` string, in the order `phxl` (empty if no attribute is set).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (set, c) in [
            (self.pad, "p"),
            (self.hidden, "h"),
            (self.executable, "x"),
            (self.symlink, "l"),
        ] {
            if set {
                f.write_str(c)?;
            }
        }
        Ok(())
    }
}

/// Whether a (sanitised) path names a padding file by the legacy conventions: BEP 47's
/// `.pad/<n>` directory, or `BitComet`'s `_____padding_file_…` names.
pub(crate) fn is_legacy_pad_path(path: &[String]) -> bool {
    path.first().is_some_and(|c| c == ".pad")
        || path
            .last()
            .is_some_and(|c| c.starts_with("_____padding_file_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_round_trip() {
        let a = FileAttr::from_attr_bytes(b"xlzp");
        assert!(a.pad && a.executable && a.symlink && !a.hidden);
        assert_eq!(a.to_string(), "pxl");
        assert!(FileAttr::from_attr_bytes(b"").is_empty());
    }

    #[test]
    fn legacy_pad_names() {
        let p = |s: &[&str]| s.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>();
        assert!(is_legacy_pad_path(&p(&[".pad", "16384"])));
        assert!(is_legacy_pad_path(&p(&["_____padding_file_0_x____"])));
        assert!(!is_legacy_pad_path(&p(&["pad", "1"])));
    }
}
