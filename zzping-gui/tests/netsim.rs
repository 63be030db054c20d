//! The viewer on days recorded by the real daemon (its library, `daemon::run`, in a
//! thread inside a network namespace the test creates) pinging the simulator's hosts
//! (`tests/scenarios/*.toml`), checked against the simulator's truth:
//! - a host that rations its echo replies is tagged "limits ICMP" in its lane header,
//!   its loss drawn, its failures alone not marked as outages, offline and live alike;
//! - for each fault scenario, the spans the truth says failed are drawn as failure (the
//!   red of the lanes) and nothing else is.
//!
//! Needs root (a network namespace and a TUN device). Without it the tests say why and
//! skip, unless `CI` is set, where they fail. Bounded: a few seconds of recording per
//! scenario at low rates.

mod common;

use common::render;
use iced::Length;
use iced::widget::canvas;
use iced_test::simulator;
use std::path::Path;
use zzping_gui::canvas::{ERROR_LOSS, LOSS, LaneCanvas};
use zzping_gui::limits::LIMITS_ICMP_TAG;
use zzping_gui::model::{Lane, Source};
use zzping_gui::timeline::TimeView;
use zzping_gui::{App, Mode};
use zzping_lib::codec::QFrame;
use zzping_lib::live::{HostMeta, LiveEvent};
use zzping_lib::store::{DayFile, HostFrames};
use zzping_netsim::truth::{NetAction, ReplyKind, Truth, read_truth};
use zzping_netsim::{Scenario, Simulator, sys};

/// The daemon's frame period, µs.
const PERIOD_US: u64 = 100_000;
/// Lane size of the renders, logical px (scale factor 2 in iced_test).
const LANE_H: f32 = 150.0;

/// How the daemon pings in a recording.
struct Pinging<'a> {
    targets: &'a [&'a str],
    /// Frame period, µs.
    period_us: u64,
    rate: u32,
    timeout_ms: u32,
    secs: f64,
}

/// The text of `tests/scenarios/<file>`.
fn scenario_text(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/scenarios")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Records `scenario` (a file of `tests/scenarios`) with the real daemon inside a fresh
/// namespace served by the simulator; returns the work directory (`data/`, and the
/// truth in `truth.jsonl`).
fn record(scenario: &str, how: &Pinging) -> tempfile::TempDir {
    record_text(&scenario_text(scenario), how)
}

/// [`record`] of a scenario given as text.
fn record_text(scenario: &str, how: &Pinging) -> tempfile::TempDir {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("scenario.toml");
    std::fs::write(&file, scenario).unwrap();
    let scenario = Scenario::load(&file).expect("scenario");
    let (data, truth) = (work.path().join("data"), work.path().join("truth.jsonl"));
    let mut args: Vec<String> = [
        "zzping-daemon",
        "--config",
        "none",
        "--live",
        "off",
        "--data-dir",
        data.to_str().unwrap(),
    ]
    .map(String::from)
    .into();
    for t in how.targets {
        args.extend(["--target".into(), t.to_string()]);
    }
    args.extend([
        "--period-ms".into(),
        (how.period_us / 1000).to_string(),
        "--rate".into(),
        how.rate.to_string(),
        "--timeout-ms".into(),
        how.timeout_ms.to_string(),
        "--duration".into(),
        how.secs.to_string(),
    ]);
    std::thread::spawn(move || {
        sys::unshare_net().expect("unshare(CLONE_NEWNET)");
        let sim = Simulator::start(&scenario, Some(&truth)).expect("simulator");
        use clap::Parser;
        let cli = zzping_daemon::config::Cli::try_parse_from(&args).expect("daemon flags");
        let cfg = zzping_daemon::config::load(&cli).expect("daemon config");
        // Its report (a host that never answered) is not checked here; a failure to
        // run is.
        zzping_daemon::daemon::run(cli, cfg).expect("daemon run");
        sim.stop().expect("simulator stop");
    })
    .join()
    .expect("daemon thread");
    work
}

/// The day files of host `target` under `data`.
fn files_of(data: &Path, target: &str) -> Vec<DayFile> {
    let dir = data.join(zzping_lib::store::layout::host_dir_name(target));
    let mut v: Vec<DayFile> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "zzp"))
        .map(DayFile::new)
        .collect();
    v.sort_by(|a, b| a.path.cmp(&b.path));
    v
}

