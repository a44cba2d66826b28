//! The web UI's queries (the API's are in `store::api`): running attempts with their current
//! task, recent failures with their first error, filtered attempt pages, each workflow's recent
//! results, the runs of an attempt for its timeline, and the audit trail. Lists are keyset-paged
//! by id, newest first, and nothing counts rows: a page costs the same on a store of a hundred
//! or a million attempts.

use super::{sql, Error, Tx};
use crate::ids::{AttemptId, ProjectId, TaskId};
use rusqlite::params;

/// One attempt as the UI lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub id: AttemptId,
    pub workflow: String,
    pub session_time: String,
    pub timezone: String,
    pub attempt_name: String,
    pub state: String,
    pub cancel_requested: bool,
    pub created_at: String,
    pub finished_at: Option<String>,
}

const COLUMNS: &str = "a.id, s.workflow, s.session_time, r.timezone, a.attempt_name, a.state, \
    a.cancel_requested, a.created_at, a.finished_at";

const FROM: &str = "FROM attempts a JOIN sessions s ON s.id = a.session_id \
    JOIN revisions r ON r.id = a.revision_id";

/// The same join walked from the attempts, newest first: `CROSS JOIN` fixes SQLite's join
/// order, so a page reads its rows by attempt id (a keyset seek) instead of every session of
/// the project followed by a sort, which cost 170 ms at 100,000 attempts.
const FROM_BY_ID: &str = "FROM attempts a CROSS JOIN sessions s ON s.id = a.session_id \
    CROSS JOIN revisions r ON r.id = a.revision_id";

/// How far back `recent` walks the attempts by id before it asks the workflow's sessions.
const RECENT_WINDOW: i64 = 5000;

fn attempt(r: &rusqlite::Row<'_>) -> rusqlite::Result<Attempt> {
    Ok(Attempt {
        id: AttemptId(r.get(0)?),
        workflow: r.get(1)?,
        session_time: r.get(2)?,
        timezone: r.get(3)?,
        attempt_name: r.get(4)?,
        state: r.get(5)?,
        cancel_requested: r.get::<_, i64>(6)? != 0,
        created_at: r.get(7)?,
        finished_at: r.get(8)?,
    })
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Which attempts a page of `/ui/sessions` shows.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub workflow: Option<String>,
    /// spade's attempt state: `running`, `succeeded`, `failed` or `killed`.
    pub state: Option<String>,
    /// Only attempts with an id below this one (the previous page's last id).
    pub before: Option<i64>,
    /// Only attempts with an id above this one (going back to newer pages).
    pub after: Option<i64>,
    pub limit: usize,
}

