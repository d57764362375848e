//! Fuzz target: parsing a `.torrent` (or a bare info dictionary) never panics, and whatever is
//! accepted keeps the crate's invariants: info-hash over the raw bytes, safe paths, piece
//! slices that add up, and a magnet link that parses back.
#![no_main]

use std::path::Component;

use bitswarm_metainfo::{Info, InfoHash, MagnetLink, Metainfo, PieceIndex};
use libfuzzer_sys::fuzz_target;

/// Pieces checked per input, so that a huge piece count cannot stall the fuzzer.
const PIECES_CHECKED_MAX: u32 = 64;

fn check_info(info: &Info) {
    for f in &info.files {
        assert!(info.file_path(f).components().all(|c| matches!(c, Component::Normal(_))));
        if let Some(target) = f.symlink_target() {
            assert!(target.components().all(|c| matches!(c, Component::Normal(_))));
        }
    }
    let count = info.piece_count();
    for p in (0..count.min(PIECES_CHECKED_MAX)).chain(count.saturating_sub(2)..count) {
        let sum: u64 = info.piece_file_ranges(PieceIndex(p)).map(|s| u64::from(s.len)).sum();
        assert_eq!(sum, u64::from(info.piece_len(PieceIndex(p))));
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Metainfo::from_bytes(data) {
        assert_eq!(m.info_hash, InfoHash::of_info(&m.info_raw));
        check_info(&m.info);
        let magnet = m.magnet();
        assert_eq!(MagnetLink::parse(&magnet.to_string()), Ok(magnet));
    }
    if let Ok((info, _warnings)) = Info::from_bytes(data) {
        check_info(&info);
    }
});
