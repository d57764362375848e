//! [`Session`]: one per process. It owns the listening socket, our peer id, the session-wide
//! connection limits, the disk pool (and the task that routes its completions to torrents),
//! and the table of torrents by info-hash that incoming handshakes are matched against.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bitswarm_storage::{Completion, Completions, DiskPool, PoolConfig, TorrentId};
use bitswarm_wire::{PeerId, CLIENT_PREFIX};
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::JoinHandle;

use crate::config::SessionConfig;
use crate::error::{Result, RuntimeError};
use crate::handle::{AddTorrent, TorrentHandle};
use crate::handshake;
use crate::limits::ConnectionLimit;
use crate::rate_limit::{Limiters, RateLimits};
use crate::recv_buffer::ChunkPool;
use crate::torrent::{self, Command};

/// How often receive chunks nobody uses any more are freed.
const CHUNK_PRUNE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// A running BitTorrent session: listener, connections, disk threads, torrents.
///
/// Must be started and used inside a tokio runtime (with the `net`, `time` and `rt` drivers).
/// End it with [`Session::shutdown`]; dropping it stops everything without waiting.
#[derive(Debug)]
pub struct Session {
    shared: Arc<SessionShared>,
    tasks: Vec<JoinHandle<()>>,
}

/// What every task of the session shares.
#[derive(Debug)]
pub(crate) struct SessionShared {
    pub config: SessionConfig,
    pub peer_id: PeerId,
    pub listen_addr: SocketAddr,
    pub connections: Arc<ConnectionLimit>,
    pub half_open: Semaphore,
    pub next_peer_key: AtomicU64,
    /// Receive buffers of every connection.
    pub chunks: Arc<ChunkPool>,
    /// The session-wide rate limits every connection is under.
    pub rate_limits: Arc<Limiters>,
    next_torrent_id: AtomicU64,
    torrents: Mutex<HashMap<[u8; 20], TorrentEntry>>,
    /// Disk completions are forwarded to the torrent with this id.
    routes: Mutex<HashMap<TorrentId, mpsc::UnboundedSender<Completion>>>,
    /// Taken at shutdown so the pool's threads are joined off the runtime.
    disk: Mutex<Option<Arc<DiskPool>>>,
    /// Metadata fetches in progress (magnet links), by info-hash.
    pub(crate) magnets: crate::magnet::MagnetTable,
}

/// A torrent as the session's table knows it.
#[derive(Debug, Clone)]
pub(crate) struct TorrentEntry {
    pub cmd: mpsc::UnboundedSender<Command>,
    pub handle: TorrentHandle,
    /// Established connections, kept by the torrent task.
    pub peers: Arc<AtomicUsize>,
}

impl TorrentEntry {
    pub(crate) fn peer_count(&self) -> usize {
        self.peers.load(Ordering::Relaxed)
    }
}

impl Session {
    /// Binds the listener, starts the disk threads and the accept loop. Call it inside a
    /// tokio runtime.
    pub fn start(config: SessionConfig) -> Result<Self> {
        let config = config.sanitized();
        let listen_error = |e: std::io::Error| RuntimeError::Listen {
            addr: config.listen_addr,
            source: Arc::new(e),
        };
        let listener = handshake::listen(config.listen_addr, config.socket_buffer_bytes)
            .map_err(listen_error)?;
        let listen_addr = listener.local_addr().map_err(listen_error)?;
        let wake = Arc::new(Notify::new());
        let notify = Arc::clone(&wake);
        let pool_config = PoolConfig {
            disk_threads: config.disk_threads,
            job_queue_len_max: config.disk_job_queue_len_max,
            piece_buffer_bytes_max: config.piece_buffer_bytes_max,
            ..PoolConfig::default()
        };
        let (pool, completions) =
            DiskPool::new(&pool_config, Some(Box::new(move || notify.notify_one())))?;
        let shared = Arc::new(SessionShared {
            peer_id: PeerId::generate(&CLIENT_PREFIX, &mut rand::thread_rng()),
            listen_addr,
            connections: ConnectionLimit::new(config.connections_max),
            half_open: Semaphore::new(config.half_open_max),
            next_peer_key: AtomicU64::new(1),
            chunks: ChunkPool::new(config.read_buffer_bytes),
            rate_limits: Limiters::new(config.rate_limits),
            next_torrent_id: AtomicU64::new(1),
            torrents: Mutex::new(HashMap::new()),
            routes: Mutex::new(HashMap::new()),
            disk: Mutex::new(Some(Arc::new(pool))),
            magnets: crate::magnet::MagnetTable::default(),
            config,
        });
        tracing::info!(%listen_addr, "session listening");
        let tasks = vec![
            tokio::spawn(handshake::accept_loop(Arc::clone(&shared), listener)),
            tokio::spawn(route_completions(Arc::clone(&shared), wake, completions)),
        ];
        Ok(Self { shared, tasks })
    }

    /// The address the listener is bound to (with the real port when 0 was asked for).
    #[must_use]
    pub fn listen_addr(&self) -> SocketAddr {
        self.shared.listen_addr
    }

