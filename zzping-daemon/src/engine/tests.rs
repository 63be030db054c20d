use super::*;
use crate::icmp::ErrorKind;
use zzping_lib::frame::{FLAG_RECV_OVERFLOW, FLAG_USER_STAMP};

const MS: u64 = 1_000_000;
/// 2026-01-01T00:00:00Z, ns (aligned to every period).
const REAL0: u64 = 1_767_225_600_000_000_000;
const MONO0: u64 = 5_000 * MS;

#[derive(Default)]
struct Sink {
    frames: Vec<(HostId, String, Frame)>,
    retired: Vec<HostId>,
}

impl FrameOutput for Sink {
    fn frame(&mut self, host: HostId, label: &str, frame: &Frame) {
        self.frames.push((host, label.to_owned(), frame.clone()));
    }
    fn host_retired(&mut self, host: HostId, _label: &str) {
        self.retired.push(host);
    }
}

impl Sink {
    fn check_invariants(&self) {
        for (_, _, f) in &self.frames {
            assert_eq!(
                f.sent,
                f.received() + f.lost + f.errors,
                "sent == received + lost + errors violated: {f:?}"
            );
        }
    }
    fn total(&self, pick: impl Fn(&Frame) -> u32) -> u32 {
        self.frames.iter().map(|(_, _, f)| pick(f)).sum()
    }
}

fn at(ms_: f64) -> Now {
    let d = (ms_ * 1e6) as u64;
    Now {
        mono_ns: MONO0 + d,
        real_ns: REAL0 + d,
    }
}

fn engine() -> Engine {
    let mut e = Engine::new(EngineConfig {
        period_us: 100_000,
        timeout_ns: 1000 * MS,
        grace_ns: 5 * MS,
    });
    e.set_ident(Family::V4, 0x4242);
    e.set_ident(Family::V6, 0x4343);
    e
}

