//! `py>` end to end: the `py>` workflows of Digdag's corpus run against the Python modules of
//! `tests/fixtures/py/` (the corpus has the `.dig` files only), with stores, exports and
//! generated tasks visible to later tasks as in Digdag; exceptions, missing arguments and
//! secrets.

// Test helpers outside `#[test]` functions: a failed unwrap is a failed test here.
#![allow(clippy::unwrap_used)]

use crate::run::{copy_dir, Project, Ran};
use crate::util;
use std::path::{Path, PathBuf};

/// One `py>` workflow of the corpus and what running it must show.
struct Case {
    /// `.dig` files under `corpus/digdag/`, copied into the project; the first is run.
    digs: &'static [&'static str],
    /// The directory of `tests/fixtures/py/` copied into the project.
    modules: &'static str,
    code: i32,
    /// Lines that stdout (echo> and the Python code's output) must hold.
    stdout: &'static [&'static str],
    /// Fragments that stderr (progress, task output on stderr, failures) must hold.
    stderr: &'static [&'static str],
    /// `(file, content)`: files the workflow writes, trimmed.
    files: &'static [(&'static str, &'static str)],
}

const EXAMPLES: &str = "examples";

const CASES: &[Case] = &[
    Case {
        digs: &["examples/python_args.dig"],
        modules: EXAMPLES,
        code: 0,
        stdout: &[
            "required_arguments: '1' 2",
            "optional_arguments: None 'default'",
            "mixed_arguments: 'a' {'b': 'c'} None",
            "keyword_arguments: 'a' 'a' 'val2' True",
            "exported_arguments: 'a' {'b': 'c'}",
        ],
        stderr: &[],
        files: &[],
    },
    Case {
        digs: &["examples/export_params.dig"],
        modules: EXAMPLES,
        code: 0,
        stdout: &["my_param: {'key': 'value'}"],
        stderr: &[],
        files: &[],
    },
    Case {
        digs: &["examples/params.dig", "examples/params_child.dig"],
        modules: EXAMPLES,
        code: 0,
        stdout: &[
            "workflow is running for 2016-01-01T00:00:00+00:00",
            "simple: local data, local number",
            "step1: {'user': 'exported'}",
            "step2: {'user': 'exported'} local table",
            "overwrite: {'user': 'overwrite'}",
            "step3: {'user': 'exported'}",
            // An export of a `py>` task reaches the `call>` it generates, and its tasks.
            "show_export: carried information",
        ],
        stderr: &["+params+export_params_2+set_export_and_call_child^sub+subtask0^sub+export_params_dependent2 succeeded"],
        files: &[],
    },
    Case {
        digs: &["examples/python_generate_subtasks.dig"],
        modules: EXAMPLES,
        code: 0,
        stdout: &["processing 0", "processing 1", "processing 2"],
        stderr: &["+python_generate_subtasks+parallel_process^sub+subtask2 succeeded"],
        files: &[],
    },
    Case {
        digs: &["examples/conditions.dig"],
        modules: EXAMPLES,
        code: 0,
        // The parallel tasks' stores merge in definition order: `bzip2` wins `size_deflate`.
        stdout: &[
            "sizes: [('deflate', 6), ('zlib', 10)]",
            "using file: output.bz2",
        ],
        stderr: &[],
        files: &[],
    },
    Case {
        digs: &["examples/error_task.dig"],
        modules: EXAMPLES,
        code: 1,
        stdout: &["error seen: Python command failed with code 1: This task fails (Exception)"],
        stderr: &["Exception: This task fails"],
        files: &[],
    },
    Case {
        digs: &["examples/check_task.dig"],
        modules: EXAMPLES,
        code: 0,
        stdout: &["check_generated: ok", "Generator.check: result.csv ok"],
        stderr: &[],
        files: &[("result.csv", "ok")],
    },
    Case {
        digs: &["digdag-tests/src/test/resources/acceptance/params_visibility/params_visibility.dig"],
        modules: "params_visibility",
        code: 0,
        stdout: &[],
        stderr: &[],
        // `RunParamsVisibilityIT.testParams`.
        files: &[
            ("simple_export.out", "simple_export"),
            ("export_overwrite.out", "export_overwrite"),
            ("simple_store.out", "simple_store"),
            ("store_overwrite.out", "store_overwrite"),
            ("dag_store_join.out", "c"),
            ("parallel_store_fork_a.out", "a"),
            ("parallel_store_fork_b.out", "b"),
            ("parallel_store_fork_c.out", "prepare"),
            ("parallel_store_fork_join.out", "b"),
        ],
    },
    Case {
        digs: &["digdag-tests/src/test/resources/acceptance/py/stacktrace_python.dig"],
        modules: "acceptance_py",
        code: 1,
        // `PyIT.testPythonErrorMessageAndStacktrace`.
        stdout: &["ERROR_MESSAGE_BEGIN Python command failed with code 1: my error message (MyError) ERROR_MESSAGE_END"],
        stderr: &[
            "Traceback (most recent call last):",
            "stacktrace.py\", line 9, in run",
            "MyError: my error message",
        ],
        files: &[],
    },
    Case {
        digs: &["digdag-tests/src/test/resources/acceptance/py/syntax_error_python.dig"],
        modules: "acceptance_py",
        code: 1,
        stdout: &[],
        stderr: &[
            "syntax_error.py\", line 5",
            "failed: +syntax_error_python+task1: Python command failed with code 1: unterminated string literal",
            "(SyntaxError)",
        ],
        files: &[],
    },
    Case {
        digs: &["digdag-tests/src/test/resources/acceptance/py/dup_module.dig"],
        modules: "acceptance_py",
        code: 1,
        stdout: &[],
        stderr: &["duplicate module name with standard library"],
        files: &[],
    },
    Case {
        digs: &["digdag-tests/src/test/resources/acceptance/echo_params/echo_params.dig"],
        modules: "echo_params",
        code: 0,
        stdout: &[
            "digdag params",
            "session_time 2016-01-01T00:00:00+00:00",
            "task_name +echo_params+foo",
        ],
        stderr: &[],
        files: &[],
    },
    // Not listed: `digdag-cli/.../init_examples/python/workflow.dig` passes `order: ${order}`
    // to its `py>` tasks, which spade's evaluation reports as a reference cycle where Digdag
    // reads the exported `order` (an `expr::scope` divergence, not a `py>` one).
];