/// Every frame of host `target`, in time order.
fn frames_of(data: &Path, target: &str) -> Vec<QFrame> {
    frames_and_precision(data, target).0
}

/// Every frame of host `target`, in time order, and the precision of their codes.
fn frames_and_precision(data: &Path, target: &str) -> (Vec<QFrame>, f64) {
    let mut hf = HostFrames::new(files_of(data, target), 0, u64::MAX);
    let mut out = Vec::new();
    let mut precision = None;
    while let Some(f) = hf.next_frame().expect("frame") {
        out.push(f.clone());
        precision = precision.or_else(|| hf.quantizer().map(|q| q.precision()));
    }
    assert!(hf.issues().is_empty(), "{target}: {:?}", hf.issues());
    (out, precision.expect("a quantizer"))
}

/// The offline app on `data` (every host directory), its view `[from, to)` one column
/// per frame of `period_us`.
fn offline_app(data: &Path, from: u64, to: u64, period_us: u64) -> App {
    let columns = ((to - from) / period_us) as f32;
    let mut app = App::empty(columns + 400.0);
    app.plot_width = columns;
    app.open_blocking(&[data.to_path_buf()]);
    app.offline_view = TimeView::new(from as f64, to as f64);
    app.offline_pristine = false;
    app.recompute();
    app
}

/// The lane of host `target` among `lanes`.
fn lane<'a>(lanes: &'a [zzping_gui::app::LaneSlot], target: &str) -> &'a zzping_gui::app::LaneSlot {
    lanes
        .iter()
        .find(|s| s.lane.host.label == target)
        .unwrap_or_else(|| panic!("no lane for {target}"))
}

/// Renders a lane alone (iced_test, tiny-skia) over `view`.
fn render_lane(s: &zzping_gui::app::LaneSlot, view: TimeView, width: f32) -> common::Image {
    let el = canvas(LaneCanvas {
        lane: &s.lane,
        cache: &s.cache,
        view,
        y: s.y,
        hover: None,
        primary: false,
        plot_width: width,
        drawn_at: &s.drawn_at,
        marks: &[],
    })
    .width(Length::Fill)
    .height(Length::Fill);
    render(el.into(), (width, LANE_H))
}

fn near(p: [u8; 3], c: iced::Color, tol: i32) -> bool {
    let c = c.into_rgba8();
    (0..3).all(|i| (i32::from(p[i]) - i32::from(c[i])).abs() <= tol)
}

/// True when pixel `p` is the red of failures (timeouts or errors).
fn is_failure_red(p: [u8; 3]) -> bool {
    near(p, LOSS, 3) || near(p, ERROR_LOSS, 3)
}

/// The columns whose outage mark is set.
fn outage_columns(l: &Lane) -> Vec<usize> {
    (0..l.columns.len())
        .filter(|&i| l.columns[i].has_outage)
        .collect()
}

/// Pings per second to each host of the isp-ratelimit recording: 5 requests a frame to
/// isp-edge, which answers one of them (10 a second). The judgement counts its replies
/// over windows of 4 frames (4 replies, 16 failures expected): a reply that the
/// scheduling of the simulator or the daemon moves across a frame boundary changes a
/// window by one at most, and only at the window's boundary, against a chance variance
/// of 3.2 replies²: a dispersion index about 0.1, far below the threshold of a host that
/// limits ICMP (0.5). (Frame by frame, one reply each, such a move made a frame of two
/// beside a frame of none, and the index read 0.43 to 0.52.)
const RATIONED_RATE: u32 = 50;
/// Reply timeout of that recording, ms: isp-edge answers after 25 ms plus exponential
/// jitter (mean 8 ms), so a reply comes later than this about once in 20 (more on a
/// busy machine), and the frames that held one reply then fail entirely, alone (the
/// hosts beyond it answer in 12-17 ms).
const RATIONED_TIMEOUT_MS: u32 = 50;
/// Length of that recording, s: the judgement needs 50 windows after the first 5 s of
/// data, which it leaves out (the scenario's token bucket starts full and lets 10
/// replies through at once): 20 s of windows of 4 frames, 30 s of 6 frames, which it
/// takes when more than about a fifth of isp-edge's replies come too late (a busy
/// machine).
const RATIONED_SECS: f64 = 40.0;

