//! Task definitions in the store: each node of a definition tree is one `task_defs` row,
//! written once and never changed.
//!
//! A node holds its own fields only; its children and its `_error`/`_check` handlers are the ids
//! of other nodes. A row is then as large as its node and not as its subtree, so reading a
//! group or an ancestor costs the same in a group of 4,000 as in a group of 10, and a tree of
//! depth 100 is stored once and not once per level. The node's `_export:` has its own column
//! before the body: descendants read it on every scope build without touching the body.
//! Values are encoded flat (pre-order, containers carry their length), so the JSON nests a
//! constant few levels however deep the tree or a value is; floats keep their bits, so
//! infinities and NaN come back exactly. Task rows point at their node (`tasks.def_id`), a
//! revision at its root (`revisions.root_def_id`): a group retry, a `--rerun` or a resume of an
//! unchanged revision stores nothing again. Generated (`^sub`) trees are stored when they are
//! generated, so retries and recovery never need the `.dig` files or an operator re-run.

pub(crate) mod legacy;

use crate::diag::{FileId, Span};
use crate::dig::{
    IntervalType, Key, Map, OperatorCall, ParallelDef, RetryDef, RetryPolicy, TaskDef, TaskKind,
    Template, TemplatePart, Value, ValueKind,
};
use crate::store::{self, sql, Tx};
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The id of a `task_defs` row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DefId(pub i64);

/// One node of a definition tree as the engine reads it: a [`TaskDef`] whose subtree is ids.
#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    pub kind: NodeKind,
    pub export: Map,
    pub params: Map,
    pub retry: Option<RetryDef>,
    pub parallel: Option<ParallelDef>,
    pub background: bool,
    pub after: Vec<String>,
    pub error: Option<DefId>,
    pub check: Option<DefId>,
    pub timeout: Option<Duration>,
    pub disable: bool,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum NodeKind {
    /// Children in definition order.
    Group(Vec<DefId>),
    Operator(Box<OperatorCall>),
}

impl Node {
    pub fn is_group(&self) -> bool {
        matches!(self.kind, NodeKind::Group(_))
    }
}

type SpanJ = (u32, u32, u32);

fn span_j(s: Span) -> SpanJ {
    (s.file.0, s.start, s.end)
}

fn span_from(s: SpanJ) -> Span {
    Span {
        file: FileId(s.0),
        start: s.1,
        end: s.2,
    }
}

#[derive(Serialize, Deserialize)]
enum PartJ {
    L(String),
    E(String, SpanJ),
}

/// One item of a flat value: scalars, container headers (`Q`, `M`) and map keys (`K`).
#[derive(Serialize, Deserialize)]
enum ItemJ {
    N(SpanJ),
    B(bool, SpanJ),
    I(i64, SpanJ),
    /// The float's bits: exact for every value, infinities and NaN included.
    F(u64, SpanJ),
    /// Raw text and template parts; `None` stands for the one literal part equal to the text.
    S(String, Option<Vec<PartJ>>, SpanJ),
    /// A sequence: this many values follow.
    Q(u32, SpanJ),
    /// A mapping: this many entries follow, each a `K` and its value.
    M(u32, SpanJ),
    K(String, SpanJ),
}

