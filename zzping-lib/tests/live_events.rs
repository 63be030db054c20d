//! Context events on the live stream: sequenced like frames, resent when lost, in the
//! prefill of later viewers, delivered once across reconnections.
#![allow(missing_docs)]

mod live_common;

use live_common::*;
use zzping_lib::events::{ContextEvent, EventKind};
use zzping_lib::live::*;

fn setup() -> Net {
    let mut net = Net::new(LiveConfig::default(), T0);
    net.s.add_host(1, meta("a")).unwrap();
    net
}

fn context(v: &Viewer) -> Vec<ContextEvent> {
    v.events
        .iter()
        .filter_map(|e| match e {
            LiveEvent::Context { event } => Some(event.clone()),
            _ => None,
        })
        .collect()
}

fn flap(t: u64) -> [ContextEvent; 3] {
    [
        ContextEvent::link(t, EventKind::LinkDown, "wlan0"),
        ContextEvent::route(t + 1, 4, None, Some("wlan0"), true),
        ContextEvent::link(t + 3_200_000, EventKind::LinkUp, "wlan0"),
    ]
}

/// The type of a server datagram (`[version, type, ...]`, both positive fixints).
fn msg_type(d: &[u8]) -> u8 {
    d[2]
}

#[test]
fn subscribers_get_new_events_and_later_ones_get_them_in_their_prefill() {
    let mut net = setup();
    let before = net.client_cfg(None, 0);
    let early = net.add_viewer(before);
    net.advance(100_000);
    assert!(net.v[early].subscribed());
    let evs = flap(net.now);
    for e in &evs {
        net.s.on_event(e, net.now);
    }
    // Sent at once (no batching): one datagram, within the pump of this instant.
    net.pump();
    assert_eq!(context(&net.v[early]), evs);
    net.advance(10_000_000);
    // A viewer asking for a minute of history gets them; one asking for none does not.
    let (with, without) = (net.client_cfg(None, 60), net.client_cfg(None, 0));
    let late = net.add_viewer(with);
    let live_only = net.add_viewer(without);
    net.advance(500_000);
    assert_eq!(context(&net.v[late]), evs);
    assert!(context(&net.v[live_only]).is_empty());
    // ... and both get the next one.
    let next = ContextEvent::suspend(net.now - 5_000_000, 4_000_000);
    net.s.on_event(&next, net.now);
    net.advance(100_000);
    for v in [early, late, live_only] {
        assert_eq!(context(&net.v[v]).last(), Some(&next), "viewer {v}");
        assert_eq!(net.v[v].c.stats().bad_events, 0);
    }
    assert_eq!(net.s.stats().events_in, 4);
    assert_eq!(net.s.stats().events_dropped, 0);
    // A viewer's prefill counts from when the server got the event: 8 s of prefill
    // reaches the suspend (handed over 0.1 s ago) but not the flap (10.6 s ago).
    let short = net.client_cfg(None, 8);
    let short = net.add_viewer(short);
    net.advance(500_000);
    assert_eq!(context(&net.v[short]), [next]);
}

#[test]
fn a_lost_events_datagram_is_resent() {
    let mut net = setup();
    let c = net.client_cfg(None, 0);
    let v = net.add_viewer(c);
    net.advance(100_000);
    // The first EVENTS datagram is lost on the way.
    let mut dropped = 0;
    net.drop = Box::new(move |_, _, d| {
        let lose = msg_type(d) == wire::T_EVENTS as u8 && dropped == 0;
        dropped += u32::from(lose);
        lose
    });
    let evs = flap(net.now);
    for e in &evs {
        net.s.on_event(e, net.now);
    }
    net.advance(100_000);
    assert!(context(&net.v[v]).is_empty(), "lost, nothing after it yet");
    // Frames after it reveal the hole; the resend brings it.
    net.s.on_frame(1, &frame(1, net.now - 100_000, 5), net.now);
    net.advance(1_000_000);
    assert_eq!(context(&net.v[v]), evs);
    assert!(net.s.stats().resent > 0, "{:?}", net.s.stats());
    assert_eq!(net.v[v].c.stats().lost_datagrams, 0);
}

#[test]
fn a_lost_tail_event_is_found_by_the_heartbeat_and_resent() {
    let mut net = setup();
    let c = net.client_cfg(None, 0);
    let v = net.add_viewer(c);
    net.advance(100_000);
    let mut dropped = 0;
    net.drop = Box::new(move |_, _, d| {
        let lose = msg_type(d) == wire::T_EVENTS as u8 && dropped == 0;
        dropped += u32::from(lose);
        lose
    });
    let e = ContextEvent::reload(net.now, "hosts");
    net.s.on_event(&e, net.now);
    // Nothing follows it: the next heartbeat's ACK (every 5 s) says a datagram is
    // missing.
    net.advance(6_000_000);
    assert_eq!(context(&net.v[v]), [e]);
}

