//! Folding: a lane's summaries (pyramid levels, summaries of raw frames, a live stream)
//! into one column of statistics per pixel, the lane's totals and its outage marks.
//!
//! A summary no wider than a column goes to the column holding its midpoint; a wider one
//! (a 100 ms frame when zoomed in to milliseconds) goes to every column it covers.
//! Summaries merge exactly, so every column holds the exact histogram of its pings.

use crate::timeline::TimeView;
use std::sync::Arc;
use zzping_lib::frame::{FLAG_CLOCK_STEP, FLAG_RECV_OVERFLOW, FLAG_SEND_LATE, FLAG_USER_STAMP};
use zzping_lib::pyramid::{DayPyramid, PERSISTED_WIDTHS_US};
use zzping_lib::quantizer::Quantizer;
use zzping_lib::summary::{DenseHistogram, Summary};

/// Quantiles drawn per column: min, p5, p25, median, p75, p95, max.
pub const BAND_QUANTILES: [f64; 7] = [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0];
/// Quantiles of the legend: median, p99.
const TOTAL_QUANTILES: [f64; 2] = [0.5, 0.99];

/// The frame flags the viewer shows, in the order of [`LaneTotals::flagged`]:
/// an RTT timed in user space at one end (an upper bound), a wall-clock step, a send more
/// than one period late, a receive-queue overflow.
pub const SHOWN_FLAGS: [u8; 4] = [
    FLAG_USER_STAMP,
    FLAG_CLOCK_STEP,
    FLAG_SEND_LATE,
    FLAG_RECV_OVERFLOW,
];
/// The measurement flags other than [`FLAG_USER_STAMP`] (drawn as one mark).
pub const TIMING_FLAGS: u8 = FLAG_CLOCK_STEP | FLAG_SEND_LATE | FLAG_RECV_OVERFLOW;

/// Failed requests over requests sent: `(lost + errors) / sent` (a request failed when
/// it got no reply in time: it timed out, its send failed or an ICMP error came back).
/// `sent` counts every request, so it is at least `received + lost + errors`; the larger
/// of the two is the denominator (damaged or imported data may say less). `None` when
/// nothing was sent.
pub fn failure_ratio(sent: u64, received: u64, lost: u64, errors: u64) -> Option<f64> {
    let failed = lost + errors;
    let n = sent.max(received + failed);
    (n > 0).then(|| failed as f64 / n as f64)
}

/// What one pixel column shows.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ColumnStats {
    /// Frames merged into the column (0 = no data: a gap).
    pub frames: u32,
    /// Requests sent.
    pub sent: u64,
    /// Replies received.
    pub received: u64,
    /// Requests that timed out.
    pub lost: u64,
    /// Requests whose send failed or that drew an ICMP error.
    pub errors: u64,
    /// OR of the frames' `FLAG_*` bits.
    pub flags: u8,
    /// RTTs at [`BAND_QUANTILES`], µs (meaningful when `received > 0`).
    pub q_us: [f32; 7],
    /// The column contains at least one frame whose every request failed (exact, from
    /// the outage index: a frame-level fact that summaries alone cannot give).
    pub has_outage: bool,
}

impl ColumnStats {
    /// True when the column has no data (no frame, or frames that sent nothing).
    pub fn is_gap(&self) -> bool {
        self.frames == 0 || self.sent.max(self.received + self.failed()) == 0
    }

    /// Requests that failed: timed out or errors.
    pub fn failed(&self) -> u64 {
        self.lost + self.errors
    }

    /// Loss ratio, failed over sent (see [`failure_ratio`]), when anything was sent.
    pub fn loss_ratio(&self) -> Option<f64> {
        failure_ratio(self.sent, self.received, self.lost, self.errors)
    }

    /// The share of errors among the column's failures (0 when none failed).
    pub fn error_share(&self) -> f64 {
        match self.failed() {
            0 => 0.0,
            f => self.errors as f64 / f as f64,
        }
    }

    /// True when every request of the column failed.
    pub fn is_outage(&self) -> bool {
        self.received == 0 && self.failed() > 0
    }
}

/// Statistics of a lane over the whole visible range (the legend).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LaneTotals {
    /// Frames in range.
    pub frames: u64,
    /// Requests sent.
    pub sent: u64,
    /// Replies received.
    pub received: u64,
    /// Requests that timed out.
    pub lost: u64,
    /// Requests whose send failed or that drew an ICMP error.
    pub errors: u64,
    /// Median RTT, µs.
    pub median_us: Option<u32>,
    /// 99th percentile RTT, µs.
    pub p99_us: Option<u32>,
    /// Outages in the visible range: runs of consecutive frames whose every request was
    /// lost (exact at every zoom, once the outage index is loaded; until then, runs of
    /// columns whose every request failed).
    pub outages: u32,
    /// Per flag of [`SHOWN_FLAGS`]: the summaries in range that carry it (frames when
    /// [`LaneTotals::flag_unit_us`] is 0; summaries of that width otherwise, each holding
    /// at least one flagged frame).
    pub flagged: [u64; 4],
    /// Width of the summaries [`LaneTotals::flagged`] counts, µs (0: frames).
    pub flag_unit_us: u64,
}

