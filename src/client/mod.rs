//! The HTTP client of the client commands (`spade attempts`, `start`, `kill`, ...): JSON over
//! the daemon's API with the bearer token, errors turned into messages that say what to do.

use crate::config::Secret;
use serde_json::Value;
use std::io::BufRead as _;
use std::time::Duration;

/// The local daemon, where `spade serve` listens by default.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:65432";

/// Client failures: exit 1 (2 for a request the user must fix).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no spade daemon is listening at {endpoint}: start one with `spade serve PROJECT` (or point --endpoint / SPADE_ENDPOINT at a running one)")]
    NoDaemon { endpoint: String },
    #[error("invalid --endpoint `{endpoint}`: expected a URL such as http://127.0.0.1:65432")]
    Endpoint { endpoint: String },
    #[error(
        "the daemon at {endpoint} requires a token: set SPADE_API_TOKEN or pass --token-file FILE"
    )]
    Unauthorized { endpoint: String },
    /// The daemon answered with an error: its message, its status and the whole body.
    #[error("{message} (HTTP {status})")]
    Api {
        status: u16,
        message: String,
        body: Value,
    },
    #[error("cannot read the token file {}", path.display())]
    TokenFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the request to {url} failed")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the daemon's answer to {url} is not what spade expects: {detail}")]
    Decode { url: String, detail: String },
}

impl Error {
    pub fn is_user_fixable(&self) -> bool {
        match self {
            Error::Api { status, .. } => (400..500).contains(status),
            Error::Endpoint { .. } | Error::Unauthorized { .. } | Error::TokenFile { .. } => true,
            Error::NoDaemon { .. } | Error::Transport { .. } | Error::Decode { .. } => false,
        }
    }
}

/// The token: `SPADE_API_TOKEN`, else the file.
pub fn token(
    from_env: Option<String>,
    file: Option<&std::path::Path>,
) -> Result<Option<Secret>, Error> {
    if let Some(t) = from_env.filter(|t| !t.trim().is_empty()) {
        return Ok(Some(Secret::new(t.trim().to_owned())));
    }
    match file {
        None => Ok(None),
        Some(path) => std::fs::read_to_string(path)
            .map(|t| Some(Secret::new(t.trim().to_owned())))
            .map_err(|source| Error::TokenFile {
                path: path.to_owned(),
                source,
            }),
    }
}

/// A connection to one daemon.
pub struct Client {
    endpoint: String,
    token: Option<Secret>,
    http: reqwest::blocking::Client,
}

impl Client {
    pub fn new(endpoint: &str, token: Option<Secret>) -> Result<Client, Error> {
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        if url::Url::parse(&endpoint).is_err() {
            return Err(Error::Endpoint { endpoint });
        }
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // Event streams last as long as their attempt.
            .timeout(None)
            .build()
            .map_err(|source| Error::Transport {
                url: endpoint.clone(),
                source,
            })?;
        Ok(Client {
            endpoint,
            token,
            http,
        })
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> (String, reqwest::blocking::RequestBuilder) {
        let url = format!("{}{path}", self.endpoint);
        let mut req = self.http.request(method, &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t.expose());
        }
        (url, req)
    }

    fn send(
        &self,
        url: &str,
        req: reqwest::blocking::RequestBuilder,
    ) -> Result<reqwest::blocking::Response, Error> {
        let response = req.send().map_err(|source| {
            if source.is_connect() {
                Error::NoDaemon {
                    endpoint: self.endpoint.clone(),
                }
            } else {
                Error::Transport {
                    url: url.to_owned(),
                    source,
                }
            }
        })?;
        let status = response.status().as_u16();
        if status == 401 {
            return Err(Error::Unauthorized {
                endpoint: self.endpoint.clone(),
            });
        }
        if status >= 400 {
            let text = response.text().unwrap_or_default();
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let message = body
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| text.trim().to_owned(), str::to_owned);
            return Err(Error::Api {
                status,
                message,
                body,
            });
        }
        Ok(response)
    }

    fn json(&self, url: &str, response: reqwest::blocking::Response) -> Result<Value, Error> {
        if response.status().as_u16() == 204 {
            return Ok(Value::Null);
        }
        let text = response.text().map_err(|source| Error::Transport {
            url: url.to_owned(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| Error::Decode {
            url: url.to_owned(),
            detail: e.to_string(),
        })
    }

    pub fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, Error> {
        let (url, req) = self.request(reqwest::Method::GET, path);
        let response = self.send(&url, req.query(query))?;
        self.json(&url, response)
    }

    pub fn get_text(&self, path: &str, query: &[(&str, String)]) -> Result<String, Error> {
        let (url, req) = self.request(reqwest::Method::GET, path);
        let response = self.send(&url, req.query(query))?;
        response
            .text()
            .map_err(|source| Error::Transport { url, source })
    }

    pub fn put(&self, path: &str, body: &Value) -> Result<Value, Error> {
        self.with_body(reqwest::Method::PUT, path, body)
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value, Error> {
        self.with_body(reqwest::Method::POST, path, body)
    }

    fn with_body(&self, method: reqwest::Method, path: &str, body: &Value) -> Result<Value, Error> {
        let (url, req) = self.request(method, path);
        let req = req
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        let response = self.send(&url, req)?;
        self.json(&url, response)
    }

    /// Reads a server-sent event stream, calling `on_event(kind, data)` for each event until
    /// it returns false or the stream ends.
    pub fn events(
        &self,
        path: &str,
        mut on_event: impl FnMut(&str, &Value) -> bool,
    ) -> Result<(), Error> {
        let (url, req) = self.request(reqwest::Method::GET, path);
        let response = self.send(
            &url,
            req.header(reqwest::header::ACCEPT, "text/event-stream"),
        )?;
        let reader = std::io::BufReader::new(response);
        let (mut kind, mut data) = (String::new(), String::new());
        for line in reader.lines() {
            let line = line.map_err(|e| Error::Decode {
                url: url.clone(),
                detail: e.to_string(),
            })?;
            if line.is_empty() {
                if !data.is_empty() {
                    let value: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
                    if !on_event(&kind, &value) {
                        return Ok(());
                    }
                }
                kind.clear();
                data.clear();
            } else if let Some(k) = line.strip_prefix("event:") {
                kind = k.trim().to_owned();
            } else if let Some(d) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(d.strip_prefix(' ').unwrap_or(d));
            }
        }
        Ok(())
    }
}
