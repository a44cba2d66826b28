//! The operator protocol (version 1) between spade and an operator executable: a JSON request
//! file in, a JSON result file out, output to the task log, the exit code deciding failure.
//! `py>` speaks it through its embedded runner; plugin executables speak it directly.
//! The reference is `docs/operators.md`.
//!
//! Secrets: the request lists the values of the `${secret:...}` references the task makes (and,
//! for plugins, resolves them in the params that hold them); the file is readable by its owner
//! only and removed when the process ends. Whatever comes back (error message, store, export,
//! generated tasks) has those values replaced by `***` before the engine stores it.

use super::{failed, json_text, subtasks, Context, Error};
use crate::engine::Outcome;
use crate::executor::spawn::{ExitStatus, ProcessSpec};
use crate::expr::{JsonMap, SecretProvider};
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

/// The protocol version spade speaks, sent as `protocol` in every request.
pub(crate) const VERSION: u64 = 1;

/// Secret values shorter than this are not masked in results: masking `a` or `42` everywhere
/// would corrupt the data more than it protects.
const MIN_MASKED_LEN: usize = 4;

/// How to start the executable of one run.
pub(crate) struct Invocation {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<String>,
    /// The params sent in the request (the run's evaluated params, possibly with defaults).
    pub(crate) params: JsonMap,
    /// Resolve `${secret:...}` in the command and in the params that hold references (plugins);
    /// `py>` keeps them literal, as Digdag does, and resolves only `_env`.
    pub(crate) resolve_params: bool,
    /// Environment variables of the operator itself (`PYTHONUNBUFFERED`); `_env` overrides them.
    pub(crate) extra_env: Vec<(String, String)>,
}

/// How one run of an executable ended.
// Made once per run and matched once: boxing the result would buy nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Ran {
    /// The process never started: the task cannot make a request (a missing secret, a bad
    /// `_env`). The message is the task's failure.
    Refused(String),
    Exited {
        status: ExitStatus,
        /// The result file: `Ok(None)` when the executable wrote none, `Err` when it is invalid.
        reply: Result<Option<Reply>, String>,
    },
}

/// A result file, parsed, with secret values masked.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Reply {
    pub(crate) store: JsonMap,
    pub(crate) reset_store: Vec<String>,
    pub(crate) export: JsonMap,
    /// A `^sub` body: a map of `+name: {operator: ...}` tasks and group directives.
    pub(crate) subtasks: Option<JsonMap>,
    pub(crate) error: Option<ReplyError>,
}

/// `error` of a result: the failure's message, whether `_retry` applies, and properties that
/// `_error` tasks see as `${error.*}`.
#[derive(Debug, PartialEq)]
pub(crate) struct ReplyError {
    pub(crate) message: String,
    pub(crate) retryable: bool,
    pub(crate) properties: JsonMap,
}

/// Writes the request, runs the executable in `<project>/<_workdir>` with its output going to
/// the task log, and reads the result back. Cancel-safe: dropping the future kills the
/// process group and removes the request file.
pub(crate) async fn run(ctx: &Context, inv: Invocation) -> Result<Ran, Error> {
    let recorder = Recorder::new(&*ctx.secrets);
    let prepared = match prepare(ctx, &inv, &recorder) {
        Ok(p) => p,
        Err(message) => return Ok(Ran::Refused(message)),
    };
    let secrets = recorder.into_values();
    ctx.ensure_run_dir()?;
    let request_path = ctx.run_file("request.json");
    let result_path = ctx.run_file("result.json");
    remove_if_exists(&result_path)?;
    let request = request_json(ctx, prepared.command, prepared.params, &secrets);
    let guard = RemoveOnDrop(request_path.clone());
    write_private(&request_path, &request)?;
    let mut env = inv.extra_env;
    env.extend(prepared.env);
    env.push(("SPADE_OPERATOR_PROTOCOL".into(), VERSION.to_string()));
    env.push(("SPADE_OPERATOR_REQUEST".into(), path_text(&request_path)));
    env.push(("SPADE_OPERATOR_RESULT".into(), path_text(&result_path)));
    let spec = ProcessSpec {
        program: inv.program,
        args: inv.args,
        env,
        cwd: prepared.workdir,
        log_path: Some(ctx.run_file("log")),
        passthrough: true,
    };
    let spawned = ctx.spawn(spec)?;
    let status = spawned.exit.await?;
    drop(guard);
    let mask = Mask::new(secrets.values());
    let reply = read_reply(&result_path).map(|r| r.map(|r| mask.reply(r)));
    remove_if_exists(&result_path)?;
    Ok(Ran::Exited {
        status,
        reply: reply.map_err(|e| mask.text(&e)),
    })
}

