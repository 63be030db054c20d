//! Frame file tests: headers, writer, reader, recovery.

use super::*;
use crate::store::layout::day_file;

fn host() -> HostInfo {
    HostInfo {
        label: "gw".into(),
        address: "198.18.0.1".parse().unwrap(),
        name: None,
        role: None,
    }
}

fn cfg() -> WriterConfig {
    WriterConfig {
        period_us: 100_000,
        precision: 0.01,
        writer: "test".into(),
    }
}

fn frame(start_us: u64, rtts: &[u32]) -> Frame {
    let mut f = Frame::new(start_us, 100_000);
    f.sent = rtts.len() as u32 + 1;
    f.lost = 1;
    f.rtts_us.extend_from_slice(rtts);
    f
}

fn read_all(path: &Path) -> (Vec<QFrame>, Vec<Issue>) {
    let mut r = FileReader::open(path).unwrap();
    let mut out = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        out.push(f.clone());
    }
    (out, r.issues().to_vec())
}

const T0: u64 = 1_700_000_000_000_000;

#[test]
fn header_round_trip_and_magic() {
    let h = SegmentHeader {
        schema: SCHEMA.into(),
        version: 1,
        host: "2001:db8::1".into(),
        name: Some("router".into()),
        period_us: 100_000,
        precision: 0.01,
        created_us: 5,
        base_us: 7,
        writer: "w".into(),
        label: None,
        role: None,
    };
    let mut buf = Vec::new();
    h.encode(&mut buf);
    assert!(is_fixmap(buf[0]));
    assert_eq!(&buf[1..1 + SEGMENT_MAGIC.len()], SEGMENT_MAGIC);
    assert_eq!(SegmentHeader::decode(&buf), Ok((h.clone(), buf.len())));
    for cut in 0..buf.len() {
        assert_eq!(
            SegmentHeader::decode(&buf[..cut]),
            Err(HeaderError::Truncated)
        );
    }
    let mut bad = h;
    bad.version = FORMAT_VERSION + 1;
    let mut buf = Vec::new();
    bad.encode(&mut buf);
    assert!(matches!(
        SegmentHeader::decode(&buf),
        Err(HeaderError::Invalid(_))
    ));
}

#[test]
fn a_frame_quantized_once_is_written_as_append_writes_it() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut plain = HostWriter::open(a.path(), host(), cfg()).unwrap();
    let mut once = HostWriter::open(b.path(), host(), cfg()).unwrap();
    let quantizer = Quantizer::new(cfg().precision).unwrap();
    let mut q = QFrame::default();
    let now_us = T0 + 42;
    for i in 0..20u64 {
        let f = frame(T0 + i * 100_000, &[900 + i as u32, 15_000, 250]);
        plain.append(&f).unwrap();
        q.set_from(&f, &quantizer);
        once.append_quantized(&q, now_us).unwrap();
    }
    // Codes of another precision, or another period, are refused and nothing is
    // buffered.
    let mut foreign = q.clone();
    foreign.start_us += 100_000;
    foreign.codes = vec![quantizer.code_count()];
    assert!(matches!(
        once.append_quantized(&foreign, now_us),
        Err(FileError::Config(_))
    ));
    foreign.codes = vec![3, 1];
    assert!(once.append_quantized(&foreign, now_us).is_err());
    foreign.codes.clear();
    foreign.period_us = 50_000;
    assert!(once.append_quantized(&foreign, now_us).is_err());
    assert_eq!(once.frames_written(), 20);
    plain.sync().unwrap();
    once.sync().unwrap();
    let (pa, pb) = (
        day_file(plain.host_dir(), crate::time::day_start_us(T0)),
        day_file(once.host_dir(), crate::time::day_start_us(T0)),
    );
    assert_eq!(read_all(&pa), read_all(&pb));
    // The segment's creation time is the one handed in.
    let mut r = FileReader::open(&pb).unwrap();
    r.next_frame().unwrap();
    assert_eq!(r.header().unwrap().created_us, now_us);
}

#[test]
fn restart_appends_a_segment_never_truncates() {
    let dir = tempfile::tempdir().unwrap();
    for run in 0..3u64 {
        let mut w = HostWriter::open(dir.path(), host(), cfg()).unwrap();
        for i in 0..10 {
            w.append(&frame(
                T0 + (run * 10 + i) * 100_000,
                &[1000, 2000 + i as u32],
            ))
            .unwrap();
        }
        w.sync().unwrap();
    }
    let path = day_file(&dir.path().join("gw"), T0);
    let mut r = FileReader::open(&path).unwrap();
    let mut n = 0;
    while let Some(f) = r.next_frame().unwrap() {
        assert_eq!(f.start_us, T0 + n * 100_000);
        assert_eq!(f.lost, 1);
        n += 1;
    }
    assert_eq!(n, 30);
    assert_eq!(r.segments_seen(), 3);
    assert!(r.issues().is_empty());
    assert_eq!(r.header().unwrap().host, "198.18.0.1");
}

