//! The field's faults (issues 14 and 19), played by the shipped scenarios and seen by a
//! prober built like the daemon's (ping sockets with the error queue), compared with
//! the truth: routes that vanish, links that go down, default routes that move.
//!
//! Each send is judged by the state the truth says the namespace was in: a send that
//! returned before a change's `begin_us` saw the old state, one that started after its
//! `time_us` the new one; sends that overlap a change are not judged (counted and
//! printed). Every judged send must have exactly the expected result, and the truth's
//! requests must be exactly the sends that left.

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use common::pinger::{Answer, Sent};
use common::{Probed, probe_scenario};
use zzping_netsim::truth::{NetAction, NetEvent};

/// Payload of the test prober's requests (bytes after the ICMP header).
const PROBE_PAYLOAD: u64 = 24;
/// Time between rounds of sends.
const PROBE_EVERY: Duration = Duration::from_millis(20);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Index of the state a send saw (how many changes were complete before it started),
/// or None when a change was under way while it ran.
fn state_of(net: &[&NetEvent], s: &Sent) -> Option<usize> {
    if net
        .iter()
        .any(|e| e.begin_us <= s.after_us && e.time_us >= s.before_us)
    {
        return None;
    }
    Some(net.iter().filter(|e| e.time_us < s.before_us).count())
}

/// Checks every judged send against `expect(state, dst)` and returns the number of
/// judged sends per state.
fn judge(p: &Probed, expect: &dyn Fn(usize, IpAddr) -> Result<(), i32>) -> Vec<usize> {
    let net: Vec<&NetEvent> = p.truth.net().collect();
    let mut judged = vec![0; net.len() + 1];
    let mut unjudged = 0;
    for s in &p.sent {
        let Some(k) = state_of(&net, s) else {
            unjudged += 1;
            continue;
        };
        judged[k] += 1;
        assert_eq!(
            s.result,
            expect(k, s.dst),
            "send to {} seq {} in state {k} (after {:?})",
            s.dst,
            s.seq,
            k.checked_sub(1).map(|i| &net[i].action)
        );
    }
    eprintln!("judged sends per state: {judged:?}; overlapping a change: {unjudged}");
    judged
}

/// The (destination, sequence) of the truth's requests from the test prober.
fn truth_requests(p: &Probed) -> BTreeSet<(IpAddr, u16)> {
    p.truth
        .requests()
        .filter(|r| r.payload_len == PROBE_PAYLOAD)
        .map(|r| (r.dst, r.icmp_seq))
        .collect()
}

fn replies_received(p: &Probed) -> BTreeSet<(IpAddr, u16)> {
    p.answers
        .iter()
        .filter_map(|(_, a)| match a {
            Answer::Reply { from, seq } => Some((*from, *seq)),
            Answer::Error { .. } => None,
        })
        .collect()
}

fn sends_ok(p: &Probed) -> BTreeSet<(IpAddr, u16)> {
    p.sent
        .iter()
        .filter(|s| s.result.is_ok())
        .map(|s| (s.dst, s.seq))
        .collect()
}

fn actions(p: &Probed) -> Vec<NetAction> {
    p.truth.net().map(|e| e.action).collect()
}

fn check_clean(p: &Probed) {
    assert_eq!(p.summary.write_errors, 0, "simulator write errors");
    assert_eq!(p.summary.net_errors, 0, "failed network changes");
    for e in p.truth.net() {
        assert!(e.error.is_none(), "{e:?}");
        assert!(e.begin_us <= e.time_us, "{e:?}");
        assert!(e.t_us >= e.planned_t_us, "{e:?}");
        eprintln!(
            "{:?} ({}): {} µs after plan, took {} µs",
            e.action,
            e.source,
            e.t_us - e.planned_t_us,
            e.time_us - e.begin_us
        );
    }
}

const GW_V4: &str = "default via 198.18.0.254 dev zzsim0";
const GW_V6: &str = "default via 2001:db8::fe dev zzsim0";
const LAN_V4: &str = "198.18.0.0/24 dev zzsim0";
const LAN_V6: &str = "2001:db8::/64 dev zzsim0";

fn targets() -> Vec<IpAddr> {
    [
        "198.18.0.254",
        "198.18.0.20",
        "198.19.8.8",
        "2001:db8::fe",
        "2001:db8::20",
        "2001:db8:8000::8",
    ]
    .map(ip)
    .to_vec()
}

fn is_far(a: IpAddr) -> bool {
    a == ip("198.19.8.8") || a == ip("2001:db8:8000::8")
}

