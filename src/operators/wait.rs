//! `wait>: DURATION`: succeeds once the duration has passed on the injected clock.
//!
//! Digdag polls (the task re-arms itself); spade sleeps in the run instead, which gives the same
//! observable timing while the engine lives. After a crash the wait starts over.

use super::{failed, succeeded, Context, Error, Operator};
use crate::clock::BoxFuture;
use crate::engine::Outcome;
use std::time::Duration;

pub struct Wait;

impl Operator for Wait {
    fn run(&self, ctx: Context) -> BoxFuture<'static, Result<Outcome, Error>> {
        Box::pin(async move {
            let text = ctx.command_text();
            let Some(duration) = parse_duration(&text) else {
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

/// `[Nd][Nh][Nm][Ns]` (case-insensitive, spaces allowed), or a plain number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if text.is_empty() {
        return None;
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    let mut last_unit = 0;
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let (rank, unit) = match c.to_ascii_lowercase() {
            'd' => (1, 86_400),
            'h' => (2, 3_600),
            'm' => (3, 60),
            's' => (4, 1),
            _ => return None,
        };
        // Units must come once each, largest first, each after a number.
        if number.is_empty() || rank <= last_unit {
            return None;
        }
        last_unit = rank;
        let n: u64 = number.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        number.clear();
    }
    number.is_empty().then_some(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{context, manual_clock, run};
    use super::*;
    use crate::clock::Clock as _;
    use crate::executor::spawn::FakeSpawner;
    use std::sync::Arc;

    #[test]
    fn durations() {
        let check = |text: &str, secs: Option<u64>| {
            assert_eq!(
                parse_duration(text),
                secs.map(Duration::from_secs),
                "{text}"
            );
        };
        check("30s", Some(30));
        check("1m30s", Some(90));
        check("1M 30S", Some(90));
        check("2h", Some(7200));
        check("1d2h3m4s", Some(93_784));
        check("45", Some(45));
        check("", None);
        check("1x", None);
        check("30s1m", None);
        check("m", None);
        check("1m2", None);
    }

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
