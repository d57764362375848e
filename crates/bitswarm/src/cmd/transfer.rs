//! What `bitswarm download` and `bitswarm seed` share: turning a torrent into a runtime
//! layout, the resume database, the session, progress display, signals and the summary line.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use bitswarm_announce::{
    AnnounceConfig, AnnounceEvent, AnnounceHandle, AnnounceProgress, Announcer,
};
use bitswarm_metainfo::Metainfo;
use bitswarm_runtime::{
    AddTorrent, FileSpec, RateLimits, Resume, ResumeDb, Session, SessionConfig, TorrentEvent,
    TorrentHandle, TorrentLayout, TorrentState, TorrentStats,
};
use bitswarm_storage::TorrentRecord;
use clap::Args;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::broadcast;

use crate::progress::{ByteProgress, TransferProgress};

/// Options shared by `download` and `seed`.
#[derive(Debug, Args)]
pub struct SwarmArgs {
    /// A peer to connect to directly (HOST:PORT); repeatable. No tracker is needed.
    #[arg(long = "peer", value_name = "HOST:PORT")]
    pub peers: Vec<String>,
    /// Where to accept peer connections (port 0 picks a free port).
    #[arg(long, default_value = "0.0.0.0:6881")]
    pub listen: SocketAddr,
    /// The resume database (SQLite). Default: `$XDG_DATA_HOME/bitswarm/state.sqlite`.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// DHT options (`--no-dht`, `--dht-port`, `--dht-bootstrap`).
    #[command(flatten)]
    pub dht: crate::dht::DhtArgs,
    /// Most bytes per second to upload, all peers together (e.g. 500K, 2M). Counts every
    /// byte sent to peers, protocol overhead included. Unlimited when not given.
    #[arg(long, value_name = "RATE", value_parser = crate::units::parse_rate)]
    pub upload_limit: Option<u64>,
    /// Most bytes per second to download, all peers together (e.g. 500K, 2M). Unlimited
    /// when not given.
    #[arg(long, value_name = "RATE", value_parser = crate::units::parse_rate)]
    pub download_limit: Option<u64>,
}

impl SwarmArgs {
    /// The session-wide rate limits asked for.
    pub fn rate_limits(&self) -> RateLimits {
        RateLimits {
            upload: self.upload_limit,
            download: self.download_limit,
        }
    }
}

/// How long a seeding policy's stop waits for queued uploads to reach the peers.
const UPLOAD_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// How often progress is saved to the resume database while transferring.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(10);

/// A torrent running in a session, with what is needed to save and report it.
pub struct Running {
    pub session: Session,
    pub handle: TorrentHandle,
    pub db: Arc<ResumeDb>,
    pub name: String,
    /// The tracker client, when the torrent names trackers.
    pub announce: Option<AnnounceHandle>,
    /// The DHT node and the torrent's announcement (none with `--no-dht` or when private).
    pub dht: Option<crate::dht::TorrentDhtState>,
}

impl Running {
    /// Tells the trackers the download completed (`completed` event).
    pub fn announce_completed(&self) {
        if let Some(announce) = &self.announce {
            announce.completed();
        }
    }

    /// Sends `stopped` to the trackers (bounded in time) and stops the session.
    pub async fn shutdown(self) {
        if let Some(announce) = self.announce {
            announce.stop().await;
        }
        if let Some(dht) = self.dht {
            dht.shutdown().await;
        }
        self.session.shutdown().await;
    }
}

/// Builds the runtime's layout: one `FileSpec` per file, paths relative to `save_path`
/// (multi-file torrents under their root folder), wanted as `wanted` says.
pub fn layout(meta: &Metainfo, wanted: &dyn Fn(usize) -> bool) -> Result<TorrentLayout> {
    let info = &meta.info;
    let files = info
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| FileSpec {
            path: info.file_path(f),
            length: f.length,
            pad: f.is_pad(),
            wanted: !f.is_pad() && wanted(i),
        })
        .collect();
    TorrentLayout::new(info.piece_length, info.pieces.clone(), files)
        .context("the torrent's layout is not usable")
}

/// Opens the resume database at `path` or the default place.
pub fn open_state(path: Option<&Path>) -> Result<Arc<ResumeDb>> {
    let path = match path {
        Some(p) => p.to_path_buf(),
        None => default_state_path()?,
    };
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
    }
    let db = ResumeDb::open(&path)
        .with_context(|| format!("cannot open the resume database {}", path.display()))?;
    Ok(Arc::new(db))
}

/// `$XDG_DATA_HOME/bitswarm/state.sqlite` (or under `~/.local/share`).
pub fn default_state_path() -> Result<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .context("neither XDG_DATA_HOME nor HOME is set; pass --state FILE")?;
    Ok(base.join("bitswarm").join("state.sqlite"))
}

