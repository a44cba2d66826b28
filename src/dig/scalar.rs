//! The typed reading of plain scalars, exactly as Digdag's YAML loader gives it (spec 1.2).
//!
//! | text | reading |
//! |---|---|
//! | `~`, `null`, `Null`, `NULL`, empty | null |
//! | `true`, `True`, `false`, `False` | bool (`yes`, `on`, `TRUE` stay strings) |
//! | `[-+]?0b[01_]+`, `[-+]?0[0-7_]+` (octal), `[-+]?(0\|[1-9][0-9_]*)`, `[-+]?0x[0-9a-fA-F_]+` | int |
//! | `[-+]?(\.[0-9]+\|[1-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?`, `[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*` (base 60), `[-+]?.inf`, `.nan` | float |
//! | anything else (`0.5`, `07:00:00`, `2016-01-01`, `yes`) | string |
//!
//! Embulk's float pattern has no leading-zero branch, so `0.5` is a string; the sexagesimal int
//! and the timestamp resolvers are removed, so times and dates are strings (but the base-60
//! float `1:30.5` stays, as in Digdag). An int that does not fit `i64` stays a string rather
//! than silently losing digits.
//!
//! Plain mapping keys are typed the same way and then written as Jackson writes the keys of
//! the Java map SnakeYAML builds (`toString()`): `0x1F` is the key `31`, `True` is `true`,
//! `1e3` is `1000.0` ([`read_plain_key`]).

use std::borrow::Cow;

/// What a plain scalar means.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Plain {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str,
}

/// The type of a plain mapping key; two keys are the same key only when both their type and
/// their written name are equal (`1` and `'1'` are different keys with the same name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyType {
    Str,
    Int,
    Float,
    Bool,
    /// `~`, `null`, ...: Jackson cannot write a null key, so Digdag fails to load the file.
    Null,
    /// `<<`, YAML 1.1's merge key.
    Merge,
}

pub(crate) fn read_plain(text: &str) -> Plain {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Plain::Null,
        "true" | "True" => return Plain::Bool(true),
        "false" | "False" => return Plain::Bool(false),
        _ => {}
    }
    // Numbers start with a digit, a sign or a dot; everything else is a string, which is
    // most scalars, so decide that without scanning them.
    if !matches!(
        text.as_bytes().first(),
        Some(b'0'..=b'9' | b'+' | b'-' | b'.')
    ) {
        return Plain::Str;
    }
    if let Some(int) = read_int(text) {
        return match int {
            Int::Fits(i) => Plain::Int(i),
            // Too large for i64: keep the text (see the module doc).
            Int::TooBig { .. } => Plain::Str,
        };
    }
    read_float(text).map_or(Plain::Str, Plain::Float)
}

/// A plain mapping key: its type and the name Digdag gives it.
#[inline]
pub(crate) fn read_plain_key(text: &str) -> (KeyType, Cow<'_, str>) {
    // Most keys are task names and params (`+name`, `_export`, `sh>`, `name`): no number
    // starts like them, and they are not one of the words null and the booleans are written
    // as (1, 4 or 5 letters long).
    let may_be_typed = matches!(
        text.as_bytes(),
        [b'0'..=b'9' | b'-' | b'.', ..] | [b'+', b'0'..=b'9' | b'.', ..] | [b'<', b'<']
    ) || matches!(text.len(), 1 | 4 | 5);
    if may_be_typed {
        read_typed_key(text)
    } else {
        (KeyType::Str, Cow::Borrowed(text))
    }
}

