//! `GET /ui/attempts/{id}`: one attempt: its task tree (state, try N of M, start, duration,
//! first error line, log), a timeline tab (`?tab=timeline`: an SVG Gantt, one segment per try
//! and the retry waits between them), its actions and their audit trail; and
//! `GET /ui/attempts/{id}/live`, server-sent events carrying the task table as HTML rendered
//! by the same code, until the attempt ends.

use super::{first_line, workflow, workflow_link};
use crate::api::Api;
use crate::ids::{AttemptId, TaskId};
use crate::store::api::{AttemptRow, TaskRow};
use crate::store::ui::Run;
use crate::ui::guard::Ctx;
use crate::ui::{layout, state, time, UiError, UiResult};
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::Response;
use axum::Extension;
use futures_util::stream::Stream;
use maud::{html, Markup};
use serde::Deserialize;
use std::collections::HashMap;
use std::convert::Infallible;

/// Everything the attempt page shows, read in one transaction.
pub struct View {
    pub attempt: AttemptRow,
    pub tasks: Vec<TaskRow>,
    pub runs: Vec<Run>,
    pub limits: HashMap<TaskId, u32>,
}

pub fn parse_attempt(id: &str) -> UiResult<AttemptId> {
    id.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .map(AttemptId)
        .ok_or_else(|| {
            UiError::bad_request(format!(
                "invalid attempt id `{id}`: expected a positive number"
            ))
        })
}

pub async fn load(api: &Api, id: AttemptId) -> UiResult<View> {
    let view = crate::ui::read(api, "ui_attempt", move |tx| {
        let Some(attempt) = crate::store::api::attempt(tx, id)? else {
            return Ok(None);
        };
        Ok(Some(View {
            attempt,
            tasks: crate::store::api::tasks(tx, id)?,
            runs: crate::store::ui::runs(tx, id)?,
            limits: crate::store::ui::try_limits(tx, id)?.into_iter().collect(),
        }))
    })
    .await?;
    view.ok_or_else(|| UiError::not_found(format!("attempt {id} does not exist")))
}

/// Depth of each task below the root (0 for the root).
fn depths(tasks: &[TaskRow]) -> HashMap<TaskId, usize> {
    let parents: HashMap<TaskId, Option<TaskId>> = tasks.iter().map(|t| (t.id, t.parent)).collect();
    let mut out = HashMap::new();
    for t in tasks {
        let mut depth = 0;
        let mut at = t.parent;
        // Bounded by the number of tasks: a malformed store cannot loop here.
        while let Some(p) = at.filter(|_| depth < tasks.len()) {
            depth += 1;
            at = parents.get(&p).copied().flatten();
        }
        out.insert(t.id, depth);
    }
    out
}

/// The last component of a full name (`+wf+group+step` -> `+step`).
fn short_name(full: &str) -> &str {
    full.rfind('+').map_or(full, |i| &full[i..])
}

/// The attempt's status line: what every live event starts with.
pub fn status_line(ctx: &Ctx, v: &View) -> Markup {
    let d = &ctx.display;
    let a = &v.attempt;
    html! {
        p.status {
            (state::badge(state::attempt(&a.state, a.cancel_requested)))
            " created " (d.stored(&a.created_at))
            @if let Some(f) = &a.finished_at { ", finished " (d.stored(f)) }
            ", " (time::between(&a.created_at, a.finished_at.as_deref(), d.now).map(time::duration).unwrap_or_default())
        }
    }
}

