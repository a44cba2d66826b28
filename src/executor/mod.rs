//! Runs the engine's actions after commit and turns operator results into events.
//!
//! [`drive`] owns one attempt: it asks the engine what to do (`recover`, then `apply` for every
//! event), starts each `Action::Start` as an operator future in a `JoinSet`, sleeps on the
//! injected clock for `WakeAt`, kills process groups for `Kill`, and stops at
//! `AttemptFinished`. The engine is synchronous (SQLite), so every call to it runs on the
//! blocking pool and no transaction is ever open across an `.await`. `spade run` and the
//! daemon use this same function; the daemon just drives many attempts at once.

pub mod heartbeat;
pub mod spawn;

use crate::clock::Clock;
use crate::dig::{TaskDef, TaskKind, Workflow};
use crate::engine::{Action, AttemptState, Engine, Event, Outcome, TaskRun};
use crate::ids::{AttemptId, Fence, TaskId};
use crate::operators::{self, Context};
use jiff::{SignedDuration, Timestamp};
use spawn::Spawner;
use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument as _;

/// Host failures while running tasks (spawn errors, lost channels).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot {what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Engine(#[from] crate::engine::Error),
    #[error("engine call panicked or was canceled")]
    EngineThread(#[source] tokio::task::JoinError),
    #[error("attempt {attempt} is still running but the engine has nothing left to do")]
    Stalled { attempt: AttemptId },
    /// Another process claimed the attempt after this one's lease lapsed; everything this
    /// process had started for it was killed.
    #[error("lost ownership of attempt {attempt}: another process drives it now")]
    LostOwnership { attempt: AttemptId },
}

/// What the executor needs from the outside world, injected so tests can fake time and
/// processes. The engine is shared: many drivers may use one `Engine`.
pub struct Deps<E: EngineApi = Engine> {
    pub clock: Arc<dyn Clock>,
    pub spawner: Arc<dyn Spawner>,
    pub engine: Arc<E>,
    /// Bounds the operator runs that hold processes or sockets, across every attempt that
    /// shares it (`max_tasks`): a run waits for a permit before it starts, so a wide
    /// `_parallel` group queues instead of running out of file descriptors.
    pub task_slots: Option<Arc<Semaphore>>,
}

impl<E: EngineApi> Clone for Deps<E> {
    fn clone(&self) -> Self {
        Deps {
            clock: self.clock.clone(),
            spawner: self.spawner.clone(),
            engine: self.engine.clone(),
            task_slots: self.task_slots.clone(),
        }
    }
}

/// The part of [`Engine`] the driver calls; a trait only so the driver's own logic (ordering,
/// timeouts, wake-ups, journal replay) can be tested against a scripted engine.
pub trait EngineApi: Send + Sync + 'static {
    fn recover(&self, attempt: AttemptId, now: Timestamp) -> Result<Vec<Action>, EngineError>;
    fn apply(&self, now: Timestamp, event: Event) -> Result<Vec<Action>, EngineError>;
    /// Applies completions replayed from journals, then recovers. The default applies them
    /// one by one and drops the starts they return (`recover` announces every startable task
    /// again); `Engine` does both in one transaction without starting anything twice.
    fn replay(
        &self,
        attempt: AttemptId,
        now: Timestamp,
        events: Vec<Event>,
    ) -> Result<Vec<Action>, EngineError> {
        let mut actions = Vec::new();
        for event in events {
            actions.extend(
                self.apply(now, event)?
                    .into_iter()
                    .filter(|a| !matches!(a, Action::Start(_))),
            );
        }
        actions.extend(self.recover(attempt, now)?);
        Ok(actions)
    }
    /// Several events at once; `Engine` (under a claim or not) commits them in one transaction
    /// (group commit).
    fn apply_batch(&self, now: Timestamp, events: Vec<Event>) -> Result<Vec<Action>, EngineError> {
        let mut actions = Vec::new();
        for event in events {
            actions.extend(self.apply(now, event)?);
        }
        Ok(actions)
    }
    fn attempt_state(&self, attempt: AttemptId) -> Result<AttemptState, EngineError>;
    /// The stored definition of a task, for generators' unevaluated `_do:` blocks; `None`
    /// when the engine keeps none (the driver then looks in the loaded workflow).
    fn task_def(&self, task: TaskId) -> Result<Option<TaskDef>, EngineError> {
        let _ = task;
        Ok(None)
    }
    /// The prefix of the run tokens (`SPADE_RUN`) of this attempt's processes; `None` when the
    /// engine keeps none (then leftovers of earlier processes are never killed).
    fn run_token_prefix(&self, attempt: AttemptId) -> Result<Option<String>, EngineError> {
        let _ = attempt;
        Ok(None)
    }
    /// Kills the attempt (its tasks canceled, the attempt `killed`); the driver stops the
    /// processes itself.
    fn kill(&self, attempt: AttemptId, now: Timestamp) -> Result<Vec<Action>, EngineError> {
        let _ = (attempt, now);
        Ok(Vec::new())
    }
    /// Records runs a stop ended as interrupted and releases the attempt.
    fn stop_runs(
        &self,
        attempt: AttemptId,
        now: Timestamp,
        runs: &[(TaskId, Fence)],
        reason: &str,
    ) -> Result<(), EngineError> {
        let _ = (attempt, now, runs, reason);
        Ok(())
    }
}

type EngineError = crate::engine::Error;

impl EngineApi for Engine {
    fn recover(&self, attempt: AttemptId, now: Timestamp) -> Result<Vec<Action>, EngineError> {
        Engine::recover(self, attempt, now)
    }

    fn apply(&self, now: Timestamp, event: Event) -> Result<Vec<Action>, EngineError> {
        Engine::apply(self, now, event)
    }

    fn apply_batch(&self, now: Timestamp, events: Vec<Event>) -> Result<Vec<Action>, EngineError> {
        Engine::apply_all(self, now, events)
    }

    fn replay(
        &self,
        attempt: AttemptId,
        now: Timestamp,
        events: Vec<Event>,
    ) -> Result<Vec<Action>, EngineError> {
        Engine::replay(self, attempt, now, events)
    }

    fn attempt_state(&self, attempt: AttemptId) -> Result<AttemptState, EngineError> {
        Engine::attempt_state(self, attempt)
    }

    fn task_def(&self, task: TaskId) -> Result<Option<TaskDef>, EngineError> {
        Engine::task_def(self, task).map(Some)
    }

    fn run_token_prefix(&self, attempt: AttemptId) -> Result<Option<String>, EngineError> {
        Engine::session_uuid(self, attempt).map(Some)
    }
}

