//! The endpoints that change something: start (and retry) an attempt, kill one, and skip,
//! backfill, enable or disable a schedule. Each goes through the same engine calls as the
//! scheduler and `spade run`, so the schema's dedupe decides what a duplicate does.

use super::read::parse_id;
use super::{blocking, shapes, Api, ApiError, ApiResult};
use crate::engine::{ClaimOutcome, NewAttempt};
use crate::executor::heartbeat::real_ms;
use crate::ids::AttemptId;
use crate::schedule::Slot;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{json, Value};

/// A JSON body, with its rejection as a JSON 400 (or 413, 415).
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(e) => Err(rejection(&e)),
        }
    }
}

/// 400 for a body that is not the JSON the endpoint takes (axum says 422 for a missing
/// field; Digdag says 400), 413 for one too large, 415 without a JSON content type.
fn rejection(e: &JsonRejection) -> ApiError {
    let status = match e.status() {
        StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
        other => other,
    };
    ApiError::new(status, format!("invalid request body: {}", e.body_text()))
}

/// `PUT /api/attempts`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartRequest {
    workflow_id: String,
    session_time: String,
    retry_attempt_name: Option<String>,
    #[serde(default)]
    params: crate::expr::JsonMap,
    resume: Option<Resume>,
}

/// Digdag's `resume` of a start: `{"mode": "failed", "attemptId": "5"}`; spade adds
/// `{"mode": "all", ...}` (every task again, Digdag's `retry --all`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resume {
    mode: String,
    attempt_id: String,
    from: Option<String>,
}

/// A time field: an instant with offset, or a local date or date-time in the workflow zone.
pub fn parse_time(field: &str, text: &str, tz: &jiff::tz::TimeZone) -> ApiResult<Timestamp> {
    let bad = || {
        ApiError::bad_request(format!(
            "invalid {field} `{text}`: expected an ISO 8601 time with offset (2026-01-30T00:00:00Z, 2026-01-30T09:00:00+09:00), or YYYY-MM-DD or \"YYYY-MM-DD HH:MM:SS\" in the workflow's time zone"
        ))
    };
    let t = text.trim();
    if t.is_empty() || matches!(t, "now" | "daily" | "hourly" | "last") {
        return Err(bad());
    }
    crate::cli::run::parse_session(t, tz, Timestamp::UNIX_EPOCH).map_err(|_| bad())
}

