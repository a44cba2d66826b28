//! Reading dates as moment 2.21 does: a string with a format (`moment(s, 'Do MMMM YYYY')`,
//! strict or not, or a list of formats), ISO 8601 strings (moment reads them through the same
//! format machinery), RFC 2822, arrays and objects of fields. The result is an instant, or NaN
//! for an invalid date (moment's overflow rules: `2026-02-30` is invalid, not March 2).

use super::calendar::{
    day_of_year_from_weeks, days_in_month0, days_in_year, fields, local_from_parts, utc_from_parts,
    week_of_year, weeks_in_year, Fields, DAY_MS,
};
use super::format::{expand_long_formats, MONTHS, WEEKDAYS};
use jiff::tz::TimeZone;

const YEAR: usize = 0;
const MONTH: usize = 1;
const DATE: usize = 2;
const HOUR: usize = 3;
const MINUTE: usize = 4;
const SECOND: usize = 5;
const MILLISECOND: usize = 6;

/// Where and how a string is read: the zone of local times and `now` (for the fields a format
/// leaves out, which default to today).
pub(crate) struct Reading<'a> {
    pub(crate) zone: &'a TimeZone,
    /// `moment.utc(...)`: times without an offset are UTC.
    pub(crate) utc: bool,
    pub(crate) now: f64,
}

/// What one format reading found (moment's config and parsing flags, the parts that matter).
#[derive(Default)]
struct Parsed {
    a: [Option<f64>; 7],
    week: WeekParts,
    day_of_year: Option<f64>,
    /// Minutes east of UTC from a `Z` token.
    tzm: Option<f64>,
    /// A whole instant from `X` or `x`.
    instant: Option<f64>,
    meridiem_pm: Option<bool>,
    empty: bool,
    unused_tokens: usize,
    chars_left_over: usize,
    invalid: bool,
    big_hour: bool,
}

#[derive(Default)]
struct WeekParts {
    any: bool,
    gg: Option<f64>,
    w: Option<f64>,
    d: Option<f64>,
    e: Option<f64>,
    big_gg: Option<f64>,
    big_w: Option<f64>,
    big_e: Option<f64>,
}

/// A token's regular expression, as moment's `addRegexToken` tables have them.
#[derive(Clone, Copy)]
enum Pattern<'a> {
    /// `[+-]?\d{min,max}`.
    Digits {
        min: usize,
        max: usize,
        sign: bool,
    },
    /// `[+-]?\d+(\.\d{1,3})?`.
    Timestamp,
    /// moment's `matchWord`: digits, then letters (`'`, ASCII letters, most of the BMP).
    Word,
    /// `[ap]\.?m?\.?`, case-insensitive.
    Meridiem,
    /// `Z|[+-]\d\d(?::?\d\d)?`, case-insensitive.
    ShortOffset,
    /// `\d{1,2}(th|st|nd|rd)`, and without the suffix unless strict.
    Ordinal {
        strict: bool,
    },
    Literal(&'a str),
}

fn digits_at(s: &[u8], at: usize, max: usize) -> usize {
    s[at.min(s.len())..]
        .iter()
        .take(max)
        .take_while(|b| b.is_ascii_digit())
        .count()
}

fn is_word_char(c: char) -> bool {
    let u = c as u32;
    c == '\''
        || c.is_ascii_alphabetic()
        || (0xA0..=0x5FF).contains(&u)
        || (0x700..=0xD7FF).contains(&u)
        || (0xF900..=0xFDCF).contains(&u)
        || (0xFDF0..=0xFF07).contains(&u)
        || (0xFF10..=0xFFEF).contains(&u)
}

