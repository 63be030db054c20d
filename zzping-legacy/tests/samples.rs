//! The importers against files written by the original zzping's own code, frame by frame
//! against what the original's own readers decoded from them (tests/data/legacy-samples,
//! see its README).

use serde_json::Value;
use std::path::PathBuf;
use zzping_legacy::{
    FrameDataDecoder, LegacyEnd, LegacyFormat, LegacyFrame, LegacyReader, detect, parse_rfc3339_us,
};

const FRAMEDATA: &str = "pingd-log-192.168.0.1-20210301T08.log";
const FDQ: &str = "fdq-192.168.0.1-q001.fdq";
/// 2021-03-01T08:00:00Z, µs.
const T0_US: u64 = 1_614_585_600_000_000;
/// Frames in each sample.
const SAMPLE_FRAMES: usize = 3000;

fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/legacy-samples")
        .join(name)
}

fn bytes(name: &str) -> Vec<u8> {
    std::fs::read(sample(name)).unwrap()
}

/// The rows the original decoded, and the header fields of the JSON.
fn expected(name: &str) -> (Value, Vec<Value>) {
    let v: Value =
        serde_json::from_slice(&std::fs::read(sample(&format!("{name}.json"))).unwrap()).unwrap();
    let rows = v["frames"].as_array().unwrap().clone();
    assert_eq!(rows.len(), v["frame_count"].as_u64().unwrap() as usize);
    (v, rows)
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a uint: {v}"))
}

fn read_all(mut r: LegacyReader<&[u8]>) -> (Vec<LegacyFrame>, LegacyEnd) {
    let mut out = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        out.push(f.clone());
    }
    (out, r.end().clone())
}

#[test]
fn framedata_frame_by_frame() {
    let b = bytes(FRAMEDATA);
    assert_eq!(detect(&b), Some(LegacyFormat::FrameData));
    let (_, rows) = expected(FRAMEDATA);
    let (frames, end) = read_all(LegacyReader::framedata(&b[..]));
    assert_eq!(end, LegacyEnd::Clean);
    assert_eq!(frames.len(), SAMPLE_FRAMES);
    assert_eq!(rows.len(), SAMPLE_FRAMES);

    // Walk the frames once more with the decoder to see each frame's stored time field.
    let mut dec = FrameDataDecoder::new();
    let mut pos = 0;
    let mut scratch = LegacyFrame::default();
    for (i, (f, row)) in frames.iter().zip(&rows).enumerate() {
        let row = row.as_array().unwrap();
        assert_eq!(f.time_us, u(&row[0]), "frame {i}");
        let at = pos;
        pos += dec.decode(&b[pos..], &mut scratch).unwrap();
        let full = matches!(b[at], 0xa0..=0xbf | 0xd9..=0xdb);
        match &row[1] {
            Value::String(s) => {
                assert!(full, "frame {i}: the original stored a full timestamp {s}");
                assert_eq!(parse_rfc3339_us(s), Some(f.time_us), "frame {i}");
            }
            d => {
                assert!(!full, "frame {i}: the original stored a delta {d}");
            }
        }
        assert_eq!(u64::from(f.inflight), u(&row[2]), "frame {i} inflight");
        assert_eq!(u64::from(f.lost_rolling), u(&row[3]), "frame {i} lost");
        let rtts: Vec<u32> = row[4]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| u(v) as u32)
            .collect();
        assert_eq!(f.rtts_us, rtts, "frame {i} RTTs");
        assert_eq!(f.replies as usize, rtts.len(), "frame {i}");
        assert!(!f.approximate);
        assert_eq!(f.percentiles, None);
    }
    assert_eq!(pos, b.len());

    // The README's edge frames, spelled out.
    let fulls: Vec<usize> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r[1].is_string())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(fulls, [0, 751, 1502, 2253]);
    // A delta of exactly 15 s stays a delta (the frame before each later full one).
    for i in [750, 1501, 2252] {
        assert_eq!(u(&rows[i][1]), 15_000_000);
        assert_eq!(frames[i].time_us, frames[i - 750].time_us + 15_000_000);
    }
    assert_eq!(frames[0].time_us, T0_US);
    assert_eq!(frames[751].time_us, T0_US + 15_020_000);
    let edge: [(&[u32], u32, u32); 10] = [
        (&[800], 0, 0),
        (&[60_000], 0, 0),
        (&[800, 60_000], 0, 0),
        (&[1001, 1002, 1003, 1004, 1005], 2, 0),
        (&[2500; 5], 0, 0),
        (&[], 0, 0),
        (&[999, 1000, 1001], 0, 0),
        (&[801, 802, 59_999, 60_000], 0, 0),
        (&[], 3, 0),
        (&[], 0, 2),
    ];
    for (k, (rtts, inflight, lost)) in edge.iter().enumerate() {
        let f = &frames[3 + k];
        assert_eq!(
            f.time_us,
            T0_US + (3 + k as u64) * 20_000,
            "frame {}",
            3 + k
        );
        assert_eq!(
            (&f.rtts_us[..], f.inflight, f.lost_rolling),
            (*rtts, *inflight, *lost),
            "frame {}",
            3 + k
        );
    }
    // The 400 ms outage: 20 frames without replies, the rolling counters climbing.
    for f in &frames[1490..1510] {
        assert!(f.rtts_us.is_empty() && f.inflight > 0, "{f:?}");
    }
    assert!(!frames[1489].rtts_us.is_empty() && !frames[1510].rtts_us.is_empty());
    let all: Vec<u32> = frames.iter().flat_map(|f| f.rtts_us.clone()).collect();
    assert_eq!(all.len(), 6105);
    assert_eq!(all.iter().min(), Some(&800));
    assert_eq!(all.iter().max(), Some(&60_000));
}

