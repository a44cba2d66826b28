//! The JavaScript globals (`Math`, `JSON`, `Date`, `parseInt`, `encodeURIComponent`, ...),
//! property access and method dispatch for every built-in type (the methods themselves live in
//! `strings`, `numbers`, `arrays`, `json` and `moment`), and `Date` methods.

use super::arrays::{array_method, ARRAY_METHODS};
use super::eval::{array_len, Interp, JsError};
use super::json::json_stringify;
use super::moment;
use super::numbers::{number_method, parse_float, parse_int, NUMBER_METHODS};
use super::regexp::make_regex;
use super::strings::{regex_method, string_method, REGEX_METHODS, STRING_METHODS};
use super::value::{from_json, to_display, Global, Value};
use indexmap::IndexMap;
use rand::Rng as _;
use std::rc::Rc;

type R<T> = Result<T, JsError>;

const OBJECT_METHODS: &[&str] = &["hasOwnProperty", "toString"];

const DATE_METHODS: &[&str] = &[
    "getTime",
    "valueOf",
    "toISOString",
    "toJSON",
    "toString",
    "getFullYear",
    "getMonth",
    "getDate",
    "getDay",
    "getHours",
    "getMinutes",
    "getSeconds",
    "getMilliseconds",
    "getUTCFullYear",
    "getUTCMonth",
    "getUTCDate",
    "getUTCDay",
    "getUTCHours",
    "getUTCMinutes",
    "getUTCSeconds",
    "getUTCMilliseconds",
    "getTimezoneOffset",
];

const MATH_FUNCTIONS: &[&str] = &[
    "floor", "ceil", "round", "abs", "min", "max", "pow", "sqrt", "random", "trunc", "sign", "log",
    "exp", "sin", "cos", "tan", "atan", "atan2", "log10",
];

/// A built-in global variable by name (consulted after locals and params).
pub(crate) fn global(name: &str) -> Option<Value> {
    Some(match name {
        "undefined" => Value::Undefined,
        "NaN" => Value::Num(f64::NAN),
        "Infinity" => Value::Num(f64::INFINITY),
        "Math" => Value::Global(Global::Math),
        "JSON" => Value::Global(Global::Json),
        "moment" => Value::Global(Global::Moment),
        "Date" => Value::Global(Global::Date),
        "String" => Value::Global(Global::String),
        "Number" => Value::Global(Global::Number),
        "Object" => Value::Global(Global::Object),
        "Array" => Value::Global(Global::Array),
        "RegExp" => Value::Global(Global::RegExp),
        "Boolean" => Value::Global(Global::Boolean),
        "Error" => Value::Global(Global::Error("Error")),
        "TypeError" => Value::Global(Global::Error("TypeError")),
        "RangeError" => Value::Global(Global::Error("RangeError")),
        "parseInt" | "parseFloat" | "isNaN" | "isFinite" | "encodeURIComponent"
        | "decodeURIComponent" | "encodeURI" | "decodeURI" | "escape" | "unescape" | "print" => {
            let name = GLOBAL_FUNCTIONS.iter().find(|n| **n == name)?;
            native(Value::Undefined, name)
        }
        _ => return None,
    })
}

const GLOBAL_FUNCTIONS: &[&str] = &[
    "print",
    "parseInt",
    "parseFloat",
    "isNaN",
    "isFinite",
    "encodeURIComponent",
    "decodeURIComponent",
    "encodeURI",
    "decodeURI",
    "escape",
    "unescape",
];

/// The names the static checker treats as always defined.
pub(crate) fn is_global_name(name: &str) -> bool {
    global(name).is_some()
}

fn native(this: Value, name: &'static str) -> Value {
    Value::Native(Rc::new((this, name)))
}

