//! How a host's replies spread over windows of its frames, against random loss
//! ([`ReplyDispersion`]): the test of a host that limits ICMP.

use super::{MAX_SKIPPED_US, Run};
use crate::codec::QFrame;
use std::collections::BTreeMap;

/// Fewest windows (of [`Spread::window_frames`] frames) before a host can be said to
/// limit ICMP. Under random loss the index of `w` windows scatters around 1 like a
/// χ² of `w − 1` degrees of freedom over `w − 1`: below 0.5 with 50 windows about once
/// in a thousand, with 100 about once in 100 000.
pub const LIMIT_MIN_WINDOWS: u64 = 50;
/// Loss range of a host that limits ICMP: below it, too little is lost to tell; above
/// it, the host is as good as down. (A cap of 1 reply a second against 50 requests, 98 %
/// loss, is still a cap.)
pub const LIMIT_MIN_LOSS: f64 = 0.05;
/// See [`LIMIT_MIN_LOSS`].
pub const LIMIT_MAX_LOSS: f64 = 0.99;
/// Largest [`Spread::index`] of a capped reply rate. Random loss gives about 1, bursts
/// of loss more; a rate limit lets the same number of replies through in every window
/// of the same length, give or take the one reply a window boundary splits (a variance
/// of at most about 0.25 reply², against about [`WINDOW_EXPECTED`] / 2 or more for
/// chance):
/// far below 1. Measured through a real daemon on a machine busy with other builds:
/// isp-ratelimit's edge (10 of 50 requests a second, one reply per 100 ms frame, which
/// frame by frame read 0.43 to 0.52) 0.00 to 0.03 over windows of 4 frames; the demo
/// scenario's router (20 of 50, with 2 % random loss, heavy-tailed delays and the
/// bursts of every host on top) 0.27 to 0.30 over windows of 2 (frame by frame it read
/// 0.19 to 0.56); its hosts with random loss and bursts 0.6 to 14 (those below 0.9 lose
/// 1 to 2 %, under [`LIMIT_MIN_LOSS`]: over 80 windows of few failures each, chance
/// scatters the index by about ±0.2).
pub const LIMIT_MAX_DISPERSION: f64 = 0.5;
/// Replies a window should expect, and failures too: the window is the length of
/// [`WINDOW_FRAMES`] that expects nearest to as many of the fewer of both (at the host's
/// own rates; 3.3 at least, unless the longest expects less). A cap lets through one reply per window more or less, depending on where the
/// window's boundaries fall; against a chance variance of at least this over 2, that
/// is a small index. A cap at or below one reply per frame (10 replies a second at
/// 100 ms frames) measured per frame is at the mercy of that one reply.
pub const WINDOW_EXPECTED: f64 = 4.0;
/// Window lengths tracked, in frames with an outcome (the one used is chosen at the
/// end, from the host's rates: [`WINDOW_EXPECTED`]). 64 frames: a cap of 1 reply a
/// second against 10 or more requests a second in 100 ms frames.
pub const WINDOW_FRAMES: [u32; 12] = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64];
/// Time at the start of each span of a host's data that is not judged, µs: a rate
/// limiter's token bucket fills while nobody pings, so the first requests after the
/// daemon starts pass in a burst (10 at once for isp-ratelimit's edge, as large a
/// deviation as all the rest of a minute's windows together). It drains in
/// burst / (request rate − cap): a quarter of a second for that edge, 2 s for a bucket of
/// 10 at 5 of 10 requests a second.
pub const LIMIT_SETTLE_US: u64 = 5_000_000;

/// A window being filled: consecutive frames with an outcome of one span of data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Window {
    start_us: u64,
    end_us: u64,
    frames: u32,
    requests: u64,
    replies: u64,
    /// Some frame of it failed entirely.
    whole: bool,
}

/// Σ n², Σ n·r, Σ r² over windows (n requests, r replies each).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct WindowSums {
    windows: u64,
    sum_n2: u64,
    sum_nr: u64,
    sum_r2: u64,
}

impl WindowSums {
    fn add(&mut self, n: u64, r: u64) {
        self.windows += 1;
        self.sum_n2 += n * n;
        self.sum_nr += n * r;
        self.sum_r2 += r * r;
    }

    /// Takes out a window added before.
    fn remove(&mut self, n: u64, r: u64) {
        self.windows -= 1;
        self.sum_n2 -= n * n;
        self.sum_nr -= n * r;
        self.sum_r2 -= r * r;
    }
}