/// One task's row of the table (`data-task` names it, for the live events that replace it).
fn task_row(ctx: &Ctx, v: &View, t: &TaskRow, level: usize) -> Markup {
    let d = &ctx.display;
    let id = v.attempt.id;
    // A finished attempt offers "retry from here" on each task (Digdag's resume from).
    let running = v.attempt.state == "running";
    html! {
        tr data-task=(t.id) {
            td class={"depth depth-" (level.min(8))} title=(t.full_name) { a href={"/ui/attempts/" (id) "/tasks/" (t.id)} { code { (short_name(&t.full_name)) } } }
            td { (state::badge(state::task(&t.state))) }
            td {
                @if t.fence > 0 && !t.is_group {
                    "try " (t.retry_count + 1) "/" (v.limits.get(&t.id).copied().unwrap_or(1))
                    // While it waits, the try shown is the next one: say when it starts.
                    @if let Some(at) = retry_at(t) { " at " (d.instant(at)) }
                }
            }
            td { (d.stored_opt(t.started_at.as_deref())) }
            td { @if let Some(s) = &t.started_at { (time::between(s, t.finished_at.as_deref(), d.now).map(time::duration).unwrap_or_default()) } }
            td.error { @if let Some(e) = &t.error { (first_line(&crate::store::ui::error_message(e))) } }
            td { @if t.fence > 0 && !t.is_group { a href={"/ui/attempts/" (id) "/tasks/" (t.id) "/log"} { "log" } } }
            @if !running {
                // A link to the confirmation page: nothing acts on a GET.
                td { a href={"/ui/confirm/retry_from?attempt=" (id) "&task=" (url::form_urlencoded::byte_serialize(t.full_name.as_bytes()).collect::<String>())} aria-label={"retry from " (t.full_name)} { "from here…" } }
            }
        }
    }
}

/// The rows of the tasks `ids` (those still in the attempt's tree), in table order.
/// When a task waiting for its next try starts it.
fn retry_at(t: &TaskRow) -> Option<jiff::Timestamp> {
    if t.state != "retry_waiting" {
        return None;
    }
    jiff::Timestamp::from_millisecond(t.retry_at_ms?).ok()
}

fn task_rows(ctx: &Ctx, v: &View, ids: &[TaskId]) -> Markup {
    let depth = depths(&v.tasks);
    // A clock event names every running task: a set keeps a wide attempt linear.
    let ids: std::collections::HashSet<TaskId> = ids.iter().copied().collect();
    html! {
        @for t in v.tasks.iter().filter(|t| ids.contains(&t.id)) {
            (task_row(ctx, v, t, depth.get(&t.id).copied().unwrap_or(0)))
        }
    }
}

/// The attempt's status line and task table: what the page shows, and what a live `tasks`
/// or `done` event replaces.
pub fn tasks_fragment(ctx: &Ctx, v: &View) -> Markup {
    let depth = depths(&v.tasks);
    let running = v.attempt.state == "running";
    html! {
        (status_line(ctx, v))
        div.scroll {
            table.tasks {
                thead { tr { th { "Task" } th { "State" } th { "Try" } th { "Started" } th { "Duration" } th { "First error" } th { "Log" } @if !running { th { "Retry" } } } }
                tbody {
                    @for t in &v.tasks {
                        (task_row(ctx, v, t, depth.get(&t.id).copied().unwrap_or(0)))
                    }
                }
            }
        }
    }
}

/// Geometry of the timeline, in SVG user units.
const LABEL_W: f64 = 260.0;
const CHART_W: f64 = 720.0;
const ROW_H: f64 = 24.0;

