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

/// Starts processes and signals process groups.
///
/// Callers pass only groups that this process started and whose leader it has not reaped
/// yet: a group id cannot be recycled while its leader is a live process or an unreaped
/// zombie, so such a signal always reaches the right group. (Leftovers of an earlier process
/// are killed through `host::kill_run_processes`, which checks each process first.)
pub trait Spawner: Send + Sync + 'static {
    fn spawn(&self, spec: ProcessSpec) -> Result<Spawned, SpawnError>;
    /// Sends SIGKILL to a whole process group (canceled runs, timeouts, the end of a stop).
    fn kill_group(&self, pgid: u32);
    /// Sends SIGTERM to a whole process group: the polite first step of a graceful stop.
    fn terminate_group(&self, pgid: u32);
}

/// The real spawner.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioSpawner;

impl Spawner for TokioSpawner {
    fn spawn(&self, spec: ProcessSpec) -> Result<Spawned, SpawnError> {
        #[cfg(target_os = "linux")]
        match vfork::spawn(&spec) {
            Ok(Some(spawned)) => return Ok(spawned),
            Ok(None) => {} // this process or spec cannot use the vfork path
            Err(source) => {
                return Err(SpawnError::Start {
                    program: spec.program.clone(),
                    source,
                })
            }
        }
        forked(spec)
    }

    fn kill_group(&self, pgid: u32) {
        kill_group(pgid);
    }

    fn terminate_group(&self, pgid: u32) {
        signal_group(pgid, libc::SIGTERM);
    }
}

/// The portable path: std's `fork` + `exec` (forced by the `pre_exec` hook that sets the
/// parent-death signal), through tokio's child handling.
fn forked(spec: ProcessSpec) -> Result<Spawned, SpawnError> {
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
        let leader = async {
            let status = child.wait().await;
            // What the command left running in its group ends with it. (This path reaps
            // before it can signal, so a group emptied in between could in theory be recycled;
            // the vfork path below signals while the zombie leader still holds the group id.)
            if status.is_ok() {
                kill_group(pid);
            }
            status
        };
        let (status, (), ()) = tokio::join!(leader, out, err);
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
    signal_group(pgid, libc::SIGKILL);
}

fn signal_group(pgid: u32, signal: libc::c_int) {
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
            libc::killpg(pgid, signal);
        }
    }
}

/// The fast path on Linux: `clone(CLONE_VM | CLONE_VFORK)` runs a small child function on its
/// own stack that sets up the process (stdio, directory, group, parent-death signal) and
/// `exec`s, like glibc's `posix_spawn`. A `fork` instead copies spade's page tables and then
/// takes a copy-on-write fault for every page spade touches afterwards, which was the largest
/// per-task cost of a `sh>` chain (see `docs/exec.md`, "Performance"). std only takes its
/// `posix_spawn` path without a `pre_exec` hook, and the parent-death signal needs one.
#[cfg(target_os = "linux")]
mod vfork {
    #![allow(unsafe_code)] // raw process creation; every block states why it is sound

