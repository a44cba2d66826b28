//! What an `http>` or `http_call>` task sends: its options, read from the evaluated params,
//! and the request built from them, with `${secret:...}` resolved only at that last step.

use super::{DEFAULT_RETRIES, DEFAULT_TIMEOUT, MAX_REDIRECTS};
use crate::engine::TaskRun;
use crate::expr::{JsonMap, SecretProvider};
use crate::operators::json_text;
use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use serde_json::Value as Json;
use std::time::Duration;

/// The options of one `http>` or `http_call>` task, read from its evaluated params; every
/// `${secret:...}` is still unresolved.
#[derive(Debug, PartialEq)]
pub(crate) struct Spec {
    /// `http` or `http_call`, for messages.
    op: &'static str,
    uri: String,
    method: reqwest::Method,
    query: Option<Query>,
    headers: Vec<(String, String)>,
    content: Option<Content>,
    pub(super) timeout: Duration,
    pub(super) retries: Retries,
    pub(crate) store_content: bool,
    follow_redirects: bool,
    insecure: bool,
    /// `http_call>`: the media type to parse the response as, whatever the server says.
    pub(crate) content_type_override: Option<String>,
    /// Which options came from params holding `${secret:...}` (as evaluation marked them):
    /// only those are resolved, so a param whose *value* merely looks like a reference is
    /// sent as it is.
    secret: SecretParts,
}

#[derive(Debug, PartialEq, Default)]
struct SecretParts {
    query: bool,
    headers: bool,
    content: bool,
}

#[derive(Debug, PartialEq)]
enum Query {
    /// `query: a=1&b=2`, decoded and re-encoded pair by pair.
    Text(String),
    Pairs(Vec<(String, String)>),
}

#[derive(Debug, PartialEq)]
struct Content {
    body: Body,
    content_type: String,
}

#[derive(Debug, PartialEq)]
enum Body {
    Text(String),
    Json(Json),
    Form(Vec<(String, String)>),
}

/// How many retries each kind of failure gets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Retries {
    /// 5xx, network errors, timeouts: only with `retry`.
    pub(super) ephemeral: u32,
    /// 408 and 429: always retried, as Digdag does even with `retry: false`.
    pub(super) throttled: u32,
}

impl Spec {
    pub(crate) fn parse(op: &'static str, run: &TaskRun) -> Result<Spec, String> {
        let options = Options { op, run };
        let uri = json_text(&run.command);
        if uri.trim().is_empty() {
            return Err(format!(
                "{op}> needs the URI to request, e.g. `{op}>: https://api.example.com/items`"
            ));
        }
        let method = match options.get("method") {
            None => reqwest::Method::GET,
            Some((v, _)) => {
                let text = options.string(v, "method")?;
                reqwest::Method::from_bytes(text.to_ascii_uppercase().as_bytes()).map_err(|_| {
                    format!(
                        "{op}> `method` must be an HTTP method such as GET or POST, found `{text}`"
                    )
                })?
            }
        };
        let retries = match options.get("retry") {
            None => default_retries(&method),
            Some((v, _)) => retries(op, v)?,
        };
        let timeout = match options.get("timeout") {
            None => DEFAULT_TIMEOUT,
            Some((v, _)) => timeout(op, v)?,
        };
        let mut secret = SecretParts::default();
        let query = match options.get("query") {
            None => None,
            Some((v, is_secret)) => {
                secret.query = is_secret;
                Some(query(op, v)?)
            }
        };
        let headers = match options.get("headers") {
            None => Vec::new(),
            Some((v, is_secret)) => {
                secret.headers = is_secret;
                headers(op, v)?
            }
        };
        let content = match options.get("content") {
            None => None,
            Some((v, is_secret)) => {
                secret.content = is_secret;
                let format = match options.get("content_format") {
                    None => None,
                    Some((f, _)) => Some(options.string(f, "content_format")?.to_ascii_lowercase()),
                };
                let content_type = match options.get("content_type") {
                    None => None,
                    Some((t, _)) => Some(options.string(t, "content_type")?),
                };
                Some(content(op, v, format.as_deref(), content_type)?)
            }
        };
        let content_type_override = match options.get("content_type_override") {
            None => None,
            Some((v, _)) => Some(options.string(v, "content_type_override")?),
        };
        Ok(Spec {
            op,
            uri,
            method,
            query,
            headers,
            content,
            timeout,
            retries,
            store_content: options.flag("store_content", false)?,
            follow_redirects: options.flag("follow_redirects", true)?,
            insecure: options.flag("insecure", false)?,
            content_type_override,
            secret,
        })
    }