impl Pattern<'_> {
    /// The length of a match starting exactly at byte `at`.
    fn match_at(&self, s: &str, at: usize) -> Option<usize> {
        let b = s.as_bytes();
        match *self {
            Pattern::Digits { min, max, sign } => {
                let signed = sign && matches!(b.get(at), Some(b'+' | b'-'));
                let start = at + usize::from(signed);
                let n = digits_at(b, start, max);
                if n >= min {
                    Some(start - at + n)
                } else if signed {
                    // `[+-]?` then backtracks without the sign, which then fails on it.
                    None
                } else {
                    None
                }
            }
            Pattern::Timestamp => {
                let start = at + usize::from(matches!(b.get(at), Some(b'+' | b'-')));
                let n = digits_at(b, start, usize::MAX);
                if n == 0 {
                    return None;
                }
                let mut end = start + n;
                if b.get(end) == Some(&b'.') {
                    let f = digits_at(b, end + 1, 3);
                    if f > 0 {
                        end += 1 + f;
                    }
                }
                Some(end - at)
            }
            Pattern::Word => {
                let digits = digits_at(b, at, 256);
                let letters: usize = s[at + digits..]
                    .chars()
                    .take(256)
                    .take_while(|c| is_word_char(*c))
                    .map(char::len_utf8)
                    .sum();
                (letters > 0).then_some(digits + letters)
            }
            Pattern::Meridiem => {
                if !matches!(b.get(at), Some(b'a' | b'p' | b'A' | b'P')) {
                    return None;
                }
                let mut end = at + 1;
                for c in [b'.', b'm', b'.'] {
                    if b.get(end).is_some_and(|x| x.to_ascii_lowercase() == c) {
                        end += 1;
                    }
                }
                Some(end - at)
            }
            Pattern::ShortOffset => {
                if matches!(b.get(at), Some(b'Z' | b'z')) {
                    return Some(1);
                }
                if !matches!(b.get(at), Some(b'+' | b'-')) || digits_at(b, at + 1, 2) < 2 {
                    return None;
                }
                let colon = usize::from(b.get(at + 3) == Some(&b':'));
                if digits_at(b, at + 3 + colon, 2) == 2 {
                    Some(5 + colon)
                } else {
                    Some(3)
                }
            }
            Pattern::Ordinal { strict } => {
                let n = digits_at(b, at, 2);
                if n == 0 {
                    return None;
                }
                let suffixed = ["th", "st", "nd", "rd"]
                    .iter()
                    .any(|x| s[at + n..].starts_with(x));
                match (suffixed, strict) {
                    (true, _) => Some(n + 2),
                    (false, false) => Some(n),
                    (false, true) => None,
                }
            }
            Pattern::Literal(text) => s[at..].starts_with(text).then_some(text.len()),
        }
    }

    /// The leftmost match in `s`: (start, length); an empty literal never matches (moment's
    /// `if (parsedInput)` treats an empty match as none).
    fn search(&self, s: &str) -> Option<(usize, usize)> {
        if let Pattern::Literal(text) = self {
            return s
                .find(text)
                .filter(|_| !text.is_empty())
                .map(|i| (i, text.len()));
        }
        s.char_indices()
            .find_map(|(i, _)| self.match_at(s, i).filter(|n| *n > 0).map(|n| (i, n)))
    }
}

/// The regular expression of a token (`strict` picks the stricter one where moment has two),
/// `None` for tokens read as literal text.
fn pattern(token: &str, strict: bool) -> Option<Pattern<'static>> {
    let d = |min, max, strict_n: Option<usize>| {
        let (min, max) = match strict_n {
            Some(n) if strict => (n, n),
            _ => (min, max),
        };
        Pattern::Digits {
            min,
            max,
            sign: false,
        }
    };
    let signed = |min, max, strict_n: Option<usize>| {
        let (min, max) = match strict_n {
            Some(n) if strict => (n, n),
            _ => (min, max),
        };
        Pattern::Digits {
            min,
            max,
            sign: true,
        }
    };
    Some(match token {
        "Y" | "G" | "g" | "x" => signed(1, usize::MAX, None),
        "YY" | "MM" | "ww" | "WW" | "HH" | "hh" | "kk" | "GG" | "gg" | "DD" | "mm" | "ss" => {
            d(1, 2, Some(2))
        }
        "YYYY" | "GGGG" | "gggg" => d(1, 4, Some(4)),
        "YYYYY" | "YYYYYY" | "GGGGG" | "ggggg" => signed(1, 6, Some(6)),
        "M" | "w" | "W" | "d" | "e" | "E" | "H" | "h" | "k" | "D" | "m" | "s" => d(1, 2, None),
        "MMM" | "MMMM" | "dd" | "ddd" | "dddd" => Pattern::Word,
        "a" | "A" => Pattern::Meridiem,
        "hmm" | "Hmm" => d(3, 4, None),
        "hmmss" | "Hmmss" => d(5, 6, None),
        "Z" | "ZZ" => Pattern::ShortOffset,
        "Q" => d(1, 1, None),
        "Do" => Pattern::Ordinal { strict },
        "DDD" => d(1, 3, None),
        "DDDD" => d(3, 3, None),
        "S" => d(1, 3, Some(1)),
        "SS" => d(1, 3, Some(2)),
        "SSS" => d(1, 3, Some(3)),
        t if t.len() >= 4 && t.bytes().all(|b| b == b'S') => d(1, usize::MAX, None),
        "X" => Pattern::Timestamp,
        _ => return None,
    })
}

