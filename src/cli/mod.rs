//! The `spade` command line: clap types and dispatch to one module per subcommand.

pub mod check;
pub mod client;
pub mod run;
pub mod schedule;
pub mod serve;
pub mod table;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "spade",
    version,
    about = "Run Digdag-style .dig workflows, durably"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load and validate workflows; print their task trees and every diagnostic.
    Check(check::CheckArgs),
    /// Run one attempt of a workflow to completion (resumes an unfinished one).
    Run(run::RunArgs),
    /// Show when a workflow's schedule fires.
    #[command(subcommand)]
    Schedule(schedule::ScheduleCommand),
    /// Run the scheduler daemon: fire every workflow's schedule, drive attempts, reload on
    /// file changes.
    Serve(serve::ServeArgs),
    /// Client commands: they talk to a running `spade serve` through its HTTP API.
    #[command(flatten)]
    Client(client::ClientCommand),
}

/// Parses argv, runs the command and maps the result to the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::from(e.exit_code())
        }
    }
}

fn dispatch(cli: Cli) -> Result<u8, crate::Error> {
    match cli.command {
        Command::Check(args) => check::run(args),
        Command::Run(args) => run::run(args),
        Command::Schedule(cmd) => schedule::run(cmd),
        Command::Serve(args) => serve::run(args),
        Command::Client(cmd) => client::run(cmd),
    }
}

pub use crate::error::chain as error_chain;
