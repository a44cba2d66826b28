//! `format()` as moment 2.21 does it in the en locale: long formats (`LLL`) expanded first,
//! then the string cut into tokens the way moment's token regular expression cuts it (first
//! alternative wins, `[...]` is literal text, `\X` escapes, line breaks are dropped).

use super::calendar::{week_of_year, Fields};
use crate::expr::value::number_to_string;
use std::fmt::Write as _;

pub(crate) const MONTHS: [&str; 12] = [
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
pub(crate) const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// What the tokens of one moment print.
pub(crate) struct Subject<'a> {
    pub(crate) fields: Fields,
    /// `utcOffset()`, in minutes.
    pub(crate) utc_offset: f64,
    /// `valueOf()`.
    pub(crate) ms: f64,
    /// `z` and `zz`: `UTC`/`Coordinated Universal Time` for UTC moments, empty for local ones
    /// (Digdag has no moment-timezone), the zone's abbreviation after spade's `.tz(...)`.
    pub(crate) zone_abbr: &'a str,
    pub(crate) zone_name: &'a str,
}

/// moment's en long date formats (`L`, `LL`, ...; `l` forms drop a letter of each field).
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

/// The `[...]` group starting at `s[0] == '['`: up to the last `]` before the next `[`, as
/// moment's `\[[^\[]*\]` matches; its byte length.
fn bracket_len(s: &str) -> Option<usize> {
    let end = s[1..].find('[').map_or(s.len(), |i| i + 1);
    s[..end].rfind(']').filter(|&i| i > 0).map(|i| i + 1)
}

/// The long-format token at the start of `s` (`LTS|LT|LL?L?L?|l{1,4}`).
fn long_token(s: &str) -> Option<&str> {
    if s.starts_with("LTS") {
        return Some(&s[..3]);
    }
    if s.starts_with("LT") {
        return Some(&s[..2]);
    }
    for c in ['L', 'l'] {
        let n = s.bytes().take_while(|b| *b == c as u8).take(4).count();
        if n > 0 {
            return Some(&s[..n]);
        }
    }
    None
}

/// Replaces `LT`, `LLL`, ... (outside `[...]`, not after `\`) by their en expansions.
pub(crate) fn expand_long_formats(fmt: &str) -> std::borrow::Cow<'_, str> {
    if !fmt.contains(['L', 'l']) {
        return fmt.into();
    }
    let mut out = String::new();
    let mut rest = fmt;
    while let Some(c) = rest.chars().next() {
        let take = if c == '[' {
            bracket_len(rest).unwrap_or(1)
        } else if c == '\\' {
            1 + long_token(&rest[1..]).map_or(0, str::len)
        } else if let Some(t) = long_token(rest) {
            out.push_str(long_format(t).unwrap_or(t));
            rest = &rest[t.len()..];
            continue;
        } else {
            c.len_utf8()
        };
        out.push_str(&rest[..take]);
        rest = &rest[take..];
    }
    out.into()
}

/// The length of a run of `c` at the start of `s`, at most `max`.
fn run(s: &str, c: u8, max: usize) -> usize {
    s.bytes().take_while(|b| *b == c).take(max).count()
}

/// The token at the start of `s` by moment's alternatives, in their order (the first that
/// matches wins, so `Mo` beats `M` and `Do` beats `DD`): its byte length, 0 for none.
fn token_len(s: &str) -> usize {
    let b = s.as_bytes();
    let at = |i: usize| b.get(i).copied();
    let Some(c) = at(0) else { return 0 };
    match c {
        b'H' | b'h' if s[1..].starts_with("mm") => {
            if s[3..].starts_with("ss") {
                5
            } else {
                3
            }
        }
        b'M' if at(1) == Some(b'o') => 2,
        b'M' => run(s, b'M', 4),
        b'D' if at(1) == Some(b'o') => 2,
        b'D' if s.starts_with("DDDo") => 4,
        b'D' => run(s, b'D', 4),
        b'd' if at(1) == Some(b'd') => run(s, b'd', 4),
        b'd' if at(1) == Some(b'o') => 2,
        b'w' | b'W' if matches!(at(1), Some(b'o' | b'|')) || at(1) == Some(c) => 2,
        b'Q' if at(1) == Some(b'o') => 2,
        b'Y' => match run(s, b'Y', 6) {
            n @ (2 | 4..=6) => n,
            3 => 2,
            _ => 1,
        },
        b'g' | b'G' => match run(s, c, 5) {
            5 => 5,
            4 => 4,
            2 | 3 => 2,
            _ => 1,
        },
        b'h' | b'H' | b'k' | b'm' | b's' | b'z' | b'Z' => run(s, c, 2),
        b'S' => run(s, b'S', 9),
        // JavaScript's `.` matches no line terminator: moment drops them.
        b'\n' | b'\r' => 0,
        _ if s.starts_with(['\u{2028}', '\u{2029}']) => 0,
        _ => s.chars().next().map_or(0, char::len_utf8),
    }
}

/// The byte length of the next piece of a format as moment's token regex cuts it: a `[...]`
/// group, a `\` and what follows, or a token; 0 for a line break, which moment skips.
pub(crate) fn token_span(s: &str) -> usize {
    if s.starts_with('[') {
        if let Some(len) = bracket_len(s) {
            return len;
        }
    }
    if let Some(rest) = s.strip_prefix('\\') {
        return 1 + token_len(rest);
    }
    token_len(s)
}

