//! `spade check [PATH...]`: load workflows, print a summary and every diagnostic.
//!
//! The summary (workflow name, timezone, schedule, task tree) goes to stdout, diagnostics go
//! to stderr in the fixed `path:line:col: message` shape; `--json` puts both on stdout.
//! Exit 0 when every file is valid (warnings allowed), 1 when any has an error.

use crate::diag::{Diagnostic, Severity, SourceMap};
use crate::dig::{self, ParallelDef, TaskDef, TaskKind, Workflow};
use crate::operators::external::{self, Finder, Report};
use serde_json::json;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Project directories or `.dig` files (default: the current directory).
    pub paths: Vec<PathBuf>,
    /// Print the summary and diagnostics as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What one PATH argument loaded: its files, workflows and diagnostics.
struct Loaded {
    sources: SourceMap,
    workflows: Vec<Workflow>,
    /// Where each workflow's operators that are not built in come from, in workflow order.
    reports: Vec<Report>,
    /// The project directory: operator executables are looked up there.
    project_dir: PathBuf,
    diagnostics: Vec<Diagnostic>,
}

pub(super) fn run(args: CheckArgs) -> Result<u8, crate::Error> {
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths
    };
    let mut loaded = Vec::with_capacity(paths.len());
    for path in &paths {
        loaded.push(load(path)?);
    }
    let errors = count(&loaded, Severity::Error);
    let warnings = count(&loaded, Severity::Warning);
    if args.json {
        let out = json!({
            "workflows": loaded.iter().flat_map(|l| l.workflows.iter().zip(&l.reports).map(|(w, r)| workflow_json(w, r, &l.project_dir))).collect::<Vec<_>>(),
            "diagnostics": loaded.iter().flat_map(|l| l.diagnostics.iter().map(|d| d.to_json(&l.sources))).collect::<Vec<_>>(),
            "errors": errors,
            "warnings": warnings,
        });
        let text = serde_json::to_string_pretty(&out).unwrap_or_default();
        write_out(&mut std::io::stdout().lock(), &format!("{text}\n"))?;
    } else {
        let mut summary = String::new();
        let mut report = String::new();
        for l in &loaded {
            for (w, r) in l.workflows.iter().zip(&l.reports) {
                summary.push_str(&workflow_text(w, r, &l.project_dir));
            }
            for d in &l.diagnostics {
                report.push_str(&d.render(&l.sources));
            }
        }
        if errors + warnings > 0 {
            let _ = writeln!(report, "{}", totals(errors, warnings));
        }
        write_out(&mut std::io::stdout().lock(), &summary)?;
        write_out(&mut std::io::stderr().lock(), &report)?;
    }
    Ok(u8::from(errors > 0))
}

fn write_out(w: &mut impl std::io::Write, text: &str) -> Result<(), crate::Error> {
    w.write_all(text.as_bytes())
        .and_then(|()| w.flush())
        .map_err(|source| crate::Error::Io {
            what: "cannot write the check report".to_string(),
            source,
        })
}

fn load(path: &Path) -> Result<Loaded, crate::Error> {
    let mut loaded = if path.is_dir() {
        let project = dig::load_project(path)?;
        Loaded {
            sources: project.sources,
            workflows: project.workflows,
            reports: Vec::new(),
            project_dir: path.to_path_buf(),
            diagnostics: project.diagnostics,
        }
    } else {
        let mut sources = SourceMap::new();
        let dir = path.parent().unwrap_or(Path::new(""));
        let (workflow, diagnostics) = dig::load_file(&mut sources, dir, path);
        Loaded {
            sources,
            workflows: workflow.into_iter().collect(),
            reports: Vec::new(),
            project_dir: dir.to_path_buf(),
            diagnostics,
        }
    };
    // Expressions and operator executables are checked only in workflows that loaded: their
    // spans are then trustworthy.
    let finder = Finder::from_env(&loaded.project_dir);
    let mut valid = Vec::with_capacity(loaded.workflows.len());
    for workflow in std::mem::take(&mut loaded.workflows) {
        loaded
            .diagnostics
            .extend(crate::expr::check_workflow(&workflow));
        let mut report = external::diagnose(&finder, &workflow);
        // An unknown operator makes the file invalid, as every other error does: it is not
        // summarised.
        let invalid = report.diagnostics.iter().any(Diagnostic::is_error);
        loaded.diagnostics.append(&mut report.diagnostics);
        if !invalid {
            valid.push(workflow);
            loaded.reports.push(report);
        }
    }
    loaded.workflows = valid;
    crate::diag::sort(&mut loaded.diagnostics);
    Ok(loaded)
}

