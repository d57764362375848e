//! Parallel SHA-1 piece hashing over a list of files read as one concatenated stream.
//!
//! Work is cut into batches of whole pieces (at least [`BATCH_LEN_MIN`] bytes each) that
//! worker threads claim from one atomic counter, so fast threads take more and all finish
//! together. A worker walks its batch one file segment at a time and feeds the bytes to the
//! piece hasher, finishing a piece wherever a boundary falls, so a piece that spans files is
//! read from each in turn. A segment of at least [`MAP_LEN_MIN`] bytes is hashed straight from
//! a read-only memory map of at most [`MAP_WINDOW_LEN`] bytes (no copy out of the page cache;
//! see `map.rs`); a shorter one (small files, a file's tail) is read with `pread` into one
//! reused buffer. Memory is bounded by `threads × (MAP_WINDOW_LEN of mapped page cache +
//! MAP_LEN_MIN of buffer)` plus 20 bytes per piece. The calling thread does no hashing: it
//! reports progress every [`PROGRESS_INTERVAL`] until the workers are done.

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use sha1::{Digest, Sha1};

use crate::{map, CreateError, FileToHash, Progress};

/// File segments at least this long are hashed from a memory map; shorter ones are read
/// with `pread`, where a map's setup (mmap, page-table fill, munmap) would cost more.
pub const MAP_LEN_MIN: usize = 256 * 1024;
/// Longest memory-mapped window, and so the most bytes hashed between two checks of the
/// cancel flag (~5 ms of SHA-1).
pub const MAP_WINDOW_LEN: usize = 8 * 1024 * 1024;
/// A work unit is whole pieces adding up to at least this many bytes (one piece if larger).
pub const BATCH_LEN_MIN: u64 = 4 * 1024 * 1024;
/// How often the calling thread reports progress.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// SHA-1 of every `piece_length` piece of the concatenation of `files` (the last piece may be
/// shorter), hashed on `threads` worker threads (0 = one per core). `piece_length` must pass
/// the same check as [`CreateOptions::piece_length`](crate::CreateOptions::piece_length).
///
/// Calls `on_progress` from the calling thread about every [`PROGRESS_INTERVAL`] and once at
/// the end with all bytes hashed. Checks `cancel` before every file segment or map window
/// (at most [`MAP_WINDOW_LEN`] bytes) and returns [`CreateError::Cancelled`] once it is set. A
/// file whose size differs from [`FileToHash::length`] when opened or before a window is
/// mapped, or that ends early, is a [`CreateError::FileChanged`]; see `map.rs` for the one
/// race this cannot catch (another process shrinking a file while a window is being read).
pub fn hash_pieces(
    files: &[FileToHash],
    piece_length: u32,
    threads: usize,
    on_progress: &(dyn Fn(Progress) + Sync),
    cancel: &AtomicBool,
) -> Result<Vec<[u8; 20]>, CreateError> {
    let piece_length = crate::piece_length::check_piece_length(piece_length)?;
    let layout = Layout::new(files, piece_length)?;
    if layout.piece_count == 0 {
        on_progress(Progress {
            bytes_hashed: 0,
            total: 0,
        });
        return Ok(Vec::new());
    }
    let threads = match threads {
        0 => thread::available_parallelism().map_or(1, std::num::NonZero::get),
        n => n,
    }
    .min(usize::try_from(layout.batch_count).unwrap_or(usize::MAX));
    let run = Run {
        layout: &layout,
        next_batch: AtomicU64::new(0),
        bytes_hashed: AtomicU64::new(0),
        finished: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        cancel,
        error: Mutex::new(None),
    };
    let batches = run.hash_on(threads, on_progress);
    if let Some(err) = run
        .error
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        return Err(err);
    }
    if cancel.load(Ordering::Relaxed) {
        return Err(CreateError::Cancelled);
    }
    on_progress(Progress {
        bytes_hashed: layout.total,
        total: layout.total,
    });
    Ok(assemble(batches, layout.piece_count))
}

/// Where every piece and file lies in the concatenated stream.
struct Layout<'a> {
    files: &'a [FileToHash],
    /// Offset of each file's first byte in the stream.
    starts: Vec<u64>,
    total: u64,
    piece_length: u64,
    piece_count: u64,
    pieces_per_batch: u64,
    batch_count: u64,
}

