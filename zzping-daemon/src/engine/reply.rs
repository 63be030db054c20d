//! Replies: matching a message to its request, the RTT from the best stamps at both ends,
//! and kernel transmit stamps matched to their sends.

use zzping_lib::frame::FLAG_USER_STAMP;

use super::seq::State;
use super::{Engine, FrameOutput, Reply, ReplyOutcome, RxStamp};
use crate::icmp::{Family, Message};

impl Engine {
    /// Handles a received message. Returns what it was, for statistics.
    pub fn on_reply(&mut self, r: &Reply, out: &mut dyn FrameOutput) -> ReplyOutcome {
        let t = &self.tables[r.family.index()];
        let (ident, seq, token, is_error) = match r.msg {
            Message::EchoReply { ident, seq, token } => (ident, seq, token, false),
            Message::Error { ident, seq, .. } => (ident, seq, None, true),
            Message::TxStamp { key } => return self.on_tx_stamp(r.family, key, r.kernel_real_ns),
            Message::Other => return ReplyOutcome::Ignored,
        };
        if ident != t.ident {
            self.stats.unmatched += 1;
            return ReplyOutcome::Unmatched;
        }
        let e = t.entries[t.idx(seq)];
        let known = e.state != State::Free
            && e.seq == seq
            && e.addr == r.src
            && (is_error || token == Some(e.token))
            && self.host(e.host).is_some();
        if !known {
            self.stats.unmatched += 1;
            return ReplyOutcome::Unmatched;
        }
        let timeout_ns = self.cfg.timeout_ns;
        let seq_i = t.idx(seq);
        if let Message::Error { kind, from, .. } = r.msg {
            if e.state != State::InFlight {
                // Error about an already resolved request: nothing to record.
                return ReplyOutcome::Ignored;
            }
            self.tables[r.family.index()].entries[seq_i].state = State::Resolved;
            self.unresolved = self.unresolved.saturating_sub(1);
            self.stats.errors += 1;
            self.stats.errors_by_kind.add(kind, 1);
            self.with_frame(e.host, e.frame_serial, |of| {
                of.frame.errors = of.frame.errors.saturating_add(1);
                of.frame.error_kinds.add(kind, 1);
                if from.is_some() {
                    of.frame.router = from;
                }
                of.outstanding = of.outstanding.saturating_sub(1);
            });
            self.try_finalize(e.host, out);
            return ReplyOutcome::Error;
        }
        if r.rx_stamp == RxStamp::InCall {
            self.stats.rx_in_call += 1;
        }
        match e.state {
            State::InFlight => {
                let (rtt_ns, clamp) = match (e.tx_kernel, r.rx_stamp, r.kernel_real_ns) {
                    (true, RxStamp::Kernel, Some(k)) => {
                        kernel_rtt_ns(e.tx_stamp_real_ns, k, rtt_ns(e.tx_mono_ns, r))
                    }
                    _ => rtt_ns(e.tx_mono_ns, r),
                };
                match clamp {
                    Clamp::Low => self.stats.rtt_clamped_low += 1,
                    Clamp::High => self.stats.rtt_clamped_high += 1,
                    Clamp::None => {}
                }
                let rx_kernel = r.rx_stamp == RxStamp::Kernel && clamp != Clamp::High;
                let rx_kernel_ns = r.kernel_real_ns.filter(|_| rx_kernel);
                if let Some(k) = rx_kernel_ns {
                    self.rx_wait.record(r.user.real_ns.saturating_sub(k));
                }
                let exact = e.tx_kernel && rx_kernel_ns.is_some();
                if exact {
                    self.stats.rtt_kernel += 1;
                } else {
                    self.stats.rtt_user_send += u64::from(!e.tx_kernel);
                    self.stats.rtt_user_receive += u64::from(rx_kernel_ns.is_none());
                }
                self.stats.rtt_batched += u64::from(r.batched);
                tracing::trace!(
                    target: "zzping_daemon::reply",
                    host = self.host(e.host).map_or("?", |h| h.label.as_str()),
                    frame_us = self
                        .host(e.host)
                        .and_then(|h| h.frames.iter().find(|f| f.serial == e.frame_serial))
                        .map_or(0, |f| f.frame.start_us),
                    addr = %e.addr,
                    ident,
                    seq,
                    rtt_ns,
                    send = if e.tx_kernel { "kernel" } else { "user" },
                    receive = match (r.rx_stamp, rx_kernel) {
                        (_, true) => "kernel",
                        (RxStamp::InCall, _) => "in_call",
                        (RxStamp::Missing, _) => "missing",
                        (RxStamp::Kernel, false) => "clock_step",
                    },
                    batched = r.batched,
                    waited_ns = rx_kernel_ns.map_or(0, |k| r.user.real_ns.saturating_sub(k)),
                    send_span_ns = e.tx_span_ns,
                    "reply"
                );
                self.tables[r.family.index()].entries[seq_i].state = State::Resolved;
                self.unresolved = self.unresolved.saturating_sub(1);
                let outcome = if rtt_ns < timeout_ns {
                    let rtt_us = u32::try_from(rtt_ns.div_ceil(1000)).unwrap_or(u32::MAX);
                    self.with_frame(e.host, e.frame_serial, |of| {
                        of.frame.rtts_us.push(rtt_us);
                        if !exact {
                            of.frame.flags |= FLAG_USER_STAMP;
                        }
                        of.outstanding = of.outstanding.saturating_sub(1);
                    });
                    self.stats.received += 1;
                    ReplyOutcome::Received { rtt_ns }
                } else {
                    // Stamped after the timeout: lost, and a late reply.
                    self.stats.lost += 1;
                    self.with_frame(e.host, e.frame_serial, |of| {
                        of.frame.lost = of.frame.lost.saturating_add(1);
                        of.frame.late = of.frame.late.saturating_add(1);
                        of.outstanding = of.outstanding.saturating_sub(1);
                    });
                    ReplyOutcome::Late
                };
                self.try_finalize(e.host, out);
                outcome
            }
            State::Resolved | State::Expired { lost: false } => {
                self.with_frame(e.host, e.frame_serial, |of| {
                    of.frame.duplicates = of.frame.duplicates.saturating_add(1);
                });
                ReplyOutcome::Duplicate
            }
            State::Expired { lost: true } => {
                self.with_frame(e.host, e.frame_serial, |of| {
                    of.frame.late = of.frame.late.saturating_add(1);
                });
                ReplyOutcome::Late
            }
            State::Free => ReplyOutcome::Unmatched,
        }
    }

