//! `for_each>: {k1: [..], k2: [..]}`: a generator over the cartesian product of the lists
//! (first key outermost); each child is `_do` with `_export: {k1: v, k2: w}`.
//!
//! Child names follow Digdag's real ones, `+for-<keyIdx>=<keyTag>=<valIdx>=<valTag>` joined by
//! `&`, where a tag is the first 8 characters of the key or value, URL-encoded.

use super::subtasks::{block, body_entries, child, generate_limit, generated, key, literal};
use super::{failed, json_text, Context, Error, Operator};
use crate::clock::BoxFuture;
use crate::engine::Outcome;
use serde_json::Value as Json;

pub struct ForEach;

impl Operator for ForEach {
    fn run(&self, ctx: Context) -> BoxFuture<'static, Result<Outcome, Error>> {
        Box::pin(async move { Ok(expand(&ctx).unwrap_or_else(|message| failed(message, false))) })
    }
}

fn expand(ctx: &Context) -> Result<Outcome, String> {
    let lists = parse_lists(&ctx.run.command)?;
    let limit = generate_limit(ctx);
    let mut total: i64 = 1;
    for (_, values) in &lists {
        total = total.saturating_mul(i64::try_from(values.len()).unwrap_or(i64::MAX));
        if total > limit {
            return Err(format!(
                "for_each> would generate more than {limit} tasks (the room left under the \
                 attempt's task limit; raise it with `spade run --task-limit N`)"
            ));
        }
    }
    let body = block(ctx, "_do").ok_or("for_each> needs a `_do` block")?;
    let body = body_entries(&body, "for_each")?;
    let mut children = Vec::new();
    if !lists.is_empty() {
        // Odometer over the value indices, last key fastest.
        let mut idx = vec![0usize; lists.len()];
        'outer: loop {
            if lists.iter().any(|(_, v)| v.is_empty()) {
                break;
            }
            let mut name = String::from("+for-");
            let mut export = Vec::new();
            for (k, ((key_name, values), &i)) in lists.iter().zip(&idx).enumerate() {
                let v = &values[i.min(values.len() - 1)];
                if k > 0 {
                    name.push('&');
                }
                name.push_str(&format!("{k}={}={i}={}", tag(key_name), tag(&json_text(v))));
                export.push((key(key_name), literal(v)));
            }
            children.push((key(&name), child(&body, export)));
            let mut pos = lists.len();
            loop {
                if pos == 0 {
                    break 'outer;
                }
                pos -= 1;
                idx[pos] += 1;
                if idx[pos] < lists[pos].1.len() {
                    break;
                }
                idx[pos] = 0;
            }
        }
    }
    Ok(generated(ctx, children))
}

/// The command's map of lists; the map and each list may also be JSON text.
fn parse_lists(command: &Json) -> Result<Vec<(String, Vec<Json>)>, String> {
    let map = match command {
        Json::Object(m) => m.clone(),
        Json::String(s) => match serde_json::from_str::<Json>(s) {
            Ok(Json::Object(m)) => m,
            _ => return Err(format!("for_each> needs a map of lists, found `{s}`")),
        },
        other => {
            return Err(format!(
                "for_each> needs a map of lists, found `{}`",
                json_text(other)
            ))
        }
    };
    map.into_iter()
        .map(|(k, v)| {
            let list = match v {
                Json::Array(items) => items,
                Json::String(s) => match serde_json::from_str::<Json>(&s) {
                    Ok(Json::Array(items)) => items,
                    _ => return Err(format!("for_each> `{k}` must be a list, found `{s}`")),
                },
                other => {
                    return Err(format!(
                        "for_each> `{k}` must be a list, found `{}`",
                        json_text(&other)
                    ))
                }
            };
            Ok((k, list))
        })
        .collect()
}

/// The first 8 characters, URL-encoded as Java's `URLEncoder` does, with `%20` for spaces.
fn tag(text: &str) -> String {
    let short: String = text.chars().take(8).collect();
    let mut out = String::new();
    for b in short.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'*' | b'_') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{context, manual_clock, run};
    use super::*;
    use crate::executor::spawn::FakeSpawner;
    use std::sync::Arc;

    async fn expand_json(command: Json, params: &str) -> Option<Json> {
        let dir = tempfile::tempdir().unwrap();
        let r = run("for_each", command, params);
        let (ctx, _rx) = context(dir.path(), r, Arc::new(FakeSpawner::new()), manual_clock());
        match ForEach.run(ctx).await.unwrap() {
            Outcome::Succeeded { subtasks, .. } => subtasks.map(|v| v.to_json_raw()),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn cartesian_product_with_digdag_names() {
        let got = expand_json(
            serde_json::json!({"a": "[1,2]", "b": ["x y", "${z}"]}),
            r#"{"_do": {"echo>": "${a}"}, "_parallel": true}"#,
        )
        .await
        .unwrap();
        let expect = serde_json::json!({
            "+for-0=a=0=1&1=b=0=x%20y": {"echo>": "${a}", "_export": {"a": 1, "b": "x y"}},
            "+for-0=a=0=1&1=b=1=%24%7Bz%7D": {"echo>": "${a}", "_export": {"a": 1, "b": "${z}"}},
            "+for-0=a=1=2&1=b=0=x%20y": {"echo>": "${a}", "_export": {"a": 2, "b": "x y"}},
            "+for-0=a=1=2&1=b=1=%24%7Bz%7D": {"echo>": "${a}", "_export": {"a": 2, "b": "${z}"}},
            "_parallel": true,
        });
        assert_eq!(got, expect);
        let names: Vec<&String> = got.as_object().unwrap().keys().collect();
        assert_eq!(names[0], "+for-0=a=0=1&1=b=0=x%20y", "first key outermost");
    }

    #[tokio::test]
    async fn empty_list_generates_nothing() {
        assert_eq!(
            expand_json(serde_json::json!({"a": []}), r#"{"_do": {"nop>": null}}"#).await,
            None
        );
    }

    #[test]
    fn tags_escape_like_digdag() {
        assert_eq!(tag("!?"), "%21%3F");
        assert_eq!(tag("+ "), "%2B%20");
        assert_eq!(tag("namenamename"), "namename");
    }
}