/// Windows holding a frame that failed entirely, with the same requests and replies at
/// a regular step, kept once (a host failing for hours is one piece, not a window each):
/// the windows a frame shared with other hosts' outages can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WindowPiece {
    start_us: u64,
    /// Start-to-start distance of its windows (0 while it holds one).
    step_us: u64,
    /// Length of each window, start of its first frame to end of its last, µs.
    len_us: u64,
    count: u64,
    requests: u64,
    replies: u64,
}

impl WindowPiece {
    fn last_start_us(&self) -> u64 {
        self.start_us + self.step_us * (self.count - 1)
    }

    /// Takes in window `w` if it continues this piece.
    fn absorb(&mut self, w: &Window) -> bool {
        let len = w.end_us - w.start_us;
        if (len, w.requests, w.replies) != (self.len_us, self.requests, self.replies)
            || w.start_us <= self.last_start_us()
        {
            return false;
        }
        let step = w.start_us - self.last_start_us();
        if self.count == 1 {
            self.step_us = step;
        } else if step != self.step_us {
            return false;
        }
        self.count += 1;
        true
    }

    /// The index of its window holding time `t_us`, if one does.
    fn window_at(&self, t_us: u64) -> Option<u64> {
        let off = t_us.checked_sub(self.start_us)?;
        let j = off.checked_div(self.step_us).unwrap_or(0);
        (j < self.count && off - j * self.step_us < self.len_us).then_some(j)
    }
}

/// The windows of one length.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Scale {
    open: Window,
    sums: WindowSums,
    /// Its windows with a frame that failed entirely, in the order they closed.
    whole: Vec<WindowPiece>,
    /// `whole` is in time order (a clock step back breaks it).
    unordered: bool,
}

impl Scale {
    fn add(&mut self, start_us: u64, end_us: u64, n: u64, r: u64, frames_per_window: u32) {
        let w = &mut self.open;
        if w.frames == 0 {
            w.start_us = start_us;
        }
        w.end_us = end_us;
        w.frames += 1;
        w.requests += n;
        w.replies += r;
        w.whole |= r == 0;
        if w.frames == frames_per_window {
            self.close();
        }
    }

    fn close(&mut self) {
        let w = std::mem::take(&mut self.open);
        if w.frames == 0 {
            return;
        }
        self.sums.add(w.requests, w.replies);
        if !w.whole {
            return;
        }
        if let Some(last) = self.whole.last_mut() {
            if last.absorb(&w) {
                return;
            }
            self.unordered |= w.start_us < last.start_us;
        }
        self.whole.push(WindowPiece {
            start_us: w.start_us,
            step_us: 0,
            len_us: w.end_us - w.start_us,
            count: 1,
            requests: w.requests,
            replies: w.replies,
        });
    }

    /// The window (piece, index in it) that holds a frame starting at `t_us`, if it
    /// holds a frame that failed entirely.
    fn find(&self, t_us: u64) -> Option<(usize, u64)> {
        if self.unordered {
            return self
                .whole
                .iter()
                .enumerate()
                .find_map(|(i, p)| Some((i, p.window_at(t_us)?)));
        }
        let i = self.whole.partition_point(|p| p.start_us <= t_us);
        let i = i.checked_sub(1)?;
        Some((i, self.whole[i].window_at(t_us)?))
    }
}

/// How a host's replies spread over windows of its frames, against random loss.
///
/// Frames with an outcome are taken in windows of `k` consecutive frames (cut where the
/// data has a gap of more than [`MAX_SKIPPED_US`]; the first [`LIMIT_SETTLE_US`] of each
/// span of data left out), `k` chosen so that a window expects a few replies and a few
/// failures ([`WINDOW_EXPECTED`]). With a reply probability `p` (replies / requests,
/// over all frames judged), a window of `n` requests holds `n·p` replies on average, and
/// under independent (binomial) loss its count varies by `n·p·(1 − p)`, whatever `k`.
/// The index is the observed `Σ (r − n·p)²` over `Σ n·p·(1 − p)`: about 1 for random
/// loss, more for bursts, close to 0 when the replies are rationed (a rate limit lets
/// the same number through in every window of the same length).
///
/// Frames that failed in outages shared with other hosts ([`SharedFrames`]) can be left
/// out exactly afterwards ([`ReplyDispersion::judge`]): each window holding a frame that
/// failed entirely is kept (in pieces of equal windows), and such frames add no reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyDispersion {
    /// Frames judged (with an outcome, after the settling time of their span).
    pub frames: u64,
    /// Requests with an outcome in them (n), summed.
    pub requests: u64,
    /// Replies in them (r), summed.
    pub replies: u64,
    /// Requests in them that drew an error, summed.
    pub errors: u64,
    /// End of the last frame with an outcome.
    last_end_us: Option<u64>,
    /// Frames of the current span starting before this are not judged.
    settle_until_us: u64,
    /// The windows of each length of [`WINDOW_FRAMES`].
    scales: [Scale; WINDOW_FRAMES.len()],
}

