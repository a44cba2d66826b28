//! `loop>: N`: a generator; its `^sub` body is `+loop-0 … +loop-(N-1)`, each the `_do` block
//! with `_export: {i: k}`, and the task's `_parallel` copied onto `^sub`.

use super::subtasks::{block, body_entries, child, generated, key, value};
use super::{failed, Context, Error, Operator};
use crate::clock::BoxFuture;
use crate::dig::ValueKind;
use crate::engine::Outcome;
use serde_json::Value as Json;

pub struct Loop;

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
    let limit = super::subtasks::generate_limit(ctx);
    if count < 0 || count > limit {
        return Err(format!(
            "loop> count {count} is out of range: it must be between 0 and {limit} (the room \
             left under the attempt's task limit; raise it with `spade run --task-limit N`)"
        ));
    }
    let body = block(ctx, "_do").ok_or("loop> needs a `_do` block")?;
    let body = body_entries(&body, "loop")?;
    let children = (0..count)
        .map(|k| {
            let export = vec![(key("i"), value(ValueKind::Int(k)))];
            (key(&format!("+loop-{k}")), child(&body, export))
        })
        .collect();
    Ok(generated(ctx, children))
}

fn as_count(v: &Json) -> Option<i64> {
    match v {
        Json::Number(n) => n.as_i64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
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
        for count in [Json::from("x"), Json::from(1001)] {
            let r = run("loop", count, r#"{"_do": {"+t": {"nop>": null}}}"#);
            let (ctx, _rx) = context(dir.path(), r, Arc::new(FakeSpawner::new()), manual_clock());
            assert!(matches!(
                Loop.run(ctx).await.unwrap(),
                Outcome::Failed { .. }
            ));
        }
    }
}
