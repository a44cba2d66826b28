//! The HTTP API of `spade serve` against the real daemon: Digdag's JSON shapes, paging,
//! 400/404/409 bodies, the token off loopback, and `/metrics` through a real Prometheus
//! text-format parser, matched with the store.

// Test helpers: a failed unwrap is a failed test here.
#![allow(clippy::unwrap_used)]

use crate::daemon::{rows, wait_until, Proc};
use crate::run::Project;
use serde_json::{json, Value};
use std::time::Duration;

pub(crate) const LONG: Duration = Duration::from_secs(60);

/// A daemon on a free loopback port, killed (by pid) on drop.
pub(crate) struct Daemon {
    pub(crate) proc: Proc,
    pub(crate) base: String,
    token: Option<String>,
}

impl Daemon {
    /// `spade serve .` in `project` with `extra` flags; waits until its API answers.
    pub(crate) fn start(project: &Project, extra: &[&str]) -> Daemon {
        let mut args = vec!["serve", "."];
        args.extend_from_slice(extra);
        let n = std::fs::read_dir(project.path()).unwrap().count();
        let proc = Proc::start_with(
            &args,
            project.path(),
            project.path().join(format!(".serve-{n}.log")),
            &[("SPADE_LOG", "info")],
        );
        let mut base = String::new();
        wait_until(
            "the API to listen",
            LONG,
            || {
                let log = proc.log_text();
                let Some(at) = log.find("API listening on http://") else {
                    return false;
                };
                let rest = &log[at + "API listening on ".len()..];
                base = rest
                    .split(|c: char| c.is_whitespace() || c == '"')
                    .next()
                    .unwrap()
                    .to_owned();
                true
            },
            || proc.log_text(),
        );
        // 0.0.0.0 listens everywhere; talk to it over loopback.
        let base = base.replace("0.0.0.0", "127.0.0.1");
        Daemon {
            proc,
            base,
            token: None,
        }
    }

    pub(crate) fn with_token(mut self, token: &str) -> Daemon {
        self.token = Some(token.to_owned());
        self
    }

    fn request(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let client = reqwest::blocking::Client::new();
        let mut req = client.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let response = req.send().unwrap();
        let status = response.status().as_u16();
        let text = response.text().unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    pub(crate) fn get(&self, path: &str) -> (u16, Value) {
        self.request(reqwest::Method::GET, path, None)
    }

    pub(crate) fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.request(reqwest::Method::PUT, path, Some(body))
    }

