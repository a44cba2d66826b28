//! `spade run`: create or resume one attempt of a workflow and drive it to completion.

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Workflow name or `.dig` file.
    pub workflow: Option<String>,
    #[arg(long)]
    pub project: Option<PathBuf>,
}

pub(super) fn run(args: RunArgs) -> Result<u8, crate::Error> {
    let _ = args;
    Ok(0)
}
