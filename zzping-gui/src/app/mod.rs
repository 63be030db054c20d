//! The application: state, messages and `update` (the window's widgets are
//! [`crate::window`]'s).
//!
//! `update` never reads a file in the window: opening, the day pyramids and the raw
//! frames of the fine levels are read by background tasks ([`crate::load`]) whose results
//! come back as messages; until then the lanes keep their previous pictures.

use crate::canvas::Gesture;
use crate::config::LiveTarget;
use crate::data::{self, FoundHost};
use crate::live::{DaemonKey, LiveUpdate};
use crate::load::{self, DiskLoader, FineData, FineKey, FineRequest, Loader};
use crate::model::{DayState, Lane, Source};
use crate::timeline::{TimeView, YScale};
use iced::widget::canvas::Cache;
use iced::{Task, window};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use zzping_lib::outage::HostRuns;

/// Width of the legend column, px.
pub const LEGEND_WIDTH: f32 = 230.0;
/// Height of a lane when there are more than [`MAX_FILL_LANES`] (they then scroll), px.
pub const LANE_HEIGHT: f32 = 150.0;
/// Up to this many lanes share the window's height.
pub const MAX_FILL_LANES: usize = 6;
/// Frames drawn in the layout to share without the picture coming back, after which
/// "Save PNG" gives up.
const CAPTURE_GIVE_UP_FRAMES: u8 = 120;
/// Default span shown in live mode once there is that much data, µs (5 minutes).
pub const LIVE_SPAN_US: f64 = 300e6;
/// Shortest span the live view fits to while data arrives, µs.
pub const MIN_FIT_SPAN_US: f64 = 10e6;

/// Which data the timeline shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Files on disk.
    Offline,
    /// Streams from daemons.
    Live,
}

/// Start-up configuration (from the command line).
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Data directories, host directories or `.zzp` files to open.
    pub paths: Vec<PathBuf>,
    /// Daemons to watch.
    pub live: Vec<LiveTarget>,
    /// Seconds of history to ask daemons for.
    pub prefill_s: u32,
    /// Span of the live view once that much data arrived, s (0: [`LIVE_SPAN_US`]).
    pub live_span_s: u32,
    /// The offline view's initial range, µs (`--from`/`--to`; default: all the data).
    pub range_us: Option<(u64, u64)>,
    /// Write a PNG of the window here, then exit.
    pub screenshot: Option<PathBuf>,
    /// Where "Save PNG" writes its pictures (default: the current directory).
    pub save_dir: Option<PathBuf>,
    /// Exit (after the screenshot, if any) this many ms after start.
    pub exit_after_ms: Option<u64>,
    /// Desktop notifications of live outages (default: none).
    pub notify: crate::notify::NotifySettings,
}

