//! End-to-end tests of torrent creation: every piece hash checked against an independent
//! sequential SHA-1 of the data the test wrote, plus layout, options, errors and cancellation.

mod common;

use std::fs;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use bitswarm_create::{
    create_torrent, hash_pieces, scan, CreateError, CreateOptions, Progress, PIECE_LENGTH_MIN,
};
use common::{check, create, data, write_tree};

const KIB: usize = 1024;

fn opts_with_piece(piece_length: u32) -> CreateOptions {
    CreateOptions {
        piece_length: Some(piece_length),
        ..CreateOptions::default()
    }
}

/// The concatenation of the data `write_tree` wrote, in the given (expected torrent) order.
fn concat(files: &[(&str, usize)], order: &[usize]) -> Vec<u8> {
    order
        .iter()
        .flat_map(|&i| data(i as u64 + 1, files[i].1))
        .collect()
}

#[test]
fn multi_file_tree_pieces_span_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("album");
    // Written in this order; the torrent sorts them by path components as bytes.
    let files = [
        ("b/second.bin", 40_000),
        ("a.txt", 5_000),
        ("a/z", 70_001),
        ("C", 16 * KIB),
        (".hidden", 123),
        ("b/first.bin", 100_000),
    ];
    write_tree(&root, &files);
    let t = create(&root, &opts_with_piece(32 * 1024));
    // Component order: "C" < ".hidden"? No: '.' (0x2e) < 'C' (0x43) < 'a' (0x61);
    // "a" < "a.txt" (prefix first), so the directory a/ comes before the file a.txt.
    let order = [4, 3, 2, 1, 5, 0];
    let c = check(&t, &concat(&files, &order));
    assert_eq!(c.name, "album");
    let paths: Vec<String> = c.files.iter().map(|(p, _)| p.join("/")).collect();
    assert_eq!(
        paths,
        [
            ".hidden",
            "C",
            "a/z",
            "a.txt",
            "b/first.bin",
            "b/second.bin"
        ]
    );
    let lengths: Vec<u64> = c.files.iter().map(|(_, l)| *l).collect();
    assert_eq!(lengths, [123, 16384, 70_001, 5_000, 100_000, 40_000]);
    assert_eq!(t.file_count, 6);
    assert_eq!(c.piece_count, 231_508usize.div_ceil(32 * KIB));
}

#[test]
fn empty_files_are_listed_and_take_no_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        ("0-empty", 0),
        ("1-data", 20_000),
        ("2-empty", 0),
        ("3-dir/empty", 0),
        ("4-data", 30_000),
        ("5-empty", 0),
    ];
    write_tree(dir.path(), &files);
    let t = create(dir.path(), &opts_with_piece(16 * 1024));
    let c = check(&t, &concat(&files, &[0, 1, 2, 3, 4, 5]));
    let lengths: Vec<u64> = c.files.iter().map(|(_, l)| *l).collect();
    assert_eq!(lengths, [0, 20_000, 0, 0, 30_000, 0]);
    assert_eq!(c.files[3].0, ["3-dir", "empty"]);
}

#[test]
fn file_of_exactly_one_piece_and_exact_multiples() {
    let dir = tempfile::tempdir().unwrap();
    for pieces in [1usize, 2, 3] {
        let path = dir.path().join(format!("exact-{pieces}"));
        let bytes = data(7, pieces * 16 * KIB);
        fs::write(&path, &bytes).unwrap();
        let t = create(&path, &opts_with_piece(PIECE_LENGTH_MIN));
        let c = check(&t, &bytes);
        assert_eq!(c.piece_count, pieces);
        assert_eq!(c.files, [(Vec::<String>::new(), bytes.len() as u64)]);
        assert_eq!(c.name, format!("exact-{pieces}"));
    }
}

#[test]
fn single_file_uses_auto_piece_length_and_one_byte_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tail.bin");
    let bytes = data(3, 64 * KIB + 1);
    fs::write(&path, &bytes).unwrap();
    let t = create(&path, &CreateOptions::default());
    assert_eq!(t.piece_length, PIECE_LENGTH_MIN);
    assert_eq!(check(&t, &bytes).piece_count, 5);
}

