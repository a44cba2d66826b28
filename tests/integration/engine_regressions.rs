//! Issue 10 ("the engine, exact and linear"): one test per failure the review found, through
//! the real binary. Each failed on the code before its fix.

// Test helpers outside `#[test]` functions: a failed unwrap is a failed test here.
#![allow(clippy::unwrap_used)]

use crate::run::Project;
use std::fmt::Write as _;

/// Rows of a table in the project's database.
fn count(project: &Project, sql: &str) -> i64 {
    let db = rusqlite::Connection::open(project.path().join(".spade/spade.db")).unwrap();
    db.query_row(sql, [], |r| r.get(0)).unwrap()
}

// Item 1: stores apply in Digdag's tree order (spec 4.2: each upstream sibling, then all its
// descendants depth first). Rows are instantiated level by level, so `+g+b` has a smaller id
// than `+g+a+a1` and row-id order let `a1` win.
#[test]
fn stored_params_follow_digdags_tree_order() {
    let project = Project::new();
    project.write(
        "wf.dig",
        "+g:\n\
         \x20 +a:\n\
         \x20   +a1:\n\
         \x20     sh>: echo k=a1 > $SPADE_STORE\n\
         \x20 +b:\n\
         \x20   sh>: echo k=b > $SPADE_STORE\n\
         +join1:\n\
         \x20 echo>: \"g ${k}\"\n\
         \x20 append_file: out\n\
         +p:\n\
         \x20 _parallel: true\n\
         \x20 +x:\n\
         \x20   +x1:\n\
         \x20     sh>: sleep 0.2; echo k=x1 > $SPADE_STORE\n\
         \x20 +y:\n\
         \x20   sh>: echo k=y > $SPADE_STORE\n\
         +join2:\n\
         \x20 echo>: \" p ${k}\"\n\
         \x20 append_file: out\n\
         +fe:\n\
         \x20 for_each>:\n\
         \x20   v: [1, 2]\n\
         \x20 _do:\n\
         \x20   +n:\n\
         \x20     +m:\n\
         \x20       sh>: echo k=m$v > $SPADE_STORE\n\
         \x20   +o:\n\
         \x20     sh>: echo k=o$v > $SPADE_STORE\n\
         +join3:\n\
         \x20 sh>: printf ' fe %s' \"$k\" >> out; test -f ok\n",
    );
    project.run(&["wf"]).expect(1);
    assert_eq!(project.read("out"), "g b p y fe o2");
    // A resume keeps the groups' tasks one by one; the join sees the same stores.
    project.write("ok", "");
    let resumed = project.run(&["wf"]);
    resumed.expect(0);
    assert_eq!(
        project.read("out"),
        "g b p y fe o2 fe o2",
        "{}",
        resumed.stderr
    );
}

// Item 2: built-in variables win over `-p`, `_export` and stores (Digdag 0.10+, spec 3); only
// a task's own local params may shadow them.
#[test]
fn built_in_variables_cannot_be_overridden_except_by_local_params() {
    let project = Project::new();
    project.write(
        "wf.dig",
        "_export:\n\
         \x20 session_date: exported\n\
         +store:\n\
         \x20 sh>: echo task_name=stored > $SPADE_STORE\n\
         +show:\n\
         \x20 echo>: \"${session_date} ${task_name} ${session_time}\"\n\
         +local:\n\
         \x20 session_date: local\n\
         \x20 echo>: \"${session_date}\"\n",
    );
    let ran = project.run(&["wf", "--session", "2026-03-04", "-p", "session_time=param"]);
    ran.expect(0);
    assert_eq!(
        ran.stdout, "2026-03-04 +wf+show 2026-03-04T00:00:00+00:00\nlocal\n",
        "{}",
        ran.stderr
    );
}

// Item 3: a group's `_error` sees what the group's descendants stored (spec 5.6).
#[test]
fn group_error_handler_sees_the_stores_of_its_descendants() {
    let project = Project::new();
    project.write(
        "wf.dig",
        "+g:\n\
         \x20 _error:\n\
         \x20   echo>: \"handler sees ${k} and ${error.message}\"\n\
         \x20 +a:\n\
         \x20   sh>: echo k=A > $SPADE_STORE\n\
         \x20 +b:\n\
         \x20   fail>: x\n",
    );
    let ran = project.run(&["wf"]);
    ran.expect(1);
    assert_eq!(ran.stdout, "handler sees A and x\n", "{}", ran.stderr);
}

