//! Faults that must never harm the measurement or the history (issue 16's daemon rows),
//! each against the real binary in a network namespace created for the test's thread
//! (children inherit it), with loopback targets only.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use zzping_lib::time::{US_PER_DAY, day_name};
use zzping_testkit::process::{Kill, output_bounded, wait_bounded};

/// A bound on each test's waits (the daemons themselves stop after `--duration`).
const LIMIT: Duration = Duration::from_secs(60);

/// The daemon binary with `args` after `--config none`, stderr piped.
fn daemon(args: &[&str]) -> Command {
    daemon_with("none", args)
}

/// The daemon binary with `args` after `--config config`, stderr piped.
fn daemon_with(config: &str, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(["--config", config])
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// Pings per second of [`recording`].
const RECORD_RATE: u64 = 20;

/// The daemon pinging `targets` at [`RECORD_RATE`] into `data` (no live stream, frames
/// flushed every 0.2 s, for at most 60 s: the tests stop it).
fn recording(data: &Path, targets: &[&str]) -> Command {
    let rate = RECORD_RATE.to_string();
    let mut args = vec![
        "--data-dir",
        data.to_str().unwrap(),
        "--rate",
        &rate,
        "--live",
        "off",
        "--flush-interval-s",
        "0.2",
        "--duration",
        "60",
    ];
    for t in targets {
        args.extend(["--target", t]);
    }
    daemon(&args)
}

/// Stops the daemon with SIGTERM, reads its log to the exit line and checks it exited
/// cleanly (bounded).
fn stop_cleanly(child: &mut Kill, out: &mut impl Iterator<Item = String>, log: &mut String) {
    kill(child.0.id() as i32, libc::SIGTERM);
    wait_for(out, "stopped:", log);
    assert!(
        wait_bounded(&mut child.0, LIMIT, "daemon").success(),
        "{log}"
    );
}

/// The daemon's stderr as lines (ends when the daemon does).
fn lines(child: &mut std::process::Child) -> impl Iterator<Item = String> + use<> {
    BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
}

/// Polls `done` every 20 ms (files have no signal to wait on) until it holds; panics
/// with `what` after [`LIMIT`].
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let end = Instant::now() + LIMIT;
    while !done() {
        assert!(Instant::now() < end, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded) until host directory `host` holds a frame file that is not empty.
fn wait_for_frames(host: &Path) {
    wait_until(&format!("{}: no frames", host.display()), || {
        std::fs::read_dir(host)
            .is_ok_and(|d| d.flatten().any(|e| e.metadata().is_ok_and(|m| m.len() > 0)))
    });
}

/// Waits (bounded) until `path` exists and is not empty.
fn wait_for_file(path: &Path) {
    wait_until(&format!("{} never appeared", path.display()), || {
        std::fs::metadata(path).is_ok_and(|m| m.len() > 0)
    });
}

/// A `--duration` run stopped early by a signal exits 0, like a service, even with a host
/// that never answered: only a run that reached its duration reports on its hosts.
#[test]
fn a_signal_before_the_duration_exits_0_whatever_the_hosts_did() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    zzping_testkit::netns::enter();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    // No route to 198.18.0.5 in a fresh namespace: it never answers.
    let args = [
        "--data-dir",
        data,
        "--target",
        "198.18.0.5",
        "--live",
        "off",
        "--duration",
        "30",
    ];
    let mut child = Kill(daemon(&args).spawn().unwrap());
    let mut log = String::new();
    let mut out = lines(&mut child.0);
    wait_for(&mut out, "198.18.0.5: pinging", &mut log);
    stop_cleanly(&mut child, &mut out, &mut log);
    assert!(!log.contains("exit status"), "{log}");
}

#[test]
fn a_second_daemon_on_the_same_data_directory_exits_naming_it_and_the_holder() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    zzping_testkit::netns::enter();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let args = [
        "--data-dir",
        data,
        "--target",
        "127.0.0.1",
        "--rate",
        "20",
        "--live",
        "off",
        "--flush-interval-s",
        "0.2",
        "--duration",
        "30",
    ];
    let mut first = Kill(daemon(&args).spawn().unwrap());
    let mut log = String::new();
    let mut out = lines(&mut first.0);
    wait_for(&mut out, "127.0.0.1: pinging", &mut log);
    // Its first frames on disk (sends start on the next aligned round, not at once).
    wait_for_frames(&dir.path().join("127.0.0.1"));

    let second = output_bounded(daemon(&args).spawn().unwrap(), LIMIT);
    let err = String::from_utf8_lossy(&second.stderr);
    // Exit status 4: the daemon could not start (main.rs).
    assert_eq!(second.status.code(), Some(4), "second daemon: {err}");
    assert!(
        err.contains(&format!("data directory {data} is in use"))
            && err.contains(&format!("PID {}", first.0.id())),
        "{err}"
    );
    // The second daemon wrote nothing: the first one's files are whole.
    stop_cleanly(&mut first, &mut out, &mut log);
    let frames = read_host(&dir.path().join("127.0.0.1"));
    assert!(!frames.is_empty() && frames.iter().all(|f| f.sent == f.received));
    // The lock went with the process: a daemon starts on the directory again.
    let mut short = args.to_vec();
    *short.last_mut().unwrap() = "0.2";
    let third = output_bounded(daemon(&short).spawn().unwrap(), LIMIT);
    assert!(
        third.status.success(),
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
}

#[test]
fn retention_days_zero_is_refused_with_the_way_to_keep_forever() {
    let out = Command::new(BIN)
        .args([
            "--config",
            "none",
            "--check-config",
            "--retention-days",
            "0",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("retention_days = 0") && err.contains("at least 1"),
        "{err}"
    );
    assert!(err.contains("leave retention_days out"), "{err}");
    let ok = Command::new(BIN)
        .args([
            "--config",
            "none",
            "--check-config",
            "--retention-days",
            "1",
        ])
        .output()
        .unwrap();
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).contains("retention_days = 1"));
}

