//! BEP 27: a private torrent never uses the DHT, while a public one starts a node and says
//! where it listens. `bitswarm seed` on a small torrent, on 127.0.0.1, every wait bounded.

mod common;
mod dht_support;

use std::process::Command;
use std::time::{Duration, Instant};

use dht_support::{bitswarm_bin, dht_run, LineProc};

/// Bound on each wait.
const WAIT: Duration = Duration::from_secs(30);

/// Seeds a one-file torrent (private or not) bootstrapped from a local node; returns the
/// seeder once it listens for peers.
fn seed(dir: &std::path::Path, private: bool, node: &str) -> LineProc {
    let data = dir.join("data");
    common::write_file(&data.join("file.bin"), 100_000, 7);
    let torrent = dir.join(if private {
        "private.torrent"
    } else {
        "public.torrent"
    });
    let mut create = Command::new(bitswarm_bin());
    create
        .args(["create", "--no-date"])
        .arg(data.join("file.bin"));
    if private {
        create.arg("--private");
    }
    common::run_ok(create.arg("-o").arg(&torrent));
    let mut cmd = Command::new(bitswarm_bin());
    cmd.arg("seed")
        .arg(&torrent)
        .arg(&data)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--dht-bootstrap",
            node,
            "--state",
        ])
        .arg(dir.join(if private {
            "private.sqlite"
        } else {
            "public.sqlite"
        }));
    let label = if private {
        "private seeder"
    } else {
        "public seeder"
    };
    let seeder = LineProc::spawn(label, cmd, dir);
    seeder.wait_line("listening on ", Instant::now() + WAIT);
    seeder
}

#[test]
fn a_private_torrent_never_starts_the_dht_and_a_public_one_does() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (node, node_addr) = dht_run("dht node", dir.path(), Instant::now() + WAIT);
    let node_addr = node_addr.to_string();

    let mut public = seed(dir.path(), false, &node_addr);
    public.wait_line("dht listening on 127.0.0.1:", Instant::now() + WAIT);
    assert!(public.terminate(WAIT).success(), "{}", public.log_tail());

    let mut private = seed(dir.path(), true, &node_addr);
    // The DHT line would come right after `listening on`; give it a moment to (not) appear.
    std::thread::sleep(Duration::from_millis(500));
    assert!(private.terminate(WAIT).success(), "{}", private.log_tail());
    let log = private.log_tail();
    assert!(!log.contains("dht listening"), "{log}");
    assert!(private.stderr().contains("DHT is not used"), "{log}");
    drop(node);
}
