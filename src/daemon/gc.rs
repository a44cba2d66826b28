//! Retention in the daemon: the sweep that `POST /api/gc` (`spade gc`) and the `gc_older_than`
//! policy both run. It deletes a batch of old finished attempts per transaction
//! (`store::gc::batch`), then their log directories once the batch committed, and last the log
//! directories of attempts that no longer exist, so a crash between a commit and the removal
//! of its directories leaves nothing the next sweep does not find.

use crate::clock::Clock;
use crate::engine::Engine;
use crate::executor::StopLevel;
use crate::ids::{AttemptId, ProjectId};
use crate::store::gc::{self, Scope};
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What the forms of a retention age are, for messages.
pub const AGE_FORMS: &str =
    "a duration such as 90d, 12h, 30m or 1d12h (units d, h, m and s, largest first), more than zero";

/// Parses a retention age (`90d`) with the one duration parser of `.dig` files; zero is
/// refused (it would delete every finished attempt, a typo more often than a wish).
pub fn parse_age(text: &str) -> Option<Duration> {
    crate::dig::duration::parse(text).filter(|d| !d.is_zero())
}

/// The policy of `gc_older_than` and `gc_interval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub older_than: Duration,
    pub every: Duration,
}

/// Counts of one workflow (or of the whole sweep).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub attempts: u64,
    pub sessions: u64,
    pub tasks: u64,
    pub log_files: u64,
    pub log_bytes: u64,
    /// The earliest and latest finish among the removed attempts.
    pub oldest_finished_at: Option<String>,
    pub newest_finished_at: Option<String>,
}

impl Counts {
    fn add(&mut self, r: &gc::Removed, logs: Usage) {
        self.attempts += 1;
        self.sessions += u64::from(r.session_removed);
        self.tasks += r.tasks;
        self.add_logs(logs);
        if self
            .oldest_finished_at
            .as_ref()
            .is_none_or(|o| r.finished_at < *o)
        {
            self.oldest_finished_at = Some(r.finished_at.clone());
        }
        if self
            .newest_finished_at
            .as_ref()
            .is_none_or(|n| r.finished_at > *n)
        {
            self.newest_finished_at = Some(r.finished_at.clone());
        }
    }

    fn add_logs(&mut self, logs: Usage) {
        self.log_files += logs.files;
        self.log_bytes += logs.bytes;
    }
}

/// What a sweep removed, or with `dry_run` would remove.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub dry_run: bool,
    /// The cut-off: attempts that finished before it went.
    pub before: String,
    #[serde(flatten)]
    pub total: Counts,
    /// By workflow name.
    pub workflows: BTreeMap<String, Counts>,
    /// Log directories of attempts that no longer exist (a crash after a commit, or a database
    /// replaced under its logs), removed with their files (counted in the totals).
    pub orphan_log_dirs: u64,
    /// Old finished attempts kept: needed by a `require>` of a kept attempt, or holding the
    /// highest id.
    pub kept: u64,
    /// Transactions, and the longest one in milliseconds.
    pub batches: u64,
    pub longest_batch_ms: f64,
    pub took_ms: f64,
    /// Directories that could not be removed (their paths; the sweep goes on without them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// Files and bytes under a directory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Usage {
    files: u64,
    bytes: u64,
}

/// Deeper than any run directory gets (operators write files, not trees).
const MAX_WALK_DEPTH: usize = 16;

fn usage(dir: &Path, depth: usize) -> Usage {
    let mut u = Usage::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return u;
    };
    for entry in entries.flatten() {
        // symlink_metadata: a link is counted as itself and never followed out of the tree.
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if meta.is_dir() {
            if depth < MAX_WALK_DEPTH {
                let inner = usage(&entry.path(), depth + 1);
                u.files += inner.files;
                u.bytes += inner.bytes;
            }
        } else {
            u.files += 1;
            u.bytes += meta.len();
        }
    }
    u
}

/// Measures the run directory and (unless a dry run) removes it; a missing one is nothing.
fn take_dir(dir: &Path, dry_run: bool, errors: &mut Vec<String>) -> Usage {
    if !dir.exists() {
        return Usage::default();
    }
    let u = usage(dir, 0);
    if !dry_run {
        if let Err(e) = std::fs::remove_dir_all(dir) {
            if e.kind() == std::io::ErrorKind::NotFound {
                return Usage::default();
            }
            tracing::warn!(dir = %dir.display(), error = %e, "gc cannot remove a log directory");
            errors.push(format!("{}: {e}", dir.display()));
            return Usage::default();
        }
    }
    u
}

/// The attempt ids that have a directory under `<state>/logs`.
fn log_dir_ids(state_dir: &Path) -> Vec<i64> {
    let Ok(entries) = std::fs::read_dir(state_dir.join("logs")) else {
        return Vec::new();
    };
    let mut ids: Vec<i64> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str()?.parse::<i64>().ok())
        .filter(|id| *id > 0)
        .collect();
    ids.sort_unstable();
    ids
}

/// Copies what a batch wrote from the WAL into the database on a connection of its own, outside
/// the store's lock, so the commit of the next write (the engine's or gc's) rarely finds the
/// WAL over SQLite's auto-checkpoint size and does it while holding the lock: those
/// checkpoints were the 250-360 ms transactions of the gc benchmark.
struct Checkpointer(Option<rusqlite::Connection>);

impl Checkpointer {
    fn open(db: &Path) -> Checkpointer {
        match rusqlite::Connection::open(db) {
            Ok(c) => Checkpointer(Some(c)),
            Err(e) => {
                tracing::debug!(error = %e, "gc cannot open a checkpoint connection; SQLite checkpoints on its own");
                Checkpointer(None)
            }
        }
    }

