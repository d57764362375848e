//! `bitswarm`: the command-line face of the bitswarm BitTorrent engine. The only crate that
//! prints; every subcommand lives in its own module under `cmd/`.

mod cmd;
mod dht;
mod magnet;
mod progress;
mod select;
mod units;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// bitswarm — a fast, trustworthy BitTorrent engine.
#[derive(Debug, Parser)]
#[command(name = "bitswarm", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Make a .torrent file from a file or folder.
    Create(cmd::create::CreateArgs),
    /// Show what a .torrent file or magnet link describes.
    Info(cmd::info::InfoArgs),
    /// Download a torrent's data from its swarm (and optionally keep seeding).
    Download(cmd::download::DownloadArgs),
    /// Upload data you already have to a torrent's swarm until stopped.
    Seed(cmd::seed::SeedArgs),
    /// Show bitswarm at work with nothing of your own: makes sample data, a torrent, and shows it.
    Demo(cmd::demo::DemoArgs),
    /// Run a BitTorrent tracker (HTTP and UDP) until Ctrl-C; SIGHUP reloads its access list.
    Tracker(cmd::tracker::TrackerArgs),
    /// Use the DHT directly: look peers up, announce, show the routing table, run a node.
    Dht(cmd::dht::DhtArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Create(args) => cmd::create::run(&args),
        Command::Info(args) => cmd::info::run(&args),
        Command::Download(args) => cmd::download::run(&args),
        Command::Seed(args) => cmd::seed::run(&args),
        Command::Demo(args) => cmd::demo::run(&args),
        Command::Tracker(args) => cmd::tracker::run(&args),
        Command::Dht(args) => cmd::dht::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