fn len_u32(n: usize) -> u32 {
    // Containers come from files of bounded size: more than 4 billion items cannot be parsed.
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn encode_value(v: &Value, out: &mut Vec<ItemJ>) {
    let span = span_j(v.span);
    match &v.kind {
        ValueKind::Null => out.push(ItemJ::N(span)),
        ValueKind::Bool(b) => out.push(ItemJ::B(*b, span)),
        ValueKind::Int(i) => out.push(ItemJ::I(*i, span)),
        ValueKind::Float(f) => out.push(ItemJ::F(f.to_bits(), span)),
        ValueKind::Str(t) => {
            let single = matches!(t.parts.as_slice(), [TemplatePart::Literal(l)] if *l == t.raw);
            let parts = (!single).then(|| {
                t.parts
                    .iter()
                    .map(|p| match p {
                        TemplatePart::Literal(s) => PartJ::L(s.clone()),
                        TemplatePart::Expr { source, span } => {
                            PartJ::E(source.clone(), span_j(*span))
                        }
                    })
                    .collect()
            });
            out.push(ItemJ::S(t.raw.clone(), parts, span));
        }
        ValueKind::Seq(items) => {
            out.push(ItemJ::Q(len_u32(items.len()), span));
            for item in items {
                encode_value(item, out);
            }
        }
        ValueKind::Map(m) => encode_map(m, span, out),
    }
}

fn encode_map(m: &Map, span: SpanJ, out: &mut Vec<ItemJ>) {
    out.push(ItemJ::M(len_u32(m.entries.len()), span));
    for (k, v) in &m.entries {
        out.push(ItemJ::K(k.name.clone(), span_j(k.span)));
        encode_value(v, out);
    }
}

fn flat_map(m: &Map) -> Vec<ItemJ> {
    let mut out = Vec::new();
    encode_map(m, span_j(Span::NONE), &mut out);
    out
}

fn flat_value(v: &Value) -> Vec<ItemJ> {
    let mut out = Vec::new();
    encode_value(v, &mut out);
    out
}

/// A container being decoded.
enum Open {
    Seq {
        span: Span,
        items: Vec<Value>,
        left: u32,
    },
    Map {
        span: Span,
        entries: Vec<(Key, Value)>,
        key: Option<Key>,
        left: u32,
    },
}

/// Adds a finished value to the innermost open container; returns it when there is none.
fn attach(stack: &mut [Open], value: Value) -> Result<Option<Value>, String> {
    match stack.last_mut() {
        None => Ok(Some(value)),
        Some(Open::Seq { items, left, .. }) => {
            items.push(value);
            *left = left.saturating_sub(1);
            Ok(None)
        }
        Some(Open::Map {
            entries, key, left, ..
        }) => {
            let key = key.take().ok_or("a map value without its key")?;
            entries.push((key, value));
            *left = left.saturating_sub(1);
            Ok(None)
        }
    }
}

fn is_complete(open: &Open) -> bool {
    match open {
        Open::Seq { left, .. } => *left == 0,
        Open::Map { left, key, .. } => *left == 0 && key.is_none(),
    }
}

/// Decodes one flat value without recursion (values nest as deep as their file allows).
fn decode_value(items: Vec<ItemJ>) -> Result<Value, String> {
    let mut stack: Vec<Open> = Vec::new();
    let mut items = items.into_iter();
    loop {
        // Close every container whose items are all there.
        while stack.last().is_some_and(is_complete) {
            let value = match stack.pop() {
                Some(Open::Seq { span, items, .. }) => Value {
                    kind: ValueKind::Seq(items),
                    span,
                },
                Some(Open::Map { span, entries, .. }) => Value {
                    kind: ValueKind::Map(Map { entries }),
                    span,
                },
                None => break,
            };
            if let Some(done) = attach(&mut stack, value)? {
                return finish(done, items);
            }
        }
        let item = items.next().ok_or("a value ends early")?;
        let (kind, span) = match item {
            ItemJ::K(name, span) => {
                match stack.last_mut() {
                    Some(Open::Map {
                        key: key @ None, ..
                    }) => {
                        *key = Some(Key {
                            name,
                            span: span_from(span),
                        });
                    }
                    _ => return Err("a map key outside a map".into()),
                }
                continue;
            }
            ItemJ::Q(n, span) => {
                stack.push(Open::Seq {
                    span: span_from(span),
                    items: Vec::with_capacity(n.min(1024) as usize),
                    left: n,
                });
                continue;
            }
            ItemJ::M(n, span) => {
                stack.push(Open::Map {
                    span: span_from(span),
                    entries: Vec::with_capacity(n.min(1024) as usize),
                    key: None,
                    left: n,
                });
                continue;
            }
            ItemJ::N(span) => (ValueKind::Null, span),
            ItemJ::B(b, span) => (ValueKind::Bool(b), span),
            ItemJ::I(i, span) => (ValueKind::Int(i), span),
            ItemJ::F(bits, span) => (ValueKind::Float(f64::from_bits(bits)), span),
            ItemJ::S(raw, parts, span) => {
                let parts = match parts {
                    None => vec![TemplatePart::Literal(raw.clone())],
                    Some(parts) => parts
                        .into_iter()
                        .map(|p| match p {
                            PartJ::L(s) => TemplatePart::Literal(s),
                            PartJ::E(source, span) => TemplatePart::Expr {
                                source,
                                span: span_from(span),
                            },
                        })
                        .collect(),
                };
                (ValueKind::Str(Template { raw, parts }), span)
            }
        };
        let value = Value {
            kind,
            span: span_from(span),
        };
        if let Some(done) = attach(&mut stack, value)? {
            return finish(done, items);
        }
    }
}

fn finish(value: Value, mut rest: impl Iterator<Item = ItemJ>) -> Result<Value, String> {
    match rest.next() {
        None => Ok(value),
        Some(_) => Err("items after the end of a value".into()),
    }
}

fn decode_map(items: Vec<ItemJ>) -> Result<Map, String> {
    match decode_value(items)?.kind {
        ValueKind::Map(m) => Ok(m),
        _ => Err("expected a map".into()),
    }
}

#[derive(Serialize, Deserialize)]
struct OpJ {
    name: String,
    command: Vec<ItemJ>,
    supported: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    do_block: Option<Vec<ItemJ>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    else_do_block: Option<Vec<ItemJ>>,
    span: SpanJ,
}

#[derive(Serialize, Deserialize)]
struct PolicyJ {
    limit: u32,
    interval_ms: u64,
    exponential: bool,
    max_interval_ms: Option<u64>,
    deadline_ms: Option<u64>,
}

#[derive(Serialize, Deserialize)]
enum RetryJ {
    Policy(PolicyJ),
    Expr(Vec<ItemJ>),
}

#[derive(Serialize, Deserialize)]
enum ParallelJ {
    All(bool),
    Limit(u32),
    Expr(Vec<ItemJ>),
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The `body` column: one node, its subtree as ids.
#[derive(Serialize, Deserialize)]
struct NodeJ {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    children: Option<Vec<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    op: Option<OpJ>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    params: Option<Vec<ItemJ>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry: Option<RetryJ>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parallel: Option<ParallelJ>,
    #[serde(default, skip_serializing_if = "is_false")]
    background: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    after: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    check: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "is_false")]
    disable: bool,
    span: SpanJ,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn corrupt(detail: impl Into<String>) -> store::Error {
    store::Error::Corrupt {
        what: "task definition",
        detail: detail.into(),
    }
}

/// The `export` column of a node: empty text for no `_export:` (most nodes), so readers skip it.
pub(crate) fn export_text(export: &Map) -> String {
    if export.is_empty() {
        return String::new();
    }
    crate::store::rows::to_json(&flat_map(export))
}

/// Reads an `export` column.
pub(crate) fn export_from(text: &str) -> Result<Map, store::Error> {
    if text.is_empty() {
        return Ok(Map::default());
    }
    let items: Vec<ItemJ> = crate::store::rows::parse_json("task export", text)?;
    decode_map(items).map_err(corrupt)
}

fn body_text(
    d: &TaskDef,
    children: Option<Vec<i64>>,
    error: Option<i64>,
    check: Option<i64>,
) -> String {
    let op = match &d.kind {
        TaskKind::Group(_) => None,
        TaskKind::Operator(op) => Some(OpJ {
            name: op.name.clone(),
            command: flat_value(&op.command),
            supported: op.supported,
            do_block: op.do_block.as_ref().map(flat_value),
            else_do_block: op.else_do_block.as_ref().map(flat_value),
            span: span_j(op.span),
        }),
    };
    let node = NodeJ {
        name: d.name.clone(),
        children,
        op,
        params: (!d.params.is_empty()).then(|| flat_map(&d.params)),
        retry: d.retry.as_ref().map(|r| match r {
            RetryDef::Policy(p) => RetryJ::Policy(PolicyJ {
                limit: p.limit,
                interval_ms: ms(p.interval),
                exponential: p.interval_type == IntervalType::Exponential,
                max_interval_ms: p.max_interval.map(ms),
                deadline_ms: p.deadline.map(ms),
            }),
            RetryDef::Expr(v) => RetryJ::Expr(flat_value(v)),
        }),
        parallel: d.parallel.as_ref().map(|p| match p {
            ParallelDef::All(b) => ParallelJ::All(*b),
            ParallelDef::Limit(n) => ParallelJ::Limit(*n),
            ParallelDef::Expr(v) => ParallelJ::Expr(flat_value(v)),
        }),
        background: d.background,
        after: d.after.clone(),
        error,
        check,
        timeout_ms: d.timeout.map(ms),
        disable: d.disable,
        span: span_j(d.span),
    };
    crate::store::rows::to_json(&node)
}

/// Stores a definition tree, one row per node (children and handlers first); returns the root.
pub(crate) fn store(tx: &Tx<'_>, d: &TaskDef) -> Result<DefId, store::Error> {
    let children = match &d.kind {
        TaskKind::Group(children) => Some(
            children
                .iter()
                .map(|c| store(tx, c).map(|id| id.0))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        TaskKind::Operator(_) => None,
    };
    let error = d.error.as_deref().map(|e| store(tx, e)).transpose()?;
    let check = d.check.as_deref().map(|c| store(tx, c)).transpose()?;
    let body = body_text(d, children, error.map(|e| e.0), check.map(|c| c.0));
    tx.prepare_cached("INSERT INTO task_defs (export, body) VALUES (?1, ?2)")
        .and_then(|mut s| s.execute(params![export_text(&d.export), body]))
        .map_err(sql("store_definition"))?;
    Ok(DefId(tx.last_insert_rowid()))
}

/// Reads one node.
pub(crate) fn load(tx: &Tx<'_>, id: DefId) -> Result<Node, store::Error> {
    let (export, body): (String, String) = tx
        .prepare_cached("SELECT export, body FROM task_defs WHERE id = ?1")
        .and_then(|mut s| s.query_row(params![id.0], |r| Ok((r.get(0)?, r.get(1)?))))
        .optional()
        .map_err(sql("load_definition"))?
        .ok_or(store::Error::NotFound {
            what: "task definition",
            id: id.0,
        })?;
    let j: NodeJ = crate::store::rows::parse_json("task definition", &body)?;
    node_from(j, export_from(&export)?).map_err(corrupt)
}

fn node_from(j: NodeJ, export: Map) -> Result<Node, String> {
    let kind = match (j.children, j.op) {
        (Some(c), None) => NodeKind::Group(c.into_iter().map(DefId).collect()),
        (None, Some(op)) => NodeKind::Operator(Box::new(OperatorCall {
            name: op.name,
            command: decode_value(op.command)?,
            supported: op.supported,
            do_block: op.do_block.map(decode_value).transpose()?,
            else_do_block: op.else_do_block.map(decode_value).transpose()?,
            span: span_from(op.span),
        })),
        (Some(_), Some(_)) | (None, None) => {
            return Err(format!(
                "task `{}` must be exactly one of group or operator",
                j.name
            ))
        }
    };
    Ok(Node {
        name: j.name,
        kind,
        export,
        params: j.params.map(decode_map).transpose()?.unwrap_or_default(),
        retry: j
            .retry
            .map(|r| -> Result<RetryDef, String> {
                Ok(match r {
                    RetryJ::Policy(p) => RetryDef::Policy(RetryPolicy {
                        limit: p.limit,
                        interval: Duration::from_millis(p.interval_ms),
                        interval_type: if p.exponential {
                            IntervalType::Exponential
                        } else {
                            IntervalType::Constant
                        },
                        max_interval: p.max_interval_ms.map(Duration::from_millis),
                        deadline: p.deadline_ms.map(Duration::from_millis),
                    }),
                    RetryJ::Expr(v) => RetryDef::Expr(decode_value(v)?),
                })
            })
            .transpose()?,
        parallel: j
            .parallel
            .map(|p| -> Result<ParallelDef, String> {
                Ok(match p {
                    ParallelJ::All(b) => ParallelDef::All(b),
                    ParallelJ::Limit(n) => ParallelDef::Limit(n),
                    ParallelJ::Expr(v) => ParallelDef::Expr(decode_value(v)?),
                })
            })
            .transpose()?,
        background: j.background,
        after: j.after,
        error: j.error.map(DefId),
        check: j.check.map(DefId),
        timeout: j.timeout_ms.map(Duration::from_millis),
        disable: j.disable,
        span: span_from(j.span),
    })
}

/// Reads a whole tree back (generators' `_do:` blocks, tests); recursion as deep as the tree,
/// which lowering bounds by [`crate::dig::MAX_TASK_DEPTH`].
pub(crate) fn load_tree(tx: &Tx<'_>, id: DefId) -> Result<TaskDef, store::Error> {
    let node = load(tx, id)?;
    let kind = match node.kind {
        NodeKind::Group(children) => TaskKind::Group(
            children
                .into_iter()
                .map(|c| load_tree(tx, c))
                .collect::<Result<_, _>>()?,
        ),
        NodeKind::Operator(op) => TaskKind::Operator(op),
    };
    let handler = |h: Option<DefId>| -> Result<Option<Box<TaskDef>>, store::Error> {
        h.map(|h| load_tree(tx, h).map(Box::new)).transpose()
    };
    Ok(TaskDef {
        name: node.name,
        kind,
        export: node.export,
        params: node.params,
        retry: node.retry,
        parallel: node.parallel,
        background: node.background,
        after: node.after,
        error: handler(node.error)?,
        check: handler(node.check)?,
        timeout: node.timeout,
        disable: node.disable,
        span: node.span,
    })
}

/// Nodes of a definition tree, handlers included.
pub(crate) fn tree_size(d: &TaskDef) -> u64 {
    let children: u64 = match &d.kind {
        TaskKind::Group(c) => c.iter().map(tree_size).sum(),
        TaskKind::Operator(_) => 0,
    };
    let handlers: u64 = [&d.error, &d.check]
        .into_iter()
        .flatten()
        .map(|h| tree_size(h))
        .sum();
    1 + children + handlers
}

/// Levels below the root of a definition tree (0 for a single task), handlers included.
pub(crate) fn tree_depth(d: &TaskDef) -> usize {
    let children = match &d.kind {
        TaskKind::Group(c) => c.iter().map(tree_depth).max(),
        TaskKind::Operator(_) => None,
    };
    let handlers = [&d.error, &d.check]
        .into_iter()
        .flatten()
        .map(|h| tree_depth(h))
        .max();
    children.max(handlers).map_or(0, |d| d + 1)
}

/// Migration 6: gives every task row of an older database its definition as nodes (each row
/// held its whole subtree, which becomes the nodes of that row alone), then the store folds.
pub(crate) fn convert_legacy(tx: &Tx<'_>) -> Result<(), store::Error> {
    let rows: Vec<(i64, String)> = {
        let mut stmt = tx
            .prepare("SELECT id, definition FROM tasks WHERE def_id IS NULL ORDER BY id")
            .map_err(sql("convert_definitions"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(sql("convert_definitions"))?
            .collect::<Result<_, _>>()
            .map_err(sql("convert_definitions"))?;
        rows
    };
    for (id, text) in rows {
        let def = legacy::from_json(&text)?;
        let def_id = store(tx, &def)?;
        tx.execute(
            "UPDATE tasks SET def_id = ?1 WHERE id = ?2",
            params![def_id.0, id],
        )
        .map_err(sql("convert_definitions"))?;
    }
    super::params::fill_folds(tx)
}

/// The SHA-256 of what a node itself defines, spans left out: its name, operator and command
/// (with `_do`/`_else_do`), `_export`, params, `_retry`, `_parallel`, `_background`, `_after`,
/// `_timeout` and `_disable`. Its children and its `_error`/`_check` handlers are not in it
/// (they are nodes of their own). Two nodes with the same fingerprint behave alike given the
/// same params, wherever in a file they are written, so a resume compares fingerprints rather
/// than definition ids (every revision stores its nodes anew) or source text (an edit above a
/// task moves its spans without changing it).
pub(crate) fn own_fingerprint(node: &Node) -> [u8; 32] {
    let mut h = FieldHasher::default();
    h.text(&node.name);
    match &node.kind {
        NodeKind::Group(_) => h.tag(b'G'),
        NodeKind::Operator(op) => {
            h.tag(b'O');
            h.text(&op.name);
            h.tag(u8::from(op.supported));
            h.value(&op.command);
            for block in [&op.do_block, &op.else_do_block] {
                match block {
                    None => h.tag(b'-'),
                    Some(v) => {
                        h.tag(b'+');
                        h.value(v);
                    }
                }
            }
        }
    }
    h.map(&node.export);
    h.map(&node.params);
    match &node.retry {
        None => h.tag(b'-'),
        Some(RetryDef::Policy(p)) => {
            h.tag(b'P');
            h.num(u64::from(p.limit));
            h.num(ms(p.interval));
            h.tag(u8::from(p.interval_type == IntervalType::Exponential));
            h.opt_num(p.max_interval.map(ms));
            h.opt_num(p.deadline.map(ms));
        }
        Some(RetryDef::Expr(v)) => {
            h.tag(b'E');
            h.value(v);
        }
    }
    match &node.parallel {
        None => h.tag(b'-'),
        Some(ParallelDef::All(b)) => {
            h.tag(b'A');
            h.tag(u8::from(*b));
        }
        Some(ParallelDef::Limit(n)) => {
            h.tag(b'L');
            h.num(u64::from(*n));
        }
        Some(ParallelDef::Expr(v)) => {
            h.tag(b'E');
            h.value(v);
        }
    }
    h.tag(u8::from(node.background));
    h.num(node.after.len() as u64);
    for a in &node.after {
        h.text(a);
    }
    h.opt_num(node.timeout.map(ms));
    h.tag(u8::from(node.disable));
    h.finish()
}

/// Combines fingerprints (a node's own with its handlers' or children's), in order.
pub(crate) fn combine_fingerprints(parts: &[[u8; 32]]) -> [u8; 32] {
    let mut h = FieldHasher::default();
    h.tag(b'C');
    h.num(parts.len() as u64);
    for p in parts {
        sha2::Digest::update(&mut h.0, p);
    }
    h.finish()
}

/// Feeds typed, length-prefixed fields to SHA-256, so no two different inputs collide by
/// concatenation.
#[derive(Default)]
struct FieldHasher(sha2::Sha256);

impl FieldHasher {
    fn tag(&mut self, t: u8) {
        use sha2::Digest;
        self.0.update([t]);
    }

    fn num(&mut self, n: u64) {
        use sha2::Digest;
        self.0.update(n.to_le_bytes());
    }

    fn opt_num(&mut self, n: Option<u64>) {
        match n {
            None => self.tag(b'-'),
            Some(n) => {
                self.tag(b'+');
                self.num(n);
            }
        }
    }

    fn text(&mut self, s: &str) {
        use sha2::Digest;
        self.num(s.len() as u64);
        self.0.update(s.as_bytes());
    }

    fn map(&mut self, m: &Map) {
        let mut items = Vec::new();
        encode_map(m, span_j(Span::NONE), &mut items);
        self.items(&items);
    }

    fn value(&mut self, v: &Value) {
        self.items(&flat_value(v));
    }

    /// The flat encoding is pre-order with container lengths: unambiguous without spans.
    fn items(&mut self, items: &[ItemJ]) {
        self.num(items.len() as u64);
        for item in items {
            match item {
                ItemJ::N(_) => self.tag(b'n'),
                ItemJ::B(b, _) => {
                    self.tag(b'b');
                    self.tag(u8::from(*b));
                }
                ItemJ::I(i, _) => {
                    self.tag(b'i');
                    self.num(*i as u64);
                }
                ItemJ::F(bits, _) => {
                    self.tag(b'f');
                    self.num(*bits);
                }
                // The raw text determines the template parts.
                ItemJ::S(raw, _, _) => {
                    self.tag(b's');
                    self.text(raw);
                }
                ItemJ::Q(n, _) => {
                    self.tag(b'q');
                    self.num(u64::from(*n));
                }
                ItemJ::M(n, _) => {
                    self.tag(b'm');
                    self.num(u64::from(*n));
                }
                ItemJ::K(k, _) => {
                    self.tag(b'k');
                    self.text(k);
                }
            }
        }
    }

    fn finish(self) -> [u8; 32] {
        use sha2::Digest;
        self.0.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testkit::{group, op, v_map, v_str};

    fn with_store<T>(f: impl FnOnce(&Tx<'_>) -> T) -> T {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("spade.db")).unwrap();
        store
            .write("test", |tx| Ok::<_, store::Error>(f(tx)))
            .unwrap()
    }

    fn float(f: f64) -> Value {
        Value {
            kind: ValueKind::Float(f),
            span: Span::NONE,
        }
    }

    #[test]
    fn definition_round_trips_losslessly() {
        let mut t = op("+a", "sh", "echo ${x}");
        t.retry = Some(RetryDef::Policy(RetryPolicy {
            limit: 3,
            interval: Duration::from_secs(2),
            interval_type: IntervalType::Exponential,
            max_interval: Some(Duration::from_secs(9)),
            deadline: None,
        }));
        t.timeout = Some(Duration::from_millis(1500));
        t.export = crate::engine::testkit::map(vec![
            ("inf", float(f64::INFINITY)),
            ("ninf", float(f64::NEG_INFINITY)),
            ("nan", float(f64::NAN)),
            ("x", v_map(vec![("y", v_str("${z}")), ("e", v_map(vec![]))])),
        ]);
        if let TaskKind::Operator(o) = &mut t.kind {
            o.do_block = Some(v_map(vec![("+b", v_map(vec![("echo>", v_str("hi"))]))]));
        }
        let mut g = group("+wf", vec![t, op("+b", "echo", "hi"), group("+e", vec![])]);
        g.parallel = Some(ParallelDef::Limit(2));
        g.error = Some(Box::new(op("^error", "echo", "oops")));
        let back = with_store(|tx| load_tree(tx, store(tx, &g).unwrap()).unwrap());
        // `{:?}` prints NaN as NaN, so this compares floats by value and NaN as NaN.
        assert_eq!(format!("{back:?}"), format!("{g:?}"));
        let TaskKind::Group(children) = &back.kind else {
            panic!("a group")
        };
        let ValueKind::Float(nan) = children[0].export.get("nan").unwrap().kind else {
            panic!("a float")
        };
        assert_eq!(nan.to_bits(), f64::NAN.to_bits());
    }

    #[test]
    fn deep_values_and_trees_nest_no_json_deeper_than_a_few_levels() {
        let mut v = v_str("leaf");
        for i in 0..600 {
            v = if i % 2 == 0 {
                v_map(vec![("k", v)])
            } else {
                Value {
                    kind: ValueKind::Seq(vec![v]),
                    span: Span::NONE,
                }
            };
        }
        let mut t = op("+leaf", "echo", "x");
        t.params = crate::engine::testkit::map(vec![("deep", v.clone())]);
        for i in 0..150 {
            t = group(&format!("+g{i}"), vec![t]);
        }
        let (back, depth) = with_store(|tx| {
            let id = store(tx, &t).unwrap();
            let body: String = tx
                .query_row("SELECT body FROM task_defs WHERE id = 1", [], |r| r.get(0))
                .unwrap();
            let json: serde_json::Value = crate::store::rows::parse_json("t", &body).unwrap();
            fn depth(v: &serde_json::Value) -> usize {
                match v {
                    serde_json::Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
                    serde_json::Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
                    _ => 0,
                }
            }
            (load_tree(tx, id).unwrap(), depth(&json))
        });
        assert!(depth < 10, "the leaf's body nests {depth} levels");
        assert_eq!(format!("{back:?}"), format!("{t:?}"));
        assert_eq!(tree_depth(&t), 150);
    }

    #[test]
    fn malformed_flat_values_are_errors_not_panics() {
        for items in [
            vec![],
            vec![ItemJ::Q(2, (0, 0, 0)), ItemJ::N((0, 0, 0))],
            vec![ItemJ::M(1, (0, 0, 0)), ItemJ::N((0, 0, 0))],
            vec![ItemJ::K("k".into(), (0, 0, 0))],
            vec![ItemJ::N((0, 0, 0)), ItemJ::N((0, 0, 0))],
        ] {
            assert!(decode_value(items).is_err());
        }
    }

    #[test]
    fn a_fingerprint_ignores_spans_and_children_and_sees_every_own_field() {
        let fp = |t: &TaskDef| {
            with_store(|tx| {
                let id = store(tx, t).unwrap();
                own_fingerprint(&load(tx, id).unwrap())
            })
        };
        let base = op("+a", "sh", "echo ${x}");
        let mut moved = base.clone();
        moved.span = Span {
            file: FileId(0),
            start: 40,
            end: 90,
        };
        assert_eq!(fp(&base), fp(&moved), "spans are not part of it");
        let mut changed = base.clone();
        if let TaskKind::Operator(o) = &mut changed.kind {
            o.command = v_str("echo ${y}");
        }
        assert_ne!(fp(&base), fp(&changed), "the command is");
        let mut retried = base.clone();
        retried.retry = Some(RetryDef::Policy(RetryPolicy {
            limit: 1,
            interval: Duration::ZERO,
            interval_type: IntervalType::Constant,
            max_interval: None,
            deadline: None,
        }));
        assert_ne!(fp(&base), fp(&retried), "_retry is");
        let mut exported = base.clone();
        exported.export = crate::engine::testkit::map(vec![("k", v_str("v"))]);
        assert_ne!(fp(&base), fp(&exported), "_export is");
        assert_ne!(
            fp(&op("+a", "sh", "1")),
            fp(&op("+a", "sh", "01")),
            "scalars keep their text"
        );
        let g1 = group("+g", vec![op("+x", "echo", "1")]);
        let g2 = group("+g", vec![op("+x", "echo", "2"), op("+y", "echo", "3")]);
        assert_eq!(
            fp(&g1),
            fp(&g2),
            "a group's own fingerprint leaves its children out"
        );
    }
}
