//! The one error type of the tracker server: what can stop it from starting or reloading.

use std::net::SocketAddr;
use std::path::PathBuf;

use bitswarm_tracker::TrackerError;

/// Why the server could not start, or an access list could not be (re)loaded.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration file is not valid TOML or has unknown or mistyped keys.
    #[error("config {path}: {source}")]
    ConfigSyntax {
        /// The file.
        path: PathBuf,
        /// What the TOML reader said.
        source: Box<toml::de::Error>,
    },
    /// A configuration value out of its range.
    #[error("config: {0}")]
    ConfigValue(&'static str),
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An access list file has a bad line.
    #[error("access list {path}: {source}")]
    AccessList {
        /// The file.
        path: PathBuf,
        /// Which line and why.
        source: TrackerError,
    },
    /// A socket could not be made, configured or bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A thread or the async runtime could not be started.
    #[error("starting workers: {0}")]
    Spawn(std::io::Error),
}
