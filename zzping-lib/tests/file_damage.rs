//! Property: whatever bytes are torn off or injected into a frame file, the reader never
//! panics and never loses a good frame — every frame of an undamaged segment is returned,
//! and the damage is reported with its byte offset.

use proptest::prelude::*;
use std::path::Path;
use zzping_lib::file::{FileReader, HostInfo, HostWriter, Issue, SegmentHeader, WriterConfig};
use zzping_lib::frame::Frame;
use zzping_lib::store::layout::day_file;

const T0: u64 = 20_000 * 86_400_000_000 + 7_200_000_000;

/// Writes `segments` segments (one writer each, as daemon restarts do) of the given frame
/// counts; returns the file and, per segment, its byte range and frame start times.
fn write(dir: &Path, segments: &[usize]) -> (std::path::PathBuf, Vec<(u64, u64, Vec<u64>)>) {
    let mut out = Vec::new();
    let mut slot = 0u64;
    let path = day_file(&dir.join("h"), T0);
    for &n in segments {
        let before = std::fs::metadata(&path).map_or(0, |m| m.len());
        let mut w = HostWriter::open(
            dir,
            HostInfo {
                label: "h".into(),
                address: "198.18.0.3".parse().unwrap(),
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
        let mut starts = Vec::new();
        for i in 0..n {
            let mut f = Frame::new(T0 + slot * 100_000, 100_000);
            f.sent = 4;
            f.lost = (i % 2) as u32;
            f.rtts_us
                .extend((0..(4 - f.lost)).map(|k| 300 + 97 * k + i as u32));
            starts.push(f.start_us);
            w.append(&f).unwrap();
            slot += 1;
        }
        w.sync().unwrap();
        drop(w);
        let after = std::fs::metadata(&path).unwrap().len();
        out.push((before, after, starts));
    }
    (path, out)
}

fn read(path: &Path) -> (Vec<u64>, Vec<Issue>) {
    let mut r = FileReader::open(path).unwrap();
    let mut starts = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        starts.push(f.start_us);
    }
    (starts, r.issues().to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Garbage injected inside one segment never panics the reader and loses no good
    /// frame: every frame of the other segments, and every frame of the damaged segment
    /// that ends before the junk, is read. (Junk that happens to decode as a frame cannot
    /// be told from data without a checksum; see docs/format.md §6.)
    #[test]
    fn injected_garbage_loses_no_good_frame(
        segments in prop::collection::vec(1usize..30, 1..5),
        which in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        junk in prop::collection::vec(any::<u8>(), 1..64),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (path, segs) = write(dir.path(), &segments);
        let bytes = std::fs::read(&path).unwrap();
        let mut ends = Vec::new();
        let mut r = FileReader::open(&path).unwrap();
        while let Some(f) = r.next_frame().unwrap() {
            let t = f.start_us;
            ends.push((t, r.offset()));
        }
        let s = which.index(segs.len());
        let (lo, hi, _) = &segs[s];
        let pos = *lo as usize + at.index((hi - lo) as usize);
        let mut damaged = bytes[..pos].to_vec();
        damaged.extend_from_slice(&junk);
        damaged.extend_from_slice(&bytes[pos..]);
        std::fs::write(&path, &damaged).unwrap();
        let (got, _) = read(&path);
        for (i, (_, _, starts)) in segs.iter().enumerate() {
            for t in starts {
                let end = ends.iter().find(|e| e.0 == *t).map(|e| e.1).unwrap();
                if i != s || end <= pos as u64 {
                    prop_assert!(got.contains(t), "good frame {} (segment {}) lost", t, i);
                }
            }
        }
    }

    /// A torn tail (the file cut anywhere) keeps exactly the frames that were completely
    /// written before the cut, and reports the torn bytes (when the cut is not at a value
    /// boundary) as a torn tail ending at the cut.
    #[test]
    fn torn_tail_keeps_every_complete_frame(
        segments in prop::collection::vec(1usize..20, 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (path, segs) = write(dir.path(), &segments);
        let bytes = std::fs::read(&path).unwrap();
        // Where each segment header ends (a cut there tears nothing).
        let header_ends: Vec<u64> = segs
            .iter()
            .map(|(lo, _, _)| lo + SegmentHeader::decode(&bytes[*lo as usize..]).unwrap().1 as u64)
            .collect();
        // Each frame's start time and the offset where it ends.
        let mut ends = Vec::new();
        let mut r = FileReader::open(&path).unwrap();
        while let Some(f) = r.next_frame().unwrap() {
            let t = f.start_us;
            ends.push((t, r.offset()));
        }
        let keep = cut.index(bytes.len());
        std::fs::write(&path, &bytes[..keep]).unwrap();
        let (got, issues) = read(&path);
        let expected: Vec<u64> = ends.iter().filter(|e| e.1 <= keep as u64).map(|e| e.0).collect();
        prop_assert_eq!(&got, &expected);
        for i in &issues {
            match i {
                Issue::TornTail { offset, len } => prop_assert_eq!(offset + len, keep as u64),
                Issue::Garbage { .. } => prop_assert!(false, "a cut is a torn tail, not garbage: {:?}", issues),
            }
        }
        let at_boundary = keep == 0
            || ends.iter().any(|e| e.1 == keep as u64)
            || header_ends.contains(&(keep as u64));
        if !at_boundary {
            prop_assert_eq!(issues.len(), 1, "the torn bytes are reported");
        }
    }
}

/// Regression: junk inside a segment header once made the header look like a huge string,
/// and the rest of the file — later, intact segments included — was reported as a torn
/// tail.
#[test]
fn junk_in_a_header_does_not_hide_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (path, segs) = write(dir.path(), &[20, 3]);
    let bytes = std::fs::read(&path).unwrap();
    for pos in 0..16 {
        let mut damaged = bytes[..pos].to_vec();
        damaged.push(0xda); // str16 marker: a 2-byte length follows
        damaged.extend_from_slice(&bytes[pos..]);
        std::fs::write(&path, &damaged).unwrap();
        let (got, issues) = read(&path);
        for t in &segs[1].2 {
            assert!(
                got.contains(t),
                "junk at {pos}: frame {t} of the second segment lost"
            );
        }
        assert!(!issues.is_empty(), "junk at {pos} not reported");
    }
}
