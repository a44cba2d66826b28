//! The SQLite store: sessions, attempts, tasks, runs and logs; the single source of truth.
//!
//! The store is synchronous: the executor calls it from a blocking thread, and nothing awaits
//! while a transaction is open. All writes go through [`Store::write`], one `BEGIN IMMEDIATE`
//! transaction per call, on the single connection behind a mutex (one writer); the engine's
//! reads ([`Store::read`]) use that connection too. Readers that must not wait for the writer
//! (the HTTP API) use [`Store::read_snapshot`]: a small pool of read-only connections on the
//! same file, which WAL lets read the last committed state while a write transaction is open.

pub mod api;
pub mod gc;
pub mod json;
pub mod lease;
mod migrate;
pub mod rows;
pub mod run_values;
pub mod schedules;
pub mod timing;
pub mod ui;

use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use migrate::SCHEMA_VERSION;

/// WAL pages between two automatic checkpoints (SQLite's default is 1,000; see `open_with`).
/// At most about 40 MiB of WAL at 4 KiB pages.
pub const WAL_CHECKPOINT_PAGES: i64 = 10_000;

/// Store failures, each naming the operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error in {op}")]
    Sqlite {
        op: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    /// Another process holds the write lock longer than `busy_timeout`.
    #[error("the database is locked by another process (during {op}); stop the other `spade` or wait for it to finish")]
    Locked { op: &'static str },
    #[error("{} is not a spade database (the file is corrupt or of another kind); move it away or pass another `--db`", path.display())]
    NotADatabase { path: PathBuf },
    #[error("{} has schema version {found}, newer than this spade knows ({known}); upgrade spade (the file was left untouched)", path.display())]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("cannot open database {} (is its directory writable?)", path.display())]
    Unwritable {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot create directory {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A JSON column could not be read back: the row was written by a broken or newer spade.
    #[error("corrupt {what} in the database")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("corrupt {what} in the database: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("no {what} with id {id}")]
    NotFound { what: &'static str, id: i64 },
    /// The attempt's owner or epoch changed: another process claimed it after this one's lease
    /// lapsed. Nothing was written; the caller must stop driving the attempt.
    #[error("lost ownership of attempt {attempt}: another process claimed it after this one's lease lapsed")]
    Fenced { attempt: i64 },
}

impl Error {
    /// Locked, corrupt or newer-schema databases are the user's to fix (exit 2).
    pub fn is_user_fixable(&self) -> bool {
        match self {
            Error::Locked { .. }
            | Error::NotADatabase { .. }
            | Error::NewerSchema { .. }
            | Error::Unwritable { .. }
            | Error::CreateDir { .. } => true,
            Error::Sqlite { .. }
            | Error::Json { .. }
            | Error::Corrupt { .. }
            | Error::NotFound { .. }
            | Error::Fenced { .. } => false,
        }
    }

    /// Classifies a rusqlite error: busy/locked become [`Error::Locked`].
    pub fn sqlite(op: &'static str, source: rusqlite::Error) -> Error {
        match source.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::Locked { op },
            _ => Error::Sqlite { op, source },
        }
    }

    fn at_path(path: &Path, op: &'static str, source: rusqlite::Error) -> Error {
        match source.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => Error::NotADatabase {
                path: path.to_owned(),
            },
            Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => {
                Error::Unwritable {
                    path: path.to_owned(),
                    source,
                }
            }
            _ => Error::sqlite(op, source),
        }
    }
}

/// `map_err` helper: `.map_err(sql("op"))`.
pub fn sql(op: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |e| Error::sqlite(op, e)
}

/// Executes one statement through the connection's statement cache (a transaction runs the
/// same few statements many times).
pub fn exec(
    tx: &Tx<'_>,
    op: &'static str,
    statement: &str,
    params: impl rusqlite::Params,
) -> Result<usize, Error> {
    tx.prepare_cached(statement)
        .and_then(|mut s| s.execute(params))
        .map_err(sql(op))
}

/// Open options; tests shorten `busy_timeout`.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// How long a writer waits for another process's lock before [`Error::Locked`].
    pub busy_timeout: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// One SQLite database: one writer connection, and read-only connections for
/// [`Store::read_snapshot`].
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// `None` for an in-memory database, which other connections cannot see: its snapshot
    /// reads use the writer.
    readers: Option<Readers>,
    timings: timing::Timings,
}

/// Idle read-only connections, opened on demand. A reader that finds none idle opens one (a
/// few hundred microseconds) instead of waiting, so readers never queue behind each other;
/// at most [`Readers::KEEP`] are kept when they come back.
struct Readers {
    idle: Mutex<Vec<Connection>>,
    busy_timeout: Duration,
}

impl Readers {
    /// Idle connections kept for reuse (the API's blocking threads rarely need more at once).
    const KEEP: usize = 4;

    fn take(&self, path: &Path, op: &'static str) -> Result<Connection, Error> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => self.open(path, op),
        }
    }

    fn open(&self, path: &Path, op: &'static str) -> Result<Connection, Error> {
        // Read-only: a reader can never write, whatever a caller's closure does. WAL needs no
        // pragma here (the mode is the file's, set by the writer).
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn =
            Connection::open_with_flags(path, flags).map_err(|e| Error::at_path(path, op, e))?;
        conn.busy_timeout(self.busy_timeout)
            .map_err(|e| Error::at_path(path, op, e))?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < Readers::KEEP {
            idle.push(conn);
        }
    }
}