impl<'a> Layout<'a> {
    fn new(files: &'a [FileToHash], piece_length: u32) -> Result<Self, CreateError> {
        let mut starts = Vec::with_capacity(files.len());
        let mut total = 0u64;
        for file in files {
            starts.push(total);
            total = total
                .checked_add(file.length)
                .ok_or(CreateError::TooLarge {
                    total_length: u64::MAX,
                    piece_length,
                })?;
        }
        // Checked by the caller: a power of two, at least 16 KiB.
        let piece_length = u64::from(piece_length);
        let piece_count = total.div_ceil(piece_length);
        let pieces_per_batch = BATCH_LEN_MIN.div_ceil(piece_length).max(1);
        Ok(Self {
            files,
            starts,
            total,
            piece_length,
            piece_count,
            pieces_per_batch,
            batch_count: piece_count.div_ceil(pieces_per_batch),
        })
    }

    /// Index of the non-empty file holding stream byte `offset` (< total): the last file
    /// starting at or before it (empty files share their start with the next file).
    fn file_at(&self, offset: u64) -> usize {
        self.starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1)
    }
}

/// Shared state of one hashing run.
struct Run<'a> {
    layout: &'a Layout<'a>,
    next_batch: AtomicU64,
    bytes_hashed: AtomicU64,
    finished: AtomicUsize,
    /// Set on the first error so the other workers stop early.
    stop: AtomicBool,
    cancel: &'a AtomicBool,
    error: Mutex<Option<CreateError>>,
}

/// The hashes of one batch: its first piece index and one hash per piece.
type Batch = (u64, Vec<[u8; 20]>);

impl Run<'_> {
    /// Runs `threads` workers and reports progress until they finish; returns their batches.
    fn hash_on(&self, threads: usize, on_progress: &(dyn Fn(Progress) + Sync)) -> Vec<Batch> {
        let reporter = thread::current();
        thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    let reporter = reporter.clone();
                    s.spawn(move || {
                        // Counts this worker as finished even if it panics, so the loop
                        // below cannot wait forever; the panic is re-raised at join.
                        let _done = Finished {
                            run: self,
                            reporter,
                        };
                        let mut batches = Vec::new();
                        if let Err(err) = self.work(&mut batches) {
                            self.fail(err);
                        }
                        batches
                    })
                })
                .collect();
            while self.finished.load(Ordering::Acquire) < threads {
                thread::park_timeout(PROGRESS_INTERVAL);
                on_progress(Progress {
                    bytes_hashed: self.bytes_hashed.load(Ordering::Relaxed),
                    total: self.layout.total,
                });
            }
            let mut all = Vec::new();
            for worker in workers {
                match worker.join() {
                    Ok(batches) => all.extend(batches),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            all
        })
    }

    fn fail(&self, err: CreateError) {
        self.stop.store(true, Ordering::Relaxed);
        let mut slot = self
            .error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.get_or_insert(err);
    }

    fn should_stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.cancel.load(Ordering::Relaxed)
    }

    /// One worker: claims batches until none are left, hashing each.
    fn work(&self, out: &mut Vec<Batch>) -> Result<(), CreateError> {
        let layout = self.layout;
        let mut reader = Reader { layout, open: None };
        let mut buf = vec![0u8; MAP_LEN_MIN];
        loop {
            let batch = self.next_batch.fetch_add(1, Ordering::Relaxed);
            if batch >= layout.batch_count || self.should_stop() {
                return Ok(());
            }
            let first_piece = batch * layout.pieces_per_batch;
            let start = first_piece * layout.piece_length;
            let end = (start + layout.pieces_per_batch * layout.piece_length).min(layout.total);
            let Some(hashes) = self.hash_range(&mut reader, &mut buf, start, end)? else {
                return Ok(());
            };
            out.push((first_piece, hashes));
        }
    }

    /// Hashes the whole pieces in `start..end` (`start` on a piece boundary). `None` when
    /// stopped early.
    fn hash_range(
        &self,
        reader: &mut Reader<'_>,
        buf: &mut [u8],
        start: u64,
        end: u64,
    ) -> Result<Option<Vec<[u8; 20]>>, CreateError> {
        let mut pieces = Piecer {
            hasher: Sha1::new(),
            hashes: Vec::with_capacity(
                usize::try_from((end - start).div_ceil(self.layout.piece_length)).unwrap_or(0),
            ),
            pos: start,
            piece_end: (start + self.layout.piece_length).min(end),
            end,
            piece_length: self.layout.piece_length,
        };
        while pieces.pos < end {
            if self.should_stop() {
                return Ok(None);
            }
            let n = reader.hash_segment(&mut pieces, buf)?;
            self.bytes_hashed.fetch_add(n as u64, Ordering::Relaxed);
        }
        Ok(Some(pieces.hashes))
    }
}

