//! HTTP API benchmark: the release `spade serve` on loopback over a store of 100,000 finished
//! attempts, driven by a real HTTP client (reqwest on tokio, several connections, a fixed
//! duration per case). It prints
//! - requests per second and p50/p99 latency of `GET /api/attempts?page_size=100` (the first
//!   page, and a deep page through `last_id`) and of `PUT /api/attempts` (each a new session of
//!   a one-task workflow, which the daemon then runs);
//! - the daemon's scheduling delay (due time to first task started, as `benches/scheduler.rs`
//!   measures it) for slots with and without a client polling `GET /api/attempts` at 100
//!   requests per second, alternating slot by slot in one run, and their ratio (goal: 1).
//!
//! The store is seeded by copying one real attempt (made by `spade run`) with remapped ids, in
//! one transaction, so every row has the shape the engine writes. The scheduling part runs the
//! daemon under the test clock at `--time-scale 10` (a virtual minute every 6 s); delays are
//! measured in virtual time and divided by the scale, so they are real milliseconds.
//!
//! Knobs: `SPADE_BENCH_ATTEMPTS` (100000), `SPADE_BENCH_SECONDS` per HTTP case (5),
//! `SPADE_BENCH_CONNECTIONS` (4), `SPADE_BENCH_WORKFLOWS` scheduled (500), `SPADE_BENCH_SLOTS`
//! (6); `SPADE_BENCH_QUICK=1` scales everything down (10,000 attempts, 2 s, 100 workflows, 4
//! slots) for a run in about half a minute.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // a benchmark driver, not library code

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn spade_bin() -> std::ffi::OsString {
    std::env::var_os("SPADE_BENCH_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_spade").into())
}

fn knob(name: &str, default: usize, quick: usize) -> usize {
    let quick_mode = std::env::var("SPADE_BENCH_QUICK").is_ok_and(|v| v == "1");
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick_mode { quick } else { default })
}

/// A `spade serve` killed (by pid) and reaped on drop, whatever happens to the bench.
struct Daemon {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// `spade serve project` on a free loopback port; waits until its API listens.
    fn start(project: &Path, extra: &[&str], log: PathBuf) -> Daemon {
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(spade_bin())
            .arg("serve")
            .arg(project)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("SPADE_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .unwrap();
        let mut daemon = Daemon {
            child,
            base: String::new(),
            log,
        };
        let marker = "API listening on http://";
        wait_for("the API to listen", Duration::from_secs(120), || {
            let text = std::fs::read_to_string(&daemon.log).unwrap_or_default();
            let Some(at) = text.find(marker) else {
                return false;
            };
            let addr: String = text[at + marker.len()..]
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '"')
                .collect();
            daemon.base = format!("http://{addr}");
            true
        });
        daemon
    }

    /// Stops it with SIGTERM (a graceful stop) and waits for it to exit.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read_only(db: &Path) -> rusqlite::Connection {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn
}

fn count(db: &Path, sql: &str) -> usize {
    read_only(db)
        .query_row(sql, [], |r| r.get::<_, i64>(0))
        .map(|n| usize::try_from(n).unwrap_or(0))
        .unwrap_or(0)
}

