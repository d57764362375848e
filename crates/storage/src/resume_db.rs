//! The session's resume database: one SQLite file for all torrents (WAL, `synchronous=NORMAL`),
//! holding each torrent's save path, its verified-piece bitfield and the file stamps taken when
//! that bitfield was saved. Saves are batched: one transaction per call, whatever the number of
//! pieces or torrents in it.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::bitfield::Bitfield;
use crate::checkpoint::{FileStamp, ResumeSnapshot};
use crate::error::{Result, StorageError};

/// How long a statement waits for another connection's lock before failing.
pub const DB_BUSY_TIMEOUT_MS: u64 = 5_000;

/// A SHA-1 (v1) info-hash, the key of every resume row.
pub type InfoHashV1 = [u8; 20];

/// One torrent known to the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorrentRecord {
    /// The torrent's info-hash.
    pub info_hash: InfoHashV1,
    /// Its download folder.
    pub save_path: PathBuf,
    /// When it was added, seconds since the Unix epoch (the caller's clock).
    pub added_at_unix: i64,
}

/// The resume database; share it as `Arc<ResumeDb>` (calls are serialised internally).
pub struct ResumeDb {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS torrents (
    info_hash BLOB PRIMARY KEY CHECK (length(info_hash) = 20),
    save_path BLOB NOT NULL,
    added_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pieces (
    info_hash   BLOB PRIMARY KEY REFERENCES torrents(info_hash) ON DELETE CASCADE,
    piece_count INTEGER NOT NULL,
    bitfield    BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    info_hash  BLOB NOT NULL REFERENCES torrents(info_hash) ON DELETE CASCADE,
    file_index INTEGER NOT NULL,
    size       INTEGER,
    mtime_ns   INTEGER,
    PRIMARY KEY (info_hash, file_index)
) WITHOUT ROWID;
PRAGMA user_version = 1;
";

impl ResumeDb {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        Self::setup(Connection::open(path)?)
    }

    /// An in-memory database, for tests and throw-away sessions.
    pub fn open_in_memory() -> Result<Self> {
        Self::setup(Connection::open_in_memory()?)
    }

    /// Adds a torrent, or updates its save path if it is already known (keeping its
    /// added time and resume data).
    pub fn add_torrent(&self, record: &TorrentRecord) -> Result<()> {
        self.lock().execute(
            "INSERT INTO torrents (info_hash, save_path, added_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (info_hash) DO UPDATE SET save_path = excluded.save_path",
            params![
                &record.info_hash[..],
                record.save_path.as_os_str().as_bytes(),
                record.added_at_unix
            ],
        )?;
        Ok(())
    }

    /// Forgets a torrent and its resume data.
    pub fn remove_torrent(&self, info_hash: &InfoHashV1) -> Result<()> {
        self.lock().execute(
            "DELETE FROM torrents WHERE info_hash = ?1",
            [&info_hash[..]],
        )?;
        Ok(())
    }

    /// Every known torrent, oldest first.
    pub fn torrents(&self) -> Result<Vec<TorrentRecord>> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT info_hash, save_path, added_at FROM torrents ORDER BY added_at, info_hash",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok((
                row.get::<_, Vec<u8>>(0)?,
                row.get::<_, Vec<u8>>(1)?,
                row.get(2)?,
            ))
        })?;
        rows.map(|row| {
            let (hash, path, added_at_unix) = row?;
            let info_hash =
                InfoHashV1::try_from(hash.as_slice()).map_err(|_| StorageError::CorruptResume {
                    what: "info-hash length",
                })?;
            Ok(TorrentRecord {
                info_hash,
                save_path: PathBuf::from(OsStr::from_bytes(&path)),
                added_at_unix,
            })
        })
        .collect()
    }

    /// Saves one torrent's snapshot in one transaction. The torrent must have been added.
    pub fn save(&self, info_hash: &InfoHashV1, snapshot: &ResumeSnapshot) -> Result<()> {
        self.save_many(&[(*info_hash, snapshot)])
    }

    /// Saves many torrents' snapshots in one transaction (all or none).
    pub fn save_many(&self, batch: &[(InfoHashV1, &ResumeSnapshot)]) -> Result<()> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        for (info_hash, snapshot) in batch {
            save_one(&tx, info_hash, snapshot)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The last saved snapshot of a torrent, `None` if none was saved.
    pub fn load(&self, info_hash: &InfoHashV1) -> Result<Option<ResumeSnapshot>> {
        let conn = self.lock();
        let row = conn
            .query_row(
                "SELECT piece_count, bitfield FROM pieces WHERE info_hash = ?1",
                [&info_hash[..]],
                |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?)),
            )
            .optional()?;
        let Some((count, blob)) = row else {
            return Ok(None);
        };
        let corrupt = |what| StorageError::CorruptResume { what };
        let count = u32::try_from(count).map_err(|_| corrupt("piece count"))?;
        let pieces = Bitfield::from_bytes(count, &blob).ok_or(corrupt("bitfield length"))?;
        let files = load_files(&conn, info_hash)?;
        Ok(Some(ResumeSnapshot { pieces, files }))
    }

    fn setup(conn: Connection) -> Result<Self> {
        conn.busy_timeout(Duration::from_millis(DB_BUSY_TIMEOUT_MS))?;
        // journal_mode answers with a row; in-memory databases answer "memory".
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl std::fmt::Debug for ResumeDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResumeDb").finish_non_exhaustive()
    }
}

