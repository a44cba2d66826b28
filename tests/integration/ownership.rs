//! Attempts have an owner: a second `spade run` of an attempt that a live process drives
//! refuses (or waits with `--wait`) and nothing runs twice; Ctrl-C stops the task's whole
//! process group and records the run as interrupted; task slots keep wide groups within the
//! open-file limit.

// Test helpers: a failed unwrap is a failed test here.
#![allow(clippy::unwrap_used)]

use crate::daemon::{processes_matching, rows, wait_until, Proc};
use crate::run::Project;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

/// The reproduction from the review: `+a` takes a second, then `+b` and `+c`.
const ABC: &str = "+a:\n  sh>: printf 'a-start;' >> out; sleep 1; printf 'a-end;' >> out\n+b:\n  sh>: printf 'b;' >> out\n+c:\n  sh>: printf 'c;' >> out\n";

fn start_run(project: &Project, extra: &[&str], log: &str) -> Proc {
    let mut args = vec!["run", "abc.dig", "--session", "2026-01-01"];
    args.extend_from_slice(extra);
    Proc::start(&args, project.path(), project.path().join(log))
}

fn wait_for_a(project: &Project, first: &Proc) {
    wait_until(
        "the first run to start +a",
        LONG,
        || {
            std::fs::read_to_string(project.path().join("out"))
                .unwrap_or_default()
                .contains("a-start")
        },
        || first.log_text(),
    );
}

#[test]
fn a_second_run_of_a_running_attempt_refuses_naming_the_owner() {
    let project = Project::new();
    project.write("abc.dig", ABC);
    let mut first = start_run(&project, &[], "first.log");
    wait_for_a(&project, &first);
    let second = project.run(&["abc.dig", "--session", "2026-01-01"]);
    second.expect(2);
    assert!(
        second
            .stderr
            .contains(&format!("is being run by pid {} on ", first.pid()))
            && second.stderr.contains("wait for it or stop it"),
        "{}",
        second.stderr
    );
    assert!(first.wait_exit(LONG).success(), "{}", first.log_text());
    assert_eq!(project.read("out"), "a-start;a-end;b;c;");
}

#[test]
fn a_second_run_with_wait_waits_and_nothing_runs_twice() {
    let project = Project::new();
    project.write("abc.dig", ABC);
    let mut first = start_run(&project, &[], "first.log");
    wait_for_a(&project, &first);
    let second = project.run(&["abc.dig", "--session", "2026-01-01", "--wait"]);
    second.expect(0);
    assert!(
        second.stderr.contains("waiting (--wait)"),
        "{}",
        second.stderr
    );
    assert!(first.wait_exit(LONG).success(), "{}", first.log_text());
    assert_eq!(project.read("out"), "a-start;a-end;b;c;");
}

#[test]
fn two_runs_with_the_same_new_attempt_name_make_one_attempt() {
    let project = Project::new();
    project.write("abc.dig", ABC);
    let mut first = start_run(&project, &["--attempt-name", "retry1"], "first.log");
    wait_for_a(&project, &first);
    let second = project.run(&[
        "abc.dig",
        "--session",
        "2026-01-01",
        "--attempt-name",
        "retry1",
    ]);
    second.expect(2);
    assert!(first.wait_exit(LONG).success(), "{}", first.log_text());
    assert_eq!(project.read("out"), "a-start;a-end;b;c;");
    let db = project.path().join(".spade/spade.db");
    assert_eq!(rows(&db, "SELECT COUNT(*) FROM attempts"), [["1"]]);
}

#[test]
fn ctrl_c_stops_the_task_and_its_background_grandchild_and_the_next_run_runs_it_once() {
    let project = Project::new();
    project.write(
        "bg.dig",
        "+a:\n  sh>: \"if [ -f started ]; then echo again >> runs; exit 0; fi; sleep 311 & touch started; sleep 312\"\n+b:\n  sh>: echo b >> runs\n",
    );
    let mut run = Proc::start(
        &["run", "bg.dig", "--session", "2026-01-01"],
        project.path(),
        project.path().join("run.log"),
    );
    wait_until(
        "the task to start",
        LONG,
        || project.path().join("started").exists(),
        || run.log_text(),
    );
    assert!(!processes_matching("sleep 311").is_empty());
    run.signal(libc::SIGINT);
    let status = run.wait_exit(LONG);
    assert_eq!(status.code(), Some(130), "{}", run.log_text());
    assert!(
        run.log_text().contains("stopped by SIGINT"),
        "{}",
        run.log_text()
    );
    assert!(
        processes_matching("sleep 311").is_empty(),
        "the grandchild survived"
    );
    assert!(
        processes_matching("sleep 312").is_empty(),
        "the command survived"
    );
    let db = project.path().join(".spade/spade.db");
    assert_eq!(
        rows(&db, "SELECT outcome FROM task_runs"),
        [["interrupted"]],
        "the stopped run is recorded interrupted"
    );
    let again = project.run(&["bg.dig", "--session", "2026-01-01"]);
    again.expect(0);
    assert_eq!(project.read("runs"), "again\nb\n");
    assert_eq!(
        rows(
            &db,
            "SELECT retry_count, interrupted_count FROM tasks WHERE full_name = '+bg+a'"
        ),
        [["0", "0"]]
    );
}