/// isp-edge rations its replies (`tests/scenarios/isp-ratelimit.toml`: 10 a second at
/// most) and answers slowly (25 ms + exponential jitter): some frames lose their one
/// reply to the timeout too, and fail entirely, alone, while the hosts beyond it answer
/// everything.
/// Offline and live, its lane is tagged "limits ICMP" (no other is), its loss is drawn
/// in every frame that had some, and its runs of failed frames that no other host
/// shares (the sidecar's outage index has them) are not marked as outages.
#[test]
fn a_host_that_rations_its_replies_is_tagged_and_its_lone_failures_are_no_outages() {
    zzping_testkit::require!(zzping_testkit::privileges::tun());
    const EDGE: &str = "198.19.0.1";
    let targets = ["198.18.0.254", EDGE, "198.19.8.8", "198.19.8.9"];
    let work = record(
        "isp-ratelimit.toml",
        &Pinging {
            targets: &targets,
            period_us: PERIOD_US,
            rate: RATIONED_RATE,
            timeout_ms: RATIONED_TIMEOUT_MS,
            secs: RATIONED_SECS,
        },
    );
    let data = work.path().join("data");
    let truth = read_truth(&work.path().join("truth.jsonl")).expect("truth");
    // The truth: isp-edge's requests were rationed, the others all answered.
    for t in targets {
        let reqs = truth.requests_to(t.parse().unwrap());
        let answered = reqs.iter().filter(|r| r.fate.is_answered()).count();
        if t == EDGE {
            assert!(
                answered < reqs.len() * 2 / 3,
                "{t}: {answered} of {}",
                reqs.len()
            );
        } else {
            assert_eq!(answered, reqs.len(), "{t}");
        }
    }

    let frames: Vec<(&str, (Vec<QFrame>, f64))> = targets
        .iter()
        .map(|t| (*t, frames_and_precision(&data, t)))
        .collect();
    let from = frames.iter().map(|(_, f)| f.0[0].start_us).min().unwrap();
    let to = frames
        .iter()
        .map(|(_, f)| f.0.last().unwrap().end_us())
        .max()
        .unwrap();
    let column = |t_us: u64| ((t_us - from) / PERIOD_US) as usize;
    let app = offline_app(&data, from, to, PERIOD_US);
    let view = app.view_range();
    // The sidecars' outage indexes, as columns; isp-edge's runs that no other host's
    // run touches are the ones to hide.
    let index_columns = |t: &str| -> Vec<Vec<usize>> {
        let Source::Files(days) = &lane(&app.offline, t).lane.source else {
            panic!("files")
        };
        days.iter()
            .flat_map(|d| match &d.state {
                zzping_gui::model::DayState::Loaded(p) => p.outages.clone(),
                _ => panic!("day not loaded"),
            })
            .map(|(a, b)| (column(a)..column(b - 1) + 1).collect())
            .collect()
    };
    let others: Vec<usize> = targets
        .iter()
        .filter(|&&t| t != EDGE)
        .flat_map(|t| index_columns(t).into_iter().flatten())
        .collect();
    let lone: Vec<Vec<usize>> = index_columns(EDGE)
        .into_iter()
        .filter(|run| {
            run.iter()
                .all(|c| !others.iter().any(|o| o.abs_diff(*c) <= 1))
        })
        .collect();
    assert!(
        !lone.is_empty(),
        "isp-edge failed no frame entirely on its own: nothing to hide"
    );
    let edge_frames = &frames[1].1.0;
    // For a failure message: how isp-edge's replies spread (what the judgement reads).
    let spread = {
        let mut r = zzping_lib::outage::HostRuns::new();
        let mut hist = std::collections::BTreeMap::new();
        for f in edge_frames {
            r.add(f);
            *hist.entry((f.sent, f.received())).or_insert(0) += 1;
        }
        let h = r.finish();
        format!(
            "{:?}, down share {:?}, (sent, received) -> frames {hist:?}",
            h.dispersion.judge(&Default::default()),
            h.down_share()
        )
    };

    eprintln!("isp-edge: {spread}");
    let check = |app: &App, lanes: &[zzping_gui::app::LaneSlot], mode: &str| {
        for t in targets {
            let s = lane(lanes, t);
            let lines = App::legend_lines(&s.lane);
            assert_eq!(
                lines.iter().any(|l| l == LIMITS_ICMP_TAG),
                t == EDGE,
                "{mode} {t}: {lines:?}; isp-edge: {spread}"
            );
        }
        let mut ui = simulator(app.view());
        ui.find(LIMITS_ICMP_TAG).expect("the tag rendered");
        let s = lane(lanes, EDGE);
        let marked = outage_columns(&s.lane);
        for run in &lone {
            assert!(
                run.iter().all(|c| !marked.contains(c)),
                "{mode}: isp-edge's lone run at columns {run:?} marked as an outage"
            );
        }
        // Its loss is still drawn: every frame with a failure is red at the top.
        let img = render_lane(s, app.view_range(), s.lane.columns.len() as f32);
        for f in edge_frames.iter().filter(|f| f.lost + f.errors > 0) {
            let x = 2 * column(f.start_us);
            assert!(
                is_failure_red(img.px(x, 3)) && is_failure_red(img.px(x + 1, 3)),
                "{mode}: isp-edge's frame at column {} lost {} of {}, drawn {:?}",
                column(f.start_us),
                f.lost + f.errors,
                f.sent,
                img.px(x, 3)
            );
        }
    };
    check(&app, &app.offline, "offline");

    // Live: the same frames, streamed.
    let mut live = App::empty(app.plot_width + 400.0);
    live.plot_width = app.plot_width;
    live.mode = Mode::Live;
    for (h, (t, (fs, precision))) in frames.iter().enumerate() {
        let host = h as u32 + 1;
        live.live_event(
            0,
            LiveEvent::Host {
                host,
                meta: HostMeta {
                    label: t.to_string(),
                    address: t.parse().unwrap(),
                    name: None,
                    period_us: PERIOD_US as u32,
                    precision: *precision,
                },
            },
        );
        for f in fs {
            live.live_event(
                0,
                LiveEvent::Frame {
                    host,
                    frame: f.clone(),
                },
            );
        }
    }
    live.follow = false;
    live.live_view = view;
    live.recompute();
    check(&live, &live.live, "live");
    // Live and offline draw the same: loss, outage marks.
    for t in targets {
        let (a, b) = (lane(&app.offline, t), lane(&live.live, t));
        assert_eq!(a.lane.totals.lost, b.lane.totals.lost, "{t}");
        assert_eq!(a.lane.totals.received, b.lane.totals.received, "{t}");
        assert_eq!(outage_columns(&a.lane), outage_columns(&b.lane), "{t}");
    }
}

