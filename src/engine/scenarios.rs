//! Engine scenarios driven through `testkit::Harness`: a real store, a scripted executor.

use super::testkit::{
    group, op, parallel, v_int, v_map, v_str, with_retry, workflow, Harness, Script,
};
use super::{AttemptState, Event, Outcome, TaskState};
use crate::dig::{ParallelDef, TaskDef, TaskKind};
use crate::expr::JsonMap;

fn states(h: &Harness) -> Vec<(String, &'static str)> {
    h.live_states()
}

fn state_of(h: &Harness, name: &str) -> &'static str {
    states(h)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, s)| s)
        .unwrap_or_else(|| panic!("no live task {name}: {:?}", states(h)))
}

#[test]
fn sequential_tasks_run_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let wf = workflow(group(
        "+wf",
        vec![
            op("+a", "echo", "a"),
            op("+b", "echo", "b"),
            op("+c", "echo", "c"),
        ],
    ));
    let mut h = Harness::new(dir.path(), wf);
    // Only the first is started before anything completes.
    assert_eq!(h.pending.len(), 1);
    assert_eq!(h.run(), Some(AttemptState::Succeeded));
    assert_eq!(h.started, ["+wf+a", "+wf+b", "+wf+c"]);
    assert_eq!(
        h.engine.attempt_state(h.attempt).unwrap(),
        AttemptState::Succeeded
    );
    assert!(states(&h).iter().all(|(_, s)| *s == "succeeded"));
}

#[test]
fn parallel_children_start_together() {
    let dir = tempfile::tempdir().unwrap();
    let wf = workflow(group(
        "+wf",
        vec![
            parallel(group(
                "+p",
                vec![op("+a", "echo", "a"), op("+b", "echo", "b")],
            )),
            op("+join", "echo", "j"),
        ],
    ));
    let mut h = Harness::new(dir.path(), wf);
    assert_eq!(h.pending.len(), 2);
    assert_eq!(h.run(), Some(AttemptState::Succeeded));
    assert_eq!(h.started, ["+wf+p+a", "+wf+p+b", "+wf+join"]);
}

#[test]
fn parallel_limit_runs_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = group(
        "+p",
        (0..5).map(|i| op(&format!("+t{i}"), "echo", "x")).collect(),
    );
    p.parallel = Some(ParallelDef::Limit(2));
    let mut h = Harness::new(dir.path(), workflow(group("+wf", vec![p])));
    assert_eq!(h.pending.len(), 2);
    h.step();
    assert_eq!(h.pending.len(), 1, "chunk 2 waits for all of chunk 1");
    h.step();
    assert_eq!(h.pending.len(), 2);
    assert_eq!(h.run(), Some(AttemptState::Succeeded));
    assert_eq!(h.started.len(), 5);
}

#[test]
fn background_task_is_joined_by_the_next_normal_task() {
    let dir = tempfile::tempdir().unwrap();
    let mut bg = op("+bg", "sh", "slow");
    bg.background = true;
    let wf = workflow(group(
        "+wf",
        vec![op("+a", "echo", "a"), bg, op("+b", "echo", "b")],
    ));
    let mut h = Harness::new(dir.path(), wf);
    assert_eq!(
        h.started,
        ["+wf+a", "+wf+bg"],
        "background starts with no upstream"
    );
    h.script("+bg", vec![Script::Hold]);
    h.step(); // +a succeeds
    h.step(); // +bg held
    assert!(h.pending.is_empty(), "+b waits for the background task");
    let bg_run = h.held.pop().unwrap();
    h.apply(Event::Completed {
        task: bg_run.task,
        fence: bg_run.fence,
        outcome: Box::new(Outcome::Succeeded {
            store: JsonMap::new(),
            reset_store: Vec::new(),
            export: JsonMap::new(),
            subtasks: None,
        }),
    });
    assert_eq!(h.run(), Some(AttemptState::Succeeded));
    assert_eq!(h.started.last().unwrap(), "+wf+b");
}

#[test]
fn failed_task_skips_later_siblings_and_fails_the_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let wf = workflow(group(
        "+wf",
        vec![
            op("+a", "sh", "a"),
            op("+b", "sh", "b"),
            op("+c", "sh", "c"),
        ],
    ));
    let mut h = Harness::new(dir.path(), wf);
    h.script("+b", vec![Script::Fail]);
    assert_eq!(h.run(), Some(AttemptState::Failed));
    assert_eq!(h.started, ["+wf+a", "+wf+b"]);
    assert_eq!(state_of(&h, "+wf+b"), "failed");
    assert_eq!(state_of(&h, "+wf+c"), "skipped");
    assert_eq!(state_of(&h, "+wf"), "group_error");
    let summary = h.engine.attempt_summary(h.attempt).unwrap();
    assert_eq!(
        summary.failures,
        [("+wf+b".to_owned(), "Command failed with code 1".to_owned())]
    );
}

#[test]
fn failure_does_not_cancel_running_parallel_siblings() {
    let dir = tempfile::tempdir().unwrap();
    let wf = workflow(group(
        "+wf",
        vec![
            parallel(group("+p", vec![op("+a", "sh", "a"), op("+b", "sh", "b")])),
            op("+after", "sh", "x"),
        ],
    ));
    let mut h = Harness::new(dir.path(), wf);
    h.script("+a", vec![Script::Fail]);
    h.step(); // +a fails while +b still runs
    assert_eq!(state_of(&h, "+wf+p+b"), "running");
    assert_eq!(state_of(&h, "+wf+p"), "planned");
    assert_eq!(h.run(), Some(AttemptState::Failed));
    assert_eq!(state_of(&h, "+wf+p+b"), "succeeded");
    assert_eq!(state_of(&h, "+wf+after"), "skipped");
}

#[test]
fn join_after_100_parallel_children_fires_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let children = (0..100)
        .map(|i| op(&format!("+c{i}"), "echo", "x"))
        .collect();
    let wf = workflow(group(
        "+wf",
        vec![parallel(group("+p", children)), op("+join", "echo", "j")],
    ));
    let mut h = Harness::new(dir.path(), wf);
    assert_eq!(h.pending.len(), 100);
    // Complete in reverse order: the join must not depend on which child finishes last.
    let runs: Vec<_> = h.pending.drain(..).rev().collect();
    for (i, run) in runs.into_iter().enumerate() {
        h.apply(Event::Completed {
            task: run.task,
            fence: run.fence,
            outcome: Box::new(Outcome::Succeeded {
                store: JsonMap::new(),
                reset_store: Vec::new(),
                export: JsonMap::new(),
                subtasks: None,
            }),
        });
        let joins = h.starts_of("+join");
        assert_eq!(joins, usize::from(i == 99), "after {} completions", i + 1);
    }
    assert_eq!(h.run(), Some(AttemptState::Succeeded));
    assert_eq!(h.starts_of("+join"), 1);
}

#[test]
fn task_retry_reuses_the_row_with_a_new_fence() {
    let dir = tempfile::tempdir().unwrap();
    let wf = workflow(group("+wf", vec![with_retry(op("+a", "sh", "a"), 2)]));
    let mut h = Harness::new(dir.path(), wf);
    h.script("+a", vec![Script::Fail, Script::Fail, Script::Succeed]);
    assert_eq!(h.run(), Some(AttemptState::Succeeded));
    assert_eq!(h.starts_of("+a"), 3);
    let a = h
        .tasks()
        .into_iter()
        .find(|t| t.full_name == "+wf+a")
        .unwrap();
    assert_eq!((a.retry_count, a.fence.0), (2, 3));
    assert_eq!(h.tasks().len(), 2, "one row for three tries");
}

#[test]
fn task_retry_runs_limit_plus_one_times_then_fails() {
    let dir = tempfile::tempdir().unwrap();
    let wf = workflow(group("+wf", vec![with_retry(op("+a", "sh", "a"), 3)]));
    let mut h = Harness::new(dir.path(), wf);
    h.script("+a", vec![Script::Fail]);
    assert_eq!(h.run(), Some(AttemptState::Failed));
    assert_eq!(h.starts_of("+a"), 4);
}

#[test]
fn non_retryable_failure_ignores_task_retry() {
    let dir = tempfile::tempdir().unwrap();
    let wf = workflow(group("+wf", vec![with_retry(op("+a", "fail", "no"), 3)]));
    let mut h = Harness::new(dir.path(), wf);
    h.script("+a", vec![Script::FailNoRetry]);
    assert_eq!(h.run(), Some(AttemptState::Failed));
    assert_eq!(h.starts_of("+a"), 1);
}

