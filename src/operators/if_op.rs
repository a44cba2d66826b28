//! `if>: BOOLEAN`: a generator whose `^sub` is `_do` when true and `_else_do` when false,
//! verbatim (nothing is exported); a missing or empty chosen block generates nothing.

use super::subtasks::block;
use super::{failed, Context, Error, Operator};
use crate::clock::BoxFuture;
use crate::dig::ValueKind;
use crate::engine::Outcome;
use crate::expr::JsonMap;
use serde_json::Value as Json;

pub struct If;

impl Operator for If {
    fn run(&self, ctx: Context) -> BoxFuture<'static, Result<Outcome, Error>> {
        Box::pin(async move { Ok(choose(&ctx).unwrap_or_else(|message| failed(message, false))) })
    }
}

fn choose(ctx: &Context) -> Result<Outcome, String> {
    let condition = match &ctx.run.command {
        Json::Bool(b) => *b,
        Json::String(s) if s.eq_ignore_ascii_case("true") => true,
        Json::String(s) if s.eq_ignore_ascii_case("false") => false,
        other => {
            return Err(format!(
                "if> needs `true` or `false`, found `{}`",
                super::json_text(other)
            ))
        }
    };
    let do_block = block(ctx, "_do");
    let else_block = block(ctx, "_else_do");
    if do_block.is_none() && else_block.is_none() {
        return Err("if> needs `_do` or `_else_do`".into());
    }
    let chosen = if condition { do_block } else { else_block };
    let subtasks = chosen.filter(|b| match &b.kind {
        ValueKind::Map(m) => !m.is_empty(),
        ValueKind::Null => false,
        _ => true,
    });
    Ok(Outcome::Succeeded {
        store: JsonMap::new(),
        reset_store: Vec::new(),
        export: JsonMap::new(),
        subtasks,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{context, manual_clock, run};
    use super::*;
    use crate::executor::spawn::FakeSpawner;
    use std::sync::Arc;

    async fn check(command: Json, params: &str) -> Outcome {
        let dir = tempfile::tempdir().unwrap();
        let r = run("if", command, params);
        let (ctx, _rx) = context(dir.path(), r, Arc::new(FakeSpawner::new()), manual_clock());
        If.run(ctx).await.unwrap()
    }

    fn sub(outcome: &Outcome) -> Option<Json> {
        match outcome {
            Outcome::Succeeded { subtasks, .. } => subtasks.as_ref().map(|v| v.to_json_raw()),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn picks_the_block_by_condition() {
        let both = r#"{"_do": {"echo>": "yes"}, "_else_do": {"echo>": "no"}}"#;
        let yes = check(true.into(), both).await;
        assert_eq!(sub(&yes), Some(serde_json::json!({"echo>": "yes"})));
        let no = check("false".into(), both).await;
        assert_eq!(sub(&no), Some(serde_json::json!({"echo>": "no"})));
        let nothing = check(false.into(), r#"{"_do": {"echo>": "yes"}}"#).await;
        assert_eq!(sub(&nothing), None);
    }

    #[tokio::test]
    async fn rejects_non_booleans_and_missing_blocks() {
        assert!(matches!(
            check(1.into(), r#"{"_do": {"nop>": null}}"#).await,
            Outcome::Failed { .. }
        ));
        assert!(matches!(
            check(true.into(), "{}").await,
            Outcome::Failed { .. }
        ));
    }
}