fn method_value(this: &Value, list: &[&'static str], key: &str) -> Value {
    list.iter()
        .find(|n| **n == key)
        .map_or(Value::Undefined, |n| native(this.clone(), n))
}

pub(crate) fn arg(args: &[Value], i: usize) -> Value {
    args.get(i).cloned().unwrap_or(Value::Undefined)
}

/// `obj.key` / `obj[key]`.
pub(crate) fn get_property(interp: &mut Interp<'_>, obj: &Value, key: &str) -> R<Value> {
    Ok(match obj {
        Value::Undefined | Value::Null => {
            return Err(JsError::type_error(format!(
                "Cannot read property \"{key}\" from {}",
                to_display(obj)
            )))
        }
        Value::Str(s) => match key {
            "length" => Value::Num(s.chars().count() as f64),
            _ => match key.parse::<usize>() {
                Ok(i) => s
                    .chars()
                    .nth(i)
                    .map_or(Value::Undefined, |c| Value::string(c.to_string())),
                Err(_) => method_value(obj, STRING_METHODS, key),
            },
        },
        Value::Array(items) => match key {
            "length" => Value::Num(items.borrow().len() as f64),
            _ => match key.parse::<usize>() {
                Ok(i) => items.borrow().get(i).cloned().unwrap_or(Value::Undefined),
                Err(_) => method_value(obj, ARRAY_METHODS, key),
            },
        },
        Value::Object(map) => match map.borrow().get(key) {
            Some(v) => v.clone(),
            None => method_value(obj, OBJECT_METHODS, key),
        },
        Value::Num(_) => method_value(obj, NUMBER_METHODS, key),
        Value::Bool(_) => method_value(obj, &["toString", "valueOf"], key),
        Value::Date(_) => method_value(obj, DATE_METHODS, key),
        Value::Regex(r) => match key {
            "source" => Value::str(&r.source),
            "global" => Value::Bool(r.global),
            "ignoreCase" => Value::Bool(r.ignore_case),
            "multiline" => Value::Bool(r.multiline),
            "lastIndex" => Value::Num(0.0),
            _ => method_value(obj, REGEX_METHODS, key),
        },
        Value::Moment(_) => method_value(obj, moment::METHODS, key),
        Value::Function(_) | Value::Native(_) => match key {
            "call" => native(obj.clone(), "call"),
            "apply" => native(obj.clone(), "apply"),
            _ => Value::Undefined,
        },
        Value::Global(g) => global_property(interp, *g, key)?,
    })
}

fn global_property(interp: &mut Interp<'_>, g: Global, key: &str) -> R<Value> {
    let this = Value::Global(g);
    Ok(match g {
        Global::Math => match key {
            "PI" => Value::Num(std::f64::consts::PI),
            "E" => Value::Num(std::f64::consts::E),
            "LN2" => Value::Num(std::f64::consts::LN_2),
            "LN10" => Value::Num(std::f64::consts::LN_10),
            "SQRT2" => Value::Num(std::f64::consts::SQRT_2),
            _ => method_value(&this, MATH_FUNCTIONS, key),
        },
        Global::Json => method_value(&this, &["stringify", "parse"], key),
        Global::Moment => method_value(&this, moment::STATICS, key),
        Global::Date => method_value(&this, &["now", "parse", "UTC"], key),
        Global::String => method_value(&this, &["fromCharCode"], key),
        Global::Number => match key {
            "MAX_VALUE" => Value::Num(f64::MAX),
            "MIN_VALUE" => Value::Num(5e-324),
            "NaN" => Value::Num(f64::NAN),
            "POSITIVE_INFINITY" => Value::Num(f64::INFINITY),
            "NEGATIVE_INFINITY" => Value::Num(f64::NEG_INFINITY),
            _ => method_value(&this, &["isInteger"], key),
        },
        Global::Object => method_value(&this, &["keys"], key),
        Global::Array => method_value(&this, &["isArray"], key),
        Global::RegExp | Global::Boolean | Global::Error(_) => Value::Undefined,
        Global::Scope => interp.resolver.lookup(key)?.unwrap_or(Value::Undefined),
    })
}

/// `this.name(args)` for built-in types.
pub(crate) fn call_method(
    interp: &mut Interp<'_>,
    this: &Value,
    name: &str,
    args: &[Value],
) -> R<Value> {
    match this {
        Value::Str(s) => string_method(interp, s, name, args),
        Value::Array(_) => array_method(interp, this, name, args),
        Value::Num(n) => number_method(interp, *n, name, args),
        Value::Bool(b) => match name {
            "toString" => Ok(Value::str(if *b { "true" } else { "false" })),
            "valueOf" => Ok(this.clone()),
            _ => not_a_function(this, name),
        },
        Value::Object(map) => match name {
            "hasOwnProperty" => {
                let key = interp.js_string(&arg(args, 0))?;
                Ok(Value::Bool(map.borrow().contains_key(key.as_str())))
            }
            "toString" => Ok(Value::str("[object Object]")),
            _ => not_a_function(this, name),
        },
        Value::Date(ms) => date_method(interp, *ms, name),
        Value::Regex(r) => regex_method(interp, r, name, args),
        Value::Moment(m) => moment::call_method(interp, m, this, name, args),
        Value::Global(g) => global_function(interp, *g, name, args),
        Value::Function(_) | Value::Native(_) => match name {
            "call" => {
                let this_arg = arg(args, 0);
                interp.call_value(this, this_arg, args.get(1..).unwrap_or(&[]))
            }
            "apply" => {
                let this_arg = arg(args, 0);
                let list = match &arg(args, 1) {
                    Value::Array(items) => items.borrow().clone(),
                    _ => Vec::new(),
                };
                interp.call_value(this, this_arg, &list)
            }
            _ => not_a_function(this, name),
        },
        Value::Undefined if GLOBAL_FUNCTIONS.contains(&name) => {
            global_function(interp, Global::Scope, name, args)
        }
        Value::Undefined | Value::Null => Err(JsError::type_error(format!(
            "Cannot read property \"{name}\" of {}",
            to_display(this)
        ))),
    }
}

pub(crate) fn not_a_function<T>(this: &Value, name: &str) -> R<T> {
    Err(JsError::type_error(format!(
        "{}.{name} is not a function",
        to_display(this)
    )))
}

/// `Math.floor(...)`, `JSON.parse(...)`, `parseInt(...)` and other functions of namespaces.
fn global_function(interp: &mut Interp<'_>, g: Global, name: &str, args: &[Value]) -> R<Value> {
    let num = |interp: &mut Interp<'_>, i: usize| interp.js_number(&arg(args, i));
    Ok(match (g, name) {
        (Global::Math, "random") => Value::Num(rand::rng().random::<f64>()),
        (Global::Math, "min" | "max") => {
            let mut acc = if name == "min" {
                f64::INFINITY
            } else {
                f64::NEG_INFINITY
            };
            for a in args {
                let n = interp.js_number(a)?;
                if n.is_nan() {
                    return Ok(Value::Num(f64::NAN));
                }
                acc = if name == "min" {
                    acc.min(n)
                } else {
                    acc.max(n)
                };
            }
            Value::Num(acc)
        }
        (Global::Math, "pow") => Value::Num(num(interp, 0)?.powf(num(interp, 1)?)),
        (Global::Math, "atan2") => Value::Num(num(interp, 0)?.atan2(num(interp, 1)?)),
        (Global::Math, f) => {
            let x = num(interp, 0)?;
            Value::Num(match f {
                "floor" => x.floor(),
                "ceil" => x.ceil(),
                // JavaScript rounds halves up: Math.round(-2.5) is -2.
                "round" => super::numbers::js_round(x),
                "abs" => x.abs(),
                "sqrt" => x.sqrt(),
                "trunc" => x.trunc(),
                "sign" => {
                    if x == 0.0 || x.is_nan() {
                        x
                    } else {
                        x.signum()
                    }
                }
                "log" => x.ln(),
                "log10" => x.log10(),
                "exp" => x.exp(),
                "sin" => x.sin(),
                "cos" => x.cos(),
                "tan" => x.tan(),
                "atan" => x.atan(),
                _ => return not_a_function(&Value::Global(g), name),
            })
        }
        (Global::Json, "stringify") => {
            let indent = match &arg(args, 2) {
                Value::Num(n) => " ".repeat(n.clamp(0.0, 10.0) as usize),
                Value::Str(s) => s.chars().take(10).collect(),
                _ => String::new(),
            };
            match json_stringify(interp, &arg(args, 0), &indent, "")? {
                Some(s) => Interp::check_string(s)?,
                None => Value::Undefined,
            }
        }
        (Global::Json, "parse") => {
            let text = interp.js_string(&arg(args, 0))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| JsError::other(format!("SyntaxError: JSON.parse: {e}")))?;
            from_json(&v)
        }
        (Global::Moment, _) => moment::static_method(interp, name, args)?,
        (Global::Date, "now") => Value::Num(interp.host.now.as_millisecond() as f64),
        (Global::Date, "parse") => {
            let s = interp.js_string(&arg(args, 0))?;
            Value::Num(moment::parse_date_string(&s, &interp.host.timezone).unwrap_or(f64::NAN))
        }
        (Global::Date, "UTC") => {
            let mut parts = [1970.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0];
            for (i, p) in parts.iter_mut().enumerate().take(args.len()) {
                *p = num(interp, i)?;
            }
            Value::Num(moment::utc_from_parts(&parts))
        }
        (Global::String, "fromCharCode") => {
            // Each argument is a UTF-16 code unit (ToUint16: 65601 is 65, -1 is 65535); a
            // surrogate pair makes one character, and a lone surrogate, which spade's
            // strings cannot hold, becomes U+FFFD.
            let mut units = Vec::with_capacity(args.len());
            for a in args {
                let n = interp.js_number(a)?;
                units.push(super::value::to_uint32(n) as u16);
            }
            Value::string(String::from_utf16_lossy(&units))
        }
        (Global::Number, "isInteger") => Value::Bool(match arg(args, 0) {
            Value::Num(n) => n.is_finite() && n.fract() == 0.0,
            _ => false,
        }),
        (Global::Object, "keys") => match &arg(args, 0) {
            Value::Object(map) => {
                Value::array(map.borrow().keys().map(|k| Value::Str(k.clone())).collect())
            }
            Value::Array(items) => Value::array(
                (0..items.borrow().len())
                    .map(|i| Value::string(i.to_string()))
                    .collect(),
            ),
            other => {
                return Err(JsError::type_error(format!(
                    "{} is not an object",
                    to_display(other)
                )))
            }
        },
        (Global::Array, "isArray") => Value::Bool(matches!(arg(args, 0), Value::Array(_))),
        (_, "print") => {
            // digdag.js's `print` appends to the text being built, but the whole template is
            // one `__p += ...` statement whose left side was read before, so what it prints
            // is always lost. Its arguments are still converted, errors included.
            for a in args {
                interp.js_string(a)?;
            }
            Value::Undefined
        }
        (_, "parseInt") => {
            let s = interp.js_string(&arg(args, 0))?;
            let radix = match arg(args, 1) {
                Value::Undefined => 0,
                r => interp.js_number(&r)? as u32,
            };
            Value::Num(parse_int(&s, radix))
        }
        (_, "parseFloat") => {
            let s = interp.js_string(&arg(args, 0))?;
            Value::Num(parse_float(&s))
        }
        (_, "isNaN") => Value::Bool(num(interp, 0)?.is_nan()),
        (_, "isFinite") => Value::Bool(num(interp, 0)?.is_finite()),
        (_, "encodeURIComponent") => {
            let s = interp.js_string(&arg(args, 0))?;
            Value::string(percent_encode(&s, "-_.!~*'()"))
        }
        (_, "encodeURI") => {
            let s = interp.js_string(&arg(args, 0))?;
            Value::string(percent_encode(&s, "-_.!~*'();/?:@&=+$,#"))
        }
        (_, "decodeURIComponent" | "decodeURI") => {
            let s = interp.js_string(&arg(args, 0))?;
            // decodeURI leaves escapes of the characters that are URI syntax as they are.
            let keep = if name == "decodeURI" {
                ";/?:@&=+$,#"
            } else {
                ""
            };
            Value::string(
                percent_decode(&s, keep)
                    .ok_or_else(|| JsError::other("URIError: URI malformed"))?,
            )
        }
        (_, "escape") => {
            let s = interp.js_string(&arg(args, 0))?;
            Value::string(escape(&s))
        }
        (_, "unescape") => {
            let s = interp.js_string(&arg(args, 0))?;
            Value::string(unescape(&s))
        }
        _ => return not_a_function(&Value::Global(g), name),
    })
}

