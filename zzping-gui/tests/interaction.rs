//! Drives the real `update`/`view` through iced_test's simulator: zoom, pan, box zoom,
//! reset, keyboard, mode switch, hover and the legend's values.

mod common;

use common::{T0, app_with, standard_host};
use iced::{Point, mouse};
use iced_test::core::Event;
use iced_test::simulator;
use zzping_gui::{App, Message, Mode};

/// Lets the first lane report its real width, as the first frame of the window does.
fn settle(app: &mut App) {
    for _ in 0..3 {
        let msgs: Vec<Message> = {
            let mut ui = simulator(app.view());
            ui.simulate([Event::Mouse(mouse::Event::CursorMoved {
                position: Point::new(1.0, 1.0),
            })]);
            ui.into_messages().collect()
        };
        if msgs.is_empty() {
            return;
        }
        for m in msgs {
            let _ = app.update(m);
        }
    }
}

/// Screen position of fraction `frac` of the first lane's width, mid-height.
fn lane_point(app: &App, frac: f32) -> Point {
    let title = App::legend_lines(&app.offline[0].lane)[0].clone();
    let mut ui = simulator(app.view());
    let b = ui.find(title).expect("legend title").bounds();
    let x0 = b.x + zzping_gui::app::LEGEND_WIDTH + zzping_gui::canvas::Y_AXIS_WIDTH;
    Point::new(x0 + frac * app.plot_width, b.y + 60.0)
}

/// Runs `events` against the view with the cursor at `at`; applies and returns messages.
fn run(app: &mut App, at: Point, events: Vec<Event>) -> Vec<Message> {
    let msgs: Vec<Message> = {
        let mut ui = simulator(app.view());
        ui.point_at(at);
        ui.simulate(events);
        ui.into_messages().collect()
    };
    for m in msgs.clone() {
        let _ = app.update(m);
    }
    msgs
}

fn moved(p: Point) -> Event {
    Event::Mouse(mouse::Event::CursorMoved { position: p })
}

fn setup() -> (tempfile::TempDir, App) {
    let dir = tempfile::tempdir().unwrap();
    let a = standard_host(dir.path(), "alpha", true);
    let b = standard_host(dir.path(), "beta", false);
    let mut app = app_with(&[a, b], 700.0);
    settle(&mut app);
    app.offline_view = zzping_gui::timeline::TimeView::new(T0 as f64, (T0 + 60_000_000) as f64);
    app.recompute();
    (dir, app)
}

#[test]
fn legend_shows_exact_values_for_the_visible_range() {
    let (_d, app) = setup();
    let t = &app.offline[0].lane.totals;
    // 597 normal frames minus the 50 of the gap = 547 frames of 10 replies; 3 lost frames.
    assert_eq!(t.received, 5470);
    assert_eq!(t.lost, 30);
    assert_eq!(t.outages, 1);
    let med = t.median_us.unwrap();
    assert!((13_900..=14_100).contains(&med), "median {med}");
    let p99 = t.p99_us.unwrap();
    assert!((18_850..=19_150).contains(&p99), "p99 {p99}");
    let lines = App::legend_lines(&app.offline[0].lane);
    assert_eq!(lines[1], "loss 0.55 % (30 timeouts)");
    assert_eq!(lines[4], "outages 1");
    let mut ui = simulator(app.view());
    for l in &lines {
        ui.find(l.as_str())
            .unwrap_or_else(|e| panic!("{l:?} not rendered: {e:?}"));
    }
    ui.find("beta (192.0.2.9)").expect("second lane's legend");
    ui.find("loss 0.50 % (30 timeouts)")
        .expect("second lane's loss");
}

/// Clicks the widget showing `label` and applies the messages.
fn click(app: &mut App, label: &str) -> Vec<Message> {
    let msgs: Vec<Message> = {
        let mut ui = simulator(app.view());
        ui.click(label)
            .unwrap_or_else(|e| panic!("{label:?} not found: {e:?}"));
        ui.into_messages().collect()
    };
    assert!(!msgs.is_empty(), "clicking {label:?} did nothing");
    for m in msgs.clone() {
        let _ = app.update(m);
    }
    msgs
}

