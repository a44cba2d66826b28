//! The task state machine: one event, one transaction, actions after commit.
//!
//! Contract with `executor` (fixed; the bodies are filled in by the engine work):
//! - `Engine::open(db)` opens or creates the store.
//! - `Engine::prepare_attempt(&NewAttempt, now)` registers the project/workflow revision,
//!   the session (unique per project, workflow, session_time) and the attempt (unique per
//!   session and attempt name; an existing name returns the existing attempt, and a failed
//!   or killed one resumes unless `rerun`: see `prepare`).
//! - `Engine::recover(attempt, now)` is called once before driving an attempt (fresh or after
//!   `kill -9`): runs left `running` become `Interrupted`, their process groups are returned
//!   as `Action::Kill`, and every ready task is returned as `Action::Start`.
//!   `Engine::replay(attempt, now, events)` is the same, preceded in its transaction by
//!   completions replayed from journals.
//! - `Engine::apply(now, event)` applies one event in one transaction and returns actions;
//!   `Engine::apply_all(now, events)` applies a batch in one transaction (group commit: each
//!   event's transitions stay whole, and the batch's actions run after its one commit).

pub mod action;
mod apply;
pub mod def;
mod owned;
mod params;
pub mod plan;
pub(crate) mod prepare;
pub mod require;
pub mod retry;
#[cfg(test)]
mod scenarios;
mod scheduling;
pub mod state;
pub mod testkit;

pub use crate::store::lease::{Claim, ClaimOutcome, Lease, Owner, OwnerId, OwnerKind};
pub use action::{Action, Event, Inlined, Inliner, Outcome, Ran, TaskRun};
pub use owned::run_token;
pub use scheduling::{next_slot, FiredSlot, ScheduledWorkflow};
pub use state::{IllegalTransition, TaskEvent, TaskState};

use crate::ids::{AttemptId, Fence, SessionId, TaskId};
use crate::store::{self, sql, Store};
use jiff::Timestamp;
use rusqlite::params;
use std::path::PathBuf;

/// Engine failures (a failed user task is data, not an `Error`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    /// The engine asked for a transition the table forbids: a spade bug.
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    /// What was asked cannot apply to the attempt as it is (new params or `--rerun` for an
    /// attempt that has not finished); the message says what to do instead.
    #[error("{0}")]
    Request(String),
}

impl Error {
    pub fn is_user_fixable(&self) -> bool {
        match self {
            Error::Store(e) => e.is_user_fixable(),
            Error::Illegal(_) => false,
            Error::Request(_) => true,
        }
    }
}

/// Live tasks one attempt may hold unless configured otherwise (`spade run --task-limit`):
/// Digdag's `executor.task_max_run` is 1,000, which a 600-item `for_each>` retried once
/// passed. A `for_each>` of 10,000 `echo>` tasks measured 0.57 s and 40 MiB peak in a release
/// build (`benches/engine.rs`, `for-each-10k`), one of 99,000 5.5 s, 279 MiB and a 160 MB
/// database (see `docs/engine.md`, "Task limit").
pub const DEFAULT_TASK_LIMIT: u64 = 100_000;

/// Attempt states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptState {
    Running,
    Succeeded,
    Failed,
    Killed,
}

impl AttemptState {
    /// The spelling in `attempts.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptState::Running => "running",
            AttemptState::Succeeded => "succeeded",
            AttemptState::Failed => "failed",
            AttemptState::Killed => "killed",
        }
    }

    pub fn parse(s: &str) -> Option<AttemptState> {
        [
            AttemptState::Running,
            AttemptState::Succeeded,
            AttemptState::Failed,
            AttemptState::Killed,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }

    pub fn is_finished(self) -> bool {
        !matches!(self, AttemptState::Running)
    }
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
    /// `--rerun`: a finished attempt starts over with a fresh tree. Without it a failed or
    /// killed attempt resumes (its succeeded tasks are kept) and a succeeded one stays done.
    pub rerun: bool,
    /// Digdag's `resume.from` (`spade retry --from TASK`): resume a finished attempt with this
    /// task (a full name, or one without the workflow's `+name` prefix) and everything after it
    /// run again, although they succeeded and did not change.
    pub resume_from: Option<String>,
}