/// `String(x)`, `moment(x)`, `Date()`, ... called as functions.
pub(crate) fn call_global(interp: &mut Interp<'_>, g: Global, args: &[Value]) -> R<Value> {
    Ok(match g {
        // `Error('x')` and `new Error('x')` are the same.
        Global::Error(name) => {
            let message = match args.first() {
                None | Some(Value::Undefined) => String::new(),
                Some(v) => interp.js_string(v)?,
            };
            super::eval::error_object(name, &message)
        }
        Global::String => match args.first() {
            None => Value::str(""),
            Some(v) => Value::string(interp.js_string(v)?),
        },
        Global::Number => match args.first() {
            None => Value::Num(0.0),
            Some(v) => Value::Num(interp.js_number(v)?),
        },
        Global::Boolean => Value::Bool(arg(args, 0).truthy()),
        Global::Moment => moment::construct(interp, moment::Mode::Local, args)?,
        Global::Date => Value::string(date_to_string(
            interp.host.now.as_millisecond() as f64,
            &interp.host.timezone,
        )),
        Global::Array | Global::Object | Global::RegExp => construct_global(interp, g, args)?,
        Global::Math | Global::Json | Global::Scope => {
            return Err(JsError::type_error(format!(
                "{} is not a function",
                to_display(&Value::Global(g))
            )))
        }
    })
}

