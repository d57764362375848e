//! Parsing `.torrent` files: the fields kept, the validation errors (asserted by variant) and
//! the warnings for what is tolerated.

mod common;

use bitswarm_bencode::OwnedValue;
use bitswarm_metainfo::{Info, InfoHash, Metainfo, MetainfoError, Warning, PIECE_LENGTH_MAX};
use common::{file, multi_info, pieces_for, single_info, torrent, with};

fn s(v: &str) -> OwnedValue {
    OwnedValue::from(v)
}

fn list(items: &[&str]) -> OwnedValue {
    OwnedValue::List(items.iter().map(|i| s(i)).collect())
}

fn parse_err(info: OwnedValue) -> MetainfoError {
    Metainfo::from_bytes(&torrent(info)).expect_err("must be rejected")
}

#[test]
fn single_file_fields() {
    let info = with(
        single_info(b"ubuntu.iso", 100_000, 32768),
        "private",
        OwnedValue::Int(1),
    );
    let info = with(info, "source", s("TRK"));
    let bytes = OwnedValue::dict()
        .insert("announce", s("http://a/announce"))
        .insert("comment", s("hello"))
        .insert("created by", s("mktorrent 1.1"))
        .insert("creation date", OwnedValue::Int(1_700_000_000))
        .insert("url-list", s("http://mirror/ubuntu.iso"))
        .insert("info", info.clone())
        .encode();
    let m = Metainfo::from_bytes(&bytes).unwrap();
    assert_eq!(m.info_raw, info.encode());
    assert_eq!(m.info_hash, InfoHash::of_info(&info.encode()));
    assert_eq!(m.info.name, "ubuntu.iso");
    assert!(!m.info.multi_file && m.info.private);
    assert_eq!(m.info.source.as_deref(), Some("TRK"));
    assert_eq!(m.info.total_length(), 100_000);
    assert_eq!(m.info.piece_count(), 4);
    assert_eq!(m.info.files.len(), 1);
    assert_eq!(m.info.files[0].path, ["ubuntu.iso"]);
    assert_eq!(m.announce.as_deref(), Some("http://a/announce"));
    assert_eq!(m.tracker_tiers(), [["http://a/announce"]]);
    assert_eq!(m.web_seeds, ["http://mirror/ubuntu.iso"]);
    assert_eq!(m.comment.as_deref(), Some("hello"));
    assert_eq!(m.created_by.as_deref(), Some("mktorrent 1.1"));
    assert_eq!(m.creation_date, Some(1_700_000_000));
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
}

#[test]
fn announce_list_tiers_win_over_announce() {
    let bytes = OwnedValue::dict()
        .insert("announce", s("http://a/"))
        .insert(
            "announce-list",
            OwnedValue::List(vec![
                list(&["http://b/", "udp://c:80"]),
                list(&[]),
                list(&["", "http://d/"]),
            ]),
        )
        .insert("url-list", list(&["http://w1/", "http://w2/"]))
        .insert("info", single_info(b"x", 10, 16384))
        .encode();
    let m = Metainfo::from_bytes(&bytes).unwrap();
    let tiers = vec![vec!["http://b/", "udp://c:80"], vec!["http://d/"]];
    assert_eq!(m.announce_list, tiers);
    assert_eq!(m.tracker_tiers(), tiers);
    assert_eq!(m.web_seeds, ["http://w1/", "http://w2/"]);
    let magnet = m.magnet();
    assert_eq!(magnet.info_hash, Some(m.info_hash));
    assert_eq!(magnet.display_name.as_deref(), Some("x"));
    assert_eq!(magnet.trackers, ["http://b/", "udp://c:80", "http://d/"]);
    assert_eq!(magnet.web_seeds, ["http://w1/", "http://w2/"]);
}

#[test]
fn no_trackers_at_all() {
    let bytes = OwnedValue::dict()
        .insert("info", single_info(b"x", 1, 16384))
        .encode();
    let m = Metainfo::from_bytes(&bytes).unwrap();
    assert!(m.tracker_tiers().is_empty());
    assert_eq!(
        m.magnet().to_string(),
        format!("magnet:?xt=urn:btih:{}&dn=x", m.info_hash)
    );
}