/// The engine under one claim: what a driver of a claimed attempt talks to. Every write checks
/// the claim first (a fenced-off driver changes nothing), and ticks stay within the attempt.
pub struct Claimed {
    pub engine: Arc<Engine>,
    pub claim: crate::engine::Claim,
}

impl EngineApi for Claimed {
    fn recover(&self, attempt: AttemptId, now: Timestamp) -> Result<Vec<Action>, EngineError> {
        debug_assert_eq!(attempt, self.claim.attempt);
        self.engine.replay_claimed(&self.claim, now, Vec::new())
    }

    fn apply(&self, now: Timestamp, event: Event) -> Result<Vec<Action>, EngineError> {
        self.engine.apply_claimed(&self.claim, now, event)
    }

    fn apply_batch(&self, now: Timestamp, events: Vec<Event>) -> Result<Vec<Action>, EngineError> {
        self.engine.apply_claimed_batch(&self.claim, now, events)
    }

    fn replay(
        &self,
        attempt: AttemptId,
        now: Timestamp,
        events: Vec<Event>,
    ) -> Result<Vec<Action>, EngineError> {
        debug_assert_eq!(attempt, self.claim.attempt);
        self.engine.replay_claimed(&self.claim, now, events)
    }

    fn attempt_state(&self, attempt: AttemptId) -> Result<AttemptState, EngineError> {
        self.engine.attempt_state(attempt)
    }

    fn task_def(&self, task: TaskId) -> Result<Option<TaskDef>, EngineError> {
        self.engine.task_def(task).map(Some)
    }

    fn run_token_prefix(&self, attempt: AttemptId) -> Result<Option<String>, EngineError> {
        self.engine.session_uuid(attempt).map(Some)
    }

    fn stop_runs(
        &self,
        _attempt: AttemptId,
        now: Timestamp,
        runs: &[(TaskId, Fence)],
        reason: &str,
    ) -> Result<(), EngineError> {
        self.engine.stop_runs(&self.claim, now, runs, reason)
    }

    fn kill(&self, _attempt: AttemptId, now: Timestamp) -> Result<Vec<Action>, EngineError> {
        self.engine.kill_claimed(&self.claim, now)
    }
}

/// One attempt to drive.
#[derive(Clone)]
pub struct AttemptSpec {
    pub attempt: AttemptId,
    pub project_dir: PathBuf,
    /// Per-run files of this attempt (logs, `$SPADE_STORE`, completion journals).
    pub run_dir: PathBuf,
    /// The loaded workflow, so generators can read their unevaluated `_do` blocks.
    pub workflow: Option<Arc<Workflow>>,
    /// Print one line per task start and end on stderr (`spade run`); the daemon logs only.
    pub progress: bool,
    /// Where `${secret:...}` values come from.
    pub secrets: Arc<dyn crate::expr::SecretProvider>,
    /// Stop requests: the driver stops starting tasks and winds its runs down (`StopLevel`).
    pub stop: watch::Receiver<StopLevel>,
    /// How long a graceful stop waits after SIGTERM before it kills the groups (real time).
    pub stop_timeout: Duration,
    /// The first actions of an attempt whose first tasks were started in the transaction that
    /// created it (the scheduler's): the driver begins with them instead of recovering.
    pub started: Option<Vec<Action>>,
    /// Set to `true` to kill the attempt: queued tasks are canceled at once, running process
    /// groups get SIGTERM, then SIGKILL after `stop_timeout`, and the attempt ends `killed`.
    pub kill: Option<watch::Receiver<bool>>,
    /// Called after every transaction that changed the attempt (live views, the event stream).
    pub on_change: Option<Arc<dyn Fn(AttemptId) + Send + Sync>>,
}

/// `<state dir>/logs/<attempt>`: where the runs of one attempt keep their files.
pub fn run_dir(state_dir: &Path, attempt: AttemptId) -> PathBuf {
    state_dir.join("logs").join(attempt.to_string())
}

/// A run that ended, as its owner task reports it.
struct Finished {
    task: TaskId,
    fence: Fence,
    name: Arc<str>,
    outcome: Outcome,
    elapsed: SignedDuration,
}

/// Drives an attempt until the engine reports it finished; returns its final state.
pub async fn drive<E: EngineApi>(
    deps: &Deps<E>,
    spec: &AttemptSpec,
) -> Result<AttemptState, Error> {
    let span = tracing::info_span!("attempt", attempt_id = %spec.attempt);
    drive_inner(deps, spec).instrument(span).await
}