pub async fn start(State(api): State<Api>, Body(req): Body<StartRequest>) -> ApiResult<Response> {
    let revision = parse_id("workflowId", &req.workflow_id)?;
    let engine = api.handle.engine.clone();
    let found = blocking(move || {
        engine
            .store()
            .read_snapshot("api_revision", |tx| {
                crate::store::api::revision(tx, revision)
            })
            .map_err(Into::into)
    })
    .await?;
    let name = match found {
        Some((project, name)) if project == api.handle.project_id => name,
        _ => return Err(ApiError::not_found("workflow", revision)),
    };
    let entry = api.workflow_by_name(&name).await?;
    let tz =
        jiff::tz::TimeZone::get(&entry.loaded.workflow.timezone).unwrap_or(jiff::tz::TimeZone::UTC);
    let mut session_time = parse_time("sessionTime", &req.session_time, &tz)?;
    let mut attempt_name = req.retry_attempt_name.clone().filter(|n| !n.is_empty());
    let mut rerun = false;
    let mut resume_from: Option<String> = None;
    if let Some(resume) = &req.resume {
        let id = AttemptId(parse_id("resume.attemptId", &resume.attempt_id)?);
        let previous = api.attempt_row(id).await?;
        if previous.workflow != name {
            return Err(ApiError::bad_request(format!(
                "resume.attemptId {id} is an attempt of {}, not of {name}",
                previous.workflow
            )));
        }
        match (resume.mode.as_str(), resume.from.as_deref()) {
            ("failed", None) => {}
            ("all", None) => rerun = true,
            ("from", Some(task)) if !task.trim().is_empty() => resume_from = Some(task.to_owned()),
            ("from", _) => {
                return Err(ApiError::bad_request(
                    "resume mode `from` needs `from`: the task to run again with everything after it (`+group+task`)",
                ))
            }
            ("failed" | "all", Some(_)) => {
                return Err(ApiError::bad_request(
                    "resume.from goes with mode `from` only",
                ))
            }
            (other, _) => {
                return Err(ApiError::bad_request(format!(
                    "invalid resume.mode `{other}`: expected `failed`, `all` or `from`"
                )))
            }
        }
        if previous.state == "running" {
            return Err(ApiError::conflict(
                format!("attempt {id} is still running; kill it or wait for it first"),
                shapes::attempt(&previous),
            ));
        }
        if previous.state == "succeeded" && !rerun && resume_from.is_none() {
            return Err(ApiError::conflict(
                format!("attempt {id} succeeded: there is nothing to resume (use mode `all` to run it again)"),
                shapes::attempt(&previous),
            ));
        }
        // spade resumes an attempt in place: same session, same name, new generation.
        if attempt_name
            .as_deref()
            .is_some_and(|n| n != previous.attempt_name)
        {
            return Err(ApiError::bad_request(format!(
                "retryAttemptName must be absent or `{}` when resuming attempt {id}: spade resumes an attempt in place",
                previous.attempt_name
            )));
        }
        attempt_name = Some(previous.attempt_name.clone()).filter(|n| !n.is_empty());
        session_time = previous
            .session_time
            .parse()
            .map_err(|_| ApiError::bad_request("the attempt's session time is unreadable"))?;
    }
    if req.resume.is_none() {
        // A plain start never resumes or repeats an attempt that exists (Digdag's 409); the
        // schema still decides between two starts racing past this check.
        let engine = api.handle.engine.clone();
        let key = (
            api.handle.project_id,
            name.clone(),
            session_time,
            attempt_name.clone().unwrap_or_default(),
        );
        let existing = blocking(move || {
            engine
                .store()
                .read_snapshot("api_find_attempt", |tx| {
                    crate::store::api::attempt_by_key(tx, key.0, &key.1, key.2, &key.3)
                })
                .map_err(Into::into)
        })
        .await?;
        if let Some(id) = existing {
            let row = api.attempt_row(id).await?;
            return Err(ApiError::conflict(
                format!(
                    "attempt {id} of this session and name exists already ({}); name a new attempt with retryAttemptName, or retry it",
                    shapes::attempt_status(&row.state)
                ),
                shapes::attempt(&row),
            ));
        }
    }
    let new = NewAttempt {
        project_dir: api.handle.project_dir.clone(),
        workflow: (*entry.loaded.workflow).clone(),
        sources: entry.loaded.sources.clone(),
        session_time,
        attempt_name,
        params: req.params,
        rerun,
        resume_from,
    };
    let engine = api.handle.engine.clone();
    let owner = api.handle.owner.clone();
    let now = api.handle.clock.now();
    let (prepared, claim) =
        blocking(move || engine.prepare_and_claim(&new, now, &owner, real_ms())).await?;
    let row = api.attempt_row(prepared.attempt).await?;
    if !prepared.created {
        let message = match &claim {
            ClaimOutcome::Busy(o) => format!(
                "attempt {} of this session and name exists and is running (driven by {})",
                prepared.attempt,
                o.describe()
            ),
            _ => format!(
                "attempt {} of this session and name exists already ({}); name a new attempt with retryAttemptName, or resume it",
                prepared.attempt,
                shapes::attempt_status(&row.state)
            ),
        };
        return Err(ApiError::conflict(message, shapes::attempt(&row)));
    }
    match claim {
        ClaimOutcome::Claimed(c) => {
            tracing::info!(attempt = %prepared.attempt, workflow = %name, "attempt started through the API");
            let _ = api.handle.drive.send(c.into());
        }
        ClaimOutcome::Finished => {}
        ClaimOutcome::Busy(o) => {
            return Err(ApiError::conflict(
                format!("attempt {} is driven by {}", prepared.attempt, o.describe()),
                shapes::attempt(&row),
            ))
        }
    }
    let _ = api.handle.changes.send(prepared.attempt);
    api.metrics.started(&name);
    let mut body = shapes::attempt(&row);
    if let Some(r) = &prepared.resume {
        // spade's own: what the resume keeps and runs again (`docs/api.md`).
        body["resume"] = serde_json::json!({
            "kept": r.kept,
            "new": r.new,
            "changed": r.changed,
            "rerunAfterChange": r.after_changed,
            "definitionChanged": r.definition_changed,
            "from": r.from,
        });
    }
    Ok(Json(body).into_response())
}

