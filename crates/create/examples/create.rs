//! Drives the crate from the command line for benchmarks and manual checks, standing in for
//! `bitswarm create` where the CLI is not built:
//! `cargo run --release -p bitswarm-create --example create -- PATH -o OUT [--piece-size BYTES]
//! [--threads N] [--no-date]`, the same flags as `bitswarm create`. Never writes a creation
//! date (`--no-date` is accepted for that compatibility). Prints the info-hash, piece geometry
//! and throughput to stderr.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use bitswarm_create::{create_torrent, CreateOptions, Progress};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("create: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let usage = "usage: create PATH -o OUT [--piece-size BYTES] [--threads N] [--no-date]";
    let mut args = std::env::args().skip(1);
    let (mut root, mut out) = (None::<PathBuf>, None::<PathBuf>);
    let mut opts = CreateOptions {
        created_by: Some(format!("bitswarm-create {}", env!("CARGO_PKG_VERSION"))),
        ..CreateOptions::default()
    };
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{arg} needs a value; {usage}"))
        };
        match arg.as_str() {
            "-o" => out = Some(value()?.into()),
            "--no-date" => {}
            "--piece-size" => {
                opts.piece_length = Some(value()?.parse().map_err(|e| format!("{e}"))?);
            }
            "--threads" => opts.threads = value()?.parse().map_err(|e| format!("{e}"))?,
            _ if root.is_none() && !arg.starts_with('-') => root = Some(arg.into()),
            _ => return Err(usage.to_owned()),
        }
    }
    let (Some(root), Some(out)) = (root, out) else {
        return Err(usage.to_owned());
    };
    let cancel = AtomicBool::new(false);
    let start = Instant::now();
    let t = create_torrent(&root, &opts, &|_: Progress| {}, &cancel)
        .map_err(|e| format!("{}: {e}", root.display()))?;
    let secs = start.elapsed().as_secs_f64();
    std::fs::write(&out, &t.bytes).map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!(
        "info_hash {} piece_length {} pieces {} bytes {} seconds {secs:.3} MiB/s {:.0}",
        t.info_hash_hex(),
        t.piece_length,
        t.piece_count,
        t.total_length,
        mib(t.total_length) / secs
    );
    Ok(())
}

/// Bytes to MiB, for printing.
#[allow(clippy::cast_precision_loss)] // printed with no decimals
fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}
