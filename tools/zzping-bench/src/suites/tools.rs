//! Command-line tool throughput, and legacy-format sizes for the format suite.

use crate::figure::Figure;
use crate::suites::Ctx;
use anyhow::Result;
use zzping_lib::frame::Frame;

/// Runs the suite.
pub fn run(_ctx: &Ctx) -> Result<Vec<Figure>> {
    Ok(vec![Figure::skipped(
        "tools.export_frames_per_s",
        "the zzping export benchmark hook is not wired into zzping-bench yet",
    )])
}

/// Bytes per ping of the original zzping's encodings of the same frames.
pub fn legacy_sizes(_frames: &[Frame], _pings: u64) -> Vec<Figure> {
    vec![Figure::skipped(
        "format.legacy_framedata_bytes_per_ping",
        "legacy encoders not available yet",
    )]
}
