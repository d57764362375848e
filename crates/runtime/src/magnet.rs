//! Magnet links, first phase: fetching a torrent's info dictionary from its peers before the
//! torrent can be added ([`Session::fetch_metadata`]), and [`PeerSink`], the one door through
//! which trackers, the DHT and PEX hand a torrent peers whether it is still fetching its
//! metadata or already running.
//!
//! **Why a separate phase with its own connections** (rather than a session entry whose torrent
//! task waits without metadata): a torrent task always has its geometry, storage and engine,
//! so nothing in it has to cope with "not known yet"; the fetch is a small task around the
//! sans-IO [`MetadataFetch`] with outgoing connections only, which are closed when the bytes
//! hash to the info-hash. The torrent is then added normally and reconnects to the same peers
//! (one more handshake each, a round trip). The cost: while fetching, incoming connections for
//! the info-hash are refused (their peers retry later, and trackers/DHT/PEX lead us to them).
//!
//! The caller builds the torrent from the bytes (the runtime does not parse metainfo), adds it
//! with [`Session::add_torrent`], then [`MetadataFetchHandle::hand_over`] passes on the peers
//! that arrived meanwhile.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use bitswarm_engine::metadata::{FetchAction, MetadataFetch};
use bitswarm_engine::{PeerInfo, PeerKey};
use bitswarm_wire::{Frame, Message};
use bytes::Bytes;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::error::{Result, RuntimeError};
use crate::handle::TorrentHandle;
use crate::handshake;
use crate::session::{Session, SessionShared};

/// Connections (open or opening) one metadata fetch uses at once.
pub const METADATA_CONNECTIONS_MAX: usize = 8;
/// Attempts to connect to one address during a fetch.
const CONNECT_ATTEMPTS_MAX: u32 = 3;
/// Wait before retrying an address whose connection failed or ended.
const RETRY_DELAY: Duration = Duration::from_secs(2);
/// Addresses remembered by one fetch.
const CANDIDATES_MAX: usize = 1000;
/// Messages from connections waiting for the fetch task.
const INPUT_QUEUE_LEN_MAX: usize = 256;
/// Receive buffer growth per read on a fetch connection.
const READ_CHUNK_BYTES: usize = 32 * 1024;

/// Verified metadata and the peers that gave it.
#[derive(Debug, Clone)]
pub struct FetchedMetadata {
    /// The info dictionary; its SHA-1 is the info-hash.
    pub info: Bytes,
    /// Peers to connect the torrent to: those that connected during the fetch first, then
    /// the rest of the addresses it knew (banned ones left out).
    pub peers: Vec<SocketAddr>,
    /// From the start of the fetch to the verified bytes.
    pub elapsed: Duration,
}

/// The table of fetches in progress, by info-hash: where a [`PeerSink`] sends peers for a
/// torrent that is not in the session yet.
#[derive(Debug, Default)]
pub(crate) struct MagnetTable {
    fetches: Mutex<HashMap<[u8; 20], mpsc::UnboundedSender<Vec<SocketAddr>>>>,
}

