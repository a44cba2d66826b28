//! The client commands, with Digdag's names and flags where Digdag has the verb: each is a
//! few API calls through `client::Client` and a table (or `--json`).

use super::table::{self, s};
use crate::client::{self, Client};
use crate::Error;
use serde_json::{json, Value};
use std::io::Write as _;
use std::path::PathBuf;

/// How to reach the daemon.
#[derive(Debug, clap::Args)]
pub struct Connection {
    /// The daemon's API (default: the local daemon, http://127.0.0.1:65432).
    #[arg(long, env = "SPADE_ENDPOINT", value_name = "URL")]
    pub endpoint: Option<String>,
    /// A file holding the API token (the token itself comes from SPADE_API_TOKEN, never a
    /// flag).
    #[arg(long, env = "SPADE_API_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Print the daemon's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl Connection {
    fn client(&self) -> Result<Client, Error> {
        let token = client::token(
            std::env::var("SPADE_API_TOKEN").ok(),
            self.token_file.as_deref(),
        )?;
        Ok(Client::new(
            self.endpoint.as_deref().unwrap_or(client::DEFAULT_ENDPOINT),
            token,
        )?)
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// List the workflows the daemon serves.
    Workflows {
        /// Only this workflow.
        name: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// List the schedules with their next session and run times.
    Schedules {
        #[command(flatten)]
        conn: Connection,
    },
    /// List sessions, newest first, with their last attempt.
    Sessions {
        /// Only sessions of this workflow.
        workflow: Option<String>,
        #[command(flatten)]
        page: Page,
        #[command(flatten)]
        conn: Connection,
    },
    /// List attempts, newest first.
    Attempts {
        /// Only attempts of this workflow.
        workflow: Option<String>,
        /// Also attempts that were retried (not only each session's newest).
        #[arg(long)]
        include_retried: bool,
        #[command(flatten)]
        page: Page,
        #[command(flatten)]
        conn: Connection,
    },
    /// Show one attempt.
    Attempt {
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Show the tasks of an attempt: state, times, retries, error.
    Tasks {
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Print the logs of an attempt, or of one of its tasks; `-f` follows them live.
    Log {
        id: String,
        /// A task (`+step` or its full name `+wf+step`).
        task: Option<String>,
        /// Follow the logs until the attempt finishes.
        #[arg(short = 'f', long)]
        follow: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Start a session of a workflow.
    Start {
        workflow: String,
        /// The session time: an ISO 8601 time with offset, YYYY-MM-DD or "YYYY-MM-DD HH:MM:SS"
        /// in the workflow's zone.
        #[arg(long)]
        session: String,
        /// A param, `-p key=value` (repeatable; values are strings, as in Digdag).
        #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// Name this attempt (a second attempt of the same session needs a new name).
        #[arg(long)]
        attempt_name: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Run a finished attempt again: `--resume` keeps what succeeded and did not change,
    /// `--all` runs every task, `--from TASK` runs TASK and everything after it again.
    #[command(group(clap::ArgGroup::new("mode").required(true).args(["resume", "all", "from"])))]
    Retry {
        id: String,
        #[arg(long)]
        resume: bool,
        #[arg(long)]
        all: bool,
        /// The task (`+group+task`, as `spade tasks` lists it) to run again with everything
        /// after it; what comes before it and succeeded is kept (Digdag's `--resume-from`).
        #[arg(long, value_name = "TASK", alias = "resume-from")]
        from: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Kill a running attempt: queued tasks are canceled, running ones stopped.
    Kill {
        id: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Start the past sessions of a schedule from a time on.
    #[command(group(clap::ArgGroup::new("until").args(["to", "count"])))]
    Backfill {
        workflow: String,
        /// The first session time.
        #[arg(long)]
        from: String,
        /// The last session time.
        #[arg(long)]
        to: Option<String>,
        /// At most this many sessions.
        #[arg(long)]
        count: Option<usize>,
        /// Name the attempts (sessions that ran already run again under a new name).
        #[arg(long)]
        attempt_name: Option<String>,
        /// Show the sessions it would start, and start none.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Move a schedule's next slot: skip N slots or to a time.
    #[command(group(clap::ArgGroup::new("how").required(true).args(["skip", "skip_to"])))]
    Reschedule {
        workflow: String,
        #[arg(long)]
        skip: Option<u32>,
        #[arg(long, value_name = "TIME")]
        skip_to: Option<String>,
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Stop a workflow's schedule from firing.
    Disable {
        workflow: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Let a disabled schedule fire again (missed slots follow its `catchup:` policy).
    Enable {
        workflow: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Delete finished attempts that finished longer ago than a duration, with their tasks,
    /// runs, logs and the sessions they leave empty; running attempts are never touched.
    Gc {
        /// How old a finished attempt must be: 90d, 12h, 30m, 1d12h (units d, h, m, s).
        #[arg(long, value_name = "DURATION")]
        older_than: String,
        /// Show what would be removed, and remove nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        conn: Connection,
    },
}

/// Paging of the lists.
#[derive(Debug, clap::Args)]
pub struct Page {
    /// Rows per page (default 100).
    #[arg(long)]
    pub page_size: Option<usize>,
    /// Show rows older than this id (the last id of the previous page).
    #[arg(long)]
    pub last_id: Option<String>,
}

impl Page {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(n) = self.page_size {
            q.push(("page_size", n.to_string()));
        }
        if let Some(id) = &self.last_id {
            q.push(("last_id", id.clone()));
        }
        q
    }
}

pub fn run(cmd: ClientCommand) -> Result<u8, Error> {
    match cmd {
        ClientCommand::Workflows { name, conn } => {
            let c = conn.client()?;
            let mut q = Vec::new();
            if let Some(n) = name {
                q.push(("name", n));
            }
            let v = c.get("/api/workflows", &q)?;
            output(&conn, &v, || {
                let rows = list(&v, "workflows")
                    .map(|w| {
                        vec![
                            s(w, "id").into(),
                            s(w, "name").into(),
                            s(w, "timezone").into(),
                            s(w, "revision").into(),
                        ]
                    })
                    .collect::<Vec<_>>();
                table::print(&["ID", "WORKFLOW", "TIMEZONE", "REVISION"], &rows);
            })
        }
        ClientCommand::Schedules { conn } => {
            let v = conn.client()?.get("/api/schedules", &[])?;
            output(&conn, &v, || {
                let rows = list(&v, "schedules")
                    .map(|x| {
                        vec![
                            s(x, "id").into(),
                            s(&x["workflow"], "name").into(),
                            s(x, "nextScheduleTime").into(),
                            table::local_time(x, "nextRunTime"),
                            if x["disabledAt"].is_null() {
                                "enabled".into()
                            } else {
                                format!("disabled since {}", table::local_time(x, "disabledAt"))
                            },
                        ]
                    })
                    .collect::<Vec<_>>();
                table::print(
                    &["ID", "WORKFLOW", "NEXT SESSION", "NEXT RUN", "STATE"],
                    &rows,
                );
            })
        }
        ClientCommand::Sessions {
            workflow,
            page,
            conn,
        } => {
            let mut q = page.query();
            if let Some(w) = workflow {
                q.push(("workflow", w));
            }
            let v = conn.client()?.get("/api/sessions", &q)?;
            output(&conn, &v, || {
                let rows = list(&v, "sessions")
                    .map(|x| {
                        let a = &x["lastAttempt"];
                        vec![
                            s(x, "id").into(),
                            s(&x["workflow"], "name").into(),
                            s(x, "sessionTime").into(),
                            s(a, "id").into(),
                            table::status(s(a, "status")),
                            table::local_time(a, "createdAt"),
                            table::duration(a, "createdAt", "finishedAt"),
                        ]
                    })
                    .collect::<Vec<_>>();
                table::print(
                    &[
                        "ID",
                        "WORKFLOW",
                        "SESSION TIME",
                        "ATTEMPT",
                        "STATUS",
                        "CREATED",
                        "DURATION",
                    ],
                    &rows,
                );
            })
        }
        ClientCommand::Attempts {
            workflow,
            include_retried,
            page,
            conn,
        } => {
            let mut q = page.query();
            if let Some(w) = workflow {
                q.push(("workflow", w));
            }
            if include_retried {
                q.push(("include_retried", "true".into()));
            }
            let v = conn.client()?.get("/api/attempts", &q)?;
            output(&conn, &v, || {
                let rows = list(&v, "attempts").map(attempt_row).collect::<Vec<_>>();
                table::print(&ATTEMPT_HEADERS, &rows);
            })
        }
        ClientCommand::Attempt { id, conn } => {
            let v = conn.client()?.get(&format!("/api/attempts/{id}"), &[])?;
            output(&conn, &v, || {
                table::print(&ATTEMPT_HEADERS, &[attempt_row(&v)])
            })
        }
        ClientCommand::Tasks { id, conn } => {
            let v = conn
                .client()?
                .get(&format!("/api/attempts/{id}/tasks"), &[])?;
            output(&conn, &v, || {
                let rows = list(&v, "tasks")
                    .map(|t| {
                        vec![
                            s(t, "id").into(),
                            s(t, "fullName").into(),
                            table::status(s(t, "state")),
                            t["retryCount"].as_i64().unwrap_or(0).to_string(),
                            table::local_time(t, "startedAt"),
                            table::duration(t, "startedAt", "finishedAt"),
                            s(&t["error"], "message").replace('\n', " "),
                        ]
                    })
                    .collect::<Vec<_>>();
                table::print(
                    &[
                        "ID", "TASK", "STATE", "RETRIES", "STARTED", "DURATION", "ERROR",
                    ],
                    &rows,
                );
            })
        }
        ClientCommand::Log {
            id,
            task,
            follow,
            conn,
        } => log(&conn, &id, task.as_deref(), follow),
        ClientCommand::Start {
            workflow,
            session,
            params,
            attempt_name,
            conn,
        } => {
            let c = conn.client()?;
            let wf = workflow_id(&c, &workflow)?;
            let mut p = serde_json::Map::new();
            for kv in &params {
                let (k, v) = kv.split_once('=').ok_or_else(|| {
                    Error::Usage(format!("invalid -p `{kv}`: expected KEY=VALUE"))
                })?;
                p.insert(k.to_owned(), Value::String(v.to_owned()));
            }
            let mut body = json!({"workflowId": wf, "sessionTime": session, "params": p});
            if let Some(n) = attempt_name {
                body["retryAttemptName"] = Value::String(n);
            }
            started(&conn, c.put("/api/attempts", &body))
        }
        ClientCommand::Retry {
            id,
            resume,
            all: _,
            from,
            conn,
        } => {
            let c = conn.client()?;
            let a = c.get(&format!("/api/attempts/{id}"), &[])?;
            let resume = match from {
                Some(task) => json!({"mode": "from", "attemptId": id, "from": task}),
                None => json!({"mode": if resume { "failed" } else { "all" }, "attemptId": id}),
            };
            let body = json!({
                "workflowId": s(&a["workflow"], "id"),
                "sessionTime": s(&a, "sessionTime"),
                "resume": resume,
            });
            started(&conn, c.put("/api/attempts", &body))
        }
        ClientCommand::Kill { id, conn } => {
            conn.client()?
                .post(&format!("/api/attempts/{id}/kill"), &json!({}))?;
            let _ = writeln!(std::io::stderr().lock(), "kill requested for attempt {id}");
            Ok(0)
        }
        ClientCommand::Backfill {
            workflow,
            from,
            to,
            count,
            attempt_name,
            dry_run,
            conn,
        } => {
            let c = conn.client()?;
            let sid = schedule_id(&c, &workflow)?;
            let mut body = json!({"fromTime": from, "dryRun": dry_run});
            if let Some(t) = to {
                body["toTime"] = Value::String(t);
            }
            if let Some(n) = count {
                body["count"] = n.into();
            }
            if let Some(n) = attempt_name {
                body["attemptName"] = Value::String(n);
            }
            let v = c.post(&format!("/api/schedules/{sid}/backfill"), &body)?;
            output(&conn, &v, || {
                let rows = list(&v, "attempts")
                    .map(|a| {
                        vec![
                            if a["id"].is_null() {
                                "-".into()
                            } else {
                                s(a, "id").into()
                            },
                            s(a, "sessionTime").into(),
                            s(a, "retryAttemptName").into(),
                        ]
                    })
                    .collect::<Vec<_>>();
                if dry_run {
                    let _ = writeln!(
                        std::io::stderr().lock(),
                        "dry run: {} session(s) would start",
                        rows.len()
                    );
                } else {
                    let _ = writeln!(
                        std::io::stderr().lock(),
                        "{} session(s) started",
                        rows.len()
                    );
                }
                table::print(&["ATTEMPT", "SESSION TIME", "NAME"], &rows);
            })
        }
        ClientCommand::Reschedule {
            workflow,
            skip,
            skip_to,
            dry_run,
            conn,
        } => {
            let c = conn.client()?;
            let sid = schedule_id(&c, &workflow)?;
            let mut body = json!({"dryRun": dry_run});
            if let Some(n) = skip {
                body["count"] = n.into();
            }
            if let Some(t) = skip_to {
                body["nextTime"] = Value::String(t);
            }
            let v = c.post(&format!("/api/schedules/{sid}/skip"), &body)?;
            output(&conn, &v, || {
                let _ = writeln!(
                    std::io::stdout().lock(),
                    "next session: {}",
                    s(&v, "nextScheduleTime")
                );
            })
        }
        ClientCommand::Disable { workflow, conn } => toggle(&conn, &workflow, "disable"),
        ClientCommand::Enable { workflow, conn } => toggle(&conn, &workflow, "enable"),
        ClientCommand::Gc {
            older_than,
            dry_run,
            conn,
        } => {
            let v = conn.client()?.post(
                "/api/gc",
                &json!({"olderThan": older_than, "dryRun": dry_run}),
            )?;
            output(&conn, &v, || gc_table(&v))
        }
    }
}

/// `spade gc`: one row per workflow, a total, and a line saying what happened.
fn gc_table(v: &Value) {
    let n = |c: &Value, key: &str| c[key].as_u64().unwrap_or(0);
    let row = |name: &str, c: &Value| {
        vec![
            name.to_owned(),
            n(c, "attempts").to_string(),
            n(c, "sessions").to_string(),
            n(c, "tasks").to_string(),
            n(c, "logFiles").to_string(),
            table::bytes(n(c, "logBytes")),
            table::local_time(c, "oldestFinishedAt"),
            table::local_time(c, "newestFinishedAt"),
        ]
    };
    let mut rows: Vec<Vec<String>> = v["workflows"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, c)| row(name, c))
        .collect();
    if n(v, "orphanLogDirs") > 0 {
        rows.push(vec![
            format!("({} orphan log dirs)", n(v, "orphanLogDirs")),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ]);
    }
    rows.push(row("TOTAL", v));
    let verb = if v["dryRun"] == Value::Bool(true) {
        "dry run: would remove"
    } else {
        "removed"
    };
    let _ = writeln!(
        std::io::stderr().lock(),
        "{verb} {} attempt(s), {} session(s), {} task(s), {} log file(s) ({}) of attempts that finished before {}; kept {} old attempt(s) still needed (a require> of a kept attempt points at it, or it holds the highest id)",
        n(v, "attempts"),
        n(v, "sessions"),
        n(v, "tasks"),
        n(v, "logFiles"),
        table::bytes(n(v, "logBytes")),
        table::local_time(v, "before"),
        n(v, "kept"),
    );
    table::print(
        &[
            "WORKFLOW",
            "ATTEMPTS",
            "SESSIONS",
            "TASKS",
            "LOG FILES",
            "LOG BYTES",
            "OLDEST FINISH",
            "NEWEST FINISH",
        ],
        &rows,
    );
}

const ATTEMPT_HEADERS: [&str; 8] = [
    "ID",
    "WORKFLOW",
    "SESSION TIME",
    "NAME",
    "STATUS",
    "CREATED",
    "DURATION",
    "SESSION",
];

fn attempt_row(a: &Value) -> Vec<String> {
    vec![
        s(a, "id").into(),
        s(&a["workflow"], "name").into(),
        s(a, "sessionTime").into(),
        s(a, "retryAttemptName").into(),
        table::status(s(a, "status")),
        table::local_time(a, "createdAt"),
        table::duration(a, "createdAt", "finishedAt"),
        s(a, "sessionId").into(),
    ]
}

fn list<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

fn output(conn: &Connection, v: &Value, human: impl FnOnce()) -> Result<u8, Error> {
    if conn.json {
        table::json(v);
    } else {
        human();
    }
    Ok(0)
}

/// A start's answer: the attempt, or the one in the way (exit 1).
fn started(conn: &Connection, answer: Result<Value, client::Error>) -> Result<u8, Error> {
    match answer {
        Ok(v) => output(conn, &v, || {
            let _ = writeln!(
                std::io::stderr().lock(),
                "started attempt {} of {} at {}",
                s(&v, "id"),
                s(&v["workflow"], "name"),
                s(&v, "sessionTime")
            );
            if let Some(r) = v.get("resume") {
                let mut err = std::io::stderr().lock();
                if let Some(from) = r["from"].as_str() {
                    let _ = writeln!(err, "  runs again from: {from}");
                }
                for (key, what) in [
                    ("kept", "kept (succeeded before, unchanged)"),
                    ("changed", "changed, run again"),
                    (
                        "rerunAfterChange",
                        "succeeded before, run again after a change",
                    ),
                    ("new", "new"),
                ] {
                    let names: Vec<&str> = r[key]
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    if !names.is_empty() {
                        let _ = writeln!(err, "  {what}: {}", names.join(", "));
                    }
                }
            }
            table::print(&ATTEMPT_HEADERS, &[attempt_row(&v)]);
        }),
        Err(client::Error::Api {
            status: 409,
            message,
            body,
        }) => {
            if conn.json {
                table::json(&body);
            }
            Err(Error::InUse(message))
        }
        Err(e) => Err(e.into()),
    }
}

fn workflow_id(c: &Client, name: &str) -> Result<String, Error> {
    let v = c.get("/api/workflows", &[("name", name.to_owned())])?;
    let found = list(&v, "workflows")
        .find(|w| s(w, "name") == name)
        .map(|w| s(w, "id").to_owned())
        .ok_or_else(|| {
            Error::Usage(format!(
                "the daemon serves no workflow named {name} (`spade workflows` lists them)"
            ))
        });
    found
}

fn schedule_id(c: &Client, workflow: &str) -> Result<String, Error> {
    let v = c.get("/api/schedules", &[])?;
    let found = list(&v, "schedules")
        .find(|x| s(&x["workflow"], "name") == workflow)
        .map(|x| s(x, "id").to_owned())
        .ok_or_else(|| {
            Error::Usage(format!(
                "workflow {workflow} has no schedule (`spade schedules` lists them)"
            ))
        });
    found
}

fn toggle(conn: &Connection, workflow: &str, verb: &str) -> Result<u8, Error> {
    let c = conn.client()?;
    let sid = schedule_id(&c, workflow)?;
    let v = c.post(&format!("/api/schedules/{sid}/{verb}"), &json!({}))?;
    output(conn, &v, || {
        let _ = writeln!(std::io::stderr().lock(), "schedule of {workflow}: {verb}d");
    })
}

fn log(conn: &Connection, id: &str, task: Option<&str>, follow: bool) -> Result<u8, Error> {
    let c = conn.client()?;
    let matches = |name: &str| task.is_none_or(|t| super::super::api::read::task_matches(name, t));
    let mut out = std::io::stdout().lock();
    if follow {
        c.events(&format!("/api/attempts/{id}/events"), |kind, data| {
            match kind {
                "log" if matches(s(data, "fullName")) => {
                    let _ = write!(out, "{}", s(data, "text"));
                    let _ = out.flush();
                }
                "attempt" => {
                    let _ = writeln!(
                        std::io::stderr().lock(),
                        "attempt {id} finished: {}",
                        s(data, "status")
                    );
                    return false;
                }
                _ => {}
            }
            true
        })?;
        return Ok(0);
    }
    let mut q = Vec::new();
    if let Some(t) = task {
        q.push(("task", t.to_owned()));
    }
    let files = c.get(&format!("/api/logs/{id}/files"), &q)?;
    if conn.json {
        table::json(&files);
        return Ok(0);
    }
    for f in list(&files, "files") {
        let text = c.get_text(&format!("/api/logs/{id}/files/{}", s(f, "fileName")), &[])?;
        let _ = write!(out, "{text}");
    }
    Ok(0)
}
