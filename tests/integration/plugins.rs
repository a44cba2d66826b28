//! Operators supplied as executables, end to end through the real binary and real executables:
//! the protocol (params in, store and export out, failure and `_retry`, generated tasks,
//! secrets), where executables are found, timeouts, `spade check`, and the example `slack>`
//! of `workflows/operators/` against a loopback webhook.

// Test helpers outside `#[test]` functions: a failed unwrap is a failed test here.
#![allow(clippy::unwrap_used)]

use crate::py::{contains, everything_written, task_logs};
use crate::run::{Project, Ran};
use crate::util;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A test operator: prints what it was given (never a secret value) and answers by `mode`.
const PROBE: &str = r#"#!/usr/bin/env python3
import json, os, subprocess, sys, time
request = json.load(open(os.environ["SPADE_OPERATOR_REQUEST"]))
p = request["params"]
mode = p.get("mode", "store")

def result(doc):
    with open(os.environ["SPADE_OPERATOR_RESULT"], "w") as f:
        json.dump(doc, f)

print("probe%s: protocol=%s command=%s who=%s task=%s retry=%s cwd=%s session=%s" % (
    p.get("tag", ""), request["protocol"], request["command"], p.get("who"),
    request["task"]["name"], request["task"]["retry_count"],
    os.path.basename(os.getcwd()), request["session"]["time"]))
if mode == "store":
    result({"store": {"greeting": "hello " + p["who"], "nested": {"n": 1}}})
elif mode == "flaky":
    path = p["counter"]
    n = int(open(path).read()) + 1 if os.path.exists(path) else 1
    open(path, "w").write(str(n))
    if n < p["succeed_on"]:
        result({"error": {"message": "try %d failed" % n, "retryable": p.get("retryable", True), "try": n}})
        sys.exit(3)
    result({"store": {"tries": n}})
elif mode == "generate":
    result({"export": {"color": "blue"}, "subtasks": {
        "+first": {"echo>": "first sees ${color}"},
        "+second": {"probe>": "child", "who": "second"}}})
elif mode == "secret":
    token = p["token"]
    print("probe: token of length %d, matches secrets: %s" % (len(token), token == request["secrets"]["probe.token"]))
    result({"store": {"leak": "stored " + token}})
elif mode == "secret_fail":
    result({"error": "cannot log in with " + p["token"]})
    sys.exit(1)
elif mode == "sleep":
    child = subprocess.Popen(["sleep", "600"])
    open(p["pids"], "w").write("%d %d" % (os.getpid(), child.pid))
    time.sleep(600)
elif mode == "bad":
    open(os.environ["SPADE_OPERATOR_RESULT"], "w").write("not json")
"#;

