//! `spade run` end to end: the real binary on fixture workflows, each in its own project
//! directory with its own database.

// Test helpers outside `#[test]` functions: a failed unwrap is a failed test here.
#![allow(clippy::unwrap_used)]

use crate::util;
use std::path::{Path, PathBuf};

/// A temporary project directory and the runs made in it.
pub(crate) struct Project {
    pub(crate) dir: tempfile::TempDir,
}

/// What one `spade run` did.
#[derive(Debug)]
pub(crate) struct Ran {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Ran {
    /// The attempt's duration from the final `attempt N succeeded in X.XXs` line (virtual
    /// seconds under `--time-scale`).
    pub(crate) fn seconds(&self) -> f64 {
        let line = self
            .stderr
            .lines()
            .rev()
            .find(|l| l.starts_with("attempt ") && l.ends_with('s') && l.contains(" in "))
            .unwrap_or_else(|| panic!("no final attempt line in stderr:\n{}", self.stderr));
        let secs = line.rsplit(" in ").next().unwrap().trim_end_matches('s');
        secs.parse()
            .unwrap_or_else(|_| panic!("bad duration in `{line}`"))
    }

    pub(crate) fn expect(&self, code: i32) -> &Ran {
        assert_eq!(
            self.code, code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

impl Project {
    pub(crate) fn new() -> Project {
        Project {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A project holding the fixture `tests/fixtures/runs/NAME.dig`.
    pub(crate) fn fixture(name: &str) -> Project {
        let project = Project::new();
        let text = std::fs::read_to_string(fixture_path(name, "dig")).unwrap();
        project.write(&format!("{name}.dig"), &text);
        project
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn write(&self, name: &str, text: &str) {
        let path = self.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, text).unwrap();
    }

    /// A file of the project, `""` when absent.
    pub(crate) fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path().join(name)).unwrap_or_default()
    }

    /// `spade run --project DIR ARGS...` with a 100x time scale unless ARGS set one.
    pub(crate) fn run(&self, args: &[&str]) -> Ran {
        let mut cmd = self.command(args);
        let out = cmd.output().unwrap();
        Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub(crate) fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = util::spade();
        cmd.arg("run").arg("--project").arg(self.path());
        if !args.contains(&"--time-scale") {
            cmd.args(["--time-scale", "100"]);
        }
        cmd.args(args).current_dir(self.path());
        cmd.env_remove("SPADE_LOG").env_remove("RUST_LOG");
        cmd
    }
}

pub(crate) fn fixture_path(name: &str, ext: &str) -> PathBuf {
    util::root()
        .join("tests/fixtures/runs")
        .join(format!("{name}.{ext}"))
}

/// Runs a fixture and compares its `out` file with `NAME.out`.
fn check(name: &str, args: &[&str], code: i32) -> (Project, Ran) {
    let project = Project::fixture(name);
    let ran = project.run(&[&[name][..], args].concat());
    ran.expect(code);
    let expect = std::fs::read_to_string(fixture_path(name, "out")).unwrap();
    assert_eq!(project.read("out"), expect, "out of {name}\n{}", ran.stderr);
    (project, ran)
}

#[test]
fn sequential_tasks_run_in_order() {
    let (_p, ran) = check("sequential", &[], 0);
    assert!(
        ran.stderr.contains("+sequential+a started"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("+sequential+c succeeded in "),
        "{}",
        ran.stderr
    );
}

#[test]
fn nested_groups_run_depth_first() {
    check("nested", &[], 0);
}

#[test]
fn parallel_group_runs_children_together_then_joins() {
    check("parallel", &[], 0);
}

#[test]
fn parallel_limit_runs_chunks_one_after_another() {
    let project = Project::fixture("parallel_limit");
    project.run(&["parallel_limit"]).expect(0);
    let events = project.read("events");
    let at = |line: &str| {
        events
            .lines()
            .position(|l| l == line)
            .unwrap_or_else(|| panic!("`{line}` missing from:\n{events}"))
    };
    // a and b meet (they wait for each other), and c, d start only after both ended.
    for late in ["start c", "start d"] {
        for early in ["end a", "end b"] {
            assert!(at(early) < at(late), "{early} before {late}:\n{events}");
        }
    }
}

#[test]
fn background_task_starts_with_its_group() {
    check("background", &[], 0);
}

#[test]
fn exports_reach_descendants_only_and_params_nest() {
    check("export", &["-p", "who=cli", "-p", "nested.k=v"], 0);
}

#[test]
fn stored_params_reach_later_tasks() {
    check("store", &[], 0);
}

#[test]
fn error_handlers_cascade_and_check_runs_after_success() {
    let (_p, ran) = check("error_check", &[], 1);
    assert!(
        ran.stderr
            .contains("failed: +error_check+broken: expected failure"),
        "the final summary names the failed task\n{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("failed: expected failure"),
        "{}",
        ran.stderr
    );
}

/// Retry tests run virtual time 5x faster and check the virtual duration: at least the sum of
/// the waits, and not much more (the slack covers process start-up at 5x).
fn assert_waited(ran: &Ran, waits: f64) {
    let secs = ran.seconds();
    assert!(
        (waits..waits + 4.0).contains(&secs),
        "took {secs} virtual seconds, expected the {waits} s of retry waits plus start-up\n{}",
        ran.stderr
    );
}

#[test]
fn task_retry_with_constant_interval() {
    let (_p, ran) = check("retry_constant", &["--time-scale", "5"], 0);
    // Two waits of 5 virtual seconds.
    assert_waited(&ran, 10.0);
}

#[test]
fn task_retry_with_exponential_interval() {
    let (_p, ran) = check("retry_exponential", &["--time-scale", "5"], 1);
    // 2 + 4 + 8 virtual seconds between the four tries.
    assert_waited(&ran, 14.0);
}

#[test]
fn group_retry_reruns_the_group_from_its_first_task() {
    check("group_retry", &[], 0);
}

#[test]
fn named_attempt_is_resumed_not_repeated_and_rerun_repeats_it() {
    let project = Project::fixture("sequential");
    let args = [
        "sequential",
        "--attempt-name",
        "x",
        "--session",
        "2026-01-01",
    ];
    project.run(&args).expect(0);
    assert_eq!(project.read("out"), "abc");
    project.run(&args).expect(0);
    assert_eq!(
        project.read("out"),
        "abc",
        "a finished attempt must not run again"
    );
    project.run(&[&args[..], &["--rerun"]].concat()).expect(0);
    assert_eq!(project.read("out"), "abcabc");
}

#[test]
fn resume_after_a_crash_skips_succeeded_tasks() {
    let project = Project::fixture("resume");
    let args = ["resume", "--session", "2026-01-01"];
    let crashed = project.run(&args);
    assert_eq!(crashed.code, -1, "killed by SIGKILL\n{}", crashed.stderr);
    assert_eq!(project.read("out"), "first ");
    let resumed = project.run(&args);
    resumed.expect(0);
    assert!(
        resumed.stderr.contains("it continues where it stopped"),
        "{}",
        resumed.stderr
    );
    assert_eq!(project.read("out"), "first second third");
}

#[test]
fn session_last_reuses_the_newest_session() {
    let project = Project::fixture("sequential");
    project
        .run(&["sequential", "--session", "2026-01-05"])
        .expect(0);
    project
        .run(&["sequential", "--session", "2026-01-03"])
        .expect(0);
    let ran = project.run(&["sequential", "--session", "last"]);
    ran.expect(0);
    assert!(
        ran.stderr.contains("at 2026-01-05T00:00:00"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("already succeeded"), "{}", ran.stderr);
    assert_eq!(
        project.read("out"),
        "abcabc",
        "the finished session is not run again"
    );
}

#[test]
fn failed_attempt_resumes_keeping_succeeded_tasks() {
    let project = Project::fixture("resume_failed");
    let args = ["resume_failed", "--session", "2026-01-01"];
    let failed = project.run(&args);
    failed.expect(1);
    assert!(
        failed.stderr.contains("failed: +resume_failed+third"),
        "{}",
        failed.stderr
    );
    assert_eq!(project.read("out"), "first second third ");
    project.write("fixed", "");
    let resumed = project.run(&args);
    resumed.expect(0);
    assert!(
        resumed
            .stderr
            .contains("resumes: 2 succeeded tasks kept (+resume_failed+first, +resume_failed+second), the rest runs again"),
        "{}",
        resumed.stderr
    );
    assert!(
        !resumed.stderr.contains("+resume_failed+first started"),
        "{}",
        resumed.stderr
    );
    assert_eq!(
        project.read("out"),
        "first second third third fourth=stored-by-first ",
        "the first two tasks ran once; the fourth sees what the first stored"
    );
    // Succeeded now: running it again does nothing; `--rerun` runs everything again.
    project.run(&args).expect(0);
    assert_eq!(
        project.read("out"),
        "first second third third fourth=stored-by-first "
    );
    project.run(&[&args[..], &["--rerun"]].concat()).expect(0);
    assert_eq!(
        project.read("out"),
        "first second third third fourth=stored-by-first \
         first second third fourth=stored-by-first "
    );
}

#[test]
fn echo_prints_on_stdout_and_sh_output_passes_through() {
    let project = Project::new();
    project.write(
        "hello.dig",
        "+say:\n  echo>: hello there\n+shell:\n  sh>: echo from-sh; echo to-stderr >&2\n",
    );
    let ran = project.run(&["hello"]);
    ran.expect(0);
    assert_eq!(ran.stdout, "hello there\nfrom-sh\n");
    assert!(ran.stderr.contains("to-stderr"), "{}", ran.stderr);
    assert!(ran.stderr.contains("succeeded in"), "{}", ran.stderr);
}

#[test]
fn example_project_runs() {
    let dir = util::root().join("workflows");
    let project = Project::new();
    copy_dir(&dir, project.path());
    let ran = project.run(&["daily_etl", "--session", "2026-01-01"]);
    ran.expect(0);
    assert!(
        ran.stdout.contains("loaded 18 rows"),
        "{}\n{}",
        ran.stdout,
        ran.stderr
    );
    project.run(&["hello"]).expect(0);
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