fn v4(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn reply(p: &Probe, ident: u16, rx: Now) -> Reply {
    Reply {
        family: p.family,
        src: p.addr,
        msg: Message::EchoReply {
            ident,
            seq: p.seq,
            token: Some(p.token),
        },
        kernel_real_ns: Some(rx.real_ns),
        rx_stamp: RxStamp::Kernel,
        batched: false,
        user: rx,
    }
}

fn plus(n: Now, ns: u64) -> Now {
    Now {
        mono_ns: n.mono_ns + ns,
        real_ns: n.real_ns + ns,
    }
}

/// Sends everything due at `now`, committing with that time. Returns the probes.
fn send_due(e: &mut Engine, now: Now, sink: &mut Sink) -> Vec<Probe> {
    let mut v = Vec::new();
    while let Some(p) = e.poll_send(now) {
        e.commit_send(&p, now, p.sendable, sink);
        v.push(p);
    }
    v
}

#[test]
fn every_request_answered_on_loopback() {
    let mut e = engine();
    let mut sink = Sink::default();
    let h = e.add_host("lo", v4("127.0.0.1"), 50.0, at(0.0).mono_ns, at(0.0));
    for step in 0..3000 {
        let now = at(step as f64);
        for p in send_due(&mut e, now, &mut sink) {
            let r = reply(&p, 0x4242, plus(now, 300_000));
            assert_eq!(
                e.on_reply(&r, &mut sink),
                ReplyOutcome::Received { rtt_ns: 300_000 }
            );
        }
        e.tick(now, now.mono_ns, &mut sink);
    }
    e.finish(&mut sink);
    sink.check_invariants();
    // 3 s at 50/s: 150 sends, all answered with 300 µs.
    assert_eq!(sink.total(|f| f.sent), 150);
    assert_eq!(sink.total(|f| f.received()), 150);
    assert!(sink.frames.iter().all(|(id, l, f)| *id == h
        && l == "lo"
        && f.rtts_us.iter().all(|&r| r == 300)
        && f.start_us % 100_000 == 0
        && f.sent == 5));
    assert_eq!(e.stats().received, 150);
}

#[test]
fn matching_checks_ident_source_token_and_type() {
    let mut e = engine();
    let mut sink = Sink::default();
    e.add_host("a", v4("127.0.0.1"), 10.0, at(0.0).mono_ns, at(0.0));
    let p = send_due(&mut e, at(0.0), &mut sink).pop().unwrap();
    let rx = at(1.0);
    // Wrong identifier (another process's ping).
    assert_eq!(
        e.on_reply(&reply(&p, 0x9999, rx), &mut sink),
        ReplyOutcome::Unmatched
    );
    // Wrong source.
    let mut r = reply(&p, 0x4242, rx);
    r.src = v4("127.0.0.9");
    assert_eq!(e.on_reply(&r, &mut sink), ReplyOutcome::Unmatched);
    // Wrong token (an old request that had the same seq).
    let mut r = reply(&p, 0x4242, rx);
    r.msg = Message::EchoReply {
        ident: 0x4242,
        seq: p.seq,
        token: Some(p.token + 65536),
    };
    assert_eq!(e.on_reply(&r, &mut sink), ReplyOutcome::Unmatched);
    // Foreign payload.
    r.msg = Message::EchoReply {
        ident: 0x4242,
        seq: p.seq,
        token: None,
    };
    assert_eq!(e.on_reply(&r, &mut sink), ReplyOutcome::Unmatched);
    // Unknown seq.
    r.msg = Message::EchoReply {
        ident: 0x4242,
        seq: p.seq + 1,
        token: Some(p.token),
    };
    assert_eq!(e.on_reply(&r, &mut sink), ReplyOutcome::Unmatched);
    // Not a reply at all.
    r.msg = Message::Other;
    assert_eq!(e.on_reply(&r, &mut sink), ReplyOutcome::Ignored);
    // Wrong family's socket.
    let mut r6 = reply(&p, 0x4242, rx);
    r6.family = Family::V6;
    assert_eq!(e.on_reply(&r6, &mut sink), ReplyOutcome::Unmatched);
    // The real one.
    assert!(matches!(
        e.on_reply(&reply(&p, 0x4242, rx), &mut sink),
        ReplyOutcome::Received { .. }
    ));
    assert_eq!(e.stats().unmatched, 6);
}

#[test]
fn sequence_numbers_wrap_and_stay_matched() {
    let mut e = engine();
    let mut sink = Sink::default();
    e.add_host("a", v4("127.0.0.1"), 1000.0, at(0.0).mono_ns, at(0.0));
    e.add_host("b", v4("127.0.0.2"), 1000.0, at(0.5).mono_ns, at(0.0));
    let mut seen_wrap = false;
    let mut last_seq = 0u16;
    // 70 s at 2000/s = 140,000 requests: the 16-bit space wraps twice.
    for step in 0..140_000u64 {
        let now = at(step as f64 * 0.5);
        for p in send_due(&mut e, now, &mut sink) {
            if p.seq < last_seq {
                seen_wrap = true;
            }
            last_seq = p.seq;
            let r = reply(&p, 0x4242, plus(now, 100_000));
            assert!(matches!(
                e.on_reply(&r, &mut sink),
                ReplyOutcome::Received { .. }
            ));
        }
        e.tick(now, now.mono_ns, &mut sink);
    }
    e.finish(&mut sink);
    sink.check_invariants();
    assert!(seen_wrap);
    assert_eq!(sink.total(|f| f.sent), 140_000);
    assert_eq!(sink.total(|f| f.received()), 140_000);
    assert_eq!(e.stats().unmatched, 0);
}

#[test]
fn full_sequence_space_is_refused_not_reused() {
    let mut e = Engine::new(EngineConfig {
        period_us: 100_000,
        timeout_ns: 60_000 * MS,
        grace_ns: 0,
    });
    let mut sink = Sink::default();
    e.add_host("a", v4("198.18.0.1"), 100_000.0, at(0.0).mono_ns, at(0.0));
    let mut first = None;
    let mut refused = 0;
    let mut total = 0;
    let mut seqs = std::collections::HashSet::new();
    // 70,000 sends at 100,000/s within 0.7 s: nothing times out.
    for step in 0..700u64 {
        let now = at(step as f64);
        for p in send_due(&mut e, now, &mut sink) {
            first.get_or_insert(p);
            total += 1;
            if p.sendable {
                assert!(seqs.insert(p.seq), "seq {} reused while in flight", p.seq);
            } else {
                refused += 1;
            }
        }
        e.tick(now, now.mono_ns, &mut sink);
    }
    assert_eq!(seqs.len(), 65_535);
    assert!(total > 69_000);
    assert_eq!(refused, total - 65_535);
    assert_eq!(e.stats().seq_exhausted, refused as u64);
    // The first request is still matchable.
    let p = first.unwrap();
    assert!(matches!(
        e.on_reply(&reply(&p, 0, at(700.0)), &mut sink),
        ReplyOutcome::Received { .. }
    ));
    e.finish(&mut sink);
    sink.check_invariants();
    assert_eq!(sink.total(|f| f.errors), refused);
}

#[test]
fn duplicates_go_to_the_request_frame_then_the_oldest_open_one() {
    let mut e = engine();
    let mut sink = Sink::default();
    e.add_host("a", v4("127.0.0.1"), 1.0, at(10.0).mono_ns, at(0.0));
    let p = send_due(&mut e, at(10.0), &mut sink).pop().unwrap();
    let r = reply(&p, 0x4242, at(11.0));
    assert!(matches!(
        e.on_reply(&r, &mut sink),
        ReplyOutcome::Received { .. }
    ));
    // Duplicate while the frame is open: same frame.
    assert_eq!(e.on_reply(&r, &mut sink), ReplyOutcome::Duplicate);
    for t in 11..=150 {
        e.tick(at(t as f64), at(t as f64).mono_ns, &mut sink);
    }
    // Frame [0,100ms) is final at 100 ms (all answered).
    assert_eq!(sink.frames.len(), 1);
    let f = &sink.frames[0].2;
    assert_eq!((f.sent, f.received(), f.duplicates), (1, 1, 1));
    // Duplicate after the frame is final: goes to the oldest open frame ([100,200)).
    assert_eq!(e.on_reply(&r, &mut sink), ReplyOutcome::Duplicate);
    for t in 151..=400 {
        e.tick(at(t as f64), at(t as f64).mono_ns, &mut sink);
    }
    assert_eq!(sink.frames.len(), 2);
    let f = &sink.frames[1].2;
    assert_eq!(f.start_us, REAL0 / 1000 + 100_000);
    assert_eq!((f.sent, f.duplicates), (0, 1));
    sink.check_invariants();
}

#[test]
fn timeouts_and_late_replies() {
    let mut e = engine();
    let mut sink = Sink::default();
    e.add_host("a", v4("127.0.0.1"), 1.0, at(50.0).mono_ns, at(0.0));
    let p = send_due(&mut e, at(50.0), &mut sink).pop().unwrap();
    // The request expires at send + timeout = 1050 ms (with the receive frontier there),
    // which finalizes its frame.
    for t in 51..1050 {
        e.tick(at(t as f64), at(t as f64).mono_ns, &mut sink);
    }
    assert!(sink.frames.is_empty(), "final too early");
    e.tick(at(1050.0), at(1050.0).mono_ns, &mut sink);
    assert_eq!(sink.frames.len(), 1);
    for t in 1051..1200 {
        e.tick(at(t as f64), at(t as f64).mono_ns, &mut sink);
    }
    assert_eq!(sink.frames.len(), 1);
    let f = &sink.frames[0].2;
    assert_eq!((f.sent, f.lost, f.received()), (1, 1, 0));
    // The reply finally arrives: late, counted in the oldest open frame.
    let r = reply(&p, 0x4242, at(1250.0));
    assert_eq!(e.on_reply(&r, &mut sink), ReplyOutcome::Late);
    for t in 1200..1400 {
        e.tick(at(t as f64), at(t as f64).mono_ns, &mut sink);
    }
    assert_eq!(sink.frames.len(), 2);
    assert_eq!(sink.frames[1].2.late, 1);
    sink.check_invariants();
}

#[test]
fn answered_requests_need_no_wakeup_at_their_deadline() {
    let mut e = Engine::new(EngineConfig {
        period_us: 60_000_000,
        timeout_ns: 1000 * MS,
        grace_ns: 5 * MS,
    });
    e.set_ident(Family::V4, 0x4242);
    let mut sink = Sink::default();
    e.add_host("a", v4("127.0.0.1"), 1.0, at(0.0).mono_ns, at(0.0));
    let p0 = send_due(&mut e, at(0.0), &mut sink).pop().unwrap();
    e.on_reply(&reply(&p0, 0x4242, at(1.0)), &mut sink);
    e.tick(at(1.0), at(1.0).mono_ns, &mut sink);
    // Nothing in flight: the next wakeup is the next send, not seq 0's expiry.
    assert_eq!(e.next_deadline(at(1.0)), at(1000.0).mono_ns);
    let p1 = send_due(&mut e, at(1000.0), &mut sink).pop().unwrap();
    e.tick(at(1000.0), at(1000.0).mono_ns, &mut sink);
    // Seq 0 is answered (held until 1000 ms to classify duplicates), seq 1 in flight: its
    // expiry (2000 ms plus the slack) is after the next send, which wins.
    assert_eq!(e.next_deadline(at(1000.0)), at(2000.0).mono_ns);
    // Left unanswered, seq 1 bounds the sleep with the short slack once sends stop
    // (nothing left to ride on).
    e.stop_sending();
    assert_eq!(
        e.next_deadline(at(1000.0)),
        at(2000.0).mono_ns + IDLE_EXPIRY_SLACK_NS
    );
    assert!(e.expiry_overdue(at(2000.0).mono_ns + IDLE_EXPIRY_SLACK_NS));
    e.on_reply(&reply(&p1, 0x4242, at(1010.0)), &mut sink);
    e.tick(at(1010.0), at(1010.0).mono_ns, &mut sink);
    assert_eq!(
        e.next_deadline(at(1010.0)),
        at(60_000.0).mono_ns + BOUNDARY_SLACK_NS
    );
}

#[test]
fn a_loss_waits_for_a_wakeup_the_loop_has_anyway_until_the_slack_is_spent() {
    let mut e = engine();
    let mut sink = Sink::default();
    e.add_host("a", v4("127.0.0.1"), 10.0, at(0.0).mono_ns, at(0.0));
    send_due(&mut e, at(0.0), &mut sink);
    e.tick(at(0.0), at(0.0).mono_ns, &mut sink);
    let deadline = at(0.0).mono_ns + 1000 * MS;
    // Rounds every 100 ms, each answered but the first: the sends' wakeups come
    // before the expiry's own.
    for k in 1..=10 {
        let t = 100.0 * f64::from(k);
        let p = send_due(&mut e, at(t), &mut sink).pop().unwrap();
        e.on_reply(&reply(&p, 0x4242, at(t + 1.0)), &mut sink);
        e.tick(at(t + 1.0), at(t - 10.0).mono_ns, &mut sink);
        assert_eq!(e.next_deadline(at(t + 1.0)), at(t + 100.0).mono_ns);
    }
    // Past the deadline but not proven (the receive frontier is behind it): no wakeup
    // of its own, and no request to the receive thread yet.
    assert!(e.expiry_due(deadline + MS) && !e.expiry_overdue(deadline + MS));
    assert_eq!(e.unresolved(), 1);
    // A later round's wakeup, once the receive thread's read has passed the deadline,
    // declares it.
    send_due(&mut e, at(1100.0), &mut sink);
    e.tick(at(1100.0), deadline + 50 * MS, &mut sink);
    assert_eq!(e.stats().lost, 1);
    assert_eq!(e.unresolved(), 1, "only the request just sent");
    // A request whose slack is spent bounds the sleep (rounds 1 s apart, 10 s frames:
    // no other wakeup before the next send).
    let mut e = Engine::new(EngineConfig {
        period_us: 10_000_000,
        ..e.config()
    });
    e.set_ident(Family::V4, 0x4242);
    e.add_host("b", v4("127.0.0.1"), 1.0, at(0.0).mono_ns, at(0.0));
    send_due(&mut e, at(0.0), &mut sink);
    e.tick(at(0.0), at(0.0).mono_ns, &mut sink);
    send_due(&mut e, at(1000.0), &mut sink);
    e.tick(at(1000.0), at(990.0).mono_ns, &mut sink);
    let spent = at(1000.0).mono_ns + EXPIRY_SLACK_NS;
    assert_eq!(e.next_deadline(at(1000.0)), spent);
    assert!(e.expiry_overdue(spent) && !e.expiry_overdue(spent - 1));
}

#[test]
fn period_boundaries_wait_for_a_nearby_wakeup() {
    let mut e = engine();
    let mut sink = Sink::default();
    e.add_host("a", v4("127.0.0.1"), 1.0, at(0.0).mono_ns, at(0.0));
    let p = send_due(&mut e, at(0.0), &mut sink).pop().unwrap();
    e.on_reply(&reply(&p, 0x4242, at(1.0)), &mut sink);
    e.tick(at(1.0), at(1.0).mono_ns, &mut sink);
    // Nothing else due before: the boundary at 100 ms is served 20 ms late.
    assert_eq!(e.next_deadline(at(1.0)), at(120.0).mono_ns);
    // Whichever wakeup comes first after the boundary rotates and emits the frame.
    e.tick(at(105.0), at(105.0).mono_ns, &mut sink);
    assert_eq!(sink.frames.len(), 1);
    assert_eq!(sink.frames[0].2.start_us, REAL0 / 1000);
    assert_eq!(sink.frames[0].2.received(), 1);
    // A quarter period caps the slack for short periods.
    let mut short = Engine::new(EngineConfig {
        period_us: 10_000,
        timeout_ns: 1000 * MS,
        grace_ns: 5 * MS,
    });
    short.add_host("b", v4("127.0.0.2"), 1.0, at(0.0).mono_ns, at(0.0));
    send_due(&mut short, at(0.0), &mut sink);
    short.tick(at(1.0), at(1.0).mono_ns, &mut sink);
    short.stop_sending();
    assert!(short.next_deadline(at(1.0)) <= at(12.5).mono_ns);
}

#[test]
fn reply_stamped_after_timeout_is_lost_and_late_even_if_processed_early() {
    let mut e = engine();
    let mut sink = Sink::default();
    e.add_host("a", v4("127.0.0.1"), 1.0, at(0.0).mono_ns, at(0.0));
    let p = send_due(&mut e, at(0.0), &mut sink).pop().unwrap();
    // Kernel stamp at 1001 ms (after the 1 s timeout), handed over within the grace.
    let r = reply(&p, 0x4242, at(1001.0));
    assert_eq!(e.on_reply(&r, &mut sink), ReplyOutcome::Late);
    e.tick(at(1200.0), at(1200.0).mono_ns, &mut sink);
    let f = &sink.frames[0].2;
    assert_eq!((f.sent, f.lost, f.late, f.received()), (1, 1, 1, 0));
    sink.check_invariants();
}

#[test]
fn reply_stamped_before_send_matches_with_zero_rtt() {
    let mut e = engine();
    let mut sink = Sink::default();
    e.add_host("a", v4("127.0.0.1"), 1.0, at(0.0).mono_ns, at(0.0));
    let p = send_due(&mut e, at(0.0), &mut sink).pop().unwrap();
    let mut r = reply(&p, 0x4242, at(0.1));
    // Kernel timestamp 20 µs before our (user-space) send time.
    r.kernel_real_ns = Some(at(0.0).real_ns - 20_000);
    assert_eq!(
        e.on_reply(&r, &mut sink),
        ReplyOutcome::Received { rtt_ns: 0 }
    );
    assert_eq!(e.stats().rtt_clamped_low, 1);
    e.finish(&mut sink);
    assert_eq!(sink.frames[0].2.rtts_us, vec![0]);
}

#[test]
fn clock_step_is_flagged_and_never_reported_as_rtt() {
    let mut e = engine();
    let mut sink = Sink::default();
    e.add_host("a", v4("127.0.0.1"), 10.0, at(0.0).mono_ns, at(0.0));
    assert_eq!(e.observe_clock(at(0.0)), None);
    let p = send_due(&mut e, at(0.0), &mut sink).pop().unwrap();
    // Wall clock jumps 10 s forward; mono advanced 2 ms. The user-space sample after
    // recvmsg already sees the new offset, but the kernel stamp predates the step.
    let step = 10_000 * MS;
    let user = Now {
        mono_ns: at(2.0).mono_ns,
        real_ns: at(2.0).real_ns + step,
    };
    assert_eq!(e.observe_clock(user), Some(i128::from(step)));
    e.flag_clock_step();
    assert_eq!(e.stats().clock_steps, 1);
    let r = Reply {
        kernel_real_ns: Some(at(1.0).real_ns),
        rx_stamp: RxStamp::Kernel,
        batched: false,
        user,
        ..reply(&p, 0x4242, at(1.0))
    };
    match e.on_reply(&r, &mut sink) {
        // Without clamping this would be 0 (stamp - offset is before the send): clamped.
        ReplyOutcome::Received { rtt_ns } => assert!(rtt_ns <= 2 * MS, "rtt {rtt_ns}"),
        o => panic!("{o:?}"),
    }
    // Kernel stamp taken after the step while the user sample predates it (the other
    // race): RTT bounded by the monotonic user-space measure, not 10 s.
    let p2 = {
        let mut n = at(100.0);
        n.real_ns += step;
        e.tick(n, n.mono_ns, &mut sink);
        send_due(&mut e, n, &mut sink).pop().unwrap()
    };
    let user2 = at(101.0);
    let r2 = Reply {
        kernel_real_ns: Some(at(100.5).real_ns + 2 * step),
        rx_stamp: RxStamp::Kernel,
        batched: false,
        user: user2,
        ..reply(&p2, 0x4242, user2)
    };
    match e.on_reply(&r2, &mut sink) {
        ReplyOutcome::Received { rtt_ns } => assert!(rtt_ns <= MS, "rtt {rtt_ns}"),
        o => panic!("{o:?}"),
    }
    assert_eq!(e.stats().rtt_clamped_high, 1);
    e.finish(&mut sink);
    assert!(
        sink.frames
            .iter()
            .any(|(_, _, f)| f.flags & FLAG_CLOCK_STEP != 0)
    );
    sink.check_invariants();
    // Slow slewing is not a step.
    let mut e = engine();
    e.observe_clock(at(0.0));
    let mut slewed = at(1000.0);
    slewed.real_ns += 400_000; // 400 ppm over 1 s
    assert_eq!(e.observe_clock(slewed), None);
    // Sampling jitter of a few ms is not a step either; 20 ms is.
    let mut jitter = at(1001.0);
    jitter.real_ns += 400_000 + 3_000_000;
    assert_eq!(e.observe_clock(jitter), None);
    let mut stepped = at(1002.0);
    stepped.real_ns += 400_000 + 23_000_000;
    assert_eq!(e.observe_clock(stepped), Some(20_000_000));
}

#[test]
fn backwards_step_starts_a_flagged_frame() {
    let mut e = engine();
    let mut sink = Sink::default();
    e.add_host("a", v4("127.0.0.1"), 10.0, at(0.0).mono_ns, at(0.0));
    send_due(&mut e, at(0.0), &mut sink);
    let mut back = at(100.0);
    back.real_ns -= 5_000 * MS;
    e.observe_clock(back);
    e.tick(back, back.mono_ns, &mut sink);
    let p = send_due(&mut e, back, &mut sink);
    assert_eq!(p.len(), 1);
    e.finish(&mut sink);
    sink.check_invariants();
    assert_eq!(sink.frames.len(), 2);
    assert!(sink.frames[1].2.start_us < sink.frames[0].2.start_us);
    assert_ne!(sink.frames[1].2.flags & FLAG_CLOCK_STEP, 0);
}

#[test]
fn icmp_errors_and_send_failures_are_errors() {
    let mut e = engine();
    let mut sink = Sink::default();
    e.add_host("a", v4("198.18.0.5"), 10.0, at(0.0).mono_ns, at(0.0));
    // Send failure: burst logging information.
    let p = e.poll_send(at(0.0)).unwrap();
    assert_eq!(
        e.commit_send_timed(&p, at(0.0), 0, false, Err(ErrorKind::NoRoute), &mut sink),
        SendOutcome::Failed {
            consecutive: 1,
            seq_exhausted: false
        }
    );
    let p = e.poll_send(at(100.0)).unwrap();
    assert!(matches!(
        e.commit_send_timed(&p, at(100.0), 0, false, Err(ErrorKind::NetDown), &mut sink),
        SendOutcome::Failed { consecutive: 2, .. }
    ));
    let p = e.poll_send(at(200.0)).unwrap();
    assert_eq!(
        e.commit_send(&p, at(200.0), true, &mut sink),
        SendOutcome::Sent { recovered_after: 2 }
    );
    // ICMP unreachable quoting it.
    let r = Reply {
        family: Family::V4,
        src: v4("198.18.0.5"),
        msg: Message::Error {
            kind: ErrorKind::Prohibited,
            ident: 0x4242,
            seq: p.seq,
            orig_dst: v4("198.18.0.5"),
            from: Some(v4("198.18.0.1")),
        },
        kernel_real_ns: None,
        rx_stamp: RxStamp::Missing,
        batched: false,
        user: at(201.0),
    };
    assert_eq!(e.on_reply(&r, &mut sink), ReplyOutcome::Error);
    // A second error for it is not counted twice.
    assert_eq!(e.on_reply(&r, &mut sink), ReplyOutcome::Ignored);
    e.tick(at(300.0), at(300.0).mono_ns, &mut sink);
    e.finish(&mut sink);
    sink.check_invariants();
    assert_eq!(sink.total(|f| f.errors), 3);
    assert_eq!(sink.total(|f| f.sent), 3);
    assert_eq!(sink.total(|f| f.lost), 0);
    // Each error is kept with its kind, in its frame; the ICMP error names its router.
    let kinds: Vec<Vec<(ErrorKind, u32)>> = sink
        .frames
        .iter()
        .map(|(_, _, f)| f.error_kinds.iter().collect())
        .collect();
    assert_eq!(
        kinds,
        [
            vec![(ErrorKind::NoRoute, 1)],
            vec![(ErrorKind::NetDown, 1)],
            vec![(ErrorKind::Prohibited, 1)]
        ]
    );
    let routers: Vec<Option<IpAddr>> = sink.frames.iter().map(|(_, _, f)| f.router).collect();
    assert_eq!(routers, [None, None, Some(v4("198.18.0.1"))]);
    let by_kind = e.stats().errors_by_kind;
    assert_eq!(by_kind.total(), 3);
    assert_eq!(by_kind.get(ErrorKind::Prohibited), 1);
}

#[test]
fn absolute_deadlines_hold_the_rate_with_a_jittery_loop() {
    let mut e = engine();
    let mut sink = Sink::default();
    let rates = [1000.0, 333.0, 0.1, 7.5];
    for (i, r) in rates.iter().enumerate() {
        // Staggered: host i starts i/n of its interval later.
        let off = (interval_ns(*r) as f64 * i as f64 / rates.len() as f64) as u64;
        e.add_host(&format!("h{i}"), v4("127.0.0.1"), *r, MONO0 + off, at(0.0));
    }
    // 60 s with the loop waking up 0..3 ms late (deterministic pseudo-random).
    let mut t_ns = 0u64;
    let mut x = 12345u64;
    while t_ns < 60_000 * MS {
        let now = at(t_ns as f64 / 1e6);
        for p in send_due(&mut e, now, &mut sink) {
            let r = reply(&p, 0x4242, plus(now, 50_000));
            e.on_reply(&r, &mut sink);
        }
        e.tick(now, now.mono_ns, &mut sink);
        let next = e.next_deadline(now).saturating_sub(MONO0);
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let jitter = (x >> 33) % (3 * MS);
        t_ns = next.max(t_ns + 1) + jitter;
    }
    e.finish(&mut sink);
    sink.check_invariants();
    let mut per_host = std::collections::HashMap::<String, u32>::new();
    for (_, l, f) in &sink.frames {
        *per_host.entry(l.clone()).or_default() += f.sent;
    }
    for (i, r) in rates.iter().enumerate() {
        let expected = r * 60.0;
        let got = f64::from(per_host.get(&format!("h{i}")).copied().unwrap_or(0));
        assert!(
            (got - expected).abs() <= (expected * 0.005).max(1.0),
            "host {i}: {got} sent, expected {expected}"
        );
    }
    // Lateness recorded: up to 3 ms.
    assert!(e.lateness().max_ns <= 3 * MS + MS);
    assert!(e.lateness().quantile_us(0.5) <= 4096);
}

#[test]
fn hosts_are_staggered_and_removed_cleanly() {
    let mut e = engine();
    let mut sink = Sink::default();
    let a = e.add_host("a", v4("127.0.0.1"), 10.0, at(0.0).mono_ns, at(0.0));
    let b = e.add_host("b", v4("127.0.0.2"), 10.0, at(50.0).mono_ns, at(0.0));
    let p = send_due(&mut e, at(0.0), &mut sink);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].host, a);
    assert!(send_due(&mut e, at(49.0), &mut sink).is_empty());
    let p = send_due(&mut e, at(50.0), &mut sink);
    assert_eq!(p[0].host, b);
    e.remove_host(b, &mut sink);
    // b's request is still pending; reply comes, b retires once all resolved.
    let r = reply(&p[0], 0x4242, at(51.0));
    assert!(matches!(
        e.on_reply(&r, &mut sink),
        ReplyOutcome::Received { .. }
    ));
    assert_eq!(sink.retired, vec![b]);
    // No more sends for b.
    for t in 51..1200 {
        for p in send_due(&mut e, at(t as f64), &mut sink) {
            assert_eq!(p.host, a);
            e.on_reply(&reply(&p, 0x4242, at(t as f64 + 0.2)), &mut sink);
        }
        e.tick(at(t as f64), at(t as f64).mono_ns, &mut sink);
    }
    assert_eq!(e.hosts().count(), 1);
    // The slot is reused with a new generation; stale ids do nothing.
    let c = e.add_host("c", v4("::1"), 1.0, at(1200.0).mono_ns, at(1200.0));
    assert_eq!(c.slot, b.slot);
    assert_ne!(c.generation, b.generation);
    e.set_rate(b, 1000.0);
    assert_eq!(e.take_status(b), HostStatus::empty());
    let st = e.take_status(a);
    assert!(st.sent >= 8 && st.received + 1 == st.sent, "{st:?}");
    e.flag_all(FLAG_RECV_OVERFLOW);
    let n = sink.frames.len();
    e.finish(&mut sink);
    sink.check_invariants();
    // The current frame of a live host carries the flag.
    assert!(
        sink.frames[n..]
            .iter()
            .any(|(id, _, f)| *id == a && f.flags & FLAG_RECV_OVERFLOW != 0)
    );
}

