//! The demo's peers: one session each, in this process, on 127.0.0.1. Starts the seeder and
//! the leechers one after the other (each announces before the next starts, so the tracker
//! hands every newcomer the peers before it), shows them live, records when each leecher
//! finishes and what each connection carried, and stops them all, also on error or Ctrl-C.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bitswarm_announce::AnnounceHandle;
use bitswarm_metainfo::Metainfo;
use bitswarm_runtime::{
    AddTorrent, Bitfield, RateLimits, Resume, Session, SessionConfig, TorrentHandle, TorrentState,
    TorrentStats,
};

use super::ledger::Ledger;
use super::{check_cancel, DemoArgs};
use crate::cmd::transfer;
use crate::progress::{have_bytes, MultiBars};
use crate::units;

/// The least send queue per connection of a rate-limited peer.
const SEND_BUFFER_MIN_BYTES: usize = 64 << 10;
/// Regular unchoke slots of every peer. Fewer than usual (4): with 5 leechers, 4 slots and
/// the optimistic one would unchoke everybody, and tit-for-tat would have nothing to choose.
pub const UNCHOKE_SLOTS: usize = 2;
/// How often unchoke slots are re-chosen: half the usual 10 s, for a half-minute run.
pub const RECHOKE_INTERVAL: Duration = Duration::from_secs(5);
/// How often the optimistic unchoke moves on: half the usual 30 s likewise.
pub const OPTIMISTIC_INTERVAL: Duration = Duration::from_secs(15);
/// How often the view, the finish times and the per-connection counts are refreshed. Short,
/// because a connection that closes takes what it carried since the last look with it.
const REFRESH_INTERVAL: Duration = Duration::from_millis(50);
/// Longest wait for a peer's first answer from the tracker.
const ANNOUNCE_WAIT_MAX: Duration = Duration::from_secs(10);
/// How often that wait looks.
const ANNOUNCE_POLL_INTERVAL: Duration = Duration::from_millis(10);
/// The demo gives up when the leechers have not all finished after this long.
const SWARM_TIME_MAX: Duration = Duration::from_secs(300);

/// Who takes part: the seeder's upload limit and one per leecher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The seeder's upload limit in bytes per second.
    pub seed_limit: Option<u64>,
    /// Each leecher's upload limit in bytes per second.
    pub leechers: Vec<Option<u64>>,
}

impl Plan {
    /// The plan the command line asks for.
    pub fn new(args: &DemoArgs) -> Self {
        let limit = |l: Option<u64>| if args.no_limits { None } else { l };
        let count = usize::try_from(args.leechers).unwrap_or(1);
        Self {
            seed_limit: limit(Some(args.seed_limit).filter(|&l| l > 0)),
            leechers: args
                .leecher_limits
                .iter()
                .cycle()
                .take(count)
                .map(|&l| limit(Some(l).filter(|&l| l > 0)))
                .collect(),
        }
    }
}

/// One peer at the end of the run.
#[derive(Debug, Clone)]
pub struct PeerOutcome {
    /// `seed`, `leech-1`, ...
    pub name: String,
    /// The seeder (had the data from the start).
    pub is_seed: bool,
    /// Its upload limit in bytes per second.
    pub upload_limit: Option<u64>,
    /// The folder its copy is in.
    pub save_path: PathBuf,
    /// When it had every piece, counted from the first leecher's start.
    pub finished_after: Option<Duration>,
    /// Its torrent's last statistics.
    pub stats: TorrentStats,
}

/// What the run showed.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The seeder first, then the leechers.
    pub peers: Vec<PeerOutcome>,
    /// `sent[i][j]`: payload bytes peer `i` sent to peer `j`.
    pub sent: Vec<Vec<u64>>,
}

