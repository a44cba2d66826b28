//! `spade gc` of 100,000 finished attempts, in one run: the whole sweep's time, the longest
//! single transaction (batch), and how long a concurrent engine-sized write waits meanwhile,
//! for three batch sizes on copies of the same seeded database (the default is
//! `store::gc::BATCH`).
//!
//! Each attempt has the shape of a small `sh>` workflow: a root group and two operator tasks,
//! two runs, an `echo>` log chunk, five state transitions and an edge; every tenth has a log
//! directory with one file on disk.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // a benchmark driver, not library code

use rusqlite::params;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ATTEMPTS: i64 = 100_000;
const WITH_LOGS_EVERY: i64 = 10;

fn seed(db: &Path) {
    drop(spade::store::Store::open(db).unwrap());
    let mut conn = rusqlite::Connection::open(db).unwrap();
    let tx = conn.transaction().unwrap();
    tx.execute_batch(
        "INSERT INTO projects (id, dir, created_at) VALUES (1, '/p', '2026-01-01T00:00:00Z');
         INSERT INTO revisions (id, project_id, workflow, hash, timezone, sources, created_at)
           VALUES (1, 1, 'wf', 'h', 'UTC', '[]', '2026-01-01T00:00:00Z');",
    )
    .unwrap();
    {
        let mut session = tx
            .prepare(
                "INSERT INTO sessions (id, project_id, workflow, session_time, session_uuid, created_at) \
                 VALUES (?1, 1, 'wf', ?2, ?3, ?4)",
            )
            .unwrap();
        let mut attempt = tx
            .prepare(
                "INSERT INTO attempts (id, session_id, attempt_name, revision_id, params, state, \
                 created_at, finished_at) VALUES (?1, ?1, '', 1, '{}', ?2, ?3, ?4)",
            )
            .unwrap();
        let mut task = tx
            .prepare(
                "INSERT INTO tasks (id, attempt_id, parent_id, epoch, child_index, full_name, kind, \
                 role, state, created_at, updated_at) VALUES (?1, ?2, ?3, 0, ?4, ?5, ?6, ?7, \
                 'succeeded', ?8, ?8)",
            )
            .unwrap();
        let mut run = tx
            .prepare(
                "INSERT INTO task_runs (task_id, fence, started_at, finished_at, outcome) \
                 VALUES (?1, 1, ?2, ?2, 'succeeded')",
            )
            .unwrap();
        let mut transition = tx
            .prepare(
                "INSERT INTO state_transitions (task_id, from_state, to_state, at, reason) \
                 VALUES (?1, 'ready', 'succeeded', ?2, 'done')",
            )
            .unwrap();
        let mut chunk = tx
            .prepare(
                "INSERT INTO task_logs (task_id, fence, at, chunk) VALUES (?1, 1, ?2, 'done 2026-01-01')",
            )
            .unwrap();
        let mut edge = tx
            .prepare("INSERT INTO task_edges (upstream_id, downstream_id) VALUES (?1, ?2)")
            .unwrap();
        let mut root = tx
            .prepare("UPDATE attempts SET root_task_id = ?1 WHERE id = ?2")
            .unwrap();
        let base = jiff::Timestamp::from_second(1_767_225_600).unwrap(); // 2026-01-01
        for a in 1..=ATTEMPTS {
            let at = base
                .checked_add(jiff::SignedDuration::from_secs(a * 60))
                .unwrap()
                .to_string();
            // The last attempt is recent: it holds the highest id and would be kept anyway.
            let finished = if a == ATTEMPTS {
                "2026-12-01T00:00:00Z".to_owned()
            } else {
                at.clone()
            };
            session
                .execute(params![a, at, format!("uuid-{a}"), at])
                .unwrap();
            attempt
                .execute(params![a, "succeeded", at, finished])
                .unwrap();
            let t0 = a * 3 - 2;
            task.execute(params![t0, a, None::<i64>, 0, "+wf", "group", "root", at])
                .unwrap();
            task.execute(params![
                t0 + 1,
                a,
                t0,
                0,
                "+wf+hello",
                "operator",
                "static",
                at
            ])
            .unwrap();
            task.execute(params![
                t0 + 2,
                a,
                t0,
                1,
                "+wf+after",
                "operator",
                "static",
                at
            ])
            .unwrap();
            root.execute(params![t0, a]).unwrap();
            edge.execute(params![t0 + 1, t0 + 2]).unwrap();
            for t in [t0 + 1, t0 + 2] {
                run.execute(params![t, at]).unwrap();
            }
            for t in [t0, t0 + 1, t0 + 2, t0 + 1, t0 + 2] {
                transition.execute(params![t, at]).unwrap();
            }
            chunk.execute(params![t0 + 2, at]).unwrap();
        }
    }
    tx.commit().unwrap();
    let logs = db.parent().unwrap().join("logs");
    for a in (1..=ATTEMPTS).step_by(usize::try_from(WITH_LOGS_EVERY).unwrap()) {
        let dir = logs.join(a.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(format!("{}.1.log", a * 3 - 1)),
            "hello 2026-01-01\n",
        )
        .unwrap();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn percentile(v: &mut [f64], p: usize) -> f64 {
    v.sort_by(f64::total_cmp);
    v[(v.len() * p / 100).min(v.len() - 1)]
}

fn main() {
    let seeded = tempfile::tempdir().unwrap();
    let t = Instant::now();
    seed(&seeded.path().join("spade.db"));
    println!(
        "seeded {ATTEMPTS} finished attempts (3 tasks, 2 runs, 5 transitions each; a log file for every {WITH_LOGS_EVERY}th) in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let before: jiff::Timestamp = "2026-06-01T00:00:00Z".parse().unwrap();
    let mut baseline = None;
    for batch in [100, 200, 500, 2000] {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(seeded.path(), dir.path());
        let db = dir.path().join("spade.db");
        let engine = Arc::new(spade::engine::Engine::open(&db).unwrap());
        // A writer of the size of an engine transition, as often as it can, to see how long the
        // engine would wait for the store while the sweep runs.
        let done = Arc::new(AtomicBool::new(false));
        let probe = {
            let engine = engine.clone();
            let done = done.clone();
            std::thread::spawn(move || {
                let mut waits = Vec::new();
                while !done.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    engine
                        .store()
                        .write("probe", |tx| {
                            tx.execute(
                                "UPDATE projects SET created_at = created_at WHERE id = 1",
                                [],
                            )
                            .map_err(spade::store::sql("probe"))
                        })
                        .unwrap();
                    waits.push(t.elapsed().as_secs_f64() * 1000.0);
                    std::thread::sleep(Duration::from_millis(1));
                }
                waits
            })
        };
        let summary = spade::daemon::gc::sweep(
            &engine,
            dir.path(),
            spade::ids::ProjectId(1),
            before,
            false,
            batch,
            &|| false,
        )
        .unwrap();
        done.store(true, Ordering::Relaxed);
        let mut waits = probe.join().unwrap();
        assert_eq!(summary.total.attempts, u64::try_from(ATTEMPTS - 1).unwrap());
        assert_eq!(
            summary.total.log_files,
            u64::try_from(ATTEMPTS / WITH_LOGS_EVERY).unwrap()
        );
        let total = summary.took_ms;
        let base = *baseline.get_or_insert(total);
        println!(
            "batch {batch:>5}: {} attempts, {} tasks, {} log files in {:.2} s ({:.1} µs per attempt, {:.2}x of batch 100); {} transactions, longest {:.1} ms; a concurrent write waited p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms ({} writes)",
            summary.total.attempts,
            summary.total.tasks,
            summary.total.log_files,
            total / 1000.0,
            total * 1000.0 / summary.total.attempts as f64,
            total / base,
            summary.batches,
            summary.longest_batch_ms,
            percentile(&mut waits, 50),
            percentile(&mut waits, 99),
            percentile(&mut waits, 100),
            waits.len(),
        );
        let left: i64 = engine
            .store()
            .read("left", |tx| {
                tx.query_row("SELECT COUNT(*) FROM tasks", [], |r| r.get(0))
                    .map_err(spade::store::sql("left"))
            })
            .unwrap();
        assert_eq!(left, 3, "the newest attempt's tasks stay");
    }
}
