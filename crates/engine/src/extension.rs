//! The extension protocol's side of a running torrent (BEP 10): what our handshake's `m`
//! offers, what each peer's handshake told us (its ids for `ut_metadata` and `ut_pex`, its
//! listen port), dispatch of extended messages, and serving the info dictionary (BEP 9) to
//! peers that fetch it from us, within a per-peer request rate.
//!
//! A private torrent (BEP 27) offers neither extension and rejects every metadata request;
//! `TorrentConfig::pex` = false leaves PEX out.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bitswarm_wire::extended::{METADATA_PIECE_LEN, UT_METADATA, UT_PEX};
use bitswarm_wire::{ExtendedHandshake, MetadataMessage, PexMessage};
use bytes::Bytes;

use crate::torrent::Torrent;
use crate::{UT_METADATA_ID, UT_PEX_ID};

/// Metadata requests a peer may send at once before it is rate limited (token bucket size).
pub const METADATA_REQUEST_BURST: u32 = 128;
/// Metadata requests per second a peer earns back after a burst.
pub const METADATA_REQUESTS_PER_SEC: u32 = 32;

/// What the extension handshake and extended messages told us about one peer.
#[derive(Debug, Clone)]
pub(crate) struct PeerExtensions {
    /// The peer's id for `ut_metadata`.
    pub(crate) ut_metadata: Option<u8>,
    /// The peer's id for `ut_pex`.
    pub(crate) ut_pex: Option<u8>,
    /// The peer's listen port (`p`), to tell others about an incoming peer.
    pub(crate) listen_port: Option<u16>,
    /// Metadata request tokens left, and when they were last refilled.
    tokens: u32,
    refilled: Instant,
    /// When our next PEX message to it is due.
    pub(crate) pex_due: Option<Instant>,
    /// The addresses our PEX messages told it are connected.
    pub(crate) pex_told: BTreeSet<SocketAddr>,
    /// When we last took a PEX message from it.
    pub(crate) pex_received: Option<Instant>,
}

/// Per-peer extension state of a torrent, by peer slot, plus what the torrent serves.
#[derive(Debug, Default)]
pub(crate) struct Extensions {
    /// The raw info dictionary, when we have it to serve.
    pub(crate) metadata: Option<Bytes>,
    /// BEP 27: no metadata serving, no PEX.
    pub(crate) private: bool,
    pub(crate) peers: BTreeMap<u32, PeerExtensions>,
}

impl Torrent {
    /// Gives the torrent its info dictionary, exactly as hashed for the info-hash, so it can
    /// serve it to peers that have only the magnet link (BEP 9). Advertised in extension
    /// handshakes sent from now on.
    pub fn set_metadata(&mut self, metadata: Bytes) {
        self.extensions.metadata = Some(metadata).filter(|m| !m.is_empty());
    }

    /// Marks the torrent private (BEP 27): no `ut_metadata` or `ut_pex` is offered, metadata
    /// requests are rejected and PEX messages ignored.
    pub fn set_private(&mut self, private: bool) {
        self.extensions.private = private;
    }

    /// Our extension handshake: `m` with the extensions we serve, `metadata_size`, `reqq`,
    /// `v`, `p`, `upload_only`.
    pub(crate) fn our_extended_handshake(&self) -> ExtendedHandshake {
        let mut extensions = std::collections::BTreeMap::new();
        let mut metadata_size = None;
        if !self.extensions.private {
            if self.config.pex {
                extensions.insert(UT_PEX.to_owned(), UT_PEX_ID);
            }
            if let Some(metadata) = &self.extensions.metadata {
                extensions.insert(UT_METADATA.to_owned(), UT_METADATA_ID);
                metadata_size = Some(metadata.len() as u64);
            }
        }
        ExtendedHandshake {
            extensions,
            port: self.config.listen_port,
            client: Some(self.config.client_name.clone()),
            request_queue_len: u32::try_from(self.config.peer_requests_max).ok(),
            // A super-seeder poses as a peer still downloading (BEP 16).
            upload_only: (self.is_finished() && !self.is_super_seeding()).then_some(true),
            metadata_size,
            ..ExtendedHandshake::default()
        }
    }

