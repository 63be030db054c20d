//! Open and redraw benchmark of the viewer (headless, tiny-skia).
//!
//! ```text
//! ICED_TEST_BACKEND=tiny-skia cargo bench -p zzping-gui --bench timeline            # 1 day
//! ZZPING_BENCH_DAYS=7 ICED_TEST_BACKEND=tiny-skia cargo bench -p zzping-gui --bench timeline
//! ```
//!
//! Environment: `ZZPING_BENCH_DAYS` (default 1), `ZZPING_BENCH_HOSTS` (default 3),
//! `ZZPING_BENCH_DIR` (default `target/zzping-gui-bench-<days>d`; kept between runs, so
//! the data set and its sidecars are generated once), `ZZPING_BENCH_ONLY=views` (only the
//! per-zoom figures, for profiling).
//!
//! Prints: generation time, first open (builds the sidecars), open with sidecars (time to
//! the first picture, then the app's whole open, and peak RSS, in a fresh child
//! process), live mode with 10 hosts, and per zoom level (the whole data set, 1 day,
//! 1 hour, 5 minutes, 10 seconds) the median time to recompute the columns after a pan,
//! to draw and rasterize the lanes at 1600×900 (`gui.redraw_ms_p50_<zoom>`), and both
//! (`gui.pan_ms_p50_<zoom>`).

use std::path::{Path, PathBuf};
use std::time::Instant;
use zzping_gui::App;
use zzping_gui::timeline::TimeView;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn peak_rss_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

type Renderer = iced_test::renderer::Renderer;

fn renderer() -> Renderer {
    use iced_test::core::renderer::Headless;
    iced::futures::executor::block_on(<Renderer as Headless>::new(
        iced::Font::with_name("Fira Sans"),
        iced::Pixels(16.0),
        Some("tiny-skia"),
    ))
    .expect("tiny-skia renderer")
}

/// Draws every lane as the window lays them out at 1600×900 (scale 1) and rasterizes the
/// frame with tiny-skia: the per-redraw cost when the view changed (the widgets around
/// the canvas are a few dozen glyphs and are not included).
fn draw(r: &mut Renderer, app: &App) {
    use iced::widget::canvas::Frame;
    use iced::{Point, Rectangle, Size};
    use iced_test::core::renderer::Headless;
    use iced_test::renderer::geometry::Renderer as _;
    let lanes = if app.mode == zzping_gui::Mode::Live {
        &app.live
    } else {
        &app.offline
    };
    iced_test::core::Renderer::reset(r, Rectangle::with_size(Size::new(1600.0, 900.0)));
    let x0 = 10.0 + zzping_gui::app::LEGEND_WIDTH + 8.0;
    let h = ((900.0 - 150.0) / lanes.len().max(1) as f32 - 4.0).clamp(40.0, 400.0);
    for (i, s) in lanes.iter().enumerate() {
        let bounds = Rectangle::new(
            Point::new(x0, 70.0 + i as f32 * (h + 4.0)),
            Size::new(app.plot_width, h),
        );
        let mut f = Frame::with_bounds(r, bounds);
        zzping_gui::canvas::draw_lane(&mut f, &s.lane.columns, &app.view_range(), &s.y);
        r.draw_geometry(f.into_geometry());
    }
    let px = r.screenshot(iced::Size::new(1600, 900), 1.0, iced::Color::BLACK);
    assert_eq!(px.len(), 1600 * 900 * 4);
}

/// Keeps freed memory in the process (glibc: no `mmap` for blocks up to 32 MB, no trim
/// below 512 MB free) for the redraw figures.
///
/// Each `screenshot` allocates three frame-sized buffers (5.8 + 5.8 + 1.4 MB at
/// 1600×900) where the window draws into one persistent buffer. Whether glibc serves
/// them from memory the process already has or maps fresh zeroed pages depends on what
/// else was allocated and freed before (page faults of up to 5 ms per frame, varying
/// from one build or run to the next); with this setting the figures measure drawing,
/// not the allocator's luck. It changes no drawing code, and the open and live figures
/// are measured before it is set.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called from the only thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
    }
}

fn open(dir: &Path) -> (App, f64) {
    let t = Instant::now();
    let mut app = App::empty(1600.0);
    app.plot_width = 1600.0 - zzping_gui::app::LEGEND_WIDTH - 28.0;
    app.open_blocking(&[dir.to_path_buf()]);
    (app, t.elapsed().as_secs_f64())
}

