//! moment.js 2.21 (the version Digdag bundles) on `jiff`'s tz database, in the en locale:
//! construction and parsing (`parse`), `format` (`format`), the calendar rules of JavaScript's
//! `Date` that moment builds on (`calendar`), and here the moment object itself: `add` and
//! `subtract` through moment's durations, `startOf`/`endOf`, getters and setters, comparisons,
//! `diff` and `utcOffset`. `moment.tz` and `.tz(zone)` are spade's extension (Digdag ships no
//! moment-timezone).
//!
//! A moment is an instant in epoch milliseconds (NaN when invalid, as in `Date`) and how it
//! reads its wall clock: the workflow zone (moment's local mode, since Digdag sets the
//! JavaScript zone to it), a fixed offset (`utc()`, `utcOffset(n)`), or a named zone.

mod calendar;
mod format;
mod parse;

/// English month and weekday names (Sunday first), also for the UI's schedule in words.
pub(crate) use format::{MONTHS, WEEKDAYS};

use super::eval::{Interp, JsError};
use super::numbers::js_round;
use super::value::{ObjectMap, Value};
use calendar::{
    day_of_year_from_weeks, days_in_month0, fields_at_offset, is_leap, week_of_year, weeks_in_year,
};
use jiff::tz::TimeZone;
use std::cell::RefCell;
use std::rc::Rc;

pub(crate) use calendar::{
    fields, iso_utc, local_from_parts, offset_minutes, time_clip, utc_from_parts,
};

type R<T> = Result<T, JsError>;

/// How a moment reads its wall clock.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Zoning {
    /// The workflow zone: moment's local mode.
    Local,
    /// A zone set with spade's `.tz(name)`/`moment.tz`.
    Named,
    /// moment's UTC mode at a fixed offset in minutes (`utc()` is 0, `utcOffset(n)`).
    Offset(f64),
}

/// One moment object.
#[derive(Clone, Debug)]
pub(crate) struct Moment {
    /// Epoch milliseconds; NaN when invalid.
    ms: f64,
    /// The zone of `Local` and `Named` moments.
    zone: TimeZone,
    zoning: Zoning,
}

/// How `moment(...)`/`moment.utc(...)` read their argument.
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
    "weeksInYear",
    "isoWeeksInYear",
    "daysInMonth",
    "isLeapYear",
    "clone",
    "isValid",
    "utcOffset",
    "isUtc",
    "isUTC",
    "isLocal",
    "isUtcOffset",
    "zoneAbbr",
    "zoneName",
    "get",
    "set",
    "isDST",
    "toArray",
    "toObject",
];

pub(crate) const STATICS: &[&str] = &["utc", "unix", "tz", "isMoment", "now", "max", "min"];

/// moment's units (what `normalizeUnits` returns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    Year,
    Quarter,
    Month,
    Week,
    IsoWeek,
    Day,
    Weekday,
    IsoWeekday,
    Date,
    DayOfYear,
    WeekYear,
    IsoWeekYear,
    Hour,
    Minute,
    Second,
    Millisecond,
}

/// moment 2.21's `normalizeUnits`: its alias table (`unit`, `units` in lower case, and the
/// shorthand), looked up as given and then in lower case. So `D` is `date`, `H` is `hour`
/// (lower case `h`), `Days` is `day`; anything else is no unit.
fn normalize_units(s: &str) -> Option<Unit> {
    fn alias(s: &str) -> Option<Unit> {
        Some(match s {
            "y" | "year" | "years" => Unit::Year,
            "Q" | "quarter" | "quarters" => Unit::Quarter,
            "M" | "month" | "months" => Unit::Month,
            "w" | "week" | "weeks" => Unit::Week,
            "W" | "isoweek" | "isoweeks" => Unit::IsoWeek,
            "d" | "day" | "days" => Unit::Day,
            "e" | "weekday" | "weekdays" => Unit::Weekday,
            "E" | "isoweekday" | "isoweekdays" => Unit::IsoWeekday,
            "D" | "date" | "dates" => Unit::Date,
            "DDD" | "dayofyear" | "dayofyears" => Unit::DayOfYear,
            "gg" | "weekyear" | "weekyears" => Unit::WeekYear,
            "GG" | "isoweekyear" | "isoweekyears" => Unit::IsoWeekYear,
            "h" | "hour" | "hours" => Unit::Hour,
            "m" | "minute" | "minutes" => Unit::Minute,
            "s" | "second" | "seconds" => Unit::Second,
            "ms" | "millisecond" | "milliseconds" => Unit::Millisecond,
            _ => return None,
        })
    }
    alias(s).or_else(|| alias(&s.to_lowercase()))
}

/// `normalizeUnits` of any value: only strings name units.
fn unit_of(v: Option<&Value>) -> Option<Unit> {
    match v {
        Some(Value::Str(s)) => normalize_units(s),
        _ => None,
    }
}

/// The priority moment's `set({...})` applies units in (lowest first).
fn priority(u: Unit) -> u8 {
    match u {
        Unit::Year | Unit::WeekYear | Unit::IsoWeekYear => 1,
        Unit::DayOfYear => 4,
        Unit::Week | Unit::IsoWeek => 5,
        Unit::Quarter => 7,
        Unit::Month => 8,
        Unit::Date => 9,
        Unit::Day | Unit::Weekday | Unit::IsoWeekday => 11,
        Unit::Hour => 13,
        Unit::Minute => 14,
        Unit::Second => 15,
        Unit::Millisecond => 16,
    }
}

/// moment's `absRound`: halves away from zero.
fn abs_round(n: f64) -> f64 {
    if n < 0.0 {
        -js_round(-n)
    } else {
        js_round(n)
    }
}

