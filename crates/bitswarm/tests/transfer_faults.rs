//! End to end under faults a real swarm produces: a peer that serves corrupt data next to an
//! honest libtorrent seeder, and a download killed with SIGKILL half way and started again
//! with the same resume state. Over 127.0.0.1 (the corrupt peer on 127.0.0.2, so that banning
//! its address cannot ban the honest seeder's), every wait bounded.
//!
//! Each scenario takes the client under test as a parameter; the `harness_*` tests run them
//! with libtorrent in bitswarm's place.

mod common;
mod support;

use std::thread;
use std::time::{Duration, Instant};

use support::corrupt_peer::CorruptPeer;
use support::fixture::PIECE_LEN;
use support::{
    check, fail, serial, start_leecher, start_lt_seeder, Client, Fixture, Opts, Peer, TEST_TIMEOUT,
};

/// The pieces the corrupt peer lies about: one in four.
fn bad_piece(piece: u32) -> bool {
    piece % 4 == 1
}

/// The honest seeder's upload rate next to the corrupt peer (which answers at once): slow
/// enough that the client asks the liar for many pieces, and that the whole download takes
/// several seconds, so a ban can be told apart from the disconnect at exit.
const HONEST_RATE: u64 = 16 << 20;
/// How long before completion the corrupt peer must have been disconnected, for that to count
/// as a ban rather than the client closing everything as it exits.
const BAN_MARGIN: Duration = Duration::from_millis(500);

/// The seeder's upload rate in the kill test: 64 MiB take about 8 s.
const SLOW_RATE: u64 = 8 << 20;

/// `client` downloads from a corrupt peer and an honest libtorrent seeder at once (both given
/// with `--peer`, the liar first). It must complete with the right bytes, report wasted bytes,
/// drop the liar well before completing and never dial it again.
fn corrupt_peer_is_dropped(client: Client) {
    let _serial = serial();
    let fx = Fixture::new();
    let deadline = Instant::now() + TEST_TIMEOUT;
    let honest_opts = Opts {
        upload_limit: Some(HONEST_RATE),
        ..Opts::default()
    };
    let honest = start_lt_seeder(&fx, &fx.seed_dir, &honest_opts);
    let liar = CorruptPeer::start(
        "127.0.0.2:0",
        fx.info_hash(),
        PIECE_LEN,
        fx.payload_bytes(),
        bad_piece,
    );
    let out = fx.path("leech");
    let opts = Opts {
        connect: vec![liar.addr(), honest.listen_addr()],
        ..Opts::default()
    };
    let started = Instant::now();
    let mut leecher = start_leecher(client, &fx, &out, &opts);
    let done = check(leecher.wait_complete(deadline), &[&honest, &*leecher]);
    let summary = check(leecher.finish(), &[&honest, &*leecher]);
    let summary = summary.unwrap_or_else(|| fail("the leecher printed no summary", &[&*leecher]));
    check(fx.assert_same_content(&out), &[&honest, &*leecher]);

    let peers: [&dyn Peer; 2] = [&honest, &*leecher];
    if liar.bad_bytes() == 0 {
        fail(
            "the client never asked the corrupt peer for a bad piece: nothing was tested",
            &peers,
        );
    }
    let conns = wait_all_closed(&liar);
    let at = |t: Instant| format!("{:.2} s", t.duration_since(started).as_secs_f64());
    let described: Vec<String> = conns
        .iter()
        .map(|c| {
            let closed = c.closed.map_or_else(|| "never".to_owned(), at);
            format!(
                "from {} opened at {} closed at {closed}, {} good and {} bad blocks served",
                c.from,
                at(c.opened),
                c.good_blocks,
                c.bad_blocks
            )
        })
        .collect();
    let report = format!(
        "summary {summary:?}; corrupt peer connections: [{}]; completed at {}",
        described.join("; "),
        at(done)
    );
    if summary.wasted == 0 {
        fail(&format!("no wasted bytes reported: {report}"), &peers);
    }
    if conns.len() != 1 {
        fail(
            &format!(
                "the corrupt peer was dialled {} times: {report}",
                conns.len()
            ),
            &peers,
        );
    }
    match conns[0].closed {
        Some(closed) if closed + BAN_MARGIN <= done => {}
        _ => fail(
            &format!("the corrupt peer was not dropped before completion: {report}"),
            &peers,
        ),
    }
    eprintln!("{} vs a corrupt peer: {report}", leecher.label());
}

/// The corrupt peer's connection log once every connection has been seen closed (the client
/// has exited, so each closes within moments; bounded).
fn wait_all_closed(liar: &CorruptPeer) -> Vec<support::corrupt_peer::ConnectionLog> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let conns = liar.connections();
        if conns.iter().all(|c| c.closed.is_some()) || Instant::now() > deadline {
            return conns;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// `client` downloads from a rate-limited libtorrent seeder and is killed with SIGKILL once the
/// seeder has sent half the payload; started again with the same output folder and `--state`,
/// it completes with the right bytes and fetches at most 60% of the payload the second time.
fn killed_download_resumes(client: Client) {
    let _serial = serial();
    let fx = Fixture::new();
    let deadline = Instant::now() + TEST_TIMEOUT;
    let seeder = start_lt_seeder(
        &fx,
        &fx.seed_dir,
        &Opts {
            upload_limit: Some(SLOW_RATE),
            ..Opts::default()
        },
    );
    let out = fx.path("leech");
    let opts = Opts {
        connect: vec![seeder.listen_addr()],
        state: Some(fx.path("resume.sqlite")),
        ..Opts::default()
    };
    let started = Instant::now();
    let mut first = start_leecher(client, &fx, &out, &opts);
    loop {
        if seeder
            .stat("uploaded")
            .is_some_and(|sent| sent >= fx.total / 2)
        {
            break;
        }
        if Instant::now() > deadline {
            fail(
                "the seeder never sent half the payload",
                &[&seeder, &*first],
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
    first.kill_hard();
    let killed_after = started.elapsed();
    let sent = seeder.stat("uploaded").unwrap_or(0);
    if first.wait_complete(Instant::now()).is_ok() {
        fail(
            "the first run completed before it was killed",
            &[&seeder, &*first],
        );
    }
    drop(first);

    let restarted = Instant::now();
    let mut second = start_leecher(client, &fx, &out, &opts);
    check(second.wait_complete(deadline), &[&seeder, &*second]);
    let summary = check(second.finish(), &[&seeder, &*second]);
    let summary = summary.unwrap_or_else(|| fail("no summary from the second run", &[&*second]));
    check(fx.assert_same_content(&out), &[&seeder, &*second]);
    let report = format!(
        "killed after {:.1} s with {sent} of {} bytes sent; the second run took {:.1} s: {summary:?}",
        killed_after.as_secs_f64(),
        fx.total,
        restarted.elapsed().as_secs_f64()
    );
    if summary.downloaded > fx.total * 6 / 10 {
        fail(
            &format!("the second run fetched verified pieces again: {report}"),
            &[&seeder],
        );
    }
    eprintln!("{} killed and resumed: {report}", second.label());
}

#[test]
fn bitswarm_drops_corrupt_peer() {
    corrupt_peer_is_dropped(Client::Bitswarm);
}

#[test]
fn bitswarm_resumes_after_kill() {
    killed_download_resumes(Client::Bitswarm);
}

#[test]
fn harness_libtorrent_drops_corrupt_peer() {
    corrupt_peer_is_dropped(Client::Libtorrent);
}

#[test]
fn harness_libtorrent_resumes_after_kill() {
    killed_download_resumes(Client::Libtorrent);
}