#[test]
fn thread_counts_all_give_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    // Enough data for several batches of BATCH_LEN_MIN so threads really share the work.
    let files = [
        ("x", 9 * 1024 * KIB + 5),
        ("y/y", 3 * 1024 * KIB),
        ("z", 777),
    ];
    write_tree(dir.path(), &files);
    let mut outputs = Vec::new();
    for threads in [0, 1, 2, 3, 8] {
        let opts = CreateOptions {
            threads,
            ..opts_with_piece(64 * 1024)
        };
        let t = create(dir.path(), &opts);
        check(&t, &concat(&files, &[0, 1, 2]));
        outputs.push(t.bytes);
    }
    assert!(outputs.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn many_small_files() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..600).map(|i| format!("d{}/f{i:04}", i % 7)).collect();
    let files: Vec<(&str, usize)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), (i * 37) % 301))
        .collect();
    write_tree(dir.path(), &files);
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by(|&a, &b| files[a].0.cmp(files[b].0));
    let opts = CreateOptions {
        threads: 2,
        ..opts_with_piece(16 * 1024)
    };
    let t = create(dir.path(), &opts);
    let c = check(&t, &concat(&files, &order));
    assert_eq!(c.files.len(), 600);
}

#[test]
fn output_is_deterministic_without_a_date() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("a", 100_000), ("b/c", 50_000)]);
    let opts = CreateOptions {
        trackers: vec![vec!["http://t.invalid/announce".into()]],
        created_by: Some("bitswarm test".into()),
        ..CreateOptions::default()
    };
    let first = create(dir.path(), &opts);
    let second = create(dir.path(), &opts);
    assert_eq!(first, second);
}

#[test]
fn metainfo_fields_follow_the_options() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    fs::write(&path, data(1, 1000)).unwrap();
    let opts = CreateOptions {
        trackers: vec![
            vec!["http://a.invalid/ann".into(), "udp://b.invalid:80".into()],
            vec![],
            vec!["http://c.invalid/ann".into()],
        ],
        web_seeds: vec!["http://seed.invalid/f".into()],
        private: true,
        comment: Some("hello".into()),
        created_by: Some("bitswarm 0.1.0".into()),
        creation_date: Some(1_700_000_000),
        name: Some("renamed".into()),
        source: Some("SRC".into()),
        ..CreateOptions::default()
    };
    let t = create(&path, &opts);
    let root = bitswarm_bencode::decode(&t.bytes).unwrap();
    let d = root.as_dict().unwrap();
    let s = |k: &[u8]| {
        d.get(k)
            .and_then(bitswarm_bencode::Value::as_str)
            .map(str::to_owned)
    };
    assert_eq!(s(b"announce").as_deref(), Some("http://a.invalid/ann"));
    assert_eq!(s(b"comment").as_deref(), Some("hello"));
    assert_eq!(s(b"created by").as_deref(), Some("bitswarm 0.1.0"));
    assert_eq!(
        d.get(b"creation date")
            .and_then(bitswarm_bencode::Value::as_int),
        Some(1_700_000_000)
    );
    let tiers: Vec<Vec<&str>> = d
        .get(b"announce-list")
        .and_then(bitswarm_bencode::Value::as_list)
        .unwrap()
        .iter()
        .map(|t| {
            t.as_list()
                .unwrap()
                .iter()
                .map(|u| u.as_str().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(
        tiers,
        [
            vec!["http://a.invalid/ann", "udp://b.invalid:80"],
            vec!["http://c.invalid/ann"]
        ]
    );
    let seeds = d
        .get(b"url-list")
        .and_then(bitswarm_bencode::Value::as_list)
        .unwrap();
    assert_eq!(seeds[0].as_str(), Some("http://seed.invalid/f"));
    let info = d.get(b"info").unwrap().as_dict().unwrap();
    assert_eq!(
        info.get(b"private")
            .and_then(bitswarm_bencode::Value::as_int),
        Some(1)
    );
    assert_eq!(
        info.get(b"source")
            .and_then(bitswarm_bencode::Value::as_str),
        Some("SRC")
    );
    assert_eq!(
        info.get(b"name").and_then(bitswarm_bencode::Value::as_str),
        Some("renamed")
    );

    // `source` and `private` are in the info dict: they change the info-hash.
    let plain = create(&path, &CreateOptions::default());
    assert_ne!(plain.info_hash, t.info_hash);
}

#[test]
fn one_tracker_writes_no_announce_list() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    fs::write(&path, b"x").unwrap();
    let opts = CreateOptions {
        trackers: vec![vec![], vec!["http://only.invalid/a".into()]],
        ..CreateOptions::default()
    };
    let t = create(&path, &opts);
    let root = bitswarm_bencode::decode(&t.bytes).unwrap();
    let d = root.as_dict().unwrap();
    assert_eq!(
        d.get(b"announce").and_then(bitswarm_bencode::Value::as_str),
        Some("http://only.invalid/a")
    );
    assert!(d.get(b"announce-list").is_none());
    assert!(d.get(b"url-list").is_none());
    assert!(d.get(b"creation date").is_none());
}

fn create_err(root: &std::path::Path, opts: &CreateOptions) -> CreateError {
    let cancel = AtomicBool::new(false);
    create_torrent(root, opts, &|_: Progress| {}, &cancel).expect_err("should fail")
}

#[test]
fn empty_inputs_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    fs::create_dir_all(empty.join("sub/deeper")).unwrap();
    assert!(matches!(scan(&empty), Err(CreateError::EmptyInput { .. })));
    assert!(matches!(
        create_err(&empty, &CreateOptions::default()),
        CreateError::EmptyInput { .. }
    ));
    let zeros = dir.path().join("zeros");
    write_tree(&zeros, &[("a", 0), ("b/c", 0)]);
    assert_eq!(scan(&zeros).unwrap().len(), 2);
    assert!(matches!(
        create_err(&zeros, &CreateOptions::default()),
        CreateError::EmptyInput { .. }
    ));
    let missing = dir.path().join("missing");
    assert!(matches!(
        create_err(&missing, &CreateOptions::default()),
        CreateError::Io { path, .. } if path == missing
    ));
}

