//! Context-event marks: a data directory with a host's 60 s and the daemon's event file
//! (written by `zzping_lib::events::EventWriter`, as the daemon writes it). The viewer
//! draws each event as a mark at its time in the strip under the lanes (pixels checked
//! on a headless render), and hovering the lanes at that time reads its text out in the
//! window.

mod common;

use common::{T0, render, standard_host};
use iced::widget::canvas;
use iced::{Length, Point, mouse};
use iced_test::core::Event;
use iced_test::simulator;
use std::path::Path;
use zzping_gui::canvas::{EventsCanvas, mark_columns};
use zzping_gui::marks::{LINK_MARK, ROUTE_MARK, SUSPEND_MARK};
use zzping_gui::{App, Message};
use zzping_lib::events::{ContextEvent, EventKind, EventWriter};

const W: f32 = 600.0;

/// The events: wlan0 down at 12 s for 3.2 s, the default route moved at 30 s, a
/// suspend at 45 s for 4 s.
fn write_events(data: &Path) {
    let mut w = EventWriter::new(data, "test");
    let s = 1_000_000;
    for ev in [
        ContextEvent::link(T0 + 12 * s, EventKind::LinkDown, "wlan0"),
        ContextEvent::link(T0 + 15 * s + 200_000, EventKind::LinkUp, "wlan0"),
        ContextEvent::route(
            T0 + 30 * s,
            4,
            Some("198.18.1.254".parse().unwrap()),
            Some("zzsim1"),
            false,
        ),
        ContextEvent::suspend(T0 + 45 * s, 4 * s),
    ] {
        w.append(&ev, T0);
    }
    w.sync().unwrap();
}

fn near(p: [u8; 3], c: iced::Color, tol: i32) -> bool {
    let c = c.into_rgba8();
    (0..3).all(|i| (i32::from(p[i]) - i32::from(c[i])).abs() <= tol)
}

