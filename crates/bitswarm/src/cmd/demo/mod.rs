//! `bitswarm demo`: the README's first command. With nothing of the user's own it shows a
//! whole swarm on loopback, in this one process: a tracker, a seeder of generated data and
//! several leechers with different upload limits, all finding each other through the tracker.
//! A live view shows every peer; at the end a table says who sent how much to whom and when
//! each leecher finished, and every copy is compared with the original byte for byte.
//!
//! Layout: `sample.rs` makes and compares the data, `swarm.rs` runs the peers, `ledger.rs`
//! counts who sent what to whom and prints the tables.

mod ledger;
mod sample;
mod swarm;

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use bitswarm_create::{create_torrent, CreateError, CreateOptions};
use bitswarm_metainfo::Metainfo;
use clap::Args;

use crate::progress::ByteProgress;
use crate::units;

/// Arguments of `bitswarm demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the sample data, the torrent and every peer's copy in this folder (default: a
    /// temporary folder, removed at the end, also on Ctrl-C).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Size of the sample data in MiB.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub size_mib: u64,
    /// Number of leechers.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=20))]
    pub leechers: u64,
    /// The leechers' upload limits in bytes per second, taken in turn (`0` for none).
    #[arg(
        long,
        value_name = "RATE,...",
        value_delimiter = ',',
        default_value = "4M,2M,1M,512K,256K",
        value_parser = units::parse_size
    )]
    pub leecher_limits: Vec<u64>,
    /// The seeder's upload limit in bytes per second (`4M`, `512K`; `0` for none). Kept low
    /// so that leechers must trade pieces among themselves.
    #[arg(long, default_value = "4M", value_name = "RATE", value_parser = units::parse_size)]
    pub seed_limit: u64,
    /// No upload limits at all (the seeder's included): as fast as this machine goes.
    #[arg(long)]
    pub no_limits: bool,
}

/// Marks a folder the demo made, so that a later `--dir` run may replace what is in it.
const MARKER: &str = ".bitswarm-demo";
/// Name of the sample data (a folder) and of the torrent.
const SAMPLE: &str = "sample";

/// Runs `bitswarm demo`.
pub fn run(args: &DemoArgs) -> Result<()> {
    let cancel = watch_signals()?;
    let (work, temporary) = match &args.dir {
        Some(dir) => (prepare_kept_dir(dir)?, false),
        None => (make_temp_dir()?, true),
    };
    if temporary {
        println!(
            "== working in {} (removed at the end; --dir DIR keeps everything)",
            work.display()
        );
    } else {
        println!("== working in {}", work.display());
    }
    let result = demo_in(&work, args, &cancel);
    if temporary {
        match fs::remove_dir_all(&work) {
            Ok(()) => println!("== removed {}", work.display()),
            Err(e) => eprintln!("warning: cannot remove {}: {e}", work.display()),
        }
    }
    result
}

/// Installs the Ctrl-C and SIGTERM handlers: the first sets the flag (the demo stops and
/// cleans up), a second Ctrl-C ends the process at once.
fn watch_signals() -> Result<Arc<AtomicBool>> {
    let cancel = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register_conditional_shutdown(
        signal_hook::consts::SIGINT,
        130,
        Arc::clone(&cancel),
    )
    .context("cannot install the Ctrl-C handler")?;
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&cancel))
            .context("cannot install a signal handler")?;
    }
    Ok(cancel)
}

/// Fails once Ctrl-C or SIGTERM arrived.
fn check_cancel(cancel: &AtomicBool) -> Result<()> {
    if cancel.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    Ok(())
}

fn make_temp_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("bitswarm-demo-{}", std::process::id()));
    // A leftover of an earlier process with the same id (killed before it cleaned up).
    if dir.join(MARKER).exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    fs::write(dir.join(MARKER), b"")?;
    Ok(dir)
}

/// Creates `dir`, or empties it of an earlier demo's files; refuses a folder with other things.
fn prepare_kept_dir(dir: &Path) -> Result<PathBuf> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut entries = fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .collect::<std::io::Result<Vec<_>>>()?;
    if !entries.is_empty() {
        if !dir.join(MARKER).exists() {
            bail!(
                "{} is not empty and not an earlier demo's folder; give an empty or new folder",
                dir.display()
            );
        }
        for entry in entries.drain(..) {
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            }
            .with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    fs::write(dir.join(MARKER), b"")?;
    Ok(dir.to_path_buf())
}

