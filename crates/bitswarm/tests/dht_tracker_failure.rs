//! A tracker that dies must not stop a swarm that also has the DHT: one bitswarm seeder and
//! three leechers start with a tracker (`bitswarm tracker`) and the DHT (all bootstrapped from
//! one `bitswarm dht run` node on 127.0.0.1); the tracker is killed once data is flowing; a
//! fourth leecher joins afterwards with the same .torrent and no `--peer`, so the DHT is its
//! only source of peers. All four complete with data identical to the seed's.

mod common;
mod dht_support;
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use dht_support::{bitswarm_bin, dht_run, LineProc};
use support::{check, fail, Fixture, Peer, ProcPeer};

/// Bound on the whole test.
const TEST_TIMEOUT: Duration = Duration::from_secs(240);
/// Leechers' download limit: slow enough that the transfer is under way when the tracker dies.
const DOWNLOAD_LIMIT: &str = "6M";

/// `bitswarm tracker` on 127.0.0.1 (HTTP only); returns it with its announce URL.
fn tracker(dir: &Path, deadline: Instant) -> (LineProc, String) {
    let mut cmd = Command::new(bitswarm_bin());
    cmd.args(["tracker", "--http", "127.0.0.1:0"]);
    let t = LineProc::spawn("tracker", cmd, dir);
    let addr = t.wait_addr("listening http ", deadline);
    (t, format!("http://{addr}/announce"))
}

/// Makes a torrent of the fixture's payload that names `tracker`.
fn torrent_with_tracker(fx: &Fixture, tracker: &str) -> std::path::PathBuf {
    let path = fx.path("tracked.torrent");
    common::run_ok(
        Command::new(bitswarm_bin())
            .args(["create", "--no-date", "--piece-size", "256K", "-t", tracker])
            .arg(fx.seed_dir.join(&fx.name))
            .arg("-o")
            .arg(&path),
    );
    path
}

/// `bitswarm seed|download TORRENT ... --listen 127.0.0.1:0 --dht-bootstrap NODE`.
fn swarm_command(sub: &str, torrent: &Path, fx: &Fixture, label: &str, node: &str) -> Command {
    let mut cmd = Command::new(bitswarm_bin());
    cmd.arg(sub)
        .arg(torrent)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--dht-bootstrap",
            node,
            "--state",
        ])
        .arg(fx.path(&format!("{}.sqlite", label.replace(' ', "-"))));
    cmd
}

fn start_leecher(torrent: &Path, fx: &Fixture, n: usize, node: &str) -> ProcPeer {
    let label = format!("leecher {n}");
    let mut cmd = swarm_command("download", torrent, fx, &label, node);
    cmd.arg("-o")
        .arg(fx.path(&format!("out{n}")))
        .args(["--download-limit", DOWNLOAD_LIMIT]);
    ProcPeer::start(&label, cmd, fx, true)
}

/// Whether a leecher's progress lines (stderr) show any payload received.
fn has_progress(fx: &Fixture, n: usize) -> bool {
    let log = std::fs::read_to_string(fx.path(&format!("leecher-{n}.stderr"))).unwrap_or_default();
    log.lines().any(|l| {
        l.strip_prefix(&format!("{}: ", fx.name))
            .and_then(|rest| rest.split('%').next())
            .and_then(|p| p.trim().parse::<f64>().ok())
            .is_some_and(|p| p > 0.0)
    })
}

#[test]
fn the_swarm_completes_on_the_dht_after_the_tracker_dies() {
    let _serial = support::serial();
    let deadline = Instant::now() + TEST_TIMEOUT;
    let fx = Fixture::new();
    let (node, node_addr) = dht_run("dht node", fx.tmp.path(), deadline);
    let node_addr = node_addr.to_string();
    let (mut tracker, url) = tracker(fx.tmp.path(), deadline);
    let torrent = torrent_with_tracker(&fx, &url);

    let seed_cmd = swarm_command("seed", &torrent, &fx, "seeder", &node_addr);
    let mut seed_cmd = seed_cmd;
    seed_cmd.arg(&fx.seed_dir);
    let mut seeder = ProcPeer::start("seeder", seed_cmd, &fx, false);
    check(
        seeder.wait_line("dht listening on ", deadline).map(drop),
        &[&seeder],
    );

    let mut leechers: Vec<ProcPeer> = (1..=3)
        .map(|n| start_leecher(&torrent, &fx, n, &node_addr))
        .collect();
    for l in &leechers {
        check(l.wait_line("dht listening on ", deadline).map(drop), &[l]);
    }
    // Data is flowing: kill the tracker (as a crash would).
    while !(1..=3).any(|n| has_progress(&fx, n)) {
        if Instant::now() > deadline {
            let peers: Vec<&dyn Peer> = leechers.iter().map(|l| l as &dyn Peer).collect();
            fail("no leecher made progress with the tracker up", &peers);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    tracker.kill();
    let killed_at = Instant::now();
    eprintln!("tracker killed; joining a fourth leecher");

    leechers.push(start_leecher(&torrent, &fx, 4, &node_addr));
    for l in &mut leechers {
        let done = l.wait_complete(deadline);
        let all: Vec<&dyn Peer> = std::iter::once(&seeder as &dyn Peer).collect();
        let at = check(done, &all);
        eprintln!(
            "{} complete {:.1} s after the tracker died",
            l.label(),
            at.saturating_duration_since(killed_at).as_secs_f64()
        );
    }
    for (i, l) in leechers.iter_mut().enumerate() {
        let summary = check(l.finish(), &[&seeder]);
        check(
            fx.assert_same_content(&fx.path(&format!("out{}", i + 1))),
            &[&seeder],
        );
        if let Some(s) = summary {
            assert!(s.downloaded >= fx.total, "{}: {s:?}", l.label());
        }
    }
    let fourth = std::fs::read_to_string(fx.path("leecher-4.stderr")).unwrap_or_default();
    assert!(
        fourth.contains("tracker"),
        "the fourth leecher should have reported its dead tracker:\n{fourth}"
    );
    check(seeder.finish().map(drop), &[&seeder]);
    drop(node);
}
