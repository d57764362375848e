//! Magnet links found through the DHT alone, against libtorrent 2.0 (issue 6): no tracker, no
//! `--peer`/`connect_peer`, no local discovery — the only way the two sides meet is a
//! `bitswarm dht run` hub on 127.0.0.1 that both bootstrap from.
//!
//! - libtorrent (`support/lt_magnet.py seed --dht-bootstrap HUB`) seeds the multi-file fixture
//!   and announces it into the DHT; `bitswarm download 'magnet:?xt=urn:btih:HASH' -o DIR
//!   --dht-bootstrap HUB` finds it there, fetches the info dictionary (BEP 9 `ut_metadata`),
//!   then the data, byte for byte.
//! - The reverse: `bitswarm seed TORRENT DIR --dht-bootstrap HUB` announces; libtorrent adds
//!   the bare magnet link (`lt_magnet.py fetch --dht-bootstrap HUB`: `parse_magnet_uri`, no
//!   trackers, no `connect_peer`), finds bitswarm through the DHT, fetches the metadata from
//!   it and completes.
//! - The reverse in the other order: libtorrent waits on the magnet before bitswarm seeds;
//!   bitswarm's first DHT round finds it and dials it.
//! - Ignored, a reproducer of a product gap: `bitswarm download MAGNET` opened before
//!   libtorrent seeds (see its doc comment).
//!
//! Before the downloader starts, the first two tests wait until the seeder's announce is
//! visible at the hub (`bitswarm dht get-peers`, read-only): a seeder announced before the
//! magnet is opened, as in real use. Without that wait they would race the seeder's first
//! announce, and a downloader whose first lookup comes back empty looks again only 15 minutes
//! later (bitswarm and libtorrent re-announce on that period).
//!
//! Timings (metadata, whole download) are printed with `--nocapture`, never asserted.

mod common;
mod dht_support;
mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::python_with_libtorrent;
use dht_support::{bitswarm_bin, dht_run, get_peers, LineProc};
use support::{fail, Fixture, Peer, ProcPeer, Summary};

/// Bound on each whole test.
const TEST_TIMEOUT: Duration = Duration::from_secs(180);
/// `bitswarm dht get-peers` runs while waiting for the seeder's announce to reach the hub.
const ANNOUNCE_PROBES: u32 = 30;
/// Each probe's own lookup timeout, in seconds.
const PROBE_TIMEOUT_S: u32 = 5;
/// Pause between probes.
const PROBE_PAUSE: Duration = Duration::from_millis(500);

/// The bare magnet link of the fixture: the info-hash only (no name, tracker or peer).
fn magnet(fx: &Fixture) -> String {
    format!("magnet:?xt=urn:btih:{}", fx.info_hash_hex)
}

/// `lt_magnet.py MODE SOURCE DIR --dht-bootstrap HUB`.
fn lt_magnet(mode: &str, source: &str, dir: &Path, hub: SocketAddr) -> Command {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/lt_magnet.py");
    let mut cmd = Command::new(python_with_libtorrent());
    cmd.arg(script)
        .arg(mode)
        .arg(source)
        .arg(dir)
        .args(["--dht-bootstrap", &hub.to_string()]);
    cmd
}

/// Fails the test with `msg`, the hub's log and every peer's.
fn fail_all(msg: &str, hub: &LineProc, peers: &[&dyn Peer]) -> ! {
    fail(&format!("{msg}\n{}", hub.log_tail()), peers)
}

/// Waits until a DHT lookup of the fixture at the hub returns `who` (any peer when `None`),
/// i.e. that peer's announce has landed; returns the probes' wall time.
fn wait_announced(
    fx: &Fixture,
    who: Option<SocketAddr>,
    hub: SocketAddr,
    deadline: Instant,
) -> Result<Duration, String> {
    let started = Instant::now();
    let state = fx.path("probe.sqlite");
    for _ in 0..ANNOUNCE_PROBES {
        if Instant::now() > deadline {
            break;
        }
        let lookup = get_peers(&fx.info_hash_hex, hub, &state, PROBE_TIMEOUT_S);
        if who.map_or(!lookup.peers.is_empty(), |w| lookup.peers.contains(&w)) {
            return Ok(started.elapsed());
        }
        thread::sleep(PROBE_PAUSE);
    }
    Err(format!(
        "the DHT announce of {} never showed up at the hub {hub} ({ANNOUNCE_PROBES} \
         lookups, {:.1} s)",
        who.map_or_else(|| "any peer".to_owned(), |w| w.to_string()),
        started.elapsed().as_secs_f64()
    ))
}

/// What a process run to its exit printed.
struct Run {
    label: String,
    /// `None`: killed at the deadline.
    status: Option<ExitStatus>,
    stdout: Vec<String>,
    stderr: Vec<String>,
    elapsed: Duration,
}

