//! The pinger's core logic: scheduling, sequence numbers, reply matching, frame
//! attribution. No sockets, no clocks, no threads: the event loop feeds it [`Now`]
//! readings, send results and received messages, and it hands final frames to a
//! [`FrameOutput`]. Everything is pre-allocated or recycled, so steady state allocates
//! nothing (see `tests/alloc.rs`).
//!
//! # Sequence numbers
//! Each address family has one 16-bit sequence space shared by all hosts, allocated
//! round-robin. A request holds its sequence number until its timeout (plus a short
//! grace), so numbers are never reused within the timeout. Since all requests of a family
//! share one timeout, they expire in allocation order: the live window is
//! `[oldest, next)` and expiring is a sweep from `oldest`. Requests live in a table
//! direct-mapped by `seq & mask`, sized from the configured rates to twice the requests
//! that can be in flight (at least 1,024 slots, at most 65,536), so its memory follows the
//! configuration. If the window fills the table the send is refused and counted as an
//! error (and in [`EngineStats::seq_exhausted`]) rather than reusing a live slot. After
//! expiry the slot still remembers the request, so a late reply is recognized as late
//! until the slot is reused (at least one more timeout later, given the sizing); the
//! 64-bit token in the payload tells a reused number's replies apart from its previous
//! user's.
//!
//! # Attribution
//! Exactly the rules of [`zzping_lib::frame`]: outcomes go to the frame the request was
//! sent in, extras to that frame while it is open, else to the host's oldest open frame.
//! A frame is closed for sends when its period ends, and final (emitted) once closed with
//! no request outstanding. Empty frames (nothing sent, nothing received) are not emitted.
//!
//! # Time
//! Frames are aligned on the wall clock (the period containing the send's realtime
//! reading); deadlines, timeouts and RTTs use the monotonic clock. Kernel receive
//! timestamps are realtime: they are mapped to monotonic with the realtime/monotonic
//! offset the receive thread sampled right after `recvmsg`, and the RTT is clamped to
//! `[0, monotonic receive time in user space - monotonic send time]`, so a wall-clock
//! step is never reported as RTT and a reply stamped before its send (loopback) still
//! matches with RTT 0.
//!
//! The send time is the clock read just before `sendto`, replaced by the kernel's
//! transmit stamp when the socket has them ([`Message::TxStamp`]): the stamp names the
//! send by the socket's counter of sends, and is accepted only if it falls within that
//! request's `sendto` call (both wall clock): sends do not overlap, so a stamp inside
//! the bracket is this request's. A stamp that fits no bracket re-synchronizes the
//! counter against nearby requests by the same test, or is dropped (counted in
//! [`EngineStats::tx_unmatched`]); the request keeps the user-space time either way.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::IpAddr;

use zzping_lib::frame::{FLAG_CLOCK_STEP, FLAG_SEND_LATE, FLAG_USER_STAMP, Frame, period_start};

use crate::clock::Now;
use crate::icmp::{Family, Message};

/// Size of a family's sequence space (16-bit ICMP sequence numbers).
const SEQ_SPACE: usize = 1 << 16;
/// Smallest in-flight table per family. Tables are direct-mapped by `seq & mask` and sized
/// to twice the requests that can be in flight at the configured rates (rate x (timeout +
/// grace + slack + one period)), rounded up to a power of two, so memory follows the
/// configuration (72 KB per family at 1,000 pings/s, 4.7 MB only at the 65,536 cap).
const MIN_TABLE: usize = 1 << 10;
/// How much later than due an expiry may be processed (saves wakeups; the outcome is
/// decided by timestamps, only the frame's emission is delayed).
pub const EXPIRY_SLACK_NS: u64 = 2_000_000;
/// How much later than a period boundary the rotation may run, at most (capped at a
/// quarter period). Sends rotate their host's frame by their own timestamp, so a late
/// rotation only delays the emission of the closed frames; in exchange the boundary needs
/// no wakeup of its own whenever a send is due within the slack.
pub const BOUNDARY_SLACK_NS: u64 = 20_000_000;
/// When a request in flight is due for expiry but the receive frontier has not passed
/// its deadline yet, the loop looks again this much later at the latest (the receive
/// thread normally wakes it as soon as it has handed everything over).
pub const UNPROVEN_RETRY_NS: u64 = 20_000_000;
/// A loop this far behind a host's schedule skips the missed sends (counted) instead of
/// sending them in a burst; less far behind, it catches up at once.
pub const SKIP_BEHIND_NS: u64 = 1_000_000_000;
/// Largest number of requests in flight per family.
const MAX_LIVE: u16 = u16::MAX;