    /// Resolves the secrets and builds the request, with the URI as messages may show it.
    pub(super) fn prepare(
        &self,
        client: &reqwest::Client,
        secrets: &dyn SecretProvider,
    ) -> Result<(reqwest::Request, String), String> {
        let op = self.op;
        let resolve = |text: &str, allowed: bool| -> Result<String, String> {
            if allowed && holds_secret(text) {
                crate::expr::resolve_secrets(text, secrets).map_err(|e| format!("{op}> {e}"))
            } else {
                Ok(text.to_owned())
            }
        };
        // Digdag's `http.uri` secret replaces the URI of every `http>` task that can see it.
        let (uri, mut masked) = match secrets.secret("http.uri") {
            Some(uri) => (uri, true),
            None => (resolve(&self.uri, true)?, holds_secret(&self.uri)),
        };
        let mut url = url::Url::parse(&uri).map_err(|e| {
            let shown = if masked {
                "(from a secret)"
            } else {
                uri.as_str()
            };
            format!("{op}> URI `{shown}` is not valid: {e}")
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "{op}> requests http:// and https:// URIs only, found `{}:`",
                url.scheme()
            ));
        }
        let pairs: Vec<(String, String)> = match &self.query {
            None => Vec::new(),
            Some(Query::Text(text)) => {
                masked |= self.secret.query && holds_secret(text);
                let text = resolve(text, self.secret.query)?;
                url::form_urlencoded::parse(text.as_bytes())
                    .into_owned()
                    .collect()
            }
            Some(Query::Pairs(pairs)) => {
                let mut out = Vec::with_capacity(pairs.len());
                for (name, value) in pairs {
                    masked |= self.secret.query && (holds_secret(name) || holds_secret(value));
                    out.push((
                        resolve(name, self.secret.query)?,
                        resolve(value, self.secret.query)?,
                    ));
                }
                out
            }
        };
        if !pairs.is_empty() {
            url.query_pairs_mut().extend_pairs(pairs);
        }
        let shown = shown_uri(&url, masked);
        // reqwest sends user info in the URI as basic auth: the user's own credentials.
        let mut has_authorization = !url.username().is_empty() || url.password().is_some();
        let mut builder = client.request(self.method.clone(), url);
        for (name, value) in &self.headers {
            let header_name =
                HeaderName::from_bytes(resolve(name, self.secret.headers)?.as_bytes())
                    .map_err(|_| format!("{op}> header name `{name}` is not valid"))?;
            let is_secret = self.secret.headers && (holds_secret(name) || holds_secret(value));
            let mut header_value = HeaderValue::from_str(&resolve(value, self.secret.headers)?)
                .map_err(|_| {
                    format!("{op}> the value of header `{name}` is not valid (control characters?)")
                })?;
            // Sensitive values are left out of `Debug` output and of HTTP/2 header compression.
            header_value.set_sensitive(is_secret || header_name == AUTHORIZATION);
            has_authorization |= header_name == AUTHORIZATION;
            builder = builder.header(header_name, header_value);
        }
        // The `http.*` secrets, as Digdag reads them; an explicit `Authorization` header wins.
        if !has_authorization {
            if let Some(authorization) = secrets.secret("http.authorization") {
                let mut value = HeaderValue::from_str(&authorization).map_err(|_| {
                    format!("{op}> the secret `http.authorization` is not a valid header value")
                })?;
                value.set_sensitive(true);
                builder = builder.header(AUTHORIZATION, value);
            } else if let Some(user) = secrets.secret("http.user") {
                builder = builder.basic_auth(
                    user,
                    Some(secrets.secret("http.password").unwrap_or_default()),
                );
            }
        }
        if let Some(content) = &self.content {
            let allowed = self.secret.content;
            let body = match &content.body {
                Body::Text(text) => resolve(text, allowed)?,
                Body::Json(json) => resolve_json(json, allowed, &resolve)?.to_string(),
                Body::Form(fields) => {
                    let mut form = url::form_urlencoded::Serializer::new(String::new());
                    for (name, value) in fields {
                        form.append_pair(&resolve(name, allowed)?, &resolve(value, allowed)?);
                    }
                    form.finish()
                }
            };
            let explicit = self
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
            if !explicit {
                builder = builder.header(CONTENT_TYPE, content.content_type.as_str());
            }
            builder = builder.body(body);
        }
        let request = builder.build().map_err(|e| {
            format!(
                "{op}> cannot build the request for {shown}: {}",
                crate::error::chain(&e.without_url())
            )
        })?;
        Ok((request, shown))
    }

    pub(super) fn client(&self) -> Result<reqwest::Client, String> {
        let redirects = if self.follow_redirects {
            reqwest::redirect::Policy::limited(MAX_REDIRECTS)
        } else {
            reqwest::redirect::Policy::none()
        };
        reqwest::Client::builder()
            .user_agent(concat!("spade/", env!("CARGO_PKG_VERSION")))
            .redirect(redirects)
            .danger_accept_invalid_certs(self.insecure)
            // One client per run: a pooled connection must not outlive the run that made it.
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| {
                format!(
                    "{}> cannot set up the HTTP client: {}",
                    self.op,
                    crate::error::chain(&e)
                )
            })
    }
}

