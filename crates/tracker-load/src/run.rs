//! The measuring loop: many connected UDP sockets driven by one thread, each keeping a fixed
//! number of announces in flight, with per-request send times for latency.

use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant};

use bitswarm_tracker::udp::{AnnounceRequest, ConnectionId, Request, Response, TransactionId};
use bitswarm_tracker::{Event, PeerId};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmmsg, sendmmsg, MsgFlags, MultiHeaders, SockaddrStorage};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::Plan;

/// Datagrams per system call.
const BATCH: usize = 64;
/// Receive buffer per datagram.
const DATAGRAM_MAX: usize = 2048;
/// A request unanswered this long counts as lost and is sent again.
const LOST_AFTER: Duration = Duration::from_secs(1);
/// Most latency samples kept (4 bytes each).
const SAMPLES_MAX: usize = 50_000_000;
/// Connect attempts per socket before giving up.
const CONNECT_TRIES: u32 = 5;

/// What a run measured.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Announce responses received during the measured window.
    pub(crate) responses: u64,
    /// Error responses received during the measured window.
    pub(crate) errors: u64,
    /// Requests given up on as lost (whole run).
    pub(crate) lost: u64,
    /// Length of the measured window.
    pub(crate) elapsed: Duration,
    latencies_us: Vec<u32>,
}

impl Report {
    /// Prints the human summary and one `RESULT` line for scripts.
    pub(crate) fn print(&self, plan: &Plan) {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        // Response counts stay far below 2^52, so the conversion is exact.
        #[allow(clippy::cast_precision_loss)]
        let rate = self.responses as f64 / secs;
        let mut lat = self.latencies_us.clone();
        lat.sort_unstable();
        let pct = |per_mille: usize| -> u32 {
            let i = lat.len().saturating_sub(1) * per_mille / 1000;
            lat.get(i).copied().unwrap_or(0)
        };
        println!(
            "target {} sockets {} in_flight {} torrents {} peers/torrent {} measured {:.1} s",
            plan.target,
            plan.sockets,
            plan.sockets * plan.in_flight,
            plan.hashes.len(),
            plan.peers,
            secs
        );
        println!(
            "responses {} ({rate:.0}/s) errors {} lost {}",
            self.responses, self.errors, self.lost
        );
        println!(
            "latency_us p50 {} p90 {} p99 {} p999 {} max {}",
            pct(500),
            pct(900),
            pct(990),
            pct(999),
            lat.last().copied().unwrap_or(0)
        );
        println!(
            "RESULT responses_per_s={rate:.0} p50_us={} p99_us={} errors={} lost={}",
            pct(500),
            pct(990),
            self.errors,
            self.lost
        );
    }
}

/// One socket and its in-flight requests.
struct Sock {
    socket: UdpSocket,
    connection_id: ConnectionId,
    /// Per slot: when its request was sent (None: free) and its generation (the high half of
    /// the transaction id, so a late answer to an earlier request is not mistaken).
    sent_at: Vec<Option<Instant>>,
    generation: Vec<u16>,
}

pub(crate) fn run(plan: &Plan) -> Result<Report, String> {
    let mut socks = (0..plan.sockets)
        .map(|i| connect(plan, i))
        .collect::<Result<Vec<_>, _>>()?;
    let mut rng = SmallRng::seed_from_u64(plan.seed ^ 0x5eed);
    let mut report = Report::default();
    let mut io = Buffers::new();
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let end = measure_from + plan.duration;
    let mut last_sweep = start;
    loop {
        let now = Instant::now();
        if now >= end || report.responses >= plan.requests_max {
            break;
        }
        let measuring = now >= measure_from;
        let mut busy = false;
        for s in &mut socks {
            busy |= receive(s, &mut io, plan, measuring, &mut report) > 0;
            send(s, &mut io, plan, &mut rng);
        }
        if now.duration_since(last_sweep) > Duration::from_millis(100) {
            last_sweep = now;
            for s in &mut socks {
                for slot in &mut s.sent_at {
                    if slot.is_some_and(|t| now.duration_since(t) > LOST_AFTER) {
                        *slot = None;
                        report.lost += 1;
                    }
                }
            }
        }
        if !busy {
            wait_readable(&socks);
        }
    }
    report.elapsed = Instant::now()
        .saturating_duration_since(measure_from)
        .min(plan.duration);
    Ok(report)
}