/// Starts a session and adds the torrent, resuming from the database or checking what is on
/// disk. Prints `listening on ADDR` first, for people and scripts.
pub async fn start(
    meta: &Metainfo,
    layout: TorrentLayout,
    save_path: &Path,
    args: &SwarmArgs,
    check_existing: bool,
) -> Result<Running> {
    start_with(meta, layout, save_path, args, check_existing, false).await
}

/// [`start`], super-seeding (BEP 16) when `super_seed` and the data is complete.
pub async fn start_with(
    meta: &Metainfo,
    layout: TorrentLayout,
    save_path: &Path,
    args: &SwarmArgs,
    check_existing: bool,
    super_seed: bool,
) -> Result<Running> {
    let db = open_state(args.state.as_deref())?;
    let info_hash = *meta.info_hash.as_bytes();
    let resume = resume_for(&db, info_hash, &layout, save_path, check_existing)?;
    db.add_torrent(&TorrentRecord {
        info_hash,
        save_path: save_path.to_path_buf(),
        added_at_unix: unix_now(),
    })
    .context("cannot record the torrent in the resume database")?;
    let session = start_session(args.listen, args.rate_limits(), super_seed)?;
    let peers = resolve_peers(&args.peers)?;
    let handle = session
        .add_torrent(AddTorrent {
            info_hash,
            layout,
            save_path: save_path.to_path_buf(),
            resume,
            peers,
            rate_limits: RateLimits::UNLIMITED,
            // Served to peers that have only the magnet link (BEP 9).
            metadata: Some(meta.info_raw.clone().into()),
            private: meta.info.private,
        })
        .await
        .context("cannot start the torrent")?;
    wait_checked(&handle, &meta.info.name).await?;
    // Printed once the data is checked and peers are served: scripts wait for this line.
    println!("listening on {}", session.listen_addr());
    let announce = start_announcing(meta, &session, &handle);
    let dht = start_dht(meta, args, &session, &handle).await?;
    Ok(Running {
        session,
        handle,
        db,
        name: meta.info.name.clone(),
        announce,
        dht,
    })
}

/// Starts the DHT node (unless `--no-dht` or the torrent is private), announces the torrent
/// with our listen port and feeds the peers found to it. Prints `dht listening on ADDR`.
async fn start_dht(
    meta: &Metainfo,
    args: &SwarmArgs,
    session: &Session,
    handle: &TorrentHandle,
) -> Result<Option<crate::dht::TorrentDhtState>> {
    let state = match &args.state {
        Some(p) => p.clone(),
        None => default_state_path()?,
    };
    let torrent = handle.clone();
    crate::dht::TorrentDhtState::start(
        &args.dht,
        meta.info.private,
        true,
        *meta.info_hash.as_bytes(),
        session.listen_addr(),
        &state,
        move |peers| torrent.add_peers(peers),
    )
    .await
}

/// Starts the tracker client for the torrent's tiers and feeds the peers it learns to the
/// torrent; tracker warnings and refusals are shown once each.
pub fn start_announcing(
    meta: &Metainfo,
    session: &Session,
    handle: &TorrentHandle,
) -> Option<AnnounceHandle> {
    let tiers = meta.tracker_tiers();
    if tiers.iter().all(Vec::is_empty) {
        return None;
    }
    let config = AnnounceConfig::new(
        tiers,
        *meta.info_hash.as_bytes(),
        session.peer_id().0,
        session.listen_addr().port(),
    );
    let stats_source = handle.clone();
    let progress = Arc::new(move || {
        let s = stats_source.stats();
        let per_piece = s.total_length.div_ceil(u64::from(s.piece_count.max(1)));
        AnnounceProgress {
            uploaded: s.uploaded,
            downloaded: s.downloaded,
            left: (u64::from(s.pieces_missing) * per_piece).min(s.total_length),
        }
    });
    let (announce, mut events) = Announcer::spawn(config, progress);
    let torrent = handle.clone();
    tokio::spawn(async move {
        let mut last_said: HashMap<String, String> = HashMap::new();
        while let Some(event) = events.recv().await {
            let (tracker, line) = match event {
                AnnounceEvent::Peers(peers) => {
                    torrent.add_peers(peers);
                    continue;
                }
                AnnounceEvent::Warning { tracker, message } => {
                    (tracker, format!("warning: {message}"))
                }
                AnnounceEvent::Failure { tracker, reason } => {
                    (tracker, format!("refused: {reason}"))
                }
                AnnounceEvent::Error { tracker, error } => {
                    (tracker, format!("unreachable: {error}"))
                }
            };
            if last_said.get(&tracker) != Some(&line) {
                eprintln!("tracker {tracker}: {line}");
                last_said.insert(tracker, line);
            }
        }
    });
    Some(announce)
}

