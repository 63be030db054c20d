//! Live-stream latency and the CPU cost of subscribers.

use crate::figure::Figure;
use crate::suites::Ctx;
use anyhow::Result;

/// Runs the suite.
pub fn run(_ctx: &Ctx) -> Result<Vec<Figure>> {
    Ok(vec![Figure::skipped(
        "live.latency_ms_p99",
        "the daemon does not serve the live stream yet",
    )])
}