#[test]
fn events_are_marked_at_their_time_and_read_out_on_hover() {
    let dir = tempfile::tempdir().unwrap();
    let host = standard_host(dir.path(), "alpha", false);
    write_events(dir.path());
    let mut app = common::app_with(&[dir.path().to_path_buf()], W);
    assert!(app.errors.is_empty(), "{:?}", app.errors);
    let texts: Vec<&str> = app.marks.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "wlan0 down 3.2 s",
            "default route via 198.18.1.254 on zzsim1",
            "suspended 4.0 s"
        ]
    );
    // Opening the host directory alone finds the data directory's events too.
    let only_host = common::app_with(&[host], W);
    assert_eq!(only_host.marks, app.marks);

    // The strip alone, one pixel per 100 ms (scale factor 2 in the render): each mark at
    // its time, its colour over its span, the background elsewhere.
    let view = app.view_range();
    let cache = canvas::Cache::new();
    let el = canvas(EventsCanvas {
        marks: &app.marks,
        cache: &cache,
        view,
        hover: None,
    })
    .width(Length::Fill)
    .height(Length::Fill);
    let img = render(el.into(), (W, 14.0));
    let mid = img.h / 2;
    for (m, color, at_s) in [
        (&app.marks[0], LINK_MARK, 12.0),
        (&app.marks[1], ROUTE_MARK, 30.0),
        (&app.marks[2], SUSPEND_MARK, 45.0),
    ] {
        let (x0, x1) = mark_columns(m, &view, W).unwrap();
        // 10 px per second of the 60 s view.
        assert!((x0 + 1.5 - at_s * 10.0).abs() <= 1.0, "{}: {x0}", m.text);
        for x in [x0 as usize * 2, (x1 as usize * 2).saturating_sub(1)] {
            assert!(
                near(img.px(x, mid), color, 3),
                "{} x {x}: {:?}",
                m.text,
                img.px(x, mid)
            );
        }
        // Its tick goes the whole height.
        assert!(near(img.px(x0 as usize * 2 + 1, 1), color, 3), "{}", m.text);
    }
    // wlan0 down: 12.0 to 15.2 s.
    assert!(near(img.px(2 * 137, mid), LINK_MARK, 3));
    // Nothing between the marks.
    for s in [5.0, 20.0, 38.0, 55.0] {
        let x = (s * 20.0) as usize;
        for y in 0..img.h {
            let p = img.px(x, y);
            for c in [LINK_MARK, ROUTE_MARK, SUSPEND_MARK] {
                assert!(!near(p, c, 20), "{s} s row {y}: {p:?}");
            }
        }
    }

    // In the window, the strip lies under the lanes with its time axis on theirs: the
    // route mark's column is the lane column of its time.
    let (ww, wh) = (1024.0, 700.0);
    let win = render(app.view(), (ww, wh));
    let lane_at = app.offline[0].drawn_at.get().expect("the lane was drawn");
    let bottom = app
        .offline
        .iter()
        .filter_map(|s| s.drawn_at.get())
        .map(|b| b.y + b.height)
        .fold(0.0, f32::max);
    let m = &app.marks[1];
    let x = lane_at.x + view.frac_of(m.t_us as f64) as f32 * lane_at.width;
    let route_rows = |x: f32| {
        let px = (x * 2.0).round() as usize;
        (2 * bottom as usize..(2 * bottom as usize + 80).min(win.h))
            .filter(|&y| near(win.px(px, y), ROUTE_MARK, 3))
            .count()
    };
    assert!(
        route_rows(x) > 10,
        "no route mark under the lanes at x {x} (lane {lane_at:?})"
    );
    assert_eq!(
        route_rows(x - 6.0),
        0,
        "the route mark is wider or off its time"
    );
    assert_eq!(
        route_rows(x + 6.0),
        0,
        "the route mark is wider or off its time"
    );

    // Let the lane report its real width (as the window's first frame does), then show
    // the 60 s again.
    for _ in 0..3 {
        let msgs: Vec<Message> = {
            let mut ui = simulator(app.view());
            ui.simulate([Event::Mouse(mouse::Event::CursorMoved {
                position: Point::new(1.0, 1.0),
            })]);
            ui.into_messages().collect()
        };
        for m in msgs {
            let _ = app.update(m);
        }
    }
    app.offline_view = view;
    app.recompute();

    // Hovering the lanes at 13.6 s (inside the link's span) reads the link out; at 30 s
    // the route; at 22 s nothing.
    let title = App::legend_lines(&app.offline[0].lane)[0].clone();
    let at = |app: &App, frac: f32| {
        let mut ui = simulator(app.view());
        let b = ui.find(title.as_str()).expect("legend title").bounds();
        let x0 = b.x + zzping_gui::app::LEGEND_WIDTH + zzping_gui::canvas::Y_AXIS_WIDTH;
        Point::new(x0 + frac * app.plot_width, b.y + 60.0)
    };
    for (s, want) in [
        (13.6, Some("wlan0 down 3.2 s")),
        (30.0, Some("default route via 198.18.1.254 on zzsim1")),
        (22.0, None),
    ] {
        let p = at(&app, s / 60.0);
        let msgs: Vec<Message> = {
            let mut ui = simulator(app.view());
            ui.simulate([Event::Mouse(mouse::Event::CursorMoved { position: p })]);
            ui.into_messages().collect()
        };
        assert!(!msgs.is_empty(), "no hover at {s} s");
        for m in msgs {
            let _ = app.update(m);
        }
        let lines = app.hover_lines();
        let found: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains(zzping_gui::window::EVENT_TIME_SEP))
            .collect();
        match want {
            Some(w) => {
                assert_eq!(found.len(), 1, "{s} s: {lines:?}");
                assert!(found[0].starts_with(w), "{s} s: {lines:?}");
                let mut ui = simulator(app.view());
                ui.find(found[0].as_str())
                    .unwrap_or_else(|e| panic!("{s} s: {:?} not rendered: {e:?}", found[0]));
            }
            None => assert!(found.is_empty(), "{s} s: {lines:?}"),
        }
    }
}
