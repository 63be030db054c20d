//! RTT accuracy against the simulator's ground truth, and our median against fping's
//! pinging a twin host (same profile) at the same time.
//!
//! Method: frames and truth are both grouped by frame (the frame of the request's send;
//! the simulator reads the request a few µs after the daemon sends it, so a request is
//! put in the frame of `time_us - 50 µs`). Within a frame, the daemon's decoded RTTs and
//! the truth's holding times (reply written − request read) are sorted and paired. The
//! error of a ping is ours − truth. Frames whose counts differ are counted as mismatches.

use crate::child::run_daemon;
use crate::figure::Figure;
use crate::netns::run_in_netns;
use crate::suites::{Ctx, percentile};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::Command;
use zzping_lib::store::HostDir;

const OURS: &str = "198.18.0.20";
const FPINGS: &str = "198.18.0.21";

/// Runs the suite.
pub fn run(ctx: &Ctx) -> Result<Vec<Figure>> {
    if crate::suites::daemon::which("fping").is_none() {
        return Ok(vec![Figure::skipped(
            "accuracy.rtt_err_p99_us",
            "fping not installed",
        )]);
    }
    let duration = if ctx.quick { 8.0 } else { 20.0 };
    let rate = 100.0;
    let work = tempfile::tempdir()?;
    let data = work.path().join("data");
    let truth_path = work.path().join("truth.jsonl");
    let d2 = data.clone();
    let fping_out = run_in_netns(
        Some(&ctx.scenario("bench.toml")),
        Some(&truth_path),
        move || {
            let count = (rate * duration) as u64;
            let fping = std::thread::spawn(move || -> Result<String> {
                // fping -C prints every RTT on stderr: "host : 0.61 0.58 ...".
                let out = Command::new("fping")
                    .args([
                        "-q",
                        "-C",
                        &count.to_string(),
                        "-p",
                        "10",
                        "-t",
                        "500",
                        FPINGS,
                    ])
                    .output()
                    .context("running fping")?;
                Ok(String::from_utf8_lossy(&out.stderr).into_owned())
            });
            run_daemon(&d2, &[OURS.to_string()], rate, duration, &[])?;
            fping
                .join()
                .map_err(|_| anyhow::anyhow!("fping thread panicked"))?
        },
    )?;

    // fping's RTTs, µs.
    let mut fping_rtts: Vec<f64> = fping_out
        .lines()
        .filter(|l| l.starts_with(FPINGS))
        .flat_map(|l| l.split(':').nth(1).unwrap_or("").split_whitespace())
        .filter_map(|v| v.parse::<f64>().ok())
        .map(|ms| ms * 1000.0)
        .collect();

    // Truth per frame.
    let truth = zzping_netsim::truth::read_truth(&truth_path).context("reading the truth")?;
    let ours_ip: IpAddr = OURS.parse()?;
    let mut replies: BTreeMap<u64, u64> = BTreeMap::new();
    for r in truth.replies() {
        if r.copy == 0 {
            replies.insert(r.request, r.sent_us);
        }
    }
    let period = 100_000u64;
    let mut truth_frames: BTreeMap<u64, (u32, Vec<f64>)> = BTreeMap::new();
    for q in truth.requests_to(ours_ip) {
        let frame = (q.time_us - 50) / period * period;
        let e = truth_frames.entry(frame).or_default();
        e.0 += 1;
        if let Some(&sent) = replies.get(&q.id) {
            e.1.push(sent as f64 - q.time_us as f64);
        }
    }

    // Ours per frame.
    let host = HostDir::new(&data.join(OURS));
    let mut frames = host.frames(0, u64::MAX)?;
    let mut errors = Vec::new();
    let mut ours_all = Vec::new();
    let mut mismatched = 0u64;
    let mut compared = 0u64;
    while let Some(f) = frames.next_frame()? {
        let f = f.clone();
        let q = frames.quantizer().context("quantizer")?.clone();
        let mut ours: Vec<f64> = f.rtts_us(&q).map(f64::from).collect();
        ours_all.extend_from_slice(&ours);
        // The last frames may be cut by the end of the run: compare final frames only.
        let Some((sent, truth_rtts)) = truth_frames.get_mut(&f.start_us) else {
            continue;
        };
        if f.sent == 0 {
            continue;
        }
        compared += 1;
        if *sent != f.sent || truth_rtts.len() != ours.len() {
            mismatched += 1;
            continue;
        }
        truth_rtts.sort_by(f64::total_cmp);
        ours.sort_by(f64::total_cmp);
        errors.extend(ours.iter().zip(truth_rtts.iter()).map(|(o, t)| o - t));
    }
    let mut abs: Vec<f64> = errors.iter().map(|e| e.abs()).collect();
    let our_median = percentile(&mut ours_all, 0.5);
    let fping_median = percentile(&mut fping_rtts, 0.5);
    let mut signed = errors.clone();
    Ok(vec![
        Figure::new("accuracy.rtt_err_p50_us", percentile(&mut abs, 0.5), "µs")
            .note(format!("{} pings in {compared} frames", errors.len())),
        Figure::new("accuracy.rtt_err_p99_us", percentile(&mut abs, 0.99), "µs"),
        Figure::new(
            "accuracy.rtt_err_median_signed_us",
            percentile(&mut signed, 0.5),
            "µs",
        )
        .note("ours minus truth; includes the kernel/TUN path outside the simulator"),
        Figure::new(
            "accuracy.frame_count_mismatches",
            mismatched as f64,
            "frames",
        )
        .note(format!("of {compared} frames compared")),
        Figure::vs(
            "accuracy.median_rtt_us",
            our_median,
            "µs",
            "fping 5.1",
            fping_median,
        ),
        Figure::new(
            "accuracy.median_diff_vs_fping_us",
            our_median - fping_median,
            "µs",
        )
        .note("twin simulated hosts, same profile, same run"),
    ])
}
