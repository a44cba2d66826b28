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
pub(crate) fn spade() -> std::process::Command {
    #[allow(clippy::disallowed_methods)] // tests run the real binary directly
    std::process::Command::new(spade_bin())
}
