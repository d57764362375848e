//! Interop with independently written implementations: torrents made by libtorrent (with BEP 47
//! pad files), mktorrent and transmission-create parse to the same info-hash, geometry and file
//! list that libtorrent, transmission-show and aria2 report; the piece hashes match the data
//! through our piece-to-file mapping; magnet links cross both ways.
//!
//! These tests need `/usr/bin/python3` with libtorrent (Debian `python3-libtorrent`),
//! `mktorrent`, `transmission-cli` and `aria2`, all in `.ci/apt-packages`; they fail (never
//! skip) when one is missing.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;

use bitswarm_metainfo::{MagnetLink, Metainfo, PieceIndex};
use sha1::{Digest, Sha1};

const PYTHON: &str = "/usr/bin/python3";

const LIBTORRENT_SCRIPT: &str = r#"
import os, sys
import libtorrent as lt
mode = sys.argv[1]
if mode == "create":
    src, out = sys.argv[2], sys.argv[3]
    fs = lt.file_storage()
    lt.add_files(fs, src)
    t = lt.create_torrent(fs, 16384, flags=lt.create_torrent.v1_only | lt.create_torrent.canonical_files)
    t.add_tracker("http://t1.example/announce", 0)
    t.add_tracker("udp://t2.example:6969", 0)
    t.add_tracker("http://t3.example/announce", 1)
    t.add_url_seed("http://seed.example/")
    t.set_priv(True)
    t.set_comment("interop")
    lt.set_piece_hashes(t, os.path.dirname(src))
    with open(out, "wb") as f:
        f.write(lt.bencode(t.generate()))
if mode in ("create", "show"):
    ti = lt.torrent_info(sys.argv[-1])
    print("hash", ti.info_hashes().v1, sep="\t")
    print("pieces", ti.num_pieces(), ti.piece_length(), sep="\t")
    print("name", ti.name(), sep="\t")
    fs = ti.files()
    for i in range(fs.num_files()):
        flags = fs.file_flags(i)
        print("file", fs.file_path(i), fs.file_size(i), fs.file_offset(i),
              int(bool(flags & fs.flag_pad_file)), int(bool(flags & fs.flag_executable)), sep="\t")
    print("magnet", lt.make_magnet_uri(ti), sep="\t")
if mode == "magnet":
    p = lt.parse_magnet_uri(sys.argv[2])
    print("hash", p.info_hashes.v1, sep="\t")
    print("name", p.name, sep="\t")
    for t in p.trackers:
        print("tracker", t, sep="\t")
    for u in p.url_seeds:
        print("ws", u, sep="\t")
"#;

/// Runs a program and returns its stdout; panics with the package to install if it is missing.
fn run(program: &str, args: &[&str], package: &str) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({e}): install the Debian package `{package}`")
        });
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}\n(needs the Debian package `{package}`)",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn libtorrent(args: &[&str]) -> Vec<Vec<String>> {
    let mut all = vec!["-c", LIBTORRENT_SCRIPT];
    all.extend_from_slice(args);
    run(PYTHON, &all, "python3-libtorrent")
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

fn field<'a>(lines: &'a [Vec<String>], key: &str) -> &'a [String] {
    lines
        .iter()
        .find(|l| l[0] == key)
        .map_or_else(|| panic!("libtorrent printed no `{key}`"), |l| &l[1..])
}

