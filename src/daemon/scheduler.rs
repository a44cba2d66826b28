//! The scheduler: one timer, armed at the earliest due slot of every schedule and re-armed
//! when the project reloads, fires each slot exactly once (`Engine::fire_next_slot`: the
//! session, the attempt and the daemon's claim are created in the transaction that advances
//! the schedule) and hands the claims to the supervisor. It never polls.

use super::project::Project;
use super::{blocking, Error};
use crate::clock::Clock;
use crate::engine::{Engine, FiredSlot, OwnerId, ScheduledWorkflow};
use crate::executor::heartbeat::real_ms;
use crate::executor::StopLevel;
use crate::ids::ProjectId;
use crate::schedule::format_rfc3339;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{mpsc, watch, Notify};

/// The scheduled workflows of a project, as the engine's scheduling calls take them.
pub fn scheduled(project: &Project) -> Vec<ScheduledWorkflow<'_>> {
    project
        .workflows
        .values()
        .filter_map(|l| {
            let s = l.schedule.as_ref()?;
            Some(ScheduledWorkflow {
                workflow: &l.workflow,
                sources: &l.sources,
                schedule: &s.schedule,
                policy: &s.policy,
                spec: &s.spec,
            })
        })
        .collect()
}

/// The scheduler service.
pub struct Scheduler {
    pub engine: Arc<Engine>,
    pub clock: Arc<dyn Clock>,
    pub project_id: ProjectId,
    pub project_dir: PathBuf,
    pub owner: OwnerId,
    /// The project as last (re)loaded; a change re-arms the timer.
    pub project: watch::Receiver<Arc<Project>>,
    /// The attempts it started, for the supervisor.
    pub claims: mpsc::UnboundedSender<super::supervisor::Drive>,
    /// The supervisor's load: attempts fired while a driver is free get their first tasks
    /// started in the firing transaction.
    pub load: watch::Receiver<super::supervisor::Load>,
    pub max_attempts: usize,
    /// Wakes the timer early (a schedule enabled, skipped or backfilled through the API).
    pub kick: Arc<Notify>,
    pub stop: watch::Receiver<StopLevel>,
}

