//! The read queries of the HTTP API (and the few writes its actions make to schedules):
//! lists are keyset-paged by id, newest first (`id < last_id ORDER BY id DESC LIMIT n`), so a
//! page costs the same on a store of a hundred or a million attempts and nothing counts rows.

use super::{sql, Error, Tx};
use crate::ids::{AttemptId, ProjectId, SessionId, TaskId};
use rusqlite::{params, OptionalExtension};

/// A project row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectRow {
    pub id: ProjectId,
    pub dir: String,
    pub created_at: String,
}

/// One attempt with its session, as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptRow {
    pub id: AttemptId,
    /// 1 for the first attempt of its session, 2 for the next, ...
    pub index: i64,
    pub project: ProjectId,
    pub project_dir: String,
    pub workflow: String,
    pub revision: i64,
    pub session: SessionId,
    pub session_uuid: String,
    pub session_time: String,
    pub timezone: String,
    pub attempt_name: String,
    pub state: String,
    pub cancel_requested: bool,
    pub params: String,
    pub created_at: String,
    pub finished_at: Option<String>,
}

const ATTEMPT_COLUMNS: &str = "a.id, \
    (SELECT COUNT(*) FROM attempts b WHERE b.session_id = a.session_id AND b.id <= a.id), \
    s.project_id, p.dir, s.workflow, a.revision_id, s.id, s.session_uuid, s.session_time, \
    r.timezone, a.attempt_name, a.state, a.cancel_requested, a.params, a.created_at, \
    a.finished_at";

const ATTEMPT_FROM: &str = "FROM attempts a JOIN sessions s ON s.id = a.session_id \
    JOIN projects p ON p.id = s.project_id JOIN revisions r ON r.id = a.revision_id";

fn attempt_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AttemptRow> {
    Ok(AttemptRow {
        id: AttemptId(r.get(0)?),
        index: r.get(1)?,
        project: ProjectId(r.get(2)?),
        project_dir: r.get(3)?,
        workflow: r.get(4)?,
        revision: r.get(5)?,
        session: SessionId(r.get(6)?),
        session_uuid: r.get(7)?,
        session_time: r.get(8)?,
        timezone: r.get(9)?,
        attempt_name: r.get(10)?,
        state: r.get(11)?,
        cancel_requested: r.get::<_, i64>(12)? != 0,
        params: r.get(13)?,
        created_at: r.get(14)?,
        finished_at: r.get(15)?,
    })
}

/// Which attempts a list asks for.
#[derive(Clone, Debug, Default)]
pub struct AttemptFilter {
    pub project: Option<ProjectId>,
    pub workflow: Option<String>,
    pub session: Option<SessionId>,
    /// Without it only the newest attempt of each session is listed (Digdag's default).
    pub include_retried: bool,
    pub last_id: Option<i64>,
    pub limit: usize,
}

