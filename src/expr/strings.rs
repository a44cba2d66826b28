//! String and regular-expression methods (`slice`, `replace`, `split`, `test`, ...), including
//! the Java-interop ones Digdag's nashorn-compat mode allows (`replaceAll`, `contains`).

use super::eval::{Interp, JsError, MAX_ARRAY_LEN, MAX_STRING_LEN};
use super::numbers::is_js_space;
use super::regexp::{compile, js_matches, make_regex};
use super::stdlib::{arg, not_a_function, relative, to_index};
use super::value::{to_uint32, JsRegex, Value};
use std::rc::Rc;

type R<T> = Result<T, JsError>;

pub(crate) const STRING_METHODS: &[&str] = &[
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
    "localeCompare",
    "isEmpty",
    "matches",
];

pub(crate) const REGEX_METHODS: &[&str] = &["test", "exec", "toString"];

pub(crate) fn string_method(
    interp: &mut Interp<'_>,
    s: &Rc<str>,
    name: &str,
    args: &[Value],
) -> R<Value> {
    let this = Value::Str(s.clone());
    let chars = || s.chars().collect::<Vec<char>>();
    let str_arg = |interp: &mut Interp<'_>, i: usize| interp.js_string(&arg(args, i));
    Ok(match name {
        "toString" | "valueOf" => this,
        "toUpperCase" => Value::string(s.to_uppercase()),
        "toLowerCase" => Value::string(s.to_lowercase()),
        "trim" => Value::str(s.trim_matches(is_js_space)),
        "trimLeft" | "trimStart" => Value::str(s.trim_start_matches(is_js_space)),
        "trimRight" | "trimEnd" => Value::str(s.trim_end_matches(is_js_space)),
        "isEmpty" => Value::Bool(s.is_empty()),
        "equals" => Value::Bool(matches!(&arg(args, 0), Value::Str(o) if o == s)),
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
                // The last match starting at or before `position` (NaN, the default, is the
                // end), counted in characters.
                let pos = interp.js_number(&arg(args, 1))?;
                let len = s.chars().count();
                let from = if pos.is_nan() {
                    len
                } else {
                    pos.trunc().clamp(0.0, len as f64) as usize
                };
                let byte_from = s.char_indices().nth(from).map_or(s.len(), |(b, _)| b);
                let limit = (byte_from + needle.len()).min(s.len());
                s.get(..limit).and_then(|head| head.rfind(&needle))
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
        "localeCompare" => {
            // An approximation of a collation: letters before case, then code points.
            let other = str_arg(interp, 0)?;
            let key = |t: &str| t.to_lowercase();
            let order = key(s).cmp(&key(&other)).then_with(|| other.as_str().cmp(s));
            Value::Num(match order {
                std::cmp::Ordering::Less => -1.0,
                std::cmp::Ordering::Equal => 0.0,
                std::cmp::Ordering::Greater => 1.0,
            })
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
            // `limit` is ToUint32: -1 is 4294967295, 4294967297 is 1.
            let limit = match arg(args, 1) {
                Value::Undefined => u32::MAX as usize,
                v => to_uint32(interp.js_number(&v)?) as usize,
            };
            let parts: Vec<Value> = match &arg(args, 0) {
                _ if limit == 0 => Vec::new(),
                Value::Undefined => vec![this.clone()],
                Value::Regex(r) => super::regexp::split(&r.regex, s, limit),
                sep => {
                    let sep = interp.js_string(sep)?;
                    if sep.is_empty() {
                        s.chars()
                            .take(limit)
                            .map(|c| Value::string(c.to_string()))
                            .collect()
                    } else {
                        s.split(sep.as_str()).take(limit).map(Value::str).collect()
                    }
                }
            };
            if parts.len() > MAX_ARRAY_LEN {
                return Err(JsError::range_error("array too long"));
            }
            Value::array(parts)
        }
        "replace" | "replaceAll" => {
            let pattern = arg(args, 0);
            let replacement = arg(args, 1);
            let (regex, all) = match &pattern {
                Value::Regex(r) => (r.regex.clone(), r.global || name == "replaceAll"),
                // Java's String.replaceAll (nashorn-compat) takes a regex as a string.
                p if name == "replaceAll" => {
                    let src = interp.js_string(p)?;
                    let re = match compile(&src, "") {
                        Ok(r) => r.regex.clone(),
                        Err(_) => regex::Regex::new(&regex::escape(&src))
                            .map_err(|e| JsError::other(format!("SyntaxError: {e}")))?,
                    };
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
            let re = match &arg(args, 0) {
                Value::Regex(r) => r.clone(),
                v => {
                    let src = interp.js_string(v)?;
                    match &make_regex(&src, "")? {
                        Value::Regex(r) => r.clone(),
                        _ => return Ok(Value::Null),
                    }
                }
            };
            if re.global {
                let all: Vec<Value> = js_matches(&re.regex, s)
                    .iter()
                    .filter_map(|c| c.get(0))
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
            let re = match &arg(args, 0) {
                Value::Regex(r) => r.regex.clone(),
                v => {
                    let src = interp.js_string(v)?;
                    compile(&src, "")?.regex.clone()
                }
            };
            Value::Num(
                re.find(s)
                    .map_or(-1.0, |m| s[..m.start()].chars().count() as f64),
            )
        }
        "matches" => {
            let src = str_arg(interp, 0)?;
            let re = compile(&format!("^(?:{src})$"), "")?;
            Value::Bool(re.regex.is_match(s))
        }
        _ => return not_a_function(&this, name),
    })
}

pub(crate) fn replace(
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
    let found = if all {
        js_matches(re, s)
    } else {
        re.captures(s).into_iter().collect()
    };
    for caps in found {
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
pub(crate) fn expand_replacement(t: &str, caps: &regex::Captures<'_>, s: &str, out: &mut String) {
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
                // `$nn` when it names a group (01 to 99), else `$n` when that does, else
                // the text as it is (V8's reading of ES5's table 22).
                let n = d.to_digit(10).unwrap_or(0) as usize;
                let mut ahead = chars.clone();
                ahead.next();
                let two = ahead
                    .peek()
                    .and_then(|c| c.to_digit(10))
                    .map(|d2| n * 10 + d2 as usize)
                    .filter(|two| *two > 0 && *two < caps.len());
                if let Some(two) = two {
                    chars.next();
                    chars.next();
                    out.push_str(caps.get(two).map_or("", |g| g.as_str()));
                } else if n > 0 && n < caps.len() {
                    chars.next();
                    out.push_str(caps.get(n).map_or("", |g| g.as_str()));
                } else {
                    out.push('$');
                }
            }
            _ => out.push('$'),
        }
    }
}

pub(crate) fn exec(re: &JsRegex, s: &str) -> Value {
    match re.regex.captures(s) {
        None => Value::Null,
        Some(caps) => Value::array(
            caps.iter()
                .map(|g| g.map_or(Value::Undefined, |g| Value::str(g.as_str())))
                .collect(),
        ),
    }
}

pub(crate) fn regex_method(
    interp: &mut Interp<'_>,
    r: &Rc<JsRegex>,
    name: &str,
    args: &[Value],
) -> R<Value> {
    let s = interp.js_string(&arg(args, 0))?;
    Ok(match name {
        "test" => Value::Bool(r.regex.is_match(&s)),
        "exec" => exec(r, &s),
        "toString" => Value::string(r.to_js_string()),
        _ => return not_a_function(&Value::Regex(r.clone()), name),
    })
}
