//! Magnet links end to end in one process: a session that has a torrent serves its info
//! dictionary (BEP 9); another, knowing only the info-hash, fetches it, checks it, adds the
//! torrent and downloads it — and then serves the metadata in turn. A lying peer's metadata
//! is caught by the info-hash and the liar banned, the honest peer's bytes used.

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;

use bitswarm_runtime::{Resume, Session, TorrentState};
use bitswarm_wire::extended::{MetadataMessage, UT_METADATA};
use bitswarm_wire::{ExtendedHandshake, Frame, FrameDecoder, Message};
use bytes::{Bytes, BytesMut};
use common::{config, generate, wait_stats, within, Generated};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// A single-file torrent with a real info dictionary: its bytes, and the generated files and
/// layout under the info-hash those bytes hash to. 1,280 pieces of 16 KiB make the info
/// dictionary 25.7 KB, two metadata pieces.
fn torrent_with_info(seed: u64) -> (Generated, Bytes) {
    let mut torrent = generate(&[("magnet.bin", 1280 * 16_384 - 1000)], 16_384, seed);
    let (_, data) = &torrent.files[0];
    let mut pieces = Vec::new();
    for chunk in data.chunks(16_384) {
        pieces.extend_from_slice(&Sha1::digest(chunk));
    }
    let mut info = format!(
        "d6:lengthi{}e4:name10:magnet.bin12:piece lengthi16384e6:pieces{}:",
        data.len(),
        pieces.len()
    )
    .into_bytes();
    info.extend_from_slice(&pieces);
    info.push(b'e');
    torrent.info_hash = Sha1::digest(&info).into();
    (torrent, Bytes::from(info))
}

/// A seeding session for `torrent`, serving `info`.
async fn seeder(torrent: &Generated, info: &Bytes, dir: &std::path::Path) -> Session {
    torrent.write_to(dir);
    let session = Session::start(config()).unwrap();
    let mut add = torrent.add(dir, Resume::Check, Vec::new());
    add.metadata = Some(info.clone());
    let handle = session.add_torrent(add).await.unwrap();
    wait_stats(&handle, "the seeder's check", |s| {
        s.state == TorrentState::Seeding
    })
    .await;
    session
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_hash_only_fetches_metadata_downloads_and_serves_it_on() {
    let (torrent, info) = torrent_with_info(11);
    let seed_dir = tempfile::tempdir().unwrap();
    let leech_dir = tempfile::tempdir().unwrap();
    let seeding = seeder(&torrent, &info, seed_dir.path()).await;

    let leecher = Session::start(config()).unwrap();
    // No peer up front: the peer arrives later, through the sink trackers and the DHT use.
    let mut fetch = leecher
        .fetch_metadata(torrent.info_hash, Vec::new())
        .unwrap();
    assert!(leecher
        .peer_sink(torrent.info_hash)
        .add_peers([seeding.listen_addr()]));
    let fetched = within("the metadata", fetch.wait()).await.unwrap();
    assert!(fetched.info == info, "the seeder's exact bytes");
    assert_eq!(fetched.peers, vec![seeding.listen_addr()]);

    let mut add = torrent.add(leech_dir.path(), Resume::Fresh, fetched.peers);
    add.metadata = Some(fetched.info);
    let leech = leecher.add_torrent(add).await.unwrap();
    fetch.hand_over(&leech);
    within("the download", leech.wait_finished()).await.unwrap();
    torrent.assert_on_disk(leech_dir.path());

    // The leecher now serves the metadata itself: a third session fetches it from there.
    let third = Session::start(config()).unwrap();
    let mut again = third
        .fetch_metadata(torrent.info_hash, vec![leecher.listen_addr()])
        .unwrap();
    let fetched = within("the metadata from the leecher", again.wait())
        .await
        .unwrap();
    assert!(fetched.info == info);
    drop(again);
    third.shutdown().await;
    leecher.shutdown().await;
    seeding.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_metadata_is_caught_by_the_hash_and_the_liar_banned() {
    let (torrent, info) = torrent_with_info(12);
    let seed_dir = tempfile::tempdir().unwrap();
    let seeding = seeder(&torrent, &info, seed_dir.path()).await;
    // The liar listens on another loopback address, so banning it spares the honest seeder.
    let liar = TcpListener::bind((Ipv4Addr::new(127, 0, 0, 2), 0))
        .await
        .unwrap();
    let liar_addr = liar.local_addr().unwrap();
    let size = info.len() as u64;
    let info_hash = torrent.info_hash;
    let served = Arc::new(Notify::new());
    let lied = Arc::clone(&served);
    let liar_task = tokio::spawn(async move {
        // It may be connected to more than once; serve each in turn.
        while let Ok((stream, _)) = liar.accept().await {
            tokio::spawn(lie(stream, info_hash, size, Arc::clone(&lied)));
        }
    });

    // The liar alone first, so its bytes are sure to be used (with both at once the honest
    // seeder may deliver every piece before the liar answers, and nobody is caught); the
    // honest seeder joins once the liar has answered.
    let leecher = Session::start(config()).unwrap();
    let mut fetch = leecher
        .fetch_metadata(torrent.info_hash, vec![liar_addr])
        .unwrap();
    within("the liar's answer", served.notified()).await;
    fetch.add_peers([seeding.listen_addr()]);
    let fetched = within("the metadata", fetch.wait()).await.unwrap();
    assert!(fetched.info == info, "the honest bytes, not the liar's");
    assert_eq!(
        fetched.peers,
        vec![seeding.listen_addr()],
        "the liar is banned and not handed on"
    );
    liar_task.abort();
    drop(fetch);
    leecher.shutdown().await;
    seeding.shutdown().await;
}

/// A peer that announces the right metadata size and answers every request with zeros.
async fn lie(mut stream: TcpStream, info_hash: [u8; 20], size: u64, served: Arc<Notify>) {
    let mut buf = BytesMut::new();
    let mut decoder = FrameDecoder::new();
    let mut ours = common::raw_handshake(info_hash);
    ours.peer_id.0[0] = b'L';
    if stream.write_all(&ours.encode()).await.is_err() {
        return;
    }
    let hs = ExtendedHandshake {
        extensions: [(UT_METADATA.to_owned(), 5)].into(),
        metadata_size: Some(size),
        ..ExtendedHandshake::default()
    };
    let mut greeting = BytesMut::new();
    let _ = hs.to_message().encode_into(&mut greeting);
    let _ = Message::HaveNone.encode_into(&mut greeting);
    if stream.write_all(&greeting).await.is_err() {
        return;
    }
    let mut their_id = None;
    loop {
        while let Ok(Some(frame)) = decoder.decode(&mut buf) {
            let Frame::Message(Message::Extended { id, payload }) = frame else {
                continue;
            };
            if id == 0 {
                their_id = ExtendedHandshake::parse(&payload)
                    .ok()
                    .and_then(|h| h.extension_id(UT_METADATA));
                continue;
            }
            let (Some(reply_id), Ok(MetadataMessage::Request { piece })) =
                (their_id, MetadataMessage::parse(&payload))
            else {
                continue;
            };
            let start = u64::from(piece) * 16_384;
            let len = size.saturating_sub(start).min(16_384) as usize;
            let data = MetadataMessage::Data {
                piece,
                total_size: size,
                data: Bytes::from(vec![0; len]),
            };
            let mut out = BytesMut::new();
            let _ = data.to_message(reply_id).encode_into(&mut out);
            if stream.write_all(&out).await.is_err() {
                return;
            }
            served.notify_one();
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
