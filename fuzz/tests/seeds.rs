//! The committed seed corpora: every target has seeds, and each seed is a meaningful
//! input of its decoder (so the fuzzers start deep, not from noise).
//!
//! `ZZPING_WRITE_SEEDS=1 cargo test --manifest-path fuzz/Cargo.toml` writes them again
//! (after a format change), from the library's own writers and a real live session.

use std::path::{Path, PathBuf};
use zzping_daemon::icmp::{self, Family, Message};
use zzping_fuzz::live::{CLIENT_ID, Session, TOKEN, client_addr};
use zzping_fuzz::{join, pieces};
use zzping_lib::file::{
    FORMAT_VERSION, FileReader, HostInfo, HostWriter, SegmentHeader, WriterConfig,
};
use zzping_lib::pyramid;

const TARGETS: [&str; 8] = [
    "frame_file",
    "events_file",
    "segment_header",
    "sidecar",
    "live_server",
    "live_client",
    "legacy",
    "icmp",
];

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let mut v: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(corpus(target))
        .unwrap_or_else(|e| panic!("{target}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
        })
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    v.sort();
    assert!(!v.is_empty(), "{target}: no seeds");
    v.into_iter().map(|(_, b)| b).collect()
}

/// A day file of two hosts' worth of segments: 2 segments, 40 frames, 2 precisions.
fn frame_file(dir: &Path) -> PathBuf {
    let t0 = zzping_fuzz::live::T0;
    for (seg, precision) in [(0u64, 0.01), (1, 0.05)] {
        let mut w = HostWriter::open(
            dir,
            HostInfo {
                label: "gw".into(),
                address: "198.18.0.1".parse().unwrap(),
                name: (seg == 1).then(|| "router.lan".into()),
                role: None,
            },
            WriterConfig {
                period_us: 100_000,
                precision,
                writer: "seeds".into(),
            },
        )
        .unwrap();
        for i in 0..20 {
            let f = zzping_fuzz::live::frame(1, t0 + (seg * 20 + i) * 100_000);
            w.append(&f).unwrap();
        }
        w.sync().unwrap();
    }
    zzping_lib::store::layout::day_file(&dir.join("gw"), t0)
}

/// An events day file of every kind: 2 segments (two writers).
fn events_file(dir: &Path) -> PathBuf {
    use zzping_lib::events::{ContextEvent, EventKind, EventWriter};
    let t0 = zzping_fuzz::live::T0;
    let mut w = EventWriter::new(dir, "seeds");
    let evs = [
        ContextEvent::new(t0, EventKind::DaemonStart),
        ContextEvent::link(t0 + 1, EventKind::CarrierOff, "wlan0"),
        ContextEvent::link(t0 + 2, EventKind::LinkDown, "wlan0"),
        ContextEvent::route(
            t0 + 3,
            4,
            Some("198.18.0.1".parse().unwrap()),
            Some("wlan0"),
            true,
        ),
        ContextEvent::address(
            t0 + 4,
            "2001:db8::2".parse().unwrap(),
            64,
            Some("wlan0"),
            false,
        ),
        ContextEvent::suspend(t0 + 5, 12_300_000),
        ContextEvent::clock_step(t0 + 6, -2_000_000),
        ContextEvent::reload(t0 + 7, "hosts"),
        ContextEvent::host_moved(
            t0 + 7,
            "cdn",
            "198.18.0.9".parse().unwrap(),
            Some("198.18.0.8".parse().unwrap()),
        ),
        ContextEvent::daemon_stop(t0 + 8, "signal 15"),
    ];
    for ev in &evs {
        w.append(ev, t0);
    }
    w.flush().unwrap();
    drop(w);
    let mut w = EventWriter::new(dir, "seeds");
    w.append(&ContextEvent::new(t0 + 9, EventKind::DaemonStart), t0 + 9);
    w.flush().unwrap();
    zzping_lib::events::day_file(&zzping_lib::events::events_dir(dir), t0)
}

