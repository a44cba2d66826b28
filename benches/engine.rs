//! Engine benchmarks of the release binary, printed as ratios measured in one run.
//!
//! Cases (issue 5 and issue 10 goals in brackets):
//! - `sh-chain`: a 1,000-task `sh>: true` chain against 1,000 `/bin/sh -c true` spawned from
//!   this process (the spawn floor) [< 1.5x];
//! - `echo-wide`: 1,000 `echo>` tasks in one `_parallel` group, with its peak RSS [< 500 ms];
//! - `retry`: a whole `spade run` of one `sh>` that fails twice under `_retry: 2` [< 50 ms];
//! - `nop-wide-N`: `_parallel` groups of 1,000, 2,000 and 4,000 `nop>` tasks [4,000 within 1.2x
//!   of 1,000 per task];
//! - `nop-chain`, `nop-chain-1kb`, `nop-chain-deep`: 1,000 sequential `nop>` tasks, bare, with a
//!   1 KB param each, and nested 40 groups deep [each within 1.2x of the bare chain per task];
//! - `nop-chain-export-100kb`, `sh-chain-export-100kb`: the chains under a root `_export` of
//!   100 KB, which every task inherits [within 1.2x of the bare chain: stored once, not per run];
//! - the whole-process cost per `nop>` task of the wide and chain cases [< 0.1 ms];
//! - `for-each-10k`: a `for_each>` over 10,000 values with an `echo>` each [< 2 s, < 100 MB];
//!   `for-each-10k-file`: the same with `append_file:`, so each child writes a file (not inline:
//!   `operators::inline`) and the output is checked line by line.
//!
//! `SPADE_BENCH_BIN` replaces the binary under test; `SPADE_BENCH_BASELINE` (or its older name
//! `SPADE_BENCH_BEFORE`) names an older build that runs every case too, interleaved round by
//! round with the current one, so before and after are measured in one sitting and printed
//! side by side with their ratios. `SPADE_BENCH_ROUNDS` (default 3) sets the rounds.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // a benchmark driver, not library code

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test: `SPADE_BENCH_BIN`, or the one this benchmark was built with.
fn current_bin() -> OsString {
    std::env::var_os("SPADE_BENCH_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_spade").into())
}

/// One finished `spade run`.
#[derive(Clone, Copy)]
struct Ran {
    took: Duration,
    /// Peak resident set of that process alone, in KiB.
    rss_kib: i64,
    ok: bool,
}

/// Runs `spade run WORKFLOW` in `project` and measures that one child.
// The child is reaped by `wait4` (for its own rusage), not by `Child::wait`.
#[allow(clippy::zombie_processes)]
fn spade(bin: &OsString, project: &Path, workflow: &str) -> Ran {
    let start = Instant::now();
    let child = Command::new(bin)
        .args(["run", workflow, "--session", "2026-01-01", "--project"])
        .arg(project)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (code, rss_kib) = wait_with_rusage(child.id());
    Ran {
        took: start.elapsed(),
        rss_kib,
        ok: code == 0,
    }
}

/// Waits for one child and returns its exit status and peak RSS (`wait4`), so each case's
/// memory is its own and not the maximum over every child so far.
fn wait_with_rusage(pid: u32) -> (i32, i64) {
    let mut status: libc::c_int = 0;
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    #[allow(unsafe_code)]
    // SAFETY: `wait4` writes one status and one rusage into the pointers it is given, which are
    // valid and aligned for those types; the rusage is read only after the call succeeded.
    let usage = unsafe {
        let pid = libc::pid_t::try_from(pid).unwrap();
        if libc::wait4(pid, &mut status, 0, usage.as_mut_ptr()) != pid {
            return (-1, -1);
        }
        usage.assume_init()
    };
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (code, usage.ru_maxrss)
}

fn project(name: &str, text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(format!("{name}.dig")), text).unwrap();
    dir
}

/// One workflow measured on fresh projects, `rounds` times per binary.
struct Case {
    name: &'static str,
    workflow: String,
    /// Tasks it runs, for per-task figures.
    tasks: usize,
    /// Checks the project after a successful run (side effects happened exactly as expected).
    verify: fn(&Path) -> bool,
}

fn no_check(_: &Path) -> bool {
    true
}

fn wide(n: usize, op: &str) -> String {
    let mut text = String::from("+wide:\n  _parallel: true\n");
    for i in 0..n {
        let _ = writeln!(text, "  +t{i:05}:\n    {op}");
    }
    text
}

fn chain(n: usize, indent: &str, task: impl Fn(usize) -> String) -> String {
    let mut text = String::new();
    for i in 0..n {
        let _ = writeln!(text, "{indent}+t{i:05}:\n{indent}  {}", task(i));
    }
    text
}

/// `body` under a root `_export` of a 100 KB value, which every task inherits.
fn under_100kb_export(body: &str) -> String {
    format!("_export:\n  blob: {}\n{body}", "x".repeat(100 * 1024))
}

