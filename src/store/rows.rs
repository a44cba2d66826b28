//! Typed rows and the queries over them; every state string goes through `TaskState`.

use super::{sql, Error, Tx};
use crate::engine::state::TaskState;
use crate::expr::JsonMap;
use crate::ids::{AttemptId, Fence, TaskId};
use jiff::Timestamp;
use rusqlite::{params, OptionalExtension, Row};

/// Why a task row exists under its parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Root,
    /// Declared in the definition (statically, or inside a generated `^sub` tree).
    Static,
    /// The `^sub` output of a generator operator.
    Sub,
    Check,
    Error,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Root => "root",
            Role::Static => "static",
            Role::Sub => "sub",
            Role::Check => "check",
            Role::Error => "error",
        }
    }

    fn parse(s: &str) -> Result<Role, Error> {
        [
            Role::Root,
            Role::Static,
            Role::Sub,
            Role::Check,
            Role::Error,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
        .ok_or_else(|| Error::Corrupt {
            what: "task role",
            detail: s.to_owned(),
        })
    }
}

/// One `tasks` row.
#[derive(Clone, Debug)]
pub struct TaskRow {
    pub id: TaskId,
    pub attempt: AttemptId,
    pub parent: Option<TaskId>,
    pub epoch: i64,
    pub child_index: i64,
    pub full_name: String,
    pub is_group: bool,
    pub role: Role,
    /// The task's own `_export:` as stored by `engine::def::map_to_json` (the full definition
    /// is loaded on demand: a group's holds its whole subtree).
    pub export_def: String,
    pub state: TaskState,
    pub child_epoch: i64,
    pub retry_policy: Option<String>,
    pub retry_count: u32,
    pub retry_at: Option<Timestamp>,
    pub fence: Fence,
    pub interrupted_count: u32,
    pub first_started: Option<Timestamp>,
    pub params: Option<String>,
    pub export_params: Option<String>,
    pub store_params: Option<String>,
    pub reset_store: Option<String>,
    pub error: Option<String>,
    pub pending_state: Option<TaskState>,
    pub pgid: Option<u32>,
}

pub const TASK_COLUMNS: &str = "id, attempt_id, parent_id, epoch, child_index, full_name, kind, \
    role, export_def, state, child_epoch, retry_policy, retry_count, retry_at_ms, fence, \
    interrupted_count, first_started_ms, params, export_params, store_params, reset_store, \
    error, pending_state, pgid";

pub fn ms_to_ts(ms: Option<i64>) -> Option<Timestamp> {
    ms.and_then(|m| Timestamp::from_millisecond(m).ok())
}

pub fn ts_ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

