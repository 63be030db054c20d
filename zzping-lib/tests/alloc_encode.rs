//! The encode path allocates nothing per frame in steady state: quantizing, encoding,
//! buffering and writing frames reuse their buffers. Proven with a counting allocator.

use zzping_lib::codec::{FrameEncoder, QFrame};
use zzping_lib::file::{HostInfo, HostWriter, WriterConfig};
use zzping_lib::frame::Frame;
use zzping_lib::quantizer::Quantizer;
use zzping_lib::synth::{Synth, SynthProfile};
use zzping_testkit::alloc::allocations as allocs;

zzping_testkit::counting_allocator!();

#[test]
fn codec_and_writer_allocate_nothing_per_frame() {
    // One test function so no other test thread allocates concurrently.
    let q = Quantizer::default();
    let start = 20_000 * 86_400_000_000u64 + 3_600_000_000;
    let mut synth = Synth::new(SynthProfile::wifi(), 1, start);
    let mut frame = Frame::default();
    frame.rtts_us.reserve(64);
    let mut qf = QFrame::default();
    let mut enc = FrameEncoder::new(start);
    let mut out = Vec::with_capacity(1 << 20);
    // Warm up, then measure.
    for _ in 0..1_000 {
        synth.next_frame(&mut frame);
        qf.set_from(&frame, &q);
        enc.encode(&qf, &mut out);
    }
    out.clear();
    let before = allocs();
    for _ in 0..10_000 {
        synth.next_frame(&mut frame);
        qf.set_from(&frame, &q);
        enc.encode(&qf, &mut out);
        if out.len() > (1 << 19) {
            out.clear();
        }
    }
    assert_eq!(allocs() - before, 0, "codec allocations in 10,000 frames");

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
            writer: "t".into(),
        },
    )
    .unwrap();
    for i in 0..1_000 {
        synth.next_frame(&mut frame);
        w.append(&frame).unwrap();
        if i % 50 == 49 {
            w.flush().unwrap();
        }
    }
    let before = allocs();
    for i in 0..10_000 {
        synth.next_frame(&mut frame);
        w.append(&frame).unwrap();
        if i % 50 == 49 {
            w.flush().unwrap();
        }
    }
    assert_eq!(allocs() - before, 0, "writer allocations in 10,000 frames");
    w.sync().unwrap();
    assert_eq!(w.frames_written(), 11_000);
}
