//! One peer connection after its handshake: a reader task that frames the socket's bytes into
//! messages and forwards them in batches to the torrent task, a writer task that sends what
//! the torrent task queued with vectored writes (and reports each block once its last byte is
//! written: [`BlocksSent`]), and [`PeerLink`], the torrent task's end of both. The tasks make
//! no protocol decisions; they only move bytes and report how the connection ended.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bitswarm_engine::PeerKey;
use bitswarm_wire::{BlockRef, Frame, FrameDecoder, Handshake, Message, WireError};
use bytes::BytesMut;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tracing::Instrument;

use crate::limits::ConnectionSlot;
use crate::rate_limit::{ReadThrottle, Throttle, UploadCredit};
use crate::recv_buffer::{ChunkPool, RecvBuffer};
use crate::send_queue::{FileRange, Outgoing, SendQueue, IOV_MAX};

/// Batches of outgoing items a writer may have waiting before it takes them.
const WRITER_BATCHES_MAX: usize = 64;

/// A connection whose handshake is complete, ready to be handed to its torrent.
#[derive(Debug)]
pub(crate) struct Connected {
    pub stream: TcpStream,
    pub addr: SocketAddr,
    /// The peer's handshake.
    pub remote: Handshake,
    /// Bytes already read past the handshake.
    pub buf: BytesMut,
    /// The decoder, past the handshake.
    pub decoder: FrameDecoder,
    /// We opened the connection.
    pub outgoing: bool,
    pub slot: ConnectionSlot,
}

/// What a connection's tasks tell the torrent task.
#[derive(Debug)]
pub(crate) enum PeerInput {
    /// Messages read, in order.
    Messages {
        key: PeerKey,
        messages: Vec<Message>,
    },
    /// The connection ended (reader or writer side).
    Closed { key: PeerKey, reason: CloseReason },
    /// The send queue fell below half of `peer_send_buffer_max` after being over it.
    Drained { key: PeerKey },
}

/// Blocks whose last byte a writer has written to its socket, for the engine's
/// `block_sent` (upload accounting and the peer's next blocks). Sent on an unbounded channel
/// so that a writer never waits for the torrent task; its length is bounded all the same:
/// every block in it was served by the engine, which serves at most `upload_in_flight_max`
/// blocks per peer until it hears they were sent.
#[derive(Debug)]
pub(crate) struct BlocksSent {
    pub key: PeerKey,
    pub blocks: Vec<BlockRef>,
}

/// Why a connection's task stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// The peer closed its side.
    Eof,
    /// A socket error.
    Io(io::ErrorKind),
    /// The byte stream could not be framed.
    Wire(WireError),
}

/// State shared between the torrent task and a writer.
#[derive(Debug)]
struct LinkShared {
    /// Bytes handed to the writer and not yet written.
    queued: AtomicUsize,
    /// The torrent task holds blocks back until the queue drains.
    waiting: AtomicBool,
    /// `Drained` is sent when `queued` falls to this.
    low_watermark: usize,
}

/// The torrent task's end of a connection. Dropping it stops both tasks and closes the
/// socket.
#[derive(Debug)]
pub(crate) struct PeerLink {
    pub addr: SocketAddr,
    out: mpsc::UnboundedSender<Vec<Outgoing>>,
    pending: Vec<Outgoing>,
    pending_bytes: usize,
    shared: Arc<LinkShared>,
    send_buffer_max: usize,
    /// Blocks held back while the writer's queue is over its bound (under an upload limit,
    /// [`Throttle::send_buffer_cap`]); handed to the writer when it reports `Drained`.
    held: VecDeque<Outgoing>,
    /// When the handshake completed and the link started (for the time to first block).
    pub connected_at: std::time::Instant,
    tasks: [AbortHandle; 2],
    _slot: ConnectionSlot,
    /// The limits this link is under, and its torrent's count of bytes handed and written.
    throttle: Throttle,
}

/// What a link needs from the session.
#[derive(Debug, Clone)]
pub(crate) struct LinkLimits {
    /// Where receive buffers come from (`read_buffer_bytes` each).
    pub chunks: Arc<ChunkPool>,
    pub send_buffer_max: usize,
    /// The session's and the torrent's rate limits.
    pub throttle: Throttle,
    /// Where the writer reports blocks it has written.
    pub sent: mpsc::UnboundedSender<BlocksSent>,
}

