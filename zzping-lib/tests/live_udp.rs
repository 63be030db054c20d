//! The live stream over real UDP sockets on 127.0.0.1: a server driven by a small
//! non-blocking loop in a thread (what the daemon does with mio) and blocking
//! `UdpLiveClient`s. Bounded: at most 200 frames per host and 20 s per test.
#![allow(missing_docs)]

mod live_common;

use live_common::*;
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use zzping_lib::codec::QFrame;
use zzping_lib::file::wall_clock_us;
use zzping_lib::live::*;

const HOSTS: u32 = 4;
const MAX_FRAMES: u64 = 200;

struct Harness {
    addr: SocketAddr,
    base: u64,
    stop: Arc<AtomicBool>,
    handle: JoinHandle<LiveStats>,
}

impl Harness {
    fn start(drop_every: u64) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_nonblocking(true).unwrap();
        let addr = sock.local_addr().unwrap();
        let base = wall_clock_us() / 100_000 * 100_000;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = std::thread::spawn(move || {
            let cfg = LiveConfig::default();
            check_listen_addr(addr, &cfg).unwrap();
            let mut s = LiveServer::new(cfg).unwrap();
            for h in 1..=HOSTS {
                s.add_host(h, meta(&format!("h{h}"))).unwrap();
            }
            let (mut rx, mut tx) = (vec![0u8; RECV_BUFFER], vec![0u8; RECV_BUFFER]);
            let t0 = Instant::now();
            let mut k = 0u64;
            let mut n_out = 0u64;
            while !stop2.load(Ordering::Relaxed) && t0.elapsed() < Duration::from_secs(25) {
                while let Ok((n, src)) = sock.recv_from(&mut rx) {
                    s.on_datagram(src, &rx[..n], wall_clock_us());
                }
                if k < MAX_FRAMES && t0.elapsed() >= Duration::from_millis(100 * (k + 1)) {
                    for h in 1..=HOSTS {
                        s.on_frame(
                            h,
                            &frame(h, base + k * 100_000, 5 + h as usize),
                            wall_clock_us(),
                        );
                    }
                    k += 1;
                }
                s.pump_history(wall_clock_us(), &mut NoHistory);
                while let Some((dst, n)) = s.poll_transmit(wall_clock_us(), &mut tx) {
                    n_out += 1;
                    if drop_every > 0 && n_out % drop_every == 0 {
                        continue;
                    }
                    if sock.send_to(&tx[..n], dst).is_err() {
                        s.on_send_would_block(dst, wall_clock_us());
                        break;
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            s.stats()
        });
        Self {
            addr,
            base,
            stop,
            handle,
        }
    }

    fn finish(self) -> (LiveStats, u64) {
        self.stop.store(true, Ordering::Relaxed);
        (self.handle.join().unwrap(), self.base)
    }
}

fn expected(base: u64, h: u32, n: u64) -> Vec<QFrame> {
    (0..n)
        .map(|k| quantize(&frame(h, base + k * 100_000, 5 + h as usize)))
        .collect()
}

struct V {
    c: UdpLiveClient,
    hosts: Vec<u32>,
    frames: HashMap<u32, Vec<QFrame>>,
    events: Vec<LiveEvent>,
}

fn viewer(server: SocketAddr, filter: Option<Vec<String>>, prefill_s: u32) -> V {
    let hosts = match &filter {
        None => (1..=HOSTS).collect(),
        Some(f) => f.iter().map(|l| l[1..].parse().unwrap()).collect(),
    };
    let cfg = ClientConfig {
        server,
        secret: None,
        filter,
        prefill_s,
    };
    V {
        c: UdpLiveClient::connect(cfg).unwrap(),
        hosts,
        frames: HashMap::new(),
        events: Vec::new(),
    }
}

/// Runs every viewer until each has `n` frames of each of its hosts (or 20 s pass).
fn run(vs: &mut [V], n: usize) {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(20) {
        let mut done = true;
        for v in vs.iter_mut() {
            while let Some(e) = v.c.next_event(Duration::from_millis(1)).unwrap() {
                if let LiveEvent::Frame { host, frame } = &e {
                    v.frames.entry(*host).or_default().push(frame.clone());
                } else {
                    v.events.push(e);
                }
            }
            done &= v
                .hosts
                .iter()
                .all(|h| v.frames.get(h).is_some_and(|f| f.len() >= n));
        }
        if done {
            return;
        }
    }
}

#[test]
fn sixteen_udp_viewers_with_filters_and_a_late_one_with_prefill() {
    let hx = Harness::start(0);
    let mut vs: Vec<V> = (0..16)
        .map(|i| {
            let f = (i % 2 == 1).then(|| vec![format!("h{}", (i / 2) % 4 + 1)]);
            // A minute of prefill: viewers that subscribe after the first frame (a slow
            // machine) still see every frame from it.
            viewer(hx.addr, f, 60)
        })
        .collect();
    run(&mut vs, 20);
    // A late viewer: everything since the start comes as prefill.
    let mut late = vec![viewer(hx.addr, Some(vec!["h3".into()]), 3600)];
    run(&mut late, 30);
    let (stats, base) = hx.finish();
    for (i, v) in vs.iter().chain(&late).enumerate() {
        assert!(v.events.contains(&LiveEvent::Subscribed), "viewer {i}");
        let mut seen: Vec<u32> = v.frames.keys().copied().collect();
        seen.sort_unstable();
        assert_eq!(seen, v.hosts, "viewer {i}");
        for h in &v.hosts {
            let got = &v.frames[h];
            // Every frame from the first one, in order (the late viewer's as prefill).
            let want = expected(base, *h, got.len() as u64);
            assert_eq!(got, &want, "viewer {i} host {h}");
            assert!(got.len() >= 20);
        }
        assert!(!v.events.iter().any(|e| matches!(e, LiveEvent::Gap { .. })));
    }
    assert!(late[0].frames[&3].len() >= 30);
    assert_eq!(stats.malformed, 0);
    assert!(stats.subscribed >= 17, "{stats:?}");
}

#[test]
fn udp_drops_every_7th_datagram_and_recovers() {
    let hx = Harness::start(7);
    let mut vs = vec![
        viewer(hx.addr, None, 60),
        viewer(hx.addr, Some(vec!["h2".into()]), 60),
    ];
    run(&mut vs, 40);
    let (stats, base) = hx.finish();
    for (i, v) in vs.iter().enumerate() {
        for h in &v.hosts {
            let got = &v.frames[h];
            assert!(got.len() >= 40, "viewer {i} host {h}: {}", got.len());
            assert_eq!(
                got,
                &expected(base, *h, got.len() as u64),
                "viewer {i} host {h}"
            );
        }
        assert!(!v.events.iter().any(|e| matches!(e, LiveEvent::Gap { .. })));
    }
    // Every 7th datagram overall is dropped, so at least one viewer had to ask.
    assert!(
        vs.iter()
            .map(|v| v.c.client().stats().resend_requests)
            .sum::<u64>()
            > 0
    );
    assert!(stats.resent > 0, "{stats:?}");
}
