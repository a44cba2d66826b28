//! `require>` in the store: a try of a require task finds or starts the required attempt,
//! deduplicated by (session, attempt name) exactly as Digdag does, in one transaction that
//! also stores the try's evaluated options (`require_waits`, migration 007); the transaction
//! that finishes the required attempt marks the tries that wait for it `done`.
//!
//! Nothing here is evaluated twice: a try's options are written once, when it begins, and
//! every later look (a wake-up, a restart of spade, a resumed run of the same try) reads them
//! back. `rerun_on` generates its attempt name once and stores it with the try.

use super::apply::Apply;
use super::{prepare, AttemptState, Engine, Error, NewAttempt, Outcome};
use crate::expr::JsonMap;
use crate::ids::{AttemptId, TaskId};
use crate::store::{exec, sql, Tx};
use jiff::Timestamp;
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

/// `rerun_on`: whether a finished required attempt that this try did not start runs again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RerunOn {
    None,
    Failed,
    All,
}

impl RerunOn {
    pub fn parse(text: &str) -> Option<RerunOn> {
        match text {
            "none" => Some(RerunOn::None),
            "failed" => Some(RerunOn::Failed),
            "all" => Some(RerunOn::All),
            _ => None,
        }
    }
}

/// The evaluated options of one try of a require task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    pub workflow: String,
    /// The project of the required workflow (the caller's, or `project_name`'s).
    pub project_dir: PathBuf,
    #[serde(with = "timestamp_text")]
    pub session_time: Timestamp,
    /// `retry_attempt_name`; `None` is the default attempt (`""`).
    pub attempt_name: Option<String>,
    pub rerun_on: RerunOn,
    pub ignore_failure: bool,
    /// Session params of an attempt this try starts (nothing else is passed on).
    pub params: JsonMap,
}

