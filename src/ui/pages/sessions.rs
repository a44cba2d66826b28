//! `GET /ui/sessions`: the project's attempts, newest first, filtered by the query string
//! (`workflow`, `status`) and keyset-paged by attempt id (`before`, `after`): no row is
//! counted, so a page costs the same on any store size.

use super::{attempt_link, table_or, workflow_link};
use crate::api::Api;
use crate::ui::guard::Ctx;
use crate::ui::{layout, state, time, UiError, UiResult};
use axum::extract::{Query, State};
use axum::response::Response;
use axum::Extension;
use maud::html;
use serde::Deserialize;

pub const PAGE: usize = 50;
pub const MAX_PAGE: usize = 500;

#[derive(Deserialize, Default)]
pub struct SessionsQuery {
    workflow: Option<String>,
    /// `running`, `success`, `error` or `killed` (the API's words).
    status: Option<String>,
    before: Option<i64>,
    after: Option<i64>,
    limit: Option<usize>,
}

/// The API's status word as the store's attempt state.
fn state_of(status: &str) -> Option<&'static str> {
    match status {
        "running" => Some("running"),
        "success" => Some("succeeded"),
        "error" => Some("failed"),
        "killed" => Some("killed"),
        _ => None,
    }
}

/// The query string of a page link: the filters kept, the keyset replaced.
fn link(q: &SessionsQuery, key: &str, id: i64) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    if let Some(w) = q.workflow.as_deref().filter(|w| !w.is_empty()) {
        s.append_pair("workflow", w);
    }
    if let Some(st) = q.status.as_deref().filter(|w| !w.is_empty()) {
        s.append_pair("status", st);
    }
    if let Some(l) = q.limit {
        s.append_pair("limit", &l.to_string());
    }
    s.append_pair(key, &id.to_string());
    format!("/ui/sessions?{}", s.finish())
}

pub async fn page(
    State(api): State<Api>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<SessionsQuery>,
) -> UiResult<Response> {
    let status = q.status.as_deref().filter(|s| !s.is_empty());
    let state = match status {
        None => None,
        Some(s) => Some(state_of(s).ok_or_else(|| {
            UiError::bad_request(format!(
                "invalid status `{s}`: expected running, success, error or killed"
            ))
        })?),
    };
    let limit = q.limit.unwrap_or(PAGE).clamp(1, MAX_PAGE);
    let filter = crate::store::ui::Filter {
        workflow: q.workflow.clone().filter(|w| !w.is_empty()),
        state: state.map(str::to_owned),
        before: q.before,
        after: q.after,
        // One more than shown tells whether another page follows.
        limit: limit + 1,
    };
    let project = api.handle.project_id;
    let mut rows = crate::ui::read(&api, "ui_sessions", move |tx| {
        crate::store::ui::attempts(tx, project, &filter)
    })
    .await?;
    let more = rows.len() > limit;
    if more {
        if q.after.is_some() {
            rows.remove(0);
        } else {
            rows.truncate(limit);
        }
    }
    // Going back (`after`) there are always newer pages when more rows came back; going
    // forward there is an older page when more came back, and a newer one when we came
    // from somewhere.
    let newer = if q.after.is_some() {
        more
    } else {
        q.before.is_some()
    };
    let older = if q.after.is_some() { true } else { more };
    let names: Vec<String> = api
        .workflow_entries()
        .await?
        .iter()
        .map(|e| e.loaded.workflow.name.clone())
        .collect();
    let d = &ctx.display;
    let selected_wf = q.workflow.as_deref().unwrap_or("");
    let body = html! {
        h1 { "Sessions" }
        form method="get" action="/ui/sessions" class="filters" {
            label { "Workflow "
                select name="workflow" {
                    option value="" selected[selected_wf.is_empty()] { "all" }
                    @for n in &names { option value=(n) selected[selected_wf == n] { (n) } }
                }
            }
            label { "Status "
                select name="status" {
                    option value="" selected[status.is_none()] { "all" }
                    @for s in ["running", "success", "error", "killed"] { option value=(s) selected[status == Some(s)] { (s) } }
                }
            }
            button type="submit" { "Filter" }
        }
        (table_or("No attempt matches.", !rows.is_empty(), html! {
            table.sessions {
                thead { tr { th { "Attempt" } th { "Status" } th { "Workflow" } th { "Session time" } th { "Name" } th { "Created" } th { "Duration" } } }
                tbody {
                    @for a in &rows {
                        tr {
                            td { (attempt_link(a.id)) }
                            td { (state::badge(state::attempt(&a.state, a.cancel_requested))) }
                            td { (workflow_link(&a.workflow)) }
                            td { (d.session_text(&a.session_time, &a.timezone)) }
                            td { @if a.attempt_name.is_empty() { span.none { "default" } } @else { (a.attempt_name) } }
                            td { (d.stored(&a.created_at)) }
                            td { (time::between(&a.created_at, a.finished_at.as_deref(), d.now).map(time::duration).unwrap_or_default()) }
                        }
                    }
                }
            }
        }))
        nav.pager aria-label="pages" {
            @if let (true, Some(first)) = (newer, rows.first()) { a rel="prev" href=(link(&q, "after", first.id.0)) { "← Newer" } }
            @if let (true, Some(last)) = (older, rows.last()) { a rel="next" href=(link(&q, "before", last.id.0)) { "Older →" } }
        }
    };
    Ok(layout::page(&ctx, "Sessions", layout::Nav::Sessions, body))
}
