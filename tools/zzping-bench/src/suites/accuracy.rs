//! RTT accuracy against the simulator's ground truth, and our median against fping's
//! pinging a twin host (same profile) at the same time.
//!
//! Method: the truth's requests to our host, in send order, are split into frames by
//! the daemon's per-frame `sent` counts; received and lost must then match exactly.
//! Within a frame, the daemon's decoded RTTs and the truth's holding times (reply
//! written − request read) are sorted and paired. The
//! error of a ping is ours − truth. Frames whose counts differ are counted as mismatches.
//!
//! The tail is measured against a packet capture on the simulator's TUN
//! (`zzping_netsim::capture`): each RTT against the wire RTT (reply tap − request tap,
//! an upper bound of a kernel-timed RTT), and how far it lies outside the interval
//! its truth provably lies in, `[intended delay, wire RTT]` beyond the quantizer's half
//! bucket (0 when every RTT is explained; RTTs in frames flagged `FLAG_USER_STAMP` are
//! upper bounds and only held to the lower end).

use crate::child::{Live, run_daemon};
use crate::figure::Figure;
use crate::netns::run_in_netns;
use crate::suites::{Ctx, percentile};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::Command;
use zzping_lib::store::Host;

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
    let scenario_path = ctx.scenario("bench.toml");
    let tun = zzping_netsim::Scenario::load(&scenario_path)
        .context("loading bench.toml")?
        .network
        .tun_name;
    let (fping_out, wire) = run_in_netns(Some(&scenario_path), Some(&truth_path), move || {
        let cap = zzping_netsim::capture::Capture::start(&tun)
            .context("capturing on the simulator's TUN")?;
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
        run_daemon(&d2, &[OURS.to_string()], rate, duration, Live::Off)?;
        let out = fping
            .join()
            .map_err(|_| anyhow::anyhow!("fping thread panicked"))??;
        Ok((out, cap.finish().context("capture")?))
    })?;

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
    let mut replies: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for r in truth.replies() {
        if r.copy == 0 {
            replies.insert(r.request, (r.sent_us, r.delay_us));
        }
    }
    // The truth's requests to our host in send order, with their holding time if
    // answered. Frames take them in order by their `sent` counts (the daemon sends in
    // order, so this is exact even when the simulator reads a request a few µs after a
    // frame boundary the daemon sent it before).
    // (read time, holding time, [intended delay, wire RTT]) of each request.
    type Req = (u64, Option<f64>, Option<(f64, f64)>);
    let mut requests: Vec<Req> = truth
        .requests_to(ours_ip)
        .iter()
        .map(|q| {
            let reply = replies.get(&q.id);
            let held = reply.map(|&(sent, _)| sent as f64 - q.time_us as f64);
            let interval = reply.and_then(|&(_, delay)| {
                let w = wire.rtt_ns(&(q.dst, q.icmp_id, q.icmp_seq))?;
                Some((delay as f64, w as f64 / 1000.0))
            });
            (q.time_us, held, interval)
        })
        .collect();
    requests.sort_by_key(|r| r.0);
    let mut next = 0usize;

    // Ours per frame.
    let host = Host::open(&data.join(OURS))?;
    let mut frames = host.frames(0, u64::MAX);
    let mut errors = Vec::new();
    let mut ours_all = Vec::new();
    let mut mismatched = 0u64;
    let mut compared = 0u64;
    // |ours − wire RTT|, and the distance outside the provable interval, µs.
    let mut wire_err = Vec::new();
    let mut outside_max = 0.0f64;
    let mut user_stamped = 0u64;
    let mut uncaptured = 0u64;
    while let Some(f) = frames.next_frame()? {
        let f = f.clone();
        let q = frames.quantizer().context("quantizer")?.clone();
        let mut ours: Vec<f64> = f.rtts_us(&q).map(f64::from).collect();
        ours_all.extend_from_slice(&ours);
        let take = (f.sent as usize).min(requests.len() - next);
        let mine = &requests[next..next + take];
        next += take;
        compared += 1;
        let mut truth_rtts: Vec<f64> = mine.iter().filter_map(|r| r.1).collect();
        let truth_lost = mine.len() - truth_rtts.len();
        if take != f.sent as usize
            || truth_rtts.len() != ours.len()
            || truth_lost != f.lost as usize
        {
            mismatched += 1;
            continue;
        }
        truth_rtts.sort_by(f64::total_cmp);
        ours.sort_by(f64::total_cmp);
        errors.extend(ours.iter().zip(truth_rtts.iter()).map(|(o, t)| o - t));
        // Against the capture, sorted pairing with each end of the intervals.
        let user = f.flags & zzping_lib::frame::FLAG_USER_STAMP != 0;
        user_stamped += if user { ours.len() as u64 } else { 0 };
        let intervals: Vec<(f64, f64)> = mine.iter().filter_map(|r| r.2).collect();
        if intervals.len() != ours.len() {
            uncaptured += (ours.len() - intervals.len()) as u64;
            continue;
        }
        let mut lo: Vec<f64> = intervals.iter().map(|i| i.0).collect();
        let mut hi: Vec<f64> = intervals.iter().map(|i| i.1).collect();
        lo.sort_by(f64::total_cmp);
        hi.sort_by(f64::total_cmp);
        for ((&o, &l), &h) in ours.iter().zip(&lo).zip(&hi) {
            wire_err.push((o - h).abs());
            let allowance = |x: f64| 0.005 * x + 1.0;
            let below = l - allowance(l) - o;
            let above = if user { 0.0 } else { o - h - allowance(h) };
            outside_max = outside_max.max(below.max(above));
        }
    }
    if next != requests.len() {
        mismatched += 1;
    }
    let mut abs: Vec<f64> = errors.iter().map(|e| e.abs()).collect();
    let our_median = percentile(&mut ours_all, 0.5);
    let fping_median = percentile(&mut fping_rtts, 0.5);
    let mut signed = errors.clone();
    let wire_n = wire_err.len();
    let wire_max = wire_err.iter().copied().fold(0.0, f64::max);
    Ok(vec![
        Figure::new("accuracy.rtt_err_max_us", wire_max, "µs").note(format!(
            "largest |ours − wire RTT| of {wire_n} pings (capture on the TUN; {uncaptured} not captured)"
        )),
        Figure::new("accuracy.rtt_outside_max_us", outside_max, "µs")
            .note("largest distance of an RTT outside [intended delay, wire RTT] beyond quantization; 0: every RTT explained"),
        Figure::new("accuracy.user_stamped_rtts", user_stamped as f64, "pings")
            .note("RTTs in frames flagged user_stamp (not timed by the kernel at both ends)"),
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
