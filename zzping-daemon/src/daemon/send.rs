//! The send step: every request the engine says is due goes out now.
//!
//! This is the one place below the loop that reads the clocks itself, and it must: the
//! reading just before `sendto` is the request's send time (unless the kernel's transmit
//! stamp replaces it), and the reading just after bounds where that stamp may fall.
//!
//! The kernel's transmit stamps are read here too, from each send socket's error queue
//! (`sock.rs`, "Two sockets per family"), many per `recvmmsg`, and only when they are
//! needed: at a wakeup that hands replies to the engine, before it does, so a reply finds
//! its request's stamp already applied (the stamp is queued when the packet leaves,
//! before any reply can arrive); at a wakeup where a request may be declared lost (its
//! deadline counts from the stamp); and once [`STAMPS_READ_EVERY`] wait, so they never
//! fill the socket's buffer. Between those, the stamps of a receive window's rounds wait
//! on the queue and one call reads them all. A stamp not there yet when its reply is
//! handed over leaves the user-space send time (counted: `rtt_user_send`).
//!
//! A failed `sendto` is tried once more at once: an ICMP error the kernel queued for an
//! earlier request can leave a pending socket error (`sk_err`) that the next `sendto`
//! returns instead of sending (raw sockets for every hard ICMP error; datagram sockets
//! when the error queue is read while another error waits behind it), and that call
//! consumes it. A failure of this machine (no route, network down) fails again, and only
//! then is the request counted as an error of that kind.

use tracing::{info, warn};

use crate::clock::{self, Now};
use crate::engine::{Reply, RxStamp, SendOutcome};
use crate::icmp::{self, ErrorKind, Message};
use crate::sock::RecvBatch;

use super::Daemon;

/// At most this many transmit stamps wait on the send sockets' error queues (each takes
/// about a kilobyte of the socket's buffer until read): a send beyond it reads them.
pub(super) const STAMPS_READ_EVERY: u32 = 64;

impl Daemon {
    /// Sends every request due at `now` (nothing once stopping) and commits each with its
    /// timing; logs the first failure of a burst and the recovery.
    pub(super) fn send_due(&mut self, now: Now) {
        if self.stop.is_stopping() {
            return;
        }
        let mut sent_any = false;
        while let Some(p) = self.engine.poll_send(now) {
            if !sent_any {
                self.queue.note_round_start(now);
            }
            if self.stamps_unread >= STAMPS_READ_EVERY {
                self.read_tx_stamps(now);
            }
            let sock = self.sockets[p.family.index()].as_deref();
            let mut err = None;
            let tx;
            let mut span_ns = 0;
            match sock {
                Some(s) if p.sendable => {
                    // Hosts with their own TTL: the socket's is set when it differs from
                    // the last send's (one more syscall only around those hosts' sends).
                    let fi = p.family.index();
                    let ttl = self
                        .host_ttl
                        .get(&p.host)
                        .copied()
                        .unwrap_or(crate::config::DEFAULT_TTL);
                    if ttl != self.sock_ttl[fi] {
                        match s.set_ttl(ttl) {
                            Ok(()) => self.sock_ttl[fi] = ttl,
                            Err(e) => warn!("setting TTL {ttl} on the {:?} socket: {e}", p.family),
                        }
                    }
                    let _ = icmp::emit_echo_request(
                        p.family,
                        &mut self.packet,
                        s.ident(),
                        p.seq,
                        p.token,
                    );
                    // A link-local gateway's interface (0: none).
                    let scope = self.host_scope.get(&p.host).copied().unwrap_or(0);
                    let mut t = clock::now();
                    let mut r = s.send_to_scoped(&self.packet, p.addr, scope);
                    if r.is_err() {
                        t = clock::now();
                        r = s.send_to_scoped(&self.packet, p.addr, scope);
                    }
                    tx = t;
                    err = r.err();
                    // The bracket a kernel transmit stamp of this send must fall in.
                    span_ns = u32::try_from(clock::mono_ns().saturating_sub(tx.mono_ns))
                        .unwrap_or(u32::MAX);
                }
                _ => tx = clock::now(),
            }
            let ok = err.is_none() && sock.is_some() && p.sendable;
            let stamps = ok && sock.is_some_and(|s| s.tx_stamps());
            if ok {
                // The receive thread learns that a reply is awaited.
                self.queue.note_sent(1);
                sent_any = true;
            }
            self.stamps_due[p.family.index()] += u32::from(stamps);
            self.stamps_unread += u32::from(stamps);
            let sent = match &err {
                Some(e) => Err(icmp::local_error_kind(e.raw_os_error().unwrap_or(0), false)),
                None if ok => Ok(()),
                None => Err(ErrorKind::SendOther),
            };
            match self
                .engine
                .commit_send_timed(&p, tx, span_ns, stamps, sent, &mut self.outputs)
            {
                SendOutcome::Failed {
                    consecutive: 1,
                    seq_exhausted,
                } => {
                    let label = self.engine.label(p.host).unwrap_or("?");
                    match (&err, seq_exhausted) {
                        (Some(e), _) => warn!(
                            "{label}: sending to {} failed: {e} (counting errors until it recovers)",
                            p.addr
                        ),
                        (None, true) => warn!("{label}: sequence space full, send refused"),
                        (None, false) => warn!("{label}: no socket for {}", p.addr),
                    }
                }
                SendOutcome::Sent { recovered_after } if recovered_after > 0 => {
                    let label = self.engine.label(p.host).unwrap_or("?");
                    info!("{label}: sending works again after {recovered_after} errors");
                }
                _ => {}
            }
        }
        if sent_any {
            // The receive thread sleeps until the next round's replies are due.
            let next = self.engine.next_send_ns().unwrap_or(0);
            self.queue
                .note_round_end(next, next.saturating_sub(now.mono_ns));
        }
    }

