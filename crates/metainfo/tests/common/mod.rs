//! Builders for crafted torrents (canonical bencode via `OwnedValue`), shared by the
//! integration tests.
#![allow(dead_code, missing_docs)] // each test binary uses a different subset

use bitswarm_bencode::OwnedValue;

/// A file dictionary for a multi-file `files` list, from raw path components.
pub fn file_raw(path: &[&[u8]], length: i64) -> OwnedValue {
    let path = path.iter().map(|c| OwnedValue::bytes(*c)).collect();
    OwnedValue::dict()
        .insert("length", OwnedValue::Int(length))
        .insert("path", OwnedValue::List(path))
}

/// A file dictionary from UTF-8 path components.
pub fn file(path: &[&str], length: i64) -> OwnedValue {
    let raw: Vec<&[u8]> = path.iter().map(|c| c.as_bytes()).collect();
    file_raw(&raw, length)
}

/// Adds `key => value` to a dictionary.
pub fn with(dict: OwnedValue, key: &str, value: OwnedValue) -> OwnedValue {
    dict.insert(key, value)
}

/// Fake piece hashes (piece `i` hashes to twenty bytes of `i`), the right number for `total`
/// (negative values count as 0 bytes and 1-byte pieces: tests replace those fields anyway).
pub fn pieces_for(total: i64, piece_length: i64) -> OwnedValue {
    let total = u64::try_from(total).unwrap_or(0);
    let piece_length = u64::try_from(piece_length).unwrap_or(1).max(1);
    let count = total.div_ceil(piece_length);
    let mut bytes = Vec::new();
    for i in 0..count {
        bytes.extend_from_slice(&[i as u8; 20]);
    }
    OwnedValue::Bytes(bytes)
}

fn length_of(file: &OwnedValue) -> i64 {
    match file {
        OwnedValue::Dict(map) => match map.get(b"length".as_slice()) {
            Some(OwnedValue::Int(n)) => (*n).max(0),
            _ => 0,
        },
        _ => 0,
    }
}

/// A multi-file info dictionary with a matching `pieces`.
pub fn multi_info(name: &[u8], files: Vec<OwnedValue>, piece_length: i64) -> OwnedValue {
    let total: i64 = files.iter().map(length_of).sum();
    OwnedValue::dict()
        .insert("name", OwnedValue::bytes(name))
        .insert("piece length", OwnedValue::Int(piece_length))
        .insert("pieces", pieces_for(total, piece_length))
        .insert("files", OwnedValue::List(files))
}

/// A single-file info dictionary with a matching `pieces`.
pub fn single_info(name: &[u8], length: i64, piece_length: i64) -> OwnedValue {
    OwnedValue::dict()
        .insert("name", OwnedValue::bytes(name))
        .insert("piece length", OwnedValue::Int(piece_length))
        .insert("pieces", pieces_for(length, piece_length))
        .insert("length", OwnedValue::Int(length))
}

/// A whole torrent around an info dictionary.
pub fn torrent(info: OwnedValue) -> Vec<u8> {
    OwnedValue::dict()
        .insert(
            "announce",
            OwnedValue::from("http://tracker.example/announce"),
        )
        .insert("info", info)
        .encode()
}
