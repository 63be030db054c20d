//! The events in which hosts that were otherwise up fail together ([`analyse`]).

use super::{Failures, HostOutages, MAX_START_UNCERTAINTY_US, Run, SharedFrames};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// One host's part in an [`Event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHost {
    /// Index of the host in the slice given to [`analyse`].
    pub host: usize,
    /// Start of its failing frames in the event, µs.
    pub start_us: u64,
    /// End of its failing frames in the event, µs.
    pub end_us: u64,
    /// Its failures in the event.
    pub failures: Failures,
}

/// Hosts failing together (or one host alone): see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Start, µs (the first frame with a failure of the event).
    pub start_us: u64,
    /// End, µs (the end of its last frame).
    pub end_us: u64,
    /// The hosts that failed together, by index.
    pub hosts: Vec<EventHost>,
    /// Hosts up otherwise that were failing during the event for a reason of their own
    /// (their run began earlier or later), by index.
    pub also_failing: Vec<usize>,
    /// Every failure of the event.
    pub failures: Failures,
}

/// What [`analyse`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Analysis {
    /// The hosts that were down ([`HostOutages::is_down`], but not those that limit
    /// ICMP on their whole data), by index.
    pub down: Vec<usize>,
    /// The events of the other hosts, by start.
    pub events: Vec<Event>,
    /// The hosts that limit ICMP ([`HostOutages::limits_icmp`]), by index.
    pub limits_icmp: Vec<usize>,
    /// Per host (by index): its events alone left out of `events` because it limits
    /// ICMP.
    pub limited_runs: Vec<u64>,
    /// Per host (by index): its frames that failed in events of several hosts.
    pub shared: Vec<SharedFrames>,
}

