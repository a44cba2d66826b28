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
#[derive(Clone)]
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
    match map.get_mut(key) {
        Some(slot) => merge_node(slot, node),
        None => {
            map.insert(key, node);
        }
    }
}

/// Merges `node` over `slot`: two maps merge deeply, anything else replaces.
fn merge_node<'a>(slot: &mut Node<'a>, node: Node<'a>) {
    match (slot, node) {
        (Node::Map(old), Node::Map(new)) => {
            for (k, v) in new {
                merge_into(old, k, v);
            }
        }
        (slot, node) => *slot = node,
    }
}

/// What each layer contributes to each top-level name, lowest layer first; names in order of
/// first appearance.
pub(crate) type Contributions<'a> = IndexMap<&'a str, Vec<Node<'a>>>;

/// Collects the layers' contributions per top-level name, unmerged: a param whose own template
/// refers to its name reads the version merged from the layers below it.
pub(crate) fn merge<'a>(layers: &'a [Layer<'a>]) -> Contributions<'a> {
    let mut top: Contributions<'a> = IndexMap::new();
    let mut add = |key: &'a str, node: Node<'a>| top.entry(key).or_default().push(node);
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
                    add(&k.name, node);
                }
            }
            Layer::Plain(m) => {
                for (k, v) in m.iter() {
                    add(k, Node::from_json(v, false));
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
                    add(k, node);
                }
            }
        }
    }
    top
}

enum Slot<'a> {
    /// Not evaluated; the node once built (kept after a failure, so it is not rebuilt).
    Pending(Option<Node<'a>>),
    InProgress,
    Done(serde_json::Value, Option<Value>),
}

/// One top-level name: what each layer contributes, and one slot per version, where version
/// `k` is contributions `0..=k` merged (the last one is the name's value).
struct Entry<'a> {
    contributions: Vec<Node<'a>>,
    versions: Vec<Slot<'a>>,
}

impl<'a> Entry<'a> {
    /// The merged node of version `k`, built on first use.
    fn build(&mut self, k: usize) -> Node<'a> {
        if self.contributions.len() == 1 {
            // The only version: nothing else needs the contribution, so no copy.
            return std::mem::replace(&mut self.contributions[0], Node::Map(IndexMap::new()));
        }
        let mut parts = self.contributions.iter().take(k + 1).cloned();
        let mut merged = parts.next().unwrap_or_else(|| Node::Map(IndexMap::new()));
        for part in parts {
            merge_node(&mut merged, part);
        }
        merged
    }

    /// The version a lookup sees: the value, or while versions are being evaluated (a param
    /// whose template names itself), the one below the lowest of them; `None` if there is none
    /// (a cycle).
    fn visible(&self) -> Option<usize> {
        match self
            .versions
            .iter()
            .position(|s| matches!(s, Slot::InProgress))
        {
            None => self.versions.len().checked_sub(1),
            Some(lowest) => lowest.checked_sub(1),
        }
    }
}

/// The params of one evaluation, resolved on demand.
pub(crate) struct Scope<'a> {
    names: IndexMap<&'a str, usize>,
    entries: RefCell<Vec<Entry<'a>>>,
    /// Keys being evaluated, outermost first (for cycle messages).
    stack: RefCell<Vec<usize>>,
    /// The first real failure; JavaScript only sees a short message.
    failure: RefCell<Option<Error>>,
    host: &'a Host,
}

