//! The UI's guard, one middleware over every `/ui` route: the API's auth rules (loopback
//! needs nothing; with a token configured, the token as a bearer header or the session cookie
//! the login form sets, `HttpOnly; SameSite=Strict`), cross-origin POSTs refused (`Origin`
//! and `Sec-Fetch-Site`), a CSRF token per browser (a cookie, repeated in every form), the
//! security headers (a strict Content-Security-Policy: no inline script or style), and the
//! request's [`Ctx`] (settings, display zone, CSRF token) for the pages.

use super::settings::{self, Settings};
use super::time::Display;
use super::{layout, UiError, UiResult};
use crate::api::Api;
use axum::extract::{Form, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;

pub const SESSION_COOKIE: &str = "spade_session";
pub const CSRF_COOKIE: &str = "spade_csrf";

/// The Content-Security-Policy of every UI response: only this origin's files, no inline
/// script or style, no framing, forms posting here only.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What a page knows about the request.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub settings: Settings,
    pub display: Display,
    pub csrf: String,
    /// Who acts, for the audit trail: `loopback` (no token is configured) or `token`, and the
    /// peer's address (`token from 127.0.0.1:50312`), see [`actor`].
    pub actor: String,
    /// A token is configured: the layout shows a logout button.
    pub token_required: bool,
}

/// A CSRF token sent back in a form.
pub struct Csrf(pub String);

impl Ctx {
    pub fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.csrf); }
    }

    /// Refuses a form whose CSRF token is not this browser's (403).
    pub fn check(&self, given: &Csrf) -> UiResult<()> {
        if !given.0.is_empty() && crate::api::tokens_match(&given.0, &self.csrf) {
            Ok(())
        } else {
            Err(UiError::new(
                StatusCode::FORBIDDEN,
                "this form's CSRF token is missing or stale: reload the page and submit it again",
            ))
        }
    }
}

/// The cookie named `name` of the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| cookie::Cookie::split_parse(v.to_owned()))
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// The session cookie's value for `token`: a hash, so the cookie never holds the token.
fn session_value(token: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("spade-ui-session\0{token}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn authenticated(api: &Api, headers: &HeaderMap) -> Option<&'static str> {
    let Some(token) = api.token() else {
        return Some("loopback");
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer.is_some_and(|b| crate::api::tokens_match(b, token.expose())) {
        return Some("token");
    }
    let session = cookie(headers, SESSION_COOKIE)?;
    crate::api::tokens_match(&session, &session_value(token.expose())).then_some("token")
}

/// Whether a POST comes from a page of this origin. Browsers send `Sec-Fetch-Site` and
/// `Origin` on every cross-origin POST; a client that sends neither (curl) is not a browser
/// riding on someone's cookies, and still needs the CSRF token.
pub fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site != "same-origin" && site != "none" {
            return false;
        }
    }
    match headers.get(header::ORIGIN).map(HeaderValue::to_str) {
        None => true,
        Some(Err(_)) => false,
        Some(Ok(origin)) => {
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            origin == format!("http://{host}") || origin == format!("https://{host}")
        }
    }
}

/// The audit's "by": how the request was let in and the peer's address as the socket saw
/// it (behind a reverse proxy that is the proxy's: forwarding headers are not trusted).
pub fn actor(how: &str, peer: Option<std::net::SocketAddr>) -> String {
    match peer {
        Some(p) => format!("{how} from {p}"),
        None => format!("{how} from an unknown address"),
    }
}

