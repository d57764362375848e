//! The DHT against libtorrent 2.0 (python3-libtorrent through `support/lt_dht.py`), all on
//! 127.0.0.1: a libtorrent node bootstrapped only from a `bitswarm dht run` node, and each side
//! finds the peers the other announced.
//!
//! - libtorrent announces a torrent (it adds it by info-hash, as a magnet without trackers);
//!   `bitswarm dht get-peers` finds libtorrent's address: libtorrent took a token from our node
//!   and announced to it, and our lookup found it.
//! - `bitswarm dht announce`, bootstrapped from the libtorrent node and ours, announces a
//!   port; libtorrent reports the `announce_peer` (it accepted our query and its own token);
//!   libtorrent's `dht_get_peers` finds the port (served by our node: libtorrent does not
//!   answer its own lookups from its own store unless it happens to query itself), and
//!   `bitswarm dht get-peers` bootstrapped from libtorrent only finds it too (served by
//!   libtorrent).
//!
//! Lookup times of both sides are printed (`--nocapture`), never asserted.

mod common;
mod dht_support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::python_with_libtorrent;
use dht_support::{announce, dht_run, get_peers, LineProc, Lookup};

/// Bound on the whole test.
const TEST_TIMEOUT: Duration = Duration::from_secs(150);
/// Tries of a lookup that may run before the other side's announce has landed.
const LOOKUP_TRIES: u32 = 10;
/// Lookups timed per side once the announces are in place.
const TIMED_ROUNDS: usize = 5;

const LT_TORRENT: &str = "1b0a5f1e3c2d4b6a8f9e0d1c2b3a4f5e6d7c8b9a";
const BS_TORRENT: &str = "2c1b6a2f4d3e5c7b9a0f1e2d3c4b5a6f7e8d9c0b";
const BS_PEER_PORT: u16 = 7777;

fn lt_dht(bootstrap: SocketAddr, dir: &Path) -> LineProc {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/lt_dht.py");
    let mut cmd = Command::new(python_with_libtorrent());
    cmd.arg(script)
        .args(["--bootstrap", &bootstrap.to_string()]);
    LineProc::spawn("libtorrent dht", cmd, dir)
}

/// Runs `bitswarm dht get-peers` until it finds `want` (the other side's announce may land
/// after our first try).
fn find_with_bitswarm(
    info_hash: &str,
    want: SocketAddr,
    bootstrap: SocketAddr,
    state: &Path,
    others: &[&LineProc],
) -> Lookup {
    for _ in 0..LOOKUP_TRIES {
        let lookup = get_peers(info_hash, bootstrap, state, 10);
        if lookup.peers.contains(&want) {
            return lookup;
        }
        eprintln!("not yet: {} {:?}", lookup.summary, lookup.peers);
        std::thread::sleep(Duration::from_millis(500));
    }
    let logs: Vec<String> = others.iter().map(|p| p.log_tail()).collect();
    panic!(
        "bitswarm dht get-peers never found {want} for {info_hash}\n{}",
        logs.join("\n")
    );
}

/// libtorrent's `dht_get_peers`: seconds until a reply carries `want`, as `lt_dht.py` timed
/// it (from the call to the alert, without the script's polling).
fn find_with_libtorrent(lt: &mut LineProc, info_hash: &str, want: &str, deadline: Instant) -> f64 {
    let asked = Instant::now();
    lt.send(&format!("get_peers {info_hash}"));
    let prefix = format!("peers {info_hash} ");
    let (_, line) = lt.wait_for_since("libtorrent's get_peers reply", Some(asked), deadline, |l| {
        l.starts_with(&prefix) && l.split(' ').any(|w| w == want)
    });
    line.split(' ')
        .find_map(|w| w.strip_prefix("after="))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no after= in {line:?}"))
}

/// "min / median / max" of `xs` in seconds.
fn spread(mut xs: Vec<f64>) -> String {
    xs.sort_by(f64::total_cmp);
    match (xs.first(), xs.get(xs.len() / 2), xs.last()) {
        (Some(lo), Some(mid), Some(hi)) => {
            format!(
                "min {lo:.3} s / median {mid:.3} s / max {hi:.3} s (n={})",
                xs.len()
            )
        }
        _ => "no data".to_owned(),
    }
}

#[test]
fn bitswarm_and_libtorrent_find_each_others_announces() {
    let deadline = Instant::now() + TEST_TIMEOUT;
    let dir = tempfile::tempdir().expect("temp dir");
    let (node, node_addr) = dht_run("bitswarm dht node", dir.path(), deadline);
    let mut lt = lt_dht(node_addr, dir.path());
    let lt_addr = lt.wait_addr("listening on ", deadline);

    // libtorrent announces; bitswarm finds it.
    lt.send(&format!("add {LT_TORRENT}"));
    let state1 = dir.path().join("query1.sqlite");
    let first = find_with_bitswarm(LT_TORRENT, lt_addr, node_addr, &state1, &[&node, &lt]);
    eprintln!("bitswarm found libtorrent's announce: {}", first.summary);

    // bitswarm announces through libtorrent; libtorrent sees the announce_peer.
    let line = announce(
        BS_TORRENT,
        BS_PEER_PORT,
        &[lt_addr, node_addr],
        &dir.path().join("announcer.sqlite"),
    );
    let sent_to: Option<u32> = line
        .strip_prefix("announce: sent to ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok());
    assert!(
        sent_to.is_some_and(|n| n >= 2),
        "the announce must reach libtorrent and our node: {line}\n{}",
        lt.log_tail()
    );
    let want = format!("announce_received {BS_TORRENT} 127.0.0.1:{BS_PEER_PORT}");
    lt.wait_line(&want, deadline);

    // libtorrent looks the torrent up and finds the announced port; so does bitswarm, asking
    // libtorrent only.
    let wanted_peer = format!("127.0.0.1:{BS_PEER_PORT}");
    let peer: SocketAddr = wanted_peer.parse().expect("address");
    let state2 = dir.path().join("query2.sqlite");
    let mut lt_times = Vec::new();
    let (mut bs_done, mut bs_first, mut via_lt_done, mut via_lt_first) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..TIMED_ROUNDS {
        lt_times.push(find_with_libtorrent(
            &mut lt,
            BS_TORRENT,
            &wanted_peer,
            deadline,
        ));
        let via_lt = find_with_bitswarm(BS_TORRENT, peer, lt_addr, &state2, &[&node, &lt]);
        via_lt_done.push(via_lt.seconds);
        via_lt_first.extend(via_lt.first_seconds);
        let via_hub = find_with_bitswarm(LT_TORRENT, lt_addr, node_addr, &state1, &[&node, &lt]);
        bs_done.push(via_hub.seconds);
        bs_first.extend(via_hub.first_seconds);
    }
    eprintln!(
        "libtorrent get_peers, first reply with bitswarm's peer: {}",
        spread(lt_times)
    );
    eprintln!(
        "bitswarm get-peers of libtorrent's torrent, first peer: {}",
        spread(bs_first)
    );
    eprintln!(
        "bitswarm get-peers of libtorrent's torrent, lookup done: {}",
        spread(bs_done)
    );
    eprintln!(
        "bitswarm get-peers via libtorrent only, first peer: {}",
        spread(via_lt_first)
    );
    eprintln!(
        "bitswarm get-peers via libtorrent only, lookup done: {}",
        spread(via_lt_done)
    );
    lt.send("quit");
    lt.wait_exit(Duration::from_secs(20));
    drop(node);
}