/// Messages of the application.
#[derive(Debug, Clone)]
pub enum Message {
    /// Zoom by `factor` (< 1 zooms in) around the fraction `anchor` of the width.
    Zoom {
        /// Fraction of the width kept in place.
        anchor: f64,
        /// Span multiplier.
        factor: f64,
    },
    /// Pan by a fraction of the span.
    Pan(f64),
    /// Zoom to a fraction range (box zoom).
    ZoomTo(f64, f64),
    /// Show all data.
    Reset,
    /// Go to the start of the data, keeping the span.
    Home,
    /// Go to the end of the data (follows new data in live mode).
    End,
    /// The cursor is at this fraction of the width (or left).
    Hover(Option<f64>),
    /// The plot area's width changed.
    PlotWidth(f32),
    /// Multiply the Y range.
    YZoom(f64),
    /// Back to automatic Y range.
    YAuto,
    /// Set the scale factor (0 linear .. log).
    ScaleFactor(f64),
    /// The path field changed.
    PathChanged(String),
    /// Open the path field's path.
    OpenPath,
    /// A day file's pyramid was loaded.
    DayLoaded {
        /// Open generation it belongs to.
        generation: u64,
        /// Lane index.
        lane: usize,
        /// Day index within the lane.
        day: usize,
        /// The result.
        state: DayState,
    },
    /// Which hosts limit ICMP on a day of the files was judged (in the background).
    LimitsJudged {
        /// Open generation it belongs to.
        generation: u64,
        /// Per lane, its limit that day (and the files that could not be read).
        limits: crate::limits::DayLimits,
    },
    /// The hosts under the opened paths were found (in the background).
    Opened {
        /// Open generation it belongs to.
        generation: u64,
        /// The hosts.
        hosts: Vec<FoundHost>,
        /// The paths that could not be used (and event files that could not be read).
        errors: Vec<String>,
        /// The context events of the data directories found.
        events: Vec<zzping_lib::events::ContextEvent>,
    },
    /// Fine data a lane asked for was read (in the background).
    FineLoaded {
        /// The lane.
        lane: LaneRef,
        /// What was asked for.
        key: FineKey,
        /// What was read.
        data: Arc<FineData>,
    },
    /// Switch mode.
    SetMode(Mode),
    /// News from a daemon.
    Live(LiveUpdate),
    /// Dismiss the error banners.
    DismissErrors,
    /// A frame of the window is about to be drawn (subscribed to only while waiting to
    /// report the first picture with all the data, see [`App::drawn`]).
    Frame,
    /// Time to capture the window.
    TakeScreenshot,
    /// The window's pixels.
    Screenshot(window::Screenshot),
    /// Time to quit.
    Exit,
    /// Show this span ending at the end of the data (live: now), µs; `None`: all data.
    Range(Option<f64>),
    /// The "go to" field changed.
    GoToChanged(String),
    /// Go to the time in the "go to" field (the view then starts there).
    GoTo,
    /// Hide or show the lane of this index (in the current mode's lanes).
    ToggleLane(usize),
    /// Move the lane of this index up (-1) or down (+1) among the shown lanes.
    MoveLane(usize, i32),
    /// Save a picture of the current view (all shown lanes, axis, legend, caption).
    SavePng,
}

impl From<Gesture> for Message {
    fn from(g: Gesture) -> Self {
        match g {
            Gesture::Zoom { anchor, factor } => Message::Zoom { anchor, factor },
            Gesture::Pan(f) => Message::Pan(f),
            Gesture::ZoomTo(a, b) => Message::ZoomTo(a, b),
            Gesture::Reset => Message::Reset,
            Gesture::Home => Message::Home,
            Gesture::End => Message::End,
            Gesture::Hover(h) => Message::Hover(h),
            Gesture::PlotWidth(w) => Message::PlotWidth(w),
            Gesture::YZoom(f) => Message::YZoom(f),
        }
    }
}

/// Which lane a background result is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneRef {
    /// Its mode's lanes.
    pub mode: Mode,
    /// Its index there.
    pub index: usize,
    /// The open generation (offline lanes are replaced by each open).
    pub generation: u64,
}

/// A lane with its drawing state.
#[derive(Debug)]
pub struct LaneSlot {
    /// Data and columns.
    pub lane: Lane,
    /// Geometry cache (cleared when the columns change).
    pub cache: Cache,
    /// Geometry cache of its Y axis labels (cleared with `cache`).
    pub y_cache: Cache,
    /// Vertical scale.
    pub y: YScale,
    /// Where its canvas was last drawn (see [`LaneCanvas::drawn_at`]).
    pub drawn_at: std::cell::Cell<Option<iced::Rectangle>>,
    /// Hidden by the user (not drawn, not folded).
    pub hidden: bool,
    /// Position among its mode's lanes, top first (the user may reorder them).
    pub rank: usize,
}

impl LaneSlot {
    pub(crate) fn new(lane: Lane) -> Self {
        Self {
            lane,
            cache: Cache::new(),
            y_cache: Cache::new(),
            y: YScale {
                max_us: 10_000.0,
                sf: 0.0,
            },
            drawn_at: std::cell::Cell::new(None),
            hidden: false,
            rank: usize::MAX,
        }
    }
}

/// Connection state of a daemon.
#[derive(Debug, Clone)]
pub struct DaemonState {
    /// Its address as given (`host[:port]`) and secret.
    pub target: LiveTarget,
    /// Receiving data.
    pub connected: bool,
    /// Last error, if any.
    pub detail: String,
}

