//! The data behind the lanes: where a host's summaries come from (files or a live
//! stream), and how they are folded into one summary per pixel column.
//!
//! # Level choice
//! For a view of `u` µs per pixel the fold reads, per host:
//! - `u ≥ 10 s`: the coarsest persisted pyramid level (10 s, 100 s, 1,000 s, 10,000 s) whose
//!   width is at most `u`, i.e. 1-10 summaries per column, from the sidecars loaded at open;
//! - `1 s ≤ u < 10 s`: 1 s summaries computed from the raw frames of the visible range
//!   (±50 %), cached until the view leaves that range;
//! - `u < 1 s`: the raw frames themselves.
//!
//! Summaries merge exactly, so every column holds the exact histogram of its pings and
//! switching levels never changes a column's percentiles (only which pings fall in which
//! column, by at most one level width at the edges).
//!
//! A summary no wider than a column goes to the column holding its midpoint; a wider one
//! (a 100 ms frame when zoomed in to milliseconds) goes to every column it covers.
//!
//! # Live lanes with history on disk
//! A live lane may also hold the same host's day files ([`Lane::set_history`]). Its
//! columns then come from the files before the *cut* (the first 10 s boundary at or
//! after the first live frame) and from the stream after it, each part at its own level
//! (at 100 s per pixel: 100 s summaries from disk, 10 s summaries from the stream). Every
//! frame is counted once: a coarse summary on disk that straddles the cut is replaced by
//! its 10 s summaries before the cut, and the stream's frames before the cut are left out.

use crate::timeline::TimeView;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use zzping_lib::codec::QFrame;
use zzping_lib::pyramid::{DayPyramid, PERSISTED_WIDTHS_US, is_outage, push_outage};
use zzping_lib::quantizer::Quantizer;
use zzping_lib::store::{DayFile, HostFrames};
use zzping_lib::summary::Summary;

/// Quantiles drawn per column: min, p5, p25, median, p75, p95, max.
pub const BAND_QUANTILES: [f64; 7] = [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0];

/// Frames kept per live host (one hour at 100 ms frames).
pub const LIVE_RING_FRAMES: usize = 36_000;
/// Width of the coarse summaries a live host keeps for zoomed-out views, µs.
pub const LIVE_COARSE_US: u64 = 10_000_000;

/// What one pixel column shows.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ColumnStats {
    /// Frames merged into the column (0 = no data: a gap).
    pub frames: u32,
    /// Requests sent.
    pub sent: u64,
    /// Replies received.
    pub received: u64,
    /// Requests lost.
    pub lost: u64,
    /// RTTs at [`BAND_QUANTILES`], µs (meaningful when `received > 0`).
    pub q_us: [f32; 7],
    /// The column contains at least one frame whose every request was lost (exact, from
    /// the outage index: a frame-level fact that summaries alone cannot give).
    pub has_outage: bool,
}

impl ColumnStats {
    /// True when the column has no data (no frame, or frames that sent nothing).
    pub fn is_gap(&self) -> bool {
        self.frames == 0 || self.received + self.lost == 0
    }

    /// Loss ratio, when anything was sent.
    pub fn loss_ratio(&self) -> Option<f64> {
        let n = self.received + self.lost;
        (n > 0).then(|| self.lost as f64 / n as f64)
    }

    /// True when every request of the column was lost.
    pub fn is_outage(&self) -> bool {
        self.received == 0 && self.lost > 0
    }
}

/// Statistics of a lane over the whole visible range (the legend).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LaneTotals {
    /// Frames in range.
    pub frames: u64,
    /// Replies received.
    pub received: u64,
    /// Requests lost.
    pub lost: u64,
    /// Median RTT, µs.
    pub median_us: Option<u32>,
    /// 99th percentile RTT, µs.
    pub p99_us: Option<u32>,
    /// Outages in the visible range: runs of consecutive frames whose every request was
    /// lost (exact at every zoom, once the outage index is built; until then, runs of
    /// columns whose every request was lost).
    pub outages: u32,
}

impl LaneTotals {
    /// Loss ratio over the range.
    pub fn loss_ratio(&self) -> Option<f64> {
        let n = self.received + self.lost;
        (n > 0).then(|| self.lost as f64 / n as f64)
    }
}

/// Identity of a host, for the legend.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostLabel {
    /// Label as shown (the configured label or target: `::1`, not its directory `__1`).
    pub label: String,
    /// The host's directory name (the label escaped as on disk, see
    /// [`zzping_lib::store::layout::host_dir_name`]): what matches a live host with its
    /// data on disk.
    pub key: String,
    /// Address, when known.
    pub address: Option<String>,
    /// Configured name, when known.
    pub name: Option<String>,
}

