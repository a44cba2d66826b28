//! `schedule:` -> firing times: cron and daily/hourly/weekly/monthly/minutes_interval, DST-correct; pure.
//!
//! A slot has a *session time* (what the run is for) and a *run time* (when it starts).
//! spade's rules (they differ from Digdag only on DST days, see ARCHITECTURE.md):
//! - `daily>`, `weekly>`, `monthly>`: the session time is local midnight of the day; the run
//!   time is the wall-clock time written, in the workflow's zone (Digdag adds it as absolute
//!   seconds after midnight, so it runs an hour late on a spring-forward day).
//! - A wall-clock time that does not exist (the spring-forward gap) runs at the first instant
//!   after the gap; one that exists twice (fall back) runs once, at its first occurrence. This
//!   holds for `cron>` too.
//! - `hourly>` and `minutes_interval>` count absolute hours and minutes, so a fall-back night has
//!   two sessions at local 01:00, with two offsets.
//!
//! Everything here takes time as an argument: nothing reads a clock.

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp, ToSpan};
use std::str::FromStr;

/// One firing of a schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub session_time: Timestamp,
    pub run_time: Timestamp,
}

/// A malformed `schedule:`; `message` follows the diagnostics wording rules.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub message: String,
    /// Which part is wrong: `kind`, `value`, or an option name such as `start`.
    pub part: &'static str,
}

fn err(part: &'static str, message: impl Into<String>) -> Error {
    Error {
        message: message.into(),
        part,
    }
}

/// The firing rule, without zone or bounds.
#[derive(Clone, Debug)]
pub enum Rule {
    /// `hourly>: MM:SS`: every absolute hour, run MM:SS later.
    Hourly { delay: SignedDuration },
    /// `daily>: HH:MM:SS`.
    Daily { at: WallTime },
    /// `weekly>: Sun,HH:MM:SS`.
    Weekly { day: Weekday, at: WallTime },
    /// `monthly>: D,HH:MM:SS`; months without day D are skipped.
    Monthly { day: i8, at: WallTime },
    /// `minutes_interval>: M`: every absolute minute whose local minute-of-hour is a multiple.
    MinutesInterval { minutes: u32 },
    /// `cron>: 'm h dom mon dow'`, matched on local wall-clock time.
    Cron {
        expr: String,
        schedule: Box<cron::Schedule>,
    },
}

/// A wall-clock offset from local midnight; may exceed a day (`daily>: 30:00:00` runs at 06:00
/// the next day, as in Digdag).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WallTime {
    pub seconds: i64,
}

/// All names a `schedule:` may use for its kind, for validation and "did you mean" hints.
pub const KINDS: [&str; 6] = [
    "hourly>",
    "daily>",
    "weekly>",
    "monthly>",
    "minutes_interval>",
    "cron>",
];

/// Options a `schedule:` map may hold besides its kind.
pub const OPTIONS: [&str; 5] = [
    "start",
    "end",
    "skip_on_overtime",
    "skip_delayed_by",
    "catchup",
];

