//! A scripted fake executor over a real store: drives `Engine::apply` in tests, no processes.
//!
//! `Harness` owns an engine on a database file in a caller-given directory, starts an attempt,
//! and answers every `Action::Start` with the outcome scripted for that task name (success by
//! default). Time is a field: a `WakeAt` with nothing running advances it, so retries with
//! intervals run instantly. The exec helper may reuse it.

use super::{Action, AttemptState, Engine, Event, NewAttempt, Outcome, TaskRun, TaskSummary};
use crate::diag::{Diagnostic, Span};
use crate::dig::{
    Key, Map, OperatorCall, ParallelDef, RetryDef, RetryPolicy, TaskDef, TaskKind, Template,
    TemplatePart, Value, ValueKind, Workflow,
};
use crate::expr::JsonMap;
use crate::ids::AttemptId;
use jiff::Timestamp;
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::time::Duration;

/// The harness inlines `nop>` runs as `Engine::open` does; every other operator (the
/// scenarios script `echo>` and `sh>`) goes to the script.
pub fn inline_nop(run: &TaskRun) -> Option<super::Inlined> {
    (run.operator == "nop").then_some(super::Inlined { output: None })
}

/// A string value without expressions.
pub fn v_str(s: &str) -> Value {
    Value {
        kind: ValueKind::Str(Template {
            raw: s.to_owned(),
            parts: vec![TemplatePart::Literal(s.to_owned())],
        }),
        span: Span::NONE,
    }
}

/// A mapping value from `(key, value)` pairs.
pub fn v_map(entries: Vec<(&str, Value)>) -> Value {
    Value {
        kind: ValueKind::Map(map(entries)),
        span: Span::NONE,
    }
}

pub fn v_int(i: i64) -> Value {
    Value {
        kind: ValueKind::Int(i),
        span: Span::NONE,
    }
}

pub fn map(entries: Vec<(&str, Value)>) -> Map {
    Map {
        entries: entries
            .into_iter()
            .map(|(k, v)| {
                (
                    Key {
                        name: k.to_owned(),
                        span: Span::NONE,
                    },
                    v,
                )
            })
            .collect(),
    }
}

fn blank(name: &str, kind: TaskKind) -> TaskDef {
    TaskDef::new(name, kind, Span::NONE)
}

/// An operator task `name: {operator>: command}`.
pub fn op(name: &str, operator: &str, command: &str) -> TaskDef {
    blank(
        name,
        TaskKind::Operator(Box::new(OperatorCall {
            name: operator.to_owned(),
            command: v_str(command),
            supported: true,
            do_block: None,
            else_do_block: None,
            span: Span::NONE,
        })),
    )
}

/// A group task with children in order.
pub fn group(name: &str, children: Vec<TaskDef>) -> TaskDef {
    blank(name, TaskKind::Group(children))
}

/// `_parallel: true` on a group.
pub fn parallel(mut g: TaskDef) -> TaskDef {
    g.parallel = Some(ParallelDef::All(true));
    g
}

/// `_retry: limit` (no interval).
pub fn with_retry(mut t: TaskDef, limit: u32) -> TaskDef {
    t.retry = Some(RetryDef::Policy(RetryPolicy {
        limit,
        interval: Duration::ZERO,
        interval_type: crate::dig::IntervalType::Constant,
        max_interval: None,
        deadline: None,
    }));
    t
}

/// A workflow named `wf` with root `+wf`.
pub fn workflow(mut root: TaskDef) -> Workflow {
    root.name = "+wf".into();
    Workflow {
        name: "wf".into(),
        timezone: "UTC".into(),
        schedule: None,
        sla: None,
        root,
        span: Span::NONE,
    }
}

/// A small lowering of generated bodies for tests: `+name:` keys are children (a group),
/// `op>: cmd` makes an operator, `_parallel: true`, `_retry: N` and `_export: {k: v}` are read.
pub fn lower_for_tests(name: &str, body: &Value) -> Result<TaskDef, Vec<Diagnostic>> {
    let bad = |m: &str| vec![Diagnostic::error(Span::NONE, m.to_owned())];
    let m = body.as_map().ok_or_else(|| bad("body must be a map"))?;
    let mut children = Vec::new();
    let mut operator = None;
    let mut export = Map::default();
    let mut params = Map::default();
    let mut par = None;
    let mut retry = None;
    for (k, v) in &m.entries {
        if k.name.starts_with('+') {
            children.push(lower_for_tests(&k.name, v)?);
        } else if let Some(op_name) = k.name.strip_suffix('>') {
            operator = Some((op_name.to_owned(), v.clone()));
        } else if k.name == "_export" {
            export = v
                .as_map()
                .cloned()
                .ok_or_else(|| bad("_export must be a map"))?;
        } else if k.name == "_parallel" {
            par = Some(ParallelDef::All(matches!(v.kind, ValueKind::Bool(true))));
        } else if k.name == "_retry" {
            if let ValueKind::Int(n) = v.kind {
                retry = u32::try_from(n).ok();
            }
        } else {
            params.entries.push((k.clone(), v.clone()));
        }
    }
    let mut t = match operator {
        Some((op_name, command)) => {
            let mut t = op(name, &op_name, "");
            if let TaskKind::Operator(o) = &mut t.kind {
                o.command = command;
            }
            t
        }
        None => group(name, children),
    };
    t.export = export;
    t.params = params;
    t.parallel = par;
    if let Some(n) = retry {
        t = with_retry(t, n);
    }
    Ok(t)
}

