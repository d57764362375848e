//! Defence in depth for file paths: the caller sanitised them, and we check again before any
//! path from a torrent is joined to the download folder or created on disk.

use std::path::{Component, Path, PathBuf};

use crate::error::{Result, StorageError};

/// Joins `relative` to `root` after checking every component: it must be a plain name (not
/// `..`, `.`, a root or a prefix), non-empty, and contain no `/`, `\` or NUL.
pub(crate) fn join_checked(root: &Path, relative: &Path) -> Result<PathBuf> {
    let escape = || StorageError::PathEscape {
        path: relative.to_path_buf(),
    };
    let mut joined = root.to_path_buf();
    let mut any = false;
    for component in relative.components() {
        let Component::Normal(name) = component else {
            return Err(escape());
        };
        let bytes = name.as_encoded_bytes();
        if bytes.is_empty() || bytes.iter().any(|b| matches!(b, b'/' | b'\\' | 0)) {
            return Err(escape());
        }
        joined.push(name);
        any = true;
    }
    // `components()` drops "." and repeated separators; an empty result is no file at all.
    if !any || relative.as_os_str().as_encoded_bytes().contains(&0) {
        return Err(escape());
    }
    Ok(joined)
}

/// Checks that the existing folder `dir` really resolves inside `real_root` (the root,
/// already canonical): a symlink planted under the download folder must not redirect our
/// reads or writes.
pub(crate) fn check_resolves_inside(real_root: &Path, dir: &Path, relative: &Path) -> Result<()> {
    let real_dir = dir.canonicalize().map_err(|e| StorageError::io(dir, e))?;
    if real_dir.starts_with(real_root) {
        Ok(())
    } else {
        Err(StorageError::PathEscape {
            path: relative.to_path_buf(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    fn rejected(relative: &Path) -> bool {
        matches!(
            join_checked(Path::new("/dl"), relative),
            Err(StorageError::PathEscape { .. })
        )
    }

    #[test]
    fn plain_relative_paths_join() {
        let joined = join_checked(Path::new("/dl"), Path::new("a/b/c.bin")).unwrap();
        assert_eq!(joined, Path::new("/dl/a/b/c.bin"));
    }

    #[test]
    fn escapes_are_rejected() {
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "",
            ".",
            "./",
            "a\\..\\b",
            "a/..",
            "..",
        ] {
            assert!(rejected(Path::new(bad)), "{bad:?} accepted");
        }
        assert!(rejected(Path::new(OsStr::from_bytes(b"a\0b"))));
    }
}
