//! `prepare_attempt`: project, revision, session and attempt rows, deduplicated by the schema.
//!
//! A finished attempt reuses its row (the `UNIQUE(session, name)` rule holds): in one
//! transaction the attempt gets a new generation and a fresh root; the old tree stays as
//! history under the old root. `--rerun` keeps nothing of it; a resume (a failed or killed
//! attempt run again without `--rerun`) records the old root, and every operator task
//! instantiated in the new tree that succeeded there, under the same full name with the same
//! definition fingerprint and nothing before it running again, is inserted succeeded
//! (`engine::apply::resume`), while groups run again so that tasks added to them run.

use super::apply::Apply;
use super::def::{self, DefId};
use super::params::deep_merge;
use super::{AttemptState, Error, NewAttempt, PreparedAttempt, ResumeReport};
use crate::ids::{AttemptId, SessionId, TaskId};
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

pub(super) fn prepare(a: &mut Apply<'_, '_>, req: &NewAttempt) -> Result<PreparedAttempt, Error> {
    let tx = a.tx();
    let now_s = a.now().to_string();
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
    let (revision, root_def) = revision(tx, project, req, &now_s)?;

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
        a.defer_starts(true);
        a.instantiate_root(attempt, 0, root_def)?;
        return Ok(PreparedAttempt {
            session: SessionId(session),
            attempt,
            created: true,
            state: AttemptState::Running,
            resumed: None,
            resume: None,
            rerun: false,
        });
    }
    let (id, state, generation, old_root, old_params, old_revision): (
        i64,
        String,
        i64,
        Option<i64>,
        String,
        i64,
    ) = tx
        .query_row(
            "SELECT id, state, generation, root_task_id, params, revision_id FROM attempts \
             WHERE session_id = ?1 AND attempt_name = ?2",
            params![session, name],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            },
        )
        .map_err(sql("select_attempt"))?;
    let attempt = AttemptId(id);
    let state = AttemptState::parse(&state).unwrap_or(AttemptState::Failed);
    let old_params = json_map("attempt params", Some(&old_params))?;
    // Like `digdag retry` (`Retry.java`), new `-p`/`-P` params deep-merge over the old ones.
    let mut merged = old_params.clone();
    deep_merge(&mut merged, req.params.clone());
    if !state.is_finished() {
        // An unfinished attempt continues as it is: what would change it is refused rather
        // than silently dropped.
        if req.rerun {
            return Err(Error::Request(format!(
                "attempt {attempt} has not finished (spade stopped while it ran), so \
                 `--rerun` cannot start it over; run it again without `--rerun` to let it \
                 finish, or pass `--attempt-name NAME` to start a separate attempt"
            )));
        }
        if merged != old_params {
            return Err(Error::Request(format!(
                "attempt {attempt} has not finished (spade stopped while it ran) and continues \
                 with the params it started with; run it again without new `-p`/`-P` values \
                 to let it finish, or pass `--attempt-name NAME` to start a separate attempt \
                 with them"
            )));
        }
    }
    if req.resume_from.is_some() && (!state.is_finished() || req.rerun) {
        return Err(Error::Request(format!(
            "attempt {attempt} {}: a resume from a task needs a finished attempt and no \
             `--rerun`",
            if state.is_finished() {
                "is asked to rerun"
            } else {
                "has not finished"
            }
        )));
    }
    // A failed or killed try is resumed unless `--rerun` asks for a fresh tree; a succeeded
    // attempt stays finished (Digdag refuses to resume one, too), unless asked to run again
    // from a task.
    let resume_root = match (state, req.rerun, &req.resume_from) {
        (AttemptState::Failed | AttemptState::Killed, false, _) => old_root,
        (AttemptState::Succeeded, false, Some(_)) => old_root,
        _ => None,
    };
    let resume_from = match (&req.resume_from, resume_root) {
        (Some(from), Some(root)) => Some(resume_from_task(tx, TaskId(root), &wf.name, from)?),
        _ => None,
    };
    if !(req.rerun && state.is_finished()) && resume_root.is_none() {
        return Ok(PreparedAttempt {
            session: SessionId(session),
            attempt,
            created: false,
            state,
            resumed: None,
            resume: None,
            rerun: false,
        });
    }
    let report = match resume_root {
        Some(root) => Some(ResumeReport {
            definition_changed: old_revision != revision,
            ..a.resume_report(root_def, TaskId(root), resume_from.as_deref())?
        }),
        None => None,
    };
    tx.execute(
        "UPDATE attempts SET state = ?1, finished_at = NULL, revision_id = ?2, params = ?3, \
         generation = ?4, resume_root_task_id = ?5, resume_from = ?7 WHERE id = ?6",
        params![
            AttemptState::Running.as_str(),
            revision,
            to_json(&merged),
            generation + 1,
            resume_root,
            id,
            resume_from
        ],
    )
    .map_err(sql("restart_attempt"))?;
    a.defer_starts(true);
    a.instantiate_root(attempt, generation + 1, root_def)?;
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
        resumed: report.as_ref().map(|r| r.kept.len()),
        rerun: report.is_none(),
        resume: report,
    })
}