/// The viewer.
#[derive(Debug)]
pub struct App {
    /// Current mode.
    pub mode: Mode,
    /// Offline lanes.
    pub offline: Vec<LaneSlot>,
    /// Live lanes.
    pub live: Vec<LaneSlot>,
    pub(crate) live_index: HashMap<(usize, u32), usize>,
    /// Daemons of live mode.
    pub daemons: Vec<DaemonState>,
    prefill_s: u32,
    /// Offline view.
    pub offline_view: TimeView,
    /// Live view.
    pub live_view: TimeView,
    /// Live view follows the newest data.
    pub follow: bool,
    /// While following: the span fits the live data received (from the first frame to
    /// now), growing to [`App::live_span_us`]; off once the user zooms.
    pub live_fit: bool,
    /// Span of the live view once filled, µs.
    pub live_span_us: f64,
    /// True until the user moves the offline view (it then tracks the data extent).
    pub offline_pristine: bool,
    /// Width of the plot area, px.
    pub plot_width: f32,
    /// Y range multiplier applied to the automatic range (1 = auto).
    pub y_zoom: f64,
    /// Scale factor (0 = linear).
    pub sf: f64,
    /// Hovered fraction of the width.
    pub hover: Option<f64>,
    /// The path field.
    pub path_input: String,
    /// The "go to" field.
    pub goto_input: String,
    /// The offline view's range asked for at start (`--from`/`--to`), µs.
    initial_range: Option<(u64, u64)>,
    /// Drawing the picture to share (caption, no toolbar), then capturing it: the frames
    /// drawn since (see [`App::capture_ready`]).
    pub capturing: Option<u8>,
    /// Where "Save PNG" writes.
    save_dir: PathBuf,
    /// The last message about a saved picture.
    pub saved: Option<String>,
    /// Error banners.
    pub errors: Vec<String>,
    /// Day files loaded / to load.
    pub loading: (usize, usize),
    generation: u64,
    pub(crate) axis_cache: Cache,
    /// The context-event marks of the opened data and of the live daemons
    /// ([`crate::marks`]), in time order: made from [`App::file_events`] and
    /// [`App::live_events`] by [`App::refresh_marks`].
    pub marks: Vec<crate::marks::Mark>,
    /// The context events of the opened data directories, in time order.
    pub file_events: Vec<zzping_lib::events::ContextEvent>,
    /// The context events received from live daemons, as they came (at most
    /// [`crate::marks::MAX_LIVE_EVENTS`]).
    pub live_events: Vec<zzping_lib::events::ContextEvent>,
    pub(crate) marks_cache: Cache,
    /// The hover texts of the events last hovered (logged when they change).
    hovered_events: Vec<String>,
    screenshot: Option<PathBuf>,
    exit_after_ms: Option<u64>,
    /// Frames drawn since the offline data finished loading (counted up to 2; see
    /// [`App::drawn`]).
    frames_since_loaded: u8,
    /// An open's directory scan is in flight.
    opening: bool,
    /// Reads what lanes ask for.
    loader: Arc<dyn Loader>,
    /// Read in background tasks (the window) or inline (tests, benchmarks).
    background: bool,
    /// Fine data lanes asked for, not handed to the loader yet.
    requests: Vec<(LaneRef, FineRequest)>,
    /// Desktop notifications of live outages.
    pub(crate) notifier: crate::notify::Notifier,
}

impl App {
    /// A viewer with no data, for a window `width` px wide.
    pub fn empty(width: f32) -> Self {
        let now = zzping_lib::file::wall_clock_us() as f64;
        Self {
            mode: Mode::Offline,
            offline: Vec::new(),
            live: Vec::new(),
            live_index: HashMap::new(),
            daemons: Vec::new(),
            prefill_s: 0,
            offline_view: TimeView::new(now - 86_400e6, now),
            live_view: TimeView::new(now - LIVE_SPAN_US, now),
            follow: true,
            live_fit: true,
            live_span_us: LIVE_SPAN_US,
            offline_pristine: true,
            plot_width: (width - LEGEND_WIDTH - 20.0).max(100.0),
            y_zoom: 1.0,
            sf: 0.0,
            hover: None,
            path_input: String::new(),
            goto_input: String::new(),
            initial_range: None,
            capturing: None,
            save_dir: PathBuf::from("."),
            saved: None,
            errors: Vec::new(),
            loading: (0, 0),
            generation: 0,
            axis_cache: Cache::new(),
            marks: Vec::new(),
            file_events: Vec::new(),
            live_events: Vec::new(),
            marks_cache: Cache::new(),
            hovered_events: Vec::new(),
            screenshot: None,
            exit_after_ms: None,
            frames_since_loaded: 0,
            opening: false,
            loader: Arc::new(DiskLoader),
            background: false,
            requests: Vec::new(),
            notifier: crate::notify::Notifier::default(),
        }
    }

