//! The SQLite store: sessions, attempts, tasks, runs and logs; the single source of truth.

/// Store failures, each naming the operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error in {op}")]
    Sqlite {
        op: &'static str,
        #[source]
        source: rusqlite::Error,
    },
}

impl Error {
    /// Locked, corrupt or newer-schema databases are the user's to fix (exit 2).
    pub fn is_user_fixable(&self) -> bool {
        false
    }
}
