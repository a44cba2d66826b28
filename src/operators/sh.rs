//! `sh>: COMMAND`: runs `/bin/sh` in the project directory with params in the environment,
//! captures output to the task log, and reads stored params back from `$SPADE_STORE`.
//!
//! The command runs under a tiny wrapper whose `EXIT` trap creates the empty file
//! `<task>.<fence>.exit.<code>` before the shell exits. That file is the run's completion journal:
//! when spade is killed after a command finished but before the engine committed its
//! completion, recovery replays the journal instead of running the command a second time
//! (see `executor::replay_journals`).

use super::{failed, json_text, Context, Error, Operator};
use crate::clock::BoxFuture;
use crate::engine::Outcome;
use crate::executor::spawn::{ExitStatus, ProcessSpec};
use crate::expr::JsonMap;
use serde_json::Value as Json;
use std::path::{Path, PathBuf};

pub struct Sh;

/// `$1` is the command; `eval` keeps it a script of its own, exactly as written, while the trap
/// records how it ended. The exit code is in the journal's *name*, so the journal appears
/// complete in one `open(O_CREAT)` (a file written after creation could be found empty), and
/// `:` is a builtin, so the journal costs no extra process.
const WRAPPER: &str =
    r#"trap ': > "$SPADE_EXIT_FILE.$?"' EXIT; spade_command=$1; shift; eval "$spade_command""#;

impl Operator for Sh {
    fn run(&self, ctx: Context) -> BoxFuture<'static, Result<Outcome, Error>> {
        Box::pin(async move {
            let spec = match process_spec(&ctx) {
                Ok(spec) => spec,
                Err(message) => return Ok(failed(message, false)),
            };
            let store = ctx.run_file("store");
            // A fence runs once, so nothing of this run can exist yet except a store file
            // left by a crashed attempt at the same fence before it was spawned.
            remove_if_exists(&store)?;
            let spawned = ctx.spawn(spec)?;
            let status = spawned.exit.await?;
            if let ExitStatus::Code(code) = status {
                ctx.set_journal(journal_path(&ctx.run_file("exit"), code));
            }
            Ok(outcome(status, &store))
        })
    }
}

/// The process for one run, or the task failure when the params cannot make one.
fn process_spec(ctx: &Context) -> Result<ProcessSpec, String> {
    let run = &ctx.run;
    // `${secret:...}` is kept literal by evaluation so that secret values never reach the
    // store or a log; it is resolved here, at spawn time, in the command, in `_env` and in
    // the params evaluation marked as holding secrets.
    let resolve = |text: String| -> Result<String, String> {
        crate::expr::resolve_secrets(&text, &*ctx.secrets).map_err(|e| e.to_string())
    };
    let command = resolve(ctx.command_text())?;
    let mut env: Vec<(String, String)> = Vec::with_capacity(run.params.len() + 4);
    for (key, value) in &run.params {
        if !is_env_name(key) || value.is_null() {
            continue;
        }
        let text = json_text(value);
        let text = if run.secret_keys.contains(key) {
            resolve(text)?
        } else {
            text
        };
        env.push((key.clone(), text));
    }
    if let Some(extra) = ctx.param("_env") {
        let Json::Object(extra) = extra else {
            return Err("`_env` must be a map of names to values".into());
        };
        for (key, value) in extra {
            env.push((key.clone(), resolve(json_text(value))?));
        }
    }
    env.push(("SPADE_STORE".into(), path_text(&ctx.run_file("store"))));
    env.push(("SPADE_EXIT_FILE".into(), path_text(&ctx.run_file("exit"))));
    let mut cwd = ctx.project_dir.clone();
    if let Some(workdir) = ctx.param_text("_workdir") {
        cwd.push(workdir);
    }
    Ok(ProcessSpec {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), WRAPPER.into(), "spade-sh".into(), command],
        env,
        cwd,
        log_path: Some(ctx.run_file("log")),
        passthrough: ctx.foreground,
    })
}

/// Turns an exit status (live, or replayed from the journal) into the run's outcome.
pub fn outcome(status: ExitStatus, store_path: &Path) -> Outcome {
    match status {
        ExitStatus::Code(0) => match read_store(store_path) {
            Ok(store) => Outcome::Succeeded {
                store,
                reset_store: Vec::new(),
                export: JsonMap::new(),
                subtasks: None,
            },
            Err(message) => failed(message, false),
        },
        ExitStatus::Code(code) => failed(format!("command failed with code {code}"), true),
        ExitStatus::Signal(sig) => failed(format!("command killed by signal {sig}"), true),
    }
}

