//! Sans-IO tests of the live stream: server and clients connected by an in-memory
//! network with an explicit clock.
#![allow(missing_docs)]

mod live_common;

use live_common::*;
use std::collections::HashMap;
use zzping_lib::file::{FileReader, HostInfo, HostWriter, WriterConfig};
use zzping_lib::live::*;
use zzping_lib::store::layout::{day_file, host_dir_name};

fn setup(cfg: LiveConfig, labels: &[&str]) -> Net {
    let mut net = Net::new(cfg, T0);
    for (i, l) in labels.iter().enumerate() {
        net.s.add_host(i as u32 + 1, meta(l)).unwrap();
    }
    net
}

/// Pushes `n` frames per host (hosts 1..=hosts), advancing 100 ms per frame.
fn feed(
    net: &mut Net,
    hosts: u32,
    n: usize,
    codes: usize,
) -> HashMap<u32, Vec<zzping_lib::codec::QFrame>> {
    let mut sent: HashMap<u32, Vec<_>> = HashMap::new();
    for _ in 0..n {
        net.advance(u64::from(PERIOD));
        let start = net.now - u64::from(PERIOD) - 20_000;
        let start = start - start % u64::from(PERIOD);
        for h in 1..=hosts {
            let f = frame(h, start, codes);
            net.s.on_frame(h, &f, net.now);
            sent.entry(h).or_default().push(quantize(&f));
        }
    }
    net.advance(300_000);
    sent
}

