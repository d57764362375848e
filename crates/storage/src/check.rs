//! Rechecking data already on disk (at start, after a resume mismatch, or on request). A check
//! is split into chunks of pieces that idle disk threads claim one at a time, so a long recheck
//! uses every disk thread yet never holds one for longer than a chunk: ordinary jobs still get
//! served between chunks.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::bitfield::Bitfield;
use crate::storage::{Storage, TorrentId};

/// Which pieces a check reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckScope {
    /// Every piece; afterwards the verified set is exactly what was found.
    All,
    /// These pieces (e.g. `ResumeVerdict::recheck`); other pieces keep their state.
    Pieces(Vec<u32>),
}

/// Progress of a running check, reported after each chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckProgress {
    /// The torrent being checked.
    pub torrent: TorrentId,
    /// Pieces read so far.
    pub checked: u32,
    /// Pieces the check will read.
    pub total: u32,
    /// Pieces found good so far.
    pub found: u32,
}

/// Called on a disk thread after each chunk of a check; keep it short (e.g. store into an
/// atomic or send on a channel).
pub type ProgressFn = Box<dyn Fn(CheckProgress) + Send + Sync>;

/// A check in progress.
pub(crate) struct CheckTask {
    pub storage: Arc<Storage>,
    scope: Vec<u32>,
    chunk_pieces: usize,
    next: AtomicUsize,
    done: AtomicUsize,
    found: Mutex<Bitfield>,
    found_count: AtomicU32,
    progress: Option<ProgressFn>,
}

/// The result of running one chunk.
pub(crate) enum ChunkOutcome {
    /// More chunks remain (or are still being run by other threads).
    Partial,
    /// This chunk was the last to finish: the check is complete and applied.
    Finished { checked: u32, verified: Bitfield },
}

impl CheckTask {
    pub(crate) fn new(
        storage: Arc<Storage>,
        scope: CheckScope,
        chunk_bytes: u64,
        progress: Option<ProgressFn>,
    ) -> Self {
        let layout = storage.layout();
        let count = layout.piece_count();
        let mut scope = match scope {
            CheckScope::All => (0..count).collect(),
            CheckScope::Pieces(pieces) => pieces,
        };
        scope.retain(|&piece| piece < count);
        scope.sort_unstable();
        scope.dedup();
        let chunk_pieces = (chunk_bytes / u64::from(layout.piece_length())).max(1);
        Self {
            found: Mutex::new(Bitfield::new(count)),
            storage,
            scope,
            chunk_pieces: usize::try_from(chunk_pieces).unwrap_or(usize::MAX),
            next: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            found_count: AtomicU32::new(0),
            progress,
        }
    }

    pub(crate) fn torrent(&self) -> TorrentId {
        self.storage.id()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.scope.is_empty()
    }

    /// Claims the next chunk: the index range into the scope, or `None` when all are claimed.
    pub(crate) fn claim(&self) -> Option<(usize, usize)> {
        let start = self.next.fetch_add(self.chunk_pieces, Ordering::AcqRel);
        (start < self.scope.len())
            .then(|| (start, (start + self.chunk_pieces).min(self.scope.len())))
    }

    /// Reads and hashes the claimed chunk `start..end` of the scope.
    pub(crate) fn run(&self, (start, end): (usize, usize)) -> ChunkOutcome {
        let pieces = self.scope.get(start..end).unwrap_or_default();
        for &piece in pieces {
            let good = self.storage.check_piece(piece).unwrap_or_else(|error| {
                tracing::warn!(torrent = self.torrent().0, piece, %error, "check: unreadable piece");
                false
            });
            if good {
                self.lock_found().set(piece, true);
                self.found_count.fetch_add(1, Ordering::AcqRel);
            }
        }
        let done = self.done.fetch_add(pieces.len(), Ordering::AcqRel) + pieces.len();
        let total = self.scope.len() as u32;
        if let Some(progress) = &self.progress {
            progress(CheckProgress {
                torrent: self.torrent(),
                checked: done as u32,
                total,
                found: self.found_count.load(Ordering::Acquire),
            });
        }
        if done < self.scope.len() {
            return ChunkOutcome::Partial;
        }
        self.finish()
    }

    /// Applies an (already complete or empty) check to the storage.
    pub(crate) fn finish(&self) -> ChunkOutcome {
        self.storage.apply_check(&self.scope, &self.lock_found());
        ChunkOutcome::Finished {
            checked: self.scope.len() as u32,
            verified: self.storage.verified(),
        }
    }

    fn lock_found(&self) -> std::sync::MutexGuard<'_, Bitfield> {
        self.found
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
