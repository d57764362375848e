//! UDP workers: one blocking thread per `SO_REUSEPORT` socket, so the kernel spreads clients
//! over threads and no two threads share a socket. Each loop receives a batch of datagrams
//! with one `recvmmsg`, answers them through the sans-IO [`Tracker`], and sends the answers
//! with one `sendmmsg` (or, with a batch of 1, plain `recv_from`/`send_to`).
//!
//! Why not tokio here: a readiness loop adds an `epoll_wait` and a wake-up per burst on top of
//! the same receive and send calls, and the work per datagram is a few hundred nanoseconds, so
//! plain blocking threads are the shorter path.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{recvmmsg, sendmmsg, MsgFlags, MultiHeaders, SockaddrStorage};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use socket2::{Domain, Protocol, Socket, Type};

use crate::metrics::LocalCounts;
use crate::Shared;

/// Most datagrams handled per system call.
pub const BATCH_MAX: usize = 64;
/// Receive buffer per datagram: larger than any request we accept, so an oversized datagram
/// is seen as oversized rather than silently cut to a valid length.
const DATAGRAM_MAX: usize = 2048;
/// How long a receive blocks before the worker looks at the shutdown flag.
const RECV_TIMEOUT: Duration = Duration::from_millis(200);

/// Binds a UDP socket with `SO_REUSEPORT` (IPv6 sockets are IPv6-only, so `[::]` and
/// `0.0.0.0` can be bound side by side).
pub(crate) fn bind(addr: SocketAddr, buffer_bytes: usize) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_port(true)?;
    // Buffers are a request, capped by the kernel's limits; a smaller one is not an error.
    let _ = socket.set_recv_buffer_size(buffer_bytes);
    let _ = socket.set_send_buffer_size(buffer_bytes);
    socket.set_read_timeout(Some(RECV_TIMEOUT))?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Runs one worker until shutdown.
pub(crate) fn run_worker(socket: &UdpSocket, shared: &Arc<Shared>, batch: usize) {
    let mut rng = SmallRng::from_entropy();
    let mut counts = LocalCounts::default();
    if batch <= 1 {
        single_loop(socket, shared, &mut rng, &mut counts);
    } else {
        batch_loop(socket, shared, batch.min(BATCH_MAX), &mut rng, &mut counts);
    }
    shared.metrics.udp.publish(&mut counts);
}

fn single_loop(socket: &UdpSocket, shared: &Shared, rng: &mut SmallRng, counts: &mut LocalCounts) {
    let mut buf = [0u8; DATAGRAM_MAX];
    let mut out = Vec::with_capacity(DATAGRAM_MAX);
    let mut access = shared.access.view();
    let mut unpublished = 0u32;
    while !shared.shutdown.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buf) {
            Ok((len, src)) => {
                out.clear();
                let packet = buf.get(..len).unwrap_or_default();
                let now_s = shared.clock.now_s();
                let list = access.current(&shared.access);
                counts.record(
                    shared
                        .tracker
                        .handle_udp(packet, src, now_s, list, rng, &mut out),
                );
                if !out.is_empty() && socket.send_to(&out, src).is_err() {
                    counts.io_error();
                }
                unpublished += 1;
            }
            Err(e) if is_timeout(&e) => unpublished = u32::MAX,
            Err(_) => counts.io_error(),
        }
        if unpublished >= 64 {
            shared.metrics.udp.publish(counts);
            unpublished = 0;
        }
    }
}

