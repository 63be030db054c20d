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

/// The daemon's stderr as lines (ends when the daemon does).
fn lines(child: &mut std::process::Child) -> impl Iterator<Item = String> + use<> {
    BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
}

/// Waits (bounded) until `path` exists and is not empty.
fn wait_for_file(path: &Path) {
    let end = Instant::now() + LIMIT;
    while !std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
        assert!(Instant::now() < end, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
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
        "--duration",
        "30",
    ];
    let mut first = Kill(daemon(&args).spawn().unwrap());
    let mut log = String::new();
    let mut out = lines(&mut first.0);
    wait_for(&mut out, "127.0.0.1: pinging", &mut log);

    let second = output_bounded(daemon(&args).spawn().unwrap(), LIMIT);
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "second daemon ran: {err}");
    assert!(
        err.contains(&format!("data directory {data} is in use"))
            && err.contains(&format!("PID {}", first.0.id())),
        "{err}"
    );
    // The second daemon wrote nothing: the first one's files are whole.
    kill(first.0.id() as i32, libc::SIGTERM);
    wait_for(&mut out, "stopped:", &mut log);
    assert!(
        wait_bounded(&mut first.0, LIMIT, "first daemon").success(),
        "{log}"
    );
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
    kill(child.0.id() as i32, libc::SIGTERM);
    wait_for(&mut out, "stopped:", &mut log);
    assert!(
        wait_bounded(&mut child.0, LIMIT, "daemon").success(),
        "{log}"
    );
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
}
