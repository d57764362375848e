//! Tracker URLs on the client side: splitting an announce URL into what a driver needs to
//! reach it (scheme, host, port, path), and building the HTTP announce query (BEP 3, BEP 23)
//! with every binary parameter percent-encoded and any query the URL already has kept.

use std::fmt::Write as _;

use crate::http::query::percent_encode;
use crate::types::{Event, InfoHash, PeerId};

/// Longest tracker URL accepted, in bytes. Torrents in the wild carry passkeys in the URL, but
/// nothing close to this.
pub const TRACKER_URL_LEN_MAX: usize = 2048;

/// How a tracker is reached.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Scheme {
    /// HTTP/1.1 over TCP (BEP 3).
    Http,
    /// HTTP/1.1 over TLS.
    Https,
    /// The UDP tracker protocol (BEP 15).
    Udp,
}

/// A parsed tracker URL: `scheme://host[:port][/path][?query]`. No user info, no fragment.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct TrackerUrl {
    scheme: Scheme,
    host: String,
    port: u16,
    path_and_query: String,
}

impl TrackerUrl {
    /// Parses a tracker URL; `None` for another scheme, user info, a missing host, a bad port,
    /// a UDP URL without a port, bytes a URL cannot hold, or more than
    /// [`TRACKER_URL_LEN_MAX`] bytes. A fragment is dropped.
    #[must_use]
    pub fn parse(url: &str) -> Option<Self> {
        if url.len() > TRACKER_URL_LEN_MAX || !url.bytes().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        let url = url.split('#').next().unwrap_or_default();
        let (scheme_text, rest) = url.split_once("://")?;
        let scheme = match scheme_text.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            "udp" => Scheme::Udp,
            _ => return None,
        };
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.contains('@') {
            return None;
        }
        let (host, port) = split_authority(authority)?;
        let port = match (port, scheme) {
            (Some(p), _) => p,
            (None, Scheme::Http) => 80,
            (None, Scheme::Https) => 443,
            (None, Scheme::Udp) => return None,
        };
        let path_and_query = if path.starts_with('?') {
            format!("/{path}")
        } else if path.is_empty() {
            "/".to_owned()
        } else {
            path.to_owned()
        };
        Some(Self {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
            path_and_query,
        })
    }

    /// How the tracker is reached.
    #[must_use]
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host: a DNS name, an IPv4 address, or an IPv6 address without brackets.
    #[must_use]
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (80 or 443 when an HTTP URL names none).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The path and query, starting with `/`.
    #[must_use]
    pub fn path_and_query(&self) -> &str {
        &self.path_and_query
    }

    /// `host:port`, IPv6 hosts bracketed: what a resolver takes.
    #[must_use]
    pub fn host_port(&self) -> String {
        format!("{}:{}", self.bracketed_host(), self.port)
    }

    /// The HTTP `Host` header value: the host, bracketed if IPv6, with the port unless it is
    /// the scheme's default.
    #[must_use]
    pub fn host_header(&self) -> String {
        let default = matches!(
            (self.scheme, self.port),
            (Scheme::Http, 80) | (Scheme::Https, 443)
        );
        if default {
            self.bracketed_host()
        } else {
            self.host_port()
        }
    }

    /// Where an HTTP redirect's `Location` points from this URL: an absolute `http`/`https`
    /// URL, or an absolute path on this host. `None` for anything else (a relative path, a
    /// `udp://` URL, garbage).
    #[must_use]
    pub fn join(&self, location: &str) -> Option<Self> {
        if location.starts_with('/') && !location.starts_with("//") {
            let scheme = match self.scheme {
                Scheme::Http => "http",
                Scheme::Https => "https",
                Scheme::Udp => return None,
            };
            return Self::parse(&format!("{scheme}://{}{location}", self.host_port()));
        }
        Self::parse(location).filter(|u| u.scheme != Scheme::Udp)
    }

    fn bracketed_host(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }
}

/// Everything an HTTP announce query carries.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AnnounceParams<'a> {
    /// The swarm.
    pub info_hash: &'a InfoHash,
    /// Our peer id.
    pub peer_id: &'a PeerId,
    /// The port we accept peers on.
    pub port: u16,
    /// Bytes uploaded since the `started` event.
    pub uploaded: u64,
    /// Bytes downloaded since the `started` event.
    pub downloaded: u64,
    /// Bytes still missing.
    pub left: u64,
    /// State change reported.
    pub event: Event,
    /// Peers wanted; `None` leaves it to the tracker.
    pub numwant: Option<u32>,
    /// Our random key, the same for every announce of this torrent.
    pub key: u32,
    /// The `tracker id` the tracker handed out before, echoed back.
    pub tracker_id: Option<&'a [u8]>,
}

/// The full announce URL: `base` (fragment dropped) with the announce parameters appended to
/// its query, after an `&` if it already has one (a passkey, say) or a `?` if not.
#[must_use]
pub fn announce_url(base: &str, p: &AnnounceParams<'_>) -> String {
    let mut url = base.split('#').next().unwrap_or_default().to_owned();
    append_announce_query(&mut url, p);
    url
}

impl TrackerUrl {
    /// This URL with the announce parameters appended to its query, as [`announce_url`] does.
    #[must_use]
    pub fn with_announce_query(&self, p: &AnnounceParams<'_>) -> Self {
        let mut path_and_query = self.path_and_query.clone();
        append_announce_query(&mut path_and_query, p);
        Self {
            path_and_query,
            ..self.clone()
        }
    }
}

fn append_announce_query(url: &mut String, p: &AnnounceParams<'_>) {
    url.reserve(200);
    match url.find('?') {
        None => url.push('?'),
        Some(_) if url.ends_with(['?', '&']) => {}
        Some(_) => url.push('&'),
    }
    url.push_str("info_hash=");
    percent_encode(url, p.info_hash.as_bytes());
    url.push_str("&peer_id=");
    percent_encode(url, &p.peer_id.0);
    // Writing into a String cannot fail.
    let _ = write!(
        url,
        "&port={}&uploaded={}&downloaded={}&left={}&compact=1&no_peer_id=1&key={:08X}",
        p.port, p.uploaded, p.downloaded, p.left, p.key
    );
    if p.event != Event::None {
        url.push_str("&event=");
        url.push_str(p.event.as_http());
    }
    if let Some(n) = p.numwant {
        let _ = write!(url, "&numwant={n}");
    }
    if let Some(id) = p.tracker_id {
        url.push_str("&trackerid=");
        percent_encode(url, id);
    }
}

/// Splits `host[:port]` or `[v6]:port`; `None` for an empty host or a port that is not a
/// number in 1..=65535.
fn split_authority(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        match after {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
    if !host_ok {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) => {
            let n: u16 = p.parse().ok()?;
            if n == 0 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some(n)
        }
    };
    Some((host, port))
}
