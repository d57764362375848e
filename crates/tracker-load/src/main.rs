//! `bitswarm-tracker-load`: a UDP tracker load generator for benchmarks. It connects once per
//! socket, then keeps a fixed number of announces in flight per socket over a fixed set of
//! info-hashes, for a bounded time and request count, against a loopback address only, and
//! prints responses per second and latency percentiles.
//!
//! One thread drives every socket with `sendmmsg`/`recvmmsg`, so the generator costs about as
//! many system calls per request as a batching server and can be pinned to one core.

mod run;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// Load generator for UDP trackers (BEP 15), loopback only.
#[derive(Debug, Parser)]
#[command(name = "bitswarm-tracker-load", version, about)]
struct Args {
    /// The tracker's UDP address (must be a loopback address).
    #[arg(long, default_value = "127.0.0.1:6969")]
    target: SocketAddr,
    /// Seconds to measure, after the warm-up (1 to 3600).
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 1)]
    warmup_s: u64,
    /// UDP sockets (each its own source port, so `SO_REUSEPORT` servers spread them).
    #[arg(long, default_value_t = 16)]
    sockets: usize,
    /// Requests in flight per socket (1 to 1024).
    #[arg(long, default_value_t = 32)]
    in_flight: usize,
    /// Info-hashes announced over (the fixed set).
    #[arg(long, default_value_t = 1000)]
    torrents: usize,
    /// Distinct peers (ports) per info-hash.
    #[arg(long, default_value_t = 100)]
    peers: u16,
    /// Percent of announces that come from seeders.
    #[arg(long, default_value_t = 20)]
    seeder_percent: u8,
    /// Peers asked for per announce.
    #[arg(long, default_value_t = 50)]
    numwant: i32,
    /// Stop after this many responses, whatever the time.
    #[arg(long, default_value_t = 1_000_000_000)]
    requests_max: u64,
    /// Seed of the info-hashes and the request mix.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the info-hashes (40 hex digits, one per line) here, e.g. for a whitelist, then exit.
    #[arg(long)]
    write_hashes: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let plan = match plan(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = &args.write_hashes {
        let text: String = plan.hashes.iter().map(|h| h.to_hex() + "\n").collect();
        return match std::fs::write(path, text) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: writing {}: {e}", path.display());
                ExitCode::FAILURE
            }
        };
    }
    match run::run(&plan) {
        Ok(report) => {
            report.print(&plan);
            if report.responses == 0 {
                eprintln!("error: no response from {}", plan.target);
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Everything a run needs, checked.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) target: SocketAddr,
    pub(crate) duration: Duration,
    pub(crate) warmup: Duration,
    pub(crate) sockets: usize,
    pub(crate) in_flight: usize,
    pub(crate) hashes: Vec<bitswarm_tracker::InfoHash>,
    pub(crate) peers: u16,
    pub(crate) seeder_percent: u8,
    pub(crate) numwant: i32,
    pub(crate) requests_max: u64,
    pub(crate) seed: u64,
}

fn plan(a: &Args) -> Result<Plan, String> {
    if !a.target.ip().is_loopback() {
        return Err(format!(
            "{} is not a loopback address; this generator only loads local servers",
            a.target
        ));
    }
    let checks = [
        (
            !(1..=3600).contains(&a.duration_s),
            "--duration-s must be 1 to 3600",
        ),
        (a.warmup_s > 60, "--warmup-s must be at most 60"),
        (
            !(1..=1024).contains(&a.sockets),
            "--sockets must be 1 to 1024",
        ),
        (
            !(1..=1024).contains(&a.in_flight),
            "--in-flight must be 1 to 1024",
        ),
        (
            !(1..=10_000_000).contains(&a.torrents),
            "--torrents must be 1 to 10000000",
        ),
        (a.peers == 0, "--peers must be at least 1"),
        (a.seeder_percent > 100, "--seeder-percent must be 0 to 100"),
    ];
    if let Some((_, why)) = checks.iter().find(|(bad, _)| *bad) {
        return Err((*why).to_owned());
    }
    let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(a.seed);
    let hashes = (0..a.torrents)
        .map(|_| bitswarm_tracker::InfoHash::from_bytes(rand::Rng::gen(&mut rng)))
        .collect();
    Ok(Plan {
        target: a.target,
        duration: Duration::from_secs(a.duration_s),
        warmup: Duration::from_secs(a.warmup_s),
        sockets: a.sockets,
        in_flight: a.in_flight,
        hashes,
        peers: a.peers,
        seeder_percent: a.seeder_percent,
        numwant: a.numwant,
        requests_max: a.requests_max,
        seed: a.seed,
    })
}