impl LaneTotals {
    /// Loss ratio over the range: failed (timeouts and errors) over sent.
    pub fn loss_ratio(&self) -> Option<f64> {
        failure_ratio(self.sent, self.received, self.lost, self.errors)
    }
}

/// Streams summaries (ascending by start) into per-column statistics: each summary's
/// histogram is added once per column it lands in, and each column's seven quantiles are
/// read in one walk over its codes ([`DenseHistogram`]: the same nearest-rank definition
/// as [`zzping_lib::summary::Histogram::quantile_codes`]).
#[derive(Debug, Default)]
pub struct Folder {
    n: usize,
    t0: f64,
    upp: f64,
    cur: Option<usize>,
    frames: u32,
    sent: u64,
    received: u64,
    lost: u64,
    errors: u64,
    flags: u8,
    /// Codes of the current column.
    column: DenseHistogram,
    /// Codes of the whole range.
    total: DenseHistogram,
    total_frames: u64,
    total_sent: u64,
    total_received: u64,
    total_lost: u64,
    total_errors: u64,
    /// Summaries carrying each of [`SHOWN_FLAGS`].
    total_flagged: [u64; 4],
    /// Widest summary width seen (0: frames only).
    widest_us: u64,
    quantizer: Option<Arc<Quantizer>>,
}

impl Folder {
    /// Starts a fold of `n` columns of `upp` µs from `t0` into `cols` (reset to gaps),
    /// with codes of `quantizer`.
    pub fn start(
        &mut self,
        n: usize,
        t0: f64,
        upp: f64,
        quantizer: Option<Arc<Quantizer>>,
        cols: &mut Vec<ColumnStats>,
    ) {
        self.n = n;
        self.t0 = t0;
        self.upp = upp;
        self.cur = None;
        self.clear_column();
        self.total.clear();
        self.total_frames = 0;
        self.total_sent = 0;
        self.total_received = 0;
        self.total_lost = 0;
        self.total_errors = 0;
        self.total_flagged = [0; 4];
        self.widest_us = 0;
        self.quantizer = quantizer;
        cols.clear();
        cols.resize(n, ColumnStats::default());
    }

    /// Sets the quantizer the codes refer to (when it becomes known during the fold).
    pub fn set_quantizer(&mut self, quantizer: Option<Arc<Quantizer>>) {
        self.quantizer = quantizer;
    }

    fn clear_column(&mut self) {
        self.column.clear();
        self.frames = 0;
        self.sent = 0;
        self.received = 0;
        self.lost = 0;
        self.errors = 0;
        self.flags = 0;
    }

    /// Adds one summary.
    pub fn add(&mut self, s: &Summary, cols: &mut [ColumnStats]) {
        let n = self.n as f64;
        let a = (s.start_us as f64 - self.t0) / self.upp;
        let b = (s.end_us() as f64 - self.t0) / self.upp;
        if b <= 0.0 || a >= n || a.is_nan() || b.is_nan() {
            return;
        }
        // Totals: each summary once.
        self.total_frames += u64::from(s.frames);
        self.total_sent += u64::from(s.counts.sent);
        self.total_received += u64::from(s.counts.received);
        self.total_lost += u64::from(s.counts.lost);
        self.total_errors += u64::from(s.counts.errors);
        if s.flags != 0 {
            for (n, f) in self.total_flagged.iter_mut().zip(SHOWN_FLAGS) {
                *n += u64::from(s.flags & f != 0);
            }
        }
        // A summary of one frame counts frames, whatever its width.
        if s.frames > 1 {
            self.widest_us = self.widest_us.max(s.width_us);
        }
        self.total.add_histogram(&s.hist);
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
                    cs.errors += u64::from(s.counts.errors);
                    cs.flags |= s.flags;
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
            self.errors += u64::from(s.counts.errors);
            self.flags |= s.flags;
            self.column.add_histogram(&s.hist);
        }
    }

    /// Adds `items` (ascending, overlapping the view).
    pub fn add_all<'a>(
        &mut self,
        items: impl Iterator<Item = &'a Summary>,
        cols: &mut [ColumnStats],
    ) {
        for s in items {
            self.add(s, cols);
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
            errors: self.errors,
            flags: self.flags,
            q_us: [0.0; 7],
            has_outage: false,
        };
        if let Some(q) = &self.quantizer
            && !self.column.is_empty()
        {
            let mut codes = [None; 7];
            self.column.quantile_codes(&BAND_QUANTILES, &mut codes);
            for (o, code) in c.q_us.iter_mut().zip(codes) {
                *o = code.map_or(0.0, |code| q.decode_saturating(code) as f32);
            }
        }
        if let Some(slot) = cols.get_mut(col) {
            *slot = c;
        }
        self.clear_column();
    }

    /// Ends the fold: the last column, the outage marks of `outages` (see
    /// [`mark_outages`]) and the lane's totals.
    pub fn finish(
        &mut self,
        cols: &mut [ColumnStats],
        view: &TimeView,
        outages: Option<impl Iterator<Item = (u64, u64)>>,
    ) -> LaneTotals {
        self.flush(cols);
        let outages = mark_outages(cols, view, outages);
        let mut q = [None; 2];
        self.total.quantile_codes(&TOTAL_QUANTILES, &mut q);
        let us = |c: Option<u32>| Some(self.quantizer.as_ref()?.decode_saturating(c?));
        LaneTotals {
            frames: self.total_frames,
            sent: self.total_sent,
            received: self.total_received,
            lost: self.total_lost,
            errors: self.total_errors,
            median_us: us(q[0]),
            p99_us: us(q[1]),
            outages,
            flagged: self.total_flagged,
            flag_unit_us: self.widest_us,
        }
    }
}