#[test]
fn histogram_quantiles() {
    let mut h = DelayHistogram::default();
    assert_eq!(h.quantile_us(0.5), 0);
    for _ in 0..99 {
        h.record(500); // < 1 µs
    }
    h.record(3_000_000); // 3 ms
    assert_eq!(h.count(), 100);
    assert_eq!(h.quantile_us(0.5), 1);
    assert_eq!(h.quantile_us(1.0), 4096);
    assert_eq!(h.max_ns, 3_000_000);
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Random replies, drops, duplicates, errors and delays: the frame invariant holds
        /// and every request has exactly one outcome.
        #[test]
        fn attribution_invariants(ops in proptest::collection::vec((0u8..6, 0u64..1500), 1..300)) {
            let mut e = engine();
            let mut sink = Sink::default();
            e.add_host("a", v4("127.0.0.1"), 100.0, at(0.0).mono_ns, at(0.0));
            let mut pending: Vec<(Probe, u64)> = Vec::new();
            let mut t = 0u64;
            let mut sent = 0u32;
            for (op, delay) in ops {
                t += 3;
                let now = at(t as f64);
                for p in e.poll_send(now).into_iter() {
                    let ok = op != 5;
                    e.commit_send(&p, now, ok, &mut sink);
                    sent += 1;
                    if ok && op != 0 {
                        pending.push((p, t + delay));
                        if op == 4 {
                            pending.push((p, t + delay + 7));
                        }
                    }
                }
                pending.sort_by_key(|x| x.1);
                while pending.first().is_some_and(|x| x.1 <= t) {
                    let (p, rx) = pending.remove(0);
                    let r = if op == 3 {
                        Reply {
                            family: Family::V4,
                            src: p.addr,
                            msg: Message::Error { kind: ErrorKind::HostUnreachable, ident: 0x4242, seq: p.seq, orig_dst: p.addr, from: None },
                            kernel_real_ns: None,
                            rx_stamp: RxStamp::Missing,
                            batched: false,
                            user: at(rx as f64),
                        }
                    } else {
                        reply(&p, 0x4242, at(rx as f64))
                    };
                    e.on_reply(&r, &mut sink);
                }
                e.tick(now, now.mono_ns, &mut sink);
            }
            e.finish(&mut sink);
            sink.check_invariants();
            prop_assert_eq!(sink.total(|f| f.sent), sent);
        }
    }
}

