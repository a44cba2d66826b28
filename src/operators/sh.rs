//! `sh>: COMMAND`: runs `/bin/sh` in the project directory with params in the environment,
//! captures output to the task log, and reads stored params back from `$SPADE_STORE`.
//!
//! The completion journal: when spade is killed after a command finished but before the engine
//! committed its completion, recovery replays the journal instead of running the command a
//! second time (see `executor::replay_journals`). Every run appends `<task> <fence> <code>` to
//! the attempt's one journal file (`<run dir>/journal`) twice: the wrapper's `EXIT` trap writes
//! it inside the shell, before spade can even learn that the command finished, and spade writes
//! it again as soon as it reaps the shell, so a command that replaces the trap with its own
//! (`trap cleanup EXIT`) or `exec`s another program is journaled all the same. An append to an
//! existing file costs the shell one `open` and one `write` (no file is created per run).

use super::{failed, json_text, Context, Error, Operator};
use crate::clock::BoxFuture;
use crate::engine::Outcome;
use crate::executor::spawn::{ExitStatus, ProcessSpec};
use crate::expr::JsonMap;
use crate::ids::{Fence, TaskId};
use serde_json::Value as Json;
use std::path::{Path, PathBuf};

pub struct Sh;

/// `$1` is the run's journal key (`<task> <fence>`, a shell variable: `SPADE_RUN` in the
/// environment is the run token that proves which processes are the run's), `$2` the command;
/// `eval` keeps it a script of its own, exactly as written, while the trap records how it
/// ended. `printf` is a builtin and writes its line in one `write` to a file opened for
/// appending, so concurrent runs never interleave and a line is whole or absent.
const WRAPPER: &str = r#"spade_run=$1; spade_command=$2; shift 2; trap 'printf "%s %s\n" "$spade_run" "$?" >> "$SPADE_JOURNAL"' EXIT; eval "$spade_command""#;

/// [`WRAPPER`] for a command that could take the wrapper's `EXIT` trap away (it sets a trap of
/// its own, `exec`s, or sources a file that might): it runs in a subshell, so its trap is the
/// subshell's and the wrapper's still writes the journal after it. The subshell costs a fork,
/// which is why other commands run without one. A stop's SIGTERM (or SIGINT, SIGHUP) reaches
/// the whole group: the wrapper only notes it, so it outlives a command that traps the signal
/// and keeps running, and when the subshell died of that signal the wrapper dies of it too, as
/// the shell would that ran the command without a subshell (the subshell's traps start from
/// the defaults, so the command sees the signal as it would without the wrapper).
const WRAPPER_ISOLATED: &str = r#"spade_run=$1; spade_command=$2; shift 2; trap 'printf "%s %s\n" "$spade_run" "$?" >> "$SPADE_JOURNAL"' EXIT; spade_signal=; trap 'spade_signal=TERM' TERM; trap 'spade_signal=INT' INT; trap 'spade_signal=HUP' HUP; (eval "$spade_command"); spade_status=$?; case $spade_signal:$spade_status in TERM:143|INT:130|HUP:129) trap - EXIT "$spade_signal"; kill -s "$spade_signal" $$;; esac; exit "$spade_status""#;

/// Whether a command's own text could replace or skip the wrapper's `EXIT` trap. Programs and
/// scripts it runs are processes of their own and cannot; `trap`, `exec`, `.` and `source` in
/// the text itself can. A false positive only costs the subshell's fork.
fn needs_isolation(command: &str) -> bool {
    command
        .split(|c: char| c.is_whitespace() || ";&|()`{}".contains(c))
        .map(|word| word.trim_matches(|c| c == '"' || c == '\''))
        .any(|word| matches!(word, "trap" | "exec" | "." | "source"))
}

