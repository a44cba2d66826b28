//! Schedule state in the store: syncing the rows with the loaded workflows, and firing one
//! due slot per transaction, in which the session, the attempt and the daemon's claim are
//! created and the schedule advances (compare-and-advance), so a slot that fired before a
//! crash is never fired again and one that did not is never lost.

use super::apply::Apply;
use super::{prepare, Engine, Error, NewAttempt};
use crate::catchup::{self, Policy, Reason};
use crate::dig::Workflow;
use crate::ids::{AttemptId, ProjectId};
use crate::schedule::{Schedule, Slot};
use crate::store::lease::{self, Claim, ClaimOutcome, OwnerId};
use crate::store::schedules::{self, ScheduleRow};
use jiff::Timestamp;
use std::path::{Path, PathBuf};

/// What the scheduler knows of one scheduled workflow.
#[derive(Clone, Copy)]
pub struct ScheduledWorkflow<'a> {
    pub workflow: &'a Workflow,
    pub sources: &'a [(PathBuf, String)],
    pub schedule: &'a Schedule,
    pub policy: &'a Policy,
    /// The rule as written; a different text than the stored one re-plans the schedule.
    pub spec: &'a str,
}

/// One slot handled by [`Engine::fire_next_slot`].
#[derive(Clone, Debug)]
pub struct FiredSlot {
    pub schedule_id: i64,
    pub workflow: String,
    pub slot: Slot,
    pub reason: Reason,
    /// The attempt it started (`None` when skipped, or when the session existed already).
    pub attempt: Option<AttemptId>,
    /// The daemon's claim on that attempt, taken in the same transaction.
    pub claim: Option<Claim>,
    /// Set when the session existed already (a `spade run` of that time, say).
    pub existed: bool,
    /// The first actions of the new attempt when it was started in the same transaction
    /// (`start: true`): its driver begins with them instead of recovering.
    pub actions: Option<Vec<super::Action>>,
}

/// The slot after the one of `session_time`, within the schedule's `start`/`end`.
pub fn next_slot(schedule: &Schedule, session_time: Timestamp) -> Option<Slot> {
    schedule.next_within_bounds(session_time)
}

impl Engine {
    /// Makes the schedule rows of `project` match the loaded workflows: a new schedule starts
    /// at its first slot at or after `now` (no backfill of the past, as in Digdag); a changed
    /// one continues after its last slot (slots between then and now count as missed); a
    /// removed one is deleted. `arm` marks the start of serving: every slot due before it was
    /// missed while nothing served the schedule.
    pub fn sync_schedules(
        &self,
        project: ProjectId,
        workflows: &[ScheduledWorkflow<'_>],
        now: Timestamp,
        arm: bool,
    ) -> Result<(), Error> {
        self.store.write("sync_schedules", |tx| {
            if arm {
                schedules::arm_all(tx, project, now)?;
            }
            let rows = schedules::list(tx, project)?;
            for wf in workflows {
                match rows.iter().find(|r| r.workflow == wf.workflow.name) {
                    None => {
                        let first = wf.schedule.first_at_or_after(now);
                        schedules::insert(tx, project, &wf.workflow.name, wf.spec, first, now)?;
                    }
                    Some(row) if row.spec != wf.spec => {
                        let next = match row.last_session {
                            Some(last) => next_slot(wf.schedule, last),
                            None => wf.schedule.first_at_or_after(now),
                        };
                        tracing::info!(workflow = %wf.workflow.name, next = ?next.map(|s| s.session_time.to_string()), "schedule changed; continuing after its last slot");
                        schedules::update_spec(tx, row.id, wf.spec, next, now, now)?;
                    }
                    Some(_) => {}
                }
            }
            for row in &rows {
                if !workflows.iter().any(|w| w.workflow.name == row.workflow) {
                    tracing::info!(workflow = %row.workflow, "schedule removed");
                    schedules::delete(tx, row.id)?;
                }
            }
            Ok(())
        })
    }

    /// The schedule rows of a project.
    pub fn schedules(&self, project: ProjectId) -> Result<Vec<ScheduleRow>, Error> {
        self.store.read("list_schedules", |tx| {
            schedules::list(tx, project).map_err(Error::from)
        })
    }

    /// Whether an attempt of the workflow is running (what `skip_on_overtime` looks at).
    pub fn has_running_attempt(&self, project: ProjectId, workflow: &str) -> Result<bool, Error> {
        self.store.read("has_running_attempt", |tx| {
            schedules::has_running_attempt(tx, project, workflow).map_err(Error::from)
        })
    }

    pub fn session_exists(
        &self,
        project: ProjectId,
        workflow: &str,
        session_time: Timestamp,
    ) -> Result<bool, Error> {
        self.store.read("session_exists", |tx| {
            schedules::session_exists(tx, project, workflow, session_time).map_err(Error::from)
        })
    }

    /// The project row of `dir`, if the store has one (read only).
    pub fn find_project(&self, dir: &Path) -> Result<Option<ProjectId>, Error> {
        self.store
            .read("find_project", |tx| super::owned::find_project(tx, dir))
    }

    /// When the next enabled slot of `project` is due.
    pub fn next_due(&self, project: ProjectId) -> Result<Option<Timestamp>, Error> {
        self.store.read("next_due", |tx| {
            schedules::earliest_run(tx, project).map_err(Error::from)
        })
    }

    /// Handles the slots due at `now`, oldest first, at most `limit` of them, in one
    /// transaction: for each, decide (fire or skip, `catchup::decide`), create the session and
    /// attempt through the same dedupe as `spade run`, claim it for `owner`, and advance the
    /// schedule (compare-and-advance). The first `start` new attempts also have their first
    /// tasks started in that transaction (their drivers begin with `FiredSlot::actions`).
    #[allow(clippy::too_many_arguments)] // the scheduler's one call into the store
    pub fn fire_due_slots<'a>(
        &self,
        project: ProjectId,
        project_dir: &Path,
        lookup: &dyn Fn(&str) -> Option<ScheduledWorkflow<'a>>,
        now: Timestamp,
        owner: &OwnerId,
        real_ms: i64,
        limit: usize,
        start: usize,
    ) -> Result<Vec<FiredSlot>, Error> {
        let (fired, _) = self.transact("fire_slots", now, |a| {
            let mut fired = Vec::new();
            let mut started = 0;
            while fired.len() < limit {
                let Some(mut f) = fire_one(a, project, project_dir, lookup, owner, real_ms)? else {
                    break;
                };
                if let (Some(claim), true) = (&f.claim, started < start) {
                    a.defer_starts(false);
                    a.recover(claim.attempt)?;
                    f.actions = Some(std::mem::take(&mut a.actions));
                    started += 1;
                }
                fired.push(f);
            }
            Ok(fired)
        })?;
        Ok(fired)
    }
}

