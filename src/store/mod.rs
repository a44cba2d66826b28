//! The SQLite store: sessions, attempts, tasks, runs and logs; the single source of truth.
//!
//! The store is synchronous: the executor calls it from a blocking thread, and nothing awaits
//! while a transaction is open. All writes go through [`Store::write`], one `BEGIN IMMEDIATE`
//! transaction per call, on the single connection behind a mutex (one writer).

pub mod api;
pub mod gc;
pub mod json;
pub mod lease;
mod migrate;
pub mod rows;
pub mod schedules;

use rusqlite::{Connection, ErrorCode, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

pub use migrate::SCHEMA_VERSION;

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

/// One SQLite database. All access is serialized through one connection.
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
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
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(|e| Error::at_path(path, "set foreign_keys", e))?;
        // One event's transaction runs a few dozen distinct statements; rusqlite's default
        // cache of 16 evicted some of them on every event, so they were parsed again each time.
        conn.set_prepared_statement_cache_capacity(128);
        let mut conn = conn;
        migrate::migrate(&mut conn, path)?;
        Ok(Store {
            conn: Mutex::new(conn),
            path: path.to_owned(),
        })
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
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql(op))?;
        let out = f(&tx)?;
        tx.commit().map_err(sql(op))?;
        Ok(out)
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
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(sql(op))?;
        let out = f(&tx)?;
        tx.finish().map_err(sql(op))?;
        Ok(out)
    }
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
