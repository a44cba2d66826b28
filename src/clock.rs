//! Injected time: the `Clock` trait, the one real `SystemClock`, a `ManualClock` for tests and a
//! `ScaledClock` whose virtual time runs faster than real time (the `--time-scale` test hook).

use jiff::{SignedDuration, Timestamp};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// A boxed, sendable future, so `Clock` and `Spawner` stay object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Wall-clock time as seen by the executor and the scheduler. Nothing else reads the time.
pub trait Clock: Send + Sync + 'static {
    /// The current time, UTC.
    fn now(&self) -> Timestamp;
    /// Resolves at (or after) `at` on this clock; at once when `at` is not in the future.
    fn sleep_until(&self, at: Timestamp) -> BoxFuture<'static, ()>;
}

/// The real clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        #[allow(clippy::disallowed_methods)] // the single real Clock
        let now = std::time::SystemTime::now();
        Timestamp::try_from(now).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn sleep_until(&self, at: Timestamp) -> BoxFuture<'static, ()> {
        let wait = positive(at.duration_since(self.now()));
        Box::pin(tokio::time::sleep(wait))
    }
}

/// Virtual time that runs `factor` times faster than real time, starting at `origin`.
///
/// `spade run --time-scale 100` uses it so that retry intervals and `wait>` of seconds take
/// milliseconds, while every recorded time and the reported attempt duration stay in virtual
/// seconds, which tests can assert on without measuring wall time.
#[derive(Debug)]
pub struct ScaledClock {
    origin: Timestamp,
    started: Instant,
    factor: f64,
}

impl ScaledClock {
    /// `factor` must be positive and finite; other values fall back to 1 (real speed).
    pub fn new(origin: Timestamp, factor: f64) -> ScaledClock {
        let factor = if factor.is_finite() && factor > 0.0 {
            factor
        } else {
            1.0
        };
        ScaledClock {
            origin,
            started: Instant::now(),
            factor,
        }
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> Timestamp {
        let real = self.started.elapsed().as_secs_f64();
        let virt = SignedDuration::try_from_secs_f64(real * self.factor).unwrap_or_default();
        self.origin.checked_add(virt).unwrap_or(Timestamp::MAX)
    }

    fn sleep_until(&self, at: Timestamp) -> BoxFuture<'static, ()> {
        let virt = positive(at.duration_since(self.now()));
        let real = Duration::from_secs_f64(virt.as_secs_f64() / self.factor);
        Box::pin(tokio::time::sleep(real))
    }
}

/// A clock that moves only when told: `advance` wakes every sleeper whose time has come.
#[derive(Clone, Debug)]
pub struct ManualClock {
    inner: Arc<Mutex<ManualState>>,
}

#[derive(Debug)]
struct ManualState {
    now: Timestamp,
    sleepers: Vec<(Timestamp, oneshot::Sender<()>)>,
}

impl ManualClock {
    pub fn new(now: Timestamp) -> ManualClock {
        ManualClock {
            inner: Arc::new(Mutex::new(ManualState {
                now,
                sleepers: Vec::new(),
            })),
        }
    }

    /// Moves time forward by `by` and wakes the sleepers that are due.
    pub fn advance(&self, by: Duration) {
        let mut state = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let by = SignedDuration::try_from(by).unwrap_or(SignedDuration::MAX);
        state.now = state.now.checked_add(by).unwrap_or(Timestamp::MAX);
        let now = state.now;
        let (due, waiting): (Vec<_>, Vec<_>) =
            state.sleepers.drain(..).partition(|(at, _)| *at <= now);
        state.sleepers = waiting;
        drop(state);
        for (_, tx) in due {
            // A sleeper that was dropped (its future canceled) has nobody to wake.
            let _ = tx.send(());
        }
    }

    /// How many sleepers are waiting: lets tests advance only once the code under test sleeps.
    pub fn sleepers(&self) -> usize {
        let state = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        state.sleepers.len()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .now
    }

    fn sleep_until(&self, at: Timestamp) -> BoxFuture<'static, ()> {
        let mut state = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if at <= state.now {
            return Box::pin(std::future::ready(()));
        }
        let (tx, rx) = oneshot::channel();
        state.sleepers.push((at, tx));
        Box::pin(async move {
            // The sender lives in the clock; an error means the clock was dropped, and then
            // nobody can ever advance it: waking is as good as anything.
            let _ = rx.await;
        })
    }
}

/// The clock the hidden test flags ask for: `--time-origin RFC3339` (virtual time starts
/// there) and `--time-scale N` (virtual seconds per real second); the real clock without them.
pub fn from_test_flags(origin: Option<&str>, scale: Option<f64>) -> Result<Arc<dyn Clock>, String> {
    if let Some(f) = scale {
        if !(f.is_finite() && f > 0.0) {
            return Err(format!(
                "invalid --time-scale `{f}`: expected a positive number"
            ));
        }
    }
    let origin = match origin {
        Some(text) => Some(text.parse::<Timestamp>().map_err(|e| {
            format!("invalid --time-origin `{text}`: expected an RFC 3339 time such as 2026-03-08T06:00:00Z ({e})")
        })?),
        None => None,
    };
    Ok(match (origin, scale) {
        (None, None) => Arc::new(SystemClock),
        (origin, scale) => Arc::new(ScaledClock::new(
            origin.unwrap_or_else(|| SystemClock.now()),
            scale.unwrap_or(1.0),
        )),
    })
}

fn positive(d: SignedDuration) -> Duration {
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    #[tokio::test]
    async fn manual_clock_wakes_only_due_sleepers() {
        let clock = ManualClock::new(t0());
        let at = t0().checked_add(SignedDuration::from_secs(10)).unwrap();
        let mut early = tokio::spawn(clock.sleep_until(at));
        let late_at = t0().checked_add(SignedDuration::from_secs(20)).unwrap();
        let late = tokio::spawn(clock.sleep_until(late_at));
        clock.advance(Duration::from_secs(5));
        tokio::task::yield_now().await;
        assert!(!early.is_finished());
        clock.advance(Duration::from_secs(5));
        (&mut early).await.unwrap();
        assert!(!late.is_finished());
        assert_eq!(clock.sleepers(), 1);
        assert_eq!(clock.now(), at);
    }

    #[tokio::test]
    async fn manual_clock_past_deadline_is_ready() {
        let clock = ManualClock::new(t0());
        clock.sleep_until(t0()).await;
        assert_eq!(clock.sleepers(), 0);
    }

    #[tokio::test]
    async fn scaled_clock_runs_faster() {
        let origin = t0();
        let clock = ScaledClock::new(origin, 1000.0);
        let target = origin.checked_add(SignedDuration::from_secs(5)).unwrap();
        let real = Instant::now();
        clock.sleep_until(target).await;
        assert!(clock.now() >= target);
        // 5 virtual seconds are 5 real milliseconds; allow generous scheduling slack.
        assert!(real.elapsed() < Duration::from_secs(2));
    }
}