/// Marks a worker finished when dropped (also while unwinding from a panic, which stops the
/// other workers too) and wakes the reporting thread.
struct Finished<'a> {
    run: &'a Run<'a>,
    reporter: thread::Thread,
}

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.run.stop.store(true, Ordering::Relaxed);
        }
        self.run.finished.fetch_add(1, Ordering::Release);
        self.reporter.unpark();
    }
}

/// Cuts the bytes of one batch, fed in order, into pieces and hashes each.
struct Piecer {
    hasher: Sha1,
    hashes: Vec<[u8; 20]>,
    /// Stream offset of the next byte to feed.
    pos: u64,
    /// Stream offset where the current piece ends.
    piece_end: u64,
    /// Stream offset where the batch ends.
    end: u64,
    piece_length: u64,
}

impl Piecer {
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let take = usize::try_from(self.piece_end - self.pos)
                .map_or(data.len(), |n| n.min(data.len()));
            let (piece_part, rest) = data.split_at(take);
            self.hasher.update(piece_part);
            self.pos += take as u64;
            data = rest;
            if self.pos == self.piece_end {
                self.hashes.push(self.hasher.finalize_reset().into());
                self.piece_end = (self.pos + self.piece_length).min(self.end);
            }
        }
    }
}

/// One worker's positional reader over the stream, keeping its last opened file.
struct Reader<'a> {
    layout: &'a Layout<'a>,
    open: Option<(usize, File)>,
}

impl Reader<'_> {
    /// Feeds `pieces` the next segment of its batch: the bytes from `pieces.pos` to the end
    /// of the batch, of the file, or of one map window, whichever comes first. Returns the
    /// segment's length.
    fn hash_segment(&mut self, pieces: &mut Piecer, buf: &mut [u8]) -> Result<usize, CreateError> {
        let layout = self.layout;
        let index = layout.file_at(pieces.pos);
        // Internal invariant: pos < total, so `index` names a non-empty file.
        let (file, file_start) = (&layout.files[index], layout.starts[index]);
        let within = pieces.pos - file_start;
        let n = (file.length - within)
            .min(pieces.end - pieces.pos)
            .min(MAP_WINDOW_LEN as u64) as usize;
        let handle = self.open(index, file)?;
        if n >= MAP_LEN_MIN {
            let len_now = handle
                .metadata()
                .map_err(|e| CreateError::io(&file.path, e))?
                .len();
            if len_now != file.length {
                return Err(CreateError::FileChanged {
                    path: file.path.clone(),
                });
            }
            let map =
                map::map_window(handle, within, n).map_err(|e| CreateError::io(&file.path, e))?;
            pieces.feed(&map);
        } else {
            // n < MAP_LEN_MIN == buf.len()
            let part = &mut buf[..n];
            handle.read_exact_at(part, within).map_err(|e| {
                if e.kind() == ErrorKind::UnexpectedEof {
                    CreateError::FileChanged {
                        path: file.path.clone(),
                    }
                } else {
                    CreateError::io(&file.path, e)
                }
            })?;
            pieces.feed(part);
        }
        Ok(n)
    }

    /// The open handle of file `index`, opening it (and checking its size) if needed.
    fn open(&mut self, index: usize, file: &FileToHash) -> Result<&File, CreateError> {
        let handle = match self.open.take() {
            Some((open_index, handle)) if open_index == index => handle,
            _ => {
                let handle = File::open(&file.path).map_err(|e| CreateError::io(&file.path, e))?;
                let meta = handle
                    .metadata()
                    .map_err(|e| CreateError::io(&file.path, e))?;
                if meta.len() != file.length {
                    return Err(CreateError::FileChanged {
                        path: file.path.clone(),
                    });
                }
                handle
            }
        };
        Ok(&self.open.insert((index, handle)).1)
    }
}

/// Puts the batches in piece order and flattens them.
fn assemble(mut batches: Vec<Batch>, piece_count: u64) -> Vec<[u8; 20]> {
    batches.sort_unstable_by_key(|(first, _)| *first);
    let mut pieces = Vec::with_capacity(usize::try_from(piece_count).unwrap_or(0));
    for (_, hashes) in batches {
        pieces.extend(hashes);
    }
    pieces
}
