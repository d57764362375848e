//! Interop: torrents made by `bitswarm create` read the same in libtorrent and Transmission, and
//! torrents made by libtorrent and mktorrent read the same in `bitswarm info`.
//! Needs python3-libtorrent, transmission-cli and mktorrent (`scripts/install-test-deps`).

mod common;

use std::path::Path;
use std::process::Command;

use common::{bitswarm, json, python_with_libtorrent, require, run_ok, sample_tree};
use serde_json::Value;

/// Prints what libtorrent makes of a .torrent file, as JSON.
const LT_READ: &str = r#"
import json, sys, libtorrent as lt
ti = lt.torrent_info(sys.argv[1])
fs = ti.files()
files = []
for i in range(fs.num_files()):
    files.append({"path": fs.file_path(i), "size": fs.file_size(i),
                  "pad": bool(fs.file_flags(i) & lt.file_storage.flag_pad_file)})
print(json.dumps({"info_hash": str(ti.info_hashes().v1), "name": ti.name(),
                  "num_pieces": ti.num_pieces(), "piece_length": ti.piece_length(),
                  "total_size": ti.total_size(), "files": files}))
"#;

/// Makes a torrent of argv[1] with libtorrent: argv[2] output, argv[3] piece size, argv[4]
/// "v1" for a v1-only torrent or "hybrid" for libtorrent 2's default v1+v2 hybrid.
const LT_CREATE: &str = r#"
import os, sys, libtorrent as lt
src, out, piece, kind = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
fs = lt.file_storage()
lt.add_files(fs, src)
flags = lt.create_torrent.v1_only if kind == "v1" else 0
t = lt.create_torrent(fs, piece, flags=flags)
t.add_tracker("http://127.0.0.1:6969/announce")
lt.set_piece_hashes(t, os.path.dirname(os.path.abspath(src)))
open(out, "wb").write(lt.bencode(t.generate()))
"#;

fn libtorrent_reads(torrent: &Path) -> Value {
    let python = python_with_libtorrent();
    json(&run_ok(
        Command::new(python).args(["-c", LT_READ]).arg(torrent),
    ))
}

fn bitswarm_reads(torrent: &Path) -> Value {
    json(&run_ok(bitswarm().arg("info").arg("--json").arg(torrent)))
}

/// The fields of `transmission-show`'s GENERAL section, and its FILES lines.
fn transmission_reads(torrent: &Path) -> (Vec<(String, String)>, Vec<String>) {
    let show = require("transmission-show", "transmission-cli");
    let out = run_ok(Command::new(show).arg(torrent));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut general = Vec::new();
    let mut files = Vec::new();
    let mut section = "";
    for line in text.lines() {
        match line {
            "GENERAL" | "TRACKERS" | "FILES" => section = line,
            l if l.trim().is_empty() => {}
            l if section == "GENERAL" => {
                if let Some((k, v)) = l.trim().split_once(": ") {
                    general.push((k.to_owned(), v.to_owned()));
                }
            }
            l if section == "FILES" => files.push(l.trim().to_owned()),
            _ => {}
        }
    }
    (general, files)
}

fn field<'a>(general: &'a [(String, String)], key: &str) -> &'a str {
    general.iter().find(|(k, _)| k == key).map_or_else(
        || panic!("transmission-show printed no '{key}'"),
        |(_, v)| v.as_str(),
    )
}

/// Non-pad files as (path, size), paths relative to the torrent's root folder.
fn real_files(files: &Value, strip_root: Option<&str>) -> Vec<(String, u64)> {
    files
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| !f["pad"].as_bool().unwrap_or(false))
        .map(|f| {
            let path = f["path"].as_str().unwrap();
            let path = match strip_root {
                Some(root) => path.strip_prefix(&format!("{root}/")).unwrap_or(path),
                None => path,
            };
            (path.to_owned(), f["size"].as_u64().unwrap())
        })
        .collect()
}

