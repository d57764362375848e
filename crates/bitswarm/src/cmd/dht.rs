//! `bitswarm dht`: the DHT on its own — look a torrent's peers up, announce one, show a node's
//! routing table, or run a standalone node (a bootstrap node for tests and small networks).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bitswarm_dht_node::{DhtNode, DhtNodeConfig, DhtPeers, DhtStats, LookupSummary, NodeId};
use clap::{Args, Subcommand};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use super::transfer;
use crate::dht::bootstrap_list;

/// Arguments of `bitswarm dht`.
#[derive(Debug, Args)]
pub struct DhtArgs {
    #[command(subcommand)]
    command: DhtCommand,
}

#[derive(Debug, Subcommand)]
enum DhtCommand {
    /// Look a torrent's peers up and print each one (IP:PORT), then a `lookup:` line.
    GetPeers(GetPeersArgs),
    /// Announce that a peer has a torrent, then print an `announce:` line.
    Announce(AnnounceArgs),
    /// Run a node from the saved table for a few seconds and print its routing table.
    Stats(StatsArgs),
    /// Run a standalone DHT node until Ctrl-C (prints `dht listening on ADDR`).
    Run(RunArgs),
}

/// Options of every `dht` subcommand.
#[derive(Debug, Args)]
struct NodeArgs {
    /// A node to bootstrap from (HOST:PORT); repeatable. `none`: only the saved table.
    /// Default: the public routers.
    #[arg(long, value_name = "HOST:PORT")]
    bootstrap: Vec<String>,
    /// The IPv4 address to bind.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    bind: IpAddr,
    /// The state database holding the saved table. Default:
    /// `$XDG_DATA_HOME/bitswarm/state.sqlite`.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// BEP 43 read-only: ask other nodes, never answer them.
    #[arg(long)]
    read_only: bool,
}

#[derive(Debug, Args)]
struct GetPeersArgs {
    /// The torrent's info-hash (40 hex digits).
    info_hash: String,
    #[command(flatten)]
    node: NodeArgs,
    /// The UDP port (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
}

#[derive(Debug, Args)]
struct AnnounceArgs {
    /// The torrent's info-hash (40 hex digits).
    info_hash: String,
    /// The peer port to announce. Default: the DHT port (BEP 5 `implied_port`).
    #[arg(long, value_name = "N")]
    peer_port: Option<u16>,
    #[command(flatten)]
    node: NodeArgs,
    /// The UDP port (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
}

#[derive(Debug, Args)]
struct StatsArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// The UDP port (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// How long to run the node before printing, in seconds.
    #[arg(long = "for", value_name = "S", default_value_t = 5.0)]
    run_for: f64,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// The UDP port (0: any free port).
    #[arg(long, default_value_t = 6881)]
    port: u16,
}

/// Runs `bitswarm dht ...`.
pub fn run(args: &DhtArgs) -> Result<()> {
    transfer::block_on(async {
        match &args.command {
            DhtCommand::GetPeers(a) => get_peers(a).await,
            DhtCommand::Announce(a) => announce(a).await,
            DhtCommand::Stats(a) => stats(a).await,
            DhtCommand::Run(a) => serve(a).await,
        }
    })
}

fn start(args: &NodeArgs, port: u16) -> Result<DhtNode> {
    if !args.bind.is_ipv4() {
        bail!("--bind {}: the DHT runs on IPv4 only for now", args.bind);
    }
    let state = match &args.state {
        Some(p) => p.clone(),
        None => transfer::default_state_path()?,
    };
    if let Some(parent) = state.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let config = DhtNodeConfig {
        bootstrap: bootstrap_list(&args.bootstrap)?,
        state: Some(state),
        read_only: args.read_only,
        ..DhtNodeConfig::new(SocketAddr::new(args.bind, port))
    };
    DhtNode::start(config).context("cannot start the DHT node")
}

fn parse_info_hash(text: &str) -> Result<[u8; 20]> {
    let mut out = [0u8; 20];
    let bytes = text.as_bytes();
    if bytes.len() != 40 {
        bail!("{text:?} is not an info-hash (40 hex digits)");
    }
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let pair = std::str::from_utf8(pair).ok();
        out[i] = pair
            .and_then(|p| u8::from_str_radix(p, 16).ok())
            .with_context(|| format!("{text:?} is not an info-hash (40 hex digits)"))?;
    }
    Ok(out)
}

fn seconds(s: f64, what: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(s).with_context(|| format!("{what} {s}: not a duration"))
}