/// A moment duration as `add`/`subtract` use it: exact milliseconds, and days and months
/// that are rounded when applied.
#[derive(Default)]
struct Duration {
    ms: f64,
    days: f64,
    months: f64,
}

impl Moment {
    fn new(ms: f64, zone: TimeZone, zoning: Zoning) -> Moment {
        Moment { ms, zone, zoning }
    }

    pub(crate) fn value_of(&self) -> f64 {
        self.ms
    }

    fn offset(&self) -> f64 {
        match self.zoning {
            Zoning::Offset(m) => m,
            Zoning::Local | Zoning::Named => 0.0,
        }
    }

    fn is_utc_mode(&self) -> bool {
        matches!(self.zoning, Zoning::Offset(_))
    }

    pub(crate) fn is_valid(&self) -> bool {
        self.fields().is_some()
    }

    /// `toJSON()`: ISO 8601 in UTC with milliseconds, `None` (JSON null) when invalid.
    pub(crate) fn to_json(&self) -> Option<String> {
        iso_utc(self.ms)
    }

    /// `toString()`: `Sun Mar 13 2016 03:00:00 GMT-0700`.
    pub(crate) fn to_js_string(&self) -> String {
        self.format_str("ddd MMM DD YYYY HH:mm:ss [GMT]ZZ")
    }

    /// Wall-clock fields; `None` when invalid.
    fn fields(&self) -> Option<calendar::Fields> {
        match self.zoning {
            Zoning::Offset(m) => {
                if !self.ms.is_finite() || self.ms.abs() > 8.64e15 {
                    return None;
                }
                fields_at_offset(self.ms, (m * 60.0) as i32)
            }
            Zoning::Local | Zoning::Named => fields(self.ms, &self.zone),
        }
    }

    /// `utcOffset()`: the fixed offset in UTC mode, else the zone's offset rounded to 15
    /// minutes as moment's `getDateOffset` does.
    fn utc_offset(&self) -> f64 {
        match self.zoning {
            Zoning::Offset(m) => m,
            Zoning::Local | Zoning::Named => {
                let tzo = -offset_minutes(self.ms, &self.zone);
                -js_round(tzo / 15.0) * 15.0 + 0.0
            }
        }
    }

    /// The instant of wall-clock parts (JavaScript's local `Date` setters, or the UTC ones
    /// on the shifted time of a fixed offset).
    fn set_parts(&mut self, parts: &[f64; 7]) {
        self.ms = match self.zoning {
            Zoning::Offset(m) => utc_from_parts(parts) - m * 60_000.0,
            Zoning::Local | Zoning::Named => local_from_parts(parts, &self.zone),
        };
    }

    /// Changes wall-clock fields; a no-op on an invalid moment, as moment's setters are.
    fn set_local(&mut self, f: impl FnOnce(&mut [f64; 7])) {
        let Some(cur) = self.fields() else { return };
        let mut parts = cur.parts();
        f(&mut parts);
        self.set_parts(&parts);
    }

    /// `Date.setTime(getTime() + ms)` on moment's internal date.
    fn add_ms(&mut self, ms: f64) {
        let off = self.offset() * 60_000.0;
        self.ms = time_clip(self.ms + off + ms) - off;
    }

    /// moment's `setMonth`: the day is kept unless the month is shorter.
    fn set_month(&mut self, month: f64) {
        let Some(f) = self.fields() else { return };
        let day = f64::from(f.day).min(days_in_month0(f64::from(f.year), month));
        self.set_local(|p| {
            p[1] = month;
            p[2] = day;
        });
    }

    /// moment's `set$1`: NaN values are ignored; a Feb 29 moving to a common year becomes
    /// Feb 28.
    fn set_field(&mut self, unit: Unit, value: f64) {
        let Some(f) = self.fields() else { return };
        if value.is_nan() {
            return;
        }
        let index = match unit {
            Unit::Year => 0,
            Unit::Date => 2,
            Unit::Hour => 3,
            Unit::Minute => 4,
            Unit::Second => 5,
            _ => 6,
        };
        let feb29 = index == 0 && is_leap(i64::from(f.year)) && f.month == 2 && f.day == 29;
        self.set_local(|p| {
            p[index] = value;
            if feb29 {
                p[2] = days_in_month0(value.trunc(), 1.0);
            }
        });
    }

    /// A getter on a valid moment.
    fn get(&self, unit: Unit) -> f64 {
        let Some(f) = self.fields() else {
            return f64::NAN;
        };
        f64::from(match unit {
            Unit::Year => f.year,
            Unit::Month => i32::from(f.month) - 1,
            Unit::Date => i32::from(f.day),
            Unit::Day | Unit::Weekday => i32::from(f.weekday),
            Unit::IsoWeekday => i32::from((f.weekday + 6) % 7 + 1),
            Unit::Hour => i32::from(f.hour),
            Unit::Minute => i32::from(f.minute),
            Unit::Second => i32::from(f.second),
            Unit::Millisecond => i32::from(f.millisecond),
            Unit::DayOfYear => i32::from(f.day_of_year),
            Unit::Quarter => i32::from((f.month - 1) / 3 + 1),
            Unit::Week => week_of_year(&f, 0, 6).0 as i32,
            Unit::IsoWeek => week_of_year(&f, 1, 4).0 as i32,
            Unit::WeekYear => week_of_year(&f, 0, 6).1 as i32,
            Unit::IsoWeekYear => week_of_year(&f, 1, 4).1 as i32,
        })
    }