/// Settings of the engine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineConfig {
    /// Frame period, µs.
    pub period_us: u32,
    /// Reply timeout, ns.
    pub timeout_ns: u64,
    /// How long after its timeout a request is expected to be expired under ordinary
    /// scheduling (the receive thread's batching window and some latency). Sizes the
    /// sequence tables and per-host frame queues, and how long a clean stop waits for
    /// replies; it decides no outcome: a request is declared lost only once the receive
    /// frontier has passed its deadline ([`Engine::tick`]).
    pub grace_ns: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            period_us: zzping_lib::frame::DEFAULT_PERIOD_US,
            timeout_ns: 1_000_000_000,
            grace_ns: 5_000_000,
        }
    }
}

/// Identifies a host slot; the generation tells a removed host's slot from its reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HostId {
    /// Slot index.
    pub slot: u32,
    /// Generation of the slot.
    pub generation: u32,
}

/// Receives the engine's final frames.
pub trait FrameOutput {
    /// A final frame of `host`.
    fn frame(&mut self, host: HostId, label: &str, frame: &Frame);
    /// A removed host has finished: no more frames will come for it.
    fn host_retired(&mut self, _host: HostId, _label: &str) {}
}

/// A request the event loop should send now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Host.
    pub host: HostId,
    /// Destination.
    pub addr: IpAddr,
    /// Family (socket to use).
    pub family: Family,
    /// ICMP sequence number.
    pub seq: u16,
    /// Token for the payload.
    pub token: u64,
    /// Scheduled send time, monotonic ns.
    pub scheduled_ns: u64,
    /// False when the family's sequence space is full: do not send, commit as failed.
    pub sendable: bool,
}

/// A message received on an ICMP socket, as handed over by the receive thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// Socket family.
    pub family: Family,
    /// Source address (for errors: the destination of the quoted request).
    pub src: IpAddr,
    /// The message.
    pub msg: Message,
    /// Kernel receive timestamp (`SO_TIMESTAMPNS`, realtime ns), if any; for a
    /// [`Message::TxStamp`], the transmit stamp.
    pub kernel_real_ns: Option<u64>,
    /// What `kernel_real_ns` is worth as the reply's arrival time.
    pub rx_stamp: RxStamp,
    /// Received by a batch drain (it may have waited in the socket up to a batching
    /// window; its kernel stamp keeps its RTT exact).
    pub batched: bool,
    /// Clocks sampled right after `recvmsg` returned.
    pub user: Now,
}

/// Where a reply's receive time comes from (see `recv.rs` for how it is told).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RxStamp {
    /// The kernel stamped the packet when it arrived (`SO_TIMESTAMPNS`).
    #[default]
    Kernel,
    /// The stamp was taken inside our own `recvmsg` call while network timestamping was
    /// not yet proven on: the kernel had not stamped the packet on arrival and filled in
    /// the time of the call, so the packet arrived at some unknown earlier time.
    InCall,
    /// No kernel stamp: the receive time is the user-space clock after `recvmsg`.
    Missing,
}

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

/// Per-host running totals for the status display (since the last [`Engine::take_status`]).
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
}

impl HostStatus {
    fn empty() -> Self {
        HostStatus {
            rtt_min_us: u32::MAX,
            ..Default::default()
        }
    }

    fn add_frame(&mut self, f: &Frame) {
        self.sent += u64::from(f.sent);
        self.received += u64::from(f.received());
        self.lost += u64::from(f.lost);
        self.errors += u64::from(f.errors);
        self.extras += u64::from(f.duplicates) + u64::from(f.late);
        for &r in &f.rtts_us {
            self.rtt_sum_us += u64::from(r);
            self.rtt_min_us = self.rtt_min_us.min(r);
            self.rtt_max_us = self.rtt_max_us.max(r);
        }
    }
}

#[derive(Debug)]
struct OpenFrame {
    serial: u64,
    frame: Frame,
    outstanding: u32,
    closed: bool,
}

/// A host as the engine knows it.
#[derive(Debug)]
struct Host {
    generation: u32,
    label: String,
    addr: IpAddr,
    interval_ns: u64,
    /// Frames not yet final, oldest first; the last one takes new sends (unless retiring).
    frames: VecDeque<OpenFrame>,
    next_serial: u64,
    retiring: bool,
    consecutive_errors: u32,
    status: HostStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Free,
    /// Sent, no outcome yet.
    InFlight,
    /// Outcome known (received or error) but the timeout has not passed: the seq is held.
    Resolved,
    /// Timeout passed; `lost` tells whether a reply would be late (else duplicate).
    Expired {
        lost: bool,
    },
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    state: State,
    /// The ICMP sequence number the slot was allocated for.
    seq: u16,
    host: HostId,
    frame_serial: u64,
    token: u64,
    addr: IpAddr,
    tx_mono_ns: u64,
    deadline_ns: u64,
    /// Wall-clock reading taken with `tx_mono_ns`, ns.
    tx_real_ns: u64,
    /// `sendto`'s duration: a kernel transmit stamp must fall in
    /// `[tx_real_ns, tx_real_ns + tx_span_ns]`.
    tx_span_ns: u32,
    /// Our count of the socket's stamped sends for this request (see [`SeqTable::keys`]).
    tx_key: Option<u32>,
    /// `tx_mono_ns` is the kernel's transmit stamp (else the user-space reading).
    tx_kernel: bool,
    /// The kernel's transmit stamp (wall clock, ns) when `tx_kernel`.
    tx_stamp_real_ns: u64,
}