#[test]
fn a_wall_clock_stepped_400_days_ahead_deletes_no_history() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    zzping_testkit::netns::enter();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let now = zzping_lib::file::wall_clock_us();
    // History: the last five days of a host, and one day 40 days ago, which
    // `retention_days = 30` deletes at start (retention works; it is not just off).
    let recent: Vec<_> = (1..=5)
        .map(|d| write_frame_at(data, "gw", now - d * US_PER_DAY))
        .collect();
    let old = write_frame_at(data, "gw", now - 40 * US_PER_DAY);
    const STEP_S: u64 = 400 * 86_400;
    let mut child = Kill(
        daemon(&[
            "--data-dir",
            data.to_str().unwrap(),
            "--target",
            "127.0.0.1",
            "--rate",
            "20",
            "--live",
            "off",
            "--flush-interval-s",
            "0.2",
            "--retention-days",
            "30",
            "--duration",
            "30",
        ])
        .env("ZZPING_TEST_WALL_CLOCK_STEP", format!("1,{STEP_S}"))
        .spawn()
        .unwrap(),
    );
    let mut log = String::new();
    let mut out = lines(&mut child.0);
    wait_for(&mut out, "127.0.0.1: pinging", &mut log);
    assert!(!old.exists(), "the 40-day-old file was kept: {log}");
    assert!(log.contains("retention: removed"), "{log}");
    // The step: the engine sees it, and the daemon writes a file 400 days ahead.
    wait_for(&mut out, "wall clock stepped by", &mut log);
    let future =
        zzping_lib::store::layout::day_file(&data.join("127.0.0.1"), now + STEP_S * 1_000_000);
    wait_for_file(&future);
    // A retention pass now (SIGHUP runs one) counts from the history, not the clock.
    kill(child.0.id() as i32, libc::SIGHUP);
    wait_for(&mut out, "ahead of the history clock", &mut log);
    stop_cleanly(&mut child, &mut out, &mut log);
    for f in &recent {
        assert!(f.exists(), "{} deleted: {log}", f.display());
    }
    assert_eq!(log.matches("retention: removed").count(), 1, "{log}");
    // The frames after the step are there, the first flagged.
    let frames = read_host(&data.join("127.0.0.1"));
    let stepped: Vec<_> = frames
        .iter()
        .filter(|f| f.start_us > now + (STEP_S - 86_400) * 1_000_000)
        .collect();
    assert!(!stepped.is_empty(), "{log}");
    assert!(
        frames
            .iter()
            .any(|f| f.flags & zzping_lib::frame::FLAG_CLOCK_STEP != 0),
        "no frame flagged: {log}"
    );
    assert!(log.contains(&day_name(now + STEP_S * 1_000_000)), "{log}");
    // Recorded with its size: the hook shifts the wall clock by exactly STEP_S; the check
    // measures it between two samples of both clocks, each within 10 µs unless the
    // thread was preempted (clock::now), so a second is far beyond any error.
    let events = read_events(data);
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(
        kinds,
        ["daemon_start", "clock_step", "reload", "daemon_stop"],
        "{events:?}"
    );
    let step = events.iter().find_map(|e| e.step_us).unwrap();
    assert!(
        step.abs_diff(STEP_S as i64 * 1_000_000) < 1_000_000,
        "{step} µs: {events:?}"
    );
    assert_eq!(events.last().unwrap().reason.as_deref(), Some("signal 15"));
}