// Item 4: resuming after the file changed runs the tasks the previous try did not have, also
// inside a group that succeeded, and says what it kept and what is new.
#[test]
fn resume_runs_tasks_added_to_a_succeeded_group_and_says_so() {
    let project = Project::new();
    let first = "+g:\n\
                 \x20 +a:\n\
                 \x20   sh>: echo a >> out\n\
                 +f:\n\
                 \x20 sh>: test -f ok\n";
    project.write("wf.dig", first);
    project.run(&["wf"]).expect(1);
    project.write(
        "wf.dig",
        &first.replace("+f:", "  +added:\n    sh>: echo added >> out\n+f:"),
    );
    project.write("ok", "");
    let resumed = project.run(&["wf"]);
    resumed.expect(0);
    assert_eq!(project.read("out"), "a\nadded\n", "{}", resumed.stderr);
    assert!(
        resumed
            .stderr
            .contains("resumes: 1 succeeded task kept (+wf+g+a), the rest runs again"),
        "{}",
        resumed.stderr
    );
    assert!(
        resumed
            .stderr
            .contains("the workflow changed since the previous try; 1 new task runs (+wf+g+added)"),
        "{}",
        resumed.stderr
    );
}

// Item 5: the task limit counts the live tree. It counted every row of the attempt, so a
// group retry of a 600-item `for_each>` failed with "(605 exist)" (and so did every resume).
#[test]
fn task_limit_counts_the_live_tree_and_can_be_raised() {
    let mut values = String::new();
    for i in 0..600 {
        let _ = write!(values, "{}{i}", if i == 0 { "" } else { ", " });
    }
    let text = format!(
        "+g:\n\
         \x20 _retry: 1\n\
         \x20 +fe:\n\
         \x20   for_each>:\n\
         \x20     v: [{values}]\n\
         \x20   _parallel: true\n\
         \x20   _do:\n\
         \x20     nop>:\n\
         \x20 +f:\n\
         \x20   sh>: test -f ok || {{ touch ok; exit 1; }}\n"
    );
    let project = Project::new();
    project.write("wf.dig", &text);
    let ran = project.run(&["wf"]);
    ran.expect(0);
    // A limit below one try's size fails the generator and says how to raise it.
    let small = Project::new();
    small.write("wf.dig", &text);
    let ran = small.run(&["wf", "--task-limit", "100"]);
    ran.expect(1);
    assert!(
        ran.stderr.contains("the attempt's task limit") && ran.stderr.contains("--task-limit"),
        "{}",
        ran.stderr
    );
}

// Item 6: `_after` is honoured in `_parallel: {limit: N}` groups (it was ignored), and
// `limit: 0` means no limit (it was an error).
#[test]
fn after_works_in_limited_groups_and_limit_zero_is_unlimited() {
    let project = Project::new();
    project.write(
        "wf.dig",
        "+p:\n\
         \x20 _parallel:\n\
         \x20   limit: 2\n\
         \x20 +a:\n\
         \x20   sh>: sleep 0.5; touch a_done\n\
         \x20 +b:\n\
         \x20   _after: +a\n\
         \x20   sh>: test -f a_done\n",
    );
    let ran = project.run(&["wf"]);
    ran.expect(0);
    // Three tasks that only finish once all three have started.
    let project = Project::new();
    let mut text = String::from("+p:\n  _parallel:\n    limit: 0\n");
    for t in ["a", "b", "c"] {
        let _ = writeln!(
            text,
            "  +{t}:\n    sh>: touch {t}; until [ -f a ] && [ -f b ] && [ -f c ]; do sleep 0.01; done\n    _timeout: 30s"
        );
    }
    project.write("wf.dig", &text);
    let ran = project.run(&["wf", "--time-scale", "1"]);
    ran.expect(0);
}

// Item 7: `_timeout` on a group bounds the whole group (it was accepted and did nothing), and
// on `call>` it bounds the callee (it bounded only the loading of the file).
#[test]
fn timeout_bounds_a_group_and_a_called_workflow() {
    let project = Project::new();
    project.write(
        "wf.dig",
        "+g:\n\
         \x20 _timeout: 2s\n\
         \x20 +slow:\n\
         \x20   sh>: sleep 3; echo late >> out\n\
         +after:\n\
         \x20 echo>: never\n",
    );
    let ran = project.run(&["wf", "--time-scale", "10"]);
    ran.expect(1);
    assert!(
        ran.stderr.contains("try timed out after 2s (_timeout)"),
        "{}",
        ran.stderr
    );
    assert_eq!(project.read("out"), "", "the slow task was killed");
    let project = Project::new();
    project.write("callee.dig", "+slow:\n  sh>: sleep 3; echo late >> out\n");
    project.write(
        "wf.dig",
        "+c:\n\
         \x20 call>: callee\n\
         \x20 _timeout: 2s\n",
    );
    let ran = project.run(&["wf", "--time-scale", "10"]);
    ran.expect(1);
    assert!(
        ran.stderr.contains("try timed out after 2s (_timeout)"),
        "{}",
        ran.stderr
    );
    assert_eq!(project.read("out"), "");
}

