//! Datagrams from viewers: subscribes (cookie, replay cache, quota), controls (acks,
//! resends, unsubscribes) and the small control replies they cause.

use super::*;

impl LiveServer {
    /// Handles one datagram from `src`. Never panics; bad datagrams are counted. History
    /// a new subscription asks for is read by [`LiveServer::pump_history`], not here.
    pub fn on_datagram(&mut self, src: SocketAddr, bytes: &[u8], now_us: u64) {
        let now = self.clock.tick(now_us);
        self.stats.datagrams_in += 1;
        let Ok((v, t, n, r)) = wire::head(bytes) else {
            self.stats.malformed += 1;
            return;
        };
        if v != wire::VERSION {
            self.stats.bad_version += 1;
            return;
        }
        match t {
            wire::T_SUBSCRIBE => self.on_subscribe(src, bytes, r, n, now_us, now),
            wire::T_HEARTBEAT | wire::T_RESEND | wire::T_UNSUBSCRIBE => {
                self.on_control(src, bytes, t, r, n, now)
            }
            _ => self.stats.unknown_types += 1,
        }
    }

    pub(super) fn push_ctrl(&mut self, addr: SocketAddr, msg: &[u8], limit: usize) {
        if msg.len() > CTRL_MAX || msg.len() > limit {
            return;
        }
        if self.ctrl.len() >= CTRL_QUEUE {
            self.stats.ctrl_dropped += 1;
            return;
        }
        let mut c = Ctrl {
            addr,
            len: msg.len(),
            buf: [0; CTRL_MAX],
        };
        c.buf[..msg.len()].copy_from_slice(msg);
        self.ctrl.push_back(c);
    }

