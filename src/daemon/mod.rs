//! `spade serve`: the daemon layer above the executor. It wires the pieces together:
//! - `project`: the last good revision of every workflow, reloaded when files change (`watch`);
//! - `scheduler`: one timer at the earliest due slot, firing each slot once;
//! - `supervisor`: drives the claimed attempts with `executor::drive`, bounded by
//!   `max_attempts` and `max_tasks`;
//! - the owner lease, renewed by a heartbeat that also adopts attempts whose owner died and
//!   pings systemd's watchdog (`sdnotify`).
//!
//! Everything it holds in memory is rebuilt from the store at start: after `kill -9` the next
//! start claims the unfinished attempts and the schedules continue from their stored slots.

pub mod gc;
pub mod project;
pub mod scheduler;
pub mod sdnotify;
pub mod supervisor;
pub mod watch;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::engine::{ClaimOutcome, Engine, Lease, OwnerId};
use crate::executor::heartbeat::{self, real_ms, Beat};
use crate::executor::StopLevel;
use crate::ids::ProjectId;
use project::Project;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch as channel, Notify, Semaphore};

/// Daemon failures (exit 1 unless said otherwise).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Engine(#[from] crate::engine::Error),
    #[error(transparent)]
    Dig(#[from] crate::dig::Error),
    /// A second daemon on one database: exit 2.
    #[error("another spade serve is using {}: {owner}; stop it first (for example `systemctl stop spade`)", db.display())]
    AnotherDaemon { db: PathBuf, owner: String },
    #[error("cannot watch {} for changes", dir.display())]
    Watch {
        dir: PathBuf,
        #[source]
        source: notify::Error,
    },
    #[error("a daemon task panicked or was canceled")]
    Thread(#[source] tokio::task::JoinError),
    #[error("the HTTP API cannot listen on {addr}: is another spade serve (or another program) using it? Choose another with --listen or `listen` in the configuration")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the owner lease lapsed (the store could not be written for too long); every task was stopped")]
    LeaseLost,
}

impl Error {
    pub fn is_user_fixable(&self) -> bool {
        match self {
            Error::AnotherDaemon { .. } | Error::Listen { .. } => true,
            Error::Engine(e) => e.is_user_fixable(),
            Error::Dig(_) | Error::Watch { .. } | Error::Thread(_) | Error::LeaseLost => false,
        }
    }
}

/// Runs an engine call on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::engine::Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(Error::Thread)?
        .map_err(Error::from)
}

/// What the rest of the daemon (the HTTP API) can see and do: read the store, start attempts
/// (create and claim them, then hand them to the supervisor through `drive`), kill them, wake
/// the scheduler after a schedule changed, and follow every attempt's changes.
#[derive(Clone)]
pub struct Handle {
    pub engine: Arc<Engine>,
    /// The scheduling clock (virtual under the test flags).
    pub clock: Arc<dyn Clock>,
    /// The daemon's owner id: attempts it starts are claimed for it.
    pub owner: OwnerId,
    pub project_id: ProjectId,
    pub project_dir: PathBuf,
    /// Where the database is, and the task logs (`<state>/logs/<attempt>/<task>.<fence>.log`).
    pub state_dir: PathBuf,
    /// The project as last (re)loaded.
    pub project: channel::Receiver<Arc<Project>>,
    /// Claimed attempts for the supervisor to drive.
    pub drive: mpsc::UnboundedSender<supervisor::Drive>,
    /// Attempts for the supervisor to kill.
    pub kills: mpsc::UnboundedSender<crate::ids::AttemptId>,
    /// Wakes the scheduler (a schedule was enabled, skipped, backfilled).
    pub kick: Arc<Notify>,
    /// Every attempt whose state changed, after the transaction committed.
    pub changes: tokio::sync::broadcast::Sender<crate::ids::AttemptId>,
    pub load: channel::Receiver<supervisor::Load>,
}

/// How long file events are gathered before one reload (editors write in several steps).
const RELOAD_DEBOUNCE: Duration = Duration::from_millis(200);