#[test]
fn route_loss_fails_sends_exactly_while_the_routes_are_gone() {
    zzping_testkit::require!(zzping_testkit::privileges::tun());
    let p = probe_scenario(
        "route-loss",
        &targets(),
        PROBE_EVERY,
        Duration::from_millis(13_500),
        None,
        false,
    );
    check_clean(&p);
    use NetAction::*;
    assert_eq!(
        actions(&p),
        vec![
            RoutesLost,
            RoutesRestored,
            RoutesLost,
            RoutesRestored,
            RoutesLost,
            RoutesRestored
        ]
    );
    let net: Vec<&NetEvent> = p.truth.net().collect();
    let all = [GW_V4, LAN_V4, GW_V6, LAN_V6].map(String::from).to_vec();
    assert_eq!(net[0].removed, all);
    assert!(net[0].added.is_empty());
    assert_eq!((net[0].gateway_v4, net[0].gateway_v6), (None, None));
    let mut back = all.clone();
    back.reverse();
    assert_eq!(net[1].added, back);
    assert_eq!(
        (net[1].gateway_v4, net[1].gateway_v6),
        (Some(ip("198.18.0.254")), Some(ip("2001:db8::fe")))
    );
    assert_eq!(net[2].removed, vec![GW_V4, GW_V6]);
    assert_eq!(
        net[4].added,
        vec![
            "unreachable default",
            "unreachable 198.18.0.0/24",
            "unreachable default",
            "unreachable 2001:db8::/64"
        ]
    );
    let mut overrides = net[4].added.clone();
    overrides.reverse();
    assert_eq!(net[5].removed, overrides);
    assert_eq!(
        net.iter().map(|e| e.planned_t_us).collect::<Vec<_>>(),
        vec![
            3_000_000, 6_000_000, 8_000_000, 10_000_000, 11_000_000, 12_500_000
        ]
    );

    let judged = judge(&p, &|state, dst| match state {
        1 => Err(libc::ENETUNREACH),
        3 if is_far(dst) => Err(libc::ENETUNREACH),
        5 => Err(libc::EHOSTUNREACH),
        _ => Ok(()),
    });
    // 20 ms rounds of 6 sends: every state is well covered.
    assert!(judged.iter().all(|&n| n >= 200), "{judged:?}");
    // The requests that reached the simulator are exactly the sends that succeeded,
    // and each was answered.
    assert_eq!(truth_requests(&p), sends_ok(&p));
    assert_eq!(replies_received(&p), sends_ok(&p));
    // No request was read while every route was gone.
    for r in p.truth.requests() {
        assert!(
            !(r.time_us > net[0].time_us && r.time_us < net[1].begin_us),
            "request {} read while the routes were gone",
            r.id
        );
    }
}

#[test]
fn link_flap_down_fails_sends_and_carrier_loss_drops_them() {
    zzping_testkit::require!(zzping_testkit::privileges::tun());
    let p = probe_scenario(
        "link-flap",
        &targets(),
        PROBE_EVERY,
        Duration::from_millis(10_000),
        None,
        true,
    );
    check_clean(&p);
    use NetAction::*;
    assert_eq!(actions(&p), vec![LinkDown, LinkUp, CarrierOff, CarrierOn]);
    let net: Vec<&NetEvent> = p.truth.net().collect();
    assert!(net.iter().all(|e| e.interface.as_deref() == Some("zzsim0")));
    assert_eq!(net[0].removed, vec![GW_V4, LAN_V4, GW_V6, LAN_V6]);
    assert_eq!(net[1].added, vec![LAN_V4, LAN_V6, GW_V4, GW_V6]);
    assert!(net[2].removed.is_empty() && net[3].added.is_empty());

    // Administratively down: no route, ENETUNREACH. Carrier lost: the routes stay and
    // sendto succeeds; the kernel drops the packets.
    let judged = judge(&p, &|state, _| match state {
        1 => Err(libc::ENETUNREACH),
        _ => Ok(()),
    });
    assert!(judged.iter().all(|&n| n >= 200), "{judged:?}");
    let reached = truth_requests(&p);
    for s in p.sent.iter().filter(|s| s.result.is_ok()) {
        let left = reached.contains(&(s.dst, s.seq));
        match state_of(&net, s) {
            Some(3) => assert!(!left, "{s:?} sent without carrier reached the simulator"),
            Some(_) => assert!(left, "{s:?} never reached the simulator"),
            None => {}
        }
    }
    // A capture on the TUN lives through the flap: it sees every request that left
    // after the link came back.
    let wire = p.wire.as_ref().unwrap();
    assert_eq!(wire.link_downs, 1, "the capture saw the link go down once");
    let after_up: Vec<_> = p
        .sent
        .iter()
        .filter(|s| state_of(&net, s) == Some(2))
        .collect();
    assert!(!after_up.is_empty());
    for s in after_up {
        assert!(
            wire.requests.keys().any(|k| k.0 == s.dst && k.2 == s.seq),
            "the capture missed {s:?}"
        );
    }
    // Every scheduled reply was written or, its link being down, recorded unsent;
    // exactly the written ones arrived.
    let mut unsent_in = [0usize; 2];
    for q in p.truth.requests() {
        let written = p.truth.replies_for(q.id).len();
        let unsent: Vec<_> = p.truth.unsent().filter(|u| u.request == q.id).collect();
        assert_eq!(
            written + unsent.len(),
            q.replies as usize,
            "request {}",
            q.id
        );
        for u in unsent {
            let w = if u.time_us < net[1].time_us { 0 } else { 1 };
            let (down, up) = (net[2 * w], net[2 * w + 1]);
            assert!(
                u.time_us >= down.begin_us && u.time_us <= up.time_us,
                "{u:?} dropped outside a down window"
            );
            unsent_in[w] += 1;
        }
    }
    // far-host answers after 150 ms, more than a round: replies were in flight at
    // both drops.
    assert!(unsent_in.iter().all(|&n| n > 0), "unsent: {unsent_in:?}");
    assert_eq!(
        p.truth.end().unwrap().replies_dropped,
        (unsent_in[0] + unsent_in[1]) as u64
    );
    let written: BTreeSet<(IpAddr, u16)> = p
        .truth
        .replies()
        .filter(|r| {
            p.truth
                .requests()
                .any(|q| q.id == r.request && q.payload_len == PROBE_PAYLOAD)
        })
        .map(|r| (r.dst, r.icmp_seq))
        .collect();
    assert_eq!(replies_received(&p), written);
}

