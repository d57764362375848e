//! `bitswarm tracker`: runs a BitTorrent tracker (HTTP and UDP) until SIGINT or SIGTERM;
//! SIGHUP reloads the access list. Prints one `listening <proto> <addr>` line per bound
//! socket on stdout, so scripts and tests can use port 0; logs go to stderr.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use bitswarm_tracker_server::config::AccessModeName;
use bitswarm_tracker_server::{Config, Server};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Arguments of `bitswarm tracker`.
#[derive(Debug, clap::Args)]
pub struct TrackerArgs {
    /// Serve HTTP announce/scrape on ADDR (repeatable; IPv4 or IPv6; port 0 picks one).
    #[arg(long = "http", value_name = "ADDR")]
    http: Vec<SocketAddr>,
    /// Serve UDP announce/scrape (BEP 15) on ADDR (repeatable; IPv4 or IPv6; port 0 picks one).
    #[arg(long = "udp", value_name = "ADDR")]
    udp: Vec<SocketAddr>,
    /// TOML configuration file for everything else (limits, intervals, access list, ...).
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Serve Prometheus metrics on ADDR, path /metrics.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// UDP worker threads per address (each with its own `SO_REUSEPORT` socket).
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Serve only the info-hashes listed in FILE (40 hex digits per line); reloaded on SIGHUP.
    #[arg(long, value_name = "FILE", conflicts_with = "deny_list")]
    allow_list: Option<PathBuf>,
    /// Serve every info-hash except those listed in FILE; reloaded on SIGHUP.
    #[arg(long, value_name = "FILE")]
    deny_list: Option<PathBuf>,
    /// Also write the `listening` lines to FILE once every socket is bound.
    #[arg(long, value_name = "FILE")]
    addr_file: Option<PathBuf>,
}

/// Runs the tracker until SIGINT or SIGTERM.
pub fn run(args: &TrackerArgs) -> anyhow::Result<()> {
    init_logs();
    let config = config(args)?;
    // Registered before the server starts, so no signal in between is lost.
    let mut signals =
        Signals::new([SIGHUP, SIGINT, SIGTERM]).context("installing signal handlers")?;
    let server = Server::start(&config).context("starting the tracker")?;
    let mut lines = String::new();
    for a in server.udp_addrs() {
        let _ = writeln!(lines, "listening udp {a}");
    }
    for a in server.http_addrs() {
        let _ = writeln!(lines, "listening http {a}");
    }
    if let Some(a) = server.metrics_addr() {
        let _ = writeln!(lines, "listening metrics {a}");
    }
    print!("{lines}");
    std::io::stdout().flush().context("writing to stdout")?;
    if let Some(path) = &args.addr_file {
        std::fs::write(path, &lines).with_context(|| format!("writing {}", path.display()))?;
    }
    for signal in signals.forever() {
        if signal == SIGHUP {
            // A bad file is logged by the server and the old list stays; keep running.
            let _ = server.reload_access();
        } else {
            break;
        }
    }
    server.shutdown();
    println!("stopped");
    Ok(())
}

fn config(args: &TrackerArgs) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    config.udp.addrs.extend(&args.udp);
    config.http.addrs.extend(&args.http);
    if config.udp.addrs.is_empty() && config.http.addrs.is_empty() {
        let any: SocketAddr = ([0, 0, 0, 0], 6969).into();
        config.udp.addrs.push(any);
        config.http.addrs.push(any);
    }
    if let Some(m) = args.metrics {
        config.metrics.addr = Some(m);
    }
    if let Some(w) = args.workers {
        config.udp.workers = w;
    }
    match (&args.allow_list, &args.deny_list) {
        (Some(f), None) => {
            config.access.mode = AccessModeName::Allow;
            config.access.file = Some(f.clone());
        }
        (None, Some(f)) => {
            config.access.mode = AccessModeName::Deny;
            config.access.file = Some(f.clone());
        }
        (Some(_), Some(_)) => bail!("--allow-list and --deny-list exclude each other"),
        (None, None) => {}
    }
    Ok(config)
}

fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
