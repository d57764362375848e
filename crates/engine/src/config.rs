//! Every tunable bound of a torrent, named with its unit last, with libtorrent-like defaults.
//! A configuration is clamped to sane ranges once, when the torrent is built, so the rest of
//! the engine can rely on `min <= max`, non-zero intervals and so on.

use std::time::Duration;

/// The most peers one block may be requested from at once (endgame duplicates plus requests
/// that timed out but may still arrive). [`TorrentConfig::endgame_duplicates_max`] is clamped
/// to this.
pub const BLOCK_HOLDERS_MAX: usize = 4;

/// Fewest blocks a peer may have handed to the runtime (see
/// [`TorrentConfig::upload_queue_time`]): one being written and one ready behind it.
pub const UPLOAD_WINDOW_MIN: usize = 2;

/// Longest interval or timeout accepted (a day), so that `now + interval` cannot overflow.
const DURATION_MAX_SECS: u64 = 86_400;

/// The tunables of one torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorrentConfig {
    /// Our own peer id, so that of two connections between us and a peer both ends keep the
    /// same one (see [`Torrent::peer_connected`](crate::Torrent::peer_connected)); all zeros:
    /// unknown, and the newer connection goes.
    pub own_peer_id: [u8; 20],
    /// Regular unchoke slots (the optimistic unchoke comes on top).
    pub unchoke_slots: usize,
    /// How often the regular unchoke slots are reassigned.
    pub rechoke_interval: Duration,
    /// How often the optimistic unchoke rotates.
    pub optimistic_interval: Duration,
    /// Target time's worth of data in flight per peer: the pipeline depth is
    /// `download rate × request_queue_time / block length`, clamped (libtorrent: 3 s). Blocks
    /// asked of a peer are promised to it: the deeper a slow peer's pipeline, the more of what
    /// we lack a faster peer that unchokes us cannot be asked for (sim, seeds 20–31: 3 s →
    /// 2 s took the fluid test's swarm from 1.249 to 1.237× T*, the netns-shaped one from
    /// 1.135 to 1.120×).
    pub request_queue_time: Duration,
    /// Fewest requests kept in flight to an unchoking peer that is not snubbed.
    pub request_queue_min: usize,
    /// Most requests kept in flight to one peer (also capped by the peer's `reqq`).
    pub request_queue_max: usize,
    /// A request outstanding this long is handed back to the picker so another peer can be
    /// asked (the request stays valid: if the block arrives later it is still taken).
    pub block_timeout: Duration,
    /// A peer that delivers nothing this long while requests are out is snubbed: its requests
    /// are handed back, it keeps at most one in flight and gets no regular unchoke slot.
    pub snub_timeout: Duration,
    /// In endgame, at most this many peers are asked for one block at once.
    pub endgame_duplicates_max: usize,
    /// `ServeBlock` actions outstanding per peer (blocks handed to the runtime, not yet sent),
    /// at most; see `upload_queue_time` for how many are actually handed out.
    pub upload_in_flight_max: usize,
    /// Target time's worth of blocks handed to the runtime and not yet sent, per unchoked
    /// peer: our upload rate × this, shared among the unchoked peers, in blocks, at least
    /// [`UPLOAD_WINDOW_MIN`] and at most `upload_in_flight_max`. Our messages to a peer
    /// (requests, HAVEs) wait behind the blocks queued for it, so a slow uploader with
    /// deep queues asks for its own pieces, and announces them, seconds late (sim: a
    /// 64 KiB/s leecher with 8 blocks per peer queued 10 s; the last completion then waits
    /// on its requests).
    pub upload_queue_time: Duration,
    /// Requests we queue from one peer (the `reqq` we advertise); more are refused.
    pub peer_requests_max: usize,
    /// Hash-failure strikes before a peer that shared blame for failed pieces is banned.
    pub hash_failures_ban: u32,
    /// Pick pieces at random (not rarest first) until this many are verified.
    pub random_first_pieces: u32,
    /// Our TCP listen port, for the extension handshake's `p`.
    pub listen_port: Option<u16>,
    /// Our client name and version, for the extension handshake's `v`.
    pub client_name: String,
    /// Most connected peers; further connections are refused.
    pub connections_max: usize,
    /// Most peer addresses remembered as connection candidates.
    pub peer_candidates_max: usize,
    /// Connection attempts to one candidate before it is forgotten.
    pub connect_attempts_max: u32,
    /// Blocks a peer may send that we did not ask for (beyond answers to our cancels)
    /// before it is disconnected.
    pub unrequested_blocks_max: u32,
    /// Invalid or refused requests a peer may send before it is disconnected.
    pub bad_requests_max: u32,
    /// A peer that sends nothing at all (not even a keep-alive) this long is disconnected.
    pub peer_timeout: Duration,
    /// We send a keep-alive to a peer we have sent nothing to for this long.
    pub keepalive_interval: Duration,
    /// Seed mode round robin: a peer keeps its unchoke until it has received this many
    /// pieces' worth of data since it was unchoked; then, at the next piece boundary, its slot
    /// goes to a waiting peer at once (libtorrent: `seeding_piece_quota`, applied at rechokes).
    pub seed_quota_pieces: u32,
    /// The optimistic unchoke moves on once its holder has received this many pieces' worth
    /// since it was unchoked (when another peer is waiting), not only every
    /// `optimistic_interval`; 0: only on the interval.
    pub optimistic_quota_pieces: u32,
    /// Super-seed (BEP 16) when the torrent starts complete: reveal one piece per peer so
    /// each piece is uploaded about once (see `super_seed.rs`).
    pub super_seeding: bool,
    /// Peer exchange (BEP 11, `ut_pex`): tell peers whom we are connected to and take the
    /// peers they tell us about. Never for a private torrent, whatever this says.
    pub pex: bool,
}

