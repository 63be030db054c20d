//! The sans-IO live-stream server. See the parent module and `docs/live-protocol.md`.

use super::TimerClock;
use super::ring::ByteRing;
use super::wire::{self, Rd, Rng};
use super::{
    COOKIE_BUCKET_US, HARD_MAX_DATAGRAM, HostMeta, LiveError, MAX_DATAGRAM, MAX_RESEND_RANGE,
    MIN_SUBSCRIBE_LEN, SUBSCRIPTION_TIMEOUT_US, TIMESTAMP_WINDOW_US,
};
use crate::codec::{FrameDecoder, FrameEncoder, QFrame};
use crate::frame::{Frame, MAX_PERIOD_US, MIN_PERIOD_US};
use crate::quantizer::Quantizer;
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;

/// Most remembered subscribe nonces (replay protection). When it is full, the oldest
/// nonce of the source address holding the most goes first, so a flood from one viewer
/// never locks another out.
pub const REPLAY_CACHE: usize = 4096;
/// Most nonces one source address (IP and port) may have in the replay cache; its further
/// subscribes are refused until they age out. A viewer subscribes once per connection
/// (retrying after 1, 2, 4 s), so 64 in [`REPLAY_HORIZON_US`] is far beyond honest use.
pub const REPLAY_QUOTA_PER_SOURCE: u32 = 64;
/// How long a nonce is remembered (20 s): a subscribe is accepted only with a cookie of
/// the current or the previous [`COOKIE_BUCKET_US`], so a captured one is refused by its
/// cookie after that, without the cache.
pub const REPLAY_HORIZON_US: u64 = 2 * COOKIE_BUCKET_US;
/// Most queued small control replies (cookies, acks...); more are dropped and counted.
const CTRL_QUEUE: usize = 256;
/// Largest control reply.
const CTRL_MAX: usize = 64;
/// Most pending resend ranges per subscription.
const RESEND_QUEUE: usize = 16;
/// History is read only while a subscription has fewer unsent datagrams than this.
const HISTORY_LOW_WATER: u64 = 4;
/// Fewest frames of history a subscription gets in its turn.
const MIN_HISTORY_TURN: usize = 16;

/// How a [`HistorySource::read_frames`] call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryRead {
    /// The budget ran out, or the sink took no more: call again, with `from_us` set to
    /// the end of the last frame taken.
    More,
    /// No more frames in the range.
    Done,
}

/// Where the server gets frames older than its in-memory ring (the daemon reads its
/// frame files; see `docs/live-protocol.md`, "Prefill").
pub trait HistorySource {
    /// Calls `sink` with frames of host `host_index` whose start is in `[from_us, to_us)`,
    /// in ascending start order, until `sink` returns false (that frame was not taken:
    /// the next call offers it again), the range is exhausted ([`HistoryRead::Done`]), or
    /// `*budget` frames were decoded ([`HistoryRead::More`]). Every frame decoded counts,
    /// including those skipped on the way to `from_us`: `*budget` is decreased by them,
    /// so a call costs the pinger's thread (where it runs) a bounded slice whatever the
    /// range. Frames already decoded and kept for other requests cost nothing.
    fn read_frames(
        &mut self,
        host_index: u32,
        from_us: u64,
        to_us: u64,
        budget: &mut usize,
        sink: &mut dyn FnMut(&QFrame) -> bool,
    ) -> HistoryRead;
}

/// A [`HistorySource`] without history: prefill comes from the ring only.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHistory;

impl HistorySource for NoHistory {
    fn read_frames(
        &mut self,
        _: u32,
        _: u64,
        _: u64,
        _: &mut usize,
        _: &mut dyn FnMut(&QFrame) -> bool,
    ) -> HistoryRead {
        HistoryRead::Done
    }
}

/// Server configuration.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// Shared secret. Required to listen on anything but loopback (see
    /// [`check_listen_addr`]); when set, every client message must carry its MAC.
    pub secret: Option<[u8; 32]>,
    /// Seconds of frames kept per host for prefill (default 3600).
    pub ring_seconds: u32,
    /// Byte budget of one host's ring (default 1 MiB); the oldest frames go first when
    /// either limit is reached.
    pub ring_bytes_per_host: usize,
    /// Most concurrent subscriptions (default 32); further subscribes get `REFUSED`.
    pub max_subscribers: usize,
    /// Byte budget of one subscription's retransmit ring (default 256 KiB).
    pub retransmit_bytes: usize,
    /// Longest a closed frame waits to be batched with others (default 50 ms).
    pub batch_us: u64,
    /// Target datagram size (default [`MAX_DATAGRAM`]).
    pub max_datagram: usize,
    /// Sustained datagrams per second to one subscription (default 2000).
    pub rate_datagrams_per_s: u32,
    /// Datagrams one subscription may send in a burst (default 32).
    pub burst_datagrams: u32,
    /// What one [`LiveServer::pump_history`] call may cost, all subscriptions together,
    /// in frames: frames decoded from disk (skipped ones included) plus frames packaged
    /// into datagrams (default 512, a fraction of a millisecond).
    pub history_frames_per_pump: usize,
    /// Most frames of history one subscription gets per turn (default 256); with several
    /// waiting, each gets an equal share of the pump's budget (at least 16), so
    /// concurrent prefills advance together and share the history reader's window.
    pub history_frames_per_turn: usize,
    /// Longest prefill honoured, seconds (default 7 days).
    pub max_prefill_s: u32,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            secret: None,
            ring_seconds: 3600,
            ring_bytes_per_host: 1 << 20,
            max_subscribers: 32,
            retransmit_bytes: 256 << 10,
            batch_us: 50_000,
            max_datagram: MAX_DATAGRAM,
            rate_datagrams_per_s: 2000,
            burst_datagrams: 32,
            history_frames_per_pump: 512,
            history_frames_per_turn: 256,
            max_prefill_s: 7 * 86_400,
        }
    }
}

