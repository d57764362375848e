//! Carrying out the engine's actions: messages to connections' send queues, blocks to store,
//! pieces to verify, blocks to serve (coalesced into disk reads of consecutive blocks), and
//! what comes back from the disk for them.

use std::time::Instant;

use bitswarm_engine::{Action, PeerKey, Torrent, Verification};
use bitswarm_storage::{Job, StorageError};
use bitswarm_wire::BlockRef;
use bytes::Bytes;

use super::{verify, Command, TorrentTask};
use crate::send_queue::Outgoing;

/// A disk read serving blocks to one peer: `blocks` are consecutive, starting at `offset`.
#[derive(Debug)]
pub(super) struct PendingRead {
    peer: PeerKey,
    offset: u32,
    blocks: Vec<BlockRef>,
}

impl TorrentTask {
    /// Carries out every action the engine has, then submits the reads they asked for and
    /// hands queued bytes to the writers.
    pub(super) fn drain_actions(&mut self, now: Instant) {
        while let Some(action) = self.engine.as_mut().and_then(Torrent::poll_action) {
            self.dispatch(now, action);
        }
        self.submit_reads();
        self.flush_links();
    }

    fn dispatch(&mut self, now: Instant, action: Action) {
        match action {
            Action::Send { peer, message } => self.queue(peer, Outgoing::Message(message)),
            Action::ServeBlock { peer, block } => self.serve.push((peer, block)),
            Action::StoreBlock {
                piece,
                offset,
                data,
                ..
            } => {
                self.verify.retain(piece, offset, &data);
                let storage = std::sync::Arc::clone(&self.storage);
                self.disk.submit(Job::Write {
                    storage,
                    piece,
                    offset,
                    data,
                });
            }
            Action::VerifyPiece {
                piece,
                block_digests,
            } => self.verify_piece(now, piece, block_digests),
            Action::Disconnect { peer, reason } => {
                if let Some(mut link) = self.links.remove(&peer) {
                    tracing::debug!(addr = %link.addr, %reason, "disconnecting peer");
                    self.count_deferred(now, peer, std::mem::take(&mut link.deferred));
                    self.links_changed();
                }
            }
            Action::Ban { addr, reason } => {
                tracing::info!(%addr, ?reason, "banning address");
                self.banned.insert(addr);
                self.known.retain(|known| known.ip() != addr);
            }
            Action::Connect { addr } => self.spawn_connect(addr),
        }
    }

    /// Queues `item` on `peer`'s link (dropped if the peer is gone).
    pub(super) fn queue(&mut self, peer: PeerKey, item: Outgoing) {
        if let Some(link) = self.links.get_mut(&peer) {
            if link.push(item) {
                self.dirty.push(peer);
            }
        }
    }

    pub(super) fn flush_links(&mut self) {
        for key in self.dirty.drain(..) {
            if let Some(link) = self.links.get_mut(&key) {
                link.flush();
            }
        }
    }

    /// Turns this drain's `ServeBlock`s into disk reads, one per run of consecutive blocks of
    /// one piece for one peer, up to `disk_read_coalesce_bytes_max`.
    fn submit_reads(&mut self) {
        if self.serve.is_empty() {
            return;
        }
        let max = self.shared.config.disk_read_coalesce_bytes_max;
        let mut serve = std::mem::take(&mut self.serve);
        let mut run: Option<(PeerKey, Vec<BlockRef>)> = None;
        for (peer, block) in serve.drain(..) {
            if let Some((run_peer, blocks)) = &mut run {
                let extends = blocks
                    .last()
                    .zip(blocks.first())
                    .is_some_and(|(last, first)| {
                        *run_peer == peer
                            && last.piece == block.piece
                            && last.end() == u64::from(block.offset)
                            && block.end() - u64::from(first.offset) <= u64::from(max)
                    });
                if extends {
                    blocks.push(block);
                    continue;
                }
            }
            if let Some((run_peer, blocks)) = run.replace((peer, vec![block])) {
                self.submit_read(run_peer, blocks);
            }
        }
        if let Some((peer, blocks)) = run {
            self.submit_read(peer, blocks);
        }
        self.serve = serve;
    }

    fn submit_read(&mut self, peer: PeerKey, blocks: Vec<BlockRef>) {
        let (Some(first), Some(last)) = (blocks.first(), blocks.last()) else {
            return;
        };
        if !self.links.contains_key(&peer) {
            return; // disconnected during this drain
        }
        let (piece, offset) = (first.piece, first.offset);
        // At most `disk_read_coalesce_bytes_max` (a u32), so it fits.
        let len = (last.end() - u64::from(offset)) as u32;
        let tag = self.next_read_tag;
        self.next_read_tag += 1;
        self.reads.insert(
            tag,
            PendingRead {
                peer,
                offset,
                blocks,
            },
        );
        let storage = std::sync::Arc::clone(&self.storage);
        self.disk.submit(Job::Read {
            storage,
            piece,
            offset,
            len,
            tag,
        });
    }

    /// A read for serving finished: queue its blocks on the peer's link, and tell the engine
    /// each is sent unless the link's send queue is over its bound (then when it drains).
    pub(super) fn read_done(
        &mut self,
        now: Instant,
        tag: u64,
        result: Result<Bytes, StorageError>,
    ) {
        let Some(read) = self.reads.remove(&tag) else {
            return;
        };
        let data = match result {
            Ok(data) => data,
            Err(error) => return self.fail(now, error),
        };
        let Some(link) = self.links.get_mut(&read.peer) else {
            return;
        };
        let mut first_item = false;
        for block in read.blocks {
            let start = block.offset.saturating_sub(read.offset) as usize;
            let Some(range) = data
                .get(start..start.saturating_add(block.length as usize))
                .map(|s| data.slice_ref(s))
            else {
                continue;
            };
            first_item |= link.push(Outgoing::Block {
                piece: block.piece,
                offset: block.offset,
                data: range,
            });
            if link.may_send_blocks() {
                if let Some(engine) = &mut self.engine {
                    engine.block_sent(now, read.peer, block);
                }
            } else {
                link.deferred.push(block);
            }
        }
        if first_item {
            self.dirty.push(read.peer);
        }
    }

    /// The engine wants `piece` checked: storage does it on its own when the last block
    /// lands, so this pairs the request with that answer (and computes digests if asked).
    fn verify_piece(&mut self, now: Instant, piece: u32, block_digests: bool) {
        let blocks = self.geometry.blocks_in_piece(piece);
        let requested = self.verify.requested(piece, block_digests, blocks);
        if let Some(blocks) = requested.hash {
            let cmd = self.cmd_tx.clone();
            tokio::task::spawn_blocking(move || {
                let digests = Some(verify::block_digests(&blocks));
                let _ = cmd.send(Command::Digests { piece, digests });
            });
        }
        self.report_verification(now, piece, requested.ready);
    }

    /// The storage hashed `piece`.
    pub(super) fn storage_verdict(&mut self, now: Instant, piece: u32, passed: bool) {
        let ready = self.verify.storage_done(piece, passed);
        self.report_verification(now, piece, ready);
    }

    pub(super) fn report_verification(
        &mut self,
        now: Instant,
        piece: u32,
        ready: Option<Verification>,
    ) {
        if let (Some(result), Some(engine)) = (ready, &mut self.engine) {
            engine.piece_verified(now, piece, result);
        }
    }
}
