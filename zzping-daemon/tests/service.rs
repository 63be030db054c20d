//! The daemon as a systemd service, with the test playing systemd: it binds the
//! notification socket (`NOTIFY_SOCKET`), sets `WATCHDOG_USEC`, and runs the daemon
//! binary in a network namespace created for the test's thread (children inherit it).
//!
//! * `ready_after_the_sockets_are_open_then_watchdog_pings`: `READY=1` arrives only once
//!   the live socket (`localhost:PORT`) and the exporter (`:PORT`, every interface, IPv4
//!   and IPv6) are open: when it arrives, both /metrics addresses accept connections and
//!   the live port is taken. Then `WATCHDOG=1` keeps coming until the daemon exits:
//!   never more than `WatchdogSec` apart (what systemd enforces) and never more often
//!   than every `WatchdogSec/2` (the chore's schedule); `STOPPING=1` when it stops.
//!   Times are the kernel's stamps of the datagrams (`SO_TIMESTAMPNS`, taken as the
//!   daemon sends them), so the test's own scheduling does not count.
//! * `no_watchdog_pings_for_another_process`: `WATCHDOG_PID` names someone else: READY
//!   and STOPPING, no WATCHDOG.
//! * `a_listener_that_cannot_start_is_fatal`: a port already taken (metrics: TCP, live:
//!   UDP, `:PORT` too), a non-loopback live address without a secret, a missing secret
//!   file: the daemon exits with status 1 before READY, naming the address or file.
//!
//! Without namespace privileges the tests say why and skip, unless `CI` is set.

mod common;

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The watchdog timeout the test asks for (`WatchdogSec=2`), µs. The daemon pings every
/// second; the test fails only where systemd would kill it: after 2 s of silence.
const WATCHDOG_USEC: u64 = 2_000_000;
/// The daemon's chore interval: half the timeout.
const WATCHDOG_INTERVAL: Duration = Duration::from_micros(WATCHDOG_USEC / 2);
/// How long the watched daemon pings, s.
const RUN_S: u64 = 6;
/// Longest the test waits for a notification or for the daemon to exit.
const PATIENCE: Duration = Duration::from_secs(20);

/// The daemon pinging loopback with `args`, notifying `notify`.
fn daemon(data: &Path, notify: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(common::BIN);
    c.args(["--config", "none", "--data-dir"])
        .arg(data)
        .args(["--target", "127.0.0.1", "--rate", "10"])
        .args(args)
        .env("NOTIFY_SOCKET", notify)
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// One notification and when the daemon sent it.
struct Note {
    /// The kernel's stamp of the datagram (wall clock).
    at: Duration,
    text: String,
}

/// The notification socket at `path`, with kernel timestamps on.
fn notify_socket(path: &Path) -> UnixDatagram {
    let sock = UnixDatagram::bind(path).unwrap();
    let on: libc::c_int = 1;
    // SAFETY: setsockopt with a pointer to a live c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_TIMESTAMPNS: {}", std::io::Error::last_os_error());
    sock
}

/// One datagram with its kernel stamp (`None` when the socket's read timeout passes).
fn recv_note(sock: &UnixDatagram) -> Option<Note> {
    let mut buf = [0u8; 4096];
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; the pointers set below refer to live local buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: recvmsg with the msghdr above.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) };
    let n = usize::try_from(n).ok()?;
    let mut at = None;
    // SAFETY: walks the control messages the kernel wrote into `control`.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                at = Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Some(Note {
        at: at.expect("no SCM_TIMESTAMPNS"),
        text: String::from_utf8_lossy(&buf[..n]).into_owned(),
    })
}

/// The next notification, within [`PATIENCE`].
fn receive_one(sock: &UnixDatagram) -> Option<Note> {
    sock.set_read_timeout(Some(PATIENCE)).unwrap();
    recv_note(sock)
}

