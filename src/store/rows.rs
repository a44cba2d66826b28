//! Typed rows and the queries over them; every state string goes through `TaskState`.

use super::{sql, Error, Tx};
use crate::engine::def::DefId;
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
    /// Its definition node (`task_defs`), shared by every row instantiated from it.
    pub def_id: DefId,
    pub state: TaskState,
    pub child_epoch: i64,
    pub retry_policy: Option<String>,
    pub retry_count: u32,
    pub retry_at: Option<Timestamp>,
    pub fence: Fence,
    pub interrupted_count: u32,
    pub first_started: Option<Timestamp>,
    pub export_params: Option<String>,
    pub store_params: Option<String>,
    pub reset_store: Option<String>,
    pub error: Option<String>,
    pub pending_state: Option<TaskState>,
    pub pgid: Option<u32>,
    /// When the current try of this planned task passes its `_timeout`.
    pub timeout_at: Option<Timestamp>,
    /// What its upstream siblings stored, folded (`engine::params`), once they succeeded.
    pub up_fold: Option<String>,
}

pub const TASK_COLUMNS: &str = "id, attempt_id, parent_id, epoch, child_index, full_name, kind, \
    role, def_id, state, child_epoch, retry_policy, retry_count, retry_at_ms, fence, \
    interrupted_count, first_started_ms, timeout_at_ms, export_params, store_params, \
    reset_store, error, pending_state, pgid, up_fold";

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
            def_id: DefId(row.get::<_, Option<i64>>(8)?.unwrap_or(0)),
            state: state_col(row, 9)?,
            child_epoch: row.get(10)?,
            retry_policy: row.get(11)?,
            retry_count: row.get(12)?,
            retry_at: ms_to_ts(row.get(13)?),
            fence: Fence(row.get(14)?),
            interrupted_count: row.get(15)?,
            first_started: ms_to_ts(row.get(16)?),
            timeout_at: ms_to_ts(row.get(17)?),
            export_params: row.get(18)?,
            store_params: row.get(19)?,
            reset_store: row.get(20)?,
            error: row.get(21)?,
            pending_state,
            pgid: row.get(23)?,
            up_fold: row.get(24)?,
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
    select_tasks_sql(tx, op, &format!("{where_clause} ORDER BY id"), args)
}

