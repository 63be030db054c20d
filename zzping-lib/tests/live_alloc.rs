//! `LiveServer::on_frame`, `on_event` + `poll_transmit` (+ `next_deadline`) allocate
//! nothing in steady state, counted with a global allocator.
#![allow(missing_docs)]

mod live_common;

use live_common::*;
use zzping_lib::events::{ContextEvent, EventKind};
use zzping_lib::live::*;
use zzping_testkit::alloc::allocations;

zzping_testkit::counting_allocator!();

#[test]
fn on_frame_on_event_and_poll_transmit_allocate_nothing_in_steady_state() {
    let cfg = LiveConfig {
        ring_seconds: 10,
        retransmit_bytes: 64 << 10,
        ..LiveConfig::default()
    };
    let mut net = Net::new(cfg, T0);
    let hosts = 8u32;
    for h in 1..=hosts {
        net.s.add_host(h, meta(&format!("h{h}"))).unwrap();
    }
    for i in 0..6 {
        let f = if i % 2 == 0 {
            None
        } else {
            Some(vec![format!("h{}", i % 8 + 1)])
        };
        let mut c = net.client_cfg(None, 0);
        c.filter = f;
        net.add_viewer(c);
    }
    net.advance(50_000);
    // Warm up: fill the host rings and wrap the retransmit rings (30 s of frames with a
    // varying number of replies, up to the largest used below).
    let mut frames: Vec<_> = (1..=hosts).map(|h| frame(h, T0, 60)).collect();
    let mut k = 0u64;
    let step =
        |net: &mut Net, k: u64, frames: &mut Vec<zzping_lib::frame::Frame>, deliver: bool| {
            for (i, f) in frames.iter_mut().enumerate() {
                let want = 10 + ((k as usize + i * 7) % 50);
                f.start_us = T0 + k * 100_000;
                f.sent = want as u32;
                f.rtts_us.truncate(want.min(f.rtts_us.len()));
                while f.rtts_us.len() < want {
                    f.rtts_us
                        .push(900 + (f.rtts_us.len() as u32 * 131 + k as u32) % 9000);
                }
                net.s.on_frame(i as u32 + 1, f, net.now);
            }
            if deliver {
                net.advance(100_000);
            }
        };
    for _ in 0..300 {
        step(&mut net, k, &mut frames, true);
        k += 1;
    }
    let before = net.s.stats();
    assert_eq!(before.subscribers, 6);
    // Measure: 10 s of frames, every due datagram polled (and thrown away: the viewers'
    // side is not under test).
    let mut out = vec![0u8; RECV_BUFFER];
    let mut sent = 0u64;
    let mut now = net.now;
    // Context events of every shape (built beforehand: the daemon builds each once).
    let ctx = [
        ContextEvent::link(T0, EventKind::LinkDown, "wlan0"),
        ContextEvent::route(
            T0,
            6,
            Some("2001:db8::1".parse().unwrap()),
            Some("wlan0"),
            false,
        ),
        ContextEvent::address(T0, "198.18.0.7".parse().unwrap(), 15, Some("wlan0"), true),
        ContextEvent::reload(T0, &"x".repeat(500)),
        ContextEvent::host_moved(
            T0,
            "cdn.example",
            "198.18.0.9".parse().unwrap(),
            Some("2001:db8::9".parse().unwrap()),
        ),
    ];
    // Warm the event ring past its wrap, and the viewers' sends of it.
    for i in 0..EVENT_RING_EVENTS + 10 {
        net.s.on_event(&ctx[i % ctx.len()], net.now);
    }
    net.advance(1_000_000);
    let events_before = net.s.stats().events_in;
    now = now.max(net.now);
    // The counter works.
    let a = allocations();
    drop(std::hint::black_box(vec![1u8; 10]));
    assert_eq!(allocations() - a, 1);
    let a = allocations();
    for _ in 0..100 {
        for _ in 0..10 {
            now += 10_000;
            let _ = net.s.next_deadline();
            while let Some((_, n)) = net.s.poll_transmit(now, &mut out) {
                sent += n as u64;
            }
        }
        if k % 3 == 0 {
            net.s.on_event(&ctx[k as usize % ctx.len()], now);
        }
        for (i, f) in frames.iter_mut().enumerate() {
            f.start_us = T0 + k * 100_000;
            f.lost = (k % 4) as u32;
            f.rtts_us.rotate_left(i + 1);
            net.s.on_frame(i as u32 + 1, f, now);
        }
        k += 1;
    }
    let allocs = allocations() - a;
    let after = net.s.stats();
    assert!(sent > 100_000, "only {sent} bytes sent");
    assert_eq!(after.frames_in - before.frames_in, 100 * u64::from(hosts));
    assert_eq!(after.frames_dropped, 0);
    assert_eq!(after.events_in - events_before, 34);
    assert_eq!(after.subscribers, 6);
    assert_eq!(allocs, 0, "{allocs} allocations in steady state");
}

#[test]
fn subscribing_takes_buffers_from_the_pool_and_allocates_nothing() {
    let cfg = LiveConfig {
        max_subscribers: 4,
        ..LiveConfig::default()
    };
    let mut net = Net::new(cfg, T0);
    for h in 1..=3 {
        net.s.add_host(h, meta(&format!("h{h}"))).unwrap();
    }
    let mut out = vec![0u8; RECV_BUFFER];
    let mut server_allocs = 0;
    let mut now = net.now;
    // Room for every reply, so collecting them allocates nothing.
    let mut replies: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut ends: Vec<usize> = Vec::with_capacity(1024);
    // Each round: a viewer subscribes (cookie round trip), gets its first datagrams and
    // leaves; only the server's calls are counted (the client is not under test).
    for round in 0..40u16 {
        let addr = viewer_addr(usize::from(round % 8));
        let mut c = net.client_cfg(None, 60);
        if round % 2 == 1 {
            c.filter = Some(vec!["h2".into(), "h3".into()]);
        }
        let mut c = LiveClient::new(c, now).unwrap();
        let mut d = Vec::with_capacity(2048);
        for _ in 0..2 {
            assert!(c.poll_transmit(now, &mut d));
            replies.clear();
            ends.clear();
            let a = allocations();
            net.s.on_datagram(addr, &d, now);
            while let Some((_, n)) = net.s.poll_transmit(now, &mut out) {
                replies.extend_from_slice(&out[..n]);
                ends.push(replies.len());
            }
            server_allocs += allocations() - a;
            let mut start = 0;
            for &end in &ends {
                c.handle_datagram(server_addr(), &replies[start..end], now);
                start = end;
            }
        }
        assert!(c.is_subscribed(), "round {round}");
        c.close();
        assert!(c.poll_transmit(now, &mut d));
        let a = allocations();
        net.s.on_datagram(addr, &d, now);
        server_allocs += allocations() - a;
        now += 100_000;
    }
    let st = net.s.stats();
    assert_eq!((st.subscribed, st.unsubscribed), (40, 40));
    assert_eq!(
        server_allocs, 0,
        "{server_allocs} allocations in 40 subscribes"
    );
}
