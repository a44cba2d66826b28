//! Operators (`sh>`, `echo>`, ...) and the one catalog of every operator name spade knows.
//!
//! Each implemented operator lives in its own file and is listed once in [`REGISTRY`]; the
//! executor looks operators up there, and so does anything that needs to know whether spade
//! can run an operator (the conformance test derives its skips from it). Any other operator
//! runs through `external`, the executable that supplies it (`protocol` is the exchange).

pub mod call;
pub mod catalog;
pub mod echo;
pub mod external;
pub mod fail;
pub mod for_each;
pub mod for_range;
pub mod http;
pub mod http_call;
pub mod if_op;
pub mod loop_op;
pub mod nop;
mod protocol;
pub mod py;
pub mod require;
pub mod require_host;
pub mod sh;
mod subtasks;
pub mod wait;

use crate::clock::{BoxFuture, Clock};
use crate::engine::{Event, Outcome, TaskRun};
use crate::executor::spawn::{ProcessSpec, SpawnError, Spawned, Spawner};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::mpsc;

/// Host failures of an operator (a failed user task is an [`Outcome::Failed`], not an `Error`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error("cannot {what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One operator implementation.
pub trait Operator: Send + Sync + 'static {
    /// Runs one try of a task. Cancel-safe: dropping the future kills what it started.
    fn run(&self, ctx: Context) -> BoxFuture<'static, Result<Outcome, Error>>;
}

/// Every operator spade can run, by name (without `>`).
pub const REGISTRY: &[(&str, &dyn Operator)] = &[
    ("call", &call::Call),
    ("echo", &echo::Echo),
    ("fail", &fail::Fail),
    ("for_each", &for_each::ForEach),
    ("for_range", &for_range::ForRange),
    ("http", &http::Http),
    ("http_call", &http_call::HttpCall),
    ("if", &if_op::If),
    ("loop", &loop_op::Loop),
    ("nop", &nop::Nop),
    ("py", &py::Py),
    ("require", &require::Require),
    ("sh", &sh::Sh),
    ("wait", &wait::Wait),
];

/// What runs operator `name`: its built-in implementation, else [`external::External`], which
/// looks for an executable supplying it when the task runs. `None` only for names that cannot
/// name an executable (`${...}` computed at run time, empty).
pub fn find(name: &str) -> Option<&'static dyn Operator> {
    built_in(name).or_else(|| external::is_operator_name(name).then_some(&external::External as _))
}

fn built_in(name: &str) -> Option<&'static dyn Operator> {
    REGISTRY.iter().find(|(n, _)| *n == name).map(|(_, op)| *op)
}

/// Whether spade has `name` built in (not counting executables that may supply it).
pub fn is_implemented(name: &str) -> bool {
    built_in(name).is_some()
}

/// The failure of a task whose operator spade does not run.
pub fn unsupported(name: &str) -> Outcome {
    failed(
        format!("operator `{name}>` is not supported by spade yet"),
        false,
    )
}

/// What one run of an operator gets: the task, where it runs, and the injected services.
#[derive(Clone)]
pub struct Context {
    pub run: Arc<TaskRun>,
    /// The project directory: relative paths (`append_file`, `_workdir`) start here.
    pub project_dir: PathBuf,
    /// Per-run files (`<task>.<fence>.log`, `.store`, `.exit`) live in this directory.
    pub run_dir: PathBuf,
    /// The static definition of the task when it comes from the file (not generated), for
    /// generators that need their unevaluated `_do` block.
    pub def: Option<Arc<crate::dig::TaskDef>>,
    pub clock: Arc<dyn Clock>,
    pub spawner: Arc<dyn Spawner>,
    /// `Spawned` events go to the driver, which records them before the run completes.
    pub events: mpsc::UnboundedSender<Event>,
    /// The process group of the running child, killed when the run is canceled or times out.
    pub pgid: Arc<Mutex<Option<u32>>>,
    /// Resolves `${secret:...}` at spawn time.
    pub secrets: Arc<dyn crate::expr::SecretProvider>,
    /// `SPADE_RUN`, set in the environment of every process of this run: what proves, after a
    /// crash, that a process still running is this run's (`host::kill_run_processes`).
    pub run_token: Option<String>,
    /// `spade run` in a terminal: task output is also copied to spade's own stdout and
    /// stderr. The daemon keeps it in the task logs only.
    pub foreground: bool,
    /// The attempt's completion journal, shared by every run of one drive.
    pub journal: Arc<sh::Journal>,
}

impl Context {
    /// `<run_dir>/<task>.<fence>.<ext>`.
    pub fn run_file(&self, ext: &str) -> PathBuf {
        run_file(&self.run_dir, self.run.task, self.run.fence, ext)
    }

