//! `spade run`: create or resume one attempt of a workflow and drive it to completion.

use crate::clock::Clock;
use crate::engine::{AttemptState, ClaimOutcome, Engine, Lease, NewAttempt, OwnerId};
use crate::executor::heartbeat::real_ms;
use crate::executor::{self, spawn::TokioSpawner, AttemptSpec, Deps, StopLevel};
use crate::expr::JsonMap;
use crate::Error;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Running a session again continues its attempt (the same --attempt-name, default none):
  - unfinished (spade stopped): it continues where it was;
  - failed or killed: it resumes, keeping every task that succeeded (with the params it
    stored) and running the failed, skipped and never-run ones again;
  - succeeded: it is reported and nothing runs.
--rerun runs a finished attempt again from scratch. New -p/-P values deep-merge over the
attempt's params when it resumes or reruns; an unfinished attempt keeps its own.")]
pub struct RunArgs {
    /// Workflow name or `.dig` file (default: the project's only workflow).
    pub workflow: Option<String>,
    /// The project directory (default: the `.dig` file's directory, else the current one).
    #[arg(long)]
    pub project: Option<PathBuf>,
    /// `YYYY-MM-DD`, `"YYYY-MM-DD HH:MM:SS"` (in the workflow's zone), an ISO 8601 time with
    /// offset, or `now`, `daily`, `hourly`, `last` (default: today's midnight).
    #[arg(long)]
    pub session: Option<String>,
    /// A param, `KEY=VALUE` (dotted keys nest: `-p a.b=c`); repeatable, wins over `-P`.
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// A YAML file of params.
    #[arg(short = 'P', long = "params-file", value_name = "FILE")]
    pub params_file: Option<PathBuf>,
    /// The database (default: `<project>/.spade/spade.db`).
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Run the session's finished attempt again from scratch: every task runs. Without it a
    /// failed or killed attempt resumes (tasks that succeeded are kept, the rest runs again)
    /// and a succeeded one is reported and not run.
    #[arg(long)]
    pub rerun: bool,
    /// Names the attempt: a second run with the same name resumes it instead of starting over.
    #[arg(long)]
    pub attempt_name: Option<String>,
    /// The most tasks the attempt's current tree may hold (history rows of retries and earlier
    /// tries do not count); a generator (`for_each>`, `loop>`, `call>`, ...) that would pass it
    /// fails.
    #[arg(long, value_name = "N", default_value_t = crate::engine::DEFAULT_TASK_LIMIT)]
    pub task_limit: u64,
    /// When another process is running this attempt, wait for it to finish or stop instead
    /// of refusing.
    #[arg(long)]
    pub wait: bool,
    /// How long a stop (SIGTERM, Ctrl-C) waits for running tasks after sending them SIGTERM
    /// before it kills them (like systemd's `TimeoutStopSec`).
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "30s",
        env = "SPADE_STOP_TIMEOUT"
    )]
    pub stop_timeout: String,
    /// At most this many operator tasks run at once (default: what the open-file limit allows);
    /// more wait for a free slot.
    #[arg(long, value_name = "N", env = "SPADE_MAX_TASKS")]
    pub max_tasks: Option<usize>,
    /// Test hook: virtual time runs this many times faster (retry waits, `wait>`, timeouts);
    /// reported durations are virtual.
    #[arg(long, hide = true)]
    pub time_scale: Option<f64>,
    /// Test hook: virtual time starts at this RFC 3339 instant.
    #[arg(long, hide = true)]
    pub time_origin: Option<String>,
}

