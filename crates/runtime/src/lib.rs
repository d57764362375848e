//! The tokio layer of bitswarm: it owns the sockets, the timers and the disk threads, and feeds
//! the sans-IO engine ([`bitswarm_engine::Torrent`]) what happens, carrying out what it asks.
//!
//! # Shape
//! - [`Session`] (one per process): the listener, our peer id, session-wide limits
//!   ([`SessionConfig`]), the disk pool, and the torrents by info-hash.
//! - One **torrent task** per torrent owns its engine and its storage handle. It waits on
//!   commands from [`TorrentHandle`]s, disk completions, peer input and the engine's timer;
//!   after each input it drains the engine's actions: `Send` to a connection's send queue,
//!   `ServeBlock` to a disk read (consecutive blocks coalesced) then to the send queue,
//!   `StoreBlock` to a disk write, `VerifyPiece` paired with the storage's own hash of the
//!   piece, `Connect` to a connect task, `Disconnect`/`Ban` to closing.
//! - Per connection a **reader** task (reads into a `BytesMut` whose chunks are recycled
//!   through a session-wide pool once the blocks in them are written, frames with
//!   [`bitswarm_wire::FrameDecoder`], forwards each read's messages as one batch) and a
//!   **writer** task (small messages coalesced into one buffer, blocks as shared `Bytes`,
//!   one vectored write for everything queued) that reports each block to the torrent task
//!   once its last byte is written, for the engine's `block_sent`.
//! - The **accept loop** reads the first 48 bytes of each incoming handshake to find the
//!   torrent by info-hash, answers, and hands the connection to that torrent's task.
//!
//! # Invariants
//! - **Nothing blocks the runtime**: file I/O and piece hashing run on the storage crate's
//!   disk threads; the per-block digests of smart ban and the blocking setup steps of
//!   `add_torrent` run on tokio's blocking pool.
//! - **Every queue is bounded**: peer input per torrent (`peer_input_queue_len_max`, readers
//!   wait when it is full, so TCP pushes back), bytes queued per connection
//!   (`peer_send_buffer_max`: blocks are held back beyond it), the disk pool's job queue (a
//!   torrent that finds it full keeps its jobs and stops reading from peers), connections
//!   (`connections_max`, `connections_per_torrent_max`, `half_open_max`).
//! - **Block data is not copied** between the socket and the disk: a received block is a
//!   slice of the connection's receive buffer all the way to the disk thread. A served block
//!   is sent with `sendfile(2)` from the page cache, which a disk thread filled first
//!   (`Job::PrepareSend`), after its 13-byte header; with `SessionConfig::sendfile` off it is
//!   the `Bytes` a disk read produced, written with its header by one vectored write.
//! - **Statistics count the wire**: a block counts as uploaded when its last byte has been
//!   written to the socket (never when queued; blocks dropped with a closed connection never
//!   count); `downloaded` is every payload byte received, `wasted` the part of it thrown
//!   away, so `downloaded - wasted` is what was kept.
//! - **A peer's misbehaviour ends its connection, never the torrent**: framing errors close
//!   the reader; the engine turns protocol violations into `Disconnect`.
//! - **Rate limits** (`rate_limit.rs`): token buckets for the session and each torrent
//!   ([`RateLimits`], changeable at run time); a writer takes upload tokens before each
//!   write, a reader pays for each read before the next, in FIFO turns with the other
//!   connections. With no limit set a connection only loads an atomic per read or write.
//!
//! # Deliberately absent
//! No protocol decisions (those are the engine's), no tracker or DHT client (peers come in
//! through [`TorrentHandle::add_peers`]), no printing, no encryption (BEP 8 obfuscation) and
//! no uTP yet.

mod config;
mod error;
mod handle;
mod handshake;
mod limits;
mod magnet;
mod peer;
mod rate_limit;
mod recv_buffer;
mod send_queue;
mod session;
mod torrent;

pub use bitswarm_engine::{Event, PeerKey, PeerStats, TorrentConfig};
pub use bitswarm_storage::{FileSpec, ResumeDb, ResumeSnapshot, TorrentLayout};
pub use bitswarm_wire::{Bitfield, PeerId};
pub use config::SessionConfig;
pub use error::{Result, RuntimeError};
pub use handle::{AddTorrent, Resume, TorrentEvent, TorrentHandle, TorrentState, TorrentStats};
pub use magnet::{FetchedMetadata, MetadataFetchHandle, PeerSink, METADATA_CONNECTIONS_MAX};
pub use rate_limit::{RateLimits, RATE_MIN};
pub use session::Session;
pub use torrent::STATS_INTERVAL;
