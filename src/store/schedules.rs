//! Schedule rows: the next slot of every scheduled workflow, kept in the store so a restart
//! continues exactly where the last process stopped, and the record of slots that were
//! skipped. Times are integer unix milliseconds, compared in SQL.

use super::{sql, Error, Tx};
use crate::ids::ProjectId;
use jiff::Timestamp;
use rusqlite::{params, OptionalExtension};

/// One `schedules` row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleRow {
    pub id: i64,
    pub project: ProjectId,
    pub workflow: String,
    /// The rule as loaded; a different text means the schedule changed.
    pub spec: String,
    pub next_session: Option<Timestamp>,
    pub next_run: Option<Timestamp>,
    pub last_session: Option<Timestamp>,
    /// Slots whose run time is before this were missed while nothing served the schedule.
    pub armed: Timestamp,
    pub disabled_at: Option<String>,
    pub disabled_reason: Option<String>,
}

const COLUMNS: &str = "id, project_id, workflow, spec, next_session_ms, next_run_ms, \
                       last_session_ms, armed_ms, disabled_at, disabled_reason";

fn ts(ms: Option<i64>) -> Option<Timestamp> {
    ms.and_then(|m| Timestamp::from_millisecond(m).ok())
}

fn ms(t: Option<Timestamp>) -> Option<i64> {
    t.map(|t| t.as_millisecond())
}

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ScheduleRow> {
    Ok(ScheduleRow {
        id: r.get(0)?,
        project: ProjectId(r.get(1)?),
        workflow: r.get(2)?,
        spec: r.get(3)?,
        next_session: ts(r.get(4)?),
        next_run: ts(r.get(5)?),
        last_session: ts(r.get(6)?),
        armed: ts(Some(r.get(7)?)).unwrap_or(Timestamp::UNIX_EPOCH),
        disabled_at: r.get(8)?,
        disabled_reason: r.get(9)?,
    })
}

/// Every schedule of a project, by workflow name.
pub fn list(tx: &Tx<'_>, project: ProjectId) -> Result<Vec<ScheduleRow>, Error> {
    let mut stmt = tx
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM schedules WHERE project_id = ?1 ORDER BY workflow"
        ))
        .map_err(sql("list_schedules"))?;
    let rows = stmt
        .query_map(params![project.0], from_row)
        .map_err(sql("list_schedules"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql("list_schedules"));
    rows
}

pub fn load(tx: &Tx<'_>, id: i64) -> Result<Option<ScheduleRow>, Error> {
    tx.prepare_cached(&format!("SELECT {COLUMNS} FROM schedules WHERE id = ?1"))
        .and_then(|mut s| s.query_row(params![id], from_row).optional())
        .map_err(sql("load_schedule"))
}

/// A new schedule whose first slot is `next`.
pub fn insert(
    tx: &Tx<'_>,
    project: ProjectId,
    workflow: &str,
    spec: &str,
    next: Option<crate::schedule::Slot>,
    now: Timestamp,
) -> Result<i64, Error> {
    tx.prepare_cached(
        "INSERT INTO schedules (project_id, workflow, spec, next_session_ms, next_run_ms, \
         armed_ms, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) RETURNING id",
    )
    .and_then(|mut s| {
        s.query_row(
            params![
                project.0,
                workflow,
                spec,
                ms(next.map(|s| s.session_time)),
                ms(next.map(|s| s.run_time)),
                now.as_millisecond(),
                now.to_string()
            ],
            |r| r.get(0),
        )
    })
    .map_err(sql("insert_schedule"))
}

/// A changed rule: its next slot is recomputed and slots before `armed` count as missed.
pub fn update_spec(
    tx: &Tx<'_>,
    id: i64,
    spec: &str,
    next: Option<crate::schedule::Slot>,
    armed: Timestamp,
    now: Timestamp,
) -> Result<(), Error> {
    tx.prepare_cached(
        "UPDATE schedules SET spec = ?2, next_session_ms = ?3, next_run_ms = ?4, armed_ms = ?5, \
         updated_at = ?6 WHERE id = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![
            id,
            spec,
            ms(next.map(|s| s.session_time)),
            ms(next.map(|s| s.run_time)),
            armed.as_millisecond(),
            now.to_string()
        ])
    })
    .map_err(sql("update_schedule"))?;
    Ok(())
}

/// A daemon starts serving the project: slots due before `armed` are catch-up slots.
pub fn arm_all(tx: &Tx<'_>, project: ProjectId, armed: Timestamp) -> Result<(), Error> {
    tx.prepare_cached("UPDATE schedules SET armed_ms = ?2 WHERE project_id = ?1")
        .and_then(|mut s| s.execute(params![project.0, armed.as_millisecond()]))
        .map_err(sql("arm_schedules"))?;
    Ok(())
}

