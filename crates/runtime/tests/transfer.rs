//! A seeder session and a leecher session in one process transfer generated torrents over
//! loopback, and the bytes on disk must match.

mod common;

use bitswarm_runtime::{Event, Resume, Session, SessionConfig, TorrentEvent, TorrentState};
use common::{config, generate, wait_stats, within};

/// File boundaries inside pieces, a file smaller than a block, a short last piece.
const FILES: &[(&str, usize)] = &[
    ("a.bin", 100_000),
    ("dir/b.bin", 300_001),
    ("tiny.txt", 7),
    ("dir/sub/c.bin", 250_000),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_file_torrent_is_transferred_byte_for_byte() {
    // The seeder serves with `sendfile` (the default): blocks that span files are sent as
    // several file ranges.
    transfer_multi_file(config()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_file_torrent_is_transferred_byte_for_byte_without_sendfile() {
    transfer_multi_file(SessionConfig {
        sendfile: false,
        ..config()
    })
    .await;
}

async fn transfer_multi_file(seed_config: SessionConfig) {
    let torrent = generate(FILES, 64 * 1024, 1);
    let seed_dir = tempfile::tempdir().unwrap();
    let leech_dir = tempfile::tempdir().unwrap();
    torrent.write_to(seed_dir.path());

    let seeder = Session::start(seed_config).unwrap();
    let seed = seeder
        .add_torrent(torrent.add(seed_dir.path(), Resume::Check, Vec::new()))
        .await
        .unwrap();
    let s = wait_stats(&seed, "the seeder's check", |s| {
        s.state == TorrentState::Seeding
    })
    .await;
    assert_eq!(s.pieces_have, s.piece_count);
    assert_eq!(
        s.piece_count, 10,
        "650,008 bytes in 64 KiB pieces, the last one short"
    );

    let leecher = Session::start(config()).unwrap();
    let leech = leecher
        .add_torrent(torrent.add(leech_dir.path(), Resume::Fresh, Vec::new()))
        .await
        .unwrap();
    // Subscribe before giving it a peer, so no event can be missed.
    let mut events = leech.events();
    leech.add_peers([seeder.listen_addr()]);
    within("the download", leech.wait_finished()).await.unwrap();
    let s = leech.stats();
    assert!(s.complete && s.state == TorrentState::Seeding);
    assert_eq!(s.hash_failures, 0);
    assert!(s.downloaded >= 650_008, "downloaded {}", s.downloaded);
    torrent.assert_on_disk(leech_dir.path());

    let (mut verified, mut first_blocks) = (0, 0);
    while let Ok(event) = events.try_recv() {
        match event {
            TorrentEvent::Engine(Event::PieceVerified(_)) => verified += 1,
            TorrentEvent::FirstBlock { after } => {
                first_blocks += 1;
                assert!(after < common::WAIT, "first block after {after:?}");
            }
            _ => {}
        }
    }
    assert!(verified > 0, "piece events were broadcast");
    assert_eq!(first_blocks, 1, "the first block is reported once");
    let up = wait_stats(&seed, "upload accounting", |s| s.uploaded >= 650_008).await;
    assert!(up.uploaded >= 650_008);
    leecher.shutdown().await;
    seeder.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leecher_resumes_from_a_checkpoint_and_seeder_connects_out() {
    let torrent = generate(&[("one.bin", 1_000_000)], 256 * 1024, 2);
    let seed_dir = tempfile::tempdir().unwrap();
    let leech_dir = tempfile::tempdir().unwrap();
    torrent.write_to(seed_dir.path());
    let full = bitswarm_runtime::Bitfield::full(torrent.layout.piece_count());

    // The leecher listens; the seeder is told about it and opens the connection.
    let leecher = Session::start(config()).unwrap();
    let leech = leecher
        .add_torrent(torrent.add(leech_dir.path(), Resume::Fresh, Vec::new()))
        .await
        .unwrap();
    let seeder = Session::start(config()).unwrap();
    let seed = seeder
        .add_torrent(torrent.add(seed_dir.path(), Resume::Trusted(full), Vec::new()))
        .await
        .unwrap();
    seed.add_peers([leecher.listen_addr()]);
    within("the download", leech.wait_finished()).await.unwrap();
    torrent.assert_on_disk(leech_dir.path());

    // A checkpoint of the finished leecher restores as complete without a recheck.
    let snapshot = within("a checkpoint", leech.checkpoint(None))
        .await
        .unwrap();
    assert!(snapshot.pieces.is_full());
    leech.clone().remove().await;
    assert!(leecher.torrent(&torrent.info_hash).is_none());
    let again = leecher
        .add_torrent(torrent.add(leech_dir.path(), Resume::Snapshot(snapshot), Vec::new()))
        .await
        .unwrap();
    let s = wait_stats(&again, "the restored torrent", |s| s.finished).await;
    assert_eq!(s.pieces_have, 4);
    assert_eq!(s.downloaded, 0, "nothing downloaded again");
    leecher.shutdown().await;
    seeder.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_closes_connections_and_resume_finishes() {
    let torrent = generate(&[("p.bin", 3_000_000)], 128 * 1024, 3);
    let seed_dir = tempfile::tempdir().unwrap();
    let leech_dir = tempfile::tempdir().unwrap();
    torrent.write_to(seed_dir.path());
    let full = bitswarm_runtime::Bitfield::full(torrent.layout.piece_count());
    let seeder = Session::start(config()).unwrap();
    let seed = seeder
        .add_torrent(torrent.add(seed_dir.path(), Resume::Trusted(full), Vec::new()))
        .await
        .unwrap();
    let leecher = Session::start(config()).unwrap();
    let leech = leecher
        .add_torrent(torrent.add(leech_dir.path(), Resume::Fresh, Vec::new()))
        .await
        .unwrap();
    leech.pause();
    wait_stats(&leech, "paused", |s| s.state == TorrentState::Paused).await;
    leech.add_peers([seeder.listen_addr()]);
    leech.resume();
    within("the download", leech.wait_finished()).await.unwrap();
    torrent.assert_on_disk(leech_dir.path());
    leech.pause();
    let s = wait_stats(&leech, "paused after finishing", |s| {
        s.state == TorrentState::Paused
    })
    .await;
    assert_eq!(s.peers, 0);
    assert!(s.finished, "verified pieces survive a pause");
    wait_stats(&seed, "the seeder to see the peer leave", |s| s.peers == 0).await;
    leecher.shutdown().await;
    seeder.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leecher_checks_partial_data_and_fetches_only_what_is_missing() {
    let torrent = generate(FILES, 32 * 1024, 4);
    let seed_dir = tempfile::tempdir().unwrap();
    let leech_dir = tempfile::tempdir().unwrap();
    torrent.write_to(seed_dir.path());
    // The leecher has everything but a damaged region of b.bin and a missing c.bin.
    torrent.write_to(leech_dir.path());
    let damaged = leech_dir.path().join("dir/b.bin");
    let mut bytes = std::fs::read(&damaged).unwrap();
    bytes[150_000..150_100].fill(0xaa);
    std::fs::write(&damaged, bytes).unwrap();
    std::fs::remove_file(leech_dir.path().join("dir/sub/c.bin")).unwrap();

    let full = bitswarm_runtime::Bitfield::full(torrent.layout.piece_count());
    let seeder = Session::start(config()).unwrap();
    seeder
        .add_torrent(torrent.add(seed_dir.path(), Resume::Trusted(full), Vec::new()))
        .await
        .unwrap();
    let leecher = Session::start(config()).unwrap();
    let leech = leecher
        .add_torrent(torrent.add(leech_dir.path(), Resume::Check, vec![seeder.listen_addr()]))
        .await
        .unwrap();
    within("the download", leech.wait_finished()).await.unwrap();
    torrent.assert_on_disk(leech_dir.path());
    let s = leech.stats();
    // c.bin (250,000 bytes) spans at least 7 pieces of 32 KiB, the damage one more.
    let fetched = s.downloaded;
    assert!(fetched >= 250_000, "fetched {fetched}");
    assert!(
        fetched < 650_008 / 2,
        "fetched {fetched}: most pieces were found on disk"
    );
    leecher.shutdown().await;
    seeder.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_seeders_and_two_leechers_form_a_swarm() {
    let torrent = generate(FILES, 64 * 1024, 5);
    let full = bitswarm_runtime::Bitfield::full(torrent.layout.piece_count());
    let mut seeders = Vec::new();
    let mut dirs = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        torrent.write_to(dir.path());
        let session = Session::start(config()).unwrap();
        let resume = Resume::Trusted(full.clone());
        session
            .add_torrent(torrent.add(dir.path(), resume, Vec::new()))
            .await
            .unwrap();
        seeders.push(session);
        dirs.push(dir);
    }
    let seeds: Vec<_> = seeders.iter().map(Session::listen_addr).collect();
    let mut leechers = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let session = Session::start(config()).unwrap();
        let handle = session
            .add_torrent(torrent.add(dir.path(), Resume::Fresh, Vec::new()))
            .await
            .unwrap();
        leechers.push((session, handle, dir));
    }
    // Every leecher knows both seeds and the other leecher.
    let leecher_addrs: Vec<_> = leechers.iter().map(|(s, _, _)| s.listen_addr()).collect();
    for (session, handle, _) in &leechers {
        let others = leecher_addrs
            .iter()
            .filter(|a| **a != session.listen_addr());
        handle.add_peers(seeds.iter().chain(others).copied());
    }
    for (_, handle, dir) in &leechers {
        within("a leecher to finish", handle.wait_finished())
            .await
            .unwrap();
        torrent.assert_on_disk(dir.path());
        assert_eq!(handle.stats().hash_failures, 0);
    }
    for (session, _, _) in leechers {
        session.shutdown().await;
    }
    for session in seeders {
        session.shutdown().await;
    }
}