    /// Spawns a process for this run and tells the engine about it.
    pub fn spawn(&self, mut spec: ProcessSpec) -> Result<Spawned, Error> {
        self.ensure_run_dir()?;
        if let Some(token) = &self.run_token {
            spec.env
                .push((crate::host::RUN_TOKEN_ENV.to_owned(), token.clone()));
        }
        let spawned = self.spawner.spawn(spec)?;
        *self.pgid.lock().unwrap_or_else(PoisonError::into_inner) = Some(spawned.pgid);
        // Journaled first: the driver records `Spawned` with the run's next transaction
        // rather than in one of its own, and a crash before that replays this line.
        sh::journal_spawn(
            &self.journal,
            self.run.task,
            self.run.fence,
            spawned.pid,
            spawned.pgid,
        );
        // A closed channel means the driver is gone and will drop this run anyway.
        let _ = self.events.send(Event::Spawned {
            task: self.run.task,
            fence: self.run.fence,
            pid: spawned.pid,
            pgid: spawned.pgid,
        });
        Ok(spawned)
    }

    /// Creates the run directory (made lazily: many attempts never need it).
    pub fn ensure_run_dir(&self) -> Result<(), Error> {
        let made = if self.journal.path_is_in(&self.run_dir) {
            self.journal.ensure_dir()
        } else {
            std::fs::create_dir_all(&self.run_dir)
        };
        made.map_err(|source| Error::Io {
            what: "create directory",
            path: self.run_dir.clone(),
            source,
        })
    }

    /// Keeps `text` as this run's log in the store (for output that has no log file).
    pub fn log(&self, text: String) {
        let _ = self.events.send(Event::Log {
            task: self.run.task,
            fence: self.run.fence,
            text,
        });
    }

    /// The evaluated `_command` as text (strings as-is, other values as JSON).
    pub fn command_text(&self) -> String {
        json_text(&self.run.command)
    }

    pub fn param(&self, key: &str) -> Option<&serde_json::Value> {
        self.run.params.get(key)
    }

    /// A param given as text (a string, or a scalar printed as JSON).
    pub fn param_text(&self, key: &str) -> Option<String> {
        match self.param(key)? {
            serde_json::Value::Null => None,
            v => Some(json_text(v)),
        }
    }
}

/// The path of a per-run file: task id and fence make it unique within an attempt.
pub fn run_file(
    run_dir: &std::path::Path,
    task: crate::ids::TaskId,
    fence: crate::ids::Fence,
    ext: &str,
) -> PathBuf {
    run_dir.join(format!("{task}.{fence}.{ext}"))
}

/// Strings as-is, everything else as JSON text (how Digdag hands params to processes).
pub fn json_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The engine's [`crate::engine::Inliner`]: runs that touch nothing outside the store end
/// in the transaction that starts them. `nop>` does nothing, and `echo>` without
/// `append_file` only keeps its message as the run's log (printed by the driver after the
/// commit). Everything else (files, processes, clocks, generators) goes to the executor.
pub fn inline(run: &TaskRun) -> Option<crate::engine::Inlined> {
    match run.operator.as_str() {
        "nop" => Some(crate::engine::Inlined { output: None }),
        "echo" if echo::appends_to(run).is_none() => Some(crate::engine::Inlined {
            output: Some(json_text(&run.command)),
        }),
        _ => None,
    }
}

pub fn succeeded() -> Outcome {
    Outcome::Succeeded {
        store: crate::expr::JsonMap::new(),
        reset_store: Vec::new(),
        export: crate::expr::JsonMap::new(),
        subtasks: None,
    }
}

pub fn failed(message: impl Into<String>, retryable: bool) -> Outcome {
    let message = message.into();
    let mut error = crate::expr::JsonMap::new();
    error.insert("message".into(), message.clone().into());
    Outcome::Failed {
        message,
        error,
        retryable,
    }
}

#[cfg(test)]
pub(crate) mod testkit {
    //! A context over a temp project with a fake or real spawner, for operator unit tests.

    use super::*;
    use crate::clock::ManualClock;
    use crate::ids::{AttemptId, Fence, TaskId};

    pub(crate) fn run(operator: &str, command: serde_json::Value, params: &str) -> TaskRun {
        TaskRun {
            attempt: AttemptId(1),
            task: TaskId(7),
            fence: Fence(1),
            full_name: format!("+wf+{operator}"),
            operator: operator.into(),
            command,
            params: serde_json::from_str(params).unwrap(),
            secret_keys: Vec::new(),
            timeout: None,
            deadline_at: None,
            retry_count: 0,
            generate_limit: 1000,
        }
    }

    pub(crate) fn context(
        dir: &std::path::Path,
        run: TaskRun,
        spawner: Arc<dyn Spawner>,
        clock: Arc<dyn Clock>,
    ) -> (Context, mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let run_dir = dir.join(".spade/logs/1");
        std::fs::create_dir_all(&run_dir).unwrap();
        let ctx = Context {
            run: Arc::new(run),
            project_dir: dir.to_path_buf(),
            def: None,
            clock,
            spawner,
            events: tx,
            pgid: Arc::new(Mutex::new(None)),
            secrets: Arc::new(crate::expr::EnvSecrets),
            run_token: None,
            foreground: true,
            journal: Arc::new(super::sh::Journal::new(&run_dir)),
            run_dir,
        };
        (ctx, rx)
    }

    pub(crate) fn manual_clock() -> Arc<ManualClock> {
        Arc::new(ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap()))
    }
}