fn save_one(tx: &Transaction<'_>, info_hash: &InfoHashV1, snapshot: &ResumeSnapshot) -> Result<()> {
    let key = &info_hash[..];
    tx.execute(
        "INSERT INTO pieces (info_hash, piece_count, bitfield) VALUES (?1, ?2, ?3)
         ON CONFLICT (info_hash) DO UPDATE
         SET piece_count = excluded.piece_count, bitfield = excluded.bitfield",
        params![key, snapshot.pieces.len(), snapshot.pieces.as_bytes()],
    )?;
    let mut upsert = tx.prepare_cached(
        "INSERT OR REPLACE INTO files (info_hash, file_index, size, mtime_ns)
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (index, stamp) in snapshot.files.iter().enumerate() {
        let size = stamp.map(|s| i64::try_from(s.size).unwrap_or(i64::MAX));
        let index = i64::try_from(index).unwrap_or(i64::MAX);
        upsert.execute(params![key, index, size, stamp.map(|s| s.mtime_ns)])?;
    }
    tx.execute(
        "DELETE FROM files WHERE info_hash = ?1 AND file_index >= ?2",
        params![key, i64::try_from(snapshot.files.len()).unwrap_or(i64::MAX)],
    )?;
    Ok(())
}

fn load_files(conn: &Connection, info_hash: &InfoHashV1) -> Result<Vec<Option<FileStamp>>> {
    let mut stmt = conn.prepare(
        "SELECT file_index, size, mtime_ns FROM files WHERE info_hash = ?1 ORDER BY file_index",
    )?;
    let rows = stmt.query_map([&info_hash[..]], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, Option<i64>>(1)?,
            row.get::<_, Option<i64>>(2)?,
        ))
    })?;
    let corrupt = |what| StorageError::CorruptResume { what };
    let mut files = Vec::new();
    for row in rows {
        let (index, size, mtime) = row?;
        if usize::try_from(index).ok() != Some(files.len()) {
            return Err(corrupt("file index gap"));
        }
        files.push(match (size, mtime) {
            (Some(size), Some(mtime_ns)) => Some(FileStamp {
                size: u64::try_from(size).map_err(|_| corrupt("negative file size"))?,
                mtime_ns,
            }),
            _ => None,
        });
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(byte: u8, added: i64) -> TorrentRecord {
        TorrentRecord {
            info_hash: [byte; 20],
            save_path: PathBuf::from(format!("/dl/{byte}")),
            added_at_unix: added,
        }
    }

    fn snapshot(pieces: &[u32], files: usize) -> ResumeSnapshot {
        let mut field = Bitfield::new(100);
        for &p in pieces {
            field.set(p, true);
        }
        let stamp = |i: usize| {
            (i % 2 == 0).then_some(FileStamp {
                size: i as u64,
                mtime_ns: -5,
            })
        };
        ResumeSnapshot {
            pieces: field,
            files: (0..files).map(stamp).collect(),
        }
    }

    #[test]
    fn round_trip_in_a_file_with_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resume.sqlite");
        let db = ResumeDb::open(&path).unwrap();
        let mode: String = db
            .lock()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        db.add_torrent(&record(2, 20)).unwrap();
        db.add_torrent(&record(1, 10)).unwrap();
        db.save_many(&[
            ([1; 20], &snapshot(&[0, 7, 99], 5)),
            ([2; 20], &snapshot(&[], 1)),
        ])
        .unwrap();
        drop(db);
        let db = ResumeDb::open(&path).unwrap();
        assert_eq!(db.torrents().unwrap(), vec![record(1, 10), record(2, 20)]);
        assert_eq!(db.load(&[1; 20]).unwrap(), Some(snapshot(&[0, 7, 99], 5)));
        db.save(&[1; 20], &snapshot(&[3], 2)).unwrap();
        assert_eq!(db.load(&[1; 20]).unwrap(), Some(snapshot(&[3], 2)));
        assert_eq!(db.load(&[9; 20]).unwrap(), None);
    }

    #[test]
    fn unknown_torrent_cannot_be_saved_and_removal_cascades() {
        let db = ResumeDb::open_in_memory().unwrap();
        assert!(matches!(
            db.save(&[3; 20], &snapshot(&[1], 1)),
            Err(StorageError::Database(_))
        ));
        db.add_torrent(&record(3, 0)).unwrap();
        db.save(&[3; 20], &snapshot(&[1], 1)).unwrap();
        db.remove_torrent(&[3; 20]).unwrap();
        assert_eq!(db.load(&[3; 20]).unwrap(), None);
        let files: i64 = db
            .lock()
            .query_row("SELECT count(*) FROM files", [], |r| r.get(0))
            .unwrap();
        assert_eq!(files, 0);
    }

    #[test]
    fn corrupt_blob_is_reported() {
        let db = ResumeDb::open_in_memory().unwrap();
        db.add_torrent(&record(4, 0)).unwrap();
        db.save(&[4; 20], &snapshot(&[1], 1)).unwrap();
        db.lock()
            .execute("UPDATE pieces SET bitfield = x'00'", [])
            .unwrap();
        assert!(matches!(
            db.load(&[4; 20]),
            Err(StorageError::CorruptResume { .. })
        ));
    }
}