impl Default for TorrentConfig {
    fn default() -> Self {
        Self {
            own_peer_id: [0; 20],
            unchoke_slots: 4,
            rechoke_interval: Duration::from_secs(10),
            optimistic_interval: Duration::from_secs(30),
            request_queue_time: Duration::from_secs(2),
            request_queue_min: 4,
            request_queue_max: 500,
            block_timeout: Duration::from_secs(20),
            snub_timeout: Duration::from_secs(60),
            endgame_duplicates_max: 2,
            upload_in_flight_max: 8,
            upload_queue_time: Duration::from_millis(500),
            peer_requests_max: 500,
            hash_failures_ban: 4,
            random_first_pieces: 4,
            listen_port: None,
            client_name: concat!("bitswarm ", env!("CARGO_PKG_VERSION")).to_owned(),
            connections_max: 50,
            peer_candidates_max: 2000,
            connect_attempts_max: 3,
            unrequested_blocks_max: 64,
            bad_requests_max: 64,
            peer_timeout: Duration::from_secs(120),
            keepalive_interval: Duration::from_secs(60),
            seed_quota_pieces: 1,
            optimistic_quota_pieces: 1,
            super_seeding: false,
            pex: true,
        }
    }
}

impl TorrentConfig {
    /// This configuration with every value moved into its usable range: intervals between a
    /// second and a day, non-zero queue bounds, `request_queue_min <= request_queue_max`, endgame duplicates within
    /// `1..=BLOCK_HOLDERS_MAX`.
    #[must_use]
    pub fn sanitized(mut self) -> Self {
        let second = Duration::from_secs(1);
        let day = Duration::from_secs(DURATION_MAX_SECS);
        self.rechoke_interval = self.rechoke_interval.clamp(second, day);
        self.optimistic_interval = self.optimistic_interval.clamp(second, day);
        self.request_queue_time = self
            .request_queue_time
            .clamp(Duration::from_millis(100), day);
        self.request_queue_max = self.request_queue_max.max(1);
        self.request_queue_min = self.request_queue_min.clamp(1, self.request_queue_max);
        self.block_timeout = self.block_timeout.clamp(second, day);
        self.snub_timeout = self.snub_timeout.clamp(second, day);
        self.endgame_duplicates_max = self.endgame_duplicates_max.clamp(1, BLOCK_HOLDERS_MAX);
        self.upload_in_flight_max = self.upload_in_flight_max.max(1);
        self.upload_queue_time = self.upload_queue_time.clamp(Duration::from_millis(10), day);
        self.peer_requests_max = self.peer_requests_max.max(1);
        self.hash_failures_ban = self.hash_failures_ban.max(1);
        self.connect_attempts_max = self.connect_attempts_max.max(1);
        self.peer_timeout = self.peer_timeout.clamp(second, day);
        self.keepalive_interval = self.keepalive_interval.clamp(second, day);
        self.seed_quota_pieces = self.seed_quota_pieces.max(1);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitized_fixes_inverted_and_zero_bounds() {
        let c = TorrentConfig {
            request_queue_min: 10,
            request_queue_max: 0,
            endgame_duplicates_max: 99,
            rechoke_interval: Duration::ZERO,
            ..TorrentConfig::default()
        }
        .sanitized();
        assert_eq!((c.request_queue_min, c.request_queue_max), (1, 1));
        assert_eq!(c.endgame_duplicates_max, BLOCK_HOLDERS_MAX);
        assert_eq!(c.rechoke_interval, Duration::from_secs(1));
        let d = TorrentConfig::default();
        assert_eq!(d.clone().sanitized(), d, "defaults are already sane");
    }
}
