//! `GET /metrics` in the Prometheus text format (version 0.0.4). Attempt and task figures are
//! read from the store at each scrape, so they match it by construction (and survive a
//! restart); durations are histograms folded in from runs and attempts as they finish (rows
//! after the highest id read, and the rows still unfinished at earlier scrapes looked up by
//! id); HTTP requests are counted in memory, and store transaction times by the store itself.

use super::{blocking, Api, ApiResult};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use rusqlite::{params, OptionalExtension};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Histogram bucket bounds in seconds.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    3600.0, 14400.0,
];

/// One histogram: counts per bucket (not cumulative), the sum and the count.
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    pub fn observe(&mut self, seconds: f64) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; BUCKETS.len()];
        }
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i] += 1;
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.buckets.get(i).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// What is kept in memory between scrapes.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    /// Held through a whole scrape (across its store read), so two scrapes never fold the
    /// same rows.
    folds: tokio::sync::Mutex<Folds>,
}

#[derive(Default)]
struct Inner {
    /// `(method, route, status)` → count.
    requests: BTreeMap<(String, String, u16), u64>,
    request_seconds: BTreeMap<String, Histogram>,
    /// Attempts started by this daemon's API (manual starts and backfills).
    api_starts: BTreeMap<String, u64>,
    /// Attempts `gc` removed (the API's and the policy's).
    gc_removed: u64,
}

/// Durations of task runs and of attempts, by workflow.
#[derive(Default)]
struct Folds {
    runs: Folded,
    attempts: Folded,
}

/// One duration histogram per workflow, folded in from rows of one table as they finish.
/// Every row is read once by id order (those after `high`); one still unfinished then is kept
/// in `pending` and looked up by id at each scrape until it finishes, so a long-running row
/// delays nothing after it, and a scrape reads only new rows and the unfinished ones.
#[derive(Default)]
struct Folded {
    seconds: BTreeMap<String, Histogram>,
    /// The highest id read.
    high: i64,
    /// Ids up to `high` not finished when read.
    pending: BTreeSet<i64>,
}

/// `(id, workflow, seconds)`: `None` while the row is unfinished, `Some(None)` for a finished
/// row whose times do not parse (skipped, not looked up again).
type Timed = (i64, String, Option<Option<f64>>);

/// What one scrape read of one table: the rows after `high`, and those of `pending` that
/// still exist (a row removed meanwhile is forgotten).
#[derive(Default)]
struct Read {
    fresh: Vec<Timed>,
    again: Vec<Timed>,
}

impl Folded {
    fn fold(&mut self, read: Read) {
        self.pending.clear();
        for (id, workflow, seconds) in read.again.into_iter().chain(read.fresh) {
            self.high = self.high.max(id);
            match seconds {
                Some(Some(s)) => self.seconds.entry(workflow).or_default().observe(s),
                Some(None) => {}
                None => {
                    self.pending.insert(id);
                }
            }
        }
    }
}

impl Metrics {
    pub fn request(&self, method: &str, route: &str, status: u16, took: Duration) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *m.requests
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default() += 1;
        m.request_seconds
            .entry(route.to_owned())
            .or_default()
            .observe(took.as_secs_f64());
    }

    pub fn gc_removed(&self, attempts: u64) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        m.gc_removed += attempts;
    }

    pub fn started(&self, workflow: &str) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *m.api_starts.entry(workflow.to_owned()).or_default() += 1;
    }
}

/// Label values escaped as the text format wants.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// What one scrape reads from the store.
struct Scraped {
    /// `(workflow, state, count)`.
    attempts: Vec<(String, String, i64)>,
    /// `(state, count)` of the tasks of running attempts.
    tasks: Vec<(String, i64)>,
    runs: Read,
    attempts_timed: Read,
    /// `(workflow, lag seconds)` of enabled schedules.
    lag: Vec<(String, f64)>,
}

fn seconds_between(start: &str, end: Option<&str>) -> Option<f64> {
    let start: jiff::Timestamp = start.parse().ok()?;
    let end: jiff::Timestamp = end?.parse().ok()?;
    Some(end.duration_since(start).as_secs_f64().max(0.0))
}

