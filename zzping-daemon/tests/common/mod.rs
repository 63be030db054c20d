//! Helpers for tests that send packets: everything runs inside a network namespace the
//! test creates, targeting only loopback or 198.18.0.0/15 / 2001:db8::/32.

#![allow(dead_code)]

pub mod prometheus;

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::Command;

use zzping_lib::file::FileReader;

/// The daemon binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_zzping-daemon");

/// A command running the daemon in a fresh network namespace with `lo` up. With
/// `dgram_allowed`, `net.ipv4.ping_group_range` is opened inside the namespace.
pub fn daemon_in_netns(dgram_allowed: bool, args: &[&str]) -> Command {
    daemon_in_netns_with("", dgram_allowed, args)
}

/// Like [`daemon_in_netns`], running the shell commands `setup` (each ending in `&& `)
/// in the namespace first.
pub fn daemon_in_netns_with(setup: &str, dgram_allowed: bool, args: &[&str]) -> Command {
    let sysctl = if dgram_allowed {
        "sysctl -qw net.ipv4.ping_group_range='0 2147483647' && "
    } else {
        ""
    };
    let script = format!(
        "ip link set lo up && ip addr add 127.0.0.2/8 dev lo 2>/dev/null; {setup}{sysctl}exec \"$0\" \"$@\""
    );
    let mut c = Command::new("timeout");
    c.args(["60", "unshare", "--net", "sh", "-c", &script, BIN]);
    c.args(["--config", "none"]);
    c.args(args);
    c.env_remove("RUST_LOG");
    c
}

/// CPU time the daemon reported in its exit log line, ms.
pub fn reported_cpu_ms(stderr: &str) -> f64 {
    let line = stderr
        .lines()
        .find(|l| l.contains("stopped:"))
        .unwrap_or_else(|| panic!("no exit line in: {stderr}"));
    let after = line.split("CPU ").nth(1).expect("CPU field");
    after
        .split(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("CPU value")
}

/// The exit line's count of requests timed by kernel transmit stamps.
pub fn reported_tx_stamps(stderr: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.contains("stopped:"))
        .unwrap_or_else(|| panic!("no exit line in: {stderr}"));
    let after = line
        .split("kernel send stamps ")
        .nth(1)
        .expect("kernel send stamps field");
    after
        .split(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("kernel send stamps value")
}

/// The number after `label` in the daemon's exit line (`stopped: ...`), e.g.
/// `exit_field(stderr, "sends skipped ")`.
pub fn exit_field(stderr: &str, label: &str) -> f64 {
    let line = stderr
        .lines()
        .find(|l| l.contains("stopped:"))
        .unwrap_or_else(|| panic!("no exit line in: {stderr}"));
    let after = line
        .split(label)
        .nth(1)
        .unwrap_or_else(|| panic!("no {label:?} in the exit line: {line}"));
    let end = after
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(after.len());
    after[..end]
        .parse()
        .unwrap_or_else(|e| panic!("{label:?} in the exit line: {e}: {line}"))
}

/// The number of sends the daemon's schedule allows one host at `rate` per second for
/// `duration_s`, given the exit line of the run (see [`exit_field`]).
///
/// The mechanism (engine/send.rs `poll_send`, daemon/mod.rs main loop): a host's sends
/// are due at absolute times `first + k x interval`, its first within one interval of the
/// start; each loop iteration sends everything due, and the iteration that finds the duration
/// over stops after sending. So every send due up to the end is made, unless the loop
/// fell more than 1 s behind and skipped it (`sends skipped`): at least `rate x
/// duration - skipped`. Beyond the end, only sends due before that last iteration woke,
/// which was at most the largest send lateness (`max ...µs`) after the first of them:
/// at most `rate x duration + 1` on schedule plus `max lateness / interval + 1`.
pub fn scheduled_sends(rate: f64, duration_s: f64, exit_line: &str) -> RangeInclusive<u64> {
    let on_schedule = (rate * duration_s).round() as u64;
    let skipped = exit_field(exit_line, "sends skipped ") as u64;
    let max_late_us = exit_field(exit_line, "µs max ");
    let after_end = (max_late_us * rate / 1e6).floor() as u64 + 1;
    on_schedule.saturating_sub(skipped)..=on_schedule + 1 + after_end
}

/// One decoded frame.
#[derive(Debug, Clone)]
pub struct F {
    pub start_us: u64,
    pub sent: u32,
    pub received: u32,
    pub lost: u32,
    pub errors: u32,
    pub duplicates: u32,
    pub late: u32,
    pub flags: u8,
    pub rtts_us: Vec<u32>,
    pub error_kinds: zzping_lib::frame::ErrorKinds,
    pub router: Option<std::net::IpAddr>,
}

/// All frames of one host directory (via zzping-lib's reader).
pub fn read_host(dir: &Path) -> Vec<F> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let mut r = FileReader::open(&f).unwrap();
        loop {
            let q = {
                let Some(fr) = r.next_frame().unwrap() else {
                    break;
                };
                fr.clone()
            };
            let quant = r.quantizer().unwrap().clone();
            out.push(F {
                start_us: q.start_us,
                sent: q.sent,
                received: q.received(),
                lost: q.lost,
                errors: q.errors,
                duplicates: q.duplicates,
                late: q.late,
                flags: q.flags,
                error_kinds: q.error_kinds,
                router: q.router,
                rtts_us: q
                    .codes
                    .iter()
                    .map(|&c| quant.decode_saturating(c))
                    .collect(),
            });
        }
        assert!(r.issues().is_empty(), "{}: {:?}", f.display(), r.issues());
    }
    out
}

