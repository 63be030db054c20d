//! The live-stream viewer: a sans-IO core ([`LiveClient`]) and a blocking wrapper over a
//! std `UdpSocket` ([`UdpLiveClient`]).

use super::wire::{self, Rd, Rng};
use super::{
    HEARTBEAT_INTERVAL_US, HostMeta, LiveError, MAX_RESEND_RANGE, MIN_SUBSCRIBE_LEN, RECV_BUFFER,
    SUBSCRIPTION_TIMEOUT_US, TimerClock,
};
use crate::codec::{FrameDecoder, QFrame};
use crate::events::ContextEvent;
use crate::frame::{MAX_PERIOD_US, MIN_PERIOD_US};
use crate::quantizer::Quantizer;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// A missing datagram is asked for again after this long without it (200 ms).
pub const RESEND_TIMEOUT_US: u64 = 200_000;
/// After this many unanswered resend requests a missing datagram is declared lost.
pub const RESEND_ATTEMPTS: u32 = 3;
/// Most out-of-order datagrams buffered while waiting for a missing one.
pub const REORDER_LIMIT: usize = 2048;
/// Most missing ranges asked for in one round of resend requests.
const RESEND_RANGES: usize = 8;
/// Context events remembered to drop those delivered again (a new subscription's prefill
/// repeats the server's recent events): as many as the server keeps.
pub const EVENT_MEMORY: usize = super::EVENT_RING_EVENTS;
/// Sequence numbers further than this ahead of the next expected one are refused.
const SEQ_WINDOW: u64 = 1 << 20;

/// Viewer configuration.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The daemon's live address.
    pub server: SocketAddr,
    /// Shared secret (must match the daemon's when it has one).
    pub secret: Option<[u8; 32]>,
    /// Host labels to receive; `None` (or empty) for all hosts.
    pub filter: Option<Vec<String>>,
    /// Seconds of history to prefill on subscribe.
    pub prefill_s: u32,
}

impl ClientConfig {
    /// All hosts from `server`, no prefill, no secret.
    pub fn new(server: SocketAddr) -> Self {
        Self {
            server,
            secret: None,
            filter: None,
            prefill_s: 0,
        }
    }
}

/// What a viewer learns from the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveEvent {
    /// The first subscription was accepted.
    Subscribed,
    /// The subscription was lost (server restart, expiry, long silence) and set up again;
    /// the prefill asked for covers the time since the last frame received, and frames
    /// already seen are not delivered twice.
    Reconnected,
    /// The server refused the subscription (e.g. too many subscribers); the client
    /// retries later.
    Refused,
    /// Metadata of a host (new, or changed).
    Host {
        /// Host index.
        host: u32,
        /// Its metadata.
        meta: HostMeta,
    },
    /// A host is no longer streamed.
    HostRemoved {
        /// Host index.
        host: u32,
    },
    /// A frame, delivered per host in time order.
    Frame {
        /// Host index.
        host: u32,
        /// The frame.
        frame: QFrame,
    },
    /// A context event of the daemon's machine (a link down, a route change, a suspend,
    /// the daemon reloading...; [`crate::events`]), new or from the prefill, each
    /// delivered once (also across reconnections; see [`EVENT_MEMORY`]).
    Context {
        /// The event.
        event: ContextEvent,
    },
    /// Frames of `host` between `from_us` and `to_us` were lost for good.
    Gap {
        /// Host index.
        host: u32,
        /// End of the last frame received before the gap.
        from_us: u64,
        /// Start of the first frame received after it.
        to_us: u64,
        /// Number of frames lost (exact when the server numbered them, otherwise the
        /// span divided by the period).
        frames: u64,
    },
}

/// Counters of a [`LiveClient`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Datagrams that could not be parsed, dropped.
    pub malformed: u64,
    /// Datagrams of an unknown type or version, ignored.
    pub unknown_types: u64,
    /// Datagrams from another address or for another token, ignored.
    pub foreign: u64,
    /// Sequenced datagrams received twice.
    pub duplicates: u64,
    /// Resend requests sent (ranges).
    pub resend_requests: u64,
    /// Sequenced datagrams declared lost.
    pub lost_datagrams: u64,
    /// Gap events emitted.
    pub gaps: u64,
    /// Frames delivered.
    pub frames: u64,
    /// Frames dropped: unknown host, already delivered, or undecodable.
    pub frames_dropped: u64,
    /// Subscriptions set up again.
    pub reconnects: u64,
    /// Context events delivered.
    pub events: u64,
    /// Context events received again (a new subscription's prefill), not delivered.
    pub event_duplicates: u64,
    /// Context events that could not be decoded, skipped (see
    /// [`LiveClient::last_bad_event`]).
    pub bad_events: u64,
}