fn fixtures(modules: &str) -> PathBuf {
    util::root().join("tests/fixtures/py").join(modules)
}

/// A project with `modules` and the corpus files `digs`; `None` when `../shared` is missing.
fn corpus_project(digs: &[&str], modules: &str) -> Option<(Project, String)> {
    let corpus = util::shared()?.join("corpus/digdag");
    let project = Project::new();
    copy_dir(&fixtures(modules), project.path());
    for dig in digs {
        let text = std::fs::read_to_string(corpus.join(dig)).unwrap();
        let name = Path::new(dig).file_name().unwrap().to_string_lossy();
        project.write(&name, &text);
    }
    let first = Path::new(digs[0]).file_stem().unwrap().to_string_lossy();
    Some((project, first.into_owned()))
}

fn check_case(case: &Case, project: &Project, ran: &Ran) -> Vec<String> {
    let mut failures = Vec::new();
    let name = case.digs[0];
    if ran.code != case.code {
        failures.push(format!(
            "{name}: exit code {} (expected {})\nstdout:\n{}\nstderr:\n{}",
            ran.code, case.code, ran.stdout, ran.stderr
        ));
    }
    for line in case.stdout {
        if !ran.stdout.lines().any(|l| l == *line) {
            failures.push(format!(
                "{name}: no stdout line `{line}` in\n{}",
                ran.stdout
            ));
        }
    }
    for fragment in case.stderr {
        if !ran.stderr.contains(fragment) {
            failures.push(format!("{name}: no `{fragment}` in stderr\n{}", ran.stderr));
        }
    }
    for (file, content) in case.files {
        let got = project.read(file);
        if got.trim() != *content {
            failures.push(format!(
                "{name}: {file} holds `{}`, not `{content}`",
                got.trim()
            ));
        }
    }
    failures
}

