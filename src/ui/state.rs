//! States as the UI shows them: a glyph and a word next to every colour (never colour alone),
//! in Digdag's vocabulary as the API uses it.

use maud::{html, Markup};

/// `(glyph, word, css class)` of an attempt state.
pub fn attempt(state: &str, cancel_requested: bool) -> (&'static str, &'static str, &'static str) {
    match state {
        "succeeded" => ("✓", "success", "ok"),
        "failed" => ("✗", "error", "bad"),
        "killed" => ("■", "killed", "off"),
        _ if cancel_requested => ("◼", "killing", "warn"),
        _ => ("▶", "running", "run"),
    }
}

/// `(glyph, word, css class)` of a task state.
pub fn task(state: &str) -> (&'static str, &'static str, &'static str) {
    match state {
        "succeeded" => ("✓", "success", "ok"),
        "failed" => ("✗", "error", "bad"),
        "group_error" => ("✗", "group error", "bad"),
        "running" => ("▶", "running", "run"),
        "retry_waiting" => ("↻", "retry waiting", "warn"),
        "group_retry_waiting" => ("↻", "group retry waiting", "warn"),
        "ready" => ("○", "ready", "idle"),
        "planned" => ("◇", "planned", "idle"),
        "canceled" => ("⊘", "canceled", "off"),
        // spade's `skipped`: never ran because an upstream failed (Digdag leaves it blocked).
        "skipped" => ("–", "blocked", "off"),
        _ => ("·", "blocked", "idle"),
    }
}

/// A badge: glyph, then the word.
pub fn badge((glyph, word, class): (&str, &str, &str)) -> Markup {
    html! {
        span class={"badge st-" (class)} {
            span.glyph aria-hidden="true" { (glyph) } " " (word)
        }
    }
}

/// A compact cell for strips and grids: the glyph shown, the word for screen readers and as
/// the tooltip.
pub fn cell((glyph, word, class): (&str, &str, &str), title: &str) -> Markup {
    html! {
        span class={"cell st-" (class)} title={(word) ": " (title)} {
            span aria-hidden="true" { (glyph) }
            span.sr-only { (word) }
        }
    }
}
