//! Crash safety: `spade run` killed with SIGKILL at random points and restarted ends with every
//! task's side effect exactly once; a join after a wide parallel group fires exactly once.

// Test helpers outside `#[test]` functions: a failed unwrap is a failed test here.
#![allow(clippy::unwrap_used)]

use crate::run::Project;
use rand::Rng as _;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// At most this many tasks run at once: parallel groups have this many children, and the
/// limited group runs chunks smaller than it.
const WIDTH: usize = 5;

/// 200 `sh>` tasks: sequential runs, `_parallel` groups of [`WIDTH`] and a `_parallel: {limit}`
/// group, then a final join; each appends one line naming itself to `lines`.
fn workflow() -> (String, Vec<String>) {
    let mut text = String::new();
    let mut names = Vec::new();
    let mut n = 0;
    let mut task = |text: &mut String, indent: &str| {
        let name = format!("t{n:03}");
        let _ = writeln!(
            text,
            "{indent}+{name}:\n{indent}  sh>: echo {name} >> lines"
        );
        names.push(name);
        n += 1;
    };
    let _ = writeln!(text, "+seq1:");
    for _ in 0..40 {
        task(&mut text, "  ");
    }
    for g in 0..8 {
        let _ = writeln!(text, "+par{g}:\n  _parallel: true");
        for _ in 0..WIDTH {
            task(&mut text, "  ");
        }
    }
    let _ = writeln!(text, "+seq2:");
    for _ in 0..40 {
        task(&mut text, "  ");
    }
    let _ = writeln!(text, "+chunks:\n  _parallel:\n    limit: 3");
    for _ in 0..79 {
        task(&mut text, "  ");
    }
    let _ = writeln!(text, "+final:\n  sh>: echo final >> lines");
    names.push("final".into());
    (text, names)
}

fn line_counts(project: &Project) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in project.read("lines").lines() {
        *counts.entry(line.to_string()).or_insert(0) += 1;
    }
    counts
}

fn pause() {
    #[allow(clippy::disallowed_methods)] // polling a real child process from a test
    std::thread::sleep(Duration::from_millis(1));
}

#[test]
fn sigkill_at_random_points_then_resume_runs_every_task_once() {
    let (text, names) = workflow();
    assert_eq!(names.len(), 200);
    let project = Project::new();
    project.write("big.dig", &text);
    let args = ["big", "--session", "2026-01-01"];
    let seed: u64 = rand::rng().random();
    eprintln!("crash test seed {seed}");
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    // Kill once the run has made a random amount of progress, so kills land in every phase.
    let mut targets: Vec<usize> = (0..20).map(|_| rng.random_range(1..200)).collect();
    targets.sort_unstable();
    let deadline = Instant::now() + Duration::from_secs(50);
    let mut kills = 0;
    let mut at_last_kill = 0;
    for target in targets {
        // The engine fails a task interrupted three times in a row (contract of `recover`).
        // Waiting for WIDTH + 1 more lines after a kill guarantees that every task running at
        // that kill has finished, since at most WIDTH tasks of one group run at once and the
        // next group starts only after the whole group. So no task sees two kills (plus at
        // most one interruption recorded when journal replay started it just before recovery).
        let target = target.max(at_last_kill + WIDTH + 1);
        let mut child = project
            .command(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let extra = Duration::from_micros(rng.random_range(0..3000));
        let exited = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            let done: usize = line_counts(&project).values().sum();
            if done >= target || Instant::now() > deadline {
                break None;
            }
            pause();
        };
        if exited.is_none() {
            let until = Instant::now() + extra;
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            child.kill().unwrap();
            kills += 1;
            at_last_kill = line_counts(&project).values().sum();
        }
        child.wait().unwrap();
    }
    let ran = project.run(&args);
    ran.expect(0);
    let counts = line_counts(&project);
    for name in &names {
        assert!(counts.contains_key(name), "{name} never ran (seed {seed})");
    }
    assert_eq!(counts.get("final"), Some(&1), "the final join ran once");
    // `sh>` journals its exit code from the shell's EXIT trap, and recovery replays journals, so a
    // command that finished before the kill is not run again. What remains is the few
    // microseconds between the command's last write and the trap inside the killed shell:
    // SIGKILL there loses the journal and the task runs again. Measured at about 0.5% of kills
    // aimed right after a task's write (docs/exec.md); more than two in one run would
    // be a real bug, not that window.
    let twice: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).collect();
    eprintln!("crash test: {kills} kills, lines run twice: {twice:?} (seed {seed})");
    assert!(
        twice.len() <= 2 && twice.iter().all(|(_, c)| **c == 2),
        "lines repeated after {kills} kills (seed {seed}): {twice:?}"
    );
    assert!(
        kills >= 10,
        "only {kills} kills landed: the test lost its bite"
    );
}

#[test]
fn join_after_a_hundred_parallel_tasks_fires_once_fifty_times() {
    let mut text = String::from("+wide:\n  _parallel: true\n");
    for i in 0..100 {
        let _ = writeln!(text, "  +p{i:03}:\n    echo>: p{i}");
    }
    text.push_str("+join:\n  echo>: \"J\"\n  append_file: out\n");
    let project = Project::new();
    project.write("wide.dig", &text);
    for round in 1..=50 {
        let mut args = vec!["wide", "--session", "2026-01-01"];
        if round > 1 {
            args.push("--rerun");
        }
        project.run(&args).expect(0);
        assert_eq!(project.read("out"), "J".repeat(round), "round {round}");
    }
}
