//! `GET /metrics` in the Prometheus text format (version 0.0.4). Attempt and task figures are
//! read from the store at each scrape, so they match it by construction (and survive a
//! restart); durations are histograms folded in from finished runs and attempts since the
//! last scrape (a cursor on their ids); HTTP requests are counted in memory.

use super::{blocking, Api, ApiResult};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use rusqlite::params;
use std::collections::BTreeMap;
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
}

#[derive(Default)]
struct Inner {
    /// `(method, route, status)` → count.
    requests: BTreeMap<(String, String, u16), u64>,
    request_seconds: BTreeMap<String, Histogram>,
    /// Task run durations by workflow, folded in up to `run_cursor`.
    task_seconds: BTreeMap<String, Histogram>,
    run_cursor: i64,
    attempt_seconds: BTreeMap<String, Histogram>,
    attempt_cursor: i64,
    /// Attempts started by this daemon's API (manual starts and backfills).
    api_starts: BTreeMap<String, u64>,
    /// Attempts `gc` removed (the API's and the policy's).
    gc_removed: u64,
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
    /// `(run id, workflow, seconds)` of runs finished after the cursor, in id order, and the
    /// id of the first unfinished run (the cursor stops there).
    runs: Vec<(i64, String, Option<f64>)>,
    finished_attempts: Vec<(i64, String, Option<f64>)>,
    /// `(workflow, lag seconds)` of enabled schedules.
    lag: Vec<(String, f64)>,
}

fn seconds_between(start: &str, end: Option<&str>) -> Option<f64> {
    let start: jiff::Timestamp = start.parse().ok()?;
    let end: jiff::Timestamp = end?.parse().ok()?;
    Some(end.duration_since(start).as_secs_f64().max(0.0))
}

fn scrape(
    tx: &crate::store::Tx<'_>,
    project: crate::ids::ProjectId,
    run_cursor: i64,
    attempt_cursor: i64,
    now: jiff::Timestamp,
) -> Result<Scraped, crate::store::Error> {
    use crate::store::sql;
    let collect = |statement: &str, p: &[&dyn rusqlite::ToSql], op: &'static str| {
        let mut stmt = tx.prepare_cached(statement).map_err(sql(op))?;
        let rows = stmt
            .query_map(p, |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            })
            .map_err(sql(op))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql(op))?;
        Ok::<_, crate::store::Error>(rows)
    };
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
    let runs = collect(
        "SELECT r.id, s.workflow, r.started_at, r.finished_at FROM task_runs r \
         JOIN tasks t ON t.id = r.task_id JOIN attempts a ON a.id = t.attempt_id \
         JOIN sessions s ON s.id = a.session_id WHERE r.id > ?1 ORDER BY r.id LIMIT 100000",
        &[&run_cursor],
        "metrics_runs",
    )?
    .into_iter()
    .map(|(id, wf, start, end)| {
        (
            id,
            wf,
            end.as_deref()
                .and_then(|e| seconds_between(&start, Some(e))),
        )
    })
    .collect();
    let finished_attempts = collect(
        "SELECT a.id, s.workflow, a.created_at, a.finished_at FROM attempts a \
         JOIN sessions s ON s.id = a.session_id WHERE a.id > ?1 ORDER BY a.id LIMIT 100000",
        &[&attempt_cursor],
        "metrics_attempt_times",
    )?
    .into_iter()
    .map(|(id, wf, start, end)| {
        (
            id,
            wf,
            end.as_deref()
                .and_then(|e| seconds_between(&start, Some(e))),
        )
    })
    .collect();
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
        finished_attempts,
        lag,
    })
}

/// Folds finished items after the cursor into histograms; the cursor stops at the first
/// unfinished one, so it is counted once it finishes.
fn fold(
    items: Vec<(i64, String, Option<f64>)>,
    cursor: &mut i64,
    into: &mut BTreeMap<String, Histogram>,
) {
    for (id, workflow, seconds) in items {
        match seconds {
            Some(s) => {
                into.entry(workflow).or_default().observe(s);
                *cursor = id;
            }
            None => break,
        }
    }
}

pub async fn handler(State(api): State<Api>) -> ApiResult<Response> {
    let (run_cursor, attempt_cursor) = {
        let m = api.metrics.inner.lock().unwrap_or_else(|p| p.into_inner());
        (m.run_cursor, m.attempt_cursor)
    };
    let engine = api.handle.engine.clone();
    let project = api.handle.project_id;
    let now = api.handle.clock.now();
    let s = blocking(move || {
        engine
            .store()
            .read("metrics", |tx| {
                scrape(tx, project, run_cursor, attempt_cursor, now)
            })
            .map_err(Into::into)
    })
    .await?;
    let load = *api.handle.load.borrow();
    let mut m = api.metrics.inner.lock().unwrap_or_else(|p| p.into_inner());
    let inner = &mut *m;
    // A concurrent scrape may have folded the same rows: only fold past the current cursor.
    let runs = s
        .runs
        .into_iter()
        .filter(|r| r.0 > inner.run_cursor)
        .collect();
    fold(runs, &mut inner.run_cursor, &mut inner.task_seconds);
    let attempts = s
        .finished_attempts
        .into_iter()
        .filter(|r| r.0 > inner.attempt_cursor)
        .collect();
    fold(
        attempts,
        &mut inner.attempt_cursor,
        &mut inner.attempt_seconds,
    );

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
    for (workflow, h) in &inner.task_seconds {
        h.write(
            &mut out,
            "spade_task_duration_seconds",
            &format!("workflow=\"{}\"", label(workflow)),
        );
    }
    out.push_str("# HELP spade_attempt_duration_seconds Duration of finished attempts (creation to finish).\n# TYPE spade_attempt_duration_seconds histogram\n");
    for (workflow, h) in &inner.attempt_seconds {
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
    drop(m);
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response())
}
