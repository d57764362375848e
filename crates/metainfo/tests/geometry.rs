//! Piece geometry: pieces spanning file boundaries, zero-length files, the short last piece
//! and pad files, plus a property test that slices tile the byte stream exactly.

mod common;

use bitswarm_bencode::OwnedValue;
use bitswarm_metainfo::{FileSlice, Info, Metainfo, PieceIndex};
use common::{file, multi_info, single_info, torrent, with};
use proptest::prelude::*;

fn info_of(bytes: &[u8]) -> Info {
    Metainfo::from_bytes(bytes).expect("valid").info
}

fn slices(info: &Info, piece: u32) -> Vec<(usize, u64, u32)> {
    info.piece_file_ranges(PieceIndex(piece))
        .map(|s| (s.file_index, s.offset, s.len))
        .collect()
}

#[test]
fn single_file_last_piece_is_short() {
    let info = info_of(&torrent(single_info(b"x", 40_000, 16384)));
    assert_eq!(info.piece_count(), 3);
    assert_eq!(info.piece_len(PieceIndex(0)), 16384);
    assert_eq!(info.piece_len(PieceIndex(2)), 40_000 - 2 * 16384);
    assert_eq!(info.piece_len(PieceIndex(3)), 0);
    assert_eq!(slices(&info, 2), [(0, 32768, 7232)]);
    assert_eq!(slices(&info, 3), []);
    assert_eq!(info.piece_hash(PieceIndex(2)), Some(&[2; 20]));
    assert_eq!(info.piece_hash(PieceIndex(3)), None);
    assert_eq!(info.file_piece_range(0), 0..3);
    assert_eq!(info.file_piece_range(1), 0..0);
}

#[test]
fn exact_multiple_has_no_short_piece() {
    let info = info_of(&torrent(single_info(b"x", 32768, 16384)));
    assert_eq!(info.piece_count(), 2);
    assert_eq!(info.piece_len(PieceIndex(1)), 16384);
}

/// Piece length 10; files: a=7, empty, b=15, empty, c=3 (total 25, pieces 10/10/5).
#[test]
fn multi_file_boundaries_inside_pieces_and_zero_length_files() {
    let files = vec![
        file(&["a"], 7),
        file(&["empty1"], 0),
        file(&["b"], 15),
        file(&["empty2"], 0),
        file(&["c"], 3),
    ];
    let info = info_of(&torrent(multi_info(b"d", files, 10)));
    assert_eq!(info.piece_count(), 3);
    assert_eq!(slices(&info, 0), [(0, 0, 7), (2, 0, 3)]);
    assert_eq!(slices(&info, 1), [(2, 3, 10)]);
    assert_eq!(slices(&info, 2), [(2, 13, 2), (4, 0, 3)]);
    assert_eq!(info.piece_len(PieceIndex(2)), 5);
    assert_eq!(info.file_piece_range(0), 0..1);
    assert_eq!(
        info.file_piece_range(1),
        0..0,
        "zero-length file at offset 7"
    );
    assert_eq!(info.file_piece_range(2), 0..3);
    assert_eq!(
        info.file_piece_range(3),
        2..2,
        "zero-length file at offset 22"
    );
    assert_eq!(info.file_piece_range(4), 2..3);
    assert_eq!(info.file_piece_range(5), 0..0);
}

#[test]
fn zero_length_file_at_a_piece_boundary_and_at_the_end() {
    let files = vec![
        file(&["a"], 10),
        file(&["e"], 0),
        file(&["b"], 10),
        file(&["z"], 0),
    ];
    let info = info_of(&torrent(multi_info(b"d", files, 10)));
    assert_eq!(slices(&info, 0), [(0, 0, 10)]);
    assert_eq!(slices(&info, 1), [(2, 0, 10)]);
    assert_eq!(info.file_piece_range(1), 1..1);
    assert_eq!(info.file_piece_range(3), 2..2);
}

#[test]
fn pad_files_are_included_and_marked() {
    let pad = |n: i64| {
        with(
            file(&[".pad", &n.to_string()], n),
            "attr",
            OwnedValue::from("p"),
        )
    };
    let files = vec![
        file(&["a"], 5),
        pad(11),
        file(&["b"], 20),
        pad(12),
        file(&["c"], 1),
    ];
    let info = info_of(&torrent(multi_info(b"d", files, 16)));
    assert_eq!(info.total_length(), 49);
    assert_eq!(info.piece_count(), 4);
    let p0: Vec<FileSlice> = info.piece_file_ranges(PieceIndex(0)).collect();
    assert_eq!(p0.len(), 2);
    assert!(!p0[0].is_pad && p0[1].is_pad);
    assert_eq!((p0[1].file_index, p0[1].offset, p0[1].len), (1, 0, 11));
    assert_eq!(slices(&info, 1), [(2, 0, 16)]);
    assert_eq!(slices(&info, 2), [(2, 16, 4), (3, 0, 12)]);
    assert_eq!(slices(&info, 3), [(4, 0, 1)]);
    assert_eq!(info.file_piece_range(2), 1..3);
    assert_eq!(info.file_piece_range(4), 3..4);
}

#[test]
fn legacy_pad_names_are_pad_files() {
    let files = vec![
        file(&["a"], 5),
        file(&["_____padding_file_0_please upgrade____"], 11),
        file(&["b"], 1),
    ];
    let info = info_of(&torrent(multi_info(b"d", files, 16)));
    assert!(info.files[1].is_pad());
    assert!(info.piece_file_ranges(PieceIndex(0)).any(|s| s.is_pad));
}

proptest! {
    /// For any file lengths and piece length: slices are non-empty, in order, sum to the piece
    /// length, tile the stream without gaps, and agree with `file_piece_range`.
    #[test]
    fn slices_tile_the_stream(
        lengths in prop::collection::vec(0i64..100, 1..12),
        piece_length in 1i64..64,
    ) {
        prop_assume!(lengths.iter().sum::<i64>() > 0);
        let files = lengths.iter().enumerate().map(|(i, l)| file(&[&format!("f{i}")], *l)).collect();
        let info = info_of(&torrent(multi_info(b"d", files, piece_length)));
        let mut stream_pos = 0u64;
        for p in 0..info.piece_count() {
            let mut sum = 0u64;
            for s in info.piece_file_ranges(PieceIndex(p)) {
                let f = &info.files[s.file_index];
                prop_assert!(s.len > 0);
                prop_assert_eq!(f.offset + s.offset, stream_pos);
                prop_assert!(s.offset + u64::from(s.len) <= f.length);
                prop_assert!(info.file_piece_range(s.file_index).contains(&p));
                stream_pos += u64::from(s.len);
                sum += u64::from(s.len);
            }
            prop_assert_eq!(sum, u64::from(info.piece_len(PieceIndex(p))));
        }
        prop_assert_eq!(stream_pos, info.total_length());
        for (i, f) in info.files.iter().enumerate() {
            let covered: u64 = info.file_piece_range(i)
                .flat_map(|p| info.piece_file_ranges(PieceIndex(p)))
                .filter(|s| s.file_index == i)
                .map(|s| u64::from(s.len))
                .sum();
            prop_assert_eq!(covered, f.length);
        }
    }
}
