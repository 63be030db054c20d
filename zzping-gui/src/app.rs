//! The application: state, messages, `update` and `view`.

use crate::canvas::{AxisCanvas, LaneCanvas};
use crate::data::{self, FoundHost};
use crate::live::{DaemonKey, LiveUpdate};
use crate::model::{DayState, HostLabel, Lane, LiveData, Source};
use crate::timeline::{TimeView, YScale, format_duration, format_local, format_ms};
use iced::widget::canvas::Cache;
use iced::widget::{
    Column, button, canvas, column, container, row, scrollable, slider, space, text, text_input,
};
use iced::{Color, Element, Font, Length, Subscription, Task, Theme, window};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use zzping_lib::live::LiveEvent;
use zzping_lib::quantizer::Quantizer;

/// Width of the legend column, px.
pub const LEGEND_WIDTH: f32 = 230.0;
/// Height of a lane when there are more than [`MAX_FILL_LANES`] (they then scroll), px.
pub const LANE_HEIGHT: f32 = 150.0;
/// Up to this many lanes share the window's height.
pub const MAX_FILL_LANES: usize = 6;
/// Default span shown in live mode, µs (5 minutes).
pub const LIVE_SPAN_US: f64 = 300e6;

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
    /// Daemons' live addresses.
    pub live: Vec<SocketAddr>,
    /// Seconds of history to ask daemons for.
    pub prefill_s: u32,
    /// Write a PNG of the window here, then exit.
    pub screenshot: Option<PathBuf>,
    /// Exit (after the screenshot, if any) this many ms after start.
    pub exit_after_ms: Option<u64>,
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
}

/// A lane with its drawing state.
#[derive(Debug)]
pub struct LaneSlot {
    /// Data and columns.
    pub lane: Lane,
    /// Geometry cache (cleared when the columns change).
    pub cache: Cache,
    /// Vertical scale.
    pub y: YScale,
    /// Where its canvas was last drawn (see [`LaneCanvas::drawn_at`]).
    pub drawn_at: std::cell::Cell<Option<iced::Rectangle>>,
}

impl LaneSlot {
    fn new(lane: Lane) -> Self {
        Self {
            lane,
            cache: Cache::new(),
            y: YScale {
                max_us: 10_000.0,
                sf: 0.0,
            },
            drawn_at: std::cell::Cell::new(None),
        }
    }
}

