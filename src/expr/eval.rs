//! The tree-walking interpreter: operators with ES5 coercions, functions, statements and the
//! sandbox limits (time, call depth, string and array sizes).

use super::ast::{BinaryOp, Declaration, Expr, FunctionDef, LogicalOp, Stmt, UnaryOp};
use super::stdlib;
use super::value::{
    number_to_string, string_to_number, to_display, to_int32, Closure, Env, Global, Value,
};
use indexmap::IndexMap;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How long one `${...}` may run before it is stopped.
pub(crate) const TIME_LIMIT: Duration = Duration::from_secs(1);
/// Nested calls allowed (recursion); keeps the interpreter far from the native stack limit.
const MAX_CALL_DEPTH: usize = 64;
/// Largest string an expression may build (characters of UTF-8).
pub(crate) const MAX_STRING_LEN: usize = 8 << 20;
/// Largest array an expression may build.
pub(crate) const MAX_ARRAY_LEN: usize = 1 << 20;
/// Nested evaluation frames (expressions and statements, across calls).
/// Sized so the deepest evaluation fits a 2 MiB thread stack even in debug builds (the
/// `sandbox_survives_deep_nesting_on_a_small_stack` test).
pub(crate) const MAX_NESTING: usize = 200;
/// Bytes of strings, arrays and objects one evaluation may allocate in total (freed or not):
/// with the per-value size limits this keeps a loop from exhausting memory within its second.
pub(crate) const MAX_ALLOCATED: usize = 256 << 20;
/// The clock is read every this many steps.
const CHECK_EVERY: u64 = 1024;

/// A JavaScript exception or a sandbox stop, as text (`TypeError: ...`).
///
/// Boxed so `Result<Value, JsError>` stays two words: results sit in every interpreter
/// frame, and frame size decides how deep evaluation can nest on a 2 MiB stack.
#[derive(Debug, Clone)]
pub(crate) struct JsError(Box<JsErrorData>);

#[derive(Debug, Clone)]
pub(crate) struct JsErrorData {
    pub(crate) message: String,
    /// The value a `throw` threw (`None` for errors the interpreter raised itself).
    pub(crate) thrown: Option<Value>,
    /// Sandbox stops (time, nesting, memory) cannot be caught by `try`, so they always end
    /// the evaluation.
    pub(crate) fatal: bool,
}

impl std::ops::Deref for JsError {
    type Target = JsErrorData;

    fn deref(&self) -> &JsErrorData {
        &self.0
    }
}

impl JsError {
    fn new(message: String) -> JsError {
        JsError(Box::new(JsErrorData {
            message,
            thrown: None,
            fatal: false,
        }))
    }

    pub(crate) fn type_error(msg: impl std::fmt::Display) -> JsError {
        JsError::new(format!("TypeError: {msg}"))
    }

    pub(crate) fn range_error(msg: impl std::fmt::Display) -> JsError {
        JsError::new(format!("RangeError: {msg}"))
    }

    pub(crate) fn other(msg: impl Into<String>) -> JsError {
        JsError::new(msg.into())
    }

    pub(crate) fn fatal(msg: impl Into<String>) -> JsError {
        JsError(Box::new(JsErrorData {
            message: msg.into(),
            thrown: None,
            fatal: true,
        }))
    }

    pub(crate) fn into_message(self) -> String {
        self.0.message
    }

    /// The value a `catch (e)` binds: the thrown value, or an error object for errors the
    /// interpreter raised (`{name: "TypeError", message: "..."}`).
    fn caught_value(self) -> Value {
        let data = *self.0;
        if let Some(v) = data.thrown {
            return v;
        }
        let (name, message) = match data.message.split_once(": ") {
            Some((n, m)) if n.ends_with("Error") => (n.to_string(), m.to_string()),
            _ => ("Error".to_string(), data.message.clone()),
        };
        error_object(&name, &message)
    }
}

/// An `Error`-like object: `{name, message}`.
pub(crate) fn error_object(name: &str, message: &str) -> Value {
    let mut map = IndexMap::new();
    map.insert(Rc::from("name"), Value::str(name));
    map.insert(Rc::from("message"), Value::str(message));
    Value::object(map)
}

/// Supplies the params (the `with(params)` scope) by name, evaluating them on demand.
pub(crate) trait Resolver {
    fn lookup(&self, name: &str) -> Result<Option<Value>, JsError>;
}

/// What the interpreter needs from the outside: time and the zone (both injected).
pub(crate) struct Host {
    pub(crate) timezone: jiff::tz::TimeZone,
    pub(crate) now: jiff::Timestamp,
    /// Nested evaluation frames of every interpreter of one evaluation: a param referenced
    /// from inside an expression is evaluated by a nested interpreter on the same stack.
    pub(crate) nesting: std::cell::Cell<usize>,
}

