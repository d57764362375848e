//! `Storage`: one torrent's files under its download folder, with blocking positional I/O and
//! piece hashing. Its methods run on disk threads (the `DiskPool`), never on the async runtime.

use std::cell::RefCell;
use std::fs::File;
use std::io::IoSlice;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use sha1::{Digest, Sha1};

use crate::bitfield::Bitfield;
use crate::error::{Result, StorageError};
use crate::files::{self, Access, FileCache, FileTarget};
use crate::layout::TorrentLayout;
use crate::paths;
use crate::pieces::{Block, Insert, MemoryBudget, PieceBlocks, PieceState};

/// Default bound on open file handles per torrent.
pub const OPEN_FILES_MAX_DEFAULT: usize = 32;

/// Data re-read from disk for hashing is read and hashed in slices of at most this many
/// bytes, so a disk thread's scratch buffer stays small whatever the piece length.
pub const HASH_READ_CHUNK_BYTES: usize = 1 << 20;

/// Writes to one file are serialised through one of this many locks (by file index). Two
/// disk threads writing into the same file at once make the kernel spin on the file's inode
/// lock (ext4 `i_rwsem`: seen in profiles of a 1 GiB single-file download as
/// `rwsem_spin_on_owner`); waiting on a user-space lock sleeps instead, and the other
/// thread can hash meanwhile.
const WRITE_LOCK_STRIPES: usize = 8;

/// A completed piece's in-memory blocks are hashed and written in runs of this many bytes,
/// so each run is written while still in the core's cache (see `Storage::hash_and_write`).
const HASH_WRITE_RUN_BYTES: usize = 64 << 10;

/// The caller's name for a torrent; every completion carries it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TorrentId(pub u64);

/// Per-torrent options.
#[derive(Debug, Clone)]
pub struct StorageOptions {
    /// Most file handles kept open at once (least recently used closed first).
    pub open_files_max: usize,
    /// Allocate a file's blocks when it is created (`posix_fallocate`) instead of leaving it
    /// sparse. Off by default.
    pub preallocate: bool,
}

impl Default for StorageOptions {
    fn default() -> Self {
        Self {
            open_files_max: OPEN_FILES_MAX_DEFAULT,
            preallocate: false,
        }
    }
}

/// What happened to a block given to `Storage::write_block`.
#[derive(Debug)]
pub enum WriteOutcome {
    /// Kept (in memory or on disk); its piece is not complete yet.
    Stored,
    /// Dropped without effect: its piece is already verified or being hashed, or the same
    /// block (offset) was already received.
    Ignored,
    /// The block completed its piece, which matched its hash and is now written and verified.
    PieceVerified,
    /// The block completed its piece, which failed: `PieceHashFailed` (nothing of it was
    /// written or recorded) or an I/O error while writing it. Its blocks are gone; fetch the
    /// piece again.
    PieceFailed(StorageError),
}

/// Where a range of the torrent lives, for a runtime that wants to `sendfile` instead of
/// reading into memory.
#[derive(Debug, Clone)]
pub enum ReadSegment {
    /// `len` bytes of `file` at `offset`.
    File {
        /// An open handle (shared with the cache; it stays valid after eviction).
        file: Arc<File>,
        /// Offset in the file.
        offset: u64,
        /// Number of bytes.
        len: u32,
    },
    /// `len` bytes of a pad file: zeros, nothing on disk.
    Zeros {
        /// Number of bytes.
        len: u32,
    },
}

/// One torrent's data on disk; see the crate docs for the on-disk rules.
pub struct Storage {
    id: TorrentId,
    root: PathBuf,
    layout: TorrentLayout,
    /// Absolute path of each file (empty for pad files, which are never opened).
    paths: Vec<PathBuf>,
    pub(crate) files: FileCache,
    pieces: Mutex<PieceState>,
    pub(crate) checkpoint_lock: Mutex<()>,
    write_locks: [Mutex<()>; WRITE_LOCK_STRIPES],
}

