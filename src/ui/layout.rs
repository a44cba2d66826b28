//! The page frame every UI page shares: the document head (hashed stylesheet and script, no
//! inline code), the navigation, a skip link, the polite live region, and the theme.

use super::assets;
use super::guard::Ctx;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

/// Which navigation entry is the current page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Workflows,
    Sessions,
    Settings,
    None,
}

pub fn document(ctx: &Ctx, title: &str, nav: Nav, body: Markup) -> Markup {
    let item = |target: Nav, href: &str, label: &str| {
        html! {
            li {
                @if target == nav {
                    a href=(href) aria-current="page" { (label) }
                } @else {
                    a href=(href) { (label) }
                }
            }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" data-theme=(ctx.settings.theme.name()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · spade" }
                link rel="stylesheet" href=(assets::css_url());
                script src=(assets::js_url()) defer {}
            }
            body data-zone-setting=(if ctx.settings.zone == super::settings::Zone::Browser { "browser" } else { "" }) {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/ui" { "spade" }
                    nav aria-label="Main" {
                        ul {
                            (item(Nav::Overview, "/ui", "Overview"))
                            (item(Nav::Workflows, "/ui/workflows", "Workflows"))
                            (item(Nav::Sessions, "/ui/sessions", "Sessions"))
                            (item(Nav::Settings, "/ui/settings", "Settings"))
                        }
                    }
                    span.zone { "Times in " (ctx.display.zone_name) }
                    @if ctx.token_required {
                        form method="post" action="/ui/logout" class="logout" {
                            (ctx.csrf_field())
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main #main tabindex="-1" { (body) }
                div #live .sr-only aria-live="polite" role="status" {}
            }
        }
    }
}

/// A full page as an HTML response.
pub fn page(ctx: &Ctx, title: &str, nav: Nav, body: Markup) -> Response {
    html_response(document(ctx, title, nav, body))
}

pub fn html_response(m: Markup) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        m.into_string(),
    )
        .into_response()
}