/// Looks options up in the task's params, then under `http:` (Digdag merges `http.*` in as
/// defaults, so `_export: {http: {timeout: 60}}` sets it for every task below).
struct Options<'a> {
    op: &'static str,
    run: &'a TaskRun,
}

impl<'a> Options<'a> {
    /// The option's value and whether its param holds a `${secret:...}`.
    fn get(&self, key: &str) -> Option<(&'a Json, bool)> {
        let params = &self.run.params;
        let marked = |k: &str| self.run.secret_keys.iter().any(|s| s == k);
        if let Some(v) = params.get(key).filter(|v| !v.is_null()) {
            return Some((v, marked(key)));
        }
        let v = params.get("http")?.get(key).filter(|v| !v.is_null())?;
        Some((v, marked("http")))
    }

    fn string(&self, v: &Json, key: &str) -> Result<String, String> {
        match v {
            Json::String(s) => Ok(s.clone()),
            Json::Number(_) | Json::Bool(_) => Ok(v.to_string()),
            other => Err(format!(
                "{}> `{key}` must be a string, found {}",
                self.op,
                describe(other)
            )),
        }
    }

    fn flag(&self, key: &str, default: bool) -> Result<bool, String> {
        let Some((v, _)) = self.get(key) else {
            return Ok(default);
        };
        boolean(v).ok_or_else(|| {
            format!(
                "{}> `{key}` must be true or false, found {}",
                self.op,
                describe(v)
            )
        })
    }
}

