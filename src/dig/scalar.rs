//! The typed reading of plain scalars, exactly as Digdag's YAML loader gives it (spec 1.2).
//!
//! | text | reading |
//! |---|---|
//! | `~`, `null`, `Null`, `NULL`, empty | null |
//! | `true`, `True`, `false`, `False` | bool (`yes`, `on`, `TRUE` stay strings) |
//! | `[-+]?0b[01_]+`, `[-+]?0[0-7_]+` (octal), `[-+]?(0\|[1-9][0-9_]*)`, `[-+]?0x[0-9a-fA-F_]+` | int |
//! | `[-+]?(\.[0-9]+\|[1-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?`, `[-+]?.inf`, `.nan` | float |
//! | anything else (`0.5`, `07:00:00`, `2016-01-01`, `yes`) | string |
//!
//! Embulk's float pattern has no leading-zero branch, so `0.5` is a string; sexagesimal and
//! timestamp resolvers are removed, so times and dates are strings. An int that does not fit
//! `i64` stays a string rather than silently losing digits.

/// What a plain scalar means.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Plain {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str,
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
    if let Some(i) = read_int(text) {
        return i;
    }
    read_float(text).unwrap_or(Plain::Str)
}

fn split_sign(text: &str) -> (bool, &str) {
    match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    }
}

fn read_int(text: &str) -> Option<Plain> {
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
            .all(|b| b == b'_' || char::from(b).is_digit(radix))
        && digits.bytes().any(|b| b != b'_');
    // Decimal ints must not start with `_`, YAML's `[1-9][0-9_]*`.
    if !valid || (radix == 10 && digits.starts_with('_')) {
        return None;
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    let signed = if negative { format!("-{clean}") } else { clean };
    // Too large for i64: keep the text (see the module doc).
    Some(i64::from_str_radix(&signed, radix).map_or(Plain::Str, Plain::Int))
}

fn read_float(text: &str) -> Option<Plain> {
    match text {
        ".nan" | ".NaN" | ".NAN" => return Some(Plain::Float(f64::NAN)),
        _ => {}
    }
    let (negative, body) = split_sign(text);
    if matches!(body, ".inf" | ".Inf" | ".INF") {
        let inf = if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
        return Some(Plain::Float(inf));
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
    clean.parse::<f64>().ok().map(Plain::Float)
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
        ];
        for (input, expect) in table {
            check(input, expect.clone());
        }
        assert!(matches!(read_plain(".nan"), Float(f) if f.is_nan()));
    }
}
