//! Daemon benchmark: a project of 1,000 workflows, each on a one-minute schedule, served by the
//! release binary on real time. It prints
//! - the delay from each slot's due time to its first task starting (p50, p99, max), with the
//!   cost of one `spade run` of the same workflow in this run for scale;
//! - the daemon's CPU time while idle between slots;
//! - its peak memory.
//!
//! `SPADE_BENCH_WORKFLOWS` changes the number of workflows; `SPADE_BENCH_FIRST` the task
//! (`echo` by default, `sh` for a `sh>: true`).

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // a benchmark driver, not library code

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn spade_bin() -> std::ffi::OsString {
    std::env::var_os("SPADE_BENCH_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_spade").into())
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `utime + stime` of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn query(db: &Path, sql: &str) -> Vec<(String, String)> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn count(db: &Path, sql: &str) -> usize {
    if !db.exists() {
        return 0;
    }
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return 0;
    };
    let _ = conn.busy_timeout(Duration::from_secs(5));
    conn.query_row(sql, [], |r| r.get::<_, i64>(0))
        .map(|n| usize::try_from(n).unwrap_or(0))
        .unwrap_or(0)
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let n: usize = std::env::var("SPADE_BENCH_WORKFLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let task = match std::env::var("SPADE_BENCH_FIRST").as_deref() {
        Ok("sh") => "sh>: 'true'",
        _ => "echo>: ${session_time}",
    };
    let dir = tempfile::tempdir().unwrap();
    for i in 0..n {
        std::fs::write(
            dir.path().join(format!("wf{i:04}.dig")),
            format!("timezone: UTC\nschedule:\n  minutes_interval>: 1\n+first:\n  {task}\n+second:\n  echo>: done\n"),
        )
        .unwrap();
    }
    // For scale: one foreground `spade run` of the same workflow, whole process.
    let run_started = Instant::now();
    let ok = Command::new(spade_bin())
        .args(["run", "wf0000", "--session", "2026-01-01", "--project"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    let one_run = run_started.elapsed();
    assert!(ok);
    let db = dir.path().join("bench.db");
    // Real time, starting 2 s before a minute boundary so the daemon is armed when it comes.
    let now = jiff::Timestamp::now();
    let boundary = now.as_second() - now.as_second().rem_euclid(60) + 60;
    let lead = boundary - now.as_second();
    if lead < 5 {
        std::thread::sleep(Duration::from_secs(u64::try_from(lead).unwrap_or(0) + 1));
    }
    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    let daemon = Daemon(
        Command::new(spade_bin())
            .arg("serve")
            .arg(dir.path())
            .arg("--db")
            .arg(&db)
            .env("SPADE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let pid = daemon.0.id();
    let loaded = Instant::now();
    wait_for("the schedules", Duration::from_secs(60), || {
        count(&db, "SELECT COUNT(*) FROM schedules") == n
    });
    let armed = loaded.elapsed();
    // Two slots: every session of both finished.
    wait_for(
        "two slots of every workflow",
        Duration::from_secs(200),
        || {
            count(
                &db,
                "SELECT COUNT(*) FROM attempts WHERE state = 'succeeded'",
            ) >= 2 * n
        },
    );
    // Idle: the next slot is tens of seconds away.
    let idle_from = Instant::now();
    let ticks_before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(15));
    let ticks_after = cpu_ticks(pid);
    let idle = idle_from.elapsed();
    let hz = 100.0; // USER_HZ on Linux
    let idle_cpu_ms = (ticks_after - ticks_before) as f64 * 1000.0 / hz;
    let rss = status_kib(pid, "VmHWM:");
    drop(daemon);

    let rows = query(
        &db,
        "SELECT s.session_time, MIN(r.started_at) FROM sessions s \
         JOIN attempts a ON a.session_id = s.id JOIN tasks t ON t.attempt_id = a.id \
         JOIN task_runs r ON r.task_id = t.id GROUP BY s.id",
    );
    let mut delays: Vec<f64> = rows
        .iter()
        .map(|(session, started)| {
            let s: jiff::Timestamp = session.parse().unwrap();
            let t: jiff::Timestamp = started.parse().unwrap();
            t.duration_since(s).as_secs_f64() * 1000.0
        })
        .collect();
    delays.sort_by(f64::total_cmp);
    println!(
        "scheduler: {n} workflows on a one-minute schedule, {} sessions",
        delays.len()
    );
    println!(
        "  load and arm: {:.0} ms; one foreground `spade run` of one of them: {:.1} ms",
        armed.as_secs_f64() * 1000.0,
        one_run.as_secs_f64() * 1000.0
    );
    println!(
        "  due -> first task started: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (goal: p99 < 20 ms)",
        percentile(&delays, 0.5),
        percentile(&delays, 0.99),
        delays.last().copied().unwrap_or(0.0)
    );
    println!(
        "  idle between slots: {idle_cpu_ms:.0} ms of CPU in {:.1} s (goal: none measurable)",
        idle.as_secs_f64()
    );
    println!(
        "  peak memory (VmHWM): {:.1} MiB (goal: < 50 MiB)",
        rss as f64 / 1024.0
    );
}