impl ReplyDispersion {
    /// Adds the next frame (in time order; one without an outcome is ignored).
    pub fn add(&mut self, f: &QFrame) {
        let r = u64::from(f.received());
        let n = r + u64::from(f.lost) + u64::from(f.errors);
        if n == 0 {
            return;
        }
        let end = f.end_us();
        let continues = self
            .last_end_us
            .is_some_and(|e| f.start_us >= e && f.start_us - e <= MAX_SKIPPED_US);
        if !continues {
            self.close_windows();
            self.settle_until_us = f.start_us.saturating_add(LIMIT_SETTLE_US);
        }
        self.last_end_us = Some(end);
        if f.start_us < self.settle_until_us {
            return;
        }
        self.frames += 1;
        self.requests += n;
        self.replies += r;
        self.errors += u64::from(f.errors);
        for (s, &k) in self.scales.iter_mut().zip(&WINDOW_FRAMES) {
            s.add(f.start_us, end, n, r, k);
        }
    }

    fn close_windows(&mut self) {
        for s in &mut self.scales {
            s.close();
        }
    }

    /// Ends the frames: the windows being filled count (with fewer frames).
    /// [`super::HostRuns::finish`] calls it; until then they do not.
    pub fn finish(&mut self) {
        self.close_windows();
    }

    /// Share of the requests judged that failed.
    pub fn loss(&self) -> f64 {
        self.judge(&SharedFrames::default()).loss()
    }

    /// The dispersion index of every frame judged ([`Spread::index`]).
    pub fn index(&self) -> Option<f64> {
        self.judge(&SharedFrames::default()).index
    }

    /// The spread of the replies without `shared`, frames that failed entirely in
    /// outages of several hosts (a dropout of the whole network says nothing of how the
    /// host rations its replies): each is taken out of its window.
    pub fn judge(&self, shared: &SharedFrames) -> Spread {
        // The shared frames that were judged: those in a window of one frame that
        // failed entirely.
        let ones = &self.scales[0];
        let judged: Vec<(u64, u64, u64)> = shared
            .each()
            .filter(|&(t, _, _)| ones.find(t).is_some())
            .collect();
        let frames = self.frames - judged.len() as u64;
        let requests = self.requests - judged.iter().map(|j| j.1).sum::<u64>();
        let errors = self.errors - judged.iter().map(|j| j.2).sum::<u64>();
        let replies = self.replies;
        let i = window_length(frames, replies.min(requests - replies));
        let scale = &self.scales[i];
        let mut taken: BTreeMap<(usize, u64), u64> = BTreeMap::new();
        for &(t, n, _) in &judged {
            if let Some(w) = scale.find(t) {
                *taken.entry(w).or_default() += n;
            }
        }
        let mut sums = scale.sums;
        for ((p, _), n) in taken {
            let p = &scale.whole[p];
            sums.remove(p.requests, p.replies);
            if p.requests > n {
                sums.add(p.requests - n, p.replies);
            }
        }
        let index = {
            let n = requests as f64;
            let p = replies as f64 / n;
            let expected = n * p * (1.0 - p);
            (requests > 0 && expected > 0.0).then(|| {
                let observed =
                    sums.sum_r2 as f64 - 2.0 * p * sums.sum_nr as f64 + p * p * sums.sum_n2 as f64;
                observed.max(0.0) / expected
            })
        };
        Spread {
            frames,
            requests,
            replies,
            errors,
            window_frames: WINDOW_FRAMES[i],
            windows: sums.windows,
            index,
        }
    }
}