/// What the fake executor answers for one run.
#[derive(Clone, Debug)]
pub enum Script {
    Succeed,
    /// Succeed and store these params.
    Store(JsonMap),
    /// Succeed, first removing these dotted keys from earlier stores, then storing.
    StoreReset(JsonMap, Vec<String>),
    /// Succeed and generate this `^sub` body.
    Generate(Value),
    /// A retryable failure (like `sh>` exiting non-zero).
    Fail,
    /// A failure `_retry` does not apply to (like `fail>`).
    FailNoRetry,
    TimeOut(Duration),
    /// Never answer: the run stays in flight (for crash-recovery tests).
    Hold,
}

/// The fake executor.
pub struct Harness {
    pub engine: Engine,
    pub attempt: AttemptId,
    pub now: Timestamp,
    /// Runs started and not answered yet, in start order.
    pub pending: VecDeque<TaskRun>,
    /// Runs held by `Script::Hold`.
    pub held: Vec<TaskRun>,
    /// Full names of every run started, in order.
    pub started: Vec<String>,
    /// Params each run was started with, by start order.
    pub started_params: Vec<JsonMap>,
    /// Full names of every run the engine completed inline (`nop>` here), in order.
    pub ran: Vec<String>,
    pub kills: Vec<u32>,
    pub finished: Option<AttemptState>,
    wakes: Vec<Timestamp>,
    /// Per full name (or name suffix when it starts with `+`), answers in order; the last one
    /// repeats.
    scripts: HashMap<String, Vec<Script>>,
    answered: HashMap<String, usize>,
}

impl Harness {
    /// Opens `dir/spade.db`, prepares the attempt at a fixed time, recovers it.
    pub fn new(dir: &Path, wf: Workflow) -> Harness {
        let engine = Engine::open(&dir.join("spade.db"))
            .map(|e| {
                e.with_lowerer(lower_for_tests)
                    .with_inliner(Some(inline_nop))
            })
            .unwrap_or_else(|e| panic!("open: {e}"));
        let mut h = Harness {
            engine,
            attempt: AttemptId(0),
            now: Timestamp::from_second(1_700_000_000).unwrap_or(Timestamp::UNIX_EPOCH),
            pending: VecDeque::new(),
            held: Vec::new(),
            started: Vec::new(),
            ran: Vec::new(),
            started_params: Vec::new(),
            kills: Vec::new(),
            finished: None,
            wakes: Vec::new(),
            scripts: HashMap::new(),
            answered: HashMap::new(),
        };
        let prepared = h
            .engine
            .prepare_attempt(&new_attempt(dir, wf), h.now)
            .unwrap_or_else(|e| panic!("prepare: {e}"));
        h.attempt = prepared.attempt;
        h.recover();
        h
    }

    /// Reopens the engine with another task limit (the default is far above what tests build).
    pub fn with_task_limit(mut self, limit: u64) -> Harness {
        let path = self.engine.store().path().to_owned();
        self.engine = Engine::open(&path)
            .map(|e| {
                e.with_lowerer(lower_for_tests)
                    .with_inliner(Some(inline_nop))
                    .with_task_limit(limit)
            })
            .unwrap_or_else(|e| panic!("reopen: {e}"));
        self
    }

    /// Scripts the answers for a task (exact full name, or a suffix such as `+a`).
    pub fn script(&mut self, name: &str, answers: Vec<Script>) -> &mut Harness {
        self.scripts.insert(name.to_owned(), answers);
        self
    }

    /// Simulates `kill -9` and a restart: a new engine on the same file, in-flight runs lost
    /// (their late results may still be applied by the test), then `recover`.
    pub fn restart(&mut self) {
        self.restart_without_recover();
        self.recover();
    }

    /// `restart` up to the new engine: the test then calls `recover` or `Engine::replay`.
    pub fn restart_without_recover(&mut self) {
        let path = self.engine.store().path().to_owned();
        self.engine = Engine::open(&path)
            .map(|e| {
                e.with_lowerer(lower_for_tests)
                    .with_inliner(Some(inline_nop))
            })
            .unwrap_or_else(|e| panic!("reopen: {e}"));
        self.pending.clear();
    }

