//! Schema migrations: `schema/NNN_name.sql` embedded at build time, applied by `user_version`.

use super::{sql, Error};
use rusqlite::{Connection, TransactionBehavior};
use std::path::Path;

/// A step in Rust after a migration's SQL, for data that SQL cannot convert.
type PostStep = fn(&rusqlite::Transaction<'_>) -> Result<(), Error>;

/// Every migration in order; migration `i` (0-based) brings the schema to version `i + 1`.
/// The names' numbers are labels, not versions: no `010` was ever written (it was reserved for
/// work that did not need one), so `011_no_temp_tables` brings a database to version 10, and
/// `014_ui_attempts_by_state` (013 was reserved for a branch written at the same time) to 12,
/// and `015_run_values` to 13.
const MIGRATIONS: &[(&str, &str, Option<PostStep>)] = &[
    ("001_init", include_str!("../../schema/001_init.sql"), None),
    (
        "002_schedule_times",
        include_str!("../../schema/002_schedule_times.sql"),
        None,
    ),
    (
        "003_resume",
        include_str!("../../schema/003_resume.sql"),
        None,
    ),
    (
        "004_ownership_schedules",
        include_str!("../../schema/004_ownership_schedules.sql"),
        None,
    ),
    (
        "005_cancel_requested",
        include_str!("../../schema/005_cancel_requested.sql"),
        None,
    ),
    (
        "006_linear",
        include_str!("../../schema/006_linear.sql"),
        Some(split_definitions),
    ),
    (
        "007_require",
        include_str!("../../schema/007_require.sql"),
        None,
    ),
    (
        "008_audit",
        include_str!("../../schema/008_audit.sql"),
        None,
    ),
    ("009_gc", include_str!("../../schema/009_gc.sql"), None),
    (
        "011_no_temp_tables",
        include_str!("../../schema/011_no_temp_tables.sql"),
        Some(checks_without_in_lists),
    ),
    (
        "012_resume_match",
        include_str!("../../schema/012_resume_match.sql"),
        None,
    ),
    (
        "014_ui_attempts_by_state",
        include_str!("../../schema/014_ui_attempts_by_state.sql"),
        None,
    ),
    (
        "015_run_values",
        include_str!("../../schema/015_run_values.sql"),
        None,
    ),
];

/// Migration `011_no_temp_tables`: every `CHECK (column IN ('a', 'b', 'c', ...))` of more than
/// two values becomes `CHECK (column = 'a' OR column = 'b' OR ...)`, which accepts exactly the
/// same rows (NULL included) without a temporary b-tree per checked write. A CHECK changes no
/// stored byte, so the tables' schema text is edited in place (SQLite's documented
/// `writable_schema` procedure for such changes) instead of rebuilding the tables.
fn checks_without_in_lists(tx: &rusqlite::Transaction<'_>) -> Result<(), Error> {
    let tables: Vec<(String, String)> = tx
        .prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND sql IS NOT NULL")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()
        })
        .map_err(sql("read table definitions"))?;
    let changed: Vec<(String, String)> = tables
        .into_iter()
        .filter_map(|(name, text)| {
            let new = rewrite_in_checks(&text);
            (new != text).then_some((name, new))
        })
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    let version: i64 = tx
        .query_row("PRAGMA schema_version", [], |r| r.get(0))
        .map_err(sql("read schema_version"))?;
    tx.execute_batch("PRAGMA writable_schema = ON")
        .map_err(sql("rewrite checks"))?;
    for (name, text) in &changed {
        tx.execute(
            "UPDATE sqlite_schema SET sql = ?1 WHERE type = 'table' AND name = ?2",
            rusqlite::params![text, name],
        )
        .map_err(sql("rewrite checks"))?;
    }
    tx.execute_batch(&format!(
        "PRAGMA schema_version = {}; PRAGMA writable_schema = RESET;",
        version + 1
    ))
    .map_err(sql("rewrite checks"))?;
    let check: String = tx
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(sql("integrity_check"))?;
    if check != "ok" {
        return Err(Error::Corrupt {
            what: "schema after migration 011",
            detail: check,
        });
    }
    Ok(())
}

