//! Disk storage for bitswarm: mapping pieces to files, positional I/O and SHA-1 hashing on a
//! bounded pool of disk threads (never on the async runtime), and resume state in SQLite.
//!
//! # Shape
//! - [`TorrentLayout`] is pure geometry built from a plain description ([`FileSpec`]s, piece
//!   length, piece hashes); this crate does not depend on the metainfo parser.
//! - [`Storage`] is one torrent under its download folder. Its methods block; they are meant
//!   to run on the [`DiskPool`]'s threads, and are callable directly in tools and tests.
//! - [`DiskPool`] runs [`Job`]s on `disk_threads` std threads from a queue bounded by
//!   `job_queue_len_max`, and answers with [`Completion`]s on a channel plus an optional
//!   [`Notify`] callback. It does not depend on tokio: a runtime passes a callback that wakes
//!   its task (e.g. `tokio::sync::Notify::notify_one`) and drains [`Completions`] there.
//!   Keeping tokio out keeps this crate usable from the simulator and from plain threads, and
//!   a callback costs nothing when unused.
//! - [`ResumeDb`] is one SQLite file for the whole session.
//!
//! # Rules on disk
//! - **Files are created lazily**, when a write first touches them, as sparse files of their
//!   full length (`set_len`; `StorageOptions::preallocate` allocates instead). Nothing is
//!   created by `Storage::open`.
//! - **Pad files** (BEP 47) are never created, written or opened; reads of them return zeros.
//! - **Unwanted files**: storage writes what it is given. The picker fetches only
//!   [`TorrentLayout::wanted_pieces`], so an unwanted file is created only when it shares a
//!   piece with a wanted file; it is then created sparse and holds just those boundary bytes
//!   (the Transmission approach). We chose this over a `.parts` side file: no second location
//!   to read from, nothing to move when a file becomes wanted, and a resume check reads the
//!   bytes where they belong. The cost: such a file appears on disk, mostly holes.
//! - **Paths** are checked again at `Storage::open` (each component a plain name: no `..`,
//!   no root, no separator or NUL inside), folders are checked to resolve inside the root
//!   before anything is created in or read from them, and files open with `O_NOFOLLOW`.
//! - **Zero-length files** own no piece; [`Storage::create_empty_files`] makes the wanted ones.
//!
//! # The write path and memory
//! A [`Job::Write`] carries a block as [`bytes::Bytes`]. While the pool's [`MemoryBudget`]
//! (`piece_buffer_bytes_max`) allows, blocks wait in memory until their piece is complete;
//! the block that completes it triggers, on the same disk thread: SHA-1 over the blocks in
//! memory, and only if it matches, one `pwritev` per file run, then marking the piece
//! verified. Payload bytes are copied once, into the page cache. A corrupt piece is never
//! written. Past the budget, blocks are written through at once and re-read for hashing.
//! Writes into one file are serialised (a striped lock by file index): two disk threads
//! writing the same file at once made the kernel spin on its inode lock.
//!
//! # The read path (seeding)
//! [`Job::Read`] copies a range into a fresh buffer (`pread`). [`Job::PrepareSend`] instead
//! makes the range resident in the page cache on the disk thread (`sendfile` to `/dev/null`:
//! page references only, no copy; a disk read, if one is needed, waits here) and answers with
//! its file runs ([`ReadSegment`]), which a runtime hands to `sendfile(2)` on the socket: the
//! bytes never enter user space.
//!
//! # Durability
//! A piece is marked verified only after its `pwrite` returned. [`Storage::checkpoint`]
//! snapshots the verified set, then `fdatasync`s every file written since the previous
//! checkpoint (and `fsync`s folders that gained entries), then stamps files (size, mtime);
//! only then may the snapshot be saved ([`Job::Checkpoint`] does both in that order). So a
//! resume record never claims data that is not on stable storage. SQLite runs in WAL mode with
//! `synchronous=NORMAL`: a power cut may lose the latest saves (we then recheck more), never
//! make a record claim more. After a crash, files written after the last checkpoint have a
//! newer mtime than recorded, so their pieces are rechecked ([`ResumeVerdict::recheck`]).
//! Limitation: a file changed outside bitswarm within the filesystem's mtime granularity and
//! keeping its size is not noticed.
//!
//! # What this crate does not do
//! No networking, no piece picking, no tokio, no clock reads (callers pass `added_at_unix`).
//! It does not cache reads (the page cache does) and does not move files.

mod bitfield;
mod check;
mod checkpoint;
mod error;
mod files;
mod layout;
mod paths;
mod pieces;
mod pool;
mod resume_db;
mod storage;

pub use bitfield::Bitfield;
pub use check::{CheckProgress, CheckScope, ProgressFn};
pub use checkpoint::{reconcile, FileStamp, ResumeSnapshot, ResumeVerdict};
pub use error::{Result, StorageError};
pub use layout::{FileSpan, FileSpans, FileSpec, TorrentLayout};
pub use pieces::MemoryBudget;
pub use pool::{
    Completion, Completions, DiskPool, Event, Job, Notify, PoolConfig, Rejected,
    CHECK_CHUNK_BYTES_DEFAULT, DISK_THREADS_DEFAULT, JOB_QUEUE_LEN_MAX_DEFAULT,
    PIECE_BUFFER_BYTES_MAX_DEFAULT,
};
pub use resume_db::{InfoHashV1, ResumeDb, TorrentRecord, DB_BUSY_TIMEOUT_MS};
pub use storage::{
    ReadSegment, Storage, StorageOptions, TorrentId, WriteOutcome, HASH_READ_CHUNK_BYTES,
    OPEN_FILES_MAX_DEFAULT,
};
