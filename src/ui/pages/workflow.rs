//! `GET /ui/workflows/{name}`: one workflow: its `.dig` source with line numbers and
//! revision, the next 10 slots computed by the scheduler's own code (`?after=` moves the
//! window; offset changes are marked), a grid of task paths by its last 25 attempts, its
//! actions (run now, pause/resume, skip, backfill) and their audit trail.

use super::{attempt_link, workflows};
use crate::api::Api;
use crate::ui::guard::Ctx;
use crate::ui::{layout, state, UiError, UiResult};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;

/// Slots listed, and attempts in the grid.
pub const SLOTS: usize = 10;
pub const GRID: usize = 25;

#[derive(Deserialize)]
pub struct WorkflowQuery {
    /// List slots whose run time is at or after this time (RFC 3339; default now).
    after: Option<String>,
}

/// Lines with their numbers, in one `<pre>`: the numbers are drawn by CSS from `data-n`, so
/// find and copy see only the text; each line is an anchor target (`#S12`).
pub fn numbered(prefix: &str, first: usize, text: &str) -> Markup {
    html! {
        pre.numbered {
            @for (i, line) in text.lines().enumerate() {
                @let n = first + i;
                span.line id={(prefix) (n)} {
                    a.ln href={"#" (prefix) (n)} data-n=(n) aria-hidden="true" tabindex="-1" {}
                    (line) "\n"
                }
            }
        }
    }
}

