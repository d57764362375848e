//! The server over real loopback sockets (port 0 everywhere): UDP and HTTP announce and
//! scrape, IPv6, several workers, metrics, access-list reload, and graceful shutdown.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bitswarm_tracker::client::http::{parse_announce_response, HttpAnnounce, HttpReply};
use bitswarm_tracker::http::response::parse_scrape;
use bitswarm_tracker::udp::{emit_scrape_request, Response, ScrapeStats, TransactionId};
use bitswarm_tracker::{Event, InfoHash};
use bitswarm_tracker_server::config::AccessModeName;
use bitswarm_tracker_server::{Config, Server};
use common::{announce_query, http_get, scrape_query, UdpClient};

const A: InfoHash = InfoHash::from_bytes([0xaa; 20]);
const B: InfoHash = InfoHash::from_bytes([0xbb; 20]);

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn config() -> Config {
    let mut c = Config::default();
    c.udp.addrs = vec![local(), "[::1]:0".parse().unwrap()];
    c.udp.workers = 2;
    c.http.addrs = vec![local()];
    c.metrics.addr = Some(local());
    c.limits.torrents_max = 1000;
    c.limits.memory_max_bytes = 64 << 20;
    c.limits.shards = 16;
    c
}

#[test]
fn udp_and_http_share_one_swarm() {
    let server = Server::start(&config()).unwrap();
    assert_eq!(server.udp_addrs().len(), 2);
    assert!(server.udp_addrs().iter().all(|a| a.port() != 0));
    let udp = UdpClient::connect(server.udp_addrs()[0]);
    let answer = udp.announce(A, 7001, 0, Event::Started);
    let Response::Announce {
        seeders,
        leechers,
        peers,
        ..
    } = Response::parse(&answer, false).unwrap()
    else {
        panic!("not an announce answer")
    };
    assert_eq!((seeders, leechers, peers.len()), (1, 0, 0));

    let http = server.http_addrs()[0];
    let (status, body) = http_get(http, &announce_query(A, 7002, 100, "started"));
    assert_eq!(status, 200);
    let HttpReply::Announce(HttpAnnounce {
        peers,
        complete,
        incomplete,
        ..
    }) = parse_announce_response(&body).unwrap()
    else {
        panic!("failure: {}", String::from_utf8_lossy(&body))
    };
    assert_eq!((complete, incomplete), (Some(1), Some(1)));
    assert_eq!(peers, vec!["127.0.0.1:7001".parse::<SocketAddr>().unwrap()]);

    // Scrape both ways.
    let (_, body) = http_get(http, &scrape_query(&[A, B]));
    let scraped = parse_scrape(&body).unwrap();
    assert_eq!(
        scraped,
        vec![
            (
                A,
                ScrapeStats {
                    seeders: 1,
                    completed: 0,
                    leechers: 1
                }
            ),
            (B, ScrapeStats::default())
        ]
    );
    let mut p = Vec::new();
    emit_scrape_request(&mut p, udp.connection_id, TransactionId(5), &[A]);
    let udp_scraped: Vec<_> = Response::parse(&udp.exchange(&p), false)
        .unwrap()
        .scrape_stats()
        .collect();
    assert_eq!(
        udp_scraped,
        vec![ScrapeStats {
            seeders: 1,
            completed: 0,
            leechers: 1
        }]
    );

    // IPv6 peers are a swarm of their own family.
    let v6 = UdpClient::connect(server.udp_addrs()[1]);
    let answer = v6.announce(A, 7003, 100, Event::Started);
    let Response::Announce {
        seeders,
        leechers,
        peers,
        ..
    } = Response::parse(&answer, v6.v6()).unwrap()
    else {
        panic!("not an announce answer")
    };
    assert_eq!((seeders, leechers, peers.len()), (1, 2, 0));

    let (status, _) = http_get(http, "/nothing-here");
    assert_eq!(status, 404);
    server.shutdown();
}

