//! `bitswarm tracker` as a process: it reports its bound ports on stdout, answers UDP (BEP 15)
//! and HTTP, reloads its allow-list on SIGHUP and stops cleanly on SIGTERM. Everything on
//! 127.0.0.1 with port 0; every wait bounded.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ALLOWED: [u8; 20] = [0x11; 20];
const OTHER: [u8; 20] = [0x22; 20];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

struct Tracker {
    child: Child,
    udp: SocketAddr,
    metrics: SocketAddr,
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(allow_list: &std::path::Path) -> Tracker {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bitswarm"))
        .args([
            "tracker",
            "--udp",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
        ])
        .arg("--allow-list")
        .arg(allow_list)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("bitswarm runs");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let (mut udp, mut metrics) = (None, None);
    for _ in 0..3 {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let mut words = line.split_whitespace();
        let (Some("listening"), Some(proto), Some(addr)) =
            (words.next(), words.next(), words.next())
        else {
            panic!("unexpected line {line:?}")
        };
        let addr: SocketAddr = addr.parse().unwrap();
        assert_ne!(addr.port(), 0);
        match proto {
            "udp" => udp = Some(addr),
            "metrics" => metrics = Some(addr),
            _ => {}
        }
    }
    child.stdout = Some(stdout.into_inner());
    Tracker {
        child,
        udp: udp.unwrap(),
        metrics: metrics.unwrap(),
    }
}

/// BEP 15 connect then announce; returns the answer's action (1 announce, 3 error).
fn announce(server: SocketAddr, info_hash: [u8; 20]) -> u32 {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.connect(server).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut connect = 0x0417_2710_1980u64.to_be_bytes().to_vec();
    connect.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 9]);
    s.send(&connect).unwrap();
    let mut buf = [0u8; 1500];
    let n = s.recv(&mut buf).unwrap();
    assert_eq!((n, &buf[..8]), (16, &[0, 0, 0, 0, 0, 0, 0, 9][..]));
    let mut a = buf[8..16].to_vec(); // connection id
    a.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 10]);
    a.extend_from_slice(&info_hash);
    a.extend_from_slice(b"-BS0001-123456789012");
    a.extend_from_slice(&[0; 24]); // downloaded, left (0: seeder), uploaded
    a.extend_from_slice(&[
        0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x1a, 0xe1,
    ]);
    assert_eq!(a.len(), 98);
    s.send(&a).unwrap();
    let n = s.recv(&mut buf).unwrap();
    assert!(n >= 8);
    u32::from_be_bytes(buf[..4].try_into().unwrap())
}

fn metrics(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn tracker_serves_reloads_on_sighup_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("allow.txt");
    std::fs::write(&list, format!("{}\n", hex(&ALLOWED))).unwrap();
    let mut t = start(&list);
    assert_eq!(announce(t.udp, ALLOWED), 1);
    assert_eq!(announce(t.udp, OTHER), 3, "not on the allow-list");

    std::fs::write(&list, format!("{}\n{}\n", hex(&ALLOWED), hex(&OTHER))).unwrap();
    signal(&t.child, "HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while announce(t.udp, OTHER) != 1 {
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not reload the allow-list"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = metrics(t.metrics);
    assert!(
        text.contains("bitswarm_tracker_access_reloads_total{result=\"ok\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("bitswarm_tracker_access_list_entries 2"),
        "{text}"
    );

    signal(&t.child, "TERM");
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = t.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit within 5 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    let mut rest = String::new();
    t.child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut rest)
        .unwrap();
    assert_eq!(rest.trim(), "stopped");
}
