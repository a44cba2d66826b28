//! What `require>` needs from the process that runs it: the store, this process's owner id,
//! and a way to drive the required attempt, in the same process as Digdag's local mode does
//! (`spade run`) or through the daemon's supervisor (`spade serve`).
//!
//! The host is installed once per process (`install`) by `spade run` and `spade serve`, so the
//! operator needs nothing new in `operators::Context`. Waiting is not polling: a waiting run
//! sleeps on a watch channel that is bumped whenever an attempt driven in this process ends
//! (the transaction that finished it marked the tries waiting for it `done`), and at each
//! lease renewal, which is how the end of an attempt another process drives reaches it.

use super::{failed, Context};
use crate::clock::Clock;
use crate::daemon::supervisor::Drive;
use crate::engine::require::{Begun, Wait};
use crate::engine::{ClaimOutcome, Engine, NewAttempt, Outcome, OwnerId};
use crate::executor::spawn::Spawner;
use crate::executor::{self, AttemptSpec, Claimed, Deps, StopLevel};
use crate::ids::AttemptId;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};

/// The daemon's supervisor, which drives the attempts of the project it serves.
pub struct Supervised {
    pub project_dir: PathBuf,
    pub claims: mpsc::UnboundedSender<Drive>,
}

/// Everything needed to drive a required attempt in this process.
pub struct Host {
    pub engine: Arc<Engine>,
    pub owner: OwnerId,
    pub clock: Arc<dyn Clock>,
    pub spawner: Arc<dyn Spawner>,
    pub task_slots: Option<Arc<Semaphore>>,
    /// Run files of an attempt go to `<state_dir>/logs/<attempt>`.
    pub state_dir: PathBuf,
    pub stop: watch::Receiver<StopLevel>,
    pub stop_timeout: Duration,
    /// Progress lines on stderr (`spade run`).
    pub progress: bool,
    pub supervised: Option<Supervised>,
    pub on_change: Option<Arc<dyn Fn(AttemptId) + Send + Sync>>,
    finished: watch::Sender<u64>,
    /// Attempts this process drives for `require>`: never two drivers for one attempt.
    driving: Mutex<HashSet<AttemptId>>,
}

static HOST: RwLock<Option<Arc<Host>>> = RwLock::new(None);

/// Makes `host` the one `require>` uses in this process.
pub fn install(host: Host) -> Arc<Host> {
    let host = Arc::new(host);
    *HOST.write().unwrap_or_else(PoisonError::into_inner) = Some(host.clone());
    host
}

pub fn uninstall() {
    *HOST.write().unwrap_or_else(PoisonError::into_inner) = None;
}

pub(super) fn installed() -> Option<Arc<Host>> {
    HOST.read().unwrap_or_else(PoisonError::into_inner).clone()
}

