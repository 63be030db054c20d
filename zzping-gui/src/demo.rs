//! Synthetic data sets for demos, tests, screenshots and benchmarks.

use std::path::Path;
use zzping_lib::events::{ContextEvent, EventKind, EventWriter};
use zzping_lib::file::{FileError, HostInfo, HostWriter, WriterConfig};
use zzping_lib::frame::Frame;
use zzping_lib::synth::{Synth, SynthProfile};

/// When the demo's default route moves, as a fraction of its range (numerator,
/// denominator): its hover text is "default route via 192.0.2.254 on wlan1".
pub const DEMO_ROUTE_CHANGE: (u64, u64) = (1, 5);

/// Writes `duration_us` of synthetic 100 ms frames from `start_us` for up to three hosts
/// under `dir`: `router` (wired LAN), `wifi-ap` (Wi-Fi, with a 300 ms loss burst every
/// 30 s) and `internet` (a distant host). `internet` also has a 300 ms outage at 40 % of
/// the range and `router` a gap (no frames at all) from 60 % to 65 %. The data directory
/// also gets context events: the daemon's start, and the default route moving to
/// 192.0.2.254 on wlan1 at 20 % of the range ([`DEMO_ROUTE_CHANGE`]).
pub fn write_demo(
    dir: &Path,
    start_us: u64,
    duration_us: u64,
    hosts: usize,
) -> Result<u64, FileError> {
    let all = [
        ("router", "192.0.2.1", None, SynthProfile::wired()),
        ("wifi-ap", "192.0.2.2", None, SynthProfile::wifi()),
        (
            "internet",
            "198.51.100.7",
            Some("example.net"),
            SynthProfile::internet(),
        ),
    ];
    let mut events = EventWriter::new(dir, "zzping-gui demo");
    events.append(
        &ContextEvent::new(start_us, EventKind::DaemonStart),
        start_us,
    );
    events.append(
        &ContextEvent::route(
            start_us + duration_us * DEMO_ROUTE_CHANGE.0 / DEMO_ROUTE_CHANGE.1,
            4,
            "192.0.2.254".parse().ok(),
            Some("wlan1"),
            false,
        ),
        start_us,
    );
    events.sync()?;
    let mut total = 0;
    for (i, (label, addr, name, profile)) in all.into_iter().take(hosts.clamp(1, 3)).enumerate() {
        let mut w = HostWriter::open(
            dir,
            HostInfo {
                label: label.into(),
                address: addr.parse().unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()),
                name: name.map(str::to_string),
                role: None,
            },
            WriterConfig {
                period_us: profile.period_us,
                precision: 0.01,
                writer: "zzping-gui demo".into(),
            },
        )?;
        let mut synth = Synth::new(profile, 42 + i as u64, start_us);
        let mut f = Frame::new(start_us, 100_000);
        let outage = start_us + duration_us * 4 / 10;
        let (gap_a, gap_b) = (
            start_us + duration_us * 6 / 10,
            start_us + duration_us * 65 / 100,
        );
        loop {
            synth.next_frame(&mut f);
            if f.start_us >= start_us + duration_us {
                break;
            }
            if label == "router" && (gap_a..gap_b).contains(&f.start_us) {
                continue;
            }
            if label == "internet" && (outage..outage + 300_000).contains(&f.start_us) {
                f.lost += f.rtts_us.len() as u32;
                f.rtts_us.clear();
            }
            w.append(&f)?;
            total += 1;
        }
        w.sync()?;
    }
    Ok(total)
}
