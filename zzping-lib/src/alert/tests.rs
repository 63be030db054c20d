use super::*;

const P_US: u32 = 100_000;
const T0_US: u64 = 1_700_000_000_000_000;
const S_US: u64 = 1_000_000;

/// A frame of `period` at frame index `i` after `T0_US`: `ok` replies of `rtt_us` each,
/// `lost` timeouts and `errors` errors.
fn frame(i: u64, ok: u32, rtt_us: u32, lost: u32, errors: u32) -> Frame {
    let mut f = Frame::new(T0_US + i * u64::from(P_US), P_US);
    f.rtts_us.extend(std::iter::repeat_n(rtt_us, ok as usize));
    f.lost = lost;
    f.errors = errors;
    f.sent = ok + lost + errors;
    f
}

fn up(i: u64) -> Frame {
    frame(i, 5, 1_000, 0, 0)
}

fn down(i: u64) -> Frame {
    frame(i, 0, 0, 5, 0)
}

/// Feeds `frames` of host `key` and returns the events, with the frame index at which each came.
fn feed(
    ev: &mut Evaluator,
    key: HostKey,
    frames: impl IntoIterator<Item = Frame>,
) -> Vec<(u64, AlertEvent)> {
    let mut out = Vec::new();
    let mut got = Vec::new();
    for f in frames {
        let i = (f.start_us - T0_US) / u64::from(P_US);
        ev.on_frame(key, &f, &mut out);
        got.extend(out.drain(..).map(|e| (i, e)));
    }
    got
}

fn outage(for_s: u64, host: HostMatch) -> Rule {
    Rule::new(
        "out",
        When::Outage {
            for_us: for_s * S_US,
        },
        host,
    )
}

fn one(rule: Rule) -> Evaluator {
    let mut ev = Evaluator::new(vec![rule]);
    ev.add_host(1, "gw", P_US);
    ev
}

#[test]
fn outage_fires_when_the_streak_reaches_for_and_not_a_frame_before() {
    let mut ev = one(outage(1, HostMatch::Each));
    let got = feed(&mut ev, 1, (0..20).map(up).chain((20..40).map(down)));
    // Frames 20..=29 fail: the tenth ends exactly 1 s after the first began.
    assert_eq!(got.len(), 1, "{got:?}");
    let (i, e) = got[0];
    assert_eq!(i, 29);
    assert_eq!(e.state, AlertState::Firing);
    assert_eq!(e.host, Some(1));
    assert_eq!(e.since_us, T0_US + 20 * u64::from(P_US));
    assert_eq!(e.at_us, T0_US + 30 * u64::from(P_US));
    assert!((e.value - 1.0).abs() < 1e-9 && (e.threshold - 1.0).abs() < 1e-9);
    assert!(ev.any_firing());
    // Nine failed frames are not enough.
    let mut ev = one(outage(1, HostMatch::Each));
    assert!(feed(&mut ev, 1, (0..9).map(down).chain((9..30).map(up))).is_empty());
}

#[test]
fn outage_resolves_once_after_clear_and_a_brief_reply_does_not_flap() {
    let mut ev = one(outage(1, HostMatch::Each));
    // Down 2 s, one frame with a reply, down 2 s, then up for good.
    let frames = (0..20)
        .map(down)
        .chain([up(20)])
        .chain((21..41).map(down))
        .chain((41..80).map(up));
    let got = feed(&mut ev, 1, frames);
    let states: Vec<_> = got.iter().map(|(i, e)| (*i, e.state)).collect();
    // Resolved after 1 s (the default clear = for) of replies: frames 41..=50.
    assert_eq!(
        states,
        [(9, AlertState::Firing), (50, AlertState::Resolved)]
    );
    let r = got[1].1;
    assert_eq!(r.since_us, T0_US + 41 * u64::from(P_US));
    assert_eq!(r.value, 0.0);
    assert!(!ev.any_firing());
    // And it can fire again afterwards.
    let again = feed(&mut ev, 1, (80..95).map(down));
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].0, again[0].1.state), (89, AlertState::Firing));
}

