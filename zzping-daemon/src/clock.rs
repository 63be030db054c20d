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
//!
//! # Suspend
//! While the machine is suspended `CLOCK_MONOTONIC` stops and `CLOCK_BOOTTIME` runs on:
//! their difference grows by the time suspended ([`SuspendWatch`]). The wall clock jumps
//! forward at resume, which the daemon's clock-step check sees first; it then asks the
//! watch how much of the step was a suspend. Tests cannot suspend the machine: with
//! [`SUSPEND_ENV`] set to `AFTER_S,LEN_S`, from `AFTER_S` seconds (monotonic) after the
//! first clock reading on, `CLOCK_BOOTTIME` and the wall clock (readings and kernel
//! stamps) read `LEN_S` seconds later than the real ones, as after a suspend of that
//! length.

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

/// The environment variable of the test-only simulated suspend (see the module docs).
pub const SUSPEND_ENV: &str = "ZZPING_TEST_SUSPEND";

/// The simulated suspend: monotonic ns from which it applies, and its length, ns.
static SUSPEND: std::sync::OnceLock<Option<(u64, i64)>> = std::sync::OnceLock::new();

/// Parses `AFTER_S,STEP_S` (seconds, decimals allowed).
pub fn parse_wall_clock_step(v: &str) -> Option<(f64, f64)> {
    let (a, s) = v.split_once(',')?;
    let (a, s): (f64, f64) = (a.trim().parse().ok()?, s.trim().parse().ok()?);
    (a.is_finite() && a >= 0.0 && s.is_finite() && s.abs() < 1e10).then_some((a, s))
}

/// A test shift read from `var` (`AFTER_S,SHIFT_S`): from when (monotonic ns), by how
/// much (ns). `nonnegative`: a negative shift is refused.
fn test_shift(var: &str, nonnegative: bool) -> Option<(u64, i64)> {
    let (after_s, by_s) = parse_wall_clock_step(&std::env::var(var).ok()?)?;
    if nonnegative && by_s < 0.0 {
        return None;
    }
    let from = read_raw(libc::CLOCK_MONOTONIC).saturating_add((after_s * 1e9) as u64);
    Some((from, (by_s * 1e9) as i64))
}

fn step() -> Option<(u64, i64)> {
    *STEP.get_or_init(|| test_shift(WALL_CLOCK_STEP_ENV, false))
}

fn suspend() -> Option<(u64, i64)> {
    *SUSPEND.get_or_init(|| test_shift(SUSPEND_ENV, true))
}

/// `t` shifted by `shift` once it applies.
fn shifted(t: u64, shift: Option<(u64, i64)>) -> u64 {
    match shift {
        Some((from, by)) if read_raw(libc::CLOCK_MONOTONIC) >= from => t.saturating_add_signed(by),
        _ => t,
    }
}

/// A wall-clock reading (or kernel stamp) `real_ns` as the daemon sees it: shifted by the
/// test step and the simulated suspend once they apply.
fn seen(real_ns: u64) -> u64 {
    shifted(shifted(real_ns, step()), suspend())
}

/// A kernel timestamp (`SO_TIMESTAMPNS`, `SO_TIMESTAMPING`: wall clock) as ns, on the
/// same clock as [`real_ns`] (see the module docs on the test step).
pub fn kernel_stamp_ns(ts: &libc::timespec) -> u64 {
    seen(timespec_ns(ts))
}

fn read(clock: libc::clockid_t) -> u64 {
    let t = read_raw(clock);
    match clock {
        libc::CLOCK_REALTIME => seen(t),
        libc::CLOCK_BOOTTIME => shifted(t, suspend()),
        _ => t,
    }
}

/// `CLOCK_BOOTTIME` minus `CLOCK_MONOTONIC`, ns: the time the machine spent suspended
/// since boot. The monotonic clock is read first: boot time, which never runs behind
/// it, read after it can only be ahead by the suspends plus the moment between the two
/// readings (microseconds, or a preemption), never behind. (The mean of two monotonic
/// readings around the boot-time one came out microseconds below zero on a VM whose
/// readings took long.)
///
/// Each pair of readings can only overstate it (by the moment between them), so the
/// smaller of two pairs is taken: a preemption between the readings of one pair, which
/// could look like a short suspend, is not counted unless it hits both.
pub fn suspended_total_ns() -> i128 {
    let pair = || {
        let m = read(libc::CLOCK_MONOTONIC);
        let b = read(libc::CLOCK_BOOTTIME);
        i128::from(b) - i128::from(m)
    };
    pair().min(pair())
}

/// Suspends shorter than this are not reported (the readings' own jitter is
/// microseconds; a real suspend lasts seconds).
pub const SUSPEND_MIN_NS: i128 = 50_000_000;

/// Finds suspends: how much more `CLOCK_BOOTTIME` advanced than `CLOCK_MONOTONIC` since
/// the last check (see the module docs).
#[derive(Debug)]
pub struct SuspendWatch {
    /// [`suspended_total_ns`] at the last check.
    last_ns: i128,
}

impl SuspendWatch {
    /// A watch counting from now.
    pub fn new() -> Self {
        Self {
            last_ns: suspended_total_ns(),
        }
    }

    /// The time suspended since the last check (ns), when at least [`SUSPEND_MIN_NS`].
    pub fn check(&mut self) -> Option<u64> {
        self.observe(suspended_total_ns())
    }

    /// [`SuspendWatch::check`] with the reading handed in.
    pub fn observe(&mut self, total_ns: i128) -> Option<u64> {
        let grown = total_ns - self.last_ns;
        if grown < SUSPEND_MIN_NS {
            return None;
        }
        self.last_ns = total_ns;
        u64::try_from(grown).ok()
    }
}

impl Default for SuspendWatch {
    fn default() -> Self {
        Self::new()
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
    fn a_suspend_is_the_growth_of_boottime_over_monotonic() {
        let mut w = SuspendWatch { last_ns: 1_000 };
        assert_eq!(w.observe(1_000 + SUSPEND_MIN_NS - 1), None);
        assert_eq!(w.observe(1_000 + 12_300_000_000), Some(12_300_000_000));
        // Counted once.
        assert_eq!(w.observe(1_000 + 12_300_000_000), None);
        // On this machine now: nothing (a test is not suspended between two readings).
        let mut w = SuspendWatch::new();
        assert_eq!(w.check(), None);
        assert!(suspended_total_ns() >= 0);
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