impl HostLabel {
    /// The identity of a host a daemon streams with this label.
    pub fn live(label: String, address: String, name: Option<String>) -> Self {
        Self {
            key: zzping_lib::store::layout::host_dir_name(&label),
            label,
            address: Some(address),
            name,
        }
    }

    /// True when `self` and `other` name the same host: the same directory name and, when
    /// both addresses are known, the same address (a daemon names a host's directory
    /// after its label, so this matches a live host with its data on disk).
    pub fn same_host(&self, other: &HostLabel) -> bool {
        if self.key != other.key {
            return false;
        }
        match (&self.address, &other.address) {
            (Some(a), Some(b)) => match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
                (Ok(x), Ok(y)) => x == y,
                _ => a == b,
            },
            _ => true,
        }
    }

    /// The legend's title: the name (or label), then the address when different.
    pub fn title(&self) -> String {
        let main = self.name.clone().unwrap_or_else(|| self.label.clone());
        match &self.address {
            Some(a) if *a != main => format!("{main} ({a})"),
            _ => main,
        }
    }
}

/// Loading state of one day file.
#[derive(Debug, Clone)]
pub enum DayState {
    /// Not loaded yet.
    Pending,
    /// Sidecar levels loaded.
    Loaded(Arc<DayPyramid>),
    /// Could not be loaded (the reason).
    Failed(String),
}

/// One day file of an offline host.
#[derive(Debug, Clone)]
pub struct Day {
    /// The frame file.
    pub file: DayFile,
    /// Its pyramid (with the outage index: runs of frames whose every request was lost).
    pub state: DayState,
}

impl Day {
    /// The day file `file`, not loaded yet.
    pub fn new(file: DayFile) -> Self {
        Self {
            file,
            state: DayState::Pending,
        }
    }
}

/// Summaries of the visible range computed from raw frames.
#[derive(Debug, Default)]
struct FineCache {
    from_us: u64,
    to_us: u64,
    /// 0: one summary per frame; otherwise the bucket width.
    width_us: u64,
    items: Vec<Summary>,
    valid: bool,
}

/// A live host's in-memory history.
#[derive(Debug, Default)]
pub struct LiveData {
    /// Latest frames, one summary each, ascending.
    pub frames: VecDeque<Summary>,
    /// [`LIVE_COARSE_US`] summaries of everything received, ascending.
    pub coarse: Vec<Summary>,
    /// Frames lost in transport (reported gaps).
    pub gap_frames: u64,
    /// Runs of frames whose every request was lost.
    pub outages: Vec<(u64, u64)>,
    /// Start of the first frame received, µs.
    pub first_us: Option<u64>,
}

impl LiveData {
    /// Appends a frame (ignored when older than the latest one).
    pub fn push(&mut self, f: &QFrame) {
        if let Some(last) = self.frames.back()
            && f.start_us < last.end_us()
        {
            return;
        }
        let mut s = Summary::new(f.start_us, u64::from(f.period_us));
        s.add_frame(f);
        self.first_us.get_or_insert(f.start_us);
        if is_outage(f) {
            push_outage(&mut self.outages, f.start_us, f.end_us());
        }
        let bucket = f.start_us / LIVE_COARSE_US * LIVE_COARSE_US;
        match self.coarse.last_mut() {
            Some(c) if c.start_us == bucket => {
                let w = c.width_us;
                c.merge(&s);
                c.start_us = bucket;
                c.width_us = w;
            }
            _ => {
                let mut c = Summary::new(bucket, LIVE_COARSE_US);
                c.frames = 0;
                c.merge(&s);
                c.start_us = bucket;
                c.width_us = LIVE_COARSE_US;
                self.coarse.push(c);
            }
        }
        if self.frames.len() >= LIVE_RING_FRAMES {
            self.frames.pop_front();
        }
        self.frames.push_back(s);
    }

    /// Start of the first and end of the last frame.
    pub fn extent(&self) -> Option<(u64, u64)> {
        let a = self.coarse.first().map(|s| s.start_us)?;
        let b = self.frames.back().map(Summary::end_us)?;
        Some((a, b))
    }
}

/// Where a lane's data comes from.
#[derive(Debug)]
pub enum Source {
    /// Day files of a host directory.
    Files(Vec<Day>),
    /// A live stream.
    Live(LiveData),
}

/// One host's lane: its data and the per-column statistics of the current view.
#[derive(Debug)]
pub struct Lane {
    /// Who.
    pub host: HostLabel,
    /// Where the data comes from.
    pub source: Source,
    /// Quantizer of the lane's codes (the first loaded day's or the stream's).
    pub quantizer: Option<Arc<Quantizer>>,
    /// One entry per pixel column of the current view.
    pub columns: Vec<ColumnStats>,
    /// The legend's numbers for the current view.
    pub totals: LaneTotals,
    /// Problems found in this lane's data (shown as banners).
    pub issues: Vec<String>,
    /// Width (µs) of the summaries the current columns were folded from (0 = raw frames).
    pub level_us: u64,
    /// A live lane's days on disk (see [`Lane::set_history`]).
    history: Vec<Day>,
    /// Where the current columns switch from the days on disk to the stream, µs (0: all
    /// from the stream; `u64::MAX`: all from disk).
    cut_us: u64,
    folder: Folder,
    fine: FineCache,
}

