//! Live mode against a real live-stream server on 127.0.0.1 (a small UDP loop around
//! `LiveServer`, as the daemon runs it): hosts appear as lanes, frames fill them, an
//! outage is counted, the status line tracks the connection, context events become marks. Bounded: at most 40 frames
//! per host and 15 s per test.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use zzping_gui::config::LiveTarget;
use zzping_gui::live::{DaemonKey, spawn};
use zzping_gui::{App, Config, Message, Mode};
use zzping_lib::events::{ContextEvent, EventKind, EventWriter};
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
    let base = wall_clock_us() / 100_000 * 100_000;
    server_full(stop, secret, base, Vec::new())
}

/// [`server_with`], its frames from `base` (µs), handing over each `(k, event)` of
/// `events` as its `k`-th frames close.
fn server_full(
    stop: Arc<AtomicBool>,
    secret: Option<[u8; 32]>,
    base: u64,
    events: Vec<(u64, ContextEvent)>,
) -> SocketAddr {
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
                for (_, e) in events.iter().filter(|(at, _)| *at == k) {
                    s.on_event(e, wall_clock_us());
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

fn near(p: [u8; 3], c: iced::Color, tol: i32) -> bool {
    let c = c.into_rgba8();
    (0..3).all(|i| (i32::from(p[i]) - i32::from(c[i])).abs() <= tol)
}

/// A daemon's context events are drawn as marks in the live window, by the same strip
/// and with the same hover texts as the files' events; an event the window also opened
/// from a data directory is one mark.
#[test]
fn streamed_events_are_marked_in_the_live_window_once() {
    let stop = Arc::new(AtomicBool::new(false));
    let base = wall_clock_us() / 100_000 * 100_000;
    let route = ContextEvent::route(
        base + 500_000,
        4,
        Some("198.18.1.254".parse().unwrap()),
        Some("zzsim1"),
        false,
    );
    let down = ContextEvent::link(base + 2_000_000, EventKind::LinkDown, "wlan0");
    let up = ContextEvent::link(base + 2_500_000, EventKind::LinkUp, "wlan0");
    let addr = server_full(
        stop.clone(),
        None,
        base,
        vec![(5, route.clone()), (20, down), (25, up)],
    );
    // The route change is also in a data directory the window opened.
    let dir = tempfile::tempdir().unwrap();
    let mut w = EventWriter::new(dir.path(), "test");
    w.append(&route, base);
    w.sync().unwrap();
    let (mut app, _task) = App::boot(Config {
        live: vec![target(addr)],
        ..Config::default()
    });
    app.open_blocking(&[dir.path().to_path_buf()]);
    assert_eq!(app.mode, Mode::Live);
    assert_eq!(app.marks.len(), 1, "the opened directory's event");
    let key = DaemonKey {
        index: 0,
        target: target(addr),
        prefill_s: 60,
    };
    let flap_done = |a: &App| a.marks.iter().any(|m| m.text == "wlan0 down 0.5 s");
    pump(&mut app, &key, Duration::from_secs(12), |a| {
        flap_done(a) && a.live.iter().all(|s| s.lane.totals.frames >= 30)
    });
    stop.store(true, Ordering::Relaxed);
    let texts: Vec<&str> = app.marks.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "default route via 198.18.1.254 on zzsim1",
            "wlan0 down 0.5 s"
        ]
    );
    assert_eq!((app.file_events.len(), app.live_events.len()), (1, 3));
    let link = &app.marks[1];
    assert_eq!(
        (link.t_us, link.end_us),
        (base + 2_000_000, base + 2_500_000)
    );

    // Drawn in the live window's strip under the lanes, at its time on their axis.
    let view = app.view_range();
    assert!(view.t0_us <= link.t_us as f64 && link.end_us as f64 <= view.t1_us);
    let win = common::render(app.view(), (1024.0, 700.0));
    let lane_at = app.live[0].drawn_at.get().expect("the lane was drawn");
    let bottom = app
        .live
        .iter()
        .filter_map(|s| s.drawn_at.get())
        .map(|b| b.y + b.height)
        .fold(0.0, f32::max);
    let x_of = |t_us: f64| lane_at.x + view.frac_of(t_us) as f32 * lane_at.width;
    let mid = (link.t_us + link.end_us) as f64 / 2.0;
    let x = x_of(link.t_us as f64);
    let link_rows = |x: f32| {
        let px = (x * 2.0).round() as usize;
        // From the lanes' bottom down: the strip, then the time axis.
        (2 * bottom as usize..win.h)
            .filter(|&y| near(win.px(px, y), zzping_gui::marks::LINK_MARK, 3))
            .count()
    };
    // A tick the strip's height where the link went down, a bar to where it came back.
    assert!(link_rows(x) > 10, "no link mark under the lanes at x {x}");
    assert!(link_rows(x_of(mid)) > 0, "no bar over the link's down time");
    // Nowhere a second away from it.
    let px_per_s = lane_at.width / (view.span_us() / 1e6) as f32;
    assert_eq!(
        link_rows(x + 1.25 * px_per_s),
        0,
        "the mark is off its time"
    );
    assert_eq!(
        link_rows(x - 1.25 * px_per_s),
        0,
        "the mark is off its time"
    );

    // Hovering at its time reads it out with the lanes' columns.
    app.hover = Some(view.frac_of(mid));
    let lines = app.hover_lines();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("wlan0 down 0.5 s")
                && l.contains(zzping_gui::window::EVENT_TIME_SEP)),
        "{lines:?}"
    );
}