/// Runs the swarm until every leecher has the whole torrent.
pub async fn run(
    meta: &Metainfo,
    work: &Path,
    plan: &Plan,
    cancel: &AtomicBool,
) -> Result<Outcome> {
    let mut peers = Vec::new();
    let started = start_all(&mut peers, meta, work, plan, cancel).await;
    let result = match started {
        Ok(()) => watch(&mut peers, cancel).await,
        Err(e) => Err(e),
    };
    for peer in peers {
        if let Some(announce) = peer.announce {
            announce.stop().await;
        }
        peer.session.shutdown().await;
    }
    result
}

/// A running peer.
struct Peer {
    name: String,
    is_seed: bool,
    upload_limit: Option<u64>,
    save_path: PathBuf,
    session: Session,
    handle: TorrentHandle,
    announce: Option<AnnounceHandle>,
    finished_after: Option<Duration>,
}

impl Peer {
    fn label(&self) -> String {
        format!("{} (up {})", self.name, limit_text(self.upload_limit))
    }
}

/// `8 MiB/s` or `unlimited`.
pub fn limit_text(limit: Option<u64>) -> String {
    limit.map_or_else(
        || "unlimited".to_owned(),
        |l| format!("{}/s", units::bytes(l)),
    )
}

async fn start_all(
    peers: &mut Vec<Peer>,
    meta: &Metainfo,
    work: &Path,
    plan: &Plan,
    cancel: &AtomicBool,
) -> Result<()> {
    let pieces = u32::try_from(meta.info.pieces.len()).context("too many pieces")?;
    let seed = start_peer(
        meta,
        "seed",
        plan.seed_limit,
        work,
        Resume::Trusted(Bitfield::full(pieces)),
    );
    peers.push(seed.await?);
    for (i, &limit) in plan.leechers.iter().enumerate() {
        check_cancel(cancel)?;
        let name = format!("leech-{}", i + 1);
        let save_path = work.join(&name);
        peers.push(start_peer(meta, &name, limit, &save_path, Resume::Fresh).await?);
    }
    for peer in peers.iter() {
        println!(
            "{:<8} listening on {}, upload limit {}",
            peer.name,
            peer.session.listen_addr(),
            limit_text(peer.upload_limit)
        );
    }
    Ok(())
}

/// Starts a session with its upload limit, adds the torrent and waits for the tracker's
/// first answer.
async fn start_peer(
    meta: &Metainfo,
    name: &str,
    upload_limit: Option<u64>,
    save_path: &Path,
    resume: Resume,
) -> Result<Peer> {
    let rate_limits = RateLimits {
        upload: upload_limit,
        download: None,
    };
    let defaults = SessionConfig::localhost();
    // Blocks count as sent once queued for the socket; under a limit, a short queue keeps
    // that count (and the answer to a request) within about a quarter second of the truth.
    let peer_send_buffer_max = upload_limit.map_or(defaults.peer_send_buffer_max, |l| {
        usize::try_from(l / 4).map_or(defaults.peer_send_buffer_max, |b| {
            b.clamp(SEND_BUFFER_MIN_BYTES, defaults.peer_send_buffer_max)
        })
    });
    let mut torrent = defaults.torrent.clone();
    torrent.unchoke_slots = UNCHOKE_SLOTS;
    torrent.rechoke_interval = RECHOKE_INTERVAL;
    torrent.optimistic_interval = OPTIMISTIC_INTERVAL;
    let config = SessionConfig {
        rate_limits,
        peer_send_buffer_max,
        torrent,
        ..defaults
    };
    let is_seed = matches!(resume, Resume::Trusted(_));
    let session = Session::start(config).with_context(|| format!("cannot start {name}"))?;
    let handle = session
        .add_torrent(AddTorrent {
            info_hash: *meta.info_hash.as_bytes(),
            layout: transfer::layout(meta, &|_| true)?,
            save_path: save_path.to_path_buf(),
            resume,
            peers: Vec::new(),
            // Peers get the info dictionary from the .torrent; no magnet links here.
            metadata: None,
            private: meta.info.private,
            rate_limits: RateLimits::default(),
        })
        .await
        .with_context(|| format!("cannot add the torrent to {name}"))?;
    let announce = transfer::start_announcing(meta, &session, &handle);
    if let Some(announce) = &announce {
        wait_announced(announce)
            .await
            .with_context(|| format!("{name}: the tracker did not answer"))?;
    }
    Ok(Peer {
        name: name.to_owned(),
        is_seed,
        upload_limit,
        save_path: save_path.to_path_buf(),
        session,
        handle,
        announce,
        finished_after: None,
    })
}