#[test]
fn range_buttons_and_go_to_set_the_view() {
    let (_d, mut app) = setup();
    let (_, end) = app.extent().unwrap();
    click(&mut app, "1 h");
    let v = app.view_range();
    assert_eq!((v.span_us(), v.t1_us), (3600e6, end as f64));
    click(&mut app, "5 min");
    assert_eq!(app.view_range().span_us(), 300e6);
    click(&mut app, "all");
    let v = app.view_range();
    assert!(v.t0_us < T0 as f64 && v.t1_us > end as f64, "{v:?}");
    // "go to": typed into its field, then Enter; the view starts there, same span.
    let span = app.view_range().span_us();
    let msgs: Vec<Message> = {
        let mut ui = simulator(app.view());
        ui.click("-2h, yesterday, 2026-11-22T20:00:00+01:00")
            .expect("go to field");
        ui.typewrite("2026-01-01T10:00:20Z");
        ui.tap_key(iced::keyboard::key::Named::Enter);
        ui.into_messages().collect()
    };
    for m in msgs {
        let _ = app.update(m);
    }
    let v = app.view_range();
    assert_eq!((v.t0_us, v.span_us()), ((T0 + 20_000_000) as f64, span));
    // A time that is not one: named in the banner, the view unchanged.
    app.goto_input = "soon".into();
    let _ = app.update(Message::GoTo);
    assert_eq!(app.view_range().t0_us, (T0 + 20_000_000) as f64);
    assert!(
        app.errors
            .iter()
            .any(|e| e.starts_with("go to \"soon\": expected a time")),
        "{:?}",
        app.errors
    );
}

#[test]
fn lanes_hide_show_and_reorder() {
    let (_d, mut app) = setup();
    let names = |app: &App| -> Vec<String> {
        app.shown()
            .iter()
            .map(|s| s.lane.host.label.clone())
            .collect()
    };
    assert_eq!(names(&app), ["alpha", "beta"]);
    // The first "↓" moves alpha below beta.
    click(&mut app, "↓");
    assert_eq!(names(&app), ["beta", "alpha"]);
    // The first "hide" now hides beta; its legend leaves the window, a button brings it
    // back.
    click(&mut app, "hide");
    assert_eq!(names(&app), ["alpha"]);
    {
        let mut ui = simulator(app.view());
        assert!(ui.find("beta (192.0.2.9)").is_err());
    }
    click(&mut app, "show beta (192.0.2.9)");
    assert_eq!(names(&app), ["beta", "alpha"]);
}

#[test]
fn save_png_lays_out_the_picture_to_share() {
    let (_d, mut app) = setup();
    click(&mut app, "Save PNG");
    assert_eq!(app.capturing, Some(0));
    assert!(app.share_layout());
    let caption = app.caption();
    assert!(caption.contains("alpha (192.0.2.9)") && caption.contains("beta (192.0.2.9)"));
    assert!(caption.contains("(1 min 0 s)"), "{caption}");
    let mut ui = simulator(app.view());
    ui.find(caption.as_str()).expect("caption drawn");
    ui.find(zzping_gui::window::LEGEND_HELP)
        .expect("colour key drawn");
    assert!(ui.find("Open").is_err(), "no toolbar in the picture");
    drop(ui);
    // The picture is taken on the second frame after (see `App::capturing`).
    let _ = app.update(Message::Frame);
    assert_eq!(app.capturing, Some(1));
    // A window that never hands the picture back: after a bounded number of frames the
    // window is itself again and says so.
    for _ in 0..200 {
        let _ = app.update(Message::Frame);
    }
    assert_eq!(app.capturing, None);
    assert!(!app.share_layout());
    assert!(
        app.errors.iter().any(|e| e.starts_with("Save PNG")),
        "{:?}",
        app.errors
    );
}

#[test]
fn wheel_zooms_around_the_cursor() {
    let (_d, mut app) = setup();
    let before = app.view_range();
    let at = lane_point(&app, 0.25);
    let t_at = before.time_at(0.25);
    let msgs = run(
        &mut app,
        at,
        vec![
            moved(at),
            Event::Mouse(mouse::Event::WheelScrolled {
                delta: mouse::ScrollDelta::Lines { x: 0.0, y: 2.0 },
            }),
        ],
    );
    assert!(
        msgs.iter().any(|m| matches!(m, Message::Zoom { .. })),
        "{msgs:?}"
    );
    let after = app.view_range();
    assert!((after.span_us() - before.span_us() * 0.64).abs() < 1.0);
    assert!((after.time_at(0.25) - t_at).abs() < before.span_us() * 0.01);
    // Columns are recomputed for the new view, at raw-frame resolution.
    assert_eq!(app.offline[0].lane.level_us, 0);
}

