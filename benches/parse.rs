//! Parse + lower timings: Digdag's whole corpus and a generated 1 MB workflow.
//!
//! Files are read before timing; each round loads every text with `dig::load_source` and the
//! median of the rounds is printed. Goals: corpus < 20 ms, 1 MB < 50 ms on one core.

use spade::diag::SourceMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ROUNDS: usize = 21;

fn dig_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            dig_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "dig") {
            out.push(p);
        }
    }
}

/// A workflow of about `bytes` bytes using most of the dialect: groups, parallel, retry,
/// flow collections, block scalars, templates and comments.
fn generated(bytes: usize) -> String {
    let mut out = String::from(
        "timezone: Asia/Tokyo\nschedule:\n  daily>: 07:00:00\n_export:\n  region: us-east-1\n  limits: {max: 10, min: 1}\n\n",
    );
    let mut n = 0;
    while out.len() < bytes {
        out.push_str(&format!(
            "+group_{n}:\n  _parallel: true\n  # step {n}\n  +load_{n}:\n    sh>: ./load.sh --date ${{session_date}} --part {n}\n    _retry:\n      limit: 3\n      interval: 10s\n      interval_type: exponential\n    _env:\n      REGION: \"${{region}}\"\n  +fan_{n}:\n    for_each>: {{fruit: [apple, orange, 'kiwi'], n: [1, 2]}}\n    _do:\n      echo>: ${{fruit}} ${{n}}\n  +sql_{n}:\n    td>: |\n      SELECT count(1)\n      FROM events\n      WHERE part = {n}\n    database: analytics\n"
        ));
        n += 1;
    }
    out
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Median time to parse and lower every input (results are dropped after the clock stops).
fn time_loads(inputs: &[(PathBuf, Vec<u8>)]) -> (Duration, usize) {
    let mut times = Vec::with_capacity(ROUNDS);
    let mut errors = 0;
    for _ in 0..ROUNDS {
        let batch: Vec<(PathBuf, Vec<u8>)> = inputs.to_vec();
        let mut results = Vec::with_capacity(batch.len());
        let start = Instant::now();
        for (path, bytes) in batch {
            let mut sources = SourceMap::new();
            let dir = path.parent().unwrap_or(Path::new("")).to_path_buf();
            let loaded = spade::dig::load_source(&mut sources, &dir, &path, bytes);
            results.push((sources, loaded));
        }
        times.push(start.elapsed());
        errors = results
            .iter()
            .flat_map(|(_, (_, diags))| diags)
            .filter(|d| d.is_error())
            .count();
    }
    (median(times), errors)
}

/// Median time to parse only (no includes, no lowering).
fn time_parses(inputs: &[(PathBuf, Vec<u8>)]) -> Duration {
    let mut times = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let batch: Vec<(PathBuf, String)> = inputs
            .iter()
            .map(|(p, b)| (p.clone(), String::from_utf8_lossy(b).into_owned()))
            .collect();
        let mut results = Vec::with_capacity(batch.len());
        let start = Instant::now();
        for (path, text) in batch {
            let mut sources = SourceMap::new();
            let parsed = spade::dig::parse_document(&mut sources, path, text);
            results.push((sources, parsed));
        }
        times.push(start.elapsed());
    }
    median(times)
}

fn main() {
    let corpus_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/digdag");
    let mut files = Vec::new();
    dig_files(&corpus_dir, &mut files);
    if files.is_empty() {
        println!("corpus: skipped, {} not found", corpus_dir.display());
    } else {
        let inputs: Vec<(PathBuf, Vec<u8>)> = files
            .iter()
            .filter_map(|p| std::fs::read(p).ok().map(|b| (p.clone(), b)))
            .collect();
        let total: usize = inputs.iter().map(|(_, b)| b.len()).sum();
        let (t, errors) = time_loads(&inputs);
        let p = time_parses(&inputs);
        println!(
            "corpus: {} files, {} bytes: parse+lower median {:.2} ms, parse only {:.2} ms, over {ROUNDS} rounds ({errors} error diagnostics, from the files Digdag rejects and the param documents)",
            inputs.len(),
            total,
            t.as_secs_f64() * 1e3,
            p.as_secs_f64() * 1e3
        );
    }
    let text = generated(1 << 20);
    let inputs = vec![(PathBuf::from("generated.dig"), text.into_bytes())];
    let size = inputs[0].1.len();
    let (t, errors) = time_loads(&inputs);
    let p = time_parses(&inputs);
    assert_eq!(errors, 0, "the generated workflow must be valid");
    println!(
        "generated: {size} bytes: parse+lower median {:.2} ms ({:.1} MB/s), parse only {:.2} ms, over {ROUNDS} rounds",
        t.as_secs_f64() * 1e3,
        size as f64 / t.as_secs_f64() / 1e6,
        p.as_secs_f64() * 1e3
    );
}
