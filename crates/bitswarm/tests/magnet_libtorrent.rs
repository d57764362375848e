//! Magnet links against libtorrent 2.0 (python3-libtorrent, driven by
//! `support/lt_magnet.py`), real processes on 127.0.0.1 with no tracker and no DHT:
//! - libtorrent seeds; `bitswarm download MAGNET --peer` fetches the info dictionary from it
//!   (BEP 9), then the data, byte for byte;
//! - bitswarm seeds; libtorrent adds the bare magnet link (`parse_magnet_uri`, then
//!   `connect_peer`) and completes — so bitswarm serves the metadata.
//!
//! The `harness_*` test runs the second scenario with libtorrent seeding, proving the script.

mod common;
mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::python_with_libtorrent;
use support::{check, fail, serial, start_seeder, Client, Fixture, Opts, Peer, ProcPeer};

/// Bound on each client's run.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

fn magnet(fx: &Fixture) -> String {
    format!("magnet:?xt=urn:btih:{}&dn={}", fx.info_hash_hex, fx.name)
}

fn lt_magnet(mode: &str, source: &str, dir: &Path) -> Command {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/lt_magnet.py");
    let mut cmd = Command::new(python_with_libtorrent());
    cmd.arg(script).arg(mode).arg(source).arg(dir);
    cmd
}

/// libtorrent seeding the fixture with `ut_metadata`; returns once its data is checked.
fn lt_seeder(fx: &Fixture) -> ProcPeer {
    let cmd = lt_magnet("seed", &fx.torrent.to_string_lossy(), &fx.seed_dir);
    let peer = ProcPeer::start("libtorrent magnet seeder", cmd, fx, false);
    check(
        peer.wait_line("ready", Instant::now() + RUN_TIMEOUT)
            .map(drop),
        &[&peer],
    );
    peer
}

/// Runs `cmd` to its exit within [`RUN_TIMEOUT`] (killed otherwise); its stdout lines.
fn run_to_exit(label: &str, mut cmd: Command, others: &[&dyn Peer]) -> Vec<String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {label}: {e}"));
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    let err = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let lines = out.join().unwrap_or_default();
    let errors = err.join().unwrap_or_default();
    if !status.is_some_and(|s| s.success()) {
        fail(
            &format!(
                "{label} ended with {status:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                lines.join("\n"),
                errors.join("\n")
            ),
            others,
        );
    }
    lines
}

/// The `metadata: NAME (N pieces) in X s` line, checked against the fixture.
fn check_metadata_line(lines: &[String], fx: &Fixture) {
    let pieces = fx.total.div_ceil(support::fixture::PIECE_LEN);
    let want = format!("metadata: {} ({pieces} pieces) in ", fx.name);
    assert!(
        lines.iter().any(|l| l.starts_with(&want)),
        "no `{want}...` line in {lines:?}"
    );
}

#[test]
fn bitswarm_downloads_a_magnet_from_libtorrent() {
    let _serial = serial();
    let fx = Fixture::new();
    let seeder = lt_seeder(&fx);
    let out = fx.path("bitswarm-out");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bitswarm"));
    cmd.arg("download")
        .arg(magnet(&fx))
        .arg("--peer")
        .arg(seeder.listen_addr().to_string())
        .args(["--listen", "127.0.0.1:0", "--no-dht", "-o"])
        .arg(&out)
        .arg("--state")
        .arg(fx.path("bitswarm.state"));
    let lines = run_to_exit("bitswarm download MAGNET", cmd, &[&seeder]);
    check_metadata_line(&lines, &fx);
    assert!(
        lines.iter().any(|l| *l == format!("complete: {}", fx.name)),
        "{lines:?}"
    );
    check(fx.assert_same_content(&out), &[&seeder]);
}

/// `client` seeds from the fixture's .torrent; libtorrent has only the magnet link.
fn libtorrent_fetches_magnet_from(client: Client) {
    let _serial = serial();
    let fx = Fixture::new();
    let seeder: Box<dyn Peer> = match client {
        Client::Libtorrent => Box::new(lt_seeder(&fx)),
        _ => start_seeder(client, &fx, &fx.seed_dir, &Opts::default()),
    };
    let addr: SocketAddr = seeder.listen_addr();
    let out = fx.path("libtorrent-out");
    let mut cmd = lt_magnet("fetch", &magnet(&fx), &out);
    cmd.arg("--connect").arg(addr.to_string());
    let lines = run_to_exit("libtorrent fetch MAGNET", cmd, &[seeder.as_ref()]);
    check_metadata_line(&lines, &fx);
    assert!(
        lines.iter().any(|l| *l == format!("complete: {}", fx.name)),
        "{lines:?}"
    );
    check(fx.assert_same_content(&out), &[seeder.as_ref()]);
}

#[test]
fn libtorrent_downloads_a_magnet_from_bitswarm() {
    libtorrent_fetches_magnet_from(Client::Bitswarm);
}

#[test]
fn harness_libtorrent_magnet_from_libtorrent() {
    libtorrent_fetches_magnet_from(Client::Libtorrent);
}