/// Sends everything due at `now` as a socket with kernel transmit stamps would: each send
/// takes `span_ns`.
fn send_due_stamped(e: &mut Engine, now: Now, span_ns: u32, sink: &mut Sink) -> Vec<Probe> {
    let mut v = Vec::new();
    while let Some(p) = e.poll_send(now) {
        e.commit_send_timed(
            &p,
            now,
            span_ns,
            true,
            if p.sendable {
                Ok(())
            } else {
                Err(ErrorKind::SendOther)
            },
            sink,
        );
        v.push(p);
    }
    v
}

fn tx_stamp(family: Family, key: u32, real_ns: u64, rx: Now) -> Reply {
    Reply {
        family,
        src: family.unspecified(),
        msg: Message::TxStamp { key },
        kernel_real_ns: Some(real_ns),
        rx_stamp: RxStamp::Kernel,
        batched: false,
        user: rx,
    }
}

#[test]
fn kernel_transmit_stamp_becomes_the_send_time() {
    let mut e = engine();
    let mut sink = Sink::default();
    e.add_host("a", v4("127.0.0.1"), 10.0, at(0.0).mono_ns, at(0.0));
    let p = send_due_stamped(&mut e, at(0.0), 50_000, &mut sink)
        .pop()
        .unwrap();
    // The kernel stamped the packet 20 µs into the 50 µs sendto.
    let s = tx_stamp(Family::V4, 0, at(0.0).real_ns + 20_000, at(0.1));
    assert_eq!(e.on_reply(&s, &mut sink), ReplyOutcome::Ignored);
    assert_eq!(e.stats().tx_stamped, 1);
    let r = reply(&p, 0x4242, at(0.3));
    assert_eq!(
        e.on_reply(&r, &mut sink),
        ReplyOutcome::Received { rtt_ns: 280_000 }
    );
}

