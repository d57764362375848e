//! Byte accounting and peer bookkeeping against raw peers the test controls: uploads count
//! what was written to the socket (issue 4), `downloaded` includes `wasted` (issue 6), and a
//! peer the engine gave up on comes back when it is reported again (issue 7).

mod common;

use std::time::Duration;

use bitswarm_runtime::{Resume, Session, SessionConfig, TorrentConfig, TorrentStats};
use bitswarm_wire::{BlockRef, Frame, FrameDecoder, FrameLimits, Message};
use bytes::{Bytes, BytesMut};
use common::{config, generate, raw_handshake, read_handshake, wait_stats, within, Generated};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

const BLOCK: u32 = 16 << 10;
const PIECE: u32 = 256 << 10;
/// Kernel socket buffers on both ends of the raw leecher's connection.
const SOCKET_BUFFER: u32 = 32 << 10;
/// The most payload that may be counted as uploaded but not read by a leecher that stopped
/// reading: what the kernel buffers of both ends hold (Linux doubles the sizes asked for and
/// loopback adds a little), with room to spare. Far below the queued blocks.
const UNREAD_MAX: u64 = 8 * SOCKET_BUFFER as u64;

/// Reads messages until `want` matches one (bounded by the test's wait).
async fn read_until(
    stream: &mut TcpStream,
    decoder: &mut FrameDecoder,
    buf: &mut BytesMut,
    mut want: impl FnMut(&Message) -> bool,
) {
    within("a message from the peer", async {
        loop {
            while let Some(frame) = decoder.decode(buf).expect("well-formed stream") {
                if let Frame::Message(m) = frame {
                    if want(&m) {
                        return;
                    }
                }
            }
            let n = stream.read_buf(buf).await.expect("read");
            assert!(n > 0, "the peer closed the connection");
        }
    })
    .await;
}

/// Requests for `count` blocks from the start of the torrent (skipping `skip` blocks).
fn requests(skip: u32, count: u32) -> Vec<u8> {
    let per_piece = PIECE / BLOCK;
    let mut out = Vec::new();
    for i in skip..skip + count {
        let block = BlockRef {
            piece: i / per_piece,
            offset: (i % per_piece) * BLOCK,
            length: BLOCK,
        };
        out.extend_from_slice(&Message::Request(block).to_bytes().unwrap());
    }
    out
}

/// Watches `uploaded` for `period`; returns the most seen.
async fn most_uploaded(
    stats: &tokio::sync::watch::Receiver<TorrentStats>,
    period: Duration,
) -> u64 {
    let end = tokio::time::Instant::now() + period;
    let mut most = 0;
    while tokio::time::Instant::now() < end {
        most = most.max(stats.borrow().uploaded);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    most
}

/// A raw leecher with small socket buffers, past the handshake and unchoked.
async fn unchoked_leecher(
    addr: std::net::SocketAddr,
    info_hash: [u8; 20],
) -> (TcpStream, FrameDecoder, BytesMut) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(SOCKET_BUFFER).unwrap();
    let mut stream = socket.connect(addr).await.expect("connect to the seeder");
    stream
        .write_all(&raw_handshake(info_hash).encode())
        .await
        .unwrap();
    read_handshake(&mut stream).await.expect("handshake");
    let mut decoder = FrameDecoder::after_handshake(FrameLimits::DEFAULT);
    let mut buf = BytesMut::new();
    let interested = Message::Interested.to_bytes().unwrap();
    stream.write_all(&interested).await.unwrap();
    read_until(&mut stream, &mut decoder, &mut buf, |m| {
        matches!(m, Message::Unchoke)
    })
    .await;
    (stream, decoder, buf)
}

/// Issue 4: a seeder counted a block as uploaded when it queued it, so a slow or stalled
/// peer made `uploaded` run far ahead of what left (23.5 MiB counted, 11.7 MiB received).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploaded_counts_bytes_written_to_the_socket_not_queued() {
    let torrent = generate(&[("u.bin", 4 << 20)], PIECE, 41);
    let dir = tempfile::tempdir().unwrap();
    torrent.write_to(dir.path());
    let session = Session::start(SessionConfig {
        socket_buffer_bytes: Some(SOCKET_BUFFER),
        ..config()
    })
    .unwrap();
    let seeder = seed(&session, &torrent, dir.path()).await;
    let stats = seeder.watch_stats();
    let addr = session.listen_addr();

    // 128 blocks asked for, none read: only what the kernel buffers take may count.
    let (mut stream, mut decoder, mut buf) = unchoked_leecher(addr, torrent.info_hash).await;
    stream.write_all(&requests(0, 128)).await.unwrap();
    let most = most_uploaded(&stats, Duration::from_secs(1)).await;
    assert!(
        most <= UNREAD_MAX,
        "{most} bytes counted as uploaded while the peer read none (at most {UNREAD_MAX} fit \
         in the socket buffers)"
    );
    // Reading everything: every block counts, once.
    let mut blocks = 0;
    read_until(&mut stream, &mut decoder, &mut buf, |m| {
        blocks += u32::from(matches!(m, Message::Piece { .. }));
        blocks == 128
    })
    .await;
    let all = 128 * u64::from(BLOCK);
    let s = wait_stats(&seeder, "the 128 blocks to count", |s| s.uploaded >= all).await;
    assert_eq!(s.uploaded, all, "each block read counts once");

    // 128 more asked for, none read, then the peer hangs up: blocks that never left do
    // not count (they used to, when the connection closed).
    stream.write_all(&requests(128, 128)).await.unwrap();
    let most = most_uploaded(&stats, Duration::from_secs(1)).await;
    drop(stream);
    wait_stats(&seeder, "the peer to be gone", |s| s.peers == 0).await;
    let after = most_uploaded(&stats, Duration::from_millis(300)).await;
    assert!(
        most.max(after) - all <= UNREAD_MAX,
        "{} bytes counted for a peer that read none of them",
        most.max(after) - all
    );
    session.shutdown().await;
}

