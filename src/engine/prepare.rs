//! `prepare_attempt`: project, revision, session and attempt rows, deduplicated by the schema.
//!
//! A finished attempt reuses its row (the `UNIQUE(session, name)` rule holds): in one
//! transaction the attempt gets a new generation and a fresh root; the old tree stays as
//! history under the old root. `--rerun` keeps nothing of it; a resume (a failed or killed
//! attempt run again without `--rerun`) records the old root, and every task instantiated in
//! the new tree whose full name succeeded there is inserted succeeded (`Apply::keep`).

use super::apply::Apply;
use super::TaskState;
use super::{def, AttemptState, Error, NewAttempt, PreparedAttempt};
use crate::ids::{AttemptId, SessionId};
use crate::store::rows::{json_map, to_json};
use crate::store::{sql, Tx};
use jiff::Timestamp;
use rusqlite::{params, OptionalExtension};
use sha2::{Digest, Sha256};

/// The revision hash: the workflow name and every source (path, text), length-prefixed so
/// no two different inputs hash alike by concatenation.
pub(crate) fn revision_hash(workflow: &str, sources: &[(std::path::PathBuf, String)]) -> String {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(workflow.as_bytes());
    for (path, text) in sources {
        field(path.to_string_lossy().as_bytes());
        field(text.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn prepare(
    tx: &Tx<'_>,
    req: &NewAttempt,
    now: Timestamp,
) -> Result<PreparedAttempt, Error> {
    let now_s = now.to_string();
    let dir = std::fs::canonicalize(&req.project_dir).unwrap_or_else(|_| req.project_dir.clone());
    let dir = dir.to_string_lossy().into_owned();
    tx.execute(
        "INSERT INTO projects (dir, created_at) VALUES (?1, ?2) ON CONFLICT (dir) DO NOTHING",
        params![dir, now_s],
    )
    .map_err(sql("insert_project"))?;
    let project: i64 = tx
        .query_row(
            "SELECT id FROM projects WHERE dir = ?1",
            params![dir],
            |r| r.get(0),
        )
        .map_err(sql("select_project"))?;

    let wf = &req.workflow;
    let hash = revision_hash(&wf.name, &req.sources);
    let sources: Vec<(String, &str)> = req
        .sources
        .iter()
        .map(|(p, t)| (p.to_string_lossy().into_owned(), t.as_str()))
        .collect();
    tx.execute(
        "INSERT INTO revisions (project_id, workflow, hash, timezone, definition, sources, \
         created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (project_id, workflow, hash) DO NOTHING",
        params![
            project,
            wf.name,
            hash,
            wf.timezone,
            def::to_json(&wf.root),
            to_json(&sources),
            now_s
        ],
    )
    .map_err(sql("insert_revision"))?;
    let revision: i64 = tx
        .query_row(
            "SELECT id FROM revisions WHERE project_id = ?1 AND workflow = ?2 AND hash = ?3",
            params![project, wf.name, hash],
            |r| r.get(0),
        )
        .map_err(sql("select_revision"))?;

    let session_time = req.session_time.to_string();
    tx.execute(
        "INSERT INTO sessions (project_id, workflow, session_time, session_uuid, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (project_id, workflow, session_time) DO NOTHING",
        params![
            project,
            wf.name,
            session_time,
            uuid::Uuid::new_v4().to_string(),
            now_s
        ],
    )
    .map_err(sql("insert_session"))?;
    let session: i64 = tx
        .query_row(
            "SELECT id FROM sessions WHERE project_id = ?1 AND workflow = ?2 AND session_time = ?3",
            params![project, wf.name, session_time],
            |r| r.get(0),
        )
        .map_err(sql("select_session"))?;

    let name = req.attempt_name.clone().unwrap_or_default();
    let (last_session_time, next_session_time) = schedule_neighbours(wf, req.session_time);
    let params_json = to_json(&req.params);
    // The schema decides whether the attempt is new: no read-then-write race.
    let inserted: Option<i64> = tx
        .query_row(
            "INSERT INTO attempts (session_id, attempt_name, revision_id, params, state, \
             created_at, last_session_time, next_session_time) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
             ON CONFLICT (session_id, attempt_name) DO NOTHING RETURNING id",
            params![
                session,
                name,
                revision,
                params_json,
                AttemptState::Running.as_str(),
                now_s,
                last_session_time.map(|t| t.to_string()),
                next_session_time.map(|t| t.to_string()),
            ],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql("insert_attempt"))?;
    if let Some(id) = inserted {
        let attempt = AttemptId(id);
        Apply::new(tx, now)
            .deferring_starts()
            .instantiate_root(attempt, 0, &wf.root)?;
        return Ok(PreparedAttempt {
            session: SessionId(session),
            attempt,
            created: true,
            state: AttemptState::Running,
            resumed: None,
        });
    }
    let (id, state, generation, old_root, old_params): (i64, String, i64, Option<i64>, String) = tx
        .query_row(
            "SELECT id, state, generation, root_task_id, params FROM attempts \
             WHERE session_id = ?1 AND attempt_name = ?2",
            params![session, name],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .map_err(sql("select_attempt"))?;
    let attempt = AttemptId(id);
    let state = AttemptState::parse(&state).unwrap_or(AttemptState::Failed);
    // A failed or killed try is resumed unless `--rerun` asks for a fresh tree; a succeeded
    // attempt stays finished (Digdag refuses to resume one, too).
    let resume_root = match (state, req.rerun) {
        (AttemptState::Failed | AttemptState::Killed, false) => old_root,
        _ => None,
    };
    if !(req.rerun && state.is_finished()) && resume_root.is_none() {
        return Ok(PreparedAttempt {
            session: SessionId(session),
            attempt,
            created: false,
            state,
            resumed: None,
        });
    }
    let kept = match resume_root {
        Some(root) => count_kept(tx, root)?,
        None => 0,
    };
    let params_json = match resume_root {
        // Like `digdag retry`, the new `-p`/`-P` params are merged over the old ones.
        Some(_) => {
            let mut merged = json_map("attempt params", Some(&old_params))?;
            merged.extend(req.params.clone());
            to_json(&merged)
        }
        None => params_json,
    };
    tx.execute(
        "UPDATE attempts SET state = ?1, finished_at = NULL, revision_id = ?2, params = ?3, \
         generation = ?4, resume_root_task_id = ?5 WHERE id = ?6",
        params![
            AttemptState::Running.as_str(),
            revision,
            params_json,
            generation + 1,
            resume_root,
            id
        ],
    )
    .map_err(sql("restart_attempt"))?;
    Apply::new(tx, now)
        .deferring_starts()
        .instantiate_root(attempt, generation + 1, &wf.root)?;
    // Kept tasks may already finish the new tree (a definition whose failed part is gone).
    let state: String = tx
        .query_row(
            "SELECT state FROM attempts WHERE id = ?1",
            params![id],
            |r| r.get(0),
        )
        .map_err(sql("select_attempt"))?;
    Ok(PreparedAttempt {
        session: SessionId(session),
        attempt,
        created: true,
        state: AttemptState::parse(&state).unwrap_or(AttemptState::Failed),
        resumed: resume_root.map(|_| kept),
    })
}

/// Succeeded leaves of the previous tree (under `root`, live rows only, `^error` subtrees
/// excluded: a handler runs again when its task fails again), which a resume keeps: operator
/// tasks, and groups without children (empty ones, and groups kept by an earlier resume,
/// which count as one task whatever they held).
fn count_kept(tx: &Tx<'_>, root: i64) -> Result<usize, Error> {
    let n: i64 = tx
        .query_row(
            "WITH RECURSIVE d(id, child_epoch) AS ( \
               SELECT id, child_epoch FROM tasks WHERE id = ?1 \
               UNION ALL SELECT t.id, t.child_epoch FROM d CROSS JOIN tasks t \
                 WHERE t.parent_id = d.id AND t.epoch = d.child_epoch AND t.role != 'error') \
             SELECT COUNT(*) FROM d CROSS JOIN tasks t ON t.id = d.id \
             WHERE t.state = ?2 AND t.id != ?1 AND (t.kind = 'operator' OR NOT EXISTS ( \
               SELECT 1 FROM tasks c WHERE c.parent_id = t.id AND c.epoch = t.child_epoch))",
            params![root, TaskState::Succeeded.as_str()],
            |r| r.get(0),
        )
        .map_err(sql("count_kept"))?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// `last_session_time` and `next_session_time` of a session of a scheduled workflow: the
/// schedule's slots just before and after it (Digdag computes them for every attempt of a
/// workflow with `schedule:`, manual ones included). `None` without a schedule.
fn schedule_neighbours(
    wf: &crate::dig::Workflow,
    session_time: Timestamp,
) -> (Option<Timestamp>, Option<Timestamp>) {
    let Some(def) = &wf.schedule else {
        return (None, None);
    };
    // The loader validated the schedule; a failure here leaves the variables absent.
    let Ok(schedule) = crate::schedule::Schedule::from_def(def, &wf.timezone) else {
        return (None, None);
    };
    (
        schedule.previous(session_time).map(|s| s.session_time),
        schedule.next(session_time).map(|s| s.session_time),
    )
}
