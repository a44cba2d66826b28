//! `loop>: N`: a generator; its `^sub` body is `+loop-0 … +loop-(N-1)`, each the `_do` block
//! with `_export: {i: k}`, and the task's `_parallel` copied onto `^sub`.

use super::{failed, Context, Error, Operator};
use crate::clock::BoxFuture;
use crate::diag::Span;
use crate::dig::{Key, Map, ParallelDef, TaskKind, Template, TemplatePart, Value, ValueKind};
use crate::engine::Outcome;
use crate::expr::JsonMap;
use serde_json::Value as Json;

pub struct Loop;

/// Digdag's task limit: a loop may not generate more children than this.
pub const MAX_CHILDREN: i64 = 1000;

impl Operator for Loop {
    fn run(&self, ctx: Context) -> BoxFuture<'static, Result<Outcome, Error>> {
        Box::pin(async move { Ok(expand(&ctx).unwrap_or_else(|message| failed(message, false))) })
    }
}

fn expand(ctx: &Context) -> Result<Outcome, String> {
    let count = ctx
        .param("count")
        .filter(|v| !v.is_null())
        .unwrap_or(&ctx.run.command);
    let count = as_count(count).ok_or_else(|| {
        format!(
            "loop> needs a number of iterations, found `{}`",
            super::json_text(count)
        )
    })?;
    if !(0..=MAX_CHILDREN).contains(&count) {
        return Err(format!(
            "loop> count {count} is out of range: it must be between 0 and {MAX_CHILDREN}"
        ));
    }
    let body = do_block(ctx)?;
    let body_entries = match &body.kind {
        ValueKind::Map(m) => m.entries.clone(),
        _ => return Err("loop> `_do` must be a map of tasks".into()),
    };
    let mut sub = Map::default();
    for k in 0..count {
        let mut entries = body_entries.clone();
        let i = value(ValueKind::Int(k));
        match entries.iter_mut().find(|(key, _)| key.name == "_export") {
            Some((
                _,
                Value {
                    kind: ValueKind::Map(export),
                    ..
                },
            )) => {
                export.entries.retain(|(key, _)| key.name != "i");
                export.entries.push((key("i"), i));
            }
            _ => {
                entries.retain(|(key, _)| key.name != "_export");
                let export = Map {
                    entries: vec![(key("i"), i)],
                };
                entries.push((key("_export"), value(ValueKind::Map(export))));
            }
        }
        sub.entries.push((
            key(&format!("+loop-{k}")),
            value(ValueKind::Map(Map { entries })),
        ));
    }
    if let Some(parallel) = parallel(ctx) {
        sub.entries.push((key("_parallel"), parallel));
    }
    Ok(Outcome::Succeeded {
        store: JsonMap::new(),
        reset_store: Vec::new(),
        export: JsonMap::new(),
        subtasks: Some(value(ValueKind::Map(sub))),
    })
}

fn as_count(v: &Json) -> Option<i64> {
    match v {
        Json::Number(n) => n.as_i64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn do_block(ctx: &Context) -> Result<Value, String> {
    block(ctx, "_do").ok_or_else(|| "loop> needs a `_do` block".into())
}

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
fn parallel(ctx: &Context) -> Option<Value> {
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

fn key(name: &str) -> Key {
    Key {
        name: name.to_string(),
        span: Span::NONE,
    }
}

fn value(kind: ValueKind) -> Value {
    Value {
        kind,
        span: Span::NONE,
    }
}

/// Rebuilds a value tree from stored JSON; strings become templates again so `${i}` in a
/// generated body is evaluated when its task runs.
fn from_json(json: &Json) -> Value {
    value(match json {
        Json::Null => ValueKind::Null,
        Json::Bool(b) => ValueKind::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => ValueKind::Int(i),
            None => ValueKind::Float(n.as_f64().unwrap_or_default()),
        },
        Json::String(s) => ValueKind::Str(template(s)),
        Json::Array(items) => ValueKind::Seq(items.iter().map(from_json).collect()),
        Json::Object(map) => ValueKind::Map(Map {
            entries: map.iter().map(|(k, v)| (key(k), from_json(v))).collect(),
        }),
    })
}

/// Splits `${...}` out of a string (braces nest; an unclosed `${` stays literal).
fn template(raw: &str) -> Template {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        let after = rest.get(start + 2..).unwrap_or_default();
        let mut depth = 1usize;
        let mut end = None;
        for (i, c) in after.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(end) = end else { break };
        literal.push_str(rest.get(..start).unwrap_or_default());
        if !literal.is_empty() {
            parts.push(TemplatePart::Literal(std::mem::take(&mut literal)));
        }
        parts.push(TemplatePart::Expr {
            source: after.get(..end).unwrap_or_default().to_string(),
            span: Span::NONE,
        });
        rest = after.get(end + 1..).unwrap_or_default();
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(TemplatePart::Literal(literal));
    }
    Template {
        raw: raw.to_string(),
        parts,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{context, manual_clock, run};
    use super::*;
    use crate::executor::spawn::FakeSpawner;
    use std::sync::Arc;

    #[tokio::test]
    async fn generates_children_with_index_export_and_parallel() {
        let dir = tempfile::tempdir().unwrap();
        let params =
            r#"{"_parallel": true, "_do": {"+task": {"echo>": "idx:${i}", "append_file": "out"}}}"#;
        let r = run("loop", 3.into(), params);
        let (ctx, _rx) = context(dir.path(), r, Arc::new(FakeSpawner::new()), manual_clock());
        let Outcome::Succeeded {
            subtasks: Some(sub),
            ..
        } = Loop.run(ctx).await.unwrap()
        else {
            panic!("loop> must succeed with subtasks");
        };
        let expect = serde_json::json!({
            "+loop-0": {"+task": {"echo>": "idx:${i}", "append_file": "out"}, "_export": {"i": 0}},
            "+loop-1": {"+task": {"echo>": "idx:${i}", "append_file": "out"}, "_export": {"i": 1}},
            "+loop-2": {"+task": {"echo>": "idx:${i}", "append_file": "out"}, "_export": {"i": 2}},
            "_parallel": true,
        });
        assert_eq!(sub.to_json_raw(), expect);
        let sub = sub.as_map().unwrap();
        let echo = sub
            .get("+loop-0")
            .unwrap()
            .as_map()
            .unwrap()
            .get("+task")
            .unwrap();
        let msg = echo
            .as_map()
            .unwrap()
            .get("echo>")
            .unwrap()
            .as_template()
            .unwrap();
        assert!(msg.has_expr());
    }

    #[tokio::test]
    async fn bad_counts_fail() {
        let dir = tempfile::tempdir().unwrap();
        for count in [Json::from("x"), Json::from(MAX_CHILDREN + 1)] {
            let r = run("loop", count, r#"{"_do": {"+t": {"nop>": null}}}"#);
            let (ctx, _rx) = context(dir.path(), r, Arc::new(FakeSpawner::new()), manual_clock());
            assert!(matches!(
                Loop.run(ctx).await.unwrap(),
                Outcome::Failed { .. }
            ));
        }
    }

    #[test]
    fn templates_split() {
        let t = template("a${x}b${ {y:1}.y }c${unclosed");
        assert_eq!(
            t.parts,
            vec![
                TemplatePart::Literal("a".into()),
                TemplatePart::Expr {
                    source: "x".into(),
                    span: Span::NONE
                },
                TemplatePart::Literal("b".into()),
                TemplatePart::Expr {
                    source: " {y:1}.y ".into(),
                    span: Span::NONE
                },
                TemplatePart::Literal("c${unclosed".into()),
            ]
        );
    }
}
