//! `bitswarm demo`: the README's first command. With nothing of the user's own it makes sample
//! data, turns it into a torrent and shows what the torrent holds. Later stages of the project
//! grow this into a live swarm on loopback.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use rand::RngCore;

use super::{create, info};

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
        trackers: vec![
            "http://127.0.0.1:6969/announce".into(),
            "udp://127.0.0.1:6969".into(),
        ],
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
    })
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
