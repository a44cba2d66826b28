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

/// The attempt's status line and task table: what the page shows and what each live event
/// replaces.
pub fn tasks_fragment(ctx: &Ctx, v: &View) -> Markup {
    let d = &ctx.display;
    let a = &v.attempt;
    let depth = depths(&v.tasks);
    let id = a.id;
    // A finished attempt offers "retry from here" on each task (Digdag's resume from).
    let running = a.state == "running";
    html! {
        p.status {
            (state::badge(state::attempt(&a.state, a.cancel_requested)))
            " created " (d.stored(&a.created_at))
            @if let Some(f) = &a.finished_at { ", finished " (d.stored(f)) }
            ", " (time::between(&a.created_at, a.finished_at.as_deref(), d.now).map(time::duration).unwrap_or_default())
        }
        div.scroll {
            table.tasks {
                thead { tr { th { "Task" } th { "State" } th { "Try" } th { "Started" } th { "Duration" } th { "First error" } th { "Log" } @if !running { th { "Retry" } } } }
                tbody {
                    @for t in &v.tasks {
                        @let level = depth.get(&t.id).copied().unwrap_or(0);
                        tr data-task=(t.id) {
                            td class={"depth depth-" (level.min(8))} title=(t.full_name) { a href={"/ui/attempts/" (id) "/tasks/" (t.id)} { code { (short_name(&t.full_name)) } } }
                            td { (state::badge(state::task(&t.state))) }
                            td {
                                @if t.fence > 0 && !t.is_group {
                                    "try " (t.retry_count + 1) "/" (v.limits.get(&t.id).copied().unwrap_or(1))
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

/// `GET /ui/attempts/{id}/live`: a `tasks` event with the status line and task table at
/// each change of the attempt, the first at once; each event is the whole fragment, so a
/// reconnect (with or without `Last-Event-ID`) misses nothing. Ends when the attempt does.
pub async fn live(
    State(api): State<Api>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> UiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let id = parse_attempt(&id)?;
    load(&api, id).await?;
    let changes = api.handle.changes.subscribe();
    let stream = futures_util::stream::unfold(
        (api, ctx, changes, 0u64, false),
        move |(api, mut ctx, mut changes, n, done)| async move {
            if done {
                return None;
            }
            if n > 0 {
                // Wake on this attempt's change notices (any, after a lag); a timer as well,
                // so relative times and running durations stay fresh.
                loop {
                    tokio::select! {
                        got = changes.recv() => match got {
                            Ok(a) if a != id => continue,
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                            _ => break,
                        },
                        () = tokio::time::sleep(std::time::Duration::from_secs(5)) => break,
                    }
                }
            }
            let v = load(&api, id).await.ok()?;
            ctx.display.now = api.handle.clock.now();
            let finished = v.attempt.state != "running";
            let event = Event::default()
                .event(if finished { "done" } else { "tasks" })
                .id((n + 1).to_string())
                .data(tasks_fragment(&ctx, &v).into_string());
            Some((Ok(event), (api, ctx, changes, n + 1, finished)))
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
