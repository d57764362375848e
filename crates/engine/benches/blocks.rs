//! Per-block cost of the engine's download path: a `Torrent` fed a stream of piece messages
//! answering its own requests, as a runtime would at full speed, with every action drained
//! (requests collected, `StoreBlock` dropped, `VerifyPiece` answered `Passed` at once).
//! Virtual time advances 1/60,000 s per block, so rates, pipeline depths and rechokes behave
//! as at 60,000 blocks/s (~1 GB/s of 16 KiB blocks).
//!
//! Two shapes, best of several runs each: one seed peer (the brief's case: the whole torrent
//! from one peer), and 20 seed peers served round robin (more picker and choker work).
//! The goal is well above 500,000 blocks/s, so the engine is never the bottleneck at 60,000.
//!
//! Rerun with: `cargo bench -p bitswarm-engine --bench blocks`.
// Figures are printed as floating point; a block count's precision beyond 2^52 is moot.
#![allow(clippy::cast_precision_loss)]

use std::collections::VecDeque;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bitswarm_engine::{
    Action, Geometry, PeerInfo, PeerKey, Torrent, TorrentConfig, Verification, BLOCK_LEN,
};
use bitswarm_wire::{Bitfield, BlockRef, Message};
use bytes::Bytes;

const PIECE_LEN: u32 = 256 * 1024;
/// 4 GiB: 16,384 pieces, 262,144 blocks per run.
const TOTAL_LEN: u64 = 4 << 30;
const RUNS: usize = 5;
const BLOCK_INTERVAL: Duration = Duration::from_nanos(1_000_000_000 / 60_000);

fn main() {
    let blocks = TOTAL_LEN / u64::from(BLOCK_LEN);
    println!(
        "torrent: {} pieces of {} KiB, {blocks} blocks",
        TOTAL_LEN / u64::from(PIECE_LEN),
        PIECE_LEN / 1024
    );
    for peers in [1, 20] {
        let best = (0..RUNS).map(|_| run(peers)).min().unwrap_or_default();
        let rate = blocks as f64 / best.as_secs_f64();
        println!(
            "{peers:>2} peer(s): {blocks} blocks in {:.3} s: {:.0} blocks/s, {:.0} ns/block ({:.1}x the 60,000 blocks/s target, goal > 500,000)",
            best.as_secs_f64(),
            rate,
            best.as_nanos() as f64 / blocks as f64,
            rate / 60_000.0
        );
    }
}

/// Downloads the whole torrent from `peers` seeds; returns the wall time.
fn run(peers: u64) -> Duration {
    let g = Geometry::new(PIECE_LEN, TOTAL_LEN);
    let mut now = Instant::now();
    let mut t = Torrent::new(
        g,
        Bitfield::new(g.piece_count()),
        TorrentConfig::default(),
        1,
        now,
    );
    let data = Bytes::from(vec![0x5a; BLOCK_LEN as usize]);
    let mut pending: Vec<VecDeque<BlockRef>> = vec![VecDeque::new(); peers as usize];
    for p in 0..peers {
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, p as u8 + 1)), 6881);
        let info = PeerInfo {
            addr,
            peer_id: [p as u8; 20],
            fast: true,
            extensions: false,
            outgoing: true,
        };
        t.peer_connected(now, PeerKey(p), info);
        t.peer_message(now, PeerKey(p), Message::HaveAll);
        t.peer_message(now, PeerKey(p), Message::Unchoke);
    }
    let start = Instant::now();
    let mut delivered = 0u64;
    let mut next = 0usize;
    loop {
        while let Some(action) = t.poll_action() {
            match action {
                Action::Send {
                    peer,
                    message: Message::Request(b),
                } => pending[peer.0 as usize].push_back(b),
                Action::VerifyPiece { piece, .. } => {
                    t.piece_verified(
                        now,
                        piece,
                        Verification::Passed {
                            block_digests: None,
                        },
                    );
                }
                other => {
                    black_box(other);
                }
            }
        }
        if t.is_complete() {
            break;
        }
        // The next peer with a request outstanding answers its oldest one.
        let Some(p) = (0..pending.len())
            .map(|i| (next + i) % pending.len())
            .find(|&i| !pending[i].is_empty())
        else {
            panic!("stalled after {delivered} blocks: no request outstanding");
        };
        next = p + 1;
        let Some(b) = pending[p].pop_front() else {
            continue;
        };
        now += BLOCK_INTERVAL;
        t.handle_timeout(now);
        t.peer_message(
            now,
            PeerKey(p as u64),
            Message::Piece {
                piece: b.piece,
                offset: b.offset,
                data: data.clone(),
            },
        );
        delivered += 1;
    }
    let elapsed = start.elapsed();
    assert_eq!(
        t.stats().downloaded,
        TOTAL_LEN,
        "every block delivered once"
    );
    black_box(delivered);
    elapsed
}