    /// moment's `addSubtract`: months, then days (both rounded half away from zero), then
    /// the exact milliseconds.
    fn add_duration(&mut self, d: &Duration, sign: f64) {
        if !self.is_valid() {
            return;
        }
        let (days, months) = (abs_round(d.days), abs_round(d.months));
        if months != 0.0 && !months.is_nan() {
            self.set_month(self.get(Unit::Month) + months * sign);
        }
        if days != 0.0 && !days.is_nan() {
            self.set_field(Unit::Date, self.get(Unit::Date) + days * sign);
        }
        if d.ms != 0.0 && !d.ms.is_nan() {
            self.add_ms(d.ms * sign);
        }
    }

    /// `add(n, unit)` with a numeric amount and a normalized unit.
    fn add_unit(&mut self, amount: f64, unit: Unit) {
        let d = duration_from_units(&[(unit, amount)]);
        self.add_duration(&d, 1.0);
    }

    /// moment's `startOf`: its cases fall through from the unit down to milliseconds.
    fn start_of(&mut self, unit: Option<Unit>) {
        let Some(unit) = unit else { return };
        let level = match unit {
            Unit::Year => 0,
            Unit::Quarter | Unit::Month => 1,
            Unit::Week | Unit::IsoWeek | Unit::Day | Unit::Date => 2,
            Unit::Hour => 3,
            Unit::Minute => 4,
            Unit::Second => 5,
            _ => return,
        };
        if level <= 0 {
            self.set_month(0.0);
        }
        if level <= 1 {
            self.set_field(Unit::Date, 1.0);
        }
        if level <= 2 {
            self.set_field(Unit::Hour, 0.0);
        }
        if level <= 3 {
            self.set_field(Unit::Minute, 0.0);
        }
        if level <= 4 {
            self.set_field(Unit::Second, 0.0);
        }
        self.set_field(Unit::Millisecond, 0.0);
        match unit {
            Unit::Week => {
                let wd = self.get(Unit::Weekday);
                self.add_unit(-wd, Unit::Day);
            }
            Unit::IsoWeek => self.set_iso_weekday(1.0),
            Unit::Quarter => {
                let q = (self.get(Unit::Month) / 3.0).floor() * 3.0;
                self.set_month(q);
            }
            _ => {}
        }
    }

    /// moment's `endOf`: the start of the next unit, less a millisecond.
    fn end_of(&mut self, unit: Option<Unit>) {
        let unit = match unit {
            None | Some(Unit::Millisecond) => return,
            Some(Unit::Date) => Unit::Day,
            Some(u) => u,
        };
        self.start_of(Some(unit));
        self.add_unit(
            1.0,
            if unit == Unit::IsoWeek {
                Unit::Week
            } else {
                unit
            },
        );
        self.add_ms(-1.0);
    }

    /// `day(n)`: a numeric weekday, relative to this week's Sunday.
    fn set_day(&mut self, day: f64) {
        let cur = self.get(Unit::Day);
        self.add_unit(day - cur, Unit::Day);
    }

    fn set_iso_weekday(&mut self, weekday: f64) {
        let day = self.get(Unit::Day);
        let target = if day % 7.0 != 0.0 {
            weekday
        } else {
            weekday - 7.0
        };
        self.set_day(target);
    }

    /// `weekYear(y)`/`isoWeekYear(y)`: the same week and weekday in week-year `y`.
    fn set_week_year(&mut self, input: f64, iso: bool) {
        let (dow, doy) = if iso { (1, 4) } else { (0, 6) };
        let (week, weekday) = if iso {
            (self.get(Unit::IsoWeek), self.get(Unit::IsoWeekday))
        } else {
            (self.get(Unit::Week), self.get(Unit::Weekday))
        };
        if input.is_nan() || week.is_nan() {
            return;
        }
        let target = weeks_in_year(input as i64, dow, doy) as f64;
        let week = week.min(target);
        let (y, d) = day_of_year_from_weeks(input as i64, week as i64, weekday as i64, dow, doy);
        let date = utc_from_parts(&[y as f64, 0.0, d as f64, 0.0, 0.0, 0.0, 0.0]);
        let Some(f) = fields(date, &TimeZone::UTC) else {
            return;
        };
        self.set_field(Unit::Year, f64::from(f.year));
        self.set_month(f64::from(f.month - 1));
        self.set_field(Unit::Date, f64::from(f.day));
    }

    fn zone_abbr(&self) -> String {
        match self.zoning {
            Zoning::Offset(_) => "UTC".into(),
            Zoning::Local => String::new(),
            Zoning::Named => calendar::timestamp(self.ms)
                .map(|ts| self.zone.to_offset_info(ts).abbreviation().to_string())
                .unwrap_or_default(),
        }
    }

    fn zone_name(&self) -> String {
        match self.zoning {
            Zoning::Offset(_) => "Coordinated Universal Time".into(),
            Zoning::Local => String::new(),
            Zoning::Named => self.zone_abbr(),
        }
    }

    fn format_str(&self, fmt: &str) -> String {
        let Some(f) = self.fields() else {
            return "Invalid date".into();
        };
        let (abbr, name) = (self.zone_abbr(), self.zone_name());
        let subject = format::Subject {
            fields: f,
            utc_offset: self.utc_offset(),
            ms: self.ms,
            zone_abbr: &abbr,
            zone_name: &name,
        };
        format::format(&subject, fmt)
    }

