//! Pixel assertions on headless tiny-skia renders (iced_test snapshots, scale factor 2),
//! each against what the test data must show there (`common::render`).

mod common;

use common::{Image, Slot, T0, app_with, render, standard_host, write_host};
use iced::Length;
use iced::widget::canvas;
use std::path::Path;
use zzping_gui::Message;
use zzping_gui::canvas::{GAP, LaneCanvas, MEDIAN, lane_pixels};

const W: f32 = 600.0;
const H: f32 = 150.0;

/// Renders the first lane of a 60 s data set alone, one column per logical pixel.
fn render_lane() -> Image {
    render_lane_with(&[])
}

/// [`render_lane`] with context-event marks.
fn render_lane_with(marks: &[zzping_gui::marks::Mark]) -> Image {
    let dir = tempfile::tempdir().unwrap();
    let p = standard_host(dir.path(), "alpha", true);
    let app = app_with(&[p], W);
    let s = &app.offline[0];
    assert_eq!(s.lane.columns.len(), W as usize);
    let el = canvas(LaneCanvas {
        lane: &s.lane,
        cache: &s.cache,
        view: app.view_range(),
        y: s.y,
        hover: None,
        primary: false,
        plot_width: W,
        drawn_at: &s.drawn_at,
        marks,
    })
    .width(Length::Fill)
    .height(Length::Fill);
    let img = render(el.into(), (W, H));
    assert_eq!((img.w, img.h), (1200, 300));
    img
}

fn is_red(p: [u8; 3]) -> bool {
    p[0] > 200 && p[1] < 90 && p[2] < 90
}

fn near(p: [u8; 3], c: iced::Color, tol: i32) -> bool {
    let c = c.into_rgba8();
    (0..3).all(|i| (i32::from(p[i]) - i32::from(c[i])).abs() <= tol)
}

#[test]
fn a_300_ms_outage_is_red_at_its_time() {
    let img = render_lane();
    // The outage is 30.0-30.3 s of 60 s: columns 300-302 of 600, physical x 600-605.
    for x in [601, 603, 605] {
        for y in [20, 150, 280] {
            assert!(is_red(img.px(x, y)), "x {x} y {y}: {:?}", img.px(x, y));
        }
    }
    // No red where every ping came back, nor just outside the outage.
    for x in [400, 596, 610, 800] {
        for y in (0..img.h).step_by(7) {
            assert!(!is_red(img.px(x, y)), "x {x} y {y}: {:?}", img.px(x, y));
        }
    }
}

#[test]
fn a_gap_is_grey_and_not_interpolated() {
    let img = render_lane();
    // No frames 45-50 s: columns 450-499, physical x 900-999.
    for x in [905, 950, 995] {
        for y in [20, 150, 280] {
            assert!(
                near(img.px(x, y), GAP, 12),
                "x {x} y {y}: {:?}",
                img.px(x, y)
            );
        }
    }
    // Data on both sides is not grey.
    assert!(!near(img.px(880, 150), GAP, 12));
    assert!(!near(img.px(1020, 150), GAP, 12));
}

#[test]
fn bands_are_ordered_min_below_median_below_max() {
    let img = render_lane();
    for x in [200, 300, 700, 1100] {
        let blue: Vec<usize> = (0..img.h)
            .filter(|&y| {
                let p = img.px(x, y);
                i32::from(p[2]) > i32::from(p[0]) + 40
            })
            .collect();
        let median: Vec<usize> = (0..img.h)
            .filter(|&y| near(img.px(x, y), MEDIAN, 20))
            .collect();
        assert!(!blue.is_empty() && !median.is_empty(), "x {x}");
        let (top, bottom) = (blue[0], *blue.last().unwrap());
        let m = median[median.len() / 2];
        // Pixel y grows downwards: max (top) < median < min (bottom).
        assert!(
            top < m && m < bottom,
            "x {x}: max at {top}, median at {m}, min at {bottom}"
        );
        // 10..19 ms on a 0..23.75 ms axis: min at 10/23.75 of the height, max at 19/23.75.
        let plot = (img.h - 12) as f32;
        let y_of = |ms: f32| 6.0 + plot * (1.0 - ms / 23.75);
        assert!(
            (top as f32 - y_of(19.0)).abs() < 8.0,
            "x {x}: top {top} vs {}",
            y_of(19.0)
        );
        assert!(
            (bottom as f32 - y_of(10.0)).abs() < 8.0,
            "x {x}: bottom {bottom} vs {}",
            y_of(10.0)
        );
    }
}