#[test]
fn outage_counts_errors_ignores_frames_without_outcome_and_ends_at_long_silences() {
    let mut ev = one(outage(1, HostMatch::Each));
    // Errors are failures; empty frames (nothing sent) neither end nor extend the streak.
    let frames = (0..5)
        .map(|i| frame(i, 0, 0, 0, 3))
        .chain((5..8).map(|i| frame(i, 0, 0, 0, 0)))
        .chain((8..10).map(down));
    let got = feed(&mut ev, 1, frames);
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].0, got[0].1.since_us), (9, T0_US));
    // A silence longer than MAX_SKIPPED_US starts a new streak.
    let mut ev = one(outage(1, HostMatch::Each));
    let gap = MAX_SKIPPED_US / u64::from(P_US) + 10;
    let got = feed(&mut ev, 1, (0..5).map(down).chain((gap..gap + 5).map(down)));
    assert!(got.is_empty(), "{got:?}");
}

#[test]
fn a_rule_on_a_label_watches_only_that_host() {
    let mut ev = Evaluator::new(vec![outage(1, HostMatch::Label("gw".into()))]);
    ev.add_host(1, "gw", P_US);
    ev.add_host(2, "isp", P_US);
    assert!(feed(&mut ev, 2, (0..30).map(down)).is_empty());
    let got = feed(&mut ev, 1, (0..30).map(down));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1.host, Some(1));
    assert_eq!(ev.label(1), Some("gw"));
}

#[test]
fn outage_on_all_hosts_needs_every_host_down() {
    let mut ev = Evaluator::new(vec![outage(1, HostMatch::All)]);
    ev.add_host(1, "a", P_US);
    ev.add_host(2, "b", P_US);
    let mut out = Vec::new();
    let mut events = Vec::new();
    // Host a fails from frame 0, host b only from frame 5: all down for 1 s at frame 14.
    for i in 0..40 {
        ev.on_frame(1, &if i < 30 { down(i) } else { up(i) }, &mut out);
        events.extend(out.drain(..).map(|e| (i, 1, e)));
        ev.on_frame(2, &if i < 5 { up(i) } else { down(i) }, &mut out);
        events.extend(out.drain(..).map(|e| (i, 2, e)));
    }
    let got: Vec<_> = events
        .iter()
        .map(|(i, h, e)| (*i, *h, e.state, e.host))
        .collect();
    assert_eq!(
        got,
        [
            (14, 2, AlertState::Firing, None),
            // Host a answers from frame 30: clear (not all down) for 1 s at frame 39.
            (39, 1, AlertState::Resolved, None),
        ]
    );
    let firing = events[0].2;
    // The least of the hosts' outages, since the last host went down.
    assert!((firing.value - 1.0).abs() < 1e-9);
    assert_eq!(firing.since_us, T0_US + 5 * u64::from(P_US));
    // One host down alone never fires it.
    let mut ev = Evaluator::new(vec![outage(1, HostMatch::All)]);
    ev.add_host(1, "a", P_US);
    ev.add_host(2, "b", P_US);
    for i in 0..40 {
        ev.on_frame(1, &down(i), &mut out);
        ev.on_frame(2, &up(i), &mut out);
    }
    assert!(out.is_empty());
}

fn loss(pct: f64, window_s: u64) -> Rule {
    Rule::new(
        "loss",
        When::Loss {
            above_pct: pct,
            window_us: window_s * S_US,
        },
        HostMatch::Each,
    )
}

#[test]
fn loss_waits_for_a_whole_window_and_is_strictly_above() {
    // 1 s window: 10 frames. Loss 100 % from the first frame, but the window is whole
    // only at frame 9.
    let mut ev = one(loss(10.0, 1));
    let got = feed(&mut ev, 1, (0..12).map(down));
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].0, got[0].1.state), (9, AlertState::Firing));
    assert_eq!(got[0].1.since_us, T0_US);
    assert!((got[0].1.value - 100.0).abs() < 1e-9);
    // Exactly 10 % (1 failed of 10 per frame) is not above 10 %.
    let mut ev = one(loss(10.0, 1));
    assert!(feed(&mut ev, 1, (0..50).map(|i| frame(i, 9, 1_000, 1, 0))).is_empty());
    // Errors count as failures, like timeouts: 2 of 10 is above 10 %.
    let mut ev = one(loss(10.0, 1));
    let got = feed(&mut ev, 1, (0..50).map(|i| frame(i, 8, 1_000, 0, 2)));
    assert_eq!(got.len(), 1);
    assert!((got[0].1.value - 20.0).abs() < 1e-9);
}

