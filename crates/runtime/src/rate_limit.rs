//! Upload and download rate limits: token buckets for the session and for each torrent,
//! shared fairly between peer connections, changeable at run time, free when unset.
//!
//! # Design
//! - A [`Bucket`] is plain arithmetic over a `now` argument: tokens (bytes) refill at the
//!   limit's rate up to [`BURST`] worth of it, kept in nano-tokens so no fraction is lost.
//! - A [`RateLimiter`] puts a FIFO queue of waiters in front of a bucket. A connection asks
//!   for at most one *grant* ([`GRANTS_PER_SECOND`] per second of the rate, so a grant is
//!   small against a second) and waits its turn; when the head of the queue is served the
//!   next one is, so one fast peer cannot starve the others: with several connections
//!   waiting, grants go round-robin.
//! - A connection's [`Throttle`] chains its session's and its torrent's [`Limiters`]; the
//!   writer acquires upload tokens *before* writing and writes at most what it was granted;
//!   the reader reads at most one grant at a time and pays for what it read *before the next
//!   read* (so an idle connection holds no tokens), and while it waits the kernel's receive
//!   buffer fills and TCP pushes back on the sender.
//! - **Fast path**: with no limit set, a connection does one relaxed atomic load per socket
//!   read or write and nothing else: no lock, no bucket arithmetic, no timer.
//!
//! What is counted: every byte written to or read from a peer's socket after the handshake,
//! that is piece payload *and* protocol overhead (message headers, HAVE, REQUEST, ...), not
//! TCP/IP headers.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::Notify;

/// Upload and download limits in bytes per second; `None` means unlimited. The default is
/// unlimited both ways. A limit below [`RATE_MIN`] is raised to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// Most bytes per second written to peers.
    pub upload: Option<u64>,
    /// Most bytes per second read from peers.
    pub download: Option<u64>,
}

impl RateLimits {
    /// No limit either way.
    pub const UNLIMITED: Self = Self {
        upload: None,
        download: None,
    };
}

/// The smallest limit in bytes per second (a smaller one is raised to this).
pub const RATE_MIN: u64 = 1024;
/// Tokens a full bucket holds, as time at the limit's rate: the largest burst.
pub const BURST: Duration = Duration::from_millis(100);
/// A grant (what one connection may take in one turn) is this fraction of a second's rate.
pub const GRANTS_PER_SECOND: u64 = 50;
/// Smallest grant in bytes.
pub const GRANT_BYTES_MIN: u64 = 1024;
/// Largest grant in bytes.
pub const GRANT_BYTES_MAX: u64 = 64 << 10;
/// The smallest send queue of a connection under an upload limit, in bytes.
pub const SEND_BUFFER_LIMITED_MIN: usize = 64 << 10;
/// A waiter re-checks the queue at least this often (it is also woken on every change).
const WAIT_MAX: Duration = Duration::from_millis(250);
/// A waiter that is not served sleeps at least this long (never spins: the waiter ahead of
/// it must get to run).
const WAIT_MIN: Duration = Duration::from_millis(1);
/// Nano-tokens per token.
const SCALE: i128 = 1_000_000_000;

/// Token arithmetic at one rate, with time passed in: no clock, no waiting.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    /// Bytes per second; never 0.
    rate: u64,
    /// Nano-tokens; negative after a grant larger than what was there (a debt).
    tokens: i128,
    last: Instant,
}

impl Bucket {
    /// A full bucket at `rate` bytes per second (raised to [`RATE_MIN`]).
    pub(crate) fn new(rate: u64, now: Instant) -> Self {
        let rate = rate.max(RATE_MIN);
        Self {
            rate,
            tokens: capacity(rate),
            last: now,
        }
    }