/// Refuses to listen on a non-loopback address without a shared secret.
pub fn check_listen_addr(addr: SocketAddr, cfg: &LiveConfig) -> Result<(), LiveError> {
    if addr.ip().is_loopback() || cfg.secret.is_some() {
        Ok(())
    } else {
        Err(LiveError::Config(format!(
            "listening on {addr} (not loopback) requires a shared secret"
        )))
    }
}

/// Counters of a [`LiveServer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveStats {
    /// Current subscriptions.
    pub subscribers: usize,
    /// Current hosts.
    pub hosts: usize,
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Datagrams handed out by `poll_transmit`.
    pub datagrams_out: u64,
    /// Bytes handed out by `poll_transmit`.
    pub bytes_out: u64,
    /// Datagrams that could not be parsed (or were too short), dropped.
    pub malformed: u64,
    /// Datagrams of a message type this server does not know, ignored.
    pub unknown_types: u64,
    /// Datagrams of another protocol version, ignored.
    pub bad_version: u64,
    /// Messages whose MAC did not verify, dropped silently.
    pub auth_failures: u64,
    /// Subscribes whose timestamp was outside the window.
    pub stale: u64,
    /// Subscribes refused as replays (nonce seen before).
    pub replays: u64,
    /// Subscribes refused because their source address already had
    /// [`REPLAY_QUOTA_PER_SOURCE`] nonces in the replay cache.
    pub replay_quota: u64,
    /// Cookies sent.
    pub cookies_sent: u64,
    /// Subscribes with a wrong or expired cookie, dropped.
    pub bad_cookies: u64,
    /// Subscribes refused because `max_subscribers` was reached.
    pub refused: u64,
    /// Subscriptions accepted.
    pub subscribed: u64,
    /// Subscriptions ended by silence.
    pub expired: u64,
    /// Subscriptions ended by the viewer.
    pub unsubscribed: u64,
    /// Messages for an unknown token.
    pub unknown_tokens: u64,
    /// Sends reported as would-block by the daemon (the datagram was lost).
    pub dropped_sends: u64,
    /// Control replies dropped because the queue was full.
    pub ctrl_dropped: u64,
    /// Sequence numbers asked for again.
    pub resend_requests: u64,
    /// Datagrams sent again.
    pub resent: u64,
    /// `UNAVAILABLE` replies sent.
    pub unavailable: u64,
    /// Frames received through `on_frame`.
    pub frames_in: u64,
    /// Frames dropped: unknown host, out of order, invalid codes or too large.
    pub frames_dropped: u64,
    /// Frames read from the [`HistorySource`].
    pub history_frames: u64,
}

struct HostSlot {
    index: u32,
    meta: HostMeta,
    quant: Quantizer,
    ring: ByteRing,
    last_start: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Cur {
    wanted: bool,
    needs_meta: bool,
    next_no: u64,
    /// History still to read: `[from, to)`.
    hist: Option<(u64, u64)>,
}

struct Sub {
    addr: SocketAddr,
    client_id: u64,
    token: u64,
    filter: Filter,
    last_heard: u64,
    rtx: ByteRing,
    sent_upto: u64,
    cursors: Vec<Cur>,
    gone: VecDeque<u32>,
    resend: VecDeque<(u64, u64)>,
    pending_since: Option<u64>,
    pending_bytes: usize,
    backlog: bool,
    /// GCRA theoretical arrival time.
    tat: u64,
    rr: usize,
}

impl Sub {
    fn wants(&self, label: &str) -> bool {
        self.filter.wants(label)
    }