fn write_executable(project: &Project, rel: &str, text: &str) {
    project.write(rel, text);
    let path = project.path().join(rel);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn probe_project(dig: &str) -> Project {
    let project = Project::new();
    write_executable(&project, "operators/probe", PROBE);
    project.write("w.dig", dig);
    project
}

fn project_name(project: &Project) -> String {
    project
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// No request file survives a run: it held the task's secrets.
fn assert_no_request_files(project: &Project) {
    let logs = project.path().join(".spade/logs");
    for attempt in std::fs::read_dir(logs).unwrap().flatten() {
        for file in std::fs::read_dir(attempt.path()).unwrap().flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            assert!(!name.ends_with(".request.json"), "{name} left behind");
        }
    }
}

#[test]
fn an_executable_gets_its_params_and_stores_for_later_tasks() {
    let project = probe_project(
        "+a:\n  probe>: first\n  who: world\n+b:\n  echo>: \"${greeting} ${nested.n}\"\n",
    );
    let ran = project.run(&["w", "--session", "2026-01-01"]);
    ran.expect(0);
    let line = format!(
        "probe: protocol=1 command=first who=world task=+w+a retry=0 cwd={} session=2026-01-01T00:00:00+00:00",
        project_name(&project)
    );
    assert!(ran.stdout.lines().any(|l| l == line), "{}", ran.stdout);
    assert!(
        ran.stdout.lines().any(|l| l == "hello world 1"),
        "{}",
        ran.stdout
    );
    // The output went to the task log as well.
    assert!(task_logs(project.path()).contains(&line));
    assert_no_request_files(&project);
}

#[test]
fn a_failing_executable_is_retried_and_its_error_reaches_error_tasks() {
    let project = probe_project(
        "+a:\n  probe>: flaky\n  mode: flaky\n  counter: count_a\n  succeed_on: 3\n  _retry: 2\n\
         +b:\n  echo>: tries=${tries}\n",
    );
    project.run(&["w"]).expect(0);
    assert_eq!(project.read("count_a"), "3");

    project.write(
        "f.dig",
        "+c:\n  probe>: flaky\n  mode: flaky\n  counter: count_c\n  succeed_on: 99\n  _retry: 1\n  \
         _error:\n    echo>: \"error=${error.message} try=${error.try}\"\n",
    );
    let ran = project.run(&["f"]);
    ran.expect(1);
    assert_eq!(project.read("count_c"), "2");
    assert!(
        ran.stdout
            .contains("error=operator `probe>` failed with code 3: try 2 failed try=2"),
        "{}",
        ran.stdout
    );
    // The executable says the failure is final: `_retry` does not apply.
    project.write(
        "once.dig",
        "+d:\n  probe>: flaky\n  mode: flaky\n  counter: count_d\n  succeed_on: 99\n  retryable: false\n  _retry: 3\n",
    );
    project.run(&["once"]).expect(1);
    assert_eq!(project.read("count_d"), "1");
}

#[test]
fn an_executable_generates_subtasks_that_see_its_exports() {
    let project = probe_project("+g:\n  probe>: gen\n  mode: generate\n+after:\n  echo>: after\n");
    let ran = project.run(&["w"]);
    ran.expect(0);
    let cwd = project_name(&project);
    let expected = [
        "probe: protocol=1 command=gen who=None task=+w+g retry=0",
        "first sees blue",
        "probe: protocol=1 command=child who=second task=+w+g^sub+second retry=0",
        "after",
    ];
    let got: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(got.len(), 4, "{}", ran.stdout);
    for (line, want) in got.iter().zip(expected) {
        assert!(line.starts_with(want), "{line} / {want}\n{}", ran.stdout);
    }
    assert!(got[0].contains(&format!("cwd={cwd}")));
}

#[test]
fn an_executable_gets_the_secrets_its_task_declares_and_they_reach_no_log_nor_the_database() {
    const SECRET: &str = "s3cr3t-token-value";
    let project = probe_project(
        "_export:\n  token: ${secret:probe.token}\n\
         +use:\n  probe>: use\n  mode: secret\n\
         +show:\n  echo>: \"${leak}\"\n\
         +deny:\n  probe>: deny\n  mode: secret_fail\n",
    );
    let out = project
        .command(&["w"])
        .env("SPADE_SECRET_PROBE_TOKEN", SECRET)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    // Resolved in the params that hold the reference, and listed under `secrets`.
    assert!(
        stdout.contains(&format!(
            "probe: token of length {}, matches secrets: True",
            SECRET.len()
        )),
        "{stdout}"
    );
    // What came back is masked before the engine stored it.
    assert!(stdout.lines().any(|l| l == "stored ***"), "{stdout}");
    assert!(
        stderr.contains(
            "failed: +w+deny: operator `probe>` failed with code 1: cannot log in with ***"
        ),
        "{stderr}"
    );
    assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET));
    assert!(!task_logs(project.path()).contains(SECRET));
    let written = everything_written(project.path());
    assert!(!written.is_empty());
    assert!(!contains(&written, SECRET), "the secret reached .spade/");
    assert_no_request_files(&project);
}

