//! `spade serve` through the real binary under the hidden test clock (`--time-origin`,
//! `--time-scale`): slots fire at their virtual times, SIGTERM leaves no task process behind,
//! SIGKILL and restart never lose or repeat a slot, downtime catches up as configured, and
//! schedules are DST-correct.

// Test helpers: a failed unwrap is a failed test here.
#![allow(clippy::unwrap_used)]

use crate::daemon::{column, rows, sessions, virtual_now, wait_until, Proc};
use crate::run::Project;
use jiff::{SignedDuration, Timestamp};
use std::path::{Path, PathBuf};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// `spade serve` on `project` with its own database and log, under the test clock.
fn serve(project: &Project, origin: Timestamp, scale: f64, extra: &[&str]) -> Proc {
    let origin = origin.to_string();
    let scale = scale.to_string();
    let db = db(project);
    let db = db.to_str().unwrap();
    let mut args = vec![
        "serve",
        ".",
        "--db",
        db,
        "--time-origin",
        &origin,
        "--time-scale",
        &scale,
    ];
    args.extend_from_slice(extra);
    let n = std::fs::read_dir(project.path()).unwrap().count();
    Proc::start_with(
        &args,
        project.path(),
        project.path().join(format!(".serve-{n}.log")),
        &[("SPADE_LOG", "info")],
    )
}

fn db(project: &Project) -> PathBuf {
    project.path().join(".spade").join("spade.db")
}

/// Waits for a graceful stop (SIGTERM) to finish with exit status 0. The daemon must be
/// serving first: a SIGTERM before its handlers are installed ends it the default way.
fn stop(p: &mut Proc) {
    wait_until(
        "the daemon to serve",
        LONG,
        || p.log_text().contains("serving"),
        || p.log_text(),
    );
    p.signal(libc::SIGTERM);
    let status = p.wait_exit(LONG);
    assert!(
        status.success(),
        "serve exited with {status:?}; log:\n{}",
        p.log_text()
    );
}

/// `(session_time, started_at)` of the first run of each session of `workflow`.
fn started(db: &Path, workflow: &str) -> Vec<(Timestamp, Timestamp)> {
    rows(
        db,
        &format!(
            "SELECT s.session_time, MIN(r.started_at) FROM sessions s \
             JOIN attempts a ON a.session_id = s.id JOIN tasks t ON t.attempt_id = a.id \
             JOIN task_runs r ON r.task_id = t.id WHERE s.workflow = '{workflow}' \
             GROUP BY s.id ORDER BY s.session_time"
        ),
    )
    .into_iter()
    .map(|r| (ts(&r[0]), ts(&r[1])))
    .collect()
}

fn unfinished(db: &Path) -> usize {
    column(db, "SELECT COUNT(*) FROM attempts WHERE state = 'running'")
        .first()
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX)
}

#[test]
fn minute_and_hourly_slots_fire_at_their_virtual_times() {
    let project = Project::new();
    project.write(
        "every.dig",
        "timezone: UTC\nschedule:\n  minutes_interval>: 1\n+a:\n  echo>: ${session_time}\n",
    );
    project.write(
        "hourly.dig",
        "timezone: UTC\nschedule:\n  hourly>: 05:00\n+a:\n  echo>: ${session_time}\n",
    );
    let origin = ts("2026-01-10T09:58:30Z");
    let mut p = serve(&project, origin, 120.0, &[]);
    let db = db(&project);
    wait_until(
        "eight minute slots and the 10:00 hourly slot",
        LONG,
        || started(&db, "every").len() >= 8 && !started(&db, "hourly").is_empty(),
        || p.log_text(),
    );
    stop(&mut p);
    let every = started(&db, "every");
    for (i, (session, at)) in every.iter().enumerate() {
        let due = origin
            .checked_add(SignedDuration::from_secs(30 + 60 * i as i64))
            .unwrap();
        assert_eq!(*session, due, "slot {i} of {every:?}");
        // 10 virtual seconds are 83 ms of real time at this scale.
        let late = at.duration_since(due);
        assert!(
            late >= SignedDuration::ZERO && late < SignedDuration::from_secs(10),
            "slot {session} started at {at}"
        );
    }
    let hourly = started(&db, "hourly");
    assert_eq!(hourly[0].0, ts("2026-01-10T10:00:00Z"));
    let late = hourly[0].1.duration_since(ts("2026-01-10T10:05:00Z"));
    assert!(
        late >= SignedDuration::ZERO && late < SignedDuration::from_secs(10),
        "{hourly:?}"
    );
    assert!(p.log_text().contains("stopped"), "{}", p.log_text());
}