/// Receives notifications until `child` exits (within [`PATIENCE`], else it is killed
/// and the test fails), then those still queued; returns them and the child's output.
fn receive_until_exit(sock: &UnixDatagram, mut child: Child) -> (Vec<Note>, Output) {
    let mut notes = Vec::new();
    let end = Instant::now() + PATIENCE;
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    loop {
        let exited = child.try_wait().unwrap().is_some();
        // Blocks at most 50 ms when nothing comes; after the exit, drains the queue.
        while let Some(n) = recv_note(sock) {
            notes.push(n);
        }
        if exited {
            return (notes, child.wait_with_output().unwrap());
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("the daemon did not exit within {PATIENCE:?}");
        }
    }
}

fn texts(notes: &[Note]) -> Vec<&str> {
    notes.iter().map(|n| n.text.as_str()).collect()
}

#[test]
fn ready_after_the_sockets_are_open_then_watchdog_pings() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    zzping_testkit::netns::enter();
    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("notify");
    let sock = notify_socket(&notify);
    let run_s = RUN_S.to_string();
    let child = daemon(
        &dir.path().join("data"),
        &notify,
        &[
            "--metrics",
            ":9464",
            "--live",
            "localhost:7878",
            "--duration",
            &run_s,
        ],
    )
    .env("WATCHDOG_USEC", WATCHDOG_USEC.to_string())
    .spawn()
    .unwrap();

    let ready = receive_one(&sock).expect("no notification");
    assert!(ready.text.starts_with("READY=1"), "first: {:?}", ready.text);
    // At READY the listeners are open: /metrics on IPv4 and IPv6, the live port taken.
    for a in ["127.0.0.1:9464", "[::1]:9464"] {
        TcpStream::connect(a).unwrap_or_else(|e| panic!("connect {a} at READY: {e}"));
    }
    let e = UdpSocket::bind("127.0.0.1:7878").expect_err("live port free at READY");
    assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);

    let (rest, out) = receive_until_exit(&sock, child);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        rest.iter()
            .all(|n| n.text == "WATCHDOG=1" || n.text.starts_with("STOPPING=1")),
        "{:?}",
        texts(&rest)
    );
    let stopping = rest
        .iter()
        .position(|n| n.text.starts_with("STOPPING=1"))
        .unwrap_or_else(|| panic!("no STOPPING=1: {:?}", texts(&rest)));
    assert!(stopping > 0, "no WATCHDOG=1 before STOPPING=1");
    // Keeps coming: from READY to the last message, never a silence of WatchdogSec.
    let timeout = Duration::from_micros(WATCHDOG_USEC);
    let mut prev = ready.at;
    for n in &rest {
        let gap = n.at.saturating_sub(prev);
        assert!(
            gap <= timeout,
            "silence of {gap:?} > WatchdogSec before {:?}",
            n.text
        );
        prev = n.at;
    }
    let pings: Vec<Duration> = rest
        .iter()
        .filter(|n| n.text == "WATCHDOG=1")
        .map(|n| n.at)
        .collect();
    // At most one per interval: the chore reschedules itself WATCHDOG_INTERVAL after
    // each ping (on the monotonic clock; the stamps are the wall clock's, so +1 for a
    // slew between them), so a span S holds at most S / interval + 1 of them.
    let span = pings.last().unwrap().saturating_sub(ready.at);
    let most = (span.as_secs_f64() / WATCHDOG_INTERVAL.as_secs_f64()) as usize + 2;
    assert!(
        pings.len() <= most,
        "{} pings in {span:?}, at most {most}",
        pings.len()
    );
    // It pinged for RUN_S seconds with no silence of WatchdogSec: that takes at least
    // RUN_S / WatchdogSec pings.
    let least = (RUN_S * 1_000_000 / WATCHDOG_USEC) as usize;
    assert!(pings.len() >= least, "{} pings < {least}", pings.len());
}

#[test]
fn no_watchdog_pings_for_another_process() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    zzping_testkit::netns::enter();
    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("notify");
    let sock = notify_socket(&notify);
    let child = daemon(
        &dir.path().join("data"),
        &notify,
        &["--metrics", "[::1]:9464", "--duration", "1.5"],
    )
    .env("WATCHDOG_USEC", WATCHDOG_USEC.to_string())
    .env("WATCHDOG_PID", "1")
    .spawn()
    .unwrap();
    let ready = receive_one(&sock).expect("no notification");
    assert!(ready.text.starts_with("READY=1"), "first: {:?}", ready.text);
    TcpStream::connect("[::1]:9464").expect("/metrics on [::1] at READY");
    let (rest, out) = receive_until_exit(&sock, child);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(texts(&rest), ["STOPPING=1\nSTATUS=stopping"]);
}

