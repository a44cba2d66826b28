//! Large param values of runs, stored once per attempt.
//!
//! A run row records the params its try was evaluated with (`task_runs.params`). Most of them
//! are inherited: a 100 KB `_export` on the root is in the params of every task below it, and
//! written with each run it cost a 1,000-task chain 100 MB of store and 0.5 ms per task. So a
//! top-level value of [`SHARED_BYTES`] or more goes to `run_values` once per attempt, keyed by
//! the SHA-256 of its JSON text; the run row keeps `null` in its place and names the digest in
//! `task_runs.params_refs` (`{"key": "digest"}`). [`expand`] puts the values back for readers.
//! A value equal to the one cached for the same attempt and key costs one comparison: no
//! serialization, no hash, no write.

use super::{sql, Error, Tx};
use serde::ser::{SerializeMap as _, Serializer as _};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// A top-level value whose JSON text is at least this long is stored once per attempt.
pub const SHARED_BYTES: usize = 512;

/// Entries a [`Cache`] holds before it starts over (a bound on memory, not on correctness).
const CACHE_LIMIT: usize = 1024;

/// Large values known to be committed in `run_values`, by attempt and key: the value seen last
/// under that key and its digest. Filled after commit only ([`Cache::publish`]), so a digest
/// written by a transaction that rolled back is never taken for stored.
#[derive(Default)]
pub struct Cache(Mutex<HashMap<(i64, String), (Json, String)>>);

/// Values a transaction wrote, the last one per attempt and key (as the cache keeps them),
/// for [`Cache::publish`] after its commit. A map, not a list: a batch of a thousand inline
/// runs, each with a large value of its own under one key, must not compare each new value
/// with every earlier one.
#[derive(Default)]
pub struct Fresh(HashMap<(i64, String), (Json, String)>);

impl Fresh {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn find(&self, key: &(i64, String), value: &Json) -> Option<&str> {
        self.0
            .get(key)
            .filter(|(v, _)| v == value)
            .map(|(_, d)| d.as_str())
    }
}

impl Cache {
    /// Adds what a committed transaction wrote.
    pub fn publish(&self, fresh: Fresh) {
        if fresh.0.is_empty() {
            return;
        }
        let mut cache = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() + fresh.0.len() > CACHE_LIMIT {
            cache.clear();
        }
        cache.extend(fresh.0);
    }

    fn digest_of(&self, key: &(i64, String), value: &Json) -> Option<String> {
        let cache = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .get(key)
            .filter(|(v, _)| v == value)
            .map(|(_, d)| d.clone())
    }
}

/// A run's params as stored: the row's `params` text and its `params_refs` (`None` when every
/// value is inline).
pub struct Stored {
    pub params: String,
    pub refs: Option<String>,
}

/// Whether `value`'s JSON text is at least `limit` bytes, without writing it: strings, keys
/// and numbers are counted (an estimate a little below the text's length, never above it
/// by more than the quotes and separators it leaves out), stopping as soon as `limit` is
/// reached. Iterative, so a deeply nested store cannot overflow the stack.
fn at_least(value: &Json, limit: usize) -> bool {
    let mut seen = 0usize;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        seen += match v {
            Json::Null | Json::Bool(_) => 4,
            Json::Number(_) => 8,
            Json::String(s) => s.len() + 2,
            Json::Array(items) => {
                stack.extend(items.iter());
                2 + items.len()
            }
            Json::Object(map) => {
                for (k, v) in map {
                    seen += k.len() + 3;
                    stack.push(v);
                }
                2
            }
        };
        if seen >= limit {
            return true;
        }
    }
    false
}

