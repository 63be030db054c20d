use super::*;
use crate::file::Issue;
use crate::time::US_PER_DAY;
use std::io::Write;

const DAY0: u64 = 19_000 * US_PER_DAY;

fn every_kind(t: u64) -> Vec<ContextEvent> {
    vec![
        ContextEvent::new(t, EventKind::DaemonStart),
        ContextEvent::link(t + 1, EventKind::LinkDown, "wlan0"),
        ContextEvent::link(t + 2, EventKind::CarrierOff, "wlan0"),
        ContextEvent::link(t + 3, EventKind::CarrierOn, "wlan0"),
        ContextEvent::link(t + 4, EventKind::LinkUp, "wlan0"),
        ContextEvent::route(
            t + 5,
            4,
            Some("198.18.0.1".parse().unwrap()),
            Some("zzsim0"),
            false,
        ),
        ContextEvent::route(t + 6, 6, None, None, true),
        ContextEvent::address(
            t + 7,
            "2001:db8::5".parse().unwrap(),
            64,
            Some("eth0"),
            false,
        ),
        ContextEvent::address(t + 8, "198.18.0.2".parse().unwrap(), 15, None, true),
        ContextEvent::suspend(t + 9, 12_300_000),
        ContextEvent::clock_step(t + 10, -3_600_000_000),
        ContextEvent::reload(t + 11, "hosts, rate 10 -> 20"),
        ContextEvent::daemon_stop(t + 12, "signal 15"),
        ContextEvent::new(t + 13, EventKind::Other("roam".into())),
        ContextEvent::host_moved(
            t + 14,
            "cdn",
            "2001:db8::7".parse().unwrap(),
            Some("198.18.0.7".parse().unwrap()),
        ),
        ContextEvent::host_moved(t + 15, "printer", "198.18.0.8".parse().unwrap(), None),
        ContextEvent::stall(t + 16, 3_000_000),
    ]
}

#[test]
fn every_kind_round_trips_and_unknown_keys_are_skipped() {
    for ev in every_kind(DAY0) {
        let mut b = Vec::new();
        ev.encode(&mut b);
        assert_eq!(
            ContextEvent::decode(&b),
            Ok((ev.clone(), b.len())),
            "{ev:?}"
        );
        // Any decoder reads it: a map with t_us and kind.
        let v: serde_json::Value = rmp_serde::from_slice(&b).unwrap();
        assert_eq!(v["t_us"], ev.t_us);
        assert_eq!(v["kind"], ev.kind.name());
    }
    // A newer writer's extra key is skipped.
    let mut b = Vec::new();
    rmp::encode::write_map_len(&mut b, 4).unwrap();
    for (k, v) in [
        ("t_us", None),
        ("bssid", Some("aa:bb")),
        ("kind", Some("link_up")),
    ] {
        rmp::encode::write_str(&mut b, k).unwrap();
        match v {
            None => drop(rmp::encode::write_uint(&mut b, 7).unwrap()),
            Some(v) => rmp::encode::write_str(&mut b, v).unwrap(),
        };
    }
    rmp::encode::write_str(&mut b, "interface").unwrap();
    rmp::encode::write_str(&mut b, "wlan0").unwrap();
    let (ev, _) = ContextEvent::decode(&b).unwrap();
    assert_eq!(ev, ContextEvent::link(7, EventKind::LinkUp, "wlan0"));
}

