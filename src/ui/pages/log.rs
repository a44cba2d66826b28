//! The log viewer, `GET /ui/attempts/{id}/tasks/{task}/log`: one try's output (`?try=`, the
//! run's fence; default the latest), the last 2,000 lines or 256 KiB by default, earlier and
//! later pages by byte offset (`?before=`, `?offset=`), `?line=N` for the page holding line N
//! (the script sends `#L1234` there after a reload), all in one `<pre>` whose line numbers are
//! drawn by CSS so find and copy see only the text, and a server-side search (`?q=`) with its
//! match count. `.../log/download` streams the whole log in constant memory.
//!
//! A run's log is the output the store holds for it (`echo>` and operators that log through
//! the engine) followed by its file on disk (processes), as the API serves it.

use super::attempt::parse_attempt;
use crate::api::Api;
use crate::ids::{AttemptId, Fence, TaskId};
use crate::ui::guard::Ctx;
use crate::ui::{layout, UiError, UiResult};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures_util::stream::{Stream, StreamExt};
use maud::html;
use serde::Deserialize;
use std::convert::Infallible;
use std::io::{BufRead, Read};

/// A page holds at most this many bytes and lines.
pub const PAGE_BYTES: u64 = 256 * 1024;
pub const PAGE_LINES: usize = 2000;
/// Matching lines listed by a search (all are counted).
pub const SEARCH_LIST: usize = 200;

#[derive(Deserialize, Default)]
pub struct LogQuery {
    #[serde(rename = "try")]
    fence: Option<i64>,
    offset: Option<u64>,
    before: Option<u64>,
    line: Option<u64>,
    q: Option<String>,
}

/// One run's log: the stored text, then the file.
struct Source {
    stored: Vec<u8>,
    file: std::path::PathBuf,
}

impl Source {
    fn reader(&self) -> std::io::Result<Box<dyn BufRead + '_>> {
        let stored = std::io::Cursor::new(&self.stored[..]);
        Ok(match std::fs::File::open(&self.file) {
            Ok(f) => Box::new(std::io::BufReader::new(stored.chain(f))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Box::new(stored),
            Err(e) => return Err(e),
        })
    }

    fn len(&self) -> u64 {
        let on_disk = std::fs::metadata(&self.file).map_or(0, |m| m.len());
        self.stored.len() as u64 + on_disk
    }
}

/// A page of a log.
#[derive(Debug, PartialEq, Eq)]
struct Window {
    start: u64,
    end: u64,
    /// The number of the page's first line (1-based).
    first_line: u64,
    text: String,
    total: u64,
}

enum Want {
    /// The page starting at this byte (moved to the next line start).
    From(u64),
    /// The page ending at this byte.
    Until(u64),
    /// The page holding this line.
    Line(u64),
}

/// Reads one page in a single pass, holding at most one page of bytes.
fn window(src: &mut dyn BufRead, total: u64, want: &Want) -> std::io::Result<Window> {
    let (lo, hi) = match *want {
        Want::Until(to) => (to.min(total).saturating_sub(PAGE_BYTES), to.min(total)),
        Want::From(_) | Want::Line(_) => (0, total),
    };
    let mut pos = 0u64;
    let mut line_no = 1u64;
    let mut first_line = 1u64;
    let mut start = None;
    // The page's lines, with their byte and newline counts kept as they change: counting
    // them again for every line read made a 100,000-line log take seconds.
    let mut kept: std::collections::VecDeque<Vec<u8>> = std::collections::VecDeque::new();
    let mut kept_bytes = 0u64;
    let mut kept_newlines = 0usize;
    let newline = |l: &[u8]| usize::from(l.last() == Some(&b'\n'));
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = src.read_until(b'\n', &mut line)? as u64;
        if n == 0 {
            break;
        }
        let line_start = pos;
        pos += n;
        let wanted = match *want {
            // From 50 lines before the one asked for, so it is not the page's first.
            Want::Line(target) => line_no + 50 >= target,
            Want::From(from) => line_start >= from,
            Want::Until(_) => line_start >= lo && pos <= hi,
        };
        if wanted && line_start < total {
            if start.is_none() {
                start = Some(line_start);
                first_line = line_no;
            }
            kept_bytes += n;
            kept_newlines += newline(&line);
            kept.push_back(line.clone());
            let too_many = kept_newlines > PAGE_LINES || kept_bytes > PAGE_BYTES;
            if too_many {
                if matches!(want, Want::Until(_)) {
                    // Keep the newest lines: drop from the front.
                    if let Some(first) = kept.pop_front() {
                        kept_bytes -= first.len() as u64;
                        kept_newlines -= newline(&first);
                        start = start.map(|s| s + first.len() as u64);
                        first_line += 1;
                    }
                } else {
                    kept.pop_back();
                    break;
                }
            }
        } else if start.is_some() {
            break;
        }
        line_no += 1;
    }
    let kept: Vec<u8> = kept.into_iter().flatten().collect();
    let start = start.unwrap_or(match *want {
        Want::From(from) => from.min(total),
        Want::Until(_) => hi,
        Want::Line(_) => total,
    });
    Ok(Window {
        start,
        end: start + kept.len() as u64,
        first_line,
        text: String::from_utf8_lossy(&kept).into_owned(),
        total,
    })
}