fn live_seeds() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut s = Session::connect(30);
    let mut to_client = s.exchange();
    for k in 0..30u64 {
        let f = zzping_fuzz::live::frame(1 + (k % 2) as u32, s.now - 150_000);
        s.server.on_frame(1 + (k % 2) as u32, &f, s.now);
        if k % 7 == 3 {
            // Context events, one of each shape, between the frames.
            let e = zzping_fuzz::live::context_event(k / 7, s.now - 50_000);
            s.server.on_event(&e, s.now);
        }
        s.now += 100_000;
        to_client.extend(s.exchange());
    }
    s.server.remove_host(2);
    s.now += 100_000;
    to_client.extend(s.exchange());
    // The client's messages: heartbeats (one asking for metadata), a resend, a goodbye.
    let mut to_server = Vec::new();
    let mut tx = Vec::new();
    s.now += zzping_lib::live::HEARTBEAT_INTERVAL_US;
    while s.client.poll_transmit(s.now, &mut tx) {
        to_server.push(tx.clone());
    }
    let mut resend = to_server[0].clone();
    // A heartbeat is [1, 2, token, ts, flags, mac?]; a resend [1, 3, token, from, count].
    resend[2] = 3;
    to_server.push(resend);
    s.client.close();
    while s.client.poll_transmit(s.now, &mut tx) {
        to_server.push(tx.clone());
    }
    for d in &to_server {
        s.server.on_datagram(client_addr(), d, s.now);
    }
    let un = |v: &[Vec<u8>]| -> Vec<Vec<u8>> { v.iter().map(|d| s.unpatch(d)).collect() };
    (un(&to_server), un(&to_client))
}

fn icmp_seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for fam in [Family::V4, Family::V6] {
        let mut b = [0u8; 64];
        let n = icmp::emit_echo_request(fam, &mut b, 0x1234, 7, 0xdead_beef).unwrap();
        let mut reply = b[..n].to_vec();
        reply[0] = if fam == Family::V4 {
            icmp::V4_ECHO_REPLY
        } else {
            icmp::V6_ECHO_REPLY
        };
        out.push(reply.clone());
        if fam == Family::V4 {
            // As a raw socket delivers it: after a 20-byte IPv4 header.
            let mut ip = vec![
                0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2,
            ];
            ip.extend_from_slice(&reply);
            out.push(ip);
            // Destination unreachable quoting the request (its IP header and 8 bytes).
            let mut err = vec![icmp::V4_DEST_UNREACH, 1, 0, 0, 0, 0, 0, 0];
            err.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0]);
            err.extend_from_slice(&[198, 18, 0, 2, 198, 18, 0, 1]);
            err.extend_from_slice(&b[..8]);
            out.push(err);
        }
    }
    out
}

fn generate() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let dir = tempfile::tempdir().unwrap();
    let file = std::fs::read(frame_file(dir.path())).unwrap();
    let header_len = SegmentHeader::decode(&file).unwrap().1;
    let mut torn = file.clone();
    torn.truncate(file.len() - 3);
    let mut garbage = file.clone();
    garbage.splice(200..200, [0xc1, 0xff, 0x13]);
    let p = pyramid::build(&frame_file(dir.path()), &pyramid::PERSISTED_WIDTHS_US).unwrap();
    let events = std::fs::read(events_file(dir.path())).unwrap();
    let mut events_torn = events.clone();
    events_torn.truncate(events.len() - 3);
    let mut events_garbage = events.clone();
    // Between the fourth and fifth events: the rest of that segment is skipped.
    let mut at = zzping_lib::events::EventsHeader::decode(&events).unwrap().1;
    for _ in 0..4 {
        at += zzping_lib::events::ContextEvent::decode(&events[at..])
            .unwrap()
            .1;
    }
    events_garbage.splice(at..at, [0xc1, 0xff, 0x13]);
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/legacy-samples");
    let legacy = |n: &str| std::fs::read(samples.join(n)).unwrap();
    let (to_server, to_client) = live_seeds();
    let refs = |v: &[Vec<u8>]| -> Vec<u8> { join(&v.iter().map(|d| &d[..]).collect::<Vec<_>>()) };
    vec![
        ("frame_file", vec![file.clone(), torn, garbage]),
        ("events_file", vec![events, events_torn, events_garbage]),
        ("segment_header", vec![file[..header_len].to_vec()]),
        ("sidecar", vec![pyramid::encode_sidecar(&p)]),
        (
            "live_server",
            to_server
                .iter()
                .map(|d| refs(std::slice::from_ref(d)))
                .chain([refs(&to_server)])
                .collect(),
        ),
        (
            "live_client",
            to_client
                .chunks(8)
                .map(refs)
                .chain([refs(&to_client)])
                .collect(),
        ),
        (
            "legacy",
            vec![
                legacy("pingd-log-192.168.0.1-20210301T08.log"),
                legacy("fdq-192.168.0.1-q001.fdq"),
            ],
        ),
        ("icmp", icmp_seeds()),
    ]
}

