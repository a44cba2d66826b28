//! Resume by definition fingerprint: a resumed attempt keeps a task that succeeded only when
//! its definition is unchanged and nothing before it runs again; a changed task reruns with
//! everything after it (`spade run` on a failed attempt, and `spade retry --resume`).

use crate::run::Project;

/// Appends its name to `out` (what ran, in order).
fn task(name: &str, text: &str) -> String {
    format!("+{name}:\n  sh>: echo {text} >> out\n")
}

#[test]
fn a_changed_task_reruns_with_every_task_after_it_and_what_comes_before_is_kept() {
    let project = Project::new();
    let gate = "+gate:\n  sh>: test -f ok\n";
    let v1 = [
        task("first", "first"),
        task("second", "second"),
        task("third", "third"),
        gate.to_owned(),
    ]
    .concat();
    project.write("wf.dig", &v1);
    project.run(&["wf"]).expect(1);
    assert_eq!(project.read("out"), "first\nsecond\nthird\n");

    // `+second` changes; `+third` is unchanged but comes after it.
    let v2 = v1.replace("echo second", "echo second-v2");
    project.write("wf.dig", &v2);
    project.write("ok", "");
    let resumed = project.run(&["wf"]);
    resumed.expect(0);
    assert_eq!(
        project.read("out"),
        "first\nsecond\nthird\nsecond-v2\nthird\n",
        "{}",
        resumed.stderr
    );
    for line in [
        "resumes: 1 succeeded task kept (+wf+first)",
        "1 changed task runs again (+wf+second)",
        "1 succeeded task after them runs again (+wf+third)",
    ] {
        assert!(resumed.stderr.contains(line), "{line}\n{}", resumed.stderr);
    }
}

#[test]
fn a_task_moved_by_an_edit_elsewhere_in_the_file_is_kept() {
    let project = Project::new();
    let v1 = [task("a", "a"), "+gate:\n  sh>: test -f ok\n".to_owned()].concat();
    project.write("wf.dig", &v1);
    project.run(&["wf"]).expect(1);
    // Comments and blank lines above move every span; a new param elsewhere changes the
    // revision. Neither changes `+a`.
    project.write(
        "wf.dig",
        &format!("# a comment\n\n# and another\n{v1}+tail:\n  echo>: tail\n"),
    );
    project.write("ok", "");
    let resumed = project.run(&["wf"]);
    resumed.expect(0);
    assert_eq!(project.read("out"), "a\n", "{}", resumed.stderr);
    assert!(
        resumed.stderr.contains("1 succeeded task kept (+wf+a)"),
        "{}",
        resumed.stderr
    );
}

#[test]
fn a_change_inside_a_group_reruns_its_later_siblings_and_the_tasks_after_the_group() {
    let project = Project::new();
    let v1 = "+before:\n  sh>: echo before >> out\n\
         +g:\n  +g1:\n    sh>: echo g1 >> out\n  +g2:\n    sh>: echo g2 >> out\n\
         +after:\n  sh>: echo after >> out\n\
         +gate:\n  sh>: test -f ok\n"
        .to_owned();
    project.write("wf.dig", &v1);
    project.run(&["wf"]).expect(1);
    project.write("wf.dig", &v1.replace("echo g1", "echo g1-v2"));
    project.write("ok", "");
    let resumed = project.run(&["wf"]);
    resumed.expect(0);
    assert_eq!(
        project.read("out"),
        "before\ng1\ng2\nafter\ng1-v2\ng2\nafter\n",
        "{}",
        resumed.stderr
    );
    assert!(
        resumed
            .stderr
            .contains("1 changed task runs again (+wf+g+g1)"),
        "{}",
        resumed.stderr
    );
}

#[test]
fn a_change_in_one_parallel_branch_keeps_the_other_branches() {
    let project = Project::new();
    let v1 =
        "+p:\n  _parallel: true\n  +x:\n    sh>: echo x >> out\n  +y:\n    sh>: echo y >> out\n\
         +gate:\n  sh>: test -f ok\n"
            .to_owned();
    project.write("wf.dig", &v1);
    project.run(&["wf"]).expect(1);
    let before = project.read("out");
    project.write("wf.dig", &v1.replace("echo x", "echo x-v2"));
    project.write("ok", "");
    let resumed = project.run(&["wf"]);
    resumed.expect(0);
    let after = project.read("out");
    assert_eq!(
        after.strip_prefix(before.as_str()),
        Some("x-v2\n"),
        "only the changed branch runs\n{}",
        resumed.stderr
    );
}

