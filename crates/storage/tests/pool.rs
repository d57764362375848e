//! The disk pool end to end: writes and reads through the queue, completions and the wake-up
//! callback, rechecks with progress, and the queue bound.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use bitswarm_storage::{
    CheckProgress, CheckScope, Completion, Completions, DiskPool, Event, Job, PoolConfig, Storage,
    StorageError,
};
use common::{shuffled, Fixture};

/// Every wait in these tests gives up after this long, so a lost completion fails instead of
/// hanging.
const WAIT: Duration = Duration::from_secs(20);

fn next(completions: &Completions) -> Completion {
    completions
        .recv_timeout(WAIT)
        .expect("no completion within the time bound")
}

fn fixture() -> Fixture {
    let files = [
        ("a", 3000, false, true),
        ("pad", 72, true, true),
        ("dir/b", 5000, false, true),
        ("c", 1, false, true),
    ];
    Fixture::new(1024, &files, 21)
}

/// Writes all pieces through the pool in shuffled 256-byte blocks; returns `PieceDone` results.
fn download(
    fx: &Fixture,
    storage: &Arc<Storage>,
    pool: &DiskPool,
    completions: &Completions,
    pieces: &[u32],
) -> Vec<(u32, bool)> {
    let jobs: Vec<_> = pieces
        .iter()
        .flat_map(|&p| fx.blocks(p, 256).into_iter().map(move |(o, b)| (p, o, b)))
        .collect();
    for (piece, offset, data) in shuffled(jobs, 22) {
        let job = Job::Write {
            storage: Arc::clone(storage),
            piece,
            offset,
            data,
        };
        pool.submit(job).unwrap();
    }
    let mut results: Vec<(u32, bool)> = (0..pieces.len())
        .map(|_| match next(completions).event {
            Event::PieceDone { piece, result } => (piece, result.is_ok()),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    results.sort_unstable();
    results
}

#[test]
fn writes_reads_and_wakeups_through_the_pool() {
    let fx = fixture();
    let storage = fx.storage();
    let wakeups = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&wakeups);
    let notify = Box::new(move || {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    let (pool, completions) = DiskPool::new(&PoolConfig::default(), Some(notify)).unwrap();
    let count = fx.layout.piece_count();
    let results = download(
        &fx,
        &storage,
        &pool,
        &completions,
        &(0..count).collect::<Vec<_>>(),
    );
    assert_eq!(results, (0..count).map(|p| (p, true)).collect::<Vec<_>>());
    assert_eq!(wakeups.load(Ordering::Relaxed), count as usize);
    for piece in 0..count {
        let len = fx.layout.piece_len(piece);
        let job = Job::Read {
            storage: Arc::clone(&storage),
            piece,
            offset: 0,
            len,
            tag: u64::from(piece) + 100,
        };
        pool.try_submit(job).unwrap();
        let Event::Read { tag, result, .. } = next(&completions).event else {
            panic!()
        };
        assert_eq!(tag, u64::from(piece) + 100);
        assert_eq!(result.unwrap(), fx.block(piece, 0, len));
    }
    assert_eq!(pool.budget().used(), 0);
}

#[test]
fn bad_block_is_reported_as_write_failed() {
    let fx = fixture();
    let storage = fx.storage();
    let (pool, completions) = DiskPool::new(&PoolConfig::default(), None).unwrap();
    let job = Job::Write {
        storage,
        piece: 99,
        offset: 0,
        data: fx.block(0, 0, 4),
    };
    pool.submit(job).unwrap();
    let Event::WriteFailed {
        piece: 99, error, ..
    } = next(&completions).event
    else {
        panic!()
    };
    assert!(matches!(error, StorageError::PieceOutOfRange { .. }));
}

#[test]
fn full_recheck_finds_exactly_the_good_pieces() {
    let fx = fixture();
    let storage = fx.storage();
    let config = PoolConfig {
        check_chunk_bytes: 2048,
        ..PoolConfig::default()
    };
    let (pool, completions) = DiskPool::new(&config, None).unwrap();
    let count = fx.layout.piece_count();
    // Download all but pieces 1 and 6, then damage piece 4 on disk behind storage's back.
    let have: Vec<u32> = (0..count).filter(|p| ![1, 6].contains(p)).collect();
    download(&fx, &storage, &pool, &completions, &have);
    let b = std::fs::OpenOptions::new()
        .write(true)
        .open(fx.root().join("dir/b"))
        .unwrap();
    // Piece 4 is stream bytes 4096..5120; b starts at 3072.
    std::os::unix::fs::FileExt::write_all_at(&b, b"XX", 4096 - 3072 + 10).unwrap();

    let fresh = fx.storage(); // a new session: nothing known
    let seen = Arc::new(Mutex::new(Vec::<CheckProgress>::new()));
    let sink = Arc::clone(&seen);
    let progress = Box::new(move |p: CheckProgress| sink.lock().unwrap().push(p));
    pool.submit(Job::Check {
        storage: Arc::clone(&fresh),
        scope: CheckScope::All,
        progress: Some(progress),
    })
    .unwrap();
    let Event::CheckDone { checked, verified } = next(&completions).event else {
        panic!()
    };
    let expect: Vec<u32> = have.iter().copied().filter(|&p| p != 4).collect();
    assert_eq!(checked, count);
    assert_eq!(verified.iter_ones().collect::<Vec<_>>(), expect);
    assert_eq!(fresh.verified(), verified);
    let seen = seen.lock().unwrap();
    assert!(
        seen.len() >= (count / 2) as usize,
        "one report per 2-piece chunk"
    );
    let last = seen.iter().max_by_key(|p| p.checked).unwrap();
    assert_eq!(
        (last.checked, last.total, last.found),
        (count, count, expect.len() as u32)
    );
}

#[test]
fn queue_bound_returns_busy_and_hands_the_job_back() {
    let fx = fixture();
    let storage = fx.storage();
    let config = PoolConfig {
        disk_threads: 1,
        job_queue_len_max: 3,
        ..PoolConfig::default()
    };
    let (pool, completions) = DiskPool::new(&config, None).unwrap();
    // Hold the only disk thread inside a check's progress callback until we release it.
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let progress = Box::new(move |_: CheckProgress| {
        let _ = entered_tx.send(());
        let _ = release_rx.lock().unwrap().recv_timeout(WAIT);
    });
    let check = Job::Check {
        storage: Arc::clone(&storage),
        scope: CheckScope::Pieces(vec![0]),
        progress: Some(progress),
    };
    pool.submit(check).unwrap();
    entered_rx.recv_timeout(WAIT).unwrap();
    let read = |tag| Job::Read {
        storage: Arc::clone(&storage),
        piece: 0,
        offset: 0,
        len: 8,
        tag,
    };
    for tag in 0..3 {
        pool.try_submit(read(tag)).unwrap();
    }
    assert_eq!(pool.queued(), 3);
    let rejected = pool.try_submit(read(3)).unwrap_err();
    assert!(matches!(rejected.error, StorageError::Busy));
    assert!(matches!(rejected.job, Job::Read { tag: 3, .. }));
    release_tx.send(()).unwrap();
    assert!(matches!(
        next(&completions).event,
        Event::CheckDone { checked: 1, .. }
    ));
    pool.try_submit(rejected.job).unwrap();
    let tags: Vec<u64> = (0..4)
        .map(|_| match next(&completions).event {
            Event::Read { tag, .. } => tag,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(tags, vec![0, 1, 2, 3], "one thread answers in queue order");
}

#[test]
fn jobs_are_served_between_check_chunks() {
    let fx = fixture();
    let storage = fx.storage();
    let config = PoolConfig {
        disk_threads: 1,
        check_chunk_bytes: 1024,
        ..PoolConfig::default()
    };
    let (pool, completions) = DiskPool::new(&config, None).unwrap();
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let progress = Box::new(move |p: CheckProgress| {
        if p.checked == 1 {
            let _ = entered_tx.send(());
            let _ = release_rx.lock().unwrap().recv_timeout(WAIT);
        }
    });
    let check = Job::Check {
        storage: Arc::clone(&storage),
        scope: CheckScope::All,
        progress: Some(progress),
    };
    pool.submit(check).unwrap();
    entered_rx.recv_timeout(WAIT).unwrap();
    pool.submit(Job::Verify {
        storage: Arc::clone(&storage),
        piece: 0,
    })
    .unwrap();
    release_tx.send(()).unwrap();
    // The verify (queued after chunk 1 started) completes before the 9-chunk check does.
    assert!(matches!(
        next(&completions).event,
        Event::PieceDone { piece: 0, .. }
    ));
    assert!(matches!(next(&completions).event, Event::CheckDone { .. }));
}

#[test]
fn dropping_the_pool_finishes_queued_jobs() {
    let fx = fixture();
    let storage = fx.storage();
    let (pool, completions) = DiskPool::new(&PoolConfig::default(), None).unwrap();
    for piece in 0..fx.layout.piece_count() {
        let len = fx.layout.piece_len(piece);
        pool.submit(Job::Write {
            storage: Arc::clone(&storage),
            piece,
            offset: 0,
            data: fx.block(piece, 0, len),
        })
        .unwrap();
    }
    let started = Instant::now();
    drop(pool);
    assert!(started.elapsed() < WAIT);
    let done = completions
        .drain()
        .filter(|c| matches!(c.event, Event::PieceDone { result: Ok(()), .. }))
        .count();
    assert_eq!(done, fx.layout.piece_count() as usize);
    assert!(completions
        .recv_timeout(Duration::from_millis(10))
        .is_none());
}