async fn drive_inner<E: EngineApi>(
    deps: &Deps<E>,
    spec: &AttemptSpec,
) -> Result<AttemptState, Error> {
    // The run directory is made by the first run that needs files (`Context::spawn`): most
    // attempts of `echo>` and generators never do, and a directory costs a file creation.
    let shared = DriveShared {
        generators: generator_defs(spec.workflow.as_deref()),
        journal: Arc::new(operators::sh::Journal::new(&spec.run_dir)),
    };
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<Event>();
    let mut runs: JoinSet<Finished> = JoinSet::new();
    let mut in_flight: HashMap<(TaskId, Fence), InFlight> = HashMap::new();
    let mut started: HashSet<(TaskId, Fence)> = HashSet::new();
    let mut wake: Option<Timestamp> = None;
    let mut stop = spec.stop.clone();
    let mut stop_open = true;
    let mut kill = spec.kill.clone();
    let mut kill_open = kill.is_some();
    let mut stopping: Option<Stopping> = None;
    let changed = |a: AttemptId| {
        if let Some(f) = &spec.on_change {
            f(a);
        }
    };
    let attempt = spec.attempt;
    let token_prefix = {
        let engine = deps.engine.clone();
        blocking(move || engine.run_token_prefix(attempt)).await?
    };

    // Runs whose command finished before a crash left a journal: their completions are
    // applied first, so recovery does not run them again, and in the recovery transaction, so
    // the tasks they unblock are started once, by recovery (which must come after the replay,
    // or it would fence the journaled runs off).
    let mut pending: Vec<Action> = match &spec.started {
        // A brand-new attempt started by its creator: nothing to replay or recover.
        Some(actions) => actions.clone(),
        None => {
            let (replay, replayed) = replay_journals(&spec.run_dir);
            let now = deps.clock.now();
            let engine = deps.engine.clone();
            let actions = match blocking(move || engine.replay(attempt, now, replay)).await {
                Ok(actions) => actions,
                Err(e) => return Err(lost_ownership(e, attempt)),
            };
            remove_journals(replayed);
            changed(attempt);
            actions
        }
    };

    // `Spawned` reports held back for the next transaction (their processes are in the
    // journal already, `operators::sh::journal_spawn`), and when they are due anyway.
    let mut deferred: Vec<Event> = Vec::new();
    let mut deferred_until: Option<tokio::time::Instant> = None;
    // Progress lines of runs that ended inline, written together after each batch of actions
    // (a thousand `nop>` tasks of one transaction are two thousand lines: one `write`, not
    // four thousand).
    let mut progress_lines = String::new();
    loop {
        let mut finished = None;
        for action in pending.drain(..) {
            match action {
                Action::Start(run) => {
                    let key = (run.task, run.fence);
                    // Journal replay and recovery may both announce a task: start a fence once.
                    if !started.insert(key) {
                        continue;
                    }
                    if let Some(stopping) = &mut stopping {
                        // Marked running by the engine, but the process is stopping: it is
                        // recorded interrupted with the others and starts on the next start.
                        stopping.runs.push(key);
                        continue;
                    }
                    let token = token_prefix
                        .as_deref()
                        .map(|p| crate::engine::run_token(p, run.task, run.fence));
                    let handle = start(deps, spec, &shared, &events_tx, &mut runs, *run, token);
                    in_flight.insert(key, handle);
                }
                Action::Ran(ran) => report_inline(spec.progress, &ran, &mut progress_lines),
                Action::WakeAt(at) => {
                    if stopping.is_none() {
                        wake = Some(wake.map_or(at, |w| w.min(at)));
                    }
                }
                Action::Kill { task, fence, pgid } => {
                    if let Some(run) = in_flight.remove(&(task, fence)) {
                        // Started by this process and not reaped: the group is ours.
                        tracing::info!(task = %task, fence = %fence, pgid, "killing process group");
                        deps.spawner.kill_group(pgid);
                        run.abort.abort();
                    } else if let Some(prefix) = token_prefix.as_deref() {
                        // A leftover of an earlier process: kill only what provably belongs to
                        // that run (its token), never the bare group id, which may be recycled.
                        let token = crate::engine::run_token(prefix, task, fence);
                        let n = crate::host::kill_run_processes(pgid, &token);
                        tracing::info!(task = %task, fence = %fence, pgid, killed = n, "killed leftover processes of an interrupted run");
                    }
                }
                Action::AttemptFinished { state, .. } => finished = Some(state),
            }
        }
        write_progress(&mut progress_lines);
        if let Some(state) = finished {
            // Whatever still runs (background tasks) dies with its process group here.
            runs.shutdown().await;
            return Ok(state);
        }
        if let Some(st) = &stopping {
            if in_flight.is_empty() {
                runs.shutdown().await;
                // Journal lines the stop's runs left (a command that traps SIGTERM exits on its
                // own) stay: recorded interrupted, the runs are no longer `running`, so a
                // replay of those lines is a stale completion the engine ignores.
                let keys = st.runs.clone();
                if st.killed {
                    tracing::info!("killed; every process of the attempt is gone");
                    return Ok(AttemptState::Killed);
                }
                let engine = deps.engine.clone();
                let now = deps.clock.now();
                let reason = st.level.reason();
                blocking(move || engine.stop_runs(attempt, now, &keys, reason))
                    .await
                    .map_err(|e| lost_ownership(e, attempt))?;
                changed(attempt);
                tracing::info!(
                    runs = st.runs.len(),
                    "stopped; interrupted runs start again on the next start"
                );
                return Ok(AttemptState::Running);
            }
        }
        if runs.is_empty()
            && wake.is_none()
            && events_rx.is_empty()
            && stopping.is_none()
            && deferred.is_empty()
        {
            let engine = deps.engine.clone();
            let state = blocking(move || engine.attempt_state(attempt)).await?;
            return match state {
                AttemptState::Running => Err(Error::Stalled { attempt }),
                done => Ok(done),
            };
        }

        let mut events = Vec::new();
        let mut flush_spawns = false;
        let sleep = wake.map(|at| deps.clock.sleep_until(at));
        let grace = stopping.as_ref().and_then(|s| s.kill_at);
        tokio::select! {
            biased;
            changed = stop.changed(), if stop_open => {
                match changed {
                    Err(_) => stop_open = false,
                    Ok(()) => {
                        let level = *stop.borrow_and_update();
                        begin_stop(deps, spec, level, &mut stopping, &mut in_flight, &mut runs, &mut events);
                    }
                }
            }
            asked = async { match kill.as_mut() { Some(k) => k.changed().await, None => std::future::pending().await } }, if kill_open => {
                let wanted = asked.is_ok() && kill.as_ref().is_some_and(|k| *k.borrow());
                if asked.is_err() {
                    kill_open = false;
                }
                if wanted {
                    kill_open = false;
                    // The store first: queued tasks are canceled and the attempt is `killed`
                    // at once; then the processes, politely (the engine's own kill actions
                    // would SIGKILL them).
                    let engine = deps.engine.clone();
                    let now = deps.clock.now();
                    blocking(move || engine.kill(attempt, now)).await.map_err(|e| lost_ownership(e, attempt))?;
                    changed(attempt);
                    tracing::info!("kill requested: running tasks get SIGTERM");
                    wake = None;
                    begin_stop(deps, spec, StopLevel::Graceful, &mut stopping, &mut in_flight, &mut runs, &mut events);
                    match &mut stopping {
                        Some(st) => st.killed = true,
                        None => {
                            stopping = Some(Stopping {
                                level: StopLevel::Graceful,
                                runs: Vec::new(),
                                kill_at: None,
                                killed: true,
                            });
                        }
                    }
                    // Their completions are stale now (the tasks are canceled).
                    events.retain(|e| matches!(e, Event::Spawned { .. }));
                }
            }
            Some(event) = events_rx.recv() => events.push(event),
            Some(joined) = runs.join_next(), if !runs.is_empty() => {
                // `Spawned` was sent before the run could finish: record it first.
                while let Ok(event) = events_rx.try_recv() {
                    events.push(event);
                }
                let mut done = vec![joined];
                while let Some(more) = runs.try_join_next() {
                    done.push(more);
                }
                for joined in done {
                    let Ok(f) = joined else { continue }; // aborted by a Kill action or a stop
                    in_flight.remove(&(f.task, f.fence));
                    if stopping.is_some() {
                        // Ended by the stop (or during it): recorded interrupted, not as its
                        // exit status, which the stop's signal decided.
                        continue;
                    }
                    report(spec.progress, &f);
                    events.push(Event::Completed { task: f.task, fence: f.fence, outcome: Box::new(f.outcome) });
                }
            }
            () = async { if let Some(s) = sleep { s.await } }, if wake.is_some() => {
                wake = None;
                events.push(Event::Tick);
            }
            () = async { if let Some(at) = deferred_until { tokio::time::sleep_until(at).await } }, if deferred_until.is_some() => {
                flush_spawns = true;
            }
            () = async { if let Some(at) = grace { tokio::time::sleep_until(at).await } }, if grace.is_some() => {
                if let Some(st) = &mut stopping {
                    st.kill_at = None;
                }
                tracing::warn!(runs = in_flight.len(), "stop timeout reached: killing the remaining task process groups");
                kill_all(deps, &mut in_flight);
            }
        }
        while let Ok(event) = events_rx.try_recv() {
            events.push(event);
        }
        if stopping.is_some() {
            // Completions are not applied while stopping; spawn reports still are, so the
            // store knows every group that may need killing after a crash.
            events.retain(|e| matches!(e, Event::Spawned { .. }));
        }
        // A run's spawn alone is not worth a transaction: it goes with the next one (its
        // completion, usually), or after `SPAWN_FLUSH` at the latest, so the store shows the
        // process of a long run. Every batch starts with what was held back, so a transaction
        // that kills (a group `_timeout`) knows the group first.
        let only_spawns = events.iter().all(|e| matches!(e, Event::Spawned { .. }));
        if stopping.is_none() && !flush_spawns && only_spawns {
            if !events.is_empty() && deferred.is_empty() {
                deferred_until = Some(tokio::time::Instant::now() + SPAWN_FLUSH);
            }
            deferred.append(&mut events);
        } else if !deferred.is_empty() {
            deferred.append(&mut events);
            events = std::mem::take(&mut deferred);
            deferred_until = None;
        }
        let had_events = !events.is_empty();
        pending = match call_engine(deps, events).await {
            Ok(actions) => {
                if had_events {
                    changed(attempt);
                }
                actions
            }
            Err(e) => {
                let e = lost_ownership(e, attempt);
                if matches!(e, Error::LostOwnership { .. }) {
                    // Another process owns the attempt now: stop everything of ours at once.
                    kill_all(deps, &mut in_flight);
                    runs.shutdown().await;
                }
                return Err(e);
            }
        };
    }
}

