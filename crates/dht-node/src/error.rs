//! The one error type of `bitswarm-dht-node`.

use std::net::SocketAddr;
use std::path::PathBuf;

/// What can go wrong starting, driving or saving a DHT node.
#[derive(Debug, thiserror::Error)]
pub enum DhtNodeError {
    /// The UDP socket could not be bound.
    #[error("cannot bind the DHT socket to {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The state database could not be opened, read or written.
    #[error("DHT state database {path}: {source}")]
    Store {
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// The node's task has ended (shut down, or its runtime stopped).
    #[error("the DHT node has stopped")]
    Stopped,
}

/// Shorthand for this crate's results.
pub type Result<T, E = DhtNodeError> = std::result::Result<T, E>;
