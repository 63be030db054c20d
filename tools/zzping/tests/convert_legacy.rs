//! `zzping convert` on files written by the original zzping's own code
//! (tests/data/legacy-samples): formats told by content whatever the name, every ping
//! carried over, and inputs that yield no frames failing the run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use zzping_lib::codec::QFrame;
use zzping_lib::file::FileReader;
use zzping_lib::frame::FLAG_APPROXIMATE;
use zzping_lib::quantizer::Quantizer;
use zzping_lib::store::layout::day_file;

/// 2021-03-01T08:00:00Z, µs: the samples' first frame.
const T0_US: u64 = 1_614_585_600_000_000;
/// Replies in each sample.
const SAMPLE_REPLIES: u64 = 6105;
/// 3,000 legacy frames of 20 ms make 600 frames of the default 100 ms.
const OUT_FRAMES: usize = 600;

fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/legacy-samples")
        .join(name)
}

fn zz(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zzping"))
        .args(args)
        .output()
        .expect("run zzping")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn read_frames(path: &Path) -> (Vec<QFrame>, Quantizer) {
    let mut r = FileReader::open(path).unwrap();
    let mut v = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        v.push(f.clone());
    }
    assert!(r.issues().is_empty(), "{:?}", r.issues());
    let q = r.quantizer().map(|q| (**q).clone()).unwrap();
    (v, q)
}

#[test]
fn original_framedata_log_converts_every_ping() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("data");
    let log = sample("pingd-log-192.168.0.1-20210301T08.log");
    let o = zz(&["convert", s(&log), "--data-dir", s(&out)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("FrameData: 3000 legacy frames, 6105 replies -> host 192.168.0.1"),
        "{}",
        stderr(&o)
    );
    let (frames, q) = read_frames(&day_file(&out.join("192.168.0.1"), T0_US));
    assert_eq!(frames.len(), OUT_FRAMES);
    let received: u64 = frames.iter().map(|f| u64::from(f.received())).sum();
    assert_eq!(received, SAMPLE_REPLIES);
    assert!(frames.iter().all(|f| f.flags & FLAG_APPROXIMATE == 0));
    // The first 100 ms hold legacy frames 0-4 (the README's first frames and the single
    // 800 µs and 60,000 µs replies), exact then quantized.
    let mut first = [1263, 2189, 1722, 3241, 9193, 800, 60_000];
    first.sort_unstable();
    let want: Vec<u32> = first.iter().map(|&r| q.round_trip(r)).collect();
    assert_eq!(frames[0].start_us, T0_US);
    assert_eq!(frames[0].rtts_us(&q).collect::<Vec<_>>(), want);
}

#[test]
fn original_fdq_is_told_by_content_whatever_its_name() {
    let dir = tempfile::tempdir().unwrap();
    // The original tools named these `.fdq.log`: a `.log` ending must not make it
    // FrameData.
    let named = dir.path().join("pingd-log-192.168.0.1-20210301T08.fdq.log");
    std::fs::copy(sample("fdq-192.168.0.1-q001.fdq"), &named).unwrap();
    let out = dir.path().join("data");
    let o = zz(&["convert", s(&named), "--data-dir", s(&out)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("FrameDataQ: 3000 legacy frames, 6105 replies -> host 192.168.0.1"),
        "{}",
        stderr(&o)
    );
    let (frames, _) = read_frames(&day_file(&out.join("192.168.0.1"), T0_US));
    assert_eq!(frames.len(), OUT_FRAMES);
    let received: u64 = frames.iter().map(|f| u64::from(f.received())).sum();
    assert_eq!(received, SAMPLE_REPLIES);
    assert!(
        frames
            .iter()
            .filter(|f| f.received() > 0)
            .all(|f| f.flags & FLAG_APPROXIMATE != 0)
    );
    // And the same file under a name with no known ending at all.
    let plain = dir.path().join("capture-192.168.0.7");
    std::fs::copy(sample("fdq-192.168.0.1-q001.fdq"), &plain).unwrap();
    let o = zz(&["convert", s(&plain), "--data-dir", s(&out)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("FrameDataQ: 3000 legacy frames"),
        "{}",
        stderr(&o)
    );
    assert!(out.join("192.168.0.7").is_dir());
}

#[test]
fn inputs_without_frames_fail_the_run_after_the_good_ones() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("pingd-log-10.0.0.1-20210301T08.log");
    std::fs::write(&empty, b"").unwrap();
    let garbage = dir.path().join("pingd-log-10.0.0.2-20210301T08.log");
    std::fs::write(&garbage, [0xc1u8; 100]).unwrap();
    // A FrameDataQ header and nothing after it.
    let fdq = std::fs::read(sample("fdq-192.168.0.1-q001.fdq")).unwrap();
    let header_only = dir.path().join("pingd-log-10.0.0.3-20210301T08.fdq");
    std::fs::write(&header_only, &fdq[..0x48]).unwrap();
    let good = sample("pingd-log-192.168.0.1-20210301T08.log");
    let out = dir.path().join("data");
    let o = zz(&[
        "convert",
        s(&empty),
        s(&garbage),
        s(&header_only),
        s(&good),
        "--data-dir",
        s(&out),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    for (path, what) in [
        (&empty, "no FrameData frames"),
        (&garbage, "no FrameData frames"),
        (&header_only, "no FrameDataQ frames"),
    ] {
        assert!(
            err.contains(&format!("error: {}: {what}", path.display())),
            "{what} for {}: {err}",
            path.display()
        );
    }
    assert!(err.contains("undecodable data at byte 0"), "{err}");
    assert!(err.contains("3 input(s) yielded no frames"), "{err}");
    // The good input was converted all the same.
    let (frames, _) = read_frames(&day_file(&out.join("192.168.0.1"), T0_US));
    assert_eq!(frames.len(), OUT_FRAMES);
}
