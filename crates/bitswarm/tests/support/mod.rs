//! Harness for the end-to-end transfer tests: start real BitTorrent clients (bitswarm,
//! libtorrent through `lt_peer.py`, Transmission) as seeders or leechers on 127.0.0.1, wait for
//! them against deadlines, kill every child process when a test fails, and compare the bytes
//! that arrived with the bytes that were seeded.
//!
//! The client under a test is a [`Client`] value, so one scenario runs with bitswarm (the
//! real test) or with libtorrent in its place (to prove the harness itself works before the
//! CLI exists). The bitswarm side is coded against this CLI contract:
//!
//! ```text
//! bitswarm download TORRENT [-o DIR] [--seed] [--peer HOST:PORT]... [--listen ADDR]
//!                           [--state FILE] [--files SPEC] [--no-dht]
//! bitswarm seed TORRENT DIR [--peer HOST:PORT]... [--listen ADDR] [--state FILE] [--no-dht]
//! ```
//! stdout: first line `listening on 127.0.0.1:PORT`; `complete: NAME` once every wanted piece
//! is verified and written; at exit `summary: downloaded=B uploaded=B wasted=B`. `download`
//! exits 0 after completing (without `--seed`); `seed` serves until SIGINT/SIGTERM and exits 0.
//! DIR of `seed` is read like `-o DIR` of `download` is written: the content is DIR/NAME.

#![allow(dead_code)] // each test file uses a different subset

pub mod corrupt_peer;
pub mod fixture;
pub mod transmission;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::common::python_with_libtorrent;

pub use fixture::Fixture;
pub use transmission::TransmissionPeer;

/// The longest any transfer test may run; every wait is bounded by a deadline derived from it.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a stopped client may take to exit after SIGTERM.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
/// Lines of a client's output quoted when a test fails.
const LOG_TAIL_LINES: usize = 40;

/// A BitTorrent client that can play either side of a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// `bitswarm download` / `bitswarm seed` (the binary under test, or `$BITSWARM_BIN`).
    Bitswarm,
    /// libtorrent 2.0 through `support/lt_peer.py` and Debian's `/usr/bin/python3`.
    Libtorrent,
    /// `transmission-daemon` 3.00 driven by `transmission-remote`.
    Transmission,
}

/// Which side of a transfer opens the TCP connection (the other only listens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialer {
    /// The seeder dials the leecher's listen port.
    Seeder,
    /// The leecher dials the seeder's listen port.
    Leecher,
}

/// The figures of a client's `summary:` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Payload bytes received from peers (wasted bytes included).
    pub downloaded: u64,
    /// Payload bytes sent.
    pub uploaded: u64,
    /// Payload bytes received and discarded: hash failures, duplicates.
    pub wasted: u64,
}

impl Summary {
    /// Parses `summary: downloaded=1 uploaded=2 wasted=3` (fields in any order).
    pub fn parse(line: &str) -> Option<Self> {
        let rest = line.strip_prefix("summary:")?;
        let mut fields = BTreeMap::new();
        for word in rest.split_whitespace() {
            let (k, v) = word.split_once('=')?;
            fields.insert(k, v.parse::<u64>().ok()?);
        }
        Some(Self {
            downloaded: *fields.get("downloaded")?,
            uploaded: *fields.get("uploaded")?,
            wasted: *fields.get("wasted")?,
        })
    }
}

/// One side of a transfer, whatever client plays it. Dropping it kills the client.
pub trait Peer {
    /// A short name for messages: "bitswarm leecher".
    fn label(&self) -> &str;
    /// Where it accepts peer connections.
    fn listen_addr(&self) -> SocketAddr;
    /// Waits until it reports every wanted piece verified; returns when that was seen.
    fn wait_complete(&mut self, deadline: Instant) -> Result<Instant, String>;
    /// Stops it (waiting first for a leecher that exits by itself), checks it exited cleanly
    /// and returns its summary (`None` for clients that print none).
    fn finish(&mut self) -> Result<Option<Summary>, String>;
    /// Kills it at once with SIGKILL, as a crash or power cut would.
    fn kill_hard(&mut self);
    /// Its recent output, for failure messages.
    fn log_tail(&self) -> String;
}

/// Panics with `msg` and the recent output of every peer (dropping them kills them).
pub fn fail(msg: &str, peers: &[&dyn Peer]) -> ! {
    let mut text = format!("{msg}\n");
    for p in peers {
        let _ = write!(text, "\n===== {} =====\n{}\n", p.label(), p.log_tail());
    }
    panic!("{text}");
}

