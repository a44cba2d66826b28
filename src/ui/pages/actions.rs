//! Actions: `GET /ui/confirm/{action}` names the target and asks (for a backfill it lists
//! the exact session times and marks those that exist, for a skip the exact slots it steps
//! over), `POST /ui/actions/{action}` does it through the API's own handlers, writes the
//! audit row, and returns to the target's page, where the outcome shows in its audit trail.
//! Every POST carries the CSRF token.

use super::attempt::parse_attempt;
use crate::api::act::{self, Body};
use crate::api::{Api, ApiError};
use crate::ids::AttemptId;
use crate::store::ui::AuditEntry;
use crate::ui::guard::{Csrf, Ctx};
use crate::ui::pages::workflow_href;
use crate::ui::{layout, UiError, UiResult};
use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use maud::html;
use serde::Deserialize;
use serde_json::{json, Value};

/// What a confirmation or an action names; each action uses some of it.
#[derive(Deserialize, Default, Clone)]
pub struct Target {
    attempt: Option<String>,
    workflow: Option<String>,
    schedule: Option<i64>,
    reason: Option<String>,
    session_time: Option<String>,
    from: Option<String>,
    to: Option<String>,
    attempt_name: Option<String>,
    /// The task a `retry_from` runs again (a full name).
    task: Option<String>,
    /// A skip: how many slots, or the session time to skip to (one of them).
    count: Option<String>,
    next_time: Option<String>,
    /// The skip's confirmation saw this next session (RFC 3339, or `none`): a schedule that
    /// moved since is not skipped by a plan the user did not see.
    expect_next: Option<String>,
    #[serde(default)]
    csrf: String,
}

fn required<'a>(v: &'a Option<String>, what: &str) -> UiResult<&'a str> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| UiError::bad_request(format!("the form lacks `{what}`")))
}

/// The body of an API response (the API's handlers answer JSON).
async fn json_of(r: Response) -> Value {
    let bytes = axum::body::to_bytes(r.into_body(), crate::api::BODY_LIMIT)
        .await
        .unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

fn api_body<T: serde::de::DeserializeOwned>(v: Value) -> UiResult<Body<T>> {
    serde_json::from_value(v)
        .map(Body)
        .map_err(|e| UiError::bad_request(format!("invalid request: {e}")))
}

/// The schedule id of a workflow, if it is scheduled.
async fn schedule_id(api: &Api, workflow: &str) -> UiResult<i64> {
    let engine = api.handle.engine.clone();
    let project = api.handle.project_id;
    let rows = crate::api::blocking(move || engine.schedules(project)).await?;
    rows.iter()
        .find(|r| r.workflow == workflow)
        .map(|r| r.id)
        .ok_or_else(|| UiError::not_found(format!("workflow {workflow} has no schedule")))
}

fn describe_attempt(a: &crate::store::api::AttemptRow) -> String {
    let name = if a.attempt_name.is_empty() {
        String::new()
    } else {
        format!(" (name {})", a.attempt_name)
    };
    format!(
        "attempt {} of {} at session {}{name}",
        a.id,
        a.workflow,
        crate::api::shapes::session_time(&a.session_time, &a.timezone)
            .as_str()
            .unwrap_or("")
    )
}

/// The skip of a workflow's schedule, planned by the API's own code (`act::plan_skip`).
async fn skip_plan(api: &Api, t: &Target) -> UiResult<(String, act::SkipPlan)> {
    let workflow = required(&t.workflow, "workflow")?.to_owned();
    let schedule = schedule_id(api, &workflow).await?;
    let count = t.count.as_deref().map(str::trim).filter(|c| !c.is_empty());
    let next_time = t
        .next_time
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    let count = match count {
        Some(c) => Some(c.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
            UiError::bad_request(format!(
                "invalid count `{c}`: expected a whole number of slots from 1 to {}",
                act::MAX_SKIP
            ))
        })?),
        None => None,
    };
    if count.is_some() == next_time.is_some() {
        return Err(UiError::bad_request(
            "give either a number of slots to skip or a session time to skip to, not both",
        ));
    }
    let plan = act::plan_skip(api, &schedule.to_string(), count, next_time).await?;
    Ok((workflow, plan))
}