#[test]
fn a_changed_group_export_reruns_the_whole_group() {
    let project = Project::new();
    let v1 = "+g:\n  _export:\n    v: one\n  +a:\n    sh>: echo a-${v} >> out\n  +b:\n    sh>: echo b-${v} >> out\n\
              +gate:\n  sh>: test -f ok\n";
    project.write("wf.dig", v1);
    project.run(&["wf"]).expect(1);
    project.write("wf.dig", &v1.replace("v: one", "v: two"));
    project.write("ok", "");
    let resumed = project.run(&["wf"]);
    resumed.expect(0);
    assert_eq!(
        project.read("out"),
        "a-one\nb-one\na-two\nb-two\n",
        "what a task reads from its group is part of its definition\n{}",
        resumed.stderr
    );
}

#[test]
fn a_changed_check_reruns_its_task() {
    let project = Project::new();
    let v1 = "+a:\n  sh>: echo a >> out\n  _check:\n    sh>: echo check-one >> out\n\
              +gate:\n  sh>: test -f ok\n";
    project.write("wf.dig", v1);
    project.run(&["wf"]).expect(1);
    project.write("wf.dig", &v1.replace("check-one", "check-two"));
    project.write("ok", "");
    let resumed = project.run(&["wf"]);
    resumed.expect(0);
    assert_eq!(
        project.read("out"),
        "a\ncheck-one\na\ncheck-two\n",
        "{}",
        resumed.stderr
    );
}

#[test]
fn an_unchanged_resume_after_a_failure_keeps_every_success_as_before() {
    // The failure case of every resume: nothing changed but the world (`ok` appears).
    let project = Project::new();
    let v1 = format!(
        "{}+p:\n  _parallel: true\n  +x:\n    sh>: echo x >> out\n  +y:\n    sh>: test -f ok\n{}",
        task("a", "a"),
        task("z", "z"),
    );
    project.write("wf.dig", &v1);
    project.run(&["wf"]).expect(1);
    project.write("ok", "");
    let resumed = project.run(&["wf"]);
    resumed.expect(0);
    assert_eq!(project.read("out"), "a\nx\nz\n", "{}", resumed.stderr);
    assert!(
        resumed
            .stderr
            .contains("resumes: 2 succeeded tasks kept (+wf+a, +wf+p+x)"),
        "{}",
        resumed.stderr
    );
}

#[test]
fn a_changed_for_each_body_reruns_every_iteration() {
    let project = Project::new();
    let v1 = "+loop:\n  for_each>:\n    n: [1, 2]\n  _do:\n    sh>: echo one-${n} >> out\n\
              +gate:\n  sh>: test -f ok\n";
    project.write("wf.dig", v1);
    project.run(&["wf"]).expect(1);
    assert_eq!(project.read("out"), "one-1\none-2\n");
    project.write("wf.dig", &v1.replace("echo one", "echo two"));
    project.write("ok", "");
    let resumed = project.run(&["wf"]);
    resumed.expect(0);
    assert_eq!(
        project.read("out"),
        "one-1\none-2\ntwo-1\ntwo-2\n",
        "{}",
        resumed.stderr
    );
}

#[test]
fn an_unchanged_for_each_keeps_the_iterations_that_succeeded() {
    let project = Project::new();
    project.write(
        "wf.dig",
        "+loop:\n  for_each>:\n    n: [1, 2]\n  _do:\n    sh>: \"echo ran-${n} >> out; test ${n} = 1 || test -f ok\"\n",
    );
    project.run(&["wf"]).expect(1);
    project.write("ok", "");
    let resumed = project.run(&["wf"]);
    resumed.expect(0);
    assert_eq!(
        project.read("out"),
        "ran-1\nran-2\nran-2\n",
        "{}",
        resumed.stderr
    );
}