#[test]
fn bad_options_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    fs::write(&path, b"data").unwrap();
    for bad in [1000, 8192, 3 << 14] {
        assert!(matches!(
            create_err(&path, &opts_with_piece(bad)),
            CreateError::InvalidPieceLength { piece_length } if piece_length == bad
        ));
    }
    for bad in ["", ".", "..", "a/b", "nul\0"] {
        let opts = CreateOptions {
            name: Some(bad.into()),
            ..CreateOptions::default()
        };
        assert!(
            matches!(create_err(&path, &opts), CreateError::InvalidName { .. }),
            "{bad:?}"
        );
    }
}

#[test]
fn non_utf8_names_are_errors_naming_the_path() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("ok"), b"1").unwrap();
    let bad = dir.path().join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
    fs::write(&bad, b"2").unwrap();
    assert!(matches!(scan(dir.path()), Err(CreateError::NonUtf8Path { path }) if path == bad));
}

#[test]
fn symlinks_are_followed_loops_and_broken_links_are_errors() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside.bin");
    fs::write(&outside, data(9, 5000)).unwrap();
    let root = dir.path().join("root");
    write_tree(&root, &[("real", 3000)]);
    symlink(&outside, root.join("link")).unwrap();
    let files = scan(&root).unwrap();
    let names: Vec<_> = files.iter().map(|f| f.torrent_path.join("/")).collect();
    assert_eq!(names, ["link", "real"]);
    assert_eq!(files[0].length, 5000);
    let t = create(&root, &CreateOptions::default());
    let expected: Vec<u8> = data(9, 5000).into_iter().chain(data(1, 3000)).collect();
    check(&t, &expected);

    symlink(&root, root.join("sub-loop")).unwrap();
    assert!(matches!(scan(&root), Err(CreateError::SymlinkLoop { .. })));
    fs::remove_file(root.join("sub-loop")).unwrap();

    let broken = root.join("broken");
    symlink(dir.path().join("nowhere"), &broken).unwrap();
    assert!(matches!(scan(&root), Err(CreateError::Io { path, .. }) if path == broken));
}

#[test]
fn fifos_are_errors_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a"), b"1").unwrap();
    let fifo = dir.path().join("pipe");
    let status = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "mkfifo (coreutils) is needed for this test"
    );
    assert!(matches!(scan(dir.path()), Err(CreateError::NotRegularFile { path }) if path == fifo));
}

#[test]
fn a_file_that_changes_size_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("a", 50_000), ("b", 50_000)]);
    let files = scan(dir.path()).unwrap();
    let cancel = AtomicBool::new(false);
    for new_len in [49_999u64, 50_001] {
        fs::File::options()
            .write(true)
            .open(dir.path().join("b"))
            .unwrap()
            .set_len(new_len)
            .unwrap();
        let err = hash_pieces(&files, 16 * 1024, 2, &|_: Progress| {}, &cancel).unwrap_err();
        assert!(matches!(err, CreateError::FileChanged { path } if path.ends_with("b")));
    }
}

#[test]
fn cancel_before_start_returns_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("a", 100_000)]);
    let cancel = AtomicBool::new(true);
    let err = create_torrent(
        dir.path(),
        &CreateOptions::default(),
        &|_: Progress| {},
        &cancel,
    );
    assert!(matches!(err, Err(CreateError::Cancelled)));
}

