//! The per-torrent core of bitswarm: peer states, piece picker, request pipelining, choker,
//! block timeouts, snubbing and smart ban, as one sans-IO state machine, [`Torrent`].
//!
//! **Shape.** The runtime feeds the torrent what happened — [`Torrent::peer_connected`],
//! [`Torrent::peer_message`], [`Torrent::block_sent`], [`Torrent::piece_verified`],
//! [`Torrent::handle_timeout`] — always with the current time as `now`, and drains what to do
//! with [`Torrent::poll_action`] ([`Action`]: send a message, serve a block from storage,
//! store a block, verify a piece, disconnect, ban, connect) and what to show with
//! [`Torrent::poll_event`]. It asks [`Torrent::poll_timeout`] when to call again.
//!
//! **Invariants.**
//! - No I/O, no clock reads, no global RNG: time is the `now` passed in, randomness comes from
//!   a `SmallRng` seeded by the caller, so a whole swarm replays from one seed. No
//!   `HashMap`/`HashSet` in the engine's state: every map whose iteration order could reach
//!   an action is a `BTreeMap`/`BTreeSet` or the peer slab (a hash map's order differs from
//!   process to process and broke replay with PEX on).
//! - One owner (`&mut self`), no locks, no `Err` that unwinds: a peer's misbehaviour becomes a
//!   `Disconnect` or `Ban` action, never a panic.
//! - HAVE is sent only after [`Torrent::piece_verified`] reported `Passed`; a piece is ours
//!   only then. We never request a piece the peer lacks or we have, and never serve a piece we
//!   have not verified, or to a peer we choke.
//! - At most `unchoke_slots` regular unchokes plus one optimistic; at most
//!   `endgame_duplicates_max` peers asked for one block.
//! - The per-block path (a piece message in, a `StoreBlock` and a new request out) is O(1):
//!   peers in a slab behind a `BTreeMap<PeerKey, _>` (O(log `connections_max`)), requests found at the front of the peer's
//!   queue, the next block from the peer's current piece; starting a new piece is
//!   O(availability buckets) or O(the peer's pieces), never a scan per block. Nothing is
//!   allocated per block but the action queue entry.
//!   [`Torrent::check_invariants`] verifies all of this for tests.
//!
//! **Policies** (details in each module's docs).
//! - Picking (`requests.rs`, `picker.rs`, `partial.rs`): the peer's own piece, then abandoned
//!   in-progress pieces, then a new piece (random while fewer than `random_first_pieces` are
//!   verified, then rarest first), then other peers' pieces; never a block the peer already
//!   holds a request for. Endgame (every wanted block requested or received): idle peers
//!   duplicate one block at a time, each block asked of at most `endgame_duplicates_max`
//!   peers, duplicates cancelled on arrival. Slow requests are released after
//!   `block_timeout` (still accepted if they arrive); a peer silent for `snub_timeout` is
//!   snubbed and its requests cancelled.
//! - Choking (`choker.rs`): tit-for-tat on the last 20 s while downloading, round robin once
//!   finished, one optimistic slot; a newly interested peer is unchoked at once when a slot
//!   is free; the seed's round-robin slots and the optimistic slot move on at a piece
//!   boundary once their holder had its quota (one piece by default) and someone waits.
//! - From a seed, a piece no other peer has goes first (also while picking random first
//!   pieces, and before abandoned partial pieces other peers can finish), so an initial
//!   seed's upload goes to pieces nobody else can give.
//! - Smart ban (`smart_ban.rs`, `verify.rs`): a sole sender of a failed piece is banned; a
//!   shared failure keeps per-block digests, the piece is re-downloaded by one peer, and the
//!   senders of blocks that differ from the passing attempt are banned.
//!
//! - Super-seeding (`super_seed.rs`, BEP 16, off by default): a torrent complete from the
//!   start hides its pieces and shows each peer one piece at a time, the next only once the
//!   last has spread to another peer, so it uploads each piece about once.
//!
//! - Extensions (`extension.rs`, `pex.rs`): given the info dictionary
//!   ([`Torrent::set_metadata`]) the torrent serves it (BEP 9, `ut_metadata`, requests
//!   rate-limited per peer); PEX (BEP 11) tells each peer who joined and left every minute and
//!   turns what peers tell into candidates. Neither for a private torrent
//!   ([`Torrent::set_private`]). [`metadata::MetadataFetch`] is the other half of BEP 9: a
//!   separate state machine that fetches the info dictionary of a magnet link from several
//!   peers before a `Torrent` can exist.
//!
//! **Deliberately absent.** Sockets, framing, timers, storage and hashing are the runtime's;
//! this crate never sees a file or a byte of the handshake, and never hashes metadata (the
//! caller checks it against the info-hash). The DHT port is not handled. We do not send
//! allowed-fast sets (that needs the info-hash), but honour the ones peers send.

mod action;
mod candidates;
mod choker;
mod config;
mod extension;
mod geometry;
mod invariants;
mod messages;
pub mod metadata;
mod partial;
mod peer;
mod pex;
mod picker;
mod rate;
mod requests;
mod smart_ban;
mod super_seed;
mod torrent;
mod upload;
mod verify;

pub use action::{Action, BanReason, DisconnectReason, Event, ProtocolViolation, Verification};
pub use config::{TorrentConfig, BLOCK_HOLDERS_MAX, UPLOAD_WINDOW_MIN};
pub use extension::{METADATA_REQUESTS_PER_SEC, METADATA_REQUEST_BURST};
pub use geometry::{Geometry, BLOCK_LEN};
pub use invariants::InvariantViolation;
pub use peer::{PeerInfo, PeerKey, PeerStats};
pub use pex::{
    PEX_ADDED_MAX, PEX_DROPPED_MAX, PEX_FIRST_DELAY, PEX_INTERVAL, PEX_RECEIVED_ADDED_MAX,
    PEX_RECEIVE_INTERVAL_MIN,
};
pub use rate::RATE_WINDOW_SECS;
pub use smart_ban::{SUSPECT_ATTEMPTS_MAX, SUSPECT_PIECES_MAX};
pub use super_seed::SUPER_SEED_SPREAD_WAIT_MAX;
pub use torrent::{Torrent, TorrentStats, TICK_INTERVAL};

/// The extended message id we will give `ut_metadata` (BEP 9) in our handshake's `m`.
pub const UT_METADATA_ID: u8 = 1;
/// The extended message id we will give `ut_pex` (BEP 11) in our handshake's `m`.
pub const UT_PEX_ID: u8 = 2;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
