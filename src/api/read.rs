//! The read endpoints: projects, workflows, schedules, sessions, attempts, tasks, logs,
//! version and health.

use super::{blocking, shapes, Api, ApiError, ApiResult, DEFAULT_PAGE, MAX_PAGE};
use crate::daemon::project::{Loaded, Project};
use crate::ids::{AttemptId, ProjectId, SessionId, TaskId};
use crate::store::api::{self as q, AttemptFilter};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// One workflow of the loaded project with its API id (the id of its current revision).
#[derive(Clone)]
pub struct WorkflowEntry {
    pub id: i64,
    pub loaded: Arc<Loaded>,
}

/// The workflow ids of one loaded project (recomputed when the project reloads).
pub struct WorkflowIds {
    project: Arc<Project>,
    pub entries: Vec<WorkflowEntry>,
}

/// An id in a path or query: a decimal number, else 400 naming the field.
pub fn parse_id(field: &str, text: &str) -> ApiResult<i64> {
    text.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        ApiError::bad_request(format!(
            "invalid {field} `{text}`: expected a positive decimal id such as \"12\""
        ))
    })
}

impl Api {
    /// The current project's workflows with their ids; a workflow gets its revision row when
    /// it is first listed (idempotent), so ids exist before any attempt ran.
    pub async fn workflow_entries(&self) -> ApiResult<Vec<WorkflowEntry>> {
        let project = self.handle.project.borrow().clone();
        {
            let cached = self.workflows.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(ids) = cached
                .as_ref()
                .filter(|c| Arc::ptr_eq(&c.project, &project))
            {
                return Ok(ids.entries.clone());
            }
        }
        let engine = self.handle.engine.clone();
        let project_id = self.handle.project_id;
        let now = self.handle.clock.now();
        let p = project.clone();
        let entries = blocking(move || {
            engine.store().write("api_workflow_ids", |tx| {
                let mut entries = Vec::new();
                for loaded in p.workflows.values() {
                    let hash = crate::engine::prepare::revision_hash(
                        &loaded.workflow.name,
                        &loaded.sources,
                    );
                    let id = q::ensure_revision(
                        tx,
                        project_id,
                        &loaded.workflow,
                        &hash,
                        &loaded.sources,
                        now,
                    )?;
                    entries.push(WorkflowEntry {
                        id,
                        loaded: loaded.clone(),
                    });
                }
                Ok::<_, crate::engine::Error>(entries)
            })
        })
        .await?;
        let mut cached = self.workflows.lock().unwrap_or_else(|p| p.into_inner());
        *cached = Some(WorkflowIds {
            project,
            entries: entries.clone(),
        });
        Ok(entries)
    }

    /// The loaded workflow named `name`, with its id.
    pub async fn workflow_by_name(&self, name: &str) -> ApiResult<WorkflowEntry> {
        self.workflow_entries()
            .await?
            .into_iter()
            .find(|e| e.loaded.workflow.name == name)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("workflow {name} does not exist in the project"),
                )
            })
    }

    pub fn project_dir_text(&self) -> String {
        self.handle.project_dir.to_string_lossy().into_owned()
    }

    pub fn workflow_json(&self, e: &WorkflowEntry) -> Value {
        let w = &e.loaded.workflow;
        let hash = crate::engine::prepare::revision_hash(&w.name, &e.loaded.sources);
        json!({
            "id": e.id.to_string(),
            "name": w.name,
            "project": shapes::project_ref(self.handle.project_id, &self.project_dir_text()),
            "revision": hash.get(..12).unwrap_or(&hash),
            "timezone": w.timezone,
            "config": {},
        })
    }

    pub async fn attempt_row(&self, id: AttemptId) -> ApiResult<q::AttemptRow> {
        let engine = self.handle.engine.clone();
        blocking(move || {
            engine
                .store()
                .read_snapshot("api_attempt", |tx| q::attempt(tx, id))
                .map_err(Into::into)
        })
        .await?
        .ok_or_else(|| ApiError::not_found("attempt", id))
    }

    /// The schedules of the project, as Digdag shows them.
    pub async fn schedules_json(&self) -> ApiResult<Vec<(i64, Value)>> {
        let engine = self.handle.engine.clone();
        let id = self.handle.project_id;
        let rows = blocking(move || {
            engine
                .store()
                .read_snapshot("api_schedules", |tx| crate::store::schedules::list(tx, id))
                .map_err(Into::into)
        })
        .await?;
        let entries = self.workflow_entries().await?;
        Ok(rows
            .iter()
            .map(|r| (r.id, self.schedule_json(r, &entries)))
            .collect())
    }

    pub fn schedule_json(
        &self,
        r: &crate::store::schedules::ScheduleRow,
        entries: &[WorkflowEntry],
    ) -> Value {
        let entry = entries
            .iter()
            .find(|e| e.loaded.workflow.name == r.workflow);
        let tz = entry
            .and_then(|e| e.loaded.schedule.as_ref())
            .map_or(jiff::tz::TimeZone::UTC, |s| s.schedule.tz.clone());
        json!({
            "id": r.id.to_string(),
            "project": shapes::project_ref(r.project, &self.project_dir_text()),
            "workflow": {"name": r.workflow, "id": entry.map(|e| e.id.to_string())},
            "nextRunTime": r.next_run.map(|t| t.to_string()),
            "nextScheduleTime": r.next_session.map(|t| crate::schedule::format_rfc3339(t, &tz)),
            "disabledAt": r.disabled_at.as_deref().map(shapes::instant),
        })
    }
}

