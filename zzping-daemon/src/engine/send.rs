//! Sends: the schedule hands out what is due, and each send is committed with its timing.

use std::cmp::Reverse;

use zzping_lib::frame::{ErrorKind, FLAG_SEND_LATE};

use super::seq::{Entry, State};
use super::{Engine, FrameOutput, HostId, MAX_LIVE, Probe, SKIP_BEHIND_NS, SendOutcome};
use crate::clock::Now;
use crate::icmp::Family;

impl Engine {
    /// If a send is due at `now`, allocates its sequence number and returns it. The caller
    /// sends it (unless [`Probe::sendable`] is false: the sequence space is full) and
    /// reports with [`Engine::commit_send`]; call repeatedly until `None`.
    pub fn poll_send(&mut self, now: Now) -> Option<Probe> {
        loop {
            let &Reverse((due, slot, generation)) = self.schedule.peek()?;
            if due > now.mono_ns {
                return None;
            }
            self.schedule.pop();
            let id = HostId { slot, generation };
            let Some(h) = self.host(id) else { continue };
            if h.retiring {
                continue;
            }
            let (addr, interval) = (h.addr, h.interval_ns);
            // Absolute deadlines: next = due + interval. If far behind (> 1 s and more
            // than one interval: the daemon was not scheduled, which the loop records as
            // a stall; a suspend stops the monotonic clock too), skip the missed sends
            // instead of bursting.
            let mut next = due.saturating_add(interval);
            if now.mono_ns.saturating_sub(due) > SKIP_BEHIND_NS && next <= now.mono_ns {
                let behind = now.mono_ns - next;
                let skip = behind / interval + 1;
                self.stats.skipped_sends += skip;
                next = next.saturating_add(skip.saturating_mul(interval));
            }
            self.schedule.push(Reverse((next, slot, generation)));
            let family = Family::of(&addr);
            let t = &mut self.tables[family.index()];
            let seq = t.next;
            let token = t.token;
            let sendable = t.live() < MAX_LIVE;
            return Some(Probe {
                sendable,
                host: id,
                addr,
                family,
                seq,
                token,
                scheduled_ns: due,
            });
        }
    }

    /// Records a probe returned by [`Engine::poll_send`]: `tx` is the clock reading taken
    /// immediately before `sendto`, `ok` whether the send succeeded (false when it was
    /// not sendable). The outcome tells the caller when an error burst starts or ends,
    /// so it can log once per burst.
    pub fn commit_send(
        &mut self,
        probe: &Probe,
        tx: Now,
        ok: bool,
        out: &mut dyn FrameOutput,
    ) -> SendOutcome {
        let sent = if ok {
            Ok(())
        } else {
            Err(ErrorKind::SendOther)
        };
        self.commit_send_timed(probe, tx, 0, false, sent, out)
    }

    /// [`Engine::commit_send`] for a socket that may stamp its sends: `span_ns` is how
    /// long `sendto` took (the kernel's transmit stamp of this send must fall within it)
    /// and `kernel_stamps` whether the socket has transmit stamps on. A stamp that
    /// arrives later ([`crate::icmp::Message::TxStamp`]) then replaces `tx` as the send time.
    /// `sent` is why the send failed, if it did (a request that could not be sent is an
    /// error of that kind).
    pub fn commit_send_timed(
        &mut self,
        probe: &Probe,
        tx: Now,
        span_ns: u32,
        kernel_stamps: bool,
        sent: Result<(), ErrorKind>,
        out: &mut dyn FrameOutput,
    ) -> SendOutcome {
        let late = tx.mono_ns.saturating_sub(probe.scheduled_ns);
        self.lateness.record(late);
        self.sent_real_us = self.sent_real_us.max(tx.real_us());
        let period_ns = u64::from(self.cfg.period_us) * 1000;
        let timeout_ns = self.cfg.timeout_ns;
        let full = !probe.sendable || self.tables[probe.family.index()].full();
        let serial = self.frame_for_send(probe.host, tx.real_us(), out);
        let Some(h) = self.host_mut(probe.host) else {
            return SendOutcome::Ignored;
        };
        let Some(of) = h.frames.back_mut() else {
            return SendOutcome::Ignored;
        };
        of.frame.sent = of.frame.sent.saturating_add(1);
        if late > period_ns {
            of.frame.flags |= FLAG_SEND_LATE;
        }
        if sent.is_err() || full {
            // The sequence space being full is a failure of this machine too.
            let kind = sent.err().unwrap_or(ErrorKind::SendOther);
            of.frame.errors = of.frame.errors.saturating_add(1);
            of.frame.error_kinds.add(kind, 1);
            h.consecutive_errors = h.consecutive_errors.saturating_add(1);
            let n = h.consecutive_errors;
            self.stats.sent += 1;
            self.stats.errors += 1;
            self.stats.errors_by_kind.add(kind, 1);
            if full {
                self.stats.seq_exhausted += 1;
            }
            return SendOutcome::Failed {
                consecutive: n,
                seq_exhausted: full,
            };
        }
        of.outstanding += 1;
        let prev_errors = std::mem::take(&mut h.consecutive_errors);
        let addr = probe.addr;
        let t = &mut self.tables[probe.family.index()];
        debug_assert_eq!(t.next, probe.seq);
        let slot = t.idx(probe.seq);
        let tx_key = kernel_stamps.then(|| {
            let k = t.keys;
            t.keys = k.wrapping_add(1);
            t.key_seq[k as usize & usize::from(t.mask)] = probe.seq;
            k
        });
        t.entries[slot] = Entry {
            state: State::InFlight,
            seq: probe.seq,
            host: probe.host,
            frame_serial: serial,
            token: probe.token,
            addr,
            tx_mono_ns: tx.mono_ns,
            deadline_ns: tx.mono_ns.saturating_add(timeout_ns),
            tx_real_ns: tx.real_ns,
            tx_span_ns: span_ns,
            tx_key,
            tx_kernel: false,
            tx_stamp_real_ns: 0,
        };
        t.next = t.next.wrapping_add(1);
        t.token = t.token.wrapping_add(1);
        self.stats.sent += 1;
        self.unresolved += 1;
        SendOutcome::Sent {
            recovered_after: prev_errors,
        }
    }
}
