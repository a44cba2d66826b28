//! The JavaScript standard library subset: globals (`Math`, `JSON`, `parseInt`, ...), and the
//! methods of strings, numbers, arrays, objects, dates and regular expressions.

use super::eval::{array_len, Hint, Interp, JsError, MAX_ARRAY_LEN, MAX_STRING_LEN};
use super::moment;
use super::value::{
    from_json, json_quote, number_to_string, to_display, Global, JsRegex, ObjectMap, Value,
};
use indexmap::IndexMap;
use rand::Rng as _;
use std::rc::Rc;

type R<T> = Result<T, JsError>;

const STRING_METHODS: &[&str] = &[
    "slice",
    "substring",
    "substr",
    "replace",
    "replaceAll",
    "split",
    "toUpperCase",
    "toLowerCase",
    "trim",
    "trimLeft",
    "trimRight",
    "trimStart",
    "trimEnd",
    "indexOf",
    "lastIndexOf",
    "charAt",
    "charCodeAt",
    "startsWith",
    "endsWith",
    "includes",
    "contains",
    "concat",
    "padStart",
    "padEnd",
    "repeat",
    "match",
    "search",
    "toString",
    "valueOf",
    "equals",
    "isEmpty",
    "matches",
];

const ARRAY_METHODS: &[&str] = &[
    "map",
    "filter",
    "join",
    "slice",
    "indexOf",
    "lastIndexOf",
    "concat",
    "push",
    "pop",
    "shift",
    "unshift",
    "reverse",
    "sort",
    "forEach",
    "reduce",
    "some",
    "every",
    "includes",
    "find",
    "splice",
    "toString",
];

const NUMBER_METHODS: &[&str] = &["toString", "toFixed", "valueOf"];
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
const REGEX_METHODS: &[&str] = &["test", "exec", "toString"];
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
        "parseInt" | "parseFloat" | "isNaN" | "isFinite" | "encodeURIComponent"
        | "decodeURIComponent" | "encodeURI" | "decodeURI" => {
            let name = GLOBAL_FUNCTIONS.iter().find(|n| **n == name)?;
            native(Value::Undefined, name)
        }
        _ => return None,
    })
}

const GLOBAL_FUNCTIONS: &[&str] = &[
    "parseInt",
    "parseFloat",
    "isNaN",
    "isFinite",
    "encodeURIComponent",
    "decodeURIComponent",
    "encodeURI",
    "decodeURI",
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

fn arg(args: &[Value], i: usize) -> Value {
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
        Global::RegExp | Global::Boolean => Value::Undefined,
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
                let list = match arg(args, 1) {
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

fn not_a_function<T>(this: &Value, name: &str) -> R<T> {
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
                "round" => (x + 0.5).floor(),
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
            let indent = match arg(args, 2) {
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
            let mut s = String::new();
            for a in args {
                let n = interp.js_number(a)?;
                s.push(char::from_u32(n as u32).unwrap_or('\u{fffd}'));
            }
            Value::string(s)
        }
        (Global::Number, "isInteger") => Value::Bool(match arg(args, 0) {
            Value::Num(n) => n.is_finite() && n.fract() == 0.0,
            _ => false,
        }),
        (Global::Object, "keys") => match arg(args, 0) {
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
                    to_display(&other)
                )))
            }
        },
        (Global::Array, "isArray") => Value::Bool(matches!(arg(args, 0), Value::Array(_))),
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
            Value::string(
                percent_decode(&s).ok_or_else(|| JsError::other("URIError: URI malformed"))?,
            )
        }
        _ => return not_a_function(&Value::Global(g), name),
    })
}

