//! The scope chain of one task (spec 4.2): built-ins, attempt params, exports and stores of
//! ancestors and upstream siblings in tree order, the task's own `_export`, its local params.

use crate::dig::{Key, Map, TaskDef, TaskKind, Value, ValueKind};
use crate::expr::{self, JsonMap, Layer};
use crate::ids::TaskId;
use crate::store::rows::{self, AttemptRow, TaskRow};
use crate::store::{sql, Error, Tx};
use jiff::Timestamp;
use rusqlite::params;

/// A secret provider that knows none: evaluation keeps `${secret:...}` for the operator.
struct NoSecrets;

impl expr::SecretProvider for NoSecrets {
    fn secret(&self, _name: &str) -> Option<String> {
        None
    }
}

enum Owned {
    Raw(Map),
    Plain(JsonMap),
}

/// The owned layers of a task's scope, lowest first.
pub(super) struct Scope {
    layers: Vec<Owned>,
}

/// Store updates (store, reset keys) of every task upstream of `task` (transitively) and of
/// their live descendants: upstream siblings in id order (ids grow in definition order, so this
/// is Digdag's "each one's own upstreams first, ties by ascending id"), each followed by its
/// descendants in id order.
fn upstream_stores(tx: &Tx<'_>, task: TaskId) -> Result<Vec<(String, Option<String>)>, Error> {
    let mut stmt = tx
        .prepare_cached(
            "WITH RECURSIVE up(id) AS ( \
               SELECT upstream_id FROM task_edges WHERE downstream_id = ?1 \
               UNION SELECT e.upstream_id FROM up CROSS JOIN task_edges e \
                 WHERE e.downstream_id = up.id), \
             d(root, id, child_epoch) AS ( \
               SELECT t.id, t.id, t.child_epoch FROM up CROSS JOIN tasks t WHERE t.id = up.id \
               UNION ALL SELECT d.root, t.id, t.child_epoch FROM d CROSS JOIN tasks t \
                 WHERE t.parent_id = d.id AND t.epoch = d.child_epoch) \
             SELECT t.store_params, t.reset_store FROM d CROSS JOIN tasks t ON t.id = d.id \
             WHERE t.store_params IS NOT NULL OR t.reset_store IS NOT NULL \
             ORDER BY d.root, t.id",
        )
        .map_err(sql("upstream_stores"))?;
    let out = stmt
        .query_map(params![task.0], |r| {
            Ok((
                r.get::<_, Option<String>>(0)?
                    .unwrap_or_else(|| "{}".into()),
                r.get::<_, Option<String>>(1)?,
            ))
        })
        .map_err(sql("upstream_stores"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql("upstream_stores"))?;
    Ok(out)
}

/// Removes a dotted key (`a.b.c`) from a map.
fn remove_dotted(map: &mut JsonMap, key: &str) {
    match key.split_once('.') {
        None => {
            map.remove(key);
        }
        Some((head, rest)) => {
            if let Some(serde_json::Value::Object(inner)) = map.get_mut(head) {
                remove_dotted(inner, rest);
            }
        }
    }
}

/// Later wins; two objects merge deeply (as the scope merges its layers).
fn deep_merge(into: &mut JsonMap, from: JsonMap) {
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

/// Folds store updates `(store, reset keys)`, in the order the scope applies them, into one
/// update with the same effect on every later scope: each reset drops its keys from what was
/// folded so far and is kept for the layers before the fold; each store merges in.
pub(super) fn fold_stores(
    items: &[(String, Option<String>)],
) -> Result<(JsonMap, Vec<String>), Error> {
    let mut store = JsonMap::new();
    let mut resets: Vec<String> = Vec::new();
    for (text, reset) in items {
        let reset: Vec<String> = match reset {
            Some(r) => serde_json::from_str(r).map_err(|source| Error::Json {
                what: "reset_store",
                source,
            })?,
            None => Vec::new(),
        };
        for key in reset {
            remove_dotted(&mut store, &key);
            if !resets.contains(&key) {
                resets.push(key);
            }
        }
        deep_merge(&mut store, rows::json_map("store params", Some(text))?);
    }
    Ok((store, resets))
}

impl Scope {
    /// Builds the chain for `task` (whose ancestors, root first, are `ancestors`).
    pub(super) fn build(
        tx: &Tx<'_>,
        attempt: &AttemptRow,
        builtins: JsonMap,
        ancestors: &[(TaskRow, Map)],
        task: &TaskRow,
    ) -> Result<Scope, Error> {
        let mut layers = vec![Owned::Plain(builtins), Owned::Plain(attempt.params.clone())];
        // Indices into `layers` of store layers, so a reset can drop keys stored earlier.
        let mut store_layers: Vec<usize> = Vec::new();
        let mut apply_store =
            |layers: &mut Vec<Owned>, store: &str, reset: Option<&str>| -> Result<(), Error> {
                let reset: Vec<String> = match reset {
                    Some(r) => serde_json::from_str(r).map_err(|source| Error::Json {
                        what: "reset_store",
                        source,
                    })?,
                    None => Vec::new(),
                };
                for key in &reset {
                    for &i in &store_layers {
                        if let Some(Owned::Plain(m)) = layers.get_mut(i) {
                            remove_dotted(m, key);
                        }
                    }
                }
                let map = rows::json_map("store params", Some(store))?;
                store_layers.push(layers.len());
                layers.push(Owned::Plain(map));
                Ok(())
            };
        let any_store: bool = tx
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM tasks WHERE attempt_id = ?1 \
                 AND (store_params IS NOT NULL OR reset_store IS NOT NULL))",
            )
            .and_then(|mut s| s.query_row(params![task.attempt.0], |r| r.get(0)))
            .map_err(sql("any_store"))?;
        let chain: Vec<&TaskRow> = ancestors
            .iter()
            .map(|(r, _)| r)
            .chain(std::iter::once(task))
            .collect();
        for (depth, node) in chain.iter().enumerate() {
            if any_store {
                for (store, reset) in upstream_stores(tx, node.id)? {
                    apply_store(&mut layers, &store, reset.as_deref())?;
                }
            }
            if let Some((row, export)) = ancestors.get(depth) {
                layers.push(Owned::Raw(export.clone()));
                layers.push(Owned::Plain(rows::json_map(
                    "export params",
                    row.export_params.as_deref(),
                )?));
                if let Some(store) = &row.store_params {
                    apply_store(&mut layers, store, row.reset_store.as_deref())?;
                }
            }
        }
        Ok(Scope { layers })
    }

    /// The layers as JSON, lowest first (`Raw` maps unevaluated), for tests.
    #[cfg(test)]
    pub(super) fn debug_layers(&self) -> Vec<serde_json::Value> {
        self.layers
            .iter()
            .map(|l| match l {
                Owned::Raw(m) => Value {
                    kind: ValueKind::Map(m.clone()),
                    span: crate::diag::Span::NONE,
                }
                .to_json_raw(),
                Owned::Plain(m) => serde_json::Value::Object(m.clone()),
            })
            .collect()
    }

    /// Evaluates the scope plus the task's own `_export` and local params (with `_command`).
    pub(super) fn eval(
        mut self,
        def: &TaskDef,
        timezone: &str,
        now: Timestamp,
    ) -> Result<expr::Evaluated, expr::Error> {
        self.layers.push(Owned::Raw(def.export.clone()));
        let mut local = def.params.clone();
        if let TaskKind::Operator(op) = &def.kind {
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
    if let ValueKind::Str(t) = &value.kind {
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

/// The built-ins of one task.
pub(super) fn builtins(attempt: &AttemptRow, task_name: &str) -> JsonMap {
    expr::builtins(&expr::SessionInfo {
        timezone: attempt.timezone.clone(),
        session_time: attempt.session_time,
        session_uuid: attempt.session_uuid.clone(),
        session_id: attempt.session_id,
        attempt_id: attempt.id.0,
        project_id: attempt.project_id,
        task_name: task_name.to_owned(),
        retry_attempt_name: (!attempt.attempt_name.is_empty())
            .then(|| attempt.attempt_name.clone()),
        last_session_time: attempt.last_session_time,
        next_session_time: attempt.next_session_time,
        last_executed_session_time: None,
    })
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
        let (got_store, got_reset) = fold_stores(&items).unwrap();
        assert_eq!(serde_json::Value::Object(got_store), store);
        assert_eq!(got_reset, reset);
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
}