/// `new Date(...)`, `new RegExp(...)`, `new Array(n)`, ...
pub(crate) fn construct_global(interp: &mut Interp<'_>, g: Global, args: &[Value]) -> R<Value> {
    Ok(match g {
        Global::Error(_) => call_global(interp, g, args)?,
        Global::Date => Value::Date(match args {
            [] => interp.host.now.as_millisecond() as f64,
            [Value::Str(s)] => {
                moment::parse_date_string(s, &interp.host.timezone).unwrap_or(f64::NAN)
            }
            [Value::Date(ms)] => *ms,
            [v] => moment::time_clip(interp.js_number(v)?),
            _ => {
                let mut parts = [1970.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0];
                for (i, p) in parts.iter_mut().enumerate().take(args.len()) {
                    *p = interp.js_number(&arg(args, i))?;
                }
                moment::local_from_parts(&parts, &interp.host.timezone)
            }
        }),
        Global::RegExp => {
            let source = match &arg(args, 0) {
                Value::Regex(r) => r.source.clone(),
                v => interp.js_string(v)?,
            };
            let flags = match arg(args, 1) {
                Value::Undefined => String::new(),
                v => interp.js_string(&v)?,
            };
            make_regex(&source, &flags)?
        }
        Global::Array => match args {
            [Value::Num(n)] => Value::array(vec![Value::Undefined; array_len(*n)?]),
            _ => Value::array(args.to_vec()),
        },
        Global::Object => match args.first() {
            Some(v @ Value::Object(_)) => v.clone(),
            _ => Value::object(IndexMap::new()),
        },
        Global::Moment => moment::construct(interp, moment::Mode::Local, args)?,
        Global::String | Global::Number | Global::Boolean => call_global(interp, g, args)?,
        Global::Math | Global::Json | Global::Scope => {
            return Err(JsError::type_error(format!(
                "{} is not a constructor",
                to_display(&Value::Global(g))
            )))
        }
    })
}

