//! Live mode against a real live-stream server on 127.0.0.1 (a small UDP loop around
//! `LiveServer`, as the daemon runs it): hosts appear as lanes, frames fill them, an
//! outage is counted, the status line tracks the connection. Bounded: at most 40 frames
//! per host and 15 s per test.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use zzping_gui::config::LiveTarget;
use zzping_gui::live::{DaemonKey, spawn};
use zzping_gui::{App, Config, Message, Mode};
use zzping_lib::file::wall_clock_us;
use zzping_lib::frame::Frame;
use zzping_lib::live::{HostMeta, LiveConfig, LiveServer, NoHistory, RECV_BUFFER};

const FRAMES: u64 = 40;

fn target(addr: SocketAddr) -> LiveTarget {
    LiveTarget {
        addr: addr.to_string(),
        secret: None,
    }
}

fn meta(label: &str) -> HostMeta {
    HostMeta {
        label: label.into(),
        address: "192.0.2.50".parse().unwrap(),
        name: None,
        period_us: 100_000,
        precision: 0.01,
    }
}

/// Serves two hosts, 40 frames each at 100 ms; host 2's frames 10-12 are all lost.
fn server(stop: Arc<AtomicBool>) -> SocketAddr {
    server_with(stop, None)
}

/// [`server`], requiring `secret` of its clients when given.
fn server_with(stop: Arc<AtomicBool>, secret: Option<[u8; 32]>) -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_nonblocking(true).unwrap();
    let addr = sock.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut s = LiveServer::new(LiveConfig {
            secret,
            ..LiveConfig::default()
        })
        .unwrap();
        s.add_host(1, meta("alpha")).unwrap();
        s.add_host(2, meta("beta")).unwrap();
        let base = wall_clock_us() / 100_000 * 100_000;
        let (mut rx, mut tx) = (vec![0u8; RECV_BUFFER], vec![0u8; RECV_BUFFER]);
        let t0 = Instant::now();
        let mut k = 0u64;
        while !stop.load(Ordering::Relaxed) && t0.elapsed() < Duration::from_secs(15) {
            while let Ok((n, src)) = sock.recv_from(&mut rx) {
                s.on_datagram(src, &rx[..n], wall_clock_us());
            }
            if k < FRAMES && t0.elapsed() >= Duration::from_millis(100 * (k + 1)) {
                for h in 1..=2u32 {
                    let mut f = Frame::new(base + k * 100_000, 100_000);
                    if h == 2 && (10..13).contains(&k) {
                        f.sent = 10;
                        f.lost = 10;
                    } else {
                        f.rtts_us = (0..10).map(|i| 5_000 * h + i * 100).collect();
                        f.sent = 10;
                    }
                    s.on_frame(h, &f, wall_clock_us());
                }
                k += 1;
            }
            s.pump_history(wall_clock_us(), &mut NoHistory);
            while let Some((dst, n)) = s.poll_transmit(wall_clock_us(), &mut tx) {
                if sock.send_to(&tx[..n], dst).is_err() {
                    s.on_send_would_block(dst, wall_clock_us());
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    addr
}

/// Feeds the daemon thread's updates into the app until `done` or `limit`.
fn pump(app: &mut App, key: &DaemonKey, limit: Duration, done: impl Fn(&App) -> bool) {
    let mut rx = spawn(key);
    let t0 = Instant::now();
    while t0.elapsed() < limit && !done(app) {
        match rx.try_recv() {
            Ok(u) => {
                let _ = app.update(Message::Live(u));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

#[test]
fn live_frames_fill_lanes_and_outages_are_counted() {
    let stop = Arc::new(AtomicBool::new(false));
    let addr = server(stop.clone());
    let (mut app, _task) = App::boot(Config {
        live: vec![target(addr)],
        ..Config::default()
    });
    assert_eq!(app.mode, Mode::Live);
    assert!(
        app.status_line()
            .contains(&format!("waiting for daemon at {addr}"))
    );
    let key = DaemonKey {
        index: 0,
        target: target(addr),
        prefill_s: 60,
    };
    let frames = |app: &App| {
        app.live
            .iter()
            .map(|s| s.lane.totals.frames)
            .min()
            .unwrap_or(0)
    };
    pump(&mut app, &key, Duration::from_secs(12), |a| {
        a.live.len() == 2 && frames(a) >= FRAMES
    });
    stop.store(true, Ordering::Relaxed);
    assert_eq!(app.live.len(), 2, "lanes: {:?}", app.live.len());
    assert!(frames(&app) >= FRAMES, "frames {}", frames(&app));
    assert!(
        app.status_line().contains(&format!("live from {addr}")),
        "{}",
        app.status_line()
    );
    assert!(app.follow);
    let alpha = app
        .live
        .iter()
        .find(|s| s.lane.host.label == "alpha")
        .unwrap();
    let beta = app
        .live
        .iter()
        .find(|s| s.lane.host.label == "beta")
        .unwrap();
    assert_eq!(alpha.lane.totals.lost, 0);
    assert_eq!(beta.lane.totals.lost, 30);
    assert_eq!(beta.lane.totals.outages, 1);
    let med = beta.lane.totals.median_us.unwrap();
    assert!((10_300..=10_500).contains(&med), "median {med}");
    assert_eq!(App::legend_lines(&alpha.lane)[0], "alpha (192.0.2.50)");
    // The view follows the newest data, and fits what there is: 4 s of frames give the
    // shortest live span, drawn from the raw frames (not from 10 s summaries).
    let v = app.view_range();
    assert!((v.t1_us - wall_clock_us() as f64).abs() < 2e6);
    assert_eq!(v.span_us(), zzping_gui::app::MIN_FIT_SPAN_US);
    assert_eq!(alpha.lane.level_us, 0, "{}", app.status_line());
    assert!(app.status_line().contains("from raw frames"));
}

#[test]
fn a_daemon_that_requires_a_secret_is_watched_with_it() {
    let secret = [7u8; 32];
    let stop = Arc::new(AtomicBool::new(false));
    let addr = server_with(stop.clone(), Some(secret));
    // Without the secret: never subscribed (the server ignores unauthenticated
    // messages), so no lane within the client's retries.
    let (mut app, _task) = App::boot(Config {
        live: vec![target(addr)],
        ..Config::default()
    });
    let key = DaemonKey {
        index: 0,
        target: target(addr),
        prefill_s: 0,
    };
    pump(&mut app, &key, Duration::from_millis(1500), |a| {
        !a.live.is_empty()
    });
    assert!(app.live.is_empty());
    assert!(app.status_line().contains("waiting for daemon"));
    // With it: the hosts and their frames.
    let with = LiveTarget {
        addr: addr.to_string(),
        secret: Some(secret),
    };
    let (mut app, _task) = App::boot(Config {
        live: vec![with.clone()],
        ..Config::default()
    });
    let key = DaemonKey {
        index: 0,
        target: with,
        prefill_s: 0,
    };
    pump(&mut app, &key, Duration::from_secs(10), |a| {
        a.live.len() == 2 && a.live.iter().all(|s| s.lane.totals.frames > 0)
    });
    stop.store(true, Ordering::Relaxed);
    assert_eq!(app.live.len(), 2);
}

#[test]
fn a_silent_daemon_shows_waiting() {
    // A port nobody listens on.
    let addr = {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    let (mut app, _task) = App::boot(Config {
        live: vec![target(addr)],
        ..Config::default()
    });
    let key = DaemonKey {
        index: 0,
        target: target(addr),
        prefill_s: 0,
    };
    pump(&mut app, &key, Duration::from_millis(1500), |_| false);
    assert!(app.live.is_empty());
    assert!(
        app.status_line()
            .contains(&format!("waiting for daemon at {addr}")),
        "{}",
        app.status_line()
    );
    let mut ui = iced_test::simulator(app.view());
    ui.find("Waiting for hosts…").expect("placeholder");
}