impl Entry {
    const FREE: Entry = Entry {
        state: State::Free,
        seq: 0,
        host: HostId {
            slot: 0,
            generation: 0,
        },
        frame_serial: 0,
        token: 0,
        addr: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        tx_mono_ns: 0,
        deadline_ns: 0,
        tx_real_ns: 0,
        tx_span_ns: 0,
        tx_key: None,
        tx_kernel: false,
        tx_stamp_real_ns: 0,
    };
}

/// One family's sequence space.
struct SeqTable {
    /// Direct-mapped by `seq & mask`; the length is a power of two up to `SEQ_SPACE`.
    entries: Box<[Entry]>,
    mask: u16,
    /// Oldest live (InFlight/Resolved) seq.
    oldest: u16,
    /// Every seq in `[oldest, scan)` has an outcome: the first request still in flight is
    /// at `scan` or later. Stale (behind `oldest`) after a sweep; see
    /// [`SeqTable::first_in_flight_from`].
    scan: u16,
    /// Next seq to allocate.
    next: u16,
    /// Next token (full 64-bit sequence number).
    token: u64,
    /// Expected identifier in replies.
    ident: u16,
    /// Successful sends on a socket with kernel transmit stamps: the key of the next one.
    keys: u32,
    /// `key & mask` -> seq of the live request holding that key.
    key_seq: Box<[u16]>,
    /// Our key minus the kernel's (0 unless the kernel counted a send we did not, e.g.
    /// one that failed after the packet was built; found again by matching times).
    key_skew: u32,
}

impl SeqTable {
    fn new() -> Self {
        SeqTable {
            entries: vec![Entry::FREE; MIN_TABLE].into_boxed_slice(),
            mask: (MIN_TABLE - 1) as u16,
            oldest: 0,
            scan: 0,
            next: 0,
            token: 0,
            ident: 0,
            keys: 0,
            key_seq: vec![0; MIN_TABLE].into_boxed_slice(),
            key_skew: 0,
        }
    }

    fn live(&self) -> u16 {
        self.next.wrapping_sub(self.oldest)
    }

    /// Where to start looking for the first request in flight: `scan`, unless a sweep
    /// moved `oldest` past it.
    fn first_in_flight_from(&self) -> u16 {
        if self.scan.wrapping_sub(self.oldest) > self.live() {
            self.oldest
        } else {
            self.scan
        }
    }

    /// Moves `scan` past requests that have an outcome (amortized O(1): a request
    /// never returns to flight). Answered requests stay in the table until their
    /// timeout (to classify duplicates and late replies), but only requests in flight
    /// need a wakeup at their deadline.
    fn advance_scan(&mut self) {
        let mut s = self.first_in_flight_from();
        while s != self.next && self.entries[self.idx(s)].state != State::InFlight {
            s = s.wrapping_add(1);
        }
        self.scan = s;
    }

    /// Deadline of the oldest request still in flight, if any (never later than the
    /// true one: `scan` only lags).
    fn first_in_flight_deadline(&self) -> Option<u64> {
        let s = self.first_in_flight_from();
        (s != self.next).then(|| self.entries[self.idx(s)].deadline_ns)
    }

    /// Slot of `seq`.
    fn idx(&self, seq: u16) -> usize {
        usize::from(seq & self.mask)
    }

    /// True when no further request can be allocated without reusing a live slot.
    fn full(&self) -> bool {
        usize::from(self.live()) >= self.entries.len().min(usize::from(MAX_LIVE))
    }

    /// Grows the table to `size` slots (a power of two), moving live entries.
    fn grow(&mut self, size: usize) {
        if size <= self.entries.len() {
            return;
        }
        let mut entries = vec![Entry::FREE; size].into_boxed_slice();
        let mask = (size - 1) as u16;
        let mut seq = self.oldest;
        while seq != self.next {
            let e = self.entries[self.idx(seq)];
            entries[usize::from(seq & mask)] = e;
            seq = seq.wrapping_add(1);
        }
        self.entries = entries;
        self.mask = mask;
        let mut key_seq = vec![0u16; size].into_boxed_slice();
        let mut seq = self.oldest;
        while seq != self.next {
            if let Some(k) = self.entries[self.idx(seq)].tx_key {
                key_seq[k as usize & usize::from(mask)] = seq;
            }
            seq = seq.wrapping_add(1);
        }
        self.key_seq = key_seq;
    }