#[test]
fn loss_hovering_around_the_threshold_fires_once_and_resolves_after_clear() {
    let mut ev = one(loss(10.0, 1));
    // 30 frames at 20 % loss, then frames alternating 20 % and 0 % (10 % over the
    // window: not above, clear), then clean ones.
    let frames = (0..30)
        .map(|i| frame(i, 8, 1_000, 2, 0))
        .chain((30..60).map(|i| {
            if i % 2 == 0 {
                frame(i, 8, 1_000, 2, 0)
            } else {
                frame(i, 10, 1_000, 0, 0)
            }
        }))
        .chain((60..100).map(|i| frame(i, 10, 1_000, 0, 0)));
    let got = feed(&mut ev, 1, frames);
    let states: Vec<_> = got.iter().map(|(i, e)| (*i, e.state)).collect();
    // Firing at frame 9; the window falls to 10 % at frame 39 (frames 30..=39 alternate)
    // and stays at or below it: resolved 1 s (clear = window) later, at frame 48.
    assert_eq!(
        states,
        [(9, AlertState::Firing), (48, AlertState::Resolved)]
    );
    assert_eq!(got[1].1.since_us, T0_US + 39 * u64::from(P_US));
}

#[test]
fn long_windows_use_slots_of_several_frames() {
    // 60 s at 100 ms: 600 frames in 120 slots of 500 ms.
    let ring = Ring::new(60 * S_US, P_US, None);
    assert_eq!((ring.slots.len(), ring.slot_us), (MAX_SLOTS, 500_000));
    // A window that is not a whole number of slots is rounded up.
    let ring = Ring::new(1_050_000, P_US, Some(1_000));
    assert_eq!(
        (ring.slots.len(), ring.slot_us, ring.hist.len()),
        (11, 100_000, P95_BUCKETS)
    );
    assert_eq!(ring.slot_hist.len(), 11 * P95_BUCKETS);
    let mut ev = one(loss(50.0, 60));
    // 60 s of clean frames, then 30 s of full loss: 50 %, not above.
    let got = feed(&mut ev, 1, (0..600).map(up).chain((600..900).map(down)));
    assert!(got.is_empty(), "{got:?}");
    // Frame 900 starts slot 180: the window is slots 61..=180, frames 305..=900, 295
    // clean and 301 failed.
    let got = feed(&mut ev, 1, (900..915).map(down));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, 900);
}

#[test]
fn frames_older_than_the_window_are_ignored() {
    let mut ring = Ring::new(S_US, P_US, None);
    let s = |i: u64, failed| Sample {
        start_us: T0_US + i * u64::from(P_US),
        end_us: T0_US + (i + 1) * u64::from(P_US),
        received: 0,
        failed,
    };
    assert!(ring.add(&s(20, 1), std::iter::empty()));
    assert!(ring.add(&s(11, 1), std::iter::empty()));
    assert!(!ring.add(&s(10, 1), std::iter::empty()));
    assert_eq!(ring.total.failed, 2);
    // A jump past the whole window empties it.
    assert!(ring.add(&s(100, 1), std::iter::empty()));
    assert_eq!(ring.total.failed, 1);
}

fn p95(above_ms: u32, window_s: u64) -> Rule {
    Rule::new(
        "slow",
        When::P95 {
            above_us: above_ms * 1_000,
            window_us: window_s * S_US,
        },
        HostMatch::Each,
    )
}

/// A frame of 20 replies, `slow` of them of `slow_us`, the rest of 1 ms.
fn mixed(i: u64, slow: usize, slow_us: u32) -> Frame {
    let mut f = frame(i, 20 - slow as u32, 1_000, 0, 0);
    f.rtts_us.extend(std::iter::repeat_n(slow_us, slow));
    f.sent = 20;
    f
}

