//! One event, one transaction: reads rows, decides transitions with `state::next`, writes them,
//! and decides in the same transaction what the change unblocks. Actions run after commit.

use super::action::{Action, Outcome, TaskRun};
use super::def;
use super::params::{self, Scope};
use super::plan::{self, Parallel};
use super::retry::{self, Decision, Policy};
use super::state::{next, TaskEvent, TaskState};
use super::{AttemptState, Error};
use crate::dig::{ParallelDef, RetryDef, TaskDef, TaskKind};
use crate::expr::JsonMap;
use crate::ids::{AttemptId, Fence, TaskId};
use crate::store::rows::{self, AttemptRow, NewTask, Role, TaskRow};
use crate::store::{sql, Tx};
use jiff::Timestamp;
use rusqlite::params;
use std::collections::HashMap;
use std::rc::Rc;

/// Tries interrupted in a row (engine crash while running) before the task fails.
pub(crate) const MAX_INTERRUPTIONS: u32 = 3;

/// Task rows one attempt may hold (Digdag's `executor.task_max_run`), counting generated tasks
/// and history rows of retries: a generator asking for more fails instead.
pub(crate) const MAX_TASKS_PER_ATTEMPT: i64 = 1000;

/// Nodes of a definition tree, handlers included.
fn tree_size(d: &TaskDef) -> i64 {
    let children: i64 = match &d.kind {
        TaskKind::Group(c) => c.iter().map(tree_size).sum(),
        TaskKind::Operator(_) => 0,
    };
    let handlers: i64 = [&d.error, &d.check]
        .into_iter()
        .flatten()
        .map(|h| tree_size(h))
        .sum();
    1 + children + handlers
}

/// The working state of one `apply` call: the open transaction and the actions decided.
pub(crate) struct Apply<'t, 'c> {
    tx: &'t Tx<'c>,
    now: Timestamp,
    pub(crate) actions: Vec<Action>,
    /// Planned tasks whose children changed: settled before the transaction commits.
    dirty: Vec<TaskId>,
    attempts: HashMap<AttemptId, AttemptRow>,
    /// Definitions are immutable per row: parsed at most once per transaction.
    defs: HashMap<TaskId, Rc<TaskDef>>,
    /// In `prepare_attempt` ready operators are left `ready` for `recover` to start, because
    /// `prepare_attempt` returns no actions.
    defer_starts: bool,
    lower: super::Lowerer,
    /// While an attempt resumes: each new row's counterpart in the previous try's tree
    /// (`None` when it has none), memoized because every child lookup walks up its parent.
    previous: HashMap<TaskId, Option<Rc<TaskRow>>>,
}

fn json_err(what: &'static str) -> impl Fn(serde_json::Error) -> crate::store::Error {
    move |source| crate::store::Error::Json { what, source }
}

impl<'t, 'c> Apply<'t, 'c> {
    pub(crate) fn new(tx: &'t Tx<'c>, now: Timestamp) -> Apply<'t, 'c> {
        Apply {
            tx,
            now,
            actions: Vec::new(),
            dirty: Vec::new(),
            attempts: HashMap::new(),
            defs: HashMap::new(),
            defer_starts: false,
            lower: crate::dig::lower_task,
            previous: HashMap::new(),
        }
    }

    pub(crate) fn with_lowerer(mut self, lower: super::Lowerer) -> Self {
        self.lower = lower;
        self
    }

    pub(crate) fn deferring_starts(mut self) -> Self {
        self.defer_starts = true;
        self
    }

    /// Ends `deferring_starts`: later steps (`recover`) start ready operators again.
    pub(crate) fn stop_deferring(&mut self) {
        self.defer_starts = false;
    }

    fn attempt(&mut self, id: AttemptId) -> Result<AttemptRow, Error> {
        if let Some(a) = self.attempts.get(&id) {
            return Ok(a.clone());
        }
        let a = rows::load_attempt(self.tx, id)?;
        self.attempts.insert(id, a.clone());
        Ok(a)
    }

    fn def_of(&mut self, id: TaskId) -> Result<Rc<TaskDef>, Error> {
        if let Some(d) = self.defs.get(&id) {
            return Ok(Rc::clone(d));
        }
        let d = Rc::new(def::from_json(&rows::load_definition(self.tx, id)?)?);
        self.defs.insert(id, Rc::clone(&d));
        Ok(d)
    }

    fn load(&self, id: TaskId) -> Result<TaskRow, Error> {
        Ok(rows::load_task(self.tx, id)?)
    }

    /// Applies `event` to `row` through the transition table and writes it.
    fn transition(
        &mut self,
        row: &mut TaskRow,
        event: TaskEvent,
        reason: &str,
    ) -> Result<TaskState, Error> {
        let to = next(row.state, event)?;
        if to != row.state {
            rows::set_state(self.tx, row.id, row.state, to, self.now, reason)?;
            row.state = to;
            if to == TaskState::Succeeded {
                rows::release_downstreams(self.tx, row.id)?;
            }
            if to.is_terminal() {
                self.on_terminal(row)?;
            }
        }
        Ok(to)
    }

