//! Tests of the token bucket arithmetic (plain, with proptest) and of the fair queue in front
//! of it (tokio's paused clock, so rates are exact and the tests take no real time).

use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

const MIB: u64 = 1 << 20;

#[test]
fn bucket_starts_full_and_refills_at_its_rate() {
    let t0 = Instant::now();
    let mut b = Bucket::new(MIB, t0);
    // 100 ms of 1 MiB/s is 104,857 bytes.
    assert!(b.try_take(104_857));
    assert!(!b.try_take(1024));
    assert_eq!(
        b.time_until(1024),
        Duration::from_nanos(1024 * 1_000_000_000 / MIB + 1)
    );
    b.refill(t0 + Duration::from_millis(10));
    // 10 ms earn 10,485.76 bytes: the fraction is kept for later.
    assert!(b.try_take(10_485));
    assert!(!b.try_take(1));
    b.refill(t0 + Duration::from_millis(20));
    assert!(b.try_take(10_486));
}

#[test]
fn bucket_never_holds_more_than_its_burst() {
    let t0 = Instant::now();
    let mut b = Bucket::new(MIB, t0);
    b.refill(t0 + Duration::from_secs(3600));
    assert!(b.try_take(104_857));
    assert!(
        !b.try_take(1024),
        "an hour idle does not buy more than 100 ms"
    );
}

#[test]
fn tiny_rates_are_raised_and_grants_bounded() {
    let t0 = Instant::now();
    let b = Bucket::new(0, t0);
    assert_eq!(b.rate, RATE_MIN);
    assert_eq!(b.grant_max(), GRANT_BYTES_MIN);
    assert_eq!(grant_max(u64::MAX), GRANT_BYTES_MAX);
    assert_eq!(grant_max(MIB), MIB / GRANTS_PER_SECOND);
}

#[test]
fn a_grant_larger_than_the_bucket_leaves_a_debt() {
    let t0 = Instant::now();
    let mut b = Bucket::new(RATE_MIN, t0);
    // Capacity is one grant (1 KiB) at this rate; 4 KiB is served from a full bucket.
    assert!(b.try_take(4096));
    assert!(!b.try_take(1));
    b.refill(t0 + Duration::from_secs(3));
    assert!(!b.try_take(1024), "3 s pay 3 KiB of the 3 KiB debt only");
    b.refill(t0 + Duration::from_secs(4));
    assert!(b.try_take(1024));
}

#[test]
fn rate_change_keeps_earned_tokens_within_the_new_capacity() {
    let t0 = Instant::now();
    let mut b = Bucket::new(10 * MIB, t0);
    b.set_rate(MIB, t0);
    assert!(b.try_take(104_857));
    assert!(!b.try_take(1024));
}

proptest! {
    /// Whatever the pattern of takes, nothing more than the burst plus the rate times the
    /// elapsed time (plus one debt of at most a grant) is ever handed out.
    #[test]
    fn bucket_hands_out_no_more_than_rate_allows(
        rate in RATE_MIN..(64 * MIB),
        steps in proptest::collection::vec((0u64..50_000_000, 1u64..200_000), 1..200),
    ) {
        let t0 = Instant::now();
        let mut b = Bucket::new(rate, t0);
        let mut now = t0;
        let mut taken: u128 = 0;
        for (advance_ns, amount) in steps {
            now += Duration::from_nanos(advance_ns);
            b.refill(now);
            let amount = amount.min(b.grant_max());
            if b.try_take(amount) {
                taken += u128::from(amount);
            }
        }
        let elapsed = now.duration_since(t0).as_nanos();
        let allowed = u128::try_from(capacity(rate)).unwrap() / 1_000_000_000
            + u128::from(rate) * elapsed / 1_000_000_000
            + u128::from(grant_max(rate))
            + 1;
        prop_assert!(taken <= allowed, "taken {taken} > allowed {allowed}");
    }
}

/// Paused time: the limiter moves `total` bytes in grants for one connection.
async fn drain(limiter: &RateLimiter, total: usize) {
    let mut left = total;
    while left > 0 {
        left -= limiter.acquire(left).await;
    }
}

#[tokio::test(start_paused = true)]
async fn one_connection_gets_the_limit() {
    let limiter = RateLimiter::new(Some(MIB));
    let start = tokio::time::Instant::now();
    // 10 MiB plus the initial 100 ms burst.
    drain(&limiter, 10 * MIB as usize + 104_857).await;
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(9_990) && took <= Duration::from_millis(10_030),
        "took {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn unlimited_grants_everything_at_once() {
    let limiter = RateLimiter::new(None);
    assert_eq!(limiter.acquire(usize::MAX).await, usize::MAX);
    assert_eq!(limiter.grant_max(), usize::MAX);
}

