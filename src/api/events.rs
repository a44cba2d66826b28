//! `GET /api/attempts/{id}/events`: server-sent events of one attempt. It sends every task's
//! state first, then each change (`task`), each new log chunk of the store and each new piece
//! of a running task's log file (`log`), and the attempt itself when it is done (`attempt`),
//! after which the stream ends. It wakes on the daemon's change notices; log files, which
//! grow without a store transaction, are read every [`FILE_POLL`].

use super::read::parse_id;
use super::{shapes, Api, ApiResult};
use crate::ids::{AttemptId, TaskId};
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::Stream;
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

/// How often the log files of running tasks are read for new output.
pub const FILE_POLL: Duration = Duration::from_millis(250);

/// Log chunks read from the store per wake-up.
const CHUNKS: usize = 1000;

struct Follow {
    api: Api,
    attempt: AttemptId,
    states: HashMap<TaskId, String>,
    last_chunk: i64,
    /// Bytes of each run's log file already sent.
    offsets: HashMap<(TaskId, i64), u64>,
    done: bool,
}

impl Follow {
    /// The events since the last call.
    async fn poll(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        let engine = self.api.handle.engine.clone();
        let attempt = self.attempt;
        let after = self.last_chunk;
        let read = crate::daemon::blocking(move || {
            engine
                .store()
                .read_snapshot("api_events", |tx| {
                    Ok::<_, crate::store::Error>((
                        crate::store::api::attempt(tx, attempt)?,
                        crate::store::api::tasks(tx, attempt)?,
                        crate::store::api::log_chunks_after(tx, attempt, after, CHUNKS)?,
                    ))
                })
                .map_err(Into::into)
        })
        .await;
        let Ok((Some(row), tasks, chunks)) = read else {
            self.done = true;
            return out;
        };
        let names: HashMap<TaskId, &str> =
            tasks.iter().map(|t| (t.id, t.full_name.as_str())).collect();
        let mut changed = Vec::new();
        for t in &tasks {
            if self.states.get(&t.id) != Some(&t.state) {
                self.states.insert(t.id, t.state.clone());
                changed.push(t.id);
                out.push(event(
                    "task",
                    &json!({
                        "id": t.id.to_string(),
                        "fullName": t.full_name,
                        "state": shapes::task_state(&t.state),
                        "retryCount": t.retry_count,
                    }),
                ));
            }
        }
        for (id, task, fence, text) in chunks {
            self.last_chunk = id;
            out.push(log_event(task, fence, names.get(&task).copied(), &text));
        }
        for t in tasks.iter().filter(|t| {
            t.fence > 0 && !t.is_group && (t.state == "running" || changed.contains(&t.id))
        }) {
            // The current run's file while it runs, and its tail once it finished.
            let key = (t.id, t.fence);
            let path = crate::executor::run_dir(&self.api.handle.state_dir, attempt)
                .join(shapes::log_file_name(t.id, t.fence));
            let sent = self.offsets.get(&key).copied().unwrap_or(0);
            if let Ok(bytes) = tokio::fs::read(&path).await {
                let start = usize::try_from(sent).unwrap_or(usize::MAX);
                if let Some(new) = bytes.get(start..).filter(|b| !b.is_empty()) {
                    out.push(log_event(
                        t.id,
                        t.fence,
                        Some(&t.full_name),
                        &String::from_utf8_lossy(new),
                    ));
                }
                self.offsets
                    .insert(key, u64::try_from(bytes.len()).unwrap_or(u64::MAX));
            }
        }
        if row.state != "running" {
            out.push(event("attempt", &shapes::attempt(&row)));
            self.done = true;
        }
        out
    }
}

fn event(kind: &str, data: &serde_json::Value) -> Event {
    Event::default().event(kind).data(data.to_string())
}

fn log_event(task: TaskId, fence: i64, name: Option<&str>, text: &str) -> Event {
    event(
        "log",
        &json!({"taskId": task.to_string(), "fullName": name, "fence": fence, "text": text}),
    )
}

pub async fn stream(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let attempt = AttemptId(parse_id("attempt id", &id)?);
    api.attempt_row(attempt).await?;
    let changes = api.handle.changes.subscribe();
    let follow = Follow {
        api,
        attempt,
        states: HashMap::new(),
        last_chunk: 0,
        offsets: HashMap::new(),
        done: false,
    };
    let stream = futures_util::stream::unfold(
        (follow, changes, VecDeque::<Event>::new(), true),
        |(mut follow, mut changes, mut pending, mut first)| async move {
            loop {
                if let Some(e) = pending.pop_front() {
                    return Some((Ok(e), (follow, changes, pending, first)));
                }
                if follow.done {
                    return None;
                }
                if !first {
                    tokio::select! {
                        got = changes.recv() => {
                            if let Err(tokio::sync::broadcast::error::RecvError::Closed) = got {
                                follow.done = true;
                            }
                        }
                        () = tokio::time::sleep(FILE_POLL) => {}
                    }
                }
                first = false;
                pending.extend(follow.poll().await);
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
