//! JavaScript values and the coercions between them (ToString, ToNumber, JSON), as ES5 has them.

use super::ast::FunctionDef;
use super::moment::Moment;
use indexmap::IndexMap;
use std::cell::RefCell;
use std::fmt::Write as _;
use std::rc::Rc;

pub(crate) type ObjectMap = IndexMap<Rc<str>, Value>;

/// A variable environment: one per function call, chained to the defining scope.
pub(crate) struct Env {
    pub(crate) vars: RefCell<IndexMap<Rc<str>, Value>>,
    pub(crate) parent: Option<Rc<Env>>,
}

pub(crate) struct Closure {
    pub(crate) def: Rc<FunctionDef>,
    pub(crate) env: Option<Rc<Env>>,
}

/// A compiled regex literal or `RegExp(...)`.
pub(crate) struct JsRegex {
    pub(crate) source: String,
    pub(crate) global: bool,
    pub(crate) regex: regex::Regex,
}

/// Built-in namespaces and constructors (`Math`, `JSON`, `moment`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Global {
    Math,
    Json,
    Moment,
    Date,
    String,
    Number,
    Object,
    Array,
    RegExp,
    Boolean,
    /// `this` at the top of an expression: the params object (Digdag's `with(params)` scope).
    Scope,
}

#[derive(Clone)]
pub(crate) enum Value {
    Undefined,
    Null,
    Bool(bool),
    Num(f64),
    Str(Rc<str>),
    Array(Rc<RefCell<Vec<Value>>>),
    Object(Rc<RefCell<ObjectMap>>),
    Function(Rc<Closure>),
    /// A built-in method or function: `this` and its name (`"Math.floor"`, `"slice"`).
    Native(Rc<(Value, &'static str)>),
    Global(Global),
    /// moment objects are mutable (`m.add(1, 'd')` changes `m`), so they are shared cells.
    Moment(Rc<RefCell<Moment>>),
    /// A `Date`: epoch milliseconds (NaN when invalid).
    Date(f64),
    Regex(Rc<JsRegex>),
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&to_display(self))
    }
}

impl Value {
    pub(crate) fn str(s: &str) -> Value {
        Value::Str(s.into())
    }

    pub(crate) fn string(s: String) -> Value {
        Value::Str(s.into())
    }

    pub(crate) fn array(items: Vec<Value>) -> Value {
        Value::Array(Rc::new(RefCell::new(items)))
    }

    pub(crate) fn object(map: ObjectMap) -> Value {
        Value::Object(Rc::new(RefCell::new(map)))
    }

    pub(crate) fn is_nullish(&self) -> bool {
        matches!(self, Value::Undefined | Value::Null)
    }

    pub(crate) fn truthy(&self) -> bool {
        match self {
            Value::Undefined | Value::Null => false,
            Value::Bool(b) => *b,
            Value::Num(n) => !(*n == 0.0 || n.is_nan()),
            Value::Str(s) => !s.is_empty(),
            _ => true,
        }
    }

    pub(crate) fn type_of(&self) -> &'static str {
        match self {
            Value::Undefined => "undefined",
            Value::Bool(_) => "boolean",
            Value::Num(_) => "number",
            Value::Str(_) => "string",
            Value::Function(_) | Value::Native(_) => "function",
            Value::Global(g) => match g {
                Global::Math | Global::Json | Global::Scope => "object",
                _ => "function",
            },
            Value::Null
            | Value::Array(_)
            | Value::Object(_)
            | Value::Moment(_)
            | Value::Date(_)
            | Value::Regex(_) => "object",
        }
    }

    /// Same object (for `===` on objects).
    pub(crate) fn same_ref(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Array(a), Value::Array(b)) => Rc::ptr_eq(a, b),
            (Value::Object(a), Value::Object(b)) => Rc::ptr_eq(a, b),
            (Value::Function(a), Value::Function(b)) => Rc::ptr_eq(a, b),
            (Value::Native(a), Value::Native(b)) => Rc::ptr_eq(a, b),
            (Value::Moment(a), Value::Moment(b)) => Rc::ptr_eq(a, b),
            (Value::Regex(a), Value::Regex(b)) => Rc::ptr_eq(a, b),
            (Value::Global(a), Value::Global(b)) => a == b,
            (Value::Date(a), Value::Date(b)) => a.to_bits() == b.to_bits(),
            _ => false,
        }
    }

    pub(crate) fn is_primitive(&self) -> bool {
        matches!(
            self,
            Value::Undefined | Value::Null | Value::Bool(_) | Value::Num(_) | Value::Str(_)
        )
    }
}

