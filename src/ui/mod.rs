//! The web UI of `spade serve`: server-rendered HTML (maud) on the API's router, under
//! `/ui`. Every page is a deep-linkable URL that works without JavaScript; the one small
//! script (`assets/app.js`) only adds live updates, the browser's zone and confirmations.
//! See `docs/ui.md`.
//!
//! One job per module: `guard` (auth, CSRF, cross-origin refusal, security headers, the
//! request context), `layout` (the page frame), `assets` (embedded, content-hashed CSS and
//! JS), `time` (`<time>` with offsets, relative text), `state` (glyph and word per state),
//! `settings` (the display cookie), `words` (a schedule in words), and one module per page under `pages`.

pub mod assets;
pub mod guard;
pub mod layout;
pub mod pages;
pub mod settings;
pub mod state;
pub mod time;
pub mod words;

use crate::api::{Api, ApiError};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::html;

/// The UI's routes, for `api::router` to merge; the guard wraps every one of them.
pub fn router(api: Api) -> Router<Api> {
    use pages::{actions, attempt, log, overview, sessions, task, workflow, workflows};
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui") }))
        .route("/ui", get(overview::page))
        .route("/ui/login", get(guard::login_page).post(guard::login))
        .route("/ui/logout", post(guard::logout))
        .route("/ui/assets/{file}", get(assets::serve))
        .route("/ui/settings", get(settings::page).post(settings::save))
        .route("/ui/workflows", get(workflows::page))
        .route("/ui/workflows/{*name}", get(workflow::page))
        .route("/ui/sessions", get(sessions::page))
        .route("/ui/attempts/{id}", get(attempt::page))
        .route("/ui/attempts/{id}/live", get(attempt::live))
        .route("/ui/attempts/{id}/tasks/{task}", get(task::page))
        .route("/ui/attempts/{id}/tasks/{task}/log", get(log::page))
        .route(
            "/ui/attempts/{id}/tasks/{task}/log/follow",
            get(log::follow),
        )
        .route(
            "/ui/attempts/{id}/tasks/{task}/log/download",
            get(log::download),
        )
        .route("/ui/confirm/{action}", get(actions::confirm))
        .route("/ui/actions/{action}", post(actions::act))
        .layer(axum::middleware::from_fn_with_state(api, guard::guard))
}

/// A failed UI request, shown as a small HTML page.
#[derive(Debug)]
pub struct UiError {
    pub status: StatusCode,
    pub message: String,
}

impl UiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> UiError {
        UiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> UiError {
        UiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> UiError {
        UiError::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> UiError {
        UiError::new(e.status, e.message)
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let theme = settings::THEME
            .try_with(|t| *t)
            .unwrap_or(settings::Theme::Auto);
        let body = html! {
            (maud::DOCTYPE)
            html lang="en" data-theme=(theme.name()) {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { "Error " (self.status.as_u16()) " · spade" }
                    link rel="stylesheet" href=(assets::css_url());
                }
                body {
                    main #main {
                        h1 { "Error " (self.status.as_u16()) }
                        p.error role="alert" { (self.message) }
                        p { a href="/ui" { "Back to the overview" } }
                    }
                }
            }
        };
        let mut r = layout::html_response(body);
        *r.status_mut() = self.status;
        r
    }
}

pub type UiResult<T> = Result<T, UiError>;

/// Runs a store read on the blocking pool.
pub async fn read<T: Send + 'static>(
    api: &Api,
    op: &'static str,
    f: impl FnOnce(&crate::store::Tx<'_>) -> Result<T, crate::store::Error> + Send + 'static,
) -> UiResult<T> {
    let engine = api.handle.engine.clone();
    crate::api::blocking(move || engine.store().read_snapshot(op, f).map_err(Into::into))
        .await
        .map_err(UiError::from)
}