impl MagnetTable {
    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 20], mpsc::UnboundedSender<Vec<SocketAddr>>>> {
        self.fetches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Where peers for one info-hash go (from trackers, the DHT, PEX, the command line): to the
/// torrent once it is in the session, else to its metadata fetch; dropped when neither
/// exists. Cheap to clone; does not keep the session alive.
#[derive(Debug, Clone)]
pub struct PeerSink {
    shared: Weak<SessionShared>,
    info_hash: [u8; 20],
}

impl PeerSink {
    /// Hands `addrs` on; `false` when no torrent or fetch took them.
    pub fn add_peers(&self, addrs: impl IntoIterator<Item = SocketAddr>) -> bool {
        let Some(shared) = self.shared.upgrade() else {
            return false;
        };
        let addrs: Vec<SocketAddr> = addrs.into_iter().collect();
        if let Some(entry) = shared.torrent_entry(&self.info_hash) {
            entry.handle.add_peers(addrs);
            return true;
        }
        let fetches = shared.magnets.lock();
        fetches
            .get(&self.info_hash)
            .is_some_and(|tx| tx.send(addrs).is_ok())
    }

    /// The info-hash this sink feeds.
    #[must_use]
    pub fn info_hash(&self) -> [u8; 20] {
        self.info_hash
    }
}

/// A metadata fetch in progress. Dropping it cancels the fetch.
#[derive(Debug)]
pub struct MetadataFetchHandle {
    shared: Arc<SessionShared>,
    info_hash: [u8; 20],
    peers: mpsc::UnboundedSender<Vec<SocketAddr>>,
    result: Option<oneshot::Receiver<TaskResult>>,
    /// Peers that arrived after the fetch task ended.
    late: Option<mpsc::UnboundedReceiver<Vec<SocketAddr>>>,
    cancel: Option<oneshot::Sender<()>>,
}

type TaskResult = (
    Result<FetchedMetadata>,
    mpsc::UnboundedReceiver<Vec<SocketAddr>>,
);

impl Session {
    /// Starts fetching the info dictionary of `info_hash` (BEP 9) from `peers` and any
    /// added later (through the handle or a [`PeerSink`]), several connections at once.
    pub fn fetch_metadata(
        &self,
        info_hash: [u8; 20],
        peers: Vec<SocketAddr>,
    ) -> Result<MetadataFetchHandle> {
        let shared = Arc::clone(self.shared());
        if shared.torrent_entry(&info_hash).is_some() {
            return Err(RuntimeError::DuplicateTorrent);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        {
            let mut fetches = shared.magnets.lock();
            if fetches.get(&info_hash).is_some_and(|t| !t.is_closed()) {
                return Err(RuntimeError::DuplicateTorrent);
            }
            fetches.insert(info_hash, tx.clone());
        }
        let (result_tx, result) = oneshot::channel();
        let (cancel, cancelled) = oneshot::channel();
        let task = FetchTask::new(Arc::clone(&shared), info_hash);
        tokio::spawn(task.run(peers, rx, result_tx, cancelled));
        Ok(MetadataFetchHandle {
            shared,
            info_hash,
            peers: tx,
            result: Some(result),
            late: None,
            cancel: Some(cancel),
        })
    }

    /// The sink for peers of `info_hash` (see [`PeerSink`]).
    #[must_use]
    pub fn peer_sink(&self, info_hash: [u8; 20]) -> PeerSink {
        PeerSink {
            shared: Arc::downgrade(self.shared()),
            info_hash,
        }
    }
}

impl MetadataFetchHandle {
    /// Adds peers to fetch from.
    pub fn add_peers(&self, addrs: impl IntoIterator<Item = SocketAddr>) {
        let addrs: Vec<SocketAddr> = addrs.into_iter().collect();
        if !addrs.is_empty() {
            let _ = self.peers.send(addrs);
        }
    }

    /// Waits for the verified metadata. Peers keep arriving (and are kept for
    /// [`MetadataFetchHandle::hand_over`]) until the handle is handed over or dropped.
    pub async fn wait(&mut self) -> Result<FetchedMetadata> {
        let receiver = self.result.take().ok_or(RuntimeError::Shutdown)?;
        let (result, late) = receiver.await.map_err(|_| RuntimeError::Shutdown)?;
        self.late = Some(late);
        result
    }

    /// Ends the fetch phase: peers that arrived since the metadata was verified go to
    /// `torrent`, and from now on a [`PeerSink`] finds the torrent.
    pub fn hand_over(mut self, torrent: &TorrentHandle) {
        self.unregister();
        if let Some(mut late) = self.late.take() {
            while let Ok(addrs) = late.try_recv() {
                torrent.add_peers(addrs);
            }
        }
    }

    fn unregister(&self) {
        let mut fetches = self.shared.magnets.lock();
        if fetches
            .get(&self.info_hash)
            .is_some_and(|tx| tx.same_channel(&self.peers))
        {
            fetches.remove(&self.info_hash);
        }
    }
}

impl Drop for MetadataFetchHandle {
    fn drop(&mut self) {
        self.unregister();
        if let Some(cancel) = self.cancel.take() {
            let _ = cancel.send(());
        }
    }
}

/// What a fetch connection tells the fetch task.
#[derive(Debug)]
enum ConnInput {
    Connected {
        key: PeerKey,
        info: PeerInfo,
        out: mpsc::UnboundedSender<Message>,
    },
    Message {
        key: PeerKey,
        message: Message,
    },
    Closed {
        key: PeerKey,
        addr: SocketAddr,
    },
    ConnectFailed {
        addr: SocketAddr,
    },
}

#[derive(Debug)]
struct Candidate {
    attempts: u32,
    not_before: Instant,
    busy: bool,
}

/// The fetch task: one owner of the [`MetadataFetch`] and the fetch's connections.
struct FetchTask {
    shared: Arc<SessionShared>,
    info_hash: [u8; 20],
    fetch: MetadataFetch,
    started: Instant,
    links: HashMap<PeerKey, (SocketAddr, mpsc::UnboundedSender<Message>)>,
    candidates: HashMap<SocketAddr, Candidate>,
    queue: VecDeque<SocketAddr>,
    /// Addresses that completed a handshake, in order.
    reached: Vec<SocketAddr>,
    banned: HashSet<IpAddr>,
    busy: usize,
    input_tx: mpsc::Sender<ConnInput>,
    input_rx: mpsc::Receiver<ConnInput>,
    conns: JoinSet<()>,
    verified: Option<Bytes>,
}

impl FetchTask {
    fn new(shared: Arc<SessionShared>, info_hash: [u8; 20]) -> Self {
        let (input_tx, input_rx) = mpsc::channel(INPUT_QUEUE_LEN_MAX);
        let fetch = MetadataFetch::new(
            &shared.config.torrent.client_name,
            Some(shared.listen_addr.port()),
        );
        Self {
            shared,
            info_hash,
            fetch,
            started: Instant::now(),
            links: HashMap::new(),
            candidates: HashMap::new(),
            queue: VecDeque::new(),
            reached: Vec::new(),
            banned: HashSet::new(),
            busy: 0,
            input_tx,
            input_rx,
            conns: JoinSet::new(),
            verified: None,
        }
    }

    async fn run(
        mut self,
        peers: Vec<SocketAddr>,
        mut peers_rx: mpsc::UnboundedReceiver<Vec<SocketAddr>>,
        result: oneshot::Sender<TaskResult>,
        mut cancelled: oneshot::Receiver<()>,
    ) {
        self.add(peers);
        self.connect_more(Instant::now());
        while self.verified.is_none() {
            let now = Instant::now();
            let wake = self.deadline(now);
            tokio::select! {
                _ = &mut cancelled => return,
                addrs = peers_rx.recv() => match addrs {
                    Some(addrs) => self.add(addrs),
                    None => return,
                },
                input = self.input_rx.recv() => {
                    if let Some(input) = input {
                        self.input(Instant::now(), input);
                    }
                }
                () = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                    self.fetch.handle_timeout(Instant::now());
                }
            }
            self.drain();
            self.connect_more(Instant::now());
        }
        self.conns.abort_all();
        let info = self.verified.take().unwrap_or_default();
        let fetched = FetchedMetadata {
            info,
            peers: self.peers_to_keep(),
            elapsed: self.started.elapsed(),
        };
        let _ = result.send((Ok(fetched), peers_rx));
    }

    fn deadline(&self, now: Instant) -> Instant {
        let retry = self
            .queue
            .iter()
            .filter_map(|a| self.candidates.get(a))
            .map(|c| c.not_before)
            .min();
        [
            self.fetch.poll_timeout(),
            retry,
            Some(now + Duration::from_secs(1)),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now)
        .max(now)
    }

    fn add(&mut self, addrs: Vec<SocketAddr>) {
        let now = Instant::now();
        for addr in addrs {
            if self.candidates.len() >= CANDIDATES_MAX || self.banned.contains(&addr.ip()) {
                continue;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = self.candidates.entry(addr) {
                e.insert(Candidate {
                    attempts: 0,
                    not_before: now,
                    busy: false,
                });
                self.queue.push_back(addr);
            }
        }
    }

    fn input(&mut self, now: Instant, input: ConnInput) {
        match input {
            ConnInput::Connected { key, info, out } => {
                self.reached.push(info.addr);
                self.links.insert(key, (info.addr, out));
                self.fetch.peer_connected(now, key, &info);
            }
            ConnInput::Message { key, message } => {
                self.fetch.peer_message(now, key, &message);
            }
            ConnInput::Closed { key, addr } => {
                if self.links.remove(&key).is_some() {
                    self.fetch.peer_disconnected(now, key);
                }
                self.retry_later(now, addr);
            }
            ConnInput::ConnectFailed { addr } => self.retry_later(now, addr),
        }
    }

    fn retry_later(&mut self, now: Instant, addr: SocketAddr) {
        self.busy = self.busy.saturating_sub(1);
        let Some(c) = self.candidates.get_mut(&addr) else {
            return;
        };
        c.busy = false;
        if c.attempts < CONNECT_ATTEMPTS_MAX && !self.banned.contains(&addr.ip()) {
            c.not_before = now + RETRY_DELAY;
            self.queue.push_back(addr);
        }
    }

    /// Carries out what the fetch asks.
    fn drain(&mut self) {
        while let Some(action) = self.fetch.poll_action() {
            match action {
                FetchAction::Send { peer, message } => {
                    if let Some((_, out)) = self.links.get(&peer) {
                        let _ = out.send(message);
                    }
                }
                FetchAction::Verify { metadata } => {
                    // At most METADATA_SIZE_MAX (8 MiB): a few milliseconds of SHA-1.
                    let ok = <[u8; 20]>::from(Sha1::digest(&metadata)) == self.info_hash;
                    tracing::debug!(ok, len = metadata.len(), "metadata assembled");
                    self.fetch.verified(Instant::now(), ok);
                    if ok {
                        self.verified = Some(metadata);
                    }
                }
                FetchAction::Disconnect { peer, reason } => {
                    tracing::debug!(?peer, ?reason, "metadata peer dropped");
                    // Dropping the sender ends the connection's task, which reports Closed;
                    // the address is not tried again.
                    if let Some((addr, _)) = self.links.remove(&peer) {
                        if let Some(c) = self.candidates.get_mut(&addr) {
                            c.attempts = CONNECT_ATTEMPTS_MAX;
                        }
                    }
                }
                FetchAction::Ban { addr } => {
                    tracing::info!(%addr, "banned: sent metadata that failed the info-hash");
                    self.banned.insert(addr);
                }
            }
        }
    }

    fn connect_more(&mut self, now: Instant) {
        let mut deferred = Vec::new();
        while self.busy < METADATA_CONNECTIONS_MAX {
            let Some(addr) = self.queue.pop_front() else {
                break;
            };
            let Some(c) = self.candidates.get_mut(&addr) else {
                continue;
            };
            if c.busy || self.banned.contains(&addr.ip()) {
                continue;
            }
            if c.not_before > now {
                deferred.push(addr);
                continue;
            }
            c.busy = true;
            c.attempts += 1;
            self.busy += 1;
            let shared = Arc::clone(&self.shared);
            let input = self.input_tx.clone();
            let info_hash = self.info_hash;
            self.conns
                .spawn(async move { connection(shared, addr, info_hash, input).await });
        }
        for addr in deferred.into_iter().rev() {
            self.queue.push_front(addr);
        }
        while self.conns.try_join_next().is_some() {}
    }

    fn peers_to_keep(&self) -> Vec<SocketAddr> {
        let mut out: Vec<SocketAddr> = Vec::new();
        let mut seen = HashSet::new();
        let rest = self.candidates.keys().copied();
        for addr in self.reached.iter().copied().chain(rest) {
            if !self.banned.contains(&addr.ip()) && seen.insert(addr) {
                out.push(addr);
            }
        }
        out
    }
}

/// One fetch connection: connect and handshake, then forward messages both ways until
/// either side ends.
async fn connection(
    shared: Arc<SessionShared>,
    addr: SocketAddr,
    info_hash: [u8; 20],
    input: mpsc::Sender<ConnInput>,
) {
    let conn = match handshake::connect(&shared, addr, info_hash).await {
        Ok(conn) => conn,
        Err(e) => {
            tracing::debug!(%addr, error = %e, "metadata connect failed");
            let _ = input.send(ConnInput::ConnectFailed { addr }).await;
            return;
        }
    };
    let ours = handshake::our_reserved();
    let key = PeerKey(shared.next_peer_key.fetch_add(1, Ordering::Relaxed));
    let info = PeerInfo {
        addr,
        peer_id: conn.remote.peer_id.0,
        fast: ours.fast() && conn.remote.reserved.fast(),
        extensions: ours.extension_protocol() && conn.remote.reserved.extension_protocol(),
        outgoing: true,
    };
    let (out, out_rx) = mpsc::unbounded_channel();
    if input
        .send(ConnInput::Connected { key, info, out })
        .await
        .is_err()
    {
        return;
    }
    let _slot = conn.slot;
    let end = pump(conn.stream, conn.buf, conn.decoder, key, &input, out_rx).await;
    tracing::debug!(%addr, ?end, "metadata connection ended");
    let _ = input.send(ConnInput::Closed { key, addr }).await;
}

/// Why a fetch connection ended.
#[derive(Debug)]
enum End {
    Eof,
    Io,
    Wire,
    Dropped,
}

async fn pump(
    mut stream: tokio::net::TcpStream,
    mut buf: bytes::BytesMut,
    mut decoder: bitswarm_wire::FrameDecoder,
    key: PeerKey,
    input: &mpsc::Sender<ConnInput>,
    mut out: mpsc::UnboundedReceiver<Message>,
) -> End {
    let mut write_buf = bytes::BytesMut::new();
    loop {
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(Frame::Message(message))) => {
                    if input
                        .send(ConnInput::Message { key, message })
                        .await
                        .is_err()
                    {
                        return End::Dropped;
                    }
                }
                Ok(Some(_)) | Err(_) => return End::Wire,
                Ok(None) => break,
            }
        }
        if buf.capacity() - buf.len() < READ_CHUNK_BYTES / 2 {
            buf.reserve(READ_CHUNK_BYTES);
        }
        tokio::select! {
            read = stream.read_buf(&mut buf) => match read {
                Ok(0) => return End::Eof,
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "metadata connection read failed");
                    return End::Io;
                }
            },
            message = out.recv() => {
                let Some(message) = message else { return End::Dropped };
                write_buf.clear();
                if message.encode_into(&mut write_buf).is_err() {
                    continue;
                }
                while let Ok(more) = out.try_recv() {
                    let _ = more.encode_into(&mut write_buf);
                }
                if let Err(e) = stream.write_all(&write_buf).await {
                    tracing::debug!(error = %e, "metadata connection write failed");
                    return End::Io;
                }
            }
        }
    }
}
