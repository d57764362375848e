//! The simulated runtime: carries out each engine's actions (messages onto links, blocks into
//! and out of stores, hashing, connections) and applies scheduled events back to engines.
//! Protocol rules visible from outside are checked here as messages leave a node.

use std::net::SocketAddr;

use bitswarm_engine::{Action, PeerInfo, Verification};
use bitswarm_wire::{BlockRef, Frame, FrameDecoder, FrameLimits, Message};
use bytes::{Bytes, BytesMut};

use super::{transfer_time, Conn, Sim, SimError, SimEvent};

impl Sim {
    /// Carries out every pending action of every node (actions may create more; loops until
    /// all queues are empty, at most `ACTIONS_PER_STEP_MAX` actions).
    pub(crate) fn drain_actions(&mut self) -> Result<(), SimError> {
        let mut carried = 0usize;
        loop {
            let mut any = false;
            for i in 0..self.nodes.len() {
                while let Some(action) = self.nodes[i].torrent.poll_action() {
                    any = true;
                    carried += 1;
                    if carried > super::ACTIONS_PER_STEP_MAX {
                        return Err(SimError::ActionFlood { node: i });
                    }
                    self.touch(i);
                    self.carry_out(i, action)?;
                }
                while self.nodes[i].torrent.poll_event().is_some() {}
                if self.nodes[i].completed_at.is_none() && self.nodes[i].torrent.is_complete() {
                    self.nodes[i].completed_at = Some(self.now);
                }
            }
            if !any {
                return Ok(());
            }
        }
    }

    fn carry_out(&mut self, i: usize, action: Action) -> Result<(), SimError> {
        match action {
            Action::Send { peer, message } => self.send(i, peer.0, message)?,
            Action::ServeBlock { peer, block } => self.serve(i, peer.0, block)?,
            Action::StoreBlock {
                piece,
                offset,
                data,
                ..
            } => {
                let start =
                    u64::from(piece) * u64::from(self.geometry.piece_length) + u64::from(offset);
                let store = &mut self.nodes[i].store;
                store[start as usize..start as usize + data.len()].copy_from_slice(&data);
            }
            Action::VerifyPiece {
                piece,
                block_digests,
            } => {
                let at = self.now + self.spec.hash_delay;
                self.schedule(
                    at,
                    SimEvent::Verify {
                        node: i,
                        piece,
                        digests: block_digests,
                    },
                );
            }
            Action::Disconnect { peer, reason } => {
                self.nodes[i].disconnects.push(reason);
                self.close(peer.0, i);
            }
            Action::Ban { addr, reason } => self.nodes[i].bans.push((addr, reason)),
            Action::Connect { addr } => self.connect(i, addr),
        }
        Ok(())
    }

    fn send(&mut self, i: usize, conn: u64, message: Message) -> Result<(), SimError> {
        let Some(j) = self.open_other(conn, i) else {
            return Ok(());
        };
        self.check_outgoing(i, j, &message)?;
        let node = &mut self.nodes[i];
        match &message {
            Message::Request(b) => {
                node.requests_sent += 1;
                node.first_request_at.get_or_insert(self.now);
                *node
                    .requests_per_block
                    .entry((b.piece, b.offset))
                    .or_insert(0) += 1;
            }
            Message::Cancel(_) => node.cancels_sent += 1,
            Message::Unchoke if node.spec.behaviour == super::Behaviour::FreeRider => return Ok(()),
            _ => {}
        }
        let at = self.now + self.link_latency(i, j);
        let at = self.in_order(i, j, at);
        self.schedule(
            at,
            SimEvent::Arrive {
                conn,
                from: i,
                to: j,
                message,
            },
        );
        Ok(())
    }

