//! The announce state machine under virtual time: trackers are answered (or not) by the test
//! with the crate's own server-side encoders, and every run is bounded in steps, so a livelock
//! fails instead of hanging.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::client::{
    AnnounceProgress, Announcer, ClientConfig, ClientEvent, Fault, Payload, Timing, Transmit,
};
use crate::compact::CompactV4;
use crate::udp::{
    emit_announce_response_header, emit_connect_response, emit_error_response, ConnectionId,
    Request, TransactionId,
};
use crate::{Event, InfoHash, PeerId, TrackerError};

/// Steps one `next` call may take before the test calls it a livelock.
const STEPS_MAX: usize = 10_000;

struct Sim {
    a: Announcer,
    start: Instant,
    now: Instant,
    progress: AnnounceProgress,
    events: Vec<ClientEvent>,
}

impl Sim {
    fn new(tiers: &[&[&str]], timing: Timing, seed: u64) -> Self {
        let tiers: Vec<Vec<String>> = tiers
            .iter()
            .map(|t| t.iter().map(|s| (*s).to_owned()).collect())
            .collect();
        let config = ClientConfig {
            info_hash: InfoHash::from_bytes([0x11; 20]),
            peer_id: PeerId(*b"-BS0001-abcdefghijkl"),
            port: 6881,
            numwant: Some(50),
            timing,
        };
        let start = Instant::now();
        let mut rng = SmallRng::seed_from_u64(seed);
        Self {
            a: Announcer::new(config, &tiers, start, &mut rng),
            start,
            now: start,
            progress: AnnounceProgress {
                uploaded: 0,
                downloaded: 0,
                left: 1000,
            },
            events: Vec::new(),
        }
    }

    /// Runs virtual time forward to the next transmit, at most `limit` ahead; `None` if
    /// nothing is sent by then.
    fn next(&mut self, limit: Duration) -> Option<Transmit> {
        let end = self.now + limit;
        for _ in 0..STEPS_MAX {
            let t = self.a.poll_transmit(self.now, self.progress);
            self.drain();
            if t.is_some() {
                return t;
            }
            let at = self.a.poll_timeout()?;
            if at > end {
                return None;
            }
            self.now = self.now.max(at);
            self.a.handle_timeout(self.now);
        }
        panic!("livelock: {STEPS_MAX} steps without a transmit");
    }

    fn next_now(&mut self) -> Transmit {
        self.next(Duration::from_secs(100_000)).expect("a transmit")
    }

    fn drain(&mut self) {
        while let Some(e) = self.a.poll_event() {
            self.events.push(e);
        }
    }

    fn at_s(&self) -> u64 {
        (self.now - self.start).as_secs()
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.a.handle_timeout(self.now);
    }

    fn url(&self, t: &Transmit) -> String {
        self.a.url(t.tracker).unwrap().to_owned()
    }

    fn http_answer(&mut self, t: &Transmit, status: u16, body: &[u8]) {
        self.a.handle_http(self.now, t.request, status, body);
        self.drain();
    }

    /// Answers a UDP transmit as a tracker would: a connection id for a connect, `interval_s`
    /// and `peers` for an announce.
    fn udp_answer(&mut self, t: &Transmit, cid: u64, interval_s: u32, peers: &[SocketAddr]) {
        let packet = udp_packet(t);
        let mut out = Vec::new();
        match Request::parse(packet).unwrap() {
            Request::Connect { transaction_id } => {
                emit_connect_response(&mut out, transaction_id, ConnectionId(cid));
            }
            Request::Announce(a) => {
                emit_announce_response_header(&mut out, a.transaction_id, interval_s, 2, 1);
                for p in peers {
                    let SocketAddr::V4(v4) = p else {
                        panic!("v4 only")
                    };
                    out.extend_from_slice(&CompactV4::new(*v4.ip(), v4.port()).0);
                }
            }
            Request::Scrape(_) => panic!("the announcer does not scrape"),
        }
        self.udp_raw(&out);
    }

