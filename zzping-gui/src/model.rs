//! The lanes' data and the level choice: where a host's summaries come from (day files
//! or a live stream), which level a view reads, and when a lane must wait for data.
//! Folding them into pixel columns is [`crate::fold`]; reading files is
//! [`crate::load`]'s (a lane never opens a file).
//!
//! # Level choice
//! For a view of `u` µs per pixel the fold reads, per host:
//! - `u ≥ 10 s`: the coarsest persisted pyramid level (10 s, 100 s, 1,000 s, 10,000 s) whose
//!   width is at most `u`, i.e. 1-10 summaries per column, from the sidecars loaded at open;
//! - `1 s ≤ u < 10 s`: 1 s summaries computed from the raw frames of the visible range
//!   (±50 %), cached until the view leaves that range;
//! - `u < 1 s`: the raw frames themselves.
//!
//! The raw frames of the two fine levels are read in the background: a view that needs
//! frames the lane does not have yields a [`FineRequest`], and the lane keeps its previous
//! columns (and the view they were folded for, [`Lane::columns_view`]) until
//! [`Lane::set_fine`] brings them.
//!
//! Summaries merge exactly, so every column holds the exact histogram of its pings and
//! switching levels never changes a column's percentiles (only which pings fall in which
//! column, by at most one level width at the edges).
//!
//! # Live lanes with history on disk
//! A live lane may also hold the same host's day files ([`Lane::set_history`]). Its
//! columns then come from the files before the *cut* (the first 10 s boundary at or
//! after the first live frame) and from the stream after it, each part at its own level
//! (at 100 s per pixel: 100 s summaries from disk, 10 s summaries from the stream). Every
//! frame is counted once: a coarse summary on disk that straddles the cut is replaced by
//! its 10 s summaries before the cut, and the stream's frames before the cut are left out.

use crate::fold::{self, ColumnStats, Folder, LaneTotals};
pub use crate::fold::{BAND_QUANTILES, persisted_level};
use crate::limits::IcmpLimit;
pub use crate::load::DayState;
use crate::load::{FineData, FineKey, FineRequest, Loader};
use crate::timeline::TimeView;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use zzping_lib::codec::QFrame;
use zzping_lib::outage::HostRuns;
use zzping_lib::pyramid::{LEVEL_WIDTHS_US, PERSISTED_WIDTHS_US, outage_index};
use zzping_lib::quantizer::Quantizer;
use zzping_lib::store::DayFile;
use zzping_lib::summary::Summary;

/// Frames kept per live host (one hour at 100 ms frames).
pub const LIVE_RING_FRAMES: usize = 36_000;
/// Width of the coarse summaries a live host keeps for zoomed-out views, µs.
pub const LIVE_COARSE_US: u64 = 10_000_000;
/// Width of the summaries of raw frames at the 1 s level, µs.
const FINE_SUMMARY_US: u64 = LEVEL_WIDTHS_US[0];

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

    fn failed(&self) -> bool {
        matches!(self.state, DayState::Failed(_))
    }
}

/// Summaries of raw frames around the visible range, as read for a [`FineKey`].
#[derive(Debug, Default)]
struct FineCache {
    key: Option<FineKey>,
    items: Vec<Summary>,
}

impl FineCache {
    /// True when the cache holds summaries of `width_us` for `[from, to)` of the files of
    /// `epoch`.
    fn covers(&self, epoch: u64, width_us: u64, from: u64, to: u64) -> bool {
        self.key.is_some_and(|k| {
            k.epoch == epoch && k.width_us == width_us && k.from_us <= from && k.to_us >= to
        })
    }
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
    /// The host's runs of failed frames since the first frame received (by
    /// [`zzping_lib::outage`], as the report and the sidecars' outage index find them).
    pub runs: Box<HostRuns>,
    /// Start of the first frame received, µs.
    pub first_us: Option<u64>,
    /// The ring is full and has dropped its oldest frames: before its first frame only
    /// the coarse summaries remain.
    pub ring_dropped: bool,
}

impl LiveData {
    /// Appends a frame (ignored when older than the latest one); `q`: the quantizer of
    /// its codes, when known (its RTTs then time its runs, as `zzping report` does).
    pub fn push(&mut self, f: &QFrame, q: Option<&Quantizer>) {
        if let Some(last) = self.frames.back()
            && f.start_us < last.end_us()
        {
            return;
        }
        let mut s = Summary::new(f.start_us, u64::from(f.period_us));
        s.add_frame(f);
        self.first_us.get_or_insert(f.start_us);
        match q {
            Some(q) => self.runs.add_timed(f, q),
            None => self.runs.add(f),
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
            self.ring_dropped = true;
        }
        self.frames.push_back(s);
    }

