//! `spade schedule preview`: when a workflow's schedule fires, for humans and tests.

use crate::diag::SourceMap;
use crate::schedule::{format_rfc3339, Schedule};
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum ScheduleCommand {
    /// Print the next slots (session time, run time) of a workflow's `schedule:`.
    Preview(PreviewArgs),
}

#[derive(Debug, clap::Args)]
pub struct PreviewArgs {
    /// The workflow file.
    pub file: PathBuf,
    /// List slots whose run time is at or after this RFC 3339 time (default: now).
    #[arg(long)]
    pub after: Option<String>,
    /// How many slots to list.
    #[arg(long, default_value_t = 5)]
    pub count: usize,
}

pub(super) fn run(cmd: ScheduleCommand) -> Result<u8, crate::Error> {
    match cmd {
        ScheduleCommand::Preview(args) => preview(args),
    }
}

fn preview(args: PreviewArgs) -> Result<u8, crate::Error> {
    let after = match &args.after {
        Some(text) => text.parse::<jiff::Timestamp>().map_err(|e| {
            crate::Error::Usage(format!(
                "`--after` must be an RFC 3339 time such as `2026-11-23T08:00:00+09:00`, found `{text}`: {e}"
            ))
        })?,
        None => jiff::Timestamp::now(),
    };
    let mut sources = SourceMap::new();
    let project_dir = args
        .file
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let (workflow, diagnostics) = crate::dig::load_file(&mut sources, &project_dir, &args.file);
    for d in &diagnostics {
        eprint!("{}", d.render(&sources));
    }
    let Some(workflow) = workflow else {
        let count = diagnostics.iter().filter(|d| d.is_error()).count();
        return Err(crate::Error::InvalidWorkflows { count });
    };
    let Some(def) = &workflow.schedule else {
        return Err(crate::Error::Usage(format!(
            "workflow `{}` has no `schedule:`",
            workflow.name
        )));
    };
    let schedule = Schedule::from_def(def, &workflow.timezone)
        .map_err(|e| crate::Error::Usage(format!("invalid `schedule:`: {e}")))?;
    for slot in schedule.slots(after, args.count) {
        println!(
            "{} {}",
            format_rfc3339(slot.session_time, &schedule.tz),
            format_rfc3339(slot.run_time, &schedule.tz)
        );
    }
    Ok(0)
}
