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
use std::time::{Duration, Instant};

use clap::Parser;
use zzping_daemon::{config, daemon};
use zzping_testkit::alloc::{allocations, exclude_this_thread};

zzping_testkit::counting_allocator!();

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
        "4",
    ])
    .unwrap();
    let cfg = config::load(&cli).unwrap();
    // Scrapes every 50 ms from 0.3 s (warm-up sizes the buffers) to 3.7 s; the window
    // is 1.5 s .. 3.5 s. (Timing, not synchronization: both only have to fall inside
    // the 4 s run.)
    let scraper = std::thread::spawn(|| {
        exclude_this_thread();
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
        exclude_this_thread();
        std::thread::sleep(Duration::from_millis(1500));
        let a = allocations();
        std::thread::sleep(Duration::from_millis(2000));
        allocations() - a
    });
    let report = daemon::run(cli, cfg).unwrap();
    let allocs = sampler.join().unwrap();
    let (ok, failed) = scraper.join().unwrap();
    // The counter works: start-up allocated on the counted threads.
    assert!(allocations() > 100);
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
