//! `for_range>: {from, to, step | slices}`: a generator over `[from, to)` in steps; each child
//! is `_do` with `_export: {range: {from, to, index}}`, named `+range-from=A&to=B`.

use super::subtasks::{block, body_entries, child, generated, key, literal};
use super::{failed, json_text, Context, Error, Operator};
use crate::clock::BoxFuture;
use crate::engine::Outcome;
use serde_json::Value as Json;

pub struct ForRange;

impl Operator for ForRange {
    fn run(&self, ctx: Context) -> BoxFuture<'static, Result<Outcome, Error>> {
        Box::pin(async move { Ok(expand(&ctx).unwrap_or_else(|message| failed(message, false))) })
    }
}

fn expand(ctx: &Context) -> Result<Outcome, String> {
    let spec = match &ctx.run.command {
        Json::Object(m) => m.clone(),
        Json::String(s) => match serde_json::from_str::<Json>(s) {
            Ok(Json::Object(m)) => m,
            _ => {
                return Err(format!(
                    "for_range> needs a map with from, to and step or slices, found `{s}`"
                ))
            }
        },
        other => {
            return Err(format!(
                "for_range> needs a map with from, to and step or slices, found `{}`",
                json_text(other)
            ))
        }
    };
    let int = |name: &str| -> Result<Option<i64>, String> {
        match spec.get(name) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or(format!("for_range> `{name}` must be an integer")),
            Some(Json::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| format!("for_range> `{name}` must be an integer, found `{s}`")),
            Some(other) => Err(format!(
                "for_range> `{name}` must be an integer, found `{other}`"
            )),
        }
    };
    let from = int("from")?.ok_or("for_range> needs `from`")?;
    let to = int("to")?.ok_or("for_range> needs `to`")?;
    let step = match (int("step")?, int("slices")?) {
        (Some(step), None) if step >= 1 => step,
        (None, Some(slices)) if slices >= 1 => {
            let span = (to - from).max(0);
            (span + slices - 1) / slices
        }
        (Some(_), Some(_)) => return Err("for_range> takes `step` or `slices`, not both".into()),
        (None, None) => return Err("for_range> needs `step` or `slices`".into()),
        _ => return Err("for_range> `step` and `slices` must be at least 1".into()),
    };
    let body = block(ctx, "_do").ok_or("for_range> needs a `_do` block")?;
    let body = body_entries(&body, "for_range")?;
    let limit = super::subtasks::generate_limit(ctx);
    let mut children = Vec::new();
    let mut a = from;
    let mut index: i64 = 0;
    while step > 0 && a < to {
        if index >= limit {
            return Err(format!(
                "for_range> would generate more than {limit} tasks (the room left under the \
                 attempt's task limit; raise it with `spade run --task-limit N`)"
            ));
        }
        let b = a.saturating_add(step).min(to);
        let range = serde_json::json!({"from": a, "to": b, "index": index});
        let export = vec![(key("range"), literal(&range))];
        children.push((
            key(&format!("+range-from={a}&to={b}")),
            child(&body, export),
        ));
        a = b;
        index += 1;
    }
    Ok(generated(ctx, children))
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{context, manual_clock, run};
    use super::*;
    use crate::executor::spawn::FakeSpawner;
    use std::sync::Arc;

    async fn names(command: Json) -> Result<Vec<String>, String> {
        let dir = tempfile::tempdir().unwrap();
        let r = run("for_range", command, r#"{"_do": {"echo>": "do"}}"#);
        let (ctx, _rx) = context(dir.path(), r, Arc::new(FakeSpawner::new()), manual_clock());
        match ForRange.run(ctx).await.unwrap() {
            Outcome::Succeeded { subtasks, .. } => Ok(subtasks
                .map(|v| {
                    v.to_json_raw()
                        .as_object()
                        .unwrap()
                        .keys()
                        .cloned()
                        .collect()
                })
                .unwrap_or_default()),
            Outcome::Failed { message, .. } => Err(message),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn steps_and_slices() {
        assert_eq!(
            names(serde_json::json!({"from": 0, "to": 4, "slices": 4}))
                .await
                .unwrap(),
            [
                "+range-from=0&to=1",
                "+range-from=1&to=2",
                "+range-from=2&to=3",
                "+range-from=3&to=4"
            ]
        );
        assert_eq!(
            names(serde_json::json!({"from": 1, "to": 6, "step": 2}))
                .await
                .unwrap(),
            [
                "+range-from=1&to=3",
                "+range-from=3&to=5",
                "+range-from=5&to=6"
            ]
        );
        assert_eq!(
            names(serde_json::json!({"from": 0, "to": 10, "slices": 3}))
                .await
                .unwrap(),
            [
                "+range-from=0&to=4",
                "+range-from=4&to=8",
                "+range-from=8&to=10"
            ]
        );
        assert!(names(serde_json::json!({"from": 0, "to": 4}))
            .await
            .is_err());
        assert!(
            names(serde_json::json!({"from": 0, "to": 4, "step": 1, "slices": 2}))
                .await
                .is_err()
        );
    }
}
