//! The node's task: the only owner of the `Dht`, its socket, its store and the routes of
//! lookup results. It loops over datagrams, commands, resolved routers and one timer, and
//! between them flushes what the state machine wants sent and reported.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bitswarm_dht::{is_local, AddressFamily, Dht, DhtConfig, DhtEvent, DhtStats, NodeId};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::error::{DhtNodeError, Result};
use crate::routes::Routes;
use crate::store::{NodeStore, SavedState};
use crate::{DhtNodeConfig, DhtPeers, LookupSummary, DEFAULT_ROUTERS, SAVE_INTERVAL};

/// Receive buffer: larger than any datagram the state machine accepts, so an oversized one is
/// seen whole (and dropped by it) instead of arriving truncated.
const RECV_BUFFER_LEN: usize = 2048;
/// Lookups asked for before the table has a node wait this long for the bootstrap at most.
const BOOTSTRAP_GRACE: Duration = Duration::from_secs(3);
/// While the table has fewer good nodes than a bucket holds, bootstrap again this often.
const REBOOTSTRAP_INTERVAL: Duration = Duration::from_secs(60);
/// Bound on resolving one bootstrap name.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Lookups waiting for the bootstrap; more start at once, on whatever the table holds.
const PENDING_LOOKUPS_MAX: usize = 256;

/// What the handles ask of the task.
pub(crate) enum Command {
    GetPeers {
        info_hash: [u8; 20],
        tx: mpsc::Sender<DhtPeers>,
    },
    Announce {
        info_hash: [u8; 20],
        port: Option<u16>,
        tx: mpsc::Sender<DhtPeers>,
    },
    StopAnnouncing {
        info_hash: [u8; 20],
    },
    Stats {
        reply: oneshot::Sender<DhtStats>,
    },
    Save {
        reply: oneshot::Sender<Result<()>>,
    },
    Shutdown {
        reply: oneshot::Sender<Result<()>>,
    },
}

/// A shutdown in progress: whom to answer, and how saving went.
type Stopping = (oneshot::Sender<Result<()>>, Result<()>);

/// A resolved bootstrap address; `node`: also ping it as a table candidate.
type Resolved = Vec<(SocketAddr, bool)>;

/// Restores the saved state, builds the `Dht` and spawns the task; returns our node id.
pub(crate) fn spawn(
    config: DhtNodeConfig,
    socket: UdpSocket,
    commands: mpsc::Receiver<Command>,
) -> Result<NodeId> {
    let store = config.state.as_deref().map(NodeStore::open).transpose()?;
    let saved = store
        .as_ref()
        .map(NodeStore::load)
        .transpose()?
        .unwrap_or_default();
    let family = AddressFamily::of(&config.bind);
    let seed = config.seed.unwrap_or_else(rand::random);
    let node_id = choose_id(&saved, &mut SmallRng::seed_from_u64(seed));
    let dht_config = DhtConfig {
        node_id,
        external_ip: saved.external_ip,
        family,
        read_only: config.read_only,
        ..config.dht
    };
    let bucket_size = dht_config.bucket_size;
    let mut dht = Dht::new(dht_config, seed);
    let now = Instant::now();
    let ours = |a: &SocketAddr| AddressFamily::of(a) == family;
    let restored = saved.nodes.iter().filter(|(_, a)| ours(a)).count();
    for (id, addr) in saved.nodes.iter().filter(|(_, a)| ours(a)) {
        dht.add_node(now, *addr, Some(*id));
    }
    let id = dht.id();
    tracing::info!(local = ?socket.local_addr().ok(), ?id, restored, "DHT node started");
    let (resolved_tx, resolved) = mpsc::channel(4);
    let driver = Driver {
        dht,
        socket,
        commands,
        resolved,
        resolved_tx,
        family,
        bootstrap: config.bootstrap,
        store: store.map(Arc::new),
        external_ip: saved.external_ip,
        bucket_size,
        named_nodes: 0,
        routes: Routes::default(),
        pending: Vec::new(),
        started: now,
        next_save: now + SAVE_INTERVAL,
        next_rebootstrap: now + REBOOTSTRAP_INTERVAL,
    };
    tokio::spawn(driver.run());
    Ok(id)
}

/// Our saved id, unless BEP 42 says it does not fit our last known (global) external address;
/// then a fitting one. `None` lets the `Dht` choose.
fn choose_id(saved: &SavedState, rng: &mut SmallRng) -> Option<NodeId> {
    let global_ip = saved.external_ip.filter(|ip| !is_local(*ip));
    match (saved.node_id, global_ip) {
        (Some(id), Some(ip)) if !id.is_secure_for(ip) => Some(NodeId::secure(ip, rng)),
        (Some(id), _) => Some(id),
        (None, Some(ip)) => Some(NodeId::secure(ip, rng)),
        (None, None) => None,
    }
}