fn state_col(row: &Row<'_>, idx: usize) -> rusqlite::Result<TaskState> {
    let s: String = row.get(idx)?;
    s.parse().map_err(|e: crate::engine::state::UnknownState| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn task_from_row(row: &Row<'_>) -> rusqlite::Result<(TaskRow, String)> {
    let pending: Option<String> = row.get(22)?;
    let pending_state = match pending {
        Some(s) => Some(s.parse().map_err(|e: crate::engine::state::UnknownState| {
            rusqlite::Error::FromSqlConversionFailure(22, rusqlite::types::Type::Text, Box::new(e))
        })?),
        None => None,
    };
    let kind: String = row.get(6)?;
    let role: String = row.get(7)?;
    Ok((
        TaskRow {
            id: TaskId(row.get(0)?),
            attempt: AttemptId(row.get(1)?),
            parent: row.get::<_, Option<i64>>(2)?.map(TaskId),
            epoch: row.get(3)?,
            child_index: row.get(4)?,
            full_name: row.get(5)?,
            is_group: kind == "group",
            role: Role::Root,
            export_def: row.get(8)?,
            state: state_col(row, 9)?,
            child_epoch: row.get(10)?,
            retry_policy: row.get(11)?,
            retry_count: row.get(12)?,
            retry_at: ms_to_ts(row.get(13)?),
            fence: Fence(row.get(14)?),
            interrupted_count: row.get(15)?,
            first_started: ms_to_ts(row.get(16)?),
            params: row.get(17)?,
            export_params: row.get(18)?,
            store_params: row.get(19)?,
            reset_store: row.get(20)?,
            error: row.get(21)?,
            pending_state,
            pgid: row.get(23)?,
        },
        role,
    ))
}

fn finish_row(pair: (TaskRow, String)) -> Result<TaskRow, Error> {
    let (mut row, role) = pair;
    row.role = Role::parse(&role)?;
    Ok(row)
}

/// Loads tasks matching a `WHERE` clause (with `?` params), in id order.
pub fn select_tasks(
    tx: &Tx<'_>,
    op: &'static str,
    where_clause: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<TaskRow>, Error> {
    let mut stmt = tx
        .prepare_cached(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE {where_clause} ORDER BY id"
        ))
        .map_err(sql(op))?;
    let rows = stmt
        .query_map(args, task_from_row)
        .map_err(sql(op))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql(op))?;
    rows.into_iter().map(finish_row).collect()
}

pub fn load_task(tx: &Tx<'_>, id: TaskId) -> Result<TaskRow, Error> {
    select_tasks(tx, "load_task", "id = ?1", params![id.0])?
        .pop()
        .ok_or(Error::NotFound {
            what: "task",
            id: id.0,
        })
}

/// The full definition text of a task.
pub fn load_definition(tx: &Tx<'_>, id: TaskId) -> Result<String, Error> {
    tx.prepare_cached("SELECT definition FROM tasks WHERE id = ?1")
        .and_then(|mut s| s.query_row(params![id.0], |r| r.get(0)))
        .optional()
        .map_err(sql("load_definition"))?
        .ok_or(Error::NotFound {
            what: "task",
            id: id.0,
        })
}

/// The live children of `parent` (its current epoch), in definition order.
pub fn live_children(tx: &Tx<'_>, parent: &TaskRow) -> Result<Vec<TaskRow>, Error> {
    select_tasks(
        tx,
        "live_children",
        "parent_id = ?1 AND epoch = ?2",
        params![parent.id.0, parent.child_epoch],
    )
}

/// Blocked live children of a planned `parent` whose upstreams all succeeded, in id order.
pub fn unblockable_children(tx: &Tx<'_>, parent: &TaskRow) -> Result<Vec<TaskRow>, Error> {
    select_tasks(
        tx,
        "unblockable_children",
        "parent_id = ?1 AND epoch = ?2 AND state = ?3 AND pending_upstreams = 0",
        params![parent.id.0, parent.child_epoch, TaskState::Blocked.as_str()],
    )
}

/// How many live children of `parent` are still progressing.
pub fn count_progressing_children(tx: &Tx<'_>, parent: &TaskRow) -> Result<i64, Error> {
    let states: Vec<&str> = TaskState::ALL
        .into_iter()
        .filter(|s| s.is_progressing())
        .map(TaskState::as_str)
        .collect();
    let placeholders = vec!["?"; states.len()].join(",");
    let mut stmt = tx
        .prepare_cached(&format!(
            "SELECT COUNT(*) FROM tasks WHERE parent_id = ? AND epoch = ? AND state IN ({placeholders})"
        ))
        .map_err(sql("count_progressing_children"))?;
    let mut args: Vec<&dyn rusqlite::ToSql> = vec![&parent.id.0, &parent.child_epoch];
    for s in &states {
        args.push(s);
    }
    stmt.query_row(args.as_slice(), |r| r.get(0))
        .map_err(sql("count_progressing_children"))
}

/// What a new row needs.
pub struct NewTask<'a> {
    pub attempt: AttemptId,
    pub parent: Option<TaskId>,
    pub epoch: i64,
    pub child_index: i64,
    pub full_name: &'a str,
    pub is_group: bool,
    pub role: Role,
    pub definition: &'a str,
    pub export_def: &'a str,
}