/// Unwraps a harness result or fails with every peer's log.
pub fn check<T>(result: Result<T, String>, peers: &[&dyn Peer]) -> T {
    result.unwrap_or_else(|e| fail(&e, peers))
}

/// Serialises the transfer tests of one test binary: they are timing-sensitive (rate limits,
/// kill at half way) and each moves 64 MiB, so running them side by side on a small machine
/// only makes every one of them slower and noisier.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A port the OS just handed out on 127.0.0.1, for programs that need a number up front.
/// (Bound, read, closed: another process could take it in between, which is unlikely.)
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

// ---------------------------------------------------------------------------------------------
// Starting clients

/// How to start one side of a transfer.
#[derive(Debug, Clone, Default)]
pub struct Opts {
    /// Peers it must dial.
    pub connect: Vec<SocketAddr>,
    /// The resume database (bitswarm's `--state`); default: `<label>.state` in the temp dir.
    pub state: Option<PathBuf>,
    /// Upload rate limit in bytes/s (libtorrent only).
    pub upload_limit: Option<u64>,
}

/// Starts `client` seeding the fixture's payload from `data_dir` (which holds NAME/). Returns
/// once it listens (and, where the client tells, once its data is checked).
pub fn start_seeder(client: Client, fx: &Fixture, data_dir: &Path, opts: &Opts) -> Box<dyn Peer> {
    let label = format!("{} seeder", name(client));
    match client {
        Client::Bitswarm => {
            require_bitswarm_subcommand("seed");
            let mut cmd = bitswarm_command("seed", fx, &label, opts);
            cmd.arg(data_dir);
            Box::new(ProcPeer::start(&label, cmd, fx, false))
        }
        Client::Libtorrent => Box::new(start_lt_seeder(fx, data_dir, opts)),
        Client::Transmission => {
            assert!(
                opts.connect.is_empty(),
                "Transmission cannot be told to dial a peer"
            );
            Box::new(TransmissionPeer::seeder(fx, &label, data_dir))
        }
    }
}

/// Starts `client` downloading the fixture's torrent into `out_dir`. Returns once it listens.
pub fn start_leecher(client: Client, fx: &Fixture, out_dir: &Path, opts: &Opts) -> Box<dyn Peer> {
    let label = format!("{} leecher", name(client));
    fs::create_dir_all(out_dir).expect("create out dir");
    match client {
        Client::Bitswarm => {
            require_bitswarm_subcommand("download");
            let mut cmd = bitswarm_command("download", fx, &label, opts);
            cmd.arg("-o").arg(out_dir);
            Box::new(ProcPeer::start(&label, cmd, fx, true))
        }
        Client::Libtorrent => {
            let cmd = lt_command(fx, out_dir, opts);
            Box::new(ProcPeer::start(&label, cmd, fx, true))
        }
        Client::Transmission => {
            assert!(
                opts.connect.is_empty(),
                "Transmission cannot be told to dial a peer"
            );
            Box::new(TransmissionPeer::leecher(fx, &label, out_dir))
        }
    }
}

/// A libtorrent seeder as its concrete type, for tests that read its `stats:` lines. Returns
/// once it has checked the data and seeds.
pub fn start_lt_seeder(fx: &Fixture, data_dir: &Path, opts: &Opts) -> ProcPeer {
    let mut cmd = lt_command(fx, data_dir, opts);
    cmd.arg("--seed");
    let peer = ProcPeer::start("libtorrent seeder", cmd, fx, false);
    check(
        peer.wait_line("ready", Instant::now() + TEST_TIMEOUT)
            .map(drop),
        &[&peer],
    );
    peer
}

fn name(client: Client) -> &'static str {
    match client {
        Client::Bitswarm => "bitswarm",
        Client::Libtorrent => "libtorrent",
        Client::Transmission => "transmission",
    }
}

fn bitswarm_bin() -> PathBuf {
    std::env::var_os("BITSWARM_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_bitswarm")),
        PathBuf::from,
    )
}

/// Fails the test (never skips it) when the binary does not have `sub` yet.
fn require_bitswarm_subcommand(sub: &str) {
    let bin = bitswarm_bin();
    let out = Command::new(&bin).args([sub, "--help"]).output();
    let ok = out.as_ref().is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "`{} {sub}` is not available: {}\nThis test is written against the CLI contract in \
         crates/bitswarm/tests/support/mod.rs and stays red until `bitswarm {sub}` exists.",
        bin.display(),
        out.map_or_else(
            |e| e.to_string(),
            |o| String::from_utf8_lossy(&o.stderr).into_owned()
        )
    );
}

