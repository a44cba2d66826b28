//! The daemon's configuration: a TOML file whose every key is also a flag and an environment
//! variable (`max_attempts` = `--max-attempts` = `SPADE_MAX_ATTEMPTS`). Flags win over the
//! environment (clap reads both), the environment over the file, the file over the defaults.
//!
//! The file is checked like a `.dig` file: an unknown key or a value of the wrong kind is a
//! diagnostic at its `file:line:col`, with a did-you-mean for misspelt keys.

use crate::diag::{Diagnostic, SourceMap, Span};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every key of the file, its flag and its environment variable, and what it holds.
pub const KEYS: &[Key] = &[
    Key::new("project", "the project directory of `.dig` files (default: the current directory)"),
    Key::new("db", "the SQLite database (default: `<project>/.spade/spade.db`)"),
    Key::new("max_attempts", "attempts driven at once; more wait in a queue (default 64)"),
    Key::new(
        "max_tasks",
        "operator tasks running at once across all attempts (default: what the open-file limit allows)",
    ),
    Key::new(
        "task_limit",
        "tasks one attempt's current tree may hold; a generator passing it fails (default 100000)",
    ),
    Key::new("stop_timeout", "how long a stop waits after SIGTERM before SIGKILL (default 30s)"),
    Key::new("log_format", "`human` (default) or `json`"),
    Key::new("listen", "where the HTTP API listens (default 127.0.0.1:65432)"),
    Key::new(
        "api_token",
        "the bearer token the API requires (file only, never a flag; required off loopback)",
    ),
    Key::new("api_token_file", "a file holding the API's bearer token (file only)"),
    Key::new(
        "gc_older_than",
        "delete finished attempts (tasks, runs, logs) that finished longer ago than this, e.g. 90d (default: off)",
    ),
    Key::new("gc_interval", "how often the gc_older_than policy runs (default 1h)"),
];

/// How often the `gc_older_than` policy runs unless told otherwise.
pub const DEFAULT_GC_INTERVAL: Duration = Duration::from_secs(3600);

/// Where the API listens unless told otherwise (Digdag's port, on loopback).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:65432";

/// The API token is a secret like `${secret:...}` values: `Debug` prints `***`.
pub use crate::expr::Secret;

/// One configuration key.
#[derive(Clone, Copy, Debug)]
pub struct Key {
    pub name: &'static str,
    pub help: &'static str,
}

impl Key {
    const fn new(name: &'static str, help: &'static str) -> Key {
        Key { name, help }
    }

    /// `--max-attempts`.
    pub fn flag(&self) -> String {
        format!("--{}", self.name.replace('_', "-"))
    }

    /// `SPADE_MAX_ATTEMPTS`.
    pub fn env(&self) -> String {
        format!("SPADE_{}", self.name.to_ascii_uppercase())
    }
}

/// Configuration failures: exit 2.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the configuration file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Diagnostics already rendered in the `file:line:col` shape.
    #[error("{rendered}{count} error(s) in the configuration file {}", path.display())]
    Invalid {
        path: PathBuf,
        rendered: String,
        count: usize,
    },
    #[error("the API would listen on {listen}, which is not a loopback address, without a token: set `api_token_file` (or `api_token`) in the configuration file, or listen on 127.0.0.1")]
    TokenRequired { listen: std::net::SocketAddr },
    #[error("cannot read the API token file {}", path.display())]
    TokenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the API token file {} is empty", path.display())]
    EmptyToken { path: PathBuf },
    #[error("invalid {what} `{value}`: {expected}")]
    Value {
        what: String,
        value: String,
        expected: &'static str,
    },
}

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

