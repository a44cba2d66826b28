//! A schedule in words, beside the schedule as written: `cron>: 0 9 * * 1-5` reads "at 09:00
//! on Monday through Friday", `daily>: 07:00:00` "every day at 07:00:00", each with its zone.
//!
//! It describes the parsed [`Rule`] (for `cron>`, the sets of minutes, hours, days and months
//! that the `cron` crate parsed), so whatever spelling `schedule.rs` accepts (lists, ranges,
//! steps, names, `?`, Sunday as 0 or 7) reads the same as what it means. Hand-written: the
//! crates that describe cron text are unmaintained or parse their own, different syntax.

use crate::schedule::{Rule, WallTime};
use cron::TimeUnitSpec;
use jiff::civil::Weekday;

/// Times listed one by one (`at 02:00, 02:30, 03:00 and 03:30`) up to this many.
const MAX_LISTED_TIMES: usize = 6;

/// The schedule `rule` in words, with its zone: "every day at 07:00:00, Asia/Tokyo time".
pub fn describe(rule: &Rule, zone: &str, h24: bool) -> String {
    format!("{}, {zone} time", rule_words(rule, h24))
}

/// The rule in words, without the zone.
pub fn rule_words(rule: &Rule, h24: bool) -> String {
    match rule {
        Rule::Hourly { delay } => {
            let secs = delay.as_secs();
            let (m, s) = (secs / 60, secs % 60);
            match (m, s) {
                (0, 0) => "every hour on the hour".to_owned(),
                (m, 0) => format!("every hour at {m} min past the hour"),
                (m, s) => format!("every hour at {m} min {s} s past the hour"),
            }
        }
        Rule::Daily { at } => format!("every day at {}", wall(*at, h24)),
        Rule::Weekly { day, at } => format!("every {} at {}", weekday_name(*day), wall(*at, h24)),
        Rule::Monthly { day, at } => {
            let skipped = if *day > 28 {
                format!(" (months without a day {day} are skipped)")
            } else {
                String::new()
            };
            format!("on day {day} of every month at {}{skipped}", wall(*at, h24))
        }
        Rule::MinutesInterval { minutes } => match minutes {
            1 => "every minute".to_owned(),
            m => format!("every {m} minutes"),
        },
        Rule::Cron { schedule, .. } => cron_words(schedule, h24),
    }
}

/// `07:00:00` or `7:00:00 AM`; a time past midnight of the next day says so (`daily>:
/// 30:00:00` runs at 06:00:00 the day after its session day).
fn wall(at: WallTime, h24: bool) -> String {
    let days = at.seconds.div_euclid(86_400);
    let rest = at.seconds.rem_euclid(86_400);
    let (h, m, s) = (rest / 3600, (rest % 3600) / 60, rest % 60);
    let clock = if h24 {
        format!("{h:02}:{m:02}:{s:02}")
    } else {
        format!("{}:{m:02}:{s:02} {}", twelve(h), am_pm(h))
    };
    match days {
        0 => clock,
        1 => format!("{clock} the next day"),
        n => format!("{clock} {n} days later"),
    }
}

fn twelve(h: i64) -> i64 {
    match h % 12 {
        0 => 12,
        x => x,
    }
}

fn am_pm(h: i64) -> &'static str {
    if h < 12 {
        "AM"
    } else {
        "PM"
    }
}

/// `09:00` or `9:00 AM`.
fn hh_mm(h: u32, m: u32, h24: bool) -> String {
    if h24 {
        format!("{h:02}:{m:02}")
    } else {
        let h = i64::from(h);
        format!("{}:{m:02} {}", twelve(h), am_pm(h))
    }
}

/// `9` or `9 AM`, naming an hour of the day.
fn hour_label(h: u32, h24: bool) -> String {
    if h24 {
        format!("{h:02}")
    } else {
        let h = i64::from(h);
        format!("{} {}", twelve(h), am_pm(h))
    }
}

