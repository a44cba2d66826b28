//! The scope chain of one task (spec 4.2): attempt params, the stores of upstream siblings and
//! the exports and stores of ancestors in Digdag's tree order, the task's own `_export`, the
//! built-ins, then its local params.
//!
//! Store updates are kept folded, so building a scope reads one row per ancestor whatever came
//! before: a succeeded task keeps `sub_fold`, its own store followed by those of its live
//! descendants depth first; a task keeps `up_fold` from the moment its upstreams succeeded,
//! the `sub_fold`s of its transitive upstream siblings in Digdag's order (each one's own
//! upstreams first, ties by ascending id). A task with one upstream `u` (every sequential
//! sibling) gets `up_fold(u)` then `sub_fold(u)` without any walk.

use super::def::Node;
use crate::dig::{Key, Map, Value};
use crate::expr::{self, JsonMap, Layer};
use crate::ids::TaskId;
use crate::store::rows::{self, AttemptRow};
use crate::store::{sql, Error, Tx};
use jiff::Timestamp;
use rusqlite::params;
use std::collections::{HashMap, HashSet};

/// A secret provider that knows none: evaluation keeps `${secret:...}` for the operator.
struct NoSecrets;

impl expr::SecretProvider for NoSecrets {
    fn secret(&self, _name: &str) -> Option<String> {
        None
    }
}

/// Removes a dotted key (`a.b.c`) from a map.
fn remove_dotted(map: &mut JsonMap, key: &str) {
    match key.split_once('.') {
        None => {
            map.shift_remove(key);
        }
        Some((head, rest)) => {
            if let Some(serde_json::Value::Object(inner)) = map.get_mut(head) {
                remove_dotted(inner, rest);
            }
        }
    }
}

/// [`remove_dotted`] for an unevaluated `_export:` map.
fn remove_dotted_raw(map: &mut Map, key: &str) {
    let (head, rest) = match key.split_once('.') {
        None => (key, None),
        Some((head, rest)) => (head, Some(rest)),
    };
    match rest {
        None => map.entries.retain(|(k, _)| k.name != head),
        Some(rest) => {
            for (k, v) in &mut map.entries {
                if k.name == head {
                    if let crate::dig::ValueKind::Map(inner) = &mut v.kind {
                        remove_dotted_raw(inner, rest);
                    }
                }
            }
        }
    }
}

/// Later wins; two objects merge deeply (as the scope merges its layers).
pub(super) fn deep_merge(into: &mut JsonMap, from: JsonMap) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(serde_json::Value::Object(old)), serde_json::Value::Object(new)) => {
                deep_merge(old, new);
            }
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

