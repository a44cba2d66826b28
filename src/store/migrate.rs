//! Schema migrations: `schema/NNN_name.sql` embedded at build time, applied by `user_version`.

use super::{sql, Error};
use rusqlite::{Connection, TransactionBehavior};
use std::path::Path;

/// A step in Rust after a migration's SQL, for data that SQL cannot convert.
type PostStep = fn(&rusqlite::Transaction<'_>) -> Result<(), Error>;

/// Every migration in order; migration `i` (0-based) brings the schema to version `i + 1`.
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
        "012_resume_match",
        include_str!("../../schema/012_resume_match.sql"),
        None,
    ),
];

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
    let start = usize::try_from(current).unwrap_or(0);
    for (_name, text, post) in MIGRATIONS.iter().skip(start) {
        tx.execute_batch(text).map_err(sql("apply migration"))?;
        if let Some(post) = post {
            post(&tx)?;
        }
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(sql("write user_version"))?;
    tx.commit().map_err(sql("migrate"))?;
    Ok(())
}