/// The timeline: one row per operator task that ran, one bar per try, a dashed line for
/// each wait between two tries.
pub fn timeline(ctx: &Ctx, v: &View) -> Markup {
    let ms = |s: &str| {
        s.parse::<jiff::Timestamp>()
            .ok()
            .map(|t| t.as_millisecond())
    };
    let now = ctx.display.now.as_millisecond();
    let start = v.runs.iter().filter_map(|r| ms(&r.started_at)).min();
    let end = v
        .runs
        .iter()
        .filter_map(|r| r.finished_at.as_deref().and_then(ms).or(Some(now)))
        .max();
    let (Some(start), Some(end)) = (start, end) else {
        return html! { p.empty { "No task has run yet." } };
    };
    let span = f64::from(i32::try_from((end - start).max(1)).unwrap_or(i32::MAX));
    let x =
        |t: i64| LABEL_W + CHART_W * f64::from(i32::try_from(t - start).unwrap_or(i32::MAX)) / span;
    let names: HashMap<TaskId, &str> = v
        .tasks
        .iter()
        .map(|t| (t.id, t.full_name.as_str()))
        .collect();
    let mut order: Vec<TaskId> = Vec::new();
    for r in &v.runs {
        if !order.contains(&r.task) {
            order.push(r.task);
        }
    }
    let height = ROW_H * (order.len() as f64) + 30.0;
    html! {
        figure.timeline {
            svg viewBox={"0 0 " (LABEL_W + CHART_W + 20.0) " " (height)} role="img" aria-labelledby="timeline-title" {
                title #timeline-title { "Timeline of attempt " (v.attempt.id) ": one bar per try" }
                @for (row, task) in order.iter().enumerate() {
                    @let y = ROW_H * row as f64 + 4.0;
                    @let name = names.get(task).copied().unwrap_or("(earlier task)");
                    text.label x="4" y=(y + 15.0) { (short_name(name)) }
                    @let runs: Vec<&Run> = v.runs.iter().filter(|r| r.task == *task).collect();
                    @for (i, r) in runs.iter().enumerate() {
                        @let s = ms(&r.started_at).unwrap_or(start);
                        @let e = r.finished_at.as_deref().and_then(ms).unwrap_or(now);
                        @if i > 0 {
                            @let prev_end = runs[i - 1].finished_at.as_deref().and_then(ms).unwrap_or(s);
                            line.wait x1=(x(prev_end)) x2=(x(s)) y1=(y + 9.0) y2=(y + 9.0) {
                                title { "retry wait " (time::duration(s - prev_end)) }
                            }
                        }
                        @let class = match r.outcome.as_deref() { Some("succeeded") => "ok", Some("failed" | "timed_out") => "bad", Some(_) => "off", None => "run" };
                        rect class={"bar st-" (class)} x=(x(s)) y=(y) width=((x(e) - x(s)).max(2.0)) height=(ROW_H - 6.0) {
                            title { (name) " try " (i + 1) ": " (r.outcome.as_deref().unwrap_or("running")) ", " (time::duration(e - s)) }
                        }
                    }
                }
                text.axis x=(LABEL_W) y=(height - 6.0) { (time::human(jiff::Timestamp::from_millisecond(start).unwrap_or_default(), &ctx.display.tz, ctx.display.h24)) }
                text.axis x=(LABEL_W + CHART_W) y=(height - 6.0) text-anchor="end" { "+" (time::duration(end - start)) }
            }
            figcaption { "Bars are tries (✓ green success, ✗ red error, blue running); dashed lines are retry waits. The task table lists the same runs as text." }
        }
    }
}

#[derive(Deserialize)]
pub struct AttemptQuery {
    tab: Option<String>,
}