    /// Sets what reads the lanes' data: in background tasks (`background`: the window
    /// does this at boot; `update` then never reads a file), or inline, before `update`
    /// and [`App::recompute`] return (what [`App::empty`] starts with, for tests,
    /// benchmarks and scripts).
    pub fn set_loader(&mut self, loader: Arc<dyn Loader>, background: bool) {
        self.loader = loader;
        self.background = background;
    }

    /// Boots from `cfg`: scans paths, starts background loading, screenshot timer.
    pub fn boot(cfg: Config) -> (Self, Task<Message>) {
        let mut app = Self::empty(1600.0);
        app.background = true;
        app.daemons = cfg
            .live
            .iter()
            .map(|target| DaemonState {
                target: target.clone(),
                connected: false,
                detail: String::new(),
            })
            .collect();
        app.prefill_s = cfg.prefill_s;
        app.notifier = crate::notify::Notifier::new(cfg.notify.clone());
        if cfg.live_span_s > 0 {
            app.live_span_us = f64::from(cfg.live_span_s) * 1e6;
        }
        app.initial_range = cfg.range_us;
        app.apply_initial_range();
        if let Some(d) = &cfg.save_dir {
            app.save_dir = d.clone();
        }
        if cfg.paths.is_empty() && !cfg.live.is_empty() {
            app.mode = Mode::Live;
        }
        app.path_input = cfg
            .paths
            .first()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        app.screenshot = cfg.screenshot.clone();
        app.exit_after_ms = cfg.exit_after_ms;
        let mut tasks = vec![app.open(&cfg.paths)];
        // With offline data, a screenshot waits for the first picture with all of it
        // drawn and the timer is a deadline; without (live only), it is taken on time.
        if cfg.screenshot.is_some() || cfg.exit_after_ms.is_some() {
            let ms = cfg.exit_after_ms.unwrap_or(2000);
            let msg = if cfg.screenshot.is_some() && cfg.paths.is_empty() {
                Message::TakeScreenshot
            } else {
                Message::Exit
            };
            tasks.push(sleep(ms).map(move |()| msg.clone()));
        }
        (app, Task::batch(tasks))
    }

    /// Makes [`App::marks`] again from the events of the files and of the live daemons
    /// (each event once, see [`crate::marks::merge`]).
    pub fn refresh_marks(&mut self) {
        let events = crate::marks::merge(&self.file_events, &self.live_events);
        self.marks = crate::marks::marks(&events);
        self.marks_cache.clear();
    }

    /// Opens `paths` and loads their days synchronously (tests, benchmarks).
    pub fn open_blocking(&mut self, paths: &[PathBuf]) {
        let (lanes, errors) = data::open_blocking(paths);
        self.errors.extend(errors);
        let (events, issues) = crate::marks::load(paths);
        self.file_events = events;
        self.refresh_marks();
        self.errors.extend(issues);
        self.offline = lanes.into_iter().map(LaneSlot::new).collect();
        for (day, files) in crate::limits::days(&self.day_files()) {
            let limits = crate::limits::judge_day(day, &files);
            self.set_limits(limits);
        }
        rank_new(&mut self.offline);
        self.offline_pristine = true;
        self.sync_history(None);
        self.collect_issues();
        self.reset_offline();
        self.apply_initial_range();
        self.recompute();
    }

    /// The day files of each offline lane.
    fn day_files(&self) -> Vec<Vec<zzping_lib::store::DayFile>> {
        self.offline
            .iter()
            .map(|s| match &s.lane.source {
                Source::Files(days) => days.iter().map(|d| d.file.clone()).collect(),
                Source::Live(_) => Vec::new(),
            })
            .collect()
    }

    /// Gives the offline lanes a day's [`crate::limits::DayLimits`].
    pub(crate) fn set_limits(&mut self, limits: crate::limits::DayLimits) {
        for (s, l) in self.offline.iter_mut().zip(limits.lanes) {
            s.lane.icmp_limits.extend(l);
        }
        for i in limits.issues {
            if !self.errors.contains(&i) {
                self.errors.push(i);
            }
        }
    }

