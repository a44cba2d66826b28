//! `.dig` text -> checked [`Workflow`]: parsing (nom), `!include`, lowering and validation.
//!
//! Pipeline: `syntax` (text -> spanned [`Value`] tree, first syntax error stops) ->
//! `include` (splices `!include :` files) -> `lower` (tree -> [`Workflow`], collecting every
//! semantic error) -> diagnostics sorted by position.

mod anchor;
pub mod duration;
mod include;
mod lower;
mod scalar;
pub mod suggest;
mod syntax;
pub mod template;
pub mod value;
pub mod workflow;

use crate::diag::{Diagnostic, FileId, SourceMap, Span};
use anchor::AliasUse;
pub use anchor::MAX_COPIED_NODES;
pub use lower::MAX_TASK_DEPTH;
use std::path::{Path, PathBuf};
pub use syntax::MAX_DEPTH;
pub use value::{Key, Map, Template, TemplatePart, Value, ValueKind};
pub use workflow::{
    IntervalType, OperatorCall, ParallelDef, RetryDef, RetryPolicy, ScheduleDef, TaskDef, TaskKind,
    Workflow,
};

/// IO failures while finding workflow files (parse problems are [`Diagnostic`]s, not errors).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Every workflow of a project directory (the top-level `*.dig` files), with all diagnostics.
#[derive(Debug, Default)]
pub struct Project {
    pub dir: PathBuf,
    pub sources: SourceMap,
    pub workflows: Vec<Workflow>,
    /// Errors and warnings of every file, sorted by file and position.
    pub diagnostics: Vec<Diagnostic>,
}

impl Project {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    pub fn workflow(&self, name: &str) -> Option<&Workflow> {
        self.workflows.iter().find(|w| w.name == name)
    }
}

/// Loads the top-level `*.dig` files of `dir` (dot-files skipped), in name order.
pub fn load_project(dir: &Path) -> Result<Project, Error> {
    let read_err = |source| Error::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut names: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !name.ends_with(".dig") {
            continue;
        }
        // Follows symlinks, so a linked workflow counts.
        if entry.path().is_file() {
            names.push(name);
        }
    }
    names.sort();
    let mut project = Project {
        dir: dir.to_path_buf(),
        ..Project::default()
    };
    for name in names {
        // `spade check` in the project dir shows `wf.dig`, not `./wf.dig`.
        let path = if dir == Path::new(".") {
            PathBuf::from(&name)
        } else {
            dir.join(&name)
        };
        let (workflow, mut diags) = load_file(&mut project.sources, dir, &path);
        project.workflows.extend(workflow);
        project.diagnostics.append(&mut diags);
    }
    crate::diag::sort(&mut project.diagnostics);
    Ok(project)
}

/// Loads one workflow file into `sources`. `project_dir` names the workflow (path relative to
/// it, without `.dig`) and bounds `!include` paths. Returns the workflow when it has no errors.
pub fn load_file(
    sources: &mut SourceMap,
    project_dir: &Path,
    path: &Path,
) -> (Option<Workflow>, Vec<Diagnostic>) {
    match std::fs::read(path) {
        Ok(bytes) => load_source(sources, project_dir, path, bytes),
        Err(e) => (
            None,
            vec![Diagnostic::error(
                Span::NONE,
                format!("cannot read {}: {e}", path.display()),
            )],
        ),
    }
}