#[test]
fn exponential_retry_waits_grow_and_cap() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = op("+a", "sh", "a");
    a.retry = Some(crate::dig::RetryDef::Policy(crate::dig::RetryPolicy {
        limit: 6,
        interval: std::time::Duration::from_secs(1),
        interval_type: crate::dig::IntervalType::Exponential,
        max_interval: Some(std::time::Duration::from_secs(2)),
        deadline: None,
    }));
    let mut h = Harness::new(dir.path(), workflow(group("+wf", vec![a])));
    let t0 = h.now;
    h.script("+a", vec![Script::Fail]);
    assert_eq!(h.run(), Some(AttemptState::Failed));
    assert_eq!(h.starts_of("+a"), 7);
    assert_eq!((h.now - t0).get_seconds(), 11, "1+2+2+2+2+2");
}

#[test]
fn group_retry_resets_from_the_first_child_with_a_new_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let g = with_retry(
        group(
            "+g",
            vec![
                op("+t1", "echo", "1"),
                op("+t2", "sh", "2"),
                op("+t3", "echo", "3"),
            ],
        ),
        3,
    );
    let mut h = Harness::new(dir.path(), workflow(group("+wf", vec![g])));
    h.script("+t2", vec![Script::Fail]);
    assert_eq!(h.run(), Some(AttemptState::Failed));
    // retry_on_group: each try runs t1 then t2; t3 never runs.
    assert_eq!(
        h.started.concat(),
        "+wf+g+t1+wf+g+t2".repeat(4),
        "{:?}",
        h.started
    );
    let rows = h.tasks();
    let epochs: Vec<i64> = rows
        .iter()
        .filter(|t| t.full_name == "+wf+g+t1")
        .map(|t| t.epoch)
        .collect();
    assert_eq!(epochs, [0, 1, 2, 3]);
    let live_t1: Vec<_> = rows
        .iter()
        .filter(|t| t.full_name == "+wf+g+t1" && t.live)
        .collect();
    assert_eq!(live_t1.len(), 1);
    assert_eq!(live_t1[0].epoch, 3);
    assert_eq!(state_of(&h, "+wf+g+t3"), "skipped");
    assert_eq!(state_of(&h, "+wf+g"), "group_error");
}

#[test]
fn group_retry_that_succeeds_leaves_the_group_succeeded() {
    let dir = tempfile::tempdir().unwrap();
    let g = with_retry(
        group("+g", vec![op("+t1", "sh", "1"), op("+t2", "sh", "2")]),
        5,
    );
    let mut h = Harness::new(dir.path(), workflow(group("+wf", vec![g])));
    h.script("+t2", vec![Script::Fail, Script::Succeed]);
    assert_eq!(h.run(), Some(AttemptState::Succeeded));
    assert_eq!(
        h.starts_of("+t1"),
        2,
        "Digdag #728: no extra tries after a success"
    );
    assert_eq!(state_of(&h, "+wf+g"), "succeeded");
}

#[test]
fn stale_completion_with_an_old_fence_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let wf = workflow(group(
        "+wf",
        vec![with_retry(op("+a", "sh", "a"), 1), op("+b", "sh", "b")],
    ));
    let mut h = Harness::new(dir.path(), wf);
    let first = h.pending.front().cloned().unwrap();
    h.script("+a", vec![Script::Fail, Script::Hold]);
    h.step(); // try 1 fails: retried at once with fence 2
    h.step(); // try 2 held
    let second = h.held.pop().unwrap();
    assert_eq!((first.fence.0, second.fence.0), (1, 2));
    // A late success of try 1 must not complete try 2.
    h.apply(Event::Completed {
        task: first.task,
        fence: first.fence,
        outcome: Box::new(Outcome::Succeeded {
            store: JsonMap::new(),
            reset_store: Vec::new(),
            export: JsonMap::new(),
            subtasks: None,
        }),
    });
    assert_eq!(state_of(&h, "+wf+a"), "running");
    assert!(h.pending.is_empty(), "+b must not start");
    h.apply(Event::Completed {
        task: second.task,
        fence: second.fence,
        outcome: Box::new(Outcome::Failed {
            message: "x".into(),
            error: JsonMap::new(),
            retryable: true,
        }),
    });
    assert_eq!(h.run(), Some(AttemptState::Failed));
}

/// Digdag 0.9.32 - 0.9.42 (issue #1131) copied `for_each>` output on a group retry and ran it
/// again next to the regenerated one; spade never copies generated tasks.
#[test]
fn group_retry_of_a_generator_never_duplicates_generated_children_digdag_1131() {
    let dir = tempfile::tempdir().unwrap();
    let body = v_map(vec![
        ("+for-0", v_map(vec![("echo>", v_str("0"))])),
        ("+for-1", v_map(vec![("echo>", v_str("1"))])),
        ("+for-2", v_map(vec![("echo>", v_str("2"))])),
    ]);
    let root = with_retry(
        group(
            "+wf",
            vec![group(
                "+test",
                vec![
                    op("+echo", "for_each", "x"),
                    op("+failure", "fail", "failed"),
                ],
            )],
        ),
        2,
    );
    let mut h = Harness::new(dir.path(), workflow(root));
    h.script("+echo", vec![Script::Generate(body)]);
    h.script("+failure", vec![Script::FailNoRetry]);
    assert_eq!(h.run(), Some(AttemptState::Failed));
    let out: String = h
        .started
        .iter()
        .filter_map(|n| {
            n.strip_prefix("+wf+test+echo^sub+for-")
                .or(n.ends_with("+failure").then_some("failed"))
        })
        .collect();
    assert_eq!(out, "012failed012failed012failed");
    for i in 0..3 {
        assert_eq!(h.starts_of(&format!("^sub+for-{i}")), 3);
    }
    // Each generator row has exactly one live `^sub`.
    let live_subs = h
        .tasks()
        .into_iter()
        .filter(|t| t.live && t.full_name.ends_with("^sub"))
        .count();
    assert_eq!(live_subs, 1);
}

#[test]
fn generator_with_retry_reruns_itself_and_regenerates() {
    let dir = tempfile::tempdir().unwrap();
    let body = v_map(vec![("fail>", v_str("failed"))]);
    let gen = with_retry(op("+if", "if", "true"), 3);
    let wf = workflow(group("+wf", vec![op("+task", "echo", "task"), gen]));
    let mut h = Harness::new(dir.path(), wf);
    h.script("+if", vec![Script::Generate(body)]);
    h.script("+if^sub", vec![Script::FailNoRetry]);
    assert_eq!(h.run(), Some(AttemptState::Failed));
    // if_operator_fail_retry_only_sub: "taskfailedfailedfailedfailed".
    assert_eq!(h.starts_of("+task"), 1);
    assert_eq!(h.starts_of("+if"), 4);
    assert_eq!(h.starts_of("+if^sub"), 4);
    assert_eq!(state_of(&h, "+wf+if"), "group_error");
}

#[test]
fn error_handler_runs_once_after_the_last_retry_and_does_not_change_the_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = with_retry(op("+a", "sh", "a"), 1);
    a.error = Some(Box::new(op("^error", "echo", "handled")));
    let mut root = group("+wf", vec![a]);
    root.error = Some(Box::new(op("^error", "echo", "root handler")));
    let mut h = Harness::new(dir.path(), workflow(root));
    h.script("+a", vec![Script::Fail]);
    assert_eq!(h.run(), Some(AttemptState::Failed));
    assert_eq!(
        h.started,
        ["+wf+a", "+wf+a", "+wf+a^error", "+wf^error"],
        "`_error` cascades to the root after the retries"
    );
    assert_eq!(state_of(&h, "+wf+a"), "failed");
    assert_eq!(state_of(&h, "+wf+a^error"), "succeeded");
    assert_eq!(state_of(&h, "+wf"), "group_error");
}

#[test]
fn check_runs_after_success_and_its_failure_fails_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = op("+a", "sh", "a");
    a.check = Some(Box::new(op("^check", "sh", "verify")));
    let mut h = Harness::new(
        dir.path(),
        workflow(group("+wf", vec![a, op("+b", "echo", "b")])),
    );
    h.script("+a^check", vec![Script::Fail]);
    assert_eq!(h.run(), Some(AttemptState::Failed));
    assert_eq!(h.started, ["+wf+a", "+wf+a^check"]);
    assert_eq!(state_of(&h, "+wf+a"), "group_error");
    assert_eq!(state_of(&h, "+wf+b"), "skipped");
}

#[test]
fn disabled_task_succeeds_without_running() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = op("+a", "sh", "a");
    a.disable = true;
    let mut h = Harness::new(
        dir.path(),
        workflow(group("+wf", vec![a, op("+b", "sh", "b")])),
    );
    assert_eq!(h.run(), Some(AttemptState::Succeeded));
    assert_eq!(h.started, ["+wf+b"]);
}