pub(super) fn run(args: RunArgs) -> Result<u8, Error> {
    init_tracing();
    let clock: Arc<dyn Clock> =
        crate::clock::from_test_flags(args.time_origin.as_deref(), args.time_scale)
            .map_err(Error::Usage)?;
    let stop_timeout = parse_duration_flag("--stop-timeout", &args.stop_timeout)?;
    let (project_dir, name) = locate(&args)?;
    // An operator that is neither built in nor supplied by an executable stops the run before
    // it starts, as in `spade check`.
    let project = crate::operators::external::load_project(&project_dir)?;
    let mut stderr = std::io::stderr().lock();
    for d in &project.diagnostics {
        let _ = write!(stderr, "{}", d.render(&project.sources));
    }
    drop(stderr);
    let workflow = pick_workflow(&project, name.as_deref())?;
    let tz = TimeZone::get(&workflow.timezone).map_err(|e| {
        Error::Usage(format!(
            "unknown timezone `{}` in workflow `{}`: {e}",
            workflow.timezone, workflow.name
        ))
    })?;
    let now = clock.now();
    let session_arg = args.session.as_deref().unwrap_or("daily");
    // `last` needs the database; every other form is checked before anything is opened.
    let parsed_session = match session_arg.trim() {
        "last" => None,
        text => Some(parse_session(text, &tz, now)?),
    };
    let params = collect_params(&args)?;

    // Absolute, because run files derived from it are handed to commands that may `cd`.
    let db = match &args.db {
        Some(db) if db.is_relative() => std::env::current_dir()
            .map_err(|source| Error::Io {
                what: "cannot read the current directory".into(),
                source,
            })?
            .join(db),
        Some(db) => db.clone(),
        None => project_dir.join(".spade").join("spade.db"),
    };
    let state_dir = db
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    std::fs::create_dir_all(&state_dir).map_err(|e| {
        Error::Usage(format!(
            "cannot create {}: {e}; make the project directory writable or pass --db PATH",
            state_dir.display()
        ))
    })?;
    let engine = Arc::new(Engine::open(&db)?.with_task_limit(args.task_limit));
    let session_time = match parsed_session {
        Some(t) => t,
        None => match last_session_time(&engine, &project_dir, &workflow.name)? {
            Some(t) => t,
            None => parse_session("daily", &tz, now)?,
        },
    };
    let sources = revision_sources(&project, workflow, &project_dir);
    let request = NewAttempt {
        project_dir: project_dir.clone(),
        workflow: workflow.clone(),
        sources,
        session_time,
        attempt_name: args.attempt_name.clone(),
        params,
        rerun: args.rerun,
        resume_from: None,
    };
    // One thread: every process is spawned from it, so the parent-death signal (bound to the
    // spawning thread) fires exactly when spade itself dies. Engine calls run inline on it.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            what: "cannot start the async runtime".into(),
            source,
        })?;
    let lease = Lease::default();
    let owner = engine.register_run_owner(crate::clock::SystemClock.now(), real_ms(), &lease)?;
    let outcome = runtime.block_on(run_owned(RunOwned {
        engine: engine.clone(),
        clock: clock.clone(),
        owner: owner.id.clone(),
        lease,
        request: &request,
        workflow,
        tz: &tz,
        project_dir,
        state_dir,
        wait: args.wait,
        stop_timeout,
        max_tasks: args.max_tasks,
        given_params: !args.params.is_empty() || args.params_file.is_some(),
    }));
    // The owner row goes whatever happened; attempts it still held become free.
    if let Err(e) = engine.unregister_owner(&owner.id) {
        tracing::warn!(error = %e, "cannot remove the owner row; it expires with its lease");
    }
    outcome
}

/// What `run_owned` needs.
struct RunOwned<'a> {
    engine: Arc<Engine>,
    clock: Arc<dyn Clock>,
    owner: OwnerId,
    lease: Lease,
    request: &'a NewAttempt,
    workflow: &'a crate::dig::Workflow,
    tz: &'a TimeZone,
    project_dir: PathBuf,
    state_dir: PathBuf,
    wait: bool,
    stop_timeout: std::time::Duration,
    max_tasks: Option<usize>,
    /// `-p` or `-P` was given (a message says when they do not apply).
    given_params: bool,
}

