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
//!
//! # Files
//! This module holds the hosts, the schedule and the deadlines; `send.rs` the sends and
//! their timing, `reply.rs` matching and RTTs, `frames.rs` a frame's life (rotation,
//! attribution, expiry, emission), `seq.rs` the sequence tables, `stats.rs` the counters.

mod frames;
mod reply;
mod send;
mod seq;
mod stats;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::IpAddr;

use zzping_lib::frame::{FLAG_CLOCK_STEP, Frame, period_start};

use crate::clock::Now;
use crate::icmp::{Family, Message};

use frames::OpenFrame;
use seq::SeqTable;
pub use stats::{DelayHistogram, EngineStats, HostStatus};

/// Size of a family's sequence space (16-bit ICMP sequence numbers).
const SEQ_SPACE: usize = 1 << 16;
/// Smallest in-flight table per family. Tables are direct-mapped by `seq & mask` and sized
/// to twice the requests that can be in flight at the configured rates (rate x (timeout +
/// grace + slack + one period)), rounded up to a power of two, so memory follows the
/// configuration (72 KB per family at 1,000 pings/s, 4.7 MB only at the 65,536 cap).
const MIN_TABLE: usize = 1 << 10;
/// How much later than its deadline a request still in flight may be declared lost while
/// the loop is sending: long enough for the receive thread's next read after the
/// deadline (a read of several rounds spans up to `recv::ROUNDS_READ_NS`, 200 ms) and the
/// loop's next round after that read, so the loss is declared at a wakeup the loop has
/// anyway instead of one of its own plus one more after the receive thread's pass (a host
/// that stopped answering beside live ones tripled the loop's wakeups). The outcome is
/// decided by timestamps; only the frame's emission waits.
pub const EXPIRY_SLACK_NS: u64 = 250_000_000;
/// The expiry slack once nothing is scheduled to send (a clean stop's drain): there is no
/// wakeup to ride on, so the loss is declared promptly.
pub const IDLE_EXPIRY_SLACK_NS: u64 = 2_000_000;
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
    /// Replies received in time since the host was added (never reset).
    answered: u64,
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
    /// Wall clock of the latest send since the last [`Engine::tick`], µs (0: none). The
    /// sends of a wakeup read the clock after the tick's reading, and may have crossed a
    /// boundary (a stall mid-round): the tick rotates by the later of the two.
    sent_real_us: u64,
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
            sent_real_us: 0,
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
            answered: 0,
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

    /// Labels of the hosts (not being removed) that never got a reply in time.
    pub fn never_answered(&self) -> Vec<String> {
        self.hosts
            .iter()
            .flatten()
            .filter(|h| !h.retiring && h.answered == 0)
            .map(|h| h.label.clone())
            .collect()
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

    /// Where the sends of a host pinging every `interval_ns` fall, after a frame boundary:
    /// half the boundary's slack ([`BOUNDARY_SLACK_NS`]) or half an interval, whichever is
    /// less. A send there rotates the frames on its own wakeup (the boundary needs none of
    /// its own), and is far from both boundaries, so no lateness short of the frame's rest
    /// can move it into the next frame.
    pub fn round_phase_ns(&self, interval_ns: u64) -> u64 {
        let period_ns = u64::from(self.cfg.period_us) * 1000;
        (BOUNDARY_SLACK_NS.min(period_ns / 4) / 2).min(interval_ns / 2)
    }

    /// The first send, at or after `now`, of a host pinging every `interval_ns`, in the
    /// same round as every other host with that interval: phase-aligned rounds, each a
    /// fixed [`Engine::round_phase_ns`] after a frame boundary (when the interval divides
    /// the frame period or is a multiple of it). One wakeup sends the whole round, and
    /// every host of a round is probed at the same instant (see docs/architecture.md).
    pub fn aligned_first_send_ns(&self, interval_ns: u64, now: Now) -> u64 {
        let interval = i128::from(interval_ns.max(1));
        let boundary_real_ns = i128::from(period_start(now.real_us(), self.cfg.period_us)) * 1000;
        let anchor =
            boundary_real_ns - now.offset_ns() + i128::from(self.round_phase_ns(interval_ns));
        let behind = i128::from(now.mono_ns) - anchor;
        // The first anchor + k * interval at or after now.
        let k = behind.div_euclid(interval) + i128::from(behind.rem_euclid(interval) != 0);
        (anchor + k * interval).clamp(i128::from(now.mono_ns), i128::from(u64::MAX)) as u64
    }

    /// Monotonic time of the next scheduled send (`None`: no host).
    pub fn next_send_ns(&self) -> Option<u64> {
        self.schedule.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Monotonic time of the next thing the engine must do (a send, an expiry, or a frame
    /// rotation), given the current clocks.
    pub fn next_deadline(&self, now: Now) -> u64 {
        let mut d = u64::MAX;
        if let Some(Reverse((t, _, _))) = self.schedule.peek() {
            d = d.min(*t);
        }
        // Expiries only matter for requests still in flight (answered ones are swept
        // lazily at any later wakeup); the slack lets the sends' wakeups do the sweep
        // once the receive frontier has passed the deadline. One overdue waits for the
        // frontier: the receive thread wakes the loop when it passes; the retry is only a
        // safety net.
        if let Some(deadline) = self.first_in_flight_deadline() {
            let due = deadline.saturating_add(self.expiry_slack_ns());
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

    /// How late an expiry may be processed now: [`EXPIRY_SLACK_NS`] while sends are
    /// scheduled, [`IDLE_EXPIRY_SLACK_NS`] once none are.
    fn expiry_slack_ns(&self) -> u64 {
        if self.schedule.is_empty() {
            IDLE_EXPIRY_SLACK_NS
        } else {
            EXPIRY_SLACK_NS
        }
    }

    /// Whether a request still in flight is past its deadline plus the expiry slack at
    /// `now_mono_ns`: the loop can wait no longer for a wakeup it has anyway, and asks the
    /// receive thread to wake it once the frontier may have passed the deadline.
    pub fn expiry_overdue(&self, now_mono_ns: u64) -> bool {
        self.first_in_flight_deadline()
            .is_some_and(|d| d.saturating_add(self.expiry_slack_ns()) <= now_mono_ns)
    }

    /// Checks the wall clock against the monotonic clock; on a jump of their offset
    /// (beyond 5 ms + 500 ppm of the elapsed time: more than NTP slewing can do, less than
    /// the 128 ms beyond which NTP steps) re-derives the next frame boundary from the new
    /// wall clock and returns the jump in ns. A suspend moves the offset too (the
    /// monotonic clock stops while the machine sleeps): the caller tells the two apart
    /// and calls [`Engine::flag_clock_step`] for a step.
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
        // Re-derive the next rotation from the new wall clock.
        self.next_boundary_us =
            period_start(now.real_us(), self.cfg.period_us) + u64::from(self.cfg.period_us);
        Some(step)
    }

    /// Counts a stall of `ns` (the loop ran that long after it was due).
    pub fn note_stall(&mut self, ns: u64) {
        self.stats.stalls += 1;
        self.stats.stalled_ns = self.stats.stalled_ns.saturating_add(ns);
    }

    /// Counts a wall-clock step and flags every host's current frame with
    /// `FLAG_CLOCK_STEP` (its start time may be off by the step).
    pub fn flag_clock_step(&mut self) {
        self.stats.clock_steps += 1;
        self.flag_all(FLAG_CLOCK_STEP);
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

/// Interval for `rate` pings per second (rate clamped to the supported 0.001..=100000).
pub fn interval_ns(rate: f64) -> u64 {
    let rate = if rate.is_finite() { rate } else { 1.0 };
    let rate = rate.clamp(0.001, 100_000.0);
    (1e9 / rate).round() as u64
}

#[cfg(test)]
mod tests;