/// An attempt ended (or may have ended, elsewhere): waiting runs look at their tries again.
pub fn attempt_finished() {
    if let Some(host) = installed() {
        host.finished.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl Host {
    #[allow(clippy::too_many_arguments)] // the wiring of one process: each is a piece
    pub fn new(
        engine: Arc<Engine>,
        owner: OwnerId,
        clock: Arc<dyn Clock>,
        spawner: Arc<dyn Spawner>,
        task_slots: Option<Arc<Semaphore>>,
        state_dir: PathBuf,
        stop: watch::Receiver<StopLevel>,
        stop_timeout: Duration,
    ) -> Host {
        Host {
            engine,
            owner,
            clock,
            spawner,
            task_slots,
            state_dir,
            stop,
            stop_timeout,
            progress: false,
            supervised: None,
            on_change: None,
            finished: watch::channel(0).0,
            driving: Mutex::new(HashSet::new()),
        }
    }

    /// One run of a require task: its try (begun now, or read back), then the wait.
    pub(super) async fn require(self: Arc<Self>, ctx: Context) -> Outcome {
        match self.clone().try_of(&ctx).await {
            Ok(Ok(wait)) => self.wait(&ctx, wait).await,
            Ok(Err(message)) => failed(message, false),
            Err(e) => failed(
                format!(
                    "require> cannot use the database: {}",
                    crate::cli::error_chain(&e)
                ),
                true,
            ),
        }
    }

    /// The stored try of this run, or a new one: the options are read once per try.
    async fn try_of(
        self: Arc<Self>,
        ctx: &Context,
    ) -> Result<Result<Wait, String>, crate::engine::Error> {
        let run = ctx.run.clone();
        let caller_project = ctx.project_dir.clone();
        let now = self.clock.now();
        let host = self.clone();
        blocking(move || {
            let engine = &host.engine;
            if let Some(w) = engine.require_wait(run.task, run.retry_count)? {
                return Ok(Ok(w));
            }
            let local: Vec<String> = engine
                .task_def(run.task)?
                .params
                .entries
                .iter()
                .map(|(k, _)| k.name.clone())
                .collect();
            let projects = engine.project_dirs()?;
            let spec = match super::require::spec_of(&run, &local, &caller_project, &projects) {
                Ok(s) => s,
                Err(message) => return Ok(Err(message)),
            };
            let target = match load_target(&spec) {
                Ok(t) => t,
                Err(message) => return Ok(Err(message)),
            };
            match engine.require_begin(
                run.task,
                run.retry_count,
                run.attempt,
                &spec,
                &target,
                now,
            )? {
                Begun::Wait(w) => Ok(Ok(w)),
                Begun::Cycle(message) => Ok(Err(message)),
            }
        })
        .await
        .unwrap_or_else(|e| Ok(Err(format!("require> failed: {e}"))))
    }

    async fn wait(self: Arc<Self>, ctx: &Context, wait: Wait) -> Outcome {
        if let Some(outcome) = wait.outcome() {
            return outcome;
        }
        ctx.log(format!(
            "waiting for attempt {} of `{}` (session id {})\n",
            wait.target, wait.spec.workflow, wait.target_session
        ));
        self.clone()
            .ensure_driven(wait.target, &wait.spec.project_dir)
            .await;
        let mut finished = self.finished.subscribe();
        let (task, try_index) = (ctx.run.task, ctx.run.retry_count);
        loop {
            let engine = self.engine.clone();
            let looked = blocking(move || engine.require_wait(task, try_index)).await;
            match looked {
                Ok(Ok(Some(w))) => {
                    if let Some(outcome) = w.outcome() {
                        return outcome;
                    }
                }
                Ok(Ok(None)) => {
                    return failed("require> lost its stored try (database changed?)", true)
                }
                Ok(Err(e)) => {
                    return failed(
                        format!(
                            "require> cannot read its try: {}",
                            crate::cli::error_chain(&e)
                        ),
                        true,
                    )
                }
                Err(e) => return failed(format!("require> failed: {e}"), true),
            }
            if finished.changed().await.is_err() {
                return failed("require> stopped: the process is shutting down", true);
            }
        }
    }

    /// Makes sure something drives `target`: this process (the supervisor for the project the
    /// daemon serves, else a driver of its own), or the live process that owns it.
    async fn ensure_driven(self: Arc<Self>, target: AttemptId, project_dir: &Path) {
        {
            let mut driving = self.driving.lock().unwrap_or_else(PoisonError::into_inner);
            if !driving.insert(target) {
                return;
            }
        }
        let engine = self.engine.clone();
        let owner = self.owner.clone();
        let now = self.clock.now();
        let claimed = blocking(move || {
            engine.claim_attempt(target, &owner, now, executor::heartbeat::real_ms())
        })
        .await;
        let claim = match claimed {
            Ok(Ok(ClaimOutcome::Claimed(claim))) => claim,
            Ok(Ok(ClaimOutcome::Finished)) => {
                self.forget(target);
                attempt_finished();
                return;
            }
            Ok(Ok(ClaimOutcome::Busy(other))) => {
                // Its owner drives it; its end reaches us at a lease renewal.
                tracing::info!(attempt = %target, owner = %other.describe(), "required attempt is driven by another process");
                self.forget(target);
                return;
            }
            Ok(Err(e)) => {
                tracing::error!(attempt = %target, error = %crate::cli::error_chain(&e), "cannot claim the required attempt");
                self.forget(target);
                return;
            }
            Err(e) => {
                tracing::error!(attempt = %target, error = %e, "cannot claim the required attempt");
                self.forget(target);
                return;
            }
        };
        let project_dir = std::fs::canonicalize(project_dir).unwrap_or_else(|_| project_dir.into());
        if let Some(s) = &self.supervised {
            let served =
                std::fs::canonicalize(&s.project_dir).unwrap_or_else(|_| s.project_dir.clone());
            if served == project_dir {
                // The supervisor tells us when its driver ends (`attempt_finished`).
                self.forget(target);
                let _ = s.claims.send(Drive {
                    claim,
                    started: None,
                });
                return;
            }
        }
        let deps = Deps {
            clock: self.clock.clone(),
            spawner: self.spawner.clone(),
            engine: Arc::new(Claimed {
                engine: self.engine.clone(),
                claim,
            }),
            task_slots: self.task_slots.clone(),
        };
        let spec = AttemptSpec {
            attempt: target,
            project_dir,
            run_dir: executor::run_dir(&self.state_dir, target),
            workflow: None,
            progress: self.progress,
            secrets: Arc::new(crate::expr::EnvSecrets),
            stop: self.stop.clone(),
            stop_timeout: self.stop_timeout,
            started: None,
            kill: None,
            on_change: self.on_change.clone(),
        };
        let host = self.clone();
        tracing::info!(attempt = %target, "driving the required attempt");
        tokio::spawn(async move {
            match executor::drive(&deps, &spec).await {
                Ok(state) => {
                    tracing::info!(attempt = %target, state = state.as_str(), "required attempt driver ended")
                }
                Err(e) => {
                    tracing::error!(attempt = %target, error = %crate::cli::error_chain(&e), "required attempt driver failed")
                }
            }
            host.forget(target);
            attempt_finished();
        });
    }

    fn forget(&self, target: AttemptId) {
        self.driving
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&target);
    }
}

/// The required workflow as loaded now (Digdag uses the latest revision), with did-you-mean
/// when it does not exist.
fn load_target(spec: &crate::engine::require::Spec) -> Result<NewAttempt, String> {
    let project = crate::operators::external::load_project(&spec.project_dir).map_err(|e| {
        format!(
            "require> cannot load project {}: {}",
            spec.project_dir.display(),
            crate::cli::error_chain(&e)
        )
    })?;
    let Some(workflow) = project.workflows.iter().find(|w| w.name == spec.workflow) else {
        let names: Vec<&str> = project.workflows.iter().map(|w| w.name.as_str()).collect();
        let hint = crate::dig::suggest::did_you_mean(&spec.workflow, names.iter().copied())
            .map(|n| format!("; did you mean `{n}`?"))
            .unwrap_or_default();
        let errors = project.diagnostics.iter().filter(|d| d.is_error()).count();
        let note = if errors > 0 {
            format!(" ({errors} file error(s) in the project: `spade check` shows them)")
        } else {
            String::new()
        };
        return Err(format!(
            "require> dependent workflow `{}` does not exist in {}{hint}{note}",
            spec.workflow,
            spec.project_dir.display()
        ));
    };
    let sources = project
        .sources
        .get(workflow.span.file)
        .map(|f| vec![(f.path.clone(), f.text.clone())])
        .unwrap_or_default();
    Ok(NewAttempt {
        project_dir: spec.project_dir.clone(),
        workflow: workflow.clone(),
        sources,
        session_time: spec.session_time,
        attempt_name: None,
        params: spec.params.clone(),
        rerun: false,
        resume_from: None,
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    tokio::task::spawn_blocking(f).await
}