fn bitswarm_command(sub: &str, fx: &Fixture, label: &str, opts: &Opts) -> Command {
    let mut cmd = Command::new(bitswarm_bin());
    cmd.arg(sub).arg(&fx.torrent);
    cmd.args(["--listen", "127.0.0.1:0", "--no-dht", "--state"]);
    cmd.arg(
        opts.state
            .clone()
            .unwrap_or_else(|| fx.path(&format!("{label}.state"))),
    );
    for peer in &opts.connect {
        cmd.arg("--peer").arg(peer.to_string());
    }
    assert!(
        opts.upload_limit.is_none(),
        "bitswarm has no upload limit option"
    );
    cmd
}

fn lt_command(fx: &Fixture, save_dir: &Path, opts: &Opts) -> Command {
    let mut cmd = Command::new(python_with_libtorrent());
    cmd.arg(lt_script()).arg(&fx.torrent).arg(save_dir);
    for peer in &opts.connect {
        cmd.arg("--connect").arg(peer.to_string());
    }
    if let Some(limit) = opts.upload_limit {
        cmd.arg("--upload-limit").arg(limit.to_string());
    }
    cmd
}

/// The libtorrent peer script.
pub fn lt_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/lt_peer.py")
}

// ---------------------------------------------------------------------------------------------
// A client that is one process speaking the stdout protocol (bitswarm, lt_peer.py)

/// A client process whose stdout lines are collected as they arrive. Killed on drop.
pub struct ProcPeer {
    label: String,
    child: Child,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
    reader: Option<JoinHandle<()>>,
    stderr_log: PathBuf,
    listen: SocketAddr,
    /// A leecher: exits by itself after completing.
    exits_when_complete: bool,
}