/// `deep_merge` that lists the dotted keys where an object replaced a value that was not one.
/// Applied one by one, that value would have hidden whatever earlier layers held there; the
/// fold must then reset the key, or merging it over those layers would bring them back.
fn merge_tracking(into: &mut JsonMap, from: JsonMap, prefix: &str, replaced: &mut Vec<String>) {
    for (k, v) in from {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match (into.get_mut(&k), v) {
            (Some(serde_json::Value::Object(old)), serde_json::Value::Object(new)) => {
                merge_tracking(old, new, &path, replaced);
            }
            (Some(_), v @ serde_json::Value::Object(_)) => {
                replaced.push(path);
                into.insert(k, v);
            }
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

/// Store updates folded into one with the same effect on every later scope: applying the fold
/// removes `reset` keys from what came before and then merges `store`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Fold {
    pub(super) store: JsonMap,
    pub(super) reset: Vec<String>,
}

impl Fold {
    pub(super) fn is_empty(&self) -> bool {
        self.store.is_empty() && self.reset.is_empty()
    }

    /// Appends one update: its resets drop keys folded so far (and stay for the layers before
    /// the fold), then its store merges in.
    pub(super) fn then(&mut self, store: JsonMap, reset: Vec<String>) {
        for key in reset {
            remove_dotted(&mut self.store, &key);
            self.add_reset(key);
        }
        let mut replaced = Vec::new();
        merge_tracking(&mut self.store, store, "", &mut replaced);
        for key in replaced {
            self.add_reset(key);
        }
    }

    fn add_reset(&mut self, key: String) {
        if !self.reset.contains(&key) {
            self.reset.push(key);
        }
    }

    pub(super) fn then_fold(&mut self, other: Fold) {
        self.then(other.store, other.reset);
    }

    /// Appends a row's `store_params` and `reset_store` columns.
    pub(super) fn then_columns(
        &mut self,
        store: Option<&str>,
        reset: Option<&str>,
    ) -> Result<(), Error> {
        let reset: Vec<String> = match reset {
            Some(r) => rows::parse_json("reset_store", r)?,
            None => Vec::new(),
        };
        self.then(rows::json_map("store params", store)?, reset);
        Ok(())
    }

    /// The text of a fold column: `None` (NULL) for an empty fold, which most rows have.
    pub(super) fn to_column(&self) -> Option<String> {
        (!self.is_empty()).then(|| rows::to_json(&(&self.store, &self.reset)))
    }

    pub(super) fn from_column(text: Option<&str>) -> Result<Fold, Error> {
        match text {
            None => Ok(Fold::default()),
            Some(t) => {
                let (store, reset): (JsonMap, Vec<String>) = rows::parse_json("store fold", t)?;
                Ok(Fold { store, reset })
            }
        }
    }
}

/// Folds store updates `(store, reset keys)` given in the order the scope applies them.
#[cfg(test)]
fn fold_stores(items: &[(String, Option<String>)]) -> Result<Fold, Error> {
    let mut fold = Fold::default();
    for (store, reset) in items {
        fold.then_columns(Some(store), reset.as_deref())?;
    }
    Ok(fold)
}

/// The fold of a task's live subtree, itself first, then depth first in definition order,
/// whatever the states (a failed group's `_error` sees what its descendants stored, spec 5.6;
/// a kept row of an older spade has no `sub_fold` of its own).
pub(super) fn subtree_fold(tx: &Tx<'_>, task: TaskId) -> Result<Fold, Error> {
    let mut stmt = tx
        .prepare_cached(
            "WITH RECURSIVE d(id, child_epoch, path) AS ( \
               SELECT id, child_epoch, '' FROM tasks WHERE id = ?1 \
               UNION ALL SELECT t.id, t.child_epoch, d.path || printf('%012d.', t.child_index) \
                 FROM d CROSS JOIN tasks t WHERE t.parent_id = d.id AND t.epoch = d.child_epoch) \
             SELECT t.store_params, t.reset_store FROM d CROSS JOIN tasks t ON t.id = d.id \
             WHERE t.store_params IS NOT NULL OR t.reset_store IS NOT NULL ORDER BY d.path",
        )
        .map_err(sql("subtree_stores"))?;
    let items = stmt
        .query_map(params![task.0], |r| {
            Ok((
                r.get::<_, Option<String>>(0)?,
                r.get::<_, Option<String>>(1)?,
            ))
        })
        .map_err(sql("subtree_stores"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql("subtree_stores"))?;
    let mut fold = Fold::default();
    for (store, reset) in items {
        fold.then_columns(store.as_deref(), reset.as_deref())?;
    }
    Ok(fold)
}

/// The fold of everything upstream of `task` among its siblings, once they all succeeded:
/// Digdag's `getRecursiveUpstreamChildrenIdList` order, each upstream after its own upstreams
/// (ties by ascending id, each task once), each contributing its `sub_fold`.
pub(super) fn upstream_fold(tx: &Tx<'_>, task: TaskId) -> Result<Fold, Error> {
    let direct: Vec<(i64, Option<String>, Option<String>)> = {
        let mut stmt = tx
            .prepare_cached(
                "SELECT t.id, t.up_fold, t.sub_fold FROM task_edges e \
                 CROSS JOIN tasks t ON t.id = e.upstream_id \
                 WHERE e.downstream_id = ?1 ORDER BY e.upstream_id",
            )
            .map_err(sql("upstreams"))?;
        let rows = stmt
            .query_map(params![task.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(sql("upstreams"))?
            .collect::<Result<_, _>>()
            .map_err(sql("upstreams"))?;
        rows
    };
    match direct.as_slice() {
        [] => Ok(Fold::default()),
        // One upstream (a sequential sibling): what it saw, then what it and its subtree stored.
        [(_, up, sub)] => {
            let mut fold = Fold::from_column(up.as_deref())?;
            fold.then_fold(Fold::from_column(sub.as_deref())?);
            Ok(fold)
        }
        _ => several_upstreams_fold(tx, task),
    }
}

/// [`upstream_fold`] for a task with several upstreams (`_after`, `{limit: N}` chunks, a
/// background join): the transitive upstreams are walked once, without recursion.
fn several_upstreams_fold(tx: &Tx<'_>, task: TaskId) -> Result<Fold, Error> {
    let mut stmt = tx
        .prepare_cached(
            "WITH RECURSIVE up(down, up) AS ( \
               SELECT downstream_id, upstream_id FROM task_edges WHERE downstream_id = ?1 \
               UNION SELECT e.downstream_id, e.upstream_id FROM up \
                 CROSS JOIN task_edges e ON e.downstream_id = up.up) \
             SELECT up.down, up.up, t.sub_fold FROM up CROSS JOIN tasks t ON t.id = up.up",
        )
        .map_err(sql("transitive_upstreams"))?;
    let edges: Vec<(i64, i64, Option<String>)> = stmt
        .query_map(params![task.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(sql("transitive_upstreams"))?
        .collect::<Result<_, _>>()
        .map_err(sql("transitive_upstreams"))?;
    let mut ups: HashMap<i64, Vec<i64>> = HashMap::new();
    let mut folds: HashMap<i64, Option<String>> = HashMap::new();
    for (down, up, sub) in edges {
        ups.entry(down).or_default().push(up);
        folds.insert(up, sub);
    }
    for list in ups.values_mut() {
        list.sort_unstable();
        list.dedup();
    }
    let order = upstream_order(task.0, &ups);
    let mut fold = Fold::default();
    for id in order {
        if let Some(sub) = folds.remove(&id) {
            fold.then_fold(Fold::from_column(sub.as_deref())?);
        }
    }
    Ok(fold)
}

/// Digdag's order of the transitive upstreams of `task`: for each direct upstream in id order,
/// its own upstreams first, then itself; a task already listed is not listed again.
fn upstream_order(task: i64, ups: &HashMap<i64, Vec<i64>>) -> Vec<i64> {
    let mut order = Vec::new();
    let mut seen: HashSet<i64> = HashSet::new();
    // (node, index of the next upstream to visit): an explicit stack, since a chain of
    // sequential siblings is as long as the group.
    let mut stack: Vec<(i64, usize)> = vec![(task, 0)];
    while let Some((node, next)) = stack.pop() {
        let list = ups.get(&node).map_or(&[][..], Vec::as_slice);
        match list.get(next) {
            Some(&u) => {
                stack.push((node, next + 1));
                if !seen.contains(&u) {
                    stack.push((u, 0));
                }
            }
            None => {
                if node != task && seen.insert(node) {
                    order.push(node);
                }
            }
        }
    }
    order
}

/// Migration 6: the store folds of an older database's rows. Succeeded rows get their
/// `sub_fold` bottom up (children have larger ids than their parent), then every unfinished row
/// its `up_fold`, so attempts under way carry on with the params they would have seen.
pub(super) fn fill_folds(tx: &Tx<'_>) -> Result<(), Error> {
    let succeeded: Vec<(i64, i64, Option<String>, Option<String>)> = {
        let mut stmt = tx
            .prepare(
                "SELECT id, child_epoch, store_params, reset_store FROM tasks \
                 WHERE state = 'succeeded' ORDER BY id DESC",
            )
            .map_err(sql("fill_folds"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .map_err(sql("fill_folds"))?
            .collect::<Result<_, _>>()
            .map_err(sql("fill_folds"))?;
        rows
    };
    for (id, child_epoch, store, reset) in succeeded {
        let mut fold = Fold::default();
        fold.then_columns(store.as_deref(), reset.as_deref())?;
        let children: Vec<String> = {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT sub_fold FROM tasks WHERE parent_id = ?1 AND epoch = ?2 \
                     AND sub_fold IS NOT NULL ORDER BY child_index",
                )
                .map_err(sql("fill_folds"))?;
            let rows = stmt
                .query_map(params![id, child_epoch], |r| r.get(0))
                .map_err(sql("fill_folds"))?
                .collect::<Result<_, _>>()
                .map_err(sql("fill_folds"))?;
            rows
        };
        for text in children {
            fold.then_fold(Fold::from_column(Some(&text))?);
        }
        if let Some(text) = fold.to_column() {
            tx.execute(
                "UPDATE tasks SET sub_fold = ?1 WHERE id = ?2",
                params![text, id],
            )
            .map_err(sql("fill_folds"))?;
        }
    }
    let open: Vec<i64> = {
        let mut stmt = tx
            .prepare(
                "SELECT id FROM tasks WHERE state NOT IN \
                 ('succeeded', 'failed', 'group_error', 'canceled', 'skipped')",
            )
            .map_err(sql("fill_folds"))?;
        let rows = stmt
            .query_map([], |r| r.get(0))
            .map_err(sql("fill_folds"))?
            .collect::<Result<_, _>>()
            .map_err(sql("fill_folds"))?;
        rows
    };
    for id in open {
        if let Some(text) = upstream_fold(tx, TaskId(id))?.to_column() {
            tx.execute(
                "UPDATE tasks SET up_fold = ?1 WHERE id = ?2",
                params![text, id],
            )
            .map_err(sql("fill_folds"))?;
        }
    }
    Ok(())
}

/// One level of the chain from the root to a task.
pub(super) struct ChainNode {
    /// `up_fold` of the node: what its upstream siblings stored.
    pub(super) up_fold: Option<String>,
    /// For ancestors: `_export:`, operator exports and the node's own store.
    pub(super) ancestor: Option<AncestorParts>,
}

pub(super) struct AncestorParts {
    /// The ancestor's definition (its `_export` is a layer of the scope).
    pub(super) node: std::sync::Arc<Node>,
    pub(super) export_params: Option<String>,
    pub(super) store_params: Option<String>,
    pub(super) reset_store: Option<String>,
}

enum Owned {
    Raw(Map),
    /// An ancestor's `_export`, shared with its definition node until a store's reset key
    /// removes something from it (then it becomes a `Raw` copy).
    Export(std::sync::Arc<Node>),
    Plain(JsonMap),
}

/// The owned layers of a task's scope, lowest first.
pub(super) struct Scope {
    layers: Vec<Owned>,
    builtins: JsonMap,
}

impl Scope {
    /// Builds the chain from the task's ancestors (root first) and its own `up_fold`.
    pub(super) fn build(
        attempt: &AttemptRow,
        builtins: JsonMap,
        ancestors: &[ChainNode],
        own_up_fold: Option<&str>,
    ) -> Result<Scope, Error> {
        let mut layers = vec![Owned::Plain(attempt.params.clone())];
        // A store update removes its reset keys from everything below it (Digdag's
        // `ParameterUpdate.applyTo` edits the merged params: attempt params and exports too),
        // then merges its store.
        let apply_store = |layers: &mut Vec<Owned>, fold: Fold| {
            if fold.is_empty() {
                return;
            }
            for key in &fold.reset {
                for layer in layers.iter_mut() {
                    if let Owned::Export(node) = layer {
                        let head = key.split_once('.').map_or(key.as_str(), |(h, _)| h);
                        if node.export.entries.iter().any(|(k, _)| k.name == head) {
                            *layer = Owned::Raw(node.export.clone());
                        }
                    }
                    match layer {
                        Owned::Plain(m) => remove_dotted(m, key),
                        Owned::Raw(m) => remove_dotted_raw(m, key),
                        Owned::Export(_) => {}
                    }
                }
            }
            if !fold.store.is_empty() {
                layers.push(Owned::Plain(fold.store));
            }
        };
        for node in ancestors {
            apply_store(&mut layers, Fold::from_column(node.up_fold.as_deref())?);
            if let Some(a) = &node.ancestor {
                if !a.node.export.is_empty() {
                    layers.push(Owned::Export(std::sync::Arc::clone(&a.node)));
                }
                if a.export_params.is_some() {
                    layers.push(Owned::Plain(rows::json_map(
                        "export params",
                        a.export_params.as_deref(),
                    )?));
                }
                let mut own = Fold::default();
                own.then_columns(a.store_params.as_deref(), a.reset_store.as_deref())?;
                apply_store(&mut layers, own);
            }
        }
        apply_store(&mut layers, Fold::from_column(own_up_fold)?);
        Ok(Scope { layers, builtins })
    }

    /// The layers as JSON, lowest first (`Raw` maps unevaluated), for tests.
    #[cfg(test)]
    pub(super) fn debug_layers(&self) -> Vec<serde_json::Value> {
        self.layers
            .iter()
            .map(|l| match l {
                Owned::Raw(m) => Value {
                    kind: crate::dig::ValueKind::Map(m.clone()),
                    span: crate::diag::Span::NONE,
                }
                .to_json_raw(),
                Owned::Export(node) => Value {
                    kind: crate::dig::ValueKind::Map(node.export.clone()),
                    span: crate::diag::Span::NONE,
                }
                .to_json_raw(),
                Owned::Plain(m) => serde_json::Value::Object(m.clone()),
            })
            .collect()
    }

    /// Evaluates the scope plus the task's own `_export`, the built-ins (which nothing but a
    /// task's own local params may override, spec 3), and its local params (with `_command`).
    pub(super) fn eval(
        mut self,
        def: &Node,
        timezone: &str,
        now: Timestamp,
    ) -> Result<expr::Evaluated, expr::Error> {
        self.layers.push(Owned::Raw(def.export.clone()));
        self.layers
            .push(Owned::Plain(std::mem::take(&mut self.builtins)));
        let mut local = def.params.clone();
        if let super::def::NodeKind::Operator(op) = &def.kind {
            local.entries.push((
                Key {
                    name: "_command".into(),
                    span: op.command.span,
                },
                op.command.clone(),
            ));
        }
        self.layers.push(Owned::Raw(local));
        let layers: Vec<Layer<'_>> = self
            .layers
            .iter()
            .map(|l| match l {
                Owned::Raw(m) => Layer::Raw(m),
                Owned::Export(node) => Layer::Raw(&node.export),
                Owned::Plain(m) => Layer::Plain(m),
            })
            .collect();
        let ctx = expr::EvalContext {
            timezone: jiff::tz::TimeZone::get(timezone).unwrap_or(jiff::tz::TimeZone::UTC),
            now,
            secrets: &NoSecrets,
        };
        expr::eval_params(&layers, &ctx)
    }
}

/// Evaluates one directive value (`_retry: ${n}`, `_parallel: ${p}`) against evaluated params.
pub(super) fn eval_directive(
    value: &Value,
    params: &JsonMap,
    timezone: &str,
    now: Timestamp,
) -> Result<serde_json::Value, expr::Error> {
    if let crate::dig::ValueKind::Str(t) = &value.kind {
        if !t.has_expr() {
            return Ok(serde_json::Value::String(t.raw.clone()));
        }
    }
    let ctx = expr::EvalContext {
        timezone: jiff::tz::TimeZone::get(timezone).unwrap_or(jiff::tz::TimeZone::UTC),
        now,
        secrets: &NoSecrets,
    };
    expr::eval_value(value, params, &ctx)
}

/// What the built-ins of an attempt's tasks are computed from, except the task's name.
type BuiltinsKey = (
    String,
    jiff::Timestamp,
    String,
    i64,
    i64,
    i64,
    String,
    Option<jiff::Timestamp>,
    Option<jiff::Timestamp>,
);

/// The built-ins of the attempt seen last, without `task_name`: every task of an attempt has
/// the same ones, and formatting a dozen times in the session's zone for each task cost about
/// as much as evaluating its params.
static LAST_BUILTINS: std::sync::Mutex<Option<(BuiltinsKey, JsonMap)>> =
    std::sync::Mutex::new(None);

/// The built-ins of one task.
pub(super) fn builtins(attempt: &AttemptRow, task_name: &str) -> JsonMap {
    let key: BuiltinsKey = (
        attempt.timezone.clone(),
        attempt.session_time,
        attempt.session_uuid.clone(),
        attempt.session_id,
        attempt.id.0,
        attempt.project_id,
        attempt.attempt_name.clone(),
        attempt.last_session_time,
        attempt.next_session_time,
    );
    let mut last = LAST_BUILTINS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut map = match &*last {
        Some((k, map)) if *k == key => map.clone(),
        _ => {
            let map = expr::builtins(&expr::SessionInfo {
                timezone: attempt.timezone.clone(),
                session_time: attempt.session_time,
                session_uuid: attempt.session_uuid.clone(),
                session_id: attempt.session_id,
                attempt_id: attempt.id.0,
                project_id: attempt.project_id,
                task_name: String::new(),
                retry_attempt_name: (!attempt.attempt_name.is_empty())
                    .then(|| attempt.attempt_name.clone()),
                last_session_time: attempt.last_session_time,
                next_session_time: attempt.next_session_time,
                last_executed_session_time: None,
            });
            *last = Some((key, map.clone()));
            map
        }
    };
    drop(last);
    // Replaced in place: the key keeps its position among the built-ins.
    map.insert(
        "task_name".into(),
        serde_json::Value::String(task_name.to_owned()),
    );
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Folded `(store, reset)` pairs, against what applying them one by one gives.
    fn check(items: &[(serde_json::Value, &[&str])], store: serde_json::Value, reset: &[&str]) {
        let items: Vec<(String, Option<String>)> = items
            .iter()
            .map(|(s, r)| (s.to_string(), (!r.is_empty()).then(|| json!(r).to_string())))
            .collect();
        let fold = fold_stores(&items).unwrap();
        assert_eq!(serde_json::Value::Object(fold.store), store);
        assert_eq!(fold.reset, reset);
    }

    /// The memo of the last attempt's built-ins gives each task its own name and never
    /// another attempt's values.
    #[test]
    fn memoized_builtins_are_per_attempt_and_per_task_name() {
        let fresh = |a: &AttemptRow, name: &str| {
            expr::builtins(&expr::SessionInfo {
                timezone: a.timezone.clone(),
                session_time: a.session_time,
                session_uuid: a.session_uuid.clone(),
                session_id: a.session_id,
                attempt_id: a.id.0,
                project_id: a.project_id,
                task_name: name.to_owned(),
                retry_attempt_name: (!a.attempt_name.is_empty()).then(|| a.attempt_name.clone()),
                last_session_time: a.last_session_time,
                next_session_time: a.next_session_time,
                last_executed_session_time: None,
            })
        };
        let mut a = AttemptRow {
            id: crate::ids::AttemptId(31),
            session_id: 5,
            project_id: 2,
            workflow: "wf".into(),
            session_time: "2026-03-01T00:00:00Z".parse().unwrap(),
            session_uuid: "u-1".into(),
            attempt_name: "retry1".into(),
            timezone: "UTC".into(),
            params: JsonMap::new(),
            state: "running".into(),
            root: None,
            generation: 0,
            last_session_time: None,
            next_session_time: Some("2026-03-02T00:00:00Z".parse().unwrap()),
            resume_root: None,
            live_tasks: None,
            resume_from: None,
        };
        for (tz, name) in [("UTC", "+wf+a"), ("UTC", "+wf+b"), ("Asia/Tokyo", "+wf+b")] {
            a.timezone = tz.into();
            let got = builtins(&a, name);
            assert_eq!(got, fresh(&a, name));
            let keys: Vec<&String> = got.keys().collect();
            let want = fresh(&a, name);
            assert_eq!(keys, want.keys().collect::<Vec<_>>());
        }
        a.id = crate::ids::AttemptId(a.id.0 + 1);
        assert_eq!(
            builtins(&a, "+wf+c")["attempt_id"],
            fresh(&a, "+wf+c")["attempt_id"]
        );
    }

    #[test]
    fn folded_stores_merge_deeply_and_keep_resets_for_earlier_layers() {
        check(&[], json!({}), &[]);
        check(
            &[
                (json!({"a": {"x": 1}, "k": 1}), &[]),
                (json!({"a": {"y": 2}}), &[]),
            ],
            json!({"a": {"x": 1, "y": 2}, "k": 1}),
            &[],
        );
        // A reset drops what was folded before it, not what comes after, and stays for the
        // layers before the fold.
        check(
            &[
                (json!({"a": {"x": 1, "y": 2}, "k": 1}), &[]),
                (json!({"k": 2}), &["a.y", "gone"]),
                (json!({}), &["k"]),
                (json!({"k": 3}), &["a.y"]),
            ],
            json!({"a": {"x": 1}, "k": 3}),
            &["a.y", "gone", "k"],
        );
    }

    /// What applying updates one by one does to `base`.
    fn apply_each(base: &JsonMap, updates: &[(serde_json::Value, Vec<String>)]) -> JsonMap {
        let mut out = base.clone();
        for (store, reset) in updates {
            for key in reset {
                remove_dotted(&mut out, key);
            }
            deep_merge(&mut out, store.as_object().unwrap().clone());
        }
        out
    }

    fn apply_fold(base: &JsonMap, fold: &Fold) -> JsonMap {
        let mut out = base.clone();
        for key in &fold.reset {
            remove_dotted(&mut out, key);
        }
        deep_merge(&mut out, fold.store.clone());
        out
    }

    #[test]
    fn folds_compose_like_the_updates_one_by_one() {
        let updates = [
            (json!({"a": {"x": 1, "y": 2}, "k": 1}), vec![]),
            (json!({"k": 2}), vec!["a.y".to_string()]),
            (json!({"a": {"y": 5}}), vec!["k".to_string()]),
            (json!({"a": "scalar", "b": {"c": 1}}), vec![]),
            (json!({"a": {"z": 1}, "b": 3}), vec!["a.z".to_string()]),
            (json!({"b": {"d": 1}}), vec![]),
        ];
        let bases = [
            json!({}),
            json!({"a": {"w": 0}, "b": {"e": 0}, "k": 0}),
            json!({"a": 7, "b": [1]}),
        ];
        let fold_of = |us: &[(serde_json::Value, Vec<String>)]| {
            let mut f = Fold::default();
            for (s, r) in us {
                f.then(s.as_object().unwrap().clone(), r.clone());
            }
            f
        };
        for base in &bases {
            let base = base.as_object().unwrap();
            let expect = apply_each(base, &updates);
            assert_eq!(
                apply_fold(base, &fold_of(&updates)),
                expect,
                "whole over {base:?}"
            );
            for split in 0..=updates.len() {
                let (left, right) = updates.split_at(split);
                let mut a = fold_of(left);
                a.then_fold(fold_of(right));
                assert_eq!(
                    apply_fold(base, &a),
                    expect,
                    "split at {split} over {base:?}"
                );
            }
        }
    }

    #[test]
    fn upstream_order_lists_each_upstream_after_its_own_upstreams() {
        let ups: HashMap<i64, Vec<i64>> = [(5, vec![2, 4]), (4, vec![1]), (2, vec![])]
            .into_iter()
            .collect();
        // e(5) after [b(2), d(4)], d after a(1): b's part first (ties by id), then d's.
        assert_eq!(upstream_order(5, &ups), [2, 1, 4]);
        // A diamond lists the shared upstream once, where it is first reached.
        let ups: HashMap<i64, Vec<i64>> = [(9, vec![3, 4]), (3, vec![1]), (4, vec![1, 2])]
            .into_iter()
            .collect();
        assert_eq!(upstream_order(9, &ups), [1, 3, 2, 4]);
        // A long chain needs no recursion.
        let ups: HashMap<i64, Vec<i64>> = (1..100_000).map(|i| (i, vec![i - 1])).collect();
        assert_eq!(upstream_order(99_999, &ups).len(), 99_999);
    }
}