/// `String(x)`, `moment(x)`, `Date()`, ... called as functions.
pub(crate) fn call_global(interp: &mut Interp<'_>, g: Global, args: &[Value]) -> R<Value> {
    Ok(match g {
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
        Global::Date => Value::Date(match args {
            [] => interp.host.now.as_millisecond() as f64,
            [Value::Str(s)] => {
                moment::parse_date_string(s, &interp.host.timezone).unwrap_or(f64::NAN)
            }
            [Value::Date(ms)] => *ms,
            [v] => {
                let n = interp.js_number(v)?;
                if n.is_finite() {
                    n.trunc()
                } else {
                    f64::NAN
                }
            }
            _ => {
                let mut parts = [1970.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0];
                for (i, p) in parts.iter_mut().enumerate().take(args.len()) {
                    *p = interp.js_number(&arg(args, i))?;
                }
                moment::local_from_parts(&parts, &interp.host.timezone)
            }
        }),
        Global::RegExp => {
            let source = match arg(args, 0) {
                Value::Regex(r) => r.source.clone(),
                v => interp.js_string(&v)?,
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

/// Compiles a JavaScript regex literal with the `regex` crate (flags `g`, `i`, `m`).
pub(crate) fn make_regex(source: &str, flags: &str) -> R<Value> {
    let mut prefix = String::new();
    for f in flags.chars() {
        match f {
            'i' => prefix.push_str("(?i)"),
            'm' => prefix.push_str("(?m)"),
            'g' => {}
            other => {
                return Err(JsError::other(format!(
                    "SyntaxError: unsupported regular expression flag `{other}`"
                )))
            }
        }
    }
    let regex = regex::RegexBuilder::new(&format!("{prefix}{source}"))
        .size_limit(1 << 20)
        .build()
        .map_err(|e| JsError::other(format!("SyntaxError: invalid regular expression: {e}")))?;
    Ok(Value::Regex(Rc::new(JsRegex {
        source: source.to_string(),
        global: flags.contains('g'),
        regex,
    })))
}

fn to_index(interp: &mut Interp<'_>, v: &Value, default: f64) -> R<f64> {
    if matches!(v, Value::Undefined) {
        return Ok(default);
    }
    let n = interp.js_number(v)?;
    Ok(if n.is_nan() { 0.0 } else { n.trunc() })
}

/// Resolves a relative index (negative counts from the end) into `0..=len`.
fn relative(n: f64, len: usize) -> usize {
    let len_f = len as f64;
    if n < 0.0 {
        (len_f + n).max(0.0) as usize
    } else {
        n.min(len_f) as usize
    }
}

fn string_method(interp: &mut Interp<'_>, s: &Rc<str>, name: &str, args: &[Value]) -> R<Value> {
    let this = Value::Str(s.clone());
    let chars = || s.chars().collect::<Vec<char>>();
    let str_arg = |interp: &mut Interp<'_>, i: usize| interp.js_string(&arg(args, i));
    Ok(match name {
        "toString" | "valueOf" => this,
        "toUpperCase" => Value::string(s.to_uppercase()),
        "toLowerCase" => Value::string(s.to_lowercase()),
        "trim" => Value::str(s.trim()),
        "trimLeft" | "trimStart" => Value::str(s.trim_start()),
        "trimRight" | "trimEnd" => Value::str(s.trim_end()),
        "isEmpty" => Value::Bool(s.is_empty()),
        "equals" => Value::Bool(matches!(arg(args, 0), Value::Str(o) if o == *s)),
        "slice" => {
            let c = chars();
            let start = relative(to_index(interp, &arg(args, 0), 0.0)?, c.len());
            let end = relative(to_index(interp, &arg(args, 1), c.len() as f64)?, c.len());
            Value::string(c.get(start..end.max(start)).unwrap_or(&[]).iter().collect())
        }
        "substring" => {
            let c = chars();
            let clamp = |n: f64| n.clamp(0.0, c.len() as f64) as usize;
            let a = clamp(to_index(interp, &arg(args, 0), 0.0)?);
            let b = clamp(to_index(interp, &arg(args, 1), c.len() as f64)?);
            let (a, b) = if a > b { (b, a) } else { (a, b) };
            Value::string(c.get(a..b).unwrap_or(&[]).iter().collect())
        }
        "substr" => {
            let c = chars();
            let start = relative(to_index(interp, &arg(args, 0), 0.0)?, c.len());
            let len = to_index(interp, &arg(args, 1), c.len() as f64)?.max(0.0) as usize;
            let end = start.saturating_add(len).min(c.len());
            Value::string(c.get(start..end).unwrap_or(&[]).iter().collect())
        }
        "charAt" => {
            let i = to_index(interp, &arg(args, 0), 0.0)?;
            let c = if i < 0.0 {
                None
            } else {
                s.chars().nth(i as usize)
            };
            Value::string(c.map(String::from).unwrap_or_default())
        }
        "charCodeAt" => {
            let i = to_index(interp, &arg(args, 0), 0.0)?;
            let c = if i < 0.0 {
                None
            } else {
                s.chars().nth(i as usize)
            };
            Value::Num(c.map_or(f64::NAN, |c| f64::from(c as u32)))
        }
        "indexOf" | "lastIndexOf" | "includes" | "contains" => {
            let needle = str_arg(interp, 0)?;
            let found = if name == "lastIndexOf" {
                s.rfind(&needle)
            } else {
                let from = relative(
                    to_index(interp, &arg(args, 1), 0.0)?.max(0.0),
                    s.chars().count(),
                );
                let byte_from = s.char_indices().nth(from).map_or(s.len(), |(b, _)| b);
                s.get(byte_from..)
                    .and_then(|rest| rest.find(&needle))
                    .map(|b| b + byte_from)
            };
            match name {
                "includes" | "contains" => Value::Bool(found.is_some()),
                _ => Value::Num(found.map_or(-1.0, |b| s[..b].chars().count() as f64)),
            }
        }
        "startsWith" => Value::Bool(s.starts_with(&str_arg(interp, 0)?)),
        "endsWith" => Value::Bool(s.ends_with(&str_arg(interp, 0)?)),
        "concat" => {
            let mut out = s.to_string();
            for a in args {
                out.push_str(&interp.js_string(a)?);
            }
            Interp::check_string(out)?
        }
        "repeat" => {
            let n = to_index(interp, &arg(args, 0), 0.0)?;
            if n < 0.0 || (n * s.len() as f64) > MAX_STRING_LEN as f64 {
                return Err(JsError::range_error("Invalid count value"));
            }
            Value::string(s.repeat(n as usize))
        }
        "padStart" | "padEnd" => {
            let target = to_index(interp, &arg(args, 0), 0.0)?;
            if target > MAX_STRING_LEN as f64 {
                return Err(JsError::range_error("Invalid string length"));
            }
            let fill = match arg(args, 1) {
                Value::Undefined => " ".to_string(),
                v => interp.js_string(&v)?,
            };
            let len = s.chars().count();
            let target = target.max(0.0) as usize;
            if target <= len || fill.is_empty() {
                return Ok(this);
            }
            let pad: String = fill.chars().cycle().take(target - len).collect();
            Value::string(if name == "padStart" {
                format!("{pad}{s}")
            } else {
                format!("{s}{pad}")
            })
        }
        "split" => {
            let limit = match arg(args, 1) {
                Value::Undefined => usize::MAX,
                v => interp.js_number(&v)? as usize,
            };
            let parts: Vec<Value> = match arg(args, 0) {
                Value::Undefined => vec![this.clone()],
                Value::Regex(r) => r.regex.split(s).map(Value::str).collect(),
                sep => {
                    let sep = interp.js_string(&sep)?;
                    if sep.is_empty() {
                        s.chars().map(|c| Value::string(c.to_string())).collect()
                    } else {
                        s.split(sep.as_str()).map(Value::str).collect()
                    }
                }
            };
            if parts.len() > MAX_ARRAY_LEN {
                return Err(JsError::range_error("array too long"));
            }
            Value::array(parts.into_iter().take(limit).collect())
        }
        "replace" | "replaceAll" => {
            let pattern = arg(args, 0);
            let replacement = arg(args, 1);
            let (regex, all) = match &pattern {
                Value::Regex(r) => (r.regex.clone(), r.global || name == "replaceAll"),
                // Java's String.replaceAll (nashorn-compat) takes a regex as a string.
                p if name == "replaceAll" => {
                    let src = interp.js_string(p)?;
                    let re = regex::Regex::new(&src)
                        .or_else(|_| regex::Regex::new(&regex::escape(&src)))
                        .map_err(|e| JsError::other(format!("SyntaxError: {e}")))?;
                    (re, true)
                }
                p => {
                    let src = interp.js_string(p)?;
                    let re = regex::Regex::new(&regex::escape(&src))
                        .map_err(|e| JsError::other(format!("SyntaxError: {e}")))?;
                    (re, false)
                }
            };
            replace(interp, s, &regex, all, &replacement)?
        }
        "match" => {
            let re = match arg(args, 0) {
                Value::Regex(r) => r,
                v => {
                    let src = interp.js_string(&v)?;
                    match make_regex(&src, "")? {
                        Value::Regex(r) => r,
                        _ => return Ok(Value::Null),
                    }
                }
            };
            if re.global {
                let all: Vec<Value> = re
                    .regex
                    .find_iter(s)
                    .map(|m| Value::str(m.as_str()))
                    .collect();
                if all.is_empty() {
                    Value::Null
                } else {
                    Value::array(all)
                }
            } else {
                exec(&re, s)
            }
        }
        "search" => {
            let re = match arg(args, 0) {
                Value::Regex(r) => r.regex.clone(),
                v => {
                    let src = interp.js_string(&v)?;
                    regex::Regex::new(&src)
                        .map_err(|e| JsError::other(format!("SyntaxError: {e}")))?
                }
            };
            Value::Num(
                re.find(s)
                    .map_or(-1.0, |m| s[..m.start()].chars().count() as f64),
            )
        }
        "matches" => {
            let src = str_arg(interp, 0)?;
            let re = regex::Regex::new(&format!("^(?:{src})$"))
                .map_err(|e| JsError::other(format!("SyntaxError: {e}")))?;
            Value::Bool(re.is_match(s))
        }
        _ => return not_a_function(&this, name),
    })
}

fn replace(
    interp: &mut Interp<'_>,
    s: &str,
    re: &regex::Regex,
    all: bool,
    replacement: &Value,
) -> R<Value> {
    let template = match replacement {
        Value::Function(_) | Value::Native(_) => None,
        v => Some(interp.js_string(v)?),
    };
    let mut out = String::new();
    let mut last = 0;
    for caps in re.captures_iter(s) {
        let Some(m) = caps.get(0) else { continue };
        out.push_str(&s[last..m.start()]);
        match &template {
            Some(t) => expand_replacement(t, &caps, s, &mut out),
            None => {
                let mut call_args: Vec<Value> = caps
                    .iter()
                    .map(|g| g.map_or(Value::Undefined, |g| Value::str(g.as_str())))
                    .collect();
                call_args.push(Value::Num(s[..m.start()].chars().count() as f64));
                call_args.push(Value::str(s));
                let r = interp.call_value(replacement, Value::Undefined, &call_args)?;
                out.push_str(&interp.js_string(&r)?);
            }
        }
        last = m.end();
        if out.len() > MAX_STRING_LEN {
            return Err(JsError::range_error("string too long"));
        }
        if !all {
            break;
        }
    }
    out.push_str(&s[last..]);
    Interp::check_string(out)
}

/// `$$`, `$&`, `` $` ``, `$'` and `$1`..`$99` in a replacement string.
fn expand_replacement(t: &str, caps: &regex::Captures<'_>, s: &str, out: &mut String) {
    let Some(m) = caps.get(0) else { return };
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        match chars.peek().copied() {
            Some('$') => {
                chars.next();
                out.push('$');
            }
            Some('&') => {
                chars.next();
                out.push_str(m.as_str());
            }
            Some('`') => {
                chars.next();
                out.push_str(&s[..m.start()]);
            }
            Some('\'') => {
                chars.next();
                out.push_str(&s[m.end()..]);
            }
            Some(d) if d.is_ascii_digit() => {
                chars.next();
                let mut n = d.to_digit(10).unwrap_or(0) as usize;
                if let Some(d2) = chars.peek().and_then(|c| c.to_digit(10)) {
                    let two = n * 10 + d2 as usize;
                    if two < caps.len() {
                        chars.next();
                        n = two;
                    }
                }
                if n > 0 && n < caps.len() {
                    out.push_str(caps.get(n).map_or("", |g| g.as_str()));
                } else {
                    out.push('$');
                    out.push(d);
                }
            }
            _ => out.push('$'),
        }
    }
}

fn exec(re: &JsRegex, s: &str) -> Value {
    match re.regex.captures(s) {
        None => Value::Null,
        Some(caps) => Value::array(
            caps.iter()
                .map(|g| g.map_or(Value::Undefined, |g| Value::str(g.as_str())))
                .collect(),
        ),
    }
}

fn regex_method(interp: &mut Interp<'_>, r: &Rc<JsRegex>, name: &str, args: &[Value]) -> R<Value> {
    let s = interp.js_string(&arg(args, 0))?;
    Ok(match name {
        "test" => Value::Bool(r.regex.is_match(&s)),
        "exec" => exec(r, &s),
        "toString" => Value::string(format!("/{}/{}", r.source, if r.global { "g" } else { "" })),
        _ => return not_a_function(&Value::Regex(r.clone()), name),
    })
}

fn number_method(interp: &mut Interp<'_>, n: f64, name: &str, args: &[Value]) -> R<Value> {
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
fn to_fixed(n: f64, digits: usize) -> String {
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

fn number_to_radix(n: f64, radix: u32) -> String {
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

fn parse_int(s: &str, radix: u32) -> f64 {
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

fn parse_float(s: &str) -> f64 {
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

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn array_method(interp: &mut Interp<'_>, this: &Value, name: &str, args: &[Value]) -> R<Value> {
    let Value::Array(cell) = this else {
        return not_a_function(this, name);
    };
    // Work on a snapshot so callbacks may mutate the array without a RefCell conflict.
    let items = || cell.borrow().clone();
    let callback = arg(args, 0);
    Ok(match name {
        "toString" => interp.js_primitive(this, Hint::String)?,
        "join" => {
            let sep = match arg(args, 0) {
                Value::Undefined => ",".to_string(),
                v => interp.js_string(&v)?,
            };
            let mut parts = Vec::new();
            for item in items() {
                parts.push(if item.is_nullish() {
                    String::new()
                } else {
                    interp.js_string(&item)?
                });
            }
            Interp::check_string(parts.join(&sep))?
        }
        "map" | "filter" | "forEach" | "some" | "every" | "find" => {
            let mut mapped = Vec::new();
            for (i, item) in items().into_iter().enumerate() {
                let r = interp.call_value(
                    &callback,
                    arg(args, 1),
                    &[item.clone(), Value::Num(i as f64), this.clone()],
                )?;
                match name {
                    "map" => mapped.push(r),
                    "filter" if r.truthy() => mapped.push(item),
                    "some" if r.truthy() => return Ok(Value::Bool(true)),
                    "every" if !r.truthy() => return Ok(Value::Bool(false)),
                    "find" if r.truthy() => return Ok(item),
                    _ => {}
                }
            }
            match name {
                "map" | "filter" => Value::array(mapped),
                "some" => Value::Bool(false),
                "every" => Value::Bool(true),
                _ => Value::Undefined,
            }
        }
        "reduce" => {
            let mut iter = items().into_iter().enumerate();
            let mut acc = match args.get(1) {
                Some(init) => init.clone(),
                None => match iter.next() {
                    Some((_, first)) => first,
                    None => {
                        return Err(JsError::type_error(
                            "Reduce of empty array with no initial value",
                        ))
                    }
                },
            };
            for (i, item) in iter {
                acc = interp.call_value(
                    &callback,
                    Value::Undefined,
                    &[acc, item, Value::Num(i as f64), this.clone()],
                )?;
            }
            acc
        }
        "slice" => {
            let all = items();
            let start = relative(to_index(interp, &arg(args, 0), 0.0)?, all.len());
            let end = relative(
                to_index(interp, &arg(args, 1), all.len() as f64)?,
                all.len(),
            );
            Value::array(all.get(start..end.max(start)).unwrap_or(&[]).to_vec())
        }
        "splice" => {
            let mut all = items();
            let start = relative(to_index(interp, &arg(args, 0), 0.0)?, all.len());
            let count = to_index(interp, &arg(args, 1), (all.len() - start) as f64)?
                .clamp(0.0, (all.len() - start) as f64) as usize;
            let removed: Vec<Value> = all
                .splice(start..start + count, args.iter().skip(2).cloned())
                .collect();
            *cell.borrow_mut() = all;
            Value::array(removed)
        }
        "indexOf" | "lastIndexOf" | "includes" => {
            let needle = arg(args, 0);
            let all = items();
            let pos = if name == "lastIndexOf" {
                all.iter().rposition(|v| super::eval::strict_eq(v, &needle))
            } else {
                all.iter().position(|v| super::eval::strict_eq(v, &needle))
            };
            if name == "includes" {
                Value::Bool(pos.is_some())
            } else {
                Value::Num(pos.map_or(-1.0, |p| p as f64))
            }
        }
        "concat" => {
            let mut all = items();
            for a in args {
                match a {
                    Value::Array(other) => all.extend(other.borrow().iter().cloned()),
                    v => all.push(v.clone()),
                }
            }
            if all.len() > MAX_ARRAY_LEN {
                return Err(JsError::range_error("array too long"));
            }
            Value::array(all)
        }
        "push" | "unshift" => {
            let mut v = cell.borrow_mut();
            if v.len() + args.len() > MAX_ARRAY_LEN {
                return Err(JsError::range_error("array too long"));
            }
            if name == "push" {
                v.extend(args.iter().cloned());
            } else {
                v.splice(0..0, args.iter().cloned());
            }
            Value::Num(v.len() as f64)
        }
        "pop" => cell.borrow_mut().pop().unwrap_or(Value::Undefined),
        "shift" => {
            let mut v = cell.borrow_mut();
            if v.is_empty() {
                Value::Undefined
            } else {
                v.remove(0)
            }
        }
        "reverse" => {
            cell.borrow_mut().reverse();
            this.clone()
        }
        "sort" => {
            let sorted = merge_sort(interp, items(), &callback)?;
            *cell.borrow_mut() = sorted;
            this.clone()
        }
        _ => return not_a_function(this, name),
    })
}

/// A stable merge sort whose comparator may fail or be inconsistent (user code) without
/// panicking, which `slice::sort_by` does not promise.
fn merge_sort(interp: &mut Interp<'_>, v: Vec<Value>, cmp: &Value) -> R<Vec<Value>> {
    if v.len() <= 1 {
        return Ok(v);
    }
    let mut v = v;
    let right = v.split_off(v.len() / 2);
    let left = merge_sort(interp, v, cmp)?;
    let right = merge_sort(interp, right, cmp)?;
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut l = left.into_iter().peekable();
    let mut r = right.into_iter().peekable();
    while let (Some(a), Some(b)) = (l.peek(), r.peek()) {
        let b_first = sort_compare(interp, a, b, cmp)? > 0.0;
        let next = if b_first { r.next() } else { l.next() };
        out.extend(next);
    }
    out.extend(l);
    out.extend(r);
    Ok(out)
}

fn sort_compare(interp: &mut Interp<'_>, a: &Value, b: &Value, cmp: &Value) -> R<f64> {
    // undefined sorts last, as in JavaScript.
    match (a, b) {
        (Value::Undefined, Value::Undefined) => return Ok(0.0),
        (Value::Undefined, _) => return Ok(1.0),
        (_, Value::Undefined) => return Ok(-1.0),
        _ => {}
    }
    if matches!(cmp, Value::Undefined) {
        let (x, y) = (interp.js_string(a)?, interp.js_string(b)?);
        return Ok(match x.cmp(&y) {
            std::cmp::Ordering::Less => -1.0,
            std::cmp::Ordering::Equal => 0.0,
            std::cmp::Ordering::Greater => 1.0,
        });
    }
    let r = interp.call_value(cmp, Value::Undefined, &[a.clone(), b.clone()])?;
    let n = interp.js_number(&r)?;
    Ok(if n.is_nan() { 0.0 } else { n })
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
                "FullYear" => i32::from(f.year),
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

/// `JSON.stringify`: `None` for values JSON cannot hold (undefined, functions).
pub(crate) fn json_stringify(
    interp: &mut Interp<'_>,
    v: &Value,
    indent: &str,
    current: &str,
) -> R<Option<String>> {
    interp.tick()?;
    Ok(Some(match v {
        Value::Undefined | Value::Function(_) | Value::Native(_) | Value::Global(_) => {
            return Ok(None)
        }
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Num(n) => {
            if n.is_finite() {
                number_to_string(*n)
            } else {
                "null".into()
            }
        }
        Value::Str(s) => {
            let mut out = String::new();
            json_quote(s, &mut out);
            out
        }
        Value::Moment(m) => {
            let s = m.borrow().to_json();
            match s {
                Some(s) => {
                    let mut out = String::new();
                    json_quote(&s, &mut out);
                    out
                }
                None => "null".into(),
            }
        }
        Value::Date(ms) => match moment::iso_utc(*ms) {
            Some(s) => format!("\"{s}\""),
            None => "null".into(),
        },
        Value::Regex(_) => "{}".into(),
        Value::Array(items) => {
            let items = items.borrow().clone();
            let inner = format!("{current}{indent}");
            let mut parts = Vec::with_capacity(items.len());
            for item in &items {
                parts.push(
                    json_stringify(interp, item, indent, &inner)?.unwrap_or_else(|| "null".into()),
                );
            }
            join_json(&parts, '[', ']', indent, current)
        }
        Value::Object(map) => {
            let map: ObjectMap = map.borrow().clone();
            let inner = format!("{current}{indent}");
            let mut parts = Vec::with_capacity(map.len());
            for (k, item) in &map {
                if let Some(s) = json_stringify(interp, item, indent, &inner)? {
                    let mut entry = String::new();
                    json_quote(k, &mut entry);
                    entry.push(':');
                    if !indent.is_empty() {
                        entry.push(' ');
                    }
                    entry.push_str(&s);
                    parts.push(entry);
                }
            }
            join_json(&parts, '{', '}', indent, current)
        }
    }))
}

fn join_json(parts: &[String], open: char, close: char, indent: &str, current: &str) -> String {
    if parts.is_empty() {
        return format!("{open}{close}");
    }
    if indent.is_empty() {
        return format!("{open}{}{close}", parts.join(","));
    }
    let inner = format!("{current}{indent}");
    format!(
        "{open}\n{inner}{}\n{current}{close}",
        parts.join(&format!(",\n{inner}"))
    )
}