    pub fn recover(&mut self) {
        let actions = self
            .engine
            .recover(self.attempt, self.now)
            .unwrap_or_else(|e| panic!("recover: {e}"));
        self.take(actions);
    }

    fn take(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Start(run) => {
                    self.started.push(run.full_name.clone());
                    self.started_params.push(run.params.clone());
                    self.pending.push_back(*run);
                }
                Action::Ran(ran) => self.ran.push(ran.full_name),
                Action::WakeAt(t) => self.wakes.push(t),
                Action::Kill { pgid, .. } => self.kills.push(pgid),
                Action::AttemptFinished { state, .. } => self.finished = Some(state),
            }
        }
    }

    fn answer_for(&mut self, full_name: &str) -> Script {
        let key = self
            .scripts
            .keys()
            .filter(|k| full_name == k.as_str() || full_name.ends_with(k.as_str()))
            .max_by_key(|k| k.len())
            .cloned();
        let Some(key) = key else {
            return Script::Succeed;
        };
        let n = self.answered.entry(key.clone()).or_insert(0);
        let list = &self.scripts[&key];
        let s = list
            .get(*n)
            .or_else(|| list.last())
            .cloned()
            .unwrap_or(Script::Succeed);
        *n += 1;
        s
    }

    /// Applies one event and collects its actions.
    pub fn apply(&mut self, event: Event) {
        let actions = self
            .engine
            .apply(self.now, event)
            .unwrap_or_else(|e| panic!("apply: {e}"));
        self.take(actions);
    }

    /// Answers the oldest pending run. False when nothing is pending.
    pub fn step(&mut self) -> bool {
        let Some(run) = self.pending.pop_front() else {
            return false;
        };
        let outcome = match self.answer_for(&run.full_name) {
            Script::Hold => {
                self.held.push(run);
                return true;
            }
            Script::Succeed => success(JsonMap::new(), None),
            Script::Store(m) => success(m, None),
            Script::StoreReset(m, reset_store) => Outcome::Succeeded {
                store: m,
                reset_store,
                export: JsonMap::new(),
                subtasks: None,
            },
            Script::Generate(body) => success(JsonMap::new(), Some(body)),
            Script::Fail => Outcome::Failed {
                message: "Command failed with code 1".into(),
                error: JsonMap::new(),
                retryable: true,
            },
            Script::FailNoRetry => Outcome::Failed {
                message: "failed by fail>".into(),
                error: JsonMap::new(),
                retryable: false,
            },
            Script::TimeOut(limit) => Outcome::TimedOut { limit },
        };
        self.apply(Event::Completed {
            task: run.task,
            fence: run.fence,
            outcome: Box::new(outcome),
        });
        true
    }

    /// Runs until the attempt finishes or nothing can happen (held runs, no wake-ups).
    pub fn run(&mut self) -> Option<AttemptState> {
        for _ in 0..1_000_000 {
            if self.finished.is_some() {
                break;
            }
            if self.step() {
                continue;
            }
            self.wakes.sort();
            self.wakes.dedup();
            if self.wakes.is_empty() {
                break;
            }
            let at = self.wakes.remove(0);
            if at > self.now {
                self.now = at;
            }
            self.apply(Event::Tick);
        }
        self.finished
    }

    pub fn tasks(&self) -> Vec<TaskSummary> {
        self.engine
            .list_tasks(self.attempt)
            .unwrap_or_else(|e| panic!("list_tasks: {e}"))
    }

    /// `full name -> state` of the live rows.
    pub fn live_states(&self) -> Vec<(String, &'static str)> {
        self.tasks()
            .into_iter()
            .filter(|t| t.live)
            .map(|t| (t.full_name, t.state.as_str()))
            .collect()
    }

    /// How many runs of tasks whose full name ends with `suffix` were started (by the
    /// script, or completed inline by the engine).
    pub fn starts_of(&self, suffix: &str) -> usize {
        self.started
            .iter()
            .chain(&self.ran)
            .filter(|n| n.ends_with(suffix))
            .count()
    }
}

fn success(store: JsonMap, subtasks: Option<Value>) -> Outcome {
    Outcome::Succeeded {
        store,
        reset_store: Vec::new(),
        export: JsonMap::new(),
        subtasks,
    }
}

/// A default-named attempt of `wf` in project `dir` at a fixed session time.
pub fn new_attempt(dir: &Path, wf: Workflow) -> NewAttempt {
    NewAttempt {
        project_dir: dir.to_owned(),
        sources: vec![(dir.join("wf.dig"), format!("{:?}", wf.root))],
        workflow: wf,
        session_time: Timestamp::from_second(1_699_920_000).unwrap_or(Timestamp::UNIX_EPOCH),
        attempt_name: None,
        params: JsonMap::new(),
        rerun: false,
        resume_from: None,
    }
}
