//! The sans-IO live-stream server. See the parent module and `docs/live-protocol.md`.

use super::TimerClock;
use super::ring::ByteRing;
use super::wire::{self, Rd, Rng};
use super::{
    COOKIE_BUCKET_US, HARD_MAX_DATAGRAM, HostMeta, LiveError, MAX_DATAGRAM, MAX_RESEND_RANGE,
    MIN_SUBSCRIBE_LEN, SUBSCRIPTION_TIMEOUT_US, TIMESTAMP_WINDOW_US,
};
use crate::codec::{FrameDecoder, FrameEncoder, QFrame};
use crate::events::{ContextEvent, MAX_CAPPED_EVENT_BYTES, MAX_CAPPED_TEXT};
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
/// Most context events the server keeps for prefill and for viewers that have not got
/// them yet: the last 2,048. A link flapping once a minute records about 8 events a
/// minute (link and carrier down and up, the default route and the address removed and
/// back), 480 an hour; this keeps four such hours.
pub const EVENT_RING_EVENTS: usize = 2048;
/// Byte budget of the event ring (encoded events average well under 128 bytes; the
/// oldest go first when either limit is reached).
pub const EVENT_RING_BYTES: usize = EVENT_RING_EVENTS * 128;

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
    /// Context events received through [`LiveServer::on_event`].
    pub events_in: u64,
    /// Context events a subscription never got: overwritten in the event ring (see
    /// [`EVENT_RING_EVENTS`]) before they were sent to it.
    pub events_dropped: u64,
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
    /// Number of the next context event to send.
    ev_next: u64,
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
            ev_next: 0,
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
    /// The last context events, encoded (key: event number since the server started;
    /// meta: wall-clock µs when it was handed over).
    events: ByteRing,
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
            events: ByteRing::new(EVENT_RING_BYTES, EVENT_RING_EVENTS),
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

    /// A context event was recorded: every subscription gets it (events are not
    /// filtered by host) in a sequenced `EVENTS` datagram, and later subscriptions in
    /// their prefill (the last [`EVENT_RING_EVENTS`] events, those handed over within
    /// the prefill). Texts longer than [`MAX_CAPPED_TEXT`] bytes are cut. Allocates
    /// nothing: the event is encoded into a scratch buffer and kept in a ring allocated
    /// with the server.
    pub fn on_event(&mut self, ev: &ContextEvent, now_us: u64) {
        self.clock.tick(now_us);
        self.stats.events_in += 1;
        self.sc.tmp.clear();
        ev.encode_capped(&mut self.sc.tmp, MAX_CAPPED_TEXT);
        debug_assert!(self.sc.tmp.len() <= MAX_CAPPED_EVENT_BYTES);
        if self.events.push(now_us, &self.sc.tmp).is_none() {
            // Larger than the ring takes (cannot happen with capped texts).
            self.stats.events_dropped += self.subs.len() as u64;
        }
        // Subscriptions that had not got the events the ring let go lose them.
        let first = self.events.first_key();
        for s in &mut self.subs {
            if s.ev_next < first {
                self.stats.events_dropped += first - s.ev_next;
                s.ev_next = first;
            }
        }
    }

    /// Keeps `ev`, recorded at `recorded_us` (wall clock µs) before this server started,
    /// for the prefill of subscriptions (the daemon hands over the last hour of its
    /// events files at start, so a viewer of a restarted daemon still gets what
    /// happened before the restart). Meant for a server without subscriptions yet
    /// (existing ones get it as a new event). Allocates nothing.
    pub fn preload_event(&mut self, ev: &ContextEvent, recorded_us: u64) {
        self.sc.tmp.clear();
        ev.encode_capped(&mut self.sc.tmp, MAX_CAPPED_TEXT);
        self.events.push(recorded_us, &self.sc.tmp);
        let first = self.events.first_key();
        for s in &mut self.subs {
            s.ev_next = s.ev_next.max(first);
        }
    }

    /// Takes over the context events of `old` (a server replaced on a reload), so new
    /// viewers still get them in their prefill.
    pub fn carry_events(&mut self, old: &LiveServer) {
        for key in old.events.first_key()..old.events.next_key() {
            if let Some((meta, bytes)) = old.events.get(key) {
                self.events.push(meta, bytes);
            }
        }
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
                || s.ev_next < self.events.next_key()
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

mod control;
mod encode;
mod history;
mod transmit;

use encode::*;
