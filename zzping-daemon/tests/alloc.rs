//! Proves the daemon allocates nothing per ping in steady state: a counting global
//! allocator wraps the system one, and the real event loop (`daemon::run`, with its
//! receive thread, raw sockets, frame files and periodic flushes) runs in-process inside
//! a network namespace created for this thread. Allocations are counted over a window
//! after warm-up, across all threads; once without and once with `[[alert]]` rules of
//! every kind (the rules see every final frame).

mod common;

use std::time::Duration;

use common::wait_flushes;

use clap::Parser;
use zzping_daemon::config;
use zzping_testkit::alloc::{allocations, exclude_this_thread, set_trace};

zzping_testkit::counting_allocator!();

/// How long to wait for the daemon's flushes: a bound on the test only.
const FLUSH_LIMIT: Duration = Duration::from_secs(60);

/// Alert rules of every kind, each with a command: they watch every frame (loopback
/// never fails, so none fires: events may allocate, frames may not).
const ALERTS: &str = r#"
[[alert]]
name = "down"
when = "outage"
for_s = 1
command = ["/bin/true"]
[[alert]]
name = "all-down"
when = "outage"
host = "all"
for_s = 1
[[alert]]
name = "lossy"
when = "loss"
above_pct = 5
window_s = 10
command = ["/bin/true"]
[[alert]]
name = "slow"
when = "p95"
host = "127.0.0.1"
above_ms = 100
window_s = 60
"#;

#[test]
fn steady_state_allocates_nothing_per_ping() {
    steady_state(None);
}

#[test]
fn steady_state_allocates_nothing_per_ping_with_alert_rules() {
    steady_state(Some(ALERTS));
}

/// The daemon at 2 x 1000 pings/s, with `config` (a file's text) if any.
fn steady_state(config: Option<&str>) {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    // New network namespace for this thread only (the daemon runs on it; its receive
    // thread inherits it). Children spawned from this thread inherit it too.
    zzping_testkit::netns::enter();

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("zzping.toml");
    let config_arg = match config {
        Some(text) => {
            std::fs::write(&file, text).unwrap();
            file.to_str().unwrap()
        }
        None => "none",
    };
    let cli = config::Cli::try_parse_from([
        "zzping-daemon",
        "--config",
        config_arg,
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--target",
        "127.0.0.1",
        "--target",
        "::1",
        "--rate",
        "1000",
        "--timeout-ms",
        "200",
        "--flush-interval-s",
        "0.5",
        "--socket",
        "raw",
        "--duration",
        "600",
    ])
    .unwrap();
    let cfg = config::load(&cli).unwrap();
    assert_eq!(cfg.alert.len(), if config.is_some() { 4 } else { 0 });
    // The window is set by the daemon's own flushes (every 0.5 s), not by a clock: it
    // opens after the third flush (warm-up: the first flushes size the buffers) and
    // closes after four more; then the test stops the daemon. So it lies in the steady
    // state however long start-up or scheduling takes on this machine.
    exclude_this_thread();
    let data = dir.path().to_path_buf();
    let (daemon, thread) = common::spawn_daemon_thread(cli, cfg);
    wait_flushes(&data, 3, FLUSH_LIMIT);
    // ZZPING_ALLOC_TRACE=1 prints a backtrace for each allocation in the window.
    let trace = std::env::var_os("ZZPING_ALLOC_TRACE").is_some();
    let a = allocations();
    set_trace(trace);
    let t0 = zzping_daemon::clock::mono_ns();
    wait_flushes(&data, 4, FLUSH_LIMIT);
    let b = allocations();
    set_trace(false);
    let window_ns = zzping_daemon::clock::mono_ns() - t0;
    common::stop_daemon_thread(thread);
    let report = daemon.join().unwrap();
    let allocs = b - a;
    // The counter works: start-up allocated on the counted threads.
    assert!(a > 100, "only {a} allocations counted at start-up");
    assert!(report.sent > 0);
    assert_eq!(report.received, report.sent);
    let pings_in_window = 2000.0 * window_ns as f64 / 1e9;
    assert_eq!(
        allocs, 0,
        "{allocs} allocations during a {:.0}-ping steady-state window",
        pings_in_window
    );
}