fn resume_for(
    db: &ResumeDb,
    info_hash: [u8; 20],
    layout: &TorrentLayout,
    save_path: &Path,
    check_existing: bool,
) -> Result<Resume> {
    if let Some(snapshot) = db
        .load(&info_hash)
        .context("cannot read the resume database")?
    {
        return Ok(Resume::Snapshot(snapshot));
    }
    let any_on_disk = layout
        .files()
        .iter()
        .any(|f| !f.pad && save_path.join(&f.path).exists());
    Ok(if check_existing || any_on_disk {
        Resume::Check
    } else {
        Resume::Fresh
    })
}

fn start_session(listen: SocketAddr, rate_limits: RateLimits, super_seed: bool) -> Result<Session> {
    let mut config = SessionConfig {
        listen_addr: listen,
        rate_limits,
        ..SessionConfig::default()
    };
    config.torrent.super_seeding = super_seed;
    match Session::start(config.clone()) {
        Ok(s) => Ok(s),
        // The default port is taken (another client): take any free one, as libtorrent does.
        Err(_) if listen.port() == 6881 => Session::start(SessionConfig {
            listen_addr: SocketAddr::new(listen.ip(), 0),
            ..config
        })
        .context("cannot listen for peers"),
        Err(e) => Err(e).with_context(|| format!("cannot listen on {listen}")),
    }
}

fn resolve_peers(peers: &[String]) -> Result<Vec<SocketAddr>> {
    let mut out = Vec::new();
    for p in peers {
        let addrs = p
            .to_socket_addrs()
            .with_context(|| format!("--peer {p}: not a HOST:PORT that resolves"))?;
        out.extend(addrs);
    }
    Ok(out)
}

fn unix_now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// How a transfer loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Every wanted piece is verified.
    Finished,
    /// SIGINT or SIGTERM.
    Signalled,
    /// The seeding policy's share ratio was reached (`--seed-ratio`).
    SeedRatio,
    /// The seeding policy's time was reached (`--seed-time`).
    SeedTime,
}

/// When to stop seeding (`--seed-ratio`, `--seed-time`); with neither, seeding goes on until
/// a signal.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SeedPolicy {
    /// Stop once the bytes uploaded by this process reach this many times the torrent's size.
    pub ratio: Option<f64>,
    /// Stop after seeding this long (counted from when seeding started in this process).
    pub time: Option<Duration>,
}

impl SeedPolicy {
    /// Which limit is reached after `seeded` of seeding with `stats`, if any.
    fn reached(&self, stats: &TorrentStats, seeded: Duration) -> Option<Ending> {
        if self.ratio.is_some_and(|r| share_ratio(stats) >= r) {
            return Some(Ending::SeedRatio);
        }
        if self.time.is_some_and(|t| seeded >= t) {
            return Some(Ending::SeedTime);
        }
        None
    }
}

/// Bytes uploaded by this process over the torrent's size.
#[allow(clippy::cast_precision_loss)] // a ratio for display and a threshold
fn share_ratio(stats: &TorrentStats) -> f64 {
    stats.uploaded as f64 / stats.total_length.max(1) as f64
}

/// Parses `--seed-ratio`: a positive finite number such as `1.0` or `2.5`.
pub fn parse_ratio(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "'{text}' is not a share ratio (a positive number such as 1.0 or 2.5)"
        )),
    }
}

/// Seeds, showing progress, until a signal or until `policy` says stop; then says why.
pub async fn seed_until(running: &Running, policy: &SeedPolicy) -> Result<Ending> {
    let started = tokio::time::Instant::now();
    let ending = run_loop(running, false, Some((policy, started))).await?;
    if matches!(ending, Ending::SeedRatio | Ending::SeedTime) {
        // Let queued blocks reach the peers before we hang up on them.
        running.handle.flush_uploads(UPLOAD_FLUSH_TIMEOUT).await;
    }
    let stats = running.handle.stats();
    match ending {
        Ending::SeedRatio => println!(
            "stopping: share ratio {:.2} reached (uploaded {} of {}; --seed-ratio {})",
            share_ratio(&stats),
            stats.uploaded,
            stats.total_length,
            policy.ratio.unwrap_or_default()
        ),
        Ending::SeedTime => println!(
            "stopping: seeded for {:.1} s (--seed-time {} s)",
            started.elapsed().as_secs_f64(),
            policy.time.unwrap_or_default().as_secs()
        ),
        Ending::Finished | Ending::Signalled => {}
    }
    Ok(ending)
}

/// Shows progress until the torrent finishes (when `until_finished`; then prints
/// `complete: NAME`) or a signal arrives, saving progress to the database every few seconds
/// and once more at the end.
pub async fn run_until(running: &Running, until_finished: bool) -> Result<Ending> {
    run_loop(running, until_finished, None).await
}

