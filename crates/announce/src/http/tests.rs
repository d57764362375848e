//! HTTP/1.1 framing against hand-written responses and the chunked example everyone uses,
//! plus the "never panics, never mis-frames a prefix" properties.

use bitswarm_tracker::client::url::TrackerUrl;
use proptest::prelude::*;

use super::framing::{
    decode_chunked, parse_head, request, BodyKind, Head, BODY_LEN_MAX, HEADERS_MAX, HEAD_LEN_MAX,
};
use crate::error::AnnounceError;

#[test]
fn request_bytes() {
    let url = TrackerUrl::parse("http://T.example:8080/announce?x=%01").unwrap();
    assert_eq!(
        request(&url, "bitswarm/0.1"),
        b"GET /announce?x=%01 HTTP/1.1\r\nHost: t.example:8080\r\nUser-Agent: bitswarm/0.1\r\n\
Accept-Encoding: identity\r\nConnection: close\r\n\r\n"
    );
    let url = TrackerUrl::parse("https://[2001:db8::1]/a").unwrap();
    assert!(String::from_utf8(request(&url, "x"))
        .unwrap()
        .contains("\r\nHost: [2001:db8::1]\r\n"));
}

#[test]
fn heads() {
    let raw =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nd5:peers0:eX";
    for cut in 0..raw.len() - 14 {
        assert_eq!(
            parse_head(&raw[..cut]).unwrap(),
            None,
            "prefix of {cut} bytes"
        );
    }
    let head = parse_head(raw).unwrap().unwrap();
    assert_eq!(
        head,
        Head {
            status: 200,
            body: BodyKind::Length(12),
            location: None,
            len: raw.len() - 12
        }
    );
    let chunked =
        parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\nContent-Length: 3\r\n\r\n");
    assert_eq!(chunked.unwrap().unwrap().body, BodyKind::Chunked);
    let close = parse_head(b"HTTP/1.0 200 OK\nServer: old\n\nbody")
        .unwrap()
        .unwrap();
    assert_eq!((close.body, close.len), (BodyKind::UntilClose, 29));
    let redirect =
        parse_head(b"HTTP/1.1 302 Found\r\nLocation:  /new?a=b \r\nContent-Length: 0\r\n\r\n");
    let redirect = redirect.unwrap().unwrap();
    assert_eq!(
        (redirect.status, redirect.location.as_deref()),
        (302, Some("/new?a=b"))
    );
    let empty = parse_head(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(empty.unwrap().unwrap().body, BodyKind::Empty);
}

#[test]
fn malformed_heads() {
    let err = |raw: &[u8]| parse_head(raw).unwrap_err();
    assert!(matches!(
        err(b"HTTP/2 200 OK\r\n\r\n"),
        AnnounceError::StatusLine
    ));
    assert!(matches!(
        err(b"HTTP/1.1 20 OK\r\n\r\n"),
        AnnounceError::StatusLine
    ));
    assert!(matches!(
        err(b"HTTP/1.1 2x0 OK\r\n\r\n"),
        AnnounceError::StatusLine
    ));
    assert!(matches!(err(b"<html>\r\n\r\n"), AnnounceError::StatusLine));
    assert!(matches!(
        err(b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n"),
        AnnounceError::HeaderLine
    ));
    assert!(matches!(
        err(b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n"),
        AnnounceError::HeaderLine
    ));
    assert!(matches!(
        err(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
        AnnounceError::ContentLength
    ));
    assert!(matches!(
        err(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
        AnnounceError::ContentLength
    ));
    assert!(matches!(
        err(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
        AnnounceError::TransferEncoding
    ));
    let big = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
        BODY_LEN_MAX + 1
    );
    assert!(matches!(
        err(big.as_bytes()),
        AnnounceError::BodyTooLarge(_)
    ));
    let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..=HEADERS_MAX {
        many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert!(matches!(
        err(&many),
        AnnounceError::TooManyHeaders(HEADERS_MAX)
    ));
    let long = vec![b'a'; HEAD_LEN_MAX + 1];
    assert!(matches!(
        err(&long),
        AnnounceError::HeadTooLarge(HEAD_LEN_MAX)
    ));
}

/// The chunked example of the HTTP literature (Wikipedia's), with an extension and a trailer.
const WIKI: &[u8] =
    b"4\r\nWiki\r\n7;ext=1\r\npedia i\r\nB\r\nn \r\nchunks.\r\n0\r\nExpires: never\r\n\r\n";

#[test]
fn chunked_bodies() {
    assert_eq!(
        decode_chunked(WIKI, 100).unwrap().as_deref(),
        Some(&b"Wikipedia in \r\nchunks."[..])
    );
    for cut in 0..WIKI.len() {
        assert_eq!(
            decode_chunked(&WIKI[..cut], 100).unwrap(),
            None,
            "prefix of {cut}"
        );
    }
    assert!(matches!(
        decode_chunked(WIKI, 10),
        Err(AnnounceError::BodyTooLarge(10))
    ));
    assert!(matches!(
        decode_chunked(b"z\r\n", 10),
        Err(AnnounceError::Chunked)
    ));
    assert!(matches!(
        decode_chunked(b"\r\n", 10),
        Err(AnnounceError::Chunked)
    ));
    assert!(matches!(
        decode_chunked(b"2\r\nabX\r\n", 10),
        Err(AnnounceError::Chunked)
    ));
    assert!(matches!(
        decode_chunked(b"123456789\r\n", usize::MAX),
        Err(AnnounceError::Chunked)
    ));
    let long_line = vec![b'1'; 2000];
    assert!(matches!(
        decode_chunked(&long_line, 10),
        Err(AnnounceError::Chunked)
    ));
}

fn chunked(body: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    let mut sizes = sizes.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

proptest! {
    #[test]
    fn chunked_round_trips_and_prefixes_are_incomplete(
        body in proptest::collection::vec(any::<u8>(), 0..300),
        sizes in proptest::collection::vec(1usize..40, 1..6),
    ) {
        let raw = chunked(&body, &sizes);
        prop_assert_eq!(decode_chunked(&raw, BODY_LEN_MAX).unwrap(), Some(body));
        for cut in 0..raw.len() {
            prop_assert_eq!(decode_chunked(&raw[..cut], BODY_LEN_MAX).unwrap(), None);
        }
    }

    #[test]
    fn framing_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_head(&raw);
        let _ = decode_chunked(&raw, 64);
    }

    #[test]
    fn framing_never_panics_on_near_http(
        raw in "HTTP/1\\.[01] [0-9]{3} [A-Za-z]{0,3}(\r?\n[A-Za-z-]{0,16}: ?[0-9a-z ,;]{0,8})*\r?\n\r?\n[0-9a-f;\r\n]{0,20}"
    ) {
        if let Ok(Some(head)) = parse_head(raw.as_bytes()) {
            prop_assert!(head.len <= raw.len());
            let _ = decode_chunked(&raw.as_bytes()[head.len..], 64);
        }
    }
}
