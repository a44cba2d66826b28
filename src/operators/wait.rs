//! `wait>: DURATION`: succeeds once the duration has passed on the injected clock.
//!
//! Digdag polls (the task re-arms itself); spade sleeps in the run instead, which gives the same
//! observable timing while the engine lives. After a crash the wait starts over.

use super::{failed, succeeded, Context, Error, Operator};
use crate::clock::BoxFuture;
use crate::engine::Outcome;

pub struct Wait;

impl Operator for Wait {
    fn run(&self, ctx: Context) -> BoxFuture<'static, Result<Outcome, Error>> {
        Box::pin(async move {
            let text = ctx.command_text();
            let Some(duration) = crate::dig::duration::parse(&text) else {
                return Ok(failed(
                    format!("invalid duration `{text}` for wait>: use forms like `30s`, `1m30s`, `2h` or seconds"),
                    false,
                ));
            };
            let signed =
                jiff::SignedDuration::try_from(duration).unwrap_or(jiff::SignedDuration::MAX);
            let until = ctx
                .clock
                .now()
                .checked_add(signed)
                .unwrap_or(jiff::Timestamp::MAX);
            ctx.clock.sleep_until(until).await;
            Ok(succeeded())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{context, manual_clock, run};
    use super::*;
    use crate::clock::Clock as _;
    use crate::executor::spawn::FakeSpawner;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn sleeps_on_the_injected_clock() {
        let dir = tempfile::tempdir().unwrap();
        let clock = manual_clock();
        let r = run("wait", "1m30s".into(), "{}");
        let (ctx, _rx) = context(dir.path(), r, Arc::new(FakeSpawner::new()), clock.clone());
        let start = clock.now();
        let handle = tokio::spawn(Wait.run(ctx));
        while clock.sleepers() == 0 {
            tokio::task::yield_now().await;
        }
        clock.advance(Duration::from_secs(89));
        tokio::task::yield_now().await;
        assert!(!handle.is_finished());
        clock.advance(Duration::from_secs(1));
        let outcome = handle.await.unwrap().unwrap();
        assert!(matches!(outcome, Outcome::Succeeded { .. }));
        assert_eq!(clock.now().duration_since(start).as_secs(), 90);
    }
}