    /// Adds the tokens earned since the last call, up to the capacity.
    pub(crate) fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = self.last.max(now);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let earned = i128::from(nanos) * i128::from(self.rate);
        self.tokens = (self.tokens + earned).min(capacity(self.rate));
    }

    /// Changes the rate from `now` on (tokens earned so far are kept, up to the new capacity).
    pub(crate) fn set_rate(&mut self, rate: u64, now: Instant) {
        self.refill(now);
        self.rate = rate.max(RATE_MIN);
        self.tokens = self.tokens.min(capacity(self.rate));
    }

    /// The largest grant at this rate.
    pub(crate) fn grant_max(&self) -> u64 {
        grant_max(self.rate)
    }

    /// Takes `amount` tokens if they are there (or the bucket is full: a grant larger than
    /// the capacity leaves a debt instead of never being served).
    pub(crate) fn try_take(&mut self, amount: u64) -> bool {
        let want = i128::from(amount) * SCALE;
        if self.tokens >= want || self.tokens >= capacity(self.rate) {
            self.tokens -= want;
            true
        } else {
            false
        }
    }

    /// Gives back tokens taken but not used.
    pub(crate) fn refund(&mut self, amount: u64) {
        self.tokens = (self.tokens + i128::from(amount) * SCALE).min(capacity(self.rate));
    }

    /// How long until `amount` tokens are there (zero if they are).
    pub(crate) fn time_until(&self, amount: u64) -> Duration {
        let want = (i128::from(amount) * SCALE).min(capacity(self.rate));
        let missing = want - self.tokens;
        if missing <= 0 {
            return Duration::ZERO;
        }
        let nanos = missing.div_euclid(i128::from(self.rate)) + 1;
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// One limit (one direction of the session or of a torrent): a bucket with a FIFO queue of
/// connections waiting for tokens.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    /// Bytes per second; 0 = unlimited (the fast path reads only this).
    rate: AtomicU64,
    state: Mutex<LimiterState>,
    /// Woken on a rate change and when a waiter leaves the queue early.
    changed: Notify,
}

#[derive(Debug)]
struct LimiterState {
    bucket: Option<Bucket>,
    /// Waiting connections in arrival order: (ticket, bytes asked).
    queue: VecDeque<(u64, u64)>,
    next_ticket: u64,
}

impl RateLimiter {
    pub(crate) fn new(rate: Option<u64>) -> Self {
        let limiter = Self {
            rate: AtomicU64::new(0),
            state: Mutex::new(LimiterState {
                bucket: None,
                queue: VecDeque::new(),
                next_ticket: 0,
            }),
            changed: Notify::new(),
        };
        limiter.set(rate, tokio::time::Instant::now().into_std());
        limiter
    }

    /// The limit in bytes per second, `None` when unlimited.
    pub(crate) fn get(&self) -> Option<u64> {
        Some(self.rate.load(Ordering::Relaxed)).filter(|&r| r != 0)
    }

    /// Whether a limit is set (the fast-path check).
    pub(crate) fn is_limited(&self) -> bool {
        self.rate.load(Ordering::Relaxed) != 0
    }

    /// The largest grant now (`usize::MAX` when unlimited).
    pub(crate) fn grant_max(&self) -> usize {
        match self.get() {
            Some(rate) => usize::try_from(grant_max(rate)).unwrap_or(usize::MAX),
            None => usize::MAX,
        }
    }

    /// Sets or removes the limit; waiting connections see it at once.
    pub(crate) fn set(&self, rate: Option<u64>, now: Instant) {
        {
            let mut state = self.lock();
            if let Some(rate) = rate {
                let rate = rate.max(RATE_MIN);
                match &mut state.bucket {
                    Some(bucket) => bucket.set_rate(rate, now),
                    None => state.bucket = Some(Bucket::new(rate, now)),
                }
                self.rate.store(rate, Ordering::Relaxed);
            } else {
                state.bucket = None;
                self.rate.store(0, Ordering::Relaxed);
            }
        }
        self.changed.notify_waiters();
    }

    /// Waits for this connection's turn and returns how many of the `want` bytes it may
    /// move now: all of them when unlimited, else at most one grant (at least 1 byte when
    /// `want` > 0).
    pub(crate) async fn acquire(&self, want: usize) -> usize {
        if want == 0 || !self.is_limited() {
            return want;
        }
        let mut waiter = Waiter {
            limiter: self,
            ticket: None,
        };
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let now = tokio::time::Instant::now();
            let pause = match waiter.poll(want, now.into_std()) {
                Ok(granted) => return granted,
                Err(until_ready) => until_ready.clamp(WAIT_MIN, WAIT_MAX),
            };
            tokio::select! {
                () = tokio::time::sleep_until(now + pause) => {}
                () = &mut changed => {}
            }
        }
    }

    /// Gives back `amount` tokens taken but not used.
    pub(crate) fn refund(&self, amount: usize) {
        if let Some(bucket) = &mut self.lock().bucket {
            bucket.refund(u64::try_from(amount).unwrap_or(u64::MAX));
        }
    }

    fn lock(&self) -> MutexGuard<'_, LimiterState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A connection's place in a limiter's queue; leaving early (the future is dropped) frees
/// the place and wakes the others.
struct Waiter<'a> {
    limiter: &'a RateLimiter,
    ticket: Option<u64>,
}

