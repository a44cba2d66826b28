//! The client commands through the real binary against a real daemon: start, watch an
//! attempt finish, tasks, log, retry `--resume` after fixing a failing task, kill of a running
//! attempt with a grandchild process (nothing survives), backfill `--dry-run` and for real,
//! and the message when no daemon listens.

// Test helpers: a failed unwrap is a failed test here.
#![allow(clippy::unwrap_used)]

use crate::api::{Daemon, LONG};
use crate::daemon::{processes_matching, rows, wait_until};
use crate::run::Project;
use serde_json::Value;

/// `spade ARGS --endpoint <daemon>`: (exit code, stdout, stderr).
fn client(d: &Daemon, args: &[&str]) -> (i32, String, String) {
    client_at(&d.base, args)
}

/// `spade ARGS --endpoint ENDPOINT`: (exit code, stdout, stderr).
pub(crate) fn client_at(endpoint: &str, args: &[&str]) -> (i32, String, String) {
    let out = crate::util::spade()
        .args(args)
        .args(["--endpoint", endpoint])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `--json` answer of a client command that must succeed.
pub(crate) fn client_json(d: &Daemon, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (code, out, err) = client(d, &all);
    assert_eq!(code, 0, "spade {args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn wait_status(d: &Daemon, id: &str, want: &str) -> Value {
    let mut last = Value::Null;
    wait_until(
        &format!("attempt {id} to be {want}"),
        LONG,
        || {
            last = client_json(d, &["attempt", id]);
            last["done"] == Value::Bool(true)
        },
        || d.proc.log_text(),
    );
    assert_eq!(last["status"], want, "{last}");
    last
}

/// Kills the processes a test's commands left, by pid, however the test ends.
pub(crate) struct Leftovers(pub(crate) &'static str);

impl Drop for Leftovers {
    fn drop(&mut self) {
        for pid in processes_matching(self.0) {
            if let Ok(pid) = libc::pid_t::try_from(pid) {
                // SAFETY: kill takes two integers; at worst the pid is gone already.
                #[allow(unsafe_code)]
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}

#[test]
fn start_watch_tasks_log_and_retry_resume_after_a_fix() {
    let project = Project::new();
    project.write(
        "flaky.dig",
        "+first:\n  sh>: echo first >> runs\n+check:\n  sh>: \"echo checking; test -f fixed\"\n+last:\n  echo>: all done\n",
    );
    let d = Daemon::start(&project, &[]);
    let started = client_json(
        &d,
        &["start", "flaky", "--session", "2026-05-01", "-p", "who=me"],
    );
    let id = started["id"].as_str().unwrap().to_owned();
    assert_eq!(started["params"]["who"], "me");
    wait_status(&d, &id, "error");

    let (code, table, _) = client(&d, &["tasks", &id]);
    assert_eq!(code, 0);
    let check = table.lines().find(|l| l.contains("+flaky+check")).unwrap();
    assert!(check.contains("error"), "{table}");
    let header = table.lines().next().unwrap();
    assert!(header.starts_with("ID  TASK"), "{table}");
    let (_, log, _) = client(&d, &["log", &id, "+check"]);
    assert_eq!(log, "checking\n");

    // The same start again is one attempt (409, exit 2).
    let (code, _, err) = client(&d, &["start", "flaky", "--session", "2026-05-01"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("exists already"), "{err}");

    project.write("fixed", "");
    let retried = client_json(&d, &["retry", &id, "--resume"]);
    assert_eq!(retried["id"], id.as_str(), "resumed in place");
    wait_status(&d, &id, "success");
    assert_eq!(
        project.read("runs"),
        "first\n",
        "what succeeded is not run again"
    );
    let (_, log, _) = client(&d, &["log", &id, "+last"]);
    assert_eq!(log, "all done\n");
    let attempts = client_json(&d, &["attempts", "flaky"]);
    assert_eq!(attempts["attempts"].as_array().unwrap().len(), 1);
}

#[test]
fn retry_resume_reruns_a_changed_task_and_the_tasks_after_it() {
    let project = Project::new();
    let v1 = "+first:\n  sh>: echo first >> runs\n+second:\n  sh>: echo second >> runs\n+check:\n  sh>: test -f fixed\n";
    project.write("etl.dig", v1);
    let d = Daemon::start(&project, &[]);
    let id = client_json(&d, &["start", "etl", "--session", "2026-05-01"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_status(&d, &id, "error");
    let revision = |d: &Daemon| client_json(d, &["workflows"])["workflows"][0]["revision"].clone();
    let old = revision(&d);
    project.write("etl.dig", &v1.replace("echo first", "echo first-v2"));
    wait_until(
        "the daemon to load the edit",
        LONG,
        || revision(&d) != old,
        || d.proc.log_text(),
    );
    project.write("fixed", "");
    let retried = client_json(&d, &["retry", &id, "--resume"]);
    assert_eq!(
        retried["resume"]["changed"],
        serde_json::json!(["+etl+first"])
    );
    assert_eq!(
        retried["resume"]["rerunAfterChange"],
        serde_json::json!(["+etl+second"])
    );
    wait_status(&d, &id, "success");
    assert_eq!(
        project.read("runs"),
        "first\nsecond\nfirst-v2\nsecond\n",
        "the changed task reruns, and so does the unchanged one after it"
    );
}

#[test]
fn retry_from_a_task_reruns_it_and_everything_after_it_and_keeps_what_came_before() {
    let project = Project::new();
    project.write(
        "daily.dig",
        "+a:\n  sh>: echo a >> runs\n+g:\n  +g1:\n    sh>: echo g1 >> runs\n  +g2:\n    sh>: echo g2 >> runs\n+z:\n  sh>: echo z >> runs\n",
    );
    let d = Daemon::start(&project, &[]);
    let id = client_json(&d, &["start", "daily", "--session", "2026-05-01"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_status(&d, &id, "success");
    assert_eq!(project.read("runs"), "a\ng1\ng2\nz\n");

    // A task that is not in the attempt: exit 2 naming it, nothing runs.
    let (code, _, err) = client(&d, &["retry", &id, "--from", "+nope"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no task `+daily+nope`"), "{err}");

    // `+g+g2` (without the workflow's prefix) runs again with `+z`; `+a` and `+g+g1` stay.
    let retried = client_json(&d, &["retry", &id, "--from", "+g+g2"]);
    assert_eq!(retried["resume"]["from"], "+daily+g+g2");
    assert_eq!(
        retried["resume"]["kept"],
        serde_json::json!(["+daily+a", "+daily+g+g1"])
    );
    wait_status(&d, &id, "success");
    assert_eq!(project.read("runs"), "a\ng1\ng2\nz\ng2\nz\n");
}

#[test]
fn kill_stops_a_running_attempt_and_its_grandchild_and_nothing_survives() {
    let _leftovers = Leftovers("sleep 417");
    let project = Project::new();
    project.write(
        "slow.dig",
        "+work:\n  sh>: \"sh -c 'sleep 417 & echo $! > grandchild; wait' ; echo after\"\n+never:\n  sh>: touch never\n_error:\n  sh>: touch error-handler-ran\n",
    );
    let d = Daemon::start(&project, &["--stop-timeout", "2s"]);
    let a = client_json(&d, &["start", "slow", "--session", "2026-05-01"]);
    let id = a["id"].as_str().unwrap().to_owned();
    wait_until(
        "the grandchild to start",
        LONG,
        || {
            project.path().join("grandchild").exists()
                && !processes_matching("sleep 417").is_empty()
        },
        || d.proc.log_text(),
    );
    let (code, _, err) = client(&d, &["kill", &id]);
    assert_eq!(code, 0, "{err}");
    let done = wait_status(&d, &id, "killed");
    assert_eq!(done["cancelRequested"], true);
    wait_until(
        "every process of the task to end",
        LONG,
        || processes_matching("sleep 417").is_empty(),
        || d.proc.log_text(),
    );
    assert!(!project.path().join("never").exists(), "a queued task ran");
    assert!(
        !project.path().join("error-handler-ran").exists(),
        "_error ran for a killed attempt"
    );
    let db = project.path().join(".spade/spade.db");
    assert_eq!(
        rows(&db, &format!("SELECT state FROM attempts WHERE id = {id}")),
        [["killed"]]
    );
    let (code, _, err) = client(&d, &["kill", &id]);
    assert_eq!(code, 2, "killing a finished attempt: {err}");
}

#[test]
fn backfill_dry_run_starts_nothing_and_then_starts_each_past_session_once() {
    let project = Project::new();
    project.write(
        "nightly.dig",
        "timezone: UTC\nschedule:\n  daily>: 01:00:00\n+a:\n  echo>: ${session_date}\n",
    );
    let d = Daemon::start(&project, &[]);
    let db = project.path().join(".spade/spade.db");
    let dry = client_json(
        &d,
        &[
            "backfill",
            "nightly",
            "--from",
            "2026-01-01",
            "--count",
            "3",
            "--dry-run",
        ],
    );
    let times: Vec<&str> = dry["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["sessionTime"].as_str().unwrap())
        .collect();
    assert_eq!(
        times,
        [
            "2026-01-01T00:00:00+00:00",
            "2026-01-02T00:00:00+00:00",
            "2026-01-03T00:00:00+00:00"
        ]
    );
    assert_eq!(rows(&db, "SELECT COUNT(*) FROM sessions"), [["0"]]);
    let (code, table, err) = client(
        &d,
        &[
            "backfill",
            "nightly",
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-03",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("3 session(s) started"), "{err}\n{table}");
    wait_until(
        "the backfilled attempts to finish",
        LONG,
        || {
            rows(
                &db,
                "SELECT COUNT(*) FROM attempts WHERE state = 'succeeded'",
            ) == [["3"]]
        },
        || d.proc.log_text(),
    );
    // Again: the sessions ran, so nothing repeats.
    let again = client_json(
        &d,
        &[
            "backfill",
            "nightly",
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-03",
        ],
    );
    assert_eq!(again["attempts"], Value::Array(Vec::new()));
    assert_eq!(rows(&db, "SELECT COUNT(*) FROM attempts"), [["3"]]);
    let sessions = client_json(&d, &["sessions", "nightly"]);
    assert_eq!(sessions["sessions"].as_array().unwrap().len(), 3);

    let (code, _, _) = client(&d, &["disable", "nightly"]);
    assert_eq!(code, 0);
    let s = client_json(&d, &["schedules"]);
    assert!(s["schedules"][0]["disabledAt"].is_string(), "{s}");
    let (code, out, _) = client(&d, &["reschedule", "nightly", "--skip-to", "2027-01-01"]);
    assert_eq!(code, 0);
    assert!(out.contains("2027-01-01T00:00:00+00:00"), "{out}");
}

#[test]
fn without_a_daemon_the_client_says_how_to_start_one() {
    let out = crate::util::spade()
        .args(["attempts", "--endpoint", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no spade daemon is listening at http://127.0.0.1:9"),
        "{err}"
    );
    assert!(err.contains("spade serve"), "{err}");
}
