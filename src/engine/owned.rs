//! Ownership-aware entry points of the engine: owners and their leases, claims taken in the
//! transaction that creates or resumes an attempt, and the fencing check that every write of
//! a driver makes first (see `store::lease`).

use super::{apply, apply_batch, apply_event, prepare, Action, Engine, Error, Event, NewAttempt};
use super::{AttemptState, PreparedAttempt};
use crate::ids::{AttemptId, Fence, ProjectId, TaskId};
use crate::store::lease::{self, Claim, ClaimOutcome, Lease, Owner, OwnerId, OwnerKind};
use crate::store::{sql, Tx};
use jiff::Timestamp;
use rusqlite::{params, OptionalExtension};
use std::path::Path;

/// A transaction that may stop because a live owner holds what it wanted: rolled back.
enum Refused {
    Engine(Error),
    Busy(Box<Owner>),
}

impl From<crate::store::Error> for Refused {
    fn from(e: crate::store::Error) -> Refused {
        Refused::Engine(Error::Store(e))
    }
}

impl From<Error> for Refused {
    fn from(e: Error) -> Refused {
        Refused::Engine(e)
    }
}

/// The project row of a directory (canonicalized), created on first use.
pub(crate) fn ensure_project(tx: &Tx<'_>, dir: &Path, now: Timestamp) -> Result<ProjectId, Error> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let dir = dir.to_string_lossy().into_owned();
    tx.prepare_cached(
        "INSERT INTO projects (dir, created_at) VALUES (?1, ?2) ON CONFLICT (dir) DO NOTHING",
    )
    .and_then(|mut s| s.execute(params![dir, now.to_string()]))
    .map_err(sql("insert_project"))?;
    let id: i64 = tx
        .prepare_cached("SELECT id FROM projects WHERE dir = ?1")
        .and_then(|mut s| s.query_row(params![dir], |r| r.get(0)))
        .map_err(sql("select_project"))?;
    Ok(ProjectId(id))
}

/// The project row of a directory, if the store has one.
pub(crate) fn find_project(tx: &Tx<'_>, dir: &Path) -> Result<Option<ProjectId>, Error> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    tx.prepare_cached("SELECT id FROM projects WHERE dir = ?1")
        .and_then(|mut s| {
            s.query_row(params![dir.to_string_lossy()], |r| r.get(0))
                .optional()
        })
        .map(|id: Option<i64>| id.map(ProjectId))
        .map_err(sql("select_project"))
        .map_err(Error::from)
}

impl Engine {
    /// Registers this `spade run` process as an owner.
    pub fn register_run_owner(
        &self,
        now: Timestamp,
        real_ms: i64,
        lease: &Lease,
    ) -> Result<Owner, Error> {
        self.store.write("register_owner", |tx| {
            lease::register(tx, OwnerKind::Run, None, now, real_ms, lease).map_err(Error::from)
        })
    }

    /// Registers this `spade serve` process for `project_dir`, unless another daemon is alive
    /// on this database: then `Err(that daemon)` and nothing is written.
    pub fn register_daemon(
        &self,
        project_dir: &Path,
        now: Timestamp,
        real_ms: i64,
        lease: &Lease,
    ) -> Result<Result<(Owner, ProjectId), Owner>, Error> {
        let out = self.store.write("register_daemon", |tx| {
            if let Some(other) = lease::live_daemon(tx, None, real_ms)? {
                return Err(Refused::Busy(Box::new(other)));
            }
            lease::forget_dead_owners(tx, real_ms)?;
            let project = ensure_project(tx, project_dir, now)?;
            let owner = lease::register(tx, OwnerKind::Serve, Some(project), now, real_ms, lease)?;
            Ok((owner, project))
        });
        match out {
            Ok(v) => Ok(Ok(v)),
            Err(Refused::Busy(o)) => Ok(Err(*o)),
            Err(Refused::Engine(e)) => Err(e),
        }
    }

    /// Renews the lease; `false` when it had lapsed (every claim of this owner is lost).
    pub fn renew_owner(&self, owner: &OwnerId, real_ms: i64, lease: &Lease) -> Result<bool, Error> {
        self.store.write("renew_owner", |tx| {
            lease::renew(tx, owner, real_ms, lease).map_err(Error::from)
        })
    }

    pub fn mark_owner_stopping(&self, owner: &OwnerId) -> Result<(), Error> {
        self.store.write("mark_stopping", |tx| {
            lease::mark_stopping(tx, owner).map_err(Error::from)
        })
    }

