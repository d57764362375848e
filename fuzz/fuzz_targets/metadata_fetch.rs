//! Fuzz target: a magnet link's metadata fetch (`bitswarm_engine::metadata::MetadataFetch`) fed
//! arbitrary extension messages (handshakes with any sizes, data/reject/request on
//! `ut_metadata`, raw garbage) from a few peers, interleaved with connects, disconnects, time
//! and hash verdicts, never panics and keeps its bookkeeping consistent.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bitswarm_engine::metadata::{FetchAction, MetadataFetch};
use bitswarm_engine::{PeerInfo, PeerKey, UT_METADATA_ID};
use bitswarm_wire::extended::MetadataMessage;
use bitswarm_wire::{ExtendedHandshake, Message};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut now = Instant::now();
    let mut f = MetadataFetch::new("fuzz", Some(1));
    let mut rest = data;
    while let [op, peer, arg, tail @ ..] = rest {
        rest = tail;
        let key = PeerKey(u64::from(peer % 4));
        match op % 7 {
            0 => {
                let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, peer % 4)), 1);
                let info = PeerInfo {
                    addr,
                    peer_id: [*peer; 20],
                    fast: op & 0x10 != 0,
                    extensions: op & 0x20 == 0,
                    outgoing: true,
                };
                f.peer_connected(now, key, &info);
            }
            1 => f.peer_disconnected(now, key),
            2 => {
                now += Duration::from_millis(u64::from(*arg) * 100);
                f.handle_timeout(now);
            }
            3 => {
                let mut hs = ExtendedHandshake {
                    metadata_size: Some(u64::from(*arg) * 997),
                    ..ExtendedHandshake::default()
                };
                if op & 0x40 == 0 {
                    hs.extensions.insert("ut_metadata".to_owned(), 3);
                }
                f.peer_message(now, key, &hs.to_message());
            }
            4 => {
                let size = u64::from(*arg) * 997;
                let piece = u32::from(op >> 4);
                let len = size.saturating_sub(u64::from(piece) * 16_384).min(16_384) as usize;
                let message = if op & 0x08 == 0 {
                    MetadataMessage::Data {
                        piece,
                        total_size: size,
                        data: Bytes::from(vec![*peer; len]),
                    }
                } else {
                    MetadataMessage::Reject { piece }
                };
                f.peer_message(now, key, &message.to_message(UT_METADATA_ID));
            }
            5 => {
                let take = usize::from(*arg).min(rest.len());
                let payload = Bytes::copy_from_slice(&rest[..take]);
                rest = &rest[take..];
                let id = if op & 0x10 == 0 { UT_METADATA_ID } else { 0 };
                f.peer_message(now, key, &Message::Extended { id, payload });
            }
            _ => {}
        }
        while let Some(action) = f.poll_action() {
            if let FetchAction::Verify { .. } = action {
                f.verified(now, arg & 1 == 0);
            }
        }
        if let Err(e) = f.check_invariants() {
            panic!("{e}");
        }
    }
});