    fn udp_raw(&mut self, packet: &[u8]) {
        let from: SocketAddr = "127.0.0.1:1".parse().unwrap();
        self.a.handle_udp(self.now, from, packet);
        self.drain();
    }
}

fn udp_packet(t: &Transmit) -> &[u8] {
    match &t.payload {
        Payload::Udp { packet, .. } => packet,
        Payload::Http(u) => panic!("expected UDP, got {u:?}"),
    }
}

fn http_target(t: &Transmit) -> String {
    match &t.payload {
        Payload::Http(u) => u.path_and_query().to_owned(),
        Payload::Udp { .. } => panic!("expected HTTP"),
    }
}

/// `(is_connect, transaction id, connection id)` of a UDP request.
fn udp_kind(t: &Transmit) -> (bool, u32, u64) {
    match Request::parse(udp_packet(t)).unwrap() {
        Request::Connect { transaction_id } => (true, transaction_id.0, 0),
        Request::Announce(a) => (false, a.transaction_id.0, a.connection_id.0),
        Request::Scrape(_) => panic!("scrape"),
    }
}

const OK_BODY: &[u8] = b"d8:intervali1800e5:peers6:\x7f\x00\x00\x01\x1a\xe1e";

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn tiers_fall_back_in_order_and_return_to_the_first_tier() {
    let tiers: &[&[&str]] = &[&["http://a1/ann", "http://a2/ann"], &["http://b1/ann"]];
    let mut sim = Sim::new(tiers, Timing::default(), 7);
    let t1 = sim.next_now();
    sim.a.handle_unreachable(sim.now, t1.request, "refused");
    let t2 = sim.next_now();
    sim.a.handle_unreachable(sim.now, t2.request, "refused");
    let t3 = sim.next_now();
    let mut first_tier = [sim.url(&t1), sim.url(&t2)];
    first_tier.sort();
    assert_eq!(first_tier, ["http://a1/ann", "http://a2/ann"]);
    assert_eq!(sim.url(&t3), "http://b1/ann");
    assert_eq!(sim.at_s(), 0, "fallback is immediate");
    assert!([&t1, &t2, &t3].iter().all(|t| t.event == Event::Started));
    sim.http_answer(&t3, 200, OK_BODY);
    let peers: SocketAddr = "127.0.0.1:6881".parse().unwrap();
    assert!(sim.events.contains(&ClientEvent::Peers {
        tracker: t3.tracker,
        peers: vec![peers]
    }));

    // The next regular announce starts from the first tier again (BEP 12).
    let t4 = sim.next_now();
    assert_eq!(sim.at_s(), 1800);
    assert_eq!(sim.url(&t4), sim.url(&t1));
    assert_eq!(t4.event, Event::Started, "a1 never acknowledged started");
    let status = sim.a.status();
    assert_eq!(status.len(), 3);
    assert_eq!(status[2].last_announce, Some(sim.start));
    assert_eq!(status[0].last_error.as_deref(), Some("refused"));
}

#[test]
fn a_tracker_that_answers_moves_to_the_front_of_its_tier() {
    let tiers: &[&[&str]] = &[&["http://a/x", "http://b/x", "http://c/x"]];
    let mut sim = Sim::new(tiers, Timing::default(), 3);
    let t1 = sim.next_now();
    sim.a.handle_unreachable(sim.now, t1.request, "refused");
    let t2 = sim.next_now();
    sim.http_answer(&t2, 200, OK_BODY);
    let order: Vec<String> = sim.a.status().into_iter().map(|s| s.url).collect();
    assert_eq!(order[0], sim.url(&t2), "promoted");
    assert_eq!(order[1], sim.url(&t1));
    let t3 = sim.next_now();
    assert_eq!(sim.url(&t3), sim.url(&t2));
    assert_eq!(t3.event, Event::None, "b acknowledged started already");
    assert!(!http_target(&t3).contains("event="));
}

