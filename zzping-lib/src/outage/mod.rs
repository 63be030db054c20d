//! Outages: runs of frames in which every request failed, found per host first, then the
//! events in which hosts fail together. One implementation for every view: `zzping
//! report`'s outage log and the viewer's outage index (the pyramid's, [`crate::pyramid`])
//! both come from here.
//!
//! # Definitions
//! - A request **failed** when it got no echo reply: it timed out (`lost`) or drew an
//!   error (a send failure or an ICMP error). A frame **failed entirely** when it has no
//!   reply and at least one failure ([`failed_entirely`]).
//! - A **run** of a host ([`Run`], found by [`HostRuns`]) is a maximal sequence of its
//!   frames that failed entirely (the *core*), widened by the partly failed frame on
//!   either side when there is one (the *edges*: an outage rarely starts or ends on a frame
//!   boundary, and the failures in those frames belong to it). A frame with a reply ends
//!   the core; a partly failed frame is the edge of the run before it, else of the run
//!   after it. Frames the daemon did not write (it skips periods in which nothing
//!   happened, e.g. at rates below one ping per frame) do not end a run, unless no frame
//!   came for more than [`MAX_SKIPPED_US`]: no data is not an outage.
//! - A host is **down** when the failures inside its runs are more than [`DOWN_SHARE`] of
//!   its requests with an outcome: it was down for the whole window or most of it,
//!   unless it limits ICMP (below). Its runs are set aside ([`analyse`]); it is reported
//!   on its own, not as an outage.
//! - An **event** ([`Event`]) is what the hosts that were otherwise up did together:
//!   runs of different hosts that start within one frame of each other, plus what
//!   neither host could know of the cause's instant, form one event. A common cause hits
//!   every host at once, but a host notices it only when a request fails: a far host's
//!   requests in flight fail up to its RTT before, a host's next request leaves up to
//!   its send interval after ([`Run::start_uncertainty_us`]: the RTT the frames before
//!   the run show, plus the send interval, at most [`MAX_START_UNCERTAINTY_US`]). So two
//!   runs start together when their starts are at most one frame plus both runs'
//!   uncertainties apart. The event lasts while at least two of them still fail,
//!   widened to the ends of the runs that stop within one frame after that; a run that
//!   goes on longer is cut there and its rest is an event of its own. A run that starts
//!   with no other is an event of one host. Hosts failing during an event for a reason of
//!   their own (their run began earlier or later) are listed as *also failing*.
//! - A host **limits ICMP** ([`HostOutages::limits_icmp`]) when it answers at a capped
//!   rate: a steady, silent share of its requests lost, with as many replies in every
//!   window of a few frames ([`ReplyDispersion`]: windows sized from the host's own
//!   rates so that each expects a few replies, [`WINDOW_EXPECTED`]; judged without its
//!   frames in events of several hosts, exactly, frame by frame). Events of that host
//!   alone are left out (counted in [`Analysis::limited_runs`]); when other hosts fail
//!   with it, the event keeps it.
//! - The **cause** of a set of failures ([`Failures::cause`]) is the reason (timeouts,
//!   or one [`ErrorKind`]) of more than half of them, if one dominates; with the router
//!   that sent the ICMP errors, when known.

mod events;
mod runs;
mod spread;

pub use events::{Analysis, Event, EventHost, analyse};
pub use runs::{HostOutages, HostRuns, Run};
pub use spread::{
    LIMIT_MAX_DISPERSION, LIMIT_MAX_LOSS, LIMIT_MIN_LOSS, LIMIT_MIN_WINDOWS, LIMIT_SETTLE_US,
    ReplyDispersion, SharedFrames, Spread, WINDOW_EXPECTED, WINDOW_FRAMES,
};

use crate::codec::QFrame;
use crate::frame::{ErrorKind, ErrorKinds};
use std::net::IpAddr;