    /// A pooled subscription: every buffer allocated once, here.
    fn pooled(cfg: &LiveConfig) -> Sub {
        Sub {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            client_id: 0,
            token: 0,
            filter: Filter {
                all: true,
                bytes: Vec::with_capacity(1024),
                ends: Vec::with_capacity(wire::MAX_FILTER_LABELS),
            },
            last_heard: 0,
            rtx: ByteRing::new_lazy(cfg.retransmit_bytes, (cfg.retransmit_bytes / 32).max(64)),
            sent_upto: 0,
            cursors: Vec::with_capacity(POOLED_HOSTS),
            gone: VecDeque::with_capacity(POOLED_HOSTS),
            resend: VecDeque::with_capacity(RESEND_QUEUE),
            pending_since: None,
            pending_bytes: 0,
            backlog: true,
            tat: 0,
            rr: 0,
        }
    }
}

/// Hosts a pooled subscription has room for before its cursor list grows.
const POOLED_HOSTS: usize = 64;

/// A subscription's host filter: labels kept in one reused byte buffer.
#[derive(Default)]
struct Filter {
    /// No filter: every host.
    all: bool,
    bytes: Vec<u8>,
    /// End offsets of the labels in `bytes`.
    ends: Vec<usize>,
}

impl Filter {
    fn set(&mut self, labels: Option<(Rd<'_>, usize)>) {
        self.bytes.clear();
        self.ends.clear();
        self.all = true;
        let Some((mut r, _)) = labels else { return };
        let Ok(k) = r.array_len() else { return };
        for _ in 0..k {
            let Ok(l) = r.str() else { break };
            self.bytes.extend_from_slice(l.as_bytes());
            self.ends.push(self.bytes.len());
        }
        // An empty filter means every host too.
        self.all = self.ends.is_empty();
    }

    fn wants(&self, label: &str) -> bool {
        let mut start = 0;
        self.all
            || self.ends.iter().any(|&end| {
                let l = &self.bytes[start..end];
                start = end;
                l == label.as_bytes()
            })
    }
}

/// Remembered subscribe nonces (see [`REPLAY_CACHE`]); allocated once.
struct ReplayCache {
    /// Oldest first (expiries ascend: the horizon is constant, the timer clock monotonic).
    order: VecDeque<([u8; wire::NONCE_LEN], u64, SocketAddr)>,
    seen: HashSet<[u8; wire::NONCE_LEN]>,
    per_source: HashMap<SocketAddr, u32>,
}

/// Why a subscribe's nonce was not accepted.
enum NonceRefused {
    Replay,
    Quota,
}

impl ReplayCache {
    fn new() -> Self {
        Self {
            order: VecDeque::with_capacity(REPLAY_CACHE),
            seen: HashSet::with_capacity(REPLAY_CACHE),
            per_source: HashMap::with_capacity(REPLAY_CACHE),
        }
    }

    fn forget(&mut self, nonce: &[u8; wire::NONCE_LEN], src: SocketAddr) {
        self.seen.remove(nonce);
        if let Some(n) = self.per_source.get_mut(&src) {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&src);
            }
        }
    }

    /// Accepts `nonce` from `src` once; `now` on the server's timer clock.
    fn accept(
        &mut self,
        nonce: [u8; wire::NONCE_LEN],
        src: SocketAddr,
        now: u64,
    ) -> Result<(), NonceRefused> {
        while let Some(&(n, exp, a)) = self.order.front() {
            if exp > now {
                break;
            }
            self.order.pop_front();
            self.forget(&n, a);
        }
        if self.seen.contains(&nonce) {
            return Err(NonceRefused::Replay);
        }
        if self.per_source.get(&src).copied().unwrap_or(0) >= REPLAY_QUOTA_PER_SOURCE {
            return Err(NonceRefused::Quota);
        }
        if self.order.len() >= REPLAY_CACHE {
            // Full: the source holding the most gives up its oldest nonce.
            let heaviest = self
                .per_source
                .iter()
                .max_by_key(|(_, n)| **n)
                .map(|(a, _)| *a);
            if let Some(i) = heaviest.and_then(|h| self.order.iter().position(|e| e.2 == h))
                && let Some((n, _, a)) = self.order.remove(i)
            {
                self.forget(&n, a);
            }
        }
        self.order.push_back((nonce, now + REPLAY_HORIZON_US, src));
        self.seen.insert(nonce);
        *self.per_source.entry(src).or_insert(0) += 1;
        Ok(())
    }
}

struct Ctrl {
    addr: SocketAddr,
    len: usize,
    buf: [u8; CTRL_MAX],
}

/// Scratch buffers reused by every assembly.
struct Scratch {
    buf: Vec<u8>,
    tmp: Vec<u8>,
    q: QFrame,
    enc: FrameEncoder,
    hist_bytes: Vec<u8>,
    hist_idx: Vec<(u64, usize, usize)>,
}

