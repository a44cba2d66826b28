//! The HTTP API of `spade serve` (axum on the daemon's tokio runtime): Digdag's REST paths and
//! JSON shapes where Digdag has the endpoint (`docs/api.md`), plus `/health`, `/metrics` and
//! the event stream. Reads go to the store through `store::api` on the blocking pool; starts,
//! kills and schedule changes go through the engine and the daemon `Handle`, like the
//! scheduler's own.
//!
//! Off loopback a bearer token is required (the configuration refuses to start without one);
//! it is compared in constant time and never logged or returned.

pub mod act;
pub mod events;
pub mod gc;
pub mod metrics;
pub mod read;
pub mod shapes;

use crate::config::Secret;
use crate::daemon::Handle;
use crate::executor::StopLevel;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Request bodies larger than this are refused with 413 (a start's params are small).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Page sizes of the paged lists: Digdag's default and a bound.
pub const DEFAULT_PAGE: usize = 100;
pub const MAX_PAGE: usize = 1000;

/// What every handler shares.
#[derive(Clone)]
pub struct Api {
    pub handle: Handle,
    token: Option<Arc<Secret>>,
    stop: watch::Receiver<StopLevel>,
    /// Workflow ids (revision ids) of the project as last loaded.
    workflows: Arc<Mutex<Option<read::WorkflowIds>>>,
    pub metrics: Arc<metrics::Metrics>,
}

impl Api {
    pub fn new(
        handle: Handle,
        token: Option<Secret>,
        stop: watch::Receiver<StopLevel>,
        metrics: Arc<metrics::Metrics>,
    ) -> Api {
        Api {
            handle,
            token: token.map(Arc::new),
            stop,
            workflows: Arc::new(Mutex::new(None)),
            metrics,
        }
    }

    /// The configured token, for the web UI's login (`ui::guard`).
    pub(crate) fn token(&self) -> Option<&Secret> {
        self.token.as_deref()
    }

    /// Whether the daemon is stopping (`/health` answers 503 then).
    pub(crate) fn stopping(&self) -> bool {
        *self.stop.borrow() != StopLevel::Run
    }
}

/// Every route the server has, as `(method, path)` in axum's syntax: the OpenAPI test compares
/// `docs/openapi.yaml` with this list, and `router` is built from the same names.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("GET", "/api/version"),
    ("GET", "/api/projects"),
    ("GET", "/api/projects/{id}"),
    ("GET", "/api/projects/{id}/workflows"),
    ("GET", "/api/workflows"),
    ("GET", "/api/workflows/{id}"),
    ("GET", "/api/schedules"),
    ("GET", "/api/schedules/{id}"),
    ("POST", "/api/schedules/{id}/skip"),
    ("POST", "/api/schedules/{id}/backfill"),
    ("POST", "/api/schedules/{id}/enable"),
    ("POST", "/api/schedules/{id}/disable"),
    ("GET", "/api/sessions"),
    ("GET", "/api/sessions/{id}"),
    ("GET", "/api/sessions/{id}/attempts"),
    ("GET", "/api/attempts"),
    ("PUT", "/api/attempts"),
    ("GET", "/api/attempts/{id}"),
    ("POST", "/api/attempts/{id}/kill"),
    ("GET", "/api/attempts/{id}/tasks"),
    ("GET", "/api/attempts/{id}/events"),
    ("GET", "/api/logs/{id}/files"),
    ("GET", "/api/logs/{id}/files/{file}"),
    ("POST", "/api/gc"),
];

/// The router over `api`.
pub fn router(api: Api) -> Router {
    let open = Router::new().route("/health", get(read::health));
    let guarded = Router::new()
        .route("/metrics", get(metrics::handler))
        .route("/api/version", get(read::version))
        .route("/api/projects", get(read::projects))
        .route("/api/projects/{id}", get(read::project))
        .route("/api/projects/{id}/workflows", get(read::project_workflows))
        .route("/api/workflows", get(read::workflows))
        .route("/api/workflows/{id}", get(read::workflow))
        .route("/api/schedules", get(read::schedules))
        .route("/api/schedules/{id}", get(read::schedule))
        .route("/api/schedules/{id}/skip", post(act::skip))
        .route("/api/schedules/{id}/backfill", post(act::backfill))
        .route("/api/schedules/{id}/enable", post(act::enable))
        .route("/api/schedules/{id}/disable", post(act::disable))
        .route("/api/sessions", get(read::sessions))
        .route("/api/sessions/{id}", get(read::session))
        .route("/api/sessions/{id}/attempts", get(read::session_attempts))
        .route("/api/attempts", get(read::attempts).put(act::start))
        .route("/api/attempts/{id}", get(read::attempt))
        .route("/api/attempts/{id}/kill", post(act::kill))
        .route("/api/attempts/{id}/tasks", get(read::tasks))
        .route("/api/attempts/{id}/events", get(events::stream))
        .route("/api/logs/{id}/files", get(read::log_files))
        .route("/api/logs/{id}/files/{file}", get(read::log_file))
        .route("/api/gc", post(gc::collect))
        .layer(axum::middleware::from_fn_with_state(api.clone(), authorize));
    open.merge(guarded)
        // The web UI (`/ui/...`) checks the token itself: a login form sets a cookie.
        .merge(crate::ui::router(api.clone()))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(api.clone(), count))
        .with_state(api)
}

