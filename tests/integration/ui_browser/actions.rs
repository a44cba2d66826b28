//! Actions from the browser: kill (cancelled, then confirmed, and the task's process group
//! gone), retry failed, retry from a task, and a backfill created once when Create is
//! clicked twice.

use super::Browser;
use crate::api::Daemon;
use crate::daemon::{group_members, processes_matching, rows, wait_until};
use crate::run::Project;

/// Reloads the attempt page until its status line says `word`.
fn wait_status(b: &Browser, base: &str, id: &str, word: &str) {
    b.wait_for(&format!("attempt {id} to show {word}"), |b| {
        b.goto(&format!("{base}/ui/attempts/{id}"));
        b.text("#tasks p.status").contains(word)
    });
}

#[test]
fn browser_kill_cancelled_then_confirmed_ends_the_attempt_and_its_process_group() {
    let Some(b) = Browser::start("UTC") else {
        return;
    };
    let project = Project::new();
    // A sleep no other test runs, to find its process.
    let marker = format!("sleep 59.{}", std::process::id());
    project.write("slow.dig", &format!("+wait:\n  sh>: {marker}\n"));
    let d = Daemon::start(&project, &[]);
    let db = project.path().join(".spade/spade.db");
    let id = crate::ui::start(&d, "slow", "2026-01-05");
    let mut pgid = 0;
    wait_until(
        "the task to run",
        crate::api::LONG,
        || {
            let got = rows(
                &db,
                &format!("SELECT pgid FROM tasks WHERE attempt_id = {id} AND pgid IS NOT NULL"),
            );
            pgid = got.first().and_then(|r| r[0].parse().ok()).unwrap_or(0);
            pgid > 0 && !processes_matching(&marker).is_empty()
        },
        || d.proc.log_text(),
    );
    assert!(!group_members(pgid).is_empty());
    b.goto(&format!("{}/ui/attempts/{id}", d.base));
    assert!(b.text("#tasks .status").contains("running"));
    b.screenshot("attempt-running");
    let target = format!("attempt {id} of slow at session 2026-01-05");
    // Cancel: back to the attempt, which still runs.
    b.click("form[action='/ui/confirm/kill'] button");
    b.wait_for("the confirmation", |b| b.path() == "/ui/confirm/kill");
    assert!(
        b.text("p.target").contains(&target),
        "the confirmation names the target"
    );
    b.screenshot("confirm-kill");
    b.click("form.confirm a");
    b.wait_for("the attempt page", |b| {
        b.path() == format!("/ui/attempts/{id}")
    });
    assert!(b.text("#tasks .status").contains("running"));
    assert_eq!(d.get(&format!("/api/attempts/{id}")).1["done"], false);
    assert!(
        !group_members(pgid).is_empty(),
        "a cancelled kill kills nothing"
    );
    // Confirm.
    b.click("form[action='/ui/confirm/kill'] button");
    b.wait_for("the confirmation", |b| b.path() == "/ui/confirm/kill");
    b.click("form.confirm button[type=submit]");
    b.wait_for("the attempt page", |b| {
        b.path() == format!("/ui/attempts/{id}")
    });
    // Without a reload: the live stream (or the first render) shows the end.
    b.wait_for("the attempt to show killed", |b| {
        b.text("#tasks .status").contains("killed")
    });
    assert_eq!(d.get(&format!("/api/attempts/{id}")).1["status"], "killed");
    assert_eq!(
        group_members(pgid),
        Vec::<u32>::new(),
        "process group {pgid} is gone"
    );
    assert!(
        processes_matching(&marker).is_empty(),
        "the task's process is gone"
    );
    assert!(b.text("section table.audit").contains("kill requested"));
    b.screenshot("attempt-killed");
}

