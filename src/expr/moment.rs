//! A moment.js 2.21 subset on `jiff` (tz database bundled): parsing, `format` tokens in the en
//! locale, DST-correct `add`/`subtract`, `startOf`/`endOf`, `diff`, getters and setters, plus
//! `moment.tz` (spade's extension; Digdag ships moment without moment-timezone).
//!
//! Times are epoch milliseconds as `f64` (NaN = invalid), like JavaScript's Date, so the
//! arithmetic of moment carries over unchanged; zone lookups go through `jiff`.

use super::eval::{Interp, JsError};
use super::value::Value;
use jiff::tz::TimeZone;
use std::cell::RefCell;
use std::fmt::Write as _;
use std::rc::Rc;

type R<T> = Result<T, JsError>;

const DAY_MS: f64 = 86_400_000.0;

/// One moment object: an instant and the zone it displays in.
#[derive(Clone, Debug)]
pub(crate) struct Moment {
    /// Epoch milliseconds; NaN when invalid.
    ms: f64,
    zone: TimeZone,
    /// Set by `moment.utc()`/`.utc()`: `format()` then ends in `Z`, as moment does.
    utc: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The workflow zone (`moment(...)`).
    Local,
    /// `moment.utc(...)`.
    Utc,
}

pub(crate) const METHODS: &[&str] = &[
    "format",
    "add",
    "subtract",
    "startOf",
    "endOf",
    "utc",
    "local",
    "tz",
    "unix",
    "valueOf",
    "toISOString",
    "toJSON",
    "toDate",
    "toString",
    "isBefore",
    "isAfter",
    "isSame",
    "isSameOrBefore",
    "isSameOrAfter",
    "isBetween",
    "diff",
    "year",
    "years",
    "month",
    "months",
    "date",
    "dates",
    "day",
    "days",
    "hour",
    "hours",
    "minute",
    "minutes",
    "second",
    "seconds",
    "millisecond",
    "milliseconds",
    "dayOfYear",
    "week",
    "weeks",
    "isoWeek",
    "isoWeeks",
    "isoWeekday",
    "weekday",
    "quarter",
    "quarters",
    "weekYear",
    "isoWeekYear",
    "daysInMonth",
    "isLeapYear",
    "clone",
    "isValid",
    "utcOffset",
    "get",
    "set",
    "isDST",
];

pub(crate) const STATICS: &[&str] = &["utc", "unix", "tz", "isMoment", "now", "max", "min"];

impl Moment {
    fn new(ms: f64, zone: TimeZone, utc: bool) -> Moment {
        Moment { ms, zone, utc }
    }

    pub(crate) fn value_of(&self) -> f64 {
        self.ms
    }

    pub(crate) fn is_valid(&self) -> bool {
        self.ms.is_finite() && fields(self.ms, &self.zone).is_some()
    }

    /// `toJSON()`: ISO 8601 in UTC with milliseconds, `None` (JSON null) when invalid.
    pub(crate) fn to_json(&self) -> Option<String> {
        iso_utc(self.ms)
    }

    /// `toString()`: `Sun Mar 13 2016 03:00:00 GMT-0700`.
    pub(crate) fn to_js_string(&self) -> String {
        format_ms(self.ms, &self.zone, "ddd MMM DD YYYY HH:mm:ss [GMT]ZZ")
            .unwrap_or_else(|| "Invalid date".into())
    }

    fn format(&self, fmt: Option<&str>) -> String {
        let default = if self.utc {
            "YYYY-MM-DDTHH:mm:ss[Z]"
        } else {
            "YYYY-MM-DDTHH:mm:ssZ"
        };
        let fmt = fmt.unwrap_or(default);
        format_with(self.ms, &self.zone, fmt, self.zone_abbr())
            .unwrap_or_else(|| "Invalid date".into())
    }

    fn zone_abbr(&self) -> bool {
        self.utc || self.zone.iana_name().is_some()
    }

    fn fields(&self) -> Option<Fields> {
        fields(self.ms, &self.zone)
    }

    /// Sets local wall-clock fields (overflowing ones carry, as JavaScript's Date does).
    fn set_local(&mut self, f: impl FnOnce(&mut [f64; 7])) {
        let Some(cur) = self.fields() else { return };
        let mut parts = cur.parts();
        f(&mut parts);
        self.ms = local_from_parts(&parts, &self.zone);
    }

    fn add(&mut self, amount: f64, unit: Unit) {
        if !amount.is_finite() {
            self.ms = f64::NAN;
            return;
        }
        // moment rounds day and month amounts to integers; time units stay exact.
        let whole = abs_round(amount);
        match unit {
            Unit::Millisecond => self.ms += amount.trunc(),
            Unit::Second => self.ms += (amount * 1e3).round(),
            Unit::Minute => self.ms += (amount * 6e4).round(),
            Unit::Hour => self.ms += (amount * 3.6e6).round(),
            Unit::Day => self.set_local(|p| p[2] += whole),
            Unit::Week => self.set_local(|p| p[2] += whole * 7.0),
            Unit::Month | Unit::Quarter | Unit::Year => {
                let months = whole
                    * match unit {
                        Unit::Quarter => 3.0,
                        Unit::Year => 12.0,
                        _ => 1.0,
                    };
                self.set_local(|p| {
                    let total = p[1] + months;
                    let (y, m) = (p[0] + (total / 12.0).floor(), total.rem_euclid(12.0));
                    p[0] = y;
                    p[1] = m;
                    p[2] = p[2].min(f64::from(days_in_month(y as i64, m as i64 + 1)));
                });
            }
            Unit::IsoWeek => self.set_local(|p| p[2] += whole * 7.0),
            Unit::Date => self.set_local(|p| p[2] += whole),
        }
    }

    fn start_of(&mut self, unit: Unit) {
        let Some(f) = self.fields() else { return };
        self.set_local(|p| {
            match unit {
                Unit::Year => {
                    p[1] = 0.0;
                    p[2] = 1.0;
                }
                Unit::Quarter => {
                    p[1] = (p[1] / 3.0).floor() * 3.0;
                    p[2] = 1.0;
                }
                Unit::Month => p[2] = 1.0,
                Unit::Week => p[2] -= f64::from(f.weekday),
                Unit::IsoWeek => p[2] -= f64::from((f.weekday + 6) % 7),
                Unit::Day | Unit::Date | Unit::Hour | Unit::Minute | Unit::Second => {}
                Unit::Millisecond => return,
            }
            let keep = match unit {
                Unit::Hour => 4,
                Unit::Minute => 5,
                Unit::Second => 6,
                _ => 3,
            };
            for v in p.iter_mut().skip(keep) {
                *v = 0.0;
            }
        });
    }

