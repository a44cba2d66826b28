//! Retention (`spade gc`): finished attempts older than a cut-off are deleted with their tasks,
//! runs, logs, `require>` tries and the sessions they leave empty, one bounded batch per
//! transaction, so the engine's own writes never wait long for the store.
//!
//! What a batch never deletes:
//! - an attempt that is running, or finished at or after the cut-off;
//! - an attempt some `require>` try still needs: a try that is waiting for it, or any try of an
//!   attempt that is kept (that attempt's history points at it). When the requiring attempt is
//!   old and finished too, it is deleted in the same batch instead;
//! - the attempt holding the highest attempt, task or run id: SQLite hands out `MAX(id) + 1`
//!   for a new row, so deleting the highest row would give its id to the next one, and an
//!   attempt id names a log directory (a leftover of a crash must never become a new attempt's)
//!   and run ids are the cursor of `/metrics`' histograms.
//!
//! Revisions and `task_defs` nodes are kept: revisions are few (one per edit of a workflow) and
//! the loaded project and the API's workflow ids point at them, and definition nodes are read
//! through a cache keyed by id in every engine that has the database open.

use super::{sql, Error, Tx};
use crate::ids::{AttemptId, ProjectId, SessionId};
use jiff::Timestamp;
use rusqlite::{params, OptionalExtension};
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// Attempts examined per transaction. A batch of 200 old attempts of three tasks each commits
/// in 20-80 ms on a 2-core machine; 500 made the longest 130 ms (`cargo bench --bench gc`).
pub const BATCH: usize = 200;

/// Which attempts may go: those of `project` that finished before `before`.
#[derive(Clone, Copy, Debug)]
pub struct Scope {
    pub project: ProjectId,
    pub before: Timestamp,
}

/// One deleted (or, in a dry run, deletable) attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Removed {
    pub id: AttemptId,
    pub workflow: String,
    pub finished_at: String,
    /// Task rows, history included.
    pub tasks: u64,
    /// Its session went with it (it had no other attempt left).
    pub session_removed: bool,
}

/// What one batch did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// In id order.
    pub removed: Vec<Removed>,
    /// Old finished attempts examined but kept (needed by a `require>`, or the highest id).
    pub kept: u64,
    /// The last id examined: the next batch starts after it. `None` once every attempt was seen.
    pub next: Option<i64>,
}

/// An attempt as eligibility sees it.
struct Candidate {
    session: SessionId,
    workflow: String,
    finished_at: String,
    /// Finished, of the project, before the cut-off.
    old: bool,
}

const CANDIDATE_SQL: &str = "SELECT a.id, a.state, a.finished_at, s.project_id, s.id, s.workflow \
     FROM attempts a JOIN sessions s ON s.id = a.session_id";

fn candidate(scope: &Scope, r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, Candidate)> {
    let id: i64 = r.get(0)?;
    let state: String = r.get(1)?;
    let finished_at: Option<String> = r.get(2)?;
    let project: i64 = r.get(3)?;
    let finished = matches!(state.as_str(), "succeeded" | "failed" | "killed");
    // Parsed, not compared as text: RFC 3339 with and without fractions does not sort.
    let before = finished_at
        .as_deref()
        .and_then(|t| t.parse::<Timestamp>().ok())
        .is_some_and(|t| t < scope.before);
    Ok((
        id,
        Candidate {
            session: SessionId(r.get(4)?),
            workflow: r.get(5)?,
            finished_at: finished_at.unwrap_or_default(),
            old: finished && before && project == scope.project.0,
        },
    ))
}