#[test]
fn multi_file_layout_and_attrs() {
    let files = vec![
        with(file(&["bin", "run.sh"], 100), "attr", s("xh")),
        with(file(&[".pad", "16284"], 16284), "attr", s("p")),
        file(&["data", "b.bin"], 20000),
    ];
    let m = Metainfo::from_bytes(&torrent(multi_info(b"dir", files, 16384))).unwrap();
    let i = &m.info;
    assert!(i.multi_file);
    assert_eq!(i.total_length(), 36384);
    assert_eq!(i.total_length_without_pad(), 20100);
    assert_eq!(i.files[0].offset, 0);
    assert_eq!(i.files[1].offset, 100);
    assert_eq!(i.files[2].offset, 16384);
    assert!(i.files[0].attr.executable && i.files[0].attr.hidden && !i.files[0].is_pad());
    assert!(i.files[1].is_pad());
    assert_eq!(
        i.file_path(&i.files[2]),
        std::path::Path::new("dir/data/b.bin")
    );
}

#[test]
fn utf8_variants_preferred_when_valid() {
    let f = with(
        file(&["ascii"], 5),
        "path.utf-8",
        list(&["dossier", "été.txt"]),
    );
    let info = with(
        multi_info(b"latin1 \xe9t\xe9", vec![f], 16384),
        "name.utf-8",
        s("été"),
    );
    let m = Metainfo::from_bytes(&torrent(info)).unwrap();
    assert_eq!(m.info.name, "été");
    assert_eq!(m.info.files[0].path, ["dossier", "été.txt"]);
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
}

#[test]
fn invalid_utf8_name_is_replaced_with_a_warning() {
    let m = Metainfo::from_bytes(&torrent(single_info(b"caf\xe9", 1, 16384))).unwrap();
    assert_eq!(m.info.name, "caf\u{fffd}");
    assert!(m
        .warnings
        .contains(&Warning::InvalidUtf8 { field: "info.name" }));
    let bad_variant = with(
        single_info(b"cafe", 1, 16384),
        "name.utf-8",
        OwnedValue::bytes(&b"\xff"[..]),
    );
    let m = Metainfo::from_bytes(&torrent(bad_variant)).unwrap();
    assert_eq!(m.info.name, "cafe");
    assert!(m.warnings.iter().any(|w| matches!(
        w,
        Warning::FieldIgnored {
            field: "name.utf-8",
            ..
        }
    )));
}

/// The info-hash covers the bytes as received, even unsorted and with a duplicate key.
#[test]
fn non_canonical_info_hashes_the_received_bytes() {
    let info: &[u8] =
        b"d6:lengthi5e4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaa4:name1:ye";
    let mut bytes = b"d4:info".to_vec();
    bytes.extend_from_slice(info);
    bytes.push(b'e');
    let m = Metainfo::from_bytes(&bytes).unwrap();
    assert_eq!(m.info_raw, info);
    assert_eq!(m.info_hash, InfoHash::of_info(info));
    assert_eq!(m.info.name, "x", "the first of two `name` keys wins");
    assert!(m.warnings.contains(&Warning::NonCanonicalInfo {
        duplicate_keys: true
    }));
    let (bare, warnings) = Info::from_bytes(info).unwrap();
    assert_eq!(bare, m.info);
    assert_eq!(warnings, m.warnings);

    let unsorted: &[u8] =
        b"d4:name1:x6:lengthi5e12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
    let (_, warnings) = Info::from_bytes(unsorted).unwrap();
    assert_eq!(
        warnings,
        [Warning::NonCanonicalInfo {
            duplicate_keys: false
        }]
    );
}