fn count(loaded: &[Loaded], severity: Severity) -> usize {
    loaded
        .iter()
        .flat_map(|l| &l.diagnostics)
        .filter(|d| d.severity == severity)
        .count()
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn totals(errors: usize, warnings: usize) -> String {
    match (errors, warnings) {
        (0, w) => plural(w, "warning"),
        (e, 0) => plural(e, "error"),
        (e, w) => format!("{}, {}", plural(e, "error"), plural(w, "warning")),
    }
}

/// `workflow NAME`, its settings, then the task tree, two spaces per level.
fn workflow_text(w: &Workflow, report: &Report, project_dir: &Path) -> String {
    let mut out = format!("workflow {}\n", w.name);
    let _ = writeln!(out, "  timezone: {}", w.timezone);
    if let Some(s) = &w.schedule {
        let _ = writeln!(out, "  schedule: {} {}", s.kind, s.value);
    }
    let requires = require_targets(w);
    if !requires.is_empty() {
        let _ = writeln!(out, "  requires: {}", requires.join(", "));
    }
    let mut tasks = String::new();
    let show = |t: &TaskDef, tasks: &mut String| task_text(t, 1, report, project_dir, tasks);
    if let TaskKind::Group(children) = &w.root.kind {
        for child in children {
            show(child, &mut tasks);
        }
    }
    for special in [&w.root.error, &w.root.check].into_iter().flatten() {
        show(special, &mut tasks);
    }
    if tasks.is_empty() {
        out.push_str("  (no tasks)\n");
    } else {
        out.push_str(&tasks);
    }
    out
}

/// The workflows its `require>` tasks wait for (`project/workflow` for another project), as
/// `digdag check` lists them.
fn require_targets(w: &Workflow) -> Vec<String> {
    let mut out = Vec::new();
    crate::operators::require::targets(&w.root, &mut out);
    out
}

fn task_text(t: &TaskDef, depth: usize, report: &Report, project_dir: &Path, out: &mut String) {
    let pad = "  ".repeat(depth);
    let mut notes = Vec::new();
    match &t.parallel {
        Some(ParallelDef::All(true)) => notes.push("parallel".to_string()),
        Some(ParallelDef::Limit(n)) => notes.push(format!("parallel limit {n}")),
        Some(ParallelDef::Expr(_)) => notes.push("parallel ${...}".to_string()),
        Some(ParallelDef::All(false)) | None => {}
    }
    if t.retry.is_some() {
        notes.push("retry".to_string());
    }
    if t.background {
        notes.push("background".to_string());
    }
    if !t.after.is_empty() {
        notes.push(format!("after {}", t.after.join(" ")));
    }
    if t.disable {
        notes.push("disabled".to_string());
    }
    let notes = if notes.is_empty() {
        String::new()
    } else {
        format!(" [{}]", notes.join(", "))
    };
    match &t.kind {
        TaskKind::Operator(op) => {
            let source = match (op.supported, report.executable(op.span)) {
                (true, _) => String::new(),
                (false, Some(path)) => format!(" (executable {})", shown_path(path, project_dir)),
                (false, None) => " (not supported yet)".to_string(),
            };
            let _ = writeln!(out, "{pad}{}: {}>{source}{notes}", t.name, op.name);
        }
        TaskKind::Group(children) => {
            let _ = writeln!(out, "{pad}{}{notes}", t.name);
            for child in children {
                task_text(child, depth + 1, report, project_dir, out);
            }
        }
    }
    for special in [&t.error, &t.check].into_iter().flatten() {
        task_text(special, depth + 1, report, project_dir, out);
    }
}

/// An executable's path relative to the project when it is inside it (`operators/slack`).
fn shown_path(path: &Path, project_dir: &Path) -> String {
    let project = std::path::absolute(project_dir).unwrap_or_else(|_| project_dir.to_path_buf());
    path.strip_prefix(&project)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn workflow_json(w: &Workflow, report: &Report, project_dir: &Path) -> serde_json::Value {
    json!({
        "name": w.name,
        "timezone": w.timezone,
        "schedule": w.schedule.as_ref().map(|s| json!({"kind": s.kind, "value": s.value})),
        "requires": require_targets(w),
        "root": task_json(&w.root, report, project_dir),
    })
}

/// `supported` is true for operators spade has built in and for those an executable supplies
/// (`executable` names it).
fn task_json(t: &TaskDef, report: &Report, project_dir: &Path) -> serde_json::Value {
    let json_of = |t: &TaskDef| task_json(t, report, project_dir);
    let (operator, supported, executable, children) = match &t.kind {
        TaskKind::Operator(op) => {
            let executable = report
                .executable(op.span)
                .filter(|_| !op.supported)
                .map(|p| shown_path(p, project_dir));
            let supported = op.supported || executable.is_some();
            (Some(op.name.as_str()), supported, executable, Vec::new())
        }
        TaskKind::Group(children) => (None, true, None, children.iter().map(json_of).collect()),
    };
    json!({
        "name": t.name,
        "operator": operator,
        "supported": supported,
        "executable": executable,
        "children": children,
        "error": t.error.as_deref().map(json_of),
        "check": t.check.as_deref().map(json_of),
    })
}
