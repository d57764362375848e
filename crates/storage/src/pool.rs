//! The disk worker pool: a fixed number of named std threads taking jobs from one bounded
//! queue and answering on a completion channel, with an optional wake-up callback so an async
//! runtime can poll it without this crate depending on one.

use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};

use crate::bitfield::Bitfield;
use crate::check::{CheckScope, CheckTask, ChunkOutcome, ProgressFn};
use crate::checkpoint::ResumeSnapshot;
use crate::error::{Result, StorageError};
use crate::pieces::MemoryBudget;
use crate::resume_db::{InfoHashV1, ResumeDb};
use crate::storage::{ReadSegment, Storage, TorrentId, WriteOutcome};

/// Default number of disk threads.
pub const DISK_THREADS_DEFAULT: usize = 2;
/// Default bound on jobs waiting in the queue (16 KiB blocks: 4 MiB of writes in flight).
pub const JOB_QUEUE_LEN_MAX_DEFAULT: usize = 256;
/// Default bound on block data held in memory for incomplete pieces, all torrents together.
pub const PIECE_BUFFER_BYTES_MAX_DEFAULT: usize = 64 << 20;
/// Default amount of data one check chunk reads before the thread looks at the queue again.
pub const CHECK_CHUNK_BYTES_DEFAULT: u64 = 4 << 20;

/// Called (on a disk thread) after every completion is queued; e.g. a closure that notifies
/// a `tokio::sync::Notify`. Keep it short and non-blocking.
pub type Notify = Box<dyn Fn() + Send + Sync>;

/// Limits of a `DiskPool`.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Number of disk threads (at least 1).
    pub disk_threads: usize,
    /// Jobs that may wait in the queue; `try_submit` past it returns `Busy`.
    pub job_queue_len_max: usize,
    /// Bytes of block data kept in memory for incomplete pieces (`MemoryBudget`).
    pub piece_buffer_bytes_max: usize,
    /// Bytes a check reads per chunk.
    pub check_chunk_bytes: u64,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            disk_threads: DISK_THREADS_DEFAULT,
            job_queue_len_max: JOB_QUEUE_LEN_MAX_DEFAULT,
            piece_buffer_bytes_max: PIECE_BUFFER_BYTES_MAX_DEFAULT,
            check_chunk_bytes: CHECK_CHUNK_BYTES_DEFAULT,
        }
    }
}

/// Work for the disk threads. Each job names its torrent's `Storage`.
pub enum Job {
    /// Store one block (or a whole piece as one block); see `Storage::write_block`.
    /// Answers only when the block was rejected (`Event::WriteFailed`) or completed its piece
    /// (`Event::PieceDone`).
    Write {
        /// The torrent.
        storage: Arc<Storage>,
        /// Piece index.
        piece: u32,
        /// Offset of the block in the piece.
        offset: u32,
        /// The block's bytes (not copied until they reach the page cache).
        data: Bytes,
    },
    /// Read a block for seeding; answers `Event::Read` with the same `tag`.
    Read {
        /// The torrent.
        storage: Arc<Storage>,
        /// Piece index.
        piece: u32,
        /// Offset in the piece.
        offset: u32,
        /// Length in bytes.
        len: u32,
        /// The caller's routing tag (e.g. which peer asked), returned untouched.
        tag: u64,
    },
    /// Make a range resident in the page cache for sending it with `sendfile`; answers
    /// `Event::SendReady` with the same `tag` (see `Storage::prepare_send`).
    PrepareSend {
        /// The torrent.
        storage: Arc<Storage>,
        /// Piece index.
        piece: u32,
        /// Offset in the piece.
        offset: u32,
        /// Length in bytes.
        len: u32,
        /// The caller's routing tag, returned untouched.
        tag: u64,
    },
    /// Hash a piece from disk and record the result; answers `Event::PieceDone`.
    Verify {
        /// The torrent.
        storage: Arc<Storage>,
        /// Piece index.
        piece: u32,
    },
    /// Recheck data on disk, in chunks on every idle thread; answers `Event::CheckDone`.
    /// The result replaces the verified state of the pieces in scope, so do not write to the
    /// torrent while its check runs.
    Check {
        /// The torrent.
        storage: Arc<Storage>,
        /// Which pieces.
        scope: CheckScope,
        /// Called after each chunk.
        progress: Option<ProgressFn>,
    },
    /// `Storage::checkpoint`, then (if `db` is given) save the snapshot under the info-hash:
    /// sync first, record second. Answers `Event::Checkpointed`.
    Checkpoint {
        /// The torrent.
        storage: Arc<Storage>,
        /// Where to save, and under which key.
        db: Option<(Arc<ResumeDb>, InfoHashV1)>,
    },
}