    /// Removes the owner row: whatever it still pointed at becomes free.
    pub fn unregister_owner(&self, owner: &OwnerId) -> Result<(), Error> {
        self.store.write("unregister_owner", |tx| {
            lease::unregister(tx, owner).map_err(Error::from)
        })
    }

    /// `prepare_attempt` and the claim of the attempt it returns, in one transaction. When a
    /// live owner drives the attempt the transaction is rolled back and `Busy` says who.
    pub fn prepare_and_claim(
        &self,
        req: &NewAttempt,
        now: Timestamp,
        owner: &OwnerId,
        real_ms: i64,
    ) -> Result<(PreparedAttempt, ClaimOutcome), Error> {
        let out = self.store.write("prepare_attempt", |tx| {
            let mut a = apply::Apply::new(tx, now, self.config, &self.nodes);
            let prepared = prepare::prepare(&mut a, req)?;
            let (_, nodes) = a.finish()?;
            if prepared.state.is_finished() {
                return Ok((prepared, ClaimOutcome::Finished, nodes));
            }
            match lease::claim(tx, prepared.attempt, owner, now, real_ms)? {
                ClaimOutcome::Busy(o) => Err(Refused::Busy(Box::new(o))),
                claimed => Ok((prepared, claimed, nodes)),
            }
        });
        match out {
            Ok((prepared, claimed, nodes)) => {
                apply::publish_nodes(&self.nodes, nodes);
                Ok((prepared, claimed))
            }
            Err(Refused::Busy(o)) => {
                // Rolled back: report the attempt as it is, without having touched it.
                let prepared = self.find_attempt(req)?;
                Ok((prepared, ClaimOutcome::Busy(*o)))
            }
            Err(Refused::Engine(e)) => Err(e),
        }
    }

    /// The attempt `req` names, read without changing anything (after a refused claim).
    fn find_attempt(&self, req: &NewAttempt) -> Result<PreparedAttempt, Error> {
        self.store.read("find_attempt", |tx| {
            let project = find_project(tx, &req.project_dir)?.ok_or(Error::Store(
                crate::store::Error::NotFound {
                    what: "project",
                    id: 0,
                },
            ))?;
            let (session, attempt, state): (i64, i64, String) = tx
                .query_row(
                    "SELECT s.id, a.id, a.state FROM sessions s JOIN attempts a ON a.session_id = s.id \
                     WHERE s.project_id = ?1 AND s.workflow = ?2 AND s.session_time = ?3 \
                     AND a.attempt_name = ?4",
                    params![
                        project.0,
                        req.workflow.name,
                        req.session_time.to_string(),
                        req.attempt_name.clone().unwrap_or_default()
                    ],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .map_err(sql("find_attempt"))?;
            Ok(PreparedAttempt {
                session: crate::ids::SessionId(session),
                attempt: AttemptId(attempt),
                created: false,
                state: AttemptState::parse(&state).unwrap_or(AttemptState::Running),
                resumed: None,
                resume: None,
                rerun: false,
            })
        })
    }

    /// Claims an existing attempt (the daemon taking over one whose owner died).
    pub fn claim_attempt(
        &self,
        attempt: AttemptId,
        owner: &OwnerId,
        now: Timestamp,
        real_ms: i64,
    ) -> Result<ClaimOutcome, Error> {
        self.store.write("claim_attempt", |tx| {
            lease::claim(tx, attempt, owner, now, real_ms).map_err(Error::from)
        })
    }

    /// Running attempts of the project in `dir` that no live owner drives (dead owners are
    /// forgotten on the way).
    pub fn claimable_attempts(
        &self,
        project: ProjectId,
        real_ms: i64,
    ) -> Result<Vec<AttemptId>, Error> {
        self.store.write("claimable_attempts", |tx| {
            lease::forget_dead_owners(tx, real_ms)?;
            lease::claimable(tx, project, real_ms).map_err(Error::from)
        })
    }

    /// Who drives `attempt` now, if that owner is alive.
    pub fn live_owner(&self, attempt: AttemptId, real_ms: i64) -> Result<Option<Owner>, Error> {
        self.store.read("live_owner", |tx| {
            lease::live_owner_of(tx, attempt, real_ms).map_err(Error::from)
        })
    }

    /// `apply` under a claim: nothing is written unless the claim still holds.
    pub fn apply_claimed(
        &self,
        claim: &Claim,
        now: Timestamp,
        event: Event,
    ) -> Result<Vec<Action>, Error> {
        let ((), actions) =
            self.transact_claimed("apply", now, claim, Release::IfFinished, |a| match event {
                // A driver of one attempt among many ticks only its own.
                Event::Tick => a.tick(Some(claim.attempt)),
                other => apply_event(a, other),
            })?;
        Ok(actions)
    }

    /// Several events under a claim, in one transaction (a driver's batch: a log line, a spawn
    /// report and the completions of the same moment commit together, and their parents are
    /// settled once).
    pub fn apply_claimed_batch(
        &self,
        claim: &Claim,
        now: Timestamp,
        events: Vec<Event>,
    ) -> Result<Vec<Action>, Error> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let ((), actions) =
            self.transact_claimed("apply", now, claim, Release::IfFinished, |a| {
                apply_batch(a, events, Some(claim.attempt))
            })?;
        Ok(actions)
    }

