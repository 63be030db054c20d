//! End-to-end tests: real `fping` inside `zzping-netsim exec`, compared with
//! the simulator's ground truth.

mod common;

use std::net::IpAddr;

use common::{ExecResult, exec};
use zzping_netsim::profile::Fate;
use zzping_netsim::truth::ReplyKind;
use zzping_testkit::fping::parse_summary;

/// The kernel slews a clock by at most 500 ppm (`adjtimex`): two intervals measured on
/// different clocks (fping's, the simulator's wall clock) may differ by that much.
const CLOCK_SLEW: f64 = 500e-6;

/// Compare fping's per-ping results for `addr` with the truth, given the
/// fping timeout in ms. Returns the fping results (RTTs in ms, `None` when lost).
///
/// Every bound here is causal, so machine load cannot break it: fping reads its send
/// time before `sendto` (so before the simulator read the request) and its receive time
/// from the kernel's receive stamp or later (so after the simulator began writing the
/// reply, which it does only once the reply is due); each RTT it measures spans the
/// simulator's read-to-due interval and can only be shorter by its printing resolution
/// and the clock slew. How much longer depends on scheduling (reported, not asserted).
fn check_against_truth(
    r: &ExecResult,
    addr: &str,
    count: usize,
    timeout_ms: u64,
) -> Vec<Option<f64>> {
    let fp = parse_summary(&r.stderr);
    let got = fp
        .get(addr)
        .unwrap_or_else(|| panic!("no fping result for {addr} in:\n{}", r.stderr))
        .clone();
    assert_eq!(got.len(), count, "fping results for {addr}");
    let dst: IpAddr = addr.parse().unwrap();
    let reqs = r.truth.requests_to(dst);
    assert_eq!(reqs.len(), count, "truth requests to {addr}");
    let mut diffs = Vec::new();
    for (i, (f, q)) in got.iter().zip(&reqs).enumerate() {
        let first = r.truth.replies_for(q.id).into_iter().find(|p| p.copy == 0);
        let truth_rtt = first.map(|p| p.sent_us - q.time_us);
        let in_time = q.fate.is_answered() && truth_rtt.is_some_and(|t| t < timeout_ms * 1000);
        match f {
            Some(rtt) => {
                assert!(
                    in_time,
                    "{addr} ping {i}: fping got {} µs but truth says {:?} ({truth_rtt:?} µs)",
                    rtt.us, q.fate
                );
                let t = truth_rtt.unwrap() as f64;
                let due = first.map_or(0, |p| p.due_us - q.time_us) as f64;
                assert!(
                    rtt.max_us() * (1.0 + CLOCK_SLEW) >= due,
                    "{addr} ping {i}: fping {} µs (±{}) is shorter than the simulator held \
                     the request before its reply was due ({due} µs)",
                    rtt.us,
                    rtt.half_step_us
                );
                diffs.push(rtt.us - t);
            }
            None => {
                // Replies sent close to the timeout may go either way.
                let near = truth_rtt.is_some_and(|t| t.abs_diff(timeout_ms * 1000) < 2000);
                assert!(
                    !in_time || near,
                    "{addr} ping {i}: fping lost it but truth says {:?} after {truth_rtt:?} µs",
                    q.fate
                );
            }
        }
    }
    if !diffs.is_empty() {
        diffs.sort_by(f64::total_cmp);
        eprintln!(
            "{addr}: fping − truth holding time, µs: min {:.0} median {:.0} max {:.0} (n={})",
            diffs[0],
            diffs[diffs.len() / 2],
            diffs[diffs.len() - 1],
            diffs.len()
        );
    }
    got.iter().map(|r| r.map(|r| r.us / 1e3)).collect()
}

#[test]
fn clean_rtts_match_truth_v4_and_v6() {
    zzping_testkit::require!(common::netns_and_fping());
    let r = exec(
        "clean",
        &[
            "fping",
            "-q",
            "-C",
            "20",
            "-p",
            "20",
            "-t",
            "200",
            "198.18.0.10",
            "198.18.0.11",
            "198.18.1.1",
            "2001:db8::10",
        ],
    );
    assert!(r.status.success(), "status {:?}\n{}", r.status, r.stderr);
    for a in ["198.18.0.10", "198.18.0.11", "198.18.1.1", "2001:db8::10"] {
        let got = check_against_truth(&r, a, 20, 200);
        assert!(
            got.iter().all(Option::is_some),
            "{a}: clean network lost pings: {got:?}"
        );
    }
    // Applied delays follow the profiles: gateway 1 ms + U(0, 0.1 ms).
    for q in r.truth.requests_to("198.18.0.10".parse().unwrap()) {
        let d = q.delay_us.unwrap();
        assert!((1000..=1100).contains(&d), "delay {d}");
        assert_eq!(q.fate, Fate::Answered);
    }
    let end = r.truth.end().expect("end event");
    assert_eq!(end.requests, 80);
    assert_eq!(end.replies_sent, 80);
    assert_eq!(end.replies_unsent, 0);
    // The scheduler never sends a reply before it is due (how late it is depends on
    // the machine's load: reported).
    let mut late: Vec<i64> = r.truth.replies().map(|p| p.late_us).collect();
    late.sort_unstable();
    assert!(late[0] >= 0, "a reply sent {} µs early", -late[0]);
    eprintln!(
        "reply lateness µs: median {} max {}",
        late[late.len() / 2],
        late[late.len() - 1]
    );
}

