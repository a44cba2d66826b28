//! The `spade` binary: parse argv, run, map the outcome to an exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    spade::cli::main()
}