impl Run {
    fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// The first stdout line starting with `prefix`.
    fn line(&self, prefix: &str) -> Option<&str> {
        self.stdout
            .iter()
            .find(|l| l.starts_with(prefix))
            .map(String::as_str)
    }

    fn describe(&self) -> String {
        let label = &self.label;
        let how = match self.status {
            Some(s) => format!("exited with {s}"),
            None => "was killed at the test's deadline".to_owned(),
        };
        format!(
            "{label} {how} after {:.1} s\n--- {label} stdout ---\n{}\n--- {label} stderr \
             (last 40 lines) ---\n{}",
            self.elapsed.as_secs_f64(),
            self.stdout.join("\n"),
            support::tail(&self.stderr.join("\n"), 40)
        )
    }
}

fn collect(stream: impl std::io::Read + Send + 'static) -> JoinHandle<Vec<String>> {
    thread::spawn(move || {
        BufReader::new(stream)
            .lines()
            .map_while(Result::ok)
            .collect()
    })
}

/// A process whose output is collected until it exits. Killed on drop.
struct Spawned {
    label: String,
    child: Child,
    stdout: Option<JoinHandle<Vec<String>>>,
    stderr: Option<JoinHandle<Vec<String>>>,
    started: Instant,
}

impl Spawned {
    fn start(label: &str, mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {label} ({cmd:?}): {e}"));
        let stdout = child.stdout.take().map(collect);
        let stderr = child.stderr.take().map(collect);
        Self {
            label: label.to_owned(),
            child,
            stdout,
            stderr,
            started: Instant::now(),
        }
    }

