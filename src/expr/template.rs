//! Rendering a placeholder's value as text (Digdag's `template()`); the splitting itself is
//! `dig::template::split`, shared with the `.dig` parser.

use super::eval::{Interp, JsError};
use super::json::json_stringify;
use super::value::{number_to_string, Value};

/// True when `s` holds a `${secret:...}` reference an operator must resolve.
pub(crate) fn has_secret_reference(s: &str) -> bool {
    s.contains("${secret:")
}

/// The text of one placeholder's value, as digdag.js renders it: null and undefined give `""`,
/// strings stay as they are, everything else is `JSON.stringify` (so a moment or a Date gives
/// its `toJSON()` in double quotes, `"2016-03-13T10:00:00.000Z"`), and what JSON cannot hold
/// (a function) gives `undefined`, the text JavaScript appends for it.
pub(crate) fn render(interp: &mut Interp<'_>, v: &Value) -> Result<String, JsError> {
    Ok(match v {
        Value::Undefined | Value::Null => String::new(),
        Value::Str(s) => s.to_string(),
        Value::Num(n) if n.is_finite() => number_to_string(*n),
        other => json_stringify(interp, other, "", "")?.unwrap_or_else(|| "undefined".into()),
    })
}