#[test]
fn piece_length_bounds() {
    for bad in [0, -16384, i64::from(PIECE_LENGTH_MAX) + 1, i64::MAX] {
        let info = with(
            single_info(b"x", 1, 16384),
            "piece length",
            OwnedValue::Int(bad),
        );
        assert_eq!(
            parse_err(info),
            MetainfoError::InvalidPieceLength {
                piece_length: bad,
                max: PIECE_LENGTH_MAX
            }
        );
    }
    let m = Metainfo::from_bytes(&torrent(single_info(b"x", 100_000, 49152))).unwrap();
    assert_eq!(
        m.warnings,
        [Warning::PieceLengthNotPowerOfTwo {
            piece_length: 49152
        }]
    );
    let m = Metainfo::from_bytes(&torrent(single_info(b"x", 5000, 1024))).unwrap();
    assert_eq!(
        m.warnings,
        [Warning::PieceLengthUnusual { piece_length: 1024 }]
    );
    let m = Metainfo::from_bytes(&torrent(single_info(b"x", 1 << 30, 512 << 20))).unwrap();
    assert_eq!(
        m.warnings,
        [Warning::PieceLengthUnusual {
            piece_length: 512 << 20
        }]
    );
}

#[test]
fn pieces_must_match_the_length() {
    let info = with(
        single_info(b"x", 40000, 16384),
        "pieces",
        OwnedValue::bytes(vec![0; 41]),
    );
    assert_eq!(
        parse_err(info),
        MetainfoError::PiecesNotMultipleOf20 { len: 41 }
    );
    let info = with(
        single_info(b"x", 40000, 16384),
        "pieces",
        pieces_for(16384, 16384),
    );
    assert_eq!(
        parse_err(info),
        MetainfoError::LengthMismatch {
            total_length: 40000,
            piece_length: 16384,
            expected_pieces: 3,
            actual_pieces: 1
        }
    );
    let info = with(
        single_info(b"x", 40000, 16384),
        "pieces",
        pieces_for(100_000, 16384),
    );
    assert!(matches!(
        parse_err(info),
        MetainfoError::LengthMismatch {
            actual_pieces: 7,
            ..
        }
    ));
}

#[test]
fn lengths_are_checked() {
    let info = with(single_info(b"x", 1, 16384), "length", OwnedValue::Int(-1));
    assert_eq!(
        parse_err(info),
        MetainfoError::NegativeLength {
            field: "info.length",
            value: -1
        }
    );
    let files = vec![file(&["a"], 1), file(&["b"], -5)];
    assert_eq!(
        parse_err(multi_info(b"d", files, 16384)),
        MetainfoError::NegativeLength {
            field: "info.files[].length",
            value: -5
        }
    );
    let files = vec![
        file(&["a"], i64::MAX),
        file(&["b"], i64::MAX),
        file(&["c"], 2),
    ];
    let info = with(
        multi_info(b"d", vec![], 16384),
        "files",
        OwnedValue::List(files),
    );
    assert_eq!(parse_err(info), MetainfoError::TotalLengthOverflow);
}

#[test]
fn empty_and_ambiguous_layouts() {
    assert_eq!(
        parse_err(multi_info(b"d", vec![], 16384)),
        MetainfoError::EmptyTorrent
    );
    assert_eq!(
        parse_err(multi_info(
            b"d",
            vec![file(&["a"], 0), file(&["b"], 0)],
            16384
        )),
        MetainfoError::EmptyTorrent
    );
    let both = with(
        single_info(b"x", 1, 16384),
        "files",
        OwnedValue::List(vec![file(&["a"], 1)]),
    );
    assert_eq!(parse_err(both), MetainfoError::AmbiguousLayout);
    let neither = OwnedValue::dict()
        .insert("name", s("x"))
        .insert("piece length", OwnedValue::Int(16384))
        .insert("pieces", pieces_for(1, 16384));
    assert_eq!(
        parse_err(neither),
        MetainfoError::MissingField {
            field: "info.length or info.files"
        }
    );
}

