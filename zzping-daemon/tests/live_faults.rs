//! The live stream under the faults of issue 16, against the real daemon binary in a
//! network namespace this test's thread creates (loopback only): a backward wall-clock
//! step, a subscribe flood from one client, and many viewers prefilling a day of history.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use zzping_lib::live::{ClientConfig, LiveClient, LiveEvent, UdpLiveClient};
use zzping_testkit::process::LogLines;

const LIVE: &str = "127.0.0.1:7878";

/// An `LD_PRELOAD` library that shifts `CLOCK_REALTIME` (and only it) by the signed
/// 64-bit ns offset stored in the file named by `ZZPING_TEST_CLOCK_OFFSET_FILE`, read
/// through a shared mapping on every call: the test steps the daemon's wall clock by
/// writing the file, without touching the machine's clock.
const CLOCK_SHIM_C: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static volatile int64_t *offset_ns;

static void init(void) {
    const char *p = getenv("ZZPING_TEST_CLOCK_OFFSET_FILE");
    int fd = p ? open(p, O_RDONLY) : -1;
    if (fd < 0) abort();
    void *m = mmap(0, 8, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) abort();
    offset_ns = m;
}

int clock_gettime(clockid_t id, struct timespec *ts) {
    static int (*real)(clockid_t, struct timespec *);
    if (!real) real = dlsym(RTLD_NEXT, "clock_gettime");
    int r = real(id, ts);
    if (r == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) {
        if (!offset_ns) init();
        int64_t ns = (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec + *offset_ns;
        ts->tv_sec = ns / 1000000000;
        ts->tv_nsec = ns % 1000000000;
    }
    return r;
}
"#;

/// Builds the clock shim in `dir` with the system C compiler; returns the library and the
/// offset file (offset 0).
fn clock_shim(dir: &Path) -> (PathBuf, PathBuf) {
    let cc = zzping_testkit::tool("cc", "gcc");
    let src = dir.join("clock_shim.c");
    let lib = dir.join("clock_shim.so");
    std::fs::write(&src, CLOCK_SHIM_C).unwrap();
    let out = Command::new(cc)
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&lib)
        .arg(&src)
        .arg("-ldl")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let offset = dir.join("clock_offset");
    std::fs::write(&offset, 0i64.to_ne_bytes()).unwrap();
    (lib, offset)
}

/// Rewrites the offset in place (the shim's mapping sees it at once).
fn set_offset(file: &Path, ns: i64) {
    let mut f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    f.write_all(&ns.to_ne_bytes()).unwrap();
}

/// Starts the daemon (in this thread's namespace) and waits until it pings every target.
fn daemon(
    data: &Path,
    targets: &[&str],
    extra: &[&str],
    env: &[(&str, &Path)],
) -> (Child, LogLines) {
    let mut c = Command::new(common::BIN);
    c.args(["--config", "none", "--data-dir", data.to_str().unwrap()]);
    for t in targets {
        c.args(["--target", t]);
    }
    c.args(["--rate", "100", "--live", LIVE]);
    c.args(extra);
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut log = LogLines::follow(child.stderr.take().unwrap());
    log.wait_for(
        &format!("{}: pinging", targets[targets.len() - 1]),
        Duration::from_secs(20),
    );
    (child, log)
}

/// SIGTERM, then the exit line.
fn stop(mut child: Child, mut log: LogLines) -> String {
    zzping_testkit::process::signal(&child, libc::SIGTERM);
    let status =
        zzping_testkit::process::wait_bounded(&mut child, Duration::from_secs(20), "daemon");
    log.wait_for("stopped:", Duration::from_secs(5));
    let text = log.drain().to_string();
    assert!(status.success(), "{text}");
    text
}

