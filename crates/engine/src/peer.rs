//! One connected peer as the engine tracks it: what it has, choke and interest both ways, the
//! requests we have out to it and the requests it has queued with us, rates, and the counters
//! that turn misbehaviour into a disconnect. Also the peer-facing public types.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use bitswarm_wire::{Bitfield, BlockRef};

use crate::picker::{PeerView, NONE};
use crate::rate::RateMeter;

/// A connection, named by the runtime; unique among the connections of one torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey(pub u64);

/// What the runtime learnt from the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's address (for bans and display).
    pub addr: SocketAddr,
    /// The peer id from its handshake.
    pub peer_id: [u8; 20],
    /// Both sides set the fast-extension bit (BEP 6).
    pub fast: bool,
    /// Both sides set the extension-protocol bit (BEP 10).
    pub extensions: bool,
    /// We opened the connection.
    pub outgoing: bool,
}

/// A snapshot of one peer, for display and tests.
// The flags are the protocol's own four-way choke/interest state and its kin.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStats {
    /// The peer's address.
    pub addr: SocketAddr,
    /// The peer id from its handshake.
    pub peer_id: [u8; 20],
    /// We opened the connection.
    pub outgoing: bool,
    /// We refuse its requests.
    pub am_choking: bool,
    /// We want pieces it has.
    pub am_interested: bool,
    /// It refuses our requests.
    pub peer_choking: bool,
    /// It wants pieces we have.
    pub peer_interested: bool,
    /// It holds our optimistic unchoke.
    pub optimistic: bool,
    /// It delivered nothing for `snub_timeout` while we had requests out.
    pub snubbed: bool,
    /// It has every piece.
    pub seed: bool,
    /// Pieces it has announced.
    pub pieces: u32,
    /// Payload bytes per second from it (last few seconds).
    pub download_rate: u64,
    /// Payload bytes per second to it (last few seconds).
    pub upload_rate: u64,
    /// Payload bytes received from it in total.
    pub downloaded: u64,
    /// Payload bytes sent to it in total.
    pub uploaded: u64,
    /// Our requests to it not yet answered (active ones).
    pub requests_in_flight: usize,
    /// Its requests queued with us, not yet handed to the runtime.
    pub upload_queue_len: usize,
    /// The client name from its extension handshake.
    pub client: Option<String>,
}

/// A request we sent to a peer and have not seen answered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outstanding {
    pub(crate) piece: u32,
    pub(crate) block: u32,
    pub(crate) requested_at: Instant,
    /// Timed out or snubbed: no longer counted as in flight, but accepted if it arrives.
    pub(crate) released: bool,
}

// BEP 3 names the choke/interest flags `am_*` and `peer_*`; the flags are that state.
#[allow(clippy::struct_excessive_bools, clippy::struct_field_names)]
pub(crate) struct Peer {
    pub(crate) key: PeerKey,
    pub(crate) info: PeerInfo,
    pub(crate) connected_at: Instant,
    pub(crate) connected_ms: u64,
    // What it has.
    pub(crate) has: Bitfield,
    pub(crate) seed: bool,
    /// It sent a bitfield, have-all, have-none or a have: a later bitfield is a violation.
    pub(crate) announced: bool,
    /// Pieces it has that we want and lack.
    pub(crate) interesting: u32,
    // Choke and interest.
    pub(crate) am_interested: bool,
    pub(crate) peer_interested: bool,
    pub(crate) am_choking: bool,
    pub(crate) peer_choking: bool,
    pub(crate) optimistic: bool,
    pub(crate) ever_optimistic: bool,
    pub(crate) unchoked_at: Option<Instant>,
    /// It unchoked us at least once.
    pub(crate) ever_unchoked_us: bool,
    pub(crate) last_unchoked: Option<Instant>,
    pub(crate) uploaded_at_unchoke: u64,
    pub(crate) choke_tiebreak: u32,
    // Download side.
    pub(crate) outstanding: VecDeque<Outstanding>,
    pub(crate) active: usize,
    /// The partial slot this peer is working through, or `NONE`.
    pub(crate) current: u32,
    pub(crate) snubbed: bool,
    pub(crate) last_progress: Instant,
    pub(crate) reqq: Option<u32>,
    pub(crate) allowed_fast: Vec<u32>,
    pub(crate) cancel_credit: u32,
    pub(crate) unrequested: u32,
    pub(crate) download: RateMeter,
    // Upload side.
    pub(crate) upload_queue: VecDeque<BlockRef>,
    pub(crate) upload_in_flight: usize,
    pub(crate) upload: RateMeter,
    pub(crate) bad_requests: u32,
    /// Requests while we choke it, since we last unchoked it.
    pub(crate) choked_requests: u32,
    // Liveness and identity.
    pub(crate) last_received: Instant,
    pub(crate) last_sent: Instant,
    pub(crate) upload_only: bool,
    pub(crate) client: Option<String>,
}