#[test]
fn viewers_with_filters_get_exactly_their_hosts() {
    let mut net = setup(LiveConfig::default(), &["a", "b", "c"]);
    let cfg_a = net.client_cfg(Some(&["a"]), 0);
    let cfg_bc = net.client_cfg(Some(&["b", "c"]), 0);
    let cfg_all = net.client_cfg(None, 0);
    let va = net.add_viewer(cfg_a);
    let vbc = net.add_viewer(cfg_bc);
    let vall = net.add_viewer(cfg_all);
    net.advance(50_000);
    assert!(net.v.iter().all(|v| v.subscribed()));
    let sent = feed(&mut net, 3, 50, 10);
    assert_eq!(net.v[va].hosts_seen(), vec![1]);
    assert_eq!(net.v[vbc].hosts_seen(), vec![2, 3]);
    assert_eq!(net.v[vall].hosts_seen(), vec![1, 2, 3]);
    assert_eq!(net.v[va].frames(1), sent[&1]);
    assert_eq!(net.v[vbc].frames(2), sent[&2]);
    assert_eq!(net.v[vbc].frames(3), sent[&3]);
    for h in 1..=3 {
        assert_eq!(net.v[vall].frames(h), sent[&h]);
    }
    // Host metadata came first, once per host.
    let metas: Vec<_> = net.v[vbc]
        .events
        .iter()
        .filter_map(|e| match e {
            LiveEvent::Host { host, meta } => Some((*host, meta.label.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(metas, vec![(2, "b".to_string()), (3, "c".to_string())]);
    assert_eq!(net.v[vbc].c.host(2).unwrap(), &meta("b"));
    // Batching keeps datagrams few: 50 frames x 3 hosts in far fewer datagrams.
    assert!(net.v[vall].received < 100, "{}", net.v[vall].received);
}

#[test]
fn frames_arrive_within_250ms() {
    let mut net = setup(LiveConfig::default(), &["a"]);
    let c = net.client_cfg(None, 0);
    let v = net.add_viewer(c);
    net.advance(50_000);
    for k in 0..20u64 {
        let start = T0 + k * 100_000;
        net.s.on_frame(1, &frame(1, start, 5), net.now);
        let closed = net.now;
        let before = net.v[v].frames(1).len();
        let mut waited = 0;
        while net.v[v].frames(1).len() == before {
            // The event loop sleeps until next_deadline.
            let d = net.s.next_deadline().unwrap();
            assert!(d <= closed + 100_000, "deadline {} after close", d - closed);
            net.now = net.now.max(d);
            net.pump();
            waited += 1;
            assert!(waited < 10);
        }
        assert!(net.now - closed <= 250_000);
        net.advance(37_000);
    }
}

#[test]
fn late_viewer_gets_prefill_equal_to_what_the_server_saw() {
    let mut net = setup(LiveConfig::default(), &["a", "b"]);
    let sent = feed(&mut net, 2, 600, 12);
    let c = net.client_cfg(None, 3600);
    let v = net.add_viewer(c);
    net.advance(2_000_000);
    for h in 1..=2 {
        assert_eq!(net.v[v].frames(h), sent[&h], "host {h}");
        assert!(net.v[v].gaps(h).is_empty());
    }
    // A viewer asking for 10 s gets the last 10 s.
    let c = net.client_cfg(Some(&["a"]), 10);
    let t = net.now;
    let v2 = net.add_viewer(c);
    net.advance(1_000_000);
    let got = net.v[v2].frames(1);
    let want: Vec<_> = sent[&1]
        .iter()
        .filter(|q| q.start_us >= t - 10_000_000)
        .cloned()
        .collect();
    assert!(
        got.len().abs_diff(want.len()) <= 1,
        "{} vs {}",
        got.len(),
        want.len()
    );
    assert_eq!(&want[want.len() - got.len()..], &got[..]);
}

/// 40 s of frames for two hosts starting at `t0`, all written to disk and the last 10 s
/// also in the server's ring; a late viewer asks for an hour and must get exactly the
/// files' contents.
fn disk_prefill(t0: u64, store: bool) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LiveConfig {
        ring_seconds: 10,
        ..LiveConfig::default()
    };
    let mut net = setup(cfg, &["gw", "dns"]);
    let mut writers: Vec<HostWriter> = ["gw", "dns"]
        .iter()
        .map(|l| {
            HostWriter::open(
                dir.path(),
                HostInfo {
                    label: l.to_string(),
                    address: "198.18.0.1".parse().unwrap(),
                    name: None,
                    role: None,
                },
                WriterConfig {
                    period_us: PERIOD,
                    precision: 0.01,
                    writer: "test".into(),
                },
            )
            .unwrap()
        })
        .collect();
    for k in 0..400u64 {
        let start = t0 + k * 100_000;
        for h in 1..=2u32 {
            let f = frame(h, start, 8);
            writers[h as usize - 1].append(&f).unwrap();
            net.s.on_frame(h, &f, start + 150_000);
        }
    }
    for w in &mut writers {
        w.flush().unwrap();
    }
    drop(writers);
    net.now = t0 + 400 * 100_000 + 50_000;
    net.hist = if store {
        let mut h = StoreHistory::new(dir.path());
        h.set_host(1, "gw");
        h.set_host(2, "dns");
        Box::new(h)
    } else {
        Box::new(FileHistory {
            dir: dir.path().to_path_buf(),
            labels: [(1, "gw".to_string()), (2, "dns".to_string())].into(),
            calls: 0,
        })
    };
    let c = net.client_cfg(None, 3600);
    let v = net.add_viewer(c);
    net.advance(3_000_000);
    for (h, l) in [(1u32, "gw"), (2, "dns")] {
        let host_dir = dir.path().join(host_dir_name(l));
        let mut on_disk = Vec::new();
        for day in [t0, t0 + 86_400_000_000] {
            let Ok(mut r) = FileReader::open(day_file(&host_dir, day)) else {
                continue;
            };
            while let Some(q) = r.next_frame().unwrap() {
                on_disk.push(q.clone());
            }
        }
        assert_eq!(on_disk.len(), 400);
        let got = net.v[v].frames(h);
        assert_eq!(got.len(), 400, "host {h}");
        assert_eq!(got, on_disk, "host {h}");
    }
    assert!(net.s.stats().history_frames >= 2 * 300);
}

#[test]
fn prefill_reads_older_history_from_disk() {
    disk_prefill(T0, false);
}

#[test]
fn store_history_streams_prefill_across_midnight() {
    // Starts 20 s before a UTC midnight: two day files per host.
    let midnight = (T0 / 86_400_000_000 + 1) * 86_400_000_000;
    disk_prefill(midnight - 20_000_000, true);
}

#[test]
fn dropped_datagrams_are_resent() {
    let mut net = setup(LiveConfig::default(), &["a", "b", "c"]);
    net.drop = Box::new(|_, n, _| n % 5 == 0);
    let c = net.client_cfg(None, 0);
    let v = net.add_viewer(c);
    net.advance(500_000);
    assert!(net.v[v].subscribed());
    let sent = feed(&mut net, 3, 300, 20);
    // A lost tail is noticed at the next heartbeat acknowledgement (every 5 s).
    net.advance(11_000_000);
    for h in 1..=3 {
        let got = net.v[v].frames(h);
        let first_bad = got.iter().zip(&sent[&h]).position(|(a, b)| a != b);
        assert_eq!(
            (got.len(), first_bad),
            (sent[&h].len(), None),
            "host {h}: {:?}",
            net.v[v].c.stats()
        );
        assert!(net.v[v].gaps(h).is_empty());
    }
    let st = net.s.stats();
    assert!(st.resent > 0 && st.unavailable == 0, "{st:?}");
    assert!(net.v[v].c.stats().resend_requests > 0);
}

#[test]
fn unrecoverable_losses_become_gaps() {
    let cfg = LiveConfig {
        retransmit_bytes: 16 << 10,
        ..LiveConfig::default()
    };
    let mut net = setup(cfg, &["a", "b", "c", "d"]);
    let c = net.client_cfg(None, 0);
    let v = net.add_viewer(c);
    net.advance(100_000);
    // A 5 s blackout towards the viewer while ~20 KB of frames flow, then recovery.
    let blackout = (net.now + 1_000_000, net.now + 6_000_000);
    let now_cell = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let nc = now_cell.clone();
    net.drop = Box::new(move |_, _, _| (blackout.0..blackout.1).contains(&nc.get()));
    let mut sent: HashMap<u32, Vec<_>> = HashMap::new();
    for k in 0..100u64 {
        now_cell.set(net.now);
        net.advance(100_000);
        now_cell.set(net.now);
        for h in 1..=4 {
            let f = frame(h, T0 + k * 100_000, 100);
            net.s.on_frame(h, &f, net.now);
            sent.entry(h).or_default().push(quantize(&f));
        }
    }
    now_cell.set(net.now);
    net.advance(6_000_000);
    assert!(net.s.stats().unavailable > 0);
    for h in 1..=4 {
        let got = net.v[v].frames(h);
        let gaps = net.v[v].gaps(h);
        assert!(!gaps.is_empty(), "host {h}");
        let lost: u64 = gaps.iter().map(|g| g.2).sum();
        assert_eq!(got.len() as u64 + lost, 100, "host {h}");
        // What arrived is exactly the frames sent, minus the gaps' time ranges.
        let want: Vec<_> = sent[&h]
            .iter()
            .filter(|q| !gaps.iter().any(|g| q.start_us >= g.0 && q.start_us < g.1))
            .cloned()
            .collect();
        assert_eq!(got, want);
        // The frames after the blackout arrived.
        assert_eq!(got.last(), sent[&h].last());
    }
}

#[test]
fn silent_viewer_expires_after_15s() {
    let mut net = setup(LiveConfig::default(), &["a"]);
    let c = net.client_cfg(None, 0);
    let quiet = net.add_viewer(c.clone());
    let chatty = net.add_viewer(c);
    net.advance(100_000);
    assert_eq!(net.s.stats().subscribers, 2);
    net.v[quiet].alive = false;
    let t = net.now;
    while net.now < t + 14_800_000 {
        net.advance(100_000);
        net.s.on_frame(1, &frame(1, net.now - 200_000, 3), net.now);
    }
    assert_eq!(net.s.stats().subscribers, 2);
    net.advance(400_000);
    assert_eq!(net.s.stats().subscribers, 1);
    assert_eq!(net.s.stats().expired, 1);
    // The other keeps heartbeating for a minute.
    net.advance(60_000_000);
    assert_eq!(net.s.stats().subscribers, 1);
    assert!(net.v[chatty].c.is_subscribed());
    // The vanished viewer comes back: it learns its token is unknown and resubscribes.
    net.v[quiet].alive = true;
    net.advance(20_000_000);
    assert_eq!(net.s.stats().subscribers, 2);
    assert!(net.v[quiet].events.contains(&LiveEvent::Reconnected));
}

#[test]
fn secret_wrong_key_gets_nothing_and_replays_are_refused() {
    let secret = [7u8; 32];
    let cfg = LiveConfig {
        secret: Some(secret),
        ..LiveConfig::default()
    };
    let mut net = setup(cfg, &["a"]);
    net.keep_log = true;
    let good = net.client_cfg(None, 0);
    let mut bad = good.clone();
    bad.secret = Some([8u8; 32]);
    let mut none = good.clone();
    none.secret = None;
    let vg = net.add_viewer(good);
    let vb = net.add_viewer(bad);
    let vn = net.add_viewer(none);
    net.advance(3_000_000);
    for h in 0..20 {
        net.s.on_frame(1, &frame(1, T0 + h * 100_000, 4), net.now);
        net.advance(100_000);
    }
    assert!(net.v[vg].subscribed());
    assert_eq!(net.v[vg].frames(1).len(), 20);
    for v in [vb, vn] {
        let addr = net.v[v].addr;
        assert!(
            net.log.iter().all(|(d, _)| *d != addr),
            "viewer {v} got a reply"
        );
        assert!(net.v[v].events.is_empty());
    }
    assert!(net.s.stats().auth_failures >= 2);

    // Replay the good viewer's cookie-bearing subscribe (captured on the wire).
    let mut c = LiveClient::new(net.v[vg].c.config().clone(), net.now).unwrap();
    let mut first = Vec::new();
    assert!(c.poll_transmit(net.now, &mut first));
    let addr = viewer_addr(99);
    net.s.on_datagram(addr, &first, net.now);
    let mut out = vec![0u8; RECV_BUFFER];
    let (dst, n) = net.s.poll_transmit(net.now, &mut out).unwrap();
    assert_eq!(dst, addr);
    assert!(n <= first.len());
    c.handle_datagram(server_addr(), &out[..n], net.now);
    let mut second = Vec::new();
    assert!(c.poll_transmit(net.now, &mut second));
    net.s.on_datagram(addr, &second, net.now);
    let subs = net.s.stats().subscribers;
    while net.s.poll_transmit(net.now, &mut out).is_some() {}
    let replays = net.s.stats().replays;
    net.s.on_datagram(addr, &second, net.now + 1000);
    assert_eq!(net.s.stats().replays, replays + 1);
    assert_eq!(net.s.stats().subscribers, subs);
    assert!(net.s.poll_transmit(net.now + 1000, &mut out).is_none());
    // A tampered copy fails the MAC.
    let mut t = second.clone();
    let k = t.len() / 2;
    t[k] ^= 1;
    let af = net.s.stats().auth_failures;
    net.s.on_datagram(addr, &t, net.now);
    assert_eq!(net.s.stats().auth_failures, af + 1);
    // An old subscribe (outside the timestamp window) is refused.
    net.s.on_datagram(addr, &second, net.now + 31_000_000);
    assert!(net.s.stats().stale >= 1);
}

#[test]
fn spoofed_subscribe_never_amplifies() {
    let mut net = setup(LiveConfig::default(), &["a", "b"]);
    feed(&mut net, 2, 100, 30);
    let victim = viewer_addr(77);
    let mut out = vec![0u8; RECV_BUFFER];
    let mut c = LiveClient::new(net.client_cfg(None, 3600), net.now).unwrap();
    let mut total_in = 0;
    let mut total_out = 0;
    for i in 0..50u64 {
        let now = net.now + i * 1_100_000;
        let mut req = Vec::new();
        c.resubscribe(now);
        assert!(c.poll_transmit(now, &mut req));
        assert!(req.len() >= MIN_SUBSCRIBE_LEN);
        net.s.on_datagram(victim, &req, now);
        total_in += req.len();
        while let Some((dst, n)) = net.s.poll_transmit(now, &mut out) {
            assert_eq!(dst, victim);
            assert!(n <= req.len(), "reply {n} > request {}", req.len());
            total_out += n;
        }
        // Forged heartbeats / resends for guessed tokens.
        for t in [wire::T_HEARTBEAT, wire::T_RESEND] {
            let mut m = vec![0x96, 1, t as u8, 0xcf];
            m.extend_from_slice(&(i * 7919).to_be_bytes());
            m.extend_from_slice(&[0, 100, 0xc4, 0]);
            net.s.on_datagram(victim, &m, now);
            while let Some((_, n)) = net.s.poll_transmit(now, &mut out) {
                assert!(n <= m.len());
            }
        }
    }
    assert!(total_out * 4 < total_in, "{total_out} vs {total_in}");
    assert_eq!(net.s.stats().subscribers, 0);
    // A forged cookie gets nothing.
    let mut req = Vec::new();
    c.resubscribe(net.now);
    c.poll_transmit(net.now, &mut req);
    net.s.on_datagram(viewer_addr(5), &req, net.now);
    let (_, n) = net.s.poll_transmit(net.now, &mut out).unwrap();
    c.handle_datagram(server_addr(), &out[..n], net.now);
    let mut with_cookie = Vec::new();
    c.poll_transmit(net.now, &mut with_cookie);
    net.s.on_datagram(viewer_addr(6), &with_cookie, net.now);
    assert!(net.s.poll_transmit(net.now, &mut out).is_none());
    assert_eq!(net.s.stats().bad_cookies, 1);
}

#[test]
fn sixteen_subscribers_at_once() {
    let mut net = setup(LiveConfig::default(), &["h0", "h1", "h2", "h3"]);
    for i in 0..16 {
        let f = [format!("h{}", i % 4)];
        let mut c = net.client_cfg(None, 60);
        if i % 2 == 1 {
            c.filter = Some(f.to_vec());
        }
        net.add_viewer(c);
    }
    let sent = feed(&mut net, 4, 100, 10);
    assert_eq!(net.s.stats().subscribers, 16);
    for (i, v) in net.v.iter().enumerate() {
        let hosts: Vec<u32> = if i % 2 == 1 {
            vec![i as u32 % 4 + 1]
        } else {
            vec![1, 2, 3, 4]
        };
        assert_eq!(v.hosts_seen(), hosts, "viewer {i}");
        for h in hosts {
            assert_eq!(v.frames(h), sent[&h]);
        }
    }
    // A 17th beyond max_subscribers is refused.
    let cfg = LiveConfig {
        max_subscribers: 16,
        ..LiveConfig::default()
    };
    let mut net2 = setup(cfg, &["a"]);
    for _ in 0..17 {
        let c = net2.client_cfg(None, 0);
        net2.add_viewer(c);
    }
    net2.advance(100_000);
    assert_eq!(net2.s.stats().subscribers, 16);
    assert!(net2.v[16].events.contains(&LiveEvent::Refused));
}

#[test]
fn unknown_types_and_versions_are_counted_and_ignored() {
    let mut net = setup(LiveConfig::default(), &["a"]);
    let a = viewer_addr(1);
    let v = wire::VERSION as u8;
    // An unknown type of this version; a message of another version (the previous
    // one, whose frames this version's peers could not decode); garbage.
    net.s.on_datagram(a, &[0x93, v, 99, 0], net.now);
    net.s.on_datagram(a, &[0x93, v - 1, 1, 0], net.now);
    net.s.on_datagram(a, &[0xc1, 1], net.now);
    let s = net.s.stats();
    assert_eq!((s.unknown_types, s.bad_version, s.malformed), (1, 1, 1));
    let mut out = vec![0u8; 2048];
    assert!(net.s.poll_transmit(net.now, &mut out).is_none());
    let mut c = LiveClient::new(net.client_cfg(None, 0), net.now).unwrap();
    c.handle_datagram(server_addr(), &[0x93, v, 99, 0], net.now);
    c.handle_datagram(server_addr(), &[0x92, v], net.now);
    assert_eq!(c.stats().unknown_types, 1);
    assert_eq!(c.stats().malformed, 1);
}

#[test]
fn hosts_added_and_removed_while_subscribed() {
    let mut net = setup(LiveConfig::default(), &["a"]);
    let c = net.client_cfg(None, 0);
    let v = net.add_viewer(c);
    net.advance(100_000);
    net.s.add_host(9, meta("late")).unwrap();
    net.s.on_frame(9, &frame(9, T0, 3), net.now);
    net.advance(200_000);
    net.s.remove_host(1);
    net.advance(200_000);
    let ev = &net.v[v].events;
    assert!(
        ev.iter()
            .any(|e| matches!(e, LiveEvent::Host { host: 9, .. }))
    );
    assert!(ev.contains(&LiveEvent::HostRemoved { host: 1 }));
    assert_eq!(net.v[v].frames(9).len(), 1);
    assert_eq!(net.s.stats().hosts, 1);
}

#[test]
fn listening_beyond_loopback_needs_a_secret() {
    let mut cfg = LiveConfig::default();
    assert!(check_listen_addr(DEFAULT_ADDR, &cfg).is_ok());
    assert!(check_listen_addr("[::1]:7878".parse().unwrap(), &cfg).is_ok());
    assert!(check_listen_addr("0.0.0.0:7878".parse().unwrap(), &cfg).is_err());
    cfg.secret = Some([1; 32]);
    assert!(check_listen_addr("0.0.0.0:7878".parse().unwrap(), &cfg).is_ok());
}

#[test]
fn would_block_sends_are_counted_and_recovered() {
    let mut net = setup(LiveConfig::default(), &["a"]);
    let c = net.client_cfg(None, 0);
    let v = net.add_viewer(c);
    net.advance(100_000);
    let mut out = vec![0u8; RECV_BUFFER];
    let mut sent = Vec::new();
    for k in 0..30u64 {
        let f = frame(1, T0 + k * 100_000, 5);
        net.s.on_frame(1, &f, net.now);
        sent.push(quantize(&f));
        if k % 3 == 0 {
            // The daemon's non-blocking send fails: the datagram is gone.
            net.now += 60_000;
            if let Some((dst, _)) = net.s.poll_transmit(net.now, &mut out) {
                net.s.on_send_would_block(dst, net.now);
            }
        }
        net.advance(100_000);
    }
    net.advance(11_000_000);
    assert!(net.s.stats().dropped_sends >= 5);
    assert_eq!(net.v[v].frames(1), sent);
    assert!(net.v[v].gaps(1).is_empty());
}

#[test]
fn bad_local_input_is_refused_without_panics() {
    let mut net = setup(LiveConfig::default(), &["a"]);
    assert!(
        net.s
            .add_host(
                5,
                HostMeta {
                    precision: 7.0,
                    ..meta("x")
                }
            )
            .is_err()
    );
    assert!(
        net.s
            .add_host(
                5,
                HostMeta {
                    period_us: 1,
                    ..meta("x")
                }
            )
            .is_err()
    );
    assert!(
        LiveServer::new(LiveConfig {
            max_subscribers: 0,
            ..LiveConfig::default()
        })
        .is_err()
    );
    let mut q = quantize(&frame(1, T0, 5));
    net.s.on_qframe(1, &q, net.now);
    q.start_us = u64::MAX;
    net.s.on_qframe(1, &q, net.now);
    q.start_us = T0 + 100_000;
    q.codes = vec![5, 3];
    net.s.on_qframe(1, &q, net.now);
    q.codes = vec![u32::MAX];
    net.s.on_qframe(1, &q, net.now);
    q.codes.clear();
    net.s.on_qframe(99, &q, net.now);
    // Earlier than the last one (the wall clock stepped back): kept, by its number.
    q.start_us = T0 - 100_000;
    net.s.on_qframe(1, &q, net.now);
    let st = net.s.stats();
    assert_eq!((st.frames_in, st.frames_dropped), (6, 4));
    net.s.remove_host(42);
    net.s.remove_host(1);
    net.s.on_frame(1, &frame(1, T0, 3), net.now);
    assert_eq!(net.s.stats().hosts, 0);
}

#[test]
fn a_backward_clock_step_keeps_the_stream_flowing() {
    let mut net = setup(LiveConfig::default(), &["a", "b"]);
    let c = net.client_cfg(None, 0);
    let v = net.add_viewer(c);
    net.advance(50_000);
    let before = feed(&mut net, 2, 100, 6);
    // The wall clock steps back 60 s: the server's timers (batching, pacing, expiry) and
    // the frames' start times go back with it.
    net.now -= 60_000_000;
    let after = feed(&mut net, 2, 300, 6);
    assert!(after[&1][0].start_us < before[&1][99].start_us);
    for h in 1..=2 {
        let want: Vec<_> = before[&h].iter().chain(&after[&h]).cloned().collect();
        assert_eq!(net.v[v].frames(h), want, "host {h}");
        assert!(net.v[v].gaps(h).is_empty());
    }
    // A frame is not dropped as a duplicate for starting earlier.
    assert_eq!(net.s.stats().frames_dropped, 0);
    assert_eq!(
        net.v[v].c.stats().frames_dropped,
        0,
        "{:?} {:?}",
        net.v[v].c.stats(),
        net.s.stats()
    );
    // Heartbeats keep the subscription alive across the step.
    net.advance(20_000_000);
    assert!(net.v[v].subscribed());
    assert_eq!(net.s.stats().expired, 0);
}

#[test]
fn one_flooding_client_cannot_lock_others_out_of_the_replay_cache() {
    let mut net = setup(LiveConfig::default(), &["a"]);
    let flooder = viewer_addr(77);
    // One client, one cookie, 4,200 subscribes with fresh nonces in 0.37 s.
    let cfg = net.client_cfg(None, 0);
    let mut c = LiveClient::new(cfg.clone(), net.now).unwrap();
    let mut first = Vec::new();
    assert!(c.poll_transmit(net.now, &mut first));
    net.s.on_datagram(flooder, &first, net.now);
    let mut out = vec![0u8; RECV_BUFFER];
    let (_, n) = net.s.poll_transmit(net.now, &mut out).unwrap();
    c.handle_datagram(server_addr(), &out[..n], net.now);
    let mut with_cookie = Vec::new();
    assert!(c.poll_transmit(net.now, &mut with_cookie));
    let nonce_at = nonce_offset(&with_cookie);
    for k in 0..4_200u32 {
        let mut d = with_cookie.clone();
        d[nonce_at..nonce_at + 4].copy_from_slice(&k.to_be_bytes());
        let t = net.now + u64::from(k) * 88;
        net.s.on_datagram(flooder, &d, t);
        while net.s.poll_transmit(t, &mut out).is_some() {}
    }
    let st = net.s.stats();
    assert_eq!(
        st.replay_quota,
        4_200 - u64::from(REPLAY_QUOTA_PER_SOURCE),
        "{st:?}"
    );
    // Later viewers subscribe at once and get frames.
    net.now += 370_000;
    let vs: Vec<usize> = (0..3)
        .map(|_| {
            let c = net.client_cfg(None, 0);
            net.add_viewer(c)
        })
        .collect();
    net.advance(50_000);
    feed(&mut net, 1, 20, 4);
    for v in vs {
        assert!(net.v[v].subscribed(), "viewer {v}");
        assert_eq!(net.v[v].frames(1).len(), 20);
    }
    // After the horizon, the flooder's nonces are gone and it may subscribe again.
    net.advance(REPLAY_HORIZON_US);
    let before = net.s.stats().subscribed;
    let mut c2 = LiveClient::new(cfg, net.now).unwrap();
    for _ in 0..2 {
        let mut d = Vec::new();
        assert!(c2.poll_transmit(net.now, &mut d));
        net.s.on_datagram(flooder, &d, net.now);
        while let Some((_, n)) = net.s.poll_transmit(net.now, &mut out) {
            c2.handle_datagram(server_addr(), &out[..n], net.now);
        }
    }
    assert_eq!(net.s.stats().subscribed, before + 1);
}

/// Offset of the 16 nonce bytes in an encoded SUBSCRIBE: after the array header, the
/// version, the type, the client id and the timestamp (uints), and the bin8 header.
fn nonce_offset(d: &[u8]) -> usize {
    let uint = |m: u8| match m {
        0..=0x7f => 1,
        0xcc => 2,
        0xcd => 3,
        0xce => 5,
        0xcf => 9,
        _ => panic!("not a uint: {m:#x}"),
    };
    let mut at = match d[0] {
        0x90..=0x9f => 1,
        0xdc => 3,
        m => panic!("not an array: {m:#x}"),
    };
    for _ in 0..4 {
        at += uint(d[at]);
    }
    assert_eq!(&d[at..at + 2], &[0xc4, 16]);
    at + 2
}

#[test]
fn a_full_replay_cache_evicts_the_heaviest_source_not_a_newcomer() {
    let mut net = setup(LiveConfig::default(), &["a"]);
    let mut out = vec![0u8; RECV_BUFFER];
    // 80 sources (ports) of one flooder, each at its quota: more than the cache holds.
    let per = REPLAY_QUOTA_PER_SOURCE as usize;
    let sources = REPLAY_CACHE / per + 16;
    for src in 0..sources {
        let addr = viewer_addr(1000 + src);
        let mut c = LiveClient::new(net.client_cfg(None, 0), net.now).unwrap();
        let mut first = Vec::new();
        assert!(c.poll_transmit(net.now, &mut first));
        net.s.on_datagram(addr, &first, net.now);
        let (_, n) = net.s.poll_transmit(net.now, &mut out).unwrap();
        c.handle_datagram(server_addr(), &out[..n], net.now);
        let mut d = Vec::new();
        assert!(c.poll_transmit(net.now, &mut d));
        let at = nonce_offset(&d);
        for k in 0..REPLAY_QUOTA_PER_SOURCE {
            d[at..at + 4].copy_from_slice(&k.to_be_bytes());
            net.s.on_datagram(addr, &d, net.now);
            while net.s.poll_transmit(net.now, &mut out).is_some() {}
        }
    }
    assert_eq!(net.s.stats().replay_quota, 0);
    // Their subscriptions (max_subscribers of them) expire; their nonces are still
    // remembered and the cache is full.
    net.now += SUBSCRIPTION_TIMEOUT_US + 1_000;
    while net.s.poll_transmit(net.now, &mut out).is_some() {}
    assert_eq!(net.s.stats().subscribers, 0);
    const { assert!(SUBSCRIPTION_TIMEOUT_US + 1_000 < REPLAY_HORIZON_US) };
    let v = {
        let c = net.client_cfg(None, 0);
        net.add_viewer(c)
    };
    net.advance(50_000);
    assert!(net.v[v].subscribed());
}

/// A [`StoreHistory`] that checks every call keeps to its budget and counts the frames
/// decoded.
struct Checked {
    inner: std::rc::Rc<std::cell::RefCell<StoreHistory>>,
    most_budget: std::rc::Rc<std::cell::Cell<usize>>,
}

impl HistorySource for Checked {
    fn read_frames(
        &mut self,
        host: u32,
        from_us: u64,
        to_us: u64,
        budget: &mut usize,
        sink: &mut dyn FnMut(&zzping_lib::codec::QFrame) -> bool,
    ) -> HistoryRead {
        let mut h = self.inner.borrow_mut();
        let (b0, d0) = (*budget, h.frames_decoded());
        self.most_budget.set(self.most_budget.get().max(b0));
        let r = h.read_frames(host, from_us, to_us, budget, sink);
        let decoded = h.frames_decoded() - d0;
        assert!(
            decoded as usize <= b0,
            "{decoded} frames decoded on a budget of {b0}"
        );
        assert_eq!(*budget, b0 - decoded as usize);
        r
    }
}

#[test]
fn sixteen_concurrent_prefills_share_readers_and_keep_to_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LiveConfig {
        ring_seconds: 60,
        ..LiveConfig::default()
    };
    let per_pump = cfg.history_frames_per_pump;
    let mut net = setup(cfg, &["gw", "dns"]);
    // An hour of frames of two hosts on disk, the last minute also in the ring.
    const FRAMES: u64 = 36_000;
    let t0 = T0 - FRAMES * 100_000;
    for (h, l) in [(1u32, "gw"), (2, "dns")] {
        let mut w = HostWriter::open(
            dir.path(),
            HostInfo {
                label: l.into(),
                address: "198.18.0.1".parse().unwrap(),
                name: None,
                role: None,
            },
            WriterConfig {
                period_us: PERIOD,
                precision: 0.01,
                writer: "test".into(),
            },
        )
        .unwrap();
        for k in 0..FRAMES {
            let f = frame(h, t0 + k * 100_000, 4);
            w.append(&f).unwrap();
            if k >= FRAMES - 600 {
                net.s.on_frame(h, &f, t0 + k * 100_000 + 150_000);
            }
        }
        w.sync().unwrap();
    }
    net.now = T0 + 50_000;
    let store = std::rc::Rc::new(std::cell::RefCell::new(StoreHistory::new(dir.path())));
    store.borrow_mut().set_host(1, "gw");
    store.borrow_mut().set_host(2, "dns");
    let most_budget = std::rc::Rc::new(std::cell::Cell::new(0));
    net.hist = Box::new(Checked {
        inner: store.clone(),
        most_budget: most_budget.clone(),
    });
    // 16 viewers ask for two hours each, within a few milliseconds of each other.
    let vs: Vec<usize> = (0..16)
        .map(|_| {
            let c = net.client_cfg(None, 7200);
            let v = net.add_viewer(c);
            net.now += 1_000;
            v
        })
        .collect();
    net.advance(20_000_000);
    for &v in &vs {
        for h in 1..=2 {
            let got = net.v[v].frames(h);
            assert_eq!(
                got.len() as u64,
                FRAMES,
                "viewer {v} host {h} {:?} {:?} decoded {}",
                net.s.stats(),
                net.v[v].c.stats(),
                store.borrow().frames_decoded()
            );
            assert!(got.windows(2).all(|w| w[0].start_us < w[1].start_us));
            assert!(net.v[v].gaps(h).is_empty());
        }
    }
    assert!(most_budget.get() <= per_pump, "{}", most_budget.get());
    // Shared readers: the files were decoded about once, not once per viewer.
    let decoded = store.borrow().frames_decoded();
    assert!(
        decoded <= 3 * 2 * FRAMES,
        "{decoded} frames decoded for {} on disk",
        2 * FRAMES
    );
    assert!(store.borrow().open_readers() <= 2 * READERS_PER_HOST);
}