/// Claims the attempt (or waits for its owner with `--wait`), drives it under the claim with
/// the stop signals and the lease heartbeat running, and reports how it ended.
async fn run_owned(r: RunOwned<'_>) -> Result<u8, Error> {
    let (stop_tx, stop_rx) = executor::stop_channel();
    let first_signal =
        crate::signals::watch_stop_signals(stop_tx.clone()).map_err(|source| Error::Io {
            what: "cannot install the SIGTERM/SIGINT handlers".into(),
            source,
        })?;
    // require>: required attempts are driven in this process, as Digdag's local mode does.
    let mut host = crate::operators::require_host::Host::new(
        r.engine.clone(),
        r.owner.clone(),
        r.clock.clone(),
        Arc::new(TokioSpawner),
        None,
        r.state_dir.clone(),
        stop_rx.clone(),
        r.stop_timeout,
    );
    host.progress = true;
    crate::operators::require_host::install(host);
    let heartbeat = tokio::spawn(executor::heartbeat::keep_lease(
        r.engine.clone(),
        r.owner.clone(),
        r.lease,
        stop_tx,
        // An attempt another process drives ends without telling us: waiting runs look again.
        |_| crate::operators::require_host::attempt_finished(),
    ));
    // A kill asked through the store (`spade kill`, the API of a daemon on this database)
    // reaches this process at its next look, every lease renewal.
    let (kill_tx, kill_rx) = tokio::sync::watch::channel(false);
    let watcher = tokio::spawn(watch_cancel(
        r.engine.clone(),
        r.owner.clone(),
        r.lease.renew_every,
        kill_tx,
    ));
    let result = claim_and_drive(&r, stop_rx, kill_rx, &first_signal).await;
    crate::operators::require_host::uninstall();
    heartbeat.abort();
    watcher.abort();
    result
}

/// Sets `kill` once a kill of one of this owner's attempts was asked for.
async fn watch_cancel(
    engine: Arc<Engine>,
    owner: OwnerId,
    every: std::time::Duration,
    kill: tokio::sync::watch::Sender<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let engine = engine.clone();
        let owner = owner.clone();
        let asked = tokio::task::spawn_blocking(move || engine.cancel_requested(&owner)).await;
        if matches!(asked, Ok(Ok(ref ids)) if !ids.is_empty()) {
            let _ = writeln!(
                std::io::stderr().lock(),
                "kill requested: stopping the running tasks"
            );
            kill.send_replace(true);
            return;
        }
    }
}