    /// Where the raw frames of the ring start to hold every frame received, µs: 0 while
    /// the ring has dropped nothing; else the first 10 s boundary at or after its first
    /// frame (the coarse summary of the bucket before it also holds dropped frames).
    pub fn raw_from_us(&self) -> u64 {
        match (self.ring_dropped, self.frames.front()) {
            (true, Some(f)) => f.start_us.div_ceil(LIVE_COARSE_US) * LIVE_COARSE_US,
            (true, None) => u64::MAX,
            (false, _) => 0,
        }
    }

    /// The outage index of the frames received: what a day file's sidecar would hold
    /// for them ([`outage_index`]).
    pub fn outages(&self) -> Vec<(u64, u64)> {
        outage_index(&self.runs)
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

/// Where the disk part of a lane comes from at a zoom (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskLevel {
    /// A persisted pyramid level of this width, µs (loaded at open).
    Persisted(u64),
    /// Summaries of this width (0: one per frame) of the raw frames, read on demand.
    Fine(u64),
}

impl DiskLevel {
    /// The level for `upp` µs per pixel.
    pub fn for_zoom(upp: f64) -> Self {
        if upp >= PERSISTED_WIDTHS_US[0] as f64 {
            DiskLevel::Persisted(persisted_level(upp))
        } else if upp >= FINE_SUMMARY_US as f64 {
            DiskLevel::Fine(FINE_SUMMARY_US)
        } else {
            DiskLevel::Fine(0)
        }
    }