    /// A task finished: its parent may progress; a finished root finishes the attempt.
    fn on_terminal(&mut self, row: &TaskRow) -> Result<(), Error> {
        match row.parent {
            Some(p) => self.dirty.push(p),
            None => {
                let state = match row.state {
                    TaskState::Succeeded => AttemptState::Succeeded,
                    TaskState::Canceled => AttemptState::Killed,
                    TaskState::Blocked
                    | TaskState::Ready
                    | TaskState::Running
                    | TaskState::RetryWaiting
                    | TaskState::GroupRetryWaiting
                    | TaskState::Planned
                    | TaskState::Failed
                    | TaskState::GroupError
                    | TaskState::Skipped => AttemptState::Failed,
                };
                crate::store::exec(
                    self.tx,
                    "finish_attempt",
                    "UPDATE attempts SET state = ?1, finished_at = ?2 WHERE id = ?3 \
                         AND root_task_id = ?4",
                    params![
                        state.as_str(),
                        self.now.to_string(),
                        row.attempt.0,
                        row.id.0
                    ],
                )?;
                self.attempts.remove(&row.attempt);
                // require>: the tries waiting for this attempt are done, in this transaction.
                super::require::on_attempt_finished(self.tx, row.attempt, state, self.now)?;
                tracing::info!(attempt = %row.attempt, state = state.as_str(), "attempt finished");
                self.actions.push(Action::AttemptFinished {
                    attempt: row.attempt,
                    state,
                });
            }
        }
        Ok(())
    }