    fn end_of(&mut self, unit: Unit) {
        if unit == Unit::Millisecond {
            return;
        }
        self.start_of(unit);
        self.add(1.0, unit);
        self.ms -= 1.0;
    }
}

fn abs_round(n: f64) -> f64 {
    if n < 0.0 {
        -(-n).round()
    } else {
        n.round()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    Year,
    Quarter,
    Month,
    Week,
    IsoWeek,
    Day,
    Date,
    Hour,
    Minute,
    Second,
    Millisecond,
}

/// moment's unit names: singular, plural, and the shorthands (case matters for `M` and `m`).
fn parse_unit(s: &str) -> Option<Unit> {
    Some(match s {
        "y" | "year" | "years" => Unit::Year,
        "Q" | "quarter" | "quarters" => Unit::Quarter,
        "M" | "month" | "months" => Unit::Month,
        "w" | "week" | "weeks" => Unit::Week,
        "W" | "isoWeek" | "isoWeeks" | "isoweek" | "isoweeks" => Unit::IsoWeek,
        "d" | "day" | "days" => Unit::Day,
        "D" | "date" | "dates" => Unit::Date,
        "h" | "hour" | "hours" => Unit::Hour,
        "m" | "minute" | "minutes" => Unit::Minute,
        "s" | "second" | "seconds" => Unit::Second,
        "ms" | "millisecond" | "milliseconds" => Unit::Millisecond,
        _ => {
            // Long names are case-insensitive in moment (`Days`, `HOURS`).
            let lower = s.to_ascii_lowercase();
            if lower.len() > 2 && lower != s {
                return parse_unit(&lower);
            }
            return None;
        }
    })
}

/// Wall-clock fields of an instant in a zone.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fields {
    pub(crate) year: i16,
    /// 1..=12
    pub(crate) month: i8,
    pub(crate) day: i8,
    /// 0 = Sunday.
    pub(crate) weekday: i8,
    pub(crate) hour: i8,
    pub(crate) minute: i8,
    pub(crate) second: i8,
    pub(crate) millisecond: i16,
    pub(crate) day_of_year: i16,
    pub(crate) offset_seconds: i32,
}

impl Fields {
    /// `[year, month0, day, hour, minute, second, ms]`, the argument order of `Date`.
    fn parts(&self) -> [f64; 7] {
        [
            f64::from(self.year),
            f64::from(self.month - 1),
            f64::from(self.day),
            f64::from(self.hour),
            f64::from(self.minute),
            f64::from(self.second),
            f64::from(self.millisecond),
        ]
    }
}

fn timestamp(ms: f64) -> Option<jiff::Timestamp> {
    if !ms.is_finite() {
        return None;
    }
    jiff::Timestamp::from_millisecond(ms as i64).ok()
}

/// Wall-clock fields of `ms` in `zone`; `None` for invalid or out-of-range times.
pub(crate) fn fields(ms: f64, zone: &TimeZone) -> Option<Fields> {
    let ts = timestamp(ms)?;
    let offset_seconds = zone.to_offset(ts).seconds();
    let local = ms.floor() + f64::from(offset_seconds) * 1000.0;
    let days = (local / DAY_MS).floor();
    let rem = local - days * DAY_MS;
    let days = days as i64;
    let (y, m, d) = civil_from_days(days);
    let rem = rem as i64;
    Some(Fields {
        year: i16::try_from(y).ok()?,
        month: m as i8,
        day: d as i8,
        weekday: (days + 4).rem_euclid(7) as i8,
        hour: (rem / 3_600_000) as i8,
        minute: (rem / 60_000 % 60) as i8,
        second: (rem / 1000 % 60) as i8,
        millisecond: (rem % 1000) as i16,
        day_of_year: (days - days_from_civil(y, 1, 1) + 1) as i16,
        offset_seconds,
    })
}

/// The instant of local wall-clock parts in `zone`; overflowing parts carry (month 12 is
/// January next year). A time in a spring-forward gap moves forward by the gap, a repeated
/// time takes its first occurrence (JavaScript's and moment's rule).
pub(crate) fn local_from_parts(parts: &[f64; 7], zone: &TimeZone) -> f64 {
    if parts.iter().any(|p| !p.is_finite()) {
        return f64::NAN;
    }
    let local = local_ms(parts);
    let days = (local / DAY_MS).floor();
    let rem = (local - days * DAY_MS) as i64;
    let (y, m, d) = civil_from_days(days as i64);
    let (Ok(y), Ok(m), Ok(d)) = (i16::try_from(y), i8::try_from(m), i8::try_from(d)) else {
        return f64::NAN;
    };
    let Ok(dt) = jiff::civil::DateTime::new(
        y,
        m,
        d,
        (rem / 3_600_000) as i8,
        (rem / 60_000 % 60) as i8,
        (rem / 1000 % 60) as i8,
        (rem % 1000) as i32 * 1_000_000,
    ) else {
        return f64::NAN;
    };
    zone.to_ambiguous_timestamp(dt)
        .compatible()
        .map_or(f64::NAN, |ts| ts.as_millisecond() as f64)
}

/// `Date.UTC(...)`.
pub(crate) fn utc_from_parts(parts: &[f64; 7]) -> f64 {
    if parts.iter().any(|p| !p.is_finite()) {
        return f64::NAN;
    }
    local_ms(parts)
}