    /// A peer's extension handshake (it may send several; the last one counts).
    pub(crate) fn on_peer_extensions(&mut self, slot: u32, handshake: &ExtendedHandshake) {
        let now = self.now;
        let no_pex = self.extensions.private || !self.config.pex;
        let state = self
            .extensions
            .peers
            .entry(slot)
            .or_insert_with(|| PeerExtensions {
                ut_metadata: None,
                ut_pex: None,
                listen_port: None,
                tokens: METADATA_REQUEST_BURST,
                refilled: now,
                pex_due: None,
                pex_told: BTreeSet::new(),
                pex_received: None,
            });
        state.ut_metadata = handshake.extension_id(UT_METADATA);
        state.ut_pex = handshake.extension_id(UT_PEX).filter(|_| !no_pex);
        if handshake.port.is_some() {
            state.listen_port = handshake.port;
        }
        state.pex_due = match (state.ut_pex, state.pex_due) {
            (None, _) => None,
            (Some(_), Some(due)) => Some(due),
            (Some(_), None) => Some(now + crate::pex::PEX_FIRST_DELAY),
        };
    }

    /// An extended message other than the handshake, by the id we gave it.
    pub(crate) fn on_extension_message(&mut self, slot: u32, id: u8, payload: &Bytes) {
        match id {
            UT_METADATA_ID => {
                // Data and rejects answer requests we never make while running.
                if let Ok(MetadataMessage::Request { piece }) = MetadataMessage::parse(payload) {
                    self.serve_metadata(slot, piece);
                }
            }
            UT_PEX_ID => {
                if let Ok(message) = PexMessage::parse(payload) {
                    self.on_pex(slot, &message);
                }
            }
            _ => {}
        }
    }

    /// Answers a metadata request with the piece, or a reject when we cannot or will not.
    fn serve_metadata(&mut self, slot: u32, piece: u32) {
        let now = self.now;
        let private = self.extensions.private;
        let metadata = self.extensions.metadata.clone();
        let Some(state) = self.extensions.peers.get_mut(&slot) else {
            return;
        };
        let Some(id) = state.ut_metadata else {
            return; // it never told us how to answer
        };
        refill(state, now);
        let allowed = state.tokens > 0;
        state.tokens = state.tokens.saturating_sub(1);
        let data = metadata
            .filter(|_| allowed && !private)
            .and_then(|m| metadata_piece(&m, piece).map(|d| (m.len() as u64, d)));
        let reply = match data {
            Some((total_size, data)) => MetadataMessage::Data {
                piece,
                total_size,
                data,
            },
            None => MetadataMessage::Reject { piece },
        };
        self.send(slot, reply.to_message(id));
    }
}

/// Piece `piece` of `metadata` (16 KiB, the last one shorter), if it exists.
fn metadata_piece(metadata: &Bytes, piece: u32) -> Option<Bytes> {
    let start = (piece as usize).checked_mul(METADATA_PIECE_LEN)?;
    if start >= metadata.len() {
        return None;
    }
    let end = (start + METADATA_PIECE_LEN).min(metadata.len());
    Some(metadata.slice(start..end))
}

/// Adds the tokens earned since the last refill, up to the burst size.
fn refill(state: &mut PeerExtensions, now: Instant) {
    let elapsed = now.saturating_duration_since(state.refilled);
    let per_token = Duration::from_secs(1) / METADATA_REQUESTS_PER_SEC;
    let earned = elapsed.as_nanos() / per_token.as_nanos().max(1);
    if earned > 0 {
        let earned = u32::try_from(earned).unwrap_or(u32::MAX);
        state.tokens = state
            .tokens
            .saturating_add(earned)
            .min(METADATA_REQUEST_BURST);
        state.refilled = now;
    }
}

#[cfg(test)]
#[path = "extension_tests.rs"]
mod tests;