/// `CHECK (x IN ('a','b','c'))` to `CHECK (x = 'a' OR x = 'b' OR x = 'c')` wherever the list
/// has more than two plain string constants; anything else is left as it is.
fn rewrite_in_checks(text: &str) -> String {
    const OPEN: &str = "CHECK (";
    let mut out = String::with_capacity(text.len() + 256);
    let mut rest = text;
    while let Some(at) = rest.find(OPEN) {
        let (before, from) = rest.split_at(at + OPEN.len());
        out.push_str(before);
        rest = from;
        let Some(close) = from.find("))") else {
            continue;
        };
        let inner = &from[..close];
        let Some((column, list)) = inner.split_once(" IN (") else {
            continue;
        };
        let values: Vec<&str> = list.split(',').map(str::trim).collect();
        let plain = |v: &&str| {
            v.len() >= 2
                && v.starts_with('\'')
                && v.ends_with('\'')
                && !v[1..v.len() - 1].contains('\'')
        };
        let column_ok = !column.is_empty()
            && column
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if values.len() <= 2 || !column_ok || !values.iter().all(plain) {
            continue;
        }
        let terms: Vec<String> = values.iter().map(|v| format!("{column} = {v}")).collect();
        out.push_str(&terms.join(" OR "));
        out.push(')');
        rest = &from[close + 2..];
    }
    out.push_str(rest);
    out
}

/// Migration `006_linear`: every task row's nested definition becomes `task_defs` nodes, then
/// the old columns go (nothing reads them any more).
fn split_definitions(tx: &rusqlite::Transaction<'_>) -> Result<(), Error> {
    crate::engine::def::convert_legacy(tx)?;
    tx.execute_batch(
        "ALTER TABLE tasks DROP COLUMN definition; ALTER TABLE tasks DROP COLUMN export_def;",
    )
    .map_err(sql("apply migration"))
}

/// The version this binary writes and understands.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The schema at [`SCHEMA_VERSION`] as SQLite stores it after the migrations (each table's,
/// index's and trigger's `sql` in `sqlite_schema`, in creation order), which a new, empty
/// database gets in one step. The migrations' `ALTER TABLE`s each make SQLite re-read the whole
/// schema: a one-task `spade run` on a fresh project took 17.1 ms with them and 11.7 ms with
/// this (`benches/engine.rs`, `nop-one`). A test checks that this file is exactly what the
/// migrations build and rewrites it when asked (`SPADE_WRITE_SCHEMA=1`).
const CURRENT: &str = include_str!("../../schema/current.sql");

