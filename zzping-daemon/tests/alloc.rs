//! Proves the daemon allocates nothing per ping in steady state: a counting global
//! allocator wraps the system one, and the real event loop (`daemon::run`, with its
//! receive thread, raw sockets, frame files and periodic flushes) runs in-process inside
//! a network namespace created for this thread. Allocations are counted over a window
//! after warm-up, across all threads.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Parser;
use zzping_daemon::{config, daemon};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

static TRACE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
thread_local! { static IN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) }; }

/// Debug aid: print where an allocation comes from (guarded against recursion).
fn trace() {
    if TRACE.load(Ordering::Relaxed) && !IN.with(|c| c.replace(true)) {
        TRACE.store(false, Ordering::Relaxed);
        eprintln!("ALLOC {}", std::backtrace::Backtrace::force_capture());
        TRACE.store(true, Ordering::Relaxed);
        IN.with(|c| c.set(false));
    }
}
// SAFETY: delegates to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        trace();
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        trace();
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn steady_state_allocates_nothing_per_ping() {
    if !common::netns_available("steady_state_allocates_nothing_per_ping") {
        return;
    }
    // New network namespace for this thread only (the daemon runs on it; its receive
    // thread inherits it). Children spawned from this thread inherit it too.
    // SAFETY: plain unshare(2) on the calling thread.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        panic!("unshare: {}", std::io::Error::last_os_error());
    }
    let up = std::process::Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .unwrap();
    assert!(up.success());

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
        let a = ALLOCS.load(Ordering::Relaxed);
        TRACE.store(trace, Ordering::Relaxed);
        let t0 = zzping_daemon::clock::mono_ns();
        std::thread::sleep(Duration::from_millis(2000));
        let b = ALLOCS.load(Ordering::Relaxed);
        TRACE.store(false, Ordering::Relaxed);
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