pub async fn health(State(api): State<Api>) -> Response {
    let stopping = *api.stop.borrow() != crate::executor::StopLevel::Run;
    let load = *api.handle.load.borrow();
    let body = json!({
        "status": if stopping { "stopping" } else { "ok" },
        "attemptsRunning": load.running,
        "attemptsQueued": load.queued,
    });
    let status = if stopping {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (status, Json(body)).into_response()
}

pub async fn version() -> Json<Value> {
    Json(json!({"version": env!("CARGO_PKG_VERSION")}))
}

#[derive(Deserialize)]
pub struct NameQuery {
    name: Option<String>,
}

/// Every project row, from a read snapshot.
async fn all_projects(api: &Api) -> ApiResult<Vec<q::ProjectRow>> {
    let engine = api.handle.engine.clone();
    blocking(move || {
        engine
            .store()
            .read_snapshot("api_projects", q::projects)
            .map_err(Into::into)
    })
    .await
}

pub async fn projects(
    State(api): State<Api>,
    Query(q): Query<NameQuery>,
) -> ApiResult<Json<Value>> {
    let rows = all_projects(&api).await?;
    let list: Vec<Value> = rows
        .iter()
        .filter(|p| {
            q.name
                .as_deref()
                .is_none_or(|n| shapes::project_name(&p.dir) == n)
        })
        .map(shapes::project)
        .collect();
    Ok(Json(json!({ "projects": list })))
}

pub async fn project(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let id = parse_id("project id", &id)?;
    let rows = all_projects(&api).await?;
    rows.iter()
        .find(|p| p.id.0 == id)
        .map(|p| Json(shapes::project(p)))
        .ok_or_else(|| ApiError::not_found("project", id))
}

pub async fn project_workflows(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(q): Query<NameQuery>,
) -> ApiResult<Json<Value>> {
    let id = parse_id("project id", &id)?;
    if id != api.handle.project_id.0 {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("project {id} is not the one this daemon serves"),
        ));
    }
    workflows(State(api), Query(q)).await
}

pub async fn workflows(
    State(api): State<Api>,
    Query(q): Query<NameQuery>,
) -> ApiResult<Json<Value>> {
    let entries = api.workflow_entries().await?;
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| {
            q.name
                .as_deref()
                .is_none_or(|n| e.loaded.workflow.name == n)
        })
        .map(|e| api.workflow_json(e))
        .collect();
    Ok(Json(json!({ "workflows": list })))
}

pub async fn workflow(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let id = parse_id("workflow id", &id)?;
    let entries = api.workflow_entries().await?;
    if let Some(e) = entries.iter().find(|e| e.id == id) {
        return Ok(Json(api.workflow_json(e)));
    }
    // An older revision: shown by name, if that workflow is still loaded.
    let engine = api.handle.engine.clone();
    let found = blocking(move || {
        engine
            .store()
            .read_snapshot("api_revision", |tx| q::revision(tx, id))
            .map_err(Into::into)
    })
    .await?;
    match found {
        Some((project, name)) if project == api.handle.project_id => {
            let e = api.workflow_by_name(&name).await?;
            let mut v = api.workflow_json(&e);
            v["id"] = Value::String(id.to_string());
            v["latestId"] = Value::String(e.id.to_string());
            Ok(Json(v))
        }
        _ => Err(ApiError::not_found("workflow", id)),
    }
}