#[test]
fn browser_retry_failed_and_retry_from_a_task_run_again_from_their_confirmations() {
    let Some(b) = Browser::start("UTC") else {
        return;
    };
    let project = Project::new();
    project.write(
        "three.dig",
        "+a:\n  sh>: echo a >> runs\n+b:\n  sh>: echo b >> runs; test -f fixed\n+c:\n  sh>: echo c >> runs\n",
    );
    let d = Daemon::start(&project, &[]);
    let id = crate::ui::start(&d, "three", "2026-01-05");
    assert_eq!(d.wait_done(&id)["status"], "error");
    assert_eq!(project.read("runs"), "a\nb\n");
    b.goto(&format!("{}/ui/attempts/{id}", d.base));
    b.click("form[action='/ui/confirm/retry_failed'] button");
    b.wait_for("the confirmation", |b| {
        b.path() == "/ui/confirm/retry_failed"
    });
    assert!(b
        .text("p.target")
        .contains(&format!("attempt {id} of three")));
    project.write("fixed", "");
    b.click("form.confirm button[type=submit]");
    b.wait_for("an attempt page", |b| b.path().starts_with("/ui/attempts/"));
    let retried = b.path().trim_start_matches("/ui/attempts/").to_owned();
    wait_status(&b, &d.base, &retried, "success");
    assert_eq!(
        project.read("runs"),
        "a\nb\nb\nc\n",
        "only the failed task and what follows"
    );

    // Retry from +b on the finished attempt.
    b.click("a[aria-label='retry from +three+b']");
    b.wait_for("the confirmation", |b| b.path() == "/ui/confirm/retry_from");
    assert!(b.text("main").contains("+three+b"));
    b.click("form.confirm button[type=submit]");
    b.wait_for("an attempt page", |b| b.path().starts_with("/ui/attempts/"));
    let again = b.path().trim_start_matches("/ui/attempts/").to_owned();
    d.wait_done(&again);
    wait_status(&b, &d.base, &again, "success");
    assert_eq!(project.read("runs"), "a\nb\nb\nc\nb\nc\n");
    let db = project.path().join(".spade/spade.db");
    let audit = rows(&db, "SELECT action FROM audit ORDER BY id");
    assert_eq!(
        audit,
        vec![
            vec!["retry_failed".to_owned()],
            vec!["retry_from".to_owned()]
        ]
    );
}

#[test]
fn browser_backfill_is_created_once_when_create_is_clicked_twice() {
    let Some(b) = Browser::start("UTC") else {
        return;
    };
    let project = Project::new();
    project.write(
        "daily.dig",
        "timezone: UTC\nschedule:\n  daily>: 00:00:00\n+a:\n  echo>: ${session_date}\n",
    );
    let d = Daemon::start(&project, &[]);
    let db = project.path().join(".spade/spade.db");
    b.goto(&format!("{}/ui/workflows/daily", d.base));
    b.fill(
        "form[action='/ui/confirm/backfill'] input[name=from]",
        "2026-01-01",
    );
    b.fill(
        "form[action='/ui/confirm/backfill'] input[name=to]",
        "2026-01-03",
    );
    b.click("form[action='/ui/confirm/backfill'] button");
    b.wait_for("the preview", |b| b.path() == "/ui/confirm/backfill");
    assert_eq!(b.count("ol.backfill li"), 3);
    b.screenshot("confirm-backfill");
    // Two clicks as fast as WebDriver sends them; then the same form again from history, as
    // an impatient reader would.
    b.run(async {
        let button = b
            .c()
            .find(fantoccini::Locator::Css("form.confirm button[type=submit]"))
            .await
            .unwrap();
        button.click().await.unwrap();
        let _ = button.click().await; // the page may be gone already
    });
    b.wait_for("the workflow page", |b| b.path() == "/ui/workflows/daily");
    b.run(b.c().back()).unwrap();
    b.wait_for("the preview again", |b| b.path() == "/ui/confirm/backfill");
    b.click("form.confirm button[type=submit]");
    b.wait_for("the workflow page", |b| b.path() == "/ui/workflows/daily");
    let posts = rows(
        &db,
        "SELECT outcome FROM audit WHERE action = 'backfill' ORDER BY id",
    );
    assert!(
        posts.len() >= 2,
        "Create reached the daemon at least twice: {posts:?}"
    );
    assert_eq!(posts[0][0], "3 attempts created");
    assert!(
        posts[1..].iter().all(|p| p[0] == "0 attempts created"),
        "{posts:?}"
    );
    assert_eq!(
        rows(
            &db,
            "SELECT count(*) FROM sessions WHERE session_time < '2026-02'"
        ),
        vec![vec!["3".to_owned()]]
    );
    b.goto(&format!(
        "{}/ui/confirm/backfill?workflow=daily&from=2026-01-01&to=2026-01-03",
        d.base
    ));
    assert_eq!(b.text("ol.backfill").matches("exists already").count(), 3);
}