impl Rule {
    /// Parses `kind` (with its `>`) and its value as written in the file.
    pub fn parse(kind: &str, value: &str) -> Result<Rule, Error> {
        let value = value.trim();
        match kind {
            "hourly>" => {
                let (m, s) = parse_two(value).ok_or_else(|| {
                    err("value", format!("`hourly>` takes `MM:SS`, found `{value}`"))
                })?;
                Ok(Rule::Hourly {
                    delay: SignedDuration::from_secs(m * 60 + s),
                })
            }
            "daily>" => Ok(Rule::Daily {
                at: parse_wall_time(value, "daily>")?,
            }),
            "weekly>" => {
                let (day, time) = value.split_once(',').ok_or_else(|| {
                    err(
                        "value",
                        format!(
                            "`weekly>` takes `DAY,HH:MM:SS` (e.g. `Sun,09:00:00`), found `{value}`"
                        ),
                    )
                })?;
                Ok(Rule::Weekly {
                    day: parse_weekday(day.trim())?,
                    at: parse_wall_time(time.trim(), "weekly>")?,
                })
            }
            "monthly>" => {
                let (day, time) = value.split_once(',').ok_or_else(|| {
                    err(
                        "value",
                        format!(
                            "`monthly>` takes `D,HH:MM:SS` (e.g. `1,04:00:00`), found `{value}`"
                        ),
                    )
                })?;
                let day: i8 = day
                    .trim()
                    .parse()
                    .ok()
                    .filter(|d| (1..=31).contains(d))
                    .ok_or_else(|| {
                        err(
                            "value",
                            format!("`monthly>` day must be 1 to 31, found `{}`", day.trim()),
                        )
                    })?;
                Ok(Rule::Monthly {
                    day,
                    at: parse_wall_time(time.trim(), "monthly>")?,
                })
            }
            "minutes_interval>" => {
                let minutes: u32 = value
                    .parse()
                    .ok()
                    .filter(|m| (1..=1440).contains(m))
                    .ok_or_else(|| {
                        err(
                            "value",
                            format!(
                                "`minutes_interval>` takes a whole number of minutes from 1 to 1440, found `{value}`"
                            ),
                        )
                    })?;
                Ok(Rule::MinutesInterval { minutes })
            }
            "cron>" => {
                let schedule = parse_cron(value)?;
                Ok(Rule::Cron {
                    expr: value.to_string(),
                    schedule: Box::new(schedule),
                })
            }
            other => Err(err(
                "kind",
                format!(
                    "unknown schedule `{other}`: use one of {}",
                    KINDS.map(|k| format!("`{k}`")).join(", ")
                ),
            )),
        }
    }
}

fn parse_two(value: &str) -> Option<(i64, i64)> {
    let (a, b) = value.split_once(':')?;
    let a: i64 = a.parse().ok()?;
    let b: i64 = b.parse().ok()?;
    ((0..60).contains(&a) && (0..60).contains(&b)).then_some((a, b))
}

fn parse_wall_time(value: &str, kind: &str) -> Result<WallTime, Error> {
    let bad = || {
        err(
            "value",
            format!("`{kind}` time must be `HH:MM:SS`, found `{value}`"),
        )
    };
    let mut parts = value.split(':');
    let (Some(h), Some(m), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let digits = |t: &str| !t.is_empty() && t.len() <= 2 && t.bytes().all(|b| b.is_ascii_digit());
    if !(digits(h) && digits(m) && digits(s)) {
        return Err(bad());
    }
    let (h, m, s): (i64, i64, i64) = (
        h.parse().map_err(|_| bad())?,
        m.parse().map_err(|_| bad())?,
        s.parse().map_err(|_| bad())?,
    );
    if m >= 60 || s >= 60 {
        return Err(bad());
    }
    Ok(WallTime {
        seconds: h * 3600 + m * 60 + s,
    })
}

fn parse_weekday(day: &str) -> Result<Weekday, Error> {
    let lower = day.to_ascii_lowercase();
    let found = match lower.as_str() {
        "0" | "7" | "sun" | "sunday" => Some(Weekday::Sunday),
        "1" | "mon" | "monday" => Some(Weekday::Monday),
        "2" | "tue" | "tuesday" => Some(Weekday::Tuesday),
        "3" | "wed" | "wednesday" => Some(Weekday::Wednesday),
        "4" | "thu" | "thursday" => Some(Weekday::Thursday),
        "5" | "fri" | "friday" => Some(Weekday::Friday),
        "6" | "sat" | "saturday" => Some(Weekday::Saturday),
        _ => None,
    };
    found.ok_or_else(|| {
        err(
            "value",
            format!("`weekly>` day must be `Sun` to `Sat` or 0 to 6, found `{day}`"),
        )
    })
}

/// Standard 5-field cron (minute hour day-of-month month day-of-week, Sunday = 0 or 7) into the
/// `cron` crate's form, which wants a seconds field and numbers Sunday as 1.
fn parse_cron(expr: &str) -> Result<cron::Schedule, Error> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(err(
            "value",
            format!(
                "`cron>` takes 5 fields (minute hour day month weekday), found {} in `{expr}`",
                fields.len()
            ),
        ));
    }
    let dow = translate_weekday_field(fields[4]);
    let text = format!(
        "0 {} {} {} {} {}",
        fields[0], fields[1], fields[2], fields[3], dow
    );
    cron::Schedule::from_str(&text)
        .map_err(|e| err("value", format!("invalid `cron>` expression `{expr}`: {e}")))
}