/// Connection state of a daemon.
#[derive(Debug, Clone)]
pub struct DaemonState {
    /// Its address.
    pub addr: SocketAddr,
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
    live_index: HashMap<(usize, u32), usize>,
    /// Daemons of live mode.
    pub daemons: Vec<DaemonState>,
    prefill_s: u32,
    /// Offline view.
    pub offline_view: TimeView,
    /// Live view.
    pub live_view: TimeView,
    /// Live view follows the newest data.
    pub follow: bool,
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
    /// The path field is being edited: keys go to it, not to the timeline.
    pub editing_path: bool,
    /// Error banners.
    pub errors: Vec<String>,
    /// Day files loaded / to load.
    pub loading: (usize, usize),
    generation: u64,
    axis_cache: Cache,
    screenshot: Option<PathBuf>,
    exit_after_ms: Option<u64>,
    /// Frames drawn since the offline data finished loading (counted up to 2; see
    /// [`App::drawn`]).
    frames_since_loaded: u8,
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
            offline_pristine: true,
            plot_width: (width - LEGEND_WIDTH - 20.0).max(100.0),
            y_zoom: 1.0,
            sf: 0.0,
            hover: None,
            path_input: String::new(),
            editing_path: false,
            errors: Vec::new(),
            loading: (0, 0),
            generation: 0,
            axis_cache: Cache::new(),
            screenshot: None,
            exit_after_ms: None,
            frames_since_loaded: 0,
        }
    }

    /// Boots from `cfg`: scans paths, starts background loading, screenshot timer.
    pub fn boot(cfg: Config) -> (Self, Task<Message>) {
        let mut app = Self::empty(1600.0);
        app.daemons = cfg
            .live
            .iter()
            .map(|&addr| DaemonState {
                addr,
                connected: false,
                detail: String::new(),
            })
            .collect();
        app.prefill_s = cfg.prefill_s;
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
            let msg = if cfg.screenshot.is_some() && app.loading.1 == 0 {
                Message::TakeScreenshot
            } else {
                Message::Exit
            };
            tasks.push(sleep(ms).map(move |()| msg.clone()));
        }
        (app, Task::batch(tasks))
    }

    /// Opens `paths` synchronously (tests, benchmarks).
    pub fn open_blocking(&mut self, paths: &[PathBuf]) {
        let (lanes, errors) = data::open_blocking(paths);
        self.errors.extend(errors);
        self.offline = lanes.into_iter().map(LaneSlot::new).collect();
        self.offline_pristine = true;
        self.sync_history(None);
        self.collect_issues();
        self.reset_offline();
        self.recompute();
    }

    /// Gives the live lanes the days on disk of the same host (see
    /// [`HostLabel::same_host`]), so that a live window scrolls back into the history on
    /// disk: all live lanes, or those of the offline lane `only`.
    fn sync_history(&mut self, only: Option<usize>) {
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

    /// Replaces the offline lanes with the hosts under `paths`; returns the task loading
    /// their pyramids in the background.
    pub fn open(&mut self, paths: &[PathBuf]) -> Task<Message> {
        if paths.is_empty() {
            return Task::none();
        }
        let (hosts, errors) = data::scan(paths);
        self.errors
            .extend(errors.into_iter().map(|e| e.to_string()));
        self.generation += 1;
        self.offline_pristine = true;
        let jobs: Vec<(usize, usize, PathBuf)> = hosts
            .iter()
            .enumerate()
            .flat_map(|(l, h)| {
                h.days
                    .iter()
                    .enumerate()
                    .map(move |(d, day)| (l, d, day.file.path.clone()))
            })
            .collect();
        self.offline = hosts
            .into_iter()
            .map(FoundHost::into_lane)
            .map(LaneSlot::new)
            .collect();
        self.loading = (0, jobs.len());
        self.mode = Mode::Offline;
        self.sync_history(None);
        self.recompute();
        load_task(self.generation, jobs)
    }

    fn lanes(&self) -> &[LaneSlot] {
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

    /// Recomputes every visible lane's columns and Y scale for the current view.
    pub fn recompute(&mut self) {
        if self.mode == Mode::Live && self.follow {
            let now = zzping_lib::file::wall_clock_us() as f64;
            let span = self.live_view.span_us();
            self.live_view = TimeView::new(now - span, now);
        }
        let view = self.view_range();
        let width = self.plot_width;
        let lanes = match self.mode {
            Mode::Offline => &mut self.offline,
            Mode::Live => &mut self.live,
        };
        for s in lanes.iter_mut() {
            s.lane.recompute(&view, width);
        }
        self.axis_cache.clear();
        self.rescale();
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

    /// Handles a message.
    pub fn update(&mut self, message: Message) -> Task<Message> {
        match message {
            Message::Zoom { anchor, factor } => {
                self.editing_path = false;
                self.view_mut().zoom(anchor, factor);
                self.recompute();
            }
            Message::Pan(f) => {
                self.editing_path = false;
                self.view_mut().pan(f);
                self.recompute();
            }
            Message::ZoomTo(a, b) => {
                self.view_mut().zoom_to(a, b);
                self.recompute();
            }
            Message::Reset => {
                match self.mode {
                    Mode::Offline => {
                        self.offline_pristine = true;
                        self.reset_offline();
                    }
                    Mode::Live => {
                        self.follow = true;
                        self.live_view = TimeView::new(0.0, LIVE_SPAN_US);
                    }
                }
                self.y_zoom = 1.0;
                self.recompute();
            }
            Message::Home | Message::End => {
                let end = matches!(message, Message::End);
                if end && self.mode == Mode::Live {
                    self.follow = true;
                } else if let Some((a, b)) = self.extent() {
                    let v = self.view_mut();
                    let span = v.span_us();
                    *v = if end {
                        TimeView::new(b as f64 - span, b as f64)
                    } else {
                        TimeView::new(a as f64, a as f64 + span)
                    };
                }
                self.recompute();
            }
            Message::Hover(h) => self.hover = h,
            Message::PlotWidth(w) => {
                if w.is_finite() && w >= 1.0 {
                    self.plot_width = w;
                    self.recompute();
                }
            }
            Message::YZoom(f) => {
                if f.is_finite() && f > 0.0 {
                    self.y_zoom = (self.y_zoom * f).clamp(1e-3, 1e3);
                    self.rescale();
                }
            }
            Message::YAuto => {
                self.y_zoom = 1.0;
                self.rescale();
            }
            Message::ScaleFactor(sf) => {
                if sf.is_finite() {
                    self.sf = sf.clamp(0.0, 1000.0);
                    self.rescale();
                }
            }
            Message::PathChanged(p) => {
                self.path_input = p;
                self.editing_path = true;
            }
            Message::OpenPath => {
                self.editing_path = false;
                let p = PathBuf::from(self.path_input.trim());
                return self.open(&[p]);
            }
            Message::DayLoaded {
                generation,
                lane,
                day,
                state,
            } => {
                if generation != self.generation {
                    return Task::none();
                }
                if let Some(s) = self.offline.get_mut(lane) {
                    s.lane.set_day(day, state);
                }
                self.sync_history(Some(lane));
                self.loading.0 += 1;
                self.collect_issues();
                if self.offline_pristine {
                    self.reset_offline();
                }
                self.recompute();
            }
            Message::SetMode(m) => {
                self.mode = m;
                self.hover = None;
                self.recompute();
            }
            Message::Live(u) => self.live_update(u),
            Message::DismissErrors => self.errors.clear(),
            Message::Frame => {
                if self.loading.1 > 0 && self.loading.0 >= self.loading.1 {
                    self.frames_since_loaded = self.frames_since_loaded.saturating_add(1);
                    // The first frame event after loading is followed by the first draw
                    // of the loaded state; when the second comes, that draw is done.
                    if self.frames_since_loaded == 2 {
                        tracing::info!("{}", self.drawn_line());
                        if self.screenshot.is_some() {
                            return Task::done(Message::TakeScreenshot);
                        }
                    }
                }
            }
            Message::TakeScreenshot => {
                // If no window answers, quit anyway rather than hang a script.
                return Task::batch([
                    window::latest()
                        .and_then(window::screenshot)
                        .map(Message::Screenshot),
                    sleep(10_000).map(|()| Message::Exit),
                ]);
            }
            Message::Screenshot(shot) => {
                if let Some(path) = &self.screenshot {
                    match write_png(path, &shot) {
                        Ok(()) => tracing::info!("screenshot written to {}", path.display()),
                        Err(e) => tracing::error!("screenshot {}: {e}", path.display()),
                    }
                }
                return iced::exit();
            }
            Message::Exit => {
                if self.screenshot.is_some() && self.loading.1 > 0 && !self.drawn() {
                    tracing::error!(
                        "--exit-after-ms {} passed before the data was loaded and drawn \
                         ({}/{} loading steps): no screenshot",
                        self.exit_after_ms.unwrap_or(2000),
                        self.loading.0,
                        self.loading.1
                    );
                    std::process::exit(2);
                }
                return iced::exit();
            }
        }
        Task::none()
    }

    fn live_update(&mut self, u: LiveUpdate) {
        match u {
            LiveUpdate::Status {
                daemon,
                connected,
                detail,
            } => {
                if let Some(d) = self.daemons.get_mut(daemon) {
                    d.connected = connected;
                    d.detail = detail;
                }
            }
            LiveUpdate::Events { daemon, events } => {
                if let Some(d) = self.daemons.get_mut(daemon) {
                    d.connected = true;
                    d.detail.clear();
                }
                for ev in events {
                    self.live_event(daemon, ev);
                }
                if self.mode == Mode::Live {
                    self.recompute();
                }
            }
        }
    }

    /// Applies one live event (public for tests of the live data model).
    pub fn live_event(&mut self, daemon: usize, ev: LiveEvent) {
        match ev {
            LiveEvent::Host { host, meta } => {
                let label = HostLabel::live(
                    meta.label.clone(),
                    meta.address.to_string(),
                    meta.name.clone(),
                );
                let q = Quantizer::new(meta.precision).ok().map(Arc::new);
                match self.live_index.get(&(daemon, host)) {
                    Some(&i) => {
                        let s = &mut self.live[i];
                        s.lane.host = label;
                        if s.lane.quantizer != q {
                            s.lane.quantizer = q;
                            s.lane.source = Source::Live(LiveData::default());
                        }
                    }
                    None => {
                        let mut lane = Lane::new(label, Source::Live(LiveData::default()));
                        lane.quantizer = q;
                        self.live_index.insert((daemon, host), self.live.len());
                        self.live.push(LaneSlot::new(lane));
                    }
                }
                self.sync_history(None);
            }
            LiveEvent::Frame { host, frame } => {
                if let Some(&i) = self.live_index.get(&(daemon, host))
                    && let Source::Live(l) = &mut self.live[i].lane.source
                {
                    l.push(&frame);
                }
            }
            LiveEvent::Gap { host, frames, .. } => {
                if let Some(&i) = self.live_index.get(&(daemon, host))
                    && let Source::Live(l) = &mut self.live[i].lane.source
                {
                    l.gap_frames += frames;
                }
            }
            LiveEvent::Subscribed | LiveEvent::Reconnected => {
                if let Some(d) = self.daemons.get_mut(daemon) {
                    d.connected = true;
                }
            }
            LiveEvent::Refused => {
                if let Some(d) = self.daemons.get_mut(daemon) {
                    d.connected = false;
                    d.detail = "refused by the daemon; retrying".into();
                }
            }
            LiveEvent::HostRemoved { .. } => {}
        }
    }

    /// Live subscriptions (one per daemon).
    pub fn subscription(&self) -> Subscription<Message> {
        let loaded = self.loading.1 > 0 && self.loading.0 >= self.loading.1;
        let frames = if loaded && !self.drawn() {
            window::frames().map(|_| Message::Frame)
        } else {
            Subscription::none()
        };
        let keys: Vec<DaemonKey> = self
            .daemons
            .iter()
            .enumerate()
            .map(|(index, d)| DaemonKey {
                index,
                addr: d.addr,
                prefill_s: self.prefill_s,
            })
            .collect();
        if keys.is_empty() {
            return frames;
        }
        Subscription::batch([frames, crate::live::subscription(keys).map(Message::Live)])
    }

    /// The "drawn" log line: the view's time range and where each lane was drawn, so a
    /// script can check the picture against the data it wrote, e.g.
    /// `drawn: first picture with all data; view 1700000000000000..1700007200000000 us;
    /// lane router x 248..1590 y 62..312; lane wifi-ap x ...`.
    pub fn drawn_line(&self) -> String {
        let v = self.view_range();
        let mut line = format!(
            "drawn: first picture with all data; view {:.0}..{:.0} us",
            v.t0_us, v.t1_us
        );
        for s in self.lanes() {
            if let Some(b) = s.drawn_at.get() {
                line.push_str(&format!(
                    "; lane {} x {:.0}..{:.0} y {:.0}..{:.0}",
                    s.lane.host.label,
                    b.x,
                    b.x + b.width,
                    b.y,
                    b.y + b.height
                ));
            }
        }
        line
    }

    /// Whether the window has drawn a picture with all the offline data loaded (day
    /// pyramids and outage indexes). The viewer logs `drawn: first picture with all
    /// data` once, then; with `--screenshot` it takes the screenshot right after.
    pub fn drawn(&self) -> bool {
        self.frames_since_loaded >= 2
    }

    /// The window title.
    pub fn title(&self) -> String {
        match self.mode {
            Mode::Offline => format!("zzping — {}", self.path_input),
            Mode::Live => "zzping — live".to_string(),
        }
    }

    /// The theme (dark).
    pub fn theme(&self) -> Theme {
        Theme::Dark
    }

    /// Legend lines of a lane: title, loss, median, p99, outages.
    pub fn legend_lines(lane: &Lane) -> [String; 5] {
        let t = &lane.totals;
        [
            lane.host.title(),
            match t.loss_ratio() {
                Some(r) => format!("loss {}", format_pct(r)),
                None => "loss –".into(),
            },
            format!(
                "median {}",
                t.median_us.map_or("–".into(), |v| format_ms(f64::from(v)))
            ),
            format!(
                "p99 {}",
                t.p99_us.map_or("–".into(), |v| format_ms(f64::from(v)))
            ),
            format!("outages {}", t.outages),
        ]
    }

    /// The read-out of the hovered column, one line per lane plus the time span.
    pub fn hover_lines(&self) -> Vec<String> {
        let Some(h) = self.hover else {
            return Vec::new();
        };
        let view = self.view_range();
        let mut out = Vec::new();
        let lanes = self.lanes();
        let n = lanes.first().map_or(0, |s| s.lane.columns.len());
        if n == 0 || !(0.0..1.0).contains(&h) {
            return out;
        }
        let i = ((h * n as f64).floor() as usize).min(n - 1);
        let upp = view.span_us() / n as f64;
        let t = view.t0_us + i as f64 * upp;
        out.push(format!("{} + {}", format_local(t), format_duration(upp)));
        for s in lanes {
            let Some(c) = s.lane.columns.get(i) else {
                continue;
            };
            let name = s
                .lane
                .host
                .name
                .clone()
                .unwrap_or_else(|| s.lane.host.label.clone());
            if c.is_gap() {
                out.push(format!("{name}: no data"));
                continue;
            }
            let loss = c.loss_ratio().map_or("–".into(), format_pct);
            let mut line = format!("{name}: {} pings, loss {loss}", c.received + c.lost);
            if c.has_outage {
                line.push_str(" (outage: a frame lost entirely)");
            }
            if c.received > 0 {
                let q = c.q_us.map(|v| format_ms(f64::from(v)));
                line.push_str(&format!(
                    ", min {} p5 {} p25 {} median {} p75 {} p95 {} max {}",
                    q[0], q[1], q[2], q[3], q[4], q[5], q[6]
                ));
            }
            out.push(line);
        }
        out
    }

    /// Renders the window.
    pub fn view(&self) -> Element<'_, Message> {
        let mode_btn = |label: &'static str, m: Mode| {
            let b = button(text(label).size(14));
            if self.mode == m {
                b.style(button::primary)
            } else {
                b.style(button::secondary).on_press(Message::SetMode(m))
            }
        };
        let toolbar = row![
            mode_btn("Offline", Mode::Offline),
            mode_btn("Live", Mode::Live),
            text_input(
                "data directory, host directory or .zzp file",
                &self.path_input
            )
            .on_input(Message::PathChanged)
            .on_submit(Message::OpenPath)
            .size(14)
            .width(Length::FillPortion(3)),
            button(text("Open").size(14)).on_press(Message::OpenPath),
            text("Y").size(14),
            button(text("−").size(14)).on_press(Message::YZoom(1.25)),
            button(text("+").size(14)).on_press(Message::YZoom(0.8)),
            button(text("auto").size(14)).on_press(Message::YAuto),
            text(format!("log {:.0}", self.sf)).size(14),
            slider(0.0..=100.0, self.sf, Message::ScaleFactor)
                .step(1.0)
                .width(Length::Fixed(120.0)),
            button(text("Reset").size(14)).on_press(Message::Reset),
        ]
        .spacing(8)
        .align_y(iced::Alignment::Center);

        let mut body = Column::new().spacing(6).padding(10).push(toolbar);

        if !self.errors.is_empty() {
            let mut banner = Column::new().spacing(2);
            for e in self.errors.iter().take(5) {
                banner = banner.push(text(format!("⚠ {e}")).size(13));
            }
            if self.errors.len() > 5 {
                banner =
                    banner.push(text(format!("… and {} more", self.errors.len() - 5)).size(13));
            }
            let banner = row![
                banner.width(Length::Fill),
                button(text("dismiss").size(13)).on_press(Message::DismissErrors)
            ];
            body = body.push(container(banner).padding(8).width(Length::Fill).style(
                |_: &Theme| container::Style {
                    background: Some(Color::from_rgb(0.45, 0.10, 0.12).into()),
                    text_color: Some(Color::WHITE),
                    ..container::Style::default()
                },
            ));
        }

        body = body.push(text(self.status_line()).size(13));

        let view = self.view_range();
        let mut lanes = Column::new().spacing(4);
        let slots = self.lanes();
        // A few lanes share the window's height; many scroll at a fixed height.
        let fill = slots.len() <= MAX_FILL_LANES;
        let lane_h = if fill {
            Length::Fill
        } else {
            Length::Fixed(LANE_HEIGHT)
        };
        if slots.is_empty() {
            let msg = match self.mode {
                Mode::Offline if self.loading.1 > 0 => "loading…".to_string(),
                Mode::Offline => {
                    "No data open: type a data directory above and press Open.".to_string()
                }
                Mode::Live if self.daemons.is_empty() => {
                    "No daemon configured: start with --live ADDR.".to_string()
                }
                Mode::Live => "Waiting for hosts…".to_string(),
            };
            lanes = lanes.push(text(msg).size(16));
        }
        for (i, s) in slots.iter().enumerate() {
            let lines = Self::legend_lines(&s.lane);
            let legend = column![
                text(lines[0].clone()).size(15).font(Font {
                    weight: iced::font::Weight::Bold,
                    ..Font::default()
                }),
                text(lines[1].clone()).size(13),
                text(lines[2].clone()).size(13),
                text(lines[3].clone()).size(13),
                text(lines[4].clone()).size(13),
            ]
            .spacing(2)
            .width(Length::Fixed(LEGEND_WIDTH));
            let c = canvas(LaneCanvas {
                lane: &s.lane,
                cache: &s.cache,
                view,
                y: s.y,
                hover: self.hover,
                primary: i == 0,
                keys: !self.editing_path,
                plot_width: self.plot_width,
                drawn_at: &s.drawn_at,
            })
            .width(Length::Fill)
            .height(lane_h);
            lanes = lanes.push(row![legend, c].spacing(8).height(lane_h));
        }
        let axis = canvas(AxisCanvas {
            cache: &self.axis_cache,
            view,
            hover: self.hover,
        })
        .width(Length::Fill)
        .height(Length::Fixed(26.0));
        // The axis stays under the lanes, outside the scrolling area.
        let axis_row = row![space().width(Length::Fixed(LEGEND_WIDTH)), axis].spacing(8);
        body = if fill {
            body.push(lanes.height(Length::Fill)).push(axis_row)
        } else {
            body.push(scrollable(lanes).height(Length::Fill))
                .push(axis_row)
        };

        let mut hover = Column::new().spacing(1);
        let lines = self.hover_lines();
        if lines.is_empty() && !slots.is_empty() {
            hover = hover.push(
                text(
                    "Bands: min–max, p5–p95, p25–p75 and the median line · red from the \
                     top: loss ratio · red cap over the whole height: an outage (a frame \
                     lost entirely) · grey: no data · wheel: zoom · drag: pan · \
                     shift/right-drag: box zoom · double-click: reset",
                )
                .size(13)
                .color(Color::from_rgb(0.6, 0.63, 0.68)),
            );
        }
        let extra = lines.len().saturating_sub(MAX_FILL_LANES + 1);
        for l in lines.into_iter().take(MAX_FILL_LANES + 1) {
            hover = hover.push(text(l).size(13));
        }
        if extra > 0 {
            hover = hover.push(text(format!("(and {extra} more hosts)")).size(13));
        }
        body = body.push(container(hover).height(Length::Shrink));
        container(body)
            .width(Length::Fill)
            .height(Length::Fill)
            .into()
    }

    /// The status line: span, level, loading progress, live connection state.
    pub fn status_line(&self) -> String {
        let v = self.view_range();
        let level = self
            .lanes()
            .first()
            .map(|s| s.lane.level_us)
            .map_or(String::new(), |w| {
                if w == 0 {
                    ", from raw frames".to_string()
                } else {
                    format!(", from {} summaries", format_duration(w as f64))
                }
            });
        let mut s = format!(
            "{} — {} ({}{level})",
            format_local(v.t0_us),
            format_local(v.t1_us),
            format_duration(v.span_us())
        );
        if self.loading.1 > 0 && self.loading.0 < self.loading.1 {
            s.push_str(&format!(
                " · loading {}/{} day pyramids",
                self.loading.0, self.loading.1
            ));
        }
        if self.mode == Mode::Live {
            for d in &self.daemons {
                if d.connected {
                    s.push_str(&format!(" · live from {}", d.addr));
                } else {
                    s.push_str(&format!(" · waiting for daemon at {}", d.addr));
                    if !d.detail.is_empty() {
                        s.push_str(&format!(" ({})", d.detail));
                    }
                }
            }
            if self.follow {
                s.push_str(" · following");
            }
        }
        s
    }
}

