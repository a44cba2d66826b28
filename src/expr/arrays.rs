//! Array methods (`map`, `filter`, `reduce`, `sort`, `push`, ...), callbacks included.

use super::eval::{Hint, Interp, JsError, MAX_ARRAY_LEN};
use super::stdlib::{arg, not_a_function, relative, to_index};
use super::value::Value;

type R<T> = Result<T, JsError>;

pub(crate) const ARRAY_METHODS: &[&str] = &[
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

pub(crate) fn array_method(
    interp: &mut Interp<'_>,
    this: &Value,
    name: &str,
    args: &[Value],
) -> R<Value> {
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
            super::value::charge_elements(args.len());
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
pub(crate) fn merge_sort(interp: &mut Interp<'_>, v: Vec<Value>, cmp: &Value) -> R<Vec<Value>> {
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

pub(crate) fn sort_compare(interp: &mut Interp<'_>, a: &Value, b: &Value, cmp: &Value) -> R<f64> {
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