/// Whether `path` names an in-memory database (which only its own connection can see).
fn in_memory(path: &Path) -> bool {
    let text = path.to_string_lossy();
    text.is_empty()
        || text == ":memory:"
        || (text.starts_with("file:") && text.contains("mode=memory"))
}

/// A write transaction (`BEGIN IMMEDIATE`); committed by [`Store::write`] when the closure
/// returns `Ok`.
pub type Tx<'a> = rusqlite::Transaction<'a>;

impl Store {
    pub fn open(path: &Path) -> Result<Store, Error> {
        Store::open_with(path, Options::default())
    }

    pub fn open_with(path: &Path, options: Options) -> Result<Store, Error> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
                    path: dir.to_owned(),
                    source,
                })?;
            }
        }
        let conn = Connection::open(path).map_err(|e| Error::at_path(path, "open", e))?;
        conn.busy_timeout(options.busy_timeout)
            .map_err(|e| Error::at_path(path, "set busy_timeout", e))?;
        // The version is checked before any pragma that writes (journal_mode=WAL rewrites the
        // header): a newer database must be left byte-for-byte untouched.
        let found: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| Error::at_path(path, "read user_version", e))?;
        if found > SCHEMA_VERSION {
            return Err(Error::NewerSchema {
                path: path.to_owned(),
                found,
                known: SCHEMA_VERSION,
            });
        }
        // WAL + synchronous=NORMAL: a committed transaction survives a process crash (the
        // `kill -9` model: the WAL is in the OS page cache and is replayed on open); on power
        // loss at most the last transactions are lost, but the file stays consistent. This
        // avoids an fsync per task transition, which FULL would cost.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| Error::at_path(path, "set journal_mode", e))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| Error::at_path(path, "set synchronous", e))?;
        // A checkpoint (copying the WAL back into the file) costs two fsyncs, about 9 ms each
        // on the development machine; at SQLite's default of one per 1,000 WAL pages it came
        // every hundred or so task transactions and was more than half the wall time of a
        // 10,000-task `for_each>`. A checkpoint copies only the newest version of each page, so
        // one per `WAL_CHECKPOINT_PAGES` costs about as much as one per 1,000 and comes ten
        // times less often. Durability against `kill -9` is the same (commits are in the WAL);
        // on power loss more of the last transactions may be lost, which a resume runs again.
        conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)
            .map_err(|e| Error::at_path(path, "set wal_autocheckpoint", e))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(|e| Error::at_path(path, "set foreign_keys", e))?;
        // One event's transaction runs a few dozen distinct statements; rusqlite's default
        // cache of 16 evicted some of them on every event, so they were parsed again each time.
        conn.set_prepared_statement_cache_capacity(128);
        let mut conn = conn;
        migrate::migrate(&mut conn, path)?;
        let readers = (!in_memory(path)).then(|| Readers {
            idle: Mutex::new(Vec::new()),
            busy_timeout: options.busy_timeout,
        });
        Ok(Store {
            conn: Mutex::new(conn),
            path: path.to_owned(),
            readers,
            timings: timing::Timings::default(),
        })
    }

    /// How long this store's transactions took (`spade_store_transaction_seconds`).
    pub fn timings(&self) -> &timing::Timings {
        &self.timings
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction; commits on `Ok`, rolls back on `Err`.
    pub fn write<T, E>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<Error>,
    {
        // A poisoned lock only means another thread panicked mid-call; the transaction it
        // held was rolled back when it unwound, so the connection is still consistent.
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let began = Instant::now();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql(op))?;
        let out = f(&tx);
        let out = match out {
            Ok(out) => tx.commit().map_err(sql(op)).map(|()| out).map_err(E::from),
            Err(e) => Err(e),
        };
        // Rolled back or committed: either way the writer was held this long.
        self.timings.observe(timing::Kind::Write, began.elapsed());
        out
    }

    /// Runs `f` in a read (deferred) transaction, for a consistent snapshot.
    pub fn read<T, E>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<Error>,
    {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let began = Instant::now();
        let out = read_in(&mut conn, op, f);
        self.timings.observe(timing::Kind::Read, began.elapsed());
        out
    }

    /// Runs `f` in a read transaction on a read-only connection: a consistent snapshot of
    /// what was committed when it began, without waiting for the writer (a write transaction
    /// may be open meanwhile). For the HTTP API; the engine reads through [`Store::read`],
    /// which also sees its own connection's state. An in-memory store reads on the writer.
    pub fn read_snapshot<T, E>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<Error>,
    {
        let Some(readers) = &self.readers else {
            return self.read(op, f);
        };
        let mut conn = readers.take(&self.path, op)?;
        let began = Instant::now();
        let out = read_in(&mut conn, op, f);
        self.timings
            .observe(timing::Kind::Snapshot, began.elapsed());
        // A connection whose transaction could not end cleanly is dropped, not reused.
        if conn.is_autocommit() {
            readers.give_back(conn);
        }
        out
    }
}