    /// Judges which live hosts limit ICMP over the data received (see
    /// [`crate::limits`]).
    fn judge_live(&mut self) {
        let mut idx = Vec::new();
        let mut hosts = Vec::new();
        let (mut lo, mut hi) = (u64::MAX, 0);
        for (i, s) in self.live.iter().enumerate() {
            if let Source::Live(l) = &s.lane.source
                && let Some((a, b)) = l.extent()
            {
                lo = lo.min(a);
                hi = hi.max(b);
                idx.push(i);
                hosts.push(HostRuns::clone(&l.runs).finish());
            }
        }
        let judged = crate::limits::judge(&hosts, lo, hi.max(lo));
        for (i, l) in idx.into_iter().zip(judged) {
            self.live[i].lane.icmp_limits = l.into_iter().collect();
        }
    }

    /// Logs the context events under the cursor when they change (`hover: events TEXT |
    /// TEXT`), for scripts that drive the window.
    fn log_hovered_events(&mut self) {
        let texts: Vec<String> = self
            .hover_lines()
            .into_iter()
            .filter(|l| l.contains(crate::window::EVENT_TIME_SEP))
            .collect();
        if texts != self.hovered_events {
            if !texts.is_empty() {
                tracing::info!("hover: events {}", texts.join(" | "));
            }
            self.hovered_events = texts;
        }
    }

    /// Sets the offline view to the range asked for at start, if any (it then stays
    /// while the data loads).
    fn apply_initial_range(&mut self) {
        if let Some((a, b)) = self.initial_range {
            self.offline_view = TimeView::new(a as f64, b as f64);
            self.offline_pristine = false;
        }
    }

    /// The current mode's lanes the user shows, in the order shown.
    pub fn shown(&self) -> Vec<&LaneSlot> {
        let mut v: Vec<&LaneSlot> = self.lanes().iter().filter(|s| !s.hidden).collect();
        v.sort_by_key(|s| s.rank);
        v
    }

    /// The current mode's lanes, in the order shown, hidden ones included: `(index,
    /// slot)`.
    pub fn ordered(&self) -> Vec<(usize, &LaneSlot)> {
        let mut v: Vec<(usize, &LaneSlot)> = self.lanes().iter().enumerate().collect();
        v.sort_by_key(|(_, s)| s.rank);
        v
    }

    /// Gives the live lanes the days on disk of the same host (see
    /// [`crate::model::HostLabel::same_host`]), so that a live window scrolls back into the history on
    /// disk: all live lanes, or those of the offline lane `only`.
    pub(crate) fn sync_history(&mut self, only: Option<usize>) {
        for s in &mut self.live {
            let found = self
                .offline
                .iter()
                .position(|o| s.lane.host.same_host(&o.lane.host));
            if only.is_some() && found != only {
                continue;
            }
            let days = match found.map(|i| &self.offline[i].lane.source) {
                Some(Source::Files(days)) => days.clone(),
                _ => Vec::new(),
            };
            s.lane.set_history(days);
        }
    }

    /// Replaces the offline lanes with the hosts under `paths` (found in the background,
    /// or inline: see [`App::set_loader`]); returns the task loading them.
    pub fn open(&mut self, paths: &[PathBuf]) -> Task<Message> {
        if paths.is_empty() {
            return Task::none();
        }
        self.generation += 1;
        self.opening = true;
        let generation = self.generation;
        let paths = paths.to_vec();
        let scan = move || {
            let (hosts, errors) = data::scan(&paths);
            let mut errors: Vec<String> = errors.into_iter().map(|e| e.to_string()).collect();
            let (events, issues) = crate::marks::load(&paths);
            errors.extend(issues);
            Message::Opened {
                generation,
                hosts,
                errors,
                events,
            }
        };
        if self.background {
            load::background(scan)
        } else {
            self.update(scan())
        }
    }