#[test]
fn corpus_py_workflows_run_as_in_digdag() {
    let mut failures = Vec::new();
    for case in CASES {
        let Some((project, workflow)) = corpus_project(case.digs, case.modules) else {
            return;
        };
        let ran = project.run(&[&workflow, "--session", "2016-01-01"]);
        failures.extend(check_case(case, &project, &ran));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// `RunParamsVisibilityIT.testDynamicTasksParams`: stores made by tasks that `if>` generates
/// inside nested parallel `for_each>` loops are seen by the tasks after them in the same
/// iteration only.
#[test]
fn stores_of_generated_tasks_in_parallel_loops_stay_in_their_iteration() {
    let dig =
        "digdag-tests/src/test/resources/acceptance/params_visibility/dynamic_tasks_visibility.dig";
    let Some((project, workflow)) = corpus_project(&[dig], "params_visibility") else {
        return;
    };
    project
        .run(&[&workflow, "--session", "2016-01-01"])
        .expect(0);
    let mut wrong = Vec::new();
    for outer in 1..=5 {
        for inner in 1..=5 {
            let first = project.read(&format!("parallel_get_first_{outer}_{inner}.out"));
            let over = project.read(&format!("parallel_override_{outer}_{inner}.out"));
            if first.trim() != "initial" || over.trim() != format!("override_{outer}_{inner}") {
                wrong.push(format!("{outer}_{inner}: {first:?} {over:?}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:?}");
}

/// `config_python.dig` (`PyIT.verifyConfigurationPythonOption`): `python:` picks the
/// interpreter, as a command or a list with arguments. It names `python`, which a stock host
/// may lack, so the test puts one on `PATH`.
#[test]
fn python_option_chooses_the_interpreter() {
    let dig = "digdag-tests/src/test/resources/acceptance/py/config_python.dig";
    let Some((project, workflow)) = corpus_project(&[dig], "echo_params") else {
        return;
    };
    let python3 = find_on_path("python3").expect("python3 on PATH");
    let bin = project.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(&python3, bin.join("python")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = project
        .command(&[&workflow, "--session", "2016-01-01"])
        .env("PATH", path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.lines().any(|l| l == "python python"), "{stdout}");
    assert!(
        stdout.lines().any(|l| l == "python ['python', '-v']"),
        "{stdout}"
    );
    // `-v` reached the interpreter: it reports its imports.
    assert!(stderr.contains("import "), "{stderr}");
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

#[test]
fn a_missing_argument_fails_the_task_naming_it() {
    let project = Project::new();
    copy_dir(&fixtures(EXAMPLES), project.path());
    project.write(
        "args.dig",
        "+a:\n  py>: tasks.python_args.required_arguments\n  required1: one\n\
         +b:\n  py>: tasks.python_args.optional_arguments\n",
    );
    let ran = project.run(&["args"]);
    ran.expect(1);
    assert!(
        ran.stderr.contains(
            "failed: +args+a: Python command failed with code 1: \
             `tasks.python_args.required_arguments` requires parameter `required2`, which is \
             not set: add `required2:` to the task or to an `_export` (TypeError)"
        ),
        "{}",
        ran.stderr
    );
    // The code never ran, and the task after it neither.
    assert!(
        !ran.stdout.contains("required_arguments:"),
        "{}",
        ran.stdout
    );
    assert!(
        !ran.stdout.contains("optional_arguments:"),
        "{}",
        ran.stdout
    );
}

/// The task log holds the traceback (the runner's own frames left out); `_error` sees the
/// message, the class and the stack trace; `_retry` applies to an exception as in Digdag.
#[test]
fn an_exception_puts_its_traceback_in_the_log_and_its_message_in_the_error() {
    let project = Project::new();
    project.write(
        "flaky.py",
        "import os\n\n\
         def run(path):\n\
         \x20   n = int(open(path).read()) + 1 if os.path.exists(path) else 1\n\
         \x20   open(path, 'w').write(str(n))\n\
         \x20   helper(n)\n\n\
         def helper(n):\n\
         \x20   raise ValueError('try %d broke' % n)\n",
    );
    project.write(
        "boom.dig",
        "+t:\n  py>: flaky.run\n  path: tries\n  _retry: 1\n  _error:\n    \
         echo>: \"class=${error.class} message=${error.message}\"\n",
    );
    let ran = project.run(&["boom"]);
    ran.expect(1);
    assert_eq!(project.read("tries"), "2", "{}", ran.stderr);
    assert!(
        ran.stdout.contains(
            "class=ValueError message=Python command failed with code 1: try 2 broke (ValueError)"
        ),
        "{}",
        ran.stdout
    );
    let logs = task_logs(project.path());
    assert!(
        logs.contains("Traceback (most recent call last):"),
        "{logs}"
    );
    assert!(logs.contains("flaky.py\", line 6, in run"), "{logs}");
    assert!(logs.contains("flaky.py\", line 9, in helper"), "{logs}");
    assert!(logs.contains("ValueError: try 1 broke"), "{logs}");
    // The runner's own frames are left out.
    assert!(!logs.contains(", in main"), "{logs}");
    assert!(!logs.contains("importlib"), "{logs}");
}

/// Every task log of the project's attempts, concatenated.
pub(crate) fn task_logs(project: &Path) -> String {
    let mut out = String::new();
    let Ok(attempts) = std::fs::read_dir(project.join(".spade/logs")) else {
        return out;
    };
    for attempt in attempts.flatten() {
        let mut files: Vec<_> = std::fs::read_dir(attempt.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        for file in files {
            if file.extension().is_some_and(|e| e == "log") {
                out.push_str(&std::fs::read_to_string(file).unwrap_or_default());
            }
        }
    }
    out
}

/// Everything spade wrote that lasts: the database (with its WAL) and every run file.
pub(crate) fn everything_written(project: &Path) -> Vec<u8> {
    fn walk(dir: &Path, out: &mut Vec<u8>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.extend(std::fs::read(&path).unwrap_or_default());
            }
        }
    }
    let mut out = Vec::new();
    walk(&project.join(".spade"), &mut out);
    out
}

pub(crate) fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// `_env` gets the secret, as in Digdag; params keep `${secret:...}` literal; whatever the
/// code prints, stores or raises has the value masked before it reaches a log or the database.
#[test]
fn secrets_reach_the_code_through_env_and_nowhere_else() {
    const SECRET: &str = "hunter2-correct-horse";
    let project = Project::new();
    project.write(
        "leaky.py",
        "import os\nimport digdag\n\n\
         def show(token):\n\
         \x20   value = os.environ['TOKEN']\n\
         \x20   print('param is %s' % token)\n\
         \x20   print('env has', value, 'of length', len(value))\n\
         \x20   digdag.env.store({'leak': 'stored ' + value})\n\n\
         def fail():\n\
         \x20   raise RuntimeError('cannot log in with ' + os.environ['TOKEN'])\n",
    );
    project.write(
        "leak.dig",
        "_export:\n  _env:\n    TOKEN: ${secret:py.token}\n  token: ${secret:py.token}\n\
         +show:\n  py>: leaky.show\n\
         +after:\n  echo>: \"after: ${leak}\"\n\
         +fail:\n  py>: leaky.fail\n",
    );
    let out = project
        .command(&["leak"])
        .env("SPADE_SECRET_PY_TOKEN", SECRET)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("param is ${secret:py.token}"), "{stdout}");
    // The code got the value (its length is printed), masked on the way out.
    assert!(
        stdout.contains(&format!("env has *** of length {}", SECRET.len())),
        "{stdout}"
    );
    assert!(stdout.contains("after: stored ***"), "{stdout}");
    assert!(
        stderr.contains("RuntimeError: cannot log in with ***"),
        "{stderr}"
    );
    assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET));
    let written = everything_written(project.path());
    assert!(!written.is_empty());
    assert!(!contains(&written, SECRET), "the secret reached .spade/");
}

/// `py>: module.Class` runs `run` on an instance built from params, and modules resolve from
/// the task's `_workdir` (a package, here).
#[test]
fn a_class_alone_runs_its_run_method_and_modules_resolve_from_the_workdir() {
    let project = Project::new();
    project.write("sub/jobs/__init__.py", "");
    project.write(
        "sub/jobs/greet.py",
        "import os\nimport digdag\n\n\
         class Greeter(object):\n\
         \x20   def __init__(self, greeting):\n\
         \x20       self.greeting = greeting\n\n\
         \x20   def run(self, name, punctuation='!'):\n\
         \x20       print('%s %s%s in %s' % (self.greeting, name, punctuation, os.path.basename(os.getcwd())))\n\
         \x20       digdag.env.store(greeted=name)\n",
    );
    project.write(
        "c.dig",
        "+greet:\n  py>: jobs.greet.Greeter\n  _workdir: sub\n  greeting: hello\n  name: world\n\
         +after:\n  echo>: greeted ${greeted}\n",
    );
    let ran = project.run(&["c"]);
    ran.expect(0);
    assert_eq!(ran.stdout, "hello world! in sub\ngreeted world\n");
}