#[test]
fn a_suspend_is_recorded_with_its_length_and_not_as_a_clock_step() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    zzping_testkit::netns::enter();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    const SUSPEND_S: i64 = 45;
    let mut child = Kill(
        recording(data, &["127.0.0.1"])
            .env(zzping_daemon::clock::SUSPEND_ENV, format!("1,{SUSPEND_S}"))
            .spawn()
            .unwrap(),
    );
    let mut log = String::new();
    let mut out = lines(&mut child.0);
    wait_for(&mut out, "event: suspended", &mut log);
    stop_cleanly(&mut child, &mut out, &mut log);
    let events = read_events(data);
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(
        kinds,
        ["daemon_start", "suspend", "daemon_stop"],
        "{events:?}"
    );
    // The hook advances boot time and the wall clock by exactly SUSPEND_S; the watch
    // reads boot time against two monotonic readings microseconds apart.
    let d = events[1].duration_us.unwrap();
    assert!(
        d.abs_diff(SUSPEND_S as u64 * 1_000_000) < 50_000,
        "{d} µs: {events:?}"
    );
    // It began where the wall clock was before the jump: before the stop, and the span
    // ends at about the time it was seen.
    assert!(events[1].t_us >= events[0].t_us, "{events:?}");
    assert!(events[1].end_us() <= events[2].t_us, "{events:?}");
    assert_eq!(events[2].reason.as_deref(), Some("signal 15"));
    // The wall clock jumped against the monotonic one, but by the suspend: no frame says
    // the clock stepped, and neither does the exit line.
    let frames = read_host(&data.join("127.0.0.1"));
    assert!(
        frames.iter().any(|f| f.start_us <= events[1].t_us),
        "no frame open at the suspend: {log}"
    );
    let flagged: Vec<u64> = frames
        .iter()
        .filter(|f| f.flags & zzping_lib::frame::FLAG_CLOCK_STEP != 0)
        .map(|f| f.start_us)
        .collect();
    assert!(
        flagged.is_empty(),
        "frames flagged as a clock step at {flagged:?}: {log}"
    );
    assert!(log.contains("clock steps 0,"), "{log}");
    assert!(!log.contains("wall clock stepped"), "{log}");
}

/// A daemon that is not scheduled (stopped here with SIGSTOP, as a paused VM or a
/// starved machine would leave it) records a `stall` spanning the time it did not run,
/// which its files and `zzping report` tell from an outage: no sends, no loss.
#[test]
fn a_stall_is_recorded_with_its_length_and_not_as_loss() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    zzping_testkit::netns::enter();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let mut child = Kill(recording(data, &["127.0.0.1"]).spawn().unwrap());
    let mut log = String::new();
    let mut out = lines(&mut child.0);
    wait_for(&mut out, "127.0.0.1: pinging", &mut log);
    wait_for_frames(&data.join("127.0.0.1"));
    let pid = child.0.id() as i32;
    let stopped_at = Instant::now();
    kill(pid, libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(2500));
    kill(pid, libc::SIGCONT);
    let stopped_for = stopped_at.elapsed();
    wait_for(&mut out, "event: zzping stalled for", &mut log);
    stop_cleanly(&mut child, &mut out, &mut log);
    let events = read_events(data);
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(
        kinds,
        ["daemon_start", "stall", "daemon_stop"],
        "{events:?}"
    );
    // It began when the loop was due (at most a send interval after the stop) and ended
    // when it ran again (after the SIGCONT: later on a loaded machine, never earlier).
    let d = events[1].duration_us.unwrap();
    let stopped_us = stopped_for.as_micros() as u64;
    assert!(
        d + 1_000_000 / RECORD_RATE >= stopped_us,
        "{d} µs stalled, stopped {stopped_us} µs: {events:?}"
    );
    assert!(events[1].end_us() <= events[2].t_us, "{events:?}");
    // The files: a gap with no frame inside the stall (nothing was sent), no loss
    // anywhere, and the frame after it says its sends were late.
    let frames = read_host(&data.join("127.0.0.1"));
    let (from, to) = (events[1].t_us, events[1].end_us());
    let inside: Vec<u64> = frames
        .iter()
        .map(|f| f.start_us)
        .filter(|&t| t > from + 100_000 && t + 100_000 < to)
        .collect();
    assert!(inside.is_empty(), "frames inside the stall at {inside:?}");
    assert!(frames.iter().all(|f| f.lost == 0), "{log}");
    assert!(
        frames
            .iter()
            .any(|f| f.start_us >= from && f.flags & zzping_lib::frame::FLAG_SEND_LATE != 0),
        "{log}"
    );
    assert!(log.contains("the daemon's loop ran 2."), "{log}");
    assert!(log.contains(", stalls 1 ("), "{log}");
}

