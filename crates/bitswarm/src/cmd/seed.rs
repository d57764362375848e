//! `bitswarm seed`: verify data already on disk against a torrent, then upload it to the
//! swarm until stopped.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;

use super::info::load_torrent;
use super::transfer::{self, SeedPolicy, SwarmArgs};

/// Arguments of `bitswarm seed`.
#[derive(Debug, Args)]
pub struct SeedArgs {
    /// The .torrent file.
    pub torrent: PathBuf,
    /// The folder holding the data (the torrent's files or its root folder are inside it).
    pub dir: PathBuf,
    /// Stop once this process has uploaded R times the torrent's size (e.g. 1.0 or 2.5);
    /// trackers are told `stopped`, progress is saved, exit status 0.
    #[arg(long, value_name = "R", value_parser = transfer::parse_ratio)]
    pub seed_ratio: Option<f64>,
    /// Stop after seeding this long (e.g. 90s, 30m, 1h30m).
    #[arg(long, value_name = "DURATION", value_parser = crate::units::parse_duration)]
    pub seed_time: Option<Duration>,
    /// Super-seed (BEP 16): reveal pieces one at a time per peer so each is uploaded about
    /// once — for an initial seeder with little upload bandwidth.
    #[arg(long)]
    pub super_seed: bool,
    #[command(flatten)]
    pub swarm: SwarmArgs,
}

/// Runs `bitswarm seed`.
pub fn run(args: &SeedArgs) -> Result<()> {
    let meta = load_torrent(&args.torrent)?;
    if !args.dir.is_dir() {
        bail!("{} is not a folder", args.dir.display());
    }
    let layout = transfer::layout(&meta, &|_| true)?;
    transfer::block_on(async {
        let running =
            transfer::start_with(&meta, layout, &args.dir, &args.swarm, true, args.super_seed)
                .await?;
        let policy = SeedPolicy {
            ratio: args.seed_ratio,
            time: args.seed_time,
        };
        transfer::seed_until(&running, &policy).await?;
        let stats = running.handle.stats();
        running.shutdown().await;
        transfer::print_summary(&stats);
        Ok(())
    })
}
