//! Task states and the one exhaustive transition function `next(state, event)`.
//!
//! Every state change the engine makes goes through [`next`]; the table it encodes is
//! printed (and snapshot-tested) in `docs/engine.md`.

use std::fmt;
use std::str::FromStr;

/// The state of one task row. The SQL spelling lives only in [`TaskState::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaskState {
    /// Waiting for its parent to be planned and every upstream to succeed.
    Blocked,
    /// Runnable; an operator task is started in the same transaction that made it ready.
    Ready,
    /// A run (fence) is in flight.
    Running,
    /// An operator try failed and `_retry` allows another one at `retry_at`.
    RetryWaiting,
    /// A group (or generator) failed and `_retry` resets its subtree at `retry_at`.
    GroupRetryWaiting,
    /// Waiting for its children (a group, a generator, a task with `^check` or `^error`).
    Planned,
    Succeeded,
    /// The operator itself failed (after `^error`, if any, ran).
    Failed,
    /// A child failed and no retry was left.
    GroupError,
    Canceled,
    /// Never ran because an upstream sibling failed (the parent finished without it).
    Skipped,
}

impl TaskState {
    pub const ALL: [TaskState; 11] = [
        TaskState::Blocked,
        TaskState::Ready,
        TaskState::Running,
        TaskState::RetryWaiting,
        TaskState::GroupRetryWaiting,
        TaskState::Planned,
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::GroupError,
        TaskState::Canceled,
        TaskState::Skipped,
    ];

    /// The spelling in SQL (`tasks.state`, its CHECK constraint and `state_transitions`).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Blocked => "blocked",
            TaskState::Ready => "ready",
            TaskState::Running => "running",
            TaskState::RetryWaiting => "retry_waiting",
            TaskState::GroupRetryWaiting => "group_retry_waiting",
            TaskState::Planned => "planned",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::GroupError => "group_error",
            TaskState::Canceled => "canceled",
            TaskState::Skipped => "skipped",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded
                | TaskState::Failed
                | TaskState::GroupError
                | TaskState::Canceled
                | TaskState::Skipped
        )
    }

    /// Failed for the purpose of a parent's outcome.
    pub fn is_error(self) -> bool {
        matches!(
            self,
            TaskState::Failed | TaskState::GroupError | TaskState::Canceled
        )
    }

    /// Still moving on its own (Digdag's "progressing" set).
    pub fn is_progressing(self) -> bool {
        matches!(
            self,
            TaskState::Ready
                | TaskState::Running
                | TaskState::RetryWaiting
                | TaskState::GroupRetryWaiting
                | TaskState::Planned
        )
    }

    /// The SQL `IN (...)` list of every state, for the CHECK constraint test.
    pub fn sql_list() -> String {
        TaskState::ALL
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name the store did not write.
#[derive(Debug, thiserror::Error)]
#[error("unknown task state `{0}`")]
pub struct UnknownState(pub String);

impl FromStr for TaskState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<TaskState, UnknownState> {
        TaskState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

/// What happened to a task, as decided by `apply`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskEvent {
    /// Parent planned and every upstream succeeded: an operator task becomes ready.
    DepsMetOperator,
    /// Same, for a group: it is planned at once (its children are instantiated).
    DepsMetGroup,
    /// A new run with a new fence.
    Start,
    /// A group whose group-retry wait is over re-instantiates its children.
    Replan,
    /// The run succeeded and nothing follows under the task.
    Succeeded,
    /// The run succeeded and produced `^sub` and/or `^check` children.
    SucceededWithChildren,
    /// The run (or the children of a planned task) failed with no retry and no `_error`.
    Failed,
    /// Failed with no retry left, and `^error` is instantiated under the task.
    FailedWithHandler,
    /// Failed and `_retry` allows another try at `retry_at`.
    RetryScheduled,
    /// `retry_at` has passed.
    RetryDue,
    /// Recovery found the run in flight after a crash; it starts again with a new fence.
    Interrupted,
    /// No child is progressible and every child succeeded.
    ChildrenSucceeded,
    /// No child is progressible, some failed, and neither `_retry` nor `_error` applies.
    ChildrenFailed,
    /// `^error` finished under a task whose own run failed.
    ErrorHandledFailed,
    /// `^error` finished under a task whose children failed.
    ErrorHandledGroupError,
    /// The parent finished while this task could never run (an upstream failed).
    Skip,
    /// The attempt was killed.
    Cancel,
    /// A resumed attempt re-instantiated a task whose full name succeeded in the previous
    /// try: the new row takes that outcome without running.
    Resumed,
}

impl TaskEvent {
    pub const ALL: [TaskEvent; 18] = [
        TaskEvent::DepsMetOperator,
        TaskEvent::DepsMetGroup,
        TaskEvent::Start,
        TaskEvent::Replan,
        TaskEvent::Succeeded,
        TaskEvent::SucceededWithChildren,
        TaskEvent::Failed,
        TaskEvent::FailedWithHandler,
        TaskEvent::RetryScheduled,
        TaskEvent::RetryDue,
        TaskEvent::Interrupted,
        TaskEvent::ChildrenSucceeded,
        TaskEvent::ChildrenFailed,
        TaskEvent::ErrorHandledFailed,
        TaskEvent::ErrorHandledGroupError,
        TaskEvent::Skip,
        TaskEvent::Cancel,
        TaskEvent::Resumed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TaskEvent::DepsMetOperator => "deps_met_operator",
            TaskEvent::DepsMetGroup => "deps_met_group",
            TaskEvent::Start => "start",
            TaskEvent::Replan => "replan",
            TaskEvent::Succeeded => "succeeded",
            TaskEvent::SucceededWithChildren => "succeeded_with_children",
            TaskEvent::Failed => "failed",
            TaskEvent::FailedWithHandler => "failed_with_handler",
            TaskEvent::RetryScheduled => "retry_scheduled",
            TaskEvent::RetryDue => "retry_due",
            TaskEvent::Interrupted => "interrupted",
            TaskEvent::ChildrenSucceeded => "children_succeeded",
            TaskEvent::ChildrenFailed => "children_failed",
            TaskEvent::ErrorHandledFailed => "error_handled_failed",
            TaskEvent::ErrorHandledGroupError => "error_handled_group_error",
            TaskEvent::Skip => "skip",
            TaskEvent::Cancel => "cancel",
            TaskEvent::Resumed => "resumed",
        }
    }
}