fn local_ms(p: &[f64; 7]) -> f64 {
    let y = p[0] + (p[1] / 12.0).floor();
    let m = p[1].rem_euclid(12.0);
    let days = days_from_civil(y as i64, m as i64 + 1, 1) as f64 + p[2].trunc() - 1.0;
    days * DAY_MS + p[3].trunc() * 3.6e6 + p[4].trunc() * 6e4 + p[5].trunc() * 1e3 + p[6].trunc()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i8 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn days_in_year(y: i64) -> i64 {
    if is_leap(y) {
        366
    } else {
        365
    }
}

/// moment's `firstWeekOffset`: where week 1 starts relative to Jan 1 (`dow` = first day of
/// the week, `doy` = the January day that is always in week 1, as `7 + dow - doy`).
fn first_week_offset(year: i64, dow: i64, doy: i64) -> i64 {
    let fwd = 7 + dow - doy;
    let weekday = (days_from_civil(year, 1, fwd) + 4).rem_euclid(7);
    let fwdlw = (7 + weekday - dow) % 7;
    -fwdlw + fwd - 1
}

fn weeks_in_year(year: i64, dow: i64, doy: i64) -> i64 {
    let off = first_week_offset(year, dow, doy);
    let next = first_week_offset(year + 1, dow, doy);
    (days_in_year(year) - off + next) / 7
}

/// (week, week-year) with weeks starting on `dow`; en locale is (0, 6), ISO is (1, 4).
fn week_of_year(f: &Fields, dow: i64, doy: i64) -> (i64, i64) {
    let year = i64::from(f.year);
    let off = first_week_offset(year, dow, doy);
    let week = (i64::from(f.day_of_year) - off - 1).div_euclid(7) + 1;
    if week < 1 {
        (week + weeks_in_year(year - 1, dow, doy), year - 1)
    } else if week > weeks_in_year(year, dow, doy) {
        (week - weeks_in_year(year, dow, doy), year + 1)
    } else {
        (week, year)
    }
}

/// ISO 8601 UTC with milliseconds (`toISOString`).
pub(crate) fn iso_utc(ms: f64) -> Option<String> {
    let f = fields(ms, &TimeZone::UTC)?;
    let year = if (0..=9999).contains(&f.year) {
        format!("{:04}", f.year)
    } else {
        format!("{}{:06}", if f.year < 0 { '-' } else { '+' }, f.year.abs())
    };
    Some(format!(
        "{year}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        f.month, f.day, f.hour, f.minute, f.second, f.millisecond
    ))
}

/// The zone's UTC offset in minutes at `ms` (0 when invalid).
pub(crate) fn offset_minutes(ms: f64, zone: &TimeZone) -> f64 {
    timestamp(ms).map_or(0.0, |ts| f64::from(zone.to_offset(ts).seconds()) / 60.0)
}

/// Formats `ms` in `zone` with a moment format string (`None` when invalid).
pub(crate) fn format_ms(ms: f64, zone: &TimeZone, fmt: &str) -> Option<String> {
    format_with(ms, zone, fmt, false)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// moment's en-locale long date formats.
fn long_format(token: &str) -> Option<&'static str> {
    Some(match token {
        "LTS" => "h:mm:ss A",
        "LT" => "h:mm A",
        "L" => "MM/DD/YYYY",
        "LL" => "MMMM D, YYYY",
        "LLL" => "MMMM D, YYYY h:mm A",
        "LLLL" => "dddd, MMMM D, YYYY h:mm A",
        "l" => "M/D/YYYY",
        "ll" => "MMM D, YYYY",
        "lll" => "MMM D, YYYY h:mm A",
        "llll" => "ddd, MMM D, YYYY h:mm A",
        _ => return None,
    })
}

const LONG_TOKENS: &[&str] = &[
    "LTS", "LT", "LLLL", "LLL", "LL", "L", "llll", "lll", "ll", "l",
];

/// Every format token, longest first so `MMMM` wins over `MM`.
const TOKENS: &[&str] = &[
    "YYYYYY",
    "YYYY",
    "YY",
    "gggg",
    "gg",
    "GGGG",
    "GG",
    "MMMM",
    "MMM",
    "Mo",
    "MM",
    "M",
    "DDDD",
    "DDDo",
    "DDD",
    "Do",
    "DD",
    "D",
    "dddd",
    "ddd",
    "do",
    "dd",
    "d",
    "Qo",
    "Q",
    "wo",
    "ww",
    "w",
    "Wo",
    "WW",
    "W",
    "E",
    "e",
    "HH",
    "H",
    "hh",
    "h",
    "kk",
    "k",
    "mm",
    "m",
    "ss",
    "s",
    "SSSSSSSSS",
    "SSSSSSSS",
    "SSSSSSS",
    "SSSSSS",
    "SSSSS",
    "SSSS",
    "SSS",
    "SS",
    "S",
    "a",
    "A",
    "ZZ",
    "Z",
    "X",
    "x",
    "zz",
    "z",
];

/// Replaces `LT`, `LLL`, ... (outside `[...]`) by their en expansions, as moment does first.
fn expand_long_formats(fmt: &str) -> String {
    let mut out = String::new();
    let mut rest = fmt;
    while let Some(c) = rest.chars().next() {
        if c == '[' {
            let end = rest.find(']').map_or(rest.len(), |i| i + 1);
            out.push_str(&rest[..end]);
            rest = &rest[end..];
            continue;
        }
        if let Some(t) = LONG_TOKENS.iter().find(|t| rest.starts_with(**t)) {
            out.push_str(long_format(t).unwrap_or(""));
            rest = &rest[t.len()..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn ordinal(n: i64) -> String {
    let suffix = if (n % 100) / 10 == 1 {
        "th"
    } else {
        match n % 10 {
            1 => "st",
            2 => "nd",
            3 => "rd",
            _ => "th",
        }
    };
    format!("{n}{suffix}")
}

fn format_offset(seconds: i32, colon: bool) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let m = seconds.abs() / 60;
    if colon {
        format!("{sign}{:02}:{:02}", m / 60, m % 60)
    } else {
        format!("{sign}{:02}{:02}", m / 60, m % 60)
    }
}

fn format_with(ms: f64, zone: &TimeZone, fmt: &str, with_abbr: bool) -> Option<String> {
    let f = fields(ms, zone)?;
    let fmt = expand_long_formats(fmt);
    let mut out = String::new();
    let mut rest = fmt.as_str();
    while let Some(c) = rest.chars().next() {
        if c == '[' {
            if let Some(end) = rest.find(']') {
                out.push_str(&rest[1..end]);
                rest = &rest[end + 1..];
                continue;
            }
        }
        if c == '\\' {
            rest = &rest[1..];
            if let Some(n) = rest.chars().next() {
                out.push(n);
                rest = &rest[n.len_utf8()..];
            }
            continue;
        }
        let Some(token) = TOKENS.iter().find(|t| rest.starts_with(**t)) else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        };
        rest = &rest[token.len()..];
        format_token(&mut out, token, &f, ms, zone, with_abbr);
    }
    Some(out)
}

fn format_token(
    out: &mut String,
    token: &str,
    f: &Fields,
    ms: f64,
    zone: &TimeZone,
    with_abbr: bool,
) {
    let year = i64::from(f.year);
    let h12 = match f.hour % 12 {
        0 => 12,
        h => h,
    };
    let _ = match token {
        "YYYYYY" => write!(out, "{}{:06}", if year < 0 { '-' } else { '+' }, year.abs()),
        "YYYY" if year <= 9999 => write!(out, "{year:04}"),
        "YYYY" => write!(out, "+{year}"),
        "YY" => write!(out, "{:02}", year.rem_euclid(100)),
        "gggg" => write!(out, "{:04}", week_of_year(f, 0, 6).1),
        "gg" => write!(out, "{:02}", week_of_year(f, 0, 6).1.rem_euclid(100)),
        "GGGG" => write!(out, "{:04}", week_of_year(f, 1, 4).1),
        "GG" => write!(out, "{:02}", week_of_year(f, 1, 4).1.rem_euclid(100)),
        "MMMM" => write!(out, "{}", MONTHS[(f.month - 1) as usize % 12]),
        "MMM" => write!(out, "{}", &MONTHS[(f.month - 1) as usize % 12][..3]),
        "Mo" => write!(out, "{}", ordinal(i64::from(f.month))),
        "MM" => write!(out, "{:02}", f.month),
        "M" => write!(out, "{}", f.month),
        "DDDD" => write!(out, "{:03}", f.day_of_year),
        "DDDo" => write!(out, "{}", ordinal(i64::from(f.day_of_year))),
        "DDD" => write!(out, "{}", f.day_of_year),
        "Do" => write!(out, "{}", ordinal(i64::from(f.day))),
        "DD" => write!(out, "{:02}", f.day),
        "D" => write!(out, "{}", f.day),
        "dddd" => write!(out, "{}", WEEKDAYS[f.weekday as usize % 7]),
        "ddd" => write!(out, "{}", &WEEKDAYS[f.weekday as usize % 7][..3]),
        "dd" => write!(out, "{}", &WEEKDAYS[f.weekday as usize % 7][..2]),
        "do" => write!(out, "{}", ordinal(i64::from(f.weekday))),
        "d" | "e" => write!(out, "{}", f.weekday),
        "E" => write!(out, "{}", (f.weekday + 6) % 7 + 1),
        "Qo" => write!(out, "{}", ordinal(i64::from((f.month - 1) / 3 + 1))),
        "Q" => write!(out, "{}", (f.month - 1) / 3 + 1),
        "wo" => write!(out, "{}", ordinal(week_of_year(f, 0, 6).0)),
        "ww" => write!(out, "{:02}", week_of_year(f, 0, 6).0),
        "w" => write!(out, "{}", week_of_year(f, 0, 6).0),
        "Wo" => write!(out, "{}", ordinal(week_of_year(f, 1, 4).0)),
        "WW" => write!(out, "{:02}", week_of_year(f, 1, 4).0),
        "W" => write!(out, "{}", week_of_year(f, 1, 4).0),
        "HH" => write!(out, "{:02}", f.hour),
        "H" => write!(out, "{}", f.hour),
        "hh" => write!(out, "{h12:02}"),
        "h" => write!(out, "{h12}"),
        "kk" => write!(out, "{:02}", if f.hour == 0 { 24 } else { f.hour }),
        "k" => write!(out, "{}", if f.hour == 0 { 24 } else { f.hour }),
        "mm" => write!(out, "{:02}", f.minute),
        "m" => write!(out, "{}", f.minute),
        "ss" => write!(out, "{:02}", f.second),
        "s" => write!(out, "{}", f.second),
        "a" => write!(out, "{}", if f.hour < 12 { "am" } else { "pm" }),
        "A" => write!(out, "{}", if f.hour < 12 { "AM" } else { "PM" }),
        "ZZ" => write!(out, "{}", format_offset(f.offset_seconds, false)),
        "Z" => write!(out, "{}", format_offset(f.offset_seconds, true)),
        "X" => write!(out, "{}", (ms / 1000.0).floor()),
        "x" => write!(out, "{}", ms.floor()),
        "zz" | "z" => {
            if with_abbr {
                if let Some(ts) = timestamp(ms) {
                    let info = zone.to_offset_info(ts);
                    out.push_str(info.abbreviation());
                }
            }
            Ok(())
        }
        s if s.starts_with('S') => {
            // Fractional seconds: milliseconds padded, then zeros (moment has ms precision).
            let digits = format!("{:03}000000", f.millisecond);
            write!(out, "{}", &digits[..s.len().min(9)])
        }
        other => write!(out, "{other}"),
    };
}

/// Parses the ISO 8601 forms moment accepts; a string without an offset is wall-clock time
/// in `zone`. Returns epoch milliseconds.
pub(crate) fn parse_iso(s: &str, zone: &TimeZone) -> Option<f64> {
    let s = s.trim();
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<f64> {
        let part = s.get(from..from + len)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse::<f64>().ok()
        } else {
            None
        }
    };
    let year = num(0, 4)?;
    let (month, day, mut i) = if b.get(4) == Some(&b'-') {
        let month = num(5, 2)?;
        if b.get(7) == Some(&b'-') {
            (month, num(8, 2)?, 10)
        } else {
            (month, 1.0, 7)
        }
    } else if b.len() >= 8 && num(4, 4).is_some() {
        (num(4, 2)?, num(6, 2)?, 8)
    } else {
        (1.0, 1.0, 4)
    };
    if !(1.0..=12.0).contains(&month)
        || day < 1.0
        || day > f64::from(days_in_month(year as i64, month as i64))
    {
        return None;
    }
    let (mut hour, mut minute, mut second, mut milli) = (0.0, 0.0, 0.0, 0.0);
    if matches!(b.get(i), Some(b'T' | b't' | b' ')) && b.len() > i + 1 {
        i += 1;
        hour = num(i, 2)?;
        i += 2;
        let colon = b.get(i) == Some(&b':');
        if colon || num(i, 2).is_some() {
            let skip = usize::from(colon);
            minute = num(i + skip, 2)?;
            i += skip + 2;
            let colon = b.get(i) == Some(&b':');
            if (colon && num(i + 1, 2).is_some()) || (!colon && num(i, 2).is_some()) {
                let skip = usize::from(colon);
                second = num(i + skip, 2)?;
                i += skip + 2;
                if matches!(b.get(i), Some(b'.' | b',')) {
                    let digits = s[i + 1..].bytes().take_while(u8::is_ascii_digit).count();
                    if digits == 0 {
                        return None;
                    }
                    let frac = &s[i + 1..i + 1 + digits];
                    let padded = format!("{:0<3}", &frac[..digits.min(3)]);
                    milli = padded.parse::<f64>().ok()?;
                    i += 1 + digits;
                }
            }
        }
        if hour > 24.0 || minute > 59.0 || second > 59.0 {
            return None;
        }
    }
    let rest = s.get(i..)?.trim_start();
    let parts = [year, month - 1.0, day, hour, minute, second, milli];
    if rest.is_empty() {
        return Some(local_from_parts(&parts, zone));
    }
    let offset_ms = if rest == "Z" || rest == "z" {
        0.0
    } else {
        let sign = match rest.as_bytes().first()? {
            b'+' => 1.0,
            b'-' => -1.0,
            _ => return None,
        };
        let digits: String = rest[1..].chars().filter(|c| *c != ':').collect();
        if !digits.bytes().all(|c| c.is_ascii_digit()) || !(digits.len() == 2 || digits.len() == 4)
        {
            return None;
        }
        let h: f64 = digits.get(..2)?.parse().ok()?;
        let m: f64 = digits
            .get(2..)
            .filter(|m| !m.is_empty())
            .map_or(Some(0.0), |m| m.parse().ok())?;
        sign * (h * 3.6e6 + m * 6e4)
    };
    Some(utc_from_parts(&parts) - offset_ms)
}

/// `new Date(string)` / `Date.parse`: ISO forms; date-only strings are UTC as in ES5.
pub(crate) fn parse_date_string(s: &str, zone: &TimeZone) -> Option<f64> {
    let t = s.trim();
    let date_only = t.len() <= 10 && !t.contains(['T', ' ']);
    let zone = if date_only { &TimeZone::UTC } else { zone };
    parse_iso(t, zone)
}

/// Parses `s` with a moment format (`YYYY MM DD HH mm ss SSS`, `X`, `x`, `Z`, ...): the tokens
/// a date format usually has; other characters must match loosely (any non-digit).
fn parse_with_format(s: &str, fmt: &str, zone: &TimeZone) -> Option<f64> {
    let fmt = expand_long_formats(fmt);
    let mut parts = [1970.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0];
    let mut have_date = false;
    let mut pm: Option<bool> = None;
    let mut offset: Option<f64> = None;
    let mut input = s.trim();
    let mut rest = fmt.as_str();
    let take_num = |input: &mut &str, max: usize| -> Option<f64> {
        let t = input.trim_start_matches(|c: char| !c.is_ascii_digit() && c != '-' && c != '+');
        let len = t.bytes().take(max).take_while(u8::is_ascii_digit).count();
        let n = t.get(..len)?.parse::<f64>().ok()?;
        *input = &t[len..];
        Some(n)
    };
    while let Some(c) = rest.chars().next() {
        if c == '[' {
            let end = rest.find(']').map_or(rest.len(), |i| i + 1);
            rest = &rest[end..];
            continue;
        }
        let Some(token) = TOKENS.iter().find(|t| rest.starts_with(**t)) else {
            rest = &rest[c.len_utf8()..];
            if input.starts_with(c) {
                input = &input[c.len_utf8()..];
            }
            continue;
        };
        rest = &rest[token.len()..];
        match *token {
            "YYYY" => {
                parts[0] = take_num(&mut input, 4)?;
                have_date = true;
            }
            "YY" => {
                let y = take_num(&mut input, 2)?;
                parts[0] = if y > 68.0 { 1900.0 + y } else { 2000.0 + y };
                have_date = true;
            }
            "MM" | "M" => parts[1] = take_num(&mut input, 2)? - 1.0,
            "MMMM" | "MMM" => {
                let t = input.trim_start();
                let idx = MONTHS.iter().position(|m| {
                    t.to_ascii_lowercase()
                        .starts_with(&m[..3].to_ascii_lowercase())
                })?;
                let len = t.chars().take_while(char::is_ascii_alphabetic).count();
                input = &t[len..];
                parts[1] = idx as f64;
            }
            "DD" | "D" | "Do" => parts[2] = take_num(&mut input, 2)?,
            "HH" | "H" | "hh" | "h" | "kk" | "k" => parts[3] = take_num(&mut input, 2)?,
            "mm" | "m" => parts[4] = take_num(&mut input, 2)?,
            "ss" | "s" => parts[5] = take_num(&mut input, 2)?,
            t if t.starts_with('S') => {
                let t2 = input;
                let len = t2.bytes().take_while(u8::is_ascii_digit).count();
                let frac = t2.get(..len)?;
                parts[6] = format!("{:0<3}", &frac[..len.min(3)]).parse().ok()?;
                input = &t2[len..];
            }
            "a" | "A" => {
                let t = input.trim_start();
                pm = Some(t.to_ascii_lowercase().starts_with('p'));
                input = t.get(2..).unwrap_or("");
            }
            "X" => return take_num(&mut input, 12).map(|n| n * 1000.0),
            "x" => return take_num(&mut input, 15),
            "Z" | "ZZ" => {
                let t = input.trim_start();
                if let Some(r) = t.strip_prefix('Z') {
                    offset = Some(0.0);
                    input = r;
                } else {
                    let sign = if t.starts_with('-') { -1.0 } else { 1.0 };
                    let digits: String = t
                        .get(1..)?
                        .chars()
                        .take_while(|c| c.is_ascii_digit() || *c == ':')
                        .collect();
                    input = &t[1 + digits.len()..];
                    let d: String = digits.chars().filter(char::is_ascii_digit).collect();
                    let h: f64 = d.get(..2)?.parse().ok()?;
                    let m: f64 = d.get(2..4).map_or(Some(0.0), |m| m.parse().ok())?;
                    offset = Some(sign * (h * 3.6e6 + m * 6e4));
                }
            }
            _ => {}
        }
    }
    let _ = have_date;
    if let Some(pm) = pm {
        if pm && parts[3] < 12.0 {
            parts[3] += 12.0;
        } else if !pm && parts[3] == 12.0 {
            parts[3] = 0.0;
        }
    }
    if parts[1] < 0.0 || parts[1] > 11.0 || parts[2] < 1.0 || parts[2] > 31.0 {
        return None;
    }
    Some(match offset {
        Some(off) => utc_from_parts(&parts) - off,
        None => local_from_parts(&parts, zone),
    })
}

fn new_value(m: Moment) -> Value {
    Value::Moment(Rc::new(RefCell::new(m)))
}

/// `moment(...)` / `moment.utc(...)`.
pub(crate) fn construct(interp: &mut Interp<'_>, mode: Mode, args: &[Value]) -> R<Value> {
    let zone = match mode {
        Mode::Local => interp.host.timezone.clone(),
        Mode::Utc => TimeZone::UTC,
    };
    let m = make(interp, &zone, mode == Mode::Utc, args)?;
    Ok(new_value(m))
}

fn make(interp: &mut Interp<'_>, zone: &TimeZone, utc: bool, args: &[Value]) -> R<Moment> {
    let now = interp.host.now.as_millisecond() as f64;
    let ms = match args {
        [] | [Value::Undefined, ..] => now,
        [Value::Moment(m), ..] => {
            let mut m = m.borrow().clone();
            if utc {
                m.zone = TimeZone::UTC;
                m.utc = true;
            }
            return Ok(m);
        }
        [Value::Date(ms), ..] => *ms,
        [Value::Num(n), ..] => *n,
        [Value::Str(s), Value::Str(fmt), ..] => parse_with_format(s, fmt, zone).unwrap_or(f64::NAN),
        [Value::Str(s), Value::Array(fmts), ..] => {
            let fmts = fmts.borrow().clone();
            fmts.iter()
                .find_map(|f| match f {
                    Value::Str(f) => parse_with_format(s, f, zone),
                    _ => None,
                })
                .unwrap_or(f64::NAN)
        }
        [Value::Str(s), ..] => parse_iso(s, zone).unwrap_or(f64::NAN),
        [Value::Array(items), ..] => {
            let items = items.borrow().clone();
            let mut parts = [1970.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0];
            for (i, p) in parts.iter_mut().enumerate() {
                if let Some(v) = items.get(i) {
                    *p = interp.js_number(v)?;
                }
            }
            local_from_parts(&parts, zone)
        }
        [Value::Object(map), ..] => {
            let map = map.borrow().clone();
            let mut parts = [1970.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0];
            let cur = fields(now, zone).map(|f| f.parts());
            if let Some(cur) = cur {
                parts[0] = cur[0];
            }
            for (k, v) in &map {
                let i = match &**k {
                    "y" | "year" | "years" => 0,
                    "M" | "month" | "months" => 1,
                    "d" | "D" | "day" | "days" | "date" | "dates" => 2,
                    "h" | "hour" | "hours" => 3,
                    "m" | "minute" | "minutes" => 4,
                    "s" | "second" | "seconds" => 5,
                    "ms" | "millisecond" | "milliseconds" => 6,
                    _ => continue,
                };
                parts[i] = interp.js_number(v)?;
            }
            local_from_parts(&parts, zone)
        }
        _ => f64::NAN,
    };
    Ok(Moment::new(ms, zone.clone(), utc))
}

/// A moment from any argument of a comparison (`isBefore(x)`, `diff(x)`).
fn to_moment(interp: &mut Interp<'_>, v: &Value) -> R<Moment> {
    let zone = interp.host.timezone.clone();
    make(interp, &zone, false, std::slice::from_ref(v))
}

fn zone_by_name(name: &str) -> R<TimeZone> {
    TimeZone::get(name).map_err(|_| JsError::range_error(format!("unknown time zone `{name}`")))
}

/// `moment.utc`, `moment.unix`, `moment.tz`, `moment.isMoment`, `moment.now`.
pub(crate) fn static_method(interp: &mut Interp<'_>, name: &str, args: &[Value]) -> R<Value> {
    Ok(match name {
        "utc" => construct(interp, Mode::Utc, args)?,
        "unix" => {
            let s = interp.js_number(args.first().unwrap_or(&Value::Undefined))?;
            new_value(Moment::new(
                (s * 1000.0).floor(),
                interp.host.timezone.clone(),
                false,
            ))
        }
        "tz" => {
            let Some((zone_arg, rest)) = args.split_last() else {
                return Err(JsError::type_error("moment.tz needs a zone name"));
            };
            let zone_name = interp.js_string(zone_arg)?;
            let zone = zone_by_name(&zone_name)?;
            // A moment or instant keeps its time; strings are wall-clock time in the zone.
            let mut m = make(interp, &zone, false, rest)?;
            m.zone = zone;
            m.utc = false;
            new_value(m)
        }
        "isMoment" => Value::Bool(matches!(args.first(), Some(Value::Moment(_)))),
        "now" => Value::Num(interp.host.now.as_millisecond() as f64),
        "max" | "min" => {
            let list: Vec<Value> = match args {
                [Value::Array(items)] => items.borrow().clone(),
                _ => args.to_vec(),
            };
            let mut best: Option<Moment> = None;
            for v in &list {
                let m = to_moment(interp, v)?;
                let better = match &best {
                    None => true,
                    Some(b) if name == "max" => m.ms > b.ms,
                    Some(b) => m.ms < b.ms,
                };
                if better {
                    best = Some(m);
                }
            }
            match best {
                Some(m) => new_value(m),
                None => construct(interp, Mode::Local, &[])?,
            }
        }
        _ => {
            return Err(JsError::type_error(format!(
                "moment.{name} is not a function"
            )))
        }
    })
}

fn unit_arg(interp: &mut Interp<'_>, v: Option<&Value>) -> R<Option<Unit>> {
    match v {
        None | Some(Value::Undefined) => Ok(None),
        Some(v) => {
            let s = interp.js_string(v)?;
            parse_unit(&s)
                .map(Some)
                .ok_or_else(|| JsError::range_error(format!("unknown moment unit `{s}`")))
        }
    }
}

/// `m.name(args)`.
pub(crate) fn call_method(
    interp: &mut Interp<'_>,
    cell: &Rc<RefCell<Moment>>,
    this: &Value,
    name: &str,
    args: &[Value],
) -> R<Value> {
    let first = args.first();
    let cur = cell.borrow().clone();
    let num_or_nan = |v: Option<f64>| Value::Num(v.unwrap_or(f64::NAN));
    let getter = |f: fn(&Fields) -> f64| num_or_nan(cur.fields().map(|x| f(&x)));
    // Setters change local fields and return `this`, as moment's do.
    let set = |interp: &mut Interp<'_>, index: usize| -> R<Value> {
        let n = interp.js_number(first.unwrap_or(&Value::Undefined))?;
        cell.borrow_mut().set_local(|p| p[index] = n);
        Ok(this.clone())
    };
    let has_arg = !matches!(first, None | Some(Value::Undefined));
    Ok(match name {
        "format" => {
            let fmt = match first {
                None | Some(Value::Undefined) => None,
                Some(v) => Some(interp.js_string(v)?),
            };
            Value::string(cur.format(fmt.as_deref()))
        }
        "add" | "subtract" => {
            let sign = if name == "add" { 1.0 } else { -1.0 };
            match (first, args.get(1)) {
                (Some(Value::Object(map)), _) => {
                    let map = map.borrow().clone();
                    for (k, v) in &map {
                        let unit = parse_unit(k).ok_or_else(|| {
                            JsError::range_error(format!("unknown moment unit `{k}`"))
                        })?;
                        let n = interp.js_number(v)?;
                        cell.borrow_mut().add(sign * n, unit);
                    }
                }
                (Some(a), Some(b)) => {
                    // moment also accepts the deprecated reversed form `add('days', 1)`.
                    let (amount, unit) = match (a, b) {
                        (Value::Str(s), Value::Num(_)) if parse_unit(s).is_some() => (b, a),
                        _ => (a, b),
                    };
                    let n = interp.js_number(amount)?;
                    let unit = unit_arg(interp, Some(unit))?.unwrap_or(Unit::Millisecond);
                    cell.borrow_mut().add(sign * n, unit);
                }
                (Some(a), None) => {
                    let n = interp.js_number(a)?;
                    cell.borrow_mut().add(sign * n, Unit::Millisecond);
                }
                (None, _) => {}
            }
            this.clone()
        }
        "startOf" | "endOf" => {
            if let Some(unit) = unit_arg(interp, first)? {
                if name == "startOf" {
                    cell.borrow_mut().start_of(unit);
                } else {
                    cell.borrow_mut().end_of(unit);
                }
            }
            this.clone()
        }
        "utc" => {
            let mut m = cell.borrow_mut();
            m.zone = TimeZone::UTC;
            m.utc = true;
            drop(m);
            this.clone()
        }
        "local" => {
            let mut m = cell.borrow_mut();
            m.zone = interp.host.timezone.clone();
            m.utc = false;
            drop(m);
            this.clone()
        }
        "tz" => match first {
            None | Some(Value::Undefined) => {
                cur.zone.iana_name().map_or(Value::Undefined, Value::str)
            }
            Some(v) => {
                let zone = zone_by_name(&interp.js_string(v)?)?;
                let mut m = cell.borrow_mut();
                m.zone = zone;
                m.utc = false;
                drop(m);
                this.clone()
            }
        },
        "utcOffset" => match first {
            None | Some(Value::Undefined) => {
                num_or_nan(cur.fields().map(|f| f64::from(f.offset_seconds / 60)))
            }
            Some(v) => {
                let n = interp.js_number(v)?;
                // moment reads small numbers as hours.
                let minutes = if n.abs() < 16.0 { n * 60.0 } else { n };
                let offset = jiff::tz::Offset::from_seconds((minutes * 60.0) as i32)
                    .map_err(|_| JsError::range_error("utcOffset out of range"))?;
                let mut m = cell.borrow_mut();
                m.zone = TimeZone::fixed(offset);
                m.utc = false;
                drop(m);
                this.clone()
            }
        },
        "unix" => Value::Num((cur.ms / 1000.0).floor()),
        "valueOf" => Value::Num(cur.ms),
        "toISOString" => cur.to_json().map_or(Value::Null, Value::string),
        "toJSON" => cur.to_json().map_or(Value::Null, Value::string),
        "toDate" => Value::Date(cur.ms),
        "toString" => Value::string(cur.to_js_string()),
        "clone" => new_value(cur),
        "isValid" => Value::Bool(cur.is_valid()),
        "isBefore" | "isAfter" | "isSame" | "isSameOrBefore" | "isSameOrAfter" => {
            let other = to_moment(interp, first.unwrap_or(&Value::Undefined))?;
            let unit = unit_arg(interp, args.get(1))?;
            Value::Bool(compare(&cur, &other, unit, name))
        }
        "isBetween" => {
            let a = to_moment(interp, first.unwrap_or(&Value::Undefined))?;
            let b = to_moment(interp, args.get(1).unwrap_or(&Value::Undefined))?;
            let unit = unit_arg(interp, args.get(2))?;
            Value::Bool(compare(&cur, &a, unit, "isAfter") && compare(&cur, &b, unit, "isBefore"))
        }
        "diff" => {
            let other = to_moment(interp, first.unwrap_or(&Value::Undefined))?;
            let unit = unit_arg(interp, args.get(1))?.unwrap_or(Unit::Millisecond);
            let float = args.get(2).is_some_and(Value::truthy);
            Value::Num(diff(&cur, &other, unit, float))
        }
        "daysInMonth" => {
            getter(|f| f64::from(days_in_month(i64::from(f.year), i64::from(f.month))))
        }
        "isLeapYear" => Value::Bool(cur.fields().is_some_and(|f| is_leap(i64::from(f.year)))),
        "isDST" => Value::Bool(cur.fields().is_some_and(|f| {
            timestamp(cur.ms).is_some_and(|ts| {
                cur.zone.to_offset_info(ts).dst().is_dst() && f.offset_seconds != 0
            })
        })),
        "year" | "years" if has_arg => set(interp, 0)?,
        "year" | "years" => getter(|f| f64::from(f.year)),
        "month" | "months" if has_arg => {
            let n = match first {
                Some(Value::Str(s)) => {
                    let lower = s.to_ascii_lowercase();
                    MONTHS
                        .iter()
                        .position(|m| lower.starts_with(&m[..3].to_ascii_lowercase()))
                        .map_or(f64::NAN, |i| i as f64)
                }
                Some(v) => interp.js_number(v)?,
                None => f64::NAN,
            };
            let mut m = cell.borrow_mut();
            m.set_local(|p| {
                let y = p[0] + (n / 12.0).floor();
                let mo = n.rem_euclid(12.0);
                p[0] = y;
                p[1] = mo;
                p[2] = p[2].min(f64::from(days_in_month(y as i64, mo as i64 + 1)));
            });
            drop(m);
            this.clone()
        }
        "month" | "months" => getter(|f| f64::from(f.month - 1)),
        "quarter" | "quarters" if has_arg => {
            let q = interp.js_number(first.unwrap_or(&Value::Undefined))?;
            let cur_q = cur.fields().map_or(0.0, |f| f64::from((f.month - 1) / 3));
            cell.borrow_mut().add((q - 1.0 - cur_q) * 3.0, Unit::Month);
            this.clone()
        }
        "quarter" | "quarters" => getter(|f| f64::from((f.month - 1) / 3 + 1)),
        "date" | "dates" if has_arg => set(interp, 2)?,
        "date" | "dates" => getter(|f| f64::from(f.day)),
        "day" | "days" | "weekday" | "isoWeekday" if has_arg => {
            let n = interp.js_number(first.unwrap_or(&Value::Undefined))?;
            let wd = cur.fields().map_or(0.0, |f| f64::from(f.weekday));
            let target = if name == "isoWeekday" {
                let iso = if wd == 0.0 { 7.0 } else { wd };
                n - iso
            } else {
                n - wd
            };
            cell.borrow_mut().add(target, Unit::Day);
            this.clone()
        }
        "day" | "days" | "weekday" => getter(|f| f64::from(f.weekday)),
        "isoWeekday" => getter(|f| f64::from((f.weekday + 6) % 7 + 1)),
        "hour" | "hours" if has_arg => set(interp, 3)?,
        "hour" | "hours" => getter(|f| f64::from(f.hour)),
        "minute" | "minutes" if has_arg => set(interp, 4)?,
        "minute" | "minutes" => getter(|f| f64::from(f.minute)),
        "second" | "seconds" if has_arg => set(interp, 5)?,
        "second" | "seconds" => getter(|f| f64::from(f.second)),
        "millisecond" | "milliseconds" if has_arg => set(interp, 6)?,
        "millisecond" | "milliseconds" => getter(|f| f64::from(f.millisecond)),
        "dayOfYear" if has_arg => {
            let n = interp.js_number(first.unwrap_or(&Value::Undefined))?;
            let cur_doy = cur.fields().map_or(0.0, |f| f64::from(f.day_of_year));
            cell.borrow_mut().add(n - cur_doy, Unit::Day);
            this.clone()
        }
        "dayOfYear" => getter(|f| f64::from(f.day_of_year)),
        "week" | "weeks" | "isoWeek" | "isoWeeks" => {
            let (dow, doy) = if name.starts_with("iso") {
                (1, 4)
            } else {
                (0, 6)
            };
            let week = cur.fields().map(|f| week_of_year(&f, dow, doy).0 as f64);
            if has_arg {
                let n = interp.js_number(first.unwrap_or(&Value::Undefined))?;
                cell.borrow_mut()
                    .add((n - week.unwrap_or(0.0)) * 7.0, Unit::Day);
                this.clone()
            } else {
                num_or_nan(week)
            }
        }
        "weekYear" => getter(|f| week_of_year(f, 0, 6).1 as f64),
        "isoWeekYear" => getter(|f| week_of_year(f, 1, 4).1 as f64),
        "get" => {
            let unit = interp.js_string(first.unwrap_or(&Value::Undefined))?;
            return call_method(interp, cell, this, &unit, &[]);
        }
        "set" => {
            let unit = interp.js_string(first.unwrap_or(&Value::Undefined))?;
            let v = args.get(1).cloned().unwrap_or(Value::Undefined);
            return call_method(interp, cell, this, &unit, &[v]);
        }
        _ => {
            return Err(JsError::type_error(format!(
                "moment.{name} is not a function"
            )))
        }
    })
}

fn compare(a: &Moment, b: &Moment, unit: Option<Unit>, how: &str) -> bool {
    let Some(unit) = unit.filter(|u| *u != Unit::Millisecond) else {
        return match how {
            "isBefore" => a.ms < b.ms,
            "isAfter" => a.ms > b.ms,
            "isSame" => a.ms == b.ms,
            "isSameOrBefore" => a.ms <= b.ms,
            _ => a.ms >= b.ms,
        };
    };
    let mut start = a.clone();
    start.start_of(unit);
    let mut end = a.clone();
    end.end_of(unit);
    match how {
        "isBefore" => end.ms < b.ms,
        "isAfter" => b.ms < start.ms,
        "isSame" => start.ms <= b.ms && b.ms <= end.ms,
        "isSameOrBefore" => b.ms >= start.ms,
        _ => b.ms <= end.ms,
    }
}

/// moment's `diff`: months by calendar (with a fractional part), days and weeks corrected
/// for a changed UTC offset, the rest in absolute time; truncated unless `float`.
fn diff(a: &Moment, b: &Moment, unit: Unit, float: bool) -> f64 {
    if !a.is_valid() || !b.is_valid() {
        return f64::NAN;
    }
    let b_in_a = Moment::new(b.ms, a.zone.clone(), a.utc);
    let output = match unit {
        Unit::Year | Unit::Quarter | Unit::Month => {
            let months = month_diff(a, &b_in_a);
            match unit {
                Unit::Year => months / 12.0,
                Unit::Quarter => months / 3.0,
                _ => months,
            }
        }
        _ => {
            let delta = a.ms - b.ms;
            let zone_delta = (offset_minutes(b.ms, &a.zone) - offset_minutes(a.ms, &a.zone)) * 6e4;
            match unit {
                Unit::Second => delta / 1e3,
                Unit::Minute => delta / 6e4,
                Unit::Hour => delta / 3.6e6,
                Unit::Day | Unit::Date => (delta - zone_delta) / DAY_MS,
                Unit::Week | Unit::IsoWeek => (delta - zone_delta) / (7.0 * DAY_MS),
                _ => delta,
            }
        }
    };
    let r = if float { output } else { output.trunc() };
    if r == 0.0 {
        0.0
    } else {
        r
    }
}

fn month_diff(a: &Moment, b: &Moment) -> f64 {
    let (Some(fa), Some(fb)) = (a.fields(), b.fields()) else {
        return f64::NAN;
    };
    let whole =
        f64::from(i32::from(fb.year) - i32::from(fa.year)) * 12.0 + f64::from(fb.month - fa.month);
    let shifted = |n: f64| {
        let mut m = a.clone();
        m.add(n, Unit::Month);
        m.ms
    };
    let anchor = shifted(whole);
    let adjust = if b.ms - anchor < 0.0 {
        let anchor2 = shifted(whole - 1.0);
        (b.ms - anchor) / (anchor - anchor2)
    } else {
        let anchor2 = shifted(whole + 1.0);
        (b.ms - anchor) / (anchor2 - anchor)
    };
    let r = -(whole + adjust);
    if r == 0.0 || r.is_nan() {
        0.0
    } else {
        r
    }
}