/// `POST /api/attempts/{id}/kill`: 204; 409 when the attempt finished already.
pub async fn kill(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<Response> {
    let id = AttemptId(parse_id("attempt id", &id)?);
    let row = api.attempt_row(id).await?;
    if row.state != "running" {
        return Err(ApiError::conflict(
            format!(
                "attempt {id} finished already ({})",
                shapes::attempt_status(&row.state)
            ),
            shapes::attempt(&row),
        ));
    }
    let engine = api.handle.engine.clone();
    let owner = blocking(move || engine.request_cancel(id, real_ms())).await?;
    match owner {
        // Ours: the supervisor stops it now. Another process's: it reads the flag at its
        // next heartbeat. Nobody's: this daemon adopts it at its next heartbeat and kills it.
        Some(o) if o.id == api.handle.owner => {
            let _ = api.handle.kills.send(id);
        }
        Some(o) => {
            tracing::info!(attempt = %id, owner = %o.describe(), "kill requested of another process");
        }
        None => {}
    }
    tracing::info!(attempt = %id, "kill requested through the API");
    let _ = api.handle.changes.send(id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The schedule row `id` of this project with its loaded schedule.
async fn schedule_of(
    api: &Api,
    id: &str,
) -> ApiResult<(
    crate::store::schedules::ScheduleRow,
    super::read::WorkflowEntry,
)> {
    let id = parse_id("schedule id", id)?;
    let engine = api.handle.engine.clone();
    let row = blocking(move || {
        engine
            .store()
            .read_snapshot("api_schedule", |tx| crate::store::schedules::load(tx, id))
            .map_err(Into::into)
    })
    .await?
    .filter(|r| r.project == api.handle.project_id)
    .ok_or_else(|| ApiError::not_found("schedule", id))?;
    let entry = api.workflow_by_name(&row.workflow).await?;
    if entry.loaded.schedule.is_none() {
        return Err(ApiError::not_found("schedule", id));
    }
    Ok((row, entry))
}

async fn schedule_response(api: &Api, id: i64) -> ApiResult<Response> {
    let list = api.schedules_json().await?;
    list.into_iter()
        .find(|(i, _)| *i == id)
        .map(|(_, v)| Json(v).into_response())
        .ok_or_else(|| ApiError::not_found("schedule", id))
}

/// `POST /api/schedules/{id}/skip`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SkipRequest {
    count: Option<u32>,
    next_time: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

/// The most slots one skip may step over by count (each is a step of the schedule's own
/// slot code, so a huge count would hold a request for minutes).
pub const MAX_SKIP: u32 = 100_000;

/// The skipped slots a plan lists; past this many it says how many more there are not.
pub const LISTED_SKIPS: usize = 1000;

/// What a skip does, computed before it is done: the dry run's answer, the UI's
/// confirmation, and what [`apply_skip`] writes.
pub struct SkipPlan {
    pub schedule: i64,
    pub workflow: String,
    pub tz: jiff::tz::TimeZone,
    /// The schedule's next slot now (`None` when it has none: ended).
    pub current: Option<Slot>,
    /// The slots stepped over, in order, at most [`LISTED_SKIPS`].
    pub skipped: Vec<Slot>,
    /// More slots are stepped over than `skipped` lists.
    pub more: bool,
    /// The slot the schedule moves to (`None`: past its `end`).
    pub next: Option<Slot>,
}

/// Plans a skip of schedule `id` by `count` slots or to the first session at or after
/// `next_time` (exactly one of them): the API's `skip` and the UI's both use this.
pub async fn plan_skip(
    api: &Api,
    id: &str,
    count: Option<u32>,
    next_time: Option<&str>,
) -> ApiResult<SkipPlan> {
    let (row, entry) = schedule_of(api, id).await?;
    let Some(scheduled) = entry.loaded.schedule.as_ref() else {
        return Err(ApiError::not_found("schedule", row.id));
    };
    let schedule = &scheduled.schedule;
    let current = match (row.next_session, row.next_run) {
        (Some(session_time), Some(run_time)) => Some(Slot {
            session_time,
            run_time,
        }),
        _ => None,
    };
    let mut skipped = Vec::new();
    let mut more = false;
    let mut keep = |s: Slot, skipped: &mut Vec<Slot>| {
        if skipped.len() < LISTED_SKIPS {
            skipped.push(s);
        } else {
            more = true;
        }
    };
    let next = match (count, next_time) {
        (Some(n), None) => {
            if n > MAX_SKIP {
                return Err(ApiError::bad_request(format!(
                    "invalid count {n}: skip at most {MAX_SKIP} slots at once, or give `nextTime`"
                )));
            }
            let mut slot = current;
            for _ in 0..n {
                let Some(s) = slot else { break };
                keep(s, &mut skipped);
                slot = crate::engine::next_slot(schedule, s.session_time);
            }
            slot
        }
        (None, Some(t)) => {
            let at = parse_time("nextTime", t, &schedule.tz)?;
            let next = first_slot_at_or_after(schedule, at);
            let mut slot = current;
            while let Some(s) = slot {
                if next.is_some_and(|n| s.session_time >= n.session_time) {
                    break;
                }
                keep(s, &mut skipped);
                if skipped.len() >= LISTED_SKIPS {
                    // Enough to show; whether there are more is one step further.
                    more = crate::engine::next_slot(schedule, s.session_time)
                        .is_some_and(|after| next.is_none_or(|n| after.session_time < n.session_time));
                    break;
                }
                slot = crate::engine::next_slot(schedule, s.session_time);
            }
            next
        }
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of `count` (slots to skip) and `nextTime` (the session time to skip to)",
            ))
        }
    };
    Ok(SkipPlan {
        schedule: row.id,
        workflow: row.workflow,
        tz: schedule.tz.clone(),
        current,
        skipped,
        more,
        next,
    })
}

