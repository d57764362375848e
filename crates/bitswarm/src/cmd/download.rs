//! `bitswarm download`: fetch a torrent's data from its swarm, verify every piece, and
//! optionally keep seeding. Rerunning it resumes from the state database.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::info::load_torrent;
use super::transfer::{self, Ending, SwarmArgs};
use crate::select::FileSelection;

/// Arguments of `bitswarm download`.
#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// The .torrent file.
    pub torrent: PathBuf,
    /// The folder to download into.
    #[arg(short, long, default_value = ".")]
    pub output: PathBuf,
    /// Keep seeding after the download completes, until Ctrl-C.
    #[arg(long)]
    pub seed: bool,
    /// Download only these files: indices (0-based, as `bitswarm info --json` lists them),
    /// ranges like 2-5, or glob patterns like '*.iso'; comma-separated or repeated.
    #[arg(long = "files", value_name = "SPEC")]
    pub files: Vec<String>,
    #[command(flatten)]
    pub swarm: SwarmArgs,
}

/// Runs `bitswarm download`.
pub fn run(args: &DownloadArgs) -> Result<()> {
    let meta = load_torrent(&args.torrent)?;
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
    let layout = transfer::layout(&meta, &wanted)?;
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    transfer::block_on(async {
        let running = transfer::start(&meta, layout, &args.output, &args.swarm, false).await?;
        let complete_at_start = running.handle.stats().finished;
        let mut ending = transfer::run_until(&running, true).await?;
        if ending == Ending::Finished {
            println!("complete: {}", running.name);
            if !complete_at_start {
                running.announce_completed();
            }
            if args.seed {
                eprintln!("seeding {} until Ctrl-C", running.name);
                ending = transfer::run_until(&running, false).await?;
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
