//! Owners and leases: which process drives which attempt, and the fencing token that keeps a
//! process that lost an attempt from changing it.
//!
//! Every process that drives attempts registers one `owners` row and renews its lease every
//! [`Lease::renew_every`]. Claiming an attempt sets `attempts.owner_id` and increments
//! `attempts.owner_epoch` in one statement; the pair `(owner, epoch)` is the [`Claim`] every
//! engine transaction of the driver checks first ([`check_claim`]), so writes of a fenced-off
//! driver change nothing. An attempt whose owner is alive is never claimed by anyone else.
//!
//! An owner is dead when its lease lapsed, or, on this host and in this boot, when its pid is
//! gone or names another process (the start time differs). On another host only the lease
//! counts: that is the rule several daemons on one shared database will use.
//! Lease times are real unix milliseconds, passed in by the caller (never the virtual clock of
//! `--time-scale`); on PostgreSQL the comparisons move into SQL with `now()`.

use super::{sql, Error, Tx};
use crate::host::{self, Identity};
use crate::ids::{AttemptId, ProjectId};
use rusqlite::{params, OptionalExtension};
use std::time::Duration;

/// A registered owner's id (a uuid, new at every process start).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OwnerId(pub String);

impl std::fmt::Display for OwnerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What kind of process an owner is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerKind {
    /// `spade run`: drives one attempt in the foreground.
    Run,
    /// `spade serve`: the daemon.
    Serve,
}

impl OwnerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OwnerKind::Run => "run",
            OwnerKind::Serve => "serve",
        }
    }

    fn parse(s: &str) -> OwnerKind {
        if s == "serve" {
            OwnerKind::Serve
        } else {
            OwnerKind::Run
        }
    }
}

/// Lease timing. The defaults suit one host: liveness there is decided by the pid at once,
/// and the lease only matters for a process that hangs or is stopped.
#[derive(Clone, Copy, Debug)]
pub struct Lease {
    /// How long a renewal keeps the lease.
    pub ttl: Duration,
    /// How often the owner renews (well below `ttl`).
    pub renew_every: Duration,
}

impl Default for Lease {
    fn default() -> Lease {
        Lease {
            ttl: Duration::from_secs(60),
            renew_every: Duration::from_secs(10),
        }
    }
}

/// An owner row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub id: OwnerId,
    pub kind: OwnerKind,
    pub host: String,
    pub host_id: String,
    pub boot_id: String,
    pub pid: u32,
    pub pid_start: u64,
    pub started_at: String,
    pub heartbeat_ms: i64,
    pub lease_until_ms: i64,
}

impl Owner {
    /// Whether the owner still lives, judged from this host at real time `now_ms`.
    pub fn is_alive(&self, here: &Identity, now_ms: i64) -> bool {
        if self.host_id == here.host_id
            && (self.boot_id != here.boot_id || !host::is_same_process(self.pid, self.pid_start))
        {
            return false;
        }
        self.lease_until_ms >= now_ms
    }

    /// `pid 4242 on HOST since 2026-12-01T20:00:00Z`.
    pub fn describe(&self) -> String {
        format!(
            "pid {} on {} since {}",
            self.pid, self.host, self.started_at
        )
    }
}

/// The right of one owner to drive one attempt: `epoch` is the fencing token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub attempt: AttemptId,
    pub owner: OwnerId,
    pub epoch: i64,
}

/// What a claim attempt found.
#[derive(Clone, Debug)]
pub enum ClaimOutcome {
    /// The attempt is ours now (it was free, its owner was dead, or it was ours already).
    Claimed(Claim),
    /// A live owner drives it.
    Busy(Owner),
    /// The attempt is finished: there is nothing to drive.
    Finished,
}

