//! Transmission 3.00 as a test peer: a `transmission-daemon` with its own config dir, RPC and
//! peer ports picked by the OS, DHT/LPD/uTP/PEX off, driven with `transmission-remote`.
//!
//! Transmission can only be the listening side on loopback: it will not dial 127.0.0.0/8
//! addresses it learns from trackers or PEX (they are "martian" to it), and its RPC has no
//! "connect to this peer" call; it does accept incoming connections from 127.0.0.1.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{fail, free_port, tail, Fixture, Peer, Summary, LOG_TAIL_LINES, TEST_TIMEOUT};
use crate::common::require;

/// How often the daemon is asked for the torrent's state.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// A running `transmission-daemon` with one torrent. Killed on drop.
pub struct TransmissionPeer {
    label: String,
    daemon: Child,
    rpc: String,
    peer_port: u16,
    hash: String,
    log: PathBuf,
    last_info: String,
}

/// The parts of `transmission-remote -t HASH -i` the harness reads.
#[derive(Debug, Default)]
struct Info {
    state: String,
    percent_done: String,
    have: String,
}

impl Info {
    fn parse(text: &str) -> Self {
        let mut info = Self::default();
        for line in text.lines() {
            let Some((key, value)) = line.trim().split_once(": ") else {
                continue;
            };
            let value = value.trim().to_owned();
            match key {
                "State" => info.state = value,
                "Percent Done" => info.percent_done = value,
                "Have" => info.have = value,
                _ => {}
            }
        }
        info
    }

    /// Every piece present and verified: "100%" (Transmission truncates, never rounds up to
    /// it) and `Have: X (X verified)` with both amounts equal.
    fn complete(&self) -> bool {
        let verified = self
            .have
            .strip_suffix(" verified)")
            .and_then(|h| h.split_once(" ("))
            .is_some_and(|(have, verified)| have == verified);
        self.percent_done == "100%" && verified && !self.state.contains("Verif")
    }
}

impl TransmissionPeer {
    /// A daemon that checks the data in `data_dir` (which holds NAME/) and seeds it.
    pub fn seeder(fx: &Fixture, label: &str, data_dir: &Path) -> Self {
        let mut peer = Self::start(fx, label, data_dir);
        let deadline = Instant::now() + TEST_TIMEOUT;
        let ok = peer.poll_until(deadline, Info::complete);
        if let Err(e) = ok {
            fail(
                &format!("{label}: never finished checking the seed data: {e}"),
                &[&peer],
            );
        }
        peer
    }

    /// A daemon downloading into the empty folder `out_dir`.
    pub fn leecher(fx: &Fixture, label: &str, out_dir: &Path) -> Self {
        Self::start(fx, label, out_dir)
    }