/// Tokens of a format that moment formats (and so parses when it has a parser).
fn is_format_token(token: &str) -> bool {
    matches!(
        token,
        "Y" | "YY"
            | "YYYY"
            | "YYYYY"
            | "YYYYYY"
            | "M"
            | "MM"
            | "Mo"
            | "MMM"
            | "MMMM"
            | "w"
            | "ww"
            | "wo"
            | "W"
            | "WW"
            | "Wo"
            | "d"
            | "do"
            | "dd"
            | "ddd"
            | "dddd"
            | "e"
            | "E"
            | "H"
            | "HH"
            | "h"
            | "hh"
            | "k"
            | "kk"
            | "hmm"
            | "hmmss"
            | "Hmm"
            | "Hmmss"
            | "a"
            | "A"
            | "Z"
            | "ZZ"
            | "gg"
            | "gggg"
            | "ggggg"
            | "GG"
            | "GGGG"
            | "GGGGG"
            | "Q"
            | "Qo"
            | "D"
            | "DD"
            | "Do"
            | "DDD"
            | "DDDD"
            | "DDDo"
            | "m"
            | "mm"
            | "s"
            | "ss"
            | "z"
            | "zz"
            | "X"
            | "x"
    ) || (token.len() <= 9 && !token.is_empty() && token.bytes().all(|b| b == b'S'))
}

/// moment's `toInt`: truncation toward zero, 0 for anything not finite.
pub(crate) fn to_int(s: &str) -> f64 {
    let n = crate::expr::value::string_to_number(s);
    if n.is_finite() {
        n.trunc() + 0.0
    } else {
        0.0
    }
}

fn two_digit_year(s: &str) -> f64 {
    let y = to_int(s);
    y + if y > 68.0 { 1900.0 } else { 2000.0 }
}

/// moment's `offsetFromString`: minutes of the last offset in `s`, `None` without one.
pub(crate) fn offset_from_string(s: &str) -> Option<f64> {
    let mut last = None;
    let mut at = 0;
    while at < s.len() {
        match Pattern::ShortOffset.match_at(s, at) {
            Some(n) => {
                last = Some(&s[at..at + n]);
                at += n;
            }
            None => at += s[at..].chars().next().map_or(1, char::len_utf8),
        }
    }
    let chunk = last?;
    if chunk.eq_ignore_ascii_case("z") {
        return Some(0.0);
    }
    let digits: String = chunk.chars().filter(char::is_ascii_digit).collect();
    let minutes =
        to_int(&digits[..2.min(digits.len())]) * 60.0 + to_int(digits.get(2..).unwrap_or(""));
    Some(if minutes == 0.0 {
        0.0
    } else if chunk.starts_with('+') {
        minutes
    } else {
        -minutes
    })
}

/// Which month a name means (en, `^January|^Jan` case-insensitively; whole names when strict).
pub(crate) fn month_from_name(name: &str, token: &str, strict: bool) -> Option<usize> {
    let lower = name.to_lowercase();
    MONTHS.iter().position(|m| {
        let long = m.to_ascii_lowercase();
        let short = &long[..3];
        match (strict, token) {
            (true, "MMMM") => lower == long,
            (true, "MMM") => lower == short,
            (true, _) => false,
            (false, _) => lower.starts_with(&long) || lower.starts_with(short),
        }
    })
}

/// Which weekday a name means (`^Monday|^Mon|^Mo`; whole names when strict).
pub(crate) fn weekday_from_name(name: &str, token: &str, strict: bool) -> Option<usize> {
    let lower = name.to_lowercase();
    WEEKDAYS.iter().position(|d| {
        let long = d.to_ascii_lowercase();
        let (short, min) = (&long[..3], &long[..2]);
        match (strict, token) {
            (true, "dddd") => lower == long,
            (true, "ddd") => lower == short,
            (true, "dd") => lower == min,
            (true, _) => false,
            (false, _) => {
                lower.starts_with(&long) || lower.starts_with(short) || lower.starts_with(min)
            }
        }
    })
}

/// The tokens of a format, as moment's `formattingTokens` cuts it.
fn tokens(fmt: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = fmt;
    while !rest.is_empty() {
        let len = super::format::token_span(rest);
        if len > 0 {
            out.push(&rest[..len]);
            rest = &rest[len..];
        } else {
            rest = &rest[rest.chars().next().map_or(1, char::len_utf8)..];
        }
    }
    out
}

/// The literal text a non-token stands for: brackets and backslashes removed.
fn literal(token: &str) -> std::borrow::Cow<'_, str> {
    if token.len() >= 2 && token.starts_with('[') && token.ends_with(']') {
        return token[1..token.len() - 1].into();
    }
    if token.contains('\\') {
        return token.replacen('\\', "", 1).into();
    }
    token.into()
}