/// How long a `Spawned` report may wait for the run's next transaction.
const SPAWN_FLUSH: Duration = Duration::from_millis(200);

/// A run in flight: how to cancel it, and its process group once it has one.
struct InFlight {
    abort: tokio::task::AbortHandle,
    pgid: Arc<Mutex<Option<u32>>>,
}

/// The state of a driver that was asked to stop.
struct Stopping {
    level: StopLevel,
    /// Every run the stop ends: recorded interrupted when the last of them is gone.
    runs: Vec<(TaskId, Fence)>,
    /// When the groups that are still running get SIGKILL (`None`: already sent).
    kill_at: Option<tokio::time::Instant>,
    /// The attempt was killed (already recorded): its runs are not recorded as interrupted.
    killed: bool,
}

/// How far a driver is asked to stop (SIGTERM/SIGINT of `spade run`, a daemon shutdown).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum StopLevel {
    /// Keep going.
    Run,
    /// Start nothing new, SIGTERM every running task's process group, SIGKILL what is left
    /// after the stop timeout, record the runs as interrupted, release the attempt.
    Graceful,
    /// The same without waiting: SIGKILL at once (a second Ctrl-C).
    Now,
}

impl StopLevel {
    fn reason(self) -> &'static str {
        match self {
            StopLevel::Run => "interrupted",
            StopLevel::Graceful => "interrupted by a graceful stop of spade (SIGTERM or SIGINT)",
            StopLevel::Now => "interrupted by a forced stop of spade",
        }
    }
}

/// A stop sender and the receiver drivers watch.
pub fn stop_channel() -> (watch::Sender<StopLevel>, watch::Receiver<StopLevel>) {
    watch::channel(StopLevel::Run)
}

fn begin_stop<E: EngineApi>(
    deps: &Deps<E>,
    spec: &AttemptSpec,
    level: StopLevel,
    stopping: &mut Option<Stopping>,
    in_flight: &mut HashMap<(TaskId, Fence), InFlight>,
    runs: &mut JoinSet<Finished>,
    events: &mut Vec<Event>,
) {
    if level == StopLevel::Run || stopping.as_ref().is_some_and(|s| s.level >= level) {
        return;
    }
    if stopping.is_none() {
        // Runs that already finished are not the stop's: apply them as they ended.
        while let Some(joined) = runs.try_join_next() {
            let Ok(f) = joined else { continue };
            in_flight.remove(&(f.task, f.fence));
            report(spec.progress, &f);
            events.push(Event::Completed {
                task: f.task,
                fence: f.fence,
                outcome: Box::new(f.outcome),
            });
        }
        let mut keys: Vec<(TaskId, Fence)> = in_flight.keys().copied().collect();
        keys.sort();
        tracing::info!(runs = keys.len(), ?level, "stopping: no new task starts");
        for run in in_flight.values() {
            match *run.pgid.lock().unwrap_or_else(PoisonError::into_inner) {
                Some(pgid) => deps.spawner.terminate_group(pgid),
                // Nothing outside spade to wait for (echo>, wait>, a run queued for a slot).
                None => run.abort.abort(),
            }
        }
        *stopping = Some(Stopping {
            level,
            runs: keys,
            kill_at: Some(tokio::time::Instant::now() + spec.stop_timeout),
            killed: false,
        });
    }
    if level == StopLevel::Now {
        if let Some(st) = stopping {
            st.level = StopLevel::Now;
            st.kill_at = None;
        }
        kill_all(deps, in_flight);
    }
}

/// SIGKILL to every group still running and cancels every run future (their groups are ours:
/// started here and not reaped, so the ids cannot have been recycled).
fn kill_all<E: EngineApi>(deps: &Deps<E>, in_flight: &mut HashMap<(TaskId, Fence), InFlight>) {
    for run in in_flight.values() {
        if let Some(pgid) = *run.pgid.lock().unwrap_or_else(PoisonError::into_inner) {
            deps.spawner.kill_group(pgid);
        }
        run.abort.abort();
    }
    in_flight.clear();
}

/// Turns an engine error that says the claim is lost into `LostOwnership`.
fn lost_ownership(e: Error, attempt: AttemptId) -> Error {
    match e {
        Error::Engine(crate::engine::Error::Store(crate::store::Error::Fenced { .. })) => {
            Error::LostOwnership { attempt }
        }
        other => other,
    }
}

/// Once their completions are committed, journals have done their job. One left behind (a
/// crash right here) is replayed as a stale completion, which the engine ignores.
fn remove_journals(journals: Vec<PathBuf>) {
    for path in journals {
        let _ = std::fs::remove_file(path);
    }
}

