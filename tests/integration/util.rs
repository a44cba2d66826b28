//! Shared helpers for integration tests: paths to the binary, the shared folder and fixtures.

#![allow(dead_code)]

use std::path::PathBuf;

/// The crate root.
pub(crate) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared`, the conformance tables and corpus; `None` when missing (tests then fail under
/// `CI=true` and report a skip otherwise).
pub(crate) fn shared() -> Option<PathBuf> {
    let dir = root().join("../shared");
    if dir.join("conformance").is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "../shared is missing: CI must run with the shared folder beside the checkout"
    );
    eprintln!("skipped: ../shared not found");
    None
}

/// The path of the built `spade` binary.
pub(crate) fn spade_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_spade"))
}

/// A `Command` for the built `spade` binary: the one place integration tests create processes.
/// Daemons it starts listen on a free loopback port (tests run in parallel; the default port
/// would be taken by the first), unless a test sets `SPADE_LISTEN` or `--listen` itself.
pub(crate) fn spade() -> std::process::Command {
    #[allow(clippy::disallowed_methods)] // tests run the real binary directly
    let mut cmd = std::process::Command::new(spade_bin());
    cmd.env("SPADE_LISTEN", "127.0.0.1:0");
    cmd
}

/// Every `.dig` file under `dir`, recursively, in a stable (sorted) order.
pub(crate) fn dig_files(dir: &std::path::Path) -> Vec<PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("corpus dir is readable")
            .map(|e| e.expect("corpus entry is readable").path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "dig") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out
}
