//! Viewer open time, memory, live cost, and per zoom level (the whole data set, 1 day,
//! 1 hour, 5 min, 10 s) the redraw and pan time (headless tiny-skia at 1600x900).
//!
//! Runs the GUI crate's own benchmark (`cargo bench -p zzping-gui --bench timeline`: it
//! needs the GUI's renderer, which this tool does not link) on a fresh data set of 1 day
//! (`--quick`) or 7 days x 3 hosts, and collects the `FIGURE name value unit` lines it
//! prints.

use crate::figure::Figure;
use crate::suites::Ctx;
use anyhow::{Context, Result, bail};
use std::process::Command;

/// Runs the suite.
pub fn run(ctx: &Ctx) -> Result<Vec<Figure>> {
    let days = if ctx.quick { 1 } else { 7 };
    let dir = tempfile::tempdir()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(&ctx.workspace)
        .args(["bench", "-q", "-p", "zzping-gui", "--bench", "timeline"])
        .env("ZZPING_BENCH_DAYS", days.to_string())
        .env("ZZPING_BENCH_DIR", dir.path().join("data"))
        .env("ICED_TEST_BACKEND", "tiny-skia")
        .output()
        .context("running cargo bench -p zzping-gui")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "the GUI benchmark failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let note = format!("{days} days x 3 hosts of 100 ms frames, headless tiny-skia 1600x900");
    let mut figs = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let ["FIGURE", name, value, unit] = f[..]
            && let Ok(v) = value.parse::<f64>()
        {
            figs.push(Figure::new(name, v, unit).note(note.clone()));
        }
    }
    if figs.is_empty() {
        bail!("the GUI benchmark printed no figures: {text}");
    }
    Ok(figs)
}
