//! `!include : file.dig` keys: reads, parses and merges included files into the tree (spec 1.4).

use crate::diag::{Diagnostic, SourceMap};
use crate::dig::anchor::AliasUse;
use crate::dig::syntax::MAX_DEPTH;
use crate::dig::value::{Key, Map, Value, ValueKind};
use std::path::{Component, Path, PathBuf};

/// What resolving the includes of one workflow file collects.
pub(crate) struct Includes<'s> {
    pub sources: &'s mut SourceMap,
    /// The canonical paths of the files being included, outermost first (for cycles).
    pub stack: Vec<PathBuf>,
    pub diags: Vec<Diagnostic>,
    /// The aliases expanded in included files.
    pub aliases: Vec<AliasUse>,
}

/// Replaces every `!include` key under `value` by the entries of the file it names.
///
/// `dir` is the including file's directory and `depth` the number of collections around
/// `value`, so an included file's nesting counts from where it lands. Problems become
/// diagnostics at the `!include` key.
pub(crate) fn resolve(cx: &mut Includes<'_>, mut value: Value, dir: &Path, depth: usize) -> Value {
    // In place, and with the work in helpers: each nested collection and each file of a
    // chain of includes costs a frame of this and one of `resolve_map` (see `MAX_DEPTH`).
    match &mut value.kind {
        ValueKind::Map(map) => resolve_map(cx, map, dir, depth + 1),
        ValueKind::Seq(items) => {
            for item in std::mem::take(items) {
                let item = resolve(cx, item, dir, depth + 1);
                items.push(item);
            }
        }
        _ => {}
    }
    value
}

/// `level`: the mapping's own level (the root mapping is 1).
fn resolve_map(cx: &mut Includes<'_>, map: &mut Map, dir: &Path, level: usize) {
    let entries = std::mem::take(&mut map.entries);
    map.entries.reserve(entries.len());
    // Keys are unique until an include adds some, so only then must a key look for an earlier
    // one; without this a big top-level mapping costs quadratic time.
    let mut included_any = false;
    for (key, value) in entries {
        if key.name != "!include" {
            let value = resolve(cx, value, dir, level);
            // A key after an include replaces what the include gave it.
            let slot = if included_any {
                map.entries.iter_mut().find(|(k, _)| k.name == key.name)
            } else {
                None
            };
            match slot {
                Some(slot) => slot.1 = value,
                None => map.entries.push((key, value)),
            }
            continue;
        }
        // The file is read and parsed in `include`, and its own includes resolved here, so
        // a chain of files recurses through small frames only.
        let Some(file) = include(cx, &key, &value, dir, level) else {
            continue;
        };
        let Included {
            root,
            canonical,
            dir: file_dir,
            base_depth,
        } = *file;
        cx.stack.push(canonical);
        let resolved = resolve(cx, root, &file_dir, base_depth);
        cx.stack.pop();
        if let ValueKind::Map(included) = resolved.kind {
            included_any = true;
            for (k, v) in included.entries {
                merge(map, k, v);
            }
        }
    }
}

/// A file an `!include` names, parsed, with its own includes still to resolve.
struct Included {
    root: Value,
    canonical: PathBuf,
    /// Its directory, which its includes are relative to.
    dir: PathBuf,
    /// The collections around its root mapping once spliced in.
    base_depth: usize,
}

/// Included values win; two mappings are merged key by key. The recursion is bounded: both
/// trees are at most `MAX_DEPTH` deep.
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

/// The file an `!include` key in a mapping at `level` names, read and parsed.
fn include(
    cx: &mut Includes<'_>,
    key: &Key,
    value: &Value,
    dir: &Path,
    level: usize,
) -> Option<Box<Included>> {
    let Some(name) = value
        .as_template()
        .filter(|t| !t.has_expr())
        .map(|t| t.raw.clone())
    else {
        cx.diags.push(
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
        cx.diags.push(
            Diagnostic::error(key.span, format!("`!include` path `{name}` leaves the including file's directory"))
                .with_help("include files from the same directory or below it: the path must be relative and must not contain `..`"),
        );
        return None;
    }
    // Each file included from an included file is one more level of recursion here.
    if cx.stack.len() >= MAX_DEPTH {
        cx.diags.push(
            Diagnostic::error(
                key.span,
                format!("`!include` nested more than {MAX_DEPTH} files deep"),
            )
            .with_help(
                "include the files from fewer levels: each included file here includes the next",
            ),
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
            cx.diags.push(
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
    if let Some(pos) = cx.stack.iter().position(|p| *p == canonical) {
        let chain: Vec<String> = cx.stack[pos..]
            .iter()
            .chain(std::iter::once(&canonical))
            .map(|p| {
                p.file_name().map_or_else(
                    || p.display().to_string(),
                    |f| f.to_string_lossy().into_owned(),
                )
            })
            .collect();
        cx.diags.push(
            Diagnostic::error(
                key.span,
                format!("`!include` cycle: {}", chain.join(" -> ")),
            )
            .with_help("remove one of the includes so that no file includes itself"),
        );
        return None;
    }
    // The included root mapping is spliced into this one, at its level.
    let base_depth = level.saturating_sub(1);
    let parsed = match super::parse_bytes(cx.sources, path.clone(), bytes, base_depth) {
        Ok(parsed) => parsed,
        Err(mut d) => {
            cx.diags.append(&mut d);
            return None;
        }
    };
    cx.aliases.extend(parsed.aliases);
    let Some(root) = parsed.value else {
        cx.diags.push(Diagnostic::error(
            key.span,
            format!("`!include` file `{name}` is empty; it must be a mapping"),
        ));
        return None;
    };
    if root.as_map().is_none() {
        cx.diags.push(Diagnostic::error(
            root.span,
            "an included file must be a mapping of keys",
        ));
        return None;
    }
    let sub_dir = path
        .parent()
        .map_or_else(|| dir.to_path_buf(), Path::to_path_buf);
    Some(Box::new(Included {
        root,
        canonical,
        dir: sub_dir,
        base_depth,
    }))
}
