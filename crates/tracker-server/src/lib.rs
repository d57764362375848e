//! The bitswarm tracker server: the runtime around the sans-IO `bitswarm-tracker` crate.
//!
//! It owns everything the protocol crate refuses to know about: sockets (UDP workers on
//! `SO_REUSEPORT` sockets, HTTP on a small tokio runtime), the clock, threads, the access-list
//! file and its reloads, Prometheus metrics, and shutdown. Every decision about a request is
//! made by [`bitswarm_tracker::server::Tracker`]; this crate only moves bytes and counts.
//!
//! Start it with [`Server::start`]; it reports the addresses it actually bound (port 0 picks
//! one) through [`Server::udp_addrs`] and friends, reloads its access list on
//! [`Server::reload_access`] (the binary calls it on SIGHUP; the file is also watched), and
//! stops gracefully on [`Server::shutdown`]: listeners close, requests in progress finish,
//! every thread is joined.

mod access;
pub mod config;
mod error;
mod http;
pub mod metrics;
mod udp;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bitswarm_tracker::server::Tracker;
use bitswarm_tracker::swarm::SwarmTable;
use rand::rngs::OsRng;
use tokio::sync::{watch, Semaphore};

pub use config::Config;
pub use error::ServerError;
use metrics::Metrics;

/// How long shutdown waits for HTTP requests in progress.
const HTTP_DRAIN: Duration = Duration::from_secs(5);
/// Period of the housekeeping thread (rates, expiry and access-file checks are multiples).
const TICK: Duration = Duration::from_secs(1);

/// State every worker shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) tracker: Tracker,
    pub(crate) access: access::LiveAccess,
    pub(crate) metrics: Metrics,
    pub(crate) clock: Clock,
    pub(crate) shutdown: AtomicBool,
}

/// Seconds since the server started: the `now_s` of the protocol crate.
#[derive(Debug)]
pub(crate) struct Clock(Instant);

impl Clock {
    pub(crate) fn now_s(&self) -> u32 {
        u32::try_from(self.0.elapsed().as_secs()).unwrap_or(u32::MAX)
    }
}

/// A running tracker server.
#[derive(Debug)]
pub struct Server {
    shared: Arc<Shared>,
    udp_addrs: Vec<SocketAddr>,
    http_addrs: Vec<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    threads: Vec<JoinHandle<()>>,
    runtime: Option<tokio::runtime::Runtime>,
    shutdown_http: watch::Sender<bool>,
    stop_housekeeping: Option<mpsc::Sender<()>>,
}

impl Server {
    /// Validates `config`, binds every listener and starts the workers.
    pub fn start(config: &Config) -> Result<Self, ServerError> {
        config.validate()?;
        let access =
            access::LiveAccess::load(config.access.mode.into(), config.access.file.clone())?;
        let mut rng = OsRng;
        let table = SwarmTable::new(config.table(), &mut rng);
        let shared = Arc::new(Shared {
            tracker: Tracker::new(table, config.server(), &mut rng),
            access,
            metrics: Metrics::default(),
            clock: Clock(Instant::now()),
            shutdown: AtomicBool::new(false),
        });
        shared
            .metrics
            .access_entries
            .store(shared.access.len() as u64, Ordering::Relaxed);
        let (shutdown_http, _) = watch::channel(false);
        let mut server = Self {
            shared,
            udp_addrs: Vec::new(),
            http_addrs: Vec::new(),
            metrics_addr: None,
            threads: Vec::new(),
            runtime: None,
            shutdown_http,
            stop_housekeeping: None,
        };
        // On any error below, dropping `server` stops what was already started.
        server.start_udp(config)?;
        server.start_http(config)?;
        server.start_housekeeping(config)?;
        Ok(server)
    }