    pub(crate) fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.request(reqwest::Method::POST, path, Some(body))
    }

    /// Polls the attempt until it is done; returns it.
    pub(crate) fn wait_done(&self, id: &str) -> Value {
        let mut last = Value::Null;
        wait_until(
            &format!("attempt {id} to finish"),
            LONG,
            || {
                last = self.get(&format!("/api/attempts/{id}")).1;
                last["done"] == json!(true)
            },
            || self.proc.log_text(),
        );
        last
    }

    pub(crate) fn workflow_id(&self, name: &str) -> String {
        let (_, v) = self.get("/api/workflows");
        v["workflows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == name)
            .unwrap_or_else(|| panic!("no workflow {name} in {v}"))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

#[test]
fn endpoints_answer_with_digdags_shapes_paging_and_errors() {
    let project = Project::new();
    project.write(
        "daily.dig",
        "timezone: Asia/Tokyo\nschedule:\n  daily>: 09:00:00\n+a:\n  sh>: echo hello ${session_date}\n+b:\n  echo>: done\n",
    );
    let d = Daemon::start(&project, &[]);
    let (status, health) = d.get("/health");
    assert_eq!((status, health["status"].clone()), (200, json!("ok")));
    assert_eq!(
        d.get("/api/version").1["version"],
        env!("CARGO_PKG_VERSION")
    );

    let (_, projects) = d.get("/api/projects");
    let p = &projects["projects"][0];
    assert!(p["id"].is_string(), "{p}");
    let wf = d.workflow_id("daily");
    let (_, w) = d.get(&format!("/api/workflows/{wf}"));
    assert_eq!(w["name"], "daily");
    assert_eq!(w["timezone"], "Asia/Tokyo");
    assert_eq!(w["project"]["id"], p["id"]);

    let (_, schedules) = d.get("/api/schedules");
    let s = &schedules["schedules"][0];
    assert_eq!(
        keys(s),
        [
            "disabledAt",
            "id",
            "nextRunTime",
            "nextScheduleTime",
            "project",
            "workflow"
        ]
    );
    assert!(
        s["nextScheduleTime"].as_str().unwrap().ends_with("+09:00"),
        "{s}"
    );
    assert!(s["nextRunTime"].as_str().unwrap().ends_with('Z'), "{s}");

    // Start three sessions, one after another.
    let mut ids = Vec::new();
    for day in ["2026-03-01", "2026-03-02", "2026-03-03"] {
        let (status, a) = d.put(
            "/api/attempts",
            &json!({"workflowId": wf, "sessionTime": day, "params": {"k": "v"}}),
        );
        assert_eq!(status, 200, "{a}");
        ids.push(a["id"].as_str().unwrap().to_owned());
        d.wait_done(a["id"].as_str().unwrap());
    }
    let (_, a) = d.get(&format!("/api/attempts/{}", ids[0]));
    assert_eq!(
        keys(&a),
        [
            "cancelRequested",
            "createdAt",
            "done",
            "finishedAt",
            "id",
            "index",
            "params",
            "project",
            "retryAttemptName",
            "sessionId",
            "sessionTime",
            "sessionUuid",
            "status",
            "success",
            "workflow"
        ]
    );
    assert_eq!(a["sessionTime"], "2026-03-01T00:00:00+09:00");
    assert_eq!(
        (a["status"].clone(), a["success"].clone()),
        (json!("success"), json!(true))
    );
    assert_eq!(a["params"], json!({"k": "v"}));
    assert_eq!(a["workflow"]["id"], wf);
    assert!(a["retryAttemptName"].is_null());

    // A duplicate start is 409 with the attempt in the way.
    let (status, conflict) = d.put(
        "/api/attempts",
        &json!({"workflowId": wf, "sessionTime": "2026-03-01T00:00:00+09:00"}),
    );
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(conflict["status"], 409);
    assert_eq!(conflict["attempt"]["id"], a["id"]);
    assert!(conflict["message"]
        .as_str()
        .unwrap()
        .contains("exists already"));

    // Tasks: every task with Digdag's state names, times and retry counts.
    let (_, tasks) = d.get(&format!("/api/attempts/{}/tasks", ids[0]));
    let names: Vec<(&str, &str)> = tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["fullName"].as_str().unwrap(),
                t["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("+daily", "success"),
            ("+daily+a", "success"),
            ("+daily+b", "success")
        ]
    );
    let b = &tasks["tasks"][2];
    assert_eq!(b["upstreams"], json!([tasks["tasks"][1]["id"]]));
    assert_eq!(b["retryCount"], 0);
    assert!(b["startedAt"].as_str().unwrap().ends_with('Z'));

    // Logs: one file per run, its contents.
    let (_, files) = d.get(&format!("/api/logs/{}/files", ids[0]));
    let files = files["files"].as_array().unwrap().clone();
    assert_eq!(files.len(), 2, "{files:?}");
    assert_eq!(files[0]["taskName"], "+daily+a");
    let name = files[0]["fileName"].as_str().unwrap();
    let (status, text) = d.get(&format!("/api/logs/{}/files/{name}", ids[0]));
    assert_eq!((status, text), (200, json!("hello 2026-03-01\n")));
    let (_, only_b) = d.get(&format!("/api/logs/{}/files?task=%2Bb", ids[0]));
    assert_eq!(only_b["files"].as_array().unwrap().len(), 1);

    // Paging, newest first.
    let (_, page) = d.get("/api/sessions?page_size=2");
    let page = page["sessions"].as_array().unwrap().clone();
    assert_eq!(page.len(), 2);
    assert_eq!(page[0]["lastAttempt"]["id"], json!(ids[2]));
    let last = page[1]["id"].as_str().unwrap();
    let (_, rest) = d.get(&format!("/api/sessions?page_size=2&last_id={last}"));
    let rest = rest["sessions"].as_array().unwrap().clone();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0]["lastAttempt"]["id"], json!(ids[0]));
    let (_, attempts) = d.get("/api/attempts?workflow=daily&page_size=1");
    assert_eq!(attempts["attempts"][0]["id"], json!(ids[2]));
    let sid = a["sessionId"].as_str().unwrap();
    let (_, of_session) = d.get(&format!("/api/sessions/{sid}/attempts"));
    assert_eq!(of_session["attempts"][0]["id"], a["id"]);

    // Errors are JSON with the right 4xx.
    let (status, e) = d.put(
        "/api/attempts",
        &json!({"workflowId": wf, "sessionTime": "next tuesday"}),
    );
    assert_eq!(status, 400);
    assert_eq!(e["status"], 400);
    assert!(
        e["message"].as_str().unwrap().contains("sessionTime"),
        "{e}"
    );
    assert!(e["message"].as_str().unwrap().contains("ISO 8601"), "{e}");
    for path in [
        "/api/attempts/999",
        "/api/sessions/999",
        "/api/workflows/999",
        "/api/nothing",
    ] {
        let (status, e) = d.get(path);
        assert_eq!(
            (status, e["status"].clone()),
            (404, json!(404)),
            "{path}: {e}"
        );
    }
    let (status, e) = d.get("/api/sessions?page_size=0");
    assert_eq!(status, 400, "{e}");
    let (status, e) = d.get("/api/attempts/abc");
    assert_eq!(status, 400, "{e}");
    let (status, e) = d.put("/api/attempts", &json!({"sessionTime": "2026-01-01"}));
    assert_eq!((status, e["status"].clone()), (400, json!(400)), "{e}");
    assert!(e["message"].as_str().unwrap().contains("workflowId"), "{e}");
    let big = "x".repeat(2 * 1024 * 1024);
    let (status, _) = d.put(
        "/api/attempts",
        &json!({"workflowId": wf, "sessionTime": "2026-01-01", "params": {"big": big}}),
    );
    assert_eq!(status, 413);
    let (status, e) = d.post(&format!("/api/attempts/{}/kill", ids[0]), &json!({}));
    assert_eq!(status, 409, "killing a finished attempt: {e}");

    // Schedules: disable, skip, enable.
    let sid = s["id"].as_str().unwrap();
    let (status, v) = d.post(&format!("/api/schedules/{sid}/disable"), &json!({}));
    assert_eq!(status, 200, "{v}");
    assert!(v["disabledAt"].is_string());
    let next = s["nextScheduleTime"].as_str().unwrap().to_owned();
    let (_, v) = d.post(&format!("/api/schedules/{sid}/skip"), &json!({"count": 2}));
    let skipped: jiff::Timestamp = v["nextScheduleTime"].as_str().unwrap().parse().unwrap();
    let before: jiff::Timestamp = next.parse().unwrap();
    assert_eq!(skipped.duration_since(before).as_hours(), 48, "{v}");
    let (_, v) = d.post(&format!("/api/schedules/{sid}/enable"), &json!({}));
    assert!(v["disabledAt"].is_null());
}

