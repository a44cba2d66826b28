//! Value tree -> [`Workflow`]: keys, operators, directives and schedule; collects every error.

use crate::diag::{Diagnostic, Span};
use crate::dig::suggest::did_you_mean;
use crate::dig::value::{Key, Map, Value, ValueKind};
use crate::dig::workflow::{
    IntervalType, OperatorCall, ParallelDef, RetryDef, RetryPolicy, ScheduleDef, TaskDef, TaskKind,
    Workflow,
};
use crate::operators::catalog;
use std::time::Duration;

/// Keys allowed at the top of a workflow file besides `+tasks` (spec 1.5).
const TOP_KEYS: &[&str] = &[
    "timezone",
    "schedule",
    "sla",
    "_export",
    "_error",
    "_check",
    "_retry",
    "_parallel",
];

/// Keys a group (a task without operator) may hold besides `+tasks` (spec 1.6, plus spade's
/// `_timeout` and `_disable`).
const GROUP_KEYS: &[&str] = &[
    "timezone",
    "schedule",
    "sla",
    "_parallel",
    "_background",
    "_after",
    "_error",
    "_check",
    "_retry",
    "_export",
    "_secrets",
    "_timeout",
    "_disable",
];

const SCHEDULE_KINDS: &[&str] = &[
    "cron>",
    "daily>",
    "hourly>",
    "weekly>",
    "monthly>",
    "minutes_interval>",
    "seconds_interval>",
];

const SCHEDULE_OPTIONS: &[&str] = &[
    "start",
    "end",
    "skip_on_overtime",
    "skip_delayed_by",
    "catchup",
];

const RETRY_KEYS: &[&str] = &[
    "limit",
    "interval",
    "interval_type",
    "max_interval",
    "deadline",
];

/// The operator-related keys of a task, moved out of its mapping.
#[derive(Default)]
struct OperatorParts {
    /// Every `name>` key and `_type`, in file order.
    ops: Vec<(Key, Value)>,
    command: Option<Value>,
    do_block: Option<Value>,
    else_do_block: Option<Value>,
}

/// How deep tasks may nest (the workflow's own `+tasks` are level 1; a `_do:` body is one
/// level below its operator). Each level lowers through three frames of about 8 KB together in
/// a debug build, so 128 levels fit a 2 MiB stack with room for the rest of the run; real
/// workflows nest a handful of levels.
pub const MAX_TASK_DEPTH: usize = 128;

/// Collects diagnostics while lowering.
#[derive(Default)]
pub(crate) struct Lower {
    pub(crate) diags: Vec<Diagnostic>,
    /// The tasks being lowered around the current one.
    task_depth: usize,
    /// Operators that are not built in, as `(operator, task, span)`: an executable of the
    /// project or on `PATH` may supply them, which `operators::external::diagnose` decides
    /// once the file has loaded. Reported here only when the file has errors (it will not load).
    not_built_in: Vec<(String, String, Span)>,
}

fn kind_name(v: &Value) -> &'static str {
    match v.kind {
        ValueKind::Null => "nothing",
        ValueKind::Bool(_) => "a boolean",
        ValueKind::Int(_) => "an integer",
        ValueKind::Float(_) => "a number",
        ValueKind::Str(_) => "a string",
        ValueKind::Seq(_) => "a sequence",
        ValueKind::Map(_) => "a mapping",
    }
}

/// `found string `x``, `found an integer`: what a value is, for messages.
fn found(v: &Value) -> String {
    match &v.kind {
        ValueKind::Str(t) => format!("string `{}`", t.raw),
        ValueKind::Int(i) => format!("integer `{i}`"),
        ValueKind::Bool(b) => format!("boolean `{b}`"),
        ValueKind::Float(f) => format!("number `{f}`"),
        _ => kind_name(v).to_string(),
    }
}

/// Adds "did you mean" when there is a close name, else the fallback help.
fn hint_or(d: Diagnostic, hint: Option<&str>, fallback: &str) -> Diagnostic {
    match hint {
        Some(h) => d.with_help(format!("did you mean `{h}`?")),
        None => d.with_help(fallback),
    }
}

/// A string with no `${...}`, as a plain `&str`.
fn literal_str(v: &Value) -> Option<&str> {
    v.as_template()
        .filter(|t| !t.has_expr())
        .map(|t| t.raw.as_str())
}

