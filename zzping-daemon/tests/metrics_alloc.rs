//! With the Prometheus exporter on and scraped 20 times a second, the daemon still
//! allocates nothing in steady state: neither per ping (frames are counted into
//! pre-sized per-host counters) nor per scrape (accept, parse, render into a reused
//! buffer, copy into the connection's reused buffer, close). Like `alloc.rs`, the real
//! event loop runs in-process in a network namespace created for this thread, under a
//! counting allocator; the scraping and sampling threads are excluded from the count
//! (a thread-local flag), the daemon's two threads are counted.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use common::wait_flushes;
use zzping_daemon::config;
use zzping_testkit::alloc::{allocations, exclude_this_thread};

zzping_testkit::counting_allocator!();

/// How long to wait for the daemon's flushes: a bound on the test only.
const FLUSH_LIMIT: Duration = Duration::from_secs(60);
/// Scrapes the window must hold at least.
const SCRAPES_IN_WINDOW: u32 = 20;

#[test]
fn scrapes_and_pings_allocate_nothing() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
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
        "--live",
        "off",
        "--metrics",
        "127.0.0.1:9464",
        "--duration",
        "600",
    ])
    .unwrap();
    let cfg = config::load(&cli).unwrap();
    // The window is set by the daemon's own flushes (every 0.5 s), not by a clock (see
    // alloc.rs); the scraper scrapes every 50 ms from the start until the window closed.
    exclude_this_thread();
    let data = dir.path().to_path_buf();
    let (daemon, thread) = common::spawn_daemon_thread(cli, cfg);
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU32::new(0));
    let (scraping, counting) = (stop.clone(), served.clone());
    let scraper = std::thread::spawn(move || {
        exclude_this_thread();
        let mut buf = vec![0u8; 1 << 20];
        let (mut ok, mut failed) = (0u32, Vec::new());
        while !scraping.load(Ordering::Relaxed) {
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
                Ok(true) => {
                    ok += 1;
                    counting.fetch_add(1, Ordering::Relaxed);
                }
                // Refused before the exporter listens: not a scrape yet.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused && ok == 0 => {}
                other => failed.push(format!("{other:?}")),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        (ok, failed)
    });
    wait_flushes(&data, 3, FLUSH_LIMIT);
    let (a, t0, served0) = (
        allocations(),
        Instant::now(),
        served.load(Ordering::Relaxed),
    );
    // Four more flushes, and at least 20 scrapes served inside the window.
    wait_flushes(&data, 4, FLUSH_LIMIT);
    while served.load(Ordering::Relaxed) < served0 + SCRAPES_IN_WINDOW {
        assert!(t0.elapsed() < FLUSH_LIMIT, "scrapes stalled");
        std::thread::sleep(Duration::from_millis(5));
    }
    let allocs = allocations() - a;
    let (window, scrapes) = (t0.elapsed(), served.load(Ordering::Relaxed) - served0);
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = scraper.join().unwrap();
    common::stop_daemon_thread(thread);
    let report = daemon.join().unwrap();
    // The counter works: start-up allocated on the counted threads.
    assert!(a > 100, "only {a} allocations counted at start-up");
    assert!(report.sent > 0);
    assert_eq!(report.received, report.sent);
    assert!(
        ok > 0 && failed.is_empty(),
        "{ok} scrapes ok, failed: {failed:?}"
    );
    assert_eq!(
        allocs, 0,
        "{allocs} allocations in a {window:?} window of 2 x 1000 pings/s and {scrapes} scrapes"
    );
}
