//! HTTP listeners on tokio: the tracker's `/announce` and `/scrape`, and the `/metrics`
//! endpoint. Requests go through the bounded sans-IO head parser of `bitswarm-tracker`, not a
//! general HTTP library: a tracker needs GET, a query string and keep-alive, and a small
//! parser with named bounds is easier to fuzz and to trust than a framework's defaults.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bitswarm_tracker::http::head::{
    emit_response_head, parse_request_head, RequestHead, REQUEST_HEAD_LEN_MAX,
};
use bitswarm_tracker::http::response::emit_failure;
use bitswarm_tracker::server::{Handled, Refusal};
use bitswarm_tracker::TrackerError;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::metrics::LocalCounts;
use crate::Shared;

/// Which endpoints a listener serves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Role {
    /// `/announce` and `/scrape`.
    Tracker,
    /// `/metrics`.
    Metrics,
}

/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 4096;

/// Accepts connections until shutdown; each is served by its own task while a permit of
/// `limit` is held.
pub(crate) async fn serve(
    listener: TcpListener,
    role: Role,
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
    idle: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        // Waiting for a free connection slot must not hold shutdown up.
        let permit = tokio::select! {
            p = Arc::clone(&limit).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = shutdown.changed() => return,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let Ok((stream, peer)) = accepted else {
            tracing::debug!("accept failed");
            continue;
        };
        let shared = Arc::clone(&shared);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            connection(stream, peer, role, &shared, idle, shutdown).await;
            drop(permit);
        });
    }
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    role: Role,
    shared: &Shared,
    idle: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buf = Vec::with_capacity(READ_CHUNK);
    let mut out = Vec::new();
    let mut bufs = Buffers {
        body: Vec::new(),
        scratch: Vec::new(),
    };
    let mut rng = SmallRng::seed_from_u64(rand::thread_rng().gen());
    // Each request head must arrive whole within `idle` of the previous answer, however
    // slowly its bytes trickle in.
    let mut deadline = tokio::time::Instant::now() + idle;
    loop {
        let step = match parse_request_head(&buf) {
            Ok(Some(head)) => {
                out.clear();
                respond(&head, peer, role, shared, &mut rng, &mut bufs, &mut out);
                Some((head.len, head.keep_alive))
            }
            Ok(None) => None,
            Err(e) => {
                let mut counts = LocalCounts::default();
                counts.record(Handled::Refused(Refusal::Malformed));
                shared.metrics.http.publish(&mut counts);
                out.clear();
                let status = if matches!(e, TrackerError::HeadTooLarge(_)) {
                    431
                } else {
                    400
                };
                plain(&mut out, status, e.to_string().as_bytes(), false);
                let _ = stream.write_all(&out).await;
                linger_close(stream).await;
                return;
            }
        };
        let Some((used, keep_alive)) = step else {
            let mut chunk = [0u8; READ_CHUNK];
            let read = tokio::select! {
                r = tokio::time::timeout_at(deadline, stream.read(&mut chunk)) => r,
                _ = shutdown.changed() => return,
            };
            match read {
                Ok(Ok(n)) if n > 0 && buf.len() < REQUEST_HEAD_LEN_MAX + READ_CHUNK => {
                    buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                }
                _ => return,
            }
            continue;
        };
        if stream.write_all(&out).await.is_err() || !keep_alive || *shutdown.borrow() {
            return;
        }
        buf.drain(..used.min(buf.len()));
        deadline = tokio::time::Instant::now() + idle;
    }
}

/// Closes after an error answer without destroying it: unread request bytes at close would
/// make the kernel reset the connection, and a reset can overtake the answer. So: send FIN,
/// then read and drop what the client still sends, for a bounded time and amount.
async fn linger_close(mut stream: TcpStream) {
    const LINGER: Duration = Duration::from_secs(1);
    const DRAIN_MAX: usize = 64 * 1024;
    let _ = stream.shutdown().await;
    let mut chunk = [0u8; READ_CHUNK];
    let mut drained = 0;
    let deadline = tokio::time::Instant::now() + LINGER;
    while drained < DRAIN_MAX {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => drained += n,
            _ => return,
        }
    }
}

struct Buffers {
    body: Vec<u8>,
    scratch: Vec<u8>,
}

fn respond(
    head: &RequestHead<'_>,
    peer: SocketAddr,
    role: Role,
    shared: &Shared,
    rng: &mut SmallRng,
    bufs: &mut Buffers,
    out: &mut Vec<u8>,
) {
    let keep_alive = head.keep_alive;
    if head.method != b"GET" {
        plain(out, 405, b"only GET is served\n", keep_alive);
        return;
    }
    let body = &mut bufs.body;
    body.clear();
    let mut counts = LocalCounts::default();
    let content_type = match (role, head.path) {
        (Role::Tracker, b"/announce") => {
            let access = shared.access.get();
            let now_s = shared.clock.now_s();
            let t = &shared.tracker;
            counts.record(t.handle_http_announce(
                head.query,
                peer.ip(),
                now_s,
                &access,
                rng,
                body,
                &mut bufs.scratch,
            ));
            "text/plain"
        }
        (Role::Tracker, b"/scrape") => {
            counts.record(shared.tracker.handle_http_scrape(
                head.query,
                &shared.access.get(),
                body,
            ));
            "text/plain"
        }
        (Role::Metrics, b"/metrics") => {
            body.extend_from_slice(
                shared
                    .metrics
                    .render(&shared.tracker.table().stats())
                    .as_bytes(),
            );
            "text/plain; version=0.0.4"
        }
        (Role::Tracker, _) => {
            emit_failure(body, "not found: use /announce or /scrape");
            emit_response_head(out, 404, "text/plain", body.len(), keep_alive);
            out.extend_from_slice(body);
            return;
        }
        (Role::Metrics, _) => {
            plain(out, 404, b"not found: use /metrics\n", keep_alive);
            return;
        }
    };
    shared.metrics.http.publish(&mut counts);
    emit_response_head(out, 200, content_type, body.len(), keep_alive);
    out.extend_from_slice(body);
}

fn plain(out: &mut Vec<u8>, status: u16, text: &[u8], keep_alive: bool) {
    emit_response_head(out, status, "text/plain", text.len(), keep_alive);
    out.extend_from_slice(text);
}