/// Finds the down hosts and the events of the others (see the module docs).
pub fn analyse(hosts: &[HostOutages]) -> Analysis {
    // A host that rations its replies may lose most of its requests and still be up.
    let down: Vec<usize> = (0..hosts.len())
        .filter(|&i| hosts[i].is_down() && !hosts[i].limits_icmp())
        .collect();
    // Runs of the hosts that were up, earliest start first (then by host, for a
    // deterministic order).
    type Queue = BinaryHeap<Reverse<(u64, usize, usize)>>;
    fn enqueue(queue: &mut Queue, runs: &mut Vec<(usize, Run)>, h: usize, r: Run) {
        queue.push(Reverse((r.start_us, h, runs.len())));
        runs.push((h, r));
    }
    let mut queue = Queue::new();
    let mut runs: Vec<(usize, Run)> = Vec::new();
    for (h, host) in hosts.iter().enumerate() {
        if down.contains(&h) {
            continue;
        }
        for r in &host.runs {
            enqueue(&mut queue, &mut runs, h, r.clone());
        }
    }
    let mut events = Vec::new();
    // Per host: its frames that failed in events of several hosts.
    let mut shared = vec![SharedFrames::default(); hosts.len()];
    while let Some(Reverse((s0, _, first))) = queue.pop() {
        // Within one frame, plus what either run could not know of when the cause came.
        let tolerance = runs[first].1.period_us() + runs[first].1.start_uncertainty_us;
        let mut group = vec![first];
        let mut later = Vec::new();
        while let Some(&Reverse((s, h, i))) = queue.peek() {
            if s > s0 + tolerance + MAX_START_UNCERTAINTY_US {
                break;
            }
            queue.pop();
            // One run per host in an event (its next run waits).
            if s > s0 + tolerance + runs[i].1.start_uncertainty_us
                || group.iter().any(|&g| runs[g].0 == h)
            {
                later.push(Reverse((s, h, i)));
            } else {
                group.push(i);
            }
        }
        queue.extend(later);
        if group.len() > 1 {
            // They fail together until fewer than two still fail: the second-latest end.
            let mut ends: Vec<u64> = group.iter().map(|&i| runs[i].1.end_us).collect();
            ends.sort_unstable_by(|a, b| b.cmp(a));
            let together_end = ends[1];
            for &i in &group {
                let tol = runs[i].1.period_us();
                if runs[i].1.end_us > together_end + tol
                    && let Some(rest) = runs[i].1.split_off(together_end)
                {
                    let h = runs[i].0;
                    enqueue(&mut queue, &mut runs, h, rest);
                }
            }
        }
        let mut ev = Event {
            start_us: u64::MAX,
            end_us: 0,
            hosts: Vec::new(),
            also_failing: Vec::new(),
            failures: Failures::default(),
        };
        for &i in &group {
            let (h, r) = &runs[i];
            if group.len() > 1 {
                shared[*h].add_run(r);
            }
            ev.start_us = ev.start_us.min(r.start_us);
            ev.end_us = ev.end_us.max(r.end_us);
            ev.failures.merge(&r.failures);
            ev.hosts.push(EventHost {
                host: *h,
                start_us: r.start_us,
                end_us: r.end_us,
                failures: r.failures.clone(),
            });
        }
        ev.hosts.sort_by_key(|e| e.host);
        events.push(ev);
    }
    // A host that rations its replies fails whole frames now and then on its own: not
    // an outage of anything. With other hosts, the event stands.
    let limits_icmp: Vec<usize> = (0..hosts.len())
        .filter(|&h| hosts[h].limits_icmp_apart(&shared[h]))
        .collect();
    let mut limited_runs = vec![0; hosts.len()];
    events.retain(|ev| {
        let limited = ev.hosts.iter().all(|e| limits_icmp.contains(&e.host));
        if limited {
            for e in &ev.hosts {
                limited_runs[e.host] += 1;
            }
        }
        !limited
    });
    for ev in &mut events {
        ev.also_failing = (0..hosts.len())
            .filter(|&h| !down.contains(&h) && !limits_icmp.contains(&h))
            .filter(|&h| ev.hosts.iter().all(|e| e.host != h))
            .filter(|&h| hosts[h].failing_during(ev.start_us, ev.end_us))
            .collect();
    }
    events.sort_by_key(|e| (e.start_us, e.end_us));
    Analysis {
        down,
        events,
        limits_icmp,
        limited_runs,
        shared,
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // failing spans of a host, often one
mod tests {
    use super::super::testutil::*;
    use super::super::{HostRuns, LIMIT_MAX_DISPERSION, LIMIT_MIN_WINDOWS, LIMIT_SETTLE_US};
    use super::*;
    use crate::frame::ErrorKind;

    fn ev_spans(a: &Analysis) -> Vec<(u64, u64, Vec<usize>)> {
        a.events
            .iter()
            .map(|e| {
                (
                    e.start_us,
                    e.end_us,
                    e.hosts.iter().map(|h| h.host).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn a_down_host_is_set_aside_and_the_others_events_stay_apart() {
        let hosts = [
            // Down the whole time.
            timeline(600, &[0..600], &[]),
            // Together at 100 (one starting a frame later), upstream at 300.
            timeline(600, &[100..103], &[]),
            timeline(600, &[101..103, 300..305], &[100]),
            timeline(600, &[100..103, 300..305, 450..452], &[]),
        ];
        let a = analyse(&hosts);
        assert_eq!(a.down, [0]);
        assert_eq!(
            ev_spans(&a),
            [
                (t(100), t(103), vec![1, 2, 3]),
                (t(300), t(305), vec![2, 3]),
                (t(450), t(452), vec![3]),
            ]
        );
        assert_eq!(a.events[0].failures.timeouts, 15 + 2 + 10 + 15);
        assert!(a.events.iter().all(|e| e.also_failing.is_empty()));
    }

    #[test]
    fn a_host_failing_longer_is_cut_where_the_others_recover() {
        // Hosts 0-2 fail 37.0-37.3 s; host 1 goes on to 37.8 s (its own burst).
        let hosts = [
            timeline(600, &[370..373], &[373]),
            timeline(600, &[370..378], &[]),
            timeline(600, &[370..373], &[]),
        ];
        let a = analyse(&hosts);
        assert_eq!(
            ev_spans(&a),
            [(t(370), t(374), vec![0, 1, 2]), (t(374), t(378), vec![1])]
        );
        assert_eq!(a.events[0].hosts[1].failures.timeouts, 4 * 5);
        assert_eq!(a.events[1].failures.timeouts, 4 * 5);
        // Within one frame of the others: not cut.
        let hosts = [
            timeline(600, &[370..373], &[]),
            timeline(600, &[370..374], &[]),
        ];
        assert_eq!(ev_spans(&analyse(&hosts)), [(t(370), t(374), vec![0, 1])]);
    }

    /// Frames of 5 requests; `replies(i)` of them answered, the rest timed out.
    fn rationed(n: u64, replies: impl Fn(u64) -> u32) -> HostOutages {
        let mut r = HostRuns::new();
        for i in 0..n {
            r.add(&fr(i, replies(i), 5 - replies(i), 0, None));
        }
        r.finish()
    }

    #[test]
    fn a_host_that_rations_its_replies_limits_icmp_and_has_no_outages() {
        // A router capped at 20 of 50 requests per second: 2 replies in every frame,
        // and now and then a frame with none (the cap's phase), alone.
        let capped = rationed(600, |i| if i % 97 == 50 { 0 } else { 2 });
        let d = &capped.dispersion;
        assert!(d.index().unwrap() < LIMIT_MAX_DISPERSION, "{d:?}");
        assert!(capped.limits_icmp());
        // Random loss of the same share (a lossy Wi-Fi host): replies spread
        // binomially, so it does not limit ICMP.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut coin = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % 5 < 2
        };
        let lossy: Vec<u32> = (0..600)
            .map(|_| (0..5).filter(|_| coin()).count() as u32)
            .collect();
        let random = rationed(600, |i| lossy[i as usize]);
        assert!(
            random.dispersion.index().unwrap() > 0.6,
            "{:?}",
            random.dispersion
        );
        assert!(!random.limits_icmp());
        // Errors are not a rate limit; too few frames cannot tell.
        let mut r = HostRuns::new();
        for i in 0..600 {
            r.add(&fr(i, 2, 0, 3, Some(ErrorKind::HostUnreachable)));
        }
        assert!(!r.finish().limits_icmp());
        // (Windows of 2 frames here: 2 replies and 3 failures a frame.)
        let settle = LIMIT_SETTLE_US / u64::from(P);
        let few = rationed(settle + 2 * LIMIT_MIN_WINDOWS - 2, |_| 2);
        assert_eq!(few.dispersion.judge(&Default::default()).window_frames, 2);
        assert!(!few.limits_icmp());
        assert!(rationed(settle + 2 * LIMIT_MIN_WINDOWS, |_| 2).limits_icmp());

        // Heavy random loss (90 %): many frames without a reply, the rest with one or
        // two; spread like chance, so no cap.
        let heavy: Vec<u32> = (0..600)
            .map(|_| (0..5).filter(|_| !coin() && !coin() && !coin()).count() as u32)
            .collect();
        let heavy = rationed(600, |i| heavy[i as usize]);
        assert!(!heavy.limits_icmp(), "{:?}", heavy.dispersion.index());

        // Its frames without a reply are no outage; when every host fails (a dropout of
        // 10 s), the event keeps it, and those frames do not hide its cap.
        let capped = rationed(600, |i| match i {
            300..400 => 0,
            i if i % 97 == 50 => 0,
            _ => 2,
        });
        assert!(!capped.limits_icmp(), "the dropout alone looks like bursts");
        let hosts = [capped, timeline(600, &[300..400], &[])];
        let a = analyse(&hosts);
        assert_eq!(a.limits_icmp, [0]);
        assert_eq!(a.limited_runs, [5, 0]);
        assert_eq!(a.shared[0].frames(), 100);
        // (Its run takes its partly failed frames on either side as edges.)
        assert_eq!(ev_spans(&a), [(t(299), t(401), vec![0, 1])]);
    }

    /// Frames of 5 requests over 600 slots, answered after `rtt_us`: all failed in
    /// `fail` (slots), 2 of 5 failed in `edges`; with their RTTs read or not.
    fn timed(rtt_us: u32, fail: std::ops::Range<u64>, edges: &[u64], read: bool) -> HostOutages {
        let q = crate::quantizer::Quantizer::default();
        let mut r = HostRuns::new();
        for i in 0..600 {
            let (recv, lost) = if fail.contains(&i) {
                (0, 5)
            } else if edges.contains(&i) {
                (3, 2)
            } else {
                (5, 0)
            };
            let mut f = fr(i, recv, lost, 0, None);
            f.codes = vec![q.encode(rtt_us); recv as usize];
            if read {
                r.add_timed(&f, &q);
            } else {
                r.add(&f);
            }
        }
        r.finish()
    }

    #[test]
    fn a_far_host_failing_first_is_in_the_same_event() {
        // The link fails at 10.0 s (slot 100). The hosts 2 ms away fail from the first
        // request after it; the host 150 ms away from the requests in flight then, sent
        // from 9.85 s: its run starts two frames earlier (a partly failed frame, then
        // whole ones). One frame plus its RTT and send interval (170 ms) and theirs
        // (22 ms) covers the 200 ms.
        let far = |read| timed(150_000, 99..103, &[98], read);
        let near = |read| timed(2_000, 100..103, &[], read);
        let a = analyse(&[far(true), near(true), near(true)]);
        assert_eq!(ev_spans(&a), [(t(98), t(103), vec![0, 1, 2])]);
        assert_eq!(a.events[0].hosts[0].start_us, t(98));
        let u = timed(150_000, 99..103, &[98], true).runs[0].start_uncertainty_us;
        assert!((170_000..=172_000).contains(&u), "{u}");
        // Without the RTTs, only the send intervals: 140 ms, two outages.
        let a = analyse(&[far(false), near(false), near(false)]);
        assert_eq!(
            ev_spans(&a),
            [(t(98), t(103), vec![0]), (t(100), t(103), vec![1, 2])]
        );
        assert_eq!(a.events[1].also_failing, [0]);
        // Failing 400 ms before the others: its own cause, even 150 ms away.
        let a = analyse(&[timed(150_000, 97..103, &[96], true), near(true), near(true)]);
        assert_eq!(ev_spans(&a).len(), 2, "{:?}", ev_spans(&a));
        // The uncertainty has a bound: a host 5 s away (its requests time out first)
        // is taken as 1 s.
        let slow = timed(5_000_000, 99..103, &[98], true);
        assert_eq!(slow.runs[0].start_uncertainty_us, MAX_START_UNCERTAINTY_US);
    }

    #[test]
    fn a_host_already_failing_keeps_its_own_outage() {
        let hosts = [
            timeline(6000, &[1000..2000], &[]),
            timeline(6000, &[1500..1503], &[]),
            timeline(6000, &[1500..1503], &[]),
        ];
        let a = analyse(&hosts);
        assert!(a.down.is_empty());
        assert_eq!(
            ev_spans(&a),
            [(t(1000), t(2000), vec![0]), (t(1500), t(1503), vec![1, 2])]
        );
        assert_eq!(a.events[1].also_failing, [0]);
        assert_eq!(a.events[0].also_failing, [1, 2]);
    }
}