/// What every run of one drive shares.
struct DriveShared {
    /// The static definitions of the workflow's generators, by full name.
    generators: HashMap<String, Arc<TaskDef>>,
    /// The attempt's completion journal, opened once for the whole drive (after the replay
    /// removed the old one).
    journal: Arc<operators::sh::Journal>,
}

/// Starts one run as a task of `runs`; its result comes back through `join_next`.
fn start<E: EngineApi>(
    deps: &Deps<E>,
    spec: &AttemptSpec,
    shared: &DriveShared,
    events: &mpsc::UnboundedSender<Event>,
    runs: &mut JoinSet<Finished>,
    run: TaskRun,
    run_token: Option<String>,
) -> InFlight {
    let run = Arc::new(run);
    let name: Arc<str> = Arc::from(run.full_name.as_str());
    if spec.progress {
        write_line(&format!("{name} started"));
    }
    tracing::debug!(
        task = %name,
        fence = %run.fence,
        operator = %run.operator,
        params = %masked_params(&run),
        "starting run"
    );
    let ctx = Context {
        run: run.clone(),
        project_dir: spec.project_dir.clone(),
        run_dir: spec.run_dir.clone(),
        def: shared.generators.get(&run.full_name).cloned(),
        clock: deps.clock.clone(),
        spawner: deps.spawner.clone(),
        events: events.clone(),
        pgid: Arc::new(Mutex::new(None)),
        secrets: spec.secrets.clone(),
        run_token,
        foreground: spec.progress,
        journal: shared.journal.clone(),
    };
    let pgid = ctx.pgid.clone();
    let slots = deps
        .task_slots
        .clone()
        .filter(|_| takes_slot(&run.operator));
    let span = tracing::info_span!("run", task = %name, fence = %run.fence);
    let abort = runs.spawn(run_one(deps.engine.clone(), ctx, name, slots).instrument(span));
    InFlight { abort, pgid }
}

/// Whether a run of `operator` holds a task slot while it runs: operators that start
/// processes or open connections do; waiting, printing and generating hold nothing scarce
/// (and a run that waits for another attempt must not hold a slot that attempt needs).
fn takes_slot(operator: &str) -> bool {
    !is_generator(operator) && !matches!(operator, "echo" | "fail" | "nop" | "wait" | "require")
}

/// One run of an operator, bounded by the try timeout and the retry deadline.
async fn run_one<E: EngineApi>(
    engine: Arc<E>,
    mut ctx: Context,
    name: Arc<str>,
    slots: Option<Arc<Semaphore>>,
) -> Finished {
    // Queued until a slot is free; the try's `_timeout` starts counting once it has one.
    let _slot = match slots {
        Some(slots) => slots.acquire_owned().await.ok(),
        None => None,
    };
    if is_generator(&ctx.run.operator) {
        // Generated generators (an `if>` inside a `loop>`) are not in the file: their `_do:`
        // comes from the definition the engine stored.
        let task = ctx.run.task;
        match tokio::task::spawn_blocking(move || engine.task_def(task)).await {
            Ok(Ok(Some(def))) => ctx.def = Some(Arc::new(def)),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %crate::error::chain(&e), "cannot load the task definition")
            }
            Err(e) => tracing::warn!(error = %e, "cannot load the task definition"),
        }
    }
    let clock = ctx.clock.clone();
    let spawner = ctx.spawner.clone();
    let pgid = ctx.pgid.clone();
    let run = ctx.run.clone();
    let started = clock.now();
    let limit_at = limit_at(&run, started);
    let work = async move {
        let Some(op) = operators::find(&ctx.run.operator) else {
            return operators::unsupported(&ctx.run.operator);
        };
        match op.run(ctx).await {
            Ok(outcome) => outcome,
            Err(e) => {
                // The host failed, not the user's command: report it as a retryable failure
                // so the attempt records why instead of the whole driver stopping.
                let message = crate::error::chain(&e);
                tracing::error!(error = %message, "operator error");
                operators::failed(message, true)
            }
        }
    };
    let outcome = match limit_at {
        None => work.await,
        Some(at) => {
            tokio::select! {
                outcome = work => outcome,
                () = clock.sleep_until(at) => {
                    // Dropping `work` already kills the group; the explicit kill also reaches
                    // spawners that track groups themselves.
                    if let Some(pgid) = *pgid.lock().unwrap_or_else(PoisonError::into_inner) {
                        spawner.kill_group(pgid);
                    }
                    let limit = Duration::try_from(at.duration_since(started)).unwrap_or_default();
                    Outcome::TimedOut { limit }
                }
            }
        }
    };
    Finished {
        task: run.task,
        fence: run.fence,
        name,
        outcome,
        elapsed: clock.now().duration_since(started),
    }
}

fn is_generator(operator: &str) -> bool {
    operators::catalog::lookup(operator).is_some_and(|o| o.generator)
}

/// The earlier of the try timeout and the retry deadline.
fn limit_at(run: &TaskRun, started: Timestamp) -> Option<Timestamp> {
    let timeout = run.timeout.map(|t| {
        let t = SignedDuration::try_from(t).unwrap_or(SignedDuration::MAX);
        started.checked_add(t).unwrap_or(Timestamp::MAX)
    });
    match (timeout, run.deadline_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Applies the events that are ready together in one engine call (`EngineApi::apply_batch`:
/// one transaction for `Engine`, claimed or not), on the blocking pool unless the runtime is
/// current-thread.
async fn call_engine<E: EngineApi>(
    deps: &Deps<E>,
    events: Vec<Event>,
) -> Result<Vec<Action>, Error> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let engine = deps.engine.clone();
    let now = deps.clock.now();
    blocking(move || engine.apply_batch(now, events)).await
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::engine::Error> + Send + 'static,
) -> Result<T, Error> {
    // On a current-thread runtime (`spade run`) the driver is the only task that matters while
    // the engine commits, so the call runs inline: a hop to the blocking pool and back costs
    // two context switches per batch and kept new threads (and their memory, which every
    // `fork` copies) alive. Other runtimes keep their workers free.
    if tokio::runtime::Handle::current().runtime_flavor()
        == tokio::runtime::RuntimeFlavor::CurrentThread
    {
        return f().map_err(Error::from);
    }
    tokio::task::spawn_blocking(f)
        .await
        .map_err(Error::EngineThread)?
        .map_err(Error::from)
}

/// Completions found in the attempt's journal (`operators::sh::journal_file`, and the
/// `<task>.<fence>.exit.<code>` files of older spades) of runs that finished before a crash,
/// with the journals to remove once they are committed. Stale ones are harmless: the engine
/// ignores a completion whose fence is not current.
fn replay_journals(run_dir: &Path) -> (Vec<Event>, Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return (Vec::new(), Vec::new());
    };
    let journal = operators::sh::journal_file(run_dir);
    let mut found: Vec<_> = operators::sh::read_journal(&journal)
        .into_iter()
        .map(|(task, fence, status)| (task, fence, status, journal.clone()))
        .collect();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((task, fence, status)) = name.to_str().and_then(operators::sh::parse_journal_name)
        else {
            continue;
        };
        found.push((task, fence, status, entry.path()));
    }
    // Apply in task order so replay is deterministic; a run is journaled twice (by its shell
    // and by spade), the first line counts.
    found.sort_by_key(|(task, fence, _, _)| (*task, *fence));
    found.dedup_by_key(|(task, fence, _, _)| (*task, *fence));
    // Processes first: the store learns each run's group before anything decides about the
    // run (a run still going is interrupted by recovery, which kills the group it recorded).
    // Runs that finished need none (a finished run's group is not killed).
    let ended: HashSet<(TaskId, Fence)> = found.iter().map(|(t, f, _, _)| (*t, *f)).collect();
    let mut events: Vec<Event> = operators::sh::read_spawns(&journal)
        .into_iter()
        .filter(|(task, fence, _, _)| !ended.contains(&(*task, *fence)))
        .map(|(task, fence, pid, pgid)| Event::Spawned {
            task,
            fence,
            pid,
            pgid,
        })
        .collect();
    let mut paths = Vec::new();
    if journal.exists() {
        paths.push(journal.clone());
    }
    for (task, fence, status, path) in found {
        tracing::info!(task = %task, fence = %fence, ?status, "replaying completion journal");
        let store = operators::run_file(run_dir, task, fence, "store");
        events.push(Event::Completed {
            task,
            fence,
            outcome: Box::new(operators::sh::outcome(status, &store)),
        });
        if path != journal {
            paths.push(path);
        }
    }
    (events, paths)
}