impl Lane {
    /// A lane over `source`.
    pub fn new(host: HostLabel, source: Source) -> Self {
        Self {
            host,
            source,
            quantizer: None,
            columns: Vec::new(),
            totals: LaneTotals::default(),
            issues: Vec::new(),
            level_us: 0,
            history: Vec::new(),
            cut_us: u64::MAX,
            folder: Folder::default(),
            fine: FineCache::default(),
        }
    }

    /// Gives a live lane the same host's days on disk (loaded or not: pass them again as
    /// they load). The lane then shows them for the times before its live data: from the
    /// first 10 s boundary at or after its first live frame on, the columns come from the
    /// live stream, before it from the files, so every frame is counted once and the two
    /// meet without a seam. Days whose precision differs from the stream's are not shown
    /// (an issue says so). No effect on a lane of files.
    pub fn set_history(&mut self, days: Vec<Day>) {
        if !matches!(self.source, Source::Live(_)) {
            return;
        }
        self.history = days;
        self.fine.valid = false;
    }

    /// The days on disk a live lane shows before its live data.
    pub fn history(&self) -> &[Day] {
        &self.history
    }

    /// Records the loaded pyramid of day `idx` (or its failure).
    pub fn set_day(&mut self, idx: usize, state: DayState) {
        let Source::Files(days) = &mut self.source else {
            return;
        };
        let Some(day) = days.get_mut(idx) else {
            return;
        };
        match &state {
            DayState::Loaded(p) => {
                for issue in &p.issues {
                    self.issues
                        .push(format!("{}: {issue}", day.file.path.display()));
                }
                match &self.quantizer {
                    None => self.quantizer = Some(p.quantizer.clone()),
                    Some(q) if **q != *p.quantizer => {
                        self.issues.push(format!(
                            "{}: precision {} differs from the host's {}; day not shown",
                            day.file.path.display(),
                            p.quantizer.precision(),
                            q.precision()
                        ));
                        day.state = DayState::Failed("mixed precision".into());
                        return;
                    }
                    Some(_) => {}
                }
            }
            DayState::Failed(e) => self.issues.push(e.clone()),
            DayState::Pending => {}
        }
        day.state = state;
        self.fine.valid = false;
    }