    /// Hands the transmit stamps queued on the send sockets' error queues to the engine,
    /// up to [`RecvBatch::CAPACITY`](crate::sock::RecvBatch::CAPACITY) per `recvmmsg`:
    /// as many as stamped sends were not matched with one yet (so the usual read ends
    /// without the call that finds the queue empty), fewer when some are not there yet
    /// (they are looked for at the next call). Never blocks.
    pub(super) fn read_tx_stamps(&mut self, now: Now) {
        self.stamps_unread = 0;
        let Daemon {
            sockets,
            stamps_due,
            stamp_batch,
            engine,
            outputs,
            ..
        } = self;
        for s in sockets.iter().flatten() {
            let due = &mut stamps_due[s.family().index()];
            while *due > 0 {
                let want = *due as usize;
                let read = s.recv_errors(stamp_batch, want, |msg, kernel_real_ns| {
                    let src = match msg {
                        Message::TxStamp { .. } => {
                            *due = due.saturating_sub(1);
                            s.family().unspecified()
                        }
                        Message::Error { orig_dst, .. } => orig_dst,
                        _ => return,
                    };
                    let r = Reply {
                        family: s.family(),
                        src,
                        msg,
                        kernel_real_ns,
                        rx_stamp: RxStamp::Kernel,
                        batched: false,
                        user: now,
                    };
                    engine.on_reply(&r, outputs);
                });
                // The rest is not there yet (or the read failed): the next call.
                if !matches!(read, Ok(n) if n >= want.min(RecvBatch::CAPACITY)) {
                    break;
                }
            }
        }
    }

    /// Whether the transmit stamps are to be read now: replies are about to be handed
    /// over (each must find its request's stamp applied) or a request may be declared
    /// lost (its deadline counts from the stamp); otherwise they wait on the error queue,
    /// so one call reads a whole window's stamps.
    pub(super) fn stamps_wanted(&self, expiry_due: bool) -> bool {
        (expiry_due || !self.replies.is_empty()) && self.stamps_due.iter().any(|&d| d > 0)
    }
}
