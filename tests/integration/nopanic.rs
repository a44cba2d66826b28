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

/// Inputs nested far past `dig::MAX_DEPTH`, each of which once overflowed the stack and
/// aborted `spade check` and `spade run` (SIGABRT, exit 134), with the message each must get.
fn too_deep_inputs() -> Vec<(&'static str, String, &'static str)> {
    let deep = "too deeply nested";
    let half = 300;
    vec![
        (
            "tasks nested 300 levels (within the YAML limit, past the task limit)",
            nested_tasks(300, "echo>: hi"),
            "more than the limit of 100",
        ),
        (
            "flow sequences, 12,500 levels in 25 KB",
            format!("v: {}{}\n", "[".repeat(12_500), "]".repeat(12_500)),
            deep,
        ),
        (
            "flow mappings",
            format!("v: {}1{}\n", "{a: ".repeat(12_500), "}".repeat(12_500)),
            deep,
        ),
        (
            "one-entry mappings in flow sequences",
            format!("v: {}x{}\n", "[k: ".repeat(6_000), "]".repeat(6_000)),
            deep,
        ),
        (
            "block sequences on one line",
            format!("v:\n{}x\n", "- ".repeat(12_500)),
            deep,
        ),
        (
            "block mappings",
            (0..600)
                .map(|i| format!("{}a{i}:\n", " ".repeat(i)))
                .collect(),
            deep,
        ),
        (
            "an alias of a deep value used deep down",
            format!(
                "_export:\n  a: &a {}{}\n  b: {}*a{}\n",
                "[".repeat(half),
                "]".repeat(half),
                "[".repeat(half),
                "]".repeat(half)
            ),
            "the value of `*a` would reach level 602",
        ),
        (
            "an alias bomb",
            (0..9).fold(
                "_export:\n  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n".to_string(),
                |text, i| {
                    let items = vec![format!("*l{i}"); 9].join(", ");
                    format!("{text}  l{}: &l{} [{items}]\n", i + 1, i + 1)
                },
            ),
            "copy more than 100000 nodes",
        ),
    ]
}

/// Nested exactly to the limit in each way: these load, lower and convert to JSON.
fn deepest_valid_input() -> String {
    // The root mapping and `_export` are the first two levels.
    let flow = MAX_DEPTH - 2;
    let block: String = (0..MAX_DEPTH - 2)
        .map(|i| format!("{}b{i}:\n", " ".repeat(i + 4)))
        .collect();
    let half = 250;
    format!(
        "_export:\n  flow: {}{}\n  block:\n{block}{}x\n  anchored: &a {}{}\n  copied: {}*a{}\n+a:\n  echo>: hi\n",
        "[".repeat(flow),
        "]".repeat(flow),
        " ".repeat(MAX_DEPTH + 2),
        "[".repeat(half),
        "]".repeat(half),
        "[".repeat(half),
        "]".repeat(half),
    )
}

use spade::dig::{MAX_DEPTH, MAX_TASK_DEPTH};

/// `levels` groups nested one in another, the innermost holding `body`.
fn nested_tasks(levels: usize, body: &str) -> String {
    let mut text: String = (0..levels)
        .map(|i| format!("{}+t{}:\n", "  ".repeat(i), i + 1))
        .collect();
    text.push_str(&format!("{}{body}\n", "  ".repeat(levels)));
    text
}