impl Host {
    pub(crate) fn new(timezone: jiff::tz::TimeZone, now: jiff::Timestamp) -> Host {
        Host {
            timezone,
            now,
            nesting: std::cell::Cell::new(0),
        }
    }

    /// Opens `weight` nested frames; fails once the stack budget is used up.
    pub(crate) fn enter(&self, weight: usize) -> R<()> {
        let n = self.nesting.get() + weight;
        if n > MAX_NESTING {
            return Err(JsError::fatal(
                "RangeError: expression nested too deeply (maximum call stack size exceeded)",
            ));
        }
        self.nesting.set(n);
        Ok(())
    }

    pub(crate) fn leave(&self, weight: usize) {
        self.nesting.set(self.nesting.get().saturating_sub(weight));
    }
}

enum Flow {
    Normal,
    Return(Value),
    Break,
    Continue,
}

pub(crate) struct Interp<'a> {
    pub(crate) resolver: &'a dyn Resolver,
    pub(crate) host: &'a Host,
    /// Names assigned without `var` at any level (JavaScript's implicit globals).
    globals: IndexMap<Rc<str>, Value>,
    steps: u64,
    started: Instant,
    /// JavaScript call depth.
    depth: usize,
}

type R<T> = Result<T, JsError>;

impl<'a> Interp<'a> {
    pub(crate) fn new(resolver: &'a dyn Resolver, host: &'a Host) -> Interp<'a> {
        Interp {
            resolver,
            host,
            globals: IndexMap::new(),
            steps: 0,
            started: Instant::now(),
            depth: 0,
        }
    }

    /// Evaluates a top-level expression.
    pub(crate) fn run(&mut self, e: &Expr) -> R<Value> {
        self.eval(e, None)
    }

    pub(crate) fn tick(&mut self) -> R<()> {
        self.steps += 1;
        if super::value::allocated() > MAX_ALLOCATED {
            return Err(JsError::fatal(format!(
                "RangeError: expression allocated more than {} MiB",
                MAX_ALLOCATED >> 20
            )));
        }
        if self.steps % CHECK_EVERY == 0 && self.started.elapsed() > TIME_LIMIT {
            return Err(JsError::fatal(format!(
                "expression stopped after running longer than {} s",
                TIME_LIMIT.as_secs()
            )));
        }
        Ok(())
    }

    pub(crate) fn check_string(s: String) -> R<Value> {
        if s.len() > MAX_STRING_LEN {
            return Err(JsError::range_error(format!(
                "string longer than {MAX_STRING_LEN} bytes"
            )));
        }
        Ok(Value::string(s))
    }

    fn lookup(&mut self, name: &str, env: Option<&Rc<Env>>) -> R<Value> {
        let mut cur = env;
        while let Some(e) = cur {
            if let Some(v) = e.vars.borrow().get(name) {
                return Ok(v.clone());
            }
            cur = e.parent.as_ref();
        }
        if let Some(v) = self.globals.get(name) {
            return Ok(v.clone());
        }
        if let Some(v) = self.resolver.lookup(name)? {
            // Within one expression a param is one object, as with Digdag's `with(params)`:
            // `arr.push(4); arr.length` sees the push, and big params are converted once.
            // (Primitives are immutable, so only containers need remembering.)
            if !v.is_primitive() {
                self.globals.insert(name.into(), v.clone());
            }
            return Ok(v);
        }
        stdlib::global(name)
            .ok_or_else(|| JsError::other(format!("ReferenceError: \"{name}\" is not defined")))
    }

    fn assign_name(&mut self, name: &Rc<str>, value: Value, env: Option<&Rc<Env>>) {
        let mut cur = env;
        while let Some(e) = cur {
            if let Some(slot) = e.vars.borrow_mut().get_mut(name) {
                *slot = value;
                return;
            }
            cur = e.parent.as_ref();
        }
        self.globals.insert(name.clone(), value);
    }

    /// Evaluates `e`, bounding the interpreter's own recursion so that no input can overflow
    /// the native stack (a 2 MiB thread stack is enough; see the `sandbox` tests).
    pub(crate) fn eval(&mut self, e: &Expr, env: Option<&Rc<Env>>) -> R<Value> {
        self.enter()?;
        let r = self.eval_inner(e, env);
        self.leave();
        r
    }

    pub(crate) fn enter(&mut self) -> R<()> {
        self.tick()?;
        self.host.enter(1)
    }

    /// Ends a frame opened with [`Interp::enter`].
    pub(crate) fn leave(&mut self) {
        self.host.leave(1);
    }

    fn eval_inner(&mut self, e: &Expr, env: Option<&Rc<Env>>) -> R<Value> {
        Ok(match e {
            Expr::Num(n) => Value::Num(*n),
            Expr::Str(s) => Value::Str(s.clone()),
            Expr::Bool(b) => Value::Bool(*b),
            Expr::Null => Value::Null,
            Expr::Regex { source, flags } => super::regexp::make_regex(source, flags)?,
            Expr::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(self.eval(item, env)?);
                }
                Value::array(out)
            }
            Expr::Object(props) => {
                let mut map = IndexMap::new();
                for (k, v) in props {
                    let v = self.eval(v, env)?;
                    map.insert(k.clone(), v);
                }
                Value::object(map)
            }
            Expr::Ident(name) => self.lookup(name, env)?,
            Expr::This => self
                .lookup("this", env)
                .unwrap_or(Value::Global(Global::Scope)),
            Expr::Member(obj, name) => {
                let o = self.eval(obj, env)?;
                stdlib::get_property(self, &o, name)?
            }
            Expr::Index(obj, index) => {
                let o = self.eval(obj, env)?;
                let i = self.eval(index, env)?;
                let key = self.js_string(&i)?;
                stdlib::get_property(self, &o, &key)?
            }
            Expr::Call(callee, args) => match &**callee {
                Expr::Member(obj, name) => {
                    let this = self.eval(obj, env)?;
                    let args = self.eval_args(args, env)?;
                    self.call_method(&this, name, &args)?
                }
                Expr::Index(obj, index) => {
                    let this = self.eval(obj, env)?;
                    let i = self.eval(index, env)?;
                    let key = self.js_string(&i)?;
                    let args = self.eval_args(args, env)?;
                    self.call_method(&this, &key, &args)?
                }
                _ => {
                    let f = self.eval(callee, env)?;
                    let args = self.eval_args(args, env)?;
                    self.call_value(&f, Value::Undefined, &args)?
                }
            },
            Expr::New(callee, args) => {
                let f = self.eval(callee, env)?;
                let args = self.eval_args(args, env)?;
                self.construct(&f, &args)?
            }
            Expr::Unary(op, operand) => self.unary(*op, operand, env)?,
            Expr::Binary(op, l, r) => {
                let l = self.eval(l, env)?;
                let r = self.eval(r, env)?;
                self.binary(*op, &l, &r)?
            }
            Expr::Logical(op, l, r) => {
                let l = self.eval(l, env)?;
                match (op, l.truthy()) {
                    (LogicalOp::And, false) | (LogicalOp::Or, true) => l,
                    _ => self.eval(r, env)?,
                }
            }
            Expr::Cond(test, yes, no) => {
                if self.eval(test, env)?.truthy() {
                    self.eval(yes, env)?
                } else {
                    self.eval(no, env)?
                }
            }
            Expr::Assign(target, op, value) => {
                let v = match op {
                    None => self.eval(value, env)?,
                    Some(op) => {
                        let old = self.eval(target, env)?;
                        let rhs = self.eval(value, env)?;
                        self.binary(*op, &old, &rhs)?
                    }
                };
                self.store(target, v.clone(), env)?;
                v
            }
            Expr::Update(inc, prefix, target) => {
                let old = self.eval(target, env)?;
                let old = self.js_number(&old)?;
                let new = if *inc { old + 1.0 } else { old - 1.0 };
                self.store(target, Value::Num(new), env)?;
                Value::Num(if *prefix { new } else { old })
            }
            Expr::Function(def) => Value::Function(Rc::new(Closure {
                def: def.clone(),
                env: env.cloned(),
            })),
            Expr::Program(def) => self.run_program(def)?,
            Expr::Comma(items) => {
                let mut last = Value::Undefined;
                for item in items {
                    last = self.eval(item, env)?;
                }
                last
            }
        })
    }

    fn eval_args(&mut self, args: &[Expr], env: Option<&Rc<Env>>) -> R<Vec<Value>> {
        args.iter().map(|a| self.eval(a, env)).collect()
    }

    fn store(&mut self, target: &Expr, value: Value, env: Option<&Rc<Env>>) -> R<()> {
        match target {
            Expr::Ident(name) => {
                self.assign_name(name, value, env);
                Ok(())
            }
            Expr::Member(obj, name) => {
                let o = self.eval(obj, env)?;
                self.set_property(&o, name, value)
            }
            Expr::Index(obj, index) => {
                let o = self.eval(obj, env)?;
                let i = self.eval(index, env)?;
                let key = self.js_string(&i)?;
                self.set_property(&o, &key, value)
            }
            _ => Err(JsError::other("ReferenceError: invalid assignment target")),
        }
    }

    fn set_property(&mut self, obj: &Value, key: &str, value: Value) -> R<()> {
        match obj {
            Value::Object(map) => {
                super::value::charge(key.len());
                super::value::charge_elements(2);
                super::value::object_insert(&mut map.borrow_mut(), key, value);
            }
            Value::Array(items) => {
                let mut items = items.borrow_mut();
                if key == "length" {
                    let n = self.js_number(&value)?;
                    let n = array_len(n)?;
                    super::value::charge_elements(n.saturating_sub(items.len()));
                    items.resize(n, Value::Undefined);
                } else if let Ok(i) = key.parse::<usize>() {
                    if i >= MAX_ARRAY_LEN {
                        return Err(JsError::range_error("array too long"));
                    }
                    if i >= items.len() {
                        super::value::charge_elements(i + 1 - items.len());
                        items.resize(i + 1, Value::Undefined);
                    }
                    items[i] = value;
                }
            }
            Value::Undefined | Value::Null => {
                return Err(JsError::type_error(format!(
                    "Cannot set property \"{key}\" of {}",
                    to_display(obj)
                )))
            }
            // Primitives and built-ins silently ignore writes, as in non-strict JavaScript.
            _ => {}
        }
        Ok(())
    }

    fn unary(&mut self, op: UnaryOp, operand: &Expr, env: Option<&Rc<Env>>) -> R<Value> {
        if op == UnaryOp::Typeof {
            // `typeof undeclared` is "undefined", not a ReferenceError.
            if let Expr::Ident(name) = operand {
                return Ok(match self.lookup(name, env) {
                    Ok(v) => Value::str(v.type_of()),
                    Err(e) if e.message.starts_with("ReferenceError") => Value::str("undefined"),
                    Err(e) => return Err(e),
                });
            }
            let v = self.eval(operand, env)?;
            return Ok(Value::str(v.type_of()));
        }
        if op == UnaryOp::Delete {
            if let Expr::Member(obj, name) = operand {
                if let Value::Object(map) = &self.eval(obj, env)? {
                    map.borrow_mut().shift_remove(&**name);
                }
            }
            return Ok(Value::Bool(true));
        }
        let v = self.eval(operand, env)?;
        Ok(match op {
            UnaryOp::Not => Value::Bool(!v.truthy()),
            UnaryOp::Neg => Value::Num(-self.js_number(&v)?),
            UnaryOp::Plus => Value::Num(self.js_number(&v)?),
            UnaryOp::BitNot => Value::Num(f64::from(!to_int32(self.js_number(&v)?))),
            UnaryOp::Void => Value::Undefined,
            UnaryOp::Typeof | UnaryOp::Delete => Value::Undefined,
        })
    }

    pub(crate) fn binary(&mut self, op: BinaryOp, l: &Value, r: &Value) -> R<Value> {
        use BinaryOp as B;
        Ok(match op {
            B::Add => {
                let lp = self.js_primitive(l, Hint::Default)?;
                let rp = self.js_primitive(r, Hint::Default)?;
                if matches!(lp, Value::Str(_)) || matches!(rp, Value::Str(_)) {
                    let mut s = self.js_string(&lp)?;
                    s.push_str(&self.js_string(&rp)?);
                    Self::check_string(s)?
                } else {
                    Value::Num(self.js_number(&lp)? + self.js_number(&rp)?)
                }
            }
            B::Sub => Value::Num(self.js_number(l)? - self.js_number(r)?),
            B::Mul => Value::Num(self.js_number(l)? * self.js_number(r)?),
            B::Div => Value::Num(self.js_number(l)? / self.js_number(r)?),
            B::Rem => Value::Num(self.js_number(l)? % self.js_number(r)?),
            B::Eq => Value::Bool(self.loose_eq(l, r)?),
            B::Ne => Value::Bool(!self.loose_eq(l, r)?),
            B::StrictEq => Value::Bool(strict_eq(l, r)),
            B::StrictNe => Value::Bool(!strict_eq(l, r)),
            B::Lt => Value::Bool(self.compare(l, r)? == Some(std::cmp::Ordering::Less)),
            B::Gt => Value::Bool(self.compare(l, r)? == Some(std::cmp::Ordering::Greater)),
            B::Le => Value::Bool(matches!(
                self.compare(l, r)?,
                Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
            )),
            B::Ge => Value::Bool(matches!(
                self.compare(l, r)?,
                Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
            )),
            B::In => {
                let key = self.js_string(l)?;
                Value::Bool(match r {
                    Value::Object(map) => map.borrow().contains_key(key.as_str()),
                    Value::Array(items) => {
                        key == "length"
                            || key.parse::<usize>().is_ok_and(|i| i < items.borrow().len())
                    }
                    Value::Global(_) | Value::Moment(_) | Value::Date(_) => {
                        !matches!(stdlib::get_property(self, r, &key)?, Value::Undefined)
                    }
                    _ => {
                        return Err(JsError::type_error(format!(
                            "Cannot use 'in' operator to search for \"{key}\" in {}",
                            to_display(r)
                        )))
                    }
                })
            }
            B::Instanceof => Value::Bool(match r {
                // Error objects are plain `{name, message}` objects here.
                Value::Global(Global::Error(kind)) => match l {
                    Value::Object(map) => match map.borrow().get("name") {
                        Some(Value::Str(name)) => *kind == "Error" || &**name == *kind,
                        _ => false,
                    },
                    _ => false,
                },
                Value::Global(g) => matches!(
                    (g, l),
                    (Global::Array, Value::Array(_))
                        | (Global::Date, Value::Date(_))
                        | (Global::Moment, Value::Moment(_))
                        | (Global::RegExp, Value::Regex(_))
                        | (
                            Global::Object,
                            Value::Object(_)
                                | Value::Array(_)
                                | Value::Date(_)
                                | Value::Moment(_)
                                | Value::Regex(_)
                                | Value::Function(_)
                        )
                ),
                Value::Function(_) => false,
                _ => {
                    return Err(JsError::type_error(
                        "right side of instanceof is not callable",
                    ))
                }
            }),
            B::BitAnd => self.int_op(l, r, |a, b| a & b)?,
            B::BitOr => self.int_op(l, r, |a, b| a | b)?,
            B::BitXor => self.int_op(l, r, |a, b| a ^ b)?,
            B::Shl => self.int_op(l, r, |a, b| a.wrapping_shl(b as u32 & 31))?,
            B::Shr => self.int_op(l, r, |a, b| a >> (b as u32 & 31))?,
            B::UShr => {
                let a = to_int32(self.js_number(l)?) as u32;
                let b = to_int32(self.js_number(r)?) as u32 & 31;
                Value::Num(f64::from(a >> b))
            }
        })
    }

    fn int_op(&mut self, l: &Value, r: &Value, f: impl Fn(i32, i32) -> i32) -> R<Value> {
        let a = to_int32(self.js_number(l)?);
        let b = to_int32(self.js_number(r)?);
        Ok(Value::Num(f64::from(f(a, b))))
    }

    fn compare(&mut self, l: &Value, r: &Value) -> R<Option<std::cmp::Ordering>> {
        let lp = self.js_primitive(l, Hint::Number)?;
        let rp = self.js_primitive(r, Hint::Number)?;
        if let (Value::Str(a), Value::Str(b)) = (&lp, &rp) {
            return Ok(Some(a.cmp(b)));
        }
        let a = self.js_number(&lp)?;
        let b = self.js_number(&rp)?;
        Ok(a.partial_cmp(&b))
    }

    /// ES5 `==` (11.9.3).
    pub(crate) fn loose_eq(&mut self, l: &Value, r: &Value) -> R<bool> {
        Ok(match (l, r) {
            (Value::Undefined | Value::Null, Value::Undefined | Value::Null) => true,
            (Value::Undefined | Value::Null, _) | (_, Value::Undefined | Value::Null) => false,
            (Value::Num(_), Value::Str(_)) | (Value::Str(_), Value::Num(_)) => {
                self.js_number(l)? == self.js_number(r)?
            }
            (Value::Bool(b), _) => {
                let n = Value::Num(if *b { 1.0 } else { 0.0 });
                self.loose_eq(&n, r)?
            }
            (_, Value::Bool(b)) => {
                let n = Value::Num(if *b { 1.0 } else { 0.0 });
                self.loose_eq(l, &n)?
            }
            _ if l.is_primitive() && !r.is_primitive() => {
                let rp = self.js_primitive(r, Hint::Default)?;
                self.loose_eq(l, &rp)?
            }
            _ if !l.is_primitive() && r.is_primitive() => {
                let lp = self.js_primitive(l, Hint::Default)?;
                self.loose_eq(&lp, r)?
            }
            _ => strict_eq(l, r),
        })
    }

    pub(crate) fn js_primitive(&mut self, v: &Value, hint: Hint) -> R<Value> {
        Ok(match v {
            Value::Undefined | Value::Null | Value::Bool(_) | Value::Num(_) | Value::Str(_) => {
                v.clone()
            }
            Value::Array(items) => {
                let items = items.borrow().clone();
                // Arrays may contain themselves: the nesting bound stops the recursion.
                self.enter()?;
                let mut parts = Vec::with_capacity(items.len());
                for item in &items {
                    let part = if item.is_nullish() {
                        Ok(String::new())
                    } else {
                        self.js_string(item)
                    };
                    match part {
                        Ok(p) => parts.push(p),
                        Err(e) => {
                            self.leave();
                            return Err(e);
                        }
                    }
                }
                self.leave();
                Self::check_string(parts.join(","))?
            }
            Value::Object(_) => Value::str("[object Object]"),
            Value::Function(f) => Value::string(format!(
                "function {}() {{ ... }}",
                f.def.name.as_deref().unwrap_or("")
            )),
            Value::Native(n) => Value::string(format!("function {}() {{ [native code] }}", n.1)),
            Value::Global(g) => Value::string(match g {
                Global::Math => "[object Math]".into(),
                Global::Json => "[object JSON]".into(),
                Global::Scope => "[object Object]".into(),
                other => format!("function {other:?}() {{ [native code] }}"),
            }),
            Value::Moment(m) => match hint {
                Hint::String => Value::string(m.borrow().to_js_string()),
                Hint::Default | Hint::Number => Value::Num(m.borrow().value_of()),
            },
            Value::Date(ms) => match hint {
                Hint::Number => Value::Num(*ms),
                Hint::Default | Hint::String => {
                    Value::string(stdlib::date_to_string(*ms, &self.host.timezone))
                }
            },
            Value::Regex(r) => Value::string(r.to_js_string()),
        })
    }

    pub(crate) fn js_string(&mut self, v: &Value) -> R<String> {
        Ok(match v {
            Value::Undefined => "undefined".into(),
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Num(n) => number_to_string(*n),
            Value::Str(s) => s.to_string(),
            other => {
                let p = self.js_primitive(other, Hint::String)?;
                self.js_string(&p)?
            }
        })
    }

    pub(crate) fn js_number(&mut self, v: &Value) -> R<f64> {
        Ok(match v {
            Value::Undefined => f64::NAN,
            Value::Null => 0.0,
            Value::Bool(b) => f64::from(u8::from(*b)),
            Value::Num(n) => *n,
            Value::Str(s) => string_to_number(s),
            other => {
                let p = self.js_primitive(other, Hint::Number)?;
                self.js_number(&p)?
            }
        })
    }

    /// `this.name(args)`: own function properties of objects first, then built-in methods.
    pub(crate) fn call_method(&mut self, this: &Value, name: &str, args: &[Value]) -> R<Value> {
        match this {
            Value::Undefined | Value::Null => Err(JsError::type_error(format!(
                "Cannot read property \"{name}\" of {}",
                to_display(this)
            ))),
            Value::Object(map) => {
                let f = map.borrow().get(name).cloned();
                match f {
                    Some(f) => self.call_value(&f, this.clone(), args),
                    None => stdlib::call_method(self, this, name, args),
                }
            }
            _ => stdlib::call_method(self, this, name, args),
        }
    }

    pub(crate) fn call_value(&mut self, f: &Value, this: Value, args: &[Value]) -> R<Value> {
        match f {
            Value::Function(c) => self.call_closure(c, this, args),
            Value::Native(n) => {
                let (bound, name) = &**n;
                stdlib::call_method(self, bound, name, args)
            }
            Value::Global(g) => stdlib::call_global(self, *g, args),
            other => Err(JsError::type_error(format!(
                "{} is not a function",
                to_display(other)
            ))),
        }
    }

    fn construct(&mut self, f: &Value, args: &[Value]) -> R<Value> {
        match f {
            Value::Global(g) => stdlib::construct_global(self, *g, args),
            Value::Function(c) => {
                let obj = Value::object(IndexMap::new());
                let result = self.call_closure(c, obj.clone(), args)?;
                Ok(if result.is_primitive() { obj } else { result })
            }
            other => Err(JsError::type_error(format!(
                "{} is not a constructor",
                to_display(other)
            ))),
        }
    }

    pub(crate) fn call_closure(&mut self, c: &Closure, this: Value, args: &[Value]) -> R<Value> {
        if self.depth >= MAX_CALL_DEPTH {
            return Err(JsError::range_error(format!(
                "maximum call depth of {MAX_CALL_DEPTH} exceeded"
            )));
        }
        let env = Rc::new(Env {
            vars: RefCell::new(IndexMap::new()),
            parent: c.env.clone(),
        });
        {
            let mut vars = env.vars.borrow_mut();
            vars.insert("this".into(), this);
            for (i, p) in c.def.params.iter().enumerate() {
                vars.insert(p.clone(), args.get(i).cloned().unwrap_or(Value::Undefined));
            }
            vars.insert("arguments".into(), Value::array(args.to_vec()));
            if let Some(name) = &c.def.name {
                vars.entry(name.clone()).or_insert_with(|| {
                    Value::Function(Rc::new(Closure {
                        def: c.def.clone(),
                        env: c.env.clone(),
                    }))
                });
            }
        }
        hoist(&c.def.body, &env);
        self.depth += 1;
        let result = self.exec_block(&c.def.body, &env);
        self.depth -= 1;
        Ok(match result? {
            Flow::Return(v) => v,
            Flow::Normal | Flow::Break | Flow::Continue => Value::Undefined,
        })
    }

    /// Runs top-level statements in their own scope (no `this` binding, so `this` is the
    /// params).
    #[inline(never)]
    fn run_program(&mut self, def: &FunctionDef) -> R<Value> {
        let env = Rc::new(Env {
            vars: RefCell::new(IndexMap::new()),
            parent: None,
        });
        hoist(&def.body, &env);
        Ok(match self.exec_block(&def.body, &env)? {
            Flow::Return(v) => v,
            Flow::Normal | Flow::Break | Flow::Continue => Value::Undefined,
        })
    }

    #[inline(never)]
    fn exec_switch(
        &mut self,
        subject: &Expr,
        cases: &[(Option<Expr>, Vec<Stmt>)],
        env: &Rc<Env>,
    ) -> R<Flow> {
        let e = Some(env);
        let v = self.eval(subject, e)?;
        let mut start = None;
        for (i, (test, _)) in cases.iter().enumerate() {
            if let Some(test) = test {
                let t = self.eval(test, e)?;
                if strict_eq(&v, &t) {
                    start = Some(i);
                    break;
                }
            }
        }
        let start = start.or_else(|| cases.iter().position(|(t, _)| t.is_none()));
        if let Some(start) = start {
            // Cases fall through until a `break`.
            for (_, body) in cases.iter().skip(start) {
                match self.exec_block(body, env)? {
                    Flow::Normal => {}
                    Flow::Break => break,
                    other => return Ok(other),
                }
            }
        }
        Ok(Flow::Normal)
    }

    /// The error a `throw x` raises, with a message for when nothing catches it.
    #[inline(never)]
    fn throw_value(&mut self, x: &Expr, env: &Rc<Env>) -> R<JsError> {
        let v = self.eval(x, Some(env))?;
        let message = match &v {
            Value::Object(map) => {
                let map = map.borrow();
                match (map.get("name"), map.get("message")) {
                    (Some(Value::Str(n)), Some(Value::Str(m))) => format!("{n}: {m}"),
                    (_, Some(Value::Str(m))) => format!("Error: {m}"),
                    _ => "uncaught exception: [object Object]".to_string(),
                }
            }
            other => format!("uncaught exception: {}", self.js_string(other)?),
        };
        Ok(JsError(Box::new(JsErrorData {
            message,
            thrown: Some(v),
            fatal: false,
        })))
    }

    #[inline(never)]
    fn exec_try(
        &mut self,
        body: &[Stmt],
        catch: Option<&(Rc<str>, Vec<Stmt>)>,
        finally: Option<&[Stmt]>,
        env: &Rc<Env>,
    ) -> R<Flow> {
        let mut result = self.exec_block(body, env);
        if let (Err(err), Some((name, handler))) = (&result, catch) {
            if !err.fatal {
                let caught = err.clone().caught_value();
                env.vars.borrow_mut().insert(name.clone(), caught);
                result = self.exec_block(handler, env);
            }
        }
        if let Some(finally) = finally {
            // A sandbox stop skips `finally` too: nothing may run after it.
            if !matches!(&result, Err(err) if err.fatal) {
                match self.exec_block(finally, env)? {
                    Flow::Normal => {}
                    other => return Ok(other),
                }
            }
        }
        result
    }

    fn exec_block(&mut self, body: &[Stmt], env: &Rc<Env>) -> R<Flow> {
        for s in body {
            match self.exec(s, env)? {
                Flow::Normal => {}
                other => return Ok(other),
            }
        }
        Ok(Flow::Normal)
    }

    fn exec(&mut self, s: &Stmt, env: &Rc<Env>) -> R<Flow> {
        self.enter()?;
        let r = self.exec_inner(s, env);
        self.leave();
        r
    }

    fn exec_inner(&mut self, s: &Stmt, env: &Rc<Env>) -> R<Flow> {
        let e = Some(env);
        match s {
            Stmt::Expr(x) => {
                self.eval(x, e)?;
            }
            Stmt::Var(decls) => {
                for (name, init) in decls {
                    if let Some(init) = init {
                        let v = self.eval(init, e)?;
                        env.vars.borrow_mut().insert(name.clone(), v);
                    }
                }
            }
            Stmt::Return(v) => {
                let v = match v {
                    Some(x) => self.eval(x, e)?,
                    None => Value::Undefined,
                };
                return Ok(Flow::Return(v));
            }
            Stmt::If(test, yes, no) => {
                if self.eval(test, e)?.truthy() {
                    return self.exec(yes, env);
                } else if let Some(no) = no {
                    return self.exec(no, env);
                }
            }
            Stmt::For {
                init,
                test,
                update,
                body,
            } => {
                if let Some(init) = init {
                    self.exec(init, env)?;
                }
                loop {
                    if let Some(test) = test {
                        if !self.eval(test, e)?.truthy() {
                            break;
                        }
                    }
                    match self.exec(body, env)? {
                        Flow::Break => break,
                        Flow::Return(v) => return Ok(Flow::Return(v)),
                        Flow::Normal | Flow::Continue => {}
                    }
                    if let Some(update) = update {
                        self.eval(update, e)?;
                    }
                    self.tick()?;
                }
            }
            Stmt::ForIn(name, obj, body) => {
                let o = self.eval(obj, e)?;
                let keys: Vec<Value> = match &o {
                    Value::Object(map) => {
                        map.borrow().keys().map(|k| Value::Str(k.clone())).collect()
                    }
                    Value::Array(items) => (0..items.borrow().len())
                        .map(|i| Value::string(i.to_string()))
                        .collect(),
                    Value::Str(s) => (0..s.chars().count())
                        .map(|i| Value::string(i.to_string()))
                        .collect(),
                    _ => Vec::new(),
                };
                for k in keys {
                    self.assign_name(name, k, e);
                    match self.exec(body, env)? {
                        Flow::Break => break,
                        Flow::Return(v) => return Ok(Flow::Return(v)),
                        Flow::Normal | Flow::Continue => {}
                    }
                }
            }
            Stmt::While(test, body) => {
                while self.eval(test, e)?.truthy() {
                    match self.exec(body, env)? {
                        Flow::Break => break,
                        Flow::Return(v) => return Ok(Flow::Return(v)),
                        Flow::Normal | Flow::Continue => {}
                    }
                }
            }
            Stmt::DoWhile(body, test) => loop {
                match self.exec(body, env)? {
                    Flow::Break => break,
                    Flow::Return(v) => return Ok(Flow::Return(v)),
                    Flow::Normal | Flow::Continue => {}
                }
                if !self.eval(test, e)?.truthy() {
                    break;
                }
            },
            Stmt::Block(body) => return self.exec_block(body, env),
            // Separate functions keep this frame small: it is on the stack once per nesting
            // level, and the 2 MiB stack budget depends on it.
            Stmt::Switch(subject, cases) => return self.exec_switch(subject, cases, env),
            Stmt::Throw(x) => return Err(self.throw_value(x, env)?),
            Stmt::Try {
                body,
                catch,
                finally,
            } => return self.exec_try(body, catch.as_ref(), finally.as_deref(), env),
            // Declarations were hoisted when the function was entered.
            Stmt::Function(_) | Stmt::Empty => {}
            Stmt::Break => return Ok(Flow::Break),
            Stmt::Continue => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }
}

