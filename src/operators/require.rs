//! `require>: WORKFLOW`: waits for an attempt of another workflow (Digdag's
//! `RequireOperatorFactory`): it finds the attempt of that workflow's session, or starts one,
//! and succeeds when it succeeds.
//!
//! Unlike Digdag it never polls and never evaluates its options twice. A try reads its
//! options once, when it begins, and the engine stores them with the try in the transaction
//! that finds or starts the required attempt (`engine::require`). The transaction that
//! finishes the required attempt marks the try `done`, and the waiting run wakes up when the
//! driver of that attempt ends (`require_host`). A restart reads the stored try back.

use super::{failed, Context, Error, Operator};
use crate::clock::BoxFuture;
use crate::engine::require::{RerunOn, Spec};
use crate::engine::{Outcome, TaskRun};
use jiff::Timestamp;
use std::path::{Path, PathBuf};

pub struct Require;

impl Operator for Require {
    fn run(&self, ctx: Context) -> BoxFuture<'static, Result<Outcome, Error>> {
        Box::pin(async move {
            let Some(host) = super::require_host::installed() else {
                return Ok(failed(
                    "require> runs only under `spade run` or `spade serve`, which drive the \
                     required attempt",
                    false,
                ));
            };
            Ok(host.require(ctx).await)
        })
    }
}

/// Reads the options of one try from the run's evaluated params. `local` names the keys the
/// task sets itself: `retry_attempt_name` counts only there (Digdag ignores an inherited one).
/// `projects` are the project directories the store knows, for `project_name`.
pub fn spec_of(
    run: &TaskRun,
    local: &[String],
    caller_project: &Path,
    projects: &[PathBuf],
) -> Result<Spec, String> {
    let text = |key: &str| -> Option<String> {
        match run.params.get(key) {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(super::json_text(v)),
        }
    };
    let mut workflow = super::json_text(&run.command).trim().to_owned();
    if let Some(stem) = workflow.strip_suffix(".dig") {
        workflow = stem.to_owned();
    }
    if workflow.is_empty() {
        return Err("require> needs the name of the workflow to wait for".into());
    }
    // `project_id` is also a built-in (the caller's): only the task's own key asks for one.
    if local.iter().any(|k| k == "project_id") {
        return Err(
            "require> `project_id` is not supported: spade has no project ids; use \
             `project_name` (the name of the project's directory)"
                .into(),
        );
    }
    let project_dir = match text("project_name") {
        None => caller_project.to_path_buf(),
        Some(name) => project_named(&name, caller_project, projects)?,
    };
    let session_text = text("session_time").ok_or("require> has no session_time")?;
    let session_time: Timestamp = session_text.trim().parse().map_err(|e| {
        format!(
            "require> session_time `{session_text}` is not an ISO-8601 time with an offset \
             (such as 2026-01-02T00:00:00+09:00): {e}"
        )
    })?;
    let attempt_name = if local.iter().any(|k| k == "retry_attempt_name") {
        text("retry_attempt_name").filter(|n| !n.is_empty())
    } else {
        None
    };
    let rerun_on = match text("rerun_on") {
        None => RerunOn::None,
        Some(v) => RerunOn::parse(v.trim()).ok_or_else(|| {
            format!("require> rerun_on must be `none`, `failed` or `all`, not `{v}`")
        })?,
    };
    let ignore_failure = match run.params.get("ignore_failure") {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::String(s)) if s == "true" => true,
        Some(serde_json::Value::String(s)) if s == "false" => false,
        Some(other) => {
            return Err(format!(
                "require> ignore_failure must be true or false, not `{other}`"
            ))
        }
    };
    let params = match run.params.get("params") {
        None | Some(serde_json::Value::Null) => crate::expr::JsonMap::new(),
        Some(serde_json::Value::Object(m)) => m.clone(),
        Some(other) => {
            return Err(format!(
                "require> params must be a map of session params, not `{other}`"
            ))
        }
    };
    Ok(Spec {
        workflow,
        project_dir,
        session_time,
        attempt_name,
        rerun_on,
        ignore_failure,
        params,
    })
}