/// Rewrites numeric weekdays (0-7) as names, so Sunday-is-0 crontab text means the same to the
/// `cron` crate (which counts Sunday as 1).
fn translate_weekday_field(field: &str) -> String {
    const NAMES: [&str; 8] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];
    let mut out = String::new();
    let mut number = String::new();
    let mut after_slash = false;
    let flush = |number: &mut String, out: &mut String, after_slash: bool| {
        if number.is_empty() {
            return;
        }
        match number.parse::<usize>().ok().and_then(|n| NAMES.get(n)) {
            // A step (`*/2`) stays numeric.
            Some(name) if !after_slash => out.push_str(name),
            _ => out.push_str(number),
        }
        number.clear();
    };
    for c in field.chars() {
        if c.is_ascii_digit() {
            number.push(c);
        } else {
            flush(&mut number, &mut out, after_slash);
            after_slash = c == '/';
            out.push(c);
        }
    }
    flush(&mut number, &mut out, after_slash);
    out
}

/// A schedule bound to a zone, with optional `start`/`end` dates (inclusive, compared with the
/// run time, as Digdag does).
#[derive(Clone, Debug)]
pub struct Schedule {
    pub rule: Rule,
    pub tz: TimeZone,
    pub start: Option<Date>,
    pub end: Option<Date>,
}