/// The attempt's completion journal in its run directory.
pub fn journal_file(run_dir: &Path) -> PathBuf {
    run_dir.join("journal")
}

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
                append_journal(&ctx, code);
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
    env.push((
        "SPADE_JOURNAL".into(),
        path_text(&journal_file(&ctx.run_dir)),
    ));
    let mut cwd = ctx.project_dir.clone();
    if let Some(workdir) = ctx.param_text("_workdir") {
        cwd.push(workdir);
    }
    Ok(ProcessSpec {
        program: "/bin/sh".into(),
        args: vec![
            "-c".into(),
            if needs_isolation(&command) {
                WRAPPER_ISOLATED
            } else {
                WRAPPER
            }
            .into(),
            "spade-sh".into(),
            format!("{} {}", run.task, run.fence),
            command,
        ],
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

/// spade's own journal line for a run it reaped, written before the outcome goes to the
/// engine: it covers commands whose own `EXIT` trap replaced the wrapper's. A failure to write
/// costs only the crash protection of this run, so it is logged, not fatal.
fn append_journal(ctx: &Context, code: i32) {
    ctx.journal
        .append(&format!("{} {} {code}\n", ctx.run.task, ctx.run.fence));
}

/// Journals a run's process (`<task> <fence> spawned <pid> <pgid>`) as soon as it exists, so
/// that the store may learn of it with the run's next transaction instead of one of its own:
/// a crash before that commit replays the line (`read_spawns`) and recovery kills the group
/// as if the store had always known it. Spades before this line skip it (not three fields).
pub fn journal_spawn(journal: &Journal, task: TaskId, fence: Fence, pid: u32, pgid: u32) {
    journal.append(&format!("{task} {fence} spawned {pid} {pgid}\n"));
}

/// spade's side of the attempt's completion journal ([`journal_file`]): opened on the first
/// line and kept open by the driver for the rest of its drive, so each line costs one
/// `write` instead of an `open`, a `write` and a `close`. The driver removes replayed journals
/// before it starts any run, so the file this handle appends to is the one a replay reads.
/// The wrappers in the shells open the same path for their own line.
pub struct Journal {
    path: PathBuf,
    file: std::sync::Mutex<Option<std::fs::File>>,
    /// The run directory is known to exist (made by a run of this drive): later runs skip
    /// the `mkdir` and `stat` of `create_dir_all`.
    dir_made: std::sync::atomic::AtomicBool,
}

impl Journal {
    pub fn new(run_dir: &Path) -> Journal {
        Journal {
            path: journal_file(run_dir),
            file: std::sync::Mutex::new(None),
            dir_made: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether this journal lives in `run_dir` (the drive's own run directory).
    pub fn path_is_in(&self, run_dir: &Path) -> bool {
        self.path.parent() == Some(run_dir)
    }

    /// Makes the run directory (the journal's) unless a run of this drive already did.
    pub fn ensure_dir(&self) -> std::io::Result<()> {
        use std::sync::atomic::Ordering;
        if self.dir_made.load(Ordering::Relaxed) {
            return Ok(());
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        self.dir_made.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// One whole line appended in one `write` (`O_APPEND`: concurrent writers never
    /// interleave).
    pub fn append(&self, line: &str) {
        use std::io::Write as _;
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if file.is_none() {
            match std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&self.path)
            {
                Ok(f) => *file = Some(f),
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot open the completion journal");
                    return;
                }
            }
        }
        if let Some(f) = file.as_mut() {
            if let Err(e) = f.write_all(line.as_bytes()) {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot append to the completion journal");
                // Opened again for the next line, in case the file was replaced.
                *file = None;
            }
        }
    }
}

/// The processes journaled by [`journal_spawn`], in file order; lines cut short are skipped.
pub fn read_spawns(path: &Path) -> Vec<(TaskId, Fence, u32, u32)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let task = fields.next()?.parse().ok()?;
            let fence = fields.next()?.parse().ok()?;
            (fields.next()? == "spawned").then_some(())?;
            let pid = fields.next()?.parse().ok()?;
            let pgid = fields.next()?.parse().ok()?;
            fields
                .next()
                .is_none()
                .then_some((TaskId(task), Fence(fence), pid, pgid))
        })
        .collect()
}

/// The completions recorded in an attempt's journal, in file order; lines cut short by a
/// crash (or written by something else) are skipped.
pub fn read_journal(path: &Path) -> Vec<(crate::ids::TaskId, crate::ids::Fence, ExitStatus)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let task = fields.next()?.parse().ok()?;
            let fence = fields.next()?.parse().ok()?;
            let code = fields.next()?.parse().ok()?;
            fields.next().is_none().then_some((
                crate::ids::TaskId(task),
                crate::ids::Fence(fence),
                ExitStatus::Code(code),
            ))
        })
        .collect()
}