/// Lines containing `needle` (ASCII case-insensitive): their count, and the first ones.
fn search(src: &mut dyn BufRead, needle: &str) -> std::io::Result<(u64, Vec<(u64, String)>)> {
    let needle = needle.to_ascii_lowercase();
    let mut count = 0;
    let mut listed = Vec::new();
    let mut line = Vec::new();
    let mut n = 0u64;
    loop {
        line.clear();
        if src.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        n += 1;
        let text = String::from_utf8_lossy(&line);
        if text.to_ascii_lowercase().contains(&needle) {
            count += 1;
            if listed.len() < SEARCH_LIST {
                listed.push((n, text.trim_end_matches('\n').to_owned()));
            }
        }
    }
    Ok((count, listed))
}

struct Located {
    attempt: AttemptId,
    task: crate::store::api::TaskRow,
    fences: Vec<i64>,
    fence: i64,
}

async fn locate(api: &Api, id: &str, task: &str, fence: Option<i64>) -> UiResult<Located> {
    let attempt = parse_attempt(id)?;
    let task_id = task
        .parse::<i64>()
        .map(TaskId)
        .map_err(|_| UiError::bad_request(format!("invalid task id `{task}`")))?;
    let (tasks, runs) = crate::ui::read(api, "ui_log_task", move |tx| {
        Ok((
            crate::store::api::tasks(tx, attempt)?,
            crate::store::ui::runs(tx, attempt)?,
        ))
    })
    .await?;
    let task = tasks.into_iter().find(|t| t.id == task_id).ok_or_else(|| {
        UiError::not_found(format!("task {task_id} is not a task of attempt {attempt}"))
    })?;
    let fences: Vec<i64> = runs
        .iter()
        .filter(|r| r.task == task_id)
        .map(|r| r.fence)
        .collect();
    let fence = fence.unwrap_or(task.fence);
    if !fences.contains(&fence) {
        return Err(UiError::not_found(format!(
            "task {task_id} has no try {fence}"
        )));
    }
    Ok(Located {
        attempt,
        task,
        fences,
        fence,
    })
}

async fn source(api: &Api, l: &Located) -> UiResult<Source> {
    let engine = api.handle.engine.clone();
    let (task, fence) = (l.task.id, l.fence);
    let stored = crate::api::blocking(move || engine.task_log(task, Fence(fence))).await?;
    Ok(Source {
        stored: stored.into_bytes(),
        file: crate::executor::run_dir(&api.handle.state_dir, l.attempt)
            .join(crate::api::shapes::log_file_name(task, fence)),
    })
}

fn io_error(e: std::io::Error) -> UiError {
    UiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("cannot read the log: {e}"),
    )
}