/// A transition the engine must never ask for: a bug, reported with both ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("illegal transition: task in state `{state}` got event `{}`", event.name())]
pub struct IllegalTransition {
    pub state: TaskState,
    pub event: TaskEvent,
}

/// The transition table. No wildcard arms: adding a state or an event must revisit every row.
pub fn next(state: TaskState, event: TaskEvent) -> Result<TaskState, IllegalTransition> {
    use TaskEvent as E;
    use TaskState as S;
    let illegal = Err(IllegalTransition { state, event });
    match (state, event) {
        // --- blocked: only readiness, skipping and cancel apply.
        (S::Blocked, E::DepsMetOperator) => Ok(S::Ready),
        (S::Blocked, E::DepsMetGroup) => Ok(S::Planned),
        (S::Blocked, E::Skip) => Ok(S::Skipped),
        (S::Blocked, E::Cancel) => Ok(S::Canceled),
        (S::Blocked, E::Resumed) => Ok(S::Succeeded),
        (
            S::Blocked,
            E::Start
            | E::Replan
            | E::Succeeded
            | E::SucceededWithChildren
            | E::Failed
            | E::FailedWithHandler
            | E::RetryScheduled
            | E::RetryDue
            | E::Interrupted
            | E::ChildrenSucceeded
            | E::ChildrenFailed
            | E::ErrorHandledFailed
            | E::ErrorHandledGroupError,
        ) => illegal,

        // --- ready: an operator starts, a group re-plans; an evaluation error fails it
        // before any run exists.
        (S::Ready, E::Start) => Ok(S::Running),
        (S::Ready, E::Replan) => Ok(S::Planned),
        (S::Ready, E::Failed) => Ok(S::Failed),
        (S::Ready, E::FailedWithHandler) => Ok(S::Planned),
        (S::Ready, E::Succeeded) => Ok(S::Succeeded), // `_disable: true`
        (S::Ready, E::Cancel) => Ok(S::Canceled),
        (
            S::Ready,
            E::DepsMetOperator
            | E::DepsMetGroup
            | E::SucceededWithChildren
            | E::RetryScheduled
            | E::RetryDue
            | E::Interrupted
            | E::ChildrenSucceeded
            | E::ChildrenFailed
            | E::ErrorHandledFailed
            | E::ErrorHandledGroupError
            | E::Skip
            | E::Resumed,
        ) => illegal,

        // --- running: the outcome of the current fence.
        (S::Running, E::Succeeded) => Ok(S::Succeeded),
        (S::Running, E::SucceededWithChildren) => Ok(S::Planned),
        (S::Running, E::Failed) => Ok(S::Failed),
        (S::Running, E::FailedWithHandler) => Ok(S::Planned),
        (S::Running, E::RetryScheduled) => Ok(S::RetryWaiting),
        (S::Running, E::Interrupted) => Ok(S::Ready),
        (S::Running, E::Cancel) => Ok(S::Canceled),
        (
            S::Running,
            E::DepsMetOperator
            | E::DepsMetGroup
            | E::Start
            | E::Replan
            | E::RetryDue
            | E::ChildrenSucceeded
            | E::ChildrenFailed
            | E::ErrorHandledFailed
            | E::ErrorHandledGroupError
            | E::Skip
            | E::Resumed,
        ) => illegal,

        // --- waiting for a retry: only the clock or a cancel moves it.
        (S::RetryWaiting | S::GroupRetryWaiting, E::RetryDue) => Ok(S::Ready),
        (S::RetryWaiting | S::GroupRetryWaiting, E::Cancel) => Ok(S::Canceled),
        (
            S::RetryWaiting | S::GroupRetryWaiting,
            E::DepsMetOperator
            | E::DepsMetGroup
            | E::Start
            | E::Replan
            | E::Succeeded
            | E::SucceededWithChildren
            | E::Failed
            | E::FailedWithHandler
            | E::RetryScheduled
            | E::Interrupted
            | E::ChildrenSucceeded
            | E::ChildrenFailed
            | E::ErrorHandledFailed
            | E::ErrorHandledGroupError
            | E::Skip
            | E::Resumed,
        ) => illegal,

        // --- planned: decided once no child is progressible.
        (S::Planned, E::ChildrenSucceeded) => Ok(S::Succeeded),
        (S::Planned, E::ChildrenFailed) => Ok(S::GroupError),
        (S::Planned, E::RetryScheduled) => Ok(S::GroupRetryWaiting),
        (S::Planned, E::FailedWithHandler) => Ok(S::Planned),
        (S::Planned, E::ErrorHandledFailed) => Ok(S::Failed),
        (S::Planned, E::ErrorHandledGroupError) => Ok(S::GroupError),
        (S::Planned, E::Cancel) => Ok(S::Canceled),
        (
            S::Planned,
            E::DepsMetOperator
            | E::DepsMetGroup
            | E::Start
            | E::Replan
            | E::Succeeded
            | E::SucceededWithChildren
            | E::Failed
            | E::RetryDue
            | E::Interrupted
            | E::Skip
            | E::Resumed,
        ) => illegal,

        // --- terminal states. A completion or interruption reaching a finished task comes
        // from a fenced-off run (the fence check normally filters it first): absorbed.
        (
            S::Succeeded | S::Failed | S::GroupError | S::Canceled | S::Skipped,
            E::Succeeded
            | E::SucceededWithChildren
            | E::Failed
            | E::FailedWithHandler
            | E::RetryScheduled
            | E::Interrupted,
        ) => Ok(state),
        // Killing an attempt sweeps every task; the finished ones keep their outcome.
        (S::Succeeded | S::Failed | S::GroupError | S::Canceled | S::Skipped, E::Cancel) => {
            Ok(state)
        }
        // A retry timer that fires after the task finished (e.g. canceled meanwhile): absorbed.
        (S::Succeeded | S::Failed | S::GroupError | S::Canceled | S::Skipped, E::RetryDue) => {
            Ok(state)
        }
        // Structural events on a finished task would resurrect it: a bug.
        (
            S::Succeeded | S::Failed | S::GroupError | S::Canceled | S::Skipped,
            E::DepsMetOperator
            | E::DepsMetGroup
            | E::Start
            | E::Replan
            | E::ChildrenSucceeded
            | E::ChildrenFailed
            | E::ErrorHandledFailed
            | E::ErrorHandledGroupError
            | E::Skip
            | E::Resumed,
        ) => illegal,
    }
}