/// [`load_file`] on bytes already read: decoding, parsing, `!include` (read from disk relative
/// to `path`), lowering. Diagnostics come back sorted by position.
pub fn load_source(
    sources: &mut SourceMap,
    project_dir: &Path,
    path: &Path,
    bytes: Vec<u8>,
) -> (Option<Workflow>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let (root, mut aliases) = match parse_bytes(sources, path.to_path_buf(), bytes, 0) {
        Ok(syntax::Parsed {
            value: Some(root),
            aliases,
        }) => (root, aliases),
        Ok(syntax::Parsed { value: None, .. }) => {
            let file = sources.find(path).unwrap_or(FileId(0));
            diags.push(
                Diagnostic::error(
                    Span::new(file, 0, 0),
                    "a workflow must be a mapping of keys, found an empty file",
                )
                .with_help("add a task, e.g. `+hello:` and on the next line `  echo>: hello`"),
            );
            return (None, diags);
        }
        Err(d) => return (None, d),
    };
    let dir = path.parent().map_or_else(PathBuf::new, Path::to_path_buf);
    // Cycle detection compares canonical paths; resolving one costs several syscalls, so it
    // is done only for files that include anything.
    let includes = root_has_include(&root);
    let canonical = if includes {
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
    } else {
        path.to_path_buf()
    };
    let root = if includes {
        let mut cx = include::Includes {
            sources,
            stack: vec![canonical],
            diags: Vec::new(),
            aliases: Vec::new(),
        };
        let root = include::resolve(&mut cx, root, &dir, 0);
        diags.append(&mut cx.diags);
        aliases.append(&mut cx.aliases);
        root
    } else {
        root
    };
    let mut lower = lower::Lower::default();
    let name = workflow_name(project_dir, path);
    if let Some(problem) = workflow_name_problem(&name) {
        diags.push(
            Diagnostic::error(
                Span::new(root.span.file, 0, 0),
                format!("invalid workflow name `{name}`: {problem}"),
            )
            .with_help("rename the file: a workflow name is its path without `.dig`"),
        );
    }
    let workflow = lower.workflow(&name, root);
    diags.append(&mut lower.diags);
    if !aliases.is_empty() {
        note_aliases(sources, &aliases, &mut diags);
    }
    crate::diag::sort(&mut diags);
    let ok = !diags.iter().any(Diagnostic::is_error);
    (workflow.filter(|_| ok), diags)
}

/// Diagnostics inside a value that aliases copied name the anchor and the aliases, and the
/// copies' identical diagnostics (each alias is lowered like the original) are reported once.
/// A diagnostic on an alias itself names the anchor it stands for.
fn note_aliases(sources: &SourceMap, aliases: &[AliasUse], diags: &mut Vec<Diagnostic>) {
    let line = |span: Span| {
        sources
            .get(span.file)
            .map_or(0, |f| f.line_col(span.start).0)
    };
    let mut noted = vec![false; diags.len()];
    for (d, noted) in diags.iter_mut().zip(&mut noted) {
        let inside = |node: Span| {
            node.file == d.span.file && node.start <= d.span.start && d.span.end <= node.end
        };
        let note = if let Some(a) = aliases.iter().find(|a| a.alias == d.span) {
            format!(
                "`*{}` stands for the value anchored as `&{}` on line {}",
                a.name,
                a.name,
                line(a.anchor)
            )
        } else if let Some(a) = aliases.iter().find(|a| inside(a.node)) {
            let uses: Vec<String> = aliases
                .iter()
                .filter(|b| b.anchor == a.anchor)
                .map(|b| line(b.alias).to_string())
                .collect();
            let (s, list) = match uses.as_slice() {
                [one] => ("", one.clone()),
                many => ("s", many.join(", ")),
            };
            format!(
                "this text is anchored as `&{}` on line {} and copied by `*{}` on line{s} {list}",
                a.name,
                line(a.anchor),
                a.name
            )
        } else {
            continue;
        };
        d.help = Some(match d.help.take() {
            Some(help) => format!("{help}; {note}"),
            None => note,
        });
        *noted = true;
    }
    let mut seen = std::collections::HashSet::new();
    let mut noted = noted.into_iter();
    diags.retain(|d| {
        noted.next() != Some(true)
            || seen.insert((d.is_error(), d.span, d.message.clone(), d.help.clone()))
    });
}