/// A send preempted between the clock reading and `sendto`: the packet left 40 ms after
/// the reading (the kernel's transmit stamp says so), its reply came 990 ms after it left.
/// The timeout counts from the packet leaving, like the RTT: received, never lost+late.
#[test]
fn the_timeout_counts_from_the_kernel_transmit_stamp() {
    let mut e = engine();
    let mut sink = Sink::default();
    e.add_host("a", v4("127.0.0.1"), 1.0, at(0.0).mono_ns, at(0.0));
    let p = send_due_stamped(&mut e, at(0.0), 40_000_000, &mut sink)
        .pop()
        .unwrap();
    let s = tx_stamp(Family::V4, 0, at(40.0).real_ns, at(40.0));
    assert_eq!(e.on_reply(&s, &mut sink), ReplyOutcome::Ignored);
    // 1,010 ms after the reading, everything stamped before 1,005 ms has been handed
    // over: past the reading's deadline, not the packet's.
    assert!(!e.expiry_due(at(1010.0).mono_ns));
    e.tick(at(1010.0), at(1005.0).mono_ns, &mut sink);
    assert_eq!(e.unresolved(), 1);
    assert_eq!(
        e.on_reply(&reply(&p, 0x4242, at(1030.0)), &mut sink),
        ReplyOutcome::Received { rtt_ns: 990 * MS }
    );
    e.tick(at(1100.0), at(1100.0).mono_ns, &mut sink);
    e.finish(&mut sink);
    sink.check_invariants();
    assert_eq!(
        (
            sink.total(|f| f.lost),
            sink.total(|f| f.late),
            sink.total(|f| f.received())
        ),
        (0, 0, 1)
    );
}

