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
    pub(crate) ignore_case: bool,
    pub(crate) multiline: bool,
    /// The source translated to the `regex` crate's syntax with JavaScript's meaning.
    pub(crate) regex: regex::Regex,
}

impl JsRegex {
    /// `/source/flags`, flags in JavaScript's order.
    pub(crate) fn to_js_string(&self) -> String {
        let mut out = format!("/{}/", self.source);
        for (on, f) in [
            (self.global, 'g'),
            (self.ignore_case, 'i'),
            (self.multiline, 'm'),
        ] {
            if on {
                out.push(f);
            }
        }
        out
    }
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
    /// `Error`, `TypeError`, `RangeError`: constructors of `{name, message}` objects.
    Error(&'static str),
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

/// The index of an array-index key (`"0"`, `"17"`, up to 2^32 - 2 without leading zeros):
/// JavaScript lists such keys first, in ascending order, then the others as inserted.
fn array_index(key: &str) -> Option<u32> {
    let b = key.as_bytes();
    if b.is_empty() || b.len() > 10 || (b[0] == b'0' && b.len() > 1) {
        return None;
    }
    if !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    key.parse::<u32>().ok().filter(|&n| n != u32::MAX)
}

/// Puts array-index keys first, in ascending order (ES2015 OrdinaryOwnPropertyKeys, which
/// every engine Digdag runs on follows): `{b: 1, "1": 2}` is `{"1": 2, "b": 1}`.
pub(crate) fn order_keys(map: &mut ObjectMap) {
    // Most objects have no index keys: leave them as they are.
    let first_byte_digit = |k: &Rc<str>| k.as_bytes().first().is_some_and(u8::is_ascii_digit);
    if !map.keys().any(first_byte_digit) {
        return;
    }
    map.sort_by(|a, _, b, _| match (array_index(a), array_index(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
}

/// Sets `key` in an object the way JavaScript does: an existing key keeps its place, a new
/// array index goes among the others in ascending order, any other new key goes last.
pub(crate) fn object_insert(map: &mut ObjectMap, key: &str, value: Value) {
    if let Some(slot) = map.get_mut(key) {
        *slot = value;
        return;
    }
    let Some(index) = array_index(key) else {
        map.insert(key.into(), value);
        return;
    };
    let at = map
        .keys()
        .position(|k| array_index(k).is_none_or(|other| other > index))
        .unwrap_or(map.len());
    map.shift_insert(at, key.into(), value);
}

thread_local! {
    /// Bytes allocated by the evaluation running on this thread (see `eval::MAX_ALLOCATED`).
    static ALLOCATED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Counts `bytes` against the current evaluation's allocation budget.
pub(crate) fn charge(bytes: usize) {
    ALLOCATED.with(|a| a.set(a.get().saturating_add(bytes)));
}

/// Counts `n` array or object slots.
pub(crate) fn charge_elements(n: usize) {
    charge(n.saturating_mul(std::mem::size_of::<Value>()));
}

pub(crate) fn allocated() -> usize {
    ALLOCATED.with(std::cell::Cell::get)
}

/// Starts a new budget; called once per `eval_params`/`eval_value`.
pub(crate) fn reset_allocated() {
    ALLOCATED.with(|a| a.set(0));
}

/// Dropping a deeply nested array or object (built by a loop like `a = [a]`) would recurse
/// once per level and could overflow the stack, so nested containers are taken apart here
/// with an explicit worklist instead.
impl Drop for Value {
    fn drop(&mut self) {
        let mut work: Vec<Value> = Vec::new();
        take_children(self, &mut work);
        while let Some(mut v) = work.pop() {
            take_children(&mut v, &mut work);
            // `v` now has no children left, so its own drop does not recurse.
        }
    }
}

/// Moves the children of a container that is about to be freed into `work`.
fn take_children(v: &mut Value, work: &mut Vec<Value>) {
    match v {
        Value::Array(items) if Rc::strong_count(items) == 1 => {
            if let Ok(mut items) = items.try_borrow_mut() {
                work.append(&mut items);
            }
        }
        Value::Object(map) if Rc::strong_count(map) == 1 => {
            if let Ok(mut map) = map.try_borrow_mut() {
                work.extend(map.drain(..).map(|(_, v)| v));
            }
        }
        _ => {}
    }
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&to_display(self))
    }
}

impl Value {
    pub(crate) fn str(s: &str) -> Value {
        charge(s.len());
        Value::Str(s.into())
    }

    pub(crate) fn string(s: String) -> Value {
        charge(s.len());
        Value::Str(s.into())
    }

    pub(crate) fn array(items: Vec<Value>) -> Value {
        charge_elements(items.len());
        Value::Array(Rc::new(RefCell::new(items)))
    }

    /// An object; its keys are put in JavaScript's order (array indices first, ascending).
    pub(crate) fn object(mut map: ObjectMap) -> Value {
        charge_elements(map.len() * 2);
        order_keys(&mut map);
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

/// `Number.prototype.toString()` for radix 10: the shortest digits that round-trip, placed
/// by the ES5 rules (`1e21`, `1e-7`, `0.000001`, `123456789012345680000`).
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
    let (digits, exp) = shortest_digits(n.abs());
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

/// The shortest decimal digits of a positive finite `x` that read back as `x`, and the
/// exponent of the first one. Rust's `{:e}` gives the shortest digits but rounds a tie
/// between two of them up, where ES5 (9.8.1, note 2) takes the closest and then the even one:
/// 1907850397351936.25 is `...936.2`, not `...936.3`.
fn shortest_digits(x: f64) -> (String, i32) {
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    // A tie needs the exact value to be one digit longer, ending in 5: only 16 and 17 digit
    // outputs are that close to the precision of a double.
    if digits.len() < 16 {
        return (digits, exp);
    }
    match exact_digits(x) {
        Some((exact, exact_exp)) if exact.len() == digits.len() + 1 && exact.ends_with('5') => {
            let low = &exact[..digits.len()];
            let last = low.bytes().last().unwrap_or(b'0') - b'0';
            let reads_back = |d: &str| {
                format!("{d}e{}", exact_exp - (d.len() as i32 - 1))
                    .parse::<f64>()
                    .is_ok_and(|v| v == x)
            };
            if last % 2 == 0 && low != digits && reads_back(low) {
                (low.to_string(), exact_exp)
            } else {
                (digits, exp)
            }
        }
        _ => (digits, exp),
    }
}

/// The exact decimal digits of `x` (trailing zeros removed) and the exponent of the first,
/// when they fit in a u128; `None` otherwise (such values have too many digits for a tie).
fn exact_digits(x: f64) -> Option<(String, i32)> {
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1 << 52) - 1);
    let (mut m, mut e) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1 << 52), biased - 1075)
    };
    while m != 0 && m % 2 == 0 {
        m /= 2;
        e += 1;
    }
    // x = m * 2^e = m * 5^-e / 10^-e for negative e.
    let (n, scale) = if e >= 0 {
        (u128::from(m).checked_shl(u32::try_from(e).ok()?)?, 0)
    } else {
        let five = 5u128.checked_pow(u32::try_from(-e).ok()?)?;
        (u128::from(m).checked_mul(five)?, -e)
    };
    if n >> 127 != 0 {
        return None;
    }
    let text = n.to_string();
    let trimmed = text.trim_end_matches('0');
    let exp = i32::try_from(text.len()).ok()? - 1 - scale;
    Some((trimmed.to_string(), exp))
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

/// ES5 ToUint32.
pub(crate) fn to_uint32(n: f64) -> u32 {
    to_int32(n) as u32
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
    // The tie cases are exact doubles (multiples of 0.25 below 2^51), written out in full.
    #[allow(clippy::excessive_precision)]
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
            // A tie between two shortest forms takes the even digit (Rust's `{:e}` does not).
            (1907850397351936.25, "1907850397351936.2"),
            (-1630894268552462.25, "-1630894268552462.2"),
            (1382951240520924.25, "1382951240520924.2"),
            (798898967914283.25, "798898967914283.2"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
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