#[test]
fn wifi_loss_burst_seen_by_fping() {
    zzping_testkit::require!(common::netns_and_fping());
    // 100 pings every 20 ms: the burst at 1.0-1.3 s after start is inside.
    let r = exec(
        "wifi-bad",
        &[
            "fping",
            "-q",
            "-C",
            "100",
            "-p",
            "20",
            "-t",
            "200",
            "198.18.0.10",
        ],
    );
    assert!(r.status.code().is_some(), "{}", r.stderr);
    let got = check_against_truth(&r, "198.18.0.10", 100, 200);
    let reqs = r.truth.requests_to("198.18.0.10".parse().unwrap());
    let burst: Vec<_> = reqs
        .iter()
        .filter(|q| q.fate == Fate::DroppedBurst)
        .collect();
    // Exactly the requests read inside the burst window are dropped (how many that is
    // depends on fping's pacing on this machine: 15 when on time).
    assert!(!burst.is_empty(), "no burst drop");
    for q in &reqs {
        assert_eq!(
            q.fate == Fate::DroppedBurst,
            (1_000_000..1_300_000).contains(&q.t_us),
            "t={} fate={:?}",
            q.t_us,
            q.fate
        );
    }
    // Everything sent inside the window was dropped: a consecutive run.
    let first = reqs
        .iter()
        .position(|q| q.fate == Fate::DroppedBurst)
        .unwrap();
    assert!(got[first..first + burst.len()].iter().all(Option::is_none));
    assert!(
        reqs.iter()
            .any(|q| q.fate == Fate::Answered && q.t_us > 1_300_000)
    );
}

#[test]
fn unreachable_and_silent_hosts() {
    zzping_testkit::require!(common::netns_and_fping());
    let r = exec(
        "unreachable-silent",
        &[
            "fping",
            "-C",
            "5",
            "-p",
            "20",
            "-t",
            "200",
            "198.18.0.10",
            "198.18.0.30",
            "198.18.0.31",
        ],
    );
    // fping exits 1 when some hosts are unreachable: passed through.
    assert_eq!(r.status.code(), Some(1), "{}", r.stderr);
    let fp = parse_summary(&r.stderr);
    assert!(fp["198.18.0.10"].iter().all(Option::is_some));
    assert!(fp["198.18.0.30"].iter().all(Option::is_none));
    assert!(fp["198.18.0.31"].iter().all(Option::is_none));
    let unreach = r
        .stderr
        .matches("ICMP Host Unreachable from 198.18.0.254 for ICMP Echo sent to 198.18.0.30")
        .count();
    assert_eq!(unreach, 5, "{}", r.stderr);
    for q in r.truth.requests_to("198.18.0.30".parse().unwrap()) {
        assert_eq!(q.fate, Fate::Unreachable);
        let rs = r.truth.replies_for(q.id);
        assert_eq!(rs.len(), 1);
        assert_eq!(rs[0].kind, ReplyKind::Unreachable);
    }
    let silent = r.truth.requests_to("198.18.0.31".parse().unwrap());
    assert_eq!(silent.len(), 5);
    for q in silent {
        assert_eq!(q.fate, Fate::Silent);
        assert!(r.truth.replies_for(q.id).is_empty());
    }
}