/// `var` and function declarations exist from the start of their function (hoisting).
fn hoist(body: &[Stmt], env: &Rc<Env>) {
    super::ast::visit_declarations(body, &mut |d| match d {
        Declaration::Var(name) => {
            env.vars
                .borrow_mut()
                .entry(name.clone())
                .or_insert(Value::Undefined);
        }
        Declaration::Function(def) => {
            if let Some(name) = &def.name {
                let f = Value::Function(Rc::new(Closure {
                    def: def.clone(),
                    env: Some(env.clone()),
                }));
                env.vars.borrow_mut().insert(name.clone(), f);
            }
        }
        // Bound when the handler runs, not hoisted.
        Declaration::CatchParam(_) => {}
    });
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hint {
    Default,
    Number,
    String,
}

/// ES5 `===`.
pub(crate) fn strict_eq(l: &Value, r: &Value) -> bool {
    match (l, r) {
        (Value::Undefined, Value::Undefined) | (Value::Null, Value::Null) => true,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::Num(a), Value::Num(b)) => a == b,
        (Value::Str(a), Value::Str(b)) => a == b,
        _ => l.same_ref(r),
    }
}

/// A valid array length from a number (`new Array(n)`, `arr.length = n`).
pub(crate) fn array_len(n: f64) -> R<usize> {
    if n < 0.0 || n.fract() != 0.0 || !n.is_finite() {
        return Err(JsError::range_error("Invalid array length"));
    }
    if n > MAX_ARRAY_LEN as f64 {
        return Err(JsError::range_error(format!(
            "array longer than {MAX_ARRAY_LEN} elements"
        )));
    }
    Ok(n as usize)
}
