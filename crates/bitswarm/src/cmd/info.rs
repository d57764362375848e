//! `bitswarm info`: everything a .torrent file or magnet link says, for people or (`--json`)
//! for scripts.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use bitswarm_bencode::DecodeError;
use bitswarm_metainfo::{MagnetLink, Metainfo, MetainfoError};
use clap::Args;
use serde::Serialize;

use crate::units;

/// Arguments of `bitswarm info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// A .torrent file or a magnet link.
    pub source: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What `--json` prints for a torrent file.
#[derive(Debug, Serialize)]
struct TorrentReport {
    name: String,
    info_hash: String,
    total_size: u64,
    piece_size: u32,
    piece_count: u32,
    private: bool,
    files: Vec<FileReport>,
    trackers: Vec<Vec<String>>,
    web_seeds: Vec<String>,
    comment: Option<String>,
    created_by: Option<String>,
    creation_date: Option<i64>,
    magnet: String,
    warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
struct FileReport {
    path: String,
    size: u64,
    pad: bool,
}

/// What `--json` prints for a magnet link.
#[derive(Debug, Serialize)]
struct MagnetReport {
    info_hash: Option<String>,
    info_hash_v2: Option<String>,
    name: Option<String>,
    trackers: Vec<String>,
    web_seeds: Vec<String>,
    peers: Vec<String>,
    exact_length: Option<u64>,
    magnet: String,
}

/// Runs `bitswarm info`.
pub fn run(args: &InfoArgs) -> Result<()> {
    if args.source.starts_with("magnet:") {
        let magnet = MagnetLink::parse(&args.source).context("not a usable magnet link")?;
        return show_magnet(&magnet, args.json);
    }
    let meta = load_torrent(Path::new(&args.source))?;
    let report = torrent_report(&meta);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_torrent(&report);
    }
    Ok(())
}

/// Reads and parses a .torrent file, turning each failure into one clear sentence.
pub fn load_torrent(path: &Path) -> Result<Metainfo> {
    let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Metainfo::from_bytes(&bytes).map_err(|err| match err {
        MetainfoError::Bencode(
            DecodeError::UnexpectedEof { .. } | DecodeError::LengthPastEnd { .. },
        ) => {
            anyhow!("{} is truncated or damaged ({err})", path.display())
        }
        MetainfoError::Bencode(_) => anyhow!("{} is not a .torrent file ({err})", path.display()),
        other => anyhow!("{} is not a valid .torrent file: {other}", path.display()),
    })
}

fn torrent_report(meta: &Metainfo) -> TorrentReport {
    let info = &meta.info;
    TorrentReport {
        name: info.name.clone(),
        info_hash: meta.info_hash.to_hex(),
        total_size: info.total_length(),
        piece_size: info.piece_length,
        piece_count: info.piece_count(),
        private: info.private,
        files: info
            .files
            .iter()
            .map(|f| FileReport {
                path: f.path.join("/"),
                size: f.length,
                pad: f.is_pad(),
            })
            .collect(),
        trackers: meta.tracker_tiers(),
        web_seeds: meta.web_seeds.clone(),
        comment: meta.comment.clone(),
        created_by: meta.created_by.clone(),
        creation_date: meta.creation_date,
        magnet: meta.magnet().to_string(),
        warnings: meta.warnings.iter().map(ToString::to_string).collect(),
    }
}

fn print_torrent(r: &TorrentReport) {
    println!("name:        {}", r.name);
    println!("info-hash:   {}", r.info_hash);
    println!(
        "size:        {} ({} bytes)",
        units::bytes(r.total_size),
        r.total_size
    );
    let last = last_piece_len(r.total_size, r.piece_size);
    println!(
        "pieces:      {} x {} (last {last} bytes)",
        r.piece_count,
        units::bytes(u64::from(r.piece_size)),
    );
    println!("private:     {}", if r.private { "yes" } else { "no" });
    if let Some(c) = &r.comment {
        println!("comment:     {c}");
    }
    if let Some(c) = &r.created_by {
        println!("created by:  {c}");
    }
    if let Some(d) = r.creation_date {
        println!("created on:  {}", units::utc_date(d));
    }
    if r.trackers.is_empty() {
        println!("trackers:    none");
    } else {
        println!("trackers:");
        for (i, tier) in r.trackers.iter().enumerate() {
            println!("  tier {}: {}", i + 1, tier.join(", "));
        }
    }
    for ws in &r.web_seeds {
        println!("web seed:    {ws}");
    }
    let real_files = r.files.iter().filter(|f| !f.pad).count();
    println!("files:       {real_files}");
    print_tree(&r.files);
    println!("magnet:      {}", r.magnet);
    for w in &r.warnings {
        println!("warning:     {w}");
    }
}

fn last_piece_len(total: u64, piece: u32) -> u64 {
    let piece = u64::from(piece);
    match total % piece.max(1) {
        0 if total > 0 => piece,
        rest => rest,
    }
}

/// A folder in the printed file tree: sub-folders and files with their sizes.
#[derive(Default)]
struct TreeNode {
    size: u64,
    folders: BTreeMap<String, TreeNode>,
    files: Vec<(String, u64)>,
}

fn print_tree(files: &[FileReport]) {
    let mut root = TreeNode::default();
    for f in files.iter().filter(|f| !f.pad) {
        let parts: Vec<&str> = f.path.split('/').collect();
        let Some((file, folders)) = parts.split_last() else {
            continue;
        };
        let mut node = &mut root;
        node.size += f.size;
        for folder in folders {
            node = node.folders.entry((*folder).to_owned()).or_default();
            node.size += f.size;
        }
        node.files.push(((*file).to_owned(), f.size));
    }
    print_node(&root, 1);
}

fn print_node(node: &TreeNode, depth: usize) {
    let indent = "  ".repeat(depth);
    for (name, child) in &node.folders {
        println!("{indent}{name}/  ({})", units::bytes(child.size));
        print_node(child, depth + 1);
    }
    for (name, size) in &node.files {
        println!("{indent}{name}  {}", units::bytes(*size));
    }
}

fn show_magnet(m: &MagnetLink, json: bool) -> Result<()> {
    let report = MagnetReport {
        info_hash: m.info_hash.map(|h| h.to_hex()),
        info_hash_v2: m.info_hash_v2.clone(),
        name: m.display_name.clone(),
        trackers: m.trackers.clone(),
        web_seeds: m.web_seeds.clone(),
        peers: m.peers.clone(),
        exact_length: m.exact_length,
        magnet: m.to_string(),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("magnet link (metadata is fetched from peers when downloading)");
    if let Some(name) = &report.name {
        println!("name:        {name}");
    }
    if let Some(h) = &report.info_hash {
        println!("info-hash:   {h}");
    }
    if let Some(h) = &report.info_hash_v2 {
        println!("v2 hash:     {h} (BitTorrent v2 is not supported yet)");
    }
    if let Some(len) = report.exact_length {
        println!("size:        {} ({len} bytes)", units::bytes(len));
    }
    for t in &report.trackers {
        println!("tracker:     {t}");
    }
    for ws in &report.web_seeds {
        println!("web seed:    {ws}");
    }
    for p in &report.peers {
        println!("peer:        {p}");
    }
    Ok(())
}