pub async fn page(
    State(api): State<Api>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    Query(q): Query<AttemptQuery>,
) -> UiResult<Response> {
    let id = parse_attempt(&id)?;
    let v = load(&api, id).await?;
    let audit = crate::ui::read(&api, "ui_attempt_audit", move |tx| {
        crate::store::ui::audit(tx, &crate::store::ui::AuditOf::Attempt(id), 50)
    })
    .await?;
    let a = &v.attempt;
    let timeline_tab = q.tab.as_deref() == Some("timeline");
    let running = a.state == "running";
    let body = html! {
        h1 { "Attempt " (a.id) }
        dl.facts {
            dt { "Workflow" } dd { (workflow_link(&a.workflow)) }
            dt { "Session time" } dd { (ctx.display.session_text(&a.session_time, &a.timezone)) }
            dt { "Attempt name" } dd { @if a.attempt_name.is_empty() { "default" } @else { (a.attempt_name) } }
            dt { "Try of the session" } dd { (a.index) }
        }
        div.actions {
            @if running {
                form method="get" action="/ui/confirm/kill" {
                    input type="hidden" name="attempt" value=(a.id);
                    button.danger type="submit" { "Kill…" }
                }
            } @else if a.state != "succeeded" {
                form method="get" action="/ui/confirm/retry_failed" {
                    input type="hidden" name="attempt" value=(a.id);
                    button type="submit" { "Retry failed…" }
                }
            }
            @if !running {
                form method="get" action="/ui/confirm/retry_all" {
                    input type="hidden" name="attempt" value=(a.id);
                    button type="submit" { "Retry all…" }
                }
            }
        }
        nav.tabs aria-label="views" {
            a href={"/ui/attempts/" (a.id)} aria-current=[(!timeline_tab).then_some("page")] { "Tasks" }
            a href={"/ui/attempts/" (a.id) "?tab=timeline"} aria-current=[timeline_tab.then_some("page")] { "Timeline" }
        }
        @if timeline_tab {
            (timeline(&ctx, &v))
        } @else {
            div #tasks data-live=[running.then(|| format!("/ui/attempts/{}/live", a.id))] {
                (tasks_fragment(&ctx, &v))
            }
        }
        (workflow::audit(&ctx, &audit))
    };
    Ok(layout::page(
        &ctx,
        &format!("Attempt {}", a.id),
        layout::Nav::Sessions,
        body,
    ))
}

/// A live stream's view and where it stands, read in one transaction, so the event's id
/// is exactly the position its HTML shows.
async fn load_at(
    api: &Api,
    id: AttemptId,
    after: i64,
) -> UiResult<(View, crate::store::ui::Position)> {
    let read = crate::ui::read(api, "ui_attempt_live", move |tx| {
        let Some(attempt) = crate::store::api::attempt(tx, id)? else {
            return Ok(None);
        };
        let view = View {
            attempt,
            tasks: crate::store::api::tasks(tx, id)?,
            runs: crate::store::ui::runs(tx, id)?,
            limits: crate::store::ui::try_limits(tx, id)?.into_iter().collect(),
        };
        Ok(Some((view, crate::store::ui::position(tx, id, after)?)))
    })
    .await?;
    read.ok_or_else(|| UiError::not_found(format!("attempt {id} does not exist")))
}

/// How often a running attempt's stream refreshes its clock texts (durations) and looks for
/// changes that no notice announced (another process driving the attempt).
const LIVE_CLOCK: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Deserialize)]
pub struct LiveQuery {
    /// The position to resume after, for a script that opens a new stream (a reopened
    /// `EventSource` sends no `Last-Event-ID`); the header wins when both are given.
    after: Option<String>,
}

/// One live stream's state between events.
struct Live {
    api: Api,
    ctx: Ctx,
    id: AttemptId,
    changes: tokio::sync::broadcast::Receiver<AttemptId>,
    /// The position the client has (the last event id sent or resumed from); `None`: it has
    /// nothing yet and gets the whole fragment.
    at: Option<i64>,
    done: bool,
}

impl Live {
    /// The next event: the first at once, then at a change of the attempt (a `rows` event)
    /// or the clock (`clock`), the `done` event last.
    async fn next(&mut self) -> Option<Event> {
        if self.done {
            return None;
        }
        let mut woke_by_clock = false;
        if self.at.is_some() {
            loop {
                let (v, pos) = load_at(&self.api, self.id, self.at.unwrap_or(0))
                    .await
                    .ok()?;
                let finished = v.attempt.state != "running";
                if finished || !pos.changed.is_empty() || woke_by_clock || !self.knows(&pos) {
                    return Some(self.event(&v, &pos, woke_by_clock));
                }
                // Nothing moved: wait for this attempt's change notice (any, after a lag)
                // or the clock.
                woke_by_clock = loop {
                    tokio::select! {
                        got = self.changes.recv() => match got {
                            Ok(a) if a != self.id => continue,
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                            _ => break false,
                        },
                        () = tokio::time::sleep(LIVE_CLOCK) => break true,
                    }
                };
            }
        }
        let (v, pos) = load_at(&self.api, self.id, 0).await.ok()?;
        Some(self.event(&v, &pos, false))
    }

