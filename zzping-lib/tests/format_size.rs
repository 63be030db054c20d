//! On-disk size: at most 2.0 bytes per ping, everything included (headers, frames), at
//! 100 pings/s per host with 100 ms frames and realistic jitter.
//!
//! Sizes are deterministic (seeded synthetic traffic), so this is a test, not a benchmark.

use zzping_lib::file::{FileReader, HostInfo, HostWriter, WriterConfig};
use zzping_lib::frame::Frame;
use zzping_lib::store::layout::day_file;
use zzping_lib::synth::{Synth, SynthProfile};

fn bytes_per_ping(profile: SynthProfile, precision: f64, frames: u64) -> (f64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let start = 20_000 * 86_400_000_000u64;
    let mut w = HostWriter::open(
        dir.path(),
        HostInfo {
            label: "h".into(),
            address: "198.18.0.10".parse().unwrap(),
            name: Some("router.lan".into()),
            role: None,
        },
        WriterConfig {
            period_us: profile.period_us,
            precision,
            writer: "zzping-daemon 0.1.0".into(),
        },
    )
    .unwrap();
    let mut synth = Synth::new(profile, 42, start);
    let mut f = Frame::default();
    let mut pings = 0u64;
    for i in 0..frames {
        synth.next_frame(&mut f);
        pings += u64::from(f.sent);
        w.append(&f).unwrap();
        if i % 50 == 49 {
            w.flush().unwrap();
        }
    }
    w.sync().unwrap();
    let path = day_file(w.host_dir(), start);
    let len = std::fs::metadata(&path).unwrap().len();
    // Everything written reads back.
    let mut r = FileReader::open(&path).unwrap();
    let mut n = 0;
    while r.next_frame().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, frames);
    assert!(r.issues().is_empty());
    (len as f64 / pings as f64, len)
}

#[test]
fn at_most_two_bytes_per_ping() {
    // One hour per profile (36,000 frames, 360,000 pings).
    for (name, profile) in [
        ("wifi", SynthProfile::wifi()),
        ("wired", SynthProfile::wired()),
        ("internet", SynthProfile::internet()),
    ] {
        let (bpp, len) = bytes_per_ping(profile, 0.01, 36_000);
        println!("{name}: {bpp:.3} bytes/ping ({len} bytes)");
        assert!(bpp <= 2.0, "{name}: {bpp} bytes per ping");
    }
}

#[test]
fn finer_precision_costs_more_coarser_less() {
    let (fine, _) = bytes_per_ping(SynthProfile::wifi(), 0.001, 6_000);
    let (mid, _) = bytes_per_ping(SynthProfile::wifi(), 0.01, 6_000);
    let (coarse, _) = bytes_per_ping(SynthProfile::wifi(), 0.05, 6_000);
    assert!(fine > mid && mid > coarse, "{fine} {mid} {coarse}");
}
