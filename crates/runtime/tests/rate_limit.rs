//! Rate limits measured on real sockets: a seeder and a leecher session on loopback, with an
//! upload limit on the seeder, a download limit on the leecher, and a limit changed while
//! running. The rate is what the leecher received between t = 2 s and t = 22 s after it was
//! given the seeder (so connection setup and the buckets' initial burst stay outside), and
//! must be within 10% of the limit (issue 7's requirement). The three cases run at once to
//! keep the test near 30 s. A fourth case checks that two leechers
//! on one limited seeder get half each.

// Rates are measured and compared as floating point.
#![allow(clippy::cast_precision_loss)]

mod common;

use std::time::Duration;

use bitswarm_runtime::{RateLimits, Resume, Session, SessionConfig, TorrentHandle, TorrentState};
use common::{config, generate, wait_stats, Generated};
use tokio::time::Instant;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
/// The measurement window, from the moment the leecher is given the seeder's address.
const WINDOW_START: Duration = Duration::from_secs(2);
const WINDOW_END: Duration = Duration::from_secs(22);
/// Allowed relative error of a measured rate.
const TOLERANCE: f64 = 0.10;

/// A seeder session and a leecher session sharing one generated torrent.
struct Pair {
    seeder: Session,
    leecher: Session,
    leech: TorrentHandle,
    _dirs: [tempfile::TempDir; 2],
}

/// Starts a seeder (with `seeder_config`) and a leecher whose torrent has `leech_limits`;
/// does not connect them yet.
async fn pair(torrent: &Generated, seeder_config: SessionConfig, leech_limits: RateLimits) -> Pair {
    let seed_dir = tempfile::tempdir().unwrap();
    let leech_dir = tempfile::tempdir().unwrap();
    torrent.write_to(seed_dir.path());
    let full = bitswarm_runtime::Bitfield::full(torrent.layout.piece_count());
    let seeder = Session::start(seeder_config).unwrap();
    let seed = seeder
        .add_torrent(torrent.add(seed_dir.path(), Resume::Trusted(full), Vec::new()))
        .await
        .unwrap();
    wait_stats(&seed, "the seeder to start", |s| {
        s.state == TorrentState::Seeding
    })
    .await;
    let leecher = Session::start(config()).unwrap();
    let mut add = torrent.add(leech_dir.path(), Resume::Fresh, Vec::new());
    add.rate_limits = leech_limits;
    let leech = leecher.add_torrent(add).await.unwrap();
    assert_eq!(leech.rate_limits(), leech_limits);
    Pair {
        seeder,
        leecher,
        leech,
        _dirs: [seed_dir, leech_dir],
    }
}

/// Bytes per second the leecher received between `from` and `to` after `t0`.
async fn rate_between(leech: &TorrentHandle, t0: Instant, from: Duration, to: Duration) -> f64 {
    tokio::time::sleep_until(t0 + from).await;
    let (start, bytes_start) = (Instant::now(), leech.stats().downloaded);
    tokio::time::sleep_until(t0 + to).await;
    let (end, bytes_end) = (Instant::now(), leech.stats().downloaded);
    let s = leech.stats();
    assert!(
        !s.finished,
        "the download finished inside the window: the torrent is too small for the test"
    );
    (bytes_end - bytes_start) as f64 / (end - start).as_secs_f64()
}

fn assert_near(what: &str, measured: f64, limit: u64) {
    let limit = limit as f64;
    let error = (measured - limit) / limit;
    eprintln!(
        "{what}: measured {:.1} KiB/s, limit {:.1} KiB/s ({:+.1}%)",
        measured / 1024.0,
        limit / 1024.0,
        error * 100.0
    );
    assert!(
        error.abs() <= TOLERANCE,
        "{what}: measured {measured:.0} B/s is not within 10% of the limit {limit:.0} B/s"
    );
}

/// The session-wide upload limit of the seeder caps what the leecher gets.
async fn upload_limit_on_the_seeder() {
    let limit = MIB;
    let torrent = generate(&[("up.bin", 32 << 20)], 256 * 1024, 71);
    let seeder_config = SessionConfig {
        rate_limits: RateLimits {
            upload: Some(limit),
            download: None,
        },
        ..config()
    };
    let p = pair(&torrent, seeder_config, RateLimits::UNLIMITED).await;
    assert_eq!(p.seeder.rate_limits().upload, Some(limit));
    let t0 = Instant::now();
    p.leech.add_peers([p.seeder.listen_addr()]);
    let rate = rate_between(&p.leech, t0, WINDOW_START, WINDOW_END).await;
    assert_near("seeder upload limit", rate, limit);
    p.leecher.shutdown().await;
    p.seeder.shutdown().await;
}

