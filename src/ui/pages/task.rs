//! `GET /ui/attempts/{id}/tasks/{task}`: one task: its state and full error, and each try
//! with its start, end, outcome, message, evaluated params (secret keys masked) and log; the
//! task's store and export.

use super::attempt::parse_attempt;
use crate::api::Api;
use crate::ids::TaskId;
use crate::ui::guard::Ctx;
use crate::ui::{layout, state, time, UiError, UiResult};
use axum::extract::{Path, State};
use axum::response::Response;
use axum::Extension;
use maud::{html, Markup};

/// JSON pretty-printed for a `<pre>`, with the values of `secret` keys masked.
fn json_block(text: Option<&str>, secret: &[String]) -> Markup {
    let Some(text) = text else {
        return html! { span.none { "none" } };
    };
    let mut v: serde_json::Value =
        serde_json::from_str(text).unwrap_or(serde_json::Value::String(text.to_owned()));
    if let Some(map) = v.as_object_mut() {
        for k in secret {
            if let Some(x) = map.get_mut(k) {
                *x = serde_json::Value::String("***".to_owned());
            }
        }
        if map.is_empty() {
            return html! { span.none { "empty" } };
        }
    }
    html! { pre.json { (serde_json::to_string_pretty(&v).unwrap_or_default()) } }
}

pub async fn page(
    State(api): State<Api>,
    Extension(ctx): Extension<Ctx>,
    Path((id, task)): Path<(String, String)>,
) -> UiResult<Response> {
    let attempt = parse_attempt(&id)?;
    let task_id = task
        .parse::<i64>()
        .map(TaskId)
        .map_err(|_| UiError::bad_request(format!("invalid task id `{task}`")))?;
    let (tasks, runs, params) = crate::ui::read(&api, "ui_task", move |tx| {
        Ok((
            crate::store::api::tasks(tx, attempt)?,
            crate::store::ui::runs(tx, attempt)?,
            crate::store::ui::run_params(tx, task_id)?,
        ))
    })
    .await?;
    let t = tasks.into_iter().find(|t| t.id == task_id).ok_or_else(|| {
        UiError::not_found(format!("task {task_id} is not a task of attempt {attempt}"))
    })?;
    let d = &ctx.display;
    let base = format!("/ui/attempts/{attempt}/tasks/{task_id}");
    let tries: Vec<&crate::store::ui::Run> = runs.iter().filter(|r| r.task == task_id).collect();
    let body = html! {
        h1 { "Task " code { (t.full_name) } }
        p { a href={"/ui/attempts/" (attempt)} { "← attempt " (attempt) } }
        dl.facts {
            dt { "State" } dd { (state::badge(state::task(&t.state))) }
            dt { "Started" } dd { (d.stored_opt(t.started_at.as_deref())) }
            dt { "Finished" } dd { (d.stored_opt(t.finished_at.as_deref())) }
        }
        @if let Some(e) = &t.error {
            h2 { "Error" }
            pre.error { (crate::store::ui::error_message(e)) }
        }
        h2 { "Tries" }
        @if tries.is_empty() { p.empty { "This task has not run." } }
        @for (i, r) in tries.iter().enumerate() {
            section.try aria-labelledby={"try-" (r.fence)} {
                h3 #{"try-" (r.fence)} { "Try " (i + 1) }
                dl.facts {
                    dt { "Started" } dd { (d.stored(&r.started_at)) }
                    dt { "Finished" } dd { (d.stored_opt(r.finished_at.as_deref())) }
                    dt { "Duration" } dd { (time::between(&r.started_at, r.finished_at.as_deref(), d.now).map(time::duration).unwrap_or_default()) }
                    dt { "Outcome" } dd { (r.outcome.as_deref().unwrap_or("running")) @if let Some(m) = &r.message { ": " (crate::ui::pages::first_line(m)) } }
                    dt { "Log" } dd { @if !t.is_group { a href={(base) "/log?try=" (r.fence)} { "log of try " (i + 1) } } }
                }
                @if let Some(p) = params.iter().find(|p| p.fence == r.fence) {
                    @let secret: Vec<String> = p.secret_keys.as_deref().and_then(|k| serde_json::from_str(k).ok()).unwrap_or_default();
                    h4 { "Evaluated params" }
                    (json_block(p.params.as_deref(), &secret))
                }
            }
        }
        h2 { "Store" } (json_block(t.store_params.as_deref(), &[]))
        h2 { "Export" } (json_block(t.export_params.as_deref(), &[]))
    };
    Ok(layout::page(
        &ctx,
        &format!("Task {}", t.full_name),
        layout::Nav::Sessions,
        body,
    ))
}
