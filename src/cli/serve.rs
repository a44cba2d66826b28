//! `spade serve`: run the scheduler daemon on a project (thin: flags and environment through
//! clap, the configuration file, then `daemon::serve`).

use crate::config::{self, Config, Layer};
use crate::daemon;
use crate::Error;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Every option is also a key of the configuration file (--max-attempts is max_attempts) and an
environment variable (SPADE_MAX_ATTEMPTS). Flags win over the environment, the environment
over the file.

Signals: SIGTERM or SIGINT stop it gracefully (no new sessions or tasks; running tasks get
SIGTERM, then SIGKILL after --stop-timeout; they are recorded interrupted and run again at the
next start); a second signal kills them at once.")]
pub struct ServeArgs {
    /// The project directory of `.dig` files (default: the current directory).
    #[arg(env = "SPADE_PROJECT")]
    pub project: Option<PathBuf>,
    /// The SQLite database (default: `<project>/.spade/spade.db`).
    #[arg(long, env = "SPADE_DB")]
    pub db: Option<PathBuf>,
    /// A TOML configuration file.
    #[arg(long, env = "SPADE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Attempts driven at once; more wait in a queue (default 64).
    #[arg(long, env = "SPADE_MAX_ATTEMPTS", value_name = "N")]
    pub max_attempts: Option<usize>,
    /// Operator tasks running at once across all attempts (default: what the open-file limit
    /// allows); more wait for a free slot.
    #[arg(long, env = "SPADE_MAX_TASKS", value_name = "N")]
    pub max_tasks: Option<usize>,
    /// The most tasks one attempt's current tree may hold (history rows of retries and earlier
    /// tries do not count); a generator that would pass it fails (default 100000).
    #[arg(long, env = "SPADE_TASK_LIMIT", value_name = "N")]
    pub task_limit: Option<u64>,
    /// How long a stop waits for running tasks after SIGTERM before SIGKILL (default 30s).
    #[arg(long, env = "SPADE_STOP_TIMEOUT", value_name = "DURATION")]
    pub stop_timeout: Option<String>,
    /// Where the HTTP API listens (default 127.0.0.1:65432). Off loopback the configuration
    /// file must hold `api_token_file` (or `api_token`); a token is never a flag.
    #[arg(long, env = "SPADE_LISTEN", value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// `human` (default) or `json`.
    #[arg(long, env = "SPADE_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Retention: delete finished attempts (with their tasks, runs and logs) that finished
    /// longer ago than this, e.g. 90d (default: off, attempts are kept).
    #[arg(long, env = "SPADE_GC_OLDER_THAN", value_name = "DURATION")]
    pub gc_older_than: Option<String>,
    /// How often the --gc-older-than policy runs on the daemon's clock (default 1h).
    #[arg(long, env = "SPADE_GC_INTERVAL", value_name = "DURATION")]
    pub gc_interval: Option<String>,
    /// Print the sessions a start would create now (session time, run time, reason), one per
    /// line, and exit without starting anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Test hook: virtual time starts at this RFC 3339 instant.
    #[arg(long, hide = true)]
    pub time_origin: Option<String>,
    /// Test hook: virtual seconds per real second.
    #[arg(long, hide = true)]
    pub time_scale: Option<f64>,
}

impl ServeArgs {
    fn layer(&self) -> Layer {
        Layer {
            project: self.project.clone(),
            db: self.db.clone(),
            max_attempts: self.max_attempts,
            max_tasks: self.max_tasks,
            task_limit: self.task_limit,
            stop_timeout: self.stop_timeout.clone(),
            log_format: self.log_format.clone(),
            listen: self.listen.clone(),
            api_token: None,
            api_token_file: None,
            gc_older_than: self.gc_older_than.clone(),
            gc_interval: self.gc_interval.clone(),
        }
    }
}

pub(super) fn run(args: ServeArgs) -> Result<u8, Error> {
    let clock = crate::clock::from_test_flags(args.time_origin.as_deref(), args.time_scale)
        .map_err(Error::Usage)?;
    let file = match &args.config {
        Some(path) => config::load_file(path)?,
        None => Layer::default(),
    };
    let cwd = std::env::current_dir().map_err(|source| Error::Io {
        what: "cannot read the current directory".into(),
        source,
    })?;
    let mut config = Config::resolve(args.layer().over(file), &cwd)?;
    if !config.project.is_dir() {
        return Err(Error::Usage(format!(
            "{} is not a directory: pass the project directory of .dig files (`spade serve workflows`)",
            config.project.display()
        )));
    }
    if let Ok(dir) = std::fs::canonicalize(&config.project) {
        config.project = dir;
    }
    crate::logging::init(config.log_format, "info");
    if args.dry_run {
        return dry_run(&config, clock.now());
    }
    // A few workers: engine calls run on the blocking pool, and task processes are spawned
    // from worker threads, which live as long as the runtime (the parent-death signal is
    // bound to the spawning thread).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            what: "cannot start the async runtime".into(),
            source,
        })?;
    let notifier = Arc::new(daemon::sdnotify::Notifier::from_env());
    runtime.block_on(async {
        let (stop_tx, _) = crate::executor::stop_channel();
        crate::signals::watch_stop_signals(stop_tx.clone()).map_err(|source| Error::Io {
            what: "cannot install the SIGTERM/SIGINT handlers".into(),
            source,
        })?;
        daemon::serve(&config, clock, notifier, stop_tx).await?;
        Ok::<(), Error>(())
    })?;
    Ok(0)
}

/// `--dry-run`: what a start would fire now, read from the store without writing to it.
fn dry_run(config: &Config, now: jiff::Timestamp) -> Result<u8, Error> {
    let (project, report) = daemon::project::load(&config.project, None)?;
    let mut stderr = std::io::stderr().lock();
    for (_, d) in &report.diagnostics {
        let _ = write!(stderr, "{d}");
    }
    drop(stderr);
    let engine = if config.db.exists() {
        Some(crate::engine::Engine::open(&config.db)?)
    } else {
        None
    };
    let project_id = match &engine {
        Some(e) => e.find_project(&config.project)?,
        None => None,
    };
    let planned = daemon::scheduler::plan(engine.as_ref(), project_id, &project, now)?;
    let mut out = std::io::stdout().lock();
    for p in &planned {
        let _ = writeln!(
            out,
            "{} {} {} {}",
            p.workflow, p.session_time, p.run_time, p.reason
        );
    }
    if planned.is_empty() {
        let _ = writeln!(std::io::stderr().lock(), "no slot is due now");
    }
    Ok(0)
}
