//! Every limit of a session, named with its unit last, with defaults measured on loopback
//! transfers (see `examples/transfer.rs`).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bitswarm_engine::TorrentConfig;
use bitswarm_storage::{DISK_THREADS_DEFAULT, PIECE_BUFFER_BYTES_MAX_DEFAULT};

use crate::rate_limit::RateLimits;

/// The tunables of a [`Session`](crate::Session).
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Where to accept peer connections; port 0 picks a free port (see
    /// [`Session::listen_addr`](crate::Session::listen_addr)).
    pub listen_addr: SocketAddr,
    /// Most peer connections open at once (handshaking or established), all torrents together.
    pub connections_max: usize,
    /// Most established peer connections per torrent.
    pub connections_per_torrent_max: usize,
    /// Most outgoing connection attempts in progress at once (TCP connect not yet answered).
    pub half_open_max: usize,
    /// Give up an outgoing TCP connect after this long.
    pub connect_timeout: Duration,
    /// Give up a connection whose handshake is not complete after this long.
    pub handshake_timeout: Duration,
    /// Bytes queued for one peer's socket beyond which blocks read for it are held back
    /// until the queue drains to half (under an upload limit the bound is lower, see
    /// `Throttle::send_buffer_cap`). Without a limit, the engine's `upload_in_flight_max`
    /// blocks usually bound the queue first.
    pub peer_send_buffer_max: usize,
    /// Bytes each connection's receive buffer grows by: one `read` may fill this much.
    pub read_buffer_bytes: usize,
    /// Consecutive blocks asked of one peer are read from disk in one job of at most this
    /// many bytes.
    pub disk_read_coalesce_bytes_max: u32,
    /// Serve blocks with `sendfile(2)` from the page cache (a disk thread makes each read
    /// resident first) instead of reading them into memory and writing them to the socket:
    /// no copies through user space. Linux only.
    pub sendfile: bool,
    /// Kernel socket buffer sizes (`SO_SNDBUF`, `SO_RCVBUF`); `None` keeps the system's
    /// auto-tuning, which measured best on loopback.
    pub socket_buffer_bytes: Option<u32>,
    /// Disk threads (writing, hashing, reading, checking).
    pub disk_threads: usize,
    /// Disk jobs that may wait in the pool's queue; past it the torrent keeps them and stops
    /// reading from its peers until the disk catches up.
    pub disk_job_queue_len_max: usize,
    /// Bytes of received blocks held in memory until their piece is complete (then hashed
    /// and written in one go); past it blocks are written through.
    pub piece_buffer_bytes_max: usize,
    /// Bytes of received blocks kept for per-block digests (smart ban) until their piece is
    /// checked; past it the digests of a piece are not computed.
    pub digest_buffer_bytes_max: usize,
    /// Messages a torrent's peers may have queued towards it (in batches) before their
    /// readers wait.
    pub peer_input_queue_len_max: usize,
    /// Events buffered per torrent for slow subscribers of
    /// [`TorrentHandle::events`](crate::TorrentHandle::events); older ones are dropped for them.
    pub events_capacity: usize,
    /// Peer addresses remembered per torrent (to reconnect after a pause, and to offer again
    /// when reported again).
    pub known_peers_max: usize,
    /// A peer address reported again (by a tracker, the DHT, [`TorrentHandle::add_peers`])
    /// is offered to the engine again at most this often: the engine forgets an address
    /// after `connect_attempts_max` failed connects, and a peer that was down may be back.
    ///
    /// [`TorrentHandle::add_peers`]: crate::TorrentHandle::add_peers
    pub peer_reoffer_interval: Duration,
    /// Upload and download limits for all torrents together (each torrent may have its own
    /// too, see [`AddTorrent::rate_limits`](crate::AddTorrent::rate_limits)); change them
    /// while running with [`Session::set_rate_limits`](crate::Session::set_rate_limits).
    pub rate_limits: RateLimits,
    /// The engine configuration every torrent starts from (`connections_max` and
    /// `listen_port` are filled in by the session).
    pub torrent: TorrentConfig,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            listen_addr: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 6881)),
            connections_max: 200,
            connections_per_torrent_max: 50,
            half_open_max: 20,
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            peer_send_buffer_max: 4 << 20,
            read_buffer_bytes: 256 << 10,
            disk_read_coalesce_bytes_max: 256 << 10,
            sendfile: true,
            socket_buffer_bytes: None,
            disk_threads: DISK_THREADS_DEFAULT,
            disk_job_queue_len_max: 128,
            piece_buffer_bytes_max: PIECE_BUFFER_BYTES_MAX_DEFAULT,
            digest_buffer_bytes_max: 32 << 20,
            peer_input_queue_len_max: 8,
            events_capacity: 4096,
            known_peers_max: 2000,
            peer_reoffer_interval: Duration::from_secs(60),
            rate_limits: RateLimits::UNLIMITED,
            torrent: TorrentConfig {
                // Blocks being read from disk for one peer or queued for its socket; a block
                // leaves this count when its last byte is written, so this covers the disk's
                // latency and the round trip from the writer through the torrent task.
                upload_in_flight_max: 64,
                ..TorrentConfig::default()
            },
        }
    }
}

impl SessionConfig {
    /// A configuration for tests and local tools: listen on 127.0.0.1 with a free port.
    #[must_use]
    pub fn localhost() -> Self {
        Self {
            listen_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            ..Self::default()
        }
    }

    /// This configuration with every bound moved into its usable range.
    #[must_use]
    pub(crate) fn sanitized(mut self) -> Self {
        self.connections_max = self.connections_max.max(1);
        self.connections_per_torrent_max = self.connections_per_torrent_max.max(1);
        self.half_open_max = self.half_open_max.max(1);
        self.peer_send_buffer_max = self.peer_send_buffer_max.max(64 << 10);
        self.read_buffer_bytes = self.read_buffer_bytes.max(32 << 10);
        self.disk_read_coalesce_bytes_max = self.disk_read_coalesce_bytes_max.max(16 << 10);
        self.disk_threads = self.disk_threads.max(1);
        self.disk_job_queue_len_max = self.disk_job_queue_len_max.max(1);
        self.peer_input_queue_len_max = self.peer_input_queue_len_max.max(1);
        self.events_capacity = self.events_capacity.max(1);
        self.torrent.connections_max = self.connections_per_torrent_max;
        self
    }
}
