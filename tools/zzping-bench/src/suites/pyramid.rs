//! Pyramid build time and memory for a week of three hosts, and percentile queries per
//! level, against reading the raw frames (the reference a viewer without a pyramid pays).

use crate::figure::Figure;
use crate::suites::{Ctx, self_rss_mb};
use anyhow::{Context, Result};
use std::path::Path;
use std::time::Instant;
use zzping_lib::file::{HostInfo, HostWriter, WriterConfig};
use zzping_lib::frame::Frame;
use zzping_lib::pyramid::{DayPyramid, load_or_build};
use zzping_lib::store::list_hosts;
use zzping_lib::synth::{Synth, SynthProfile};
use zzping_lib::time::US_PER_DAY;

/// First day of generated datasets.
pub const DATASET_START: u64 = 20_000 * US_PER_DAY;

/// Writes `days` days of 100 ms frames for three hosts (gateway on Wi-Fi, a wired NAS, an
/// internet host) into `dir`; returns the number of frames.
pub fn generate(dir: &Path, days: u64) -> Result<u64> {
    let hosts = [
        ("gateway", "198.18.0.10", SynthProfile::wifi()),
        ("nas", "198.18.0.11", SynthProfile::wired()),
        ("internet", "198.18.1.1", SynthProfile::internet()),
    ];
    let mut n = 0;
    for (i, (label, addr, profile)) in hosts.into_iter().enumerate() {
        let mut w = HostWriter::open(
            dir,
            HostInfo {
                label: label.into(),
                address: addr.parse()?,
                name: None,
                role: None,
            },
            WriterConfig {
                period_us: profile.period_us,
                precision: 0.01,
                writer: "zzping-bench".into(),
            },
        )?;
        let frames = days * US_PER_DAY / u64::from(profile.period_us);
        let mut s = Synth::new(profile, i as u64, DATASET_START);
        let mut f = Frame::default();
        for k in 0..frames {
            s.next_frame(&mut f);
            w.append(&f)?;
            if k % 50 == 49 {
                w.flush()?;
            }
        }
        w.sync()?;
        n += frames;
    }
    Ok(n)
}

/// Runs the suite.
pub fn run(ctx: &Ctx) -> Result<Vec<Figure>> {
    let days = if ctx.quick { 1 } else { 7 };
    let dir = tempfile::tempdir()?;
    let t = Instant::now();
    let frames = generate(dir.path(), days)?;
    let gen_s = t.elapsed().as_secs_f64();
    let files: Vec<_> = list_hosts(dir.path())?
        .into_iter()
        .flat_map(|h| h.files)
        .map(|d| d.path)
        .collect();

    // Reference: streaming every raw frame once.
    let t = Instant::now();
    let mut sent = 0u64;
    for f in &files {
        let mut r = zzping_lib::file::FileReader::open(f)?;
        while let Some(fr) = r.next_frame()? {
            sent += u64::from(fr.sent);
        }
    }
    let raw_s = t.elapsed().as_secs_f64();
    anyhow::ensure!(sent > 0, "no frames read");

    let rss0 = self_rss_mb();
    let t = Instant::now();
    for f in &files {
        load_or_build(f, true).with_context(|| format!("building {}", f.display()))?;
    }
    let build_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let pyramids: Vec<DayPyramid> = files
        .iter()
        .map(|f| load_or_build(f, false).map(|p| p.0))
        .collect::<Result<_, _>>()?;
    let load_s = t.elapsed().as_secs_f64();
    let mem_mb = self_rss_mb() - rss0;
    let label = format!("{days} days x 3 hosts, {frames} frames");
    let mut figs = vec![
        Figure::vs(
            "pyramid.build_s",
            build_s,
            "s",
            "reading every raw frame",
            raw_s,
        )
        .note(label.clone()),
        Figure::vs(
            "pyramid.load_s",
            load_s,
            "s",
            "reading every raw frame",
            raw_s,
        )
        .note("fresh sidecars"),
        Figure::new("pyramid.memory_mb", mem_mb, "MB")
            .note(format!("all persisted levels of {label} in memory")),
        Figure::new("pyramid.dataset_generation_s", gen_s, "s"),
    ];
    for (li, width) in zzping_lib::pyramid::PERSISTED_WIDTHS_US.iter().enumerate() {
        let mut out = [None; 2];
        let mut queries = 0u64;
        let t = Instant::now();
        for p in &pyramids {
            for s in &p.levels[li].summaries {
                s.hist.quantile_codes(&[0.5, 0.99], &mut out);
                queries += 1;
            }
        }
        let ns = t.elapsed().as_secs_f64() * 1e9 / queries.max(1) as f64;
        figs.push(
            Figure::new(
                &format!("pyramid.query_ns_level_{}s", width / 1_000_000),
                ns,
                "ns",
            )
            .note(format!("p50+p99 of one summary, {queries} summaries")),
        );
    }
    Ok(figs)
}