impl Schedule {
    /// Builds a schedule from a workflow's `schedule:` and `timezone`.
    pub fn from_def(def: &crate::dig::ScheduleDef, timezone: &str) -> Result<Schedule, Error> {
        let rule = Rule::parse(&def.kind, &def.value)?;
        let tz = TimeZone::get(timezone)
            .map_err(|_| err("timezone", format!("unknown time zone `{timezone}`")))?;
        let date_option = |name: &'static str| -> Result<Option<Date>, Error> {
            let Some(value) = def.options.get(name) else {
                return Ok(None);
            };
            let text = match &value.kind {
                crate::dig::ValueKind::Str(t) => t.raw.clone(),
                _ => String::new(),
            };
            parse_date(&text).map(Some).ok_or_else(|| {
                err(
                    name,
                    format!("`{name}` must be a date `YYYY-MM-DD`, found `{text}`"),
                )
            })
        };
        Ok(Schedule {
            rule,
            tz,
            start: date_option("start")?,
            end: date_option("end")?,
        })
    }

    /// The first slot whose run time is at or after `after`.
    pub fn first_at_or_after(&self, after: Timestamp) -> Option<Slot> {
        self.slots_from(after).next()
    }

    /// Up to `count` slots whose run time is at or after `after`, in order.
    pub fn slots(&self, after: Timestamp, count: usize) -> Vec<Slot> {
        self.slots_from(after).take(count).collect()
    }

    /// Slots in order whose run time is at or after `after` and within `start`/`end`.
    pub fn slots_from(&self, after: Timestamp) -> impl Iterator<Item = Slot> + '_ {
        let start_bound = self
            .start
            .and_then(|d| local_instant(&self.tz, d.to_datetime(Time::midnight())));
        let end_bound = self.end.and_then(|d| {
            d.checked_add(1.day())
                .ok()
                .and_then(|next| local_instant(&self.tz, next.to_datetime(Time::midnight())))
        });
        let from = match start_bound {
            Some(s) if s > after => s,
            _ => after,
        };
        // Sessions start at most `max_delay` before their run time, so begin the search there.
        let search_from = from
            .checked_sub(self.max_delay())
            .and_then(|t| t.checked_sub(SignedDuration::from_hours(3)))
            .unwrap_or(from);
        self.sessions_from(search_from)
            .skip_while(move |slot| slot.run_time < from)
            .take_while(move |slot| end_bound.is_none_or(|end| slot.run_time < end))
    }

    /// The slot before the one whose session time is `session_time` (`last_session_time`).
    pub fn previous(&self, session_time: Timestamp) -> Option<Slot> {
        // Search backwards in growing windows; schedules fire at least yearly. The first
        // window is two hours: a minute schedule then walks 120 slots, not a day's 1,440 (the
        // scheduler computes this for every slot it fires).
        for hours in [2i64, 24, 24 * 8, 24 * 32, 24 * 400, 24 * 1500] {
            let from = session_time
                .checked_sub(SignedDuration::from_hours(hours))
                .ok()?;
            let last = self
                .sessions_from(from)
                .take_while(|s| s.session_time < session_time)
                .last();
            if last.is_some() {
                return last;
            }
        }
        None
    }

    /// The slot after the one whose session time is `session_time` (`next_session_time`).
    pub fn next(&self, session_time: Timestamp) -> Option<Slot> {
        self.sessions_from(session_time)
            .find(|s| s.session_time > session_time)
    }

    /// [`Schedule::next`] within `start`/`end` (compared with the run time, as Digdag does):
    /// what the scheduler fires after the slot of `session_time`; `None` past the end.
    pub fn next_within_bounds(&self, session_time: Timestamp) -> Option<Slot> {
        let next = self.next(session_time)?;
        let start = self
            .start
            .and_then(|d| local_instant(&self.tz, d.to_datetime(Time::midnight())));
        if start.is_some_and(|s| next.run_time < s) {
            return start.and_then(|s| self.first_at_or_after(s));
        }
        let end = self.end.and_then(|d| {
            d.checked_add(1.day())
                .ok()
                .and_then(|next| local_instant(&self.tz, next.to_datetime(Time::midnight())))
        });
        if end.is_some_and(|e| next.run_time >= e) {
            return None;
        }
        Some(next)
    }

    fn max_delay(&self) -> SignedDuration {
        match &self.rule {
            Rule::Hourly { delay } => *delay,
            Rule::Daily { at } | Rule::Weekly { at, .. } | Rule::Monthly { at, .. } => {
                SignedDuration::from_secs(at.seconds)
            }
            Rule::MinutesInterval { .. } | Rule::Cron { .. } => SignedDuration::ZERO,
        }
    }

    /// Every slot whose session time is at or after `from`, in order, with no bounds applied.
    fn sessions_from(&self, from: Timestamp) -> Box<dyn Iterator<Item = Slot> + '_> {
        let tz = &self.tz;
        match &self.rule {
            Rule::Hourly { delay } => {
                let delay = *delay;
                let first = next_aligned(tz, from, 60);
                Box::new(
                    std::iter::successors(first, move |t| {
                        next_aligned(tz, t.checked_add(SignedDuration::from_mins(1)).ok()?, 60)
                    })
                    .filter_map(move |session| {
                        Some(Slot {
                            session_time: session,
                            run_time: session.checked_add(delay).ok()?,
                        })
                    }),
                )
            }
            Rule::MinutesInterval { minutes } => {
                let minutes = *minutes;
                let first = next_aligned(tz, from, minutes);
                Box::new(
                    std::iter::successors(first, move |t| {
                        next_aligned(
                            tz,
                            t.checked_add(SignedDuration::from_mins(1)).ok()?,
                            minutes,
                        )
                    })
                    .map(|t| Slot {
                        session_time: t,
                        run_time: t,
                    }),
                )
            }
            Rule::Daily { at } => self.day_slots(from, *at, |_| true),
            Rule::Weekly { day, at } => {
                let day = *day;
                self.day_slots(from, *at, move |d| d.weekday() == day)
            }
            Rule::Monthly { day, at } => {
                let day = *day;
                self.day_slots(from, *at, move |d| d.day() == day)
            }
            Rule::Cron { schedule, .. } => {
                let local = from.to_zoned(tz.clone()).datetime();
                // The cron crate iterates civil times: feed it local wall-clock time as if UTC.
                let naive = chrono_naive(local)
                    .and_then(|n| n.checked_sub_signed(chrono::TimeDelta::seconds(1)));
                let Some(naive) = naive else {
                    return Box::new(std::iter::empty());
                };
                let start =
                    chrono::DateTime::<chrono::Utc>::from_naive_utc_and_offset(naive, chrono::Utc);
                let mut previous: Option<Timestamp> = None;
                Box::new(
                    schedule
                        .after_owned(start)
                        .filter_map(move |m| {
                            let dt = civil_from_chrono(m.naive_utc())?;
                            let t = local_instant(tz, dt)?;
                            // Two civil matches inside one gap map to the same instant; and the
                            // civil walk never repeats a folded hour: each instant fires once.
                            if previous.is_some_and(|p| t <= p) {
                                return None;
                            }
                            previous = Some(t);
                            Some(Slot {
                                session_time: t,
                                run_time: t,
                            })
                        })
                        .skip_while(move |s| s.session_time < from),
                )
            }
        }
    }

    /// Slots of day-based rules: session at local midnight of each matching day, run at the
    /// written wall-clock time of that day.
    fn day_slots<'a>(
        &'a self,
        from: Timestamp,
        at: WallTime,
        matches: impl Fn(Date) -> bool + 'a,
    ) -> Box<dyn Iterator<Item = Slot> + 'a> {
        let tz = &self.tz;
        let first_day = from.to_zoned(tz.clone()).date();
        Box::new(
            std::iter::successors(Some(first_day), |d| d.tomorrow().ok())
                .filter(move |d| matches(*d))
                .filter_map(move |d| {
                    let session_time = local_instant(tz, d.to_datetime(Time::midnight()))?;
                    let run_dt = d
                        .to_datetime(Time::midnight())
                        .checked_add(SignedDuration::from_secs(at.seconds))
                        .ok()?;
                    let run_time = local_instant(tz, run_dt)?;
                    Some(Slot {
                        session_time,
                        run_time,
                    })
                })
                .skip_while(move |s| s.session_time < from),
        )
    }
}

