//! `${...}` evaluation: a sandboxed JavaScript subset with moment, built-ins and secrets; pure.
//!
//! Pipeline: `dig::template::split` cuts strings into literal text and placeholders; `lexer`
//! and `parse` turn a placeholder into an `ast`; `eval` runs it (with `stdlib`, `strings`,
//! `numbers`, `arrays`, `json` and `moment`) against a `scope` that merges the param layers
//! and evaluates referenced params on demand; `template` renders the value as text. The
//! grammar and the evaluation rules are in `grammar/expr.md`.

mod arrays;
mod ast;
mod builtins;
mod check;
mod eval;
mod json;
mod lexer;
mod moment;
mod numbers;
mod parse;
mod regexp;
mod scope;
mod secrets;
mod stdlib;

pub(crate) use moment::{MONTHS, WEEKDAYS};
mod strings;
mod template;
mod value;

#[cfg(test)]
mod parity_tests;
#[cfg(test)]
mod tests;

use crate::diag::{Diagnostic, Span};
use crate::dig;
use std::path::PathBuf;

pub use secrets::{resolve_secrets, EnvSecrets, FileSecrets, Secret};

pub type JsonMap = serde_json::Map<String, serde_json::Value>;

/// An evaluation failure, with the span of the expression in its file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to evaluate `${{{}}}`: {message}", excerpt(.source_text))]
    Eval {
        source_text: String,
        message: String,
        span: Span,
    },
    /// Params that reference each other: `a -> b -> a`.
    #[error("reference cycle between params: `{chain}`")]
    Cycle { chain: String },
    #[error("unknown secret `{name}`")]
    UnknownSecret { name: String },
    #[error("invalid secret reference `${{{reference}}}`: only `${{secret:NAME}}` is supported")]
    SecretReference { reference: String },
    #[error("cannot read secrets file {}", path.display())]
    SecretsFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: expected `name: value` or `name=value`", path.display())]
    SecretsSyntax { path: PathBuf, line: usize },
}

/// Expressions longer than this are shortened in messages.
const EXCERPT_LEN: usize = 200;

/// `source` as messages quote it: a long expression (a generated 100 KB one) is cut, so a
/// message stays readable and a log line stays small.
pub(crate) fn excerpt(source: &str) -> std::borrow::Cow<'_, str> {
    match source.char_indices().nth(EXCERPT_LEN) {
        None => source.into(),
        Some((end, _)) => format!("{}…", &source[..end]).into(),
    }
}

impl Error {
    /// Where the failing expression is; [`Span::NONE`] for errors without one.
    pub fn span(&self) -> Span {
        match self {
            Error::Eval { span, .. } => *span,
            Error::Cycle { .. }
            | Error::UnknownSecret { .. }
            | Error::SecretReference { .. }
            | Error::SecretsFile { .. }
            | Error::SecretsSyntax { .. } => Span::NONE,
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
    builtins::builtins(info)
}

/// Merges the layers (later wins, objects deep-merged) and evaluates every `${...}`.
///
/// Strings of `Raw` and `RawJson` layers are templates; `Plain` strings are data. A param that
/// an expression references is evaluated first (memoised), so key order does not matter; a
/// reference cycle is [`Error::Cycle`]. `_do`/`_else_do` blocks stay unevaluated at any depth
/// and top-level `_error`/`_check` are dropped (they are tasks, not params). `${secret:...}`
/// stays literal, and the top-level keys holding one are listed in `secret_keys`.
pub fn eval_params(layers: &[Layer<'_>], ctx: &EvalContext<'_>) -> Result<Evaluated, Error> {
    let host = host(ctx);
    let scope = scope::Scope::new(scope::merge(layers), &host);
    let params = scope.evaluate_all()?;
    let secret_keys = params
        .iter()
        .filter(|(_, v)| holds_secret(v))
        .map(|(k, _)| k.clone())
        .collect();
    Ok(Evaluated {
        params,
        secret_keys,
    })
}

fn host(ctx: &EvalContext<'_>) -> eval::Host {
    value::reset_allocated();
    eval::Host::new(ctx.timezone.clone(), ctx.now)
}

fn holds_secret(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => template::has_secret_reference(s),
        serde_json::Value::Array(items) => items.iter().any(holds_secret),
        // http> also takes secrets as header and query *names*.
        serde_json::Value::Object(map) => map
            .iter()
            .any(|(k, v)| template::has_secret_reference(k) || holds_secret(v)),
        _ => false,
    }
}

/// Evaluates one value (e.g. `_retry: ${n}`, `if>: ${x}`) against plain params.
pub fn eval_value(
    value: &dig::Value,
    params: &JsonMap,
    ctx: &EvalContext<'_>,
) -> Result<serde_json::Value, Error> {
    let host = host(ctx);
    let layers = [Layer::Plain(params)];
    let scope = scope::Scope::new(scope::merge(&layers), &host);
    scope.eval_dig(value)
}

/// Static checks for `spade check`: expressions that cannot parse, and references to
/// variables that are provably undefined, as warnings.
pub fn check_workflow(workflow: &dig::Workflow) -> Vec<Diagnostic> {
    check::check_workflow(workflow)
}
