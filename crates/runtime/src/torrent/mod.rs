//! The torrent task: one per torrent, the only owner of its engine ([`Torrent`]) and its
//! connections' torrent-side ends. It waits on commands, disk completions, peer input and the
//! engine's timer; after every input it drains the engine's actions and carries them out
//! (`actions.rs`), then hands each connection's queued bytes to its writer in one batch.
//! Connection bookkeeping is in `links.rs`, disk glue in `disk.rs` and `verify.rs`.

mod actions;
mod disk;
mod known;
mod links;
mod verify;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitswarm_engine::{Geometry, PeerKey, Torrent, TorrentConfig};
use bitswarm_storage::{
    CheckScope, Completion, DiskPool, Event as DiskEvent, Job, ResumeDb, ResumeSnapshot, Storage,
    StorageError, StorageOptions, TorrentId,
};
use bitswarm_wire::Bitfield;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::error::{Result, RuntimeError};
use crate::handle::{AddTorrent, Resume, TorrentEvent, TorrentHandle, TorrentState, TorrentStats};
use crate::peer::{BlocksSent, Connected, PeerInput, PeerLink};
use crate::rate_limit::Limiters;
use crate::session::{SessionShared, TorrentEntry};
use disk::DiskQueue;
use known::KnownPeers;
use verify::VerifyTracker;

/// How often the statistics snapshot is refreshed at most (completion and state changes are
/// published at once).
pub const STATS_INTERVAL: Duration = Duration::from_millis(100);
/// How soon a disk job that found the pool's queue full is offered again.
const DISK_RETRY: Duration = Duration::from_millis(1);
/// When nothing else is due, the task still wakes this often.
const IDLE_WAKE: Duration = Duration::from_secs(1);
/// Disk completions (and writers' reports of blocks sent) taken per wake-up.
const RECV_BATCH_MAX: usize = 64;
/// Peer batches (one socket read each) taken per wake-up: few, so that when the disk is
/// slower than the network, little more than one read's worth waits in the disk backlog.
const PEER_BATCHES_MAX: usize = 4;

