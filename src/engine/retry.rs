//! The retry and deadline model: resolving `_retry`, interval growth, and the one deadline rule.
//!
//! Pure: every function takes `now` and counters as arguments. See `docs/engine.md`.

use crate::dig::{IntervalType, RetryPolicy};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::time::Duration;

/// A resolved `_retry` (literal or `${...}` already evaluated), stored in `tasks.retry_policy`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Retries after the first try: at most `limit + 1` tries.
    pub limit: u32,
    pub interval_ms: u64,
    pub exponential: bool,
    pub max_interval_ms: Option<u64>,
    /// Bounds the whole retry sequence, from the first try's start.
    pub deadline_ms: Option<u64>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl From<&RetryPolicy> for Policy {
    fn from(p: &RetryPolicy) -> Policy {
        Policy {
            limit: p.limit,
            interval_ms: ms(p.interval),
            exponential: p.interval_type == IntervalType::Exponential,
            max_interval_ms: p.max_interval.map(ms),
            deadline_ms: p.deadline.map(ms),
        }
    }
}

impl Policy {
    /// Reads an evaluated `_retry`: `N`, `"N"`, or `{limit, interval, interval_type,
    /// max_interval, deadline}` (durations in seconds, or strings with units).
    pub fn from_json(j: &Json) -> Result<Policy, String> {
        let bad = || format!("`_retry` must be an integer or a map with `limit:`, found {j}");
        match j {
            Json::Number(_) | Json::String(_) => Ok(Policy {
                limit: count(j).ok_or_else(bad)?,
                interval_ms: 0,
                exponential: false,
                max_interval_ms: None,
                deadline_ms: None,
            }),
            Json::Object(m) => {
                let limit = m.get("limit").and_then(count).ok_or_else(bad)?;
                let dur = |key: &str| -> Result<Option<u64>, String> {
                    match m.get(key) {
                        None | Some(Json::Null) => Ok(None),
                        Some(v) => duration_ms(v).map(Some).ok_or_else(|| {
                            format!("`_retry.{key}` must be seconds or a duration like `30s`, found {v}")
                        }),
                    }
                };
                let exponential = match m.get("interval_type") {
                    None | Some(Json::Null) => false,
                    Some(Json::String(s)) if s.eq_ignore_ascii_case("constant") => false,
                    Some(Json::String(s)) if s.eq_ignore_ascii_case("exponential") => true,
                    Some(v) => {
                        return Err(format!(
                            "`_retry.interval_type` must be `constant` or `exponential`, found {v}"
                        ))
                    }
                };
                Ok(Policy {
                    limit,
                    interval_ms: dur("interval")?.unwrap_or(0),
                    exponential,
                    max_interval_ms: dur("max_interval")?,
                    deadline_ms: dur("deadline")?,
                })
            }
            Json::Null | Json::Bool(_) | Json::Array(_) => Err(bad()),
        }
    }

    /// The wait before the next try, `retries_done` (0-based) retries having happened:
    /// constant `interval`, or `interval * 2^retries_done` capped by `max_interval`, saturating.
    pub fn delay(&self, retries_done: u32) -> Duration {
        if !self.exponential {
            return Duration::from_millis(self.interval_ms);
        }
        let factor = 1u64.checked_shl(retries_done).unwrap_or(u64::MAX);
        let grown = self.interval_ms.saturating_mul(factor);
        let capped = self.max_interval_ms.map_or(grown, |cap| grown.min(cap));
        Duration::from_millis(capped)
    }

    pub fn deadline(&self) -> Option<Duration> {
        self.deadline_ms.map(Duration::from_millis)
    }

    /// The absolute retry deadline, when set.
    pub fn deadline_at(&self, first_started_at: Timestamp) -> Option<Timestamp> {
        self.deadline().map(|d| add(first_started_at, d))
    }
}

fn count(j: &Json) -> Option<u32> {
    match j {
        Json::Number(n) => n.as_u64().and_then(|v| u32::try_from(v).ok()),
        Json::String(s) => s.trim().parse::<u32>().ok(),
        Json::Null | Json::Bool(_) | Json::Array(_) | Json::Object(_) => None,
    }
}

