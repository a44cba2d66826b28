//! Building the `^sub` body of generator operators (`loop>`, `if>`, `for_each>`,
//! `for_range>`): the unevaluated `_do` blocks, `_export` of each child, `_parallel`.

use super::Context;
use crate::diag::Span;
use crate::dig::{Key, Map, ParallelDef, TaskKind, Template, TemplatePart, Value, ValueKind};
use crate::engine::Outcome;
use crate::expr::JsonMap;
use serde_json::Value as Json;

/// An unevaluated block (`_do`, `_else_do`) of a generator: from the file when the task is
/// static, else from the params the engine stored for a generated task.
pub(crate) fn block(ctx: &Context, key: &str) -> Option<Value> {
    if let Some(def) = &ctx.def {
        if let TaskKind::Operator(call) = &def.kind {
            let block = match key {
                "_do" => &call.do_block,
                _ => &call.else_do_block,
            };
            if let Some(block) = block {
                return Some(block.clone());
            }
        }
    }
    ctx.param(key).map(from_json)
}

/// `_parallel` of the loop task (evaluated param first, then the static definition).
pub(crate) fn parallel(ctx: &Context) -> Option<Value> {
    if let Some(p) = ctx.param("_parallel") {
        return Some(from_json(p));
    }
    match &ctx.def.as_ref()?.parallel {
        Some(ParallelDef::All(b)) => Some(value(ValueKind::Bool(*b))),
        Some(ParallelDef::Limit(n)) => Some(value(ValueKind::Map(Map {
            entries: vec![(key("limit"), value(ValueKind::Int(i64::from(*n))))],
        }))),
        Some(ParallelDef::Expr(v)) => Some(v.clone()),
        None => None,
    }
}

/// How many children a generator may create: the room left under the attempt's task limit
/// (counted before anything is built, so an absurd count allocates nothing). The `^sub` row and
/// nested generated tasks count too, which the engine checks when the body arrives.
pub(crate) fn generate_limit(ctx: &Context) -> i64 {
    i64::try_from(ctx.run.generate_limit).unwrap_or(i64::MAX)
}

pub(crate) fn key(name: &str) -> Key {
    Key {
        name: name.to_string(),
        span: Span::NONE,
    }
}

pub(crate) fn value(kind: ValueKind) -> Value {
    Value {
        kind,
        span: Span::NONE,
    }
}

/// Rebuilds a value tree from stored JSON; strings become templates again so `${i}` in a
/// generated body is evaluated when its task runs.
pub(crate) fn from_json(json: &Json) -> Value {
    value(match json {
        Json::Null => ValueKind::Null,
        Json::Bool(b) => ValueKind::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => ValueKind::Int(i),
            None => ValueKind::Float(n.as_f64().unwrap_or_default()),
        },
        Json::String(s) => ValueKind::Str(crate::dig::template::split(s, Span::NONE)),
        Json::Array(items) => ValueKind::Seq(items.iter().map(from_json).collect()),
        Json::Object(map) => ValueKind::Map(Map {
            entries: map.iter().map(|(k, v)| (key(k), from_json(v))).collect(),
        }),
    })
}

/// One child: the `_do` block's entries with `export` merged into its `_export`.
pub(crate) fn child(body: &[(Key, Value)], export: Vec<(Key, Value)>) -> Value {
    let mut entries = body.to_vec();
    match entries.iter_mut().find(|(k, _)| k.name == "_export") {
        Some((
            _,
            Value {
                kind: ValueKind::Map(existing),
                ..
            },
        )) => {
            for (k, v) in export {
                existing.entries.retain(|(e, _)| e.name != k.name);
                existing.entries.push((k, v));
            }
        }
        _ => {
            entries.retain(|(k, _)| k.name != "_export");
            entries.push((
                key("_export"),
                value(ValueKind::Map(Map { entries: export })),
            ));
        }
    }
    value(ValueKind::Map(Map { entries }))
}

/// The generator's outcome: `children` under `^sub`, plus the task's `_parallel`; no
/// children at all generates nothing.
pub(crate) fn generated(ctx: &Context, children: Vec<(Key, Value)>) -> Outcome {
    let subtasks = if children.is_empty() {
        None
    } else {
        let mut sub = Map { entries: children };
        if let Some(p) = parallel(ctx) {
            sub.entries.push((key("_parallel"), p));
        }
        Some(value(ValueKind::Map(sub)))
    };
    Outcome::Succeeded {
        store: JsonMap::new(),
        reset_store: Vec::new(),
        export: JsonMap::new(),
        subtasks,
    }
}

/// A generator's outcome whose `^sub` is a whole body (`call>`), or nothing when empty.
pub(crate) fn generated_body(body: Map) -> Outcome {
    Outcome::Succeeded {
        store: JsonMap::new(),
        reset_store: Vec::new(),
        export: JsonMap::new(),
        subtasks: (!body.is_empty()).then(|| value(ValueKind::Map(body))),
    }
}

/// The entries of a `_do` block that must be a map.
pub(crate) fn body_entries(block: &Value, op: &str) -> Result<Vec<(Key, Value)>, String> {
    match &block.kind {
        ValueKind::Map(m) => Ok(m.entries.clone()),
        _ => Err(format!("{op}> `_do` must be a map of tasks")),
    }
}

/// A JSON value as data: strings stay literal (a value `${x}` is text, not an expression).
pub(crate) fn literal(json: &Json) -> Value {
    match json {
        Json::String(s) => value(ValueKind::Str(Template {
            raw: s.clone(),
            parts: vec![TemplatePart::Literal(s.clone())],
        })),
        Json::Array(items) => value(ValueKind::Seq(items.iter().map(literal).collect())),
        Json::Object(map) => value(ValueKind::Map(Map {
            entries: map.iter().map(|(k, v)| (key(k), literal(v))).collect(),
        })),
        other => from_json(other),
    }
}