    /// The live request holding our key `ours`, if any.
    fn by_key(&self, ours: u32) -> Option<usize> {
        let seq = self.key_seq[ours as usize & usize::from(self.mask)];
        let i = self.idx(seq);
        let live = seq.wrapping_sub(self.oldest) < self.live();
        (live && self.entries[i].tx_key == Some(ours)).then_some(i)
    }
}

/// The core. See the module docs.
pub struct Engine {
    cfg: EngineConfig,
    hosts: Vec<Option<Host>>,
    next_generation: u32,
    schedule: BinaryHeap<Reverse<(u64, u32, u32)>>,
    tables: [SeqTable; 2],
    free_frames: Vec<Frame>,
    stats: EngineStats,
    lateness: DelayHistogram,
    rx_wait: DelayHistogram,
    last_offset: Option<(i128, u64)>,
    /// RTT capacity every recycled frame gets, from the fastest host's sends per period.
    rtt_capacity: usize,
    /// Requests sent with no outcome yet.
    unresolved: usize,
    /// Next period boundary (realtime µs) at which current frames rotate.
    next_boundary_us: u64,
}

impl Engine {
    /// A new engine with no hosts.
    pub fn new(cfg: EngineConfig) -> Self {
        Engine {
            cfg,
            hosts: Vec::new(),
            next_generation: 1,
            schedule: BinaryHeap::with_capacity(64),
            tables: [SeqTable::new(), SeqTable::new()],
            free_frames: Vec::new(),
            stats: EngineStats::default(),
            lateness: DelayHistogram::default(),
            rx_wait: DelayHistogram::default(),
            last_offset: None,
            rtt_capacity: 0,
            unresolved: 0,
            next_boundary_us: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> EngineConfig {
        self.cfg
    }

    /// Changes period/timeout (SIGHUP). A period change applies from the next frame.
    pub fn set_config(&mut self, cfg: EngineConfig) {
        self.cfg = cfg;
    }

    /// Sets the identifier replies of `family` must carry (the raw socket's chosen
    /// identifier, or the datagram socket's local port which the kernel writes).
    pub fn set_ident(&mut self, family: Family, ident: u16) {
        self.tables[family.index()].ident = ident;
    }

    /// The identifier to write into requests of `family`.
    pub fn ident(&self, family: Family) -> u16 {
        self.tables[family.index()].ident
    }

    /// Starts the tokens (full sequence numbers carried in payloads) at `base`, so two
    /// daemons sharing a raw identifier still tell their replies apart.
    pub fn set_token_base(&mut self, base: u64) {
        for t in &mut self.tables {
            t.token = base;
        }
    }

    /// Label of a host.
    pub fn label(&self, id: HostId) -> Option<&str> {
        self.host(id).map(|h| h.label.as_str())
    }

    /// Requests sent that have no outcome yet.
    pub fn unresolved(&self) -> usize {
        self.unresolved
    }

    /// Global counters.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// Send lateness histogram.
    pub fn rx_wait(&self) -> &DelayHistogram {
        &self.rx_wait
    }

    /// Histogram of send lateness.
    pub fn lateness(&self) -> &DelayHistogram {
        &self.lateness
    }

    fn new_frame(&mut self, start_us: u64) -> Frame {
        let mut f = match self.free_frames.pop() {
            Some(mut f) => {
                f.clear(start_us, self.cfg.period_us);
                f
            }
            None => Frame::new(start_us, self.cfg.period_us),
        };
        // Pre-size so late sends bunching into one period don't reallocate later.
        f.rtts_us.reserve(self.rtt_capacity);
        f
    }

    /// Open frames a host holds at most: the timeout's worth of periods plus the current
    /// one and some slack.
    fn frames_per_host(&self) -> usize {
        let period_ns = u64::from(self.cfg.period_us.max(1)) * 1000;
        ((self.cfg.timeout_ns + self.cfg.grace_ns) / period_ns) as usize + 4
    }

    /// Adds a host pinging `addr` at `rate` per second; the first send is due at
    /// `first_ns` (monotonic). Returns its id.
    pub fn add_host(
        &mut self,
        label: &str,
        addr: IpAddr,
        rate: f64,
        first_ns: u64,
        now: Now,
    ) -> HostId {
        let interval_ns = interval_ns(rate);
        self.note_rate(interval_ns);
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1).max(1);
        let slot = match self.hosts.iter().position(Option::is_none) {
            Some(s) => s,
            None => {
                self.hosts.push(None);
                self.hosts.len() - 1
            }
        };
        let start = period_start(now.real_us(), self.cfg.period_us);
        // Pre-fill the frame pool with what this host will hold open at most, so steady
        // state (even with replies or expiries processed late) never allocates frames.
        let per_host = self.frames_per_host();
        self.free_frames.reserve(per_host);
        for _ in 0..per_host {
            let mut f = Frame::new(start, self.cfg.period_us);
            f.rtts_us.reserve(self.rtt_capacity);
            self.free_frames.push(f);
        }
        let frame = self.new_frame(start);
        let mut frames = VecDeque::with_capacity(per_host);
        frames.push_back(OpenFrame {
            serial: 0,
            frame,
            outstanding: 0,
            closed: false,
        });
        self.hosts[slot] = Some(Host {
            generation,
            label: label.to_owned(),
            addr,
            interval_ns,
            frames,
            next_serial: 1,
            retiring: false,
            consecutive_errors: 0,
            status: HostStatus::empty(),
        });
        let id = HostId {
            slot: slot as u32,
            generation,
        };
        let live = self.hosts.iter().flatten().count();
        self.schedule.reserve(live.saturating_mul(2));
        self.schedule
            .push(Reverse((first_ns, id.slot, id.generation)));
        if self.next_boundary_us == 0 {
            self.next_boundary_us = start + u64::from(self.cfg.period_us);
        }
        id
    }

    fn host_mut(&mut self, id: HostId) -> Option<&mut Host> {
        match self.hosts.get_mut(id.slot as usize) {
            Some(Some(h)) if h.generation == id.generation => Some(h),
            _ => None,
        }
    }

    fn host(&self, id: HostId) -> Option<&Host> {
        match self.hosts.get(id.slot as usize) {
            Some(Some(h)) if h.generation == id.generation => Some(h),
            _ => None,
        }
    }

    /// Ids, labels and addresses of the live (not retiring) hosts.
    pub fn hosts(&self) -> impl Iterator<Item = (HostId, &str, IpAddr)> + '_ {
        self.hosts.iter().enumerate().filter_map(|(i, h)| {
            let h = h.as_ref()?;
            (!h.retiring).then_some((
                HostId {
                    slot: i as u32,
                    generation: h.generation,
                },
                h.label.as_str(),
                h.addr,
            ))
        })
    }