#[test]
fn headers_carry_the_label_and_role_the_address_and_name_do_not_say() {
    let dir = tempfile::tempdir().unwrap();
    let header_of = |info: HostInfo| {
        let mut w = HostWriter::open(dir.path(), info, cfg()).unwrap();
        w.append(&frame(T0, &[1000])).unwrap();
        w.sync().unwrap();
        let mut r = FileReader::open(day_file(w.host_dir(), T0)).unwrap();
        r.next_frame().unwrap();
        r.header().unwrap().clone()
    };
    let h = header_of(HostInfo {
        label: "living room".into(),
        role: Some(role::GATEWAY.into()),
        ..host()
    });
    assert_eq!(h.label.as_deref(), Some("living room"));
    assert_eq!(h.role.as_deref(), Some("gateway"));
    assert_eq!(
        layout::display_label("living-room", Some(&h)),
        "living room"
    );
    // A label that is the address (or the name) is not repeated.
    let h = header_of(HostInfo {
        label: "198.18.0.1".into(),
        ..host()
    });
    assert_eq!((h.label.as_deref(), h.role.as_deref()), (None, None));
    let h = header_of(HostInfo {
        label: "nas.lan".into(),
        name: Some("nas.lan".into()),
        ..host()
    });
    assert_eq!(h.label, None);
}

#[test]
fn day_rollover_opens_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let day = crate::time::US_PER_DAY;
    let midnight = (T0 / day + 1) * day;
    let mut w = HostWriter::open(dir.path(), host(), cfg()).unwrap();
    for i in 0..4u64 {
        w.append(&frame(midnight - 200_000 + i * 100_000, &[500]))
            .unwrap();
    }
    w.sync().unwrap();
    let hd = dir.path().join("gw");
    let (a, _) = read_all(&day_file(&hd, midnight - 1));
    let (b, _) = read_all(&day_file(&hd, midnight));
    assert_eq!(a.len(), 2);
    assert_eq!(b.len(), 2);
    assert_eq!(b[0].start_us, midnight);
}

#[test]
fn a_directory_that_cannot_be_created_yet_keeps_the_frames_until_it_can() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the data directory should be: creating it fails, even for root.
    let data = dir.path().join("data");
    std::fs::write(&data, b"").unwrap();
    assert!(HostWriter::open(&data, host(), cfg()).is_err());
    let mut w = HostWriter::new(&data, host(), cfg()).unwrap();
    for i in 0..5 {
        w.append(&frame(T0 + i * 100_000, &[700])).unwrap();
    }
    assert!(w.flush().is_err());
    assert_eq!((w.pending_frames(), w.dropped_frames()), (5, 0));
    w.append(&frame(T0 + 500_000, &[700])).unwrap();
    assert!(w.sync().is_err());
    // The directory becomes possible: every frame is written, once.
    std::fs::remove_file(&data).unwrap();
    std::fs::create_dir(&data).unwrap();
    w.sync().unwrap();
    assert_eq!((w.pending_frames(), w.dropped_frames()), (0, 0));
    let (frames, issues) = read_all(&day_file(&data.join("gw"), T0));
    assert!(issues.is_empty(), "{issues:?}");
    let starts: Vec<u64> = frames.iter().map(|f| f.start_us).collect();
    assert_eq!(starts, (0..6).map(|i| T0 + i * 100_000).collect::<Vec<_>>());
}

#[test]
fn a_backlog_past_its_bound_is_dropped_counted_and_the_file_stays_readable() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::write(&data, b"").unwrap();
    let mut w = HostWriter::new(&data, host(), cfg()).unwrap();
    let rtts: Vec<u32> = (0..2000).map(|i| 1000 + i * 37).collect();
    let mut n = 0u64;
    // Each frame is a few KiB: the 8 MiB bound is passed within a few thousand.
    while w.dropped_frames() == 0 {
        assert!(n < 100_000, "never dropped");
        w.append(&frame(T0 + n * 100_000, &rtts)).unwrap();
        n += 1;
        if n % 100 == 0 {
            assert!(w.flush().is_err());
        }
    }
    assert_eq!((w.dropped_frames(), w.pending_frames()), (n, 0));
    std::fs::remove_file(&data).unwrap();
    std::fs::create_dir(&data).unwrap();
    w.append(&frame(T0 + n * 100_000, &[700])).unwrap();
    w.sync().unwrap();
    let (frames, issues) = read_all(&day_file(&data.join("gw"), T0));
    assert!(issues.is_empty(), "{issues:?}");
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].start_us, T0 + n * 100_000);
}

