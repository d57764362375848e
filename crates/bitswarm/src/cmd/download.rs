//! `bitswarm download`: fetch a torrent's data from its swarm, verify every piece, and
//! optionally keep seeding. Rerunning it resumes from the state database.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::info::load_torrent;
use super::transfer::{self, Ending, SeedPolicy, SwarmArgs};
use crate::select::FileSelection;

/// Arguments of `bitswarm download`.
#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// The .torrent file, or a magnet link ('magnet:?xt=urn:btih:...'): its info dictionary
    /// is fetched from the peers of --peer, the link's x.pe and tr, and the DHT.
    pub torrent: PathBuf,
    /// The folder to download into.
    #[arg(short, long, default_value = ".")]
    pub output: PathBuf,
    /// Keep seeding after the download completes, until Ctrl-C (or --seed-ratio/--seed-time).
    #[arg(long)]
    pub seed: bool,
    /// With --seed: stop seeding once this process has uploaded R times the torrent's size
    /// (e.g. 1.0 or 2.5); trackers are told `stopped`, progress is saved, exit status 0.
    #[arg(long, value_name = "R", requires = "seed", value_parser = transfer::parse_ratio)]
    pub seed_ratio: Option<f64>,
    /// With --seed: stop after seeding this long (e.g. 90s, 30m, 1h30m).
    #[arg(long, value_name = "DURATION", requires = "seed", value_parser = crate::units::parse_duration)]
    pub seed_time: Option<Duration>,
    /// Download only these files: indices (0-based, as `bitswarm info --json` lists them),
    /// ranges like 2-5, or glob patterns like '*.iso'; comma-separated or repeated.
    #[arg(long = "files", value_name = "SPEC")]
    pub files: Vec<String>,
    #[command(flatten)]
    pub swarm: SwarmArgs,
}

/// Runs `bitswarm download`.
pub fn run(args: &DownloadArgs) -> Result<()> {
    if let Some(link) = crate::magnet::link_arg(&args.torrent)? {
        let (meta, peers) = crate::magnet::fetch_blocking(&link, &args.swarm)?;
        return download(args, &meta, peers);
    }
    let meta = load_torrent(&args.torrent)?;
    download(args, &meta, Vec::new())
}

/// Downloads `meta` (from a .torrent file, or fetched for a magnet link), connecting to
/// `peers` besides those of `--peer`.
fn download(
    args: &DownloadArgs,
    meta: &bitswarm_metainfo::Metainfo,
    peers: Vec<std::net::SocketAddr>,
) -> Result<()> {
    let selection = FileSelection::parse(&args.files)?;
    let paths: Vec<String> = meta.info.files.iter().map(|f| f.path.join("/")).collect();
    if !args.files.is_empty()
        && !paths
            .iter()
            .enumerate()
            .any(|(i, p)| selection.selects(i, p))
    {
        bail!(
            "--files selects none of the torrent's {} files",
            paths.len()
        );
    }
    let wanted = |i: usize| paths.get(i).is_some_and(|p| selection.selects(i, p));
    let layout = transfer::layout(meta, &wanted)?;
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    transfer::block_on(async {
        let running = transfer::start(meta, layout, &args.output, &args.swarm, false).await?;
        running.handle.add_peers(peers);
        let complete_at_start = running.handle.stats().finished;
        let mut ending = transfer::run_until(&running, true).await?;
        if ending == Ending::Finished {
            if !complete_at_start {
                running.announce_completed();
            }
            if args.seed {
                eprintln!("seeding {} until Ctrl-C", running.name);
                let policy = SeedPolicy {
                    ratio: args.seed_ratio,
                    time: args.seed_time,
                };
                ending = transfer::seed_until(&running, &policy).await?;
            }
        }
        let stats = running.handle.stats();
        running.shutdown().await;
        transfer::print_summary(&stats);
        if ending == Ending::Signalled && !stats.finished {
            bail!("interrupted; progress is saved, run the same command again to resume");
        }
        Ok(())
    })
}
