//! Tidy checks (rust-analyzer style): module docs, the pure-core layering, forbidden words.

use crate::util;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn sources(sub: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(&util::root().join(sub), &mut files);
    files.sort();
    files
}

#[test]
fn every_source_file_starts_with_a_module_doc() {
    let missing: Vec<_> = sources("src")
        .into_iter()
        .filter(|p| {
            !std::fs::read_to_string(p)
                .unwrap()
                .trim_start()
                .starts_with("//!")
        })
        .collect();
    assert!(
        missing.is_empty(),
        "files without a `//!` line: {missing:?}"
    );
}

#[test]
fn pure_core_does_no_io() {
    let root = util::root().join("src");
    let mut files = sources("src/dig");
    files.extend(sources("src/expr"));
    files.push(root.join("schedule.rs"));
    files.push(root.join("catchup.rs"));
    files.push(root.join("diag.rs"));
    let mut offenders = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        for needle in ["tokio::", "rusqlite::", "std::process"] {
            if text.contains(needle) {
                offenders.push(format!("{} uses {needle}", path.display()));
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
}

#[test]
fn no_forbidden_words() {
    // Spelled in pieces so this file does not match itself.
    let words = [
        concat!("dbg", "!("),
        concat!("todo", "!("),
        concat!("unimplemented", "!("),
        concat!("FIX", "ME"),
    ];
    let mut files = sources("src");
    files.extend(sources("tests"));
    files.extend(sources("benches"));
    let mut offenders = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        for word in words {
            if text.contains(word) {
                offenders.push(format!("{}: {word}", path.display()));
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
}

#[test]
fn state_transitions_have_no_wildcard_arms() {
    let path = util::root().join("src/engine/state.rs");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return;
    };
    let offenders: Vec<_> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| {
            let l = l.trim_start();
            l.starts_with("_ =>") || l.contains(", _)") || l.contains("(_,")
        })
        .map(|(i, l)| format!("{}: {l}", i + 1))
        .collect();
    assert!(
        offenders.is_empty(),
        "wildcard arms in engine/state.rs: {offenders:#?}"
    );
}