    /// Time covered by the lane's data, µs (start of the first summary, end of the last).
    pub fn extent(&self) -> Option<(u64, u64)> {
        match &self.source {
            Source::Live(l) => match (l.extent(), days_extent(&self.history)) {
                (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1))),
                (a, b) => a.or(b),
            },
            Source::Files(days) => days_extent(days),
        }
    }

    /// Recomputes the columns for `view` on a plot `width_px` wide. Cost: the summaries
    /// in range (about one to ten per column) plus, at fine zooms, reading raw frames once
    /// per ±50 % of the view.
    pub fn recompute(&mut self, view: &TimeView, width_px: f32) {
        let n = width_px.round().clamp(1.0, 16_384.0) as usize;
        let upp = view.span_us() / n as f64;
        let t0 = view.t0_us;
        self.folder.start(n, t0, upp, &mut self.columns);
        self.folder.quantizer = self.quantizer.clone();
        let from = t0.max(0.0) as u64;
        let to = view.t1_us.max(0.0) as u64;
        let history_ok = self.history_usable();
        let mut disk = DiskFold {
            folder: &mut self.folder,
            columns: &mut self.columns,
            fine: &mut self.fine,
            quantizer: &mut self.quantizer,
            issues: &mut self.issues,
        };
        match &self.source {
            Source::Live(live) => {
                let cut = if history_ok {
                    match live.first_us {
                        Some(f) => f.div_ceil(LIVE_COARSE_US) * LIVE_COARSE_US,
                        None => u64::MAX,
                    }
                } else {
                    0
                };
                self.cut_us = cut;
                // Before the cut: the days on disk; from it: the stream.
                let mut disk_level = None;
                let disk_to = to.min(cut);
                if from < disk_to {
                    disk_level = Some(disk.fold_days(&self.history, from, disk_to, upp, cut));
                }
                let lfrom = from.max(cut);
                let mut live_level = None;
                if lfrom < to {
                    let ring_start = live.frames.front().map_or(u64::MAX, |s| s.start_us);
                    let (folder, columns) = (&mut *disk.folder, &mut *disk.columns);
                    if upp < LIVE_COARSE_US as f64 && ring_start <= lfrom {
                        live_level = Some(0);
                        let a = live.frames.partition_point(|s| s.end_us() <= lfrom);
                        let a = a.max(live.frames.partition_point(|s| s.start_us < cut));
                        let b = live.frames.partition_point(|s| s.start_us < to);
                        fold(folder, columns, live.frames.range(a..b.max(a)));
                    } else {
                        live_level = Some(LIVE_COARSE_US);
                        let a = live.coarse.partition_point(|s| s.end_us() <= lfrom);
                        let a = a.max(live.coarse.partition_point(|s| s.start_us < cut));
                        let b = live.coarse.partition_point(|s| s.start_us < to);
                        fold(folder, columns, live.coarse[a..b.max(a)].iter());
                    }
                }
                // The status line names the level of the larger part.
                self.level_us = match (disk_level, live_level) {
                    (Some(d), Some(_)) if disk_to - from > to - lfrom => d,
                    (_, Some(l)) => l,
                    (Some(d), None) => d,
                    (None, None) => LIVE_COARSE_US,
                };
            }
            Source::Files(days) => {
                self.cut_us = u64::MAX;
                self.level_us = disk.fold_days(days, from, to, upp, u64::MAX);
            }
        }
        self.finish_columns(view);
    }

    /// True when a live lane's days on disk can be merged with its stream: same
    /// quantizer (an issue is recorded once otherwise).
    fn history_usable(&mut self) -> bool {
        if self.history.is_empty() {
            return false;
        }
        let Some(q) = &self.quantizer else {
            return true;
        };
        for d in &self.history {
            if let DayState::Loaded(p) = &d.state
                && *p.quantizer != **q
            {
                let msg = format!(
                    "{}: precision {} differs from the live stream's {}; history on disk not shown",
                    d.file.path.display(),
                    p.quantizer.precision(),
                    q.precision()
                );
                if !self.issues.contains(&msg) {
                    self.issues.push(msg);
                }
                return false;
            }
        }
        true
    }

    fn finish_columns(&mut self, view: &TimeView) {
        let q = self.quantizer.clone();
        self.folder.flush(&mut self.columns);
        let (t0, t1) = (view.t0_us, view.t1_us);
        let n = self.columns.len();
        let upp = (t1 - t0) / n.max(1) as f64;
        // Exact outages where indexed: mark every column a lost frame touches.
        let mut indexed = true;
        let mut runs = 0u32;
        let mut last_end = None;
        let mut mark = |columns: &mut [ColumnStats], a: u64, b: u64| {
            let (fa, fb) = (a as f64, b as f64);
            if fb <= t0 || fa >= t1 {
                return;
            }
            // Runs that continue across a day boundary count once.
            if last_end != Some(a) {
                runs += 1;
            }
            last_end = Some(b);
            let lo = ((fa - t0) / upp).floor().max(0.0) as usize;
            let hi = (((fb - t0) / upp).ceil().max(1.0) as usize).min(n);
            for c in &mut columns[lo.min(hi)..hi] {
                c.has_outage = true;
            }
        };
        let cut = self.cut_us;
        match &self.source {
            Source::Live(l) => {
                // Disk before the cut, the stream from it (a run across the cut counts once).
                if cut > 0 {
                    for d in &self.history {
                        match &d.state {
                            DayState::Loaded(p) => {
                                for &(a, b) in p.outages.iter().filter(|r| r.0 < cut) {
                                    mark(&mut self.columns, a, b.min(cut));
                                }
                            }
                            DayState::Pending => indexed = false,
                            DayState::Failed(_) => {}
                        }
                    }
                }
                for &(a, b) in l.outages.iter().filter(|r| r.1 > cut) {
                    mark(&mut self.columns, a.max(cut), b);
                }
            }
            Source::Files(days) => {
                for d in days {
                    match &d.state {
                        DayState::Loaded(p) => {
                            for &(a, b) in &p.outages {
                                mark(&mut self.columns, a, b);
                            }
                        }
                        DayState::Pending => indexed = false,
                        DayState::Failed(_) => {}
                    }
                }
            }
        }
        let outages = if indexed {
            runs
        } else {
            // Not indexed yet: runs of columns where everything was lost.
            let mut k = 0;
            let mut in_outage = false;
            for c in &mut self.columns {
                if c.is_outage() {
                    c.has_outage = true;
                    if !in_outage {
                        k += 1;
                    }
                    in_outage = true;
                } else if !c.is_gap() {
                    in_outage = false;
                }
            }
            k
        };
        let f = &self.folder;
        let pct = |p: f64| {
            let q = q.as_ref()?;
            dense_quantile(&f.total_dense, f.total_replies, p).map(|c| q.decode_saturating(c))
        };
        self.totals = LaneTotals {
            frames: f.total_frames,
            received: f.total_received,
            lost: f.total_lost,
            median_us: pct(0.5),
            p99_us: pct(0.99),
            outages,
        };
    }
}

