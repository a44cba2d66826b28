//! The task state machine: one event, one transaction, actions after commit.

/// Engine failures (a failed user task is data, not an `Error`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] crate::store::Error),
}

impl Error {
    pub fn is_user_fixable(&self) -> bool {
        match self {
            Error::Store(e) => e.is_user_fixable(),
        }
    }
}
