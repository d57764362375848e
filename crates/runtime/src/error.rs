//! The one error type of the runtime: what can go wrong starting a session, adding a torrent or
//! opening a connection. Failures of one peer connection never surface as an error of the
//! session: they end that connection and are counted.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bitswarm_storage::StorageError;
use bitswarm_wire::WireError;

/// Why a runtime operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RuntimeError {
    /// The listening socket could not be set up.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// The system's reason.
        #[source]
        source: Arc<io::Error>,
    },
    /// A socket operation on a peer connection failed.
    #[error("peer I/O: {0}")]
    Io(#[source] Arc<io::Error>),
    /// The peer closed the connection.
    #[error("connection closed by the peer")]
    Closed,
    /// Connecting took longer than `connect_timeout`.
    #[error("connect timed out")]
    ConnectTimeout,
    /// The handshake took longer than `handshake_timeout`.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// The peer's bytes could not be framed (bad handshake, oversized message, ...).
    #[error("peer protocol: {0}")]
    Wire(#[from] WireError),
    /// The peer's handshake named another torrent than the one we connected for.
    #[error("peer answered for another torrent")]
    InfoHashMismatch,
    /// An incoming handshake named a torrent this session does not have.
    #[error("no such torrent in this session")]
    UnknownTorrent,
    /// The connection reached ourselves (same peer id).
    #[error("connected to ourselves")]
    SelfConnection,
    /// `connections_max` or `connections_per_torrent_max` is reached.
    #[error("connection limit reached")]
    ConnectionLimit,
    /// A torrent with this info-hash is already in the session.
    #[error("torrent already added")]
    DuplicateTorrent,
    /// The torrent's description is unusable (e.g. its geometry does not fit the engine).
    #[error("invalid torrent: {what}")]
    InvalidTorrent {
        /// What is wrong.
        what: &'static str,
    },
    /// A storage operation failed.
    #[error("storage: {0}")]
    Storage(#[source] Arc<StorageError>),
    /// The torrent stopped on a disk error (see its `StorageFailed` event).
    #[error("torrent stopped on a disk error")]
    TorrentFailed,
    /// The session (or the torrent) has shut down.
    #[error("session or torrent has shut down")]
    Shutdown,
}

impl From<io::Error> for RuntimeError {
    fn from(e: io::Error) -> Self {
        Self::Io(Arc::new(e))
    }
}

impl From<StorageError> for RuntimeError {
    fn from(e: StorageError) -> Self {
        Self::Storage(Arc::new(e))
    }
}

/// Results of this crate.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