    /// `replay` under a claim (journals of a crash, then `recover`).
    pub fn replay_claimed(
        &self,
        claim: &Claim,
        now: Timestamp,
        events: Vec<Event>,
    ) -> Result<Vec<Action>, Error> {
        let ((), actions) =
            self.transact_claimed("replay", now, claim, Release::IfFinished, |a| {
                super::replay_in(a, claim.attempt, events)
            })?;
        Ok(actions)
    }

    /// Records runs that a graceful stop ended as interrupted (they run again on the next
    /// start, using up no `_retry`) and releases the attempt, in one transaction.
    pub fn stop_runs(
        &self,
        claim: &Claim,
        now: Timestamp,
        runs: &[(TaskId, Fence)],
        reason: &str,
    ) -> Result<(), Error> {
        self.transact_claimed("stop_runs", now, claim, Release::Always, |a| {
            for (task, fence) in runs {
                a.stopped(*task, *fence, reason)?;
            }
            Ok(())
        })?;
        Ok(())
    }

    /// Kills the attempt under a claim: unfinished tasks are canceled (queued ones at once),
    /// the attempt ends `killed` and is released, in one transaction. The returned actions name
    /// the running process groups (the driver stops them: SIGTERM, then SIGKILL after the
    /// grace period); `_error` handlers do not run for a killed attempt.
    pub fn kill_claimed(&self, claim: &Claim, now: Timestamp) -> Result<Vec<Action>, Error> {
        let ((), actions) =
            self.transact_claimed("kill_attempt", now, claim, Release::Always, |a| {
                a.kill(claim.attempt)
            })?;
        Ok(actions)
    }

    /// Asks whoever drives `attempt` to kill it; returns that owner if one is alive.
    pub fn request_cancel(&self, attempt: AttemptId, real_ms: i64) -> Result<Option<Owner>, Error> {
        self.store.write("request_cancel", |tx| {
            lease::request_cancel(tx, attempt, real_ms).map_err(Error::from)
        })
    }

    /// Attempts of `owner` whose kill was asked for by another process.
    pub fn cancel_requested(&self, owner: &OwnerId) -> Result<Vec<AttemptId>, Error> {
        self.store.read("cancel_requested", |tx| {
            lease::cancel_requested(tx, owner).map_err(Error::from)
        })
    }

    /// Gives the attempt up without touching its tasks.
    pub fn release_claim(&self, claim: &Claim) -> Result<(), Error> {
        self.store.write("release_attempt", |tx| {
            lease::release(tx, claim).map_err(Error::from)
        })
    }

    /// The session uuid of an attempt: with a task id and fence it makes the run token every
    /// process of a run carries (`SPADE_RUN`).
    pub fn session_uuid(&self, attempt: AttemptId) -> Result<String, Error> {
        self.store.read("session_uuid", |tx| {
            tx.prepare_cached(
                "SELECT s.session_uuid FROM attempts a JOIN sessions s ON s.id = a.session_id \
                 WHERE a.id = ?1",
            )
            .and_then(|mut s| s.query_row(params![attempt.0], |r| r.get(0)))
            .map_err(sql("session_uuid"))
            .map_err(Error::from)
        })
    }
}

/// What a claimed transaction does with its claim after its writes.
#[derive(Clone, Copy)]
pub(super) enum Release {
    /// A finished attempt needs no owner: released in the transaction that finished it.
    IfFinished,
    /// The driver gives the attempt up (a graceful stop, a kill).
    Always,
}