impl Waiter<'_> {
    /// Takes tokens if it is this waiter's turn and they are there; else how long to wait.
    fn poll(&mut self, want: usize, now: Instant) -> Result<usize, Duration> {
        let mut state = self.limiter.lock();
        let LimiterState {
            bucket,
            queue,
            next_ticket,
        } = &mut *state;
        let Some(bucket) = bucket else {
            // The limit was removed while waiting.
            if let Some(ticket) = self.ticket.take() {
                queue.retain(|&(t, _)| t != ticket);
            }
            return Ok(want);
        };
        bucket.refill(now);
        let amount = u64::try_from(want)
            .unwrap_or(u64::MAX)
            .min(bucket.grant_max());
        let ticket = match self.ticket {
            None if queue.is_empty() && bucket.try_take(amount) => {
                return Ok(usize::try_from(amount).unwrap_or(want));
            }
            None => {
                let ticket = *next_ticket;
                *next_ticket += 1;
                queue.push_back((ticket, amount));
                self.ticket = Some(ticket);
                ticket
            }
            Some(ticket) => {
                // The grant may have changed with the rate: ask for what is taken below.
                if let Some(entry) = queue.iter_mut().find(|(t, _)| *t == ticket) {
                    entry.1 = amount;
                }
                ticket
            }
        };
        if queue.front().is_some_and(|&(t, _)| t == ticket) && bucket.try_take(amount) {
            queue.pop_front();
            self.ticket = None;
            return Ok(usize::try_from(amount).unwrap_or(want));
        }
        // Tokens for everyone ahead and for this waiter.
        let mut ahead = 0u64;
        for &(t, asked) in queue.iter() {
            ahead = ahead.saturating_add(asked);
            if t == ticket {
                break;
            }
        }
        Err(bucket.time_until(ahead))
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.limiter.lock().queue.retain(|&(t, _)| t != ticket);
            self.limiter.changed.notify_waiters();
        }
    }
}

/// The upload and download limiters of one scope (the session, or one torrent), and the
/// scope's count of bytes handed to its connections' writers and written by them.
#[derive(Debug)]
pub(crate) struct Limiters {
    upload: RateLimiter,
    download: RateLimiter,
    /// Bytes handed to writers (monotonic).
    handed: AtomicU64,
    /// Bytes written to sockets, or dropped with their connection (monotonic).
    written: AtomicU64,
}

impl Limiters {
    pub(crate) fn new(limits: RateLimits) -> Arc<Self> {
        Arc::new(Self {
            upload: RateLimiter::new(limits.upload),
            download: RateLimiter::new(limits.download),
            handed: AtomicU64::new(0),
            written: AtomicU64::new(0),
        })
    }

