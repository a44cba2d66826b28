//! Static checks for `spade check`: `${...}` that cannot parse, and references to variables
//! that are provably undefined. Both are warnings; the checker stays conservative.

use super::ast::{Declaration, Expr, FunctionDef, Stmt, UnaryOp};
use super::builtins::NAMES;
use super::parse::parse_expression;
use super::stdlib::is_global_name;
use crate::diag::{Diagnostic, Span};
use crate::dig::{Map, TaskDef, TaskKind, TemplatePart, Value, ValueKind, Workflow};
use std::collections::{BTreeSet, HashSet};
use std::rc::Rc;

/// Operators that never store or export params: a workflow made only of these has all its
/// variables visible in the file. Any other operator (`sh>` through `$SPADE_STORE`, `py>`,
/// `td>`, `http>`, `param_get>`, `call>` ...) may define names at run time, and then a name is
/// only reported when it is a near-typo of a known one.
const NON_STORING: &[&str] = &[
    "echo",
    "fail",
    "nop",
    "wait",
    "if",
    "for_each",
    "for_range",
    "loop",
    "require",
    "mail",
    "notify",
];

/// Names that exist at run time without being written in the file.
const RUNTIME_NAMES: &[&str] = &[
    "error",
    "_workdir",
    "_project_path",
    "i",
    "range",
    "print",
    "template",
];

pub(crate) fn check_workflow(workflow: &Workflow) -> Vec<Diagnostic> {
    let mut defined: BTreeSet<String> = BTreeSet::new();
    let mut storing = false;
    collect_task(&workflow.root, &mut defined, &mut storing);
    let mut checker = Checker {
        defined,
        may_store: storing,
        out: Vec::new(),
    };
    checker.task(&workflow.root);
    checker.out
}

/// Every key of every task in the file (exports, params, `_do` bodies, for_each keys): a name
/// defined anywhere counts as defined everywhere, which keeps the check conservative.
fn collect_task(task: &TaskDef, defined: &mut BTreeSet<String>, storing: &mut bool) {
    collect_map(&task.export, defined);
    collect_map(&task.params, defined);
    match &task.kind {
        TaskKind::Group(children) => {
            for c in children {
                collect_task(c, defined, storing);
            }
        }
        TaskKind::Operator(op) => {
            if !NON_STORING.contains(&op.name.as_str()) {
                *storing = true;
            }
            collect_value(&op.command, defined);
            for block in [&op.do_block, &op.else_do_block].into_iter().flatten() {
                collect_value(block, defined);
            }
        }
    }
    for t in [&task.error, &task.check].into_iter().flatten() {
        collect_task(t, defined, storing);
    }
}

fn collect_map(map: &Map, defined: &mut BTreeSet<String>) {
    for (k, v) in &map.entries {
        defined.insert(k.name.clone());
        collect_value(v, defined);
    }
}

fn collect_value(v: &Value, defined: &mut BTreeSet<String>) {
    match &v.kind {
        ValueKind::Map(m) => collect_map(m, defined),
        ValueKind::Seq(items) => {
            for i in items {
                collect_value(i, defined);
            }
        }
        _ => {}
    }
}

struct Checker {
    /// Sorted, so "did you mean" picks the same name on every run.
    defined: BTreeSet<String>,
    /// Some operator may store params at run time: only near-typos of known names are reported.
    may_store: bool,
    out: Vec<Diagnostic>,
}

impl Checker {
    fn task(&mut self, task: &TaskDef) {
        self.map(&task.export);
        self.map(&task.params);
        if let Some(crate::dig::RetryDef::Expr(v)) = &task.retry {
            self.value(v);
        }
        if let Some(crate::dig::ParallelDef::Expr(v)) = &task.parallel {
            self.value(v);
        }
        match &task.kind {
            TaskKind::Group(children) => {
                for c in children {
                    self.task(c);
                }
            }
            TaskKind::Operator(op) => {
                self.value(&op.command);
                for block in [&op.do_block, &op.else_do_block].into_iter().flatten() {
                    self.value(block);
                }
            }
        }
        for t in [&task.error, &task.check].into_iter().flatten() {
            self.task(t);
        }
    }

    fn map(&mut self, map: &Map) {
        for (_, v) in &map.entries {
            self.value(v);
        }
    }

    fn value(&mut self, v: &Value) {
        match &v.kind {
            ValueKind::Str(t) => {
                for part in &t.parts {
                    if let TemplatePart::Expr { source, span } = part {
                        self.expr(source, *span);
                    }
                }
            }
            ValueKind::Seq(items) => {
                for i in items {
                    self.value(i);
                }
            }
            ValueKind::Map(m) => self.map(m),
            _ => {}
        }
    }