/// The attempts whose deletion would let SQLite reuse an id (see the module doc).
fn highest_ids(tx: &Tx<'_>) -> Result<HashSet<i64>, Error> {
    let one = |q: &str| -> Result<Option<i64>, Error> {
        tx.prepare_cached(q)
            .and_then(|mut s| s.query_row([], |r| r.get::<_, Option<i64>>(0)))
            .optional()
            .map(Option::flatten)
            .map_err(sql("gc_highest_ids"))
    };
    Ok([
        one("SELECT MAX(id) FROM attempts")?,
        one("SELECT attempt_id FROM tasks WHERE id = (SELECT MAX(id) FROM tasks)")?,
        one(
            "SELECT t.attempt_id FROM task_runs r JOIN tasks t ON t.id = r.task_id \
             WHERE r.id = (SELECT MAX(id) FROM task_runs)",
        )?,
    ]
    .into_iter()
    .flatten()
    .collect())
}

/// One batch: examines up to `limit` attempts after id `after` and deletes the deletable ones
/// (or, with `dry_run`, only says which). `gone` holds the attempts earlier batches of a dry
/// run would have deleted, so that it counts as the real run does (empty for a real run).
pub fn batch(
    tx: &Tx<'_>,
    scope: &Scope,
    after: i64,
    limit: usize,
    dry_run: bool,
    gone: &BTreeSet<i64>,
) -> Result<Batch, Error> {
    let highest = highest_ids(tx)?;
    let mut examined: Vec<(i64, Candidate)> = tx
        .prepare_cached(&format!(
            "{CANDIDATE_SQL} WHERE a.id > ?1 ORDER BY a.id LIMIT ?2"
        ))
        .and_then(|mut s| {
            s.query_map(
                params![after, i64::try_from(limit).unwrap_or(i64::MAX)],
                |r| candidate(scope, r),
            )?
            .collect()
        })
        .map_err(sql("gc_scan"))?;
    let next = (examined.len() >= limit)
        .then(|| examined.last().map(|(id, _)| *id))
        .flatten();
    let mut kept = 0;
    let mut chosen: BTreeMap<i64, Candidate> = BTreeMap::new();
    for (id, c) in examined.drain(..) {
        if !c.old || gone.contains(&id) {
            continue;
        }
        if highest.contains(&id) {
            kept += 1;
            continue;
        }
        chosen.insert(id, c);
    }
    kept += close_over_requires(tx, scope, &mut chosen, &highest, gone)?;
    let mut removed = Vec::with_capacity(chosen.len());
    let mut left_in_session: HashSet<SessionId> = HashSet::new();
    for (id, c) in &chosen {
        let session_removed = if left_in_session.contains(&c.session) {
            false
        } else {
            let others = other_attempts(tx, c.session, &chosen, gone)?;
            if others {
                left_in_session.insert(c.session);
            }
            !others
        };
        removed.push(Removed {
            id: AttemptId(*id),
            workflow: c.workflow.clone(),
            finished_at: c.finished_at.clone(),
            tasks: count_tasks(tx, *id)?,
            session_removed,
        });
    }
    // Each emptied session is counted once, on its last attempt in id order.
    let mut seen = HashSet::new();
    for r in removed.iter_mut().rev() {
        if r.session_removed && !seen.insert(chosen[&r.id.0].session) {
            r.session_removed = false;
        }
    }
    if !dry_run {
        delete(tx, &chosen)?;
    }
    Ok(Batch {
        removed,
        kept,
        next,
    })
}

