//! `http>` and `http_call>` end to end: the real `spade run` against a loopback server that
//! the test starts (and stops on drop).

// Test helpers outside `#[test]` functions: a failed unwrap is a failed test here.
#![allow(clippy::unwrap_used)]

use crate::http_server::{Reply, Request, Server};
use crate::run::{Project, Ran};
use std::path::Path;
use std::time::Duration;

/// Runs workflow `name` (written from `text`) with `-p base=<server>` and extra env vars.
fn run(
    server: &Server,
    name: &str,
    text: &str,
    env: &[(&str, &str)],
    args: &[&str],
) -> (Project, Ran) {
    let project = Project::new();
    project.write(&format!("{name}.dig"), text);
    let ran = run_in(&project, server, name, env, args);
    (project, ran)
}

fn run_in(
    project: &Project,
    server: &Server,
    name: &str,
    env: &[(&str, &str)],
    args: &[&str],
) -> Ran {
    let base = format!("base={}", server.base());
    // Under `--time-scale 100` the default 30 s timeout is 0.3 s of real time: a loaded machine
    // could exceed it, so the tests allow 10 virtual minutes unless a task says otherwise.
    let defaults = [
        name,
        "-p",
        &base,
        "-p",
        "http.timeout=600",
        "--session",
        "2026-01-01",
    ];
    let mut cmd = project.command(&[&defaults[..], args].concat());
    // Loopback only, whatever the machine's proxy settings say.
    for proxy in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        cmd.env_remove(proxy);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap();
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(status: u16) -> Reply {
    Reply::status(status)
}

#[test]
fn every_method_is_sent_and_the_status_is_stored() {
    let server = Server::start(|r: &Request, _| match r.method.as_str() {
        "PUT" => ok(201),
        "OPTIONS" => ok(204),
        _ => Reply::body(200, "text/plain", "fine"),
    });
    let methods = ["GET", "POST", "PUT", "DELETE", "patch", "HEAD", "OPTIONS"];
    let mut text = String::new();
    for (i, m) in methods.iter().enumerate() {
        text.push_str(&format!("+m{i}:\n  http>: ${{base}}/m{i}\n  method: {m}\n"));
        text.push_str(&format!(
            "+s{i}:\n  echo>: \"${{http.last_status}} \"\n  append_file: out\n"
        ));
    }
    let (project, ran) = run(&server, "methods", &text, &[], &[]);
    ran.expect(0);
    let seen: Vec<String> = server.requests().iter().map(|r| r.method.clone()).collect();
    assert_eq!(
        seen,
        ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
    );
    assert_eq!(project.read("out"), "200 200 201 200 200 200 204 ");
    let agent = server.requests()[0]
        .header("user-agent")
        .unwrap_or_default()
        .to_owned();
    assert!(agent.starts_with("spade/"), "{agent}");
}

#[test]
fn json_form_and_text_content_headers_and_query_are_sent() {
    let server = Server::start(|_, _| ok(200));
    let text = r#"
+json:
  http>: ${base}/json?fixed=1
  method: POST
  content:
    name: apple
    n: 3
    tags: [a, b]
  query:
    q: two words
    page: 2
  headers:
    - X-Trace: t1
    - X-Trace: t2
+form:
  http>: ${base}/form
  method: POST
  content: {a: "x y", b: 4711, c: "é"}
  content_format: form
  query: "k=v&e=%C3%A9"
+text:
  http>: ${base}/text
  method: PUT
  content: plain ${session_date}
  content_type: text/csv
"#;
    let (_p, ran) = run(&server, "content", text, &[], &[]);
    ran.expect(0);
    let requests = server.requests();
    let [json, form, text] = &requests[..] else {
        panic!("three requests, got {requests:#?}");
    };
    assert_eq!(json.path(), "/json");
    assert_eq!(json.query(), "fixed=1&q=two+words&page=2");
    assert_eq!(json.header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"name": "apple", "n": 3, "tags": ["a", "b"]})
    );
    assert_eq!(json.header_values("x-trace"), ["t1", "t2"]);
    assert_eq!(
        form.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(form.body_text(), "a=x+y&b=4711&c=%C3%A9");
    assert_eq!(form.query(), "k=v&e=%C3%A9");
    assert_eq!(text.method, "PUT");
    assert_eq!(text.header("content-type"), Some("text/csv"));
    assert_eq!(text.body_text(), "plain 2026-01-01");
}