    fn start(fx: &Fixture, label: &str, download_dir: &Path) -> Self {
        let daemon_bin = require("transmission-daemon", "transmission-daemon");
        require("transmission-remote", "transmission-cli");
        let cfg = fx.path(&format!("{}-config", label.replace(' ', "-")));
        fs::create_dir_all(&cfg).expect("config dir");
        let rpc_port = free_port();
        let peer_port = (0..100)
            .map(|_| free_port())
            .find(|&p| p != rpc_port)
            .expect("two distinct free ports");
        write_settings(&cfg, download_dir, rpc_port, peer_port);
        let log = cfg.join("daemon.log");
        let daemon = Command::new(daemon_bin)
            .arg("-f")
            .arg("-g")
            .arg(&cfg)
            .arg("--no-auth")
            .args(["-p", &rpc_port.to_string(), "-P", &peer_port.to_string()])
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start transmission-daemon");
        let mut peer = Self {
            label: label.to_owned(),
            daemon,
            rpc: format!("127.0.0.1:{rpc_port}"),
            peer_port,
            hash: fx.info_hash_hex.clone(),
            log,
            last_info: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        if let Err(e) = peer.wait_rpc(deadline) {
            fail(&format!("{label}: RPC never came up: {e}"), &[&peer]);
        }
        let torrent = fx.torrent.to_str().expect("utf-8 path");
        if let Err(e) = peer.remote(&["-a", torrent]) {
            fail(&format!("{label}: cannot add the torrent: {e}"), &[&peer]);
        }
        if let Some(line) = peer
            .log_text()
            .lines()
            .find(|l| l.contains("Couldn't bind"))
        {
            fail(&format!("{label}: peer port taken: {line}"), &[&peer]);
        }
        peer
    }

    /// Runs `transmission-remote RPC ARGS...`; its stdout on success.
    fn remote(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("transmission-remote")
            .arg(&self.rpc)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run transmission-remote: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "transmission-remote {args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn wait_rpc(&mut self, deadline: Instant) -> Result<(), String> {
        loop {
            match self.remote(&["-l"]) {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => {}
            }
            if let Ok(Some(status)) = self.daemon.try_wait() {
                return Err(format!("transmission-daemon exited with {status}"));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Polls the torrent's info until `done` holds.
    fn poll_until(&mut self, deadline: Instant, done: fn(&Info) -> bool) -> Result<(), String> {
        loop {
            let text = self.remote(&["-t", &self.hash, "-i"])?;
            let info = Info::parse(&text);
            self.last_info = text;
            if done(&info) {
                return Ok(());
            }
            if let Ok(Some(status)) = self.daemon.try_wait() {
                return Err(format!("transmission-daemon exited with {status}"));
            }
            if Instant::now() > deadline {
                return Err(format!("deadline passed; last state {info:?}"));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn write_settings(cfg: &Path, download_dir: &Path, rpc_port: u16, peer_port: u16) {
    let settings = serde_json::json!({
        "dht-enabled": false,
        "lpd-enabled": false,
        "utp-enabled": false,
        "pex-enabled": false,
        "port-forwarding-enabled": false,
        "peer-port": peer_port,
        "peer-port-random-on-start": false,
        "bind-address-ipv4": "127.0.0.1",
        "rpc-port": rpc_port,
        "rpc-bind-address": "127.0.0.1",
        "rpc-authentication-required": false,
        "rpc-whitelist-enabled": false,
        "rpc-host-whitelist-enabled": false,
        "download-dir": download_dir,
        "incomplete-dir-enabled": false,
        "rename-partial-files": false,
        "watch-dir-enabled": false,
        "start-added-torrents": true,
        // 0: plaintext preferred, encrypted accepted (bitswarm does not speak MSE).
        "encryption": 0,
        "speed-limit-up-enabled": false,
        "speed-limit-down-enabled": false,
        "alt-speed-enabled": false,
        "ratio-limit-enabled": false,
        "idle-seeding-limit-enabled": false,
        "blocklist-enabled": false,
        "message-level": 2,
    });
    let text = serde_json::to_string_pretty(&settings).expect("json");
    fs::write(cfg.join("settings.json"), text).expect("write settings.json");
}

impl Peer for TransmissionPeer {
    fn label(&self) -> &str {
        &self.label
    }

    fn listen_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.peer_port))
    }

    fn wait_complete(&mut self, deadline: Instant) -> Result<Instant, String> {
        self.poll_until(deadline, Info::complete)
            .map(|()| Instant::now())
    }

    /// Transmission prints no exact byte counts (`-i` rounds them), so no summary.
    fn finish(&mut self) -> Result<Option<Summary>, String> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.daemon.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(_)) = self.daemon.try_wait() {
                return Ok(None);
            }
            if Instant::now() > deadline {
                return Err(format!("{} did not exit after SIGTERM", self.label));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill_hard(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }

    fn log_tail(&self) -> String {
        format!(
            "--- last `transmission-remote -i` ---\n{}\n--- daemon log (last {LOG_TAIL_LINES} lines) ---\n{}",
            self.last_info.trim(),
            tail(&self.log_text(), LOG_TAIL_LINES)
        )
    }
}

impl Drop for TransmissionPeer {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}
