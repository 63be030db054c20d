//! The benchmark suites. Each returns its figures; a suite that cannot run here (missing
//! privileges or tools) says so in a `skipped` figure rather than inventing a number.

pub mod accuracy;
pub mod daemon;
pub mod format;
pub mod gui;
pub mod live;
pub mod pyramid;
pub mod tools;

use std::path::PathBuf;

/// What every suite gets.
pub struct Ctx {
    /// Short runs.
    pub quick: bool,
    /// Repository root (scenario files live in `tests/scenarios`).
    pub workspace: PathBuf,
}

impl Ctx {
    /// Path of a scenario file.
    pub fn scenario(&self, name: &str) -> PathBuf {
        self.workspace.join("tests/scenarios").join(name)
    }
}

/// Nearest-rank percentile of an unsorted slice (sorts it).
pub fn percentile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// Current resident set of this process, MB (from /proc/self/statm).
pub fn self_rss_mb() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN);
    pages * 4096.0 / 1e6
}
