//! One event, one transaction: reads rows, decides transitions with `state::next`, writes them,
//! and decides in the same transaction what the change unblocks. Actions run after commit.

use super::action::{Action, Inlined, Outcome, Ran, TaskRun};
use super::def::{self, DefId, Node, NodeKind};
use super::params::{self, AncestorParts, ChainNode, Fold, Scope};
use super::plan::{self, Parallel};
use super::retry::{self, Decision, Policy};
use super::state::{next, TaskEvent, TaskState};
use super::{AttemptState, Config, Error};
use crate::dig::{ParallelDef, RetryDef, TaskDef};
use crate::expr::JsonMap;
use crate::ids::{AttemptId, Fence, TaskId};
use crate::store::rows::{self, AttemptRow, NewTask, Role, TaskRow};
use crate::store::{sql, Tx};
use jiff::Timestamp;
use rusqlite::params;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;

mod resume;

/// Tries interrupted in a row (engine crash while running) before the task fails.
pub(crate) const MAX_INTERRUPTIONS: u32 = 3;

/// What earlier transactions of an engine read or wrote that later ones may reuse: definition
/// nodes (they never change once committed) and the run param values stored once per attempt
/// (`store::run_values`). Filled after commit only, so a node id freed or a value written by a
/// rolled-back transaction is never cached.
#[derive(Default)]
pub(crate) struct NodeCache {
    nodes: std::sync::Mutex<HashMap<DefId, Arc<Node>>>,
    values: crate::store::run_values::Cache,
}

/// What one transaction read or wrote, for [`publish_nodes`] after its commit.
#[derive(Default)]
pub(crate) struct Nodes {
    defs: HashMap<DefId, Arc<Node>>,
    values: crate::store::run_values::Fresh,
}

/// Nodes kept in a [`NodeCache`] before it starts over (a bound on memory, not on cost).
const NODE_CACHE_LIMIT: usize = 50_000;

/// Adds the nodes a committed transaction read (and the run values it wrote) to the cache.
pub(crate) fn publish_nodes(cache: &NodeCache, read: Nodes) {
    cache.values.publish(read.values);
    if read.defs.is_empty() {
        return;
    }
    let mut nodes = cache
        .nodes
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if nodes.len() + read.defs.len() > NODE_CACHE_LIMIT {
        nodes.clear();
    }
    nodes.extend(read.defs);
}

/// The working state of one `apply` call: the open transaction and the actions decided.
pub(crate) struct Apply<'t, 'c> {
    tx: &'t Tx<'c>,
    now: Timestamp,
    /// `now` as stored (RFC 3339), formatted once per transaction.
    now_s: String,
    history: rows::History,
    shared: &'t NodeCache,
    pub(crate) actions: Vec<Action>,
    /// Planned tasks whose children changed: settled before the transaction commits.
    dirty: Vec<TaskId>,
    dirty_set: HashSet<TaskId>,
    attempts: HashMap<AttemptId, AttemptRow>,
    /// Definition nodes this transaction read and run values it stored (published to
    /// `shared` after commit).
    read: Nodes,
    /// The scope chain (root to the key) of parents whose children start in this transaction:
    /// siblings share it. Cleared whenever a row's exports or stores change.
    chains: HashMap<TaskId, Rc<Vec<ChainNode>>>,
    /// In `prepare_attempt` ready operators are left `ready` for `recover` to start, because
    /// `prepare_attempt` returns no actions.
    defer_starts: bool,
    config: Config,
    /// While an attempt resumes: the matches to the previous try read and made (`resume`).
    resume: resume::Memo,
    /// Runs this transaction may still complete inline (`Config::inline`).
    inline_left: u32,
}

fn json_err(what: &'static str) -> impl Fn(serde_json::Error) -> crate::store::Error {
    move |source| crate::store::Error::Json { what, source }
}

impl<'t, 'c> Apply<'t, 'c> {
    pub(crate) fn new(
        tx: &'t Tx<'c>,
        now: Timestamp,
        config: Config,
        shared: &'t NodeCache,
    ) -> Apply<'t, 'c> {
        Apply {
            tx,
            now,
            now_s: now.to_string(),
            history: rows::History::default(),
            shared,
            actions: Vec::new(),
            dirty: Vec::new(),
            dirty_set: HashSet::new(),
            attempts: HashMap::new(),
            read: Nodes::default(),
            chains: HashMap::new(),
            defer_starts: false,
            config,
            resume: resume::Memo::default(),
            inline_left: super::INLINE_BATCH,
        }
    }

    /// While set, ready operators are left `ready` instead of started (`prepare_attempt`, and
    /// journal replay before `recover`).
    pub(crate) fn defer_starts(&mut self, defer: bool) {
        self.defer_starts = defer;
    }

    pub(crate) fn tx(&self) -> &'t Tx<'c> {
        self.tx
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.now
    }

    /// Writes what is buffered (state history) and hands back the actions and the nodes read,
    /// for the caller to commit and then publish.
    pub(crate) fn finish(mut self) -> Result<(Vec<Action>, Nodes), Error> {
        self.history.flush(self.tx, &self.now_s)?;
        Ok((self.actions, self.read))
    }

    fn attempt(&mut self, id: AttemptId) -> Result<AttemptRow, Error> {
        if let Some(a) = self.attempts.get(&id) {
            return Ok(a.clone());
        }
        let a = rows::load_attempt(self.tx, id)?;
        self.attempts.insert(id, a.clone());
        Ok(a)
    }

