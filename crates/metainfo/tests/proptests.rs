//! Property tests: the parsers never panic (arbitrary bytes, mutated torrents, arbitrary
//! bencode trees, arbitrary strings), magnet links round-trip, and whatever paths a torrent
//! claims, the parsed paths are safe and unique.

mod common;

use std::collections::HashSet;
use std::path::Component;

use bitswarm_bencode::OwnedValue;
use bitswarm_metainfo::{sanitize_component, sanitize_path, InfoHash, MagnetLink, Metainfo};
use common::{file, multi_info, torrent};
use proptest::prelude::*;

/// Path components chosen to collide and to be dangerous.
fn hostile_component() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(".".to_owned()),
        Just("..".to_owned()),
        Just("...".to_owned()),
        Just(".. ".to_owned()),
        Just("/".to_owned()),
        Just("\\".to_owned()),
        Just("C:".to_owned()),
        Just("CON".to_owned()),
        Just("con.TXT".to_owned()),
        Just("a".to_owned()),
        Just("A".to_owned()),
        Just("a.1".to_owned()),
        Just("_".to_owned()),
        Just(".pad".to_owned()),
        "[a-c./\\\\: \\x00]{0,6}",
        any::<String>(),
    ]
}

fn valid_torrent() -> impl Strategy<Value = Vec<u8>> {
    let one_file = (
        prop::collection::vec(hostile_component(), 0..4),
        0i64..3000,
        any::<bool>(),
    );
    (prop::collection::vec(one_file, 1..12), 0u32..3).prop_filter_map(
        "needs data",
        |(files, shift)| {
            let total: i64 = files.iter().map(|(_, len, _)| len).sum();
            (total > 0).then(|| {
                let files = files
                    .iter()
                    .map(|(path, len, pad)| {
                        let refs: Vec<&str> = path.iter().map(String::as_str).collect();
                        let f = file(&refs, *len);
                        if *pad {
                            f.insert("attr", OwnedValue::from("p"))
                        } else {
                            f
                        }
                    })
                    .collect();
                torrent(multi_info(b"name", files, 256 << shift))
            })
        },
    )
}

fn bencode_tree() -> impl Strategy<Value = OwnedValue> {
    let key = prop_oneof![
        Just(b"length".to_vec()),
        Just(b"path".to_vec()),
        Just(b"files".to_vec()),
        Just(b"name".to_vec()),
        Just(b"piece length".to_vec()),
        Just(b"pieces".to_vec()),
        Just(b"attr".to_vec()),
        Just(b"symlink path".to_vec()),
        prop::collection::vec(any::<u8>(), 0..6),
    ];
    let leaf = prop_oneof![
        any::<i64>().prop_map(OwnedValue::Int),
        (-2i64..70_000).prop_map(OwnedValue::Int),
        prop::collection::vec(any::<u8>(), 0..45).prop_map(OwnedValue::Bytes),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(OwnedValue::List),
            prop::collection::btree_map(key.clone(), inner, 0..7).prop_map(OwnedValue::Dict),
        ]
    })
}