#[test]
fn capped_encoding_is_the_same_for_short_texts_and_bounded_for_long_ones() {
    for ev in every_kind(DAY0) {
        let (mut full, mut capped) = (Vec::new(), Vec::new());
        ev.encode(&mut full);
        ev.encode_capped(&mut capped, MAX_CAPPED_TEXT);
        assert_eq!(full, capped, "{ev:?}");
    }
    // Every key, every text far too long (multi-byte characters), the longest addresses.
    let long = "ü".repeat(1000);
    let worst = ContextEvent {
        t_us: u64::MAX,
        kind: EventKind::Other(long.clone()),
        interface: Some(long.clone()),
        family: Some(6),
        gateway: Some(
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
                .parse()
                .unwrap(),
        ),
        address: Some(
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
                .parse()
                .unwrap(),
        ),
        prefix_len: Some(128),
        removed: true,
        duration_us: Some(u64::MAX),
        step_us: Some(i64::MIN),
        reason: Some(long.clone()),
        applied: Some(long.clone()),
        host: Some(long.clone()),
        previous: Some(
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
                .parse()
                .unwrap(),
        ),
    };
    let mut b = Vec::new();
    worst.encode_capped(&mut b, MAX_CAPPED_TEXT);
    assert!(b.len() <= MAX_CAPPED_EVENT_BYTES, "{} bytes", b.len());
    let (back, n) = ContextEvent::decode(&b).unwrap();
    assert_eq!(n, b.len());
    let cut = &long[..MAX_CAPPED_TEXT];
    assert_eq!(back.kind.name(), cut);
    assert_eq!(back.interface.as_deref(), Some(cut));
    assert_eq!(back.applied.as_deref(), Some(cut));
    assert_eq!(back.host.as_deref(), Some(cut));
    assert_eq!((back.gateway, back.step_us), (worst.gateway, worst.step_us));
    assert_eq!(back.previous, worst.previous);
    // A cut never splits a character: 3-byte characters cut to 159 bytes.
    let mut b = Vec::new();
    ContextEvent::reload(1, &"€".repeat(100)).encode_capped(&mut b, MAX_CAPPED_TEXT);
    let (back, _) = ContextEvent::decode(&b).unwrap();
    assert_eq!(back.applied.map(|a| a.len()), Some(159));
}

#[test]
fn a_known_kind_without_its_keys_or_with_bad_values_is_invalid() {
    let enc = |ev: &ContextEvent| {
        let mut b = Vec::new();
        ev.encode(&mut b);
        b
    };
    let bare = |k| enc(&ContextEvent::new(1, k));
    for k in [
        EventKind::LinkDown,
        EventKind::RouteChange,
        EventKind::AddressAdded,
        EventKind::Suspend,
        EventKind::Stall,
        EventKind::ClockStep,
        EventKind::DaemonStop,
        EventKind::Reload,
        EventKind::HostMoved,
    ] {
        let e = ContextEvent::decode(&bare(k.clone())).unwrap_err();
        assert!(matches!(e, msgpack::Error::Invalid { .. }), "{k:?}: {e}");
    }
    let mut r = ContextEvent::route(1, 4, None, None, false);
    r.family = Some(5);
    assert!(ContextEvent::decode(&enc(&r)).is_err());
    // A host_moved names its host, not only where it went.
    let mut m = ContextEvent::host_moved(1, "cdn", "198.18.0.7".parse().unwrap(), None);
    m.host = None;
    assert_eq!(
        ContextEvent::decode(&enc(&m)),
        Err(msgpack::Error::Invalid {
            offset: 0,
            what: "a host_moved needs host"
        })
    );
    assert_eq!(
        every_kind(DAY0)[15].describe(),
        "host printer now at 198.18.0.8"
    );
    let stall = every_kind(DAY0)[16].clone();
    assert_eq!(
        stall.describe(),
        "zzping stalled for 3.000 s (no pings sent meanwhile)"
    );
    assert_eq!(stall.end_us(), stall.t_us + 3_000_000);
    assert_eq!(
        every_kind(DAY0)[14].describe(),
        "host cdn now at 2001:db8::7 (was 198.18.0.7)"
    );
    // Truncated anywhere: truncated, never a panic or a wrong event.
    let b = enc(&every_kind(DAY0)[5]);
    for n in 0..b.len() {
        assert!(
            matches!(
                ContextEvent::decode(&b[..n]),
                Err(msgpack::Error::Truncated { .. })
            ),
            "{n}"
        );
    }
}

fn read_all(path: &Path) -> (Vec<ContextEvent>, Vec<Issue>) {
    let mut r = EventReader::open(path).unwrap();
    let mut v = Vec::new();
    while let Some(ev) = r.next_event().unwrap() {
        v.push(ev);
    }
    (v, r.issues().to_vec())
}