#[test]
fn tiers_are_shuffled() {
    let tiers: &[&[&str]] = &[&["http://a/x", "http://b/x", "http://c/x"]];
    let mut firsts = std::collections::BTreeSet::new();
    for seed in 0..64 {
        let mut sim = Sim::new(tiers, Timing::default(), seed);
        let t = sim.next_now();
        firsts.insert(sim.url(&t));
    }
    assert_eq!(firsts.len(), 3, "every tracker comes first for some seed");
}

#[test]
fn udp_retransmits_at_15_times_2_to_the_n() {
    let timing = Timing {
        udp_retransmits_max: 8,
        ..Timing::default()
    };
    let mut sim = Sim::new(&[&["udp://t:1/announce"]], timing, 1);
    let mut sends = Vec::new();
    let mut tids = Vec::new();
    while sends.len() < 20 {
        let Some(t) = sim.next(secs(10_000)) else {
            break;
        };
        if !sim.events.is_empty() {
            break;
        }
        let (connect, tid, _) = udp_kind(&t);
        assert!(connect);
        sends.push(sim.at_s());
        tids.push(tid);
    }
    assert_eq!(sends, [0, 15, 45, 105, 225, 465, 945, 1905, 3825]);
    assert!(
        tids.iter().all(|&t| t == tids[0]),
        "a retransmit reuses its transaction id"
    );
    assert_eq!(sim.events.len(), 1);
    assert!(matches!(
        sim.events[0],
        ClientEvent::Error {
            fault: Fault::Timeout,
            ..
        }
    ));
    // 3825 + 15·2^8 = 7665 gave up; the one tracker is retried after the 60 s backoff.
    assert_eq!(sim.at_s(), 7725);
}

#[test]
fn default_and_short_udp_schedules() {
    let mut sim = Sim::new(&[&["udp://t:1"]], Timing::default(), 1);
    let mut sends = Vec::new();
    while sim.events.is_empty() && sends.len() < 10 {
        sim.next_now();
        sends.push(sim.at_s());
    }
    assert_eq!(
        sends,
        [0, 15, 45, 165],
        "given up at 105, retried 60 s later"
    );

    let short = Timing {
        udp_timeout_base: Duration::from_millis(100),
        udp_retransmits_max: 1,
        ..Timing::default()
    };
    let mut sim = Sim::new(&[&["udp://t:1"]], short, 1);
    sim.next_now();
    sim.next_now();
    assert_eq!(sim.now - sim.start, Duration::from_millis(100));
    assert!(sim.next(Duration::from_millis(299)).is_none());
    assert!(matches!(
        sim.events[0],
        ClientEvent::Error {
            fault: Fault::Timeout,
            ..
        }
    ));
    assert_eq!(sim.now - sim.start, Duration::from_millis(300));
}

#[test]
fn udp_connection_id_is_reused_for_one_minute() {
    let timing = Timing {
        interval_floor: secs(1),
        ..Timing::default()
    };
    let mut sim = Sim::new(&[&["udp://t:1/announce"]], timing, 2);
    let peer: SocketAddr = "10.1.2.3:4000".parse().unwrap();
    let mut log = Vec::new();
    for _ in 0..12 {
        let t = sim.next_now();
        let (connect, _, cid) = udp_kind(&t);
        log.push((sim.at_s(), connect, cid, t.event));
        sim.udp_answer(
            &t,
            0xc1d + sim.now.duration_since(sim.start).as_secs(),
            20,
            &[peer],
        );
        if sim.at_s() >= 80 {
            break;
        }
    }
    let kinds: Vec<(u64, bool)> = log.iter().map(|l| (l.0, l.1)).collect();
    assert_eq!(
        kinds,
        [
            (0, true),
            (0, false),
            (20, false),
            (40, false),
            (60, true),
            (60, false),
            (80, false)
        ]
    );
    assert_eq!(log[1].2, 0xc1d, "the announce carries the id handed out");
    assert_eq!(log[3].2, 0xc1d, "reused at 40 s");
    assert_eq!(log[5].2, 0xc1d + 60, "renewed at 60 s");
    assert_eq!((log[1].3, log[2].3), (Event::Started, Event::None));
    assert!(sim.events.contains(&ClientEvent::Peers {
        tracker: crate::client::TrackerId(0),
        peers: vec![peer]
    }));
}