#[test]
fn transmit_stamp_outside_its_send_is_refused() {
    let mut e = engine();
    let mut sink = Sink::default();
    e.add_host("a", v4("127.0.0.1"), 10.0, at(0.0).mono_ns, at(0.0));
    let p = send_due_stamped(&mut e, at(0.0), 50_000, &mut sink)
        .pop()
        .unwrap();
    // 80 µs after a send that returned after 50 µs: not this send's stamp.
    let s = tx_stamp(Family::V4, 0, at(0.0).real_ns + 80_000, at(0.1));
    e.on_reply(&s, &mut sink);
    // Nor one stamped before the send started, nor one without a time.
    let s = tx_stamp(Family::V4, 0, at(0.0).real_ns - 1_000, at(0.1));
    e.on_reply(&s, &mut sink);
    let s = Reply {
        kernel_real_ns: None,
        rx_stamp: RxStamp::Missing,
        batched: false,
        ..tx_stamp(Family::V4, 0, 0, at(0.1))
    };
    e.on_reply(&s, &mut sink);
    assert_eq!((e.stats().tx_stamped, e.stats().tx_unmatched), (0, 3));
    // The user-space send time stands.
    let r = reply(&p, 0x4242, at(0.3));
    assert_eq!(
        e.on_reply(&r, &mut sink),
        ReplyOutcome::Received { rtt_ns: 300_000 }
    );
}

#[test]
fn transmit_stamp_counters_resynchronize_by_time() {
    let mut e = engine();
    let mut sink = Sink::default();
    e.add_host("a", v4("127.0.0.1"), 1000.0, at(0.0).mono_ns, at(0.0));
    let mut probes = Vec::new();
    for ms in 0..4 {
        probes.extend(send_due_stamped(&mut e, at(ms as f64), 30_000, &mut sink));
    }
    assert_eq!(probes.len(), 4);
    // The kernel counted one send more than we did before these (its keys run 1..=4):
    // each stamp still finds its request by time, and the offset is learnt once.
    for (i, p) in probes.iter().enumerate() {
        let sent = at(i as f64);
        let s = tx_stamp(Family::V4, i as u32 + 1, sent.real_ns + 10_000, at(4.0));
        e.on_reply(&s, &mut sink);
        let r = reply(p, 0x4242, plus(sent, 200_000));
        assert_eq!(
            e.on_reply(&r, &mut sink),
            ReplyOutcome::Received { rtt_ns: 190_000 },
            "request {i}"
        );
    }
    assert_eq!((e.stats().tx_stamped, e.stats().tx_unmatched), (4, 0));
}

#[test]
fn transmit_stamp_after_the_reply_changes_nothing() {
    let mut e = engine();
    let mut sink = Sink::default();
    e.add_host("a", v4("127.0.0.1"), 10.0, at(0.0).mono_ns, at(0.0));
    let p = send_due_stamped(&mut e, at(0.0), 50_000, &mut sink)
        .pop()
        .unwrap();
    let r = reply(&p, 0x4242, at(0.3));
    assert_eq!(
        e.on_reply(&r, &mut sink),
        ReplyOutcome::Received { rtt_ns: 300_000 }
    );
    let s = tx_stamp(Family::V4, 0, at(0.0).real_ns + 20_000, at(0.4));
    e.on_reply(&s, &mut sink);
    assert_eq!((e.stats().tx_stamped, e.stats().tx_unmatched), (0, 1));
    e.finish(&mut sink);
    assert_eq!(sink.frames[0].2.rtts_us, vec![300]);
}

#[test]
fn transmit_stamp_keys_survive_table_growth() {
    let mut e = engine();
    let mut sink = Sink::default();
    // 200/s with a 1 s timeout fits the smallest table; adding a 1,000/s host grows it
    // while ~200 stamped requests are in flight.
    e.add_host("a", v4("127.0.0.1"), 200.0, at(0.0).mono_ns, at(0.0));
    let mut probes = Vec::new();
    let mut t = 0.0;
    let send = |e: &mut Engine, t: f64, sink: &mut Sink| {
        send_due_stamped(e, at(t), 1_000, sink)
            .into_iter()
            .map(move |p| (p, at(t)))
            .collect::<Vec<_>>()
    };
    // First 1,200 requests answered at once (keys run past the small table's size).
    let mut key = 0u32;
    while key < 1200 {
        for (p, sent) in send(&mut e, t, &mut sink) {
            e.on_reply(
                &tx_stamp(Family::V4, key, sent.real_ns + 500, sent),
                &mut sink,
            );
            e.on_reply(&reply(&p, 0x4242, plus(sent, 100_000)), &mut sink);
            key += 1;
        }
        e.tick(at(t), at(t).mono_ns, &mut sink);
        t += 0.25;
    }
    let t0 = t;
    while t < t0 + 900.0 {
        probes.extend(send(&mut e, t, &mut sink));
        t += 0.25;
    }
    let before = probes.len();
    e.add_host("b", v4("127.0.0.2"), 1000.0, at(t).mono_ns, at(t));
    while t < t0 + 1000.0 {
        probes.extend(send(&mut e, t, &mut sink));
        t += 0.25;
    }
    assert!(before >= 150 && probes.len() > before + 50);
    for (k, (p, sent)) in probes.iter().enumerate() {
        let s = tx_stamp(Family::V4, key + k as u32, sent.real_ns + 500, at(t));
        e.on_reply(&s, &mut sink);
        let r = reply(p, 0x4242, plus(*sent, 100_000));
        assert_eq!(
            e.on_reply(&r, &mut sink),
            ReplyOutcome::Received { rtt_ns: 99_500 },
            "request {k}"
        );
    }
    assert_eq!(e.stats().tx_stamped, u64::from(key) + probes.len() as u64);
}