impl LogFormat {
    fn parse(text: &str) -> Option<LogFormat> {
        match text {
            "human" => Some(LogFormat::Human),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// Values as given, before defaults: one layer (flags and environment, or the file).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Layer {
    pub project: Option<PathBuf>,
    pub db: Option<PathBuf>,
    pub max_attempts: Option<usize>,
    pub max_tasks: Option<usize>,
    pub task_limit: Option<u64>,
    pub stop_timeout: Option<String>,
    pub log_format: Option<String>,
    pub listen: Option<String>,
    pub api_token: Option<Secret>,
    pub api_token_file: Option<PathBuf>,
    pub gc_older_than: Option<String>,
    pub gc_interval: Option<String>,
}

impl Layer {
    /// Every key of `self` that is set, else the one of `lower`.
    pub fn over(self, lower: Layer) -> Layer {
        Layer {
            project: self.project.or(lower.project),
            db: self.db.or(lower.db),
            max_attempts: self.max_attempts.or(lower.max_attempts),
            max_tasks: self.max_tasks.or(lower.max_tasks),
            task_limit: self.task_limit.or(lower.task_limit),
            stop_timeout: self.stop_timeout.or(lower.stop_timeout),
            log_format: self.log_format.or(lower.log_format),
            listen: self.listen.or(lower.listen),
            api_token: self.api_token.or(lower.api_token),
            api_token_file: self.api_token_file.or(lower.api_token_file),
            gc_older_than: self.gc_older_than.or(lower.gc_older_than),
            gc_interval: self.gc_interval.or(lower.gc_interval),
        }
    }
}

/// The validated configuration of `spade serve`.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub project: PathBuf,
    pub db: PathBuf,
    pub max_attempts: usize,
    /// `None`: derived from the open-file limit at start.
    pub max_tasks: Option<usize>,
    /// Live tasks per attempt (`engine::DEFAULT_TASK_LIMIT` unless set).
    pub task_limit: u64,
    pub stop_timeout: Duration,
    pub log_format: LogFormat,
    /// Where the HTTP API listens.
    pub listen: std::net::SocketAddr,
    /// The bearer token the API requires (`None`: no token, loopback only).
    pub api_token: Option<Secret>,
    /// Retention: finished attempts older than this are deleted (`None`: kept forever).
    pub gc_older_than: Option<Duration>,
    /// How often the retention policy runs.
    pub gc_interval: Duration,
}

impl Config {
    /// Applies defaults and checks values; relative paths are taken from `cwd`.
    pub fn resolve(layer: Layer, cwd: &Path) -> Result<Config, Error> {
        let absolute = |p: PathBuf| if p.is_absolute() { p } else { cwd.join(p) };
        let project = absolute(layer.project.unwrap_or_else(|| PathBuf::from(".")));
        let db = layer
            .db
            .map(absolute)
            .unwrap_or_else(|| project.join(".spade").join("spade.db"));
        let max_attempts = layer.max_attempts.unwrap_or(64);
        if max_attempts == 0 {
            return Err(Error::Value {
                what: "max_attempts".into(),
                value: "0".into(),
                expected: "a positive number of attempts",
            });
        }
        if layer.max_tasks == Some(0) {
            return Err(Error::Value {
                what: "max_tasks".into(),
                value: "0".into(),
                expected: "a positive number of tasks",
            });
        }
        if layer.task_limit == Some(0) {
            return Err(Error::Value {
                what: "task_limit".into(),
                value: "0".into(),
                expected: "a positive number of tasks",
            });
        }
        let stop_timeout = match layer.stop_timeout {
            None => Duration::from_secs(30),
            Some(text) => crate::dig::duration::parse(&text).ok_or(Error::Value {
                what: "stop_timeout".into(),
                value: text,
                expected: "a duration such as 30s, 5m or 1h30m",
            })?,
        };
        let log_format = match layer.log_format {
            None => LogFormat::Human,
            Some(text) => LogFormat::parse(&text).ok_or(Error::Value {
                what: "log_format".into(),
                value: text,
                expected: "`human` or `json`",
            })?,
        };
        let listen_text = layer.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen: std::net::SocketAddr = listen_text.parse().map_err(|_| Error::Value {
            what: "listen".into(),
            value: listen_text.clone(),
            expected: "an address and port such as 127.0.0.1:65432 or [::1]:65432",
        })?;
        let api_token = match (layer.api_token, layer.api_token_file) {
            (Some(t), _) => Some(t),
            (None, Some(path)) => {
                let path = absolute(path);
                let text = std::fs::read_to_string(&path).map_err(|source| Error::TokenFile {
                    path: path.clone(),
                    source,
                })?;
                let token = text.trim();
                if token.is_empty() {
                    return Err(Error::EmptyToken { path });
                }
                Some(Secret::new(token.to_owned()))
            }
            (None, None) => None,
        };
        let gc_older_than = match layer.gc_older_than {
            None => None,
            Some(text) => Some(crate::daemon::gc::parse_age(&text).ok_or(Error::Value {
                what: "gc_older_than".into(),
                value: text,
                expected: crate::daemon::gc::AGE_FORMS,
            })?),
        };
        let gc_interval = match layer.gc_interval {
            None => DEFAULT_GC_INTERVAL,
            Some(text) => crate::daemon::gc::parse_age(&text).ok_or(Error::Value {
                what: "gc_interval".into(),
                value: text,
                expected: crate::daemon::gc::AGE_FORMS,
            })?,
        };
        if api_token.is_none() && !listen.ip().is_loopback() {
            return Err(Error::TokenRequired { listen });
        }
        Ok(Config {
            project,
            db,
            max_attempts,
            max_tasks: layer.max_tasks,
            task_limit: layer
                .task_limit
                .unwrap_or(crate::engine::DEFAULT_TASK_LIMIT),
            stop_timeout,
            log_format,
            listen,
            api_token,
            gc_older_than,
            gc_interval,
        })
    }
}

/// Reads and checks a configuration file. Relative paths in it are taken from its directory.
pub fn load_file(path: &Path) -> Result<Layer, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut sources = SourceMap::new();
    let file = sources.add(path.to_owned(), text.clone());
    let (layer, mut diags) = parse(&text, file);
    // The parsed table is ordered by key; report in file order.
    crate::diag::sort(&mut diags);
    let errors: Vec<&Diagnostic> = diags.iter().filter(|d| d.is_error()).collect();
    if !errors.is_empty() {
        let rendered: String = errors.iter().map(|d| d.render(&sources)).collect();
        return Err(Error::Invalid {
            path: path.to_owned(),
            rendered,
            count: errors.len(),
        });
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let rebase = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
    Ok(Layer {
        project: layer.project.map(rebase),
        db: layer.db.map(rebase),
        api_token_file: layer.api_token_file.map(rebase),
        ..layer
    })
}

/// The keys of one file, and what is wrong with it.
fn parse(text: &str, file: crate::diag::FileId) -> (Layer, Vec<Diagnostic>) {
    use toml::de::{DeTable, DeValue};
    let mut layer = Layer::default();
    let mut diags = Vec::new();
    let span = |r: std::ops::Range<usize>| Span::new(file, r.start, r.end.max(r.start + 1));
    let table = match DeTable::parse(text) {
        Ok(t) => t,
        Err(e) => {
            let at = e.span().unwrap_or(0..0);
            diags.push(Diagnostic::error(
                span(at),
                format!("invalid TOML: {}", e.message()),
            ));
            return (layer, diags);
        }
    };
    for (key, value) in table.get_ref() {
        let name: &str = key.get_ref();
        let key_span = span(key.span());
        let value_span = span(value.span());
        let Some(known) = KEYS.iter().find(|k| k.name == name) else {
            let d = Diagnostic::error(key_span, format!("unknown configuration key `{name}`"));
            let hint = crate::dig::suggest::did_you_mean(name, KEYS.iter().map(|k| k.name));
            diags.push(match hint {
                Some(h) => d.with_help(format!("did you mean `{h}`?")),
                None => d.with_help(format!(
                    "the keys are {}",
                    KEYS.iter()
                        .map(|k| format!("`{}`", k.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            });
            continue;
        };
        let text_value = |diags: &mut Vec<Diagnostic>| -> Option<String> {
            match value.get_ref() {
                DeValue::String(s) => Some(s.to_string()),
                other => {
                    diags.push(Diagnostic::error(
                        value_span,
                        format!(
                            "`{}` must be a string, found {}",
                            known.name,
                            other.type_str()
                        ),
                    ));
                    None
                }
            }
        };
        let count = |diags: &mut Vec<Diagnostic>| -> Option<usize> {
            let parsed = match value.get_ref() {
                DeValue::Integer(i) if i.radix() == 10 => i.as_str().replace('_', "").parse().ok(),
                _ => None,
            };
            if parsed.is_none() {
                diags.push(Diagnostic::error(
                    value_span,
                    format!("`{}` must be a positive integer", known.name),
                ));
            }
            parsed
        };
        match known.name {
            "project" => layer.project = text_value(&mut diags).map(PathBuf::from),
            "db" => layer.db = text_value(&mut diags).map(PathBuf::from),
            "max_attempts" => layer.max_attempts = count(&mut diags),
            "max_tasks" => layer.max_tasks = count(&mut diags),
            "task_limit" => {
                layer.task_limit = count(&mut diags).and_then(|n| u64::try_from(n).ok())
            }
            "stop_timeout" => {
                layer.stop_timeout = text_value(&mut diags);
                if let Some(t) = &layer.stop_timeout {
                    if crate::dig::duration::parse(t).is_none() {
                        diags.push(Diagnostic::error(
                            value_span,
                            format!(
                                "`stop_timeout` must be a duration such as \"30s\", found `{t}`"
                            ),
                        ));
                    }
                }
            }
            "listen" => {
                layer.listen = text_value(&mut diags);
                if let Some(l) = &layer.listen {
                    if l.parse::<std::net::SocketAddr>().is_err() {
                        diags.push(Diagnostic::error(
                            value_span,
                            format!("`listen` must be an address and port such as \"127.0.0.1:65432\", found `{l}`"),
                        ));
                    }
                }
            }
            "gc_older_than" | "gc_interval" => {
                let text = text_value(&mut diags);
                if let Some(t) = &text {
                    if crate::daemon::gc::parse_age(t).is_none() {
                        diags.push(Diagnostic::error(
                            value_span,
                            format!(
                                "`{}` must be {}, found `{t}`",
                                known.name,
                                crate::daemon::gc::AGE_FORMS
                            ),
                        ));
                    }
                }
                if known.name == "gc_older_than" {
                    layer.gc_older_than = text;
                } else {
                    layer.gc_interval = text;
                }
            }
            "api_token" => layer.api_token = text_value(&mut diags).map(Secret::new),
            "api_token_file" => layer.api_token_file = text_value(&mut diags).map(PathBuf::from),
            "log_format" => {
                layer.log_format = text_value(&mut diags);
                if let Some(f) = &layer.log_format {
                    if LogFormat::parse(f).is_none() {
                        diags.push(Diagnostic::error(
                            value_span,
                            format!("`log_format` must be \"human\" or \"json\", found `{f}`"),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    (layer, diags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expect: &str) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spade.toml");
        std::fs::write(&path, text).unwrap();
        let got = match load_file(&path) {
            Ok(layer) => format!("{layer:?}"),
            Err(e) => e.to_string(),
        };
        let got = got.replace(&dir.path().display().to_string(), "DIR");
        assert_eq!(got.trim_end(), expect.trim_end(), "{text}");
    }

    #[test]
    fn a_valid_file_fills_its_keys_and_rebases_paths() {
        check(
            "db = \"state/spade.db\"\nmax_attempts = 8\ntask_limit = 20_000\nstop_timeout = \"1m\"\nlog_format = \"json\"\n",
            r#"Layer { project: None, db: Some("DIR/state/spade.db"), max_attempts: Some(8), max_tasks: None, task_limit: Some(20000), stop_timeout: Some("1m"), log_format: Some("json"), listen: None, api_token: None, api_token_file: None, gc_older_than: None, gc_interval: None }"#,
        );
    }

    #[test]
    fn unknown_keys_and_wrong_values_are_located() {
        check(
            "max_attempt = 8\nmax_tasks = \"many\"\nlog_format = \"xml\"\n",
            r#"DIR/spade.toml:1:1: unknown configuration key `max_attempt`
  |
1 | max_attempt = 8
  | ^^^^^^^^^^^
  = help: did you mean `max_attempts`?
DIR/spade.toml:2:13: `max_tasks` must be a positive integer
  |
2 | max_tasks = "many"
  |             ^^^^^^
DIR/spade.toml:3:14: `log_format` must be "human" or "json", found `xml`
  |
3 | log_format = "xml"
  |              ^^^^^
3 error(s) in the configuration file DIR/spade.toml"#,
        );
    }

    #[test]
    fn broken_toml_points_at_the_error() {
        check(
            "db = \"unclosed\n",
            r#"DIR/spade.toml:1:15: invalid TOML: invalid basic string, expected `"`
  |
1 | db = "unclosed
  |               ^
1 error(s) in the configuration file DIR/spade.toml"#,
        );
    }

    #[test]
    fn flags_win_over_the_file_and_defaults_fill_the_rest() {
        let flags = Layer {
            max_attempts: Some(2),
            ..Layer::default()
        };
        let file = Layer {
            max_attempts: Some(9),
            stop_timeout: Some("5s".into()),
            ..Layer::default()
        };
        let c = Config::resolve(flags.over(file), Path::new("/srv")).unwrap();
        assert_eq!(c.max_attempts, 2);
        assert_eq!(c.task_limit, crate::engine::DEFAULT_TASK_LIMIT);
        assert_eq!(c.stop_timeout, Duration::from_secs(5));
        assert_eq!(c.db, PathBuf::from("/srv/./.spade/spade.db"));
        assert_eq!(c.log_format, LogFormat::Human);
        assert!(Config::resolve(
            Layer {
                stop_timeout: Some("soon".into()),
                ..Layer::default()
            },
            Path::new("/")
        )
        .is_err());
    }

    #[test]
    fn the_gc_policy_is_off_by_default_and_its_durations_are_checked() {
        let c = Config::resolve(Layer::default(), Path::new("/")).unwrap();
        assert_eq!(
            (c.gc_older_than, c.gc_interval),
            (None, DEFAULT_GC_INTERVAL)
        );
        let c = Config::resolve(
            Layer {
                gc_older_than: Some("90d".into()),
                gc_interval: Some("30m".into()),
                ..Layer::default()
            },
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(c.gc_older_than, Some(Duration::from_secs(90 * 86_400)));
        assert_eq!(c.gc_interval, Duration::from_secs(1800));
        for bad in ["0", "0s", "soon"] {
            let err = Config::resolve(
                Layer {
                    gc_older_than: Some(bad.into()),
                    ..Layer::default()
                },
                Path::new("/"),
            )
            .unwrap_err();
            assert!(
                err.to_string().starts_with(&format!(
                    "invalid gc_older_than `{bad}`: a duration such as 90d"
                )),
                "{err}"
            );
        }
        check(
            "gc_older_than = \"90d\"\ngc_interval = 5\n",
            r#"DIR/spade.toml:2:15: `gc_interval` must be a string, found integer
  |
2 | gc_interval = 5
  |               ^
1 error(s) in the configuration file DIR/spade.toml"#,
        );
    }

    #[test]
    fn a_non_loopback_listen_needs_a_token_from_the_file_and_never_prints_it() {
        let public = || Layer {
            listen: Some("0.0.0.0:65432".into()),
            ..Layer::default()
        };
        let err = Config::resolve(public(), Path::new("/")).unwrap_err();
        assert!(matches!(err, Error::TokenRequired { .. }), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret-token\n").unwrap();
        let c = Config::resolve(
            Layer {
                api_token_file: Some(file),
                ..public()
            },
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(
            c.api_token.as_ref().map(Secret::expose),
            Some("s3cret-token")
        );
        assert!(!format!("{c:?}").contains("s3cret"), "{c:?}");
        let loopback = Config::resolve(Layer::default(), Path::new("/")).unwrap();
        assert_eq!(loopback.listen.to_string(), DEFAULT_LISTEN);
        assert!(loopback.api_token.is_none());
    }
}
