//! A live window scrolls back into the history on disk: a host's day file holds its first
//! 20 minutes, the live stream (as a daemon would send it, prefill included) minutes 15
//! to 25 of the same frames. The live lane shows both on one time axis, every frame
//! counted once, at every zoom.

mod common;

use common::{PERIOD, Slot, T0, render, write_host};
use iced::Length;
use iced::widget::canvas;
use std::path::{Path, PathBuf};
use zzping_gui::canvas::{GAP, LaneCanvas, lane_pixels};
use zzping_gui::live::LiveUpdate;
use zzping_gui::load::DiskLoader;
use zzping_gui::model::{HostLabel, Lane, LiveData, Source};
use zzping_gui::timeline::TimeView;
use zzping_gui::{App, Message, Mode};
use zzping_lib::codec::QFrame;
use zzping_lib::frame::Frame;
use zzping_lib::live::{HostMeta, LiveEvent};
use zzping_lib::quantizer::Quantizer;
use zzping_lib::summary::Summary;

/// Frames on disk: 0..DISK (20 min from T0).
const DISK: u64 = 12_000;
/// Frames the stream sends: LIVE_FROM..END. LIVE_FROM is 903.7 s after T0, not on a 10 s
/// boundary, so the cut (the next 10 s boundary, 910 s: frame 9,100) falls inside the
/// disk's 100 s summary of 900-1000 s.
const LIVE_FROM: u64 = 9_037;
const END: u64 = 15_000;
/// Frame index of the cut.
const CUT: u64 = 9_100;

/// Frame `i` of the host (the same on disk and in the stream): RTTs that vary with `i`,
/// a lost request every 7th frame, and three outages: on disk only (frames 2000-2002),
/// across the cut (9095-9104, in both sources) and in the stream only (13000-13001).
fn slot(i: u64) -> Slot {
    if (2_000..2_003).contains(&i) || (9_095..9_105).contains(&i) || (13_000..13_002).contains(&i) {
        return Slot::Outage;
    }
    let base = 5_000 + (i % 97) as u32 * 150 + (i / 1000) as u32 * 400;
    let n = 3 + (i % 5) as u32;
    let rtts = (0..n).map(|k| base + k * 700).collect();
    Slot::Custom(rtts, u32::from(i % 7 == 0))
}

/// The frame `i` as the daemon streams it.
fn qframe(i: u64, q: &Quantizer) -> QFrame {
    let mut f = Frame::new(T0 + i * PERIOD, PERIOD as u32);
    match slot(i) {
        Slot::Outage => {
            f.sent = 10;
            f.lost = 10;
        }
        Slot::Custom(rtts, lost) => {
            f.sent = rtts.len() as u32 + lost;
            f.rtts_us = rtts;
            f.lost = lost;
        }
        _ => unreachable!(),
    }
    let mut qf = QFrame::default();
    qf.set_from(&f, q);
    qf
}

/// The host directory `alpha` (address 192.0.2.9) with frames 0..DISK.
fn disk_host(dir: &Path) -> PathBuf {
    write_host(dir, "alpha", DISK, slot)
}

/// Every distinct frame of the host (0..END), merged: what the whole range must show.
fn truth(q: &Quantizer) -> Summary {
    let mut all = Summary::default();
    for i in 0..END {
        let mut s = Summary::new(T0 + i * PERIOD, PERIOD);
        s.add_frame(&qframe(i, q));
        all.merge(&s);
    }
    all
}

fn quantizer() -> Quantizer {
    Quantizer::new(0.01).unwrap()
}

fn meta(address: &str) -> HostMeta {
    HostMeta {
        label: "alpha".into(),
        address: address.parse().unwrap(),
        name: None,
        period_us: PERIOD as u32,
        precision: 0.01,
    }
}

fn whole_range() -> TimeView {
    TimeView::new(T0 as f64, (T0 + END * PERIOD) as f64)
}

/// Time (µs) of pixel column `i` of `n` over `view`.
fn column_time(view: &TimeView, n: usize, i: usize) -> f64 {
    view.t0_us + (i as f64 + 0.5) * view.span_us() / n as f64
}