/// Every context event of a data directory (via zzping-lib's reader), in time order;
/// damage fails the test.
pub fn read_events(data: &Path) -> Vec<zzping_lib::events::ContextEvent> {
    let log = zzping_lib::events::read_range(&[zzping_lib::events::events_dir(data)], 0, u64::MAX);
    assert!(
        log.issues.is_empty() && log.errors.is_empty(),
        "{:?} {:?}",
        log.issues,
        log.errors
    );
    log.events
}

/// Sum of a field over frames.
pub fn sum(frames: &[F], pick: impl Fn(&F) -> u32) -> u32 {
    frames.iter().map(pick).sum()
}

/// Total size of the files under `data` (host directories and their day files), bytes.
pub fn data_bytes(data: &Path) -> u64 {
    let Ok(hosts) = std::fs::read_dir(data) else {
        return 0;
    };
    hosts
        .flatten()
        .filter_map(|h| std::fs::read_dir(h.path()).ok())
        .flat_map(|files| files.flatten())
        .filter_map(|f| f.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Waits until a daemon writing to `data` has flushed its frame files `n` more times
/// (seen as `n` growths of [`data_bytes`], polled every 5 ms; two flushes between polls
/// count as one, which only lengthens the wait). A flush is an event of the daemon's own
/// loop, so a window between flushes lies in its steady state however loaded the
/// machine is. Panics after `limit` (a bound on the test only).
pub fn wait_flushes(data: &Path, n: u32, limit: std::time::Duration) {
    let end = std::time::Instant::now() + limit;
    let mut last = data_bytes(data);
    let mut seen = 0;
    while seen < n {
        assert!(
            std::time::Instant::now() < end,
            "only {seen} of {n} flushes of {} within {limit:?}",
            data.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
        let now = data_bytes(data);
        if now > last {
            seen += 1;
            last = now;
        }
    }
}

/// Runs `daemon::run` on a thread of its own (in the caller's network namespace) and
/// returns its handle and its pthread, to stop it with [`stop_daemon_thread`].
pub fn spawn_daemon_thread(
    cli: zzping_daemon::config::Cli,
    cfg: zzping_daemon::config::Config,
) -> (
    std::thread::JoinHandle<zzping_daemon::daemon::RunReport>,
    libc::pthread_t,
) {
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        // SAFETY: pthread_self has no preconditions.
        tx.send(unsafe { libc::pthread_self() }).unwrap();
        zzping_daemon::daemon::run(cli, cfg).expect("daemon::run")
    });
    (h, rx.recv().unwrap())
}

/// Sends SIGTERM to the daemon's thread (started by [`spawn_daemon_thread`] and not yet
/// joined). The daemon blocks the signal on that thread and reads it from its signalfd,
/// so it stops cleanly; nothing else in the test process sees the signal.
pub fn stop_daemon_thread(thread: libc::pthread_t) {
    // SAFETY: `thread` is a joinable thread we have not joined, so it is still valid.
    let rc = unsafe { libc::pthread_kill(thread, libc::SIGTERM) };
    assert_eq!(rc, 0, "pthread_kill: {rc}");
}

/// Sends `sig` to `pid` (a process of this test's own tree).
pub fn kill(pid: i32, sig: i32) {
    // SAFETY: plain kill(2) on a pid of our own process tree.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig})");
}

/// The zzping-daemon process under `root` (timeout -> unshare -> sh exec'd daemon).
pub fn find_daemon_pid(root: u32) -> i32 {
    let mut frontier = vec![root];
    for _ in 0..5 {
        let mut next = Vec::new();
        for p in &frontier {
            let exe = std::fs::read_link(format!("/proc/{p}/exe")).unwrap_or_default();
            if exe.file_name().is_some_and(|n| n == "zzping-daemon") {
                return *p as i32;
            }
            let children =
                std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")).unwrap_or_default();
            next.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
        frontier = next;
    }
    panic!("daemon process not found under {root}");
}

/// Waits until the daemon's stderr has had a line containing each of `needles` (in any
/// order); appends the lines read to `log`.
pub fn wait_for_all(lines: &mut impl Iterator<Item = String>, needles: &[&str], log: &mut String) {
    let mut missing: Vec<&str> = needles.to_vec();
    for l in lines.by_ref() {
        log.push_str(&l);
        log.push('\n');
        missing.retain(|n| !l.contains(n));
        if missing.is_empty() {
            return;
        }
    }
    panic!("daemon ended before logging {missing:?}:\n{log}");
}

/// [`wait_for_all`] with one needle.
pub fn wait_for(lines: &mut impl Iterator<Item = String>, needle: &str, log: &mut String) {
    wait_for_all(lines, &[needle], log);
}

/// Writes one frame of host `label` (address 198.18.0.99) starting now into its day file
/// under `data`, as the daemon would; returns that file.
pub fn write_frames_now(data: &Path, label: &str) -> PathBuf {
    write_frame_at(data, label, zzping_lib::file::wall_clock_us())
}

/// Writes one frame of host `label` (address 198.18.0.99) starting at `t_us` into its
/// day file under `data`; returns that file.
pub fn write_frame_at(data: &Path, label: &str, now: u64) -> PathBuf {
    let mut w = zzping_lib::file::HostWriter::open(
        data,
        zzping_lib::file::HostInfo {
            label: label.into(),
            address: "198.18.0.99".parse().unwrap(),
            name: None,
            role: None,
        },
        zzping_lib::file::WriterConfig {
            period_us: 100_000,
            precision: 0.01,
            writer: "test".into(),
        },
    )
    .unwrap();
    let mut f = zzping_lib::frame::Frame::new(now - now % 100_000, 100_000);
    f.sent = 1;
    f.rtts_us.push(250);
    w.append(&f).unwrap();
    w.sync().unwrap();
    zzping_lib::store::layout::day_file(w.host_dir(), now)
}

/// Spawns the daemon with `args` (in the caller's network namespace), following its
/// stderr; killed when the [`Kill`](zzping_testkit::process::Kill) is dropped.
pub fn spawn_daemon_logged(
    args: &[&str],
) -> (
    zzping_testkit::process::Kill,
    zzping_testkit::process::LogLines,
) {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the daemon");
    let log = zzping_testkit::process::LogLines::follow(child.stderr.take().unwrap());
    (zzping_testkit::process::Kill(child), log)
}
