//! Corrupt, truncated and unreadable inputs: an error banner, the rest stays viewable,
//! nothing panics.

mod common;

use common::{app_with, standard_host};
use iced_test::simulator;
use std::io::Write;
use zzping_gui::{App, Message};

#[test]
fn corrupt_files_give_a_banner_and_good_hosts_stay_viewable() {
    let dir = tempfile::tempdir().unwrap();
    let good = standard_host(dir.path(), "good", false);
    // A host whose day file is garbage.
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let junk: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(bad.join("2026-01-01.zzp"), &junk).unwrap();
    // A host whose file has a torn tail (a crash mid-write).
    let torn = standard_host(dir.path(), "torn", false);
    let torn_file = std::fs::read_dir(&torn)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&torn_file)
        .unwrap()
        .write_all(&[0x9c, 0x01, 0x02])
        .unwrap();
    // A "day file" that cannot be read at all (a directory), and a missing path.
    let unreadable = dir.path().join("unreadable");
    std::fs::create_dir_all(unreadable.join("2026-01-01.zzp")).unwrap();
    let missing = dir.path().join("does-not-exist");

    let mut app = app_with(
        &[good, bad.clone(), torn, unreadable, missing.clone()],
        700.0,
    );
    assert!(app.errors.len() >= 3, "{:#?}", app.errors);
    assert!(
        app.errors.iter().any(|e| e.contains("does-not-exist")),
        "{:#?}",
        app.errors
    );
    assert!(
        app.errors.iter().any(|e| e.contains("bad")),
        "{:#?}",
        app.errors
    );
    assert!(
        app.errors.iter().any(|e| e.contains("torn")),
        "{:#?}",
        app.errors
    );

    // The good host is fully drawn.
    let good_lane = app
        .offline
        .iter()
        .find(|s| s.lane.host.label == "good")
        .unwrap();
    assert_eq!(good_lane.lane.totals.received, 5970);
    assert!(
        good_lane
            .lane
            .columns
            .iter()
            .filter(|c| !c.is_gap())
            .count()
            > 600
    );
    // The torn host shows its intact frames.
    let torn_lane = app
        .offline
        .iter()
        .find(|s| s.lane.host.label == "torn")
        .unwrap();
    assert_eq!(torn_lane.lane.totals.received, 5970);

    // The banner is rendered, next to the lanes.
    let first = format!("⚠ {}", app.errors[0]);
    {
        let mut ui = simulator(app.view());
        ui.find(first.as_str()).expect("banner");
        ui.find("outages 1").expect("lanes still rendered");
    }
    // Interacting still works, at every level, and the banner can be dismissed.
    for f in [0.001, 0.1, 10.0, 1000.0, 1e6] {
        let _ = app.update(Message::Zoom {
            anchor: 0.5,
            factor: f,
        });
        let _ = app.update(Message::Reset);
    }
    let _ = app.update(Message::DismissErrors);
    assert!(app.errors.is_empty());
    let mut ui = simulator(app.view());
    assert!(ui.find(first.as_str()).is_err());
}

#[test]
fn opening_a_bad_path_from_the_field_shows_an_error() {
    let mut app = App::empty(1024.0);
    let _ = app.update(Message::PathChanged("/nonexistent/zzping/data".into()));
    let _ = app.update(Message::OpenPath);
    assert_eq!(app.errors.len(), 1);
    assert!(app.errors[0].contains("/nonexistent/zzping/data"));
    // An empty directory is not data either.
    let dir = tempfile::tempdir().unwrap();
    let _ = app.update(Message::PathChanged(dir.path().display().to_string()));
    let _ = app.update(Message::OpenPath);
    assert!(
        app.errors.iter().any(|e| e.contains("no zzping data")),
        "{:?}",
        app.errors
    );
    let mut ui = simulator(app.view());
    ui.find(format!("⚠ {}", app.errors[0])).expect("banner");
}

#[test]
fn hostile_messages_do_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let p = standard_host(dir.path(), "h", true);
    let mut app = app_with(&[p], 700.0);
    for m in [
        Message::Zoom {
            anchor: f64::NAN,
            factor: f64::INFINITY,
        },
        Message::Zoom {
            anchor: -5.0,
            factor: 0.0,
        },
        Message::Pan(f64::NAN),
        Message::Pan(1e300),
        Message::ZoomTo(f64::NAN, 2.0),
        Message::ZoomTo(0.5, 0.5),
        Message::PlotWidth(f32::NAN),
        Message::PlotWidth(0.0),
        Message::PlotWidth(1e9),
        Message::YZoom(-1.0),
        Message::YZoom(0.0),
        Message::ScaleFactor(-3.0),
        Message::Hover(Some(f64::NAN)),
        Message::Hover(Some(7.0)),
        Message::Home,
        Message::End,
    ] {
        let _ = app.update(m);
        let _ = app.hover_lines();
        let mut ui = simulator(app.view());
        let _ = ui.find("outages 1");
    }
}

/// Peak resident memory of this process (`VmHWM`), bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kb * 1024
}

#[test]
fn a_huge_sparse_sidecar_is_not_read_and_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let host = standard_host(dir.path(), "gw", false);
    let day = std::fs::read_dir(&host)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "zzp"))
        .unwrap();
    // 1.5 GB of holes: reading it whole would take 1.5 GB of memory.
    const HUGE_BYTES: u64 = 1_500_000_000;
    let side = zzping_lib::store::layout::sidecar_path(&day);
    std::fs::File::create(&side)
        .unwrap()
        .set_len(HUGE_BYTES)
        .unwrap();
    let app = app_with(&[host], 700.0);
    // The lane is drawn from the frames, every one of them.
    let lane = app
        .offline
        .iter()
        .find(|s| s.lane.host.label == "gw")
        .unwrap();
    assert_eq!(lane.lane.totals.received, 5970);
    let peak = peak_rss();
    assert!(
        peak < HUGE_BYTES / 4,
        "the viewer peaked at {} MB",
        peak >> 20
    );
    // The sidecar was rebuilt in its place, within its bound.
    let len = std::fs::metadata(&side).unwrap().len();
    let day_len = std::fs::metadata(&day).unwrap().len();
    assert!(
        len <= zzping_lib::pyramid::max_sidecar_len(day_len),
        "{len}"
    );
}
