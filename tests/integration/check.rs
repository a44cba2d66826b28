//! `spade check` on `tests/fixtures/dig_errors/NAME.dig`: stderr must equal `NAME.stderr`
//! byte for byte. `SNAPSHOTS=overwrite cargo test --test integration check::` rewrites the
//! expected files; review every change by eye, they are the spec of the diagnostics.

use crate::util;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    util::root().join("tests/fixtures/dig_errors")
}

fn run_check(dir: &Path, args: &[&str]) -> std::process::Output {
    util::spade()
        .arg("check")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("spade runs")
}

#[test]
fn dig_error_fixtures_match_expected_stderr() {
    let dir = fixtures();
    let overwrite = std::env::var("SNAPSHOTS").is_ok_and(|v| v == "overwrite");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".dig").map(str::to_string)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 40, "only {} fixtures", names.len());
    let mut failures = Vec::new();
    for name in &names {
        let file = format!("{name}.dig");
        let out = run_check(&dir, &[&file]);
        let stderr = String::from_utf8(out.stderr).unwrap();
        let expected_path = dir.join(format!("{name}.stderr"));
        if overwrite {
            std::fs::write(&expected_path, &stderr).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if stderr != expected {
            failures.push(format!(
                "{name}: stderr differs\n--- expected\n{expected}--- actual\n{stderr}"
            ));
        }
        // The exit code follows the last line: any error means 1.
        let has_error = expected.lines().last().is_some_and(|l| l.contains("error"));
        if out.status.code() != Some(i32::from(has_error)) {
            failures.push(format!("{name}: exit code {:?}", out.status.code()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn valid_files_print_a_summary_and_exit_zero() {
    let out = run_check(&fixtures(), &["crlf_line_ends.dig", "bom.dig"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "workflow crlf_line_ends\n  timezone: UTC\n  +a: echo>\n  +b: sh>\nworkflow bom\n  timezone: UTC\n  +a: echo>\n"
    );
}

#[test]
fn project_directory_loads_top_level_workflows_only() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("b.dig"), "+x:\n  echo>: b\n").unwrap();
    std::fs::write(tmp.path().join("a.dig"), "+x:\n  shh>: a\n").unwrap();
    std::fs::write(tmp.path().join(".hidden.dig"), "not: valid\n").unwrap();
    std::fs::create_dir(tmp.path().join("sub")).unwrap();
    std::fs::write(tmp.path().join("sub/c.dig"), "bad\n").unwrap();
    let out = run_check(tmp.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "workflow b\n  timezone: UTC\n  +x: echo>\n"
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("a.dig:2:3: unknown operator `shh>`\n"),
        "{stderr}"
    );
}

#[test]
fn json_output_has_workflows_and_located_diagnostics() {
    let out = run_check(&fixtures(), &["--json", "unsupported_operator_warning.dig"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["workflows"][0]["name"], "unsupported_operator_warning");
    assert_eq!(v["workflows"][0]["root"]["children"][0]["operator"], "td");
    assert_eq!(v["workflows"][0]["root"]["children"][0]["supported"], false);
    let d = &v["diagnostics"][0];
    assert_eq!(d["severity"], "warning");
    assert_eq!(d["location"]["path"], "unsupported_operator_warning.dig");
    assert_eq!(d["location"]["line"], 2);
    assert_eq!(d["location"]["column"], 3);
    assert_eq!(v["errors"], 0);
    assert!(out.stderr.is_empty());
}

/// The example project the README runs must check with no diagnostic at all, warnings included
/// (it once warned about `${rows}`, a param its `sh>` stores through `$SPADE_STORE`).
#[test]
fn example_project_checks_clean() {
    let out = run_check(&util::root(), &["workflows"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}
