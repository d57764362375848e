//! Loopback throughput benchmark: one seeder process sends a single-file torrent to one leecher
//! process through two bitswarm sessions, and each prints its CPU seconds and memory.
//!
//! ```text
//! cargo run --release -p bitswarm-runtime --example transfer -- [SIZE_MIB=1024] [PIECE_KIB=256]
//!     [--dir DIR] [--threads N]
//! ```
//! The parent generates `DIR/source.bin` (random, kept between runs) and its piece hashes,
//! flushes dirty pages, warms the page cache, then runs `transfer seed ...` and
//! `transfer leech ...` as two child processes and prints both lines and the totals. `--threads`
//! sets tokio worker threads per process (0: current-thread runtime). Compare with
//! `python3 /work/shared/bench/transfer-ceiling.py SIZE_MIB PIECE_KIB`, the machine's ceiling.

// Byte counts and times printed as floats are far below 2^52.
#![allow(clippy::cast_precision_loss)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bitswarm_runtime::{
    AddTorrent, Bitfield, Event, FileSpec, Resume, Session, SessionConfig, TorrentEvent,
    TorrentLayout,
};
use rand::{RngCore, SeedableRng};
use sha1::{Digest, Sha1};

type Error = Box<dyn std::error::Error>;

const SOURCE: &str = "source.bin";

#[derive(Debug, Clone)]
struct Args {
    role: Option<String>,
    size_mib: u64,
    piece_kib: u32,
    dir: PathBuf,
    threads: usize,
    seed_addr: Option<SocketAddr>,
    /// `name=value` overrides of the session configuration, passed to both children.
    sets: Vec<String>,
}

fn main() -> Result<(), Error> {
    let args = parse_args()?;
    match args.role.as_deref() {
        None => parent(&args),
        Some(role) => {
            let runtime = if args.threads == 0 {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
            } else {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(args.threads)
                    .enable_all()
                    .build()?
            };
            match role {
                "seed" => runtime.block_on(seed(&args)),
                "leech" => runtime.block_on(leech(&args)),
                other => Err(format!("unknown role {other}").into()),
            }
        }
    }
}

fn parse_args() -> Result<Args, Error> {
    let mut args = Args {
        role: None,
        size_mib: 1024,
        piece_kib: 256,
        dir: std::env::temp_dir().join("bitswarm-transfer-bench"),
        threads: 2,
        seed_addr: None,
        sets: Vec::new(),
    };
    let mut positional = 0;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "seed" | "leech" => args.role = Some(arg.clone()),
            "--dir" => args.dir = PathBuf::from(value()?),
            "--threads" => args.threads = value()?.parse()?,
            "--seed-addr" => args.seed_addr = Some(value()?.parse()?),
            "--set" => args.sets.push(value()?),
            _ if positional == 0 => (args.size_mib, positional) = (arg.parse()?, 1),
            _ if positional == 1 => (args.piece_kib, positional) = (arg.parse()?, 2),
            _ => return Err(format!("unexpected argument {arg}").into()),
        }
    }
    Ok(args)
}