struct HostState {
    meta: HostMeta,
    code_limit: u32,
    last_end: Option<u64>,
    expected_no: Option<u64>,
    loss: bool,
}

/// The sans-IO viewer. Feed it datagrams from the server with
/// [`LiveClient::handle_datagram`], send what [`LiveClient::poll_transmit`] gives to
/// [`ClientConfig::server`], wake up at [`LiveClient::next_deadline`], and drain
/// [`LiveClient::poll_event`].
pub struct LiveClient {
    /// Timers (subscribe retries, heartbeats, resends, silence) run on it, so a wall-clock
    /// step neither stalls nor floods them.
    clock: TimerClock,
    cfg: ClientConfig,
    rng: Rng,
    client_id: u64,
    token: Option<u64>,
    subscribed_once: bool,
    cookie: Option<[u8; wire::COOKIE_LEN]>,
    next_sub_at: u64,
    sub_attempts: u32,
    expected: u64,
    highest: Option<u64>,
    reorder: BTreeMap<u64, Vec<u8>>,
    skip_to: u64,
    hole_head: Option<u64>,
    hole_attempts: u32,
    next_resend_at: u64,
    last_rx: u64,
    next_hb: u64,
    need_meta: bool,
    hosts: HashMap<u32, HostState>,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<LiveEvent>,
    stats: ClientStats,
    q: QFrame,
    /// The last context events delivered, newest last (at most [`EVENT_MEMORY`]).
    recent_events: VecDeque<ContextEvent>,
    /// Why the last undecodable context event was skipped.
    last_bad_event: Option<String>,
}