#[test]
fn a_live_lane_with_history_counts_every_frame_once_at_every_zoom() {
    let dir = tempfile::tempdir().unwrap();
    let host = disk_host(dir.path());
    let (disk_lanes, errors) = zzping_gui::data::open_blocking(&[host]);
    assert!(errors.is_empty(), "{errors:?}");
    let Source::Files(days) = &disk_lanes[0].source else {
        panic!("a lane of files")
    };
    let q = quantizer();
    let mut live = LiveData::default();
    for i in LIVE_FROM..END {
        live.push(&qframe(i, &q), Some(&q));
    }
    let mut lane = Lane::new(HostLabel::default(), Source::Live(live));
    lane.quantizer = Some(std::sync::Arc::new(q.clone()));
    lane.set_history(days.clone());
    let all = truth(&q);

    // The whole 25 minutes at 100 s per column (100 s summaries on disk, one of them
    // straddling the cut; 10 s summaries from the stream), at 12.5 s (10 s level), at
    // 2.5 s (1 s summaries of the raw frames on disk, the stream's raw frames) and at
    // 0.5 s per column (raw frames from both).
    for (width, level) in [
        (15.0, 100_000_000),
        (120.0, 10_000_000),
        (600.0, 1_000_000),
        (3_000.0, 0),
    ] {
        let view = whole_range();
        lane.recompute_blocking(&view, width, &DiskLoader);
        // The disk part (910 of 1,500 s) names the level.
        assert_eq!(lane.level_us, level, "width {width}");
        let t = &lane.totals;
        assert_eq!(t.frames, END, "width {width}: frames");
        assert_eq!(t.lost, u64::from(all.counts.lost), "width {width}: lost");
        assert_eq!(t.received, u64::from(all.counts.received));
        assert_eq!(t.median_us, all.percentile_us(&q, 50.0), "width {width}");
        assert_eq!(t.p99_us, all.percentile_us(&q, 99.0), "width {width}");
        // The outage across the cut counts once.
        assert_eq!(t.outages, 3, "width {width}: outages");
        // No grey column anywhere: disk before the cut, the stream after it.
        let n = lane.columns.len();
        let gaps: Vec<usize> = (0..n).filter(|&i| lane.columns[i].is_gap()).collect();
        assert!(gaps.is_empty(), "width {width}: gaps at {gaps:?} of {n}");
        // A column of the first minutes (disk only) holds the disk's frames.
        let i = (0..n)
            .find(|&i| column_time(&view, n, i) > (T0 + 60_000_000) as f64)
            .unwrap();
        assert!(lane.columns[i].frames > 0 && lane.columns[i].received > 0);
    }

    // Around the cut, frame by frame: 20 s at 1,000 columns (20 ms each).
    let view = TimeView::new(
        (T0 + (CUT - 100) * PERIOD) as f64,
        (T0 + (CUT + 100) * PERIOD) as f64,
    );
    lane.recompute_blocking(&view, 1_000.0, &DiskLoader);
    assert_eq!(lane.totals.frames, 200);
    assert_eq!(lane.totals.outages, 1);
    assert!(lane.columns.iter().all(|c| !c.is_gap()));
    // Every column holds exactly one frame (five columns each).
    assert!(lane.columns.iter().all(|c| c.frames == 1));
}

#[test]
fn without_history_a_live_lane_shows_only_the_stream() {
    let q = quantizer();
    let mut live = LiveData::default();
    for i in LIVE_FROM..END {
        live.push(&qframe(i, &q), Some(&q));
    }
    let mut lane = Lane::new(HostLabel::default(), Source::Live(live));
    lane.quantizer = Some(std::sync::Arc::new(q));
    lane.recompute_blocking(&whole_range(), 150.0, &DiskLoader);
    assert_eq!(lane.totals.frames, END - LIVE_FROM);
    // The first minutes are grey.
    assert!(lane.columns[..80].iter().all(|c| c.is_gap()));
}

#[test]
fn history_of_another_precision_is_not_mixed_in() {
    let dir = tempfile::tempdir().unwrap();
    let host = disk_host(dir.path());
    let (disk_lanes, _) = zzping_gui::data::open_blocking(&[host]);
    let Source::Files(days) = &disk_lanes[0].source else {
        panic!("a lane of files")
    };
    let q = Quantizer::new(0.05).unwrap();
    let mut live = LiveData::default();
    for i in LIVE_FROM..END {
        live.push(&qframe(i, &q), Some(&q));
    }
    let mut lane = Lane::new(HostLabel::default(), Source::Live(live));
    lane.quantizer = Some(std::sync::Arc::new(q));
    lane.set_history(days.clone());
    lane.recompute_blocking(&whole_range(), 150.0, &DiskLoader);
    assert_eq!(lane.totals.frames, END - LIVE_FROM);
    assert!(
        lane.issues.iter().any(|i| i.contains("precision")),
        "{:?}",
        lane.issues
    );
}

/// The app with the host's directory open and the stream's frames received from daemon
/// 0 for two hosts labelled `alpha`: the one on disk (192.0.2.9) and another one
/// (192.0.2.99) that is not.
fn live_app(dir: &Path) -> App {
    let host = disk_host(dir);
    let mut app = App::empty(1024.0);
    app.plot_width = 600.0;
    app.open_blocking(&[host]);
    let q = quantizer();
    let mut events = vec![
        LiveEvent::Host {
            host: 1,
            meta: meta("192.0.2.9"),
        },
        LiveEvent::Host {
            host: 2,
            meta: meta("192.0.2.99"),
        },
    ];
    for i in LIVE_FROM..END {
        for host in [1, 2] {
            events.push(LiveEvent::Frame {
                host,
                frame: qframe(i, &q),
            });
        }
    }
    let _ = app.update(Message::SetMode(Mode::Live));
    let _ = app.update(Message::Live(LiveUpdate::Events { daemon: 0, events }));
    app
}