/// Rows of one table that a duration is read from: the query of the rows after an id (in id
/// order, bounded), and of one row by id. Both select `(id, workflow, start, finish)`.
struct Source {
    after: &'static str,
    by_id: &'static str,
    op: &'static str,
}

const RUNS: Source = Source {
    after: "SELECT r.id, s.workflow, r.started_at, r.finished_at FROM task_runs r \
         JOIN tasks t ON t.id = r.task_id JOIN attempts a ON a.id = t.attempt_id \
         JOIN sessions s ON s.id = a.session_id WHERE r.id > ?1 ORDER BY r.id LIMIT 100000",
    by_id: "SELECT r.id, s.workflow, r.started_at, r.finished_at FROM task_runs r \
         JOIN tasks t ON t.id = r.task_id JOIN attempts a ON a.id = t.attempt_id \
         JOIN sessions s ON s.id = a.session_id WHERE r.id = ?1",
    op: "metrics_runs",
};

const ATTEMPTS: Source = Source {
    after: "SELECT a.id, s.workflow, a.created_at, a.finished_at FROM attempts a \
         JOIN sessions s ON s.id = a.session_id WHERE a.id > ?1 ORDER BY a.id LIMIT 100000",
    by_id: "SELECT a.id, s.workflow, a.created_at, a.finished_at FROM attempts a \
         JOIN sessions s ON s.id = a.session_id WHERE a.id = ?1",
    op: "metrics_attempt_times",
};