pub async fn page(
    State(api): State<Api>,
    Extension(ctx): Extension<Ctx>,
    Path((id, task)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> UiResult<Response> {
    let l = locate(&api, &id, &task, q.fence).await?;
    let src = source(&api, &l).await?;
    let want = match (q.line, q.offset, q.before) {
        (Some(n), _, _) => Want::Line(n.max(1)),
        (None, Some(o), _) => Want::From(o),
        (None, None, Some(b)) => Want::Until(b),
        (None, None, None) => Want::Until(u64::MAX),
    };
    let needle = q.q.clone().filter(|s| !s.is_empty());
    let (w, found) = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
        let total = src.len();
        let w = window(&mut *src.reader()?, total, &want)?;
        let found = match needle {
            Some(n) => Some(search(&mut *src.reader()?, &n)?),
            None => None,
        };
        Ok((w, found))
    })
    .await
    .map_err(|e| UiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(io_error)?;
    let base = format!("/ui/attempts/{}/tasks/{}/log", l.attempt, l.task.id);
    let fence = l.fence;
    // A running try shown to its end is followed: the script appends what the stream sends.
    let running = l.task.fence == fence && l.task.state == "running";
    let next_line = w.first_line + w.text.lines().count() as u64;
    let follow = (running && w.end == w.total).then(|| {
        format!(
            "{base}/follow?try={fence}&offset={}&line={next_line}",
            w.end
        )
    });
    let body = html! {
        h1 { "Log of " code { (l.task.full_name) } }
        p { a href={"/ui/attempts/" (l.attempt)} { "← attempt " (l.attempt) } }
        nav.tabs aria-label="tries" {
            @for (i, f) in l.fences.iter().enumerate() {
                a href={(base) "?try=" (f)} aria-current=[(*f == fence).then_some("page")] { "try " (i + 1) }
            }
        }
        form method="get" action=(base) class="inline search" role="search" {
            input type="hidden" name="try" value=(fence);
            label { "Search " input type="search" name="q" value=(q.q.as_deref().unwrap_or("")); }
            button type="submit" { "Search" }
            " " a href={(base) "/download?try=" (fence)} download { "Download (" (w.total) " bytes)" }
        }
        @if let Some((count, lines)) = &found {
            section.results aria-live="polite" {
                p.count { (count) @if *count == 1 { " matching line" } @else { " matching lines" } }
                ol.matches {
                    @for (n, text) in lines {
                        li { a href={(base) "?try=" (fence) "&line=" (n) "#L" (n)} { "L" (n) } " " code { (text) } }
                    }
                }
            }
        }
        p.window { "Bytes " (w.start) "–" (w.end) " of " (w.total) }
        nav.pager aria-label="log pages" {
            @if w.start > 0 { a rel="prev" href={(base) "?try=" (fence) "&before=" (w.start)} { "← Earlier" } }
            @if w.end < w.total { a rel="next" href={(base) "?try=" (fence) "&offset=" (w.end)} { "Later →" } }
        }
        @if follow.is_some() {
            p #follow-note aria-live="polite" { "Following this running try: new lines appear below." }
        }
        pre.numbered.log #log data-follow=[follow] {
            (lines(w.first_line, &w.text))
        }
    };
    Ok(layout::page(
        &ctx,
        &format!("Log of {}", l.task.full_name),
        layout::Nav::Sessions,
        body,
    ))
}

/// Numbered lines for the `<pre>`: each an anchor target (`#L12`) whose number CSS draws.
fn lines(first: u64, text: &str) -> maud::Markup {
    html! {
        @for (i, line) in text.lines().enumerate() {
            @let n = first + i as u64;
            span.line id={"L" (n)} { a.ln href={"#L" (n)} data-n=(n) aria-hidden="true" tabindex="-1" {} (line) "\n" }
        }
    }
}

/// How often a followed log is read for new output (as the API's event stream does).
const FOLLOW_POLL: std::time::Duration = crate::api::events::FILE_POLL;

/// What a follow stream has sent so far.
struct Following {
    api: Api,
    at: Located,
    src: Source,
    offset: u64,
    line: u64,
    finished: bool,
}

impl Following {
    /// The bytes from `offset` to the end: the rest of the stored text, then the file from
    /// the right place (a seek, not a re-read).
    async fn read_new(&self) -> std::io::Result<Vec<u8>> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let stored = self.src.stored.len() as u64;
        let mut out = self
            .src
            .stored
            .get(usize::try_from(self.offset).unwrap_or(usize::MAX)..)
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        match tokio::fs::File::open(&self.src.file).await {
            Ok(mut f) => {
                f.seek(std::io::SeekFrom::Start(self.offset.saturating_sub(stored)))
                    .await?;
                f.read_to_end(&mut out).await?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(out)
    }

    /// Whether the followed try is over (the task moved on to another try, or stopped).
    async fn over(&self) -> bool {
        let (attempt, task, fence) = (self.at.attempt, self.at.task.id, self.at.fence);
        let tasks = crate::ui::read(&self.api, "ui_log_follow", move |tx| {
            crate::store::api::tasks(tx, attempt)
        })
        .await;
        match tasks {
            Ok(tasks) => !tasks
                .iter()
                .any(|t| t.id == task && t.fence == fence && t.state == "running"),
            Err(_) => true,
        }
    }
}

/// `GET .../log/follow?try=F&offset=N&line=L`: server-sent events of a running try's new
/// lines from byte `N` (numbered from `L`), as the `<pre>`'s own HTML, complete lines only
/// until the try ends; then the rest and an `end` event. Each event's id is the offset after
/// it, so a reconnect can resume there.
pub async fn follow(
    State(api): State<Api>,
    Path((id, task)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> UiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let at = locate(&api, &id, &task, q.fence).await?;
    let src = source(&api, &at).await?;
    let state = Following {
        api,
        at,
        src,
        offset: q.offset.unwrap_or(0),
        line: q.line.unwrap_or(1).max(1),
        finished: false,
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if s.finished {
                return None;
            }
            tokio::time::sleep(FOLLOW_POLL).await;
            // Asked before the read, so nothing written before the end is missed.
            let over = s.over().await;
            let Ok(new) = s.read_new().await else {
                return None;
            };
            let complete = if over {
                new.len()
            } else {
                new.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)
            };
            if complete > 0 {
                let text = String::from_utf8_lossy(&new[..complete]).into_owned();
                let first = s.line;
                s.offset += complete as u64;
                s.line += text.lines().count() as u64;
                s.finished = over;
                let event = Event::default()
                    .event("lines")
                    .id(s.offset.to_string())
                    .data(lines(first, &text).into_string());
                return Some((Ok(event), s));
            }
            if over {
                return None;
            }
        }
    })
    .chain(futures_util::stream::once(async {
        // Not empty: browsers drop an event whose data is empty, and the page never heard
        // the end.
        Ok(Event::default().event("end").data("over"))
    }));
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