/// What a resume keeps and runs, for `spade run` to say (static tasks, by full name).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResumeReport {
    /// Tasks that succeeded before and do not run again.
    pub kept: Vec<String>,
    /// Tasks of the definition that the previous try did not have (top-most only: a new
    /// group stands for its children).
    pub new: Vec<String>,
    /// Tasks whose definition changed (top-most only): they run again, with their subtree.
    pub changed: Vec<String>,
    /// Tasks that succeeded before, unchanged, that run again because a task before them
    /// runs (a changed or new one, or one whose subtree does).
    pub after_changed: Vec<String>,
    /// The task a `resume.from` runs again, with everything after it.
    pub from: Option<String>,
    /// The workflow's sources (the file, its `!include`s and `call>` targets) changed since
    /// the previous try.
    pub definition_changed: bool,
}

/// The attempt `prepare_attempt` found or created.
#[derive(Clone, Debug)]
pub struct PreparedAttempt {
    pub session: SessionId,
    pub attempt: AttemptId,
    /// False when an attempt with that name already existed and is returned as it is (an
    /// unfinished one continues, a succeeded one stays finished); true when a tree was
    /// instantiated (a new attempt, a `--rerun`, or a resume).
    pub created: bool,
    pub state: AttemptState,
    /// `Some(kept)` when a failed or killed attempt resumes: the previous try's succeeded
    /// operator tasks that will not run again.
    pub resumed: Option<usize>,
    /// The details of a resume (`Some` exactly when `resumed` is).
    pub resume: Option<ResumeReport>,
    /// True when an existing finished attempt started over from scratch (`--rerun`).
    pub rerun: bool,
}

/// One task as tests and reports see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskSummary {
    pub id: TaskId,
    pub parent: Option<TaskId>,
    pub full_name: String,
    pub state: TaskState,
    pub retry_count: u32,
    pub fence: Fence,
    /// The parent's subtree epoch the row belongs to.
    pub epoch: i64,
    /// False for rows of a discarded epoch (history).
    pub live: bool,
    /// The failure message, when the task failed.
    pub error: Option<String>,
}

/// Counts for the final report line of `spade run`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttemptSummary {
    pub state: Option<AttemptState>,
    /// Live operator tasks by state.
    pub succeeded: usize,
    pub failed: usize,
    pub skipped: usize,
    pub other: usize,
    /// Runs started in this attempt (all tries, all epochs).
    pub runs: usize,
    /// The first failure messages of live failed tasks, `(full name, message)`.
    pub failures: Vec<(String, String)>,
}

/// Lowers a generator's `^sub` body into a task tree (`dig::lower_task` unless replaced).
pub type Lowerer =
    fn(&str, &crate::dig::Value) -> Result<crate::dig::TaskDef, Vec<crate::diag::Diagnostic>>;

/// What every transaction of one engine is configured with.
#[derive(Clone, Copy)]
pub(crate) struct Config {
    pub(crate) lower: Lowerer,
    /// Live tasks one attempt may hold; a generator asking for more fails.
    pub(crate) task_limit: u64,
    /// Completes side-effect-free runs in the transaction that starts them (`None`: every run
    /// goes to the executor).
    pub(crate) inline: Option<Inliner>,
}

/// Runs one transaction completes inline at most (`Config::inline`) before it hands the next
/// ready side-effect-free run to the executor as an ordinary `Start`: a chain of `nop>` tasks
/// then costs one commit per this many tasks, and a kill, a stop or a lost claim is still
/// seen between two such transactions (each is a few milliseconds).
pub(crate) const INLINE_BATCH: u32 = 1000;

/// The engine over one store. Cheap to share behind an `Arc`; all writes go through it.
pub struct Engine {
    store: Store,
    config: Config,
    nodes: apply::NodeCache,
}

impl Engine {
    pub fn open(db: &std::path::Path) -> Result<Engine, Error> {
        Engine::open_with(db, store::Options::default())
    }

    pub fn open_with(db: &std::path::Path, options: store::Options) -> Result<Engine, Error> {
        Ok(Engine {
            store: Store::open_with(db, options)?,
            config: Config {
                lower: crate::dig::lower_task,
                task_limit: DEFAULT_TASK_LIMIT,
                inline: Some(crate::operators::inline),
            },
            nodes: apply::NodeCache::default(),
        })
    }

    /// Replaces how generated `^sub` bodies are lowered (tests drive the engine without the
    /// `.dig` lowering).
    pub fn with_lowerer(mut self, lower: Lowerer) -> Engine {
        self.config.lower = lower;
        self
    }

    /// Sets how many live tasks (the attempt's current tree; history rows of retries and
    /// earlier tries do not count) one attempt may hold. Static tasks always instantiate; a
    /// generator whose output would pass the limit fails.
    pub fn with_task_limit(mut self, limit: u64) -> Engine {
        self.config.task_limit = limit;
        self
    }