/// `Number.prototype.toString()` for radix 10: the shortest round-trip digits, placed by the
/// ES5 rules (`1e21`, `1e-7`, `0.000001`, `123456789012345680000`).
pub(crate) fn number_to_string(n: f64) -> String {
    if n.is_nan() {
        return "NaN".into();
    }
    if n == 0.0 {
        return "0".into();
    }
    if n.is_infinite() {
        return if n > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let sign = if n < 0.0 { "-" } else { "" };
    // `{:e}` prints the shortest digits that round-trip, like ES's ToString.
    let sci = format!("{:e}", n.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    let k = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    let point = exp + 1; // the `n` of the ES algorithm
    let mut out = String::from(sign);
    if k <= point && point <= 21 {
        out.push_str(&digits);
        out.push_str(&"0".repeat((point - k) as usize));
    } else if 0 < point && point <= 21 {
        out.push_str(&digits[..point as usize]);
        out.push('.');
        out.push_str(&digits[point as usize..]);
    } else if -6 < point && point <= 0 {
        out.push_str("0.");
        out.push_str(&"0".repeat((-point) as usize));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = point - 1;
        let _ = write!(out, "e{}{}", if e < 0 { '-' } else { '+' }, e.abs());
    }
    out
}

/// ES5 `ToNumber` for strings: trimmed decimal, hex, `Infinity`; anything else is NaN.
pub(crate) fn string_to_number(s: &str) -> f64 {
    let t = s.trim();
    if t.is_empty() {
        return 0.0;
    }
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return u64::from_str_radix(hex, 16).map_or(f64::NAN, |n| n as f64);
    }
    match t {
        "Infinity" | "+Infinity" => return f64::INFINITY,
        "-Infinity" => return f64::NEG_INFINITY,
        _ => {}
    }
    if !t
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return f64::NAN;
    }
    t.parse().unwrap_or(f64::NAN)
}

/// ES5 ToInt32, for bitwise operators.
pub(crate) fn to_int32(n: f64) -> i32 {
    if !n.is_finite() {
        return 0;
    }
    let m = n.trunc().rem_euclid(4_294_967_296.0);
    (m as u32) as i32
}

/// Quotes a string the way `JSON.stringify` does.
pub(crate) fn json_quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A short rendering for error messages and Debug (never the full JSON of big values).
pub(crate) fn to_display(v: &Value) -> String {
    match v {
        Value::Undefined => "undefined".into(),
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Num(n) => number_to_string(*n),
        Value::Str(s) => {
            let mut out = String::new();
            json_quote(s, &mut out);
            out
        }
        Value::Array(_) => "array".into(),
        Value::Object(_) => "object".into(),
        Value::Function(_) | Value::Native(_) => "function".into(),
        Value::Global(g) => format!("{g:?}"),
        Value::Moment(_) => "moment".into(),
        Value::Date(_) => "Date".into(),
        Value::Regex(r) => format!("/{}/", r.source),
    }
}

/// Converts stored JSON into a JavaScript value (numbers become doubles, as in JavaScript).
pub(crate) fn from_json(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => Value::Num(n.as_f64().unwrap_or(f64::NAN)),
        J::String(s) => Value::str(s),
        J::Array(items) => Value::array(items.iter().map(from_json).collect()),
        J::Object(map) => Value::object(
            map.iter()
                .map(|(k, v)| (Rc::from(k.as_str()), from_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_like_javascript() {
        for (n, s) in [
            (1.0, "1"),
            (0.2, "0.2"),
            (-1.5, "-1.5"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (123456789012345680000.0, "123456789012345680000"),
            (1e-7, "1e-7"),
            (0.000001, "0.000001"),
            (1.5e-10, "1.5e-10"),
            (0.1 + 0.2, "0.30000000000000004"),
            (f64::NAN, "NaN"),
            (-0.0, "0"),
            (f64::INFINITY, "Infinity"),
        ] {
            assert_eq!(number_to_string(n), s, "{n}");
        }
    }

    #[test]
    fn strings_convert_to_numbers() {
        assert_eq!(string_to_number(" 42 "), 42.0);
        assert_eq!(string_to_number(""), 0.0);
        assert_eq!(string_to_number("0x10"), 16.0);
        assert!(string_to_number("inf").is_nan());
        assert!(string_to_number("12px").is_nan());
    }
}
