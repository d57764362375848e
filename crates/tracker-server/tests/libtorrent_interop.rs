//! Interop with an independent client: two libtorrent sessions (python3-libtorrent, run with
//! /usr/bin/python3) announce to this server over HTTP, then over UDP, learn each other from
//! it alone, and complete a transfer; the scrape counts must then say what happened.
//! Fails with a clear message if python3-libtorrent is missing.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bitswarm_tracker::http::response::parse_scrape;
use bitswarm_tracker::udp::ScrapeStats;
use bitswarm_tracker::InfoHash;
use bitswarm_tracker_server::{Config, Server};
use common::{http_get, scrape_query};

const PYTHON: &str = "/usr/bin/python3";
/// The whole swarm run is bounded by this, inside the script and again here.
const SWARM_TIMEOUT_S: u64 = 40;

fn server() -> Server {
    let mut c = Config::default();
    c.udp.addrs = vec!["127.0.0.1:0".parse().unwrap()];
    c.http.addrs = vec!["127.0.0.1:0".parse().unwrap()];
    c.announce.interval_s = 30;
    c.limits.torrents_max = 100;
    c.limits.memory_max_bytes = 16 << 20;
    c.limits.shards = 4;
    Server::start(&c).unwrap()
}

/// Runs the two-session swarm against `url`: once B has completed, `while_seeding` runs
/// with the info-hash, then both sessions stop. Returns the info-hash.
fn swarm(url: &str, while_seeding: impl FnOnce(InfoHash)) -> InfoHash {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/libtorrent_swarm.py");
    let work = tempfile::tempdir().unwrap();
    let mut child = Command::new(PYTHON)
        .arg(script)
        .arg(url)
        .arg(work.path())
        .arg(SWARM_TIMEOUT_S.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {PYTHON}: {e}; install python3 and python3-libtorrent")
        });
    // The script bounds its own run; this deadline bounds it again in case it hangs.
    let deadline = Instant::now() + Duration::from_secs(SWARM_TIMEOUT_S + 20);
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .unwrap_or_default();
    let hash = line
        .find("\"info_hash\": \"")
        .and_then(|i| line.get(i + 14..i + 54))
        .and_then(InfoHash::from_hex);
    let completed = line.contains("\"completed\": true");
    if let (Some(hash), true) = (hash, completed) {
        while_seeding(hash);
    }
    drop(child.stdin.take()); // end of file: the script stops its sessions
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = status
        .unwrap_or_else(|| panic!("the libtorrent swarm via {url} did not finish in time:\n{err}"));
    assert_ne!(
        status.code(),
        Some(2),
        "python3-libtorrent is missing: apt-get install python3-libtorrent\n{err}"
    );
    assert!(
        completed && status.success(),
        "libtorrent peers did not complete a transfer via {url}:\n{line}\n{err}"
    );
    hash.expect("a hex info-hash in the result line")
}

/// Polls the HTTP scrape until it shows `want` (libtorrent's last announce may trail).
fn expect_scrape(http: SocketAddr, hash: InfoHash, want: ScrapeStats) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, body) = http_get(http, &scrape_query(&[hash]));
        let got = parse_scrape(&body).unwrap();
        if got == vec![(hash, want)] {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "scrape shows {got:?}, expected {want:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn libtorrent_peers_meet_over_http_and_over_udp() {
    let server = server();
    let http = server.http_addrs()[0];
    let udp = server.udp_addrs()[0];
    let two_seeders = ScrapeStats {
        seeders: 2,
        completed: 1,
        leechers: 0,
    };
    let nobody_left = ScrapeStats {
        seeders: 0,
        completed: 1,
        leechers: 0,
    };
    for url in [
        format!("http://{http}/announce"),
        format!("udp://{udp}/announce"),
    ] {
        // While both seed: two seeders and one completed download.
        let hash = swarm(&url, |hash| expect_scrape(http, hash, two_seeders));
        // After both announced `stopped`: nobody left, the download still counted.
        expect_scrape(http, hash, nobody_left);
    }
    let metrics = server.metrics_text();
    for needle in [
        "protocol=\"http\",kind=\"announce\"",
        "protocol=\"udp\",kind=\"announce\"",
    ] {
        let line = metrics.lines().find(|l| l.contains(needle)).unwrap();
        let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(n >= 2, "{line}");
    }
    server.shutdown();
}