/// `true`/`false`, also as the text `${...}` evaluation produces.
fn boolean(v: &Json) -> Option<bool> {
    match v {
        Json::Bool(b) => Some(*b),
        Json::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Json::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// Digdag retries only methods that are safe to repeat, unless told otherwise.
fn default_retries(method: &reqwest::Method) -> Retries {
    let safe = matches!(method.as_str(), "GET" | "HEAD" | "OPTIONS" | "TRACE");
    Retries {
        ephemeral: if safe { DEFAULT_RETRIES } else { 0 },
        throttled: DEFAULT_RETRIES,
    }
}

/// `retry: true | false | N` (N retries after the first try, a spade extension).
fn retries(op: &str, v: &Json) -> Result<Retries, String> {
    let n = match (boolean(v), v) {
        (Some(true), _) => DEFAULT_RETRIES,
        (Some(false), _) => {
            return Ok(Retries {
                ephemeral: 0,
                throttled: DEFAULT_RETRIES,
            })
        }
        (None, Json::Number(n)) => {
            n.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    format!("{op}> `retry` must be true, false or a number of retries, found {n}")
                })?
        }
        (None, Json::String(s)) => s.trim().parse().map_err(|_| {
            format!("{op}> `retry` must be true, false or a number of retries, found `{s}`")
        })?,
        (None, other) => {
            return Err(format!(
                "{op}> `retry` must be true, false or a number of retries, found {}",
                describe(other)
            ))
        }
    };
    Ok(Retries {
        ephemeral: n,
        throttled: n,
    })
}

/// `timeout: 30` (seconds, as Digdag) or a duration (`2m`, `1m30s`).
fn timeout(op: &str, v: &Json) -> Result<Duration, String> {
    let parsed = match v {
        Json::Number(n) => n.as_u64().map(Duration::from_secs),
        Json::String(s) => crate::dig::duration::parse(s),
        _ => None,
    };
    match parsed {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(format!(
            "{op}> `timeout` must be a positive number of seconds or a duration like `2m`, found {}",
            describe(v)
        )),
    }
}

fn query(op: &str, v: &Json) -> Result<Query, String> {
    match v {
        Json::String(s) => Ok(Query::Text(s.clone())),
        Json::Object(map) => {
            let mut pairs = Vec::with_capacity(map.len());
            for (name, value) in map {
                pairs.push((name.clone(), scalar_text(value).ok_or_else(|| {
                    format!("{op}> the value of query parameter `{name}` must be a string or a number, found {}", describe(value))
                })?));
            }
            Ok(Query::Pairs(pairs))
        }
        other => Err(format!(
            "{op}> `query` must be a string (`a=1&b=2`) or a map of names to values, found {}",
            describe(other)
        )),
    }
}

/// `headers: [{Name: value}, ...]`: a list, so a name may repeat, of single-key maps.
fn headers(op: &str, v: &Json) -> Result<Vec<(String, String)>, String> {
    let shape = || {
        format!("{op}> `headers` must be a list of single-key maps, like `headers: [{{Accept: text/plain}}]`")
    };
    let Json::Array(items) = v else {
        return Err(format!("{}, found {}", shape(), describe(v)));
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let entry = match item {
            Json::Object(map) if map.len() == 1 => map.iter().next(),
            _ => None,
        };
        let Some((name, value)) = entry else {
            return Err(format!(
                "{}, found an item that is {}",
                shape(),
                describe(item)
            ));
        };
        let value = scalar_text(value).ok_or_else(|| {
            format!(
                "{op}> the value of header `{name}` must be a string or a number, found {}",
                describe(value)
            )
        })?;
        out.push((name.clone(), value));
    }
    Ok(out)
}

/// Digdag's table: scalars are sent as text (or JSON with `content_format: json`), maps and
/// lists as JSON, and maps of scalars as a form with `content_format: form`.
fn content(
    op: &str,
    v: &Json,
    format: Option<&str>,
    content_type: Option<String>,
) -> Result<Content, String> {
    let container = v.is_object() || v.is_array();
    let format = format.unwrap_or(if container { "json" } else { "text" });
    let invalid = || {
        format!(
            "{op}> `content_format: {format}` cannot send {}: use {}",
            describe(v),
            if container {
                "`json`, or `form` for a map"
            } else {
                "`text` or `json`"
            }
        )
    };
    let (body, default_type) = match (format, v) {
        ("text", v) if !container => (Body::Text(json_text(v)), "text/plain"),
        ("json", v) => (Body::Json(v.clone()), "application/json"),
        ("form", Json::Object(map)) => {
            let mut fields = Vec::with_capacity(map.len());
            for (name, value) in map {
                fields.push((
                    name.clone(),
                    scalar_text(value).ok_or_else(|| {
                        format!(
                            "{op}> form field `{name}` must be a string or a number, found {}",
                            describe(value)
                        )
                    })?,
                ));
            }
            (Body::Form(fields), "application/x-www-form-urlencoded")
        }
        ("text" | "form", _) => return Err(invalid()),
        (other, _) => {
            return Err(format!(
                "{op}> `content_format` must be `text`, `json` or `form`, found `{other}`"
            ))
        }
    };
    Ok(Content {
        body,
        content_type: content_type.unwrap_or_else(|| default_type.to_owned()),
    })
}

