//! systemd's notification protocol (`sd_notify`): `READY=1`, `STATUS=...`, `WATCHDOG=1` and
//! `STOPPING=1`, each one datagram to the socket named by `NOTIFY_SOCKET` (a path, or an
//! abstract name written with a leading `@`). Without `NOTIFY_SOCKET` every call is a no-op.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

/// Where notifications go.
#[derive(Debug)]
pub struct Notifier {
    target: Option<Target>,
    watchdog: Option<Duration>,
}

#[derive(Debug)]
struct Target {
    socket: UnixDatagram,
    address: std::os::unix::net::SocketAddr,
}

impl Notifier {
    /// From the environment systemd sets for `Type=notify` services.
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os("NOTIFY_SOCKET").map(PathBuf::from);
        let watchdog = watchdog_interval(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        );
        Notifier::new(socket, watchdog)
    }

    /// Notifications to `socket` (`None`: nowhere), with watchdog pings due every `watchdog`.
    pub fn new(socket: Option<PathBuf>, watchdog: Option<Duration>) -> Notifier {
        let target = socket.and_then(|path| match Target::connect(&path) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(socket = %path.display(), error = %e, "cannot use NOTIFY_SOCKET; systemd will not hear from spade");
                None
            }
        });
        Notifier { target, watchdog }
    }

    /// How often to send `WATCHDOG=1` (half of `WATCHDOG_USEC`), if systemd asked for it.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={status}"));
    }

    pub fn ping(&self) {
        self.send("WATCHDOG=1");
    }

    pub fn stopping(&self, status: &str) {
        self.send(&format!("STOPPING=1\nSTATUS={status}"));
    }

    fn send(&self, message: &str) {
        if let Some(t) = &self.target {
            if let Err(e) = t.socket.send_to_addr(message.as_bytes(), &t.address) {
                tracing::debug!(error = %e, "sd_notify failed");
            }
        }
    }
}

impl Target {
    fn connect(path: &std::path::Path) -> std::io::Result<Target> {
        use std::os::unix::ffi::OsStrExt as _;
        let bytes = path.as_os_str().as_bytes();
        let address = match bytes.strip_prefix(b"@") {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt as _;
                std::os::unix::net::SocketAddr::from_abstract_name(name)?
            }
            None => std::os::unix::net::SocketAddr::from_pathname(path)?,
        };
        Ok(Target {
            socket: UnixDatagram::unbound()?,
            address,
        })
    }
}

/// Half of `WATCHDOG_USEC`, when it is meant for this process (`WATCHDOG_PID` absent or ours).
fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, own: u32) -> Option<Duration> {
    if pid.is_some_and(|p| p.parse::<u32>().ok() != Some(own)) {
        return None;
    }
    let usec: u64 = usec?.parse().ok().filter(|u| *u > 0)?;
    Some(Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn messages_reach_a_real_datagram_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::new(Some(path), None);
        n.ready("3 schedules armed");
        n.status("2 attempts running");
        n.ping();
        n.stopping("stopping");
        assert_eq!(received(&server), "READY=1\nSTATUS=3 schedules armed");
        assert_eq!(received(&server), "STATUS=2 attempts running");
        assert_eq!(received(&server), "WATCHDOG=1");
        assert_eq!(received(&server), "STOPPING=1\nSTATUS=stopping");
    }

    #[test]
    fn abstract_sockets_are_written_with_an_at_sign() {
        use std::os::linux::net::SocketAddrExt as _;
        let name = format!("spade-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        Notifier::new(Some(PathBuf::from(format!("@{name}"))), None).ready("ok");
        assert_eq!(received(&server), "READY=1\nSTATUS=ok");
    }

    #[test]
    fn watchdog_pings_at_half_the_interval_for_this_pid_only() {
        assert_eq!(
            watchdog_interval(Some("30000000"), None, 7),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            watchdog_interval(Some("30000000"), Some("7"), 7),
            Some(Duration::from_secs(15))
        );
        assert_eq!(watchdog_interval(Some("30000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(None, None, 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
    }
}
