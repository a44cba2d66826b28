//! `http>: URI`: one HTTP request with Digdag's options; stores `http.last_status`, and the
//! body as `http.last_content` with `store_content: true`.
//!
//! 5xx, 408, 429 and network errors are retried with a backoff of 1 s doubling to 30 s, waited
//! on the injected clock and capped at [`DEFAULT_RETRIES`] (Digdag retried a GET forever); other
//! 4xx fail at once. `${secret:...}` in the URI, query, headers and content stays literal in the
//! stored params and is resolved by [`spec`] just before the request is built: messages and the
//! run's log show the method and URI (masked when it holds a secret), never a header or the
//! content. `http_call>` (in `http_call.rs`) sends the same request through [`exchange`].

mod spec;

pub(crate) use spec::Spec;

use super::{failed, Context, Error, Operator};
use crate::clock::{BoxFuture, Clock};
use crate::engine::Outcome;
use crate::error::chain;
use crate::expr::JsonMap;
use jiff::{SignedDuration, Timestamp};
use reqwest::header::CONTENT_TYPE;
use serde_json::Value as Json;
use spec::Retries;
use std::future::Future;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

pub struct Http;

/// Redirects followed at most (Digdag's `config.http.max_redirects`).
pub const MAX_REDIRECTS: usize = 8;
/// The most bytes `http.last_content` and an `http_call>` response may have (Digdag's
/// `max_stored_response_content_size` and `max_response_content_size`).
pub const MAX_CONTENT_BYTES: usize = 64 * 1024;
/// Retries after the first try with `retry: true`; with the backoff they span about three
/// minutes. Digdag has no cap, so a GET to a server that stays down never ends there.
pub const DEFAULT_RETRIES: u32 = 10;
/// Digdag's `timeout` default, for each try.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl Operator for Http {
    fn run(&self, ctx: Context) -> BoxFuture<'static, Result<Outcome, Error>> {
        Box::pin(async move {
            let spec = match Spec::parse("http", &ctx.run) {
                Ok(spec) => spec,
                Err(message) => return Ok(failed(message, false)),
            };
            let limit = spec.store_content.then_some(MAX_CONTENT_BYTES);
            Ok(match exchange(&ctx, &spec, limit).await {
                Ok(reply) => stored(&reply),
                Err(failure) => failure.into_outcome(),
            })
        })
    }
}

/// `http.last_status` (and `http.last_content`), each reset first so that nothing of an
/// earlier request's store survives the merge (Digdag's reset keys).
fn stored(reply: &Reply) -> Outcome {
    let mut http = JsonMap::new();
    http.insert("last_status".into(), reply.status.into());
    let mut reset_store = vec!["http.last_status".to_owned()];
    if let Some(body) = &reply.body {
        http.insert("last_content".into(), body.clone().into());
        reset_store.push("http.last_content".to_owned());
    }
    let mut store = JsonMap::new();
    store.insert("http".into(), Json::Object(http));
    Outcome::Succeeded {
        store,
        reset_store,
        export: JsonMap::new(),
        subtasks: None,
    }
}

/// The response of the try that succeeded (2xx, or a 3xx that was not followed).
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) content_type: Option<String>,
    /// Read only when asked for, at most [`MAX_CONTENT_BYTES`].
    pub(crate) body: Option<String>,
}

/// Why a task's request did not give a usable response.
#[derive(Debug)]
pub(crate) struct Failed {
    message: String,
    /// Task-level `_retry` applies (request failures), or not (invalid options).
    retryable: bool,
}

impl Failed {
    pub(crate) fn into_outcome(self) -> Outcome {
        failed(self.message, self.retryable)
    }
}

/// How one try failed, and so whether another try may help.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Permanent,
    Ephemeral,
    Throttled,
}

#[derive(Debug)]
struct TryFailed {
    message: String,
    kind: Kind,
}

impl Retries {
    fn allowed(self, kind: Kind) -> u32 {
        match kind {
            Kind::Permanent => 0,
            Kind::Ephemeral => self.ephemeral,
            Kind::Throttled => self.throttled,
        }
    }
}