/// Reads a journal file name of spade before schema 6, `<task>.<fence>.exit.<code>` (a run dir
/// left by a crash of an older spade is still replayed).
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

    #[test]
    fn one_journal_handle_per_drive_appends_whole_lines_beside_the_shells() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(dir.path());
        journal_spawn(&journal, TaskId(3), Fence(1), 10, 10);
        journal.append("3 1 0\n");
        // A shell's own line goes to the same file between spade's.
        std::fs::OpenOptions::new()
            .append(true)
            .open(journal_file(dir.path()))
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"4 1 0\n"))
            .unwrap();
        journal.append("4 1 0\n");
        let text = std::fs::read_to_string(journal_file(dir.path())).unwrap();
        assert_eq!(text, "3 1 spawned 10 10\n3 1 0\n4 1 0\n4 1 0\n");
        assert_eq!(
            read_spawns(&journal_file(dir.path())),
            vec![(TaskId(3), Fence(1), 10, 10)]
        );
    }
    use super::super::testkit::{context, manual_clock, run};
    use super::*;
    use crate::engine::Event;
    use crate::executor::spawn::{FakeSpawner, Spawner as _, TokioSpawner};
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
        let journal = journal_file(&ctx.run_dir);
        let log = ctx.run_file("log");
        match Sh.run(ctx).await.unwrap() {
            Outcome::Succeeded { store, .. } => {
                assert_eq!(
                    Json::Object(store),
                    serde_json::json!({"k": {"x": "1", "y": "world"}})
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        // The process (written once the spawn returned, so a quick command's trap may come
        // first), the trap's line and spade's own.
        let text = std::fs::read_to_string(&journal).unwrap();
        let (spawned, ended): (Vec<&str>, Vec<&str>) =
            text.lines().partition(|l| l.starts_with("7 1 spawned "));
        assert_eq!(spawned.len(), 1, "{text}");
        assert_eq!(ended, ["7 1 0", "7 1 0"], "{text}");
        let spawns = read_spawns(&journal);
        assert_eq!(spawns.len(), 1);
        assert_eq!((spawns[0].0, spawns[0].1), (TaskId(7), Fence(1)));
        assert_eq!(
            read_journal(&journal).len(),
            2,
            "spawn lines are not completions"
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
        // The spawn line may land after the trap's line here too (replay matches them by
        // task and fence, not by order).
        let text = std::fs::read_to_string(&journal).unwrap();
        let completions: Vec<&str> = text.lines().filter(|l| !l.contains(" spawned ")).collect();
        assert!(completions.ends_with(&["7 1 3", "7 1 3"]), "{text}");
        assert_eq!(
            read_journal(&journal).last(),
            Some(&(
                crate::ids::TaskId(7),
                crate::ids::Fence(1),
                ExitStatus::Code(3)
            ))
        );
    }

    /// The wrapper's journal line carries the run's task and fence however the environment's
    /// `SPADE_RUN` (the run token of verified kills) is set: the trap once wrote the token,
    /// which `read_journal` cannot read, so only spade's own line was left.
    #[tokio::test]
    async fn the_trap_line_is_readable_with_a_run_token_in_the_environment() {
        for cmd in ["true", "trap 'true' EXIT; true"] {
            let dir = tempfile::tempdir().unwrap();
            let r = run("sh", cmd.into(), "{}");
            let (mut ctx, _rx) = context(dir.path(), r, Arc::new(TokioSpawner), manual_clock());
            ctx.run_token = Some("0b9f-uuid.7.1".into());
            let journal = journal_file(&ctx.run_dir);
            Sh.run(ctx).await.unwrap();
            let line = (
                crate::ids::TaskId(7),
                crate::ids::Fence(1),
                ExitStatus::Code(0),
            );
            assert_eq!(read_journal(&journal), [line, line], "{cmd}");
        }
    }

    /// A command run in a subshell (it sets a trap) that traps SIGTERM and keeps going keeps
    /// its wrapper alive and ends as it chooses; one that does not dies of the signal, wrapper
    /// and all, as without the subshell.
    #[tokio::test]
    async fn an_isolated_command_sees_a_group_sigterm_as_without_the_subshell() {
        let dir = tempfile::tempdir().unwrap();
        for (cmd, want) in [
            (
                "trap 'echo got > got' TERM; touch up; while [ ! -f got ]; do sleep 0.01; done; exit 3",
                ExitStatus::Code(3),
            ),
            (
                "trap 'true' EXIT; touch up; sleep 30",
                ExitStatus::Signal(libc::SIGTERM),
            ),
        ] {
            let _ = std::fs::remove_file(dir.path().join("up"));
            let r = run("sh", cmd.into(), "{}");
            let (ctx, _rx) = context(dir.path(), r, Arc::new(TokioSpawner), manual_clock());
            let spec = process_spec(&ctx).unwrap();
            let spawned = ctx.spawn(spec).unwrap();
            let up = dir.path().join("up");
            for _ in 0..2000 {
                if up.exists() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            assert!(up.exists(), "{cmd} started");
            TokioSpawner.terminate_group(spawned.pgid);
            assert_eq!(spawned.exit.await.unwrap(), want, "{cmd}");
        }
    }

    #[test]
    fn commands_that_could_replace_the_trap_are_isolated() {
        for (command, isolated) in [
            ("trap 'rm -f x' EXIT; work", true),
            ("exec ./server", true),
            (". ./env.sh && run", true),
            ("source env.sh; run", true),
            ("./trap.sh --exec=1", false),
            ("echo entrapped executive", false),
            ("make release.tar", false),
            ("true", false),
            ("eval \"trap 'x' EXIT\"", true),
            ("a && (exec b)", true),
        ] {
            assert_eq!(needs_isolation(command), isolated, "{command}");
        }
    }

    /// Issue 10 item 12: a command that sets its own `EXIT` trap replaced the wrapper's, so
    /// no journal was written and a crash before the commit ran the command again.
    #[tokio::test]
    async fn a_command_with_its_own_exit_trap_is_still_journaled() {
        let dir = tempfile::tempdir().unwrap();
        let cmd = "trap 'echo cleanup >> trapped' EXIT; exit 4";
        let r = run("sh", cmd.into(), "{}");
        let (ctx, _rx) = context(dir.path(), r, Arc::new(TokioSpawner), manual_clock());
        let journal = journal_file(&ctx.run_dir);
        Sh.run(ctx).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("trapped")).unwrap(),
            "cleanup\n",
            "the command's own trap ran"
        );
        // The wrapper's line (the command ran in a subshell) and spade's own.
        assert_eq!(
            read_journal(&journal),
            [
                (
                    crate::ids::TaskId(7),
                    crate::ids::Fence(1),
                    ExitStatus::Code(4)
                ),
                (
                    crate::ids::TaskId(7),
                    crate::ids::Fence(1),
                    ExitStatus::Code(4)
                )
            ]
        );
    }

    #[test]
    fn journal_lines_cut_short_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        std::fs::write(&path, "1 1 0\n2 1\nx y z\n3 2 -1\n4 1 0 9\n5 1").unwrap();
        assert_eq!(
            read_journal(&path),
            [
                (
                    crate::ids::TaskId(1),
                    crate::ids::Fence(1),
                    ExitStatus::Code(0)
                ),
                (
                    crate::ids::TaskId(3),
                    crate::ids::Fence(2),
                    ExitStatus::Code(-1)
                ),
            ]
        );
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