/// The slot table: session and run time in the workflow's zone (what `spade schedule
/// preview` prints), the run time also in the display zone, and a mark where the zone's
/// offset changes from the row before.
fn slots_table(ctx: &Ctx, slots: &[crate::schedule::Slot], tz: &jiff::tz::TimeZone) -> Markup {
    // `-05:00`, as in the times themselves.
    let offset = |t: jiff::Timestamp| t.to_zoned(tz.clone()).strftime("%:z").to_string();
    html! {
        div.scroll {
            table.slots {
                thead { tr { th { "Session time" } th { "Run time (workflow zone)" } th { "Run time (" (ctx.display.zone_name) ")" } th { "Offset" } } }
                tbody {
                    @for (i, s) in slots.iter().enumerate() {
                        @let changed = i > 0 && offset(slots[i - 1].run_time) != offset(s.run_time);
                        tr class=[changed.then_some("offset-change")] {
                            td.session { (ctx.display.session(s.session_time, tz)) }
                            td.run { (ctx.display.session(s.run_time, tz)) }
                            td { (ctx.display.instant(s.run_time)) }
                            td {
                                @if changed {
                                    strong { "⚠ offset changes: " (offset(slots[i - 1].run_time)) " → " (offset(s.run_time)) }
                                } @else {
                                    (offset(s.run_time))
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The grid: one row per task path, one column per attempt (oldest left), a glyph and word
/// per cell, each cell a link to the task in that attempt; the script adds grid keys (arrow
/// keys between cells, one tab stop).
fn grid(
    ctx: &Ctx,
    attempts: &[(crate::store::ui::Attempt, Vec<crate::store::api::TaskRow>)],
) -> Markup {
    let mut paths: Vec<&str> = Vec::new();
    for (_, tasks) in attempts.iter().rev() {
        for t in tasks {
            if !paths.contains(&t.full_name.as_str()) {
                paths.push(&t.full_name);
            }
        }
    }
    html! {
        div.scroll {
            table.grid {
                caption { "Task states by attempt, oldest left" }
                thead {
                    tr {
                        th scope="col" { "Task" }
                        @for (a, _) in attempts.iter().rev() {
                            th scope="col" { (attempt_link(a.id)) br; small { (ctx.display.session_text(&a.session_time, &a.timezone)) } }
                        }
                    }
                }
                tbody {
                    @for p in &paths {
                        tr {
                            th scope="row" { code { (p) } }
                            @for (a, tasks) in attempts.iter().rev() {
                                td {
                                    @if let Some(t) = tasks.iter().find(|t| t.full_name == *p) {
                                        // A plain link without the script; with it, one tab
                                        // stop for the grid and arrow keys between cells.
                                        a href={"/ui/attempts/" (a.id) "/tasks/" (t.id)} {
                                            (state::cell(state::task(&t.state), &format!("{p} in attempt {}", a.id)))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The audit trail of a workflow or an attempt.
pub fn audit(ctx: &Ctx, entries: &[crate::store::ui::AuditEntry]) -> Markup {
    html! {
        section aria-labelledby="audit" {
            h2 #audit { "Actions taken" }
            @if entries.is_empty() {
                p.empty { "No action was taken through the UI." }
            } @else {
                div.scroll {
                    table.audit {
                        thead { tr { th { "When" } th { "Action" } th { "Target" } th { "By" } th { "Outcome" } } }
                        tbody {
                            @for e in entries {
                                tr {
                                    td { (ctx.display.stored(&e.at)) }
                                    td { (e.action) }
                                    td { (e.detail) @if let Some(a) = e.attempt { " " (attempt_link(a)) } }
                                    td { (e.actor) }
                                    td { (e.outcome) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub async fn page(
    State(api): State<Api>,
    Extension(ctx): Extension<Ctx>,
    Path(name): Path<String>,
    Query(q): Query<WorkflowQuery>,
) -> UiResult<Response> {
    let entry = api.workflow_by_name(&name).await?;
    let w = entry.loaded.workflow.clone();
    let hash = crate::engine::prepare::revision_hash(&w.name, &entry.loaded.sources);
    let after = match q.after.as_deref().filter(|a| !a.is_empty()) {
        Some(text) => text.parse::<jiff::Timestamp>().map_err(|e| {
            UiError::bad_request(format!(
                "invalid after `{text}`: expected an RFC 3339 time such as 2026-03-08T00:00:00-05:00 ({e})"
            ))
        })?,
        None => ctx.display.now,
    };
    let project = api.handle.project_id;
    let engine = api.handle.engine.clone();
    let schedules = crate::api::blocking(move || engine.schedules(project)).await?;
    let row = schedules.into_iter().find(|r| r.workflow == w.name);
    let wf = w.name.clone();
    let (grid_rows, audit_rows) = crate::ui::read(&api, "ui_workflow", move |tx| {
        let recent = crate::store::ui::recent(tx, project, &wf, GRID)?;
        let mut rows = Vec::new();
        for a in recent {
            let tasks = crate::store::api::tasks(tx, a.id)?;
            rows.push((a, tasks));
        }
        let audit = crate::store::ui::audit(tx, &crate::store::ui::AuditOf::Workflow(&wf), 50)?;
        Ok((rows, audit))
    })
    .await?;
    let d = &ctx.display;
    let paused = row.as_ref().filter(|r| r.disabled_at.is_some());
    let body = html! {
        h1 { "Workflow " code { (w.name) } }
        dl.facts {
            dt { "Revision" } dd { code { (hash.get(..12).unwrap_or(&hash)) } }
            dt { "Zone" } dd { (w.timezone) }
            dt { "Schedule" } dd {
                @if let Some(def) = &w.schedule { (workflows::schedule_cell(def, entry.loaded.schedule.as_ref().map(|s| &s.schedule), &w.timezone, d.h24)) } @else { "not scheduled" }
                @if let Some(r) = paused {
                    " " (state::badge(("⏸", "paused", "warn")))
                    @if let Some(reason) = &r.disabled_reason { " " span.reason { (reason) } }
                }
            }
            @if let Some(r) = &row {
                dt { "Next session" } dd { @if let (Some(t), Some(s)) = (r.next_session, entry.loaded.schedule.as_ref()) { (d.session(t, &s.schedule.tz)) } @else { "–" } }
                dt { "Next run" } dd data-now=(d.now_ms()) { @if let Some(t) = r.next_run { (d.countdown(t)) } @else { "–" } }
            }
        }
        section aria-labelledby="actions" {
            h2 #actions { "Actions" }
            div.actions {
                form method="get" action="/ui/confirm/run_now" {
                    input type="hidden" name="workflow" value=(w.name);
                    button type="submit" { "Run now…" }
                }
                @if let Some(r) = &row {
                    @if paused.is_some() {
                        form method="post" action="/ui/actions/resume" {
                            (ctx.csrf_field())
                            input type="hidden" name="workflow" value=(w.name);
                            input type="hidden" name="schedule" value=(r.id);
                            button type="submit" { "Resume schedule" }
                        }
                    } @else {
                        form method="post" action="/ui/actions/pause" class="inline" {
                            (ctx.csrf_field())
                            input type="hidden" name="workflow" value=(w.name);
                            input type="hidden" name="schedule" value=(r.id);
                            label { "Reason " input type="text" name="reason" required maxlength="200"; }
                            button type="submit" { "Pause schedule" }
                        }
                    }
                    form method="get" action="/ui/confirm/skip" class="inline" {
                        input type="hidden" name="workflow" value=(w.name);
                        label { "Skip " input type="number" name="count" min="1" max=(crate::api::act::MAX_SKIP) inputmode="numeric" placeholder="3"; " slots" }
                        label { " or skip to " input type="text" name="next_time" placeholder="2026-03-09"; }
                        button type="submit" { "Preview skip…" }
                    }
                    form method="get" action="/ui/confirm/backfill" class="inline" {
                        input type="hidden" name="workflow" value=(w.name);
                        label { "From " input type="text" name="from" required placeholder="2026-01-01"; }
                        label { "To " input type="text" name="to" placeholder="2026-01-07"; }
                        label { "Attempt name " input type="text" name="attempt_name"; }
                        button type="submit" { "Preview backfill…" }
                    }
                }
            }
        }
        @if let Some(s) = entry.loaded.schedule.as_ref() {
            section aria-labelledby="slots" {
                h2 #slots { "Next " (SLOTS) " slots" }
                form method="get" class="inline" {
                    label { "From " input type="text" name="after" value=(q.after.as_deref().unwrap_or("")) placeholder="2026-03-08T00:00:00-05:00"; }
                    button type="submit" { "Show" }
                }
                p { "After " (d.instant(after)) ", by the scheduler's own slot code." }
                (slots_table(&ctx, &s.schedule.slots(after, SLOTS), &s.schedule.tz))
            }
        }
        section aria-labelledby="grid" {
            h2 #grid { "Last " (GRID) " attempts" }
            @if grid_rows.is_empty() { p.empty { "No attempt yet." } } @else { (grid(&ctx, &grid_rows)) }
        }
        (audit(&ctx, &audit_rows))
        section aria-labelledby="source" {
            h2 #source { "Source" }
            @for (path, text) in &entry.loaded.sources {
                h3 { code { (path.display()) } }
                (numbered("S", 1, text))
            }
        }
    };
    Ok(layout::page(&ctx, &w.name, layout::Nav::Workflows, body))
}