#[test]
fn bad_requests_get_errors_and_are_counted() {
    let server = Server::start(&config()).unwrap();
    let http = server.http_addrs()[0];
    let (status, body) = http_get(http, "/announce?info_hash=%zz");
    assert_eq!(status, 200, "BEP 3 errors travel as a failure reason");
    assert!(matches!(
        parse_announce_response(&body),
        Ok(HttpReply::Failure(_))
    ));
    let udp = UdpClient::connect(server.udp_addrs()[0]);
    let mut stale = UdpClient::connect(server.udp_addrs()[0]);
    stale.connection_id.0 ^= 1;
    let answer = stale.announce(A, 7001, 0, Event::None);
    assert!(matches!(
        Response::parse(&answer, false),
        Ok(Response::Error { .. })
    ));
    let _ = udp.announce(A, 7001, 0, Event::None);
    let (status, metrics) = http_get(server.metrics_addr().unwrap(), "/metrics");
    assert_eq!(status, 200);
    let text = String::from_utf8(metrics).unwrap();
    for line in [
        "bitswarm_tracker_requests_total{protocol=\"udp\",kind=\"connect\"} 2",
        "bitswarm_tracker_requests_total{protocol=\"udp\",kind=\"announce\"} 1",
        "bitswarm_tracker_errors_total{protocol=\"udp\",kind=\"connection_id\"} 1",
        "bitswarm_tracker_errors_total{protocol=\"http\",kind=\"malformed\"} 1",
        "bitswarm_tracker_torrents 1",
        "bitswarm_tracker_peers{role=\"seeder\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
    server.shutdown();
}

#[test]
fn access_list_reloads_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("allow.txt");
    std::fs::write(&list, format!("# allowed\n{}\n", A.to_hex())).unwrap();
    let mut c = config();
    c.access.mode = AccessModeName::Allow;
    c.access.file = Some(list.clone());
    c.access.watch_every_s = 1;
    let server = Server::start(&c).unwrap();
    let udp = UdpClient::connect(server.udp_addrs()[0]);
    assert!(matches!(
        Response::parse(&udp.announce(A, 7001, 0, Event::None), false),
        Ok(Response::Announce { .. })
    ));
    let refused = udp.announce(B, 7001, 0, Event::None);
    assert_eq!(
        Response::parse(&refused, false).unwrap(),
        Response::Error {
            transaction_id: TransactionId(7001),
            message: b"info-hash not allowed"
        }
    );
    let (_, body) = http_get(server.http_addrs()[0], &announce_query(B, 7002, 0, ""));
    assert_eq!(
        parse_announce_response(&body).unwrap(),
        HttpReply::Failure("info-hash not allowed".into())
    );

    // An explicit reload (what SIGHUP does).
    std::fs::write(&list, format!("{}\n{}\n", A.to_hex(), B.to_hex())).unwrap();
    assert_eq!(server.reload_access().unwrap(), 2);
    assert!(matches!(
        Response::parse(&udp.announce(B, 7001, 0, Event::None), false),
        Ok(Response::Announce { .. })
    ));

    // A broken file keeps the old list in force.
    std::fs::write(&list, "not a hash\n").unwrap();
    assert!(server.reload_access().is_err());
    assert!(matches!(
        Response::parse(&udp.announce(B, 7001, 0, Event::None), false),
        Ok(Response::Announce { .. })
    ));

    // The file watch picks a change up by itself.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&list, format!("{}\n", A.to_hex())).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = udp.announce(B, 7001, 0, Event::None);
        if matches!(Response::parse(&answer, false), Ok(Response::Error { .. })) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the watched file was not reloaded within 10 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server.shutdown();
}

#[test]
fn shutdown_is_prompt_and_releases_the_ports() {
    let server = Server::start(&config()).unwrap();
    let udp_addr = server.udp_addrs()[0];
    let http = server.http_addrs()[0];
    // An idle keep-alive connection must not hold shutdown up.
    let idle = std::net::TcpStream::connect(http).unwrap();
    let started = Instant::now();
    server.shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        started.elapsed()
    );
    drop(idle);
    assert!(
        std::net::TcpStream::connect(http).is_err(),
        "HTTP still accepting after shutdown"
    );
    // The UDP port is free again: a plain (non-reuseport) bind succeeds.
    std::net::UdpSocket::bind(udp_addr).expect("UDP port released");
}

#[test]
fn bad_config_is_refused() {
    let mut c = config();
    c.udp.batch = 0;
    assert!(Server::start(&c).is_err());
    let mut c = config();
    c.access.mode = AccessModeName::Allow;
    assert!(Server::start(&c).is_err(), "allow mode without a file");
    let parsed = Config::from_toml("[udp]\nadrs = []\n", std::path::Path::new("x.toml"));
    assert!(parsed.is_err(), "unknown keys are refused");
    let parsed = Config::from_toml(
        "[udp]\naddrs = [\"127.0.0.1:0\"]\nworkers = 2\n[access]\nmode = \"deny\"\nfile = \"d.txt\"\n",
        std::path::Path::new("x.toml"),
    )
    .unwrap();
    assert_eq!(
        (parsed.udp.workers, parsed.access.mode),
        (2, AccessModeName::Deny)
    );
}

#[test]
fn http_keep_alive_and_bounds() {
    use std::io::{Read, Write};
    let mut c = config();
    c.http.idle_timeout_s = 1;
    let server = Server::start(&c).unwrap();
    let http = server.http_addrs()[0];

    // Two requests on one kept-alive connection, sent back to back.
    let mut s = std::net::TcpStream::connect(http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let one = format!("GET {} HTTP/1.1\r\nHost: t\r\n\r\n", scrape_query(&[A]));
    let two = format!(
        "GET {} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        scrape_query(&[B])
    );
    s.write_all(format!("{one}{two}").as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");

    // An oversized head is refused with 431 and the connection closed.
    let (status, _) = http_get(http, &format!("/announce?{}", "x".repeat(9000)));
    assert_eq!(status, 431);

    // A client that never finishes its head is cut off after the idle timeout.
    let mut slow = std::net::TcpStream::connect(http).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    slow.write_all(b"GET /announce?info_hash=").unwrap();
    let started = Instant::now();
    let mut byte = [0u8; 1];
    assert_eq!(
        slow.read(&mut byte).unwrap_or(0),
        0,
        "connection closed without an answer"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "closed after {:?}",
        started.elapsed()
    );
    server.shutdown();
}

#[test]
fn example_config_is_the_defaults() {
    let path = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tracker.example.toml"));
    assert_eq!(Config::from_file(path).unwrap(), Config::default());
}
