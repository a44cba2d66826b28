//! `fail>: MSG`: fails the task with MSG; like Digdag, task-level `_retry` does not apply.

use super::{failed, Context, Error, Operator};
use crate::clock::BoxFuture;
use crate::engine::Outcome;

pub struct Fail;

impl Operator for Fail {
    fn run(&self, ctx: Context) -> BoxFuture<'static, Result<Outcome, Error>> {
        Box::pin(async move { Ok(failed(ctx.command_text(), false)) })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{context, manual_clock, run};
    use super::*;
    use crate::executor::spawn::FakeSpawner;
    use std::sync::Arc;

    #[tokio::test]
    async fn fails_with_the_message_and_no_retry() {
        let dir = tempfile::tempdir().unwrap();
        let r = run("fail", "task failed expectedly".into(), "{}");
        let (ctx, _rx) = context(dir.path(), r, Arc::new(FakeSpawner::new()), manual_clock());
        match Fail.run(ctx).await.unwrap() {
            Outcome::Failed {
                message,
                error,
                retryable,
            } => {
                assert_eq!(message, "task failed expectedly");
                assert_eq!(error["message"], "task failed expectedly");
                assert!(!retryable);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