/// Registers this process as an owner.
pub fn register(
    tx: &Tx<'_>,
    kind: OwnerKind,
    project: Option<ProjectId>,
    now: jiff::Timestamp,
    now_ms: i64,
    lease: &Lease,
) -> Result<Owner, Error> {
    let here = host::identity();
    let pid = host::own_pid();
    let owner = Owner {
        id: OwnerId(uuid::Uuid::new_v4().to_string()),
        kind,
        host: here.host.clone(),
        host_id: here.host_id.clone(),
        boot_id: here.boot_id.clone(),
        pid,
        pid_start: host::process_start(pid).unwrap_or(0),
        // Whole seconds: the time is for messages (`... since 2026-12-01T20:48:23Z`).
        started_at: jiff::Timestamp::from_second(now.as_second())
            .unwrap_or(now)
            .to_string(),
        heartbeat_ms: now_ms,
        lease_until_ms: now_ms.saturating_add(ttl_ms(lease)),
    };
    tx.prepare_cached(
        "INSERT INTO owners (id, kind, host, host_id, boot_id, pid, pid_start, project_id, \
         started_at, heartbeat_ms, lease_until_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )
    .and_then(|mut s| {
        s.execute(params![
            owner.id.0,
            kind.as_str(),
            owner.host,
            owner.host_id,
            owner.boot_id,
            owner.pid,
            i64::try_from(owner.pid_start).unwrap_or(i64::MAX),
            project.map(|p| p.0),
            owner.started_at,
            owner.heartbeat_ms,
            owner.lease_until_ms
        ])
    })
    .map_err(sql("register_owner"))?;
    Ok(owner)
}

fn ttl_ms(lease: &Lease) -> i64 {
    i64::try_from(lease.ttl.as_millis()).unwrap_or(i64::MAX)
}

/// Renews the lease. `false` means it had lapsed (or the row is gone): the caller has lost
/// every attempt it drove and must stop (a lapsed lease is never revived).
pub fn renew(tx: &Tx<'_>, owner: &OwnerId, now_ms: i64, lease: &Lease) -> Result<bool, Error> {
    let n = tx
        .prepare_cached(
            "UPDATE owners SET heartbeat_ms = ?2, lease_until_ms = ?3 \
             WHERE id = ?1 AND lease_until_ms >= ?2",
        )
        .and_then(|mut s| {
            s.execute(params![
                owner.0,
                now_ms,
                now_ms.saturating_add(ttl_ms(lease))
            ])
        })
        .map_err(sql("renew_lease"))?;
    Ok(n == 1)
}

/// Marks the owner as stopping (shown to others while it winds down).
pub fn mark_stopping(tx: &Tx<'_>, owner: &OwnerId) -> Result<(), Error> {
    tx.execute(
        "UPDATE owners SET stopping = 1 WHERE id = ?1",
        params![owner.0],
    )
    .map_err(sql("mark_stopping"))?;
    Ok(())
}

/// Removes the owner row; attempts still pointing at it become free (`ON DELETE SET NULL`).
pub fn unregister(tx: &Tx<'_>, owner: &OwnerId) -> Result<(), Error> {
    tx.execute("DELETE FROM owners WHERE id = ?1", params![owner.0])
        .map_err(sql("unregister_owner"))?;
    Ok(())
}

const OWNER_COLUMNS: &str = "id, kind, host, host_id, boot_id, pid, pid_start, started_at, \
                             heartbeat_ms, lease_until_ms";

fn owner_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Owner> {
    Ok(Owner {
        id: OwnerId(r.get(0)?),
        kind: OwnerKind::parse(&r.get::<_, String>(1)?),
        host: r.get(2)?,
        host_id: r.get(3)?,
        boot_id: r.get(4)?,
        pid: r.get(5)?,
        pid_start: u64::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
        started_at: r.get(7)?,
        heartbeat_ms: r.get(8)?,
        lease_until_ms: r.get(9)?,
    })
}

pub fn load_owner(tx: &Tx<'_>, owner: &OwnerId) -> Result<Option<Owner>, Error> {
    tx.prepare_cached(&format!("SELECT {OWNER_COLUMNS} FROM owners WHERE id = ?1"))
        .and_then(|mut s| s.query_row(params![owner.0], owner_from_row).optional())
        .map_err(sql("load_owner"))
}

/// A live `spade serve` owner other than `me`, if any.
pub fn live_daemon(tx: &Tx<'_>, me: Option<&OwnerId>, now_ms: i64) -> Result<Option<Owner>, Error> {
    let mut stmt = tx
        .prepare_cached(&format!(
            "SELECT {OWNER_COLUMNS} FROM owners WHERE kind = 'serve' ORDER BY started_at"
        ))
        .map_err(sql("live_daemon"))?;
    let owners = stmt
        .query_map([], owner_from_row)
        .map_err(sql("live_daemon"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql("live_daemon"))?;
    let here = host::identity();
    Ok(owners
        .into_iter()
        .find(|o| Some(&o.id) != me && o.is_alive(here, now_ms)))
}

/// Deletes the rows of owners that are dead, so their attempts become free to claim.
pub fn forget_dead_owners(tx: &Tx<'_>, now_ms: i64) -> Result<usize, Error> {
    let mut stmt = tx
        .prepare_cached(&format!("SELECT {OWNER_COLUMNS} FROM owners"))
        .map_err(sql("dead_owners"))?;
    let owners = stmt
        .query_map([], owner_from_row)
        .map_err(sql("dead_owners"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql("dead_owners"))?;
    let here = host::identity();
    let mut n = 0;
    for o in owners.iter().filter(|o| !o.is_alive(here, now_ms)) {
        tracing::info!(owner = %o.id, who = %o.describe(), "forgetting a dead owner");
        unregister(tx, &o.id)?;
        n += 1;
    }
    Ok(n)
}

/// Claims `attempt` for `me` unless a live owner drives it. Taking over from a dead owner
/// increments the epoch, which fences off anything the old owner might still write.
pub fn claim(
    tx: &Tx<'_>,
    attempt: AttemptId,
    me: &OwnerId,
    now: jiff::Timestamp,
    now_ms: i64,
) -> Result<ClaimOutcome, Error> {
    let row: Option<(String, Option<String>, i64)> = tx
        .prepare_cached("SELECT state, owner_id, owner_epoch FROM attempts WHERE id = ?1")
        .and_then(|mut s| {
            s.query_row(params![attempt.0], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
        })
        .map_err(sql("claim_attempt"))?;
    let Some((state, owner, epoch)) = row else {
        return Err(Error::NotFound {
            what: "attempt",
            id: attempt.0,
        });
    };
    if state != "running" {
        return Ok(ClaimOutcome::Finished);
    }
    if owner.as_deref() == Some(me.0.as_str()) {
        return Ok(ClaimOutcome::Claimed(Claim {
            attempt,
            owner: me.clone(),
            epoch,
        }));
    }
    if let Some(other) = owner {
        if let Some(o) = load_owner(tx, &OwnerId(other))? {
            if o.is_alive(host::identity(), now_ms) {
                return Ok(ClaimOutcome::Busy(o));
            }
            tracing::info!(%attempt, previous = %o.describe(), "taking over an attempt whose owner is dead");
        }
    }
    let epoch: i64 = tx
        .prepare_cached(
            "UPDATE attempts SET owner_id = ?2, owner_epoch = owner_epoch + 1, owned_since = ?3 \
             WHERE id = ?1 RETURNING owner_epoch",
        )
        .and_then(|mut s| s.query_row(params![attempt.0, me.0, now.to_string()], |r| r.get(0)))
        .map_err(sql("claim_attempt"))?;
    Ok(ClaimOutcome::Claimed(Claim {
        attempt,
        owner: me.clone(),
        epoch,
    }))
}

/// The fencing check every transaction of a driver starts with.
pub fn check_claim(tx: &Tx<'_>, claim: &Claim) -> Result<(), Error> {
    let row: Option<(Option<String>, i64)> = tx
        .prepare_cached("SELECT owner_id, owner_epoch FROM attempts WHERE id = ?1")
        .and_then(|mut s| {
            s.query_row(params![claim.attempt.0], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(sql("check_claim"))?;
    match row {
        Some((Some(owner), epoch)) if owner == claim.owner.0 && epoch == claim.epoch => Ok(()),
        _ => Err(Error::Fenced {
            attempt: claim.attempt.0,
        }),
    }
}

/// Gives the attempt up (finished, or stopped gracefully): anyone may claim it next.
pub fn release(tx: &Tx<'_>, claim: &Claim) -> Result<(), Error> {
    tx.prepare_cached(
        "UPDATE attempts SET owner_id = NULL WHERE id = ?1 AND owner_id = ?2 AND owner_epoch = ?3",
    )
    .and_then(|mut s| s.execute(params![claim.attempt.0, claim.owner.0, claim.epoch]))
    .map_err(sql("release_attempt"))?;
    Ok(())
}

/// Running attempts of `project` that nobody alive drives (oldest first).
pub fn claimable(tx: &Tx<'_>, project: ProjectId, now_ms: i64) -> Result<Vec<AttemptId>, Error> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT a.id, a.owner_id FROM attempts a JOIN sessions s ON s.id = a.session_id \
             WHERE a.state = 'running' AND s.project_id = ?1 ORDER BY a.id",
        )
        .map_err(sql("claimable"))?;
    let rows = stmt
        .query_map(params![project.0], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?))
        })
        .map_err(sql("claimable"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql("claimable"))?;
    let here = host::identity();
    let mut out = Vec::new();
    for (id, owner) in rows {
        let free = match owner {
            None => true,
            Some(o) => match load_owner(tx, &OwnerId(o))? {
                None => true,
                Some(o) => !o.is_alive(here, now_ms),
            },
        };
        if free {
            out.push(AttemptId(id));
        }
    }
    Ok(out)
}

/// The owner driving `attempt` now, if it is alive.
pub fn live_owner_of(tx: &Tx<'_>, attempt: AttemptId, now_ms: i64) -> Result<Option<Owner>, Error> {
    let owner: Option<Option<String>> = tx
        .prepare_cached("SELECT owner_id FROM attempts WHERE id = ?1")
        .and_then(|mut s| s.query_row(params![attempt.0], |r| r.get(0)).optional())
        .map_err(sql("live_owner_of"))?;
    let Some(Some(owner)) = owner else {
        return Ok(None);
    };
    Ok(load_owner(tx, &OwnerId(owner))?.filter(|o| o.is_alive(host::identity(), now_ms)))
}

/// Asks for `attempt` to be killed by whoever drives it (a flag its owner reads at its next
/// heartbeat). Returns the live owner, if there is one.
pub fn request_cancel(
    tx: &Tx<'_>,
    attempt: AttemptId,
    now_ms: i64,
) -> Result<Option<Owner>, Error> {
    tx.prepare_cached(
        "UPDATE attempts SET cancel_requested = 1 WHERE id = ?1 AND state = 'running'",
    )
    .and_then(|mut s| s.execute(params![attempt.0]))
    .map_err(sql("request_cancel"))?;
    live_owner_of(tx, attempt, now_ms)
}

/// Running attempts of `owner` whose kill was asked for.
pub fn cancel_requested(tx: &Tx<'_>, owner: &OwnerId) -> Result<Vec<AttemptId>, Error> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT id FROM attempts WHERE owner_id = ?1 AND cancel_requested = 1 \
             AND state = 'running' ORDER BY id",
        )
        .map_err(sql("cancel_requested"))?;
    let ids = stmt
        .query_map(params![owner.0], |r| r.get::<_, i64>(0))
        .map_err(sql("cancel_requested"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql("cancel_requested"))?;
    Ok(ids.into_iter().map(AttemptId).collect())
}