#[test]
fn whole_window_renders_dark_and_not_blank() {
    let dir = tempfile::tempdir().unwrap();
    let p = standard_host(dir.path(), "alpha", true);
    let mut app = app_with(&[p], 700.0);
    app.offline_view = zzping_gui::timeline::TimeView::new(T0 as f64, (T0 + 60_000_000) as f64);
    app.recompute();
    let img = render(app.view(), (1024.0, 768.0));
    let mut dark = 0usize;
    let mut colors = std::collections::HashSet::new();
    for y in (0..img.h).step_by(3) {
        for x in (0..img.w).step_by(3) {
            let p = img.px(x, y);
            if u32::from(p[0]) + u32::from(p[1]) + u32::from(p[2]) < 200 {
                dark += 1;
            }
            colors.insert(p);
        }
    }
    let total = img.h.div_ceil(3) * img.w.div_ceil(3);
    assert!(
        dark * 2 > total,
        "dark theme: {dark} of {total} samples dark"
    );
    assert!(colors.len() > 50, "only {} colours", colors.len());
}

/// Frame `i` of the jumpy host: bands that jump up and down from frame to frame (some
/// not even overlapping their neighbours), scattered loss, an outage and a gap.
fn jumpy_slot(i: u64) -> Slot {
    let mut state = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    match i {
        200..203 => Slot::Outage,
        400..420 => Slot::Gap,
        _ => {
            let base = 2_000 + (rnd() % 20_000) as u32;
            let spread = 1 + (rnd() % 8_000) as u32;
            let n = 1 + (rnd() % 12) as u32;
            let rtts = (0..n).map(|k| base + spread * k / n).collect();
            Slot::Custom(rtts, u32::from(rnd() % 5 == 0))
        }
    }
}

/// A host of 600 [`jumpy_slot`] frames.
fn jumpy_host(dir: &Path) -> std::path::PathBuf {
    write_host(dir, "jumpy", 600, jumpy_slot)
}

#[test]
fn each_column_holds_its_frames_own_statistics() {
    // The other half of the chain the pixel comparison below relies on: the columns
    // both renderers draw are checked here against the data as generated, not against
    // the summaries that made them. 600 columns over 60 s of 100 ms frames: column i
    // is frame i. Quantiles by the documented nearest-rank definition, computed
    // literally (zzping_testkit::oracle); stored RTTs are within 0.5 % (precision 0.01).
    let dir = tempfile::tempdir().unwrap();
    let p = jumpy_host(dir.path());
    let app = app_with(&[p], W);
    let cols = &app.offline[0].lane.columns;
    assert_eq!(cols.len(), 600);
    for (i, c) in cols.iter().enumerate() {
        match jumpy_slot(i as u64) {
            Slot::Gap => assert!(c.is_gap(), "column {i}: {c:?}"),
            Slot::Outage => assert!(
                c.is_outage() && c.has_outage && c.lost == 10,
                "column {i}: {c:?}"
            ),
            Slot::Custom(rtts, lost) => {
                assert_eq!(
                    (c.frames, c.received, c.lost),
                    (1, rtts.len() as u64, u64::from(lost)),
                    "column {i}"
                );
                for (k, &q) in zzping_gui::model::BAND_QUANTILES.iter().enumerate() {
                    let want = zzping_testkit::oracle::nearest_rank_by_definition(&rtts, q).unwrap()
                        as f32;
                    assert!(
                        (c.q_us[k] - want).abs() <= want * 0.005 + 1.0,
                        "column {i}, q {q}: {} vs {want} of {rtts:?}",
                        c.q_us[k]
                    );
                }
            }
            Slot::Normal | Slot::Failed { .. } => unreachable!(),
        }
    }
}

