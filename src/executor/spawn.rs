//! Process spawning behind a trait: `TokioSpawner` (process groups, parent-death signal, output
//! tee) and `FakeSpawner` (scripted exits, records every spawn) for tests.

use crate::clock::BoxFuture;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::io::AsyncReadExt as _;

/// One process to start. Never a shell string with params pasted in: params travel in `env`.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Added to (and overriding) the engine's own environment.
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// Where stdout and stderr are captured; `None` inherits spade's own streams.
    pub log_path: Option<PathBuf>,
    /// With a log: also copy the output to spade's stdout (stdout) and stderr (stderr).
    pub passthrough: bool,
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

impl ExitStatus {
    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }
}

/// A started process. Dropping `exit` before it resolves kills the whole process group, so a
/// canceled or timed-out run leaves nothing behind.
pub struct Spawned {
    pub pid: u32,
    /// Equal to `pid`: every child leads its own group.
    pub pgid: u32,
    pub exit: BoxFuture<'static, Result<ExitStatus, SpawnError>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot start {}", program.display())]
    Start {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot wait for process {pid}")]
    Wait {
        pid: u32,
        #[source]
        source: std::io::Error,
    },
}

/// Starts processes and kills process groups.
pub trait Spawner: Send + Sync + 'static {
    fn spawn(&self, spec: ProcessSpec) -> Result<Spawned, SpawnError>;
    /// Sends SIGKILL to a whole process group (leftovers after a crash, canceled runs).
    fn kill_group(&self, pgid: u32);
}

/// The real spawner.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioSpawner;

impl Spawner for TokioSpawner {
    fn spawn(&self, spec: ProcessSpec) -> Result<Spawned, SpawnError> {
        #[allow(clippy::disallowed_methods)] // the single real Spawner
        let mut cmd = tokio::process::Command::new(&spec.program);
        cmd.args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&spec.cwd)
            .stdin(std::process::Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        set_parent_death_signal(&mut cmd);
        let log = match &spec.log_path {
            Some(path) => {
                cmd.stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped());
                Some(Arc::new(Mutex::new(LazyLog::new(path.clone()))))
            }
            None => None,
        };
        let mut child = cmd.spawn().map_err(|source| SpawnError::Start {
            program: spec.program.clone(),
            source,
        })?;
        let pid = child.id().unwrap_or(0);
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let passthrough = spec.passthrough;
        // Created before the future so that dropping it unpolled still kills the group.
        let guard = GroupGuard { pgid: pid };
        let exit = async move {
            // Move the whole guard in (not just a copy of its field).
            let mut guard = guard;
            let out = tee(stdout, log.clone(), passthrough.then_some(Stream::Stdout));
            let err = tee(stderr, log, passthrough.then_some(Stream::Stderr));
            let (status, (), ()) = tokio::join!(child.wait(), out, err);
            // The leader is reaped: its pgid may be reused from now on, so never kill it later.
            guard.pgid = 0;
            let status = status.map_err(|source| SpawnError::Wait { pid, source })?;
            Ok(to_exit_status(status))
        };
        Ok(Spawned {
            pid,
            pgid: pid,
            exit: Box::pin(exit),
        })
    }

    fn kill_group(&self, pgid: u32) {
        kill_group(pgid);
    }
}

/// A task log created on the first output: most commands print nothing, and creating a file
/// per run is the most expensive step of a short task on slow file systems.
struct LazyLog {
    path: PathBuf,
    file: Option<std::fs::File>,
    failed: bool,
}

impl LazyLog {
    fn new(path: PathBuf) -> LazyLog {
        LazyLog {
            path,
            file: None,
            failed: false,
        }
    }

    fn write(&mut self, chunk: &[u8]) {
        if self.file.is_none() && !self.failed {
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
            {
                Ok(f) => self.file = Some(f),
                Err(e) => {
                    // Output still reaches spade's own streams; say once why the log is empty.
                    self.failed = true;
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot open task log");
                }
            }
        }
        if let Some(f) = &mut self.file {
            let _ = f.write_all(chunk);
        }
    }
}

/// Kills the group when a run's future is dropped before its leader exited.
struct GroupGuard {
    pgid: u32,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.pgid != 0 {
            kill_group(self.pgid);
        }
    }
}

fn kill_group(pgid: u32) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    // pgid 0 or 1 would signal our own group or init's: never do that.
    if pgid > 1 {
        // Safe wrapper in libc terms: killpg takes plain integers and has no memory effects;
        // ESRCH (the group is already gone) is the expected, harmless failure.
        #[allow(unsafe_code)]
        // SAFETY: killpg only reads its two integer arguments.
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
    }
}

#[cfg(target_os = "linux")]
fn set_parent_death_signal(cmd: &mut tokio::process::Command) {
    // Task processes must die with the engine: after `kill -9` of spade, a still-running task
    // could otherwise finish its side effect after recovery has already started a new run.
    #[allow(unsafe_code)]
    // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
    // calls are allowed. It calls prctl(2) (a raw syscall) and getppid(2), both
    // async-signal-safe, allocates nothing, takes no locks and touches no shared state.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then nobody would signal us.
            if libc::getppid() == 1 {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn set_parent_death_signal(_cmd: &mut tokio::process::Command) {}

fn to_exit_status(status: std::process::ExitStatus) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitStatus::Code(code),
        (None, Some(sig)) => ExitStatus::Signal(sig),
        (None, None) => ExitStatus::Code(-1),
    }
}