#[test]
fn an_expired_connection_id_is_renewed_between_retransmits() {
    let timing = Timing {
        udp_retransmits_max: 3,
        ..Timing::default()
    };
    let mut sim = Sim::new(&[&["udp://t:1"]], timing, 4);
    let t = sim.next_now();
    sim.udp_answer(&t, 77, 0, &[]);
    let mut log = Vec::new();
    for _ in 0..4 {
        let t = sim.next_now();
        log.push((sim.at_s(), udp_kind(&t)));
    }
    let shape: Vec<(u64, bool, u64)> = log.iter().map(|(s, k)| (*s, k.0, k.2)).collect();
    assert_eq!(
        shape,
        [
            (0, false, 77),
            (15, false, 77),
            (45, false, 77),
            (105, true, 0)
        ]
    );
    assert_eq!(
        log[0].1 .1, log[2].1 .1,
        "same transaction id while retransmitting"
    );
}

#[test]
fn stray_udp_answers_are_ignored_and_malformed_ones_fail() {
    let mut sim = Sim::new(&[&["udp://t:1"], &["udp://u:1"]], Timing::default(), 5);
    let t = sim.next_now();
    let (_, tid, _) = udp_kind(&t);
    let mut wrong = Vec::new();
    emit_connect_response(
        &mut wrong,
        TransactionId(tid.wrapping_add(1)),
        ConnectionId(1),
    );
    sim.udp_raw(&wrong);
    sim.udp_raw(&[0, 0, 0]);
    assert!(sim.events.is_empty());
    let again = sim.next_now();
    assert_eq!(
        (sim.at_s(), udp_kind(&again).1),
        (15, tid),
        "still waiting: retransmit"
    );

    let mut short = Vec::new();
    emit_connect_response(&mut short, TransactionId(tid), ConnectionId(1));
    sim.udp_raw(&short[..12]);
    assert_eq!(
        sim.events,
        [ClientEvent::Error {
            tracker: t.tracker,
            fault: Fault::Malformed(TrackerError::PacketTooShort { len: 12, need: 16 })
        }]
    );
    let next = sim.next_now();
    assert_eq!(sim.url(&next), "udp://u:1", "the next tier, at once");
    assert_eq!(sim.at_s(), 15);
}

#[test]
fn udp_error_response_is_a_failure_reason() {
    let mut sim = Sim::new(&[&["udp://t:1"], &["http://h/a"]], Timing::default(), 6);
    let t = sim.next_now();
    let mut e = Vec::new();
    emit_error_response(
        &mut e,
        TransactionId(udp_kind(&t).1),
        b"torrent not registered",
    );
    sim.udp_raw(&e);
    assert_eq!(
        sim.events,
        [ClientEvent::Failure {
            tracker: t.tracker,
            reason: "torrent not registered".into()
        }]
    );
    let next = sim.next_now();
    assert_eq!(sim.url(&next), "http://h/a");
}

#[test]
fn http_failure_warning_and_status() {
    let tiers: &[&[&str]] = &[
        &["http://a/x"],
        &["http://b/x"],
        &["http://c/x"],
        &["http://d/x"],
    ];
    let mut sim = Sim::new(tiers, Timing::default(), 8);
    let t = sim.next_now();
    sim.http_answer(&t, 200, b"d14:failure reason9:not founde");
    let t = sim.next_now();
    sim.http_answer(&t, 404, b"<html>not found</html>");
    let t = sim.next_now();
    sim.http_answer(&t, 403, b"d14:failure reason6:bannede");
    let t = sim.next_now();
    sim.http_answer(
        &t,
        200,
        b"d8:intervali60e5:peers6:\x01\x02\x03\x04\x00\x5015:warning message3:hmme",
    );
    let ids: Vec<_> = sim.a.status().iter().map(|s| s.tracker).collect();
    assert_eq!(
        sim.events,
        [
            ClientEvent::Failure {
                tracker: ids[0],
                reason: "not found".into()
            },
            ClientEvent::Error {
                tracker: ids[1],
                fault: Fault::HttpStatus(404)
            },
            ClientEvent::Failure {
                tracker: ids[2],
                reason: "banned".into()
            },
            ClientEvent::Warning {
                tracker: ids[3],
                message: "hmm".into()
            },
            ClientEvent::Peers {
                tracker: ids[3],
                peers: vec!["1.2.3.4:80".parse().unwrap()]
            },
        ]
    );
    let status = sim.a.status();
    assert_eq!(status[3].warning.as_deref(), Some("hmm"));
    assert_eq!(status[0].last_error.as_deref(), Some("not found"));
    assert_eq!(status[1].failures, 1);
}

