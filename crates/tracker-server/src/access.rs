//! The live access list: loaded from its file at start, swapped for a new one on reload
//! (SIGHUP, or the file's modification time changing), and read by workers without a lock on
//! the hot path — each worker keeps its own `Arc` and re-reads the shared one only when the
//! generation number changes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use bitswarm_tracker::access::{AccessList, AccessMode};

use crate::error::ServerError;

/// The shared, reloadable access list.
#[derive(Debug)]
pub(crate) struct LiveAccess {
    mode: AccessMode,
    file: Option<PathBuf>,
    current: RwLock<Arc<AccessList>>,
    generation: AtomicU64,
    loaded_mtime: RwLock<Option<SystemTime>>,
}

impl LiveAccess {
    /// Loads the list for `mode` from `file` (none for open mode).
    pub(crate) fn load(mode: AccessMode, file: Option<PathBuf>) -> Result<Self, ServerError> {
        let (list, mtime) = match (&file, mode) {
            (_, AccessMode::Open) | (None, _) => (AccessList::open(), None),
            (Some(path), _) => read(mode, path)?,
        };
        Ok(Self {
            mode,
            file,
            current: RwLock::new(Arc::new(list)),
            generation: AtomicU64::new(0),
            loaded_mtime: RwLock::new(mtime),
        })
    }

    /// The current list.
    pub(crate) fn get(&self) -> Arc<AccessList> {
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// A worker's view, refreshed cheaply.
    pub(crate) fn view(&self) -> AccessView {
        AccessView {
            generation: self.generation.load(Ordering::Acquire),
            list: self.get(),
        }
    }

    /// Re-reads the file and swaps the list in; on error the old list stays in force.
    pub(crate) fn reload(&self) -> Result<usize, ServerError> {
        let Some(path) = self
            .file
            .as_deref()
            .filter(|_| self.mode != AccessMode::Open)
        else {
            return Ok(0);
        };
        let (list, mtime) = read(self.mode, path)?;
        let len = list.len();
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(list);
        *self
            .loaded_mtime
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = mtime;
        self.generation.fetch_add(1, Ordering::Release);
        Ok(len)
    }

    /// Whether the file's modification time differs from the one last loaded or tried.
    pub(crate) fn file_changed(&self) -> bool {
        let Some(path) = self
            .file
            .as_deref()
            .filter(|_| self.mode != AccessMode::Open)
        else {
            return false;
        };
        let now = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        now != *self
            .loaded_mtime
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Number of listed info-hashes.
    pub(crate) fn len(&self) -> usize {
        self.get().len()
    }
}

/// A worker's copy of the list and the generation it was taken at.
#[derive(Debug)]
pub(crate) struct AccessView {
    generation: u64,
    list: Arc<AccessList>,
}

impl AccessView {
    /// The list, refreshed first if a reload happened since the view was taken.
    pub(crate) fn current(&mut self, live: &LiveAccess) -> &AccessList {
        let generation = live.generation.load(Ordering::Acquire);
        if generation != self.generation {
            self.list = live.get();
            self.generation = generation;
        }
        &self.list
    }
}

fn read(mode: AccessMode, path: &Path) -> Result<(AccessList, Option<SystemTime>), ServerError> {
    let read_err = |source| ServerError::Read {
        path: path.to_owned(),
        source,
    };
    let mtime = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(read_err)?;
    let text = std::fs::read_to_string(path).map_err(read_err)?;
    let list = AccessList::parse(mode, &text).map_err(|source| ServerError::AccessList {
        path: path.to_owned(),
        source,
    })?;
    Ok((list, Some(mtime)))
}