pub(crate) fn to_index(interp: &mut Interp<'_>, v: &Value, default: f64) -> R<f64> {
    if matches!(v, Value::Undefined) {
        return Ok(default);
    }
    let n = interp.js_number(v)?;
    Ok(if n.is_nan() { 0.0 } else { n.trunc() })
}

/// Resolves a relative index (negative counts from the end) into `0..=len`.
pub(crate) fn relative(n: f64, len: usize) -> usize {
    let len_f = len as f64;
    if n < 0.0 {
        (len_f + n).max(0.0) as usize
    } else {
        n.min(len_f) as usize
    }
}

fn percent_encode(s: &str, keep: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || keep.as_bytes().contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// ES5 Decode: `%XX` escapes read as UTF-8; an escape of an ASCII character in `keep`
/// stays as written. Malformed escapes or UTF-8 are `None` (a URIError).
fn percent_decode(s: &str, keep: &str) -> Option<String> {
    let b = s.as_bytes();
    let hex_at = |i: usize| -> Option<u8> { u8::from_str_radix(s.get(i + 1..i + 3)?, 16).ok() };
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let first = hex_at(i)?;
        if first < 0x80 {
            if keep.as_bytes().contains(&first) {
                out.extend_from_slice(&b[i..i + 3]);
            } else {
                out.push(first);
            }
            i += 3;
            continue;
        }
        // A multi-byte sequence: every byte must be escaped, and together valid UTF-8.
        let len = match first {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => return None,
        };
        let mut bytes = vec![first];
        for k in 1..len {
            let at = i + 3 * k;
            if b.get(at) != Some(&b'%') {
                return None;
            }
            bytes.push(hex_at(at)?);
        }
        out.extend_from_slice(std::str::from_utf8(&bytes).ok()?.as_bytes());
        i += 3 * len;
    }
    String::from_utf8(out).ok()
}