/// The time covered by the loaded days, µs.
fn days_extent(days: &[Day]) -> Option<(u64, u64)> {
    let mut lo = u64::MAX;
    let mut hi = 0;
    for d in days {
        if let DayState::Loaded(p) = &d.state
            && let Some(l) = p.levels.first()
            && let (Some(a), Some(b)) = (l.summaries.first(), l.summaries.last())
        {
            lo = lo.min(a.start_us);
            hi = hi.max(b.end_us());
        }
    }
    (hi > lo).then_some((lo, hi))
}

/// What folding days on disk needs of a lane: its fields, borrowed apart from its source.
struct DiskFold<'a> {
    folder: &'a mut Folder,
    columns: &'a mut Vec<ColumnStats>,
    fine: &'a mut FineCache,
    quantizer: &'a mut Option<Arc<Quantizer>>,
    issues: &'a mut Vec<String>,
}

impl DiskFold<'_> {
    /// Folds the data of `days` in `[from, to)` that starts before `cut` into the columns
    /// (see the module docs for the level); returns the level's width (0 = raw frames).
    /// A summary that straddles `cut` (10 s aligned) is replaced by its day's 10 s
    /// summaries before `cut`, so nothing at or after `cut` is counted.
    fn fold_days(&mut self, days: &[Day], from: u64, to: u64, upp: f64, cut: u64) -> u64 {
        if upp >= PERSISTED_WIDTHS_US[0] as f64 {
            let w = PERSISTED_WIDTHS_US
                .iter()
                .copied()
                .filter(|&w| w as f64 <= upp)
                .max()
                .unwrap_or(PERSISTED_WIDTHS_US[0]);
            for d in days {
                if !d.file.may_hold(from, to) {
                    continue;
                }
                let DayState::Loaded(p) = &d.state else {
                    continue;
                };
                let Some(l) = p.level(w) else {
                    continue;
                };
                for s in l.range(from, to) {
                    if s.start_us >= cut {
                        break;
                    }
                    if s.end_us() <= cut {
                        self.folder.add(s, self.columns);
                    } else if let Some(tens) = p.level(PERSISTED_WIDTHS_US[0]) {
                        fold(
                            self.folder,
                            self.columns,
                            tens.range(s.start_us, cut).iter(),
                        );
                    }
                }
            }
            return w;
        }
        let width = if upp >= 1e6 { 1_000_000 } else { 0 };
        let f = &*self.fine;
        if !(f.valid && f.width_us == width && f.from_us <= from && f.to_us >= to) {
            let span = to - from;
            let lo = from.saturating_sub(span / 2);
            let hi = to.saturating_add(span / 2).min(cut);
            let files: Vec<DayFile> = days
                .iter()
                .filter(|d| !matches!(d.state, DayState::Failed(_)) && d.file.may_hold(lo, hi))
                .map(|d| d.file.clone())
                .collect();
            let (q, issues) = read_fine(files, lo, hi, width, &mut self.fine.items);
            if self.quantizer.is_none() {
                *self.quantizer = q;
            }
            for i in issues {
                if !self.issues.contains(&i) {
                    self.issues.push(i);
                }
            }
            self.fine.from_us = lo;
            self.fine.to_us = hi;
            self.fine.width_us = width;
            self.fine.valid = true;
        }
        self.folder.quantizer = self.quantizer.clone();
        let items = &self.fine.items;
        let a = items.partition_point(|s| s.end_us() <= from);
        let b = items
            .partition_point(|s| s.start_us < to)
            .min(items.partition_point(|s| s.start_us < cut));
        fold(self.folder, self.columns, items[a..b.max(a)].iter());
        width
    }
}

/// Streams summaries (ascending by start) into per-column statistics with dense
/// histograms: each summary's entries are added once per column it lands in, and each
/// column's seven quantiles are read in one pass over its sorted codes. Exact: the same
/// nearest-rank definition as [`zzping_lib::summary::Histogram::quantile_codes`].
#[derive(Debug, Default)]
struct Folder {
    n: usize,
    t0: f64,
    upp: f64,
    cur: Option<usize>,
    frames: u32,
    sent: u64,
    received: u64,
    lost: u64,
    dense: Vec<u64>,
    /// Codes of the current column (to clear `dense`), in no particular order.
    touched: Vec<u32>,
    /// Smallest and largest code of the current column.
    lo: u32,
    hi: u32,
    /// Replies in the current column.
    replies: u64,
    total_dense: Vec<u64>,
    total_replies: u64,
    total_frames: u64,
    total_received: u64,
    total_lost: u64,
    quantizer: Option<Arc<Quantizer>>,
}

