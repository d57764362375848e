//! A small HTTP/1.1 client for tracker announces: one `GET` per connection over TCP or TLS,
//! redirects followed up to a bound, every read bounded in size. Timeouts are the caller's:
//! the whole exchange runs under one.

pub mod framing;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bitswarm_tracker::client::url::{Scheme, TrackerUrl};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{lookup_host, TcpStream};
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use crate::error::AnnounceError;
use framing::{decode_chunked, is_redirect, parse_head, BodyKind, BODY_LEN_MAX};

/// Most redirects followed for one announce.
pub const REDIRECTS_MAX: usize = 5;
/// Most addresses of one host tried in turn.
const ADDRESSES_MAX: usize = 8;
/// Bytes read from a socket at once.
const READ_CHUNK_LEN: usize = 16 << 10;
/// Chunk framing allowed on top of [`BODY_LEN_MAX`] before a chunked body counts as too big.
const CHUNK_OVERHEAD_MAX: usize = 64 << 10;

/// A response: status and body (already de-chunked).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Response {
    /// The status code of the last response (after redirects).
    pub status: u16,
    /// Its body, at most [`BODY_LEN_MAX`] bytes.
    pub body: Vec<u8>,
}

/// What every request of one announcer shares.
#[derive(Clone, Debug)]
pub struct Client {
    /// The TLS configuration, or why there is none (then only `https` fails).
    tls: Result<Arc<ClientConfig>, rustls::Error>,
    user_agent: String,
    connect_timeout: Duration,
}

impl Client {
    /// A client using `tls` for `https` (see [`default_tls_config`]).
    #[must_use]
    pub fn new(
        tls: Result<Arc<ClientConfig>, rustls::Error>,
        user_agent: String,
        connect_timeout: Duration,
    ) -> Self {
        Self {
            tls,
            user_agent,
            connect_timeout,
        }
    }

    /// `GET url`, following redirects.
    pub async fn get(&self, url: TrackerUrl) -> Result<Response, AnnounceError> {
        let mut url = url;
        for _ in 0..=REDIRECTS_MAX {
            let (head, body) = self.get_once(&url).await?;
            if !is_redirect(head.status) {
                return Ok(Response {
                    status: head.status,
                    body,
                });
            }
            let location = head.location.ok_or(AnnounceError::BadRedirect)?;
            url = url.join(&location).ok_or(AnnounceError::BadRedirect)?;
            tracing::debug!(%location, "tracker redirect");
        }
        Err(AnnounceError::TooManyRedirects(REDIRECTS_MAX))
    }

    async fn get_once(&self, url: &TrackerUrl) -> Result<(framing::Head, Vec<u8>), AnnounceError> {
        let tcp = self.connect(url).await?;
        let request = framing::request(url, &self.user_agent);
        match url.scheme() {
            Scheme::Https => {
                let name = ServerName::try_from(url.host().to_owned())
                    .map_err(|_| AnnounceError::ServerName(url.host().to_owned()))?;
                let config = self.tls.clone()?;
                let tls = TlsConnector::from(config)
                    .connect(name, tcp)
                    .await
                    .map_err(AnnounceError::Tls)?;
                exchange(tls, &request).await
            }
            Scheme::Http | Scheme::Udp => exchange(tcp, &request).await,
        }
    }

    /// Connects to the first address of the host that accepts, each try bounded.
    async fn connect(&self, url: &TrackerUrl) -> Result<TcpStream, AnnounceError> {
        let addrs: Vec<SocketAddr> = lookup_host(url.host_port())
            .await
            .map_err(|source| AnnounceError::Resolve {
                host: url.host().to_owned(),
                source,
            })?
            .take(ADDRESSES_MAX)
            .collect();
        let mut last = None;
        for addr in addrs {
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => return Ok(s),
                Ok(Err(e)) => last = Some(e),
                Err(_) => last = Some(std::io::ErrorKind::TimedOut.into()),
            }
        }
        Err(last.map_or_else(
            || AnnounceError::NoAddress {
                host: url.host().to_owned(),
            },
            AnnounceError::Connect,
        ))
    }
}

/// A TLS configuration trusting Mozilla's root certificates (webpki-roots), with the ring
/// provider named explicitly so that no process-wide default is needed.
pub fn default_tls_config() -> Result<Arc<ClientConfig>, rustls::Error> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    tls_config_with_roots(roots)
}

/// A TLS configuration trusting exactly `roots` (a private tracker's CA, a test's).
pub fn tls_config_with_roots(roots: RootCertStore) -> Result<Arc<ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Writes `request`, then reads one response off `stream`.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &[u8],
) -> Result<(framing::Head, Vec<u8>), AnnounceError> {
    stream.write_all(request).await.map_err(AnnounceError::Io)?;
    stream.flush().await.map_err(AnnounceError::Io)?;
    let mut buf = Vec::with_capacity(READ_CHUNK_LEN);
    let head = loop {
        if let Some(head) = parse_head(&buf)? {
            break head;
        }
        if read_some(&mut stream, &mut buf).await? == 0 {
            return Err(AnnounceError::Truncated);
        }
    };
    let mut raw = buf.split_off(head.len.min(buf.len()));
    let body = match head.body {
        BodyKind::Empty => Vec::new(),
        BodyKind::Length(n) => {
            while raw.len() < n {
                if read_some(&mut stream, &mut raw).await? == 0 {
                    return Err(AnnounceError::Truncated);
                }
            }
            raw.truncate(n);
            raw
        }
        BodyKind::Chunked => read_chunked(&mut stream, raw).await?,
        BodyKind::UntilClose => {
            while read_some(&mut stream, &mut raw).await? > 0 {
                if raw.len() > BODY_LEN_MAX {
                    return Err(AnnounceError::BodyTooLarge(BODY_LEN_MAX));
                }
            }
            raw
        }
    };
    Ok((head, body))
}

async fn read_chunked<S: AsyncRead + Unpin>(
    stream: &mut S,
    mut raw: Vec<u8>,
) -> Result<Vec<u8>, AnnounceError> {
    loop {
        // Only a buffer ending in a blank line can hold the terminating chunk.
        if raw.ends_with(b"\r\n\r\n") {
            if let Some(body) = decode_chunked(&raw, BODY_LEN_MAX)? {
                return Ok(body);
            }
        }
        if raw.len() > BODY_LEN_MAX + CHUNK_OVERHEAD_MAX {
            return Err(AnnounceError::BodyTooLarge(BODY_LEN_MAX));
        }
        if read_some(stream, &mut raw).await? == 0 {
            return match decode_chunked(&raw, BODY_LEN_MAX)? {
                Some(body) => Ok(body),
                None => Err(AnnounceError::Truncated),
            };
        }
    }
}

/// Appends what one read returns to `buf`; 0 at end of stream. A TLS peer that closes
/// without `close_notify` (common among HTTP servers) counts as end of stream.
async fn read_some<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> Result<usize, AnnounceError> {
    buf.reserve(READ_CHUNK_LEN);
    let mut limited = (&mut *stream).take(READ_CHUNK_LEN as u64);
    match limited.read_buf(buf).await {
        Ok(n) => Ok(n),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
        Err(e) => Err(AnnounceError::Io(e)),
    }
}
