//! The engine's counters: totals, the delay histograms and each host's status totals.

use zzping_lib::frame::{ErrorKinds, Frame};

/// Counters of the engine (not per host).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Requests committed (sent or failed).
    pub sent: u64,
    /// Replies matched as first replies within the timeout.
    pub received: u64,
    /// Requests declared lost.
    pub lost: u64,
    /// Requests with an error outcome (send failure or ICMP error).
    pub errors: u64,
    /// Messages that matched nothing (wrong identifier, unknown seq, wrong source or
    /// token, removed host).
    pub unmatched: u64,
    /// Sends refused because the sequence space was full.
    pub seq_exhausted: u64,
    /// Wall-clock steps detected.
    pub clock_steps: u64,
    /// Stalls: the loop ran a second or more late (not scheduled, or blocked).
    pub stalls: u64,
    /// Their total length, ns.
    pub stalled_ns: u64,
    /// Sends skipped because the loop was far behind schedule (e.g. after a suspend).
    pub skipped_sends: u64,
    /// Replies whose kernel timestamp preceded their send time (RTT clamped to 0).
    pub rtt_clamped_low: u64,
    /// Replies whose kernel timestamp was inconsistent with the monotonic clock
    /// (RTT clamped to the user-space bound; a clock step).
    pub rtt_clamped_high: u64,
    /// Requests whose send time is the kernel's transmit stamp.
    pub tx_stamped: u64,
    /// Transmit stamps that matched no request in flight (arrived after the reply, or the
    /// kernel's counter could not be mapped): those requests keep the user-space stamp.
    pub tx_unmatched: u64,
    /// Received replies whose RTT runs from a kernel transmit stamp to a kernel receive
    /// stamp: exact to the clocks' resolution.
    pub rtt_kernel: u64,
    /// Received replies timed from the user-space send time (the clock read just before
    /// `sendto`): no kernel transmit stamp matched. Their frames carry `FLAG_USER_STAMP`.
    pub rtt_user_send: u64,
    /// Received replies timed to a user-space receive time (no kernel stamp, a stamp taken
    /// inside `recvmsg`, or a stamp inconsistent with the monotonic clock). Their frames
    /// carry `FLAG_USER_STAMP`.
    pub rtt_user_receive: u64,
    /// Replies whose kernel stamp was taken inside our `recvmsg` because network
    /// timestamping was not on yet (see `recv.rs`); counted in `rtt_user_receive` too
    /// when they were first replies.
    pub rx_in_call: u64,
    /// Received replies read by a batch drain of the receive thread.
    pub rtt_batched: u64,
    /// Errors (`errors`) by kind.
    pub errors_by_kind: ErrorKinds,
}

/// Log2 histogram of a delay: send lateness (actual minus scheduled send time), or how
/// long replies waited in the socket before the receive thread read them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DelayHistogram {
    /// `buckets[0]`: < 1 µs; `buckets[i]`: `[2^(i-1), 2^i)` µs; the last is open-ended.
    pub buckets: [u64; 26],
    /// Largest lateness seen, ns.
    pub max_ns: u64,
    /// Sum of all lateness, ns (for the Prometheus histogram's `_sum`).
    pub sum_ns: u64,
}

impl DelayHistogram {
    /// Records one lateness.
    pub fn record(&mut self, late_ns: u64) {
        let us = late_ns / 1000;
        let i = if us == 0 {
            0
        } else {
            (64 - us.leading_zeros() as usize).min(self.buckets.len() - 1)
        };
        self.buckets[i] += 1;
        self.max_ns = self.max_ns.max(late_ns);
        self.sum_ns = self.sum_ns.saturating_add(late_ns);
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Upper bound (µs) of the bucket holding quantile `q` (0..=1), or 0 when empty.
    pub fn quantile_us(&self, q: f64) -> u64 {
        let n = self.count();
        if n == 0 {
            return 0;
        }
        let target = ((n as f64) * q).ceil().max(1.0) as u64;
        let mut acc = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            acc += b;
            if acc >= target {
                return if i == 0 { 1 } else { 1 << i };
            }
        }
        1 << (self.buckets.len() - 1)
    }
}

/// Per-host running totals for the status display (since the last
/// [`super::Engine::take_status`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostStatus {
    /// Requests sent.
    pub sent: u64,
    /// Replies received.
    pub received: u64,
    /// Requests lost.
    pub lost: u64,
    /// Errors.
    pub errors: u64,
    /// Duplicates + late replies.
    pub extras: u64,
    /// Sum of RTTs, µs.
    pub rtt_sum_us: u64,
    /// Smallest RTT, µs (`u32::MAX` when none).
    pub rtt_min_us: u32,
    /// Largest RTT, µs.
    pub rtt_max_us: u32,
    /// Errors by kind.
    pub error_kinds: ErrorKinds,
}

impl HostStatus {
    pub(super) fn empty() -> Self {
        HostStatus {
            rtt_min_us: u32::MAX,
            ..Default::default()
        }
    }

    pub(super) fn add_frame(&mut self, f: &Frame) {
        self.sent += u64::from(f.sent);
        self.received += u64::from(f.received());
        self.lost += u64::from(f.lost);
        self.errors += u64::from(f.errors);
        self.error_kinds.merge(&f.error_kinds);
        self.extras += u64::from(f.duplicates) + u64::from(f.late);
        for &r in &f.rtts_us {
            self.rtt_sum_us += u64::from(r);
            self.rtt_min_us = self.rtt_min_us.min(r);
            self.rtt_max_us = self.rtt_max_us.max(r);
        }
    }
}
