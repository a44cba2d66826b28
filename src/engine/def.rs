//! A lossless serde mirror of [`TaskDef`], so each task row holds its own definition.
//!
//! Generated (`^sub`) trees and group-retry epochs are then self-contained: recovery and retries
//! re-instantiate from rows alone, never from the `.dig` files or an operator re-run. Spans are
//! kept so a rebuilt value still points at its file when the file is loaded again.

use crate::diag::{FileId, Span};
use crate::dig::{
    IntervalType, Key, Map, OperatorCall, ParallelDef, RetryDef, RetryPolicy, TaskDef, TaskKind,
    Template, TemplatePart, Value, ValueKind,
};
use serde::{Deserialize, Serialize};
use std::time::Duration;

type SpanJ = (u32, u32, u32);

fn span_j(s: Span) -> SpanJ {
    (s.file.0, s.start, s.end)
}

fn span_from(s: SpanJ) -> Span {
    Span {
        file: FileId(s.0),
        start: s.1,
        end: s.2,
    }
}

#[derive(Serialize, Deserialize)]
enum PartJ {
    L(String),
    E(String, SpanJ),
}

#[derive(Serialize, Deserialize)]
enum KindJ {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// Infinity or NaN, by its bits: JSON numbers cannot hold them (serde_json writes null).
    NonFinite(u64),
    Str(String, Vec<PartJ>),
    Seq(Vec<ValueJ>),
    Map(Vec<(String, SpanJ, ValueJ)>),
}

#[derive(Serialize, Deserialize)]
struct ValueJ(KindJ, SpanJ);

fn value_j(v: &Value) -> ValueJ {
    let kind = match &v.kind {
        ValueKind::Null => KindJ::Null,
        ValueKind::Bool(b) => KindJ::Bool(*b),
        ValueKind::Int(i) => KindJ::Int(*i),
        ValueKind::Float(f) if f.is_finite() => KindJ::Float(*f),
        ValueKind::Float(f) => KindJ::NonFinite(f.to_bits()),
        ValueKind::Str(t) => KindJ::Str(
            t.raw.clone(),
            t.parts
                .iter()
                .map(|p| match p {
                    TemplatePart::Literal(s) => PartJ::L(s.clone()),
                    TemplatePart::Expr { source, span } => PartJ::E(source.clone(), span_j(*span)),
                })
                .collect(),
        ),
        ValueKind::Seq(items) => KindJ::Seq(items.iter().map(value_j).collect()),
        ValueKind::Map(m) => KindJ::Map(map_j(m)),
    };
    ValueJ(kind, span_j(v.span))
}

fn value_from(v: ValueJ) -> Value {
    let kind = match v.0 {
        KindJ::Null => ValueKind::Null,
        KindJ::Bool(b) => ValueKind::Bool(b),
        KindJ::Int(i) => ValueKind::Int(i),
        KindJ::Float(f) => ValueKind::Float(f),
        KindJ::NonFinite(bits) => ValueKind::Float(f64::from_bits(bits)),
        KindJ::Str(raw, parts) => ValueKind::Str(Template {
            raw,
            parts: parts
                .into_iter()
                .map(|p| match p {
                    PartJ::L(s) => TemplatePart::Literal(s),
                    PartJ::E(source, span) => TemplatePart::Expr {
                        source,
                        span: span_from(span),
                    },
                })
                .collect(),
        }),
        KindJ::Seq(items) => ValueKind::Seq(items.into_iter().map(value_from).collect()),
        KindJ::Map(m) => ValueKind::Map(map_from(m)),
    };
    Value {
        kind,
        span: span_from(v.1),
    }
}

fn map_j(m: &Map) -> Vec<(String, SpanJ, ValueJ)> {
    m.entries
        .iter()
        .map(|(k, v)| (k.name.clone(), span_j(k.span), value_j(v)))
        .collect()
}

fn map_from(m: Vec<(String, SpanJ, ValueJ)>) -> Map {
    Map {
        entries: m
            .into_iter()
            .map(|(name, span, v)| {
                (
                    Key {
                        name,
                        span: span_from(span),
                    },
                    value_from(v),
                )
            })
            .collect(),
    }
}

#[derive(Serialize, Deserialize)]
struct OpJ {
    name: String,
    command: ValueJ,
    supported: bool,
    do_block: Option<ValueJ>,
    else_do_block: Option<ValueJ>,
    span: SpanJ,
}