#[test]
fn interrupted_three_times_in_a_row_fails() {
    let dir = tempfile::tempdir().unwrap();
    let wf = workflow(group("+wf", vec![with_retry(op("+a", "sh", "a"), 5)]));
    let mut h = Harness::new(dir.path(), wf);
    h.script("+a", vec![Script::Hold]);
    for round in 1..=3 {
        h.step();
        assert_eq!(h.held.len(), 1);
        let run = h.held.pop().unwrap();
        h.apply(Event::Spawned {
            task: run.task,
            fence: run.fence,
            pid: 100 + round,
            pgid: 100 + round,
        });
        // The engine dies here; a new process recovers.
        h.recover();
        assert_eq!(h.kills.last(), Some(&(100 + round)));
    }
    assert_eq!(h.finished, Some(AttemptState::Failed));
    assert_eq!(h.starts_of("+a"), 3, "interruptions do not use up `_retry`");
    let a = h
        .tasks()
        .into_iter()
        .find(|t| t.full_name == "+wf+a")
        .unwrap();
    assert_eq!(a.state, TaskState::Failed);
    assert_eq!(a.retry_count, 0);
    assert!(a.error.unwrap().contains("interrupted 3 times in a row"));
}

#[test]
fn recovery_restarts_an_interrupted_run_with_a_new_fence_and_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let wf = workflow(group("+wf", vec![op("+a", "sh", "a"), op("+b", "sh", "b")]));
    let mut h2 = Harness::new(dir.path(), wf);
    let run = h2.pending.front().cloned().unwrap();
    // A fresh engine on the same file, as after `kill -9`.
    h2.restart();
    let again = h2.pending.front().unwrap();
    assert_eq!((again.task, again.fence.0), (run.task, 2));
    assert_eq!(h2.run(), Some(AttemptState::Succeeded));
    // Recovering a finished attempt only reports it finished.
    h2.finished = None;
    h2.recover();
    assert_eq!(h2.finished, Some(AttemptState::Succeeded));
    assert!(h2.pending.is_empty());
}

#[test]
fn retry_interval_waits_for_a_tick() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = op("+a", "sh", "a");
    a.retry = Some(crate::dig::RetryDef::Policy(crate::dig::RetryPolicy {
        limit: 1,
        interval: std::time::Duration::from_secs(10),
        interval_type: crate::dig::IntervalType::Constant,
        max_interval: None,
        deadline: None,
    }));
    let mut h = Harness::new(dir.path(), workflow(group("+wf", vec![a])));
    h.script("+a", vec![Script::Fail, Script::Succeed]);
    h.step();
    assert_eq!(state_of(&h, "+wf+a"), "retry_waiting");
    h.apply(Event::Tick);
    assert!(h.pending.is_empty(), "not due yet");
    assert_eq!(h.run(), Some(AttemptState::Succeeded));
}

#[test]
fn generated_children_see_nothing_of_other_epochs_and_unused_int_helper() {
    // v_int is part of the kit; use it in a generated body param to keep it exercised.
    let dir = tempfile::tempdir().unwrap();
    let body = v_map(vec![(
        "+x",
        v_map(vec![("echo>", v_str("x")), ("n", v_int(1))]),
    )]);
    let mut h = Harness::new(
        dir.path(),
        workflow(group("+wf", vec![op("+gen", "for_each", "x")])),
    );
    h.script("+gen", vec![Script::Generate(body)]);
    assert_eq!(h.run(), Some(AttemptState::Succeeded));
    assert_eq!(h.started, ["+wf+gen", "+wf+gen^sub+x"]);
}

