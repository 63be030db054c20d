//! Faults that must never harm the measurement or the history (issue 16's daemon rows),
//! each against the real binary in a network namespace created for the test's thread
//! (children inherit it), with loopback targets only.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
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