/// The table as markdown: one row per state, one column per event (`-` = illegal).
pub fn render_table() -> String {
    let mut out = String::from("| state \\ event |");
    for e in TaskEvent::ALL {
        out.push(' ');
        out.push_str(e.name());
        out.push_str(" |");
    }
    out.push_str("\n|---|");
    for _ in TaskEvent::ALL {
        out.push_str("---|");
    }
    out.push('\n');
    for s in TaskState::ALL {
        out.push_str("| ");
        out.push_str(s.as_str());
        out.push_str(" |");
        for e in TaskEvent::ALL {
            out.push(' ');
            match next(s, e) {
                Ok(to) if to == s => out.push('='),
                Ok(to) => out.push_str(to.as_str()),
                Err(_) => out.push('-'),
            }
            out.push_str(" |");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_str_round_trips_over_all_states() {
        for s in TaskState::ALL {
            assert_eq!(s.as_str().parse::<TaskState>().unwrap(), s);
        }
        assert!("done".parse::<TaskState>().is_err());
        let mut names: Vec<_> = TaskState::ALL.iter().map(|s| s.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TaskState::ALL.len());
    }

    #[test]
    fn schema_check_constraint_lists_every_state() {
        // Written as an IN list by migration 1, as `=`/`OR` terms since migration 11.
        let schema = include_str!("../../schema/001_init.sql");
        assert!(
            schema.contains(&format!("state IN ({})", TaskState::sql_list())),
            "schema/001_init.sql must list exactly {}",
            TaskState::sql_list()
        );
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("spade.db")).unwrap();
        let table: String = store
            .read("test", |tx| {
                tx.query_row(
                    "SELECT sql FROM sqlite_schema WHERE name = 'tasks'",
                    [],
                    |r| r.get(0),
                )
                .map_err(crate::store::sql("test"))
            })
            .unwrap();
        let terms: Vec<String> = TaskState::ALL
            .iter()
            .map(|s| format!("state = '{}'", s.as_str()))
            .collect();
        assert!(
            table.contains(&format!("CHECK ({})", terms.join(" OR "))),
            "{table}"
        );
    }

    #[test]
    fn terminal_states_only_absorb() {
        for s in TaskState::ALL {
            for e in TaskEvent::ALL {
                if let Ok(to) = next(s, e) {
                    if s.is_terminal() {
                        assert_eq!(to, s, "{s} must absorb {}", e.name());
                    }
                }
            }
        }
    }

    /// The whole table, `ALL x ALL`, against the copy in `docs/engine.md`.
    #[test]
    fn transition_table_matches_snapshot() {
        let table = render_table();
        let expected = "\
| blocked | ready | planned | - | - | - | - | - | - | - | - | - | - | - | - | - | skipped | canceled | succeeded |
| ready | - | - | running | planned | succeeded | - | failed | planned | - | - | - | - | - | - | - | - | canceled | - |
| running | - | - | - | - | succeeded | planned | failed | planned | retry_waiting | - | ready | - | - | - | - | - | canceled | - |
| retry_waiting | - | - | - | - | - | - | - | - | - | ready | - | - | - | - | - | - | canceled | - |
| group_retry_waiting | - | - | - | - | - | - | - | - | - | ready | - | - | - | - | - | - | canceled | - |
| planned | - | - | - | - | - | - | - | = | group_retry_waiting | - | - | succeeded | group_error | failed | group_error | - | canceled | - |
| succeeded | - | - | - | - | = | = | = | = | = | = | = | - | - | - | - | - | = | - |
| failed | - | - | - | - | = | = | = | = | = | = | = | - | - | - | - | - | = | - |
| group_error | - | - | - | - | = | = | = | = | = | = | = | - | - | - | - | - | = | - |
| canceled | - | - | - | - | = | = | = | = | = | = | = | - | - | - | - | - | = | - |
| skipped | - | - | - | - | = | = | = | = | = | = | = | - | - | - | - | - | = | - |
";
        let body: String = table.lines().skip(2).map(|l| format!("{l}\n")).collect();
        assert_eq!(body, expected);
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/engine.md"),
        )
        .unwrap();
        assert!(
            doc.contains(&table),
            "docs/engine.md must contain the current table:\n{table}"
        );
    }
}