impl PeerLink {
    /// Starts the reader and writer of `conn`.
    pub(crate) fn spawn(
        conn: Connected,
        key: PeerKey,
        events: mpsc::Sender<PeerInput>,
        limits: LinkLimits,
    ) -> Self {
        let (read_half, write_half) = conn.stream.into_split();
        let (out, out_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(LinkShared {
            queued: AtomicUsize::new(0),
            waiting: AtomicBool::new(false),
            low_watermark: limits.send_buffer_max / 2,
        });
        let span = tracing::debug_span!("peer", addr = %conn.addr, key = key.0);
        let reader = tokio::spawn(
            read_loop(
                read_half,
                conn.buf,
                conn.decoder,
                key,
                events.clone(),
                limits.chunks,
                ReadThrottle::new(limits.throttle.clone()),
            )
            .instrument(span.clone()),
        );
        let credit = UploadCredit::new(limits.throttle.clone());
        let writer = tokio::spawn(
            write_loop(
                write_half,
                out_rx,
                Arc::clone(&shared),
                key,
                (events, limits.sent),
                credit,
            )
            .instrument(span),
        );
        Self {
            addr: conn.addr,
            connected_at: std::time::Instant::now(),
            out,
            pending: Vec::new(),
            pending_bytes: 0,
            shared,
            send_buffer_max: limits.send_buffer_max,
            held: VecDeque::new(),
            tasks: [reader.abort_handle(), writer.abort_handle()],
            _slot: conn.slot,
            throttle: limits.throttle,
        }
    }

    /// Queues `item` until the next [`PeerLink::flush`]; `true` if it is the first one since.
    pub(crate) fn push(&mut self, item: Outgoing) -> bool {
        self.pending_bytes += item.wire_len();
        self.pending.push(item);
        self.pending.len() == 1
    }

    /// Queues a served block: at once, or held back while the writer's queue is over its
    /// bound (see [`PeerLink::release_held`]). `true` if the link needs a flush.
    pub(crate) fn push_block(&mut self, item: Outgoing) -> bool {
        if self.held.is_empty() && self.may_send_blocks() {
            return self.push(item);
        }
        self.held.push_back(item);
        false
    }

    /// The writer drained its queue: queues held blocks while there is room. `true` if the
    /// link needs a flush.
    pub(crate) fn release_held(&mut self) -> bool {
        let mut first = false;
        while !self.held.is_empty() && self.may_send_blocks() {
            if let Some(item) = self.held.pop_front() {
                first |= self.push(item);
            }
        }
        first
    }

    /// Hands what was queued to the writer.
    pub(crate) fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        self.shared
            .queued
            .fetch_add(self.pending_bytes, Ordering::SeqCst);
        self.throttle.handed(self.pending_bytes);
        self.pending_bytes = 0;
        // A closed writer reports `Closed` itself; what was queued is moot then.
        let _ = self.out.send(std::mem::take(&mut self.pending));
    }

    /// Whether more blocks may be queued now. When not, the writer is asked to report
    /// `Drained` once it has written the queue down to half.
    fn may_send_blocks(&self) -> bool {
        let queued = |s: &LinkShared| s.queued.load(Ordering::SeqCst) + self.pending_bytes;
        // Under an upload limit, less (see `Throttle::send_buffer_cap`).
        let max = self.throttle.send_buffer_cap(self.send_buffer_max);
        if queued(&self.shared) <= max {
            return true;
        }
        self.shared.waiting.store(true, Ordering::SeqCst);
        // The writer may have drained meanwhile without seeing `waiting`.
        if queued(&self.shared) <= self.shared.low_watermark.min(max / 2) {
            self.shared.waiting.store(false, Ordering::SeqCst);
            return true;
        }
        false
    }
}