/// Serves `config.project` until `stop` asks to stop. `clock` is the scheduling clock (the
/// real one, or the hidden `--time-origin`/`--time-scale` test clock); leases always use
/// real time.
pub async fn serve(
    config: &Config,
    clock: Arc<dyn Clock>,
    notifier: Arc<sdnotify::Notifier>,
    stop_tx: channel::Sender<StopLevel>,
) -> Result<(), Error> {
    // The port first: a second daemon, or a busy port, fails before anything is written.
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Listen {
            addr: config.listen,
            source,
        })?;
    let engine = Arc::new(Engine::open(&config.db)?.with_task_limit(config.task_limit));
    let lease = Lease::default();
    let (owner, project_id) =
        match engine.register_daemon(&config.project, SystemClock.now(), real_ms(), &lease)? {
            Ok(v) => v,
            Err(other) => {
                return Err(Error::AnotherDaemon {
                    db: config.db.clone(),
                    owner: other.describe(),
                })
            }
        };
    let result = serve_as(
        config, clock, notifier, stop_tx, &engine, &owner.id, project_id, lease, listener,
    )
    .await;
    if let Err(e) = engine.unregister_owner(&owner.id) {
        tracing::warn!(error = %e, "cannot remove the daemon's owner row; it expires with its lease");
    }
    result
}