fn batch_loop(
    socket: &UdpSocket,
    shared: &Shared,
    batch: usize,
    rng: &mut SmallRng,
    counts: &mut LocalCounts,
) {
    let fd = socket.as_raw_fd();
    let mut rx = vec![0u8; batch * DATAGRAM_MAX];
    let mut rx_headers = MultiHeaders::<SockaddrStorage>::preallocate(batch, None);
    let mut tx_headers = MultiHeaders::<SockaddrStorage>::preallocate(batch, None);
    let mut outs: Vec<Vec<u8>> = (0..batch)
        .map(|_| Vec::with_capacity(DATAGRAM_MAX))
        .collect();
    let mut lens = [0usize; BATCH_MAX];
    let mut srcs: [Option<SocketAddr>; BATCH_MAX] = [None; BATCH_MAX];
    let mut dests: [Option<SockaddrStorage>; BATCH_MAX] = [None; BATCH_MAX];
    let mut access = shared.access.view();
    while !shared.shutdown.load(Ordering::Relaxed) {
        let received = match recv_batch(fd, &mut rx_headers, &mut rx, batch, &mut lens, &mut srcs) {
            Ok(n) => n,
            Err(Errno::EAGAIN | Errno::EINTR) => continue,
            Err(_) => {
                counts.io_error();
                continue;
            }
        };
        let now_s = shared.clock.now_s();
        let list = access.current(&shared.access);
        let mut answers = 0;
        let packets = rx
            .chunks(DATAGRAM_MAX)
            .zip(lens.iter().zip(&srcs))
            .take(received);
        for (chunk, (&len, src)) in packets {
            let (Some(src), Some(out)) = (src, outs.get_mut(answers)) else {
                continue;
            };
            out.clear();
            let packet = chunk.get(..len).unwrap_or_default();
            counts.record(
                shared
                    .tracker
                    .handle_udp(packet, *src, now_s, list, rng, out),
            );
            if !out.is_empty() {
                if let Some(dest) = dests.get_mut(answers) {
                    *dest = Some(SockaddrStorage::from(*src));
                    answers += 1;
                }
            }
        }
        if answers > 0
            && send_batch(fd, &mut tx_headers, &outs[..answers], &dests[..answers]).is_err()
        {
            counts.io_error();
        }
        shared.metrics.udp.publish(counts);
    }
}

/// Receives up to `batch` datagrams (blocking for the first only), recording each one's length
/// and source. Returns how many arrived.
fn recv_batch(
    fd: std::os::fd::RawFd,
    headers: &mut MultiHeaders<SockaddrStorage>,
    rx: &mut [u8],
    batch: usize,
    lens: &mut [usize; BATCH_MAX],
    srcs: &mut [Option<SocketAddr>; BATCH_MAX],
) -> nix::Result<usize> {
    let mut chunks = rx.chunks_mut(DATAGRAM_MAX);
    let mut iovs: [[IoSliceMut<'_>; 1]; BATCH_MAX] =
        std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or_default())]);
    let wanted = iovs.get_mut(..batch).unwrap_or_default();
    let results = recvmmsg(
        fd,
        headers,
        wanted.iter_mut(),
        MsgFlags::MSG_WAITFORONE,
        None,
    )?;
    let mut n = 0;
    for (msg, (len, src)) in results.zip(lens.iter_mut().zip(srcs.iter_mut())) {
        *len = msg.bytes;
        *src = msg.address.as_ref().and_then(to_socket_addr);
        n += 1;
    }
    Ok(n)
}

/// Sends each answer to its destination with one `sendmmsg`. The results are not iterated
/// (nix would read addresses it never wrote); a short send loses the batch's remaining
/// answers, which clients retry as they would any lost datagram.
fn send_batch(
    fd: std::os::fd::RawFd,
    headers: &mut MultiHeaders<SockaddrStorage>,
    outs: &[Vec<u8>],
    dests: &[Option<SockaddrStorage>],
) -> nix::Result<()> {
    let iovs: [[IoSlice<'_>; 1]; BATCH_MAX] =
        std::array::from_fn(|i| [IoSlice::new(outs.get(i).map_or(&[][..], Vec::as_slice))]);
    let count = outs.len().min(dests.len());
    let slices = iovs.get(..count).unwrap_or_default();
    loop {
        match sendmmsg(fd, headers, slices.iter(), dests, [], MsgFlags::empty()) {
            Err(Errno::EINTR) => {}
            other => return other.map(drop),
        }
    }
}

fn to_socket_addr(s: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = s.as_sockaddr_in() {
        return Some(SocketAddr::from(*v4));
    }
    s.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6))
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}
