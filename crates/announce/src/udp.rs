//! The UDP side of the driver: one socket per address family, opened on first use, and a
//! small cache of resolved tracker addresses (also the list of sources we accept datagrams
//! from).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitswarm_tracker::client::TrackerId;
use tokio::net::UdpSocket;

use crate::error::AnnounceError;

/// Largest datagram read; a longer one is cut, which loses only trailing peers.
pub(crate) const DATAGRAM_LEN_MAX: usize = 8 << 10;
/// How long a resolved tracker address is used before it is looked up again.
pub(crate) const RESOLVED_TTL: Duration = Duration::from_secs(300);

/// The sockets and the address cache.
#[derive(Debug)]
pub(crate) struct Udp {
    bind_v4: SocketAddr,
    bind_v6: SocketAddr,
    pub(crate) v4: Option<Arc<UdpSocket>>,
    pub(crate) v6: Option<Arc<UdpSocket>>,
    resolved: HashMap<TrackerId, (SocketAddr, Instant)>,
}

impl Udp {
    pub(crate) fn new(bind_v4: SocketAddr, bind_v6: SocketAddr) -> Self {
        Self {
            bind_v4,
            bind_v6,
            v4: None,
            v6: None,
            resolved: HashMap::new(),
        }
    }

    /// The cached address of `tracker`, if still fresh at `now`.
    pub(crate) fn cached(&self, tracker: TrackerId, now: Instant) -> Option<SocketAddr> {
        self.resolved
            .get(&tracker)
            .filter(|(_, at)| now.saturating_duration_since(*at) < RESOLVED_TTL)
            .map(|(addr, _)| *addr)
    }

    pub(crate) fn remember(&mut self, tracker: TrackerId, addr: SocketAddr, now: Instant) {
        self.resolved.insert(tracker, (addr, now));
    }

    /// Whether `from` is the address of a tracker we talk to.
    pub(crate) fn is_tracker(&self, from: SocketAddr) -> bool {
        self.resolved.values().any(|(addr, _)| *addr == from)
    }

    /// Sends `packet` to `to`, opening the socket of its family if needed.
    pub(crate) async fn send(
        &mut self,
        to: SocketAddr,
        packet: &[u8],
    ) -> Result<(), AnnounceError> {
        let (slot, bind) = if to.is_ipv4() {
            (&mut self.v4, self.bind_v4)
        } else {
            (&mut self.v6, self.bind_v6)
        };
        let socket = if let Some(s) = slot {
            s.clone()
        } else {
            let s = Arc::new(
                UdpSocket::bind(bind)
                    .await
                    .map_err(AnnounceError::UdpBind)?,
            );
            *slot = Some(s.clone());
            s
        };
        socket
            .send_to(packet, to)
            .await
            .map_err(AnnounceError::Io)?;
        Ok(())
    }
}

/// Receives on `socket`, or never if there is none.
pub(crate) async fn recv(
    socket: Option<&UdpSocket>,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// The first address `host:port` resolves to, preferring IPv4 (what most trackers serve on
/// and what a v4-only host can reach).
pub(crate) async fn resolve(host: String, port: u16) -> Result<SocketAddr, AnnounceError> {
    let target = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(target)
        .await
        .map_err(|source| AnnounceError::Resolve {
            host: host.clone(),
            source,
        })?
        .take(16)
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or(AnnounceError::NoAddress { host })
}