    fn expr(&mut self, source: &str, span: Span) {
        let ast = match parse_expression(source) {
            Ok(ast) => ast,
            // Too deep can never run: an error. Other syntax spade does not read is a
            // warning, as the checker cannot prove that it fails at run time.
            Err(e) if e.too_deep => {
                self.out.push(
                    Diagnostic::error(
                        span,
                        format!(
                            "`${{{}}}` cannot be evaluated: {}",
                            super::excerpt(source),
                            e.message
                        ),
                    )
                    .with_help("split it into smaller expressions held by separate params"),
                );
                return;
            }
            Err(e) => {
                self.out.push(Diagnostic::warning(
                    span,
                    format!(
                        "`${{{}}}` cannot be parsed: {}",
                        super::excerpt(source),
                        e.message
                    ),
                ));
                return;
            }
        };
        let mut names = Names::default();
        free_names(&ast, &mut Vec::new(), &mut names);
        let mut seen = HashSet::new();
        for name in names.free {
            // `typeof x` anywhere in the expression means its author handles a missing `x`.
            if names.guarded.contains(&name) || !seen.insert(name.clone()) || self.is_defined(&name)
            {
                continue;
            }
            let candidates = self
                .defined
                .iter()
                .map(String::as_str)
                .chain(NAMES.iter().copied());
            let help = match crate::dig::suggest::did_you_mean(&name, candidates) {
                Some(known) => format!("did you mean `{known}`?"),
                // A task may store this name at run time: nothing to prove.
                None if self.may_store => continue,
                None => format!(
                    "pass it with `-p {name}=...`, define it in `_export:`, or guard it with `typeof {name} == 'undefined'`"
                ),
            };
            self.out.push(
                Diagnostic::warning(
                    span,
                    format!("`{name}` is not defined by any param, `_export` or built-in variable of this workflow"),
                )
                .with_help(help),
            );
        }
    }

    fn is_defined(&self, name: &str) -> bool {
        self.defined.contains(name)
            || NAMES.contains(&name)
            || RUNTIME_NAMES.contains(&name)
            || is_global_name(name)
    }
}

/// The names an expression reads from its scope.
#[derive(Default)]
struct Names {
    /// Read as values, in order of appearance.
    free: Vec<String>,
    /// Tested with `typeof NAME`: the expression expects them to be missing at times.
    guarded: HashSet<String>,
}

/// Identifiers an expression reads from its scope; `typeof NAME` records a guard instead.
fn free_names(e: &Expr, locals: &mut Vec<Rc<str>>, out: &mut Names) {
    let mut go = |e: &Expr, locals: &mut Vec<Rc<str>>| free_names(e, locals, out);
    match e {
        Expr::Ident(name) => {
            if !locals.contains(name) {
                out.free.push(name.to_string());
            }
        }
        Expr::Unary(UnaryOp::Typeof, inner) => {
            if let Expr::Ident(name) = &**inner {
                out.guarded.insert(name.to_string());
            } else {
                go(inner, locals);
            }
        }
        Expr::Num(_)
        | Expr::Str(_)
        | Expr::Bool(_)
        | Expr::Null
        | Expr::Regex { .. }
        | Expr::This => {}
        Expr::Array(items) | Expr::Comma(items) => {
            for i in items {
                go(i, locals);
            }
        }
        Expr::Object(props) => {
            for (_, v) in props {
                go(v, locals);
            }
        }
        Expr::Member(o, _) => go(o, locals),
        Expr::Index(a, b) | Expr::Binary(_, a, b) | Expr::Logical(_, a, b) => {
            go(a, locals);
            go(b, locals);
        }
        Expr::Assign(target, _, value) => {
            // An assignment defines a global; only its value is read.
            if !matches!(**target, Expr::Ident(_)) {
                go(target, locals);
            }
            go(value, locals);
        }
        Expr::Call(f, args) | Expr::New(f, args) => {
            go(f, locals);
            for a in args {
                go(a, locals);
            }
        }
        Expr::Unary(_, a) | Expr::Update(_, _, a) => go(a, locals),
        Expr::Cond(a, b, c) => {
            go(a, locals);
            go(b, locals);
            go(c, locals);
        }
        Expr::Function(def) | Expr::Program(def) => function_free_names(def, locals, out),
    }
}

fn function_free_names(def: &FunctionDef, locals: &mut Vec<Rc<str>>, out: &mut Names) {
    let mark = locals.len();
    locals.extend(def.params.iter().cloned());
    locals.push("arguments".into());
    if let Some(n) = &def.name {
        locals.push(n.clone());
    }
    declared(&def.body, locals);
    for s in &def.body {
        stmt_free_names(s, locals, out);
    }
    locals.truncate(mark);
}

/// `var` and function names of a body (hoisted).
fn declared(body: &[Stmt], locals: &mut Vec<Rc<str>>) {
    super::ast::visit_declarations(body, &mut |d| match d {
        Declaration::Var(name) => locals.push(name.clone()),
        Declaration::Function(def) => locals.extend(def.name.clone()),
        // Block-scoped in JavaScript; treating it as a local only hides warnings.
        Declaration::CatchParam(name) => locals.push(name.clone()),
    });
}