/// The outcome of a run for an executable that follows the protocol's plain rules; `what`
/// names it in messages (`operator `slack>``).
pub(crate) fn outcome(what: &str, ran: Ran) -> Outcome {
    match ran {
        Ran::Refused(message) => failed(message, false),
        Ran::Exited {
            status: ExitStatus::Code(0),
            reply,
        } => match reply {
            Ok(reply) => succeeded(reply.unwrap_or_default()),
            Err(e) => failed(format!("{what} wrote an invalid result: {e}"), false),
        },
        Ran::Exited { status, reply } => {
            let ended = ended(what, status);
            match reply {
                Ok(Some(Reply {
                    error: Some(error), ..
                })) => failure(format!("{ended}: {}", error.message), error),
                Ok(_) => failed(ended, true),
                Err(e) => failed(format!("{ended} (and wrote an invalid result: {e})"), true),
            }
        }
    }
}

/// `operator `x>` failed with code 3`, `... was killed by signal 9`.
pub(crate) fn ended(what: &str, status: ExitStatus) -> String {
    match status {
        ExitStatus::Code(code) => format!("{what} failed with code {code}"),
        ExitStatus::Signal(sig) => format!("{what} was killed by signal {sig}"),
    }
}

/// A failed outcome carrying a result's error properties, with `message` as the task's error.
pub(crate) fn failure(message: String, error: ReplyError) -> Outcome {
    let mut properties = error.properties;
    properties.insert("message".into(), message.clone().into());
    Outcome::Failed {
        message,
        error: properties,
        retryable: error.retryable,
    }
}

/// A successful outcome from a result.
pub(crate) fn succeeded(reply: Reply) -> Outcome {
    Outcome::Succeeded {
        store: reply.store,
        reset_store: reply.reset_store,
        export: reply.export,
        // Strings become templates again: `${...}` in generated tasks is evaluated when they
        // run, as Digdag evaluates a generated config.
        subtasks: reply
            .subtasks
            .filter(|m| !m.is_empty())
            .map(|m| subtasks::from_json(&Json::Object(m))),
    }
}

/// What the request and the process need, with secrets resolved where they belong.
struct Prepared {
    command: Json,
    params: JsonMap,
    env: Vec<(String, String)>,
    workdir: PathBuf,
}

fn prepare(ctx: &Context, inv: &Invocation, secrets: &Recorder<'_>) -> Result<Prepared, String> {
    let mut params = inv.params.clone();
    let mut command = ctx.run.command.clone();
    if inv.resolve_params {
        command = resolve_json(&command, secrets)?;
        for key in &ctx.run.secret_keys {
            if key == "_env" {
                continue;
            }
            if let Some(v) = params.get_mut(key) {
                *v = resolve_json(v, secrets)?;
            }
        }
    }
    let mut env = Vec::new();
    if let Some(extra) = ctx.param("_env") {
        let Json::Object(extra) = extra else {
            return Err("`_env` must be a map of names to values".into());
        };
        for (key, value) in extra {
            let text = crate::expr::resolve_secrets(&json_text(value), secrets)
                .map_err(|e| e.to_string())?;
            env.push((key.clone(), text));
        }
    }
    let mut workdir = ctx.project_dir.clone();
    if let Some(dir) = ctx.param_text("_workdir") {
        workdir.push(dir);
    }
    Ok(Prepared {
        command,
        params,
        env,
        workdir: absolute(&workdir),
    })
}