/// `<prefix>.<code>`: the journal a run that exited with `code` leaves.
pub fn journal_path(prefix: &Path, code: i32) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(format!(".{code}"));
    PathBuf::from(name)
}

/// Reads a journal's file name, `<task>.<fence>.exit.<code>`.
pub fn parse_journal_name(
    name: &str,
) -> Option<(crate::ids::TaskId, crate::ids::Fence, ExitStatus)> {
    let (stem, code) = name.rsplit_once(".exit.")?;
    let (task, fence) = stem.split_once('.')?;
    Some((
        crate::ids::TaskId(task.parse().ok()?),
        crate::ids::Fence(fence.parse().ok()?),
        ExitStatus::Code(code.parse().ok()?),
    ))
}

/// Store params a command left in `$SPADE_STORE`: a JSON object, or `key=value` lines whose
/// dotted keys nest (`a.b=c` -> `{a: {b: "c"}}`). A missing or empty file stores nothing.
pub fn read_store(path: &Path) -> Result<JsonMap, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(JsonMap::new()),
        Err(e) => return Err(format!("cannot read $SPADE_STORE {}: {e}", path.display())),
    };
    parse_store(&text)
}

fn parse_store(text: &str) -> Result<JsonMap, String> {
    let trimmed = text.trim();
    if trimmed.starts_with('{') {
        return match serde_json::from_str::<Json>(trimmed) {
            Ok(Json::Object(map)) => Ok(map),
            Ok(_) => Err("$SPADE_STORE must hold a JSON object".into()),
            Err(e) => Err(format!("$SPADE_STORE is not valid JSON: {e}")),
        };
    }
    let mut map = JsonMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!(
                "$SPADE_STORE line {}: expected `key=value`, found `{line}`",
                n + 1
            ));
        };
        let key = key.trim();
        if key.is_empty() || key.split('.').any(str::is_empty) {
            return Err(format!("$SPADE_STORE line {}: invalid key `{key}`", n + 1));
        }
        insert_dotted(&mut map, key, Json::String(value.to_string()));
    }
    Ok(map)
}

