//! A peer that answers requests with wrong data: every piece it alone sent fails its hash
//! check, it is banned and disconnected, and nothing it sent is kept.

mod common;

use std::net::IpAddr;

use bitswarm_runtime::{Event, Resume, Session, TorrentEvent};
use bitswarm_wire::{Frame, FrameDecoder, FrameLimits, Message};
use bytes::{Bytes, BytesMut};
use common::{config, generate, raw_handshake, read_handshake, wait_stats, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Plays a seeder that sends zeros for every block; returns when the leecher hangs up.
async fn serve_garbage(mut stream: TcpStream, info_hash: [u8; 20]) -> usize {
    read_handshake(&mut stream)
        .await
        .expect("the leecher's handshake");
    stream
        .write_all(&raw_handshake(info_hash).encode())
        .await
        .unwrap();
    stream
        .write_all(&Message::HaveAll.to_bytes().unwrap())
        .await
        .unwrap();
    let mut decoder = FrameDecoder::after_handshake(FrameLimits::DEFAULT);
    let mut buf = BytesMut::new();
    let mut served = 0;
    loop {
        while let Ok(Some(Frame::Message(message))) = decoder.decode(&mut buf) {
            let reply = match message {
                Message::Interested => Message::Unchoke,
                Message::Request(block) => {
                    served += 1;
                    Message::Piece {
                        piece: block.piece,
                        offset: block.offset,
                        data: Bytes::from(vec![0u8; block.length as usize]),
                    }
                }
                _ => continue,
            };
            if stream.write_all(&reply.to_bytes().unwrap()).await.is_err() {
                return served;
            }
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return served,
            Ok(_) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sending_corrupt_pieces_is_banned() {
    let torrent = generate(&[("x.bin", 300_000)], 64 * 1024, 11);
    let dir = tempfile::tempdir().unwrap();
    let session = Session::start(config()).unwrap();
    let handle = session
        .add_torrent(torrent.add(dir.path(), Resume::Fresh, Vec::new()))
        .await
        .unwrap();
    let mut events = handle.events();
    let bad = TcpListener::bind("127.0.0.1:0").await.unwrap();
    handle.add_peers([bad.local_addr().unwrap()]);
    let (stream, _) = within("the leecher to connect", bad.accept())
        .await
        .unwrap();
    let served = within(
        "the leecher to hang up",
        serve_garbage(stream, torrent.info_hash),
    )
    .await;
    assert!(served > 0, "the leecher asked for blocks");

    let (mut failed, mut banned) = (false, false);
    within("the failure and ban events", async {
        while !(failed && banned) {
            match events.recv().await.expect("events") {
                TorrentEvent::Engine(Event::PieceFailed { .. }) => failed = true,
                TorrentEvent::Engine(Event::PeerBanned { addr }) => {
                    assert_eq!(addr, IpAddr::from([127, 0, 0, 1]));
                    banned = true;
                }
                TorrentEvent::Engine(Event::PieceVerified(p)) => {
                    panic!("piece {p} verified from zeros")
                }
                _ => {}
            }
        }
    })
    .await;
    let s = wait_stats(
        &handle,
        "the failure to be counted and the peer gone",
        |s| s.hash_failures >= 1 && s.peers == 0,
    )
    .await;
    assert_eq!(s.pieces_have, 0);
    session.shutdown().await;
}