/// Runs the daemon with `args`, expecting it to refuse to start: exit status 4 (could not
/// start, fping's "system call failure"; 3 is kept for an invalid configuration), no
/// notification, nothing pinged, and a message containing each of `names`.
fn refuses_to_start(dir: &Path, args: &[&str], names: &[&str]) {
    let notify = dir.join("notify");
    let _ = std::fs::remove_file(&notify);
    let sock = notify_socket(&notify);
    let child = daemon(&dir.join("data"), &notify, args)
        .args(["--duration", "5"])
        .spawn()
        .unwrap();
    let (notes, out) = receive_until_exit(&sock, child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{args:?}: {stderr}");
    assert!(notes.is_empty(), "{args:?}: notified {:?}", texts(&notes));
    for n in names {
        assert!(stderr.contains(n), "{args:?}: {n:?} not in {stderr}");
    }
    assert!(
        !stderr.contains("pinging"),
        "{args:?} started pinging: {stderr}"
    );
}

#[test]
fn a_listener_that_cannot_start_is_fatal() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    zzping_testkit::netns::enter();
    let dir = tempfile::tempdir().unwrap();
    // Ports this test holds in the daemon's namespace.
    let _tcp = TcpListener::bind("127.0.0.1:9464").unwrap();
    let _udp = UdpSocket::bind("127.0.0.1:7878").unwrap();
    let _any = TcpListener::bind("0.0.0.0:9465").unwrap();
    let in_use = "Address already in use";
    refuses_to_start(
        dir.path(),
        &["--live", "off", "--metrics", "127.0.0.1:9464"],
        &["/metrics on 127.0.0.1:9464", in_use],
    );
    refuses_to_start(
        dir.path(),
        &["--live", "off", "--metrics", "localhost:9464"],
        &["/metrics on 127.0.0.1:9464", "\"localhost:9464\"", in_use],
    );
    // `:PORT` binds [::] for both families: an IPv4 listener on the port stops it (no
    // quiet fallback to half the service).
    refuses_to_start(
        dir.path(),
        &["--live", "off", "--metrics", ":9465"],
        &["/metrics on :9465", in_use],
    );
    // The default live address, taken.
    refuses_to_start(dir.path(), &[], &["live stream on 127.0.0.1:7878", in_use]);
    // Every interface without a shared secret.
    refuses_to_start(
        dir.path(),
        &["--live", ":7879"],
        &["live stream on :7879", "requires a shared secret"],
    );
    // A secret file that does not exist.
    refuses_to_start(
        dir.path(),
        &[
            "--live",
            "127.0.0.1:7879",
            "--live-secret-file",
            "/nonexistent/secret",
        ],
        &["live secret file /nonexistent/secret"],
    );
}

/// An invalid command line or configuration exits 3 before anything starts (the unit
/// does not restart on 3), with a message naming what is wrong; --help is not an error.
#[test]
fn an_invalid_configuration_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "rate = \"fast\"\n").unwrap();
    let cases: [(&[&str], &str); 3] = [
        (&["--rate", "fast"], "--rate"),
        (&["--log", "zzping=[loud"], "--log"),
        (&["--config", bad.to_str().unwrap()], "bad.toml"),
    ];
    for (args, name) in cases {
        let out = Command::new(common::BIN)
            .args([
                "--data-dir",
                dir.path().to_str().unwrap(),
                "--duration",
                "1",
            ])
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(stderr.contains(name), "{args:?}: {name:?} not in {stderr}");
        assert!(!stderr.contains("pinging"), "{args:?}: {stderr}");
    }
    let help = Command::new(common::BIN).arg("--help").output().unwrap();
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("Exit status: 0"));
}