fn read_typed_key(text: &str) -> (KeyType, Cow<'_, str>) {
    if text == "<<" {
        return (KeyType::Merge, Cow::Borrowed(text));
    }
    if let Some(int) = read_int(text) {
        let name = match int {
            Int::Fits(i) => i.to_string(),
            Int::TooBig {
                negative,
                digits,
                radix,
            } => big_decimal(negative, &digits, radix),
        };
        return (KeyType::Int, Cow::Owned(name));
    }
    match read_plain(text) {
        Plain::Null => (KeyType::Null, Cow::Borrowed(text)),
        Plain::Bool(b) => (
            KeyType::Bool,
            Cow::Borrowed(if b { "true" } else { "false" }),
        ),
        Plain::Float(f) => (KeyType::Float, Cow::Owned(java_double(f))),
        Plain::Int(_) | Plain::Str => (KeyType::Str, Cow::Borrowed(text)),
    }
}

fn split_sign(text: &str) -> (bool, &str) {
    match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    }
}

/// An int scalar: its value, or its digits when it does not fit `i64`.
enum Int {
    Fits(i64),
    TooBig {
        negative: bool,
        digits: String,
        radix: u32,
    },
}

fn read_int(text: &str) -> Option<Int> {
    let (negative, body) = split_sign(text);
    let (digits, radix) = if let Some(bin) = body.strip_prefix("0b") {
        (bin, 2)
    } else if let Some(hex) = body.strip_prefix("0x") {
        (hex, 16)
    } else if body.len() > 1 && body.starts_with('0') {
        (&body[1..], 8)
    } else {
        (body, 10)
    };
    let valid = !digits.is_empty()
        && digits
            .bytes()
            .all(|b| b == b'_' || char::from(b).is_digit(radix));
    // Decimal ints must not start with `_`, YAML's `[1-9][0-9_]*`.
    if !valid || (radix == 10 && digits.starts_with('_')) {
        return None;
    }
    let clean: Cow<'_, str> = if digits.contains('_') {
        Cow::Owned(digits.chars().filter(|&c| c != '_').collect())
    } else {
        Cow::Borrowed(digits)
    };
    if clean.is_empty() {
        // `0_` matches the octal pattern and SnakeYAML reads it as 0 once `_` is removed;
        // `0b_` and `0x_` have no digits at all (SnakeYAML throws on them): a string here.
        return (radix == 8).then_some(Int::Fits(0));
    }
    let magnitude = u64::from_str_radix(&clean, radix).ok();
    let value = magnitude.and_then(|m| {
        if negative {
            0i64.checked_sub_unsigned(m)
        } else {
            i64::try_from(m).ok()
        }
    });
    Some(match value {
        Some(i) => Int::Fits(i),
        None => Int::TooBig {
            negative,
            digits: clean.into_owned(),
            radix,
        },
    })
}

/// `digits` in `radix` written in decimal, as Java's `BigInteger.toString()` does.
fn big_decimal(negative: bool, digits: &str, radix: u32) -> String {
    // Little-endian limbs of 10^9.
    const LIMB: u64 = 1_000_000_000;
    let mut limbs: Vec<u64> = vec![0];
    for d in digits.chars().filter_map(|c| c.to_digit(radix)) {
        let mut carry = u64::from(d);
        for limb in &mut limbs {
            let v = *limb * u64::from(radix) + carry;
            *limb = v % LIMB;
            carry = v / LIMB;
        }
        if carry > 0 {
            limbs.push(carry);
        }
    }
    let mut out = String::from(if negative { "-" } else { "" });
    let mut iter = limbs.iter().rev();
    if let Some(top) = iter.next() {
        out.push_str(&top.to_string());
    }
    for limb in iter {
        out.push_str(&format!("{limb:09}"));
    }
    out
}

/// `f` as Java's `Double.toString` writes it: `1000.0`, `1.5`, `1.0E20`, `1.0E-5`, `Infinity`.
pub(crate) fn java_double(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // Shortest round-trip digits and the decimal exponent, from Rust's `{:e}` (`1.5e3`).
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if f < 0.0 { "-" } else { "" };
    if (-3..7).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        let (int, frac) = if point <= 0 {
            let zeros = "0".repeat(usize::try_from(-point).unwrap_or(0));
            ("0".to_string(), format!("{zeros}{digits}"))
        } else {
            let p = usize::try_from(point).unwrap_or(0);
            if digits.len() > p {
                (digits[..p].to_string(), digits[p..].to_string())
            } else {
                (format!("{digits:0<p$}"), String::new())
            }
        };
        let frac = if frac.is_empty() { "0".into() } else { frac };
        format!("{sign}{int}.{frac}")
    } else {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { "0" } else { rest };
        format!("{sign}{first}.{rest}E{exp}")
    }
}