fn connect(plan: &Plan, index: usize) -> Result<Sock, String> {
    let local: SocketAddr = if plan.target.is_ipv6() {
        "[::1]:0"
    } else {
        "127.0.0.1:0"
    }
    .parse()
    .map_err(|_| "address")?;
    let socket = UdpSocket::bind(local).map_err(|e| format!("socket {index}: bind: {e}"))?;
    socket
        .connect(plan.target)
        .map_err(|e| format!("socket {index}: connect: {e}"))?;
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(|e| e.to_string())?;
    let mut packet = Vec::new();
    let tid = TransactionId(0xc0_0000 + index as u32);
    Request::Connect {
        transaction_id: tid,
    }
    .emit(&mut packet);
    let mut buf = [0u8; 64];
    for _ in 0..CONNECT_TRIES {
        socket
            .send(&packet)
            .map_err(|e| format!("socket {index}: send: {e}"))?;
        let Ok(n) = socket.recv(&mut buf) else {
            continue;
        };
        if let Ok(Response::Connect {
            transaction_id,
            connection_id,
        }) = Response::parse(buf.get(..n).unwrap_or_default(), false)
        {
            if transaction_id == tid {
                socket.set_nonblocking(true).map_err(|e| e.to_string())?;
                return Ok(Sock {
                    socket,
                    connection_id,
                    sent_at: vec![None; plan.in_flight],
                    generation: vec![0; plan.in_flight],
                });
            }
        }
    }
    Err(format!(
        "socket {index}: no connect response from {} after {CONNECT_TRIES} tries",
        plan.target
    ))
}

struct Buffers {
    rx: Vec<u8>,
    rx_headers: MultiHeaders<SockaddrStorage>,
    tx: Vec<Vec<u8>>,
    tx_headers: MultiHeaders<SockaddrStorage>,
    lens: [usize; BATCH],
}

impl Buffers {
    fn new() -> Self {
        Self {
            rx: vec![0; BATCH * DATAGRAM_MAX],
            rx_headers: MultiHeaders::preallocate(BATCH, None),
            tx: (0..BATCH).map(|_| Vec::with_capacity(128)).collect(),
            tx_headers: MultiHeaders::preallocate(BATCH, None),
            lens: [0; BATCH],
        }
    }
}

/// Reads every answer waiting on `s`; returns how many arrived.
fn receive(
    s: &mut Sock,
    io: &mut Buffers,
    plan: &Plan,
    measuring: bool,
    report: &mut Report,
) -> usize {
    let mut total = 0;
    loop {
        let n = match recv_batch(
            s.socket.as_raw_fd(),
            &mut io.rx_headers,
            &mut io.rx,
            &mut io.lens,
        ) {
            Ok(n) if n > 0 => n,
            _ => return total,
        };
        total += n;
        let now = Instant::now();
        for (chunk, &len) in io.rx.chunks(DATAGRAM_MAX).zip(&io.lens).take(n) {
            let Ok(response) =
                Response::parse(chunk.get(..len).unwrap_or_default(), plan.target.is_ipv6())
            else {
                continue;
            };
            let (tid, ok) = match response {
                Response::Announce { transaction_id, .. } => (transaction_id, true),
                Response::Error { transaction_id, .. } => (transaction_id, false),
                _ => continue,
            };
            let slot = (tid.0 & 0xffff) as usize;
            let generation = (tid.0 >> 16) as u16;
            let (Some(sent), Some(&g)) = (s.sent_at.get_mut(slot), s.generation.get(slot)) else {
                continue;
            };
            let Some(at) = sent.take().filter(|_| g == generation) else {
                continue;
            };
            if measuring {
                if ok {
                    report.responses += 1;
                } else {
                    report.errors += 1;
                }
                if ok && report.latencies_us.len() < SAMPLES_MAX {
                    let us = u32::try_from(now.duration_since(at).as_micros()).unwrap_or(u32::MAX);
                    report.latencies_us.push(us);
                }
            }
        }
        if n < BATCH {
            return total;
        }
    }
}