    /// `wall`: the wall clock (timestamps, prefill); `now`: the timer clock.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_subscribe(
        &mut self,
        src: SocketAddr,
        bytes: &[u8],
        r: Rd<'_>,
        n: usize,
        wall: u64,
        now: u64,
    ) {
        let Ok(s) = wire::parse_subscribe(r, n) else {
            self.stats.malformed += 1;
            return;
        };
        if bytes.len() < MIN_SUBSCRIBE_LEN {
            self.stats.malformed += 1;
            return;
        }
        if let Some(k) = &self.cfg.secret {
            if !wire::mac_ok(k, &bytes[..s.mac_at], s.mac) {
                self.stats.auth_failures += 1;
                return;
            }
            if s.ts_us.abs_diff(wall) > TIMESTAMP_WINDOW_US {
                self.stats.stale += 1;
                return;
            }
        }
        let bucket = now / COOKIE_BUCKET_US;
        let Some(c) = s.cookie else {
            let cookie = wire::cookie(&self.cookie_key, src, s.client_id, bucket);
            let mut m = [0u8; CTRL_MAX];
            let mut out = Vec::new();
            std::mem::swap(&mut out, &mut self.sc.tmp);
            out.clear();
            wire::w_head(&mut out, 4, wire::T_COOKIE);
            wire::w_uint(&mut out, s.client_id);
            wire::w_bin(&mut out, &cookie);
            let len = out.len().min(CTRL_MAX);
            m[..len].copy_from_slice(&out[..len]);
            std::mem::swap(&mut out, &mut self.sc.tmp);
            self.stats.cookies_sent += 1;
            self.push_ctrl(src, &m[..len], bytes.len());
            return;
        };
        let ok = [bucket, bucket.saturating_sub(1)]
            .iter()
            .any(|&b| wire::cookie(&self.cookie_key, src, s.client_id, b) == c);
        if !ok {
            self.stats.bad_cookies += 1;
            return;
        }
        // Replay protection: a nonce is accepted once.
        match self.nonces.accept(s.nonce, src, now) {
            Ok(()) => {}
            Err(NonceRefused::Replay) => {
                self.stats.replays += 1;
                return;
            }
            Err(NonceRefused::Quota) => {
                self.stats.replay_quota += 1;
                return;
            }
        }
        // A repeated subscribe from the same viewer replaces its subscription.
        if let Some(i) = self
            .subs
            .iter()
            .position(|x| x.addr == src && x.client_id == s.client_id)
        {
            self.end_sub(i);
        }
        let mut msg = std::mem::take(&mut self.sc.tmp);
        msg.clear();
        let pooled = if self.subs.len() < self.cfg.max_subscribers {
            self.pool.pop()
        } else {
            None
        };
        let Some(mut sub) = pooled else {
            self.stats.refused += 1;
            wire::w_head(&mut msg, 4, wire::T_REFUSED);
            wire::w_uint(&mut msg, s.client_id);
            wire::w_uint(&mut msg, 1);
            self.push_ctrl(src, &msg, bytes.len());
            self.sc.tmp = msg;
            return;
        };
        let token = self.rng.u64();
        let prefill_s = s.prefill_s.min(self.cfg.max_prefill_s);
        let from = wall.saturating_sub(u64::from(prefill_s) * 1_000_000);
        sub.addr = src;
        sub.client_id = s.client_id;
        sub.token = token;
        sub.filter.set(s.filter);
        sub.last_heard = now;
        sub.rtx.reset();
        sub.sent_upto = 0;
        sub.cursors.clear();
        sub.cursors.resize(self.hosts.len(), Cur::default());
        // Context events handed over within the prefill come first; then new ones.
        sub.ev_next = if prefill_s == 0 {
            self.events.next_key()
        } else {
            self.events.first_with_meta_at_least(from)
        };
        sub.gone.clear();
        sub.resend.clear();
        sub.pending_since = None;
        sub.pending_bytes = 0;
        sub.backlog = true;
        sub.tat = now;
        sub.rr = 0;
        for (slot, h) in self.hosts.iter().enumerate() {
            let Some(h) = h else { continue };
            if !sub.wants(&h.meta.label) {
                continue;
            }
            let c = &mut sub.cursors[slot];
            c.wanted = true;
            c.needs_meta = true;
            if prefill_s == 0 {
                c.next_no = h.ring.next_key();
            } else {
                c.next_no = h.ring.first_with_meta_at_least(from);
                let ring_start = h.ring.first_meta();
                if ring_start.is_none_or(|rs| from < rs) {
                    c.hist = Some((from, ring_start.unwrap_or(wall)));
                }
            }
        }
        self.subs.push(sub);
        self.stats.subscribed += 1;
        wire::w_head(&mut msg, 6, wire::T_WELCOME);
        wire::w_uint(&mut msg, s.client_id);
        wire::w_uint(&mut msg, token);
        wire::w_uint(&mut msg, wall);
        wire::w_uint(&mut msg, u64::from(prefill_s));
        self.push_ctrl(src, &msg, usize::MAX);
        self.sc.tmp = msg;
    }

    /// Ends subscription `i`; its buffers go back to the pool.
    pub(super) fn end_sub(&mut self, i: usize) {
        let s = self.subs.swap_remove(i);
        self.pool.push(s);
    }

    pub(super) fn on_control(
        &mut self,
        src: SocketAddr,
        bytes: &[u8],
        t: u64,
        r: Rd<'_>,
        n: usize,
        now: u64,
    ) {
        let Ok(c) = wire::parse_control(r, n) else {
            self.stats.malformed += 1;
            return;
        };
        if let Some(k) = &self.cfg.secret
            && !wire::mac_ok(k, &bytes[..c.mac_at], c.mac)
        {
            self.stats.auth_failures += 1;
            return;
        }
        let Some(i) = self
            .subs
            .iter()
            .position(|s| s.token == c.token && s.addr == src)
        else {
            self.stats.unknown_tokens += 1;
            if t == wire::T_HEARTBEAT {
                let mut m = [0u8; 16];
                let mut w = Vec::new();
                std::mem::swap(&mut w, &mut self.sc.tmp);
                w.clear();
                wire::w_head(&mut w, 3, wire::T_UNKNOWN);
                wire::w_uint(&mut w, c.token);
                let len = w.len().min(16);
                m[..len].copy_from_slice(&w[..len]);
                std::mem::swap(&mut w, &mut self.sc.tmp);
                self.push_ctrl(src, &m[..len], bytes.len());
            }
            return;
        };
        let s = &mut self.subs[i];
        s.last_heard = now;
        match t {
            wire::T_HEARTBEAT => {
                if c.b & 1 != 0 {
                    for cur in &mut s.cursors {
                        cur.needs_meta |= cur.wanted;
                    }
                }
                let mut m = [0u8; 32];
                let mut w = Vec::new();
                std::mem::swap(&mut w, &mut self.sc.tmp);
                w.clear();
                wire::w_head(&mut w, 4, wire::T_ACK);
                wire::w_uint(&mut w, c.token);
                wire::w_uint(&mut w, s.sent_upto);
                let len = w.len().min(32);
                m[..len].copy_from_slice(&w[..len]);
                std::mem::swap(&mut w, &mut self.sc.tmp);
                self.push_ctrl(src, &m[..len], usize::MAX);
            }
            wire::T_RESEND => {
                self.stats.resend_requests += c.b.min(MAX_RESEND_RANGE);
                if s.resend.len() < RESEND_QUEUE {
                    s.resend
                        .push_back((c.a, c.a.saturating_add(c.b.min(MAX_RESEND_RANGE))));
                }
            }
            _ => {
                self.end_sub(i);
                self.stats.unsubscribed += 1;
            }
        }
    }
}
