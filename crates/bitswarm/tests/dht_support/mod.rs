//! Harness of the DHT tests: line-speaking processes (`bitswarm dht run`, `bitswarm download`,
//! `support/lt_dht.py`) whose stdout is collected as it arrives, every wait bounded by a
//! deadline, every child killed on drop; and `bitswarm dht get-peers`/`announce` runs parsed.

#![allow(dead_code)] // each test file uses a different subset

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Lines of a process's output quoted when a test fails.
const LOG_TAIL_LINES: usize = 30;

/// A child process speaking lines on stdout (and taking commands on stdin). Killed on drop.
pub struct LineProc {
    pub label: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
    reader: Option<JoinHandle<()>>,
    stderr_log: PathBuf,
}

impl LineProc {
    /// Spawns `cmd` with stdout piped and collected, stderr to `dir/LABEL.stderr`.
    pub fn spawn(label: &str, mut cmd: Command, dir: &Path) -> Self {
        let stderr_log = dir.join(format!("{}.stderr", label.replace(' ', "-")));
        let stderr = fs::File::create(&stderr_log).expect("stderr log");
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {label} ({cmd:?}): {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let reader = thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("lines").push((Instant::now(), line));
            }
        });
        Self {
            label: label.to_owned(),
            child,
            stdin,
            lines,
            reader: Some(reader),
            stderr_log,
        }
    }

    /// Writes one command line to its stdin.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| {
                panic!(
                    "{}: cannot write {line:?}: {e}\n{}",
                    self.label,
                    self.log_tail()
                )
            });
    }

    /// The first line (at or after index `from`) for which `pred` holds, waiting until
    /// `deadline`; panics with the log if the process closes stdout or time runs out.
    pub fn wait_for(
        &self,
        what: &str,
        deadline: Instant,
        pred: impl Fn(&str) -> bool,
    ) -> (Instant, String) {
        self.wait_for_since(what, None, deadline, pred)
    }

    /// [`Self::wait_for`] among the lines that arrived at or after `since`.
    pub fn wait_for_since(
        &self,
        what: &str,
        since: Option<Instant>,
        deadline: Instant,
        pred: impl Fn(&str) -> bool,
    ) -> (Instant, String) {
        let pred = |at: Instant, l: &str| since.is_none_or(|s| at >= s) && pred(l);
        loop {
            if let Some(found) = self.find(&pred) {
                return found;
            }
            let closed = self.reader.as_ref().is_none_or(JoinHandle::is_finished);
            if closed || Instant::now() > deadline {
                if let Some(found) = self.find(&pred) {
                    return found;
                }
                let why = if closed { "exited" } else { "timed out" };
                panic!(
                    "{} {why} waiting for {what}\n{}",
                    self.label,
                    self.log_tail()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The first line starting with `prefix`, waiting until `deadline`.
    pub fn wait_line(&self, prefix: &str, deadline: Instant) -> (Instant, String) {
        self.wait_for(&format!("`{prefix}`"), deadline, |l| l.starts_with(prefix))
    }

    /// The address printed as `PREFIX ADDR`.
    pub fn wait_addr(&self, prefix: &str, deadline: Instant) -> SocketAddr {
        let (_, line) = self.wait_line(prefix, deadline);
        line[prefix.len()..]
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{}: {line:?}: not an address ({e})", self.label))
    }

    fn find(&self, pred: &impl Fn(Instant, &str) -> bool) -> Option<(Instant, String)> {
        let lines = self.lines.lock().expect("lines");
        lines.iter().find(|(at, l)| pred(*at, l)).cloned()
    }

    /// Its stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// Stops it with SIGTERM and waits (bounded) for a clean exit.
    pub fn terminate(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.wait_exit(timeout)
    }

    /// Waits (bounded) for it to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {timeout:?}\n{}",
                self.label,
                self.log_tail()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it at once (SIGKILL).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its recent output, for failure messages.
    pub fn log_tail(&self) -> String {
        let lines = self.lines.lock().expect("lines");
        let out: Vec<&str> = lines
            .iter()
            .filter(|(_, l)| !l.starts_with("stats:"))
            .map(|(_, l)| l.as_str())
            .collect();
        let skip = out.len().saturating_sub(LOG_TAIL_LINES);
        let stderr = self.stderr();
        let err: Vec<&str> = stderr.lines().collect();
        let err_skip = err.len().saturating_sub(LOG_TAIL_LINES);
        format!(
            "--- {} stdout ---\n{}\n--- {} stderr ---\n{}",
            self.label,
            out[skip..].join("\n"),
            self.label,
            err[err_skip..].join("\n")
        )
    }
}

impl Drop for LineProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `bitswarm` binary under test.
pub fn bitswarm_bin() -> PathBuf {
    std::env::var_os("BITSWARM_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_bitswarm")),
        PathBuf::from,
    )
}

/// Starts `bitswarm dht run` on 127.0.0.1 (any port, no routers, its own state file) and
/// returns it with its UDP address.
pub fn dht_run(label: &str, dir: &Path, deadline: Instant) -> (LineProc, SocketAddr) {
    let mut cmd = Command::new(bitswarm_bin());
    cmd.args(["dht", "run", "--port", "0", "--bind", "127.0.0.1"])
        .args(["--bootstrap", "none", "--state"])
        .arg(dir.join(format!("{}.sqlite", label.replace(' ', "-"))));
    let node = LineProc::spawn(label, cmd, dir);
    let addr = node.wait_addr("dht listening on ", deadline);
    (node, addr)
}

/// What one `bitswarm dht get-peers` run printed.
#[derive(Debug)]
pub struct Lookup {
    /// The peers, in the order printed.
    pub peers: Vec<SocketAddr>,
    /// The `lookup:` line.
    pub summary: String,
    /// Seconds from its `lookup:` line: until the lookup ended.
    pub seconds: f64,
    /// Seconds until the first peer arrived (`first after S s`), if one did.
    pub first_seconds: Option<f64>,
}

/// Runs `bitswarm dht get-peers INFO_HASH` bootstrapped only from `bootstrap`, with its own
/// state file `state`, bounded by `timeout_s` (and a process timeout). The node is read-only
/// (BEP 43): a short-lived querier that must not linger in the others' routing tables.
pub fn get_peers(info_hash: &str, bootstrap: SocketAddr, state: &Path, timeout_s: u32) -> Lookup {
    let mut cmd = Command::new(bitswarm_bin());
    cmd.args([
        "dht",
        "get-peers",
        info_hash,
        "--bind",
        "127.0.0.1",
        "--read-only",
    ])
    .args(["--bootstrap", &bootstrap.to_string()])
    .args(["--timeout", &timeout_s.to_string(), "--state"])
    .arg(state);
    let out = run_bounded(&mut cmd, Duration::from_secs(u64::from(timeout_s) + 20));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("lookup: "))
        .unwrap_or_else(|| panic!("no `lookup:` line in {stdout:?}\nstderr: {}", err(&out)))
        .to_owned();
    let seconds = summary
        .split_whitespace()
        .nth(4)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the time in {summary:?}"));
    let first_seconds = summary
        .split_once("first after ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|s| s.parse().ok());
    let peers = stdout
        .lines()
        .filter(|l| !l.starts_with("lookup: "))
        .map(|l| l.parse().unwrap_or_else(|e| panic!("peer line {l:?}: {e}")))
        .collect();
    Lookup {
        peers,
        summary,
        seconds,
        first_seconds,
    }
}

/// Runs `bitswarm dht announce INFO_HASH --peer-port PORT` bootstrapped only from the
/// `bootstrap` nodes; returns its `announce:` line.
pub fn announce(info_hash: &str, peer_port: u16, bootstrap: &[SocketAddr], state: &Path) -> String {
    let mut cmd = Command::new(bitswarm_bin());
    cmd.args(["dht", "announce", info_hash, "--bind", "127.0.0.1"])
        .args(["--peer-port", &peer_port.to_string()]);
    for node in bootstrap {
        cmd.args(["--bootstrap", &node.to_string()]);
    }
    cmd.args(["--timeout", "20", "--state"]).arg(state);
    let out = run_bounded(&mut cmd, Duration::from_secs(40));
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find(|l| l.starts_with("announce: "))
        .unwrap_or_else(|| panic!("no `announce:` line in {stdout:?}\nstderr: {}", err(&out)))
        .to_owned()
}

fn err(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `cmd` to completion within `limit` (killed otherwise); fails unless it exits 0.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> std::process::Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let Ok(out) = rx.recv_timeout(limit) else {
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(id.to_string())
            .status();
        panic!("{cmd:?} ran longer than {limit:?}");
    };
    let out = out.expect("wait for the child");
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}:\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        err(&out)
    );
    out
}