struct Driver {
    dht: Dht,
    /// The address family of the socket and the table (one node per family, BEP 32).
    family: AddressFamily,
    socket: UdpSocket,
    commands: mpsc::Receiver<Command>,
    resolved: mpsc::Receiver<Resolved>,
    resolved_tx: mpsc::Sender<Resolved>,
    bootstrap: Vec<String>,
    store: Option<Arc<NodeStore>>,
    external_ip: Option<IpAddr>,
    bucket_size: usize,
    /// Named bootstrap nodes (not public routers) last resolved.
    named_nodes: usize,
    routes: Routes,
    /// `get_peers` asked for before the table had a node.
    pending: Vec<([u8; 20], mpsc::Sender<DhtPeers>)>,
    started: Instant,
    next_save: Instant,
    next_rebootstrap: Instant,
}

impl Driver {
    async fn run(mut self) {
        self.resolve_bootstrap();
        let mut buf = vec![0u8; RECV_BUFFER_LEN];
        loop {
            let now = Instant::now();
            self.start_lookups(now);
            self.flush().await;
            self.drain_events(now);
            let wake = tokio::time::Instant::from_std(self.next_wake(now));
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((len, from)) => {
                        let bytes = buf.get(..len).unwrap_or_default();
                        self.dht.handle_datagram(Instant::now(), from, bytes);
                    }
                    Err(e) => tracing::debug!(error = %e, "DHT socket receive error"),
                },
                command = self.commands.recv() => {
                    let Some(command) = command else {
                        // Every handle is gone.
                        if let Err(e) = self.save_now().await {
                            tracing::warn!(error = %e, "cannot save the DHT table");
                        }
                        return;
                    };
                    if let Some((reply, saved)) = self.command(command).await {
                        // The socket is closed before the caller hears back, so a node
                        // started right after on the same port can bind it.
                        drop(self);
                        let _ = reply.send(saved);
                        return;
                    }
                }
                Some(resolved) = self.resolved.recv() => self.bootstrap_from(&resolved),
                () = tokio::time::sleep_until(wake) => {
                    let now = Instant::now();
                    self.dht.handle_timeout(now);
                    self.periodic(now);
                }
            }
        }
    }

    /// Handles one command; `Some` (the shutdown's reply and the save's result) ends the task.
    async fn command(&mut self, command: Command) -> Option<Stopping> {
        let now = Instant::now();
        match command {
            Command::GetPeers { info_hash, tx } => {
                if self.ready(now) || self.pending.len() >= PENDING_LOOKUPS_MAX {
                    let lookup = self.dht.get_peers(now, info_hash);
                    self.routes.get_peers(lookup, info_hash, tx);
                } else {
                    self.pending.push((info_hash, tx));
                }
            }
            Command::Announce {
                info_hash,
                port,
                tx,
            } => {
                if !self.routes.announce(now, info_hash, port, tx) {
                    tracing::warn!("too many torrents announced on the DHT; one more refused");
                }
            }
            Command::StopAnnouncing { info_hash } => self.routes.stop(&info_hash),
            Command::Stats { reply } => {
                let _ = reply.send(self.dht.stats());
            }
            Command::Save { reply } => {
                let _ = reply.send(self.save_now().await);
            }
            Command::Shutdown { reply } => return Some((reply, self.save_now().await)),
        }
        None
    }

    /// Whether lookups may start: the bootstrap had its chance, or the table holds as many
    /// nodes as were named to bootstrap from (at least one). Waiting for the named nodes
    /// matters: a lookup started before one of them entered the table asks it as a router,
    /// and routers get no `announce_peer`.
    fn ready(&self, now: Instant) -> bool {
        if now >= self.started + BOOTSTRAP_GRACE {
            return true;
        }
        let want = self.named_nodes.clamp(1, self.bucket_size);
        self.dht.stats().nodes >= want
    }

    /// Starts waiting lookups and due announce rounds once the table is ready.
    fn start_lookups(&mut self, now: Instant) {
        if !self.ready(now) {
            return;
        }
        for (info_hash, tx) in std::mem::take(&mut self.pending) {
            let lookup = self.dht.get_peers(now, info_hash);
            self.routes.get_peers(lookup, info_hash, tx);
        }
        for (info_hash, port) in self.routes.due(now) {
            let lookup = self.dht.announce(now, info_hash, port);
            self.routes.round_started(info_hash, lookup);
        }
    }

    /// Sends every datagram the state machine has queued.
    async fn flush(&mut self) {
        while let Some(t) = self.dht.poll_transmit() {
            if let Err(e) = self.socket.send_to(&t.payload, t.to).await {
                tracing::debug!(to = %t.to, error = %e, "DHT send failed");
            }
        }
    }

    fn drain_events(&mut self, now: Instant) {
        while let Some(event) = self.dht.poll_event() {
            match event {
                DhtEvent::Peers { lookup, peers, .. } => self.routes.peers(lookup, peers),
                DhtEvent::LookupDone {
                    lookup,
                    peers_found,
                    nodes_responded,
                    announced_to,
                    ..
                } => {
                    let summary = LookupSummary {
                        peers_found,
                        nodes_responded,
                        announced_to,
                    };
                    self.routes.done(now, lookup, summary);
                }
                DhtEvent::ExternalIp(ip) => self.external_ip_voted(ip),
            }
        }
    }

    fn external_ip_voted(&mut self, ip: IpAddr) {
        self.external_ip = Some(ip);
        if !is_local(ip) && !self.dht.id().is_secure_for(ip) {
            // The id cannot change under running lookups; it is saved with the address and
            // the next start picks a BEP 42 id that fits (`choose_id`).
            tracing::info!(%ip, "external address voted; our DHT id does not fit it (BEP 42) \
                                 and is replaced at the next start");
        } else {
            tracing::debug!(%ip, "external address voted");
        }
    }

    /// When the task must wake up with nothing received.
    fn next_wake(&self, now: Instant) -> Instant {
        let mut wake = self.next_save.min(self.next_rebootstrap);
        if let Some(t) = self.dht.poll_timeout() {
            wake = wake.min(t);
        }
        if self.ready(now) {
            if let Some(t) = self.routes.next_due() {
                wake = wake.min(t);
            }
        } else {
            wake = wake.min(self.started + BOOTSTRAP_GRACE);
        }
        wake.max(now)
    }

    /// Saving and re-bootstrapping on their intervals.
    fn periodic(&mut self, now: Instant) {
        if now >= self.next_save {
            self.next_save = now + SAVE_INTERVAL;
            if let Some(store) = self.store.clone() {
                let state = self.saved_state();
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = store.save(&state, unix_now()) {
                        tracing::warn!(error = %e, "cannot save the DHT table");
                    }
                });
            }
        }
        if now >= self.next_rebootstrap {
            self.next_rebootstrap = now + REBOOTSTRAP_INTERVAL;
            if self.dht.stats().good_nodes < self.bucket_size {
                self.resolve_bootstrap();
            }
        }
    }

    fn saved_state(&self) -> SavedState {
        SavedState {
            node_id: Some(self.dht.id()),
            external_ip: self.external_ip,
            nodes: self.dht.nodes(),
        }
    }

    async fn save_now(&self) -> Result<()> {
        let Some(store) = self.store.clone() else {
            return Ok(());
        };
        let state = self.saved_state();
        tokio::task::spawn_blocking(move || store.save(&state, unix_now()))
            .await
            .map_err(|_| DhtNodeError::Stopped)?
    }

    /// Resolves the bootstrap names in the background; the addresses come back through
    /// `resolved`.
    fn resolve_bootstrap(&self) {
        if self.bootstrap.is_empty() {
            return;
        }
        let names = self.bootstrap.clone();
        let tx = self.resolved_tx.clone();
        let family = self.family;
        tokio::spawn(async move {
            let mut out = Vec::new();
            for name in &names {
                let lookup = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(name));
                match lookup.await {
                    Ok(Ok(addrs)) => {
                        let node = !DEFAULT_ROUTERS.contains(&name.as_str());
                        out.extend(
                            addrs
                                .filter(|a| AddressFamily::of(a) == family)
                                .map(|a| (a, node)),
                        );
                    }
                    Ok(Err(e)) => {
                        tracing::info!(%name, error = %e, "DHT bootstrap: cannot resolve");
                    }
                    Err(_) => tracing::info!(%name, "DHT bootstrap: resolving timed out"),
                }
            }
            if out.is_empty() {
                tracing::warn!("DHT bootstrap: none of {names:?} resolved to a {family:?} address");
            }
            let _ = tx.send(out).await;
        });
    }

    fn bootstrap_from(&mut self, resolved: &Resolved) {
        let now = Instant::now();
        let routers: Vec<SocketAddr> = resolved.iter().map(|(a, _)| *a).collect();
        if routers.is_empty() {
            return;
        }
        tracing::debug!(?routers, "DHT bootstrap");
        self.named_nodes = 0;
        for (addr, _) in resolved.iter().filter(|(_, node)| *node) {
            self.dht.add_node(now, *addr, None);
            self.named_nodes += 1;
        }
        self.dht.bootstrap(now, &routers);
    }
}

