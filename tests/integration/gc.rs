//! `spade gc` and the daemon's `gc_older_than` policy through the real binary against a real
//! daemon: a dry run lists and deletes nothing, a real one deletes old finished attempts with
//! their tasks, runs, logs and sessions and keeps running and newer ones, a leftover log
//! directory is found again, a deleted session starts again, the policy sweeps on the daemon's
//! clock, and bad durations are refused with the accepted forms.
//!
//! Old attempts are made by `spade run` under the hidden `--time-origin` (their finish is in
//! January), and the daemon runs at a later `--time-origin`, so no test depends on today's date.

// Test helpers: a failed unwrap is a failed test here.
#![allow(clippy::unwrap_used)]

use crate::api::{Daemon, LONG};
use crate::daemon::{processes_matching, rows, wait_until};
use crate::run::Project;
use serde_json::json;
use std::path::Path;

use crate::client::{client_at as client, client_json, Leftovers};

/// Files and bytes under `dir` (recursively).
fn usage(dir: &Path) -> (u64, u64) {
    let mut files = 0;
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            let (f, b) = usage(&entry.path());
            files += f;
            bytes += b;
        } else {
            files += 1;
            bytes += meta.len();
        }
    }
    (files, bytes)
}

fn one(db: &Path, sql: &str) -> String {
    rows(db, sql).remove(0).remove(0)
}

/// The root's `_export` is large enough to be stored once per attempt (`run_values`), which a
/// gc must remove with the attempt.
const WF: &str = concat!(
    "_export:\n  blob: ",
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "\n+hello:\n  sh>: echo hello ${session_date}\n+after:\n  echo>: done ${session_date}\n"
);

/// A project with two attempts that finished in January (sessions 2026-01-01 and 01-02) and
/// one that finished on 2026-05-26, all made by `spade run` under the test clock.
fn project_with_history() -> Project {
    let project = Project::new();
    project.write("wf.dig", WF);
    for (session, origin) in [
        ("2026-01-01", "2026-01-02T00:00:00Z"),
        ("2026-01-02", "2026-01-03T00:00:00Z"),
        ("2026-05-25", "2026-05-26T00:00:00Z"),
    ] {
        project
            .run(&["wf", "--session", session, "--time-origin", origin])
            .expect(0);
    }
    project
}