    fn node(&mut self, id: DefId) -> Result<Arc<Node>, Error> {
        if let Some(d) = self.read.defs.get(&id) {
            return Ok(Arc::clone(d));
        }
        let cached = self
            .shared
            .nodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&id)
            .cloned();
        let d = match cached {
            Some(d) => d,
            None => Arc::new(def::load(self.tx, id)?),
        };
        self.read.defs.insert(id, Arc::clone(&d));
        Ok(d)
    }

    fn def_of(&mut self, row: &TaskRow) -> Result<Arc<Node>, Error> {
        self.node(row.def_id)
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
            rows::set_state(self.tx, row.id, row.state, to, &self.now_s)?;
            self.moved(row, to, event, reason)?;
        }
        Ok(to)
    }

    /// The rest of a transition whose new state the caller wrote in its own update (one write
    /// per row instead of two): history, and what the new state sets off.
    fn moved(
        &mut self,
        row: &mut TaskRow,
        to: TaskState,
        event: TaskEvent,
        reason: &str,
    ) -> Result<TaskState, Error> {
        self.history.record(row.id, Some(row.state), to, reason);
        row.state = to;
        if to == TaskState::Succeeded {
            if event == TaskEvent::ChildrenSucceeded {
                self.fold_children(row)?;
            }
            rows::release_downstreams(self.tx, row.id)?;
        }
        if to.is_terminal() {
            self.on_terminal(row)?;
        }
        Ok(to)
    }

    /// A task with children succeeded: its `sub_fold` is its own store followed by the
    /// `sub_fold`s of its live children in definition order (each already holds its subtree).
    fn fold_children(&mut self, row: &TaskRow) -> Result<(), Error> {
        let mut fold = Fold::default();
        fold.then_columns(row.store_params.as_deref(), row.reset_store.as_deref())?;
        let mut stmt = self
            .tx
            .prepare_cached(
                "SELECT sub_fold FROM tasks WHERE parent_id = ?1 AND epoch = ?2 \
                 AND sub_fold IS NOT NULL ORDER BY child_index",
            )
            .map_err(sql("children_folds"))?;
        let folds = stmt
            .query_map(params![row.id.0, row.child_epoch], |r| {
                r.get::<_, String>(0)
            })
            .map_err(sql("children_folds"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql("children_folds"))?;
        for text in folds {
            fold.then_fold(Fold::from_column(Some(&text))?);
        }
        if let Some(text) = fold.to_column() {
            crate::store::exec(
                self.tx,
                "set_sub_fold",
                "UPDATE tasks SET sub_fold = ?1 WHERE id = ?2",
                params![text, row.id.0],
            )?;
        }
        Ok(())
    }

    /// A task finished: its parent may progress; a finished root finishes the attempt.
    fn on_terminal(&mut self, row: &TaskRow) -> Result<(), Error> {
        match row.parent {
            Some(p) => self.mark_dirty(p),
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
                    params![state.as_str(), self.now_s.clone(), row.attempt.0, row.id.0],
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

    /// Marks a planned task for settling before the transaction commits (once, however many
    /// of its children finished in this transaction).
    fn mark_dirty(&mut self, id: TaskId) {
        if self.dirty_set.insert(id) {
            self.dirty.push(id);
        }
    }

    /// Settles every dirty planned task; repeats until nothing changes.
    pub(crate) fn settle_all(&mut self) -> Result<(), Error> {
        while let Some(id) = self.dirty.pop() {
            self.dirty_set.remove(&id);
            let row = self.load(id)?;
            if row.state == TaskState::Planned {
                self.settle(row)?;
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- live tree size

    /// Rows of the attempt's live tree: counted once when unknown (an attempt of an older
    /// spade), then kept up to date as rows are added and epochs retired.
    fn live_tasks(&mut self, attempt: AttemptId) -> Result<u64, Error> {
        let known: Option<i64> = self
            .tx
            .prepare_cached("SELECT live_tasks FROM attempts WHERE id = ?1")
            .and_then(|mut s| s.query_row(params![attempt.0], |r| r.get(0)))
            .map_err(sql("live_tasks"))?;
        let n = match known {
            Some(n) => n,
            None => {
                let n = super::live_ids(self.tx, attempt)?.len() as i64;
                crate::store::exec(
                    self.tx,
                    "count_live_tasks",
                    "UPDATE attempts SET live_tasks = ?1 WHERE id = ?2",
                    params![n, attempt.0],
                )?;
                n
            }
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn add_live(&mut self, attempt: AttemptId, n: i64) -> Result<(), Error> {
        crate::store::exec(
            self.tx,
            "add_live_tasks",
            "UPDATE attempts SET live_tasks = live_tasks + ?1 WHERE id = ?2",
            params![n, attempt.0],
        )?;
        Ok(())
    }

    // ---------------------------------------------------------------- instantiation

    /// Inserts the root of a fresh tree, plans it, and instantiates its children.
    pub(crate) fn instantiate_root(
        &mut self,
        attempt: AttemptId,
        generation: i64,
        root: DefId,
    ) -> Result<TaskId, Error> {
        let node = self.node(root)?;
        let id = rows::insert_task(
            self.tx,
            &NewTask {
                attempt,
                parent: None,
                epoch: generation,
                child_index: 0,
                full_name: &node.name,
                is_group: node.is_group(),
                role: Role::Root,
                def_id: root,
            },
            &self.now_s,
        )?;
        self.history
            .record(id, None, TaskState::Blocked, "instantiated");
        crate::store::exec(
            self.tx,
            "set_root",
            "UPDATE attempts SET root_task_id = ?1, live_tasks = 1 WHERE id = ?2",
            params![id.0, attempt.0],
        )?;
        self.attempts.remove(&attempt);
        self.match_root(id, root)?;
        let row = self.load(id)?;
        self.unblock(row)?;
        self.settle_all()?;
        Ok(id)
    }

    /// Inserts children under `parent` in its current epoch, with edges.
    fn insert_children(
        &mut self,
        parent: &TaskRow,
        children: &[(DefId, Role)],
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
        // While resuming: whether each child (or something in it) runs in this try, which
        // makes its downstream siblings run too.
        let mut runs: Vec<bool> = Vec::new();
        for (i, (def_id, role)) in children.iter().enumerate() {
            let node = self.node(*def_id)?;
            let id = rows::insert_task(
                self.tx,
                &NewTask {
                    attempt: parent.attempt,
                    parent: Some(parent.id),
                    epoch: parent.child_epoch,
                    child_index: base + i as i64,
                    full_name: names.get(i).map_or(&node.name, |n| n),
                    is_group: node.is_group(),
                    role: *role,
                    def_id: *def_id,
                },
                &self.now_s,
            )?;
            self.history
                .record(id, None, TaskState::Blocked, "instantiated");
            for &u in upstream.get(i).map_or(&[][..], |v| &v[..]) {
                if let Some(&up) = ids.get(u) {
                    rows::insert_edge(self.tx, up, id)?;
                }
            }
            // Kept before the next sibling's edges exist, so they never count it as pending.
            if resuming && *role != Role::Error {
                let upstream_runs = upstream
                    .get(i)
                    .is_some_and(|up| up.iter().any(|&u| runs.get(u) == Some(&true)));
                runs.push(self.match_child(parent, id, upstream_runs)?);
            } else {
                runs.push(true);
            }
            ids.push(id);
        }
        self.add_live(parent.attempt, children.len() as i64)?;
        Ok(ids)
    }

    /// A resumed attempt keeps a task that succeeded in the previous try: the new row is
    /// succeeded at once, with the old run's exports and stores, and the fold of what the old
    /// row and its whole subtree stored, so later tasks see the same params although a kept
    /// generator gets no children.
    fn keep(&mut self, mut row: TaskRow, old: &TaskRow) -> Result<(), Error> {
        let sub_fold: Option<String> = self
            .tx
            .prepare_cached("SELECT sub_fold FROM tasks WHERE id = ?1")
            .and_then(|mut s| s.query_row(params![old.id.0], |r| r.get(0)))
            .map_err(sql("kept_fold"))?;
        // Its upstream siblings are instantiated (and kept or not) already: what they
        // stored is what a task after this one sees before this one's own stores.
        let up_fold = params::upstream_fold(self.tx, row.id)?.to_column();
        crate::store::exec(
            self.tx,
            "keep_task",
            "UPDATE tasks SET export_params = ?1, store_params = ?2, reset_store = ?3, \
                 sub_fold = ?4, up_fold = ?5 WHERE id = ?6",
            params![
                old.export_params,
                old.store_params,
                old.reset_store,
                sub_fold,
                up_fold,
                row.id.0
            ],
        )?;
        self.chains.clear();
        row.export_params.clone_from(&old.export_params);
        row.store_params.clone_from(&old.store_params);
        row.reset_store.clone_from(&old.reset_store);
        self.transition(
            &mut row,
            TaskEvent::Resumed,
            "succeeded in the previous try",
        )?;
        Ok(())
    }

    /// The full names and upstream edges of a group's static children.
    fn child_specs(
        &mut self,
        full_name: &str,
        children: &[DefId],
        mode: Parallel,
    ) -> Result<Vec<plan::ChildSpec>, Error> {
        let nodes = children
            .iter()
            .map(|c| self.node(*c))
            .collect::<Result<Vec<_>, _>>()?;
        let infos: Vec<plan::Child<'_>> = nodes
            .iter()
            .map(|n| plan::Child {
                name: &n.name,
                background: n.background,
                after: &n.after,
            })
            .collect();
        Ok(plan::children(full_name, &infos, mode))
    }

    /// The static children of a planned group, from its definition.
    fn instantiate_group_children(&mut self, row: &TaskRow, d: &Node) -> Result<(), Error> {
        let NodeKind::Group(children) = &d.kind else {
            return Ok(());
        };
        let mode = self.parallel_mode(row, d)?;
        let specs = self.child_specs(&row.full_name, children, mode)?;
        let defs: Vec<(DefId, Role)> = children.iter().map(|c| (*c, Role::Static)).collect();
        let upstream: Vec<Vec<usize>> = specs.iter().map(|s| s.upstream.clone()).collect();
        let names: Vec<String> = specs.into_iter().map(|s| s.full_name).collect();
        self.insert_children(row, &defs, &upstream, &names)?;
        Ok(())
    }

    fn parallel_mode(&mut self, row: &TaskRow, d: &Node) -> Result<Parallel, Error> {
        let value = match &d.parallel {
            None | Some(ParallelDef::All(false)) => return Ok(Parallel::Sequential),
            Some(ParallelDef::All(true)) => return Ok(Parallel::All),
            Some(ParallelDef::Limit(n)) => return Ok(Parallel::limit(*n)),
            Some(ParallelDef::Expr(v)) => v.clone(),
        };
        let params = self.scope_params(row, d)?;
        let attempt = self.attempt(row.attempt)?;
        match params::eval_directive(&value, &params, &attempt.timezone, self.now) {
            Ok(serde_json::Value::Bool(true)) => Ok(Parallel::All),
            Ok(serde_json::Value::String(s)) if s == "true" => Ok(Parallel::All),
            Ok(serde_json::Value::Object(m)) => Ok(m
                .get("limit")
                .and_then(|l| match l {
                    serde_json::Value::String(s) => s.trim().parse::<u64>().ok(),
                    other => other.as_u64(),
                })
                .and_then(|n| u32::try_from(n).ok())
                .map_or(Parallel::All, Parallel::limit)),
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
    fn scope_params(&mut self, row: &TaskRow, d: &Node) -> Result<JsonMap, Error> {
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
        d: &Node,
    ) -> Result<Result<crate::expr::Evaluated, crate::expr::Error>, Error> {
        let attempt = self.attempt(row.attempt)?;
        let scope = self.scope(row)?;
        Ok(scope.eval(d, &attempt.timezone, self.now))
    }

    /// The chain from the root down to `parent`, one row per level (siblings share it).
    fn chain_to(&mut self, parent: TaskId) -> Result<Rc<Vec<ChainNode>>, Error> {
        if let Some(c) = self.chains.get(&parent) {
            return Ok(Rc::clone(c));
        }
        let mut stmt = self
            .tx
            .prepare_cached(
                "WITH RECURSIVE a(id, depth) AS ( \
                   SELECT ?1, 0 \
                   UNION ALL SELECT t.parent_id, a.depth + 1 FROM a CROSS JOIN tasks t \
                     ON t.id = a.id WHERE t.parent_id IS NOT NULL) \
                 SELECT a.depth, t.up_fold, t.def_id, t.export_params, t.store_params, \
                   t.reset_store \
                 FROM a CROSS JOIN tasks t ON t.id = a.id",
            )
            .map_err(sql("ancestors"))?;
        let mut raw = stmt
            .query_map(params![parent.0], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                ))
            })
            .map_err(sql("ancestors"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql("ancestors"))?;
        drop(stmt);
        // Root first; sorted here rather than by SQL, which would build a sorter each time.
        raw.sort_unstable_by_key(|r| std::cmp::Reverse(r.0));
        let mut chain = Vec::with_capacity(raw.len());
        for (_, up_fold, def_id, export_params, store_params, reset_store) in raw {
            // The ancestor's `_export` from its definition node, which later transactions
            // share: neither read from the store nor copied again per task.
            let node = self.node(DefId(def_id))?;
            chain.push(ChainNode {
                up_fold,
                ancestor: Some(AncestorParts {
                    node,
                    export_params,
                    store_params,
                    reset_store,
                }),
            });
        }
        let chain = Rc::new(chain);
        self.chains.insert(parent, Rc::clone(&chain));
        Ok(chain)
    }

    /// The scope chain below the task's own `_export` and local params.
    pub(super) fn scope(&mut self, row: &TaskRow) -> Result<Scope, Error> {
        let attempt = self.attempt(row.attempt)?;
        let ancestors = match row.parent {
            Some(p) => self.chain_to(p)?,
            None => Rc::new(Vec::new()),
        };
        let builtins = params::builtins(&attempt, &row.full_name);
        Ok(Scope::build(
            &attempt,
            builtins,
            &ancestors,
            row.up_fold.as_deref(),
        )?)
    }

    /// Resolves `_retry` once per row (literal, or `${...}` against `params`).
    fn resolve_retry(
        &mut self,
        row: &mut TaskRow,
        d: &Node,
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
    /// an operator becomes ready and is started. Either way it first records what its
    /// upstream siblings stored (`up_fold`), which is final now that they all succeeded.
    fn unblock(&mut self, mut row: TaskRow) -> Result<(), Error> {
        let fold = params::upstream_fold(self.tx, row.id)?;
        if let Some(text) = fold.to_column() {
            crate::store::exec(
                self.tx,
                "set_up_fold",
                "UPDATE tasks SET up_fold = ?1 WHERE id = ?2",
                params![text, row.id.0],
            )?;
            row.up_fold = Some(text);
        }
        let d = self.def_of(&row)?;
        if row.is_group {
            self.transition(&mut row, TaskEvent::DepsMetGroup, "dependencies met")?;
            if d.disable {
                // `_disable: true` on a group: it succeeds with no children.
                self.transition(&mut row, TaskEvent::ChildrenSucceeded, "`_disable: true`")?;
                return Ok(());
            }
            self.plan_group(row, &d)
        } else {
            if self.defer_starts {
                self.transition(&mut row, TaskEvent::DepsMetOperator, "dependencies met")?;
                return Ok(());
            }
            // `ready` is written by the start's update (`start_stored`).
            let stored = row.state;
            let ready = next(row.state, TaskEvent::DepsMetOperator)?;
            self.history
                .record(row.id, Some(row.state), ready, "dependencies met");
            row.state = ready;
            self.start_stored(row, stored)
        }
    }

    /// A group just planned (first time or after a group retry): resolve `_retry`, arm
    /// `_timeout` for this try, instantiate.
    fn plan_group(&mut self, mut row: TaskRow, d: &Node) -> Result<(), Error> {
        if row.first_started.is_none() {
            crate::store::exec(
                self.tx,
                "group_started",
                "UPDATE tasks SET first_started_ms = ?1, started_at = ?2 WHERE id = ?3",
                params![rows::ts_ms(self.now), self.now_s.clone(), row.id.0],
            )?;
            row.first_started = Some(self.now);
        }
        if let Some(timeout) = d.timeout {
            let at = retry::add(self.now, timeout);
            crate::store::exec(
                self.tx,
                "arm_timeout",
                "UPDATE tasks SET timeout_at_ms = ?1 WHERE id = ?2",
                params![rows::ts_ms(at), row.id.0],
            )?;
            row.timeout_at = Some(at);
            self.actions.push(Action::WakeAt(at));
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
        self.mark_dirty(row.id);
        Ok(())
    }

    /// Promotes the blocked live children of a planned task whose upstreams all succeeded,
    /// then finishes the task if no child is progressible.
    fn settle(&mut self, row: TaskRow) -> Result<(), Error> {
        let unblocked = rows::unblockable_children(self.tx, &row)?;
        if !unblocked.is_empty() {
            // A child that finishes at once (disabled, an empty group, a failed start) marks
            // this task dirty again as it finishes (`on_terminal`), and one still going will
            // when it finishes: no re-check here.
            for child in unblocked {
                self.unblock(child)?;
            }
            return Ok(());
        }
        if rows::any_progressing_child(self.tx, &row)? {
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
            // A group's `_check` runs once its children succeeded (an operator's was added
            // with its generated children); its failure fails the group like a child's.
            if row.is_group && !children.iter().any(|c| c.role == Role::Check) {
                let d = self.def_of(&row)?;
                if let Some(check) = d.check {
                    let name = plan::full_name(&row.full_name, "^check");
                    self.insert_children(&row, &[(check, Role::Check)], &[Vec::new()], &[name])?;
                    self.mark_dirty(row.id);
                    return Ok(());
                }
            }
            self.transition(
                &mut row,
                TaskEvent::ChildrenSucceeded,
                "all children succeeded",
            )?;
            return Ok(());
        }
        let names: Vec<&str> = failed.iter().map(|c| c.full_name.as_str()).collect();
        let message = format!("task failed: {}", names.join(", "));
        self.decide_group_failure(row, message)
    }

    /// A planned task's try failed (a child failed, or the try timed out): group retry, or
    /// `^error` and `group_error`.
    fn decide_group_failure(&mut self, row: TaskRow, message: String) -> Result<(), Error> {
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
        let d = self.def_of(&row)?;
        let reason = error
            .get("message")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("failed")
            .to_owned();
        match d.error {
            Some(handler) => {
                // `${error.*}` for the handler: exported by the failing task, which is an
                // ancestor of `^error`; a failed group also exports what its descendants
                // stored (spec 5.6), so its handler sees the stores of the tasks that ran.
                let mut export = rows::json_map("export params", row.export_params.as_deref())?;
                if final_state == TaskState::GroupError {
                    let stored = params::subtree_fold(self.tx, row.id)?;
                    params::deep_merge(&mut export, stored.store);
                }
                export.insert("error".into(), serde_json::Value::Object(error));
                crate::store::exec(
                    self.tx,
                    "set_pending_error",
                    "UPDATE tasks SET export_params = ?1, pending_state = ?2 WHERE id = ?3",
                    params![rows::to_json(&export), final_state.as_str(), row.id.0],
                )?;
                self.chains.clear();
                row.export_params = Some(rows::to_json(&export));
                row.pending_state = Some(final_state);
                self.transition(&mut row, TaskEvent::FailedWithHandler, &reason)?;
                let name = plan::full_name(&row.full_name, "^error");
                self.insert_children(&row, &[(handler, Role::Error)], &[Vec::new()], &[name])?;
                self.mark_dirty(row.id);
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
            // The old epoch's rows stay as history (no longer counted as live); nothing of
            // them is copied.
            let retired = count_subtree(self.tx, row.id, row.child_epoch)?;
            self.add_live(row.attempt, -retired)?;
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
                let d = self.def_of(&row)?;
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
    pub(crate) fn start(&mut self, row: TaskRow) -> Result<(), Error> {
        let stored = row.state;
        self.start_stored(row, stored)
    }

    /// `start` of a row whose state in the database is still `stored` (the `ready` of an
    /// unblocked task is written by the start's own update: one write of the row less per
    /// task). Every path that does not reach that update writes the state first.
    fn start_stored(&mut self, mut row: TaskRow, stored: TaskState) -> Result<(), Error> {
        let d = self.def_of(&row)?;
        let NodeKind::Operator(op) = &d.kind else {
            return Err(crate::store::Error::Corrupt {
                what: "task kind",
                detail: format!("group `{}` cannot be started", row.full_name),
            }
            .into());
        };
        if d.disable {
            self.write_state(&row, stored)?;
            self.transition(&mut row, TaskEvent::Succeeded, "`_disable: true`")?;
            return Ok(());
        }
        // Whether the operator runs is the executor's question: one spade lacks may be supplied
        // by an executable when the task runs (`operators::external`).
        let evaluated = match self.evaluate(&row, &d)? {
            Ok(e) => e,
            Err(e) => {
                self.write_state(&row, stored)?;
                return self.fail(row, e.to_string(), JsonMap::new(), false);
            }
        };
        if let Err(e) = self.resolve_retry(&mut row, &d, &evaluated.params)? {
            self.write_state(&row, stored)?;
            return self.fail(row, e, JsonMap::new(), false);
        }
        let fence = Fence(row.fence.0 + 1);
        let first = row.first_started.unwrap_or(self.now);
        // `_timeout` bounds the whole try: the executor kills the run at this time, and a
        // generator's children must finish by then too (`tick`).
        let timeout_at = d.timeout.map(|t| retry::add(self.now, t));
        let policy = Self::policy(&row)?;
        // Cached with the attempt row, so possibly a few tasks behind within this
        // transaction: good enough for a generator's early refusal.
        let live = self.attempt(row.attempt)?.live_tasks.unwrap_or(0);
        let generate_limit = self
            .config
            .task_limit
            .saturating_sub(u64::try_from(live).unwrap_or(0));
        let command = evaluated
            .params
            .get("_command")
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        let secret_keys = rows::to_json(&evaluated.secret_keys);
        let run = TaskRun {
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
            generate_limit,
        };
        let inlined = self.inline(&run);
        // The state change is part of this write (one update of the row, not two). A run that
        // ends inline also ends the interruption streak here, as a completion would.
        let running = next(row.state, TaskEvent::Start)?;
        let n = crate::store::exec(
            self.tx,
            "start",
            "UPDATE tasks SET fence = ?1, first_started_ms = ?2, \
                 started_at = COALESCE(started_at, ?3), updated_at = ?3, pid = NULL, \
                 pgid = NULL, store_params = NULL, reset_store = NULL, export_params = NULL, \
                 error = NULL, timeout_at_ms = ?4, state = ?5, \
                 interrupted_count = CASE WHEN ?8 THEN 0 ELSE interrupted_count END \
                 WHERE id = ?6 AND state = ?7",
            params![
                fence.0,
                rows::ts_ms(first),
                self.now_s,
                timeout_at.map(rows::ts_ms),
                running.as_str(),
                row.id.0,
                stored.as_str(),
                inlined.is_some(),
            ],
        )?;
        rows::expect_one(n, row.id, stored)?;
        // A run that ends inline is recorded with its end in the same row. Large values
        // (an inherited `_export` of a config blob, say) are stored once per attempt.
        let stored = crate::store::run_values::store(
            self.tx,
            row.attempt.0,
            &run.params,
            &self.shared.values,
            &mut self.read.values,
        )?;
        crate::store::exec(
            self.tx,
            "insert_run",
            "INSERT INTO task_runs (task_id, fence, started_at, params, params_refs, \
                 secret_keys, finished_at, outcome) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                row.id.0,
                fence.0,
                self.now_s,
                stored.params,
                stored.refs,
                secret_keys,
                inlined.as_ref().map(|_| self.now_s.as_str()),
                inlined.as_ref().map(|_| "succeeded"),
            ],
        )?;
        if row.export_params.is_some() || row.store_params.is_some() {
            // A generator run again: its earlier outputs are history, and so are chains
            // cached through it.
            self.chains.clear();
        }
        row.fence = fence;
        // Outputs of an earlier successful run (a generator re-run by a group retry) are
        // history: nothing is stored until this run succeeds.
        row.store_params = None;
        row.reset_store = None;
        row.export_params = None;
        row.error = None;
        row.timeout_at = timeout_at;
        self.moved(&mut row, running, TaskEvent::Start, "started")?;
        match inlined {
            Some(inlined) => self.complete_inline(row, run, inlined),
            None => {
                self.actions.push(Action::Start(Box::new(run)));
                Ok(())
            }
        }
    }

    /// Writes the in-memory state of a row whose stored state is still `stored`.
    fn write_state(&mut self, row: &TaskRow, stored: TaskState) -> Result<(), Error> {
        if row.state != stored {
            rows::set_state(self.tx, row.id, stored, row.state, &self.now_s)?;
        }
        Ok(())
    }

    /// Whether `run` ends here, in its start's transaction, and how (`Config::inline`): at
    /// most `INLINE_BATCH` runs per transaction, and never one whose retry deadline has
    /// passed (the executor decides that race as it always has).
    fn inline(&mut self, run: &TaskRun) -> Option<Inlined> {
        if self.inline_left == 0 || run.deadline_at.is_some_and(|d| d <= self.now) {
            return None;
        }
        let inlined = (self.config.inline?)(run)?;
        self.inline_left -= 1;
        Some(inlined)
    }

    /// Completes a run that was started in this transaction (its run row says so already),
    /// as the executor's report of a success would: its output is the run's log, then the
    /// success is applied with every transition of an ordinary one (`_check`, what it
    /// unblocks). The fence check of a completion is not needed: the row was started by this
    /// transaction, under this fence.
    fn complete_inline(
        &mut self,
        row: TaskRow,
        run: TaskRun,
        inlined: Inlined,
    ) -> Result<(), Error> {
        if let Some(text) = &inlined.output {
            self.log(run.task, run.fence, &format!("{text}\n"))?;
        }
        self.actions.push(Action::Ran(Box::new(Ran {
            task: run.task,
            fence: run.fence,
            full_name: run.full_name,
            operator: run.operator,
            output: inlined.output,
        })));
        self.succeeded(row, JsonMap::new(), Vec::new(), JsonMap::new(), None)
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
        // The fence check, the end of an interruption streak by any real outcome, and the
        // row, in one statement.
        let interrupted = matches!(outcome, Outcome::Interrupted);
        let Some(row) = rows::claim_completion(self.tx, task, fence, &self.now_s, interrupted)?
        else {
            tracing::info!(%task, %fence, "ignoring a stale completion (fence no longer current)");
            return Ok(());
        };
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
            params![self.now_s, kind, message, task.0, fence.0],
        )?;
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
        let d = self.def_of(row)?;
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

    /// Why generated tasks cannot be added under `row`: the attempt's live tree would pass the
    /// task limit, or the tree would nest deeper than any `.dig` file may.
    fn generation_limit(&mut self, row: &TaskRow, sub: &TaskDef) -> Result<Option<String>, Error> {
        let wanted = def::tree_size(sub);
        let live = self.live_tasks(row.attempt)?;
        let limit = self.config.task_limit;
        if live.saturating_add(wanted) > limit {
            return Ok(Some(format!(
                "generating {wanted} tasks would exceed the limit of {limit} tasks per attempt \
                 ({live} in its current tree; tasks of earlier tries and retries do not count); \
                 raise it with `spade run --task-limit N`"
            )));
        }
        let depth = match row.parent {
            Some(p) => self.chain_to(p)?.len(),
            None => 0,
        };
        // The generator, its `^sub`, and the levels below it.
        let deepest = depth + 1 + def::tree_depth(sub);
        let max = crate::dig::MAX_TASK_DEPTH;
        if deepest > max {
            return Ok(Some(format!(
                "generated tasks would nest {deepest} levels deep, more than the limit of {max} \
                 levels (a `call>` that calls itself never ends)"
            )));
        }
        Ok(None)
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
            params![self.now_s, task.0, fence.0, TaskState::Running.as_str()],
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
            params![self.now_s, "interrupted", reason, task.0, fence.0],
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
        let d = self.def_of(&row)?;
        let sub = match subtasks {
            None => None,
            Some(body) => match (self.config.lower)("^sub", &body) {
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
            if let Some(message) = self.generation_limit(&row, sub)? {
                return self.fail(row, message, JsonMap::new(), false);
            }
        }
        let store_text = (!store.is_empty()).then(|| rows::to_json(&store));
        let reset_text = (!reset_store.is_empty()).then(|| rows::to_json(&reset_store));
        let leaf = sub.is_none() && d.check.is_none();
        // A task without children: what it stored is all its subtree stored.
        let sub_fold = if leaf {
            let mut fold = Fold::default();
            fold.then(store, reset_store);
            fold.to_column()
        } else {
            None
        };
        // The outputs and the new state in one write.
        let event = if leaf {
            TaskEvent::Succeeded
        } else {
            TaskEvent::SucceededWithChildren
        };
        let to = next(row.state, event)?;
        let n = crate::store::exec(
            self.tx,
            "save_outputs",
            "UPDATE tasks SET store_params = ?1, reset_store = ?2, export_params = ?3, \
                 sub_fold = ?4, state = ?5, updated_at = ?6, \
                 finished_at = CASE WHEN ?7 THEN ?6 ELSE finished_at END \
                 WHERE id = ?8 AND state = ?9",
            params![
                store_text,
                reset_text,
                (!export.is_empty()).then(|| rows::to_json(&export)),
                sub_fold,
                to.as_str(),
                self.now_s,
                to.is_terminal(),
                row.id.0,
                row.state.as_str()
            ],
        )?;
        rows::expect_one(n, row.id, row.state)?;
        row.store_params = store_text;
        row.reset_store = reset_text;
        if !export.is_empty() {
            row.export_params = Some(rows::to_json(&export));
            self.chains.clear();
        }
        if leaf {
            self.moved(&mut row, to, event, "succeeded")?;
            return Ok(());
        }
        self.chains.clear();
        self.moved(&mut row, to, event, "succeeded; children follow")?;
        let mut children: Vec<(DefId, Role)> = Vec::new();
        let mut names = Vec::new();
        let mut upstream = Vec::new();
        if let Some(sub) = sub {
            names.push(plan::full_name(&row.full_name, "^sub"));
            children.push((def::store(self.tx, &sub)?, Role::Sub));
            upstream.push(Vec::new());
        }
        if let Some(check) = d.check {
            names.push(plan::full_name(&row.full_name, "^check"));
            // `_check` runs after the generated children.
            upstream.push(if children.is_empty() {
                Vec::new()
            } else {
                vec![0]
            });
            children.push((check, Role::Check));
        }
        self.insert_children(&row, &children, &upstream, &names)?;
        if let Some(at) = row.timeout_at {
            // The children run inside the generator's try.
            self.actions.push(Action::WakeAt(at));
        }
        self.mark_dirty(row.id);
        Ok(())
    }

    /// `Event::Log`: output of a run that has no log file (`echo>`), kept with the run.
    pub(crate) fn log(&mut self, task: TaskId, fence: Fence, text: &str) -> Result<(), Error> {
        crate::store::exec(
            self.tx,
            "task_log_append",
            "INSERT INTO task_logs (task_id, fence, at, chunk) VALUES (?1, ?2, ?3, ?4)",
            params![task.0, fence.0, self.now_s, text],
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

    /// `Event::Tick`: due retry waits (all attempts) become ready, and planned tasks whose
    /// try passed its `_timeout` are timed out.
    pub(crate) fn tick(&mut self, attempt: Option<AttemptId>) -> Result<(), Error> {
        let due = rows::select_indexed_tasks(
            self.tx,
            "due_retries",
            rows::DUE_RETRIES_WHERE,
            params![rows::ts_ms(self.now), attempt.map(|a| a.0)],
        )?;
        for row in due {
            self.retry_due(row)?;
        }
        let timed_out = rows::select_indexed_tasks(
            self.tx,
            "due_timeouts",
            rows::DUE_TIMEOUTS_WHERE,
            params![
                rows::ts_ms(self.now),
                TaskState::Planned.as_str(),
                attempt.map(|a| a.0)
            ],
        )?;
        for row in timed_out {
            // Re-read: timing out an outer task may have finished this one.
            let row = self.load(row.id)?;
            if row.state == TaskState::Planned && row.pending_state.is_none() {
                self.time_out(row)?;
            }
        }
        self.settle_all()?;
        self.next_wake(attempt)
    }

    /// A planned task's try passed its `_timeout` (a group, or a generator with its
    /// children): what still runs under it is canceled (running processes killed), and the
    /// try fails like a timed-out operator try, so `_retry` and `_error` apply.
    fn time_out(&mut self, row: TaskRow) -> Result<(), Error> {
        let d = self.def_of(&row)?;
        let Some(limit) = d.timeout else {
            return Ok(());
        };
        let mut open: Vec<TaskRow> = live_descendants(self.tx, &row)?
            .into_iter()
            .filter(|r| !r.state.is_terminal())
            .collect();
        // Ids grow downwards in the tree: descending id cancels children first.
        open.sort_by_key(|r| std::cmp::Reverse(r.id));
        for mut child in open {
            if child.state == TaskState::Running {
                if let Some(pgid) = child.pgid {
                    self.actions.push(Action::Kill {
                        task: child.id,
                        fence: child.fence,
                        pgid,
                    });
                }
            }
            self.transition(
                &mut child,
                TaskEvent::Cancel,
                "the try of an ancestor timed out",
            )?;
        }
        let message = retry::timeout_message(limit);
        tracing::info!(task = %row.full_name, %message, "try timed out");
        self.decide_group_failure(row, message)
    }

    /// Adds `WakeAt` for the earliest pending retry or planned timeout, if any.
    pub(crate) fn next_wake(&mut self, attempt: Option<AttemptId>) -> Result<(), Error> {
        let next: Option<i64> = self
            .tx
            .prepare_cached(
                "SELECT MIN(t) FROM ( \
                   SELECT MIN(retry_at_ms) AS t FROM tasks \
                     WHERE state IN ('retry_waiting', 'group_retry_waiting') \
                     AND (?1 IS NULL OR attempt_id = ?1) \
                   UNION ALL SELECT MIN(timeout_at_ms) FROM tasks \
                     WHERE timeout_at_ms IS NOT NULL AND state = 'planned' \
                     AND (?1 IS NULL OR attempt_id = ?1))",
            )
            .and_then(|mut s| s.query_row(params![attempt.map(|a| a.0)], |r| r.get(0)))
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
        self.dirty_set.clear();
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
                let d = self.def_of(&row)?;
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
            self.mark_dirty(row.id);
        }
        self.settle_all()?;
        self.tick(Some(attempt))
    }
}

/// Rows in the subtree of one epoch of `task`'s children (the rows a group retry retires).
fn count_subtree(tx: &Tx<'_>, task: TaskId, epoch: i64) -> Result<i64, Error> {
    tx.prepare_cached(
        "WITH RECURSIVE d(id, child_epoch) AS ( \
           SELECT id, child_epoch FROM tasks WHERE parent_id = ?1 AND epoch = ?2 \
           UNION ALL SELECT t.id, t.child_epoch FROM d CROSS JOIN tasks t \
             WHERE t.parent_id = d.id AND t.epoch = d.child_epoch) \
         SELECT COUNT(*) FROM d",
    )
    .and_then(|mut s| s.query_row(params![task.0, epoch], |r| r.get(0)))
    .map_err(sql("count_subtree"))
    .map_err(Error::from)
}

/// The live descendants of a task (current epochs only).
fn live_descendants(tx: &Tx<'_>, row: &TaskRow) -> Result<Vec<TaskRow>, Error> {
    Ok(rows::select_tasks(
        tx,
        "live_descendants",
        "id IN (WITH RECURSIVE d(id, child_epoch) AS ( \
           SELECT id, child_epoch FROM tasks WHERE parent_id = ?1 AND epoch = ?2 \
           UNION ALL SELECT t.id, t.child_epoch FROM d CROSS JOIN tasks t \
             WHERE t.parent_id = d.id AND t.epoch = d.child_epoch) SELECT id FROM d)",
        params![row.id.0, row.child_epoch],
    )?)
}
