//! The spanned value tree of a `.dig` file: YAML subset nodes whose strings are split templates.

use crate::diag::Span;

/// A string split into literal text and `${...}` expressions (Digdag's template rules:
/// `$$` is a literal `$`, an unclosed `${` stays literal, `${secret:...}` stays literal).
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    /// The decoded string value as YAML gives it (escapes resolved, before template splitting).
    pub raw: String,
    pub parts: Vec<TemplatePart>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TemplatePart {
    Literal(String),
    /// The JavaScript source between `${` and the matching `}`, and where it is in the file.
    /// For scalars with escapes (double-quoted, folded) the span is the whole scalar.
    Expr {
        source: String,
        span: Span,
    },
}

impl Template {
    /// True when the string has at least one `${...}` to evaluate.
    pub fn has_expr(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, TemplatePart::Expr { .. }))
    }
}

/// A key of a mapping, with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    pub name: String,
    pub span: Span,
}

/// An insertion-ordered mapping. Duplicate keys are rejected by the parser, so names are unique.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Map {
    pub entries: Vec<(Key, Value)>,
}

impl Map {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == name)
            .map(|(_, v)| v)
    }

    pub fn get_entry(&self, name: &str) -> Option<&(Key, Value)> {
        self.entries.iter().find(|(k, _)| k.name == name)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// One node: a scalar with its typed reading, a sequence or a mapping.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub kind: ValueKind,
    pub span: Span,
}

/// Scalars are typed as Digdag's YAML loader types them (see `grammar/dig.md`): only plain
/// scalars get non-string types; every string, plain or quoted, is a [`Template`].
#[derive(Clone, Debug, PartialEq)]
pub enum ValueKind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Template),
    Seq(Vec<Value>),
    Map(Map),
}

impl Value {
    pub fn as_map(&self) -> Option<&Map> {
        match &self.kind {
            ValueKind::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_template(&self) -> Option<&Template> {
        match &self.kind {
            ValueKind::Str(t) => Some(t),
            _ => None,
        }
    }

    /// Converts to plain JSON without evaluating anything: strings keep their raw text.
    pub fn to_json_raw(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.kind {
            ValueKind::Null => J::Null,
            ValueKind::Bool(b) => J::Bool(*b),
            ValueKind::Int(i) => J::from(*i),
            // JSON has no infinity or NaN; Jackson, which writes what Digdag stores, quotes
            // them (`QUOTE_NON_NUMERIC_NUMBERS`), so a task reads `.inf` as "Infinity".
            ValueKind::Float(f) => serde_json::Number::from_f64(*f)
                .map_or_else(|| J::String(super::scalar::java_double(*f)), J::Number),
            ValueKind::Str(t) => J::String(t.raw.clone()),
            ValueKind::Seq(items) => J::Array(items.iter().map(Value::to_json_raw).collect()),
            ValueKind::Map(m) => J::Object(
                m.entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json_raw()))
                    .collect(),
            ),
        }
    }
}
