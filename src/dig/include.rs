//! `!include : file.dig` keys: reads, parses and merges included files into the tree (spec 1.4).

use crate::diag::{Diagnostic, SourceMap};
use crate::dig::value::{Key, Map, Value, ValueKind};
use std::path::{Component, Path, PathBuf};

/// Replaces every `!include` key under `value` by the entries of the file it names.
///
/// `dir` is the including file's directory and `stack` the canonical paths of the files being
/// included (for cycles). Problems become diagnostics at the `!include` key.
pub(crate) fn resolve(
    sources: &mut SourceMap,
    value: Value,
    dir: &Path,
    stack: &mut Vec<PathBuf>,
    diags: &mut Vec<Diagnostic>,
) -> Value {
    let Value { kind, span } = value;
    let kind = match kind {
        ValueKind::Map(map) => ValueKind::Map(resolve_map(sources, map, dir, stack, diags)),
        ValueKind::Seq(items) => ValueKind::Seq(
            items
                .into_iter()
                .map(|v| resolve(sources, v, dir, stack, diags))
                .collect(),
        ),
        other => other,
    };
    Value { kind, span }
}

fn resolve_map(
    sources: &mut SourceMap,
    map: Map,
    dir: &Path,
    stack: &mut Vec<PathBuf>,
    diags: &mut Vec<Diagnostic>,
) -> Map {
    let mut out = Map::default();
    out.entries.reserve(map.entries.len());
    // Keys are unique until an include adds some, so only then must a key look for an earlier
    // one; without this a big top-level mapping costs quadratic time.
    let mut included_any = false;
    for (key, value) in map.entries {
        if key.name != "!include" {
            let value = resolve(sources, value, dir, stack, diags);
            // A key after an include replaces what the include gave it.
            let slot = if included_any {
                out.entries.iter_mut().find(|(k, _)| k.name == key.name)
            } else {
                None
            };
            match slot {
                Some(slot) => slot.1 = value,
                None => out.entries.push((key, value)),
            }
            continue;
        }
        if let Some(included) = include(sources, &key, &value, dir, stack, diags) {
            included_any = true;
            for (k, v) in included.entries {
                merge(&mut out, k, v);
            }
        }
    }
    out
}

/// Included values win; two mappings are merged key by key.
fn merge(into: &mut Map, key: Key, value: Value) {
    let Some(slot) = into.entries.iter_mut().find(|(k, _)| k.name == key.name) else {
        into.entries.push((key, value));
        return;
    };
    match (&mut slot.1.kind, value.kind) {
        (ValueKind::Map(existing), ValueKind::Map(new)) => {
            for (k, v) in new.entries {
                merge(existing, k, v);
            }
        }
        (_, kind) => {
            slot.1 = Value {
                kind,
                span: value.span,
            }
        }
    }
}

fn include(
    sources: &mut SourceMap,
    key: &Key,
    value: &Value,
    dir: &Path,
    stack: &mut Vec<PathBuf>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Map> {
    let Some(name) = value
        .as_template()
        .filter(|t| !t.has_expr())
        .map(|t| t.raw.clone())
    else {
        diags.push(
            Diagnostic::error(key.span, "`!include` needs a file name")
                .with_help("write `!include : file.dig`; the name cannot use `${...}`"),
        );
        return None;
    };
    let rel = Path::new(&name);
    if rel.components().any(|c| {
        matches!(
            c,
            Component::ParentDir | Component::RootDir | Component::Prefix(_)
        )
    }) {
        diags.push(
            Diagnostic::error(key.span, format!("`!include` path `{name}` leaves the including file's directory"))
                .with_help("include files from the same directory or below it: the path must be relative and must not contain `..`"),
        );
        return None;
    }
    let path = dir.join(rel);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            let why = if e.kind() == std::io::ErrorKind::NotFound {
                "file not found".to_string()
            } else {
                e.to_string()
            };
            diags.push(
                Diagnostic::error(key.span, format!("cannot include `{name}`: {why}")).with_help(
                    format!(
                    "looked for `{}`; include paths are relative to the including file's directory",
                    path.display()
                ),
                ),
            );
            return None;
        }
    };
    let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
    if let Some(pos) = stack.iter().position(|p| *p == canonical) {
        let chain: Vec<String> = stack[pos..]
            .iter()
            .chain(std::iter::once(&canonical))
            .map(|p| {
                p.file_name().map_or_else(
                    || p.display().to_string(),
                    |f| f.to_string_lossy().into_owned(),
                )
            })
            .collect();
        diags.push(
            Diagnostic::error(
                key.span,
                format!("`!include` cycle: {}", chain.join(" -> ")),
            )
            .with_help("remove one of the includes so that no file includes itself"),
        );
        return None;
    }
    let shown = path.clone();
    let parsed = match super::parse_bytes(sources, shown, bytes) {
        Ok(v) => v,
        Err(mut d) => {
            diags.append(&mut d);
            return None;
        }
    };
    let Some(root) = parsed else {
        diags.push(Diagnostic::error(
            key.span,
            format!("`!include` file `{name}` is empty; it must be a mapping"),
        ));
        return None;
    };
    if root.as_map().is_none() {
        diags.push(Diagnostic::error(
            root.span,
            "an included file must be a mapping of keys",
        ));
        return None;
    }
    stack.push(canonical);
    let sub_dir = path
        .parent()
        .map_or_else(|| dir.to_path_buf(), Path::to_path_buf);
    let resolved = resolve(sources, root, &sub_dir, stack, diags);
    stack.pop();
    match resolved.kind {
        ValueKind::Map(m) => Some(m),
        _ => None,
    }
}