/// Like [`select_tasks`], for a `WHERE` clause that a partial index answers (few rows of a
/// large table): `ORDER BY +id` sorts the few rows found instead of letting SQLite, which has
/// no statistics, walk the whole table in id order to skip the sort (a full scan per tick,
/// 60 ms at 200,000 tasks, measured by `benches/api.rs`).
pub fn select_indexed_tasks(
    tx: &Tx<'_>,
    op: &'static str,
    where_clause: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<TaskRow>, Error> {
    select_tasks_sql(tx, op, &format!("{where_clause} {INDEXED_ORDER}"), args)
}

/// The order of [`select_indexed_tasks`].
pub const INDEXED_ORDER: &str = "ORDER BY +id";

/// Retry waits due at `?1` (all attempts when `?2` is null): the partial index
/// `tasks_retry_due` applies because the states are literal.
pub const DUE_RETRIES_WHERE: &str = "state IN ('retry_waiting', 'group_retry_waiting') \
     AND retry_at_ms <= ?1 AND (?2 IS NULL OR attempt_id = ?2)";

/// Planned tries whose `_timeout` passed at `?1` (`?2` the planned state, all attempts when
/// `?3` is null), through the partial index `tasks_by_timeout`.
pub const DUE_TIMEOUTS_WHERE: &str = "timeout_at_ms IS NOT NULL AND timeout_at_ms <= ?1 \
     AND state = ?2 AND (?3 IS NULL OR attempt_id = ?3)";

fn select_tasks_sql(
    tx: &Tx<'_>,
    op: &'static str,
    tail: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<TaskRow>, Error> {
    let mut stmt = tx
        .prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE {tail}"))
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

/// The guard of `Event::Completed`: the row, when `fence` is still its running fence, else
/// `None` (a stale report). The same write ends an interruption streak unless the outcome is
/// another interruption.
pub fn claim_completion(
    tx: &Tx<'_>,
    task: TaskId,
    fence: Fence,
    now: &str,
    interrupted: bool,
) -> Result<Option<TaskRow>, Error> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = SQL.get_or_init(|| {
        format!(
            "UPDATE tasks SET updated_at = ?1, \
             interrupted_count = CASE WHEN ?4 THEN interrupted_count ELSE 0 END \
             WHERE id = ?2 AND fence = ?3 AND state = 'running' RETURNING {TASK_COLUMNS}"
        )
    });
    tx.prepare_cached(text)
        .and_then(|mut s| {
            s.query_row(params![now, task.0, fence.0, interrupted], task_from_row)
                .optional()
        })
        .map_err(sql("claim_completion"))?
        .map(finish_row)
        .transpose()
}

/// The live children of `parent` (its current epoch), in definition order.
pub fn live_children(tx: &Tx<'_>, parent: &TaskRow) -> Result<Vec<TaskRow>, Error> {
    // `child_index` order is id order within one epoch, and the unique index provides it.
    let mut stmt = tx
        .prepare_cached(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE parent_id = ?1 AND epoch = ?2 \
             ORDER BY child_index"
        ))
        .map_err(sql("live_children"))?;
    let rows = stmt
        .query_map(params![parent.id.0, parent.child_epoch], task_from_row)
        .map_err(sql("live_children"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql("live_children"))?;
    rows.into_iter().map(finish_row).collect()
}

/// The `WHERE` of the partial index `tasks_open_children` (migration 11): the progressing
/// states. A query uses that index only if it repeats this text exactly. Written with `OR`
/// rather than `IN`: an IN list of more than two values costs a temporary b-tree each time a
/// state change evaluates the index's predicate.
pub const PROGRESSING_SQL: &str = "(state = 'ready' OR state = 'running' OR state = 'retry_waiting' OR state = 'group_retry_waiting' OR state = 'planned')";

/// Blocked live children of a planned `parent` whose upstreams all succeeded, in id order
/// (the partial index `tasks_blocked_children` holds blocked rows only).
pub fn unblockable_children(tx: &Tx<'_>, parent: &TaskRow) -> Result<Vec<TaskRow>, Error> {
    select_tasks(
        tx,
        "unblockable_children",
        "parent_id = ?1 AND epoch = ?2 AND state = 'blocked' AND pending_upstreams = 0",
        params![parent.id.0, parent.child_epoch],
    )
}

/// Whether any live child of `parent` is still progressing: an `EXISTS` on the partial index
/// of progressing rows, which stops at the first. A count read every running sibling of a
/// wide group on every completion (quadratic).
pub fn any_progressing_child(tx: &Tx<'_>, parent: &TaskRow) -> Result<bool, Error> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql_text = SQL.get_or_init(|| {
        format!(
            "SELECT EXISTS (SELECT 1 FROM tasks WHERE parent_id = ?1 AND epoch = ?2 \
             AND {PROGRESSING_SQL})"
        )
    });
    tx.prepare_cached(sql_text)
        .and_then(|mut s| s.query_row(params![parent.id.0, parent.child_epoch], |r| r.get(0)))
        .map_err(sql("any_progressing_child"))
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
    pub def_id: DefId,
}

/// Inserts a `blocked` row; the caller records the transition (`History`).
pub fn insert_task(tx: &Tx<'_>, t: &NewTask<'_>, now: &str) -> Result<TaskId, Error> {
    tx.prepare_cached(
        "INSERT INTO tasks (attempt_id, parent_id, epoch, child_index, full_name, kind, role, \
         def_id, state, created_at, updated_at) \
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?10)",
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
            t.def_id.0,
            TaskState::Blocked.as_str(),
            now,
        ])
    })
    .map_err(sql("insert_task"))?;
    Ok(TaskId(tx.last_insert_rowid()))
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