impl<'a> Scope<'a> {
    pub(crate) fn new(top: Contributions<'a>, host: &'a Host) -> Scope<'a> {
        let mut names = IndexMap::with_capacity(top.len());
        let mut entries = Vec::with_capacity(top.len());
        for (i, (k, contributions)) in top.into_iter().enumerate() {
            names.insert(k, i);
            let versions = contributions.iter().map(|_| Slot::Pending(None)).collect();
            entries.push(Entry {
                contributions,
                versions,
            });
        }
        Scope {
            names,
            entries: RefCell::new(entries),
            stack: RefCell::new(Vec::new()),
            failure: RefCell::new(None),
            host,
        }
    }

    /// Evaluates every key, in order, into plain JSON.
    pub(crate) fn evaluate_all(&self) -> Result<JsonMap, Error> {
        let mut out = JsonMap::with_capacity(self.names.len());
        for (name, &i) in &self.names {
            let Some(k) = self.entries.borrow().get(i).and_then(Entry::visible) else {
                continue;
            };
            self.resolve(i, k)?;
            if let Some(Slot::Done(v, _)) =
                self.entries.borrow().get(i).and_then(|e| e.versions.get(k))
            {
                out.insert((*name).to_string(), v.clone());
            }
        }
        Ok(out)
    }

    /// Evaluates version `k` of name `i`, unless it is done.
    fn resolve(&self, i: usize, k: usize) -> Result<(), Error> {
        let pending = {
            let mut entries = self.entries.borrow_mut();
            let Some(entry) = entries.get_mut(i) else {
                return Ok(());
            };
            let Some(slot) = entry.versions.get_mut(k) else {
                return Ok(());
            };
            match std::mem::replace(slot, Slot::InProgress) {
                Slot::Pending(Some(node)) => node,
                Slot::Pending(None) => entry.build(k),
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
                source_text: self.name(i).to_string(),
                message: format!("params reference each other too deeply: {}", e.message),
                span: Span::NONE,
            }),
        };
        let value = match result {
            Ok(v) => v,
            Err(e) => {
                // Leave the slot pending so a later reference reports the same failure.
                self.set(i, k, Slot::Pending(Some(pending)));
                return Err(e);
            }
        };
        self.set(i, k, Slot::Done(value, None));
        Ok(())
    }

    fn set(&self, i: usize, k: usize, state: Slot<'a>) {
        if let Some(slot) = self
            .entries
            .borrow_mut()
            .get_mut(i)
            .and_then(|e| e.versions.get_mut(k))
        {
            *slot = state;
        }
    }

    fn name(&self, i: usize) -> &'a str {
        self.names.get_index(i).map_or("", |(k, _)| *k)
    }

    /// `a -> b -> a`: from the innermost evaluation of name `i` (the lowest of its versions
    /// in progress) back to `i`.
    fn cycle_error(&self, i: usize) -> Error {
        let stack = self.stack.borrow();
        let start = stack.iter().rposition(|&s| s == i).unwrap_or(0);
        let mut chain: Vec<&str> = stack[start..].iter().map(|&s| self.name(s)).collect();
        chain.push(self.name(i));
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
        let visible = self.entries.borrow().get(i).map(Entry::visible);
        let resolved = match visible {
            None => return Ok(None),
            Some(Some(k)) => self.resolve(i, k).map(|()| k),
            // Every version of the name is being evaluated: nothing below to read.
            Some(None) => Err(self.cycle_error(i)),
        };
        let k = match resolved {
            Ok(k) => k,
            Err(e) => {
                let message = e.to_string();
                self.failure.borrow_mut().get_or_insert(e);
                return Err(JsError::other(message));
            }
        };
        let mut entries = self.entries.borrow_mut();
        let Some(Slot::Done(json, cache)) = entries.get_mut(i).and_then(|e| e.versions.get_mut(k))
        else {
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

#[cfg(test)]
mod tests {
    use super::super::tests::{ctx_in, dig_map};
    use super::super::{eval_params, Error, Layer};
    use crate::dig;

    /// Evaluates `.dig` texts as layers, lowest first.
    fn eval(layers: &[&str]) -> Result<serde_json::Value, Error> {
        let docs: Vec<dig::Value> = layers.iter().map(|t| dig_map(t)).collect();
        let layers: Vec<Layer<'_>> = docs
            .iter()
            .map(|d| Layer::Raw(d.as_map().expect("a map")))
            .collect();
        eval_params(&layers, &ctx_in("UTC")).map(|e| serde_json::Value::Object(e.params))
    }

    fn json(text: &str) -> serde_json::Value {
        serde_json::from_str(text).expect("test JSON")
    }

    #[test]
    fn own_param_naming_itself_reads_the_layers_below() {
        let got = eval(&["x: 1\n", "echo>: ${x}\nx: ${x}\n"]).expect("evaluates");
        assert_eq!(got, json(r#"{"x": "1", "echo>": "1"}"#));
    }

    #[test]
    fn each_layer_reads_the_one_below_it() {
        let got = eval(&["n: 1\n", "n: ${n + 1}\n", "n: ${n * 10}\nm: ${n}\n"]).expect("evaluates");
        assert_eq!(got, json(r#"{"n": "20", "m": "20"}"#));
    }

    #[test]
    fn nested_self_reference_reads_the_map_merged_below() {
        let got =
            eval(&["cfg:\n  a: 1\n  b: 2\n", "cfg:\n  a: ${cfg.a + cfg.b}\n"]).expect("evaluates");
        assert_eq!(got, json(r#"{"cfg": {"a": "3", "b": 2}}"#));
    }

    #[test]
    fn a_lower_template_is_evaluated_in_the_consumers_scope() {
        let got = eval(&["x: ${y}\n", "x: pre-${x}\ny: 7\n"]).expect("evaluates");
        assert_eq!(got, json(r#"{"x": "pre-7", "y": 7}"#));
    }

    #[test]
    fn a_sibling_reference_back_reads_the_lower_version() {
        let got = eval(&["a: 5\n", "a: ${b}\nb: ${a}\n"]).expect("evaluates");
        assert_eq!(got, json(r#"{"a": "5", "b": "5"}"#));
    }

    #[test]
    fn a_cycle_with_nothing_below_stays_an_error_naming_the_keys() {
        let err = eval(&["a: ${b}\nb: ${a}\n"]).expect_err("a cycle");
        assert_eq!(
            err.to_string(),
            "reference cycle between params: `a -> b -> a`"
        );
        let err = eval(&["x: 1\n", "a: ${b}\nb: ${a}\n"]).expect_err("a cycle");
        assert_eq!(
            err.to_string(),
            "reference cycle between params: `a -> b -> a`"
        );
        let err = eval(&["cfg:\n  a: 1\n  b: ${cfg.a}\n"]).expect_err("a cycle");
        assert_eq!(
            err.to_string(),
            "reference cycle between params: `cfg -> cfg`"
        );
    }

    #[test]
    fn a_cycle_through_a_lower_version_is_an_error() {
        let err = eval(&["a: ${b}\n", "a: ${a}\nb: ${a}\n"]).expect_err("a cycle");
        assert_eq!(
            err.to_string(),
            "reference cycle between params: `a -> b -> a`"
        );
    }

    #[test]
    fn a_failure_in_a_lower_version_is_reported_as_itself() {
        let err = eval(&["x: ${nope}\n", "x: ${x}\n"]).expect_err("fails");
        assert_eq!(
            err.to_string(),
            "failed to evaluate `${nope}`: ReferenceError: \"nope\" is not defined"
        );
    }
}
