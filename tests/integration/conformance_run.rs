//! The `run` rows of `../shared/conformance/cases.tsv`: every row whose operators spade
//! implements runs in a fresh project; the others are reported as skipped by name.

// Test helpers outside `#[test]` functions: a failed unwrap is a failed test here.
#![allow(clippy::unwrap_used)]

use crate::run::Project;
use crate::util;
use std::path::Path;

/// Virtual time runs this much faster: retry waits of seconds take a fifth of a second, and the
/// bounds are checked against the virtual duration the binary reports.
const TIME_SCALE: &str = "5";

/// Rows that must run (not be skipped) for the test to pass.
const REQUIRED: &[&str] = &[
    "retry_on_group",
    "retry_interval_string",
    "retry_interval_fixed",
    "retry_interval_exponential",
    "retry_exponential",
    "random_enqueue_simple",
    "random_enqueue_parallel",
];

struct Row<'a> {
    name: &'a str,
    workflow: &'a str,
    files: Vec<&'a str>,
    params: Vec<&'a str>,
    status: &'a str,
    matching: &'a str,
    expect: &'a str,
    min_seconds: Option<f64>,
    max_seconds: Option<f64>,
}

fn parse_row(line: &str) -> Option<Row<'_>> {
    let cols: Vec<&str> = line.split('\t').collect();
    if cols.first() != Some(&"run") {
        return None;
    }
    let col = |i: usize| cols.get(i).copied().unwrap_or("");
    Some(Row {
        name: col(1),
        workflow: col(2),
        files: col(3).split(',').filter(|x| !x.is_empty()).collect(),
        params: col(4).split(',').filter(|x| !x.is_empty()).collect(),
        status: col(5),
        matching: col(6),
        expect: col(7),
        min_seconds: col(8).trim().parse().ok(),
        max_seconds: col(9).trim().parse().ok(),
    })
}

/// Operator names (`name>:` keys) used in a workflow file.
fn operators_in(text: &str) -> Vec<String> {
    let mut ops = Vec::new();
    for line in text.lines() {
        let key = line.trim_start();
        if let Some(end) = key.find(">:") {
            let name = &key[..end];
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                ops.push(name.to_string());
            }
        }
    }
    ops
}

#[test]
fn conformance_run_cases() {
    let Some(shared) = util::shared() else {
        return;
    };
    let table = std::fs::read_to_string(shared.join("conformance/cases.tsv")).unwrap();
    let mut failures = Vec::new();
    let mut skipped = Vec::new();
    let mut ran = Vec::new();
    for row in table.lines().skip(1).filter_map(parse_row) {
        let mut texts = Vec::new();
        for file in std::iter::once(row.workflow).chain(row.files.iter().copied()) {
            texts.push((file, std::fs::read_to_string(shared.join(file)).unwrap()));
        }
        let missing: Vec<String> = texts
            .iter()
            .flat_map(|(_, t)| operators_in(t))
            .filter(|op| !spade::operators::is_implemented(op))
            .collect();
        if !missing.is_empty() {
            skipped.push(format!("{} (needs {}>)", row.name, missing.join(">, ")));
            continue;
        }
        ran.push(row.name);
        if let Err(why) = run_row(&row, &texts) {
            failures.push(format!("{}: {why}", row.name));
        }
    }
    eprintln!(
        "conformance run: {} ran, skipped: {}",
        ran.len(),
        skipped.join("; ")
    );
    for name in REQUIRED {
        assert!(
            ran.contains(name),
            "required row `{name}` was skipped: {skipped:?}"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Replaces `key`'s value in the top-level `_export:` block (two-space indented children).
fn override_export(text: &str, key: &str, value: &str) -> String {
    let mut in_export = false;
    let mut out = String::new();
    for line in text.lines() {
        if !line.starts_with(' ') {
            in_export = line.trim_end() == "_export:";
        }
        match line.strip_prefix("  ").and_then(|l| l.strip_prefix(key)) {
            Some(rest) if in_export && rest.starts_with(':') => {
                out.push_str(&format!("  {key}: {value}\n"));
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

fn run_row(row: &Row<'_>, texts: &[(&str, String)]) -> Result<(), String> {
    let project = Project::new();
    for (i, (file, text)) in texts.iter().enumerate() {
        let name = Path::new(file).file_name().unwrap().to_string_lossy();
        // The workflow under test declares its params as `_export` placeholders (`dummy`),
        // which Digdag's own test replaces; a `-p` param cannot override `_export` (spec
        // 4.2), so the same replacement is made here, and the params are passed with `-p`
        // as well.
        let text = if i == 0 {
            row.params.iter().fold(text.clone(), |t, p| {
                let (k, v) = p.split_once('=').unwrap();
                override_export(&t, k, v)
            })
        } else {
            text.clone()
        };
        project.write(&name, &text);
    }
    let wf = Path::new(row.workflow)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut args = vec![wf.as_str(), "--time-scale", TIME_SCALE];
    for p in &row.params {
        args.extend(["-p", p]);
    }
    let ran = project.run(&args);
    let want = if row.status == "success" { 0 } else { 1 };
    if ran.code != want {
        return Err(format!(
            "exit {} (want {want})\nstdout:\n{}\nstderr:\n{}",
            ran.code, ran.stdout, ran.stderr
        ));
    }
    let out = project.read("out");
    match row.matching {
        "exact" if out != row.expect => {
            return Err(format!(
                "out is `{out}`, want `{}`\n{}",
                row.expect, ran.stderr
            ))
        }
        "contains-all" => {
            for item in row.expect.split(',') {
                if !out.contains(item) {
                    return Err(format!("out `{out}` lacks `{item}`"));
                }
            }
        }
        "exact" => {}
        other => return Err(format!("unknown match kind `{other}`")),
    }
    let secs = ran.seconds();
    if let Some(min) = row.min_seconds {
        if secs < min {
            return Err(format!("took {secs}s (virtual), want at least {min}s"));
        }
    }
    if let Some(max) = row.max_seconds {
        if secs > max {
            return Err(format!("took {secs}s (virtual), want at most {max}s"));
        }
    }
    Ok(())
}