#[test]
fn sigterm_stops_the_task_group_and_the_next_start_runs_it_once() {
    let project = Project::new();
    // The first run starts a grandchild that ignores SIGTERM and sleeps; a second run (after
    // the restart) sees the marker and finishes at once.
    project.write(
        "slow.dig",
        "timezone: UTC\nschedule:\n  minutes_interval>: 1\n+a:\n  sh>: \"if [ -f started ]; then echo again >> runs; exit 0; fi; (trap '' TERM; exec sleep 301) & touch started; sleep 302\"\n",
    );
    let origin = ts("2026-01-01T00:00:59.5Z");
    let mut p = serve(&project, origin, 1.0, &["--stop-timeout", "5s"]);
    let db = db(&project);
    wait_until(
        "the task to start",
        LONG,
        || project.path().join("started").exists(),
        || p.log_text(),
    );
    // Recorded with the run's next transaction, or within 200 ms (`executor::SPAWN_FLUSH`).
    let recorded = || {
        column(
            &db,
            "SELECT pgid FROM tasks WHERE state = 'running' AND pgid IS NOT NULL",
        )
        .first()
        .and_then(|g| g.parse::<u32>().ok())
    };
    wait_until(
        "the task's process group to be recorded",
        LONG,
        || recorded().is_some(),
        || p.log_text(),
    );
    let pgid: u32 =
        recorded().unwrap_or_else(|| panic!("no running task with a pgid; log:\n{}", p.log_text()));
    assert!(!crate::daemon::group_members(pgid).is_empty());
    stop(&mut p);
    assert!(
        crate::daemon::group_members(pgid).is_empty(),
        "processes of group {pgid} survived the stop"
    );
    assert!(crate::daemon::processes_matching("sleep 301").is_empty());
    assert!(crate::daemon::processes_matching("sleep 302").is_empty());
    let runs = rows(&db, "SELECT outcome, message FROM task_runs");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0][0], "interrupted");
    assert!(runs[0][1].contains("graceful stop"), "{runs:?}");
    assert_eq!(
        column(&db, "SELECT owner_id IS NULL FROM attempts"),
        ["1"],
        "a stopped daemon releases its attempts"
    );
    // The next start adopts the attempt and runs the task again, once; the stop used up
    // neither a retry nor an interruption.
    let mut p = serve(&project, ts("2026-01-01T00:01:10Z"), 1.0, &[]);
    wait_until(
        "the interrupted attempt to finish",
        LONG,
        || column(&db, "SELECT state FROM attempts WHERE id = 1") == ["succeeded"],
        || p.log_text(),
    );
    stop(&mut p);
    assert_eq!(project.read("runs"), "again\n");
    assert_eq!(
        rows(&db, "SELECT retry_count, interrupted_count FROM tasks WHERE full_name = '+slow+a' AND attempt_id = 1"),
        [["0", "0"]],
    );
}