#[test]
fn p95_is_decided_exactly_at_five_percent() {
    // 1 of 20 replies above 50 ms: the p95 (the 19th) is 1 ms.
    let mut ev = one(p95(50, 1));
    assert!(feed(&mut ev, 1, (0..30).map(|i| mixed(i, 1, 80_000))).is_empty());
    // Replies exactly at the threshold are not above it.
    let mut ev = one(p95(50, 1));
    assert!(feed(&mut ev, 1, (0..30).map(|i| mixed(i, 5, 50_000))).is_empty());
    // 2 of 20: the 19th is slow.
    let mut ev = one(p95(50, 1));
    let got = feed(&mut ev, 1, (0..30).map(|i| mixed(i, 2, 80_000)));
    assert_eq!(got.len(), 1);
    let e = got[0].1;
    assert_eq!((got[0].0, e.state), (9, AlertState::Firing));
    // The value is within 9 % of 80 ms and above the threshold.
    assert!(
        (e.value / 80.0 - 1.0).abs() < 0.09 && e.value > 50.0,
        "{e:?}"
    );
    assert!((e.threshold - 50.0).abs() < 1e-9);
}

#[test]
fn p95_holds_its_state_through_a_window_without_replies() {
    // Slow, then a total outage much longer than the window, then fast again: no
    // replies is no p95 (unknown), so the rule stays firing through the outage and
    // resolves only once fast replies have been clear for clear_us (1 s).
    let mut ev = one(p95(50, 1));
    let frames = (0..20)
        .map(|i| mixed(i, 20, 200_000))
        .chain((20..80).map(down))
        .chain((80..120).map(|i| mixed(i, 0, 0)));
    let got = feed(&mut ev, 1, frames);
    let states: Vec<_> = got.iter().map(|(i, e)| (*i, e.state)).collect();
    // Frame 80's window (71..=80) has one fast frame: clear from frame 80, 1 s of
    // clear at the end of frame 89.
    assert_eq!(
        states,
        [(9, AlertState::Firing), (89, AlertState::Resolved)]
    );
    // An outage alone does not fire a p95 rule, nor does fast-again resolve anything.
    let mut ev = one(p95(50, 1));
    let frames = (0..20)
        .map(|i| mixed(i, 0, 0))
        .chain((20..80).map(down))
        .chain((80..100).map(|i| mixed(i, 0, 0)));
    assert!(feed(&mut ev, 1, frames).is_empty());
}

#[test]
fn a_loss_window_without_outcome_holds_its_state() {
    // Frames without any outcome (the viewer's evaluator takes frames from the
    // network, which may claim nothing): such a window cannot tell.
    let mut ev = one(loss(10.0, 1));
    let empty = |i: u64| frame(i, 0, 0, 0, 0);
    let frames = (0..20)
        .map(down)
        .chain((20..60).map(empty))
        .chain((60..100).map(up));
    let got = feed(&mut ev, 1, frames);
    let states: Vec<_> = got.iter().map(|(i, e)| (*i, e.state)).collect();
    // Fired at frame 9; the window of frame 60 (51..=60) holds one good frame: clear
    // from 60, resolved at the end of frame 69.
    assert_eq!(
        states,
        [(9, AlertState::Firing), (69, AlertState::Resolved)]
    );
}

#[test]
fn a_rule_on_a_role_watches_every_host_of_that_role() {
    let rule = outage(1, HostMatch::Role("gateway".into()));
    let mut ev = Evaluator::new(vec![rule.clone()]);
    ev.add_host_with_role(1, "gw-v4", Some("gateway"), P_US);
    ev.add_host_with_role(2, "gw-v6", Some("gateway"), P_US);
    ev.add_host_with_role(3, "isp", Some("isp-edge"), P_US);
    // A host labelled like the role is not of it.
    ev.add_host(4, "gateway", P_US);
    for k in [3, 4] {
        assert!(feed(&mut ev, k, (0..30).map(down)).is_empty(), "host {k}");
    }
    for k in [1, 2] {
        let got = feed(&mut ev, k, (0..30).map(down));
        assert_eq!(got.len(), 1, "host {k}");
        assert_eq!(got[0].1.host, Some(k));
    }
    // The role is kept across new rules.
    ev.set_rules(vec![outage(2, HostMatch::Role("gateway".into()))]);
    let got = feed(&mut ev, 1, (30..60).map(down));
    assert_eq!(got.len(), 1);
    assert!(feed(&mut ev, 3, (30..60).map(down)).is_empty());
}