async fn claim_and_drive(
    r: &RunOwned<'_>,
    stop_rx: tokio::sync::watch::Receiver<StopLevel>,
    kill_rx: tokio::sync::watch::Receiver<bool>,
    first_signal: &tokio::sync::watch::Receiver<Option<crate::signals::StopSignal>>,
) -> Result<u8, Error> {
    let session_text = r.request.session_time.to_zoned(r.tz.clone()).to_string();
    let mut announced_wait = false;
    let (prepared, claim) = loop {
        let (prepared, outcome) =
            r.engine
                .prepare_and_claim(r.request, r.clock.now(), &r.owner, real_ms())?;
        match outcome {
            ClaimOutcome::Claimed(claim) => break (prepared, Some(claim)),
            ClaimOutcome::Finished => break (prepared, None),
            ClaimOutcome::Busy(other) => {
                let message = format!(
                    "attempt {} of {} at {session_text} is being run by {}; wait for it or stop it",
                    prepared.attempt,
                    r.workflow.name,
                    other.describe()
                );
                if !r.wait {
                    return Err(Error::InUse(format!("{message} (`--wait` waits for it)")));
                }
                if !announced_wait {
                    let _ = writeln!(std::io::stderr().lock(), "{message}: waiting (--wait)");
                    announced_wait = true;
                }
                if let Some(sig) = *first_signal.borrow() {
                    return Ok(sig.exit_code());
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    };
    let _ = write!(
        std::io::stderr().lock(),
        "{}",
        prepared_message(&prepared, &r.workflow.name, &session_text, r.given_params)
    );
    let started = r.clock.now();
    let state = match claim {
        None => r.engine.attempt_state(prepared.attempt)?,
        Some(claim) => {
            let deps = Deps {
                clock: r.clock.clone(),
                spawner: Arc::new(TokioSpawner),
                engine: Arc::new(executor::Claimed {
                    engine: r.engine.clone(),
                    claim,
                }),
                task_slots: Some(Arc::new(tokio::sync::Semaphore::new(
                    r.max_tasks
                        .unwrap_or_else(
                            || crate::host::max_tasks_for(crate::host::raise_fd_limit()),
                        )
                        .max(1),
                ))),
            };
            let spec = AttemptSpec {
                attempt: prepared.attempt,
                project_dir: r.project_dir.clone(),
                run_dir: executor::run_dir(&r.state_dir, prepared.attempt),
                workflow: Some(Arc::new(r.workflow.clone())),
                progress: true,
                // `${secret:db.password}` reads `SPADE_SECRET_DB_PASSWORD`.
                secrets: Arc::new(crate::expr::EnvSecrets),
                stop: stop_rx,
                stop_timeout: r.stop_timeout,
                started: None,
                kill: Some(kill_rx),
                on_change: None,
            };
            executor::drive(&deps, &spec).await?
        }
    };
    let took = r.clock.now().duration_since(started).as_secs_f64();
    let mut stderr = std::io::stderr().lock();
    if state == AttemptState::Running {
        let signal = *first_signal.borrow();
        let (name, code) = signal.map_or(("a stop request", 1), |s| (s.name(), s.exit_code()));
        let _ = writeln!(
            stderr,
            "attempt {} stopped by {name} after {took:.2}s: running tasks were stopped and recorded as interrupted; `spade run` again continues it",
            prepared.attempt
        );
        return Ok(code);
    }
    let (word, code) = match state {
        AttemptState::Succeeded => ("succeeded", 0),
        AttemptState::Failed => ("failed", 1),
        AttemptState::Killed => ("killed", 1),
        AttemptState::Running => ("is still running", 1),
    };
    if state != AttemptState::Succeeded {
        // Like `digdag run`, end with what failed and why.
        if let Ok(summary) = r.engine.attempt_summary(prepared.attempt) {
            for (task, message) in &summary.failures {
                let _ = writeln!(stderr, "failed: {task}: {message}");
            }
        }
    }
    let _ = writeln!(stderr, "attempt {} {word} in {took:.2}s", prepared.attempt);
    Ok(code)
}

/// What `spade run` says about the attempt it found or made, one line (more for a resume).
fn prepared_message(
    prepared: &crate::engine::PreparedAttempt,
    workflow: &str,
    session: &str,
    given_params: bool,
) -> String {
    let head = format!("attempt {} of {workflow} at {session}", prepared.attempt);
    if let Some(report) = &prepared.resume {
        let mut out = format!(
            "{head} resumes: {} succeeded task{} kept{}, the rest runs again\n",
            report.kept.len(),
            if report.kept.len() == 1 { "" } else { "s" },
            name_list(&report.kept)
        );
        if report.definition_changed {
            out.push_str(&format!(
                "  the workflow changed since the previous try; {} new task{} run{}{}\n",
                report.new.len(),
                if report.new.len() == 1 { "" } else { "s" },
                if report.new.len() == 1 { "s" } else { "" },
                name_list(&report.new)
            ));
        }
        if let Some(from) = &report.from {
            out.push_str(&format!("  runs again from {from}\n"));
        }
        if !report.changed.is_empty() {
            out.push_str(&format!(
                "  {} changed task{} run{} again{}\n",
                report.changed.len(),
                if report.changed.len() == 1 { "" } else { "s" },
                if report.changed.len() == 1 { "s" } else { "" },
                name_list(&report.changed)
            ));
        }
        if !report.after_changed.is_empty() {
            out.push_str(&format!(
                "  {} succeeded task{} after them run{} again{}\n",
                report.after_changed.len(),
                if report.after_changed.len() == 1 {
                    ""
                } else {
                    "s"
                },
                if report.after_changed.len() == 1 {
                    "s"
                } else {
                    ""
                },
                name_list(&report.after_changed)
            ));
        }
        return out;
    }
    match (prepared.created, prepared.state) {
        (true, _) if prepared.rerun => format!("{head} runs again from scratch (--rerun)\n"),
        (true, _) => format!("{head} started\n"),
        (false, AttemptState::Succeeded) => format!(
            "{head} already succeeded, so nothing runs{}; run it again with --rerun, or start a \
             separate attempt with --attempt-name NAME\n",
            if given_params {
                " (the -p/-P values were not applied)"
            } else {
                ""
            }
        ),
        (false, AttemptState::Running) => format!(
            "{head} has not finished (spade stopped while it ran): it continues where it stopped\n"
        ),
        (false, state @ (AttemptState::Failed | AttemptState::Killed)) => {
            format!("{head} {}\n", state.as_str())
        }
    }
}

/// ` (a, b, c and 4 more)`: the first few names of a list for a message, empty for none.
fn name_list(names: &[String]) -> String {
    const SHOWN: usize = 5;
    if names.is_empty() {
        return String::new();
    }
    let mut out = names
        .iter()
        .take(SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        out.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    format!(" ({out})")
}

/// What the revision hash covers: the workflow's file, every file it `!include`s (the files
/// its definition's spans point into), and every file it `call>`s, recursively (read as
/// `call>` reads them at run time). A changed callee or included file is a new revision.
fn revision_sources(
    project: &crate::dig::Project,
    workflow: &crate::dig::Workflow,
    project_dir: &Path,
) -> Vec<(PathBuf, String)> {
    use crate::dig::{TaskDef, TaskKind, Value, ValueKind};
    fn value_files(
        v: &Value,
        files: &mut std::collections::BTreeSet<u32>,
        calls: &mut Vec<String>,
    ) {
        let mut stack = vec![v];
        while let Some(v) = stack.pop() {
            files.insert(v.span.file.0);
            match &v.kind {
                ValueKind::Seq(items) => stack.extend(items),
                ValueKind::Map(m) => {
                    for (k, v) in &m.entries {
                        files.insert(k.span.file.0);
                        if k.name == "call>" {
                            if let Some(t) = v.as_template().filter(|t| !t.has_expr()) {
                                calls.push(t.raw.clone());
                            }
                        }
                        stack.push(v);
                    }
                }
                ValueKind::Null
                | ValueKind::Bool(_)
                | ValueKind::Int(_)
                | ValueKind::Float(_)
                | ValueKind::Str(_) => {}
            }
        }
    }
    fn task_files(
        d: &TaskDef,
        files: &mut std::collections::BTreeSet<u32>,
        calls: &mut Vec<String>,
    ) {
        files.insert(d.span.file.0);
        for (k, v) in d.export.entries.iter().chain(&d.params.entries) {
            files.insert(k.span.file.0);
            value_files(v, files, calls);
        }
        match &d.kind {
            TaskKind::Group(children) => {
                for c in children {
                    task_files(c, files, calls);
                }
            }
            TaskKind::Operator(op) => {
                files.insert(op.span.file.0);
                if op.name == "call" {
                    if let Some(t) = op.command.as_template().filter(|t| !t.has_expr()) {
                        calls.push(t.raw.clone());
                    }
                }
                for v in [
                    Some(&op.command),
                    op.do_block.as_ref(),
                    op.else_do_block.as_ref(),
                ]
                .into_iter()
                .flatten()
                {
                    value_files(v, files, calls);
                }
            }
        }
        for h in [&d.error, &d.check].into_iter().flatten() {
            task_files(h, files, calls);
        }
    }
    let mut files = std::collections::BTreeSet::new();
    files.insert(workflow.span.file.0);
    let mut calls = Vec::new();
    task_files(&workflow.root, &mut files, &mut calls);
    let mut sources: Vec<(PathBuf, String)> = files
        .into_iter()
        .filter_map(|id| project.sources.get(crate::diag::FileId(id)))
        .map(|f| (f.path.clone(), f.text.clone()))
        .collect();
    // Callees, as `call>` finds them (relative to the caller's directory in the project).
    let mut seen: std::collections::HashSet<PathBuf> = std::collections::HashSet::new();
    let mut pending: Vec<(PathBuf, String)> =
        calls.into_iter().map(|c| (PathBuf::new(), c)).collect();
    while let Some((dir, target)) = pending.pop() {
        let mut target = target;
        if !target.ends_with(".dig") {
            target.push_str(".dig");
        }
        let relative = dir.join(&target);
        let path = project_dir.join(&relative);
        if !seen.insert(path.clone()) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let mut map = crate::diag::SourceMap::new();
        if let Ok(doc) = crate::dig::parse_document(&mut map, path.clone(), text.clone()) {
            let mut nested = Vec::new();
            value_files(&doc, &mut std::collections::BTreeSet::new(), &mut nested);
            let callee_dir = relative.parent().map(Path::to_path_buf).unwrap_or_default();
            pending.extend(nested.into_iter().map(|c| (callee_dir.clone(), c)));
        }
        sources.push((path, text));
    }
    sources
}

/// A duration flag such as `--stop-timeout 30s` (`dig::duration` forms).
pub(crate) fn parse_duration_flag(flag: &str, text: &str) -> Result<std::time::Duration, Error> {
    crate::dig::duration::parse(text).ok_or_else(|| {
        Error::Usage(format!(
            "invalid {flag} `{text}`: expected a duration such as 30s, 5m, 1h30m or plain seconds"
        ))
    })
}

/// The newest session time of this workflow in the database, for `--session last`.
fn last_session_time(
    engine: &Engine,
    project_dir: &Path,
    workflow: &str,
) -> Result<Option<Timestamp>, Error> {
    // The store keys projects by canonical directory and keeps times as RFC 3339 UTC text,
    // which sorts chronologically.
    let dir = std::fs::canonicalize(project_dir).unwrap_or_else(|_| project_dir.to_path_buf());
    let newest: Option<String> = engine.store().read("last_session_time", |tx| {
        tx.query_row(
            "SELECT max(s.session_time) FROM sessions s JOIN projects p ON p.id = s.project_id \
             WHERE p.dir = ?1 AND s.workflow = ?2",
            rusqlite::params![dir.to_string_lossy(), workflow],
            |r| r.get(0),
        )
        .map_err(crate::store::sql("last_session_time"))
    })?;
    Ok(newest.and_then(|t| t.parse().ok()))
}

/// The project directory and the workflow name the arguments point at.
fn locate(args: &RunArgs) -> Result<(PathBuf, Option<String>), Error> {
    let cwd = std::env::current_dir().map_err(|source| Error::Io {
        what: "cannot read the current directory".into(),
        source,
    })?;
    let absolute = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            cwd.join(p)
        }
    };
    let project = args.project.as_deref().map(absolute);
    let Some(arg) = &args.workflow else {
        return Ok((project.unwrap_or(cwd), None));
    };
    let Some(stem) = arg.strip_suffix(".dig") else {
        return Ok((project.unwrap_or(cwd), Some(arg.clone())));
    };
    let file = absolute(Path::new(arg));
    let dir = match project {
        Some(dir) => dir,
        None => file.parent().map_or(cwd.clone(), Path::to_path_buf),
    };
    let name = file
        .strip_prefix(&dir)
        .ok()
        .and_then(|rel| rel.to_str())
        .and_then(|rel| rel.strip_suffix(".dig"))
        .map_or_else(
            || {
                Path::new(stem)
                    .file_name()
                    .map_or(stem.to_string(), |n| n.to_string_lossy().into_owned())
            },
            str::to_string,
        );
    Ok((dir, Some(name)))
}

fn pick_workflow<'p>(
    project: &'p crate::dig::Project,
    name: Option<&str>,
) -> Result<&'p crate::dig::Workflow, Error> {
    let errors = project.diagnostics.iter().filter(|d| d.is_error());
    let found = match name {
        Some(name) => project.workflow(name),
        None if project.workflows.len() == 1 => project.workflows.first(),
        None => {
            let names: Vec<&str> = project.workflows.iter().map(|w| w.name.as_str()).collect();
            return Err(Error::Usage(format!(
                "name the workflow to run: the project has {}",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    format!("`{}`", names.join("`, `"))
                }
            )));
        }
    };
    match found {
        Some(wf) => {
            let count = errors.filter(|d| d.span.file == wf.span.file).count();
            if count > 0 {
                return Err(Error::InvalidWorkflows { count });
            }
            Ok(wf)
        }
        None => {
            let count = errors.count();
            if count > 0 {
                return Err(Error::InvalidWorkflows { count });
            }
            let names: Vec<&str> = project.workflows.iter().map(|w| w.name.as_str()).collect();
            Err(Error::Usage(format!(
                "unknown workflow `{}` in {}; the project has {}",
                name.unwrap_or_default(),
                project.dir.display(),
                if names.is_empty() {
                    "no workflows".to_string()
                } else {
                    format!("`{}`", names.join("`, `"))
                }
            )))
        }
    }
}