#[test]
fn server_errors_are_retried_with_backoff_on_the_clock_then_succeed() {
    let server = Server::start(|r, seen| match (r.path(), seen.earlier) {
        ("/flaky", 0 | 1) => ok(503),
        ("/busy", 0) => ok(429),
        (_, _) => ok(200),
    });
    let text = "+flaky:\n  http>: ${base}/flaky\n\
                +busy:\n  http>: ${base}/busy\n  method: POST\n\
                +after:\n  echo>: ${http.last_status}\n  append_file: out\n";
    let (project, ran) = run(&server, "flaky", text, &[], &[]);
    ran.expect(0);
    let paths: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.path().to_owned())
        .collect();
    // A POST is not retried on 5xx by default, but 429 is retried whatever the method.
    assert_eq!(paths, ["/flaky", "/flaky", "/flaky", "/busy", "/busy"]);
    assert_eq!(project.read("out"), "200");
    // Waits of 1 s and 2 s, then 1 s for the 429, on spade's clock: virtual seconds under
    // --time-scale (real sleeps would take 100 times longer in virtual time).
    let took = ran.seconds();
    assert!((4.0..100.0).contains(&took), "took {took}s\n{}", ran.stderr);
    let flaky = format!("{}/flaky", server.base());
    assert!(
        ran.stderr.contains(&format!(
            "HTTP 5XX Server Error: GET {flaky}: 503 Service Unavailable; try 1 of 11 failed, next in 1s"
        )),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("try 2 of 11 failed, next in 2s"),
        "{}",
        ran.stderr
    );
}