#[test]
fn the_writer_writes_day_files_with_a_header_per_writer_and_the_reader_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = EventWriter::new(dir.path(), "test 1");
    let evs = every_kind(DAY0 + 1000);
    for ev in &evs {
        w.append(ev, DAY0 + 5);
    }
    // The next day goes to its own file.
    let next = ContextEvent::new(DAY0 + US_PER_DAY + 1, EventKind::DaemonStart);
    w.append(&next, DAY0 + 5);
    assert_eq!(w.pending_events(), evs.len() as u64 + 1);
    w.sync().unwrap();
    assert_eq!(w.pending_events(), 0);
    drop(w);
    // A second writer (a restart) appends a segment.
    let mut w = EventWriter::new(dir.path(), "test 2");
    let later = ContextEvent::daemon_stop(DAY0 + 9000, "duration reached");
    w.append(&later, DAY0 + 9000);
    w.flush().unwrap();
    let d = events_dir(dir.path());
    let day0 = day_file(&d, DAY0);
    let (got, issues) = read_all(&day0);
    assert!(issues.is_empty(), "{issues:?}");
    let mut want = evs.clone();
    want.push(later.clone());
    assert_eq!(got, want);
    let bytes = std::fs::read(&day0).unwrap();
    assert_eq!(
        memchr::memmem::find_iter(&bytes, SEGMENT_MAGIC).count(),
        2,
        "one segment per writer"
    );
    // Any MessagePack decoder walks it: header maps and event maps.
    let mut rd = &bytes[..];
    let first: serde_json::Value = rmp_serde::from_read(&mut rd).unwrap();
    assert_eq!(first["schema"], "zzping-events");
    assert_eq!(first["writer"], "test 1");

    assert_eq!(
        event_files(&d).unwrap(),
        [
            (DAY0, day0.clone()),
            (DAY0 + US_PER_DAY, day_file(&d, DAY0 + US_PER_DAY))
        ]
    );
    // By range, across days, in order; a suspend reaching into the range counts.
    let log = read_range(std::slice::from_ref(&d), DAY0 + 1010, DAY0 + US_PER_DAY + 2);
    let kinds: Vec<&str> = log.events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(
        kinds,
        [
            "suspend",
            "clock_step",
            "reload",
            "daemon_stop",
            "roam",
            "host_moved",
            "host_moved",
            "stall",
            "daemon_stop",
            "daemon_start"
        ]
    );
    assert!(log.issues.is_empty() && log.errors.is_empty());
}

#[test]
fn torn_tails_and_garbage_are_reported_with_their_offset_and_good_events_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = EventWriter::new(dir.path(), "t");
    let evs = every_kind(DAY0);
    for ev in &evs[..5] {
        w.append(ev, DAY0);
    }
    w.flush().unwrap();
    drop(w);
    let path = day_file(&events_dir(dir.path()), DAY0);
    let good_len = std::fs::metadata(&path).unwrap().len();
    // Garbage, then a restart's segment whose last event is torn.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(&[0xc1, 0x00, 0xff]).unwrap();
    let mut seg = Vec::new();
    EventsHeader::new(DAY0, "t").encode(&mut seg);
    evs[5].encode(&mut seg);
    let mut torn = Vec::new();
    evs[6].encode(&mut torn);
    seg.extend_from_slice(&torn[..torn.len() - 2]);
    f.write_all(&seg).unwrap();
    drop(f);
    let (got, issues) = read_all(&path);
    assert_eq!(got, [&evs[..6]].concat());
    let torn_at = good_len + 3 + seg.len() as u64 - (torn.len() as u64 - 2);
    assert_eq!(
        issues,
        [
            Issue::Garbage {
                offset: good_len,
                len: 3,
                reason: "invalid at byte 0: expected a map".into()
            },
            Issue::TornTail {
                offset: torn_at,
                len: torn.len() as u64 - 2
            }
        ]
    );
    // Bytes before any header are garbage too.
    let lone = dir.path().join("x.zze");
    let mut b = Vec::new();
    evs[1].encode(&mut b);
    std::fs::write(&lone, &b).unwrap();
    let (got, issues) = read_all(&lone);
    assert!(got.is_empty());
    assert!(
        matches!(&issues[..], [Issue::Garbage { offset: 0, reason, .. }] if reason.contains("before any segment header")),
        "{issues:?}"
    );
    // The range reader names the file.
    let log = read_range(std::slice::from_ref(&lone), 0, u64::MAX);
    assert_eq!(log.issues.len(), 1);
    assert_eq!(log.issues[0].0, lone);
}

