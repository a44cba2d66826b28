//! `py>: module.function` (or `module.Class.method`, or `module.Class` for its `run` method):
//! Digdag's Python API, run by spade's own runner (`py_runner.py`, embedded) through the
//! operator protocol.
//!
//! The runner is written next to the task log for every run and started as
//! `PYTHON... <task>.<fence>.py` in `<project>/<_workdir>`, whose modules it imports. `python:`
//! (a command or a list, also as `py: {python: ...}` in `_export`) chooses the interpreter,
//! `python3` by default. What the code stores, exports and generates (`digdag.env.store`,
//! `export`, `add_subtask`) comes back in the result file; an exception fails the task with
//! the traceback in the log and `Python command failed with code 1: MESSAGE (CLASS)` as the error,
//! as Digdag words it.

use super::protocol::{self, Invocation, Ran, Reply};
use super::{failed, Context, Error, Operator};
use crate::clock::BoxFuture;
use crate::engine::Outcome;
use crate::executor::spawn::ExitStatus;
use crate::expr::JsonMap;
use serde_json::Value as Json;
use std::path::Path;

pub struct Py;

/// The runner, embedded so the binary is all a host needs besides Python.
const RUNNER: &str = include_str!("py_runner.py");

impl Operator for Py {
    fn run(&self, ctx: Context) -> BoxFuture<'static, Result<Outcome, Error>> {
        Box::pin(async move {
            let params = with_py_defaults(&ctx.run.params);
            let python = match interpreter(&params) {
                Ok(python) => python,
                Err(message) => return Ok(failed(message, false)),
            };
            ctx.ensure_run_dir()?;
            let runner = ctx.run_file("py");
            write_runner(&runner)?;
            let (program, mut args) = match python.split_first() {
                Some((program, rest)) => (program.clone(), rest.to_vec()),
                None => return Ok(failed("`python` must name an interpreter", false)),
            };
            args.push(runner.to_string_lossy().into_owned());
            let invocation = Invocation {
                program: program.into(),
                args,
                params,
                resolve_params: false,
                extra_env: vec![
                    // Output reaches the task log as it is printed, in order.
                    ("PYTHONUNBUFFERED".into(), "1".into()),
                    ("PYTHONIOENCODING".into(), "utf-8".into()),
                    // No `__pycache__` written into the project by the runner's imports.
                    ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
                ],
            };
            let ran = protocol::run(&ctx, invocation).await;
            let _ = std::fs::remove_file(&runner);
            Ok(outcome(ran?))
        })
    }
}

/// Digdag merges the `py:` map under the task's params as defaults (`mergeDefault`), so
/// `_export: {py: {python: ...}}` sets the interpreter of every `py>` below it.
fn with_py_defaults(params: &JsonMap) -> JsonMap {
    let mut merged = params.clone();
    if let Some(Json::Object(defaults)) = params.get("py") {
        for (key, value) in defaults {
            if !merged.contains_key(key) {
                merged.insert(key.clone(), value.clone());
            }
        }
    }
    merged
}

/// `python:` as a command and its leading arguments.
fn interpreter(params: &JsonMap) -> Result<Vec<String>, String> {
    match params.get("python") {
        None | Some(Json::Null) => Ok(vec!["python3".into()]),
        Some(Json::String(s)) if !s.trim().is_empty() => Ok(vec![s.clone()]),
        Some(Json::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|item| match item {
                Json::String(s) => Ok(s.clone()),
                other => Err(format!(
                    "`python` must be a command or a list of strings, found `{other}` in the list"
                )),
            })
            .collect(),
        Some(other) => Err(format!(
            "`python` must be a command such as `python3` or a list such as `[python3, -u]`, found `{other}`"
        )),
    }
}

fn write_runner(path: &Path) -> Result<(), Error> {
    std::fs::write(path, RUNNER).map_err(|source| Error::Io {
        what: "write the py> runner",
        path: path.to_path_buf(),
        source,
    })
}

/// The task's outcome; failures are worded as Digdag words them, so `${error.message}` reads
/// the same in `_error` tasks (`Python command failed with code 1: ...`).
fn outcome(ran: Ran) -> Outcome {
    const WHAT: &str = "Python command";
    match ran {
        Ran::Exited {
            status: ExitStatus::Code(0),
            reply: Ok(Some(reply)),
        } => protocol::succeeded(reply),
        Ran::Exited {
            status: ExitStatus::Code(0),
            reply: Ok(None),
        } => failed(
            "the py> runner wrote no result: the Python code may have replaced or closed its files",
            true,
        ),
        Ran::Exited {
            status,
            reply: Ok(Some(Reply {
                error: Some(error), ..
            })),
        } => {
            let class = error
                .properties
                .get("class")
                .and_then(Json::as_str)
                .map(|c| format!(" ({c})"))
                .unwrap_or_default();
            let message = format!(
                "{}: {}{class}",
                protocol::ended(WHAT, status),
                error.message
            );
            protocol::failure(message, error)
        }
        other => protocol::outcome(WHAT, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpreter_forms() {
        let params = |json: &str| -> JsonMap { serde_json::from_str(json).unwrap() };
        assert_eq!(interpreter(&params("{}")).unwrap(), ["python3"]);
        assert_eq!(
            interpreter(&params(r#"{"python": "python"}"#)).unwrap(),
            ["python"]
        );
        assert_eq!(
            interpreter(&params(r#"{"python": ["python", "-v"]}"#)).unwrap(),
            ["python", "-v"]
        );
        assert!(interpreter(&params(r#"{"python": 3}"#)).is_err());
        assert!(interpreter(&params(r#"{"python": [1]}"#)).is_err());
        assert!(interpreter(&params(r#"{"python": []}"#)).is_err());
        // `_export: {py: {python: ...}}` applies unless the task sets its own.
        let merged = with_py_defaults(&params(r#"{"py": {"python": "/opt/py"}}"#));
        assert_eq!(interpreter(&merged).unwrap(), ["/opt/py"]);
        let merged = with_py_defaults(&params(r#"{"py": {"python": "/opt/py"}, "python": "p"}"#));
        assert_eq!(interpreter(&merged).unwrap(), ["p"]);
    }
}