/// Formats `fmt` (`None` and `""` mean the default format, which the caller decides).
pub(crate) fn format(subject: &Subject<'_>, fmt: &str) -> String {
    let fmt = expand_long_formats(fmt);
    let mut out = String::new();
    let mut rest: &str = &fmt;
    while !rest.is_empty() {
        let len = token_span(rest);
        if len == 0 {
            let skip = rest.chars().next().map_or(1, char::len_utf8);
            rest = &rest[skip..];
            continue;
        }
        let piece = &rest[..len];
        rest = &rest[len..];
        if piece.len() >= 2 && piece.starts_with('[') {
            out.push_str(&piece[1..piece.len() - 1]);
        } else if piece.starts_with('\\') || !format_token(&mut out, piece, subject) {
            // Not a token: literal text without backslashes.
            out.extend(piece.chars().filter(|c| *c != '\\'));
        }
    }
    out
}

/// moment's `zeroFill`.
fn zero_fill(n: i64, width: usize, force_sign: bool) -> String {
    let sign = if n < 0 {
        "-"
    } else if force_sign {
        "+"
    } else {
        ""
    };
    format!("{sign}{:0width$}", n.unsigned_abs())
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

fn offset(minutes: f64, separator: &str) -> String {
    let sign = if minutes < 0.0 { '-' } else { '+' };
    let m = minutes.abs().trunc() as i64;
    format!("{sign}{:02}{separator}{:02}", m / 60, m % 60)
}

/// Writes one token; false when `token` is not one (it is then literal text).
fn format_token(out: &mut String, token: &str, s: &Subject<'_>) -> bool {
    let f = &s.fields;
    let year = i64::from(f.year);
    let h12 = match f.hour % 12 {
        0 => 12,
        h => i64::from(h),
    };
    let hour = i64::from(f.hour);
    let week = || week_of_year(f, 0, 6);
    let iso_week = || week_of_year(f, 1, 4);
    let text = match token {
        "Y" if year <= 9999 => year.to_string(),
        "Y" => format!("+{year}"),
        "YY" => zero_fill(year % 100, 2, false),
        "YYYY" => zero_fill(year, 4, false),
        "YYYYY" => zero_fill(year, 5, false),
        "YYYYYY" => zero_fill(year, 6, true),
        "gg" => zero_fill(week().1 % 100, 2, false),
        "gggg" => zero_fill(week().1, 4, false),
        "ggggg" => zero_fill(week().1, 5, false),
        "GG" => zero_fill(iso_week().1 % 100, 2, false),
        "GGGG" => zero_fill(iso_week().1, 4, false),
        "GGGGG" => zero_fill(iso_week().1, 5, false),
        "M" => f.month.to_string(),
        "MM" => zero_fill(i64::from(f.month), 2, false),
        "Mo" => ordinal(i64::from(f.month)),
        "MMM" => MONTHS[(f.month - 1) as usize % 12][..3].to_string(),
        "MMMM" => MONTHS[(f.month - 1) as usize % 12].to_string(),
        "D" => f.day.to_string(),
        "DD" => zero_fill(i64::from(f.day), 2, false),
        "Do" => ordinal(i64::from(f.day)),
        "DDD" => f.day_of_year.to_string(),
        "DDDD" => zero_fill(i64::from(f.day_of_year), 3, false),
        "DDDo" => ordinal(i64::from(f.day_of_year)),
        "d" | "e" => f.weekday.to_string(),
        "do" => ordinal(i64::from(f.weekday)),
        "dd" => WEEKDAYS[f.weekday as usize % 7][..2].to_string(),
        "ddd" => WEEKDAYS[f.weekday as usize % 7][..3].to_string(),
        "dddd" => WEEKDAYS[f.weekday as usize % 7].to_string(),
        "E" => ((f.weekday + 6) % 7 + 1).to_string(),
        "w" => week().0.to_string(),
        "ww" => zero_fill(week().0, 2, false),
        "wo" => ordinal(week().0),
        "W" => iso_week().0.to_string(),
        "WW" => zero_fill(iso_week().0, 2, false),
        "Wo" => ordinal(iso_week().0),
        "Q" => ((f.month - 1) / 3 + 1).to_string(),
        "Qo" => ordinal(i64::from((f.month - 1) / 3 + 1)),
        "H" => hour.to_string(),
        "HH" => zero_fill(hour, 2, false),
        "h" => h12.to_string(),
        "hh" => zero_fill(h12, 2, false),
        "k" => (if hour == 0 { 24 } else { hour }).to_string(),
        "kk" => zero_fill(if hour == 0 { 24 } else { hour }, 2, false),
        "hmm" => format!("{h12}{:02}", f.minute),
        "hmmss" => format!("{h12}{:02}{:02}", f.minute, f.second),
        "Hmm" => format!("{hour}{:02}", f.minute),
        "Hmmss" => format!("{hour}{:02}{:02}", f.minute, f.second),
        "m" => f.minute.to_string(),
        "mm" => zero_fill(i64::from(f.minute), 2, false),
        "s" => f.second.to_string(),
        "ss" => zero_fill(i64::from(f.second), 2, false),
        "a" => (if f.hour > 11 { "pm" } else { "am" }).to_string(),
        "A" => (if f.hour > 11 { "PM" } else { "AM" }).to_string(),
        "Z" => offset(s.utc_offset, ":"),
        "ZZ" => offset(s.utc_offset, ""),
        "z" => s.zone_abbr.to_string(),
        "zz" => s.zone_name.to_string(),
        "X" => number_to_string((s.ms / 1000.0).floor()),
        "x" => number_to_string(s.ms),
        t if t.starts_with('S') => {
            // Fractional seconds: the milliseconds, cut or padded with zeros.
            let mut digits = format!("{:03}", f.millisecond);
            digits.push_str("000000");
            digits.truncate(t.len());
            digits
        }
        _ => return false,
    };
    let _ = write!(out, "{text}");
    true
}