fn cases() -> Vec<Case> {
    let kb = "x".repeat(1024);
    let depth = 40;
    let mut deep = String::new();
    for d in 0..depth {
        let _ = writeln!(deep, "{}+d{d}:", "  ".repeat(d));
        if d == 0 {
            deep.push_str("  _export: {k: v}\n");
        }
    }
    deep.push_str(&chain(1000, &"  ".repeat(depth), |_| "nop>:".into()));
    let mut values = String::new();
    for i in 0..10_000 {
        let _ = write!(values, "{}{i}", if i == 0 { "" } else { ", " });
    }
    let for_each = |extra: &str| {
        format!("+fan:\n  for_each>:\n    v: [{values}]\n  _do:\n    echo>: ${{v}}\n{extra}")
    };
    vec![
        Case {
            name: "nop-wide-1000",
            workflow: wide(1000, "nop>:"),
            tasks: 1000,
            verify: no_check,
        },
        Case {
            name: "nop-wide-2000",
            workflow: wide(2000, "nop>:"),
            tasks: 2000,
            verify: no_check,
        },
        Case {
            name: "nop-wide-4000",
            workflow: wide(4000, "nop>:"),
            tasks: 4000,
            verify: no_check,
        },
        Case {
            name: "nop-chain",
            workflow: chain(1000, "", |_| "nop>:".into()),
            tasks: 1000,
            verify: no_check,
        },
        Case {
            name: "nop-chain-1kb",
            workflow: chain(1000, "", |_| format!("nop>:\n  blob: {kb}")),
            tasks: 1000,
            verify: no_check,
        },
        Case {
            name: "nop-chain-export-100kb",
            workflow: under_100kb_export(&chain(1000, "", |_| "nop>:".into())),
            tasks: 1000,
            verify: no_check,
        },
        Case {
            name: "nop-chain-deep",
            workflow: deep,
            tasks: 1000,
            verify: no_check,
        },
        Case {
            name: "nop-one",
            workflow: "+t:\n  nop>:\n".into(),
            tasks: 1,
            verify: no_check,
        },
        Case {
            name: "sh-chain",
            workflow: chain(1000, "", |_| "sh>: \"true\"".into()),
            tasks: 1000,
            verify: no_check,
        },
        Case {
            name: "sh-chain-export-100kb",
            workflow: under_100kb_export(&chain(1000, "", |_| "sh>: \"true\"".into())),
            tasks: 1000,
            verify: no_check,
        },
        Case {
            name: "echo-wide",
            workflow: wide(1000, "echo>: e"),
            tasks: 1000,
            verify: no_check,
        },
        Case {
            name: "retry",
            workflow: "+flaky:\n  _retry: 2\n  sh>: n=$(cat n 2>/dev/null || echo 0); n=$((n+1)); echo $n > n; [ $n -ge 3 ]\n".into(),
            tasks: 1,
            verify: |dir| {
                std::fs::read_to_string(dir.join("n")).is_ok_and(|n| n.trim() == "3")
            },
        },
        Case {
            name: "for-each-10k",
            workflow: for_each(""),
            tasks: 10_000,
            verify: no_check,
        },
        Case {
            name: "for-each-10k-file",
            workflow: for_each("    append_file: out\n"),
            tasks: 10_000,
            verify: |dir| {
                std::fs::read_to_string(dir.join("out")).is_ok_and(|o| o.len() == 38_890)
            },
        },
    ]
}

/// The medians of one case for one binary (`None` when a run failed).
#[derive(Clone, Copy)]
struct Figures {
    took: Duration,
    rss_kib: i64,
}

fn measure(bin: &OsString, case: &Case) -> Option<Ran> {
    let dir = project("wf", &case.workflow);
    let ran = spade(bin, dir.path(), "wf");
    (ran.ok && (case.verify)(dir.path())).then_some(ran)
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn spawn_floor(n: usize) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        let status = Command::new("/bin/sh")
            .args(["-c", "true"])
            .status()
            .unwrap();
        assert!(status.success());
    }
    start.elapsed()
}