/// A run continues across time without frames of its host up to this long (µs): the
/// daemon writes no frame for a period in which nothing happened, and at its slowest
/// rate (0.1 pings/s) a host gets one request every 10 s. A longer silence (the daemon
/// stopped) ends the run.
pub const MAX_SKIPPED_US: u64 = 10_000_000;
/// Most a run's start can be early or late, µs ([`Run::start_uncertainty_us`]): the
/// daemon's default request timeout. A request whose reply would come later fails
/// anyway, so no request fails earlier than that before a link does.
pub const MAX_START_UNCERTAINTY_US: u64 = 1_000_000;
/// A host whose runs hold more than this share of its requests with an outcome is
/// *down* (for the whole window or most of it).
pub const DOWN_SHARE: f64 = 0.5;
/// Routers remembered per [`Failures`] (the ones that sent the most errors are kept).
const MAX_ROUTERS: usize = 8;

/// True when every request of the frame failed: no reply, and at least one timeout or
/// error. The outage index and runs are made of such frames.
pub fn failed_entirely(f: &QFrame) -> bool {
    f.received() == 0 && (f.lost > 0 || f.errors > 0)
}

/// True when some request of the frame failed.
fn failed_some(f: &QFrame) -> bool {
    f.lost > 0 || f.errors > 0
}

/// True when some request of the frame has an outcome (a reply, a timeout, an error).
fn has_outcome(f: &QFrame) -> bool {
    f.received() > 0 || failed_some(f)
}

/// Why a set of requests failed, when one reason dominates ([`Failures::cause`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cause {
    /// No reply in time, no error either.
    Timeout,
    /// Errors of this kind.
    Error(ErrorKind),
    /// Errors whose kind was not recorded (files of format version 1, legacy formats).
    UnknownError,
}

impl Cause {
    /// Stable machine name: `timeout`, an [`ErrorKind::name`], or `error`.
    pub fn name(self) -> &'static str {
        match self {
            Cause::Timeout => "timeout",
            Cause::Error(k) => k.name(),
            Cause::UnknownError => "error",
        }
    }

    /// True for failures of this machine itself ([`ErrorKind::is_local`]).
    pub fn is_local(self) -> bool {
        matches!(self, Cause::Error(k) if k.is_local())
    }

    /// What a person reads: "no reply (timeouts)", "no route from this machine",
    /// "host unreachable, said 198.18.0.1" (`router`: who sent the ICMP errors).
    pub fn describe(self, router: Option<IpAddr>) -> String {
        match (self, router) {
            (Cause::Timeout, _) => "no reply (timeouts)".into(),
            (Cause::Error(k), Some(r)) if !k.is_local() => format!("{}, said {r}", k.describe()),
            (Cause::Error(k), _) => k.describe().into(),
            (Cause::UnknownError, _) => "errors (kind not recorded)".into(),
        }
    }
}

/// Failed requests by reason: timeouts, errors by kind, and the routers that sent the
/// ICMP errors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Failures {
    /// Requests that timed out.
    pub timeouts: u64,
    /// Requests that drew an error (of a known kind or not).
    pub errors: u64,
    kinds: [u64; ErrorKind::COUNT],
    /// (router, errors it sent), at most [`MAX_ROUTERS`], the most frequent kept.
    routers: Vec<(IpAddr, u64)>,
}

impl Failures {
    /// Adds the failures of frame `f`.
    pub fn add_frame(&mut self, f: &QFrame) {
        self.add_each(&FrameFailures::of(f), 1);
    }

    /// Adds `n` times the failures of one frame.
    fn add_each(&mut self, c: &FrameFailures, n: u64) {
        self.timeouts += u64::from(c.lost) * n;
        self.errors += u64::from(c.errors) * n;
        for (k, m) in c.kinds.iter() {
            self.kinds[k as usize] += u64::from(m) * n;
        }
        if let Some(r) = c.router {
            // A frame names one router (the last that sent an error): weigh it by the
            // frame's errors that came from the network.
            let from_net: u64 = c
                .kinds
                .iter()
                .filter(|(k, _)| !k.is_local())
                .map(|(_, m)| u64::from(m))
                .sum();
            let w = if from_net > 0 {
                from_net
            } else {
                u64::from(c.errors)
            };
            self.add_router(r, w * n);
        }
    }