/// Static generator tasks by full name (`+wf+a+b`), for their unevaluated `_do` blocks.
fn generator_defs(workflow: Option<&Workflow>) -> HashMap<String, Arc<TaskDef>> {
    fn walk(def: &TaskDef, full: String, out: &mut HashMap<String, Arc<TaskDef>>) {
        match &def.kind {
            TaskKind::Group(children) => {
                for child in children {
                    walk(child, format!("{full}{}", child.name), out);
                }
            }
            TaskKind::Operator(call) => {
                if call.do_block.is_some() || call.else_do_block.is_some() {
                    out.insert(full.clone(), Arc::new(def.clone()));
                }
            }
        }
        for extra in [&def.error, &def.check].into_iter().flatten() {
            walk(extra, format!("{full}{}", extra.name), out);
        }
    }
    let mut out = HashMap::new();
    if let Some(wf) = workflow {
        walk(&wf.root, wf.root.name.clone(), &mut out);
    }
    out
}

/// The params of a run as JSON text with secret values replaced by `***`.
fn masked_params(run: &TaskRun) -> String {
    let mut params = run.params.clone();
    for key in &run.secret_keys {
        if let Some(v) = params.get_mut(key) {
            *v = serde_json::Value::String("***".into());
        }
    }
    serde_json::Value::Object(params).to_string()
}

fn report(progress: bool, f: &Finished) {
    let took = human(f.elapsed);
    let line = match &f.outcome {
        Outcome::Succeeded { .. } => format!("{} succeeded in {took}", f.name),
        Outcome::Failed { message, .. } => format!("{} failed: {message}", f.name),
        Outcome::TimedOut { limit } => {
            format!("{} timed out after {}", f.name, human_std(*limit))
        }
        Outcome::Interrupted => format!("{} interrupted", f.name),
    };
    tracing::info!("{line}");
    if progress {
        write_line(&line);
    }
}

