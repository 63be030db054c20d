//! Live stream: latency from a frame's end to a viewer, the daemon's CPU cost of 16
//! subscribers against none (same run, same rate), and what 16 viewers each prefilling a
//! day of history from disk cost the pinger (send lateness and CPU against none).

use crate::child::{Live, run_daemon};
use crate::figure::Figure;
use crate::netns::run_in_netns;
use crate::suites::{Ctx, percentile};
use anyhow::Result;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use zzping_lib::live::{ClientConfig, LiveEvent, UdpLiveClient};

const LIVE_ADDR: &str = "127.0.0.1:7878";

fn now_us() -> u64 {
    zzping_lib::file::wall_clock_us()
}

/// Runs the daemon at 10 hosts x 100/s on loopback with `viewers` subscribers; returns
/// the daemon's CPU seconds, its pings, and the first viewer's frame latencies (ms).
fn run_with_viewers(viewers: usize, duration: f64) -> Result<(f64, u64, Vec<f64>)> {
    run_in_netns(None, None, move || {
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        for v in 0..viewers {
            let stop = stop.clone();
            handles.push(std::thread::spawn(move || -> Vec<f64> {
                let mut lat = Vec::new();
                let cfg = ClientConfig::new(LIVE_ADDR.parse().expect("address"));
                let Ok(mut c) = UdpLiveClient::connect(cfg) else {
                    return lat;
                };
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(Some(LiveEvent::Frame { frame, .. })) =
                        c.next_event(Duration::from_millis(200))
                        && v == 0
                    {
                        lat.push(now_us().saturating_sub(frame.end_us()) as f64 / 1000.0);
                    }
                }
                lat
            }));
        }
        let dir = tempfile::tempdir()?;
        let targets: Vec<String> = (1..=10).map(|i| format!("127.0.0.{i}")).collect();
        let r = run_daemon(dir.path(), &targets, 100.0, duration, Live::At(LIVE_ADDR));
        stop.store(true, Ordering::Relaxed);
        let mut lat = Vec::new();
        for (i, h) in handles.into_iter().enumerate() {
            let l = h.join().unwrap_or_default();
            if i == 0 {
                lat = l;
            }
        }
        let (usage, report) = r?;
        Ok((usage.cpu_s(), report.sent, lat))
    })
}

/// Prefill hosts: 4 at 100 pings/s, 100 ms frames.
const PREFILL_HOSTS: usize = 4;

/// Writes a day of synthetic frames (100 ms, 10 pings each) for every prefill host,
/// ending a minute ago.
fn write_day(data: &std::path::Path) -> Result<u64> {
    use zzping_lib::file::{HostInfo, HostWriter, WriterConfig};
    use zzping_lib::frame::Frame;
    use zzping_lib::synth::{Synth, SynthProfile};
    let end = now_us() - 60_000_000;
    let start = (end - 86_400_000_000) / 100_000 * 100_000;
    let mut n = 0;
    for i in 1..=PREFILL_HOSTS {
        let label = format!("127.0.0.{i}");
        let mut w = HostWriter::open(
            data,
            HostInfo {
                label: label.clone(),
                address: label.parse()?,
                name: None,
                role: None,
            },
            WriterConfig {
                period_us: 100_000,
                precision: 0.01,
                writer: "zzping-bench".into(),
            },
        )?;
        let mut s = Synth::new(SynthProfile::wired(), i as u64, start);
        let mut f = Frame::new(start, 100_000);
        loop {
            s.next_frame(&mut f);
            if f.start_us >= end {
                break;
            }
            w.append(&f)?;
            n += 1;
        }
        w.sync()?;
    }
    Ok(n)
}

/// The daemon on `PREFILL_HOSTS` hosts over `data` (a day of history on disk) with
/// `viewers` each asking for 24 h of prefill; returns its send lateness p99 bound (µs),
/// CPU seconds, pings, and the frames the viewers received.
fn run_prefill(
    data: &std::path::Path,
    viewers: usize,
    duration: f64,
) -> Result<(u64, f64, u64, u64)> {
    let data = data.to_path_buf();
    run_in_netns(None, None, move || {
        let stop = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = (0..viewers)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || -> u64 {
                    let mut cfg = ClientConfig::new(LIVE_ADDR.parse().expect("address"));
                    cfg.prefill_s = 86_400;
                    let Ok(mut c) = UdpLiveClient::connect(cfg) else {
                        return 0;
                    };
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok(Some(LiveEvent::Frame { .. })) =
                            c.next_event(Duration::from_millis(200))
                        {
                            n += 1;
                        }
                    }
                    n
                })
            })
            .collect();
        let targets: Vec<String> = (1..=PREFILL_HOSTS)
            .map(|i| format!("127.0.0.{i}"))
            .collect();
        let r = run_daemon(&data, &targets, 100.0, duration, Live::At(LIVE_ADDR));
        stop.store(true, Ordering::Relaxed);
        let frames: u64 = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
        let (usage, report) = r?;
        Ok((report.late_p99_us, usage.cpu_s(), report.sent, frames))
    })
}

/// Runs the suite.
pub fn run(ctx: &Ctx) -> Result<Vec<Figure>> {
    let duration = if ctx.quick { 8.0 } else { 30.0 };
    let day = tempfile::tempdir()?;
    let on_disk = write_day(day.path())?;
    let (late0, pcpu0, psent0, _) = run_prefill(day.path(), 0, duration)?;
    let (late16, pcpu16, psent16, got) = run_prefill(day.path(), 16, duration)?;
    let (cpu0, sent0, _) = run_with_viewers(0, duration)?;
    let (cpu16, sent16, mut lat) = run_with_viewers(16, duration)?;
    anyhow::ensure!(!lat.is_empty(), "the viewer received no frames");
    let per_k = |cpu: f64, sent: u64| cpu * 1e6 / sent as f64;
    let n = lat.len();
    Ok(vec![
        Figure::new("live.latency_ms_p50", percentile(&mut lat, 0.5), "ms").note(format!(
            "frame end to viewer, {n} frames, 10 hosts x 100/s on loopback"
        )),
        Figure::new("live.latency_ms_p99", percentile(&mut lat, 0.99), "ms"),
        Figure::vs(
            "live.cpu_ms_per_1k_pings_16_subscribers",
            per_k(cpu16, sent16),
            "ms",
            "no subscriber",
            per_k(cpu0, sent0),
        )
        .note("daemon CPU with 16 subscribed viewers vs none, same rate"),
        Figure::vs(
            "live.prefill_late_p99_us",
            late16 as f64,
            "µs",
            "no viewer",
            late0 as f64,
        )
        .note(format!(
            "send lateness p99 bound (log2 buckets) with 16 viewers each asking for 24 h of \
             prefill ({on_disk} frames of {PREFILL_HOSTS} hosts on disk; they received {got} \
             frames in {duration} s), vs none; target ratio <= 1.5"
        )),
        Figure::vs(
            "live.prefill_cpu_ms_per_1k_pings",
            per_k(pcpu16, psent16),
            "ms",
            "no viewer",
            per_k(pcpu0, psent0),
        )
        .note("daemon CPU while 16 viewers prefill a day each, vs none, same rate"),
    ])
}