/// One page of a project's attempts, newest first (with `after`: the page just above it, still
/// newest first).
pub fn attempts(tx: &Tx<'_>, project: ProjectId, f: &Filter) -> Result<Vec<Attempt>, Error> {
    let order = if f.after.is_some() { "ASC" } else { "DESC" };
    // One statement shape per order and per state filter (a state is a seek in
    // `attempts_by_state_id`); an unused workflow filter is bound to a value that matches all.
    let state = if f.state.is_some() {
        "a.state = ?5"
    } else {
        "?5 = ''"
    };
    let text = format!(
        "SELECT {COLUMNS} {FROM_BY_ID} WHERE s.project_id = ?1 AND a.id < ?2 AND a.id > ?3 \
         AND (?4 = '' OR s.workflow = ?4) AND {state} \
         ORDER BY a.id {order} LIMIT ?6"
    );
    let mut stmt = tx.prepare_cached(&text).map_err(sql("ui_attempts"))?;
    let mut rows = stmt
        .query_map(
            params![
                project.0,
                f.before.unwrap_or(i64::MAX),
                f.after.unwrap_or(0),
                f.workflow.as_deref().unwrap_or(""),
                f.state.as_deref().unwrap_or(""),
                limit(f.limit)
            ],
            attempt,
        )
        .map_err(sql("ui_attempts"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql("ui_attempts"))?;
    if f.after.is_some() {
        rows.reverse();
    }
    Ok(rows)
}

/// The running attempts of a project with the operator task each runs now (the newest, when
/// several run in parallel).
pub fn running(tx: &Tx<'_>, project: ProjectId) -> Result<Vec<(Attempt, Option<String>)>, Error> {
    let text = format!(
        "SELECT {COLUMNS}, (SELECT t.full_name FROM tasks t WHERE t.attempt_id = a.id \
           AND t.state = 'running' AND t.kind = 'operator' ORDER BY t.id DESC LIMIT 1) \
         {FROM} WHERE a.state = 'running' AND s.project_id = ?1 ORDER BY a.id DESC LIMIT 200"
    );
    let mut stmt = tx.prepare_cached(&text).map_err(sql("ui_running"))?;
    let rows = stmt
        .query_map(params![project.0], |r| Ok((attempt(r)?, r.get(9)?)))
        .map_err(sql("ui_running"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql("ui_running"));
    rows
}

/// Failed attempts that finished at or after `since`, newest first, each with its first
/// failed task's error message.
pub fn failures_since(
    tx: &Tx<'_>,
    project: ProjectId,
    since: jiff::Timestamp,
    n: usize,
) -> Result<Vec<(Attempt, Option<String>)>, Error> {
    let text = format!(
        "SELECT {COLUMNS}, (SELECT t.error FROM tasks t WHERE t.attempt_id = a.id \
           AND t.state = 'failed' AND t.error IS NOT NULL ORDER BY t.id LIMIT 1) \
         {FROM} WHERE a.state = 'failed' AND s.project_id = ?1 AND a.finished_at >= ?2 \
         ORDER BY a.id DESC LIMIT ?3"
    );
    let mut stmt = tx.prepare_cached(&text).map_err(sql("ui_failures"))?;
    let rows = stmt
        .query_map(params![project.0, since.to_string(), limit(n)], |r| {
            Ok((attempt(r)?, r.get::<_, Option<String>>(9)?))
        })
        .map_err(sql("ui_failures"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql("ui_failures"))?;
    Ok(rows
        .into_iter()
        .map(|(a, e)| (a, e.map(|e| error_message(&e))))
        .collect())
}

/// The message of a stored task error (`{"message": ...}`), or the text itself.
pub fn error_message(stored: &str) -> String {
    serde_json::from_str::<serde_json::Value>(stored)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| stored.to_owned())
}

/// The newest `n` attempts of a workflow, newest first. The newest attempts of the store are
/// walked by id first (a workflow that runs often finds its rows there at once); a workflow
/// with fewer than `n` among them is then read through its sessions.
pub fn recent(
    tx: &Tx<'_>,
    project: ProjectId,
    workflow: &str,
    n: usize,
) -> Result<Vec<Attempt>, Error> {
    let by_id = format!(
        "SELECT {COLUMNS} {FROM_BY_ID} WHERE a.id > (SELECT coalesce(max(id), 0) FROM attempts) - ?4 \
         AND s.project_id = ?1 AND s.workflow = ?2 ORDER BY a.id DESC LIMIT ?3"
    );
    let mut stmt = tx.prepare_cached(&by_id).map_err(sql("ui_recent"))?;
    let rows = stmt
        .query_map(
            params![project.0, workflow, limit(n), RECENT_WINDOW],
            attempt,
        )
        .map_err(sql("ui_recent"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql("ui_recent"))?;
    if rows.len() >= n {
        return Ok(rows);
    }
    let text = format!(
        "SELECT {COLUMNS} {FROM} WHERE s.project_id = ?1 AND s.workflow = ?2 \
         ORDER BY a.id DESC LIMIT ?3"
    );
    let mut stmt = tx.prepare_cached(&text).map_err(sql("ui_recent"))?;
    let rows = stmt
        .query_map(params![project.0, workflow, limit(n)], attempt)
        .map_err(sql("ui_recent"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql("ui_recent"));
    rows
}

/// One run (try) of a task, for the attempt's timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub task: TaskId,
    pub fence: i64,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub outcome: Option<String>,
    pub message: Option<String>,
}

/// Every run of an attempt, in start order.
pub fn runs(tx: &Tx<'_>, attempt: AttemptId) -> Result<Vec<Run>, Error> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT r.task_id, r.fence, r.started_at, r.finished_at, r.outcome, r.message \
             FROM tasks t JOIN task_runs r ON r.task_id = t.id WHERE t.attempt_id = ?1 \
             ORDER BY r.id",
        )
        .map_err(sql("ui_runs"))?;
    let rows = stmt
        .query_map(params![attempt.0], |r| {
            Ok(Run {
                task: TaskId(r.get(0)?),
                fence: r.get(1)?,
                started_at: r.get(2)?,
                finished_at: r.get(3)?,
                outcome: r.get(4)?,
                message: r.get(5)?,
            })
        })
        .map_err(sql("ui_runs"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql("ui_runs"));
    rows
}

/// The tries a task may have (`_retry` limit + 1) for each task of an attempt with a policy.
pub fn try_limits(tx: &Tx<'_>, attempt: AttemptId) -> Result<Vec<(TaskId, u32)>, Error> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT id, retry_policy FROM tasks WHERE attempt_id = ?1 AND retry_policy IS NOT NULL",
        )
        .map_err(sql("ui_try_limits"))?;
    let rows = stmt
        .query_map(params![attempt.0], |r| {
            Ok((TaskId(r.get(0)?), r.get::<_, String>(1)?))
        })
        .map_err(sql("ui_try_limits"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql("ui_try_limits"))?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, text)| {
            let policy: crate::engine::retry::Policy = serde_json::from_str(&text).ok()?;
            Some((id, policy.limit.saturating_add(1)))
        })
        .collect())
}