pub fn insert_task(tx: &Tx<'_>, t: &NewTask<'_>, now: Timestamp) -> Result<TaskId, Error> {
    let now_s = now.to_string();
    tx.prepare_cached(
        "INSERT INTO tasks (attempt_id, parent_id, epoch, child_index, full_name, kind, role, \
         definition, export_def, state, created_at, updated_at) \
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?11)",
    )
    .and_then(|mut s| {
        s.execute(params![
            t.attempt.0,
            t.parent.map(|p| p.0),
            t.epoch,
            t.child_index,
            t.full_name,
            if t.is_group { "group" } else { "operator" },
            t.role.as_str(),
            t.definition,
            t.export_def,
            TaskState::Blocked.as_str(),
            now_s,
        ])
    })
    .map_err(sql("insert_task"))?;
    let id = TaskId(tx.last_insert_rowid());
    record_transition(tx, id, None, TaskState::Blocked, now, "instantiated")?;
    Ok(id)
}

/// Adds an edge; the downstream counts one more pending upstream unless it already succeeded.
pub fn insert_edge(tx: &Tx<'_>, upstream: TaskId, downstream: TaskId) -> Result<(), Error> {
    tx.prepare_cached("INSERT INTO task_edges (upstream_id, downstream_id) VALUES (?1, ?2)")
        .and_then(|mut s| s.execute(params![upstream.0, downstream.0]))
        .map_err(sql("insert_edge"))?;
    tx.prepare_cached(
        "UPDATE tasks SET pending_upstreams = pending_upstreams + 1 WHERE id = ?1 \
         AND (SELECT state FROM tasks WHERE id = ?2) != ?3",
    )
    .and_then(|mut s| {
        s.execute(params![
            downstream.0,
            upstream.0,
            TaskState::Succeeded.as_str()
        ])
    })
    .map_err(sql("insert_edge"))?;
    Ok(())
}

/// Called in the transaction that makes `upstream` succeed.
pub fn release_downstreams(tx: &Tx<'_>, upstream: TaskId) -> Result<(), Error> {
    tx.prepare_cached(
        "UPDATE tasks SET pending_upstreams = pending_upstreams - 1 WHERE id IN \
         (SELECT downstream_id FROM task_edges WHERE upstream_id = ?1)",
    )
    .and_then(|mut s| s.execute(params![upstream.0]))
    .map_err(sql("release_downstreams"))?;
    Ok(())
}

/// Writes a state change and its history row. `from` guards the update: a row that moved
/// meanwhile is a bug and reported as `Corrupt`.
pub fn set_state(
    tx: &Tx<'_>,
    task: TaskId,
    from: TaskState,
    to: TaskState,
    now: Timestamp,
    reason: &str,
) -> Result<(), Error> {
    let finished = to.is_terminal().then(|| now.to_string());
    let n = tx
        .prepare_cached(
            "UPDATE tasks SET state = ?1, updated_at = ?2, finished_at = COALESCE(?3, finished_at) \
             WHERE id = ?4 AND state = ?5",
        )
        .and_then(|mut s| {
            s.execute(params![
                to.as_str(),
                now.to_string(),
                finished,
                task.0,
                from.as_str()
            ])
        })
        .map_err(sql("set_state"))?;
    if n != 1 {
        return Err(Error::Corrupt {
            what: "task state",
            detail: format!("task {task} was not in state `{from}`"),
        });
    }
    record_transition(tx, task, Some(from), to, now, reason)
}

fn record_transition(
    tx: &Tx<'_>,
    task: TaskId,
    from: Option<TaskState>,
    to: TaskState,
    now: Timestamp,
    reason: &str,
) -> Result<(), Error> {
    tx.prepare_cached(
        "INSERT INTO state_transitions (task_id, from_state, to_state, at, reason) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut s| {
        s.execute(params![
            task.0,
            from.map(TaskState::as_str),
            to.as_str(),
            now.to_string(),
            reason
        ])
    })
    .map_err(sql("record_transition"))?;
    Ok(())
}

