//! `echo>: MSG`: prints the message on its own line, or appends it to `append_file` (Digdag's
//! test form, which the conformance cases rely on).

use super::{failed, succeeded, Context, Error, Operator};
use crate::clock::BoxFuture;
use crate::engine::Outcome;
use std::io::Write as _;

pub struct Echo;

impl Operator for Echo {
    fn run(&self, ctx: Context) -> BoxFuture<'static, Result<Outcome, Error>> {
        Box::pin(async move { Ok(echo(&ctx)) })
    }
}

/// The file an `echo>` appends to, if any (without one the message is only logged and
/// printed, which the engine does inline: `operators::inline`).
pub(super) fn appends_to(run: &crate::engine::TaskRun) -> Option<String> {
    match run.params.get("append_file")? {
        serde_json::Value::Null => None,
        v => Some(super::json_text(v)),
    }
}

fn echo(ctx: &Context) -> Outcome {
    let message = ctx.command_text();
    if let Some(file) = appends_to(&ctx.run) {
        let path = ctx.project_dir.join(file);
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(message.as_bytes()));
        // Like Digdag, echo> has no task-level retry: a failed write fails the task for good.
        return match appended {
            Ok(()) => succeeded(),
            Err(e) => failed(format!("cannot append to {}: {e}", path.display()), false),
        };
    }
    // The message is the run's log in the store, readable like any task's log; the driver
    // commits it with the completion, so it costs no file and no transaction of its own.
    ctx.log(format!("{message}\n"));
    if ctx.foreground {
        let mut out = std::io::stdout().lock();
        if let Err(e) = writeln!(out, "{message}").and_then(|()| out.flush()) {
            return failed(format!("cannot write to stdout: {e}"), false);
        }
    }
    tracing::info!(task = %ctx.run.full_name, "{message}");
    succeeded()
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{context, manual_clock, run};
    use super::*;
    use crate::executor::spawn::FakeSpawner;
    use std::sync::Arc;

    #[tokio::test]
    async fn append_file_appends_without_newline() {
        let dir = tempfile::tempdir().unwrap();
        for msg in ["try1", "try2"] {
            let r = run("echo", msg.into(), r#"{"append_file": "out"}"#);
            let (ctx, _rx) = context(dir.path(), r, Arc::new(FakeSpawner::new()), manual_clock());
            let outcome = Echo.run(ctx).await.unwrap();
            assert!(matches!(outcome, Outcome::Succeeded { .. }));
        }
        let out = std::fs::read_to_string(dir.path().join("out")).unwrap();
        assert_eq!(out, "try1try2");
    }

    #[tokio::test]
    async fn unwritable_append_file_fails_without_retry() {
        let dir = tempfile::tempdir().unwrap();
        let r = run("echo", "x".into(), r#"{"append_file": "missing/dir/out"}"#);
        let (ctx, _rx) = context(dir.path(), r, Arc::new(FakeSpawner::new()), manual_clock());
        let outcome = Echo.run(ctx).await.unwrap();
        assert!(
            matches!(
                outcome,
                Outcome::Failed {
                    retryable: false,
                    ..
                }
            ),
            "{outcome:?}"
        );
    }
}