#[test]
fn a_reconnected_viewer_gets_each_event_once() {
    let mut net = setup();
    let c = net.client_cfg(None, 3600);
    let v = net.add_viewer(c);
    net.advance(100_000);
    let evs = flap(net.now);
    for e in &evs {
        net.s.on_event(e, net.now);
    }
    net.advance(1_000_000);
    assert_eq!(context(&net.v[v]), evs);
    // The viewer subscribes again (as after a silence): the prefill repeats the events.
    net.v[v].c.resubscribe(net.now);
    net.advance(1_000_000);
    assert!(net.v[v].events.contains(&LiveEvent::Reconnected));
    assert_eq!(context(&net.v[v]), evs);
    assert_eq!(net.v[v].c.stats().event_duplicates, 3);
    assert_eq!(net.v[v].c.stats().events, 3);
}

#[test]
fn events_beyond_the_ring_are_counted_for_viewers_that_had_not_got_them() {
    let mut net = setup();
    let c = net.client_cfg(None, 0);
    let v = net.add_viewer(c);
    net.advance(100_000);
    // The viewer's side stops hearing from the server (its datagrams are lost), so the
    // server's sends pile up; more events than the ring keeps arrive at one instant.
    let extra = 10u64;
    let n = EVENT_RING_EVENTS as u64 + extra;
    for i in 0..n {
        let e = ContextEvent::clock_step(T0 + i, 1);
        net.s.on_event(&e, net.now);
    }
    assert_eq!(net.s.stats().events_dropped, extra);
    net.advance(2_000_000);
    let got = context(&net.v[v]);
    assert_eq!(got.len() as u64, n - extra);
    assert_eq!(got[0].t_us, T0 + extra);
}

#[test]
fn long_texts_are_cut_to_fit_a_datagram() {
    let mut net = setup();
    let c = net.client_cfg(None, 0);
    let v = net.add_viewer(c);
    net.advance(100_000);
    let long = "é".repeat(3000);
    let mut e = ContextEvent::reload(net.now, &long);
    e.interface = Some(long.clone());
    net.keep_log = true;
    net.s.on_event(&e, net.now);
    net.advance(100_000);
    let got = context(&net.v[v]);
    assert_eq!(got.len(), 1);
    let applied = got[0].applied.as_deref().unwrap();
    assert_eq!(
        applied.len(),
        zzping_lib::events::MAX_CAPPED_TEXT,
        "cut on a character boundary, at most 160 bytes"
    );
    assert!(long.starts_with(applied));
    let biggest = net.log.iter().map(|(_, d)| d.len()).max().unwrap();
    assert!(biggest <= MAX_DATAGRAM, "{biggest} bytes");
}

#[test]
fn a_version_2_viewer_is_ignored_and_counted() {
    let mut net = setup();
    let c = net.client_cfg(None, 0);
    let mut old = LiveClient::new(c, net.now).unwrap();
    let mut d = Vec::new();
    assert!(old.poll_transmit(net.now, &mut d));
    // The same subscribe as a version 2 viewer sends it: [version, type, ...].
    assert_eq!(d[1], wire::VERSION as u8);
    d[1] = 2;
    net.s.on_datagram(viewer_addr(9), &d, net.now);
    let st = net.s.stats();
    assert_eq!((st.bad_version, st.cookies_sent), (1, 0));
    let mut out = vec![0u8; RECV_BUFFER];
    assert!(net.s.poll_transmit(net.now, &mut out).is_none(), "no reply");
}

#[test]
fn the_worked_example_of_the_protocol_doc() {
    let mut net = setup();
    let c = net.client_cfg(None, 0);
    let v = net.add_viewer(c);
    net.advance(100_000);
    net.keep_log = true;
    let e = ContextEvent::link(1_795_000_000_000_000, EventKind::LinkDown, "wlan0");
    net.s.on_event(&e, net.now);
    net.pump();
    let (_, d) = net
        .log
        .iter()
        .find(|(_, d)| msg_type(d) == wire::T_EVENTS as u8)
        .unwrap();
    let hex = |b: &[u8]| {
        b.iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    // Header, token (random, 8 bytes), seq, then the rest.
    assert_eq!(hex(&d[..4]), "95 03 19 cf");
    // The doc's example is the 8th sequenced datagram (seq 7); here the 2nd, after the
    // host's metadata.
    assert_eq!(d[12], 1);
    assert_eq!(
        hex(&d[13..]),
        "dc 00 01 83 a4 74 5f 75 73 cf 00 06 60 8b 01 5f 30 00 a4 6b 69 6e 64 \
         a9 6c 69 6e 6b 5f 64 6f 77 6e a9 69 6e 74 65 72 66 61 63 65 a5 77 6c 61 6e 30"
    );
    assert_eq!(context(&net.v[v]), [e]);
}

#[test]
fn a_replacing_server_carries_the_events_on() {
    // The daemon replaces its server on a reload (new secret or address).
    let mut old = LiveServer::new(LiveConfig::default()).unwrap();
    let evs = flap(T0);
    for e in &evs {
        old.on_event(e, T0);
    }
    let mut net = Net::new(LiveConfig::default(), T0 + 1_000_000);
    net.s.carry_events(&old);
    net.s.add_host(1, meta("a")).unwrap();
    let (with, without) = (net.client_cfg(None, 60), net.client_cfg(None, 0));
    let v = net.add_viewer(with);
    let live_only = net.add_viewer(without);
    net.advance(500_000);
    // Handed over to the old server a second before: in a minute's prefill.
    assert_eq!(context(&net.v[v]), evs);
    assert!(context(&net.v[live_only]).is_empty());
}