/// Where the live stream of an attempt stands: its task state transitions (the
/// `state_transitions` ids of its tasks), for `Last-Event-ID`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// The attempt's first and newest transition ids (0 and 0 before any).
    pub first: i64,
    pub last: i64,
    /// Tasks with a transition after the `after` asked for, in id order.
    pub changed: Vec<TaskId>,
    /// One of those transitions made a task (`from_state` NULL): the table's rows changed.
    pub new_tasks: bool,
}

/// The attempt's transition range, and the tasks that moved after transition `after`.
pub fn position(tx: &Tx<'_>, attempt: AttemptId, after: i64) -> Result<Position, Error> {
    let (first, last): (Option<i64>, Option<i64>) = tx
        .prepare_cached(
            "SELECT MIN(st.id), MAX(st.id) FROM tasks t \
             JOIN state_transitions st ON st.task_id = t.id WHERE t.attempt_id = ?1",
        )
        .and_then(|mut s| s.query_row(params![attempt.0], |r| Ok((r.get(0)?, r.get(1)?))))
        .map_err(sql("ui_position"))?;
    let mut stmt = tx
        .prepare_cached(
            "SELECT t.id, MAX(st.from_state IS NULL) FROM tasks t \
             JOIN state_transitions st ON st.task_id = t.id \
             WHERE t.attempt_id = ?1 AND st.id > ?2 GROUP BY t.id ORDER BY t.id",
        )
        .map_err(sql("ui_position"))?;
    let moved = stmt
        .query_map(params![attempt.0, after], |r| {
            Ok((TaskId(r.get(0)?), r.get::<_, i64>(1)? != 0))
        })
        .map_err(sql("ui_position"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql("ui_position"))?;
    Ok(Position {
        first: first.unwrap_or(0),
        last: last.unwrap_or(0),
        new_tasks: moved.iter().any(|(_, new)| *new),
        changed: moved.into_iter().map(|(id, _)| id).collect(),
    })
}

/// One action taken through the UI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub workflow: Option<String>,
    pub attempt: Option<AttemptId>,
    pub detail: String,
    pub outcome: String,
}

pub fn record_audit(tx: &Tx<'_>, e: &AuditEntry) -> Result<i64, Error> {
    tx.prepare_cached(
        "INSERT INTO audit (at, actor, action, workflow, attempt_id, detail, outcome) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut s| {
        s.execute(params![
            e.at,
            e.actor,
            e.action,
            e.workflow,
            e.attempt.map(|a| a.0),
            e.detail,
            e.outcome
        ])
    })
    .map_err(sql("ui_record_audit"))?;
    Ok(tx.last_insert_rowid())
}

/// What the audit trail shows for one workflow or one attempt.
#[derive(Clone, Debug)]
pub enum AuditOf<'a> {
    Workflow(&'a str),
    Attempt(AttemptId),
}

/// The newest `n` audit entries of a workflow or an attempt, newest first.
pub fn audit(tx: &Tx<'_>, of: &AuditOf<'_>, n: usize) -> Result<Vec<AuditEntry>, Error> {
    let (filter, key): (&str, rusqlite::types::Value) = match of {
        AuditOf::Workflow(w) => ("workflow = ?1", (*w).to_owned().into()),
        AuditOf::Attempt(a) => ("attempt_id = ?1", a.0.into()),
    };
    let text = format!(
        "SELECT id, at, actor, action, workflow, attempt_id, detail, outcome FROM audit \
         WHERE {filter} ORDER BY id DESC LIMIT ?2"
    );
    let mut stmt = tx.prepare_cached(&text).map_err(sql("ui_audit"))?;
    let rows = stmt
        .query_map(params![key, limit(n)], |r| {
            Ok(AuditEntry {
                id: r.get(0)?,
                at: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                workflow: r.get(4)?,
                attempt: r.get::<_, Option<i64>>(5)?.map(AttemptId),
                detail: r.get(6)?,
                outcome: r.get(7)?,
            })
        })
        .map_err(sql("ui_audit"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql("ui_audit"));
    rows
}

/// The evaluated params of one run of a task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunParams {
    pub fence: i64,
    /// A JSON object.
    pub params: Option<String>,
    /// A JSON list of the keys whose values are secret.
    pub secret_keys: Option<String>,
}

/// The evaluated params of each run of a task, in start order (large values put back from
/// `run_values`).
pub fn run_params(tx: &Tx<'_>, task: TaskId) -> Result<Vec<RunParams>, Error> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT r.fence, r.params, r.secret_keys, r.params_refs, t.attempt_id \
             FROM task_runs r JOIN tasks t ON t.id = r.task_id \
             WHERE r.task_id = ?1 ORDER BY r.id",
        )
        .map_err(sql("ui_run_params"))?;
    let rows = stmt
        .query_map(params![task.0], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })
        .map_err(sql("ui_run_params"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql("ui_run_params"))?;
    rows.into_iter()
        .map(|(fence, params, secret_keys, refs, attempt)| {
            Ok(RunParams {
                fence,
                params: super::run_values::expand(tx, attempt, params, refs.as_deref())?,
                secret_keys,
            })
        })
        .collect()
}
