//! Helpers for tests of long-running `spade` processes: a guard that kills the process (by
//! pid, SIGKILL) when the test ends however it ends, a `wait_until` poll, and reads of the
//! store.

// Test helpers: a failed unwrap is a failed test here.
#![allow(clippy::unwrap_used, dead_code)]

use crate::util;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A `spade` process started by a test; SIGKILLed and reaped on drop.
pub(crate) struct Proc {
    child: Option<Child>,
    pub(crate) log: PathBuf,
    /// When it was started, to estimate its virtual time under `--time-scale`.
    pub(crate) started: Instant,
}

impl Proc {
    /// Starts `spade ARGS` with stderr (and stdout) going to `log`.
    pub(crate) fn start(args: &[&str], cwd: &Path, log: PathBuf) -> Proc {
        Proc::start_with(args, cwd, log, &[])
    }

    pub(crate) fn start_with(
        args: &[&str],
        cwd: &Path,
        log: PathBuf,
        env: &[(&str, &str)],
    ) -> Proc {
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let mut cmd = util::spade();
        cmd.args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("JOURNAL_STREAM");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        Proc {
            child: Some(child),
            log,
            started: Instant::now(),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub(crate) fn signal(&self, sig: libc::c_int) {
        if let Ok(pid) = libc::pid_t::try_from(self.pid()) {
            // SAFETY: kill takes two integers; the pid is our unreaped child.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(pid, sig);
            }
        }
    }

    /// Waits for the exit (panics after `timeout`, leaving the kill to `drop`).
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "spade did not exit within {timeout:?}; log:\n{}",
                self.log_text()
            );
            pause();
        }
    }

    pub(crate) fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().unwrap().is_none(),
            None => false,
        }
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills it with SIGKILL now and reaps it.
    pub(crate) fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Sleeps a little between polls: the one place tests wait on real time, and only to poll.
pub(crate) fn pause() {
    #[allow(clippy::disallowed_methods)] // polling a condition, never timing
    std::thread::sleep(Duration::from_millis(20));
}

/// Polls `ready` until it holds; panics with `what` (and `context()`) after `timeout`.
pub(crate) fn wait_until(
    what: &str,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
    context: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            context()
        );
        pause();
    }
}

/// Rows of a query as text (NULL as `NULL`), read while the daemon may be writing.
pub(crate) fn rows(db: &Path, sql: &str) -> Vec<Vec<String>> {
    if !db.exists() {
        return Vec::new();
    }
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return Vec::new();
    };
    let _ = conn.busy_timeout(Duration::from_secs(5));
    let Ok(mut stmt) = conn.prepare(sql) else {
        return Vec::new();
    };
    let n = stmt.column_count();
    let result = stmt.query_map([], |r| {
        (0..n)
            .map(|i| {
                Ok(match r.get_ref(i)? {
                    rusqlite::types::ValueRef::Null => "NULL".to_owned(),
                    rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                    rusqlite::types::ValueRef::Real(v) => v.to_string(),
                    rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    rusqlite::types::ValueRef::Blob(_) => "BLOB".to_owned(),
                })
            })
            .collect::<rusqlite::Result<Vec<String>>>()
    });
    match result {
        Ok(rows) => rows.filter_map(Result::ok).collect(),
        Err(_) => Vec::new(),
    }
}

/// The first column of every row.
pub(crate) fn column(db: &Path, sql: &str) -> Vec<String> {
    rows(db, sql)
        .into_iter()
        .filter_map(|mut r| (!r.is_empty()).then(|| r.remove(0)))
        .collect()
}

/// Session times of a workflow, oldest first.
pub(crate) fn sessions(db: &Path, workflow: &str) -> Vec<String> {
    column(
        db,
        &format!(
            "SELECT session_time FROM sessions WHERE workflow = '{workflow}' ORDER BY session_time"
        ),
    )
}

/// Live processes in process group `pgid`.
pub(crate) fn group_members(pgid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") {
            continue;
        }
        if fields.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid) {
            out.push(pid);
        }
    }
    out
}

/// Live processes whose command line contains `needle` (a marker the test put there).
pub(crate) fn processes_matching(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .map(|s| {
                s.rfind(')')
                    .is_some_and(|i| s[i + 1..].trim_start().starts_with('Z'))
            })
            .unwrap_or(true);
        if !zombie && cmd.contains(needle) {
            out.push(pid);
        }
    }
    out
}

/// Virtual time of a process started at `started` with `--time-origin origin --time-scale s`.
pub(crate) fn virtual_now(
    origin: jiff::Timestamp,
    scale: f64,
    started: Instant,
) -> jiff::Timestamp {
    let secs = started.elapsed().as_secs_f64() * scale;
    origin
        .checked_add(jiff::SignedDuration::from_secs_f64(secs))
        .unwrap()
}