#[test]
fn frames_are_flagged_user_stamp_unless_both_times_are_kernel_stamps() {
    let mut e = engine();
    let mut sink = Sink::default();
    e.add_host("a", v4("127.0.0.1"), 10.0, at(0.0).mono_ns, at(0.0));
    // One send per 100 ms frame; each reply 300 µs after its send.
    let mut sends = Vec::new();
    for i in 0..4u32 {
        let t = at(f64::from(i) * 100.0);
        let p = send_due_stamped(&mut e, t, 50_000, &mut sink)
            .pop()
            .unwrap();
        sends.push((p, t));
    }
    let rx = |t: Now| plus(t, 300_000);
    // Frame 0: kernel stamps at both ends.
    let (p, t) = sends[0];
    e.on_reply(
        &tx_stamp(Family::V4, 0, t.real_ns + 10_000, rx(t)),
        &mut sink,
    );
    assert_eq!(
        e.on_reply(&reply(&p, 0x4242, rx(t)), &mut sink),
        ReplyOutcome::Received { rtt_ns: 290_000 }
    );
    // Frame 1: the transmit stamp never came: timed from the user-space send time.
    let (p, t) = sends[1];
    e.on_reply(&reply(&p, 0x4242, rx(t)), &mut sink);
    // Frame 2: the receive stamp was taken inside recvmsg (timestamping not on yet).
    let (p, t) = sends[2];
    e.on_reply(
        &tx_stamp(Family::V4, 2, t.real_ns + 10_000, rx(t)),
        &mut sink,
    );
    let mut r = reply(&p, 0x4242, rx(t));
    r.rx_stamp = RxStamp::InCall;
    e.on_reply(&r, &mut sink);
    // Frame 3: no receive stamp at all.
    let (p, t) = sends[3];
    e.on_reply(
        &tx_stamp(Family::V4, 3, t.real_ns + 10_000, rx(t)),
        &mut sink,
    );
    let mut r = reply(&p, 0x4242, rx(t));
    r.kernel_real_ns = None;
    r.rx_stamp = RxStamp::Missing;
    e.on_reply(&r, &mut sink);
    e.finish(&mut sink);
    sink.check_invariants();
    let flags: Vec<bool> = sink
        .frames
        .iter()
        .map(|(_, _, f)| f.flags & FLAG_USER_STAMP != 0)
        .collect();
    assert_eq!(flags, [false, true, true, true]);
    let st = e.stats();
    assert_eq!(
        (
            st.rtt_kernel,
            st.rtt_user_send,
            st.rtt_user_receive,
            st.rx_in_call
        ),
        (1, 1, 2, 1)
    );
    // Only kernel arrival stamps tell how long a reply waited in the socket: the user
    // clock was read 0 ns after the stamp in these replies.
    assert_eq!(e.rx_wait().count(), 2);
}

#[test]
fn rtt_between_kernel_stamps_ignores_offset_sampling_and_detects_steps() {
    let mut e = engine();
    let mut sink = Sink::default();
    e.add_host("a", v4("127.0.0.1"), 10.0, at(0.0).mono_ns, at(0.0));
    let t = at(0.0);
    let p = send_due_stamped(&mut e, t, 50_000, &mut sink)
        .pop()
        .unwrap();
    e.on_reply(&tx_stamp(Family::V4, 0, t.real_ns + 10_000, t), &mut sink);
    // The receive thread's clock pair was sampled across a 7 µs preemption: its offset
    // is 7 µs off. The two kernel stamps still give the RTT to the nanosecond.
    let mut r = reply(&p, 0x4242, plus(t, 310_123));
    r.user.mono_ns += 7_000;
    assert_eq!(
        e.on_reply(&r, &mut sink),
        ReplyOutcome::Received { rtt_ns: 300_123 }
    );
    assert_eq!(e.stats().rtt_kernel, 1);
    // A wall-clock step of +2 s between the stamps: the monotonic clock tells, and the
    // RTT is the user-space bound, counted as user-timed.
    let t = at(100.0);
    let p = send_due_stamped(&mut e, t, 50_000, &mut sink)
        .pop()
        .unwrap();
    e.on_reply(&tx_stamp(Family::V4, 1, t.real_ns + 10_000, t), &mut sink);
    let mut r = reply(&p, 0x4242, plus(t, 300_000));
    r.kernel_real_ns = Some(t.real_ns + 2_000_300_000);
    r.user.real_ns += 2_000_000_000;
    let ReplyOutcome::Received { rtt_ns } = e.on_reply(&r, &mut sink) else {
        panic!("not received");
    };
    assert!(rtt_ns <= 300_000, "{rtt_ns}");
    assert_eq!(e.stats().rtt_clamped_high, 1);
    assert_eq!(e.stats().rtt_user_receive, 1);
}

#[test]
fn in_flight_requests_expire_only_behind_the_receive_frontier() {
    let mut e = engine();
    let mut sink = Sink::default();
    e.add_host("a", v4("127.0.0.1"), 1.0, at(0.0).mono_ns, at(0.0));
    let p0 = send_due(&mut e, at(0.0), &mut sink).pop().unwrap();
    // 1.5 s later the receive thread has only handed over what arrived before 900 ms
    // (it was starved): the request is due but not provably lost, so it stays in flight.
    assert!(e.expiry_due(at(1500.0).mono_ns));
    e.tick(at(1500.0), at(900.0).mono_ns, &mut sink);
    assert_eq!(e.unresolved(), 1);
    // Meanwhile the next wakeup is a retry, not a spin on the past deadline.
    e.stop_sending();
    assert_eq!(
        e.next_deadline(at(1500.0)),
        at(1500.0).mono_ns + UNPROVEN_RETRY_NS
    );
    // The reply the kernel stamped at 950 ms arrives late at the loop: received, with its
    // true RTT, not lost.
    assert_eq!(
        e.on_reply(&reply(&p0, 0x4242, at(950.0)), &mut sink),
        ReplyOutcome::Received { rtt_ns: 950 * MS }
    );
    e.tick(at(1600.0), at(1600.0).mono_ns, &mut sink);
    e.finish(&mut sink);
    sink.check_invariants();
    assert_eq!(
        (sink.total(|f| f.lost), sink.total(|f| f.received())),
        (0, 1)
    );

    // Without a reply, the frontier passing the deadline is what declares the loss, at
    // once (no grace period).
    let mut e = engine();
    let mut sink = Sink::default();
    e.add_host("a", v4("127.0.0.1"), 1.0, at(0.0).mono_ns, at(0.0));
    send_due(&mut e, at(0.0), &mut sink);
    e.tick(at(1001.0), at(999.0).mono_ns, &mut sink);
    assert_eq!(e.unresolved(), 1);
    e.tick(at(1001.0), at(1000.5).mono_ns, &mut sink);
    assert_eq!(e.unresolved(), 0);
    assert_eq!(e.stats().lost, 1);
}