    /// `PASSIVE` waits for no reader or writer; what it cannot copy now is copied later.
    fn run(&self) {
        if let Some(c) = &self.0 {
            if let Err(e) = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::debug!(error = %e, "gc checkpoint skipped");
            }
        }
    }
}

static SWEEPING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs one sweep of `project`'s attempts that finished before `before`. Blocking: call it
/// on the blocking pool. Each batch is one transaction of at most `batch` attempts; between
/// batches the sweep ends early when `stopping()` says so (the daemon is stopping), and the
/// next sweep continues.
pub fn sweep(
    engine: &Engine,
    state_dir: &Path,
    project: ProjectId,
    before: Timestamp,
    dry_run: bool,
    batch: usize,
    stopping: &dyn Fn() -> bool,
) -> Result<Summary, crate::engine::Error> {
    // One sweep at a time in a process (the API's and the policy's would race for the same
    // directories); a poisoned lock only means an earlier sweep panicked.
    let _one = SWEEPING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let started = Instant::now();
    let scope = Scope { project, before };
    let mut summary = Summary {
        dry_run,
        before: before.to_string(),
        ..Summary::default()
    };
    let mut gone: BTreeSet<i64> = BTreeSet::new();
    let checkpointer = (!dry_run).then(|| Checkpointer::open(engine.store().path()));
    let mut after = 0;
    let mut longest = Duration::ZERO;
    loop {
        let t = Instant::now();
        let b = if dry_run {
            engine.store().read("gc_dry_run", |tx| {
                gc::batch(tx, &scope, after, batch, true, &gone)
            })?
        } else {
            engine
                .store()
                .write("gc", |tx| gc::batch(tx, &scope, after, batch, false, &gone))?
        };
        longest = longest.max(t.elapsed());
        summary.batches += 1;
        if let Some(c) = &checkpointer {
            c.run();
        }
        summary.kept += b.kept;
        // Committed: the directories go now (a crash here leaves orphans, found below next time).
        for r in &b.removed {
            let logs = take_dir(
                &crate::executor::run_dir(state_dir, r.id),
                dry_run,
                &mut summary.errors,
            );
            summary.total.add(r, logs);
            summary
                .workflows
                .entry(r.workflow.clone())
                .or_default()
                .add(r, logs);
            if dry_run {
                gone.insert(r.id.0);
            }
        }
        match b.next {
            Some(n) if !stopping() => after = n,
            _ => break,
        }
    }
    let on_disk = log_dir_ids(state_dir);
    let orphans = engine
        .store()
        .read("gc_orphans", |tx| gc::orphans(tx, &on_disk))?;
    for id in orphans {
        let logs = take_dir(
            &crate::executor::run_dir(state_dir, AttemptId(id)),
            dry_run,
            &mut summary.errors,
        );
        summary.orphan_log_dirs += 1;
        summary.total.add_logs(logs);
    }
    summary.longest_batch_ms = longest.as_secs_f64() * 1000.0;
    summary.took_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(summary)
}

/// The cut-off `older_than` before `now`.
pub fn cutoff(now: Timestamp, older_than: Duration) -> Option<Timestamp> {
    let age = SignedDuration::try_from(older_than).ok()?;
    now.checked_sub(age).ok()
}

/// Logs a sweep's summary line.
pub fn log_summary(s: &Summary, why: &str) {
    tracing::info!(
        attempts = s.total.attempts,
        sessions = s.total.sessions,
        tasks = s.total.tasks,
        log_files = s.total.log_files,
        log_bytes = s.total.log_bytes,
        orphan_log_dirs = s.orphan_log_dirs,
        kept = s.kept,
        before = %s.before,
        batches = s.batches,
        longest_batch_ms = s.longest_batch_ms,
        took_ms = s.took_ms,
        dry_run = s.dry_run,
        "gc ({why}): removed {} attempt(s) that finished before {}",
        s.total.attempts,
        s.before
    );
}

/// What the policy loop needs.
pub struct Sweeper {
    pub engine: Arc<Engine>,
    pub clock: Arc<dyn Clock>,
    pub project: ProjectId,
    pub state_dir: PathBuf,
    pub policy: Policy,
    pub stop: watch::Receiver<StopLevel>,
    /// Counts removed attempts for `/metrics`.
    pub metrics: Arc<crate::api::metrics::Metrics>,
}

impl Sweeper {
    /// Sweeps at start and then every `policy.every` on the daemon's clock, until a stop.
    pub async fn run(mut self) {
        let mut next = self.clock.now();
        loop {
            tokio::select! {
                () = self.clock.sleep_until(next) => {}
                changed = self.stop.changed() => {
                    if changed.is_err() || *self.stop.borrow() != StopLevel::Run {
                        return;
                    }
                    continue;
                }
            }
            let now = self.clock.now();
            if let Some(before) = cutoff(now, self.policy.older_than) {
                let engine = self.engine.clone();
                let dir = self.state_dir.clone();
                let project = self.project;
                let stop = self.stop.clone();
                let swept = crate::daemon::blocking(move || {
                    let stopping = || *stop.borrow() != StopLevel::Run;
                    sweep(&engine, &dir, project, before, false, gc::BATCH, &stopping)
                })
                .await;
                match swept {
                    Ok(s) => {
                        self.metrics.gc_removed(s.total.attempts);
                        log_summary(&s, "policy");
                    }
                    Err(e) => {
                        tracing::error!(error = %crate::cli::error_chain(&e), "gc failed; trying again at the next interval");
                    }
                }
            }
            let every = SignedDuration::try_from(self.policy.every).unwrap_or(SignedDuration::MAX);
            next = now.checked_add(every).unwrap_or(Timestamp::MAX);
        }
    }
}