async fn get_peers(args: &GetPeersArgs) -> Result<()> {
    let info_hash = parse_info_hash(&args.info_hash)?;
    let timeout = seconds(args.timeout, "--timeout")?;
    let node = start(&args.node, args.port)?;
    eprintln!("dht listening on {}", node.local_addr());
    let started = Instant::now();
    let rx = node.get_peers(info_hash).await?;
    let found = print_peers(rx, started + timeout).await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut how = match found.done {
        Some(s) => format!("{} nodes answered", s.nodes_responded),
        None => "timed out".to_owned(),
    };
    if let Some(first) = found.first {
        let first = first.duration_since(started).as_secs_f64();
        how = format!("first after {first:.3} s, {how}");
    }
    println!("lookup: {} peers in {elapsed:.3} s ({how})", found.count);
    if found.done.is_some_and(|d| d.nodes_responded == 0) {
        eprintln!("warning: no DHT node answered; check --bootstrap and the network");
    }
    node.shutdown().await?;
    Ok(())
}

/// What a lookup printed.
struct Found {
    count: usize,
    /// When the first peer arrived.
    first: Option<Instant>,
    /// The lookup's summary; `None` on timeout.
    done: Option<LookupSummary>,
}

/// Prints each peer as it arrives until the lookup ends or `deadline`.
async fn print_peers(mut rx: mpsc::Receiver<DhtPeers>, deadline: Instant) -> Found {
    let mut found = Found {
        count: 0,
        first: None,
        done: None,
    };
    let deadline = tokio::time::Instant::from_std(deadline);
    while let Ok(Some(batch)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        if !batch.peers.is_empty() && found.first.is_none() {
            found.first = Some(Instant::now());
        }
        for peer in &batch.peers {
            println!("{peer}");
        }
        found.count += batch.peers.len();
        if batch.done.is_some() {
            found.done = batch.done;
            break;
        }
    }
    found
}

async fn announce(args: &AnnounceArgs) -> Result<()> {
    let info_hash = parse_info_hash(&args.info_hash)?;
    let timeout = seconds(args.timeout, "--timeout")?;
    let node = start(&args.node, args.port)?;
    eprintln!("dht listening on {}", node.local_addr());
    let started = Instant::now();
    let mut announcement = node.announce(info_hash, args.peer_port).await?;
    let deadline = tokio::time::Instant::from_std(started + timeout);
    let mut peers = 0;
    let summary = loop {
        match tokio::time::timeout_at(deadline, announcement.recv()).await {
            Ok(Some(batch)) => {
                peers += batch.peers.len();
                if let Some(done) = batch.done {
                    break Some(done);
                }
            }
            Ok(None) | Err(_) => break None,
        }
    };
    drop(announcement);
    let elapsed = started.elapsed().as_secs_f64();
    match summary {
        Some(s) => println!(
            "announce: sent to {} nodes in {elapsed:.3} s ({peers} peers found, {} nodes answered)",
            s.announced_to, s.nodes_responded
        ),
        None => println!("announce: timed out after {elapsed:.3} s"),
    }
    node.shutdown().await?;
    Ok(())
}

async fn stats(args: &StatsArgs) -> Result<()> {
    let run_for = seconds(args.run_for, "--for")?;
    let node = start(&args.node, args.port)?;
    println!("dht listening on {}", node.local_addr());
    tokio::time::sleep(run_for).await;
    let s = node.stats().await?;
    println!("node id: {}", id_hex(node.id()));
    print_stats(&s);
    if s.nodes == 0 {
        eprintln!("warning: no DHT node known; check --bootstrap and the network");
    }
    node.shutdown().await?;
    Ok(())
}

fn id_hex(id: NodeId) -> String {
    id.0.iter().fold(String::with_capacity(40), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn print_stats(s: &DhtStats) {
    println!(
        "routing table: {} nodes ({} good) in {} buckets",
        s.nodes, s.good_nodes, s.buckets
    );
    println!("requests in flight: {}", s.in_flight);
    println!("lookups: {}", s.lookups);
    println!(
        "stored: {} torrents, {} peers",
        s.torrents_stored, s.peers_stored
    );
    println!(
        "queries received: {}, datagrams dropped: {}",
        s.queries_received, s.responses_dropped
    );
}

async fn serve(args: &RunArgs) -> Result<()> {
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch for Ctrl-C")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch for SIGTERM")?;
    let node = start(&args.node, args.port)?;
    println!("dht listening on {}", node.local_addr());
    println!("node id: {}", id_hex(node.id()));
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    let s = node.stats().await?;
    print_stats(&s);
    node.shutdown().await?;
    println!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_hashes_are_40_hex_digits() {
        let ih = parse_info_hash("00112233445566778899aabbccddeeffAABBCCDD").unwrap();
        assert_eq!(ih[0], 0x00);
        assert_eq!(ih[19], 0xdd);
        assert!(parse_info_hash("0011").is_err());
        assert!(parse_info_hash("zz112233445566778899aabbccddeeffaabbccdd").is_err());
        assert!(parse_info_hash("é0112233445566778899aabbccddeeffaabbccd").is_err());
    }
}