#[test]
fn every_target_has_meaningful_seeds() {
    if std::env::var_os("ZZPING_WRITE_SEEDS").is_some() {
        for (target, seeds) in generate() {
            let dir = corpus(target);
            std::fs::create_dir_all(&dir).unwrap();
            for (i, s) in seeds.iter().enumerate() {
                std::fs::write(dir.join(format!("seed-{i:02}")), s).unwrap();
            }
        }
    }
    for t in TARGETS {
        for (i, s) in seeds(t).iter().enumerate() {
            let what = format!("{t} seed {i}");
            match t {
                "frame_file" => {
                    let mut r = FileReader::new("seed".into(), &s[..]);
                    let (mut n, mut with_kinds) = (0, 0);
                    while let Some(f) = r.next_frame().unwrap() {
                        n += 1;
                        with_kinds += usize::from(!f.error_kinds.is_empty() && f.router.is_some());
                        // This format version's segments.
                        assert_eq!(r.header().unwrap().version, FORMAT_VERSION, "{what}");
                    }
                    assert!(n >= 20, "{what}: {n} frames");
                    assert!(with_kinds > 0, "{what}: no frame with errors by kind");
                }
                "events_file" => {
                    let mut r = zzping_lib::events::EventReader::new("seed".into(), &s[..]);
                    let mut kinds = std::collections::BTreeSet::new();
                    while let Some(ev) = r.next_event().unwrap() {
                        kinds.insert(ev.kind.name().to_owned());
                        assert_eq!(
                            r.header().unwrap().version,
                            zzping_lib::events::FORMAT_VERSION,
                            "{what}"
                        );
                    }
                    assert!(kinds.len() >= 4, "{what}: {kinds:?}");
                }
                "segment_header" => {
                    let (h, _) = SegmentHeader::decode(s).unwrap();
                    assert_eq!(h.version, FORMAT_VERSION, "{what}");
                }
                "sidecar" => {
                    let p = pyramid::decode_sidecar(s).unwrap();
                    assert!(!p.levels[0].summaries.is_empty(), "{what}");
                }
                "live_server" | "live_client" => {
                    let ps: Vec<&[u8]> = pieces(s).collect();
                    assert!(!ps.is_empty(), "{what}");
                    if t == "live_client" {
                        // The stream itself, not only its control messages.
                        let frames = ps
                            .iter()
                            .filter(|p| u64::from(p[2]) == zzping_lib::live::wire::T_FRAMES);
                        assert!(frames.count() > 0, "{what}: no frames");
                        if ps.len() > 8 {
                            // The whole stream (the others are chunks of 8) has context
                            // events.
                            let events = ps
                                .iter()
                                .filter(|p| u64::from(p[2]) == zzping_lib::live::wire::T_EVENTS);
                            assert!(events.count() > 0, "{what}: no context events");
                        }
                    }
                    // Every piece is a message of the protocol with a placeholder token.
                    for p in ps {
                        // This version's messages: older ones are refused at once.
                        assert_eq!(
                            u64::from(p[1]),
                            zzping_lib::live::wire::VERSION,
                            "{what}: version"
                        );
                        let marked = p.windows(9).any(|w| w == TOKEN || w == CLIENT_ID);
                        assert!(marked, "{what}: {p:02x?}");
                    }
                }
                "legacy" => {
                    assert!(zzping_legacy::detect(s).is_some(), "{what}");
                }
                "icmp" => {
                    let meaningful = |m: Option<Message>| {
                        matches!(m, Some(Message::EchoReply { .. } | Message::Error { .. }))
                    };
                    let raw = icmp::strip_ipv4_header(s)
                        .ok()
                        .and_then(|i| icmp::parse_v4(i).ok());
                    assert!(
                        meaningful(raw)
                            || meaningful(icmp::parse_v4(s).ok())
                            || meaningful(icmp::parse_v6(s).ok()),
                        "{what}"
                    );
                }
                _ => unreachable!(),
            }
        }
    }
}
