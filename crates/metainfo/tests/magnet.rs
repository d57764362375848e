//! Magnet links: parsing real-world shapes, typed errors, and emitting links that parse back.

use bitswarm_metainfo::{InfoHash, MagnetLink, MetainfoError, MAGNET_LEN_MAX, MAGNET_PARAMS_MAX};

const HEX: &str = "c9e15763f722f23e98a29decdfae341b98d53056";
const V2: &str = "1220caf1e1c30e81cb361b9ee167c4aa64228a7fa4fa9f6105232b28ad099f3a302e";

fn parse(s: &str) -> MagnetLink {
    MagnetLink::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn bep9_shape_with_everything() {
    let m = parse(&format!(
        "magnet:?xt=urn:btih:{HEX}&dn=Cosmos+Laundromat%20(2015)&tr=udp%3A%2F%2Ftracker.example%3A1337\
         &tr=http://t2.example/announce&ws=https%3A%2F%2Fseed.example%2Fc&x.pe=10.0.0.1:6881\
         &x.pe=%5B::1%5D:6881&xl=1234567&so=0,2,4-6&kt=cosmos+film"
    ));
    assert_eq!(m.info_hash, Some(InfoHash::from_hex(HEX).unwrap()));
    assert_eq!(m.display_name.as_deref(), Some("Cosmos Laundromat (2015)"));
    assert_eq!(
        m.trackers,
        ["udp://tracker.example:1337", "http://t2.example/announce"]
    );
    assert_eq!(m.web_seeds, ["https://seed.example/c"]);
    assert_eq!(m.peers, ["10.0.0.1:6881", "[::1]:6881"]);
    assert_eq!(m.exact_length, Some(1_234_567));
    assert_eq!(m.select_only, [0..=0, 2..=2, 4..=6]);
    assert!(m.selects(5) && !m.selects(3));
    assert_eq!(m.extra, [("kt".to_owned(), "cosmos film".to_owned())]);
    assert_eq!(MagnetLink::parse(&m.to_string()), Ok(m));
}

#[test]
fn base32_and_uppercase_hex() {
    let h = InfoHash::from_hex(HEX).unwrap();
    let b32 = parse(&format!("magnet:?xt=urn:btih:{}", h.to_base32()));
    assert_eq!(b32.info_hash, Some(h));
    let upper = parse(&format!("MAGNET:?xt=URN:BTIH:{}", HEX.to_uppercase()));
    assert_eq!(upper.info_hash, Some(h));
    assert_eq!(upper.to_string(), format!("magnet:?xt=urn:btih:{HEX}"));
}

#[test]
fn numbered_tracker_keys_in_order() {
    let m = parse(&format!(
        "magnet:?tr.1=http://a/&xt=urn:btih:{HEX}&tr.2=http://b/&tr=http://c/"
    ));
    assert_eq!(m.trackers, ["http://a/", "http://b/", "http://c/"]);
    assert_eq!(
        m.to_string(),
        format!("magnet:?xt=urn:btih:{HEX}&tr=http://a/&tr=http://b/&tr=http://c/")
    );
}

#[test]
fn hybrid_keeps_both_hashes() {
    let m = parse(&format!("magnet:?xt=urn:btih:{HEX}&xt=urn:btmh:{V2}&dn=x"));
    assert_eq!(m.info_hash_v2.as_deref(), Some(V2));
    assert!(m.to_string().contains(&format!("xt=urn:btmh:{V2}")));
    assert_eq!(MagnetLink::parse(&m.to_string()), Ok(m));
}

#[test]
fn v2_only_is_recognised_not_garbage() {
    assert_eq!(
        MagnetLink::parse(&format!("magnet:?xt=urn:btmh:{V2}&dn=x")),
        Err(MetainfoError::MagnetV2Unsupported)
    );
    assert_eq!(
        MagnetLink::parse("magnet:?xt=urn:btmh:1220abc"),
        Err(MetainfoError::MagnetInvalidV2Hash)
    );
}

#[test]
fn unknown_xt_and_repeats_go_to_extra() {
    let other = "d".repeat(40);
    let m = parse(&format!(
        "magnet:?xt=urn:ed2k:abc&xt=urn:btih:{HEX}&xt=urn:btih:{HEX}&xt.2=urn:btih:{other}&dn=a&dn=b&xl=1&xl=2"
    ));
    assert_eq!(m.info_hash, Some(InfoHash::from_hex(HEX).unwrap()));
    assert_eq!(
        m.extra,
        [
            ("xt".into(), "urn:ed2k:abc".into()),
            ("xt.2".into(), format!("urn:btih:{other}")),
            ("dn".into(), "b".into()),
            ("xl".into(), "2".into()),
        ]
    );
    assert_eq!(MagnetLink::parse(&m.to_string()), Ok(m));
}

#[test]
fn typed_errors() {
    use MetainfoError as E;
    let cases: Vec<(String, MetainfoError)> = vec![
        ("http://example.com/?xt=1".into(), E::MagnetNotMagnet),
        ("magnet:".into(), E::MagnetNotMagnet),
        ("magnet:?dn=x&tr=http://t/".into(), E::MagnetNoInfoHash),
        (
            "magnet:?xt=urn:btih:1234".into(),
            E::InvalidInfoHashLength { len: 4 },
        ),
        (
            format!("magnet:?xt=urn:btih:{}", "g".repeat(40)),
            E::InvalidHex,
        ),
        (
            format!("magnet:?xt=urn:btih:{}", "1".repeat(32)),
            E::InvalidBase32,
        ),
        (
            format!("magnet:?xt=urn:btih:{HEX}&dn=%4"),
            E::MagnetBadPercentEncoding { offset: 64 },
        ),
        (
            format!("magnet:?xt=urn:btih:{HEX}&dn=%zz"),
            E::MagnetBadPercentEncoding { offset: 64 },
        ),
        (
            format!("magnet:?xt=urn:btih:{HEX}&dn=%ff"),
            E::MagnetInvalidUtf8 { key: "dn".into() },
        ),
        (
            format!("magnet:?xt=urn:btih:{HEX}&xl=-1"),
            E::MagnetInvalidNumber { key: "xl" },
        ),
        (
            format!("magnet:?xt=urn:btih:{HEX}&xl=99999999999999999999"),
            E::MagnetInvalidNumber { key: "xl" },
        ),
        (
            format!("magnet:?xt=urn:btih:{HEX}&so=3-1"),
            E::MagnetInvalidSelectOnly,
        ),
        (
            format!("magnet:?xt=urn:btih:{HEX}&so=1,,2"),
            E::MagnetInvalidSelectOnly,
        ),
        (
            format!("magnet:?xt=urn:btih:{HEX}&so=a"),
            E::MagnetInvalidSelectOnly,
        ),
    ];
    for (link, expected) in cases {
        assert_eq!(MagnetLink::parse(&link), Err(expected), "{link}");
    }
}

#[test]
fn bounded_length_and_params() {
    let long = format!(
        "magnet:?xt=urn:btih:{HEX}&dn={}",
        "a".repeat(MAGNET_LEN_MAX)
    );
    assert!(matches!(
        MagnetLink::parse(&long),
        Err(MetainfoError::MagnetTooLong { .. })
    ));
    let many = format!(
        "magnet:?xt=urn:btih:{HEX}{}",
        "&k=v".repeat(MAGNET_PARAMS_MAX)
    );
    assert_eq!(
        MagnetLink::parse(&many),
        Err(MetainfoError::MagnetTooManyParams {
            max: MAGNET_PARAMS_MAX
        })
    );
    let just_enough = format!(
        "magnet:?xt=urn:btih:{HEX}{}",
        "&k=v".repeat(MAGNET_PARAMS_MAX - 1)
    );
    assert_eq!(parse(&just_enough).extra.len(), MAGNET_PARAMS_MAX - 1);
}

#[test]
fn emitting_escapes_what_needs_it() {
    let mut m = MagnetLink::new(InfoHash::from_hex(HEX).unwrap());
    m.display_name = Some("a b&c=d+e%f#g;h/é".into());
    m.trackers
        .push("udp://t.example:80/announce?k=1&x=2".into());
    m.extra.push(("x=y".into(), String::new()));
    let s = m.to_string();
    assert_eq!(
        s,
        format!(
            "magnet:?xt=urn:btih:{HEX}&dn=a%20b%26c%3Dd%2Be%25f%23g%3Bh/%C3%A9\
             &tr=udp://t.example:80/announce?k%3D1%26x%3D2&x%3Dy="
        )
    );
    assert_eq!(MagnetLink::parse(&s), Ok(m));
}

#[test]
fn whitespace_and_empty_params_are_tolerated() {
    let m = parse(&format!("  magnet:?&&xt=urn:btih:{HEX}&&flag&\n"));
    assert_eq!(m.extra, [("flag".to_owned(), String::new())]);
    assert_eq!(MagnetLink::parse(&m.to_string()), Ok(m));
}

/// A torrent with more trackers than a magnet link may hold still gives a link that parses.
#[test]
fn torrent_magnet_stays_within_bounds() {
    use bitswarm_bencode::OwnedValue;
    let tiers: Vec<OwnedValue> = (0..3000)
        .map(|i| {
            OwnedValue::List(vec![OwnedValue::from(format!(
                "http://t{i}.example/announce"
            ))])
        })
        .collect();
    let info = OwnedValue::dict()
        .insert("name", OwnedValue::from("x"))
        .insert("piece length", OwnedValue::Int(16384))
        .insert("pieces", OwnedValue::bytes(vec![0; 20]))
        .insert("length", OwnedValue::Int(1));
    let bytes = OwnedValue::dict()
        .insert("announce-list", OwnedValue::List(tiers))
        .insert("url-list", OwnedValue::from("http://seed/"))
        .insert("info", info)
        .encode();
    let m = bitswarm_metainfo::Metainfo::from_bytes(&bytes).unwrap();
    let link = m.magnet();
    assert!(link.trackers.len() > 100 && link.trackers.len() < 3000);
    assert_eq!(link.trackers[0], "http://t0.example/announce");
    let text = link.to_string();
    assert!(text.len() <= MAGNET_LEN_MAX);
    assert_eq!(MagnetLink::parse(&text), Ok(link));
}