/// ES5 B.2.1 `escape`: `%XX` below 256, `%uXXXX` above (UTF-16 code units), except
/// letters, digits and `@*_+-./`.
fn escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || "@*_+-./".contains(c) {
            out.push(c);
            continue;
        }
        let mut units = [0u16; 2];
        for u in c.encode_utf16(&mut units) {
            if *u < 256 {
                out.push_str(&format!("%{u:02X}"));
            } else {
                out.push_str(&format!("%u{u:04X}"));
            }
        }
    }
    out
}

/// ES5 B.2.2 `unescape`: `%uXXXX` and `%XX` read back; anything else as it is.
fn unescape(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let hex = |from: usize, n: usize| -> Option<u16> {
        let digits: String = chars.get(from..from + n)?.iter().collect();
        u16::from_str_radix(&digits, 16)
            .ok()
            .filter(|_| digits.len() == n)
    };
    let mut units: Vec<u16> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '%' {
            if chars.get(i + 1) == Some(&'u') {
                if let Some(u) = hex(i + 2, 4) {
                    units.push(u);
                    i += 6;
                    continue;
                }
            } else if let Some(u) = hex(i + 1, 2) {
                units.push(u);
                i += 3;
                continue;
            }
        }
        let mut buf = [0u16; 2];
        units.extend_from_slice(chars[i].encode_utf16(&mut buf));
        i += 1;
    }
    String::from_utf16_lossy(&units)
}

fn date_method(interp: &mut Interp<'_>, ms: f64, name: &str) -> R<Value> {
    let tz = interp.host.timezone.clone();
    Ok(match name {
        "getTime" | "valueOf" => Value::Num(ms),
        "toISOString" => Value::string(
            moment::iso_utc(ms).ok_or_else(|| JsError::range_error("Invalid time value"))?,
        ),
        "toJSON" => moment::iso_utc(ms).map_or(Value::Null, Value::string),
        "toString" => Value::string(date_to_string(ms, &tz)),
        "getTimezoneOffset" => Value::Num(-moment::offset_minutes(ms, &tz)),
        other => {
            let (utc, field) = match other.strip_prefix("getUTC") {
                Some(f) => (true, f),
                None => (false, other.strip_prefix("get").unwrap_or(other)),
            };
            let zone = if utc { jiff::tz::TimeZone::UTC } else { tz };
            let Some(f) = moment::fields(ms, &zone) else {
                return Ok(Value::Num(f64::NAN));
            };
            Value::Num(f64::from(match field {
                "FullYear" => f.year,
                "Month" => i32::from(f.month) - 1,
                "Date" => i32::from(f.day),
                "Day" => i32::from(f.weekday),
                "Hours" => i32::from(f.hour),
                "Minutes" => i32::from(f.minute),
                "Seconds" => i32::from(f.second),
                "Milliseconds" => i32::from(f.millisecond),
                _ => return not_a_function(&Value::Date(ms), name),
            }))
        }
    })
}

/// `Date.prototype.toString()` in the workflow zone: `Sun Mar 13 2016 03:00:00 GMT-0700`.
pub(crate) fn date_to_string(ms: f64, tz: &jiff::tz::TimeZone) -> String {
    moment::format_ms(ms, tz, "ddd MMM DD YYYY HH:mm:ss [GMT]ZZ")
        .unwrap_or_else(|| "Invalid Date".into())
}