fn obj(v: serde_json::Value) -> JsonMap {
    match v {
        serde_json::Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn task_id(h: &Harness, name: &str) -> crate::ids::TaskId {
    h.tasks()
        .into_iter()
        .find(|t| t.live && t.full_name == name)
        .unwrap_or_else(|| panic!("no live task {name}"))
        .id
}

/// The store layers (objects with key `k` or `obj`) a task's scope holds, in order.
fn store_layers(h: &Harness, name: &str) -> Vec<serde_json::Value> {
    h.engine
        .scope_layers(task_id(h, name), h.now)
        .unwrap()
        .into_iter()
        .filter(|l| l.get("k").is_some() || l.get("obj").is_some())
        .collect()
}

#[test]
fn join_sees_parallel_stores_in_definition_order_and_siblings_see_none() {
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let wf = workflow(group(
        "+wf",
        vec![
            parallel(group(
                "+p",
                vec![
                    op("+a", "py", "a"),
                    op("+b", "py", "b"),
                    op("+c", "py", "c"),
                ],
            )),
            op("+join", "echo", "j"),
        ],
    ));
    let mut h = Harness::new(dir.path(), wf);
    h.script("+a", vec![Script::Store(obj(json!({"k": "a", "a": 1})))]);
    h.script("+b", vec![Script::Store(obj(json!({"k": "b"})))]);
    // Finish b before a: the join still applies a then b (definition order, not finish order).
    let a = h.pending.pop_front().unwrap();
    h.pending.push_back(a);
    assert_eq!(h.run(), Some(AttemptState::Succeeded));
    // One folded layer: a, then b over it.
    assert_eq!(store_layers(&h, "+wf+join"), [json!({"k": "b", "a": 1})]);
    assert!(store_layers(&h, "+wf+p+b").is_empty(), "no edge, no store");
}

/// Digdag's tree order (spec 4.2): each upstream sibling, then all its descendants depth
/// first. Row ids follow instantiation (`+g+b` is inserted before `+g+a+a1`), so id order
/// applied `a1` last.
#[test]
fn stores_apply_in_tree_order_depth_first_not_in_row_id_order() {
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let wf = workflow(group(
        "+wf",
        vec![
            group(
                "+g",
                vec![
                    group("+a", vec![op("+a1", "sh", "a1")]),
                    op("+b", "sh", "b"),
                ],
            ),
            parallel(group(
                "+p",
                vec![
                    group("+x", vec![op("+x1", "sh", "x1")]),
                    op("+y", "sh", "y"),
                ],
            )),
            op("+join", "echo", "j"),
        ],
    ));
    let mut h = Harness::new(dir.path(), wf);
    for (name, k) in [("+a1", "a1"), ("+b", "b"), ("+x1", "x1"), ("+y", "y")] {
        h.script(name, vec![Script::Store(obj(json!({ "k": k, name: 1 })))]);
    }
    // In the parallel group `+y` finishes (and is inserted) before `+x1`.
    assert_eq!(h.run(), Some(AttemptState::Succeeded));
    assert_eq!(params_of(&h, "+wf+g+b").get("k"), Some(&json!("a1")));
    assert_eq!(params_of(&h, "+wf+p+x+x1").get("k"), Some(&json!("b")));
    assert_eq!(params_of(&h, "+wf+join").get("k"), Some(&json!("y")));
    let ids: Vec<String> = h.tasks().into_iter().map(|t| t.full_name).collect();
    let at = |n: &str| ids.iter().position(|i| i == n).unwrap();
    assert!(at("+wf+g+b") < at("+wf+g+a+a1"), "b has the smaller id");
}

#[test]
fn reset_store_drops_keys_of_earlier_stores() {
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let wf = workflow(group(
        "+wf",
        vec![
            op("+a", "py", "a"),
            op("+b", "py", "b"),
            op("+c", "echo", "c"),
        ],
    ));
    let mut h = Harness::new(dir.path(), wf);
    h.script(
        "+a",
        vec![Script::Store(obj(json!({"obj": {"x": 1, "old": true}})))],
    );
    h.script(
        "+b",
        vec![Script::StoreReset(
            obj(json!({"obj": {"x": 3}})),
            vec!["obj".into()],
        )],
    );
    assert_eq!(h.run(), Some(AttemptState::Succeeded));
    let layers = h.engine.scope_layers(task_id(&h, "+wf+c"), h.now).unwrap();
    assert!(layers.contains(&json!({"obj": {"x": 3}})));
    assert!(!layers
        .iter()
        .any(|l| l.get("obj").and_then(|o| o.get("old")).is_some()));
}

#[test]
fn failed_and_retried_runs_store_nothing() {
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let wf = workflow(group(
        "+wf",
        vec![op("+a", "py", "a"), op("+b", "echo", "b")],
    ));
    let mut h = Harness::new(dir.path(), wf);
    h.script("+a", vec![Script::Fail]);
    assert_eq!(h.run(), Some(AttemptState::Failed));
    let _ = json!(null);
    assert!(store_layers(&h, "+wf+b").is_empty());
}

#[test]
fn attempt_dedupe_by_name_is_decided_by_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let wf = workflow(group("+wf", vec![op("+a", "echo", "a")]));
    let req = super::testkit::new_attempt(dir.path(), wf);
    let path = dir.path().join("spade.db");
    let now = jiff::Timestamp::from_second(1_700_000_000).unwrap();
    drop(super::Engine::open(&path).unwrap());
    // Two engines (two connections) racing on the same name.
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let req = req.clone();
                let path = path.clone();
                s.spawn(move || {
                    let e = super::Engine::open(&path).unwrap();
                    e.prepare_attempt(&req, now).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results[0].attempt, results[1].attempt);
    assert_eq!(results[0].session, results[1].session);
    assert_eq!(results.iter().filter(|p| p.created).count(), 1);
    let e = super::Engine::open(&path).unwrap();
    let again = e.prepare_attempt(&req, now).unwrap();
    assert_eq!((again.attempt, again.created), (results[0].attempt, false));
    // Only one root tree was instantiated.
    let roots = e
        .list_tasks(again.attempt)
        .unwrap()
        .into_iter()
        .filter(|t| t.full_name == "+wf")
        .count();
    assert_eq!(roots, 1);
    // Another name is another attempt of the same session.
    let named = e
        .prepare_attempt(
            &super::NewAttempt {
                attempt_name: Some("retry1".into()),
                ..req.clone()
            },
            now,
        )
        .unwrap();
    assert!(named.created);
    assert_eq!(named.session, again.session);
    assert_ne!(named.attempt, again.attempt);
}

#[test]
fn succeeded_attempt_is_returned_and_rerun_resets_it_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let wf = workflow(group("+wf", vec![op("+a", "sh", "a")]));
    let mut h = Harness::new(dir.path(), wf.clone());
    assert_eq!(h.run(), Some(AttemptState::Succeeded));
    let mut req = super::testkit::new_attempt(dir.path(), wf);
    let done = h.engine.prepare_attempt(&req, h.now).unwrap();
    assert_eq!(
        (done.attempt, done.created, done.state, done.resumed),
        (h.attempt, false, AttemptState::Succeeded, None),
        "a succeeded attempt is not resumed"
    );
    req.rerun = true;
    let rerun = h.engine.prepare_attempt(&req, h.now).unwrap();
    assert_eq!(
        (rerun.attempt, rerun.created, rerun.resumed),
        (h.attempt, true, None)
    );
    assert_eq!(
        h.engine.attempt_state(h.attempt).unwrap(),
        AttemptState::Running
    );
    h.finished = None;
    h.recover();
    assert_eq!(h.run(), Some(AttemptState::Succeeded));
    assert_eq!(h.starts_of("+a"), 2);
    let rows = h.tasks();
    assert_eq!(rows.iter().filter(|t| t.full_name == "+wf+a").count(), 2);
    assert_eq!(
        rows.iter().filter(|t| t.live).count(),
        2,
        "old tree is history"
    );
}

/// Prepares the harness's session again (as `spade run` without flags does) and recovers.
fn run_again(
    h: &mut Harness,
    dir: &std::path::Path,
    wf: crate::dig::Workflow,
    rerun: bool,
) -> super::PreparedAttempt {
    let mut req = super::testkit::new_attempt(dir, wf);
    req.rerun = rerun;
    let p = h.engine.prepare_attempt(&req, h.now).unwrap();
    assert_eq!(p.attempt, h.attempt, "the same attempt row");
    h.finished = None;
    h.recover();
    p
}

/// The params a task's (only or last) run started with.
fn params_of(h: &Harness, full_name: &str) -> JsonMap {
    let i = h
        .started
        .iter()
        .rposition(|n| n == full_name)
        .unwrap_or_else(|| panic!("{full_name} never started: {:?}", h.started));
    h.started_params[i].clone()
}

#[test]
fn failed_attempt_resumes_keeping_succeeded_tasks_and_their_stores() {
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let wf = workflow(group(
        "+wf",
        vec![
            op("+t1", "sh", "1"),
            op("+t2", "sh", "2"),
            op("+t3", "sh", "3"),
            op("+t4", "sh", "4"),
        ],
    ));
    let mut h = Harness::new(dir.path(), wf.clone());
    h.script("+t1", vec![Script::Store(obj(json!({"k": "from t1"})))]);
    h.script("+t3", vec![Script::Fail, Script::Succeed]);
    assert_eq!(h.run(), Some(AttemptState::Failed));
    assert_eq!(h.started, ["+wf+t1", "+wf+t2", "+wf+t3"]);

    let req = super::testkit::new_attempt(dir.path(), wf.clone());
    let p = h.engine.prepare_attempt(&req, h.now).unwrap();
    assert_eq!(
        (p.attempt, p.created, p.state, p.resumed),
        (h.attempt, true, AttemptState::Running, Some(2)),
        "a failed attempt resumes and keeps t1 and t2"
    );
    h.finished = None;
    h.recover();
    assert_eq!(h.run(), Some(AttemptState::Succeeded));
    assert_eq!(
        h.started,
        ["+wf+t1", "+wf+t2", "+wf+t3", "+wf+t3", "+wf+t4"],
        "t1 and t2 are not started again"
    );
    assert_eq!(params_of(&h, "+wf+t4").get("k"), Some(&json!("from t1")));
    assert_eq!(state_of(&h, "+wf+t1"), "succeeded");
    assert_eq!(
        h.tasks().iter().filter(|t| t.live).count(),
        5,
        "a fresh live tree"
    );
    assert_eq!(
        h.tasks().iter().filter(|t| !t.live).count(),
        5,
        "the failed try stays as history"
    );

    // A second resume of the now succeeded attempt is a no-op; --rerun runs everything.
    run_again(&mut h, dir.path(), wf.clone(), false);
    assert_eq!(h.finished, Some(AttemptState::Succeeded));
    assert_eq!(h.started.len(), 5);
    run_again(&mut h, dir.path(), wf, true);
    assert_eq!(h.run(), Some(AttemptState::Succeeded));
    assert_eq!(h.starts_of("+t1"), 2, "--rerun keeps nothing");
    assert_eq!(h.starts_of("+t4"), 2);
}

#[test]
fn kept_group_carries_the_stores_and_resets_of_its_subtree() {
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let wf = workflow(group(
        "+wf",
        vec![
            op("+first", "sh", "f"),
            group("+g", vec![op("+a", "sh", "a"), op("+b", "sh", "b")]),
            op("+last", "sh", "l"),
        ],
    ));
    let mut h = Harness::new(dir.path(), wf.clone());
    h.script(
        "+first",
        vec![Script::Store(obj(json!({"gone": 1, "obj": {"x": 1}})))],
    );
    h.script(
        "+a",
        vec![Script::Store(obj(json!({"obj": {"y": 2}, "k": "a"})))],
    );
    h.script(
        "+b",
        vec![Script::StoreReset(
            obj(json!({"k": "b"})),
            vec!["gone".into(), "obj.y".into()],
        )],
    );
    h.script("+last", vec![Script::Fail, Script::Fail, Script::Succeed]);
    assert_eq!(h.run(), Some(AttemptState::Failed));
    let before = params_of(&h, "+wf+last");
    let first = run_again(&mut h, dir.path(), wf.clone(), false);
    assert_eq!(first.resumed, Some(3), "+first, +g+a, +g+b");
    assert_eq!(h.run(), Some(AttemptState::Failed));
    // A resume of a resume: the kept rows of the second try are kept again; the group runs
    // again, its children are kept one by one.
    let second = run_again(&mut h, dir.path(), wf, false);
    assert_eq!(second.resumed, Some(3), "+first, +g+a, +g+b");
    assert_eq!(h.run(), Some(AttemptState::Succeeded));
    assert_eq!(h.starts_of("+a"), 1);
    assert_eq!(h.starts_of("+b"), 1);
    assert_eq!(h.starts_of("+last"), 3);
    let after = params_of(&h, "+wf+last");
    assert_eq!(after.get("k"), Some(&json!("b")));
    assert_eq!(after.get("obj"), Some(&json!({"x": 1})));
    assert_eq!(after.get("gone"), None);
    for key in ["k", "obj", "gone"] {
        assert_eq!(
            after.get(key),
            before.get(key),
            "`{key}` as before the resume"
        );
    }
    assert_eq!(state_of(&h, "+wf+g+a"), "succeeded");
    assert_eq!(state_of(&h, "+wf+g+b"), "succeeded");
}

#[test]
fn resume_regenerates_a_failed_for_each_but_not_a_succeeded_one() {
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let wf = workflow(group(
        "+wf",
        vec![
            op("+fe1", "for_each", "x"),
            op("+fe2", "for_each", "y"),
            op("+last", "sh", "l"),
        ],
    ));
    let body1 = v_map(vec![
        ("+for-0=v=1", v_map(vec![("sh>", v_str("one"))])),
        ("+for-1=v=2", v_map(vec![("sh>", v_str("two"))])),
    ]);
    let body2 = v_map(vec![
        ("+for-0=w=1", v_map(vec![("sh>", v_str("ok"))])),
        ("+for-1=w=2", v_map(vec![("sh>", v_str("flaky"))])),
    ]);
    let mut h = Harness::new(dir.path(), wf.clone());
    h.script("+fe1", vec![Script::Generate(body1)]);
    h.script("+fe2", vec![Script::Generate(body2)]);
    h.script(
        "+fe1^sub+for-1=v=2",
        vec![Script::Store(obj(json!({"k": "fe1 child"})))],
    );
    h.script("+fe2^sub+for-1=w=2", vec![Script::Fail, Script::Succeed]);
    assert_eq!(h.run(), Some(AttemptState::Failed));
    assert_eq!(state_of(&h, "+wf+fe1"), "succeeded");
    assert_eq!(state_of(&h, "+wf+fe2"), "group_error");

    run_again(&mut h, dir.path(), wf, false);
    assert_eq!(h.run(), Some(AttemptState::Succeeded));
    assert_eq!(h.starts_of("+fe1"), 1, "a succeeded generator is kept");
    assert_eq!(h.starts_of("+fe1^sub+for-0=v=1"), 1);
    assert_eq!(h.starts_of("+fe2"), 2, "a failed generator runs again");
    assert_eq!(h.starts_of("+fe2^sub+for-1=w=2"), 2);
    // Digdag's `retry --resume` too keeps a generated task that succeeded when the re-run
    // generator produces the same full name.
    assert_eq!(h.starts_of("+fe2^sub+for-0=w=1"), 1);
    assert_eq!(state_of(&h, "+wf+fe2^sub+for-0=w=1"), "succeeded");
    assert_eq!(
        params_of(&h, "+wf+last").get("k"),
        Some(&json!("fe1 child")),
        "the kept generator carries its children's stores"
    );
}

#[test]
fn killed_attempt_resumes_and_error_handlers_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = op("+b", "sh", "b");
    b.error = Some(Box::new(op("^error", "sh", "handler")));
    let wf = workflow(group("+wf", vec![op("+a", "sh", "a"), b]));
    let mut h = Harness::new(dir.path(), wf.clone());
    h.script("+b", vec![Script::Fail]);
    assert_eq!(h.run(), Some(AttemptState::Failed));
    assert_eq!(h.starts_of("^error"), 1);
    run_again(&mut h, dir.path(), wf.clone(), false);
    assert_eq!(h.run(), Some(AttemptState::Failed));
    assert_eq!(h.starts_of("+a"), 1);
    assert_eq!(
        h.starts_of("^error"),
        2,
        "a handler that succeeded is not kept: its task failed again"
    );

    // A killed try resumes as well.
    run_again(&mut h, dir.path(), wf.clone(), false);
    assert_eq!(h.pending.len(), 1);
    let actions = h.engine.kill_attempt(h.attempt, h.now).unwrap();
    assert!(actions.iter().any(|a| matches!(
        a,
        super::Action::AttemptFinished {
            state: AttemptState::Killed,
            ..
        }
    )));
    h.pending.clear();
    h.script("+b", vec![Script::Succeed]);
    run_again(&mut h, dir.path(), wf, false);
    assert_eq!(h.run(), Some(AttemptState::Succeeded));
    assert_eq!(h.starts_of("+a"), 1);
}