/// Seconds as a number, or a string: `"10"`, `"500ms"`, `"30s"`, `"5m"`, `"2h"`, `"1d"`.
pub fn duration_ms(j: &Json) -> Option<u64> {
    match j {
        Json::Number(n) => {
            let secs = n.as_f64()?;
            (secs >= 0.0 && secs.is_finite()).then(|| (secs * 1000.0).round() as u64)
        }
        Json::String(s) => str_duration_ms(s.trim()),
        Json::Null | Json::Bool(_) | Json::Array(_) | Json::Object(_) => None,
    }
}

/// A string duration: plain (possibly fractional) seconds, or the `.dig` form (`1m30s`) that
/// `dig::duration` parses for every other duration, so `_retry: ${...}` accepts what a literal
/// `_retry:` accepts.
fn str_duration_ms(s: &str) -> Option<u64> {
    if let Ok(secs) = s.parse::<f64>() {
        return (secs >= 0.0 && secs.is_finite()).then(|| (secs * 1000.0).round() as u64);
    }
    crate::dig::duration::parse(s).and_then(|d| u64::try_from(d.as_millis()).ok())
}

/// `t + d`, saturating at the end of jiff's range instead of failing.
pub fn add(t: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|sd| t.checked_add(sd).ok())
        .unwrap_or(Timestamp::MAX)
}

/// `30s`, `2m`, `1h30m`, `1500ms`.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 != 0 {
        return format!("{ms}ms");
    }
    let mut secs = ms / 1000;
    if secs == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

/// What happens after a failed try.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Try again at this time (which may be `now`).
    RetryAt(Timestamp),
    /// No retry: the failure message, completed with the limit that stopped the retries.
    GiveUp(String),
}

/// Decides after a failed try. `retry_count` is the number of retries already done (so this
/// was try `retry_count + 1`), `first_started_at` the first try's start. One deadline rule:
/// no retry is scheduled whose start would fall past `first_started_at + deadline`; the try
/// timeout never changes that and the deadline never shortens a try's `_timeout` (the executor
/// kills at whichever comes first, and the message names the limit that fired).
pub fn decide(
    policy: Option<&Policy>,
    retryable: bool,
    retry_count: u32,
    first_started_at: Timestamp,
    now: Timestamp,
    message: &str,
) -> Decision {
    let Some(policy) = policy.filter(|_| retryable) else {
        return Decision::GiveUp(message.to_owned());
    };
    let tries = retry_count.saturating_add(1);
    if let Some(deadline_at) = policy.deadline_at(first_started_at) {
        if now >= deadline_at {
            return Decision::GiveUp(deadline_message(policy, tries, message));
        }
    }
    if retry_count >= policy.limit {
        return Decision::GiveUp(message.to_owned());
    }
    let at = add(now, policy.delay(retry_count));
    if let Some(deadline_at) = policy.deadline_at(first_started_at) {
        if at > deadline_at {
            return Decision::GiveUp(deadline_message(policy, tries, message));
        }
    }
    Decision::RetryAt(at)
}

fn deadline_message(policy: &Policy, tries: u32, last: &str) -> String {
    let d = policy.deadline().map(fmt_duration).unwrap_or_default();
    let plural = if tries == 1 { "try" } else { "tries" };
    format!("retry deadline of {d} (_retry.deadline) reached after {tries} {plural}; last: {last}")
}

