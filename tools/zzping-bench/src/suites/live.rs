//! Live stream: latency from a frame's end to a viewer, and the daemon's CPU cost of 16
//! subscribers against none (same run, same rate).

use crate::child::run_daemon;
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
        let r = run_daemon(
            dir.path(),
            &targets,
            100.0,
            duration,
            &["--live", LIVE_ADDR],
        );
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

/// Runs the suite.
pub fn run(ctx: &Ctx) -> Result<Vec<Figure>> {
    let duration = if ctx.quick { 8.0 } else { 30.0 };
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
    ])
}