    /// Whether the client's position is one of this attempt's transitions (not one of
    /// another attempt's, or of a store that was collected since).
    fn knows(&self, pos: &crate::store::ui::Position) -> bool {
        self.at.is_some_and(|at| at >= pos.first && at <= pos.last)
    }

    /// The event for view `v` at `pos`, given what the client has.
    fn event(&mut self, v: &View, pos: &crate::store::ui::Position, clock: bool) -> Event {
        self.ctx.display.now = self.api.handle.clock.now();
        let finished = v.attempt.state != "running";
        let known = self.knows(pos) && !pos.new_tasks;
        let event = if finished {
            // The final table (its columns change: "retry from here" appears).
            self.done = true;
            Event::default()
                .event("done")
                .id(pos.last.to_string())
                .data(tasks_fragment(&self.ctx, v).into_string())
        } else if !known {
            Event::default()
                .event("tasks")
                .id(pos.last.to_string())
                .data(tasks_fragment(&self.ctx, v).into_string())
        } else if pos.changed.is_empty() && clock {
            // Time moved, nothing else: the status line and the running tasks' rows with
            // their durations; no id, since the position did not move.
            let running: Vec<TaskId> = v
                .tasks
                .iter()
                .filter(|t| t.state == "running")
                .map(|t| t.id)
                .collect();
            let html =
                html! { (status_line(&self.ctx, v)) (rows_in_table(&self.ctx, v, &running)) };
            return Event::default().event("clock").data(html.into_string());
        } else {
            let html = html! {
                (status_line(&self.ctx, v)) (rows_in_table(&self.ctx, v, &pos.changed))
            };
            Event::default()
                .event("rows")
                .id(pos.last.to_string())
                .data(html.into_string())
        };
        self.at = Some(pos.last);
        event
    }
}

/// Rows for an event, inside a table of their own: the HTML parser drops a `<tr>` that
/// follows the status `<p>` outside a table (a `<template>` then parses in body mode), so
/// the script would find no rows to patch.
fn rows_in_table(ctx: &Ctx, v: &View, ids: &[TaskId]) -> Markup {
    html! { table { tbody { (task_rows(ctx, v, ids)) } } }
}

/// `GET /ui/attempts/{id}/live`: server-sent events of the attempt page's status line and
/// task table, rendered by the page's own code. Each event's id is the attempt's newest task
/// transition it shows; a stream opened with `Last-Event-ID` (or `?after=`) at a position of
/// this attempt starts with a `rows` event of exactly the tasks that moved after it, and then
/// goes on with one `rows` event per change; an unknown position, or tasks made after it,
/// get one whole `tasks` fragment instead. `clock` events (no id) refresh the running rows'
/// durations; `done` carries the final table and ends the stream.
pub async fn live(
    State(api): State<Api>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    Query(q): Query<LiveQuery>,
    headers: axum::http::HeaderMap,
) -> UiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let id = parse_attempt(&id)?;
    load(&api, id).await?;
    let changes = api.handle.changes.subscribe();
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(q.after);
    let live = Live {
        api,
        ctx,
        id,
        changes,
        // An id that is not a number is unknown: the client gets the whole fragment.
        at: resume.and_then(|r| r.trim().parse::<i64>().ok()),
        done: false,
    };
    let stream = futures_util::stream::unfold(live, |mut live| async move {
        let event = live.next().await?;
        Some((Ok(event), live))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