// Item 8: `_retry` fields may be expressions, evaluated with the task's params.
#[test]
fn retry_fields_are_evaluated_with_the_task_params() {
    let project = Project::new();
    project.write(
        "wf.dig",
        "_export:\n\
         \x20 n: 2\n\
         \x20 i: 1s\n\
         +flaky:\n\
         \x20 _retry:\n\
         \x20   limit: ${n}\n\
         \x20   interval: ${i}\n\
         \x20 sh>: echo try >> out; exit 1\n",
    );
    let ran = project.run(&["wf"]);
    ran.expect(1);
    assert_eq!(project.read("out"), "try\ntry\ntry\n", "{}", ran.stderr);
}

// Item 9: new `-p` values deep-merge into the attempt's params on a resume (Digdag
// `Retry.java`); `cfg.c` given earlier was dropped.
#[test]
fn new_params_deep_merge_into_a_resumed_attempt() {
    let project = Project::new();
    project.write(
        "wf.dig",
        "+show:\n\
         \x20 sh>: echo \"${cfg.b} ${cfg.c}\" >> out; test -f ok\n",
    );
    project
        .run(&["wf", "-p", "cfg.b=1", "-p", "cfg.c=3"])
        .expect(1);
    project.write("ok", "");
    project.run(&["wf", "-p", "cfg.b=2"]).expect(0);
    assert_eq!(project.read("out"), "1 3\n2 3\n");
}

/// A workflow whose deepest task sits `depth` levels below the workflow, with an `_export` at
/// the top nesting `value_depth` maps.
fn deep_workflow(depth: usize, value_depth: usize) -> String {
    let mut text = String::from("_export:\n  deep:");
    for i in 0..value_depth {
        let _ = write!(text, "\n{}k{i}:", "  ".repeat(i + 2));
    }
    let _ = writeln!(text, " bottom");
    for d in 0..depth - 1 {
        let _ = writeln!(text, "{}+d{d}:", "  ".repeat(d));
    }
    let _ = writeln!(
        text,
        "{}+leaf:\n{}  echo>: reached ${{typeof deep.k0.k1.k2}}",
        "  ".repeat(depth - 1),
        "  ".repeat(depth - 1)
    );
    text
}

// Item 10: no depth that `spade check` accepts may fail at run time. A workflow 60 levels deep
// failed at start with "corrupt task definition in the database: recursion limit exceeded"
// (nested JSON past serde's 128 levels), and so did a deeply nested `_export`.
#[test]
fn the_deepest_workflow_check_accepts_runs() {
    let max = 100;
    let project = Project::new();
    project.write("wf.dig", &deep_workflow(max, 150));
    let checked = crate::util::spade()
        .args(["check", "wf.dig"])
        .current_dir(project.path())
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let ran = project.run(&["wf"]);
    ran.expect(0);
    assert_eq!(ran.stdout, "reached object\n", "{}", ran.stderr);
    // One level more is a check error naming the limit, and `spade run` refuses it (exit 2).
    let project = Project::new();
    project.write("wf.dig", &deep_workflow(max + 1, 1));
    let ran = project.run(&["wf"]);
    ran.expect(2);
    assert!(
        ran.stderr.contains("more than the limit of 100"),
        "{}",
        ran.stderr
    );
    // A generator at the limit counts its generated levels at check time, as at run time.
    // `+fe` at depth 98: its `^sub` at 99, each item's task at 100.
    let mut text = String::new();
    for d in 0..max - 3 {
        let _ = writeln!(text, "{}+d{d}:", "  ".repeat(d));
    }
    let indent = "  ".repeat(max - 3);
    let _ = writeln!(
        text,
        "{indent}+fe:\n{indent}  for_each>:\n{indent}    v: [a]\n{indent}  _do:\n{indent}    echo>: gen ${{v}}"
    );
    let project = Project::new();
    project.write("wf.dig", &text);
    let ran = project.run(&["wf"]);
    ran.expect(0);
    assert_eq!(ran.stdout, "gen a\n");
    let project = Project::new();
    project.write(
        "wf.dig",
        &format!("+extra:\n  {}", text.replace('\n', "\n  ")),
    );
    let ran = project.run(&["wf"]);
    ran.expect(2);
    assert!(
        ran.stderr.contains("more than the limit of 100"),
        "{}",
        ran.stderr
    );
}

// Issue 12 item 1 (engine part): values `spade check` accepts are stored exactly. `.inf`,
// `.nan` and `1e400` passed `check` and then failed every run with "corrupt task definition in
// the database" (serde_json writes infinities as `null`).
#[test]
fn non_finite_numbers_in_a_definition_run() {
    let project = Project::new();
    project.write(
        "wf.dig",
        "_export:\n\
         \x20 v: .inf\n\
         \x20 n: .nan\n\
         \x20 big: 1e400\n\
         +a:\n\
         \x20 echo>: ran\n",
    );
    let ran = project.run(&["wf"]);
    ran.expect(0);
    assert_eq!(ran.stdout, "ran\n", "{}", ran.stderr);
}

