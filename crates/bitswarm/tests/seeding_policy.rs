//! Seeding policy with real processes on 127.0.0.1: `bitswarm seed --seed-ratio 1.0` exits by
//! itself (status 0, saying why) once it has uploaded the torrent's size to a leecher, which
//! completes; `--seed-time 3s` exits after about three seconds of seeding; the options are
//! refused on `download` without `--seed`. The ratio run also limits the seeder's upload from
//! the command line (`--upload-limit`), so the download cannot be quicker than the limit.
//! And `bitswarm seed --super-seed` (BEP 16) with two libtorrent leechers (which need
//! `python3-libtorrent`): both complete, and the seeder uploads the torrent about once.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{bitswarm, python_with_libtorrent, run_ok, write_file};

/// Bound on every wait for a process.
const TIMEOUT: Duration = Duration::from_secs(60);
const SIZE: usize = 8 << 20;

/// A bitswarm process whose stdout lines arrive on a channel. Killed on drop.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
    seen: Vec<(Instant, String)>,
}

impl Proc {
    fn start(cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (bounded) for a stdout line starting with `prefix`.
    fn wait_line(&mut self, prefix: &str) -> (Instant, String) {
        if let Some(found) = self.seen.iter().find(|(_, l)| l.starts_with(prefix)) {
            return found.clone();
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = self.lines.recv_timeout(left) else {
                panic!("no `{prefix}` line; output so far: {:?}", self.seen);
            };
            self.seen.push(line.clone());
            if line.1.starts_with(prefix) {
                return line;
            }
        }
    }

    /// Waits (bounded) for the process to exit by itself; its status and the time.
    fn wait_exit(&mut self) -> (ExitStatus, Instant) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                let at = Instant::now();
                self.seen.extend(self.lines.try_iter());
                return (status, at);
            }
            assert!(
                Instant::now() < deadline,
                "the process did not exit; output: {:?}",
                self.seen
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The address from the `listening on ADDR` line.
    fn listen_addr(&mut self) -> String {
        let (_, line) = self.wait_line("listening on ");
        let addr = line["listening on ".len()..].to_owned();
        addr.replace("0.0.0.0", "127.0.0.1")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An 8 MiB file and its torrent (256 KiB pieces) in `dir`; returns the torrent's path and
/// the folder to seed from.
fn payload(dir: &Path) -> (PathBuf, PathBuf) {
    let data = dir.join("seed");
    write_file(&data.join("payload.bin"), SIZE, 7);
    let torrent = dir.join("payload.torrent");
    run_ok(
        bitswarm()
            .args(["create", "--no-date", "--piece-size", "256K"])
            .arg(data.join("payload.bin"))
            .arg("-o")
            .arg(&torrent),
    );
    (torrent, data)
}

/// `bitswarm SUBCOMMAND TORRENT` on 127.0.0.1 with its own state file, no DHT.
fn command(sub: &str, torrent: &Path, state: &Path) -> Command {
    let mut cmd = bitswarm();
    cmd.arg(sub)
        .arg(torrent)
        .args(["--listen", "127.0.0.1:0", "--no-dht", "--state"])
        .arg(state);
    cmd
}

/// The `uploaded=` figure of the `summary:` line.
fn summary_uploaded(proc: &mut Proc) -> u64 {
    let (_, line) = proc.wait_line("summary:");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("uploaded="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no uploaded= in {line:?}"))
}

#[test]
fn seeder_with_a_ratio_of_one_exits_after_uploading_the_torrent_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (torrent, data) = payload(tmp.path());
    let mut seeder = Proc::start(
        command("seed", &torrent, &tmp.path().join("seed.state"))
            .arg(&data)
            .args(["--seed-ratio", "1.0", "--upload-limit", "4M"]),
    );
    let addr = seeder.listen_addr();
    let out = tmp.path().join("out");
    let started = Instant::now();
    let mut leecher = Proc::start(
        command("download", &torrent, &tmp.path().join("leech.state"))
            .arg("-o")
            .arg(&out)
            .args(["--peer", &addr]),
    );
    let (status, _) = leecher.wait_exit();
    let took = started.elapsed();
    assert!(status.success(), "leecher failed: {:?}", leecher.seen);
    let got = std::fs::read(out.join("payload.bin")).expect("downloaded file");
    let want = std::fs::read(data.join("payload.bin")).unwrap();
    assert!(got == want, "downloaded bytes differ");
    // 8 MiB at 4 MiB/s (the bucket starts with 100 ms worth): at least about 2 s.
    assert!(
        took >= Duration::from_millis(1_800),
        "the download took {took:?}: --upload-limit 4M was not applied"
    );

    let (status, _) = seeder.wait_exit();
    assert!(status.success(), "seeder failed: {:?}", seeder.seen);
    let (_, why) = seeder.wait_line("stopping: share ratio");
    assert!(why.contains("--seed-ratio 1"), "{why}");
    let uploaded = summary_uploaded(&mut seeder);
    assert!(uploaded >= SIZE as u64, "uploaded {uploaded} < {SIZE}");
}

#[test]
fn seeder_with_a_seed_time_exits_after_that_long() {
    let tmp = tempfile::tempdir().unwrap();
    let (torrent, data) = payload(tmp.path());
    let mut seeder = Proc::start(
        command("seed", &torrent, &tmp.path().join("seed.state"))
            .arg(&data)
            .args(["--seed-time", "3s"]),
    );
    let (seeding, _) = seeder.wait_line("listening on ");
    let (status, exited) = seeder.wait_exit();
    assert!(status.success(), "seeder failed: {:?}", seeder.seen);
    let lasted = exited - seeding;
    assert!(
        lasted >= Duration::from_secs(3) && lasted < Duration::from_secs(8),
        "seeded for {lasted:?}"
    );
    let (_, why) = seeder.wait_line("stopping: seeded for");
    assert!(why.contains("--seed-time 3 s"), "{why}");
}

#[test]
fn seed_policy_on_download_needs_seed() {
    let tmp = tempfile::tempdir().unwrap();
    let (torrent, _) = payload(tmp.path());
    for args in [["--seed-ratio", "1.0"], ["--seed-time", "10m"]] {
        let out = command("download", &torrent, &tmp.path().join("x.state"))
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--seed"), "{err}");
    }
    let out = command("seed", &torrent, &tmp.path().join("x.state"))
        .arg(tmp.path())
        .args(["--seed-ratio", "nan"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("share ratio"));
}

/// A libtorrent leecher (`tests/support/lt_peer.py`) for `torrent` into `dir`, dialing `peers`,
/// staying after it completes.
fn lt_leecher(torrent: &Path, dir: &Path, peers: &[&str]) -> Proc {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/lt_peer.py");
    let mut cmd = Command::new(python_with_libtorrent());
    cmd.arg(script).arg(torrent).arg(dir).arg("--stay");
    for peer in peers {
        cmd.args(["--connect", peer]);
    }
    Proc::start(&mut cmd)
}

#[test]
fn super_seeder_uploads_about_once_to_libtorrent_leechers() {
    let tmp = tempfile::tempdir().unwrap();
    let (torrent, data) = payload(tmp.path());
    let mut seeder = Proc::start(
        command("seed", &torrent, &tmp.path().join("seed.state"))
            .arg(&data)
            .args(["--super-seed", "--upload-limit", "2M"]),
    );
    let addr = seeder.listen_addr();
    // The second leecher also dials the first, so they can trade what the seeder shows them.
    let mut first = lt_leecher(&torrent, &tmp.path().join("lt1"), &[&addr]);
    let first_addr = first.listen_addr();
    let mut second = lt_leecher(&torrent, &tmp.path().join("lt2"), &[&addr, &first_addr]);
    first.wait_line("complete:");
    second.wait_line("complete:");
    let want = std::fs::read(data.join("payload.bin")).unwrap();
    for dir in ["lt1", "lt2"] {
        let got = std::fs::read(tmp.path().join(dir).join("payload.bin")).unwrap();
        assert!(got == want, "{dir}: downloaded bytes differ");
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(seeder.child.id().to_string())
        .status();
    let (status, _) = seeder.wait_exit();
    assert!(status.success(), "seeder failed: {:?}", seeder.seen);
    let uploaded = summary_uploaded(&mut seeder);
    #[allow(clippy::cast_precision_loss)] // a ratio
    let factor = uploaded as f64 / SIZE as f64;
    eprintln!("super-seeder uploaded {factor:.2}x the torrent to two libtorrent leechers");
    assert!(
        factor <= 1.3,
        "the super-seeder uploaded {factor:.2}x the torrent"
    );
}
