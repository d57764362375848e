//! Open files of one torrent: a bounded handle cache, lazy creation (sparse, inside the root
//! only), the dirty set that a checkpoint must fsync, and positional vectored writes.

use std::collections::{BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use nix::fcntl::OFlag;

use crate::error::{Result, StorageError};
use crate::paths;

/// `IOV_MAX` on Linux: the most slices one `pwritev` takes.
const IOV_MAX: usize = 1024;

/// How a file is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Reading: the file must exist; never created.
    Read,
    /// Writing: created (with its folders) if missing, extended sparse to its full length.
    Write,
}

/// What the cache needs to know to open file `index`.
pub(crate) struct FileTarget<'a> {
    pub index: usize,
    /// Absolute path (root joined with the checked relative path).
    pub path: &'a Path,
    /// Relative path, for error messages.
    pub relative: &'a Path,
    /// The file's full length in the torrent.
    pub length: u64,
}

/// A bounded cache of open handles plus the set of files written since the last sync.
pub(crate) struct FileCache {
    root: PathBuf,
    real_root: OnceLock<PathBuf>,
    capacity: usize,
    preallocate: bool,
    state: Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    open: HashMap<usize, Slot>,
    tick: u64,
    /// Files written since the last `take_dirty` (indices).
    dirty: BTreeSet<usize>,
    /// Folders that gained an entry (a new file or folder) since the last `take_dirty`.
    dirty_dirs: BTreeSet<PathBuf>,
}

struct Slot {
    file: Arc<File>,
    writable: bool,
    used: u64,
}

/// What a checkpoint must sync: written files (by index) and folders with new entries.
#[derive(Debug, Default)]
pub(crate) struct DirtySet {
    pub files: BTreeSet<usize>,
    pub dirs: BTreeSet<PathBuf>,
}

impl FileCache {
    pub(crate) fn new(root: PathBuf, capacity: usize, preallocate: bool) -> Self {
        Self {
            root,
            real_root: OnceLock::new(),
            capacity: capacity.max(1),
            preallocate,
            state: Mutex::new(CacheState::default()),
        }
    }

    /// A handle to `target` good for `access`, opening (and for writes creating) it if needed.
    /// Opening happens under the cache lock, so one file is never opened twice at once.
    pub(crate) fn get(&self, target: &FileTarget<'_>, access: Access) -> Result<Arc<File>> {
        let mut state = self.lock();
        state.tick += 1;
        let tick = state.tick;
        if let Some(slot) = state.open.get_mut(&target.index) {
            if slot.writable || access == Access::Read {
                slot.used = tick;
                return Ok(Arc::clone(&slot.file));
            }
        }
        let (file, writable) = match access {
            Access::Write => (self.open_for_write(target, &mut state)?, true),
            Access::Read => self.open_for_read(target)?,
        };
        let file = Arc::new(file);
        state.open.remove(&target.index); // a read-only handle being upgraded
        evict_lru(&mut state, self.capacity);
        let slot = Slot {
            file: Arc::clone(&file),
            writable,
            used: tick,
        };
        state.open.insert(target.index, slot);
        Ok(file)
    }

    /// Records that `index` was written; call after the write returned, never before.
    pub(crate) fn mark_dirty(&self, index: usize) {
        self.lock().dirty.insert(index);
    }

    /// Takes the dirty set for a sync; give it back with `restore_dirty` if the sync fails.
    pub(crate) fn take_dirty(&self) -> DirtySet {
        let mut state = self.lock();
        DirtySet {
            files: std::mem::take(&mut state.dirty),
            dirs: std::mem::take(&mut state.dirty_dirs),
        }
    }

    /// Puts back what a failed sync did not manage.
    pub(crate) fn restore_dirty(&self, set: DirtySet) {
        let mut state = self.lock();
        state.dirty.extend(set.files);
        state.dirty_dirs.extend(set.dirs);
    }

    /// Number of handles currently open.
    pub(crate) fn open_count(&self) -> usize {
        self.lock().open.len()
    }