/// Moves the schedule to the plan's next slot.
pub async fn apply_skip(api: &Api, plan: &SkipPlan) -> ApiResult<()> {
    let engine = api.handle.engine.clone();
    let now = api.handle.clock.now();
    let (rid, next) = (plan.schedule, plan.next);
    blocking(move || {
        engine
            .store()
            .write("api_skip", |tx| {
                crate::store::api::set_next_slot(tx, rid, next, now)
            })
            .map_err(Into::into)
    })
    .await?;
    api.handle.kick.notify_one();
    Ok(())
}

pub async fn skip(
    State(api): State<Api>,
    Path(id): Path<String>,
    Body(req): Body<SkipRequest>,
) -> ApiResult<Response> {
    let plan = plan_skip(&api, &id, req.count, req.next_time.as_deref()).await?;
    if req.dry_run {
        let tz = &plan.tz;
        return Ok(Json(json!({
            "id": plan.schedule.to_string(),
            "nextScheduleTime": plan.next.map(|s| crate::schedule::format_rfc3339(s.session_time, tz)),
            "nextRunTime": plan.next.map(|s| s.run_time.to_string()),
            // spade: the slots that would not run (at most LISTED_SKIPS, then `skippedMore`).
            "skippedSessionTimes": plan
                .skipped
                .iter()
                .map(|s| crate::schedule::format_rfc3339(s.session_time, tz))
                .collect::<Vec<_>>(),
            "skippedMore": plan.more,
        }))
        .into_response());
    }
    apply_skip(&api, &plan).await?;
    schedule_response(&api, plan.schedule).await
}

/// The first slot whose session time is at or after `at`, within the schedule's bounds.
fn first_slot_at_or_after(schedule: &crate::schedule::Schedule, at: Timestamp) -> Option<Slot> {
    let before = at.checked_sub(jiff::SignedDuration::from_nanos(1)).ok()?;
    crate::engine::next_slot(schedule, before)
}

/// `POST /api/schedules/{id}/backfill`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackfillRequest {
    from_time: String,
    /// spade: the last session time to include (instead of `count`).
    to_time: Option<String>,
    count: Option<usize>,
    attempt_name: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

