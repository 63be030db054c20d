//! Sending: each subscription's next datagram (paced, acknowledged, resent on request)
//! and expiry of silent subscriptions.

use super::*;

impl LiveServer {
    /// The daemon could not send a datagram to `dst` (would block): counts it and pauses
    /// that subscription for 10 ms. The viewer recovers the datagram by asking a resend.
    pub fn on_send_would_block(&mut self, dst: SocketAddr, now_us: u64) {
        let now_us = self.clock.tick(now_us);
        self.stats.dropped_sends += 1;
        for s in self.subs.iter_mut().filter(|s| s.addr == dst) {
            s.tat = s.tat.max(now_us) + 10_000;
        }
    }

    pub(super) fn expire(&mut self, now: u64) {
        let mut i = 0;
        while i < self.subs.len() {
            if now.saturating_sub(self.subs[i].last_heard) >= SUBSCRIPTION_TIMEOUT_US {
                self.end_sub(i);
                self.stats.expired += 1;
            } else {
                i += 1;
            }
        }
    }

    pub(super) fn gcra_ready(&self, s: &Sub) -> u64 {
        s.tat
            .saturating_sub(u64::from(self.cfg.burst_datagrams) * self.interval_us)
    }

    /// The next datagram to send, written into `out` (which should be [`super::RECV_BUFFER`]
    /// bytes): its destination and length, or `None` when nothing is due now. Call it in
    /// a loop after every event and at [`LiveServer::next_deadline`]; it also expires
    /// silent subscriptions.
    pub fn poll_transmit(&mut self, now_us: u64, out: &mut [u8]) -> Option<(SocketAddr, usize)> {
        let now_us = self.clock.tick(now_us);
        self.expire(now_us);
        while let Some(c) = self.ctrl.pop_front() {
            if let Some(o) = out.get_mut(..c.len) {
                o.copy_from_slice(&c.buf[..c.len]);
                self.count_out(c.len);
                return Some((c.addr, c.len));
            }
            self.stats.dropped_sends += 1;
        }
        let n = self.subs.len();
        for k in 0..n {
            let i = (self.rr + k) % n;
            if let Some(len) = self.poll_sub(i, now_us, out) {
                self.rr = (i + 1) % n;
                self.count_out(len);
                return Some((self.subs[i].addr, len));
            }
        }
        None
    }

    pub(super) fn count_out(&mut self, len: usize) {
        self.stats.datagrams_out += 1;
        self.stats.bytes_out += len as u64;
    }

    pub(super) fn poll_sub(&mut self, i: usize, now: u64, out: &mut [u8]) -> Option<usize> {
        if self.gcra_ready(&self.subs[i]) > now {
            return None;
        }
        let interval = self.interval_us;
        let s = &mut self.subs[i];
        // 1. Resends.
        while let Some(&(from, end)) = s.resend.front() {
            if from >= end || from >= s.sent_upto {
                s.resend.pop_front();
                continue;
            }
            if from < s.rtx.first_key() {
                let upto = end.min(s.rtx.first_key()).min(s.sent_upto);
                if let Some(f) = s.resend.front_mut() {
                    f.0 = upto;
                }
                let w = &mut self.sc.tmp;
                w.clear();
                wire::w_head(w, 5, wire::T_UNAVAILABLE);
                wire::w_uint(w, s.token);
                wire::w_uint(w, from);
                wire::w_uint(w, upto - from);
                let o = out.get_mut(..w.len())?;
                o.copy_from_slice(w);
                s.tat = s.tat.max(now) + interval;
                self.stats.unavailable += 1;
                return Some(w.len());
            }
            if let Some(f) = s.resend.front_mut() {
                f.0 += 1;
            }
            if let Some((_, d)) = s.rtx.get(from) {
                let Some(o) = out.get_mut(..d.len()) else {
                    continue;
                };
                o.copy_from_slice(d);
                s.tat = s.tat.max(now) + interval;
                self.stats.resent += 1;
                return Some(d.len());
            }
        }
        // 2. Make the next sequenced datagram if none is waiting.
        if s.sent_upto < s.rtx.first_key() {
            s.sent_upto = s.rtx.first_key();
        }
        if s.sent_upto == s.rtx.next_key() {
            produce(
                s,
                &self.hosts,
                &self.events,
                &mut self.sc,
                &self.cfg,
                now,
                &mut self.stats,
            );
        }
        // 3. Send it.
        if s.sent_upto < s.rtx.next_key() {
            let (_, d) = s.rtx.get(s.sent_upto)?;
            s.sent_upto += 1;
            let Some(o) = out.get_mut(..d.len()) else {
                self.stats.dropped_sends += 1;
                return None;
            };
            o.copy_from_slice(d);
            s.tat = s.tat.max(now) + interval;
            return Some(d.len());
        }
        None
    }
}
