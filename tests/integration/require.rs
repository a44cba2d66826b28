//! `require>` end to end: the required attempt is driven by the same `spade run`, deduplicated
//! by (session, attempt name) as Digdag does, its options evaluated once per try (the seed's
//! random `retry_attempt_name`), woken without polling, across a `kill -9` too.

// Test helpers outside `#[test]` functions: a failed unwrap is a failed test here.
#![allow(clippy::unwrap_used)]

use crate::run::Project;
use std::time::{Duration, Instant};

const SESSION: &str = "2026-01-01";

/// `(attempt_name, state)` of every attempt of `workflow`, in id order.
fn attempts(project: &Project, workflow: &str) -> Vec<(String, String)> {
    let db = rusqlite::Connection::open(project.path().join(".spade/spade.db")).unwrap();
    let mut stmt = db
        .prepare(
            "SELECT a.attempt_name, a.state FROM attempts a JOIN sessions s ON s.id = a.session_id \
             WHERE s.workflow = ?1 ORDER BY a.id",
        )
        .unwrap();
    let rows = stmt
        .query_map([workflow], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    rows
}

/// Rows of `require_waits`: `(try_index, target attempt, kicked, state)`.
fn waits(project: &Project) -> Vec<(i64, i64, bool, String)> {
    let db = rusqlite::Connection::open(project.path().join(".spade/spade.db")).unwrap();
    let mut stmt = db
        .prepare(
            "SELECT try_index, target_attempt_id, kicked, state FROM require_waits ORDER BY id",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    rows
}

fn lines(project: &Project, file: &str) -> usize {
    project.read(file).lines().count()
}

/// A required workflow that appends to `core_runs` and fails unless the file `ok` exists.
fn core(project: &Project) {
    project.write(
        "core.dig",
        "+work:\n  sh>: echo run >> core_runs; test -f ok\n",
    );
}

// See: ../shared/seeds/003 (Gunosy's blog) and spec 8.1: with `retry_attempt_name:
// ${Math.random()...}` Digdag evaluated the name again at every poll and started the required
// workflow again and again, forever. spade evaluates it once per try of the require task.
#[test]
fn seed_random_retry_attempt_name_runs_the_required_workflow_once_per_try() {
    let project = Project::new();
    core(&project);
    project.write(
        "schedule_layer.dig",
        "+req:\n\
         \x20 _retry: 3\n\
         \x20 require>: core\n\
         \x20 retry_attempt_name: ${Math.random().toString(36).slice(-8)}\n\
         +after:\n\
         \x20 sh>: echo after >> after_runs\n",
    );
    let ran = project.run(&["schedule_layer", "--session", SESSION]);
    ran.expect(1);
    assert_eq!(lines(&project, "core_runs"), 4, "{}", ran.stderr);
    assert_eq!(lines(&project, "after_runs"), 0);
    let core_attempts = attempts(&project, "core");
    assert_eq!(core_attempts.len(), 4, "{core_attempts:?}");
    let names: std::collections::HashSet<&str> =
        core_attempts.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), 4, "one fresh name per try: {core_attempts:?}");
    assert!(core_attempts
        .iter()
        .all(|(n, s)| n.len() == 8 && s == "failed"));
    let tries = waits(&project);
    assert_eq!(
        tries.iter().map(|t| t.0).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    assert!(tries.iter().all(|t| t.2 && t.3 == "done"), "{tries:?}");
    assert!(
        ran.stderr.contains("Dependent workflow failed"),
        "{}",
        ran.stderr
    );
}

// The same with a fixed name: the first try starts the attempt, the retries find it finished
// and see its result; the required workflow runs once.
#[test]
fn fixed_retry_attempt_name_runs_once_and_retries_see_its_result() {
    let project = Project::new();
    core(&project);
    project.write(
        "sched.dig",
        "+req:\n  _retry: 3\n  require>: core\n  retry_attempt_name: fixed\n",
    );
    project.run(&["sched", "--session", SESSION]).expect(1);
    assert_eq!(lines(&project, "core_runs"), 1);
    assert_eq!(
        attempts(&project, "core"),
        vec![("fixed".to_owned(), "failed".to_owned())]
    );
    let tries = waits(&project);
    assert_eq!(tries.len(), 4, "{tries:?}");
    assert!(tries[0].2 && !tries[1].2 && !tries[2].2 && !tries[3].2);
    assert!(tries.iter().all(|t| t.1 == tries[0].1));
}

#[test]
fn two_tasks_requiring_one_session_share_its_attempt_and_proceed_once_it_succeeds() {
    let project = Project::new();
    project.write(
        "load.dig",
        "+slow:\n  wait>: 30s\n+mark:\n  sh>: echo load >> load_runs\n",
    );
    project.write(
        "report.dig",
        "+both:\n\
         \x20 _parallel: true\n\
         \x20 +a:\n\
         \x20   require>: load\n\
         \x20 +b:\n\
         \x20   require>: load\n\
         +next:\n\
         \x20 sh>: echo next >> next_runs\n",
    );
    let ran = project.run(&["report", "--session", SESSION]);
    ran.expect(0);
    assert_eq!(lines(&project, "load_runs"), 1, "{}", ran.stderr);
    assert_eq!(lines(&project, "next_runs"), 1);
    assert_eq!(attempts(&project, "load").len(), 1);
    let tries = waits(&project);
    assert_eq!(tries.len(), 2, "{tries:?}");
    // One started it, the other found it running and waited for it.
    assert_eq!(tries.iter().filter(|t| t.2).count(), 1, "{tries:?}");
    assert_eq!(tries[0].1, tries[1].1);
    // The same session again: the required attempt succeeded, nothing runs again.
    project
        .run(&["report", "--session", SESSION, "--rerun"])
        .expect(0);
    assert_eq!(lines(&project, "load_runs"), 1);
    assert_eq!(lines(&project, "next_runs"), 2);
}

#[test]
fn ignore_failure_succeeds_after_the_required_attempt_fails() {
    let project = Project::new();
    core(&project);
    project.write(
        "sched.dig",
        "+req:\n  require>: core\n  ignore_failure: true\n+next:\n  sh>: echo next >> next_runs\n",
    );
    project.run(&["sched", "--session", SESSION]).expect(0);
    assert_eq!(lines(&project, "core_runs"), 1);
    assert_eq!(lines(&project, "next_runs"), 1);
    assert_eq!(attempts(&project, "core")[0].1, "failed");
}

#[test]
fn rerun_on_decides_whether_a_finished_attempt_runs_again() {
    // (rerun_on, whether core succeeded before, runs of core expected after the require)
    let cases = [
        ("none", false, 1),
        ("none", true, 1),
        ("failed", false, 2),
        ("failed", true, 1),
        ("all", false, 2),
        ("all", true, 2),
    ];
    for (rerun_on, succeeded_before, want) in cases {
        let project = Project::new();
        core(&project);
        if succeeded_before {
            project.write("ok", "");
        }
        project
            .run(&["core", "--session", SESSION])
            .expect(if succeeded_before { 0 } else { 1 });
        project.write(
            "sched.dig",
            &format!("+req:\n  require>: core\n  rerun_on: {rerun_on}\n  ignore_failure: true\n"),
        );
        let ran = project.run(&["sched", "--session", SESSION]);
        ran.expect(0);
        assert_eq!(
            lines(&project, "core_runs"),
            want,
            "rerun_on {rerun_on}, succeeded before {succeeded_before}\n{}",
            ran.stderr
        );
        let core_attempts = attempts(&project, "core");
        assert_eq!(core_attempts.len(), want, "{core_attempts:?}");
        if want == 2 {
            // The rerun's name is a generated UUID, stored with the try.
            assert_eq!(core_attempts[1].0.len(), 36, "{core_attempts:?}");
        }
    }
}

// Spec 8.1 "Dedup model": a session with only named attempts leaves the default name free, so
// a plain `require>` starts a default attempt (as Digdag does).
#[test]
fn a_session_with_only_named_attempts_gets_a_default_attempt() {
    let project = Project::new();
    core(&project);
    project.write("ok", "");
    project
        .run(&["core", "--session", SESSION, "--attempt-name", "backfill-1"])
        .expect(0);
    project.write("sched.dig", "+req:\n  require>: core\n");
    project.run(&["sched", "--session", SESSION]).expect(0);
    assert_eq!(lines(&project, "core_runs"), 2);
    assert_eq!(
        attempts(&project, "core"),
        vec![
            ("backfill-1".to_owned(), "succeeded".to_owned()),
            (String::new(), "succeeded".to_owned())
        ]
    );
    // With a default attempt present, a plain require> finds the session's last attempt.
    project
        .run(&["sched", "--session", SESSION, "--rerun"])
        .expect(0);
    assert_eq!(lines(&project, "core_runs"), 2);
}

#[test]
fn a_require_cycle_fails_naming_the_cycle() {
    let project = Project::new();
    project.write("a.dig", "+r:\n  require>: b\n");
    project.write("b.dig", "+r:\n  require>: a\n");
    let ran = project.run(&["a", "--session", SESSION]);
    ran.expect(1);
    assert!(
        ran.stderr
            .contains("require> cycle: `b` at 2026-01-01T00:00:00Z requires `a` at 2026-01-01T00:00:00Z requires `b`"),
        "{}",
        ran.stderr
    );
    assert_eq!(attempts(&project, "a")[0].1, "failed");
    assert_eq!(attempts(&project, "b")[0].1, "failed");
}

#[test]
fn a_workflow_requiring_its_own_session_fails_instead_of_waiting_forever() {
    let project = Project::new();
    project.write("a.dig", "+r:\n  require>: a\n");
    let ran = project.run(&["a", "--session", SESSION]);
    ran.expect(1);
    assert!(ran.stderr.contains("require> cycle: `a`"), "{}", ran.stderr);
}

#[test]
fn a_missing_workflow_fails_with_did_you_mean() {
    let project = Project::new();
    core(&project);
    project.write("sched.dig", "+r:\n  require>: cor\n");
    let ran = project.run(&["sched", "--session", SESSION]);
    ran.expect(1);
    assert!(
        ran.stderr
            .contains("dependent workflow `cor` does not exist")
            && ran.stderr.contains("did you mean `core`?"),
        "{}",
        ran.stderr
    );
}

fn pause() {
    #[allow(clippy::disallowed_methods)] // polling a real child process from a test
    std::thread::sleep(Duration::from_millis(5));
}

/// Kills the child on drop, so a failing test leaves no process behind.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// A restart while a require task waits: the try is read back (its random attempt name is not
// drawn again), the required attempt continues, and the requiring task proceeds once.
#[test]
fn kill_9_while_waiting_then_restart_waits_for_the_same_attempt_and_proceeds_once() {
    let project = Project::new();
    project.write(
        "core.dig",
        "+work:\n  sh>: echo start >> core_runs; while [ ! -f go ]; do sleep 0.01; done\n",
    );
    project.write(
        "sched.dig",
        "+req:\n\
         \x20 require>: core\n\
         \x20 retry_attempt_name: ${Math.random().toString(36).slice(-8)}\n\
         +after:\n\
         \x20 sh>: echo after >> after_runs\n",
    );
    let args = ["sched", "--session", SESSION];
    let mut child = KillOnDrop(
        project
            .command(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while lines(&project, "core_runs") == 0 {
        assert!(Instant::now() < deadline, "core never started");
        assert!(child.0.try_wait().unwrap().is_none(), "spade ended early");
        pause();
    }
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let before = attempts(&project, "core");
    assert_eq!(before.len(), 1);
    project.write("go", "");
    let ran = project.run(&args);
    ran.expect(0);
    assert_eq!(attempts(&project, "core").len(), 1, "{}", ran.stderr);
    assert_eq!(attempts(&project, "core")[0].0, before[0].0);
    assert_eq!(attempts(&project, "core")[0].1, "succeeded");
    assert_eq!(waits(&project).len(), 1);
    assert_eq!(lines(&project, "after_runs"), 1);
}

#[test]
fn corpus_require_files_run_locally() {
    let Some(shared) = crate::util::shared() else {
        return;
    };
    let dir = shared.join("corpus/digdag/digdag-tests/src/test/resources/acceptance/require");
    let project = Project::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        // As the Java test does: the file child.dig touches is one of ours.
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("__FILE__", "child_ran");
        if name == "parent_another_project.dig" {
            continue; // a template for a second project (`__CHILD_PROJECT__`)
        }
        project.write(&name, &text);
    }
    project.run(&["parent", "--session", SESSION]).expect(0);
    assert!(project.path().join("child_ran").exists());
    project
        .run(&["parent_wait", "--session", SESSION])
        .expect(0);
    project
        .run(&["parent_ignore_failure", "--session", "2026-01-02"])
        .expect(0);
    // parent_rerun_on requires `child` with session params; as in the Java test, the child is
    // the one that reads `child_fail`.
    let rerun_on = std::fs::read_to_string(dir.join("parent_rerun_on.dig"))
        .unwrap()
        .replace("require>: child", "require>: child_rerun_on");
    project.write("parent_rerun_on.dig", &rerun_on);
    let run = |rerun: &str, fail: &str| {
        project.run(&[
            "parent_rerun_on",
            "--session",
            "2026-01-03",
            "--rerun",
            "-p",
            &format!("param_rerun_on={rerun}"),
            "-p",
            &format!("child_fail={fail}"),
        ])
    };
    run("none", "yes").expect(1);
    run("none", "no").expect(1); // the failed child attempt is not run again
    run("failed", "no").expect(0); // now it is, with the new params
    run("failed", "yes").expect(0); // it succeeded: not run again
    run("all", "yes").expect(1);
    assert_eq!(attempts(&project, "child_rerun_on").len(), 3);
}

#[test]
fn check_prints_each_workflows_require_targets() {
    let project = Project::new();
    core(&project);
    project.write(
        "sched.dig",
        "+a:\n  require>: core\n+b:\n  +c:\n    require>: other.dig\n    project_name: elsewhere\n",
    );
    let out = crate::util::spade()
        .arg("check")
        .current_dir(project.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("workflow sched\n  timezone: UTC\n  requires: core, elsewhere/other\n"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("workflow core\n  timezone: UTC\n  requires"),
        "{stdout}"
    );
    let json = crate::util::spade()
        .args(["check", "--json"])
        .current_dir(project.path())
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let sched = json["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "sched")
        .unwrap();
    assert_eq!(
        sched["requires"],
        serde_json::json!(["core", "elsewhere/other"])
    );
}

// In `spade serve` the supervisor drives the required attempt of the served project, and the
// end of its driver wakes the waiting task.
#[test]
fn serve_drives_the_required_attempt_and_the_scheduled_one_proceeds() {
    use crate::daemon::{rows, wait_until, Proc};
    let project = Project::new();
    project.write(
        "sched.dig",
        "timezone: UTC\nschedule:\n  daily>: 00:00:00\n+req:\n  require>: load\n+after:\n  sh>: echo after >> after_runs\n",
    );
    project.write("load.dig", "+a:\n  sh>: echo load >> load_runs\n");
    let db = project.path().join(".spade").join("spade.db");
    let mut p = Proc::start_with(
        &[
            "serve",
            ".",
            "--db",
            db.to_str().unwrap(),
            "--time-origin",
            "2026-01-09T23:59:59Z",
            "--time-scale",
            "10",
        ],
        project.path(),
        project.path().join(".serve.log"),
        &[("SPADE_LOG", "info")],
    );
    let long = Duration::from_secs(60);
    wait_until(
        "the scheduled attempt to pass its require> task",
        long,
        || lines(&project, "after_runs") >= 1,
        || p.log_text(),
    );
    p.signal(libc::SIGTERM);
    let status = p.wait_exit(long);
    assert!(status.success(), "{}", p.log_text());
    assert_eq!(lines(&project, "load_runs"), 1);
    let found = rows(
        &db,
        "SELECT s.workflow, s.session_time, a.state FROM attempts a \
         JOIN sessions s ON s.id = a.session_id ORDER BY a.id",
    );
    assert_eq!(
        found,
        vec![
            vec![
                "sched".to_owned(),
                "2026-01-10T00:00:00Z".to_owned(),
                "succeeded".to_owned()
            ],
            vec![
                "load".to_owned(),
                "2026-01-10T00:00:00Z".to_owned(),
                "succeeded".to_owned()
            ],
        ],
        "{}",
        p.log_text()
    );
}