#[derive(Serialize, Deserialize)]
struct PolicyJ {
    limit: u32,
    interval_ms: u64,
    exponential: bool,
    max_interval_ms: Option<u64>,
    deadline_ms: Option<u64>,
}

#[derive(Serialize, Deserialize)]
enum RetryJ {
    Policy(PolicyJ),
    Expr(ValueJ),
}

#[derive(Serialize, Deserialize)]
enum ParallelJ {
    All(bool),
    Limit(u32),
    Expr(ValueJ),
}

#[derive(Serialize, Deserialize)]
struct DefJ {
    name: String,
    children: Option<Vec<DefJ>>,
    op: Option<OpJ>,
    export: Vec<(String, SpanJ, ValueJ)>,
    params: Vec<(String, SpanJ, ValueJ)>,
    retry: Option<RetryJ>,
    parallel: Option<ParallelJ>,
    background: bool,
    after: Vec<String>,
    error: Option<Box<DefJ>>,
    check: Option<Box<DefJ>>,
    timeout_ms: Option<u64>,
    disable: bool,
    span: SpanJ,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn def_j(d: &TaskDef) -> DefJ {
    let (children, op) = match &d.kind {
        TaskKind::Group(c) => (Some(c.iter().map(def_j).collect()), None),
        TaskKind::Operator(op) => (
            None,
            Some(OpJ {
                name: op.name.clone(),
                command: value_j(&op.command),
                supported: op.supported,
                do_block: op.do_block.as_ref().map(value_j),
                else_do_block: op.else_do_block.as_ref().map(value_j),
                span: span_j(op.span),
            }),
        ),
    };
    DefJ {
        name: d.name.clone(),
        children,
        op,
        export: map_j(&d.export),
        params: map_j(&d.params),
        retry: d.retry.as_ref().map(|r| match r {
            RetryDef::Policy(p) => RetryJ::Policy(PolicyJ {
                limit: p.limit,
                interval_ms: ms(p.interval),
                exponential: p.interval_type == IntervalType::Exponential,
                max_interval_ms: p.max_interval.map(ms),
                deadline_ms: p.deadline.map(ms),
            }),
            RetryDef::Expr(v) => RetryJ::Expr(value_j(v)),
        }),
        parallel: d.parallel.as_ref().map(|p| match p {
            ParallelDef::All(b) => ParallelJ::All(*b),
            ParallelDef::Limit(n) => ParallelJ::Limit(*n),
            ParallelDef::Expr(v) => ParallelJ::Expr(value_j(v)),
        }),
        background: d.background,
        after: d.after.clone(),
        error: d.error.as_ref().map(|e| Box::new(def_j(e))),
        check: d.check.as_ref().map(|e| Box::new(def_j(e))),
        timeout_ms: d.timeout.map(ms),
        disable: d.disable,
        span: span_j(d.span),
    }
}

fn def_from(d: DefJ) -> Result<TaskDef, String> {
    let kind = match (d.children, d.op) {
        (Some(c), None) => TaskKind::Group(c.into_iter().map(def_from).collect::<Result<_, _>>()?),
        (None, Some(op)) => TaskKind::Operator(Box::new(OperatorCall {
            name: op.name,
            command: value_from(op.command),
            supported: op.supported,
            do_block: op.do_block.map(value_from),
            else_do_block: op.else_do_block.map(value_from),
            span: span_from(op.span),
        })),
        (Some(_), Some(_)) | (None, None) => {
            return Err(format!(
                "task `{}` must be exactly one of group or operator",
                d.name
            ))
        }
    };
    Ok(TaskDef {
        name: d.name,
        kind,
        export: map_from(d.export),
        params: map_from(d.params),
        retry: d.retry.map(|r| match r {
            RetryJ::Policy(p) => RetryDef::Policy(RetryPolicy {
                limit: p.limit,
                interval: Duration::from_millis(p.interval_ms),
                interval_type: if p.exponential {
                    IntervalType::Exponential
                } else {
                    IntervalType::Constant
                },
                max_interval: p.max_interval_ms.map(Duration::from_millis),
                deadline: p.deadline_ms.map(Duration::from_millis),
            }),
            RetryJ::Expr(v) => RetryDef::Expr(value_from(v)),
        }),
        parallel: d.parallel.map(|p| match p {
            ParallelJ::All(b) => ParallelDef::All(b),
            ParallelJ::Limit(n) => ParallelDef::Limit(n),
            ParallelJ::Expr(v) => ParallelDef::Expr(value_from(v)),
        }),
        background: d.background,
        after: d.after,
        error: d.error.map(|e| def_from(*e).map(Box::new)).transpose()?,
        check: d.check.map(|e| def_from(*e).map(Box::new)).transpose()?,
        timeout: d.timeout_ms.map(Duration::from_millis),
        disable: d.disable,
        span: span_from(d.span),
    })
}

/// Serializes a definition subtree for a `tasks.definition` column.
pub fn to_json(def: &TaskDef) -> String {
    // Serializing plain structs of strings and numbers cannot fail (no maps with non-string
    // keys, no custom serializers); a failure would be a serde_json bug.
    serde_json::to_string(&def_j(def)).unwrap_or_else(|_| String::from("null"))
}

/// Serializes an `_export:` map for a `tasks.export_def` column.
pub fn map_to_json(map: &Map) -> String {
    serde_json::to_string(&map_j(map)).unwrap_or_else(|_| String::from("[]"))
}

/// Reads back a `tasks.export_def` column.
pub fn map_from_json(text: &str) -> Result<Map, crate::store::Error> {
    let j: Vec<(String, SpanJ, ValueJ)> =
        crate::store::json::from_str(text).map_err(|source| crate::store::Error::Json {
            what: "task export",
            source,
        })?;
    Ok(map_from(j))
}

/// Reads back a `tasks.definition` column.
pub fn from_json(text: &str) -> Result<TaskDef, crate::store::Error> {
    let j: DefJ =
        crate::store::json::from_str(text).map_err(|source| crate::store::Error::Json {
            what: "task definition",
            source,
        })?;
    def_from(j).map_err(|detail| crate::store::Error::Corrupt {
        what: "task definition",
        detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testkit::{group, op};

    #[test]
    fn definition_round_trips_losslessly() {
        let mut t = op("+a", "sh", "echo ${x}");
        t.retry = Some(RetryDef::Policy(RetryPolicy {
            limit: 3,
            interval: Duration::from_secs(2),
            interval_type: IntervalType::Exponential,
            max_interval: Some(Duration::from_secs(9)),
            deadline: None,
        }));
        t.timeout = Some(Duration::from_millis(1500));
        let mut g = group("+wf", vec![t, op("+b", "echo", "hi")]);
        g.parallel = Some(ParallelDef::Limit(2));
        g.error = Some(Box::new(op("^error", "echo", "oops")));
        let back = from_json(&to_json(&g)).unwrap();
        assert_eq!(format!("{back:?}"), format!("{g:?}"));
    }

    fn with_param(mut t: TaskDef, value: ValueKind) -> TaskDef {
        let key = Key {
            name: "v".into(),
            span: Span::NONE,
        };
        let value = Value {
            kind: value,
            span: Span::NONE,
        };
        t.params.entries.push((key, value));
        t
    }

    #[test]
    fn infinities_and_nan_round_trip() {
        for f in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1.5] {
            let t = with_param(op("+a", "echo", "${v}"), ValueKind::Float(f));
            let back = from_json(&to_json(&t)).unwrap();
            match &back.params.entries[0].1.kind {
                ValueKind::Float(g) => assert_eq!(g.to_bits(), f.to_bits()),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn definitions_as_deep_as_a_dig_file_allows_round_trip() {
        // A value nested `MAX_DEPTH` mappings deep costs four JSON levels a mapping, past
        // serde_json's default limit of 128.
        let mut value = ValueKind::Int(1);
        for _ in 0..crate::dig::MAX_DEPTH {
            let key = Key {
                name: "k".into(),
                span: Span::NONE,
            };
            let inner = Value {
                kind: value,
                span: Span::NONE,
            };
            value = ValueKind::Map(Map {
                entries: vec![(key, inner)],
            });
        }
        let t = group("+wf", vec![with_param(op("+a", "echo", "hi"), value)]);
        let text = to_json(&t);
        assert!(serde_json::from_str::<serde_json::Value>(&text).is_err());
        let back = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || format!("{:?}", from_json(&text).unwrap()))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(back, format!("{t:?}"));
    }
}