/// `spade run` with a 2 MiB stack in a fresh project holding `text` as `w.dig`.
fn run_on_small_stack(text: &str) -> (std::process::Output, String, String) {
    let tmp = tempfile::tempdir().expect("a temp dir");
    std::fs::write(tmp.path().join("w.dig"), text).expect("the file is written");
    let check = spade_on_small_stack(tmp.path(), &["check", "w.dig"]);
    assert!(check.status.success(), "check: {:?}", check.status);
    let out = spade_on_small_stack(tmp.path(), &["run", "w.dig", "--db", "db.sqlite"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

/// What `spade check` accepts runs: nesting at every limit survives the store, whose JSON
/// reader once stopped at serde_json's 128 levels ("corrupt task definition in the database:
/// recursion limit exceeded" on every run of a file nested 40 levels deep).
#[test]
fn nesting_up_to_the_limits_runs_on_a_small_stack() {
    let mut text = deepest_valid_input();
    text.push_str("+b:\n  echo>: ${flow.length} ${Object.keys(block).length}\n");
    let (out, stdout, stderr) = run_on_small_stack(&text);
    assert!(out.status.success(), "{:?}\n{stderr}", out.status);
    assert!(stdout.contains("1 1"), "{stdout}");
    let (out, stdout, stderr) = run_on_small_stack(&nested_tasks(MAX_TASK_DEPTH, "echo>: deepest"));
    assert!(out.status.success(), "{:?}\n{stderr}", out.status);
    assert!(stdout.contains("deepest"), "{stdout}");
}

/// `.inf`, `.nan` and `1e400` (a float past `f64`, which SnakeYAML reads as infinity) pass
/// `check`, so they must run: they once failed every run with "corrupt task definition in the
/// database" (JSON has no infinity; serde_json wrote null). A task reads them as Digdag's
/// does, as the strings Jackson quotes them to.
#[test]
fn infinities_and_nan_run_as_digdag_reads_them() {
    let text = "_export:\n  a: .inf\n  b: -.Inf\n  c: .NaN\n  d: 1e400\n  e: [.inf]\n+p:\n  echo>: ${a} ${b} ${c} ${d} ${JSON.stringify(e)} ${typeof a}\n";
    let (out, stdout, stderr) = run_on_small_stack(text);
    assert!(out.status.success(), "{:?}\n{stderr}", out.status);
    assert!(
        stdout.contains(r#"Infinity -Infinity NaN Infinity ["Infinity"] string"#),
        "{stdout}"
    );
}

/// Whether `text` has a `FILE:LINE:COL: ` location for a file named `file`.
fn has_location(text: &str, file: &str) -> bool {
    text.match_indices(&format!("{file}:")).any(|(i, m)| {
        let mut parts = text[i + m.len()..].splitn(3, ':');
        let number = |p: Option<&str>| {
            p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        };
        number(parts.next())
            && number(parts.next())
            && parts.next().is_some_and(|r| r.starts_with(' '))
    })
}

/// Runs `f` on a thread with a 2 MiB stack, the size of a test thread or a tokio worker.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .expect("a thread starts")
        .join()
        .expect("the thread's checks pass");
}

/// The real binary with a 2 MiB main-thread stack (`ulimit -s`), as small as any thread spade
/// parses on, so what passes here passes everywhere.
fn spade_on_small_stack(dir: &Path, args: &[&str]) -> std::process::Output {
    #[allow(clippy::disallowed_methods)] // a shell lowers the stack limit, then execs spade
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -s 2048 && exec \"$0\" \"$@\"")
        .arg(util::spade_bin())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("sh runs");
    out
}

#[test]
fn deep_nesting_is_an_error_in_check_and_run_never_a_stack_overflow() {
    for (what, text, message) in too_deep_inputs() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("deep.dig"), &text).unwrap();
        for args in [
            &["check", "deep.dig"][..],
            &["run", "deep.dig", "--db", "db.sqlite"],
        ] {
            let out = spade_on_small_stack(tmp.path(), args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                matches!(out.status.code(), Some(1 | 2)),
                "{what}: `spade {}` exited with {:?}\n{}",
                args[0],
                out.status,
                &stderr[..stderr.len().min(2000)]
            );
            assert!(
                has_location(&stderr, "deep.dig"),
                "{what}: `spade {}`: no location: {}",
                args[0],
                &stderr[..stderr.len().min(2000)]
            );
            assert!(
                stderr.contains(message),
                "{what}: `spade {}`: {}",
                args[0],
                &stderr[..stderr.len().min(2000)]
            );
        }
    }
}

#[test]
fn deep_nesting_is_an_error_on_a_small_stack_in_process() {
    on_small_stack(|| {
        for (what, text, message) in too_deep_inputs() {
            let mut sources = SourceMap::new();
            let path = Path::new("deep.dig");
            let (workflow, diags) =
                spade::dig::load_source(&mut sources, Path::new(""), path, text.into_bytes());
            assert!(workflow.is_none(), "{what}");
            assert!(
                diags[0].message.contains(message),
                "{what}: {}",
                diags[0].message
            );
        }
    });
}

#[test]
fn nesting_up_to_the_limit_loads_lowers_and_converts_on_a_small_stack() {
    let text = deepest_valid_input();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("max.dig"), &text).unwrap();
    let out = spade_on_small_stack(tmp.path(), &["check", "max.dig"]);
    assert!(out.status.success(), "{:?}", out.status);
    on_small_stack(move || {
        let mut sources = SourceMap::new();
        let (workflow, diags) = spade::dig::load_source(
            &mut sources,
            Path::new(""),
            Path::new("max.dig"),
            text.clone().into_bytes(),
        );
        assert!(workflow.is_some() && diags.is_empty(), "{diags:?}");
        let value = spade::dig::parse_document(&mut sources, "max.dig".into(), text).unwrap();
        let json = serde_json::to_string(&value.to_json_raw()).unwrap();
        assert!(json.contains(&format!("{}]", "[".repeat(MAX_DEPTH - 2))));
    });
}

#[test]
fn includes_count_their_depth_and_their_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("inc")).unwrap();
    // A mapping 300 levels deep that includes a file nested 300 levels more.
    let levels = 300;
    std::fs::write(
        dir.join("deep.dig"),
        format!(
            "_export: {}{{!include : inc/leaf.dig}}{}\n+a:\n  echo>: a\n",
            "{a: ".repeat(levels),
            "}".repeat(levels)
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("inc/leaf.dig"),
        format!("w: {}{}\n", "[".repeat(levels), "]".repeat(levels)),
    )
    .unwrap();
    // A chain of includes longer than the limit: each file includes the next.
    std::fs::write(
        dir.join("chain.dig"),
        "!include : inc/f1.dig\n+a:\n  echo>: a\n",
    )
    .unwrap();
    for i in 1..=MAX_DEPTH + 10 {
        std::fs::write(
            dir.join(format!("inc/f{i}.dig")),
            format!("!include : f{}.dig\n", i + 1),
        )
        .unwrap();
    }
    std::fs::write(
        dir.join(format!("inc/f{}.dig", MAX_DEPTH + 11)),
        "+z:\n  echo>: z\n",
    )
    .unwrap();
    for (file, message) in [
        ("deep.dig", "inc/leaf.dig:1:"),
        ("chain.dig", "`!include` nested more than 512 files deep"),
    ] {
        let out = spade_on_small_stack(dir, &["check", file]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{file}: {stderr}");
        assert!(stderr.contains(message), "{file}: {stderr}");
    }
    let out = spade_on_small_stack(dir, &["check", "deep.dig"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("too deeply nested") && stderr.contains("included at level 301"),
        "{stderr}"
    );
}
