//! `${...}` evaluation: a sandboxed JavaScript subset with moment, built-ins and secrets; pure.

use crate::diag::{Diagnostic, Span};
use crate::dig;

pub type JsonMap = serde_json::Map<String, serde_json::Value>;

/// An evaluation failure, with the span of the expression in its file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to evaluate `${{{source_text}}}`: {message}")]
    Eval {
        source_text: String,
        message: String,
        span: Span,
    },
}

impl Error {
    pub fn span(&self) -> Span {
        match self {
            Error::Eval { span, .. } => *span,
        }
    }
}

/// Looks up `${secret:name}`; values it returns are never logged or stored.
pub trait SecretProvider: Send + Sync {
    fn secret(&self, name: &str) -> Option<String>;
}

/// What evaluation needs besides the params: the zone `moment()` uses, `now` (injected, so
/// `moment()` is testable), and secrets.
pub struct EvalContext<'a> {
    pub timezone: jiff::tz::TimeZone,
    pub now: jiff::Timestamp,
    pub secrets: &'a dyn SecretProvider,
}

/// One layer of the scope chain, lowest first: built-ins, attempt params, exports and stores in
/// tree order, the task's own `_export`, then its local params.
pub enum Layer<'a> {
    /// Unevaluated params from a file.
    Raw(&'a dig::Map),
    /// Already-plain params (built-ins, stored params, `-p`). Strings here are data, never
    /// re-evaluated.
    Plain(&'a JsonMap),
    /// Plain JSON whose strings are templates (generated task bodies stored as JSON).
    RawJson(&'a JsonMap),
}

/// The result of evaluating a task's config once for one run.
#[derive(Debug, Default)]
pub struct Evaluated {
    pub params: JsonMap,
    /// Top-level keys whose values hold `${secret:...}` references: masked in logs and
    /// resolved by the operator at spawn time, so secret values never reach the store.
    pub secret_keys: Vec<String>,
}

/// Session facts the built-in variables are computed from.
#[derive(Clone, Debug)]
pub struct SessionInfo {
    pub timezone: String,
    pub session_time: jiff::Timestamp,
    pub session_uuid: String,
    pub session_id: i64,
    pub attempt_id: i64,
    pub project_id: i64,
    pub task_name: String,
    /// `None` for the default attempt: the variable is then absent, as in Digdag.
    pub retry_attempt_name: Option<String>,
    /// From the schedule, when the workflow has one.
    pub last_session_time: Option<jiff::Timestamp>,
    pub next_session_time: Option<jiff::Timestamp>,
    pub last_executed_session_time: Option<jiff::Timestamp>,
}

/// The built-in variables (`session_time`, `session_date`, ...) in Digdag's exact formats.
pub fn builtins(info: &SessionInfo) -> JsonMap {
    let _ = info;
    JsonMap::new()
}

/// Merges the layers (later wins, objects deep-merged) and evaluates every `${...}`.
pub fn eval_params(layers: &[Layer<'_>], ctx: &EvalContext<'_>) -> Result<Evaluated, Error> {
    let _ = (layers, ctx);
    Ok(Evaluated::default())
}

/// Evaluates one value (e.g. `_retry: ${n}`, `if>: ${x}`) against plain params.
pub fn eval_value(
    value: &dig::Value,
    params: &JsonMap,
    ctx: &EvalContext<'_>,
) -> Result<serde_json::Value, Error> {
    let _ = (params, ctx);
    Ok(value.to_json_raw())
}

/// Static checks for `spade check`: expressions that cannot parse, and references to
/// variables that are provably undefined, as warnings.
pub fn check_workflow(workflow: &dig::Workflow) -> Vec<Diagnostic> {
    let _ = workflow;
    Vec::new()
}