#[test]
fn sigkill_and_restart_never_lose_or_repeat_a_slot() {
    use rand::Rng as _;
    let project = Project::new();
    project.write(
        "tick.dig",
        "timezone: UTC\nschedule:\n  minutes_interval>: 1\n+a:\n  sh>: echo ${session_time} >> lines\n+b:\n  echo>: done\n",
    );
    let db = db(&project);
    let scale = 60.0;
    let mut now = ts("2026-01-01T00:00:30Z");
    let mut rng = rand::rng();
    let kills = 4;
    for round in 0..kills {
        let mut p = serve(&project, now, scale, &[]);
        let want = round + 2;
        wait_until(
            "a few sessions",
            LONG,
            || sessions(&db, "tick").len() >= want,
            || p.log_text(),
        );
        // Somewhere inside a slot: maybe while its task runs.
        let extra = Duration::from_millis(rng.random_range(0..900));
        wait_until(
            "a moment",
            LONG,
            || p.started.elapsed() > extra,
            String::new,
        );
        let v = virtual_now(now, scale, p.started);
        p.kill9();
        // Down for zero to three virtual minutes.
        now = v
            .checked_add(SignedDuration::from_secs(rng.random_range(0..180)))
            .unwrap();
    }
    let mut p = serve(&project, now, scale, &[]);
    let due = now;
    wait_until(
        "every slot up to the restart to finish",
        LONG,
        || {
            let s = sessions(&db, "tick");
            s.last()
                .is_some_and(|t| ts(t) >= due.checked_sub(SignedDuration::from_secs(60)).unwrap())
                && unfinished(&db) == 0
        },
        || p.log_text(),
    );
    stop(&mut p);
    let s: Vec<Timestamp> = sessions(&db, "tick").iter().map(|t| ts(t)).collect();
    for pair in s.windows(2) {
        assert_eq!(
            pair[1].duration_since(pair[0]),
            SignedDuration::from_secs(60),
            "a slot is missing or repeated: {s:?}"
        );
    }
    assert_eq!(s[0], ts("2026-01-01T00:01:00Z"));
    assert_eq!(unfinished(&db), 0);
    let states = column(&db, "SELECT DISTINCT state FROM attempts");
    assert_eq!(states, ["succeeded"]);
    let lines = project.read("lines");
    let mut counts = std::collections::BTreeMap::new();
    for l in lines.lines() {
        *counts.entry(l.to_owned()).or_insert(0usize) += 1;
    }
    assert_eq!(
        counts.len(),
        s.len(),
        "every session's task ran: {counts:?}"
    );
    // A kill between a command's end and its journal can repeat that one command (see
    // ARCHITECTURE.md, "Crash safety"); at most once per kill.
    let repeats: usize = counts.values().map(|c| c - 1).sum();
    assert!(repeats <= kills, "{counts:?}");
}

const CATCHUP: &[(&str, &str)] = &[
    ("c_all", ""),
    ("c_latest", "  catchup: latest\n"),
    ("c_none", "  catchup: none\n"),
    ("c_delay", "  skip_delayed_by: 3m\n"),
];

#[test]
fn downtime_catches_up_as_each_schedule_says() {
    let project = Project::new();
    for (name, option) in CATCHUP {
        project.write(
            &format!("{name}.dig"),
            &format!("timezone: UTC\nschedule:\n  minutes_interval>: 1\n{option}+a:\n  echo>: ${{session_time}}\n"),
        );
    }
    let db = db(&project);
    let mut p = serve(&project, ts("2026-01-01T00:00:58Z"), 1.0, &[]);
    wait_until(
        "the 00:01 slot of every schedule",
        LONG,
        || CATCHUP.iter().all(|(n, _)| sessions(&db, n).len() == 1) && unfinished(&db) == 0,
        || p.log_text(),
    );
    stop(&mut p);

    // Down for ten minutes: 00:02 to 00:10 were missed.
    let back = "2026-01-01T00:10:58Z";
    let dry = crate::util::spade()
        .args([
            "serve",
            ".",
            "--dry-run",
            "--db",
            db.to_str().unwrap(),
            "--time-origin",
            back,
        ])
        .current_dir(project.path())
        .output()
        .unwrap();
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let plan = String::from_utf8(dry.stdout).unwrap();
    let mut expected = String::new();
    for (name, _) in CATCHUP {
        for m in 2..=10 {
            let reason = match (*name, m) {
                ("c_all", _) => "catch-up",
                ("c_latest", 10) => "catch-up",
                ("c_latest", _) => "skipped by catchup: latest (a newer slot is due)",
                ("c_none", _) => "skipped by catchup: none",
                ("c_delay", m) if m >= 8 => "catch-up",
                _ => "skipped by skip_delayed_by",
            };
            expected.push_str(&format!(
                "{name} 2026-01-01T00:{m:02}:00+00:00 2026-01-01T00:{m:02}:00+00:00 {reason}\n"
            ));
        }
    }
    let mut plan_lines: Vec<&str> = plan.lines().collect();
    let mut expected_lines: Vec<&str> = expected.lines().collect();
    plan_lines.sort_unstable();
    expected_lines.sort_unstable();
    assert_eq!(plan_lines, expected_lines, "--dry-run printed:\n{plan}");
    // The dry run wrote nothing.
    assert_eq!(sessions(&db, "c_all").len(), 1);

    let mut p = serve(&project, ts(back), 1.0, &[]);
    wait_until(
        "every missed slot to be decided",
        LONG,
        || {
            column(
                &db,
                "SELECT COUNT(*) FROM schedules WHERE next_session_ms = 1767226260000",
            ) == ["4"]
                && unfinished(&db) == 0
        },
        || p.log_text(),
    );
    stop(&mut p);
    let minutes = |name: &str| -> Vec<String> {
        sessions(&db, name)
            .iter()
            .map(|t| t[14..16].to_owned())
            .collect()
    };
    let all: Vec<String> = (1..=10).map(|m| format!("{m:02}")).collect();
    assert_eq!(minutes("c_all"), all);
    assert_eq!(minutes("c_latest"), ["01", "10"]);
    assert_eq!(minutes("c_none"), ["01"]);
    assert_eq!(minutes("c_delay"), ["01", "08", "09", "10"]);
    let skipped = column(
        &db,
        "SELECT COUNT(*) FROM schedule_events WHERE outcome = 'skipped'",
    );
    assert_eq!(skipped, [(8 + 9 + 6).to_string()]);
}