/// Connections asking all the time share the limit evenly: grants go round-robin.
#[tokio::test(start_paused = true)]
async fn waiting_connections_are_served_in_turn() {
    let limiter = Arc::new(RateLimiter::new(Some(MIB)));
    let counts: Arc<[AtomicUsize; 3]> = Arc::new(Default::default());
    let mut tasks = Vec::new();
    for i in 0..3 {
        let limiter = Arc::clone(&limiter);
        let counts = Arc::clone(&counts);
        // Connection 0 asks for 64 KiB a time, the others for 4 KiB: it still gets no more.
        let want = if i == 0 { 64 << 10 } else { 4 << 10 };
        tasks.push(tokio::spawn(async move {
            loop {
                let got = limiter.acquire(want).await;
                counts[i].fetch_add(got, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    for task in &tasks {
        task.abort();
    }
    let got: Vec<usize> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let total: usize = got.iter().sum();
    let expected = 10 * MIB as usize;
    assert!(total.abs_diff(expected) < expected / 50, "total {total}");
    // Connection 0 got grants of 20 KiB (the 1 MiB/s grant), the others 4 KiB each: in turn,
    // so 20:4:4 — the small askers are not starved by the big one.
    #[allow(clippy::cast_precision_loss)] // small counts
    let ratio = got[0] as f64 / got[1] as f64;
    assert!((4.5..5.5).contains(&ratio), "got {got:?}");
    assert!(got[1].abs_diff(got[2]) <= 8 << 10, "got {got:?}");
}

#[tokio::test(start_paused = true)]
async fn a_rate_change_applies_to_waiting_connections() {
    let limiter = Arc::new(RateLimiter::new(Some(RATE_MIN)));
    let waiter = {
        let limiter = Arc::clone(&limiter);
        tokio::spawn(async move { drain(&limiter, 4 * MIB as usize).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!waiter.is_finished());
    let changed = tokio::time::Instant::now();
    limiter.set(Some(4 * MIB), changed.into_std());
    waiter.await.unwrap();
    let took = changed.elapsed();
    assert!(took <= Duration::from_millis(1_020), "took {took:?}");

    // Removing the limit frees a waiter at once.
    limiter.set(Some(RATE_MIN), tokio::time::Instant::now().into_std());
    let waiter = {
        let limiter = Arc::clone(&limiter);
        tokio::spawn(async move { drain(&limiter, 64 * MIB as usize).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let freed = tokio::time::Instant::now();
    limiter.set(None, freed.into_std());
    waiter.await.unwrap();
    assert_eq!(freed.elapsed(), Duration::ZERO);
    assert!(limiter.lock().queue.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_waiter_that_gives_up_leaves_the_queue() {
    let limiter = Arc::new(RateLimiter::new(Some(RATE_MIN)));
    limiter.acquire(1024).await; // empty the bucket
    let gives_up = {
        let limiter = Arc::clone(&limiter);
        tokio::spawn(async move { limiter.acquire(1024).await })
    };
    tokio::task::yield_now().await;
    assert_eq!(limiter.lock().queue.len(), 1);
    gives_up.abort();
    let _ = gives_up.await;
    assert!(limiter.lock().queue.is_empty());
    // The next one is served when the tokens are there, not blocked behind a ghost.
    let start = tokio::time::Instant::now();
    limiter.acquire(1024).await;
    assert!(start.elapsed() <= Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn throttle_is_under_the_tighter_of_session_and_torrent() {
    let session = Limiters::new(RateLimits {
        upload: Some(2 * MIB),
        download: None,
    });
    let torrent = Limiters::new(RateLimits {
        upload: Some(MIB),
        download: Some(MIB / 2),
    });
    let throttle = Throttle::new(Arc::clone(&session), Arc::clone(&torrent));
    assert!(throttle.upload_limited() && throttle.download_limited());
    // A quarter second of the tighter upload limit is queued per connection at most.
    assert_eq!(throttle.send_buffer_cap(4 << 20), (MIB / 4) as usize);
    assert_eq!(throttle.send_buffer_cap(100 << 10), 100 << 10);
    assert_eq!(throttle.read_max(), (MIB / 2 / GRANTS_PER_SECOND) as usize);

    let start = tokio::time::Instant::now();
    let mut credit = UploadCredit::new(throttle.clone());
    let mut sent = 0;
    while sent < 5 * MIB as usize {
        let n = credit.allowance(usize::MAX).await.min(16 << 10);
        credit.spent(n);
        sent += n;
    }
    // 5 MiB at the torrent's 1 MiB/s, less its 100 ms burst.
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(4_850) && took <= Duration::from_millis(4_950),
        "took {took:?}"
    );

    let start = tokio::time::Instant::now();
    throttle.pay_download(MIB as usize).await;
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1_850) && took <= Duration::from_millis(1_950),
        "took {took:?}"
    );

    torrent.set(RateLimits::UNLIMITED);
    session.set(RateLimits::UNLIMITED);
    assert!(!throttle.upload_limited() && !throttle.download_limited());
    assert_eq!(throttle.send_buffer_cap(4 << 20), 4 << 20);
    assert_eq!(credit.allowance(7).await, usize::MAX);
    assert_eq!(torrent.get(), RateLimits::UNLIMITED);
}