/// Whether any mapping in the tree has an `!include` key.
fn root_has_include(v: &Value) -> bool {
    match &v.kind {
        ValueKind::Map(m) => m
            .entries
            .iter()
            .any(|(k, v)| k.name == "!include" || root_has_include(v)),
        ValueKind::Seq(items) => items.iter().any(root_has_include),
        _ => false,
    }
}

/// Digdag's `checkWorkflowName`: what is wrong with a workflow name, if anything.
fn workflow_name_problem(name: &str) -> Option<&'static str> {
    let first = name.chars().next()?;
    if first.is_ascii_digit() {
        Some("it must not start with a digit")
    } else if "+^@/\\:*?\"<>".contains(first) {
        Some("it must not start with one of `+ ^ @ / \\ : * ? \" < >`")
    } else if name.len() > 255 {
        Some("it is longer than 255 characters")
    } else {
        None
    }
}

/// The path relative to the project, without `.dig`, with `/` separators.
fn workflow_name(project_dir: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(project_dir).unwrap_or(path);
    let rel = rel.strip_prefix(".").unwrap_or(rel);
    let parts: Vec<String> = rel
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    let joined = parts.join("/");
    joined.strip_suffix(".dig").unwrap_or(&joined).to_string()
}

/// Decodes bytes (UTF-8, optional BOM), adds the file to `sources` and parses it, its root
/// inside `base_depth` collections (an included file).
pub(crate) fn parse_bytes(
    sources: &mut SourceMap,
    path: PathBuf,
    bytes: Vec<u8>,
    base_depth: usize,
) -> Result<syntax::Parsed, Vec<Diagnostic>> {
    let bytes = match bytes.strip_prefix(b"\xEF\xBB\xBF".as_slice()) {
        Some(rest) => rest.to_vec(),
        None => bytes,
    };
    match String::from_utf8(bytes) {
        Ok(text) => {
            let file = sources.add(path, lone_cr_to_lf(text));
            let text = sources.get(file).map_or("", |f| f.text.as_str());
            syntax::parse_file_at(file, text, base_depth).map_err(|d| vec![d])
        }
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let bad = e.as_bytes().get(at).copied().unwrap_or(0);
            let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let file = sources.add(path, text);
            Err(vec![Diagnostic::error(
                Span::new(file, at, at),
                format!("invalid UTF-8: byte `0x{bad:02X}` does not start a valid character"),
            )
            .with_help("save the file as UTF-8")])
        }
    }
}

/// Parses one YAML document (no lowering, no includes): for param files (`-P`), Digdag's eval
/// test files and generated bodies. The document may be any node, not only a mapping; an
/// empty document is null.
pub fn parse_document(
    sources: &mut SourceMap,
    path: PathBuf,
    text: String,
) -> Result<Value, Vec<Diagnostic>> {
    let file = sources.add(path, lone_cr_to_lf(text));
    let text = sources.get(file).map_or("", |f| f.text.as_str());
    match syntax::parse_file_at(file, text, 0) {
        Ok(syntax::Parsed { value: Some(v), .. }) => Ok(v),
        Ok(syntax::Parsed { value: None, .. }) => Ok(Value {
            kind: ValueKind::Null,
            span: Span::new(file, 0, 0),
        }),
        Err(d) => Err(vec![d]),
    }
}

/// A lone `\r` ends a line in YAML, as `\n` and `\r\n` do, and every line break in a value
/// reads as `\n`; making it `\n` in the stored text (one byte for one, so offsets do not
/// move) lets diagnostics show the right line and column.
fn lone_cr_to_lf(text: String) -> String {
    let bytes = text.as_bytes();
    if !bytes.contains(&b'\r') {
        return text;
    }
    let lone = |i: usize| bytes[i] == b'\r' && bytes.get(i + 1) != Some(&b'\n');
    if !(0..bytes.len()).any(lone) {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' && chars.peek() != Some(&'\n') {
            out.push('\n');
        } else {
            out.push(c);
        }
    }
    out
}

