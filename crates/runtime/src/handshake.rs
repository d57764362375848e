//! Opening connections: the outgoing connect (within `half_open_max` and `connect_timeout`)
//! and handshake, the accept loop, and the incoming handshake that reads the first 48 bytes to
//! find the torrent by info-hash before answering. Everything here ends in a [`Connected`]
//! handed to the torrent task, or in dropping the socket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bitswarm_wire::{Frame, FrameDecoder, Handshake, HandshakeHead, PeerId, Reserved, WireError};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::timeout;

use crate::error::{Result, RuntimeError};
use crate::limits::ConnectionSlot;
use crate::peer::Connected;
use crate::session::SessionShared;
use crate::torrent::Command;

/// Receive buffer of a connection during its handshake (the reader grows it afterwards).
const HANDSHAKE_BUFFER_BYTES: usize = 1024;
/// Pause after an `accept` error (e.g. out of file descriptors) before accepting again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// The reserved bits we send: fast extension and extension protocol.
#[must_use]
pub(crate) fn our_reserved() -> Reserved {
    Reserved::NONE.with_fast(true).with_extension_protocol(true)
}

/// Connects to `addr` for the torrent `info_hash` and completes the handshake.
pub(crate) async fn connect(
    shared: &SessionShared,
    addr: SocketAddr,
    info_hash: [u8; 20],
) -> Result<Connected> {
    let slot = shared
        .connections
        .try_acquire()
        .ok_or(RuntimeError::ConnectionLimit)?;
    let config = &shared.config;
    let stream = {
        let _permit = shared
            .half_open
            .acquire()
            .await
            .map_err(|_| RuntimeError::Shutdown)?;
        let socket = new_socket(addr, config.socket_buffer_bytes)?;
        timeout(config.connect_timeout, socket.connect(addr))
            .await
            .map_err(|_| RuntimeError::ConnectTimeout)??
    };
    stream.set_nodelay(true)?;
    let ours = Handshake {
        reserved: our_reserved(),
        info_hash,
        peer_id: shared.peer_id,
    };
    timeout(
        config.handshake_timeout,
        outgoing_handshake(stream, addr, ours, slot),
    )
    .await
    .map_err(|_| RuntimeError::HandshakeTimeout)?
}

/// Binds the listening socket.
pub(crate) fn listen(addr: SocketAddr, buffer_bytes: Option<u32>) -> std::io::Result<TcpListener> {
    let socket = new_socket(addr, buffer_bytes)?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Accepts connections until the task is aborted; each one is handshaken on its own task.
pub(crate) async fn accept_loop(shared: Arc<SessionShared>, listener: TcpListener) {
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        let Some(slot) = shared.connections.try_acquire() else {
            tracing::debug!(%addr, "refused: connections_max reached");
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let limit = shared.config.handshake_timeout;
            let result = timeout(limit, incoming_handshake(&shared, stream, addr, slot))
                .await
                .unwrap_or(Err(RuntimeError::HandshakeTimeout));
            match result {
                Ok((conn, torrent)) => {
                    let _ = torrent.send(Command::Connected(Box::new(conn)));
                }
                Err(e) => tracing::debug!(%addr, error = %e, "incoming handshake failed"),
            }
        });
    }
}

/// Sends our handshake, then reads and checks theirs.
async fn outgoing_handshake(
    mut stream: TcpStream,
    addr: SocketAddr,
    ours: Handshake,
    slot: ConnectionSlot,
) -> Result<Connected> {
    stream.write_all(&ours.encode()).await?;
    let mut buf = BytesMut::with_capacity(HANDSHAKE_BUFFER_BYTES);
    let mut decoder = FrameDecoder::new();
    let head = read_head(&mut stream, &mut buf, &mut decoder).await?;
    if head.info_hash != ours.info_hash {
        return Err(RuntimeError::InfoHashMismatch);
    }
    let peer_id = read_peer_id(&mut stream, &mut buf, &mut decoder).await?;
    if peer_id == ours.peer_id {
        return Err(RuntimeError::SelfConnection);
    }
    Ok(Connected {
        stream,
        addr,
        remote: head.with_peer_id(peer_id),
        buf,
        decoder,
        outgoing: true,
        slot,
    })
}

/// Reads the first 48 bytes, finds the torrent, answers, reads the peer id.
async fn incoming_handshake(
    shared: &SessionShared,
    mut stream: TcpStream,
    addr: SocketAddr,
    slot: ConnectionSlot,
) -> Result<(Connected, tokio::sync::mpsc::UnboundedSender<Command>)> {
    stream.set_nodelay(true)?;
    let mut buf = BytesMut::with_capacity(HANDSHAKE_BUFFER_BYTES);
    let mut decoder = FrameDecoder::new();
    let head = read_head(&mut stream, &mut buf, &mut decoder).await?;
    let torrent = shared
        .torrent_entry(&head.info_hash)
        .ok_or(RuntimeError::UnknownTorrent)?;
    if torrent.peer_count() >= shared.config.connections_per_torrent_max {
        return Err(RuntimeError::ConnectionLimit);
    }
    let ours = Handshake {
        reserved: our_reserved(),
        info_hash: head.info_hash,
        peer_id: shared.peer_id,
    };
    stream.write_all(&ours.encode()).await?;
    let peer_id = read_peer_id(&mut stream, &mut buf, &mut decoder).await?;
    if peer_id == shared.peer_id {
        return Err(RuntimeError::SelfConnection);
    }
    let conn = Connected {
        stream,
        addr,
        remote: head.with_peer_id(peer_id),
        buf,
        decoder,
        outgoing: false,
        slot,
    };
    Ok((conn, torrent.cmd))
}

async fn read_head(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    decoder: &mut FrameDecoder,
) -> Result<HandshakeHead> {
    match next_frame(stream, buf, decoder).await? {
        Frame::HandshakeHead(head) => Ok(head),
        Frame::PeerId(_) | Frame::Message(_) => Err(WireError::BadProtocol.into()),
    }
}

async fn read_peer_id(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    decoder: &mut FrameDecoder,
) -> Result<PeerId> {
    match next_frame(stream, buf, decoder).await? {
        Frame::PeerId(id) => Ok(id),
        Frame::HandshakeHead(_) | Frame::Message(_) => Err(WireError::BadProtocol.into()),
    }
}

/// Reads until the decoder yields a frame (the handshake's two parts are small; bytes after
/// them stay in `buf` for the reader).
async fn next_frame(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    decoder: &mut FrameDecoder,
) -> Result<Frame> {
    loop {
        if let Some(frame) = decoder.decode(buf)? {
            return Ok(frame);
        }
        if buf.capacity() - buf.len() < HANDSHAKE_BUFFER_BYTES / 4 {
            buf.reserve(HANDSHAKE_BUFFER_BYTES);
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(RuntimeError::Closed);
        }
    }
}

fn new_socket(addr: SocketAddr, buffer_bytes: Option<u32>) -> std::io::Result<TcpSocket> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(bytes) = buffer_bytes {
        socket.set_send_buffer_size(bytes)?;
        socket.set_recv_buffer_size(bytes)?;
    }
    Ok(socket)
}
