//! One host's runs of failed frames ([`HostRuns`]), kept in pieces of identical frames.

use super::MAX_START_UNCERTAINTY_US;
use super::spread::{ReplyDispersion, SharedFrames};
use super::{DOWN_SHARE, Failures, FrameFailures, MAX_SKIPPED_US, failed_some, has_outcome};
use crate::codec::QFrame;
use crate::quantizer::Quantizer;
use crate::summary::nearest_rank;

/// Frames of a run with the same failures at a regular step, kept once (a host failing
/// for hours at a steady rate is a few pieces, not a frame each).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Piece {
    start_us: u64,
    /// Start-to-start distance of its frames (0 while it holds one frame).
    step_us: u64,
    period_us: u32,
    frames: u64,
    each: FrameFailures,
}

impl Piece {
    fn last_start_us(&self) -> u64 {
        self.start_us + self.step_us * (self.frames - 1)
    }

    fn end_us(&self) -> u64 {
        self.last_start_us() + u64::from(self.period_us)
    }

    /// Takes in frame `f` if it continues this piece.
    fn absorb(&mut self, start_us: u64, period_us: u32, each: &FrameFailures) -> bool {
        if period_us != self.period_us || *each != self.each || start_us <= self.last_start_us() {
            return false;
        }
        let step = start_us - self.last_start_us();
        if self.frames == 1 {
            self.step_us = step;
        } else if step != self.step_us {
            return false;
        }
        self.frames += 1;
        true
    }
}

/// One host's run: frames that failed entirely, with their partly failed edges (see the
/// module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// Start of its first frame (an edge, if it has one), µs.
    pub start_us: u64,
    /// End of its last frame, µs.
    pub end_us: u64,
    /// Start of its first frame that failed entirely, µs.
    pub core_start_us: u64,
    /// End of its last frame that failed entirely, µs.
    pub core_end_us: u64,
    /// Its failures.
    pub failures: Failures,
    /// How much earlier than its cause the run may start, µs: the host's RTT before it
    /// (requests in flight when a link fails fail too, up to an RTT before it) and its
    /// send interval (the first request after the cause may leave that much later), at
    /// most [`MAX_START_UNCERTAINTY_US`].
    pub start_uncertainty_us: u64,
    pieces: Vec<Piece>,
}

impl Run {
    fn new() -> Self {
        Self {
            start_us: u64::MAX,
            end_us: 0,
            core_start_us: u64::MAX,
            core_end_us: 0,
            failures: Failures::default(),
            start_uncertainty_us: 0,
            pieces: Vec::new(),
        }
    }

    fn push(&mut self, start_us: u64, period_us: u32, each: &FrameFailures) {
        let end = start_us + u64::from(period_us);
        self.start_us = self.start_us.min(start_us);
        self.end_us = self.end_us.max(end);
        if each.whole {
            self.core_start_us = self.core_start_us.min(start_us);
            self.core_end_us = self.core_end_us.max(end);
        }
        self.failures.add_each(each, 1);
        if !self
            .pieces
            .last_mut()
            .is_some_and(|p| p.absorb(start_us, period_us, each))
        {
            self.pieces.push(Piece {
                start_us,
                step_us: 0,
                period_us,
                frames: 1,
                each: *each,
            });
        }
    }

    fn from_pieces(pieces: Vec<Piece>) -> Self {
        let mut r = Run::new();
        for p in &pieces {
            r.start_us = r.start_us.min(p.start_us);
            r.end_us = r.end_us.max(p.end_us());
            if p.each.whole {
                r.core_start_us = r.core_start_us.min(p.start_us);
                r.core_end_us = r.core_end_us.max(p.end_us());
            }
            r.failures.add_each(&p.each, p.frames);
        }
        r.pieces = pieces;
        r
    }