/// Lowers a task body produced at run time (`_do:` of `for_each>`/`if>`/`loop>`, a `call>`ed
/// file's root) into a [`TaskDef`] named `name`, with the same rules as static tasks.
pub fn lower_task(name: &str, body: &Value) -> Result<TaskDef, Vec<Diagnostic>> {
    let mut lower = lower::Lower::default();
    let task = lower.task(name, body.span, body.clone());
    if lower.has_errors() {
        crate::diag::sort(&mut lower.diags);
        Err(lower.diags)
    } else {
        Ok(task)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `files` into a temp project, loads `main.dig` and returns the root's raw JSON
    /// (without lowering details) or the rendered diagnostics.
    fn check_include(files: &[(&str, &str)], expect: &str) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let main = dir.path().join("main.dig");
        let mut sources = SourceMap::new();
        let bytes = std::fs::read(&main).unwrap();
        let root = parse_bytes(&mut sources, main.clone(), bytes, 0)
            .unwrap()
            .value
            .unwrap();
        let mut cx = include::Includes {
            sources: &mut sources,
            stack: vec![std::fs::canonicalize(&main).unwrap()],
            diags: Vec::new(),
            aliases: Vec::new(),
        };
        let root = include::resolve(&mut cx, root, dir.path(), 0);
        let diags = cx.diags;
        let got = if diags.is_empty() {
            serde_json::to_string(&root.to_json_raw()).unwrap()
        } else {
            diags
                .iter()
                .map(|d| d.message.clone())
                .collect::<Vec<_>>()
                .join("; ")
        };
        assert_eq!(got, expect);
    }

    #[test]
    fn includes_merge_in_place_and_later_keys_win() {
        check_include(
            &[
                (
                    "main.dig",
                    "_export: {a: 1, n: {x: 1}}\n!include : sub/inc.dig\n+last: {echo>: z}\n",
                ),
                (
                    "sub/inc.dig",
                    "_export: {b: 2, n: {y: 2}}\n+t: {echo>: t}\n+last: {echo>: from_inc}\n",
                ),
            ],
            r#"{"_export":{"a":1,"n":{"x":1,"y":2},"b":2},"+t":{"echo>":"t"},"+last":{"echo>":"z"}}"#,
        );
        // Nested includes resolve against the including file's directory.
        check_include(
            &[
                ("main.dig", "+g:\n  !include : a/one.dig\n"),
                ("a/one.dig", "!include : two.dig\n+one: {echo>: 1}\n"),
                ("a/two.dig", "+two: {echo>: 2}\n"),
            ],
            r#"{"+g":{"+two":{"echo>":2},"+one":{"echo>":1}}}"#,
        );
    }

    #[test]
    fn include_errors() {
        check_include(
            &[("main.dig", "!include : missing.dig\n")],
            "cannot include `missing.dig`: file not found",
        );
        check_include(
            &[("main.dig", "!include : ../x.dig\n")],
            "`!include` path `../x.dig` leaves the including file's directory",
        );
        check_include(
            &[("main.dig", "!include : main.dig\n")],
            "`!include` cycle: main.dig -> main.dig",
        );
        check_include(
            &[("main.dig", "!include : list.dig\n"), ("list.dig", "- a\n")],
            "an included file must be a mapping of keys",
        );
    }

    #[test]
    fn workflow_names_follow_the_project_path() {
        assert_eq!(
            workflow_name(Path::new("proj"), Path::new("proj/etl.dig")),
            "etl"
        );
        assert_eq!(workflow_name(Path::new("."), Path::new("./etl.dig")), "etl");
        assert_eq!(
            workflow_name(Path::new("p"), Path::new("p/sub/wf.dig")),
            "sub/wf"
        );
        assert_eq!(
            workflow_name_problem("1wf"),
            Some("it must not start with a digit")
        );
        assert_eq!(workflow_name_problem("etl"), None);
    }
}
