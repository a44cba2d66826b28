//! The parser never panics: every corpus file cut at every line boundary and every fourth
//! byte, and a copy with multibyte text cut inside its characters (the non-UTF-8 path), must
//! give a workflow or diagnostics.

use crate::util;
use spade::diag::SourceMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// Loads `bytes` as if it were the file at `path`; `Err` names the cut that panicked.
fn load_piece(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new(""));
    catch_unwind(AssertUnwindSafe(|| {
        let mut sources = SourceMap::new();
        let (_, diags) = spade::dig::load_source(&mut sources, dir, path, bytes.to_vec());
        // Rendering touches every span: it must not panic either.
        for d in &diags {
            let _ = d.render(&sources);
        }
    }))
    .map_err(|_| format!("{} cut at byte {}", path.display(), bytes.len()))
}

#[test]
fn corpus_prefixes_parse_or_report_never_panic() {
    let Some(shared) = util::shared() else {
        return;
    };
    let files = util::dig_files(&shared.join("corpus/digdag"));
    assert!(!files.is_empty());
    let mut panics = Vec::new();
    let mut pieces = 0usize;
    for path in &files {
        let text = std::fs::read(path).unwrap();
        // Multibyte text after every `:`, so byte cuts land inside characters.
        let mut wide = Vec::with_capacity(text.len() * 2);
        for &b in &text {
            wide.push(b);
            if b == b':' {
                wide.extend_from_slice(" é日\t".as_bytes());
            }
        }
        // Every line boundary and every fourth byte of the file; every byte in and around
        // the multibyte characters of the wide copy.
        let mut cuts: Vec<(&[u8], usize)> = Vec::new();
        for cut in 0..=text.len() {
            if cut % 4 == 0 || cut == text.len() || text.get(cut) == Some(&b'\n') {
                cuts.push((&text, cut));
            }
        }
        for cut in 0..=wide.len() {
            let near_wide = wide[cut.saturating_sub(1)..(cut + 1).min(wide.len())]
                .iter()
                .any(|b| !b.is_ascii());
            if near_wide {
                cuts.push((&wide, cut));
            }
        }
        for (source, cut) in cuts {
            pieces += 1;
            if let Err(e) = load_piece(path, &source[..cut]) {
                panics.push(e);
            }
        }
    }
    assert!(pieces > 20_000, "only {pieces} pieces");
    assert!(
        panics.is_empty(),
        "{} panics:\n{}",
        panics.len(),
        panics.join("\n")
    );
}