#[test]
fn try_timeout_is_retried_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = with_retry(op("+a", "sh", "a"), 1);
    a.timeout = Some(std::time::Duration::from_secs(30));
    let mut h = Harness::new(dir.path(), workflow(group("+wf", vec![a])));
    assert_eq!(
        h.pending.front().unwrap().timeout,
        Some(std::time::Duration::from_secs(30))
    );
    h.script(
        "+a",
        vec![Script::TimeOut(std::time::Duration::from_secs(30))],
    );
    assert_eq!(h.run(), Some(AttemptState::Failed));
    assert_eq!(h.starts_of("+a"), 2);
    let a = h
        .tasks()
        .into_iter()
        .find(|t| t.full_name == "+wf+a")
        .unwrap();
    assert_eq!(
        a.error.as_deref(),
        Some("try timed out after 30s (_timeout)")
    );
}

#[test]
fn retry_deadline_stops_retries_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = op("+a", "sh", "a");
    a.timeout = Some(std::time::Duration::from_secs(30));
    a.retry = Some(crate::dig::RetryDef::Policy(crate::dig::RetryPolicy {
        limit: 10,
        interval: std::time::Duration::from_secs(20),
        interval_type: crate::dig::IntervalType::Constant,
        max_interval: None,
        deadline: Some(std::time::Duration::from_secs(120)),
    }));
    let mut h = Harness::new(dir.path(), workflow(group("+wf", vec![a])));
    let t0 = h.now;
    let first = h.pending.front().unwrap().clone();
    assert_eq!(
        first.deadline_at,
        Some(super::retry::add(t0, std::time::Duration::from_secs(120)))
    );
    // Each try runs its full 30 s before timing out; retries wait 20 s.
    h.script("+a", vec![Script::Hold]);
    let mut tries = 0;
    while let Some(run) = {
        h.step();
        h.held.pop()
    } {
        tries += 1;
        // A later try keeps the same absolute deadline.
        assert_eq!(run.deadline_at, first.deadline_at);
        h.now = super::retry::add(h.now, std::time::Duration::from_secs(30));
        h.apply(Event::Completed {
            task: run.task,
            fence: run.fence,
            outcome: Box::new(Outcome::TimedOut {
                limit: std::time::Duration::from_secs(30),
            }),
        });
        h.run();
        if h.finished.is_some() {
            break;
        }
    }
    // Tries start at 0, 50, 100; a fourth would start at 150 > 120.
    assert_eq!(tries, 3);
    assert_eq!(h.finished, Some(AttemptState::Failed));
    let a = h
        .tasks()
        .into_iter()
        .find(|t| t.full_name == "+wf+a")
        .unwrap();
    assert_eq!(
        a.error.as_deref(),
        Some("retry deadline of 2m (_retry.deadline) reached after 3 tries; last: try timed out after 30s (_timeout)")
    );
}

/// Prints the cost of one start+complete transaction pair (not asserted: machines differ).
#[test]
fn measure_start_complete_pair() {
    let dir = tempfile::tempdir().unwrap();
    let n = 300;
    let children = (0..n).map(|i| op(&format!("+t{i}"), "echo", "x")).collect();
    let mut h = Harness::new(dir.path(), workflow(group("+wf", children)));
    let t = std::time::Instant::now();
    assert_eq!(h.run(), Some(AttemptState::Succeeded));
    let per = t.elapsed() / n;
    println!("start+complete pair (sequential, {n} tasks): {per:?} per task");
    let dir = tempfile::tempdir().unwrap();
    let children = (0..n).map(|i| op(&format!("+t{i}"), "echo", "x")).collect();
    let mut h = Harness::new(dir.path(), workflow(parallel(group("+wf", children))));
    let t = std::time::Instant::now();
    assert_eq!(h.run(), Some(AttemptState::Succeeded));
    let per = t.elapsed() / n;
    println!("start+complete pair (parallel, {n} siblings): {per:?} per task");
}

/// Loads a real `.dig` text with the real parser and lowering (generated bodies included).
fn load(dir: &std::path::Path, text: &str) -> crate::dig::Workflow {
    let path = dir.join("wf.dig");
    std::fs::write(&path, text).unwrap();
    let mut sources = crate::diag::SourceMap::new();
    let (wf, diags) = crate::dig::load_file(&mut sources, dir, &path);
    wf.unwrap_or_else(|| panic!("{diags:?}"))
}

fn real_harness(dir: &std::path::Path, wf: crate::dig::Workflow) -> Harness {
    // The default lowering (`dig::lower_task`), as `spade run` uses it.
    let mut h = Harness::new(dir, wf);
    h.engine = super::Engine::open(&dir.join("spade.db")).unwrap();
    h
}

#[test]
fn real_dig_file_with_for_each_and_group_retry_runs_generated_children_once_per_try() {
    let dir = tempfile::tempdir().unwrap();
    let wf = load(
        dir.path(),
        "_retry: 2\n\
         +test:\n  \
           +echo:\n    \
             for_each>:\n      \
               count: [0, 1, 2]\n    \
             _do:\n      \
               echo>: ${count}\n  \
           +failure:\n    \
             fail>: failed\n",
    );
    let mut h = real_harness(dir.path(), wf);
    // The fake for_each>: generate one child per value, as the operator will.
    let body = crate::dig::parse_document(
        &mut crate::diag::SourceMap::new(),
        "gen".into(),
        "+for-0=count=0:\n  echo>: 0\n+for-1=count=1:\n  echo>: 1\n+for-2=count=2:\n  echo>: 2\n"
            .into(),
    )
    .unwrap();
    h.script("+echo", vec![Script::Generate(body)]);
    h.script("+failure", vec![Script::FailNoRetry]);
    let first = h.pending.front().unwrap();
    assert_eq!(first.operator, "for_each");
    let def = h.engine.task_def(first.task).unwrap();
    let crate::dig::TaskKind::Operator(call) = def.kind else {
        panic!("operator expected")
    };
    assert!(call.do_block.is_some(), "the generator can read its `_do:`");
    assert_eq!(h.run(), Some(AttemptState::Failed));
    for i in 0..3 {
        assert_eq!(h.starts_of(&format!("+echo^sub+for-{i}=count={i}")), 3);
    }
    assert_eq!(h.starts_of("+failure"), 3);
}

#[test]
fn disabled_group_succeeds_without_children() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = group("+g", vec![op("+x", "sh", "x")]);
    g.disable = true;
    let mut h = Harness::new(
        dir.path(),
        workflow(group("+wf", vec![g, op("+b", "sh", "b")])),
    );
    assert_eq!(h.run(), Some(AttemptState::Succeeded));
    assert_eq!(h.started, ["+wf+b"]);
}