    /// `format()` without a format: `Z` for UTC (offset 0), the offset otherwise.
    fn default_format(&self) -> &'static str {
        if self.zoning == Zoning::Offset(0.0) {
            "YYYY-MM-DDTHH:mm:ss[Z]"
        } else {
            "YYYY-MM-DDTHH:mm:ssZ"
        }
    }

    /// `utcOffset(minutes, keepLocalTime)`.
    fn set_utc_offset(&mut self, minutes: f64, keep_local_time: bool) {
        if !self.is_valid() {
            return;
        }
        if keep_local_time {
            let wall = self.ms + self.utc_offset() * 60_000.0;
            self.ms = wall - minutes * 60_000.0;
        } else {
            // moment shifts its internal date by the change: TimeClip applies there.
            let old = self.offset() * 60_000.0;
            let shifted = time_clip(self.ms + old + (minutes * 60_000.0 - old));
            self.ms = shifted - minutes * 60_000.0;
        }
        self.zoning = Zoning::Offset(minutes);
    }
}

/// A duration from normalized units (moment's `Duration` constructor): the units it does
/// not read (`date`, `isoWeek`, `weekday`, ...) are ignored.
fn duration_from_units(units: &[(Unit, f64)]) -> Duration {
    let get = |u: Unit| {
        units
            .iter()
            .rev()
            .find(|(x, _)| *x == u)
            .map_or(0.0, |(_, v)| if v.is_nan() { 0.0 } else { *v })
    };
    Duration {
        ms: get(Unit::Millisecond)
            + get(Unit::Second) * 1e3
            + get(Unit::Minute) * 6e4
            + get(Unit::Hour) * 1000.0 * 60.0 * 60.0,
        days: get(Unit::Day) + get(Unit::Week) * 7.0,
        months: get(Unit::Month) + get(Unit::Quarter) * 3.0 + get(Unit::Year) * 12.0,
    }
}

/// moment's `createDuration(input, key)` for `add`/`subtract`, after its argument swap.
fn duration_of(interp: &mut Interp<'_>, args: &[Value]) -> R<Duration> {
    let mut val = args.first().cloned().unwrap_or(Value::Undefined);
    let mut period = args.get(1).cloned().unwrap_or(Value::Undefined);
    // The deprecated `add('days', 1)`: a period that reads as a number swaps the two.
    if !matches!(period, Value::Null) && !interp.js_number(&period)?.is_nan() {
        std::mem::swap(&mut val, &mut period);
    }
    if let Value::Str(s) = &val {
        val = Value::Num(super::value::string_to_number(s));
    }
    Ok(match &val {
        Value::Num(n) => {
            if period.truthy() {
                let key = interp.js_string(&period)?;
                match normalize_units(&key) {
                    Some(u) => duration_from_units(&[(u, *n)]),
                    None => Duration::default(),
                }
            } else {
                Duration {
                    ms: if n.is_nan() { 0.0 } else { *n },
                    ..Duration::default()
                }
            }
        }
        Value::Object(map) => {
            let map: ObjectMap = map.borrow().clone();
            let mut units = Vec::new();
            for (k, v) in &map {
                if let Some(u) = normalize_units(k) {
                    // `normalizedInput.year || 0`, then arithmetic converts to numbers.
                    let n = if v.truthy() {
                        interp.js_number(v)?
                    } else {
                        0.0
                    };
                    units.push((u, n));
                }
            }
            duration_from_units(&units)
        }
        _ => Duration::default(),
    })
}

fn new_value(m: Moment) -> Value {
    Value::Moment(Rc::new(RefCell::new(m)))
}

/// `moment(...)` / `moment.utc(...)`.
pub(crate) fn construct(interp: &mut Interp<'_>, mode: Mode, args: &[Value]) -> R<Value> {
    let zone = interp.host.timezone.clone();
    let m = make(interp, &zone, mode == Mode::Utc, args)?;
    Ok(new_value(m))
}

/// moment's `createLocalOrUTC` over the argument kinds spade has.
fn make(interp: &mut Interp<'_>, zone: &TimeZone, utc: bool, args: &[Value]) -> R<Moment> {
    let now = interp.host.now.as_millisecond() as f64;
    let utc_zone = TimeZone::UTC;
    let reading = parse::Reading {
        zone: if utc { &utc_zone } else { zone },
        utc,
        now,
    };
    let zoning = if utc {
        Zoning::Offset(0.0)
    } else {
        Zoning::Local
    };
    let undefined = Value::Undefined;
    let first = args.first().unwrap_or(&undefined);
    let ms = match first {
        Value::Undefined => now,
        Value::Object(map) if map.borrow().is_empty() => now,
        Value::Array(items) if items.borrow().is_empty() => now,
        Value::Null => f64::NAN,
        Value::Moment(m) => {
            let mut m = m.borrow().clone();
            if utc {
                m.set_utc_offset(0.0, false);
            }
            return Ok(m);
        }
        Value::Date(ms) => *ms,
        Value::Num(n) => time_clip(*n),
        Value::Str(s) => {
            // `moment(s, fmt, true)`, or `moment(s, fmt, locale, true)`.
            let strict = match (args.get(2), args.get(3)) {
                (Some(Value::Bool(b)), _) => *b,
                (_, Some(v)) => v.truthy(),
                _ => false,
            };
            match args.get(1) {
                Some(Value::Str(fmt)) if !fmt.is_empty() => {
                    parse::with_format(s, fmt, strict, &reading)
                }
                Some(Value::Array(fmts)) => {
                    let fmts = fmts.borrow().clone();
                    let mut list = Vec::with_capacity(fmts.len());
                    for f in &fmts {
                        list.push(interp.js_string(f)?);
                    }
                    if list.is_empty() {
                        f64::NAN
                    } else {
                        parse::with_formats(s, &list, strict, &reading)
                    }
                }
                _ => from_string(s, &reading),
            }
        }
        Value::Array(items) => {
            let items = items.borrow().clone();
            let mut parts = [None; 7];
            for (slot, v) in parts.iter_mut().zip(&items) {
                let s = interp.js_string(v)?;
                *slot = Some(super::numbers::parse_int(&s, 10));
            }
            parse::from_parts(&parts, &reading)
        }
        Value::Object(map) => {
            let map: ObjectMap = map.borrow().clone();
            let mut by_unit: Vec<(Unit, Value)> = Vec::new();
            for (k, v) in &map {
                if let Some(u) = normalize_units(k) {
                    by_unit.retain(|(x, _)| *x != u);
                    by_unit.push((u, v.clone()));
                }
            }
            let get = |u: Unit| {
                by_unit
                    .iter()
                    .find(|(x, _)| *x == u)
                    .map(|(_, v)| v.clone())
            };
            let day = get(Unit::Day)
                .filter(Value::truthy)
                .or_else(|| get(Unit::Date));
            let order = [
                get(Unit::Year),
                get(Unit::Month),
                day,
                get(Unit::Hour),
                get(Unit::Minute),
                get(Unit::Second),
                get(Unit::Millisecond),
            ];
            let mut parts = [None; 7];
            for (slot, v) in parts.iter_mut().zip(order) {
                // `obj && parseInt(obj, 10)`.
                *slot = match v {
                    None | Some(Value::Undefined) => None,
                    Some(v) if !v.truthy() => Some(interp.js_number(&v)?),
                    Some(v) => {
                        let s = interp.js_string(&v)?;
                        Some(super::numbers::parse_int(&s, 10))
                    }
                };
            }
            parse::from_parts(&parts, &reading)
        }
        _ => f64::NAN,
    };
    Ok(Moment::new(ms, zone.clone(), zoning))
}

