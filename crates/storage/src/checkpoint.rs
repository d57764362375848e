//! Making resume state durable and trusting it again: a checkpoint snapshots the verified set,
//! fsyncs what was written, then stamps each file (size, mtime); on restart only pieces whose
//! files still carry the same stamps are trusted.

use std::fs::File;
use std::time::UNIX_EPOCH;

use crate::bitfield::Bitfield;
use crate::error::{Result, StorageError};
use crate::files::Access;
use crate::layout::TorrentLayout;
use crate::storage::Storage;

/// A file's size and modification time, as recorded with a resume snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    /// Size in bytes.
    pub size: u64,
    /// Modification time in nanoseconds since the Unix epoch (negative before it).
    pub mtime_ns: i64,
}

/// What a resume record holds for one torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeSnapshot {
    /// Pieces verified, written and synced when the snapshot was taken.
    pub pieces: Bitfield,
    /// One stamp per layout file, `None` for pad files and files absent at the time.
    pub files: Vec<Option<FileStamp>>,
}

/// The outcome of comparing a saved snapshot with the files on disk now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeVerdict {
    /// Saved pieces whose files all still match: trusted without reading them.
    pub trusted: Bitfield,
    /// Saved pieces touching a file that changed or vanished: check them (e.g. with
    /// `Job::Check` and `CheckScope::Pieces`) before claiming them.
    pub recheck: Vec<u32>,
}

impl Storage {
    /// Durably captures the verified set, in this order: (1) copy the verified set, (2) take
    /// the set of files and folders written since the last checkpoint, (3) `fdatasync` each
    /// file and `fsync` each folder, (4) stamp every file. Every piece in the snapshot was
    /// written before step 1 and its file marked dirty after that write, so it is on stable
    /// storage before the snapshot is returned; save it to the `ResumeDb` only after this.
    /// Checkpoints of one torrent are serialised.
    pub fn checkpoint(&self) -> Result<ResumeSnapshot> {
        let _serial = self
            .checkpoint_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let pieces = self.verified();
        self.sync_dirty()?;
        let files = self.file_stamps()?;
        Ok(ResumeSnapshot { pieces, files })
    }

    /// Stamps of every file as it is now (`None` for pad files and absent files).
    pub fn file_stamps(&self) -> Result<Vec<Option<FileStamp>>> {
        (0..self.layout().files().len())
            .map(|index| {
                if self.is_pad(index) {
                    return Ok(None);
                }
                let path = self.target(index).path;
                match std::fs::symlink_metadata(path) {
                    Ok(meta) => Ok(Some(stamp(&meta))),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(StorageError::io(path, e)),
                }
            })
            .collect()
    }

    /// Compares `saved` with the files now and makes the trusted pieces this storage's
    /// verified set (replacing it). Returns what was trusted and what must be rechecked.
    pub fn restore(&self, saved: &ResumeSnapshot) -> Result<ResumeVerdict> {
        let current = self.file_stamps()?;
        let verdict = reconcile(self.layout(), saved, &current);
        self.set_verified(&verdict.trusted);
        Ok(verdict)
    }

    fn sync_dirty(&self) -> Result<()> {
        let dirty = self.files.take_dirty();
        let result = dirty.files.iter().try_for_each(|&index| {
            let target = self.target(index);
            let file = self.files.get(&target, Access::Read)?;
            file.sync_data()
                .map_err(|e| StorageError::io(target.path, e))
        });
        let result = result.and_then(|()| {
            dirty.dirs.iter().try_for_each(|dir| {
                File::open(dir)
                    .and_then(|handle| handle.sync_all())
                    .map_err(|e| StorageError::io(dir, e))
            })
        });
        if result.is_err() {
            self.files.restore_dirty(dirty);
        }
        result
    }
}

/// Pure comparison of a saved snapshot with current stamps: a saved piece stays trusted only
/// if every non-pad file it touches has the same stamp now as when saved. A snapshot of a
/// different shape (piece or file count) trusts nothing.
#[must_use]
pub fn reconcile(
    layout: &TorrentLayout,
    saved: &ResumeSnapshot,
    current: &[Option<FileStamp>],
) -> ResumeVerdict {
    let count = layout.piece_count();
    let files = layout.files();
    let same_shape = saved.pieces.len() == count
        && saved.files.len() == files.len()
        && current.len() == files.len();
    if !same_shape {
        let recheck = saved.pieces.iter_ones().filter(|&p| p < count).collect();
        return ResumeVerdict {
            trusted: Bitfield::new(count),
            recheck,
        };
    }
    let mut trusted = saved.pieces.clone();
    let mut recheck = Vec::new();
    for (index, spec) in files.iter().enumerate() {
        let changed = saved.files.get(index) != current.get(index);
        if spec.pad || !changed {
            continue;
        }
        for piece in layout.file_pieces(index) {
            if trusted.get(piece) {
                trusted.set(piece, false);
                recheck.push(piece);
            }
        }
    }
    recheck.sort_unstable();
    ResumeVerdict { trusted, recheck }
}

fn stamp(meta: &std::fs::Metadata) -> FileStamp {
    let mtime_ns = meta
        .modified()
        .ok()
        .map_or(0, |time| match time.duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_nanos()).map_or(i64::MIN, |ns| -ns),
        });
    FileStamp {
        size: meta.len(),
        mtime_ns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::FileSpec;

    fn layout() -> TorrentLayout {
        let file = |name: &str, length, pad| FileSpec {
            path: name.into(),
            length,
            pad,
            wanted: true,
        };
        let files = vec![
            file("a", 10, false),
            file("pad", 6, true),
            file("b", 20, false),
        ];
        TorrentLayout::new(8, vec![[0; 20]; 5], files).unwrap()
    }

    #[allow(clippy::unnecessary_wraps)] // reads as a table of optional stamps below
    fn at(size: u64, mtime_ns: i64) -> Option<FileStamp> {
        Some(FileStamp { size, mtime_ns })
    }

    #[test]
    fn changed_file_drops_only_its_pieces() {
        let layout = layout();
        let saved = ResumeSnapshot {
            pieces: Bitfield::full(5),
            files: vec![at(10, 1), None, at(20, 2)],
        };
        let same = reconcile(&layout, &saved, &saved.files);
        assert_eq!((same.trusted.count_ones(), same.recheck.len()), (5, 0));
        // "a" is bytes 0..10: pieces 0 and 1.
        let verdict = reconcile(&layout, &saved, &[at(10, 9), None, at(20, 2)]);
        assert_eq!(verdict.recheck, vec![0, 1]);
        assert_eq!(
            verdict.trusted.iter_ones().collect::<Vec<_>>(),
            vec![2, 3, 4]
        );
        // "b" vanished: bytes 16..36, pieces 2..=4.
        let verdict = reconcile(&layout, &saved, &[at(10, 1), None, None]);
        assert_eq!(verdict.recheck, vec![2, 3, 4]);
    }

    #[test]
    fn other_shape_trusts_nothing() {
        let layout = layout();
        let saved = ResumeSnapshot {
            pieces: Bitfield::full(4),
            files: vec![at(10, 1), None, at(20, 2)],
        };
        let verdict = reconcile(&layout, &saved, &saved.files);
        assert_eq!(verdict.trusted.count_ones(), 0);
        assert_eq!(verdict.recheck, vec![0, 1, 2, 3]);
    }
}