#[test]
fn executables_are_found_in_the_workdir_the_project_and_on_path() {
    let project = Project::new();
    let says = |word: &str| {
        format!(
            "#!/bin/sh\necho \"{word} in $(basename \"$PWD\") protocol $SPADE_OPERATOR_PROTOCOL\"\n"
        )
    };
    write_executable(&project, "operators/where", &says("root"));
    write_executable(&project, "sub/operators/where", &says("sub"));
    let bin = tempfile::tempdir().unwrap();
    let on_path = bin.path().join("spade-operator-onpath");
    std::fs::write(&on_path, says("path")).unwrap();
    std::fs::set_permissions(&on_path, std::fs::Permissions::from_mode(0o755)).unwrap();
    project.write(
        "w.dig",
        "+a:\n  where>: x\n+b:\n  where>: x\n  _workdir: sub\n+c:\n  onpath>: x\n",
    );
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = project.command(&["w"]).env("PATH", &path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{out:?}");
    let name = project_name(&project);
    assert_eq!(
        stdout,
        format!("root in {name} protocol 1\nsub in sub protocol 1\npath in {name} protocol 1\n")
    );
    // `spade check` names where each operator comes from.
    let check = util::spade()
        .arg("check")
        .arg(project.path())
        .env("PATH", &path)
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{check:?}");
    assert!(check.stderr.is_empty(), "{check:?}");
    assert!(
        summary.contains("  +a: where> (executable operators/where)\n"),
        "{summary}"
    );
    assert!(
        summary.contains("  +b: where> (executable sub/operators/where)\n"),
        "{summary}"
    );
    assert!(
        summary.contains(&format!(
            "  +c: onpath> (executable {})\n",
            on_path.display()
        )),
        "{summary}"
    );
}

#[test]
fn an_invalid_result_fails_the_task() {
    let project = probe_project("+a:\n  probe>: x\n  mode: bad\n");
    let ran = project.run(&["w"]);
    ran.expect(1);
    assert!(
        ran.stderr
            .contains("failed: +w+a: operator `probe>` wrote an invalid result: not JSON"),
        "{}",
        ran.stderr
    );
}

/// Kills by pid on drop, so a failing test leaves nothing running.
struct KillOnDrop(Vec<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for pid in &self.0 {
            #[allow(clippy::disallowed_methods)] // the test's own cleanup of leftovers
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .output();
        }
    }
}

/// Running (not gone, not a zombie waiting to be reaped).
fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat.rsplit(") ").next().and_then(|s| s.chars().next());
        !matches!(state, Some('Z' | 'X') | None)
    })
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::yield_now();
    }
    done()
}

#[test]
fn a_timed_out_executable_is_killed_with_its_process_group() {
    // 300 virtual seconds are 3 real ones at the test scale: time enough, even on a loaded
    // machine, for python to start and write both pids before the timeout kills them.
    let project =
        probe_project("+a:\n  probe>: x\n  mode: sleep\n  pids: pids\n  _timeout: 300s\n");
    let ran: Ran = project.run(&["w"]);
    let pids: Vec<u32> = project
        .read("pids")
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    let _guard = KillOnDrop(pids.clone());
    ran.expect(1);
    assert!(
        ran.stderr
            .contains("failed: +w+a: try timed out after 5m (_timeout)"),
        "{}",
        ran.stderr
    );
    assert_eq!(pids.len(), 2, "the probe and its child");
    assert!(
        wait_until(Duration::from_secs(10), || !pids
            .iter()
            .any(|&p| is_running(p))),
        "still running: {pids:?}"
    );
}

#[test]
fn check_accepts_supplied_operators_and_explains_missing_ones() {
    let project = Project::new();
    write_executable(&project, "operators/probe", PROBE);
    project.write("operators/lazy", "#!/bin/sh\n");
    project.write("ok.dig", "+a:\n  probe>: x\n");
    let check = |file: &str| {
        let out = util::spade()
            .args(["check", file])
            .current_dir(project.path())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(check("ok.dig"), (Some(0), String::new()));
    // A near miss of one of the project's operators.
    project.write("typo.dig", "+a:\n  prob>: x\n");
    let (code, stderr) = check("typo.dig");
    assert_eq!(code, Some(1));
    assert!(
        stderr.starts_with("typo.dig:2:3: unknown operator `prob>`\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("= help: did you mean `probe>`?"),
        "{stderr}"
    );
    project.write("lazy.dig", "+a:\n  lazy>: x\n");
    let (code, stderr) = check("lazy.dig");
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("the executable of operator `lazy>` is not executable"),
        "{stderr}"
    );
    assert!(stderr.contains("run `chmod +x"), "{stderr}");
    // Declared through Digdag's plugin system: a warning that says how to supply it.
    project.write(
        "plugin.dig",
        "_export:\n  plugin:\n    repositories: [https://jitpack.io]\n    dependencies: [com.github.szyn:digdag-slack:0.1.4]\n\
         +a:\n  slack>: message.yml\n",
    );
    let (code, stderr) = check("plugin.dig");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.starts_with(
        "plugin.dig:6:3: warning: operator `slack>` of task `+a` comes from a Digdag plugin (`com.github.szyn:digdag-slack:0.1.4`), which spade cannot load\n"
    ), "{stderr}");
    assert!(
        stderr.contains("`operators/slack` in the project or `spade-operator-slack` on `PATH`"),
        "{stderr}"
    );
}

