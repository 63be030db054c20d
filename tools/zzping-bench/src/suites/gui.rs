//! Viewer open time, memory and redraw time (headless tiny-skia at 1600x900).

use crate::figure::Figure;
use crate::suites::Ctx;
use anyhow::Result;

/// Runs the suite.
pub fn run(_ctx: &Ctx) -> Result<Vec<Figure>> {
    Ok(vec![Figure::skipped(
        "gui.open_s_7d_3h",
        "the GUI benchmark hook is not wired into zzping-bench yet",
    )])
}