/// The loop of [`run_until`] and [`seed_until`]: also stops when the seeding policy (with
/// the time seeding started) is met.
async fn run_loop(
    running: &Running,
    until_finished: bool,
    policy: Option<(&SeedPolicy, tokio::time::Instant)>,
) -> Result<Ending> {
    let deadline = policy.and_then(|(p, started)| p.time.map(|t| started + t));
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch for Ctrl-C")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch for SIGTERM")?;
    let mut stats = running.handle.watch_stats();
    let mut events = running.handle.events();
    let progress = TransferProgress::new(&running.name, running.handle.stats().total_length);
    let mut checkpoint = tokio::time::interval(CHECKPOINT_INTERVAL);
    checkpoint.tick().await;
    let ending = loop {
        let now = stats.borrow_and_update().clone();
        progress.update(&now);
        if now.state == TorrentState::Failed {
            progress.finish();
            bail!("the torrent stopped after a disk error (see the log above)");
        }
        if until_finished && now.finished {
            break Ending::Finished;
        }
        if let Some(reached) = policy.and_then(|(p, started)| p.reached(&now, started.elapsed())) {
            break reached;
        }
        let policy_time = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = stats.changed() => if changed.is_err() { bail!("the session stopped unexpectedly") },
            () = policy_time => {}
            _ = interrupt.recv() => break Ending::Signalled,
            _ = terminate.recv() => break Ending::Signalled,
            _ = checkpoint.tick() => save(running).await?,
            event = next_event(&mut events) => report_event(event.as_ref()),
        }
    };
    progress.finish();
    if until_finished && ending == Ending::Finished {
        // Every piece is verified and written (to the page cache): say so now, as other
        // clients do; syncing the data and recording it follows.
        println!("complete: {}", running.name);
    }
    save(running).await?;
    Ok(ending)
}

/// The next torrent event (`None` after missed ones); pending forever once the torrent's
/// event channel closed (the stats watch reports the end).
async fn next_event(events: &mut broadcast::Receiver<TorrentEvent>) -> Option<TorrentEvent> {
    match events.recv().await {
        Ok(event) => Some(event),
        Err(broadcast::error::RecvError::Lagged(_)) => None,
        Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
    }
}

/// Prints the events scripts read: the time to first byte, as
/// `first block after S.SSSS s of connecting` (from the handshake of the connection the first
/// block of payload came on to that block's arrival).
fn report_event(event: Option<&TorrentEvent>) {
    if let Some(TorrentEvent::FirstBlock { after }) = event {
        println!(
            "first block after {:.4} s of connecting",
            after.as_secs_f64()
        );
    }
}

/// Shows the check of data already on disk (if one runs) until it ends.
pub async fn wait_checked(handle: &TorrentHandle, name: &str) -> Result<()> {
    let mut stats = handle.watch_stats();
    let first = stats.borrow().clone();
    if !matches!(first.state, TorrentState::Checking { .. }) {
        return Ok(());
    }
    let progress = ByteProgress::new("checking", first.total_length);
    let per_piece = first
        .total_length
        .div_ceil(u64::from(first.piece_count.max(1)));
    loop {
        let now = stats.borrow_and_update().clone();
        match now.state {
            TorrentState::Checking { checked, .. } => {
                progress.set((u64::from(checked) * per_piece).min(now.total_length));
            }
            TorrentState::Failed => bail!("checking {name} failed (see the log above)"),
            _ => {
                progress.finish();
                report_check(name, &now);
                return Ok(());
            }
        }
        if stats.changed().await.is_err() {
            bail!("the session stopped while checking {name}");
        }
    }
}

/// Says what the check of existing data found, warning when a seed lacks pieces.
fn report_check(name: &str, stats: &TorrentStats) {
    eprintln!(
        "{name}: data checked, {} of {} pieces present",
        stats.pieces_have, stats.piece_count
    );
    if stats.pieces_have < stats.piece_count && stats.state == TorrentState::Seeding {
        eprintln!(
            "warning: {name}: the data on disk is incomplete or damaged; seeding what is there"
        );
    }
}

/// Syncs data and records what is verified.
pub async fn save(running: &Running) -> Result<()> {
    running
        .handle
        .checkpoint(Some(Arc::clone(&running.db)))
        .await
        .context("cannot save progress to the resume database")?;
    Ok(())
}

/// Prints the one-line summary scripts read at exit.
pub fn print_summary(stats: &TorrentStats) {
    println!(
        "summary: downloaded={} uploaded={} wasted={}",
        stats.downloaded, stats.uploaded, stats.wasted
    );
}

/// Runs an async transfer command on a fresh tokio runtime.
pub fn block_on<F: std::future::Future<Output = Result<()>>>(future: F) -> Result<()> {
    // One worker: on 2 cores the disk threads hash and write in parallel with it, and one
    // worker measured faster and smaller than two (see BENCHMARKS.md).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(future)
}