/// `--session`: keywords, dates and times in the workflow's zone, or absolute times.
pub fn parse_session(text: &str, tz: &TimeZone, now: Timestamp) -> Result<Timestamp, Error> {
    let bad = |why: String| {
        Error::Usage(format!(
            "invalid --session `{text}`{why}: expected YYYY-MM-DD, \"YYYY-MM-DD HH:MM:SS\", an ISO 8601 time with offset, or one of now, daily, hourly, last"
        ))
    };
    let local = |z: Result<Zoned, jiff::Error>| {
        z.map(|z| z.timestamp()).map_err(|e| bad(format!(" ({e})")))
    };
    let today = || local(now.to_zoned(tz.clone()).start_of_day());
    match text.trim() {
        "now" => return Ok(now),
        // `last` is looked up in the database by the caller; with no session yet it is the
        // default, today's midnight.
        "daily" | "last" => return today(),
        "hourly" => {
            let z = now.to_zoned(tz.clone());
            return local(z.with().minute(0).second(0).subsec_nanosecond(0).build());
        }
        _ => {}
    }
    let text = text.trim();
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Ok(ts);
    }
    if text.len() == 10 {
        let date: Date = text.parse().map_err(|e| bad(format!(" ({e})")))?;
        return local(date.to_zoned(tz.clone()));
    }
    if text.len() == 19
        && text
            .as_bytes()
            .get(10)
            .is_some_and(|b| *b == b' ' || *b == b'T')
    {
        let dt: DateTime = text.parse().map_err(|e| bad(format!(" ({e})")))?;
        return local(dt.to_zoned(tz.clone()));
    }
    Err(bad(String::new()))
}