#[test]
fn tick_attempt_only_wakes_its_own_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = op("+a", "sh", "a");
    a.retry = Some(crate::dig::RetryDef::Policy(crate::dig::RetryPolicy {
        limit: 1,
        interval: std::time::Duration::from_secs(10),
        interval_type: crate::dig::IntervalType::Constant,
        max_interval: None,
        deadline: None,
    }));
    let wf = workflow(group("+wf", vec![a]));
    let mut h = Harness::new(dir.path(), wf.clone());
    h.script("+a", vec![Script::Fail]);
    h.step();
    // A second attempt of the same session, by name, also waiting on a retry.
    let req = super::NewAttempt {
        attempt_name: Some("other".into()),
        ..super::testkit::new_attempt(dir.path(), wf)
    };
    let other = h.engine.prepare_attempt(&req, h.now).unwrap().attempt;
    let started = h.engine.recover(other, h.now).unwrap();
    let super::Action::Start(run) = &started[0] else {
        panic!("{started:?}")
    };
    h.engine
        .apply(
            h.now,
            Event::Completed {
                task: run.task,
                fence: run.fence,
                outcome: Box::new(Outcome::Failed {
                    message: "x".into(),
                    error: JsonMap::new(),
                    retryable: true,
                }),
            },
        )
        .unwrap();
    let later = super::retry::add(h.now, std::time::Duration::from_secs(10));
    let actions = h.engine.tick_attempt(h.attempt, later).unwrap();
    let starts: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            super::Action::Start(r) => Some(r.attempt),
            _ => None,
        })
        .collect();
    assert_eq!(starts, [h.attempt]);
}

/// Random trees (groups, parallel/limit, background, retries, `_error`, generators) with random
/// outcomes: every attempt must finish, with every live row terminal and group outcomes
/// consistent with their children. Catches stuck joins and lost wake-ups.
#[test]
fn random_workflows_always_finish_consistently() {
    use rand::{Rng, SeedableRng};
    let seed: u64 = rand::rng().random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    fn tree(rng: &mut rand::rngs::StdRng, name: String, depth: u32) -> crate::dig::TaskDef {
        let mut t = if depth < 3 && rng.random_bool(0.4) {
            let n = rng.random_range(0..5);
            let children = (0..n)
                .map(|i| tree(rng, format!("+n{i}"), depth + 1))
                .collect();
            let mut g = group(&name, children);
            g.parallel = match rng.random_range(0..4) {
                0 => Some(ParallelDef::All(true)),
                1 => Some(ParallelDef::Limit(rng.random_range(1..3))),
                _ => None,
            };
            g
        } else if rng.random_bool(0.15) {
            op(&format!("{name}_gen"), "for_each", "gen")
        } else {
            op(&name, "sh", "x")
        };
        t.background = rng.random_bool(0.1);
        if rng.random_bool(0.2) {
            t = with_retry(t, rng.random_range(0..3));
        }
        if rng.random_bool(0.15) {
            t.error = Some(Box::new(op("^error", "echo", "handler")));
        }
        t
    }
    let mut generated = 0;
    for round in 0..30 {
        let dir = tempfile::tempdir().unwrap();
        let root = tree(&mut rng, "+wf".into(), 0);
        let mut h = Harness::new(dir.path(), workflow(group("+wf", vec![root])));
        let body = v_map(vec![
            ("+g0", v_map(vec![("sh>", v_str("a"))])),
            ("+g1", v_map(vec![("sh>", v_str("b"))])),
        ]);
        h.script("_gen", vec![Script::Generate(body)]);
        for name in ["+n0", "+n1", "+n2", "^sub+g1"] {
            let answers = (0..4)
                .map(|_| match rng.random_range(0..4) {
                    0 => Script::Fail,
                    1 => Script::FailNoRetry,
                    _ => Script::Succeed,
                })
                .collect();
            h.script(name, answers);
        }
        let end = h.run();
        let ctx = format!("seed {seed} round {round}: {:#?}", h.live_states());
        let end = end.unwrap_or_else(|| panic!("attempt did not finish: {ctx}"));
        let rows = h.tasks();
        let live: Vec<_> = rows.iter().filter(|t| t.live).collect();
        assert!(live.iter().all(|t| t.state.is_terminal()), "{ctx}");
        let root_state = live[0].state;
        assert_eq!(
            end == AttemptState::Succeeded,
            root_state == TaskState::Succeeded,
            "{ctx}"
        );
        for t in &live {
            if t.state == TaskState::Skipped {
                assert_eq!(t.fence.0, 0, "a skipped task never ran: {ctx}");
            }
            let kids: Vec<_> = live.iter().filter(|c| c.parent == Some(t.id)).collect();
            if kids.is_empty() {
                continue;
            }
            // `^error` children never change their parent's outcome; others decide it.
            let deciding: Vec<_> = kids
                .iter()
                .filter(|c| !c.full_name.ends_with("^error"))
                .collect();
            match t.state {
                TaskState::Succeeded => assert!(
                    deciding.iter().all(|c| c.state == TaskState::Succeeded),
                    "{} succeeded with a failed child: {ctx}",
                    t.full_name
                ),
                TaskState::GroupError => assert!(
                    deciding.iter().any(|c| c.state.is_error()),
                    "{} failed with no failed child: {ctx}",
                    t.full_name
                ),
                _ => {}
            }
        }
        assert!(h.pending.is_empty() && h.held.is_empty(), "{ctx}");
        generated += h.starts_of("^sub+g0");
    }
    assert!(
        generated > 0,
        "seed {seed}: no generator ran; the test lost its teeth"
    );
}

#[test]
fn killing_an_attempt_cancels_open_tasks_and_kills_running_groups() {
    let dir = tempfile::tempdir().unwrap();
    let wf = workflow(group(
        "+wf",
        vec![
            parallel(group("+p", vec![op("+a", "sh", "a"), op("+b", "sh", "b")])),
            op("+c", "sh", "c"),
        ],
    ));
    let mut h = Harness::new(dir.path(), wf);
    h.script("+a", vec![Script::Succeed]);
    h.script("+b", vec![Script::Hold]);
    h.step();
    h.step();
    let run = h.held.pop().unwrap();
    h.apply(Event::Spawned {
        task: run.task,
        fence: run.fence,
        pid: 42,
        pgid: 42,
    });
    let actions = h.engine.kill_attempt(h.attempt, h.now).unwrap();
    assert!(
        matches!(actions[0], super::Action::Kill { pgid: 42, .. }),
        "{actions:?}"
    );
    assert!(actions.iter().any(|a| matches!(
        a,
        super::Action::AttemptFinished {
            state: AttemptState::Killed,
            ..
        }
    )));
    assert_eq!(
        h.engine.attempt_state(h.attempt).unwrap(),
        AttemptState::Killed
    );
    assert_eq!(state_of(&h, "+wf+p+a"), "succeeded");
    assert_eq!(state_of(&h, "+wf+p+b"), "canceled");
    assert_eq!(state_of(&h, "+wf+c"), "canceled");
    assert_eq!(state_of(&h, "+wf"), "canceled");
    // The killed run's late result is stale.
    h.apply(Event::Completed {
        task: run.task,
        fence: run.fence,
        outcome: Box::new(Outcome::Failed {
            message: "killed".into(),
            error: JsonMap::new(),
            retryable: true,
        }),
    });
    assert_eq!(state_of(&h, "+wf+p+b"), "canceled");
    assert!(h.pending.is_empty());
}

#[test]
fn generating_past_the_task_limit_fails_the_generator() {
    let dir = tempfile::tempdir().unwrap();
    let children: Vec<(String, crate::dig::Value)> = (0..1000)
        .map(|i| (format!("+c{i}"), v_map(vec![("echo>", v_str("x"))])))
        .collect();
    let body = v_map(
        children
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect(),
    );
    let mut h = Harness::new(
        dir.path(),
        workflow(group("+wf", vec![op("+gen", "for_each", "x")])),
    )
    .with_task_limit(1000);
    h.script("+gen", vec![Script::Generate(body)]);
    assert_eq!(h.run(), Some(AttemptState::Failed));
    let gen = h
        .tasks()
        .into_iter()
        .find(|t| t.full_name == "+wf+gen")
        .unwrap();
    let error = gen.error.unwrap();
    assert!(
        error.contains("exceed the limit of 1000 tasks per attempt (2 in its current tree")
            && error.contains("--task-limit"),
        "generator fails instead: {error}"
    );
    assert_eq!(h.started, ["+wf+gen"]);
}