pub async fn schedules(State(api): State<Api>) -> ApiResult<Json<Value>> {
    let list: Vec<Value> = api
        .schedules_json()
        .await?
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    Ok(Json(json!({ "schedules": list })))
}

pub async fn schedule(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let id = parse_id("schedule id", &id)?;
    api.schedules_json()
        .await?
        .into_iter()
        .find(|(i, _)| *i == id)
        .map(|(_, v)| Json(v))
        .ok_or_else(|| ApiError::not_found("schedule", id))
}

/// `last_id`, `page_size` and the filters of the lists.
#[derive(Deserialize, Default)]
pub struct ListQuery {
    last_id: Option<String>,
    page_size: Option<String>,
    project: Option<String>,
    workflow: Option<String>,
    include_retried: Option<String>,
}

impl ListQuery {
    fn last_id(&self) -> ApiResult<Option<i64>> {
        self.last_id
            .as_deref()
            .map(|t| parse_id("last_id", t))
            .transpose()
    }

    fn page_size(&self) -> ApiResult<usize> {
        match self.page_size.as_deref() {
            None => Ok(DEFAULT_PAGE),
            Some(t) => t
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "invalid page_size `{t}`: expected a number from 1 to {MAX_PAGE}"
                    ))
                }),
        }
    }

    /// `project` is a project name (Digdag's attempts filter); `None` when it names another
    /// project than this daemon's, so nothing matches.
    fn project(&self, api: &Api) -> Option<Option<ProjectId>> {
        match self.project.as_deref() {
            None => Some(None),
            Some(name) if shapes::project_name(&api.project_dir_text()) == name => {
                Some(Some(api.handle.project_id))
            }
            Some(_) => None,
        }
    }

    fn include_retried(&self) -> ApiResult<bool> {
        match self.include_retried.as_deref() {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(t) => Err(ApiError::bad_request(format!(
                "invalid include_retried `{t}`: expected true or false"
            ))),
        }
    }
}

pub async fn sessions(
    State(api): State<Api>,
    Query(l): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let (last_id, limit) = (l.last_id()?, l.page_size()?);
    let Some(project) = l.project(&api) else {
        return Ok(Json(json!({"sessions": []})));
    };
    let engine = api.handle.engine.clone();
    let workflow = l.workflow.clone();
    let rows = blocking(move || {
        engine
            .store()
            .read_snapshot("api_sessions", |tx| {
                q::sessions(tx, project, workflow.as_deref(), last_id, limit)
            })
            .map_err(Into::into)
    })
    .await?;
    let list: Vec<Value> = rows.iter().map(shapes::session).collect();
    Ok(Json(json!({ "sessions": list })))
}

pub async fn session(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let id = SessionId(parse_id("session id", &id)?);
    let engine = api.handle.engine.clone();
    let row = blocking(move || {
        engine
            .store()
            .read_snapshot("api_session", |tx| q::session(tx, id))
            .map_err(Into::into)
    })
    .await?;
    row.map(|s| Json(shapes::session(&s)))
        .ok_or_else(|| ApiError::not_found("session", id))
}

async fn attempt_list(api: &Api, f: AttemptFilter) -> ApiResult<Vec<Value>> {
    let engine = api.handle.engine.clone();
    let rows = blocking(move || {
        engine
            .store()
            .read_snapshot("api_attempts", |tx| q::attempts(tx, &f))
            .map_err(Into::into)
    })
    .await?;
    Ok(rows.iter().map(shapes::attempt).collect())
}

pub async fn session_attempts(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(l): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let session_id = SessionId(parse_id("session id", &id)?);
    let f = AttemptFilter {
        session: Some(session_id),
        include_retried: true,
        last_id: l.last_id()?,
        limit: l.page_size()?,
        ..AttemptFilter::default()
    };
    let list = attempt_list(&api, f).await?;
    if list.is_empty() && l.last_id.is_none() {
        let _exists = session(State(api), Path(id)).await?;
    }
    Ok(Json(json!({ "attempts": list })))
}