impl Job {
    /// The torrent the job is for.
    #[must_use]
    pub fn torrent(&self) -> TorrentId {
        self.storage().id()
    }

    fn storage(&self) -> &Arc<Storage> {
        match self {
            Job::Write { storage, .. }
            | Job::Read { storage, .. }
            | Job::PrepareSend { storage, .. }
            | Job::Verify { storage, .. }
            | Job::Check { storage, .. }
            | Job::Checkpoint { storage, .. } => storage,
        }
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            Job::Write { .. } => "Write",
            Job::Read { .. } => "Read",
            Job::PrepareSend { .. } => "PrepareSend",
            Job::Verify { .. } => "Verify",
            Job::Check { .. } => "Check",
            Job::Checkpoint { .. } => "Checkpoint",
        };
        write!(f, "Job::{kind}({:?})", self.torrent())
    }
}

/// A job the pool did not take, handed back with the reason (`Busy` or `PoolClosed`).
#[derive(Debug)]
pub struct Rejected {
    /// The job, untouched, to retry later.
    pub job: Job,
    /// Why.
    pub error: StorageError,
}

impl From<Rejected> for StorageError {
    fn from(rejected: Rejected) -> Self {
        rejected.error
    }
}

/// A finished job.
#[derive(Debug)]
pub struct Completion {
    /// The torrent it was for.
    pub torrent: TorrentId,
    /// What happened.
    pub event: Event,
}

/// What a job produced.
#[derive(Debug)]
pub enum Event {
    /// A block was not stored (bad range, overlap, I/O error while writing through).
    WriteFailed {
        /// Piece index.
        piece: u32,
        /// Block offset.
        offset: u32,
        /// Why.
        error: StorageError,
    },
    /// A piece completed by writes, or a `Verify`: `Ok` means hashed, written and verified;
    /// `Err(PieceHashFailed)` means corrupt (nothing recorded); other errors are I/O.
    PieceDone {
        /// Piece index.
        piece: u32,
        /// The outcome.
        result: Result<()>,
    },
    /// A `Read` finished.
    Read {
        /// Piece index.
        piece: u32,
        /// Offset in the piece.
        offset: u32,
        /// The caller's tag.
        tag: u64,
        /// The bytes, or why not.
        result: Result<Bytes>,
    },
    /// A `PrepareSend` finished: the range's file runs, resident in the page cache.
    SendReady {
        /// Piece index.
        piece: u32,
        /// Offset in the piece.
        offset: u32,
        /// The caller's tag.
        tag: u64,
        /// Where the bytes are, or why not.
        result: Result<Vec<ReadSegment>>,
    },
    /// A `Check` finished and was applied to the storage.
    CheckDone {
        /// Pieces read.
        checked: u32,
        /// The torrent's whole verified set afterwards.
        verified: Bitfield,
    },
    /// A `Checkpoint` finished (synced, and saved if a database was given).
    Checkpointed {
        /// The snapshot taken, or why it failed.
        result: Result<ResumeSnapshot>,
    },
}

/// The receiving end of the completion channel. Completions are never dropped; there are at
/// most as many waiting as jobs submitted and not yet answered (the queue bound limits those).
#[derive(Debug, Clone)]
pub struct Completions {
    rx: Receiver<Completion>,
}

impl Completions {
    /// The next completion if one is ready.
    #[must_use]
    pub fn try_recv(&self) -> Option<Completion> {
        self.rx.try_recv().ok()
    }

    /// Waits up to `timeout` for a completion.
    #[must_use]
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Completion> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// Every completion ready now.
    pub fn drain(&self) -> impl Iterator<Item = Completion> + '_ {
        self.rx.try_iter()
    }

    /// Number of completions waiting.
    #[must_use]
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// Whether none is waiting.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

