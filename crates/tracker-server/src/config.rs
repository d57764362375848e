//! The server's configuration: a TOML file (every key optional, unknown keys refused) plus the
//! addresses given on the command line. Every bound the server enforces is named here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bitswarm_tracker::access::AccessMode;
use bitswarm_tracker::server::ServerConfig;
use bitswarm_tracker::swarm::TableConfig;
use serde::Deserialize;

use crate::error::ServerError;

/// The whole configuration.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// UDP listeners (BEP 15).
    pub udp: UdpConfig,
    /// HTTP listeners (BEP 3).
    pub http: HttpConfig,
    /// The Prometheus endpoint.
    pub metrics: MetricsConfig,
    /// What announces are told and how long peers are kept.
    pub announce: AnnounceConfig,
    /// Bounds on the swarm table.
    pub limits: LimitsConfig,
    /// Which swarms are served.
    pub access: AccessConfig,
}

/// UDP listeners.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct UdpConfig {
    /// Addresses to listen on (IPv4 or IPv6; port 0 picks one).
    pub addrs: Vec<SocketAddr>,
    /// Worker threads per address, each with its own `SO_REUSEPORT` socket.
    pub workers: usize,
    /// Datagrams received or sent per system call (`recvmmsg`/`sendmmsg`); 1 uses plain
    /// `recv_from`/`send_to`.
    pub batch: usize,
    /// Kernel receive and send buffer per socket, in bytes.
    pub socket_buffer_bytes: usize,
}

impl Default for UdpConfig {
    fn default() -> Self {
        Self {
            addrs: Vec::new(),
            workers: 1,
            batch: 32,
            socket_buffer_bytes: 8 << 20,
        }
    }
}

/// HTTP listeners.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Addresses to listen on.
    pub addrs: Vec<SocketAddr>,
    /// Threads of the HTTP runtime.
    pub workers: usize,
    /// Most connections open at once; more wait in the kernel's accept queue.
    pub connections_max: usize,
    /// Seconds a connection may sit idle (or take to send a request head) before it is closed.
    pub idle_timeout_s: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            addrs: Vec::new(),
            workers: 1,
            connections_max: 1024,
            idle_timeout_s: 15,
        }
    }
}

/// The Prometheus endpoint.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of the `/metrics` listener; none by default (keep it off public addresses).
    pub addr: Option<SocketAddr>,
}

/// What announces are told and how long peers are kept.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AnnounceConfig {
    /// Seconds between a client's regular announces.
    pub interval_s: u32,
    /// Seconds an HTTP client must wait at least between announces.
    pub min_interval_s: u32,
    /// Seconds a peer is kept past the interval before it expires.
    pub grace_s: u32,
    /// Peers returned when the client does not say how many.
    pub numwant_default: u32,
    /// Most peers returned to one announce.
    pub numwant_max: u32,
    /// Seconds between sweeps that drop expired peers.
    pub expire_every_s: u32,
}

impl Default for AnnounceConfig {
    fn default() -> Self {
        Self {
            interval_s: 1800,
            min_interval_s: 60,
            grace_s: 300,
            numwant_default: 50,
            numwant_max: 200,
            expire_every_s: 60,
        }
    }
}

/// Bounds on the swarm table.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Most swarms tracked.
    pub torrents_max: usize,
    /// Most peers per swarm.
    pub peers_per_torrent_max: usize,
    /// Most bytes the table's peers and swarms may take; sets the total peer bound.
    pub memory_max_bytes: usize,
    /// Lock shards of the table.
    pub shards: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            torrents_max: 1_000_000,
            peers_per_torrent_max: 100_000,
            memory_max_bytes: 1 << 30,
            shards: 256,
        }
    }
}

/// Which swarms are served.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// `open`, `allow` (only listed info-hashes) or `deny` (all but listed ones).
    pub mode: AccessModeName,
    /// File of hexadecimal info-hashes, one per line; needed unless `open`.
    pub file: Option<PathBuf>,
    /// Seconds between checks of the file's modification time (0: reload only on SIGHUP).
    pub watch_every_s: u64,
}

