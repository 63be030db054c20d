//! Long proptest runs: arbitrary and mutated datagrams never panic the live server or
//! client, and a datagram from an address without a subscription never draws a reply
//! larger than itself.
#![allow(missing_docs)]

mod live_common;

use live_common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::cell::RefCell;
use std::net::SocketAddr;
use zzping_lib::live::*;

/// Cases per run; `LIVE_FUZZ_CASES` overrides.
fn cases(default: u32) -> u32 {
    std::env::var("LIVE_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A server with hosts, history in its ring and live subscriptions, plus the traffic
/// that set it up.
fn busy_net(secret: Option<[u8; 32]>) -> Net {
    let cfg = LiveConfig {
        secret,
        ..LiveConfig::default()
    };
    let mut net = Net::new(cfg, T0);
    net.keep_log = true;
    for (i, l) in ["a", "b", "c"].iter().enumerate() {
        net.s.add_host(i as u32 + 1, meta(l)).unwrap();
    }
    for f in [None, Some(&["b"][..])] {
        let c = net.client_cfg(f, 60);
        net.add_viewer(c);
    }
    net.advance(50_000);
    for k in 0..60u64 {
        for h in 1..=3 {
            net.s.on_frame(
                h,
                &frame(h, T0 + k * 100_000, 1 + (k as usize % 30)),
                net.now,
            );
        }
        net.advance(100_000);
    }
    // Some resends too.
    net.drop = Box::new(|_, n, _| n % 4 == 0);
    for k in 60..90u64 {
        for h in 1..=3 {
            net.s.on_frame(h, &frame(h, T0 + k * 100_000, 3), net.now);
        }
        net.advance(100_000);
    }
    net.advance(6_000_000);
    assert!(net.v.iter().all(|v| v.subscribed()));
    net
}

fn mutate(msg: &[u8], ops: &[(u8, u16, u8)]) -> Vec<u8> {
    let mut m = msg.to_vec();
    for &(op, at, val) in ops {
        let i = usize::from(at) % (m.len() + 1);
        match op % 5 {
            0 if i < m.len() => m[i] = val,
            1 if i < m.len() => m[i] ^= 1 << (val % 8),
            2 => m.truncate(i),
            3 => m.insert(i, val),
            _ if i < m.len() => {
                m.remove(i);
            }
            _ => {}
        }
    }
    m
}

fn drain(s: &mut LiveServer, now: u64, from: SocketAddr, limit: usize, subscribed: &[SocketAddr]) {
    let mut out = vec![0u8; RECV_BUFFER];
    for _ in 0..10_000 {
        let Some((dst, n)) = s.poll_transmit(now, &mut out) else {
            return;
        };
        if dst == from && !subscribed.contains(&from) {
            assert!(n <= limit, "reply of {n} bytes to a {limit}-byte datagram");
        }
    }
}

#[test]
fn server_survives_arbitrary_datagrams() {
    for secret in [None, Some([3u8; 32])] {
        let net = busy_net(secret);
        let subscribed: Vec<SocketAddr> = net.v.iter().map(|v| v.addr).collect();
        let stranger = viewer_addr(500);
        let now = net.now;
        let cell = RefCell::new(net);
        let mut runner = TestRunner::new(Config::with_cases(cases(20_000)));
        runner
            .run(&prop::collection::vec(any::<u8>(), 0..1500), |bytes| {
                let s = &mut cell.borrow_mut().s;
                s.on_datagram(stranger, &bytes, now);
                drain(s, now, stranger, bytes.len(), &subscribed);
                Ok(())
            })
            .unwrap();
        assert!(cell.borrow().s.stats().malformed > 0);
    }
}

#[test]
fn server_survives_mutated_messages() {
    for secret in [None, Some([3u8; 32])] {
        let net = busy_net(secret);
        let corpus = net.log_in.clone();
        let subscribed: Vec<SocketAddr> = net.v.iter().map(|v| v.addr).collect();
        let addrs = [net.v[0].addr, net.v[1].addr, viewer_addr(501)];
        let now = net.now;
        let cell = RefCell::new(net);
        let mut runner = TestRunner::new(Config::with_cases(cases(20_000)));
        let strat = (
            0..corpus.len(),
            0..addrs.len(),
            prop::collection::vec((any::<u8>(), any::<u16>(), any::<u8>()), 0..4),
        );
        runner
            .run(&strat, |(i, a, ops)| {
                let m = mutate(&corpus[i], &ops);
                // Keep the viewers alive: the server state stays interesting.
                let s = &mut cell.borrow_mut().s;
                s.on_datagram(addrs[a], &m, now);
                drain(s, now, addrs[a], m.len(), &subscribed);
                Ok(())
            })
            .unwrap();
        let st = cell.borrow().s.stats();
        assert!(st.datagrams_in >= u64::from(cases(20_000)), "{st:?}");
        assert!(
            st.malformed > 0 && st.unknown_tokens + st.auth_failures > 0,
            "{st:?}"
        );
    }
}

#[test]
fn client_survives_arbitrary_and_mutated_datagrams() {
    let mut net = busy_net(None);
    let corpus: Vec<Vec<u8>> = net
        .log
        .iter()
        .filter(|(d, _)| *d == net.v[0].addr)
        .map(|(_, m)| m.clone())
        .collect();
    assert!(corpus.len() > 10);
    let now = net.now;
    let cell = RefCell::new((&mut net.v[0].c, Vec::new()));
    let mut runner = TestRunner::new(Config::with_cases(cases(20_000)));
    let strat = (
        prop::collection::vec(any::<u8>(), 0..1500),
        0..corpus.len(),
        prop::collection::vec((any::<u8>(), any::<u16>(), any::<u8>()), 0..4),
    );
    runner
        .run(&strat, |(bytes, i, ops)| {
            let (c, tx) = &mut *cell.borrow_mut();
            c.handle_datagram(server_addr(), &bytes, now);
            c.handle_datagram(server_addr(), &mutate(&corpus[i], &ops), now);
            while c.poll_event().is_some() {}
            while c.poll_transmit(now, tx) {}
            Ok(())
        })
        .unwrap();
    assert!(cell.borrow().0.stats().malformed > 0);
}
