//! The web UI over HTTP against a real `spade serve`: every page's status and key content,
//! escaping of hostile names and output, the CSP header, cross-origin and CSRF-less POSTs
//! refused, the audit trail, keyset paging, the display-zone cookie, the schedule preview
//! against `spade schedule preview`, and the login cookie when a token is configured.

// Test helpers: a failed unwrap is a failed test here.
#![allow(clippy::unwrap_used)]

use crate::api::Daemon;
use crate::daemon::{rows, wait_until};
use crate::run::Project;
use regex::Regex;
use serde_json::json;
use std::cell::RefCell;
use std::collections::BTreeMap;

pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// One response.
pub(crate) struct Page {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: String,
}

impl Page {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    /// The first CSRF token of the page's forms.
    pub(crate) fn csrf(&self) -> String {
        Regex::new(r#"name="csrf" value="([0-9a-f]+)""#)
            .unwrap()
            .captures(&self.body)
            .unwrap_or_else(|| panic!("no CSRF field in\n{}", self.body))[1]
            .to_owned()
    }

    /// The `datetime` attributes of `<time>` elements inside cells of class `class`.
    fn times_in(&self, class: &str) -> Vec<String> {
        let re = Regex::new(&format!(r#"<td class="{class}"><time datetime="([^"]+)""#)).unwrap();
        re.captures_iter(&self.body)
            .map(|c| c[1].to_owned())
            .collect()
    }
}

/// A cookie-keeping HTTP client that does not follow redirects, like a browser tab whose
/// every step the test looks at.
pub(crate) struct Tab {
    base: String,
    client: reqwest::blocking::Client,
    cookies: RefCell<BTreeMap<String, String>>,
}

impl Tab {
    pub(crate) fn new(base: &str) -> Tab {
        Tab {
            base: base.to_owned(),
            client: reqwest::blocking::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: RefCell::new(BTreeMap::new()),
        }
    }

    fn send(&self, req: reqwest::blocking::RequestBuilder) -> Page {
        let cookie: Vec<String> = self
            .cookies
            .borrow()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let req = if cookie.is_empty() {
            req
        } else {
            req.header("cookie", cookie.join("; "))
        };
        let r = req.send().unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.text().unwrap();
        let page = Page {
            status,
            headers,
            body,
        };
        for c in page.set_cookies() {
            let pair = c.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() || c.contains("Max-Age=0") {
                self.cookies.borrow_mut().remove(k);
            } else {
                self.cookies.borrow_mut().insert(k.to_owned(), v.to_owned());
            }
        }
        page
    }

    pub(crate) fn get(&self, path: &str) -> Page {
        self.send(self.client.get(format!("{}{path}", self.base)))
    }

    pub(crate) fn post(&self, path: &str, form: &[(&str, &str)], headers: &[(&str, &str)]) -> Page {
        let mut req = self.client.post(format!("{}{path}", self.base)).form(form);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req)
    }

    /// GET that must answer 200 with the CSP; returns the page.
    pub(crate) fn ok(&self, path: &str) -> Page {
        let p = self.get(path);
        assert_eq!(p.status, 200, "GET {path}:\n{}", p.body);
        assert_eq!(p.header("content-security-policy"), CSP, "GET {path}");
        assert!(
            !p.body.contains("<script>") && !p.body.contains(" style="),
            "inline script or style in {path}"
        );
        p
    }
}

/// Starts an attempt of `workflow` at `session` through the API; returns its id.
pub(crate) fn start(d: &Daemon, workflow: &str, session: &str) -> String {
    let id = d.workflow_id(workflow);
    let (status, v) = d.put(
        "/api/attempts",
        &json!({"workflowId": id, "sessionTime": session}),
    );
    assert_eq!(status, 200, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

/// A hostile task name (`&` is the only markup character task names allow) and hostile
/// output and error text.
const HOSTILE: &str = "timezone: Asia/Tokyo\nschedule:\n  daily>: 09:00:00\n\
    +ok:\n  sh>: echo '<script>alert(1)</script>' && echo second line\n\
    +x&amp[y]:\n  fail>: \"<script>alert(2)</script> broke\"\n";

#[test]
fn every_page_answers_with_its_content_escaped_and_the_csp() {
    let project = Project::new();
    project.write("hostile.dig", HOSTILE);
    let d = Daemon::start(&project, &[]);
    let id = start(&d, "hostile", "2026-01-05");
    assert_eq!(d.wait_done(&id)["status"], "error");
    let tab = Tab::new(&d.base);

    let root = tab.get("/");
    assert_eq!((root.status, root.header("location")), (303, "/ui"));
    let overview = tab.ok("/ui");
    assert!(overview.body.contains("Failures in the last 24 hours"));
    assert!(
        overview
            .body
            .contains("&lt;script&gt;alert(2)&lt;/script&gt; broke"),
        "the first error line, escaped:\n{}",
        overview.body
    );
    assert!(overview.body.contains("Due in the next 24 hours"));
    let workflows = tab.ok("/ui/workflows");
    assert!(
        workflows.body.contains("daily&gt; 09:00:00"),
        "{}",
        workflows.body
    );
    assert!(workflows.body.contains("Asia/Tokyo"));
    assert!(
        workflows
            .body
            .contains(r#"<span class="sr-only">error</span>"#),
        "the strip says the result in words, not colour alone"
    );
    let workflow = tab.ok("/ui/workflows/hostile");
    assert!(workflow.body.contains("Next 10 slots"));
    assert_eq!(workflow.times_in("session").len(), 10);
    assert!(
        workflow.body.contains("+x&amp;amp[y]"),
        "escaped task path in the grid"
    );
    assert!(workflow.body.contains(r#"data-n="1""#), "numbered source");
    let sessions = tab.ok("/ui/sessions");
    assert!(sessions.body.contains(&format!("/ui/attempts/{id}")));
    let attempt = tab.ok(&format!("/ui/attempts/{id}"));
    assert!(attempt.body.contains("+x&amp;amp[y]"), "{}", attempt.body);
    assert!(attempt.body.contains("try 1/1"));
    assert!(attempt.body.contains("&lt;script&gt;alert(2)"));
    let timeline = tab.ok(&format!("/ui/attempts/{id}?tab=timeline"));
    assert!(timeline.body.contains("<svg") && timeline.body.contains("rect class=\"bar st-bad\""));
    let task = Regex::new(&format!(r#"/ui/attempts/{id}/tasks/(\d+)/log"#))
        .unwrap()
        .captures(&attempt.body)
        .unwrap()[1]
        .to_owned();
    let log = tab.ok(&format!("/ui/attempts/{id}/tasks/{task}/log"));
    assert!(
        log.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        log.body
    );
    assert!(log.body.contains(r#"id="L2""#));
    let search = tab.ok(&format!("/ui/attempts/{id}/tasks/{task}/log?q=SECOND"));
    assert!(search.body.contains("1 matching line"), "{}", search.body);
    let download = tab.get(&format!("/ui/attempts/{id}/tasks/{task}/log/download"));
    assert_eq!(download.status, 200);
    assert_eq!(download.body, "<script>alert(1)</script>\nsecond line\n");
    assert_eq!(
        download.header("content-length"),
        download.body.len().to_string()
    );
    tab.ok("/ui/settings");
    let confirm = tab.ok(&format!("/ui/confirm/retry_failed?attempt={id}"));
    assert!(confirm.body.contains(&format!(
        "attempt {id} of hostile at session 2026-01-05T00:00:00+09:00"
    )));

    // The assets: hashed names, long cache, and nothing under other names.
    let css = Regex::new(r#"href="(/ui/assets/app\.[0-9a-f]{12}\.css)""#)
        .unwrap()
        .captures(&overview.body)
        .unwrap()[1]
        .to_owned();
    let asset = tab.get(&css);
    assert_eq!(asset.status, 200);
    assert!(asset.header("cache-control").contains("immutable"));
    assert_eq!(tab.get("/ui/assets/app.css").status, 404);
    assert_eq!(tab.get("/ui/attempts/999").status, 404);
    assert_eq!(tab.get("/ui/sessions?status=bogus").status, 400);
}

#[test]
fn posts_need_this_origin_and_the_forms_csrf_token_and_land_in_the_audit() {
    let project = Project::new();
    project.write("slow.dig", "+wait:\n  sh>: sleep 60\n");
    let d = Daemon::start(&project, &[]);
    let id = start(&d, "slow", "2026-01-05");
    let tab = Tab::new(&d.base);
    let confirm = tab.ok(&format!("/ui/confirm/kill?attempt={id}"));
    assert!(confirm.body.contains(&format!("Kill attempt {id}")));
    let csrf = confirm.csrf();
    let cookie = confirm
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("spade_csrf="))
        .unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let form = [("csrf", csrf.as_str()), ("attempt", id.as_str())];
    let path = "/ui/actions/kill";
    let evil = tab.post(path, &form, &[("origin", "http://evil.example")]);
    assert_eq!(evil.status, 403, "{}", evil.body);
    let cross = tab.post(path, &form, &[("sec-fetch-site", "cross-site")]);
    assert_eq!(cross.status, 403);
    let no_token = tab.post(path, &[("attempt", id.as_str())], &[]);
    assert_eq!(no_token.status, 403);
    let wrong = tab.post(
        path,
        &[("csrf", "0".repeat(32).as_str()), ("attempt", id.as_str())],
        &[],
    );
    assert_eq!(wrong.status, 403);
    assert_eq!(
        d.get(&format!("/api/attempts/{id}")).1["done"],
        false,
        "nothing refused acted"
    );
    let host = d.base.trim_start_matches("http://").to_owned();
    let origin = format!("http://{host}");
    let ok = tab.post(
        path,
        &form,
        &[
            ("origin", origin.as_str()),
            ("sec-fetch-site", "same-origin"),
        ],
    );
    assert_eq!(
        (ok.status, ok.header("location")),
        (303, format!("/ui/attempts/{id}").as_str())
    );
    assert_eq!(d.wait_done(&id)["status"], "killed");
    let db = project.path().join(".spade/spade.db");
    assert_eq!(
        rows(&db, "SELECT action, attempt_id, outcome FROM audit"),
        vec![vec![
            "kill".to_owned(),
            id.clone(),
            "kill requested".to_owned()
        ]]
    );
    let page = tab.ok(&format!("/ui/attempts/{id}"));
    assert!(page.body.contains("Actions taken") && page.body.contains("kill requested"));
    // A second kill of a finished attempt is refused by the API, and the audit says so.
    tab.post(path, &form, &[]);
    let last = rows(&db, "SELECT outcome FROM audit ORDER BY id DESC LIMIT 1");
    assert!(last[0][0].starts_with("refused: attempt"), "{last:?}");
}

#[test]
fn sessions_filter_by_query_string_and_page_by_keyset() {
    let project = Project::new();
    project.write(
        "daily.dig",
        "timezone: UTC\nschedule:\n  daily>: 00:00:00\n+a:\n  echo>: ${session_date}\n",
    );
    project.write("other.dig", "+a:\n  fail>: no\n");
    let d = Daemon::start(&project, &[]);
    let (_, schedules) = d.get("/api/schedules");
    let sid = schedules["schedules"][0]["id"].as_str().unwrap().to_owned();
    let (status, v) = d.post(
        &format!("/api/schedules/{sid}/backfill"),
        &json!({"fromTime": "2026-01-01", "count": 7}),
    );
    assert_eq!(status, 200, "{v}");
    let other = start(&d, "other", "2026-01-01");
    d.wait_done(&other);
    let db = project.path().join(".spade/spade.db");
    wait_until(
        "the backfill to finish",
        crate::api::LONG,
        || rows(&db, "SELECT 1 FROM attempts WHERE state = 'running'").is_empty(),
        || d.proc.log_text(),
    );
    let tab = Tab::new(&d.base);
    let ids = |p: &Page| -> Vec<String> {
        Regex::new(r#"<tr><td><a href="/ui/attempts/(\d+)""#)
            .unwrap()
            .captures_iter(&p.body)
            .map(|c| c[1].to_owned())
            .collect()
    };
    let first = tab.ok("/ui/sessions?workflow=daily&limit=3");
    let page1 = ids(&first);
    assert_eq!(page1.len(), 3, "{}", first.body);
    assert!(!first.body.contains("Newer"));
    let next = Regex::new(r#"rel="next" href="([^"]+)""#)
        .unwrap()
        .captures(&first.body)
        .unwrap()[1]
        .replace("&amp;", "&");
    assert!(
        next.contains("workflow=daily") && next.contains("before="),
        "{next}"
    );
    let second = tab.ok(&next);
    let page2 = ids(&second);
    assert_eq!(page2.len(), 3);
    assert!(page2.iter().all(|i| !page1.contains(i)));
    assert!(page2[0].parse::<i64>().unwrap() < page1[2].parse::<i64>().unwrap());
    let prev = Regex::new(r#"rel="prev" href="([^"]+)""#)
        .unwrap()
        .captures(&second.body)
        .unwrap()[1]
        .replace("&amp;", "&");
    assert_eq!(ids(&tab.ok(&prev)), page1, "back to the first page");
    let all: Vec<String> = ids(&tab.ok("/ui/sessions?limit=100"));
    assert_eq!(all.len(), 8);
    assert_eq!(
        ids(&tab.ok("/ui/sessions?status=error")),
        vec![other.clone()]
    );
    assert_eq!(
        ids(&tab.ok("/ui/sessions?workflow=daily&status=success&limit=100")).len(),
        7
    );
}

/// `spade schedule preview FILE --after AFTER --count 10`, as lines.
pub(crate) fn preview(project: &Project, file: &str, after: &str) -> Vec<String> {
    let out = crate::util::spade()
        .args([
            "schedule", "preview", file, "--after", after, "--count", "10",
        ])
        .current_dir(project.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

pub(crate) const NEW_YORK: &str =
    "timezone: America/New_York\nschedule:\n  daily>: 02:30:00\n+a:\n  echo>: hi\n";

#[test]
fn the_slot_table_is_the_schedule_preview_on_both_new_york_dst_days_and_marks_the_change() {
    let project = Project::new();
    project.write("ny.dig", NEW_YORK);
    let d = Daemon::start(&project, &[]);
    let tab = Tab::new(&d.base);
    for after in ["2026-03-05T00:00:00-05:00", "2026-10-29T00:00:00-04:00"] {
        let q = url::form_urlencoded::byte_serialize(after.as_bytes()).collect::<String>();
        let page = tab.ok(&format!("/ui/workflows/ny?after={q}"));
        let shown: Vec<String> = page
            .times_in("session")
            .iter()
            .zip(page.times_in("run"))
            .map(|(s, r)| format!("{s} {r}"))
            .collect();
        assert_eq!(shown, preview(&project, "ny.dig", after), "after {after}");
        assert_eq!(
            page.body.matches("offset-change").count(),
            1,
            "{}",
            page.body
        );
    }
}

#[test]
fn the_display_zone_cookie_changes_the_rendered_offsets() {
    let project = Project::new();
    project.write("ny.dig", NEW_YORK);
    let d = Daemon::start(&project, &[]);
    let tab = Tab::new(&d.base);
    let settings = tab.ok("/ui/settings");
    let csrf = settings.csrf();
    let next_run = |tab: &Tab| -> String {
        let p = tab.ok("/ui/workflows");
        Regex::new(r#"<td><time datetime="([^"]+)"[^>]*>[^<]*</time> <span class="rel""#)
            .unwrap()
            .captures(&p.body)
            .unwrap_or_else(|| panic!("{}", p.body))[1]
            .to_owned()
    };
    for (zone, name, offset) in [
        ("named", "Asia/Kolkata", "+05:30"),
        ("UTC", "", "+00:00"),
        ("named", "Asia/Kathmandu", "+05:45"),
    ] {
        let saved = tab.post(
            "/ui/settings",
            &[
                ("csrf", &csrf),
                ("zone", zone),
                ("zone_name", name),
                ("theme", "dark"),
                ("clock", "24"),
            ],
            &[],
        );
        assert_eq!(saved.status, 303, "{}", saved.body);
        let cookie = saved.set_cookies().join("\n");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(next_run(&tab).ends_with(offset), "zone {zone} {name}");
    }
    assert!(tab.ok("/ui").body.contains(r#"data-theme="dark""#));
    let bad = tab.post(
        "/ui/settings",
        &[
            ("csrf", &csrf),
            ("zone", "named"),
            ("zone_name", "Mars/Olympus"),
            ("theme", "auto"),
            ("clock", "24"),
        ],
        &[],
    );
    assert_eq!(bad.status, 400);
}

#[test]
fn with_a_token_the_ui_asks_for_it_once_and_keeps_a_strict_http_only_cookie() {
    let project = Project::new();
    project.write("wf.dig", "+a:\n  echo>: hi\n");
    project.write("token", "t0ken-for-the-ui\n");
    project.write("spade.toml", "api_token_file = \"token\"\n");
    let d = Daemon::start(
        &project,
        &["--listen", "0.0.0.0:0", "--config", "spade.toml"],
    );
    let tab = Tab::new(&d.base);
    let first = tab.get("/ui/workflows");
    assert_eq!(first.status, 303);
    assert_eq!(first.header("location"), "/ui/login?next=%2Fui%2Fworkflows");
    assert_eq!(first.header("content-security-policy"), CSP);
    assert_eq!(
        tab.post("/ui/actions/kill", &[("attempt", "1")], &[])
            .status,
        401
    );
    let login = tab.ok("/ui/login?next=%2Fui%2Fworkflows");
    let csrf = login.csrf();
    let wrong = tab.post(
        "/ui/login",
        &[
            ("csrf", &csrf),
            ("token", "wrong"),
            ("next", "/ui/workflows"),
        ],
        &[],
    );
    assert_eq!(wrong.status, 401);
    let no_csrf = tab.post("/ui/login", &[("token", "t0ken-for-the-ui")], &[]);
    assert_eq!(no_csrf.status, 403);
    let ok = tab.post(
        "/ui/login",
        &[
            ("csrf", &csrf),
            ("token", "t0ken-for-the-ui"),
            ("next", "/ui/workflows"),
        ],
        &[],
    );
    assert_eq!((ok.status, ok.header("location")), (303, "/ui/workflows"));
    let session = ok
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("spade_session="))
        .unwrap();
    assert!(session.contains("HttpOnly"), "{session}");
    assert!(session.contains("SameSite=Strict"), "{session}");
    assert!(
        !session.contains("t0ken"),
        "the cookie must not carry the token"
    );
    let page = tab.ok("/ui/workflows");
    assert!(page.body.contains("Log out"));
    // The cookie opens the UI, not the API: scripts use the bearer token.
    let api = reqwest::blocking::Client::new()
        .get(format!("{}/api/workflows", d.base))
        .header("cookie", session.split(';').next().unwrap())
        .send()
        .unwrap();
    assert_eq!(api.status().as_u16(), 401);
    let out = tab.post("/ui/logout", &[("csrf", &page.csrf())], &[]);
    assert_eq!(out.status, 303);
    assert_eq!(tab.get("/ui/workflows").status, 303, "logged out");
    assert!(
        !d.proc.log_text().contains("t0ken"),
        "the token reached the log"
    );
}

#[test]
fn run_now_pause_resume_and_backfill_act_once_each_and_are_audited() {
    let project = Project::new();
    project.write(
        "daily.dig",
        "timezone: UTC\nschedule:\n  daily>: 00:00:00\n_export:\n  greeting: hello\n+a:\n  echo>: ${greeting} ${session_date}\n",
    );
    let d = Daemon::start(&project, &[]);
    let db = project.path().join(".spade/spade.db");
    let tab = Tab::new(&d.base);

    // Run now: the session time is fixed by the confirmation, so a second click makes nothing.
    let confirm = tab.ok("/ui/confirm/run_now?workflow=daily");
    let session = Regex::new(r#"name="session_time" value="([^"]+)""#)
        .unwrap()
        .captures(&confirm.body)
        .unwrap()[1]
        .to_owned();
    let form = [
        ("csrf", confirm.csrf()),
        ("workflow", "daily".into()),
        ("session_time", session),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let first = tab.post("/ui/actions/run_now", &form, &[]);
    assert_eq!(first.status, 303, "{}", first.body);
    let attempt = first
        .header("location")
        .trim_start_matches("/ui/attempts/")
        .to_owned();
    assert_eq!(d.wait_done(&attempt)["status"], "success");
    tab.post("/ui/actions/run_now", &form, &[]);
    assert_eq!(rows(&db, "SELECT id FROM attempts").len(), 1);
    let outcomes = rows(&db, "SELECT action, outcome FROM audit ORDER BY id");
    assert_eq!(
        outcomes[0],
        vec!["run_now".to_owned(), "started".to_owned()]
    );
    assert!(outcomes[1][1].starts_with("refused:"), "{outcomes:?}");

    // The task page: each try with its evaluated params.
    let page = tab.ok(&format!("/ui/attempts/{attempt}"));
    let task = Regex::new(&format!(
        r#"href="/ui/attempts/{attempt}/tasks/(\d+)"><code>\+a<"#
    ))
    .unwrap()
    .captures(&page.body)
    .unwrap_or_else(|| panic!("{}", page.body))[1]
        .to_owned();
    let task_page = tab.ok(&format!("/ui/attempts/{attempt}/tasks/{task}"));
    assert!(
        task_page.body.contains("Try 1")
            && task_page
                .body
                .contains("&quot;greeting&quot;: &quot;hello&quot;"),
        "{}",
        task_page.body
    );

    // Pause with a reason (shown escaped), then resume.
    let wf = tab.ok("/ui/workflows/daily");
    let csrf = wf.csrf();
    let paused = tab.post(
        "/ui/actions/pause",
        &[
            ("csrf", &csrf),
            ("workflow", "daily"),
            ("reason", "<b>db migration</b>"),
        ],
        &[],
    );
    assert_eq!(paused.status, 303);
    let list = tab.ok("/ui/workflows");
    assert!(list.body.contains("paused") && list.body.contains("&lt;b&gt;db migration&lt;/b&gt;"));
    assert_eq!(
        rows(&db, "SELECT disabled_reason FROM schedules"),
        vec![vec!["<b>db migration</b>".to_owned()]]
    );
    tab.post(
        "/ui/actions/resume",
        &[("csrf", &csrf), ("workflow", "daily")],
        &[],
    );
    assert_eq!(
        rows(&db, "SELECT disabled_at FROM schedules"),
        vec![vec!["NULL".to_owned()]]
    );

    // Backfill: the preview lists the exact session times; Create twice makes them once.
    let preview = tab.ok("/ui/confirm/backfill?workflow=daily&from=2026-01-01&to=2026-01-03");
    let times = Regex::new(r#"<li><time datetime="([^"]+)""#).unwrap();
    let listed: Vec<String> = times
        .captures_iter(&preview.body)
        .map(|c| c[1].to_owned())
        .collect();
    assert_eq!(
        listed,
        [
            "2026-01-01T00:00:00+00:00",
            "2026-01-02T00:00:00+00:00",
            "2026-01-03T00:00:00+00:00"
        ]
    );
    let create = [
        ("csrf", csrf.as_str()),
        ("workflow", "daily"),
        ("from", "2026-01-01"),
        ("to", "2026-01-03"),
        ("attempt_name", ""),
    ];
    assert_eq!(tab.post("/ui/actions/backfill", &create, &[]).status, 303);
    assert_eq!(tab.post("/ui/actions/backfill", &create, &[]).status, 303);
    let sessions = |db: &std::path::Path| {
        rows(
            db,
            "SELECT session_time FROM sessions WHERE session_time < '2026-02'",
        )
        .len()
    };
    assert_eq!(sessions(&db), 3);
    let again = tab.ok("/ui/confirm/backfill?workflow=daily&from=2026-01-01&to=2026-01-03");
    assert_eq!(
        again.body.matches("exists already").count(),
        3,
        "{}",
        again.body
    );
    let audit = tab.ok("/ui/workflows/daily");
    assert!(audit.body.contains("3 attempts created") && audit.body.contains("0 attempts created"));
}

#[test]
fn the_live_stream_sends_the_task_table_as_html_until_the_attempt_ends() {
    use std::io::BufRead;
    let project = Project::new();
    project.write("slow.dig", "+wait:\n  sh>: sleep 58\n");
    let d = Daemon::start(&project, &[]);
    let id = start(&d, "slow", "2026-01-05");
    let tab = Tab::new(&d.base);
    let page = tab.ok(&format!("/ui/attempts/{id}"));
    assert!(page
        .body
        .contains(&format!(r#"data-live="/ui/attempts/{id}/live""#)));
    let response = reqwest::blocking::Client::new()
        .get(format!("{}/ui/attempts/{id}/live", d.base))
        .send()
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut lines = std::io::BufReader::new(response).lines();
    let mut events: Vec<(String, String)> = Vec::new();
    let mut kind = String::new();
    let mut killed = false;
    while let Some(Ok(line)) = lines.next() {
        if let Some(k) = line.strip_prefix("event: ") {
            kind = k.to_owned();
        } else if let Some(data) = line.strip_prefix("data: ") {
            events.push((kind.clone(), data.to_owned()));
            if !killed && data.contains("running") {
                killed = true;
                assert_eq!(
                    d.post(&format!("/api/attempts/{id}/kill"), &json!({})).0,
                    204
                );
            }
            if kind == "done" {
                break;
            }
        }
    }
    let (first_kind, first) = &events[0];
    assert_eq!(first_kind, "tasks");
    assert!(
        first.contains(r#"<table class="tasks">"#) && first.contains("+wait"),
        "{first}"
    );
    let (last_kind, last) = events.last().unwrap();
    assert_eq!(last_kind, "done");
    assert!(last.contains("killed"), "{last}");
}

#[test]
fn a_running_trys_log_is_followed_line_by_line_until_it_ends() {
    use std::io::BufRead;
    let project = Project::new();
    // The task's own pauses are its workload: the test only reads what arrives.
    project.write(
        "ticks.dig",
        "+t:\n  sh>: for i in 1 2 3 4 5; do echo \"tick $i <i>\"; sleep 0.3; done\n",
    );
    let d = Daemon::start(&project, &[]);
    let id = start(&d, "ticks", "2026-01-05");
    let tab = Tab::new(&d.base);
    let mut link = String::new();
    wait_until(
        "the log page of the running try",
        crate::api::LONG,
        || {
            let page = tab.get(&format!("/ui/attempts/{id}"));
            let Some(c) = Regex::new(&format!(r#"href="(/ui/attempts/{id}/tasks/\d+/log)""#))
                .unwrap()
                .captures(&page.body)
            else {
                return false;
            };
            let log = tab.get(&c[1]);
            match Regex::new(r#"data-follow="([^"]+)""#)
                .unwrap()
                .captures(&log.body)
            {
                Some(f) if log.body.contains("tick 1 &lt;i&gt;") => {
                    link = f[1].replace("&amp;", "&");
                    true
                }
                _ => false,
            }
        },
        || d.proc.log_text(),
    );
    let response = reqwest::blocking::Client::new()
        .get(format!("{}{link}", d.base))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "{link}");
    let mut got = String::new();
    let mut kinds = Vec::new();
    for line in std::io::BufReader::new(response).lines() {
        let line = line.unwrap();
        if let Some(k) = line.strip_prefix("event: ") {
            kinds.push(k.to_owned());
            if k == "end" {
                break;
            }
        } else if let Some(data) = line.strip_prefix("data: ") {
            got.push_str(data);
        }
    }
    assert_eq!(kinds.last().map(String::as_str), Some("end"));
    assert!(
        got.contains(r#"id="L5""#) && got.contains("tick 5 &lt;i&gt;"),
        "{got}"
    );
    assert!(
        !got.contains("tick 1 "),
        "only what came after the page: {got}"
    );
    assert_eq!(d.wait_done(&id)["status"], "success");
}

#[test]
fn retry_from_a_task_on_the_attempt_page_reruns_it_and_what_follows() {
    let project = Project::new();
    project.write(
        "three.dig",
        "+a:\n  sh>: echo a >> runs\n+b:\n  sh>: echo b >> runs\n+c:\n  sh>: echo c >> runs\n",
    );
    let d = Daemon::start(&project, &[]);
    let id = start(&d, "three", "2026-01-05");
    assert_eq!(d.wait_done(&id)["status"], "success");
    let tab = Tab::new(&d.base);
    let page = tab.ok(&format!("/ui/attempts/{id}"));
    let link = format!("/ui/confirm/retry_from?attempt={id}&amp;task=%2Bthree%2Bb");
    assert!(page.body.contains(&link), "{}", page.body);
    let confirm = tab.ok(&format!(
        "/ui/confirm/retry_from?attempt={id}&task=%2Bthree%2Bb"
    ));
    assert!(
        confirm
            .body
            .contains("Run <strong><code>+three+b</code></strong> and every task after it again"),
        "{}",
        confirm.body
    );
    let csrf = confirm.csrf();
    let host = d.base.trim_start_matches("http://").to_owned();
    let origin = format!("http://{host}");
    let done = tab.post(
        "/ui/actions/retry_from",
        &[
            ("csrf", csrf.as_str()),
            ("attempt", id.as_str()),
            ("task", "+three+b"),
        ],
        &[
            ("origin", origin.as_str()),
            ("sec-fetch-site", "same-origin"),
        ],
    );
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(d.wait_done(&id)["status"], "success");
    assert_eq!(project.read("runs"), "a\nb\nc\nb\nc\n");
}

/// The columns of `table` but `id`, in order.
fn columns_but_id(conn: &rusqlite::Connection, table: &str) -> Vec<String> {
    let mut stmt = conn
        .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
        .unwrap();
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .filter(|n| n != "id")
        .collect();
    names
}

/// `cols` as a select list over `alias`, with some columns replaced by expressions.
fn select_list(cols: &[String], alias: &str, replace: &[(&str, &str)]) -> String {
    cols.iter()
        .map(|c| {
            replace
                .iter()
                .find(|(k, _)| k == c)
                .map_or_else(|| format!("{alias}.{c}"), |(_, v)| (*v).to_owned())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Adds `n` finished attempts to a served project's store in one transaction: each a copy of
/// a real attempt the daemon ran (its session, its attempt row, its root task and the root's
/// children, with the states, definitions and errors they had), nine in ten of `ok` and every
/// tenth of `failed` (which must be of another workflow), each with its own session time (an
/// hour apart) and created a second apart, the newest just before now, ids growing with time
/// as the daemon's own do. The daemon keeps running: SQLite's lock orders the writers.
pub(crate) fn seed_attempts(db: &std::path::Path, n: usize, ok: &str, failed: &str) {
    let mut conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .unwrap();
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    let scols = columns_but_id(&tx, "sessions");
    let acols = columns_but_id(&tx, "attempts");
    let tcols = columns_but_id(&tx, "tasks");
    let max = |t: &str| -> i64 {
        tx.query_row(&format!("SELECT coalesce(max(id), 0) FROM {t}"), [], |r| {
            r.get(0)
        })
        .unwrap()
    };
    let (s0, a0) = (max("sessions"), max("attempts"));
    let failed_workflow: String = tx
        .query_row(
            &format!("SELECT s.workflow FROM attempts a JOIN sessions s ON s.id = a.session_id WHERE a.id = {failed}"),
            [],
            |r| r.get(0),
        )
        .unwrap();
    let failed_workflow = failed_workflow.replace('\'', "''");
    // The template of a new attempt `n`, from its session's workflow.
    let template_of = |n: &str| {
        format!(
            "CASE WHEN (SELECT workflow FROM sessions WHERE id = {n}.session_id) = '{failed_workflow}' \
             THEN {failed} ELSE {ok} END"
        )
    };
    let sessions = select_list(
        &scols,
        "s",
        &[
            (
                "session_time",
                "strftime('%Y-%m-%dT%H:%M:%S+00:00', '2020-01-01', '-' || g.i || ' hours')",
            ),
            (
                "session_uuid",
                "lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || \
                 substr(hex(randomblob(2)), 2) || '-a' || substr(hex(randomblob(2)), 2) || '-' || \
                 hex(randomblob(6)))",
            ),
            (
                "created_at",
                "strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-' || (g.i + 60) || ' seconds')",
            ),
        ],
    );
    tx.execute(
        &format!(
            "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ?1) \
             INSERT INTO sessions ({}) SELECT {sessions} FROM g \
             JOIN attempts a ON a.id = CASE WHEN g.i % 10 = 0 THEN {failed} ELSE {ok} END \
             JOIN sessions s ON s.id = a.session_id ORDER BY g.i DESC",
            scols.join(", ")
        ),
        [i64::try_from(n).unwrap()],
    )
    .unwrap();
    let attempts = select_list(
        &acols,
        "a",
        &[
            ("session_id", "n.id"),
            ("root_task_id", "NULL"),
            ("resume_root_task_id", "NULL"),
            ("owner_id", "NULL"),
            ("created_at", "n.created_at"),
            (
                "finished_at",
                "strftime('%Y-%m-%dT%H:%M:%SZ', n.created_at, '+' || (1 + n.id % 7) || ' seconds')",
            ),
        ],
    );
    tx.execute(
        &format!(
            "INSERT INTO attempts ({}) SELECT {attempts} FROM sessions n JOIN attempts a \
             ON a.id = CASE WHEN n.workflow = '{failed_workflow}' THEN {failed} ELSE {ok} END \
             WHERE n.id > {s0} ORDER BY n.id",
            acols.join(", ")
        ),
        [],
    )
    .unwrap();
    let stamps = [
        ("created_at", "n.created_at"),
        ("updated_at", "n.finished_at"),
        (
            "started_at",
            "CASE WHEN t.started_at IS NULL THEN NULL ELSE n.created_at END",
        ),
        (
            "finished_at",
            "CASE WHEN t.finished_at IS NULL THEN NULL ELSE n.finished_at END",
        ),
        ("attempt_id", "n.id"),
    ];
    let root = select_list(&tcols, "t", &stamps);
    tx.execute(
        &format!(
            "INSERT INTO tasks ({}) SELECT {root} FROM attempts n JOIN attempts a ON a.id = {} \
             JOIN tasks t ON t.id = a.root_task_id WHERE n.id > {a0} ORDER BY n.id",
            tcols.join(", "),
            template_of("n")
        ),
        [],
    )
    .unwrap();
    tx.execute(
        &format!(
            "UPDATE attempts SET root_task_id = (SELECT t.id FROM tasks t \
             WHERE t.attempt_id = attempts.id AND t.parent_id IS NULL) WHERE id > {a0}"
        ),
        [],
    )
    .unwrap();
    let mut child_stamps = stamps.to_vec();
    child_stamps.push(("parent_id", "n.root_task_id"));
    let child = select_list(&tcols, "t", &child_stamps);
    tx.execute(
        &format!(
            "INSERT INTO tasks ({}) SELECT {child} FROM attempts n JOIN attempts a ON a.id = {} \
             JOIN tasks t ON t.parent_id = a.root_task_id WHERE n.id > {a0} ORDER BY n.id, t.id",
            tcols.join(", "),
            template_of("n")
        ),
        [],
    )
    .unwrap();
    tx.commit().unwrap();
}

/// The 95th percentile of `samples` (milliseconds).
pub(crate) fn p95(samples: &[f64]) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() as f64) * 0.95).ceil() as usize - 1]
}

/// A served project with `n` attempts: two real ones (one success of `daily`, one error of
/// `other`) and `n - 2` copies of them.
fn store_of(n: usize) -> (Project, Daemon) {
    let project = Project::new();
    project.write(
        "daily.dig",
        "timezone: UTC\nschedule:\n  daily>: 00:00:00\n+a:\n  echo>: ${session_date}\n+b:\n  echo>: done\n",
    );
    project.write("other.dig", "+a:\n  fail>: the first error line\n");
    let d = Daemon::start(&project, &[]);
    let ok = start(&d, "daily", "2026-01-05");
    assert_eq!(d.wait_done(&ok)["status"], "success");
    let failed = start(&d, "other", "2026-01-05");
    assert_eq!(d.wait_done(&failed)["status"], "error");
    let db = project.path().join(".spade/spade.db");
    let started = std::time::Instant::now();
    seed_attempts(&db, n - 2, &ok, &failed);
    eprintln!(
        "seeded {} attempts in {:.2} s",
        n - 2,
        started.elapsed().as_secs_f64()
    );
    (project, d)
}

/// GET `path` `rounds` times, interleaved over `tabs`; the milliseconds of each, per tab.
fn timings(tabs: &[&Tab], path: &str, rounds: usize) -> Vec<Vec<f64>> {
    let mut out = vec![Vec::new(); tabs.len()];
    for _ in 0..rounds {
        for (i, tab) in tabs.iter().enumerate() {
            let t = std::time::Instant::now();
            let p = tab.get(path);
            out[i].push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(p.status, 200, "{path}");
        }
    }
    out
}

#[test]
fn sessions_with_100000_attempts_page_filter_deep_link_and_render_as_fast_as_with_1000() {
    let (_small_project, small) = store_of(1_000);
    let (project, big) = store_of(100_000);
    let db = project.path().join(".spade/spade.db");
    assert_eq!(
        rows(&db, "SELECT count(*), sum(state = 'failed') FROM attempts"),
        vec![vec!["100000".to_owned(), "10000".to_owned()]]
    );
    // Seeded rows look like the daemon's own: every attempt has its root and tasks.
    assert_eq!(
        rows(
            &db,
            "SELECT count(*) FROM attempts a WHERE root_task_id IS NULL \
             OR (SELECT count(*) FROM tasks t WHERE t.attempt_id = a.id) < 2"
        ),
        vec![vec!["0".to_owned()]]
    );
    let tab = Tab::new(&big.base);
    let ids = |p: &Page| -> Vec<i64> {
        Regex::new(r#"<tr><td><a href="/ui/attempts/(\d+)""#)
            .unwrap()
            .captures_iter(&p.body)
            .map(|c| c[1].parse().unwrap())
            .collect()
    };
    let link = |p: &Page, rel: &str| -> Option<String> {
        Regex::new(&format!(r#"rel="{rel}" href="([^"]+)""#))
            .unwrap()
            .captures(&p.body)
            .map(|c| c[1].replace("&amp;", "&"))
    };

    // Paging: newest first, 50 a page, older pages by keyset and back again.
    let first = tab.ok("/ui/sessions");
    let page1 = ids(&first);
    assert_eq!(page1.len(), 50);
    assert_eq!(page1[0], 100_000, "the newest attempt first");
    assert!(page1.windows(2).all(|w| w[0] > w[1]));
    assert!(link(&first, "prev").is_none());
    let mut page = first;
    let mut seen = page1.clone();
    for _ in 0..3 {
        page = tab.ok(&link(&page, "next").unwrap());
        let these = ids(&page);
        assert_eq!(these.len(), 50);
        assert_eq!(these[0], seen.last().unwrap() - 1, "no gap, no overlap");
        seen.extend(these);
    }
    let back = tab.ok(&link(&page, "prev").unwrap());
    assert_eq!(ids(&back), seen[100..150].to_vec());
    // The last page: no older link.
    let last = tab.ok("/ui/sessions?before=30");
    assert_eq!(ids(&last), (1..30).rev().collect::<Vec<i64>>());
    assert!(link(&last, "next").is_none());

    // Filters in the query string, kept by the pager links; a deep link opens the same page.
    let failed = tab.ok("/ui/sessions?workflow=other&status=error&limit=20");
    let f1 = ids(&failed);
    assert_eq!(f1.len(), 20);
    assert!(
        failed.body.matches("✗</span> error").count() >= 20,
        "{}",
        failed.body
    );
    assert!(!failed.body.contains("✓</span> success"));
    let next = link(&failed, "next").unwrap();
    assert!(
        next.contains("workflow=other")
            && next.contains("status=error")
            && next.contains("limit=20"),
        "{next}"
    );
    let deep = Tab::new(&big.base).ok(&next);
    let f2 = ids(&deep);
    assert_eq!(f2.len(), 20);
    assert!(f2[0] < f1[19]);
    assert!(
        deep.body.contains(r#"<option value="other" selected>"#),
        "{}",
        deep.body
    );
    assert!(deep.body.contains(r#"<option value="error" selected>"#));
    assert_eq!(
        ids(&tab.ok("/ui/sessions?workflow=daily&limit=500")).len(),
        500
    );
    // A seeded attempt opens like a real one.
    let attempt = tab.ok(&format!("/ui/attempts/{}", f2[3]));
    assert!(
        attempt.body.contains("the first error line"),
        "{}",
        attempt.body
    );

    // Page weight: the HTML of a full page and the script.
    let weight = tab.ok("/ui/sessions").body.len();
    let js = Regex::new(r#"src="(/ui/assets/app\.[0-9a-f]{12}\.js)""#)
        .unwrap()
        .captures(&page.body)
        .unwrap()[1]
        .to_owned();
    let script = tab.get(&js).body.len();
    let css = Regex::new(r#"href="(/ui/assets/app\.[0-9a-f]{12}\.css)""#)
        .unwrap()
        .captures(&page.body)
        .unwrap()[1]
        .to_owned();
    let style = tab.get(&css).body.len();

    // Render time: the same requests to both daemons, interleaved, so a busy machine slows
    // both alike. Timed at the client (request sent to body read over loopback), an upper
    // bound of the server's render time. A warm-up round first.
    let small_tab = Tab::new(&small.base);
    let tabs = [&small_tab, &tab];
    timings(&tabs, "/ui/sessions", 5);
    let mut figures = Vec::new();
    for path in [
        "/ui/sessions",
        "/ui/sessions?before=500",
        "/ui/sessions?workflow=other&status=error",
        "/ui/sessions?status=killed",
        "/ui/workflows",
        "/ui",
    ] {
        let t = timings(&tabs, path, 60);
        figures.push((path, p95(&t[0]), p95(&t[1])));
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!(
        "\n/ui/sessions render time, p95 of 60 interleaved requests (load {}):",
        load.trim()
    );
    for (path, small, big) in &figures {
        eprintln!(
            "  {path}: 1,000 attempts {small:.2} ms, 100,000 attempts {big:.2} ms, ratio {:.2}",
            big / small
        );
    }
    eprintln!(
        "page weight of /ui/sessions: {weight} bytes (50 rows); app.js {script} bytes; app.css {style} bytes\n"
    );
    assert!(weight < 64 * 1024, "/ui/sessions weighs {weight} bytes");
    assert!(script < 12 * 1024, "app.js weighs {script} bytes");
    let (_, small_p95, big_p95) = figures[0];
    // The size of the store must not show: within 1.5x of the figure at 1,000 attempts. A
    // flat 1 ms of slack because at these sizes one scheduler hiccup of a loaded 2-core
    // machine is of that order, and it lands on either daemon.
    assert!(
        big_p95 <= small_p95 * 1.5 + 1.0,
        "100,000 attempts: {big_p95:.2} ms p95 against {small_p95:.2} ms at 1,000"
    );
    // 20 ms p95, with the client's own time included. Under CI load (more runnable threads
    // than cores) both daemons are slowed alike, which the ratio above already covers; the
    // absolute bound then scales with the 1,000 figure instead of failing on the machine.
    let busy = small_p95 > 10.0;
    assert!(
        big_p95 <= 20.0 || (busy && big_p95 <= small_p95 * 1.5 + 1.0),
        "100,000 attempts: {big_p95:.2} ms p95"
    );
    // The other sessions pages too: a deep page, a filter, a filter that matches nothing.
    for (path, small, big) in &figures[1..4] {
        assert!(
            *big <= small * 1.5 + 1.0,
            "{path}: {big:.2} ms p95 at 100,000 against {small:.2} ms at 1,000"
        );
    }
}
