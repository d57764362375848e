//! The one error type of this crate: every way an announce can fail on the way to a tracker
//! and back, each a variant tests can match on.

use std::io;

use bitswarm_tracker::client::Fault;
use bitswarm_tracker::TrackerError;

/// Why an announce to one tracker failed.
#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    /// The URL is not an `http`, `https` or `udp` tracker URL this client can use.
    #[error("unsupported tracker URL")]
    UnsupportedUrl,
    /// The tracker did not answer in time.
    #[error("tracker did not answer in time")]
    Timeout,
    /// An HTTP status other than 2xx, without a `failure reason`.
    #[error("HTTP status {0}")]
    HttpStatus(u16),
    /// The tracker's answer is not a valid response.
    #[error("malformed response: {0}")]
    Tracker(#[from] TrackerError),
    /// The host name could not be resolved.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// The host.
        host: String,
        /// What the resolver said.
        #[source]
        source: io::Error,
    },
    /// The host name resolved to no address.
    #[error("{host} has no address")]
    NoAddress {
        /// The host.
        host: String,
    },
    /// No address of the tracker accepted a TCP connection.
    #[error("cannot connect: {0}")]
    Connect(#[source] io::Error),
    /// The TLS handshake failed (certificate, protocol).
    #[error("TLS handshake failed: {0}")]
    Tls(#[source] io::Error),
    /// The host cannot be a TLS server name.
    #[error("{0} is not a valid TLS server name")]
    ServerName(String),
    /// Reading or writing the connection failed.
    #[error("connection failed: {0}")]
    Io(#[source] io::Error),
    /// No UDP socket could be opened.
    #[error("cannot open a UDP socket: {0}")]
    UdpBind(#[source] io::Error),
    /// The response head is longer than the bound.
    #[error("response head longer than {0} bytes")]
    HeadTooLarge(usize),
    /// The status line is not `HTTP/1.x NNN reason`.
    #[error("malformed status line")]
    StatusLine,
    /// A header line without a colon or with bytes HTTP forbids.
    #[error("malformed header line")]
    HeaderLine,
    /// More headers than the bound.
    #[error("more than {0} headers")]
    TooManyHeaders(usize),
    /// A `Content-Length` that is not a number, or two that disagree.
    #[error("malformed Content-Length")]
    ContentLength,
    /// A `Transfer-Encoding` other than `chunked` (we ask for identity).
    #[error("unsupported Transfer-Encoding")]
    TransferEncoding,
    /// A chunked body that breaks the chunk syntax.
    #[error("malformed chunked body")]
    Chunked,
    /// A body longer than the bound.
    #[error("response body longer than {0} bytes")]
    BodyTooLarge(usize),
    /// The connection closed before the whole body arrived.
    #[error("connection closed before the body was complete")]
    Truncated,
    /// More redirects in a row than the bound.
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
    /// A redirect without a usable `Location`.
    #[error("redirect without a usable Location")]
    BadRedirect,
    /// The TLS configuration could not be built.
    #[error("TLS configuration: {0}")]
    TlsConfig(#[from] tokio_rustls::rustls::Error),
}

impl From<Fault> for AnnounceError {
    fn from(fault: Fault) -> Self {
        match fault {
            Fault::UnsupportedUrl => Self::UnsupportedUrl,
            Fault::Timeout => Self::Timeout,
            Fault::HttpStatus(s) => Self::HttpStatus(s),
            Fault::Malformed(e) => Self::Tracker(e),
        }
    }
}