#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

/// Copies a child's pipe into the task log and, when asked, to spade's own stream.
async fn tee<R: tokio::io::AsyncRead + Unpin>(
    pipe: Option<R>,
    log: Option<Arc<Mutex<LazyLog>>>,
    pass: Option<Stream>,
) {
    let Some(mut pipe) = pipe else { return };
    let mut buf = vec![0u8; 8192];
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let chunk = buf.get(..n).unwrap_or_default();
        // Small appends to a local file and to our own stdio: blocking for microseconds is
        // cheaper than a round trip through the blocking pool. A failed write of output must
        // not fail the task, so errors are dropped here.
        if let Some(log) = &log {
            log.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .write(chunk);
        }
        match pass {
            Some(Stream::Stdout) => {
                let _ = std::io::stdout().lock().write_all(chunk);
            }
            Some(Stream::Stderr) => {
                let _ = std::io::stderr().lock().write_all(chunk);
            }
            None => {}
        }
    }
}

/// A spawner for tests: every spawn is recorded and exits as scripted (default: code 0).
#[derive(Clone, Default)]
pub struct FakeSpawner {
    inner: Arc<Mutex<FakeState>>,
}

#[derive(Default)]
struct FakeState {
    spawned: Vec<ProcessSpec>,
    script: std::collections::VecDeque<ExitStatus>,
    killed: Vec<u32>,
    next_pid: u32,
}

impl FakeSpawner {
    pub fn new() -> FakeSpawner {
        FakeSpawner::default()
    }

    /// The next spawns exit with these statuses, in order; afterwards they exit with 0.
    pub fn script(&self, exits: impl IntoIterator<Item = ExitStatus>) {
        self.lock().script.extend(exits);
    }

    pub fn spawned(&self) -> Vec<ProcessSpec> {
        self.lock().spawned.clone()
    }

    pub fn killed(&self) -> Vec<u32> {
        self.lock().killed.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Spawner for FakeSpawner {
    fn spawn(&self, spec: ProcessSpec) -> Result<Spawned, SpawnError> {
        let mut state = self.lock();
        state.next_pid += 1;
        let pid = 100_000 + state.next_pid;
        let status = state.script.pop_front().unwrap_or(ExitStatus::Code(0));
        state.spawned.push(spec);
        Ok(Spawned {
            pid,
            pgid: pid,
            exit: Box::pin(std::future::ready(Ok(status))),
        })
    }

    fn kill_group(&self, pgid: u32) {
        self.lock().killed.push(pgid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, dir: &std::path::Path) -> ProcessSpec {
        ProcessSpec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: vec![("SPADE_TEST_VALUE".into(), "a b;c".into())],
            cwd: dir.to_path_buf(),
            log_path: Some(dir.join("log")),
            passthrough: false,
        }
    }

    #[tokio::test]
    async fn exit_codes_env_and_log_capture() {
        let dir = tempfile::tempdir().unwrap();
        let spawned = TokioSpawner
            .spawn(sh(
                "echo \"$SPADE_TEST_VALUE\"; echo err >&2; exit 3",
                dir.path(),
            ))
            .unwrap();
        assert_eq!(spawned.pid, spawned.pgid);
        assert_eq!(spawned.exit.await.unwrap(), ExitStatus::Code(3));
        let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
        assert!(log.contains("a b;c\n"), "{log}");
        assert!(log.contains("err\n"), "{log}");
    }

    #[tokio::test]
    async fn dropping_the_exit_future_kills_the_group() {
        let dir = tempfile::tempdir().unwrap();
        // The grandchild writes its pid; it must die with the group when the run is dropped.
        let spawned = TokioSpawner
            .spawn(sh("sleep 30 & echo $! > pid; wait", dir.path()))
            .unwrap();
        let pid_file = dir.path().join("pid");
        let exit = spawned.exit;
        let pid = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            loop {
                if let Ok(text) = std::fs::read_to_string(&pid_file) {
                    if let Ok(pid) = text.trim().parse::<i32>() {
                        return pid;
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
        drop(exit);
        // The killed grandchild becomes a zombie of init (or of us) and then disappears;
        // /proc/PID/stat shows `Z` or nothing once SIGKILL was delivered.
        let gone = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            loop {
                match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                    Err(_) => return,
                    Ok(stat) if stat.contains(") Z ") => return,
                    Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
                }
            }
        })
        .await;
        assert!(gone.is_ok(), "grandchild {pid} survived the group kill");
    }

    #[tokio::test]
    async fn fake_spawner_scripts_and_records() {
        let fake = FakeSpawner::new();
        fake.script([ExitStatus::Code(1)]);
        let dir = std::path::Path::new("/");
        let first = fake.spawn(sh("one", dir)).unwrap();
        let second = fake.spawn(sh("two", dir)).unwrap();
        assert_eq!(first.exit.await.unwrap(), ExitStatus::Code(1));
        assert_eq!(second.exit.await.unwrap(), ExitStatus::Code(0));
        assert_eq!(fake.spawned().len(), 2);
        fake.kill_group(first.pgid);
        assert_eq!(fake.killed(), vec![first.pgid]);
    }
}
