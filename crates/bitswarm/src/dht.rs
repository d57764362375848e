//! The DHT in `download` and `seed`: the `--no-dht`/`--dht-port`/`--dht-bootstrap` options,
//! starting the node next to the peer session, and feeding the peers it finds for a torrent
//! to whatever takes peers (the torrent's handle, or a magnet's metadata fetch).
//!
//! Choices, written down: the DHT's UDP port is by default the same number as the peer
//! listen port (as libtorrent and Transmission do: one number to forward in a router), falling
//! back to any free port when that one is taken; private torrents (BEP 27) never touch the
//! DHT; a DHT that cannot start is a warning, not an error, since trackers and `--peer` may
//! still do the job — unless the user named the port.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bitswarm_dht_node::{DhtNode, DhtNodeConfig, DEFAULT_ROUTERS};
use clap::Args;
use tokio::task::JoinHandle;

/// DHT options of `download` and `seed`.
#[derive(Debug, Clone, Args)]
pub struct DhtArgs {
    /// Do not use the DHT (peers come only from trackers and --peer).
    #[arg(long)]
    pub no_dht: bool,
    /// The DHT's UDP port. Default: the peer listen port's number (any free port if taken);
    /// 0: any free port.
    #[arg(long, value_name = "N")]
    pub dht_port: Option<u16>,
    /// A DHT node to bootstrap from (HOST:PORT); repeatable. `none`: no bootstrap routers
    /// (the saved table only). Default: the public routers.
    #[arg(long = "dht-bootstrap", value_name = "HOST:PORT")]
    pub dht_bootstrap: Vec<String>,
}

/// The bootstrap list the options ask for: the public routers when none is given, nothing for
/// `none`, else the given `HOST:PORT`s (checked to have a port).
pub fn bootstrap_list(given: &[String]) -> Result<Vec<String>> {
    if given.is_empty() {
        return Ok(DEFAULT_ROUTERS.iter().map(|s| (*s).to_owned()).collect());
    }
    if given.iter().any(|g| g == "none") {
        if given.len() > 1 {
            bail!("DHT bootstrap `none` cannot be combined with other nodes");
        }
        return Ok(Vec::new());
    }
    for g in given {
        let port = g.rsplit_once(':').map(|(_, p)| p.parse::<u16>());
        if !matches!(port, Some(Ok(p)) if p != 0) {
            bail!("DHT bootstrap {g:?}: expected HOST:PORT (or `none`)");
        }
    }
    Ok(given.to_vec())
}