pub async fn attempts(
    State(api): State<Api>,
    Query(l): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let Some(project) = l.project(&api) else {
        return Ok(Json(json!({"attempts": []})));
    };
    let f = AttemptFilter {
        project,
        workflow: l.workflow.clone(),
        session: None,
        include_retried: l.include_retried()?,
        last_id: l.last_id()?,
        limit: l.page_size()?,
    };
    Ok(Json(json!({ "attempts": attempt_list(&api, f).await? })))
}

pub async fn attempt(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let id = AttemptId(parse_id("attempt id", &id)?);
    Ok(Json(shapes::attempt(&api.attempt_row(id).await?)))
}

pub async fn tasks(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let id = AttemptId(parse_id("attempt id", &id)?);
    let a = api.attempt_row(id).await?;
    let engine = api.handle.engine.clone();
    let rows = blocking(move || {
        engine
            .store()
            .read_snapshot("api_tasks", |tx| q::tasks(tx, id))
            .map_err(Into::into)
    })
    .await?;
    let cancel = a.cancel_requested || a.state == "killed";
    let list: Vec<Value> = rows.iter().map(|t| shapes::task(t, cancel)).collect();
    Ok(Json(json!({ "tasks": list })))
}

#[derive(Deserialize)]
pub struct LogQuery {
    task: Option<String>,
    /// spade: the byte offset to read the file from (`log -f` follows with it).
    offset: Option<u64>,
}

/// The path of a run's log file on disk.
fn log_path(api: &Api, attempt: AttemptId, task: TaskId, fence: i64) -> std::path::PathBuf {
    crate::executor::run_dir(&api.handle.state_dir, attempt)
        .join(shapes::log_file_name(task, fence))
}

pub async fn log_files(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(l): Query<LogQuery>,
) -> ApiResult<Json<Value>> {
    let id = AttemptId(parse_id("attempt id", &id)?);
    api.attempt_row(id).await?;
    let engine = api.handle.engine.clone();
    let runs = blocking(move || {
        engine
            .store()
            .read_snapshot("api_runs", |tx| q::runs(tx, id))
            .map_err(Into::into)
    })
    .await?;
    let mut list = Vec::new();
    for r in runs.iter().filter(|r| {
        l.task
            .as_deref()
            .is_none_or(|t| task_matches(&r.full_name, t))
    }) {
        let on_disk = tokio::fs::metadata(log_path(&api, id, r.task, r.fence))
            .await
            .map_or(0, |m| m.len());
        let stored = u64::try_from(r.stored_bytes).unwrap_or(0);
        list.push(shapes::log_file(r, stored + on_disk));
    }
    Ok(Json(json!({ "files": list })))
}

/// `+step` matches `+wf+step` and `+wf+group+step`: a task is named by its full name or by
/// its last components.
pub fn task_matches(full_name: &str, wanted: &str) -> bool {
    full_name == wanted || full_name.ends_with(wanted) && wanted.starts_with('+')
}

pub async fn log_file(
    State(api): State<Api>,
    Path((id, file)): Path<(String, String)>,
    Query(l): Query<LogQuery>,
) -> ApiResult<Response> {
    let id = AttemptId(parse_id("attempt id", &id)?);
    api.attempt_row(id).await?;
    let bad = || {
        ApiError::not_found(
            "log file",
            format!("{file} of attempt {id} (names look like 12.1.log: task id, run number)"),
        )
    };
    let (task, fence) = file
        .strip_suffix(".log")
        .and_then(|s| s.split_once('.'))
        .and_then(|(t, f)| Some((t.parse::<i64>().ok()?, f.parse::<i64>().ok()?)))
        .ok_or_else(bad)?;
    let task = TaskId(task);
    let engine = api.handle.engine.clone();
    let stored = blocking(move || {
        engine
            .store()
            .read_snapshot("api_log_file", |tx| {
                if !q::task_of_attempt(tx, id, task)? {
                    return Ok(None);
                }
                q::run_log(tx, task, fence).map(Some)
            })
            .map_err(Into::into)
    })
    .await?
    .ok_or_else(bad)?;
    let mut bytes = stored.into_bytes();
    match tokio::fs::read(log_path(&api, id, task, fence)).await {
        Ok(mut on_disk) => bytes.append(&mut on_disk),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot read the log of task {task}: {e}"),
            ))
        }
    }
    let offset = usize::try_from(l.offset.unwrap_or(0)).unwrap_or(usize::MAX);
    let body = bytes.get(offset..).map(<[u8]>::to_vec).unwrap_or_default();
    let mut headers = HashMap::new();
    headers.insert("x-spade-log-size", bytes.len().to_string());
    let mut response = (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        body,
    )
        .into_response();
    for (k, v) in headers {
        if let Ok(v) = axum::http::HeaderValue::from_str(&v) {
            response.headers_mut().insert(k, v);
        }
    }
    Ok(response)
}