/// Generates the source once, then runs a seeder and a leecher process and reports.
fn parent(args: &Args) -> Result<(), Error> {
    std::fs::create_dir_all(&args.dir)?;
    let size = args.size_mib << 20;
    let source = args.dir.join(SOURCE);
    if std::fs::metadata(&source).map(|m| m.len()).ok() != Some(size) {
        eprintln!("generating {} MiB of random data", args.size_mib);
        generate(&source, size)?;
    }
    hashes(args)?; // computed and cached here, so neither child pays for it
    Command::new("sync").status()?;
    std::io::copy(&mut std::fs::File::open(&source)?, &mut std::io::sink())?; // warm the cache
    let exe = std::env::current_exe()?;
    let common = |role: &str| {
        let mut c = Command::new(&exe);
        c.arg(role)
            .arg(args.size_mib.to_string())
            .arg(args.piece_kib.to_string())
            .arg("--dir")
            .arg(&args.dir)
            .arg("--threads")
            .arg(args.threads.to_string());
        for set in &args.sets {
            c.arg("--set").arg(set);
        }
        c
    };
    let mut seeder = common("seed")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut seed_out = BufReader::new(seeder.stdout.take().ok_or("no stdout")?);
    let mut line = String::new();
    seed_out.read_line(&mut line)?;
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .ok_or("seeder did not start")?;
    let leech = common("leech")
        .arg("--seed-addr")
        .arg(addr)
        .stderr(Stdio::inherit())
        .output()?;
    drop(seeder.stdin.take()); // tells the seeder to report and exit
    let mut seed_report = String::new();
    seed_out.read_to_string(&mut seed_report)?;
    seeder.wait()?;
    let leech_report = String::from_utf8_lossy(&leech.stdout);
    print!("{leech_report}{seed_report}");
    let cpu: f64 = [leech_report.as_ref(), seed_report.as_str()]
        .iter()
        .filter_map(|r| field(r, "cpu_s="))
        .sum();
    let gib = size as f64 / f64::from(1u32 << 30);
    println!(
        "total: {:.2} cpu-s/GiB (seeder + leecher), {} MiB in {} KiB pieces, {} tokio threads per process",
        cpu / gib,
        args.size_mib,
        args.piece_kib,
        args.threads
    );
    let _ = std::fs::remove_dir_all(args.dir.join("leech"));
    if leech.status.success() {
        Ok(())
    } else {
        Err("leecher failed".into())
    }
}

/// The number after `key` in a report line.
fn field(report: &str, key: &str) -> Option<f64> {
    let start = report.find(key)? + key.len();
    report[start..].split_whitespace().next()?.parse().ok()
}

/// The session configuration with `--set` overrides applied.
fn config(args: &Args) -> Result<SessionConfig, Error> {
    let mut c = SessionConfig::localhost();
    for set in &args.sets {
        let (name, value) = set.split_once('=').ok_or("--set wants name=value")?;
        let n: usize = value.parse()?;
        match name {
            "disk_threads" => c.disk_threads = n,
            "disk_queue" => c.disk_job_queue_len_max = n,
            "piece_buffer_kib" => c.piece_buffer_bytes_max = n << 10,
            "read_buffer_kib" => c.read_buffer_bytes = n << 10,
            "coalesce_kib" => c.disk_read_coalesce_bytes_max = u32::try_from(n << 10)?,
            "send_buffer_kib" => c.peer_send_buffer_max = n << 10,
            "socket_buffer_kib" => c.socket_buffer_bytes = Some(u32::try_from(n << 10)?),
            "upload_in_flight" => c.torrent.upload_in_flight_max = n,
            "request_queue_max" => c.torrent.request_queue_max = n,
            "peer_input_queue" => c.peer_input_queue_len_max = n,
            other => return Err(format!("unknown setting {other}").into()),
        }
    }
    Ok(c)
}

async fn seed(args: &Args) -> Result<(), Error> {
    let session = Session::start(config(args)?)?;
    let layout = layout(args)?;
    let full = Bitfield::full(layout.piece_count());
    let handle = session
        .add_torrent(add(
            args,
            layout,
            args.dir.clone(),
            Resume::Trusted(full),
            Vec::new(),
        ))
        .await?;
    println!("listening {}", session.listen_addr());
    std::io::stdout().flush()?;
    let memory = tokio::spawn(sample_anon_rss());
    tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new())).await??;
    tokio::time::sleep(2 * bitswarm_runtime::STATS_INTERVAL).await;
    let stats = handle.stats();
    memory.abort();
    let peak_anon = peak_anon_kib();
    session.shutdown().await;
    println!(
        "seed:  uploaded {} MiB, {}",
        stats.uploaded >> 20,
        usage(peak_anon)
    );
    Ok(())
}