fn new_csrf() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn strict_cookie(name: &'static str, value: String) -> cookie::Cookie<'static> {
    cookie::Cookie::build((name, value))
        .path("/ui")
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .build()
}

pub async fn guard(State(api): State<Api>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let open = path == "/ui/login" || path.starts_with("/ui/assets/");
    let headers = req.headers().clone();
    let who = authenticated(&api, &headers);
    let mut response = if who.is_none() && !open {
        if req.method() == Method::GET {
            let next = url::form_urlencoded::byte_serialize(
                req.uri()
                    .path_and_query()
                    .map_or("/ui", |p| p.as_str())
                    .as_bytes(),
            )
            .collect::<String>();
            Redirect::to(&format!("/ui/login?next={next}")).into_response()
        } else {
            UiError::new(
                StatusCode::UNAUTHORIZED,
                "log in first: this daemon requires its token",
            )
            .into_response()
        }
    } else if req.method() == Method::POST && !same_origin(&headers) {
        UiError::new(
            StatusCode::FORBIDDEN,
            "cross-origin form posts are refused: use the UI from its own address",
        )
        .into_response()
    } else {
        let existing = cookie(&headers, CSRF_COOKIE).filter(|c| c.len() == 32);
        let csrf = existing.clone().unwrap_or_else(new_csrf);
        let settings = cookie(&headers, settings::COOKIE)
            .map(|v| Settings::parse(&v))
            .unwrap_or_default();
        // The script percent-encodes the zone name (`Asia%2FTokyo`).
        let browser = cookie(&headers, settings::BROWSER_ZONE_COOKIE).map(|v| {
            url::form_urlencoded::parse(format!("z={v}").as_bytes())
                .map(|(_, z)| z.into_owned())
                .next()
                .unwrap_or_default()
        });
        let (tz, zone_name) = settings.resolve_zone(browser.as_deref());
        let peer = req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0);
        let ctx = Ctx {
            display: Display {
                tz,
                zone_name,
                h24: settings.h24,
                now: api.handle.clock.now(),
            },
            settings,
            csrf: csrf.clone(),
            actor: actor(who.unwrap_or("anonymous"), peer),
            token_required: api.token().is_some(),
        };
        let theme = ctx.settings.theme;
        req.extensions_mut().insert(ctx);
        // The theme is also the error page's, which is drawn from a bare `UiError`.
        let mut response = settings::THEME.scope(theme, next.run(req)).await;
        if existing.is_none() {
            if let Ok(v) = HeaderValue::from_str(&strict_cookie(CSRF_COOKIE, csrf).to_string()) {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        response
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// Only paths of the UI itself: never another origin (`//evil`, `https://...`).
fn safe_next(next: Option<&str>) -> &str {
    next.filter(|n| n.starts_with("/ui") && !n.starts_with("//"))
        .unwrap_or("/ui")
}

pub async fn login_page(
    State(api): State<Api>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<NextQuery>,
) -> Response {
    let body = html! {
        h1 { "Log in" }
        @if api.token().is_none() {
            p { "This daemon needs no token (it listens on loopback only)." }
            p { a href="/ui" { "Go to the overview" } }
        } @else {
            form method="post" action="/ui/login" class="login" {
                (ctx.csrf_field())
                input type="hidden" name="next" value=(safe_next(q.next.as_deref()));
                label for="token" { "API token" }
                input #token type="password" name="token" autocomplete="current-password" required;
                button type="submit" { "Log in" }
            }
        }
    };
    layout::page(&ctx, "Log in", layout::Nav::None, body)
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    token: String,
    next: Option<String>,
}

pub async fn login(
    State(api): State<Api>,
    Extension(ctx): Extension<Ctx>,
    Form(f): Form<LoginForm>,
) -> UiResult<Response> {
    ctx.check(&Csrf(f.csrf))?;
    let Some(token) = api.token() else {
        return Ok(Redirect::to("/ui").into_response());
    };
    if !crate::api::tokens_match(f.token.trim(), token.expose()) {
        tracing::warn!("a UI login with a wrong token was refused");
        return Err(UiError::new(StatusCode::UNAUTHORIZED, "wrong token"));
    }
    let cookie = strict_cookie(SESSION_COOKIE, session_value(token.expose()));
    Ok((
        [(header::SET_COOKIE, cookie.to_string())],
        Redirect::to(safe_next(f.next.as_deref())),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(Extension(ctx): Extension<Ctx>, Form(f): Form<CsrfOnly>) -> UiResult<Response> {
    ctx.check(&Csrf(f.csrf))?;
    let mut gone = strict_cookie(SESSION_COOKIE, String::new());
    gone.make_removal();
    Ok((
        [(header::SET_COOKIE, gone.to_string())],
        Redirect::to("/ui/login"),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_same_origin_posts_pass() {
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8080")])));
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("sec-fetch-site", "cross-site"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "null"),
        ])));
    }

    #[test]
    fn next_never_leaves_the_ui() {
        assert_eq!(safe_next(Some("/ui/sessions?x=1")), "/ui/sessions?x=1");
        assert_eq!(safe_next(Some("//evil.example/ui")), "/ui");
        assert_eq!(safe_next(Some("https://evil.example")), "/ui");
        assert_eq!(safe_next(None), "/ui");
    }

    #[test]
    fn the_actor_names_the_way_in_and_the_peer() {
        let peer: std::net::SocketAddr = "127.0.0.1:50312".parse().unwrap();
        assert_eq!(actor("token", Some(peer)), "token from 127.0.0.1:50312");
        let v6: std::net::SocketAddr = "[::1]:8080".parse().unwrap();
        assert_eq!(actor("loopback", Some(v6)), "loopback from [::1]:8080");
        assert_eq!(actor("token", None), "token from an unknown address");
    }

    #[test]
    fn the_session_cookie_is_not_the_token() {
        assert_ne!(session_value("t0ken"), "t0ken");
        assert!(!session_value("t0ken").contains("t0ken"));
    }
}