impl Storage {
    /// Prepares storage for `layout` under `root`. Creates nothing on disk; checks every
    /// non-pad path (`PathEscape` if one would leave `root`).
    pub fn open(
        id: TorrentId,
        root: impl Into<PathBuf>,
        layout: TorrentLayout,
        options: &StorageOptions,
    ) -> Result<Self> {
        let root = root.into();
        let paths = layout
            .files()
            .iter()
            .map(|spec| {
                if spec.pad {
                    Ok(PathBuf::new())
                } else {
                    paths::join_checked(&root, &spec.path)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            id,
            files: FileCache::new(root.clone(), options.open_files_max, options.preallocate),
            root,
            pieces: Mutex::new(PieceState::new(layout.piece_count())),
            layout,
            paths,
            checkpoint_lock: Mutex::new(()),
            write_locks: std::array::from_fn(|_| Mutex::new(())),
        })
    }

    /// The caller's id for this torrent.
    #[must_use]
    pub fn id(&self) -> TorrentId {
        self.id
    }

    /// The download folder.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The torrent's geometry.
    #[must_use]
    pub fn layout(&self) -> &TorrentLayout {
        &self.layout
    }

    /// A copy of the set of pieces verified and written (or trusted from resume, or found by
    /// a check).
    #[must_use]
    pub fn verified(&self) -> Bitfield {
        self.lock().verified().clone()
    }

    /// Whether `piece` is verified.
    #[must_use]
    pub fn has_piece(&self, piece: u32) -> bool {
        self.lock().verified().get(piece)
    }

    /// Number of incomplete pieces with blocks held in memory or on disk.
    #[must_use]
    pub fn pending_pieces(&self) -> usize {
        self.lock().pending_count()
    }

    /// Number of file handles held open now (at most `StorageOptions::open_files_max`).
    #[must_use]
    pub fn open_file_count(&self) -> usize {
        self.files.open_count()
    }

    /// Accepts one block of `piece` at `offset`. While `budget` allows, the block is kept in
    /// memory; otherwise it is written through at once. When the block completes the piece,
    /// the piece is hashed from its blocks (re-reading only written-through ones), and if it
    /// matches, its in-memory blocks are written (`pwritev`, one call per file run) and the
    /// piece is marked verified — in that order. A whole piece may be given as one block.
    pub fn write_block(
        &self,
        piece: u32,
        offset: u32,
        data: Bytes,
        budget: &Arc<MemoryBudget>,
    ) -> Result<WriteOutcome> {
        let piece_len = self.check_range(piece, offset, data.len())?;
        let inserted = match budget.try_reserve(data.len()) {
            Some(held) => {
                self.lock()
                    .insert(piece, piece_len, offset, Block::Mem { data, _held: held })?
            }
            None => self.write_through(piece, piece_len, offset, &data)?,
        };
        Ok(match inserted {
            Insert::Stored => WriteOutcome::Stored,
            Insert::Ignored => WriteOutcome::Ignored,
            Insert::Complete(blocks) => self.complete_piece(piece, blocks),
        })
    }

    /// Reads `len` bytes of `piece` at `offset` into a fresh buffer (one copy, from the page
    /// cache). Pad regions read as zeros.
    pub fn read_block(&self, piece: u32, offset: u32, len: u32) -> Result<Bytes> {
        self.check_range(piece, offset, len as usize)?;
        let mut buf = BytesMut::zeroed(len as usize);
        self.read_into(
            self.layout.piece_offset(piece) + u64::from(offset),
            &mut buf,
        )?;
        Ok(buf.freeze())
    }

    /// The file runs behind `len` bytes of `piece` at `offset`, with open handles, for
    /// zero-copy sending. The files must exist (the piece should be verified).
    pub fn read_plan(&self, piece: u32, offset: u32, len: u32) -> Result<Vec<ReadSegment>> {
        self.check_range(piece, offset, len as usize)?;
        let at = self.layout.piece_offset(piece) + u64::from(offset);
        self.layout
            .spans(at, len)
            .map(|span| {
                if self.is_pad(span.file) {
                    return Ok(ReadSegment::Zeros { len: span.len });
                }
                let file = self.files.get(&self.target(span.file), Access::Read)?;
                Ok(ReadSegment::File {
                    file,
                    offset: span.offset,
                    len: span.len,
                })
            })
            .collect()
    }

    /// Like [`Storage::read_plan`], for sending from the page cache (`sendfile`) off a disk
    /// thread: every file byte of the range is first made resident, waiting for the disk
    /// here rather than in the sender. Nothing is copied to user space. A file shorter than
    /// the range is an `Io` error (`UnexpectedEof`).
    pub fn prepare_send(&self, piece: u32, offset: u32, len: u32) -> Result<Vec<ReadSegment>> {
        self.check_range(piece, offset, len as usize)?;
        let at = self.layout.piece_offset(piece) + u64::from(offset);
        self.layout
            .spans(at, len)
            .map(|span| {
                if self.is_pad(span.file) {
                    return Ok(ReadSegment::Zeros { len: span.len });
                }
                let target = self.target(span.file);
                let file = self.files.get(&target, Access::Read)?;
                files::make_resident(&file, span.offset, span.len)
                    .map_err(|e| StorageError::io(target.path, e))?;
                Ok(ReadSegment::File {
                    file,
                    offset: span.offset,
                    len: span.len,
                })
            })
            .collect()
    }

    /// Hashes `piece` from disk and records the result: `Ok` marks it verified, a mismatch
    /// unmarks it and returns `PieceHashFailed`. Missing data is an `Io` error.
    pub fn verify_piece(&self, piece: u32) -> Result<()> {
        let ok = self.piece_matches(piece)?;
        self.lock().verified_mut().set(piece, ok);
        if ok {
            Ok(())
        } else {
            Err(StorageError::PieceHashFailed { piece })
        }
    }

    /// Whether the data on disk for `piece` matches its hash; missing or short files read
    /// as "no". Records nothing.
    pub fn check_piece(&self, piece: u32) -> Result<bool> {
        match self.piece_matches(piece) {
            Ok(ok) => Ok(ok),
            Err(e) if e.is_missing_data() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Drops buffered blocks of `piece` (of every piece when `None`) and frees their memory,
    /// e.g. when a torrent is paused or removed.
    pub fn discard_pending(&self, piece: Option<u32>) {
        self.lock().discard(piece);
    }

    /// Creates the wanted zero-length files (they own no piece, so no write creates them).
    pub fn create_empty_files(&self) -> Result<()> {
        for (index, spec) in self.layout.files().iter().enumerate() {
            if spec.length == 0 && spec.wanted && !spec.pad {
                self.files.get(&self.target(index), Access::Write)?;
            }
        }
        Ok(())
    }

    /// Replaces the verified set after a check of the pieces in `scope`.
    pub(crate) fn apply_check(&self, scope: &[u32], found: &Bitfield) {
        let mut state = self.lock();
        for &piece in scope {
            state.verified_mut().set(piece, found.get(piece));
        }
    }

    /// Sets the verified set (resume).
    pub(crate) fn set_verified(&self, trusted: &Bitfield) {
        let mut state = self.lock();
        for piece in 0..self.layout.piece_count() {
            state.verified_mut().set(piece, trusted.get(piece));
        }
    }

    pub(crate) fn target(&self, index: usize) -> FileTarget<'_> {
        let (path, relative, length) = match (self.paths.get(index), self.layout.files().get(index))
        {
            (Some(path), Some(spec)) => (path.as_path(), spec.path.as_path(), spec.length),
            _ => (Path::new(""), Path::new(""), 0),
        };
        FileTarget {
            index,
            path,
            relative,
            length,
        }
    }

    pub(crate) fn is_pad(&self, index: usize) -> bool {
        self.layout.files().get(index).is_some_and(|spec| spec.pad)
    }

    fn lock(&self) -> MutexGuard<'_, PieceState> {
        self.pieces
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Validates a block range and returns its piece's length.
    fn check_range(&self, piece: u32, offset: u32, len: usize) -> Result<u32> {
        let count = self.layout.piece_count();
        if piece >= count {
            return Err(StorageError::PieceOutOfRange { piece, count });
        }
        let piece_len = self.layout.piece_len(piece);
        let fits = u32::try_from(len)
            .ok()
            .filter(|&len| len > 0 && u64::from(offset) + u64::from(len) <= u64::from(piece_len));
        fits.map(|_| piece_len)
            .ok_or(StorageError::BlockOutOfRange {
                piece,
                offset,
                len: u32::try_from(len).unwrap_or(u32::MAX),
                piece_len,
            })
    }

    /// Over budget: reserve the slot, write the block now, then count it as received.
    fn write_through(
        &self,
        piece: u32,
        piece_len: u32,
        offset: u32,
        data: &[u8],
    ) -> Result<Insert> {
        let len = data.len() as u32;
        match self
            .lock()
            .insert(piece, piece_len, offset, Block::Writing(len))?
        {
            Insert::Stored => {}
            other => return Ok(other),
        }
        let at = self.layout.piece_offset(piece) + u64::from(offset);
        if let Err(e) = self.write_run(at, &[data]) {
            self.lock().abandon(piece, offset);
            return Err(e);
        }
        Ok(self.lock().settle(piece, piece_len, offset))
    }

    /// Hash and write (run by run), then mark verified if the hash matched: a piece is never
    /// recorded before its data was written; a corrupt piece's bytes may reach the file, but
    /// it is not recorded, and its blocks are fetched again.
    fn complete_piece(&self, piece: u32, blocks: PieceBlocks) -> WriteOutcome {
        let result = self.hash_and_write(piece, &blocks);
        drop(blocks); // gives the memory back to the budget
        self.lock().finish(piece, result.is_ok());
        match result {
            Ok(()) => WriteOutcome::PieceVerified,
            Err(e) => WriteOutcome::PieceFailed(e),
        }
    }

    /// Hashes the piece and writes its in-memory blocks, a run of at most
    /// `HASH_WRITE_RUN_BYTES` at a time right after hashing it, while the run is still in this
    /// core's cache (hashing all of a large piece first and then writing it read every byte
    /// from memory twice). A piece that fails its hash is then partly or wholly on disk, but
    /// never recorded as verified: its blocks are downloaded again and overwrite it.
    fn hash_and_write(&self, piece: u32, blocks: &PieceBlocks) -> Result<()> {
        let base = self.layout.piece_offset(piece);
        let mut hasher = Sha1::new();
        // The run of consecutive in-memory blocks hashed and not yet written: (start, blocks).
        let mut run: (u32, Vec<&[u8]>) = (0, Vec::new());
        let flush = |run: &mut (u32, Vec<&[u8]>)| -> Result<()> {
            if !run.1.is_empty() {
                self.write_run(base + u64::from(run.0), &run.1)?;
                run.1.clear();
            }
            Ok(())
        };
        for (&offset, block) in blocks {
            match block {
                Block::Mem { data, .. } => {
                    hasher.update(data);
                    if run.1.is_empty() {
                        run.0 = offset;
                    }
                    run.1.push(data);
                    if (offset - run.0) as usize + data.len() >= HASH_WRITE_RUN_BYTES {
                        flush(&mut run)?;
                    }
                }
                Block::Disk(len) | Block::Writing(len) => {
                    flush(&mut run)?;
                    self.hash_from_disk(base + u64::from(offset), *len, &mut hasher)?;
                }
            }
        }
        flush(&mut run)?;
        match self.layout.piece_hash(piece) {
            Some(want) if hasher.finalize().as_slice() == want => Ok(()),
            _ => Err(StorageError::PieceHashFailed { piece }),
        }
    }

    /// Writes the concatenation of `bufs` at stream offset `at` (within one piece).
    fn write_run(&self, at: u64, bufs: &[&[u8]]) -> Result<()> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let mut cursor = SliceCursor {
            bufs,
            index: 0,
            skip: 0,
        };
        for span in self.layout.spans(at, total as u32) {
            let mut slices = cursor.take(span.len as usize);
            if self.is_pad(span.file) {
                continue;
            }
            let target = self.target(span.file);
            let file = self.files.get(&target, Access::Write)?;
            let stripe = &self.write_locks[span.file % WRITE_LOCK_STRIPES];
            let serial = stripe
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            files::write_all_at(&file, &mut slices, span.offset)
                .map_err(|e| StorageError::io(target.path, e))?;
            drop(serial);
            self.files.mark_dirty(span.file);
        }
        Ok(())
    }

    /// Fills `buf` from stream offset `at`; pad regions become zeros.
    pub(crate) fn read_into(&self, at: u64, buf: &mut [u8]) -> Result<()> {
        let mut rest = buf;
        for span in self.layout.spans(at, rest.len() as u32) {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(span.len as usize);
            rest = tail;
            if self.is_pad(span.file) {
                head.fill(0);
                continue;
            }
            let target = self.target(span.file);
            let file = self.files.get(&target, Access::Read)?;
            file.read_exact_at(head, span.offset)
                .map_err(|e| StorageError::io(target.path, e))?;
        }
        Ok(())
    }

    fn hash_from_disk(&self, at: u64, len: u32, hasher: &mut Sha1) -> Result<()> {
        SCRATCH.with_borrow_mut(|scratch| {
            let mut done = 0u32;
            while done < len {
                let step = (len - done).min(HASH_READ_CHUNK_BYTES as u32);
                scratch.resize(step as usize, 0);
                self.read_into(at + u64::from(done), scratch)?;
                hasher.update(&scratch[..]);
                done += step;
            }
            Ok(())
        })
    }

    fn piece_matches(&self, piece: u32) -> Result<bool> {
        let count = self.layout.piece_count();
        let want = self
            .layout
            .piece_hash(piece)
            .ok_or(StorageError::PieceOutOfRange { piece, count })?;
        let mut hasher = Sha1::new();
        let len = self.layout.piece_len(piece);
        self.hash_from_disk(self.layout.piece_offset(piece), len, &mut hasher)?;
        Ok(hasher.finalize().as_slice() == want)
    }
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("id", &self.id)
            .field("root", &self.root)
            .field("pieces", &self.layout.piece_count())
            .finish_non_exhaustive()
    }
}

thread_local! {
    /// Per-thread buffer for re-reading data to hash (at most `HASH_READ_CHUNK_BYTES`).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Walks a list of buffers handing out `IoSlice`s for consecutive byte counts.
struct SliceCursor<'a> {
    bufs: &'a [&'a [u8]],
    index: usize,
    skip: usize,
}

impl<'a> SliceCursor<'a> {
    fn take(&mut self, mut len: usize) -> Vec<IoSlice<'a>> {
        let mut out = Vec::new();
        while len > 0 {
            let Some(buf) = self.bufs.get(self.index) else {
                break;
            };
            let avail = buf.get(self.skip..).unwrap_or_default();
            let step = avail.len().min(len);
            out.push(IoSlice::new(avail.get(..step).unwrap_or_default()));
            len -= step;
            self.skip += step;
            if self.skip >= buf.len() {
                self.index += 1;
                self.skip = 0;
            }
        }
        out
    }
}
