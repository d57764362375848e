//! Interop: the same data and piece length must give the same info-hash in mktorrent
//! (Debian `mktorrent`) and libtorrent (Debian `python3-libtorrent`, via `/usr/bin/python3`).
//! A missing tool fails the test with the package to install; it never passes silently.

mod common;

use std::path::Path;
use std::process::Command;

use bitswarm_create::{CreateOptions, CreatedTorrent};
use common::{create, data, write_tree};
use sha1::{Digest, Sha1};

const PYTHON: &str = "/usr/bin/python3";

/// Info-hash of a .torrent file made by another program.
fn info_hash_of(torrent: &Path) -> [u8; 20] {
    let bytes = std::fs::read(torrent).expect("read the other program's torrent");
    let root = bitswarm_bencode::decode(&bytes).expect("their torrent decodes");
    let info = root
        .as_dict()
        .and_then(|d| d.get(b"info"))
        .expect("info dict");
    Sha1::digest(info.raw()).into()
}

/// Runs `cmd`, failing the test with the Debian package to install if it cannot; returns
/// its standard output.
fn run(cmd: &mut Command, package: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {cmd:?} ({e}); install the Debian package `{package}`")
    });
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n(needs the Debian package `{package}`)",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn mktorrent(target: &Path, piece_exp: u32, out: &Path) {
    run(
        Command::new("mktorrent")
            .args(["-d", "-t", "2", "-l", &piece_exp.to_string(), "-o"])
            .arg(out)
            .arg(target),
        "mktorrent",
    );
}

/// libtorrent with the files listed explicitly in `files` order (so both sides agree on the
/// order whatever libtorrent's directory walk would do).
/// Returns the info-hash as libtorrent prints it (hex).
fn libtorrent(target: &Path, t: &CreatedTorrent, files: &[(String, u64)], out: &Path) -> String {
    let script = r#"
import sys, json, libtorrent as lt
parent, out, piece, files = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
fs = lt.file_storage()
for path, size in files:
    fs.add_file(path, size)
t = lt.create_torrent(fs, piece, flags=lt.create_torrent.v1_only)
lt.set_piece_hashes(t, parent)
open(out, "wb").write(lt.bencode(t.generate()))
print(lt.torrent_info(out).info_hashes().v1)
"#;
    let list: Vec<String> = files
        .iter()
        .map(|(p, s)| format!("[\"{p}\", {s}]"))
        .collect();
    let stdout = run(
        Command::new(PYTHON)
            .args(["-c", script])
            .arg(target.parent().expect("target has a parent"))
            .arg(out)
            .arg(t.piece_length.to_string())
            .arg(format!("[{}]", list.join(","))),
        "python3-libtorrent",
    );
    stdout.trim().to_owned()
}

#[test]
fn single_file_matches_mktorrent_and_libtorrent() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("single.bin");
    std::fs::write(&file, data(42, 3 * 1024 * 1024 + 5)).unwrap();
    let opts = CreateOptions {
        piece_length: Some(1 << 18),
        ..CreateOptions::default()
    };
    let ours = create(&file, &opts);
    let mk = dir.path().join("mk.torrent");
    mktorrent(&file, 18, &mk);
    assert_eq!(info_hash_of(&mk), ours.info_hash, "mktorrent");
    let lt = dir.path().join("lt.torrent");
    libtorrent(
        &file,
        &ours,
        &[("single.bin".into(), ours.total_length)],
        &lt,
    );
    assert_eq!(info_hash_of(&lt), ours.info_hash, "libtorrent");
    assert_eq!(ours.info_hash_hex().len(), 40);
}

#[test]
fn multi_file_matches_mktorrent_and_libtorrent() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    // Names whose full-path byte order equals component order, which mktorrent sorts by.
    let files = [
        ("a/x", 300_000),
        ("a/y", 0),
        ("b", 1_000_001),
        ("c/d/e", 65_536),
        ("c/f", 17),
    ];
    write_tree(&root, &files);
    let opts = CreateOptions {
        piece_length: Some(1 << 15),
        ..CreateOptions::default()
    };
    let ours = create(&root, &opts);
    let mk = dir.path().join("mk.torrent");
    mktorrent(&root, 15, &mk);
    assert_eq!(info_hash_of(&mk), ours.info_hash, "mktorrent");
    let listed: Vec<(String, u64)> = files
        .iter()
        .map(|(p, s)| (format!("tree/{p}"), *s as u64))
        .collect();
    let lt = dir.path().join("lt.torrent");
    let printed = libtorrent(&root, &ours, &listed, &lt);
    assert_eq!(printed, ours.info_hash_hex());
    assert_eq!(info_hash_of(&lt), ours.info_hash, "libtorrent");
}