#[test]
fn gc_dry_run_lists_then_gc_deletes_old_attempts_keeps_running_and_newer_and_the_session_starts_again(
) {
    let _leftovers = Leftovers("sleep 4181");
    let project = project_with_history();
    project.write("slow.dig", "+wait:\n  sh>: sleep 4181\n");
    let db = project.path().join(".spade/spade.db");
    let logs = project.path().join(".spade/logs");
    // 90 days before the daemon's 2026-06-01 is 2026-03-03: the January attempts are old.
    let d = Daemon::start(&project, &["--time-origin", "2026-06-01T00:00:00Z"]);
    let slow = client_json(&d, &["start", "slow", "--session", "2026-05-31"]);
    let slow_id = slow["id"].as_str().unwrap().to_owned();
    wait_until(
        "the slow task to run",
        LONG,
        || !processes_matching("sleep 4181").is_empty(),
        || d.proc.log_text(),
    );
    // A newer attempt after it, so that the running one does not hold the highest id (which
    // gc keeps anyway).
    let latest = client_json(&d, &["start", "wf", "--session", "2026-05-30"]);
    d.wait_done(latest["id"].as_str().unwrap());
    assert_eq!(
        rows(&db, "SELECT id, state FROM attempts ORDER BY id"),
        [
            ["1", "succeeded"],
            ["2", "succeeded"],
            ["3", "succeeded"],
            ["4", "running"],
            ["5", "succeeded"]
        ]
    );
    let old_tasks: u64 = one(&db, "SELECT COUNT(*) FROM tasks WHERE attempt_id IN (1, 2)")
        .parse()
        .unwrap();
    assert!(old_tasks >= 4, "{old_tasks}");
    let (u1, u2) = (usage(&logs.join("1")), usage(&logs.join("2")));
    assert!(
        u1.0 >= 1 && u2.0 >= 1,
        "sh> wrote a log file: {u1:?} {u2:?}"
    );
    let before = rows(
        &db,
        "SELECT (SELECT COUNT(*) FROM attempts), (SELECT COUNT(*) FROM tasks), \
         (SELECT COUNT(*) FROM task_runs), (SELECT COUNT(*) FROM sessions)",
    );

    // A dry run lists what would go, and deletes nothing.
    let dry = client_json(&d, &["gc", "--older-than", "90d", "--dry-run"]);
    assert_eq!(dry["dryRun"], true, "{dry}");
    assert!(
        dry["before"]
            .as_str()
            .unwrap()
            .starts_with("2026-03-03T00:0"),
        "the daemon's clock minus 90 days: {dry}"
    );
    assert_eq!(
        (
            &dry["attempts"],
            &dry["sessions"],
            &dry["tasks"],
            &dry["logFiles"],
            &dry["logBytes"]
        ),
        (
            &json!(2),
            &json!(2),
            &json!(old_tasks),
            &json!(u1.0 + u2.0),
            &json!(u1.1 + u2.1)
        ),
        "{dry}"
    );
    assert_eq!(dry["workflows"]["wf"]["attempts"], 2, "{dry}");
    assert!(
        dry["workflows"]["wf"]["oldestFinishedAt"]
            .as_str()
            .unwrap()
            .starts_with("2026-01-02"),
        "{dry}"
    );
    let (code, table, err) = client(&d.base, &["gc", "--older-than", "90d", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("dry run: would remove 2 attempt(s), 2 session(s)"),
        "{err}"
    );
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("WORKFLOW  ATTEMPTS  SESSIONS  TASKS"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("wf ") && l.contains(" 2 ")),
        "{table}"
    );
    assert!(table.lines().any(|l| l.starts_with("TOTAL")), "{table}");
    let after_dry = rows(
        &db,
        "SELECT (SELECT COUNT(*) FROM attempts), (SELECT COUNT(*) FROM tasks), \
         (SELECT COUNT(*) FROM task_runs), (SELECT COUNT(*) FROM sessions)",
    );
    assert_eq!(after_dry, before, "a dry run deletes nothing");
    assert!(logs.join("1").is_dir() && logs.join("2").is_dir());

    // For real: the January attempts go with everything of theirs; the newer and the running
    // ones stay whole.
    let done = client_json(&d, &["gc", "--older-than", "90d"]);
    assert_eq!(done["dryRun"], false, "{done}");
    assert_eq!(
        (&done["attempts"], &done["sessions"]),
        (&json!(2), &json!(2))
    );
    assert_eq!(done["tasks"], json!(old_tasks), "{done}");
    assert_eq!(done["logFiles"], json!(u1.0 + u2.0), "{done}");
    assert_eq!(
        rows(&db, "SELECT id, state FROM attempts ORDER BY id"),
        [["3", "succeeded"], ["4", "running"], ["5", "succeeded"]]
    );
    for q in [
        "SELECT COUNT(*) FROM tasks WHERE attempt_id NOT IN (3, 4, 5)",
        "SELECT COUNT(*) FROM task_runs WHERE task_id NOT IN (SELECT id FROM tasks)",
        "SELECT COUNT(*) FROM task_logs WHERE task_id NOT IN (SELECT id FROM tasks)",
        "SELECT COUNT(*) FROM state_transitions WHERE task_id NOT IN (SELECT id FROM tasks)",
        "SELECT COUNT(*) FROM sessions WHERE session_time LIKE '2026-01-%'",
        "SELECT COUNT(*) FROM run_values WHERE attempt_id NOT IN (3, 4, 5)",
    ] {
        assert_eq!(one(&db, q), "0", "{q}");
    }
    assert_eq!(
        one(&db, "SELECT group_concat(attempt_id) FROM (SELECT DISTINCT attempt_id FROM run_values ORDER BY 1)"),
        "3,5",
        "the kept attempts of `wf` keep their stored values"
    );
    assert!(!logs.join("1").exists() && !logs.join("2").exists());
    assert!(logs.join("3").is_dir(), "the newer attempt's logs stay");
    assert!(
        !processes_matching("sleep 4181").is_empty(),
        "the running attempt's task still runs"
    );
    assert_eq!(client_json(&d, &["attempt", &slow_id])["status"], "running");
    let (_, log, _) = client(&d.base, &["log", "3", "+hello"]);
    assert_eq!(log, "hello 2026-05-25\n");
    let (code, _, err) = client(&d.base, &["attempt", "1"]);
    assert_eq!(code, 2, "a removed attempt is 404: {err}");

    // A log directory left by a crash between a commit and its removal is found next time.
    std::fs::create_dir_all(logs.join("2")).unwrap();
    std::fs::write(logs.join("2/7.1.log"), "left over\n").unwrap();
    let again = client_json(&d, &["gc", "--older-than", "90d"]);
    assert_eq!(
        (
            &again["attempts"],
            &again["orphanLogDirs"],
            &again["logFiles"],
            &again["logBytes"]
        ),
        (&json!(0), &json!(1), &json!(1), &json!(10)),
        "{again}"
    );
    assert!(!logs.join("2").exists());

    // A removed session starts again as a new one.
    let restarted = client_json(&d, &["start", "wf", "--session", "2026-01-01"]);
    let id = restarted["id"].as_str().unwrap().to_owned();
    assert_eq!(d.wait_done(&id)["status"], "success");
    let (_, log, _) = client(&d.base, &["log", &id, "+hello"]);
    assert_eq!(log, "hello 2026-01-01\n");
    let (code, _, err) = client(&d.base, &["kill", &slow_id]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn the_daemon_policy_removes_old_attempts_on_its_own_clock() {
    let project = Project::new();
    project.write("wf.dig", "+a:\n  echo>: ${session_date}\n");
    let db = project.path().join(".spade/spade.db");
    // A million virtual seconds per real second: 30 days pass in about 2.6 s.
    let d = Daemon::start(
        &project,
        &[
            "--time-origin",
            "2026-06-01T00:00:00Z",
            "--time-scale",
            "1000000",
            "--gc-older-than",
            "30d",
            "--gc-interval",
            "5d",
        ],
    );
    let wf = d.workflow_id("wf");
    let mut ids = Vec::new();
    for day in ["2026-06-01", "2026-06-02"] {
        let (status, a) = d.put(
            "/api/attempts",
            &json!({"workflowId": wf, "sessionTime": day}),
        );
        assert_eq!(status, 200, "{a}");
        let id = a["id"].as_str().unwrap().to_owned();
        d.wait_done(&id);
        ids.push(id);
    }
    // The summary line comes after the commit and the log directories: wait for both.
    wait_until(
        "the policy to remove the first attempt and say so",
        LONG,
        || {
            d.proc
                .log_text()
                .contains("gc (policy): removed 1 attempt(s) that finished before")
        },
        || d.proc.log_text(),
    );
    // The second is old by now too, but holds the highest id: SQLite would hand it out again.
    assert_eq!(rows(&db, "SELECT id FROM attempts"), [[ids[1].clone()]]);
    assert_eq!(rows(&db, "SELECT COUNT(*) FROM sessions"), [["1"]]);
    let (_, text) = d.get("/metrics");
    let text = text.as_str().unwrap();
    assert!(
        text.lines()
            .any(|l| l == "spade_gc_attempts_removed_total 1"),
        "{text}"
    );
}

#[test]
fn bad_durations_are_refused_with_the_accepted_forms() {
    let project = Project::new();
    project.write("wf.dig", "+a:\n  echo>: hi\n");
    let d = Daemon::start(&project, &[]);
    for bad in ["0", "0d", "soon", "3 weeks", "-5d", "1m1h"] {
        let (code, _, err) = client(&d.base, &["gc", &format!("--older-than={bad}")]);
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(
            err.contains(&format!(
                "invalid olderThan `{bad}`: expected a duration such as 90d, 12h, 30m"
            )),
            "{err}"
        );
        assert!(err.contains("(HTTP 400)"), "{err}");
    }
    let (status, e) = d.post("/api/gc", &json!({"olderThan": "soon", "dryRun": true}));
    assert_eq!(status, 400);
    assert_eq!(e["status"], 400);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("units d, h, m and s"),
        "{e}"
    );
    let (status, e) = d.post("/api/gc", &json!({}));
    assert_eq!(status, 400, "olderThan is required: {e}");

    let out = crate::util::spade()
        .args(["serve", ".", "--gc-older-than", "0"])
        .current_dir(project.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid gc_older_than `0`: a duration such as 90d"),
        "{err}"
    );
    project.write("spade.toml", "gc_interval = \"often\"\n");
    let out = crate::util::spade()
        .args(["serve", ".", "--config", "spade.toml"])
        .current_dir(project.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("spade.toml:1:15: `gc_interval` must be a duration such as 90d"),
        "{err}"
    );

    let out = crate::util::spade()
        .args([
            "gc",
            "--older-than",
            "90d",
            "--endpoint",
            "http://127.0.0.1:9",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no spade daemon is listening"));
}
