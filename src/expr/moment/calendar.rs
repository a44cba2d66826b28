//! Calendar arithmetic on epoch milliseconds, as JavaScript's `Date` does it: wall-clock fields
//! of an instant in a zone, instants of (overflowing) fields, and moment's week numbering.

use jiff::tz::TimeZone;

pub(crate) const DAY_MS: f64 = 86_400_000.0;
/// `Date`'s range: ±100,000,000 days around the epoch (ES5 15.9.1.1).
const MAX_TIME: f64 = 8.64e15;

/// Wall-clock fields of an instant in a zone.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fields {
    pub(crate) year: i32,
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
}

impl Fields {
    /// `[year, month0, day, hour, minute, second, ms]`, the argument order of `Date`.
    pub(crate) fn parts(&self) -> [f64; 7] {
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

/// ES5 TimeClip: NaN outside `Date`'s range, else the integer part.
pub(crate) fn time_clip(ms: f64) -> f64 {
    if !ms.is_finite() || ms.abs() > MAX_TIME {
        return f64::NAN;
    }
    ms.trunc() + 0.0
}

pub(crate) fn timestamp(ms: f64) -> Option<jiff::Timestamp> {
    if !ms.is_finite() {
        return None;
    }
    jiff::Timestamp::from_millisecond(ms as i64).ok()
}

/// The zone's UTC offset in seconds at `ms`; zones are looked up within jiff's range only.
fn offset_seconds(ms: f64, zone: &TimeZone) -> Option<i32> {
    if zone == &TimeZone::UTC {
        return Some(0);
    }
    Some(zone.to_offset(timestamp(ms)?).seconds())
}

/// Wall-clock fields of `ms` in `zone`; `None` for invalid or out-of-range times.
pub(crate) fn fields(ms: f64, zone: &TimeZone) -> Option<Fields> {
    if !ms.is_finite() || ms.abs() > MAX_TIME {
        return None;
    }
    fields_at_offset(ms, offset_seconds(ms, zone)?)
}

/// Wall-clock fields of `ms` seen at a fixed UTC offset.
pub(crate) fn fields_at_offset(ms: f64, offset_seconds: i32) -> Option<Fields> {
    if !ms.is_finite() {
        return None;
    }
    let local = ms.floor() + f64::from(offset_seconds) * 1000.0;
    let days = (local / DAY_MS).floor();
    let rem = (local - days * DAY_MS) as i64;
    let days = days as i64;
    let (y, m, d) = civil_from_days(days);
    Some(Fields {
        year: i32::try_from(y).ok()?,
        month: m as i8,
        day: d as i8,
        weekday: (days + 4).rem_euclid(7) as i8,
        hour: (rem / 3_600_000) as i8,
        minute: (rem / 60_000 % 60) as i8,
        second: (rem / 1000 % 60) as i8,
        millisecond: (rem % 1000) as i16,
        day_of_year: (days - days_from_civil(y, 1, 1) + 1) as i16,
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
    if zone == &TimeZone::UTC {
        return time_clip(local);
    }
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
        .map_or(f64::NAN, |ts| time_clip(ts.as_millisecond() as f64))
}

/// `Date.UTC(...)`: the parts read as UTC.
pub(crate) fn utc_from_parts(parts: &[f64; 7]) -> f64 {
    if parts.iter().any(|p| !p.is_finite()) {
        return f64::NAN;
    }
    time_clip(local_ms(parts))
}

/// ES5 MakeDate(MakeDay(y, m, d), MakeTime(h, min, s, ms)) without the zone.
fn local_ms(p: &[f64; 7]) -> f64 {
    let (y, m) = (p[0].trunc(), p[1].trunc());
    let y = y + (m / 12.0).floor();
    let m = m.rem_euclid(12.0);
    if y.abs() > 400_000.0 {
        return f64::NAN;
    }
    let days = days_from_civil(y as i64, m as i64 + 1, 1) as f64 + p[2].trunc() - 1.0;
    days * DAY_MS + p[3].trunc() * 3.6e6 + p[4].trunc() * 6e4 + p[5].trunc() * 1e3 + p[6].trunc()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub(crate) fn civil_from_days(z: i64) -> (i64, i64, i64) {
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

pub(crate) fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// moment's `daysInMonth(year, month0)`, where the month may overflow into other years.
pub(crate) fn days_in_month0(year: f64, month0: f64) -> f64 {
    if year.is_nan() || month0.is_nan() {
        return f64::NAN;
    }
    let m = month0.rem_euclid(12.0);
    let y = year + (month0 - m) / 12.0;
    if m == 1.0 {
        if is_leap(y as i64) {
            29.0
        } else {
            28.0
        }
    } else {
        31.0 - (m % 7.0) % 2.0
    }
}

pub(crate) fn days_in_year(y: i64) -> i64 {
    if is_leap(y) {
        366
    } else {
        365
    }
}

/// moment's `firstWeekOffset`: where week 1 starts relative to Jan 1 (`dow` = first day of
/// the week, `doy` = the January day that is always in week 1, as `7 + dow - doy`).
pub(crate) fn first_week_offset(year: i64, dow: i64, doy: i64) -> i64 {
    let fwd = 7 + dow - doy;
    let weekday = (days_from_civil(year, 1, fwd) + 4).rem_euclid(7);
    let fwdlw = (7 + weekday - dow) % 7;
    -fwdlw + fwd - 1
}

pub(crate) fn weeks_in_year(year: i64, dow: i64, doy: i64) -> i64 {
    let off = first_week_offset(year, dow, doy);
    let next = first_week_offset(year + 1, dow, doy);
    (days_in_year(year) - off + next) / 7
}

/// (week, week-year) with weeks starting on `dow`; en locale is (0, 6), ISO is (1, 4).
pub(crate) fn week_of_year(f: &Fields, dow: i64, doy: i64) -> (i64, i64) {
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

/// moment's `dayOfYearFromWeeks`: (year, day of year) of a week date.
pub(crate) fn day_of_year_from_weeks(
    year: i64,
    week: i64,
    weekday: i64,
    dow: i64,
    doy: i64,
) -> (i64, i64) {
    let local_weekday = (7 + weekday - dow).rem_euclid(7);
    let day = 1 + 7 * (week - 1) + local_weekday + first_week_offset(year, dow, doy);
    if day <= 0 {
        (year - 1, days_in_year(year - 1) + day)
    } else if day > days_in_year(year) {
        (year + 1, day - days_in_year(year))
    } else {
        (year, day)
    }
}

/// ISO 8601 UTC with milliseconds (`toISOString`), six-digit signed years outside 0..=9999.
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
    offset_seconds(ms, zone).map_or(0.0, |s| f64::from(s) / 60.0)
}