/// A slot's session time as the plan's `expect_next` names it.
fn slot_key(plan: &act::SkipPlan, slot: Option<crate::schedule::Slot>) -> String {
    slot.map_or_else(
        || "none".to_owned(),
        |s| crate::schedule::format_rfc3339(s.session_time, &plan.tz),
    )
}

/// What a skip did, for the audit: how many slots, the first and last, and where it stopped.
fn skip_outcome(plan: &act::SkipPlan) -> String {
    let at = |s: &crate::schedule::Slot| crate::schedule::format_rfc3339(s.session_time, &plan.tz);
    let what = match (plan.skipped.first(), plan.skipped.last()) {
        (Some(first), _) if plan.skipped.len() == 1 => format!("skipped 1 slot ({})", at(first)),
        (Some(first), Some(last)) => format!(
            "skipped {}{} slots ({} to {}{})",
            if plan.more { "more than " } else { "" },
            plan.skipped.len(),
            at(first),
            at(last),
            if plan.more { " and on" } else { "" }
        ),
        _ => "skipped nothing".to_owned(),
    };
    match plan.next {
        Some(n) => format!("{what}; next session {}", at(&n)),
        None => format!("{what}; no next session (past the schedule's end)"),
    }
}

/// The backfill's session times: the API's own dry run.
async fn backfill_preview(api: &Api, t: &Target) -> UiResult<(String, Vec<String>)> {
    let workflow = required(&t.workflow, "workflow")?.to_owned();
    let schedule = schedule_id(api, &workflow).await?;
    let mut req = json!({"fromTime": required(&t.from, "from")?, "dryRun": true});
    if let Some(to) = t.to.as_deref().filter(|s| !s.trim().is_empty()) {
        req["toTime"] = json!(to.trim());
    }
    if let Some(n) = t.attempt_name.as_deref().filter(|s| !s.trim().is_empty()) {
        req["attemptName"] = json!(n.trim());
    }
    let r = act::backfill(
        State(api.clone()),
        Path(schedule.to_string()),
        api_body(req)?,
    )
    .await?;
    let v = json_of(r).await;
    let times = v["attempts"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|a| a["sessionTime"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Ok((workflow, times))
}

pub async fn confirm(
    State(api): State<Api>,
    Extension(ctx): Extension<Ctx>,
    Path(action): Path<String>,
    Query(t): Query<Target>,
) -> UiResult<Response> {
    let hidden = |name: &str, value: &str| html! { input type="hidden" name=(name) value=(value); };
    let body = match action.as_str() {
        "retry_from" => {
            let id = parse_attempt(required(&t.attempt, "attempt")?)?;
            let task = required(&t.task, "task")?;
            let a = api.attempt_row(id).await?;
            html! {
                h1 { "Retry attempt " (a.id) " from " code { (task) } "?" }
                p.target { "Run " strong { code { (task) } } " and every task after it again, in " strong { (describe_attempt(&a)) } "." }
                p { "Tasks before it that succeeded are kept with what they stored." }
                form method="post" action="/ui/actions/retry_from" class="confirm" {
                    (ctx.csrf_field())
                    (hidden("attempt", &a.id.to_string()))
                    (hidden("task", task))
                    button type="submit" { "Retry from " (task) }
                    " " a href={"/ui/attempts/" (a.id)} { "Cancel" }
                }
            }
        }
        "kill" | "retry_failed" | "retry_all" => {
            let id = parse_attempt(required(&t.attempt, "attempt")?)?;
            let a = api.attempt_row(id).await?;
            let (verb, warning) = match action.as_str() {
                "kill" => ("Kill", "Running tasks get SIGTERM, then SIGKILL; queued tasks are canceled; _error handlers do not run."),
                "retry_failed" => ("Retry the failed tasks of", "Tasks that succeeded are kept with what they stored."),
                _ => ("Retry every task of", "Every task runs again, including those that succeeded."),
            };
            html! {
                h1 { (verb) " attempt " (a.id) "?" }
                p.target { (verb) " " strong { (describe_attempt(&a)) } "." }
                p { (warning) }
                form method="post" action={"/ui/actions/" (action)} class="confirm" {
                    (ctx.csrf_field())
                    (hidden("attempt", &a.id.to_string()))
                    button.danger[action == "kill"] type="submit" { (verb) " attempt " (a.id) }
                    " " a href={"/ui/attempts/" (a.id)} { "Cancel" }
                }
            }
        }
        "run_now" => {
            let workflow = required(&t.workflow, "workflow")?;
            let entry = api.workflow_by_name(workflow).await?;
            let tz = jiff::tz::TimeZone::get(&entry.loaded.workflow.timezone).unwrap_or(jiff::tz::TimeZone::UTC);
            // Fixed here, so a second click of the same form finds the session made by the first.
            let now = ctx.display.now.round(jiff::Unit::Second).unwrap_or(ctx.display.now);
            let session = crate::schedule::format_rfc3339(now, &tz);
            html! {
                h1 { "Run " (workflow) " now?" }
                p.target { "Start workflow " strong { (workflow) } " with session time " (ctx.display.session(now, &tz)) "." }
                form method="post" action="/ui/actions/run_now" class="confirm" {
                    (ctx.csrf_field())
                    (hidden("workflow", workflow))
                    (hidden("session_time", &session))
                    button type="submit" { "Start " (workflow) }
                    " " a href=(workflow_href(workflow)) { "Cancel" }
                }
            }
        }
        "backfill" => {
            let (workflow, times) = backfill_preview(&api, &t).await?;
            let name = t.attempt_name.clone().unwrap_or_default();
            let entry = api.workflow_by_name(&workflow).await?;
            let tz = jiff::tz::TimeZone::get(&entry.loaded.workflow.timezone).unwrap_or(jiff::tz::TimeZone::UTC);
            let project = api.handle.project_id;
            let wf = workflow.clone();
            let lookup: Vec<(String, Option<jiff::Timestamp>)> = times.iter().map(|s| (s.clone(), s.parse().ok())).collect();
            let n = name.clone();
            let existing = crate::ui::read(&api, "ui_backfill_exists", move |tx| {
                lookup.iter().map(|(_, t)| match t {
                    Some(t) => crate::store::api::attempt_by_key(tx, project, &wf, *t, n.trim()),
                    None => Ok(None),
                }).collect::<Result<Vec<_>, _>>()
            }).await?;
            html! {
                h1 { "Backfill " (workflow) "?" }
                @if times.is_empty() {
                    p { "No session of " (workflow) " falls in this range before its next scheduled slot." }
                } @else {
                    p.target { "Create " (times.len()) " sessions of " strong { (workflow) } @if !name.is_empty() { " with attempt name " code { (name) } } ":" }
                    ol.backfill {
                        @for (s, e) in times.iter().zip(&existing) {
                            li {
                                @match s.parse::<jiff::Timestamp>() { Ok(t) => (ctx.display.session(t, &tz)), Err(_) => (s) }
                                @if let Some(a) = e { " — exists already as " (super::attempt_link(*a)) ", not repeated" }
                            }
                        }
                    }
                    form method="post" action="/ui/actions/backfill" class="confirm" {
                        (ctx.csrf_field())
                        (hidden("workflow", &workflow))
                        (hidden("from", t.from.as_deref().unwrap_or("")))
                        (hidden("to", t.to.as_deref().unwrap_or("")))
                        (hidden("attempt_name", &name))
                        button type="submit" { "Create " (times.len()) " sessions" }
                        " " a href=(workflow_href(&workflow)) { "Cancel" }
                    }
                }
            }
        }
        "skip" => {
            let (workflow, plan) = skip_plan(&api, &t).await?;
            let tz = plan.tz.clone();
            let d = &ctx.display;
            html! {
                h1 { "Skip slots of " (workflow) "?" }
                @if plan.skipped.is_empty() {
                    p.target { "Nothing to skip: " strong { (workflow) } "'s next session is "
                        @if let Some(n) = plan.current { (d.session(n.session_time, &tz)) } @else { "none (its schedule has ended)" } "." }
                    p { a href=(workflow_href(&workflow)) { "Back to " (workflow) } }
                } @else {
                    p.target { "Skip " (plan.skipped.len()) @if plan.more { " and more" } " slots of workflow " strong { (workflow) } " (times in " (plan.tz.iana_name().unwrap_or("UTC")) "); they will not run:" }
                    div.scroll {
                        table.skipped {
                            thead { tr { th scope="col" { "Session time" } th scope="col" { "Run time" } } }
                            tbody {
                                @for s in &plan.skipped {
                                    tr { td.session { (d.session(s.session_time, &tz)) } td.run { (d.session(s.run_time, &tz)) } }
                                }
                            }
                        }
                    }
                    @if plan.more { p { "…and more slots after these: the list stops at " (act::LISTED_SKIPS) "." } }
                    p { @if let Some(n) = plan.next {
                        "The next session will then be " (d.session(n.session_time, &tz)) ", run at " (d.session(n.run_time, &tz)) " (" (d.instant(n.run_time)) ")."
                    } @else {
                        "The schedule then has no next session: its end has passed."
                    } }
                    form method="post" action="/ui/actions/skip" class="confirm" {
                        (ctx.csrf_field())
                        (hidden("workflow", &workflow))
                        (hidden("schedule", &plan.schedule.to_string()))
                        (hidden("count", t.count.as_deref().unwrap_or("")))
                        (hidden("next_time", t.next_time.as_deref().unwrap_or("")))
                        (hidden("expect_next", &slot_key(&plan, plan.current)))
                        button.danger type="submit" { "Skip " (plan.skipped.len()) @if plan.more { "+" } " slots" }
                        " " a href=(workflow_href(&workflow)) { "Cancel" }
                    }
                }
            }
        }
        other => return Err(UiError::not_found(format!("no action `{other}`: the actions are kill, retry_failed, retry_all, retry_from, run_now, pause, resume, backfill and skip"))),
    };
    Ok(layout::page(&ctx, "Confirm", layout::Nav::None, body))
}

/// What an action did: where to go back to, and the audit row's fields.
struct Done {
    back: String,
    workflow: Option<String>,
    attempt: Option<AttemptId>,
    detail: String,
    outcome: Result<String, ApiError>,
}

async fn perform(api: &Api, action: &str, t: &Target) -> UiResult<Done> {
    match action {
        "kill" | "retry_failed" | "retry_all" | "retry_from" => {
            let id = parse_attempt(required(&t.attempt, "attempt")?)?;
            let a = api.attempt_row(id).await?;
            let outcome = if action == "kill" {
                act::kill(State(api.clone()), Path(id.to_string()))
                    .await
                    .map(|_| "kill requested".to_owned())
            } else {
                let mode = match action {
                    "retry_all" => "all",
                    "retry_from" => "from",
                    _ => "failed",
                };
                let mut resume = json!({"mode": mode, "attemptId": id.to_string()});
                if mode == "from" {
                    resume["from"] = json!(required(&t.task, "task")?);
                }
                let mut req = json!({
                    "workflowId": a.revision.to_string(),
                    "sessionTime": crate::api::shapes::session_time(&a.session_time, &a.timezone),
                    "resume": resume,
                });
                if !a.attempt_name.is_empty() {
                    req["retryAttemptName"] = json!(a.attempt_name);
                }
                match api_body(req) {
                    Ok(body) => act::start(State(api.clone()), body)
                        .await
                        .map(|_| format!("resumed ({mode})")),
                    Err(e) => Err(ApiError::bad_request(e.message)),
                }
            };
            Ok(Done {
                back: format!("/ui/attempts/{id}"),
                workflow: Some(a.workflow.clone()),
                attempt: Some(id),
                detail: describe_attempt(&a),
                outcome,
            })
        }
        "run_now" => {
            let workflow = required(&t.workflow, "workflow")?;
            let session = required(&t.session_time, "session_time")?;
            let entry = api.workflow_by_name(workflow).await?;
            let req = json!({"workflowId": entry.id.to_string(), "sessionTime": session});
            let result = act::start(State(api.clone()), api_body(req)?).await;
            let (attempt, outcome) = match result {
                Ok(r) => {
                    let v = json_of(r).await;
                    let id = v["id"].as_str().and_then(|s| s.parse().ok()).map(AttemptId);
                    (id, Ok("started".to_owned()))
                }
                Err(e) => (None, Err(e)),
            };
            Ok(Done {
                back: attempt
                    .map_or_else(|| workflow_href(workflow), |a| format!("/ui/attempts/{a}")),
                workflow: Some(workflow.to_owned()),
                attempt,
                detail: format!("{workflow} at session {session}"),
                outcome,
            })
        }
        "pause" | "resume" => {
            let workflow = required(&t.workflow, "workflow")?.to_owned();
            let schedule = schedule_id(api, &workflow).await?;
            if t.schedule.is_some_and(|s| s != schedule) {
                return Err(UiError::bad_request(format!(
                    "schedule {} is not the schedule of {workflow}",
                    t.schedule.unwrap_or(0)
                )));
            }
            let reason = if action == "pause" {
                let r = required(&t.reason, "reason")?;
                Some(r.chars().take(200).collect::<String>())
            } else {
                None
            };
            let engine = api.handle.engine.clone();
            let now = api.handle.clock.now();
            let why = reason.clone();
            let outcome = crate::api::blocking(move || {
                engine
                    .store()
                    .write("ui_pause", |tx| {
                        crate::store::api::set_paused(tx, schedule, why.as_deref(), now)
                    })
                    .map_err(Into::into)
            })
            .await
            .map(|()| match &reason {
                Some(r) => format!("paused: {r}"),
                None => "resumed".to_owned(),
            });
            api.handle.kick.notify_one();
            Ok(Done {
                back: workflow_href(&workflow),
                detail: format!("the schedule of {workflow}"),
                workflow: Some(workflow),
                attempt: None,
                outcome,
            })
        }
        "backfill" => {
            let workflow = required(&t.workflow, "workflow")?.to_owned();
            let schedule = schedule_id(api, &workflow).await?;
            let mut req = json!({"fromTime": required(&t.from, "from")?});
            if let Some(to) = t.to.as_deref().filter(|s| !s.trim().is_empty()) {
                req["toTime"] = json!(to.trim());
            }
            if let Some(n) = t.attempt_name.as_deref().filter(|s| !s.trim().is_empty()) {
                req["attemptName"] = json!(n.trim());
            }
            let outcome = match act::backfill(
                State(api.clone()),
                Path(schedule.to_string()),
                api_body(req)?,
            )
            .await
            {
                Ok(r) => {
                    let v = json_of(r).await;
                    Ok(format!(
                        "{} attempts created",
                        v["attempts"].as_array().map_or(0, Vec::len)
                    ))
                }
                Err(e) => Err(e),
            };
            Ok(Done {
                back: workflow_href(&workflow),
                detail: format!(
                    "{workflow} from {} to {}",
                    t.from.as_deref().unwrap_or(""),
                    t.to.as_deref()
                        .filter(|s| !s.is_empty())
                        .unwrap_or("its next slot")
                ),
                workflow: Some(workflow),
                attempt: None,
                outcome,
            })
        }
        "skip" => {
            let (workflow, plan) = skip_plan(api, t).await?;
            if t.schedule.is_some_and(|s| s != plan.schedule) {
                return Err(UiError::bad_request(format!(
                    "schedule {} is not the schedule of {workflow}",
                    t.schedule.unwrap_or(0)
                )));
            }
            let seen = required(&t.expect_next, "expect_next")?;
            let now = slot_key(&plan, plan.current);
            let outcome = if seen != now {
                Err(ApiError::new(
                    axum::http::StatusCode::CONFLICT,
                    format!("the schedule moved since the preview (its next session was {seen}, now {now}): preview the skip again"),
                ))
            } else {
                act::apply_skip(api, &plan)
                    .await
                    .map(|()| skip_outcome(&plan))
            };
            Ok(Done {
                back: workflow_href(&workflow),
                detail: format!("the schedule of {workflow}"),
                workflow: Some(workflow),
                attempt: None,
                outcome,
            })
        }
        other => Err(UiError::not_found(format!("no action `{other}`"))),
    }
}

pub async fn act(
    State(api): State<Api>,
    Extension(ctx): Extension<Ctx>,
    Path(action): Path<String>,
    Form(t): Form<Target>,
) -> UiResult<Response> {
    ctx.check(&Csrf(t.csrf.clone()))?;
    let done = perform(&api, &action, &t).await?;
    let entry = AuditEntry {
        id: 0,
        at: api.handle.clock.now().to_string(),
        actor: ctx.actor.clone(),
        action: action.clone(),
        workflow: done.workflow.clone(),
        attempt: done.attempt,
        detail: done.detail.clone(),
        outcome: match &done.outcome {
            Ok(text) => text.clone(),
            Err(e) => format!("refused: {}", e.message),
        },
    };
    tracing::info!(action = %action, target = %done.detail, outcome = %entry.outcome, "UI action");
    let engine = api.handle.engine.clone();
    crate::api::blocking(move || {
        engine
            .store()
            .write("ui_audit", |tx| crate::store::ui::record_audit(tx, &entry))
            .map_err(Into::into)
    })
    .await?;
    Ok(Redirect::to(&done.back).into_response())
}
