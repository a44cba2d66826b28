//! `POST /api/gc`: retention of finished attempts (`spade gc --older-than 90d`), the same sweep
//! the daemon's `gc_older_than` policy runs (`daemon::gc`).

use super::act::Body;
use super::{blocking, Api, ApiError, ApiResult};
use crate::daemon::gc;
use crate::executor::StopLevel;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;

/// `{"olderThan": "90d", "dryRun": true}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GcRequest {
    older_than: String,
    #[serde(default)]
    dry_run: bool,
}

pub async fn collect(
    State(api): State<Api>,
    Body(req): Body<GcRequest>,
) -> ApiResult<Json<gc::Summary>> {
    let older_than = gc::parse_age(&req.older_than).ok_or_else(|| {
        ApiError::bad_request(format!(
            "invalid olderThan `{}`: expected {}",
            req.older_than,
            gc::AGE_FORMS
        ))
    })?;
    let now = api.handle.clock.now();
    let before = gc::cutoff(now, older_than).ok_or_else(|| {
        ApiError::bad_request(format!(
            "invalid olderThan `{}`: it reaches before the earliest time spade knows",
            req.older_than
        ))
    })?;
    let engine = api.handle.engine.clone();
    let dir = api.handle.state_dir.clone();
    let project = api.handle.project_id;
    let stop = api.stop.clone();
    let dry_run = req.dry_run;
    let summary = blocking(move || {
        let stopping = || *stop.borrow() != StopLevel::Run;
        gc::sweep(
            &engine,
            &dir,
            project,
            before,
            dry_run,
            crate::store::gc::BATCH,
            &stopping,
        )
    })
    .await?;
    if !dry_run {
        api.metrics.gc_removed(summary.total.attempts);
    }
    gc::log_summary(&summary, if dry_run { "API, dry run" } else { "API" });
    Ok(Json(summary))
}