    /// Replaces which runs the engine completes in the transaction that starts them (`None`:
    /// all of them go to the executor).
    pub fn with_inliner(mut self, inline: Option<Inliner>) -> Engine {
        self.config.inline = inline;
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs `f` in one write transaction of the engine: buffered history is written before
    /// the commit, and the definition nodes it read are shared with later transactions after.
    fn transact<T>(
        &self,
        op: &'static str,
        now: Timestamp,
        f: impl FnOnce(&mut apply::Apply<'_, '_>) -> Result<T, Error>,
    ) -> Result<(T, Vec<Action>), Error> {
        let (out, actions, nodes) = self.store.write(op, |tx| {
            let mut a = apply::Apply::new(tx, now, self.config, &self.nodes);
            let out = f(&mut a)?;
            let (actions, nodes) = a.finish()?;
            Ok::<_, Error>((out, actions, nodes))
        })?;
        apply::publish_nodes(&self.nodes, nodes);
        Ok((out, actions))
    }

    /// `transact` under a claim: the owner fence is checked first (nothing is written unless
    /// the claim still holds), and after the writes the claim is released as `release` says.
    fn transact_claimed<T>(
        &self,
        op: &'static str,
        now: Timestamp,
        claim: &Claim,
        release: owned::Release,
        f: impl FnOnce(&mut apply::Apply<'_, '_>) -> Result<T, Error>,
    ) -> Result<(T, Vec<Action>), Error> {
        let (out, actions, nodes) = self.store.write(op, |tx| {
            store::lease::check_claim(tx, claim)?;
            let mut a = apply::Apply::new(tx, now, self.config, &self.nodes);
            let out = f(&mut a)?;
            let (actions, nodes) = a.finish()?;
            release.apply(tx, claim, &actions)?;
            Ok::<_, Error>((out, actions, nodes))
        })?;
        apply::publish_nodes(&self.nodes, nodes);
        Ok((out, actions))
    }

    pub fn prepare_attempt(
        &self,
        req: &NewAttempt,
        now: Timestamp,
    ) -> Result<PreparedAttempt, Error> {
        let (prepared, _) = self.transact("prepare_attempt", now, |a| prepare::prepare(a, req))?;
        Ok(prepared)
    }

    pub fn recover(&self, attempt: AttemptId, now: Timestamp) -> Result<Vec<Action>, Error> {
        Ok(self.transact("recover", now, |a| a.recover(attempt))?.1)
    }

    /// `recover` preceded, in the same transaction, by events replayed from before a restart
    /// (the executor's completion journals). The tasks those completions unblock are left
    /// `ready` rather than started, and `recover` then starts every ready task once: a task is
    /// never announced twice, and no run exists that `recover` would count as interrupted
    /// although it never reached a process.
    pub fn replay(
        &self,
        attempt: AttemptId,
        now: Timestamp,
        events: Vec<Event>,
    ) -> Result<Vec<Action>, Error> {
        Ok(self
            .transact("replay", now, |a| replay_in(a, attempt, events))?
            .1)
    }

    pub fn apply(&self, now: Timestamp, event: Event) -> Result<Vec<Action>, Error> {
        Ok(self.transact("apply", now, |a| apply_event(a, event))?.1)
    }

    /// Applies `events` in order in one transaction (group commit) and returns their actions
    /// in order. Each event is whole as with `apply`; the commit covers them all, so nothing
    /// any of them decided runs before all of them are durable. Runs that finish together
    /// (a wide parallel group) then cost one commit instead of one each.
    pub fn apply_all(&self, now: Timestamp, events: Vec<Event>) -> Result<Vec<Action>, Error> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .transact("apply", now, |a| apply_batch(a, events, None))?
            .1)
    }

    /// `Event::Tick` limited to one attempt: a driver of one attempt among many should use
    /// this, because `Event::Tick` starts due retries of every attempt in the store and returns
    /// their `Start` actions to the caller.
    pub fn tick_attempt(&self, attempt: AttemptId, now: Timestamp) -> Result<Vec<Action>, Error> {
        Ok(self
            .transact("tick_attempt", now, |a| a.tick(Some(attempt)))?
            .1)
    }

    /// Kills a running attempt: unfinished tasks become `canceled`, running process groups
    /// come back as `Action::Kill`, and the attempt ends `killed` (`Action::AttemptFinished`).
    pub fn kill_attempt(&self, attempt: AttemptId, now: Timestamp) -> Result<Vec<Action>, Error> {
        Ok(self.transact("kill_attempt", now, |a| a.kill(attempt))?.1)
    }

    pub fn attempt_state(&self, attempt: AttemptId) -> Result<AttemptState, Error> {
        self.store.read("attempt_state", |tx| {
            let a = store::rows::load_attempt(tx, attempt)?;
            AttemptState::parse(&a.state).ok_or_else(|| {
                Error::Store(store::Error::Corrupt {
                    what: "attempt state",
                    detail: a.state,
                })
            })
        })
    }

    /// The stored definition of a task (any task, generated ones included): generator
    /// operators read their unevaluated `_do:`/`_else_do:` from it.
    pub fn task_def(&self, task: TaskId) -> Result<crate::dig::TaskDef, Error> {
        self.store.read("task_def", |tx| {
            let row = store::rows::load_task(tx, task)?;
            Ok(def::load_tree(tx, row.def_id)?)
        })
    }

    /// Every task row of the attempt (history included), in id order.
    pub fn list_tasks(&self, attempt: AttemptId) -> Result<Vec<TaskSummary>, Error> {
        self.store.read("list_tasks", |tx| {
            let live = live_ids(tx, attempt)?;
            let rows =
                store::rows::select_tasks(tx, "list_tasks", "attempt_id = ?1", params![attempt.0])?;
            Ok(rows
                .into_iter()
                .map(|r| TaskSummary {
                    live: live.contains(&r.id.0),
                    error: r.error.as_deref().and_then(|e| {
                        serde_json::from_str::<serde_json::Value>(e)
                            .ok()
                            .and_then(|v| {
                                v.get("message").and_then(|m| m.as_str()).map(str::to_owned)
                            })
                    }),
                    id: r.id,
                    parent: r.parent,
                    full_name: r.full_name,
                    state: r.state,
                    retry_count: r.retry_count,
                    fence: r.fence,
                    epoch: r.epoch,
                })
                .collect())
        })
    }

    /// The scope layers of a task as JSON, lowest first (tests of the params order).
    #[cfg(test)]
    pub(crate) fn scope_layers(
        &self,
        task: TaskId,
        now: Timestamp,
    ) -> Result<Vec<serde_json::Value>, Error> {
        self.store.read("scope_layers", |tx| {
            let row = store::rows::load_task(tx, task)?;
            let mut a = apply::Apply::new(tx, now, self.config, &self.nodes);
            Ok(a.scope(&row)?.debug_layers())
        })
    }

    /// Counts for the final report line.
    pub fn attempt_summary(&self, attempt: AttemptId) -> Result<AttemptSummary, Error> {
        let state = self.attempt_state(attempt)?;
        let tasks = self.list_tasks(attempt)?;
        let runs: i64 = self.store.read("attempt_summary", |tx| {
            tx.query_row(
                "SELECT COUNT(*) FROM task_runs r JOIN tasks t ON t.id = r.task_id WHERE t.attempt_id = ?1",
                params![attempt.0],
                |r| r.get(0),
            )
            .map_err(sql("attempt_summary"))
            .map_err(Error::from)
        })?;
        let mut s = AttemptSummary {
            state: Some(state),
            runs: usize::try_from(runs).unwrap_or(0),
            ..AttemptSummary::default()
        };
        for t in tasks.iter().filter(|t| t.live) {
            match t.state {
                TaskState::Succeeded => s.succeeded += 1,
                TaskState::Failed | TaskState::GroupError => {
                    s.failed += 1;
                    if t.state == TaskState::Failed {
                        if let Some(e) = &t.error {
                            s.failures.push((t.full_name.clone(), e.clone()));
                        }
                    }
                }
                TaskState::Skipped => s.skipped += 1,
                TaskState::Blocked
                | TaskState::Ready
                | TaskState::Running
                | TaskState::RetryWaiting
                | TaskState::GroupRetryWaiting
                | TaskState::Planned
                | TaskState::Canceled => s.other += 1,
            }
        }
        // A group that failed because a descendant did is said by that descendant; one that
        // failed on its own (its `_timeout` passed) says why itself.
        let own: Vec<(String, String)> = tasks
            .iter()
            .filter(|t| t.live && t.state == TaskState::GroupError)
            .filter(|g| {
                !s.failures.iter().any(|(name, _)| {
                    name.strip_prefix(g.full_name.as_str())
                        .is_some_and(|rest| rest.starts_with(['+', '^']))
                })
            })
            .filter_map(|g| g.error.clone().map(|e| (g.full_name.clone(), e)))
            .collect();
        s.failures.extend(own);
        Ok(s)
    }

    /// Appends a chunk of a run's output.
    pub fn task_log_append(
        &self,
        task: TaskId,
        fence: Fence,
        now: Timestamp,
        chunk: &str,
    ) -> Result<(), Error> {
        self.store.write("task_log_append", |tx| {
            tx.execute(
                "INSERT INTO task_logs (task_id, fence, at, chunk) VALUES (?1, ?2, ?3, ?4)",
                params![task.0, fence.0, now.to_string(), chunk],
            )
            .map_err(sql("task_log_append"))?;
            Ok(())
        })
    }

    /// The log of one run, concatenated.
    pub fn task_log(&self, task: TaskId, fence: Fence) -> Result<String, Error> {
        self.store.read("task_log", |tx| {
            let mut stmt = tx
                .prepare(
                    "SELECT chunk FROM task_logs WHERE task_id = ?1 AND fence = ?2 ORDER BY id",
                )
                .map_err(sql("task_log"))?;
            let chunks = stmt
                .query_map(params![task.0, fence.0], |r| r.get::<_, String>(0))
                .map_err(sql("task_log"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql("task_log"))?;
            Ok(chunks.concat())
        })
    }
}