    /// What every node may say, checked as it leaves: HAVE (and bitfields) only for verified
    /// pieces; requests only for pieces we lack and the peer announced.
    fn check_outgoing(&self, i: usize, j: usize, message: &Message) -> Result<(), SimError> {
        let verified = &self.nodes[i].verified;
        match message {
            Message::Have { piece } if !verified.has(*piece) => Err(SimError::HaveBeforeVerified {
                node: i,
                piece: *piece,
            }),
            Message::HaveAll if !verified.is_complete() => {
                Err(SimError::HaveBeforeVerified { node: i, piece: 0 })
            }
            Message::Bitfield(bytes) if bytes[..] != verified.as_bytes()[..] => {
                Err(SimError::HaveBeforeVerified { node: i, piece: 0 })
            }
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

    fn serve(&mut self, i: usize, conn: u64, block: BlockRef) -> Result<(), SimError> {
        if !self.nodes[i].verified.has(block.piece) {
            return Err(SimError::ServeUnverified {
                node: i,
                piece: block.piece,
            });
        }
        let Some(j) = self.open_other(conn, i) else {
            return Ok(());
        };
        let start = u64::from(block.piece) * u64::from(self.geometry.piece_length)
            + u64::from(block.offset);
        let range = start as usize..start as usize + block.length as usize;
        let mut data = self.nodes[i].store[range].to_vec();
        if let super::Behaviour::Corrupt { one_in } = self.nodes[i].spec.behaviour {
            let h = u64::from(block.piece) * 7919
                + u64::from(block.offset / 16384) * 104_729
                + self.spec.seed;
            if h % u64::from(one_in.max(1)) == 0 {
                data[0] ^= 0xff;
            }
        }
        let len = data.len();
        let up_start = self.now.max(self.nodes[i].up_free);
        let up_end = up_start + transfer_time(len, self.nodes[i].spec.up_bw);
        self.nodes[i].up_free = up_end;
        let arrive = up_end + self.link_latency(i, j);
        let arrive = self.in_order(i, j, arrive);
        self.nodes[i].uploaded_to[j] += len as u64;
        let message = Message::Piece {
            piece: block.piece,
            offset: block.offset,
            data: Bytes::from(data),
        };
        self.schedule(
            up_end,
            SimEvent::BlockSent {
                conn,
                node: i,
                block,
            },
        );
        self.schedule(
            arrive,
            SimEvent::Arrive {
                conn,
                from: i,
                to: j,
                message,
            },
        );
        Ok(())
    }

    /// A message reached the receiving host: piece data queues through its downlink (FIFO by
    /// arrival), control messages only keep their place behind earlier data of the same link.
    fn arrive(&mut self, conn: u64, from: usize, to: usize, message: Message) {
        let link_last = self
            .deliver_last
            .get(&(from, to))
            .copied()
            .unwrap_or_default();
        let deliver = match &message {
            Message::Piece { data, .. } => {
                let start = self.now.max(self.nodes[to].down_free);
                let done = start + transfer_time(data.len(), self.nodes[to].spec.down_bw);
                self.nodes[to].down_free = done;
                done.max(link_last)
            }
            _ => self.now.max(link_last),
        };
        self.deliver_last.insert((from, to), deliver);
        self.schedule(deliver, SimEvent::Deliver { conn, to, message });
    }

    /// Keeps a link's arrivals in sending order.
    fn in_order(&mut self, i: usize, j: usize, at: std::time::Duration) -> std::time::Duration {
        let last = self.link_last.entry((i, j)).or_default();
        *last = (*last).max(at);
        *last
    }

    fn open_other(&self, conn: u64, i: usize) -> Option<usize> {
        self.conns.get(&conn).filter(|c| c.open)?;
        self.other(conn, i)
    }

    fn close(&mut self, conn: u64, i: usize) {
        let Some(j) = self.open_other(conn, i) else {
            return;
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            c.open = false;
        }
        let at = self.now + self.link_latency(i, j);
        self.schedule(at, SimEvent::Closed { conn, node: j });
    }

    fn connect(&mut self, i: usize, addr: SocketAddr) {
        let target = self.nodes.iter().position(|n| n.addr == addr);
        let connected = |j| {
            self.conns
                .values()
                .any(|c| c.open && ((c.a == i && c.b == j) || (c.a == j && c.b == i)))
        };
        match target {
            Some(j) if j != i && self.nodes[j].joined && !connected(j) => {
                let at = self.now + self.link_latency(i, j) * 3;
                self.schedule(at, SimEvent::Connect { from: i, to: j });
            }
            Some(j) => {
                let at = self.now + self.link_latency(i, j) * 2;
                self.schedule(at, SimEvent::ConnectFailed { node: i, addr });
            }
            None => self.schedule(self.now, SimEvent::ConnectFailed { node: i, addr }),
        }
    }

    pub(crate) fn apply(&mut self, event: SimEvent) {
        let now = self.instant();
        match event {
            SimEvent::Deliver { conn, to, message } => {
                if self.conns.get(&conn).is_some_and(|c| c.open) {
                    let message = if self.spec.wire_roundtrip {
                        roundtrip(&message)
                    } else {
                        message
                    };
                    self.nodes[to]
                        .torrent
                        .peer_message(now, Self::key_of(conn), message);
                    self.touch(to);
                }
            }
            SimEvent::Arrive {
                conn,
                from,
                to,
                message,
            } => self.arrive(conn, from, to, message),
            SimEvent::BlockSent { conn, node, block } => {
                self.nodes[node]
                    .torrent
                    .block_sent(now, Self::key_of(conn), block);
                self.touch(node);
            }
            SimEvent::Verify {
                node,
                piece,
                digests,
            } => self.apply_verify(node, piece, digests),
            SimEvent::Connect { from, to } => self.establish(from, to),
            SimEvent::ConnectFailed { node, addr } => {
                self.nodes[node].torrent.connect_failed(now, addr);
                self.touch(node);
            }
            SimEvent::Closed { conn, node } => {
                self.nodes[node]
                    .torrent
                    .peer_disconnected(now, Self::key_of(conn));
                self.touch(node);
            }
            SimEvent::Join { node } => {
                self.nodes[node].joined = true;
                let addrs: Vec<SocketAddr> = (0..self.nodes.len())
                    .filter(|&j| j != node)
                    .map(|j| self.nodes[j].addr)
                    .collect();
                self.nodes[node].torrent.add_peer_candidates(now, addrs);
                self.touch(node);
            }
            SimEvent::Leave { node } => self.leave(node),
        }
    }

    /// The node closes every connection and stops running.
    fn leave(&mut self, node: usize) {
        let mut conns: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.open && (c.a == node || c.b == node))
            .map(|(&id, _)| id)
            .collect();
        conns.sort_unstable();
        let now = self.instant();
        for conn in conns {
            self.close(conn, node);
            self.nodes[node]
                .torrent
                .peer_disconnected(now, Self::key_of(conn));
        }
        self.nodes[node].joined = false;
        self.touch(node);
    }

    fn apply_verify(&mut self, node: usize, piece: u32, digests: bool) {
        let (ok, block_digests) = self.verify(node, piece, digests);
        let result = if ok {
            let _ = self.nodes[node].verified.set(piece);
            Verification::Passed { block_digests }
        } else {
            self.nodes[node].hash_failures += 1;
            Verification::Failed { block_digests }
        };
        let now = self.instant();
        self.nodes[node].torrent.piece_verified(now, piece, result);
        self.touch(node);
    }

    fn establish(&mut self, from: usize, to: usize) {
        let already = self
            .conns
            .values()
            .any(|c| c.open && ((c.a == from && c.b == to) || (c.a == to && c.b == from)));
        let now = self.instant();
        if already || !self.nodes[to].joined || !self.nodes[from].joined {
            let addr = self.nodes[to].addr;
            self.nodes[from].torrent.connect_failed(now, addr);
            self.touch(from);
            return;
        }
        self.seq += 1;
        let conn = self.seq;
        self.conns.insert(
            conn,
            Conn {
                a: from,
                b: to,
                open: true,
            },
        );
        let info = |me: usize, other: usize, outgoing: bool| {
            let mut addr = self.nodes[other].addr;
            if !outgoing {
                addr.set_port(40000 + conn as u16);
            }
            PeerInfo {
                addr,
                peer_id: [other as u8; 20],
                fast: self.nodes[me].spec.fast && self.nodes[other].spec.fast,
                extensions: self.nodes[me].spec.extensions && self.nodes[other].spec.extensions,
                outgoing,
            }
        };
        let (out, inc) = (info(from, to, true), info(to, from, false));
        for (node, info) in [(from, out), (to, inc)] {
            self.nodes[node].connected_at.get_or_insert(self.now);
            self.nodes[node]
                .torrent
                .peer_connected(now, Self::key_of(conn), info);
            self.touch(node);
        }
    }
}

/// Encodes `message` with the wire codec and decodes it back; a mismatch panics (it would be a
/// framing bug between engine and codec, not a simulation outcome).
fn roundtrip(message: &Message) -> Message {
    let mut buf = BytesMut::new();
    message
        .encode_into(&mut buf)
        .expect("engine emitted an unencodable message");
    let mut decoder = FrameDecoder::after_handshake(FrameLimits::DEFAULT);
    let parsed = match decoder.decode(&mut buf) {
        Ok(Some(Frame::Message(m))) => m,
        other => panic!("wire round trip of {message:?} gave {other:?}"),
    };
    assert_eq!(&parsed, message, "wire round trip changed the message");
    assert!(buf.is_empty(), "wire round trip left bytes behind");
    parsed
}