/// The revision row of the workflow as loaded (deduplicated by its hash) and the root of its
/// stored definition: a revision's definition is stored once, by the first attempt using it.
fn revision(
    tx: &Tx<'_>,
    project: i64,
    req: &NewAttempt,
    now_s: &str,
) -> Result<(i64, DefId), Error> {
    let wf = &req.workflow;
    let hash = revision_hash(&wf.name, &req.sources);
    let sources: Vec<(String, &str)> = req
        .sources
        .iter()
        .map(|(p, t)| (p.to_string_lossy().into_owned(), t.as_str()))
        .collect();
    tx.execute(
        "INSERT INTO revisions (project_id, workflow, hash, timezone, sources, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (project_id, workflow, hash) DO NOTHING",
        params![
            project,
            wf.name,
            hash,
            wf.timezone,
            to_json(&sources),
            now_s
        ],
    )
    .map_err(sql("insert_revision"))?;
    let (revision, root): (i64, Option<i64>) = tx
        .query_row(
            "SELECT id, root_def_id FROM revisions \
             WHERE project_id = ?1 AND workflow = ?2 AND hash = ?3",
            params![project, wf.name, hash],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(sql("select_revision"))?;
    let root = match root {
        Some(root) => DefId(root),
        // A new revision (or one recorded by an older spade, which kept no nodes).
        None => {
            let root = def::store(tx, &wf.root)?;
            tx.execute(
                "UPDATE revisions SET root_def_id = ?1 WHERE id = ?2",
                params![root.0, revision],
            )
            .map_err(sql("set_revision_root"))?;
            root
        }
    };
    Ok((revision, root))
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

/// The full name of the task a resume runs again from: `from` as given (`+wf+g+a`) or without
/// the workflow's prefix (`+g+a`, `g+a`), which must name a task of the previous try.
fn resume_from_task(
    tx: &Tx<'_>,
    old_root: TaskId,
    workflow: &str,
    from: &str,
) -> Result<String, Error> {
    let prefix = format!("+{workflow}");
    let trimmed = from.trim();
    let full = if trimmed == prefix || trimmed.starts_with(&format!("{prefix}+")) {
        trimmed.to_owned()
    } else if trimmed.starts_with('+') {
        format!("{prefix}{trimmed}")
    } else {
        format!("{prefix}+{trimmed}")
    };
    let attempt: i64 = tx
        .query_row(
            "SELECT attempt_id FROM tasks WHERE id = ?1",
            params![old_root.0],
            |r| r.get(0),
        )
        .map_err(sql("resume_from"))?;
    let found: bool = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM tasks WHERE attempt_id = ?1 AND full_name = ?2 \
             AND id >= ?3)",
            params![attempt, full, old_root.0],
            |r| r.get(0),
        )
        .map_err(sql("resume_from"))?;
    if !found {
        return Err(Error::Request(format!(
            "no task `{full}` in the previous try of this attempt: name a task as \
             `spade tasks ATTEMPT` lists it (`+{workflow}+group+task`, or `+group+task`)"
        )));
    }
    Ok(full)
}