/// The workflow no longer has a schedule (or no longer exists).
pub fn delete(tx: &Tx<'_>, id: i64) -> Result<(), Error> {
    tx.prepare_cached("DELETE FROM schedules WHERE id = ?1")
        .and_then(|mut s| s.execute(params![id]))
        .map_err(sql("delete_schedule"))?;
    Ok(())
}

/// The enabled schedule of `project` due first at `now`, if any is due.
pub fn first_due(
    tx: &Tx<'_>,
    project: ProjectId,
    now: Timestamp,
) -> Result<Option<ScheduleRow>, Error> {
    tx.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM schedules WHERE project_id = ?1 AND disabled_at IS NULL \
         AND next_run_ms <= ?2 ORDER BY next_run_ms, id LIMIT 1"
    ))
    .and_then(|mut s| {
        s.query_row(params![project.0, now.as_millisecond()], from_row)
            .optional()
    })
    .map_err(sql("first_due_schedule"))
}

/// When the next enabled slot of `project` is due.
pub fn earliest_run(tx: &Tx<'_>, project: ProjectId) -> Result<Option<Timestamp>, Error> {
    let ms: Option<i64> = tx
        .prepare_cached(
            "SELECT MIN(next_run_ms) FROM schedules WHERE project_id = ?1 AND disabled_at IS NULL",
        )
        .and_then(|mut s| s.query_row(params![project.0], |r| r.get(0)))
        .map_err(sql("earliest_schedule"))?;
    Ok(ts(ms))
}

/// Moves the schedule past `slot` to `next`, only if it still points at `slot`
/// (compare-and-advance: of two processes firing the same slot, one advances it).
pub fn advance(
    tx: &Tx<'_>,
    id: i64,
    slot: Timestamp,
    next: Option<crate::schedule::Slot>,
    now: Timestamp,
) -> Result<bool, Error> {
    let n = tx
        .prepare_cached(
            "UPDATE schedules SET last_session_ms = ?2, next_session_ms = ?3, next_run_ms = ?4, \
             updated_at = ?5 WHERE id = ?1 AND next_session_ms = ?2",
        )
        .and_then(|mut s| {
            s.execute(params![
                id,
                slot.as_millisecond(),
                ms(next.map(|s| s.session_time)),
                ms(next.map(|s| s.run_time)),
                now.to_string()
            ])
        })
        .map_err(sql("advance_schedule"))?;
    Ok(n == 1)
}

/// Records a slot that did not start an attempt.
pub fn record_event(
    tx: &Tx<'_>,
    id: i64,
    slot: crate::schedule::Slot,
    now: Timestamp,
    outcome: &str,
    reason: &str,
) -> Result<(), Error> {
    tx.prepare_cached(
        "INSERT INTO schedule_events (schedule_id, session_time, run_time, at, outcome, reason) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut s| {
        s.execute(params![
            id,
            slot.session_time.to_string(),
            slot.run_time.to_string(),
            now.to_string(),
            outcome,
            reason
        ])
    })
    .map_err(sql("record_schedule_event"))?;
    Ok(())
}

/// Whether a session of this workflow exists at `session_time` already.
pub fn session_exists(
    tx: &Tx<'_>,
    project: ProjectId,
    workflow: &str,
    session_time: Timestamp,
) -> Result<bool, Error> {
    tx.prepare_cached(
        "SELECT 1 FROM sessions WHERE project_id = ?1 AND workflow = ?2 AND session_time = ?3",
    )
    .and_then(|mut s| {
        s.query_row(
            params![project.0, workflow, session_time.to_string()],
            |_| Ok(()),
        )
        .optional()
    })
    .map(|r| r.is_some())
    .map_err(sql("session_exists"))
}

/// Whether the workflow has an attempt running (any session, manual ones included), as
/// `skip_on_overtime` asks.
pub fn has_running_attempt(tx: &Tx<'_>, project: ProjectId, workflow: &str) -> Result<bool, Error> {
    tx.prepare_cached(
        "SELECT 1 FROM attempts a JOIN sessions s ON s.id = a.session_id \
         WHERE s.project_id = ?1 AND s.workflow = ?2 AND a.state = 'running' LIMIT 1",
    )
    .and_then(|mut s| {
        s.query_row(params![project.0, workflow], |_| Ok(()))
            .optional()
    })
    .map(|r| r.is_some())
    .map_err(sql("has_running_attempt"))
}