/// Longer than the simulator can take to read a request sent before a change of the
/// routes (its read loop runs every few ms; a busy machine delays it by tens), µs.
const READ_LAG_US: u64 = 200_000;

#[derive(Debug)]
/// A window in which this machine had no path to a host: every send failed in `sure`
/// (from the change acknowledged to the restore begun), some may have in `maybe` (from
/// the change begun to the restore acknowledged), µs.
struct Window {
    sure: (u64, u64),
    maybe: (u64, u64),
}

/// The spans `[start, end)` in which the truth says requests to `target` failed, µs:
/// each request the simulator read that got no echo reply written within `timeout_us`
/// (a drop, an ICMP error, a reply not written because the link was down, or written
/// late), as the instant it was read;
/// and the windows in which this machine could not reach the host (routes lost, link
/// down, carrier off), from the `net` events, unless the simulator answered the host
/// during the window (the change did not concern it).
fn truth_failures(t: &Truth, target: &str, timeout_us: u64) -> (Vec<u64>, Vec<Window>) {
    let addr = target.parse().unwrap();
    let reqs = t.requests_to(addr);
    let echo = |id: u64| {
        t.replies_for(id)
            .iter()
            .any(|r| r.kind == ReplyKind::EchoReply)
    };
    // An echo reply written later than the timeout (a busy machine) is a failure too.
    let echo_in_time = |id: u64, read_us: u64| {
        t.replies_for(id)
            .iter()
            .any(|r| r.kind == ReplyKind::EchoReply && r.sent_us < read_us + timeout_us)
    };
    let failed: Vec<u64> = reqs
        .iter()
        .filter(|r| !echo_in_time(r.id, r.time_us))
        .map(|r| r.time_us)
        .collect();
    let net: Vec<_> = t.net().collect();
    let mut windows = Vec::new();
    for (down, up) in [
        (NetAction::RoutesLost, NetAction::RoutesRestored),
        (NetAction::LinkDown, NetAction::LinkUp),
        (NetAction::CarrierOff, NetAction::CarrierOn),
    ] {
        let starts = net.iter().filter(|e| e.action == down);
        let ends = net.iter().filter(|e| e.action == up);
        for (a, b) in starts.zip(ends) {
            let w = Window {
                sure: (a.time_us, b.begin_us),
                maybe: (a.begin_us, b.time_us),
            };
            // A request sent just before the change may be read just after it: only
            // answers read well inside the window say the change did not concern it.
            let answered_inside = reqs
                .iter()
                .any(|r| (w.sure.0 + READ_LAG_US..w.sure.1).contains(&r.time_us) && echo(r.id));
            if !answered_inside {
                windows.push(w);
            }
        }
    }
    // A default route moved: sends may fail while the old route is gone and the new
    // one not in place yet, nothing says they must.
    for e in net.iter().filter(|e| e.action == NetAction::RouteChange) {
        windows.push(Window {
            sure: (0, 0),
            maybe: (e.begin_us, e.time_us),
        });
    }
    (failed, windows)
}

