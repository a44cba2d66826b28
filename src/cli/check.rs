//! `spade check [PATH...]`: load workflows, print a summary and every diagnostic.

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Project directories or `.dig` files (default: the current directory).
    pub paths: Vec<PathBuf>,
    /// Print the summary and diagnostics as JSON.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(args: CheckArgs) -> Result<u8, crate::Error> {
    let _ = args;
    Ok(0)
}
