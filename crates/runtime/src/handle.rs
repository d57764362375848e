//! The public face of a running torrent: what to give [`Session::add_torrent`](crate::Session::add_torrent)
//! ([`AddTorrent`], [`Resume`]), and the [`TorrentHandle`] it returns, with its statistics
//! snapshot ([`TorrentStats`]) and event stream ([`TorrentEvent`]). A handle only sends
//! commands and reads snapshots; the torrent's state belongs to its task.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bitswarm_engine::{PeerKey, PeerStats};
use bitswarm_storage::{ResumeDb, ResumeSnapshot, StorageError, TorrentLayout};
use bitswarm_wire::Bitfield;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::error::{Result, RuntimeError};
use crate::rate_limit::{Limiters, RateLimits};
use crate::torrent::Command;

/// A torrent to add to a session.
#[derive(Debug, Clone)]
pub struct AddTorrent {
    /// The v1 info-hash (SHA-1 of the info dictionary): the key of the torrent in the session
    /// and in handshakes.
    pub info_hash: [u8; 20],
    /// Files, piece length and piece hashes (files marked unwanted are not downloaded).
    pub layout: TorrentLayout,
    /// The download folder the layout's paths are relative to.
    pub save_path: PathBuf,
    /// What is already on disk.
    pub resume: Resume,
    /// Peers to connect to at once (more can come later through
    /// [`TorrentHandle::add_peers`]).
    pub peers: Vec<SocketAddr>,
    /// The info dictionary exactly as hashed for `info_hash`, served to peers that fetch it
    /// (BEP 9, magnet links); `None` serves nothing.
    pub metadata: Option<bytes::Bytes>,
    /// A private torrent (BEP 27): no metadata serving, no PEX.
    pub private: bool,
    /// This torrent's upload and download limits, on top of the session's (change them
    /// with [`TorrentHandle::set_rate_limits`]); `RateLimits::default()` for none.
    pub rate_limits: RateLimits,
}

/// What the session may assume about the data on disk when a torrent is added.
#[derive(Debug, Clone)]
pub enum Resume {
    /// Nothing is there yet: start with no piece.
    Fresh,
    /// Trust these pieces without reading them (the caller vouches: it just created the
    /// files, or checked them itself).
    Trusted(Bitfield),
    /// Read and hash everything before starting (progress in [`TorrentState::Checking`]).
    Check,
    /// A snapshot saved earlier (see [`TorrentHandle::checkpoint`]): trusted for files that
    /// are unchanged since, the rest is rechecked.
    Snapshot(ResumeSnapshot),
}

/// What a torrent is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TorrentState {
    /// Hashing data on disk; `checked` of `total` pieces read so far.
    Checking {
        /// Pieces read.
        checked: u32,
        /// Pieces to read.
        total: u32,
    },
    /// Exchanging with peers, some wanted pieces missing.
    Downloading,
    /// Every wanted piece is verified; uploading only.
    Seeding,
    /// Paused by the user: no connections.
    Paused,
    /// Stopped after a disk error (see the `StorageFailed` event); no connections.
    Failed,
}