/// The automatic top of a lane's Y axis, µs (before the 25 % headroom): the 99th
/// percentile over the columns of their p95, so that the bands of almost every column fit
/// while a few isolated spikes (every column is a single frame when zoomed in) clip at the
/// top instead of flattening the rest.
pub fn auto_max_us(cols: &[crate::model::ColumnStats], buf: &mut Vec<f32>) -> f64 {
    buf.clear();
    buf.extend(cols.iter().filter(|c| c.received > 0).map(|c| c.q_us[5]));
    if buf.is_empty() {
        return 0.0;
    }
    let k = ((buf.len() as f64 * 0.99).ceil() as usize).clamp(1, buf.len()) - 1;
    let (_, v, _) = buf.select_nth_unstable_by(k, f32::total_cmp);
    f64::from(*v)
}

/// Formats a ratio as a percentage that never rounds a loss to zero.
pub fn format_pct(r: f64) -> String {
    let p = r * 100.0;
    if p == 0.0 {
        "0 %".into()
    } else if p < 0.01 {
        "<0.01 %".into()
    } else if p < 10.0 {
        format!("{p:.2} %")
    } else {
        format!("{p:.1} %")
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

/// Loads day files' pyramids (with their outage index) on one background thread, newest
/// first, reporting each.
fn load_task(generation: u64, mut jobs: Vec<(usize, usize, PathBuf)>) -> Task<Message> {
    if jobs.is_empty() {
        return Task::none();
    }
    // Newest days first: the initial view shows everything, but partial data is most
    // useful at the recent end.
    jobs.sort_by(|a, b| b.2.file_name().cmp(&a.2.file_name()));
    let (tx, rx) = iced::futures::channel::mpsc::unbounded();
    let spawned = std::thread::Builder::new()
        .name("loader".into())
        .spawn(move || {
            for (lane, day, path) in jobs {
                let state = data::load_day(&path);
                let msg = Message::DayLoaded {
                    generation,
                    lane,
                    day,
                    state,
                };
                if tx.unbounded_send(msg).is_err() {
                    return;
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start loader thread: {e}");
        return Task::none();
    }
    Task::run(rx, |m| m)
}

/// Writes a screenshot as PNG.
pub fn write_png(path: &std::path::Path, shot: &window::Screenshot) -> anyhow_free::Result {
    let file = std::fs::File::create(path)?;
    let mut enc = png::Encoder::new(
        std::io::BufWriter::new(file),
        shot.size.width,
        shot.size.height,
    );
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().map_err(std::io::Error::other)?;
    w.write_image_data(&shot.rgba)
        .map_err(std::io::Error::other)?;
    w.finish().map_err(std::io::Error::other)?;
    Ok(())
}

mod anyhow_free {
    /// I/O result of the PNG writer.
    pub type Result = std::io::Result<()>;
}