#[test]
fn a_failing_directory_keeps_the_events_then_gives_up_past_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    // The events directory's place is taken by a file: every flush fails.
    let blocked = events_dir(dir.path());
    std::fs::write(&blocked, b"x").unwrap();
    let mut w = EventWriter::new(dir.path(), "t");
    let ev = ContextEvent::reload(DAY0, &"x".repeat(1000));
    w.append(&ev, DAY0);
    let e = w.flush().unwrap_err().to_string();
    assert!(e.contains("@events"), "{e}");
    assert_eq!((w.pending_events(), w.dropped_events()), (1, 0));
    // It works again: the event waited and is written.
    std::fs::remove_file(&blocked).unwrap();
    w.flush().unwrap();
    assert_eq!(
        read_all(&day_file(&blocked, DAY0)).0,
        std::slice::from_ref(&ev)
    );
    // Failing past the bound: the backlog is dropped and counted; the next event starts a
    // new segment.
    std::fs::remove_dir_all(&blocked).unwrap();
    std::fs::write(&blocked, b"x").unwrap();
    let n = MAX_PENDING_BYTES / 1000 + 2;
    for _ in 0..n {
        w.append(&ev, DAY0);
    }
    assert!(w.flush().is_err());
    assert_eq!((w.pending_events(), w.dropped_events()), (0, n as u64));
    std::fs::remove_file(&blocked).unwrap();
    w.append(&ev, DAY0);
    w.flush().unwrap();
    let (got, issues) = read_all(&day_file(&blocked, DAY0));
    assert_eq!(got, [ev]);
    assert!(issues.is_empty(), "{issues:?}");
}

#[test]
fn inputs_locate_the_events_of_their_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let host = data.join("gw");
    std::fs::create_dir_all(&host).unwrap();
    let frame_file = host.join("2022-01-01.zzp");
    std::fs::write(&frame_file, b"").unwrap();
    assert!(locate(std::slice::from_ref(&data)).is_empty(), "none yet");
    let mut w = EventWriter::new(&data, "t");
    w.append(&ContextEvent::new(DAY0, EventKind::DaemonStart), DAY0);
    w.flush().unwrap();
    let ev = std::path::absolute(events_dir(&data)).unwrap();
    let file = day_file(&ev, DAY0);
    for input in [&data, &host, &frame_file, &ev] {
        assert_eq!(
            locate(std::slice::from_ref(input)),
            std::slice::from_ref(&ev),
            "{input:?}"
        );
    }
    assert_eq!(locate(&[data, host]), std::slice::from_ref(&ev));
    assert_eq!(locate(std::slice::from_ref(&file)), [file]);
}

/// The worked example of `docs/format.md` §10, byte for byte.
#[test]
fn the_worked_example_of_the_format_doc() {
    const BASE: u64 = 1_700_000_000_000_000;
    let hex = |s: &str| -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    };
    let mut b = Vec::new();
    EventsHeader::new(BASE, "zzping-daemon 0.1.0").encode(&mut b);
    assert_eq!(
        b,
        hex(
            "84 a6 73 63 68 65 6d 61 ad 7a 7a 70 69 6e 67 2d 65 76 65 6e 74 73 \
             a7 76 65 72 73 69 6f 6e 01 \
             aa 63 72 65 61 74 65 64 5f 75 73 cf 00 06 0a 24 18 1e 40 00 \
             a6 77 72 69 74 65 72 b3 7a 7a 70 69 6e 67 2d 64 61 65 6d 6f 6e 20 30 2e 31 2e 30"
        )
    );
    b.clear();
    ContextEvent::link(BASE + 250_000, EventKind::CarrierOff, "wlan0").encode(&mut b);
    assert_eq!(
        b,
        hex("83 a4 74 5f 75 73 cf 00 06 0a 24 18 22 10 90 \
             a4 6b 69 6e 64 ab 63 61 72 72 69 65 72 5f 6f 66 66 \
             a9 69 6e 74 65 72 66 61 63 65 a5 77 6c 61 6e 30")
    );
    b.clear();
    ContextEvent::suspend(BASE + 1_000_000, 12_300_000).encode(&mut b);
    assert_eq!(
        b,
        hex("83 a4 74 5f 75 73 cf 00 06 0a 24 18 2d 82 40 \
             a4 6b 69 6e 64 a7 73 75 73 70 65 6e 64 \
             ab 64 75 72 61 74 69 6f 6e 5f 75 73 ce 00 bb ae e0")
    );
}