#[test]
fn failed_requests_are_red_and_flagged_frames_marked_in_files() {
    use zzping_gui::canvas::{ERROR_LOSS, LOSS, USER_STAMP_MARK};
    use zzping_lib::frame::FLAG_USER_STAMP;
    // 60 s on disk: 0-20 s every request errored (an unreachable host: no timeout, no
    // reply); 20-40 s replies, some timed in user space (flagged); 40-60 s half the
    // requests time out and a quarter error.
    let slot = |i: u64| match i {
        0..200 => Slot::Failed {
            rtts: vec![],
            lost: 0,
            errors: 10,
            flags: 0,
        },
        200..400 => Slot::Failed {
            rtts: vec![12_000; 10],
            lost: 0,
            errors: 0,
            flags: if i % 10 == 0 { FLAG_USER_STAMP } else { 0 },
        },
        _ => Slot::Failed {
            rtts: vec![12_000; 2],
            lost: 4,
            errors: 2,
            flags: 0,
        },
    };
    let dir = tempfile::tempdir().unwrap();
    let p = write_host(dir.path(), "laptop", 600, slot);
    let mut app = app_with(&[p], W);
    // The read-out: loss with its breakdown, and what a flag means.
    app.hover = Some(100.5 / 600.0);
    let lines = app.hover_lines();
    assert!(
        lines[1].starts_with("laptop: 10 pings, loss 100 % (10 errors)"),
        "{lines:?}"
    );
    app.hover = Some(250.5 / 600.0);
    let lines = app.hover_lines();
    assert_eq!(
        lines[2],
        "laptop: some RTTs are upper bounds (timed in user space at one end)"
    );
    app.hover = None;
    let s = &app.offline[0];
    let cols = &s.lane.columns;
    assert!(cols[..200].iter().all(|c| !c.is_gap() && c.is_outage()));
    assert!(cols[..200].iter().all(|c| c.loss_ratio() == Some(1.0)));
    assert_eq!(s.lane.totals.errors, 2000 + 200 * 2);
    assert_eq!(s.lane.totals.lost, 200 * 4);
    // Failed over sent: (2000 + 200 × 6) of (2000 + 2000 + 200 × 8).
    assert_eq!(s.lane.totals.loss_ratio(), Some(3200.0 / 5600.0));
    let lines = zzping_gui::App::legend_lines(&s.lane);
    assert_eq!(lines[1], "loss 57.1 % (800 timeouts, 2400 errors)");
    assert!(
        lines.contains(&"RTT upper bounds: 20 frames".to_string()),
        "{lines:?}"
    );
    let el = canvas(LaneCanvas {
        lane: &s.lane,
        cache: &s.cache,
        view: app.view_range(),
        y: s.y,
        hover: None,
        primary: false,
        plot_width: W,
        drawn_at: &s.drawn_at,
        marks: &[],
    })
    .width(Length::Fill)
    .height(Length::Fill);
    // Scale factor 2: column i is physical x 2i, 2i + 1.
    let img = render(el.into(), (W, H));
    let (h, w) = (img.h, img.w);
    // The unreachable span: the errors' red over the whole height, never grey.
    for x in [20, 200, 380] {
        for y in [40, h / 2, h - 10] {
            assert!(
                near(img.px(x, y), ERROR_LOSS, 2),
                "x {x} y {y}: {:?}",
                img.px(x, y)
            );
        }
    }
    // A flagged frame's column has the amber mark at the bottom, its neighbours not.
    assert!(near(img.px(2 * 250, h - 2), USER_STAMP_MARK, 2));
    assert!(!near(img.px(2 * 255, h - 2), USER_STAMP_MARK, 40));
    // 40-60 s: the mark hangs half the plot (plus its share of errors), timeouts on top.
    for x in (2 * 410..w - 20).step_by(37) {
        assert!(near(img.px(x, 4), LOSS, 2), "x {x}: {:?}", img.px(x, 4));
        let reds = (0..h)
            .filter(|&y| near(img.px(x, y), LOSS, 2) || near(img.px(x, y), ERROR_LOSS, 2))
            .count() as f32;
        // (1 - 2/8) of the plot (3 px padding each side, at scale 2).
        let want = 0.75 * (h as f32 - 12.0);
        assert!(
            (reds - want).abs() <= 4.0,
            "x {x}: {reds} red rows, want {want}"
        );
    }
}

