//! The attempt supervisor: drives every attempt the daemon claimed, at most `max_attempts` at
//! once (the rest wait in a queue, still claimed, so nobody else takes them), each with the one
//! driver loop `executor::drive` under its claim. A stop winds every driver down and releases
//! the queued claims.

use crate::clock::Clock;
use crate::engine::{AttemptState, Claim, Engine};
use crate::executor::{self, spawn::Spawner, AttemptSpec, Claimed, Deps, StopLevel};
use crate::ids::AttemptId;
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

/// What the supervisor needs.
pub struct Supervisor {
    pub engine: Arc<Engine>,
    pub clock: Arc<dyn Clock>,
    pub spawner: Arc<dyn Spawner>,
    /// Shared by every driver: running operator tasks across all attempts.
    pub task_slots: Arc<Semaphore>,
    pub max_attempts: usize,
    pub project_dir: PathBuf,
    /// Where attempts keep their run files (`<state>/logs/<attempt>`).
    pub state_dir: PathBuf,
    pub stop: watch::Receiver<StopLevel>,
    pub stop_timeout: Duration,
    /// Attempts to drive (from the scheduler, recovery of orphaned attempts, the API).
    pub claims: mpsc::UnboundedReceiver<Drive>,
    /// How many attempts are being driven and how many wait, for status lines.
    pub load: watch::Sender<Load>,
    /// Attempts to kill (the API, or a kill another process asked for through the store).
    pub kills: mpsc::UnboundedReceiver<AttemptId>,
    /// Told of every transaction that changed an attempt.
    pub on_change: Option<Arc<dyn Fn(AttemptId) + Send + Sync>>,
}

/// An attempt to drive: the claim on it, and its first actions when its creator already
/// started its first tasks.
#[derive(Debug)]
pub struct Drive {
    pub claim: Claim,
    pub started: Option<Vec<crate::engine::Action>>,
}

impl From<Claim> for Drive {
    fn from(claim: Claim) -> Drive {
        Drive {
            claim,
            started: None,
        }
    }
}

/// The supervisor's load.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Load {
    pub running: usize,
    pub queued: usize,
}

impl Supervisor {
    pub async fn run(mut self) {
        let mut drivers: JoinSet<(AttemptId, Result<AttemptState, executor::Error>)> =
            JoinSet::new();
        let mut active: HashSet<AttemptId> = HashSet::new();
        let mut switches: HashMap<AttemptId, watch::Sender<bool>> = HashMap::new();
        let mut queue: VecDeque<Drive> = VecDeque::new();
        let mut stop = self.stop.clone();
        let mut stopping = *stop.borrow() != StopLevel::Run;
        loop {
            while !stopping && drivers.len() < self.max_attempts {
                let Some(drive) = queue.pop_front() else {
                    break;
                };
                let attempt = drive.claim.attempt;
                let (kill_tx, kill_rx) = watch::channel(false);
                switches.insert(attempt, kill_tx);
                let driver = self.driver(drive, kill_rx);
                drivers.spawn(async move { (attempt, driver.await) });
            }
            self.load.send_replace(Load {
                running: drivers.len(),
                queued: queue.len(),
            });
            if stopping && drivers.is_empty() {
                break;
            }
            tokio::select! {
                Some(drive) = self.claims.recv(), if !stopping => {
                    // A claim arrives once per take-over; never drive an attempt twice.
                    if active.insert(drive.claim.attempt) {
                        queue.push_back(drive);
                    }
                }
                Some(joined) = drivers.join_next(), if !drivers.is_empty() => {
                    match joined {
                        Ok((attempt, result)) => {
                            active.remove(&attempt);
                            switches.remove(&attempt);
                            // require>: runs waiting for this attempt look at their tries again.
                            crate::operators::require_host::attempt_finished();
                            match result {
                                Ok(AttemptState::Running) => tracing::info!(%attempt, "attempt stopped; it continues at the next start"),
                                Ok(state) => tracing::info!(%attempt, state = state.as_str(), "attempt finished"),
                                Err(e) => tracing::error!(%attempt, error = %crate::cli::error_chain(&e), "attempt driver failed"),
                            }
                        }
                        Err(e) => tracing::error!(error = %e, "attempt driver panicked"),
                    }
                }
                Some(attempt) = self.kills.recv() => {
                    if let Some(switch) = switches.get(&attempt) {
                        switch.send_replace(true);
                    } else if let Some(at) = queue.iter().position(|d| d.claim.attempt == attempt) {
                        // Claimed but not started: nothing runs, so the store alone kills it.
                        if let Some(Drive { claim, .. }) = queue.remove(at) {
                            active.remove(&attempt);
                            let engine = self.engine.clone();
                            let now = self.clock.now();
                            match tokio::task::spawn_blocking(move || engine.kill_claimed(&claim, now)).await {
                                Ok(Ok(_)) => tracing::info!(%attempt, "killed a queued attempt"),
                                Ok(Err(e)) => tracing::error!(%attempt, error = %e, "cannot kill a queued attempt"),
                                Err(e) => tracing::error!(%attempt, error = %e, "kill panicked"),
                            }
                            if let Some(f) = &self.on_change {
                                f(attempt);
                            }
                        }
                    }
                }
                changed = stop.changed(), if !stopping => {
                    if changed.is_err() || *stop.borrow() != StopLevel::Run {
                        stopping = true;
                    }
                }
            }
        }
        // Claimed but never started: give them up so the next start (or another process)
        // can take them at once.
        for Drive { claim, .. } in queue.drain(..) {
            let engine = self.engine.clone();
            let _ = tokio::task::spawn_blocking(move || engine.release_claim(&claim)).await;
        }
        self.load.send_replace(Load::default());
    }

    fn driver(
        &self,
        drive: Drive,
        kill: watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = Result<AttemptState, executor::Error>> + Send + 'static
    {
        let Drive { claim, started } = drive;
        let attempt = claim.attempt;
        let deps = Deps {
            clock: self.clock.clone(),
            spawner: self.spawner.clone(),
            engine: Arc::new(Claimed {
                engine: self.engine.clone(),
                claim,
            }),
            task_slots: Some(self.task_slots.clone()),
        };
        let spec = AttemptSpec {
            attempt,
            project_dir: self.project_dir.clone(),
            run_dir: executor::run_dir(&self.state_dir, attempt),
            // Generators read their `_do` blocks from the definitions stored with the
            // attempt: a reload never changes an attempt under way.
            workflow: None,
            progress: false,
            secrets: Arc::new(crate::expr::EnvSecrets),
            stop: self.stop.clone(),
            stop_timeout: self.stop_timeout,
            started,
            kill: Some(kill),
            on_change: self.on_change.clone(),
        };
        tracing::info!(%attempt, "driving attempt");
        async move { executor::drive(&deps, &spec).await }
    }
}
