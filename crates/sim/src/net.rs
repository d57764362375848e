//! The simulated runtime and network: carries out each engine's actions (messages onto
//! connections, blocks into and out of stores, piece checks, connections) and applies
//! scheduled events back to the engines. Protocol rules visible from outside are checked here,
//! as messages leave a node.
//!
//! Link model: a node's uplink and downlink are FIFO queues of its capacity (piece data
//! only); a connection's one-way latency is the sum of its ends' access latencies; a
//! connection delivers in sending order (TCP), so a control message waits behind data sent
//! before it on the same connection, but not behind other connections' data.

use std::net::SocketAddr;
use std::time::Duration;

use bitswarm_engine::{Action, PeerInfo, PeerKey, Verification};
use bitswarm_wire::{BlockRef, Frame, FrameDecoder, FrameLimits, Message};
use bytes::{Bytes, BytesMut};
use rand::Rng;

use crate::sim::{Conn, Presence, SimEvent};
use crate::spec::{Behaviour, WireCheck};
use crate::{Sim, SimError};

/// A node keeps at most this many connections in its list before closed ones are pruned.
const NODE_CONNS_PRUNE_LEN: usize = 256;

impl Sim {
    /// Carries out one action of node `i`.
    pub(crate) fn carry_out(&mut self, i: usize, action: Action) -> Result<(), SimError> {
        match action {
            Action::Send { peer, message } => self.send(i, conn_of(peer), message)?,
            Action::ServeBlock { peer, block } => self.serve(i, conn_of(peer), block)?,
            Action::StoreBlock {
                piece,
                offset,
                data,
                ..
            } => self.store_block(i, piece, offset, data)?,
            Action::VerifyPiece {
                piece,
                block_digests,
            } => {
                let at = self.now + self.spec.hash_delay;
                let digests = block_digests;
                self.schedule(
                    at,
                    SimEvent::Verify {
                        node: i,
                        piece,
                        digests,
                    },
                );
            }
            Action::Disconnect { peer, reason } => {
                self.nodes[i].log.disconnects.push(reason);
                let conn = conn_of(peer);
                self.detach(conn, i);
                self.close(conn, i);
            }
            Action::Ban { addr, reason } => self.nodes[i].log.bans.push((addr, reason)),
            Action::Connect { addr } => self.connect(i, addr),
        }
        Ok(())
    }

    /// Applies one scheduled event.
    pub(crate) fn apply(&mut self, event: SimEvent) {
        match event {
            SimEvent::Arrive { conn, dir, message } => self.arrive(conn, dir, message),
            SimEvent::Deliver { conn, dir, message } => self.deliver(conn, dir, message),
            SimEvent::BlockSent { conn, dir, block } => self.block_sent(conn, dir, block),
            SimEvent::Verify {
                node,
                piece,
                digests,
            } => self.verify(node, piece, digests),
            SimEvent::Connect { from, to } => self.establish(from, to),
            SimEvent::ConnectFailed { node, addr } => {
                if self.is_joined(node) {
                    let now = self.instant();
                    self.nodes[node].torrent.connect_failed(now, addr);
                    self.touch(node);
                }
            }
            SimEvent::Closed { conn, node } => {
                if self.detach(conn, node) && self.is_joined(node) {
                    let now = self.instant();
                    self.nodes[node]
                        .torrent
                        .peer_disconnected(now, key_of(conn));
                    self.touch(node);
                }
            }
            SimEvent::Join { node } => self.join(node),
            SimEvent::Leave { node } => self.leave(node),
            SimEvent::Announce { node } => {
                if self.is_joined(node) {
                    self.announce(node);
                }
            }
        }
    }