/// Called in the transaction that makes `upstream` succeed. The downstreams are read first
/// and updated by id: most tasks have none (parallel siblings, last tasks), and an
/// `IN (SELECT ...)` builds a temporary table on every call.
pub fn release_downstreams(tx: &Tx<'_>, upstream: TaskId) -> Result<(), Error> {
    let downstreams: Vec<i64> = tx
        .prepare_cached("SELECT downstream_id FROM task_edges WHERE upstream_id = ?1")
        .and_then(|mut s| {
            s.query_map(params![upstream.0], |r| r.get(0))?
                .collect::<Result<_, _>>()
        })
        .map_err(sql("release_downstreams"))?;
    for id in downstreams {
        tx.prepare_cached(
            "UPDATE tasks SET pending_upstreams = pending_upstreams - 1 WHERE id = ?1",
        )
        .and_then(|mut s| s.execute(params![id]))
        .map_err(sql("release_downstreams"))?;
    }
    Ok(())
}

/// Writes a state change (its history row is the caller's, `History`). `from` guards the
/// update: a row that moved meanwhile is a bug and reported as `Corrupt`.
pub fn set_state(
    tx: &Tx<'_>,
    task: TaskId,
    from: TaskState,
    to: TaskState,
    now: &str,
) -> Result<(), Error> {
    let n = tx
        .prepare_cached(
            "UPDATE tasks SET state = ?1, updated_at = ?2, \
             finished_at = CASE WHEN ?3 THEN ?2 ELSE finished_at END \
             WHERE id = ?4 AND state = ?5",
        )
        .and_then(|mut s| {
            s.execute(params![
                to.as_str(),
                now,
                to.is_terminal(),
                task.0,
                from.as_str()
            ])
        })
        .map_err(sql("set_state"))?;
    expect_one(n, task, from)
}

/// The row count of an update guarded by `state = from`: anything but one is a bug.
pub fn expect_one(n: usize, task: TaskId, from: TaskState) -> Result<(), Error> {
    if n != 1 {
        return Err(Error::Corrupt {
            what: "task state",
            detail: format!("task {task} was not in state `{from}`"),
        });
    }
    Ok(())
}

/// State changes of one transaction, written together before it commits: one multi-row
/// insert instead of one statement per transition.
#[derive(Default)]
pub struct History {
    rows: Vec<(TaskId, Option<TaskState>, TaskState, String)>,
}

impl History {
    pub fn record(&mut self, task: TaskId, from: Option<TaskState>, to: TaskState, reason: &str) {
        self.rows.push((task, from, to, reason.to_owned()));
    }

    /// Writes the recorded rows (in chunks, so each chunk's statement stays cached).
    pub fn flush(&mut self, tx: &Tx<'_>, now: &str) -> Result<(), Error> {
        const CHUNK: usize = 32;
        static SQL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        let statements = SQL.get_or_init(|| {
            (1..=CHUNK)
                .map(|n| {
                    let values: Vec<String> = (0..n)
                        .map(|i| {
                            let b = i * 4;
                            format!("(?{}, ?{}, ?{}, ?{}, ?{})", b + 2, b + 3, b + 4, 1, b + 5)
                        })
                        .collect();
                    format!(
                        "INSERT INTO state_transitions (task_id, from_state, to_state, at, reason) \
                         VALUES {}",
                        values.join(", ")
                    )
                })
                .collect()
        });
        for chunk in self.rows.chunks(CHUNK) {
            let mut stmt = tx
                .prepare_cached(&statements[chunk.len() - 1])
                .map_err(sql("record_transitions"))?;
            let mut args: Vec<&dyn rusqlite::ToSql> = vec![&now];
            let states: Vec<(Option<&str>, &str)> = chunk
                .iter()
                .map(|r| (r.1.map(TaskState::as_str), r.2.as_str()))
                .collect();
            for (row, (from, to)) in chunk.iter().zip(&states) {
                args.push(&row.0 .0);
                args.push(from);
                args.push(to);
                args.push(&row.3);
            }
            stmt.execute(args.as_slice())
                .map_err(sql("record_transitions"))?;
        }
        self.rows.clear();
        Ok(())
    }
}

/// Parses JSON that spade wrote, as deep as spade writes it (`store::json`: measured first,
/// then read on a growing stack, so deep but valid params never read as corrupt and never
/// overflow the stack).
pub fn parse_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    text: &str,
) -> Result<T, Error> {
    super::json::from_str(text).map_err(|source| Error::Json { what, source })
}