/// Sets `a.b.c` in nested objects, replacing non-objects on the way (later lines win).
pub fn insert_dotted(map: &mut JsonMap, key: &str, value: Json) {
    match key.split_once('.') {
        None => {
            map.insert(key.to_string(), value);
        }
        Some((head, rest)) => {
            let slot = map
                .entry(head.to_string())
                .or_insert_with(|| Json::Object(JsonMap::new()));
            if !slot.is_object() {
                *slot = Json::Object(JsonMap::new());
            }
            if let Json::Object(inner) = slot {
                insert_dotted(inner, rest, value);
            }
        }
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`: keys with `.` or `-` cannot be environment variables.
fn is_env_name(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn remove_if_exists(path: &PathBuf) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Io {
            what: "remove",
            path: path.clone(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{context, manual_clock, run};
    use super::*;
    use crate::engine::Event;
    use crate::executor::spawn::{FakeSpawner, TokioSpawner};
    use std::sync::Arc;

    #[test]
    fn env_names() {
        assert!(is_env_name("session_time"));
        assert!(is_env_name("_x1"));
        assert!(!is_env_name("1x"));
        assert!(!is_env_name("a.b"));
        assert!(!is_env_name("a-b"));
        assert!(!is_env_name(""));
    }

    #[test]
    fn store_formats() {
        let check = |text: &str, expect: &str| {
            let got = parse_store(text).map(Json::Object);
            let expect: Result<Json, String> =
                serde_json::from_str(expect).map_err(|e| e.to_string());
            assert_eq!(got.ok(), expect.ok(), "{text}");
        };
        check("", "{}");
        check(
            "a=1\nb.c=x=y\n# comment\n\nb.d=2",
            r#"{"a":"1","b":{"c":"x=y","d":"2"}}"#,
        );
        check(r#"{"n": 1, "o": {"k": [1]}}"#, r#"{"n":1,"o":{"k":[1]}}"#);
        assert!(parse_store("novalue").is_err());
        assert!(parse_store("a..b=1").is_err());
        assert!(parse_store("[1]").is_err());
    }

    #[tokio::test]
    async fn params_travel_in_env_and_command_is_not_pasted() {
        let dir = tempfile::tempdir().unwrap();
        let params = r#"{"name": "it's; $(rm -rf /)", "n": 3, "obj": {"k": "v"}, "a.b": "skip", "_env": {"EXTRA": "e"}}"#;
        let r = run("sh", "echo run".into(), params);
        let fake = FakeSpawner::new();
        let (ctx, mut rx) = context(dir.path(), r, Arc::new(fake.clone()), manual_clock());
        let outcome = Sh.run(ctx).await.unwrap();
        assert!(matches!(outcome, Outcome::Succeeded { .. }), "{outcome:?}");
        let spec = fake.spawned().pop().unwrap();
        assert_eq!(spec.program, PathBuf::from("/bin/sh"));
        assert_eq!(spec.args.last().unwrap(), "echo run");
        let env: std::collections::HashMap<_, _> = spec.env.into_iter().collect();
        assert_eq!(env["name"], "it's; $(rm -rf /)");
        assert_eq!(env["n"], "3");
        assert_eq!(env["obj"], r#"{"k":"v"}"#);
        assert_eq!(env["EXTRA"], "e");
        assert!(!env.contains_key("a.b"));
        assert!(env["SPADE_STORE"].ends_with("7.1.store"));
        assert!(matches!(rx.try_recv(), Ok(Event::Spawned { .. })));
    }

    #[tokio::test]
    async fn real_shell_codes_store_and_journal() {
        let dir = tempfile::tempdir().unwrap();
        let clock = manual_clock();
        let cmd = r#"echo "hello $who"; printf 'k.x=1\nk.y=%s\n' "$who" > "$SPADE_STORE""#;
        let r = run("sh", cmd.into(), r#"{"who": "world"}"#);
        let (ctx, _rx) = context(dir.path(), r, Arc::new(TokioSpawner), clock.clone());
        let journal = ctx.run_file("exit");
        let log = ctx.run_file("log");
        let slot = ctx.journal.clone();
        match Sh.run(ctx).await.unwrap() {
            Outcome::Succeeded { store, .. } => {
                assert_eq!(
                    Json::Object(store),
                    serde_json::json!({"k": {"x": "1", "y": "world"}})
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(journal_path(&journal, 0).exists());
        assert_eq!(
            slot.lock().unwrap().clone(),
            Some(journal_path(&journal, 0))
        );
        assert_eq!(std::fs::read_to_string(log).unwrap(), "hello world\n");

        let r = run("sh", "exit 3".into(), "{}");
        let (ctx, _rx) = context(dir.path(), r, Arc::new(TokioSpawner), clock);
        match Sh.run(ctx).await.unwrap() {
            Outcome::Failed {
                message, retryable, ..
            } => {
                assert_eq!(message, "command failed with code 3");
                assert!(retryable);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(journal_path(&journal, 3).exists());
    }

    #[tokio::test]
    async fn secrets_resolve_at_spawn_time_only() {
        struct Vault;
        impl crate::expr::SecretProvider for Vault {
            fn secret(&self, name: &str) -> Option<String> {
                (name == "db.password").then(|| "hunter2".to_string())
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let params = r#"{"pw": "${secret:db.password}", "plain": "${secret:db.password}", "_env": {"PGPASS": "${secret:db.password}"}}"#;
        let mut r = run("sh", "login ${secret:db.password}".into(), params);
        r.secret_keys = vec!["pw".into()];
        let fake = FakeSpawner::new();
        let (mut ctx, _rx) = context(dir.path(), r, Arc::new(fake.clone()), manual_clock());
        ctx.secrets = Arc::new(Vault);
        Sh.run(ctx).await.unwrap();
        let spec = fake.spawned().pop().unwrap();
        assert_eq!(spec.args.last().unwrap(), "login hunter2");
        let env: std::collections::HashMap<_, _> = spec.env.into_iter().collect();
        assert_eq!(env["pw"], "hunter2");
        assert_eq!(env["PGPASS"], "hunter2");
        // Only params evaluation marked as secret are resolved.
        assert_eq!(env["plain"], "${secret:db.password}");

        let r = run("sh", "echo ${secret:missing}".into(), "{}");
        let (mut ctx, _rx) = context(dir.path(), r, Arc::new(fake.clone()), manual_clock());
        ctx.secrets = Arc::new(Vault);
        match Sh.run(ctx).await.unwrap() {
            Outcome::Failed {
                message, retryable, ..
            } => {
                assert!(message.contains("missing"), "{message}");
                assert!(!retryable);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