#[test]
fn p95_resolves_when_the_window_is_fast_again_and_ignores_loss() {
    let mut ev = one(p95(50, 1));
    let frames = (0..20)
        .map(|i| mixed(i, 20, 200_000))
        .chain((20..29).map(down))
        .chain((29..60).map(|i| mixed(i, 0, 0)));
    let got = feed(&mut ev, 1, frames);
    let states: Vec<_> = got.iter().map(|(i, e)| (*i, e.state)).collect();
    // Frames without replies leave the p95 of the window's replies as it was (slow); the
    // last slow frame (19) leaves the 10-frame window at frame 29, clear for 1 s from
    // then: resolved at frame 38. Loss is not this rule's business.
    assert_eq!(
        states,
        [(9, AlertState::Firing), (38, AlertState::Resolved)]
    );
    // The value is the middle of its quarter-octave bucket.
    let v = got[0].1.value;
    assert!((200.0 / 1.1..=200.0 * 1.1).contains(&v), "{v}");
}

#[test]
fn set_rules_keeps_the_state_of_unchanged_rules() {
    let mut ev = Evaluator::new(vec![outage(1, HostMatch::Each), loss(10.0, 1)]);
    ev.add_host(1, "gw", P_US);
    let got = feed(&mut ev, 1, (0..15).map(down));
    assert_eq!(got.len(), 2);
    // The outage rule is kept (moved to index 0 of the new list), the loss rule changed.
    ev.set_rules(vec![outage(1, HostMatch::Each), loss(20.0, 1)]);
    let got = feed(&mut ev, 1, (15..40).map(down));
    let which: Vec<_> = got.iter().map(|(i, e)| (*i, e.rule, e.state)).collect();
    // The new loss rule starts over: its window is whole again 10 frames later.
    assert_eq!(which, [(24, 1, AlertState::Firing)]);
    // The kept outage rule resolves (it was firing), the new one too.
    let got = feed(&mut ev, 1, (40..60).map(up));
    let which: Vec<_> = got.iter().map(|(i, e)| (*i, e.rule, e.state)).collect();
    // The loss falls to 20 % (not above) at frame 47: window 38..=47.
    assert_eq!(
        which,
        [(49, 0, AlertState::Resolved), (56, 1, AlertState::Resolved)]
    );
    // A removed host is not watched any more.
    ev.remove_host(1);
    assert!(feed(&mut ev, 1, (60..90).map(down)).is_empty());
    assert!(!ev.any_firing());
}

#[test]
fn quantized_frames_give_the_same_events() {
    let q = Quantizer::new(0.01).unwrap();
    let frames: Vec<Frame> = (0..20)
        .map(|i| mixed(i, 0, 0))
        .chain((20..40).map(|i| mixed(i, 3, 90_000)))
        .collect();
    let mut a = one(p95(50, 1));
    let mut b = one(p95(50, 1));
    let (mut oa, mut ob) = (Vec::new(), Vec::new());
    let mut qf = QFrame::default();
    for f in &frames {
        a.on_frame(1, f, &mut oa);
        qf.set_from(f, &q);
        b.on_qframe(1, &qf, &q, &mut ob);
    }
    assert_eq!(oa.len(), 1);
    assert_eq!(
        oa.iter().map(|e| (e.at_us, e.state)).collect::<Vec<_>>(),
        ob.iter().map(|e| (e.at_us, e.state)).collect::<Vec<_>>()
    );
}

#[test]
fn events_are_described_in_one_sentence() {
    let mut ev = Evaluator::new(vec![outage(1, HostMatch::Each), outage(1, HostMatch::All)]);
    ev.add_host(7, "gw", P_US);
    let got = feed(&mut ev, 7, (0..10).map(down));
    let texts: Vec<_> = got.iter().map(|(_, e)| ev.describe(e)).collect();
    assert_eq!(
        texts,
        [
            "alert out firing: gw: every request failed for 1 s (rule: 1 s)",
            "alert out firing: all hosts: every request failed for 1 s (rule: 1 s)"
        ]
    );
    let got = feed(&mut ev, 7, (10..25).map(up));
    assert_eq!(
        ev.describe(&got[0].1),
        "alert out resolved: gw: answering again"
    );
    assert_eq!(fmt_num(2.345), "2.3");
    assert_eq!(
        (fmt_num(120.0), fmt_num(0.05), fmt_num(0.0)),
        ("120".into(), "0.05".into(), "0".into())
    );
}

