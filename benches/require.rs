//! `require>` wake-up latency, in one run of the release binary: the delay from the end of a
//! required attempt to the start of the requiring workflow's next task, read from the
//! timestamps the store keeps, against Digdag's first poll interval (1 s). Inside one attempt
//! the next task starts in the transaction that finishes the previous one (same timestamp), so
//! that step is printed too as the floor: it must stay 0.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // a benchmark driver, not library code

use std::path::Path;
use std::process::{Command, Stdio};

const RUNS: usize = 30;

fn spade_bin() -> std::ffi::OsString {
    std::env::var_os("SPADE_BENCH_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_spade").into())
}

fn ms(from: &str, to: &str) -> f64 {
    let a: jiff::Timestamp = from.parse().unwrap();
    let b: jiff::Timestamp = to.parse().unwrap();
    b.duration_since(a).as_secs_f64() * 1000.0
}

fn summary(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    format!(
        "median {:.2} ms, p90 {:.2} ms, max {:.2} ms",
        v[v.len() / 2],
        v[v.len() * 9 / 10],
        v[v.len() - 1]
    )
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("load.dig"), "+a:\n  echo>: load\n").unwrap();
    std::fs::write(
        p.join("report.dig"),
        "+first:\n  echo>: first\n+req:\n  require>: load\n+after:\n  echo>: after\n",
    )
    .unwrap();
    for i in 0..RUNS {
        let session = format!("2026-01-{:02}", i % 28 + 1);
        let hour = format!("{session}T{:02}:00:00Z", i / 28);
        let status = Command::new(spade_bin())
            .args(["run", "report", "--session", &hour, "--project"])
            .arg(p)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    }
    let db = rusqlite::Connection::open(Path::new(p).join(".spade/spade.db")).unwrap();
    let started = |attempt: i64, name: &str| -> String {
        db.query_row(
            "SELECT MIN(r.started_at) FROM tasks t JOIN task_runs r ON r.task_id = t.id \
             WHERE t.attempt_id = ?1 AND t.full_name = ?2",
            rusqlite::params![attempt, name],
            |r| r.get(0),
        )
        .unwrap()
    };
    let finished = |attempt: i64, name: &str| -> String {
        db.query_row(
            "SELECT MAX(r.finished_at) FROM tasks t JOIN task_runs r ON r.task_id = t.id \
             WHERE t.attempt_id = ?1 AND t.full_name = ?2",
            rusqlite::params![attempt, name],
            |r| r.get(0),
        )
        .unwrap()
    };
    let mut stmt = db
        .prepare(
            "SELECT w.attempt_id, a.finished_at FROM require_waits w \
             JOIN attempts a ON a.id = w.target_attempt_id WHERE w.kicked = 1",
        )
        .unwrap();
    let waits: Vec<(i64, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(waits.len(), RUNS);
    let wake: Vec<f64> = waits
        .iter()
        .map(|(a, done)| ms(done, &started(*a, "+report+after")))
        .collect();
    let step: Vec<f64> = waits
        .iter()
        .map(|(a, _)| ms(&finished(*a, "+report+first"), &started(*a, "+report+req")))
        .collect();
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "require> wake-up (required attempt finished -> next task started): {}",
        summary(wake.clone())
    );
    println!(
        "in-attempt step (task finished -> next task started):            {}",
        summary(step.clone())
    );
    println!(
        "median wake-up is {:.4}x Digdag's first poll interval (1 s); goal under 10 ms",
        median(&wake) / 1000.0
    );
}