#[test]
fn a_backward_wall_clock_step_keeps_the_live_stream_flowing() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    zzping_testkit::netns::enter();
    let dir = tempfile::tempdir().unwrap();
    let (shim, offset) = clock_shim(dir.path());
    let (child, log) = daemon(
        &dir.path().join("data"),
        &["127.0.0.1"],
        &["--duration", "40"],
        &[
            ("LD_PRELOAD", &shim),
            ("ZZPING_TEST_CLOCK_OFFSET_FILE", &offset),
        ],
    );
    let mut viewer = UdpLiveClient::connect(ClientConfig::new(LIVE.parse().unwrap())).unwrap();
    // Frame starts as the viewer receives them, with the time they arrived.
    let mut frames: Vec<(Instant, u64)> = Vec::new();
    let collect = |viewer: &mut UdpLiveClient, secs: u64, frames: &mut Vec<(Instant, u64)>| {
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            if let Some(LiveEvent::Frame { frame, .. }) =
                viewer.next_event(Duration::from_millis(100)).unwrap()
            {
                frames.push((Instant::now(), frame.start_us));
            }
        }
    };
    collect(&mut viewer, 3, &mut frames);
    assert!(
        frames.len() >= 10,
        "no frames before the step: {}",
        frames.len()
    );
    let before = frames.len();
    let last_before = frames[before - 1].1;
    // The daemon's wall clock steps back a minute (NTP stepping a clock that ran ahead).
    let stepped = Instant::now();
    set_offset(&offset, -60_000_000_000);
    collect(&mut viewer, 6, &mut frames);
    let after: Vec<u64> = frames[before..]
        .iter()
        .filter(|(t, _)| *t > stepped + Duration::from_secs(1))
        .map(|&(_, s)| s)
        .collect();
    // 10 frames a second for 5 s: the stream went on, with frames from a minute earlier.
    assert!(after.len() >= 30, "{} frames after the step", after.len());
    assert!(
        after.iter().all(|&s| s + 50_000_000 < last_before),
        "frames after the step start a minute earlier"
    );
    assert!(after.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(viewer.client().stats().reconnects, 0);
    let text = stop(child, log);
    assert!(text.contains("stopped:"), "{text}");
}

/// The offset of the nonce in an encoded SUBSCRIBE (see `docs/live-protocol.md` §4.1).
fn nonce_offset(d: &[u8]) -> usize {
    let uint = |m: u8| match m {
        0..=0x7f => 1,
        0xcc => 2,
        0xcd => 3,
        0xce => 5,
        0xcf => 9,
        _ => panic!("not a uint: {m:#x}"),
    };
    let mut at = match d[0] {
        0x90..=0x9f => 1,
        0xdc => 3,
        m => panic!("not an array: {m:#x}"),
    };
    for _ in 0..4 {
        at += uint(d[at]);
    }
    assert_eq!(&d[at..at + 2], &[0xc4, 16]);
    at + 2
}

#[test]
fn a_subscribe_flood_from_one_client_locks_nobody_out() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    zzping_testkit::netns::enter();
    let dir = tempfile::tempdir().unwrap();
    let (child, log) = daemon(
        &dir.path().join("data"),
        &["127.0.0.1"],
        &["--duration", "40"],
        &[],
    );
    let server: SocketAddr = LIVE.parse().unwrap();
    // One client gets one cookie, then sends 4,200 subscribes with fresh nonces.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let now = zzping_lib::file::wall_clock_us;
    let mut c = LiveClient::new(ClientConfig::new(server), now()).unwrap();
    let mut d = Vec::new();
    assert!(c.poll_transmit(now(), &mut d));
    sock.send_to(&d, server).unwrap();
    let mut buf = vec![0u8; 65_536];
    let (n, _) = sock.recv_from(&mut buf).expect("a cookie");
    c.handle_datagram(server, &buf[..n], now());
    let mut with_cookie = Vec::new();
    assert!(c.poll_transmit(now(), &mut with_cookie));
    let at = nonce_offset(&with_cookie);
    let t = Instant::now();
    for k in 0..4_200u32 {
        with_cookie[at..at + 4].copy_from_slice(&k.to_be_bytes());
        // A full socket buffer only loses some of the flood.
        let _ = sock.send_to(&with_cookie, server);
    }
    let flood = t.elapsed();
    // Three viewers after it: each subscribes and gets frames.
    for v in 0..3 {
        let mut viewer = UdpLiveClient::connect(ClientConfig::new(server)).unwrap();
        let end = Instant::now() + Duration::from_secs(8);
        let mut got = 0;
        while Instant::now() < end && got < 5 {
            if let Some(LiveEvent::Frame { .. }) =
                viewer.next_event(Duration::from_millis(100)).unwrap()
            {
                got += 1;
            }
        }
        assert_eq!(
            got, 5,
            "viewer {v} after a flood of 4,200 subscribes in {flood:?}"
        );
    }
    stop(child, log);
}