fn stmt_free_names(s: &Stmt, locals: &mut Vec<Rc<str>>, out: &mut Names) {
    match s {
        Stmt::Expr(e) | Stmt::Return(Some(e)) | Stmt::Throw(e) => free_names(e, locals, out),
        Stmt::Switch(subject, cases) => {
            free_names(subject, locals, out);
            for (test, body) in cases {
                if let Some(test) = test {
                    free_names(test, locals, out);
                }
                for s in body {
                    stmt_free_names(s, locals, out);
                }
            }
        }
        Stmt::Try {
            body,
            catch,
            finally,
        } => {
            let blocks = std::iter::once(body)
                .chain(catch.iter().map(|(_, h)| h))
                .chain(finally.iter());
            for block in blocks {
                for s in block {
                    stmt_free_names(s, locals, out);
                }
            }
        }
        Stmt::Var(decls) => {
            for (_, init) in decls {
                if let Some(e) = init {
                    free_names(e, locals, out);
                }
            }
        }
        Stmt::If(test, a, b) => {
            free_names(test, locals, out);
            stmt_free_names(a, locals, out);
            if let Some(b) = b {
                stmt_free_names(b, locals, out);
            }
        }
        Stmt::For {
            init,
            test,
            update,
            body,
        } => {
            if let Some(init) = init {
                stmt_free_names(init, locals, out);
            }
            for e in [test, update].into_iter().flatten() {
                free_names(e, locals, out);
            }
            stmt_free_names(body, locals, out);
        }
        Stmt::ForIn(_, obj, body) => {
            free_names(obj, locals, out);
            stmt_free_names(body, locals, out);
        }
        Stmt::While(test, body) | Stmt::DoWhile(body, test) => {
            free_names(test, locals, out);
            stmt_free_names(body, locals, out);
        }
        Stmt::Block(body) => {
            for s in body {
                stmt_free_names(s, locals, out);
            }
        }
        Stmt::Function(def) => function_free_names(def, locals, out),
        Stmt::Return(None) | Stmt::Break | Stmt::Continue | Stmt::Empty => {}
    }
}

#[cfg(test)]
mod tests {
    use crate::diag::SourceMap;
    use std::path::Path;

    /// Loads `text` as `w.dig`, runs the checker and renders its warnings.
    fn check(text: &str, expected: &str) {
        let mut sources = SourceMap::new();
        let (wf, diags) = crate::dig::load_source(
            &mut sources,
            Path::new("."),
            Path::new("w.dig"),
            text.as_bytes().to_vec(),
        );
        assert!(!diags.iter().any(|d| d.is_error()), "{diags:?}");
        let got: String = super::check_workflow(&wf.unwrap())
            .iter()
            .map(|d| d.render(&sources))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn warns_on_unparsable_expression_with_caret() {
        check(
            "+a:\n  echo>: ${1 +}\n",
            "w.dig:2:12: warning: `${1 +}` cannot be parsed: expected an expression, found end of expression\n  |\n2 |   echo>: ${1 +}\n  |            ^^^\n",
        );
    }

    #[test]
    fn warns_on_provably_undefined_variable() {
        check(
            "_export:\n  known: 1\n+a:\n  echo>: ${known} ${outdir} ${sesion_date}\n",
            "w.dig:4:21: warning: `outdir` is not defined by any param, `_export` or built-in variable of this workflow\n  |\n4 |   echo>: ${known} ${outdir} ${sesion_date}\n  |                     ^^^^^^\n  = help: pass it with `-p outdir=...`, define it in `_export:`, or guard it with `typeof outdir == 'undefined'`\nw.dig:4:31: warning: `sesion_date` is not defined by any param, `_export` or built-in variable of this workflow\n  |\n4 |   echo>: ${known} ${outdir} ${sesion_date}\n  |                               ^^^^^^^^^^^\n  = help: did you mean `session_date`?\n",
        );
    }

    #[test]
    fn accepts_builtins_locals_loop_variables_and_typeof_guards() {
        check(
            "+a:\n  for_each>:\n    fruit: [apple]\n  _do:\n    echo>: ${fruit} ${i} ${session_date}\n+b:\n  echo>: \"${typeof maybe == 'undefined' ? '' : 1} ${[1].map(function(x){ var y = x; return y })} ${Math.max(1, 2)} ${moment().format()}\"\n",
            "",
        );
    }

    #[test]
    fn stays_quiet_when_an_operator_may_store_params() {
        check("+a:\n  py>: tasks.run\n+b:\n  echo>: ${stored.value}\n", "");
        // `sh>` may store through `$SPADE_STORE` (the example project's `${rows}`).
        check("+a:\n  sh>: ./load.sh\n+b:\n  echo>: ${rows}\n", "");
        // ...but a near-typo of a known name is still worth a warning.
        check(
            "+a:\n  sh>: ./load.sh\n+b:\n  echo>: ${sesion_date}\n",
            "w.dig:4:12: warning: `sesion_date` is not defined by any param, `_export` or built-in variable of this workflow\n  |\n4 |   echo>: ${sesion_date}\n  |            ^^^^^^^^^^^\n  = help: did you mean `session_date`?\n",
        );
    }
}