/// A snapshot of a torrent's progress, refreshed by its task at most every
/// `STATS_INTERVAL` and on every state change or completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorrentStats {
    /// What the torrent is doing.
    pub state: TorrentState,
    /// Pieces in the torrent.
    pub piece_count: u32,
    /// Verified pieces.
    pub pieces_have: u32,
    /// Wanted pieces not yet verified.
    pub pieces_missing: u32,
    /// Bytes in the torrent.
    pub total_length: u64,
    /// Payload bytes received in piece messages since the torrent was added, the
    /// [`wasted`](Self::wasted) ones included: `downloaded - wasted` is what was received
    /// and kept (verified pieces, and blocks of pieces not complete yet). Blocks of a peer
    /// that broke the protocol with them (a wrong block length) count in neither.
    pub downloaded: u64,
    /// Payload bytes written to peers' sockets since the torrent was added (a block counts
    /// once its last byte is written, not when it is queued).
    pub uploaded: u64,
    /// Payload bytes accepted per second (last few seconds; blocks thrown away on arrival
    /// are not included, blocks of pieces that later fail are).
    pub download_rate: u64,
    /// Payload bytes written to peers' sockets per second (last few seconds).
    pub upload_rate: u64,
    /// Connected peers.
    pub peers: usize,
    /// Connected peers that have every piece.
    pub seeds: u32,
    /// Pieces that failed their hash check.
    pub hash_failures: u32,
    /// The part of [`downloaded`](Self::downloaded) thrown away: every byte of the pieces
    /// that failed their hash check, and blocks we had not asked for or no longer needed
    /// (endgame duplicates, answers that crossed our cancel).
    pub wasted: u64,
    /// Every wanted piece is verified.
    pub finished: bool,
    /// Every piece is verified.
    pub complete: bool,
}

impl TorrentStats {
    pub(crate) fn initial(piece_count: u32, total_length: u64, state: TorrentState) -> Self {
        Self {
            state,
            piece_count,
            pieces_have: 0,
            pieces_missing: piece_count,
            total_length,
            downloaded: 0,
            uploaded: 0,
            download_rate: 0,
            upload_rate: 0,
            peers: 0,
            seeds: 0,
            hash_failures: 0,
            wasted: 0,
            finished: false,
            complete: false,
        }
    }
}

/// Something that happened to a torrent, for progress display.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TorrentEvent {
    /// From the engine: a piece verified or failed, completion, a ban.
    Engine(bitswarm_engine::Event),
    /// The check of data on disk finished with this many pieces found good.
    Checked {
        /// Pieces verified.
        pieces_have: u32,
    },
    /// A disk operation failed; the torrent stopped ([`TorrentState::Failed`]).
    StorageFailed(Arc<StorageError>),
    /// The first block of payload arrived, `after` the connection it came on completed its
    /// handshake: the time to first byte. Sent once per torrent.
    FirstBlock {
        /// From the handshake's completion to the block's arrival.
        after: std::time::Duration,
    },
}

/// A handle to a torrent running in a session. Cheap to clone; every method is non-blocking
/// except the `async` ones, which wait for the torrent task's answer.
#[derive(Debug, Clone)]
pub struct TorrentHandle {
    info_hash: [u8; 20],
    cmd: mpsc::UnboundedSender<Command>,
    stats: watch::Receiver<TorrentStats>,
    events: broadcast::Sender<TorrentEvent>,
    rate_limits: Arc<Limiters>,
}

impl TorrentHandle {
    pub(crate) fn new(
        info_hash: [u8; 20],
        cmd: mpsc::UnboundedSender<Command>,
        stats: watch::Receiver<TorrentStats>,
        events: broadcast::Sender<TorrentEvent>,
        rate_limits: Arc<Limiters>,
    ) -> Self {
        Self {
            info_hash,
            cmd,
            stats,
            events,
            rate_limits,
        }
    }

    /// Changes this torrent's upload and download limits (the session's apply as well);
    /// its open connections are under the new limits at once.
    pub fn set_rate_limits(&self, limits: RateLimits) {
        self.rate_limits.set(limits);
    }

    /// This torrent's own limits now.
    #[must_use]
    pub fn rate_limits(&self) -> RateLimits {
        self.rate_limits.get()
    }

    /// Waits until every byte queued for this torrent's peers before the call has been
    /// written to their sockets (or their connections closed), at most `timeout`; `false` if
    /// the time ran out. [`TorrentStats::uploaded`] counts written bytes only, so after this
    /// it includes everything that was queued (give the task one [`STATS_INTERVAL`] to
    /// publish it).
    ///
    /// [`STATS_INTERVAL`]: crate::STATS_INTERVAL
    pub async fn flush_uploads(&self, timeout: std::time::Duration) -> bool {
        self.rate_limits.flushed(timeout).await
    }

