//! Clock readings. The core logic never reads a clock itself: the event loop samples
//! [`Now`] and passes it in, so tests drive the engine with a fake clock.
//!
//! # A wall-clock step for tests
//! `CLOCK_REALTIME` is not namespaced, so the end-to-end tests of what a wall-clock step
//! does (retention, frame flags) cannot step the machine's clock. They set
//! [`WALL_CLOCK_STEP_ENV`] to `AFTER_S,STEP_S`: from `AFTER_S` seconds (monotonic) after
//! the first clock reading on, every wall-clock reading the daemon takes and every kernel
//! timestamp it reads is `STEP_S` seconds (may be negative) later than the real one, as
//! if the wall clock had been stepped then. Read once; the daemon warns at start when it
//! is set. Unset (always, outside tests), readings are untouched.

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

/// The environment variable of the test-only wall-clock step (see the module docs).
pub const WALL_CLOCK_STEP_ENV: &str = "ZZPING_TEST_WALL_CLOCK_STEP";

/// The test step: monotonic ns from which it applies, and the step, ns.
static STEP: std::sync::OnceLock<Option<(u64, i64)>> = std::sync::OnceLock::new();

/// Parses `AFTER_S,STEP_S` (seconds, decimals allowed).
pub fn parse_wall_clock_step(v: &str) -> Option<(f64, f64)> {
    let (a, s) = v.split_once(',')?;
    let (a, s): (f64, f64) = (a.trim().parse().ok()?, s.trim().parse().ok()?);
    (a.is_finite() && a >= 0.0 && s.is_finite() && s.abs() < 1e10).then_some((a, s))
}

fn step() -> Option<(u64, i64)> {
    *STEP.get_or_init(|| {
        let (after_s, step_s) = parse_wall_clock_step(&std::env::var(WALL_CLOCK_STEP_ENV).ok()?)?;
        let from = read_raw(libc::CLOCK_MONOTONIC).saturating_add((after_s * 1e9) as u64);
        Some((from, (step_s * 1e9) as i64))
    })
}

/// A wall-clock reading (or kernel stamp) `real_ns` as the daemon sees it: shifted by the
/// test step once it applies.
fn seen(real_ns: u64) -> u64 {
    match step() {
        Some((from, by)) if read_raw(libc::CLOCK_MONOTONIC) >= from => {
            real_ns.saturating_add_signed(by)
        }
        _ => real_ns,
    }
}

/// A kernel timestamp (`SO_TIMESTAMPNS`, `SO_TIMESTAMPING`: wall clock) as ns, on the
/// same clock as [`real_ns`] (see the module docs on the test step).
pub fn kernel_stamp_ns(ts: &libc::timespec) -> u64 {
    seen(timespec_ns(ts))
}

fn read(clock: libc::clockid_t) -> u64 {
    let t = read_raw(clock);
    if clock == libc::CLOCK_REALTIME {
        seen(t)
    } else {
        t
    }
}

fn read_raw(clock: libc::clockid_t) -> u64 {
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
    fn the_test_step_is_parsed_strictly() {
        assert_eq!(parse_wall_clock_step("1.5,-60"), Some((1.5, -60.0)));
        assert_eq!(
            parse_wall_clock_step(" 0 , 34560000 "),
            Some((0.0, 34_560_000.0))
        );
        for bad in ["", "5", "a,b", "-1,5", "1,inf", "1,1e12"] {
            assert_eq!(parse_wall_clock_step(bad), None, "{bad:?}");
        }
    }

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
