//! The typed model of a workflow: the task tree, operators, directives and schedule, with spans.

use crate::diag::Span;
use crate::dig::value::{Map, Value};
use std::time::Duration;

/// One `.dig` file, lowered and checked.
#[derive(Clone, Debug)]
pub struct Workflow {
    /// The file path relative to the project, without `.dig` (Digdag's workflow name).
    pub name: String,
    /// IANA zone name from `timezone:`, `UTC` when absent.
    pub timezone: String,
    pub schedule: Option<ScheduleDef>,
    /// The raw `sla:` block, kept for a later issue.
    pub sla: Option<Value>,
    /// The root task: always a group named `+<name>`; the workflow's `_export`, `_retry`,
    /// `_error`, `_check` and `_parallel` sit on it.
    pub root: TaskDef,
    pub span: Span,
}

/// A node of the static task tree.
#[derive(Clone, Debug)]
pub struct TaskDef {
    /// The segment name including its sigil: `+load`, or `^error` / `^check` / `^sub` for
    /// generated nodes.
    pub name: String,
    pub kind: TaskKind,
    /// `_export:` of this task (visible to itself and all descendants).
    pub export: Map,
    /// Local params: every non-directive, non-`+` key of an operator task (includes `_env`).
    pub params: Map,
    pub retry: Option<RetryDef>,
    pub parallel: Option<ParallelDef>,
    pub background: bool,
    /// `_after:` sibling names (only inside a `_parallel` group).
    pub after: Vec<String>,
    /// `_error:` lowered as a task (group or operator) named `^error`.
    pub error: Option<Box<TaskDef>>,
    /// `_check:` lowered as a task named `^check`.
    pub check: Option<Box<TaskDef>>,
    /// `_timeout:` bounds one try of this task (spade extension).
    pub timeout: Option<Duration>,
    /// `_disable: true`: the task succeeds at once without running.
    pub disable: bool,
    pub span: Span,
}

impl TaskDef {
    /// A task with no directives, params or handlers: the starting point that lowering and
    /// test harnesses fill in.
    pub fn new(name: &str, kind: TaskKind, span: Span) -> TaskDef {
        TaskDef {
            name: name.to_string(),
            kind,
            export: Map::default(),
            params: Map::default(),
            retry: None,
            parallel: None,
            background: false,
            after: Vec::new(),
            error: None,
            check: None,
            timeout: None,
            disable: false,
            span,
        }
    }
}

#[derive(Clone, Debug)]
pub enum TaskKind {
    /// `+child:` tasks in definition order.
    Group(Vec<TaskDef>),
    Operator(Box<OperatorCall>),
}

/// `name>: command` (or `_type:` + `_command:`).
#[derive(Clone, Debug)]
pub struct OperatorCall {
    /// Without the `>`: `sh`, `echo`, `for_each`.
    pub name: String,
    /// The operator's main argument (`_command`), unevaluated. `Null` when absent.
    pub command: Value,
    /// Whether spade has it built in. Any other name may be supplied by an executable, looked
    /// up when the task runs (`operators::external`); `spade check` says which.
    pub supported: bool,
    /// `_do:` / `_else_do:` blocks of generator operators, kept unevaluated and unlowered:
    /// they are lowered when the generator runs.
    pub do_block: Option<Value>,
    pub else_do_block: Option<Value>,
    pub span: Span,
}

/// `_retry:`. An expression form is resolved when the task runs.
#[derive(Clone, Debug, PartialEq)]
pub enum RetryDef {
    Policy(RetryPolicy),
    /// `_retry: ${expr}` (evaluated per run; on groups Digdag ignores it, spade evaluates it
    /// when the group is instantiated).
    Expr(Value),
}

#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first try: the task runs at most `limit + 1` times.
    pub limit: u32,
    /// Wait before a retry; zero by default.
    pub interval: Duration,
    pub interval_type: IntervalType,
    /// Caps exponential intervals (ignored for constant, as Digdag does).
    pub max_interval: Option<Duration>,
    /// Bounds the whole retry sequence, measured from the first try's start (spade extension).
    pub deadline: Option<Duration>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntervalType {
    Constant,
    Exponential,
}

/// `_parallel:`.
#[derive(Clone, Debug, PartialEq)]
pub enum ParallelDef {
    /// `true` / `false`.
    All(bool),
    /// `{limit: N}`: consecutive chunks of N, each chunk waiting for the whole previous one.
    Limit(u32),
    /// `${expr}` evaluated when the group is instantiated.
    Expr(Value),
}

/// `schedule:` as written; `schedule::Schedule::from_def` turns it into firing rules.
#[derive(Clone, Debug)]
pub struct ScheduleDef {
    /// The kind with its `>`: `daily>`, `cron>`, `hourly>`, `weekly>`, `monthly>`,
    /// `minutes_interval>`.
    pub kind: String,
    pub value: String,
    /// Other keys of the `schedule:` map (`start`, `end`, `skip_on_overtime`, `skip_delayed_by`).
    pub options: Map,
    pub span: Span,
}