impl LiveClient {
    /// A client that will subscribe at `now_us` (its first `poll_transmit`).
    pub fn new(cfg: ClientConfig, now_us: u64) -> Result<Self, LiveError> {
        let mut rng = Rng::from_os().map_err(|e| LiveError::Random(e.to_string()))?;
        let client_id = rng.u64();
        let mut clock = TimerClock::default();
        let now_us = clock.tick(now_us);
        Ok(Self {
            clock,
            cfg,
            rng,
            client_id,
            token: None,
            subscribed_once: false,
            cookie: None,
            next_sub_at: now_us,
            sub_attempts: 0,
            expected: 0,
            highest: None,
            reorder: BTreeMap::new(),
            skip_to: 0,
            hole_head: None,
            hole_attempts: 0,
            next_resend_at: 0,
            last_rx: now_us,
            next_hb: now_us,
            need_meta: false,
            hosts: HashMap::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            stats: ClientStats::default(),
            q: QFrame::default(),
            recent_events: VecDeque::new(),
            last_bad_event: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> ClientStats {
        self.stats
    }

    /// True while a subscription is established.
    pub fn is_subscribed(&self) -> bool {
        self.token.is_some()
    }

    /// Metadata of a host announced by the server.
    pub fn host(&self, host: u32) -> Option<&HostMeta> {
        self.hosts.get(&host).map(|h| &h.meta)
    }

    /// Why the last context event that could not be decoded was skipped: the datagram's
    /// sequence number, the event's position and offset, and what was wrong.
    pub fn last_bad_event(&self) -> Option<&str> {
        self.last_bad_event.as_deref()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<LiveEvent> {
        self.events.pop_front()
    }

    /// Queues an `UNSUBSCRIBE` (sent by the next `poll_transmit`) and forgets the
    /// subscription; the client will not subscribe again until [`LiveClient::resubscribe`].
    pub fn close(&mut self) {
        if let Some(token) = self.token.take() {
            let mut m = Vec::new();
            wire::write_control(
                &mut m,
                wire::T_UNSUBSCRIBE,
                token,
                0,
                0,
                self.cfg.secret.as_ref(),
            );
            self.out.push_back(m);
        }
        self.next_sub_at = u64::MAX;
    }

    /// Starts a new subscription at `now_us` (after [`LiveClient::close`], or to force
    /// one).
    pub fn resubscribe(&mut self, now_us: u64) {
        let now = self.clock.tick(now_us);
        self.restart(now);
    }

    /// [`LiveClient::resubscribe`] at `now` on the timer clock.
    fn restart(&mut self, now_us: u64) {
        self.token = None;
        self.cookie = None;
        self.sub_attempts = 0;
        self.next_sub_at = now_us;
    }

    /// When [`LiveClient::poll_transmit`] has something to do next (µs); at or before now
    /// means now.
    pub fn next_deadline(&self) -> u64 {
        self.clock.to_wall(self.next_timer_deadline())
    }

    /// [`LiveClient::next_deadline`] on the timer clock.
    fn next_timer_deadline(&self) -> u64 {
        if !self.out.is_empty() {
            return 0;
        }
        match self.token {
            None => self.next_sub_at,
            Some(_) => {
                let mut d = self.next_hb.min(self.last_rx + SUBSCRIPTION_TIMEOUT_US);
                if self.hole_head.is_some() {
                    d = d.min(self.next_resend_at);
                }
                d
            }
        }
    }

    /// The next datagram for the server, written into `out`; false when none is due.
    pub fn poll_transmit(&mut self, now_us: u64, out: &mut Vec<u8>) -> bool {
        let now_us = self.clock.tick(now_us);
        if let Some(m) = self.out.pop_front() {
            out.clear();
            out.extend_from_slice(&m);
            return true;
        }
        if let Some(token) = self.token {
            if now_us.saturating_sub(self.last_rx) >= SUBSCRIPTION_TIMEOUT_US {
                // The server went silent: subscribe again.
                self.restart(now_us);
            } else {
                if self.hole_head.is_some() && now_us >= self.next_resend_at {
                    self.request_resends(now_us, token);
                    if let Some(m) = self.out.pop_front() {
                        out.clear();
                        out.extend_from_slice(&m);
                        return true;
                    }
                }
                if now_us >= self.next_hb {
                    self.next_hb = now_us + HEARTBEAT_INTERVAL_US;
                    wire::write_control(
                        out,
                        wire::T_HEARTBEAT,
                        token,
                        self.clock.wall(),
                        u64::from(self.need_meta),
                        self.cfg.secret.as_ref(),
                    );
                    self.need_meta = false;
                    return true;
                }
                return false;
            }
        }
        if now_us < self.next_sub_at {
            return false;
        }
        self.sub_attempts += 1;
        if self.sub_attempts > 3 {
            // The cookie may have expired; start the round trip again.
            self.cookie = None;
            self.sub_attempts = 1;
        }
        self.next_sub_at = now_us + (500_000u64 << self.sub_attempts.min(3));
        self.write_subscribe(out);
        true
    }

    /// Writes a subscribe stamped with the wall clock (the server checks the timestamp
    /// and counts prefill from it).
    fn write_subscribe(&mut self, out: &mut Vec<u8>) {
        let now_us = self.clock.wall();
        let mut nonce = [0u8; wire::NONCE_LEN];
        nonce.copy_from_slice(&self.rng.bytes32()[..wire::NONCE_LEN]);
        // On a reconnect, ask for everything since the oldest host's last frame.
        let mut prefill = self.cfg.prefill_s;
        if let Some(oldest) = self.hosts.values().filter_map(|h| h.last_end).min() {
            let since = now_us.saturating_sub(oldest) / 1_000_000 + 1;
            prefill = u32::try_from(since).unwrap_or(u32::MAX);
        }
        wire::write_subscribe(
            out,
            self.client_id,
            now_us,
            &nonce,
            prefill,
            self.cfg.filter.as_deref(),
            self.cookie.as_ref(),
            self.cfg.secret.as_ref(),
            MIN_SUBSCRIBE_LEN,
        );
    }

    fn request_resends(&mut self, now_us: u64, token: u64) {
        let Some(high) = self.highest else {
            self.hole_head = None;
            return;
        };
        if self.hole_attempts >= RESEND_ATTEMPTS {
            // Give up on the head run of missing datagrams.
            let end = self
                .reorder
                .range(self.expected..)
                .next()
                .map_or(high + 1, |(&k, _)| k);
            self.skip_to = self.skip_to.max(end);
            self.process(now_us);
            return;
        }
        self.hole_attempts += 1;
        self.next_resend_at = now_us + RESEND_TIMEOUT_US;
        let mut s = self.expected;
        let mut ranges = 0;
        while s <= high && ranges < RESEND_RANGES {
            if self.reorder.contains_key(&s) {
                s += 1;
                continue;
            }
            let end = self
                .reorder
                .range(s..)
                .next()
                .map_or(high + 1, |(&k, _)| k)
                .min(s + MAX_RESEND_RANGE);
            let mut m = Vec::new();
            wire::write_control(
                &mut m,
                wire::T_RESEND,
                token,
                s,
                end - s,
                self.cfg.secret.as_ref(),
            );
            self.out.push_back(m);
            self.stats.resend_requests += 1;
            ranges += 1;
            s = end;
        }
    }

    /// Handles a datagram from `src` (anything not from the server is ignored). Never
    /// panics; bad datagrams are counted.
    pub fn handle_datagram(&mut self, src: SocketAddr, bytes: &[u8], now_us: u64) {
        self.stats.datagrams_in += 1;
        if src != self.cfg.server {
            self.stats.foreign += 1;
            return;
        }
        let now = self.clock.tick(now_us);
        if self.handle(bytes, now).is_err() {
            self.stats.malformed += 1;
        }
    }

    fn handle(&mut self, bytes: &[u8], now: u64) -> Result<(), wire::Malformed> {
        let (v, t, n, mut r) = wire::head(bytes)?;
        if v != wire::VERSION {
            self.stats.unknown_types += 1;
            return Ok(());
        }
        match t {
            wire::T_COOKIE => {
                let id = r.u64()?;
                let c: [u8; wire::COOKIE_LEN] = r.bin()?.try_into().map_err(|_| wire::Malformed)?;
                if id != self.client_id || self.token.is_some() {
                    self.stats.foreign += 1;
                    return Ok(());
                }
                self.cookie = Some(c);
                // Answer at once.
                let mut m = Vec::new();
                self.write_subscribe(&mut m);
                self.out.push_back(m);
                self.next_sub_at = now + 1_000_000;
            }
            wire::T_WELCOME => {
                let id = r.u64()?;
                let token = r.u64()?;
                if id != self.client_id || self.token.is_some() {
                    self.stats.foreign += 1;
                    return Ok(());
                }
                self.token = Some(token);
                self.cookie = None;
                self.sub_attempts = 0;
                self.expected = 0;
                self.highest = None;
                self.reorder.clear();
                self.skip_to = 0;
                self.hole_head = None;
                self.last_rx = now;
                self.next_hb = now + HEARTBEAT_INTERVAL_US;
                for h in self.hosts.values_mut() {
                    h.expected_no = None;
                    h.loss = true;
                }
                if self.subscribed_once {
                    self.stats.reconnects += 1;
                    self.events.push_back(LiveEvent::Reconnected);
                } else {
                    self.subscribed_once = true;
                    self.events.push_back(LiveEvent::Subscribed);
                }
            }
            wire::T_REFUSED => {
                let id = r.u64()?;
                if id == self.client_id && self.token.is_none() {
                    self.events.push_back(LiveEvent::Refused);
                    self.next_sub_at = now + HEARTBEAT_INTERVAL_US;
                    self.cookie = None;
                }
            }
            wire::T_UNKNOWN | wire::T_ACK | wire::T_UNAVAILABLE => {
                let token = r.u64()?;
                if Some(token) != self.token {
                    self.stats.foreign += 1;
                    return Ok(());
                }
                match t {
                    wire::T_UNKNOWN => self.restart(now),
                    wire::T_ACK => {
                        self.last_rx = now;
                        let next = r.u64()?;
                        if next > self.expected && next - self.expected <= SEQ_WINDOW {
                            self.highest = Some(self.highest.map_or(next - 1, |h| h.max(next - 1)));
                            self.process(now);
                        }
                    }
                    _ => {
                        let from = r.u64()?;
                        let count = r.u64()?;
                        if from <= self.expected + SEQ_WINDOW && count <= SEQ_WINDOW {
                            self.skip_to = self.skip_to.max(from + count);
                            self.process(now);
                        }
                    }
                }
            }
            wire::T_HOST | wire::T_HOST_GONE | wire::T_FRAMES | wire::T_EVENTS => {
                let token = r.u64()?;
                if Some(token) != self.token {
                    self.stats.foreign += 1;
                    return Ok(());
                }
                let seq = r.u64()?;
                self.last_rx = now;
                if seq < self.expected || self.reorder.contains_key(&seq) {
                    self.stats.duplicates += 1;
                    return Ok(());
                }
                if seq - self.expected > SEQ_WINDOW {
                    return Err(wire::Malformed);
                }
                self.highest = Some(self.highest.map_or(seq, |h| h.max(seq)));
                if seq == self.expected {
                    if self.apply(t, seq, r, n).is_err() {
                        self.stats.malformed += 1;
                    }
                    self.expected += 1;
                } else {
                    if self.reorder.len() >= REORDER_LIMIT {
                        let end = self.reorder.keys().next().copied().unwrap_or(seq);
                        self.skip_to = self.skip_to.max(end);
                    }
                    self.reorder.insert(seq, bytes.to_vec());
                }
                self.process(now);
            }
            _ => self.stats.unknown_types += 1,
        }
        Ok(())
    }

    /// Delivers buffered datagrams in order and skips those declared lost.
    fn process(&mut self, now: u64) {
        loop {
            if let Some(d) = self.reorder.remove(&self.expected) {
                let seq = self.expected;
                if let Ok((_, t, n, mut r)) = wire::head(&d)
                    && r.u64().is_ok()
                    && r.u64().is_ok()
                {
                    if self.apply(t, seq, r, n).is_err() {
                        self.stats.malformed += 1;
                    }
                } else {
                    self.stats.malformed += 1;
                }
                self.expected += 1;
            } else if self.expected < self.skip_to {
                self.expected += 1;
                self.stats.lost_datagrams += 1;
                for h in self.hosts.values_mut() {
                    h.loss = true;
                }
            } else {
                break;
            }
        }
        let hole = self.highest.is_some_and(|h| self.expected <= h);
        if !hole {
            self.hole_head = None;
        } else if self.hole_head != Some(self.expected) {
            self.hole_head = Some(self.expected);
            self.hole_attempts = 0;
            self.next_resend_at = now;
        }
    }

    /// Delivers a context event unless it was delivered before (see [`EVENT_MEMORY`]).
    fn deliver_event(&mut self, event: ContextEvent) {
        if self.recent_events.contains(&event) {
            self.stats.event_duplicates += 1;
            return;
        }
        if self.recent_events.len() >= EVENT_MEMORY {
            self.recent_events.pop_front();
        }
        self.recent_events.push_back(event.clone());
        self.stats.events += 1;
        self.events.push_back(LiveEvent::Context { event });
    }

    /// Applies sequenced message `seq`; `r` is positioned after the sequence number and
    /// `n` counts the elements after version and type.
    fn apply(&mut self, t: u64, seq: u64, mut r: Rd<'_>, n: usize) -> Result<(), wire::Malformed> {
        match t {
            wire::T_HOST => {
                if n < 8 {
                    return Err(wire::Malformed);
                }
                let host = r.u32()?;
                let label = r.str()?.to_owned();
                let address: IpAddr = r.str()?.parse().map_err(|_| wire::Malformed)?;
                let name = if r.nil()? {
                    None
                } else {
                    Some(r.str()?.to_owned())
                };
                let period_us = r.u32()?;
                let precision = r.f64()?;
                if !(MIN_PERIOD_US..=MAX_PERIOD_US).contains(&period_us) {
                    return Err(wire::Malformed);
                }
                let q = Quantizer::new(precision).map_err(|_| wire::Malformed)?;
                let meta = HostMeta {
                    label,
                    address,
                    name,
                    period_us,
                    precision,
                };
                let h = self.hosts.entry(host).or_insert_with(|| HostState {
                    meta: meta.clone(),
                    code_limit: q.code_count(),
                    last_end: None,
                    expected_no: None,
                    loss: false,
                });
                h.meta = meta.clone();
                h.code_limit = q.code_count();
                self.events.push_back(LiveEvent::Host { host, meta });
            }
            wire::T_HOST_GONE => {
                let host = r.u32()?;
                if self.hosts.remove(&host).is_some() {
                    self.events.push_back(LiveEvent::HostRemoved { host });
                }
            }
            wire::T_EVENTS => {
                if n < 3 {
                    return Err(wire::Malformed);
                }
                let count = r.array_len()?;
                for i in 0..count {
                    let at = r.pos();
                    match ContextEvent::decode(r.rest()) {
                        Ok((event, len)) => {
                            r.advance(len)?;
                            self.deliver_event(event);
                        }
                        Err(e) => {
                            self.stats.bad_events += 1;
                            self.last_bad_event = Some(format!(
                                "EVENTS datagram {seq}, event {i} at offset {at}: {e}"
                            ));
                            // Skip it; an event that is not even one value ends the
                            // datagram.
                            r.skip(wire::MAX_SKIP_DEPTH)?;
                        }
                    }
                }
            }
            _ => {
                if n < 3 {
                    return Err(wire::Malformed);
                }
                let groups = r.array_len()?;
                for _ in 0..groups {
                    let glen = r.array_len()?;
                    if glen < 4 {
                        return Err(wire::Malformed);
                    }
                    let host = r.u32()?;
                    let first_no = if r.nil()? { None } else { Some(r.u64()?) };
                    let base = r.u64()?;
                    let bytes = r.bin()?;
                    // Later versions may append fields to a group.
                    for _ in 4..glen {
                        r.skip(wire::MAX_SKIP_DEPTH)?;
                    }
                    self.apply_group(host, first_no, base, bytes);
                }
            }
        }
        Ok(())
    }

    fn apply_group(&mut self, host: u32, first_no: Option<u64>, base: u64, bytes: &[u8]) {
        let Some(h) = self.hosts.get_mut(&host) else {
            self.stats.frames_dropped += 1;
            self.need_meta = true;
            return;
        };
        let period = h.meta.period_us;
        let mut dec = FrameDecoder::new(base, period, h.code_limit);
        let mut pos = 0;
        let mut i = 0u64;
        while pos < bytes.len() {
            let q = &mut self.q;
            match dec.decode(&bytes[pos..], q) {
                Ok(used) => pos += used,
                Err(_) => {
                    self.stats.malformed += 1;
                    return;
                }
            }
            let no = first_no.map(|n| n.saturating_add(i));
            i += 1;
            // A frame already delivered: by number when both are known (a frame may start
            // before the previous one when the server's wall clock stepped back), else by
            // time (disk history, the first frames after a subscribe).
            let duplicate = match (no, h.expected_no) {
                (Some(n), Some(e)) => n < e,
                _ => h.last_end.is_some_and(|e| q.start_us < e),
            };
            if duplicate {
                self.stats.frames_dropped += 1;
                continue;
            }
            let mut gap = None;
            if let (Some(n), Some(e)) = (no, h.expected_no) {
                if n > e {
                    gap = Some(n - e);
                }
            } else if h.loss
                && let Some(e) = h.last_end
                && q.start_us > e
            {
                gap = Some(((q.start_us - e) / u64::from(period.max(1))).max(1));
            }
            if let Some(frames) = gap {
                self.stats.gaps += 1;
                self.events.push_back(LiveEvent::Gap {
                    host,
                    from_us: h.last_end.unwrap_or(q.start_us),
                    to_us: q.start_us,
                    frames,
                });
            }
            h.loss = false;
            h.expected_no = no.map(|n| n.saturating_add(1));
            h.last_end = Some(q.end_us());
            self.stats.frames += 1;
            self.events.push_back(LiveEvent::Frame {
                host,
                frame: q.clone(),
            });
        }
    }
}

/// A blocking viewer over a std `UdpSocket`, for the CLI (`zzping tail`) and tests. Uses
/// the wall clock.
pub struct UdpLiveClient {
    sock: UdpSocket,
    core: LiveClient,
    rx: Vec<u8>,
    tx: Vec<u8>,
}

impl UdpLiveClient {
    /// Binds an ephemeral local port (of the server's address family) and prepares to
    /// subscribe; nothing is sent until [`UdpLiveClient::next_event`].
    pub fn connect(cfg: ClientConfig) -> Result<Self, LiveError> {
        let local: SocketAddr = if cfg.server.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let sock = UdpSocket::bind(local)?;
        let core = LiveClient::new(cfg, crate::file::wall_clock_us())?;
        Ok(Self {
            sock,
            core,
            rx: vec![0; RECV_BUFFER],
            tx: Vec::with_capacity(1024),
        })
    }

    /// The local address of the socket.
    pub fn local_addr(&self) -> Result<SocketAddr, LiveError> {
        Ok(self.sock.local_addr()?)
    }

    /// The sans-IO core (stats, hosts).
    pub fn client(&self) -> &LiveClient {
        &self.core
    }

    fn flush(&mut self) -> Result<(), LiveError> {
        let now = crate::file::wall_clock_us();
        while self.core.poll_transmit(now, &mut self.tx) {
            match self.sock.send_to(&self.tx, self.core.cfg.server) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::ConnectionRefused
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Runs the protocol until an event is available or `timeout` passes.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<LiveEvent>, LiveError> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(e) = self.core.poll_event() {
                return Ok(Some(e));
            }
            self.flush()?;
            let now_i = Instant::now();
            if now_i >= end {
                return Ok(None);
            }
            let now = crate::file::wall_clock_us();
            let until_deadline =
                Duration::from_micros(self.core.next_deadline().saturating_sub(now).max(1_000));
            let wait = (end - now_i)
                .min(until_deadline)
                .max(Duration::from_millis(1));
            self.sock.set_read_timeout(Some(wait))?;
            match self.sock.recv_from(&mut self.rx) {
                Ok((n, src)) => {
                    let now = crate::file::wall_clock_us();
                    self.core.handle_datagram(src, &self.rx[..n], now);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::ConnectionRefused
                            | std::io::ErrorKind::ConnectionReset
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Sends an `UNSUBSCRIBE` and stops.
    pub fn close(&mut self) -> Result<(), LiveError> {
        self.core.close();
        self.flush()
    }
}

impl Drop for UdpLiveClient {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;
    use crate::live::{LiveConfig, LiveServer};
    use proptest::prelude::*;
    use std::sync::OnceLock;

    const T: u64 = 1_795_000_000_000_000;

    /// A subscribed client's identity and every datagram the server sent it.
    fn corpus() -> &'static (u64, u64, Vec<Vec<u8>>) {
        static C: OnceLock<(u64, u64, Vec<Vec<u8>>)> = OnceLock::new();
        C.get_or_init(|| {
            let server: SocketAddr = "127.0.0.1:7878".parse().unwrap();
            let me: SocketAddr = "127.0.0.1:5000".parse().unwrap();
            let mut s = LiveServer::new(LiveConfig::default()).unwrap();
            for h in 1..=2u32 {
                let meta = HostMeta {
                    label: format!("h{h}"),
                    address: "::1".parse().unwrap(),
                    name: None,
                    period_us: 100_000,
                    precision: 0.01,
                };
                s.add_host(h, meta).unwrap();
            }
            let mut c = LiveClient::new(ClientConfig::new(server), T).unwrap();
            let (mut out, mut tx) = (vec![0u8; RECV_BUFFER], Vec::new());
            let mut log = Vec::new();
            let mut now = T;
            for k in 0..200u64 {
                now += 10_000;
                if k % 50 == 25 {
                    // Context events go through the same sequence.
                    let e = crate::events::ContextEvent::link(
                        now,
                        crate::events::EventKind::LinkDown,
                        "wlan0",
                    );
                    s.on_event(&e, now);
                }
                if k % 10 == 5 {
                    for h in 1..=2u32 {
                        let mut f = Frame::new(T + k * 10_000, 100_000);
                        f.sent = 5;
                        f.lost = (k % 3) as u32;
                        f.rtts_us
                            .extend((0..(k % 7) as u32).map(|i| 300 + i * 977 + h));
                        s.on_frame(h, &f, now);
                    }
                }
                while c.poll_transmit(now, &mut tx) {
                    s.on_datagram(me, &tx, now);
                }
                while let Some((_, n)) = s.poll_transmit(now, &mut out) {
                    log.push(out[..n].to_vec());
                    c.handle_datagram(server, &out[..n], now);
                }
            }
            assert!(c.stats().frames > 20);
            assert_eq!(c.stats().events, 4);
            (c.client_id, c.token.unwrap(), log)
        })
    }

    /// An `EVENTS` datagram of token 7, `seq`, with the given event maps.
    fn events_datagram(seq: u64, maps: &[&[u8]]) -> Vec<u8> {
        let mut d = Vec::new();
        wire::w_head(&mut d, 5, wire::T_EVENTS);
        wire::w_uint(&mut d, 7);
        wire::w_uint(&mut d, seq);
        d.extend_from_slice(&[0xdc, 0, maps.len() as u8]);
        for m in maps {
            d.extend_from_slice(m);
        }
        d
    }

    fn subscribed_client() -> LiveClient {
        let server: SocketAddr = "127.0.0.1:7878".parse().unwrap();
        let mut c = LiveClient::new(ClientConfig::new(server), T).unwrap();
        c.token = Some(7);
        c
    }

    fn context_events(c: &mut LiveClient) -> Vec<ContextEvent> {
        std::iter::from_fn(|| c.poll_event())
            .filter_map(|e| match e {
                LiveEvent::Context { event } => Some(event),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_bad_event_is_named_and_skipped_and_the_good_ones_kept() {
        use crate::events::EventKind;
        let server: SocketAddr = "127.0.0.1:7878".parse().unwrap();
        let good = ContextEvent::link(T, EventKind::LinkDown, "wlan0");
        let (mut g, mut bad) = (Vec::new(), Vec::new());
        good.encode(&mut g);
        // A link_down without its interface.
        ContextEvent::new(T, EventKind::LinkDown).encode(&mut bad);
        let mut c = subscribed_client();
        c.handle_datagram(server, &events_datagram(0, &[&bad, &g]), T);
        assert_eq!(context_events(&mut c), [good]);
        assert_eq!((c.stats().bad_events, c.stats().malformed), (1, 0));
        let why = c.last_bad_event().unwrap();
        assert!(
            why.starts_with("EVENTS datagram 0, event 0 at offset 8:")
                && why.contains("needs an interface"),
            "{why}"
        );
        // Not a map at all (a bin): skipped as a value, the next event still read.
        let mut other = Vec::new();
        ContextEvent::suspend(T, 5).encode(&mut other);
        c.handle_datagram(server, &events_datagram(1, &[&[0xc4, 1, 0], &other]), T);
        assert_eq!(context_events(&mut c).len(), 1);
        assert_eq!(c.stats().bad_events, 2);
    }

    #[test]
    fn every_truncation_of_an_events_datagram_is_counted_without_a_panic() {
        use crate::events::EventKind;
        let server: SocketAddr = "127.0.0.1:7878".parse().unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        ContextEvent::route(
            T,
            6,
            Some("2001:db8::1".parse().unwrap()),
            Some("eth0"),
            false,
        )
        .encode(&mut a);
        ContextEvent::link(T, EventKind::CarrierOff, "eth0").encode(&mut b);
        let d = events_datagram(0, &[&a, &b]);
        for cut in 0..d.len() {
            let mut c = subscribed_client();
            c.handle_datagram(server, &d[..cut], T);
            let got = context_events(&mut c);
            let st = c.stats();
            // The first event whole, at most; something was counted as wrong.
            assert!(got.len() <= 1, "cut at {cut}: {got:?}");
            assert!(st.malformed + st.bad_events >= 1, "cut at {cut}: {st:?}");
        }
        let mut c = subscribed_client();
        c.handle_datagram(server, &d, T);
        assert_eq!(context_events(&mut c).len(), 2);
    }

    fn mutate(msg: &[u8], ops: &[(u8, u16, u8)]) -> Vec<u8> {
        let mut m = msg.to_vec();
        for &(op, at, val) in ops {
            let i = usize::from(at) % (m.len() + 1);
            match op % 5 {
                0 if i < m.len() => m[i] = val,
                1 if i < m.len() => m[i] ^= 1 << (val % 8),
                2 => m.truncate(i),
                3 => m.insert(i, val),
                _ if i < m.len() => {
                    m.remove(i);
                }
                _ => {}
            }
        }
        m
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn subscribed_client_survives_mutated_stream(
            at in any::<prop::sample::Index>(),
            ops in prop::collection::vec((any::<u8>(), any::<u16>(), any::<u8>()), 1..4),
            junk in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let (id, token, msgs) = corpus();
            let server: SocketAddr = "127.0.0.1:7878".parse().unwrap();
            let mut c = LiveClient::new(ClientConfig::new(server), T).unwrap();
            c.client_id = *id;
            c.token = Some(*token);
            let cut = at.index(msgs.len());
            let mut tx = Vec::new();
            for (k, m) in msgs.iter().enumerate() {
                if k == cut {
                    c.handle_datagram(server, &mutate(m, &ops), T);
                    c.handle_datagram(server, &junk, T);
                } else {
                    c.handle_datagram(server, m, T);
                }
                while c.poll_event().is_some() {}
                while c.poll_transmit(T + 300_000, &mut tx) {}
            }
        }
    }
}