/// One deferred (read) transaction on `conn`.
fn read_in<T, E>(
    conn: &mut Connection,
    op: &'static str,
    f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<Error>,
{
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Deferred)
        .map_err(sql(op))?;
    let out = f(&tx)?;
    tx.finish().map_err(sql(op))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(path: &Path) -> Vec<u8> {
        use sha2::Digest;
        sha2::Sha256::digest(std::fs::read(path).unwrap()).to_vec()
    }

    #[test]
    fn fresh_database_gets_the_current_version_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/spade.db");
        drop(Store::open(&path).unwrap());
        let store = Store::open(&path).unwrap();
        let v: i64 = store
            .read("test", |tx| {
                tx.query_row("PRAGMA user_version", [], |r| r.get(0))
                    .map_err(sql("test"))
            })
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let mode: String = store
            .read("test", |tx| {
                tx.query_row("PRAGMA journal_mode", [], |r| r.get(0))
                    .map_err(sql("test"))
            })
            .unwrap();
        assert_eq!(mode, "wal");
    }

    fn project_count(tx: &Tx<'_>) -> Result<i64, Error> {
        tx.query_row("SELECT COUNT(*) FROM projects", [], |r| r.get(0))
            .map_err(sql("test"))
    }

    fn insert_project(tx: &Tx<'_>, dir: &str) -> Result<(), Error> {
        tx.execute(
            "INSERT INTO projects (dir, created_at) VALUES (?1, 'y')",
            [dir],
        )
        .map(drop)
        .map_err(sql("test"))
    }

    #[test]
    fn a_snapshot_read_does_not_wait_for_an_open_write_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(Store::open(&dir.path().join("spade.db")).unwrap());
        store
            .write("test", |tx| insert_project(tx, "committed"))
            .unwrap();
        let (inside_tx, inside) = std::sync::mpsc::channel();
        let (release_tx, release) = std::sync::mpsc::channel::<()>();
        let writer = {
            let store = store.clone();
            std::thread::spawn(move || {
                store
                    .write("test_held", |tx| {
                        insert_project(tx, "uncommitted")?;
                        inside_tx.send(()).unwrap();
                        release.recv().unwrap();
                        Ok::<_, Error>(())
                    })
                    .unwrap();
            })
        };
        inside.recv().unwrap();
        let (done_tx, done) = std::sync::mpsc::channel();
        let reader = {
            let store = store.clone();
            std::thread::spawn(move || {
                done_tx
                    .send(store.read_snapshot("test_snapshot", project_count).unwrap())
                    .unwrap();
            })
        };
        let seen = done.recv_timeout(Duration::from_secs(10));
        release_tx.send(()).unwrap();
        writer.join().unwrap();
        reader.join().unwrap();
        assert_eq!(
            seen,
            Ok(1),
            "the read waited for the writer or saw its uncommitted row"
        );
        assert_eq!(store.read_snapshot("test", project_count).unwrap(), 2);
    }

    #[test]
    fn an_in_memory_store_reads_snapshots_on_its_writer() {
        let store = Store::open(Path::new(":memory:")).unwrap();
        store.write("test", |tx| insert_project(tx, "x")).unwrap();
        assert_eq!(store.read_snapshot("test", project_count).unwrap(), 1);
    }

    #[test]
    fn a_snapshot_reader_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("spade.db")).unwrap();
        let err = store
            .read_snapshot("test_write_on_reader", |tx| insert_project(tx, "x"))
            .err();
        assert!(err.is_some());
        // The refused connection is still usable, and the store is unchanged.
        assert_eq!(store.read_snapshot("test", project_count).unwrap(), 0);
    }

    #[test]
    fn every_transaction_is_timed_by_kind() {
        use timing::Kind;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("spade.db")).unwrap();
        let before: Vec<u64> = Kind::ALL
            .iter()
            .map(|k| store.timings().snapshot(*k).count)
            .collect();
        store.write("test", |tx| insert_project(tx, "x")).unwrap();
        let _ = store.write("test", |_| {
            Err::<(), _>(Error::Corrupt {
                what: "test",
                detail: "rolled back".into(),
            })
        });
        store.read("test", project_count).unwrap();
        store.read_snapshot("test", project_count).unwrap();
        store.read_snapshot("test", project_count).unwrap();
        let after: Vec<u64> = Kind::ALL
            .iter()
            .map(|k| store.timings().snapshot(*k).count)
            .collect();
        let grew: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        assert_eq!(grew, [2, 1, 2], "write, read, snapshot");
    }

    #[test]
    fn newer_schema_is_refused_without_modification() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spade.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch("CREATE TABLE future (x INTEGER); PRAGMA user_version = 99;")
                .unwrap();
        }
        let before = sha(&path);
        let err = Store::open(&path).err().unwrap();
        assert!(matches!(err, Error::NewerSchema { found: 99, .. }), "{err}");
        assert!(err.is_user_fixable());
        assert!(err.to_string().contains("newer than this spade knows"));
        assert_eq!(sha(&path), before);
        assert!(!dir.path().join("spade.db-wal").exists());
    }

    #[test]
    fn corrupt_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spade.db");
        std::fs::write(&path, vec![b'x'; 4096]).unwrap();
        let err = Store::open(&path).err().unwrap();
        assert!(matches!(err, Error::NotADatabase { .. }), "{err:?}");
        assert!(err.is_user_fixable());
    }

    #[test]
    fn unwritable_directory_is_a_user_error() {
        let dir = tempfile::tempdir().unwrap();
        // A regular file where the parent directory should be: cannot be created.
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "x").unwrap();
        let err = Store::open(&blocker.join("spade.db")).err().unwrap();
        assert!(err.is_user_fixable(), "{err:?}");
    }

    #[test]
    fn write_lock_held_by_another_connection_is_a_locked_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spade.db");
        drop(Store::open(&path).unwrap());
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let store = Store::open_with(
            &path,
            Options {
                busy_timeout: Duration::from_millis(50),
            },
        )
        .unwrap();
        let err = store
            .write("test_write", |tx| {
                tx.execute(
                    "INSERT INTO projects (dir, created_at) VALUES ('x', 'y')",
                    [],
                )
                .map_err(sql("test_write"))
            })
            .err()
            .unwrap();
        assert!(matches!(err, Error::Locked { op: "test_write" }), "{err:?}");
        assert!(err.is_user_fixable());
        other.execute_batch("ROLLBACK").unwrap();
    }
}
