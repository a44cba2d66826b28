//! `GET /ui`: the daemon's health, running attempts with their current task, failures of
//! the last 24 hours with their first error line, and the runs due in the next 24 hours.

use super::{attempt_link, first_line, table_or, workflow_link};
use crate::api::Api;
use crate::ui::guard::Ctx;
use crate::ui::{layout, state, UiResult};
use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use jiff::{SignedDuration, Timestamp};
use maud::html;

/// The overview's window, both ways.
const WINDOW: SignedDuration = SignedDuration::from_hours(24);

/// A run due within the window.
pub struct Due {
    pub workflow: String,
    pub session: Timestamp,
    pub run: Timestamp,
    pub tz: jiff::tz::TimeZone,
}

/// Runs due from `now` to `now + WINDOW` by the stored next slot and the scheduler's own
/// slot code after it (paused schedules are left out), earliest first.
pub async fn due(api: &Api, now: Timestamp, limit: usize) -> UiResult<Vec<Due>> {
    let engine = api.handle.engine.clone();
    let project = api.handle.project_id;
    let rows = crate::api::blocking(move || engine.schedules(project)).await?;
    let loaded = api.handle.project.borrow().clone();
    let end = now.checked_add(WINDOW).unwrap_or(now);
    let mut out = Vec::new();
    for r in rows.iter().filter(|r| r.disabled_at.is_none()) {
        let Some(scheduled) = loaded
            .workflows
            .get(&r.workflow)
            .and_then(|l| l.schedule.as_ref())
        else {
            continue;
        };
        let s = &scheduled.schedule;
        let mut slot = match (r.next_session, r.next_run) {
            (Some(session), Some(run)) => Some(crate::schedule::Slot {
                session_time: session,
                run_time: run,
            }),
            _ => None,
        };
        while let Some(current) = slot.filter(|x| x.run_time <= end) {
            out.push(Due {
                workflow: r.workflow.clone(),
                session: current.session_time,
                run: current.run_time,
                tz: s.tz.clone(),
            });
            if out.len() >= limit * 4 {
                break;
            }
            slot = s.next_within_bounds(current.session_time);
        }
    }
    out.sort_by_key(|d| d.run);
    out.truncate(limit);
    Ok(out)
}

pub async fn page(State(api): State<Api>, Extension(ctx): Extension<Ctx>) -> UiResult<Response> {
    let now = ctx.display.now;
    let project = api.handle.project_id;
    let since = now.checked_sub(WINDOW).unwrap_or(now);
    let (running, failures) = crate::ui::read(&api, "ui_overview", move |tx| {
        Ok((
            crate::store::ui::running(tx, project)?,
            crate::store::ui::failures_since(tx, project, since, 50)?,
        ))
    })
    .await?;
    let due = due(&api, now, 50).await?;
    let load = *api.handle.load.borrow();
    let d = &ctx.display;
    let body = html! {
        h1 { "Overview" }
        section aria-labelledby="health" {
            h2 #health { "Daemon" }
            p {
                @if api.stopping() {
                    (state::badge(("■", "stopping", "warn")))
                } @else {
                    (state::badge(("✓", "serving", "ok")))
                }
                " " (load.running) " attempts running, " (load.queued) " queued; project "
                code { (api.project_dir_text()) }
            }
        }
        section aria-labelledby="running" {
            h2 #running { "Running attempts" }
            (table_or("Nothing is running.", !running.is_empty(), html! {
                table {
                    thead { tr { th { "Attempt" } th { "Workflow" } th { "Session" } th { "Current task" } th { "Started" } } }
                    tbody {
                        @for (a, task) in &running {
                            tr {
                                (attempt_cells(d, a))
                                td { @if let Some(t) = task { code { (t) } } @else { span.none { "waiting" } } }
                                td { (d.stored(&a.created_at)) }
                            }
                        }
                    }
                }
            }))
        }
        section aria-labelledby="failures" {
            h2 #failures { "Failures in the last 24 hours" }
            (table_or("No attempt failed in the last 24 hours.", !failures.is_empty(), html! {
                table {
                    thead { tr { th { "Attempt" } th { "Workflow" } th { "Session" } th { "Finished" } th { "First error" } } }
                    tbody {
                        @for (a, error) in &failures {
                            tr {
                                (attempt_cells(d, a))
                                td { (d.stored_opt(a.finished_at.as_deref())) }
                                td.error { (error.as_deref().map(first_line).unwrap_or("")) }
                            }
                        }
                    }
                }
            }))
        }
        section aria-labelledby="due" {
            h2 #due { "Due in the next 24 hours" }
            (table_or("Nothing is scheduled in the next 24 hours.", !due.is_empty(), html! {
                table {
                    thead { tr { th { "Workflow" } th { "Session time" } th { "Runs at" } } }
                    tbody {
                        @for x in &due {
                            tr {
                                td { (workflow_link(&x.workflow)) }
                                td { (d.session(x.session, &x.tz)) }
                                td { (d.instant(x.run)) }
                            }
                        }
                    }
                }
            }))
        }
    };
    Ok(layout::page(&ctx, "Overview", layout::Nav::Overview, body))
}

/// The cells that name an attempt in the overview's tables: its link and state, its
/// workflow and its session time.
fn attempt_cells(d: &crate::ui::time::Display, a: &crate::store::ui::Attempt) -> maud::Markup {
    html! {
        td { (attempt_link(a.id)) " " (state::badge(state::attempt(&a.state, a.cancel_requested))) }
        td { (workflow_link(&a.workflow)) }
        td { (d.session_text(&a.session_time, &a.timezone)) }
    }
}