/// The first instant at or after `t` whose local minute-of-hour is a multiple of `minutes`
/// (for `minutes` = 60: the top of a local hour), at whole minutes.
fn next_aligned(tz: &TimeZone, t: Timestamp, minutes: u32) -> Option<Timestamp> {
    // Round up to a whole minute, then step minute by minute (at most `minutes` steps).
    let secs = t.as_second();
    let nanos = t.subsec_nanosecond();
    let rounded = if secs.rem_euclid(60) == 0 && nanos == 0 {
        secs
    } else {
        secs - secs.rem_euclid(60) + 60
    };
    let mut candidate = Timestamp::from_second(rounded).ok()?;
    for _ in 0..=minutes.max(60) * 2 {
        let local = candidate.to_zoned(tz.clone());
        let minute_of_day = i64::from(local.hour()) * 60 + i64::from(local.minute());
        if minute_of_day.rem_euclid(i64::from(minutes)) == 0 {
            return Some(candidate);
        }
        candidate = candidate.checked_add(SignedDuration::from_mins(1)).ok()?;
    }
    None
}

/// The instant of a local wall-clock time: a time in a gap runs at the first instant after the
/// gap, a time that exists twice at its first occurrence.
pub fn local_instant(tz: &TimeZone, dt: DateTime) -> Option<Timestamp> {
    let ambiguous = tz.to_ambiguous_timestamp(dt);
    match ambiguous.offset() {
        AmbiguousOffset::Unambiguous { .. } | AmbiguousOffset::Fold { .. } => {
            ambiguous.earlier().ok()
        }
        AmbiguousOffset::Gap { after, .. } => {
            // With the later offset the civil time lands just before the transition; the next
            // transition from there is the end of the gap.
            let before_gap = after.to_timestamp(dt).ok()?;
            tz.following(before_gap).next().map(|tr| tr.timestamp())
        }
    }
}

