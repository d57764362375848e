//! Carrying out the engine's actions: messages to connections' send queues, blocks to store,
//! pieces to verify, blocks to serve (coalesced into disk reads of consecutive blocks), and
//! what comes back from the disk for them: the bytes, or (with `SessionConfig::sendfile`)
//! the file runs to `sendfile` from the page cache.

use std::time::Instant;

use bitswarm_engine::{Action, PeerKey, Torrent, Verification};
use bitswarm_storage::{Job, ReadSegment, StorageError};
use bitswarm_wire::BlockRef;
use bytes::Bytes;

use super::{verify, Command, TorrentTask};
use crate::handle::TorrentEvent;
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
                peer,
                piece,
                offset,
                data,
            } => {
                self.first_block(now, peer);
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
                if let Some(link) = self.links.remove(&peer) {
                    tracing::debug!(addr = %link.addr, %reason, "disconnecting peer");
                    self.links_changed();
                }
            }
            Action::Ban { addr, reason } => {
                tracing::info!(%addr, ?reason, "banning address");
                self.banned.insert(addr);
                self.known.forget_ip(addr);
            }
            Action::Connect { addr } => self.spawn_connect(addr),
        }
    }

    /// Reports the torrent's first block of payload, timed from its connection's handshake.
    fn first_block(&mut self, now: Instant, peer: PeerKey) {
        if self.first_block_seen {
            return;
        }
        let Some(link) = self.links.get(&peer) else {
            return;
        };
        self.first_block_seen = true;
        let after = now.saturating_duration_since(link.connected_at);
        tracing::debug!(addr = %link.addr, ?after, "first block");
        let _ = self.events.send(TorrentEvent::FirstBlock { after });
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
        let sendfile = self.shared.config.sendfile;
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
                self.submit_read(run_peer, blocks, sendfile);
            }
        }
        if let Some((peer, blocks)) = run {
            self.submit_read(peer, blocks, sendfile);
        }
        self.serve = serve;
    }

    /// Submits one read: `PrepareSend` (for `sendfile`) or a plain `Read` into memory.
    fn submit_read(&mut self, peer: PeerKey, blocks: Vec<BlockRef>, sendfile: bool) {
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
        self.disk.submit(if sendfile {
            Job::PrepareSend {
                storage,
                piece,
                offset,
                len,
                tag,
            }
        } else {
            Job::Read {
                storage,
                piece,
                offset,
                len,
                tag,
            }
        });
    }

    /// A read for serving finished: queue its blocks on the peer's link.
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
        let items = read.blocks.iter().filter_map(|block| {
            let start = block.offset.saturating_sub(read.offset) as usize;
            let range = data.get(start..start.saturating_add(block.length as usize))?;
            Some(Outgoing::Block {
                piece: block.piece,
                offset: block.offset,
                data: data.slice_ref(range),
            })
        });
        self.queue_blocks(read.peer, items);
    }

    /// A `PrepareSend` finished: queue its blocks as file ranges for `sendfile`.
    pub(super) fn send_ready(&mut self, tag: u64, result: Result<Vec<ReadSegment>, StorageError>) {
        let Some(read) = self.reads.remove(&tag) else {
            return;
        };
        let plan = match result {
            Ok(plan) => plan,
            Err(error) => {
                // E.g. a filesystem that cannot splice, or no `/dev/null`: read into memory
                // instead; that read's own error, if any, stops the torrent.
                tracing::debug!(%error, "preparing a read for sendfile failed; reading it");
                return self.submit_read(read.peer, read.blocks, false);
            }
        };
        let items = read.blocks.iter().filter_map(|block| {
            let start = block.offset.saturating_sub(read.offset);
            let segments = sub_plan(&plan, u64::from(start), u64::from(block.length))?;
            Some(Outgoing::FileBlock {
                piece: block.piece,
                offset: block.offset,
                segments,
            })
        });
        self.queue_blocks(read.peer, items);
    }

    /// Queues served blocks on `peer`'s link (held back while its send queue is over its
    /// bound). The engine hears each is sent from the writer, once its last byte is written
    /// (`BlocksSent`), not now: upload figures count bytes on the wire.
    fn queue_blocks(&mut self, peer: PeerKey, items: impl Iterator<Item = Outgoing>) {
        let Some(link) = self.links.get_mut(&peer) else {
            return;
        };
        let mut first_item = false;
        for item in items {
            first_item |= link.push_block(item);
        }
        if first_item {
            self.dirty.push(peer);
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

/// The part of `plan` (file runs of a read, in order) covering `len` bytes from `start`;
/// `None` if the plan is shorter.
fn sub_plan(plan: &[ReadSegment], start: u64, len: u64) -> Option<Vec<ReadSegment>> {
    let end = start.checked_add(len)?;
    let mut out = Vec::with_capacity(1);
    let mut at = 0u64; // where the current segment starts in the read
    for segment in plan {
        let seg_len = match segment {
            ReadSegment::File { len, .. } | ReadSegment::Zeros { len } => u64::from(*len),
        };
        let (from, to) = (start.max(at), end.min(at + seg_len));
        if from < to {
            // Within one segment, whose length is a u32.
            let part = (to - from) as u32;
            out.push(match segment {
                ReadSegment::File { file, offset, .. } => ReadSegment::File {
                    file: std::sync::Arc::clone(file),
                    offset: offset + (from - at),
                    len: part,
                },
                ReadSegment::Zeros { .. } => ReadSegment::Zeros { len: part },
            });
        }
        at += seg_len;
        if at >= end {
            return Some(out);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn runs(plan: &[ReadSegment]) -> Vec<(char, u64, u32)> {
        plan.iter()
            .map(|s| match s {
                ReadSegment::File { offset, len, .. } => ('f', *offset, *len),
                ReadSegment::Zeros { len } => ('z', 0, *len),
            })
            .collect()
    }

    #[test]
    fn sub_plan_cuts_a_read_into_its_blocks() {
        let file = Arc::new(tempfile::tempfile().unwrap());
        // A 40 KiB read: 10 KiB of a file at 1000, 6 KiB of pad, 24 KiB of a file at 0.
        let plan = vec![
            ReadSegment::File {
                file: Arc::clone(&file),
                offset: 1000,
                len: 10 << 10,
            },
            ReadSegment::Zeros { len: 6 << 10 },
            ReadSegment::File {
                file,
                offset: 0,
                len: 24 << 10,
            },
        ];
        assert_eq!(
            runs(&sub_plan(&plan, 0, 16 << 10).unwrap()),
            [('f', 1000, 10 << 10), ('z', 0, 6 << 10)]
        );
        assert_eq!(
            runs(&sub_plan(&plan, 16 << 10, 16 << 10).unwrap()),
            [('f', 0, 16 << 10)]
        );
        assert_eq!(
            runs(&sub_plan(&plan, 8 << 10, 16 << 10).unwrap()),
            [
                ('f', 1000 + (8 << 10), 2 << 10),
                ('z', 0, 6 << 10),
                ('f', 0, 8 << 10)
            ]
        );
        assert_eq!(
            runs(&sub_plan(&plan, 32 << 10, 8 << 10).unwrap()),
            [('f', 16 << 10, 8 << 10)]
        );
        assert!(
            sub_plan(&plan, 32 << 10, 9 << 10).is_none(),
            "past the read"
        );
        assert!(sub_plan(&plan, u64::MAX, 1).is_none());
    }
}