/// moment's `configFromString`: `/Date(ms)/`, ISO 8601, RFC 2822, then `Date`'s own parser.
fn from_string(s: &str, reading: &parse::Reading<'_>) -> f64 {
    if s.is_empty() {
        return f64::NAN;
    }
    let lower = s.to_ascii_lowercase();
    let json = lower.strip_prefix('/').unwrap_or(&lower);
    if let Some(rest) = json.strip_prefix("date(") {
        let digits = rest.strip_prefix('-').unwrap_or(rest);
        let n = digits.bytes().take_while(u8::is_ascii_digit).count();
        if n > 0 {
            let len = rest.len() - digits.len() + n;
            return time_clip(super::value::string_to_number(&rest[..len]));
        }
    }
    if let Some(ms) = parse::iso(s, reading) {
        return ms;
    }
    if let Some(ms) = parse::rfc2822(s) {
        return ms;
    }
    // moment's last resort is `new Date(s)`: spade reads ES5's date-time format there (the
    // forms engines add on top differ between V8, Nashorn and Graal).
    let zone = if reading.utc {
        &TimeZone::UTC
    } else {
        reading.zone
    };
    parse::es5_date(s, zone).unwrap_or(f64::NAN)
}

/// `new Date(string)` / `Date.parse`: ES5's date-time format (a date alone is UTC), then
/// the ISO forms moment reads (`2016-03-13 10:00`, local) and RFC 2822.
pub(crate) fn parse_date_string(s: &str, zone: &TimeZone) -> Option<f64> {
    let t = s.trim();
    if let Some(ms) = parse::es5_date(t, zone) {
        return Some(ms);
    }
    let reading = parse::Reading {
        zone,
        utc: false,
        now: 0.0,
    };
    let ms = parse::iso(t, &reading).or_else(|| parse::rfc2822(t))?;
    (!ms.is_nan()).then_some(ms)
}

/// Formats `ms` in `zone` with a moment format string (`None` when invalid).
pub(crate) fn format_ms(ms: f64, zone: &TimeZone, fmt: &str) -> Option<String> {
    let m = Moment::new(ms, zone.clone(), Zoning::Local);
    m.is_valid().then(|| m.format_str(fmt))
}

/// A moment from any argument of a comparison (`isBefore(x)`, `diff(x)`): moments as they
/// are, anything else read as `moment(x)`.
fn to_moment(interp: &mut Interp<'_>, v: &Value) -> R<Moment> {
    if let Value::Moment(m) = v {
        return Ok(m.borrow().clone());
    }
    let zone = interp.host.timezone.clone();
    make(interp, &zone, false, std::slice::from_ref(v))
}

fn zone_by_name(name: &str) -> R<TimeZone> {
    TimeZone::get(name).map_err(|_| JsError::range_error(format!("unknown time zone `{name}`")))
}