/// Sends a new announce for every free slot of `s`.
fn send(s: &mut Sock, io: &mut Buffers, plan: &Plan, rng: &mut SmallRng) {
    let mut next = 0;
    loop {
        let mut slots = [0usize; BATCH];
        let mut count = 0;
        while count < BATCH && next < s.sent_at.len() {
            if s.sent_at.get(next).is_some_and(Option::is_none) {
                slots[count] = next;
                count += 1;
            }
            next += 1;
        }
        if count == 0 {
            return;
        }
        for (&slot, out) in slots.iter().take(count).zip(io.tx.iter_mut()) {
            let Some(g) = s.generation.get_mut(slot) else {
                continue;
            };
            *g = g.wrapping_add(1);
            let tid = TransactionId(u32::from(*g) << 16 | slot as u32);
            out.clear();
            Request::Announce(announce(plan, rng, s.connection_id, tid)).emit(out);
        }
        if send_batch(
            s.socket.as_raw_fd(),
            &mut io.tx_headers,
            io.tx.get(..count).unwrap_or_default(),
        )
        .is_err()
        {
            return;
        }
        let now = Instant::now();
        for &slot in slots.iter().take(count) {
            if let Some(t) = s.sent_at.get_mut(slot) {
                *t = Some(now);
            }
        }
    }
}

fn announce(
    plan: &Plan,
    rng: &mut SmallRng,
    cid: ConnectionId,
    tid: TransactionId,
) -> AnnounceRequest {
    let hash = plan.hashes[rng.gen_range(0..plan.hashes.len())];
    let port = 10_000 + rng.gen_range(0..plan.peers);
    let mut peer_id = [0u8; 20];
    peer_id[..8].copy_from_slice(b"-BL0001-");
    peer_id[8..10].copy_from_slice(&port.to_be_bytes());
    // Whether a peer seeds is a property of the peer, as in a real swarm, not of one request.
    let seeder = (port % 100) < u16::from(plan.seeder_percent);
    AnnounceRequest {
        connection_id: cid,
        transaction_id: tid,
        info_hash: hash,
        peer_id: PeerId(peer_id),
        downloaded: 0,
        left: if seeder { 0 } else { 1 << 20 },
        uploaded: 0,
        event: Event::None,
        ip: None,
        key: rng.gen(),
        num_want: plan.numwant,
        port,
    }
}

fn recv_batch(
    fd: RawFd,
    headers: &mut MultiHeaders<SockaddrStorage>,
    rx: &mut [u8],
    lens: &mut [usize; BATCH],
) -> nix::Result<usize> {
    let mut chunks = rx.chunks_mut(DATAGRAM_MAX);
    let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] =
        std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or_default())]);
    let results = recvmmsg(fd, headers, iovs.iter_mut(), MsgFlags::MSG_DONTWAIT, None)?;
    let mut n = 0;
    for (msg, len) in results.zip(lens.iter_mut()) {
        *len = msg.bytes;
        n += 1;
    }
    Ok(n)
}

/// Sends `packets` on a connected socket. The results are not iterated (nix would read
/// addresses it never wrote); a short send just leaves slots to time out as lost.
fn send_batch(
    fd: RawFd,
    headers: &mut MultiHeaders<SockaddrStorage>,
    packets: &[Vec<u8>],
) -> nix::Result<()> {
    let iovs: [[IoSlice<'_>; 1]; BATCH] =
        std::array::from_fn(|i| [IoSlice::new(packets.get(i).map_or(&[][..], Vec::as_slice))]);
    let dests: [Option<SockaddrStorage>; BATCH] = [None; BATCH];
    let count = packets.len().min(BATCH);
    loop {
        match sendmmsg(
            fd,
            headers,
            iovs.get(..count).unwrap_or_default().iter(),
            dests.get(..count).unwrap_or_default(),
            [],
            MsgFlags::MSG_DONTWAIT,
        ) {
            Err(Errno::EINTR) => {}
            other => return other.map(drop),
        }
    }
}

/// Blocks up to 1 ms until some socket is readable.
fn wait_readable(socks: &[Sock]) {
    let mut fds: Vec<PollFd<'_>> = socks
        .iter()
        .map(|s| PollFd::new(s.socket.as_fd(), PollFlags::POLLIN))
        .collect();
    let _ = poll(&mut fds, PollTimeout::from(1u8));
}