    use super::{tee, to_exit_status, ExitStatus, GroupGuard, LazyLog, ProcessSpec, Spawned};
    use super::{SpawnError, Stream};
    use std::collections::HashSet;
    use std::ffi::{CString, OsStr};
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};
    use std::os::unix::ffi::OsStrExt as _;
    use std::os::unix::process::ExitStatusExt as _;
    use std::sync::{Arc, Mutex, OnceLock, PoisonError};

    /// Everything the child needs, prepared by the parent: the child only reads it (and writes
    /// `errno` when it fails), because it shares the parent's memory until it `exec`s.
    struct ChildArgs {
        program: *const libc::c_char,
        argv: *const *const libc::c_char,
        envp: *const *const libc::c_char,
        cwd: *const libc::c_char,
        /// Sources for fds 0, 1 and 2; -1 keeps spade's own.
        stdio: [RawFd; 3],
        parent: libc::pid_t,
        /// The parent's signal mask, restored in the child just before `exec`.
        mask: libc::sigset_t,
        /// Set by the child when a step fails; read by the parent after `clone` returns.
        errno: libc::c_int,
    }

    const STACK: usize = 64 * 1024;

    thread_local! {
        /// The stack the last child of this thread ran on, for the next one (a spawn
        /// suspends its thread until the child has exec'd, so one per thread is enough).
        static CHILD_STACK: std::cell::Cell<Option<Box<[std::mem::MaybeUninit<u8>]>>> =
            const { std::cell::Cell::new(None) };
    }

    /// Children whose exit future was dropped before they were reaped (their group was killed):
    /// reaped without blocking at the next spawn, so they do not stay zombies for long.
    static ORPHANS: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());

    /// Starts the process, or `Ok(None)` when this path cannot be used (a relative program
    /// that needs a `PATH` search, a kernel without `pidfd_open`, odd argument bytes).
    pub(super) fn spawn(spec: &ProcessSpec) -> std::io::Result<Option<Spawned>> {
        if !spec.program.is_absolute() || !pidfd_supported() {
            return Ok(None);
        }
        reap_orphans();
        let Some(program) = cstring(spec.program.as_os_str()) else {
            return Ok(None);
        };
        let mut argv = vec![program.clone()];
        for arg in &spec.args {
            let Some(arg) = cstring(OsStr::new(arg)) else {
                return Ok(None);
            };
            argv.push(arg);
        }
        let Some((_env_strings, envp_ptrs)) = environment(&spec.env) else {
            return Ok(None);
        };
        let Some(cwd) = cstring(spec.cwd.as_os_str()) else {
            return Ok(None);
        };
        let argv_ptrs = pointers(&argv);

        let stdin = dev_null()?;
        // One pipe for both streams when they end in the same place anyway: the log alone (no
        // passthrough), or spade's stdout and stderr being one file (a terminal, /dev/null).
        // The log then keeps the command's order of lines exactly, and a run costs one pipe,
        // its registration and its wake-up less.
        let merged = !spec.passthrough || stdout_is_stderr();
        let pipes = match &spec.log_path {
            Some(_) if merged => Some((pipe()?, None)),
            Some(_) => Some((pipe()?, Some(pipe()?))),
            None => None,
        };
        let mut stdio = [stdin, -1, -1];
        if let Some(((_, out_w), err)) = &pipes {
            stdio[1] = out_w.as_raw_fd();
            stdio[2] = err
                .as_ref()
                .map_or(out_w.as_raw_fd(), |(_, err_w)| err_w.as_raw_fd());
        }
        // A source fd below 3 would be overwritten by an earlier dup2 (spade started with a
        // standard stream closed): leave that rare case to the portable path.
        if stdio.iter().any(|&fd| (0..3).contains(&fd)) {
            return Ok(None);
        }

        let mut args = ChildArgs {
            program: program.as_ptr(),
            argv: argv_ptrs.as_ptr(),
            envp: envp_ptrs.as_ptr(),
            cwd: cwd.as_ptr(),
            stdio,
            parent: own_pid(),
            // SAFETY: sigset_t is plain data; all-zero is a valid (empty) value.
            mask: unsafe { std::mem::zeroed() },
            errno: 0,
        };
        // The child's stack is kept per thread and left uninitialised: allocating and zeroing
        // 64 KiB per spawn, and the heap consolidation its `free` triggered, showed in
        // profiles. The child only reads frames it wrote itself.
        let mut stack = CHILD_STACK
            .with(std::cell::Cell::take)
            .unwrap_or_else(|| Box::new_uninit_slice(STACK));
        // SAFETY: the pointer stays inside (one past the end of) the allocation of `STACK`
        // bytes; the stack grows down from there, aligned to 16 bytes as the x86-64 and
        // aarch64 ABIs require.
        let top = unsafe { stack.as_mut_ptr().add(STACK) };
        let top = top.wrapping_sub(top as usize % 16);
        // SAFETY: all signals are blocked around clone so that no handler of spade's runs in
        // the child while it shares spade's memory (the child resets handlers before
        // unblocking). CLONE_VFORK suspends this thread until the child has exec'd or exited,
        // so `args`, `stack` and every string the pointers refer to outlive the child's use of
        // them; the child function only makes raw syscalls and writes `args.errno`.
        let pid = unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut args.mask);
            let pid = libc::clone(
                child_main,
                top.cast(),
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                std::ptr::addr_of_mut!(args).cast(),
            );
            let clone_error = std::io::Error::last_os_error();
            libc::pthread_sigmask(libc::SIG_SETMASK, &args.mask, std::ptr::null_mut());
            if pid < 0 {
                return Err(clone_error);
            }
            pid
        };
        // SAFETY: the child has exec'd or exited (CLONE_VFORK), so nothing writes `errno`
        // any more; the volatile read keeps the compiler from assuming it is still 0.
        let errno = unsafe { std::ptr::read_volatile(std::ptr::addr_of!(args.errno)) };
        // The child no longer uses it (it has exec'd or exited): the next spawn of this
        // thread may.
        CHILD_STACK.with(|cell| cell.set(Some(stack)));
        if errno != 0 {
            reap_blocking(pid);
            return Err(std::io::Error::from_raw_os_error(errno));
        }
        let pidfd = match pidfd_open(pid) {
            Ok(fd) => fd,
            Err(e) => {
                super::kill_group(pid.unsigned_abs());
                reap_blocking(pid);
                return Err(e);
            }
        };
        // The write ends now belong to the child only: close ours so the reads see EOF.
        let (stdout, stderr) = match pipes {
            Some(((out_r, out_w), err)) => {
                drop(out_w);
                let stderr = match err {
                    Some((err_r, err_w)) => {
                        drop(err_w);
                        Some(receiver(err_r)?)
                    }
                    None => None,
                };
                (Some(receiver(out_r)?), stderr)
            }
            None => (None, None),
        };
        let log = spec
            .log_path
            .clone()
            .map(|path| Arc::new(Mutex::new(LazyLog::new(path))));
        let passthrough = spec.passthrough;
        let pid_u32 = pid.unsigned_abs();
        // Created before the future so that dropping it unpolled still kills the group.
        let guard = GroupGuard { pgid: pid_u32 };
        let reaper = Reaper { pid, reaped: false };
        let exit = async move {
            let mut guard = guard;
            let mut reaper = reaper;
            let out = tee(stdout, log.clone(), passthrough.then_some(Stream::Stdout));
            let err = tee(stderr, log, passthrough.then_some(Stream::Stderr));
            let (status, (), ()) = tokio::join!(wait(pid, pidfd), out, err);
            if status.is_ok() {
                // The leader is reaped: its pgid may be reused, so never kill it later.
                guard.pgid = 0;
                reaper.reaped = true;
            }
            let status = status.map_err(|source| SpawnError::Wait {
                pid: pid_u32,
                source,
            })?;
            Ok::<ExitStatus, SpawnError>(status)
        };
        Ok(Some(Spawned {
            pid: pid_u32,
            pgid: pid_u32,
            exit: Box::pin(exit),
        }))
    }

    /// Runs in the child, on its own stack, sharing the parent's memory: raw syscalls only,
    /// no allocation, no locks, nothing that could leave the parent's state inconsistent.
    extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `arg` is the parent's `ChildArgs`, alive and unaliased while the parent is
        // suspended; every pointer in it refers to a NUL-terminated string or a NULL-terminated
        // array of them, owned by the parent's frame.
        unsafe {
            let args = &mut *arg.cast::<ChildArgs>();
            let fail = |args: &mut ChildArgs| -> libc::c_int {
                args.errno = *libc::__errno_location();
                if args.errno == 0 {
                    args.errno = libc::EINVAL;
                }
                libc::_exit(127)
            };
            // Handlers are spade's code: reset them, and SIGPIPE (which Rust ignores) too, as
            // std does for its children; other ignored signals stay ignored across exec.
            for sig in 1..65 {
                if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                    continue;
                }
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
                    continue;
                }
                if old.sa_sigaction != libc::SIG_DFL
                    && (old.sa_sigaction != libc::SIG_IGN || sig == libc::SIGPIPE)
                {
                    let mut new: libc::sigaction = std::mem::zeroed();
                    new.sa_sigaction = libc::SIG_DFL;
                    libc::sigaction(sig, &new, std::ptr::null_mut());
                }
            }
            for (target, &source) in args.stdio.iter().enumerate() {
                if source >= 0 && libc::dup2(source, target as libc::c_int) < 0 {
                    return fail(args);
                }
            }
            if libc::chdir(args.cwd) != 0 || libc::setpgid(0, 0) != 0 {
                return fail(args);
            }
            // Task processes must die with the engine (see `set_parent_death_signal`).
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return fail(args);
            }
            // The parent may have died before prctl: then nobody would signal us.
            if libc::getppid() != args.parent {
                *libc::__errno_location() = libc::ESRCH;
                return fail(args);
            }
            libc::sigprocmask(libc::SIG_SETMASK, &args.mask, std::ptr::null_mut());
            libc::execve(args.program, args.argv, args.envp);
            fail(args)
        }
    }

    /// Waits for the exit without blocking the runtime: a pidfd becomes readable when the
    /// process exits, then `waitpid` reaps it.
    async fn wait(pid: libc::pid_t, pidfd: OwnedFd) -> std::io::Result<ExitStatus> {
        // SAFETY: an `OwnedFd` keeps its fd open and unchanged until the `AsyncFd` drops it.
        let fd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE)
        }
        .map_err(std::io::Error::from)?;
        loop {
            let mut ready = fd.readable().await?;
            // The leader has exited but is not reaped yet: as a zombie it still holds the group
            // id, so the group cannot have been recycled, and whatever the command left
            // running in it (a forgotten `cmd &`) is killed now, before the reap frees the id.
            if exited_unreaped(pid) {
                super::kill_group(pid.unsigned_abs());
            }
            let mut status: libc::c_int = 0;
            // SAFETY: waitpid writes one int through a valid pointer.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                return Ok(to_exit_status(std::process::ExitStatus::from_raw(status)));
            }
            if r < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            ready.clear_ready();
        }
    }

    /// Whether `pid` (our child) has exited, without reaping it (`WNOWAIT`).
    fn exited_unreaped(pid: libc::pid_t) -> bool {
        // SAFETY: siginfo_t is plain data; all-zero is a valid value for waitid to fill.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid writes one siginfo_t through a valid pointer; WNOWAIT leaves the child
        // waitable, so the waitpid that follows still reaps it.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid.unsigned_abs(),
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: si_pid is valid to read once waitid filled the struct for an exited child.
        r == 0 && unsafe { info.si_pid() } == pid
    }

    /// Hands a child that was not reaped (its exit future was dropped) to `reap_orphans`.
    struct Reaper {
        pid: libc::pid_t,
        reaped: bool,
    }

    impl Drop for Reaper {
        fn drop(&mut self) {
            if !self.reaped {
                ORPHANS
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(self.pid);
            }
        }
    }

    fn reap_orphans() {
        ORPHANS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|&pid| {
                let mut status = 0;
                // SAFETY: waitpid writes one int through a valid pointer.
                let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
                r == 0
            });
    }

    /// Reaps a child that already exited (or was just killed).
    fn reap_blocking(pid: libc::pid_t) {
        let mut status = 0;
        // SAFETY: waitpid writes one int through a valid pointer.
        unsafe { libc::waitpid(pid, &mut status, 0) };
    }

    fn pidfd_open(pid: libc::pid_t) -> std::io::Result<OwnedFd> {
        // SAFETY: pidfd_open takes two integers and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fd = RawFd::try_from(fd).map_err(|_| std::io::Error::from_raw_os_error(libc::EBADF))?;
        // SAFETY: the kernel just returned this fd, and nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Whether this kernel has `pidfd_open` (Linux 5.3+); checked once.
    fn pidfd_supported() -> bool {
        static SUPPORTED: OnceLock<bool> = OnceLock::new();
        // SAFETY: getpid has no preconditions.
        *SUPPORTED.get_or_init(|| pidfd_open(unsafe { libc::getpid() }).is_ok())
    }

    /// `/dev/null`, opened once (close-on-exec) and shared by every child as its stdin: one
    /// `open` and one `close` less per spawn.
    fn dev_null() -> std::io::Result<RawFd> {
        static DEV_NULL: OnceLock<OwnedFd> = OnceLock::new();
        if let Some(fd) = DEV_NULL.get() {
            return Ok(fd.as_raw_fd());
        }
        let fd = OwnedFd::from(std::fs::File::open("/dev/null")?);
        Ok(DEV_NULL.get_or_init(|| fd).as_raw_fd())
    }

    /// Whether spade's stdout and stderr are the same open file (checked once: spade never
    /// redirects its own streams).
    fn stdout_is_stderr() -> bool {
        static SAME: OnceLock<bool> = OnceLock::new();
        *SAME.get_or_init(|| {
            let id = |fd: RawFd| {
                // SAFETY: `stat` is plain data; fstat fills it for an open fd or fails.
                let mut st: libc::stat = unsafe { std::mem::zeroed() };
                // SAFETY: fstat writes one stat through a valid pointer.
                (unsafe { libc::fstat(fd, &mut st) } == 0).then_some((st.st_dev, st.st_ino))
            };
            matches!((id(1), id(2)), (Some(a), Some(b)) if a == b)
        })
    }

    /// spade's pid, read once: spade never forks without exec'ing, so it cannot change.
    fn own_pid() -> libc::pid_t {
        static PID: OnceLock<libc::pid_t> = OnceLock::new();
        // SAFETY: getpid has no preconditions.
        *PID.get_or_init(|| unsafe { libc::getpid() })
    }

    /// The read end of a pipe made by [`pipe`], non-blocking and registered with tokio: one
    /// `fcntl` (tokio's checked constructor spends three syscalls to learn what we know).
    fn receiver(read_end: OwnedFd) -> std::io::Result<tokio::net::unix::pipe::Receiver> {
        // SAFETY: F_SETFL takes an int and only changes the flags of this open file
        // description, which is the read end's own (the child's write end is another).
        if unsafe { libc::fcntl(read_end.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        tokio::net::unix::pipe::Receiver::from_owned_fd_unchecked(read_end)
    }

    fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: pipe2 writes two fds into the array it is given.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: both fds were just created and are owned by nothing else.
        Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
    }

    fn cstring(text: &OsStr) -> Option<CString> {
        CString::new(text.as_bytes()).ok()
    }

    /// spade's own environment as `KEY=VALUE` strings, read once: spade never changes its
    /// environment after it starts (nothing in `src/` calls `set_var`), and copying it with
    /// `std::env::vars_os` on every spawn (a lock, two allocations per variable and a hash
    /// of each key) was about a tenth of the parent's time per `sh>` task.
    fn base_environment() -> &'static [(Vec<u8>, CString)] {
        static BASE: OnceLock<Vec<(Vec<u8>, CString)>> = OnceLock::new();
        BASE.get_or_init(|| {
            let mut seen: HashSet<Vec<u8>> = HashSet::new();
            let mut out = Vec::new();
            for (key, value) in std::env::vars_os() {
                let key = key.as_bytes().to_vec();
                if key.is_empty() || key.contains(&b'=') || !seen.insert(key.clone()) {
                    continue;
                }
                let mut entry = key.clone();
                entry.push(b'=');
                entry.extend_from_slice(value.as_bytes());
                if let Ok(entry) = CString::new(entry) {
                    out.push((key, entry));
                }
            }
            out
        })
    }

    /// The child's environment: `extra` (a later entry wins, as with `Command::envs`), then
    /// every variable of spade's own that `extra` does not set. Returns the strings made for
    /// `extra` (which the pointers refer to) and the pointer array, or `None` for a NUL byte.
    fn environment(extra: &[(String, String)]) -> Option<(Vec<CString>, Vec<*const libc::c_char>)> {
        let mut keys: HashSet<&[u8]> = HashSet::with_capacity(extra.len());
        let mut own = Vec::with_capacity(extra.len());
        for (key, value) in extra.iter().rev() {
            let key = key.as_bytes();
            if key.is_empty() || key.contains(&b'=') || !keys.insert(key) {
                continue;
            }
            let mut entry = Vec::with_capacity(key.len() + value.len() + 2);
            entry.extend_from_slice(key);
            entry.push(b'=');
            entry.extend_from_slice(value.as_bytes());
            own.push(CString::new(entry).ok()?);
        }
        let base = base_environment();
        let mut ptrs = Vec::with_capacity(own.len() + base.len() + 1);
        // A `CString`'s buffer is on the heap: moving the vector does not move it.
        ptrs.extend(own.iter().map(|s| s.as_ptr()));
        ptrs.extend(
            base.iter()
                .filter(|(key, _)| !keys.contains(key.as_slice()))
                .map(|(_, entry)| entry.as_ptr()),
        );
        ptrs.push(std::ptr::null());
        Some((own, ptrs))
    }

    fn pointers(strings: &[CString]) -> Vec<*const libc::c_char> {
        strings
            .iter()
            .map(|s| s.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect()
    }

    #[cfg(test)]
    mod tests {
        use super::environment;
        use std::ffi::CStr;

        fn entries(extra: &[(&str, &str)]) -> Vec<String> {
            let extra: Vec<(String, String)> = extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let (_strings, ptrs) = environment(&extra).unwrap();
            assert!(ptrs.last().unwrap().is_null());
            ptrs[..ptrs.len() - 1]
                .iter()
                // SAFETY: every pointer but the last refers to a live NUL-terminated string
                // (`_strings` or the cached environment).
                .map(|&p| unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned())
                .collect()
        }

        #[test]
        fn the_runs_variables_override_spades_own_and_a_later_one_wins() {
            let own: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
            let replaced = own.first().cloned().unwrap_or_else(|| "PATH".into());
            let env = entries(&[("SPADE_T_A", "1"), (&replaced, "mine"), ("SPADE_T_A", "2")]);
            assert!(env.contains(&"SPADE_T_A=2".to_owned()), "{env:?}");
            assert!(!env.contains(&"SPADE_T_A=1".to_owned()), "{env:?}");
            assert!(env.contains(&format!("{replaced}=mine")), "{env:?}");
            // Every other variable of spade's is passed on, each name once.
            for key in own.iter().filter(|k| **k != replaced) {
                assert!(
                    env.iter().any(|e| e.starts_with(&format!("{key}="))),
                    "{key} missing"
                );
            }
            let mut names: Vec<&str> = env.iter().map(|e| e.split('=').next().unwrap()).collect();
            let n = names.len();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), n, "a name twice: {env:?}");
        }

        #[test]
        fn a_nul_byte_in_a_value_takes_the_portable_path() {
            assert!(environment(&[("K".into(), "a\0b".into())]).is_none());
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
    terminated: Vec<u32>,
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

    pub fn terminated(&self) -> Vec<u32> {
        self.lock().terminated.clone()
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

    fn terminate_group(&self, pgid: u32) {
        self.lock().terminated.push(pgid);
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

    /// Without passthrough both streams share one pipe: the log has the command's lines in
    /// the order it wrote them (two pipes read in turn could swap them).
    #[tokio::test]
    async fn the_log_keeps_the_order_of_stdout_and_stderr_lines() {
        let dir = tempfile::tempdir().unwrap();
        let script = "for i in 1 2 3 4 5 6 7 8; do echo out$i; echo err$i >&2; done";
        let spawned = TokioSpawner.spawn(sh(script, dir.path())).unwrap();
        assert_eq!(spawned.exit.await.unwrap(), ExitStatus::Code(0));
        let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
        let want: String = (1..=8).map(|i| format!("out{i}\nerr{i}\n")).collect();
        assert_eq!(log, want);
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

    /// Field `n` (1-based, after the command name) of `/proc/PID/stat`.
    fn stat_field(pid: u32, n: usize) -> Option<String> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (_, rest) = stat.rsplit_once(") ")?;
        rest.split(' ').nth(n - 3).map(str::to_string)
    }

    #[tokio::test]
    async fn child_leads_its_group_in_its_directory_with_its_env() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = sh(
            "echo \"$SPADE_TEST_VALUE|$SPADE_B|$(pwd -P)\"; read -r _ || echo eof",
            dir.path(),
        );
        // A later entry wins, as with `Command::envs`.
        spec.env.push(("SPADE_B".into(), "first".into()));
        spec.env.push(("SPADE_B".into(), "second".into()));
        let spawned = TokioSpawner.spawn(spec).unwrap();
        #[cfg(target_os = "linux")]
        if let Some(pgrp) = stat_field(spawned.pid, 5) {
            assert_eq!(pgrp, spawned.pid.to_string());
        }
        assert_eq!(spawned.exit.await.unwrap(), ExitStatus::Code(0));
        let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
        let real = dir.path().canonicalize().unwrap();
        assert_eq!(log, format!("a b;c|second|{}\neof\n", real.display()));
    }

    #[tokio::test]
    async fn a_relative_program_takes_the_portable_path() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = sh("echo \"$SPADE_TEST_VALUE\"; exit 4", dir.path());
        spec.program = "sh".into();
        let spawned = TokioSpawner.spawn(spec).unwrap();
        assert_eq!(spawned.exit.await.unwrap(), ExitStatus::Code(4));
        let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
        assert_eq!(log, "a b;c\n");
    }

    #[tokio::test]
    async fn a_program_that_cannot_start_is_a_start_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = sh("true", dir.path());
        spec.program = dir.path().join("missing");
        assert!(matches!(
            TokioSpawner.spawn(spec),
            Err(SpawnError::Start { .. })
        ));
        let mut spec = sh("true", dir.path());
        spec.cwd = dir.path().join("missing-dir");
        assert!(matches!(
            TokioSpawner.spawn(spec),
            Err(SpawnError::Start { .. })
        ));
    }

    /// The parent-death signal is bound to the spawning thread: when that thread ends, the
    /// child gets SIGKILL even though nobody dropped its exit future.
    #[cfg(target_os = "linux")]
    #[test]
    fn child_dies_with_the_thread_that_spawned_it() {
        let dir = tempfile::tempdir().unwrap();
        let spec = sh("sleep 30", dir.path());
        let pid = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let spawned = TokioSpawner.spawn(spec).unwrap();
                let pid = spawned.pid;
                // Neither kill the group nor reap: only the parent-death signal may end it.
                std::mem::forget(spawned.exit);
                pid
            })
        })
        .join()
        .unwrap();
        let start = std::time::Instant::now();
        loop {
            match stat_field(pid, 3).as_deref() {
                None | Some("Z") => break,
                Some(_) => {}
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "child {pid} outlived the thread that spawned it"
            );
            #[allow(clippy::disallowed_methods)] // polls another process, on real time
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let mut status = 0;
        #[allow(unsafe_code)]
        // SAFETY: waitpid writes one int through a valid pointer (reaps the zombie).
        unsafe {
            libc::waitpid(i32::try_from(pid).unwrap(), &mut status, 0);
        }
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