/// The project whose directory is named `name`: the caller's own, or one the store knows.
fn project_named(name: &str, caller: &Path, projects: &[PathBuf]) -> Result<PathBuf, String> {
    let base = |p: &Path| {
        std::fs::canonicalize(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
    };
    let mut candidates: Vec<PathBuf> = vec![caller.to_path_buf()];
    candidates.extend(projects.iter().cloned());
    let matching: Vec<&PathBuf> = candidates
        .iter()
        .filter(|p| base(p).as_deref() == Some(name))
        .collect();
    let mut unique: Vec<PathBuf> = Vec::new();
    for m in matching {
        let c = std::fs::canonicalize(m).unwrap_or_else(|_| m.clone());
        if !unique.contains(&c) {
            unique.push(c);
        }
    }
    match unique.len() {
        1 => Ok(unique.remove(0)),
        0 => {
            let names: Vec<String> = candidates.iter().filter_map(|p| base(p)).collect();
            let hint = crate::dig::suggest::did_you_mean(name, names.iter().map(String::as_str))
                .map(|n| format!("; did you mean `{n}`?"))
                .unwrap_or_default();
            Err(format!(
                "require> project_name `{name}`: this database knows no project of that name \
                 (a project is known once a workflow of it ran with this database){hint}"
            ))
        }
        _ => Err(format!(
            "require> project_name `{name}` is ambiguous: {}",
            unique
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The names of the `require>` targets of a task tree, in order (for `spade check`).
pub fn targets(def: &crate::dig::TaskDef, out: &mut Vec<String>) {
    use crate::dig::TaskKind;
    match &def.kind {
        TaskKind::Operator(op) if op.name == "require" => {
            let raw = op.command.to_json_raw();
            let shown = raw.as_str().map_or_else(|| raw.to_string(), str::to_owned);
            let shown = shown.strip_suffix(".dig").unwrap_or(&shown).to_owned();
            let project = def
                .params
                .get("project_name")
                .and_then(|v| v.to_json_raw().as_str().map(str::to_owned));
            out.push(match project {
                Some(p) => format!("{p}/{shown}"),
                None => shown,
            });
        }
        TaskKind::Operator(_) => {}
        TaskKind::Group(children) => children.iter().for_each(|c| targets(c, out)),
    }
    for special in [&def.error, &def.check].into_iter().flatten() {
        targets(special, out);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::run;
    use super::*;

    fn spec(params: &str, local: &[&str]) -> Result<Spec, String> {
        let r = run("require", "daily_load".into(), params);
        let mut local: Vec<String> = local.iter().map(|s| s.to_string()).collect();
        if let Some(serde_json::Value::String(k)) = r.params.get("local") {
            local.push(k.clone());
        }
        spec_of(&r, &local, Path::new("/p/proj"), &[])
    }

    #[test]
    fn defaults_are_digdags() {
        let s = spec(r#"{"session_time": "2026-01-02T00:00:00+09:00"}"#, &[]).unwrap();
        assert_eq!(s.workflow, "daily_load");
        assert_eq!(s.project_dir, PathBuf::from("/p/proj"));
        assert_eq!(s.session_time.to_string(), "2026-01-01T15:00:00Z");
        assert_eq!(s.attempt_name, None);
        assert_eq!(s.rerun_on, RerunOn::None);
        assert!(!s.ignore_failure);
        assert!(s.params.is_empty());
    }

    #[test]
    fn retry_attempt_name_counts_only_when_the_task_sets_it() {
        let p = r#"{"session_time": "2026-01-02T00:00:00Z", "retry_attempt_name": "x1"}"#;
        assert_eq!(spec(p, &[]).unwrap().attempt_name, None);
        assert_eq!(
            spec(p, &["retry_attempt_name"]).unwrap().attempt_name,
            Some("x1".into())
        );
    }

    #[test]
    fn bad_options_are_refused_with_what_is_accepted() {
        let cases = [
            (r#"{"session_time": "2026-01-02", "x": 1}"#, "offset"),
            (
                r#"{"session_time": "2026-01-02T00:00:00Z", "rerun_on": "sometimes"}"#,
                "`none`, `failed` or `all`",
            ),
            (
                r#"{"session_time": "2026-01-02T00:00:00Z", "ignore_failure": 3}"#,
                "true or false",
            ),
            (
                r#"{"session_time": "2026-01-02T00:00:00Z", "params": [1]}"#,
                "map of session params",
            ),
            (
                r#"{"session_time": "2026-01-02T00:00:00Z", "project_id": 4, "local": "project_id"}"#,
                "project_name",
            ),
            (
                r#"{"session_time": "2026-01-02T00:00:00Z", "project_name": "proj2"}"#,
                "did you mean `proj`",
            ),
        ];
        for (params, want) in cases {
            let e = spec(params, &[]).unwrap_err();
            assert!(e.contains(want), "{params}: {e}");
        }
    }

    #[test]
    fn rerun_on_and_flags_parse() {
        let s = spec(
            r#"{"session_time": "2026-01-02T00:00:00Z", "rerun_on": "failed", "ignore_failure": true, "params": {"k": 1}}"#,
            &[],
        )
        .unwrap();
        assert_eq!(s.rerun_on, RerunOn::Failed);
        assert!(s.ignore_failure);
        assert_eq!(s.params.get("k"), Some(&serde_json::json!(1)));
    }
}
