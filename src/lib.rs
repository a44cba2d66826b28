//! spade: a small, durable scheduler daemon for Digdag-style `.dig` workflow files.
//!
//! Module map (the pipeline reads top to bottom):
//! - `diag`: source files, spans, diagnostics and their rendering.
//! - `dig`: `.dig` text -> spanned value tree -> checked `Workflow`.
//! - `expr`: `${...}` evaluation (JavaScript subset, moment, built-ins, secrets).
//! - `schedule`: `schedule:` -> firing times, DST-correct.
//! - `catchup`: whether a due slot fires or is skipped (`skip_delayed_by`, `catchup:`, ...).
//! - `ids`: typed row ids and fences.
//! - `store`: SQLite, the single source of truth.
//! - `engine`: task states, transitions, and `apply(event) -> actions`.
//! - `operators`: `sh>`, `echo>`, `fail>`, `wait>` and the operator catalog.
//! - `executor`: runs actions after commit; the clock and process spawner are injected.
//! - `host`: this host's identity and processes (liveness, verified kills, fd limits).
//! - `signals`: SIGTERM/SIGINT turned into graceful and immediate stops.
//! - `daemon`: `spade serve`: scheduler, attempt supervisor, reload, systemd notifications.
//! - `config`: the daemon's TOML configuration, flags and environment.
//! - `logging`: structured logs (human or JSON).
//! - `ui`: the web UI of `spade serve`, server-rendered HTML on the API's router.
//! - `cli`: the `spade` command line.
//! - `error`: the top-level error and exit codes.

pub mod api;
pub mod catchup;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod diag;
pub mod dig;
pub mod engine;
pub mod error;
pub mod executor;
pub mod expr;
pub mod host;
pub mod ids;
pub mod logging;
pub mod operators;
pub mod schedule;
pub mod signals;
pub mod store;
pub mod ui;

pub use error::Error;
