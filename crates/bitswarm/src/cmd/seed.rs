//! `bitswarm seed`: verify data already on disk against a torrent, then upload it to the
//! swarm until stopped.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use super::info::load_torrent;
use super::transfer::{self, SwarmArgs};

/// Arguments of `bitswarm seed`.
#[derive(Debug, Args)]
pub struct SeedArgs {
    /// The .torrent file.
    pub torrent: PathBuf,
    /// The folder holding the data (the torrent's files or its root folder are inside it).
    pub dir: PathBuf,
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
        let running = transfer::start(&meta, layout, &args.dir, &args.swarm, true).await?;
        transfer::run_until(&running, false).await?;
        let stats = running.handle.stats();
        running.shutdown().await;
        transfer::print_summary(&stats);
        Ok(())
    })
}
