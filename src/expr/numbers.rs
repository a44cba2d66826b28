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

/// `toString(radix)` for radixes other than 10, as V8 prints it (JavaScript leaves the
/// digits to the engine): fraction digits only while they carry information (until the rest is
/// below half the distance to the next double), rounded half to even; integer digits beyond a
/// double's precision are zeros.
pub(crate) fn number_to_radix(n: f64, radix: u32) -> String {
    if radix == 10 || !n.is_finite() || n == 0.0 {
        return number_to_string(n);
    }
    let r = f64::from(radix);
    let digit = |d: u32| char::from_digit(d, radix).unwrap_or('0');
    let value = n.abs();
    let mut integer = value.floor();
    let mut fraction = value - integer;
    let next_up = f64::from_bits(value.to_bits() + 1);
    let mut delta = (0.5 * (next_up - value)).max(f64::from_bits(1));
    let mut frac_digits: Vec<u32> = Vec::new();
    if fraction > delta {
        loop {
            fraction *= r;
            delta *= r;
            let d = fraction as u32;
            frac_digits.push(d);
            fraction -= f64::from(d);
            if (fraction > 0.5 || (fraction == 0.5 && d & 1 == 1)) && fraction + delta > 1.0 {
                // Round up, carrying through digits that overflow.
                loop {
                    match frac_digits.pop() {
                        None => {
                            integer += 1.0;
                            break;
                        }
                        Some(last) if last + 1 < radix => {
                            frac_digits.push(last + 1);
                            break;
                        }
                        Some(_) => {}
                    }
                }
                break;
            }
            if fraction <= delta {
                break;
            }
        }
    }
    let mut int_digits: Vec<char> = Vec::new();
    // Beyond 2^53 the last integer digits carry no information: zeros.
    while integer / r >= 9_007_199_254_740_992.0 {
        integer /= r;
        int_digits.push('0');
    }
    loop {
        let rem = integer % r;
        int_digits.push(digit(rem as u32));
        integer = (integer - rem) / r;
        if integer <= 0.0 {
            break;
        }
    }
    let mut out = String::new();
    if n < 0.0 {
        out.push('-');
    }
    out.extend(int_digits.iter().rev());
    if !frac_digits.is_empty() {
        out.push('.');
        out.extend(frac_digits.iter().map(|d| digit(*d)));
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

/// JavaScript's white space and line terminators (what `parseInt` and `trim` skip).
pub(crate) fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

/// `parseInt(s, radix)` (`radix` 0 when absent), with V8's digits: radix 10 is read exactly
/// (correctly rounded), powers of two are rounded half to even, other radixes accumulate in
/// 32-bit chunks as V8 does (the spec lets engines approximate those).
pub(crate) fn parse_int(s: &str, radix: u32) -> f64 {
    let t = s.trim_start_matches(is_js_space);
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
    let len = t.chars().take_while(|c| c.is_digit(radix)).count();
    if len == 0 {
        return f64::NAN;
    }
    let digits = t[..len].trim_start_matches('0');
    let n = if digits.is_empty() {
        0.0
    } else if radix == 10 {
        digits.parse::<f64>().unwrap_or(f64::NAN)
    } else if radix.is_power_of_two() {
        power_of_two_digits(digits, radix)
    } else {
        chunked_digits(digits, radix)
    };
    if neg {
        -n
    } else {
        n
    }
}

/// Digits in radix 2, 4, 8, 16 or 32 to the nearest double, ties to even.
fn power_of_two_digits(digits: &str, radix: u32) -> f64 {
    let bits_per_digit = radix.trailing_zeros();
    let mut mantissa: u64 = 0;
    let mut bits = 0u32; // significant bits read into `mantissa`
    let mut exponent = 0i32; // bits dropped after the first 54
    let mut sticky = false;
    for c in digits.chars() {
        let d = c.to_digit(radix).unwrap_or(0);
        for i in (0..bits_per_digit).rev() {
            let bit = u64::from((d >> i) & 1);
            if bits == 0 && bit == 0 {
                continue;
            }
            if bits < 54 {
                mantissa = (mantissa << 1) | bit;
                bits += 1;
            } else {
                sticky |= bit == 1;
                exponent += 1;
            }
        }
    }
    if bits == 54 {
        // The 54th bit decides the rounding; the ones after it break a tie.
        let round = mantissa & 1 == 1;
        mantissa >>= 1;
        exponent += 1;
        if round && (sticky || mantissa & 1 == 1) {
            mantissa += 1;
        }
    }
    (mantissa as f64) * 2f64.powi(exponent)
}

/// Digits in another radix, V8's way: parts that keep the multiplier within 32 bits, each
/// added as `result * multiplier + part`.
fn chunked_digits(digits: &str, radix: u32) -> f64 {
    const MAX_MULTIPLIER: u32 = 0xFFFF_FFFF / 36;
    let mut result = 0.0;
    let mut chars = digits.chars().peekable();
    while chars.peek().is_some() {
        let (mut part, mut multiplier) = (0u32, 1u32);
        while let Some(d) = chars.peek().and_then(|c| c.to_digit(radix)) {
            let m = multiplier * radix;
            if m > MAX_MULTIPLIER {
                break;
            }
            part = part * radix + d;
            multiplier = m;
            chars.next();
        }
        result = result * f64::from(multiplier) + f64::from(part);
    }
    result
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