    fn send(&mut self, i: usize, conn: usize, message: Message) -> Result<(), SimError> {
        let Some((k, j, open)) = self.conns.get(conn).and_then(|c| {
            let k = side(c, i)?;
            Some((k, c.ends[1 - k], c.open))
        }) else {
            return Ok(());
        };
        self.track_choke(i, conn, k, &message);
        self.check_outgoing(i, j, &message)?;
        let log = &mut self.nodes[i].log;
        match &message {
            Message::Request(b) => {
                log.requests_sent += 1;
                log.first_request_at.get_or_insert(self.now);
                let index = self.source.layout.block_index(b.piece, b.offset, b.length);
                if let Some(n) = index.and_then(|x| log.requests_per_block.get_mut(x)) {
                    *n += 1;
                }
            }
            Message::Cancel(_) => log.cancels_sent += 1,
            _ => {}
        }
        let free_rider = self.nodes[i].spec.behaviour == Behaviour::FreeRider;
        if !open || (free_rider && message == Message::Unchoke) {
            return Ok(());
        }
        let message = match self.spec.wire {
            WireCheck::All | WireCheck::Control => roundtrip(i, &message)?,
            WireCheck::Off => message,
        };
        let at = self.arrival(conn, k, self.now);
        let c = &mut self.conns[conn];
        if c.data_in_flight[k] == 0 {
            // Everything sent before on this connection has reached the host, so the delivery
            // time is known now: skip the arrival event.
            let deliver = at.max(c.deliver_last[k]);
            c.deliver_last[k] = deliver;
            self.schedule(
                deliver,
                SimEvent::Deliver {
                    conn,
                    dir: k,
                    message,
                },
            );
        } else {
            self.schedule(
                at,
                SimEvent::Arrive {
                    conn,
                    dir: k,
                    message,
                },
            );
        }
        Ok(())
    }