impl ProcPeer {
    /// Spawns `cmd` (stderr to a log file in the fixture's dir) and waits for its
    /// `listening on ADDR` line.
    pub fn start(label: &str, mut cmd: Command, fx: &Fixture, exits_when_complete: bool) -> Self {
        let stderr_log = fx.path(&format!("{}.stderr", label.replace(' ', "-")));
        let stderr = fs::File::create(&stderr_log).expect("stderr log");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {label} ({cmd:?}): {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let reader = thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("lines").push((Instant::now(), line));
            }
        });
        let mut peer = Self {
            label: label.to_owned(),
            child,
            lines,
            reader: Some(reader),
            stderr_log,
            listen: SocketAddr::from(([0, 0, 0, 0], 0)),
            exits_when_complete,
        };
        let first = check(peer.wait_line("", Instant::now() + TEST_TIMEOUT), &[&peer]);
        let addr = first
            .1
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok());
        match addr {
            Some(addr) => peer.listen = addr,
            None => fail(
                &format!(
                    "{label}: first line {:?} is not `listening on ADDR`",
                    first.1
                ),
                &[&peer],
            ),
        }
        peer
    }

    /// The first line starting with `prefix` (when it arrived and the line); fails if the
    /// process exits or the deadline passes first.
    pub fn wait_line(&self, prefix: &str, deadline: Instant) -> Result<(Instant, String), String> {
        loop {
            if let Some(found) = self.find_line(prefix) {
                return Ok(found);
            }
            if self.reader.as_ref().is_none_or(JoinHandle::is_finished) {
                // stdout closed: one last look, then the process is gone.
                return self.find_line(prefix).ok_or_else(|| {
                    format!("{} closed stdout without printing `{prefix}`", self.label)
                });
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{}: no `{prefix}` line before the deadline",
                    self.label
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn find_line(&self, prefix: &str) -> Option<(Instant, String)> {
        let lines = self.lines.lock().expect("lines");
        lines.iter().find(|(_, l)| l.starts_with(prefix)).cloned()
    }

    /// The last line starting with `prefix`.
    pub fn last_line(&self, prefix: &str) -> Option<String> {
        let lines = self.lines.lock().expect("lines");
        lines
            .iter()
            .rev()
            .find(|(_, l)| l.starts_with(prefix))
            .map(|(_, l)| l.clone())
    }

    /// A `key=value` figure from the last `stats:` line (`lt_peer.py` prints them).
    pub fn stat(&self, key: &str) -> Option<u64> {
        let line = self.last_line("stats:")?;
        line.split_whitespace()
            .filter_map(|w| w.split_once('='))
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.parse().ok())
    }

    /// Sends SIGTERM (a clean stop).
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Peer for ProcPeer {
    fn label(&self) -> &str {
        &self.label
    }

    fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    fn wait_complete(&mut self, deadline: Instant) -> Result<Instant, String> {
        self.wait_line("complete: ", deadline).map(|(at, _)| at)
    }

    fn finish(&mut self) -> Result<Option<Summary>, String> {
        let status = match self
            .exits_when_complete
            .then(|| self.wait_exit(EXIT_TIMEOUT))
        {
            Some(Some(status)) => status,
            Some(None) => return Err(format!("{} did not exit after completing", self.label)),
            None => {
                self.terminate();
                self.wait_exit(EXIT_TIMEOUT)
                    .ok_or_else(|| format!("{} did not exit after SIGTERM", self.label))?
            }
        };
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        if !status.success() {
            return Err(format!("{} exited with {status}", self.label));
        }
        let line = self
            .last_line("summary:")
            .ok_or_else(|| format!("{} printed no `summary:` line", self.label))?;
        Summary::parse(&line)
            .map(Some)
            .ok_or_else(|| format!("{}: cannot read {line:?}", self.label))
    }

    fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log_tail(&self) -> String {
        let lines = self.lines.lock().expect("lines");
        let last_stats = lines.iter().rev().find(|(_, l)| l.starts_with("stats:"));
        let mut out: Vec<&str> = lines
            .iter()
            .filter(|(_, l)| !l.starts_with("stats:"))
            .map(|(_, l)| l.as_str())
            .collect();
        out.extend(last_stats.map(|(_, l)| l.as_str()));
        let skip = out.len().saturating_sub(LOG_TAIL_LINES);
        let stderr = fs::read_to_string(&self.stderr_log).unwrap_or_default();
        format!(
            "--- stdout (last {LOG_TAIL_LINES} lines, stats: only the last) ---\n{}\n\
             --- stderr (last {LOG_TAIL_LINES} lines) ---\n{}",
            out[skip..].join("\n"),
            tail(&stderr, LOG_TAIL_LINES)
        )
    }
}

impl Drop for ProcPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// The basic scenario

/// What a finished transfer reports.
#[derive(Debug)]
pub struct Outcome {
    /// The seeder's summary, if its client prints one.
    pub seeder: Option<Summary>,
    /// The leecher's summary, if its client prints one.
    pub leecher: Option<Summary>,
    /// From starting the second client to the leecher's completion.
    pub elapsed: Duration,
}

/// One seeder to one leecher over 127.0.0.1, the listener started first and the dialer given
/// its address; asserts the leecher completes within [`TEST_TIMEOUT`], both exit cleanly, the
/// bytes are identical and the summaries add up.
pub fn transfer(seeder: Client, leecher: Client, dialer: Dialer) -> Outcome {
    let _serial = serial();
    let fx = Fixture::new();
    let deadline = Instant::now() + TEST_TIMEOUT;
    let out_dir = fx.path("leech");
    let (mut s, mut l, started) = match dialer {
        Dialer::Leecher => {
            let s = start_seeder(seeder, &fx, &fx.seed_dir, &Opts::default());
            let started = Instant::now();
            let opts = Opts {
                connect: vec![s.listen_addr()],
                ..Opts::default()
            };
            let l = start_leecher(leecher, &fx, &out_dir, &opts);
            (s, l, started)
        }
        Dialer::Seeder => {
            let l = start_leecher(leecher, &fx, &out_dir, &Opts::default());
            let started = Instant::now();
            let opts = Opts {
                connect: vec![l.listen_addr()],
                ..Opts::default()
            };
            let s = start_seeder(seeder, &fx, &fx.seed_dir, &opts);
            (s, l, started)
        }
    };
    let done = check(l.wait_complete(deadline), &[&*s, &*l]);
    let elapsed = done.duration_since(started);
    let leecher_summary = check(l.finish(), &[&*s, &*l]);
    let seeder_summary = check(s.finish(), &[&*s, &*l]);
    check(fx.assert_same_content(&out_dir), &[&*s, &*l]);
    let peers: [&dyn Peer; 2] = [&*s, &*l];
    if let Some(sum) = leecher_summary {
        if sum.downloaded.checked_sub(sum.wasted) != Some(fx.total) {
            let msg = format!(
                "{} summary {sum:?}: downloaded - wasted must be the payload size, {}",
                l.label(),
                fx.total
            );
            fail(&msg, &peers);
        }
    }
    if let Some(sum) = seeder_summary {
        if sum.uploaded < fx.total {
            let msg = format!(
                "{} summary {sum:?}: the leecher got all {} bytes from it, but it counts \
                 fewer uploaded",
                s.label(),
                fx.total
            );
            fail(&msg, &peers);
        }
    }
    eprintln!(
        "{} -> {} ({:?} dials): {} bytes in {:.1} s",
        s.label(),
        l.label(),
        dialer,
        fx.total,
        elapsed.as_secs_f64()
    );
    Outcome {
        seeder: seeder_summary,
        leecher: leecher_summary,
        elapsed,
    }
}