/// Copies the store's only attempt (and its session, tasks, runs, logs and transitions) `n`
/// times in one transaction, remapping every id and giving each copy its own session time
/// (an hour earlier per copy). Columns are read from the schema, so the copies have whatever
/// columns the current migrations made.
fn seed(db: &Path, n: usize) {
    let mut conn = rusqlite::Connection::open(db).unwrap();
    // Attempts and tasks point at each other, and a deferred check would search the attempts
    // for every task inserted: the keys are checked once after the copy instead.
    conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
    let tx = conn.transaction().unwrap();
    let max = |table: &str| -> i64 {
        tx.query_row(&format!("SELECT MAX(id) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    };
    let (sessions, attempts, tasks) = (max("sessions"), max("attempts"), max("tasks"));
    assert_eq!(
        (sessions, attempts),
        (1, 1),
        "the template store holds one attempt"
    );
    let shift = |column: &str, by: i64| format!("{column} + c.k * {by}");
    // (table, column, expression) for the columns that must differ per copy.
    let remap: Vec<(&str, &str, String)> = vec![
        ("sessions", "id", shift("id", sessions)),
        (
            "sessions",
            "session_time",
            "strftime('%Y-%m-%dT%H:%M:%SZ', session_time, printf('-%d hours', c.k))".into(),
        ),
        (
            "sessions",
            "session_uuid",
            "session_uuid || '-' || c.k".into(),
        ),
        ("attempts", "id", shift("id", attempts)),
        ("attempts", "session_id", shift("session_id", sessions)),
        ("attempts", "root_task_id", shift("root_task_id", tasks)),
        ("attempts", "owner_id", "NULL".into()),
        ("tasks", "id", shift("id", tasks)),
        ("tasks", "attempt_id", shift("attempt_id", attempts)),
        ("tasks", "parent_id", shift("parent_id", tasks)),
        ("task_runs", "id", shift("id", max("task_runs"))),
        ("task_runs", "task_id", shift("task_id", tasks)),
        ("task_logs", "id", shift("id", max("task_logs"))),
        ("task_logs", "task_id", shift("task_id", tasks)),
        (
            "state_transitions",
            "id",
            shift("id", max("state_transitions")),
        ),
        ("state_transitions", "task_id", shift("task_id", tasks)),
    ];
    for table in [
        "sessions",
        "attempts",
        "tasks",
        "task_runs",
        "task_logs",
        "state_transitions",
    ] {
        let columns: Vec<String> = tx
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let values: Vec<String> = columns
            .iter()
            .map(|c| {
                remap
                    .iter()
                    .find(|(t, col, _)| *t == table && col == c)
                    .map_or_else(|| c.clone(), |(_, _, e)| e.clone())
            })
            .collect();
        let template = max(table);
        tx.execute(
            &format!(
                "WITH RECURSIVE c(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM c WHERE k < {n}) \
                 INSERT INTO {table} ({}) SELECT {} FROM {table}, c WHERE {table}.id <= {template}",
                columns.join(", "),
                values.join(", ")
            ),
            [],
        )
        .unwrap();
    }
    let dangling: i64 = tx
        .query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(dangling, 0, "the copies break a foreign key");
    tx.commit().unwrap();
}

/// What one load case measured.
struct Case {
    name: String,
    requests: usize,
    failures: usize,
    elapsed: Duration,
    /// Sorted.
    latencies: Vec<Duration>,
}

impl Case {
    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        self.latencies[i.min(self.latencies.len() - 1)]
    }

    fn row(&self) -> String {
        format!(
            "  {:<44} {:>8.0} {:>9.2} {:>9.2} {:>9.2} {:>8}",
            self.name,
            self.requests as f64 / self.elapsed.as_secs_f64(),
            ms(self.percentile(0.5)),
            ms(self.percentile(0.99)),
            ms(self.latencies.last().copied().unwrap_or_default()),
            self.failures
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `connections` workers send requests made by `request(i)` (i counts across workers) back
/// to back for `duration`; a request fails unless it answers 200.
async fn load(
    name: &str,
    client: &reqwest::Client,
    connections: usize,
    duration: Duration,
    request: impl Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
) -> Case {
    let request = Arc::new(request);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = Vec::new();
    for _ in 0..connections {
        let (client, request, next) = (client.clone(), request.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0;
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let sent = Instant::now();
                let ok = match request(&client, i).send().await {
                    Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                latencies.push(sent.elapsed());
                if !ok {
                    failures += 1;
                }
            }
            (latencies, failures)
        }));
    }
    let mut latencies = Vec::new();
    let mut failures = 0;
    for w in workers {
        let (l, f) = w.await.unwrap();
        latencies.extend(l);
        failures += f;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Case {
        name: name.to_owned(),
        requests: latencies.len(),
        failures,
        elapsed,
        latencies,
    }
}

fn percentile_ms(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let attempts = knob("SPADE_BENCH_ATTEMPTS", 100_000, 10_000);
    let seconds = knob("SPADE_BENCH_SECONDS", 5, 2);
    let connections = knob("SPADE_BENCH_CONNECTIONS", 4, 4);
    let workflows = knob("SPADE_BENCH_WORKFLOWS", 500, 100);
    let slots = knob("SPADE_BENCH_SLOTS", 6, 4).max(2);
    let duration = Duration::from_secs(u64::try_from(seconds).unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let dir = if std::env::var_os("SPADE_BENCH_KEEP").is_some() {
        println!("keeping {}", dir.path().display());
        Keep::Kept(dir.keep())
    } else {
        Keep::Temp(dir)
    };
    let project = dir.path().join("project");
    std::fs::create_dir(&project).unwrap();
    std::fs::write(project.join("trivial.dig"), "+a:\n  echo>: hi\n").unwrap();
    let db = project.join(".spade").join("spade.db");
    let ok = Command::new(spade_bin())
        .args(["run", "trivial", "--session", "2026-01-01", "--project"])
        .arg(&project)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "the template `spade run` failed");
    let seeding = Instant::now();
    seed(&db, attempts - 1);
    let seeded = seeding.elapsed();
    let stored = count(
        &db,
        "SELECT COUNT(*) FROM attempts WHERE state = 'succeeded'",
    );
    assert_eq!(stored, attempts);
    let db_mib = std::fs::metadata(&db).unwrap().len() as f64 / 1024.0 / 1024.0;

    // HTTP cases: one daemon over the seeded store.
    let daemon = Daemon::start(&project, &[], dir.path().join("serve-http.log"));
    let client = reqwest::Client::new();
    let base = daemon.base.clone();
    let cases = runtime.block_on(async {
        let workflow: serde_json::Value = serde_json::from_str(
            &client
                .get(format!("{base}/api/workflows"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        )
        .unwrap();
        let workflow_id = workflow["workflows"][0]["id"].as_str().unwrap().to_owned();
        // Warm up: the first scrape folds every stored duration, the first list fills caches.
        for path in ["/metrics", "/api/attempts?page_size=100"] {
            client.get(format!("{base}{path}")).send().await.unwrap();
        }
        let mut cases = Vec::new();
        let url = format!("{base}/api/attempts?page_size=100");
        cases.push(
            load(
                "GET /api/attempts?page_size=100",
                &client,
                connections,
                duration,
                move |c, _| c.get(&url),
            )
            .await,
        );
        let url = format!("{base}/api/attempts?page_size=100&last_id=1000");
        cases.push(
            load(
                "GET /api/attempts?page_size=100&last_id=1000",
                &client,
                connections,
                duration,
                move |c, _| c.get(&url),
            )
            .await,
        );
        let url = format!("{base}/api/attempts");
        let origin = jiff::Timestamp::from_second(1_900_000_000).unwrap();
        cases.push(
            load(
                "PUT /api/attempts (new session each)",
                &client,
                connections,
                duration,
                move |c, i| {
                    let at = origin + jiff::SignedDuration::from_secs(60 * i as i64);
                    c.put(&url)
                        .header("content-type", "application/json")
                        .body(
                            serde_json::json!({"workflowId": workflow_id, "sessionTime": at.to_string()})
                                .to_string(),
                        )
                },
            )
            .await,
        );
        cases
    });
    // The attempts the PUTs started are run by the daemon; let them finish before going on.
    let draining = Instant::now();
    wait_for(
        "the attempts started by PUT to finish",
        Duration::from_secs(300),
        || count(&db, "SELECT COUNT(*) FROM attempts WHERE state = 'running'") == 0,
    );
    let drained = draining.elapsed();
    let scrape = runtime.block_on(async {
        client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    daemon.stop();

    // Scheduling delay: the same store, plus `workflows` one-minute schedules, under the test
    // clock. Slots alternate: odd ones with a client polling the API at 100 requests per
    // second from half a slot before to half a slot after, even ones without.
    for i in 0..workflows {
        std::fs::write(
            project.join(format!("s{i:04}.dig")),
            "timezone: UTC\nschedule:\n  minutes_interval>: 1\n+first:\n  echo>: ${session_time}\n+second:\n  echo>: done\n",
        )
        .unwrap();
    }
    let scale = 10.0;
    // Virtual time starts this long before the first slot (5.5 s real), after the slot
    // before it, so no slot is due while the daemon loads.
    let lead_virtual = 55;
    let now = jiff::Timestamp::now();
    let first_slot = now.as_second() - now.as_second().rem_euclid(60) + 60;
    let origin = jiff::Timestamp::from_second(first_slot - lead_virtual).unwrap();
    let max_attempts = (2 * workflows).to_string();
    let spawned = Instant::now();
    let daemon = Daemon::start(
        &project,
        &[
            "--max-attempts",
            &max_attempts,
            "--time-origin",
            &origin.to_string(),
            "--time-scale",
            "10",
        ],
        dir.path().join("serve-sched.log"),
    );
    let virtual_now = move || {
        origin
            + jiff::SignedDuration::try_from_secs_f64(spawned.elapsed().as_secs_f64() * scale)
                .unwrap()
    };
    wait_for("the schedules", Duration::from_secs(60), || {
        count(&db, "SELECT COUNT(*) FROM schedules") == workflows
    });
    let armed_by = virtual_now();
    assert!(
        armed_by.as_second() < first_slot,
        "the daemon took too long to start for the first slot; raise lead_virtual"
    );
    let end = jiff::Timestamp::from_second(first_slot + 60 * (slots as i64 - 1) + 30).unwrap();
    let polling = Arc::new(AtomicBool::new(false));
    let base = daemon.base.clone();
    let poll = {
        let (client, polling, base) = (client.clone(), polling.clone(), base.clone());
        runtime.spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0usize;
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let url = format!("{base}/api/attempts?page_size=100");
            loop {
                tick.tick().await;
                if polling.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    let ok = match client.get(&url).send().await {
                        Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    if !ok {
                        failures += 1;
                    }
                    latencies.push(sent.elapsed());
                }
                if virtual_now() > end {
                    break;
                }
            }
            (latencies, failures)
        })
    };
    let poll_seconds = {
        let mut active = Duration::ZERO;
        let mut since: Option<Instant> = None;
        while virtual_now() <= end {
            // Slot j fires at first_slot + 60 j; the poller covers odd j, ±30 virtual s.
            let j = (virtual_now().as_second() - first_slot + 30).div_euclid(60);
            let on = j >= 0 && j % 2 == 1;
            polling.store(on, Ordering::Relaxed);
            match (on, since) {
                (true, None) => since = Some(Instant::now()),
                (false, Some(s)) => {
                    active += s.elapsed();
                    since = None;
                }
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        polling.store(false, Ordering::Relaxed);
        active + since.map_or(Duration::ZERO, |s| s.elapsed())
    };
    let (mut poll_latencies, poll_failures) = runtime.block_on(poll).unwrap();
    poll_latencies.sort();
    // A daemon that cannot keep up is reported, not waited for: the delays of the sessions
    // that started say by how much.
    let behind = Instant::now() + Duration::from_secs(60);
    let mut unfinished = usize::MAX;
    while Instant::now() < behind && unfinished > 0 {
        unfinished = count(&db, "SELECT COUNT(*) FROM attempts WHERE state = 'running'");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(daemon);
    let due = workflows * slots;

    let conn = read_only(&db);
    let mut stmt = conn
        .prepare(
            "SELECT s.session_time, MIN(r.started_at) FROM sessions s \
             JOIN attempts a ON a.session_id = s.id JOIN tasks t ON t.attempt_id = a.id \
             JOIN task_runs r ON r.task_id = t.id WHERE s.workflow LIKE 's%' GROUP BY s.id",
        )
        .unwrap();
    let mut with = Vec::new();
    let mut without = Vec::new();
    for row in stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
    {
        let (session, started) = row.unwrap();
        let s: jiff::Timestamp = session.parse().unwrap();
        let t: jiff::Timestamp = started.parse().unwrap();
        let delay_ms = t.duration_since(s).as_secs_f64() * 1000.0 / scale;
        let j = (s.as_second() - first_slot).div_euclid(60);
        if j < 0 {
            continue;
        } else if j % 2 == 1 {
            with.push(delay_ms);
        } else {
            without.push(delay_ms);
        }
    }
    with.sort_by(f64::total_cmp);
    without.sort_by(f64::total_cmp);

    println!(
        "api: {attempts} finished attempts in the store ({db_mib:.0} MiB, seeded in {:.1} s); {connections} connections, {seconds} s per case",
        seeded.as_secs_f64()
    );
    println!(
        "  {:<44} {:>8} {:>9} {:>9} {:>9} {:>8}",
        "case", "req/s", "p50 ms", "p99 ms", "max ms", "failed"
    );
    for c in &cases {
        println!("{}", c.row());
    }
    println!(
        "  the {} attempts PUT started finished {:.1} s after the case ended",
        cases[2].requests - cases[2].failures,
        drained.as_secs_f64()
    );
    println!("  store transactions during the HTTP cases (from /metrics):");
    for line in scrape.lines().filter(|l| {
        l.starts_with("spade_store_transaction_seconds_count")
            || l.starts_with("spade_store_transaction_seconds_sum")
    }) {
        println!("    {line}");
    }
    let poll_rate = poll_latencies.len() as f64 / poll_seconds.as_secs_f64().max(1e-9);
    println!(
        "scheduling delay: {workflows} one-minute schedules, {slots} slots at --time-scale 10 (real ms), slots alternating without and with a client polling GET /api/attempts",
    );
    println!(
        "  {:<44} {:>8} {:>9} {:>9} {:>9}",
        "", "sessions", "p50 ms", "p99 ms", "max ms"
    );
    for (name, d) in [("without polling", &without), ("with polling", &with)] {
        println!(
            "  {:<44} {:>8} {:>9.2} {:>9.2} {:>9.2}",
            name,
            d.len(),
            percentile_ms(d, 0.5),
            percentile_ms(d, 0.99),
            d.last().copied().unwrap_or(f64::NAN)
        );
    }
    if with.len() + without.len() < due || unfinished > 0 {
        println!(
            "  BEHIND: {} of {due} due sessions had a task started, {unfinished} attempts still running a minute after the last slot",
            with.len() + without.len()
        );
    }
    println!(
        "  ratio with/without: p50 {:.2}x, p99 {:.2}x (goal: 1x)",
        percentile_ms(&with, 0.5) / percentile_ms(&without, 0.5),
        percentile_ms(&with, 0.99) / percentile_ms(&without, 0.99)
    );
    println!(
        "  the poller: {:.0} requests/s while on, p50 {:.2} ms, p99 {:.2} ms, {poll_failures} failed",
        poll_rate,
        ms(pick(&poll_latencies, 0.5)),
        ms(pick(&poll_latencies, 0.99)),
    );
}

/// The bench's directory: removed at the end unless `SPADE_BENCH_KEEP` asks to keep it (the
/// daemons' logs are there).
enum Keep {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl Keep {
    fn path(&self) -> &Path {
        match self {
            Keep::Temp(t) => t.path(),
            Keep::Kept(p) => p,
        }
    }
}

fn pick(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}
