//! Rendering a placeholder's value as text (Digdag's `template()`); the splitting itself is
//! `dig::template::split`, shared with the `.dig` parser.

use super::eval::{Interp, JsError};
use super::stdlib::json_stringify;
use super::value::{number_to_string, Value};

/// True when `s` holds a `${secret:...}` reference an operator must resolve.
pub(crate) fn has_secret_reference(s: &str) -> bool {
    s.contains("${secret:")
}

/// The text of one placeholder's value: null and undefined give `""`, strings stay as they
/// are, moment objects give their `toJSON()` (ISO UTC with milliseconds), everything else
/// `JSON.stringify`.
pub(crate) fn render(interp: &mut Interp<'_>, v: &Value) -> Result<String, JsError> {
    Ok(match v {
        Value::Undefined | Value::Null => String::new(),
        Value::Str(s) => s.to_string(),
        Value::Num(n) if n.is_finite() => number_to_string(*n),
        Value::Moment(m) => m.borrow().to_json().unwrap_or_default(),
        Value::Date(ms) => super::moment::iso_utc(*ms).unwrap_or_default(),
        other => json_stringify(interp, other, "", "")?.unwrap_or_default(),
    })
}