/// `moment.utc`, `moment.unix`, `moment.tz`, `moment.isMoment`, `moment.now`, `max`, `min`.
pub(crate) fn static_method(interp: &mut Interp<'_>, name: &str, args: &[Value]) -> R<Value> {
    Ok(match name {
        "utc" => construct(interp, Mode::Utc, args)?,
        "unix" => {
            let s = interp.js_number(args.first().unwrap_or(&Value::Undefined))?;
            new_value(Moment::new(
                time_clip(s * 1000.0),
                interp.host.timezone.clone(),
                Zoning::Local,
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
            m.zoning = Zoning::Named;
            new_value(m)
        }
        "isMoment" => Value::Bool(matches!(args.first(), Some(Value::Moment(_)))),
        "now" => Value::Num(interp.host.now.as_millisecond() as f64),
        "max" | "min" => {
            let list: Vec<Value> = match args {
                [Value::Array(items)] => items.borrow().clone(),
                _ => args.to_vec(),
            };
            let Some(first) = list.first() else {
                return construct(interp, Mode::Local, &[]);
            };
            // moment's `pickBy`: the arguments must be moments; an invalid one wins.
            let mut best = first.clone();
            for v in &list[1..] {
                let (Value::Moment(m), Value::Moment(b)) = (v, &best) else {
                    return Err(JsError::type_error("moment.max/min take moments"));
                };
                let (m_ms, b_ms) = (m.borrow().ms, b.borrow().ms);
                let wins = m_ms.is_nan()
                    || if name == "max" {
                        m_ms > b_ms
                    } else {
                        m_ms < b_ms
                    };
                if wins {
                    best = v.clone();
                }
            }
            if !matches!(best, Value::Moment(_)) {
                return Err(JsError::type_error("moment.max/min take moments"));
            }
            best
        }
        _ => {
            return Err(JsError::type_error(format!(
                "moment.{name} is not a function"
            )))
        }
    })
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
    // `value != null`: a setter call.
    let setting = !matches!(first, None | Some(Value::Undefined | Value::Null));
    let cur = cell.borrow().clone();
    let valid = cur.is_valid();
    let number = |v: f64| Value::Num(if valid { v } else { f64::NAN });
    let arg_number = |interp: &mut Interp<'_>| interp.js_number(first.unwrap_or(&Value::Undefined));
    macro_rules! update {
        ($m:ident => $body:expr) => {{
            let mut $m = cell.borrow_mut();
            $body;
            drop($m);
            this.clone()
        }};
    }
    Ok(match name {
        "format" => match first {
            None | Some(Value::Undefined | Value::Null) => {
                Value::string(cur.format_str(cur.default_format()))
            }
            Some(v) if !v.truthy() => Value::string(cur.format_str(cur.default_format())),
            Some(Value::Str(f)) => Value::string(cur.format_str(f)),
            Some(_) => return Err(JsError::type_error("format.match is not a function")),
        },
        "add" | "subtract" => {
            let d = duration_of(interp, args)?;
            let sign = if name == "add" { 1.0 } else { -1.0 };
            update!(m => m.add_duration(&d, sign))
        }
        "startOf" => update!(m => m.start_of(unit_of(first))),
        "endOf" => update!(m => m.end_of(unit_of(first))),
        "utc" => {
            let keep = args.first().is_some_and(Value::truthy);
            update!(m => m.set_utc_offset(0.0, keep))
        }
        "local" => {
            let host_zone = interp.host.timezone.clone();
            let mut m = cell.borrow_mut();
            if m.is_utc_mode() || m.zoning == Zoning::Named {
                m.zone = host_zone;
                m.zoning = Zoning::Local;
            }
            drop(m);
            this.clone()
        }
        "tz" => match first {
            None | Some(Value::Undefined) => match cur.zoning {
                Zoning::Named => cur.zone.iana_name().map_or(Value::Undefined, Value::str),
                Zoning::Local | Zoning::Offset(_) => Value::Undefined,
            },
            Some(v) => {
                let zone = zone_by_name(&interp.js_string(v)?)?;
                update!(m => { m.zone = zone; m.zoning = Zoning::Named; })
            }
        },
        "utcOffset" => {
            if !setting {
                return Ok(number(cur.utc_offset()));
            }
            if !valid {
                return Ok(this.clone());
            }
            let keep_local = args.get(1).is_some_and(Value::truthy);
            let keep_minutes = args.get(2).is_some_and(Value::truthy);
            let minutes = match first {
                Some(Value::Str(s)) => match parse::offset_from_string(s) {
                    Some(m) => m,
                    None => return Ok(this.clone()),
                },
                Some(v) => {
                    let n = interp.js_number(v)?;
                    if n.abs() < 16.0 && !keep_minutes {
                        n * 60.0
                    } else {
                        n
                    }
                }
                None => return Ok(this.clone()),
            };
            update!(m => m.set_utc_offset(minutes, keep_local))
        }
        "isUtc" | "isUTC" => Value::Bool(valid && cur.zoning == Zoning::Offset(0.0)),
        "isUtcOffset" => Value::Bool(valid && cur.is_utc_mode()),
        "isLocal" => Value::Bool(valid && !cur.is_utc_mode()),
        "zoneAbbr" => Value::string(cur.zone_abbr()),
        "zoneName" => Value::string(cur.zone_name()),
        "unix" => Value::Num((cur.ms / 1000.0).floor()),
        "valueOf" => Value::Num(cur.ms),
        "toISOString" => {
            if !valid {
                return Ok(Value::Null);
            }
            if args.first().is_some_and(|v| matches!(v, Value::Bool(true))) {
                let shifted = cur.ms + cur.utc_offset() * 60_000.0;
                let iso = iso_utc(shifted).unwrap_or_default();
                let z = cur.format_str("Z");
                Value::string(iso.replace('Z', &z))
            } else {
                cur.to_json().map_or(Value::Null, Value::string)
            }
        }
        "toJSON" => cur.to_json().map_or(Value::Null, Value::string),
        "toDate" => Value::Date(cur.ms),
        "toArray" | "toObject" => {
            let units = [
                ("years", Unit::Year),
                ("months", Unit::Month),
                ("date", Unit::Date),
                ("hours", Unit::Hour),
                ("minutes", Unit::Minute),
                ("seconds", Unit::Second),
                ("milliseconds", Unit::Millisecond),
            ];
            if name == "toArray" {
                Value::array(units.iter().map(|(_, u)| Value::Num(cur.get(*u))).collect())
            } else {
                Value::object(
                    units
                        .iter()
                        .map(|(k, u)| (Rc::from(*k), Value::Num(cur.get(*u))))
                        .collect(),
                )
            }
        }
        "toString" => Value::string(if valid {
            cur.to_js_string()
        } else {
            "Invalid date".into()
        }),
        "clone" => new_value(cur),
        "isValid" => Value::Bool(valid),
        "isBefore" | "isAfter" | "isSame" | "isSameOrBefore" | "isSameOrAfter" => {
            let other = to_moment(interp, first.unwrap_or(&Value::Undefined))?;
            Value::Bool(compare(&cur, &other, args.get(1), name))
        }
        "isBetween" => {
            let from = to_moment(interp, first.unwrap_or(&Value::Undefined))?;
            let to = to_moment(interp, args.get(1).unwrap_or(&Value::Undefined))?;
            let units = args.get(2);
            // `inclusivity || '()'`: `(` and `)` exclude the ends, anything else includes.
            let incl = match args.get(3) {
                Some(v) if v.truthy() => interp.js_string(v)?,
                _ => "()".to_string(),
            };
            let mut chars = incl.chars();
            let (open, close) = (chars.next(), chars.next());
            let after_from = if open == Some('(') {
                compare(&cur, &from, units, "isAfter")
            } else {
                !compare(&cur, &from, units, "isBefore")
            };
            let before_to = if close == Some(')') {
                compare(&cur, &to, units, "isBefore")
            } else {
                !compare(&cur, &to, units, "isAfter")
            };
            Value::Bool(after_from && before_to)
        }
        "diff" => {
            let other = to_moment(interp, first.unwrap_or(&Value::Undefined))?;
            let float = args.get(2).is_some_and(Value::truthy);
            Value::Num(diff(&cur, &other, unit_of(args.get(1)), float))
        }
        "daysInMonth" => number(days_in_month0(cur.get(Unit::Year), cur.get(Unit::Month))),
        "isLeapYear" => Value::Bool(valid && is_leap(cur.get(Unit::Year) as i64)),
        "weeksInYear" | "isoWeeksInYear" => {
            let (dow, doy) = if name == "weeksInYear" {
                (0, 6)
            } else {
                (1, 4)
            };
            number(weeks_in_year(cur.get(Unit::Year) as i64, dow, doy) as f64)
        }
        "isDST" => {
            let offset = cur.utc_offset();
            let mut jan = cur.clone();
            jan.set_month(0.0);
            let mut jun = cur.clone();
            jun.set_month(5.0);
            Value::Bool(valid && (offset > jan.utc_offset() || offset > jun.utc_offset()))
        }
        "year" | "years" | "date" | "dates" | "hour" | "hours" | "minute" | "minutes"
        | "second" | "seconds" | "millisecond" | "milliseconds" => {
            let unit = normalize_units(name).unwrap_or(Unit::Millisecond);
            if !setting {
                return Ok(number(cur.get(unit)));
            }
            let n = arg_number(interp)?;
            update!(m => m.set_field(unit, n))
        }
        "month" | "months" => {
            if !setting {
                return Ok(number(cur.get(Unit::Month)));
            }
            if !valid {
                return Ok(this.clone());
            }
            let month = match first {
                Some(Value::Str(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                    parse::to_int(s)
                }
                Some(Value::Str(s)) => match parse::month_from_name(s, "MMMM", false) {
                    Some(i) => i as f64,
                    None => return Ok(this.clone()),
                },
                Some(v) => interp.js_number(v)?,
                None => return Ok(this.clone()),
            };
            update!(m => m.set_month(month))
        }
        "quarter" | "quarters" => {
            if !setting {
                return Ok(number(
                    (f64::from(cur.get(Unit::Month) as i32 + 1) / 3.0).ceil(),
                ));
            }
            let q = arg_number(interp)?;
            let month = (q - 1.0) * 3.0 + cur.get(Unit::Month) % 3.0;
            update!(m => m.set_month(month))
        }
        "day" | "days" => {
            if !setting {
                return Ok(number(cur.get(Unit::Day)));
            }
            if !valid {
                return Ok(this.clone());
            }
            // moment's `parseWeekday`: numeric strings, names, or `null` (Sunday's offset).
            let day = match first {
                Some(Value::Str(s)) => {
                    let n = super::value::string_to_number(s);
                    if !n.is_nan() {
                        super::numbers::parse_int(s, 10)
                    } else {
                        parse::weekday_from_name(s, "dddd", false).map_or(0.0, |i| i as f64)
                    }
                }
                Some(v) => interp.js_number(v)?,
                None => 0.0,
            };
            update!(m => m.set_day(day))
        }
        "weekday" => {
            if !setting {
                return Ok(number(cur.get(Unit::Weekday)));
            }
            let n = arg_number(interp)?;
            let cur_wd = cur.get(Unit::Weekday);
            update!(m => m.add_unit(n - cur_wd, Unit::Day))
        }
        "isoWeekday" => {
            if !setting {
                return Ok(number(cur.get(Unit::IsoWeekday)));
            }
            if !valid {
                return Ok(this.clone());
            }
            let weekday = match first {
                Some(Value::Str(s)) => {
                    let i =
                        parse::weekday_from_name(s, "dddd", false).map_or(f64::NAN, |i| i as f64);
                    let r = i % 7.0;
                    if r == 0.0 || r.is_nan() {
                        7.0
                    } else {
                        r
                    }
                }
                Some(v) => interp.js_number(v)?,
                None => f64::NAN,
            };
            update!(m => m.set_iso_weekday(weekday))
        }
        "dayOfYear" => {
            if !setting {
                return Ok(number(cur.get(Unit::DayOfYear)));
            }
            let n = arg_number(interp)?;
            let doy = cur.get(Unit::DayOfYear);
            update!(m => m.add_unit(n - doy, Unit::Day))
        }
        "week" | "weeks" | "isoWeek" | "isoWeeks" => {
            let unit = if name.starts_with("iso") {
                Unit::IsoWeek
            } else {
                Unit::Week
            };
            if !setting {
                return Ok(number(cur.get(unit)));
            }
            let n = arg_number(interp)?;
            let week = cur.get(unit);
            update!(m => m.add_unit((n - week) * 7.0, Unit::Day))
        }
        "weekYear" | "isoWeekYear" => {
            let iso = name == "isoWeekYear";
            if !setting {
                let unit = if iso {
                    Unit::IsoWeekYear
                } else {
                    Unit::WeekYear
                };
                return Ok(number(cur.get(unit)));
            }
            let n = arg_number(interp)?;
            update!(m => m.set_week_year(n, iso))
        }
        "get" => {
            let unit = interp.js_string(first.unwrap_or(&Value::Undefined))?;
            match normalize_units(&unit) {
                Some(u) => return call_method(interp, cell, this, unit_method(u), &[]),
                None => this.clone(),
            }
        }
        "set" => match first {
            Some(Value::Object(map)) => {
                let map: ObjectMap = map.borrow().clone();
                let mut units: Vec<(Unit, Value)> = Vec::new();
                for (k, v) in &map {
                    if let Some(u) = normalize_units(k) {
                        units.retain(|(x, _)| *x != u);
                        units.push((u, v.clone()));
                    }
                }
                units.sort_by_key(|(u, _)| priority(*u));
                for (u, v) in units {
                    call_method(interp, cell, this, unit_method(u), &[v])?;
                }
                this.clone()
            }
            _ => {
                let unit = interp.js_string(first.unwrap_or(&Value::Undefined))?;
                match normalize_units(&unit) {
                    Some(u) => {
                        let v = args.get(1).cloned().unwrap_or(Value::Undefined);
                        return call_method(interp, cell, this, unit_method(u), &[v]);
                    }
                    None => this.clone(),
                }
            }
        },
        _ => {
            return Err(JsError::type_error(format!(
                "moment.{name} is not a function"
            )))
        }
    })
}

/// The getter/setter method a unit names (`this[normalizeUnits(u)]`).
fn unit_method(u: Unit) -> &'static str {
    match u {
        Unit::Year => "year",
        Unit::Quarter => "quarter",
        Unit::Month => "month",
        Unit::Week => "week",
        Unit::IsoWeek => "isoWeek",
        Unit::Day => "day",
        Unit::Weekday => "weekday",
        Unit::IsoWeekday => "isoWeekday",
        Unit::Date => "date",
        Unit::DayOfYear => "dayOfYear",
        Unit::WeekYear => "weekYear",
        Unit::IsoWeekYear => "isoWeekYear",
        Unit::Hour => "hour",
        Unit::Minute => "minute",
        Unit::Second => "second",
        Unit::Millisecond => "millisecond",
    }
}

/// moment's `isBefore`/`isAfter`/`isSame` (and the `OrBefore`/`OrAfter` forms): by instant,
/// or against the start and end of `units` around `a`; invalid moments compare false.
fn compare(a: &Moment, b: &Moment, units: Option<&Value>, how: &str) -> bool {
    if !(a.is_valid() && b.is_valid()) {
        return false;
    }
    let by_ms = match units {
        None | Some(Value::Undefined) => true,
        u => unit_of(u) == Some(Unit::Millisecond),
    };
    let unit = unit_of(units);
    let start = || {
        let mut m = a.clone();
        m.start_of(unit);
        m.ms
    };
    let end = || {
        let mut m = a.clone();
        m.end_of(unit);
        m.ms
    };
    let is_same = || {
        if by_ms {
            a.ms == b.ms
        } else {
            start() <= b.ms && b.ms <= end()
        }
    };
    let is_after = || if by_ms { a.ms > b.ms } else { b.ms < start() };
    let is_before = || if by_ms { a.ms < b.ms } else { end() < b.ms };
    match how {
        "isBefore" => is_before(),
        "isAfter" => is_after(),
        "isSame" => is_same(),
        "isSameOrBefore" => is_same() || is_before(),
        _ => is_same() || is_after(),
    }
}

/// moment's `diff`: months by calendar (with a fractional part), days and weeks corrected
/// for a changed UTC offset, seconds to hours in absolute time, anything else milliseconds;
/// truncated toward zero unless `float`.
fn diff(a: &Moment, b: &Moment, unit: Option<Unit>, float: bool) -> f64 {
    if !a.is_valid() || !b.is_valid() {
        return f64::NAN;
    }
    // `cloneWithOffset`: the other moment seen the way this one reads its wall clock.
    let mut that = a.clone();
    that.ms = b.ms;
    if !a.is_utc_mode() {
        that = Moment::new(b.ms, a.zone.clone(), a.zoning);
    }
    let zone_delta = (that.utc_offset() - a.utc_offset()) * 6e4;
    let delta = a.ms - that.ms;
    let output = match unit {
        Some(Unit::Year) => month_diff(a, &that) / 12.0,
        Some(Unit::Month) => month_diff(a, &that),
        Some(Unit::Quarter) => month_diff(a, &that) / 3.0,
        Some(Unit::Second) => delta / 1e3,
        Some(Unit::Minute) => delta / 6e4,
        Some(Unit::Hour) => delta / 36e5,
        Some(Unit::Day) => (delta - zone_delta) / 864e5,
        Some(Unit::Week) => (delta - zone_delta) / 6048e5,
        _ => delta,
    };
    if float {
        output
    } else if output < 0.0 {
        output.ceil() + 0.0
    } else {
        output.floor()
    }
}

fn month_diff(a: &Moment, b: &Moment) -> f64 {
    let whole =
        (b.get(Unit::Year) - a.get(Unit::Year)) * 12.0 + (b.get(Unit::Month) - a.get(Unit::Month));
    let shifted = |n: f64| {
        let mut m = a.clone();
        m.add_unit(n, Unit::Month);
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