/// A resolver that takes seconds to answer (DNS down: the test hook delays every
/// resolution 3 s) delays nothing but its own host's start: the other host's pings go on
/// from the first moment, no stall, no send skipped.
#[test]
fn a_slow_resolver_delays_no_ping() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    zzping_testkit::netns::enter();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let mut child = Kill(
        recording(data, &["localhost", "127.0.0.2"])
            .env(zzping_daemon::daemon::RESOLVE_DELAY_ENV, "3000")
            .spawn()
            .unwrap(),
    );
    let mut log = String::new();
    let mut out = lines(&mut child.0);
    wait_for(&mut out, "localhost: pinging", &mut log);
    wait_for_frames(&data.join("localhost"));
    stop_cleanly(&mut child, &mut out, &mut log);
    assert!(log.contains("resolving \"localhost\" took 3."), "{log}");
    // 127.0.0.2 started before the answer and was pinged on schedule throughout.
    let started = |what: &str| log.find(what).unwrap_or_else(|| panic!("{what}: {log}"));
    assert!(
        started("127.0.0.2: pinging") < started("localhost: pinging"),
        "{log}"
    );
    assert!(
        log.contains(", stalls 0 (") && log.contains("sends skipped 0,"),
        "{log}"
    );
    let frames = read_host(&data.join("127.0.0.2"));
    let starts: Vec<u64> = frames.iter().map(|f| f.start_us).collect();
    // It was pinged from before the 3 s answer to after it (frames start on 100 ms
    // periods).
    let span = starts.last().unwrap() - starts.first().unwrap();
    assert!(span >= 2_800_000, "{starts:?}");
    // A resolution on the loop would leave a 3 s hole; a late loop on a loaded machine
    // only moves sends to a later frame (and more than a second late is a stall, checked
    // above), so no two frames are a second apart.
    for w in starts.windows(2) {
        assert!(w[1] - w[0] < 1_000_000, "a gap in {starts:?}");
    }
    let events = read_events(data);
    assert!(
        events.iter().all(|e| e.kind.name() != "stall"),
        "{events:?}"
    );
}

/// The daemon's stderr, read on a thread, so a test can drive a viewer while it waits
/// for a line.
struct Log {
    rx: std::sync::mpsc::Receiver<String>,
    text: String,
}

impl Log {
    fn of(child: &mut std::process::Child) -> Log {
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        Log {
            rx,
            text: String::new(),
        }
    }