#[test]
fn a_failing_directory_across_midnight_keeps_both_days_and_a_new_address() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::write(&data, b"").unwrap();
    let day = crate::time::US_PER_DAY;
    let midnight = (T0 / day + 1) * day;
    let mut w = HostWriter::new(&data, host(), cfg()).unwrap();
    let starts: Vec<u64> = (0..6).map(|i| midnight - 300_000 + i * 100_000).collect();
    for (i, &t) in starts.iter().enumerate() {
        if i == 4 {
            w.set_address("198.18.0.7".parse().unwrap()).unwrap();
        }
        w.append(&frame(t, &[500])).unwrap();
    }
    assert!(w.flush().is_err());
    assert_eq!((w.pending_frames(), w.dropped_frames()), (6, 0));
    std::fs::remove_file(&data).unwrap();
    std::fs::create_dir(&data).unwrap();
    w.sync().unwrap();
    assert_eq!(w.pending_frames(), 0);
    let hd = data.join("gw");
    let (a, ia) = read_all(&day_file(&hd, midnight - 1));
    let (b, ib) = read_all(&day_file(&hd, midnight));
    assert!(ia.is_empty() && ib.is_empty(), "{ia:?} {ib:?}");
    let got: Vec<u64> = a.iter().chain(&b).map(|f| f.start_us).collect();
    assert_eq!(got, starts);
    assert_eq!(a.len(), 3);
    // The address changed before the fifth frame: its own segment says so.
    let mut r = FileReader::open(day_file(&hd, midnight)).unwrap();
    let mut hosts = Vec::new();
    while r.next_frame().unwrap().is_some() {
        hosts.push(r.header().unwrap().host.clone());
    }
    assert_eq!(hosts, ["198.18.0.1", "198.18.0.7", "198.18.0.7"]);
}

#[test]
fn torn_tail_then_restart_keeps_every_good_frame() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = HostWriter::open(dir.path(), host(), cfg()).unwrap();
    for i in 0..5 {
        w.append(&frame(T0 + i * 100_000, &[700, 800, 900]))
            .unwrap();
    }
    w.sync().unwrap();
    drop(w);
    let path = day_file(&dir.path().join("gw"), T0);
    let full = std::fs::metadata(&path).unwrap().len();
    // Tear the last frame: cut 2 bytes (simulating a crash mid-write).
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(full - 2).unwrap();
    let (frames, issues) = read_all(&path);
    assert_eq!(frames.len(), 4);
    assert!(matches!(issues[..], [Issue::TornTail { .. }]));
    // Restart: appends a new segment after the torn bytes.
    let mut w = HostWriter::open(dir.path(), host(), cfg()).unwrap();
    w.append(&frame(T0 + 10 * 100_000, &[600])).unwrap();
    w.sync().unwrap();
    let (frames, issues) = read_all(&path);
    assert_eq!(frames.len(), 5);
    assert_eq!(frames[4].start_us, T0 + 10 * 100_000);
    assert!(matches!(issues[..], [Issue::TornTail { .. }]), "{issues:?}");
}

