//! `spade run` on input the user must fix: every case exits 2 with a message saying what is
//! wrong, and leaves the database as it found it.

// Test helpers outside `#[test]` functions: a failed unwrap is a failed test here.
#![allow(clippy::unwrap_used)]

use crate::run::{Project, Ran};

fn hello() -> Project {
    let project = Project::new();
    project.write("hello.dig", "+hi:\n  echo>: hi\n");
    project
}

fn expect_usage(ran: &Ran, needle: &str) {
    ran.expect(2);
    assert!(
        ran.stderr.to_lowercase().contains(&needle.to_lowercase()),
        "stderr lacks `{needle}`:\n{}",
        ran.stderr
    );
}

#[test]
fn unknown_workflow_is_a_usage_error() {
    let project = hello();
    expect_usage(&project.run(&["nosuch"]), "unknown workflow `nosuch`");
}

#[test]
fn malformed_session_is_a_usage_error() {
    let project = hello();
    for bad in ["yesterday", "2026-13-01", "2026-01-01 25:00:00"] {
        expect_usage(
            &project.run(&["hello", "--session", bad]),
            "invalid --session",
        );
    }
    assert!(!project.path().join("out").exists());
}

#[test]
fn malformed_param_is_a_usage_error() {
    let project = hello();
    for bad in ["novalue", "=x", "a..b=c"] {
        expect_usage(&project.run(&["hello", "-p", bad]), "invalid -p");
    }
}

fn db_path(project: &Project) -> std::path::PathBuf {
    project.path().join(".spade/spade.db")
}

#[test]
fn locked_database_is_reported() {
    let project = hello();
    project.run(&["hello"]).expect(0);
    let conn = rusqlite::Connection::open(db_path(&project)).unwrap();
    conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let ran = project.run(&["hello", "--session", "2026-02-02"]);
    conn.execute_batch("ROLLBACK").unwrap();
    expect_usage(&ran, "locked");
}

#[test]
fn corrupt_database_is_reported() {
    let project = hello();
    project.write(".spade/spade.db", &"this is not sqlite\n".repeat(200));
    let ran = project.run(&["hello"]);
    expect_usage(&ran, "not a spade database");
    assert_eq!(
        std::fs::read_to_string(db_path(&project)).unwrap(),
        "this is not sqlite\n".repeat(200),
        "the corrupt file must be left alone"
    );
}

#[test]
fn newer_schema_is_reported_and_left_untouched() {
    let project = hello();
    std::fs::create_dir_all(project.path().join(".spade")).unwrap();
    {
        let conn = rusqlite::Connection::open(db_path(&project)).unwrap();
        conn.execute_batch("CREATE TABLE future (x); PRAGMA user_version = 9999;")
            .unwrap();
    }
    let ran = project.run(&["hello"]);
    expect_usage(&ran, "newer");
    let conn = rusqlite::Connection::open(db_path(&project)).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 9999);
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tables, 1, "no tables may be added to a newer database");
}

#[test]
fn unwritable_state_directory_is_reported() {
    let project = hello();
    // Root ignores permission bits, so make the directory impossible instead: its parent is a
    // regular file. For other users a read-only project directory is checked as well.
    project.write("plain-file", "");
    let db = project.path().join("plain-file/sub/spade.db");
    let ran = project.run(&["hello", "--db", db.to_str().unwrap()]);
    expect_usage(&ran, "cannot create");

    let locked = project.path().join("readonly");
    std::fs::create_dir_all(&locked).unwrap();
    std::fs::write(locked.join("hello.dig"), "+hi:\n  echo>: hi\n").unwrap();
    set_mode(&locked, 0o555);
    let is_root = std::fs::write(locked.join("probe"), "").is_ok();
    if !is_root {
        let out = crate::util::spade()
            .args(["run", "hello", "--project"])
            .arg(&locked)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("cannot"), "{stderr}");
    }
    set_mode(&locked, 0o755);
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