/// Writes `hours` of frames (100 ms, 10 pings each) ending now for `label`.
fn history(data: &Path, label: &str, hours: u64) -> u64 {
    use zzping_lib::file::{HostInfo, HostWriter, WriterConfig};
    use zzping_lib::synth::{Synth, SynthProfile};
    let now = zzping_lib::file::wall_clock_us();
    let start = (now - hours * 3_600_000_000) / 100_000 * 100_000;
    let mut w = HostWriter::open(
        data,
        HostInfo {
            label: label.into(),
            address: label.parse().unwrap(),
            name: None,
            role: None,
        },
        WriterConfig {
            period_us: 100_000,
            precision: 0.01,
            writer: "test history".into(),
        },
    )
    .unwrap();
    let mut s = Synth::new(SynthProfile::wired(), 7, start);
    let mut f = zzping_lib::frame::Frame::new(start, 100_000);
    let mut n = 0;
    loop {
        s.next_frame(&mut f);
        if f.start_us + 100_000 > now - 60_000_000 {
            break;
        }
        w.append(&f).unwrap();
        n += 1;
    }
    w.sync().unwrap();
    n
}

#[test]
fn sixteen_viewers_prefilling_a_day_get_it_while_pinging_goes_on() {
    zzping_testkit::require!(zzping_testkit::privileges::netns());
    zzping_testkit::netns::enter();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let on_disk = history(&data, "127.0.0.1", 24);
    const SECS: u64 = 20;
    let (child, log) = daemon(
        &data,
        &["127.0.0.1"],
        &["--duration", &SECS.to_string()],
        &[],
    );
    let pinging = Instant::now();
    let started = zzping_lib::file::wall_clock_us();
    let server: SocketAddr = LIVE.parse().unwrap();
    let viewers: Vec<_> = (0..16)
        .map(|_| {
            std::thread::spawn(move || {
                let mut cfg = ClientConfig::new(server);
                cfg.prefill_s = 24 * 3600;
                let mut v = UdpLiveClient::connect(cfg).unwrap();
                let (mut old, mut live) = (0u64, 0u64);
                let end = Instant::now() + Duration::from_secs(SECS - 4);
                while Instant::now() < end {
                    if let Ok(Some(LiveEvent::Frame { frame, .. })) =
                        v.next_event(Duration::from_millis(100))
                    {
                        if frame.start_us < started - 3_600_000_000 {
                            old += 1;
                        } else if frame.start_us >= started {
                            live += 1;
                        }
                    }
                }
                (old, live)
            })
        })
        .collect();
    let got: Vec<(u64, u64)> = viewers.into_iter().map(|h| h.join().unwrap()).collect();
    let ran = pinging.elapsed().as_secs();
    let text = stop(child, log);
    for (i, (old, _)) in got.iter().enumerate() {
        // Frames older than the in-memory ring came from disk, to every viewer.
        assert!(
            *old >= 10_000,
            "viewer {i}: {old} of {on_disk} frames from disk"
        );
    }
    // Pinging went on: every send due was made (the loop skips a send only when it falls
    // a second behind, and counts it) and answered: 100/s since the first one.
    let line = text.lines().find(|l| l.contains("stopped:")).unwrap();
    let sent = count_before(line, " sent,");
    assert!(sent >= 100 * ran, "{sent} sent in {ran} s: {line}");
    assert!(line.contains("sends skipped 0,"), "{line}");
    assert_eq!(count_before(line, " received,"), sent, "{line}");
}

/// The number just before `label` in the exit line (`stopped: 2000 sent, ...`).
fn count_before(line: &str, label: &str) -> u64 {
    let i = line
        .find(label)
        .unwrap_or_else(|| panic!("no {label:?} in {line}"));
    let digits = line[..i]
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap();
    digits
        .parse()
        .unwrap_or_else(|e| panic!("{label:?}: {e}: {line}"))
}
