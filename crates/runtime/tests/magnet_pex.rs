//! Peer exchange (BEP 11) between real sessions in one process: C knows only B, B knows A;
//! B's PEX message tells C about A, and C connects to A by itself. Nobody completes (A has
//! half the pieces), so the connections stay up to be counted.

mod common;

use bitswarm_runtime::{Bitfield, Resume, Session};
use common::{config, generate, wait_stats};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_learnt_through_pex_is_connected() {
    let torrent = generate(&[("pex.bin", 2_000_000)], 64 * 1024, 21);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    torrent.write_to(dirs[0].path());
    let count = torrent.layout.piece_count();
    let mut half = Bitfield::new(count);
    for piece in 0..count / 2 {
        half.set(piece).unwrap();
    }

    let a = Session::start(config()).unwrap();
    let a_torrent = a
        .add_torrent(torrent.add(dirs[0].path(), Resume::Trusted(half), Vec::new()))
        .await
        .unwrap();
    let b = Session::start(config()).unwrap();
    let b_torrent = b
        .add_torrent(torrent.add(dirs[1].path(), Resume::Fresh, vec![a.listen_addr()]))
        .await
        .unwrap();
    wait_stats(&a_torrent, "B connected to A", |s| s.peers == 1).await;
    let c = Session::start(config()).unwrap();
    let c_torrent = c
        .add_torrent(torrent.add(dirs[2].path(), Resume::Fresh, vec![b.listen_addr()]))
        .await
        .unwrap();
    wait_stats(&b_torrent, "C connected to B", |s| s.peers == 2).await;
    // B's first PEX message goes out a few seconds after C's extension handshake.
    let s = wait_stats(&a_torrent, "C connected to A through PEX", |s| s.peers == 2).await;
    assert_eq!(s.peers, 2);
    let s = wait_stats(&c_torrent, "C sees both", |s| s.peers == 2).await;
    assert!(!s.finished, "A's half is all there is");
    c.shutdown().await;
    b.shutdown().await;
    a.shutdown().await;
}