impl Folder {
    fn start(&mut self, n: usize, t0: f64, upp: f64, cols: &mut Vec<ColumnStats>) {
        self.n = n;
        self.t0 = t0;
        self.upp = upp;
        self.cur = None;
        self.clear_column();
        self.total_dense.iter_mut().for_each(|c| *c = 0);
        self.total_replies = 0;
        self.total_frames = 0;
        self.total_received = 0;
        self.total_lost = 0;
        cols.clear();
        cols.resize(n, ColumnStats::default());
    }

    fn clear_column(&mut self) {
        for &c in &self.touched {
            self.dense[c as usize] = 0;
        }
        self.touched.clear();
        self.lo = u32::MAX;
        self.hi = 0;
        self.replies = 0;
        self.frames = 0;
        self.sent = 0;
        self.received = 0;
        self.lost = 0;
    }

    fn add(&mut self, s: &Summary, cols: &mut [ColumnStats]) {
        let n = self.n as f64;
        let a = (s.start_us as f64 - self.t0) / self.upp;
        let b = (s.end_us() as f64 - self.t0) / self.upp;
        if b <= 0.0 || a >= n || a.is_nan() || b.is_nan() {
            return;
        }
        // Totals: each summary once.
        self.total_frames += u64::from(s.frames);
        self.total_received += u64::from(s.counts.received);
        self.total_lost += u64::from(s.counts.lost);
        let entries = s.hist.entries();
        if let Some(&(last, _)) = entries.last()
            && last as usize >= self.total_dense.len()
        {
            self.total_dense.resize(last as usize + 1, 0);
        }
        for &(code, count) in entries {
            self.total_dense[code as usize] += u64::from(count);
            self.total_replies += u64::from(count);
        }
        let (lo, hi) = if b - a <= 1.0 {
            let mid = ((a + b) / 2.0).floor();
            if mid < 0.0 || mid >= n {
                return;
            }
            (mid as usize, mid as usize)
        } else {
            (
                a.floor().max(0.0) as usize,
                (b.ceil() as usize).min(self.n) - 1,
            )
        };
        for col in lo..=hi {
            match self.cur {
                Some(c) if c == col => {}
                Some(c) if c > col => {
                    // Out of order (overlapping input): keep the counters truthful.
                    let cs = &mut cols[col];
                    cs.frames = cs.frames.saturating_add(s.frames);
                    cs.sent += u64::from(s.counts.sent);
                    cs.received += u64::from(s.counts.received);
                    cs.lost += u64::from(s.counts.lost);
                    continue;
                }
                _ => {
                    self.flush(cols);
                    self.cur = Some(col);
                }
            }
            self.frames = self.frames.saturating_add(s.frames);
            self.sent += u64::from(s.counts.sent);
            self.received += u64::from(s.counts.received);
            self.lost += u64::from(s.counts.lost);
            let entries = s.hist.entries();
            if let (Some(first), Some(last)) = (entries.first(), entries.last()) {
                // Entries ascend by code.
                self.lo = self.lo.min(first.0);
                self.hi = self.hi.max(last.0);
                if last.0 as usize >= self.dense.len() {
                    self.dense.resize(last.0 as usize + 1, 0);
                }
            }
            for &(code, count) in entries {
                let d = &mut self.dense[code as usize];
                if *d == 0 {
                    self.touched.push(code);
                }
                *d += u64::from(count);
                self.replies += u64::from(count);
            }
        }
    }

    fn flush(&mut self, cols: &mut [ColumnStats]) {
        let Some(col) = self.cur.take() else {
            return;
        };
        let mut c = ColumnStats {
            frames: self.frames,
            sent: self.sent,
            received: self.received,
            lost: self.lost,
            q_us: [0.0; 7],
            has_outage: false,
        };
        if let Some(q) = &self.quantizer
            && self.replies > 0
        {
            // Walk the dense counts upwards from the smallest code: no sort, and the walk
            // stops at the p95 (the last rank is the largest code, known already).
            let total = self.replies;
            let mut seen = 0u64;
            let mut next = self.lo as usize;
            let mut code = self.lo;
            for (o, &qq) in c.q_us.iter_mut().zip(BAND_QUANTILES.iter()) {
                let rank = rank_of(qq, total);
                if rank == total {
                    code = self.hi;
                } else {
                    while seen < rank && next <= self.hi as usize {
                        let n = self.dense[next];
                        if n > 0 {
                            seen += n;
                            code = next as u32;
                        }
                        next += 1;
                    }
                }
                *o = q.decode_saturating(code) as f32;
            }
        }
        if let Some(slot) = cols.get_mut(col) {
            *slot = c;
        }
        self.clear_column();
    }
}

/// Nearest rank (1-based) of quantile `q` among `total` values.
fn rank_of(q: f64, total: u64) -> u64 {
    ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).clamp(1, total.max(1))
}