    /// Changes a host's rate (applies after its next send).
    pub fn set_rate(&mut self, id: HostId, rate: f64) {
        let interval = interval_ns(rate);
        if let Some(h) = self.host_mut(id) {
            h.interval_ns = interval;
        }
        self.note_rate(interval);
    }

    /// Grows the RTT capacity recycled frames get to the most replies one frame of this
    /// host can hold: its sends per period, plus the sends of a stall it catches up on
    /// at once (up to [`SKIP_BEHIND_NS`] of them, all timed in the frame of the moment
    /// the loop runs again), so a frame never reallocates, stall or not.
    fn note_rate(&mut self, interval_ns: u64) {
        let period_ns = u64::from(self.cfg.period_us) * 1000;
        let interval_ns = interval_ns.max(1);
        let per_period = period_ns.div_ceil(interval_ns) as usize;
        let catch_up = SKIP_BEHIND_NS.div_ceil(interval_ns) as usize;
        self.rtt_capacity = self.rtt_capacity.max(per_period + catch_up + 2);
        // Size the in-flight tables for every host's rate plus this one (counted twice
        // when an existing host changes rate: a harmless over-estimate).
        let total_hz: f64 = self
            .hosts
            .iter()
            .flatten()
            .map(|h| 1e9 / h.interval_ns.max(1) as f64)
            .sum::<f64>()
            + 1e9 / interval_ns.max(1) as f64;
        let window_s =
            (self.cfg.timeout_ns + self.cfg.grace_ns + EXPIRY_SLACK_NS + period_ns) as f64 / 1e9;
        let need = ((total_hz * window_s * 2.0).ceil() as usize)
            .clamp(MIN_TABLE, SEQ_SPACE)
            .next_power_of_two();
        for t in &mut self.tables {
            t.grow(need);
        }
    }

    /// Changes a host's address (re-resolution). Requests in flight keep matching their
    /// original address.
    pub fn set_address(&mut self, id: HostId, addr: IpAddr) {
        if let Some(h) = self.host_mut(id) {
            h.addr = addr;
        }
    }

    /// Stops pinging a host. Its open frames finish normally (requests time out or get
    /// answered), then [`FrameOutput::host_retired`] is called and the slot is freed.
    pub fn remove_host(&mut self, id: HostId, out: &mut dyn FrameOutput) {
        let Some(h) = self.host_mut(id) else { return };
        h.retiring = true;
        if let Some(f) = h.frames.back_mut() {
            f.closed = true;
        }
        self.try_finalize(id, out);
    }

    /// Takes and resets a host's status totals.
    pub fn take_status(&mut self, id: HostId) -> HostStatus {
        match self.host_mut(id) {
            Some(h) => std::mem::replace(&mut h.status, HostStatus::empty()),
            None => HostStatus::empty(),
        }
    }