fn main() {
    let rounds: usize = std::env::var("SPADE_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let mut bins = vec![("after", current_bin())];
    if let Some(before) =
        std::env::var_os("SPADE_BENCH_BASELINE").or_else(|| std::env::var_os("SPADE_BENCH_BEFORE"))
    {
        bins.insert(0, ("before", before));
    }
    let cases = cases();
    // results[bin][case] = runs
    let mut runs: Vec<Vec<Vec<Ran>>> = vec![vec![Vec::new(); cases.len()]; bins.len()];
    let mut failed: Vec<Vec<bool>> = vec![vec![false; cases.len()]; bins.len()];
    let mut floors = Vec::new();
    for round in 0..rounds {
        eprintln!("round {} of {rounds}", round + 1);
        floors.push(spawn_floor(1000));
        for (c, case) in cases.iter().enumerate() {
            for (b, (_, bin)) in bins.iter().enumerate() {
                if failed[b][c] {
                    continue;
                }
                match measure(bin, case) {
                    Some(ran) => runs[b][c].push(ran),
                    None => failed[b][c] = true,
                }
            }
        }
    }
    let floor = median(floors);
    let figures: Vec<Vec<Option<Figures>>> = runs
        .iter()
        .zip(&failed)
        .map(|(per_case, failed)| {
            per_case
                .iter()
                .zip(failed)
                .map(|(rs, failed)| {
                    (!failed && !rs.is_empty()).then(|| Figures {
                        took: median(rs.iter().map(|r| r.took).collect()),
                        rss_kib: rs.iter().map(|r| r.rss_kib).max().unwrap_or(-1),
                    })
                })
                .collect()
        })
        .collect();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let index = |name: &str| cases.iter().position(|c| c.name == name).unwrap();
    println!(
        "engine benchmarks, medians of {rounds} rounds; 1000 plain /bin/sh spawns: {:.0} ms",
        ms(floor)
    );
    for (b, (label, bin)) in bins.iter().enumerate() {
        println!("\n[{label}] {}", Path::new(bin).display());
        for (c, case) in cases.iter().enumerate() {
            match figures[b][c] {
                Some(f) => println!(
                    "  {:<22} {:>9.1} ms  {:>7.3} ms/task  {:>6.1} MiB peak",
                    case.name,
                    ms(f.took),
                    ms(f.took) / case.tasks as f64,
                    f.rss_kib as f64 / 1024.0
                ),
                None => println!("  {:<22} failed", case.name),
            }
        }
        let per_task = |name: &str| {
            let c = index(name);
            figures[b][c].map(|f| ms(f.took) / cases[c].tasks as f64)
        };
        let ratio = |a: &str, base: &str| match (per_task(a), per_task(base)) {
            (Some(x), Some(y)) => format!("{:.2}x", x / y),
            _ => "n/a".into(),
        };
        let took = |name: &str| figures[b][index(name)].map(|f| f.took);
        println!(
            "  sh> chain vs spawn floor: {}  [< 1.5x]",
            took("sh-chain").map_or("n/a".into(), |t| format!(
                "{:.2}x",
                t.as_secs_f64() / floor.as_secs_f64()
            ))
        );
        println!(
            "  per task, 4000 wide vs 1000 wide: {}  [< 1.2x]; 2000 vs 1000: {}",
            ratio("nop-wide-4000", "nop-wide-1000"),
            ratio("nop-wide-2000", "nop-wide-1000")
        );
        println!(
            "  per task, chain with 1 KB params vs bare: {}; 40 groups deep vs flat: {}  [< 1.2x]",
            ratio("nop-chain-1kb", "nop-chain"),
            ratio("nop-chain-deep", "nop-chain")
        );
        println!(
            "  per task, under a 100 KB root _export vs bare: nop> chain {}, sh> chain {}  [< 1.2x]",
            ratio("nop-chain-export-100kb", "nop-chain"),
            ratio("sh-chain-export-100kb", "sh-chain")
        );
        let startup = took("nop-one");
        let overhead = |name: &str| match (took(name), startup) {
            (Some(t), Some(s)) => format!(
                "{:.3} ms whole-process, {:.3} ms beyond startup",
                ms(t) / cases[index(name)].tasks as f64,
                (ms(t) - ms(s)) / cases[index(name)].tasks as f64
            ),
            _ => "n/a".into(),
        };
        println!(
            "  per nop> task: 4000 wide {}; chain {}  [< 0.1 ms]",
            overhead("nop-wide-4000"),
            overhead("nop-chain")
        );
        let whole = |name: &str| {
            figures[b][index(name)].map_or("failed".into(), |f| {
                format!(
                    "{:.0} ms, {:.1} MiB peak",
                    ms(f.took),
                    f.rss_kib as f64 / 1024.0
                )
            })
        };
        println!(
            "  for_each> over 10,000 values, an echo> each: {}  [< 2 s, < 100 MiB]; \
             each appending to a file: {}",
            whole("for-each-10k"),
            whole("for-each-10k-file")
        );
    }
    if bins.len() == 2 {
        println!("\nbefore and after, same run (ms per task; after / before):");
        println!(
            "  {:<22} {:>10} {:>10} {:>7}  {:>9} {:>9}",
            "case", "before", "after", "ratio", "MiB bef.", "MiB aft."
        );
        for (c, case) in cases.iter().enumerate() {
            match (figures[0][c], figures[1][c]) {
                (Some(before), Some(after)) => println!(
                    "  {:<22} {:>10.3} {:>10.3} {:>6.2}x  {:>9.1} {:>9.1}",
                    case.name,
                    ms(before.took) / case.tasks as f64,
                    ms(after.took) / case.tasks as f64,
                    after.took.as_secs_f64() / before.took.as_secs_f64(),
                    before.rss_kib as f64 / 1024.0,
                    after.rss_kib as f64 / 1024.0
                ),
                _ => println!("  {:<22} n/a (a build failed it)", case.name),
            }
        }
    }
}