/// Parses an optional JSON-object column.
pub fn json_map(what: &'static str, text: Option<&str>) -> Result<JsonMap, Error> {
    match text {
        None => Ok(JsonMap::new()),
        Some(t) => super::json::from_str(t).map_err(|source| Error::Json { what, source }),
    }
}

pub fn to_json<T: serde::Serialize>(v: &T) -> String {
    // Values here are serde_json maps and lists of strings: serialization cannot fail.
    serde_json::to_string(v).unwrap_or_else(|_| String::from("null"))
}

/// Attempt-level facts the engine needs to evaluate params.
#[derive(Clone, Debug)]
pub struct AttemptRow {
    pub id: AttemptId,
    pub session_id: i64,
    pub project_id: i64,
    pub workflow: String,
    pub session_time: Timestamp,
    pub session_uuid: String,
    pub attempt_name: String,
    pub timezone: String,
    pub params: JsonMap,
    pub state: String,
    pub root: Option<TaskId>,
    pub generation: i64,
    /// The schedule's previous and next session times, fixed when the attempt was created.
    pub last_session_time: Option<Timestamp>,
    pub next_session_time: Option<Timestamp>,
    /// The root of the previous try's tree while the attempt resumes it (`None` for a fresh
    /// attempt or a `--rerun`): succeeded tasks are looked up there by full name.
    pub resume_root: Option<TaskId>,
}

pub fn load_attempt(tx: &Tx<'_>, id: AttemptId) -> Result<AttemptRow, Error> {
    // Cached: `apply` loads the attempt on every event, and preparing this join was a visible
    // share of the engine's time per task.
    let row = tx
        .prepare_cached(
            "SELECT a.id, s.id, s.project_id, s.workflow, s.session_time, s.session_uuid, \
             a.attempt_name, r.timezone, a.params, a.state, a.root_task_id, a.generation, \
             a.last_session_time, a.next_session_time, a.resume_root_task_id \
             FROM attempts a JOIN sessions s ON s.id = a.session_id \
             JOIN revisions r ON r.id = a.revision_id WHERE a.id = ?1",
        )
        .and_then(|mut s| {
            s.query_row(params![id.0], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, String>(8)?,
                    r.get::<_, String>(9)?,
                    r.get::<_, Option<i64>>(10)?,
                    r.get::<_, i64>(11)?,
                    r.get::<_, Option<String>>(12)?,
                    r.get::<_, Option<String>>(13)?,
                    r.get::<_, Option<i64>>(14)?,
                ))
            })
        })
        .optional()
        .map_err(sql("load_attempt"))?
        .ok_or(Error::NotFound {
            what: "attempt",
            id: id.0,
        })?;
    let session_time = row.4.parse().map_err(|e: jiff::Error| Error::Corrupt {
        what: "session_time",
        detail: e.to_string(),
    })?;
    Ok(AttemptRow {
        id: AttemptId(row.0),
        session_id: row.1,
        project_id: row.2,
        workflow: row.3,
        session_time,
        session_uuid: row.5,
        attempt_name: row.6,
        timezone: row.7,
        params: json_map("attempt params", Some(&row.8))?,
        state: row.9,
        root: row.10.map(TaskId),
        generation: row.11,
        last_session_time: optional_time("last_session_time", row.12.as_deref())?,
        next_session_time: optional_time("next_session_time", row.13.as_deref())?,
        resume_root: row.14.map(TaskId),
    })
}

fn optional_time(what: &'static str, text: Option<&str>) -> Result<Option<Timestamp>, Error> {
    text.map(|t| {
        t.parse().map_err(|e: jiff::Error| Error::Corrupt {
            what,
            detail: e.to_string(),
        })
    })
    .transpose()
}
