//! Resume state end to end: checkpoint (sync, then record), restart with the same files,
//! with a touched file, with a missing file, and after writes the record never saw.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bitswarm_storage::{
    CheckScope, DiskPool, Event, Job, MemoryBudget, PoolConfig, ResumeDb, Storage, TorrentRecord,
    WriteOutcome,
};
use common::Fixture;

const HASH: [u8; 20] = [0xAB; 20];
const WAIT: Duration = Duration::from_secs(20);

fn fixture() -> Fixture {
    // piece 100: a (250) pieces 0-2, b (300) pieces 2-5, c (90) pieces 5-6.
    Fixture::new(
        100,
        &[
            ("a", 250, false, true),
            ("b", 300, false, true),
            ("c", 90, false, true),
        ],
        31,
    )
}

fn write(fx: &Fixture, storage: &Storage, pieces: impl IntoIterator<Item = u32>) {
    let budget = MemoryBudget::new(1 << 20);
    for piece in pieces {
        let len = fx.layout.piece_len(piece);
        let outcome = storage
            .write_block(piece, 0, fx.block(piece, 0, len), &budget)
            .unwrap();
        assert!(matches!(outcome, WriteOutcome::PieceVerified));
    }
}

fn db_with_torrent(fx: &Fixture) -> Arc<ResumeDb> {
    let db = ResumeDb::open(&fx.root().join("session.sqlite")).unwrap();
    let record = TorrentRecord {
        info_hash: HASH,
        save_path: fx.root().to_path_buf(),
        added_at_unix: 1_700_000_000,
    };
    db.add_torrent(&record).unwrap();
    Arc::new(db)
}

/// Checkpoints through the pool (sync, then save) and returns the saved piece count.
fn checkpoint(storage: &Arc<Storage>, db: &Arc<ResumeDb>) -> u32 {
    let (pool, completions) = DiskPool::new(&PoolConfig::default(), None).unwrap();
    let job = Job::Checkpoint {
        storage: Arc::clone(storage),
        db: Some((Arc::clone(db), HASH)),
    };
    pool.submit(job).unwrap();
    let Event::Checkpointed { result } = completions.recv_timeout(WAIT).unwrap().event else {
        panic!()
    };
    result.unwrap().pieces.count_ones()
}

fn restart(fx: &Fixture) -> (Arc<Storage>, bitswarm_storage::ResumeVerdict) {
    let db = ResumeDb::open(&fx.root().join("session.sqlite")).unwrap();
    assert_eq!(db.torrents().unwrap()[0].save_path, fx.root());
    let saved = db.load(&HASH).unwrap().expect("a saved record");
    let storage = fx.storage();
    let verdict = storage.restore(&saved).unwrap();
    assert_eq!(storage.verified(), verdict.trusted);
    (storage, verdict)
}

fn touch(path: &std::path::Path) {
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000))
        .unwrap();
}

#[test]
fn round_trip_trusts_everything() {
    let fx = fixture();
    let storage = fx.storage();
    let db = db_with_torrent(&fx);
    write(&fx, &storage, [6, 0, 3, 1, 5, 2, 4]);
    assert_eq!(checkpoint(&storage, &db), 7);
    drop(db);
    let (_, verdict) = restart(&fx);
    assert!(verdict.trusted.is_full());
    assert!(verdict.recheck.is_empty());
}

#[test]
fn touched_file_sends_only_its_pieces_to_recheck() {
    let fx = fixture();
    let storage = fx.storage();
    let db = db_with_torrent(&fx);
    write(&fx, &storage, 0..7);
    checkpoint(&storage, &db);
    drop(db);
    touch(&fx.root().join("b")); // same size, different mtime
    let (storage, verdict) = restart(&fx);
    assert_eq!(verdict.recheck, vec![2, 3, 4, 5]);
    assert_eq!(
        verdict.trusted.iter_ones().collect::<Vec<_>>(),
        vec![0, 1, 6]
    );
    // The data is in fact intact: a check of just those pieces restores them.
    let (pool, completions) = DiskPool::new(&PoolConfig::default(), None).unwrap();
    let scope = CheckScope::Pieces(verdict.recheck.clone());
    pool.submit(Job::Check {
        storage: Arc::clone(&storage),
        scope,
        progress: None,
    })
    .unwrap();
    let Event::CheckDone { checked, verified } = completions.recv_timeout(WAIT).unwrap().event
    else {
        panic!()
    };
    assert_eq!(checked, 4);
    assert!(verified.is_full());
}

#[test]
fn missing_file_drops_its_pieces() {
    let fx = fixture();
    let storage = fx.storage();
    let db = db_with_torrent(&fx);
    write(&fx, &storage, 0..7);
    checkpoint(&storage, &db);
    std::fs::remove_file(fx.root().join("c")).unwrap();
    let (storage, verdict) = restart(&fx);
    assert_eq!(verdict.recheck, vec![5, 6]);
    assert!(!storage.check_piece(5).unwrap() && !storage.check_piece(6).unwrap());
}

#[test]
fn record_never_claims_pieces_written_after_the_checkpoint() {
    let fx = fixture();
    let storage = fx.storage();
    let db = db_with_torrent(&fx);
    write(&fx, &storage, [0, 1]);
    assert_eq!(checkpoint(&storage, &db), 2);
    // More pieces land after the checkpoint; then the process "crashes" (no checkpoint).
    write(&fx, &storage, [2, 6]);
    touch(&fx.root().join("a")); // the later write to a shows as a newer mtime
    let (_, verdict) = restart(&fx);
    assert_eq!(
        verdict.trusted.count_ones(),
        0,
        "both saved pieces live in the touched file a"
    );
    assert_eq!(verdict.recheck, vec![0, 1]);
    let saved = ResumeDb::open(&fx.root().join("session.sqlite"))
        .unwrap()
        .load(&HASH)
        .unwrap()
        .unwrap();
    assert_eq!(saved.pieces.iter_ones().collect::<Vec<_>>(), vec![0, 1]);
}

#[test]
fn checkpoint_without_writes_is_cheap_and_stable() {
    let fx = fixture();
    let storage = fx.storage();
    let db = db_with_torrent(&fx);
    assert_eq!(checkpoint(&storage, &db), 0);
    let saved = db.load(&HASH).unwrap().unwrap();
    assert_eq!(saved.files, vec![None, None, None], "nothing created");
    let (_, verdict) = restart(&fx);
    assert_eq!(
        (verdict.trusted.count_ones(), verdict.recheck.len()),
        (0, 0)
    );
}
