//! Proves the daemon allocates nothing per ping in steady state: a counting global
//! allocator wraps the system one, and the real event loop (`daemon::run`, with its
//! receive thread, raw sockets, frame files and periodic flushes) runs in-process inside
//! a network namespace created for this thread. Allocations are counted over a window
//! after warm-up, across all threads.

mod common;

use std::time::Duration;

use clap::Parser;
use zzping_daemon::{config, daemon};
use zzping_testkit::alloc::{allocations, set_trace};

zzping_testkit::counting_allocator!();

#[test]
fn steady_state_allocates_nothing_per_ping() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    // New network namespace for this thread only (the daemon runs on it; its receive
    // thread inherits it). Children spawned from this thread inherit it too.
    zzping_testkit::netns::enter();

    let dir = tempfile::tempdir().unwrap();
    let cli = config::Cli::try_parse_from([
        "zzping-daemon",
        "--config",
        "none",
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
        "4",
    ])
    .unwrap();
    let cfg = config::load(&cli).unwrap();
    // Sample the counter at 1.5 s and 3.5 s. (Timing, not synchronization: the window
    // only has to fall inside the run, which lasts 4 s.)
    let sampler = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(1500));
        // ZZPING_ALLOC_TRACE=1 prints a backtrace for each allocation in the window.
        let trace = std::env::var_os("ZZPING_ALLOC_TRACE").is_some();
        let a = allocations();
        set_trace(trace);
        let t0 = zzping_daemon::clock::mono_ns();
        std::thread::sleep(Duration::from_millis(2000));
        let b = allocations();
        set_trace(false);
        let t1 = zzping_daemon::clock::mono_ns();
        (b - a, t1 - t0)
    });
    let report = daemon::run(cli, cfg).unwrap();
    let (allocs, window_ns) = sampler.join().unwrap();
    // 2 hosts x 1000/s x 4 s.
    assert!(report.sent >= 7_900, "only {} sent", report.sent);
    assert_eq!(report.received, report.sent);
    let pings_in_window = 2000.0 * window_ns as f64 / 1e9;
    assert_eq!(
        allocs, 0,
        "{allocs} allocations during a {:.0}-ping steady-state window",
        pings_in_window
    );
}