    /// Calls `f` with each live host's label, address and status totals, and resets the
    /// totals (for the status display; allocates nothing).
    pub fn drain_status(&mut self, mut f: impl FnMut(&str, IpAddr, HostStatus)) {
        for h in self.hosts.iter_mut().flatten() {
            if !h.retiring {
                let st = std::mem::replace(&mut h.status, HostStatus::empty());
                f(&h.label, h.addr, st);
            }
        }
    }

    /// Monotonic time of the next thing the engine must do (a send, an expiry, or a frame
    /// rotation), given the current clocks.
    pub fn next_deadline(&self, now: Now) -> u64 {
        let mut d = u64::MAX;
        if let Some(Reverse((t, _, _))) = self.schedule.peek() {
            d = d.min(*t);
        }
        // Expiries only matter for requests still in flight (answered ones are swept
        // lazily at any later wakeup); a little slack lets a send's wakeup do the sweep.
        // One already due waits for the receive frontier to pass it: the receive thread
        // wakes the loop when it does; the retry is only a safety net.
        if let Some(deadline) = self.first_in_flight_deadline() {
            let due = deadline.saturating_add(EXPIRY_SLACK_NS);
            d = d.min(if due > now.mono_ns {
                due
            } else {
                now.mono_ns.saturating_add(UNPROVEN_RETRY_NS)
            });
        }
        if self.next_boundary_us != 0 {
            let boundary_real_ns = self.next_boundary_us.saturating_mul(1000);
            let mono = i128::from(boundary_real_ns) - now.offset_ns();
            let mono = mono.clamp(0, i128::from(u64::MAX)) as u64;
            let slack = BOUNDARY_SLACK_NS.min(u64::from(self.cfg.period_us) * 250);
            d = d.min(mono.saturating_add(slack));
        }
        d
    }

    /// Checks the wall clock against the monotonic clock; on a step (offset change beyond
    /// 5 ms + 500 ppm of the elapsed time: more than NTP slewing can do, less than the
    /// 128 ms beyond which NTP steps) flags every host's current frame with
    /// `FLAG_CLOCK_STEP` and returns the step in ns.
    pub fn observe_clock(&mut self, now: Now) -> Option<i128> {
        let off = now.offset_ns();
        let prev = self.last_offset.replace((off, now.mono_ns));
        let (prev_off, prev_mono) = prev?;
        let elapsed = now.mono_ns.saturating_sub(prev_mono);
        let tolerance = 5_000_000 + i128::from(elapsed / 2000);
        let step = off - prev_off;
        if step.abs() <= tolerance {
            return None;
        }
        self.stats.clock_steps += 1;
        for h in self.hosts.iter_mut().flatten() {
            if let Some(f) = h.frames.back_mut() {
                f.frame.flags |= FLAG_CLOCK_STEP;
            }
        }
        // Re-derive the next rotation from the new wall clock.
        self.next_boundary_us =
            period_start(now.real_us(), self.cfg.period_us) + u64::from(self.cfg.period_us);
        Some(step)
    }

    /// Cancels every scheduled send (shutdown): only expiries and frame rotations remain.
    pub fn stop_sending(&mut self) {
        self.schedule.clear();
    }