#[test]
fn min_interval_and_interval_bounds_are_respected() {
    let mut sim = Sim::new(&[&["http://a/x"]], Timing::default(), 9);
    let t = sim.next_now();
    sim.http_answer(&t, 200, b"d8:intervali1800e12:min intervali900e5:peers0:e");
    sim.advance(secs(10));
    sim.a.reannounce(sim.now);
    sim.next_now();
    assert_eq!(
        sim.at_s(),
        900,
        "a forced re-announce waits for min interval"
    );

    for (body, expect) in [
        (&b"d8:intervali5e5:peers0:e"[..], 60),
        (b"d8:intervali100e12:min intervali300e5:peers0:e", 300),
        (b"d8:intervali999999e5:peers0:e", 7200),
        (b"d5:peers0:e", 1800),
    ] {
        let mut sim = Sim::new(&[&["http://a/x"]], Timing::default(), 9);
        let t = sim.next_now();
        sim.http_answer(&t, 200, body);
        sim.next_now();
        assert_eq!(sim.at_s(), expect, "{}", String::from_utf8_lossy(body));
    }
}

#[test]
fn failing_tracker_backs_off_exponentially() {
    let mut sim = Sim::new(&[&["http://a/x"]], Timing::default(), 10);
    let mut at = Vec::new();
    for _ in 0..8 {
        let t = sim.next_now();
        at.push(sim.at_s());
        sim.a.handle_unreachable(sim.now, t.request, "refused");
    }
    assert_eq!(at, [0, 60, 180, 420, 900, 1860, 3780, 7380]);
}

#[test]
fn http_timeout_fails_over() {
    let mut sim = Sim::new(&[&["http://a/x"], &["http://b/x"]], Timing::default(), 11);
    sim.next_now();
    let t = sim.next_now();
    assert_eq!((sim.at_s(), sim.url(&t).as_str()), (30, "http://b/x"));
    assert!(matches!(
        sim.events[0],
        ClientEvent::Error {
            fault: Fault::Timeout,
            ..
        }
    ));
}

#[test]
fn completed_is_announced_at_once_then_regular_announces() {
    let mut sim = Sim::new(&[&["http://a/x"]], Timing::default(), 12);
    let t = sim.next_now();
    sim.http_answer(&t, 200, OK_BODY);
    sim.advance(secs(100));
    sim.progress.left = 0;
    sim.a.completed(sim.now);
    let t = sim.next_now();
    assert_eq!((sim.at_s(), t.event), (100, Event::Completed));
    assert!(http_target(&t).contains("&left=0&"));
    assert!(http_target(&t).contains("&event=completed"));
    sim.http_answer(&t, 200, OK_BODY);
    let t = sim.next_now();
    assert_eq!((sim.at_s(), t.event), (1900, Event::None));
}

#[test]
fn completed_while_started_is_in_flight() {
    let mut sim = Sim::new(&[&["http://a/x"]], Timing::default(), 13);
    let t = sim.next_now();
    sim.a.completed(sim.now);
    sim.http_answer(&t, 200, OK_BODY);
    let t2 = sim.next_now();
    assert_eq!(
        (sim.at_s(), t2.event),
        (0, Event::Completed),
        "started said left>0"
    );
}