/// The pool; dropping it finishes the queued jobs (not unfinished checks) and joins the
/// threads.
pub struct DiskPool {
    jobs: Option<Sender<Job>>,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

struct Shared {
    budget: Arc<MemoryBudget>,
    checks: Mutex<Vec<Arc<CheckTask>>>,
    /// Wakes threads blocked on an empty queue when a check is added; never disconnects.
    wake_tx: Sender<()>,
    out: Sender<Completion>,
    notify: Option<Notify>,
    check_chunk_bytes: u64,
    disk_threads: usize,
}

impl DiskPool {
    /// Starts `config.disk_threads` threads named `disk-N`.
    pub fn new(config: &PoolConfig, notify: Option<Notify>) -> Result<(Self, Completions)> {
        let (jobs_tx, jobs_rx) = crossbeam_channel::bounded(config.job_queue_len_max);
        let (wake_tx, wake_rx) = crossbeam_channel::unbounded();
        let (out, rx) = crossbeam_channel::unbounded();
        let disk_threads = config.disk_threads.max(1);
        let shared = Arc::new(Shared {
            budget: MemoryBudget::new(config.piece_buffer_bytes_max),
            checks: Mutex::new(Vec::new()),
            wake_tx,
            out,
            notify,
            check_chunk_bytes: config.check_chunk_bytes,
            disk_threads,
        });
        let mut pool = Self {
            jobs: Some(jobs_tx),
            shared: Arc::clone(&shared),
            threads: Vec::with_capacity(disk_threads),
        };
        for index in 0..disk_threads {
            let (jobs, wake, shared) = (jobs_rx.clone(), wake_rx.clone(), Arc::clone(&shared));
            let thread = std::thread::Builder::new()
                .name(format!("disk-{index}"))
                .spawn(move || worker(&jobs, &wake, &shared))
                .map_err(StorageError::ThreadSpawn)?;
            pool.threads.push(thread);
        }
        Ok((pool, Completions { rx }))
    }

    /// Queues `job` if there is room, else hands it back with `Busy`: the caller should stop
    /// reading from peers and retry after the next completion.
    pub fn try_submit(&self, job: Job) -> Result<(), Rejected> {
        let Some(jobs) = &self.jobs else {
            return Err(Rejected {
                job,
                error: StorageError::PoolClosed,
            });
        };
        jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(job) => Rejected {
                job,
                error: StorageError::Busy,
            },
            TrySendError::Disconnected(job) => Rejected {
                job,
                error: StorageError::PoolClosed,
            },
        })
    }

    /// Queues `job`, blocking the calling thread while the queue is full. Not for async code.
    pub fn submit(&self, job: Job) -> Result<(), Rejected> {
        let Some(jobs) = &self.jobs else {
            return Err(Rejected {
                job,
                error: StorageError::PoolClosed,
            });
        };
        jobs.send(job).map_err(|e| Rejected {
            job: e.into_inner(),
            error: StorageError::PoolClosed,
        })
    }

    /// Jobs waiting in the queue (not counting those being run).
    #[must_use]
    pub fn queued(&self) -> usize {
        self.jobs.as_ref().map_or(0, Sender::len)
    }

    /// The shared bound on buffered block memory (read `used()` for metrics).
    #[must_use]
    pub fn budget(&self) -> &Arc<MemoryBudget> {
        &self.shared.budget
    }

    /// Abandons unfinished checks of `torrent` (chunks being read finish; no `CheckDone`).
    pub fn cancel_checks(&self, torrent: TorrentId) {
        self.shared
            .lock_checks()
            .retain(|task| task.torrent() != torrent);
    }
}

impl Drop for DiskPool {
    fn drop(&mut self) {
        self.jobs = None; // workers drain the queue, then see it disconnected
        self.shared.lock_checks().clear();
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!("a disk thread panicked");
            }
        }
    }
}

impl std::fmt::Debug for DiskPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskPool")
            .field("threads", &self.threads.len())
            .field("queued", &self.queued())
            .finish_non_exhaustive()
    }
}