/// The sans-IO live-stream server. See the module docs of [`crate::live`] and
/// `docs/live-protocol.md`.
///
/// Driving it from an event loop:
/// ```no_run
/// # use zzping_lib::live::*;
/// # let sock = std::net::UdpSocket::bind(DEFAULT_ADDR).unwrap();
/// # let now = || zzping_lib::file::wall_clock_us();
/// let mut server = LiveServer::new(LiveConfig::default()).unwrap();
/// let mut buf = vec![0u8; RECV_BUFFER];
/// let mut out = vec![0u8; RECV_BUFFER];
/// sock.set_nonblocking(true).unwrap();
/// loop {
///     // wait for readability or until server.next_deadline() ...
///     while let Ok((n, src)) = sock.recv_from(&mut buf) {
///         server.on_datagram(src, &buf[..n], now());
///     }
///     server.pump_history(now(), &mut NoHistory);
///     while let Some((dst, n)) = server.poll_transmit(now(), &mut out) {
///         if sock.send_to(&out[..n], dst).is_err() {
///             server.on_send_would_block(dst, now());
///             break;
///         }
///     }
/// }
/// ```
pub struct LiveServer {
    cfg: LiveConfig,
    cookie_key: [u8; 32],
    rng: Rng,
    hosts: Vec<Option<HostSlot>>,
    by_index: HashMap<u32, usize>,
    subs: Vec<Sub>,
    ctrl: VecDeque<Ctrl>,
    nonces: ReplayCache,
    /// Subscriptions not in use, with their buffers (see [`LiveServer::new`]).
    pool: Vec<Sub>,
    clock: TimerClock,
    sc: Scratch,
    rr: usize,
    /// The subscription whose history turn comes first in the next pump.
    hist_rr: usize,
    stats: LiveStats,
    interval_us: u64,
}

