//! `bitswarm create`: hash a file or folder into a .torrent, with progress, without ever leaving
//! a half-written output file behind (Ctrl-C included).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use bitswarm_create::{create_torrent, CreateError, CreateOptions, Progress};
use bitswarm_metainfo::Metainfo;
use clap::Args;

use crate::progress::ByteProgress;
use crate::units;

/// Arguments of `bitswarm create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The file or folder to share.
    pub path: PathBuf,
    /// Where to write the .torrent (default: NAME.torrent in the current folder).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// A tracker URL; repeat for more tiers, separate URLs of one tier with commas.
    #[arg(short = 't', long = "tracker", value_name = "URL[,URL...]")]
    pub trackers: Vec<String>,
    /// A web seed URL (BEP 19); repeatable.
    #[arg(short = 'w', long = "web-seed", value_name = "URL")]
    pub web_seeds: Vec<String>,
    /// Piece size: `auto`, or a power of two from 16K to 256M (e.g. 256K, 4M).
    #[arg(short = 'p', long, default_value = "auto")]
    pub piece_size: String,
    /// Mark the torrent private (BEP 27): peers only from its trackers.
    #[arg(long)]
    pub private: bool,
    /// A comment stored in the torrent.
    #[arg(short, long)]
    pub comment: Option<String>,
    /// Leave out the creation date, so the same input always gives the same file.
    #[arg(long)]
    pub no_date: bool,
    /// The torrent's name (default: the file or folder name).
    #[arg(short, long)]
    pub name: Option<String>,
    /// A `source` tag in the info dictionary (changes the info-hash; used by private trackers).
    #[arg(long)]
    pub source: Option<String>,
    /// Hashing threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Overwrite the output file if it exists.
    #[arg(short, long)]
    pub force: bool,
}

/// Runs `bitswarm create`.
pub fn run(args: &CreateArgs) -> Result<()> {
    let options = options(args)?;
    let output = output_path(args)?;
    if output.exists() && !args.force {
        bail!(
            "{} already exists; pass --force to overwrite it or -o to choose another name",
            output.display()
        );
    }
    let cancel = Arc::new(AtomicBool::new(false));
    // A second Ctrl-C ends the process at once; the first asks hashing to stop cleanly.
    signal_hook::flag::register_conditional_shutdown(
        signal_hook::consts::SIGINT,
        130,
        Arc::clone(&cancel),
    )
    .context("cannot install the Ctrl-C handler")?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&cancel))
        .context("cannot install the Ctrl-C handler")?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&cancel))
        .context("cannot install the SIGTERM handler")?;

    let total = total_size(&args.path)?;
    let progress = ByteProgress::new("hashing", total);
    let on_progress = |p: Progress| progress.set(p.bytes_hashed);
    let created = match create_torrent(&args.path, &options, &on_progress, &cancel) {
        Ok(created) => created,
        Err(CreateError::Cancelled) => bail!("interrupted; no torrent was written"),
        Err(err) => {
            return Err(err).context(format!(
                "cannot create a torrent of {}",
                args.path.display()
            ))
        }
    };
    progress.finish();
    if cancel.load(Ordering::Relaxed) {
        bail!("interrupted; no torrent was written");
    }
    write_atomically(&output, &created.bytes)?;

    let meta =
        Metainfo::from_bytes(&created.bytes).context("the torrent just made does not parse")?;
    println!("created {}", output.display());
    println!("name:       {}", meta.info.name);
    println!("info-hash:  {}", meta.info_hash);
    println!(
        "size:       {} in {} pieces of {}",
        units::bytes(created.total_length),
        created.piece_count,
        units::bytes(u64::from(created.piece_length))
    );
    println!("magnet:     {}", meta.magnet());
    Ok(())
}

fn options(args: &CreateArgs) -> Result<CreateOptions> {
    let piece_length = if args.piece_size.eq_ignore_ascii_case("auto") {
        None
    } else {
        let size = units::parse_size(&args.piece_size).map_err(anyhow::Error::msg)?;
        if !size.is_power_of_two() || !(16 << 10..=256 << 20).contains(&size) {
            bail!(
                "piece size {} must be a power of two from 16K to 256M",
                args.piece_size
            );
        }
        Some(u32::try_from(size)?)
    };
    let trackers = args
        .trackers
        .iter()
        .map(|tier| {
            tier.split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|tier| !tier.is_empty())
        .collect();
    let creation_date = if args.no_date {
        None
    } else {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Some(i64::try_from(now.as_secs())?)
    };
    Ok(CreateOptions {
        piece_length,
        trackers,
        web_seeds: args.web_seeds.clone(),
        private: args.private,
        comment: args.comment.clone(),
        created_by: Some(format!("bitswarm {}", env!("CARGO_PKG_VERSION"))),
        creation_date,
        name: args.name.clone(),
        threads: args.threads,
        source: args.source.clone(),
    })
}

fn output_path(args: &CreateArgs) -> Result<PathBuf> {
    if let Some(out) = &args.output {
        return Ok(out.clone());
    }
    let name = match &args.name {
        Some(name) => name.clone(),
        None => fs::canonicalize(&args.path)
            .with_context(|| format!("cannot read {}", args.path.display()))?
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .context("the path has no file name; pass --name")?,
    };
    Ok(PathBuf::from(format!("{name}.torrent")))
}

/// Total bytes under `path`, for the progress display only.
fn total_size(path: &Path) -> Result<u64> {
    let meta =
        fs::symlink_metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.is_file() {
        return Ok(meta.len());
    }
    let mut total = 0;
    if meta.is_dir() {
        for entry in
            fs::read_dir(path).with_context(|| format!("cannot list {}", path.display()))?
        {
            let entry = entry?;
            if !entry.file_type()?.is_symlink() {
                total += total_size(&entry.path())?;
            }
        }
    }
    Ok(total)
}

/// Writes `bytes` to a temporary file beside `path` and renames it into place, so the output
/// either appears whole or not at all.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .context("the output path has no file name")?
        .to_string_lossy();
    let temp = dir.join(format!(".{file_name}.partial-{}", std::process::id()));
    let result = (|| -> Result<()> {
        let mut file =
            fs::File::create(&temp).with_context(|| format!("cannot write {}", temp.display()))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path).with_context(|| format!("cannot write {}", path.display()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}
