//! Number methods and number parsing (`toString(radix)`, `toFixed`, `parseInt`, `parseFloat`).

use super::eval::{Interp, JsError};
use super::stdlib::{arg, not_a_function, to_index};
use super::value::{number_to_string, Value};

type R<T> = Result<T, JsError>;

pub(crate) const NUMBER_METHODS: &[&str] = &["toString", "toFixed", "valueOf"];

pub(crate) fn number_method(
    interp: &mut Interp<'_>,
    n: f64,
    name: &str,
    args: &[Value],
) -> R<Value> {
    Ok(match name {
        "valueOf" => Value::Num(n),
        "toString" => {
            let radix = match arg(args, 0) {
                Value::Undefined => 10.0,
                v => interp.js_number(&v)?,
            };
            if !(2.0..=36.0).contains(&radix) {
                return Err(JsError::range_error(
                    "toString() radix must be between 2 and 36",
                ));
            }
            Value::string(number_to_radix(n, radix as u32))
        }
        "toFixed" => {
            let digits = to_index(interp, &arg(args, 0), 0.0)?;
            if !(0.0..=20.0).contains(&digits) {
                return Err(JsError::range_error(
                    "toFixed() digits argument must be between 0 and 20",
                ));
            }
            if !n.is_finite() || n.abs() >= 1e21 {
                Value::string(number_to_string(n))
            } else {
                Value::string(to_fixed(n, digits as usize))
            }
        }
        _ => return not_a_function(&Value::Num(n), name),
    })
}

/// `toFixed`: the exact binary value rounded half up at `digits` decimals, like JavaScript
/// (`(1.005).toFixed(2)` is `1.00` because 1.005 is really 1.00499...).
pub(crate) fn to_fixed(n: f64, digits: usize) -> String {
    // 1100 decimals hold the exact expansion of any f64 below 1e21.
    let exact = format!("{:.1100}", n.abs());
    let (int, frac) = exact.split_once('.').unwrap_or((&exact, ""));
    let mut kept: Vec<u8> = int.bytes().chain(frac.bytes().take(digits)).collect();
    if frac.as_bytes().get(digits).is_some_and(|d| *d >= b'5') {
        let mut i = kept.len();
        loop {
            if i == 0 {
                kept.insert(0, b'1');
                break;
            }
            i -= 1;
            if kept[i] == b'9' {
                kept[i] = b'0';
            } else {
                kept[i] += 1;
                break;
            }
        }
    }
    let split = kept.len() - digits;
    let mut out = String::new();
    if n < 0.0 {
        out.push('-');
    }
    out.push_str(std::str::from_utf8(&kept[..split]).unwrap_or("0"));
    if digits > 0 {
        out.push('.');
        out.push_str(std::str::from_utf8(&kept[split..]).unwrap_or(""));
    }
    out
}

pub(crate) fn number_to_radix(n: f64, radix: u32) -> String {
    if radix == 10 || !n.is_finite() {
        return number_to_string(n);
    }
    let neg = n < 0.0;
    let mut int = n.abs().trunc();
    let mut frac = n.abs() - int;
    let mut digits = Vec::new();
    if int == 0.0 {
        digits.push('0');
    }
    while int >= 1.0 {
        let d = (int % f64::from(radix)) as u32;
        digits.push(char::from_digit(d, radix).unwrap_or('0'));
        int = (int / f64::from(radix)).trunc();
    }
    let mut out: String = if neg { "-".into() } else { String::new() };
    out.extend(digits.iter().rev());
    if frac > 0.0 {
        out.push('.');
        for _ in 0..20 {
            frac *= f64::from(radix);
            let d = frac.trunc() as u32;
            out.push(char::from_digit(d, radix).unwrap_or('0'));
            frac -= frac.trunc();
            if frac == 0.0 {
                break;
            }
        }
    }
    out
}

/// `Math.round`: halves go up, and the result is exact (`Math.round(0.49999999999999994)` is
/// 0, where `floor(x + 0.5)` gives 1 because the sum rounds up to 1); -0.5 to 0 give -0.
pub(crate) fn js_round(x: f64) -> f64 {
    if !x.is_finite() || x.fract() == 0.0 {
        return x;
    }
    let floor = x.floor();
    let r = if x - floor >= 0.5 { floor + 1.0 } else { floor };
    if r == 0.0 && x < 0.0 {
        -0.0
    } else {
        r
    }
}

pub(crate) fn parse_int(s: &str, radix: u32) -> f64 {
    let t = s.trim_start();
    let (neg, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (radix, t) = match (radix, t.get(..2)) {
        (0 | 16, Some("0x" | "0X")) => (16, &t[2..]),
        (0, _) => (10, t),
        (r, _) => (r, t),
    };
    if !(2..=36).contains(&radix) {
        return f64::NAN;
    }
    let digits: Vec<u32> = t.chars().map_while(|c| c.to_digit(radix)).collect();
    if digits.is_empty() {
        return f64::NAN;
    }
    let n = digits
        .iter()
        .fold(0.0, |acc, d| acc * f64::from(radix) + f64::from(*d));
    if neg {
        -n
    } else {
        n
    }
}

pub(crate) fn parse_float(s: &str) -> f64 {
    let t = s.trim_start();
    if t.starts_with("Infinity") || t.starts_with("+Infinity") {
        return f64::INFINITY;
    }
    if t.starts_with("-Infinity") {
        return f64::NEG_INFINITY;
    }
    // The longest prefix that parses as a decimal number.
    let b = t.as_bytes();
    let mut end = 0;
    let mut best = f64::NAN;
    while end < b.len()
        && (b[end].is_ascii_digit() || matches!(b[end], b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        end += 1;
        if let Ok(n) = t[..end].parse::<f64>() {
            best = n;
        }
    }
    best
}