    /// Shows the hosts found by [`App::open`]; returns the task loading their days.
    fn opened(
        &mut self,
        hosts: Vec<FoundHost>,
        errors: Vec<String>,
        events: Vec<zzping_lib::events::ContextEvent>,
    ) -> Task<Message> {
        self.errors.extend(errors);
        self.file_events = events;
        self.refresh_marks();
        self.offline_pristine = true;
        let jobs: Vec<((usize, usize), PathBuf)> = hosts
            .iter()
            .enumerate()
            .flat_map(|(l, h)| {
                h.days
                    .iter()
                    .enumerate()
                    .map(move |(d, day)| ((l, d), day.file.path.clone()))
            })
            .collect();
        let day_files = hosts_day_files(&hosts);
        self.offline = hosts
            .into_iter()
            .map(FoundHost::into_lane)
            .map(LaneSlot::new)
            .collect();
        rank_new(&mut self.offline);
        self.apply_initial_range();
        // The pyramids, and which hosts limit ICMP on each day.
        self.loading = (0, jobs.len() + crate::limits::days(&day_files).len());
        self.mode = Mode::Offline;
        self.sync_history(None);
        self.recompute();
        let generation = self.generation;
        let days =
            load::days_in_background(sorted_newest_first(jobs)).map(move |((lane, day), state)| {
                Message::DayLoaded {
                    generation,
                    lane,
                    day,
                    state,
                }
            });
        let limits = load::limits_in_background(day_files)
            .map(move |(_, limits)| Message::LimitsJudged { generation, limits });
        Task::batch([days, limits])
    }

    pub(crate) fn lanes(&self) -> &[LaneSlot] {
        match self.mode {
            Mode::Offline => &self.offline,
            Mode::Live => &self.live,
        }
    }

    /// The current view.
    pub fn view_range(&self) -> TimeView {
        match self.mode {
            Mode::Offline => self.offline_view,
            Mode::Live => self.live_view,
        }
    }

    fn view_mut(&mut self) -> &mut TimeView {
        match self.mode {
            Mode::Offline => {
                self.offline_pristine = false;
                &mut self.offline_view
            }
            Mode::Live => {
                self.follow = false;
                self.live_fit = false;
                &mut self.live_view
            }
        }
    }

    /// Time covered by the current mode's data.
    pub fn extent(&self) -> Option<(u64, u64)> {
        self.lanes()
            .iter()
            .filter_map(|s| s.lane.extent())
            .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))
    }

    fn reset_offline(&mut self) {
        let ext = match self.mode {
            Mode::Offline => self.extent(),
            Mode::Live => None,
        };
        if let Some((a, b)) = ext {
            let pad = (b - a) as f64 * 0.01;
            self.offline_view = TimeView::new(a as f64 - pad, b as f64 + pad);
        }
    }

    /// Recomputes every visible lane's columns and Y scale for the current view. A lane
    /// that needs frames it does not have keeps its columns and asks for them: read
    /// inline before this returns, or queued for the background tasks `update` returns
    /// (see [`App::set_loader`]).
    pub fn recompute(&mut self) {
        if self.mode == Mode::Live && self.follow {
            let now = zzping_lib::file::wall_clock_us() as f64;
            let span = if self.live_fit {
                self.live_fit_span(now)
            } else {
                self.live_view.span_us()
            };
            self.live_view = TimeView::new(now - span, now);
        }
        if self.mode == Mode::Live {
            self.judge_live();
        }
        let view = self.view_range();
        let width = self.plot_width;
        let (mode, generation) = (self.mode, self.generation);
        let lanes = match mode {
            Mode::Offline => &mut self.offline,
            Mode::Live => &mut self.live,
        };
        for (index, s) in lanes.iter_mut().enumerate() {
            if s.hidden {
                continue;
            }
            let Some(req) = s.lane.recompute(&view, width) else {
                continue;
            };
            let lane = LaneRef {
                mode,
                index,
                generation,
            };
            if self.background {
                self.requests.push((lane, req));
            } else {
                // Inline: read now, then fold what was read.
                s.lane.set_fine(req.key, self.loader.read_fine(&req));
                s.lane.recompute_blocking(&view, width, &*self.loader);
            }
        }
        self.axis_cache.clear();
        self.marks_cache.clear();
        self.rescale();
    }

    /// The span of a live view that fits the live data at `now`: from the first frame
    /// the daemons sent (their prefill included) to now, at least [`MIN_FIT_SPAN_US`],
    /// at most [`App::live_span_us`] (also before any frame arrived).
    pub fn live_fit_span(&self, now: f64) -> f64 {
        let first = self
            .live
            .iter()
            .filter_map(|s| match &s.lane.source {
                Source::Live(l) => l.first_us,
                Source::Files(_) => None,
            })
            .min();
        match first {
            Some(f) => {
                (now - f as f64).clamp(MIN_FIT_SPAN_US, self.live_span_us.max(MIN_FIT_SPAN_US))
            }
            None => self.live_span_us,
        }
    }

    /// The background reads of the fine data lanes asked for.
    fn start_reads(&mut self) -> Task<Message> {
        Task::batch(self.requests.drain(..).map(|(lane, req)| {
            let loader = self.loader.clone();
            let key = req.key;
            load::background(move || loader.read_fine(&req)).map(move |data| Message::FineLoaded {
                lane,
                key,
                data: Arc::new(data),
            })
        }))
    }

    /// The lane `r` refers to, if it still exists.
    fn lane_mut(&mut self, r: LaneRef) -> Option<&mut LaneSlot> {
        match r.mode {
            Mode::Offline if r.generation != self.generation => None,
            Mode::Offline => self.offline.get_mut(r.index),
            Mode::Live => self.live.get_mut(r.index),
        }
    }

    /// Recomputes every visible lane's Y scale from its columns (which a change of the Y
    /// range or scale factor leaves as they are: no fold), and clears the drawing caches.
    pub fn rescale(&mut self) {
        let (y_zoom, sf) = (self.y_zoom, self.sf);
        let lanes = match self.mode {
            Mode::Offline => &mut self.offline,
            Mode::Live => &mut self.live,
        };
        let mut p95s = Vec::new();
        for s in lanes.iter_mut() {
            let auto = auto_max_us(&s.lane.columns, &mut p95s);
            let auto = if auto > 0.0 { auto * 1.25 } else { 10_000.0 };
            s.y = YScale {
                max_us: (auto * y_zoom).max(100.0),
                sf,
            };
            s.cache.clear();
            s.y_cache.clear();
        }
    }

    fn collect_issues(&mut self) {
        for s in self.offline.iter_mut().chain(self.live.iter_mut()) {
            for i in s.lane.issues.drain(..) {
                if !self.errors.contains(&i) {
                    self.errors.push(i);
                }
            }
        }
    }
}

