//! The routing table and our node id, kept in SQLite so that a restarted node is back in the
//! DHT within seconds, from the nodes it knew, instead of a full bootstrap from the routers.
//!
//! The tables live in the same database file as the torrents' resume state (the CLI's
//! `--state`); `bitswarm-storage` opens that file in WAL mode, so this second connection only
//! waits (up to [`DB_BUSY_TIMEOUT_MS`]) when both write at the same instant.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bitswarm_dht::NodeId;
use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{DhtNodeError, Result};

/// How long a statement waits for another connection's lock before failing.
pub const DB_BUSY_TIMEOUT_MS: u64 = 5_000;
/// Most nodes kept in the database (the newest by `last_seen`).
pub const NODES_SAVED_MAX: usize = 1_000;
/// [`NODES_SAVED_MAX`] as SQLite's integer.
const NODES_SAVED_MAX_SQL: i64 = 1_000;
/// Nodes not seen for this long are forgotten at the next save (7 days).
pub const NODE_AGE_MAX_SECS: i64 = 7 * 24 * 3600;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS dht_nodes (
    id        BLOB NOT NULL CHECK (length(id) = 20),
    addr      TEXT PRIMARY KEY,
    last_seen INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dht_state (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
";

/// What a node saves and finds again at its next start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavedState {
    /// Our node id.
    pub node_id: Option<NodeId>,
    /// Our external address as last voted by other nodes (BEP 42 decides whether `node_id`
    /// still fits it).
    pub external_ip: Option<IpAddr>,
    /// Routing-table entries, newest first.
    pub nodes: Vec<(NodeId, SocketAddr)>,
}

/// The DHT tables of one state database.
pub struct NodeStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl NodeStore {
    /// Opens (creating if needed) the database at `path` and its DHT tables.
    pub fn open(path: &Path) -> Result<Self> {
        let err = store_error(path);
        let conn = Connection::open(path).map_err(&err)?;
        conn.busy_timeout(Duration::from_millis(DB_BUSY_TIMEOUT_MS))
            .map_err(&err)?;
        // journal_mode answers with a row. WAL, as the resume database has it, so readers and
        // the other connection do not block each other.
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .map_err(&err)?;
        conn.execute_batch(SCHEMA).map_err(&err)?;
        Ok(Self {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    /// The database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads what was saved. Rows that do not parse (a wrong id length, an address that is not
    /// `IP:PORT`) are skipped: a damaged row costs one node, not the start.
    pub fn load(&self) -> Result<SavedState> {
        let err = store_error(&self.path);
        let conn = self.lock();
        let node_id = read_state(&conn, "node_id")
            .map_err(&err)?
            .and_then(|v| NodeId::from_slice(&v));
        let external_ip = read_state(&conn, "external_ip")
            .map_err(&err)?
            .and_then(|v| String::from_utf8(v).ok())
            .and_then(|s| s.parse().ok());
        let mut stmt = conn
            .prepare("SELECT id, addr FROM dht_nodes ORDER BY last_seen DESC LIMIT ?1")
            .map_err(&err)?;
        let rows = stmt
            .query_map([NODES_SAVED_MAX_SQL], |row| {
                Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(&err)?;
        let mut nodes = Vec::new();
        for row in rows {
            let (id, addr) = row.map_err(&err)?;
            if let (Some(id), Ok(addr)) = (NodeId::from_slice(&id), addr.parse()) {
                nodes.push((id, addr));
            }
        }
        Ok(SavedState {
            node_id,
            external_ip,
            nodes,
        })
    }

    /// Records our id, external address and current table entries (seen at `now_unix`), in
    /// one transaction. Entries saved before and absent now are kept until they are
    /// [`NODE_AGE_MAX_SECS`] old, and at most [`NODES_SAVED_MAX`] rows stay: an offline run
    /// with an empty table does not wipe what the last good run learnt.
    pub fn save(&self, state: &SavedState, now_unix: i64) -> Result<()> {
        let err = store_error(&self.path);
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(&err)?;
        if let Some(id) = state.node_id {
            write_state(&tx, "node_id", &id.0).map_err(&err)?;
        }
        if let Some(ip) = state.external_ip {
            write_state(&tx, "external_ip", ip.to_string().as_bytes()).map_err(&err)?;
        }
        {
            let mut insert = tx
                .prepare(
                    "INSERT INTO dht_nodes (id, addr, last_seen) VALUES (?1, ?2, ?3)
                     ON CONFLICT (addr) DO UPDATE SET id = excluded.id,
                                                      last_seen = excluded.last_seen",
                )
                .map_err(&err)?;
            for (id, addr) in state.nodes.iter().take(NODES_SAVED_MAX) {
                insert
                    .execute(params![&id.0[..], addr.to_string(), now_unix])
                    .map_err(&err)?;
            }
        }
        tx.execute(
            "DELETE FROM dht_nodes WHERE last_seen < ?1",
            [now_unix.saturating_sub(NODE_AGE_MAX_SECS)],
        )
        .map_err(&err)?;
        tx.execute(
            "DELETE FROM dht_nodes WHERE addr NOT IN
                 (SELECT addr FROM dht_nodes ORDER BY last_seen DESC LIMIT ?1)",
            [NODES_SAVED_MAX_SQL],
        )
        .map_err(&err)?;
        tx.commit().map_err(&err)
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn store_error(path: &Path) -> impl Fn(rusqlite::Error) -> DhtNodeError + '_ {
    move |source| DhtNodeError::Store {
        path: path.to_path_buf(),
        source,
    }
}

fn read_state(conn: &Connection, key: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.query_row("SELECT value FROM dht_state WHERE key = ?1", [key], |r| {
        r.get(0)
    })
    .optional()
}

fn write_state(conn: &Connection, key: &str, value: &[u8]) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO dht_state (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(n: u8, port: u16) -> (NodeId, SocketAddr) {
        (NodeId([n; 20]), SocketAddr::from(([10, 0, 0, n], port)))
    }

    #[test]
    fn saves_and_loads_id_ip_and_nodes_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = NodeStore::open(&dir.path().join("state.sqlite")).unwrap();
        assert_eq!(store.load().unwrap(), SavedState::default());
        let old = SavedState {
            node_id: Some(NodeId([7; 20])),
            external_ip: Some("203.0.113.5".parse().unwrap()),
            nodes: vec![node(1, 1001), node(2, 1002)],
        };
        store.save(&old, 1_000).unwrap();
        let new = SavedState {
            nodes: vec![node(3, 1003)],
            ..old.clone()
        };
        store.save(&new, 2_000).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.node_id, old.node_id);
        assert_eq!(loaded.external_ip, old.external_ip);
        assert_eq!(loaded.nodes[0], node(3, 1003), "newest first");
        assert_eq!(loaded.nodes.len(), 3, "older entries are kept: {loaded:?}");
    }

    #[test]
    fn forgets_old_nodes_and_bounds_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let store = NodeStore::open(&dir.path().join("state.sqlite")).unwrap();
        store
            .save(
                &SavedState {
                    nodes: vec![node(1, 1)],
                    ..SavedState::default()
                },
                0,
            )
            .unwrap();
        let many: Vec<_> = (0..NODES_SAVED_MAX + 50)
            .map(|i| {
                let i = u32::try_from(i).unwrap();
                let [a, b, c, d] = (0x0a00_0000 + i).to_be_bytes();
                (NodeId([d; 20]), SocketAddr::from(([a, b, c, d], 6881)))
            })
            .collect();
        let state = SavedState {
            nodes: many,
            ..SavedState::default()
        };
        store.save(&state, NODE_AGE_MAX_SECS + 10).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.nodes.len(), NODES_SAVED_MAX);
        assert!(!loaded.nodes.contains(&node(1, 1)), "a week-old node stays");
    }

    #[test]
    fn damaged_rows_are_skipped_and_the_resume_tables_coexist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite");
        let store = NodeStore::open(&path).unwrap();
        store
            .save(
                &SavedState {
                    nodes: vec![node(1, 1)],
                    ..SavedState::default()
                },
                5,
            )
            .unwrap();
        let other = Connection::open(&path).unwrap();
        other
            .execute(
                "INSERT INTO dht_nodes VALUES (zeroblob(20), 'not an address', 9)",
                [],
            )
            .unwrap();
        other
            .execute("INSERT INTO dht_state VALUES ('node_id', x'0102')", [])
            .unwrap_or_else(|_| {
                other
                    .execute(
                        "UPDATE dht_state SET value = x'0102' WHERE key = 'node_id'",
                        [],
                    )
                    .unwrap()
            });
        other
            .execute_batch("CREATE TABLE IF NOT EXISTS torrents (info_hash BLOB PRIMARY KEY)")
            .unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.nodes, vec![node(1, 1)]);
        assert_eq!(loaded.node_id, None, "a 2-byte id is not an id");
    }
}