/// Reads `input` with one format (moment's `configFromStringAndFormat`).
fn read_format(input: &str, fmt: &str, strict: bool) -> Parsed {
    let expanded = expand_long_formats(fmt);
    let mut p = Parsed {
        empty: true,
        ..Parsed::default()
    };
    let mut rest = input;
    let mut parsed_len = 0;
    for token in tokens(&expanded) {
        let text;
        let pat = match pattern(token, strict) {
            Some(pat) => pat,
            None => {
                text = literal(token);
                Pattern::Literal(&text)
            }
        };
        let found = pat.search(rest).map(|(start, len)| {
            let m = &rest[start..start + len];
            rest = &rest[start + len..];
            parsed_len += len;
            m
        });
        if is_format_token(token) {
            match found {
                Some(m) => {
                    p.empty = false;
                    apply_token(&mut p, token, m, strict);
                }
                None => p.unused_tokens += 1,
            }
        } else if strict && found.is_none() {
            p.unused_tokens += 1;
        }
    }
    p.chars_left_over = input.len() - parsed_len;
    if p.big_hour && p.a[HOUR].is_some_and(|h| h > 0.0 && h <= 12.0) {
        p.big_hour = false;
    }
    p
}

/// Records what one token read (moment's `addParseToken` callbacks).
fn apply_token(p: &mut Parsed, token: &str, m: &str, strict: bool) {
    let n = || to_int(m);
    match token {
        "YYYY" if m.len() == 2 => p.a[YEAR] = Some(two_digit_year(m)),
        "YYYY" | "YYYYY" | "YYYYYY" => p.a[YEAR] = Some(n()),
        "YY" => p.a[YEAR] = Some(two_digit_year(m)),
        "Y" => p.a[YEAR] = Some(crate::expr::numbers::parse_int(m, 10)),
        "M" | "MM" => p.a[MONTH] = Some(n() - 1.0),
        "MMM" | "MMMM" => match month_from_name(m, token, strict) {
            Some(i) => p.a[MONTH] = Some(i as f64),
            None => p.invalid = true,
        },
        "w" | "ww" => week(p).w = Some(n()),
        "W" | "WW" => week(p).big_w = Some(n()),
        "dd" | "ddd" | "dddd" => match weekday_from_name(m, token, strict) {
            Some(i) => week(p).d = Some(i as f64),
            None => p.invalid = true,
        },
        "d" => week(p).d = Some(n()),
        "e" => week(p).e = Some(n()),
        "E" => week(p).big_e = Some(n()),
        "gggg" | "ggggg" => week(p).gg = Some(n()),
        "GGGG" | "GGGGG" => week(p).big_gg = Some(n()),
        "gg" => week(p).gg = Some(two_digit_year(m)),
        "GG" => week(p).big_gg = Some(two_digit_year(m)),
        "H" | "HH" => p.a[HOUR] = Some(n()),
        "k" | "kk" => p.a[HOUR] = Some(if n() == 24.0 { 0.0 } else { n() }),
        "h" | "hh" => {
            p.a[HOUR] = Some(n());
            p.big_hour = true;
        }
        "hmm" | "Hmm" | "hmmss" | "Hmmss" => {
            let secs = token.ends_with("ss");
            let split = m.len() - if secs { 4 } else { 2 };
            p.a[HOUR] = Some(to_int(&m[..split]));
            p.a[MINUTE] = Some(to_int(&m[split..split + 2]));
            if secs {
                p.a[SECOND] = Some(to_int(&m[split + 2..]));
            }
            p.big_hour |= token.starts_with('h');
        }
        "a" | "A" => p.meridiem_pm = Some(m.to_ascii_lowercase().starts_with('p')),
        "Z" | "ZZ" => p.tzm = offset_from_string(m),
        "Q" => p.a[MONTH] = Some((n() - 1.0) * 3.0),
        "D" | "DD" => p.a[DATE] = Some(n()),
        "Do" => p.a[DATE] = Some(to_int(&m[..digits_at(m.as_bytes(), 0, 2)])),
        "DDD" | "DDDD" => p.day_of_year = Some(n()),
        "m" | "mm" => p.a[MINUTE] = Some(n()),
        "s" | "ss" => p.a[SECOND] = Some(n()),
        "X" => p.instant = Some((crate::expr::numbers::parse_float(m) * 1000.0).trunc()),
        "x" => p.instant = Some(n()),
        t if t.starts_with('S') => {
            let frac = crate::expr::value::string_to_number(&format!("0.{m}"));
            p.a[MILLISECOND] = Some((frac * 1000.0).trunc());
        }
        _ => {}
    }
}

fn week(p: &mut Parsed) -> &mut WeekParts {
    p.week.any = true;
    &mut p.week
}

/// Today's (year, month0, day) where the reading happens.
fn today(r: &Reading<'_>) -> [f64; 3] {
    let utc_zone = TimeZone::UTC;
    let zone = if r.utc { &utc_zone } else { r.zone };
    fields(r.now, zone).map_or([1970.0, 0.0, 1.0], |f| {
        let p = f.parts();
        [p[0], p[1], p[2]]
    })
}