/// Marks the columns of `view` that outage runs `[start, end)` touch (runs in time order;
/// one that continues the previous one, across a day boundary or the live cut, counts
/// once) and returns the number of runs in view. Without runs (the index is not loaded
/// yet) it marks, and counts runs of, the columns whose every request failed.
pub fn mark_outages(
    cols: &mut [ColumnStats],
    view: &TimeView,
    runs: Option<impl Iterator<Item = (u64, u64)>>,
) -> u32 {
    let Some(runs) = runs else {
        let mut k = 0;
        let mut in_outage = false;
        for c in cols.iter_mut() {
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
        return k;
    };
    let (t0, t1) = (view.t0_us, view.t1_us);
    let n = cols.len();
    let upp = (t1 - t0) / n.max(1) as f64;
    let mut count = 0u32;
    let mut last_end = None;
    for (a, b) in runs {
        let (fa, fb) = (a as f64, b as f64);
        if fb <= t0 || fa >= t1 {
            continue;
        }
        if last_end != Some(a) {
            count += 1;
        }
        last_end = Some(b);
        let lo = ((fa - t0) / upp).floor().max(0.0) as usize;
        let hi = (((fb - t0) / upp).ceil().max(1.0) as usize).min(n);
        for c in &mut cols[lo.min(hi)..hi] {
            c.has_outage = true;
        }
    }
    count
}

/// The coarsest persisted pyramid level no wider than `upp` µs (1-10 summaries per
/// column), for views of at least the finest persisted width per pixel.
pub fn persisted_level(upp: f64) -> u64 {
    PERSISTED_WIDTHS_US
        .iter()
        .copied()
        .filter(|&w| w as f64 <= upp)
        .max()
        .unwrap_or(PERSISTED_WIDTHS_US[0])
}

/// Folds the summaries of level `width_us` of `days` (pyramids in time order) that start
/// in `[from, to)` and before `cut`. A summary that straddles `cut` (10 s aligned) is
/// replaced by its day's 10 s summaries before `cut`, so nothing at or after `cut` is
/// counted.
pub fn fold_pyramids<'a>(
    folder: &mut Folder,
    cols: &mut [ColumnStats],
    days: impl Iterator<Item = &'a DayPyramid>,
    width_us: u64,
    from: u64,
    to: u64,
    cut: u64,
) {
    for p in days {
        let Some(l) = p.level(width_us) else {
            continue;
        };
        for s in l.range(from, to) {
            if s.start_us >= cut {
                break;
            }
            if s.end_us() <= cut {
                folder.add(s, cols);
            } else if let Some(tens) = p.level(PERSISTED_WIDTHS_US[0]) {
                folder.add_all(tens.range(s.start_us, cut).iter(), cols);
            }
        }
    }
}

/// Folds the summaries of `items` (ascending) that overlap `[from, to)` and start before
/// `cut`.
pub fn fold_range(
    folder: &mut Folder,
    cols: &mut [ColumnStats],
    items: &[Summary],
    from: u64,
    to: u64,
    cut: u64,
) {
    let a = items.partition_point(|s| s.end_us() <= from);
    let b = items
        .partition_point(|s| s.start_us < to)
        .min(items.partition_point(|s| s.start_us < cut));
    folder.add_all(items[a..b.max(a)].iter(), cols);
}
