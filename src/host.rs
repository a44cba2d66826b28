//! This host and its processes: identity (host name, machine id, boot id), process start
//! times, liveness, and kills that are verified against a run token before they are sent.
//!
//! A pid (or a process group id) means something only on the host and in the boot where it
//! was recorded, and only as long as the process it named is alive: afterwards the number is
//! recycled. So every pid the store keeps is paired with the process's start time, and every
//! task process carries `SPADE_RUN=<token>` in its environment. A process found after a crash
//! is treated as spade's only when both match.

use std::path::Path;
use std::sync::OnceLock;

/// The environment variable that marks every process a run started (inherited by what it forks).
pub const RUN_TOKEN_ENV: &str = "SPADE_RUN";

/// Where this process runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The host name, for messages.
    pub host: String,
    /// `/etc/machine-id` (or the host name when there is none).
    pub host_id: String,
    /// The kernel's boot id: pids of another boot are all dead.
    pub boot_id: String,
}

/// This host's identity, read once.
pub fn identity() -> &'static Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(|| {
        let host = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        let host_id = read("/etc/machine-id")
            .or_else(|| read("/var/lib/dbus/machine-id"))
            .unwrap_or_else(|| format!("host:{host}"));
        let boot_id = read("/proc/sys/kernel/random/boot_id").unwrap_or_else(|| "unknown".into());
        Identity {
            host,
            host_id,
            boot_id,
        }
    })
}

/// This process's pid.
pub fn own_pid() -> u32 {
    std::process::id()
}

/// One line of `/proc/<pid>/stat`, the fields spade needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stat {
    state: u8,
    pgrp: u32,
    /// Clock ticks after boot (field 22).
    start: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Parses `/proc/<pid>/stat`; the command name (field 2) may itself hold spaces and `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // `fields[0]` is field 3 (state); field N is `fields[N - 3]`.
    Some(Stat {
        state: *fields.first()?.as_bytes().first()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// The start time of a live process (clock ticks after boot), `None` when there is none.
pub fn process_start(pid: u32) -> Option<u64> {
    stat(pid).filter(|s| s.state != b'Z').map(|s| s.start)
}

/// Whether `pid` is alive and still the process that started at `start` (not a zombie, not a
/// recycled pid).
pub fn is_same_process(pid: u32, start: u64) -> bool {
    process_start(pid) == Some(start)
}

/// Every live process in group `pgid` whose environment holds `SPADE_RUN=<token>`.
pub fn processes_of_run(pgid: u32, token: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let needle = format!("{RUN_TOKEN_ENV}={token}");
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Some(s) = stat(pid) else { continue };
        if s.pgrp != pgid || s.state == b'Z' {
            continue;
        }
        if environ_has(&entry.path(), &needle) {
            found.push(pid);
        }
    }
    found.sort_unstable();
    found
}

fn environ_has(proc_dir: &Path, needle: &str) -> bool {
    std::fs::read(proc_dir.join("environ"))
        .map(|bytes| bytes.split(|b| *b == 0).any(|var| var == needle.as_bytes()))
        .unwrap_or(false)
}

/// Sends SIGKILL to every live process of group `pgid` that carries the run's token, each
/// through a pidfd opened and checked first, so a pid recycled in between is never hit.
/// Returns how many processes were signalled.
pub fn kill_run_processes(pgid: u32, token: &str) -> usize {
    let mut killed = 0;
    for pid in processes_of_run(pgid, token) {
        let Some(raw) = rustix::process::Pid::from_raw(pid as i32) else {
            continue;
        };
        let Ok(fd) = rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty()) else {
            continue;
        };
        // The pidfd pins this exact process: check again that it is the one we matched.
        let needle = format!("{RUN_TOKEN_ENV}={token}");
        if stat(pid).is_some_and(|s| s.pgrp == pgid)
            && environ_has(Path::new(&format!("/proc/{pid}")), &needle)
            && rustix::process::pidfd_send_signal(&fd, rustix::process::Signal::KILL).is_ok()
        {
            killed += 1;
        }
    }
    killed
}

/// Raises the soft limit of open files to the hard limit (as systemd's services usually run
/// with), and returns the soft limit now in force.
pub fn raise_fd_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if let (Some(cur), Some(max)) = (limit.current, limit.maximum) {
        if cur < max {
            limit.current = Some(max);
            if setrlimit(Resource::Nofile, limit).is_err() {
                limit.current = Some(cur);
            }
        }
    }
    limit.current.unwrap_or(1 << 20)
}

/// Open files a running task holds in spade (two output pipes, a pidfd, its log), with room
/// to spare for what operators open besides.
pub const FDS_PER_TASK: u64 = 6;

/// Open files kept for spade itself (the database, its WAL, listeners, watchers, stdio).
pub const FDS_RESERVED: u64 = 64;

/// How many operator tasks may run at once so that the open-file limit `nofile` is never
/// reached: a wide `_parallel` group then queues instead of failing with EMFILE.
pub fn max_tasks_for(nofile: u64) -> usize {
    let n = nofile.saturating_sub(FDS_RESERVED) / FDS_PER_TASK;
    usize::try_from(n.clamp(1, 4096)).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        let line = "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 94 0 0 0 0 0 0 0 20 0 1 0 \
                    987654 1000 100 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                state: b'S',
                pgrp: 4242,
                start: 987654
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn task_limit_follows_the_open_file_limit() {
        assert_eq!(max_tasks_for(1024), 160);
        assert_eq!(max_tasks_for(10), 1);
        assert_eq!(max_tasks_for(u64::MAX), 4096);
    }

    #[test]
    fn this_process_is_alive_and_a_wrong_start_time_is_not() {
        let start = process_start(own_pid()).expect("own stat is readable");
        assert!(is_same_process(own_pid(), start));
        assert!(!is_same_process(own_pid(), start + 1));
        let id = identity();
        assert!(!id.host.is_empty() && !id.host_id.is_empty() && !id.boot_id.is_empty());
    }
}
