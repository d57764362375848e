//! `bitswarm download MAGNET`: the metadata phase. Fetches the info dictionary named by a
//! magnet link from peers (`--peer`, the link's `x.pe`, its `tr` trackers through the usual
//! announce driver, and the DHT), checks it against the info-hash (the runtime does), and
//! builds the `Metainfo` the ordinary download then runs with (the link's trackers become the
//! torrent's, one tier each). Prints `metadata: NAME (N pieces) in X.XXX s`.
//!
//! The fetch runs in a session of its own that ends once the bytes are verified; the download
//! then starts its usual session and reconnects to the peers the fetch found. Nothing is saved
//! for a magnet beyond the download's resume state: rerunning the command fetches the metadata
//! again (a round trip or two) and resumes the data from the state database.
//!
//! **Peer sources during the fetch** all feed one [`PeerSink`]: the command line and `x.pe` up
//! front, the trackers' and the DHT's answers as they come.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use bitswarm_announce::{
    AnnounceConfig, AnnounceEvent, AnnounceHandle, AnnounceProgress, Announcer,
};
use bitswarm_metainfo::{Info, InfoHash, MagnetLink, Metainfo};
use bitswarm_runtime::{PeerSink, Session, SessionConfig};

use crate::cmd::transfer::{default_state_path, SwarmArgs};

/// What a tracker is told is left to download while the size is not known yet (a non-zero
/// `left` marks us as a leecher, so trackers answer with seeds).
const LEFT_UNKNOWN_BYTES: u64 = 1 << 30;

/// The magnet link in a `download` argument, if it is one.
pub fn link_arg(arg: &Path) -> Result<Option<MagnetLink>> {
    let Some(text) = arg.to_str().map(str::trim) else {
        return Ok(None);
    };
    if !text
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("magnet:"))
    {
        return Ok(None);
    }
    let link = MagnetLink::parse(text).context("not a usable magnet link")?;
    if link.info_hash.is_none() {
        bail!("the magnet link has no BitTorrent v1 info-hash (xt=urn:btih:...)");
    }
    Ok(Some(link))
}

/// Fetches the metadata on a runtime of its own; returns the torrent and the peers to connect
/// it to.
pub fn fetch_blocking(link: &MagnetLink, args: &SwarmArgs) -> Result<(Metainfo, Vec<SocketAddr>)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(fetch(link, args))
}

/// Runs the metadata phase: see the module docs.
pub async fn fetch(link: &MagnetLink, args: &SwarmArgs) -> Result<(Metainfo, Vec<SocketAddr>)> {
    let started = Instant::now();
    let info_hash = link.info_hash.context("the magnet link has no info-hash")?;
    let hash = *info_hash.as_bytes();
    let mut peers = resolve_all(&args.peers, "--peer")?;
    peers.extend(resolve_all(&link.peers, "x.pe")?);
    let session = Session::start(SessionConfig {
        listen_addr: SocketAddr::new(args.listen.ip(), 0),
        ..SessionConfig::default()
    })
    .context("cannot start a session for the metadata")?;
    let mut fetch = session
        .fetch_metadata(hash, peers)
        .context("cannot start fetching the metadata")?;
    let sink = session.peer_sink(hash);
    let announce = announce_for_peers(link, &session, &sink);
    let dht = start_dht(args, hash, &session, sink).await;
    if announce.is_none() && dht.is_none() && args.peers.is_empty() && link.peers.is_empty() {
        bail!("no way to find peers: give --peer HOST:PORT, or a link with trackers (tr=), or enable the DHT");
    }
    let fetched = tokio::select! {
        fetched = fetch.wait() => fetched.context("fetching the metadata failed")?,
        _ = tokio::signal::ctrl_c() => bail!("interrupted while fetching the metadata"),
    };
    let elapsed = started.elapsed();
    if let Some(announce) = announce {
        announce.stop().await;
    }
    if let Some(dht) = dht {
        dht.shutdown().await;
    }
    drop(fetch);
    session.shutdown().await;
    let meta = metainfo(link, info_hash, &fetched.info)?;
    println!(
        "metadata: {} ({} pieces) in {:.3} s",
        meta.info.name,
        meta.info.pieces.len(),
        elapsed.as_secs_f64()
    );
    Ok((meta, fetched.peers))
}