#[allow(clippy::too_many_arguments)] // the wiring of one daemon: each argument is a piece
async fn serve_as(
    config: &Config,
    clock: Arc<dyn Clock>,
    notifier: Arc<sdnotify::Notifier>,
    stop_tx: channel::Sender<StopLevel>,
    engine: &Arc<Engine>,
    owner: &OwnerId,
    project_id: ProjectId,
    lease: Lease,
    listener: tokio::net::TcpListener,
) -> Result<(), Error> {
    let stop = stop_tx.subscribe();
    let dir = config.project.clone();
    let (project, report) = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || project::load(&dir, None))
            .await
            .map_err(Error::Thread)??
    };
    log_report(&report);
    let project = Arc::new(project);
    {
        let engine = engine.clone();
        let project = project.clone();
        let now = clock.now();
        blocking(move || {
            engine.sync_schedules(project_id, &scheduler::scheduled(&project), now, true)
        })
        .await?;
    }
    let (project_tx, project_rx) = channel::channel(project.clone());
    let project_rx_for_handle = project_rx.clone();
    let (claims_tx, claims_rx) = mpsc::unbounded_channel();
    let (kills_tx, kills_rx) = mpsc::unbounded_channel();
    let (load_tx, load_rx) = channel::channel(supervisor::Load::default());
    let (changes, _) = tokio::sync::broadcast::channel(1024);
    let on_change: Arc<dyn Fn(crate::ids::AttemptId) + Send + Sync> = {
        let changes: tokio::sync::broadcast::Sender<crate::ids::AttemptId> = changes.clone();
        Arc::new(move |a| {
            // Nobody listening is fine: live views subscribe when they need to.
            let _ = changes.send(a);
        })
    };
    let max_tasks = config
        .max_tasks
        .unwrap_or_else(|| crate::host::max_tasks_for(crate::host::raise_fd_limit()));
    let state_dir = config
        .db
        .parent()
        .map_or_else(|| PathBuf::from("."), PathBuf::from);
    let supervisor = tokio::spawn(
        supervisor::Supervisor {
            engine: engine.clone(),
            clock: clock.clone(),
            spawner: Arc::new(crate::executor::spawn::TokioSpawner),
            task_slots: Arc::new(Semaphore::new(max_tasks.max(1))),
            max_attempts: config.max_attempts,
            project_dir: dir.clone(),
            state_dir,
            stop: stop.clone(),
            stop_timeout: config.stop_timeout,
            claims: claims_rx,
            load: load_tx,
            kills: kills_rx,
            on_change: Some(on_change.clone()),
        }
        .run(),
    );
    // require>: required attempts of the served project go to the supervisor; those of
    // other projects get a driver of their own in this process.
    {
        let mut host = crate::operators::require_host::Host::new(
            engine.clone(),
            owner.clone(),
            clock.clone(),
            Arc::new(crate::executor::spawn::TokioSpawner),
            None,
            config
                .db
                .parent()
                .map_or_else(|| PathBuf::from("."), PathBuf::from),
            stop.clone(),
            config.stop_timeout,
        );
        host.supervised = Some(crate::operators::require_host::Supervised {
            project_dir: dir.clone(),
            claims: claims_tx.clone(),
        });
        host.on_change = Some(on_change.clone());
        crate::operators::require_host::install(host);
    }
    // Attempts left running by a process that died (this daemon before a crash, a killed
    // `spade run`) continue first.
    adopt_orphans(engine, owner, project_id, &claims_tx).await?;
    let kick = Arc::new(Notify::new());
    let scheduler = tokio::spawn(
        scheduler::Scheduler {
            engine: engine.clone(),
            clock: clock.clone(),
            project_id,
            project_dir: dir.clone(),
            owner: owner.clone(),
            project: project_rx,
            claims: claims_tx.clone(),
            load: load_rx.clone(),
            max_attempts: config.max_attempts,
            kick: kick.clone(),
            stop: stop.clone(),
        }
        .run(),
    );
    let (changes_tx, changes_rx) = mpsc::unbounded_channel();
    let watcher = watch::watch(&dir, changes_tx).map_err(|source| Error::Watch {
        dir: dir.clone(),
        source,
    })?;
    let mode = watcher.mode;
    let reloader = tokio::spawn(reload_loop(
        watcher,
        engine.clone(),
        clock.clone(),
        project_id,
        dir.clone(),
        project_tx,
        changes_rx,
        stop.clone(),
    ));
    let schedules = scheduler::scheduled(&project).len();
    tracing::info!(
        project = %dir.display(), db = %config.db.display(), workflows = project.workflows.len(),
        schedules, max_attempts = config.max_attempts, max_tasks, watch = mode,
        "serving"
    );
    notifier.ready(&format!(
        "serving {} workflow(s), {schedules} schedule(s) armed",
        project.workflows.len()
    ));

    let handle = Handle {
        engine: engine.clone(),
        clock: clock.clone(),
        owner: owner.clone(),
        project_id,
        project_dir: dir.clone(),
        state_dir: config
            .db
            .parent()
            .map_or_else(|| PathBuf::from("."), PathBuf::from),
        project: project_rx_for_handle,
        drive: claims_tx.clone(),
        kills: kills_tx.clone(),
        kick: kick.clone(),
        changes: changes.clone(),
        load: load_rx.clone(),
    };
    let metrics = Arc::new(crate::api::metrics::Metrics::default());
    let sweeper = config.gc_older_than.map(|older_than| {
        tokio::spawn(
            gc::Sweeper {
                engine: engine.clone(),
                clock: clock.clone(),
                project: project_id,
                state_dir: handle.state_dir.clone(),
                policy: gc::Policy {
                    older_than,
                    every: config.gc_interval,
                },
                stop: stop.clone(),
                metrics: metrics.clone(),
            }
            .run(),
        )
    });
    let api = crate::api::Api::new(
        handle.clone(),
        config.api_token.clone(),
        stop.clone(),
        metrics,
    );
    let listen = listener.local_addr().unwrap_or(config.listen);
    tracing::info!(%listen, token = config.api_token.is_some(), "API listening on http://{listen}");
    let api_server = tokio::spawn(crate::api::serve(listener, api));
    let lost = heartbeat_loop(&handle, lease, &notifier, stop_tx.clone(), stop.clone()).await?;
    notifier.stopping("stopping: waiting for running tasks");
    tracing::info!("stopping: no new sessions or tasks start; waiting for running tasks");
    drop(claims_tx);
    crate::operators::require_host::uninstall();
    let scheduled_result = scheduler.await.map_err(Error::Thread)?;
    supervisor.await.map_err(Error::Thread)?;
    reloader.await.map_err(Error::Thread)?;
    if let Some(sweeper) = sweeper {
        sweeper.await.map_err(Error::Thread)?;
    }
    // Open event streams would hold a graceful shutdown: the API ends with the daemon.
    api_server.abort();
    scheduled_result?;
    if lost {
        return Err(Error::LeaseLost);
    }
    tracing::info!("stopped");
    Ok(())
}