/// One DST transition: the daemon runs across it at 7,200 virtual seconds per second, and
/// every expected `(workflow, session time, run time)` is checked (runs within 10 virtual
/// minutes, which separates the readings that differ by 30 or 60 minutes).
fn dst_case(files: &[(&str, &str)], origin: &str, until: &str, expected: &[(&str, &str, &str)]) {
    let project = Project::new();
    for (name, text) in files {
        project.write(&format!("{name}.dig"), text);
    }
    let db = db(&project);
    let mut p = serve(&project, ts(origin), 7200.0, &[]);
    let until = ts(until);
    wait_until(
        "the daemon's clock to pass the transition",
        LONG,
        || virtual_now(ts(origin), 7200.0, p.started) > until && unfinished(&db) == 0,
        || p.log_text(),
    );
    stop(&mut p);
    let mut got = Vec::new();
    for (name, _) in files {
        for (session, at) in started(&db, name) {
            if session.as_second() <= until.as_second() {
                got.push((name.to_string(), session, at));
            }
        }
    }
    let fmt = |g: &[(String, Timestamp, Timestamp)]| format!("{g:#?}");
    assert_eq!(
        got.len(),
        expected.len(),
        "{}\nlog:\n{}",
        fmt(&got),
        p.log_text()
    );
    for (name, session, run) in expected {
        let (session, run) = (ts(session), ts(run));
        let hit = got.iter().find(|(n, s, _)| n == name && *s == session);
        let Some((_, _, at)) = hit else {
            panic!("no session {session} of {name}: {}", fmt(&got));
        };
        let late = at.duration_since(run);
        assert!(
            late >= SignedDuration::ZERO && late < SignedDuration::from_mins(10),
            "{name} {session} should run at {run}, ran at {at}"
        );
    }
}

fn wf(zone: &str, schedule: &str) -> String {
    format!("timezone: {zone}\nschedule:\n  {schedule}\n+a:\n  echo>: ${{session_time}}\n")
}

#[test]
fn new_york_spring_forward_runs_a_gap_time_once_after_the_gap() {
    // 2026-03-08 02:00 EST becomes 03:00 EDT: 02:30 does not exist that day.
    let daily = wf("America/New_York", "daily>: 02:30:00");
    let cron = wf("America/New_York", "cron>: '30 2 * * *'");
    dst_case(
        &[("daily", &daily), ("cron", &cron)],
        "2026-03-07T06:00:00Z",
        "2026-03-09T12:00:00Z",
        &[
            ("daily", "2026-03-07T05:00:00Z", "2026-03-07T07:30:00Z"),
            ("daily", "2026-03-08T05:00:00Z", "2026-03-08T07:00:00Z"),
            ("daily", "2026-03-09T04:00:00Z", "2026-03-09T06:30:00Z"),
            ("cron", "2026-03-07T07:30:00Z", "2026-03-07T07:30:00Z"),
            ("cron", "2026-03-08T07:00:00Z", "2026-03-08T07:00:00Z"),
            ("cron", "2026-03-09T06:30:00Z", "2026-03-09T06:30:00Z"),
        ],
    );
}