impl Drop for PeerLink {
    fn drop(&mut self) {
        // What the writer still had will never be written: no one waits for it.
        self.throttle
            .written(self.shared.queued.load(Ordering::SeqCst));
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Reads and frames until the connection ends; forwards each read's messages as one batch.
async fn read_loop(
    mut socket: OwnedReadHalf,
    buf: BytesMut,
    mut decoder: FrameDecoder,
    key: PeerKey,
    events: mpsc::Sender<PeerInput>,
    chunks: Arc<ChunkPool>,
    mut throttle: ReadThrottle,
) {
    let mut recv = RecvBuffer::new(buf, chunks);
    let reason = loop {
        let mut messages = Vec::new();
        let failed = loop {
            match decoder.decode(recv.buf()) {
                Ok(Some(Frame::Message(message))) => messages.push(message),
                Ok(Some(Frame::HandshakeHead(_) | Frame::PeerId(_))) => {
                    break Some(CloseReason::Wire(WireError::BadProtocol));
                }
                Ok(None) => break None,
                Err(e) => break Some(CloseReason::Wire(e)),
            }
        };
        if !messages.is_empty()
            && events
                .send(PeerInput::Messages { key, messages })
                .await
                .is_err()
        {
            return; // the torrent is gone
        }
        if let Some(reason) = failed {
            break reason;
        }
        recv.make_room();
        match throttle.read(&mut socket, recv.buf()).await {
            Ok(0) => break CloseReason::Eof,
            Ok(_) => {}
            Err(e) => break CloseReason::Io(e.kind()),
        }
    };
    let _ = events.send(PeerInput::Closed { key, reason }).await;
}

/// Writes whatever is queued, taking everything that arrived since the last write each time.
async fn write_loop(
    mut socket: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Vec<Outgoing>>,
    shared: Arc<LinkShared>,
    key: PeerKey,
    (events, sent): (mpsc::Sender<PeerInput>, mpsc::UnboundedSender<BlocksSent>),
    mut credit: UploadCredit,
) {
    let mut queue = SendQueue::new();
    let mut blocks = Vec::new();
    let mut batches = Vec::with_capacity(WRITER_BATCHES_MAX);
    loop {
        if queue.is_empty() {
            if rx.recv_many(&mut batches, WRITER_BATCHES_MAX).await == 0 {
                return; // the torrent dropped the link
            }
        } else {
            while batches.len() < WRITER_BATCHES_MAX {
                let Ok(batch) = rx.try_recv() else { break };
                batches.push(batch);
            }
        }
        for item in batches.drain(..).flatten() {
            let len = item.wire_len();
            if !queue.push(item) {
                shared.queued.fetch_sub(len, Ordering::SeqCst);
            }
        }
        let allowed = credit.allowance(queue.len()).await;
        let written = if let Some(range) = queue.front_file().cloned() {
            send_file(&socket, &range, allowed).await
        } else {
            let mut slices = [io::IoSlice::new(&[]); IOV_MAX];
            let used = if allowed == usize::MAX {
                queue.io_slices(&mut slices)
            } else {
                queue.io_slices_max(&mut slices, allowed)
            };
            socket.write_vectored(&slices[..used]).await
        };
        let n = match written {
            Ok(0) => Err(io::ErrorKind::WriteZero),
            Ok(n) => Ok(n),
            Err(e) => Err(e.kind()),
        };
        let n = match n {
            Ok(n) => n,
            Err(kind) => {
                let reason = CloseReason::Io(kind);
                let _ = events.send(PeerInput::Closed { key, reason }).await;
                return;
            }
        };
        queue.advance(n);
        credit.spent(n);
        let left = shared
            .queued
            .fetch_sub(n, Ordering::SeqCst)
            .saturating_sub(n);
        // After `queued` went down, so the blocks the engine serves next find room.
        queue.take_sent(&mut blocks);
        if !blocks.is_empty() {
            let blocks = std::mem::take(&mut blocks);
            if sent.send(BlocksSent { key, blocks }).is_err() {
                return; // the torrent is gone
            }
        }
        if left <= shared.low_watermark && shared.waiting.swap(false, Ordering::SeqCst) {
            let _ = events.send(PeerInput::Drained { key }).await;
        }
    }
}

/// Sends up to `max` bytes of `range` with `sendfile`: from the page cache to the socket
/// without a copy through user space. The disk thread made the range resident first
/// (`Storage::prepare_send`), so this does not wait for the disk. `Ok(0)` means the file
/// got shorter since.
async fn send_file(socket: &OwnedWriteHalf, range: &FileRange, max: usize) -> io::Result<usize> {
    let stream: &TcpStream = socket.as_ref();
    let mut at = i64::try_from(range.offset).map_err(|_| io::ErrorKind::InvalidInput)?;
    let count = range.len.min(max);
    loop {
        stream.writable().await?;
        let sent = stream.try_io(Interest::WRITABLE, || {
            nix::sys::sendfile::sendfile64(stream, &*range.file, Some(&mut at), count)
                .map_err(io::Error::from)
        });
        match sent {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            other => return other,
        }
    }
}
