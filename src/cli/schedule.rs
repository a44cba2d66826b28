//! `spade schedule preview`: when a workflow's schedule fires, for humans and tests.

#[derive(Debug, clap::Subcommand)]
pub enum ScheduleCommand {}

pub(super) fn run(cmd: ScheduleCommand) -> Result<u8, crate::Error> {
    match cmd {}
}