    /// Its frames that failed entirely, in pieces: (start of the first frame, step,
    /// frames, requests and errors per frame).
    pub(super) fn whole_pieces(&self) -> impl Iterator<Item = (u64, u64, u64, u64, u64)> + '_ {
        self.pieces.iter().filter(|p| p.each.whole).map(|p| {
            (
                p.start_us,
                p.step_us,
                p.frames,
                u64::from(p.each.lost) + u64::from(p.each.errors),
                u64::from(p.each.errors),
            )
        })
    }

    /// Frames in the run.
    pub fn frames(&self) -> u64 {
        self.pieces.iter().map(|p| p.frames).sum()
    }

    /// Length of the run's first frame, µs: the tolerance when runs are compared.
    pub fn period_us(&self) -> u64 {
        self.pieces.first().map_or(0, |p| u64::from(p.period_us))
    }

    /// True when some frame of the run failed entirely (a run always has one, unless it
    /// is the rest of a cut run that kept only an edge).
    pub fn has_core(&self) -> bool {
        self.core_start_us < self.core_end_us
    }

    /// Cuts the run before its first frame starting at or after `t_us` and returns the
    /// rest; `self` keeps the frames before. `None` (and no change) when no frame starts
    /// there or later, or when every frame does.
    pub fn split_off(&mut self, t_us: u64) -> Option<Run> {
        if t_us <= self.start_us || self.pieces.iter().all(|p| p.last_start_us() < t_us) {
            return None;
        }
        let mut left = Vec::new();
        let mut right = Vec::new();
        for p in std::mem::take(&mut self.pieces) {
            if p.last_start_us() < t_us {
                left.push(p);
            } else if p.start_us >= t_us {
                right.push(p);
            } else {
                // Frames i with start + i * step < t go left.
                let k = (t_us - p.start_us).div_ceil(p.step_us);
                let mut tail = p.clone();
                tail.start_us = p.start_us + k * p.step_us;
                tail.frames = p.frames - k;
                let mut head = p;
                head.frames = k;
                left.push(head);
                right.push(tail);
            }
        }
        let u = self.start_uncertainty_us;
        *self = Run::from_pieces(left);
        self.start_uncertainty_us = u;
        let mut rest = Run::from_pieces(right);
        rest.start_uncertainty_us = u;
        Some(rest)
    }
}

/// Finds one host's runs from its frames, in time order (see the module docs), and keeps
/// what [`analyse`] needs besides: the spans the host has data for and its requests with
/// an outcome.
#[derive(Debug, Clone, Default)]
pub struct HostRuns {
    runs: Vec<Run>,
    /// The run being extended, if its last frame failed entirely.
    open: Option<Run>,
    /// The open run's trailing edge: a partly failed frame after its core.
    trailing: Option<(u64, u32, FrameFailures)>,
    /// The last frame, when it failed partly and is no run's edge: the leading edge of a
    /// run that may start next.
    leading: Option<(u64, u32, FrameFailures)>,
    /// End of the last frame with an outcome.
    last_end_us: Option<u64>,
    coverage: Vec<(u64, u64)>,
    outcomes: u64,
    dispersion: ReplyDispersion,
    /// Only the cores are wanted ([`HostRuns::cores_only`]): the spread of replies is not
    /// measured.
    cores_only: bool,
    /// The start uncertainty of a run that opens now ([`Run::start_uncertainty_us`]),
    /// from the last frame with a reply.
    uncertainty_us: u64,
}

impl HostRuns {
    /// A tracker with no frames yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tracker for [`HostRuns::cores`] only (an outage index, e.g. the pyramid's): it
    /// does not measure the spread of replies, which costs about a fifth of a sidecar
    /// build, so its [`HostOutages::limits_icmp`] is never true.
    pub fn cores_only() -> Self {
        Self {
            cores_only: true,
            ..Self::default()
        }
    }

    /// Adds the next frame of the host. Frames come in time order; one that starts
    /// before the previous one ended (a clock step) ends the current run. Its RTTs are
    /// not read: the start of a run is taken as uncertain by the send interval only
    /// ([`HostRuns::add_timed`] reads them).
    pub fn add(&mut self, f: &QFrame) {
        self.add_rtt(f, None);
    }

    /// [`HostRuns::add`], with the frame's median RTT (decoded with `q`, the quantizer
    /// of its codes) in the start uncertainty of a run that opens after it.
    pub fn add_timed(&mut self, f: &QFrame, q: &Quantizer) {
        let median = nearest_rank(&f.codes, 0.5).map(|c| q.decode_saturating(c));
        self.add_rtt(f, median);
    }

    fn add_rtt(&mut self, f: &QFrame, median_rtt_us: Option<u32>) {
        if !has_outcome(f) {
            return;
        }
        if f.received() > 0 {
            let interval = u64::from(f.period_us) / u64::from(f.sent.max(1));
            let rtt = u64::from(median_rtt_us.unwrap_or(0));
            self.uncertainty_us = (rtt + interval).min(MAX_START_UNCERTAINTY_US);
        }
        let end = f.end_us();
        let continues = self
            .last_end_us
            .is_some_and(|e| f.start_us >= e && f.start_us - e <= MAX_SKIPPED_US);
        if !continues {
            self.close();
            self.leading = None;
        }
        match self.coverage.last_mut() {
            Some(c) if continues => c.1 = c.1.max(end),
            _ => self.coverage.push((f.start_us, end)),
        }
        self.last_end_us = Some(end);
        self.outcomes += u64::from(f.received()) + u64::from(f.lost) + u64::from(f.errors);
        if !self.cores_only {
            self.dispersion.add(f);
        }
        let each = FrameFailures::of(f);
        if each.whole {
            if self.trailing.is_some() {
                // A reply came in between: that run is over.
                self.close();
            }
            let u = self.uncertainty_us;
            let run = self.open.get_or_insert_with(|| Run {
                start_uncertainty_us: u,
                ..Run::new()
            });
            if let Some((s, p, e)) = self.leading.take() {
                run.push(s, p, &e);
            }
            run.push(f.start_us, f.period_us, &each);
        } else if failed_some(f) {
            if self.open.is_some() && self.trailing.is_none() {
                self.trailing = Some((f.start_us, f.period_us, each));
            } else {
                self.close();
                self.leading = Some((f.start_us, f.period_us, each));
            }
        } else {
            self.close();
            self.leading = None;
        }
    }