/// Adds `torrent` (on disk under `dir`) as a seed and waits for it to be seeding.
async fn seed(
    session: &Session,
    torrent: &Generated,
    dir: &std::path::Path,
) -> bitswarm_runtime::TorrentHandle {
    let mut all = bitswarm_runtime::Bitfield::new(torrent.layout.piece_count());
    for piece in 0..torrent.layout.piece_count() {
        all.set(piece).unwrap();
    }
    let handle = session
        .add_torrent(torrent.add(dir, Resume::Trusted(all), Vec::new()))
        .await
        .unwrap();
    wait_stats(&handle, "seeding", |s| s.finished).await;
    handle
}

/// Plays a seeder that answers each request with the right block and sends the first
/// `duplicates` blocks a second time, unasked; returns when the leecher hangs up.
async fn serve_with_duplicates(mut stream: TcpStream, torrent: &Generated, duplicates: usize) {
    let data: Vec<u8> = torrent
        .files
        .iter()
        .flat_map(|(_, d)| d.iter().copied())
        .collect();
    read_handshake(&mut stream).await.expect("handshake");
    let hello = raw_handshake(torrent.info_hash).encode();
    stream.write_all(&hello).await.unwrap();
    stream
        .write_all(&Message::HaveAll.to_bytes().unwrap())
        .await
        .unwrap();
    let mut decoder = FrameDecoder::after_handshake(FrameLimits::DEFAULT);
    let mut buf = BytesMut::new();
    let mut sent_twice = 0;
    loop {
        while let Ok(Some(Frame::Message(message))) = decoder.decode(&mut buf) {
            let replies = match message {
                Message::Interested => vec![Message::Unchoke],
                Message::Request(b) => {
                    let start = (b.piece * PIECE + b.offset) as usize;
                    let block = Bytes::copy_from_slice(&data[start..start + b.length as usize]);
                    let piece = Message::Piece {
                        piece: b.piece,
                        offset: b.offset,
                        data: block,
                    };
                    let twice = sent_twice < duplicates;
                    sent_twice += usize::from(twice);
                    if twice {
                        vec![piece.clone(), piece]
                    } else {
                        vec![piece]
                    }
                }
                _ => continue,
            };
            for reply in replies {
                if stream.write_all(&reply.to_bytes().unwrap()).await.is_err() {
                    return;
                }
            }
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Issue 6: a leecher's summary showed `downloaded` equal to the payload with `wasted` on
/// top: blocks thrown away on arrival counted in `wasted` but not in `downloaded`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloaded_includes_the_wasted_blocks() {
    const DUPLICATES: usize = 5;
    let torrent = generate(&[("d.bin", 1 << 20)], PIECE, 42);
    let total = torrent.layout.total_length();
    let dir = tempfile::tempdir().unwrap();
    let session = Session::start(config()).unwrap();
    let leecher = session
        .add_torrent(torrent.add(dir.path(), Resume::Fresh, Vec::new()))
        .await
        .unwrap();
    let fake = TcpListener::bind("127.0.0.1:0").await.unwrap();
    leecher.add_peers([fake.local_addr().unwrap()]);
    let (stream, _) = within("the leecher to connect", fake.accept())
        .await
        .unwrap();
    let serve = tokio::spawn(async move {
        serve_with_duplicates(stream, &torrent, DUPLICATES).await;
        torrent
    });
    wait_stats(&leecher, "the download to finish", |s| s.finished).await;
    let wasted = DUPLICATES as u64 * u64::from(BLOCK);
    let s = wait_stats(&leecher, "the duplicates to be counted", |s| {
        s.wasted >= wasted
    })
    .await
    .clone();
    assert_eq!(s.wasted, wasted, "{s:?}");
    assert_eq!(s.downloaded, total + wasted, "{s:?}");
    assert_eq!(
        s.downloaded - s.wasted,
        total,
        "downloaded - wasted is the payload"
    );
    session.shutdown().await;
    let torrent = within("the fake seeder to finish", serve).await.unwrap();
    torrent.assert_on_disk(dir.path());
}

/// Issue 7: once the engine had given up on an address after failed connects, reporting it
/// again (a tracker, the DHT) never brought it back: the torrent remembered it as known.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_given_up_on_is_tried_again_when_reported_again() {
    let torrent = generate(&[("p.bin", 100_000)], 64 << 10, 43);
    let dir = tempfile::tempdir().unwrap();
    let session = Session::start(SessionConfig {
        peer_reoffer_interval: Duration::from_millis(200),
        torrent: TorrentConfig {
            connect_attempts_max: 1,
            ..config().torrent
        },
        ..config()
    })
    .unwrap();
    let leecher = session
        .add_torrent(torrent.add(dir.path(), Resume::Fresh, Vec::new()))
        .await
        .unwrap();
    let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = peer.local_addr().unwrap();
    leecher.add_peers([addr]);
    // The first attempt fails: accepted, then closed before a handshake.
    let (first, _) = within("the first attempt", peer.accept()).await.unwrap();
    drop(first);
    tokio::time::sleep(Duration::from_millis(300)).await;
    leecher.add_peers([addr]);
    let (mut second, _) = within(
        "an attempt after the address was reported again",
        peer.accept(),
    )
    .await
    .unwrap();
    let theirs = read_handshake(&mut second).await.expect("a handshake");
    assert_eq!(theirs.info_hash, torrent.info_hash);
    session.shutdown().await;
}