#[test]
fn garbage_in_the_middle_skips_to_next_segment() {
    let dir = tempfile::tempdir().unwrap();
    let path = day_file(&dir.path().join("gw"), T0);
    let mut w = HostWriter::open(dir.path(), host(), cfg()).unwrap();
    for i in 0..5 {
        w.append(&frame(T0 + i * 100_000, &[700])).unwrap();
    }
    w.sync().unwrap();
    drop(w);
    let good_len = std::fs::metadata(&path).unwrap().len();
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(&[0xc1, 0xff, 0x00, 0x13, 0x37]).unwrap();
    drop(f);
    let mut w = HostWriter::open(dir.path(), host(), cfg()).unwrap();
    for i in 10..13 {
        w.append(&frame(T0 + i * 100_000, &[700])).unwrap();
    }
    w.sync().unwrap();
    let (frames, issues) = read_all(&path);
    assert_eq!(frames.len(), 8);
    match &issues[..] {
        [Issue::Garbage { offset, len, .. }] => {
            assert_eq!(*offset, good_len);
            assert_eq!(*len, 5);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn invalid_header_is_skipped_not_looped_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = day_file(&dir.path().join("gw"), T0);
    let mut w = HostWriter::open(dir.path(), host(), cfg()).unwrap();
    w.append(&frame(T0, &[700])).unwrap();
    w.sync().unwrap();
    drop(w);
    let bad_at = std::fs::metadata(&path).unwrap().len();
    // A well-formed header of an unsupported version: invalid, skipped as garbage.
    let mut bad = SegmentHeader {
        schema: SCHEMA.into(),
        version: FORMAT_VERSION + 1,
        host: "198.18.0.1".into(),
        name: None,
        period_us: 100_000,
        precision: 0.01,
        created_us: 0,
        base_us: T0,
        writer: "future".into(),
        label: None,
        role: None,
    };
    let mut buf = Vec::new();
    bad.encode(&mut buf);
    buf.extend_from_slice(&[0x93, 0x00, 0x01, 0x90]);
    let bad_len = buf.len() as u64;
    bad.version = FORMAT_VERSION;
    OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&buf)
        .unwrap();
    let mut w = HostWriter::open(dir.path(), host(), cfg()).unwrap();
    w.append(&frame(T0 + 100_000, &[800])).unwrap();
    w.sync().unwrap();
    let (frames, issues) = read_all(&path);
    assert_eq!(frames.len(), 2);
    match &issues[..] {
        [Issue::Garbage { offset, len, .. }] => assert_eq!((*offset, *len), (bad_at, bad_len)),
        other => panic!("{other:?}"),
    }
}

/// A segment of `n` frames at `precision` starting at `t`, as raw bytes.
fn segment_bytes(precision: f64, t: u64, n: u64) -> Vec<u8> {
    let h = SegmentHeader {
        schema: SCHEMA.into(),
        version: FORMAT_VERSION,
        host: "198.18.0.1".into(),
        name: None,
        period_us: 100_000,
        precision,
        created_us: 0,
        base_us: t,
        writer: "test".into(),
        label: None,
        role: None,
    };
    let mut buf = Vec::new();
    h.encode(&mut buf);
    let mut enc = FrameEncoder::new(t);
    let mut q = QFrame::default();
    for i in 0..n {
        q.set_from(
            &frame(t + i * 100_000, &[700, 900]),
            &Quantizer::new(0.01).unwrap(),
        );
        q.period_us = 100_000;
        enc.encode(&q, &mut buf);
    }
    buf
}

#[test]
fn a_nan_precision_skips_its_segment_and_later_segments_are_read() {
    // 0.01 with an exponent of all ones: NaN (bit flips in a header do such things).
    let nan = f64::from_bits(0.01f64.to_bits() | (0x7ff << 52));
    assert!(nan.is_nan());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.zzp");
    let a = segment_bytes(0.01, T0, 3);
    let bad = segment_bytes(nan, T0 + 1_000_000, 4);
    let c = segment_bytes(0.01, T0 + 2_000_000, 5);
    std::fs::write(&path, [a.clone(), bad.clone(), c].concat()).unwrap();
    let (frames, issues) = read_all(&path);
    assert_eq!(frames.len(), 8);
    assert_eq!(frames[3].start_us, T0 + 2_000_000);
    match &issues[..] {
        [
            Issue::Garbage {
                offset,
                len,
                reason,
            },
        ] => {
            assert_eq!((*offset, *len), (a.len() as u64, bad.len() as u64));
            assert!(reason.contains("precision NaN"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    for p in [0.0, -0.01, 0.6, f64::INFINITY, 1e-5] {
        let mut buf = Vec::new();
        SegmentHeader {
            precision: p,
            ..SegmentHeader::decode(&a).unwrap().0
        }
        .encode(&mut buf);
        assert!(
            matches!(SegmentHeader::decode(&buf), Err(HeaderError::Invalid(_))),
            "{p}"
        );
    }
}

#[test]
fn distinct_precisions_keep_at_most_a_few_quantizers() {
    let mut bytes = Vec::new();
    let n = 40u64;
    for i in 0..n {
        // Fine precisions: the largest tables (hundreds of KB each).
        let p = MIN_PRECISION * (1.0 + i as f64 / 100.0);
        bytes.extend(segment_bytes(p, T0 + i * 1_000_000, 1));
    }
    let mut r = FileReader::new("mem".into(), &bytes[..]);
    let mut frames = 0;
    while let Some(f) = r.next_frame().unwrap() {
        let codes = f.codes.clone();
        frames += 1;
        assert!(r.quantizers.len() <= QUANTIZER_CACHE);
        let q = r.quantizer().unwrap();
        assert_eq!(r.header().unwrap().precision, q.precision());
        assert!(codes.iter().all(|&c| c < q.code_count()));
    }
    assert_eq!(frames, n);
    assert_eq!(r.segments_seen(), n);
    assert!(r.issues().is_empty());
    // A precision seen again after eviction is rebuilt, equal to the first.
    let again = [segment_bytes(0.01, T0, 1), segment_bytes(0.02, T0 + 1, 0)].concat();
    let mut r = FileReader::new("mem".into(), &again[..]);
    while r.next_frame().unwrap().is_some() {}
    assert_eq!(r.quantizers.len(), 2);
}