/// The index in [`WINDOW_FRAMES`] of the window length for `frames` holding `fewer`
/// replies (or failures, whichever are fewer): the one whose windows expect nearest to
/// [`WINDOW_EXPECTED`] of them (by ratio: 3.3 to 4.9 with lengths 1.5 times apart), the
/// longest when even those expect fewer. Nearest, not the first above: a cap of one
/// reply per frame, measured at 0.99 or 1.01, gets the same length either way.
fn window_length(frames: u64, fewer: u64) -> usize {
    if frames == 0 || fewer == 0 {
        return WINDOW_FRAMES.len() - 1;
    }
    let per_frame = fewer as f64 / frames as f64;
    let off = |k: u32| (f64::from(k) * per_frame / WINDOW_EXPECTED).ln().abs();
    (0..WINDOW_FRAMES.len())
        .min_by(|&a, &b| off(WINDOW_FRAMES[a]).total_cmp(&off(WINDOW_FRAMES[b])))
        .unwrap_or(0)
}

/// What [`ReplyDispersion::judge`] found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// Frames judged.
    pub frames: u64,
    /// Requests with an outcome in them.
    pub requests: u64,
    /// Replies in them.
    pub replies: u64,
    /// Requests in them that drew an error.
    pub errors: u64,
    /// Frames per window.
    pub window_frames: u32,
    /// Windows (the last of each span of data may hold fewer frames).
    pub windows: u64,
    /// The dispersion index (see [`ReplyDispersion`]); `None` without both replies and
    /// failures.
    pub index: Option<f64>,
}

impl Spread {
    /// Share of the requests that failed.
    pub fn loss(&self) -> f64 {
        if self.requests == 0 {
            return 0.0;
        }
        1.0 - self.replies as f64 / self.requests as f64
    }

    /// True when the replies are rationed: a steady, silent share lost (timeouts only,
    /// [`LIMIT_MIN_LOSS`] to [`LIMIT_MAX_LOSS`]) with as many replies in every window
    /// (index below [`LIMIT_MAX_DISPERSION`], over [`LIMIT_MIN_WINDOWS`] at least).
    pub fn rationed(&self) -> bool {
        self.windows >= LIMIT_MIN_WINDOWS
            && self.errors == 0
            && (LIMIT_MIN_LOSS..=LIMIT_MAX_LOSS).contains(&self.loss())
            && self.index.is_some_and(|i| i < LIMIT_MAX_DISPERSION)
    }
}

/// A host's frames that failed entirely in events of several hosts ([`super::analyse`]),
/// in pieces of equal frames at a regular step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedFrames {
    /// (start of the first frame, step, frames, requests and errors per frame).
    pieces: Vec<(u64, u64, u64, u64, u64)>,
}

impl SharedFrames {
    /// Adds the frames of `run` that failed entirely.
    pub fn add_run(&mut self, run: &Run) {
        self.pieces.extend(run.whole_pieces());
    }

    /// Frames.
    pub fn frames(&self) -> u64 {
        self.pieces.iter().map(|p| p.2).sum()
    }

