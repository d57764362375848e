//! A lying seeder under the test's control: it handshakes, announces every piece, unchokes at
//! once and answers every request, but with wrong bytes for the pieces it was told to corrupt.
//! It counts the connections it accepts and notes when each one was closed, so a test can
//! check that a client disconnects it and never comes back.
//!
//! Written with `std::net` and `bitswarm-wire` (framing only; every protocol decision here is the
//! test's own), one thread per connection.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bitswarm_wire::{Bitfield, BlockRef, Handshake, Message, PeerId, Reserved, HANDSHAKE_LEN};

/// Largest frame it accepts from the client (bitfield of any sane torrent, extension messages).
const FRAME_LEN_MAX: usize = 1 << 20;
/// Largest block it serves (clients ask for 16 KiB).
const BLOCK_LEN_MAX: u32 = 128 * 1024;

/// What one accepted connection did.
#[derive(Debug, Clone)]
pub struct ConnectionLog {
    /// The client's address.
    pub from: SocketAddr,
    /// When it was accepted.
    pub opened: Instant,
    /// When the client closed it (or it failed); `None` while open.
    pub closed: Option<Instant>,
    /// Blocks answered with correct bytes.
    pub good_blocks: u64,
    /// Blocks answered with corrupted bytes.
    pub bad_blocks: u64,
}

struct Shared {
    info_hash: [u8; 20],
    piece_len: u64,
    payload: Vec<u8>,
    bad_piece: fn(u32) -> bool,
    log: Mutex<Vec<ConnectionLog>>,
    streams: Mutex<Vec<TcpStream>>,
    stop: AtomicBool,
    bad_bytes: AtomicU64,
}

/// The running corrupt seeder. Dropping it closes every connection and stops its threads.
pub struct CorruptPeer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl CorruptPeer {
    /// Listens on `bind` (an IP with port 0) and serves `payload` (the torrent's whole byte
    /// stream), corrupting every block of each piece for which `bad_piece` is true.
    pub fn start(
        bind: &str,
        info_hash: [u8; 20],
        piece_len: u64,
        payload: Vec<u8>,
        bad_piece: fn(u32) -> bool,
    ) -> Self {
        let listener = TcpListener::bind(bind).unwrap_or_else(|e| panic!("bind {bind}: {e}"));
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            info_hash,
            piece_len,
            payload,
            bad_piece,
            log: Mutex::new(Vec::new()),
            streams: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            bad_bytes: AtomicU64::new(0),
        });
        let s = Arc::clone(&shared);
        let acceptor = thread::spawn(move || accept_loop(&listener, &s));
        Self {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every connection accepted so far.
    pub fn connections(&self) -> Vec<ConnectionLog> {
        self.shared.log.lock().expect("log").clone()
    }

    /// Corrupted payload bytes sent so far.
    pub fn bad_bytes(&self) -> u64 {
        self.shared.bad_bytes.load(Ordering::Relaxed)
    }
}

impl Drop for CorruptPeer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for s in self.shared.streams.lock().expect("streams").iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, from)) => {
                let index = {
                    let mut log = shared.log.lock().expect("log");
                    log.push(ConnectionLog {
                        from,
                        opened: Instant::now(),
                        closed: None,
                        good_blocks: 0,
                        bad_blocks: 0,
                    });
                    log.len() - 1
                };
                if let Ok(clone) = stream.try_clone() {
                    shared.streams.lock().expect("streams").push(clone);
                }
                let s = Arc::clone(shared);
                thread::spawn(move || {
                    let _ = serve(stream, &s, index);
                    s.log.lock().expect("log")[index].closed = Some(Instant::now());
                });
            }
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// One connection: handshake, bitfield, unchoke, then answer requests until the client goes.
fn serve(mut stream: TcpStream, shared: &Shared, index: usize) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    let mut theirs = [0u8; HANDSHAKE_LEN];
    stream.read_exact(&mut theirs)?;
    let hs = Handshake::parse(&theirs).map_err(std::io::Error::other)?;
    if hs.info_hash != shared.info_hash {
        return Ok(());
    }
    let ours = Handshake {
        reserved: Reserved::NONE,
        info_hash: shared.info_hash,
        peer_id: PeerId(*b"-XX0001-corruptpeer0"),
    };
    let pieces = shared.payload.len().div_ceil(piece_len(shared)) as u32;
    let mut out = ours.encode().to_vec();
    Bitfield::full(pieces)
        .to_message()
        .encode_into(&mut out)
        .map_err(std::io::Error::other)?;
    Message::Unchoke
        .encode_into(&mut out)
        .map_err(std::io::Error::other)?;
    stream.write_all(&out)?;
    loop {
        let mut len = [0u8; 4];
        stream.read_exact(&mut len)?;
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 {
            continue;
        }
        if len > FRAME_LEN_MAX {
            return Ok(());
        }
        let mut frame = vec![0u8; len];
        stream.read_exact(&mut frame)?;
        if let Ok(Message::Request(block)) = Message::parse(frame.into()) {
            let Some(reply) = answer(shared, block, index) else {
                return Ok(());
            };
            stream.write_all(&reply)?;
        }
    }
}

/// The piece message for `block`, corrupted if its piece is a bad one; `None` for a request
/// outside the torrent.
fn answer(shared: &Shared, block: BlockRef, index: usize) -> Option<Vec<u8>> {
    let start = u64::from(block.piece) * shared.piece_len + u64::from(block.offset);
    let end = start + u64::from(block.length);
    if block.length == 0
        || block.length > BLOCK_LEN_MAX
        || block.end() > shared.piece_len
        || end > shared.payload.len() as u64
    {
        return None;
    }
    let mut data = shared.payload[start as usize..end as usize].to_vec();
    let bad = (shared.bad_piece)(block.piece);
    if bad {
        for b in &mut data {
            *b ^= 0x5a;
        }
        shared
            .bad_bytes
            .fetch_add(u64::from(block.length), Ordering::Relaxed);
    }
    {
        let mut log = shared.log.lock().expect("log");
        let entry = &mut log[index];
        if bad {
            entry.bad_blocks += 1;
        } else {
            entry.good_blocks += 1;
        }
    }
    let msg = Message::Piece {
        piece: block.piece,
        offset: block.offset,
        data: data.into(),
    };
    let mut out = Vec::with_capacity(block.length as usize + 13);
    msg.encode_into(&mut out).ok()?;
    Some(out)
}

fn piece_len(shared: &Shared) -> usize {
    usize::try_from(shared.piece_len).expect("fits")
}