    /// Waits (polling, bounded by `timeout`) until every byte handed to a writer before the
    /// call is written or its connection closed; `false` on timeout.
    pub(crate) async fn flushed(&self, timeout: Duration) -> bool {
        const POLL: Duration = Duration::from_millis(10);
        let target = self.handed.load(Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.written.load(Ordering::SeqCst) >= target {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Changes both limits at once (they take effect on open connections too).
    pub(crate) fn set(&self, limits: RateLimits) {
        let now = tokio::time::Instant::now().into_std();
        self.upload.set(limits.upload, now);
        self.download.set(limits.download, now);
    }

    /// The limits now.
    pub(crate) fn get(&self) -> RateLimits {
        RateLimits {
            upload: self.upload.get(),
            download: self.download.get(),
        }
    }
}

/// One connection's view of the limits it is under: its session's and its torrent's.
#[derive(Debug, Clone)]
pub(crate) struct Throttle {
    scopes: [Arc<Limiters>; 2],
}

impl Throttle {
    /// The limits of `session` and `torrent` together.
    pub(crate) fn new(session: Arc<Limiters>, torrent: Arc<Limiters>) -> Self {
        Self {
            scopes: [torrent, session],
        }
    }

    /// `n` bytes were handed to the writer (counted for the torrent).
    pub(crate) fn handed(&self, n: usize) {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        self.scopes[0].handed.fetch_add(n, Ordering::Relaxed);
    }

    /// `n` bytes were written to the socket, or dropped with the connection.
    pub(crate) fn written(&self, n: usize) {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        self.scopes[0].written.fetch_add(n, Ordering::Relaxed);
    }

    /// The most bytes worth queueing on one connection: `max` without an upload limit; with
    /// one, a quarter second of the tightest limit (at least [`SEND_BUFFER_LIMITED_MIN`]).
    /// More would only wait in the queue, delaying the small messages queued behind it
    /// (requests, haves).
    pub(crate) fn send_buffer_cap(&self, max: usize) -> usize {
        let tightest = self.scopes.iter().filter_map(|s| s.upload.get()).min();
        match tightest {
            None => max,
            Some(rate) => usize::try_from(rate / 4)
                .unwrap_or(usize::MAX)
                .max(SEND_BUFFER_LIMITED_MIN)
                .min(max),
        }
    }

    /// Whether any upload limit applies now (the fast-path check).
    pub(crate) fn upload_limited(&self) -> bool {
        self.scopes.iter().any(|s| s.upload.is_limited())
    }

    /// Whether any download limit applies now (the fast-path check).
    pub(crate) fn download_limited(&self) -> bool {
        self.scopes.iter().any(|s| s.download.is_limited())
    }

    /// The most bytes one read may take now (`usize::MAX` when unlimited).
    pub(crate) fn read_max(&self) -> usize {
        self.scopes
            .iter()
            .map(|s| s.download.grant_max())
            .min()
            .unwrap_or(usize::MAX)
    }

    /// Waits for upload tokens; returns how many of `want` bytes may be written now (> 0
    /// when `want` > 0).
    pub(crate) async fn acquire_upload(&self, want: usize) -> usize {
        let mut granted = want;
        for (i, scope) in self.scopes.iter().enumerate() {
            let got = scope.upload.acquire(granted).await;
            if got < granted {
                // Give the scopes before this one back what this one did not allow.
                for earlier in &self.scopes[..i] {
                    earlier.upload.refund(granted - got);
                }
            }
            granted = got;
        }
        granted
    }

    /// Pays for `n` bytes read, waiting for their tokens in turn with the other connections.
    pub(crate) async fn pay_download(&self, n: usize) {
        for scope in &self.scopes {
            let mut left = n;
            while left > 0 {
                let got = scope.download.acquire(left).await;
                left -= got.min(left);
            }
        }
    }
}

/// A writer's upload tokens: acquired before a write, spent by it, the rest kept for the
/// next one (a write may be partial).
#[derive(Debug)]
pub(crate) struct UploadCredit {
    throttle: Throttle,
    left: usize,
}

impl UploadCredit {
    pub(crate) fn new(throttle: Throttle) -> Self {
        Self { throttle, left: 0 }
    }

    /// How many of the `queued` bytes the next write may take (waiting for tokens when
    /// limited and no credit is left); `usize::MAX` when no limit applies.
    pub(crate) async fn allowance(&mut self, queued: usize) -> usize {
        if !self.throttle.upload_limited() {
            return usize::MAX;
        }
        if self.left == 0 {
            self.left = self.throttle.acquire_upload(queued).await;
        }
        self.left
    }

    /// `n` bytes were written.
    pub(crate) fn spent(&mut self, n: usize) {
        self.left = self.left.saturating_sub(n);
        self.throttle.written(n);
    }
}

/// A reader's side of the download limits: each read takes at most one grant, and is paid
/// for (waiting in turn with the other connections) before the next read.
#[derive(Debug)]
pub(crate) struct ReadThrottle {
    throttle: Throttle,
    /// Bytes of the last read not paid for yet.
    owed: usize,
}

impl ReadThrottle {
    pub(crate) fn new(throttle: Throttle) -> Self {
        Self { throttle, owed: 0 }
    }

    /// Pays for the previous read, then reads from `socket` into `buf` (no more than one
    /// grant when a download limit applies).
    pub(crate) async fn read<R: AsyncRead + Unpin>(
        &mut self,
        socket: &mut R,
        buf: &mut BytesMut,
    ) -> io::Result<usize> {
        let owed = std::mem::take(&mut self.owed);
        if !self.throttle.download_limited() {
            return socket.read_buf(buf).await;
        }
        self.throttle.pay_download(owed).await;
        let n = socket
            .read_buf(&mut buf.limit(self.throttle.read_max()))
            .await?;
        self.owed = n;
        Ok(n)
    }
}

/// Nano-tokens a full bucket at `rate` holds: [`BURST`] of it, at least one largest grant.
fn capacity(rate: u64) -> i128 {
    let burst = u128::from(rate) * BURST.as_nanos() / 1_000_000_000;
    let burst = u64::try_from(burst).unwrap_or(u64::MAX);
    i128::from(burst.max(grant_max(rate))) * SCALE
}

/// The largest grant at `rate`.
fn grant_max(rate: u64) -> u64 {
    (rate / GRANTS_PER_SECOND).clamp(GRANT_BYTES_MIN, GRANT_BYTES_MAX)
}

#[cfg(test)]
mod tests;