/// One due slot inside the firing transaction (`None`: nothing is due).
fn fire_one<'a>(
    a: &mut Apply<'_, '_>,
    project: ProjectId,
    project_dir: &Path,
    lookup: &dyn Fn(&str) -> Option<ScheduledWorkflow<'a>>,
    owner: &OwnerId,
    real_ms: i64,
) -> Result<Option<FiredSlot>, Error> {
    let tx = a.tx();
    let now = a.now();
    let Some(row) = schedules::first_due(tx, project, now)? else {
        return Ok(None);
    };
    let (Some(session_time), Some(run_time)) = (row.next_session, row.next_run) else {
        return Ok(None);
    };
    let slot = Slot {
        session_time,
        run_time,
    };
    let Some(wf) = lookup(&row.workflow) else {
        // Reloaded away between the sync and now: it will not fire again.
        schedules::delete(tx, row.id)?;
        return fire_one(a, project, project_dir, lookup, owner, real_ms);
    };
    let next = next_slot(wf.schedule, session_time);
    let busy =
        wf.policy.skip_on_overtime && schedules::has_running_attempt(tx, project, &row.workflow)?;
    let reason = catchup::decide(slot, next, now, row.armed, wf.policy, busy);
    let mut fired = FiredSlot {
        schedule_id: row.id,
        workflow: row.workflow.clone(),
        slot,
        reason,
        attempt: None,
        claim: None,
        existed: false,
        actions: None,
    };
    if !reason.fires() {
        schedules::record_event(tx, row.id, slot, now, "skipped", reason.describe())?;
    } else if schedules::session_exists(tx, project, &row.workflow, session_time)? {
        // Digdag treats an existing session as done (a manual run of that time).
        fired.existed = true;
        schedules::record_event(
            tx,
            row.id,
            slot,
            now,
            "exists",
            "a session at this time exists already",
        )?;
    } else {
        let req = NewAttempt {
            project_dir: project_dir.to_path_buf(),
            workflow: wf.workflow.clone(),
            sources: wf.sources.to_vec(),
            session_time,
            attempt_name: None,
            params: crate::expr::JsonMap::new(),
            rerun: false,
            resume_from: None,
        };
        let prepared = prepare::prepare(a, &req)?;
        fired.attempt = Some(prepared.attempt);
        if let ClaimOutcome::Claimed(c) = lease::claim(tx, prepared.attempt, owner, now, real_ms)? {
            fired.claim = Some(c);
        }
    }
    schedules::advance(tx, row.id, session_time, next, now)?;
    Ok(Some(fired))
}