#[test]
fn missing_and_mistyped_fields() {
    let no_info = OwnedValue::dict().insert("announce", s("x")).encode();
    assert_eq!(
        Metainfo::from_bytes(&no_info),
        Err(MetainfoError::MissingField { field: "info" })
    );
    assert_eq!(
        Metainfo::from_bytes(b"li1ee"),
        Err(MetainfoError::WrongType {
            field: "(root)",
            expected: "a dictionary"
        })
    );
    assert!(matches!(
        Metainfo::from_bytes(b"d4:info"),
        Err(MetainfoError::Bencode(_))
    ));
    let info = with(single_info(b"x", 1, 16384), "piece length", s("16384"));
    assert_eq!(
        parse_err(info),
        MetainfoError::WrongType {
            field: "info.piece length",
            expected: "an integer"
        }
    );
    let info = with(single_info(b"x", 1, 16384), "name", OwnedValue::Int(3));
    assert_eq!(
        parse_err(info),
        MetainfoError::WrongType {
            field: "info.name",
            expected: "a byte string"
        }
    );
    let files = vec![OwnedValue::dict().insert("length", OwnedValue::Int(1))];
    assert_eq!(
        parse_err(multi_info(b"d", files, 16384)),
        MetainfoError::MissingField {
            field: "info.files[].path"
        }
    );
    let files = vec![file(&["a"], 1).insert("path", s("a"))];
    assert!(matches!(
        parse_err(multi_info(b"d", files, 16384)),
        MetainfoError::WrongType {
            field: "info.files[].path",
            ..
        }
    ));
}

#[test]
fn v2_only_is_recognised() {
    let info = OwnedValue::dict()
        .insert("meta version", OwnedValue::Int(2))
        .insert("name", s("x"))
        .insert("piece length", OwnedValue::Int(16384))
        .insert("file tree", OwnedValue::dict());
    assert_eq!(parse_err(info), MetainfoError::V2OnlyUnsupported);
}

#[test]
fn odd_optional_fields_are_ignored_with_warnings() {
    let bytes = OwnedValue::dict()
        .insert("announce", OwnedValue::Int(5))
        .insert("announce-list", OwnedValue::List(vec![s("http://flat/")]))
        .insert("url-list", OwnedValue::Int(1))
        .insert("creation date", s("yesterday"))
        .insert(
            "nodes",
            OwnedValue::List(vec![
                OwnedValue::List(vec![s("router.example"), OwnedValue::Int(6881)]),
                OwnedValue::List(vec![s("bad"), OwnedValue::Int(70000)]),
            ]),
        )
        .insert(
            "info",
            with(single_info(b"x", 1, 16384), "private", OwnedValue::Int(2)),
        )
        .encode();
    let m = Metainfo::from_bytes(&bytes).unwrap();
    assert_eq!(m.announce, None);
    assert_eq!(m.announce_list, [["http://flat/"]]);
    assert!(m.web_seeds.is_empty());
    assert_eq!(m.creation_date, None);
    assert_eq!(m.nodes, [("router.example".to_owned(), 6881)]);
    assert!(m.info.private, "any non-zero `private` is honoured");
    let ignored: Vec<&str> = m
        .warnings
        .iter()
        .filter_map(|w| match w {
            Warning::FieldIgnored { field, .. } => Some(*field),
            _ => None,
        })
        .collect();
    for field in [
        "private",
        "announce",
        "announce-list",
        "url-list",
        "nodes",
        "creation date",
    ] {
        assert!(
            ignored.contains(&field),
            "{field} not reported in {ignored:?}"
        );
    }
}

#[test]
fn repeated_info_key_is_reported() {
    let info = single_info(b"x", 1, 16384).encode();
    let other = single_info(b"y", 1, 16384).encode();
    let mut bytes = b"d4:info".to_vec();
    bytes.extend_from_slice(&info);
    bytes.extend_from_slice(b"4:info");
    bytes.extend_from_slice(&other);
    bytes.push(b'e');
    let m = Metainfo::from_bytes(&bytes).unwrap();
    assert_eq!(m.info.name, "x");
    assert_eq!(m.info_hash, InfoHash::of_info(&info));
    assert!(m
        .warnings
        .iter()
        .any(|w| matches!(w, Warning::FieldIgnored { field: "info", .. })));
}

#[test]
fn warnings_display_something_readable() {
    let w = Warning::PathSanitised {
        file_index: Some(3),
        original: "../x".into(),
        sanitised: "x".into(),
    };
    assert_eq!(
        w.to_string(),
        r#"file 3: unsafe path "../x" sanitised to "x""#
    );
}
