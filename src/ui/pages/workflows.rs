//! `GET /ui/workflows`: every workflow with its schedule as written, its zone, the next
//! session and run time (with a countdown the script keeps current), paused with the reason,
//! and a strip of its last 10 results.

use super::workflow_link;
use crate::api::Api;
use crate::ui::guard::Ctx;
use crate::ui::{layout, state, UiResult};
use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use maud::{html, Markup};

/// Results in each workflow's strip.
const STRIP: usize = 10;

/// A `schedule:` as written: `daily>: 09:00:00`.
pub fn schedule_text(def: &crate::dig::ScheduleDef) -> String {
    format!("{} {}", def.kind, def.value)
}

/// The schedule as written and, below it, in words with its zone (`ui::words`).
pub fn schedule_cell(
    def: &crate::dig::ScheduleDef,
    loaded: Option<&crate::schedule::Schedule>,
    zone: &str,
    h24: bool,
) -> Markup {
    html! {
        code { (schedule_text(def)) }
        @if let Some(s) = loaded {
            br; span.words { (crate::ui::words::describe(&s.rule, zone, h24)) }
        }
    }
}

/// The last results of a workflow, oldest first, each a glyph with its word for screen
/// readers and a link to the attempt.
pub fn strip(recent: &[crate::store::ui::Attempt]) -> Markup {
    html! {
        ol.strip aria-label="last results, oldest first" {
            @for a in recent.iter().rev() {
                li {
                    a href={"/ui/attempts/" (a.id)} {
                        (state::cell(state::attempt(&a.state, a.cancel_requested), &format!("attempt {}", a.id)))
                    }
                }
            }
        }
    }
}

pub async fn page(State(api): State<Api>, Extension(ctx): Extension<Ctx>) -> UiResult<Response> {
    let entries = api.workflow_entries().await?;
    let engine = api.handle.engine.clone();
    let project = api.handle.project_id;
    let schedules = crate::api::blocking(move || engine.schedules(project)).await?;
    let names: Vec<String> = entries
        .iter()
        .map(|e| e.loaded.workflow.name.clone())
        .collect();
    let recent = crate::ui::read(&api, "ui_workflows", move |tx| {
        names
            .iter()
            .map(|n| crate::store::ui::recent(tx, project, n, STRIP))
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    let d = &ctx.display;
    let body = html! {
        h1 { "Workflows" }
        @if entries.is_empty() { p.empty { "The project has no workflows." } }
        div.scroll {
            table.workflows data-now=(d.now_ms()) {
                thead { tr { th { "Workflow" } th { "Schedule" } th { "Zone" } th { "Next session" } th { "Next run" } th { "Last " (STRIP) " results" } } }
                tbody {
                    @for (e, recent) in entries.iter().zip(&recent) {
                        @let w = &e.loaded.workflow;
                        @let row = schedules.iter().find(|r| r.workflow == w.name);
                        @let tz = e.loaded.schedule.as_ref().map_or_else(
                            || jiff::tz::TimeZone::get(&w.timezone).unwrap_or(jiff::tz::TimeZone::UTC),
                            |s| s.schedule.tz.clone());
                        tr {
                            td { (workflow_link(&w.name)) }
                            td {
                                @if let Some(def) = &w.schedule { (schedule_cell(def, e.loaded.schedule.as_ref().map(|s| &s.schedule), &w.timezone, d.h24)) } @else { span.none { "not scheduled" } }
                                @if let Some(r) = row.filter(|r| r.disabled_at.is_some()) {
                                    " " (state::badge(("⏸", "paused", "warn")))
                                    @if let Some(reason) = &r.disabled_reason { " " span.reason { (reason) } }
                                }
                            }
                            td { (w.timezone) }
                            td { @if let Some(t) = row.and_then(|r| r.next_session) { (d.session(t, &tz)) } @else { span.none { "–" } } }
                            td { @if let Some(t) = row.and_then(|r| r.next_run) { (d.countdown(t)) } @else { span.none { "–" } } }
                            td { (strip(recent)) }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(
        &ctx,
        "Workflows",
        layout::Nav::Workflows,
        body,
    ))
}
