//! `last_session_time` / `next_session_time` of a scheduled workflow, through `spade run`.

use crate::util;

#[test]
fn scheduled_workflow_sees_its_neighbouring_sessions_across_dst() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wf.dig"),
        "timezone: America/Los_Angeles\n\
         schedule:\n  daily>: 10:00:00\n\
         +show:\n  echo>: \"${last_session_time} ${next_session_time} ${next_session_date_compact}\"\n",
    )
    .unwrap();
    let out = util::spade()
        .args(["run", "wf", "--session", "2026-03-08", "--project"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 2026-03-08 is the spring-forward day: the previous midnight is PST, the next PDT.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "2026-03-07T00:00:00-08:00 2026-03-09T00:00:00-07:00 20260309\n"
    );
}

#[test]
fn unscheduled_workflow_has_no_schedule_variables() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wf.dig"),
        "+show:\n  echo>: \"${typeof next_session_time}\"\n",
    )
    .unwrap();
    let out = util::spade()
        .args(["run", "wf", "--session", "2026-03-08", "--project"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "undefined\n");
}