// Item 11: what `spade run` says, and the input it refuses.
#[test]
fn run_messages_say_what_happens_and_refuse_what_cannot_apply() {
    let project = Project::new();
    project.write("wf.dig", "+a:\n  echo>: hi\n");
    project.run(&["wf"]).expect(0);
    let again = project.run(&["wf", "-p", "x=1"]);
    again.expect(0);
    assert!(
        again.stderr.contains("already succeeded, so nothing runs (the -p/-P values were not applied); run it again with --rerun"),
        "{}",
        again.stderr
    );
    assert_eq!(again.stdout, "");
    let rerun = project.run(&["wf", "--rerun"]);
    rerun.expect(0);
    assert!(
        rerun.stderr.contains("runs again from scratch (--rerun)"),
        "{}",
        rerun.stderr
    );
    // A `-P` file that does not exist is input to fix.
    let missing = project.run(&["wf", "-P", "nope.yml", "--attempt-name", "other"]);
    missing.expect(2);
    assert!(missing.stderr.contains("nope.yml"), "{}", missing.stderr);
    // `_check` on a group runs once its children succeeded.
    let project = Project::new();
    project.write(
        "wf.dig",
        "+g:\n\
         \x20 _check:\n\
         \x20   echo>: checked\n\
         \x20 +a:\n\
         \x20   echo>: child\n",
    );
    let ran = project.run(&["wf"]);
    ran.expect(0);
    assert_eq!(ran.stdout, "child\nchecked\n");
}

/// Kills `spade run` once `file` exists in the project (the task is then running).
fn kill_when(project: &Project, args: &[&str], file: &str) {
    let mut child = project
        .command(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !project.path().join(file).exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{file} never appeared"
        );
        assert!(child.try_wait().unwrap().is_none(), "spade ended early");
        #[allow(clippy::disallowed_methods)] // polling a real child process from a test
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

// Item 11: an unfinished attempt (spade was killed) refuses new `-p` values and `--rerun`
// instead of silently ignoring them, and continues without them.
#[test]
fn an_unfinished_attempt_refuses_new_params_and_rerun() {
    let project = Project::new();
    project.write(
        "wf.dig",
        "+a:\n  sh>: test -f go || { touch started; sleep 30; }; echo \"a $x\" >> out\n",
    );
    kill_when(&project, &["wf", "-p", "x=1"], "started");
    let ran = project.run(&["wf", "-p", "x=2"]);
    ran.expect(2);
    assert!(
        ran.stderr.contains("has not finished") && ran.stderr.contains("-p"),
        "{}",
        ran.stderr
    );
    let ran = project.run(&["wf", "-p", "x=1", "--rerun"]);
    ran.expect(2);
    assert!(
        ran.stderr.contains("`--rerun` cannot start it over"),
        "{}",
        ran.stderr
    );
    project.write("go", "");
    // The same params as it started with (or none) continue it.
    let ran = project.run(&["wf", "-p", "x=1"]);
    ran.expect(0);
    assert!(
        ran.stderr.contains("it continues where it stopped"),
        "{}",
        ran.stderr
    );
    assert_eq!(project.read("out"), "a 1\n");
}

// Item 12: the revision hash covers `!include`d and `call>`ed files: changing one is a new
// revision (and a resume says the definition changed).
#[test]
fn included_and_called_files_are_part_of_the_revision() {
    let project = Project::new();
    project.write("parts/inc.dig", "echo>: included v1\n");
    project.write("sub/callee.dig", "+c:\n  call>: deeper\n");
    project.write("sub/deeper.dig", "+d:\n  echo>: deeper v1\n");
    project.write(
        "wf.dig",
        "+i:\n  !include : parts/inc.dig\n+c:\n  call>: sub/callee\n+f:\n  sh>: test -f ok\n",
    );
    let ran = project.run(&["wf"]);
    ran.expect(1);
    assert!(!ran.stderr.contains("error"), "{}", ran.stderr);
    project.write("parts/inc.dig", "echo>: included v2\n");
    let ran = project.run(&["wf"]);
    ran.expect(1);
    assert!(
        ran.stderr.contains("the workflow changed"),
        "{}",
        ran.stderr
    );
    // A file the callee calls, found relative to the callee's directory.
    project.write("sub/deeper.dig", "+d:\n  echo>: deeper v2\n");
    project.write("ok", "");
    let ran = project.run(&["wf"]);
    ran.expect(0);
    assert!(
        ran.stderr.contains("the workflow changed"),
        "{}",
        ran.stderr
    );
    assert_eq!(count(&project, "SELECT COUNT(*) FROM revisions"), 3);
}