#[test]
fn new_york_fall_back_runs_a_repeated_time_once_and_hourly_twice() {
    // 2026-11-01 02:00 EDT becomes 01:00 EST: 01:30 happens twice.
    let daily = wf("America/New_York", "daily>: 01:30:00");
    let hourly = wf("America/New_York", "hourly>: 00:00");
    dst_case(
        &[("daily", &daily), ("hourly", &hourly)],
        "2026-11-01T03:30:00Z",
        "2026-11-01T07:30:00Z",
        &[
            ("daily", "2026-11-01T04:00:00Z", "2026-11-01T05:30:00Z"),
            ("hourly", "2026-11-01T04:00:00Z", "2026-11-01T04:00:00Z"),
            ("hourly", "2026-11-01T05:00:00Z", "2026-11-01T05:00:00Z"),
            ("hourly", "2026-11-01T06:00:00Z", "2026-11-01T06:00:00Z"),
            ("hourly", "2026-11-01T07:00:00Z", "2026-11-01T07:00:00Z"),
        ],
    );
}

#[test]
fn london_spring_forward_and_fall_back() {
    // 2026-03-29 01:00 GMT becomes 02:00 BST; 2026-10-25 02:00 BST becomes 01:00 GMT.
    let daily = wf("Europe/London", "daily>: 01:30:00");
    dst_case(
        &[("daily", &daily)],
        "2026-03-28T12:00:00Z",
        "2026-03-29T12:00:00Z",
        &[("daily", "2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z")],
    );
    dst_case(
        &[("daily", &daily)],
        "2026-10-24T12:00:00Z",
        "2026-10-25T12:00:00Z",
        &[("daily", "2026-10-24T23:00:00Z", "2026-10-25T00:30:00Z")],
    );
}

#[test]
fn a_second_daemon_on_the_same_database_is_refused_naming_the_first() {
    let project = Project::new();
    project.write("hello.dig", "+a:\n  echo>: hi\n");
    let mut first = serve(&project, ts("2026-01-01T00:00:00Z"), 1.0, &[]);
    wait_until(
        "the first daemon to serve",
        LONG,
        || first.log_text().contains("serving"),
        || first.log_text(),
    );
    let out = crate::util::spade()
        .args(["serve", ".", "--db", db(&project).to_str().unwrap()])
        .current_dir(project.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("another spade serve is using")
            && stderr.contains(&format!("pid {}", first.pid())),
        "{stderr}"
    );
    assert!(first.is_running());
    stop(&mut first);
}

#[test]
fn an_unknown_configuration_key_is_located_with_a_suggestion() {
    let project = Project::new();
    project.write("hello.dig", "+a:\n  echo>: hi\n");
    project.write("spade.toml", "max_attempts = 4\nstop_timout = \"10s\"\n");
    let out = crate::util::spade()
        .args(["serve", ".", "--config", "spade.toml"])
        .current_dir(project.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("spade.toml:2:1: unknown configuration key `stop_timout`")
            && stderr.contains("did you mean `stop_timeout`?"),
        "{stderr}"
    );
}

#[test]
fn reload_picks_up_new_workflows_keeps_the_last_good_revision_of_broken_ones() {
    let project = Project::new();
    project.write(
        "a.dig",
        "timezone: UTC\nschedule:\n  minutes_interval>: 1\n+a:\n  sh>: echo v1 ${session_time} >> out_a\n",
    );
    let db = db(&project);
    let mut p = serve(&project, ts("2026-01-01T00:00:50Z"), 30.0, &[]);
    wait_until(
        "a's first slot",
        LONG,
        || !sessions(&db, "a").is_empty(),
        || p.log_text(),
    );
    // A broken edit: logged with its location, and `a` keeps firing its last good revision.
    project.write(
        "a.dig",
        "timezone: UTC\nschedule:\n  minutes_interval>: 1\n+a:\n  shh>: echo broken >> out_a\n",
    );
    wait_until(
        "the diagnostic",
        LONG,
        || p.log_text().contains("a.dig:5:3: unknown operator `shh>`"),
        || p.log_text(),
    );
    let before = sessions(&db, "a").len();
    wait_until(
        "a to keep firing",
        LONG,
        || sessions(&db, "a").len() > before + 1,
        || p.log_text(),
    );
    // A new workflow and a fixed one.
    project.write(
        "b.dig",
        "timezone: UTC\nschedule:\n  minutes_interval>: 1\n+b:\n  sh>: echo b ${session_time} >> out_b\n",
    );
    project.write(
        "a.dig",
        "timezone: UTC\nschedule:\n  minutes_interval>: 1\n+a:\n  sh>: echo v2 ${session_time} >> out_a\n",
    );
    wait_until(
        "b to fire and a to run its new revision",
        LONG,
        || {
            !sessions(&db, "b").is_empty()
                && std::fs::read_to_string(project.path().join("out_a"))
                    .unwrap_or_default()
                    .contains("v2")
        },
        || p.log_text(),
    );
    stop(&mut p);
    let out_a = project.read("out_a");
    assert!(!out_a.contains("broken"), "{out_a}");
    assert!(out_a.starts_with("v1 "), "{out_a}");
}