fn demo_in(work: &Path, args: &DemoArgs, cancel: &Arc<AtomicBool>) -> Result<()> {
    let mut config = bitswarm_tracker_server::Config::default();
    config.udp.addrs = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
    config.http.addrs = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
    let tracker =
        bitswarm_tracker_server::Server::start(&config).context("cannot start the demo tracker")?;
    let udp = tracker.udp_addrs().first().copied();
    let http = tracker.http_addrs().first().copied();
    let (Some(udp), Some(http)) = (udp, http) else {
        tracker.shutdown();
        bail!("the demo tracker has no UDP or no HTTP socket");
    };
    println!("== a tracker on udp://{udp} and http://{http}/announce");
    let tiers = vec![
        vec![format!("udp://{udp}")],
        vec![format!("http://{http}/announce")],
    ];
    let result = prepare_and_run(work, args, tiers, cancel);
    tracker.shutdown();
    result
}

fn prepare_and_run(
    work: &Path,
    args: &DemoArgs,
    tiers: Vec<Vec<String>>,
    cancel: &Arc<AtomicBool>,
) -> Result<()> {
    let data = work.join(SAMPLE);
    let total = args.size_mib << 20;
    println!(
        "== making {} of random sample data in {}",
        units::bytes(total),
        data.display()
    );
    sample::make(&data, total, cancel)?;
    let meta = make_torrent(
        &data,
        &work.join(format!("{SAMPLE}.torrent")),
        tiers,
        cancel,
    )?;
    let plan = swarm::Plan::new(args);
    println!(
        "\n== 1 seeder and {} leechers on 127.0.0.1 meet through the tracker",
        plan.leechers.len()
    );
    println!(
        "tit-for-tat: each peer unchokes the {} peers that send to it fastest, plus one at \
         random, re-chosen every {} s (normally 4 peers, every 10 s)",
        swarm::UNCHOKE_SLOTS,
        swarm::RECHOKE_INTERVAL.as_secs()
    );
    let mut outcome = None;
    crate::cmd::transfer::block_on(async {
        outcome = Some(swarm::run(&meta, work, &plan, cancel).await?);
        Ok(())
    })?;
    let outcome = outcome.context("the swarm ended without an outcome")?;
    println!();
    ledger::print_finish_times(&outcome);
    println!();
    ledger::print_table(&outcome);
    println!("\n== checking every leecher's copy against the original, byte for byte");
    let started = Instant::now();
    for peer in outcome.peers.iter().filter(|p| !p.is_seed) {
        sample::compare_trees(&data, &peer.save_path.join(SAMPLE), cancel)
            .with_context(|| format!("{}'s copy", peer.name))?;
    }
    println!(
        "verified: all {} copies of {} are identical to the original, every byte ({:.1} s)",
        plan.leechers.len(),
        units::bytes(total),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Makes the torrent of `data` with bitswarm-create, writes it to `path` and parses it back.
fn make_torrent(
    data: &Path,
    path: &Path,
    tiers: Vec<Vec<String>>,
    cancel: &Arc<AtomicBool>,
) -> Result<Metainfo> {
    println!("== hashing it into {}", path.display());
    let options = CreateOptions {
        trackers: tiers,
        comment: Some("made by bitswarm demo".into()),
        created_by: Some(format!("bitswarm {}", env!("CARGO_PKG_VERSION"))),
        ..CreateOptions::default()
    };
    let total = sample::tree_size(data)?;
    let progress = ByteProgress::new("hashing", total);
    let created = match create_torrent(data, &options, &|p| progress.set(p.bytes_hashed), cancel) {
        Ok(created) => created,
        Err(CreateError::Cancelled) => bail!("interrupted"),
        Err(e) => return Err(e).context("cannot create the demo torrent"),
    };
    progress.finish();
    fs::write(path, &created.bytes).with_context(|| format!("cannot write {}", path.display()))?;
    let meta = Metainfo::from_bytes(&created.bytes).context("the demo torrent does not parse")?;
    println!(
        "{}: {} files, {} in {} pieces of {}, info-hash {}",
        meta.info.name,
        meta.info.files.len(),
        units::bytes(created.total_length),
        created.piece_count,
        units::bytes(u64::from(created.piece_length)),
        meta.info_hash
    );
    Ok(meta)
}
