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
use zzping_netsim::packet::IcmpErrorKind;
use zzping_netsim::profile::Fate;
use zzping_netsim::truth::{NetAction, NetEvent, ReplyKind};

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

fn targets() -> Vec<(IpAddr, u8)> {
    [
        "198.18.0.254",
        "198.18.0.20",
        "198.19.8.8",
        "2001:db8::fe",
        "2001:db8::20",
        "2001:db8:8000::8",
    ]
    .map(|a| (ip(a), 64))
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
    // No request sent while every route was gone reached the simulator. (Its read time
    // is no bound: on a loaded machine the simulator reads a request sent just before
    // the routes went well after.)
    for r in p.truth.requests() {
        let sent = p
            .sent
            .iter()
            .find(|s| s.dst == r.dst && s.seq == r.icmp_seq)
            .expect("every request read was sent");
        assert!(
            !(sent.before_us > net[0].time_us && sent.after_us < net[1].begin_us),
            "request {} sent while the routes were gone reached the simulator",
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
            (ip("198.18.0.254"), 64),
            // Expires at the second hop: the ISP edge of the current uplink.
            (ip("198.19.8.8"), 2),
            (ip("2001:db8::fe"), 64),
            (ip("2001:db8:8008::8"), 64),
        ],
        PROBE_EVERY,
        Duration::from_millis(10_000),
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
    // Every send left, but for those that a just-arrived time-exceeded error failed.
    let failed = pending_error_sends(&p);
    assert!(failed * 20 < p.sent.len(), "{failed} of {}", p.sent.len());
    // Each request arrived on the interface the default route named when it was sent
    // (the LAN gateway's always on zzsim0), from that interface's address.
    let mut seen = [0usize; 3];
    for s in p.sent.iter().filter(|s| s.result.is_ok()) {
        let Some(k) = state_of(&net, s) else { continue };
        let q = p
            .truth
            .requests()
            .find(|q| q.dst == s.dst && q.icmp_seq == s.seq && q.payload_len == PROBE_PAYLOAD)
            .unwrap_or_else(|| panic!("{s:?} not in the truth"));
        let far = s.dst == ip("198.19.8.8") || s.dst == ip("2001:db8:8008::8");
        let hotspot = k == 1 && far;
        let (dev, src) = match (hotspot, s.dst.is_ipv6()) {
            (false, false) => ("zzsim0", "198.18.0.1"),
            (false, true) => ("zzsim0", "2001:db8::1"),
            (true, false) => ("zzsim1", "198.18.1.1"),
            (true, true) => ("zzsim1", "2001:db8:0:1::1"),
        };
        assert_eq!((q.interface.as_str(), q.src), (dev, ip(src)), "{s:?}");
        // TTL 2 towards far-host: time exceeded from the uplink's ISP edge.
        if s.dst == ip("198.19.8.8") {
            let edge = if hotspot { "198.19.64.1" } else { "198.19.0.1" };
            let got = errors_for(&p, s.dst, s.seq);
            assert_eq!(got.len(), 1, "{s:?}: {got:?}");
            assert_eq!((got[0].0, got[0].1, got[0].2), (ip(edge), 11, 0), "{s:?}");
            seen[k] += 1;
        }
    }
    assert!(seen.iter().all(|&n| n >= 50), "{seen:?}");
    let mut answered = sends_ok(&p);
    answered.retain(|(a, _)| *a != ip("198.19.8.8"));
    assert_eq!(replies_received(&p), answered);
}

/// A request takes the path of the interface it arrived on, not of the default route of
/// the moment the simulator reads it: with the default route moved to the hotspot, a
/// TTL-2 probe sent out of the Wi-Fi interface (a host route) still expires at the
/// Wi-Fi uplink's ISP edge.
#[test]
fn a_request_takes_the_path_of_the_interface_it_arrived_on() {
    zzping_testkit::require!(zzping_testkit::privileges::tun());
    let scenario = zzping_netsim::Scenario::load(&common::scenario("route-change"))
        .unwrap_or_else(|e| panic!("{e}"));
    let h = std::thread::spawn(move || {
        zzping_testkit::netns::enter();
        let sim = zzping_netsim::Simulator::start(&scenario, None).expect("start the simulator");
        let ip = |args: &[&str]| {
            let out = std::process::Command::new(zzping_testkit::tool("ip", "iproute2"))
                .args(args)
                .output()
                .expect("run ip");
            assert!(out.status.success(), "ip {args:?}: {out:?}");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        // The scenario moves the default route to the hotspot (zzsim1) 4 s in.
        let end = std::time::Instant::now() + Duration::from_secs(30);
        while !ip(&["-4", "route", "show", "default"]).contains("zzsim1") {
            assert!(std::time::Instant::now() < end, "no route change");
            std::thread::sleep(Duration::from_millis(20));
        }
        ip(&["route", "add", "198.19.8.8/32", "dev", "zzsim0"]);
        let p = common::pinger::Pinger::new();
        p.set_ttl(false, 2);
        let mut answers = Vec::new();
        for seq in 1..=5 {
            p.send(ip_addr("198.19.8.8"), seq, &mut answers);
            p.collect_for(Duration::from_millis(20), &mut answers);
        }
        p.collect_for(Duration::from_millis(500), &mut answers);
        sim.stop().expect("stop the simulator");
        answers
    });
    let answers = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
    let offenders: Vec<IpAddr> = answers
        .iter()
        .filter_map(|(_, a)| match a {
            Answer::Error { offender, .. } => Some(*offender),
            Answer::Reply { .. } => None,
        })
        .collect();
    assert_eq!(offenders, vec![ip_addr("198.19.0.1"); 5], "{answers:?}");
}

fn ip_addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The ICMP errors the prober read for request (dst, seq): (offender, type, code, errno).
fn errors_for(p: &Probed, dst: IpAddr, seq: u16) -> Vec<(IpAddr, u8, u8, i32)> {
    p.answers
        .iter()
        .filter_map(|(_, a)| match a {
            Answer::Error {
                dst: d,
                seq: q,
                errno,
                origin,
                icmp_type,
                icmp_code,
                offender,
            } if *d == dst && *q == seq => {
                let want = if dst.is_ipv6() {
                    common::pinger::ORIGIN_ICMP6
                } else {
                    common::pinger::ORIGIN_ICMP
                };
                assert_eq!(*origin, want, "error origin");
                Some((*offender, *icmp_type, *icmp_code, *errno))
            }
            _ => None,
        })
        .collect()
}

/// The errno Linux gives an ICMP error on a socket's error queue (`icmp_err_convert`,
/// `icmpv6_err_convert`).
fn errno_of(kind: IcmpErrorKind, v6: bool) -> i32 {
    match (kind, v6) {
        (IcmpErrorKind::NetUnreachable, _) => libc::ENETUNREACH,
        (IcmpErrorKind::AdminProhibited, true) => libc::EACCES,
        _ => libc::EHOSTUNREACH,
    }
}

/// Sends that failed because an ICMP error had just arrived on the socket (the kernel
/// reports a socket's pending error on its next send): each must carry the errno of
/// an error the simulator wrote to that family shortly before, and must not have left.
/// Returns how many there were.
fn pending_error_sends(p: &Probed) -> usize {
    let reached = truth_requests(p);
    let mut n = 0;
    for s in p.sent.iter().filter(|s| s.result.is_err()) {
        let errno = s.result.unwrap_err();
        let explained = p.truth.replies().any(|r| {
            r.kind.is_error()
                && r.from.is_ipv6() == s.dst.is_ipv6()
                && r.sent_us <= s.after_us
                && r.sent_us + 1_000_000 >= s.before_us
                && r.error
                    .is_some_and(|k| errno_of(k, s.dst.is_ipv6()) == errno)
        });
        assert!(explained, "{s:?} failed without a pending ICMP error");
        assert!(!reached.contains(&(s.dst, s.seq)), "{s:?} failed but left");
        n += 1;
    }
    eprintln!("sends failed by a pending ICMP error: {n}");
    n
}

#[test]
fn ttl_limited_probes_discover_the_path_hop_by_hop() {
    zzping_testkit::require!(zzping_testkit::privileges::tun());
    let far = [ip("198.19.8.8"), ip("2001:db8:8008::8")];
    let unknown = [ip("198.19.99.99"), ip("2001:db8:8099::99")];
    let mut targets: Vec<(IpAddr, u8)> = Vec::new();
    for ttl in 1..=7 {
        targets.extend(far.iter().map(|a| (*a, ttl)));
        targets.extend(unknown.iter().map(|a| (*a, ttl)));
    }
    targets.push((ip("198.18.0.20"), 1));
    let p = probe_scenario(
        "ttl-path",
        &targets,
        Duration::from_millis(50),
        Duration::from_millis(2_000),
        false,
    );
    check_clean(&p);
    // The path as the truth lists it; the first public hop is the ISP's edge.
    let hops = ["home-gw", "modem", "isp-edge", "core", "transit"];
    let start = p.truth.start().unwrap();
    let host = |n: &str| start.hosts.iter().find(|h| h.name == n).unwrap();
    assert_eq!(host("far-host").path, hops);
    assert!(host("nas").path.is_empty());
    let public: Vec<bool> = hops
        .iter()
        .map(|h| zzping_netsim::scenario::plays_public(host(h).addresses[0]))
        .collect();
    assert_eq!(public, [false, false, true, true, true]);
    let addr = |h: &str, v6: bool| {
        *host(h)
            .addresses
            .iter()
            .find(|a| a.is_ipv6() == v6)
            .unwrap()
    };

    let failed = pending_error_sends(&p);
    assert!(failed * 20 < p.sent.len(), "{failed} of {}", p.sent.len());
    let mut checked = [0usize; 8];
    for s in p.sent.iter().filter(|s| s.result.is_ok()) {
        let v6 = s.dst.is_ipv6();
        let q = p
            .truth
            .requests()
            .find(|q| q.dst == s.dst && q.icmp_seq == s.seq && q.payload_len == PROBE_PAYLOAD)
            .unwrap_or_else(|| panic!("{s:?} not in the truth"));
        assert_eq!(q.ttl, s.ttl, "{s:?}");
        let replies = p.truth.replies_for(q.id);
        let got = errors_for(&p, s.dst, s.seq);
        let echoed = p.answers.iter().any(|(_, a)| {
            *a == Answer::Reply {
                from: s.dst,
                seq: s.seq,
            }
        });
        let k = usize::from(s.ttl);
        if s.dst == ip("198.18.0.20") {
            // On the LAN: no router, TTL 1 arrives.
            assert_eq!((q.fate, q.hop), (Fate::Answered, None), "{s:?}");
            assert_eq!(replies[0].ttl, 64);
            assert!(echoed, "{s:?}");
        } else if k <= 4 {
            // Time exceeded from hop k's own address, quoting the request.
            let router = hops[k - 1];
            assert_eq!(
                (q.fate, q.error, q.router.as_deref(), q.hop),
                (
                    Fate::TtlExceeded,
                    Some(IcmpErrorKind::TtlExceeded),
                    Some(router),
                    Some(k as u32)
                ),
                "{s:?}"
            );
            assert_eq!(replies.len(), 1, "{s:?}");
            let r = replies[0];
            let (ty, code) = if v6 { (3, 0) } else { (11, 0) };
            assert_eq!(
                (
                    r.kind,
                    r.from,
                    r.icmp_type,
                    r.icmp_code,
                    r.router.as_deref(),
                    r.ttl
                ),
                (
                    ReplyKind::TimeExceeded,
                    addr(router, v6),
                    ty,
                    code,
                    Some(router),
                    64 - (k as u8 - 1)
                ),
                "{s:?}"
            );
            assert_eq!(
                got,
                vec![(addr(router, v6), ty, code, libc::EHOSTUNREACH)],
                "{s:?}"
            );
            assert!(!echoed);
        } else if k == 5 {
            // transit is silent: nothing, not even time exceeded.
            assert_eq!(
                (q.fate, q.router.as_deref(), q.hop),
                (Fate::Silent, Some("transit"), Some(5)),
                "{s:?}"
            );
            assert!(replies.is_empty() && got.is_empty() && !echoed, "{s:?}");
        } else if far.contains(&s.dst) {
            assert_eq!(
                (q.fate, q.router.as_deref()),
                (Fate::Answered, None),
                "{s:?}"
            );
            assert_eq!((replies[0].from, replies[0].ttl), (s.dst, 59), "{s:?}");
            assert!(echoed && got.is_empty(), "{s:?}");
        } else {
            assert_eq!(
                (q.fate, q.host.as_deref()),
                (Fate::UnknownHost, None),
                "{s:?}"
            );
            assert!(replies.is_empty() && got.is_empty() && !echoed, "{s:?}");
        }
        checked[k] += 1;
    }
    assert!(checked[1..].iter().all(|&n| n >= 40), "{checked:?}");
}

#[test]
fn routers_answer_errors_from_their_own_address_in_their_windows() {
    zzping_testkit::require!(zzping_testkit::privileges::tun());
    let names = [
        ("198.18.0.20", "nas"),
        ("198.19.8.8", "far-a"),
        ("198.19.8.9", "far-b"),
        ("198.19.0.1", "isp-edge"),
        ("2001:db8::20", "nas"),
        ("2001:db8:8008::8", "far-a"),
        ("2001:db8:8008::9", "far-b"),
        ("2001:db8:8000::1", "isp-edge"),
    ];
    let targets: Vec<(IpAddr, u8)> = names.iter().map(|(a, _)| (ip(a), 64)).collect();
    let p = probe_scenario(
        "router-errors",
        &targets,
        PROBE_EVERY,
        Duration::from_millis(12_500),
        false,
    );
    check_clean(&p);
    let start = p.truth.start().unwrap();
    let addr = |h: &str, v6: bool| {
        *start
            .hosts
            .iter()
            .find(|x| x.name == h)
            .unwrap()
            .addresses
            .iter()
            .find(|a| a.is_ipv6() == v6)
            .unwrap()
    };
    use IcmpErrorKind::*;
    // What the scenario says, by the simulator's clock (ms since start).
    let expect = |host: &str, t_ms: u64| -> Option<(IcmpErrorKind, &'static str, u32)> {
        let beyond = host == "far-a" || host == "far-b";
        match t_ms {
            2000..4000 if host != "nas" => Some((NetUnreachable, "home-gw", 1)),
            5000..7000 if host == "far-a" => Some((HostUnreachable, "isp-edge", 2)),
            8000..10000 if beyond => Some((AdminProhibited, "isp-edge", 2)),
            11000..12000 if beyond => Some((TtlExceeded, "core", 3)),
            _ => None,
        }
    };
    let mut per_kind = std::collections::BTreeMap::new();
    for q in p
        .truth
        .requests()
        .filter(|q| q.payload_len == PROBE_PAYLOAD)
    {
        let v6 = q.dst.is_ipv6();
        let host = q.host.as_deref().unwrap();
        let replies = p.truth.replies_for(q.id);
        assert_eq!(replies.len(), 1, "{q:?}");
        let r = replies[0];
        let got = errors_for(&p, q.dst, q.icmp_seq);
        match expect(host, q.t_us / 1000) {
            None => {
                assert_eq!((q.fate, q.error), (Fate::Answered, None), "{q:?}");
                assert_eq!(r.from, q.dst);
                assert!(got.is_empty(), "{q:?}: {got:?}");
                assert!(
                    p.answers.iter().any(|(_, a)| *a
                        == Answer::Reply {
                            from: q.dst,
                            seq: q.icmp_seq
                        }),
                    "{q:?} not answered"
                );
            }
            Some((kind, router, hop)) => {
                let fate = if kind == TtlExceeded {
                    Fate::TtlExceeded
                } else {
                    Fate::Unreachable
                };
                assert_eq!(
                    (q.fate, q.error, q.router.as_deref(), q.hop),
                    (fate, Some(kind), Some(router), Some(hop)),
                    "{q:?}"
                );
                let (ty, code) = kind.type_code(v6);
                assert_eq!(
                    (
                        r.from,
                        r.icmp_type,
                        r.icmp_code,
                        r.error,
                        r.router.as_deref()
                    ),
                    (addr(router, v6), ty, code, Some(kind), Some(router)),
                    "{q:?}"
                );
                assert!(r.kind.is_error());
                // The prober's kernel names the router and gives the errno.
                assert_eq!(
                    got,
                    vec![(addr(router, v6), ty, code, errno_of(kind, v6))],
                    "{q:?}"
                );
                *per_kind.entry((format!("{kind:?}"), v6)).or_insert(0) += 1;
            }
        }
    }
    eprintln!("errors per kind and family: {per_kind:?}");
    // Every kind in both families, many times (20 ms rounds over 1-2 s windows).
    assert_eq!(per_kind.len(), 8, "{per_kind:?}");
    assert!(per_kind.values().all(|&n| n >= 40), "{per_kind:?}");
    pending_error_sends(&p);
}

#[test]
fn a_rate_limiting_hop_loses_and_slows_only_its_own_replies() {
    zzping_testkit::require!(zzping_testkit::privileges::tun());
    let edge = ip("198.19.0.1");
    let targets: Vec<(IpAddr, u8)> = ["198.19.0.1", "198.19.8.8", "198.19.8.9"]
        .map(|a| (ip(a), 64))
        .to_vec();
    let p = probe_scenario(
        "isp-ratelimit",
        &targets,
        PROBE_EVERY,
        Duration::from_millis(4_000),
        false,
    );
    check_clean(&p);
    assert_eq!(sends_ok(&p).len(), p.sent.len());
    let edge_reqs = p.truth.requests_to(edge);
    let answered: Vec<_> = edge_reqs
        .iter()
        .filter(|q| q.fate == Fate::Answered)
        .collect();
    let limited = edge_reqs
        .iter()
        .filter(|q| q.fate == Fate::DroppedRatelimit)
        .count();
    assert_eq!(answered.len() + limited, edge_reqs.len());
    // Token bucket of 10, refilled at 10/s, asked 50 times a second: it stays empty,
    // so it answers its burst plus 10 per second of the span, never more.
    let span_s = (edge_reqs.last().unwrap().t_us - edge_reqs[0].t_us) as f64 / 1e6;
    let most = 10.0 + 10.0 * span_s + 1.0;
    let least = 10.0 * span_s - 1.0;
    assert!(
        (answered.len() as f64) <= most && (answered.len() as f64) >= least,
        "isp-edge answered {} of {} over {span_s:.2} s",
        answered.len(),
        edge_reqs.len()
    );
    // And slowly: 25 ms at least, while the hosts beyond answer in 12-17 ms, every time.
    assert!(answered.iter().all(|q| q.delay_us.unwrap() >= 25_000));
    for far in ["198.19.8.8", "198.19.8.9"] {
        let reqs = p.truth.requests_to(ip(far));
        assert!(!reqs.is_empty());
        assert!(
            reqs.iter()
                .all(|q| q.fate == Fate::Answered && q.delay_us.unwrap() <= 17_000),
            "{far}"
        );
    }
    // The prober got exactly the replies that were sent.
    let written: BTreeSet<(IpAddr, u16)> = p.truth.replies().map(|r| (r.dst, r.icmp_seq)).collect();
    assert_eq!(replies_received(&p), written);
}
