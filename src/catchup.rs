//! What happens to a due slot: fire it, or skip it and say why. Pure: the scheduler and
//! `spade serve --dry-run` both ask [`decide`], so the dry run shows exactly what a start does.
//!
//! The order of the checks is Digdag's (`ScheduleExecutor.runSchedule`): `skip_delayed_by`
//! first, then spade's `catchup:` policy for slots missed while nothing served the schedule,
//! then `skip_on_overtime`.

use crate::dig::{ScheduleDef, ValueKind};
use crate::schedule::Slot;
use jiff::{SignedDuration, Timestamp};
use std::time::Duration;

/// `catchup:` in a `schedule:` block (a spade extension).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Catchup {
    /// Every missed slot runs, oldest first (Digdag's behaviour, the default).
    #[default]
    All,
    /// Only the newest missed slot runs.
    Latest,
    /// Missed slots are skipped; the schedule continues with the next slot due.
    None,
}

impl Catchup {
    pub const NAMES: [&'static str; 3] = ["all", "latest", "none"];

    pub fn parse(text: &str) -> Option<Catchup> {
        match text {
            "all" => Some(Catchup::All),
            "latest" => Some(Catchup::Latest),
            "none" => Some(Catchup::None),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Catchup::All => "all",
            Catchup::Latest => "latest",
            Catchup::None => "none",
        }
    }
}

/// The options of a `schedule:` block that decide about due slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Policy {
    pub skip_delayed_by: Option<Duration>,
    pub skip_on_overtime: bool,
    pub catchup: Catchup,
}

impl Policy {
    /// Reads the options of a loaded (validated) `schedule:`.
    pub fn from_def(def: &ScheduleDef) -> Policy {
        let text = |name: &str| {
            def.options.get(name).and_then(|v| match &v.kind {
                ValueKind::Str(t) => Some(t.raw.clone()),
                ValueKind::Int(i) => Some(i.to_string()),
                _ => None,
            })
        };
        Policy {
            skip_delayed_by: text("skip_delayed_by").and_then(|t| crate::dig::duration::parse(&t)),
            skip_on_overtime: def
                .options
                .get("skip_on_overtime")
                .is_some_and(|v| matches!(v.kind, ValueKind::Bool(true))),
            catchup: text("catchup")
                .and_then(|t| Catchup::parse(&t))
                .unwrap_or_default(),
        }
    }
}

/// Why a slot fired or was skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Its run time came while the schedule was served.
    Due,
    /// It was missed while nothing served the schedule, and `catchup:` runs it.
    CatchUp,
    /// Later than `skip_delayed_by` after its run time.
    Delayed,
    /// Missed, and `catchup: none` skips missed slots.
    CatchupNone,
    /// Missed, and `catchup: latest` runs only a newer missed slot.
    CatchupLatest,
    /// `skip_on_overtime: true` and an attempt of the workflow is running.
    Overtime,
}

impl Reason {
    pub fn fires(self) -> bool {
        matches!(self, Reason::Due | Reason::CatchUp)
    }

    /// For logs, the store and `--dry-run`.
    pub fn describe(self) -> &'static str {
        match self {
            Reason::Due => "due",
            Reason::CatchUp => "catch-up",
            Reason::Delayed => "skipped by skip_delayed_by",
            Reason::CatchupNone => "skipped by catchup: none",
            Reason::CatchupLatest => "skipped by catchup: latest (a newer slot is due)",
            Reason::Overtime => "skipped by skip_on_overtime (an attempt is running)",
        }
    }
}

/// Decides about the due `slot` at `now`. `next` is the slot after it, `armed` the instant
/// since which the schedule is served (slots due before it were missed), `busy` whether an
/// attempt of the workflow runs.
pub fn decide(
    slot: Slot,
    next: Option<Slot>,
    now: Timestamp,
    armed: Timestamp,
    policy: &Policy,
    busy: bool,
) -> Reason {
    if let Some(window) = policy.skip_delayed_by {
        let window = SignedDuration::try_from(window).unwrap_or(SignedDuration::MAX);
        let limit = slot.run_time.checked_add(window).unwrap_or(Timestamp::MAX);
        if now > limit {
            return Reason::Delayed;
        }
    }
    let missed = slot.run_time < armed;
    if missed {
        match policy.catchup {
            Catchup::All => {}
            Catchup::None => return Reason::CatchupNone,
            Catchup::Latest => {
                if next.is_some_and(|n| n.run_time <= now) {
                    return Reason::CatchupLatest;
                }
            }
        }
    }
    if policy.skip_on_overtime && busy {
        return Reason::Overtime;
    }
    if missed {
        Reason::CatchUp
    } else {
        Reason::Due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(min: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + min * 60).unwrap()
    }

    fn slot(min: i64) -> Slot {
        Slot {
            session_time: t(min),
            run_time: t(min),
        }
    }

    /// Every slot from minute 0 to 9 decided at minute 9.5 after a restart at minute 9.5: the
    /// letters say which fired (F) and which were skipped (s).
    fn run(policy: Policy) -> String {
        let now = t(9).checked_add(SignedDuration::from_secs(30)).unwrap();
        let armed = now;
        let mut busy = false;
        (0..10)
            .map(|m| {
                let r = decide(slot(m), Some(slot(m + 1)), now, armed, &policy, busy);
                if r.fires() {
                    busy = true;
                    'F'
                } else {
                    's'
                }
            })
            .collect()
    }

    #[test]
    fn catch_up_policies_after_downtime() {
        let p = |catchup| Policy {
            catchup,
            ..Policy::default()
        };
        assert_eq!(run(p(Catchup::All)), "FFFFFFFFFF");
        assert_eq!(run(p(Catchup::Latest)), "sssssssssF");
        assert_eq!(run(p(Catchup::None)), "ssssssssss");
        // skip_delayed_by 3m: only slots whose run time is within 3 minutes of now fire.
        let delayed = Policy {
            skip_delayed_by: Some(Duration::from_secs(180)),
            ..Policy::default()
        };
        assert_eq!(run(delayed), "sssssssFFF");
        // skip_on_overtime: the first catch-up slot starts, and the others find it running.
        let overtime = Policy {
            skip_on_overtime: true,
            ..Policy::default()
        };
        assert_eq!(run(overtime), "Fsssssssss");
    }

    #[test]
    fn a_slot_due_while_served_is_due_whatever_the_policy() {
        let policy = Policy {
            catchup: Catchup::None,
            ..Policy::default()
        };
        let r = decide(slot(5), Some(slot(6)), t(5), t(0), &policy, false);
        assert_eq!(r, Reason::Due);
    }
}