fn unix_now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    i64::try_from(secs).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_saved_id_is_kept_unless_bep42_rejects_it_for_our_address() {
        let mut rng = SmallRng::seed_from_u64(1);
        let ip: IpAddr = "124.31.75.21".parse().unwrap();
        let secure = NodeId::secure(ip, &mut rng);
        let insecure = NodeId([0xab; 20]);
        assert!(!insecure.is_secure_for(ip));
        let state = |node_id, external_ip| SavedState {
            node_id,
            external_ip,
            nodes: Vec::new(),
        };
        assert_eq!(
            choose_id(&state(Some(secure), Some(ip)), &mut rng),
            Some(secure)
        );
        assert_eq!(
            choose_id(&state(Some(insecure), None), &mut rng),
            Some(insecure)
        );
        let local = "192.168.1.2".parse().ok();
        assert_eq!(
            choose_id(&state(Some(insecure), local), &mut rng),
            Some(insecure)
        );
        let fresh = choose_id(&state(Some(insecure), Some(ip)), &mut rng).unwrap();
        assert!(fresh.is_secure_for(ip));
        assert!(choose_id(&state(None, Some(ip)), &mut rng)
            .unwrap()
            .is_secure_for(ip));
        assert_eq!(choose_id(&state(None, None), &mut rng), None);
    }
}
