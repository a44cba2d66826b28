//! The seam between the engine and the executor: events in, actions out.

use crate::expr::JsonMap;
use crate::ids::{AttemptId, Fence, TaskId};
use jiff::Timestamp;
use std::time::Duration;

/// Something that happened, applied by `Engine::apply` in one transaction.
#[derive(Clone, Debug)]
pub enum Event {
    /// The executor spawned the process of a run (recorded so a restart can kill leftovers).
    Spawned {
        task: TaskId,
        fence: Fence,
        pid: u32,
        pgid: u32,
    },
    /// A run ended. Ignored (logged) when `fence` is no longer the task's current fence.
    Completed {
        task: TaskId,
        fence: Fence,
        outcome: Box<Outcome>,
    },
    /// Time passed: due retry waits become ready and deadlines are checked.
    Tick,
    /// A run's output that has no log file of its own (`echo>`'s message): kept with the run in
    /// `task_logs`, in the transaction of the completion that follows it.
    Log {
        task: TaskId,
        fence: Fence,
        text: String,
    },
}

/// How one run of an operator ended. A failed user task is data, not an `Err`.
#[derive(Clone, Debug)]
pub enum Outcome {
    Succeeded {
        /// Params stored for the tasks that follow (`$SPADE_STORE`, operator outputs).
        store: JsonMap,
        /// Dotted keys removed before `store` is merged.
        reset_store: Vec<String>,
        /// Params exported to this task's generated children.
        export: JsonMap,
        /// A generator's `^sub` body (for_each/if/loop/call), lowered by the engine.
        subtasks: Option<crate::dig::Value>,
    },
    Failed {
        message: String,
        /// Extra error properties (`${error.*}` for `_error` tasks).
        error: JsonMap,
        /// Whether task-level `_retry` applies (false for `fail>`, `echo>`, evaluation errors).
        retryable: bool,
    },
    /// The try ran past its `_timeout`; the executor killed its process group.
    TimedOut { limit: Duration },
    /// The engine died while the run was in flight; found by recovery. Does not use up
    /// `_retry`; three in a row fail the task.
    Interrupted,
}

/// What the executor must do after the transaction that decided it has committed.
#[derive(Clone, Debug)]
pub enum Action {
    /// Start a run of an operator task. `params` were evaluated once, at this start, and are
    /// stored with the run: nothing re-evaluates them while the run lasts.
    Start(Box<TaskRun>),
    /// Call `apply(Event::Tick)` at (or after) this time.
    WakeAt(Timestamp),
    /// Kill a run that must not go on (cancel, leftover after a crash).
    Kill {
        task: TaskId,
        fence: Fence,
        pgid: u32,
    },
    /// A run the engine ran and completed in the transaction that started it (a
    /// side-effect-free operator, see [`Inliner`]): nothing to run, only to report.
    Ran(Box<Ran>),
    /// The attempt reached a terminal state.
    AttemptFinished {
        attempt: AttemptId,
        state: super::AttemptState,
    },
}

/// Everything an operator needs for one run.
#[derive(Clone, Debug)]
pub struct TaskRun {
    pub attempt: AttemptId,
    pub task: TaskId,
    pub fence: Fence,
    /// Full name, e.g. `+wf+load^sub+for-0=x=0=1`.
    pub full_name: String,
    /// Operator name without `>`.
    pub operator: String,
    /// The evaluated `_command`.
    pub command: serde_json::Value,
    /// Every evaluated param visible to the task (built-ins, exports, stores, local keys).
    pub params: JsonMap,
    /// Keys of `params` whose values are secret: never logged.
    pub secret_keys: Vec<String>,
    /// `_timeout` of one try.
    pub timeout: Option<Duration>,
    /// The retry-sequence deadline, as an absolute time, when `_retry: {deadline}` is set;
    /// a run still going then is killed like a timeout.
    pub deadline_at: Option<Timestamp>,
    /// Retries already used by this task (0 on the first try).
    pub retry_count: u32,
    /// How many tasks a generator may create: the room left under the attempt's task limit
    /// when the run started (the engine checks the generated tree again when it arrives).
    pub generate_limit: u64,
}

/// A run completed inside the transaction that started it.
#[derive(Clone, Debug)]
pub struct Ran {
    pub task: TaskId,
    pub fence: Fence,
    pub full_name: String,
    pub operator: String,
    /// What the run prints on spade's own stdout in a terminal (`echo>`'s message); its log
    /// is in the store already.
    pub output: Option<String>,
}

/// A run of a side-effect-free operator, decided from its evaluated params alone: it
/// succeeds with nothing stored or exported, and its output, if any, is kept as the run's log
/// (and printed by the driver).
pub struct Inlined {
    pub output: Option<String>,
}

/// Decides whether a run can be completed by the engine in the transaction that starts it
/// (`operators::inline`: `nop>`, `echo>` without `append_file`). Such a run touches nothing
/// outside the store, so running it there and then changes nothing a crash could observe:
/// either the whole transaction (start, completion, what it unblocks) is durable, or none of
/// it happened.
pub type Inliner = fn(&TaskRun) -> Option<Inlined>;