/// A scalar as text (null as empty); `None` for maps and lists.
fn scalar_text(v: &Json) -> Option<String> {
    match v {
        Json::Null => Some(String::new()),
        Json::Object(_) | Json::Array(_) => None,
        other => Some(json_text(other)),
    }
}

fn describe(v: &Json) -> String {
    match v {
        Json::Null => "nothing".into(),
        Json::Bool(b) => format!("`{b}`"),
        Json::Number(n) => format!("the number `{n}`"),
        Json::String(s) => format!("the string `{s}`"),
        Json::Array(_) => "a list".into(),
        Json::Object(_) => "a map".into(),
    }
}

/// The rule `expr` marks secret params by: the text holds a `${secret:` reference.
fn holds_secret(text: &str) -> bool {
    text.contains("${secret:")
}

fn resolve_json(
    v: &Json,
    allowed: bool,
    resolve: &dyn Fn(&str, bool) -> Result<String, String>,
) -> Result<Json, String> {
    Ok(match v {
        Json::String(s) => Json::String(resolve(s, allowed)?),
        Json::Array(items) => Json::Array(
            items
                .iter()
                .map(|i| resolve_json(i, allowed, resolve))
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(map) => {
            let mut out = JsonMap::new();
            for (k, v) in map {
                out.insert(resolve(k, allowed)?, resolve_json(v, allowed, resolve)?);
            }
            Json::Object(out)
        }
        other => other.clone(),
    })
}

/// The URI without user info, or only its scheme when a secret went into it (as Digdag).
fn shown_uri(url: &url::Url, masked: bool) -> String {
    if masked {
        return format!("{}://***", url.scheme());
    }
    let mut shown = url.clone();
    // Only URLs that cannot have credentials refuse these, and then they have none to hide.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operators::testkit::run;
    use serde_json::json;

    fn spec(command: &str, params: &str) -> Result<Spec, String> {
        Spec::parse("http", &run("http", command.into(), params))
    }

    fn spec_with_secrets(command: &str, params: &str, secret_keys: &[&str]) -> Spec {
        let mut r = run("http", command.into(), params);
        r.secret_keys = secret_keys.iter().map(|s| s.to_string()).collect();
        Spec::parse("http", &r).unwrap()
    }

    #[test]
    fn defaults_follow_digdag() {
        let s = spec("http://127.0.0.1/x", "{}").unwrap();
        assert_eq!(s.method, reqwest::Method::GET);
        assert_eq!(s.timeout, Duration::from_secs(30));
        assert_eq!(
            s.retries,
            Retries {
                ephemeral: DEFAULT_RETRIES,
                throttled: DEFAULT_RETRIES
            }
        );
        assert!(!s.store_content && s.follow_redirects && !s.insecure);
        assert_eq!(s.content, None);
        // Methods that are not safe to repeat are not retried on 5xx unless asked.
        let s = spec("http://h/", r#"{"method": "post"}"#).unwrap();
        assert_eq!(s.method, reqwest::Method::POST);
        assert_eq!(s.retries.ephemeral, 0);
        assert_eq!(s.retries.throttled, DEFAULT_RETRIES);
        for method in ["HEAD", "OPTIONS", "TRACE"] {
            let s = spec("http://h/", &format!(r#"{{"method": "{method}"}}"#)).unwrap();
            assert_eq!(s.retries.ephemeral, DEFAULT_RETRIES, "{method}");
        }
    }

    #[test]
    fn options_parse_with_their_types_and_from_http_defaults() {
        let s = spec(
            "http://h/",
            r#"{"method": "PUT", "retry": "3", "timeout": "1m30s", "store_content": "true",
                "follow_redirects": false, "http": {"insecure": true, "timeout": 5}}"#,
        )
        .unwrap();
        assert_eq!(s.method, reqwest::Method::PUT);
        assert_eq!(
            s.retries,
            Retries {
                ephemeral: 3,
                throttled: 3
            }
        );
        assert_eq!(s.timeout, Duration::from_secs(90));
        assert!(s.store_content && !s.follow_redirects && s.insecure);
        let s = spec(
            "http://h/",
            r#"{"timeout": 7, "retry": false, "http": {"last_status": 200}}"#,
        )
        .unwrap();
        assert_eq!(s.timeout, Duration::from_secs(7));
        assert_eq!(
            s.retries,
            Retries {
                ephemeral: 0,
                throttled: DEFAULT_RETRIES
            }
        );
        let s = spec("http://h/", r#"{"method": "GET", "retry": 0}"#).unwrap();
        assert_eq!(
            s.retries,
            Retries {
                ephemeral: 0,
                throttled: 0
            }
        );
    }

    #[test]
    fn headers_query_and_content_shapes() {
        let s = spec(
            "http://h/",
            r#"{"headers": [{"X-A": "1"}, {"X-A": 2}, {"X-Empty": null}],
                "query": {"q": "a b", "n": 3}}"#,
        )
        .unwrap();
        assert_eq!(
            s.headers,
            vec![
                ("X-A".into(), "1".into()),
                ("X-A".into(), "2".into()),
                ("X-Empty".into(), "".into())
            ]
        );
        assert_eq!(
            s.query,
            Some(Query::Pairs(vec![
                ("q".into(), "a b".into()),
                ("n".into(), "3".into())
            ]))
        );
        let s = spec("http://h/", r#"{"query": "a=1&b=2"}"#).unwrap();
        assert_eq!(s.query, Some(Query::Text("a=1&b=2".into())));

        let check = |params: &str, body: Body, content_type: &str| {
            let s = spec("http://h/", params).unwrap();
            assert_eq!(
                s.content,
                Some(Content {
                    body,
                    content_type: content_type.into()
                }),
                "{params}"
            );
        };
        check(
            r#"{"content": "hello"}"#,
            Body::Text("hello".into()),
            "text/plain",
        );
        check(r#"{"content": 42}"#, Body::Text("42".into()), "text/plain");
        check(
            r#"{"content": "hi", "content_format": "json"}"#,
            Body::Json(json!("hi")),
            "application/json",
        );
        check(
            r#"{"content": {"a": [1]}}"#,
            Body::Json(json!({"a": [1]})),
            "application/json",
        );
        check(
            r#"{"content": [1, "x"]}"#,
            Body::Json(json!([1, "x"])),
            "application/json",
        );
        check(
            r#"{"content": {"a": "x", "b": 4711}, "content_format": "FORM"}"#,
            Body::Form(vec![("a".into(), "x".into()), ("b".into(), "4711".into())]),
            "application/x-www-form-urlencoded",
        );
        check(
            r#"{"content": {"a": 1}, "content_type": "application/vnd.x+json"}"#,
            Body::Json(json!({"a": 1})),
            "application/vnd.x+json",
        );
    }

    #[test]
    fn invalid_options_say_what_is_expected() {
        let check = |params: &str, expect: &str| {
            let got = spec("http://h/", params).unwrap_err();
            assert!(got.contains(expect), "{params}: {got}");
            assert!(got.starts_with("http> "), "{got}");
        };
        check(r#"{"method": "GE T"}"#, "must be an HTTP method");
        check(
            r#"{"method": ["GET"]}"#,
            "`method` must be a string, found a list",
        );
        check(
            r#"{"retry": "often"}"#,
            "`retry` must be true, false or a number of retries, found `often`",
        );
        check(
            r#"{"retry": -1}"#,
            "`retry` must be true, false or a number",
        );
        check(
            r#"{"timeout": 0}"#,
            "`timeout` must be a positive number of seconds",
        );
        check(
            r#"{"timeout": "soon"}"#,
            "or a duration like `2m`, found the string `soon`",
        );
        check(
            r#"{"store_content": "yes"}"#,
            "`store_content` must be true or false, found the string `yes`",
        );
        check(
            r#"{"headers": {"Accept": "x"}}"#,
            "`headers` must be a list of single-key maps",
        );
        check(
            r#"{"headers": [{"A": "1", "B": "2"}]}"#,
            "found an item that is a map",
        );
        check(
            r#"{"headers": ["A: 1"]}"#,
            "found an item that is the string `A: 1`",
        );
        check(
            r#"{"headers": [{"A": {"x": 1}}]}"#,
            "the value of header `A` must be a string or a number",
        );
        check(r#"{"query": [1]}"#, "`query` must be a string");
        check(r#"{"query": {"a": [1]}}"#, "query parameter `a`");
        check(
            r#"{"content": [1], "content_format": "text"}"#,
            "`content_format: text` cannot send a list",
        );
        check(
            r#"{"content": [1], "content_format": "form"}"#,
            "cannot send a list",
        );
        check(
            r#"{"content": "x", "content_format": "form"}"#,
            "use `text` or `json`",
        );
        check(
            r#"{"content": {"a": {"b": 1}}, "content_format": "form"}"#,
            "form field `a`",
        );
        check(
            r#"{"content": "x", "content_format": "xml"}"#,
            "must be `text`, `json` or `form`",
        );
        let got = spec("", "{}").unwrap_err();
        assert!(got.contains("needs the URI"), "{got}");
    }

    struct Vault;
    impl SecretProvider for Vault {
        fn secret(&self, name: &str) -> Option<String> {
            match name {
                "token" => Some("s3cr3t".into()),
                "name" => Some("X-Key".into()),
                _ => None,
            }
        }
    }

    fn prepared(spec: &Spec, secrets: &dyn SecretProvider) -> (reqwest::Request, String) {
        let client = spec.client().unwrap();
        spec.prepare(&client, secrets).unwrap()
    }

    fn body_text(request: &reqwest::Request) -> String {
        let bytes = request
            .body()
            .and_then(|b| b.as_bytes())
            .unwrap_or_default();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn secrets_resolve_only_where_evaluation_marked_them_and_mask_the_uri() {
        let params = r#"{"headers": [{"${secret:name}": "Bearer ${secret:token}"}],
                         "query": {"k": "${secret:token}"},
                         "content": {"pw": "${secret:token}", "${secret:name}": 1}}"#;
        let s = spec_with_secrets(
            "http://h/p?a=${secret:token}",
            params,
            &["headers", "query", "content"],
        );
        let (request, shown) = prepared(&s, &Vault);
        assert_eq!(request.url().as_str(), "http://h/p?a=s3cr3t&k=s3cr3t");
        assert_eq!(shown, "http://***");
        let value = &request.headers()["x-key"];
        assert_eq!(value, "Bearer s3cr3t");
        assert!(value.is_sensitive());
        assert_eq!(body_text(&request), r#"{"pw":"s3cr3t","X-Key":1}"#);
        assert!(!format!("{:?}", request.headers()).contains("s3cr3t"));

        // Not marked by evaluation: a value that only looks like a reference is sent as is.
        let params = r#"{"query": {"k": "${secret:token}"}, "content": ["${secret:token}"]}"#;
        let s = spec_with_secrets("http://h/p", params, &[]);
        let (request, shown) = prepared(&s, &Vault);
        assert_eq!(shown, "http://h/p?k=%24%7Bsecret%3Atoken%7D");
        assert!(body_text(&request).contains("${secret:token}"));

        // An unknown secret names the secret, never a value.
        let s = spec_with_secrets("http://h/${secret:nope}", "{}", &[]);
        let err = s.prepare(&s.client().unwrap(), &Vault).unwrap_err();
        assert_eq!(err, "http> unknown secret `nope`");
    }

    #[test]
    fn http_secrets_authorize_and_the_uri_hides_user_info() {
        struct HttpSecrets(&'static [(&'static str, &'static str)]);
        impl SecretProvider for HttpSecrets {
            fn secret(&self, name: &str) -> Option<String> {
                self.0
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            }
        }
        let s = spec("http://h/x", "{}").unwrap();
        let (request, shown) = prepared(&s, &HttpSecrets(&[("http.authorization", "Token abc")]));
        assert_eq!(shown, "http://h/x");
        assert_eq!(request.headers()[AUTHORIZATION], "Token abc");
        assert!(request.headers()[AUTHORIZATION].is_sensitive());
        let (request, _) = prepared(
            &s,
            &HttpSecrets(&[("http.user", "u"), ("http.password", "p")]),
        );
        assert_eq!(request.headers()[AUTHORIZATION], "Basic dTpw");
        let (request, shown) = prepared(&s, &HttpSecrets(&[("http.uri", "https://other/y")]));
        assert_eq!(request.url().as_str(), "https://other/y");
        assert_eq!(shown, "https://***");
        // User info in the URI is basic auth, never shown, and wins over the secret.
        let s = spec("http://me:pw@h/x", "{}").unwrap();
        let (request, shown) = prepared(&s, &HttpSecrets(&[("http.authorization", "Token abc")]));
        assert_eq!(shown, "http://h/x");
        assert_eq!(request.headers().get_all(AUTHORIZATION).iter().count(), 1);
        assert_eq!(request.headers()[AUTHORIZATION], "Basic bWU6cHc=");
        // So does an explicit header.
        let s = spec("http://h/", r#"{"headers": [{"Authorization": "mine"}]}"#).unwrap();
        let (request, _) = prepared(&s, &HttpSecrets(&[("http.authorization", "Token abc")]));
        assert_eq!(request.headers().get_all(AUTHORIZATION).iter().count(), 1);
        assert_eq!(request.headers()[AUTHORIZATION], "mine");
    }

    #[test]
    fn request_shape_query_text_form_and_content_type() {
        let s = spec(
            "http://h/p?x=1",
            r#"{"method": "PATCH", "query": "a=1&b=two%20words",
                "content": {"a": "x y", "b": true}, "content_format": "form",
                "headers": [{"X-Many": "1"}, {"X-Many": "2"}]}"#,
        )
        .unwrap();
        let (request, shown) = prepared(&s, &Vault);
        assert_eq!(request.method(), reqwest::Method::PATCH);
        assert_eq!(shown, "http://h/p?x=1&a=1&b=two+words");
        assert_eq!(
            request.headers()[CONTENT_TYPE],
            "application/x-www-form-urlencoded"
        );
        assert_eq!(request.headers().get_all("x-many").iter().count(), 2);
        assert_eq!(body_text(&request), "a=x+y&b=true");
        let s = spec(
            "http://h/",
            r#"{"content": "x", "headers": [{"content-type": "text/csv"}]}"#,
        )
        .unwrap();
        let (request, _) = prepared(&s, &Vault);
        assert_eq!(request.headers().get_all(CONTENT_TYPE).iter().count(), 1);
        assert_eq!(request.headers()[CONTENT_TYPE], "text/csv");
        for (uri, expect) in [
            ("ftp://h/x", "http:// and https:// URIs only"),
            ("not a uri", "is not valid"),
        ] {
            let s = spec(uri, "{}").unwrap();
            let err = s.prepare(&s.client().unwrap(), &Vault).unwrap_err();
            assert!(err.contains(expect), "{uri}: {err}");
        }
    }
}