/// Parses an optional JSON-object column.
pub fn json_map(what: &'static str, text: Option<&str>) -> Result<JsonMap, Error> {
    match text {
        None => Ok(JsonMap::new()),
        Some(t) => parse_json(what, t),
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
    /// Rows of the live tree (`None` until counted, for attempts of an older spade).
    pub live_tasks: Option<i64>,
    /// While it resumes: the task (full name) that runs again with everything after it
    /// (`spade retry --from`).
    pub resume_from: Option<String>,
}

pub fn load_attempt(tx: &Tx<'_>, id: AttemptId) -> Result<AttemptRow, Error> {
    // Cached: `apply` loads the attempt on every event, and preparing this join was a visible
    // share of the engine's time per task.
    let row = tx
        .prepare_cached(
            "SELECT a.id, s.id, s.project_id, s.workflow, s.session_time, s.session_uuid, \
             a.attempt_name, r.timezone, a.params, a.state, a.root_task_id, a.generation, \
             a.last_session_time, a.next_session_time, a.resume_root_task_id, a.live_tasks, \
             a.resume_from FROM attempts a JOIN sessions s ON s.id = a.session_id \
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
                    r.get::<_, Option<i64>>(15)?,
                    r.get::<_, Option<String>>(16)?,
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
        live_tasks: row.15,
        resume_from: row.16,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_index_state_lists_match_the_state_model() {
        let progressing: Vec<String> = TaskState::ALL
            .into_iter()
            .filter(|s| s.is_progressing())
            .map(|s| format!("state = '{s}'"))
            .collect();
        assert_eq!(PROGRESSING_SQL, format!("({})", progressing.join(" OR ")));
        let schema = include_str!("../../schema/011_no_temp_tables.sql");
        assert!(schema.contains(&format!("WHERE {PROGRESSING_SQL};")));
    }

    /// The per-event queries seek the small indexes (a scan of a parent's children on every
    /// completion made wide groups quadratic).
    #[test]
    fn hot_queries_use_their_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("spade.db")).unwrap();
        let plan = |sql: &str| -> String {
            store
                .read("test", |tx| {
                    let mut stmt = tx.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
                    let rows: Vec<String> = stmt
                        .query_map([], |r| r.get::<_, String>(3))
                        .unwrap()
                        .map(Result::unwrap)
                        .collect();
                    Ok::<_, Error>(rows.join("; "))
                })
                .unwrap()
        };
        for (sql, index) in [
            (
                "SELECT id FROM tasks WHERE parent_id = 1 AND epoch = 0 AND state = 'blocked' \
                 AND pending_upstreams = 0 ORDER BY id",
                "tasks_blocked_children",
            ),
            (
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM tasks WHERE parent_id = 1 AND epoch = 0 \
                     AND {PROGRESSING_SQL})"
                ),
                "tasks_open_children",
            ),
            // The statements the engine runs on every tick, as it runs them (with their
            // `ORDER BY`, which is what made SQLite scan the table in id order instead).
            (
                &format!(
                    "SELECT id FROM tasks WHERE {} {INDEXED_ORDER}",
                    DUE_RETRIES_WHERE.replace("?1", "5").replace("?2", "NULL")
                ),
                "tasks_retry_due",
            ),
            (
                &format!(
                    "SELECT id FROM tasks WHERE {} {INDEXED_ORDER}",
                    DUE_TIMEOUTS_WHERE
                        .replace("?1", "5")
                        .replace("?2", "'planned'")
                        .replace("?3", "NULL")
                ),
                "tasks_by_timeout",
            ),
        ] {
            let got = plan(sql);
            assert!(got.contains(index), "{sql}: {got}");
            assert!(!got.contains("SCAN tasks"), "{sql}: {got}");
            // No temporary b-tree but the sort of the few rows an indexed query finds.
            let sorts_found_rows = sql.ends_with(INDEXED_ORDER);
            assert!(
                !got.replace("USE TEMP B-TREE FOR ORDER BY", "")
                    .contains("TEMP B-TREE")
                    && (sorts_found_rows || !got.contains("TEMP B-TREE")),
                "{sql}: {got}"
            );
        }
    }
}