/// The nearest-rank `q`-quantile code of a dense histogram.
fn dense_quantile(dense: &[u64], total: u64, q: f64) -> Option<u32> {
    if total == 0 {
        return None;
    }
    let rank = rank_of(q, total);
    let mut seen = 0;
    for (code, &n) in dense.iter().enumerate() {
        seen += n;
        if n > 0 && seen >= rank {
            return Some(code as u32);
        }
    }
    None
}

/// Folds `items` (ascending, overlapping the view) into the columns (see the module docs).
fn fold<'a>(
    folder: &mut Folder,
    cols: &mut [ColumnStats],
    items: impl Iterator<Item = &'a Summary>,
) {
    for s in items {
        folder.add(s, cols);
    }
}

/// Reads frames of `files` in `[from, to)` into summaries of `width_us` (0 = per frame);
/// returns the quantizer of their codes and the problems found (a file that cannot be
/// read is one; the others are still read).
fn read_fine(
    files: Vec<DayFile>,
    from: u64,
    to: u64,
    width_us: u64,
    out: &mut Vec<Summary>,
) -> (Option<Arc<Quantizer>>, Vec<String>) {
    out.clear();
    let mut hf = HostFrames::new(files, from, to);
    let mut q = None;
    let mut errors = Vec::new();
    loop {
        match hf.next_frame() {
            Ok(Some(f)) => match f.start_us.checked_div(width_us) {
                None => {
                    let mut s = Summary::new(f.start_us, u64::from(f.period_us));
                    s.add_frame(f);
                    out.push(s);
                }
                Some(k) => {
                    let b = k * width_us;
                    match out.last_mut() {
                        Some(s) if s.start_us == b => s.add_frame(f),
                        _ => {
                            let mut s = Summary::new(b, width_us);
                            s.add_frame(f);
                            out.push(s);
                        }
                    }
                }
            },
            Ok(None) => break,
            Err(e) => {
                errors.push(e.to_string());
                continue;
            }
        }
        if q.is_none() {
            q = hf.quantizer().cloned();
        }
    }
    if !out.is_sorted_by_key(|s| s.start_us) {
        out.sort_by_key(|s| s.start_us);
    }
    errors.extend(
        hf.issues()
            .into_iter()
            .map(|(p, i)| format!("{}: {i}", p.display())),
    );
    (q, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(start: u64, rtts: &[u32], lost: u32, q: &Quantizer) -> QFrame {
        let mut f = zzping_lib::frame::Frame::new(start, 100_000);
        f.rtts_us = rtts.to_vec();
        f.lost = lost;
        f.sent = rtts.len() as u32 + lost;
        let mut qf = QFrame::default();
        qf.set_from(&f, q);
        qf
    }

    fn live_lane(frames: &[QFrame]) -> Lane {
        let mut l = LiveData::default();
        for f in frames {
            l.push(f);
        }
        let mut lane = Lane::new(HostLabel::default(), Source::Live(l));
        lane.quantizer = Some(Arc::new(Quantizer::default()));
        lane
    }

    #[test]
    fn columns_are_exact_and_outage_is_counted() {
        let q = Quantizer::default();
        let t0 = 1_700_000_000_000_000;
        let mut frames = Vec::new();
        for i in 0..100u64 {
            let lost = if (40..43).contains(&i) { 10 } else { 0 };
            let rtts: Vec<u32> = if lost > 0 {
                vec![]
            } else {
                (1..=10).map(|k| k * 1000).collect()
            };
            frames.push(frame(t0 + i * 100_000, &rtts, lost, &q));
        }
        let mut lane = live_lane(&frames);
        let view = TimeView::new(t0 as f64, (t0 + 10_000_000) as f64);
        lane.recompute(&view, 100.0);
        assert_eq!(lane.columns.len(), 100);
        assert_eq!(lane.level_us, 0);
        assert!(lane.columns[41].is_outage());
        assert!(!lane.columns[39].is_outage());
        assert_eq!(lane.totals.outages, 1);
        assert_eq!(lane.totals.lost, 30);
        assert_eq!(lane.totals.frames, 100);
        let c = lane.columns[0];
        assert!(c.q_us[0] <= c.q_us[3] && c.q_us[3] <= c.q_us[6]);
        assert!((c.q_us[0] - 1000.0).abs() < 20.0);
        assert!((c.q_us[6] - 10_000.0).abs() < 200.0);
    }

    #[test]
    fn dense_fold_equals_exact_summary_merge() {
        let q = Quantizer::default();
        let t0 = 1_700_000_000_000_000u64;
        let mut state = 0x1234_5678_u64;
        let mut rnd = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let frames: Vec<QFrame> = (0..2000u64)
            .map(|i| {
                let n = (rnd() % 12) as usize;
                let rtts: Vec<u32> = (0..n).map(|_| 200 + (rnd() % 80_000) as u32).collect();
                frame(t0 + i * 100_000, &rtts, (rnd() % 3) as u32, &q)
            })
            .collect();
        let mut lane = live_lane(&frames);
        let per_frame: Vec<Summary> = frames
            .iter()
            .map(|f| {
                let mut s = Summary::new(f.start_us, 100_000);
                s.add_frame(f);
                s
            })
            .collect();
        let Source::Live(live) = &lane.source else {
            unreachable!()
        };
        let coarse = live.coarse.clone();
        // Raw frames (several columns per frame, several frames per column), then 10 s
        // summaries (several per column: the dense walk over merged histograms).
        for (span_s, width) in [
            (200.0, 173.0),
            (37.0, 400.0),
            (3.0, 90.0),
            (190.0, 7.0),
            (180.0, 4.0),
        ] {
            let view = TimeView::new(t0 as f64 + 5e6, t0 as f64 + 5e6 + span_s * 1e6);
            lane.recompute(&view, width);
            let items = if lane.level_us == 0 {
                &per_frame
            } else {
                assert_eq!(lane.level_us, LIVE_COARSE_US);
                &coarse
            };
            let n = lane.columns.len();
            let upp = view.span_us() / n as f64;
            let mut expect = vec![Summary::default(); n];
            let mut total = Summary::default();
            for s in items {
                let a = (s.start_us as f64 - view.t0_us) / upp;
                let b = (s.end_us() as f64 - view.t0_us) / upp;
                if b <= 0.0 || a >= n as f64 {
                    continue;
                }
                total.merge(s);
                let cols = if b - a <= 1.0 {
                    let m = ((a + b) / 2.0).floor();
                    if m < 0.0 || m >= n as f64 {
                        0..0
                    } else {
                        m as usize..m as usize + 1
                    }
                } else {
                    a.floor().max(0.0) as usize..(b.ceil() as usize).min(n)
                };
                for c in cols {
                    expect[c].merge(s);
                }
            }
            let mut codes = [None; 7];
            for (c, e) in lane.columns.iter().zip(&expect) {
                assert_eq!(u64::from(e.counts.lost), c.lost);
                assert_eq!(u64::from(e.counts.received), c.received);
                e.hist.quantile_codes(&BAND_QUANTILES, &mut codes);
                for (got, want) in c.q_us.iter().zip(codes) {
                    let want = want.map_or(0.0, |w| q.decode_saturating(w) as f32);
                    assert_eq!(*got, want);
                }
            }
            assert_eq!(lane.totals.median_us, total.percentile_us(&q, 50.0));
            assert_eq!(lane.totals.p99_us, total.percentile_us(&q, 99.0));
            assert_eq!(lane.totals.lost, u64::from(total.counts.lost));
        }
    }

    #[test]
    fn outages_are_marked_exactly_at_coarse_zoom_and_scattered_loss_is_not() {
        let q = Quantizer::default();
        let t0 = 1_700_000_000_000_000u64;
        // One hour: a 300 ms outage at 1800 s; elsewhere one ping in ten frames is lost
        // (far more than a frame's worth per column, but never a whole frame).
        let frames: Vec<QFrame> = (0..36_000u64)
            .map(|i| {
                if (18_000..18_003).contains(&i) {
                    frame(t0 + i * 100_000, &[], 10, &q)
                } else {
                    let lost = u32::from(i % 10 == 0);
                    frame(t0 + i * 100_000, &vec![5000; 10 - lost as usize], lost, &q)
                }
            })
            .collect();
        let mut lane = live_lane(&frames);
        // 3600 s over 120 px: 30 s per column, from the 10 s summaries.
        lane.recompute(
            &TimeView::new(t0 as f64, (t0 + 3_600_000_000) as f64),
            120.0,
        );
        assert_eq!(lane.level_us, LIVE_COARSE_US);
        let marked: Vec<usize> = (0..120).filter(|&i| lane.columns[i].has_outage).collect();
        assert_eq!(marked, vec![60]);
        assert!(lane.columns.iter().all(|c| c.lost > 0));
        assert_eq!(lane.totals.outages, 1);
    }

    #[test]
    fn columns_past_the_data_are_gaps() {
        let q = Quantizer::default();
        let t0 = 1_700_000_000_000_000;
        let frames: Vec<QFrame> = (0..10)
            .map(|i| frame(t0 + i * 100_000, &[5000], 0, &q))
            .collect();
        let mut lane = live_lane(&frames);
        lane.recompute(&TimeView::new(t0 as f64, (t0 + 2_000_000) as f64), 20.0);
        assert!(!lane.columns[5].is_gap());
        assert!(lane.columns[15].is_gap());
    }
}