#[test]
fn cancel_from_progress_stops_midway() {
    // A 1 GiB sparse file on one thread takes far longer than the first progress report
    // (100 ms) on any machine; the callback cancels at the first report.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparse");
    fs::File::create(&path).unwrap().set_len(1 << 30).unwrap();
    let cancel = AtomicBool::new(false);
    let last = AtomicU64::new(0);
    let reports = Mutex::new(Vec::new());
    let on_progress = |p: Progress| {
        last.store(p.bytes_hashed, Ordering::Relaxed);
        reports.lock().unwrap().push(p);
        cancel.store(true, Ordering::Relaxed);
    };
    let opts = CreateOptions {
        threads: 1,
        ..CreateOptions::default()
    };
    let err = create_torrent(&path, &opts, &on_progress, &cancel);
    assert!(matches!(err, Err(CreateError::Cancelled)));
    assert!(
        last.load(Ordering::Relaxed) < 1 << 30,
        "stopped before the end"
    );
    assert!(reports.lock().unwrap().iter().all(|p| p.total == 1 << 30));
}

#[test]
fn progress_is_monotonic_and_ends_at_total() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("a", 3_000_000), ("b", 1_000_000)]);
    let reports = Mutex::new(Vec::new());
    let cancel = AtomicBool::new(false);
    let t = create_torrent(
        dir.path(),
        &CreateOptions::default(),
        &|p: Progress| reports.lock().unwrap().push(p),
        &cancel,
    )
    .unwrap();
    let reports = reports.into_inner().unwrap();
    assert!(reports
        .windows(2)
        .all(|w| w[0].bytes_hashed <= w[1].bytes_hashed));
    assert_eq!(
        reports.last().copied(),
        Some(Progress {
            bytes_hashed: t.total_length,
            total: t.total_length
        })
    );
}

#[test]
fn map_window_and_pread_boundaries() {
    use bitswarm_create::{MAP_LEN_MIN, MAP_WINDOW_LEN};
    let dir = tempfile::tempdir().unwrap();
    // One 16 MiB piece spans: a full map window plus a mapped tail, a tail just under the
    // map threshold (read), and files exactly at and just under the threshold.
    let files = [
        ("a", MAP_WINDOW_LEN + MAP_LEN_MIN + 1),
        ("b", MAP_WINDOW_LEN + MAP_LEN_MIN - 1),
        ("c", MAP_LEN_MIN),
        ("d", MAP_LEN_MIN - 1),
    ];
    write_tree(dir.path(), &files);
    for piece_length in [16 << 20, 1 << 20] {
        let t = create(dir.path(), &opts_with_piece(piece_length));
        check(&t, &concat(&files, &[0, 1, 2, 3]));
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    /// Any layout of file sizes (around the map threshold too), piece length and thread count
    /// hashes like the sequential reference.
    #[test]
    fn any_layout_hashes_like_the_reference(
        sizes in proptest::collection::vec(
            proptest::prop_oneof![
                0usize..3,
                0usize..70_000,
                (256 * KIB - 2)..(256 * KIB + 2),
                0usize..700_000,
            ],
            1..12,
        ),
        piece_exp in 14u32..21,
        threads in 0usize..5,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = (0..sizes.len()).map(|i| format!("f{i:02}")).collect();
        let files: Vec<(&str, usize)> = names.iter().map(String::as_str).zip(sizes.iter().copied()).collect();
        write_tree(dir.path(), &files);
        let order: Vec<usize> = (0..files.len()).collect();
        let expected = concat(&files, &order);
        let opts = CreateOptions { threads, ..opts_with_piece(1 << piece_exp) };
        let cancel = AtomicBool::new(false);
        match create_torrent(dir.path(), &opts, &|_: Progress| {}, &cancel) {
            Ok(t) => { check(&t, &expected); }
            Err(CreateError::EmptyInput { .. }) => proptest::prop_assert!(expected.is_empty()),
            Err(e) => proptest::prop_assert!(false, "unexpected error {e}"),
        }
    }
}

#[test]
fn hash_pieces_rejects_a_zero_piece_length() {
    // Regression guard: a zero piece length once meant a piece that never ends.
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("a", 10)]);
    let files = scan(dir.path()).unwrap();
    let cancel = AtomicBool::new(false);
    let err = hash_pieces(&files, 0, 1, &|_: Progress| {}, &cancel).unwrap_err();
    assert!(matches!(
        err,
        CreateError::InvalidPieceLength { piece_length: 0 }
    ));
}