#[test]
fn start_and_end_bound_the_sessions_a_schedule_fires() {
    let project = Project::new();
    project.write(
        "bounded.dig",
        "timezone: UTC\nschedule:\n  daily>: 06:00:00\n  start: 2026-03-03\n  end: 2026-03-05\n+a:\n  echo>: ${session_time}\n",
    );
    project.write(
        "clock.dig",
        "timezone: UTC\nschedule:\n  daily>: 07:00:00\n+a:\n  echo>: tick\n",
    );
    let db = db(&project);
    // Six virtual days in about ten real seconds.
    let mut p = serve(&project, ts("2026-03-01T00:00:00Z"), 50_000.0, &[]);
    let fired_all = || {
        sessions(&db, "bounded").len() >= 3
            && column(
                &db,
                "SELECT COUNT(*) FROM schedules WHERE workflow = 'bounded' AND next_session_ms IS NULL",
            ) == ["1"]
    };
    wait_until("the last slot before `end`", LONG, fired_all, || {
        p.log_text()
    });
    // An unbounded schedule shows virtual time passing two more days, past `end`.
    wait_until(
        "the 2026-03-07 slot of the unbounded schedule",
        LONG,
        || sessions(&db, "clock").contains(&"2026-03-07T00:00:00Z".to_owned()),
        || p.log_text(),
    );
    stop(&mut p);
    assert_eq!(
        sessions(&db, "bounded"),
        [
            "2026-03-03T00:00:00Z",
            "2026-03-04T00:00:00Z",
            "2026-03-05T00:00:00Z"
        ],
        "{}",
        p.log_text()
    );
    // The bounded workflow's attempts all finished (the clock's last one may be interrupted
    // by the stop).
    assert_eq!(
        column(
            &db,
            "SELECT COUNT(*) FROM attempts a JOIN sessions s ON s.id = a.session_id \
             WHERE s.workflow = 'bounded' AND a.state != 'succeeded'"
        ),
        ["0"]
    );
}

/// The unit's `ExecStart` must be a command line `spade serve` accepts, and its stop settings
/// must leave spade's own graceful stop room to finish before systemd's SIGKILL.
#[test]
fn the_unit_file_starts_spade_as_the_daemon_expects() {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/spade.service"),
    )
    .unwrap();
    let directive = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key}= in the unit"))
            .trim()
            .to_owned()
    };
    assert_eq!(directive("Type"), "notify");
    assert_eq!(directive("KillMode"), "mixed");
    assert_eq!(directive("StateDirectory"), "spade");
    for hardening in ["NoNewPrivileges", "PrivateTmp", "ProtectHome"] {
        assert_eq!(directive(hardening), "true", "{hardening}");
    }
    assert_eq!(directive("ProtectSystem"), "strict");
    assert_eq!(directive("Restart"), "on-failure");

    let exec = directive("ExecStart");
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/spade"));
    let args: Vec<&str> = words.collect();
    assert_eq!(args.first(), Some(&"serve"), "{exec}");
    let stop_timeout = args
        .iter()
        .position(|a| *a == "--stop-timeout")
        .and_then(|i| args.get(i + 1))
        .expect("the unit sets --stop-timeout");
    let secs = |text: &str| -> u64 { text.trim_end_matches('s').parse().unwrap() };
    assert!(
        secs(&directive("TimeoutStopSec")) > secs(stop_timeout),
        "TimeoutStopSec must exceed --stop-timeout"
    );

    // The same command line, with its paths moved into a temporary project, is accepted.
    let project = Project::new();
    project.write("hello.dig", "+a:\n  echo>: hi\n");
    let db = db(&project);
    let args: Vec<String> = args
        .iter()
        .map(|a| match *a {
            "/srv/spade/workflows" => project.path().to_str().unwrap().to_owned(),
            "/var/lib/spade/spade.db" => db.to_str().unwrap().to_owned(),
            other => other.to_owned(),
        })
        .collect();
    let out = crate::util::spade()
        .args(&args)
        .arg("--dry-run")
        .current_dir(project.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{exec}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