/// Issue 10 item 5: the limit counted every row of the attempt, history included, so a
/// group retry (or a resume, or `--rerun`) of a big generator failed forever.
#[test]
fn task_limit_counts_the_live_tree_not_history_rows() {
    let body = v_map(
        (0..15)
            .map(|i| (format!("+c{i:02}"), v_map(vec![("echo>", v_str("x"))])))
            .collect::<Vec<_>>()
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect(),
    );
    let dir = tempfile::tempdir().unwrap();
    // root, +g, +gen, +f, ^sub and 15 generated: 20 live rows in each try of +g.
    let wf = workflow(group(
        "+wf",
        vec![with_retry(
            group("+g", vec![op("+gen", "for_each", "x"), op("+f", "sh", "f")]),
            2,
        )],
    ));
    let mut h = Harness::new(dir.path(), wf.clone()).with_task_limit(20);
    h.script("+gen", vec![Script::Generate(body.clone())]);
    h.script("+f", vec![Script::Fail, Script::Fail, Script::Succeed]);
    assert_eq!(h.run(), Some(AttemptState::Succeeded));
    assert_eq!(h.starts_of("+gen"), 3, "generated in each of three tries");
    assert!(h.tasks().len() > 40, "history rows exist and did not count");
    // A resume and a --rerun start a new tree: the old one does not count either.
    run_again(&mut h, dir.path(), wf, true);
    assert_eq!(h.run(), Some(AttemptState::Succeeded));
    assert_eq!(h.starts_of("+gen"), 4);
}