#[test]
fn drag_pans_and_double_click_resets() {
    let (_d, mut app) = setup();
    let before = app.view_range();
    let a = lane_point(&app, 0.5);
    let b = Point::new(a.x - app.plot_width * 0.25, a.y);
    run(
        &mut app,
        a,
        vec![
            Event::Mouse(mouse::Event::ButtonPressed(mouse::Button::Left)),
            moved(b),
            Event::Mouse(mouse::Event::ButtonReleased(mouse::Button::Left)),
        ],
    );
    let after = app.view_range();
    let shift = (after.t0_us - before.t0_us) / before.span_us();
    assert!((shift - 0.25).abs() < 0.01, "shift {shift}");
    assert!((after.span_us() - before.span_us()).abs() < 1.0);

    let msgs = run(
        &mut app,
        a,
        vec![
            Event::Mouse(mouse::Event::ButtonPressed(mouse::Button::Left)),
            Event::Mouse(mouse::Event::ButtonReleased(mouse::Button::Left)),
            Event::Mouse(mouse::Event::ButtonPressed(mouse::Button::Left)),
            Event::Mouse(mouse::Event::ButtonReleased(mouse::Button::Left)),
        ],
    );
    assert!(msgs.iter().any(|m| matches!(m, Message::Reset)), "{msgs:?}");
    // Reset shows all data (60 s plus 1 % each side).
    let v = app.view_range();
    assert!(v.t0_us < T0 as f64 && v.t1_us > (T0 + 60_000_000) as f64);
    assert!((v.span_us() - 61_200_000.0).abs() < 1e5, "{}", v.span_us());
}

#[test]
fn right_drag_box_zooms() {
    let (_d, mut app) = setup();
    let before = app.view_range();
    let a = lane_point(&app, 0.2);
    let b = lane_point(&app, 0.4);
    run(
        &mut app,
        a,
        vec![
            Event::Mouse(mouse::Event::ButtonPressed(mouse::Button::Right)),
            moved(b),
            Event::Mouse(mouse::Event::ButtonReleased(mouse::Button::Right)),
        ],
    );
    let v = app.view_range();
    assert!((v.t0_us - before.time_at(0.2)).abs() < before.span_us() * 0.005);
    assert!((v.t1_us - before.time_at(0.4)).abs() < before.span_us() * 0.005);
}

/// Presses `key` in the window with the cursor at `at`, as the runtime does: the event
/// goes to the widgets, and what none of them captured to [`zzping_gui::app::key_message`].
fn press(app: &mut App, at: Point, key: iced::keyboard::Key) {
    let event = iced_test::simulator::press_key(key, None);
    let (status, msgs): (Vec<_>, Vec<Message>) = {
        let mut ui = simulator(app.view());
        ui.point_at(at);
        let status = ui.simulate([event.clone()]);
        (status, ui.into_messages().collect())
    };
    for m in msgs {
        let _ = app.update(m);
    }
    if let Some(m) = zzping_gui::app::key_message(event, status[0], iced::window::Id::unique()) {
        let _ = app.update(m);
    }
}

#[test]
fn keyboard_zooms_pans_and_jumps() {
    let (_d, mut app) = setup();
    let span = app.view_range().span_us();
    let at = lane_point(&app, 0.5);
    use iced::keyboard::{Key, key::Named};
    press(&mut app, at, Key::Character("+".into()));
    assert!((app.view_range().span_us() - span / 2.0).abs() < 1.0);
    press(&mut app, at, Key::Character("-".into()));
    assert!((app.view_range().span_us() - span).abs() < 1.0);
    let t0 = app.view_range().t0_us;
    press(&mut app, at, Key::Named(Named::ArrowRight));
    assert!((app.view_range().t0_us - t0 - span * 0.1).abs() < 1.0);
    press(&mut app, at, Key::Named(Named::End));
    let (_, end) = app.extent().unwrap();
    assert!((app.view_range().t1_us - end as f64).abs() < 1.0);
    press(&mut app, at, Key::Named(Named::Home));
    let (start, _) = app.extent().unwrap();
    assert!((app.view_range().t0_us - start as f64).abs() < 1.0);
}