#[test]
fn a_non_loopback_bind_needs_a_token_then_requires_it() {
    let project = Project::new();
    project.write("wf.dig", "+a:\n  echo>: hi\n");
    let refused = crate::util::spade()
        .args(["serve", ".", "--listen", "0.0.0.0:0"])
        .current_dir(project.path())
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("api_token_file"), "{stderr}");
    assert!(!project.path().join(".spade/spade.db").exists());

    project.write("token", "t0ken-for-the-test\n");
    project.write("spade.toml", "api_token_file = \"token\"\n");
    let d = Daemon::start(
        &project,
        &["--listen", "0.0.0.0:0", "--config", "spade.toml"],
    );
    let (status, e) = d.get("/api/workflows");
    assert_eq!((status, e["status"].clone()), (401, json!(401)));
    assert_eq!(
        d.get("/health").0,
        200,
        "health stays open for load balancers"
    );
    let d = d.with_token("wrong-token-of-same-len");
    assert_eq!(d.get("/api/workflows").0, 401);
    let d = d.with_token("t0ken-for-the-test");
    let (status, v) = d.get("/api/workflows");
    assert_eq!(status, 200, "{v}");
    assert_eq!(d.get("/metrics").0, 200);
    assert!(
        !d.proc.log_text().contains("t0ken"),
        "the token reached the log"
    );
}