/// What handles, the accept loop and connect tasks tell a torrent task.
#[derive(Debug)]
pub(crate) enum Command {
    AddPeers(Vec<SocketAddr>),
    /// A connection finished its handshake for this torrent.
    Connected(Box<Connected>),
    ConnectFailed(SocketAddr),
    /// Per-block digests computed off the runtime.
    Digests {
        piece: u32,
        digests: Option<Vec<[u8; 20]>>,
    },
    Pause,
    Resume,
    Checkpoint {
        db: Option<Arc<ResumeDb>>,
        reply: oneshot::Sender<Result<ResumeSnapshot>>,
    },
    Remove {
        reply: oneshot::Sender<()>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
    /// A snapshot of every connected peer (for display).
    PeerStats {
        reply: oneshot::Sender<Vec<(PeerKey, bitswarm_engine::PeerStats)>>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Checking,
    Active,
    Paused,
    Failed,
}

/// A torrent ready to run: the session registers `entry` and `completions`, then spawns it.
pub(crate) struct Prepared {
    pub entry: TorrentEntry,
    pub completions: mpsc::UnboundedSender<Completion>,
    task: TorrentTask,
    receivers: Receivers,
}

impl Prepared {
    pub(crate) fn spawn(self) {
        let hash = &self.task.info_hash;
        let span = tracing::info_span!(
            "torrent",
            info_hash = %format_args!("{:02x}{:02x}{:02x}{:02x}", hash[0], hash[1], hash[2], hash[3]),
        );
        tokio::spawn(self.task.run(self.receivers).instrument(span));
    }
}

struct Receivers {
    cmd: mpsc::UnboundedReceiver<Command>,
    peers: mpsc::Receiver<PeerInput>,
    /// Writers' reports of blocks written (bounded by the engine's `upload_in_flight_max`).
    sent: mpsc::UnboundedReceiver<BlocksSent>,
    disk: mpsc::UnboundedReceiver<Completion>,
    /// The check to run before the engine starts (submitted once completions are routed).
    check: Option<CheckScope>,
}

/// The task's state. Fields are shared with the sibling modules.
pub(crate) struct TorrentTask {
    shared: Arc<SessionShared>,
    info_hash: [u8; 20],
    id: TorrentId,
    storage: Arc<Storage>,
    geometry: Geometry,
    wanted: Bitfield,
    engine_config: TorrentConfig,
    /// The info dictionary to serve (BEP 9), and whether the torrent is private.
    metadata: (Option<bytes::Bytes>, bool),
    engine: Option<Torrent>,
    phase: Phase,
    pause_after_check: bool,
    /// Verified pieces while no engine runs (checking, paused).
    have: Bitfield,
    links: HashMap<PeerKey, PeerLink>,
    /// Links with items queued since the last flush.
    dirty: Vec<PeerKey>,
    peer_tx: mpsc::Sender<PeerInput>,
    sent_tx: mpsc::UnboundedSender<BlocksSent>,
    peer_count: Arc<AtomicUsize>,
    cmd_tx: mpsc::UnboundedSender<Command>,
    connects: JoinSet<()>,
    disk: DiskQueue,
    verify: VerifyTracker,
    reads: HashMap<u64, actions::PendingRead>,
    next_read_tag: u64,
    /// `ServeBlock`s of the current drain, coalesced into reads after it.
    serve: Vec<(PeerKey, bitswarm_wire::BlockRef)>,
    banned: HashSet<IpAddr>,
    /// Addresses from `add_peers`: offered to the engine, again after a while when
    /// reported again, and all of them after a pause.
    known: KnownPeers,
    checked: Arc<AtomicU32>,
    checkpoints: std::collections::VecDeque<oneshot::Sender<Result<ResumeSnapshot>>>,
    stats_tx: watch::Sender<TorrentStats>,
    events: broadcast::Sender<TorrentEvent>,
    /// Transfer totals of engines that ran before the current one.
    totals: Totals,
    next_publish: Instant,
    publish_pending: bool,
    /// The first block of payload was reported (`TorrentEvent::FirstBlock`).
    first_block_seen: bool,
    /// This torrent's own limits (its connections are also under the session's).
    rate_limits: Arc<Limiters>,
}

/// Opens the storage, applies `add.resume` (blocking parts on the blocking pool) and builds
/// the task without starting it.
pub(crate) async fn prepare(
    shared: Arc<SessionShared>,
    pool: Arc<DiskPool>,
    id: TorrentId,
    add: AddTorrent,
) -> Result<Prepared> {
    let layout = &add.layout;
    let geometry = Geometry::new(layout.piece_length(), layout.total_length());
    if geometry.piece_count() != layout.piece_count() {
        return Err(RuntimeError::InvalidTorrent {
            what: "piece count does not fit the engine",
        });
    }
    let count = layout.piece_count();
    let wanted = to_wire(&layout.wanted_pieces(), count);
    let storage = Arc::new(Storage::open(
        id,
        add.save_path,
        add.layout,
        &StorageOptions::default(),
    )?);
    let (have, check) = resume(&storage, add.resume, count).await?;
    let start = Start {
        id,
        info_hash: add.info_hash,
        storage,
        geometry,
        wanted,
        have,
        check,
        peers: add.peers,
        metadata: (add.metadata, add.private),
        rate_limits: Limiters::new(add.rate_limits),
    };
    Ok(assemble(shared, pool, start))
}

/// A torrent's storage and initial state, ready for its task to be built.
struct Start {
    id: TorrentId,
    info_hash: [u8; 20],
    storage: Arc<Storage>,
    geometry: Geometry,
    wanted: Bitfield,
    have: Bitfield,
    check: Option<CheckScope>,
    peers: Vec<SocketAddr>,
    /// The info dictionary to serve (BEP 9), and whether the torrent is private.
    metadata: (Option<bytes::Bytes>, bool),
    rate_limits: Arc<Limiters>,
}

/// Builds the task, its channels and its handle.
fn assemble(shared: Arc<SessionShared>, pool: Arc<DiskPool>, start: Start) -> Prepared {
    let count = start.geometry.piece_count();
    let (cmd_tx, cmd) = mpsc::unbounded_channel();
    let (peer_tx, peers) = mpsc::channel(shared.config.peer_input_queue_len_max);
    let (sent_tx, sent) = mpsc::unbounded_channel();
    let (completions, disk) = mpsc::unbounded_channel();
    // A torrent that starts by checking says so from the first snapshot, so a caller can
    // wait for the check without racing the task's first update.
    let state = match &start.check {
        Some(CheckScope::All) => TorrentState::Checking {
            checked: 0,
            total: count,
        },
        Some(CheckScope::Pieces(pieces)) => TorrentState::Checking {
            checked: 0,
            total: u32::try_from(pieces.len()).unwrap_or(u32::MAX),
        },
        None => TorrentState::Downloading,
    };
    let initial = TorrentStats::initial(count, start.geometry.total_length, state);
    let (stats_tx, stats_rx) = watch::channel(initial);
    let (events, _) = broadcast::channel(shared.config.events_capacity);
    let handle = TorrentHandle::new(
        start.info_hash,
        cmd_tx.clone(),
        stats_rx,
        events.clone(),
        Arc::clone(&start.rate_limits),
    );
    let peer_count = Arc::new(AtomicUsize::new(0));
    let entry = TorrentEntry {
        cmd: cmd_tx.clone(),
        handle,
        peers: Arc::clone(&peer_count),
    };
    let mut engine_config = shared.config.torrent.clone();
    engine_config.listen_port = Some(shared.listen_addr.port());
    engine_config.own_peer_id = shared.peer_id.0;
    let mut task = TorrentTask {
        verify: VerifyTracker::new(shared.config.digest_buffer_bytes_max),
        known: KnownPeers::new(
            shared.config.known_peers_max,
            shared.config.peer_reoffer_interval,
        ),
        shared,
        info_hash: start.info_hash,
        id: start.id,
        storage: start.storage,
        geometry: start.geometry,
        wanted: start.wanted,
        engine_config,
        metadata: start.metadata,
        engine: None,
        phase: if start.check.is_some() {
            Phase::Checking
        } else {
            Phase::Active
        },
        pause_after_check: false,
        have: start.have,
        links: HashMap::new(),
        dirty: Vec::new(),
        peer_tx,
        sent_tx,
        peer_count,
        cmd_tx,
        connects: JoinSet::new(),
        disk: DiskQueue::new(pool),
        reads: HashMap::new(),
        next_read_tag: 0,
        serve: Vec::new(),
        banned: HashSet::new(),
        checked: Arc::new(AtomicU32::new(0)),
        checkpoints: std::collections::VecDeque::new(),
        stats_tx,
        events,
        totals: Totals::default(),
        next_publish: Instant::now(),
        publish_pending: false,
        first_block_seen: false,
        rate_limits: start.rate_limits,
    };
    task.known.report(Instant::now(), start.peers);
    Prepared {
        entry,
        completions,
        task,
        receivers: Receivers {
            cmd,
            peers,
            sent,
            disk,
            check: start.check,
        },
    }
}

/// The pieces to trust at once, and the check to run first (if any).
async fn resume(
    storage: &Arc<Storage>,
    resume: Resume,
    count: u32,
) -> Result<(Bitfield, Option<CheckScope>)> {
    let blocking = Arc::clone(storage);
    let (have, check) = match resume {
        Resume::Fresh => (Bitfield::new(count), None),
        Resume::Trusted(have) => (to_wire_bits(&have, count), None),
        Resume::Check => (Bitfield::new(count), Some(CheckScope::All)),
        Resume::Snapshot(snapshot) => {
            let verdict = tokio::task::spawn_blocking(move || blocking.restore(&snapshot))
                .await
                .map_err(|_| RuntimeError::Shutdown)??;
            let have = to_wire(&verdict.trusted, count);
            let check =
                (!verdict.recheck.is_empty()).then_some(CheckScope::Pieces(verdict.recheck));
            (have, check)
        }
    };
    let blocking = Arc::clone(storage);
    tokio::task::spawn_blocking(move || blocking.create_empty_files())
        .await
        .map_err(|_| RuntimeError::Shutdown)??;
    Ok((have, check))
}

impl TorrentTask {
    async fn run(mut self, mut rx: Receivers) {
        let sleep = tokio::time::sleep(IDLE_WAKE);
        tokio::pin!(sleep);
        let mut peer_batch = Vec::with_capacity(PEER_BATCHES_MAX);
        let mut disk_batch = Vec::with_capacity(RECV_BATCH_MAX);
        let mut sent_batch = Vec::with_capacity(RECV_BATCH_MAX);
        match rx.check.take() {
            Some(scope) => self.start_check(scope),
            None => self.start_engine(Instant::now()),
        }
        self.after_input(Instant::now());
        self.publish(Instant::now(), true);
        loop {
            let deadline = tokio::time::Instant::from_std(self.deadline(Instant::now()));
            if sleep.deadline() != deadline {
                sleep.as_mut().reset(deadline);
            }
            let accepting = self.disk.is_idle();
            tokio::select! {
                biased;
                command = rx.cmd.recv() => {
                    let Some(command) = command else { break };
                    if !self.command(command) {
                        break;
                    }
                }
                n = rx.sent.recv_many(&mut sent_batch, RECV_BATCH_MAX) => {
                    let now = Instant::now();
                    debug_assert!(n > 0, "the task holds a sender");
                    for sent in sent_batch.drain(..) {
                        self.blocks_sent(now, sent);
                    }
                }
                n = rx.disk.recv_many(&mut disk_batch, RECV_BATCH_MAX) => {
                    if n == 0 {
                        break;
                    }
                    let now = Instant::now();
                    for completion in disk_batch.drain(..) {
                        self.completion(now, completion.event);
                    }
                }
                _ = rx.peers.recv_many(&mut peer_batch, PEER_BATCHES_MAX), if accepting => {
                    let now = Instant::now();
                    for input in peer_batch.drain(..) {
                        self.peer_input(now, input);
                    }
                }
                () = &mut sleep => self.timer(Instant::now()),
            }
            self.after_input(Instant::now());
        }
        self.close();
    }

    /// When the task must wake even if nothing arrives.
    fn deadline(&self, now: Instant) -> Instant {
        let mut deadline = self
            .engine
            .as_ref()
            .and_then(Torrent::poll_timeout)
            .unwrap_or(now + IDLE_WAKE)
            .min(now + IDLE_WAKE);
        if !self.disk.is_idle() {
            deadline = deadline.min(now + DISK_RETRY);
        }
        if self.phase == Phase::Checking {
            deadline = deadline.min(now + STATS_INTERVAL);
        }
        if self.publish_pending {
            deadline = deadline.min(self.next_publish);
        }
        deadline
    }

    fn timer(&mut self, now: Instant) {
        if let Some(engine) = &mut self.engine {
            engine.handle_timeout(now);
        }
    }

    /// After any input: carry out the engine's actions, pass on its events, publish stats.
    fn after_input(&mut self, now: Instant) {
        self.disk.retry();
        self.drain_actions(now);
        let force = self.forward_engine_events();
        self.publish(now, force);
    }

    /// Handles a command; `false` ends the task.
    fn command(&mut self, command: Command) -> bool {
        let now = Instant::now();
        match command {
            Command::AddPeers(addrs) => {
                let addrs = addrs.into_iter().filter(|a| !self.banned.contains(&a.ip()));
                let offer = self.known.report(now, addrs);
                if let Some(engine) = &mut self.engine {
                    engine.add_peer_candidates(now, offer);
                }
            }
            Command::Connected(conn) => self.connected(now, *conn),
            Command::ConnectFailed(addr) => {
                while self.connects.try_join_next().is_some() {}
                if let Some(engine) = &mut self.engine {
                    engine.connect_failed(now, addr);
                }
            }
            Command::Digests { piece, digests } => {
                let ready = self.verify.digests_done(piece, digests);
                self.report_verification(now, piece, ready);
            }
            Command::Pause => self.pause(now),
            Command::Resume => self.resume(now),
            Command::Checkpoint { db, reply } => {
                self.checkpoints.push_back(reply);
                let db = db.map(|db| (db, self.info_hash));
                let storage = Arc::clone(&self.storage);
                self.disk.submit(Job::Checkpoint { storage, db });
            }
            Command::Remove { reply } => {
                self.shared.remove_torrent(&self.info_hash, self.id);
                self.close();
                let _ = reply.send(());
                return false;
            }
            Command::Shutdown { reply } => {
                self.close();
                let _ = reply.send(());
                return false;
            }
            Command::PeerStats { reply } => {
                let peers = self
                    .engine
                    .as_ref()
                    .map(|e| e.peer_stats().collect())
                    .unwrap_or_default();
                let _ = reply.send(peers);
            }
        }
        true
    }

    /// A disk job finished.
    fn completion(&mut self, now: Instant, event: DiskEvent) {
        match event {
            DiskEvent::Read { tag, result, .. } => self.read_done(now, tag, result),
            DiskEvent::SendReady { tag, result, .. } => self.send_ready(tag, result),
            DiskEvent::PieceDone { piece, result } => match result {
                Ok(()) => self.storage_verdict(now, piece, true),
                Err(StorageError::PieceHashFailed { .. }) => {
                    self.storage_verdict(now, piece, false);
                }
                Err(error) => self.fail(now, error),
            },
            DiskEvent::WriteFailed { error, .. } => self.fail(now, error),
            DiskEvent::CheckDone { verified, .. } => {
                self.have = to_wire(&verified, self.geometry.piece_count());
                let pieces_have = self.have.count_ones();
                let _ = self.events.send(TorrentEvent::Checked { pieces_have });
                if self.pause_after_check {
                    self.phase = Phase::Paused;
                } else {
                    self.start_engine(now);
                }
                self.publish(now, true);
            }
            DiskEvent::Checkpointed { result } => {
                // Whoever asked for a checkpoint reads the statistics next: make them current.
                self.publish(now, true);
                if let Some(reply) = self.checkpoints.pop_front() {
                    let _ = reply.send(result.map_err(RuntimeError::from));
                }
            }
        }
    }

    fn start_check(&mut self, scope: CheckScope) {
        self.phase = Phase::Checking;
        let checked = Arc::clone(&self.checked);
        let progress = Box::new(move |p: bitswarm_storage::CheckProgress| {
            checked.store(p.checked, Ordering::Relaxed);
        });
        let storage = Arc::clone(&self.storage);
        self.disk.submit(Job::Check {
            storage,
            scope,
            progress: Some(progress),
        });
    }

    /// Starts a fresh engine from the verified pieces and the known peers.
    fn start_engine(&mut self, now: Instant) {
        let count = self.geometry.piece_count();
        let mut have = self.have.clone();
        for piece in self.storage.verified().iter_ones() {
            let _ = have.set(piece);
        }
        for piece in have.iter_ones() {
            self.verify.forget_piece(piece);
        }
        let seed = rand::random();
        let config = self.engine_config.clone();
        let mut engine = Torrent::new(self.geometry, have, config, seed, now);
        let (metadata, private) = &self.metadata;
        if let Some(metadata) = metadata {
            engine.set_metadata(metadata.clone());
        }
        engine.set_private(*private);
        if self.wanted.count_ones() != count {
            engine.set_wanted(&self.wanted);
        }
        engine.add_peer_candidates(now, self.known.offer_all(now));
        self.engine = Some(engine);
        self.phase = Phase::Active;
    }

    /// Closes every connection and drops the engine, keeping what it verified.
    fn stop_engine(&mut self) {
        if let Some(mut engine) = self.engine.take() {
            self.forward_events(&mut engine);
            let stats = engine.stats();
            let totals = Self::run_totals(&stats);
            self.totals.add(&totals);
            self.have = engine.have().clone();
        }
        self.links.clear();
        self.dirty.clear();
        self.peer_count.store(0, Ordering::Relaxed);
        self.connects.abort_all();
        self.reads.clear();
        self.serve.clear();
        self.verify.forget_requests();
    }

    fn pause(&mut self, now: Instant) {
        match self.phase {
            Phase::Checking => self.pause_after_check = true,
            Phase::Active => {
                self.stop_engine();
                self.phase = Phase::Paused;
            }
            Phase::Paused | Phase::Failed => {}
        }
        self.publish(now, true);
    }

    fn resume(&mut self, now: Instant) {
        match self.phase {
            Phase::Checking => self.pause_after_check = false,
            Phase::Paused | Phase::Failed => self.start_engine(now),
            Phase::Active => {}
        }
        self.publish(now, true);
    }

    /// A disk error: stop exchanging (the data cannot be stored or served) until resumed.
    fn fail(&mut self, now: Instant, error: StorageError) {
        tracing::error!(error = %error, "torrent stopped on a disk error");
        let _ = self
            .events
            .send(TorrentEvent::StorageFailed(Arc::new(error)));
        self.stop_engine();
        self.phase = Phase::Failed;
        self.publish(now, true);
    }

    /// Ends the task: connections closed, checks cancelled, buffered blocks dropped.
    fn close(&mut self) {
        self.stop_engine();
        self.disk.pool().cancel_checks(self.id);
        self.storage.discard_pending(None);
    }

    /// The totals of the current engine's run.
    fn run_totals(e: &bitswarm_engine::TorrentStats) -> Totals {
        Totals {
            downloaded: e.downloaded,
            uploaded: e.uploaded,
            wasted: e.wasted,
            hash_failures: e.hash_failures,
        }
    }

    /// Passes on the running engine's events; `true` if it completed.
    fn forward_engine_events(&mut self) -> bool {
        let Some(mut engine) = self.engine.take() else {
            return false;
        };
        let completed = self.forward_events(&mut engine);
        self.engine = Some(engine);
        completed
    }

    /// Passes on the engine's events; `true` if it completed.
    fn forward_events(&mut self, engine: &mut Torrent) -> bool {
        let mut completed = false;
        while let Some(event) = engine.poll_event() {
            completed |= matches!(event, bitswarm_engine::Event::Completed);
            let _ = self.events.send(TorrentEvent::Engine(event));
        }
        completed
    }

    /// Refreshes the statistics snapshot, at most every [`STATS_INTERVAL`] unless forced; a
    /// refresh held back is done when the interval is over.
    fn publish(&mut self, now: Instant, force: bool) {
        // Pending engine events go out before the snapshot they led to (and a completion
        // forces it).
        let force = self.forward_engine_events() || force;
        if !force && now < self.next_publish {
            self.publish_pending = true;
            return;
        }
        self.publish_pending = false;
        self.next_publish = now + STATS_INTERVAL;
        let stats = self.snapshot();
        self.stats_tx.send_replace(stats);
    }

    fn snapshot(&self) -> TorrentStats {
        let count = self.geometry.piece_count();
        let mut s = TorrentStats::initial(count, self.geometry.total_length, TorrentState::Paused);
        let t = &self.totals;
        (s.downloaded, s.uploaded, s.wasted) = (t.downloaded, t.uploaded, t.wasted);
        s.hash_failures = t.hash_failures;
        s.state = match self.phase {
            Phase::Checking => TorrentState::Checking {
                checked: self.checked.load(Ordering::Relaxed),
                total: count,
            },
            Phase::Paused => TorrentState::Paused,
            Phase::Failed => TorrentState::Failed,
            Phase::Active => TorrentState::Downloading,
        };
        let Some(engine) = &self.engine else {
            s.pieces_have = self.have.count_ones();
            s.pieces_missing = self
                .wanted
                .iter_ones()
                .filter(|&p| !self.have.has(p))
                .count() as u32;
            s.finished = s.pieces_missing == 0;
            s.complete = self.have.is_complete();
            return s;
        };
        let e = engine.stats();
        let run = Self::run_totals(&e);
        s.pieces_have = e.pieces_have;
        s.pieces_missing = e.pieces_missing;
        s.downloaded += run.downloaded;
        s.uploaded += run.uploaded;
        s.wasted += run.wasted;
        s.hash_failures = s.hash_failures.saturating_add(run.hash_failures);
        s.download_rate = e.download_rate;
        s.upload_rate = e.upload_rate;
        s.peers = e.peers;
        s.seeds = e.seeds;
        s.finished = engine.is_finished();
        s.complete = engine.is_complete();
        if s.finished {
            s.state = TorrentState::Seeding;
        }
        s
    }
}

/// Counters of engines that have stopped (a pause or a disk error ends an engine; the next
/// one starts from zero).
#[derive(Debug, Default, Clone)]
struct Totals {
    downloaded: u64,
    uploaded: u64,
    wasted: u64,
    hash_failures: u32,
}

impl Totals {
    fn add(&mut self, run: &Totals) {
        self.downloaded += run.downloaded;
        self.uploaded += run.uploaded;
        self.wasted += run.wasted;
        self.hash_failures = self.hash_failures.saturating_add(run.hash_failures);
    }
}

/// A storage bitfield as the wire's (same bit order), clipped to `count`.
fn to_wire(bits: &bitswarm_storage::Bitfield, count: u32) -> Bitfield {
    let mut out = Bitfield::new(count);
    for piece in bits.iter_ones() {
        let _ = out.set(piece);
    }
    out
}

/// A caller's bitfield clipped (or padded) to `count` pieces.
fn to_wire_bits(bits: &Bitfield, count: u32) -> Bitfield {
    let mut out = Bitfield::new(count);
    for piece in bits.iter_ones() {
        let _ = out.set(piece);
    }
    out
}