/// RFC 3339 text, as every time in the store.
mod timestamp_text {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(t)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One try of a require task, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Wait {
    pub id: i64,
    pub spec: Spec,
    pub target: AttemptId,
    pub target_session: i64,
    /// This try started the required attempt (Digdag's `require_kicked`).
    pub kicked: bool,
    pub rerun_name: Option<String>,
    /// How the required attempt ended, once it has.
    pub done: Option<AttemptState>,
}

impl Wait {
    /// The try's result once the required attempt is finished: success, or Digdag's failure
    /// message (retryable: task-level `_retry` applies, as in Digdag), unless `ignore_failure`.
    pub fn outcome(&self) -> Option<Outcome> {
        let state = self.done?;
        if state == AttemptState::Succeeded || self.spec.ignore_failure {
            return Some(crate::operators::succeeded());
        }
        Some(crate::operators::failed(
            format!(
                "Dependent workflow failed. Session id: {}, attempt id: {} ({} {})",
                self.target_session,
                self.target,
                self.spec.workflow,
                state.as_str()
            ),
            true,
        ))
    }
}

/// What beginning a try decided.
#[derive(Debug)]
pub enum Begun {
    Wait(Wait),
    /// The required attempt waits, through `require>` tasks, for the requiring one: it could
    /// never finish. The message names the cycle.
    Cycle(String),
}

fn json_err(what: &'static str) -> impl Fn(serde_json::Error) -> crate::store::Error {
    move |source| crate::store::Error::Json { what, source }
}

fn canonical(dir: &Path) -> String {
    std::fs::canonicalize(dir)
        .unwrap_or_else(|_| dir.to_path_buf())
        .to_string_lossy()
        .into_owned()
}

const WAIT_COLUMNS: &str = "w.id, w.spec, w.target_attempt_id, a.session_id, w.kicked, \
     w.rerun_name, w.state, w.target_state";

/// A `require_waits` row as read: id, spec, target, session, kicked, rerun name, state,
/// target state.
type WaitColumns = (
    i64,
    String,
    i64,
    i64,
    bool,
    Option<String>,
    String,
    Option<String>,
);

fn wait_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<WaitColumns> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

fn select_wait(
    tx: &Tx<'_>,
    filter: &str,
    key: impl rusqlite::Params,
) -> Result<Option<Wait>, Error> {
    let query = format!(
        "SELECT {WAIT_COLUMNS} FROM require_waits w JOIN attempts a ON a.id = w.target_attempt_id \
         WHERE {filter}"
    );
    let row = tx
        .prepare_cached(&query)
        .and_then(|mut s| s.query_row(key, wait_row).optional())
        .map_err(sql("select_require_wait"))?;
    let Some((id, spec, target, session, kicked, rerun_name, state, target_state)) = row else {
        return Ok(None);
    };
    let spec: Spec = serde_json::from_str(&spec).map_err(json_err("require spec"))?;
    let done = match state.as_str() {
        "done" => target_state.as_deref().and_then(AttemptState::parse),
        _ => None,
    };
    Ok(Some(Wait {
        id,
        spec,
        target: AttemptId(target),
        target_session: session,
        kicked,
        rerun_name,
        done,
    }))
}

/// The stored try `try_index` of `task`, if it began.
pub(crate) fn find(tx: &Tx<'_>, task: TaskId, try_index: u32) -> Result<Option<Wait>, Error> {
    select_wait(
        tx,
        "w.task_id = ?1 AND w.try_index = ?2",
        params![task.0, try_index],
    )
}

fn attempt_state(tx: &Tx<'_>, attempt: i64) -> Result<AttemptState, Error> {
    let state: String = tx
        .prepare_cached("SELECT state FROM attempts WHERE id = ?1")
        .and_then(|mut s| s.query_row(params![attempt], |r| r.get(0)))
        .map_err(sql("require_attempt_state"))?;
    Ok(AttemptState::parse(&state).unwrap_or(AttemptState::Failed))
}

/// Begins try `try_index` of require task `task` of attempt `requiring`: finds or starts the
/// required attempt and stores the try, all in the caller's transaction. `target` is the
/// attempt to start when one is needed (its name is decided here). A try that began already
/// is returned as stored: its options are never evaluated again.
pub(crate) fn begin(
    a: &mut Apply<'_, '_>,
    task: TaskId,
    try_index: u32,
    requiring: AttemptId,
    spec: &Spec,
    target: &NewAttempt,
) -> Result<Begun, Error> {
    let tx = a.tx();
    let now = a.now();
    if let Some(w) = find(tx, task, try_index)? {
        return Ok(Begun::Wait(w));
    }
    let session: Option<i64> = tx
        .prepare_cached(
            "SELECT s.id FROM sessions s JOIN projects p ON p.id = s.project_id \
             WHERE p.dir = ?1 AND s.workflow = ?2 AND s.session_time = ?3",
        )
        .and_then(|mut s| {
            s.query_row(
                params![
                    canonical(&spec.project_dir),
                    spec.workflow,
                    spec.session_time.to_string()
                ],
                |r| r.get(0),
            )
            .optional()
        })
        .map_err(sql("require_session"))?;
    let name = spec.attempt_name.clone().unwrap_or_default();
    // Digdag's `SessionAttemptConflictException`: the (session, name) pair exists. The attempt
    // it answers with is the named one, or, for the default name, the session's last attempt
    // whatever its name. Only named attempts and no `""`: the default name is free, and a new
    // attempt starts (spec 8.1 "Dedup model").
    let conflicted: Option<i64> = match session {
        None => None,
        Some(session) => {
            let same: Option<i64> = tx
                .prepare_cached(
                    "SELECT id FROM attempts WHERE session_id = ?1 AND attempt_name = ?2",
                )
                .and_then(|mut s| s.query_row(params![session, name], |r| r.get(0)).optional())
                .map_err(sql("require_conflict"))?;
            match same {
                Some(id) if !name.is_empty() => Some(id),
                Some(_) => tx
                    .prepare_cached(
                        "SELECT id FROM attempts WHERE session_id = ?1 ORDER BY id DESC LIMIT 1",
                    )
                    .and_then(|mut s| s.query_row(params![session], |r| r.get(0)).optional())
                    .map_err(sql("require_last_attempt"))?,
                None => None,
            }
        }
    };
    let mut start = |name: Option<String>| -> Result<i64, Error> {
        let mut req = target.clone();
        req.attempt_name = name.filter(|n| !n.is_empty());
        req.rerun = false;
        Ok(prepare::prepare(a, &req)?.attempt.0)
    };
    let (target_id, kicked, rerun_name) = match conflicted {
        None => (start(Some(name))?, true, None),
        Some(id) => {
            let state = attempt_state(tx, id)?;
            let rerun = state.is_finished()
                && match spec.rerun_on {
                    RerunOn::None => false,
                    RerunOn::Failed => state != AttemptState::Succeeded,
                    RerunOn::All => true,
                };
            if rerun {
                // Generated once, stored with the try: every later look uses the same name.
                let fresh = uuid::Uuid::new_v4().to_string();
                (start(Some(fresh.clone()))?, true, Some(fresh))
            } else {
                (id, false, None)
            }
        }
    };
    let state = attempt_state(tx, target_id)?;
    if !state.is_finished() {
        if let Some(path) = cycle(tx, requiring, AttemptId(target_id))? {
            return Ok(Begun::Cycle(cycle_message(tx, &path)?));
        }
    }
    let spec_json = serde_json::to_string(spec).map_err(json_err("require spec"))?;
    let (row_state, target_state, finished_at) = if state.is_finished() {
        ("done", Some(state.as_str()), Some(now.to_string()))
    } else {
        ("waiting", None, None)
    };
    exec(
        tx,
        "insert_require_wait",
        "INSERT INTO require_waits (task_id, try_index, attempt_id, spec, target_attempt_id, \
         kicked, rerun_name, state, target_state, created_at, finished_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            task.0,
            try_index,
            requiring.0,
            spec_json,
            target_id,
            kicked,
            rerun_name,
            row_state,
            target_state,
            now.to_string(),
            finished_at
        ],
    )?;
    find(tx, task, try_index)?.map(Begun::Wait).ok_or_else(|| {
        Error::Store(crate::store::Error::Corrupt {
            what: "require wait",
            detail: format!("the try {try_index} of task {task} just written is missing"),
        })
    })
}