impl LiveServer {
    /// A server with `cfg`; the cookie key is drawn from the OS RNG.
    ///
    /// Every subscription's buffers are allocated here, once, for `max_subscribers`
    /// (a retransmit ring of `retransmit_bytes` each, zeroed so the OS maps its pages only
    /// as they are used): a subscribe takes one from the pool and allocates nothing.
    pub fn new(cfg: LiveConfig) -> Result<Self, LiveError> {
        if cfg.max_subscribers == 0 {
            return Err(LiveError::Config("max_subscribers must be > 0".into()));
        }
        if !(256..=HARD_MAX_DATAGRAM).contains(&cfg.max_datagram) {
            return Err(LiveError::Config(format!(
                "max_datagram must be in 256..={HARD_MAX_DATAGRAM}"
            )));
        }
        if cfg.retransmit_bytes < 4 * cfg.max_datagram {
            return Err(LiveError::Config(format!(
                "retransmit_bytes must be at least 4 * max_datagram ({})",
                4 * cfg.max_datagram
            )));
        }
        if cfg.rate_datagrams_per_s == 0 || cfg.burst_datagrams == 0 {
            return Err(LiveError::Config("rate and burst must be > 0".into()));
        }
        let mut rng = Rng::from_os().map_err(|e| LiveError::Random(e.to_string()))?;
        let cookie_key = rng.bytes32();
        let interval_us = (1_000_000 / u64::from(cfg.rate_datagrams_per_s)).max(1);
        Ok(Self {
            cookie_key,
            rng,
            hosts: Vec::new(),
            by_index: HashMap::new(),
            subs: Vec::with_capacity(cfg.max_subscribers),
            ctrl: VecDeque::with_capacity(CTRL_QUEUE),
            nonces: ReplayCache::new(),
            pool: (0..cfg.max_subscribers)
                .map(|_| Sub::pooled(&cfg))
                .collect(),
            clock: TimerClock::default(),
            sc: Scratch {
                buf: Vec::with_capacity(HARD_MAX_DATAGRAM + 64),
                tmp: Vec::with_capacity(HARD_MAX_DATAGRAM + 64),
                q: QFrame::default(),
                enc: FrameEncoder::default(),
                hist_bytes: Vec::new(),
                hist_idx: Vec::new(),
            },
            rr: 0,
            hist_rr: 0,
            stats: LiveStats::default(),
            interval_us,
            cfg,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LiveConfig {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> LiveStats {
        LiveStats {
            subscribers: self.subs.len(),
            hosts: self.by_index.len(),
            ..self.stats
        }
    }

    /// Adds host `host_index`, or updates its metadata (subscribers get a new `HOST`
    /// message; a change of period or precision empties its ring). Allocates the host's
    /// ring (see [`LiveConfig::ring_seconds`]).
    pub fn add_host(&mut self, host_index: u32, meta: HostMeta) -> Result<(), LiveError> {
        if !(MIN_PERIOD_US..=MAX_PERIOD_US).contains(&meta.period_us) {
            return Err(LiveError::Config(format!(
                "period {} µs is outside 10 ms..60 s",
                meta.period_us
            )));
        }
        let quant = Quantizer::new(meta.precision).map_err(|e| LiveError::Config(e.to_string()))?;
        if let Some(&slot) = self.by_index.get(&host_index) {
            let h = self.hosts[slot]
                .as_mut()
                .ok_or_else(|| LiveError::Config("host table out of sync".into()))?;
            if h.meta.period_us != meta.period_us || h.meta.precision != meta.precision {
                h.ring.clear();
                h.last_start = None;
                h.quant = quant;
            }
            h.meta = meta;
            let label = h.meta.label.clone();
            for s in &mut self.subs {
                let wanted = s.wants(&label);
                let c = &mut s.cursors[slot];
                if wanted && !c.wanted {
                    c.next_no = h.ring.next_key();
                }
                c.wanted = wanted;
                c.needs_meta = wanted;
            }
            return Ok(());
        }
        let entries = (u64::from(self.cfg.ring_seconds) * 1_000_000 / u64::from(meta.period_us))
            .clamp(1, 1 << 24) as usize;
        let ring = ByteRing::new(self.cfg.ring_bytes_per_host.max(HARD_MAX_DATAGRAM), entries);
        let slot = match self.hosts.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.hosts.push(None);
                for s in &mut self.subs {
                    s.cursors.push(Cur::default());
                }
                self.hosts.len() - 1
            }
        };
        for s in &mut self.subs {
            let wanted = s.wants(&meta.label);
            s.cursors[slot] = Cur {
                wanted,
                needs_meta: wanted,
                next_no: 0,
                hist: None,
            };
        }
        self.hosts[slot] = Some(HostSlot {
            index: host_index,
            meta,
            quant,
            ring,
            last_start: None,
        });
        self.by_index.insert(host_index, slot);
        Ok(())
    }

    /// Removes host `host_index`: subscribers get `HOST_GONE`, its ring is freed.
    pub fn remove_host(&mut self, host_index: u32) {
        let Some(slot) = self.by_index.remove(&host_index) else {
            return;
        };
        self.hosts[slot] = None;
        for s in &mut self.subs {
            if s.cursors[slot].wanted {
                s.gone.push_back(host_index);
            }
            s.cursors[slot] = Cur::default();
        }
    }

    /// Metadata of a host.
    pub fn host(&self, host_index: u32) -> Option<&HostMeta> {
        let slot = *self.by_index.get(&host_index)?;
        self.hosts.get(slot)?.as_ref().map(|h| &h.meta)
    }

    /// A frame of `host_index` has closed: quantizes it and queues it for subscribers.
    /// Allocates nothing once the server's scratch buffers have grown.
    pub fn on_frame(&mut self, host_index: u32, frame: &Frame, now_us: u64) {
        let now_us = self.clock.tick(now_us);
        let Some(&slot) = self.by_index.get(&host_index) else {
            self.stats.frames_in += 1;
            self.stats.frames_dropped += 1;
            return;
        };
        let Some(h) = self.hosts[slot].as_ref() else {
            return;
        };
        let mut q = std::mem::take(&mut self.sc.q);
        q.set_from(frame, &h.quant);
        q.period_us = h.meta.period_us;
        self.push_frame(slot, &q, now_us);
        self.sc.q = q;
    }

    /// Like [`LiveServer::on_frame`] for an already quantized frame (codes ascending, all
    /// below the host quantizer's code count; others are dropped and counted).
    pub fn on_qframe(&mut self, host_index: u32, frame: &QFrame, now_us: u64) {
        let now_us = self.clock.tick(now_us);
        let Some(&slot) = self.by_index.get(&host_index) else {
            self.stats.frames_in += 1;
            self.stats.frames_dropped += 1;
            return;
        };
        self.push_frame(slot, frame, now_us);
    }

    fn push_frame(&mut self, slot: usize, q: &QFrame, now_us: u64) {
        self.stats.frames_in += 1;
        let Some(h) = self.hosts[slot].as_mut() else {
            return;
        };
        let codes_ok =
            q.codes.is_sorted() && q.codes.last().is_none_or(|&c| c < h.quant.code_count());
        // Start times beyond u64::MAX / 2 are outside what the codec decodes. A frame
        // starting before the previous one (the wall clock stepped back) is kept: frames
        // are identified by their number in the ring, not by time.
        if !codes_ok || q.start_us > u64::MAX / 2 {
            self.stats.frames_dropped += 1;
            return;
        }
        self.sc.tmp.clear();
        FrameEncoder::new(q.start_us).encode(q, &mut self.sc.tmp);
        if self.sc.tmp.len() > HARD_MAX_DATAGRAM - 64
            || h.ring.push(q.start_us, &self.sc.tmp).is_none()
        {
            self.stats.frames_dropped += 1;
            return;
        }
        h.last_start = Some(q.start_us);
        let len = self.sc.tmp.len();
        for s in &mut self.subs {
            if s.cursors[slot].wanted {
                s.pending_since.get_or_insert(now_us);
                s.pending_bytes += len;
            }
        }
    }

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

    fn push_ctrl(&mut self, addr: SocketAddr, msg: &[u8], limit: usize) {
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
    fn on_subscribe(
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
    fn end_sub(&mut self, i: usize) {
        let s = self.subs.swap_remove(i);
        self.pool.push(s);
    }

    fn on_control(&mut self, src: SocketAddr, bytes: &[u8], t: u64, r: Rd<'_>, n: usize, now: u64) {
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

    /// Reads a bounded amount of history (for subscriptions that asked for more prefill
    /// than the ring holds) and queues it. Call it from the event loop whenever
    /// [`LiveServer::history_pending`] is true. One call costs at most
    /// [`LiveConfig::history_frames_per_pump`] frames (decoded or packaged), shared
    /// round-robin between the subscriptions at most
    /// [`LiveConfig::history_frames_per_turn`] at a time. Returns the datagrams made.
    pub fn pump_history(&mut self, now_us: u64, source: &mut dyn HistorySource) -> usize {
        self.clock.tick(now_us);
        let mut budget = self.cfg.history_frames_per_pump.max(1);
        // Every waiting subscription gets a turn in each call, an equal share: prefills
        // that started together stay together, within the history reader's window.
        let waiting = self
            .subs
            .iter()
            .filter(|s| {
                s.rtx.next_key() - s.sent_upto < HISTORY_LOW_WATER
                    && s.cursors.iter().any(|c| c.wanted && c.hist.is_some())
            })
            .count();
        let per_turn = (budget / (waiting + 1)).clamp(
            MIN_HISTORY_TURN,
            self.cfg.history_frames_per_turn.max(MIN_HISTORY_TURN),
        );
        let stage_limit = self.cfg.retransmit_bytes / 4;
        let n = self.subs.len();
        let first = self.hist_rr % n.max(1);
        self.hist_rr = self.hist_rr.wrapping_add(1);
        let mut made = 0;
        let mut progress = true;
        while budget > 0 && progress {
            progress = false;
            for k in 0..n {
                if budget == 0 {
                    break;
                }
                let s = &mut self.subs[(first + k) % n];
                if s.rtx.next_key() - s.sent_upto >= HISTORY_LOW_WATER {
                    continue;
                }
                let Some(slot) = s
                    .cursors
                    .iter()
                    .position(|c| c.wanted && !c.needs_meta && c.hist.is_some())
                else {
                    continue;
                };
                let Some(h) = self.hosts[slot].as_ref() else {
                    s.cursors[slot].hist = None;
                    continue;
                };
                let Some((from, to)) = s.cursors[slot].hist else {
                    continue;
                };
                let sc = &mut self.sc;
                sc.hist_bytes.clear();
                sc.hist_idx.clear();
                let mut last_end = from;
                let mut taken = 0usize;
                let code_limit = h.quant.code_count();
                let period = u64::from(h.meta.period_us.max(1));
                let before = budget;
                let read = source.read_frames(
                    h.index,
                    from,
                    to.min(u64::MAX / 2),
                    &mut budget,
                    &mut |q| {
                        if taken >= per_turn || sc.hist_bytes.len() > stage_limit {
                            return false;
                        }
                        if q.start_us < last_end {
                            return true;
                        }
                        taken += 1;
                        last_end = q.start_us + period;
                        if q.codes.is_sorted() && q.codes.last().is_none_or(|&c| c < code_limit) {
                            let off = sc.hist_bytes.len();
                            FrameEncoder::new(q.start_us).encode(q, &mut sc.hist_bytes);
                            sc.hist_idx
                                .push((q.start_us, off, sc.hist_bytes.len() - off));
                        } else {
                            self.stats.frames_dropped += 1;
                        }
                        true
                    },
                );
                budget = budget.saturating_sub(taken);
                progress |= budget < before || taken > 0;
                self.stats.history_frames += sc.hist_idx.len() as u64;
                let done = read == HistoryRead::Done || last_end >= to;
                s.cursors[slot].hist = if done {
                    progress = true;
                    s.backlog = true;
                    None
                } else {
                    Some((last_end, to))
                };
                // Package the staged frames.
                let mut i = 0;
                while i < sc.hist_idx.len() {
                    let seq = s.rtx.next_key();
                    begin_frames(&mut sc.buf, s.token, seq);
                    let (start, _, _) = sc.hist_idx[i];
                    let g = begin_group(&mut sc.buf, h.index, None, start);
                    sc.enc.reset(start);
                    let mut nframes = 0;
                    while i < sc.hist_idx.len() {
                        let (st, off, len) = sc.hist_idx[i];
                        let bytes = &sc.hist_bytes[off..off + len];
                        match add_frame(
                            &mut sc.buf,
                            &mut sc.enc,
                            &mut sc.q,
                            st,
                            bytes,
                            h.meta.period_us,
                            nframes == 0,
                            self.cfg.max_datagram,
                        ) {
                            Add::Added => {
                                nframes += 1;
                                i += 1;
                            }
                            Add::Full => break,
                            Add::Skip => {
                                self.stats.frames_dropped += 1;
                                i += 1;
                                break;
                            }
                        }
                    }
                    if nframes > 0 {
                        end_group(&mut sc.buf, g);
                        finish_frames(&mut sc.buf, 1);
                        s.rtx.push(0, &sc.buf);
                        made += 1;
                    }
                }
            }
        }
        made
    }

    /// True when some subscription still has history to read (call
    /// [`LiveServer::pump_history`]).
    pub fn history_pending(&self) -> bool {
        self.subs.iter().any(|s| {
            s.rtx.next_key() - s.sent_upto < HISTORY_LOW_WATER
                && s.cursors.iter().any(|c| c.wanted && c.hist.is_some())
        })
    }

    /// The daemon could not send a datagram to `dst` (would block): counts it and pauses
    /// that subscription for 10 ms. The viewer recovers the datagram by asking a resend.
    pub fn on_send_would_block(&mut self, dst: SocketAddr, now_us: u64) {
        let now_us = self.clock.tick(now_us);
        self.stats.dropped_sends += 1;
        for s in self.subs.iter_mut().filter(|s| s.addr == dst) {
            s.tat = s.tat.max(now_us) + 10_000;
        }
    }

    fn expire(&mut self, now: u64) {
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

    fn gcra_ready(&self, s: &Sub) -> u64 {
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

    fn count_out(&mut self, len: usize) {
        self.stats.datagrams_out += 1;
        self.stats.bytes_out += len as u64;
    }

    fn poll_sub(&mut self, i: usize, now: u64, out: &mut [u8]) -> Option<usize> {
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

    /// The earliest time (µs) at which [`LiveServer::poll_transmit`] (and
    /// [`LiveServer::pump_history`]) may have something to do, or `None` when idle. A
    /// value at or before now means "now".
    pub fn next_deadline(&self) -> Option<u64> {
        self.next_timer_deadline().map(|t| self.clock.to_wall(t))
    }

    /// [`LiveServer::next_deadline`] on the timer clock.
    fn next_timer_deadline(&self) -> Option<u64> {
        if !self.ctrl.is_empty() {
            return Some(0);
        }
        let mut d: Option<u64> = None;
        let mut at = |t: u64| d = Some(d.map_or(t, |x| x.min(t)));
        for s in &self.subs {
            at(s.last_heard + SUBSCRIPTION_TIMEOUT_US);
            let ready = self.gcra_ready(s);
            let work = !s.resend.is_empty()
                || s.sent_upto < s.rtx.next_key()
                || !s.gone.is_empty()
                || s.backlog
                || s.cursors.iter().any(|c| c.needs_meta || c.hist.is_some());
            if work {
                at(ready);
            } else if let Some(p) = s.pending_since {
                let due = if s.pending_bytes >= self.cfg.max_datagram * 3 / 4 {
                    p
                } else {
                    p + self.cfg.batch_us
                };
                at(due.max(ready));
            }
        }
        d
    }
}

fn begin_frames(buf: &mut Vec<u8>, token: u64, seq: u64) {
    buf.clear();
    wire::w_head(buf, 5, wire::T_FRAMES);
    wire::w_uint(buf, token);
    wire::w_uint(buf, seq);
    buf.extend_from_slice(&[0xdc, 0, 0]);
}

/// Patches the group count (the array16 right after the header).
fn finish_frames(buf: &mut [u8], groups: u16) {
    // The array16 marker is the last 0xdc written by begin_frames: find it after the
    // header (version, type, token, seq are positive ints).
    let mut r = Rd::new(buf);
    let ok = r.array_len().is_ok() && (0..4).all(|_| r.u64().is_ok());
    let at = r.pos();
    if ok && buf.get(at) == Some(&0xdc) && buf.len() >= at + 3 {
        buf[at + 1..at + 3].copy_from_slice(&groups.to_be_bytes());
    }
}

/// Starts a group; returns the offset of its bin16 header.
fn begin_group(buf: &mut Vec<u8>, host: u32, first_no: Option<u64>, base_us: u64) -> usize {
    buf.push(0x94);
    wire::w_uint(buf, u64::from(host));
    match first_no {
        Some(n) => wire::w_uint(buf, n),
        None => wire::w_nil(buf),
    }
    wire::w_uint(buf, base_us);
    let at = buf.len();
    buf.extend_from_slice(&[0xc5, 0, 0]);
    at
}

fn end_group(buf: &mut [u8], bin_at: usize) {
    let len = (buf.len() - bin_at - 3) as u16;
    buf[bin_at + 1..bin_at + 3].copy_from_slice(&len.to_be_bytes());
}

enum Add {
    Added,
    Full,
    Skip,
}

/// Re-encodes one standalone-encoded frame into the current group's chain.
#[allow(clippy::too_many_arguments)]
fn add_frame(
    buf: &mut Vec<u8>,
    enc: &mut FrameEncoder,
    q: &mut QFrame,
    start_us: u64,
    standalone: &[u8],
    period_us: u32,
    first: bool,
    max_datagram: usize,
) -> Add {
    if FrameDecoder::new(start_us, period_us, u32::MAX)
        .decode(standalone, q)
        .is_err()
    {
        return Add::Skip;
    }
    let before = buf.len();
    let saved = enc.clone();
    enc.encode(q, buf);
    if buf.len() <= max_datagram || (first && buf.len() <= HARD_MAX_DATAGRAM) {
        return Add::Added;
    }
    buf.truncate(before);
    *enc = saved;
    if first { Add::Skip } else { Add::Full }
}

/// Builds the next sequenced datagram of `s` (if any is due) into its retransmit ring.
fn produce(
    s: &mut Sub,
    hosts: &[Option<HostSlot>],
    sc: &mut Scratch,
    cfg: &LiveConfig,
    now: u64,
    stats: &mut LiveStats,
) {
    let seq = s.rtx.next_key();
    // Host removals first, then metadata, then frames.
    if let Some(index) = s.gone.pop_front() {
        sc.buf.clear();
        wire::w_head(&mut sc.buf, 5, wire::T_HOST_GONE);
        wire::w_uint(&mut sc.buf, s.token);
        wire::w_uint(&mut sc.buf, seq);
        wire::w_uint(&mut sc.buf, u64::from(index));
        s.rtx.push(now, &sc.buf);
        return;
    }
    if let Some(slot) = s.cursors.iter().position(|c| c.needs_meta) {
        s.cursors[slot].needs_meta = false;
        if let Some(Some(h)) = hosts.get(slot) {
            let m = &h.meta;
            sc.buf.clear();
            wire::w_head(&mut sc.buf, 10, wire::T_HOST);
            wire::w_uint(&mut sc.buf, s.token);
            wire::w_uint(&mut sc.buf, seq);
            wire::w_uint(&mut sc.buf, u64::from(h.index));
            wire::w_str(&mut sc.buf, &m.label[..m.label.len().min(1024)]);
            let mut addr = [0u8; 64];
            let a = fmt_addr(&m.address, &mut addr);
            wire::w_str(&mut sc.buf, a);
            match &m.name {
                Some(n) => wire::w_str(&mut sc.buf, &n[..n.len().min(1024)]),
                None => wire::w_nil(&mut sc.buf),
            }
            wire::w_uint(&mut sc.buf, u64::from(m.period_us));
            wire::w_f64(&mut sc.buf, m.precision);
            s.rtx.push(now, &sc.buf);
        }
        return;
    }
    let due = s.backlog
        || s.pending_bytes >= cfg.max_datagram * 3 / 4
        || s.pending_since.is_some_and(|p| p + cfg.batch_us <= now);
    if !due {
        return;
    }
    begin_frames(&mut sc.buf, s.token, seq);
    let nh = hosts.len();
    let mut groups = 0u16;
    'hosts: for k in 0..nh {
        let slot = (s.rr + k) % nh;
        let Some(h) = &hosts[slot] else { continue };
        let c = &mut s.cursors[slot];
        if !c.wanted || c.needs_meta || c.hist.is_some() {
            continue;
        }
        if c.next_no < h.ring.first_key() {
            c.next_no = h.ring.first_key();
        }
        if c.next_no >= h.ring.next_key() {
            continue;
        }
        if groups > 0 && sc.buf.len() + 40 > cfg.max_datagram {
            break;
        }
        let Some((base, _)) = h.ring.get(c.next_no) else {
            continue;
        };
        let g_at = sc.buf.len();
        let bin_at = begin_group(&mut sc.buf, h.index, Some(c.next_no), base);
        sc.enc.reset(base);
        let mut nframes = 0;
        let mut full = false;
        while c.next_no < h.ring.next_key() {
            let Some((st, bytes)) = h.ring.get(c.next_no) else {
                break;
            };
            match add_frame(
                &mut sc.buf,
                &mut sc.enc,
                &mut sc.q,
                st,
                bytes,
                h.meta.period_us,
                groups == 0 && nframes == 0,
                cfg.max_datagram,
            ) {
                Add::Added => {
                    nframes += 1;
                    c.next_no += 1;
                }
                Add::Full => {
                    full = true;
                    break;
                }
                Add::Skip => {
                    stats.frames_dropped += 1;
                    c.next_no += 1;
                    sc.buf.truncate(g_at);
                    continue 'hosts;
                }
            }
        }
        if nframes == 0 {
            sc.buf.truncate(g_at);
        } else {
            end_group(&mut sc.buf, bin_at);
            groups += 1;
        }
        if full {
            break;
        }
    }
    s.rr = (s.rr + 1) % nh.max(1);
    if groups == 0 {
        s.backlog = false;
        s.pending_since = None;
        s.pending_bytes = 0;
        return;
    }
    finish_frames(&mut sc.buf, groups);
    s.rtx.push(now, &sc.buf);
    // Still behind? Keep sending without waiting for the batch timer.
    let behind = s.cursors.iter().zip(hosts).any(|(c, h)| {
        h.as_ref()
            .is_some_and(|h| c.wanted && c.hist.is_none() && c.next_no < h.ring.next_key())
    });
    if behind {
        s.backlog = true;
    } else {
        s.backlog = false;
        s.pending_since = None;
        s.pending_bytes = 0;
    }
}

/// Formats an address without allocating.
fn fmt_addr<'a>(a: &std::net::IpAddr, buf: &'a mut [u8; 64]) -> &'a str {
    use std::io::Write;
    let mut c = std::io::Cursor::new(&mut buf[..]);
    let _ = write!(c, "{a}");
    let n = c.position() as usize;
    std::str::from_utf8(&buf[..n]).unwrap_or("")
}