/// A disk thread: queued jobs first, then chunks of running checks, then sleep.
fn worker(jobs: &Receiver<Job>, wake: &Receiver<()>, shared: &Shared) {
    loop {
        match jobs.try_recv() {
            Ok(job) => shared.run(job),
            Err(TryRecvError::Disconnected) => return,
            Err(TryRecvError::Empty) => {
                if shared.run_check_chunk() {
                    continue;
                }
                crossbeam_channel::select! {
                    recv(jobs) -> job => match job {
                        Ok(job) => shared.run(job),
                        Err(_) => return,
                    },
                    recv(wake) -> _ => {}
                }
            }
        }
    }
}

impl Shared {
    fn run(&self, job: Job) {
        let torrent = job.torrent();
        let event = match job {
            Job::Write {
                storage,
                piece,
                offset,
                data,
            } => match storage.write_block(piece, offset, data, &self.budget) {
                Ok(WriteOutcome::Stored | WriteOutcome::Ignored) => None,
                Ok(WriteOutcome::PieceVerified) => Some(Event::PieceDone {
                    piece,
                    result: Ok(()),
                }),
                Ok(WriteOutcome::PieceFailed(e)) => Some(Event::PieceDone {
                    piece,
                    result: Err(e),
                }),
                Err(error) => Some(Event::WriteFailed {
                    piece,
                    offset,
                    error,
                }),
            },
            Job::Read {
                storage,
                piece,
                offset,
                len,
                tag,
            } => {
                let result = storage.read_block(piece, offset, len);
                Some(Event::Read {
                    piece,
                    offset,
                    tag,
                    result,
                })
            }
            Job::PrepareSend {
                storage,
                piece,
                offset,
                len,
                tag,
            } => Some(Event::SendReady {
                piece,
                offset,
                tag,
                result: storage.prepare_send(piece, offset, len),
            }),
            Job::Verify { storage, piece } => Some(Event::PieceDone {
                piece,
                result: storage.verify_piece(piece),
            }),
            Job::Check {
                storage,
                scope,
                progress,
            } => self.start_check(CheckTask::new(
                storage,
                scope,
                self.check_chunk_bytes,
                progress,
            )),
            Job::Checkpoint { storage, db } => {
                let result = storage.checkpoint().and_then(|snapshot| match db {
                    Some((db, info_hash)) => db.save(&info_hash, &snapshot).map(|()| snapshot),
                    None => Ok(snapshot),
                });
                Some(Event::Checkpointed { result })
            }
        };
        if let Some(event) = event {
            self.emit(torrent, event);
        }
    }

    fn start_check(&self, task: CheckTask) -> Option<Event> {
        if task.is_empty() {
            let ChunkOutcome::Finished { checked, verified } = task.finish() else {
                return None;
            };
            return Some(Event::CheckDone { checked, verified });
        }
        self.lock_checks().push(Arc::new(task));
        for _ in 1..self.disk_threads {
            // Unbounded and never disconnected while a worker holds `self`.
            let _ = self.wake_tx.send(());
        }
        None
    }

    /// Runs one chunk of some running check; `false` if there is none.
    fn run_check_chunk(&self) -> bool {
        let Some((task, range)) = self.claim_chunk() else {
            return false;
        };
        if let ChunkOutcome::Finished { checked, verified } = task.run(range) {
            self.emit(task.torrent(), Event::CheckDone { checked, verified });
        }
        true
    }

    fn claim_chunk(&self) -> Option<(Arc<CheckTask>, (usize, usize))> {
        let mut checks = self.lock_checks();
        while let Some(task) = checks.first() {
            if let Some(range) = task.claim() {
                return Some((Arc::clone(task), range));
            }
            checks.remove(0); // fully claimed; its last chunk's runner reports it
        }
        None
    }

    fn emit(&self, torrent: TorrentId, event: Event) {
        // The receiver may be gone (the runtime shut down first); nothing to tell then.
        if self.out.send(Completion { torrent, event }).is_ok() {
            if let Some(notify) = &self.notify {
                notify();
            }
        }
    }

    fn lock_checks(&self) -> MutexGuard<'_, Vec<Arc<CheckTask>>> {
        self.checks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