/// Parses `YYYY-MM-DD` strictly.
pub fn parse_date(text: &str) -> Option<Date> {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    text.parse::<Date>().ok()
}

fn chrono_naive(dt: DateTime) -> Option<chrono::NaiveDateTime> {
    let date = chrono::NaiveDate::from_ymd_opt(
        i32::from(dt.year()),
        u32::try_from(dt.month()).ok()?,
        u32::try_from(dt.day()).ok()?,
    )?;
    date.and_hms_opt(
        u32::try_from(dt.hour()).ok()?,
        u32::try_from(dt.minute()).ok()?,
        u32::try_from(dt.second()).ok()?,
    )
}

fn civil_from_chrono(n: chrono::NaiveDateTime) -> Option<DateTime> {
    use chrono::{Datelike, Timelike};
    DateTime::new(
        i16::try_from(n.year()).ok()?,
        i8::try_from(n.month()).ok()?,
        i8::try_from(n.day()).ok()?,
        i8::try_from(n.hour()).ok()?,
        i8::try_from(n.minute()).ok()?,
        i8::try_from(n.second()).ok()?,
        0,
    )
    .ok()
}

/// RFC 3339 with the zone's offset at that instant (`2026-03-08T03:00:00-04:00`), the form the
/// conformance table and `spade schedule preview` use.
pub fn format_rfc3339(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(kind: &str, value: &str, tz: &str) -> Schedule {
        Schedule {
            rule: Rule::parse(kind, value).unwrap(),
            tz: TimeZone::get(tz).unwrap(),
            start: None,
            end: None,
        }
    }

    fn check(s: &Schedule, after: &str, count: usize, expect: &[&str]) {
        let after: Timestamp = after.parse().unwrap();
        let got: Vec<String> = s
            .slots(after, count)
            .iter()
            .map(|slot| {
                format!(
                    "{} {}",
                    format_rfc3339(slot.session_time, &s.tz),
                    format_rfc3339(slot.run_time, &s.tz)
                )
            })
            .collect();
        assert_eq!(got, expect);
    }

    /// `previous` and `next_within_bounds` are shortcuts for walks over `slots_from`: they must
    /// find the same neighbours, across DST changes and window edges.
    #[test]
    fn neighbours_agree_with_a_walk_over_the_slots() {
        let rules = [
            ("minutes_interval>", "1", "America/New_York"),
            ("minutes_interval>", "7", "Europe/London"),
            ("hourly>", "05:00", "America/New_York"),
            ("daily>", "02:30:00", "America/New_York"),
            ("weekly>", "Sun,01:30:00", "Europe/London"),
            ("monthly>", "31,00:00:00", "UTC"),
            ("cron>", "30 1 * * *", "America/New_York"),
        ];
        for (kind, value, zone) in rules {
            let mut s = schedule(kind, value, zone);
            s.end = Some("2027-02-01".parse().unwrap());
            let all = s.slots("2026-02-20T00:00:00Z".parse().unwrap(), 400);
            for pair in all.windows(2) {
                let (a, b) = (pair[0], pair[1]);
                assert_eq!(
                    s.next_within_bounds(a.session_time),
                    Some(b),
                    "{kind} {value}"
                );
                assert_eq!(
                    s.previous(b.session_time).map(|p| p.session_time),
                    Some(a.session_time),
                    "{kind} {value} before {}",
                    b.session_time
                );
            }
            if let Some(last) = all.last() {
                if all.len() < 400 {
                    assert_eq!(
                        s.next_within_bounds(last.session_time),
                        None,
                        "{kind} past the end"
                    );
                }
            }
        }
    }

    #[test]
    fn cron_weekday_numbers_follow_crontab_sunday_zero() {
        let s = schedule("cron>", "0 9 * * 0", "UTC");
        // 2026-11-23 is a Monday: the next Sunday is the 29th.
        check(
            &s,
            "2026-11-23T00:00:00Z",
            1,
            &["2026-11-29T09:00:00+00:00 2026-11-29T09:00:00+00:00"],
        );
        assert_eq!(translate_weekday_field("1-5"), "MON-FRI");
        assert_eq!(translate_weekday_field("*/2"), "*/2");
        assert_eq!(translate_weekday_field("0,6"), "SUN,SAT");
    }

    #[test]
    fn cron_gap_matches_collapse_to_one_slot() {
        // 02:00 and 02:30 do not exist on 2026-03-08 in New York; both map to 03:00, once, and
        // 03:00 itself is the same instant.
        let s = schedule("cron>", "0,30 2,3 * * *", "America/New_York");
        check(
            &s,
            "2026-03-08T06:00:00Z",
            3,
            &[
                "2026-03-08T03:00:00-04:00 2026-03-08T03:00:00-04:00",
                "2026-03-08T03:30:00-04:00 2026-03-08T03:30:00-04:00",
                "2026-03-09T02:00:00-04:00 2026-03-09T02:00:00-04:00",
            ],
        );
    }

    #[test]
    fn cron_on_fall_back_night_fires_once_at_first_occurrence() {
        let s = schedule("cron>", "30 1 * * *", "America/New_York");
        check(
            &s,
            "2026-10-31T12:00:00-04:00",
            2,
            &[
                "2026-11-01T01:30:00-04:00 2026-11-01T01:30:00-04:00",
                "2026-11-02T01:30:00-05:00 2026-11-02T01:30:00-05:00",
            ],
        );
    }

    #[test]
    fn hourly_in_half_hour_zone_fires_at_local_top_of_hour() {
        let s = schedule("hourly>", "00:00", "Asia/Kolkata");
        check(
            &s,
            "2026-11-23T10:10:00+05:30",
            1,
            &["2026-11-23T11:00:00+05:30 2026-11-23T11:00:00+05:30"],
        );
    }

    #[test]
    fn daily_past_midnight_runs_next_day() {
        let s = schedule("daily>", "30:00:00", "UTC");
        check(
            &s,
            "2026-01-01T07:00:00Z",
            1,
            &["2026-01-01T00:00:00+00:00 2026-01-02T06:00:00+00:00"],
        );
    }

    #[test]
    fn previous_and_next_slots() {
        let s = schedule("daily>", "07:00:00", "Asia/Tokyo");
        let t: Timestamp = "2026-11-23T00:00:00+09:00".parse().unwrap();
        let prev = s.previous(t).unwrap();
        let next = s.next(t).unwrap();
        assert_eq!(
            format_rfc3339(prev.session_time, &s.tz),
            "2026-11-22T00:00:00+09:00"
        );
        assert_eq!(
            format_rfc3339(next.session_time, &s.tz),
            "2026-11-24T00:00:00+09:00"
        );
    }

    #[test]
    fn well_formed_values_parse() {
        for (kind, value) in [
            ("daily>", "07:00:00"),
            // Past 23 hours runs the next day, as in Digdag.
            ("daily>", "30:00:00"),
            ("hourly>", "30:00"),
            ("weekly>", "Sun,09:00:00"),
            ("weekly>", "3,09:00:00"),
            ("monthly>", "1,09:00:00"),
            ("minutes_interval>", "15"),
            ("cron>", "*/5 * * * *"),
            ("cron>", "0 0 * * 0"),
            ("cron>", "0 0 * * 1-5"),
        ] {
            assert!(Rule::parse(kind, value).is_ok(), "{kind} {value}");
        }
    }

    #[test]
    fn malformed_values_are_rejected_with_the_expected_shape() {
        for (kind, value) in [
            ("daily>", "7am"),
            ("daily>", "07:61:00"),
            ("hourly>", "5"),
            ("hourly>", "10:11:12"),
            ("weekly>", "Funday,09:00:00"),
            ("monthly>", "32,04:00:00"),
            ("minutes_interval>", "0"),
            ("cron>", "* * *"),
            ("cron>", "61 * * * *"),
            ("yearly>", "x"),
        ] {
            assert!(Rule::parse(kind, value).is_err(), "{kind} {value}");
        }
    }
}
