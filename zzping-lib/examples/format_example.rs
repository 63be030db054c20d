//! Prints the hex dump of a small frame file: the worked example of `docs/format.md`.
//! Run: `cargo run -p zzping-lib --example format_example`.

use zzping_lib::codec::{FrameEncoder, QFrame};
use zzping_lib::file::{SCHEMA, SegmentHeader};
use zzping_lib::frame::Frame;
use zzping_lib::quantizer::Quantizer;

fn hex(label: &str, bytes: &[u8]) {
    println!("{label}:");
    for chunk in bytes.chunks(16) {
        let h: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        println!("  {}", h.join(" "));
    }
}

fn main() {
    let q = Quantizer::default();
    let base = 1_700_000_000_000_000u64; // 2023-11-14T22:13:20Z
    let header = SegmentHeader {
        schema: SCHEMA.into(),
        version: 1,
        host: "192.0.2.1".into(),
        name: Some("gw".into()),
        period_us: 100_000,
        precision: 0.01,
        created_us: base + 5,
        base_us: base,
        writer: "zzping-daemon 0.1.0".into(),
        label: None,
        role: None,
    };
    let mut buf = Vec::new();
    header.encode(&mut buf);
    hex("segment header", &buf);

    let mut enc = FrameEncoder::new(base);
    let mut qf = QFrame::default();
    let mut f1 = Frame::new(base, 100_000);
    f1.sent = 3;
    f1.rtts_us.extend([1234, 987, 1500]);
    let mut f2 = Frame::new(base + 100_000, 100_000);
    f2.sent = 3;
    f2.lost = 1;
    f2.rtts_us.extend([1010, 1200]);
    let mut f3 = Frame::new(base + 400_000, 100_000);
    f3.sent = 2;
    f3.errors = 2;
    for (name, f) in [("frame 1", &f1), ("frame 2", &f2), ("frame 3", &f3)] {
        qf.set_from(f, &q);
        let mut out = Vec::new();
        enc.encode(&qf, &mut out);
        let rtts: Vec<String> = qf
            .codes
            .iter()
            .map(|&c| format!("{c}->{}", q.decode(c).unwrap()))
            .collect();
        println!("{name}: rtts {:?} codes [{}]", f.rtts_us, rtts.join(", "));
        hex(name, &out);
    }
}