/// `-P` first, then every `-p` over it (`-p` values are strings, as in Digdag).
fn collect_params(args: &RunArgs) -> Result<JsonMap, Error> {
    let mut params = JsonMap::new();
    if let Some(path) = &args.params_file {
        // A params file that cannot be read is input to fix (exit 2), like a bad `-p`.
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Usage(format!(
                "cannot read the params file {}: {e}",
                path.display()
            ))
        })?;
        let mut sources = crate::diag::SourceMap::new();
        match crate::dig::parse_document(&mut sources, path.clone(), text) {
            Ok(doc) => match doc.to_json_raw() {
                serde_json::Value::Object(map) => params = map,
                serde_json::Value::Null => {}
                _ => {
                    return Err(Error::Usage(format!(
                        "{} must hold a map of params",
                        path.display()
                    )))
                }
            },
            Err(diags) => {
                let mut stderr = std::io::stderr().lock();
                for d in &diags {
                    let _ = write!(stderr, "{}", d.render(&sources));
                }
                return Err(Error::Usage(format!("cannot parse {}", path.display())));
            }
        }
    }
    for p in &args.params {
        let (key, value) = parse_param(p)?;
        crate::operators::sh::insert_dotted(&mut params, key, value.into());
    }
    Ok(params)
}

fn parse_param(text: &str) -> Result<(&str, &str), Error> {
    let bad = || {
        Error::Usage(format!(
            "invalid -p `{text}`: expected KEY=VALUE with a non-empty key (dotted keys nest: a.b=c)"
        ))
    };
    let (key, value) = text.split_once('=').ok_or_else(bad)?;
    if key.is_empty() || key.split('.').any(|seg| seg.trim().is_empty()) {
        return Err(bad());
    }
    Ok((key, value))
}

