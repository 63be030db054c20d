//! On-disk size and codec speed, each against a reference encoded in the same run.

use crate::figure::Figure;
use crate::suites::Ctx;
use anyhow::Result;
use serde::Serialize;
use std::time::Instant;
use zzping_lib::codec::{FrameDecoder, FrameEncoder, QFrame};
use zzping_lib::file::{HostInfo, HostWriter, WriterConfig};
use zzping_lib::frame::Frame;
use zzping_lib::quantizer::Quantizer;
use zzping_lib::store::layout::day_file;
use zzping_lib::synth::{Synth, SynthProfile};

const START: u64 = 20_000 * 86_400_000_000 + 3_600_000_000;

fn synth_frames(n: usize) -> Vec<Frame> {
    let mut s = Synth::new(SynthProfile::wifi(), 11, START);
    (0..n)
        .map(|_| {
            let mut f = Frame::default();
            s.next_frame(&mut f);
            f
        })
        .collect()
}

/// Bytes per ping of a file written by `HostWriter` at `precision`, headers included.
fn bytes_per_ping(frames: &[Frame], precision: f64) -> Result<f64> {
    let dir = tempfile::tempdir()?;
    let mut w = HostWriter::open(
        dir.path(),
        HostInfo {
            label: "h".into(),
            address: "198.18.0.10".parse()?,
            name: None,
            role: None,
        },
        WriterConfig {
            period_us: 100_000,
            precision,
            writer: "zzping-bench".into(),
        },
    )?;
    let mut pings = 0u64;
    for (i, f) in frames.iter().enumerate() {
        pings += u64::from(f.sent);
        w.append(f)?;
        if i % 50 == 49 {
            w.flush()?;
        }
    }
    w.sync()?;
    let len = std::fs::metadata(day_file(w.host_dir(), START))?.len();
    Ok(len as f64 / pings as f64)
}

/// The straightforward encoding a first version would use: one rmp-serde array per frame
/// with every field and the raw RTT list (the reference for size and speed).
#[derive(Serialize)]
struct Naive<'a> {
    start_us: u64,
    period_us: u32,
    sent: u32,
    lost: u32,
    duplicates: u32,
    late: u32,
    errors: u32,
    rtts_us: &'a [u32],
}

fn naive_encode(frames: &[Frame], out: &mut Vec<u8>) {
    for f in frames {
        let n = Naive {
            start_us: f.start_us,
            period_us: f.period_us,
            sent: f.sent,
            lost: f.lost,
            duplicates: f.duplicates,
            late: f.late,
            errors: f.errors,
            rtts_us: &f.rtts_us,
        };
        let _ = rmp_serde::encode::write(out, &n);
    }
}

/// Best of `reps` timings of `f`, seconds.
fn best_of(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// Runs the suite.
pub fn run(ctx: &Ctx) -> Result<Vec<Figure>> {
    let n = if ctx.quick { 36_000 } else { 360_000 };
    let frames = synth_frames(n);
    let pings: u64 = frames.iter().map(|f| u64::from(f.sent)).sum();
    let mut naive = Vec::new();
    naive_encode(&frames, &mut naive);
    let naive_bpp = naive.len() as f64 / pings as f64;
    let legacy = crate::suites::tools::legacy_sizes(&frames, pings);
    let framedata_bpp = legacy[0].value.unwrap_or(f64::NAN);
    let mut figs = Vec::new();
    for (p, name) in [
        (0.001, "format.bytes_per_ping_p0.001"),
        (0.01, "format.bytes_per_ping"),
        (0.05, "format.bytes_per_ping_p0.05"),
    ] {
        figs.push(
            Figure::vs(
                name,
                bytes_per_ping(&frames, p)?,
                "bytes",
                "original zzping FrameData log",
                framedata_bpp,
            )
            .note(format!(
                "Wi-Fi-like synthetic traffic, 100 pings/s, 100 ms frames, {n} frames, p = {p}"
            )),
        );
    }
    figs.extend(legacy);
    figs.push(
        Figure::new("format.naive_bytes_per_ping", naive_bpp, "bytes")
            .note("one rmp-serde array per frame with raw RTTs"),
    );

    let q = Quantizer::default();
    let mut out = Vec::with_capacity(naive.len());
    let reps = if ctx.quick { 3 } else { 7 };
    let mut qf = QFrame::default();
    let enc_s = best_of(reps, || {
        out.clear();
        let mut enc = FrameEncoder::new(START);
        for f in &frames {
            qf.set_from(f, &q);
            enc.encode(&qf, &mut out);
        }
    });
    let mut naive_out = Vec::with_capacity(naive.len());
    let naive_s = best_of(reps, || {
        naive_out.clear();
        naive_encode(&frames, &mut naive_out);
    });
    figs.push(
        Figure::vs(
            "format.encode_frames_per_s",
            n as f64 / enc_s,
            "frames/s",
            "naive rmp-serde encode",
            n as f64 / naive_s,
        )
        .note("quantize + sort + chained encode"),
    );
    let dec_s = best_of(reps, || {
        let mut dec = FrameDecoder::new(START, 100_000, q.code_count());
        let mut pos = 0;
        while pos < out.len() {
            match dec.decode(&out[pos..], &mut qf) {
                Ok(k) => pos += k,
                Err(_) => break,
            }
        }
    });
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct NaiveOwned(u64, u32, u32, u32, u32, u32, u32, Vec<u32>);
    let naive_dec_s = best_of(reps, || {
        let mut rd = &naive_out[..];
        while !rd.is_empty() {
            if rmp_serde::from_read::<_, NaiveOwned>(&mut rd).is_err() {
                break;
            }
        }
    });
    figs.push(Figure::vs(
        "format.decode_frames_per_s",
        n as f64 / dec_s,
        "frames/s",
        "naive rmp-serde decode",
        n as f64 / naive_dec_s,
    ));
    Ok(figs)
}