    /// Waits (bounded) for a line containing `needle`, calling `between` every 20 ms
    /// meanwhile; returns that line.
    fn wait(&mut self, needle: &str, mut between: impl FnMut()) -> String {
        let end = Instant::now() + LIMIT;
        loop {
            match self.rx.recv_timeout(Duration::from_millis(20)) {
                Ok(l) => {
                    self.text.push_str(&l);
                    self.text.push('\n');
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(_) => panic!("daemon ended before logging {needle:?}:\n{}", self.text),
            }
            assert!(
                Instant::now() < end,
                "no {needle:?} within {LIMIT:?}:\n{}",
                self.text
            );
            between();
        }
    }
}

/// Subscribes to `server` (with `secret`) and waits (bounded) for the subscription and a
/// frame of a live host.
fn live_frames(server: &str, secret: Option<[u8; 32]>) {
    use zzping_lib::live::{ClientConfig, LiveEvent, UdpLiveClient};
    let mut cfg = ClientConfig::new(server.parse().unwrap());
    cfg.secret = secret;
    let mut viewer = UdpLiveClient::connect(cfg).unwrap();
    let (mut subscribed, mut frame) = (false, false);
    let end = Instant::now() + LIMIT;
    while !(subscribed && frame) {
        assert!(
            Instant::now() < end,
            "{server}: subscribed {subscribed}, frame {frame}"
        );
        match viewer.next_event(Duration::from_millis(100)).unwrap() {
            Some(LiveEvent::Subscribed) => subscribed = true,
            Some(LiveEvent::Frame { frame: f, .. }) => frame |= f.sent > 0,
            _ => {}
        }
    }
}

#[test]
fn sighup_moves_the_live_stream_applies_a_secret_and_names_what_needs_a_restart() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    zzping_testkit::netns::enter();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("zzping.toml");
    let secret_file = dir.path().join("live.secret");
    let write_conf = |extra: &str| {
        std::fs::write(
            &conf,
            format!(
                "data_dir = {:?}\n{extra}\n[[host]]\ntarget = \"127.0.0.1\"\n",
                dir.path().join("data")
            ),
        )
        .unwrap();
    };
    write_conf("rate = 20\nlive = \"127.0.0.1:7878\"");
    let mut child = Kill(
        daemon_with(conf.to_str().unwrap(), &["--duration", "60"])
            .spawn()
            .unwrap(),
    );
    let pid = child.0.id() as i32;
    let mut log = Log::of(&mut child.0);
    log.wait("live stream on 127.0.0.1:7878", || {});
    log.wait("127.0.0.1: pinging", || {});
    live_frames("127.0.0.1:7878", None);

    // Another address and default rate (applied), another period (needs a restart: said,
    // not applied).
    write_conf("rate = 50\nlive = \"127.0.0.1:7879\"\nperiod_ms = 50");
    kill(pid, libc::SIGHUP);
    // The host without a rate of its own follows the default.
    log.wait("127.0.0.1: rate now 50/s", || {});
    let line = log.wait("SIGHUP: configuration", || {});
    assert!(
        line.contains("partly reloaded")
            && line.contains("rate 20 -> 50")
            && line.contains("live stream on 127.0.0.1:7879")
            && line.contains("NOT applied: needs a restart: period_ms 100 -> 50"),
        "{line}"
    );
    // The old socket is closed: its port is free.
    drop(std::net::UdpSocket::bind("127.0.0.1:7878").expect("7878 still bound"));
    live_frames("127.0.0.1:7879", None);

    // A shared secret: viewers with it are served, viewers without are refused.
    let secret = [0x5au8; 32];
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&secret_file, format!("{hex}\n")).unwrap();
    write_conf(&format!(
        "rate = 50\nlive = \"127.0.0.1:7879\"\nlive_secret_file = {secret_file:?}"
    ));
    kill(pid, libc::SIGHUP);
    let line = log.wait("SIGHUP: configuration", || {});
    assert!(
        line.contains("configuration reloaded (live secret"),
        "{line}"
    );
    live_frames("127.0.0.1:7879", Some(secret));
    let mut stranger = zzping_lib::live::UdpLiveClient::connect(
        zzping_lib::live::ClientConfig::new("127.0.0.1:7879".parse().unwrap()),
    )
    .unwrap();
    let mut events = Vec::new();
    log.wait("failed authentication", || {
        if let Some(e) = stranger.next_event(Duration::ZERO).unwrap() {
            events.push(e);
        }
    });
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, zzping_lib::live::LiveEvent::Subscribed)),
        "{events:?}"
    );
    // A secret file that cannot be read is refused by name, and the stream keeps its own.
    std::fs::write(&secret_file, "not hex\n").unwrap();
    kill(pid, libc::SIGHUP);
    let line = log.wait("SIGHUP: configuration", || {});
    assert!(
        line.contains("NOT applied: live stream unchanged") && line.contains("live.secret"),
        "{line}"
    );
    live_frames("127.0.0.1:7879", Some(secret));
    kill(pid, libc::SIGTERM);
    log.wait("stopped:", || {});
    assert!(wait_bounded(&mut child.0, LIMIT, "daemon").success());
}