/// The automatic top of a lane's Y axis, µs (before the 25 % headroom): the 99th
/// percentile over the columns of their p95, so that the bands of almost every column fit
/// while a few isolated spikes (every column is a single frame when zoomed in) clip at the
/// top instead of flattening the rest.
pub fn auto_max_us(cols: &[crate::fold::ColumnStats], buf: &mut Vec<f32>) -> f64 {
    buf.clear();
    buf.extend(cols.iter().filter(|c| c.received > 0).map(|c| c.q_us[5]));
    if buf.is_empty() {
        return 0.0;
    }
    let k = ((buf.len() as f64 * 0.99).ceil() as usize).clamp(1, buf.len()) - 1;
    let (_, v, _) = buf.select_nth_unstable_by(k, f32::total_cmp);
    f64::from(*v)
}

/// Ranks the lanes that have none yet after the others (new lanes go to the bottom).
pub(crate) fn rank_new(lanes: &mut [LaneSlot]) {
    let first = lanes
        .iter()
        .map(|s| s.rank)
        .filter(|&r| r != usize::MAX)
        .max()
        .map_or(0, |r| r + 1);
    let unranked = lanes.iter_mut().filter(|s| s.rank == usize::MAX);
    for (rank, s) in (first..).zip(unranked) {
        s.rank = rank;
    }
}

/// A task that completes after `ms` milliseconds (a sleeping thread, so the executor is
/// never blocked).
fn sleep(ms: u64) -> Task<()> {
    Task::future(async move {
        let (tx, rx) = iced::futures::channel::oneshot::channel();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(ms));
            let _ = tx.send(());
        });
        let _ = rx.await;
    })
}

/// The day files of each host found.
fn hosts_day_files(hosts: &[FoundHost]) -> Vec<Vec<zzping_lib::store::DayFile>> {
    hosts
        .iter()
        .map(|h| h.days.iter().map(|d| d.file.clone()).collect())
        .collect()
}

/// Newest days first: the initial view shows everything, but partial data is most useful
/// at the recent end.
fn sorted_newest_first<J>(mut jobs: Vec<(J, PathBuf)>) -> Vec<(J, PathBuf)> {
    jobs.sort_by(|a, b| b.1.file_name().cmp(&a.1.file_name()));
    jobs
}

mod readout;
mod update;

pub use readout::write_png;
pub use update::key_message;