pub fn projects(tx: &Tx<'_>) -> Result<Vec<ProjectRow>, Error> {
    let mut stmt = tx
        .prepare_cached("SELECT id, dir, created_at FROM projects ORDER BY id")
        .map_err(sql("api_projects"))?;
    let rows = stmt
        .query_map([], |r| {
            Ok(ProjectRow {
                id: ProjectId(r.get(0)?),
                dir: r.get(1)?,
                created_at: r.get(2)?,
            })
        })
        .map_err(sql("api_projects"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql("api_projects"));
    rows
}

pub fn attempt(tx: &Tx<'_>, id: AttemptId) -> Result<Option<AttemptRow>, Error> {
    tx.prepare_cached(&format!(
        "SELECT {ATTEMPT_COLUMNS} {ATTEMPT_FROM} WHERE a.id = ?1"
    ))
    .and_then(|mut s| s.query_row(params![id.0], attempt_row).optional())
    .map_err(sql("api_attempt"))
}

/// The attempt of a session and name, if it exists.
pub fn attempt_by_key(
    tx: &Tx<'_>,
    project: ProjectId,
    workflow: &str,
    session_time: jiff::Timestamp,
    name: &str,
) -> Result<Option<AttemptId>, Error> {
    tx.prepare_cached(
        "SELECT a.id FROM sessions s JOIN attempts a ON a.session_id = s.id \
         WHERE s.project_id = ?1 AND s.workflow = ?2 AND s.session_time = ?3 \
         AND a.attempt_name = ?4",
    )
    .and_then(|mut s| {
        s.query_row(
            params![project.0, workflow, session_time.to_string(), name],
            |r| r.get(0),
        )
        .optional()
    })
    .map(|id: Option<i64>| id.map(AttemptId))
    .map_err(sql("api_attempt_by_key"))
}

/// One page of attempts, newest first.
pub fn attempts(tx: &Tx<'_>, f: &AttemptFilter) -> Result<Vec<AttemptRow>, Error> {
    let mut sql_text = format!("SELECT {ATTEMPT_COLUMNS} {ATTEMPT_FROM} WHERE a.id < ?1");
    if f.project.is_some() {
        sql_text.push_str(" AND s.project_id = ?2");
    }
    if f.workflow.is_some() {
        sql_text.push_str(" AND s.workflow = ?3");
    }
    if f.session.is_some() {
        sql_text.push_str(" AND a.session_id = ?4");
    }
    if !f.include_retried {
        sql_text.push_str(
            " AND a.id = (SELECT MAX(b.id) FROM attempts b WHERE b.session_id = a.session_id)",
        );
    }
    sql_text.push_str(" ORDER BY a.id DESC LIMIT ?5");
    let mut stmt = tx.prepare_cached(&sql_text).map_err(sql("api_attempts"))?;
    // Unused parameters are bound too (to NULL-safe values) so one statement shape per
    // filter combination is cached.
    let rows = stmt
        .query_map(
            params![
                f.last_id.unwrap_or(i64::MAX),
                f.project.map_or(0, |p| p.0),
                f.workflow.as_deref().unwrap_or(""),
                f.session.map_or(0, |s| s.0),
                i64::try_from(f.limit).unwrap_or(i64::MAX)
            ],
            attempt_row,
        )
        .map_err(sql("api_attempts"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql("api_attempts"));
    rows
}

/// One session, with the newest of its attempts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRow {
    pub id: SessionId,
    pub project: ProjectId,
    pub project_dir: String,
    pub workflow: String,
    pub session_uuid: String,
    pub session_time: String,
    pub last_attempt: Option<AttemptRow>,
}

/// One page of sessions, newest first, each with its newest attempt.
pub fn sessions(
    tx: &Tx<'_>,
    project: Option<ProjectId>,
    workflow: Option<&str>,
    last_id: Option<i64>,
    limit: usize,
) -> Result<Vec<SessionRow>, Error> {
    let mut text = "SELECT s.id, s.project_id, p.dir, s.workflow, s.session_uuid, s.session_time \
         FROM sessions s JOIN projects p ON p.id = s.project_id WHERE s.id < ?1"
        .to_owned();
    if project.is_some() {
        text.push_str(" AND s.project_id = ?2");
    }
    if workflow.is_some() {
        text.push_str(" AND s.workflow = ?3");
    }
    text.push_str(" ORDER BY s.id DESC LIMIT ?4");
    let mut stmt = tx.prepare_cached(&text).map_err(sql("api_sessions"))?;
    let mut rows = stmt
        .query_map(
            params![
                last_id.unwrap_or(i64::MAX),
                project.map_or(0, |p| p.0),
                workflow.unwrap_or(""),
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            session_row,
        )
        .map_err(sql("api_sessions"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql("api_sessions"))?;
    drop(stmt);
    for row in &mut rows {
        row.last_attempt = last_attempt(tx, row.id)?;
    }
    Ok(rows)
}

fn session_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        id: SessionId(r.get(0)?),
        project: ProjectId(r.get(1)?),
        project_dir: r.get(2)?,
        workflow: r.get(3)?,
        session_uuid: r.get(4)?,
        session_time: r.get(5)?,
        last_attempt: None,
    })
}

pub fn session(tx: &Tx<'_>, id: SessionId) -> Result<Option<SessionRow>, Error> {
    let row = tx
        .prepare_cached(
            "SELECT s.id, s.project_id, p.dir, s.workflow, s.session_uuid, s.session_time \
             FROM sessions s JOIN projects p ON p.id = s.project_id WHERE s.id = ?1",
        )
        .and_then(|mut s| s.query_row(params![id.0], session_row).optional())
        .map_err(sql("api_session"))?;
    match row {
        Some(mut row) => {
            row.last_attempt = last_attempt(tx, row.id)?;
            Ok(Some(row))
        }
        None => Ok(None),
    }
}

fn last_attempt(tx: &Tx<'_>, session: SessionId) -> Result<Option<AttemptRow>, Error> {
    tx.prepare_cached(&format!(
        "SELECT {ATTEMPT_COLUMNS} {ATTEMPT_FROM} WHERE a.session_id = ?1 ORDER BY a.id DESC LIMIT 1"
    ))
    .and_then(|mut s| s.query_row(params![session.0], attempt_row).optional())
    .map_err(sql("api_last_attempt"))
}

/// One live task of an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskRow {
    pub id: TaskId,
    pub parent: Option<TaskId>,
    pub full_name: String,
    pub is_group: bool,
    pub state: String,
    pub retry_count: i64,
    pub fence: i64,
    pub retry_at_ms: Option<i64>,
    pub export_params: Option<String>,
    pub store_params: Option<String>,
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub updated_at: String,
    pub upstreams: Vec<TaskId>,
}