#[test]
fn metrics_parse_as_prometheus_text_and_match_the_store() {
    let project = Project::new();
    project.write("ok.dig", "+a:\n  echo>: fine\n");
    project.write("bad.dig", "+a:\n  fail>: broken\n");
    let d = Daemon::start(&project, &[]);
    for (wf, days) in [("ok", 3), ("bad", 2)] {
        let id = d.workflow_id(wf);
        for day in 1..=days {
            let (status, a) = d.put(
                "/api/attempts",
                &json!({"workflowId": id, "sessionTime": format!("2026-02-0{day}")}),
            );
            assert_eq!(status, 200, "{a}");
            d.wait_done(a["id"].as_str().unwrap());
        }
    }
    let text = reqwest::blocking::get(format!("{}/metrics", d.base))
        .unwrap()
        .text()
        .unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
    };
    let db = project.path().join(".spade/spade.db");
    for (wf, state, status) in [("ok", "succeeded", "success"), ("bad", "failed", "error")] {
        let stored: f64 = rows(
            &db,
            &format!(
                "SELECT COUNT(*) FROM attempts a JOIN sessions s ON s.id = a.session_id \
                 WHERE s.workflow = '{wf}' AND a.state = '{state}'"
            ),
        )[0][0]
            .parse()
            .unwrap();
        assert_eq!(
            value(
                "spade_attempts_total",
                &[("workflow", wf), ("status", status)]
            ),
            stored
        );
    }
    assert_eq!(
        value("spade_attempts_started_total", &[("workflow", "ok")]),
        3.0
    );
    assert_eq!(value("spade_queue_depth", &[]), 0.0);
    let runs: usize = rows(&db, "SELECT COUNT(*) FROM task_runs")[0][0]
        .parse()
        .unwrap();
    let histogram_count: f64 = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "spade_task_duration_seconds")
        .map(|s| match &s.value {
            prometheus_parse::Value::Histogram(h) => h
                .iter()
                .find(|b| b.less_than.is_infinite())
                .map_or(0.0, |b| b.count),
            _ => 0.0,
        })
        .sum();
    assert_eq!(histogram_count, runs as f64, "{text}");

    // Store transaction times, by connection and kind: the writer's count grows with work,
    // the readers' with every API read.
    let transactions = |scrape: &prometheus_parse::Scrape, connection: &str, kind: &str| {
        scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == "spade_store_transaction_seconds"
                    && s.labels.get("connection") == Some(connection)
                    && s.labels.get("kind") == Some(kind)
            })
            .map(|s| match &s.value {
                prometheus_parse::Value::Histogram(h) => h
                    .iter()
                    .find(|b| b.less_than.is_infinite())
                    .map_or(f64::NAN, |b| b.count),
                _ => f64::NAN,
            })
            .unwrap_or_else(|| panic!("no store transactions of {connection} {kind}"))
    };
    let before = [
        transactions(&scrape, "writer", "write"),
        transactions(&scrape, "reader", "read"),
    ];
    assert!(before[0] > 0.0 && before[1] > 0.0, "{text}");
    transactions(&scrape, "writer", "read");
    let (status, a) = d.put(
        "/api/attempts",
        &json!({"workflowId": d.workflow_id("ok"), "sessionTime": "2026-02-09"}),
    );
    assert_eq!(status, 200, "{a}");
    d.wait_done(a["id"].as_str().unwrap());
    let text = reqwest::blocking::get(format!("{}/metrics", d.base))
        .unwrap()
        .text()
        .unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let after = [
        transactions(&scrape, "writer", "write"),
        transactions(&scrape, "reader", "read"),
    ];
    assert!(
        after[0] >= before[0] + 2.0 && after[1] > before[1],
        "{before:?} -> {after:?}"
    );
}

#[test]
fn openapi_lists_exactly_the_routes_the_server_has() {
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(crate::util::root().join("docs/openapi.json")).unwrap(),
    )
    .unwrap();
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, methods) in doc["paths"].as_object().unwrap() {
        for method in methods.as_object().unwrap().keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    documented.sort();
    let mut routes: Vec<(String, String)> = spade::api::ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    routes.sort();
    assert_eq!(
        documented, routes,
        "docs/openapi.json and api::ROUTES differ"
    );

    // Every documented route is one the running server answers (not its fallback, not 405).
    let project = Project::new();
    project.write("wf.dig", "+a:\n  echo>: hi\n");
    let d = Daemon::start(&project, &[]);
    let client = reqwest::blocking::Client::new();
    for (method, path) in &documented {
        let concrete = path.replace("{id}", "1").replace("{file}", "1.1.log");
        let response = client
            .request(method.parse().unwrap(), format!("{}{concrete}", d.base))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        assert_ne!(status, 405, "{method} {path}");
        assert!(
            !text.contains("no such endpoint"),
            "{method} {path} is documented but the server has no such route: {text}"
        );
    }
    let (status, e) = d.get("/api/projects/1/archive");
    assert_eq!(status, 404);
    assert!(e["message"].as_str().unwrap().contains("no such endpoint"));
}