/// A path `requiring → target → … → requiring` through the tries that still wait (their
/// task is running), if the required attempt transitively waits for the requiring one.
fn cycle(
    tx: &Tx<'_>,
    requiring: AttemptId,
    target: AttemptId,
) -> Result<Option<Vec<AttemptId>>, Error> {
    let mut came_from: HashMap<AttemptId, AttemptId> = HashMap::new();
    let mut queue = VecDeque::from([target]);
    came_from.insert(target, requiring);
    while let Some(at) = queue.pop_front() {
        if at == requiring {
            let mut path = vec![requiring];
            let mut node = came_from.get(&requiring).copied().unwrap_or(requiring);
            // Every node reached has a predecessor, and the walk back ends at `requiring`; the
            // bound only guards against a broken map.
            while node != requiring && path.len() <= came_from.len() {
                path.push(node);
                node = came_from.get(&node).copied().unwrap_or(requiring);
            }
            // Collected backwards from the end: `requiring` first, then what it requires.
            path[1..].reverse();
            path.push(requiring);
            return Ok(Some(path));
        }
        let mut stmt = tx
            .prepare_cached(
                "SELECT DISTINCT w.target_attempt_id FROM require_waits w \
                 JOIN tasks t ON t.id = w.task_id \
                 WHERE w.attempt_id = ?1 AND w.state = 'waiting' AND t.state = 'running'",
            )
            .map_err(sql("require_cycle"))?;
        let next = stmt
            .query_map(params![at.0], |r| r.get::<_, i64>(0))
            .map_err(sql("require_cycle"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql("require_cycle"))?;
        for n in next.into_iter().map(AttemptId) {
            if n == requiring || !came_from.contains_key(&n) {
                came_from.insert(n, at);
                queue.push_back(n);
            }
        }
    }
    Ok(None)
}

fn cycle_message(tx: &Tx<'_>, path: &[AttemptId]) -> Result<String, Error> {
    let mut names = Vec::new();
    for a in path {
        let row = crate::store::rows::load_attempt(tx, *a)?;
        let name = if row.attempt_name.is_empty() {
            format!("`{}` at {}", row.workflow, row.session_time)
        } else {
            format!(
                "`{}` at {} (attempt `{}`)",
                row.workflow, row.session_time, row.attempt_name
            )
        };
        names.push(name);
    }
    Ok(format!(
        "require> cycle: {}; none of these attempts could ever finish (change the `require>` \
         targets or their session_time)",
        names.join(" requires ")
    ))
}

/// Called in the transaction that finishes `attempt`: every try waiting for it is `done`,
/// with how it ended. Its waiting run learns it after the commit (`operators::require`).
pub(crate) fn on_attempt_finished(
    tx: &Tx<'_>,
    attempt: AttemptId,
    state: AttemptState,
    now: Timestamp,
) -> Result<(), Error> {
    exec(
        tx,
        "require_wake",
        "UPDATE require_waits SET state = 'done', target_state = ?2, finished_at = ?3 \
         WHERE target_attempt_id = ?1 AND state = 'waiting' \
         AND EXISTS (SELECT 1 FROM attempts WHERE id = ?1 AND state = ?2)",
        params![attempt.0, state.as_str(), now.to_string()],
    )?;
    Ok(())
}

impl Engine {
    /// The stored try `try_index` of require task `task`, if it began.
    pub fn require_wait(&self, task: TaskId, try_index: u32) -> Result<Option<Wait>, Error> {
        self.store
            .read("require_wait", |tx| find(tx, task, try_index))
    }

    /// Begins a try of a require task (see [`begin`]).
    pub fn require_begin(
        &self,
        task: TaskId,
        try_index: u32,
        requiring: AttemptId,
        spec: &Spec,
        target: &NewAttempt,
        now: Timestamp,
    ) -> Result<Begun, Error> {
        let (begun, nodes) = self.store.write("require_begin", |tx| {
            let mut a = Apply::new(tx, now, self.config, &self.nodes);
            let begun = begin(&mut a, task, try_index, requiring, spec, target)?;
            let (_, nodes) = a.finish()?;
            Ok::<_, Error>((begun, nodes))
        })?;
        super::apply::publish_nodes(&self.nodes, nodes);
        Ok(begun)
    }

    /// The directories of the projects this store knows (for `project_name`).
    pub fn project_dirs(&self) -> Result<Vec<PathBuf>, Error> {
        self.store.read("project_dirs", |tx| {
            let mut stmt = tx
                .prepare("SELECT dir FROM projects ORDER BY id")
                .map_err(sql("project_dirs"))?;
            let dirs = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(sql("project_dirs"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql("project_dirs"))?;
            Ok(dirs.into_iter().map(PathBuf::from).collect())
        })
    }

    /// Every try of a require task of `attempt` (tests and reports), in order.
    pub fn require_waits_of(&self, attempt: AttemptId) -> Result<Vec<Wait>, Error> {
        self.store.read("require_waits_of", |tx| {
            let ids: Vec<(i64, i64)> = tx
                .prepare("SELECT task_id, try_index FROM require_waits WHERE attempt_id = ?1 ORDER BY id")
                .and_then(|mut s| {
                    s.query_map(params![attempt.0], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect()
                })
                .map_err(sql("require_waits_of"))?;
            let mut out = Vec::new();
            for (task, try_index) in ids {
                let try_index = u32::try_from(try_index).unwrap_or(0);
                out.extend(find(tx, TaskId(task), try_index)?);
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{new_attempt, op, workflow};
    use super::super::{Action, Event};
    use super::*;

    struct World {
        _dir: tempfile::TempDir,
        engine: Engine,
        now: Timestamp,
        core: NewAttempt,
    }

    fn world() -> World {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(&dir.path().join("spade.db")).unwrap();
        let mut wf = workflow(op("+w", "sh", "true"));
        wf.name = "core".into();
        wf.root.name = "+core".into();
        let core = new_attempt(dir.path(), wf);
        World {
            now: Timestamp::from_second(1_700_000_000).unwrap(),
            _dir: dir,
            engine,
            core,
        }
    }

    impl World {
        fn spec(&self, name: Option<&str>, rerun_on: RerunOn) -> Spec {
            Spec {
                workflow: "core".into(),
                project_dir: self.core.project_dir.clone(),
                session_time: self.core.session_time,
                attempt_name: name.map(str::to_owned),
                rerun_on,
                ignore_failure: false,
                params: JsonMap::new(),
            }
        }

        /// A running requiring task: an attempt of workflow `name` whose one task is started.
        fn requiring(&self, name: &str) -> (AttemptId, TaskId) {
            let mut wf = workflow(op("+r", "require", "core"));
            wf.name = name.into();
            wf.root.name = format!("+{name}");
            let prepared = self
                .engine
                .prepare_attempt(&new_attempt(&self.core.project_dir, wf), self.now)
                .unwrap();
            (prepared.attempt, self.start(prepared.attempt))
        }

        fn start(&self, attempt: AttemptId) -> TaskId {
            let actions = self.engine.recover(attempt, self.now).unwrap();
            actions
                .iter()
                .find_map(|a| match a {
                    Action::Start(run) => Some(run.task),
                    _ => None,
                })
                .unwrap()
        }

        fn begin(&self, task: TaskId, try_index: u32, requiring: AttemptId, spec: &Spec) -> Wait {
            match self
                .engine
                .require_begin(task, try_index, requiring, spec, &self.core, self.now)
                .unwrap()
            {
                Begun::Wait(w) => w,
                Begun::Cycle(m) => panic!("unexpected cycle: {m}"),
            }
        }

        /// Runs the (one-task) attempt to its end with `outcome`.
        fn finish(&self, attempt: AttemptId, outcome: Outcome) {
            let actions = self.engine.recover(attempt, self.now).unwrap();
            let Some(Action::Start(run)) = actions.iter().find(|a| matches!(a, Action::Start(_)))
            else {
                panic!("nothing to finish in {actions:?}");
            };
            self.engine
                .apply(
                    self.now,
                    Event::Completed {
                        task: run.task,
                        fence: run.fence,
                        outcome: Box::new(outcome),
                    },
                )
                .unwrap();
        }

        fn names(&self) -> Vec<String> {
            self.engine
                .store()
                .read("names", |tx| {
                    let mut s = tx.prepare("SELECT attempt_name FROM attempts a JOIN sessions s ON s.id = a.session_id WHERE s.workflow = 'core' ORDER BY a.id").map_err(sql("t"))?;
                    let names = s
                        .query_map([], |r| r.get(0))
                        .map_err(sql("t"))?
                        .collect::<Result<Vec<String>, _>>()
                        .map_err(sql("t"))?;
                    Ok::<_, Error>(names)
                })
                .unwrap()
        }
    }

    #[test]
    fn a_try_is_stored_once_and_read_back_whatever_is_asked_later() {
        let w = world();
        let (a, task) = w.requiring("wf");
        let first = w.begin(task, 0, a, &w.spec(Some("r1"), RerunOn::None));
        assert!(first.kicked);
        assert_eq!(first.done, None);
        // A later look with other options (a re-evaluated random name) gets the stored try.
        let again = w.begin(task, 0, a, &w.spec(Some("r2"), RerunOn::All));
        assert_eq!(again, first);
        assert_eq!(w.names(), vec!["r1"]);
        // The next try is a new evaluation: a new name starts a new attempt.
        let next = w.begin(task, 1, a, &w.spec(Some("r2"), RerunOn::None));
        assert_ne!(next.target, first.target);
        assert_eq!(w.names(), vec!["r1", "r2"]);
    }

    #[test]
    fn the_transaction_finishing_the_required_attempt_marks_its_tries_done() {
        let w = world();
        let (a, task) = w.requiring("wf");
        let wait = w.begin(task, 0, a, &w.spec(None, RerunOn::None));
        w.finish(wait.target, crate::operators::failed("boom", false));
        let done = w.engine.require_wait(task, 0).unwrap().unwrap();
        assert_eq!(done.done, Some(AttemptState::Failed));
        match done.outcome() {
            Some(Outcome::Failed {
                message, retryable, ..
            }) => {
                assert!(
                    message.starts_with("Dependent workflow failed. Session id: "),
                    "{message}"
                );
                assert!(retryable);
            }
            other => panic!("{other:?}"),
        }
        let mut ignoring = done.clone();
        ignoring.spec.ignore_failure = true;
        assert!(matches!(
            ignoring.outcome(),
            Some(Outcome::Succeeded { .. })
        ));
    }

    #[test]
    fn dedup_follows_digdag_session_and_attempt_name() {
        let w = world();
        let (a, task) = w.requiring("wf");
        // Only a named attempt in the session: the default name is free, a new one starts.
        let named = w.begin(task, 0, a, &w.spec(Some("backfill"), RerunOn::None));
        w.finish(named.target, crate::operators::succeeded());
        let default = w.begin(task, 1, a, &w.spec(None, RerunOn::None));
        assert!(default.kicked);
        assert_ne!(default.target, named.target);
        assert_eq!(w.names(), vec!["backfill", ""]);
        // The default name exists: the conflict answers with the session's last attempt.
        let rerun = w.begin(task, 2, a, &w.spec(Some("later"), RerunOn::None));
        w.finish(default.target, crate::operators::succeeded());
        w.finish(rerun.target, crate::operators::failed("x", false));
        let last = w.begin(task, 3, a, &w.spec(None, RerunOn::None));
        assert!(!last.kicked);
        assert_eq!(last.target, rerun.target);
        assert_eq!(last.done, Some(AttemptState::Failed));
        // A named conflict answers with that attempt; rerun_on failed starts a fresh one,
        // under a generated name stored with the try.
        let same = w.begin(task, 4, a, &w.spec(Some("backfill"), RerunOn::Failed));
        assert_eq!((same.target, same.kicked), (named.target, false));
        let fresh = w.begin(task, 5, a, &w.spec(Some("later"), RerunOn::Failed));
        assert!(fresh.kicked);
        let generated = fresh.rerun_name.clone().unwrap();
        assert_eq!(w.names().last(), Some(&generated));
        assert_eq!(
            w.engine.require_wait(task, 5).unwrap().unwrap().rerun_name,
            Some(generated)
        );
    }

    #[test]
    fn a_cycle_through_waiting_tries_is_refused_with_its_path() {
        let w = world();
        // `wf` waits for `core`; `core`'s own require task then asks for `wf`'s session.
        let (a, task) = w.requiring("wf");
        let wait = w.begin(task, 0, a, &w.spec(None, RerunOn::None));
        let core_task = w.start(wait.target);
        let mut back = w.spec(None, RerunOn::None);
        back.workflow = "wf".into();
        let mut wf_request = w.core.clone();
        wf_request.workflow.name = "wf".into();
        let begun = w
            .engine
            .require_begin(core_task, 0, wait.target, &back, &wf_request, w.now)
            .unwrap();
        match begun {
            Begun::Cycle(m) => assert!(
                m.starts_with("require> cycle: `core` at 2023-11-14T00:00:00Z requires `wf` at 2023-11-14T00:00:00Z requires `core`"),
                "{m}"
            ),
            Begun::Wait(w) => panic!("no cycle found: {w:?}"),
        }
    }
}