/// Drops from `chosen` every attempt a kept attempt's `require>` try points at, and pulls in
/// the old finished attempts that require chosen ones, until nothing changes. Returns how many
/// were dropped.
fn close_over_requires(
    tx: &Tx<'_>,
    scope: &Scope,
    chosen: &mut BTreeMap<i64, Candidate>,
    highest: &HashSet<i64>,
    gone: &BTreeSet<i64>,
) -> Result<u64, Error> {
    let mut dropped: BTreeSet<i64> = BTreeSet::new();
    let mut todo: Vec<i64> = chosen.keys().copied().collect();
    while let Some(target) = todo.pop() {
        if !chosen.contains_key(&target) {
            continue;
        }
        let requirers: Vec<(i64, String)> = tx
            .prepare_cached(
                "SELECT attempt_id, state FROM require_waits WHERE target_attempt_id = ?1",
            )
            .and_then(|mut s| {
                s.query_map(params![target], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })
            .map_err(sql("gc_requirers"))?;
        let mut needed = false;
        for (requirer, state) in requirers {
            if requirer == target || chosen.contains_key(&requirer) || gone.contains(&requirer) {
                continue;
            }
            if state == "waiting" || dropped.contains(&requirer) || highest.contains(&requirer) {
                needed = true;
                break;
            }
            let row = tx
                .prepare_cached(&format!("{CANDIDATE_SQL} WHERE a.id = ?1"))
                .and_then(|mut s| s.query_row(params![requirer], |r| candidate(scope, r)))
                .optional()
                .map_err(sql("gc_requirer"))?;
            match row {
                Some((id, c)) if c.old => {
                    chosen.insert(id, c);
                    todo.push(id);
                }
                _ => {
                    needed = true;
                    break;
                }
            }
        }
        if needed {
            chosen.remove(&target);
            dropped.insert(target);
            // What `target` requires may now be needed by it: look at those again.
            let required: Vec<i64> = tx
                .prepare_cached("SELECT target_attempt_id FROM require_waits WHERE attempt_id = ?1")
                .and_then(|mut s| s.query_map(params![target], |r| r.get(0))?.collect())
                .map_err(sql("gc_required"))?;
            todo.extend(required);
        }
    }
    Ok(u64::try_from(dropped.len()).unwrap_or(u64::MAX))
}

/// Whether the session keeps an attempt that this batch (and a dry run's earlier ones) leaves.
fn other_attempts(
    tx: &Tx<'_>,
    session: SessionId,
    chosen: &BTreeMap<i64, Candidate>,
    gone: &BTreeSet<i64>,
) -> Result<bool, Error> {
    let ids: Vec<i64> = tx
        .prepare_cached("SELECT id FROM attempts WHERE session_id = ?1")
        .and_then(|mut s| s.query_map(params![session.0], |r| r.get(0))?.collect())
        .map_err(sql("gc_session_attempts"))?;
    Ok(ids
        .iter()
        .any(|id| !chosen.contains_key(id) && !gone.contains(id)))
}

fn count_tasks(tx: &Tx<'_>, attempt: i64) -> Result<u64, Error> {
    tx.prepare_cached("SELECT COUNT(*) FROM tasks WHERE attempt_id = ?1")
        .and_then(|mut s| s.query_row(params![attempt], |r| r.get::<_, i64>(0)))
        .map(|n| u64::try_from(n).unwrap_or(0))
        .map_err(sql("gc_count_tasks"))
}

/// Deletes the attempts and what hangs off them. The foreign keys stay on: a reference this
/// module overlooked fails the statement and rolls the batch back rather than leave a row
/// pointing at nothing.
fn delete(tx: &Tx<'_>, chosen: &BTreeMap<i64, Candidate>) -> Result<(), Error> {
    let run = |op: &'static str, q: &str, id: i64| -> Result<usize, Error> {
        tx.prepare_cached(q)
            .and_then(|mut s| s.execute(params![id]))
            .map_err(sql(op))
    };
    // Tries first, all of them: a chosen attempt's tries may point at another chosen one.
    for id in chosen.keys() {
        run(
            "gc_require_waits",
            "DELETE FROM require_waits WHERE attempt_id = ?1",
            *id,
        )?;
    }
    const OF_ATTEMPT: &str = "(SELECT id FROM tasks WHERE attempt_id = ?1)";
    for (id, c) in chosen {
        let id = *id;
        run(
            "gc_unlink_root",
            "UPDATE attempts SET root_task_id = NULL, resume_root_task_id = NULL WHERE id = ?1",
            id,
        )?;
        run(
            "gc_edges",
            &format!("DELETE FROM task_edges WHERE upstream_id IN {OF_ATTEMPT}"),
            id,
        )?;
        run(
            "gc_edges",
            &format!("DELETE FROM task_edges WHERE downstream_id IN {OF_ATTEMPT}"),
            id,
        )?;
        run(
            "gc_runs",
            &format!("DELETE FROM task_runs WHERE task_id IN {OF_ATTEMPT}"),
            id,
        )?;
        run(
            "gc_task_logs",
            &format!("DELETE FROM task_logs WHERE task_id IN {OF_ATTEMPT}"),
            id,
        )?;
        run(
            "gc_transitions",
            &format!("DELETE FROM state_transitions WHERE task_id IN {OF_ATTEMPT}"),
            id,
        )?;
        run(
            "gc_run_values",
            "DELETE FROM run_values WHERE attempt_id = ?1",
            id,
        )?;
        run("gc_tasks", "DELETE FROM tasks WHERE attempt_id = ?1", id)?;
        run("gc_attempt", "DELETE FROM attempts WHERE id = ?1", id)?;
        run(
            "gc_session",
            "DELETE FROM sessions WHERE id = ?1 \
             AND NOT EXISTS (SELECT 1 FROM attempts WHERE session_id = ?1)",
            c.session.0,
        )?;
    }
    Ok(())
}