/// Records `scenario` pinging `targets` at `rate`/s for `secs` s, opens it in the viewer one
/// column per frame, and checks each lane's pixels against the truth: a frame holding a
/// failed request, or inside a window without a path, is red at the top; a frame with
/// no failure within one frame of it (the simulator's read time and the daemon's send
/// time differ by the path's delay) has no red below the outage caps (which reach one
/// column into each neighbour). Returns the number of frames checked red and clean.
fn failures_are_red_and_nothing_else(
    scenario: &str,
    targets: &[&str],
    rate: u32,
    secs: f64,
) -> (usize, usize) {
    let work = record(
        scenario,
        &Pinging {
            targets,
            period_us: PERIOD_US,
            rate,
            timeout_ms: TIMEOUT_MS,
            secs,
        },
    );
    let data = work.path().join("data");
    let truth = read_truth(&work.path().join("truth.jsonl")).expect("truth");
    let starts: Vec<u64> = targets
        .iter()
        .map(|t| frames_of(&data, t).first().map_or(u64::MAX, |f| f.start_us))
        .collect();
    let ends: Vec<u64> = targets
        .iter()
        .map(|t| frames_of(&data, t).last().map_or(0, QFrame::end_us))
        .collect();
    let from = *starts.iter().min().unwrap();
    let to = *ends.iter().max().unwrap();
    assert!(to > from, "{scenario}: no frames");
    let app = offline_app(&data, from, to, PERIOD_US);
    let view = app.view_range();
    let (mut red_checked, mut clean_checked) = (0, 0);
    for t in targets {
        let s = lane(&app.offline, t);
        let n = s.lane.columns.len();
        assert_eq!(n as u64, (to - from) / PERIOD_US, "{scenario} {t}");
        let (failed, windows) = truth_failures(&truth, t, u64::from(TIMEOUT_MS) * 1000);
        let frames = frames_of(&data, t);
        let img = render_lane(s, view, n as f32);
        // Rows below the outage cap (at most 12 logical px, 24 physical).
        let below_cap = 26..img.h - 2;
        for f in &frames {
            if f.sent == 0 {
                continue;
            }
            let i = ((f.start_us - from) / PERIOD_US) as usize;
            let (a, b) = (f.start_us, f.end_us());
            let in_window = windows.iter().any(|w| w.sure.0 <= a && b <= w.sure.1);
            let holds_failure = failed.iter().any(|&r| (a..b).contains(&r));
            let failure_near = failed
                .iter()
                .any(|&r| r + PERIOD_US >= a && r < b + PERIOD_US)
                || windows
                    .iter()
                    .any(|w| w.maybe.0 < b + PERIOD_US && a < w.maybe.1 + PERIOD_US);
            let xs = [2 * i, 2 * i + 1];
            if in_window || holds_failure {
                red_checked += 1;
                assert!(
                    f.received() < f.sent || f.lost + f.errors > 0,
                    "{scenario} {t} frame {i}: the truth says a request failed; the frame {f:?}"
                );
                for x in xs {
                    assert!(
                        is_failure_red(img.px(x, 3)),
                        "{scenario} {t} column {i}: {:?} at the top, not the red of failures",
                        img.px(x, 3)
                    );
                }
            } else if !failure_near {
                clean_checked += 1;
                for x in xs {
                    for y in below_cap.clone() {
                        assert!(
                            !is_failure_red(img.px(x, y)),
                            "{scenario} {t} column {i} row {y}: red where the truth has no failure; \
                             frame {f:?}, windows {windows:?}"
                        );
                    }
                }
            }
        }
    }
    (red_checked, clean_checked)
}