#[test]
fn stop_sends_stopped_to_trackers_that_saw_started() {
    let mut sim = Sim::new(
        &[&["http://a/x"], &["udp://u:1/ann"]],
        Timing::default(),
        14,
    );
    let t = sim.next_now();
    sim.a.handle_unreachable(sim.now, t.request, "refused");
    let t = sim.next_now();
    sim.udp_answer(&t, 5, 0, &[]);
    let t = sim.next_now();
    sim.udp_answer(&t, 5, 1800, &[]);
    sim.advance(secs(600));
    sim.a.stop(sim.now);
    let connect = sim.next_now();
    assert_eq!(
        sim.url(&connect),
        "udp://u:1/ann",
        "not the HTTP tracker that never answered"
    );
    assert!(
        udp_kind(&connect).0,
        "the connection id expired: connect first"
    );
    sim.udp_answer(&connect, 6, 0, &[]);
    let stopped = sim.next_now();
    let Request::Announce(a) = Request::parse(udp_packet(&stopped)).unwrap() else {
        panic!("not an announce");
    };
    assert_eq!(
        (a.event, a.num_want, a.connection_id.0),
        (Event::Stopped, 0, 6)
    );
    assert!(!sim.a.is_stopped());
    sim.udp_answer(&stopped, 6, 1800, &[]);
    assert!(sim.a.is_stopped());
    assert_eq!(sim.a.poll_timeout(), None);
    assert!(sim.next(secs(100_000)).is_none());
}

#[test]
fn stop_is_bounded_and_immediate_when_nothing_was_announced() {
    let mut sim = Sim::new(&[&["http://a/x"]], Timing::default(), 15);
    sim.a.stop(sim.now);
    assert!(sim.a.is_stopped());
    assert!(sim.a.poll_transmit(sim.now, sim.progress).is_none());

    let mut sim = Sim::new(&[&["http://a/x"]], Timing::default(), 15);
    let t = sim.next_now();
    sim.http_answer(&t, 200, OK_BODY);
    sim.a.stop(sim.now);
    let t = sim.next_now();
    assert!(http_target(&t).contains("&event=stopped&numwant=0"));
    assert!(sim.next(secs(100)).is_none());
    assert!(sim.a.is_stopped());
    assert_eq!(sim.at_s(), 5, "given up after stop_timeout");
    sim.http_answer(&t, 200, OK_BODY);
    assert!(sim.a.is_stopped(), "a late answer changes nothing");
}

#[test]
fn unusable_urls_are_reported_and_skipped() {
    let tiers: &[&[&str]] = &[&["wss://t/x", "http://a/x", "http://a/x"], &["magnet:?"]];
    let mut sim = Sim::new(tiers, Timing::default(), 16);
    sim.drain();
    let bad: Vec<_> = sim
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                ClientEvent::Error {
                    fault: Fault::UnsupportedUrl,
                    ..
                }
            )
        })
        .collect();
    assert_eq!(bad.len(), 2);
    assert_eq!(sim.a.status().len(), 3, "the duplicate is dropped");
    let t = sim.next_now();
    assert_eq!(sim.url(&t), "http://a/x");

    let mut none = Sim::new(&[&["wss://t/x"]], Timing::default(), 16);
    assert_eq!(none.a.poll_timeout(), None);
    assert!(none.next(secs(1)).is_none());
}

proptest! {
    /// Arbitrary datagrams — some carrying the live transaction id — never panic the
    /// announcer, and it always stays live: something to send or a deadline to wait for.
    #[test]
    fn announcer_survives_arbitrary_datagrams(
        seed: u64,
        packets in proptest::collection::vec(
            (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..64)), 1..20),
    ) {
        let mut sim = Sim::new(&[&["udp://t:1"], &["udp://u:2"]], Timing::default(), seed);
        for (patch, mut p) in packets {
            let t = sim.next_now();
            if patch && p.len() >= 8 {
                p[4..8].copy_from_slice(&udp_kind(&t).1.to_be_bytes());
            }
            sim.udp_raw(&p);
            prop_assert!(sim.a.poll_timeout().is_some()
                || sim.a.poll_transmit(sim.now, sim.progress).is_some());
        }
    }
}