/// The live tasks of an attempt (its current tree; rows of discarded epochs are history), in
/// id order, each with its upstream siblings.
pub fn tasks(tx: &Tx<'_>, attempt: AttemptId) -> Result<Vec<TaskRow>, Error> {
    let mut stmt = tx
        .prepare_cached(
            "WITH RECURSIVE d(id, child_epoch) AS ( \
               SELECT t.id, t.child_epoch FROM attempts a CROSS JOIN tasks t \
                 WHERE a.id = ?1 AND t.id = a.root_task_id \
               UNION ALL SELECT t.id, t.child_epoch FROM d CROSS JOIN tasks t \
                 WHERE t.parent_id = d.id AND t.epoch = d.child_epoch) \
             SELECT t.id, t.parent_id, t.full_name, t.kind, t.state, t.retry_count, t.fence, \
               t.retry_at_ms, t.export_params, t.store_params, t.error, t.started_at, \
               t.finished_at, t.updated_at, \
               (SELECT group_concat(e.upstream_id) FROM task_edges e WHERE e.downstream_id = t.id) \
             FROM d CROSS JOIN tasks t ON t.id = d.id ORDER BY t.id",
        )
        .map_err(sql("api_tasks"))?;
    let rows = stmt
        .query_map(params![attempt.0], |r| {
            let upstreams: Option<String> = r.get(14)?;
            Ok(TaskRow {
                id: TaskId(r.get(0)?),
                parent: r.get::<_, Option<i64>>(1)?.map(TaskId),
                full_name: r.get(2)?,
                is_group: r.get::<_, String>(3)? == "group",
                state: r.get(4)?,
                retry_count: r.get(5)?,
                fence: r.get(6)?,
                retry_at_ms: r.get(7)?,
                export_params: r.get(8)?,
                store_params: r.get(9)?,
                error: r.get(10)?,
                started_at: r.get(11)?,
                finished_at: r.get(12)?,
                updated_at: r.get(13)?,
                upstreams: upstreams
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|s| s.parse().ok())
                    .map(TaskId)
                    .collect(),
            })
        })
        .map_err(sql("api_tasks"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql("api_tasks"));
    rows
}

/// One run of a task: one log file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRow {
    pub task: TaskId,
    pub fence: i64,
    pub full_name: String,
    pub started_at: String,
    /// Bytes of output the store holds for the run (`echo>` and operators that log through
    /// the engine); a process's output is in its file.
    pub stored_bytes: i64,
}

/// Every run of an attempt, in start order.
pub fn runs(tx: &Tx<'_>, attempt: AttemptId) -> Result<Vec<RunRow>, Error> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT r.task_id, r.fence, t.full_name, r.started_at, \
               (SELECT COALESCE(SUM(length(l.chunk)), 0) FROM task_logs l \
                  WHERE l.task_id = r.task_id AND l.fence = r.fence) \
             FROM tasks t JOIN task_runs r ON r.task_id = t.id \
             WHERE t.attempt_id = ?1 ORDER BY r.id",
        )
        .map_err(sql("api_runs"))?;
    let rows = stmt
        .query_map(params![attempt.0], |r| {
            Ok(RunRow {
                task: TaskId(r.get(0)?),
                fence: r.get(1)?,
                full_name: r.get(2)?,
                started_at: r.get(3)?,
                stored_bytes: r.get(4)?,
            })
        })
        .map_err(sql("api_runs"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql("api_runs"));
    rows
}

/// Whether `task` belongs to `attempt`.
pub fn task_of_attempt(tx: &Tx<'_>, attempt: AttemptId, task: TaskId) -> Result<bool, Error> {
    tx.prepare_cached("SELECT 1 FROM tasks WHERE id = ?1 AND attempt_id = ?2")
        .and_then(|mut s| {
            s.query_row(params![task.0, attempt.0], |_| Ok(()))
                .optional()
        })
        .map(|r| r.is_some())
        .map_err(sql("api_task_of_attempt"))
}

/// Log chunks of an attempt's runs with an id above `after`, oldest first: `(chunk id, task,
/// fence, text)`.
pub fn log_chunks_after(
    tx: &Tx<'_>,
    attempt: AttemptId,
    after: i64,
    limit: usize,
) -> Result<Vec<(i64, TaskId, i64, String)>, Error> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT l.id, l.task_id, l.fence, l.chunk FROM task_logs l \
             JOIN tasks t ON t.id = l.task_id WHERE t.attempt_id = ?1 AND l.id > ?2 \
             ORDER BY l.id LIMIT ?3",
        )
        .map_err(sql("api_log_chunks"))?;
    let rows = stmt
        .query_map(
            params![attempt.0, after, i64::try_from(limit).unwrap_or(i64::MAX)],
            |r| Ok((r.get(0)?, TaskId(r.get(1)?), r.get(2)?, r.get(3)?)),
        )
        .map_err(sql("api_log_chunks"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql("api_log_chunks"));
    rows
}

