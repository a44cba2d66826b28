//! Keeps the owner lease of a process that drives attempts alive, and stops its drivers at
//! once if the lease was lost (another process may already drive their attempts).

use super::StopLevel;
use crate::clock::{Clock, SystemClock};
use crate::engine::{Engine, Lease, OwnerId};
use std::sync::Arc;
use tokio::sync::watch;

/// Real unix milliseconds: leases are about real time, never `--time-scale`'s virtual time.
pub fn real_ms() -> i64 {
    SystemClock.now().as_millisecond()
}

/// What one renewal found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Beat {
    Renewed,
    /// The lease had lapsed: every claim of this owner is void.
    Lost,
    /// The store could not be written (locked, I/O): retried at the next beat.
    Failed,
}

/// One renewal, on the blocking pool.
pub async fn beat(engine: &Arc<Engine>, owner: &OwnerId, lease: Lease) -> Beat {
    let engine = engine.clone();
    let owner = owner.clone();
    let result =
        tokio::task::spawn_blocking(move || engine.renew_owner(&owner, real_ms(), &lease)).await;
    match result {
        Ok(Ok(true)) => Beat::Renewed,
        Ok(Ok(false)) => Beat::Lost,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot renew the owner lease; retrying");
            Beat::Failed
        }
        Err(e) => {
            tracing::warn!(error = %e, "lease renewal panicked; retrying");
            Beat::Failed
        }
    }
}

/// Renews the lease every `lease.renew_every` until the returned future is dropped. A lost
/// lease sends `StopLevel::Now` (self-fencing: stop before the new owner starts the same
/// tasks) and ends the loop; `on_beat` sees every result (the daemon pings its watchdog).
pub async fn keep_lease(
    engine: Arc<Engine>,
    owner: OwnerId,
    lease: Lease,
    stop: watch::Sender<StopLevel>,
    on_beat: impl Fn(Beat) + Send,
) {
    let mut every = tokio::time::interval(lease.renew_every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await; // the first tick is immediate: the lease was just taken
    loop {
        every.tick().await;
        let b = beat(&engine, &owner, lease).await;
        on_beat(b);
        if b == Beat::Lost {
            tracing::error!(owner = %owner, "the owner lease lapsed; stopping every task at once");
            let _ = stop.send(StopLevel::Now);
            return;
        }
    }
}