/// The torrent described by verified info bytes and the link's trackers and web seeds.
fn metainfo(link: &MagnetLink, info_hash: InfoHash, raw: &[u8]) -> Result<Metainfo> {
    let (info, warnings) =
        Info::from_bytes(raw).context("the fetched info dictionary is not a valid torrent")?;
    let mut tiers: Vec<Vec<String>> = Vec::new();
    for tracker in &link.trackers {
        if !tiers.iter().flatten().any(|t| t == tracker) {
            tiers.push(vec![tracker.clone()]);
        }
    }
    Ok(Metainfo {
        info_hash,
        info,
        info_raw: raw.to_vec(),
        announce: None,
        announce_list: tiers,
        web_seeds: link.web_seeds.clone(),
        nodes: Vec::new(),
        comment: None,
        created_by: None,
        creation_date: None,
        warnings,
    })
}

/// Announces to the link's trackers while fetching, feeding the peers they return to `sink`.
fn announce_for_peers(
    link: &MagnetLink,
    session: &Session,
    sink: &PeerSink,
) -> Option<AnnounceHandle> {
    let info_hash = link.info_hash?;
    let tiers: Vec<Vec<String>> = link.trackers.iter().map(|t| vec![t.clone()]).collect();
    if tiers.is_empty() {
        return None;
    }
    let config = AnnounceConfig::new(
        tiers,
        *info_hash.as_bytes(),
        session.peer_id().0,
        session.listen_addr().port(),
    );
    let progress = Arc::new(|| AnnounceProgress {
        uploaded: 0,
        downloaded: 0,
        left: LEFT_UNKNOWN_BYTES,
    });
    let (announce, mut events) = Announcer::spawn(config, progress);
    let sink = sink.clone();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                AnnounceEvent::Peers(peers) => {
                    sink.add_peers(peers);
                }
                AnnounceEvent::Warning { tracker, message } => {
                    eprintln!("tracker {tracker}: warning: {message}");
                }
                AnnounceEvent::Failure { tracker, reason } => {
                    eprintln!("tracker {tracker}: refused: {reason}");
                }
                AnnounceEvent::Error { tracker, error } => {
                    eprintln!("tracker {tracker}: unreachable: {error}");
                }
            }
        }
    });
    Some(announce)
}

/// The DHT for the fetch phase (unless `--no-dht`), feeding `sink`. A DHT that cannot start
/// is reported and the fetch goes on with the other sources.
async fn start_dht(
    args: &SwarmArgs,
    info_hash: [u8; 20],
    session: &Session,
    sink: PeerSink,
) -> Option<crate::dht::TorrentDhtState> {
    let state = match &args.state {
        Some(p) => p.clone(),
        None => default_state_path().ok()?,
    };
    // Look up only: the fetch's listen port closes when the metadata is in, so announcing it
    // would send peers to a dead address; the download that follows announces its own.
    let started = crate::dht::TorrentDhtState::start(
        &args.dht,
        false,
        false,
        info_hash,
        session.listen_addr(),
        &state,
        move |peers| {
            sink.add_peers(peers);
        },
    )
    .await;
    match started {
        Ok(dht) => dht,
        Err(e) => {
            eprintln!("warning: the DHT is not available for the metadata: {e:#}");
            None
        }
    }
}

fn resolve_all(peers: &[String], source: &str) -> Result<Vec<SocketAddr>> {
    let mut out = Vec::new();
    for p in peers {
        let addrs = p
            .to_socket_addrs()
            .with_context(|| format!("{source} {p}: not a HOST:PORT that resolves"))?;
        out.extend(addrs);
    }
    Ok(out)
}