/// Reads the rows of `source` after `high` and again those of `pending` (each by its key: the
/// unfinished rows are few, as many as run at once).
fn read_timed(
    tx: &crate::store::Tx<'_>,
    source: &Source,
    high: i64,
    pending: &[i64],
) -> Result<Read, crate::store::Error> {
    use crate::store::sql;
    fn timed(r: &rusqlite::Row<'_>) -> rusqlite::Result<Timed> {
        let start: String = r.get(2)?;
        let end: Option<String> = r.get(3)?;
        let seconds = end.map(|end| seconds_between(&start, Some(&end)));
        Ok((r.get(0)?, r.get(1)?, seconds))
    }
    let fresh = tx
        .prepare_cached(source.after)
        .and_then(|mut stmt| {
            stmt.query_map([high], timed)?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(sql(source.op))?;
    let mut again = Vec::with_capacity(pending.len());
    let mut stmt = tx.prepare_cached(source.by_id).map_err(sql(source.op))?;
    for id in pending {
        if let Some(row) = stmt
            .query_row([id], timed)
            .optional()
            .map_err(sql(source.op))?
        {
            again.push(row);
        }
    }
    Ok(Read { fresh, again })
}

/// Where the duration folds stand: `(high, pending)` of runs and of attempts.
type Marks = ((i64, Vec<i64>), (i64, Vec<i64>));

fn scrape(
    tx: &crate::store::Tx<'_>,
    project: crate::ids::ProjectId,
    marks: &Marks,
    now: jiff::Timestamp,
) -> Result<Scraped, crate::store::Error> {
    use crate::store::sql;
    let mut attempts = Vec::new();
    {
        let mut stmt = tx
            .prepare_cached(
                "SELECT s.workflow, a.state, COUNT(*) FROM attempts a \
                 JOIN sessions s ON s.id = a.session_id WHERE s.project_id = ?1 \
                 GROUP BY s.workflow, a.state ORDER BY s.workflow, a.state",
            )
            .map_err(sql("metrics_attempts"))?;
        let rows = stmt
            .query_map(params![project.0], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(sql("metrics_attempts"))?;
        for r in rows {
            attempts.push(r.map_err(sql("metrics_attempts"))?);
        }
    }
    let mut tasks = Vec::new();
    {
        let mut stmt = tx
            .prepare_cached(
                "SELECT t.state, COUNT(*) FROM attempts a JOIN tasks t ON t.attempt_id = a.id \
                 WHERE a.state = 'running' GROUP BY t.state ORDER BY t.state",
            )
            .map_err(sql("metrics_tasks"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(sql("metrics_tasks"))?;
        for r in rows {
            tasks.push(r.map_err(sql("metrics_tasks"))?);
        }
    }
    let runs = read_timed(tx, &RUNS, marks.0 .0, &marks.0 .1)?;
    let attempts_timed = read_timed(tx, &ATTEMPTS, marks.1 .0, &marks.1 .1)?;
    let lag = crate::store::schedules::list(tx, project)?
        .into_iter()
        .filter(|r| r.disabled_at.is_none())
        .map(|r| {
            let lag = r
                .next_run
                .map_or(0.0, |t| now.duration_since(t).as_secs_f64().max(0.0));
            (r.workflow, lag)
        })
        .collect();
    Ok(Scraped {
        attempts,
        tasks,
        runs,
        attempts_timed,
        lag,
    })
}

pub async fn handler(State(api): State<Api>) -> ApiResult<Response> {
    let mut folds = api.metrics.folds.lock().await;
    let marks: Marks = (
        (
            folds.runs.high,
            folds.runs.pending.iter().copied().collect(),
        ),
        (
            folds.attempts.high,
            folds.attempts.pending.iter().copied().collect(),
        ),
    );
    let engine = api.handle.engine.clone();
    let project = api.handle.project_id;
    let now = api.handle.clock.now();
    let (s, timings) = blocking(move || {
        let s = engine
            .store()
            .read_snapshot("metrics", |tx| scrape(tx, project, &marks, now))?;
        let timings = engine.store().timings();
        let timings = crate::store::timing::Kind::ALL.map(|k| (k, timings.snapshot(k)));
        Ok((s, timings))
    })
    .await?;
    folds.runs.fold(s.runs);
    folds.attempts.fold(s.attempts_timed);
    let load = *api.handle.load.borrow();
    let m = api.metrics.inner.lock().unwrap_or_else(|p| p.into_inner());
    let inner = &*m;

    let mut out = String::new();
    out.push_str("# HELP spade_attempts_total Attempts in the store by workflow and Digdag status (started = all of them).\n# TYPE spade_attempts_total counter\n");
    let mut started: BTreeMap<&str, i64> = BTreeMap::new();
    for (workflow, state, n) in &s.attempts {
        *started.entry(workflow).or_default() += n;
        let _ = writeln!(
            out,
            "spade_attempts_total{{workflow=\"{}\",status=\"{}\"}} {n}",
            label(workflow),
            super::shapes::attempt_status(state)
        );
    }
    out.push_str("# HELP spade_attempts_started_total Attempts created, by workflow.\n# TYPE spade_attempts_started_total counter\n");
    for (workflow, n) in &started {
        let _ = writeln!(
            out,
            "spade_attempts_started_total{{workflow=\"{}\"}} {n}",
            label(workflow)
        );
    }
    out.push_str("# HELP spade_api_starts_total Attempts started through this daemon's API since it started.\n# TYPE spade_api_starts_total counter\n");
    for (workflow, n) in &inner.api_starts {
        let _ = writeln!(
            out,
            "spade_api_starts_total{{workflow=\"{}\"}} {n}",
            label(workflow)
        );
    }
    out.push_str("# HELP spade_gc_attempts_removed_total Finished attempts gc removed since the daemon started.\n# TYPE spade_gc_attempts_removed_total counter\n");
    let _ = writeln!(out, "spade_gc_attempts_removed_total {}", inner.gc_removed);
    out.push_str(
        "# HELP spade_tasks Tasks of running attempts by Digdag state.\n# TYPE spade_tasks gauge\n",
    );
    let mut by_state: BTreeMap<&str, i64> = BTreeMap::new();
    for (state, n) in &s.tasks {
        *by_state
            .entry(super::shapes::task_state(state))
            .or_default() += n;
    }
    for (state, n) in &by_state {
        let _ = writeln!(out, "spade_tasks{{state=\"{state}\"}} {n}");
    }
    out.push_str("# HELP spade_attempts_running Attempts being driven now.\n# TYPE spade_attempts_running gauge\n");
    let _ = writeln!(out, "spade_attempts_running {}", load.running);
    out.push_str("# HELP spade_queue_depth Claimed attempts waiting for a free driver.\n# TYPE spade_queue_depth gauge\n");
    let _ = writeln!(out, "spade_queue_depth {}", load.queued);
    out.push_str("# HELP spade_schedule_lag_seconds How late each enabled schedule's next slot is (0 when not due).\n# TYPE spade_schedule_lag_seconds gauge\n");
    for (workflow, lag) in &s.lag {
        let _ = writeln!(
            out,
            "spade_schedule_lag_seconds{{workflow=\"{}\"}} {lag}",
            label(workflow)
        );
    }
    out.push_str("# HELP spade_task_duration_seconds Duration of finished task runs.\n# TYPE spade_task_duration_seconds histogram\n");
    for (workflow, h) in &folds.runs.seconds {
        h.write(
            &mut out,
            "spade_task_duration_seconds",
            &format!("workflow=\"{}\"", label(workflow)),
        );
    }
    out.push_str("# HELP spade_attempt_duration_seconds Duration of finished attempts (creation to finish).\n# TYPE spade_attempt_duration_seconds histogram\n");
    for (workflow, h) in &folds.attempts.seconds {
        h.write(
            &mut out,
            "spade_attempt_duration_seconds",
            &format!("workflow=\"{}\"", label(workflow)),
        );
    }
    out.push_str("# HELP spade_http_requests_total API requests by method, route and status.\n# TYPE spade_http_requests_total counter\n");
    for ((method, route, status), n) in &inner.requests {
        let _ = writeln!(
            out,
            "spade_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
            label(route)
        );
    }
    out.push_str("# HELP spade_http_request_duration_seconds API request latency by route.\n# TYPE spade_http_request_duration_seconds histogram\n");
    for (route, h) in &inner.request_seconds {
        h.write(
            &mut out,
            "spade_http_request_duration_seconds",
            &format!("route=\"{}\"", label(route)),
        );
    }
    out.push_str("# HELP spade_store_transaction_seconds Store transactions by connection (the engine's writer, the API's readers) and kind, from begin to commit.\n# TYPE spade_store_transaction_seconds histogram\n");
    for (kind, h) in &timings {
        let (connection, kind) = kind.labels();
        let labels = format!("connection=\"{connection}\",kind=\"{kind}\"");
        for (bound, n) in crate::store::timing::BOUNDS_SECONDS
            .iter()
            .zip(h.cumulative)
        {
            let _ = writeln!(
                out,
                "spade_store_transaction_seconds_bucket{{{labels},le=\"{bound}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "spade_store_transaction_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(
            out,
            "spade_store_transaction_seconds_sum{{{labels}}} {}",
            h.sum_seconds
        );
        let _ = writeln!(
            out,
            "spade_store_transaction_seconds_count{{{labels}}} {}",
            h.count
        );
    }
    drop(m);
    drop(folds);
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    // Test helpers: a failed unwrap is a failed test here.
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Executes `statement` on the api's store.
    fn exec(api: &Api, statement: &str) {
        api.handle
            .engine
            .store()
            .write("test", |tx| {
                tx.execute_batch(statement)
                    .map_err(crate::store::sql("test"))
            })
            .unwrap();
    }

    /// `(count, sum)` of the `name` histogram of workflow `wf`, from one scrape.
    async fn scraped(api: &Api, name: &str, wf: &str) -> (f64, f64) {
        let response = handler(State(api.clone())).await.unwrap();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        let scrape =
            prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
        let h = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get("workflow") == Some(wf));
        match h.map(|h| &h.value) {
            Some(prometheus_parse::Value::Histogram(buckets)) => {
                let count = buckets
                    .iter()
                    .find(|b| b.less_than.is_infinite())
                    .map_or(0.0, |b| b.count);
                let sum = text
                    .lines()
                    .find(|l| l.starts_with(&format!("{name}_sum{{workflow=\"{wf}\"}}")))
                    .and_then(|l| l.rsplit(' ').next())
                    .map_or(0.0, |v| v.parse().unwrap());
                (count, sum)
            }
            _ => (0.0, 0.0),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rows_finishing_after_a_long_running_one_are_counted_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let api = crate::api::read::tests::api_over(dir.path());
        exec(
            &api,
            "INSERT INTO projects (id, dir, created_at) VALUES (1, '/p', 'x');
             INSERT INTO revisions (id, project_id, workflow, hash, timezone, sources, created_at)
               VALUES (1, 1, 'wf', 'h', 'UTC', '[]', 'x');
             INSERT INTO sessions (id, project_id, workflow, session_time, session_uuid, created_at)
               VALUES (1, 1, 'wf', '2026-01-01T00:00:00Z', 'u1', 'x'),
                      (2, 1, 'wf', '2026-01-02T00:00:00Z', 'u2', 'x'),
                      (3, 1, 'wf', '2026-01-03T00:00:00Z', 'u3', 'x');
             -- A long-running attempt first, with a long-running task run.
             INSERT INTO attempts (id, session_id, attempt_name, revision_id, params, state, created_at)
               VALUES (1, 1, '', 1, '{}', 'running', '2026-01-01T00:00:00Z');
             INSERT INTO tasks (id, attempt_id, epoch, child_index, full_name, kind, role, state,
                                created_at, updated_at)
               VALUES (1, 1, 0, 0, '+wf', 'operator', 'root', 'running', 'x', 'x');
             INSERT INTO task_runs (id, task_id, fence, started_at)
               VALUES (1, 1, 1, '2026-01-01T00:00:00Z');
             -- Then one that finished in 10 s.
             INSERT INTO attempts (id, session_id, attempt_name, revision_id, params, state,
                                   created_at, finished_at)
               VALUES (2, 2, '', 1, '{}', 'succeeded', '2026-01-02T00:00:00Z',
                       '2026-01-02T00:00:10Z');
             INSERT INTO tasks (id, attempt_id, epoch, child_index, full_name, kind, role, state,
                                created_at, updated_at)
               VALUES (2, 2, 0, 0, '+wf', 'operator', 'root', 'succeeded', 'x', 'x');
             INSERT INTO task_runs (id, task_id, fence, started_at, finished_at, outcome)
               VALUES (2, 2, 1, '2026-01-02T00:00:00Z', '2026-01-02T00:00:04Z', 'succeeded');",
        );
        let attempts = "spade_attempt_duration_seconds";
        let runs = "spade_task_duration_seconds";
        assert_eq!(scraped(&api, attempts, "wf").await, (1.0, 10.0));
        assert_eq!(scraped(&api, runs, "wf").await, (1.0, 4.0));

        // Another finishes after it, while the first still runs: counted at the next scrape.
        exec(
            &api,
            "INSERT INTO attempts (id, session_id, attempt_name, revision_id, params, state,
                                   created_at, finished_at)
               VALUES (3, 3, '', 1, '{}', 'failed', '2026-01-03T00:00:00Z',
                       '2026-01-03T00:00:20Z');",
        );
        assert_eq!(scraped(&api, attempts, "wf").await, (2.0, 30.0));

        // The long one finishes: counted once, and nothing is counted twice.
        exec(
            &api,
            "UPDATE attempts SET state = 'succeeded', finished_at = '2026-01-01T01:00:00Z'
               WHERE id = 1;
             UPDATE task_runs SET finished_at = '2026-01-01T00:30:00Z', outcome = 'succeeded'
               WHERE id = 1;",
        );
        assert_eq!(scraped(&api, attempts, "wf").await, (3.0, 3630.0));
        assert_eq!(scraped(&api, attempts, "wf").await, (3.0, 3630.0));
        assert_eq!(scraped(&api, runs, "wf").await, (2.0, 1804.0));
    }
}