#[test]
fn the_rendered_lane_matches_the_software_reference() {
    // The renderer fills each layer as one path; the software compositor paints the same
    // layers pixel by pixel. Every pixel must agree (to blending rounding), in particular
    // every edge of the stepped outlines, so nothing is blurred, missing or doubled. Both
    // draw the same columns: those are checked against the generated data on their own
    // (`each_column_holds_its_frames_own_statistics`).
    let dir = tempfile::tempdir().unwrap();
    let p = jumpy_host(dir.path());
    let mut app = app_with(&[p], W);
    for sf in [0.0, 20.0] {
        let _ = app.update(Message::ScaleFactor(sf));
        let s = &app.offline[0];
        assert_eq!(s.lane.columns.len(), W as usize);
        let reference = lane_pixels(&s.lane.columns, &app.view_range(), &s.y, W as u32, H as u32);
        let el = canvas(LaneCanvas {
            lane: &s.lane,
            cache: &s.cache,
            view: app.view_range(),
            y: s.y,
            hover: None,
            primary: false,
            plot_width: W,
            drawn_at: &s.drawn_at,
            marks: &[],
        })
        .width(Length::Fill)
        .height(Length::Fill);
        let img = render(el.into(), (W, H));
        let mut worst = (0, 0, 0);
        // Physical pixels at scale 2; the Y labels (text, left) are not in the reference.
        for y in 0..img.h {
            for x in 120..img.w {
                let (lx, ly) = (x / 2, y / 2);
                let i = (ly * W as usize + lx) * 4;
                let p = img.px(x, y);
                for k in 0..3 {
                    let d = (i32::from(p[k]) - i32::from(reference[i + k])).abs();
                    if d > worst.0 {
                        worst = (d, x, y);
                    }
                }
            }
        }
        assert!(worst.0 <= 2, "sf {sf}: worst difference {worst:?}");
    }
}

/// A suspend's text is written across the lane in the middle of its span, in its own
/// colour (the pixels of that colour are there with the mark, and nowhere without it).
#[test]
fn a_suspend_is_written_across_the_lane() {
    let suspend = zzping_gui::marks::Mark {
        t_us: T0 + 20_000_000,
        end_us: T0 + 40_000_000,
        color: zzping_gui::marks::SUSPEND_MARK,
        text: "suspended 20.0 s".into(),
        labels_gap: true,
    };
    let label = zzping_gui::canvas::GAP_LABEL;
    let count = |img: &Image, xs: std::ops::Range<usize>| {
        xs.flat_map(|x| (100..200).map(move |y| (x, y)))
            .filter(|&(x, y)| near(img.px(x, y), label, 40))
            .count()
    };
    let with = render_lane_with(std::slice::from_ref(&suspend));
    let without = render_lane();
    // 20-40 s of 60 s: logical 200-400, physical 400-800; the text is centred at 600.
    let inside = count(&with, 450..750);
    assert!(inside > 50, "{inside} label pixels");
    assert_eq!(count(&without, 450..750), 0);
    // Nothing outside the span.
    assert_eq!(count(&with, 0..380), 0);
    assert_eq!(count(&with, 820..1200), 0);
}