#[test]
fn bitswarm_torrents_read_the_same_in_libtorrent_and_transmission() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sample_tree(tmp.path());
    let torrent = tmp.path().join("sample.torrent");
    run_ok(
        bitswarm()
            .arg("create")
            .arg(&dir)
            .arg("-o")
            .arg(&torrent)
            .args(["-t", "http://127.0.0.1:6969/announce", "-p", "64K"]),
    );
    let ours = bitswarm_reads(&torrent);

    let lt = libtorrent_reads(&torrent);
    assert_eq!(lt["info_hash"], ours["info_hash"]);
    assert_eq!(lt["name"], ours["name"]);
    assert_eq!(lt["num_pieces"], ours["piece_count"]);
    assert_eq!(lt["piece_length"], ours["piece_size"]);
    assert_eq!(lt["total_size"], ours["total_size"]);
    assert_eq!(
        real_files(&lt["files"], Some("sample")),
        real_files(&ours["files"], None)
    );

    let (general, files) = transmission_reads(&torrent);
    assert_eq!(field(&general, "Hash"), ours["info_hash"].as_str().unwrap());
    assert_eq!(field(&general, "Name"), ours["name"].as_str().unwrap());
    assert_eq!(
        field(&general, "Piece Count"),
        ours["piece_count"].to_string()
    );
    let transmission_paths: Vec<String> = files
        .iter()
        .map(|l| {
            l.rsplit_once(" (")
                .map_or(l.as_str(), |(p, _)| p)
                .to_owned()
        })
        .collect();
    let our_paths: Vec<String> = real_files(&ours["files"], None)
        .into_iter()
        .map(|(p, _)| format!("sample/{p}"))
        .collect();
    let mut sorted = our_paths.clone();
    sorted.sort();
    let mut theirs = transmission_paths.clone();
    theirs.sort();
    assert_eq!(theirs, sorted);
}

#[test]
fn libtorrent_torrents_read_the_same_in_bitswarm() {
    let python = python_with_libtorrent();
    let tmp = tempfile::tempdir().unwrap();
    let dir = sample_tree(tmp.path());
    for kind in ["v1", "hybrid"] {
        let torrent = tmp.path().join(format!("lt-{kind}.torrent"));
        run_ok(
            Command::new(&python)
                .args(["-c", LT_CREATE])
                .arg(&dir)
                .arg(&torrent)
                .args(["32768", kind]),
        );
        let lt = libtorrent_reads(&torrent);
        let ours = bitswarm_reads(&torrent);
        assert_eq!(ours["info_hash"], lt["info_hash"], "{kind}");
        assert_eq!(ours["name"], lt["name"], "{kind}");
        assert_eq!(ours["piece_count"], lt["num_pieces"], "{kind}");
        assert_eq!(
            ours["total_size"], lt["total_size"],
            "{kind}: totals include pad files"
        );
        assert_eq!(
            real_files(&ours["files"], None),
            real_files(&lt["files"], Some("sample")),
            "{kind}"
        );
        if kind == "hybrid" {
            let pads = ours["files"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["pad"] == true)
                .count();
            assert!(
                pads > 0,
                "libtorrent's hybrid torrents align files with pad files"
            );
        }
    }
}

#[test]
fn mktorrent_torrents_read_the_same_in_bitswarm() {
    let mktorrent = require("mktorrent", "mktorrent");
    let tmp = tempfile::tempdir().unwrap();
    let dir = sample_tree(tmp.path());
    let torrent = tmp.path().join("mk.torrent");
    run_ok(
        Command::new(mktorrent)
            .args(["-l", "16", "-a", "udp://127.0.0.1:6969", "-o"])
            .arg(&torrent)
            .arg(&dir),
    );
    let ours = bitswarm_reads(&torrent);
    let lt = libtorrent_reads(&torrent);
    let (general, _) = transmission_reads(&torrent);
    assert_eq!(ours["info_hash"], lt["info_hash"]);
    assert_eq!(ours["info_hash"].as_str().unwrap(), field(&general, "Hash"));
    assert_eq!(ours["piece_size"], 65536);
    assert_eq!(
        ours["trackers"],
        serde_json::json!([["udp://127.0.0.1:6969"]])
    );

    // bitswarm makes the same torrent from the same folder with the same settings.
    let ours_made = tmp.path().join("ours.torrent");
    run_ok(
        bitswarm()
            .arg("create")
            .arg(&dir)
            .arg("-o")
            .arg(&ours_made)
            .args(["-p", "64K", "-t", "udp://127.0.0.1:6969"]),
    );
    assert_eq!(
        bitswarm_reads(&ours_made)["info_hash"],
        ours["info_hash"],
        "same files, same order, same pieces"
    );
}