    /// Each frame: (start, requests, errors).
    fn each(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.pieces.iter().flat_map(|&(start, step, frames, n, e)| {
            (0..frames).map(move |i| (start + i * step, n, e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{HostOutages, HostRuns, analyse};
    use super::*;
    use crate::frame::Frame;
    use crate::quantizer::Quantizer;
    use crate::synth::{Synth, SynthProfile};

    const T0: u64 = 1_700_000_000_000_000;
    /// Long enough for [`LIMIT_MIN_WINDOWS`] windows of 64 frames of 100 ms, or of
    /// 4 frames of 1 s, with the settling time.
    const SECS: u64 = 600;

    /// splitmix64: deterministic draws in [0, 1).
    struct Draws(u64);

    impl Draws {
        fn next(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// A frame of `period_us` at `start_us`: `recv` replies, `lost` timeouts.
    fn frame(start_us: u64, period_us: u32, recv: u32, lost: u32) -> QFrame {
        QFrame {
            start_us,
            period_us,
            sent: recv + lost,
            lost,
            codes: vec![100; recv as usize],
            ..QFrame::default()
        }
    }

    /// The frames of a host that answers through a token bucket: at most `cap` replies
    /// a second (a bucket of `cap`, full at the start, as a router's is after a quiet
    /// time), pinged `rate` times a second in frames of `period_us`, each request sent
    /// up to 2 ms late (the daemon's scheduling), reaching the router 1 to 11 ms later
    /// and, with probability `loss`, lost on the way anyway.
    fn capped(cap: f64, rate: u32, period_us: u32, loss: f64, seed: u64) -> Vec<QFrame> {
        let mut d = Draws(seed);
        let mut frames: Vec<QFrame> = Vec::new();
        let (mut tokens, mut last_us) = (cap, 0);
        for i in 0..SECS * u64::from(rate) {
            let t = T0 + i * 1_000_000 / u64::from(rate) + (d.next() * 2000.0) as u64;
            // It reaches the router 1-11 ms later (in order).
            let at = (t + 1000 + (d.next() * 10_000.0) as u64).max(last_us);
            tokens = (tokens + cap * (at - last_us) as f64 / 1e6).min(cap);
            last_us = at;
            let answered = if tokens >= 1.0 {
                tokens -= 1.0;
                d.next() >= loss
            } else {
                false
            };
            let start = t - t % u64::from(period_us);
            if frames.last().is_none_or(|f| f.start_us != start) {
                frames.push(frame(start, period_us, 0, 0));
            }
            let f = frames.last_mut().unwrap();
            f.sent += 1;
            if answered {
                f.codes.push(100);
            } else {
                f.lost += 1;
            }
        }
        frames
    }

    /// The frames of a host with random loss (and no cap), from the lib's synthesizer.
    fn random(rate: u32, period_us: u32, loss: f64, seed: u64) -> Vec<QFrame> {
        let profile = SynthProfile {
            rate_per_s: rate,
            period_us,
            loss_prob: loss,
            burst_every_us: 0,
            burst_len_us: 0,
            ..SynthProfile::wired()
        };
        let mut s = Synth::new(profile, seed, T0);
        let q = Quantizer::default();
        let (mut f, mut qf) = (Frame::default(), QFrame::default());
        (0..SECS * 1_000_000 / u64::from(period_us))
            .map(|_| {
                s.next_frame(&mut f);
                qf.set_from(&f, &q);
                qf.clone()
            })
            .collect()
    }

    fn outages(frames: &[QFrame]) -> HostOutages {
        let mut r = HostRuns::new();
        for f in frames {
            r.add(f);
        }
        r.finish()
    }

    fn spread(frames: &[QFrame]) -> Spread {
        outages(frames).dispersion.judge(&SharedFrames::default())
    }

    #[test]
    fn a_cap_is_found_at_any_rate_and_frame_length() {
        for period_us in [100_000, 1_000_000] {
            for rate in [10, 50] {
                for cap in [1.0, 5.0, 10.0, 20.0] {
                    for loss in [0.0, 0.02] {
                        let frames = capped(cap, rate, period_us, loss, 7);
                        let s = spread(&frames);
                        let what = format!(
                            "cap {cap}/s, {rate} pings/s, frames of {period_us} µs, \
                             {loss} random loss on top: {s:?}"
                        );
                        if cap >= f64::from(rate) {
                            // No cap at work: nothing lost but by chance.
                            assert!(s.loss() < LIMIT_MIN_LOSS, "{what}");
                            assert!(!s.rationed(), "{what}");
                            continue;
                        }
                        let want = 1.0 - cap / f64::from(rate);
                        assert!((s.loss() - want).abs() < 0.03, "{what}");
                        // A window expects about 4 of the fewer of replies and failures
                        // (3.3 to 4.9), unless even the longest expects fewer or the
                        // shortest more.
                        let per_window = f64::from(s.window_frames) / s.frames as f64;
                        let fewer = s.replies.min(s.requests - s.replies) as f64;
                        let expected = fewer * per_window;
                        assert!(
                            (3.3..4.9).contains(&expected)
                                || (s.window_frames == 64 && expected < 4.9)
                                || (s.window_frames == 1 && expected >= 3.3),
                            "{what}"
                        );
                        // Far below the limit, whatever the rates.
                        assert!(s.index.unwrap() < LIMIT_MAX_DISPERSION / 2.0, "{what}");
                        assert!(s.rationed(), "{what}");
                        assert!(outages(&frames).limits_icmp(), "{what}");
                    }
                }
            }
        }
    }

    #[test]
    fn random_loss_is_no_cap_at_any_rate_and_frame_length() {
        let mut seed = 1;
        for period_us in [100_000, 1_000_000] {
            for rate in [10, 50] {
                for loss in [0.05, 0.3, 0.6, 0.9] {
                    seed += 1;
                    let frames = random(rate, period_us, loss, seed);
                    let s = spread(&frames);
                    let what = format!(
                        "{loss} random loss, {rate} pings/s, frames of {period_us} µs: {s:?}"
                    );
                    assert!((s.loss() - loss).abs() < 0.03, "{what}");
                    assert!(s.windows >= LIMIT_MIN_WINDOWS, "{what}");
                    // Chance: about 1, whatever the windows.
                    let i = s.index.unwrap();
                    assert!((0.7..1.3).contains(&i), "{what}");
                    assert!(!s.rationed(), "{what}");
                }
            }
        }
        // Bursts of loss spread more than chance.
        let mut s = Synth::new(SynthProfile::wifi(), 3, T0);
        let q = Quantizer::default();
        let (mut f, mut qf) = (Frame::default(), QFrame::default());
        let mut r = HostRuns::new();
        for _ in 0..SECS * 10 {
            s.next_frame(&mut f);
            qf.set_from(&f, &q);
            r.add(&qf);
        }
        let s = r.finish().dispersion.judge(&SharedFrames::default());
        assert!(s.index.unwrap() > 1.3, "{s:?}");
        assert!(!s.rationed(), "{s:?}");
    }

    #[test]
    fn a_host_capped_far_below_its_rate_is_not_down() {
        // 1 reply a second of 10, in 100 ms frames: 9 frames in 10 fail entirely.
        let frames = capped(1.0, 10, 100_000, 0.0, 11);
        let h = outages(&frames);
        assert!(h.is_down(), "{:?}", h.down_share());
        let a = analyse(&[h]);
        assert!(a.down.is_empty(), "{a:?}");
        assert_eq!(a.limits_icmp, [0]);
        assert!(a.events.is_empty());
        // A host really down most of the time (replies in one stretch) is down.
        let mut frames = capped(100.0, 10, 100_000, 0.0, 11);
        for f in &mut frames[1000..] {
            f.lost += f.received();
            f.codes.clear();
        }
        let a = analyse(&[outages(&frames)]);
        assert_eq!(a.down, [0]);
        assert!(a.limits_icmp.is_empty());
    }

    /// The spread computed the plain way: every window of `k` judged frames (cut at
    /// gaps, after the settling time), the requests of `shared` frames (by start)
    /// taken out of theirs.
    fn reference(frames: &[QFrame], k: u32, shared: &[u64]) -> (u64, u64, f64) {
        let mut windows: Vec<(u64, u64)> = Vec::new();
        let (mut open, mut in_open) = ((0u64, 0u64), 0);
        let (mut last_end, mut settle) = (None::<u64>, 0);
        let (mut requests, mut replies) = (0, 0);
        for f in frames {
            let continues =
                last_end.is_some_and(|e| f.start_us >= e && f.start_us - e <= MAX_SKIPPED_US);
            if !continues {
                if in_open > 0 {
                    windows.push(open);
                }
                (open, in_open) = ((0, 0), 0);
                settle = f.start_us + LIMIT_SETTLE_US;
            }
            last_end = Some(f.end_us());
            if f.start_us < settle {
                continue;
            }
            let r = u64::from(f.received());
            let n = if shared.contains(&f.start_us) {
                0
            } else {
                r + u64::from(f.lost)
            };
            requests += n;
            replies += r;
            open = (open.0 + n, open.1 + r);
            in_open += 1;
            if in_open == k {
                windows.push(open);
                (open, in_open) = ((0, 0), 0);
            }
        }
        if in_open > 0 {
            windows.push(open);
        }
        windows.retain(|w| w.0 > 0);
        let p = replies as f64 / requests as f64;
        let observed: f64 = windows
            .iter()
            .map(|&(n, r)| (r as f64 - n as f64 * p).powi(2))
            .sum();
        (
            windows.len() as u64,
            requests,
            observed / (requests as f64 * p * (1.0 - p)),
        )
    }

    #[test]
    fn shared_frames_are_taken_out_of_their_windows_exactly() {
        // Capped at 10 of 50 a second in 100 ms frames (windows of 4 frames), with a
        // dropout of every host from 300 s for 60 s (600 frames), and another of 2.5 s
        // (25 frames, not a multiple of 4) that this host's windows cut at both ends.
        let mut frames = capped(10.0, 50, 100_000, 0.0, 5);
        let dropouts = [3000..3600, 4001..4026];
        let mut shared = SharedFrames::default();
        let mut starts = Vec::new();
        for d in dropouts.clone() {
            for f in &mut frames[d.clone()] {
                f.lost += f.received();
                f.codes.clear();
            }
            // As the other hosts' event finds them: one run each.
            let h = outages(&frames[d.start - 3..d.end + 3]);
            assert_eq!(h.runs.len(), 1);
            shared.add_run(&h.runs[0]);
            starts.extend(frames[d].iter().map(|f| f.start_us));
        }
        assert_eq!(shared.frames(), 625);
        let h = outages(&frames);
        let alone = h.dispersion.judge(&SharedFrames::default());
        assert!(
            !alone.rationed(),
            "the dropouts look like bursts: {alone:?}"
        );
        let apart = h.dispersion.judge(&shared);
        assert!(apart.rationed(), "{apart:?}");
        assert!(h.limits_icmp_apart(&shared));
        assert_eq!(apart.window_frames, 4);
        let (windows, requests, index) = reference(&frames, 4, &starts);
        assert_eq!((apart.windows, apart.requests), (windows, requests));
        assert!(
            (apart.index.unwrap() - index).abs() < 1e-9,
            "{apart:?} vs {index}"
        );
        assert_eq!(apart.frames, alone.frames - 625);
        // At every window length the same.
        for k in WINDOW_FRAMES {
            let (i, _) = WINDOW_FRAMES
                .iter()
                .enumerate()
                .find(|&(_, &x)| x == k)
                .unwrap();
            let scale = &h.dispersion.scales[i];
            let mut taken: BTreeMap<(usize, u64), u64> = BTreeMap::new();
            for &t in &starts {
                let w = scale.find(t).expect("a shared frame is in a window kept");
                *taken.entry(w).or_default() += 5;
            }
            let mut sums = scale.sums;
            for ((p, _), n) in taken {
                let p = &scale.whole[p];
                sums.remove(p.requests, p.replies);
                if p.requests > n {
                    sums.add(p.requests - n, p.replies);
                }
            }
            assert_eq!(sums.windows, reference(&frames, k, &starts).0, "{k}");
        }
        // A long outage of its own is kept in few pieces, not a window each.
        let mut long = capped(10.0, 50, 100_000, 0.0, 5);
        for f in &mut long[500..5500] {
            f.lost += f.received();
            f.codes.clear();
        }
        let h = outages(&long);
        assert!(
            h.dispersion
                .scales
                .iter()
                .all(|s| s.whole.len() < 10 + 2 * 500 / 10),
            "{:?}",
            h.dispersion
                .scales
                .iter()
                .map(|s| s.whole.len())
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn gaps_and_clock_steps_cut_the_windows_and_settle_again() {
        let frames = capped(5.0, 50, 100_000, 0.0, 9);
        // The same data in two spans, the second one before the first (a clock step
        // back), each settling anew.
        let (a, b) = frames.split_at(frames.len() / 2);
        let mut stepped: Vec<QFrame> = b.to_vec();
        stepped.extend(a.iter().cloned());
        let s = spread(&stepped);
        let settle = LIMIT_SETTLE_US / 100_000;
        assert_eq!(s.frames, frames.len() as u64 - 2 * settle);
        assert_eq!(s.window_frames, 8);
        assert!(s.rationed(), "{s:?}");
        // Shared frames are found in either span (the pieces of windows are out of
        // time order): a frame of each that failed entirely.
        let h = outages(&stepped);
        let settled = settle as usize + 10;
        let whole = |fs: &[QFrame]| {
            fs[settled..]
                .iter()
                .find(|f| f.received() == 0)
                .expect("a frame without a reply")
                .clone()
        };
        let mut shared = SharedFrames::default();
        for f in [whole(b), whole(a)] {
            let mut r = HostRuns::new();
            r.add(&f);
            shared.add_run(&r.finish().runs[0]);
        }
        let apart = h.dispersion.judge(&shared);
        assert_eq!(apart.frames, s.frames - 2);
        assert_eq!(apart.requests, s.requests - 10);
        // A gap of more than MAX_SKIPPED_US: a new span, settling again.
        let mut gap = frames.clone();
        for f in &mut gap[3000..] {
            f.start_us += MAX_SKIPPED_US + 100_000;
        }
        assert_eq!(spread(&gap).frames, frames.len() as u64 - 2 * settle);
    }
}