/// Ids of the live rows of an attempt: reachable from its current root through current
/// epochs only.
fn live_ids(
    tx: &store::Tx<'_>,
    attempt: AttemptId,
) -> Result<std::collections::HashSet<i64>, Error> {
    let mut stmt = tx
        .prepare(
            "WITH RECURSIVE d(id, child_epoch) AS ( \
               SELECT t.id, t.child_epoch FROM attempts a CROSS JOIN tasks t \
                 WHERE a.id = ?1 AND t.id = a.root_task_id \
               UNION ALL SELECT t.id, t.child_epoch FROM d CROSS JOIN tasks t \
                 WHERE t.parent_id = d.id AND t.epoch = d.child_epoch) \
             SELECT id FROM d",
        )
        .map_err(sql("live_ids"))?;
    let ids = stmt
        .query_map(params![attempt.0], |r| r.get::<_, i64>(0))
        .map_err(sql("live_ids"))?
        .collect::<Result<_, _>>()
        .map_err(sql("live_ids"))?;
    Ok(ids)
}

/// `Engine::replay` inside an open transaction (shared with the claimed variant); the
/// actions are left in `a.actions`.
fn replay_in(
    a: &mut apply::Apply<'_, '_>,
    attempt: AttemptId,
    events: Vec<Event>,
) -> Result<(), Error> {
    a.defer_starts(true);
    // `recover` ends with a tick of this attempt: replayed ticks would be redundant.
    for event in events.into_iter().filter(|e| !matches!(e, Event::Tick)) {
        apply_event(a, event)?;
    }
    a.defer_starts(false);
    let mut replayed = std::mem::take(&mut a.actions);
    a.recover(attempt)?;
    // A replayed completion that finished the attempt already said so; `recover` of the
    // finished attempt says it again.
    let finished = |x: &Action| matches!(x, Action::AttemptFinished { .. });
    if replayed.iter().any(finished) {
        a.actions.retain(|x| !finished(x));
    }
    replayed.append(&mut a.actions);
    a.actions = replayed;
    Ok(())
}

/// Events of one batch inside an open transaction. Parents are settled once, after every
/// completion of the batch: a wide group whose children finish together is settled once, not
/// once per child. `Tick`s tick `attempt` only when given (a driver of one attempt among many).
fn apply_batch(
    a: &mut apply::Apply<'_, '_>,
    events: Vec<Event>,
    attempt: Option<AttemptId>,
) -> Result<(), Error> {
    for event in events {
        match event {
            Event::Completed {
                task,
                fence,
                outcome,
            } => a.complete(task, fence, *outcome)?,
            Event::Tick => a.tick(attempt)?,
            other => apply_event(a, other)?,
        }
    }
    a.settle_all()
}

/// One event inside an open transaction: the single dispatch `apply` and `replay` share.
fn apply_event(a: &mut apply::Apply<'_, '_>, event: Event) -> Result<(), Error> {
    match event {
        Event::Spawned {
            task,
            fence,
            pid,
            pgid,
        } => a.spawned(task, fence, pid, pgid),
        Event::Completed {
            task,
            fence,
            outcome,
        } => {
            a.complete(task, fence, *outcome)?;
            a.settle_all()
        }
        Event::Tick => a.tick(None),
        Event::Log { task, fence, text } => a.log(task, fence, &text),
    }
}
