//! Fuzz target: a torrent fed arbitrary messages (any frame the wire parser accepts) from a
//! few peers, interleaved with connects, disconnects, timeouts and hash results, never panics
//! and keeps every internal invariant.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bitswarm_engine::{Action, Geometry, PeerInfo, PeerKey, Torrent, TorrentConfig, Verification};
use bitswarm_wire::{Bitfield, Message};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let mut now = start;
    // 10 pieces of 2 blocks and a short last piece.
    let g = Geometry::new(32 * 1024, 9 * 32 * 1024 + 5000);
    let mut t = Torrent::new(
        g,
        Bitfield::new(g.piece_count()),
        TorrentConfig::default(),
        1,
        now,
    );
    let mut verify = Vec::new();
    let mut rest = data;
    while let [op, peer, tail @ ..] = rest {
        let key = PeerKey(u64::from(peer % 4));
        rest = tail;
        match op % 8 {
            0 => {
                let addr =
                    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, peer % 4 + 1)), 6881);
                let info = PeerInfo {
                    addr,
                    peer_id: [*peer; 20],
                    fast: op & 0x10 != 0,
                    extensions: op & 0x20 != 0,
                    outgoing: false,
                };
                t.peer_connected(now, key, info);
            }
            1 => t.peer_disconnected(now, key),
            2 => {
                now += Duration::from_millis(u64::from(*peer) * 500);
                t.handle_timeout(now);
            }
            3 => {
                if let Some(piece) = verify.pop() {
                    let result = if peer & 1 == 0 {
                        Verification::Passed {
                            block_digests: None,
                        }
                    } else {
                        Verification::Failed {
                            block_digests: None,
                        }
                    };
                    t.piece_verified(now, piece, result);
                }
            }
            _ => {
                let Some((&len, tail)) = rest.split_first() else {
                    break;
                };
                let len = usize::from(len).min(tail.len());
                let (frame, tail) = tail.split_at(len);
                rest = tail;
                if let Ok(message) = Message::parse(Bytes::copy_from_slice(frame)) {
                    t.peer_message(now, key, message);
                }
            }
        }
        while let Some(action) = t.poll_action() {
            if let Action::VerifyPiece { piece, .. } = action {
                verify.push(piece);
            }
        }
        while t.poll_event().is_some() {}
        if let Err(violation) = t.check_invariants() {
            panic!("invariant broken: {violation}");
        }
    }
});