    /// Counts the peers node `i` unchokes by its own messages (checked against its slots at
    /// the end of the step: within one step an engine may unchoke a peer before it emits the
    /// disconnect of the peer whose slot that was).
    fn track_choke(&mut self, i: usize, conn: usize, k: usize, message: &Message) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        match message {
            Message::Unchoke if !c.unchoking[k] => {
                c.unchoking[k] = true;
                self.nodes[i].unchoked += 1;
            }
            Message::Choke if c.unchoking[k] => {
                c.unchoking[k] = false;
                self.nodes[i].unchoked -= 1;
            }
            _ => {}
        }
    }

    /// What every node may say, checked as it leaves: HAVE (and bitfields) only for verified
    /// pieces; requests only for pieces we lack and the peer has.
    fn check_outgoing(&self, i: usize, j: usize, message: &Message) -> Result<(), SimError> {
        let verified = &self.nodes[i].verified;
        let early = |piece| Err(SimError::HaveBeforeVerified { node: i, piece });
        match message {
            Message::Have { piece } if !verified.has(*piece) => early(*piece),
            Message::HaveAll if !verified.is_complete() => early(0),
            Message::Bitfield(bytes) if bytes[..] != verified.as_bytes()[..] => early(0),
            Message::Request(b) if verified.has(b.piece) => Err(SimError::RequestForPieceWeHave {
                node: i,
                piece: b.piece,
            }),
            Message::Request(b) if !self.nodes[j].verified.has(b.piece) => {
                Err(SimError::RequestForPiecePeerLacks {
                    node: i,
                    peer: j,
                    piece: b.piece,
                })
            }
            _ => Ok(()),
        }
    }

    fn serve(&mut self, i: usize, conn: usize, block: BlockRef) -> Result<(), SimError> {
        let unverified = SimError::ServeUnverified {
            node: i,
            piece: block.piece,
        };
        if !self.nodes[i].verified.has(block.piece) {
            return Err(unverified);
        }
        if self.nodes[i].spec.behaviour == Behaviour::FreeRider {
            self.nodes[i].log.serves_refused += 1;
            return Ok(());
        }
        let Some(k) = self
            .conns
            .get(conn)
            .filter(|c| c.open)
            .and_then(|c| side(c, i))
        else {
            return Ok(());
        };
        let data = self.block_data(i, block)?.ok_or(unverified)?;
        let len = data.len();
        let mut message = Message::Piece {
            piece: block.piece,
            offset: block.offset,
            data,
        };
        if self.spec.wire == WireCheck::All {
            message = roundtrip(i, &message)?;
        }
        let node = &mut self.nodes[i];
        let up_start = self.now.max(node.up_free);
        let up_end = up_start + transfer_time(len, node.spec.up_bw);
        node.up_free = up_end;
        self.schedule(
            up_end,
            SimEvent::BlockSent {
                conn,
                dir: k,
                block,
            },
        );
        let at = self.arrival(conn, k, up_end);
        self.conns[conn].data_in_flight[k] += 1;
        self.schedule(
            at,
            SimEvent::Arrive {
                conn,
                dir: k,
                message,
            },
        );
        Ok(())
    }

    /// The bytes node `i` sends for `block` (corrupted if it is a corrupt node and the block
    /// is one of those it corrupts); `None` if its store lacks the block.
    fn block_data(&self, i: usize, block: BlockRef) -> Result<Option<Bytes>, SimError> {
        let index = self
            .source
            .layout
            .block_index(block.piece, block.offset, block.length)
            .ok_or(SimError::BadBlock {
                node: i,
                piece: block.piece,
                offset: block.offset,
                length: block.length,
            })?;
        let Some(data) = self.nodes[i].store.get(index) else {
            return Ok(None);
        };
        if let Behaviour::Corrupt { one_in } = self.nodes[i].spec.behaviour {
            let h = u64::from(block.piece)
                .wrapping_mul(7919)
                .wrapping_add(u64::from(block.offset / 16384).wrapping_mul(104_729))
                .wrapping_add(self.spec.seed);
            if h % u64::from(one_in.max(1)) == 0 {
                let mut bad = data.to_vec();
                if let Some(first) = bad.first_mut() {
                    *first ^= 0xff;
                }
                return Ok(Some(Bytes::from(bad)));
            }
        }
        Ok(Some(data.clone()))
    }

    fn store_block(
        &mut self,
        i: usize,
        piece: u32,
        offset: u32,
        data: Bytes,
    ) -> Result<(), SimError> {
        let length = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let index = self
            .source
            .layout
            .block_index(piece, offset, length)
            .ok_or(SimError::BadBlock {
                node: i,
                piece,
                offset,
                length,
            })?;
        self.nodes[i].store.put(index, data);
        Ok(())
    }

    /// When a message leaving on `conn` in direction `k` at `start` reaches the other host:
    /// latency, a retransmission if the sender's loss draw says so, and never before what
    /// was sent earlier on the connection.
    fn arrival(&mut self, conn: usize, k: usize, start: Duration) -> Duration {
        let Some(c) = self.conns.get(conn) else {
            return start;
        };
        let (from, to) = (c.ends[k], c.ends[1 - k]);
        let mut at = start + self.latency(from, to);
        let sender = &self.nodes[from].spec;
        if sender.loss > 0.0 && self.rng.gen_bool(sender.loss) {
            at += sender.retransmit_delay;
        }
        let last = &mut self.conns[conn].arrive_last[k];
        *last = (*last).max(at);
        *last
    }

    /// A message reached the receiving host: piece data queues through its downlink (FIFO by
    /// arrival), control messages only keep their place behind earlier data of the same
    /// connection.
    fn arrive(&mut self, conn: usize, k: usize, message: Message) {
        let Some(c) = self.conns.get(conn) else {
            return;
        };
        let (to, last) = (c.ends[1 - k], c.deliver_last[k]);
        let deliver = if let Message::Piece { data, .. } = &message {
            self.conns[conn].data_in_flight[k] -= 1;
            let node = &mut self.nodes[to];
            let start = self.now.max(node.down_free);
            let done = start + transfer_time(data.len(), node.spec.down_bw);
            node.down_free = done;
            done.max(last)
        } else {
            self.now.max(last)
        };
        self.conns[conn].deliver_last[k] = deliver;
        self.schedule(
            deliver,
            SimEvent::Deliver {
                conn,
                dir: k,
                message,
            },
        );
    }

    fn deliver(&mut self, conn: usize, k: usize, message: Message) {
        let Some(c) = self.conns.get(conn) else {
            return;
        };
        let (from, to) = (c.ends[k], c.ends[1 - k]);
        if !c.open || !c.attached[1 - k] || !self.is_joined(to) {
            return;
        }
        if matches!(message, Message::Piece { .. }) && self.nodes[to].log.first_block_at.is_none() {
            self.nodes[to].log.first_block_at = Some(self.now);
            self.nodes[to].log.first_block_from = Some(from);
        }
        let now = self.instant();
        self.nodes[to]
            .torrent
            .peer_message(now, key_of(conn), message);
        self.touch(to);
    }

    /// A block left the sender's uplink: it counts as uploaded if the connection is still
    /// open, and the sender's engine frees the upload slot either way.
    fn block_sent(&mut self, conn: usize, k: usize, block: BlockRef) {
        let Some(c) = self.conns.get(conn) else {
            return;
        };
        let (from, to, open) = (c.ends[k], c.ends[1 - k], c.open);
        if open {
            self.transfers.add(from, to, u64::from(block.length));
        }
        if self.is_joined(from) {
            let now = self.instant();
            self.nodes[from]
                .torrent
                .block_sent(now, key_of(conn), block);
            self.touch(from);
        }
    }

    fn verify(&mut self, node: usize, piece: u32, digests: bool) {
        if !self.is_joined(node) {
            return;
        }
        let n = &mut self.nodes[node];
        let ok = n.store.piece_matches(&self.source, piece);
        let block_digests = digests.then(|| n.store.block_digests(&self.source, piece));
        let result = if ok {
            let _ = n.verified.set(piece);
            Verification::Passed { block_digests }
        } else {
            n.log.hash_failures += 1;
            Verification::Failed { block_digests }
        };
        let now = self.instant();
        self.nodes[node].torrent.piece_verified(now, piece, result);
        self.touch(node);
    }

    fn connect(&mut self, i: usize, addr: SocketAddr) {
        match self.addr_index.get(&addr).copied() {
            Some(j) if j != i && self.is_joined(j) && !self.open_pairs.contains(&pair(i, j)) => {
                // SYN, SYN-ACK, then the handshakes.
                let at = self.now + self.latency(i, j) * 3;
                self.schedule(at, SimEvent::Connect { from: i, to: j });
            }
            Some(j) => {
                let at = self.now + self.latency(i, j) * 2;
                self.schedule(at, SimEvent::ConnectFailed { node: i, addr });
            }
            None => self.schedule(self.now, SimEvent::ConnectFailed { node: i, addr }),
        }
    }

    fn establish(&mut self, from: usize, to: usize) {
        let now = self.instant();
        if self.open_pairs.contains(&pair(from, to)) || !self.is_joined(to) {
            if self.is_joined(from) {
                let addr = self.nodes[to].addr;
                self.nodes[from].torrent.connect_failed(now, addr);
                self.touch(from);
            }
            return;
        }
        if !self.is_joined(from) {
            return;
        }
        let conn = self.conns.len();
        self.conns.push(Conn {
            ends: [from, to],
            open: true,
            attached: [true, true],
            unchoking: [false, false],
            arrive_last: [Duration::ZERO; 2],
            deliver_last: [Duration::ZERO; 2],
            data_in_flight: [0; 2],
        });
        self.open_pairs.insert(pair(from, to));
        for (node, other, outgoing) in [(from, to, true), (to, from, false)] {
            self.add_node_conn(node, conn);
            let info = self.peer_info(node, other, conn, outgoing);
            let n = &mut self.nodes[node];
            n.log.connected_at.get_or_insert(self.now);
            n.torrent.peer_connected(now, key_of(conn), info);
            self.touch(node);
        }
    }

    /// What `node` learns of `other` from the handshake on `conn`.
    fn peer_info(&self, node: usize, other: usize, conn: usize, outgoing: bool) -> PeerInfo {
        let (me, them) = (&self.nodes[node].spec, &self.nodes[other].spec);
        let mut addr = self.nodes[other].addr;
        if !outgoing {
            // An incoming connection comes from an ephemeral port.
            addr.set_port(32768 + (conn % 28_000) as u16);
        }
        let mut peer_id = [0u8; 20];
        peer_id[..8].copy_from_slice(b"-BS0000-");
        peer_id[8..16].copy_from_slice(&(other as u64).to_be_bytes());
        PeerInfo {
            addr,
            peer_id,
            fast: me.fast && them.fast,
            extensions: me.extensions && them.extensions,
            outgoing,
        }
    }

    fn add_node_conn(&mut self, node: usize, conn: usize) {
        let conns = &self.conns;
        let list = &mut self.nodes[node].conns;
        if list.len() >= NODE_CONNS_PRUNE_LEN {
            list.retain(|&c| {
                conns
                    .get(c)
                    .is_some_and(|c| side(c, node).is_some_and(|k| c.attached[k]))
            });
        }
        list.push(conn);
    }

    /// Node `node`'s engine forgets `conn` (it closed it, or learnt it closed); `false` if it
    /// had already.
    fn detach(&mut self, conn: usize, node: usize) -> bool {
        let Some(c) = self.conns.get_mut(conn) else {
            return false;
        };
        let Some(k) = side(c, node) else {
            return false;
        };
        if !c.attached[k] {
            return false;
        }
        c.attached[k] = false;
        if std::mem::replace(&mut c.unchoking[k], false) {
            self.nodes[node].unchoked -= 1;
        }
        true
    }

    /// Closes `conn` from `node`'s side; the other end learns of it one latency later.
    fn close(&mut self, conn: usize, node: usize) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let Some(k) = side(c, node) else {
            return;
        };
        if !c.open {
            return;
        }
        c.open = false;
        let other = c.ends[1 - k];
        self.open_pairs.remove(&pair(node, other));
        let at = self.now + self.latency(node, other);
        self.schedule(at, SimEvent::Closed { conn, node: other });
    }

    fn join(&mut self, node: usize) {
        if self.nodes[node].presence != Presence::NotYet {
            return;
        }
        self.nodes[node].presence = Presence::Joined;
        self.nodes[node].log.joined_at = Some(self.now);
        self.announce(node);
    }

    /// The node tells the "tracker" it is here and gets up to `announce_peers` present nodes
    /// at random; the next announce is scheduled.
    fn announce(&mut self, node: usize) {
        let present: Vec<usize> = (0..self.nodes.len())
            .filter(|&j| j != node && self.is_joined(j))
            .collect();
        let amount = self.spec.announce_peers.min(present.len());
        let chosen = rand::seq::index::sample(&mut self.rng, present.len(), amount);
        let addrs: Vec<SocketAddr> = chosen
            .iter()
            .filter_map(|x| present.get(x))
            .map(|&j| self.nodes[j].addr)
            .collect();
        let now = self.instant();
        self.nodes[node].torrent.add_peer_candidates(now, addrs);
        self.touch(node);
        if let Some(interval) = self.spec.announce_interval {
            let at = self.now + interval;
            self.schedule(at, SimEvent::Announce { node });
        }
    }

    /// The node closes every connection and stops running.
    fn leave(&mut self, node: usize) {
        if self.nodes[node].presence != Presence::Joined {
            return;
        }
        let now = self.instant();
        for conn in std::mem::take(&mut self.nodes[node].conns) {
            if self.detach(conn, node) {
                self.nodes[node]
                    .torrent
                    .peer_disconnected(now, key_of(conn));
            }
            self.close(conn, node);
        }
        let n = &mut self.nodes[node];
        n.presence = Presence::Left;
        n.log.left_at = Some(self.now);
        n.timer_at = None;
        // Whatever its engine wants now is never carried out.
        while n.torrent.poll_action().is_some() {}
        self.touch(node);
    }

    pub(crate) fn is_joined(&self, node: usize) -> bool {
        self.nodes
            .get(node)
            .is_some_and(|n| n.presence == Presence::Joined)
    }

    fn latency(&self, a: usize, b: usize) -> Duration {
        self.nodes[a].spec.latency + self.nodes[b].spec.latency
    }
}