/// Deterministic pseudo-random bytes (no RNG dependency needed).
fn data(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// `multi/` with a file boundary inside a piece, an empty file, a nested and an executable file.
fn make_tree(root: &Path) -> PathBuf {
    let dir = root.join("multi");
    fs::create_dir_all(dir.join("sub")).unwrap();
    fs::write(dir.join("a.bin"), data(70_000, 1)).unwrap();
    fs::write(dir.join("empty"), b"").unwrap();
    fs::write(dir.join("sub/b.txt"), data(100, 2)).unwrap();
    fs::write(dir.join("sub/c.dat"), data(33_000, 3)).unwrap();
    fs::write(dir.join("run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

/// Recomputes every piece hash from the files on disk (pad files read as zeros) through
/// `piece_file_ranges`, and compares with the torrent's.
fn verify_pieces(m: &Metainfo, download_dir: &Path) {
    let info = &m.info;
    for p in 0..info.piece_count() {
        let mut hasher = Sha1::new();
        for slice in info.piece_file_ranges(PieceIndex(p)) {
            let mut buf = vec![0u8; slice.len as usize];
            if !slice.is_pad {
                let f = &info.files[slice.file_index];
                let mut file = fs::File::open(download_dir.join(info.file_path(f))).unwrap();
                file.seek(SeekFrom::Start(slice.offset)).unwrap();
                file.read_exact(&mut buf).unwrap();
            }
            hasher.update(&buf);
        }
        let digest: [u8; 20] = hasher.finalize().into();
        assert_eq!(Some(&digest), info.piece_hash(PieceIndex(p)), "piece {p}");
    }
}

#[test]
fn libtorrent_v1_torrent_with_pad_files() {
    let tmp = tempfile::tempdir().unwrap();
    let src = make_tree(tmp.path());
    let out = tmp.path().join("lt.torrent");
    let lt = libtorrent(&["create", src.to_str().unwrap(), out.to_str().unwrap()]);
    let m = Metainfo::from_bytes(&fs::read(&out).unwrap()).expect("libtorrent's torrent parses");

    assert_eq!(m.info_hash.to_hex(), field(&lt, "hash")[0]);
    let pieces = field(&lt, "pieces");
    assert_eq!(m.info.piece_count().to_string(), pieces[0]);
    assert_eq!(m.info.piece_length.to_string(), pieces[1]);
    assert_eq!(m.info.name, field(&lt, "name")[0]);
    assert!(m.info.private && m.info.multi_file);
    assert_eq!(m.comment.as_deref(), Some("interop"));
    assert_eq!(
        m.tracker_tiers(),
        [
            vec!["http://t1.example/announce", "udp://t2.example:6969"],
            vec!["http://t3.example/announce"]
        ]
    );
    assert_eq!(m.web_seeds, ["http://seed.example/"]);

    let lt_files: Vec<&Vec<String>> = lt.iter().filter(|l| l[0] == "file").collect();
    assert_eq!(lt_files.len(), m.info.files.len());
    assert!(
        m.info
            .files
            .iter()
            .any(bitswarm_metainfo::FileEntry::is_pad),
        "canonical_files adds pad files"
    );
    for (ours, theirs) in m.info.files.iter().zip(lt_files) {
        let path = m.info.file_path(ours);
        assert_eq!(path.to_str().unwrap(), theirs[1]);
        assert_eq!(ours.length.to_string(), theirs[2], "{path:?} size");
        assert_eq!(ours.offset.to_string(), theirs[3], "{path:?} offset");
        assert_eq!(ours.is_pad(), theirs[4] == "1", "{path:?} pad");
        assert_eq!(
            ours.attr.executable,
            theirs[5] == "1",
            "{path:?} executable"
        );
    }
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    verify_pieces(&m, tmp.path());

    // libtorrent's magnet link, parsed by us.
    let theirs = MagnetLink::parse(&field(&lt, "magnet")[0]).unwrap();
    assert_eq!(theirs.info_hash, Some(m.info_hash));
    assert_eq!(theirs.display_name.as_deref(), Some("multi"));
    let ours = m.magnet();
    // libtorrent shuffles trackers within a tier when it loads a torrent (BEP 12), so its
    // link lists the same trackers in a varying order.
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    assert_eq!(sorted(&theirs.trackers), sorted(&ours.trackers));

    // Our magnet link, parsed by libtorrent.
    let parsed = libtorrent(&["magnet", &ours.to_string()]);
    assert_eq!(field(&parsed, "hash")[0], m.info_hash.to_hex());
    assert_eq!(field(&parsed, "name")[0], "multi");
    let trackers: Vec<&str> = parsed
        .iter()
        .filter(|l| l[0] == "tracker")
        .map(|l| l[1].as_str())
        .collect();
    assert_eq!(trackers, ours.trackers);
    let seeds: Vec<&str> = parsed
        .iter()
        .filter(|l| l[0] == "ws")
        .map(|l| l[1].as_str())
        .collect();
    assert_eq!(seeds, ["http://seed.example/"]);
}

/// `Key: value` lines of transmission-show or aria2c output.
fn key_values(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.trim().split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn mktorrent_and_transmission_torrents_agree_with_three_readers() {
    let tmp = tempfile::tempdir().unwrap();
    let src = make_tree(tmp.path());
    let src = src.to_str().unwrap();
    let mk = tmp.path().join("mk.torrent");
    let tr = tmp.path().join("tr.torrent");
    run(
        "mktorrent",
        &[
            "-l",
            "15",
            "-p",
            "-c",
            "made by mktorrent",
            "-a",
            "http://a/ann,udp://b:1",
            "-a",
            "http://c/ann",
            "-w",
            "http://seed/",
            "-o",
            mk.to_str().unwrap(),
            src,
        ],
        "mktorrent",
    );
    run(
        "transmission-create",
        &[
            "-o",
            tr.to_str().unwrap(),
            "-t",
            "http://a/ann",
            "-s",
            "64",
            src,
        ],
        "transmission-cli",
    );
    for (torrent, piece_length) in [(&mk, 32768), (&tr, 65536)] {
        let path = torrent.to_str().unwrap();
        let m = Metainfo::from_bytes(&fs::read(torrent).unwrap()).unwrap();
        assert_eq!(m.info.piece_length, piece_length);
        verify_pieces(&m, tmp.path());

        let lt = libtorrent(&["show", path]);
        assert_eq!(m.info_hash.to_hex(), field(&lt, "hash")[0], "{path}");
        let show = key_values(&run("transmission-show", &[path], "transmission-cli"));
        assert_eq!(show["Hash"], m.info_hash.to_hex(), "{path}");
        assert_eq!(show["Piece Count"], m.info.piece_count().to_string());
        let aria = key_values(&run("aria2c", &["-S", path], "aria2"));
        assert_eq!(aria["Info Hash"], m.info_hash.to_hex(), "{path}");
        // aria2 spells the hash in uppercase; transmission percent-encodes every tracker.
        let aria_magnet = MagnetLink::parse(&aria["Magnet URI"]).unwrap();
        assert_eq!(aria_magnet.info_hash, Some(m.info_hash));
        let tr_magnet = run("transmission-show", &["--magnet", path], "transmission-cli");
        let tr_magnet = MagnetLink::parse(tr_magnet.trim()).unwrap();
        assert_eq!(tr_magnet.info_hash, Some(m.info_hash));
        assert_eq!(tr_magnet.trackers, m.magnet().trackers);
        assert_eq!(tr_magnet.web_seeds, m.web_seeds);
    }
    let m = Metainfo::from_bytes(&fs::read(&mk).unwrap()).unwrap();
    assert!(m.info.private);
    assert_eq!(m.comment.as_deref(), Some("made by mktorrent"));
    assert_eq!(
        m.tracker_tiers(),
        [vec!["http://a/ann", "udp://b:1"], vec!["http://c/ann"]]
    );
    assert_eq!(m.web_seeds, ["http://seed/"]);
}