/// The request document (see `docs/operators.md`).
fn request_json(
    ctx: &Context,
    command: Json,
    params: JsonMap,
    secrets: &BTreeMap<String, String>,
) -> Json {
    let run = &ctx.run;
    let param = |key: &str| params.get(key).cloned().unwrap_or(Json::Null);
    let workdir = match ctx.param_text("_workdir") {
        Some(dir) => ctx.project_dir.join(dir),
        None => ctx.project_dir.clone(),
    };
    json!({
        "protocol": VERSION,
        "operator": run.operator,
        "command": command,
        "task": {
            "name": run.full_name,
            "id": run.task.0,
            "fence": run.fence.0,
            "retry_count": run.retry_count,
        },
        "session": {
            "id": param("session_id"),
            "uuid": param("session_uuid"),
            "time": param("session_time"),
            "timezone": param("timezone"),
        },
        "attempt": {
            "id": run.attempt.0,
            "name": param("retry_attempt_name"),
        },
        "project_dir": path_text(&absolute(&ctx.project_dir)),
        "workdir": path_text(&absolute(&workdir)),
        "secret_keys": run.secret_keys,
        "secrets": secrets,
        "params": params,
    })
}

/// Resolves `${secret:...}` in every string of a JSON value, keys included (http> style).
fn resolve_json(value: &Json, secrets: &dyn SecretProvider) -> Result<Json, String> {
    let text = |s: &str| crate::expr::resolve_secrets(s, secrets).map_err(|e| e.to_string());
    Ok(match value {
        Json::String(s) => Json::String(text(s)?),
        Json::Array(items) => Json::Array(
            items
                .iter()
                .map(|v| resolve_json(v, secrets))
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(map) => {
            let mut out = JsonMap::new();
            for (k, v) in map {
                out.insert(text(k)?, resolve_json(v, secrets)?);
            }
            Json::Object(out)
        }
        other => other.clone(),
    })
}

/// A secret provider that remembers every value it hands out, so the request can list them
/// and results can be masked.
struct Recorder<'a> {
    inner: &'a dyn SecretProvider,
    seen: Mutex<BTreeMap<String, String>>,
}

impl<'a> Recorder<'a> {
    fn new(inner: &'a dyn SecretProvider) -> Recorder<'a> {
        Recorder {
            inner,
            seen: Mutex::new(BTreeMap::new()),
        }
    }

    fn into_values(self) -> BTreeMap<String, String> {
        self.seen
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl SecretProvider for Recorder<'_> {
    fn secret(&self, name: &str) -> Option<String> {
        let value = self.inner.secret(name)?;
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string(), value.clone());
        Some(value)
    }
}

/// Replaces secret values by `***` in text and JSON, longest value first (so a secret that
/// contains another is masked whole).
pub(crate) struct Mask {
    values: Vec<String>,
}

impl Mask {
    pub(crate) fn new<'v>(values: impl IntoIterator<Item = &'v String>) -> Mask {
        let mut values: Vec<String> = values
            .into_iter()
            .filter(|v| v.chars().count() >= MIN_MASKED_LEN)
            .cloned()
            .collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Mask { values }
    }

