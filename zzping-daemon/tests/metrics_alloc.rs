//! With the Prometheus exporter on and scraped 20 times a second, the daemon still
//! allocates nothing in steady state: neither per ping (frames are counted into
//! pre-sized per-host counters) nor per scrape (accept, parse, render into a reused
//! buffer, copy into the connection's reused buffer, close). Like `alloc.rs`, the real
//! event loop runs in-process in a network namespace created for this thread, under a
//! counting allocator; the scraping and sampling threads are excluded from the count
//! (a thread-local flag), the daemon's two threads are counted.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use zzping_daemon::{config, daemon};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
thread_local! { static EXCLUDED: Cell<bool> = const { Cell::new(false) }; }

fn count() {
    // `try_with`: thread-local storage may be gone while a thread exits.
    if !EXCLUDED.try_with(Cell::get).unwrap_or(false) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: delegates to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
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
fn scrapes_and_pings_allocate_nothing() {
    if !common::netns_available("scrapes_and_pings_allocate_nothing") {
        return;
    }
    // SAFETY: plain unshare(2) on the calling thread; threads it spawns inherit it.
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
        "--live",
        "off",
        "--metrics",
        "127.0.0.1:9464",
        "--duration",
        "4",
    ])
    .unwrap();
    let cfg = config::load(&cli).unwrap();
    // Scrapes every 50 ms from 0.3 s (warm-up sizes the buffers) to 3.7 s; the window
    // is 1.5 s .. 3.5 s. (Timing, not synchronization: both only have to fall inside
    // the 4 s run.)
    let scraper = std::thread::spawn(|| {
        EXCLUDED.with(|c| c.set(true));
        std::thread::sleep(Duration::from_millis(300));
        let t0 = Instant::now();
        let mut buf = vec![0u8; 1 << 20];
        let (mut ok, mut failed) = (0u32, Vec::new());
        while t0.elapsed() < Duration::from_millis(3400) {
            let r = (|| -> std::io::Result<bool> {
                let mut s = TcpStream::connect("127.0.0.1:9464")?;
                s.set_read_timeout(Some(Duration::from_secs(2)))?;
                s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")?;
                let mut n = 0;
                loop {
                    match s.read(&mut buf[n..])? {
                        0 => break,
                        k => n += k,
                    }
                }
                Ok(buf[..n].starts_with(b"HTTP/1.1 200 OK\r\n")
                    && buf[..n].windows(9).any(|w| w == b"zzping_rt"))
            })();
            match r {
                Ok(true) => ok += 1,
                other => failed.push(format!("{other:?}")),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        (ok, failed)
    });
    let sampler = std::thread::spawn(|| {
        EXCLUDED.with(|c| c.set(true));
        std::thread::sleep(Duration::from_millis(1500));
        let a = ALLOCS.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(2000));
        ALLOCS.load(Ordering::Relaxed) - a
    });
    let report = daemon::run(cli, cfg).unwrap();
    let allocs = sampler.join().unwrap();
    let (ok, failed) = scraper.join().unwrap();
    // The counter works: start-up allocated on the counted threads.
    assert!(ALLOCS.load(Ordering::Relaxed) > 100);
    assert!(report.sent >= 7_900, "only {} sent", report.sent);
    assert!(
        ok >= 30 && failed.is_empty(),
        "{ok} scrapes ok, failed: {failed:?}"
    );
    assert_eq!(
        allocs, 0,
        "{allocs} allocations in a 2 s window of 2 x 1000 pings/s and ~40 scrapes"
    );
}