fn now_fields(r: &Reading<'_>) -> Option<Fields> {
    fields(r.now, r.zone)
}

/// Turns what a reading found into an instant (moment's `configFromArray` and
/// `checkOverflow`); NaN when invalid.
fn finish(mut p: Parsed, r: &Reading<'_>, strict: bool) -> f64 {
    if let Some(ms) = p.instant {
        return if p.invalid { f64::NAN } else { ms };
    }
    let parsed_any = p.a.iter().any(Option::is_some);
    if let Some(pm) = p.meridiem_pm {
        if let Some(h) = p.a[HOUR] {
            p.a[HOUR] = Some(if pm && h < 12.0 {
                h + 12.0
            } else if !pm && h == 12.0 {
                0.0
            } else {
                h
            });
        }
    }
    let today = today(r);
    let mut overflow = false;
    if p.week.any && p.a[DATE].is_none() && p.a[MONTH].is_none() {
        match week_date(&p.week, p.a[YEAR], r) {
            Some((year, day)) => {
                p.a[YEAR] = Some(year);
                p.day_of_year = Some(day);
            }
            None => overflow = true,
        }
    }
    if let Some(doy) = p.day_of_year {
        let year = p.a[YEAR].unwrap_or(today[0]);
        if doy > days_in_year(year as i64) as f64 || doy == 0.0 {
            overflow = true;
        }
        let date = utc_from_parts(&[year, 0.0, doy, 0.0, 0.0, 0.0, 0.0]);
        if let Some(f) = fields(date, &TimeZone::UTC) {
            p.a[MONTH] = Some(f64::from(f.month - 1));
            p.a[DATE] = Some(f64::from(f.day));
        }
    }
    let mut a = [0.0; 7];
    let mut i = 0;
    while i < 3 && p.a[i].is_none() {
        a[i] = today[i];
        i += 1;
    }
    for (j, slot) in a.iter_mut().enumerate().skip(i) {
        *slot = p.a[j].unwrap_or(if j == DATE { 1.0 } else { 0.0 });
    }
    let next_day = a[HOUR] == 24.0 && a[MINUTE] == 0.0 && a[SECOND] == 0.0 && a[MILLISECOND] == 0.0;
    let bad = |v: f64, lo: f64, hi: f64| v < lo || v > hi;
    overflow |= bad(a[MONTH], 0.0, 11.0)
        || bad(a[DATE], 1.0, days_in_month0(a[YEAR], a[MONTH]))
        || bad(a[HOUR], 0.0, 24.0)
        || (a[HOUR] == 24.0 && !next_day)
        || bad(a[MINUTE], 0.0, 59.0)
        || bad(a[SECOND], 0.0, 59.0)
        || bad(a[MILLISECOND], 0.0, 999.0);
    let mut valid = !overflow && !p.empty && !p.invalid && (p.meridiem_pm.is_none() || parsed_any);
    if strict {
        valid &= p.chars_left_over == 0 && p.unused_tokens == 0 && !p.big_hour;
    }
    if !valid {
        return f64::NAN;
    }
    if next_day {
        a[HOUR] = 0.0;
    }
    let utc = r.utc || p.tzm.is_some();
    let mut ms = if utc {
        utc_from_parts(&a)
    } else {
        local_from_parts(&a, r.zone)
    };
    if let Some(tzm) = p.tzm {
        ms -= tzm * 60_000.0;
    }
    let utc_zone = TimeZone::UTC;
    let zone = if utc { &utc_zone } else { r.zone };
    if let (Some(d), Some(f)) = (p.week.d, fields(ms, zone)) {
        if d != f64::from(f.weekday) {
            return f64::NAN;
        }
    }
    if next_day {
        // moment then adds a day, which keeps the wall clock across DST.
        ms += DAY_MS;
    }
    ms
}