/// Sends the task's request, with retries; reads the body when `body_limit` is given.
pub(crate) async fn exchange(
    ctx: &Context,
    spec: &Spec,
    body_limit: Option<usize>,
) -> Result<Reply, Failed> {
    let config = |message| Failed {
        message,
        retryable: false,
    };
    let client = spec.client().map_err(config)?;
    let (request, shown) = spec.prepare(&client, &*ctx.secrets).map_err(config)?;
    if let Err(e) = ctx.ensure_run_dir() {
        tracing::warn!(error = %e, "cannot create the run directory; the task log stays empty");
    }
    let log = RunLog {
        path: ctx.run_file("log"),
        task: &ctx.run.full_name,
    };
    let method = request.method().clone();
    let clock = &*ctx.clock;
    let attempt = |_try_number: u32| {
        let client = client.clone();
        let request = request.try_clone();
        let (shown, method) = (&shown, &method);
        let log = &log;
        async move {
            // Bodies are in memory, so a request can always be cloned.
            let Some(request) = request else {
                return Err(TryFailed {
                    message: format!("{method} {shown}: the request cannot be sent again"),
                    kind: Kind::Permanent,
                });
            };
            log.note(&format!("{method} {shown}"), false);
            let started = clock.now();
            let reply = tokio::select! {
                reply = send(&client, request, body_limit, method, shown) => reply,
                () = clock.sleep_until(after(started, spec.timeout)) => Err(TryFailed {
                    message: format!(
                        "{method} {shown}: no response within {}",
                        human(spec.timeout)
                    ),
                    kind: Kind::Ephemeral,
                }),
            };
            if let Ok(reply) = &reply {
                let took =
                    Duration::try_from(clock.now().duration_since(started)).unwrap_or_default();
                log.note(
                    &format!("HTTP {} in {}", reply.status, human_ms(took)),
                    false,
                );
            }
            reply
        }
    };
    let on_retry = |failure: &TryFailed, try_number: u32, total: u32, wait: Duration| {
        log.note(
            &format!(
                "{}; try {try_number} of {total} failed, next in {}",
                failure.message,
                human(wait)
            ),
            true,
        );
    };
    with_retries(clock, spec.retries, attempt, on_retry)
        .await
        .map_err(|(failure, tries)| Failed {
            message: if tries > 1 {
                format!("{} (gave up after {tries} tries)", failure.message)
            } else {
                failure.message
            },
            retryable: true,
        })
}

/// Runs `attempt` until it succeeds, fails for good, or the retries its kind of failure gets
/// are used up, waiting the backoff on `clock` between tries. Returns the last failure and
/// the number of tries on failure.
async fn with_retries<T, F, Fut>(
    clock: &dyn Clock,
    retries: Retries,
    mut attempt: F,
    mut on_retry: impl FnMut(&TryFailed, u32, u32, Duration),
) -> Result<T, (TryFailed, u32)>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, TryFailed>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        let failure = match attempt(tries).await {
            Ok(done) => return Ok(done),
            Err(failure) => failure,
        };
        let allowed = retries.allowed(failure.kind);
        if tries > allowed {
            return Err((failure, tries));
        }
        let wait = backoff(tries);
        on_retry(&failure, tries, allowed + 1, wait);
        clock.sleep_until(after(clock.now(), wait)).await;
    }
}

/// The wait after the `n`th failed try: 1 s, 2 s, 4 s, ..., at most 30 s (Digdag's
/// `PollingRetryExecutor`).
fn backoff(n: u32) -> Duration {
    let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
    FIRST_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF)
}

fn after(t: Timestamp, d: Duration) -> Timestamp {
    let d = SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX);
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

/// One try: sends, classifies the status as Digdag does, and reads the body if asked.
async fn send(
    client: &reqwest::Client,
    request: reqwest::Request,
    body_limit: Option<usize>,
    method: &reqwest::Method,
    shown: &str,
) -> Result<Reply, TryFailed> {
    let response = client.execute(request).await.map_err(|e| {
        // A redirect loop stays a loop: trying again cannot help.
        if e.is_redirect() {
            return TryFailed {
                message: format!("{method} {shown}: more than {MAX_REDIRECTS} redirects"),
                kind: Kind::Permanent,
            };
        }
        TryFailed {
            // reqwest puts the URL in its messages: drop it, it may hold a secret.
            message: format!("{method} {shown}: {}", chain(&e.without_url())),
            kind: Kind::Ephemeral,
        }
    })?;
    let status = response.status();
    let line = || {
        format!(
            "{method} {shown}: {} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        )
        .trim_end()
        .to_owned()
    };
    if status.is_client_error() {
        let throttled = matches!(status.as_u16(), 408 | 429);
        return Err(TryFailed {
            message: if throttled {
                format!("failed HTTP request: {}", line())
            } else {
                format!("HTTP 4XX Client Error: {}", line())
            },
            kind: if throttled {
                Kind::Throttled
            } else {
                Kind::Permanent
            },
        });
    }
    if status.is_server_error() {
        return Err(TryFailed {
            message: format!("HTTP 5XX Server Error: {}", line()),
            kind: Kind::Ephemeral,
        });
    }
    if !(status.is_success() || status.is_redirection()) {
        return Err(TryFailed {
            message: format!("unexpected HTTP status: {}", line()),
            kind: Kind::Ephemeral,
        });
    }
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = match body_limit {
        None => None,
        Some(limit) => Some(read_body(response, limit, method, shown).await?),
    };
    Ok(Reply {
        status: status.as_u16(),
        content_type,
        body,
    })
}

/// The body as text (UTF-8; invalid bytes become U+FFFD), refusing more than `limit` bytes
/// without reading them all.
async fn read_body(
    mut response: reqwest::Response,
    limit: usize,
    method: &reqwest::Method,
    shown: &str,
) -> Result<String, TryFailed> {
    let too_large = || TryFailed {
        message: format!("{method} {shown}: response content too large: more than {limit} bytes"),
        kind: Kind::Permanent,
    };
    if response
        .content_length()
        .is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX))
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| TryFailed {
        message: format!(
            "{method} {shown}: reading the response: {}",
            chain(&e.without_url())
        ),
        kind: Kind::Ephemeral,
    })? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The run's log file (`<task>.<fence>.log`): the request line and each response, nothing