    /// Settles every dirty planned task; repeats until nothing changes.
    pub(crate) fn settle_all(&mut self) -> Result<(), Error> {
        while let Some(id) = self.dirty.pop() {
            let row = self.load(id)?;
            if row.state == TaskState::Planned {
                self.settle(row)?;
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- instantiation

    /// Inserts the root of a fresh tree, plans it, and instantiates its children.
    pub(crate) fn instantiate_root(
        &mut self,
        attempt: AttemptId,
        generation: i64,
        root: &TaskDef,
    ) -> Result<TaskId, Error> {
        let definition = def::to_json(root);
        let export_def = def::map_to_json(&root.export);
        let id = rows::insert_task(
            self.tx,
            &NewTask {
                attempt,
                parent: None,
                epoch: generation,
                child_index: 0,
                full_name: &root.name,
                is_group: matches!(root.kind, TaskKind::Group(_)),
                role: Role::Root,
                definition: &definition,
                export_def: &export_def,
            },
            self.now,
        )?;
        crate::store::exec(
            self.tx,
            "set_root",
            "UPDATE attempts SET root_task_id = ?1 WHERE id = ?2",
            params![id.0, attempt.0],
        )?;
        self.attempts.remove(&attempt);
        let row = self.load(id)?;
        self.unblock(row)?;
        self.settle_all()?;
        Ok(id)
    }

    /// Inserts children under `parent` in its current epoch, with edges.
    fn insert_children(
        &mut self,
        parent: &TaskRow,
        children: &[(TaskDef, Role)],
        upstream: &[Vec<usize>],
        names: &[String],
    ) -> Result<Vec<TaskId>, Error> {
        let base: i64 = self
            .tx
            .prepare_cached("SELECT COUNT(*) FROM tasks WHERE parent_id = ?1 AND epoch = ?2")
            .and_then(|mut s| s.query_row(params![parent.id.0, parent.child_epoch], |r| r.get(0)))
            .map_err(sql("count_children"))?;
        let resuming = self.attempt(parent.attempt)?.resume_root.is_some();
        let mut ids = Vec::with_capacity(children.len());
        for (i, (child, role)) in children.iter().enumerate() {
            let definition = def::to_json(child);
            let export_def = def::map_to_json(&child.export);
            let id = rows::insert_task(
                self.tx,
                &NewTask {
                    attempt: parent.attempt,
                    parent: Some(parent.id),
                    epoch: parent.child_epoch,
                    child_index: base + i as i64,
                    full_name: names.get(i).map_or(&child.name, |n| n),
                    is_group: matches!(child.kind, TaskKind::Group(_)),
                    role: *role,
                    definition: &definition,
                    export_def: &export_def,
                },
                self.now,
            )?;
            for &u in upstream.get(i).map_or(&[][..], |v| &v[..]) {
                if let Some(&up) = ids.get(u) {
                    rows::insert_edge(self.tx, up, id)?;
                }
            }
            // Kept before the next sibling's edges exist, so they never count it as pending.
            if resuming && *role != Role::Error {
                let row = self.load(id)?;
                if let Some(old) = self.previous_of(&row)? {
                    if old.state == TaskState::Succeeded {
                        self.keep(row, &old)?;
                    }
                }
            }
            ids.push(id);
        }
        Ok(ids)
    }

    /// The row with the same full name in the previous try's tree, while the attempt resumes.
    /// Only the first instantiation of a level is matched: under a parent that went through a
    /// group retry in this try (`child_epoch > 0`), everything runs again as a retry should.
    /// `^error` subtrees never match: a handler runs again when its task fails again.
    fn previous_of(&mut self, row: &TaskRow) -> Result<Option<Rc<TaskRow>>, Error> {
        if let Some(p) = self.previous.get(&row.id) {
            return Ok(p.clone());
        }
        let Some(old_root) = self.attempt(row.attempt)?.resume_root else {
            return Ok(None);
        };
        let found = match row.parent {
            None => Some(Rc::new(self.load(old_root)?)),
            Some(_) if row.role == Role::Error => None,
            Some(parent) => {
                let parent = self.load(parent)?;
                if parent.child_epoch != 0 {
                    None
                } else {
                    match self.previous_of(&parent)? {
                        None => None,
                        Some(old_parent) => rows::select_tasks(
                            self.tx,
                            "previous_task",
                            "parent_id = ?1 AND epoch = ?2 AND full_name = ?3",
                            params![old_parent.id.0, old_parent.child_epoch, row.full_name],
                        )?
                        .into_iter()
                        .next()
                        .map(Rc::new),
                    }
                }
            }
        };
        self.previous.insert(row.id, found.clone());
        Ok(found)
    }

    /// A resumed attempt keeps a task that succeeded in the previous try: the new row is
    /// succeeded at once, with the old run's params and exports and the store updates of the
    /// old row and its whole subtree folded into one, so later tasks see the same params
    /// although a kept group or generator gets no children.
    fn keep(&mut self, mut row: TaskRow, old: &TaskRow) -> Result<(), Error> {
        let mut stmt = self
            .tx
            .prepare_cached(
                "WITH RECURSIVE d(id, child_epoch) AS ( \
                   SELECT id, child_epoch FROM tasks WHERE id = ?1 \
                   UNION ALL SELECT t.id, t.child_epoch FROM d CROSS JOIN tasks t \
                     WHERE t.parent_id = d.id AND t.epoch = d.child_epoch) \
                 SELECT t.store_params, t.reset_store FROM d CROSS JOIN tasks t ON t.id = d.id \
                 WHERE t.store_params IS NOT NULL OR t.reset_store IS NOT NULL ORDER BY t.id",
            )
            .map_err(sql("kept_stores"))?;
        let stores = stmt
            .query_map(params![old.id.0], |r| {
                Ok((
                    r.get::<_, Option<String>>(0)?
                        .unwrap_or_else(|| "{}".into()),
                    r.get::<_, Option<String>>(1)?,
                ))
            })
            .map_err(sql("kept_stores"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql("kept_stores"))?;
        let (store, reset) = params::fold_stores(&stores)?;
        let store = (!stores.is_empty()).then(|| rows::to_json(&store));
        let reset = (!reset.is_empty()).then(|| rows::to_json(&reset));
        crate::store::exec(
            self.tx,
            "keep_task",
            "UPDATE tasks SET params = ?1, export_params = ?2, store_params = ?3, \
                 reset_store = ?4 WHERE id = ?5",
            params![old.params, old.export_params, store, reset, row.id.0],
        )?;
        row.params.clone_from(&old.params);
        row.export_params.clone_from(&old.export_params);
        row.store_params = store;
        row.reset_store = reset;
        self.transition(
            &mut row,
            TaskEvent::Resumed,
            "succeeded in the previous try",
        )?;
        Ok(())
    }

    /// The static children of a planned group, from its definition.
    fn instantiate_group_children(&mut self, row: &TaskRow, d: &TaskDef) -> Result<(), Error> {
        let TaskKind::Group(children) = &d.kind else {
            return Ok(());
        };
        let mode = self.parallel_mode(row, d)?;
        let specs = plan::children(&row.full_name, children, mode);
        let defs: Vec<(TaskDef, Role)> =
            children.iter().map(|c| (c.clone(), Role::Static)).collect();
        let upstream: Vec<Vec<usize>> = specs.iter().map(|s| s.upstream.clone()).collect();
        let names: Vec<String> = specs.into_iter().map(|s| s.full_name).collect();
        self.insert_children(row, &defs, &upstream, &names)?;
        Ok(())
    }

    fn parallel_mode(&mut self, row: &TaskRow, d: &TaskDef) -> Result<Parallel, Error> {
        let value = match &d.parallel {
            None | Some(ParallelDef::All(false)) => return Ok(Parallel::Sequential),
            Some(ParallelDef::All(true)) => return Ok(Parallel::All),
            Some(ParallelDef::Limit(n)) => return Ok(Parallel::Limit(*n)),
            Some(ParallelDef::Expr(v)) => v.clone(),
        };
        let params = self.scope_params(row, d)?;
        let attempt = self.attempt(row.attempt)?;
        match params::eval_directive(&value, &params, &attempt.timezone, self.now) {
            Ok(serde_json::Value::Bool(true)) => Ok(Parallel::All),
            Ok(serde_json::Value::String(s)) if s == "true" => Ok(Parallel::All),
            Ok(serde_json::Value::Object(m)) => Ok(m
                .get("limit")
                .and_then(serde_json::Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .map_or(Parallel::All, Parallel::Limit)),
            Ok(other) => {
                if !matches!(other, serde_json::Value::Bool(false))
                    && other != serde_json::Value::String("false".into())
                {
                    tracing::warn!(task = %row.full_name, value = %other, "`_parallel` is not a boolean or {{limit: N}}: running sequentially");
                }
                Ok(Parallel::Sequential)
            }
            Err(e) => {
                tracing::warn!(task = %row.full_name, error = %e, "cannot evaluate `_parallel`: running sequentially");
                Ok(Parallel::Sequential)
            }
        }
    }

    /// The evaluated params a group sees (for its `_parallel`/`_retry` expressions).
    fn scope_params(&mut self, row: &TaskRow, d: &TaskDef) -> Result<JsonMap, Error> {
        match self.evaluate(row, d)? {
            Ok(ev) => Ok(ev.params),
            Err(e) => {
                tracing::warn!(task = %row.full_name, error = %e, "cannot evaluate params");
                Ok(JsonMap::new())
            }
        }
    }

    /// Evaluates the scope chain of `row` once.
    fn evaluate(
        &mut self,
        row: &TaskRow,
        d: &TaskDef,
    ) -> Result<Result<crate::expr::Evaluated, crate::expr::Error>, Error> {
        let attempt = self.attempt(row.attempt)?;
        let scope = self.scope(row)?;
        Ok(scope.eval(d, &attempt.timezone, self.now))
    }

    /// The scope chain below the task's own `_export` and local params.
    pub(crate) fn scope(&mut self, row: &TaskRow) -> Result<Scope, Error> {
        let attempt = self.attempt(row.attempt)?;
        let mut ancestors: Vec<(TaskRow, crate::dig::Map)> = Vec::new();
        let mut cursor = row.parent;
        while let Some(p) = cursor {
            let prow = self.load(p)?;
            let export = def::map_from_json(&prow.export_def)?;
            cursor = prow.parent;
            ancestors.push((prow, export));
        }
        ancestors.reverse();
        let builtins = params::builtins(&attempt, &row.full_name);
        Ok(Scope::build(self.tx, &attempt, builtins, &ancestors, row)?)
    }

    /// Resolves `_retry` once per row (literal, or `${...}` against `params`).
    fn resolve_retry(
        &mut self,
        row: &mut TaskRow,
        d: &TaskDef,
        params: &JsonMap,
    ) -> Result<Result<(), String>, Error> {
        if row.retry_policy.is_some() {
            return Ok(Ok(()));
        }
        let policy = match &d.retry {
            None => return Ok(Ok(())),
            Some(RetryDef::Policy(p)) => Policy::from(p),
            Some(RetryDef::Expr(v)) => {
                let attempt = self.attempt(row.attempt)?;
                let value = match params::eval_directive(v, params, &attempt.timezone, self.now) {
                    Ok(v) => v,
                    Err(e) => return Ok(Err(e.to_string())),
                };
                match Policy::from_json(&value) {
                    Ok(p) => p,
                    Err(e) => return Ok(Err(e)),
                }
            }
        };
        let text = rows::to_json(&policy);
        crate::store::exec(
            self.tx,
            "set_retry_policy",
            "UPDATE tasks SET retry_policy = ?1 WHERE id = ?2",
            params![text, row.id.0],
        )?;
        row.retry_policy = Some(text);
        Ok(Ok(()))
    }

    fn policy(row: &TaskRow) -> Result<Option<Policy>, Error> {
        row.retry_policy
            .as_deref()
            .map(|t| serde_json::from_str(t).map_err(json_err("retry policy")))
            .transpose()
            .map_err(Error::from)
    }

    // ---------------------------------------------------------------- readiness

    /// A blocked task whose dependencies are met: a group is planned (children instantiated),
    /// an operator becomes ready and is started.
    fn unblock(&mut self, mut row: TaskRow) -> Result<(), Error> {
        let d = self.def_of(row.id)?;
        if row.is_group {
            self.transition(&mut row, TaskEvent::DepsMetGroup, "dependencies met")?;
            if d.disable {
                // `_disable: true` on a group: it succeeds with no children.
                self.transition(&mut row, TaskEvent::ChildrenSucceeded, "`_disable: true`")?;
                return Ok(());
            }
            self.plan_group(row, &d)
        } else {
            self.transition(&mut row, TaskEvent::DepsMetOperator, "dependencies met")?;
            if self.defer_starts {
                Ok(())
            } else {
                self.start(row)
            }
        }
    }

    /// A group just planned (first time or after a group retry): resolve `_retry`, instantiate.
    fn plan_group(&mut self, mut row: TaskRow, d: &TaskDef) -> Result<(), Error> {
        if row.first_started.is_none() {
            crate::store::exec(
                self.tx,
                "group_started",
                "UPDATE tasks SET first_started_ms = ?1, started_at = ?2 WHERE id = ?3",
                params![rows::ts_ms(self.now), self.now.to_string(), row.id.0],
            )?;
            row.first_started = Some(self.now);
        }
        if d.retry.is_some() && row.retry_policy.is_none() {
            let params = self.scope_params(&row, d)?;
            if let Err(e) = self.resolve_retry(&mut row, d, &params)? {
                // Digdag swallows a bad group `_retry` with a warning; so does spade, but it
                // never loops on it: the policy stays unset and the group does not retry.
                tracing::warn!(task = %row.full_name, error = %e, "ignoring invalid `_retry` on a group");
            }
        }
        self.instantiate_group_children(&row, d)?;
        self.dirty.push(row.id);
        Ok(())
    }

    /// Promotes the blocked live children of a planned task whose upstreams all succeeded,
    /// then finishes the task if no child is progressible.
    fn settle(&mut self, row: TaskRow) -> Result<(), Error> {
        let unblocked = rows::unblockable_children(self.tx, &row)?;
        if !unblocked.is_empty() {
            for child in unblocked {
                self.unblock(child)?;
            }
            // Started children may have finished at once (disabled, empty groups): re-check.
            self.dirty.push(row.id);
            return Ok(());
        }
        if rows::count_progressing_children(self.tx, &row)? > 0 {
            return Ok(());
        }
        let children = rows::live_children(self.tx, &row)?;
        self.finish_planned(row, children)
    }

    /// No child of a planned task can progress: decide its outcome.
    fn finish_planned(&mut self, mut row: TaskRow, children: Vec<TaskRow>) -> Result<(), Error> {
        for child in children.iter().filter(|c| c.state == TaskState::Blocked) {
            let mut child = child.clone();
            self.transition(&mut child, TaskEvent::Skip, "an upstream sibling failed")?;
        }
        if let Some(pending) = row.pending_state {
            let event = if pending == TaskState::Failed {
                TaskEvent::ErrorHandledFailed
            } else {
                TaskEvent::ErrorHandledGroupError
            };
            self.transition(&mut row, event, "`^error` finished")?;
            return Ok(());
        }
        let failed: Vec<&TaskRow> = children.iter().filter(|c| c.state.is_error()).collect();
        if failed.is_empty() {
            self.transition(
                &mut row,
                TaskEvent::ChildrenSucceeded,
                "all children succeeded",
            )?;
            return Ok(());
        }
        let names: Vec<&str> = failed.iter().map(|c| c.full_name.as_str()).collect();
        let message = format!("task failed: {}", names.join(", "));
        let policy = Self::policy(&row)?;
        let decision = retry::decide(
            policy.as_ref(),
            true,
            row.retry_count,
            row.first_started.unwrap_or(self.now),
            self.now,
            &message,
        );
        match decision {
            Decision::RetryAt(at) => self.schedule_retry(row, at, "children failed; group retry"),
            Decision::GiveUp(message) => {
                let error = self.subtree_error(&row, &message)?;
                self.give_up(row, error, TaskState::GroupError)
            }
        }
    }

    /// The deep merge of the errors of every live descendant (later ids win), over `message`.
    fn subtree_error(&mut self, row: &TaskRow, message: &str) -> Result<JsonMap, Error> {
        let mut stmt = self
            .tx
            .prepare_cached(
                "WITH RECURSIVE d(id, child_epoch) AS ( \
                   SELECT id, child_epoch FROM tasks WHERE parent_id = ?1 AND epoch = ?2 \
                   UNION ALL SELECT t.id, t.child_epoch FROM d CROSS JOIN tasks t \
                     WHERE t.parent_id = d.id AND t.epoch = d.child_epoch) \
                 SELECT t.error FROM d CROSS JOIN tasks t ON t.id = d.id \
                 WHERE t.error IS NOT NULL ORDER BY t.id",
            )
            .map_err(sql("subtree_error"))?;
        let errors = stmt
            .query_map(params![row.id.0, row.child_epoch], |r| {
                r.get::<_, String>(0)
            })
            .map_err(sql("subtree_error"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql("subtree_error"))?;
        let mut merged = JsonMap::new();
        for e in errors {
            let map = rows::json_map("task error", Some(&e))?;
            for (k, v) in map {
                merged.insert(k, v);
            }
        }
        if !merged.contains_key("message") {
            merged.insert("message".into(), message.into());
        }
        Ok(merged)
    }

    /// No retry left: run `^error` if defined (the task keeps `final_state` afterwards,
    /// whatever `^error` does), else go to `final_state` at once.
    fn give_up(
        &mut self,
        mut row: TaskRow,
        error: JsonMap,
        final_state: TaskState,
    ) -> Result<(), Error> {
        let error_text = rows::to_json(&error);
        crate::store::exec(
            self.tx,
            "set_error",
            "UPDATE tasks SET error = ?1 WHERE id = ?2",
            params![error_text, row.id.0],
        )?;
        let d = self.def_of(row.id)?;
        let reason = error
            .get("message")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("failed")
            .to_owned();
        match d.error.as_deref() {
            Some(handler) => {
                // `${error.*}` for the handler: exported by the failing task, which is an
                // ancestor of `^error`.
                let mut export = rows::json_map("export params", row.export_params.as_deref())?;
                export.insert("error".into(), serde_json::Value::Object(error));
                crate::store::exec(
                    self.tx,
                    "set_pending_error",
                    "UPDATE tasks SET export_params = ?1, pending_state = ?2 WHERE id = ?3",
                    params![rows::to_json(&export), final_state.as_str(), row.id.0],
                )?;
                row.export_params = Some(rows::to_json(&export));
                row.pending_state = Some(final_state);
                self.transition(&mut row, TaskEvent::FailedWithHandler, &reason)?;
                let name = plan::full_name(&row.full_name, "^error");
                self.insert_children(
                    &row,
                    &[(handler.clone(), Role::Error)],
                    &[Vec::new()],
                    &[name],
                )?;
                self.dirty.push(row.id);
                Ok(())
            }
            None => {
                let event = if final_state == TaskState::Failed {
                    TaskEvent::Failed
                } else {
                    TaskEvent::ChildrenFailed
                };
                self.transition(&mut row, event, &reason)?;
                Ok(())
            }
        }
    }

    fn schedule_retry(
        &mut self,
        mut row: TaskRow,
        at: Timestamp,
        reason: &str,
    ) -> Result<(), Error> {
        crate::store::exec(
            self.tx,
            "schedule_retry",
            "UPDATE tasks SET retry_count = retry_count + 1, retry_at_ms = ?1 WHERE id = ?2",
            params![rows::ts_ms(at), row.id.0],
        )?;
        row.retry_count = row.retry_count.saturating_add(1);
        row.retry_at = Some(at);
        self.transition(&mut row, TaskEvent::RetryScheduled, reason)?;
        if at <= self.now {
            self.retry_due(row)
        } else {
            self.actions.push(Action::WakeAt(at));
            Ok(())
        }
    }

    /// A retry wait is over: an operator runs again (same row, new fence); a group or a
    /// generator resets its subtree to a new epoch.
    pub(crate) fn retry_due(&mut self, mut row: TaskRow) -> Result<(), Error> {
        let group_retry = row.state == TaskState::GroupRetryWaiting;
        self.transition(&mut row, TaskEvent::RetryDue, "retry due")?;
        if group_retry {
            // The old epoch's rows stay as history; nothing of them is copied.
            crate::store::exec(
                self.tx,
                "new_epoch",
                "UPDATE tasks SET child_epoch = child_epoch + 1, pending_state = NULL, \
                     error = NULL WHERE id = ?1",
                params![row.id.0],
            )?;
            row.child_epoch += 1;
            row.pending_state = None;
            if row.is_group {
                let d = self.def_of(row.id)?;
                self.transition(&mut row, TaskEvent::Replan, "group retry: new epoch")?;
                return self.plan_group(row, &d);
            }
        }
        if self.defer_starts {
            return Ok(());
        }
        self.start(row)
    }

    // ---------------------------------------------------------------- runs

    /// Starts a new run of a ready operator task: evaluates its params once, bumps the fence.
    pub(crate) fn start(&mut self, mut row: TaskRow) -> Result<(), Error> {
        let d = self.def_of(row.id)?;
        let TaskKind::Operator(op) = &d.kind else {
            return Err(crate::store::Error::Corrupt {
                what: "task kind",
                detail: format!("group `{}` cannot be started", row.full_name),
            }
            .into());
        };
        if d.disable {
            self.transition(&mut row, TaskEvent::Succeeded, "`_disable: true`")?;
            return Ok(());
        }
        // Whether the operator runs is the executor's question: one spade lacks may be supplied
        // by an executable when the task runs (`operators::external`).
        let evaluated = match self.evaluate(&row, &d)? {
            Ok(e) => e,
            Err(e) => return self.fail(row, e.to_string(), JsonMap::new(), false),
        };
        if let Err(e) = self.resolve_retry(&mut row, &d, &evaluated.params)? {
            return self.fail(row, e, JsonMap::new(), false);
        }
        let fence = Fence(row.fence.0 + 1);
        let first = row.first_started.unwrap_or(self.now);
        crate::store::exec(
            self.tx,
            "start",
            "UPDATE tasks SET fence = ?1, params = ?2, secret_keys = ?3, \
                 first_started_ms = ?4, started_at = COALESCE(started_at, ?5), pid = NULL, \
                 pgid = NULL, store_params = NULL, reset_store = NULL, export_params = NULL, \
                 error = NULL WHERE id = ?6",
            params![
                fence.0,
                rows::to_json(&evaluated.params),
                rows::to_json(&evaluated.secret_keys),
                rows::ts_ms(first),
                self.now.to_string(),
                row.id.0
            ],
        )?;
        crate::store::exec(
            self.tx,
            "insert_run",
            "INSERT INTO task_runs (task_id, fence, started_at) VALUES (?1, ?2, ?3)",
            params![row.id.0, fence.0, self.now.to_string()],
        )?;
        row.fence = fence;
        // Outputs of an earlier successful run (a generator re-run by a group retry) are
        // history: nothing is stored until this run succeeds.
        row.store_params = None;
        row.reset_store = None;
        row.export_params = None;
        row.error = None;
        self.transition(&mut row, TaskEvent::Start, "started")?;
        let policy = Self::policy(&row)?;
        let command = evaluated
            .params
            .get("_command")
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        self.actions.push(Action::Start(Box::new(TaskRun {
            attempt: row.attempt,
            task: row.id,
            fence,
            full_name: row.full_name.clone(),
            operator: op.name.clone(),
            command,
            params: evaluated.params,
            secret_keys: evaluated.secret_keys,
            timeout: d.timeout,
            deadline_at: policy.as_ref().and_then(|p| p.deadline_at(first)),
            retry_count: row.retry_count,
        })));
        Ok(())
    }

    /// A failed try (or a failure before the run could start): retry, `^error`, or fail.
    fn fail(
        &mut self,
        row: TaskRow,
        message: String,
        mut error: JsonMap,
        retryable: bool,
    ) -> Result<(), Error> {
        let policy = Self::policy(&row)?;
        let decision = retry::decide(
            policy.as_ref(),
            retryable,
            row.retry_count,
            row.first_started.unwrap_or(self.now),
            self.now,
            &message,
        );
        match decision {
            Decision::RetryAt(at) => {
                tracing::info!(task = %row.full_name, %message, retry_at = %at, "try failed; retrying");
                self.schedule_retry(row, at, &message)
            }
            Decision::GiveUp(message) => {
                error.insert("message".into(), message.into());
                self.give_up(row, error, TaskState::Failed)
            }
        }
    }

    /// `Event::Completed`: applied only if `fence` is still the running one.
    pub(crate) fn complete(
        &mut self,
        task: TaskId,
        fence: Fence,
        outcome: Outcome,
    ) -> Result<(), Error> {
        let n = crate::store::exec(
            self.tx,
            "fence_check",
            "UPDATE tasks SET updated_at = ?1 WHERE id = ?2 AND fence = ?3 AND state = ?4",
            params![
                self.now.to_string(),
                task.0,
                fence.0,
                TaskState::Running.as_str()
            ],
        )?;
        if n == 0 {
            tracing::info!(%task, %fence, "ignoring a stale completion (fence no longer current)");
            return Ok(());
        }
        let row = self.load(task)?;
        let (kind, message) = match &outcome {
            Outcome::Succeeded { .. } => ("succeeded", None),
            Outcome::Failed { message, .. } => ("failed", Some(message.clone())),
            Outcome::TimedOut { limit } => {
                ("timed_out", Some(self.timed_out_message(&row, *limit)?))
            }
            Outcome::Interrupted => ("interrupted", Some("interrupted".to_owned())),
        };
        crate::store::exec(
            self.tx,
            "finish_run",
            "UPDATE task_runs SET finished_at = ?1, outcome = ?2, message = ?3 \
                 WHERE task_id = ?4 AND fence = ?5",
            params![self.now.to_string(), kind, message, task.0, fence.0],
        )?;
        if !matches!(outcome, Outcome::Interrupted) {
            crate::store::exec(
                self.tx,
                "reset_interrupted",
                "UPDATE tasks SET interrupted_count = 0 WHERE id = ?1",
                params![task.0],
            )?;
        }
        match outcome {
            Outcome::Succeeded {
                store,
                reset_store,
                export,
                subtasks,
            } => self.succeeded(row, store, reset_store, export, subtasks),
            Outcome::Failed {
                message,
                error,
                retryable,
            } => self.fail(row, message, error, retryable),
            Outcome::TimedOut { limit } => {
                let message = self.timed_out_message(&row, limit)?;
                self.fail(row, message, JsonMap::new(), true)
            }
            Outcome::Interrupted => self.interrupted(row),
        }
    }

    /// The executor kills at `_timeout` or at the retry deadline, whichever comes first, and
    /// reports how long the try ran: name the limit that fired (the run record and the task's
    /// error must agree).
    fn timed_out_message(
        &mut self,
        row: &TaskRow,
        ran: std::time::Duration,
    ) -> Result<String, Error> {
        let d = self.def_of(row.id)?;
        Ok(if d.timeout == Some(ran) {
            retry::timeout_message(ran)
        } else {
            format!(
                "try killed at the retry deadline after {} (_retry.deadline)",
                retry::fmt_duration(ran)
            )
        })
    }

    fn interrupted(&mut self, mut row: TaskRow) -> Result<(), Error> {
        let count = row.interrupted_count.saturating_add(1);
        crate::store::exec(
            self.tx,
            "interrupted",
            "UPDATE tasks SET interrupted_count = ?1 WHERE id = ?2",
            params![count, row.id.0],
        )?;
        row.interrupted_count = count;
        if count >= MAX_INTERRUPTIONS {
            let message = format!(
                "interrupted {count} times in a row (spade stopped while the task was running)"
            );
            return self.fail(row, message, JsonMap::new(), false);
        }
        self.transition(
            &mut row,
            TaskEvent::Interrupted,
            "interrupted by an engine restart",
        )?;
        if self.defer_starts {
            return Ok(());
        }
        self.start(row)
    }

    /// A graceful stop (SIGTERM, `systemctl stop`) ended this run before it finished: the run
    /// is recorded `interrupted` and the task is ready again for the next start. Unlike a crash
    /// it does not count towards the three-interruptions limit (the task did not cause it), it
    /// uses up no `_retry`, and nothing is started (the process is stopping).
    pub(crate) fn stopped(
        &mut self,
        task: TaskId,
        fence: Fence,
        reason: &str,
    ) -> Result<(), Error> {
        let n = crate::store::exec(
            self.tx,
            "fence_check",
            "UPDATE tasks SET updated_at = ?1 WHERE id = ?2 AND fence = ?3 AND state = ?4",
            params![
                self.now.to_string(),
                task.0,
                fence.0,
                TaskState::Running.as_str()
            ],
        )?;
        if n == 0 {
            return Ok(());
        }
        let mut row = self.load(task)?;
        crate::store::exec(
            self.tx,
            "finish_run",
            "UPDATE task_runs SET finished_at = ?1, outcome = ?2, message = ?3 \
                 WHERE task_id = ?4 AND fence = ?5",
            params![self.now.to_string(), "interrupted", reason, task.0, fence.0],
        )?;
        self.transition(&mut row, TaskEvent::Interrupted, reason)?;
        Ok(())
    }

    fn succeeded(
        &mut self,
        mut row: TaskRow,
        store: JsonMap,
        reset_store: Vec<String>,
        export: JsonMap,
        subtasks: Option<crate::dig::Value>,
    ) -> Result<(), Error> {
        let d = self.def_of(row.id)?;
        let sub = match subtasks {
            None => None,
            Some(body) => match (self.lower)("^sub", &body) {
                Ok(sub) => Some(sub),
                Err(diags) => {
                    let detail: Vec<String> = diags.iter().map(|d| d.message.clone()).collect();
                    let message = format!(
                        "invalid generated tasks: {}",
                        if detail.is_empty() {
                            "cannot lower the `_do` body".to_owned()
                        } else {
                            detail.join("; ")
                        }
                    );
                    // Store and export are written on success only: this run is a failure.
                    return self.fail(row, message, JsonMap::new(), false);
                }
            },
        };
        if let Some(sub) = &sub {
            let existing: i64 = self
                .tx
                .prepare_cached("SELECT COUNT(*) FROM tasks WHERE attempt_id = ?1")
                .and_then(|mut s| s.query_row(params![row.attempt.0], |r| r.get(0)))
                .map_err(sql("count_tasks"))?;
            let wanted = tree_size(sub);
            if existing.saturating_add(wanted) > MAX_TASKS_PER_ATTEMPT {
                let message = format!(
                    "generating {wanted} tasks would exceed the limit of {MAX_TASKS_PER_ATTEMPT} \
                     tasks per attempt ({existing} exist)"
                );
                return self.fail(row, message, JsonMap::new(), false);
            }
        }
        crate::store::exec(
            self.tx,
            "save_outputs",
            "UPDATE tasks SET store_params = ?1, reset_store = ?2, export_params = ?3 \
                 WHERE id = ?4",
            params![
                (!store.is_empty()).then(|| rows::to_json(&store)),
                (!reset_store.is_empty()).then(|| rows::to_json(&reset_store)),
                (!export.is_empty()).then(|| rows::to_json(&export)),
                row.id.0
            ],
        )?;
        if !export.is_empty() {
            row.export_params = Some(rows::to_json(&export));
        }
        if sub.is_none() && d.check.is_none() {
            self.transition(&mut row, TaskEvent::Succeeded, "succeeded")?;
            return Ok(());
        }
        self.transition(
            &mut row,
            TaskEvent::SucceededWithChildren,
            "succeeded; children follow",
        )?;
        let mut children: Vec<(TaskDef, Role)> = Vec::new();
        let mut names = Vec::new();
        let mut upstream = Vec::new();
        if let Some(sub) = sub {
            names.push(plan::full_name(&row.full_name, "^sub"));
            children.push((sub, Role::Sub));
            upstream.push(Vec::new());
        }
        if let Some(check) = d.check.as_deref() {
            names.push(plan::full_name(&row.full_name, "^check"));
            // `_check` runs after the generated children.
            upstream.push(if children.is_empty() {
                Vec::new()
            } else {
                vec![0]
            });
            children.push((check.clone(), Role::Check));
        }
        self.insert_children(&row, &children, &upstream, &names)?;
        self.dirty.push(row.id);
        Ok(())
    }

    /// `Event::Log`: output of a run that has no log file (`echo>`), kept with the run.
    pub(crate) fn log(&mut self, task: TaskId, fence: Fence, text: &str) -> Result<(), Error> {
        crate::store::exec(
            self.tx,
            "task_log_append",
            "INSERT INTO task_logs (task_id, fence, at, chunk) VALUES (?1, ?2, ?3, ?4)",
            params![task.0, fence.0, self.now.to_string(), text],
        )?;
        Ok(())
    }

    /// `Event::Spawned`: remember the process group so a restart can kill leftovers.
    pub(crate) fn spawned(
        &mut self,
        task: TaskId,
        fence: Fence,
        pid: u32,
        pgid: u32,
    ) -> Result<(), Error> {
        let n = crate::store::exec(
            self.tx,
            "spawned",
            "UPDATE tasks SET pid = ?1, pgid = ?2 WHERE id = ?3 AND fence = ?4 AND state = ?5",
            params![pid, pgid, task.0, fence.0, TaskState::Running.as_str()],
        )?;
        if n == 0 {
            tracing::info!(%task, %fence, "ignoring a stale spawn report");
        }
        Ok(())
    }

    /// `Event::Tick`: due retry waits (all attempts) become ready.
    pub(crate) fn tick(&mut self, attempt: Option<AttemptId>) -> Result<(), Error> {
        let due = rows::select_tasks(
            self.tx,
            "due_retries",
            "state IN (?1, ?2) AND retry_at_ms <= ?3 AND (?4 IS NULL OR attempt_id = ?4)",
            params![
                TaskState::RetryWaiting.as_str(),
                TaskState::GroupRetryWaiting.as_str(),
                rows::ts_ms(self.now),
                attempt.map(|a| a.0)
            ],
        )?;
        for row in due {
            self.retry_due(row)?;
        }
        self.settle_all()?;
        self.next_wake(attempt)
    }

    /// Adds `WakeAt` for the earliest pending retry, if any.
    pub(crate) fn next_wake(&mut self, attempt: Option<AttemptId>) -> Result<(), Error> {
        let next: Option<i64> = self
            .tx
            .prepare_cached(
                "SELECT MIN(retry_at_ms) FROM tasks WHERE state IN (?1, ?2) \
                 AND (?3 IS NULL OR attempt_id = ?3)",
            )
            .and_then(|mut s| {
                s.query_row(
                    params![
                        TaskState::RetryWaiting.as_str(),
                        TaskState::GroupRetryWaiting.as_str(),
                        attempt.map(|a| a.0)
                    ],
                    |r| r.get(0),
                )
            })
            .map_err(sql("next_wake"))?;
        if let Some(at) = rows::ms_to_ts(next) {
            if !self
                .actions
                .iter()
                .any(|a| matches!(a, Action::WakeAt(t) if *t == at))
            {
                self.actions.push(Action::WakeAt(at));
            }
        }
        Ok(())
    }

    /// Kills an attempt: every unfinished live task is canceled, children before parents, and
    /// running process groups are returned as `Action::Kill`. Late completions of the killed
    /// runs are stale (the task is no longer `running`) and ignored.
    pub(crate) fn kill(&mut self, attempt: AttemptId) -> Result<(), Error> {
        let a = self.attempt(attempt)?;
        if a.state != AttemptState::Running.as_str() {
            return Ok(());
        }
        let mut open: Vec<TaskRow> = rows::select_tasks(
            self.tx,
            "kill_attempt",
            "attempt_id = ?1",
            params![attempt.0],
        )?
        .into_iter()
        .filter(|r| !r.state.is_terminal())
        .collect();
        // Every non-terminal row is live (a finished group leaves no open child behind), and
        // ids grow downwards in the tree: descending id cancels children first.
        open.reverse();
        for mut row in open {
            if row.state == TaskState::Running {
                if let Some(pgid) = row.pgid {
                    self.actions.push(Action::Kill {
                        task: row.id,
                        fence: row.fence,
                        pgid,
                    });
                }
            }
            self.transition(&mut row, TaskEvent::Cancel, "attempt killed")?;
        }
        // Parents are canceled explicitly, so there is nothing left to settle.
        self.dirty.clear();
        Ok(())
    }

    /// `recover`: interrupted runs, leftover processes, ready tasks, due retries, and an audit
    /// of planned tasks (a join can never stay stuck on a missed wake-up).
    pub(crate) fn recover(&mut self, attempt: AttemptId) -> Result<(), Error> {
        let a = self.attempt(attempt)?;
        if a.state != AttemptState::Running.as_str() {
            let state = AttemptState::parse(&a.state).unwrap_or(AttemptState::Failed);
            self.actions
                .push(Action::AttemptFinished { attempt, state });
            return Ok(());
        }
        let running = rows::select_tasks(
            self.tx,
            "recover_running",
            "attempt_id = ?1 AND state = ?2",
            params![attempt.0, TaskState::Running.as_str()],
        )?;
        for row in running {
            if let Some(pgid) = row.pgid {
                self.actions.push(Action::Kill {
                    task: row.id,
                    fence: row.fence,
                    pgid,
                });
            }
            self.complete(row.id, row.fence, Outcome::Interrupted)?;
        }
        let ready = rows::select_tasks(
            self.tx,
            "recover_ready",
            "attempt_id = ?1 AND state = ?2",
            params![attempt.0, TaskState::Ready.as_str()],
        )?;
        for row in ready {
            if row.is_group {
                // A group is only ready between a group-retry wait and its re-plan, which
                // happen in one transaction; re-plan it here should that ever be seen.
                let mut row = row;
                let d = self.def_of(row.id)?;
                self.transition(&mut row, TaskEvent::Replan, "recovered")?;
                self.plan_group(row, &d)?;
            } else {
                self.start(row)?;
            }
        }
        let planned = rows::select_tasks(
            self.tx,
            "recover_planned",
            "attempt_id = ?1 AND state = ?2",
            params![attempt.0, TaskState::Planned.as_str()],
        )?;
        for row in planned.iter().rev() {
            self.dirty.push(row.id);
        }
        self.settle_all()?;
        self.tick(Some(attempt))
    }
}
