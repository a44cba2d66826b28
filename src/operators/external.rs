//! Operators supplied as executables: `<project>/<_workdir>/operators/NAME`, then
//! `<project>/operators/NAME`, then `spade-operator-NAME` on `PATH`, run through the protocol of
//! `operators::protocol`; and the `spade check` pass that decides, per task, whether an
//! operator spade lacks is supplied, declared through Digdag's `_export: plugin:`, or unknown.

use super::{catalog, failed, protocol, Context, Error, Operator};
use crate::clock::BoxFuture;
use crate::diag::{Diagnostic, Span};
use crate::dig::{Map, TaskDef, TaskKind, Value, ValueKind, Workflow};
use crate::engine::Outcome;
use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// Runs any operator that is not built in, through the executable that supplies it.
pub struct External;

impl Operator for External {
    fn run(&self, ctx: Context) -> BoxFuture<'static, Result<Outcome, Error>> {
        Box::pin(async move {
            let name = ctx.run.operator.clone();
            let finder = Finder::from_env(&ctx.project_dir);
            let workdir = ctx.param_text("_workdir");
            match finder.find(&name, workdir.as_deref()) {
                Found::Executable(program) => {
                    let invocation = protocol::Invocation {
                        program,
                        args: Vec::new(),
                        params: ctx.run.params.clone(),
                        resolve_params: true,
                        extra_env: Vec::new(),
                    };
                    let ran = protocol::run(&ctx, invocation).await?;
                    Ok(protocol::outcome(&format!("operator `{name}>`"), ran))
                }
                Found::NotExecutable(path) => Ok(failed(not_executable(&path), false)),
                Found::Missing => Ok(failed(missing_message(&ctx, &name), false)),
            }
        })
    }
}

/// Why a task whose operator nothing supplies fails when it runs.
fn missing_message(ctx: &Context, name: &str) -> String {
    let places = catalog::executable_places(name);
    if let Some(plugin) = ctx.param("plugin").and_then(plugin_of_json) {
        format!(
            "operator `{name}>` comes from a Digdag plugin ({plugin}), which spade cannot load: supply it as an executable at {places}"
        )
    } else if catalog::lookup(name).is_some() {
        format!(
            "operator `{name}>` is not supported by spade yet and no executable supplies it: looked for {places}"
        )
    } else {
        format!("unknown operator `{name}>`: no executable supplies it; looked for {places}")
    }
}

fn not_executable(path: &Path) -> String {
    format!(
        "{} is not executable: run `chmod +x {}`",
        path.display(),
        path.display()
    )
}

/// What the search for an operator's executable found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    Executable(PathBuf),
    /// A file with the right name but no execute permission: a mistake worth naming.
    NotExecutable(PathBuf),
    Missing,
}

/// Looks operator executables up in a project and on a `PATH`.
#[derive(Clone, Debug)]
pub struct Finder {
    project_dir: PathBuf,
    path: Option<OsString>,
}

impl Finder {
    pub fn new(project_dir: &Path, path: Option<&OsStr>) -> Finder {
        Finder {
            project_dir: project_dir.to_path_buf(),
            path: path.map(OsStr::to_os_string),
        }
    }

    /// A finder over spade's own `PATH`.
    pub fn from_env(project_dir: &Path) -> Finder {
        Finder::new(project_dir, std::env::var_os("PATH").as_deref())
    }

    /// The executable supplying operator `name` for a task whose `_workdir` is `workdir`: the
    /// workdir's `operators/NAME`, the project's `operators/NAME`, then `spade-operator-NAME`
    /// on `PATH`, first match wins.
    pub fn find(&self, name: &str, workdir: Option<&str>) -> Found {
        if !is_operator_name(name) {
            return Found::Missing;
        }
        let mut candidates = Vec::new();
        if let Some(workdir) = workdir.filter(|w| is_relative_inside(w)) {
            candidates.push(self.project_dir.join(workdir).join("operators").join(name));
        }
        candidates.push(self.project_dir.join("operators").join(name));
        let mut not_executable = None;
        for path in candidates {
            match probe(&path) {
                Found::Executable(p) => return Found::Executable(absolute(&p)),
                Found::NotExecutable(p) => {
                    not_executable.get_or_insert(p);
                }
                Found::Missing => {}
            }
        }
        if let Some(path) = not_executable {
            return Found::NotExecutable(path);
        }
        let program = format!("spade-operator-{name}");
        for dir in self.path.iter().flat_map(std::env::split_paths) {
            // An empty PATH entry means the current directory, which a daemon must not trust.
            if dir.as_os_str().is_empty() || dir.is_relative() {
                continue;
            }
            if let Found::Executable(p) = probe(&dir.join(&program)) {
                return Found::Executable(p);
            }
        }
        Found::Missing
    }