/// At most this many sessions per backfill request.
pub const MAX_BACKFILL: usize = 1000;

pub async fn backfill(
    State(api): State<Api>,
    Path(id): Path<String>,
    Body(req): Body<BackfillRequest>,
) -> ApiResult<Response> {
    let (row, entry) = schedule_of(&api, &id).await?;
    let Some(scheduled) = entry.loaded.schedule.as_ref() else {
        return Err(ApiError::not_found("schedule", row.id));
    };
    let schedule = &scheduled.schedule;
    let from = parse_time("fromTime", &req.from_time, &schedule.tz)?;
    let to = req
        .to_time
        .as_deref()
        .map(|t| parse_time("toTime", t, &schedule.tz))
        .transpose()?;
    let count = req.count.unwrap_or(MAX_BACKFILL);
    if count == 0 || count > MAX_BACKFILL {
        return Err(ApiError::bad_request(format!(
            "invalid count {count}: expected 1 to {MAX_BACKFILL}"
        )));
    }
    // Only slots before the schedule's next one: the scheduler fires the rest itself.
    let limit = row.next_session;
    let mut slots = Vec::new();
    let mut slot = first_slot_at_or_after(schedule, from);
    while let Some(s) = slot {
        if slots.len() >= count
            || limit.is_some_and(|l| s.session_time >= l)
            || to.is_some_and(|t| s.session_time > t)
        {
            break;
        }
        slots.push(s);
        slot = crate::engine::next_slot(schedule, s.session_time);
    }
    let name = req.attempt_name.clone().filter(|n| !n.is_empty());
    let format = |s: &Slot| crate::schedule::format_rfc3339(s.session_time, &schedule.tz);
    if req.dry_run {
        let list: Vec<Value> = slots
            .iter()
            .map(|s| {
                json!({
                    "id": Value::Null,
                    "workflow": {"name": row.workflow, "id": entry.id.to_string()},
                    "sessionTime": format(s),
                    "retryAttemptName": name,
                })
            })
            .collect();
        return Ok(Json(json!({ "attempts": list, "dryRun": true })).into_response());
    }
    let mut started = Vec::new();
    for s in &slots {
        let new = NewAttempt {
            project_dir: api.handle.project_dir.clone(),
            workflow: (*entry.loaded.workflow).clone(),
            sources: entry.loaded.sources.clone(),
            session_time: s.session_time,
            attempt_name: name.clone(),
            params: crate::expr::JsonMap::new(),
            rerun: false,
            resume_from: None,
        };
        let engine = api.handle.engine.clone();
        let owner = api.handle.owner.clone();
        let now = api.handle.clock.now();
        let (prepared, claim) =
            blocking(move || engine.prepare_and_claim(&new, now, &owner, real_ms())).await?;
        if !prepared.created {
            // The session ran already under this name: a backfill does not repeat it.
            continue;
        }
        if let ClaimOutcome::Claimed(c) = claim {
            let _ = api.handle.drive.send(c.into());
        }
        api.metrics.started(&row.workflow);
        let _ = api.handle.changes.send(prepared.attempt);
        started.push(prepared.attempt);
    }
    let mut list = Vec::new();
    for a in started {
        list.push(shapes::attempt(&api.attempt_row(a).await?));
    }
    Ok(Json(json!({ "attempts": list })).into_response())
}

async fn set_disabled(api: &Api, id: &str, disabled: bool) -> ApiResult<Response> {
    let (row, _) = schedule_of(api, id).await?;
    let engine = api.handle.engine.clone();
    let now = api.handle.clock.now();
    let rid = row.id;
    blocking(move || {
        engine
            .store()
            .write("api_disable", |tx| {
                crate::store::api::set_paused(
                    tx,
                    rid,
                    disabled.then_some("disabled through the API"),
                    now,
                )
            })
            .map_err(Into::into)
    })
    .await?;
    api.handle.kick.notify_one();
    schedule_response(api, row.id).await
}

pub async fn enable(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<Response> {
    set_disabled(&api, &id, false).await
}

pub async fn disable(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<Response> {
    set_disabled(&api, &id, true).await
}
