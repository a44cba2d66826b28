//! Executor benchmarks, printed as ratios and absolute figures in one run of the release binary:
//! (a) a 1,000-task `sh>` chain against spawning `/bin/sh -c true` 1,000 times from Rust;
//! (b) 1,000 `echo>` tasks in one `_parallel` group; (c) the peak memory of (b);
//! (d) a whole `spade run` whose one `sh>` fails twice and then succeeds under `_retry: 2`.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // a benchmark driver, not library code

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test: `SPADE_BENCH_BIN` (an older build, for before/after figures measured
/// in one sitting) or the one this benchmark was built with.
fn spade_bin() -> std::ffi::OsString {
    std::env::var_os("SPADE_BENCH_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_spade").into())
}

fn spade(project: &Path, workflow: &str) -> Duration {
    let start = Instant::now();
    let status = Command::new(spade_bin())
        .args(["run", workflow, "--session", "2026-01-01", "--project"])
        .arg(project)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let took = start.elapsed();
    assert!(status.success(), "spade run {workflow} failed");
    took
}

fn project(name: &str, text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(format!("{name}.dig")), text).unwrap();
    dir
}

/// The largest resident set of any child waited for so far, in KiB.
fn children_max_rss_kib() -> i64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    #[allow(unsafe_code)]
    // SAFETY: getrusage writes one rusage into the pointer it is given, which is valid and
    // properly aligned for that type; the struct is only read after the call succeeded.
    let usage = unsafe {
        if libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) != 0 {
            return -1;
        }
        usage.assume_init()
    };
    usage.ru_maxrss
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn main() {
    // (b) and (c) first: RUSAGE_CHILDREN keeps the maximum over every child, so the wide run
    // must be the largest child measured so far.
    let mut wide = String::from("+wide:\n  _parallel: true\n");
    for i in 0..1000 {
        let _ = writeln!(wide, "  +e{i:04}:\n    echo>: e{i}");
    }
    let dir = project("wide", &wide);
    let b = spade(dir.path(), "wide");
    let c = children_max_rss_kib();

    // (a) the chain against its floor.
    let mut chain = String::new();
    for i in 0..1000 {
        let _ = writeln!(chain, "+s{i:04}:\n  sh>: \"true\"");
    }
    let dir = project("chain", &chain);
    let a = spade(dir.path(), "chain");
    let floor_start = Instant::now();
    for _ in 0..1000 {
        let status = Command::new("/bin/sh")
            .args(["-c", "true"])
            .status()
            .unwrap();
        assert!(status.success());
    }
    let floor = floor_start.elapsed();

    // (d) one flaky task, five fresh projects, the median.
    let flaky = "+flaky:\n  _retry: 2\n  sh>: n=$(cat n 2>/dev/null || echo 0); n=$((n+1)); echo $n > n; [ $n -ge 3 ]\n";
    let d = median(
        (0..5)
            .map(|_| {
                let dir = project("flaky", flaky);
                let took = spade(dir.path(), "flaky");
                assert_eq!(
                    std::fs::read_to_string(dir.path().join("n"))
                        .unwrap()
                        .trim(),
                    "3"
                );
                took
            })
            .collect(),
    );

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "engine benchmarks ({}; goals in brackets)",
        std::path::PathBuf::from(spade_bin()).display()
    );
    println!(
        "(a) 1000-task sh> chain: {:.0} ms vs {:.0} ms for 1000 plain /bin/sh spawns = {:.2}x  [< 1.5x]",
        ms(a),
        ms(floor),
        a.as_secs_f64() / floor.as_secs_f64()
    );
    println!(
        "(b) 1000 echo> tasks in one _parallel group: {:.0} ms = {:.2}x of the 500 ms goal  [< 1.0x]",
        ms(b),
        ms(b) / 500.0
    );
    println!("(c) peak RSS of (b): {:.1} MiB", c as f64 / 1024.0);
    println!(
        "(d) spade run, one sh> failing twice under _retry: 2: {:.1} ms (median of 5) = {:.2}x of the 50 ms goal  [< 1.0x]",
        ms(d),
        ms(d) / 50.0
    );
}