/// Logs go to stderr, filtered by `SPADE_LOG` (or `RUST_LOG`); warnings and errors by default.
fn init_tracing() {
    crate::logging::init(crate::config::LogFormat::Human, "warn");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, zone: &str, expect: Option<&str>) {
        let tz = TimeZone::get(zone).unwrap();
        let now: Timestamp = "2026-03-08T10:17:42Z".parse().unwrap();
        let got = parse_session(text, &tz, now).ok().map(|t| t.to_string());
        assert_eq!(got.as_deref(), expect, "{text} in {zone}");
    }

    #[test]
    fn session_forms() {
        check(
            "2016-01-30",
            "America/Los_Angeles",
            Some("2016-01-30T08:00:00Z"),
        );
        check(
            "2016-01-30 01:02:03",
            "Asia/Tokyo",
            Some("2016-01-29T16:02:03Z"),
        );
        check(
            "2016-01-30T01:02:03+09:00",
            "UTC",
            Some("2016-01-29T16:02:03Z"),
        );
        check(
            "2016-01-30T01:02:03Z",
            "Asia/Tokyo",
            Some("2016-01-30T01:02:03Z"),
        );
        check("now", "UTC", Some("2026-03-08T10:17:42Z"));
        check("daily", "UTC", Some("2026-03-08T00:00:00Z"));
        check("daily", "Asia/Tokyo", Some("2026-03-07T15:00:00Z"));
        check("hourly", "UTC", Some("2026-03-08T10:00:00Z"));
        check("last", "UTC", Some("2026-03-08T00:00:00Z"));
        // 02:30 does not exist in Los Angeles on 2026-03-08: the compatible reading moves on.
        check(
            "2026-03-08 02:30:00",
            "America/Los_Angeles",
            Some("2026-03-08T10:30:00Z"),
        );
        check("yesterday", "UTC", None);
        check("2016-13-01", "UTC", None);
        check("2016-01-30 25:00:00", "UTC", None);
        check("", "UTC", None);
    }

    #[test]
    fn params_nest_and_reject_bad_keys() {
        assert_eq!(parse_param("a.b=c=d").unwrap(), ("a.b", "c=d"));
        assert_eq!(parse_param("k=").unwrap(), ("k", ""));
        assert!(parse_param("novalue").is_err());
        assert!(parse_param("=x").is_err());
        assert!(parse_param("a..b=x").is_err());
    }
}
