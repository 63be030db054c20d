#![allow(missing_docs)] // criterion_group! generates undocumented items.
//! Encode and decode throughput of the frame codec and the file reader, pyramid build
//! speed, and the alert evaluator's cost per frame (the daemon runs it on every final
//! frame). Run: `cargo bench -p zzping-lib --bench codec`.
//!
//! Each benchmark processes one hour of Wi-Fi-like traffic (36,000 frames of 10 pings);
//! criterion's throughput is in frames (elements) per second.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use zzping_lib::alert::{Evaluator, HostMatch, Rule, When};
use zzping_lib::codec::{FrameDecoder, FrameEncoder, QFrame};
use zzping_lib::file::{FileReader, HostInfo, HostWriter, WriterConfig};
use zzping_lib::frame::Frame;
use zzping_lib::pyramid::{LEVEL_WIDTHS_US, build};
use zzping_lib::quantizer::Quantizer;
use zzping_lib::store::layout::day_file;
use zzping_lib::synth::{Synth, SynthProfile};

const FRAMES: usize = 36_000;
const START: u64 = 20_000 * 86_400_000_000 + 3_600_000_000;

fn frames() -> Vec<Frame> {
    let mut s = Synth::new(SynthProfile::wifi(), 3, START);
    (0..FRAMES)
        .map(|_| {
            let mut f = Frame::default();
            s.next_frame(&mut f);
            f
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let q = Quantizer::default();
    let raw = frames();
    let qframes: Vec<QFrame> = raw
        .iter()
        .map(|f| {
            let mut qf = QFrame::default();
            qf.set_from(f, &q);
            qf
        })
        .collect();
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(FRAMES as u64));
    let mut out = Vec::with_capacity(1 << 20);
    g.bench_function("quantize+encode", |b| {
        let mut qf = QFrame::default();
        b.iter(|| {
            out.clear();
            let mut enc = FrameEncoder::new(START);
            for f in &raw {
                qf.set_from(f, &q);
                enc.encode(&qf, &mut out);
            }
            black_box(out.len())
        })
    });
    let mut encoded = Vec::new();
    let mut enc = FrameEncoder::new(START);
    for f in &qframes {
        enc.encode(f, &mut encoded);
    }
    g.bench_function("decode", |b| {
        let mut qf = QFrame::default();
        b.iter(|| {
            let mut dec = FrameDecoder::new(START, 100_000, q.code_count());
            let mut pos = 0;
            while pos < encoded.len() {
                pos += dec.decode(&encoded[pos..], &mut qf).unwrap();
            }
            black_box(qf.sent)
        })
    });
    let dir = tempfile::tempdir().unwrap();
    let mut w = HostWriter::open(
        dir.path(),
        HostInfo {
            label: "h".into(),
            address: "198.18.0.1".parse().unwrap(),
            name: None,
            role: None,
        },
        WriterConfig {
            period_us: 100_000,
            precision: 0.01,
            writer: "bench".into(),
        },
    )
    .unwrap();
    for f in &raw {
        w.append(f).unwrap();
    }
    w.sync().unwrap();
    let path = day_file(w.host_dir(), START);
    g.bench_function("file_read", |b| {
        b.iter(|| {
            let mut r = FileReader::open(&path).unwrap();
            let mut n = 0u64;
            while let Some(f) = r.next_frame().unwrap() {
                n += u64::from(f.sent);
            }
            black_box(n)
        })
    });
    g.bench_function("pyramid_build", |b| {
        b.iter(|| black_box(build(&path, &LEVEL_WIDTHS_US).unwrap().levels.len()))
    });
    // One rule of each kind on one host (a p95 rule bins every RTT).
    let rules = vec![
        Rule::new("down", When::Outage { for_us: 5_000_000 }, HostMatch::Each),
        Rule::new("all", When::Outage { for_us: 5_000_000 }, HostMatch::All),
        Rule::new(
            "lossy",
            When::Loss {
                above_pct: 5.0,
                window_us: 60_000_000,
            },
            HostMatch::Each,
        ),
        Rule::new(
            "slow",
            When::P95 {
                above_us: 50_000,
                window_us: 60_000_000,
            },
            HostMatch::Each,
        ),
    ];
    g.bench_function("alert_evaluate", |b| {
        let mut ev = Evaluator::new(rules.clone());
        let mut out = Vec::new();
        b.iter(|| {
            ev.add_host(1, "h", raw[0].period_us);
            for f in &raw {
                ev.on_frame(1, f, &mut out);
            }
            black_box(out.drain(..).count())
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
