//! The web UI's schedule tools and live stream over HTTP against a real `spade serve`: the
//! schedule in words with a countdown, the grid's cells as links, skip (reschedule) from the
//! workflow page with its exact slots, the audit naming the peer, and the live stream resumed
//! after `Last-Event-ID` with exactly the rows that moved.

// Test helpers: a failed unwrap is a failed test here.
#![allow(clippy::unwrap_used)]

use crate::api::{Daemon, LONG};
use crate::daemon::{rows, wait_until};
use crate::run::Project;
use crate::ui::{start, Tab};
use regex::Regex;
use serde_json::json;
use std::collections::BTreeSet;
use std::io::BufRead;

/// A daily New York schedule: its slots carry offsets, so a zone mistake shows.
const DAILY_NY: &str =
    "timezone: America/New_York\nschedule:\n  daily>: 07:00:00\n+a:\n  echo>: a\n+b:\n  echo>: b\n";

/// The `datetime` of each `<time>` in the cells of class `class`.
fn times_in(body: &str, class: &str) -> Vec<String> {
    Regex::new(&format!(r#"<td class="{class}"><time datetime="([^"]+)""#))
        .unwrap()
        .captures_iter(body)
        .map(|c| c[1].to_owned())
        .collect()
}

#[test]
fn the_workflows_pages_say_the_schedule_in_words_with_a_countdown() {
    let project = Project::new();
    project.write(
        "weekdays.dig",
        "timezone: Asia/Tokyo\nschedule:\n  cron>: 0 9 * * 1-5\n+a:\n  echo>: a\n",
    );
    project.write("ny.dig", DAILY_NY);
    // 2026-01-05 is a Monday; 08:18 in Tokyo is 42 minutes before its 09:00 run.
    let d = Daemon::start(&project, &["--time-origin", "2026-01-04T23:18:00Z"]);
    let tab = Tab::new(&d.base);
    let list = tab.ok("/ui/workflows");
    assert!(
        list.body.contains("cron&gt; 0 9 * * 1-5")
            && list
                .body
                .contains("at 09:00 on Monday through Friday, Asia/Tokyo time"),
        "{}",
        list.body
    );
    assert!(list
        .body
        .contains("every day at 07:00:00, America/New_York time"));
    // The countdown: the server's text, the instant for the script, the server's clock.
    let countdown = Regex::new(r#"<span class="rel" data-at="(\d+)">\(in 42 min\)</span>"#)
        .unwrap()
        .captures(&list.body)
        .unwrap_or_else(|| panic!("no countdown in\n{}", list.body));
    let run: jiff::Timestamp = "2026-01-05T00:00:00Z".parse().unwrap();
    assert_eq!(countdown[1].parse::<i64>().unwrap(), run.as_millisecond());
    let now: i64 = Regex::new(r#"<table class="workflows" data-now="(\d+)""#)
        .unwrap()
        .captures(&list.body)
        .unwrap()[1]
        .parse()
        .unwrap();
    let origin: jiff::Timestamp = "2026-01-04T23:18:00Z".parse().unwrap();
    assert!(
        (0..60_000).contains(&(now - origin.as_millisecond())),
        "data-now is the daemon's clock: {now}"
    );

    // The 12-hour clock setting reads in words too.
    let csrf = tab.ok("/ui/settings").csrf();
    let saved = tab.post(
        "/ui/settings",
        &[
            ("csrf", &csrf),
            ("zone", "UTC"),
            ("zone_name", ""),
            ("theme", "auto"),
            ("clock", "12"),
        ],
        &[],
    );
    assert_eq!(saved.status, 303);
    let page = tab.ok("/ui/workflows/weekdays");
    assert!(
        page.body
            .contains("at 9:00 AM on Monday through Friday, Asia/Tokyo time"),
        "{}",
        page.body
    );
    assert!(page.body.contains(r#"data-now=""#) && page.body.contains(r#"class="rel" data-at=""#));
}

#[test]
fn the_grid_cells_are_links_to_the_task_in_each_attempt() {
    let project = Project::new();
    project.write("ny.dig", DAILY_NY);
    let d = Daemon::start(&project, &[]);
    let first = start(&d, "ny", "2026-01-05");
    assert_eq!(d.wait_done(&first)["status"], "success");
    let tab = Tab::new(&d.base);
    let page = tab.ok("/ui/workflows/ny");
    let cells: Vec<String> = Regex::new(r#"<td><a href="(/ui/attempts/\d+/tasks/\d+)">"#)
        .unwrap()
        .captures_iter(&page.body)
        .map(|c| c[1].to_owned())
        .collect();
    // The root, +a and +b of the one attempt.
    assert_eq!(cells.len(), 3, "{}", page.body);
    assert!(page
        .body
        .contains(r#"<th scope="row"><code>+ny+a</code></th>"#));
    for link in &cells {
        assert!(link.starts_with(&format!("/ui/attempts/{first}/tasks/")));
        tab.ok(link);
    }
}

#[test]
fn skip_from_the_workflow_page_lists_the_exact_slots_and_is_audited_with_the_peer() {
    let project = Project::new();
    project.write("ny.dig", DAILY_NY);
    let d = Daemon::start(&project, &["--time-origin", "2026-03-06T17:00:00Z"]);
    let db = project.path().join(".spade/spade.db");
    let tab = Tab::new(&d.base);
    let page = tab.ok("/ui/workflows/ny");
    assert!(page.body.contains(r#"action="/ui/confirm/skip""#));

    // Three slots over the spring-forward night: the preview says each in New York time.
    let preview = tab.ok("/ui/confirm/skip?workflow=ny&count=3&next_time=");
    assert_eq!(
        times_in(&preview.body, "session"),
        [
            "2026-03-07T00:00:00-05:00",
            "2026-03-08T00:00:00-05:00",
            "2026-03-09T00:00:00-04:00"
        ],
        "{}",
        preview.body
    );
    assert_eq!(
        times_in(&preview.body, "run"),
        [
            "2026-03-07T07:00:00-05:00",
            "2026-03-08T07:00:00-04:00",
            "2026-03-09T07:00:00-04:00"
        ]
    );
    assert!(preview
        .body
        .contains("Skip 3 slots of workflow <strong>ny</strong>"));
    assert!(preview
        .body
        .contains(r#"datetime="2026-03-10T00:00:00-04:00""#));
    // The API's dry run, the same plan.
    let (_, schedules) = d.get("/api/schedules");
    let sid = schedules["schedules"][0]["id"].as_str().unwrap().to_owned();
    let (status, dry) = d.post(
        &format!("/api/schedules/{sid}/skip"),
        &json!({"count": 3, "dryRun": true}),
    );
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["nextScheduleTime"], "2026-03-10T00:00:00-04:00");
    // and the slots it lists are the confirmation's.
    assert_eq!(
        dry["skippedSessionTimes"],
        json!(times_in(&preview.body, "session"))
    );
    assert_eq!(dry["skippedMore"], false);
    // Skip to a time: the slots before its first session.
    let to = tab.ok("/ui/confirm/skip?workflow=ny&next_time=2026-03-08");
    assert_eq!(times_in(&to.body, "session"), ["2026-03-07T00:00:00-05:00"]);
    assert_eq!(tab.get("/ui/confirm/skip?workflow=ny&count=x").status, 400);
    assert_eq!(
        tab.get("/ui/confirm/skip?workflow=ny&count=2&next_time=2026-03-08")
            .status,
        400
    );

    // Do it: the form carries what the preview saw.
    let expect = Regex::new(r#"name="expect_next" value="([^"]+)""#)
        .unwrap()
        .captures(&preview.body)
        .unwrap()[1]
        .to_owned();
    assert_eq!(expect, "2026-03-07T00:00:00-05:00");
    let form = [
        ("csrf", preview.csrf()),
        ("workflow", "ny".to_owned()),
        ("schedule", sid.clone()),
        ("count", "3".to_owned()),
        ("next_time", String::new()),
        ("expect_next", expect),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let done = tab.post("/ui/actions/skip", &form, &[]);
    assert_eq!(
        (done.status, done.header("location")),
        (303, "/ui/workflows/ny")
    );
    let next = || d.get(&format!("/api/schedules/{sid}")).1["nextScheduleTime"].clone();
    assert_eq!(next(), "2026-03-10T00:00:00-04:00");
    // The same form again: the schedule moved since its preview, so nothing is skipped.
    tab.post("/ui/actions/skip", &form, &[]);
    assert_eq!(next(), "2026-03-10T00:00:00-04:00");
    let audit = rows(&db, "SELECT action, actor, outcome FROM audit ORDER BY id");
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert_eq!(audit[0][0], "skip");
    assert_eq!(
        audit[0][2],
        "skipped 3 slots (2026-03-07T00:00:00-05:00 to 2026-03-09T00:00:00-04:00); next session 2026-03-10T00:00:00-04:00"
    );
    assert!(
        audit[1][2].starts_with("refused: the schedule moved since the preview"),
        "{audit:?}"
    );
    // The audit names the way in and the peer's address.
    let by = Regex::new(r"^loopback from 127\.0\.0\.1:\d+$").unwrap();
    assert!(by.is_match(&audit[0][1]), "{audit:?}");
    let page = tab.ok("/ui/workflows/ny");
    assert!(
        page.body.contains("skipped 3 slots") && page.body.contains("loopback from 127.0.0.1:")
    );

    // A count too large to step through is refused at once, not computed for minutes.
    let (status, v) = d.post(
        &format!("/api/schedules/{sid}/skip"),
        &json!({"count": 4_000_000_000u32}),
    );
    assert_eq!(status, 400, "{v}");
    assert_eq!(next(), "2026-03-10T00:00:00-04:00");
}

/// One server-sent event.
#[derive(Debug)]
struct Sse {
    kind: String,
    id: Option<String>,
    data: String,
}

/// Reads events off a live stream.
struct Stream {
    lines: std::io::Lines<std::io::BufReader<reqwest::blocking::Response>>,
}

impl Stream {
    fn open(d: &Daemon, path: &str, last_event_id: Option<&str>) -> Stream {
        let mut req = reqwest::blocking::Client::new().get(format!("{}{path}", d.base));
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let response = req.send().unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Stream {
            lines: std::io::BufReader::new(response).lines(),
        }
    }

    /// The next event, or `None` when the stream ended.
    fn next(&mut self) -> Option<Sse> {
        let mut event = Sse {
            kind: "message".to_owned(),
            id: None,
            data: String::new(),
        };
        let mut any = false;
        for line in self.lines.by_ref() {
            let line = line.unwrap();
            if line.is_empty() {
                if any {
                    return Some(event);
                }
                continue;
            }
            if let Some(k) = line.strip_prefix("event: ") {
                event.kind = k.to_owned();
                any = true;
            } else if let Some(i) = line.strip_prefix("id: ") {
                event.id = Some(i.to_owned());
            } else if let Some(data) = line.strip_prefix("data: ") {
                event.data.push_str(data);
                any = true;
            }
        }
        None
    }

    /// The next event that is not a `clock` refresh.
    fn next_change(&mut self) -> Sse {
        loop {
            let e = self.next().expect("the stream ended early");
            if e.kind != "clock" {
                return e;
            }
            assert!(e.id.is_none(), "a clock event moves no position: {e:?}");
        }
    }
}

/// The task rows of an event: task id -> its state's word.
fn row_states(html: &str) -> Vec<(String, String)> {
    let row = Regex::new(r#"<tr data-task="(\d+)">(.*?)</tr>"#).unwrap();
    let badge = Regex::new(
        r#"class="badge st-[a-z]+"><span class="glyph" aria-hidden="true">[^<]*</span> ([a-z ]+)</span>"#,
    )
    .unwrap();
    row.captures_iter(html)
        .map(|c| {
            (
                c[1].to_owned(),
                badge.captures(&c[2]).unwrap()[1].to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_live_stream_resumes_after_last_event_id_with_exactly_the_rows_that_moved() {
    let project = Project::new();
    // Each task waits for its gate file: the test opens them one by one.
    let gate =
        |name: &str| format!("+{name}:\n  sh>: while [ ! -e go_{name} ]; do sleep 0.05; done\n");
    project.write(
        "gated.dig",
        &format!("{}{}+c:\n  echo>: c\n{}", gate("a"), gate("b"), gate("d")),
    );
    let d = Daemon::start(&project, &[]);
    let db = project.path().join(".spade/spade.db");
    let id = start(&d, "gated", "2026-01-05");
    let path = format!("/ui/attempts/{id}/live");
    // The root makes its children when it starts; +a then waits for its gate.
    let running_a = format!(
        "SELECT 1 FROM tasks WHERE attempt_id = {id} AND full_name = '+gated+a' AND state = 'running'"
    );
    wait_until(
        "+a to run",
        LONG,
        || rows(&db, &running_a).len() == 1,
        || d.proc.log_text(),
    );
    let task_ids: std::collections::HashMap<String, String> = rows(
        &db,
        &format!("SELECT full_name, id FROM tasks WHERE attempt_id = {id}"),
    )
    .into_iter()
    .map(|r| (r[0].clone(), r[1].clone()))
    .collect();
    assert_eq!(task_ids.len(), 5, "{task_ids:?}");
    let moved_after = |position: &str| -> (BTreeSet<String>, String) {
        let sql = format!(
            "SELECT DISTINCT st.task_id FROM state_transitions st JOIN tasks t ON t.id = st.task_id \
             WHERE t.attempt_id = {id} AND st.id > {position}"
        );
        let tasks = rows(&db, &sql).into_iter().map(|r| r[0].clone()).collect();
        let last = rows(
            &db,
            &format!(
                "SELECT MAX(st.id) FROM state_transitions st JOIN tasks t ON t.id = st.task_id WHERE t.attempt_id = {id}"
            ),
        )[0][0]
            .clone();
        (tasks, last)
    };

    // A first stream: the whole table, then one `rows` event per change.
    let mut first = Stream::open(&d, &path, None);
    let whole = first.next_change();
    assert_eq!(whole.kind, "tasks", "{whole:?}");
    assert!(whole.data.contains(r#"<table class="tasks">"#));
    std::fs::write(project.path().join("go_a"), "").unwrap();
    let a = task_ids["+gated+a"].clone();
    let mut last_id = whole.id.clone().unwrap();
    loop {
        let e = first.next_change();
        assert_eq!(e.kind, "rows", "{e:?}");
        let id_now = e.id.clone().unwrap();
        assert!(
            id_now.parse::<i64>().unwrap() > last_id.parse::<i64>().unwrap(),
            "positions only grow: {last_id} then {id_now}"
        );
        last_id = id_now;
        assert!(e.data.starts_with(r#"<p class="status">"#), "{e:?}");
        if row_states(&e.data).contains(&(a.clone(), "success".to_owned())) {
            break;
        }
    }
    drop(first);

    // While no stream is open, +b and +c finish and +d starts.
    std::fs::write(project.path().join("go_b"), "").unwrap();
    wait_until(
        "+d to run",
        LONG,
        || {
            rows(
                &db,
                &format!(
                    "SELECT state FROM tasks WHERE id = {}",
                    task_ids["+gated+d"]
                ),
            ) == vec![vec!["running".to_owned()]]
        },
        || d.proc.log_text(),
    );
    let (moved, newest) = moved_after(&last_id);
    assert!(!moved.contains(&a), "{moved:?}");
    for name in ["+gated+b", "+gated+c", "+gated+d"] {
        assert!(moved.contains(&task_ids[name]), "{name} moved: {moved:?}");
    }

    // Resumed with Last-Event-ID: exactly the rows that moved since, at the newest position.
    let mut resumed = Stream::open(&d, &path, Some(&last_id));
    let e = resumed.next_change();
    assert_eq!(
        (e.kind.as_str(), e.id.as_deref()),
        ("rows", Some(newest.as_str())),
        "{e:?}"
    );
    let got = row_states(&e.data);
    assert_eq!(
        got.iter().map(|(t, _)| t.clone()).collect::<BTreeSet<_>>(),
        moved,
        "{e:?}"
    );
    let state_of = |name: &str| {
        got.iter()
            .find(|(t, _)| *t == task_ids[name])
            .map(|(_, s)| s.clone())
            .unwrap()
    };
    assert_eq!(
        (
            state_of("+gated+b"),
            state_of("+gated+c"),
            state_of("+gated+d")
        ),
        (
            "success".to_owned(),
            "success".to_owned(),
            "running".to_owned()
        )
    );
    // The script's form of the same (a reopened EventSource sends no header).
    let mut by_query = Stream::open(&d, &format!("{path}?after={last_id}"), None);
    let q = by_query.next_change();
    // The same rows in the same states at the same position (the status line's running
    // duration may have ticked between the two requests, so not the same bytes).
    assert_eq!(
        (q.kind.as_str(), q.id.as_deref(), row_states(&q.data)),
        ("rows", e.id.as_deref(), got.clone())
    );
    drop(by_query);
    // A position this attempt never had: one whole fragment.
    for unknown in ["999999999", "0", "yesterday"] {
        let mut s = Stream::open(&d, &path, Some(unknown));
        let e = s.next_change();
        assert_eq!(
            (e.kind.as_str(), e.id.as_deref()),
            ("tasks", Some(newest.as_str())),
            "Last-Event-ID {unknown}"
        );
        assert!(e.data.contains(r#"<table class="tasks">"#));
    }

    // The resumed stream goes on to the end: +d's change, then `done`, then nothing.
    std::fs::write(project.path().join("go_d"), "").unwrap();
    let mut position: i64 = newest.parse().unwrap();
    loop {
        let e = resumed.next_change();
        let at: i64 = e.id.as_deref().unwrap().parse().unwrap();
        assert!(
            at > position || e.kind == "done",
            "no event repeats a position: {e:?}"
        );
        position = at;
        if e.kind == "done" {
            assert!(e.data.contains("success"), "{e:?}");
            break;
        }
        assert_eq!(e.kind, "rows");
        assert!(
            !row_states(&e.data).iter().any(|(t, _)| *t == a),
            "+a did not move again"
        );
    }
    assert!(resumed.next().is_none(), "the stream ends with the attempt");
    assert_eq!(d.wait_done(&id)["status"], "success");
}

/// The script's relative text and the focused grid cell, in a real browser.
fn active_href(b: &crate::ui_browser::Browser) -> String {
    b.run(async {
        b.c()
            .execute(
                "return document.activeElement.getAttribute('href');",
                vec![],
            )
            .await
            .unwrap()
    })
    .as_str()
    .unwrap_or("")
    .to_owned()
}

fn press(b: &crate::ui_browser::Browser, key: &str) {
    b.run(async {
        b.c()
            .active_element()
            .await
            .unwrap()
            .send_keys(key)
            .await
            .unwrap();
    });
}

#[test]
fn browser_grid_keys_move_between_cells_and_the_countdown_rounds_as_the_server() {
    let Some(b) = crate::ui_browser::Browser::start("UTC") else {
        return;
    };
    let project = Project::new();
    project.write("ny.dig", DAILY_NY);
    let d = Daemon::start(&project, &[]);
    let first = start(&d, "ny", "2026-01-05");
    assert_eq!(d.wait_done(&first)["status"], "success");
    let second = start(&d, "ny", "2026-01-06");
    assert_eq!(d.wait_done(&second)["status"], "success");
    let cells = Tab::new(&d.base).ok("/ui/workflows/ny").body;
    // Row by row, oldest attempt left: the rows are +ny, +ny+a, +ny+b.
    let links: Vec<String> = Regex::new(r#"<td><a href="(/ui/attempts/\d+/tasks/\d+)">"#)
        .unwrap()
        .captures_iter(&cells)
        .map(|c| c[1].to_owned())
        .collect();
    assert_eq!(links.len(), 6, "{cells}");
    b.goto(&format!("{}/ui/workflows/ny", d.base));
    let stops = b.run(async {
        b.c()
            .execute(
                "return Array.from(document.querySelectorAll('table.grid td a')).map(a => a.tabIndex);",
                vec![],
            )
            .await
            .unwrap()
    });
    assert_eq!(
        stops,
        json!([0, -1, -1, -1, -1, -1]),
        "one tab stop for the grid"
    );
    b.run(async {
        b.c()
            .execute("document.querySelector('table.grid td a').focus();", vec![])
            .await
            .unwrap()
    });
    assert_eq!(active_href(&b), links[0]);
    let (right, left, down, up, home, end, enter) = (
        "\u{E014}", "\u{E012}", "\u{E015}", "\u{E013}", "\u{E011}", "\u{E010}", "\u{E007}",
    );
    press(&b, right);
    assert_eq!(active_href(&b), links[1]);
    press(&b, right);
    assert_eq!(active_href(&b), links[1], "the row's end stops the move");
    press(&b, down);
    assert_eq!(active_href(&b), links[3]);
    press(&b, left);
    assert_eq!(active_href(&b), links[2]);
    press(&b, down);
    press(&b, down);
    assert_eq!(active_href(&b), links[4]);
    press(&b, up);
    assert_eq!(active_href(&b), links[2]);
    press(&b, end);
    assert_eq!(active_href(&b), links[3]);
    press(&b, home);
    assert_eq!(active_href(&b), links[2]);
    let stops_now = b.run(async {
        b.c()
            .execute(
                "return Array.from(document.querySelectorAll('table.grid td a')).filter(a => a.tabIndex === 0).length;",
                vec![],
            )
            .await
            .unwrap()
    });
    assert_eq!(stops_now, json!(1), "the tab stop moved with the focus");
    press(&b, enter);
    let target = links[2].clone();
    let deadline = std::time::Instant::now() + LONG;
    while b.path() != target {
        assert!(
            std::time::Instant::now() < deadline,
            "Enter did not open {target}"
        );
        crate::daemon::pause();
    }

    // The script's countdown text is the server's, at every unit's bounds.
    let now: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    for secs in [
        0i64, 44, 45, 61, 2520, 5399, 5400, 7200, 129_599, 129_600, 400_000, -44, -45, -10_800,
        -200_000,
    ] {
        let at = now + jiff::SignedDuration::from_secs(secs);
        let script = b.run(async {
            b.c()
                .execute(
                    "return spadeRelative(arguments[0], arguments[1]);",
                    vec![json!(at.as_millisecond()), json!(now.as_millisecond())],
                )
                .await
                .unwrap()
        });
        assert_eq!(
            script,
            json!(spade::ui::time::relative(at, now)),
            "{secs} s from now"
        );
    }
}
