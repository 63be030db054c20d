//! systemd's notification protocol (`sd_notify`), the few lines the daemon needs: a
//! datagram to the unix socket named by `$NOTIFY_SOCKET` (a path, or `@name` for the
//! abstract namespace) saying `READY=1` once every socket is open, `WATCHDOG=1` from a
//! chore of the main loop, and `STOPPING=1` when pinging stops.
//!
//! The watchdog interval is `$WATCHDOG_USEC` (set by `WatchdogSec=`, for this process
//! only when `$WATCHDOG_PID` is absent or ours); the loop pings it every half of that
//! ([`Notifier::watchdog_interval_ns`]), so one late iteration never gets the service
//! killed. Sends never block (a full queue drops the message, as `sd_notify(3)` does) and
//! allocate nothing: the socket is connected once at start. Without `$NOTIFY_SOCKET`
//! (not under systemd) every call does nothing.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

use tracing::{debug, warn};

/// The variable naming systemd's notification socket.
pub const NOTIFY_SOCKET_ENV: &str = "NOTIFY_SOCKET";
/// The watchdog timeout, µs (`WatchdogSec=`).
pub const WATCHDOG_USEC_ENV: &str = "WATCHDOG_USEC";
/// The process the watchdog timeout is for.
pub const WATCHDOG_PID_ENV: &str = "WATCHDOG_PID";

/// Tells systemd how the daemon is doing (see the module docs).
#[derive(Debug, Default)]
pub struct Notifier {
    sock: Option<UnixDatagram>,
    watchdog_timeout_us: Option<u64>,
}

impl Notifier {
    /// A notifier for this process's environment; does nothing when not under systemd.
    /// A socket that cannot be reached is logged and ignored.
    pub fn from_env() -> Notifier {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let sock = var(NOTIFY_SOCKET_ENV).and_then(|path| match connect(&path) {
            Ok(s) => Some(s),
            Err(e) => {
                warn!("cannot reach systemd's notification socket {path}: {e}");
                None
            }
        });
        let watchdog_timeout_us = watchdog_timeout_us(
            var(WATCHDOG_USEC_ENV).as_deref(),
            var(WATCHDOG_PID_ENV).as_deref(),
            std::process::id(),
        );
        Notifier {
            sock,
            watchdog_timeout_us,
        }
    }

    /// True when `$NOTIFY_SOCKET` was set and reachable.
    pub fn enabled(&self) -> bool {
        self.sock.is_some()
    }

    /// How often the main loop must call [`Notifier::watchdog`], ns: half the watchdog
    /// timeout. `None` when systemd does not watch this process.
    pub fn watchdog_interval_ns(&self) -> Option<u64> {
        self.watchdog_timeout_us
            .filter(|_| self.sock.is_some())
            .map(|us| us.saturating_mul(1000) / 2)
    }

    /// `READY=1`, with a status line for `systemctl status`.
    pub fn ready(&self, status: &str) {
        self.send(format!("READY=1\nSTATUS={status}").as_bytes());
    }

    /// `WATCHDOG=1` (allocation-free).
    pub fn watchdog(&self) {
        self.send(b"WATCHDOG=1");
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) {
        self.send(b"STOPPING=1\nSTATUS=stopping");
    }

    fn send(&self, msg: &[u8]) {
        if let Some(s) = &self.sock
            && let Err(e) = s.send(msg)
        {
            debug!("sd_notify: {e}");
        }
    }
}

/// The watchdog timeout from `$WATCHDOG_USEC` and `$WATCHDOG_PID`, for process `pid`.
pub fn watchdog_timeout_us(usec: Option<&str>, for_pid: Option<&str>, pid: u32) -> Option<u64> {
    if let Some(p) = for_pid
        && p.parse::<u32>().ok() != Some(pid)
    {
        return None;
    }
    usec?.parse::<u64>().ok().filter(|&us| us > 0)
}

/// A non-blocking datagram socket connected to `path` (`@name`: abstract namespace).
fn connect(path: &str) -> io::Result<UnixDatagram> {
    let addr = match path.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes())?,
        None if path.starts_with('/') => SocketAddr::from_pathname(path)?,
        None => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "neither an absolute path nor @abstract",
            ));
        }
    };
    let s = UnixDatagram::unbound()?;
    s.connect_addr(&addr)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_is_ours_only_for_our_pid() {
        assert_eq!(
            watchdog_timeout_us(Some("30000000"), None, 7),
            Some(30_000_000)
        );
        assert_eq!(
            watchdog_timeout_us(Some("30000000"), Some("7"), 7),
            Some(30_000_000)
        );
        assert_eq!(watchdog_timeout_us(Some("30000000"), Some("8"), 7), None);
        assert_eq!(watchdog_timeout_us(Some("0"), None, 7), None);
        assert_eq!(watchdog_timeout_us(Some("x"), None, 7), None);
        assert_eq!(watchdog_timeout_us(None, Some("7"), 7), None);
    }

    #[test]
    fn messages_reach_a_path_socket_and_an_abstract_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier {
            sock: Some(connect(path.to_str().unwrap()).unwrap()),
            watchdog_timeout_us: Some(2_000_000),
        };
        assert_eq!(n.watchdog_interval_ns(), Some(1_000_000_000));
        n.ready("pinging 2 hosts");
        // The loop's watchdog chore sends these, every second here (half the timeout).
        n.watchdog();
        n.watchdog();
        n.stopping();
        let mut buf = [0u8; 256];
        let mut got = Vec::new();
        for _ in 0..4 {
            let k = server.recv(&mut buf).unwrap();
            got.push(String::from_utf8_lossy(&buf[..k]).into_owned());
        }
        assert_eq!(
            got,
            [
                "READY=1\nSTATUS=pinging 2 hosts",
                "WATCHDOG=1",
                "WATCHDOG=1",
                "STOPPING=1\nSTATUS=stopping"
            ]
        );

        let name = format!("zzping-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier {
            sock: Some(connect(&format!("@{name}")).unwrap()),
            watchdog_timeout_us: None,
        };
        assert_eq!(n.watchdog_interval_ns(), None);
        n.watchdog();
        let k = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..k], b"WATCHDOG=1");
    }

    #[test]
    fn relative_or_missing_sockets_are_refused() {
        assert!(connect("relative/path").is_err());
        assert!(connect("/nonexistent/zzping/notify").is_err());
        let n = Notifier::default();
        assert!(!n.enabled());
        n.ready("nothing happens");
        n.watchdog();
    }
}