    fn add_router(&mut self, r: IpAddr, n: u64) {
        if let Some(e) = self.routers.iter_mut().find(|(a, _)| *a == r) {
            e.1 += n;
        } else if self.routers.len() < MAX_ROUTERS {
            self.routers.push((r, n));
        } else if let Some(min) = self.routers.iter_mut().min_by_key(|(_, c)| *c)
            && min.1 < n
        {
            *min = (r, n);
        }
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Failures) {
        self.timeouts += other.timeouts;
        self.errors += other.errors;
        for (a, b) in self.kinds.iter_mut().zip(other.kinds) {
            *a += b;
        }
        for &(r, n) in &other.routers {
            self.add_router(r, n);
        }
    }

    /// Failed requests: timeouts and errors.
    pub fn failed(&self) -> u64 {
        self.timeouts + self.errors
    }

    /// Errors of `kind`.
    pub fn kind(&self, kind: ErrorKind) -> u64 {
        self.kinds[kind as usize]
    }

    /// The kinds with errors, by number, with their counts.
    pub fn kinds(&self) -> impl Iterator<Item = (ErrorKind, u64)> + '_ {
        ErrorKind::ALL
            .into_iter()
            .zip(self.kinds)
            .filter(|&(_, n)| n > 0)
    }

    /// Errors whose kind was not recorded (format version 1 frames, legacy formats).
    pub fn unknown_kind(&self) -> u64 {
        self.errors.saturating_sub(self.kinds.iter().sum())
    }

    /// Errors of this machine itself ([`ErrorKind::is_local`] kinds).
    pub fn local(&self) -> u64 {
        self.kinds()
            .filter(|(k, _)| k.is_local())
            .map(|(_, n)| n)
            .sum()
    }

    /// The routers that sent ICMP errors, with the errors each sent (as far as frames
    /// tell: a frame names the last router only), most first.
    pub fn routers(&self) -> Vec<(IpAddr, u64)> {
        let mut v = self.routers.clone();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }

    /// The router that sent the most ICMP errors, if any.
    pub fn router(&self) -> Option<IpAddr> {
        self.routers().first().map(|&(r, _)| r)
    }

    /// The reason of more than half of the failures, with its count; `None` when none
    /// dominates or nothing failed.
    pub fn cause(&self) -> Option<(Cause, u64)> {
        let total = self.failed();
        std::iter::once((Cause::Timeout, self.timeouts))
            .chain(self.kinds().map(|(k, n)| (Cause::Error(k), n)))
            .chain(std::iter::once((Cause::UnknownError, self.unknown_kind())))
            .find(|&(_, n)| n > 0 && 2 * n > total)
    }

    /// The dominant cause in words, with the router for ICMP errors ("host
    /// unreachable, said 198.18.0.1"), if one dominates.
    pub fn cause_text(&self) -> Option<String> {
        self.cause().map(|(c, _)| c.describe(self.router()))
    }
}

/// The failures of one frame: what a [`Run`] keeps per frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FrameFailures {
    /// Every request failed (a core frame, not an edge).
    whole: bool,
    lost: u32,
    errors: u32,
    kinds: ErrorKinds,
    router: Option<IpAddr>,
}

impl FrameFailures {
    fn of(f: &QFrame) -> Self {
        Self {
            whole: failed_entirely(f),
            lost: f.lost,
            errors: f.errors,
            kinds: f.error_kinds,
            router: f.router,
        }
    }
}

/// Frames and hosts for the tests of this module and its stages.
#[cfg(test)]
mod testutil {
    use super::*;

    pub(crate) const P: u32 = 100_000;
    pub(crate) const T0: u64 = 1_700_000_000_000_000;

