//! Test helpers: a minimal UDP and HTTP tracker client over real loopback sockets, built
//! from the client side of `bitswarm-tracker`. Every wait is bounded.

#![allow(dead_code)] // each test file uses a different subset

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use bitswarm_tracker::http::query::percent_encode;
use bitswarm_tracker::udp::{AnnounceRequest, ConnectionId, Request, Response, TransactionId};
use bitswarm_tracker::{Event, InfoHash, PeerId};

/// A UDP tracker client on its own socket.
pub struct UdpClient {
    pub socket: UdpSocket,
    pub connection_id: ConnectionId,
    v6: bool,
}

impl UdpClient {
    /// Binds a socket of `server`'s family and connects to it (BEP 15 connect).
    pub fn connect(server: SocketAddr) -> Self {
        let local: SocketAddr = if server.is_ipv6() {
            "[::1]:0"
        } else {
            "127.0.0.1:0"
        }
        .parse()
        .unwrap();
        let socket = UdpSocket::bind(local).unwrap();
        socket.connect(server).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut c = Self {
            socket,
            connection_id: ConnectionId(0),
            v6: server.is_ipv6(),
        };
        let mut p = Vec::new();
        Request::Connect {
            transaction_id: TransactionId(77),
        }
        .emit(&mut p);
        let reply = c.exchange(&p);
        match Response::parse(&reply, c.v6).unwrap() {
            Response::Connect {
                transaction_id: TransactionId(77),
                connection_id,
            } => c.connection_id = connection_id,
            other => panic!("unexpected connect answer {other:?}"),
        }
        c
    }

    /// Sends `packet` and returns the answer (panics after 2 s without one).
    pub fn exchange(&self, packet: &[u8]) -> Vec<u8> {
        self.socket.send(packet).unwrap();
        let mut buf = vec![0u8; 4096];
        let n = self.socket.recv(&mut buf).expect("an answer within 2 s");
        buf.truncate(n);
        buf
    }

    /// Announces `port` in `hash`'s swarm; returns the raw answer.
    pub fn announce(&self, hash: InfoHash, port: u16, left: u64, event: Event) -> Vec<u8> {
        let a = AnnounceRequest {
            connection_id: self.connection_id,
            transaction_id: TransactionId(u32::from(port)),
            info_hash: hash,
            peer_id: PeerId([port as u8; 20]),
            downloaded: 0,
            left,
            uploaded: 0,
            event,
            ip: None,
            key: 1,
            num_want: -1,
            port,
        };
        let mut p = Vec::new();
        Request::Announce(a).emit(&mut p);
        self.exchange(&p)
    }

    /// Whether answers carry IPv6 peers.
    pub fn v6(&self) -> bool {
        self.v6
    }
}

/// One HTTP GET with `Connection: close`; returns (status, body).
pub fn http_get(server: SocketAddr, target: &str) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(server).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let status = std::str::from_utf8(&raw[9..12]).unwrap().parse().unwrap();
    (status, raw[end + 4..].to_vec())
}

/// The query string of an HTTP announce.
pub fn announce_query(hash: InfoHash, port: u16, left: u64, event: &str) -> String {
    let mut q = String::from("/announce?info_hash=");
    percent_encode(&mut q, hash.as_bytes());
    q.push_str("&peer_id=");
    percent_encode(&mut q, &[port as u8; 20]);
    let _ = write!(
        q,
        "&port={port}&uploaded=0&downloaded=0&left={left}&compact=1&event={event}"
    );
    q
}

/// The query string of an HTTP scrape.
pub fn scrape_query(hashes: &[InfoHash]) -> String {
    let mut q = String::from("/scrape?");
    for h in hashes {
        q.push_str("info_hash=");
        percent_encode(&mut q, h.as_bytes());
        q.push('&');
    }
    q
}
