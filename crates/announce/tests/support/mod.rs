//! What the integration tests share: an opentracker process on loopback, a tiny HTTP tracker
//! that answers what the test says, fast timers, and bounded event collection.

#![allow(dead_code)] // each test binary uses part of this

use std::net::{SocketAddr, TcpListener as StdTcpListener, TcpStream as StdTcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bitswarm_announce::{
    AnnounceConfig, AnnounceEvent, AnnounceHandle, AnnounceProgress, Announcer, Timing,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Bound on any one test's waiting.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Timers scaled down so that a test takes seconds: intervals clamped to 1 s (opentracker
/// asks for ~30 min), UDP retransmits after 200 ms then 400 ms.
pub fn fast_timing() -> Timing {
    Timing {
        udp_timeout_base: Duration::from_millis(200),
        udp_retransmits_max: 1,
        http_timeout: Duration::from_secs(3),
        interval_floor: Duration::from_millis(300),
        interval_ceiling: Duration::from_secs(1),
        retry_base: Duration::from_millis(500),
        retry_max: Duration::from_secs(2),
        stop_timeout: Duration::from_secs(2),
        ..Timing::default()
    }
}

pub fn config(tiers: Vec<Vec<String>>, info_hash: [u8; 20], peer: u8, port: u16) -> AnnounceConfig {
    let mut peer_id = *b"-BS0001-000000000000";
    peer_id[19] = peer;
    let mut c = AnnounceConfig::new(tiers, info_hash, peer_id, port);
    c.timing = fast_timing();
    c.udp_bind_v4 = "127.0.0.1:0".parse().unwrap();
    c.numwant = Some(50);
    c
}

pub fn spawn(config: AnnounceConfig) -> (AnnounceHandle, mpsc::Receiver<AnnounceEvent>) {
    let progress = Arc::new(|| AnnounceProgress {
        uploaded: 0,
        downloaded: 0,
        left: 1 << 20,
    });
    Announcer::spawn(config, progress)
}

/// Receives events until `done` says so (true) or the deadline passes (false); every event
/// seen is kept in `seen`.
pub async fn wait_for(
    rx: &mut mpsc::Receiver<AnnounceEvent>,
    seen: &mut Vec<AnnounceEvent>,
    within: Duration,
    mut done: impl FnMut(&AnnounceEvent) -> bool,
) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(e)) => {
                let hit = done(&e);
                seen.push(e);
                if hit {
                    return true;
                }
            }
            Ok(None) | Err(_) => return false,
        }
    }
}

pub fn has_peer(e: &AnnounceEvent, addr: SocketAddr) -> bool {
    matches!(e, AnnounceEvent::Peers(p) if p.contains(&addr))
}

/// A loopback TCP port nothing listens on (bound, then released).
pub fn closed_tcp_port() -> u16 {
    let l = StdTcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A loopback UDP port nothing listens on (bound, then released).
pub fn closed_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap().port()
}

/// An opentracker process on 127.0.0.1, killed on drop.
pub struct Opentracker {
    pub tcp: u16,
    pub udp: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Opentracker {
    /// Starts opentracker whitelisting `hashes` (the Debian build only serves whitelisted
    /// info-hashes). Fails the test, loudly, if opentracker is not installed.
    pub fn start(hashes: &[[u8; 20]]) -> Self {
        let found = Command::new("opentracker")
            .arg("-h")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        assert!(
            found.is_ok(),
            "opentracker is not installed (Debian package `opentracker`, listed in .ci/apt-packages)"
        );
        for _ in 0..5 {
            if let Some(t) = Self::try_start(hashes) {
                return t;
            }
        }
        panic!("opentracker did not come up on 127.0.0.1 after 5 tries");
    }

    fn try_start(hashes: &[[u8; 20]]) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        // opentracker chroots here and drops to `nobody`, who must still read the whitelist.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let list: String = hashes.iter().map(|h| hex(h) + "\n").collect();
        std::fs::write(dir.path().join("whitelist.txt"), list).unwrap();
        let (tcp, udp) = (closed_tcp_port(), closed_udp_port());
        let mut child = Command::new("opentracker")
            .args([
                "-i",
                "127.0.0.1",
                "-p",
                &tcp.to_string(),
                "-P",
                &udp.to_string(),
            ])
            .arg("-d")
            .arg(dir.path())
            .args(["-u", "nobody", "-w", "/whitelist.txt"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn opentracker");
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if child.try_wait().ok().flatten().is_some() {
                return None; // exited: most likely a port was taken meanwhile
            }
            if StdTcpStream::connect(("127.0.0.1", tcp)).is_ok() {
                return Some(Self {
                    tcp,
                    udp,
                    child,
                    _dir: dir,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}/announce", self.tcp)
    }

    pub fn udp_url(&self) -> String {
        format!("udp://127.0.0.1:{}/announce", self.udp)
    }
}

impl Drop for Opentracker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// A tiny HTTP tracker on 127.0.0.1:0: answers each request with what `respond` returns for
/// its request target, records the targets, and closes the connection.
pub struct FakeTracker {
    pub addr: SocketAddr,
    pub targets: Arc<Mutex<Vec<String>>>,
}

impl FakeTracker {
    pub async fn start(respond: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static) -> Self {
        Self::start_with(respond, None).await
    }

    pub async fn start_with(
        respond: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let targets = Arc::new(Mutex::new(Vec::new()));
        let (log, respond) = (targets.clone(), Arc::new(respond));
        tokio::spawn(async move {
            // Bounded: a test makes a handful of requests.
            for _ in 0..100 {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (log, respond, tls) = (log.clone(), respond.clone(), tls.clone());
                tokio::spawn(async move {
                    let work = async {
                        match tls {
                            Some(acceptor) => {
                                let Ok(s) = acceptor.accept(stream).await else {
                                    return;
                                };
                                serve_one(s, &log, &*respond).await;
                            }
                            None => serve_one(stream, &log, &*respond).await,
                        }
                    };
                    let _ = tokio::time::timeout(Duration::from_secs(5), work).await;
                });
            }
        });
        Self { addr, targets }
    }

    pub fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://{}{path}", self.addr)
    }
}

async fn serve_one<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    log: &Mutex<Vec<String>>,
    respond: &(dyn Fn(&str) -> Vec<u8> + Send + Sync),
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16384 {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let target = head.split(' ').nth(1).unwrap_or_default().to_owned();
    log.lock().unwrap().push(target.clone());
    let _ = s.write_all(&respond(&target)).await;
    let _ = s.shutdown().await;
}

/// A complete `200 OK` response carrying `body`.
pub fn ok(body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    r.extend_from_slice(body);
    r
}