    fn lock(&self) -> MutexGuard<'_, CacheState> {
        // A panic while holding this lock leaves only a handle map behind; keep going.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn real_root(&self) -> Result<&Path> {
        if let Some(root) = self.real_root.get() {
            return Ok(root);
        }
        let real = self
            .root
            .canonicalize()
            .map_err(|e| StorageError::io(&self.root, e))?;
        Ok(self.real_root.get_or_init(|| real))
    }

    fn open_for_read(&self, target: &FileTarget<'_>) -> Result<(File, bool)> {
        let io_err = |e| StorageError::io(target.path, e);
        let parent = target.path.parent().unwrap_or(&self.root);
        paths::check_resolves_inside(self.real_root()?, parent, target.relative)?;
        let mut options = OpenOptions::new();
        options
            .read(true)
            .write(true)
            .custom_flags(OFlag::O_NOFOLLOW.bits());
        match options.open(target.path) {
            Ok(file) => Ok((file, true)),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                let mut options = OpenOptions::new();
                options.read(true).custom_flags(OFlag::O_NOFOLLOW.bits());
                Ok((options.open(target.path).map_err(io_err)?, false))
            }
            Err(e) => Err(io_err(e)),
        }
    }

    fn open_for_write(&self, target: &FileTarget<'_>, state: &mut CacheState) -> Result<File> {
        let io_err = |e| StorageError::io(target.path, e);
        let parent = target.path.parent().unwrap_or(&self.root);
        self.create_folders(parent, target.relative, state)?;
        paths::check_resolves_inside(self.real_root()?, parent, target.relative)?;
        let mut options = OpenOptions::new();
        options
            .read(true)
            .write(true)
            .custom_flags(OFlag::O_NOFOLLOW.bits());
        let file = match options.clone().create_new(true).open(target.path) {
            Ok(file) => {
                state.dirty_dirs.insert(parent.to_path_buf());
                file
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                options.open(target.path).map_err(io_err)?
            }
            Err(e) => return Err(io_err(e)),
        };
        let current = file.metadata().map_err(io_err)?.len();
        if current < target.length {
            self.grow(&file, target.length).map_err(io_err)?;
        }
        Ok(file)
    }

    /// Creates `dir` and any missing ancestors under the root, remembering each parent that
    /// gained an entry so the checkpoint can fsync it.
    fn create_folders(&self, dir: &Path, relative: &Path, state: &mut CacheState) -> Result<()> {
        if !self.root.exists() {
            std::fs::create_dir_all(&self.root).map_err(|e| StorageError::io(&self.root, e))?;
            if let Some(parent) = self.root.parent() {
                state.dirty_dirs.insert(parent.to_path_buf());
            }
        }
        let mut missing = Vec::new();
        let mut cursor = dir;
        while !cursor.exists() && cursor != self.root.as_path() {
            missing.push(cursor.to_path_buf());
            match cursor.parent() {
                Some(parent) => cursor = parent,
                None => break,
            }
        }
        // The deepest existing ancestor must already be inside the root (no symlink out).
        paths::check_resolves_inside(self.real_root()?, cursor, relative)?;
        for folder in missing.iter().rev() {
            match std::fs::create_dir(folder) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(StorageError::io(folder, e)),
            }
            if let Some(parent) = folder.parent() {
                state.dirty_dirs.insert(parent.to_path_buf());
            }
        }
        Ok(())
    }

    /// Extends a file to `length`: sparse by default (`set_len`), allocated if configured.
    fn grow(&self, file: &File, length: u64) -> io::Result<()> {
        if self.preallocate {
            let len = i64::try_from(length).map_err(|_| io::ErrorKind::InvalidInput)?;
            nix::fcntl::posix_fallocate(file, 0, len).map_err(io::Error::from)
        } else {
            file.set_len(length)
        }
    }
}

fn evict_lru(state: &mut CacheState, capacity: usize) {
    while state.open.len() >= capacity {
        let oldest = state
            .open
            .iter()
            .min_by_key(|(_, slot)| slot.used)
            .map(|(&index, _)| index);
        match oldest {
            // In-flight I/O holds its own `Arc`; the handle closes when that finishes.
            Some(index) => state.open.remove(&index),
            None => return,
        };
    }
}

/// Brings `len` bytes of `file` at `offset` into the page cache and waits until they are
/// there, without copying them anywhere: `sendfile` to `/dev/null` makes the kernel look up
/// (and read from disk if needed) each page and hand it to a sink that drops it. A later
/// `sendfile` to a socket then finds the pages cached instead of waiting for the disk on the
/// caller's thread. Short files are `UnexpectedEof`.
pub(crate) fn make_resident(file: &File, offset: u64, len: u32) -> io::Result<()> {
    static DEV_NULL: OnceLock<io::Result<File>> = OnceLock::new();
    let sink = match DEV_NULL.get_or_init(|| File::options().write(true).open("/dev/null")) {
        Ok(sink) => sink,
        Err(e) => return Err(io::Error::new(e.kind(), "cannot open /dev/null")),
    };
    let mut at = i64::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
    let mut left = len as usize;
    while left > 0 {
        match nix::sys::sendfile::sendfile64(sink, file, Some(&mut at), left) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => left = left.saturating_sub(n),
            Err(nix::errno::Errno::EINTR) => {}
            Err(errno) => return Err(errno.into()),
        }
    }
    Ok(())
}

/// Writes all of `bufs` at `offset` with as few `pwritev` calls as possible.
pub(crate) fn write_all_at(
    file: &File,
    mut bufs: &mut [IoSlice<'_>],
    mut offset: u64,
) -> io::Result<()> {
    while !bufs.is_empty() {
        let batch = &bufs[..bufs.len().min(IOV_MAX)];
        let at = i64::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        let written = match nix::sys::uio::pwritev(file, batch, at) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(errno) => return Err(errno.into()),
        };
        offset += written as u64;
        IoSlice::advance_slices(&mut bufs, written);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn vectored_write_handles_many_slices() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("f"))
            .unwrap();
        let parts: Vec<Vec<u8>> = (0..3000u32).map(|i| vec![(i % 251) as u8; 3]).collect();
        let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        write_all_at(&file, &mut slices, 5).unwrap();
        let mut back = vec![0u8; 9000];
        file.read_exact_at(&mut back, 5).unwrap();
        assert_eq!(back, parts.concat());
    }

    #[test]
    fn cache_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileCache::new(dir.path().to_path_buf(), 2, false);
        for index in 0..5 {
            let path = dir.path().join(format!("f{index}"));
            let relative = PathBuf::from(format!("f{index}"));
            let target = FileTarget {
                index,
                path: &path,
                relative: &relative,
                length: 10,
            };
            cache.get(&target, Access::Write).unwrap();
            assert!(cache.open_count() <= 2);
            assert_eq!(std::fs::metadata(&path).unwrap().len(), 10);
        }
    }
}
