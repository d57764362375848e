//! Against a tiny HTTP tracker written in the test: what an HTTP tracker can answer —
//! `failure reason`, warnings, chunked bodies, redirects, errors, oversized bodies — and
//! HTTPS with a private CA (and refused without it).

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use bitswarm_announce::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use bitswarm_announce::rustls::{self, RootCertStore};
use bitswarm_announce::{tls_config_with_roots, AnnounceError, AnnounceEvent};
use support::{config, ok, spawn, wait_for, FakeTracker, TEST_TIMEOUT};

const HASH: [u8; 20] = [
    0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf1, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x12,
    0x34, 0x56, 0x78, 0x9a,
];
const ESCAPED_HASH: &str = "info_hash=%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A&";

#[tokio::test]
async fn failure_reason_reaches_the_user() {
    let tracker = FakeTracker::start(|_| ok(b"d14:failure reason22:torrent not on trackere")).await;
    let url = tracker.url("http", "/announce?passkey=s3cret");
    let (handle, mut rx) = spawn(config(vec![vec![url.clone()]], HASH, b'f', 40010));
    let mut seen = Vec::new();
    let got = wait_for(&mut rx, &mut seen, TEST_TIMEOUT, |e| {
        matches!(e, AnnounceEvent::Failure { .. })
    })
    .await;
    assert!(got, "{seen:?}");
    let Some(AnnounceEvent::Failure { tracker: t, reason }) = seen.last() else {
        unreachable!()
    };
    assert_eq!(
        (t.as_str(), reason.as_str()),
        (url.as_str(), "torrent not on tracker")
    );
    let targets = tracker.targets.lock().unwrap().clone();
    let first = &targets[0];
    assert!(first.starts_with("/announce?passkey=s3cret&"), "{first}");
    assert!(first.contains(ESCAPED_HASH), "{first}");
    assert!(
        first.contains("&port=40010&") && first.contains("&event=started"),
        "{first}"
    );
    assert!(
        first.contains("&left=1048576&") && first.contains("&compact=1"),
        "{first}"
    );
    handle.stop().await;
}

#[tokio::test]
async fn redirect_then_chunked_answer_with_warning() {
    let tracker = FakeTracker::start(|target| {
        if let Some(query) = target.strip_prefix("/old?") {
            format!("HTTP/1.1 302 Found\r\nLocation: /new?{query}\r\nContent-Length: 0\r\n\r\n")
                .into_bytes()
        } else {
            let body =
                b"d8:intervali1800e5:peers12:\x0a\x00\x00\x01\x1a\xe1\x0a\x00\x00\x02\x1a\xe2\
15:warning message7:be nicee";
            let (a, b) = body.split_at(20);
            let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for part in [a, b] {
                r.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                r.extend_from_slice(part);
                r.extend_from_slice(b"\r\n");
            }
            r.extend_from_slice(b"0\r\n\r\n");
            r
        }
    })
    .await;
    let url = tracker.url("http", "/old");
    let (handle, mut rx) = spawn(config(vec![vec![url.clone()]], HASH, b'g', 40011));
    let mut seen = Vec::new();
    let got = wait_for(&mut rx, &mut seen, TEST_TIMEOUT, |e| {
        matches!(e, AnnounceEvent::Peers(_))
    })
    .await;
    assert!(got, "{seen:?}");
    let peers: Vec<SocketAddr> = vec![
        "10.0.0.1:6881".parse().unwrap(),
        "10.0.0.2:6882".parse().unwrap(),
    ];
    assert!(
        matches!(seen.last(), Some(AnnounceEvent::Peers(p)) if *p == peers),
        "{seen:?}"
    );
    assert!(seen.iter().any(|e| matches!(e,
        AnnounceEvent::Warning { tracker, message } if *tracker == url && message == "be nice")));
    let targets = tracker.targets.lock().unwrap().clone();
    assert!(
        targets[1].starts_with("/new?") && targets[1].contains(ESCAPED_HASH),
        "{targets:?}"
    );
    let stats = handle.stats();
    assert_eq!(stats[0].warning.as_deref(), Some("be nice"));
    handle.stop().await;
}

/// A predicate on the error a case must produce.
type Check = fn(&AnnounceError) -> bool;