#[test]
fn route_change_moves_requests_to_the_other_interface() {
    zzping_testkit::require!(zzping_testkit::privileges::tun());
    let p = probe_scenario(
        "route-change",
        &[
            ip("198.18.0.254"),
            ip("198.19.8.8"),
            ip("2001:db8::fe"),
            ip("2001:db8:8000::8"),
        ],
        PROBE_EVERY,
        Duration::from_millis(10_000),
        None,
        false,
    );
    check_clean(&p);
    let net: Vec<&NetEvent> = p.truth.net().collect();
    assert_eq!(actions(&p), vec![NetAction::RouteChange; 2]);
    assert_eq!(net[0].removed, vec![GW_V4, GW_V6]);
    assert_eq!(
        net[0].added,
        vec![
            "default via 198.18.1.254 dev zzsim1",
            "default via 2001:db8:0:1::fe dev zzsim1"
        ]
    );
    assert_eq!(
        (net[0].gateway_v4, net[0].gateway_v6),
        (Some(ip("198.18.1.254")), Some(ip("2001:db8:0:1::fe")))
    );
    assert_eq!(net[1].added, vec![GW_V4, GW_V6]);
    let start = p.truth.start().unwrap();
    assert_eq!(
        start
            .interfaces
            .iter()
            .map(|i| (i.name.as_str(), i.addresses.clone()))
            .collect::<Vec<_>>(),
        vec![
            (
                "zzsim0",
                vec!["198.18.0.1/24".to_string(), "2001:db8::1/64".into()]
            ),
            (
                "zzsim1",
                vec!["198.18.1.1/24".to_string(), "2001:db8:0:1::1/64".into()]
            ),
        ]
    );
    let judged = judge(&p, &|_, _| Ok(()));
    assert!(judged.iter().all(|&n| n >= 200), "{judged:?}");
    // Each request arrived on the interface the default route named when it was sent
    // (the LAN gateway's always on zzsim0), from that interface's address.
    let mut seen = [0usize; 3];
    for s in &p.sent {
        let Some(k) = state_of(&net, s) else { continue };
        let q = p
            .truth
            .requests()
            .find(|q| q.dst == s.dst && q.icmp_seq == s.seq && q.payload_len == PROBE_PAYLOAD)
            .unwrap_or_else(|| panic!("{s:?} not in the truth"));
        let hotspot = k == 1 && is_far(s.dst);
        let (dev, src) = match (hotspot, s.dst.is_ipv6()) {
            (false, false) => ("zzsim0", "198.18.0.1"),
            (false, true) => ("zzsim0", "2001:db8::1"),
            (true, false) => ("zzsim1", "198.18.1.1"),
            (true, true) => ("zzsim1", "2001:db8:0:1::1"),
        };
        assert_eq!((q.interface.as_str(), q.src), (dev, ip(src)), "{s:?}");
        seen[k] += 1;
    }
    assert!(seen.iter().all(|&n| n > 0), "{seen:?}");
    assert_eq!(replies_received(&p), sends_ok(&p));
    assert_eq!(sends_ok(&p).len(), p.sent.len());
}
