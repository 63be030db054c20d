//! Command-line tool throughput (`zzping export`), and the original zzping's encodings of
//! the format suite's pings (its FrameData daemon log and FrameDataQ files).

use crate::child::run_measured;
use crate::figure::Figure;
use crate::suites::Ctx;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use zzping_legacy::{
    FdqHeader, FdqTime, FrameDataTime, encode_fdq_frame, encode_fdq_header, encode_framedata_frame,
};
use zzping_lib::frame::Frame;
use zzping_lib::summary::nearest_rank;

/// The original daemon's frame period: one FrameData frame per host every 20 ms.
const LEGACY_FRAME_US: u64 = 20_000;
/// The original wrote a full timestamp about every 15 s.
const LEGACY_FULL_EVERY_US: u64 = 15_000_000;

/// Bytes per ping of the original zzping's encodings of the same frames: FrameData (its
/// daemon log, 20 ms frames, raw RTTs as u32) and FrameDataQ (7 percentiles per 100 ms
/// frame, log-quantized at p = 0.01, as its GUI read them).
pub fn legacy_sizes(frames: &[Frame], pings: u64) -> Vec<Figure> {
    let ours = frames; // same pings
    // FrameData: split each 100 ms frame's pings (in send order) into 20 ms frames.
    let mut fd = Vec::new();
    let mut last_full = 0u64;
    for f in ours {
        let parts = (u64::from(f.period_us) / LEGACY_FRAME_US).max(1) as usize;
        let n = f.rtts_us.len();
        for k in 0..parts {
            let t = f.start_us + k as u64 * LEGACY_FRAME_US;
            let mut rtts: Vec<u32> = f.rtts_us[n * k / parts..n * (k + 1) / parts].to_vec();
            rtts.sort_unstable();
            let time = if last_full == 0 || t - last_full >= LEGACY_FULL_EVERY_US {
                last_full = t;
                FrameDataTime::Full(t)
            } else {
                FrameDataTime::Delta(t - last_full)
            };
            encode_framedata_frame(&mut fd, time, 0, 0, &rtts);
        }
    }
    // FrameDataQ: one frame per 100 ms frame, 7 percentiles.
    let header = FdqHeader {
        version: 101,
        full_encode_secs: 15,
        recv_llq: Some(0.01),
        delta_enc: false,
    };
    let mut fdq = Vec::new();
    encode_fdq_header(&mut fdq, &header);
    let mut prev_ms = 0u64;
    let mut last_full_s = 0u64;
    for f in ours {
        let mut rtts = f.rtts_us.clone();
        rtts.sort_unstable();
        let mut values = [-1i64; 7];
        for (v, q) in values
            .iter_mut()
            .zip([0.0, 0.125, 0.25, 0.5, 0.75, 0.875, 1.0])
        {
            if let Some(x) = nearest_rank(&rtts, q) {
                *v = i64::from(x);
            }
        }
        let ms = f.start_us / 1000;
        let s = ms / 1000;
        let time = if last_full_s == 0 || s - last_full_s >= header.full_encode_secs {
            last_full_s = s;
            FdqTime::Full {
                unix_s: s,
                ms: (ms % 1000) as u16,
            }
        } else {
            FdqTime::Delta { ms: ms - prev_ms }
        };
        prev_ms = ms;
        encode_fdq_frame(&mut fdq, &header, time, 0, 0, rtts.len() as u32, &values);
    }
    let per = |b: usize| b as f64 / pings as f64;
    vec![
        Figure::new(
            "format.legacy_framedata_bytes_per_ping",
            per(fd.len()),
            "bytes",
        )
        .note("the original daemon log (20 ms frames, raw u32 RTTs) of the same pings"),
        Figure::new("format.legacy_fdq_bytes_per_ping", per(fdq.len()), "bytes").note(
            "the original quantized format (7 percentiles per 100 ms frame, p = 0.01): lossy",
        ),
    ]
}

/// Builds (release) and returns the path of a workspace binary next to this one.
pub fn workspace_binary(ctx: &Ctx, package: &str, bin: &str) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let profile_dir = std::env::current_exe()?
        .parent()
        .context("binary directory")?
        .to_path_buf();
    let release = profile_dir.ends_with("release");
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&ctx.workspace)
        .args(["build", "-q", "-p", package, "--bin", bin]);
    if release {
        cmd.arg("--release");
    }
    let st = cmd.status().context("running cargo build")?;
    if !st.success() {
        bail!("cargo build -p {package} failed");
    }
    let path = profile_dir.join(bin);
    anyhow::ensure!(path.is_file(), "{} not built", path.display());
    Ok(path)
}

/// Streams every frame of the data directory in-process (the decode floor).
fn decode_all(dir: &Path) -> Result<u64> {
    let mut n = 0;
    for h in zzping_lib::store::list_hosts(dir)? {
        for d in h.files {
            let mut r = zzping_lib::file::FileReader::open(&d.path)?;
            while r.next_frame()?.is_some() {
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Runs the suite.
pub fn run(ctx: &Ctx) -> Result<Vec<Figure>> {
    let zzping = workspace_binary(ctx, "zzping", "zzping")?;
    let days = if ctx.quick { 1 } else { 3 };
    let dir = tempfile::tempdir()?;
    let frames = crate::suites::pyramid::generate(dir.path(), days)?;
    let t = Instant::now();
    let decoded = decode_all(dir.path())?;
    let decode_s = t.elapsed().as_secs_f64();
    anyhow::ensure!(decoded == frames, "decoded {decoded} of {frames} frames");
    let mut figs = Vec::new();
    for format in ["csv", "jsonl"] {
        let t = Instant::now();
        let (usage, _) = run_measured(
            Command::new(&zzping)
                .args(["export", "--format", format, "-o", "/dev/null"])
                .arg(dir.path()),
        )?;
        let wall = t.elapsed().as_secs_f64();
        anyhow::ensure!(usage.status == 0, "zzping export failed ({})", usage.status);
        let name = if format == "csv" {
            "tools.export_frames_per_s".to_string()
        } else {
            format!("tools.export_{format}_frames_per_s")
        };
        figs.push(
            Figure::vs(
                &name,
                frames as f64 / wall,
                "frames/s",
                "in-process frame decoding",
                frames as f64 / decode_s,
            )
            .note(format!(
                "{frames} frames ({days} days x 3 hosts), wall time, to /dev/null"
            )),
        );
        if format == "csv" {
            figs.push(Figure::new(
                "tools.export_peak_rss_mb",
                usage.maxrss_mb,
                "MB",
            ));
        }
    }
    Ok(figs)
}