#[test]
fn a_stall_caught_up_at_once_never_grows_a_frame() {
    // A frame's RTT list is reserved once; a loop that stalls just under the skip
    // threshold sends the whole backlog in the frame of the moment it runs again, and
    // the replies must fit without a reallocation (steady state allocates nothing).
    #[derive(Default)]
    struct Capacities(Vec<(usize, usize)>);
    impl FrameOutput for Capacities {
        fn frame(&mut self, _: HostId, _: &str, f: &Frame) {
            self.0.push((f.rtts_us.len(), f.rtts_us.capacity()));
        }
    }
    let mut e = engine();
    let mut out = Capacities::default();
    e.add_host("a", v4("127.0.0.1"), 1000.0, at(0.0).mono_ns, at(0.0));
    let send_all = |e: &mut Engine, now: Now, out: &mut Capacities| {
        let mut n = 0;
        while let Some(p) = e.poll_send(now) {
            e.commit_send(&p, now, p.sendable, out);
            e.on_reply(&reply(&p, 0x4242, plus(now, 10_000)), out);
            n += 1;
        }
        e.tick(now, now.mono_ns, out);
        n
    };
    for ms in 0..200 {
        send_all(&mut e, at(f64::from(ms)), &mut out);
    }
    // Stalled for 990 ms: the backlog goes out at once, into one frame.
    let burst = send_all(&mut e, at(1190.0), &mut out);
    assert!(burst >= 990, "burst of {burst}");
    for ms in 1191..1500 {
        send_all(&mut e, at(f64::from(ms)), &mut out);
    }
    e.finish(&mut out);
    let first_cap = out.0[0].1;
    let biggest = out.0.iter().map(|&(len, _)| len).max().unwrap();
    assert!(biggest >= 990, "the burst frame holds {biggest} RTTs");
    assert!(
        out.0.iter().all(|&(_, cap)| cap == first_cap),
        "a frame's RTT list grew: {:?}",
        out.0
            .iter()
            .filter(|&&(_, c)| c != first_cap)
            .take(3)
            .collect::<Vec<_>>()
    );
}

#[test]
fn aligned_rounds_send_every_host_of_a_rate_together_a_phase_after_the_boundary() {
    let mut e = engine();
    // 100 ms frames: 10/s sends sit 10 ms after each boundary, 100/s sends 5 ms after
    // every 10 ms (half the interval), whenever the host is started.
    for (start_ms, rate, phase_ms) in [
        (0.0, 10.0, 10.0),
        (37.5, 10.0, 10.0),
        (99.9, 10.0, 10.0),
        (10.0, 10.0, 10.0),
        (3.0, 100.0, 5.0),
        (5.0, 100.0, 5.0),
        (0.2, 1000.0, 0.5),
    ] {
        let now = at(start_ms);
        let interval = interval_ns(rate);
        let first = e.aligned_first_send_ns(interval, now);
        assert!(
            first >= now.mono_ns && first < now.mono_ns + interval,
            "start {start_ms} ms, rate {rate}: first send {} ns after now",
            first - now.mono_ns
        );
        // In frame time (the test clocks share their origin with a frame boundary).
        let into_interval = (first - MONO0) % interval;
        assert_eq!(
            into_interval,
            (phase_ms * 1e6) as u64,
            "start {start_ms} ms, rate {rate}"
        );
    }
    // Two hosts started at different times share their rounds: one wakeup sends both.
    let a = e.add_host(
        "a",
        v4("198.18.0.1"),
        10.0,
        e.aligned_first_send_ns(interval_ns(10.0), at(1.0)),
        at(1.0),
    );
    let b = e.add_host(
        "b",
        v4("198.18.0.2"),
        10.0,
        e.aligned_first_send_ns(interval_ns(10.0), at(7.0)),
        at(7.0),
    );
    let round = at(10.0);
    let hosts: Vec<HostId> = std::iter::from_fn(|| e.poll_send(round).map(|p| p.host)).collect();
    assert_eq!(hosts.len(), 2, "{hosts:?}");
    assert!(hosts.contains(&a) && hosts.contains(&b));
    assert!(e.poll_send(at(109.9)).is_none());
}

#[test]
fn a_boundary_crossed_during_the_sends_never_rotates_a_frame_back() {
    // The loop reads the clocks once per wakeup, then sends; a stall in the middle of the
    // sends can carry them past the next boundary. The tick that follows must not rotate
    // the frame those sends opened back to the wakeup's frame: that split one frame in
    // two records with the same start (seen under load in the netns suite).
    let mut e = engine();
    let mut sink = Sink::default();
    let h = e.add_host("a", v4("127.0.0.1"), 10.0, at(50.0).mono_ns, at(0.0));
    for p in send_due(&mut e, at(50.0), &mut sink) {
        e.on_reply(&reply(&p, 0x4242, at(50.5)), &mut sink);
    }
    e.tick(at(50.5), at(50.5).mono_ns, &mut sink);
    // Woken at 150 ms (boundary 100 not rotated yet); the send goes out at 205 ms.
    let p = e.poll_send(at(150.0)).expect("a send is due");
    e.commit_send(&p, at(205.0), true, &mut sink);
    e.on_reply(&reply(&p, 0x4242, at(205.5)), &mut sink);
    e.tick(at(150.0), at(150.0).mono_ns, &mut sink);
    for t in [250.0, 350.0, 450.0] {
        for p in send_due(&mut e, at(t), &mut sink) {
            e.on_reply(&reply(&p, 0x4242, at(t + 0.5)), &mut sink);
        }
        e.tick(at(t + 0.5), at(t + 0.5).mono_ns, &mut sink);
    }
    e.finish(&mut sink);
    sink.check_invariants();
    let starts: Vec<u64> = sink
        .frames
        .iter()
        .filter(|(id, _, f)| *id == h && !f.is_empty())
        .map(|(_, _, f)| (f.start_us - REAL0 / 1000) / 1000)
        .collect();
    assert_eq!(starts, vec![0, 200, 300, 400], "frame starts, ms");
    assert_eq!(sink.total(|f| u32::from(f.flags & FLAG_CLOCK_STEP != 0)), 0);
}