/// One progress line on stderr in one `write` (a `writeln!` to unbuffered stderr is two).
fn write_line(line: &str) {
    let mut text = String::with_capacity(line.len() + 1);
    text.push_str(line);
    text.push('\n');
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Writes and clears the progress lines gathered by [`report_inline`].
fn write_progress(lines: &mut String) {
    if !lines.is_empty() {
        let _ = std::io::stderr().lock().write_all(lines.as_bytes());
        lines.clear();
    }
}

/// A run the engine completed in its start's transaction (`Action::Ran`): the same lines a
/// run of the executor prints, gathered in `lines` for one write per batch, and `echo>`'s
/// message on stdout in a terminal (after the lines gathered before it, so the order on a
/// terminal is the order of the runs).
fn report_inline(progress: bool, ran: &crate::engine::Ran, lines: &mut String) {
    use std::fmt::Write as _;
    tracing::debug!(task = %ran.full_name, fence = %ran.fence, operator = %ran.operator, "ran inline");
    if progress {
        let _ = writeln!(lines, "{} started", ran.full_name);
    }
    if let Some(output) = &ran.output {
        if progress {
            write_progress(lines);
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{output}").and_then(|()| out.flush());
        }
        tracing::info!(task = %ran.full_name, "{output}");
    }
    let line = format!(
        "{} succeeded in {}",
        ran.full_name,
        human_std(Duration::ZERO)
    );
    tracing::info!("{line}");
    if progress {
        let _ = writeln!(lines, "{line}");
    }
}

/// `12ms` under a second, `1.23s` above.
pub fn human(d: SignedDuration) -> String {
    human_std(Duration::try_from(d).unwrap_or_default())
}

fn human_std(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.2}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spawn::ExitStatus;

    #[test]
    fn journal_names() {
        use crate::operators::sh::parse_journal_name as parse;
        assert_eq!(
            parse("12.3.exit.0"),
            Some((TaskId(12), Fence(3), ExitStatus::Code(0)))
        );
        assert_eq!(
            parse("12.3.exit.-1"),
            Some((TaskId(12), Fence(3), ExitStatus::Code(-1)))
        );
        assert_eq!(parse("12.3.log"), None);
        assert_eq!(parse("12.3.exit"), None);
        assert_eq!(parse("a.3.exit.0"), None);
    }

    #[test]
    fn replay_reads_finished_runs_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("5.2.exit.0"), "").unwrap();
        std::fs::write(dir.path().join("5.2.store"), "k=v\n").unwrap();
        std::fs::write(dir.path().join("6.1.log"), "").unwrap();
        std::fs::write(dir.path().join("4.1.exit.7"), "").unwrap();
        let (events, paths) = replay_journals(dir.path());
        assert_eq!(events.len(), 2);
        assert_eq!(
            paths,
            [dir.path().join("4.1.exit.7"), dir.path().join("5.2.exit.0")]
        );
        match &events[0] {
            Event::Completed { task, outcome, .. } => {
                assert_eq!(*task, TaskId(4));
                assert!(matches!(
                    **outcome,
                    Outcome::Failed {
                        retryable: true,
                        ..
                    }
                ));
            }
            other => panic!("{other:?}"),
        }
        match &events[1] {
            Event::Completed {
                task,
                fence,
                outcome,
            } => {
                assert_eq!((*task, *fence), (TaskId(5), Fence(2)));
                let Outcome::Succeeded { store, .. } = &**outcome else {
                    panic!()
                };
                assert_eq!(store["k"], "v");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn replay_reads_the_journal_file_once_per_run() {
        let dir = tempfile::tempdir().unwrap();
        // Each run is there twice (its shell's trap, then spade); a line cut short is not.
        std::fs::write(
            dir.path().join("journal"),
            "9 1 0\n8 2 3\n9 1 0\n8 2 3\n7 1",
        )
        .unwrap();
        let (events, paths) = replay_journals(dir.path());
        let got: Vec<(TaskId, Fence)> = events
            .iter()
            .map(|e| match e {
                Event::Completed { task, fence, .. } => (*task, *fence),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(got, [(TaskId(8), Fence(2)), (TaskId(9), Fence(1))]);
        assert_eq!(paths, [dir.path().join("journal")]);
    }

    /// A run's process is journaled when it starts, and the driver records it with the run's
    /// next transaction: a crash before that commit must still let recovery kill the group.
    #[test]
    fn replay_reports_journaled_processes_before_completions() {
        let dir = tempfile::tempdir().unwrap();
        let journal = crate::operators::sh::Journal::new(dir.path());
        crate::operators::sh::journal_spawn(&journal, TaskId(9), Fence(1), 4242, 4242);
        crate::operators::sh::journal_spawn(&journal, TaskId(8), Fence(2), 77, 70);
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("journal"))
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"9 1 0\n8 2 spawned 1"))
            .unwrap();
        let (events, _) = replay_journals(dir.path());
        let got: Vec<String> = events
            .iter()
            .map(|e| match e {
                Event::Spawned {
                    task,
                    fence,
                    pid,
                    pgid,
                } => format!("spawned {task}.{fence} {pid} {pgid}"),
                Event::Completed { task, fence, .. } => format!("completed {task}.{fence}"),
                other => panic!("{other:?}"),
            })
            .collect();
        // 9.1 finished (its group is not killed): only the run still going is reported.
        assert_eq!(got, ["spawned 8.2 77 70", "completed 9.1"]);
    }

    #[test]
    fn limits_take_the_earlier() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut run = crate::operators::testkit::run("sh", "true".into(), "{}");
        assert_eq!(limit_at(&run, t0), None);
        run.timeout = Some(Duration::from_secs(10));
        let ten = t0.checked_add(SignedDuration::from_secs(10)).unwrap();
        assert_eq!(limit_at(&run, t0), Some(ten));
        let five = t0.checked_add(SignedDuration::from_secs(5)).unwrap();
        run.deadline_at = Some(five);
        assert_eq!(limit_at(&run, t0), Some(five));
    }

    #[test]
    fn secrets_are_masked() {
        let mut run =
            crate::operators::testkit::run("sh", "x".into(), r#"{"pw": "hunter2", "u": "me"}"#);
        run.secret_keys = vec!["pw".into()];
        let text = masked_params(&run);
        assert!(!text.contains("hunter2"));
        assert!(text.contains("***") && text.contains("me"));
    }

    /// A scripted engine: tasks run one after another; a failure retries after `interval`
    /// until `limit` is used up. It logs every event it is given.
    struct FakeEngine {
        tasks: Vec<(
            &'static str,
            &'static str,
            serde_json::Value,
            Option<Duration>,
        )>,
        limit: u32,
        interval: SignedDuration,
        state: Mutex<FakeState>,
    }

    #[derive(Default)]
    struct FakeState {
        current: usize,
        fence: i64,
        retries: u32,
        wait_until: Option<Timestamp>,
        log: Vec<String>,
        /// When the last completion was applied: what durations are measured to, because the
        /// test loop may advance the manual clock once more before the driver returns.
        last_completed: Option<Timestamp>,
    }

    impl FakeEngine {
        fn new(
            tasks: Vec<(
                &'static str,
                &'static str,
                serde_json::Value,
                Option<Duration>,
            )>,
            limit: u32,
            interval: i64,
        ) -> FakeEngine {
            FakeEngine {
                tasks,
                limit,
                interval: SignedDuration::from_secs(interval),
                state: Mutex::default(),
            }
        }

        fn start(&self, st: &mut FakeState) -> Action {
            st.fence += 1;
            let (name, op, command, timeout) = self.tasks[st.current].clone();
            let mut run = crate::operators::testkit::run(op, command, "{}");
            run.task = TaskId(st.current as i64);
            run.fence = Fence(st.fence);
            run.full_name = format!("+wf+{name}");
            run.timeout = timeout;
            Action::Start(Box::new(run))
        }

        fn log(&self) -> Vec<String> {
            self.state.lock().unwrap().log.clone()
        }
    }

    impl EngineApi for FakeEngine {
        fn recover(&self, _: AttemptId, _: Timestamp) -> Result<Vec<Action>, EngineError> {
            let mut st = self.state.lock().unwrap();
            st.log.push("recover".into());
            if st.current >= self.tasks.len() {
                return Ok(vec![]);
            }
            let start = self.start(&mut st);
            Ok(vec![start])
        }

        fn apply(&self, now: Timestamp, event: Event) -> Result<Vec<Action>, EngineError> {
            let mut st = self.state.lock().unwrap();
            match event {
                Event::Spawned { task, fence, .. } => {
                    st.log.push(format!("spawned {task}.{fence}"));
                    Ok(vec![])
                }
                Event::Log { task, fence, text } => {
                    st.log
                        .push(format!("log {task}.{fence} {}", text.trim_end()));
                    Ok(vec![])
                }
                Event::Completed {
                    task,
                    fence,
                    outcome,
                } => {
                    let what = match *outcome {
                        Outcome::Succeeded { .. } => "ok".to_string(),
                        Outcome::Failed { message, .. } => format!("failed: {message}"),
                        Outcome::TimedOut { limit } => format!("timed out {}s", limit.as_secs()),
                        Outcome::Interrupted => "interrupted".into(),
                    };
                    st.log.push(format!("completed {task}.{fence} {what}"));
                    st.last_completed = Some(now);
                    if task != TaskId(st.current as i64) || fence != Fence(st.fence) {
                        return Ok(vec![]);
                    }
                    if what == "ok" {
                        st.current += 1;
                        st.retries = 0;
                        if st.current == self.tasks.len() {
                            return Ok(vec![Action::AttemptFinished {
                                attempt: AttemptId(1),
                                state: AttemptState::Succeeded,
                            }]);
                        }
                        let start = self.start(&mut st);
                        return Ok(vec![start]);
                    }
                    if st.retries == self.limit {
                        return Ok(vec![Action::AttemptFinished {
                            attempt: AttemptId(1),
                            state: AttemptState::Failed,
                        }]);
                    }
                    st.retries += 1;
                    let at = now.checked_add(self.interval).unwrap();
                    st.wait_until = Some(at);
                    Ok(vec![Action::WakeAt(at)])
                }
                Event::Tick => {
                    st.log.push(format!("tick at {now}"));
                    match st.wait_until {
                        Some(at) if at <= now => {
                            st.wait_until = None;
                            let start = self.start(&mut st);
                            Ok(vec![start])
                        }
                        _ => Ok(vec![]),
                    }
                }
            }
        }

        fn attempt_state(&self, _: AttemptId) -> Result<AttemptState, EngineError> {
            let st = self.state.lock().unwrap();
            Ok(if st.current >= self.tasks.len() {
                AttemptState::Succeeded
            } else {
                AttemptState::Running
            })
        }
    }

    /// Drives an attempt on a manual clock, advancing it whenever the driver sleeps.
    async fn drive_fake(
        engine: Arc<FakeEngine>,
        spawner: Arc<dyn Spawner>,
        dir: &Path,
    ) -> (AttemptState, SignedDuration) {
        let clock = crate::operators::testkit::manual_clock();
        let start = clock.now();
        let engine_probe = engine.clone();
        let deps = Deps {
            clock: clock.clone(),
            spawner,
            engine,
            task_slots: None,
        };
        let spec = AttemptSpec {
            attempt: AttemptId(1),
            project_dir: dir.to_path_buf(),
            run_dir: dir.join("runs"),
            workflow: None,
            progress: false,
            secrets: Arc::new(crate::expr::EnvSecrets),
            stop: stop_channel().1,
            stop_timeout: Duration::from_secs(30),
            started: None,
            kill: None,
            on_change: None,
        };
        let handle = tokio::spawn(async move { drive(&deps, &spec).await });
        while !handle.is_finished() {
            if clock.sleepers() > 0 {
                clock.advance(Duration::from_secs(1));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let state = handle.await.unwrap().unwrap();
        let end = engine_probe
            .state
            .lock()
            .unwrap()
            .last_completed
            .unwrap_or_else(|| clock.now());
        (state, end.duration_since(start))
    }

    #[tokio::test]
    async fn retries_wait_on_the_clock_and_spawned_precedes_completed() {
        let dir = tempfile::tempdir().unwrap();
        let fake = spawn::FakeSpawner::new();
        fake.script([
            ExitStatus::Code(1),
            ExitStatus::Code(2),
            ExitStatus::Code(0),
        ]);
        let engine = Arc::new(FakeEngine::new(
            vec![
                ("flaky", "sh", "work".into(), None),
                ("after", "nop", serde_json::Value::Null, None),
            ],
            2,
            10,
        ));
        let (state, took) = drive_fake(engine.clone(), Arc::new(fake.clone()), dir.path()).await;
        assert_eq!(state, AttemptState::Succeeded);
        assert_eq!(fake.spawned().len(), 3);
        let log: Vec<String> = engine
            .log()
            .into_iter()
            .filter(|l| !l.starts_with("tick"))
            .collect();
        assert_eq!(
            log,
            [
                "recover",
                "spawned 0.1",
                "completed 0.1 failed: command failed with code 1",
                "spawned 0.2",
                "completed 0.2 failed: command failed with code 2",
                "spawned 0.3",
                "completed 0.3 ok",
                "completed 1.4 ok",
            ]
        );
        // Two retry waits of 10 virtual seconds; the clock only moved while the driver slept.
        assert_eq!(took.as_secs(), 20);
        // Committed completions leave no journals behind.
        let left: Vec<_> = std::fs::read_dir(dir.path().join("runs"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".exit"))
            .collect();
        assert!(left.is_empty());
    }

    #[tokio::test]
    async fn try_timeout_kills_and_reports_timed_out() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(FakeEngine::new(
            vec![("slow", "wait", "1m".into(), Some(Duration::from_secs(5)))],
            0,
            0,
        ));
        let (state, took) = drive_fake(
            engine.clone(),
            Arc::new(spawn::FakeSpawner::new()),
            dir.path(),
        )
        .await;
        assert_eq!(state, AttemptState::Failed);
        assert!(
            engine
                .log()
                .contains(&"completed 0.1 timed out 5s".to_string()),
            "{:?}",
            engine.log()
        );
        assert_eq!(took.as_secs(), 5);
    }

    #[tokio::test]
    async fn unknown_operator_fails_the_task() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(FakeEngine::new(
            vec![("td", "td", "q.sql".into(), None)],
            0,
            0,
        ));
        let (state, _) = drive_fake(
            engine.clone(),
            Arc::new(spawn::FakeSpawner::new()),
            dir.path(),
        )
        .await;
        assert_eq!(state, AttemptState::Failed);
        assert!(
            engine
                .log()
                .iter()
                .any(|l| l.contains("`td>` is not supported")),
            "{:?}",
            engine.log()
        );
    }

    #[tokio::test]
    async fn journal_of_a_finished_run_is_replayed_before_recovery() {
        let dir = tempfile::tempdir().unwrap();
        // Task 0 ran as fence 1 and finished before the crash; the engine still thinks it runs.
        std::fs::create_dir_all(dir.path().join("runs")).unwrap();
        std::fs::write(dir.path().join("runs/0.1.exit.0"), "").unwrap();
        let engine = Arc::new(FakeEngine::new(
            vec![
                ("done", "sh", "x".into(), None),
                ("next", "sh", "y".into(), None),
            ],
            0,
            0,
        ));
        engine.state.lock().unwrap().fence = 1;
        let fake = spawn::FakeSpawner::new();
        let (state, _) = drive_fake(engine.clone(), Arc::new(fake.clone()), dir.path()).await;
        assert_eq!(state, AttemptState::Succeeded);
        // Only `next` ran: `done` was completed from its journal, and the second announcement
        // of `next` (by recovery) was not started again.
        assert_eq!(fake.spawned().len(), 1);
        assert_eq!(fake.spawned()[0].args.last().unwrap(), "y");
        assert_eq!(engine.log()[0], "completed 0.1 ok");
        assert!(!dir.path().join("runs/0.1.exit.0").exists());
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human(SignedDuration::from_millis(12)), "12ms");
        assert_eq!(human(SignedDuration::from_millis(1234)), "1.23s");
    }
}