#[test]
fn server_errors_give_up_after_the_cap_and_post_is_not_retried() {
    let server = Server::start(|_, _| ok(500));
    let text = "+down:\n  http>: ${base}/down\n  retry: 2\n";
    let (_p, ran) = run(&server, "down", text, &[], &[]);
    ran.expect(1);
    assert_eq!(server.requests().len(), 3);
    assert!(
        ran.stderr.contains("(gave up after 3 tries)"),
        "{}",
        ran.stderr
    );
    let server = Server::start(|_, _| ok(500));
    let (_p, ran) = run(
        &server,
        "post",
        "+post:\n  http>: ${base}/p\n  method: POST\n",
        &[],
        &[],
    );
    ran.expect(1);
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn not_found_fails_at_once() {
    let server = Server::start(|_, _| ok(404));
    let (_p, ran) = run(
        &server,
        "missing",
        "+missing:\n  http>: ${base}/missing\n",
        &[],
        &[],
    );
    ran.expect(1);
    assert_eq!(server.requests().len(), 1);
    let expect = format!(
        "failed: +missing+missing: HTTP 4XX Client Error: GET {}/missing: 404 Not Found",
        server.base()
    );
    assert!(ran.stderr.contains(&expect), "{}", ran.stderr);
    assert!(
        !ran.stderr.contains("failed, next in"),
        "no retry\n{}",
        ran.stderr
    );
}

/// The `_error` probe of the cancellation tests: asks the server whether the hanging request
/// was dropped, and writes the answer to `out`.
const PROBE: &str = "  _error:\n    +probe:\n      http>: ${base}/probe\n      timeout: 600\n      store_content: true\n    +tell:\n      echo>: ${http.last_content}\n      append_file: out\n";

fn hang_then_probe() -> Server {
    Server::start(|r, seen| match r.path() {
        "/hang" => Reply::Hang,
        _ => {
            let dropped = seen.wait_for_hang_ups(1, Duration::from_secs(5));
            Reply::body(
                200,
                "text/plain",
                if dropped { "dropped" } else { "still open" },
            )
        }
    })
}

#[test]
fn a_try_without_an_answer_times_out_and_drops_the_request() {
    let server = hang_then_probe();
    let text = format!("+slow:\n  http>: ${{base}}/hang\n  timeout: 5\n  retry: false\n{PROBE}");
    let (project, ran) = run(&server, "slow", &text, &[], &[]);
    ran.expect(1);
    let expect = format!("GET {}/hang: no response within 5s", server.base());
    assert!(ran.stderr.contains(&expect), "{}", ran.stderr);
    // The connection was closed when the try timed out, while spade was still running.
    assert_eq!(project.read("out"), "dropped");
    let took = ran.seconds();
    assert!((5.0..100.0).contains(&took), "took {took}s\n{}", ran.stderr);
}

#[test]
fn task_timeout_cancels_the_request() {
    let server = hang_then_probe();
    let text = format!("+slow:\n  http>: ${{base}}/hang\n  _timeout: 3s\n{PROBE}");
    let (project, ran) = run(&server, "cancel", &text, &[], &[]);
    ran.expect(1);
    assert!(
        ran.stderr.contains("try timed out after 3s (_timeout)"),
        "{}",
        ran.stderr
    );
    assert_eq!(project.read("out"), "dropped");
}

#[test]
fn store_content_keeps_the_body_up_to_its_limit() {
    const LIMIT: usize = 64 * 1024;
    let server = Server::start(|r, _| match r.path() {
        "/hello" => Reply::body(200, "text/plain", "hello world"),
        "/full" => Reply::body(200, "text/plain", vec![b'x'; LIMIT]),
        _ => Reply::body(200, "text/plain", vec![b'x'; LIMIT + 1]),
    });
    let text = "+hello:\n  http>: ${base}/hello\n  store_content: true\n\
                +say:\n  echo>: \"${http.last_content} \"\n  append_file: out\n\
                +full:\n  http>: ${base}/full\n  store_content: true\n\
                +size:\n  echo>: ${http.last_content.length}\n  append_file: out\n\
                +plain:\n  http>: ${base}/hello\n\
                +kept:\n  echo>: \" ${typeof http.last_content}\"\n  append_file: out\n";
    let (project, ran) = run(&server, "store", text, &[], &[]);
    ran.expect(0);
    // Without store_content the earlier content stays, as in Digdag (only last_status is reset).
    assert_eq!(project.read("out"), "hello world 65536 string");
    let (_p, ran) = run(
        &server,
        "big",
        "+big:\n  http>: ${base}/big\n  store_content: true\n",
        &[],
        &[],
    );
    ran.expect(1);
    assert!(
        ran.stderr
            .contains("response content too large: more than 65536 bytes"),
        "{}",
        ran.stderr
    );
}

#[test]
fn redirects_are_followed_up_to_eight() {
    let server = Server::start(|r, _| {
        let n: u32 = r.path().trim_start_matches("/r/").parse().unwrap_or(0);
        if n == 0 {
            Reply::body(200, "text/plain", "landed")
        } else {
            Reply::redirect(&format!("/r/{}", n - 1))
        }
    });
    let text = "+eight:\n  http>: ${base}/r/8\n  store_content: true\n\
                +say:\n  echo>: \"${http.last_content} \"\n  append_file: out\n\
                +stay:\n  http>: ${base}/r/3\n  follow_redirects: false\n\
                +status:\n  echo>: ${http.last_status}\n  append_file: out\n";
    let (project, ran) = run(&server, "redirects", text, &[], &[]);
    ran.expect(0);
    assert_eq!(project.read("out"), "landed 302");
    assert_eq!(server.requests().len(), 9 + 1);
    let server = Server::start(|r, _| Reply::redirect(&format!("{}x", r.path())));
    let (_p, ran) = run(&server, "loop", "+loop:\n  http>: ${base}/r\n", &[], &[]);
    ran.expect(1);
    assert!(
        ran.stderr.contains("more than 8 redirects"),
        "{}",
        ran.stderr
    );
    assert_eq!(
        server.requests().len(),
        9,
        "the first request and 8 redirects"
    );
}

/// Every file under `dir`, recursively.
fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Every text and blob value of every table of the SQLite database at `db`.
fn database_texts(db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(tables.iter().any(|t| t == "tasks"), "{tables:?}");
    let mut out = Vec::new();
    for table in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let columns = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for i in 0..columns {
                match row.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                        out.push(String::from_utf8_lossy(t).into_owned());
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

#[test]
fn secrets_reach_the_server_but_no_log_and_no_database_row() {
    const TOKEN: &str = "tok-7c1f0a9e2b";
    const KEY: &str = "key-51d3b8aa04";
    let server = Server::start(|r, seen| match (r.path(), seen.earlier) {
        ("/secure", 0) => ok(503),
        ("/secure", _) => Reply::body(200, "text/plain", "ok"),
        _ => ok(404),
    });
    let text =
        "+call:\n  http>: ${base}/secure?key=${secret:api.key}\n  method: POST\n  retry: 1\n\
                \x20 headers:\n    - Authorization: Bearer ${secret:api.token}\n\
                \x20 content:\n    password: ${secret:api.token}\n\
                +denied:\n  http>: ${base}/denied/${secret:api.key}\n";
    let env = [
        ("SPADE_SECRET_API_TOKEN", TOKEN),
        ("SPADE_SECRET_API_KEY", KEY),
        // Every log line spade and its libraries can write.
        ("SPADE_LOG", "trace"),
    ];
    let (project, ran) = run(&server, "secret", text, &env, &[]);
    ran.expect(1);
    // The secrets did reach the server, so the scan below looks for something real.
    let requests = server.requests();
    assert_eq!(requests.len(), 3, "{requests:#?}");
    assert_eq!(
        requests[1].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(requests[1].query(), format!("key={KEY}"));
    assert_eq!(
        requests[1].body_text(),
        format!(r#"{{"password":"{TOKEN}"}}"#)
    );
    assert_eq!(requests[2].path(), format!("/denied/{KEY}"));
    // Messages show the URI masked.
    assert!(
        ran.stderr.contains("GET http://***: 404 Not Found"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr
            .contains("POST http://***: 503 Service Unavailable"),
        "{}",
        ran.stderr
    );

    let mut leaks = Vec::new();
    for secret in [TOKEN, KEY] {
        if ran.stdout.contains(secret) || ran.stderr.contains(secret) {
            leaks.push(format!("{secret} in the output"));
        }
        let mut all = Vec::new();
        files(&project.path().join(".spade"), &mut all);
        assert!(
            all.iter()
                .any(|p| p.extension().is_some_and(|e| e == "log")),
            "{all:?}"
        );
        for path in &all {
            let bytes = std::fs::read(path).unwrap();
            if bytes.windows(secret.len()).any(|w| w == secret.as_bytes()) {
                leaks.push(format!("{secret} in {}", path.display()));
            }
        }
        let texts = database_texts(&project.path().join(".spade/spade.db"));
        assert!(
            texts.iter().any(|t| t.contains("${secret:api.token}")),
            "the params are stored"
        );
        leaks.extend(
            texts
                .iter()
                .filter(|t| t.contains(secret))
                .map(|t| format!("{secret} in row text {t}")),
        );
    }
    assert!(leaks.is_empty(), "{leaks:#?}");
}

#[test]
fn http_call_generates_tasks_that_run() {
    let server = Server::start(|r, _| match r.path() {
        "/wf.json" => Reply::body(
            200,
            "application/json; charset=utf-8",
            r#"{"+a": {"echo>": "json ${session_date} ${k}", "append_file": "out"}, "_export": {"k": "exported"}}"#,
        ),
        "/wf.yaml" => Reply::body(
            200,
            "application/x-yaml",
            "+b:\n  echo>: \" yaml ${1 + 1}\"\n  append_file: out\n",
        ),
        _ => Reply::body(
            200,
            "text/plain",
            "+c:\n  echo>: \" override\"\n  append_file: out\n",
        ),
    });
    let text = "+json:\n  http_call>: ${base}/wf.json\n\
                +yaml:\n  http_call>: ${base}/wf.yaml\n  method: POST\n  content: {want: yaml}\n\
                +override:\n  http_call>: ${base}/wf.txt\n  content_type_override: application/x-yaml\n";
    let (project, ran) = run(&server, "gen", text, &[], &[]);
    ran.expect(0);
    assert_eq!(
        project.read("out"),
        "json 2026-01-01 exported yaml 2 override"
    );
    for task in ["+gen+json^sub+a", "+gen+yaml^sub+b", "+gen+override^sub+c"] {
        assert!(
            ran.stderr.contains(&format!("{task} succeeded")),
            "{task}\n{}",
            ran.stderr
        );
    }
    assert_eq!(server.requests()[1].body_text(), r#"{"want":"yaml"}"#);
}

#[test]
fn http_call_with_a_malformed_response_fails_naming_the_task_and_the_place() {
    let server = Server::start(|r, _| match r.path() {
        "/two.json" => Reply::body(
            200,
            "application/json",
            "{\n  \"+a\": {\"echo>\": \"x\", \"fail>\": \"y\"}\n}\n",
        ),
        "/bad.yaml" => Reply::body(200, "application/x-yaml", "+a:\n  echo>: [\n"),
        _ => Reply::body(200, "text/html", "<html></html>"),
    });
    let check = |path: &str, expect: &[&str]| {
        let text = format!("+fetch:\n  http_call>: ${{base}}{path}\n");
        let (_p, ran) = run(&server, "call", &text, &[], &[]);
        ran.expect(1);
        for e in expect {
            assert!(ran.stderr.contains(e), "{path}: {e}\n{}", ran.stderr);
        }
        assert!(
            !ran.stderr.contains("^sub"),
            "nothing was generated\n{}",
            ran.stderr
        );
    };
    check(
        "/two.json",
        &[
            "failed: +call+fetch: http_call> the response is not a valid workflow:",
            "+call+fetch (http_call> response):2:24: task `+a` has more than one operator: `echo>` and `fail>`",
            "2 |   \"+a\": {\"echo>\": \"x\", \"fail>\": \"y\"}",
        ],
    );
    check(
        "/bad.yaml",
        &["+call+fetch (http_call> response):2:10: unclosed flow sequence"],
    );
    check(
        "/page.html",
        &["http_call> unsupported Content-Type `text/html`"],
    );
}

#[test]
fn spade_check_accepts_http_operators_without_a_warning() {
    let project = Project::new();
    project.write(
        "net.dig",
        "+get:\n  http>: https://api.example.com/x\n  store_content: true\n\
         +gen:\n  http_call>: https://api.example.com/wf\n",
    );
    let out = crate::util::spade()
        .arg("check")
        .current_dir(project.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        !stderr.contains("not supported") && !stdout.contains("not supported"),
        "{stdout}\n{stderr}"
    );
}
