//! The task state machine: one event, one transaction, actions after commit.
//!
//! Contract with `executor` (fixed; the bodies are filled in by the engine work):
//! - `Engine::open(db)` opens or creates the store.
//! - `Engine::prepare_attempt(&NewAttempt, now)` registers the project/workflow revision,
//!   the session (unique per project, workflow, session_time) and the attempt (unique per
//!   session and attempt name; an existing name returns the existing attempt).
//! - `Engine::recover(attempt, now)` is called once before driving an attempt (fresh or after
//!   `kill -9`): runs left `running` become `Interrupted`, their process groups are returned
//!   as `Action::Kill`, and every ready task is returned as `Action::Start`.
//! - `Engine::apply(now, event)` applies one event in one transaction and returns actions.

pub mod action;

pub use action::{Action, Event, Outcome, TaskRun};

use crate::ids::{AttemptId, SessionId};
use jiff::Timestamp;
use std::path::PathBuf;

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

/// Attempt states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptState {
    Running,
    Succeeded,
    Failed,
    Killed,
}

/// What `spade run` (and later the scheduler) asks for.
#[derive(Clone, Debug)]
pub struct NewAttempt {
    pub project_dir: PathBuf,
    pub workflow: crate::dig::Workflow,
    /// The workflow's source files (path, text) as loaded, hashed into the revision.
    pub sources: Vec<(PathBuf, String)>,
    pub session_time: Timestamp,
    /// `None` is the default attempt (stored as `""`, as Digdag does).
    pub attempt_name: Option<String>,
    /// `-p`/`-P` params.
    pub params: crate::expr::JsonMap,
    /// `--rerun`: start a new attempt even if the session already has a finished one.
    pub rerun: bool,
}

/// The attempt `prepare_attempt` found or created.
#[derive(Clone, Copy, Debug)]
pub struct PreparedAttempt {
    pub session: SessionId,
    pub attempt: AttemptId,
    /// False when an attempt with that name already existed (resume).
    pub created: bool,
    pub state: AttemptState,
}

/// The engine over one store. Cheap to share behind an `Arc`; all writes go through it.
pub struct Engine {
    _private: (),
}

impl Engine {
    pub fn open(db: &std::path::Path) -> Result<Engine, Error> {
        let _ = db;
        Ok(Engine { _private: () })
    }

    pub fn prepare_attempt(
        &self,
        req: &NewAttempt,
        now: Timestamp,
    ) -> Result<PreparedAttempt, Error> {
        let _ = (req, now);
        Ok(PreparedAttempt {
            session: SessionId(0),
            attempt: AttemptId(0),
            created: true,
            state: AttemptState::Running,
        })
    }

    pub fn recover(&self, attempt: AttemptId, now: Timestamp) -> Result<Vec<Action>, Error> {
        let _ = (attempt, now);
        Ok(Vec::new())
    }

    pub fn apply(&self, now: Timestamp, event: Event) -> Result<Vec<Action>, Error> {
        let _ = (now, event);
        Ok(Vec::new())
    }

    pub fn attempt_state(&self, attempt: AttemptId) -> Result<AttemptState, Error> {
        let _ = attempt;
        Ok(AttemptState::Running)
    }
}