/// `(interrupted_count, runs)` of a live task, read from the store.
fn interruptions_and_runs(h: &Harness, name: &str) -> (u32, Vec<(i64, Option<String>)>) {
    let id = task_id(h, name);
    h.engine
        .store()
        .read("test", |tx| {
            let count: u32 = tx
                .query_row(
                    "SELECT interrupted_count FROM tasks WHERE id = ?1",
                    [id.0],
                    |r| r.get(0),
                )
                .map_err(crate::store::sql("test"))?;
            let mut stmt = tx
                .prepare("SELECT fence, outcome FROM task_runs WHERE task_id = ?1 ORDER BY fence")
                .map_err(crate::store::sql("test"))?;
            let runs = stmt
                .query_map([id.0], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(crate::store::sql("test"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(crate::store::sql("test"))?;
            Ok::<_, super::Error>((count, runs))
        })
        .unwrap()
}

/// docs/exec.md used to list "one extra interruption per restart": a journaled
/// completion replayed before `recover` started the next task, `recover` then counted that
/// never-spawned run as interrupted and started it again under a new fence.
#[test]
fn replayed_completion_starts_its_successor_once_and_counts_no_interruption() {
    let dir = tempfile::tempdir().unwrap();
    let wf = workflow(parallel(group(
        "+wf",
        vec![
            op("+x", "sh", "x"),
            group("+chain", vec![op("+a", "sh", "a"), op("+b", "sh", "b")]),
        ],
    )));
    let mut h = Harness::new(dir.path(), wf);
    assert_eq!(h.started, ["+wf+x", "+wf+chain+a"]);
    let x = h.pending.pop_front().unwrap();
    let a = h.pending.pop_front().unwrap();
    h.apply(Event::Spawned {
        task: x.task,
        fence: x.fence,
        pid: 7,
        pgid: 7,
    });
    // spade dies; `+a` left a completion journal, `+x` (spawned) did not.
    h.restart_without_recover();
    let actions = h
        .engine
        .replay(
            h.attempt,
            h.now,
            vec![Event::Completed {
                task: a.task,
                fence: a.fence,
                outcome: Box::new(Outcome::Succeeded {
                    store: JsonMap::new(),
                    reset_store: Vec::new(),
                    export: JsonMap::new(),
                    subtasks: None,
                }),
            }],
        )
        .unwrap();
    let starts: Vec<(String, i64)> = actions
        .iter()
        .filter_map(|act| match act {
            super::Action::Start(run) => Some((run.full_name.clone(), run.fence.0)),
            _ => None,
        })
        .collect();
    assert_eq!(
        starts,
        [("+wf+x".to_owned(), 2), ("+wf+chain+b".to_owned(), 1)],
        "`+b` is started once, under its first fence"
    );
    assert!(actions
        .iter()
        .any(|act| matches!(act, super::Action::Kill { pgid: 7, .. })));
    assert_eq!(
        interruptions_and_runs(&h, "+wf+chain+b"),
        (0, vec![(1, None)]),
        "a run that never reached a process is not an interruption"
    );
    assert_eq!(
        interruptions_and_runs(&h, "+wf+x"),
        (1, vec![(1, Some("interrupted".to_owned())), (2, None)]),
        "a spawned run in flight is"
    );
    assert_eq!(
        interruptions_and_runs(&h, "+wf+chain+a").1,
        [(1, Some("succeeded".to_owned()))]
    );
}

/// Migrations 4 to 6 on a database of schema 3 with an attempt under way: definitions become nodes,
/// run params move to `task_runs`, store folds are filled, and the attempt finishes with the
/// params it would have had.
#[test]
fn a_schema_3_database_migrates_and_its_attempt_finishes() {
    use super::def::legacy;
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spade.db");
    let root = group("+wf", vec![op("+a", "sh", "a"), op("+b", "sh", "b")]);
    let TaskKind::Group(children) = &root.kind else {
        panic!("a group")
    };
    {
        let db = rusqlite::Connection::open(&path).unwrap();
        db.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
        for sql in [
            include_str!("../../schema/001_init.sql"),
            include_str!("../../schema/002_schedule_times.sql"),
            include_str!("../../schema/003_resume.sql"),
        ] {
            db.execute_batch(sql).unwrap();
        }
        let now = "2026-01-01T00:00:00Z";
        db.execute_batch(&format!(
            "INSERT INTO projects VALUES (1, '{dir}', '{now}');
             INSERT INTO revisions VALUES (1, 1, 'wf', 'h', 'UTC', '{{}}', '[]', '{now}');
             INSERT INTO sessions VALUES (1, 1, 'wf', '{now}', 'uuid', '{now}');
             INSERT INTO attempts (id, session_id, attempt_name, revision_id, params, state,
               root_task_id, generation, created_at) VALUES (1, 1, '', 1, '{{}}', 'running', 1, 0, '{now}');
             PRAGMA user_version = 3;",
            dir = dir.path().display()
        ))
        .unwrap();
        let insert =
            "INSERT INTO tasks (id, attempt_id, parent_id, epoch, child_index, full_name, \
            kind, role, definition, export_def, state, pending_upstreams, fence, params, \
            store_params, created_at, updated_at) \
            VALUES (?1, 1, ?2, 0, ?3, ?4, ?5, ?6, ?7, '[]', ?8, 0, ?9, ?10, ?11, ?12, ?12)";
        /// id, parent, child index, name, kind, role, definition, state, fence, params, store.
        type LegacyRow<'a> = (
            i64,
            Option<i64>,
            i64,
            &'a str,
            &'a str,
            &'a str,
            &'a TaskDef,
            &'a str,
            i64,
            Option<&'a str>,
            Option<&'a str>,
        );
        let rows: [LegacyRow; 3] = [
            (
                1, None, 0, "+wf", "group", "root", &root, "planned", 0, None, None,
            ),
            (
                2,
                Some(1),
                0,
                "+wf+a",
                "operator",
                "static",
                &children[0],
                "succeeded",
                1,
                Some(r#"{"x":1}"#),
                Some(r#"{"k":"from a"}"#),
            ),
            (
                3,
                Some(1),
                1,
                "+wf+b",
                "operator",
                "static",
                &children[1],
                "ready",
                0,
                None,
                None,
            ),
        ];
        for (id, parent, index, name, kind, role, d, state, fence, params, store) in rows {
            db.execute(
                insert,
                rusqlite::params![
                    id,
                    parent,
                    index,
                    name,
                    kind,
                    role,
                    legacy::to_json(d),
                    state,
                    fence,
                    params,
                    store,
                    "2026-01-01T00:00:00Z"
                ],
            )
            .unwrap();
        }
        db.execute_batch(
            "INSERT INTO task_edges VALUES (2, 3);
             INSERT INTO task_runs (task_id, fence, started_at, finished_at, outcome)
               VALUES (2, 1, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', 'succeeded');",
        )
        .unwrap();
    }
    let engine = super::Engine::open(&path).unwrap();
    let columns: Vec<String> = engine
        .store()
        .read("test", |tx| {
            let mut stmt = tx
                .prepare("SELECT name FROM pragma_table_info('tasks')")
                .unwrap();
            let names = stmt
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            Ok::<_, super::Error>(names)
        })
        .unwrap();
    assert!(
        !columns.iter().any(|c| c == "definition" || c == "params"),
        "{columns:?}"
    );
    let moved: String = engine
        .store()
        .read("test", |tx| {
            Ok::<_, super::Error>(
                tx.query_row("SELECT params FROM task_runs WHERE task_id = 2", [], |r| {
                    r.get(0)
                })
                .unwrap(),
            )
        })
        .unwrap();
    assert_eq!(moved, r#"{"x":1}"#);
    let actions = engine
        .recover(crate::ids::AttemptId(1), jiff::Timestamp::UNIX_EPOCH)
        .unwrap();
    let Some(super::Action::Start(run)) = actions.first() else {
        panic!("+wf+b starts: {actions:?}")
    };
    assert_eq!(run.full_name, "+wf+b");
    assert_eq!(
        run.params.get("k"),
        Some(&json!("from a")),
        "a's store survives"
    );
    let done = engine
        .apply(
            jiff::Timestamp::UNIX_EPOCH,
            Event::Completed {
                task: run.task,
                fence: run.fence,
                outcome: Box::new(Outcome::Succeeded {
                    store: JsonMap::new(),
                    reset_store: Vec::new(),
                    export: JsonMap::new(),
                    subtasks: None,
                }),
            },
        )
        .unwrap();
    assert!(done.iter().any(|a| matches!(
        a,
        super::Action::AttemptFinished {
            state: AttemptState::Succeeded,
            ..
        }
    )));
}

/// One run as `runs_and_history` reads it: fence, outcome, finished.
type RunRecord = (i64, Option<String>, bool);

/// Every run row and state change of the tasks, by full name: `(fence, outcome, finished)`
/// per run and the states each task went through.
fn runs_and_history(h: &Harness) -> Vec<(String, Vec<RunRecord>, Vec<String>)> {
    h.engine
        .store()
        .read("test", |tx| {
            let names: Vec<(i64, String)> = tx
                .prepare("SELECT id, full_name FROM tasks WHERE kind = 'operator' ORDER BY id")
                .and_then(|mut s| {
                    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(crate::store::sql("test"))?;
            let mut out = Vec::new();
            for (id, name) in names {
                let runs = tx
                    .prepare(
                        "SELECT fence, outcome, finished_at IS NOT NULL FROM task_runs \
                         WHERE task_id = ?1 ORDER BY fence",
                    )
                    .and_then(|mut s| {
                        s.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                            .collect::<Result<Vec<_>, _>>()
                    })
                    .map_err(crate::store::sql("test"))?;
                let states = tx
                    .prepare(
                        "SELECT to_state FROM state_transitions WHERE task_id = ?1 ORDER BY id",
                    )
                    .and_then(|mut s| {
                        s.query_map([id], |r| r.get(0))?
                            .collect::<Result<Vec<String>, _>>()
                    })
                    .map_err(crate::store::sql("test"))?;
                out.push((name, runs, states));
            }
            Ok::<_, super::Error>(out)
        })
        .unwrap()
}

/// A `nop>` completes in the transaction that starts it (`Config::inline`), recorded exactly
/// as a run of the executor: one run row under a new fence, finished and succeeded, and every
/// state of the table on the way (`blocked ready running succeeded`), so nothing of the history
/// or of the fence model is skipped by the fast path.
#[test]
fn inline_nop_runs_are_recorded_as_ordinary_runs_in_their_start_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let wf = workflow(group(
        "+wf",
        vec![
            op("+a", "nop", ""),
            op("+b", "nop", ""),
            op("+c", "echo", "c"),
        ],
    ));
    let mut h = Harness::new(dir.path(), wf);
    // Both `nop>` tasks ended in the recover transaction; `+c` went to the executor.
    assert_eq!(h.ran, ["+wf+a", "+wf+b"]);
    assert_eq!(h.started, ["+wf+c"]);
    assert_eq!(state_of(&h, "+wf+a"), "succeeded");
    assert_eq!(state_of(&h, "+wf+b"), "succeeded");
    assert_eq!(state_of(&h, "+wf+c"), "running");
    assert_eq!(h.run(), Some(AttemptState::Succeeded));
    let seen = runs_and_history(&h);
    for (name, runs, states) in &seen {
        assert_eq!(
            runs,
            &[(1, Some("succeeded".to_owned()), true)],
            "{name}: one finished run under fence 1"
        );
        assert_eq!(
            states,
            &["blocked", "ready", "running", "succeeded"],
            "{name}: every transition recorded"
        );
    }
}

/// One transaction completes at most `INLINE_BATCH` runs inline; the next one goes to the
/// executor as an ordinary start, so a kill between two batches is honoured: nothing after it
/// runs. Without the bound the whole chain would end in the first transaction.
#[test]
fn inline_runs_stop_at_the_batch_bound_and_a_kill_between_batches_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let n = super::INLINE_BATCH as usize + 5;
    let tasks = (0..n)
        .map(|i| op(&format!("+t{i:05}"), "nop", ""))
        .collect();
    let mut h = Harness::new(dir.path(), workflow(group("+wf", tasks)));
    assert_eq!(h.ran.len(), super::INLINE_BATCH as usize);
    assert_eq!(h.pending.len(), 1, "the next nop> goes to the executor");
    let next = h.pending.front().unwrap().full_name.clone();
    assert_eq!(next, format!("+wf+t{:05}", super::INLINE_BATCH));
    let actions = h.engine.kill_attempt(h.attempt, h.now).unwrap();
    assert!(actions.iter().any(|a| matches!(
        a,
        super::Action::AttemptFinished {
            state: AttemptState::Killed,
            ..
        }
    )));
    // The executor's late report of the run it was given is stale; nothing else runs.
    assert!(h.step());
    assert_eq!(h.ran.len(), super::INLINE_BATCH as usize);
    assert!(h.pending.is_empty());
    assert_eq!(state_of(&h, &next), "canceled");
    assert_eq!(state_of(&h, &format!("+wf+t{:05}", n - 1)), "canceled");
}

/// The batch goes on after an executor run completes: a long chain costs a few
/// transactions, and each `nop>` still runs exactly once.
#[test]
fn a_long_nop_chain_runs_each_task_once_across_batches() {
    let dir = tempfile::tempdir().unwrap();
    let n = 2 * super::INLINE_BATCH as usize + 3;
    let tasks = (0..n)
        .map(|i| op(&format!("+t{i:05}"), "nop", ""))
        .collect();
    let mut h = Harness::new(dir.path(), workflow(group("+wf", tasks)));
    assert_eq!(h.run(), Some(AttemptState::Succeeded));
    assert_eq!(h.ran.len() + h.started.len(), n);
    assert_eq!(
        h.started.len(),
        2,
        "one executor start between two full batches"
    );
    for i in 0..n {
        assert_eq!(h.starts_of(&format!("+t{i:05}")), 1);
    }
}

/// `_check` of an inline `nop>` runs after it, as after any success.
#[test]
fn an_inline_nop_runs_its_check() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = op("+a", "nop", "");
    a.check = Some(Box::new(op("^check", "sh", "verify")));
    let mut h = Harness::new(
        dir.path(),
        workflow(group("+wf", vec![a, op("+b", "nop", "")])),
    );
    assert_eq!(h.ran, ["+wf+a"]);
    h.script("+a^check", vec![Script::Fail]);
    assert_eq!(h.run(), Some(AttemptState::Failed));
    assert_eq!(h.started, ["+wf+a^check"]);
    assert_eq!(state_of(&h, "+wf+a"), "group_error");
    assert_eq!(state_of(&h, "+wf+b"), "skipped");
}

/// With the engine's own inliner an `echo>` without `append_file` ends inline and its message
/// is the run's log in the store; one with `append_file` writes a file and so goes to the
/// executor.
#[test]
fn inline_echo_keeps_its_message_as_the_run_log_and_append_file_goes_to_the_executor() {
    let dir = tempfile::tempdir().unwrap();
    let mut append = op("+b", "echo", "x");
    append.params = crate::dig::Map {
        entries: vec![(
            crate::dig::Key {
                name: "append_file".into(),
                span: crate::diag::Span::NONE,
            },
            v_str("out"),
        )],
    };
    let wf = workflow(group("+wf", vec![op("+a", "echo", "hello"), append]));
    // The engine as `spade run` opens it (the harness inlines `nop>` only).
    let engine = super::Engine::open(&dir.path().join("spade.db"))
        .unwrap()
        .with_lowerer(super::testkit::lower_for_tests);
    let now = jiff::Timestamp::from_second(1_700_000_000).unwrap();
    let prepared = engine
        .prepare_attempt(&super::testkit::new_attempt(dir.path(), wf), now)
        .unwrap();
    let actions = engine.recover(prepared.attempt, now).unwrap();
    let ran: Vec<&super::Ran> = actions
        .iter()
        .filter_map(|a| match a {
            super::Action::Ran(r) => Some(&**r),
            _ => None,
        })
        .collect();
    assert_eq!(ran.len(), 1);
    assert_eq!(ran[0].full_name, "+wf+a");
    assert_eq!(ran[0].output.as_deref(), Some("hello"));
    assert_eq!(
        engine.task_log(ran[0].task, ran[0].fence).unwrap(),
        "hello\n"
    );
    let started: Vec<&str> = actions
        .iter()
        .filter_map(|a| match a {
            super::Action::Start(r) => Some(r.full_name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(started, ["+wf+b"]);
}
