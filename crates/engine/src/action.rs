//! What the engine asks of the runtime ([`Action`]), what it reports for display
//! ([`Event`]), what the runtime reports back about hashing ([`Verification`]), and the typed
//! reasons behind disconnects and bans.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use bitswarm_wire::{BlockRef, Message};
use bytes::Bytes;

use crate::peer::PeerKey;

/// Something the runtime must do, drained with [`Torrent::poll_action`](crate::Torrent::poll_action).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send `message` to `peer` (every message except piece payloads, which are
    /// [`Action::ServeBlock`]).
    Send {
        /// The connection.
        peer: PeerKey,
        /// The message.
        message: Message,
    },
    /// Read `block` from storage and send it to `peer` as a piece message, then call
    /// [`Torrent::block_sent`](crate::Torrent::block_sent).
    ServeBlock {
        /// The connection.
        peer: PeerKey,
        /// The block to send.
        block: BlockRef,
    },
    /// Write a received block to storage (it came from `peer`, for attribution only).
    StoreBlock {
        /// The connection the block came from.
        peer: PeerKey,
        /// The piece index.
        piece: u32,
        /// Byte offset within the piece.
        offset: u32,
        /// The block, sharing the receive buffer.
        data: Bytes,
    },
    /// Every block of `piece` has been handed out with [`Action::StoreBlock`]: once they are
    /// written, hash the piece and call [`Torrent::piece_verified`](crate::Torrent::piece_verified).
    /// With `block_digests`, also report the SHA-1 of every 16 KiB block (smart ban).
    VerifyPiece {
        /// The piece index.
        piece: u32,
        /// Whether per-block digests are wanted.
        block_digests: bool,
    },
    /// Close the connection. The engine has already forgotten the peer; a later
    /// `peer_disconnected` for it is ignored.
    Disconnect {
        /// The connection.
        peer: PeerKey,
        /// Why.
        reason: DisconnectReason,
    },
    /// Never accept or open a connection to this address again for this torrent.
    Ban {
        /// The address.
        addr: IpAddr,
        /// Why.
        reason: BanReason,
    },
    /// Open an outgoing connection (the runtime applies its global limits), then call
    /// `peer_connected` or `connect_failed`.
    Connect {
        /// The address.
        addr: SocketAddr,
    },
}

/// Progress and notable happenings, for the UI; drained with
/// [`Torrent::poll_event`](crate::Torrent::poll_event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The piece passed its hash check; we have it now.
    PieceVerified(u32),
    /// The piece failed its hash check and will be downloaded again.
    PieceFailed {
        /// The piece index.
        piece: u32,
    },
    /// Every wanted piece is verified.
    Completed,
    /// An address was banned.
    PeerBanned {
        /// The address.
        addr: IpAddr,
    },
}

/// The runtime's answer to [`Action::VerifyPiece`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// The piece's SHA-1 matched.
    Passed {
        /// One SHA-1 per 16 KiB block, when they were asked for (otherwise may be `None`).
        block_digests: Option<Vec<[u8; 20]>>,
    },
    /// The piece's SHA-1 did not match.
    Failed {
        /// One SHA-1 per 16 KiB block, when they were asked for (otherwise may be `None`).
        block_digests: Option<Vec<[u8; 20]>>,
    },
}

/// Why the engine closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The peer broke the protocol.
    Protocol(ProtocolViolation),
    /// The peer's address is banned.
    Banned,
    /// We and the peer are both seeds: neither wants anything.
    BothSeeds,
    /// The peer sent nothing for `peer_timeout`.
    Inactive,
    /// `connections_max` peers are connected already.
    TooManyPeers,
    /// A connection with this key is already open.
    DuplicateKey,
    /// A connection to the same peer id is already open (both sides dialled, or a
    /// re-announce); the newer connection is the one closed.
    DuplicatePeer,
}

/// A protocol violation that ends a connection (never a panic, never an error unwinding the
/// torrent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolViolation {
    /// A message arrived for a connection the engine was never told about.
    UnknownPeer,
    /// A bitfield of the wrong length or with spare bits set.
    BadBitfield,
    /// A bitfield, have-all or have-none after the peer already said what it has.
    LateBitfield,
    /// A have for a piece index out of range.
    HaveOutOfRange,
    /// A fast-extension message from a peer that did not negotiate it.
    FastWithoutExtension,
    /// A piece message whose data length does not match the block we asked for.
    BlockLength,
    /// Too many blocks we did not ask for.
    UnrequestedBlocks,
    /// Too many invalid requests, or requests while choked.
    BadRequests,
    /// An extension handshake that is not a dictionary.
    BadExtensionHandshake,
}

/// Why an address was banned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanReason {
    /// It alone sent every block of a piece that failed its hash check.
    SoleContributor {
        /// The piece.
        piece: u32,
    },
    /// Smart ban: a block it sent for a failed attempt differs from the block of the attempt
    /// that passed.
    BadBlock {
        /// The piece.
        piece: u32,
    },
    /// It shared in `hash_failures_ban` failed pieces.
    HashFailures,
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Protocol(v) => write!(f, "protocol violation: {v:?}"),
            Self::Banned => f.write_str("banned"),
            Self::BothSeeds => f.write_str("both seeds"),
            Self::Inactive => f.write_str("inactive"),
            Self::TooManyPeers => f.write_str("too many peers"),
            Self::DuplicateKey => f.write_str("duplicate connection key"),
            Self::DuplicatePeer => f.write_str("already connected to this peer id"),
        }
    }
}