    /// Flags every host's current frame (e.g. `FLAG_RECV_OVERFLOW`).
    pub fn flag_all(&mut self, flag: u8) {
        for h in self.hosts.iter_mut().flatten() {
            if let Some(f) = h.frames.back_mut() {
                f.frame.flags |= flag;
            }
        }
    }

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
            // than one interval, e.g. after a suspend), skip the missed sends instead of
            // bursting.
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
        self.commit_send_timed(probe, tx, 0, false, ok, out)
    }

    /// [`Engine::commit_send`] for a socket that may stamp its sends: `span_ns` is how
    /// long `sendto` took (the kernel's transmit stamp of this send must fall within it)
    /// and `kernel_stamps` whether the socket has transmit stamps on. A stamp that
    /// arrives later ([`Message::TxStamp`]) then replaces `tx` as the send time.
    pub fn commit_send_timed(
        &mut self,
        probe: &Probe,
        tx: Now,
        span_ns: u32,
        kernel_stamps: bool,
        ok: bool,
        out: &mut dyn FrameOutput,
    ) -> SendOutcome {
        let late = tx.mono_ns.saturating_sub(probe.scheduled_ns);
        self.lateness.record(late);
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
        if !ok || full {
            of.frame.errors = of.frame.errors.saturating_add(1);
            h.consecutive_errors = h.consecutive_errors.saturating_add(1);
            let n = h.consecutive_errors;
            self.stats.sent += 1;
            self.stats.errors += 1;
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

    /// Returns the serial of the host's frame for a send at `real_us`, rotating the
    /// current frame if the send falls in another period.
    fn frame_for_send(&mut self, id: HostId, real_us: u64, out: &mut dyn FrameOutput) -> u64 {
        let period = self.cfg.period_us;
        let start = period_start(real_us, period);
        let needs_rotation = match self.host(id).and_then(|h| h.frames.back()) {
            Some(f) => f.closed || f.frame.start_us != start || f.frame.period_us != period,
            None => true,
        };
        if needs_rotation {
            self.rotate(id, start, out);
        }
        self.host(id)
            .and_then(|h| h.frames.back())
            .map_or(0, |f| f.serial)
    }

    fn rotate(&mut self, id: HostId, start_us: u64, out: &mut dyn FrameOutput) {
        let Some(h) = self.host(id) else { return };
        if h.retiring {
            return;
        }
        let frame = self.new_frame(start_us);
        let Some(h) = self.host_mut(id) else { return };
        let mut flags = 0;
        if let Some(cur) = h.frames.back_mut() {
            cur.closed = true;
            if start_us < cur.frame.start_us {
                // Wall clock went backwards.
                flags |= FLAG_CLOCK_STEP;
            }
        }
        let serial = h.next_serial;
        h.next_serial += 1;
        let mut of = OpenFrame {
            serial,
            frame,
            outstanding: 0,
            closed: false,
        };
        of.frame.flags |= flags;
        h.frames.push_back(of);
        self.try_finalize(id, out);
    }

    /// Emits the host's final frames (oldest first) and recycles them.
    fn try_finalize(&mut self, id: HostId, out: &mut dyn FrameOutput) {
        let slot = id.slot as usize;
        loop {
            let Some(Some(h)) = self.hosts.get_mut(slot) else {
                return;
            };
            if h.generation != id.generation {
                return;
            }
            let final_ = matches!(h.frames.front(), Some(f) if f.closed && f.outstanding == 0);
            if !final_ {
                if h.retiring && h.frames.is_empty() {
                    out.host_retired(id, &h.label);
                    self.hosts[slot] = None;
                }
                return;
            }
            let Some(of) = h.frames.pop_front() else {
                return;
            };
            if !of.frame.is_empty() {
                h.status.add_frame(&of.frame);
                out.frame(id, &h.label, &of.frame);
            }
            self.free_frames.push(of.frame);
        }
    }

    /// Deadline of the oldest request still in flight, monotonic ns.
    fn first_in_flight_deadline(&self) -> Option<u64> {
        if self.unresolved == 0 {
            return None;
        }
        self.tables
            .iter()
            .filter_map(SeqTable::first_in_flight_deadline)
            .min()
    }

    /// Whether a request still in flight has passed its deadline at `now_mono_ns`: then
    /// the loop establishes the receive frontier before [`Engine::tick`] (which only
    /// declares a request lost once the frontier has passed its deadline).
    pub fn expiry_due(&self, now_mono_ns: u64) -> bool {
        self.first_in_flight_deadline()
            .is_some_and(|d| d <= now_mono_ns)
    }

    /// Rotates current frames at period boundaries and expires timed-out requests.
    /// Call every loop iteration (after draining replies).
    ///
    /// `received_through_ns` is the receive frontier (monotonic): every reply the kernel
    /// stamped before it has been handed to [`Engine::on_reply`] already. A request still
    /// in flight is declared lost only when its deadline is behind the frontier: a reply
    /// stamped in time can no longer come, however late the receive thread ran. Requests
    /// already answered are swept by the clock alone.
    pub fn tick(&mut self, now: Now, received_through_ns: u64, out: &mut dyn FrameOutput) {
        // Expire.
        for fi in 0..2 {
            loop {
                let t = &mut self.tables[fi];
                if t.live() == 0 {
                    break;
                }
                let slot = t.idx(t.oldest);
                let e = t.entries[slot];
                let limit = if e.state == State::InFlight {
                    received_through_ns.min(now.mono_ns)
                } else {
                    now.mono_ns
                };
                if e.deadline_ns > limit {
                    break;
                }
                t.oldest = t.oldest.wrapping_add(1);
                let lost = e.state == State::InFlight;
                t.entries[slot].state = State::Expired { lost };
                if lost {
                    self.unresolved = self.unresolved.saturating_sub(1);
                    self.stats.lost += 1;
                    self.with_frame(e.host, e.frame_serial, |of| {
                        of.frame.lost = of.frame.lost.saturating_add(1);
                        of.outstanding = of.outstanding.saturating_sub(1);
                    });
                    self.try_finalize(e.host, out);
                }
            }
            self.tables[fi].advance_scan();
        }
        // Rotate.
        let now_us = now.real_us();
        if self.next_boundary_us != 0 && now_us >= self.next_boundary_us {
            let period = self.cfg.period_us;
            let start = period_start(now_us, period);
            for slot in 0..self.hosts.len() {
                let Some(h) = &self.hosts[slot] else { continue };
                let id = HostId {
                    slot: slot as u32,
                    generation: h.generation,
                };
                let needs = match h.frames.back() {
                    Some(f) => !h.retiring && (f.frame.start_us != start || f.closed),
                    None => false,
                };
                if needs {
                    self.rotate(id, start, out);
                }
            }
            self.next_boundary_us = start + u64::from(period);
        }
    }

    /// Runs `f` on the host's frame with `serial` if open, else on its oldest open frame.
    /// Returns false when the host has no open frame.
    fn with_frame(&mut self, id: HostId, serial: u64, f: impl FnOnce(&mut OpenFrame)) -> bool {
        let Some(h) = self.host_mut(id) else {
            return false;
        };
        let Some(front) = h.frames.front() else {
            return false;
        };
        let idx = serial.wrapping_sub(front.serial);
        let idx = if idx < h.frames.len() as u64 {
            idx as usize
        } else {
            0
        };
        match h.frames.get_mut(idx) {
            Some(of) => {
                f(of);
                true
            }
            None => false,
        }
    }

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
        if is_error {
            if e.state != State::InFlight {
                // Error about an already resolved request: nothing to record.
                return ReplyOutcome::Ignored;
            }
            self.tables[r.family.index()].entries[seq_i].state = State::Resolved;
            self.unresolved = self.unresolved.saturating_sub(1);
            self.stats.errors += 1;
            self.with_frame(e.host, e.frame_serial, |of| {
                of.frame.errors = of.frame.errors.saturating_add(1);
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
            e.tx_mono_ns += stamp - lo;
            e.tx_kernel = true;
            e.tx_stamp_real_ns = stamp;
            self.stats.tx_stamped += 1;
            return ReplyOutcome::Ignored;
        }
        self.stats.tx_unmatched += 1;
        ReplyOutcome::Ignored
    }

    /// Closes every frame and declares every request in flight lost, emitting all frames
    /// (clean shutdown after the timeout could not be waited for).
    pub fn finish(&mut self, out: &mut dyn FrameOutput) {
        for fi in 0..2 {
            while self.tables[fi].live() > 0 {
                let t = &mut self.tables[fi];
                let seq = t.idx(t.oldest);
                t.oldest = t.oldest.wrapping_add(1);
                let e = t.entries[seq];
                if e.state == State::InFlight {
                    t.entries[seq].state = State::Expired { lost: true };
                    self.unresolved = self.unresolved.saturating_sub(1);
                    self.stats.lost += 1;
                    self.with_frame(e.host, e.frame_serial, |of| {
                        of.frame.lost = of.frame.lost.saturating_add(1);
                        of.outstanding = of.outstanding.saturating_sub(1);
                    });
                } else {
                    t.entries[seq].state = State::Expired { lost: false };
                }
            }
        }
        for slot in 0..self.hosts.len() {
            let Some(h) = &mut self.hosts[slot] else {
                continue;
            };
            for f in h.frames.iter_mut() {
                f.closed = true;
                f.outstanding = 0;
            }
            let id = HostId {
                slot: slot as u32,
                generation: h.generation,
            };
            self.try_finalize(id, out);
        }
    }

    /// Number of requests in flight (both families).
    pub fn in_flight(&self) -> usize {
        self.tables.iter().map(|t| usize::from(t.live())).sum()
    }
}

/// Result of [`Engine::commit_send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    /// In flight. `recovered_after` > 0 ends a burst of that many errors.
    Sent {
        /// Errors in the burst that just ended (0: none).
        recovered_after: u32,
    },
    /// Counted as an error.
    Failed {
        /// Consecutive failures of this host so far (1: a burst starts).
        consecutive: u32,
        /// The sequence space was full.
        seq_exhausted: bool,
    },
    /// The host no longer exists.
    Ignored,
}

/// Result of [`Engine::on_reply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyOutcome {
    /// First reply within the timeout.
    Received {
        /// RTT, ns.
        rtt_ns: u64,
    },
    /// Duplicate reply.
    Duplicate,
    /// Reply after the timeout.
    Late,
    /// ICMP error for one of our requests.
    Error,
    /// Not ours (other identifier, unknown request, wrong source/token).
    Unmatched,
    /// Not a reply at all, or nothing to record.
    Ignored,
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

/// Interval for `rate` pings per second (rate clamped to the supported 0.001..=100000).
pub fn interval_ns(rate: f64) -> u64 {
    let rate = if rate.is_finite() { rate } else { 1.0 };
    let rate = rate.clamp(0.001, 100_000.0);
    (1e9 / rate).round() as u64
}

#[cfg(test)]
mod tests;