/// (year, day of year) of a week date, moment's `dayOfYearFromWeekInfo`; `None` on overflow.
fn week_date(w: &WeekParts, year: Option<f64>, r: &Reading<'_>) -> Option<(f64, f64)> {
    let now = now_fields(r);
    let (week_year, week, weekday, dow, doy, weekday_overflow) =
        if w.big_gg.is_some() || w.big_w.is_some() || w.big_e.is_some() {
            let cur = now.map_or(1970, |f| week_of_year(&f, 1, 4).1) as f64;
            let weekday = w.big_e.unwrap_or(1.0);
            (
                w.big_gg.or(year).unwrap_or(cur),
                w.big_w.unwrap_or(1.0),
                weekday,
                1,
                4,
                !(1.0..=7.0).contains(&weekday),
            )
        } else {
            let (cur_week, cur_year) = now.map_or((1, 1970), |f| week_of_year(&f, 0, 6));
            let (weekday, overflow) = match (w.d, w.e) {
                (Some(d), _) => (d, !(0.0..=6.0).contains(&d)),
                (None, Some(e)) => (e, !(0.0..=6.0).contains(&e)),
                (None, None) => (0.0, false),
            };
            (
                w.gg.or(year).unwrap_or(cur_year as f64),
                w.w.unwrap_or(cur_week as f64),
                weekday,
                0,
                6,
                overflow,
            )
        };
    if week < 1.0 || week > weeks_in_year(week_year as i64, dow, doy) as f64 || weekday_overflow {
        return None;
    }
    let (y, d) = day_of_year_from_weeks(week_year as i64, week as i64, weekday as i64, dow, doy);
    Some((y as f64, d as f64))
}

/// `moment(input, format, strict)`.
pub(crate) fn with_format(input: &str, fmt: &str, strict: bool, r: &Reading<'_>) -> f64 {
    finish(read_format(input, fmt, strict), r, strict)
}

/// `moment(input, [formats...])`: the valid reading that leaves the least unread, as moment
/// scores them.
pub(crate) fn with_formats(input: &str, fmts: &[String], strict: bool, r: &Reading<'_>) -> f64 {
    let mut best: Option<(usize, f64)> = None;
    let mut last = f64::NAN;
    for fmt in fmts {
        let p = read_format(input, fmt, strict);
        let score = p.chars_left_over + p.unused_tokens * 10;
        last = finish(p, r, strict);
        if last.is_nan() {
            continue;
        }
        if best.is_none_or(|(s, _)| score < s) {
            best = Some((score, last));
        }
    }
    best.map_or(last, |(_, ms)| ms)
}

/// An ISO 8601 string as moment reads it (its regexes pick a format, which is then read);
/// `None` when the string is not ISO-shaped (moment then tries RFC 2822).
pub(crate) fn iso(input: &str, r: &Reading<'_>) -> Option<f64> {
    // ISO strings always name their year, so the result never depends on `now`: the same
    // string in the same zone (`moment(session_time)` in every task) is read once per thread.
    let key = r
        .zone
        .iana_name()
        .map(|zone| (input.to_string(), zone.to_string(), r.utc));
    if let Some(key) = &key {
        if let Some(hit) = ISO_CACHE.with(|c| c.borrow().get(key).copied()) {
            return hit;
        }
    }
    let result = iso_format(input).map(|fmt| match fmt {
        Some(fmt) => with_format(input, &fmt, false, r),
        None => f64::NAN,
    });
    if let Some(key) = key {
        ISO_CACHE.with(|c| {
            let mut c = c.borrow_mut();
            if c.len() >= ISO_CACHE_SIZE {
                c.clear();
            }
            c.insert(key, result);
        });
    }
    result
}

/// How many ISO readings a thread remembers; the cache is cleared when it fills up.
const ISO_CACHE_SIZE: usize = 1024;

type IsoKey = (String, String, bool);