/// Pings per second per host of the scenario checks: low, one request per frame.
const RATE: u32 = 10;
/// Reply timeout of the scenario checks, ms (the slowest host answers after 150 ms).
const TIMEOUT_MS: u32 = 1000;

/// One test per fault scenario of issue 14 (and 19's route change and rationed ICMP).
macro_rules! scenario_test {
    ($name:ident, $file:expr, $targets:expr, $rate:expr, $secs:expr, $min_red:expr) => {
        #[test]
        fn $name() {
            zzping_testkit::require!(zzping_testkit::privileges::tun());
            let (red, clean) = failures_are_red_and_nothing_else($file, &$targets, $rate, $secs);
            let min_red: usize = $min_red;
            assert!(
                red >= min_red,
                "{}: only {red} failed frames checked",
                $file
            );
            assert!(clean > 0, "{}: no clean frame checked", $file);
        }
    };
}

scenario_test!(
    router_errors_are_drawn_red_and_nothing_else,
    "router-errors.toml",
    ["198.18.0.20", "198.19.0.1", "198.19.8.8", "198.19.8.9"],
    RATE,
    12.5,
    40
);
scenario_test!(
    route_loss_is_drawn_red_and_nothing_else,
    "route-loss.toml",
    ["198.18.0.254", "198.18.0.20", "198.19.8.8"],
    RATE,
    13.0,
    40
);
scenario_test!(
    link_flap_is_drawn_red_and_nothing_else,
    "link-flap.toml",
    ["198.18.0.254", "198.18.0.20", "198.19.8.8"],
    RATE,
    10.0,
    40
);
scenario_test!(
    route_change_is_drawn_red_and_nothing_else,
    "route-change.toml",
    ["198.18.0.254", "198.18.1.254", "198.19.8.8"],
    RATE,
    10.0,
    0
);
scenario_test!(
    ttl_path_is_drawn_red_and_nothing_else,
    "ttl-path.toml",
    ["198.18.0.254", "198.19.1.1", "198.19.2.1", "198.19.8.8"],
    RATE,
    5.0,
    20
);
scenario_test!(
    isp_ratelimit_is_drawn_red_and_nothing_else,
    "isp-ratelimit.toml",
    ["198.18.0.254", "198.19.0.1", "198.19.8.8"],
    // Faster than isp-edge's 10 replies a second.
    20,
    6.0,
    10
);