    /// Names of the project's own operator executables, for "did you mean" hints.
    fn project_operators(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.project_dir.join("operators")) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| is_operator_name(n))
            .collect()
    }
}

fn probe(path: &Path) -> Found {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => {
            Found::Executable(path.to_path_buf())
        }
        Ok(meta) if meta.is_file() => Found::NotExecutable(path.to_path_buf()),
        _ => Found::Missing,
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// `[A-Za-z0-9_-]+`, not starting with `-`: a name that is safe as one path component.
pub fn is_operator_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A `_workdir` that stays inside the project (`sub/dir`, not `/abs` or `../up`).
fn is_relative_inside(workdir: &str) -> bool {
    let path = Path::new(workdir);
    path.is_relative()
        && path
            .components()
            .all(|c| !matches!(c, std::path::Component::ParentDir))
}

/// The Digdag plugin a `plugin:` param declares, as its `dependencies` (`` `a:b:1`, `c:d:2` ``),
/// or `declared in `plugin:`` when it names none.
fn plugin_of_json(plugin: &serde_json::Value) -> Option<String> {
    let serde_json::Value::Object(map) = plugin else {
        return None;
    };
    let deps: Vec<String> = match map.get("dependencies") {
        Some(serde_json::Value::Array(items)) => items.iter().map(super::json_text).collect(),
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    };
    Some(describe_plugin(&deps))
}

fn plugin_of_value(plugin: &Value) -> Option<String> {
    let map = plugin.as_map()?;
    let deps: Vec<String> = match map.get("dependencies").map(|v| &v.kind) {
        Some(ValueKind::Seq(items)) => items.iter().map(raw_text).collect(),
        Some(ValueKind::Str(t)) => vec![t.raw.clone()],
        _ => Vec::new(),
    };
    Some(describe_plugin(&deps))
}

fn describe_plugin(deps: &[String]) -> String {
    if deps.is_empty() {
        "declared in `plugin:`".to_string()
    } else {
        format!("`{}`", deps.join("`, `"))
    }
}

fn raw_text(v: &Value) -> String {
    super::json_text(&v.to_json_raw())
}

/// What `spade check` learnt about a workflow's operators that are not built in.
#[derive(Debug, Default)]
pub struct Report {
    pub diagnostics: Vec<Diagnostic>,
    /// The executable found for each operator call, by the call's span.
    pub executables: Vec<(Span, PathBuf)>,
}

impl Report {
    /// The executable supplying the operator call at `span`, if one was found.
    pub fn executable(&self, span: Span) -> Option<&Path> {
        self.executables
            .iter()
            .find(|(s, _)| *s == span)
            .map(|(_, p)| p.as_path())
    }
}

/// What a task inherits from its ancestors' `_export` that decides where its operator comes
/// from.
#[derive(Clone, Debug, Default)]
struct Inherited {
    /// A literal `_workdir`; `None` when absent or computed (`${...}`).
    workdir: Option<String>,
    /// The `plugin:` declaration, described.
    plugin: Option<String>,
}

impl Inherited {
    fn with(&self, params: &Map) -> Inherited {
        let mut next = self.clone();
        if let Some(v) = params.get("_workdir") {
            next.workdir = v
                .as_template()
                .filter(|t| !t.has_expr())
                .map(|t| t.raw.clone());
        }
        if let Some(plugin) = params.get("plugin").and_then(plugin_of_value) {
            next.plugin = Some(plugin);
        }
        next
    }
}

/// A task to visit: borrowed from the workflow, or lowered here from a `_do` block (then owned,
/// and its children are moved out of it).
enum Node<'a> {
    Borrowed(&'a TaskDef),
    Owned(Box<TaskDef>),
}

/// `dig::load_project` and [`diagnose`] together, as `spade run` and `spade serve` load a
/// project: an operator that is neither built in nor supplied by an executable is an error of
/// its file, and a workflow with such an error does not load (its diagnostics are added).
pub fn load_project(dir: &Path) -> Result<crate::dig::Project, crate::dig::Error> {
    let mut project = crate::dig::load_project(dir)?;
    let finder = Finder::from_env(dir);
    let mut valid = Vec::with_capacity(project.workflows.len());
    for workflow in std::mem::take(&mut project.workflows) {
        let report = diagnose(&finder, &workflow);
        let invalid = report.diagnostics.iter().any(Diagnostic::is_error);
        project.diagnostics.extend(report.diagnostics);
        if !invalid {
            valid.push(workflow);
        }
    }
    project.workflows = valid;
    crate::diag::sort(&mut project.diagnostics);
    Ok(project)
}

/// The `spade check` pass over a loaded workflow: for every operator spade does not have built
/// in (in `_do` blocks too), nothing when an executable supplies it, a warning when a Digdag
/// `_export: plugin:` declares it or it is one of Digdag's operators, an error with "did you
/// mean" otherwise.
pub fn diagnose(finder: &Finder, workflow: &Workflow) -> Report {
    let mut report = Report::default();
    let known = finder.project_operators();
    // An explicit stack: the walk must not overflow on deep trees the parser accepted.
    let mut stack = vec![(Node::Borrowed(&workflow.root), Inherited::default())];
    while let Some((node, inherited)) = stack.pop() {
        let task = match &node {
            Node::Borrowed(t) => *t,
            Node::Owned(t) => t,
        };
        let inherited = inherited.with(&task.export);
        let mut generated = Vec::new();
        if let TaskKind::Operator(call) = &task.kind {
            if !call.supported && !call.name.contains("${") && !call.name.is_empty() {
                let local = inherited.with(&task.params);
                check_call(
                    finder,
                    &known,
                    task,
                    &call.name,
                    call.span,
                    &local,
                    &mut report,
                );
            }
            // Generated children see the generator's exports, not its local params.
            for block in [&call.do_block, &call.else_do_block].into_iter().flatten() {
                if matches!(block.kind, ValueKind::Map(_)) {
                    if let Ok(sub) = crate::dig::lower_task("^sub", block) {
                        generated.push(sub);
                    }
                }
            }
        }
        let mut next: Vec<Node<'_>> = generated
            .into_iter()
            .map(|t| Node::Owned(Box::new(t)))
            .collect();
        match node {
            Node::Borrowed(t) => {
                if let TaskKind::Group(list) = &t.kind {
                    next.extend(list.iter().map(Node::Borrowed));
                }
                next.extend(t.error.iter().chain(&t.check).map(|b| Node::Borrowed(b)));
            }
            Node::Owned(t) => {
                let t = *t;
                if let TaskKind::Group(list) = t.kind {
                    next.extend(list.into_iter().map(|c| Node::Owned(Box::new(c))));
                }
                next.extend(t.error.into_iter().chain(t.check).map(Node::Owned));
            }
        }
        stack.extend(next.into_iter().rev().map(|n| (n, inherited.clone())));
    }
    report
}

fn check_call(
    finder: &Finder,
    known: &[String],
    task: &TaskDef,
    name: &str,
    span: Span,
    inherited: &Inherited,
    report: &mut Report,
) {
    match finder.find(name, inherited.workdir.as_deref()) {
        Found::Executable(path) => report.executables.push((span, path)),
        Found::NotExecutable(path) => report.diagnostics.push(
            Diagnostic::error(
                span,
                format!(
                    "the executable of operator `{name}>` is not executable: {}",
                    path.display()
                ),
            )
            .with_help(format!("run `chmod +x {}`", path.display())),
        ),
        Found::Missing => {
            let d = match &inherited.plugin {
                Some(plugin) => Diagnostic::warning(
                    span,
                    format!(
                        "operator `{name}>` of task `{}` comes from a Digdag plugin ({plugin}), which spade cannot load",
                        task.name
                    ),
                )
                .with_help(format!(
                    "`spade check` accepts it, but running this task fails until an executable speaking spade's operator protocol supplies it: {} (see docs/operators.md)",
                    catalog::executable_places(name)
                )),
                None => catalog::not_built_in(name, &task.name, span, known.iter().map(String::as_str)),
            };
            report.diagnostics.push(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::{Severity, SourceMap};

    fn executable(path: &Path, mode: u32) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn executables_are_looked_up_workdir_project_then_path() {
        let project = tempfile::tempdir().unwrap();
        let bin = tempfile::tempdir().unwrap();
        let p = project.path();
        executable(&p.join("operators/both"), 0o755);
        executable(&p.join("sub/operators/both"), 0o755);
        executable(&p.join("operators/lazy"), 0o644);
        executable(&bin.path().join("spade-operator-both"), 0o755);
        executable(&bin.path().join("spade-operator-far"), 0o755);
        executable(&bin.path().join("spade-operator-lazy"), 0o755);
        let path = std::env::join_paths(["", "relative", bin.path().to_str().unwrap()]).unwrap();
        let finder = Finder::new(p, Some(&path));
        let found = |name, workdir| finder.find(name, workdir);
        let abs = |rel: &str| std::path::absolute(p.join(rel)).unwrap();
        assert_eq!(
            found("both", None),
            Found::Executable(abs("operators/both"))
        );
        assert_eq!(
            found("both", Some("sub")),
            Found::Executable(abs("sub/operators/both"))
        );
        // A workdir without its own operators falls back to the project's.
        assert_eq!(
            found("both", Some("other")),
            Found::Executable(abs("operators/both"))
        );
        // A workdir leaving the project is not searched.
        assert_eq!(
            found("both", Some("../x")),
            Found::Executable(abs("operators/both"))
        );
        assert_eq!(
            found("far", None),
            Found::Executable(bin.path().join("spade-operator-far"))
        );
        // A project file without the execute bit is named, not skipped for PATH's.
        assert_eq!(
            found("lazy", None),
            Found::NotExecutable(p.join("operators/lazy"))
        );
        assert_eq!(found("none", None), Found::Missing);
        // Names that are not one plain path component are never looked up.
        for bad in ["", "../both", "a/b", "-x", "${x}", "both.sh"] {
            assert_eq!(found(bad, None), Found::Missing, "{bad}");
        }
        // Empty and relative PATH entries are skipped.
        std::fs::create_dir_all(p.join("relative")).unwrap();
        let cwd_only = Finder::new(p, Some(std::ffi::OsStr::new(":relative")));
        assert_eq!(cwd_only.find("far", None), Found::Missing);
    }

    /// `(severity, message)` of every diagnostic of the pass on `text`.
    fn diagnose_text(project: &Path, text: &str) -> (Vec<(Severity, String)>, Report) {
        let mut sources = SourceMap::new();
        let path = project.join("w.dig");
        std::fs::write(&path, text).unwrap();
        let (workflow, diags) = crate::dig::load_file(&mut sources, project, &path);
        assert!(diags.is_empty(), "{diags:?}");
        let report = diagnose(&Finder::new(project, None), &workflow.unwrap());
        let got = report
            .diagnostics
            .iter()
            .map(|d| (d.severity, d.message.clone()))
            .collect();
        (got, report)
    }

    #[test]
    fn the_check_pass_classifies_every_operator_spade_lacks() {
        let project = tempfile::tempdir().unwrap();
        let p = project.path();
        executable(&p.join("operators/probe"), 0o755);
        executable(&p.join("sub/operators/deep"), 0o755);
        let (got, report) = diagnose_text(
            p,
            "+a:\n  probe>: x\n\
             +b:\n  _export:\n    _workdir: sub\n  +c:\n    deep>: x\n\
             +d:\n  deep>: x\n\
             +e:\n  for_each>: {v: [1]}\n  _do:\n    +f:\n      prob>: x\n\
             +g:\n  _export:\n    plugin:\n      dependencies: [a:b:1]\n  +h:\n    example>: x\n\
             +i:\n  td>: q\n  _error:\n    frobnicate>: x\n\
             +j:\n  echo>: x\n",
        );
        assert_eq!(
            got,
            [
                (Severity::Error, "unknown operator `deep>`".to_string()),
                (Severity::Error, "unknown operator `prob>`".to_string()),
                (
                    Severity::Warning,
                    "operator `example>` of task `+h` comes from a Digdag plugin (`a:b:1`), which spade cannot load".to_string()
                ),
                (
                    Severity::Warning,
                    "operator `td>` of task `+i` is not supported by spade yet".to_string()
                ),
                (Severity::Error, "unknown operator `frobnicate>`".to_string()),
            ]
        );
        assert_eq!(report.executables.len(), 2);
        // The project's own operators take part in "did you mean".
        assert_eq!(
            report.diagnostics[1].help.as_deref(),
            Some("did you mean `probe>`?")
        );
    }
}