impl Scheduler {
    pub async fn run(mut self) -> Result<(), Error> {
        loop {
            let project = self.project.borrow_and_update().clone();
            self.fire_due(project).await?;
            let engine = self.engine.clone();
            let id = self.project_id;
            let next = blocking(move || engine.next_due(id)).await?;
            let sleep = next.map(|at| self.clock.sleep_until(at));
            tokio::select! {
                () = async { if let Some(s) = sleep { s.await } }, if next.is_some() => {}
                changed = self.project.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                }
                () = self.kick.notified() => {}
                changed = self.stop.changed() => {
                    if changed.is_err() || *self.stop.borrow() != StopLevel::Run {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Fires every slot that is due now, oldest first, in batches of [`BATCH`] slots per
    /// transaction.
    async fn fire_due(&self, project: Arc<Project>) -> Result<(), Error> {
        let engine = self.engine.clone();
        let clock = self.clock.clone();
        let claims = self.claims.clone();
        let owner = self.owner.clone();
        let (id, dir) = (self.project_id, self.project_dir.clone());
        let stop = self.stop.clone();
        let load = self.load.clone();
        let max_attempts = self.max_attempts;
        blocking(move || {
            let workflows = scheduled(&project);
            let lookup = |name: &str| workflows.iter().find(|w| w.workflow.name == name).copied();
            let mut sent = 0usize;
            while *stop.borrow() == StopLevel::Run {
                let busy = {
                    let l = *load.borrow();
                    l.running + l.queued
                };
                // Start first tasks in the firing transaction only for attempts a driver can
                // take at once (the others wait in the supervisor's queue, unstarted).
                let free = max_attempts.saturating_sub(busy.max(sent));
                let now = clock.now();
                let fired = engine.fire_due_slots(
                    id,
                    &dir,
                    &lookup,
                    now,
                    &owner,
                    real_ms(),
                    BATCH,
                    free,
                )?;
                if fired.is_empty() {
                    break;
                }
                for f in fired {
                    log_fired(&f, &project);
                    if let Some(claim) = f.claim {
                        sent += 1;
                        // The supervisor may be gone only when the daemon stops.
                        let _ = claims.send(super::supervisor::Drive {
                            claim,
                            started: f.actions,
                        });
                    }
                }
            }
            Ok(())
        })
        .await
    }
}

/// Slots fired per transaction: one commit for many slots, but short enough that the first
/// attempts of a burst start without waiting for the whole burst.
pub const BATCH: usize = 32;

fn log_fired(fired: &FiredSlot, project: &Project) {
    let tz = project
        .workflows
        .get(&fired.workflow)
        .and_then(|l| l.schedule.as_ref())
        .map(|s| s.schedule.tz.clone())
        .unwrap_or(jiff::tz::TimeZone::UTC);
    let session = format_rfc3339(fired.slot.session_time, &tz);
    let run = format_rfc3339(fired.slot.run_time, &tz);
    match (fired.attempt, fired.existed) {
        (Some(attempt), _) => tracing::info!(
            workflow = %fired.workflow, session_time = %session, run_time = %run,
            reason = fired.reason.describe(), %attempt, "session started"
        ),
        (None, true) => tracing::info!(
            workflow = %fired.workflow, session_time = %session, run_time = %run,
            "slot skipped: a session at this time exists already"
        ),
        (None, false) => tracing::info!(
            workflow = %fired.workflow, session_time = %session, run_time = %run,
            reason = fired.reason.describe(), "slot skipped"
        ),
    }
}

/// One line of `spade serve --dry-run`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    pub workflow: String,
    pub session_time: String,
    pub run_time: String,
    pub reason: String,
}

/// What a start would do now, without doing it: every due slot of every schedule with the
/// decision `catchup::decide` makes (the store's schedule state is read, never written).
pub fn plan(
    engine: Option<&Engine>,
    project_id: Option<ProjectId>,
    project: &Project,
    now: jiff::Timestamp,
) -> Result<Vec<Planned>, crate::engine::Error> {
    let rows = match (engine, project_id) {
        (Some(e), Some(id)) => e.schedules(id)?,
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for wf in scheduled(project) {
        let name = &wf.workflow.name;
        let row = rows.iter().find(|r| &r.workflow == name);
        // As `sync_schedules` would set it up, then armed at this start.
        let mut next = match row {
            None => wf.schedule.first_at_or_after(now),
            Some(r) if r.spec != wf.spec => match r.last_session {
                Some(last) => crate::engine::next_slot(wf.schedule, last),
                None => wf.schedule.first_at_or_after(now),
            },
            Some(r) => match (r.next_session, r.next_run) {
                (Some(session_time), Some(run_time)) => Some(crate::schedule::Slot {
                    session_time,
                    run_time,
                }),
                _ => None,
            },
        };
        if row.is_some_and(|r| r.disabled_at.is_some()) {
            continue;
        }
        let mut busy = match (engine, project_id) {
            (Some(e), Some(id)) if wf.policy.skip_on_overtime => e.has_running_attempt(id, name)?,
            _ => false,
        };
        while let Some(slot) = next.filter(|s| s.run_time <= now) {
            let after = crate::engine::next_slot(wf.schedule, slot.session_time);
            let reason = crate::catchup::decide(slot, after, now, now, wf.policy, busy);
            let exists = match (engine, project_id) {
                (Some(e), Some(id)) if reason.fires() => {
                    e.session_exists(id, name, slot.session_time)?
                }
                _ => false,
            };
            busy |= reason.fires();
            out.push(Planned {
                workflow: name.clone(),
                session_time: format_rfc3339(slot.session_time, &wf.schedule.tz),
                run_time: format_rfc3339(slot.run_time, &wf.schedule.tz),
                reason: if exists {
                    "skipped: a session at this time exists already".to_owned()
                } else {
                    reason.describe().to_owned()
                },
            });
            next = after;
        }
    }
    Ok(out)
}