/// The leecher's per-torrent download limit caps what it reads.
async fn download_limit_on_the_leecher() {
    let limit = 768 * KIB;
    let torrent = generate(&[("down.bin", 24 << 20)], 256 * 1024, 72);
    let limits = RateLimits {
        upload: None,
        download: Some(limit),
    };
    let p = pair(&torrent, config(), limits).await;
    let t0 = Instant::now();
    p.leech.add_peers([p.seeder.listen_addr()]);
    let rate = rate_between(&p.leech, t0, WINDOW_START, WINDOW_END).await;
    assert_near("leecher download limit", rate, limit);
    p.leecher.shutdown().await;
    p.seeder.shutdown().await;
}

/// Limits changed while the transfer runs take effect at once: the seeder's session limit is
/// raised at t = 10 s, then the leecher's torrent limit becomes the tighter one at t = 16 s.
async fn limits_changed_while_running() {
    let torrent = generate(&[("change.bin", 32 << 20)], 256 * 1024, 73);
    let first = 512 * KIB;
    let seeder_config = SessionConfig {
        rate_limits: RateLimits {
            upload: Some(first),
            download: None,
        },
        ..config()
    };
    let p = pair(&torrent, seeder_config, RateLimits::UNLIMITED).await;
    let t0 = Instant::now();
    p.leech.add_peers([p.seeder.listen_addr()]);
    let before = rate_between(&p.leech, t0, WINDOW_START, Duration::from_secs(10)).await;
    assert_near("before the change (seeder 512 KiB/s)", before, first);

    let second = 1536 * KIB;
    p.seeder.set_rate_limits(RateLimits {
        upload: Some(second),
        download: None,
    });
    let after = rate_between(
        &p.leech,
        t0,
        Duration::from_secs(11),
        Duration::from_secs(16),
    )
    .await;
    assert_near(
        "after raising the seeder's limit to 1.5 MiB/s",
        after,
        second,
    );

    let third = 640 * KIB;
    p.leech.set_rate_limits(RateLimits {
        upload: None,
        download: Some(third),
    });
    let last = rate_between(&p.leech, t0, Duration::from_secs(17), WINDOW_END).await;
    assert_near(
        "after limiting the leecher's torrent to 640 KiB/s",
        last,
        third,
    );
    p.leecher.shutdown().await;
    p.seeder.shutdown().await;
}

/// Two leechers on one upload-limited seeder get a fair half each (the grants go round-robin).
async fn two_leechers_share_the_upload_limit_evenly() {
    let limit = MIB;
    let torrent = generate(&[("shared.bin", 32 << 20)], 256 * 1024, 74);
    let seeder_config = SessionConfig {
        rate_limits: RateLimits {
            upload: Some(limit),
            download: None,
        },
        ..config()
    };
    let p = pair(&torrent, seeder_config, RateLimits::UNLIMITED).await;
    let other_dir = tempfile::tempdir().unwrap();
    let other_session = Session::start(config()).unwrap();
    let other = other_session
        .add_torrent(torrent.add(other_dir.path(), Resume::Fresh, Vec::new()))
        .await
        .unwrap();
    let seeder_addr = p.seeder.listen_addr();
    let t0 = Instant::now();
    p.leech.add_peers([seeder_addr]);
    other.add_peers([seeder_addr]);
    // What each leecher received from the seeder (they may also trade with each other).
    let from_seeder = |leech: &TorrentHandle| {
        let leech = leech.clone();
        async move {
            leech
                .peer_stats()
                .await
                .unwrap()
                .into_iter()
                .find(|(_, s)| s.addr == seeder_addr)
                .map_or(0, |(_, s)| s.downloaded)
        }
    };
    tokio::time::sleep_until(t0 + WINDOW_START).await;
    let start = Instant::now();
    let before = [from_seeder(&p.leech).await, from_seeder(&other).await];
    tokio::time::sleep_until(t0 + WINDOW_END).await;
    let end = Instant::now();
    let after = [from_seeder(&p.leech).await, from_seeder(&other).await];
    let secs = (end - start).as_secs_f64();
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        assert!(*b > 0, "leecher {i} is connected to the seeder");
        let rate = (a - b) as f64 / secs;
        assert_near(&format!("seeder's upload to leecher {i}"), rate, limit / 2);
    }
    other_session.shutdown().await;
    p.leecher.shutdown().await;
    p.seeder.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measured_rates_stay_within_ten_percent_of_the_limits() {
    tokio::join!(
        upload_limit_on_the_seeder(),
        download_limit_on_the_leecher(),
        limits_changed_while_running(),
        two_leechers_share_the_upload_limit_evenly(),
    );
}