impl Default for AccessConfig {
    fn default() -> Self {
        Self {
            mode: AccessModeName::Open,
            file: None,
            watch_every_s: 5,
        }
    }
}

/// The spelling of an access mode in the configuration.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AccessModeName {
    /// Serve every swarm.
    #[default]
    Open,
    /// Serve only listed swarms.
    Allow,
    /// Serve all but listed swarms.
    Deny,
}

impl From<AccessModeName> for AccessMode {
    fn from(m: AccessModeName) -> Self {
        match m {
            AccessModeName::Open => Self::Open,
            AccessModeName::Allow => Self::Allow,
            AccessModeName::Deny => Self::Deny,
        }
    }
}

impl Config {
    /// Reads a TOML configuration file.
    pub fn from_file(path: &Path) -> Result<Self, ServerError> {
        let text = std::fs::read_to_string(path).map_err(|source| ServerError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Parses TOML text; `path` only names it in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ServerError> {
        toml::from_str(text).map_err(|e| ServerError::ConfigSyntax {
            path: path.to_owned(),
            source: Box::new(e),
        })
    }

    /// Checks the values that have a valid range.
    pub fn validate(&self) -> Result<(), ServerError> {
        let checks = [
            (
                self.udp.addrs.is_empty() && self.http.addrs.is_empty(),
                "no UDP or HTTP address to listen on",
            ),
            (
                self.udp.workers == 0 || self.udp.workers > 256,
                "udp.workers must be 1 to 256",
            ),
            (
                self.udp.batch == 0 || self.udp.batch > crate::udp::BATCH_MAX,
                "udp.batch must be 1 to 64",
            ),
            (
                self.http.workers == 0 || self.http.workers > 256,
                "http.workers must be 1 to 256",
            ),
            (
                self.http.connections_max == 0,
                "http.connections_max must be at least 1",
            ),
            (
                self.announce.interval_s == 0,
                "announce.interval_s must be at least 1",
            ),
            (
                self.announce.expire_every_s == 0,
                "announce.expire_every_s must be at least 1",
            ),
            (
                self.announce.numwant_max == 0,
                "announce.numwant_max must be at least 1",
            ),
            (
                self.limits.torrents_max == 0,
                "limits.torrents_max must be at least 1",
            ),
            (
                self.limits.peers_per_torrent_max == 0,
                "limits.peers_per_torrent_max must be at least 1",
            ),
            (
                self.table().peers_max == 0,
                "limits.memory_max_bytes leaves no room for any peer",
            ),
            (
                self.limits.shards == 0 || self.limits.shards > 65_536,
                "limits.shards must be 1 to 65536",
            ),
            (
                self.access.mode != AccessModeName::Open && self.access.file.is_none(),
                "access.file is needed unless access.mode is open",
            ),
        ];
        match checks.iter().find(|(bad, _)| *bad) {
            Some((_, why)) => Err(ServerError::ConfigValue(why)),
            None => Ok(()),
        }
    }

    /// The swarm table's bounds.
    #[must_use]
    pub fn table(&self) -> TableConfig {
        let l = &self.limits;
        TableConfig {
            shards: l.shards,
            torrents_max: l.torrents_max,
            peers_per_torrent_max: l.peers_per_torrent_max,
            peers_max: TableConfig::peers_max_for_memory(l.memory_max_bytes, l.torrents_max),
            peer_ttl_s: self
                .announce
                .interval_s
                .saturating_add(self.announce.grace_s),
        }
    }

    /// The fixed answers.
    #[must_use]
    pub fn server(&self) -> ServerConfig {
        let a = &self.announce;
        ServerConfig {
            interval_s: a.interval_s,
            min_interval_s: a.min_interval_s,
            numwant_default: a.numwant_default.min(a.numwant_max),
            numwant_max: a.numwant_max,
        }
    }
}