/// The value of the exposition sample `series` in a scrape of `/metrics` at `addr`.
fn scrape(addr: &str, series: &str) -> f64 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in {body}"))
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_data_directory_not_writable_at_start_is_retried_and_nothing_is_lost() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    zzping_testkit::netns::enter();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    // Not writable for the daemon: it drops every capability (CAP_DAC_OVERRIDE too) once
    // its sockets are open, so even as root it meets the mode.
    chmod(&data, 0o555);
    let status_path = dir.path().join("status.txt");
    const METRICS: &str = "127.0.0.1:9469";
    let mut child = Kill(
        daemon(&[
            "--data-dir",
            data.to_str().unwrap(),
            "--target",
            "127.0.0.1",
            "--rate",
            "20",
            "--live",
            "off",
            "--metrics",
            METRICS,
            "--flush-interval-s",
            "0.2",
            "--status",
            "--duration",
            "60",
        ])
        .stdout(std::fs::File::create(&status_path).unwrap())
        .spawn()
        .unwrap(),
    );
    let pid = child.0.id() as i32;
    let mut log = Log::of(&mut child.0);
    log.wait("recording failed", || {});
    // Retried (with backoff: 0.2 s, 0.4 s, 0.8 s...), counted (the frame file and the
    // events file each), shown as failing (the status table, every second, says so).
    let failing_shown = || {
        std::fs::read_to_string(&status_path)
            .unwrap_or_default()
            .contains("recording: FAILING, ")
    };
    let end = Instant::now() + LIMIT;
    while scrape(METRICS, "zzping_write_errors_total") < 3.0 || !failing_shown() {
        assert!(Instant::now() < end, "no retries:\n{}", log.text);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(scrape(METRICS, "zzping_recording_failing"), 1.0);
    assert!(std::fs::read_dir(&data).unwrap().next().is_none());
    // The directory comes back: everything buffered is written.
    let writable_at_us = zzping_lib::file::wall_clock_us();
    chmod(&data, 0o755);
    let line = log.wait("recording works again", || {});
    let waited: u64 = line
        .split("recording works again: ")
        .nth(1)
        .and_then(|r| r.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    // Three failed flushes span at least 0.2 s + 0.4 s of backoff: 6 periods of frames.
    assert!(waited >= 5, "{line}");
    assert_eq!(scrape(METRICS, "zzping_recording_failing"), 0.0);
    assert_eq!(scrape(METRICS, "zzping_unrecorded_frames_total"), 0.0);
    let errors = scrape(METRICS, "zzping_write_errors_total");
    // The status table says so too (it said FAILING before: checked below).
    let status_ok = |p: &Path| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .contains("recording: ok")
    };
    let end = Instant::now() + LIMIT;
    while !status_ok(&status_path) {
        assert!(
            Instant::now() < end,
            "no recording line in the status table"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    kill(pid, libc::SIGTERM);
    let exit = log.wait("stopped:", || {});
    assert!(wait_bounded(&mut child.0, LIMIT, "daemon").success());
    // "... F frames, W write errors, U frames unrecorded; ..."
    assert_eq!(
        exit_field(&exit, "frames, ") as u64,
        errors as u64,
        "the exit line's write errors: {exit}"
    );
    assert_eq!(
        exit_field(&exit, "write errors, "),
        0.0,
        "unrecorded: {exit}"
    );
    let status = std::fs::read_to_string(&status_path).unwrap();
    assert!(status.contains("recording: FAILING, "), "{status}");
    // Every frame the daemon made is in the file.
    let frames = read_host(&data.join("127.0.0.1"));
    let made = exit.split(" frames, ").next().unwrap();
    let made: u64 = made.rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(frames.len() as u64, made, "{exit}");
    // In order, each once, and from the start: the frames made while the directory was
    // not writable (at least three flushes, 0.2 s + 0.2 s + 0.4 s apart) are there.
    assert!(frames.windows(2).all(|w| w[1].start_us > w[0].start_us));
    assert!(
        frames[0].start_us + 500_000 < writable_at_us,
        "the first frame is from after the outage"
    );
    assert!(frames.iter().all(|f| f.sent == f.received && f.sent > 0));
    assert!(frames.len() >= waited as usize);
}