    /// Ends the open run, with its trailing edge.
    fn close(&mut self) {
        if let Some(mut run) = self.open.take() {
            if let Some((s, p, e)) = self.trailing.take() {
                run.push(s, p, &e);
            }
            self.runs.push(run);
        }
        self.trailing = None;
    }

    /// The cores `[start, end)` of the runs found so far, the open one included: the
    /// outage index of a live view.
    pub fn cores(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.runs
            .iter()
            .chain(self.open.as_ref())
            .filter(|r| r.has_core())
            .map(|r| (r.core_start_us, r.core_end_us))
    }

    /// Ends the frames: the runs found, and the host's data.
    pub fn finish(mut self) -> HostOutages {
        self.close();
        self.dispersion.finish();
        HostOutages {
            runs: self.runs,
            coverage: self.coverage,
            outcomes: self.outcomes,
            dispersion: self.dispersion,
        }
    }
}

/// One host's runs and data, from [`HostRuns::finish`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostOutages {
    /// Its runs, in time order.
    pub runs: Vec<Run>,
    /// Spans `[start, end)` it has frames for (time without frames up to
    /// [`MAX_SKIPPED_US`] included), in time order.
    pub coverage: Vec<(u64, u64)>,
    /// Requests with an outcome (replies, timeouts, errors).
    pub outcomes: u64,
    /// How its replies spread over its frames (see [`HostOutages::limits_icmp`]).
    pub dispersion: ReplyDispersion,
}

impl HostOutages {
    /// True when the host answers at a capped rate: it loses a steady share of its
    /// requests, silently (timeouts, no errors), with as many replies in every window of
    /// a few frames ([`ReplyDispersion`], [`super::Spread::rationed`]). Routers commonly
    /// limit the echo replies they send themselves; that is not an outage of the path
    /// (hosts beyond them answer), so its runs of one host are left out of the events,
    /// and it is not down however much it loses ([`super::analyse`]).
    pub fn limits_icmp(&self) -> bool {
        self.limits_icmp_apart(&SharedFrames::default())
    }

    /// [`HostOutages::limits_icmp`], judged without `shared`: its frames that failed in
    /// outages of several hosts (a dropout of the whole network says nothing of how the
    /// host rations its replies).
    pub fn limits_icmp_apart(&self, shared: &SharedFrames) -> bool {
        self.dispersion.judge(shared).rationed()
    }

    /// Share of its requests with an outcome that failed inside runs, if it has any.
    pub fn down_share(&self) -> Option<f64> {
        let failed: u64 = self.runs.iter().map(|r| r.failures.failed()).sum();
        (self.outcomes > 0).then(|| failed as f64 / self.outcomes as f64)
    }

    /// True when the host was down for the whole window or most of it ([`DOWN_SHARE`]).
    pub fn is_down(&self) -> bool {
        self.down_share().is_some_and(|s| s > DOWN_SHARE)
    }

    /// True when the host has data somewhere in `[start_us, end_us)`.
    pub fn covers(&self, start_us: u64, end_us: u64) -> bool {
        let i = self.coverage.partition_point(|&(_, e)| e <= start_us);
        self.coverage.get(i).is_some_and(|&(s, _)| s < end_us)
    }

    /// True when one of its runs overlaps `[start_us, end_us)`.
    pub fn failing_during(&self, start_us: u64, end_us: u64) -> bool {
        let i = self.runs.partition_point(|r| r.end_us <= start_us);
        self.runs.get(i).is_some_and(|r| r.start_us < end_us)
    }

