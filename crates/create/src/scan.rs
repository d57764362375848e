//! Walking the input: the list of files that go into a torrent, in a deterministic order.
//!
//! Decisions, so that nothing is skipped silently:
//! - Hidden files (names starting with `.`) are included like any other file.
//! - Symbolic links are followed, to files and to directories, as mktorrent and libtorrent's
//!   `add_files` do by default: the torrent carries the data the link points at, under the
//!   link's name. A link to a directory that contains it is a [`CreateError::SymlinkLoop`];
//!   a broken link is a [`CreateError::Io`] naming the link.
//! - FIFOs, sockets and devices are a [`CreateError::NotRegularFile`], not skipped.
//! - Empty directories vanish: a v1 torrent has no way to list them.
//! - A name that is not UTF-8 is a [`CreateError::NonUtf8Path`]: a torrent's `path`
//!   components are UTF-8 strings and we do not guess an encoding.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::CreateError;

/// One file of the torrent's data, as found by [`scan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileToHash {
    /// Where the data is on disk (absolute; symbolic links not resolved).
    pub path: PathBuf,
    /// Path inside the torrent, relative to the root, one UTF-8 string per component. For a
    /// single-file torrent (the root is a file) this is just the file's name.
    pub torrent_path: Vec<String>,
    /// Length in bytes when scanned.
    pub length: u64,
}

/// Lists the files under `root`, or `root` itself when it is a file (a single-file torrent).
///
/// The order is deterministic: sorted by path components, each compared as raw bytes, which
/// is a depth-first walk with every directory's entries sorted by name. Errors with
/// [`CreateError::EmptyInput`] when a directory holds no file at all (empty files count as
/// files here; [`create_torrent`](crate::create_torrent) also rejects zero total length).
pub fn scan(root: &Path) -> Result<Vec<FileToHash>, CreateError> {
    let root_abs = std::path::absolute(root).map_err(|e| CreateError::io(root, e))?;
    let meta = fs::metadata(&root_abs).map_err(|e| CreateError::io(root, e))?;
    let mut files = Vec::new();
    if meta.is_file() {
        let name = root_name(&root_abs)?;
        files.push(FileToHash {
            path: root_abs,
            torrent_path: vec![name],
            length: meta.len(),
        });
    } else if meta.is_dir() {
        let mut walk = Walk {
            files: &mut files,
            ancestors: vec![(meta.dev(), meta.ino())],
            components: Vec::new(),
        };
        walk.dir(&root_abs)?;
        if files.is_empty() {
            return Err(CreateError::EmptyInput {
                path: root.to_path_buf(),
            });
        }
    } else {
        return Err(CreateError::NotRegularFile {
            path: root.to_path_buf(),
        });
    }
    Ok(files)
}

/// The default torrent name for `root`: its last component, or for paths such as `.` or
/// `dir/..`, the last component of the resolved path.
pub fn root_name(root: &Path) -> Result<String, CreateError> {
    let resolved;
    let name = if let Some(name) = root.file_name() {
        name
    } else {
        resolved = fs::canonicalize(root).map_err(|e| CreateError::io(root, e))?;
        resolved
            .file_name()
            .ok_or_else(|| CreateError::InvalidName {
                name: root.display().to_string(),
            })?
    };
    name.to_str()
        .map(str::to_owned)
        .ok_or_else(|| CreateError::NonUtf8Path {
            path: root.to_path_buf(),
        })
}

/// State of the depth-first walk.
struct Walk<'a> {
    files: &'a mut Vec<FileToHash>,
    /// (device, inode) of every directory from the root down to the current one.
    ancestors: Vec<(u64, u64)>,
    /// Torrent path of the current directory.
    components: Vec<String>,
}

impl Walk<'_> {
    fn dir(&mut self, dir: &Path) -> Result<(), CreateError> {
        let mut entries = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| CreateError::io(dir, e))? {
            let entry = entry.map_err(|e| CreateError::io(dir, e))?;
            entries.push(entry.file_name());
        }
        entries.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in entries {
            let path = dir.join(&name);
            let utf8 = name
                .to_str()
                .ok_or_else(|| CreateError::NonUtf8Path { path: path.clone() })?;
            // Follows symbolic links; a broken one fails here with its own path.
            let meta = fs::metadata(&path).map_err(|e| CreateError::io(&path, e))?;
            if meta.is_file() {
                let mut torrent_path = self.components.clone();
                torrent_path.push(utf8.to_owned());
                self.files.push(FileToHash {
                    path,
                    torrent_path,
                    length: meta.len(),
                });
            } else if meta.is_dir() {
                let id = (meta.dev(), meta.ino());
                if self.ancestors.contains(&id) {
                    return Err(CreateError::SymlinkLoop { path });
                }
                self.ancestors.push(id);
                self.components.push(utf8.to_owned());
                self.dir(&path)?;
                self.components.pop();
                self.ancestors.pop();
            } else {
                return Err(CreateError::NotRegularFile { path });
            }
        }
        Ok(())
    }
}