/// The stored log of one run of a task, its chunks concatenated.
pub fn run_log(tx: &Tx<'_>, task: TaskId, fence: i64) -> Result<String, Error> {
    let mut stmt = tx
        .prepare_cached("SELECT chunk FROM task_logs WHERE task_id = ?1 AND fence = ?2 ORDER BY id")
        .map_err(sql("api_run_log"))?;
    let chunks = stmt
        .query_map(params![task.0, fence], |r| r.get::<_, String>(0))
        .map_err(sql("api_run_log"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql("api_run_log"))?;
    Ok(chunks.concat())
}

/// The revision id of a workflow's definition with `hash`, if stored.
pub fn revision_id(
    tx: &Tx<'_>,
    project: ProjectId,
    workflow: &str,
    hash: &str,
) -> Result<Option<i64>, Error> {
    tx.prepare_cached(
        "SELECT id FROM revisions WHERE project_id = ?1 AND workflow = ?2 AND hash = ?3",
    )
    .and_then(|mut s| {
        s.query_row(params![project.0, workflow, hash], |r| r.get(0))
            .optional()
    })
    .map_err(sql("api_revision_id"))
}

/// `(project, workflow name)` of a revision.
pub fn revision(tx: &Tx<'_>, id: i64) -> Result<Option<(ProjectId, String)>, Error> {
    tx.prepare_cached("SELECT project_id, workflow FROM revisions WHERE id = ?1")
        .and_then(|mut s| {
            s.query_row(params![id], |r| Ok((ProjectId(r.get(0)?), r.get(1)?)))
                .optional()
        })
        .map_err(sql("api_revision"))
}

/// Stores a revision of a loaded workflow (idempotent) and returns its id: a workflow gets its
/// API id when it is first listed, before any attempt of it ran.
pub fn ensure_revision(
    tx: &Tx<'_>,
    project: ProjectId,
    workflow: &crate::dig::Workflow,
    hash: &str,
    sources: &[(std::path::PathBuf, String)],
    now: jiff::Timestamp,
) -> Result<i64, Error> {
    let sources: Vec<(String, &str)> = sources
        .iter()
        .map(|(p, t)| (p.to_string_lossy().into_owned(), t.as_str()))
        .collect();
    tx.prepare_cached(
        // The definition nodes are stored when an attempt of the revision is prepared
        // (`root_def_id` stays NULL until then).
        "INSERT INTO revisions (project_id, workflow, hash, timezone, sources, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (project_id, workflow, hash) DO NOTHING",
    )
    .and_then(|mut s| {
        s.execute(params![
            project.0,
            workflow.name,
            hash,
            workflow.timezone,
            super::rows::to_json(&sources),
            now.to_string()
        ])
    })
    .map_err(sql("api_insert_revision"))?;
    revision_id(tx, project, &workflow.name, hash)?.ok_or(Error::NotFound {
        what: "revision",
        id: 0,
    })
}

/// Points a schedule at `next` (a skip): the slots in between never fire.
pub fn set_next_slot(
    tx: &Tx<'_>,
    id: i64,
    next: Option<crate::schedule::Slot>,
    now: jiff::Timestamp,
) -> Result<(), Error> {
    tx.prepare_cached(
        "UPDATE schedules SET next_session_ms = ?2, next_run_ms = ?3, updated_at = ?4 WHERE id = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![
            id,
            next.map(|s| s.session_time.as_millisecond()),
            next.map(|s| s.run_time.as_millisecond()),
            now.to_string()
        ])
    })
    .map_err(sql("api_skip_schedule"))?;
    Ok(())
}

/// Pauses a schedule with a reason (`Some`), or resumes it (`None`); slots whose run time
/// passed while it was paused count as missed (`armed` moves to `now`), so its `catchup:`
/// policy decides about them. Pausing a paused schedule keeps when it was paused and takes the
/// new reason.
pub fn set_paused(
    tx: &Tx<'_>,
    id: i64,
    reason: Option<&str>,
    now: jiff::Timestamp,
) -> Result<(), Error> {
    match reason {
        Some(reason) => tx
            .prepare_cached(
                "UPDATE schedules SET disabled_at = COALESCE(disabled_at, ?2), \
                 disabled_reason = ?3, updated_at = ?2 WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![id, now.to_string(), reason])),
        None => tx
            .prepare_cached(
                "UPDATE schedules SET disabled_at = NULL, disabled_reason = NULL, armed_ms = ?3, \
                 updated_at = ?2 WHERE id = ?1 AND disabled_at IS NOT NULL",
            )
            .and_then(|mut s| s.execute(params![id, now.to_string(), now.as_millisecond()])),
    }
    .map_err(sql("set_paused"))?;
    Ok(())
}