    /// Width of its summaries, µs (0: raw frames).
    pub fn width_us(self) -> u64 {
        match self {
            DiskLevel::Persisted(w) | DiskLevel::Fine(w) => w,
        }
    }
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
    /// One entry per pixel column of [`Lane::columns_view`].
    pub columns: Vec<ColumnStats>,
    /// The view the columns were folded for: the current view, except while the lane
    /// waits for data (it then keeps its previous picture).
    pub columns_view: Option<TimeView>,
    /// The legend's numbers for the columns.
    pub totals: LaneTotals,
    /// Problems found in this lane's data (shown as banners).
    pub issues: Vec<String>,
    /// Width (µs) of the summaries the current columns were folded from (0 = raw frames).
    pub level_us: u64,
    /// Where its host limits ICMP ([`crate::limits`]): its runs there that no other
    /// host shares are not marked as outages.
    pub icmp_limits: Vec<IcmpLimit>,
    /// A live lane's days on disk (see [`Lane::set_history`]).
    history: Vec<Day>,
    /// Where the current columns switch from the days on disk to the stream, µs (0: all
    /// from the stream; `u64::MAX`: all from disk).
    cut_us: u64,
    folder: Folder,
    fine: FineCache,
    /// The fine data asked for and not arrived yet.
    pending: Option<FineKey>,
    /// Changes when the files behind the fine cache change (a day fails, the history is
    /// replaced): data read for an older epoch is dropped.
    epoch: u64,
}

impl Lane {
    /// A lane over `source`.
    pub fn new(host: HostLabel, source: Source) -> Self {
        Self {
            host,
            source,
            quantizer: None,
            columns: Vec::new(),
            columns_view: None,
            totals: LaneTotals::default(),
            issues: Vec::new(),
            level_us: 0,
            icmp_limits: Vec::new(),
            history: Vec::new(),
            cut_us: u64::MAX,
            folder: Folder::default(),
            fine: FineCache::default(),
            pending: None,
            epoch: 0,
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
        let same_files = self.history.len() == days.len()
            && self
                .history
                .iter()
                .zip(&days)
                .all(|(a, b)| a.file == b.file && a.failed() == b.failed());
        if !same_files {
            self.epoch += 1;
        }
        self.history = days;
    }

    /// True when its host limits ICMP somewhere in `[from_us, to_us)` (see
    /// [`crate::limits`]).
    pub fn limits_icmp_in(&self, from_us: u64, to_us: u64) -> bool {
        self.icmp_limits.iter().any(|l| l.overlaps(from_us, to_us))
    }

    /// The days on disk a live lane shows before its live data.
    pub fn history(&self) -> &[Day] {
        &self.history
    }

    /// True while the lane waits for fine data it asked for.
    pub fn is_waiting(&self) -> bool {
        self.pending.is_some()
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
                        // Its frames are not shown at the fine levels either.
                        self.epoch += 1;
                        return;
                    }
                    Some(_) => {}
                }
            }
            DayState::Failed(e) => {
                self.issues.push(e.clone());
                self.epoch += 1;
            }
            DayState::Pending => {}
        }
        day.state = state;
    }

    /// Gives the lane the fine data it asked for with `key` (see [`Lane::recompute`]);
    /// data for another key, or for files that changed since, is dropped. Recompute the
    /// lane after this.
    pub fn set_fine(&mut self, key: FineKey, data: FineData) {
        if self.pending != Some(key) {
            return;
        }
        self.pending = None;
        if key.epoch != self.epoch {
            return;
        }
        if self.quantizer.is_none() {
            self.quantizer = data.quantizer;
        }
        for i in data.issues {
            if !self.issues.contains(&i) {
                self.issues.push(i);
            }
        }
        self.fine = FineCache {
            key: Some(key),
            items: data.items,
        };
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
    /// in range (about one to ten per column). When the view needs raw frames the lane
    /// does not have, the columns stay as they are and the request for them is returned
    /// (once: while it is pending, `None`); give the data to [`Lane::set_fine`].
    pub fn recompute(&mut self, view: &TimeView, width_px: f32) -> Option<FineRequest> {
        let n = width_px.round().clamp(1.0, 16_384.0) as usize;
        let upp = view.span_us() / n as f64;
        let from = view.t0_us.max(0.0) as u64;
        let to = view.t1_us.max(0.0) as u64;
        let history_ok = self.history_usable();
        let cut = match &self.source {
            Source::Files(_) => u64::MAX,
            Source::Live(live) if history_ok => live
                .first_us
                .map_or(u64::MAX, |f| f.div_ceil(LIVE_COARSE_US) * LIVE_COARSE_US),
            Source::Live(_) => 0,
        };
        // The part before the cut comes from the days on disk.
        let disk_to = to.min(cut);
        let disk = from < disk_to;
        let level = DiskLevel::for_zoom(upp);
        if let (true, DiskLevel::Fine(width)) = (disk, level)
            && !self.fine.covers(self.epoch, width, from, disk_to)
        {
            if self.pending.is_some() {
                return None;
            }
            // Read ±50 % around the view, so that pans read once per half a view.
            let span = disk_to - from;
            let key = FineKey {
                epoch: self.epoch,
                width_us: width,
                from_us: from.saturating_sub(span / 2),
                to_us: disk_to.saturating_add(span / 2).min(cut),
            };
            let files = self
                .days()
                .iter()
                .filter(|d| !d.failed() && d.file.may_hold(key.from_us, key.to_us))
                .map(|d| d.file.clone())
                .collect();
            self.pending = Some(key);
            return Some(FineRequest { key, files });
        }
        let Self {
            source,
            history,
            quantizer,
            columns,
            folder,
            fine,
            icmp_limits,
            ..
        } = self;
        let (source, history) = (&*source, &*history);
        let days = match source {
            Source::Files(days) => days,
            Source::Live(_) => history,
        };
        folder.start(n, view.t0_us, upp, quantizer.clone(), columns);
        if disk {
            match level {
                DiskLevel::Persisted(w) => {
                    let pyramids = days
                        .iter()
                        .filter(|d| d.file.may_hold(from, disk_to))
                        .filter_map(|d| match &d.state {
                            DayState::Loaded(p) => Some(&**p),
                            _ => None,
                        });
                    fold::fold_pyramids(folder, columns, pyramids, w, from, disk_to, cut);
                }
                DiskLevel::Fine(_) => {
                    fold::fold_range(folder, columns, &fine.items, from, disk_to, cut);
                }
            }
        }
        // From the cut: the stream. Raw frames when zoomed in below the coarse width,
        // wherever the ring still holds every frame (all of it until the ring is full,
        // so a view that begins before the first frame is drawn from frames too); the
        // coarse summaries before that and when zoomed out.
        let lfrom = from.max(cut);
        let mut raw_len = 0;
        let mut coarse_len = 0;
        if let Source::Live(live) = source
            && lfrom < to
        {
            let raw_from = if upp < LIVE_COARSE_US as f64 {
                live.raw_from_us().max(cut)
            } else {
                u64::MAX
            };
            if lfrom < raw_from {
                let c = &live.coarse;
                let a = c.partition_point(|s| s.end_us() <= lfrom);
                let a = a.max(c.partition_point(|s| s.start_us < cut));
                let b = c.partition_point(|s| s.start_us < to.min(raw_from));
                folder.add_all(c[a..b.max(a)].iter(), columns);
                coarse_len = to.min(raw_from) - lfrom;
            }
            if raw_from < to {
                let f = &live.frames;
                let a = f.partition_point(|s| s.end_us() <= lfrom);
                let a = a.max(f.partition_point(|s| s.start_us < raw_from));
                let b = f.partition_point(|s| s.start_us < to);
                folder.add_all(f.range(a..b.max(a)), columns);
                raw_len = to - lfrom.max(raw_from);
            }
        }
        let live_level = (raw_len + coarse_len > 0).then_some(if raw_len >= coarse_len {
            0
        } else {
            LIVE_COARSE_US
        });
        // The status line names the level of the larger part.
        self.level_us = match (disk, live_level) {
            (true, Some(_)) if disk_to - from > raw_len + coarse_len => level.width_us(),
            (_, Some(l)) => l,
            _ => level.width_us(),
        };
        // Outages: exact where the days are loaded (a run across the cut counts once).
        let live_runs = match source {
            Source::Live(l) => l.outages(),
            Source::Files(_) => Vec::new(),
        };
        let indexed = cut == 0 || !days.iter().any(|d| matches!(d.state, DayState::Pending));
        let disk_runs = days
            .iter()
            .filter(|_| cut > 0)
            .filter_map(|d| match &d.state {
                DayState::Loaded(p) => Some(p.outages.iter()),
                _ => None,
            })
            .flatten()
            .filter(move |r| r.0 < cut)
            .map(move |&(a, b)| (a, b.min(cut)));
        let live_runs = live_runs
            .into_iter()
            .filter(move |r| r.1 > cut)
            .map(move |(a, b)| (a.max(cut), b));
        // A host that limits ICMP: its runs alone are no outages.
        let limits = &*icmp_limits;
        let runs = indexed.then(|| {
            disk_runs
                .chain(live_runs)
                .filter(|&r| !limits.iter().any(|l| l.hides(r)))
        });
        self.totals = folder.finish(columns, view, runs);
        self.cut_us = cut;
        self.columns_view = Some(*view);
        None
    }

    /// [`Lane::recompute`], reading the data it asks for inline with `loader` (tests,
    /// benchmarks and scripts; the window reads in the background).
    pub fn recompute_blocking(&mut self, view: &TimeView, width_px: f32, loader: &dyn Loader) {
        // A read is asked for once per recompute, and what was read covers the view: the
        // second pass folds it (a third only if the files changed in between).
        for _ in 0..3 {
            let Some(req) = self.recompute(view, width_px) else {
                return;
            };
            let data = loader.read_fine(&req);
            self.set_fine(req.key, data);
        }
    }

    /// The lane's days on disk: its files, or a live lane's history.
    fn days(&self) -> &[Day] {
        match &self.source {
            Source::Files(days) => days,
            Source::Live(_) => &self.history,
        }
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
        let q = Quantizer::default();
        let mut l = LiveData::default();
        for f in frames {
            l.push(f, Some(&q));
        }
        let mut lane = Lane::new(HostLabel::default(), Source::Live(l));
        lane.quantizer = Some(Arc::new(q));
        lane
    }

    #[test]
    fn a_live_run_starts_as_uncertain_as_the_replies_before_it_are_slow() {
        // Replies 150 ms away, then every request of a frame lost: the run may have begun
        // up to an RTT plus a send interval before its first failed frame, as `zzping
        // report` (which reads the RTTs) finds it.
        let q = Quantizer::default();
        let t0 = 1_700_000_000_000_000;
        let frames: Vec<QFrame> = (0..10u64)
            .map(|i| match i {
                5..=7 => frame(t0 + i * 100_000, &[], 10, &q),
                _ => frame(t0 + i * 100_000, &[150_000; 10], 0, &q),
            })
            .collect();
        let uncertainty = |q: Option<&Quantizer>| {
            let mut l = LiveData::default();
            for f in &frames {
                l.push(f, q);
            }
            let runs = (*l.runs).clone().finish().runs;
            assert_eq!(runs.len(), 1, "{runs:?}");
            runs[0].start_uncertainty_us
        };
        let timed = uncertainty(Some(&q));
        // 150 ms (within the quantizer's 1 %) plus the 10 ms send interval.
        assert!((158_000..=162_000).contains(&timed), "{timed}");
        // Without the quantizer (a stream that has not said it yet), the interval only.
        assert_eq!(uncertainty(None), 10_000);
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
    fn a_live_view_that_begins_before_the_first_frame_is_drawn_from_frames() {
        // A fresh subscription: 60 s of frames, a 5-minute view ending at the last one
        // (it begins 4 minutes before the first frame).
        let q = Quantizer::default();
        let t0 = 1_700_000_000_000_000u64;
        let frames: Vec<QFrame> = (0..600u64)
            .map(|i| {
                frame(
                    t0 + i * 100_000,
                    &[1000 + ((i / 2) % 7) as u32 * 1000],
                    0,
                    &q,
                )
            })
            .collect();
        let mut lane = live_lane(&frames);
        let end = (t0 + 60_000_000) as f64;
        let view = TimeView::new(end - 300e6, end);
        lane.recompute(&view, 1500.0);
        assert_eq!(lane.level_us, 0, "raw frames, not 10 s summaries");
        assert_eq!(lane.totals.frames, 600);
        // 200 ms per column: every column after the first frame holds two frames, with
        // their own RTT (10 s summaries would put 50 frames, all seven RTTs, in each).
        let first = lane.columns.iter().position(|c| !c.is_gap()).unwrap();
        assert_eq!(first, 1200);
        for c in &lane.columns[first..] {
            assert_eq!(c.frames, 2);
            assert_eq!(c.q_us[6], c.q_us[0], "{c:?}");
        }
    }

    #[test]
    fn a_full_ring_is_drawn_from_summaries_before_it_and_frames_after_it() {
        let q = Quantizer::default();
        let t0 = 1_700_000_000_000_000u64;
        let n = LIVE_RING_FRAMES as u64 + 1234;
        let frames: Vec<QFrame> = (0..n)
            .map(|i| frame(t0 + i * 100_000, &[5000], u32::from(i % 100 == 0), &q))
            .collect();
        let mut lane = live_lane(&frames);
        let Source::Live(live) = &lane.source else {
            unreachable!()
        };
        assert!(live.ring_dropped);
        let raw_from = live.raw_from_us();
        assert_eq!(raw_from % LIVE_COARSE_US, 0);
        assert!(raw_from >= live.frames.front().unwrap().start_us);
        // A view over the whole history at 2 s per column: every frame counted once,
        // from summaries before `raw_from` and from frames after it.
        let end = t0 + n * 100_000;
        let view = TimeView::new(t0 as f64, end as f64);
        let cols = ((end - t0) / 2_000_000) as f32;
        lane.recompute(&view, cols);
        assert_eq!(lane.totals.frames, n);
        assert_eq!(lane.totals.lost, n.div_ceil(100));
        assert_eq!(lane.level_us, 0);
        // Zoomed into the ring's span: frames only, two per column.
        let view = TimeView::new(raw_from as f64, raw_from as f64 + 20e6);
        lane.recompute(&view, 100.0);
        assert!(
            lane.columns.iter().all(|c| c.frames == 2),
            "{:?}",
            &lane.columns[..3]
        );
    }

    #[test]
    fn a_host_answered_only_by_errors_is_loss_not_a_gap() {
        let q = Quantizer::default();
        let t0 = 1_700_000_000_000_000u64;
        let frames: Vec<QFrame> = (0..50u64)
            .map(|i| {
                let mut f = zzping_lib::frame::Frame::new(t0 + i * 100_000, 100_000);
                f.sent = 5;
                f.errors = 5;
                let mut qf = QFrame::default();
                qf.set_from(&f, &q);
                qf
            })
            .collect();
        let mut lane = live_lane(&frames);
        lane.recompute(&TimeView::new(t0 as f64, (t0 + 5_000_000) as f64), 50.0);
        assert!(lane.columns.iter().all(|c| !c.is_gap() && c.is_outage()));
        assert!(lane.columns.iter().all(|c| c.has_outage));
        assert_eq!(lane.totals.loss_ratio(), Some(1.0));
        assert_eq!((lane.totals.errors, lane.totals.lost), (250, 0));
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