fn magnet_link() -> impl Strategy<Value = MagnetLink> {
    let text = || any::<String>();
    let range = (0u32..100, 0u32..5).prop_map(|(a, d)| a..=a + d);
    let extra_key = "[a-z.]{0,6}".prop_filter("not a known key", |k| {
        let base = k.split('.').next().unwrap_or_default();
        let numbered =
            k.len() > base.len() + 1 && k[base.len() + 1..].bytes().all(|b| b.is_ascii_digit());
        let known_base = ["xt", "tr"].contains(&base) && (k.len() == base.len() || numbered);
        !known_base && !["dn", "ws", "x.pe", "xl", "so"].contains(&k.as_str())
    });
    (
        any::<[u8; 20]>(),
        prop::option::of("[0-9a-f]{64}"),
        prop::option::of(text()),
        prop::collection::vec(text(), 0..3),
        prop::collection::vec(text(), 0..3),
        prop::collection::vec(text(), 0..3),
        prop::option::of(any::<u64>()),
        prop::collection::vec(range, 0..4),
        prop::collection::vec((extra_key, text()), 0..3),
    )
        .prop_map(|(h, v2, dn, tr, ws, pe, xl, so, extra)| MagnetLink {
            info_hash: Some(InfoHash::from_bytes(h)),
            info_hash_v2: v2.map(|d| format!("1220{d}")),
            display_name: dn,
            trackers: tr,
            web_seeds: ws,
            peers: pe,
            exact_length: xl,
            select_only: so,
            extra,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn metainfo_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        let _ = Metainfo::from_bytes(&bytes);
    }

    #[test]
    fn metainfo_never_panics_on_arbitrary_bencode(info in bencode_tree(), announce in bencode_tree()) {
        let bytes = OwnedValue::dict().insert("info", info).insert("announce-list", announce).encode();
        let _ = Metainfo::from_bytes(&bytes);
    }

    #[test]
    fn metainfo_never_panics_on_mutated_torrents(
        bytes in valid_torrent(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..8),
    ) {
        let mut bytes = bytes;
        for (at, byte, op) in edits {
            let i = at.index(bytes.len().max(1)).min(bytes.len());
            match op {
                0 if i < bytes.len() => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                2 if i < bytes.len() => { bytes.remove(i); }
                _ => bytes.truncate(i),
            }
        }
        let _ = Metainfo::from_bytes(&bytes);
    }

    /// Whatever the torrent claims, parsed paths are safe, and unique case-insensitively with
    /// no file standing where another file needs a directory.
    #[test]
    fn parsed_paths_are_safe_and_unique(bytes in valid_torrent()) {
        let m = Metainfo::from_bytes(&bytes).expect("generated torrents are valid");
        let mut files = HashSet::new();
        let mut dirs = HashSet::new();
        for f in m.info.files.iter().filter(|f| !f.is_pad()) {
            let key: Vec<String> = f.path.iter().map(|c| c.to_lowercase()).collect();
            for n in 1..key.len() {
                dirs.insert(key[..n].join("/"));
            }
            prop_assert!(files.insert(key.join("/")), "duplicate {:?}", f.path);
        }
        prop_assert!(files.is_disjoint(&dirs));
        let magnet = m.magnet();
        prop_assert_eq!(MagnetLink::parse(&magnet.to_string()), Ok(magnet));
        for f in &m.info.files {
            for c in m.info.file_path(f).components() {
                prop_assert!(matches!(c, Component::Normal(_)), "{:?}", f.path);
            }
        }
    }

    #[test]
    fn sanitize_is_safe_and_idempotent(components in prop::collection::vec(hostile_component(), 0..6)) {
        let path = sanitize_path(&components);
        prop_assert!(!path.is_empty());
        for c in &path {
            prop_assert!(!c.is_empty() && c != "." && c != "..");
            prop_assert!(!c.contains(['/', '\\', ':', '\0']));
            prop_assert_eq!(sanitize_component(c), c.as_str());
        }
    }

    #[test]
    fn magnet_round_trips(link in magnet_link()) {
        let text = link.to_string();
        prop_assert_eq!(MagnetLink::parse(&text), Ok(link), "{}", text);
    }

    #[test]
    fn magnet_never_panics_on_arbitrary_strings(s in any::<String>()) {
        let _ = MagnetLink::parse(&s);
        let _ = MagnetLink::parse(&format!("magnet:?{s}"));
    }

    #[test]
    fn magnet_never_panics_on_magnet_like_strings(
        parts in prop::collection::vec(
            prop_oneof![
                Just("xt=urn:btih:".to_owned()),
                Just("xt=urn:btmh:1220".to_owned()),
                Just("&".to_owned()), Just("=".to_owned()), Just("%".to_owned()),
                Just("so=".to_owned()), Just("xl=".to_owned()), Just("tr.1=".to_owned()),
                "[0-9a-fA-F%,-]{0,40}",
            ],
            0..12,
        )
    ) {
        let _ = MagnetLink::parse(&format!("magnet:?{}", parts.concat()));
    }
}