    /// The torrent's info-hash.
    #[must_use]
    pub fn info_hash(&self) -> [u8; 20] {
        self.info_hash
    }

    /// Adds peer addresses to connect to (from a tracker, DHT, the command line). Duplicates
    /// are ignored; connections open as limits allow.
    pub fn add_peers(&self, addrs: impl IntoIterator<Item = SocketAddr>) {
        let addrs: Vec<SocketAddr> = addrs.into_iter().collect();
        if !addrs.is_empty() {
            let _ = self.cmd.send(Command::AddPeers(addrs));
        }
    }

    /// The latest statistics snapshot.
    #[must_use]
    pub fn stats(&self) -> TorrentStats {
        self.stats.borrow().clone()
    }

    /// A receiver of statistics snapshots, to wait for changes
    /// (`watch::Receiver::wait_for`).
    #[must_use]
    pub fn watch_stats(&self) -> watch::Receiver<TorrentStats> {
        self.stats.clone()
    }

    /// Subscribes to the torrent's events from now on.
    #[must_use]
    pub fn events(&self) -> broadcast::Receiver<TorrentEvent> {
        self.events.subscribe()
    }

    /// Closes every connection and stops connecting; verified pieces are kept.
    pub fn pause(&self) {
        let _ = self.cmd.send(Command::Pause);
    }

    /// Resumes a paused torrent: reconnects to the peers it knew.
    pub fn resume(&self) {
        let _ = self.cmd.send(Command::Resume);
    }

    /// Syncs written data to disk and returns a snapshot of what is verified, saved in `db`
    /// under the info-hash when given (sync first, record second).
    pub async fn checkpoint(&self, db: Option<Arc<ResumeDb>>) -> Result<ResumeSnapshot> {
        let (reply, answer) = oneshot::channel();
        self.cmd
            .send(Command::Checkpoint { db, reply })
            .map_err(|_| RuntimeError::Shutdown)?;
        answer.await.map_err(|_| RuntimeError::Shutdown)?
    }

    /// A snapshot of every connected peer, keyed by connection (a reconnect gets a new key):
    /// its address, choke and interest state, rates and the payload bytes exchanged with it.
    /// Empty while no engine runs (checking, paused).
    pub async fn peer_stats(&self) -> Result<Vec<(PeerKey, PeerStats)>> {
        let (reply, answer) = oneshot::channel();
        self.cmd
            .send(Command::PeerStats { reply })
            .map_err(|_| RuntimeError::Shutdown)?;
        answer.await.map_err(|_| RuntimeError::Shutdown)
    }

    /// Waits until the torrent has every wanted piece (or has stopped).
    pub async fn wait_finished(&self) -> Result<()> {
        let mut stats = self.stats.clone();
        let done = stats
            .wait_for(|s| s.finished || s.state == TorrentState::Failed)
            .await
            .map_err(|_| RuntimeError::Shutdown)?;
        if done.state == TorrentState::Failed {
            return Err(RuntimeError::TorrentFailed);
        }
        Ok(())
    }

    /// Removes the torrent from its session: closes its connections and forgets it. Data on
    /// disk is left as it is.
    pub async fn remove(self) {
        let (reply, done) = oneshot::channel();
        if self.cmd.send(Command::Remove { reply }).is_ok() {
            let _ = done.await;
        }
    }

    /// Asks the task to stop and waits for it (session shutdown).
    pub(crate) async fn stop(&self) {
        if let Some(done) = self.request_stop() {
            let _ = done.await;
        }
    }

    /// Asks the task to stop; the receiver says when it has.
    pub(crate) fn request_stop(&self) -> Option<oneshot::Receiver<()>> {
        let (reply, done) = oneshot::channel();
        self.cmd
            .send(Command::Shutdown { reply })
            .ok()
            .map(|()| done)
    }
}
