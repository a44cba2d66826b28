//! Loads every `.dig` file of Digdag's repository as `spade check` does (the operator pass
//! included): what Digdag accepts loads without errors, and the files Digdag rejects get a
//! diagnostic on the right line.

use crate::util;
use spade::diag::{Diagnostic, SourceMap};
use spade::operators::external::{self, Finder};

/// Files Digdag rejects when loading or pushing, with the line (1-based) of the first error
/// spade must report, relative to the corpus root `digdag/`.
const REJECTED: &[(&str, usize)] = &[
    // `_error` with two operators (WorkflowCompilerTest / error_task acceptance test).
    (
        "digdag-core/src/test/resources/io/digdag/core/workflow/invalid_error_task.dig",
        5,
    ),
    (
        "digdag-tests/src/test/resources/acceptance/error_task/invalid_at_leaf.dig",
        7,
    ),
    (
        "digdag-tests/src/test/resources/acceptance/error_task/invalid_at_group.dig",
        5,
    ),
    // Unknown schedule option: rejected at push ("Parameter ... is not used at schedule").
    (
        "digdag-tests/src/test/resources/acceptance/scheduler/invalid.dig",
        5,
    ),
    // Two schedule kinds, one unknown.
    (
        "digdag-tests/src/test/resources/acceptance/scheduler/invalid_op.dig",
        5,
    ),
    // `hourly>: "10:11:12"`: the format is MM:SS.
    (
        "digdag-tests/src/test/resources/acceptance/schedule/invalid_schedule.dig",
        4,
    ),
    // `no_such_scheduler>`.
    (
        "digdag-tests/src/test/resources/acceptance/scheduler/unknown_type.dig",
        4,
    ),
    // WorkflowCompilerTest cases that must fail.
    (
        "digdag-core/src/test/resources/io/digdag/core/workflow/multiple_operators.dig",
        3,
    ),
    (
        "digdag-core/src/test/resources/io/digdag/core/workflow/unused_keys_in_group.dig",
        2,
    ),
    // Acceptance tests of `_after` outside `_parallel` and `_background` inside it.
    (
        "digdag-tests/src/test/resources/acceptance/background_after/after_without_parallel.dig",
        5,
    ),
    (
        "digdag-tests/src/test/resources/acceptance/background_after/background_with_parallel.dig",
        7,
    ),
    // A template: the Java test replaces `__CHILD_PROJECT__` before pushing it.
    (
        "digdag-tests/src/test/resources/acceptance/require/parent_another_project.dig",
        3,
    ),
];

/// The one corpus file that declares a Digdag plugin (`_export: plugin:`): it loads with a
/// warning saying how to supply `example>` as an executable.
const PLUGIN: &str = "digdag-tests/src/test/resources/acceptance/plugin/plugin.dig";

#[test]
fn every_corpus_file_loads_as_digdag_decides() {
    let Some(shared) = util::shared() else {
        return;
    };
    let root = shared.join("corpus/digdag");
    let files = util::dig_files(&root);
    assert_eq!(files.len(), 280, "the corpus has 280 .dig files");
    let mut failures = Vec::new();
    // Operators the corpus uses that spade warns it does not run.
    let mut unsupported = std::collections::BTreeSet::new();
    for path in &files {
        let rel = path
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let mut sources = SourceMap::new();
        let dir = path.parent().unwrap();
        // Param documents of ConfigEvalEngineTest, not workflows: they must parse.
        if rel.contains("agent/eval/") {
            let text = std::fs::read_to_string(path).unwrap();
            if let Err(d) = spade::dig::parse_document(&mut sources, path.clone(), text) {
                failures.push(format!("{rel}: {}", d[0].render(&sources)));
            }
            continue;
        }
        let (workflow, mut diags) = spade::dig::load_file(&mut sources, dir, path);
        // No `PATH`: executables of the host must not change what the corpus gives.
        let finder = Finder::new(dir, None);
        if let Some(workflow) = &workflow {
            diags.extend(external::diagnose(&finder, workflow).diagnostics);
        }
        for d in diags.iter().filter(|d| !d.is_error()) {
            if let Some(op) = d.message.strip_prefix("operator `") {
                let op = op.split('>').next().unwrap_or_default().to_string();
                if d.message.contains("not supported by spade yet") {
                    unsupported.insert(op);
                }
            }
        }
        if rel == PLUGIN {
            let plugin_warnings: Vec<String> = diags
                .iter()
                .map(|d| format!("{}: {}", d.message, d.help.as_deref().unwrap_or("")))
                .collect();
            let expected = "operator `example>` of task `+step1` comes from a Digdag plugin \
                            (`io.digdag.plugin:digdag-plugin-example:0.1.0`), which spade cannot load";
            if plugin_warnings.len() != 1
                || !plugin_warnings[0].starts_with(expected)
                || !plugin_warnings[0].contains("`operators/example` in the project")
            {
                failures.push(format!(
                    "{rel}: expected the plugin warning, got {plugin_warnings:?}"
                ));
            }
        }
        let errors: Vec<&Diagnostic> = diags.iter().filter(|d| d.is_error()).collect();
        let expected = REJECTED.iter().find(|(f, _)| *f == rel);
        match expected {
            None if !errors.is_empty() || workflow.is_none() => {
                let shown: String = errors.iter().map(|d| d.render(&sources)).collect();
                failures.push(format!("{rel}: unexpected errors\n{shown}"));
            }
            Some((_, line)) => {
                let first = errors.first();
                let at = first
                    .and_then(|d| sources.get(d.span.file).map(|f| f.line_col(d.span.start).0));
                if at != Some(*line) {
                    failures.push(format!(
                        "{rel}: expected an error on line {line}, got {at:?}"
                    ));
                }
            }
            None => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // `py>` is built in; the rest are services spade has no operator for.
    assert!(!unsupported.contains("py"), "{unsupported:?}");
    assert!(unsupported.contains("td"), "{unsupported:?}");
}