    /// Waits for it to exit, killing it at `deadline`; what it printed.
    fn wait(mut self, deadline: Instant) -> Run {
        let status = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            thread::sleep(Duration::from_millis(20));
        };
        let lines =
            |h: Option<JoinHandle<Vec<String>>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
        Run {
            label: self.label.clone(),
            status,
            stdout: lines(self.stdout.take()),
            stderr: lines(self.stderr.take()),
            elapsed: self.started.elapsed(),
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` until it exits or `deadline` passes (then it is killed).
fn run_to_exit(label: &str, cmd: Command, deadline: Instant) -> Run {
    Spawned::start(label, cmd).wait(deadline)
}

/// Checks `run` completed the fixture: exit 0, a `metadata: NAME (N pieces) in ...` line
/// with the fixture's name and piece count, a `complete: NAME` line, and the same bytes in
/// `out`. Returns the metadata line.
fn check_fetched<'a>(
    run: &'a Run,
    fx: &Fixture,
    out: &Path,
    hub: &LineProc,
    peers: &[&dyn Peer],
) -> &'a str {
    let pieces = fx.total.div_ceil(support::fixture::PIECE_LEN);
    let want_meta = format!("metadata: {} ({pieces} pieces) in ", fx.name);
    let want_done = format!("complete: {}", fx.name);
    let problem = if !run.succeeded() {
        Some("did not succeed".to_owned())
    } else if run.line(&want_meta).is_none() {
        Some(format!("printed no `{want_meta}...` line"))
    } else if !run.stdout.contains(&want_done) {
        Some(format!("printed no `{want_done}` line"))
    } else {
        fx.assert_same_content(out).err()
    };
    if let Some(problem) = problem {
        fail_all(
            &format!("{}: {problem}\n{}", run.label, run.describe()),
            hub,
            peers,
        );
    }
    run.line(&want_meta).unwrap_or_default()
}

/// The number after `prefix` up to the next space, in `line`.
fn seconds_after(line: &str, prefix: &str) -> Option<f64> {
    let (_, rest) = line.split_once(prefix)?;
    rest.split_whitespace().next()?.parse().ok()
}

/// A `--state` file in the fixture's temp dir.
fn state(fx: &Fixture, label: &str) -> PathBuf {
    fx.path(&format!("{label}.sqlite"))
}

/// `bitswarm seed TORRENT DIR --dht-bootstrap HUB` (the torrent names no tracker); returns
/// once its DHT node runs.
fn bitswarm_seeder(fx: &Fixture, hub: (&LineProc, SocketAddr), deadline: Instant) -> ProcPeer {
    let mut cmd = Command::new(bitswarm_bin());
    cmd.arg("seed")
        .arg(&fx.torrent)
        .arg(&fx.seed_dir)
        .args(["--listen", "127.0.0.1:0", "--dht-bootstrap"])
        .arg(hub.1.to_string())
        .arg("--state")
        .arg(state(fx, "bitswarm-seed"));
    let seeder = ProcPeer::start("bitswarm seeder", cmd, fx, false);
    if let Err(e) = seeder.wait_line("dht listening on ", deadline) {
        fail_all(&e, hub.0, &[&seeder]);
    }
    seeder
}

/// Stops the bitswarm seeder and checks it counts every byte of the fixture uploaded.
fn check_seeder_uploaded(seeder: &mut ProcPeer, fx: &Fixture, hub: &LineProc) {
    let summary = match seeder.finish() {
        Ok(s) => s,
        Err(e) => fail_all(&e, hub, &[&*seeder]),
    };
    if summary.is_none_or(|s| s.uploaded < fx.total) {
        let msg = format!(
            "bitswarm seeder: summary {summary:?}: it served all {} bytes",
            fx.total
        );
        fail_all(&msg, hub, &[&*seeder]);
    }
}

#[test]
fn bitswarm_downloads_a_dht_only_magnet_from_libtorrent() {
    let _serial = support::serial();
    let deadline = Instant::now() + TEST_TIMEOUT;
    let fx = Fixture::new();
    let (hub, hub_addr) = dht_run("dht hub", fx.tmp.path(), deadline);

    let cmd = lt_magnet(
        "seed",
        &fx.torrent.to_string_lossy(),
        &fx.seed_dir,
        hub_addr,
    );
    let seeder = ProcPeer::start("libtorrent seeder", cmd, &fx, false);
    if let Err(e) = seeder.wait_line("ready", deadline) {
        fail_all(&e, &hub, &[&seeder]);
    }
    let seeder_addr = seeder.listen_addr();
    let announced = wait_announced(&fx, Some(seeder_addr), hub_addr, deadline)
        .unwrap_or_else(|e| fail_all(&e, &hub, &[&seeder]));

    let out = fx.path("bitswarm-out");
    let mut cmd = Command::new(bitswarm_bin());
    cmd.arg("download")
        .arg(magnet(&fx))
        .arg("-o")
        .arg(&out)
        .args(["--listen", "127.0.0.1:0", "--dht-bootstrap"])
        .arg(hub_addr.to_string())
        .arg("--state")
        .arg(state(&fx, "bitswarm-download"));
    let label = "bitswarm download MAGNET";
    let run = run_to_exit(label, cmd, deadline);
    let meta = check_fetched(&run, &fx, &out, &hub, &[&seeder]);

    // libtorrent was the only copy: every byte came from it.
    let summary = run.line("summary:").and_then(Summary::parse);
    if summary.is_none_or(|s| s.downloaded < fx.total) {
        let msg = format!(
            "{label}: summary {summary:?} does not account for {} bytes",
            fx.total
        );
        fail_all(&msg, &hub, &[&seeder]);
    }
    if seeder.wait_line("peer 127.0.0.1:", deadline).is_err() {
        fail_all("libtorrent saw no peer connection", &hub, &[&seeder]);
    }
    eprintln!(
        "libtorrent's announce visible at the hub after {:.2} s of probing",
        announced.as_secs_f64()
    );
    eprintln!(
        "bitswarm: metadata after {:.3} s, {} bytes complete after {:.1} s (process wall time)",
        seconds_after(meta, ") in ").unwrap_or(f64::NAN),
        fx.total,
        run.elapsed.as_secs_f64()
    );
}

#[test]
fn libtorrent_downloads_a_dht_only_magnet_from_bitswarm() {
    let _serial = support::serial();
    let deadline = Instant::now() + TEST_TIMEOUT;
    let fx = Fixture::new();
    let (hub, hub_addr) = dht_run("dht hub", fx.tmp.path(), deadline);

    let mut seeder = bitswarm_seeder(&fx, (&hub, hub_addr), deadline);
    let seeder_addr = seeder.listen_addr();
    let announced = wait_announced(&fx, Some(seeder_addr), hub_addr, deadline)
        .unwrap_or_else(|e| fail_all(&e, &hub, &[&seeder]));

    let out = fx.path("libtorrent-out");
    let mut cmd = lt_magnet("fetch", &magnet(&fx), &out, hub_addr);
    let budget = deadline.saturating_duration_since(Instant::now());
    cmd.args(["--timeout", &budget.as_secs().to_string()]);
    let label = "libtorrent fetch MAGNET";
    let run = run_to_exit(label, cmd, deadline);
    let meta = check_fetched(&run, &fx, &out, &hub, &[&seeder]);

    // libtorrent had no address but the hub's: it dialled bitswarm because the DHT said so.
    let dialled = format!("peer {seeder_addr}");
    if run.line(&dialled).is_none() {
        let msg = format!(
            "libtorrent never connected to {seeder_addr}\n{}",
            run.describe()
        );
        fail_all(&msg, &hub, &[&seeder]);
    }
    check_seeder_uploaded(&mut seeder, &fx, &hub);
    eprintln!(
        "bitswarm's announce visible at the hub after {:.2} s of probing",
        announced.as_secs_f64()
    );
    eprintln!(
        "libtorrent: metadata after {:.3} s (since the torrent was added), {} bytes complete \
         after {:.1} s (process wall time)",
        seconds_after(meta, "lt_internal=").unwrap_or(f64::NAN),
        fx.total,
        run.elapsed.as_secs_f64()
    );
}

/// The other order: libtorrent already waits on the bare magnet link (and has announced it)
/// when bitswarm starts seeding. Either bitswarm's first DHT round finds libtorrent and dials
/// it (libtorrent then fetches the metadata over an incoming connection), or libtorrent's
/// next lookup finds bitswarm; whichever comes first is printed.
#[test]
fn libtorrent_waiting_on_a_magnet_is_served_by_a_later_bitswarm_seeder() {
    let _serial = support::serial();
    let deadline = Instant::now() + TEST_TIMEOUT;
    let fx = Fixture::new();
    let (hub, hub_addr) = dht_run("dht hub", fx.tmp.path(), deadline);

    let out = fx.path("libtorrent-out");
    let mut cmd = lt_magnet("fetch", &magnet(&fx), &out, hub_addr);
    cmd.args(["--timeout", &TEST_TIMEOUT.as_secs().to_string()]);
    let fetcher = Spawned::start("libtorrent fetch MAGNET", cmd);
    if let Err(e) = wait_announced(&fx, None, hub_addr, deadline) {
        let run = fetcher.wait(Instant::now());
        fail_all(&format!("{e}\n{}", run.describe()), &hub, &[]);
    }
    let mut seeder = bitswarm_seeder(&fx, (&hub, hub_addr), deadline);
    let seeder_addr = seeder.listen_addr();
    let run = fetcher.wait(deadline);
    let meta = check_fetched(&run, &fx, &out, &hub, &[&seeder]);
    check_seeder_uploaded(&mut seeder, &fx, &hub);
    let who = if run.line(&format!("peer {seeder_addr}")).is_some() {
        "libtorrent dialled bitswarm"
    } else {
        "bitswarm dialled libtorrent"
    };
    eprintln!(
        "{who}; libtorrent: metadata {:.3} s after it started, complete after {:.1} s",
        seconds_after(meta, ") in ").unwrap_or(f64::NAN),
        run.elapsed.as_secs_f64()
    );
}

/// How long the magnet download of the test below may take once libtorrent seeds (it dials
/// the downloader within a second; metadata and data take about one more).
const LATE_SEEDER_BUDGET: Duration = Duration::from_secs(60);

/// How long the download runs alone before the seeder starts: long enough for its first DHT
/// lookup to end empty-handed, so the test shows it looks again soon.
const FIRST_LOOKUP_WAIT: Duration = Duration::from_secs(3);

/// The other order for bitswarm: `bitswarm download MAGNET` runs before libtorrent seeds, so
/// its first DHT lookup finds nobody. A magnet's lookups repeat after 5 s, doubling to 2 min,
/// while they find no peer (`DhtTorrent::search`), so it finds the later seeder within
/// seconds instead of a 15-minute announce interval.
#[test]
fn bitswarm_magnet_opened_before_libtorrent_seeds() {
    let _serial = support::serial();
    let deadline = Instant::now() + TEST_TIMEOUT;
    let fx = Fixture::new();
    let (hub, hub_addr) = dht_run("dht hub", fx.tmp.path(), deadline);

    let out = fx.path("bitswarm-out");
    let mut cmd = Command::new(bitswarm_bin());
    cmd.arg("download")
        .arg(magnet(&fx))
        .arg("-o")
        .arg(&out)
        .args(["--listen", "127.0.0.1:0", "--dht-bootstrap"])
        .arg(hub_addr.to_string())
        .arg("--state")
        .arg(state(&fx, "bitswarm-download"));
    let download = Spawned::start("bitswarm download MAGNET", cmd);
    // The download's first lookup runs now and finds nobody (the fetch looks up without
    // announcing: its listen port closes when the metadata is in). The seeder comes later.
    thread::sleep(FIRST_LOOKUP_WAIT);
    let cmd = lt_magnet(
        "seed",
        &fx.torrent.to_string_lossy(),
        &fx.seed_dir,
        hub_addr,
    );
    let seeder = ProcPeer::start("libtorrent seeder", cmd, &fx, false);
    if let Err(e) = seeder.wait_line("ready", deadline) {
        fail_all(&e, &hub, &[&seeder]);
    }
    let run = download.wait(deadline.min(Instant::now() + LATE_SEEDER_BUDGET));
    let meta = check_fetched(&run, &fx, &out, &hub, &[&seeder]);
    eprintln!(
        "bitswarm: metadata after {:.3} s, complete after {:.1} s",
        seconds_after(meta, ") in ").unwrap_or(f64::NAN),
        run.elapsed.as_secs_f64()
    );
}