/// Renews the lease (and pings the watchdog) until a stop is asked; returns whether the
/// lease was lost. Each beat also adopts attempts whose owner died meanwhile, and kills the
/// attempts another process asked to kill through the store.
async fn heartbeat_loop(
    handle: &Handle,
    lease: Lease,
    notifier: &sdnotify::Notifier,
    stop_tx: channel::Sender<StopLevel>,
    mut stop: channel::Receiver<StopLevel>,
) -> Result<bool, Error> {
    let every = notifier
        .watchdog()
        .map_or(lease.renew_every, |w| w.min(lease.renew_every));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() != StopLevel::Run {
                    return Ok(false);
                }
                continue;
            }
        }
        match heartbeat::beat(&handle.engine, &handle.owner, lease).await {
            Beat::Renewed => {
                if notifier.watchdog().is_some() {
                    notifier.ping();
                }
                adopt_orphans(
                    &handle.engine,
                    &handle.owner,
                    handle.project_id,
                    &handle.drive,
                )
                .await?;
                let engine = handle.engine.clone();
                let owner = handle.owner.clone();
                for attempt in blocking(move || engine.cancel_requested(&owner)).await? {
                    tracing::info!(%attempt, "kill requested through the store");
                    let _ = handle.kills.send(attempt);
                }
                let l = *handle.load.borrow();
                notifier.status(&format!(
                    "{} attempt(s) running, {} queued",
                    l.running, l.queued
                ));
            }
            Beat::Failed => {}
            Beat::Lost => {
                tracing::error!("the daemon's lease lapsed; stopping every task at once");
                let _ = stop_tx.send(StopLevel::Now);
                return Ok(true);
            }
        }
    }
}

/// Claims the running attempts of the project that no live owner drives and hands them to
/// the supervisor.
async fn adopt_orphans(
    engine: &Arc<Engine>,
    owner: &OwnerId,
    project_id: ProjectId,
    claims: &mpsc::UnboundedSender<supervisor::Drive>,
) -> Result<(), Error> {
    let engine = engine.clone();
    let owner = owner.clone();
    let claimed = blocking(move || {
        let mut claimed = Vec::new();
        for attempt in engine.claimable_attempts(project_id, real_ms())? {
            let now = SystemClock.now();
            if let ClaimOutcome::Claimed(c) =
                engine.claim_attempt(attempt, &owner, now, real_ms())?
            {
                claimed.push(c);
            }
        }
        Ok(claimed)
    })
    .await?;
    for claim in claimed {
        tracing::info!(attempt = %claim.attempt, "adopting an unfinished attempt whose owner is gone");
        let _ = claims.send(claim.into());
    }
    Ok(())
}

/// Reloads the project when its files change (debounced); a reload with errors keeps the
/// last good revision of the broken files and keeps serving.
#[allow(clippy::too_many_arguments)]
async fn reload_loop(
    mut watcher: watch::Watch,
    engine: Arc<Engine>,
    clock: Arc<dyn Clock>,
    project_id: ProjectId,
    dir: PathBuf,
    project_tx: channel::Sender<Arc<Project>>,
    mut changes: mpsc::UnboundedReceiver<()>,
    mut stop: channel::Receiver<StopLevel>,
) {
    loop {
        tokio::select! {
            got = changes.recv() => {
                if got.is_none() {
                    return;
                }
            }
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() != StopLevel::Run {
                    return;
                }
                continue;
            }
        }
        tokio::time::sleep(RELOAD_DEBOUNCE).await;
        while changes.try_recv().is_ok() {}
        watcher.refresh();
        let current = project_tx.borrow().clone();
        let d = dir.clone();
        let loaded = tokio::task::spawn_blocking(move || project::load(&d, Some(&current))).await;
        let (project, report) = match loaded {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                tracing::error!(error = %crate::cli::error_chain(&e), "reload failed; keeping the last good revision");
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "reload panicked; keeping the last good revision");
                continue;
            }
        };
        log_report(&report);
        if !report.changed_anything() {
            continue;
        }
        let project = Arc::new(project);
        let synced = {
            let engine = engine.clone();
            let project = project.clone();
            let now = clock.now();
            blocking(move || {
                engine.sync_schedules(project_id, &scheduler::scheduled(&project), now, false)
            })
            .await
        };
        if let Err(e) = synced {
            tracing::error!(error = %crate::cli::error_chain(&e), "cannot update the schedules after a reload");
            continue;
        }
        tracing::info!(
            added = ?report.added, changed = ?report.changed, removed = ?report.removed,
            "project reloaded"
        );
        project_tx.send_replace(project);
    }
}

fn log_report(report: &project::Report) {
    for (is_error, d) in &report.diagnostics {
        if *is_error {
            tracing::error!("{}", d.trim_end());
        } else {
            tracing::warn!("{}", d.trim_end());
        }
    }
    for name in &report.kept {
        tracing::error!(workflow = %name, "the workflow's file has errors: keeping its last good revision");
    }
}
