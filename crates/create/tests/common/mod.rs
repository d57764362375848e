//! Helpers shared by the integration tests: deterministic test data and an independent,
//! sequential checker for the torrents the crate makes.

#![allow(dead_code)] // each test binary uses a different subset

use std::fs;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use bitswarm_create::{create_torrent, CreateOptions, CreatedTorrent, Progress};
use sha1::{Digest, Sha1};

/// `len` pseudo-random bytes from `seed` (xorshift64*), the same on every run.
pub fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes `files` (relative path, length) under `root` with data seeded by their position.
pub fn write_tree(root: &Path, files: &[(&str, usize)]) {
    for (i, (rel, len)) in files.iter().enumerate() {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().expect("test paths have a parent")).expect("mkdir");
        fs::write(&path, data(i as u64 + 1, *len)).expect("write test file");
    }
}

/// Runs `create_torrent` with no progress callback and no cancellation.
pub fn create(root: &Path, opts: &CreateOptions) -> CreatedTorrent {
    let cancel = AtomicBool::new(false);
    create_torrent(root, opts, &|_: Progress| {}, &cancel).expect("create_torrent")
}

/// What a checked torrent held.
pub struct Checked {
    pub name: String,
    /// (path components, length) per file; one entry with no components for single-file.
    pub files: Vec<(Vec<String>, u64)>,
    pub piece_length: u64,
    pub piece_count: usize,
}

/// Decodes `t.bytes`, checks the info-hash, the canonical encoding and every piece hash
/// against a sequential SHA-1 of `expected_data` (the concatenation the test wrote).
pub fn check(t: &CreatedTorrent, expected_data: &[u8]) -> Checked {
    let root = bitswarm_bencode::decode(&t.bytes).expect("torrent decodes");
    assert!(root.is_canonical(), "encoding is canonical");
    let dict = root.as_dict().expect("root is a dict");
    let info = dict.get(b"info").expect("has info");
    let hash: [u8; 20] = Sha1::digest(info.raw()).into();
    assert_eq!(
        hash, t.info_hash,
        "info_hash is SHA-1 of the encoded info dict"
    );
    let info = info.as_dict().expect("info is a dict");
    let piece_length = u64::try_from(
        info.get(b"piece length")
            .and_then(bitswarm_bencode::Value::as_int)
            .expect("piece length"),
    )
    .expect("positive piece length");
    assert_eq!(piece_length, u64::from(t.piece_length));
    let pieces = info
        .get(b"pieces")
        .and_then(bitswarm_bencode::Value::as_bytes)
        .expect("pieces");
    assert_eq!(pieces.len() % 20, 0);
    let expected: Vec<u8> = expected_data
        .chunks(usize::try_from(piece_length).expect("fits"))
        .flat_map(|piece| <[u8; 20]>::from(Sha1::digest(piece)))
        .collect();
    assert_eq!(pieces.len() / 20, expected.len() / 20, "piece count");
    for (i, (got, want)) in pieces.chunks(20).zip(expected.chunks(20)).enumerate() {
        assert_eq!(got, want, "piece {i} hash");
    }
    assert_eq!(t.piece_count as usize, pieces.len() / 20);
    assert_eq!(t.total_length, expected_data.len() as u64);
    let name = info
        .get(b"name")
        .and_then(bitswarm_bencode::Value::as_str)
        .expect("name")
        .to_owned();
    Checked {
        name,
        files: files_of(info),
        piece_length,
        piece_count: pieces.len() / 20,
    }
}

fn files_of(info: &bitswarm_bencode::Dict<'_>) -> Vec<(Vec<String>, u64)> {
    if let Some(len) = info.get(b"length") {
        assert!(
            info.get(b"files").is_none(),
            "length and files are exclusive"
        );
        return vec![(
            Vec::new(),
            len.as_int().expect("length int").try_into().expect("len"),
        )];
    }
    let list = info
        .get(b"files")
        .and_then(bitswarm_bencode::Value::as_list)
        .expect("files list");
    list.iter()
        .map(|f| {
            let f = f.as_dict().expect("file dict");
            let len = f
                .get(b"length")
                .and_then(bitswarm_bencode::Value::as_int)
                .expect("file length");
            let path = f
                .get(b"path")
                .and_then(bitswarm_bencode::Value::as_list)
                .expect("path")
                .iter()
                .map(|c| c.as_str().expect("utf-8 component").to_owned())
                .collect();
            (path, len.try_into().expect("len"))
        })
        .collect()
}