/// Most allowed-fast pieces remembered per peer.
pub(crate) const ALLOWED_FAST_MAX: usize = 32;

impl Peer {
    pub(crate) fn new(
        key: PeerKey,
        info: PeerInfo,
        piece_count: u32,
        now: Instant,
        now_ms: u64,
    ) -> Self {
        Self {
            key,
            info,
            connected_at: now,
            connected_ms: now_ms,
            has: Bitfield::new(piece_count),
            seed: false,
            announced: false,
            interesting: 0,
            am_interested: false,
            peer_interested: false,
            am_choking: true,
            peer_choking: true,
            optimistic: false,
            ever_optimistic: false,
            unchoked_at: None,
            ever_unchoked_us: false,
            last_unchoked: None,
            uploaded_at_unchoke: 0,
            choke_tiebreak: 0,
            outstanding: VecDeque::new(),
            active: 0,
            current: NONE,
            snubbed: false,
            last_progress: now,
            reqq: None,
            allowed_fast: Vec::new(),
            cancel_credit: 0,
            unrequested: 0,
            download: RateMeter::default(),
            upload_queue: VecDeque::new(),
            upload_in_flight: 0,
            upload: RateMeter::default(),
            bad_requests: 0,
            choked_requests: 0,
            last_received: now,
            last_sent: now,
            upload_only: false,
            client: None,
        }
    }

    pub(crate) fn view(&self) -> PeerView<'_> {
        PeerView {
            has: &self.has,
            seed: self.seed,
        }
    }

    pub(crate) fn has_piece(&self, piece: u32) -> bool {
        self.seed || self.has.has(piece)
    }

    /// Position of our request for `block` of `piece` in the outstanding queue (front first:
    /// peers answer in order, so this is O(1) on the hot path).
    pub(crate) fn find_outstanding(&self, piece: u32, block: u32) -> Option<usize> {
        self.outstanding
            .iter()
            .position(|o| o.piece == piece && o.block == block)
    }

    pub(crate) fn stats(&self, now_ms: u64) -> PeerStats {
        PeerStats {
            addr: self.info.addr,
            peer_id: self.info.peer_id,
            outgoing: self.info.outgoing,
            am_choking: self.am_choking,
            am_interested: self.am_interested,
            peer_choking: self.peer_choking,
            peer_interested: self.peer_interested,
            optimistic: self.optimistic,
            snubbed: self.snubbed,
            seed: self.seed,
            pieces: if self.seed {
                self.has.piece_count()
            } else {
                self.has.count_ones()
            },
            download_rate: self.download.rate(now_ms, 5, self.connected_ms),
            upload_rate: self.upload.rate(now_ms, 5, self.connected_ms),
            downloaded: self.download.total(),
            uploaded: self.upload.total(),
            requests_in_flight: self.active,
            upload_queue_len: self.upload_queue.len(),
            client: self.client.clone(),
        }
    }
}