#[test]
fn counts_claimed_by_a_hostile_frame_saturate_without_panicking() {
    // The viewer feeds frames from the network: counters may claim anything.
    let mut ev = Evaluator::new(vec![loss(10.0, 1), p95(50, 1), outage(1, HostMatch::Each)]);
    ev.add_host(1, "gw", P_US);
    let mut out = Vec::new();
    for i in 0..40 {
        let mut f = frame(i, 3, 90_000, 0, 0);
        (f.sent, f.lost, f.errors) = (u32::MAX, u32::MAX, u32::MAX);
        ev.on_frame(1, &f, &mut out);
        // Counts that disagree with the RTTs given.
        let c = Counts {
            received: u32::MAX,
            lost: u32::MAX,
            ..Counts::default()
        };
        ev.on_counts(1, f.start_us, P_US, &c, [u32::MAX, 0].into_iter(), &mut out);
    }
    // The loss rule fired (failures dominate), and nothing overflowed on eviction.
    assert!(
        out.iter()
            .any(|e| e.rule == 0 && e.state == AlertState::Firing)
    );
}

#[test]
fn an_unwatched_alert_ends_with_a_resolved_event_that_says_why() {
    let mut ev = Evaluator::new(vec![outage(1, HostMatch::Each), outage(1, HostMatch::All)]);
    ev.add_host(1, "gw", P_US);
    ev.add_host(2, "nas", P_US);
    // gw and nas down: the per-host rule fires on both, the all-hosts rule once.
    let mut got = feed(&mut ev, 1, (0..15).map(down));
    got.extend(feed(&mut ev, 2, (0..15).map(down)));
    let firing = got
        .iter()
        .filter(|(_, e)| e.state == AlertState::Firing)
        .count();
    assert_eq!(firing, 3, "{got:?}");
    // nas answers again and its alert resolves as usual: nothing left to end there.
    assert_eq!(feed(&mut ev, 2, (15..40).map(up)).len(), 2);

    // gw is removed while down: one resolved event for its own alert, marked.
    let at = T0_US + 40 * u64::from(P_US);
    let mut out = Vec::new();
    ev.unwatch_host(1, Unwatched::HostRemoved, at, &mut out);
    assert_eq!(out.len(), 1, "{out:?}");
    let e = out[0];
    assert_eq!(
        (e.rule, e.host, e.state, e.unwatched, e.at_us),
        (
            0,
            Some(1),
            AlertState::Resolved,
            Some(Unwatched::HostRemoved),
            at
        )
    );
    let text = ev.describe(&e);
    assert!(
        text.contains("gw: no longer watched (the host was removed)"),
        "{text}"
    );
    // Ended once: asking again says nothing.
    out.clear();
    ev.unwatch_host(1, Unwatched::HostRemoved, at, &mut out);
    assert!(out.is_empty(), "{out:?}");
    ev.remove_host(1);

    // A firing alert on all hosts ends when the watcher stops.
    let mut ev = Evaluator::new(vec![outage(1, HostMatch::All), outage(1, HostMatch::Each)]);
    ev.add_host(1, "gw", P_US);
    let got = feed(&mut ev, 1, (0..15).map(down));
    assert_eq!(got.len(), 2, "{got:?}");
    let mut out = Vec::new();
    ev.unwatch_all(Unwatched::Stopped, at, &mut out);
    let ended: Vec<_> = out.iter().map(|e| (e.rule, e.host, e.unwatched)).collect();
    assert_eq!(
        ended,
        [
            (1, Some(1), Some(Unwatched::Stopped)),
            (0, None, Some(Unwatched::Stopped))
        ]
    );
    assert!(out.iter().all(|e| e.state == AlertState::Resolved));
    assert!(
        ev.describe(&out[1])
            .contains("all hosts: no longer watched (zzping stopped watching)")
    );
    assert!(!ev.any_firing());
    out.clear();
    ev.unwatch_all(Unwatched::Stopped, at, &mut out);
    assert!(out.is_empty());
}