/// The engine key of connection `conn` (the same at both ends).
fn key_of(conn: usize) -> PeerKey {
    PeerKey(conn as u64)
}

/// The connection an engine key names (keys are only ever made by [`key_of`]).
fn conn_of(key: PeerKey) -> usize {
    usize::try_from(key.0).unwrap_or(usize::MAX)
}

/// Which end of `c` node `node` is.
fn side(c: &Conn, node: usize) -> Option<usize> {
    c.ends.iter().position(|&e| e == node)
}

fn pair(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

/// Transfer time of `len` bytes at `bw` bytes/s (0: instant).
fn transfer_time(len: usize, bw: u64) -> Duration {
    let nanos = (len as u64).saturating_mul(1_000_000_000);
    Duration::from_nanos(nanos.checked_div(bw).unwrap_or(0))
}

/// Encodes `message` with the wire codec and decodes it back; any difference is a framing
/// bug between engine and codec.
fn roundtrip(node: usize, message: &Message) -> Result<Message, SimError> {
    let mut buf = BytesMut::with_capacity(message.encoded_len());
    let mut decoder = FrameDecoder::after_handshake(FrameLimits::DEFAULT);
    let parsed = match message
        .encode_into(&mut buf)
        .map(|()| decoder.decode(&mut buf))
    {
        Ok(Ok(Some(Frame::Message(parsed)))) if parsed == *message && buf.is_empty() => parsed,
        _ => {
            return Err(SimError::WireRoundTrip {
                node,
                message: format!("{message:?}"),
            })
        }
    };
    Ok(parsed)
}
