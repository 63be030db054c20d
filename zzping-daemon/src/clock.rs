//! Clock readings. The core logic never reads a clock itself: the event loop samples
//! [`Now`] and passes it in, so tests drive the engine with a fake clock.

/// A pair of simultaneous clock readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Now {
    /// `CLOCK_MONOTONIC`, ns. Used for scheduling, timeouts and RTTs.
    pub mono_ns: u64,
    /// `CLOCK_REALTIME`, ns since the Unix epoch. Used for frame times and to interpret
    /// kernel receive timestamps.
    pub real_ns: u64,
}

impl Now {
    /// Realtime minus monotonic, ns.
    pub fn offset_ns(&self) -> i128 {
        i128::from(self.real_ns) - i128::from(self.mono_ns)
    }

    /// Realtime in µs since the epoch.
    pub fn real_us(&self) -> u64 {
        self.real_ns / 1000
    }
}

fn read(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime only writes it.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        return 0;
    }
    timespec_ns(&ts)
}

/// A timespec as ns (negative times clamp to 0).
pub fn timespec_ns(ts: &libc::timespec) -> u64 {
    if ts.tv_sec < 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec.max(0) as u64)
}

/// `CLOCK_MONOTONIC` now, ns.
pub fn mono_ns() -> u64 {
    read(libc::CLOCK_MONOTONIC)
}

/// `CLOCK_REALTIME` now, ns since the Unix epoch. The receive thread reads it just
/// before each `recvmsg`: a kernel receive stamp later than this reading was taken inside
/// the call (see [`crate::recv`]).
pub fn real_ns() -> u64 {
    read(libc::CLOCK_REALTIME)
}

/// Samples both clocks (monotonic, realtime, monotonic; the mean of the two monotonic
/// readings pairs with the realtime one). If the thread was preempted between the
/// readings (they span more than 10 µs) it samples again, up to 4 times, keeping the
/// tightest sample, so the realtime/monotonic offset is not mistaken for a clock step.
pub fn now() -> Now {
    let mut best = (u64::MAX, Now::default());
    for _ in 0..4 {
        let m1 = read(libc::CLOCK_MONOTONIC);
        let r = read(libc::CLOCK_REALTIME);
        let m2 = read(libc::CLOCK_MONOTONIC);
        let span = m2.saturating_sub(m1);
        let n = Now {
            mono_ns: m1 + span / 2,
            real_ns: r,
        };
        if span <= 10_000 {
            return n;
        }
        if span < best.0 {
            best = (span, n);
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_move_forward_and_realtime_is_recent() {
        let a = now();
        let b = now();
        assert!(b.mono_ns >= a.mono_ns);
        // After 2020-01-01.
        assert!(a.real_ns > 1_577_836_800 * 1_000_000_000);
        assert!(a.mono_ns > 0);
    }
}