#[test]
fn duplicates_and_reordering() {
    zzping_testkit::require!(common::netns_and_fping());
    let r = exec(
        "dupes-reorder",
        &[
            "fping",
            "-q",
            "-C",
            "40",
            "-p",
            "20",
            "-t",
            "200",
            "198.18.0.11",
            "198.18.0.12",
        ],
    );
    assert!(r.status.success(), "{}", r.stderr);
    let got = check_against_truth(&r, "198.18.0.11", 40, 200);
    let reqs = r.truth.requests_to("198.18.0.11".parse().unwrap());
    let n_re = reqs.iter().filter(|q| q.reordered).count();
    assert!(n_re > 2, "only {n_re} reordered");
    for (f, q) in got.iter().zip(&reqs) {
        let ms = f.unwrap();
        // Held-back replies arrive after the next request's reply: overtaken.
        assert_eq!(
            q.reordered,
            ms > 40.0,
            "seq {}: {ms} ms, reordered={}",
            q.icmp_seq,
            q.reordered
        );
    }
    // Every reply of the triple host was sent three times, 1 ms apart.
    check_against_truth(&r, "198.18.0.12", 40, 200);
    let triple = r.truth.requests_to("198.18.0.12".parse().unwrap());
    for q in &triple {
        assert_eq!((q.fate, q.replies), (Fate::Duplicated, 3));
    }
    // fping exits as soon as the last first copy arrives, so the very last
    // request's extra copies may still be pending (counted as unsent).
    for q in &triple[..triple.len() - 1] {
        let rs = r.truth.replies_for(q.id);
        assert_eq!(rs.iter().map(|p| p.copy).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(rs[2].delay_us - rs[0].delay_us, 2000);
    }
    let end = r.truth.end().expect("end event");
    let scheduled: u64 = r.truth.requests().map(|q| u64::from(q.replies)).sum();
    assert_eq!(end.replies_sent + end.replies_unsent, scheduled);
    assert_eq!(end.replies_sent, r.truth.replies().count() as u64);
}

#[test]
fn rate_limit_drops_match() {
    zzping_testkit::require!(common::netns_and_fping());
    // 50 pings at 100/s against 10/s with a burst of 5.
    let r = exec(
        "ratelimit",
        &[
            "fping",
            "-q",
            "-C",
            "50",
            "-p",
            "10",
            "-t",
            "200",
            "198.18.0.10",
            "198.18.0.11",
        ],
    );
    let got = check_against_truth(&r, "198.18.0.10", 50, 200);
    let answered = got.iter().filter(|x| x.is_some()).count();
    let reqs = r.truth.requests_to("198.18.0.10".parse().unwrap());
    // Burst of 5, then 10 tokens per second over the span of the requests.
    let span_s = (reqs[49].t_us - reqs[0].t_us) as f64 / 1e6;
    let expect = 5.0 + 10.0 * span_s;
    assert!(
        (answered as f64 - expect).abs() <= 1.5,
        "answered {answered}, expected ~{expect:.1}: {got:?}"
    );
    assert!(answered < 25, "rate limit not applied: {answered}");
    assert!(reqs[..5].iter().all(|q| q.fate == Fate::Answered));
    assert_eq!(
        reqs.iter()
            .filter(|q| q.fate == Fate::DroppedRatelimit)
            .count(),
        50 - answered
    );
    // The other host is not limited.
    let other = check_against_truth(&r, "198.18.0.11", 50, 200);
    assert!(other.iter().all(Option::is_some));
}

#[test]
fn outage_and_recovery() {
    zzping_testkit::require!(common::netns_and_fping());
    // 3 s of pings; the scenario's network is down from 1.0 s to 2.5 s.
    let r = exec(
        "outage",
        &[
            "fping",
            "-q",
            "-C",
            "150",
            "-p",
            "20",
            "-t",
            "200",
            "198.18.0.10",
        ],
    );
    let got = check_against_truth(&r, "198.18.0.10", 150, 200);
    let reqs = r.truth.requests_to("198.18.0.10".parse().unwrap());
    for q in &reqs {
        let inside = (1_000_000..2_500_000).contains(&q.t_us);
        assert_eq!(
            q.fate == Fate::DroppedOutage,
            inside,
            "t={} fate={:?}",
            q.t_us,
            q.fate
        );
    }
    // fping lost exactly the requests the outage dropped (75 when fping sends on time;
    // fewer if it was held back, so the count itself is not the check).
    let lost = got.iter().filter(|x| x.is_none()).count();
    let dropped = reqs
        .iter()
        .filter(|q| q.fate == Fate::DroppedOutage)
        .count();
    assert!(dropped > 0, "the outage dropped nothing");
    assert_eq!(lost, dropped, "fping's losses vs the outage's drops");
    // The network came back: the last pings are answered.
    assert!(got[got.len() - 10..].iter().all(Option::is_some), "{got:?}");
}

#[test]
fn ipv6_hosts() {
    zzping_testkit::require!(common::netns_and_fping());
    let r = exec(
        "ipv6",
        &[
            "fping",
            "-q",
            "-C",
            "30",
            "-p",
            "20",
            "-t",
            "200",
            "2001:db8::10",
            "2001:db8:42::1",
            "2001:db8:dead::1",
        ],
    );
    assert!(r.status.code().is_some(), "{}", r.stderr);
    let a = check_against_truth(&r, "2001:db8::10", 30, 200);
    assert!(a.iter().all(Option::is_some));
    // 10% random loss, exactly where the truth says.
    check_against_truth(&r, "2001:db8:42::1", 30, 200);
    let reqs = r.truth.requests_to("2001:db8:42::1".parse().unwrap());
    assert!(
        reqs.iter()
            .all(|q| matches!(q.fate, Fate::Answered | Fate::DroppedRandom))
    );
    assert!(
        reqs.iter()
            .all(|q| q.family == zzping_netsim::packet::Family::Ipv6)
    );
    // fping 5.1 filters ICMPv6 errors; the truth shows the router answered.
    for q in r.truth.requests_to("2001:db8:dead::1".parse().unwrap()) {
        assert_eq!(q.fate, Fate::Unreachable);
        assert_eq!(r.truth.replies_for(q.id)[0].kind, ReplyKind::Unreachable);
    }
}