    pub(crate) fn text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), "***");
            }
        }
        out
    }

    fn json(&self, value: Json) -> Json {
        match value {
            Json::String(s) => Json::String(self.text(&s)),
            Json::Array(items) => Json::Array(items.into_iter().map(|v| self.json(v)).collect()),
            Json::Object(map) => Json::Object(self.map(map)),
            other => other,
        }
    }

    fn map(&self, map: JsonMap) -> JsonMap {
        map.into_iter()
            .map(|(k, v)| (self.text(&k), self.json(v)))
            .collect()
    }

    fn reply(&self, reply: Reply) -> Reply {
        if self.values.is_empty() {
            return reply;
        }
        Reply {
            store: self.map(reply.store),
            reset_store: reply.reset_store,
            export: self.map(reply.export),
            subtasks: reply.subtasks.map(|m| self.map(m)),
            error: reply.error.map(|e| ReplyError {
                message: self.text(&e.message),
                retryable: e.retryable,
                properties: self.map(e.properties),
            }),
        }
    }
}

/// Reads a result file; a missing or empty file is no result.
fn read_reply(path: &Path) -> Result<Option<Reply>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    parse_reply(&text).map(Some)
}

/// Parses a result document (see `docs/operators.md`); unknown keys are ignored, so later
/// versions can add some.
pub(crate) fn parse_reply(text: &str) -> Result<Reply, String> {
    let doc: Json = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let Json::Object(mut doc) = doc else {
        return Err("the result must be a JSON object".into());
    };
    if let Some(version) = doc.get("protocol") {
        match version.as_u64() {
            Some(v) if v <= VERSION => {}
            _ => {
                return Err(format!(
                    "it speaks protocol {version}, spade speaks version {VERSION}"
                ))
            }
        }
    }
    let mut object = |key: &str| -> Result<JsonMap, String> {
        match doc.remove(key) {
            None | Some(Json::Null) => Ok(JsonMap::new()),
            Some(Json::Object(map)) => Ok(map),
            Some(other) => Err(format!("`{key}` must be an object, found `{other}`")),
        }
    };
    let store = object("store")?;
    let export = object("export")?;
    let subtasks = match doc.remove("subtasks") {
        None | Some(Json::Null) => None,
        Some(Json::Object(map)) => Some(map),
        Some(other) => {
            return Err(format!(
                "`subtasks` must be an object of tasks, found `{other}`"
            ))
        }
    };
    let reset_store = match doc.remove("reset_store") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(items)) => items
            .into_iter()
            .map(|k| match k {
                Json::String(s) if !s.is_empty() => Ok(s),
                other => Err(format!(
                    "`reset_store` must list dotted keys, found `{other}`"
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(format!(
                "`reset_store` must be a list of keys, found `{other}`"
            ))
        }
    };
    let error = match doc.remove("error") {
        None | Some(Json::Null) => None,
        Some(Json::String(message)) => Some(ReplyError {
            message,
            retryable: true,
            properties: JsonMap::new(),
        }),
        Some(Json::Object(mut props)) => {
            let message = match props.remove("message") {
                Some(Json::String(s)) => s,
                Some(other) => json_text(&other),
                None => String::new(),
            };
            let retryable = match props.remove("retryable") {
                None => true,
                Some(Json::Bool(b)) => b,
                Some(other) => {
                    return Err(format!(
                        "`error.retryable` must be true or false, found `{other}`"
                    ))
                }
            };
            Some(ReplyError {
                message,
                retryable,
                properties: props,
            })
        }
        Some(other) => {
            return Err(format!(
                "`error` must be a message or an object, found `{other}`"
            ))
        }
    };
    Ok(Reply {
        store,
        reset_store,
        export,
        subtasks,
        error,
    })
}

/// Creates `path` readable by its owner only (the request may hold secret values).
fn write_private(path: &Path, doc: &Json) -> Result<(), Error> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    remove_if_exists(path)?;
    let io = |source| Error::Io {
        what: "write",
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    let text = serde_json::to_vec(doc).map_err(|e| io(e.into()))?;
    file.write_all(&text).map_err(io)
}

/// Removes the request file when the run ends, however it ends (also when the run's future is
/// dropped at a timeout or a kill).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn remove_if_exists(path: &Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Io {
            what: "remove",
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{context, manual_clock, run};
    use super::*;
    use crate::executor::spawn::TokioSpawner;
    use std::sync::Arc;

    struct Vault;
    impl SecretProvider for Vault {
        fn secret(&self, name: &str) -> Option<String> {
            (name == "api.key").then(|| "k-12345".to_string())
        }
    }

    #[test]
    fn results_parse_with_defaults_and_reject_wrong_shapes() {
        let ok = |text: &str| parse_reply(text).unwrap();
        assert_eq!(ok("{}"), Reply::default());
        let r = ok(
            r#"{"protocol": 1, "store": {"a": {"b": 1}}, "reset_store": ["a.b"],
            "export": {"e": true}, "subtasks": {"+x": {"echo>": "${e}"}}, "later": 1}"#,
        );
        assert_eq!(Json::Object(r.store), json!({"a": {"b": 1}}));
        assert_eq!(r.reset_store, ["a.b"]);
        assert_eq!(Json::Object(r.export), json!({"e": true}));
        assert!(r.subtasks.is_some());
        let e = ok(r#"{"error": "boom"}"#).error.unwrap();
        assert_eq!((e.message.as_str(), e.retryable), ("boom", true));
        let e = ok(r#"{"error": {"message": "no", "retryable": false, "code": 7}}"#)
            .error
            .unwrap();
        assert_eq!((e.message.as_str(), e.retryable), ("no", false));
        assert_eq!(Json::Object(e.properties), json!({"code": 7}));
        for (text, why) in [
            ("[]", "must be a JSON object"),
            ("{", "not JSON"),
            (r#"{"protocol": 2}"#, "spade speaks version 1"),
            (r#"{"store": [1]}"#, "`store` must be an object"),
            (r#"{"subtasks": "x"}"#, "`subtasks` must be an object"),
            (r#"{"reset_store": [1]}"#, "dotted keys"),
            (r#"{"error": 3}"#, "`error` must be"),
            (r#"{"error": {"retryable": "yes"}}"#, "`error.retryable`"),
        ] {
            let got = parse_reply(text).unwrap_err();
            assert!(got.contains(why), "{text}: {got}");
        }
    }

    #[test]
    fn masks_replace_secret_values_everywhere_longest_first() {
        let values = ["abcd".to_string(), "abcdef".to_string(), "xy".to_string()];
        let mask = Mask::new(&values);
        assert_eq!(mask.text("1abcdef2abcd3xy"), "1***2***3xy");
        let reply = Reply {
            store: serde_json::from_str(r#"{"k": ["abcd"], "abcd": 1}"#).unwrap(),
            error: Some(ReplyError {
                message: "bad abcdef".into(),
                retryable: true,
                properties: JsonMap::new(),
            }),
            ..Reply::default()
        };
        let masked = mask.reply(reply);
        assert_eq!(Json::Object(masked.store), json!({"k": ["***"], "***": 1}));
        assert_eq!(masked.error.unwrap().message, "bad ***");
    }

    /// The request a real process reads: fields, secrets resolved where they are declared, the
    /// file private and gone after the run.
    #[tokio::test]
    async fn the_request_holds_the_run_and_its_declared_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let params = r#"{"who": "me", "key": "${secret:api.key}", "plain": "${secret:api.key}",
            "session_time": "2026-01-01T00:00:00+00:00", "session_id": 5,
            "_env": {"KEY": "${secret:api.key}"}}"#;
        let mut r = run("probe", "do ${secret:api.key}".into(), params);
        r.secret_keys = vec!["key".into(), "_env".into()];
        let (mut ctx, _rx) = context(dir.path(), r, Arc::new(TokioSpawner), manual_clock());
        ctx.secrets = Arc::new(Vault);
        let script = r#"cp "$SPADE_OPERATOR_REQUEST" seen.json
            stat -c %a "$SPADE_OPERATOR_REQUEST" > mode
            echo "$KEY $SPADE_OPERATOR_PROTOCOL" > env
            printf '{"store": {"got": "%s"}}' "$KEY" > "$SPADE_OPERATOR_RESULT""#;
        let invocation = Invocation {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            params: ctx.run.params.clone(),
            resolve_params: true,
            extra_env: Vec::new(),
        };
        let request_path = ctx.run_file("request.json");
        let ran = super::run(&ctx, invocation).await.unwrap();
        let Ran::Exited { status, reply } = ran else {
            panic!("refused")
        };
        assert_eq!(status, ExitStatus::Code(0));
        assert_eq!(
            Json::Object(reply.unwrap().unwrap().store),
            json!({"got": "***"})
        );
        assert!(!request_path.exists());
        let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
        assert_eq!(read("mode").trim(), "600");
        assert_eq!(read("env").trim(), "k-12345 1");
        let seen: Json = serde_json::from_str(&read("seen.json")).unwrap();
        assert_eq!(seen["protocol"], 1);
        assert_eq!(seen["operator"], "probe");
        assert_eq!(seen["command"], "do k-12345");
        assert_eq!(seen["params"]["key"], "k-12345");
        // Only params that hold a declared reference are resolved.
        assert_eq!(seen["params"]["plain"], "${secret:api.key}");
        assert_eq!(seen["secrets"], json!({"api.key": "k-12345"}));
        assert_eq!(seen["secret_keys"], json!(["key", "_env"]));
        assert_eq!(
            seen["task"],
            json!({"name": "+wf+probe", "id": 7, "fence": 1, "retry_count": 0})
        );
        assert_eq!(seen["session"]["id"], 5);
        assert_eq!(seen["session"]["time"], "2026-01-01T00:00:00+00:00");
        assert_eq!(seen["attempt"], json!({"id": 1, "name": null}));
        assert_eq!(seen["workdir"], seen["project_dir"]);
    }

    #[tokio::test]
    async fn a_missing_secret_refuses_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = run("probe", "x".into(), r#"{"k": "${secret:nope}"}"#);
        r.secret_keys = vec!["k".into()];
        let (ctx, _rx) = context(dir.path(), r, Arc::new(TokioSpawner), manual_clock());
        let invocation = Invocation {
            program: "/bin/true".into(),
            args: Vec::new(),
            params: ctx.run.params.clone(),
            resolve_params: true,
            extra_env: Vec::new(),
        };
        match super::run(&ctx, invocation).await.unwrap() {
            Ran::Refused(message) => assert!(message.contains("nope"), "{message}"),
            Ran::Exited { .. } => panic!("ran without its secret"),
        }
    }

    #[test]
    fn outcomes_follow_the_exit_code() {
        let exited = |code, reply: Option<&str>| Ran::Exited {
            status: ExitStatus::Code(code),
            reply: Ok(reply.map(|r| parse_reply(r).unwrap())),
        };
        let what = "operator `x>`";
        assert!(matches!(
            outcome(
                what,
                exited(0, Some(r#"{"subtasks": {"+a": {"nop>": null}}}"#))
            ),
            Outcome::Succeeded {
                subtasks: Some(_),
                ..
            }
        ));
        // The exit code decides: an error in the result of a successful run is ignored, and
        // a failure without one still fails, retryable.
        assert!(matches!(
            outcome(what, exited(0, Some(r#"{"error": "x"}"#))),
            Outcome::Succeeded { .. }
        ));
        match outcome(what, exited(2, None)) {
            Outcome::Failed {
                message, retryable, ..
            } => {
                assert_eq!(message, "operator `x>` failed with code 2");
                assert!(retryable);
            }
            other => panic!("{other:?}"),
        }
        match outcome(
            what,
            Ran::Exited {
                status: ExitStatus::Signal(9),
                reply: Ok(None),
            },
        ) {
            Outcome::Failed { message, .. } => {
                assert_eq!(message, "operator `x>` was killed by signal 9");
            }
            other => panic!("{other:?}"),
        }
    }
}