#[cfg(test)]
pub(crate) mod tests {
    // Test helpers: a failed unwrap is a failed test here.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::daemon::Handle;
    use crate::engine::Engine;
    use std::time::Duration;

    /// An `Api` over a fresh store in `dir`, with nothing behind its channels.
    pub(crate) fn api_over(dir: &std::path::Path) -> Api {
        let engine = Arc::new(Engine::open(&dir.join("spade.db")).unwrap());
        let project = Arc::new(Project {
            dir: dir.to_owned(),
            workflows: std::collections::BTreeMap::new(),
        });
        let handle = Handle {
            engine,
            clock: Arc::new(crate::clock::SystemClock),
            owner: crate::engine::OwnerId("test".into()),
            project_id: ProjectId(1),
            project_dir: dir.to_owned(),
            state_dir: dir.to_owned(),
            project: tokio::sync::watch::channel(project).1,
            drive: tokio::sync::mpsc::unbounded_channel().0,
            kills: tokio::sync::mpsc::unbounded_channel().0,
            kick: Arc::new(tokio::sync::Notify::new()),
            changes: tokio::sync::broadcast::channel(4).0,
            load: tokio::sync::watch::channel(crate::daemon::supervisor::Load::default()).1,
        };
        let stop = tokio::sync::watch::channel(crate::executor::StopLevel::Run).1;
        Api::new(handle, None, stop, Arc::default())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn api_reads_answer_while_a_write_transaction_is_open() {
        let dir = tempfile::tempdir().unwrap();
        let api = api_over(dir.path());
        let engine = api.handle.engine.clone();
        engine
            .store()
            .write("test", |tx| {
                tx.execute(
                    "INSERT INTO projects (dir, created_at) VALUES ('/committed', 'y')",
                    [],
                )
                .map_err(crate::store::sql("test"))
            })
            .unwrap();
        // An engine transaction that stays open until released (a slow transition, a
        // writer waiting for another process's lock).
        let (inside_tx, inside) = std::sync::mpsc::channel();
        let (release_tx, release) = std::sync::mpsc::channel::<()>();
        let writer = std::thread::spawn(move || {
            engine
                .store()
                .write("test_held", |tx| {
                    tx.execute(
                        "INSERT INTO projects (dir, created_at) VALUES ('/uncommitted', 'y')",
                        [],
                    )
                    .map_err(crate::store::sql("test_held"))?;
                    inside_tx.send(()).unwrap();
                    release.recv().unwrap();
                    Ok::<_, crate::store::Error>(())
                })
                .unwrap();
        });
        inside.recv().unwrap();
        let reads = async {
            let projects = projects(State(api.clone()), Query(NameQuery { name: None })).await;
            let missing = attempt(State(api.clone()), Path("7".into())).await;
            let metrics = crate::api::metrics::handler(State(api.clone())).await;
            (projects, missing, metrics)
        };
        let answered = tokio::time::timeout(Duration::from_secs(10), reads).await;
        release_tx.send(()).unwrap();
        writer.join().unwrap();
        let (projects, missing, metrics) = answered.expect("an API read waited for the writer");
        let dirs: Vec<Value> = projects.unwrap().0["projects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].clone())
            .collect();
        assert_eq!(
            dirs,
            [json!("committed")],
            "only what was committed is seen"
        );
        assert_eq!(missing.err().unwrap().status, StatusCode::NOT_FOUND);
        assert_eq!(metrics.unwrap().status(), StatusCode::OK);
    }
}
