//! `${...}` nested tens of thousands of levels deep (issue 12, item 1): `spade check` and
//! `spade run` report them with a location and exit 1; before the depth limits they overflowed
//! the stack and aborted (SIGABRT, exit 134), and every rerun aborted again.

// Test helpers outside `#[test]` functions: a failed unwrap is a failed test here.
#![allow(clippy::unwrap_used)]

use crate::run::{Project, Ran};
use crate::util;

/// Expressions whose trees are about 25,000 levels deep, one per kind of nesting.
fn deep_expressions() -> Vec<(&'static str, String)> {
    let n = 25_000;
    vec![
        ("prefix ++", format!("{}x", "++".repeat(n))),
        ("prefix --", format!("{}1", "--".repeat(n))),
        ("unary minus", format!("{}1", "- ".repeat(n))),
        ("a chain of +", format!("1{}", "+1".repeat(n))),
        ("a chain of ||", format!("a{}", "||a".repeat(n))),
        ("member access", format!("a{}", ".b".repeat(n))),
        ("calls", format!("f{}", "()".repeat(n))),
        (
            "parentheses",
            format!("{}1{}", "(".repeat(n), ")".repeat(n)),
        ),
        ("arrays", format!("{}1{}", "[".repeat(n), "]".repeat(n))),
        ("conditionals", format!("{}1", "a?1:".repeat(n))),
    ]
}

fn check(project: &Project, file: &str) -> Ran {
    let out = util::spade()
        .arg("check")
        .arg(project.path().join(file))
        .current_dir(project.path())
        .output()
        .unwrap();
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn deep_expressions_are_errors_in_check_and_failures_in_run_never_aborts() {
    for (kind, expr) in deep_expressions() {
        let project = Project::new();
        project.write("deep.dig", &format!("+a:\n  echo>: ${{{expr}}}\n"));
        let checked = check(&project, "deep.dig");
        let report = format!("{}{}", checked.stdout, checked.stderr);
        assert_eq!(checked.code, 1, "{kind}: `spade check` exit code\n{report}");
        assert!(
            report.contains("deep.dig:2:12: ")
                && report.contains("cannot be evaluated: expression nested deeper than 128 levels")
                && report.contains("  |            ^"),
            "{kind}: no located error with a caret under the expression:\n{}",
            &report[..report.len().min(2000)]
        );
        for _ in 0..2 {
            // The second run resumes the failed attempt: it fails again, cleanly.
            let ran = project.run(&["deep"]);
            assert_eq!(ran.code, 1, "{kind}: `spade run` exit code\n{}", ran.stderr);
            assert!(
                ran.stderr.contains("nested deeper than 128 levels")
                    && ran.stderr.contains("attempt 1 failed"),
                "{kind}: the task must fail with the message:\n{}",
                &ran.stderr[..ran.stderr.len().min(2000)]
            );
        }
    }
}