async fn leech(args: &Args) -> Result<(), Error> {
    let peer = args.seed_addr.ok_or("--seed-addr is required")?;
    let session = Session::start(config(args)?)?;
    let layout = layout(args)?;
    let out = args.dir.join("leech");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;
    let memory = tokio::spawn(sample_anon_rss());
    let handle = session
        .add_torrent(add(args, layout, out, Resume::Fresh, Vec::new()))
        .await?;
    let mut events = handle.events();
    let start = Instant::now();
    handle.add_peers([peer]);
    loop {
        if let TorrentEvent::Engine(Event::PieceVerified(_)) = events.recv().await? {
            break;
        }
    }
    let first_piece = start.elapsed();
    handle.wait_finished().await?;
    let elapsed = start.elapsed();
    memory.abort();
    let peak_anon = peak_anon_kib();
    let s = handle.stats();
    session.shutdown().await;
    let mib = (s.total_length >> 20) as f64;
    println!(
        "leech: {:.0} MiB/s ({} MiB in {:.2} s), first piece verified {:.1} ms after add_peers, hash failures {}, {}",
        mib / elapsed.as_secs_f64(),
        s.total_length >> 20,
        elapsed.as_secs_f64(),
        first_piece.as_secs_f64() * 1e3,
        s.hash_failures,
        usage(peak_anon)
    );
    Ok(())
}

fn add(
    args: &Args,
    layout: TorrentLayout,
    save: PathBuf,
    resume: Resume,
    peers: Vec<SocketAddr>,
) -> AddTorrent {
    let mut info_hash = [0u8; 20];
    info_hash[..8].copy_from_slice(&args.size_mib.to_be_bytes());
    info_hash[8..12].copy_from_slice(&args.piece_kib.to_be_bytes());
    AddTorrent {
        info_hash,
        layout,
        save_path: save,
        resume,
        peers,
        metadata: None,
        private: false,
        rate_limits: bitswarm_runtime::RateLimits::UNLIMITED,
    }
}

fn layout(args: &Args) -> Result<TorrentLayout, Error> {
    let file = FileSpec {
        path: PathBuf::from(SOURCE),
        length: args.size_mib << 20,
        pad: false,
        wanted: true,
    };
    Ok(TorrentLayout::new(
        args.piece_kib << 10,
        hashes(args)?,
        vec![file],
    )?)
}

/// The source's piece hashes, from a cache file next to it when present.
fn hashes(args: &Args) -> Result<Vec<[u8; 20]>, Error> {
    let cache = args
        .dir
        .join(format!("hashes-{}-{}.bin", args.size_mib, args.piece_kib));
    let bytes = if let Ok(bytes) = std::fs::read(&cache) {
        bytes
    } else {
        let mut file = std::fs::File::open(args.dir.join(SOURCE))?;
        let mut piece = vec![0u8; (args.piece_kib as usize) << 10];
        let mut out = Vec::new();
        loop {
            let n = read_full(&mut file, &mut piece)?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(&Sha1::digest(&piece[..n]));
        }
        std::fs::write(&cache, &out)?;
        out
    };
    Ok(bytes
        .chunks_exact(20)
        .map(|c| c.try_into().unwrap_or([0; 20]))
        .collect())
}

fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn generate(path: &Path, size: u64) -> Result<(), Error> {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(0x5eed);
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut chunk = vec![0u8; 16 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        rng.fill_bytes(&mut chunk[..n]);
        file.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    file.flush()?;
    Ok(())
}

/// CPU seconds and memory of this process so far.
fn usage(peak_anon_kib: u64) -> String {
    let Ok(u) = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF) else {
        return "usage unavailable".into();
    };
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    let (user, sys) = (secs(u.user_time()), secs(u.system_time()));
    format!(
        "cpu_s= {:.2} (user {user:.2}, sys {sys:.2}), peak RSS {} MiB, peak anonymous RSS {} MiB",
        user + sys,
        u.max_rss() >> 10,
        peak_anon_kib >> 10
    )
}

/// Samples `RssAnon` every 20 ms into [`PEAK_ANON_KIB`] until aborted.
async fn sample_anon_rss() {
    loop {
        PEAK_ANON_KIB.fetch_max(anon_rss_kib(), std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn peak_anon_kib() -> u64 {
    PEAK_ANON_KIB
        .load(std::sync::atomic::Ordering::Relaxed)
        .max(anon_rss_kib())
}

static PEAK_ANON_KIB: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn anon_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("RssAnon:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
