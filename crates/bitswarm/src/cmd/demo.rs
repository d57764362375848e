//! `bitswarm demo`: the README's first command. With nothing of the user's own it starts a
//! tracker on loopback, makes sample data, turns it into a torrent, shows what the torrent
//! holds, then runs a seeder and a leecher that find each other through the tracker, and checks
//! that every byte arrived.

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use rand::RngCore;

use super::{create, info, transfer};
use crate::progress::TransferProgress;
use bitswarm_runtime::{AddTorrent, Resume, Session, SessionConfig};

/// Arguments of `bitswarm demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the sample data and torrent in this folder (default: a temporary folder, removed at the end).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Size of the sample data in MiB.
    #[arg(long, default_value_t = 64)]
    pub size_mib: u64,
}

/// Runs `bitswarm demo`.
pub fn run(args: &DemoArgs) -> Result<()> {
    let (work, temporary) = match &args.dir {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("bitswarm-demo-{}", std::process::id())),
            true,
        ),
    };
    let result = demo_in(&work, args.size_mib);
    if temporary {
        let _ = fs::remove_dir_all(&work);
    }
    result
}

fn demo_in(work: &Path, size_mib: u64) -> Result<()> {
    let mut config = bitswarm_tracker_server::Config::default();
    config.udp.addrs = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
    config.http.addrs = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
    let tracker =
        bitswarm_tracker_server::Server::start(&config).context("cannot start the demo tracker")?;
    let udp = tracker
        .udp_addrs()
        .first()
        .copied()
        .context("the tracker has no UDP socket")?;
    let http = tracker
        .http_addrs()
        .first()
        .copied()
        .context("the tracker has no HTTP socket")?;
    println!("== a tracker on udp://{udp} and http://{http}/announce");
    let result = demo_with_tracker(
        work,
        size_mib,
        &[format!("udp://{udp}"), format!("http://{http}/announce")],
    );
    tracker.shutdown();
    result
}

fn demo_with_tracker(work: &Path, size_mib: u64, trackers: &[String]) -> Result<()> {
    let data = work.join("sample");
    println!(
        "== making {size_mib} MiB of sample data in {}",
        data.display()
    );
    make_sample(&data, size_mib << 20)?;
    let torrent = work.join("sample.torrent");
    println!(
        "\n== bitswarm create {} -o {}",
        data.display(),
        torrent.display()
    );
    create::run(&create::CreateArgs {
        path: data,
        output: Some(torrent.clone()),
        trackers: trackers.to_vec(),
        web_seeds: Vec::new(),
        piece_size: "auto".into(),
        private: false,
        comment: Some("made by bitswarm demo".into()),
        no_date: false,
        name: None,
        source: None,
        threads: 0,
        force: true,
    })?;
    println!("\n== bitswarm info {}", torrent.display());
    info::run(&info::InfoArgs {
        source: torrent.to_string_lossy().into_owned(),
        json: false,
    })?;
    let download = work.join("download");
    println!(
        "\n== a seeder and a leecher on 127.0.0.1 meet through the tracker; downloading into {}",
        download.display()
    );
    transfer::block_on(swarm(&torrent, work, &download))?;
    compare_trees(&work.join("sample"), &download.join("sample"))?;
    println!("every byte arrived and matches the original");
    Ok(())
}

/// Seeds the sample from `work` and downloads it into `download`, both sessions in this process.
async fn swarm(torrent: &Path, work: &Path, download: &Path) -> Result<()> {
    let meta = info::load_torrent(torrent)?;
    let info_hash = *meta.info_hash.as_bytes();
    let seeder = Session::start(SessionConfig::localhost()).context("cannot start the seeder")?;
    let seed_handle = seeder
        .add_torrent(AddTorrent {
            info_hash,
            layout: transfer::layout(&meta, &|_| true)?,
            save_path: work.to_path_buf(),
            resume: Resume::Check,
            peers: Vec::new(),
        })
        .await?;
    transfer::wait_checked(&seed_handle, &meta.info.name).await?;
    println!("seeder listening on {}", seeder.listen_addr());
    let seed_announce = transfer::start_announcing(&meta, &seeder, &seed_handle);
    let leecher = Session::start(SessionConfig::localhost()).context("cannot start the leecher")?;
    let handle = leecher
        .add_torrent(AddTorrent {
            info_hash,
            layout: transfer::layout(&meta, &|_| true)?,
            save_path: download.to_path_buf(),
            resume: Resume::Fresh,
            peers: Vec::new(),
        })
        .await?;
    let leech_announce = transfer::start_announcing(&meta, &leecher, &handle);
    let progress = TransferProgress::new("leecher", meta.info.total_length());
    let mut stats = handle.watch_stats();
    let started = std::time::Instant::now();
    let finished = tokio::time::timeout(std::time::Duration::from_secs(120), async {
        loop {
            let now = stats.borrow_and_update().clone();
            progress.update(&now);
            if now.finished || stats.changed().await.is_err() {
                return now;
            }
        }
    })
    .await;
    progress.finish();
    let last = handle.stats();
    for announce in [leech_announce, seed_announce].into_iter().flatten() {
        announce.stop().await;
    }
    leecher.shutdown().await;
    seeder.shutdown().await;
    let Ok(done) = finished else {
        anyhow::bail!("the demo transfer did not finish within 2 minutes");
    };
    anyhow::ensure!(done.finished, "the leecher stopped before finishing");
    println!(
        "leecher finished in {:.2} s: {} received, {} wasted",
        started.elapsed().as_secs_f64(),
        crate::units::bytes(last.downloaded),
        crate::units::bytes(last.wasted)
    );
    Ok(())
}

/// Fails unless every file under `a` has an identical twin under `b`.
fn compare_trees(a: &Path, b: &Path) -> Result<()> {
    for entry in fs::read_dir(a).with_context(|| format!("cannot list {}", a.display()))? {
        let entry = entry?;
        let (pa, pb) = (entry.path(), b.join(entry.file_name()));
        if entry.file_type()?.is_dir() {
            compare_trees(&pa, &pb)?;
        } else {
            let same = fs::read(&pa)?
                == fs::read(&pb).with_context(|| format!("{} is missing", pb.display()))?;
            anyhow::ensure!(same, "{} differs from the original", pb.display());
        }
    }
    Ok(())
}

/// Writes a small folder tree of random files whose sizes do not line up with pieces.
fn make_sample(dir: &Path, total: u64) -> Result<()> {
    let files = [
        ("README.txt", 1_337),
        ("video/part-1.bin", total / 2 + 12_345),
        ("video/part-2.bin", total / 3),
        ("extras/empty.dat", 0),
        ("extras/notes.bin", total / 6 - 13_682),
    ];
    let mut rng = rand::thread_rng();
    let mut buf = vec![0u8; 1 << 20];
    for (name, len) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let mut file =
            fs::File::create(&path).with_context(|| format!("cannot write {}", path.display()))?;
        let mut left: u64 = len;
        while left > 0 {
            let n = usize::try_from(left.min(buf.len() as u64))?;
            rng.fill_bytes(&mut buf[..n]);
            file.write_all(&buf[..n])?;
            left -= n as u64;
        }
    }
    Ok(())
}