#[tokio::test]
async fn http_errors_are_typed() {
    let tracker = FakeTracker::start(|target| {
        if target.starts_with("/500") {
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\noops!".to_vec()
        } else if target.starts_with("/huge") {
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\nd".to_vec()
        } else if target.starts_with("/loop") {
            b"HTTP/1.1 301 Moved\r\nLocation: /loop\r\n\r\n".to_vec()
        } else {
            ok(b"<html>not bencode</html>")
        }
    })
    .await;
    let cases: [(&str, Check); 4] = [
        ("/500", |e| matches!(e, AnnounceError::HttpStatus(500))),
        ("/huge", |e| matches!(e, AnnounceError::BodyTooLarge(_))),
        ("/loop", |e| matches!(e, AnnounceError::TooManyRedirects(_))),
        ("/html", |e| matches!(e, AnnounceError::Tracker(_))),
    ];
    for (path, expect) in cases {
        let url = tracker.url("http", path);
        let (handle, mut rx) = spawn(config(vec![vec![url]], HASH, b'h', 40012));
        let mut seen = Vec::new();
        let got = wait_for(&mut rx, &mut seen, TEST_TIMEOUT, |e| {
            matches!(e, AnnounceEvent::Error { .. })
        })
        .await;
        assert!(got, "{path}: {seen:?}");
        let Some(AnnounceEvent::Error { error, .. }) = seen.last() else {
            unreachable!()
        };
        assert!(expect(error), "{path}: {error:?}");
        handle.stop().await;
    }
}

/// A CA and a certificate for 127.0.0.1 signed by it.
fn private_pki() -> (
    CertificateDer<'static>,
    CertificateDer<'static>,
    PrivateKeyDer<'static>,
) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    (ca_cert.der().clone(), leaf_cert.der().clone(), key)
}

#[tokio::test]
async fn https_with_a_private_ca_and_refused_without() {
    let (ca, leaf, key) = private_pki();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let body = b"d8:intervali1800e5:peers6:\x0a\x00\x00\x07\x1a\xe1e";
    let tracker = FakeTracker::start_with(|_| ok(body), Some(acceptor)).await;
    let url = tracker.url("https", "/announce");

    let mut roots = RootCertStore::empty();
    roots.add(ca).unwrap();
    let mut trusting = config(vec![vec![url.clone()]], HASH, b'i', 40013);
    trusting.tls = Some(tls_config_with_roots(roots).unwrap());
    let (handle, mut rx) = spawn(trusting);
    let mut seen = Vec::new();
    let got = wait_for(&mut rx, &mut seen, TEST_TIMEOUT, |e| {
        matches!(e, AnnounceEvent::Peers(p) if p == &["10.0.0.7:6881".parse::<SocketAddr>().unwrap()])
    })
    .await;
    assert!(got, "{seen:?}");
    handle.stop().await;

    // With Mozilla's roots, the private certificate must be refused.
    let (handle, mut rx) = spawn(config(vec![vec![url]], HASH, b'j', 40014));
    let mut seen = Vec::new();
    let got = wait_for(&mut rx, &mut seen, TEST_TIMEOUT, |e| {
        matches!(e, AnnounceEvent::Error { .. })
    })
    .await;
    assert!(got, "{seen:?}");
    assert!(
        matches!(
            seen.last(),
            Some(AnnounceEvent::Error {
                error: AnnounceError::Tls(_),
                ..
            })
        ),
        "{seen:?}"
    );
    handle.stop().await;
}

/// Polls `tracker`'s request log (bounded) until a target satisfies `want`.
async fn wait_target(tracker: &FakeTracker, want: impl Fn(&str) -> bool) -> bool {
    for _ in 0..200 {
        if tracker.targets.lock().unwrap().iter().any(|t| want(t)) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn completed_stopped_and_dropped_handles_are_announced() {
    let tracker = FakeTracker::start(|_| ok(b"d8:intervali1800e5:peers0:e")).await;
    let url = tracker.url("http", "/a");
    let (handle, _rx) = spawn(config(vec![vec![url.clone()]], HASH, b'k', 40015));
    assert!(wait_target(&tracker, |t| t.contains("&event=started")).await);
    assert!(!tracker
        .targets
        .lock()
        .unwrap()
        .iter()
        .any(|t| t.contains("event=completed")));
    handle.completed();
    assert!(wait_target(&tracker, |t| t.contains("&event=completed")).await);
    let before = tracker.targets.lock().unwrap().len();
    handle.stop().await;
    let targets = tracker.targets.lock().unwrap().clone();
    assert_eq!(targets.len(), before + 1, "{targets:?}");
    assert!(
        targets[before].contains("&event=stopped&numwant=0"),
        "{targets:?}"
    );

    let (dropped, _rx) = spawn(config(vec![vec![url]], HASH, b'l', 40016));
    assert!(
        wait_target(&tracker, |t| t.contains("&port=40016&")
            && t.contains("started"))
        .await
    );
    drop(dropped);
    assert!(
        wait_target(&tracker, |t| t.contains("&port=40016&")
            && t.contains("stopped"))
        .await
    );
}