/// Time to the first picture: the sidecars (with the outage index), as the window loads
/// them.
fn open_picture(dir: &Path) -> (usize, f64) {
    let t = Instant::now();
    let (lanes, _) = zzping_gui::data::open_blocking(&[dir.to_path_buf()]);
    (lanes.len(), t.elapsed().as_secs_f64())
}

/// Live mode with 10 hosts: every [`zzping_gui::live::BATCH`] a batch of frames arrives
/// (five per host at 100 ms frames), the lanes are recomputed and the window is drawn.
/// Returns the median cost of one batch (ms).
fn live_batch_ms() -> f64 {
    use zzping_lib::live::{HostMeta, LiveEvent};
    use zzping_lib::synth::{Synth, SynthProfile};
    let mut app = App::empty(1600.0);
    app.plot_width = 1600.0 - zzping_gui::app::LEGEND_WIDTH - 28.0;
    app.mode = zzping_gui::Mode::Live;
    let now = zzping_lib::file::wall_clock_us();
    let start = now - 300_000_000;
    let q = zzping_lib::quantizer::Quantizer::new(0.01).expect("quantizer");
    let mut synths: Vec<Synth> = (0..10)
        .map(|h| {
            app.live_event(
                0,
                LiveEvent::Host {
                    host: h,
                    meta: HostMeta {
                        label: format!("host-{h}"),
                        address: std::net::Ipv4Addr::new(192, 0, 2, h as u8 + 1).into(),
                        name: None,
                        period_us: 100_000,
                        precision: 0.01,
                    },
                },
            );
            Synth::new(SynthProfile::wifi(), u64::from(h), start)
        })
        .collect();
    let mut f = zzping_lib::frame::Frame::new(start, 100_000);
    let mut push_all = |app: &mut App| {
        for (h, s) in synths.iter_mut().enumerate() {
            s.next_frame(&mut f);
            let mut qf = zzping_lib::codec::QFrame::default();
            qf.set_from(&f, &q);
            app.live_event(
                0,
                LiveEvent::Frame {
                    host: h as u32,
                    frame: qf,
                },
            );
        }
    };
    // Prefill: five minutes.
    for _ in 0..3000 {
        push_all(&mut app);
    }
    let mut r = renderer();
    let mut times = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        // 500 ms of frames: five per host.
        for _ in 0..5 {
            push_all(&mut app);
        }
        app.recompute();
        let _ = app.view();
        draw(&mut r, &app);
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    median(times)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--open-only") {
        let dir = PathBuf::from(&args[i + 1]);
        let (hosts, picture) = open_picture(&dir);
        let (_, full) = open(&dir);
        println!("{picture:.3} {:.1} {hosts} {full:.3}", peak_rss_mb());
        return;
    }
    if args.iter().any(|a| a == "--list" || a == "--test") {
        // `cargo test --benches` / `cargo bench -- --list`: nothing to list or check.
        return;
    }
    let days = env_u64("ZZPING_BENCH_DAYS", 1).max(1);
    let hosts = env_u64("ZZPING_BENCH_HOSTS", 3).clamp(1, 3) as usize;
    let dir = std::env::var("ZZPING_BENCH_DIR").map_or_else(
        |_| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../target")
                .join(format!("zzping-gui-bench-{days}d-{hosts}h"))
        },
        PathBuf::from,
    );
    let end = 1_767_225_600_000_000u64; // 2026-01-01 UTC
    let dur = days * 86_400_000_000;
    if !dir.exists() {
        let t = Instant::now();
        let n = zzping_gui::demo::write_demo(&dir, end - dur, dur, hosts).expect("write data");
        println!(
            "generated {n} frames ({days} d × {hosts} hosts) in {:.1} s into {}",
            t.elapsed().as_secs_f64(),
            dir.display()
        );
        let (_, secs) = open(&dir);
        println!("first open (builds sidecars): {secs:.2} s");
    }
    // `ZZPING_BENCH_ONLY=views`: only the per-zoom redraw figures (for profiling).
    let only_views = std::env::var("ZZPING_BENCH_ONLY").is_ok_and(|v| v == "views");
    if !only_views {
        open_and_live_figures(&dir, days, hosts);
    }
    views_figures(&dir, days);
}