/// secret (see the module doc).
struct RunLog<'a> {
    path: PathBuf,
    task: &'a str,
}

impl RunLog<'_> {
    /// Appends a line; `warn` also shows it on stderr at the default log level (retries).
    fn note(&self, line: &str, warn: bool) {
        if warn {
            tracing::warn!(task = %self.task, "{line}");
        } else {
            tracing::info!(task = %self.task, "{line}");
        }
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = written {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot write the task log");
        }
    }
}

fn human(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        human_ms(d)
    }
}

fn human_ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

#[cfg(test)]
mod tests {
    use super::super::testkit::manual_clock;
    use super::*;
    use serde_json::json;
    use std::sync::{Arc, Mutex};

    #[test]
    fn backoff_doubles_from_one_second_up_to_thirty() {
        let waits: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff(100), MAX_BACKOFF);
    }

    /// Drives `with_retries` with scripted try results, advancing the manual clock whenever the
    /// loop sleeps; returns the result and the virtual seconds each try started at.
    async fn scripted(
        retries: Retries,
        script: Vec<Result<u16, Kind>>,
    ) -> (Result<u16, u32>, Vec<u64>) {
        let clock = manual_clock();
        let start = clock.now();
        let starts = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script.into_iter()));
        let task = {
            let (clock, starts) = (clock.clone(), starts.clone());
            tokio::spawn(async move {
                let attempt = |_: u32| {
                    let (clock, starts, script) = (clock.clone(), starts.clone(), script.clone());
                    async move {
                        let at = clock.now().duration_since(start).as_secs();
                        starts.lock().unwrap().push(u64::try_from(at).unwrap());
                        match script.lock().unwrap().next().unwrap() {
                            Ok(v) => Ok(v),
                            Err(kind) => Err(TryFailed {
                                message: "no".into(),
                                kind,
                            }),
                        }
                    }
                };
                with_retries(&*clock, retries, attempt, |_, _, _, _| {})
                    .await
                    .map_err(|(_, tries)| tries)
            })
        };
        while !task.is_finished() {
            if clock.sleepers() > 0 {
                clock.advance(Duration::from_millis(500));
            }
            tokio::task::yield_now().await;
        }
        let result = task.await.unwrap();
        let starts = starts.lock().unwrap().clone();
        (result, starts)
    }

    #[tokio::test]
    async fn retries_wait_the_backoff_on_the_clock_and_stop_at_the_cap() {
        let r = Retries {
            ephemeral: 3,
            throttled: 3,
        };
        let (result, starts) =
            scripted(r, vec![Err(Kind::Ephemeral), Err(Kind::Ephemeral), Ok(200)]).await;
        assert_eq!(result, Ok(200));
        assert_eq!(starts, [0, 1, 3]);
        let (result, starts) = scripted(r, vec![Err(Kind::Ephemeral); 5]).await;
        assert_eq!(result, Err(4));
        assert_eq!(starts, [0, 1, 3, 7]);
        // Permanent failures (4xx) never wait.
        let (result, starts) = scripted(r, vec![Err(Kind::Permanent), Ok(200)]).await;
        assert_eq!(result, Err(1));
        assert_eq!(starts, [0]);
        // `retry: false` still retries 408 and 429, as Digdag.
        let no_retry = Retries {
            ephemeral: 0,
            throttled: 2,
        };
        let (result, _) = scripted(no_retry, vec![Err(Kind::Ephemeral), Ok(200)]).await;
        assert_eq!(result, Err(1));
        let (result, starts) = scripted(
            no_retry,
            vec![Err(Kind::Throttled), Err(Kind::Throttled), Ok(204)],
        )
        .await;
        assert_eq!(result, Ok(204));
        assert_eq!(starts, [0, 1, 3]);
    }

    #[test]
    fn store_resets_its_keys_first() {
        let Outcome::Succeeded {
            store, reset_store, ..
        } = stored(&Reply {
            status: 201,
            content_type: None,
            body: None,
        })
        else {
            panic!("stored must succeed");
        };
        assert_eq!(Json::Object(store), json!({"http": {"last_status": 201}}));
        assert_eq!(reset_store, ["http.last_status"]);
        let Outcome::Succeeded {
            store, reset_store, ..
        } = stored(&Reply {
            status: 200,
            content_type: None,
            body: Some("[1]".into()),
        })
        else {
            panic!("stored must succeed");
        };
        assert_eq!(
            Json::Object(store),
            json!({"http": {"last_status": 200, "last_content": "[1]"}})
        );
        assert_eq!(reset_store, ["http.last_status", "http.last_content"]);
    }
}