fn digest_hex(text: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        use std::fmt::Write as _;
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// Splits `params` for a run row of `attempt`, writing large values not stored yet.
pub fn store(
    tx: &Tx<'_>,
    attempt: i64,
    params: &serde_json::Map<String, Json>,
    cache: &Cache,
    fresh: &mut Fresh,
) -> Result<Stored, Error> {
    let mut refs: Vec<(&str, String)> = Vec::new();
    for (name, value) in params {
        if !at_least(value, SHARED_BYTES) {
            continue;
        }
        let key = (attempt, name.clone());
        let known = fresh
            .find(&key, value)
            .map(str::to_owned)
            .or_else(|| cache.digest_of(&key, value));
        let digest = match known {
            Some(d) => d,
            None => {
                let text = serde_json::to_string(value).map_err(|source| Error::Json {
                    what: "run param value",
                    source,
                })?;
                let digest = digest_hex(&text);
                super::exec(
                    tx,
                    "store_run_value",
                    "INSERT OR IGNORE INTO run_values (attempt_id, digest, json) \
                     VALUES (?1, ?2, ?3)",
                    rusqlite::params![attempt, digest, text],
                )?;
                fresh.0.insert(key, (value.clone(), digest.clone()));
                digest
            }
        };
        refs.push((name.as_str(), digest));
    }
    let params = inline_text(params, &refs)?;
    let refs = if refs.is_empty() {
        None
    } else {
        let map: serde_json::Map<String, Json> = refs
            .into_iter()
            .map(|(k, d)| (k.to_owned(), Json::String(d)))
            .collect();
        Some(Json::Object(map).to_string())
    };
    Ok(Stored { params, refs })
}

/// The params as JSON with the referenced keys' values written as `null` (in their place, so
/// the order of the keys is kept).
fn inline_text(
    params: &serde_json::Map<String, Json>,
    refs: &[(&str, String)],
) -> Result<String, Error> {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::new(&mut out);
    let json_err = |source| Error::Json {
        what: "run params",
        source,
    };
    let mut map = ser.serialize_map(Some(params.len())).map_err(json_err)?;
    for (k, v) in params {
        if refs.iter().any(|(r, _)| *r == k) {
            map.serialize_entry(k, &Json::Null).map_err(json_err)?;
        } else {
            map.serialize_entry(k, v).map_err(json_err)?;
        }
    }
    map.end().map_err(json_err)?;
    // serde_json writes UTF-8 only.
    Ok(String::from_utf8(out).unwrap_or_default())
}

/// A run row's params as the run saw them: `params` with each value named by `refs` put back
/// from `run_values`. `None` stays `None`.
pub fn expand(
    tx: &Tx<'_>,
    attempt: i64,
    params: Option<String>,
    refs: Option<&str>,
) -> Result<Option<String>, Error> {
    let (Some(params), Some(refs)) = (params.as_deref(), refs) else {
        return Ok(params);
    };
    let corrupt = |detail: String| Error::Corrupt {
        what: "run params",
        detail,
    };
    let mut map: serde_json::Map<String, Json> =
        serde_json::from_str(params).map_err(|e| corrupt(e.to_string()))?;
    let refs: serde_json::Map<String, Json> =
        serde_json::from_str(refs).map_err(|e| corrupt(e.to_string()))?;
    let mut stmt = tx
        .prepare_cached("SELECT json FROM run_values WHERE attempt_id = ?1 AND digest = ?2")
        .map_err(sql("read_run_value"))?;
    for (key, digest) in refs {
        let Json::String(digest) = digest else {
            return Err(corrupt(format!("the reference of `{key}` is not a digest")));
        };
        let text: String = stmt
            .query_row(rusqlite::params![attempt, digest], |r| r.get(0))
            .map_err(sql("read_run_value"))?;
        let value: Json = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        map.insert(key, value);
    }
    Ok(Some(Json::Object(map).to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, crate::store::Store) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = crate::store::Store::open(&path).unwrap();
        // The attempts the tests store values for (a second connection, without foreign key
        // checks: what they would point at does not matter here).
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
        for id in [1, 7, 8] {
            raw.execute(
                "INSERT INTO attempts (id, session_id, attempt_name, revision_id, params, state, \
                 created_at) VALUES (?1, 1, ?1, 1, '{}', 'running', 'now')",
                [id],
            )
            .unwrap();
        }
        (dir, store)
    }

    /// Stores `params` for `attempt` in a transaction of its own; what it stored and wrote.
    fn store_in_tx(
        store: &crate::store::Store,
        attempt: i64,
        params: &serde_json::Map<String, Json>,
        cache: &Cache,
    ) -> (Stored, Fresh) {
        store
            .write("test", |tx| {
                let mut fresh = Fresh::default();
                let stored = super::store(tx, attempt, params, cache, &mut fresh)?;
                Ok::<_, Error>((stored, fresh))
            })
            .unwrap()
    }

    fn stored_values(store: &crate::store::Store) -> i64 {
        store
            .read("test", |tx| {
                tx.query_row("SELECT COUNT(*) FROM run_values", [], |r| r.get(0))
                    .map_err(sql("count"))
            })
            .unwrap()
    }

    #[test]
    fn the_estimate_reaches_the_limit_exactly_when_the_text_is_long() {
        let long = Json::String("x".repeat(SHARED_BYTES));
        assert!(at_least(&long, SHARED_BYTES));
        assert!(!at_least(&Json::String("short".into()), SHARED_BYTES));
        let many: Json = (0..200).map(Json::from).collect();
        assert!(at_least(&many, SHARED_BYTES));
        // Deep nesting is walked without recursion.
        let mut deep = Json::Null;
        for _ in 0..5_000 {
            deep = Json::Array(vec![deep]);
        }
        assert!(at_least(&deep, SHARED_BYTES));
        let text_len = serde_json::to_string(&many).unwrap().len();
        assert!(text_len >= SHARED_BYTES);
    }

    #[test]
    fn a_large_value_is_written_once_and_expands_back_in_place() {
        let (_dir, store) = open();
        let cache = Cache::default();
        let big = Json::String("v".repeat(4096));
        let params: serde_json::Map<String, Json> = serde_json::from_value(serde_json::json!({
            "a": 1, "blob": big, "task_name": "+wf+t"
        }))
        .unwrap();
        let mut written = Vec::new();
        for round in 0..3 {
            let (stored, fresh) = store_in_tx(&store, 7, &params, &cache);
            // Only the first run writes (and caches) the value; later ones find it cached.
            assert_eq!(fresh.is_empty(), round > 0, "round {round}");
            cache.publish(fresh);
            assert_eq!(stored.params, r#"{"a":1,"blob":null,"task_name":"+wf+t"}"#);
            written.push(stored);
        }
        assert_eq!(stored_values(&store), 1);
        let expanded = store
            .read("test", |tx| {
                expand(
                    tx,
                    7,
                    Some(written[2].params.clone()),
                    written[2].refs.as_deref(),
                )
            })
            .unwrap()
            .unwrap();
        assert_eq!(expanded, Json::Object(params.clone()).to_string());
        // Another attempt stores its own copy (gc removes an attempt's values with it).
        let (_, other) = store_in_tx(&store, 8, &params, &cache);
        assert!(!other.is_empty());
    }

    #[test]
    fn a_changed_value_under_the_same_key_is_stored_again() {
        let (_dir, store) = open();
        let cache = Cache::default();
        for n in 0..2 {
            let params: serde_json::Map<String, Json> = serde_json::from_value(
                serde_json::json!({ "blob": format!("{n}{}", "z".repeat(1000)) }),
            )
            .unwrap();
            let (_, fresh) = store_in_tx(&store, 1, &params, &cache);
            assert!(!fresh.is_empty());
            cache.publish(fresh);
        }
        assert_eq!(stored_values(&store), 2);
    }

    #[test]
    fn a_rolled_back_write_is_not_cached() {
        let (_dir, store) = open();
        let cache = Cache::default();
        let params: serde_json::Map<String, Json> =
            serde_json::from_value(serde_json::json!({ "blob": "q".repeat(2000) })).unwrap();
        let failed: Result<(), Error> = store.write("test", |tx| {
            let mut fresh = Fresh::default();
            super::store(tx, 1, &params, &cache, &mut fresh)?;
            // The caller publishes only after a commit; this transaction fails instead.
            Err(Error::Corrupt {
                what: "test",
                detail: "roll back".into(),
            })
        });
        assert!(failed.is_err());
        let (_, fresh) = store_in_tx(&store, 1, &params, &cache);
        assert!(
            !fresh.is_empty(),
            "the value is written again after the rollback"
        );
    }
}