    /// What every task of the session shares (for sibling modules such as `magnet.rs`).
    pub(crate) fn shared(&self) -> &Arc<SessionShared> {
        &self.shared
    }

    /// Our peer id.
    #[must_use]
    pub fn peer_id(&self) -> PeerId {
        self.shared.peer_id
    }

    /// Changes the session-wide upload and download limits (all torrents together); open
    /// connections are under the new limits at once.
    pub fn set_rate_limits(&self, limits: RateLimits) {
        self.shared.rate_limits.set(limits);
    }

    /// The session-wide limits now.
    #[must_use]
    pub fn rate_limits(&self) -> RateLimits {
        self.shared.rate_limits.get()
    }

    /// Peer connections open now (handshaking or established), all torrents together.
    #[must_use]
    pub fn connection_count(&self) -> usize {
        self.shared.connections.open()
    }

    /// Adds a torrent and starts it: checks data on disk if asked, then connects to
    /// `add.peers` and accepts connections for it.
    pub async fn add_torrent(&self, add: AddTorrent) -> Result<TorrentHandle> {
        if self.shared.torrent_entry(&add.info_hash).is_some() {
            return Err(RuntimeError::DuplicateTorrent);
        }
        let id = TorrentId(self.shared.next_torrent_id.fetch_add(1, Ordering::Relaxed));
        let pool = self.shared.disk_pool().ok_or(RuntimeError::Shutdown)?;
        let info_hash = add.info_hash;
        let prepared = torrent::prepare(Arc::clone(&self.shared), pool, id, add).await?;
        let handle = prepared.entry.handle.clone();
        {
            let mut torrents = self.shared.lock_torrents();
            if torrents.contains_key(&info_hash) {
                return Err(RuntimeError::DuplicateTorrent);
            }
            self.shared
                .lock_routes()
                .insert(id, prepared.completions.clone());
            torrents.insert(info_hash, prepared.entry.clone());
        }
        prepared.spawn();
        Ok(handle)
    }

    /// The torrent with this info-hash, if it is in the session.
    #[must_use]
    pub fn torrent(&self, info_hash: &[u8; 20]) -> Option<TorrentHandle> {
        self.shared.torrent_entry(info_hash).map(|e| e.handle)
    }

    /// Every torrent in the session.
    #[must_use]
    pub fn torrents(&self) -> Vec<TorrentHandle> {
        self.shared
            .lock_torrents()
            .values()
            .map(|e| e.handle.clone())
            .collect()
    }

    /// Stops accepting, stops every torrent (closing its connections), then lets the disk
    /// threads finish their queued jobs and joins them.
    pub async fn shutdown(mut self) {
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        let handles: Vec<TorrentHandle> = self
            .shared
            .lock_torrents()
            .drain()
            .map(|(_, e)| e.handle)
            .collect();
        for handle in handles {
            handle.stop().await;
        }
        self.shared.lock_routes().clear();
        self.shared.half_open.close();
        let pool = self.shared.disk.lock().ok().and_then(|mut d| d.take());
        if let Some(pool) = pool {
            // The last reference joins the threads: do that off the runtime.
            let _ = tokio::task::spawn_blocking(move || drop(pool)).await;
        }
    }
}

impl Drop for Session {
    /// Without [`Session::shutdown`]: stops accepting and tells every torrent task to stop,
    /// without waiting; the disk threads are joined when the last task has let go of them.
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        for (_, entry) in self.shared.lock_torrents().drain() {
            let _ = entry.handle.request_stop();
        }
    }
}

impl SessionShared {
    pub(crate) fn torrent_entry(&self, info_hash: &[u8; 20]) -> Option<TorrentEntry> {
        self.lock_torrents().get(info_hash).cloned()
    }

    /// Forgets a torrent (its task is ending).
    pub(crate) fn remove_torrent(&self, info_hash: &[u8; 20], id: TorrentId) {
        self.lock_torrents().remove(info_hash);
        self.lock_routes().remove(&id);
    }

    pub(crate) fn disk_pool(&self) -> Option<Arc<DiskPool>> {
        self.disk.lock().ok().and_then(|d| d.clone())
    }

    fn lock_torrents(&self) -> MutexGuard<'_, HashMap<[u8; 20], TorrentEntry>> {
        self.torrents
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_routes(&self) -> MutexGuard<'_, HashMap<TorrentId, mpsc::UnboundedSender<Completion>>> {
        self.routes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Forwards disk completions to their torrents; woken by the pool after each completion.
/// Also frees idle receive chunks every [`CHUNK_PRUNE_INTERVAL`].
async fn route_completions(
    shared: Arc<SessionShared>,
    wake: Arc<Notify>,
    completions: Completions,
) {
    let mut prune = tokio::time::interval(CHUNK_PRUNE_INTERVAL);
    loop {
        tokio::select! {
            () = wake.notified() => {}
            _ = prune.tick() => {
                shared.chunks.prune();
                continue;
            }
        }
        let routes = shared.lock_routes();
        for completion in completions.drain() {
            if let Some(torrent) = routes.get(&completion.torrent) {
                let _ = torrent.send(completion);
            }
        }
    }
}