impl Release {
    pub(super) fn apply(self, tx: &Tx<'_>, claim: &Claim, actions: &[Action]) -> Result<(), Error> {
        let finished = actions
            .iter()
            .any(|a| matches!(a, Action::AttemptFinished { .. }));
        if matches!(self, Release::Always) || finished {
            lease::release(tx, claim)?;
        }
        Ok(())
    }
}

/// `SPADE_RUN=<session uuid>.<task>.<fence>`: the token that marks a run's processes.
pub fn run_token(session_uuid: &str, task: TaskId, fence: Fence) -> String {
    format!("{session_uuid}.{task}.{fence}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testkit::{group, op, workflow};

    fn request(dir: &Path) -> NewAttempt {
        NewAttempt {
            project_dir: dir.to_path_buf(),
            workflow: workflow(group(
                "+wf",
                vec![op("+a", "sh", "true"), op("+b", "sh", "true")],
            )),
            sources: Vec::new(),
            session_time: "2026-01-01T00:00:00Z".parse().unwrap(),
            attempt_name: None,
            params: crate::expr::JsonMap::new(),
            rerun: false,
            resume_from: None,
        }
    }

    fn first_start(actions: &[Action]) -> (TaskId, Fence) {
        actions
            .iter()
            .find_map(|a| match a {
                Action::Start(run) => Some((run.task, run.fence)),
                _ => None,
            })
            .expect("a task starts")
    }

    /// Two processes on one store: A drives the attempt, its lease lapses, B takes it over.
    /// Every later write of A is refused (`Fenced`) and changes nothing.
    #[test]
    fn a_fenced_off_owner_cannot_change_the_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("spade.db");
        let a_engine = Engine::open(&db).unwrap();
        let b_engine = Engine::open(&db).unwrap();
        let lease = Lease::default();
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t0 = 1_000_000;
        let a = a_engine.register_run_owner(now, t0, &lease).unwrap();
        let (prepared, claimed) = a_engine
            .prepare_and_claim(&request(dir.path()), now, &a.id, t0)
            .unwrap();
        let ClaimOutcome::Claimed(a_claim) = claimed else {
            panic!("{claimed:?}")
        };
        let actions = a_engine.replay_claimed(&a_claim, now, Vec::new()).unwrap();
        let (task, fence) = first_start(&actions);

        // B sees a live owner while A's lease holds (A is this very process, alive).
        let b = b_engine.register_run_owner(now, t0, &lease).unwrap();
        let busy = b_engine
            .claim_attempt(prepared.attempt, &b.id, now, t0)
            .unwrap();
        assert!(
            matches!(busy, ClaimOutcome::Busy(ref o) if o.id == a.id),
            "{busy:?}"
        );

        // A's lease lapses (A hung): B takes over, and the epoch moves on.
        let later = t0 + i64::try_from(lease.ttl.as_millis()).unwrap() + 1;
        let taken = b_engine
            .claim_attempt(prepared.attempt, &b.id, now, later)
            .unwrap();
        let ClaimOutcome::Claimed(b_claim) = taken else {
            panic!("{taken:?}")
        };
        assert_eq!(b_claim.epoch, a_claim.epoch + 1);

        // A's completion of its run is refused, and A cannot renew its lapsed lease.
        let before = a_engine.list_tasks(prepared.attempt).unwrap();
        let late = a_engine.apply_claimed(
            &a_claim,
            now,
            Event::Completed {
                task,
                fence,
                outcome: Box::new(crate::operators::succeeded()),
            },
        );
        assert!(
            matches!(late, Err(Error::Store(crate::store::Error::Fenced { .. }))),
            "{late:?}"
        );
        assert_eq!(a_engine.list_tasks(prepared.attempt).unwrap(), before);
        assert!(!a_engine.renew_owner(&a.id, later, &lease).unwrap());
        assert!(a_engine
            .stop_runs(&a_claim, now, &[(task, fence)], "stop")
            .is_err());

        // B's recovery interrupts the run A had started and starts it again as its own.
        let actions = b_engine.replay_claimed(&b_claim, now, Vec::new()).unwrap();
        let (task2, fence2) = first_start(&actions);
        assert_eq!(task2, task);
        assert_eq!(fence2.0, fence.0 + 1);
    }
}