/// Serves the API on `listener` until the daemon stops.
pub async fn serve(listener: tokio::net::TcpListener, api: Api) {
    let mut stop = api.stop.clone();
    let app = router(api);
    let shutdown = async move {
        while *stop.borrow() == StopLevel::Run {
            if stop.changed().await.is_err() {
                break;
            }
        }
    };
    // The peer's address reaches the handlers (the UI's audit names who acted from where).
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "the HTTP API stopped");
    }
}

/// A JSON error: `{"message": ..., "status": N}`, with more fields for a conflict.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Merged into the body (a 409 carries the conflicting attempt).
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            extra: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(what: &str, id: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, format!("{what} {id} does not exist"))
    }

    /// 409 with the attempt in the way under `attempt` (Digdag's body is the attempt itself,
    /// whose `status` field would clash with the error's).
    pub fn conflict(message: impl Into<String>, attempt: serde_json::Value) -> ApiError {
        let mut extra = serde_json::Map::new();
        extra.insert("attempt".into(), attempt);
        ApiError {
            status: StatusCode::CONFLICT,
            message: message.into(),
            extra: Some(extra),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = self.extra.unwrap_or_default();
        body.insert("message".into(), self.message.into());
        body.insert("status".into(), self.status.as_u16().into());
        (self.status, Json(serde_json::Value::Object(body))).into_response()
    }
}

impl From<crate::engine::Error> for ApiError {
    fn from(e: crate::engine::Error) -> ApiError {
        // A request the engine refuses (what it asks cannot be done to that attempt) is the
        // client's to fix: 400 with the engine's message.
        if let crate::engine::Error::Request(message) = &e {
            return ApiError::bad_request(message.clone());
        }
        tracing::error!(error = %crate::cli::error_chain(&e), "an API request failed in the store");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the store failed: {}", crate::cli::error_chain(&e)),
        )
    }
}

impl From<crate::store::Error> for ApiError {
    fn from(e: crate::store::Error) -> ApiError {
        ApiError::from(crate::engine::Error::from(e))
    }
}

impl From<crate::daemon::Error> for ApiError {
    fn from(e: crate::daemon::Error) -> ApiError {
        match e {
            crate::daemon::Error::Engine(e) => ApiError::from(e),
            other => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                crate::cli::error_chain(&other),
            ),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Runs a store call on the blocking pool.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::engine::Error> + Send + 'static,
) -> ApiResult<T> {
    crate::daemon::blocking(f).await.map_err(ApiError::from)
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no such endpoint: {} {}", req.method(), req.uri().path()),
    )
}

/// Refuses requests without the configured bearer token (401), comparing in constant time.
async fn authorize(State(api): State<Api>, req: Request, next: Next) -> Response {
    let Some(token) = &api.token else {
        return next.run(req).await;
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if tokens_match(given, token.expose()) {
        next.run(req).await
    } else {
        let mut response = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this daemon requires a bearer token: send `Authorization: Bearer <token>` (the client reads SPADE_API_TOKEN or --token-file)",
        )
        .into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer"),
        );
        response
    }
}

/// Constant time in the token's content (the length is not secret enough to hide).
pub(crate) fn tokens_match(given: &str, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// Counts requests and their latency by route for `/metrics`.
async fn count(State(api): State<Api>, req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let response = next.run(req).await;
    api.metrics.request(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_by_content_and_length() {
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abd", "abc"));
        assert!(!tokens_match("ab", "abc"));
        assert!(!tokens_match("", "abc"));
    }
}
