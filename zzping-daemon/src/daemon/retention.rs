//! Retention: history is never deleted by a clock.
//!
//! `retention_days = N` keeps the newest day on disk and the N days before it; older day
//! files (and their sidecars) are deleted, at most [`MAX_FILES_PER_PASS`] per pass (a
//! pass runs at start, hourly, after a SIGHUP, and again after a second while files are
//! due). Which day is newest is what the files say (the newest non-empty day file of any
//! host), never the wall clock, with two guards:
//!
//! - **A wall clock far from the files suspends deletion.** When the wall clock is more
//!   than [`MAX_CLOCK_SKEW_US`] (a day) away from the newest day on disk (a clock that
//!   jumped, a machine that booted with a wrong clock, or a long stop of the daemon),
//!   nothing is deleted and a warning says why; deletion resumes when the files and the
//!   clock agree again.
//! - **The files may not run ahead of time.** The newest day counted is at most the
//!   *history clock*: the newest day on disk when this daemon started, plus the time it
//!   has run since (monotonic). A wall clock stepped forward while the daemon runs makes
//!   it write files dated in the future; they do not make the real history older (a
//!   warning says the files ran ahead).

use std::path::Path;

use tracing::{debug, info, warn};
use zzping_lib::store;
use zzping_lib::time::{US_PER_DAY, day_name, day_start_us};

use crate::clock::Now;

/// Day files deleted per pass at most (deleting runs on the pinger's thread).
pub const MAX_FILES_PER_PASS: usize = 64;
/// A wall clock further than this from the newest day on disk suspends deletion, µs.
pub const MAX_CLOCK_SKEW_US: u64 = US_PER_DAY;

/// Why the last pass warned (so a warning is logged once, not every pass).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Warned {
    None,
    /// The wall clock is far from the files: deletion suspended.
    Skew,
    /// The files are ahead of the history clock: it counts instead.
    Ahead,
}

/// The retention state of a daemon run.
#[derive(Debug)]
pub(super) struct Retention {
    /// The history clock's origin: the newest day on disk at start (the wall clock's day
    /// when there was none), µs, and the monotonic time then, ns.
    origin_us: u64,
    origin_mono_ns: u64,
    warned: Warned,
}

impl Retention {
    /// The state at start, from the files under `data_dir`.
    pub(super) fn new(data_dir: &Path, now: Now) -> Self {
        let origin_us = match store::newest_day(data_dir) {
            Ok(Some((day, _))) => day,
            Ok(None) => day_start_us(now.real_us()),
            Err(e) => {
                warn!("retention: {e}");
                day_start_us(now.real_us())
            }
        };
        Retention {
            origin_us,
            origin_mono_ns: now.mono_ns,
            warned: Warned::None,
        }
    }

    /// The history clock at `now`, µs.
    fn history_us(&self, now: Now) -> u64 {
        self.origin_us
            .saturating_add(now.mono_ns.saturating_sub(self.origin_mono_ns) / 1000)
    }

    fn warn_once(&mut self, w: Warned, msg: impl FnOnce() -> String) {
        if self.warned != w {
            warn!("retention: {}", msg());
            self.warned = w;
        }
    }

