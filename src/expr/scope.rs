//! Layer merging and lazy, memoised evaluation of params: a top-level param that another
//! expression references is evaluated first, so key order does not matter, and a reference
//! cycle is an error naming the keys.

use super::eval::{Host, Interp, JsError, Resolver};
use super::parse::parse_cached;
use super::template;
use super::value::{from_json, Value};
use super::{Error, JsonMap, Layer};
use crate::diag::Span;
use crate::dig::{self, TemplatePart, ValueKind};
use indexmap::IndexMap;
use std::cell::RefCell;

/// Keys whose blocks are task bodies for later: never evaluated, at any depth.
const NO_EVALUATE: &[&str] = &["_do", "_else_do"];
/// Nesting charged for following a reference to another param (its frames are bigger than
/// one expression node's).
const REFERENCE_WEIGHT: usize = 8;
/// Keys that are separate tasks, not params of this one.
const NOT_PARAMS: &[&str] = &["_error", "_check"];

/// A merged, not yet evaluated param tree.
pub(crate) enum Node<'a> {
    /// A non-map value of a `.dig` file; strings are templates.
    Raw(&'a dig::Value),
    /// JSON kept verbatim (plain layers and `_do` blocks).
    Plain(&'a serde_json::Value),
    /// A `_do` block of a file, kept unevaluated.
    Verbatim(&'a dig::Value),
    /// JSON whose strings are templates.
    RawJson(&'a serde_json::Value),
    Map(IndexMap<&'a str, Node<'a>>),
}

impl<'a> Node<'a> {
    fn from_dig(v: &'a dig::Value) -> Node<'a> {
        match &v.kind {
            ValueKind::Map(m) => {
                let mut map = IndexMap::with_capacity(m.len());
                for (k, v) in &m.entries {
                    let node = if NO_EVALUATE.contains(&k.name.as_str()) {
                        Node::Verbatim(v)
                    } else {
                        Node::from_dig(v)
                    };
                    merge_into(&mut map, &k.name, node);
                }
                Node::Map(map)
            }
            _ => Node::Raw(v),
        }
    }

    fn from_json(v: &'a serde_json::Value, templated: bool) -> Node<'a> {
        match v {
            serde_json::Value::Object(m) => {
                let mut map = IndexMap::with_capacity(m.len());
                for (k, v) in m {
                    let node = if NO_EVALUATE.contains(&k.as_str()) {
                        Node::Plain(v)
                    } else {
                        Node::from_json(v, templated)
                    };
                    merge_into(&mut map, k, node);
                }
                Node::Map(map)
            }
            _ if templated => Node::RawJson(v),
            _ => Node::Plain(v),
        }
    }
}

/// Later wins; two maps merge deeply; an overridden key keeps its first position.
fn merge_into<'a>(map: &mut IndexMap<&'a str, Node<'a>>, key: &'a str, node: Node<'a>) {
    match (map.get_mut(key), node) {
        (Some(Node::Map(old)), Node::Map(new)) => {
            for (k, v) in new {
                merge_into(old, k, v);
            }
        }
        (Some(slot), node) => *slot = node,
        (None, node) => {
            map.insert(key, node);
        }
    }
}

/// Merges the layers into one top-level map of nodes.
pub(crate) fn merge<'a>(layers: &'a [Layer<'a>]) -> IndexMap<&'a str, Node<'a>> {
    let mut top = IndexMap::new();
    for layer in layers {
        match layer {
            Layer::Raw(m) => {
                for (k, v) in &m.entries {
                    if NOT_PARAMS.contains(&k.name.as_str()) {
                        continue;
                    }
                    let node = if NO_EVALUATE.contains(&k.name.as_str()) {
                        Node::Verbatim(v)
                    } else {
                        Node::from_dig(v)
                    };
                    merge_into(&mut top, &k.name, node);
                }
            }
            Layer::Plain(m) => {
                for (k, v) in m.iter() {
                    merge_into(&mut top, k, Node::from_json(v, false));
                }
            }
            Layer::RawJson(m) => {
                for (k, v) in m.iter() {
                    if NOT_PARAMS.contains(&k.as_str()) {
                        continue;
                    }
                    let node = if NO_EVALUATE.contains(&k.as_str()) {
                        Node::Plain(v)
                    } else {
                        Node::from_json(v, true)
                    };
                    merge_into(&mut top, k, node);
                }
            }
        }
    }
    top
}

enum Slot<'a> {
    Pending(Node<'a>),
    InProgress,
    Done(serde_json::Value, Option<Value>),
}

/// The params of one evaluation, resolved on demand.
pub(crate) struct Scope<'a> {
    names: IndexMap<&'a str, usize>,
    slots: RefCell<Vec<Slot<'a>>>,
    /// Keys being evaluated, outermost first (for cycle messages).
    stack: RefCell<Vec<usize>>,
    /// The first real failure; JavaScript only sees a short message.
    failure: RefCell<Option<Error>>,
    host: &'a Host,
}

impl<'a> Scope<'a> {
    pub(crate) fn new(top: IndexMap<&'a str, Node<'a>>, host: &'a Host) -> Scope<'a> {
        let mut names = IndexMap::with_capacity(top.len());
        let mut slots = Vec::with_capacity(top.len());
        for (i, (k, node)) in top.into_iter().enumerate() {
            names.insert(k, i);
            slots.push(Slot::Pending(node));
        }
        Scope {
            names,
            slots: RefCell::new(slots),
            stack: RefCell::new(Vec::new()),
            failure: RefCell::new(None),
            host,
        }
    }

    /// Evaluates every key, in order, into plain JSON.
    pub(crate) fn evaluate_all(&self) -> Result<JsonMap, Error> {
        let mut out = JsonMap::with_capacity(self.names.len());
        for (name, &i) in &self.names {
            self.resolve(i)?;
            if let Some(Slot::Done(v, _)) = self.slots.borrow().get(i) {
                out.insert((*name).to_string(), v.clone());
            }
        }
        Ok(out)
    }

    fn resolve(&self, i: usize) -> Result<(), Error> {
        let pending = {
            let mut slots = self.slots.borrow_mut();
            let Some(slot) = slots.get_mut(i) else {
                return Ok(());
            };
            match std::mem::replace(slot, Slot::InProgress) {
                Slot::Pending(node) => node,
                done @ Slot::Done(..) => {
                    *slot = done;
                    return Ok(());
                }
                Slot::InProgress => return Err(self.cycle_error(i)),
            }
        };
        // A reference evaluates another param on the same native stack: charge it to the
        // shared nesting budget so long reference chains cannot overflow the stack.
        let result = match self.host.enter(REFERENCE_WEIGHT) {
            Ok(()) => {
                self.stack.borrow_mut().push(i);
                let r = self.eval_node(&pending);
                self.stack.borrow_mut().pop();
                self.host.leave(REFERENCE_WEIGHT);
                r
            }
            Err(e) => Err(Error::Eval {
                source_text: self
                    .names
                    .get_index(i)
                    .map_or(String::new(), |(k, _)| (*k).to_string()),
                message: format!("params reference each other too deeply: {}", e.message),
                span: Span::NONE,
            }),
        };
        let value = match result {
            Ok(v) => v,
            Err(e) => {
                // Leave the slot pending so a later reference reports the same failure.
                if let Some(slot) = self.slots.borrow_mut().get_mut(i) {
                    *slot = Slot::Pending(pending);
                }
                return Err(e);
            }
        };
        if let Some(slot) = self.slots.borrow_mut().get_mut(i) {
            *slot = Slot::Done(value, None);
        }
        Ok(())
    }

    fn cycle_error(&self, i: usize) -> Error {
        let stack = self.stack.borrow();
        let start = stack.iter().position(|&s| s == i).unwrap_or(0);
        let mut chain: Vec<&str> = stack[start..]
            .iter()
            .filter_map(|&s| self.names.get_index(s).map(|(k, _)| *k))
            .collect();
        if let Some((k, _)) = self.names.get_index(i) {
            chain.push(k);
        }
        Error::Cycle {
            chain: chain.join(" -> "),
        }
    }

    pub(crate) fn eval_node(&self, node: &Node<'_>) -> Result<serde_json::Value, Error> {
        use serde_json::Value as J;
        Ok(match node {
            Node::Plain(v) => (*v).clone(),
            Node::Verbatim(v) => v.to_json_raw(),
            Node::Map(m) => {
                let mut out = JsonMap::with_capacity(m.len());
                for (k, v) in m {
                    out.insert((*k).to_string(), self.eval_node(v)?);
                }
                J::Object(out)
            }
            Node::Raw(v) => self.eval_dig(v)?,
            Node::RawJson(v) => self.eval_json(v)?,
        })
    }

    pub(crate) fn eval_dig(&self, v: &dig::Value) -> Result<serde_json::Value, Error> {
        use serde_json::Value as J;
        Ok(match &v.kind {
            ValueKind::Str(t) => {
                let mut out = String::new();
                for part in &t.parts {
                    match part {
                        TemplatePart::Literal(s) => out.push_str(s),
                        TemplatePart::Expr { source, span } => {
                            out.push_str(&self.eval_expr(source, *span)?);
                        }
                    }
                }
                J::String(out)
            }
            ValueKind::Seq(items) => J::Array(
                items
                    .iter()
                    .map(|i| self.eval_dig(i))
                    .collect::<Result<_, _>>()?,
            ),
            ValueKind::Map(_) => self.eval_node(&Node::from_dig(v))?,
            _ => v.to_json_raw(),
        })
    }

    fn eval_json(&self, v: &serde_json::Value) -> Result<serde_json::Value, Error> {
        use serde_json::Value as J;
        Ok(match v {
            J::String(s) if s.contains('$') => {
                let t = dig::template::split(s, Span::NONE);
                let mut out = String::new();
                for part in &t.parts {
                    match part {
                        TemplatePart::Literal(l) => out.push_str(l),
                        TemplatePart::Expr { source, span } => {
                            out.push_str(&self.eval_expr(source, *span)?);
                        }
                    }
                }
                J::String(out)
            }
            J::Array(items) => J::Array(
                items
                    .iter()
                    .map(|i| self.eval_json(i))
                    .collect::<Result<_, _>>()?,
            ),
            J::Object(_) => self.eval_node(&Node::from_json(v, true))?,
            other => other.clone(),
        })
    }

    /// Evaluates one `${...}` body to its text.
    pub(crate) fn eval_expr(&self, source: &str, span: Span) -> Result<String, Error> {
        let fail = |message: String| Error::Eval {
            source_text: source.to_string(),
            message,
            span,
        };
        let ast = parse_cached(source).map_err(|e| {
            fail(format!(
                "syntax error at offset {}: {}",
                e.offset, e.message
            ))
        })?;
        let mut interp = Interp::new(self, self.host);
        let result = interp
            .run(&ast)
            .and_then(|v| template::render(&mut interp, &v));
        result.map_err(|e| {
            // A failure inside a referenced param is reported as itself, not as this one.
            self.failure
                .borrow_mut()
                .take()
                .unwrap_or_else(|| fail(e.into_message()))
        })
    }
}

impl Resolver for Scope<'_> {
    fn lookup(&self, name: &str) -> Result<Option<Value>, JsError> {
        let Some(&i) = self.names.get(name) else {
            return Ok(None);
        };
        if let Err(e) = self.resolve(i) {
            let message = e.to_string();
            self.failure.borrow_mut().get_or_insert(e);
            return Err(JsError::other(message));
        }
        let mut slots = self.slots.borrow_mut();
        let Some(Slot::Done(json, cache)) = slots.get_mut(i) else {
            return Ok(None);
        };
        // Arrays and objects are copied per lookup: a script that mutates one (`a.push(1)`)
        // must not change what other expressions see.
        if json.is_array() || json.is_object() {
            return Ok(Some(from_json(json)));
        }
        Ok(Some(cache.get_or_insert_with(|| from_json(json)).clone()))
    }
}
