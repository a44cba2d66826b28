//! `JSON.stringify` with JavaScript's rules: undefined and functions dropped, NaN as null,
//! moments and dates as their `toJSON()`, optional indentation.

use super::eval::{Interp, JsError};
use super::moment;
use super::value::{json_quote, number_to_string, Global, ObjectMap, Value};

type R<T> = Result<T, JsError>;

/// `JSON.stringify`: `None` for values JSON cannot hold (undefined, functions).
pub(crate) fn json_stringify(
    interp: &mut Interp<'_>,
    v: &Value,
    indent: &str,
    current: &str,
) -> R<Option<String>> {
    // Values may contain themselves: the nesting bound turns that into an error.
    interp.enter()?;
    let r = json_stringify_inner(interp, v, indent, current, true);
    interp.leave();
    r
}

/// One value; `to_json` is false for the value a `toJSON()` returned, which is serialised as
/// it is (ES5 15.12.3 calls `toJSON` once per property).
fn json_stringify_inner(
    interp: &mut Interp<'_>,
    v: &Value,
    indent: &str,
    current: &str,
    to_json: bool,
) -> R<Option<String>> {
    Ok(Some(match v {
        Value::Global(Global::Math | Global::Json) => "{}".into(),
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
        Value::Object(map)
            if to_json && matches!(map.borrow().get("toJSON"), Some(Value::Function(_))) =>
        {
            // `toJSON()` decides what is serialised (ES5 15.12.3, Str step 2).
            let f = map
                .borrow()
                .get("toJSON")
                .cloned()
                .unwrap_or(Value::Undefined);
            let replaced = interp.call_value(&f, v.clone(), &[Value::str("")])?;
            return json_stringify_inner(interp, &replaced, indent, current, false);
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

pub(crate) fn join_json(
    parts: &[String],
    open: char,
    close: char,
    indent: &str,
    current: &str,
) -> String {
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