    /// All its runs' failures.
    pub fn failures(&self) -> Failures {
        let mut f = Failures::default();
        for r in &self.runs {
            f.merge(&r.failures);
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn runs_take_their_partly_failed_edges_once() {
        // ok, partial, whole, whole, partial, partial, whole, partial, ok
        let h = host(&[
            (0, 5, 0),
            (1, 3, 2),
            (2, 0, 5),
            (3, 0, 5),
            (4, 4, 1),
            (5, 2, 3),
            (6, 0, 5),
            (7, 1, 4),
            (8, 5, 0),
        ]);
        assert_eq!(
            spans(&h),
            [(t(1), t(5), t(2), t(4)), (t(5), t(8), t(6), t(7))]
        );
        assert_eq!(h.runs[0].failures.timeouts, 2 + 5 + 5 + 1);
        assert_eq!(h.runs[1].failures.timeouts, 3 + 5 + 4);
        assert_eq!(h.outcomes, 45);
        // A partly failed frame alone is no run.
        assert!(host(&[(0, 5, 0), (1, 3, 2), (2, 5, 0)]).runs.is_empty());
    }

    /// A tracker of cores only finds the same runs; it just does not judge the spread.
    #[test]
    fn a_cores_only_tracker_finds_the_same_cores() {
        // A capped host: one reply every other frame, the rest lost; then an outage.
        let frames: Vec<QFrame> = (0..2000u64)
            .map(|i| match i {
                1500..1520 => fr(i, 0, 1, 0, None),
                _ if i % 2 == 0 => fr(i, 1, 0, 0, None),
                _ => fr(i, 0, 1, 0, None),
            })
            .collect();
        let (mut all, mut cores) = (HostRuns::new(), HostRuns::cores_only());
        for f in &frames {
            all.add(f);
            cores.add(f);
        }
        assert_eq!(
            all.cores().collect::<Vec<_>>(),
            cores.cores().collect::<Vec<_>>()
        );
        assert!(cores.cores().count() > 0);
        assert!(all.finish().limits_icmp());
        assert!(!cores.finish().limits_icmp());
    }

    #[test]
    fn skipped_frames_do_not_end_a_run_but_a_silence_does() {
        // One request every 3 frames (frames without a request are not written).
        let h = host(&[(0, 1, 0), (3, 0, 1), (6, 0, 1), (9, 0, 1), (12, 1, 0)]);
        assert_eq!(spans(&h), [(t(3), t(10), t(3), t(10))]);
        assert_eq!(h.coverage, [(t(0), t(13))]);
        // No frame for more than MAX_SKIPPED_US: two runs, two spans of data.
        let gap = MAX_SKIPPED_US / u64::from(P) + 2;
        let h = host(&[(0, 0, 1), (1, 0, 1), (1 + gap, 0, 1)]);
        assert_eq!(
            spans(&h),
            [
                (t(0), t(2), t(0), t(2)),
                (t(1 + gap), t(2 + gap), t(1 + gap), t(2 + gap))
            ]
        );
        assert_eq!(h.coverage.len(), 2);
        assert!(!h.covers(t(3), t(gap)));
        assert!(h.covers(t(1), t(3)));
        // Frames without an outcome are ignored.
        let mut r = HostRuns::new();
        r.add(&fr(0, 0, 3, 0, None));
        let mut extras = fr(1, 0, 0, 0, None);
        extras.late = 2;
        r.add(&extras);
        r.add(&fr(2, 0, 3, 0, None));
        assert_eq!(spans(&r.finish()), [(t(0), t(3), t(0), t(3))]);
    }

    #[test]
    fn steady_runs_are_kept_in_few_pieces_and_split_exactly() {
        let mut r = HostRuns::new();
        for i in 0..10_000 {
            r.add(&fr(i, 0, 5, 0, None));
        }
        let h = r.finish();
        assert_eq!(h.runs.len(), 1);
        assert_eq!(h.runs[0].pieces.len(), 1);
        let mut run = h.runs[0].clone();
        let rest = run.split_off(t(4000) + 1).unwrap();
        assert_eq!((run.start_us, run.end_us), (t(0), t(4001)));
        assert_eq!(run.failures.timeouts, 4001 * 5);
        assert_eq!((rest.start_us, rest.end_us), (t(4001), t(10_000)));
        assert_eq!(rest.failures.timeouts, 5999 * 5);
        assert_eq!(rest.frames() + run.frames(), 10_000);
        assert!(run.clone().split_off(t(5000)).is_none());
        // Varying frames become more pieces; splits stay exact.
        let mut r = HostRuns::new();
        for i in 0..100 {
            r.add(&fr(i, 0, 1 + (i as u32 % 3), 0, None));
        }
        let mut run = r.finish().runs.remove(0);
        let total = run.failures.timeouts;
        let rest = run.split_off(t(50)).unwrap();
        let want: u64 = (0..50).map(|i| 1 + i % 3).sum();
        assert_eq!(run.failures.timeouts, want);
        assert_eq!(rest.failures.timeouts, total - want);
    }
}
