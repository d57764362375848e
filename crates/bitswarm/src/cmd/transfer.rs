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
    AddTorrent, FileSpec, Resume, ResumeDb, Session, SessionConfig, TorrentHandle, TorrentLayout,
    TorrentState, TorrentStats,
};
use bitswarm_storage::TorrentRecord;
use clap::Args;
use tokio::signal::unix::{signal, SignalKind};

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
    /// Do not use the DHT (accepted now; the DHT arrives in a later release).
    #[arg(long)]
    pub no_dht: bool,
}

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

fn default_state_path() -> Result<PathBuf> {
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
    let db = open_state(args.state.as_deref())?;
    let info_hash = *meta.info_hash.as_bytes();
    let resume = resume_for(&db, info_hash, &layout, save_path, check_existing)?;
    db.add_torrent(&TorrentRecord {
        info_hash,
        save_path: save_path.to_path_buf(),
        added_at_unix: unix_now(),
    })
    .context("cannot record the torrent in the resume database")?;
    let session = start_session(args.listen)?;
    let peers = resolve_peers(&args.peers)?;
    let handle = session
        .add_torrent(AddTorrent {
            info_hash,
            layout,
            save_path: save_path.to_path_buf(),
            resume,
            peers,
        })
        .await
        .context("cannot start the torrent")?;
    wait_checked(&handle, &meta.info.name).await?;
    // Printed once the data is checked and peers are served: scripts wait for this line.
    println!("listening on {}", session.listen_addr());
    let announce = start_announcing(meta, &session, &handle);
    Ok(Running {
        session,
        handle,
        db,
        name: meta.info.name.clone(),
        announce,
    })
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

fn start_session(listen: SocketAddr) -> Result<Session> {
    let config = SessionConfig {
        listen_addr: listen,
        ..SessionConfig::default()
    };
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
}

/// Shows progress until the torrent finishes (when `until_finished`) or a signal arrives,
/// saving progress to the database every few seconds.
pub async fn run_until(running: &Running, until_finished: bool) -> Result<Ending> {
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch for Ctrl-C")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch for SIGTERM")?;
    let mut stats = running.handle.watch_stats();
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
        tokio::select! {
            changed = stats.changed() => if changed.is_err() { bail!("the session stopped unexpectedly") },
            _ = interrupt.recv() => break Ending::Signalled,
            _ = terminate.recv() => break Ending::Signalled,
            _ = checkpoint.tick() => save(running).await?,
        }
    };
    progress.finish();
    save(running).await?;
    Ok(ending)
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