fn weekday_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Monday => "Monday",
        Weekday::Tuesday => "Tuesday",
        Weekday::Wednesday => "Wednesday",
        Weekday::Thursday => "Thursday",
        Weekday::Friday => "Friday",
        Weekday::Saturday => "Saturday",
        Weekday::Sunday => "Sunday",
    }
}

/// The `cron` crate's weekday ordinals: Sunday is 1.
fn cron_weekday(n: u32) -> &'static str {
    ordinal_name(&crate::expr::WEEKDAYS, n)
}

fn month_name(n: u32) -> &'static str {
    ordinal_name(&crate::expr::MONTHS, n)
}

/// The `n`th name, counting from 1 (`?` for none: the cron crate never gives one).
fn ordinal_name(names: &[&'static str], n: u32) -> &'static str {
    usize::try_from(n)
        .ok()
        .and_then(|n| names.get(n.wrapping_sub(1)))
        .copied()
        .unwrap_or("?")
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// A set of values named compactly: runs of three or more as `a through b`.
fn spans(values: &[u32], name: impl Fn(u32) -> String) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < values.len() {
        let mut j = i;
        while j + 1 < values.len() && values[j + 1] == values[j] + 1 {
            j += 1;
        }
        if j >= i + 2 {
            parts.push(format!("{} through {}", name(values[i]), name(values[j])));
        } else {
            parts.extend(values[i..=j].iter().map(|v| name(*v)));
        }
        i = j + 1;
    }
    and_list(&parts)
}

/// `Some((first, step))` when `values` are every `step`-th value from `first` to the top of
/// `lo..=hi` (what `*/15` or `5/15` means), with at least three values and a step above 1.
fn progression(values: &[u32], hi: u32) -> Option<(u32, u32)> {
    let [first, second, ..] = values else {
        return None;
    };
    let step = second - first;
    let last = *values.last()?;
    let regular = values.windows(2).all(|w| w[1] - w[0] == step);
    (values.len() >= 3 && step > 1 && regular && last + step > hi).then_some((*first, step))
}

/// "every 2nd", "every 3rd", "every 15th".
fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (1, 11) | (2, 12) | (3, 13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

fn cron_words(s: &cron::Schedule, h24: bool) -> String {
    let minutes: Vec<u32> = s.minutes().iter().collect();
    let hours: Vec<u32> = s.hours().iter().collect();
    let all_minutes = s.minutes().is_all();
    let all_hours = s.hours().is_all();
    let explicit =
        !all_minutes && !all_hours && minutes.len().saturating_mul(hours.len()) <= MAX_LISTED_TIMES;
    let time = if explicit {
        let times: Vec<String> = hours
            .iter()
            .flat_map(|h| minutes.iter().map(move |m| hh_mm(*h, *m, h24)))
            .collect();
        format!("at {}", and_list(&times))
    } else {
        let minute_part = if all_minutes {
            "every minute".to_owned()
        } else if let Some((first, step)) = progression(&minutes, 59) {
            if first == 0 {
                format!("every {step} minutes")
            } else {
                format!("every {step} minutes from minute {first}")
            }
        } else if minutes == [0] {
            "on the hour".to_owned()
        } else {
            let at = spans(&minutes, |m| m.to_string());
            let noun = if minutes.len() == 1 {
                "minute"
            } else {
                "minutes"
            };
            format!("at {noun} {at}")
        };
        let stepping = minute_part.starts_with("every");
        let whole = stepping || minutes == [0];
        if all_hours {
            if stepping {
                minute_part
            } else {
                format!("every hour {minute_part}")
            }
        } else if let Some((first, step)) = progression(&hours, 23) {
            let from = if first == 0 {
                String::new()
            } else {
                format!(" from {}", hh_mm(first, 0, h24))
            };
            if stepping {
                format!("{minute_part} of every {} hour{from}", ordinal(step))
            } else {
                format!("every {step} hours{from} {minute_part}")
            }
        } else {
            let during = spans(&hours, |h| hour_label(h, h24));
            let noun = if hours.len() == 1 { "hour" } else { "hours" };
            if whole {
                format!("{minute_part} during {noun} {during}")
            } else {
                format!("{minute_part} of {noun} {during}")
            }
        }
    };
    let days_of_month: Vec<u32> = s.days_of_month().iter().collect();
    let weekdays: Vec<u32> = s.days_of_week().iter().collect();
    let months: Vec<u32> = s.months().iter().collect();
    let dom = (!s.days_of_month().is_all()).then(|| {
        let noun = if days_of_month.len() == 1 {
            "day"
        } else {
            "days"
        };
        format!(
            "{noun} {} of the month",
            spans(&days_of_month, |d| d.to_string())
        )
    });
    let dow =
        (!s.days_of_week().is_all()).then(|| spans(&weekdays, |d| cron_weekday(d).to_owned()));
    let day = match (dom, dow) {
        (None, None) if explicit => " every day".to_owned(),
        (None, None) => String::new(),
        (Some(dom), None) => format!(" on {dom}"),
        (None, Some(dow)) => format!(" on {dow}"),
        // The cron crate fires only when both match (classic cron fires when either does).
        (Some(dom), Some(dow)) => format!(" on {dom} when it is a {dow}"),
    };
    let month = if s.months().is_all() {
        String::new()
    } else {
        format!(" in {}", spans(&months, |m| month_name(m).to_owned()))
    };
    format!("{time}{day}{month}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(kind: &str, value: &str) -> String {
        rule_words(&Rule::parse(kind, value).unwrap(), true)
    }

    fn words12(kind: &str, value: &str) -> String {
        rule_words(&Rule::parse(kind, value).unwrap(), false)
    }

    #[test]
    fn the_fixed_forms_read_as_their_wall_clock_time() {
        assert_eq!(words("daily>", "07:00:00"), "every day at 07:00:00");
        assert_eq!(words12("daily>", "07:00:00"), "every day at 7:00:00 AM");
        assert_eq!(words12("daily>", "00:30:00"), "every day at 12:30:00 AM");
        assert_eq!(words12("daily>", "12:00:05"), "every day at 12:00:05 PM");
        assert_eq!(
            words("daily>", "30:00:00"),
            "every day at 06:00:00 the next day"
        );
        assert_eq!(
            words("daily>", "50:00:00"),
            "every day at 02:00:00 2 days later"
        );
        assert_eq!(words("weekly>", "Sun,09:00:00"), "every Sunday at 09:00:00");
        assert_eq!(
            words("weekly>", "3,09:00:00"),
            "every Wednesday at 09:00:00"
        );
        assert_eq!(
            words12("weekly>", "fri,17:30:00"),
            "every Friday at 5:30:00 PM"
        );
        assert_eq!(
            words("monthly>", "1,09:00:00"),
            "on day 1 of every month at 09:00:00"
        );
        assert_eq!(
            words("monthly>", "31,00:00:00"),
            "on day 31 of every month at 00:00:00 (months without a day 31 are skipped)"
        );
    }

    #[test]
    fn hourly_and_minutes_interval_count_from_the_hour() {
        assert_eq!(words("hourly>", "00:00"), "every hour on the hour");
        assert_eq!(
            words("hourly>", "30:00"),
            "every hour at 30 min past the hour"
        );
        assert_eq!(
            words("hourly>", "05:30"),
            "every hour at 5 min 30 s past the hour"
        );
        assert_eq!(words("minutes_interval>", "1"), "every minute");
        assert_eq!(words("minutes_interval>", "15"), "every 15 minutes");
    }

    #[test]
    fn cron_reads_as_times_days_and_months() {
        let cases = [
            ("0 9 * * 1-5", "at 09:00 on Monday through Friday"),
            ("0 9 * * MON-FRI", "at 09:00 on Monday through Friday"),
            ("30 1 * * *", "at 01:30 every day"),
            ("0 0 * * 0", "at 00:00 on Sunday"),
            ("0 0 * * 7", "at 00:00 on Sunday"),
            ("0 0 * * 0,6", "at 00:00 on Sunday and Saturday"),
            ("0 0 * * 1,3,5", "at 00:00 on Monday, Wednesday and Friday"),
            ("0 9,17 * * *", "at 09:00 and 17:00 every day"),
            (
                "0,30 2,3 * * *",
                "at 02:00, 02:30, 03:00 and 03:30 every day",
            ),
            ("* * * * *", "every minute"),
            ("*/5 * * * *", "every 5 minutes"),
            ("5/15 * * * *", "every 15 minutes from minute 5"),
            ("0 * * * *", "every hour on the hour"),
            ("15 * * * *", "every hour at minute 15"),
            ("0,20,40 * * * *", "every 20 minutes"),
            ("0,25,40 * * * *", "every hour at minutes 0, 25 and 40"),
            ("0-5 * * * *", "every hour at minutes 0 through 5"),
            ("0 */2 * * *", "every 2 hours on the hour"),
            ("30 */3 * * *", "every 3 hours at minute 30"),
            ("30 */6 * * *", "at 00:30, 06:30, 12:30 and 18:30 every day"),
            ("*/10 */3 * * *", "every 10 minutes of every 3rd hour"),
            (
                "*/15 9-17 * * 1-5",
                "every 15 minutes during hours 09 through 17 on Monday through Friday",
            ),
            ("* 9 * * *", "every minute during hour 09"),
            ("0 9-17 * * *", "on the hour during hours 09 through 17"),
            ("15 9,12 * * *", "at 09:15 and 12:15 every day"),
            ("15 9-17 * * *", "at minute 15 of hours 09 through 17"),
            ("0 0 1 * *", "at 00:00 on day 1 of the month"),
            ("0 0 1,15 * *", "at 00:00 on days 1 and 15 of the month"),
            (
                "0 0 1-7 * 1",
                "at 00:00 on days 1 through 7 of the month when it is a Monday",
            ),
            ("0 0 1 1 *", "at 00:00 on day 1 of the month in January"),
            (
                "0 0 1 1,4,7,10 *",
                "at 00:00 on day 1 of the month in January, April, July and October",
            ),
            (
                "0 0 ? JAN-MAR *",
                "at 00:00 every day in January through March",
            ),
            ("0 12 * * ?", "at 12:00 every day"),
        ];
        for (expr, want) in cases {
            assert_eq!(words("cron>", expr), want, "cron> {expr}");
        }
    }

    #[test]
    fn cron_honours_the_twelve_hour_clock() {
        assert_eq!(
            words12("cron>", "0 9 * * 1-5"),
            "at 9:00 AM on Monday through Friday"
        );
        assert_eq!(
            words12("cron>", "0 0,12 * * *"),
            "at 12:00 AM and 12:00 PM every day"
        );
        assert_eq!(
            words12("cron>", "*/15 9-17 * * *"),
            "every 15 minutes during hours 9 AM through 5 PM"
        );
        assert_eq!(words12("cron>", "0 */3 * * *"), "every 3 hours on the hour");
        assert_eq!(
            words12("cron>", "0 1/3 * * *"),
            "every 3 hours from 1:00 AM on the hour"
        );
    }

    #[test]
    fn every_accepted_form_names_its_zone() {
        for (kind, value) in [
            ("hourly>", "05:00"),
            ("daily>", "02:30:00"),
            ("weekly>", "Sun,01:30:00"),
            ("monthly>", "31,00:00:00"),
            ("minutes_interval>", "7"),
            ("cron>", "30 1 * * *"),
        ] {
            let rule = Rule::parse(kind, value).unwrap();
            let text = describe(&rule, "America/New_York", true);
            assert!(text.ends_with(", America/New_York time"), "{text}");
            assert!(!text.contains('?'), "{text}");
        }
    }
}