/// Applies the missing migrations in one `BEGIN IMMEDIATE` transaction, re-reading the
/// version inside it so two processes opening a fresh file cannot both migrate.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), Error> {
    let current: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sql("read user_version"))?;
    if current == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql("migrate"))?;
    let current: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sql("read user_version"))?;
    if current > SCHEMA_VERSION {
        return Err(Error::NewerSchema {
            path: path.to_owned(),
            found: current,
            known: SCHEMA_VERSION,
        });
    }
    let empty = current == 0
        && tx
            .query_row("SELECT COUNT(*) FROM sqlite_schema", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(sql("read schema"))?
            == 0;
    if empty {
        tx.execute_batch(CURRENT)
            .map_err(sql("create the current schema"))?;
    } else {
        apply_migrations(&tx, current)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(sql("write user_version"))?;
    tx.commit().map_err(sql("migrate"))?;
    Ok(())
}

/// Brings a database at version `current` to [`SCHEMA_VERSION`] through each migration.
fn apply_migrations(tx: &rusqlite::Transaction<'_>, current: i64) -> Result<(), Error> {
    let start = usize::try_from(current).unwrap_or(0);
    for (_name, text, post) in MIGRATIONS.iter().skip(start) {
        tx.execute_batch(text).map_err(sql("apply migration"))?;
        if let Some(post) = post {
            post(tx)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One object of `sqlite_schema`: type, name, table, sql.
    type SchemaRow = (String, String, String, Option<String>);

    /// The schema of a database, by name.
    fn schema_of(conn: &Connection) -> Vec<SchemaRow> {
        conn.prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY name")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// `schema/current.sql` as the migrations build it: every `sql` of `sqlite_schema` (not
    /// SQLite's own objects, which the statements create again) in creation order.
    fn dump_of_migrations() -> (String, Vec<SchemaRow>) {
        let mut conn = Connection::open_in_memory().unwrap();
        let tx = conn.transaction().unwrap();
        apply_migrations(&tx, 0).unwrap();
        tx.commit().unwrap();
        let statements: Vec<String> = conn
            .prepare(
                "SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL \
                 AND name NOT LIKE 'sqlite_%' ORDER BY rowid",
            )
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let mut text = String::from(
            "-- The schema at the newest version, as the migrations build it (generated:\n\
             -- `SPADE_WRITE_SCHEMA=1 cargo test --lib store::migrate` rewrites this file;\n\
             -- edit the numbered migrations, never this). A new, empty database is created\n\
             -- from it in one step (`src/store/migrate.rs`).\n",
        );
        for statement in statements {
            text.push_str(&statement);
            text.push_str(";\n");
        }
        (text, schema_of(&conn))
    }

    /// A fresh database made from `schema/current.sql` is exactly one made by the migrations,
    /// and a database of an older version still goes through them.
    #[test]
    fn a_fresh_database_gets_exactly_the_schema_the_migrations_build() {
        let (text, migrated) = dump_of_migrations();
        if std::env::var_os("SPADE_WRITE_SCHEMA").is_some() {
            std::fs::write(
                concat!(env!("CARGO_MANIFEST_DIR"), "/schema/current.sql"),
                &text,
            )
            .unwrap();
            // The file compiled into this test binary is the old one: check it next run.
            return;
        }
        assert!(
            CURRENT == text,
            "schema/current.sql is not what the migrations build: after changing a \
             migration, run `SPADE_WRITE_SCHEMA=1 cargo test --lib store::migrate` and \
             commit the file"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fresh.db");
        let mut conn = Connection::open(&path).unwrap();
        migrate(&mut conn, &path).unwrap();
        assert_eq!(schema_of(&conn), migrated);
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        // A database at an older version (here 1) is migrated step by step to the same.
        let path = dir.path().join("old.db");
        let mut old = Connection::open(&path).unwrap();
        old.execute_batch(MIGRATIONS[0].1).unwrap();
        old.pragma_update(None, "user_version", 1).unwrap();
        migrate(&mut old, &path).unwrap();
        assert_eq!(schema_of(&old), migrated);
    }

    #[test]
    fn in_list_checks_become_or_terms_and_short_lists_stay() {
        let text = "CREATE TABLE t (a TEXT CHECK (a IN ('x','y','z')), \
                    b TEXT CHECK (b IN ('p','q')), c INT CHECK (c > 0))";
        assert_eq!(
            rewrite_in_checks(text),
            "CREATE TABLE t (a TEXT CHECK (a = 'x' OR a = 'y' OR a = 'z'), \
             b TEXT CHECK (b IN ('p','q')), c INT CHECK (c > 0))"
        );
        let odd = "CREATE TABLE t (a TEXT CHECK (a IN ('x', 'it''s', 'z')))";
        assert_eq!(rewrite_in_checks(odd), odd);
    }

    /// A database of schema 7 (before migration 11) converts: its rows stay, the CHECKs still
    /// refuse what they refused, and a state change builds no temporary b-tree any more.
    #[test]
    fn a_schema_7_database_converts_and_state_changes_build_no_temp_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spade.db");
        {
            let mut conn = Connection::open(&path).unwrap();
            // A bare row without its attempt: this test is about the schema only.
            conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
            let tx = conn.transaction().unwrap();
            for (_, text, post) in &MIGRATIONS[..7] {
                tx.execute_batch(text).unwrap();
                if let Some(post) = post {
                    post(&tx).unwrap();
                }
            }
            tx.execute_batch(
                "PRAGMA user_version = 7; \
                 INSERT INTO tasks (attempt_id, epoch, child_index, full_name, kind, role, state, \
                   created_at, updated_at) \
                 VALUES (1, 0, 0, '+wf', 'group', 'root', 'planned', 'now', 'now');",
            )
            .unwrap();
            tx.commit().unwrap();
        }
        let store = crate::store::Store::open(&path).unwrap();
        store
            .write("test", |tx| {
                let state: String = tx
                    .query_row("SELECT state FROM tasks", [], |r| r.get(0))
                    .unwrap();
                assert_eq!(state, "planned");
                let bad = tx.execute("UPDATE tasks SET state = 'done'", []);
                assert!(bad.is_err(), "the CHECK must still refuse unknown states");
                let bad_role = tx.execute("UPDATE tasks SET role = 'boss'", []);
                assert!(bad_role.is_err());
                tx.execute("UPDATE tasks SET state = 'succeeded'", [])
                    .unwrap();
                let program: Vec<String> = tx
                    .prepare(
                        "EXPLAIN UPDATE tasks SET state = 'ready', updated_at = 'x' \
                         WHERE id = 1 AND state = 'blocked'",
                    )
                    .unwrap()
                    .query_map([], |r| r.get::<_, String>(1))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                assert!(
                    !program.iter().any(|op| op == "OpenEphemeral"),
                    "{program:?}"
                );
                let check: String = tx
                    .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                    .unwrap();
                assert_eq!(check, "ok");
                Ok::<_, Error>(())
            })
            .unwrap();
    }
}