thread_local! {
    static ISO_CACHE: std::cell::RefCell<std::collections::HashMap<IsoKey, Option<f64>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// moment's ISO 8601 regexes (extended, basic), then its tables of date and time shapes,
/// compiled once.
struct IsoRegexes {
    extended: regex::Regex,
    basic: regex::Regex,
    dates: Vec<(&'static str, regex::Regex, bool)>,
    times: Vec<(&'static str, regex::Regex)>,
}

fn iso_regexes() -> &'static IsoRegexes {
    static CELL: std::sync::OnceLock<IsoRegexes> = std::sync::OnceLock::new();
    CELL.get_or_init(|| {
        // `\d` is ASCII here, as in JavaScript.
        let re = |src: &str| {
            regex::Regex::new(&src.replace("\\d", "[0-9]"))
                .expect("moment's ISO regexes are valid regex syntax")
        };
        let tail = r"(?:(T| )([0-9][0-9](?:SEP[0-9][0-9](?:SEP[0-9][0-9](?:[.,][0-9]+)?)?)?)([+-][0-9][0-9](?::?[0-9][0-9])?|\s*Z)?)?$";
        IsoRegexes {
            extended: re(&format!(
                r"^\s*((?:[+-]\d{{6}}|\d{{4}})-(?:\d\d-\d\d|W\d\d-\d|W\d\d|\d\d\d|\d\d)){}",
                tail.replace("SEP", ":")
            )),
            basic: re(&format!(
                r"^\s*((?:[+-]\d{{6}}|\d{{4}})(?:\d\d\d\d|W\d\d\d|W\d\d|\d\d\d|\d\d)){}",
                tail.replace("SEP", "")
            )),
            dates: [
                ("YYYYYY-MM-DD", r"[+-]\d{6}-\d\d-\d\d", true),
                ("YYYY-MM-DD", r"\d{4}-\d\d-\d\d", true),
                ("GGGG-[W]WW-E", r"\d{4}-W\d\d-\d", true),
                ("GGGG-[W]WW", r"\d{4}-W\d\d", false),
                ("YYYY-DDD", r"\d{4}-\d{3}", true),
                ("YYYY-MM", r"\d{4}-\d\d", false),
                ("YYYYYYMMDD", r"[+-]\d{10}", true),
                ("YYYYMMDD", r"\d{8}", true),
                ("GGGG[W]WWE", r"\d{4}W\d{3}", true),
                ("GGGG[W]WW", r"\d{4}W\d{2}", false),
                ("YYYYDDD", r"\d{7}", true),
            ]
            .into_iter()
            .map(|(f, r, time)| (f, re(r), time))
            .collect(),
            times: [
                ("HH:mm:ss.SSSS", r"\d\d:\d\d:\d\d\.\d+"),
                ("HH:mm:ss,SSSS", r"\d\d:\d\d:\d\d,\d+"),
                ("HH:mm:ss", r"\d\d:\d\d:\d\d"),
                ("HH:mm", r"\d\d:\d\d"),
                ("HHmmss.SSSS", r"\d\d\d\d\d\d\.\d+"),
                ("HHmmss,SSSS", r"\d\d\d\d\d\d,\d+"),
                ("HHmmss", r"\d\d\d\d\d\d"),
                ("HHmm", r"\d\d\d\d"),
                ("HH", r"\d\d"),
            ]
            .into_iter()
            .map(|(f, r)| (f, re(r)))
            .collect(),
        }
    })
}

/// The moment format of an ISO 8601 string (moment's `configFromISO`): `None` when its
/// regexes do not match, `Some(None)` when they match but the parts do not fit (invalid).
fn iso_format(s: &str) -> Option<Option<String>> {
    let r = iso_regexes();
    let caps = r.extended.captures(s).or_else(|| r.basic.captures(s))?;
    let date = caps.get(1).map_or("", |m| m.as_str());
    let Some((date_fmt, allow_time)) = r
        .dates
        .iter()
        .find(|(_, re, _)| re.is_match(date))
        .map(|(f, _, t)| (*f, *t))
    else {
        return Some(None);
    };
    let mut fmt = date_fmt.to_string();
    if let Some(time) = caps.get(3) {
        let Some(time_fmt) = r.times.iter().find(|(_, re)| re.is_match(time.as_str())) else {
            return Some(None);
        };
        if !allow_time {
            return Some(None);
        }
        fmt.push_str(caps.get(2).map_or(" ", |m| m.as_str()));
        fmt.push_str(time_fmt.0);
    }
    if caps.get(4).is_some() {
        fmt.push('Z');
    }
    Some(Some(fmt))
}

/// moment's RFC 2822 reading (`Sun, 13 Mar 2016 10:00:00 +0000`, also `GMT`, `PST`, `Z`).
pub(crate) fn rfc2822(input: &str) -> Option<f64> {
    // Comments and folding whitespace go first.
    let mut cleaned = String::new();
    let mut depth = false;
    for c in input.chars() {
        match c {
            '(' if !depth => depth = true,
            ')' if depth => {
                depth = false;
                cleaned.push(' ');
            }
            _ if depth => {}
            '\n' | '\t' => cleaned.push(' '),
            c => cleaned.push(c),
        }
    }
    let words: Vec<&str> = cleaned.split_whitespace().collect();
    let mut w = words.as_slice();
    let mut weekday = None;
    if let Some(first) = w.first() {
        let name = first.strip_suffix(',').unwrap_or(first);
        if let Some(i) = WEEKDAYS.iter().position(|d| &d[..3] == name) {
            weekday = Some(i);
            w = &w[1..];
        }
    }
    let [day, month, year, time, zone] = w else {
        return None;
    };
    let all_digits = |s: &str, lo: usize, hi: usize| {
        (lo..=hi).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !all_digits(day, 1, 2) || !all_digits(year, 2, 4) {
        return None;
    }
    let month = MONTHS.iter().position(|m| &m[..3] == *month)?;
    let hms: Vec<&str> = time.split(':').collect();
    if !(2..=3).contains(&hms.len()) || !hms.iter().all(|p| all_digits(p, 2, 2)) {
        return None;
    }
    let offset = match *zone {
        "UT" | "GMT" | "Z" | "z" => 0.0,
        "EDT" => -240.0,
        "EST" | "CDT" => -300.0,
        "CST" | "MDT" => -360.0,
        "MST" | "PDT" => -420.0,
        "PST" => -480.0,
        z if z.len() == 5 && matches!(&z[..1], "+" | "-") && all_digits(&z[1..], 4, 4) => {
            let hm = to_int(&z[1..]);
            let m = hm % 100.0;
            let v = (hm - m) / 100.0 * 60.0 + m;
            if z.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    let y = to_int(year);
    let y = if y <= 49.0 {
        2000.0 + y
    } else if y <= 999.0 {
        1900.0 + y
    } else {
        y
    };
    let parts = [
        y,
        month as f64,
        to_int(day),
        to_int(hms[0]),
        to_int(hms[1]),
        hms.get(2).map_or(0.0, |s| to_int(s)),
        0.0,
    ];
    let ms = utc_from_parts(&parts) - offset * 60_000.0;
    if let Some(wd) = weekday {
        let f = fields(utc_from_parts(&parts), &TimeZone::UTC)?;
        if f.weekday as usize != wd {
            return None;
        }
    }
    Some(ms)
}

/// Fields from an array or object (`moment([2016, 1, 29])`, `moment({y: 2016})`): missing
/// leading fields are today's, the rest default to the start; overflow is invalid.
pub(crate) fn from_parts(given: &[Option<f64>; 7], r: &Reading<'_>) -> f64 {
    let p = Parsed {
        a: *given,
        ..Parsed::default()
    };
    finish(p, r, false)
}

/// ES5's date-time string format (15.9.1.15), what `Date.parse` reads before anything else:
/// `YYYY`, `YYYY-MM`, `YYYY-MM-DD` (or `±YYYYYY...`), then optionally `THH:mm`, `:ss`,
/// `.sss`, and `Z` or `±HH:mm`. A date alone is UTC; a time without an offset is local, as in
/// V8.
pub(crate) fn es5_date(s: &str, zone: &TimeZone) -> Option<f64> {
    let b = s.as_bytes();
    let mut i = 0;
    let num = |i: &mut usize, n: usize| -> Option<f64> {
        let digits = s.get(*i..*i + n)?;
        if !digits.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        *i += n;
        digits.parse().ok()
    };
    let year = match b.first() {
        Some(b'+' | b'-') => {
            let neg = b[0] == b'-';
            i = 1;
            let y = num(&mut i, 6)?;
            if neg {
                -y
            } else {
                y
            }
        }
        _ => num(&mut i, 4)?,
    };
    let mut parts = [year, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0];
    for (slot, (lo, hi)) in [(1usize, (1.0, 12.0)), (2, (1.0, 31.0))] {
        if b.get(i) != Some(&b'-') {
            break;
        }
        i += 1;
        let v = num(&mut i, 2)?;
        if !(lo..=hi).contains(&v) {
            return None;
        }
        parts[slot] = if slot == 1 { v - 1.0 } else { v };
    }
    if parts[2] > days_in_month0(parts[0], parts[1]) {
        return None;
    }
    let mut has_time = false;
    if b.get(i) == Some(&b'T') {
        has_time = true;
        i += 1;
        parts[3] = num(&mut i, 2)?;
        if b.get(i) != Some(&b':') {
            return None;
        }
        i += 1;
        parts[4] = num(&mut i, 2)?;
        if b.get(i) == Some(&b':') {
            i += 1;
            parts[5] = num(&mut i, 2)?;
            if b.get(i) == Some(&b'.') {
                i += 1;
                let n = digits_at(b, i, usize::MAX);
                if n == 0 {
                    return None;
                }
                parts[6] = to_int(&format!("{:0<3}", &s[i..i + n.min(3)]));
                i += n;
            }
        }
        let end_of_day = parts[3] == 24.0 && parts[4] == 0.0 && parts[5] == 0.0 && parts[6] == 0.0;
        if (parts[3] > 23.0 && !end_of_day) || parts[4] > 59.0 || parts[5] > 59.0 {
            return None;
        }
    }
    let offset = match s.get(i..)? {
        "" => None,
        "Z" => Some(0.0),
        rest if has_time
            && rest.len() == 6
            && matches!(&rest[..1], "+" | "-")
            && &rest[3..4] == ":" =>
        {
            let mut j = i + 1;
            let h = num(&mut j, 2)?;
            j += 1;
            let m = num(&mut j, 2)?;
            let v = h * 60.0 + m;
            Some(if rest.starts_with('-') { -v } else { v })
        }
        _ => return None,
    };
    Some(match offset {
        Some(off) => utc_from_parts(&parts) - off * 60_000.0,
        None if !has_time => utc_from_parts(&parts),
        None => local_from_parts(&parts, zone),
    })
}