/// The message of a try killed at its `_timeout`.
pub fn timeout_message(limit: Duration) -> String {
    format!("try timed out after {} (_timeout)", fmt_duration(limit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn policy(j: Json) -> Policy {
        Policy::from_json(&j).unwrap()
    }

    #[test]
    fn retry_forms_parse() {
        assert_eq!(policy(json!(3)).limit, 3);
        assert_eq!(policy(json!("3")).limit, 3);
        let p = policy(
            json!({"limit": 2, "interval": "1m", "interval_type": "Exponential",
            "max_interval": 90, "deadline": "2h"}),
        );
        assert_eq!(
            p,
            Policy {
                limit: 2,
                interval_ms: 60_000,
                exponential: true,
                max_interval_ms: Some(90_000),
                deadline_ms: Some(7_200_000)
            }
        );
        for bad in [
            json!("three"),
            json!(true),
            json!({"interval": 1}),
            json!(-1),
        ] {
            assert!(Policy::from_json(&bad).is_err(), "{bad}");
        }
        assert!(Policy::from_json(&json!({"limit": 1, "interval_type": "linear"})).is_err());
    }

    #[test]
    fn exponential_intervals_double_and_cap_without_overflow() {
        let p = policy(json!({"limit": 100, "interval": 10, "interval_type": "exponential"}));
        let secs: Vec<u64> = (0..4).map(|n| p.delay(n).as_secs()).collect();
        assert_eq!(secs, [10, 20, 40, 80]);
        assert_eq!(p.delay(64), Duration::from_millis(u64::MAX));
        assert_eq!(p.delay(u32::MAX), Duration::from_millis(u64::MAX));
        let capped = policy(
            json!({"limit": 6, "interval": 1, "interval_type": "exponential",
            "max_interval": 2}),
        );
        let total: u64 = (0..6).map(|n| capped.delay(n).as_secs()).sum();
        assert_eq!(total, 11, "1+2+2+2+2+2 as in Digdag's retry_exponential");
        let constant = policy(json!({"limit": 3, "interval": 5, "max_interval": 1}));
        assert_eq!(
            constant.delay(3).as_secs(),
            5,
            "max_interval ignored for constant"
        );
        // A retry due at the end of time saturates rather than failing.
        assert_eq!(add(t(0), p.delay(64)), Timestamp::MAX);
    }

    /// Try timeout vs retry deadline, with `now` values only.
    #[test]
    fn deadline_combinations() {
        struct Case {
            name: &'static str,
            retry: Json,
            retry_count: u32,
            now: i64,
            message: String,
            expect: Result<i64, &'static str>,
        }
        let timed_out_30s = timeout_message(Duration::from_secs(30));
        let cases = [
            Case {
                name: "try timeout shorter than deadline: retried",
                retry: json!({"limit": 5, "interval": 10, "deadline": "2m"}),
                retry_count: 0,
                now: 30,
                message: timed_out_30s.clone(),
                expect: Ok(40),
            },
            Case {
                name: "retry start would fall past the deadline",
                retry: json!({"limit": 5, "interval": 10, "deadline": "2m"}),
                retry_count: 2,
                now: 115,
                message: timed_out_30s.clone(),
                expect: Err("retry deadline of 2m (_retry.deadline) reached after 3 tries; last: try timed out after 30s (_timeout)"),
            },
            Case {
                name: "try timeout longer than deadline: deadline fired first",
                retry: json!({"limit": 5, "deadline": 60}),
                retry_count: 0,
                now: 60,
                message: "killed".into(),
                expect: Err("retry deadline of 1m (_retry.deadline) reached after 1 try; last: killed"),
            },
            Case {
                name: "limit exhausted before deadline: plain message",
                retry: json!({"limit": 1, "deadline": "1h"}),
                retry_count: 1,
                now: 50,
                message: timed_out_30s.clone(),
                expect: Err("try timed out after 30s (_timeout)"),
            },
            Case {
                name: "no deadline: limit only",
                retry: json!(2),
                retry_count: 1,
                now: 1_000_000,
                message: "boom".into(),
                expect: Ok(1_000_000),
            },
            Case {
                name: "retry exactly at the deadline is allowed",
                retry: json!({"limit": 3, "interval": 20, "deadline": 100}),
                retry_count: 1,
                now: 80,
                message: "boom".into(),
                expect: Ok(100),
            },
        ];
        for c in cases {
            let p = policy(c.retry);
            let got = decide(Some(&p), true, c.retry_count, t(0), t(c.now), &c.message);
            let want = match c.expect {
                Ok(at) => Decision::RetryAt(t(at)),
                Err(m) => Decision::GiveUp(m.to_owned()),
            };
            assert_eq!(got, want, "{}", c.name);
        }
        // Not retryable (fail>, echo>, evaluation errors): no retry whatever the policy.
        let p = policy(json!(5));
        assert_eq!(
            decide(Some(&p), false, 0, t(0), t(1), "x"),
            Decision::GiveUp("x".into())
        );
    }

    #[test]
    fn durations_format_and_parse() {
        assert_eq!(fmt_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(fmt_duration(Duration::from_secs(120)), "2m");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(duration_ms(&json!("1m30s")), Some(90_000));
        assert_eq!(duration_ms(&json!("0.5")), Some(500));
        assert_eq!(duration_ms(&json!(1.5)), Some(1500));
        assert_eq!(duration_ms(&json!("x")), None);
    }
}
