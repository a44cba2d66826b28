//! Value tree -> [`Workflow`]: keys, operators, directives and schedule; collects every error.

use crate::diag::{Diagnostic, Span};
use crate::dig::suggest::did_you_mean;
use crate::dig::value::{Key, Map, Value, ValueKind};
use crate::dig::workflow::{
    IntervalType, OperatorCall, ParallelDef, RetryDef, RetryPolicy, ScheduleDef, TaskDef, TaskKind,
    Workflow,
};
use crate::operators::catalog;
use std::borrow::Cow;
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

/// Directives of operator tasks that are not local params.
const OPERATOR_DIRECTIVES: &[&str] = &[
    "_export",
    "_retry",
    "_parallel",
    "_background",
    "_after",
    "_error",
    "_check",
    "_do",
    "_else_do",
    "_type",
    "_command",
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

const SCHEDULE_OPTIONS: &[&str] = &["start", "end", "skip_on_overtime", "skip_delayed_by"];

const RETRY_KEYS: &[&str] = &[
    "limit",
    "interval",
    "interval_type",
    "max_interval",
    "deadline",
];

/// Collects diagnostics while lowering.
#[derive(Default)]
pub(crate) struct Lower {
    pub(crate) diags: Vec<Diagnostic>,
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
    pub(crate) fn workflow(&mut self, name: &str, root: &Value) -> Option<Workflow> {
        let Some(map) = root.as_map() else {
            self.error_help(
                root.span,
                format!(
                    "a workflow must be a mapping of keys, found {}",
                    kind_name(root)
                ),
                "start with tasks such as `+hello:` and indent their operators under them",
            );
            return None;
        };
        let mut timezone = "UTC".to_string();
        let mut schedule = None;
        let mut sla = None;
        let mut body = Map::default();
        for (key, value) in &map.entries {
            match key.name.as_str() {
                "timezone" => {
                    if let Some(tz) = self.timezone(value) {
                        timezone = tz;
                    }
                }
                "schedule" => schedule = self.schedule(value),
                "sla" => sla = Some(value.clone()),
                "_export" | "_error" | "_check" | "_retry" | "_parallel" => {
                    body.entries.push((key.clone(), value.clone()));
                }
                n if n.starts_with('+') => body.entries.push((key.clone(), value.clone())),
                n => self.unknown_top_key(key, n),
            }
        }
        let root_name = format!("+{name}");
        let body_value = Value {
            kind: ValueKind::Map(body),
            span: root.span,
        };
        let root_task = self.task(&root_name, root.span, &body_value);
        Some(Workflow {
            name: name.to_string(),
            timezone,
            schedule,
            sla,
            root: root_task,
            span: root.span,
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
        let db = jiff::tz::db();
        let names: Vec<String> = db.available().map(|n| n.as_str().to_string()).collect();
        let hint = did_you_mean(name, names.iter().map(String::as_str));
        let help = match hint {
            Some(h) => format!("did you mean `{h}`?"),
            None => "use an IANA name such as `Asia/Tokyo` or `UTC`".to_string(),
        };
        self.error_help(v.span, format!("unknown timezone `{name}`"), help);
        None
    }

    /// One task: a group of `+children`, or an operator call.
    pub(crate) fn task(&mut self, name: &str, span: Span, v: &Value) -> TaskDef {
        let body: Cow<'_, Map> = match &v.kind {
            ValueKind::Map(m) => Cow::Borrowed(m),
            ValueKind::Null => Cow::Owned(Map::default()),
            // Digdag concatenates a sequence of mappings into one (spec 1.1 point 5).
            ValueKind::Seq(items) if items.iter().all(|i| i.as_map().is_some()) => {
                let mut m = Map::default();
                for item in items {
                    if let Some(im) = item.as_map() {
                        m.entries.extend(im.entries.iter().cloned());
                    }
                }
                Cow::Owned(m)
            }
            _ => {
                self.error_help(
                    v.span,
                    format!("task `{name}` must be a mapping, found {}", found(v)),
                    format!("indent its operator under the task name, e.g. `{name}:` then `  echo>: hello` on the next line"),
                );
                Cow::Owned(Map::default())
            }
        };
        let mut task = TaskDef {
            name: name.to_string(),
            kind: TaskKind::Group(Vec::new()),
            export: Map::default(),
            params: Map::default(),
            retry: None,
            parallel: None,
            background: false,
            after: Vec::new(),
            error: None,
            check: None,
            timeout: None,
            disable: false,
            span,
        };
        // `_disable: true` turns the task into an empty group and drops the rest (spec 1.6).
        if let Some(d) = body.get("_disable") {
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
        let ops: Vec<&Key> = body
            .entries
            .iter()
            .map(|(k, _)| k)
            .filter(|k| k.name.ends_with('>'))
            .collect();
        let type_entry = body.get_entry("_type");
        let children: Vec<&(Key, Value)> = body
            .entries
            .iter()
            .filter(|(k, _)| k.name.starts_with('+'))
            .collect();
        for (key, value) in &body.entries {
            self.directive(&mut task, key, value);
        }
        if ops.is_empty() && type_entry.is_none() {
            self.group(&mut task, &body, &children);
        } else {
            self.operator(&mut task, &body, &ops, type_entry, &children);
        }
        task
    }

    fn directive(&mut self, task: &mut TaskDef, key: &Key, v: &Value) {
        match key.name.as_str() {
            "_export" => match &v.kind {
                ValueKind::Map(m) => task.export = m.clone(),
                ValueKind::Null => {}
                _ => self.error_help(
                    v.span,
                    format!("`_export` must be a mapping, found {}", found(v)),
                    "write `_export:` and indent `name: value` lines under it",
                ),
            },
            "_retry" => task.retry = self.retry(v),
            "_parallel" => task.parallel = self.parallel(v),
            "_background" => match v.kind {
                ValueKind::Bool(b) => task.background = b,
                _ => self.error(
                    v.span,
                    format!(
                        "`_background` must be `true` or `false`, found {}",
                        found(v)
                    ),
                ),
            },
            "_after" => task.after = self.after(v),
            "_error" => {
                task.error = Some(Box::new(self.special("^error", "_error", v)));
            }
            "_check" => {
                task.check = Some(Box::new(self.special("^check", "_check", v)));
            }
            "_timeout" => task.timeout = self.duration("_timeout", v),
            _ => {}
        }
    }

    fn special(&mut self, name: &str, key: &str, v: &Value) -> TaskDef {
        if v.as_map().is_none() {
            self.error_help(
                v.span,
                format!("`{key}` must be a mapping, found {}", found(v)),
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

    fn group(&mut self, task: &mut TaskDef, body: &Map, children: &[&(Key, Value)]) {
        for (key, _) in &body.entries {
            let n = key.name.as_str();
            if n.starts_with('+') || GROUP_KEYS.contains(&n) {
                continue;
            }
            if n == "!include" {
                self.error(key.span, "`!include` is not resolved here");
                continue;
            }
            let help = match did_you_mean(n, GROUP_KEYS.iter().copied()) {
                Some(h) if n.starts_with('_') => format!("did you mean `{h}`?"),
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
            self.check_task_name(key);
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

    fn operator(
        &mut self,
        task: &mut TaskDef,
        body: &Map,
        ops: &[&Key],
        type_entry: Option<&(Key, Value)>,
        children: &[&(Key, Value)],
    ) {
        if let Some((child, _)) = children.first() {
            let op = ops
                .first()
                .map_or("_type".to_string(), |k| format!("`{}`", k.name));
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
        let mut operator_keys: Vec<&Key> = ops.to_vec();
        if let Some((k, _)) = type_entry {
            operator_keys.push(k);
        }
        operator_keys.sort_by_key(|k| k.span.start);
        if let [first, second, ..] = operator_keys.as_slice() {
            self.error_help(
                second.span,
                format!(
                    "task `{}` has more than one operator: `{}` and `{}`",
                    task.name, first.name, second.name
                ),
                "a task runs one operator: split it into two tasks",
            );
        }
        let (name, name_span, command) = match ops.first() {
            Some(k) => (
                k.name.trim_end_matches('>').to_string(),
                k.span,
                body.get(&k.name).cloned(),
            ),
            None => match type_entry {
                Some((k, v)) => {
                    let name = match (&v.kind, literal_str(v)) {
                        (_, Some(s)) => s.to_string(),
                        // Digdag evaluates `_type: ${...}` when the task runs, so the
                        // operator is unknown until then.
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
                    };
                    (name, k.span.to(v.span), body.get("_command").cloned())
                }
                None => (String::new(), task.span, None),
            },
        };
        let command = command.unwrap_or(Value {
            kind: ValueKind::Null,
            span: name_span,
        });
        let computed = name.contains("${");
        let supported = match catalog::lookup(&name) {
            None if computed => false,
            Some(info) if info.supported => true,
            Some(_) => {
                self.diags.push(
                    Diagnostic::warning(
                        name_span,
                        format!(
                            "operator `{name}>` of task `{}` is not supported by spade yet",
                            task.name
                        ),
                    )
                    .with_help("`spade check` accepts it, but running this task fails"),
                );
                false
            }
            None if name.is_empty() => false,
            None => {
                let hint = did_you_mean(&name, catalog::names());
                let help = match hint {
                    Some(h) => format!("did you mean `{h}>`?"),
                    None => "spade runs `sh>`, `echo>`, `fail>`, `wait>`, `nop>`, `for_each>`, `for_range>`, `loop>`, `if>`, `call>` and `require>`".to_string(),
                };
                self.error_help(name_span, format!("unknown operator `{name}>`"), help);
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
                    example_call(&name)
                ),
            );
        }
        for (key, value) in &body.entries {
            let n = key.name.as_str();
            if n.starts_with('+') || n.ends_with('>') || OPERATOR_DIRECTIVES.contains(&n) {
                continue;
            }
            task.params.entries.push((key.clone(), value.clone()));
        }
        task.kind = TaskKind::Operator(Box::new(OperatorCall {
            name,
            command,
            supported,
            do_block: body.get("_do").cloned(),
            else_do_block: body.get("_else_do").cloned(),
            span: name_span,
        }));
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
            ValueKind::Str(t) if !t.has_expr() => parse_duration(&t.raw),
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
                _ => {
                    let d = Diagnostic::error(key.span, format!("unknown schedule option `{n}`"));
                    self.diags.push(hint_or(
                        d,
                        did_you_mean(n, SCHEDULE_OPTIONS.iter().copied()),
                        "`schedule` accepts one kind plus `start`, `end`, `skip_on_overtime` and `skip_delayed_by`",
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
        let shape = match key.name.as_str() {
            "daily>" => check_clock(&text, 3)
                .then_some(())
                .ok_or("`HH:MM:SS`, e.g. `07:00:00`"),
            "hourly>" => check_clock(&text, 2)
                .then_some(())
                .ok_or("`MM:SS`, e.g. `30:00`"),
            "weekly>" => check_weekly(&text)
                .then_some(())
                .ok_or("`Day,HH:MM:SS`, e.g. `Mon,09:00:00`"),
            "monthly>" => check_monthly(&text)
                .then_some(())
                .ok_or("`D,HH:MM:SS`, e.g. `1,09:00:00`"),
            "minutes_interval>" | "seconds_interval>" => text
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|&n| n >= 1)
                .map(|_| ())
                .ok_or("a whole number of at least 1, e.g. `15`"),
            _ => check_cron(&text).ok_or("five cron fields, e.g. `'0 * * * *'`"),
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

/// `30`, `30s`, `5m`, `2h`, `1d`, `1h30m`, `1d 2h` (case-insensitive, like Digdag's
/// `Durations`).
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let s = text.trim();
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok().map(Duration::from_secs);
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = rest[digits..].trim_start();
        let unit = rest.chars().next()?;
        let factor = match unit.to_ascii_lowercase() {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(factor)?)?;
        rest = rest[unit.len_utf8()..].trim_start();
    }
    Some(Duration::from_secs(total))
}

/// `parts` colon-separated two-digit fields: `HH:MM:SS` (hours 0-23) or `MM:SS`.
fn check_clock(text: &str, parts: usize) -> bool {
    let fields: Vec<&str> = text.split(':').collect();
    fields.len() == parts
        && fields.iter().enumerate().all(|(i, f)| {
            let max = if parts == 3 && i == 0 { 23 } else { 59 };
            (1..=2).contains(&f.len())
                && f.bytes().all(|b| b.is_ascii_digit())
                && f.parse::<u32>().is_ok_and(|n| n <= max)
        })
}

fn check_weekly(text: &str) -> bool {
    const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    const FULL: &[&str] = &[
        "sunday",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
    ];
    let Some((day, time)) = text.split_once(',') else {
        return false;
    };
    let day = day.trim().to_ascii_lowercase();
    let day_ok = DAYS.contains(&day.as_str())
        || FULL.contains(&day.as_str())
        || day.parse::<u32>().is_ok_and(|d| d <= 6);
    day_ok && check_clock(time.trim(), 3)
}

fn check_monthly(text: &str) -> bool {
    let Some((day, time)) = text.split_once(',') else {
        return false;
    };
    day.trim()
        .parse::<u32>()
        .is_ok_and(|d| (1..=31).contains(&d))
        && check_clock(time.trim(), 3)
}

/// Validates a 5-field cron4j expression with the `cron` crate, which wants a seconds field
/// first and numbers days of the week 1-7 from Sunday where cron4j uses 0-6.
fn check_cron(text: &str) -> Option<()> {
    use std::str::FromStr as _;
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [minute, hour, dom, month, dow] = fields.as_slice() else {
        return None;
    };
    let dow = shift_days(dow)?;
    let expr = format!("0 {minute} {hour} {dom} {month} {dow}");
    cron::Schedule::from_str(&expr).ok().map(|_| ())
}

/// Adds one to every number of a day-of-week field (`0-6` -> `1-7`), leaving names alone.
fn shift_days(field: &str) -> Option<String> {
    let mut out = String::new();
    let mut digits = String::new();
    let mut after_slash = false;
    for c in field.chars().chain(std::iter::once('\0')) {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        if !digits.is_empty() {
            let n: u32 = digits.parse().ok()?;
            // A step (`*/2`) is a count, not a day.
            let shifted = if after_slash { n } else { (n % 7) + 1 };
            out.push_str(&shifted.to_string());
            digits.clear();
        }
        after_slash = c == '/';
        if c != '\0' {
            out.push(c);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let check = |s: &str, secs: Option<u64>| {
            assert_eq!(parse_duration(s), secs.map(Duration::from_secs), "{s}");
        };
        check("30", Some(30));
        check("30s", Some(30));
        check("5m", Some(300));
        check("2h", Some(7200));
        check("1d", Some(86400));
        check("1h30m", Some(5400));
        check("1d 2h", Some(93600));
        check("1H", Some(3600));
        check("", None);
        check("abc", None);
        check("5x", None);
        check("m", None);
        check("-5", None);
    }

    #[test]
    fn schedule_shapes() {
        assert!(check_clock("07:00:00", 3));
        assert!(!check_clock("24:00:00", 3));
        assert!(!check_clock("10:11:12", 2));
        assert!(check_clock("30:00", 2));
        assert!(check_weekly("Sun,09:00:00"));
        assert!(check_weekly("3,09:00:00"));
        assert!(!check_weekly("Funday,09:00:00"));
        assert!(check_monthly("1,09:00:00"));
        assert!(!check_monthly("32,09:00:00"));
        assert!(check_cron("*/5 * * * *").is_some());
        assert!(check_cron("0 0 * * 0").is_some());
        assert!(check_cron("0 0 * * 1-5").is_some());
        assert!(check_cron("0 0 * *").is_none());
        assert!(check_cron("61 0 * * *").is_none());
    }
}
