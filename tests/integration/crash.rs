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

/// The ids of the live run of `full_name`: `(task, fence, pid)` once its spawn is recorded.
fn running(project: &Project, full_name: &str) -> Option<(i64, i64, i64)> {
    let db = rusqlite::Connection::open(project.path().join(".spade/spade.db")).ok()?;
    db.query_row(
        "SELECT id, fence, pid FROM tasks WHERE full_name = ?1 AND state = 'running' \
         AND pid IS NOT NULL ORDER BY id DESC LIMIT 1",
        [full_name],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .ok()
}

/// Polls `ready` until it holds or `limit` passes.
fn wait_for(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if ready() {
            return true;
        }
        pause();
    }
    false
}

// Issue 10 item 12: a command that sets its own `trap ... EXIT` replaced the wrapper's, so its
// completion was never journaled, and when spade died after the command finished but before
// the commit, the command ran again. spade now runs such commands in a subshell and journals
// every run it reaps itself too. The commit is held back by a lock the test takes, so the
// kill lands exactly in that window.
#[test]
fn a_command_with_its_own_exit_trap_is_not_run_again_after_a_crash_before_its_commit() {
    let project = Project::new();
    project.write(
        "wf.dig",
        "+a:\n  sh>: touch started; until [ -f go ]; do sleep 0.01; done; trap 'echo bye > /dev/null' EXIT; echo a >> lines\n+b:\n  sh>: echo b >> lines\n",
    );
    let mut child = project
        .command(&["wf"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(20), || running(&project, "+wf+a")
            .is_some()),
        "+wf+a never started"
    );
    let (task, fence, _) = running(&project, "+wf+a").unwrap();
    // Hold the write lock: spade can reap the command but not commit its completion.
    let lock = rusqlite::Connection::open(project.path().join(".spade/spade.db")).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    project.write("go", "");
    assert!(
        wait_for(Duration::from_secs(20), || project.read("lines") == "a\n"),
        "+wf+a did not finish"
    );
    // The journal line is written before the commit is attempted; an old spade never wrote one.
    let journal = project.path().join(".spade/logs/1/journal");
    let line = format!("{task} {fence} 0");
    wait_for(Duration::from_secs(3), || {
        std::fs::read_to_string(&journal).is_ok_and(|j| j.lines().any(|l| l == line))
    });
    child.kill().unwrap();
    child.wait().unwrap();
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    project.run(&["wf"]).expect(0);
    assert_eq!(project.read("lines"), "a\nb\n", "+wf+a ran once");
}

/// Kills aimed right after a task's side effect, the window `docs/exec.md` describes: a chain
/// of `tasks` commands (`body` appends the task's name to `lines`), spade killed as soon as a
/// new line appears (plus up to `jitter` of spinning), restarted, until every task ran. Kills
/// aimed at one window three times in a row fail that task (the interruption limit), and the
/// next start resumes the failed attempt. Returns (kills, tasks that ran more than once).
fn targeted_kills(tasks: usize, body: &str, jitter: Duration, seed: u64) -> (usize, usize) {
    let mut text = String::new();
    for i in 0..tasks {
        let _ = writeln!(
            text,
            "+t{i:03}:\n  sh>: {}",
            body.replace("NAME", &format!("t{i:03}"))
        );
    }
    let project = Project::new();
    project.write("chain.dig", &text);
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    let mut kills = 0;
    loop {
        let before = std::fs::metadata(project.path().join("lines")).map_or(0, |m| m.len());
        let mut child = project
            .command(&["chain", "--session", "2026-01-01"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let grown = loop {
            if child.try_wait().unwrap().is_some() {
                break false;
            }
            let now = std::fs::metadata(project.path().join("lines")).map_or(0, |m| m.len());
            if now > before {
                break true;
            }
            std::hint::spin_loop();
        };
        if !grown {
            if line_counts(&project).len() == tasks {
                break;
            }
            // The attempt failed on the interruption limit: the next start resumes it.
            continue;
        }
        let until = Instant::now() + jitter.mul_f64(rng.random::<f64>());
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        let _ = child.kill();
        child.wait().unwrap();
        kills += 1;
        assert!(kills < tasks * 3, "no progress after {kills} kills");
    }
    let counts = line_counts(&project);
    assert_eq!(counts.len(), tasks, "every task ran: {counts:?}");
    (kills, counts.values().filter(|c| **c > 1).count())
}

// The crash window left, measured: kills aimed right after a command's last write. A repeat
// means spade died between that write and the journal line: inside the shell before its trap
// ran (tens of microseconds), or, for a command with its own `EXIT` trap, while its subshell
// ran that trap, exited and the wrapper woke up (a few hundred). `SPADE_CRASH_TASKS=N`
// measures longer; docs/exec.md has the figures.
#[test]
fn kills_right_after_a_command_finished_rarely_run_it_again() {
    let tasks: usize = std::env::var("SPADE_CRASH_TASKS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(40);
    let seed: u64 = rand::rng().random();
    let jitter = Duration::from_micros(300);
    let (kills, twice) = targeted_kills(tasks, "echo NAME >> lines", jitter, seed);
    let (trap_kills, trap_twice) =
        targeted_kills(tasks, "trap 'true' EXIT; echo NAME >> lines", jitter, seed);
    eprintln!(
        "targeted kills (seed {seed}): plain commands {twice} repeats in {kills} kills; \
         commands with their own EXIT trap {trap_twice} in {trap_kills}"
    );
    // Kills aimed at the window, so these are upper bounds of what a random kill does. The
    // trapped commands' window is wider and its rate varies with the machine's load; that a
    // completion is journaled at all despite the command's trap is checked exactly by
    // `a_command_with_its_own_exit_trap_is_not_run_again_after_a_crash_before_its_commit`.
    assert!(
        twice * 100 <= kills.max(20) * 15,
        "too many repeats (seed {seed}): {twice}/{kills} plain, {trap_twice}/{trap_kills} trapped"
    );
}