    /// The bound UDP addresses, one per configured address.
    #[must_use]
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp_addrs
    }

    /// The bound HTTP addresses, one per configured address.
    #[must_use]
    pub fn http_addrs(&self) -> &[SocketAddr] {
        &self.http_addrs
    }

    /// The bound metrics address, if one was configured.
    #[must_use]
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Re-reads the access-list file; on error the old list stays in force. Returns the
    /// number of listed info-hashes.
    pub fn reload_access(&self) -> Result<usize, ServerError> {
        reload(&self.shared)
    }

    /// The Prometheus text of every metric now.
    #[must_use]
    pub fn metrics_text(&self) -> String {
        self.shared
            .metrics
            .render(&self.shared.tracker.table().stats())
    }

    /// Stops gracefully: listeners close, requests in progress are answered, every thread
    /// is joined.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Relaxed);
        let _ = self.shutdown_http.send(true);
        self.stop_housekeeping.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(HTTP_DRAIN);
        }
        tracing::info!("tracker stopped");
    }

    fn start_udp(&mut self, config: &Config) -> Result<(), ServerError> {
        for &addr in &config.udp.addrs {
            let first = udp::bind(addr, config.udp.socket_buffer_bytes)
                .map_err(|source| ServerError::Bind { addr, source })?;
            let bound = first
                .local_addr()
                .map_err(|source| ServerError::Bind { addr, source })?;
            let mut sockets = vec![first];
            for _ in 1..config.udp.workers {
                let s = udp::bind(bound, config.udp.socket_buffer_bytes).map_err(|source| {
                    ServerError::Bind {
                        addr: bound,
                        source,
                    }
                })?;
                sockets.push(s);
            }
            for (i, socket) in sockets.into_iter().enumerate() {
                self.spawn_udp_worker(socket, bound, i, config.udp.batch)?;
            }
            tracing::info!(%bound, workers = config.udp.workers, batch = config.udp.batch, "listening udp");
            self.udp_addrs.push(bound);
        }
        Ok(())
    }

    fn spawn_udp_worker(
        &mut self,
        socket: UdpSocket,
        bound: SocketAddr,
        i: usize,
        batch: usize,
    ) -> Result<(), ServerError> {
        let shared = Arc::clone(&self.shared);
        let thread = std::thread::Builder::new()
            .name(format!("udp-{}-{i}", bound.port()))
            .spawn(move || udp::run_worker(&socket, &shared, batch))
            .map_err(ServerError::Spawn)?;
        self.threads.push(thread);
        Ok(())
    }

    fn start_http(&mut self, config: &Config) -> Result<(), ServerError> {
        let listeners: Vec<_> = config
            .http
            .addrs
            .iter()
            .map(|&a| (a, http::Role::Tracker))
            .chain(config.metrics.addr.map(|a| (a, http::Role::Metrics)))
            .collect();
        if listeners.is_empty() {
            return Ok(());
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.http.workers)
            .thread_name("tracker-http")
            .enable_all()
            .build()
            .map_err(ServerError::Spawn)?;
        let limit = Arc::new(Semaphore::new(config.http.connections_max));
        let idle = Duration::from_secs(config.http.idle_timeout_s.max(1));
        for (addr, role) in listeners {
            let std_listener = std::net::TcpListener::bind(addr)
                .map_err(|source| ServerError::Bind { addr, source })?;
            let bound = std_listener
                .local_addr()
                .map_err(|source| ServerError::Bind { addr, source })?;
            std_listener
                .set_nonblocking(true)
                .map_err(|source| ServerError::Bind { addr, source })?;
            let _guard = runtime.enter();
            let listener = tokio::net::TcpListener::from_std(std_listener)
                .map_err(|source| ServerError::Bind { addr, source })?;
            let task = http::serve(
                listener,
                role,
                Arc::clone(&self.shared),
                Arc::clone(&limit),
                idle,
                self.shutdown_http.subscribe(),
            );
            runtime.spawn(task);
            match role {
                http::Role::Tracker => {
                    tracing::info!(%bound, "listening http");
                    self.http_addrs.push(bound);
                }
                http::Role::Metrics => {
                    tracing::info!(%bound, "listening metrics");
                    self.metrics_addr = Some(bound);
                }
            }
        }
        self.runtime = Some(runtime);
        Ok(())
    }

    fn start_housekeeping(&mut self, config: &Config) -> Result<(), ServerError> {
        let (tx, rx) = mpsc::channel::<()>();
        let shared = Arc::clone(&self.shared);
        let expire_every = u64::from(config.announce.expire_every_s);
        let watch_every = config.access.watch_every_s;
        let thread = std::thread::Builder::new()
            .name("tracker-housekeeping".into())
            .spawn(move || housekeeping(&shared, &rx, expire_every, watch_every))
            .map_err(ServerError::Spawn)?;
        self.threads.push(thread);
        self.stop_housekeeping = Some(tx);
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.threads.is_empty() || self.runtime.is_some() {
            self.stop();
        }
    }
}

/// Once a second: request rates; every `expire_every` seconds: drop expired peers; every
/// `watch_every` seconds (if not 0): reload the access list if its file changed. Ends when
/// the sender is dropped.
fn housekeeping(shared: &Shared, stop: &mpsc::Receiver<()>, expire_every: u64, watch_every: u64) {
    let mut last = Instant::now();
    let mut ticks: u64 = 0;
    loop {
        match stop.recv_timeout(TICK) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        ticks += 1;
        shared.metrics.tick(last.elapsed().as_secs_f64());
        last = Instant::now();
        if ticks % expire_every.max(1) == 0 {
            let dropped = shared.tracker.table().expire(shared.clock.now_s());
            shared
                .metrics
                .expired_peers
                .fetch_add(dropped as u64, Ordering::Relaxed);
            if dropped > 0 {
                tracing::debug!(dropped, "expired peers");
            }
        }
        if watch_every > 0 && ticks % watch_every == 0 && shared.access.file_changed() {
            let _ = reload(shared);
        }
    }
}

fn reload(shared: &Shared) -> Result<usize, ServerError> {
    match shared.access.reload() {
        Ok(n) => {
            shared
                .metrics
                .access_reloads_ok
                .fetch_add(1, Ordering::Relaxed);
            shared
                .metrics
                .access_entries
                .store(n as u64, Ordering::Relaxed);
            tracing::info!(entries = n, "access list reloaded");
            Ok(n)
        }
        Err(e) => {
            shared
                .metrics
                .access_reloads_failed
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "access list reload failed; the previous list stays in force");
            Err(e)
        }
    }
}