    /// A frame at slot `i`: `recv` replies, `lost` timeouts, `errs` errors of `kind`.
    pub(crate) fn fr(i: u64, recv: u32, lost: u32, errs: u32, kind: Option<ErrorKind>) -> QFrame {
        let mut f = QFrame {
            start_us: T0 + i * u64::from(P),
            period_us: P,
            sent: recv + lost + errs,
            lost,
            errors: errs,
            codes: vec![100; recv as usize],
            ..QFrame::default()
        };
        if let Some(k) = kind {
            f.error_kinds.add(k, errs);
        }
        f
    }

    pub(crate) fn t(i: u64) -> u64 {
        T0 + i * u64::from(P)
    }

    /// Runs of a host from (slot, recv, lost) frames.
    pub(crate) fn host(frames: &[(u64, u32, u32)]) -> HostOutages {
        let mut h = HostRuns::new();
        for &(i, r, l) in frames {
            h.add(&fr(i, r, l, 0, None));
        }
        h.finish()
    }

    pub(crate) fn spans(h: &HostOutages) -> Vec<(u64, u64, u64, u64)> {
        h.runs
            .iter()
            .map(|r| (r.start_us, r.end_us, r.core_start_us, r.core_end_us))
            .collect()
    }

    /// Frames of a host over `n` slots: everything answered except in `fail` (whole
    /// frames, slots) and `edges` (partly failed frames).
    pub(crate) fn timeline(n: u64, fail: &[std::ops::Range<u64>], edges: &[u64]) -> HostOutages {
        let frames: Vec<(u64, u32, u32)> = (0..n)
            .map(|i| {
                if fail.iter().any(|r| r.contains(&i)) {
                    (i, 0, 5)
                } else if edges.contains(&i) {
                    (i, 3, 2)
                } else {
                    (i, 5, 0)
                }
            })
            .collect();
        host(&frames)
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    #[test]
    fn errors_fail_a_frame_and_name_the_cause() {
        let mut r = HostRuns::new();
        r.add(&fr(0, 2, 0, 0, None));
        for i in 1..4 {
            let mut f = fr(i, 0, 0, 4, Some(ErrorKind::HostUnreachable));
            f.router = Some("198.18.0.1".parse().unwrap());
            r.add(&f);
        }
        r.add(&fr(4, 0, 1, 3, Some(ErrorKind::NoRoute)));
        r.add(&fr(5, 2, 0, 0, None));
        let h = r.finish();
        assert_eq!(spans(&h), [(t(1), t(5), t(1), t(5))]);
        let f = &h.runs[0].failures;
        assert_eq!((f.timeouts, f.errors, f.failed()), (1, 15, 16));
        assert_eq!(f.kind(ErrorKind::HostUnreachable), 12);
        assert_eq!(f.local(), 3);
        assert_eq!(f.router(), Some("198.18.0.1".parse().unwrap()));
        assert_eq!(
            f.cause(),
            Some((Cause::Error(ErrorKind::HostUnreachable), 12))
        );
        assert_eq!(
            f.cause_text().as_deref(),
            Some("host unreachable, said 198.18.0.1")
        );
        // No reason over half: no cause.
        let mut g = Failures::default();
        g.add_frame(&fr(0, 0, 2, 2, Some(ErrorKind::NoRoute)));
        assert_eq!(g.cause(), None);
        g.add_frame(&fr(0, 0, 0, 1, Some(ErrorKind::NoRoute)));
        assert_eq!(g.cause(), Some((Cause::Error(ErrorKind::NoRoute), 3)));
        assert_eq!(
            g.cause_text().as_deref(),
            Some("no route from this machine")
        );
        // Errors of unknown kind (version 1 files).
        let mut u = Failures::default();
        u.add_frame(&fr(0, 0, 0, 3, None));
        assert_eq!(u.unknown_kind(), 3);
        assert_eq!(u.cause().map(|c| c.0), Some(Cause::UnknownError));
    }
}