#[test]
fn hover_reads_out_the_column_under_the_cursor() {
    let (_d, mut app) = setup();
    // 700 px over 60 s: the column at 30.05 s holds the outage.
    let at = lane_point(&app, 30.05 / 60.0);
    run(&mut app, at, vec![moved(at)]);
    let h = app.hover.expect("hovering");
    assert!((h - 30.05 / 60.0).abs() < 0.002, "{h}");
    let lines = app.hover_lines();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[1].starts_with("alpha: "), "{lines:?}");
    assert!(
        lines[1].contains("loss 100 %") || lines[1].contains("loss 100.0 %"),
        "{lines:?}"
    );
    let mut ui = simulator(app.view());
    ui.find(lines[1].as_str()).expect("read-out rendered");
    drop(ui);
    // Elsewhere: ten pings at 10-19 ms.
    let at = lane_point(&app, 10.0 / 60.0);
    run(&mut app, at, vec![moved(at)]);
    let lines = app.hover_lines();
    assert!(
        lines[2].contains("loss 0 %") && lines[2].contains("min 10.0 ms"),
        "{lines:?}"
    );
}

#[test]
fn mode_switch_changes_lanes_and_status() {
    let (_d, mut app) = setup();
    let msgs: Vec<Message> = {
        let mut ui = simulator(app.view());
        ui.click("Live").expect("Live button");
        ui.into_messages().collect()
    };
    assert!(
        msgs.iter()
            .any(|m| matches!(m, Message::SetMode(Mode::Live)))
    );
    for m in msgs {
        let _ = app.update(m);
    }
    assert_eq!(app.mode, Mode::Live);
    let mut ui = simulator(app.view());
    ui.find("No daemon configured: start with --live ADDR.")
        .expect("live placeholder");
    assert!(
        ui.find("outages 1").is_err(),
        "offline lanes hidden in live mode"
    );
    drop(ui);
    let _ = app.update(Message::SetMode(Mode::Offline));
    let mut ui = simulator(app.view());
    ui.find("outages 1").expect("offline lanes back");
}

#[test]
fn y_controls_and_scale_factor() {
    let (_d, mut app) = setup();
    let y0 = app.offline[0].y;
    let _ = app.update(Message::YZoom(0.5));
    assert!((app.offline[0].y.max_us - y0.max_us * 0.5).abs() < 1.0);
    let _ = app.update(Message::YAuto);
    assert_eq!(app.offline[0].y.max_us, y0.max_us);
    let _ = app.update(Message::ScaleFactor(50.0));
    assert_eq!(app.offline[0].y.sf, 50.0);
    let _ = app.update(Message::ScaleFactor(f64::NAN));
    assert_eq!(app.offline[0].y.sf, 50.0);
    // p95 of 10..19 ms is 19 ms: auto range is 1.25 × that.
    assert!((y0.max_us - 19_000.0 * 1.25).abs() < 300.0, "{}", y0.max_us);
}

#[test]
fn keys_typed_into_a_text_field_are_the_fields() {
    let (_d, app) = setup();
    // As a keyboard types them: the key and its text.
    let typed = |c: &str| {
        iced_test::simulator::press_key(iced::keyboard::Key::Character(c.into()), Some(c.into()))
    };
    let (plus, minus) = (typed("+"), typed("-"));
    let id = iced::window::Id::unique();
    for field in [
        "data directory, host directory or .zzp file",
        "-2h, yesterday, 2026-11-22T20:00:00+01:00",
    ] {
        let mut ui = simulator(app.view());
        ui.click(field).expect("the field");
        // The focused field captures the keys: the timeline gets none, not even the
        // first one typed.
        for key in [&minus, &plus] {
            let status = ui.simulate([key.clone()]);
            assert!(zzping_gui::app::key_message(key.clone(), status[0], id).is_none());
        }
        let typed: Vec<Message> = ui.into_messages().collect();
        assert!(
            typed
                .iter()
                .all(|m| matches!(m, Message::PathChanged(_) | Message::GoToChanged(_))),
            "{typed:?}"
        );
        assert_eq!(typed.len(), 2, "{typed:?}");
    }
    // Over the lanes, no widget takes "+": it zooms.
    let mut ui = simulator(app.view());
    ui.point_at(lane_point(&app, 0.5));
    let status = ui.simulate([plus.clone()]);
    assert!(matches!(
        zzping_gui::app::key_message(plus, status[0], id),
        Some(Message::Zoom { factor: 0.5, .. })
    ));
}