#[test]
fn the_live_window_scrolls_back_into_the_history_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = live_app(dir.path());
    assert_eq!(app.mode, Mode::Live);
    assert_eq!(app.live.len(), 2);
    // Home: the start of the data is now the start of the history on disk.
    let _ = app.update(Message::Home);
    assert!(!app.follow);
    assert_eq!(app.view_range().t0_us, T0 as f64);
    // The whole 25 minutes, as a wheel zoom out would show them.
    app.live_view = whole_range();
    app.recompute();
    let matched = &app.live[0].lane;
    let other = &app.live[1].lane;
    assert_eq!(matched.history().len(), 1);
    assert!(other.history().is_empty(), "192.0.2.99 is another host");
    assert_eq!(matched.totals.frames, END);
    assert_eq!(other.totals.frames, END - LIVE_FROM);
    assert_eq!(matched.totals.outages, 3);
    let all = truth(&quantizer());
    assert_eq!(
        matched.totals.median_us,
        all.percentile_us(&quantizer(), 50.0)
    );
    // Minute 2 (disk only) is not grey; the other host's is.
    let view = app.view_range();
    let n = matched.columns.len();
    let i = (0..n)
        .find(|&i| column_time(&view, n, i) > (T0 + 120_000_000) as f64)
        .unwrap();
    assert!(!matched.columns[i].is_gap());
    assert!(other.columns[i].is_gap());
    let lines = App::legend_lines(matched);
    assert_eq!(lines[4], "outages 3");
}

#[test]
fn the_history_renders_in_the_live_lane() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = live_app(dir.path());
    app.live_view = whole_range();
    app.follow = false;
    app.recompute();
    let (w, h) = (600.0f32, 150.0f32);
    let s = &app.live[0];
    let el = canvas(LaneCanvas {
        lane: &s.lane,
        cache: &s.cache,
        view: app.view_range(),
        y: s.y,
        hover: None,
        primary: false,
        plot_width: w,
        drawn_at: &s.drawn_at,
        marks: &[],
    })
    .width(Length::Fill)
    .height(Length::Fill);
    let img = render(el.into(), (w, h));
    let gap = GAP.into_rgba8();
    let grey_rows = |x: usize| {
        (0..img.h)
            .filter(|&y| {
                let p = img.px(x, y);
                (0..3).all(|k| (i32::from(p[k]) - i32::from(gap[k])).abs() <= 12)
            })
            .count()
    };
    // Minute 2 of 25 (disk only) at scale 2: not a grey column.
    let x = (2.0 / 25.0 * f64::from(w) * 2.0) as usize;
    assert_eq!(grey_rows(x), 0, "column {x} is grey");
    // The same as the software reference of the lane's columns.
    let reference = lane_pixels(&s.lane.columns, &app.view_range(), &s.y, w as u32, h as u32);
    let i = ((40 * w as usize) + x / 2) * 4;
    let p = img.px(x, 80);
    for k in 0..3 {
        assert!((i32::from(p[k]) - i32::from(reference[i + k])).abs() <= 2);
    }
}

#[test]
fn an_ipv6_host_is_shown_by_its_address_and_finds_its_history() {
    use zzping_lib::file::{HostInfo, HostWriter, WriterConfig};
    let dir = tempfile::tempdir().unwrap();
    let mut w = HostWriter::open(
        dir.path(),
        HostInfo {
            label: "::1".into(),
            address: "::1".parse().unwrap(),
            name: None,
            role: None,
        },
        WriterConfig {
            period_us: PERIOD as u32,
            precision: 0.01,
            writer: "test".into(),
        },
    )
    .unwrap();
    let q = quantizer();
    let mut f = Frame::default();
    for i in 0..DISK {
        qframe(i, &q).to_frame_into(&q, &mut f);
        w.append(&f).unwrap();
    }
    w.sync().unwrap();
    drop(w);
    // On disk it is `__1`; the viewer shows `::1`.
    assert!(dir.path().join("__1").is_dir());
    let mut app = App::empty(1024.0);
    app.plot_width = 600.0;
    app.open_blocking(&[dir.path().to_path_buf()]);
    assert!(app.errors.is_empty(), "{:?}", app.errors);
    assert_eq!(app.offline[0].lane.host.label, "::1");
    assert_eq!(App::legend_lines(&app.offline[0].lane)[0], "::1");
    // The daemon streams it as `::1`: its live lane scrolls back into `__1`.
    let mut events = vec![LiveEvent::Host {
        host: 1,
        meta: HostMeta {
            label: "::1".into(),
            address: "::1".parse().unwrap(),
            name: None,
            period_us: PERIOD as u32,
            precision: 0.01,
        },
    }];
    for i in LIVE_FROM..END {
        events.push(LiveEvent::Frame {
            host: 1,
            frame: qframe(i, &q),
        });
    }
    let _ = app.update(Message::SetMode(Mode::Live));
    let _ = app.update(Message::Live(LiveUpdate::Events { daemon: 0, events }));
    assert_eq!(app.live[0].lane.host.label, "::1");
    assert_eq!(app.live[0].lane.history().len(), 1);
    app.live_view = whole_range();
    app.follow = false;
    app.recompute();
    assert_eq!(app.live[0].lane.totals.frames, END);
}