pub async fn download(
    State(api): State<Api>,
    Path((id, task)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> UiResult<Response> {
    let l = locate(&api, &id, &task, q.fence).await?;
    let src = source(&api, &l).await?;
    let total = src.len();
    let file = match tokio::fs::File::open(&src.file).await {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_error(e)),
    };
    let head =
        futures_util::stream::iter([Ok::<_, std::io::Error>(axum::body::Bytes::from(src.stored))]);
    let rest = futures_util::stream::unfold(file, |file| async move {
        use tokio::io::AsyncReadExt;
        let mut f = file?;
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(axum::body::Bytes::from(buf)), Some(f)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    let name = format!(
        "attempt-{}-task-{}-try-{}.log",
        l.attempt, l.task.id, l.fence
    );
    let mut r = axum::body::Body::from_stream(head.chain(rest)).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Ok(v) = header::HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CONTENT_LENGTH, header::HeaderValue::from(total));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(lines: usize) -> String {
        (1..=lines).map(|i| format!("line {i}\n")).collect()
    }

    fn win(text: &str, want: &Want) -> Window {
        window(
            &mut std::io::Cursor::new(text.as_bytes()),
            text.len() as u64,
            want,
        )
        .unwrap()
    }

    #[test]
    fn the_default_page_is_the_last_2000_lines() {
        let text = log(5000);
        let w = win(&text, &Want::Until(u64::MAX));
        assert_eq!(w.first_line, 3001);
        assert_eq!(w.text.lines().count(), PAGE_LINES);
        assert!(w.text.starts_with("line 3001\n"));
        assert_eq!(w.end, text.len() as u64);
        let earlier = win(&text, &Want::Until(w.start));
        assert_eq!(earlier.first_line, 1001);
        assert_eq!(earlier.end, w.start);
        let later = win(&text, &Want::From(earlier.end));
        assert_eq!((later.first_line, later.start), (3001, w.start));
    }

    #[test]
    fn a_line_number_finds_its_page_and_a_mid_line_offset_moves_to_the_next_line() {
        let text = log(100_000);
        let w = win(&text, &Want::Line(51_234));
        assert!(w.first_line <= 51_234 && 51_234 < w.first_line + PAGE_LINES as u64);
        assert!(w.text.contains("\nline 51234\n"));
        let mid = win(&text, &Want::From(3));
        assert_eq!(mid.first_line, 2, "{:?}", &mid.text[..20]);
    }

    #[test]
    fn pages_hold_at_most_256_kib() {
        let long: String = (0..2000).map(|i| format!("{i:0>300}\n")).collect();
        let w = win(&long, &Want::Until(u64::MAX));
        assert!(w.text.len() as u64 <= PAGE_BYTES);
        assert!(w.text.ends_with('\n') && w.end == long.len() as u64);
    }

    #[test]
    fn search_counts_every_match_and_lists_the_first() {
        let text = log(1000);
        let (count, listed) =
            search(&mut std::io::Cursor::new(text.as_bytes()), "LINE 99").unwrap();
        assert_eq!(count, 11, "99 and 990..=999");
        assert_eq!(listed[0], (99, "line 99".to_owned()));
    }
}