    /// A kernel transmit stamp: the send time of the request whose key it names, if that
    /// request is still in flight and the stamp falls within its `sendto` call (which
    /// proves the mapping: sends do not overlap). Otherwise nearby keys are tried, and a
    /// fit re-synchronizes the counters.
    fn on_tx_stamp(&mut self, family: Family, key: u32, stamp: Option<u64>) -> ReplyOutcome {
        let Some(stamp) = stamp else {
            self.stats.tx_unmatched += 1;
            return ReplyOutcome::Ignored;
        };
        let t = &mut self.tables[family.index()];
        for d in KEY_RESYNC {
            let ours = key.wrapping_add(t.key_skew).wrapping_add_signed(d);
            let Some(i) = t.by_key(ours) else { continue };
            let e = &mut t.entries[i];
            let lo = e.tx_real_ns;
            let hi = lo + u64::from(e.tx_span_ns) + TX_BRACKET_SLACK_NS;
            if stamp < lo || stamp > hi {
                continue;
            }
            t.key_skew = t.key_skew.wrapping_add_signed(d);
            if e.state != State::InFlight {
                // The reply was handed over first: it kept the user-space send time.
                break;
            }
            // The packet left when the kernel stamped it, up to the whole `sendto` span
            // after the clock reading (the thread may have been preempted in between):
            // the RTT and the timeout both count from there.
            e.tx_mono_ns += stamp - lo;
            e.deadline_ns += stamp - lo;
            e.tx_kernel = true;
            e.tx_stamp_real_ns = stamp;
            self.stats.tx_stamped += 1;
            return ReplyOutcome::Ignored;
        }
        self.stats.tx_unmatched += 1;
        ReplyOutcome::Ignored
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clamp {
    None,
    Low,
    High,
}

/// Slack for the transmit stamp bracket: the span is measured on the monotonic clock, the
/// stamp on the wall clock (NTP slews them apart by at most 500 ppm).
const TX_BRACKET_SLACK_NS: u64 = 1_000;

/// Key offsets tried, in order, when a transmit stamp does not fit the request its
/// kernel counter names (the counters drifted apart by a send the kernel counted and we
/// did not, or the reverse).
const KEY_RESYNC: [i32; 9] = [0, 1, -1, 2, -2, 3, -3, 4, -4];

/// RTT of a reply to a request sent at `tx_mono_ns`. See the module docs.
fn rtt_ns(tx_mono_ns: u64, r: &Reply) -> (u64, Clamp) {
    let upper = i128::from(r.user.mono_ns) - i128::from(tx_mono_ns);
    let upper = upper.max(0);
    let Some(k) = r.kernel_real_ns else {
        return (upper as u64, Clamp::None);
    };
    let rx_mono = i128::from(k) - r.user.offset_ns();
    let rtt = rx_mono - i128::from(tx_mono_ns);
    if rtt < 0 {
        (0, Clamp::Low)
    } else if rtt > upper {
        // A tiny excess is sampling noise between the clocks, not a step.
        let clamp = if rtt - upper > 1_000_000 {
            Clamp::High
        } else {
            Clamp::None
        };
        (upper as u64, clamp)
    } else {
        (rtt as u64, Clamp::None)
    }
}

/// Largest difference between an RTT measured on the monotonic clock and the same RTT
/// measured on the wall clock that is sampling noise rather than a wall-clock step, ns.
const STEP_NOISE_NS: i128 = 1_000_000;

/// RTT between two kernel stamps (both wall clock, so their difference is exact and free
/// of the realtime/monotonic offsets the user-space readings sample), checked against
/// `mono`, the same RTT mapped through those offsets ([`rtt_ns`]): a wall-clock step
/// between the stamps shows as a difference, and then the monotonic estimate stands.
fn kernel_rtt_ns(tx_real_ns: u64, rx_real_ns: u64, mono: (u64, Clamp)) -> (u64, Clamp) {
    if mono.1 == Clamp::High {
        return mono;
    }
    let d = i128::from(rx_real_ns) - i128::from(tx_real_ns);
    if (d - i128::from(mono.0)).abs() > STEP_NOISE_NS {
        return (mono.0, Clamp::High);
    }
    if d < 0 {
        (0, Clamp::Low)
    } else {
        (d as u64, Clamp::None)
    }
}