/// Which of `ids` (log directory names) no attempt has, among those below the highest attempt
/// id: an id above it may be the next attempt's, whose directory must not be touched.
pub fn orphans(tx: &Tx<'_>, ids: &[i64]) -> Result<Vec<i64>, Error> {
    let highest: Option<i64> = tx
        .query_row("SELECT MAX(id) FROM attempts", [], |r| r.get(0))
        .map_err(sql("gc_orphans"))?;
    let Some(highest) = highest else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for id in ids.iter().copied().filter(|id| *id < highest) {
        let exists = tx
            .prepare_cached("SELECT 1 FROM attempts WHERE id = ?1")
            .and_then(|mut s| s.query_row(params![id], |_| Ok(())).optional())
            .map_err(sql("gc_orphans"))?
            .is_some();
        if !exists {
            out.push(id);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    /// A store with attempts seeded by SQL: `(workflow, session time, state, finished_at,
    /// tasks)`.
    struct Seeded {
        _dir: tempfile::TempDir,
        store: Store,
        /// Makes session times and attempt names unique.
        serial: std::cell::Cell<i64>,
    }

    fn t(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    impl Seeded {
        fn new() -> Seeded {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(&dir.path().join("spade.db")).unwrap();
            store
                .write("seed", |tx| {
                    tx.execute_batch(
                        "INSERT INTO projects (id, dir, created_at) VALUES (1, '/p', 'x'), (2, '/q', 'x');
                         INSERT INTO revisions (id, project_id, workflow, hash, timezone, sources, created_at)
                           VALUES (1, 1, 'wf', 'h', 'UTC', '[]', 'x'), (2, 2, 'wf', 'h', 'UTC', '[]', 'x');",
                    )
                    .map_err(sql("seed"))
                })
                .unwrap();
            Seeded {
                _dir: dir,
                store,
                serial: std::cell::Cell::new(0),
            }
        }

        /// Adds an attempt (a new session unless `session` is given) with `tasks` tasks in a
        /// chain, each with a run, a log chunk and a transition. Returns (attempt, session).
        fn attempt(
            &self,
            project: i64,
            session: Option<i64>,
            state: &str,
            finished: Option<&str>,
            tasks: usize,
        ) -> (i64, i64) {
            let n = self.serial.get() + 1;
            self.serial.set(n);
            self.store
                .write("seed", |tx| {
                    let session = match session {
                        Some(s) => s,
                        None => {
                            tx.execute(
                                "INSERT INTO sessions (project_id, workflow, session_time, session_uuid, created_at) \
                                 VALUES (?1, 'wf', ?2, ?3, 'x')",
                                params![project, format!("2026-01-{n:05}"), format!("uuid-{n}")],
                            )
                            .unwrap();
                            tx.last_insert_rowid()
                        }
                    };
                    tx.execute(
                        "INSERT INTO attempts (session_id, attempt_name, revision_id, params, state, created_at, finished_at) \
                         VALUES (?1, ?2, ?3, '{}', ?4, 'x', ?5)",
                        params![session, format!("n{n}"), project, state, finished],
                    )
                    .unwrap();
                    let attempt = tx.last_insert_rowid();
                    let mut parent: Option<i64> = None;
                    for i in 0..tasks {
                        tx.execute(
                            "INSERT INTO tasks (attempt_id, parent_id, epoch, child_index, full_name, kind, role, state, created_at, updated_at) \
                             VALUES (?1, ?2, 0, ?3, '+wf', 'operator', ?4, 'succeeded', 'x', 'x')",
                            params![attempt, parent, i64::try_from(i).unwrap(), if parent.is_none() { "root" } else { "static" }],
                        )
                        .unwrap();
                        let task = tx.last_insert_rowid();
                        tx.execute_batch(&format!(
                            "INSERT INTO task_runs (task_id, fence, started_at) VALUES ({task}, 1, 'x');
                             INSERT INTO task_logs (task_id, fence, at, chunk) VALUES ({task}, 1, 'x', 'hello');
                             INSERT INTO state_transitions (task_id, to_state, at, reason) VALUES ({task}, 'ready', 'x', 'r');"
                        ))
                        .unwrap();
                        if let Some(p) = parent {
                            tx.execute(
                                "INSERT INTO task_edges (upstream_id, downstream_id) VALUES (?1, ?2)",
                                params![p, task],
                            )
                            .unwrap();
                        } else {
                            tx.execute(
                                "UPDATE attempts SET root_task_id = ?1, resume_root_task_id = ?1 WHERE id = ?2",
                                params![task, attempt],
                            )
                            .unwrap();
                        }
                        parent = Some(task);
                    }
                    Ok::<_, Error>((attempt, session))
                })
                .unwrap()
        }

        /// A `require>` try of `requirer`'s first task waiting for (or done with) `target`.
        fn require(&self, requirer: i64, target: i64, state: &str) {
            self.store
                .write("seed", |tx| {
                    tx.execute(
                        "INSERT INTO require_waits (task_id, try_index, attempt_id, spec, target_attempt_id, kicked, state, created_at) \
                         VALUES ((SELECT root_task_id FROM attempts WHERE id = ?1), ?2, ?1, '{}', ?3, 1, ?4, 'x')",
                        params![requirer, target, target, state],
                    )
                    .map_err(sql("seed"))
                })
                .unwrap();
        }

        fn count(&self, q: &str) -> i64 {
            self.store
                .read("count", |tx| {
                    tx.query_row(q, [], |r| r.get(0)).map_err(sql("count"))
                })
                .unwrap()
        }

        fn ids(&self) -> Vec<i64> {
            self.store
                .read("ids", |tx| {
                    tx.prepare("SELECT id FROM attempts ORDER BY id")
                        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                        .map_err(sql("ids"))
                })
                .unwrap()
        }

        /// Every batch until the table is exhausted; the removed ids.
        fn gc(&self, before: &str, limit: usize, dry_run: bool) -> Vec<i64> {
            let scope = Scope {
                project: ProjectId(1),
                before: t(before),
            };
            let mut after = 0;
            let mut gone = BTreeSet::new();
            let mut out = Vec::new();
            loop {
                let b = self
                    .store
                    .write("gc", |tx| batch(tx, &scope, after, limit, dry_run, &gone))
                    .unwrap();
                for r in &b.removed {
                    out.push(r.id.0);
                    if dry_run {
                        gone.insert(r.id.0);
                    }
                }
                match b.next {
                    Some(n) => after = n,
                    None => return out,
                }
            }
        }
    }

    const OLD: Option<&str> = Some("2026-01-01T00:00:00Z");
    const NEW: Option<&str> = Some("2026-06-01T00:00:00.5Z");
    const CUT: &str = "2026-03-01T00:00:00Z";

    #[test]
    fn old_finished_attempts_go_with_everything_that_hangs_off_them_in_batches() {
        let s = Seeded::new();
        let (a1, session) = s.attempt(1, None, "succeeded", OLD, 3);
        let (a2, _) = s.attempt(1, Some(session), "failed", OLD, 2);
        let (a3, _) = s.attempt(1, None, "killed", OLD, 1);
        let (running, _) = s.attempt(1, None, "running", None, 2);
        let (newer, _) = s.attempt(1, None, "succeeded", NEW, 2);
        let (other_project, _) = s.attempt(2, None, "succeeded", OLD, 1);
        let (last, _) = s.attempt(1, None, "succeeded", OLD, 1);

        assert_eq!(s.gc(CUT, 2, true), [a1, a2, a3], "a dry run says what goes");
        assert_eq!(s.ids().len(), 7, "and deletes nothing");
        assert_eq!(s.gc(CUT, 2, false), [a1, a2, a3]);
        assert_eq!(s.ids(), [running, newer, other_project, last]);
        // The highest id stays (SQLite would hand it out again), even though it is old.
        for (table, left) in [
            ("tasks", 2 + 2 + 1 + 1),
            ("task_runs", 6),
            ("task_logs", 6),
            ("state_transitions", 6),
            ("task_edges", 1 + 1),
            ("sessions", 4),
        ] {
            assert_eq!(
                s.count(&format!("SELECT COUNT(*) FROM {table}")),
                left,
                "{table}"
            );
        }
        assert_eq!(
            s.gc(CUT, 2, false),
            Vec::<i64>::new(),
            "nothing is left to do"
        );
        // A newer attempt makes the old one deletable.
        let (newest, _) = s.attempt(1, None, "running", None, 1);
        assert_eq!(s.gc(CUT, 100, false), [last]);
        assert_eq!(s.ids(), [running, newer, other_project, newest]);
    }

    #[test]
    fn a_session_goes_only_with_its_last_attempt_and_is_counted_once() {
        let s = Seeded::new();
        let (a1, session) = s.attempt(1, None, "failed", OLD, 1);
        let (a2, _) = s.attempt(1, Some(session), "succeeded", OLD, 1);
        let (keeps, other) = s.attempt(1, None, "failed", OLD, 1);
        let (_newer, _) = s.attempt(1, Some(other), "succeeded", NEW, 1);
        let scope = Scope {
            project: ProjectId(1),
            before: t(CUT),
        };
        let b = s
            .store
            .write("gc", |tx| {
                batch(tx, &scope, 0, 100, false, &BTreeSet::new())
            })
            .unwrap();
        let sessions: Vec<(i64, bool)> = b
            .removed
            .iter()
            .map(|r| (r.id.0, r.session_removed))
            .collect();
        assert_eq!(sessions, [(a1, false), (a2, true), (keeps, false)]);
        assert_eq!(s.count("SELECT COUNT(*) FROM sessions"), 1);
    }

    #[test]
    fn a_required_attempt_stays_while_a_kept_attempt_points_at_it() {
        let s = Seeded::new();
        let (target, _) = s.attempt(1, None, "succeeded", OLD, 1);
        let (old_requirer, _) = s.attempt(1, None, "succeeded", OLD, 1);
        let (kept_target, _) = s.attempt(1, None, "succeeded", OLD, 1);
        let (new_requirer, _) = s.attempt(1, None, "succeeded", NEW, 1);
        let (waited_for, _) = s.attempt(1, None, "failed", OLD, 1);
        let (waiting, _) = s.attempt(1, None, "running", None, 1);
        s.require(old_requirer, target, "done");
        s.require(new_requirer, kept_target, "done");
        s.require(waiting, waited_for, "waiting");
        // A batch of one sees the target first and pulls its old requirer in with it.
        assert_eq!(s.gc(CUT, 1, false), [target, old_requirer]);
        assert_eq!(s.ids(), [kept_target, new_requirer, waited_for, waiting]);
        assert_eq!(s.count("SELECT COUNT(*) FROM require_waits"), 2);
    }
}