fn read_float(text: &str) -> Option<f64> {
    match text {
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    let (negative, body) = split_sign(text);
    if matches!(body, ".inf" | ".Inf" | ".INF") {
        return Some(if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if body.contains(':') {
        return read_base_60(negative, body);
    }
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let mantissa_ok = if let Some(frac) = mantissa.strip_prefix('.') {
        !frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit())
    } else {
        let (int, frac) = match mantissa.find('.') {
            Some(i) => (&mantissa[..i], Some(&mantissa[i + 1..])),
            None => (mantissa, None),
        };
        int.as_bytes()
            .first()
            .is_some_and(|b| (b'1'..=b'9').contains(b))
            && int.bytes().all(|b| b.is_ascii_digit() || b == b'_')
            && frac.is_none_or(|f| f.bytes().all(|b| b.is_ascii_digit() || b == b'_'))
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let (_, digits) = split_sign(e);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    });
    if !mantissa_ok || !exponent_ok {
        return None;
    }
    let clean: String = text.chars().filter(|&c| c != '_').collect();
    clean.parse::<f64>().ok()
}

/// YAML 1.1's base-60 float, `[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*` (`1:30.5` is 90.5), which
/// Digdag's float pattern keeps.
fn read_base_60(negative: bool, body: &str) -> Option<f64> {
    let (whole, frac) = body.split_once('.')?;
    let parts: Vec<&str> = whole.split(':').collect();
    let (first, sixties) = parts.split_first()?;
    let ok = first.as_bytes().first().is_some_and(u8::is_ascii_digit)
        && first.bytes().all(|b| b.is_ascii_digit() || b == b'_')
        && !sixties.is_empty()
        && sixties
            .iter()
            .all(|p| matches!(p.as_bytes(), [b'0'..=b'9'] | [b'0'..=b'5', b'0'..=b'9']))
        && frac.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    if !ok {
        return None;
    }
    let clean = |s: &str| s.chars().filter(|&c| c != '_').collect::<String>();
    let mut texts: Vec<String> = parts.iter().map(|p| clean(p)).collect();
    if let Some(last) = texts.last_mut() {
        last.push('.');
        last.push_str(&clean(frac));
    }
    // As SnakeYAML's `ConstructYamlFloat`: from the last part, each times the next power of
    // 60 (an `int` there, so it wraps the same way), summed.
    let mut value = 0.0;
    let mut scale: i32 = 1;
    for text in texts.iter().rev() {
        value += text.parse::<f64>().ok()? * f64::from(scale);
        scale = scale.wrapping_mul(60);
    }
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: Plain) {
        assert_eq!(read_plain(input), expect, "input {input:?}");
    }

    #[test]
    fn digdag_scalar_typing_table() {
        use Plain::{Bool, Float, Int, Null, Str};
        let table: &[(&str, Plain)] = &[
            ("", Null),
            ("~", Null),
            ("null", Null),
            ("Null", Null),
            ("NULL", Null),
            ("nULL", Str),
            ("true", Bool(true)),
            ("True", Bool(true)),
            ("false", Bool(false)),
            ("False", Bool(false)),
            ("TRUE", Str),
            ("yes", Str),
            ("no", Str),
            ("on", Str),
            ("off", Str),
            ("0", Int(0)),
            ("10", Int(10)),
            ("-7", Int(-7)),
            ("+7", Int(7)),
            ("1_000", Int(1000)),
            ("017", Int(15)),
            ("08", Str),
            ("0x1F", Int(31)),
            ("0x", Str),
            ("0b101", Int(5)),
            ("9223372036854775808", Str),
            ("9223372036854775807", Int(i64::MAX)),
            ("-9223372036854775808", Int(i64::MIN)),
            ("-0x8000000000000000", Int(i64::MIN)),
            ("1.5", Float(1.5)),
            ("-1.5", Float(-1.5)),
            ("1e3", Float(1000.0)),
            ("1.", Float(1.0)),
            (".5", Float(0.5)),
            ("0.5", Str),
            ("-0.5", Str),
            (".inf", Float(f64::INFINITY)),
            ("-.inf", Float(f64::NEG_INFINITY)),
            ("07:00:00", Str),
            ("10:00", Str),
            ("2016-01-01", Str),
            ("2016-01-01 00:00:00", Str),
            ("1h30m", Str),
            ("_1", Str),
            ("1e", Str),
            // `0_` matches the octal pattern; without its `_` it is 0 (SnakeYAML).
            ("0_", Int(0)),
            ("-0_", Int(0)),
            ("0_7", Int(7)),
            ("0b_", Str),
            ("0x_", Str),
            // Digdag's float pattern keeps YAML 1.1's base-60 floats (ints lost theirs).
            ("1:30.5", Float(90.5)),
            ("-1:30.", Float(-90.0)),
            ("190:20:30.15", Float(685_230.15)),
            ("07:00:00.000", Float(25_200.0)),
            ("1:60.0", Str),
            ("1:2", Str),
        ];
        for (input, expect) in table {
            check(input, expect.clone());
        }
        assert!(matches!(read_plain(".nan"), Float(f) if f.is_nan()));
    }

    #[test]
    fn plain_keys_are_typed_then_written_as_jackson_writes_them() {
        let table: &[(&str, KeyType, &str)] = &[
            ("+task", KeyType::Str, "+task"),
            ("+1", KeyType::Int, "1"),
            ("name", KeyType::Str, "name"),
            ("0x1F", KeyType::Int, "31"),
            ("017", KeyType::Int, "15"),
            ("1_000", KeyType::Int, "1000"),
            ("-7", KeyType::Int, "-7"),
            ("0_", KeyType::Int, "0"),
            ("True", KeyType::Bool, "true"),
            ("False", KeyType::Bool, "false"),
            ("TRUE", KeyType::Str, "TRUE"),
            ("1.5", KeyType::Float, "1.5"),
            ("1e3", KeyType::Float, "1000.0"),
            (".5", KeyType::Float, "0.5"),
            ("1e20", KeyType::Float, "1.0E20"),
            ("1.5e-5", KeyType::Float, "1.5E-5"),
            ("1.25e-3", KeyType::Float, "0.00125"),
            ("1234567.5", KeyType::Float, "1234567.5"),
            ("12345678.5", KeyType::Float, "1.23456785E7"),
            (".inf", KeyType::Float, "Infinity"),
            ("-.inf", KeyType::Float, "-Infinity"),
            (".nan", KeyType::Float, "NaN"),
            ("0.5", KeyType::Str, "0.5"),
            ("9223372036854775808", KeyType::Int, "9223372036854775808"),
            (
                "0xFFFFFFFFFFFFFFFFFF",
                KeyType::Int,
                "4722366482869645213695",
            ),
            (
                "-0b1_0000000000000000000000000000000000000000000000000000000000000000",
                KeyType::Int,
                "-18446744073709551616",
            ),
            ("~", KeyType::Null, "~"),
            ("null", KeyType::Null, "null"),
            ("<<", KeyType::Merge, "<<"),
            ("<<<", KeyType::Str, "<<<"),
        ];
        for (text, kind, name) in table {
            let (got_kind, got_name) = read_plain_key(text);
            assert_eq!(
                (got_kind, got_name.as_ref()),
                (*kind, *name),
                "key {text:?}"
            );
        }
    }
}