#[test]
fn sigterm_exits_143_and_a_second_signal_kills_at_once() {
    let project = Project::new();
    project.write(
        "slow.dig",
        "+a:\n  sh>: \"trap 'sleep 321' TERM; touch started; sleep 322 & wait\"\n",
    );
    let mut run = Proc::start(
        &[
            "run",
            "slow.dig",
            "--session",
            "2026-01-01",
            "--stop-timeout",
            "1h",
        ],
        project.path(),
        project.path().join("run.log"),
    );
    wait_until(
        "the task to start",
        LONG,
        || project.path().join("started").exists(),
        || run.log_text(),
    );
    run.signal(libc::SIGTERM);
    // The command traps SIGTERM and keeps going: the stop waits (up to an hour) ...
    wait_until(
        "the trap to run",
        LONG,
        || !processes_matching("sleep 321").is_empty(),
        || run.log_text(),
    );
    assert!(run.is_running());
    // ... until a second signal kills the group at once.
    run.signal(libc::SIGTERM);
    let status = run.wait_exit(LONG);
    assert_eq!(status.code(), Some(143), "{}", run.log_text());
    assert!(processes_matching("sleep 321").is_empty());
    assert!(processes_matching("sleep 322").is_empty());
}

#[test]
fn a_wide_parallel_group_queues_within_the_open_file_limit() {
    let project = Project::new();
    let mut text = String::from("+wide:\n  _parallel: true\n");
    for i in 0..300 {
        text.push_str(&format!("  +t{i}:\n    sh>: echo {i} >> lines\n"));
    }
    project.write("wide.dig", &text);
    // 300 concurrent commands need ~1,200 descriptors; under a limit of 160 they must queue.
    let shell = format!(
        "ulimit -n 160 && exec {} run wide.dig --session 2026-01-01",
        crate::util::spade_bin().display()
    );
    #[allow(clippy::disallowed_methods)] // a shell sets the limit for the real binary
    let out = std::process::Command::new("/bin/sh")
        .args(["-c", &shell])
        .current_dir(project.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("Too many open files"), "{stderr}");
    let lines = project.read("lines");
    assert_eq!(lines.lines().count(), 300, "every task ran once");
}

/// After `kill -9` of spade, the task's leader dies with it (parent-death signal) but what it
/// forked lives on; the next start kills exactly those processes: the ones in the recorded
/// group that carry the run's token.
#[test]
fn leftovers_of_a_crashed_run_are_killed_at_the_next_start() {
    let project = Project::new();
    project.write(
        "crash.dig",
        "+a:\n  sh>: \"if [ -f started ]; then echo again >> runs; exit 0; fi; sleep 331 & touch started; sleep 332\"\n",
    );
    let mut run = Proc::start(
        &["run", "crash.dig", "--session", "2026-01-01"],
        project.path(),
        project.path().join("run.log"),
    );
    wait_until(
        "the task to start",
        LONG,
        || project.path().join("started").exists() && !processes_matching("sleep 332").is_empty(),
        || run.log_text(),
    );
    run.kill9();
    assert!(
        !processes_matching("sleep 331").is_empty(),
        "the grandchild outlives the crash"
    );
    let again = project.run(&["crash.dig", "--session", "2026-01-01"]);
    again.expect(0);
    assert!(
        processes_matching("sleep 331").is_empty(),
        "leftover not killed"
    );
    assert!(
        processes_matching("sleep 332").is_empty(),
        "leftover not killed"
    );
    assert_eq!(project.read("runs"), "again\n");
}

/// A group id recorded before a crash may name someone else's group by the time spade starts
/// again: a process there that does not carry the run's token is left alone.
#[test]
fn a_recycled_group_id_is_never_killed() {
    let project = Project::new();
    project.write(
        "crash.dig",
        "+a:\n  sh>: \"if [ -f started ]; then exit 0; fi; touch started; sleep 351\"\n",
    );
    let mut run = Proc::start(
        &["run", "crash.dig", "--session", "2026-01-01"],
        project.path(),
        project.path().join("run.log"),
    );
    wait_until(
        "the task to start",
        LONG,
        || project.path().join("started").exists(),
        || run.log_text(),
    );
    // The store learns of the run's process with the run's next transaction, or within
    // 200 ms (`executor::SPAWN_FLUSH`); the journal has it at once.
    let db = project.path().join(".spade/spade.db");
    wait_until(
        "the task's process group to be recorded",
        LONG,
        || {
            rusqlite::Connection::open(&db).is_ok_and(|c| {
                c.query_row(
                    "SELECT pgid IS NOT NULL FROM tasks WHERE state = 'running'",
                    [],
                    |r| r.get::<_, bool>(0),
                )
                .unwrap_or(false)
            })
        },
        || run.log_text(),
    );
    run.kill9();
    // An unrelated process group, standing in for one that took over the recorded id.
    #[allow(clippy::disallowed_methods)] // the test's own bystander process
    let mut bystander = {
        use std::os::unix::process::CommandExt as _;
        std::process::Command::new("/bin/sleep")
            .arg("352")
            .process_group(0)
            .spawn()
            .unwrap()
    };
    let conn = rusqlite::Connection::open(&db).unwrap();
    // The crashed run's real group: the test hides it from spade below, so the test must
    // stop it itself, also when an assertion fails.
    let original: i32 = conn
        .query_row("SELECT pgid FROM tasks WHERE state = 'running'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let _leftover = KillGroupOnDrop(original);
    conn.execute(
        "UPDATE tasks SET pgid = ?1 WHERE state = 'running'",
        [bystander.id()],
    )
    .unwrap();
    drop(conn);
    let again = project.run(&["crash.dig", "--session", "2026-01-01"]);
    again.expect(0);
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "spade killed a process group it could not prove was its own"
    );
    let _ = bystander.kill();
    let _ = bystander.wait();
}

/// Kills a process group when dropped (a test's leftover processes never outlive it).
struct KillGroupOnDrop(i32);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        if self.0 > 1 {
            // SAFETY: killpg takes two integers; a group that is gone gives ESRCH.
            #[allow(unsafe_code)]
            unsafe {
                libc::killpg(self.0, libc::SIGKILL);
            }
        }
    }
}