fn is_valid_task_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-=[]{}%&@,.^`".contains(c)
}

impl Lower {
    fn error(&mut self, span: Span, message: impl Into<String>) {
        self.diags.push(Diagnostic::error(span, message));
    }

    fn error_help(&mut self, span: Span, message: impl Into<String>, help: impl Into<String>) {
        self.diags
            .push(Diagnostic::error(span, message).with_help(help));
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.diags.iter().any(Diagnostic::is_error)
    }

    /// The whole file. `None` when the document is not a mapping.
    /// The whole file, consumed: values move into the model instead of being copied.
    /// `None` when the document is not a mapping.
    pub(crate) fn workflow(&mut self, name: &str, root: Value) -> Option<Workflow> {
        let span = root.span;
        let map = match root.kind {
            ValueKind::Map(map) => map,
            kind => {
                let root = Value { kind, span };
                self.error_help(
                    span,
                    format!(
                        "a workflow must be a mapping of keys, found {}",
                        kind_name(&root)
                    ),
                    "start with tasks such as `+hello:` and indent their operators under them",
                );
                return None;
            }
        };
        let mut timezone = "UTC".to_string();
        let mut schedule = None;
        let mut sla = None;
        for (key, value) in &map.entries {
            match key.name.as_str() {
                "timezone" => {
                    if let Some(tz) = self.timezone(value) {
                        timezone = tz;
                    }
                }
                "schedule" => schedule = self.schedule(value),
                "sla" => sla = Some(value.clone()),
                n if n.starts_with('+') || TOP_KEYS.contains(&n) => {}
                n => self.unknown_top_key(key, n),
            }
        }
        let root_name = format!("+{name}");
        let root_task = self.task_body(&root_name, span, map, true);
        if self.has_errors() {
            for (op, task, at) in std::mem::take(&mut self.not_built_in) {
                let d = catalog::not_built_in(&op, &task, at, std::iter::empty());
                self.diags.push(d);
            }
        }
        Some(Workflow {
            name: name.to_string(),
            timezone,
            schedule,
            sla,
            root: root_task,
            span,
        })
    }

    fn unknown_top_key(&mut self, key: &Key, n: &str) {
        if let Some(op) = n.strip_suffix('>') {
            self.error_help(
                key.span,
                format!("operator `{op}>` at the top level of a workflow"),
                format!("operators run inside tasks: add a task such as `+{op}:` and indent `{op}>:` under it"),
            );
        } else if n.starts_with('_') {
            self.error_help(
                key.span,
                format!("`{n}` is not allowed at the top level of a workflow"),
                with_top_hint(n),
            );
        } else {
            let hint = did_you_mean(n, TOP_KEYS.iter().copied());
            let help = match hint {
                Some(h) => format!("did you mean `{h}`?"),
                None => format!("tasks start with `+` (`+{n}:`); params go under `_export:`"),
            };
            self.error_help(key.span, format!("unknown top-level key `{n}`"), help);
        }
    }

    fn timezone(&mut self, v: &Value) -> Option<String> {
        let Some(name) = literal_str(v) else {
            self.error_help(
                v.span,
                format!("`timezone` must be a zone name, found {}", found(v)),
                "use an IANA name such as `Asia/Tokyo` or `UTC`",
            );
            return None;
        };
        if jiff::tz::TimeZone::get(name).is_ok() || is_fixed_offset(name) {
            return Some(name.to_string());
        }
        let hint = did_you_mean(name, zone_names().iter().map(String::as_str));
        let help = match hint {
            Some(h) => format!("did you mean `{h}`?"),
            None => "use an IANA name such as `Asia/Tokyo` or `UTC`".to_string(),
        };
        self.error_help(v.span, format!("unknown timezone `{name}`"), help);
        None
    }

    /// One task: a group of `+children`, or an operator call.
    pub(crate) fn task(&mut self, name: &str, span: Span, v: Value) -> TaskDef {
        let body = match v.kind {
            ValueKind::Map(m) => m,
            ValueKind::Null => Map::default(),
            // Digdag concatenates a sequence of mappings into one (spec 1.1 point 5).
            ValueKind::Seq(items) if items.iter().all(|i| i.as_map().is_some()) => {
                let mut m = Map::default();
                for item in items {
                    if let ValueKind::Map(im) = item.kind {
                        m.entries.extend(im.entries);
                    }
                }
                m
            }
            kind => {
                let v = Value { kind, span: v.span };
                self.error_help(
                    v.span,
                    format!("task `{name}` must be a mapping, found {}", found(&v)),
                    format!("indent its operator under the task name, e.g. `{name}:` then `  echo>: hello` on the next line"),
                );
                Map::default()
            }
        };
        if self.task_depth >= MAX_TASK_DEPTH {
            self.error_help(
                span,
                format!(
                    "tasks nested too deeply: `{name}` would be level {} of nested tasks, and the limit is {MAX_TASK_DEPTH}",
                    self.task_depth + 1
                ),
                "flatten the workflow: move the inner tasks into a workflow of their own and `call>` it",
            );
            return TaskDef::new(name, TaskKind::Group(Vec::new()), span);
        }
        self.task_depth += 1;
        let task = self.task_body(name, span, body, false);
        self.task_depth -= 1;
        task
    }

    /// A task from its mapping. The `root` task of a workflow is always a group whose other
    /// top-level keys were handled (or reported) by [`Lower::workflow`].
    fn task_body(&mut self, name: &str, span: Span, body: Map, root: bool) -> TaskDef {
        let mut task = TaskDef::new(name, TaskKind::Group(Vec::new()), span);
        // `_disable: true` turns the task into an empty group and drops the rest (spec 1.6).
        if let Some(d) = body.get("_disable").filter(|_| !root) {
            match d.kind {
                ValueKind::Bool(b) => task.disable = b,
                _ => self.error_help(
                    d.span,
                    format!("`_disable` must be `true` or `false`, found {}", found(d)),
                    "`_disable` is read before any `${...}` is evaluated, so it must be a literal",
                ),
            }
            if task.disable {
                return task;
            }
        }
        let is_operator = !root
            && body
                .entries
                .iter()
                .any(|(k, _)| k.name.ends_with('>') || k.name == "_type");
        let mut parts = OperatorParts::default();
        let mut children = Vec::new();
        // Keys that are neither subtasks nor directives: params of an operator, invalid keys
        // of a group.
        let mut rest = Vec::new();
        for (key, value) in body.entries {
            let n = key.name.as_str();
            if n.starts_with('+') {
                children.push((key, value));
                continue;
            }
            // The root's other keys were reported as unknown top-level keys already.
            if root && !TOP_KEYS.contains(&n) {
                continue;
            }
            match n {
                "_export" => match value.kind {
                    ValueKind::Map(m) => task.export = m,
                    ValueKind::Null => {}
                    _ => self.error_help(
                        value.span,
                        format!("`_export` must be a mapping, found {}", found(&value)),
                        "write `_export:` and indent `name: value` lines under it",
                    ),
                },
                "_retry" => task.retry = self.retry(&value),
                "_parallel" => task.parallel = self.parallel(&value),
                "_background" => match value.kind {
                    ValueKind::Bool(b) => task.background = b,
                    _ => self.error(
                        value.span,
                        format!(
                            "`_background` must be `true` or `false`, found {}",
                            found(&value)
                        ),
                    ),
                },
                "_after" => task.after = self.after(&value),
                "_error" => task.error = Some(Box::new(self.special("^error", "_error", value))),
                "_check" => task.check = Some(Box::new(self.special("^check", "_check", value))),
                "_timeout" => task.timeout = self.duration("_timeout", &value),
                "_disable" => {}
                "_do" if is_operator => parts.do_block = Some(value),
                "_else_do" if is_operator => parts.else_do_block = Some(value),
                "_command" if is_operator => parts.command = Some(value),
                "_type" => parts.ops.push((key, value)),
                _ if n.ends_with('>') => parts.ops.push((key, value)),
                _ => rest.push((key, value)),
            }
        }
        if is_operator {
            task.params.entries = rest;
            self.operator(&mut task, parts, &children);
        } else {
            self.group(&mut task, &rest, children, root);
        }
        task
    }

    fn special(&mut self, name: &str, key: &str, v: Value) -> TaskDef {
        if v.as_map().is_none() {
            self.error_help(
                v.span,
                format!("`{key}` must be a mapping, found {}", found(&v)),
                format!("indent a task body under `{key}:`, e.g. `  echo>: failed`"),
            );
        }
        self.task(name, v.span, v)
    }

    fn after(&mut self, v: &Value) -> Vec<String> {
        let items: Vec<&Value> = match &v.kind {
            ValueKind::Seq(items) => items.iter().collect(),
            _ => vec![v],
        };
        let mut names = Vec::new();
        for item in items {
            match literal_str(item) {
                Some(s) => names.push(s.to_string()),
                None => self.error_help(
                    item.span,
                    format!(
                        "`_after` must name earlier sibling tasks, found {}",
                        found(item)
                    ),
                    "write `_after: +task` or `_after: [+a, +b]`",
                ),
            }
        }
        names
    }

    fn group(
        &mut self,
        task: &mut TaskDef,
        rest: &[(Key, Value)],
        children: Vec<(Key, Value)>,
        root: bool,
    ) {
        for (key, _) in rest {
            let n = key.name.as_str();
            if root || GROUP_KEYS.contains(&n) {
                continue;
            }
            if n == "!include" {
                self.error(key.span, "`!include` is not resolved here");
                continue;
            }
            // `parallel:` for `_parallel:` is the classic slip (Digdag's own test has it).
            let underscored = format!("_{n}");
            let hint = if n.starts_with('_') {
                did_you_mean(n, GROUP_KEYS.iter().copied())
            } else {
                did_you_mean(&underscored, GROUP_KEYS.iter().copied())
            };
            let help = match hint {
                Some(h) => format!("did you mean `{h}`?"),
                _ => "a task without an operator is a group: it holds only `+subtasks` and directives; put params under `_export:`, or add an operator such as `sh>:`".to_string(),
            };
            self.error_help(
                key.span,
                format!("group `{}` contains invalid key `{n}`", task.name),
                help,
            );
        }
        let mut tasks: Vec<TaskDef> = Vec::with_capacity(children.len());
        let parallel = !matches!(task.parallel, None | Some(ParallelDef::All(false)));
        for (key, value) in children {
            self.check_task_name(&key);
            let child = self.task(&key.name, key.span, value);
            if child.background && parallel {
                self.error_help(
                    key.span,
                    format!("`_background` on `{}` inside the parallel group `{}`", key.name, task.name),
                    "every child of a `_parallel` group already starts at once: remove `_background`",
                );
            }
            if !child.after.is_empty() {
                if parallel {
                    for a in &child.after {
                        let target = if a.starts_with('+') {
                            a.clone()
                        } else {
                            format!("+{a}")
                        };
                        if !tasks.iter().any(|t| t.name == target) {
                            self.error_help(
                                key.span,
                                format!("`_after` of `{}` names `{a}`, which is not an earlier sibling", key.name),
                                "`_after` may only name tasks defined before this one in the same group",
                            );
                        }
                    }
                } else {
                    self.error_help(
                        key.span,
                        format!("`_after` on `{}` outside a parallel group", key.name),
                        format!("children of `{}` already run in order; add `_parallel: true` to the group or remove `_after`", task.name),
                    );
                }
            }
            tasks.push(child);
        }
        task.kind = TaskKind::Group(tasks);
    }

    fn check_task_name(&mut self, key: &Key) {
        let rest = key.name.get(1..).unwrap_or("");
        if rest.is_empty() {
            self.error_help(
                key.span,
                "empty task name",
                "name the task after the `+`, e.g. `+load:`",
            );
        } else if let Some(bad) = rest.chars().find(|&c| !is_valid_task_char(c)) {
            let bad = if bad == ' ' {
                "a space".to_string()
            } else {
                format!("`{bad}`")
            };
            self.error_help(
                key.span,
                format!("invalid task name `{}`: {bad} is not allowed", key.name),
                "task names may use ASCII letters, digits and `_-=[]{}%&@,.^` after the `+`",
            );
        } else if key.name.len() > 255 {
            self.error(key.span, "task name is longer than 255 characters");
        }
    }

    fn operator(&mut self, task: &mut TaskDef, parts: OperatorParts, children: &[(Key, Value)]) {
        let OperatorParts {
            mut ops,
            command: command_entry,
            do_block,
            else_do_block,
        } = parts;
        if let Some((child, _)) = children.first() {
            let op = ops
                .first()
                .map_or("_type".to_string(), |(k, _)| format!("`{}`", k.name));
            self.error_help(
                child.span,
                format!(
                    "task `{}` has both an operator ({op}) and subtasks",
                    task.name
                ),
                format!(
                    "a task runs one operator or holds subtasks: move {op} into its own subtask"
                ),
            );
        }
        if let [(first, _), (second, _), ..] = ops.as_slice() {
            self.error_help(
                second.span,
                format!(
                    "task `{}` has more than one operator: `{}` and `{}`",
                    task.name, first.name, second.name
                ),
                "a task runs one operator: split it into two tasks",
            );
        }
        // `name>: x` wins over `_type: name` + `_command: x` when both are written (an error
        // reported above anyway).
        let sugar = ops.iter().position(|(k, _)| k.name.ends_with('>'));
        let (name, name_span, command) = match sugar {
            Some(i) => {
                let (k, v) = ops.swap_remove(i);
                (k.name.trim_end_matches('>').to_string(), k.span, Some(v))
            }
            None => match ops.into_iter().next() {
                Some((k, v)) => {
                    let name = self.type_name(task, &v);
                    (name, k.span.to(v.span), command_entry)
                }
                None => (String::new(), task.span, None),
            },
        };
        let command = command.unwrap_or(Value {
            kind: ValueKind::Null,
            span: name_span,
        });
        let supported = self.check_operator(task, &name, name_span, &command);
        // Digdag compiles `_do`/`_else_do` only when the generator runs; checking them now
        // reports their mistakes before the first run. The lowered task is dropped: the
        // generator lowers the block again with its own params.
        for (key, block) in [("_do", &do_block), ("_else_do", &else_do_block)] {
            match block {
                Some(block @ Value { kind: ValueKind::Map(_) | ValueKind::Null, .. }) => {
                    let _ = self.task("^sub", block.span, block.clone());
                }
                Some(block) => self.error_help(
                    block.span,
                    format!("`{key}` must be a mapping of tasks, found {}", found(block)),
                    format!("indent the tasks to generate under `{key}:`, e.g. `  +step:` then `    echo>: ${{i}}`"),
                ),
                None => {}
            }
        }
        task.kind = TaskKind::Operator(Box::new(OperatorCall {
            name,
            command,
            supported,
            do_block,
            else_do_block,
            span: name_span,
        }));
    }

    /// The operator name of `_type: name`.
    fn type_name(&mut self, task: &TaskDef, v: &Value) -> String {
        match (&v.kind, literal_str(v)) {
            (_, Some(s)) => s.to_string(),
            // Digdag evaluates `_type: ${...}` when the task runs, so the operator is unknown
            // until then.
            (ValueKind::Str(t), None) => {
                self.diags.push(
                    Diagnostic::warning(
                        v.span,
                        format!("the operator of task `{}` is computed at run time", task.name),
                    )
                    .with_help("spade checks operator names only when `_type` is a literal; running this task fails"),
                );
                t.raw.clone()
            }
            _ => {
                self.error(
                    v.span,
                    format!("`_type` must be an operator name, found {}", found(v)),
                );
                String::new()
            }
        }
    }

    /// Looks the operator up in the catalog; returns whether spade has it built in.
    fn check_operator(&mut self, task: &TaskDef, name: &str, span: Span, command: &Value) -> bool {
        let supported = match catalog::lookup(name) {
            None if name.contains("${") || name.is_empty() => false,
            Some(info) if info.supported => true,
            // An executable may supply it: a question about the project, not this file.
            Some(_) | None => {
                let entry = (name.to_string(), task.name.clone(), span);
                self.not_built_in.push(entry);
                false
            }
        };
        // Every operator spade runs needs its argument, except `nop>`.
        if supported && name != "nop" && matches!(command.kind, ValueKind::Null) {
            self.error_help(
                command.span,
                format!("`{name}>` of task `{}` needs a value", task.name),
                format!(
                    "write the operator's argument after the colon, e.g. `{}`",
                    example_call(name)
                ),
            );
        }
        supported
    }

    fn retry(&mut self, v: &Value) -> Option<RetryDef> {
        const HELP: &str = "write `_retry: 3`, or a map such as `_retry: {limit: 3, interval: 10s, interval_type: exponential}`";
        match &v.kind {
            ValueKind::Int(_) | ValueKind::Str(_) => {
                if v.as_template().is_some_and(|t| t.has_expr()) {
                    return Some(RetryDef::Expr(v.clone()));
                }
                let limit = self.count("_retry", v, 0)?;
                Some(RetryDef::Policy(RetryPolicy {
                    limit,
                    interval: Duration::ZERO,
                    interval_type: IntervalType::Constant,
                    max_interval: None,
                    deadline: None,
                }))
            }
            ValueKind::Map(m) => {
                let mut policy = RetryPolicy {
                    limit: 0,
                    interval: Duration::ZERO,
                    interval_type: IntervalType::Constant,
                    max_interval: None,
                    deadline: None,
                };
                let mut ok = true;
                for (key, value) in &m.entries {
                    match key.name.as_str() {
                        "limit" => match self.count("_retry.limit", value, 0) {
                            Some(l) => policy.limit = l,
                            None => ok = false,
                        },
                        "interval" => match self.duration("_retry.interval", value) {
                            Some(d) => policy.interval = d,
                            None => ok = false,
                        },
                        "max_interval" => match self.duration("_retry.max_interval", value) {
                            Some(d) => policy.max_interval = Some(d),
                            None => ok = false,
                        },
                        "deadline" => match self.duration("_retry.deadline", value) {
                            Some(d) => policy.deadline = Some(d),
                            None => ok = false,
                        },
                        "interval_type" => match literal_str(value)
                            .map(str::to_ascii_lowercase)
                            .as_deref()
                        {
                            Some("constant") => policy.interval_type = IntervalType::Constant,
                            Some("exponential") => policy.interval_type = IntervalType::Exponential,
                            _ => {
                                ok = false;
                                self.error_help(
                                    value.span,
                                    format!("`_retry.interval_type` must be `constant` or `exponential`, found {}", found(value)),
                                    "`constant` waits `interval` each time; `exponential` doubles it after each retry",
                                );
                            }
                        },
                        n => {
                            ok = false;
                            let d =
                                Diagnostic::error(key.span, format!("unknown `_retry` key `{n}`"));
                            let hint = did_you_mean(n, RETRY_KEYS.iter().copied());
                            self.diags.push(match hint {
                                Some(h) => d.with_help(format!("did you mean `{h}`?")),
                                None => d.with_help("`_retry` accepts `limit`, `interval`, `interval_type`, `max_interval` and `deadline`"),
                            });
                        }
                    }
                }
                if m.get("limit").is_none() {
                    // After an unknown key (most likely a misspelt `limit`) this would repeat it.
                    if ok {
                        self.error_help(v.span, "`_retry` needs `limit:`", HELP);
                    }
                    return None;
                }
                ok.then_some(RetryDef::Policy(policy))
            }
            _ => {
                self.error_help(
                    v.span,
                    format!(
                        "`_retry` must be an integer, `${{...}}` or a map with `limit:`, found {}",
                        found(v)
                    ),
                    HELP,
                );
                None
            }
        }
    }

    /// A non-negative count: an integer or a numeric string, at least `min`.
    fn count(&mut self, what: &str, v: &Value, min: u32) -> Option<u32> {
        let n: Option<i64> = match &v.kind {
            ValueKind::Int(i) => Some(*i),
            ValueKind::Str(t) if !t.has_expr() => t.raw.trim().parse().ok(),
            _ => None,
        };
        match n.and_then(|n| u32::try_from(n).ok()) {
            Some(n) if n >= min => Some(n),
            _ => {
                self.error_help(
                    v.span,
                    format!(
                        "`{what}` must be an integer of at least {min}, found {}",
                        found(v)
                    ),
                    format!("write a whole number such as `{}`", min.max(3)),
                );
                None
            }
        }
    }

    fn duration(&mut self, what: &str, v: &Value) -> Option<Duration> {
        let parsed = match &v.kind {
            ValueKind::Int(i) => u64::try_from(*i).ok().map(Duration::from_secs),
            ValueKind::Str(t) if !t.has_expr() => super::duration::parse(&t.raw),
            _ => None,
        };
        if parsed.is_none() {
            self.error_help(
                v.span,
                format!("`{what}` must be a duration, found {}", found(v)),
                "write seconds (`30`) or a duration such as `30s`, `5m`, `2h`, `1d` or `1h30m`",
            );
        }
        parsed
    }

    fn parallel(&mut self, v: &Value) -> Option<ParallelDef> {
        const HELP: &str = "write `_parallel: true`, `_parallel: false` or `_parallel: {limit: 2}`";
        match &v.kind {
            ValueKind::Bool(b) => Some(ParallelDef::All(*b)),
            ValueKind::Str(t) if t.has_expr() => Some(ParallelDef::Expr(v.clone())),
            ValueKind::Map(m) => {
                for (key, _) in &m.entries {
                    if key.name != "limit" {
                        self.error_help(
                            key.span,
                            format!("unknown `_parallel` key `{}`", key.name),
                            HELP,
                        );
                    }
                }
                match m.get("limit") {
                    Some(l) if l.as_template().is_some_and(|t| t.has_expr()) => {
                        Some(ParallelDef::Expr(v.clone()))
                    }
                    Some(l) => self.count("_parallel.limit", l, 1).map(ParallelDef::Limit),
                    None => {
                        self.error_help(v.span, "`_parallel` map needs `limit:`", HELP);
                        None
                    }
                }
            }
            _ => {
                self.error_help(
                    v.span,
                    format!("`_parallel` must be `true`, `false`, `${{...}}` or `{{limit: N}}`, found {}", found(v)),
                    HELP,
                );
                None
            }
        }
    }

    fn schedule(&mut self, v: &Value) -> Option<ScheduleDef> {
        let Some(m) = v.as_map() else {
            self.error_help(
                v.span,
                format!("`schedule` must be a mapping, found {}", found(v)),
                "write `schedule:` and indent one kind under it, e.g. `  daily>: 07:00:00`",
            );
            return None;
        };
        let mut kind: Option<(&Key, &Value)> = None;
        let mut options = Map::default();
        let mut ok = true;
        for (key, value) in &m.entries {
            let n = key.name.as_str();
            if n.ends_with('>') {
                if !SCHEDULE_KINDS.contains(&n) {
                    ok = false;
                    let d = Diagnostic::error(key.span, format!("unknown schedule kind `{n}`"));
                    let hint = did_you_mean(n, SCHEDULE_KINDS.iter().copied());
                    self.diags.push(match hint {
                        Some(h) => d.with_help(format!("did you mean `{h}`?")),
                        None => d.with_help("use one of `cron>`, `daily>`, `hourly>`, `weekly>`, `monthly>` or `minutes_interval>`"),
                    });
                    continue;
                }
                if let Some((first, _)) = kind {
                    ok = false;
                    self.error_help(
                        key.span,
                        format!(
                            "`schedule` has more than one kind: `{}` and `{n}`",
                            first.name
                        ),
                        "a workflow has one schedule: keep one kind",
                    );
                    continue;
                }
                kind = Some((key, value));
                continue;
            }
            let valid = match n {
                "start" | "end" => self.date(n, value),
                "skip_on_overtime" => {
                    let b = matches!(value.kind, ValueKind::Bool(_));
                    if !b {
                        self.error(
                            value.span,
                            format!(
                                "`skip_on_overtime` must be `true` or `false`, found {}",
                                found(value)
                            ),
                        );
                    }
                    b
                }
                "skip_delayed_by" => self.duration("skip_delayed_by", value).is_some(),
                // spade's extension: what happens to slots missed while nothing served them.
                "catchup" => {
                    let ok = literal_str(value)
                        .is_some_and(|t| crate::catchup::Catchup::parse(t).is_some());
                    if !ok {
                        self.error_help(
                            value.span,
                            format!("`catchup` must be `all`, `latest` or `none`, found {}", found(value)),
                            "`all` runs every slot missed during downtime (Digdag's way), `latest` only the newest, `none` none",
                        );
                    }
                    ok
                }
                _ => {
                    let d = Diagnostic::error(key.span, format!("unknown schedule option `{n}`"));
                    self.diags.push(hint_or(
                        d,
                        did_you_mean(n, SCHEDULE_OPTIONS.iter().copied()),
                        "`schedule` accepts one kind plus `start`, `end`, `skip_on_overtime`, `skip_delayed_by` and `catchup`",
                    ));
                    false
                }
            };
            ok &= valid;
            options.entries.push((key.clone(), value.clone()));
        }
        let Some((key, value)) = kind else {
            if ok {
                self.error_help(
                    v.span,
                    "`schedule` needs a kind",
                    "add one of `cron>`, `daily>`, `hourly>`, `weekly>`, `monthly>` or `minutes_interval>`",
                );
            }
            return None;
        };
        let text = match &value.kind {
            ValueKind::Int(i) => Some(i.to_string()),
            _ => literal_str(value).map(str::to_string),
        };
        let Some(text) = text else {
            self.error(
                value.span,
                format!("`{}` must be a literal value (schedules are never `${{...}}`-evaluated), found {}", key.name, found(value)),
            );
            return None;
        };
        // `schedule::Rule::parse` is the one judge of a schedule's shape (the same code fires
        // it); this only adds the example users need to fix it.
        let expected = match key.name.as_str() {
            "daily>" => "`HH:MM:SS`, e.g. `07:00:00`",
            "hourly>" => "`MM:SS`, e.g. `30:00`",
            "weekly>" => "`Day,HH:MM:SS`, e.g. `Mon,09:00:00`",
            "monthly>" => "`D,HH:MM:SS`, e.g. `1,09:00:00`",
            "minutes_interval>" | "seconds_interval>" => "a whole number of at least 1, e.g. `15`",
            _ => "five cron fields, e.g. `'0 * * * *'`",
        };
        let shape = if key.name == "seconds_interval>" {
            text.trim()
                .parse::<u32>()
                .ok()
                .filter(|&n| n >= 1)
                .map(|_| ())
                .ok_or(expected)
        } else {
            crate::schedule::Rule::parse(&key.name, &text)
                .map(|_| ())
                .map_err(|_| expected)
        };
        if let Err(expected) = shape {
            self.error_help(
                value.span,
                format!("bad `{}` value `{text}`", key.name),
                format!("expected {expected}"),
            );
            return None;
        }
        if key.name == "seconds_interval>" {
            self.diags.push(
                Diagnostic::warning(key.span, "`seconds_interval>` is not supported by spade yet")
                    .with_help("the workflow loads, but this schedule never fires; use `cron>` or `minutes_interval>`"),
            );
        }
        ok.then(|| ScheduleDef {
            kind: key.name.clone(),
            value: text,
            options,
            span: v.span,
        })
    }

    fn date(&mut self, what: &str, v: &Value) -> bool {
        let ok = literal_str(v).is_some_and(|s| {
            s.len() == 10
                && s.bytes().enumerate().all(|(i, b)| {
                    if i == 4 || i == 7 {
                        b == b'-'
                    } else {
                        b.is_ascii_digit()
                    }
                })
                && s.parse::<jiff::civil::Date>().is_ok()
        });
        if !ok {
            self.error_help(
                v.span,
                format!("`{what}` must be a date `YYYY-MM-DD`, found {}", found(v)),
                "write a date such as `2024-01-31`",
            );
        }
        ok
    }
}

/// A short valid use of an operator, for help lines.
fn example_call(name: &str) -> &'static str {
    match name {
        "sh" => "sh>: ./run.sh",
        "echo" => "echo>: hello",
        "fail" => "fail>: something went wrong",
        "wait" => "wait>: 10s",
        "for_each" => "for_each>: {fruit: [apple, orange]}",
        "for_range" => "for_range>: {from: 0, to: 10, step: 2}",
        "loop" => "loop>: 3",
        "if" => "if>: ${flag}",
        "call" => "call>: other.dig",
        "require" => "require>: other_workflow",
        _ => "op>: argument",
    }
}

fn with_top_hint(n: &str) -> String {
    match did_you_mean(n, TOP_KEYS.iter().copied()) {
        Some(h) if h != n => format!("did you mean `{h}`?"),
        _ => format!("put `{n}` on a task inside the workflow, or remove it"),
    }
}

/// Every zone name of the bundled database, listed once: listing is slow and only needed for
/// "did you mean" hints.
fn zone_names() -> &'static [String] {
    static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        jiff::tz::db()
            .available()
            .map(|n| n.as_str().to_string())
            .collect()
    })
}

/// Java's `ZoneId.of` also takes fixed offsets: `Z`, `+09:00`, `-0530`, `UTC+9`, `GMT-03:00`.
fn is_fixed_offset(name: &str) -> bool {
    let rest = ["UTC", "GMT", "UT"]
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .unwrap_or(name);
    if rest == "Z" {
        return true;
    }
    let Some(body) = rest.strip_prefix(['+', '-']) else {
        return false;
    };
    if !body.bytes().all(|b| b.is_ascii_digit() || b == b':') {
        return false;
    }
    let digits: String = body.chars().filter(|&c| c != ':').collect();
    let hours = match digits.len() {
        1 => digits.as_str(),
        2 | 4 | 6 => digits.get(..2).unwrap_or(""),
        _ => return false,
    };
    hours.parse::<u32>().is_ok_and(|h| h <= 18)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::FileId;
    use crate::dig::syntax::parse_file;

    /// Lowers `input` as workflow `wf`; returns the workflow and `(text at span, message)`
    /// of every diagnostic.
    fn lower(input: &str) -> (Option<Workflow>, Vec<(String, String)>) {
        let root = parse_file(FileId(0), input)
            .unwrap_or_else(|d| panic!("syntax error: {}", d.message))
            .expect("a document");
        let mut l = Lower::default();
        let w = l.workflow("wf", root);
        crate::diag::sort(&mut l.diags);
        let diags = l
            .diags
            .iter()
            .map(|d| (input[d.span.range()].to_string(), d.message.clone()))
            .collect();
        (w, diags)
    }

    /// One line per task: indentation, name, then `op>` or nothing for a group.
    fn tree(t: &TaskDef, depth: usize, out: &mut String) {
        out.push_str(&"  ".repeat(depth));
        out.push_str(&t.name);
        if let TaskKind::Operator(op) = &t.kind {
            out.push_str(&format!(" {}>", op.name));
        }
        out.push('\n');
        if let TaskKind::Group(children) = &t.kind {
            for c in children {
                tree(c, depth + 1, out);
            }
        }
        for special in [&t.error, &t.check].into_iter().flatten() {
            tree(special, depth + 1, out);
        }
    }

    fn check(input: &str, expect: &str) {
        let (w, diags) = lower(input);
        assert!(diags.is_empty(), "{input:?}: {diags:?}");
        let mut out = String::new();
        tree(&w.expect("a workflow").root, 0, &mut out);
        assert_eq!(out, expect, "{input:?}");
    }

    /// Every diagnostic as `(offending text, message fragment)`, in order.
    fn check_diags(input: &str, expect: &[(&str, &str)]) {
        let (_, diags) = lower(input);
        assert_eq!(diags.len(), expect.len(), "{input:?}: {diags:?}");
        for ((text, message), (want_text, want_msg)) in diags.iter().zip(expect) {
            assert_eq!(text, want_text, "{input:?}: {message}");
            assert!(message.contains(want_msg), "{input:?}: {message}");
        }
    }

    #[test]
    fn task_tree_keeps_order_and_kinds() {
        check(
            "+z:\n  sh>: a\n+a:\n  +inner:\n    _type: echo\n    _command: hi\n  _error:\n    fail>: x\n",
            "+wf\n  +z sh>\n  +a\n    +inner echo>\n    ^error fail>\n",
        );
        // A sequence of mappings is concatenated (Digdag's `getNestedOrderedOrGetEmpty`).
        check("+a:\n  - sh>: x\n  - _retry: 2\n", "+wf\n  +a sh>\n");
        check("+a:\n", "+wf\n  +a\n");
    }

    #[test]
    fn operator_params_directives_and_blocks() {
        let input = "+a:\n  for_each>: {x: [1, 2]}\n  _parallel: {limit: 2}\n  _retry: {limit: 3, interval: 1m, interval_type: Exponential, max_interval: 2h}\n  _env: {K: v}\n  path: /tmp\n  _do:\n    echo>: ${x}\n  _timeout: 1h30m\n";
        let (w, diags) = lower(input);
        assert!(diags.is_empty(), "{diags:?}");
        let w = w.unwrap();
        let TaskKind::Group(children) = &w.root.kind else {
            panic!("root is a group")
        };
        let a = &children[0];
        let TaskKind::Operator(op) = &a.kind else {
            panic!("an operator")
        };
        assert_eq!(op.name, "for_each");
        assert!(op.supported);
        assert!(op.do_block.as_ref().and_then(Value::as_map).is_some());
        let params: Vec<&str> = a
            .params
            .entries
            .iter()
            .map(|(k, _)| k.name.as_str())
            .collect();
        assert_eq!(params, ["_env", "path"]);
        assert_eq!(a.parallel, Some(ParallelDef::Limit(2)));
        assert_eq!(
            a.retry,
            Some(RetryDef::Policy(RetryPolicy {
                limit: 3,
                interval: Duration::from_secs(60),
                interval_type: IntervalType::Exponential,
                max_interval: Some(Duration::from_secs(7200)),
                deadline: None,
            }))
        );
        assert_eq!(a.timeout, Some(Duration::from_secs(5400)));
    }

    #[test]
    fn retry_and_parallel_forms() {
        let first = |input: &str| {
            let (w, d) = lower(input);
            assert!(d.is_empty(), "{d:?}");
            let TaskKind::Group(c) = w.unwrap().root.kind else {
                panic!()
            };
            c.into_iter().next().unwrap()
        };
        let t = first("+a:\n  sh>: x\n  _retry: \"2\"\n");
        assert!(matches!(
            t.retry,
            Some(RetryDef::Policy(RetryPolicy { limit: 2, .. }))
        ));
        let t = first("+a:\n  sh>: x\n  _retry: ${n}\n");
        assert!(matches!(t.retry, Some(RetryDef::Expr(_))));
        let t = first("+a:\n  _parallel: ${p}\n  +b:\n    sh>: x\n");
        assert!(matches!(t.parallel, Some(ParallelDef::Expr(_))));
        let t = first("+a:\n  _parallel: false\n  +b:\n    sh>: x\n");
        assert_eq!(t.parallel, Some(ParallelDef::All(false)));
    }

    #[test]
    fn disable_drops_the_body() {
        check(
            "+a:\n  _disable: true\n  sh>: x\n  +b:\n    shh>: y\n",
            "+wf\n  +a\n",
        );
    }

    /// `levels` groups nested one in another, the innermost an `echo>`; each may hold a `_do:`.
    fn nested_tasks(levels: usize) -> String {
        let mut text: String = (0..levels)
            .map(|i| format!("{}+t{}:\n", "  ".repeat(i), i + 1))
            .collect();
        text.push_str(&format!("{}echo>: hi\n", "  ".repeat(levels)));
        text
    }

    #[test]
    fn tasks_nest_up_to_max_task_depth_and_no_deeper() {
        // Lowering recurses three frames a task: a deeper file is an error at the first task
        // past the limit, never a stack overflow.
        let (w, diags) = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| lower(&nested_tasks(MAX_TASK_DEPTH)))
            .unwrap()
            .join()
            .unwrap();
        assert!(w.is_some() && diags.is_empty(), "{diags:?}");
        let too_deep = format!("+t{}", MAX_TASK_DEPTH + 1);
        check_diags(
            &nested_tasks(MAX_TASK_DEPTH + 40),
            &[(
                &too_deep,
                "tasks nested too deeply: `+t129` would be level 129",
            )],
        );
        // A `_do:` body is a level below its operator.
        let mut text = nested_tasks(MAX_TASK_DEPTH).replace("echo>: hi", "if>: true");
        let indent = "  ".repeat(MAX_TASK_DEPTH);
        text.push_str(&format!("{indent}_do:\n{indent}  echo>: x\n"));
        check_diags(&text, &[("echo>: x", "`^sub` would be level 129")]);
    }

    #[test]
    fn semantic_errors_are_all_reported_in_order() {
        check_diags(
            "timezone: Nowhere/City\nfoo: 1\n+a:\n  sh>: x\n  echo>: y\n+b:\n  params: 1\n  +c:\n    td>: q\n",
            &[
                ("Nowhere/City", "unknown timezone"),
                ("foo", "unknown top-level key `foo`"),
                ("echo>", "more than one operator"),
                ("params", "invalid key `params`"),
                ("td>", "not supported by spade yet"),
            ],
        );
        check_diags("+a:\n  sh>:\n", &[("", "needs a value")]);
        // An executable may supply an operator spade lacks: a file with no other error leaves
        // the question to `operators::external::diagnose`, which knows the project.
        check_diags("+a:\n  slack>: hi\n+b:\n  td>: q\n", &[]);
        check_diags(
            "+a:\n  slack>: hi\n  _retry: lots\n",
            &[
                ("slack>", "unknown operator `slack>`"),
                ("lots", "`_retry` must be"),
            ],
        );
        check_diags("+a:\n  nop>:\n", &[]);
        check_diags("+a:\n  _type: ${t}\n", &[("${t}", "computed at run time")]);
        check_diags(
            "schedule:\n  cron>: '0 0 * * 7'\n  start: 2024-02-30\n+a:\n  nop>:\n",
            &[("2024-02-30", "must be a date")],
        );
        check_diags("timezone: +09:00\n+a:\n  nop>:\n", &[]);
        check_diags(
            "+g:\n  _parallel: true\n  +a:\n    _background: true\n    nop>:\n",
            &[("+a", "`_background` on `+a`")],
        );
    }
}
