//! `call>: FILE[.dig]`: a generator whose `^sub` is the called workflow's whole body (its
//! `_export`, `_retry`, `_error`, `_parallel` and tasks), loaded at run time; `timezone`,
//! `schedule` and `sla` are dropped.

use super::subtasks::{generated_body, key, literal};
use super::{failed, Context, Error, Operator};
use crate::clock::BoxFuture;
use crate::dig::{Map, Value, ValueKind};
use crate::engine::Outcome;
use std::path::{Component, Path, PathBuf};

pub struct Call;

impl Operator for Call {
    fn run(&self, ctx: Context) -> BoxFuture<'static, Result<Outcome, Error>> {
        // Like Digdag's BaseOperator, a file that cannot be loaded honours task-level `_retry`.
        Box::pin(async move { Ok(load(&ctx).unwrap_or_else(|message| failed(message, true))) })
    }
}

fn load(ctx: &Context) -> Result<Outcome, String> {
    let mut target = ctx.command_text();
    if target.trim().is_empty() {
        return Err("call> needs the workflow file to call".into());
    }
    if !target.ends_with(".dig") {
        target.push_str(".dig");
    }
    let relative = match ctx.param_text("_workdir") {
        Some(workdir) => Path::new(&workdir).join(&target),
        None => PathBuf::from(&target),
    };
    if relative.is_absolute()
        || relative
            .components()
            .any(|c| matches!(c, Component::ParentDir))
    {
        return Err(format!(
            "call> `{target}` must be a path inside the project directory"
        ));
    }
    let path = ctx.project_dir.join(&relative);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("call> cannot read {}: {e}", path.display()))?;
    let mut sources = crate::diag::SourceMap::new();
    let doc = crate::dig::parse_document(&mut sources, path.clone(), text).map_err(|diags| {
        let rendered: Vec<String> = diags.iter().map(|d| d.render(&sources)).collect();
        format!(
            "call> cannot parse {}:\n{}",
            path.display(),
            rendered.join("")
        )
    })?;
    let ValueKind::Map(mut body) = doc.kind else {
        return Err(format!(
            "call> {} must hold a workflow (a map)",
            path.display()
        ));
    };
    body.entries
        .retain(|(k, _)| !matches!(k.name.as_str(), "timezone" | "schedule" | "sla"));
    // A callee in a subdirectory runs its scripts from there.
    if let Some(dir) = relative.parent().filter(|d| !d.as_os_str().is_empty()) {
        let workdir = serde_json::Value::String(dir.to_string_lossy().into_owned());
        add_export(&mut body, "_workdir", literal(&workdir));
    }
    Ok(generated_body(body))
}

fn add_export(body: &mut Map, name: &str, value: Value) {
    match body.entries.iter_mut().find(|(k, _)| k.name == "_export") {
        Some((
            _,
            Value {
                kind: ValueKind::Map(export),
                ..
            },
        )) => {
            export.entries.retain(|(k, _)| k.name != name);
            export.entries.push((key(name), value));
        }
        _ => {
            body.entries.retain(|(k, _)| k.name != "_export");
            let export = Map {
                entries: vec![(key(name), value)],
            };
            body.entries.push((
                key("_export"),
                super::subtasks::value(ValueKind::Map(export)),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{context, manual_clock, run};
    use super::*;
    use crate::executor::spawn::FakeSpawner;
    use std::sync::Arc;

    async fn call(dir: &Path, target: &str) -> Outcome {
        let r = run("call", target.into(), "{}");
        let (ctx, _rx) = context(dir, r, Arc::new(FakeSpawner::new()), manual_clock());
        Call.run(ctx).await.unwrap()
    }

    #[tokio::test]
    async fn callee_body_becomes_sub_without_timezone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        std::fs::write(
            dir.path().join("sub/child.dig"),
            "timezone: Asia/Tokyo\n_retry: 2\n+a:\n  echo>: ${x}\n",
        )
        .unwrap();
        let Outcome::Succeeded {
            subtasks: Some(sub),
            ..
        } = call(dir.path(), "sub/child").await
        else {
            panic!("call> must generate the callee");
        };
        assert_eq!(
            sub.to_json_raw(),
            serde_json::json!({"_retry": 2, "+a": {"echo>": "${x}"}, "_export": {"_workdir": "sub"}})
        );
    }

    #[tokio::test]
    async fn missing_or_escaping_files_fail_retryably() {
        let dir = tempfile::tempdir().unwrap();
        for target in ["nope.dig", "../outside.dig"] {
            match call(dir.path(), target).await {
                Outcome::Failed { retryable, .. } => assert!(retryable),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}