/// Open time and RSS (in a fresh child process), then live mode. `gui.outage_index_s`
/// is the app's whole open: the outage index comes with the sidecars since it is kept in
/// them (it used to be a second read of every day file).
fn open_and_live_figures(dir: &Path, days: u64, hosts: usize) {
    let out = std::process::Command::new(std::env::current_exe().expect("exe"))
        .arg("--open-only")
        .arg(dir)
        .output()
        .expect("run child");
    let line = String::from_utf8_lossy(&out.stdout);
    // Machine-readable figures for zzping-bench's gui suite: `FIGURE name value unit`.
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() >= 4 {
        println!("FIGURE gui.open_s_{days}d_{hosts}h {} s", f[0]);
        println!("FIGURE gui.open_rss_mb_{days}d_{hosts}h {} MB", f[1]);
        println!("FIGURE gui.outage_index_s_{days}d_{hosts}h {} s", f[3]);
    }
    let mut it = line.split_whitespace();
    println!(
        "open with sidecars: first picture {} s, peak RSS {} MB, {} hosts; the app's open (outage index included) {} s",
        it.next().unwrap_or("?"),
        it.next().unwrap_or("?"),
        it.next().unwrap_or("?"),
        it.next().unwrap_or("?")
    );

    let live = live_batch_ms();
    println!(
        "FIGURE gui.live_cpu_pct_10_hosts {:.2} %",
        live / zzping_gui::live::BATCH.as_secs_f64() / 10.0
    );
    println!(
        "live, 10 hosts: {live:.1} ms per {} ms batch (frames in, recompute, view, draw + rasterize 1600×900) = {:.1} % of one core",
        zzping_gui::live::BATCH.as_millis(),
        live / zzping_gui::live::BATCH.as_secs_f64() / 10.0
    );
}

/// Per zoom level, from the whole data set to 10 s: the median time to recompute the
/// columns after a pan, to redraw (view + draw + rasterize), and both (a pan as the user
/// sees it). The view moves as in a drag back and forth: every step lands on a position
/// not seen before (so no cache of a previous view can answer it), within ±5 % of the
/// middle of the data.
fn views_figures(dir: &Path, days: u64) {
    keep_freed_memory();
    let mut all_render = Vec::new();
    let (mut app, _) = open(dir);
    let (a, b) = app.extent().expect("data");
    let widest = if days == 1 {
        "1 day".to_string()
    } else {
        format!("{days} days")
    };
    let mut views = vec![(widest, (b - a) as f64)];
    for (name, span) in [
        ("1 day", 86_400e6),
        ("1 hour", 3_600e6),
        ("5 min", 300e6),
        ("10 s", 10e6),
    ] {
        if span < (b - a) as f64 * 0.9 {
            views.push((name.to_string(), span));
        }
    }
    for (name, span) in views {
        let mid = (a + b) as f64 / 2.0;
        app.offline_view = TimeView::new(mid - span / 2.0, mid + span / 2.0);
        app.offline_pristine = false;
        app.recompute();
        let mut r = renderer();
        let mut recompute = Vec::new();
        let mut render = Vec::new();
        let mut pan = Vec::new();
        let mut pos = 0.0f64;
        for i in 1..=21 {
            let next = 0.05 * (f64::from(i) * 0.7).sin();
            let t = Instant::now();
            let _ = app.update(zzping_gui::Message::Pan(next - pos));
            let rc = t.elapsed().as_secs_f64() * 1e3;
            pos = next;
            let t = Instant::now();
            let _ = app.view();
            draw(&mut r, &app);
            let rd = t.elapsed().as_secs_f64() * 1e3;
            recompute.push(rc);
            render.push(rd);
            pan.push(rc + rd);
        }
        let key = name.replace(' ', "_");
        println!(
            "FIGURE gui.redraw_ms_p50_{key} {:.3} ms",
            median(render.clone())
        );
        println!("FIGURE gui.pan_ms_p50_{key} {:.3} ms", median(pan.clone()));
        all_render.extend_from_slice(&render);
        println!(
            "view {name:>6}: level {:>12}, pan → recompute median {:.2} ms, view + draw + rasterize 1600×900 median {:.1} ms, pan + redraw median {:.1} ms",
            match app.offline[0].lane.level_us {
                0 => "raw frames".to_string(),
                w => format!("{} s", w / 1_000_000),
            },
            median(recompute),
            median(render),
            median(pan)
        );
    }
    println!("FIGURE gui.redraw_ms_p50 {:.3} ms", median(all_render));
}
