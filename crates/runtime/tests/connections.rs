//! Handshakes in both directions, refusal of unknown torrents, garbage from a peer, and the
//! connection limits, against a real session on 127.0.0.1 with a raw peer on the other side.

mod common;

use std::time::Duration;

use bitswarm_runtime::{Bitfield, Resume, Session, SessionConfig};
use bitswarm_wire::{Frame, FrameDecoder, Message, HANDSHAKE_LEN};
use bytes::BytesMut;
use common::{
    config, generate, raw_connect, raw_handshake, read_handshake, wait_closed, wait_stats, within,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A seeding session for a small generated torrent; returns what the tests need.
async fn seeding(
    config: SessionConfig,
) -> (
    Session,
    bitswarm_runtime::TorrentHandle,
    common::Generated,
    tempfile::TempDir,
) {
    let torrent = generate(&[("s.bin", 200_000)], 32 * 1024, 7);
    let dir = tempfile::tempdir().unwrap();
    torrent.write_to(dir.path());
    let session = Session::start(config).unwrap();
    let full = Bitfield::full(torrent.layout.piece_count());
    let handle = session
        .add_torrent(torrent.add(dir.path(), Resume::Trusted(full), Vec::new()))
        .await
        .unwrap();
    (session, handle, torrent, dir)
}

/// The next message from `stream` (bounded wait).
async fn next_message(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    decoder: &mut FrameDecoder,
) -> Message {
    within("a message", async {
        loop {
            if let Some(Frame::Message(m)) = decoder.decode(buf).expect("well-formed stream") {
                return m;
            }
            assert!(
                stream.read_buf(buf).await.expect("read") > 0,
                "closed early"
            );
        }
    })
    .await
}

#[tokio::test]
async fn incoming_handshake_is_answered_and_followed_by_have_all() {
    let (session, handle, torrent, _dir) = seeding(config()).await;
    let mut stream = raw_connect(session.listen_addr(), torrent.info_hash).await;
    let theirs = read_handshake(&mut stream).await.expect("an answer");
    assert_eq!(theirs.info_hash, torrent.info_hash);
    assert_eq!(theirs.peer_id, session.peer_id());
    assert!(theirs.reserved.fast() && theirs.reserved.extension_protocol());
    let mut buf = BytesMut::new();
    let mut decoder = FrameDecoder::after_handshake(bitswarm_wire::FrameLimits::DEFAULT);
    let first = next_message(&mut stream, &mut buf, &mut decoder).await;
    assert_eq!(
        first,
        Message::HaveAll,
        "a seed greets a fast peer with have-all"
    );
    let second = next_message(&mut stream, &mut buf, &mut decoder).await;
    assert!(
        matches!(second, Message::Extended { id: 0, .. }),
        "then its extension handshake"
    );
    wait_stats(&handle, "the peer to be counted", |s| s.peers == 1).await;

    // Interested is answered by an unchoke at once, and a request by the block.
    stream
        .write_all(&Message::Interested.to_bytes().unwrap())
        .await
        .unwrap();
    assert_eq!(
        next_message(&mut stream, &mut buf, &mut decoder).await,
        Message::Unchoke
    );
    let block = bitswarm_wire::BlockRef {
        piece: 5,
        offset: 16384,
        length: 4000,
    };
    stream
        .write_all(&Message::Request(block).to_bytes().unwrap())
        .await
        .unwrap();
    let Message::Piece {
        piece,
        offset,
        data,
    } = next_message(&mut stream, &mut buf, &mut decoder).await
    else {
        panic!("expected the block");
    };
    assert_eq!((piece, offset), (5, 16384));
    let start = 5 * 32 * 1024 + 16384;
    assert_eq!(&data[..], &torrent.files[0].1[start..start + 4000]);
    session.shutdown().await;
}

#[tokio::test]
async fn outgoing_handshake_reaches_a_listening_peer() {
    let (session, handle, torrent, _dir) = seeding(config()).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    handle.add_peers([listener.local_addr().unwrap()]);
    let (mut stream, _) = within("the session to connect", listener.accept())
        .await
        .unwrap();
    let theirs = read_handshake(&mut stream)
        .await
        .expect("the session's handshake");
    assert_eq!(theirs.info_hash, torrent.info_hash);
    assert_eq!(theirs.peer_id, session.peer_id());
    stream
        .write_all(&raw_handshake(torrent.info_hash).encode())
        .await
        .unwrap();
    let mut buf = BytesMut::new();
    let mut decoder = FrameDecoder::after_handshake(bitswarm_wire::FrameLimits::DEFAULT);
    assert_eq!(
        next_message(&mut stream, &mut buf, &mut decoder).await,
        Message::HaveAll
    );
    wait_stats(&handle, "the peer to be counted", |s| s.peers == 1).await;
    session.shutdown().await;
}

#[tokio::test]
async fn outgoing_connection_to_the_wrong_torrent_is_dropped() {
    let (session, handle, _torrent, _dir) = seeding(config()).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    handle.add_peers([listener.local_addr().unwrap()]);
    let (mut stream, _) = within("the session to connect", listener.accept())
        .await
        .unwrap();
    read_handshake(&mut stream)
        .await
        .expect("the session's handshake");
    stream
        .write_all(&raw_handshake([0xee; 20]).encode())
        .await
        .unwrap();
    wait_closed(&mut stream).await;
    assert_eq!(handle.stats().peers, 0);
    session.shutdown().await;
}

#[tokio::test]
async fn unknown_info_hash_is_refused_without_an_answer() {
    let (session, _handle, _torrent, _dir) = seeding(config()).await;
    let mut stream = raw_connect(session.listen_addr(), [0x42; 20]).await;
    let mut got = Vec::new();
    within("the refusal", stream.read_to_end(&mut got))
        .await
        .ok();
    assert!(
        got.len() < HANDSHAKE_LEN,
        "no handshake for an unknown torrent"
    );
    within("the slot to be released", async {
        while session.connection_count() != 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    session.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_ends_that_connection_but_not_the_torrent() {
    let (session, handle, torrent, _dir) = seeding(config()).await;
    // Not BitTorrent at all.
    let mut http = TcpStream::connect(session.listen_addr()).await.unwrap();
    http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    wait_closed(&mut http).await;
    // A valid handshake, then an absurd length prefix.
    let mut bad = raw_connect(session.listen_addr(), torrent.info_hash).await;
    read_handshake(&mut bad).await.expect("handshake answered");
    bad.write_all(&[0xff, 0xff, 0xff, 0xff, 7]).await.unwrap();
    wait_closed(&mut bad).await;
    // A valid handshake, then a bitfield of the wrong length (the engine's verdict).
    let mut wrong = raw_connect(session.listen_addr(), torrent.info_hash).await;
    read_handshake(&mut wrong)
        .await
        .expect("handshake answered");
    let bitfield = Message::Bitfield(bytes::Bytes::from_static(&[0xff; 40]));
    wrong
        .write_all(&bitfield.to_bytes().unwrap())
        .await
        .unwrap();
    wait_closed(&mut wrong).await;
    wait_stats(&handle, "the bad peers to be gone", |s| s.peers == 0).await;

    // The torrent still serves a real leecher.
    let leech_dir = tempfile::tempdir().unwrap();
    let leecher = Session::start(config()).unwrap();
    let leech = leecher
        .add_torrent(torrent.add(leech_dir.path(), Resume::Fresh, vec![session.listen_addr()]))
        .await
        .unwrap();
    within("the download", leech.wait_finished()).await.unwrap();
    torrent.assert_on_disk(leech_dir.path());
    leecher.shutdown().await;
    session.shutdown().await;
}

#[tokio::test]
async fn per_torrent_connection_limit_holds() {
    let cfg = SessionConfig {
        connections_per_torrent_max: 2,
        ..config()
    };
    let (session, handle, torrent, _dir) = seeding(cfg).await;
    let mut open = Vec::new();
    for n in 1..=2 {
        let mut s = raw_connect(session.listen_addr(), torrent.info_hash).await;
        read_handshake(&mut s)
            .await
            .expect("under the limit: answered");
        wait_stats(&handle, "the peer to be counted", |s| s.peers == n).await;
        open.push(s);
    }
    let mut third = raw_connect(session.listen_addr(), torrent.info_hash).await;
    assert!(
        read_handshake(&mut third).await.is_none(),
        "over the limit: refused"
    );
    assert_eq!(handle.stats().peers, 2);
    drop(open.pop());
    wait_stats(&handle, "a slot to free up", |s| s.peers == 1).await;
    let mut fourth = raw_connect(session.listen_addr(), torrent.info_hash).await;
    read_handshake(&mut fourth).await.expect("room again");
    session.shutdown().await;
}

#[tokio::test]
async fn session_connection_limit_holds() {
    let cfg = SessionConfig {
        connections_max: 1,
        ..config()
    };
    let (session, _handle, torrent, _dir) = seeding(cfg).await;
    let mut first = raw_connect(session.listen_addr(), torrent.info_hash).await;
    read_handshake(&mut first)
        .await
        .expect("first connection answered");
    let mut second = raw_connect(session.listen_addr(), torrent.info_hash).await;
    assert!(
        read_handshake(&mut second).await.is_none(),
        "second refused"
    );
    assert_eq!(session.connection_count(), 1);
    drop(first);
    within("the slot to be released", async {
        while session.connection_count() != 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let mut third = raw_connect(session.listen_addr(), torrent.info_hash).await;
    read_handshake(&mut third).await.expect("room again");
    session.shutdown().await;
}
