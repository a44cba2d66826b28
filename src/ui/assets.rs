//! The UI's stylesheet and script, embedded in the binary and served under content-hashed
//! URLs (`/ui/assets/app.<hash>.css`) with a year-long immutable cache: a new build changes
//! the hash, so a browser never runs a stale script against a new page.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::OnceLock;

const CSS: &str = include_str!("assets/app.css");
const JS: &str = include_str!("assets/app.js");

struct Hashed {
    css: String,
    js: String,
}

fn short_hash(text: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(text.as_bytes());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

fn names() -> &'static Hashed {
    static NAMES: OnceLock<Hashed> = OnceLock::new();
    NAMES.get_or_init(|| Hashed {
        css: format!("app.{}.css", short_hash(CSS)),
        js: format!("app.{}.js", short_hash(JS)),
    })
}

pub fn css_url() -> String {
    format!("/ui/assets/{}", names().css)
}

pub fn js_url() -> String {
    format!("/ui/assets/{}", names().js)
}

/// `GET /ui/assets/{file}`: only the current hashed names exist.
pub async fn serve(Path(file): Path<String>) -> Response {
    let n = names();
    let (body, kind) = if file == n.css {
        (CSS, "text/css; charset=utf-8")
    } else if file == n.js {
        (JS, "text/javascript; charset=utf-8")
    } else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_the_content_hash() {
        assert_eq!(css_url(), format!("/ui/assets/app.{}.css", short_hash(CSS)));
        assert_ne!(short_hash("a"), short_hash("b"));
        assert_eq!(short_hash("a").len(), 12);
    }
}
