//! A torrent task's connections: admitting a handshaken connection (limits, bans, pause),
//! starting outgoing connects, and feeding what connections report to the engine.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bitswarm_engine::{PeerInfo, PeerKey};

use super::{Command, Phase, TorrentTask};
use crate::handshake;
use crate::peer::{BlocksSent, Connected, LinkLimits, PeerInput, PeerLink};
use crate::rate_limit::Throttle;

impl TorrentTask {
    /// A connection finished its handshake: start its tasks and tell the engine.
    pub(super) fn connected(&mut self, now: Instant, conn: Connected) {
        if conn.outgoing {
            while self.connects.try_join_next().is_some() {}
        }
        let addr = conn.addr;
        let refuse = self.phase != Phase::Active
            || self.banned.contains(&addr.ip())
            || self.links.len() >= self.shared.config.connections_per_torrent_max;
        let Some(engine) = self.engine.as_mut().filter(|_| !refuse) else {
            tracing::debug!(%addr, "connection refused by the torrent");
            if conn.outgoing {
                if let Some(engine) = &mut self.engine {
                    engine.connect_failed(now, addr);
                }
            }
            return;
        };
        let ours = handshake::our_reserved();
        let info = PeerInfo {
            addr,
            peer_id: conn.remote.peer_id.0,
            fast: ours.fast() && conn.remote.reserved.fast(),
            extensions: ours.extension_protocol() && conn.remote.reserved.extension_protocol(),
            outgoing: conn.outgoing,
        };
        let key = PeerKey(self.shared.next_peer_key.fetch_add(1, Ordering::Relaxed));
        let limits = LinkLimits {
            chunks: Arc::clone(&self.shared.chunks),
            send_buffer_max: self.shared.config.peer_send_buffer_max,
            throttle: Throttle::new(
                Arc::clone(&self.shared.rate_limits),
                Arc::clone(&self.rate_limits),
            ),
            sent: self.sent_tx.clone(),
        };
        tracing::debug!(%addr, outgoing = conn.outgoing, ?key, "peer connected");
        let link = PeerLink::spawn(conn, key, self.peer_tx.clone(), limits);
        self.links.insert(key, link);
        engine.peer_connected(now, key, info);
        self.links_changed();
    }

    /// A writer wrote the last byte of these blocks: they count as uploaded now, and the
    /// engine may serve the peer more. Blocks of a connection that has closed since still
    /// count (the engine adds them to the torrent's total only).
    pub(super) fn blocks_sent(&mut self, now: Instant, sent: BlocksSent) {
        if let Some(engine) = &mut self.engine {
            for block in sent.blocks {
                engine.block_sent(now, sent.key, block);
            }
        }
    }

    /// Input from a connection's reader or writer.
    pub(super) fn peer_input(&mut self, now: Instant, input: PeerInput) {
        match input {
            PeerInput::Messages { key, messages } => {
                if !self.links.contains_key(&key) {
                    return; // closed meanwhile; the engine already forgot it
                }
                if let Some(engine) = &mut self.engine {
                    for message in messages {
                        engine.peer_message(now, key, message);
                    }
                }
            }
            PeerInput::Closed { key, reason } => {
                if let Some(link) = self.links.remove(&key) {
                    tracing::debug!(addr = %link.addr, ?reason, "connection closed");
                    if let Some(engine) = &mut self.engine {
                        engine.peer_disconnected(now, key);
                    }
                    self.links_changed();
                }
            }
            PeerInput::Drained { key } => {
                let Some(link) = self.links.get_mut(&key) else {
                    return;
                };
                if link.release_held() {
                    self.dirty.push(key);
                }
            }
        }
    }

    /// Opens an outgoing connection on its own task; the result comes back as a command.
    pub(super) fn spawn_connect(&mut self, addr: SocketAddr) {
        if self.banned.contains(&addr.ip()) {
            if let Some(engine) = &mut self.engine {
                engine.connect_failed(Instant::now(), addr);
            }
            return;
        }
        let shared = Arc::clone(&self.shared);
        let cmd = self.cmd_tx.clone();
        let info_hash = self.info_hash;
        self.connects.spawn(async move {
            let command = match handshake::connect(&shared, addr, info_hash).await {
                Ok(conn) => Command::Connected(Box::new(conn)),
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "connect failed");
                    Command::ConnectFailed(addr)
                }
            };
            let _ = cmd.send(command);
        });
    }

    /// Publishes the connection count (read by the accept path for the per-torrent limit).
    pub(super) fn links_changed(&mut self) {
        self.peer_count.store(self.links.len(), Ordering::Relaxed);
    }
}