#[test]
fn framedata_torn_at_every_cut_of_the_last_frame() {
    let b = bytes(FRAMEDATA);
    let (full, _) = read_all(LegacyReader::framedata(&b[..]));
    // Find where the last frame starts.
    let mut dec = FrameDataDecoder::new();
    let mut pos = 0;
    let mut starts = Vec::new();
    let mut f = LegacyFrame::default();
    while pos < b.len() {
        starts.push(pos);
        pos += dec.decode(&b[pos..], &mut f).unwrap();
    }
    let last = *starts.last().unwrap();
    for cut in last + 1..b.len() {
        let (frames, end) = read_all(LegacyReader::framedata(&b[..cut]));
        assert_eq!(frames.len(), SAMPLE_FRAMES - 1, "cut {cut}");
        assert_eq!(frames[..], full[..SAMPLE_FRAMES - 1]);
        assert_eq!(
            end,
            LegacyEnd::TornTail {
                offset: last as u64,
                len: (cut - last) as u64
            }
        );
    }
}

#[test]
fn fdq_frame_by_frame() {
    let b = bytes(FDQ);
    assert_eq!(detect(&b), Some(LegacyFormat::FrameDataQ));
    let (v, rows) = expected(FDQ);
    let r = LegacyReader::fdq(&b[..]).unwrap();
    let h = r.fdq_header().unwrap().clone();
    assert_eq!(h.version, u(&v["header"]["version"]));
    assert_eq!(h.full_encode_secs, u(&v["header"]["full_encode_secs"]));
    assert_eq!(h.recv_llq, v["header"]["recv_llq"].as_f64());
    assert!(!h.delta_enc);
    let (frames, end) = read_all(r);
    assert_eq!(end, LegacyEnd::Clean);
    assert_eq!(frames.len(), SAMPLE_FRAMES);
    for (i, (f, row)) in frames.iter().zip(&rows).enumerate() {
        let row = row.as_array().unwrap();
        assert_eq!(f.time_us, u(&row[0]) * 1000, "frame {i}");
        // In-flight and lost are floats in the original, whole numbers here.
        assert_eq!(f64::from(f.inflight), row[1].as_f64().unwrap(), "frame {i}");
        assert_eq!(
            f64::from(f.lost_rolling),
            row[2].as_f64().unwrap(),
            "frame {i}"
        );
        let n = u(&row[3]) as u32;
        assert_eq!(f.replies, n, "frame {i}");
        let p: Vec<i64> = row[4]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        if n == 0 {
            assert_eq!(p, [-1; 7], "frame {i}");
            assert_eq!(f.percentiles, None, "frame {i}");
            assert!(f.rtts_us.is_empty());
        } else {
            assert_eq!(f.percentiles.map(Vec::from), Some(p.clone()), "frame {i}");
            // n RTTs, ascending, spanning exactly the stored minimum and maximum.
            assert_eq!(f.rtts_us.len(), n as usize, "frame {i}");
            assert!(f.rtts_us.is_sorted());
            assert_eq!(i64::from(f.rtts_us[0]), p[0], "frame {i}");
            assert_eq!(i64::from(*f.rtts_us.last().unwrap()), p[6], "frame {i}");
        }
        assert!(f.approximate);
    }
    // The README's edge values: the original quantizer at p = 0.01.
    assert_eq!(frames[3].percentiles, Some([800; 7]));
    assert_eq!(frames[4].percentiles, Some([60_068; 7]));
    assert_eq!(frames[5].percentiles.unwrap()[6], 60_068);
    assert_eq!(frames[9].percentiles.unwrap()[0], 996);
    assert_eq!((frames[11].inflight, frames[11].replies), (3, 0));
    assert_eq!((frames[12].lost_rolling, frames[12].replies), (2, 0));
    assert_eq!(
        frames.iter().map(|f| u64::from(f.replies)).sum::<u64>(),
        6105
    );
    // Both files hold the same pings at the same times.
    let (fd, _) = read_all(LegacyReader::framedata(&bytes(FRAMEDATA)[..]));
    for (a, q) in fd.iter().zip(&frames) {
        assert_eq!((a.time_us, a.replies), (q.time_us, q.replies));
    }
}

#[test]
fn fdq_torn_tail_keeps_every_complete_frame() {
    let b = bytes(FDQ);
    let (full, _) = read_all(LegacyReader::fdq(&b[..]).unwrap());
    for cut in [b.len() - 1, b.len() - 5, b.len() / 2] {
        let (frames, end) = read_all(LegacyReader::fdq(&b[..cut]).unwrap());
        assert_eq!(frames[..], full[..frames.len()]);
        assert!(frames.len() < SAMPLE_FRAMES);
        let LegacyEnd::TornTail { offset, len } = end else {
            panic!("cut {cut}: {end:?}");
        };
        assert_eq!(offset + len, cut as u64);
    }
}