/// The IPv4 address the DHT binds for a peer listen address: the same IP when it is IPv4,
/// else all IPv4 interfaces.
#[must_use]
pub fn bind_ip(listen: SocketAddr) -> IpAddr {
    match listen {
        SocketAddr::V4(a) => IpAddr::V4(*a.ip()),
        SocketAddr::V6(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    }
}

/// Starts the DHT node for `download`/`seed` (unless `--no-dht`) with the table saved in the
/// state database `state`, and prints `dht listening on ADDR` (scripts and tests read it).
pub fn start_node(args: &DhtArgs, listen: SocketAddr, state: &Path) -> Result<Option<DhtNode>> {
    if args.no_dht {
        return Ok(None);
    }
    let ip = bind_ip(listen);
    let bootstrap = bootstrap_list(&args.dht_bootstrap)?;
    let config = |port| DhtNodeConfig {
        bootstrap: bootstrap.clone(),
        state: Some(state.to_path_buf()),
        ..DhtNodeConfig::new(SocketAddr::new(ip, port))
    };
    let node = match args.dht_port {
        Some(port) => DhtNode::start(config(port))
            .with_context(|| format!("cannot start the DHT on UDP port {port}"))?,
        None => {
            match DhtNode::start(config(listen.port())).or_else(|_| DhtNode::start(config(0))) {
                Ok(node) => node,
                Err(e) => {
                    eprintln!("warning: no DHT: {e}");
                    return Ok(None);
                }
            }
        }
    };
    println!("dht listening on {}", node.local_addr());
    Ok(Some(node))
}

/// A torrent announced on the DHT, its peers fed to a sink. Dropping it (or `stop`) stops
/// announcing.
pub struct DhtTorrent {
    task: JoinHandle<()>,
}

impl DhtTorrent {
    /// Announces `info_hash` with our peer port `port` now and every 15 minutes, and gives
    /// every peer found to `sink` (minus our own address `own`).
    pub async fn start(
        node: &DhtNode,
        info_hash: [u8; 20],
        own: SocketAddr,
        sink: impl Fn(Vec<SocketAddr>) + Send + 'static,
    ) -> Result<Self> {
        let mut announcement = node
            .announce(info_hash, Some(own.port()))
            .await
            .context("the DHT node stopped")?;
        let task = tokio::spawn(async move {
            while let Some(batch) = announcement.recv().await {
                let peers: Vec<SocketAddr> = batch
                    .peers
                    .into_iter()
                    .filter(|p| !is_own(*p, own))
                    .collect();
                if !peers.is_empty() {
                    sink(peers);
                }
            }
        });
        Ok(Self { task })
    }
}

/// First wait before a lookup-only torrent looks again after a lookup that found no peer; it
/// doubles up to [`SEARCH_RETRY_MAX`].
const SEARCH_RETRY_MIN: Duration = Duration::from_secs(5);
/// Longest wait between lookups of a lookup-only torrent.
const SEARCH_RETRY_MAX: Duration = Duration::from_secs(120);

impl DhtTorrent {
    /// Looks `info_hash` up without announcing it (a magnet whose metadata is being fetched:
    /// its listen address is not the one it will serve from), again and again while the
    /// handle lives — after 5 s, doubling to 2 min, sooner again once a lookup finds peers —
    /// and gives every peer found to `sink` (minus our own address `own`).
    pub fn search(
        node: &DhtNode,
        info_hash: [u8; 20],
        own: SocketAddr,
        sink: impl Fn(Vec<SocketAddr>) + Send + 'static,
    ) -> Self {
        let node = node.clone();
        let task = tokio::spawn(async move {
            let mut wait = SEARCH_RETRY_MIN;
            loop {
                let Ok(mut lookup) = node.get_peers(info_hash).await else {
                    return;
                };
                let mut found = false;
                while let Some(batch) = lookup.recv().await {
                    let peers: Vec<SocketAddr> = batch
                        .peers
                        .into_iter()
                        .filter(|p| !is_own(*p, own))
                        .collect();
                    if !peers.is_empty() {
                        found = true;
                        sink(peers);
                    }
                }
                if found {
                    wait = SEARCH_RETRY_MIN;
                }
                tokio::time::sleep(wait).await;
                if !found {
                    wait = (wait * 2).min(SEARCH_RETRY_MAX);
                }
            }
        });
        Self { task }
    }
}

impl Drop for DhtTorrent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether `peer` is our own listen address as the DHT hands it back (on loopback, or on our
/// bind address). Our external address is not known here; a dial to it is refused by the
/// handshake, which sees our own peer id.
fn is_own(peer: SocketAddr, own: SocketAddr) -> bool {
    peer.port() == own.port() && (peer.ip() == own.ip() || peer.ip().is_loopback())
}

/// The DHT side of a running torrent: the node (when on) and the torrent's announcement.
pub struct TorrentDhtState {
    /// The IPv4 node and, when we listen on every address, the IPv6 one (BEP 32), each with
    /// the torrent's announcement or lookups.
    nodes: Vec<(DhtNode, DhtTorrent)>,
}

impl TorrentDhtState {
    /// Starts the node (unless `--no-dht`, or the torrent is private) and announces the
    /// torrent (or, unless `announce`, only looks it up: see [`DhtTorrent::search`]), feeding
    /// its peers to `sink`. When `listen` is an unspecified address (every interface), an
    /// IPv6 node runs beside the IPv4 one (BEP 32) on the same port number if it can: it
    /// announces only when we also accept IPv6 peers (`listen` is IPv6), else it only looks
    /// up; a host without IPv6 just goes without it.
    pub async fn start(
        args: &DhtArgs,
        private: bool,
        announce: bool,
        info_hash: [u8; 20],
        listen: SocketAddr,
        state: &Path,
        sink: impl Fn(Vec<SocketAddr>) + Send + Sync + 'static,
    ) -> Result<Option<Self>> {
        if private {
            if !args.no_dht {
                eprintln!("private torrent: the DHT is not used (BEP 27)");
            }
            return Ok(None);
        }
        let Some(node) = start_node(args, listen, state)? else {
            return Ok(None);
        };
        let v6 = if listen.ip().is_unspecified() {
            start_node_v6(args, node.local_addr().port(), state)
        } else {
            None
        };
        let sink = Arc::new(sink);
        let mut nodes = Vec::new();
        for (node, announce) in [
            Some((node, announce)),
            v6.map(|n| (n, announce && listen.is_ipv6())),
        ]
        .into_iter()
        .flatten()
        {
            let sink = Arc::clone(&sink);
            let feed = move |peers| sink(peers);
            let torrent = if announce {
                DhtTorrent::start(&node, info_hash, listen, feed).await?
            } else {
                DhtTorrent::search(&node, info_hash, listen, feed)
            };
            nodes.push((node, torrent));
        }
        Ok(Some(Self { nodes }))
    }

    /// Stops announcing and shuts the nodes down, saving their routing tables.
    pub async fn shutdown(self) {
        for (node, torrent) in self.nodes {
            drop(torrent);
            if let Err(e) = node.shutdown().await {
                eprintln!("warning: DHT: {e}");
            }
        }
    }
}

/// The IPv6 DHT node beside the IPv4 one (BEP 32), on `[::]` and the IPv4 node's port number
/// (or any free port); `None`, with a note, when the host has no IPv6.
fn start_node_v6(args: &DhtArgs, port: u16, state: &Path) -> Option<DhtNode> {
    let bootstrap = bootstrap_list(&args.dht_bootstrap).ok()?;
    let config = |port| DhtNodeConfig {
        bootstrap: bootstrap.clone(),
        state: Some(state.to_path_buf()),
        ..DhtNodeConfig::new(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port))
    };
    match DhtNode::start(config(port)).or_else(|_| DhtNode::start(config(0))) {
        Ok(node) => {
            println!("dht listening on {}", node.local_addr());
            Some(node)
        }
        Err(e) => {
            eprintln!("note: no IPv6 DHT: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn bootstrap_defaults_none_and_checks() {
        assert_eq!(bootstrap_list(&[]).unwrap().len(), DEFAULT_ROUTERS.len());
        assert!(bootstrap_list(&strings(&["none"])).unwrap().is_empty());
        assert_eq!(
            bootstrap_list(&strings(&["127.0.0.1:7000", "example.org:6881"])).unwrap(),
            strings(&["127.0.0.1:7000", "example.org:6881"])
        );
        assert!(bootstrap_list(&strings(&["none", "127.0.0.1:1"])).is_err());
        assert!(bootstrap_list(&strings(&["example.org"])).is_err());
        assert!(bootstrap_list(&strings(&["example.org:0"])).is_err());
    }

    #[test]
    fn our_own_address_is_not_a_peer() {
        let own: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        assert!(is_own("127.0.0.1:7000".parse().unwrap(), own));
        assert!(!is_own("127.0.0.1:7001".parse().unwrap(), own));
        assert!(!is_own("10.0.0.1:7000".parse().unwrap(), own));
        let any: SocketAddr = "0.0.0.0:7000".parse().unwrap();
        assert!(is_own("127.0.0.1:7000".parse().unwrap(), any));
        assert!(!is_own("203.0.113.9:7000".parse().unwrap(), any));
    }
}
