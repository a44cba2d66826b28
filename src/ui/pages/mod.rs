//! One module per page; the links and small pieces several pages share live here.

pub mod actions;
pub mod attempt;
pub mod log;
pub mod overview;
pub mod sessions;
pub mod task;
pub mod workflow;
pub mod workflows;

use maud::{html, Markup};

/// The URL of a workflow's page (names may hold `/`: `sub/wf`).
pub fn workflow_href(name: &str) -> String {
    let encoded: Vec<String> = name
        .split('/')
        .map(|part| url::form_urlencoded::byte_serialize(part.as_bytes()).collect())
        .collect();
    format!("/ui/workflows/{}", encoded.join("/"))
}

pub fn workflow_link(name: &str) -> Markup {
    html! { a href=(workflow_href(name)) { (name) } }
}

pub fn attempt_link(id: crate::ids::AttemptId) -> Markup {
    html! { a href={"/ui/attempts/" (id)} { "#" (id) } }
}

/// The first line of an error message (the rest is on the task's page).
pub fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// A table, or a sentence when there is nothing to list.
pub fn table_or(empty: &str, rows: bool, table: Markup) -> Markup {
    html! {
        @if rows { div.scroll { (table) } } @else { p.empty { (empty) } }
    }
}
