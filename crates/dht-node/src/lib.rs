//! The Mainline DHT on tokio: one task owns a sans-IO [`bitswarm_dht::Dht`] and one UDP socket,
//! and feeds it datagrams, timeouts and commands from cheap [`DhtNode`] handles.
//!
//! The protocol lives in `bitswarm-dht`; this crate only adds what needs a real machine:
//!
//! - **I/O**: an IPv4 UDP socket, the clock (`Instant::now()` handed to the state machine as
//!   `now`), DNS for the bootstrap routers, an OS-seeded RNG seed.
//! - **Persistence** ([`store`]): our node id, our last voted external address and the routing
//!   table are saved in SQLite every [`SAVE_INTERVAL`] and at shutdown, in the same file as the
//!   torrents' resume state, and restored at start, so a restart is back in the DHT in seconds.
//! - **Announcing** ([`DhtNode::announce`]): a torrent is re-announced every
//!   [`ANNOUNCE_INTERVAL`] for as long as its [`Announcement`] lives; each round's peers come
//!   out of that `Announcement`.
//!
//! Bootstrap entries are resolved in the background. A node the user names (a `HOST:PORT`
//! that is not one of [`DEFAULT_ROUTERS`]) is used as a router *and* pinged as a table
//! candidate, since it is most often a real DHT node (another client, a test's node); the
//! public routers are only routers — they answer `find_node` but do not store or serve peers.

mod driver;
mod error;
mod routes;
pub mod store;

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use bitswarm_dht::DhtConfig;
pub use bitswarm_dht::{DhtStats, NodeId};
use tokio::sync::{mpsc, oneshot};

pub use error::{DhtNodeError, Result};

/// The public bootstrap routers, used when the user names none (and not `none`).
pub const DEFAULT_ROUTERS: [&str; 4] = [
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "router.utorrent.com:6881",
    "dht.libtorrent.org:25401",
];
/// How often an announced torrent is announced again (BEP 5 peers expire after ~30 min;
/// libtorrent and Transmission re-announce every 15 min too).
pub const ANNOUNCE_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// How often the routing table is saved (and at shutdown).
pub const SAVE_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Commands waiting for the node's task; callers wait when it is full.
pub const COMMAND_QUEUE_LEN: usize = 64;
/// Batches of peers waiting in a lookup's channel; when the reader is this far behind, newer
/// batches are dropped (and counted in the log) rather than stalling the node.
pub const PEER_QUEUE_LEN: usize = 64;

/// How to start a [`DhtNode`].
#[derive(Debug, Clone)]
pub struct DhtNodeConfig {
    /// The UDP address to bind (IPv4; port 0 lets the OS choose).
    pub bind: SocketAddr,
    /// Bootstrap nodes and routers as `HOST:PORT`, resolved in the background. Empty: no
    /// bootstrap (the saved table, if any, is all there is).
    pub bootstrap: Vec<String>,
    /// The SQLite file holding the saved table and id (the CLI's `--state`); `None` keeps
    /// nothing between runs.
    pub state: Option<PathBuf>,
    /// BEP 43 read-only: ask, never answer (for nodes behind a NAT that cannot be reached).
    pub read_only: bool,
    /// The state machine's RNG seed; `None` takes one from the OS.
    pub seed: Option<u64>,
    /// The protocol's tuning; `node_id`, `external_ip`, `family` and `read_only` are set by
    /// the node from the saved state and the fields above.
    pub dht: DhtConfig,
}

impl DhtNodeConfig {
    /// A node bound to `bind` with no bootstrap, no state file and default tuning.
    #[must_use]
    pub fn new(bind: SocketAddr) -> Self {
        Self {
            bind,
            bootstrap: Vec::new(),
            state: None,
            read_only: false,
            seed: None,
            dht: DhtConfig::default(),
        }
    }
}

/// Peers from one lookup, as they arrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhtPeers {
    /// The torrent looked up.
    pub info_hash: [u8; 20],
    /// Peers not reported before by this lookup (empty in the last message).
    pub peers: Vec<SocketAddr>,
    /// Set in the lookup's last message: how it went.
    pub done: Option<LookupSummary>,
}

/// How a finished lookup went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupSummary {
    /// Distinct peers found.
    pub peers_found: usize,
    /// Nodes that answered.
    pub nodes_responded: usize,
    /// Nodes we sent `announce_peer` to (0 for a plain lookup).
    pub announced_to: usize,
}