    /// One pass keeping `days` days before the newest; returns whether more files are due
    /// (run another pass soon).
    pub(super) fn pass(&mut self, data_dir: &Path, days: u32, now: Now) -> bool {
        let (newest, file) = match store::newest_day(data_dir) {
            Ok(Some(n)) => n,
            Ok(None) => return false,
            Err(e) => {
                warn!("retention: {e}");
                return false;
            }
        };
        let wall = now.real_us();
        let skew = if wall < newest {
            newest - wall
        } else {
            wall.saturating_sub(newest.saturating_add(US_PER_DAY))
        };
        if skew > MAX_CLOCK_SKEW_US {
            self.warn_once(Warned::Skew, || {
                format!(
                    "suspended: the wall clock ({}) is {:.1} days from the newest day on disk \
                     ({}, {}); nothing is deleted until they agree (history is never deleted \
                     by a clock)",
                    zzping_lib::time::rfc3339_us(wall),
                    skew as f64 / US_PER_DAY as f64,
                    day_name(newest),
                    file.display()
                )
            });
            return false;
        }
        let history = day_start_us(self.history_us(now));
        let origin = self.origin_us;
        let reference = if newest > history {
            self.warn_once(Warned::Ahead, || {
                format!(
                    "the newest day on disk ({}, {}) is ahead of the history clock ({}: the \
                     newest day at start, {}, plus the time this daemon has run); days are \
                     counted from the history clock (was the wall clock stepped?)",
                    day_name(newest),
                    file.display(),
                    day_name(history),
                    day_name(origin)
                )
            });
            history
        } else {
            if self.warned != Warned::None {
                info!(
                    "retention: resumed, counting from {} (newest day on disk)",
                    day_name(newest)
                );
                self.warned = Warned::None;
            }
            newest
        };
        let cutoff = reference.saturating_sub(u64::from(days) * US_PER_DAY);
        let r = store::remove_days_before(data_dir, cutoff, MAX_FILES_PER_PASS);
        for p in &r.removed {
            info!("retention: removed {}", p.display());
        }
        for e in &r.errors {
            warn!("retention: {e}");
        }
        debug!(
            "retention: kept every day from {} ({} days before {}); {} files removed{}",
            day_name(cutoff),
            days,
            day_name(reference),
            r.removed.len(),
            if r.more { ", more due" } else { "" }
        );
        r.more
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zzping_lib::store::layout;

    /// 2026-01-01T00:00:00Z, µs.
    const DAY0: u64 = 1_767_225_600_000_000;
    const MONO0: u64 = 1_000_000_000;

    fn at(wall_us: u64, mono_ns: u64) -> Now {
        Now {
            mono_ns,
            real_ns: wall_us * 1000,
        }
    }

    /// Day files (one byte each) of host `h` for days `days` after DAY0.
    fn days(data: &Path, h: &str, days: impl IntoIterator<Item = u64>) {
        let dir = data.join(h);
        std::fs::create_dir_all(&dir).unwrap();
        for d in days {
            std::fs::write(layout::day_file(&dir, DAY0 + d * US_PER_DAY), b"x").unwrap();
        }
    }

    fn left(data: &Path, h: &str) -> Vec<u64> {
        store::day_files(&data.join(h))
            .unwrap()
            .into_iter()
            .filter_map(|d| Some((d.day_start_us? - DAY0) / US_PER_DAY))
            .collect()
    }

    #[test]
    fn keeps_the_newest_day_and_the_days_before_it_counted_from_the_files() {
        let dir = tempfile::tempdir().unwrap();
        days(dir.path(), "a", 0..10);
        days(dir.path(), "b", [2]);
        // The wall clock is late on day 9 (the newest file's day).
        let now = at(DAY0 + 9 * US_PER_DAY + 80_000_000_000, MONO0);
        let mut r = Retention::new(dir.path(), now);
        assert!(!r.pass(dir.path(), 3, now));
        assert_eq!(left(dir.path(), "a"), [6, 7, 8, 9]);
        assert!(left(dir.path(), "b").is_empty());
        assert_eq!(r.warned, Warned::None);
    }

    #[test]
    fn a_wall_clock_far_from_the_files_deletes_nothing_until_they_agree() {
        let dir = tempfile::tempdir().unwrap();
        days(dir.path(), "a", 0..10);
        // The daemon starts with its wall clock 400 days ahead (or after a long stop).
        let now = at(DAY0 + 409 * US_PER_DAY, MONO0);
        let mut r = Retention::new(dir.path(), now);
        assert!(!r.pass(dir.path(), 3, now));
        assert_eq!(r.warned, Warned::Skew);
        assert_eq!(left(dir.path(), "a").len(), 10);
        // Also when the clock is far behind the files.
        let behind = at(DAY0 - 30 * US_PER_DAY, MONO0 + 1);
        assert!(!r.pass(dir.path(), 3, behind));
        assert_eq!(left(dir.path(), "a").len(), 10);
    }

    #[test]
    fn files_dated_ahead_of_the_history_clock_do_not_age_the_history() {
        let dir = tempfile::tempdir().unwrap();
        days(dir.path(), "a", 0..10);
        let start = at(DAY0 + 9 * US_PER_DAY + 3_600_000_000, MONO0);
        let mut r = Retention::new(dir.path(), start);
        assert!(!r.pass(dir.path(), 3, start));
        assert_eq!(left(dir.path(), "a"), [6, 7, 8, 9]);
        // One minute later the wall clock steps 400 days ahead; the daemon writes there.
        days(dir.path(), "a", [409]);
        let stepped = at(
            DAY0 + 409 * US_PER_DAY + 60_000_000,
            MONO0 + 60 * 1_000_000_000,
        );
        assert!(!r.pass(dir.path(), 3, stepped));
        assert_eq!(r.warned, Warned::Ahead);
        assert_eq!(left(dir.path(), "a"), [6, 7, 8, 9, 409]);
        // As the daemon runs, the history clock moves on: two days later, two days go.
        let later = at(
            DAY0 + 411 * US_PER_DAY,
            MONO0 + 2 * US_PER_DAY * 1000 + 1_000_000_000,
        );
        assert!(!r.pass(dir.path(), 3, later));
        assert_eq!(left(dir.path(), "a"), [8, 9, 409]);
    }

    #[test]
    fn a_pass_is_bounded_and_says_more_are_due() {
        let dir = tempfile::tempdir().unwrap();
        let n = MAX_FILES_PER_PASS as u64 + 10;
        days(dir.path(), "a", 0..n + 1);
        let now = at(DAY0 + n * US_PER_DAY, MONO0);
        let mut r = Retention::new(dir.path(), now);
        assert!(r.pass(dir.path(), 1, now));
        assert_eq!(
            left(dir.path(), "a").len(),
            n as usize + 1 - MAX_FILES_PER_PASS
        );
        assert!(!r.pass(dir.path(), 1, now));
        assert_eq!(left(dir.path(), "a"), [n - 1, n]);
    }
}