#[test]
fn run_refuses_a_workflow_whose_operator_nothing_supplies() {
    let project = Project::new();
    project.write("w.dig", "+a:\n  sh>: touch ran\n+b:\n  frobnicate>: x\n");
    let ran = project.run(&["w"]);
    ran.expect(2);
    assert!(
        ran.stderr
            .contains("w.dig:4:3: unknown operator `frobnicate>`"),
        "{}",
        ran.stderr
    );
    assert!(!project.path().join("ran").exists(), "a task ran");
}

/// The Digdag corpus's plugin acceptance test checks clean of errors with `spade check`.
#[test]
fn check_loads_the_corpus_plugin_workflow_with_a_warning() {
    let Some(shared) = util::shared() else {
        return;
    };
    let file =
        shared.join("corpus/digdag/digdag-tests/src/test/resources/acceptance/plugin/plugin.dig");
    let out = util::spade().arg("check").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: operator `example>` of task `+step1` comes from a Digdag plugin (`io.digdag.plugin:digdag-plugin-example:0.1.0`)"),
        "{stderr}"
    );
    assert!(stderr.ends_with("1 warning\n"), "{stderr}");
}

/// A loopback HTTP server that answers each request with the next status of a list (the last
/// one repeats) and records what it received. Dropping it stops it.
struct Webhook {
    port: u16,
    received: Arc<Mutex<Vec<(String, String)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Webhook {
    fn start(statuses: &[u16]) -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let statuses = statuses.to_vec();
        let (seen, stopped) = (received.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let status = statuses[n.min(statuses.len() - 1)];
                if let Some(request) = answer(stream, status) {
                    seen.lock().unwrap().push(request);
                }
            }
        });
        Webhook {
            port,
            received,
            stop,
            thread: Some(thread),
        }
    }

    fn received(&self) -> Vec<(String, String)> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocked `accept`, which then sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request (`POST path` and its body) and answers `status`.
fn answer(stream: TcpStream, status: u16) -> Option<(String, String)> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let target = line.split_whitespace().nth(1)?.to_string();
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        if header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let reply = format!(
        "HTTP/1.1 {status} Status\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    );
    reader.get_mut().write_all(reply.as_bytes()).ok()?;
    Some((target, String::from_utf8_lossy(&body).into_owned()))
}

/// A project holding the example project's `notify` workflow and its `slack>` executable.
fn slack_project() -> Project {
    let project = Project::new();
    let examples = util::root().join("workflows");
    for file in ["notify.dig", "operators/slack"] {
        let target = project.path().join(file);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(examples.join(file), &target).unwrap();
    }
    project
}

fn run_notify(project: &Project, webhook: &Webhook, secret_path: &str) -> (i32, String, String) {
    let url = format!("http://127.0.0.1:{}{secret_path}", webhook.port);
    let out = project
        .command(&["notify", "--session", "2026-01-01"])
        .env("SPADE_SECRET_SLACK_WEBHOOK_URL", url)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_slack_example_posts_to_its_webhook() {
    const PATH: &str = "/services/T0000/B0000/secretpart";
    let webhook = Webhook::start(&[200]);
    let project = slack_project();
    let (code, stdout, stderr) = run_notify(&project, &webhook, PATH);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let received = webhook.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].0, PATH);
    let body: serde_json::Value = serde_json::from_str(&received[0].1).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"text": "spade says hello for 2026-01-01"})
    );
    assert!(
        stdout.lines().any(|l| l == "Slack answered HTTP 200"),
        "{stdout}"
    );
    assert!(!stdout.contains("secretpart") && !stderr.contains("secretpart"));
}

#[test]
fn the_slack_example_retries_server_errors_but_not_client_errors() {
    const PATH: &str = "/services/T0000/B0000/secretpart";
    let webhook = Webhook::start(&[500]);
    let project = slack_project();
    let (code, stdout, stderr) = run_notify(&project, &webhook, PATH);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    // `_retry: {limit: 2}`: three tries.
    assert_eq!(webhook.received().len(), 3);
    assert!(
        stderr.contains(
            "failed: +notify+notify: operator `slack>` failed with code 1: the webhook answered HTTP 500"
        ),
        "{stderr}"
    );
    drop(webhook);

    let webhook = Webhook::start(&[404]);
    let project = slack_project();
    let (code, _, stderr) = run_notify(&project, &webhook, PATH);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(webhook.received().len(), 1, "a 404 is not retried");
    assert!(!stderr.contains("secretpart"), "{stderr}");
    assert!(!contains(&everything_written(project.path()), "secretpart"));
}
