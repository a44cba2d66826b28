//! Digdag's JSON shapes (`RestSessionAttempt`, `RestSession`, `RestTask`, ...): camelCase
//! fields, ids as strings, instants in UTC (`2026-01-30T08:00:00Z`), session times with the
//! workflow zone's offset, and Digdag's state names.

use crate::store::api::{AttemptRow, ProjectRow, RunRow, SessionRow, TaskRow};
use serde_json::{json, Map, Value};

/// A project's name: its directory's last component.
pub fn project_name(dir: &str) -> String {
    std::path::Path::new(dir)
        .file_name()
        .map_or_else(|| dir.to_owned(), |n| n.to_string_lossy().into_owned())
}

pub fn project_ref(id: crate::ids::ProjectId, dir: &str) -> Value {
    json!({"id": id.to_string(), "name": project_name(dir)})
}

pub fn project(p: &ProjectRow) -> Value {
    json!({
        "id": p.id.to_string(),
        "name": project_name(&p.dir),
        "revision": Value::Null,
        "createdAt": instant(&p.created_at),
        "updatedAt": instant(&p.created_at),
        "deletedAt": Value::Null,
        "archiveType": "none",
        "archiveMd5": Value::Null,
    })
}

/// A stored instant (RFC 3339) as Digdag prints an `Instant`.
pub fn instant(text: &str) -> Value {
    match text.parse::<jiff::Timestamp>() {
        Ok(t) => Value::String(t.to_string()),
        Err(_) => Value::String(text.to_owned()),
    }
}

fn opt_instant(text: Option<&str>) -> Value {
    text.map_or(Value::Null, instant)
}

/// A session time in the workflow's zone, with its offset (`2026-01-30T00:00:00+09:00`).
pub fn session_time(text: &str, timezone: &str) -> Value {
    let tz = jiff::tz::TimeZone::get(timezone).unwrap_or(jiff::tz::TimeZone::UTC);
    match text.parse::<jiff::Timestamp>() {
        Ok(t) => Value::String(crate::schedule::format_rfc3339(t, &tz)),
        Err(_) => Value::String(text.to_owned()),
    }
}

/// Digdag's attempt `status` for spade's attempt state.
pub fn attempt_status(state: &str) -> &'static str {
    match state {
        "succeeded" => "success",
        "failed" => "error",
        "killed" => "killed",
        _ => "running",
    }
}

/// Digdag's task `state` for spade's: `succeeded` is `success`, `failed` is `error`, and a
/// task that never ran because an upstream failed (spade's `skipped`) is `blocked`, as Digdag
/// leaves it.
pub fn task_state(state: &str) -> &str {
    match state {
        "succeeded" => "success",
        "failed" => "error",
        "skipped" => "blocked",
        other => other,
    }
}

fn params(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::Object(Map::new()))
}

/// `RestSessionAttempt`.
pub fn attempt(a: &AttemptRow) -> Value {
    json!({
        "id": a.id.to_string(),
        "index": a.index,
        "project": project_ref(a.project, &a.project_dir),
        "workflow": {"name": a.workflow, "id": a.revision.to_string()},
        "sessionId": a.session.to_string(),
        "sessionUuid": a.session_uuid,
        "sessionTime": session_time(&a.session_time, &a.timezone),
        "retryAttemptName": if a.attempt_name.is_empty() { Value::Null } else { Value::String(a.attempt_name.clone()) },
        "done": a.state != "running",
        "success": a.state == "succeeded",
        "cancelRequested": a.cancel_requested || a.state == "killed",
        "params": params(&a.params),
        "createdAt": instant(&a.created_at),
        "finishedAt": opt_instant(a.finished_at.as_deref()),
        "status": attempt_status(&a.state),
    })
}

/// `RestSession`, with its newest attempt.
pub fn session(s: &SessionRow) -> Value {
    let timezone = s
        .last_attempt
        .as_ref()
        .map_or("UTC", |a| a.timezone.as_str());
    let last = s.last_attempt.as_ref().map_or(Value::Null, |a| {
        json!({
            "id": a.id.to_string(),
            "retryAttemptName": if a.attempt_name.is_empty() { Value::Null } else { Value::String(a.attempt_name.clone()) },
            "done": a.state != "running",
            "success": a.state == "succeeded",
            "cancelRequested": a.cancel_requested || a.state == "killed",
            "params": params(&a.params),
            "createdAt": instant(&a.created_at),
            "finishedAt": opt_instant(a.finished_at.as_deref()),
            "status": attempt_status(&a.state),
        })
    });
    json!({
        "id": s.id.to_string(),
        "project": project_ref(s.project, &s.project_dir),
        "workflow": {
            "name": s.workflow,
            "id": s.last_attempt.as_ref().map(|a| a.revision.to_string()),
        },
        "sessionUuid": s.session_uuid,
        "sessionTime": session_time(&s.session_time, timezone),
        "lastAttempt": last,
    })
}

/// `RestTask`, plus spade's `retryCount` and `finishedAt`.
pub fn task(t: &TaskRow, cancel_requested: bool) -> Value {
    let error = t
        .error
        .as_deref()
        .map_or_else(|| Value::Object(Map::new()), params);
    json!({
        "id": t.id.to_string(),
        "fullName": t.full_name,
        "parentId": t.parent.map(|p| p.to_string()),
        "config": {},
        "upstreams": t.upstreams.iter().map(|u| u.to_string()).collect::<Vec<_>>(),
        "state": task_state(&t.state),
        "cancelRequested": cancel_requested,
        "exportParams": t.export_params.as_deref().map_or_else(|| json!({}), params),
        "storeParams": t.store_params.as_deref().map_or_else(|| json!({}), params),
        "stateParams": {},
        "updatedAt": instant(&t.updated_at),
        "retryAt": t.retry_at_ms.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok()).map(|t| t.to_string()),
        "startedAt": opt_instant(t.started_at.as_deref()),
        "finishedAt": opt_instant(t.finished_at.as_deref()),
        "error": error,
        "isGroup": t.is_group,
        "retryCount": t.retry_count,
    })
}

/// The file name of a run's log (`<task id>.<fence>.log`, as on disk).
pub fn log_file_name(task: crate::ids::TaskId, fence: i64) -> String {
    format!("{task}.{fence}.log")
}

/// `RestLogFileHandle`.
pub fn log_file(r: &RunRow, size: u64) -> Value {
    json!({
        "fileName": log_file_name(r.task, r.fence),
        "fileSize": size,
        "taskName": r.full_name,
        "fileTime": instant(&r.started_at),
        "agentId": "local",
        "direct": Value::Null,
    })
}