async fn wait_announced(announce: &AnnounceHandle) -> Result<()> {
    let answered = || announce.stats().iter().any(|t| t.last_announce.is_some());
    tokio::time::timeout(ANNOUNCE_WAIT_MAX, async {
        while !answered() {
            tokio::time::sleep(ANNOUNCE_POLL_INTERVAL).await;
        }
    })
    .await
    .context("no answer in time")
}

/// Shows every peer until all leechers finish; returns what happened.
async fn watch(peers: &mut [Peer], cancel: &AtomicBool) -> Result<Outcome> {
    let labels: Vec<String> = peers.iter().map(Peer::label).collect();
    let total_length = peers.first().map_or(0, |p| p.handle.stats().total_length);
    let view = MultiBars::new(&labels, total_length);
    let ids: Vec<[u8; 20]> = peers.iter().map(|p| p.session.peer_id().0).collect();
    let mut ledger = Ledger::new(&ids);
    let started = Instant::now();
    let mut tick = tokio::time::interval(REFRESH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let result = loop {
        tick.tick().await;
        if let Err(e) = check_cancel(cancel) {
            break Err(e);
        }
        if let Err(e) = refresh(peers, &mut ledger, &view, started).await {
            break Err(e);
        }
        view.draw(false);
        if peers
            .iter()
            .all(|p| p.is_seed || p.finished_after.is_some())
        {
            break Ok(());
        }
        if started.elapsed() > SWARM_TIME_MAX {
            break Err(anyhow::anyhow!(
                "the leechers did not all finish within {} s",
                SWARM_TIME_MAX.as_secs()
            ));
        }
    };
    view.finish();
    result?;
    Ok(Outcome {
        peers: peers
            .iter()
            .map(|p| PeerOutcome {
                name: p.name.clone(),
                is_seed: p.is_seed,
                upload_limit: p.upload_limit,
                save_path: p.save_path.clone(),
                finished_after: p.finished_after,
                stats: p.handle.stats(),
            })
            .collect(),
        sent: ledger.sent(),
    })
}

/// Reads every peer's statistics and connections once, updating the view.
async fn refresh(
    peers: &mut [Peer],
    ledger: &mut Ledger,
    view: &MultiBars,
    started: Instant,
) -> Result<()> {
    for (i, peer) in peers.iter_mut().enumerate() {
        let stats = peer.handle.stats();
        if stats.state == TorrentState::Failed {
            bail!("{} stopped after a disk error", peer.name);
        }
        if !peer.is_seed && stats.finished && peer.finished_after.is_none() {
            peer.finished_after = Some(started.elapsed());
            if let Some(announce) = &peer.announce {
                announce.completed();
            }
        }
        if let Ok(connections) = peer.handle.peer_stats().await {
            ledger.observe(i, &connections);
        }
        view.set(
            i,
            have_bytes(&stats),
            stats.total_length,
            status(&stats, peer),
        );
    }
    Ok(())
}

/// The text beside a peer's bar.
fn status(stats: &TorrentStats, peer: &Peer) -> String {
    let ratio = if peer.is_seed {
        "    -".to_owned()
    } else {
        #[allow(clippy::cast_precision_loss)] // display only
        let r = stats.uploaded as f64 / stats.downloaded.max(1) as f64;
        format!("{r:5.2}")
    };
    let done = peer
        .finished_after
        .map(|d| format!(", done at {:.1} s", d.as_secs_f64()))
        .unwrap_or_default();
    format!(
        "down {:>10}/s  up {:>10}/s  ratio {ratio}  {} peers{done}",
        units::bytes(stats.download_rate),
        units::bytes(stats.upload_rate),
        stats.peers
    )
}