/// A torrent being announced. Peers found by every announce round come out of
/// [`Announcement::recv`]; dropping it (or [`DhtNode::stop_announcing`]) ends the rounds.
#[derive(Debug)]
pub struct Announcement {
    info_hash: [u8; 20],
    peers: mpsc::Receiver<DhtPeers>,
}

impl Announcement {
    /// The announced torrent.
    #[must_use]
    pub fn info_hash(&self) -> [u8; 20] {
        self.info_hash
    }

    /// The next batch of peers (a round's last message has `done` set); `None` once the
    /// announcing has stopped.
    pub async fn recv(&mut self) -> Option<DhtPeers> {
        self.peers.recv().await
    }
}

/// Binds a UDP socket; an IPv6 one only for IPv6 (`IPV6_V6ONLY`), so an IPv4 node can
/// use the same port number beside it.
fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// A running DHT node. Clones are handles to the same node; the node stops when
/// [`DhtNode::shutdown`] is called or the last handle is dropped (saving its table either way).
#[derive(Debug, Clone)]
pub struct DhtNode {
    commands: mpsc::Sender<driver::Command>,
    local_addr: SocketAddr,
    id: NodeId,
}

impl DhtNode {
    /// Binds the socket, restores the saved state and starts the node's task. Must be called
    /// from within a tokio runtime.
    pub fn start(config: DhtNodeConfig) -> Result<Self> {
        let bind_error = |source| DhtNodeError::Bind {
            addr: config.bind,
            source,
        };
        let std_socket = bind_udp(config.bind).map_err(bind_error)?;
        std_socket.set_nonblocking(true).map_err(bind_error)?;
        let socket = tokio::net::UdpSocket::from_std(std_socket).map_err(bind_error)?;
        let local_addr = socket.local_addr().map_err(bind_error)?;
        let (commands, receiver) = mpsc::channel(COMMAND_QUEUE_LEN);
        let id = driver::spawn(config, socket, receiver)?;
        Ok(Self {
            commands,
            local_addr,
            id,
        })
    }

    /// The bound UDP address.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Our node id.
    #[must_use]
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Looks up a torrent's peers. They come out of the channel as they arrive; its last
    /// message has `done` set and then it closes.
    pub async fn get_peers(&self, info_hash: [u8; 20]) -> Result<mpsc::Receiver<DhtPeers>> {
        let (tx, rx) = mpsc::channel(PEER_QUEUE_LEN);
        self.send(driver::Command::GetPeers { info_hash, tx })
            .await?;
        Ok(rx)
    }

    /// Announces that we have the torrent, on `port` (`None`: the DHT socket's port, BEP 5
    /// `implied_port`), now and every [`ANNOUNCE_INTERVAL`] (sooner, from 5 s doubling to 2 min,
    /// while rounds find no peer) until the returned
    /// [`Announcement`] is dropped. Announcing a torrent again replaces the earlier one.
    pub async fn announce(&self, info_hash: [u8; 20], port: Option<u16>) -> Result<Announcement> {
        let (tx, peers) = mpsc::channel(PEER_QUEUE_LEN);
        let cmd = driver::Command::Announce {
            info_hash,
            port,
            tx,
        };
        self.send(cmd).await?;
        Ok(Announcement { info_hash, peers })
    }

    /// Stops announcing a torrent (its `Announcement` then ends).
    pub async fn stop_announcing(&self, info_hash: [u8; 20]) -> Result<()> {
        self.send(driver::Command::StopAnnouncing { info_hash })
            .await
    }

    /// The state machine's counters and sizes.
    pub async fn stats(&self) -> Result<DhtStats> {
        let (reply, rx) = oneshot::channel();
        self.send(driver::Command::Stats { reply }).await?;
        rx.await.map_err(|_| DhtNodeError::Stopped)
    }

    /// Saves the routing table and id now (a no-op without a state file).
    pub async fn save(&self) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.send(driver::Command::Save { reply }).await?;
        rx.await.map_err(|_| DhtNodeError::Stopped)?
    }

    /// Saves the table and stops the node; every handle's later calls fail with
    /// [`DhtNodeError::Stopped`]. Returns once the task has ended.
    pub async fn shutdown(&self) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.send(driver::Command::Shutdown { reply }).await?;
        rx.await.map_err(|_| DhtNodeError::Stopped)?
    }

    async fn send(&self, cmd: driver::Command) -> Result<()> {
        self.commands
            .send(cmd)
            .await
            .map_err(|_| DhtNodeError::Stopped)
    }
}
