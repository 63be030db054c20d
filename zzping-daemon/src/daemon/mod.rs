//! The main thread: one mio event loop, written as a table of stages.
//!
//! One `ppoll` on the epoll fd per wakeup, one match on the token per event, and each
//! step below a named function (in the order it runs):
//!
//! | step | what | file |
//! |---|---|---|
//! | `open` | ICMP sockets (then every capability dropped), data directory (locked), signalfd, poll, live stream and exporter (fatal when asked for and impossible), receive thread, engine, retention, targets started, chores armed, `READY=1` | `open.rs` |
//! | clock check | a wall-clock step against the monotonic clock flags the open frames and is recorded as a `clock_step` event, or as a `suspend` when `CLOCK_BOOTTIME` ran on meanwhile | here |
//! | `on_event` | the events that ended the sleep: [`SIGNALS`] (SIGINT/SIGTERM stop, SIGHUP reloads), [`WAKER`] (the receive queue is filling up), [`NETLINK`] (link, route and address changes: `Daemon::on_net_event`), [`PROBE`] (the discovery's probe answers), [`LIVE`] (live-stream datagrams), [`METRICS`] and its connections (`/metrics` scrapes) | here, `net.rs` |
//! | `take_replies` | the receive frontier when a loss is due to be declared, then the receive thread's queue into the engine (matching, RTTs) | here |
//! | `send_due` | every request due: `sendto`, then committed with its timing | `send.rs` |
//! | `tick` | the engine's expiries and frame rotation; the live server's datagrams and paced history; the exporter's connection deadlines | here |
//! | `chores` | the due chores (`timers.rs`): flush, status table, name re-resolution, retry of unresolved names, discovery of the ISP's edge, totals log, retention, watchdog, end of `--duration`, end of waiting for replies when stopping | here, `targets.rs`, `discover.rs` |
//! | `sleep` | until the earliest deadline (engine, live server, exporter, chores) or an event | here |
//! | `shutdown` | every frame final, the last live datagrams, fsync, the receive thread joined, `/metrics` kept up for `metrics_linger_s`, the exit line | here |
//!
//! Final frames leave the engine through [`Outputs`] (`outputs.rs`): quantized once for
//! the files and the live stream, counted by the exporter. Context events
//! ([`zzping_lib::events`]) go there too: `daemon_start` once open, `daemon_stop` with
//! its reason at shutdown (or on a failure of the loop), `reload` with what it applied,
//! `clock_step` and `suspend` from the clock check (and the flush chore, which looks for
//! a suspend too), link, route and address changes from netlink (`net_context.rs`). Targets and re-resolution are
//! in `targets.rs`, discovered targets (gateways, the ISP's edge) in `discover.rs`, the SIGHUP reload in `reload.rs`, the status table and log lines in
//! `report.rs`.
//!
//! # Time
//! The loop reads the clocks once per wakeup ([`clock::now`]) and hands that [`Now`] to
//! every step and part (engine, outputs, live server, exporter). Only the send step reads
//! them again, around each `sendto` (the send time and the bracket of its kernel stamp),
//! and the sleep converts its deadline to a timeout.
//!
//! # Stopping
//! A signal or the end of `--duration` stops the sends; the loop keeps receiving until
//! every request in flight has an outcome or its timeout (plus grace) has passed, then
//! shuts down. A second signal stops at once (and skips the `/metrics` linger).

mod discover;
mod net;
mod net_context;
mod open;
mod outputs;
mod reload;
mod report;
mod resolve;
mod retention;
mod send;
mod targets;
mod timers;

use std::os::fd::AsRawFd;
use std::sync::Arc;

use anyhow::{Context, Result};
use mio::{Events, Poll, Token, Waker};
use tracing::{info, warn};
use zzping_lib::events::ContextEvent;
use zzping_lib::frame::FLAG_RECV_OVERFLOW;

use crate::clock::{self, Now, SuspendWatch};
use crate::config::{Cli, Config};
use crate::engine::{Engine, Reply};
use crate::icmp;
use crate::metrics::Health;
use crate::notify::Notifier;
use crate::recv::{self, Receiver, ReplyQueue};
use crate::sock::IcmpSocket;
use crate::sys::{self, SignalFd};

pub use outputs::Outputs;
pub use report::{RunReport, write_status};
pub use resolve::RESOLVE_DELAY_ENV;
use timers::{Chore, Timers};

/// Signal token.
pub const SIGNALS: Token = Token(1);
/// Receive-thread waker token.
pub const WAKER: Token = Token(2);
/// The live-stream server's socket.
pub const LIVE: Token = Token(3);
/// The Prometheus exporter's listener (connections: `metrics::CONN_BASE + slot`).
pub const METRICS: Token = Token(4);
/// The netlink monitor's socket (link, route and address changes).
pub const NETLINK: Token = Token(5);
/// The discovery's probe sockets (answers to TTL-limited probes).
pub const PROBE: Token = Token(6);

/// How long after a request's timeout it is expected to be expired under ordinary
/// scheduling (the engine's grace: the longest receive window plus the loop's latency).
/// Sizes tables and the clean stop's wait; whether a request is lost is decided by the
/// receive frontier (`recv::frontier`), not by this.
pub const GRACE_NS: u64 = crate::recv::WINDOW_NS + 5_000_000;
/// Replies the receive queue holds.
const QUEUE_CAPACITY: usize = 16_384;
const SEC: u64 = 1_000_000_000;
/// How often the totals are logged (info).
const STATS_EVERY_NS: u64 = 900 * SEC;
/// How often retention runs.
const RETENTION_EVERY_NS: u64 = 3600 * SEC;
/// The longest wait between two tries to write while recording fails.
const WRITE_RETRY_MAX_NS: u64 = 60 * SEC;
/// How soon retention runs again when a pass stopped at its bound.
const RETENTION_BACKLOG_NS: u64 = SEC;
/// What is left of a wall-clock step once the suspend that came with it is taken out is
/// a clock step of its own only beyond this (the wall clock is set from the hardware
/// clock at resume, to about a second).
const STEP_AFTER_SUSPEND_NS: i128 = 2 * SEC as i128;
/// A loop that wakes this much later than due was not scheduled (a paused VM, a stopped
/// process, a starved CPU): recorded as a `stall` event. Far beyond any scheduling delay
/// of a running machine (milliseconds); the lateness beyond which the engine skips the
/// missed sends, so the gap the event spans is the one they leave.
const STALL_MIN_NS: u64 = crate::engine::SKIP_BEHIND_NS;

fn secs_ns(s: f64) -> u64 {
    (s * 1e9).clamp(1.0, 1e18) as u64
}

/// Where the loop is in stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Pinging.
    Running,
    /// No more sends; waiting for the requests in flight.
    Draining,
    /// Leave the loop (`linger`: serve `/metrics` for `metrics_linger_s` first).
    Now { linger: bool },
}

impl Stop {
    fn is_stopping(self) -> bool {
        self != Stop::Running
    }
}

/// The loop's state: the parts it drives and the scratch it reuses.
struct Daemon {
    /// Held for the daemon's life: one daemon per data directory.
    _data_dir_lock: crate::lock::DataDirLock,
    cfg: Config,
    cli: Cli,
    engine: Engine,
    outputs: Outputs,
    sockets: [Option<Arc<IcmpSocket>>; 2],
    targets: Vec<targets::Target>,
    poll: Poll,
    signals: SignalFd,
    /// The receive thread's waker (it holds a clone; kept for the loop's lifetime).
    _waker: Arc<Waker>,
    queue: Arc<ReplyQueue>,
    /// The sockets the receive thread reads (for the loop's own frontier proof).
    recv_sockets: Vec<Arc<IcmpSocket>>,
    /// Monotonic ns through which every message the kernel queued has been handed to the
    /// engine (the receive frontier, taken before this wakeup's drain; 0: not needed).
    received_through: u64,
    /// Monotonic ns the loop was due to wake at when it last slept (0: not yet slept).
    due_ns: u64,
    receiver: Option<Receiver>,
    notifier: Notifier,
    timers: Timers,
    retention: retention::Retention,
    stop: Stop,
    /// Why the daemon stops (the first reason given), for its `daemon_stop` event.
    stop_reason: Option<String>,
    /// Finds suspends (`CLOCK_BOOTTIME` against `CLOCK_MONOTONIC`).
    suspend: SuspendWatch,
    /// The run ended because `--duration` was reached (not by a signal): only then does
    /// the exit status say whether every host answered.
    duration_reached: bool,
    /// Replies taken from the queue (reused).
    replies: Vec<Reply>,
    /// The echo request being sent (reused).
    packet: [u8; icmp::PACKET_LEN],
    /// Messages of the send sockets' error queues (reused; stamps carry no payload).
    stamp_batch: crate::sock::RecvBatch,
    /// Per family, stamped sends whose transmit stamp has not been read yet.
    stamps_due: [u32; 2],
    /// Stamped sends since the transmit stamps were last read (bounds what waits on the
    /// error queues even when some stamps never come).
    stamps_unread: u32,
    /// Queue drops already reported.
    queue_drops_seen: u64,
    /// Lines of the last status table (to redraw it in place on a TTY).
    status_lines: usize,
    /// The wait before the next flush while recording fails (0: it works).
    flush_retry_ns: u64,
    tty: bool,
    /// Process CPU time at start, ns.
    cpu0: u64,
    /// Link, route and address changes (`None`: netlink could not be opened).
    netlink: Option<crate::netlink::NetlinkMonitor>,
    /// Events read from netlink (reused).
    net_events: Vec<crate::netlink::NetEvent>,
    /// Which netlink changes are context events.
    net_context: net_context::NetContext,
    /// Discovered targets: the gateways and the ISP's edge (`discover.rs`).
    discovery: discover::Discovery,
    /// Names are resolved on their own thread; its answers, taken every wakeup.
    resolver: resolve::Resolver,
    resolved: Vec<resolve::Answer>,
    /// The TTL of each host's requests.
    host_ttl: std::collections::HashMap<crate::engine::HostId, u8>,
    /// The TTL each family's socket sends with now.
    sock_ttl: [u8; 2],
    /// The interface of each host whose address needs one (a link-local gateway).
    host_scope: std::collections::HashMap<crate::engine::HostId, u32>,
}

/// Runs the daemon until SIGINT/SIGTERM or the end of `--duration`.
pub fn run(cli: Cli, cfg: Config) -> Result<RunReport> {
    let mut d = Daemon::open(cli, cfg)?;
    if let Err(e) = d.run_loop() {
        // What was recorded is kept, with the reason the recording ends.
        d.outputs.record(ContextEvent::daemon_stop(
            clock::now().real_us(),
            &format!("failure: {e:#}"),
        ));
        d.outputs.flush_at_exit();
        return Err(e);
    }
    Ok(d.shutdown())
}

impl Daemon {
    /// The loop, until it is time to leave (or it fails).
    fn run_loop(&mut self) -> Result<()> {
        let mut events = Events::with_capacity(16);
        loop {
            let now = clock::now();
            self.outputs.set_now(now);
            self.check_clock(now);
            self.check_stall(now);
            for ev in events.iter() {
                self.on_event(ev.token(), now);
            }
            self.take_replies(now);
            self.take_resolved(now);
            self.send_due(now);
            self.tick(now);
            self.chores(now);
            if self.leaving() {
                return Ok(());
            }
            self.sleep(now, &mut events)?;
        }
    }

    /// Flags the open frames when the wall clock stepped against the monotonic clock, and
    /// records the step, or the suspend it was.
    fn check_clock(&mut self, now: Now) {
        if let Some(step) = self.engine.observe_clock(now) {
            let suspended = self.check_suspend(now).map_or(0, i128::from);
            let rest = step - suspended;
            if suspended == 0 || rest.abs() > STEP_AFTER_SUSPEND_NS {
                self.engine.flag_clock_step();
                warn!(
                    "wall clock stepped by {:.3} s; frames flagged",
                    rest as f64 / 1e9
                );
                let step_us = (rest / 1000).clamp(i128::from(i64::MIN), i128::from(i64::MAX));
                self.outputs
                    .record(ContextEvent::clock_step(now.real_us(), step_us as i64));
            }
        }
    }

    /// Records a stall when the loop wakes [`STALL_MIN_NS`] or more after it was due: the
    /// daemon was not scheduled, or its last pass blocked (nothing on the loop is meant
    /// to); its sends meanwhile are skipped (see the engine), which the files must tell
    /// from an outage. A suspend is not one: the monotonic clock stops with the machine.
    fn check_stall(&mut self, now: Now) {
        let late = now.mono_ns.saturating_sub(self.due_ns);
        if self.due_ns == 0 || late < STALL_MIN_NS {
            return;
        }
        let late_us = late / 1000;
        self.engine.note_stall(late);
        warn!(
            "the daemon's loop ran {:.3} s late: it was not scheduled (the machine or its VM \
             paused, the process stopped, the CPU starved) or blocked (see the warnings \
             before); no pings sent meanwhile",
            late as f64 / 1e9
        );
        self.outputs.record(ContextEvent::stall(
            now.real_us().saturating_sub(late_us),
            late_us,
        ));
    }

    /// Records a suspend if the machine was suspended since the last check; returns its
    /// length, ns.
    fn check_suspend(&mut self, now: Now) -> Option<u64> {
        let ns = self.suspend.check()?;
        let us = ns / 1000;
        // It began that long before the wall clock now (which ran on meanwhile).
        self.outputs
            .record(ContextEvent::suspend(now.real_us().saturating_sub(us), us));
        Some(ns)
    }

    /// One event that ended the sleep.
    fn on_event(&mut self, token: Token, now: Now) {
        match token {
            SIGNALS => {
                while let Some(sig) = self.signals.read() {
                    match sig {
                        libc::SIGHUP => self.reload(now),
                        _ => self.begin_stop(now, &format!("signal {sig}")),
                    }
                }
            }
            // The replies are taken every wakeup; the waker only ended the sleep.
            WAKER => {}
            NETLINK => self.read_netlink(now),
            PROBE => self.read_probes(now),
            LIVE => {
                if let Some(l) = &mut self.outputs.live {
                    l.on_readable();
                }
            }
            t if self.outputs.metrics.as_ref().is_some_and(|m| m.owns(t)) => {
                let h = self.health(false);
                if let Some(m) = &mut self.outputs.metrics {
                    m.on_event(t, now.mono_ns, &h);
                }
            }
            _ => {}
        }
    }

    /// Hands the receive thread's replies to the engine; a queue overflow flags the open
    /// frames. First, when a request in flight is due to be declared lost, takes the
    /// receive frontier (how far the receive thread has handed everything over); only
    /// once the expiry slack is spent does it ask the receive thread for a wakeup when
    /// the frontier cannot be proven (before, a round wakeup after the thread's next read
    /// proves it).
    fn take_replies(&mut self, now: Now) {
        let expiry_due = self.engine.expiry_due(now.mono_ns);
        self.received_through = if expiry_due {
            let overdue = self.engine.expiry_overdue(now.mono_ns);
            recv::frontier(&self.queue, &self.recv_sockets, GRACE_NS, overdue)
        } else {
            0
        };
        self.replies.clear();
        self.queue.drain_into(&mut self.replies);
        // The stamps of these replies' requests were queued before the replies arrived:
        // read them first, so each reply finds its kernel send time.
        if self.stamps_wanted(expiry_due) {
            self.read_tx_stamps(now);
        }
        for r in &self.replies {
            self.engine.on_reply(r, &mut self.outputs);
        }
        if let Some(m) = &mut self.outputs.metrics {
            m.exporter.note_replies(&self.replies);
        }
        let dropped = self.queue.dropped();
        if dropped != self.queue_drops_seen {
            warn!(
                "receive queue overflow: {} replies dropped",
                dropped - self.queue_drops_seen
            );
            self.queue_drops_seen = dropped;
            self.engine.flag_all(FLAG_RECV_OVERFLOW);
        }
    }

    /// Per-wakeup work of the engine, the live server and the exporter.
    fn tick(&mut self, now: Now) {
        self.engine
            .tick(now, self.received_through, &mut self.outputs);
        if let Some(l) = &mut self.outputs.live {
            // Live work goes where no send is due (see `live` module docs).
            let idle_ns = self.engine.next_deadline(now).saturating_sub(now.mono_ns);
            l.pump(now.real_us(), now.mono_ns, idle_ns);
        }
        if let Some(m) = &mut self.outputs.metrics {
            m.tick(now.mono_ns);
        }
    }

    /// Runs every due chore (each re-arms itself if it repeats).
    fn chores(&mut self, now: Now) {
        while let Some(chore) = self.timers.take_due(now.mono_ns) {
            match chore {
                Chore::Flush => {
                    self.check_suspend(now);
                    let every = secs_ns(self.cfg.flush_interval_s);
                    // While recording fails, retries back off (doubling, up to a minute).
                    self.flush_retry_ns = if self.outputs.flush(false) {
                        0
                    } else {
                        (self.flush_retry_ns.max(every / 2) * 2).min(WRITE_RETRY_MAX_NS.max(every))
                    };
                    self.timers
                        .arm(chore, now.mono_ns + self.flush_retry_ns.max(every));
                }
                Chore::Status => {
                    let footer = report::recording_line(
                        self.recording(),
                        self.outputs.failing(),
                        self.outputs.pending_frames(),
                    );
                    self.status_lines = write_status(
                        &mut self.engine,
                        &mut std::io::stdout().lock(),
                        self.tty,
                        self.status_lines,
                        footer.as_deref(),
                    );
                    self.timers.arm(chore, now.mono_ns + SEC);
                }
                Chore::Resolve => {
                    self.re_resolve(now);
                    self.timers
                        .arm(chore, now.mono_ns + secs_ns(self.cfg.resolve_interval_s));
                }
                // Re-armed by `start_target` while some name still does not resolve.
                Chore::RetryUnresolved => self.retry_unresolved(now),
                // Re-armed by `start_target` while some label is still retiring.
                Chore::StartWaiting => self.start_waiting(now),
                Chore::Stats => {
                    info!("running: {}", self.summary());
                    self.timers.arm(chore, now.mono_ns + STATS_EVERY_NS);
                }
                Chore::Retention => self.apply_retention(now),
                Chore::Watchdog => {
                    self.notifier.watchdog();
                    if let Some(every) = self.notifier.watchdog_interval_ns() {
                        self.timers.arm(chore, now.mono_ns + every);
                    }
                }
                Chore::End => {
                    self.duration_reached = true;
                    self.begin_stop(now, "duration reached");
                }
                Chore::GiveUpWaiting => {
                    if self.stop == Stop::Draining {
                        self.stop = Stop::Now { linger: true };
                    }
                }
                // Armed only by `linger`.
                Chore::LingerEnd => {}
                Chore::Discover => self.discover_due(now),
            }
        }
    }

    /// Stops the sends and starts waiting for the replies in flight; a second call stops
    /// at once.
    fn begin_stop(&mut self, now: Now, why: &str) {
        if self.stop.is_stopping() {
            info!("{why} while stopping: stopping now");
            self.stop = Stop::Now { linger: false };
            return;
        }
        info!("{why}: stopping (waiting for replies in flight)");
        self.stop_reason = Some(why.to_owned());
        self.notifier.stopping();
        self.engine.stop_sending();
        self.stop = Stop::Draining;
        let c = self.engine.config();
        self.timers.disarm(Chore::End);
        self.timers.arm(
            Chore::GiveUpWaiting,
            now.mono_ns + c.timeout_ns + c.grace_ns,
        );
    }

    /// Whether the loop is done: stopped at once, or stopping with nothing in flight.
    fn leaving(&mut self) -> bool {
        if self.stop == Stop::Draining && self.engine.unresolved() == 0 {
            self.stop = Stop::Now { linger: true };
        }
        matches!(self.stop, Stop::Now { .. })
    }

    /// The earliest deadline of the engine, the live server, the exporter and the chores
    /// (monotonic ns).
    fn next_deadline(&self, now: Now) -> u64 {
        let mut next = self
            .engine
            .next_deadline(now)
            .min(self.timers.next().unwrap_or(u64::MAX));
        if let Some(t) = self
            .outputs
            .live
            .as_ref()
            .and_then(|l| l.next_deadline_us(now.real_us()))
        {
            // Wall-clock µs to monotonic ns.
            let mono = i128::from(t) * 1000 - now.offset_ns();
            next = next.min(mono.clamp(0, i128::from(u64::MAX)) as u64);
        }
        if let Some(t) = self
            .outputs
            .metrics
            .as_ref()
            .and_then(|m| m.next_deadline())
        {
            next = next.min(t);
        }
        next
    }

    /// Sleeps until the next deadline or an event, collecting the events (if any) into
    /// `events`.
    fn sleep(&mut self, now: Now, events: &mut Events) -> Result<()> {
        let next = self.next_deadline(now);
        self.due_ns = next.max(now.mono_ns);
        wait(&mut self.poll, next, events)
    }

    /// Daemon-wide values for a scrape.
    fn health(&self, stopped: bool) -> Health {
        Health {
            stats: self.engine.stats(),
            lateness: *self.engine.lateness(),
            rx_wait: *self.engine.rx_wait(),
            queue_drops: self.queue_drops_seen,
            frames: self.outputs.frames,
            write_errors: self.outputs.write_errors(),
            unrecorded_frames: self.outputs.unrecorded_frames(),
            recording_failing: self.outputs.failing(),
            stopped,
            cpu_ns: sys::process_cpu_ns(),
        }
    }

    /// How recording went since start.
    fn recording(&self) -> report::Recording {
        report::Recording {
            write_errors: self.outputs.write_errors(),
            unrecorded_frames: self.outputs.unrecorded_frames(),
        }
    }

    /// The totals line of the periodic and exit logs.
    fn summary(&self) -> String {
        report::summary(
            &self.engine,
            self.outputs.frames,
            self.recording(),
            sys::process_cpu_ns().saturating_sub(self.cpu0),
            self.queue_drops_seen,
        )
    }

    /// A retention pass (see `retention.rs`), if `retention_days` is set; the next one
    /// in an hour, or in a second while files are due.
    fn apply_retention(&mut self, now: Now) {
        let more = match self.cfg.retention_days {
            Some(days) => self.retention.pass(&self.cfg.data_dir, days, now),
            None => false,
        };
        let after = if more {
            RETENTION_BACKLOG_NS
        } else {
            RETENTION_EVERY_NS
        };
        self.timers.arm(Chore::Retention, now.mono_ns + after);
    }

    /// Every frame made final and written, the receive thread stopped, `/metrics` kept
    /// up for the linger, the exit line logged.
    fn shutdown(mut self) -> RunReport {
        let now = clock::now();
        self.outputs.set_now(now);
        self.engine.finish(&mut self.outputs);
        let reason = self.stop_reason.take().unwrap_or_else(|| "stopped".into());
        self.outputs
            .record(ContextEvent::daemon_stop(now.real_us(), &reason));
        if let Some(l) = &mut self.outputs.live {
            // Let subscribers have the last frames.
            l.flush(now.real_us());
        }
        self.outputs.flush_at_exit();
        self.outputs.stop_alerts();
        if let Some(r) = self.receiver.take() {
            r.stop();
        }
        self.queue_drops_seen = self.queue.dropped();
        if self.outputs.metrics.is_some()
            && self.cfg.metrics_linger_s > 0.0
            && self.stop == (Stop::Now { linger: true })
        {
            self.linger(secs_ns(self.cfg.metrics_linger_s));
        }
        let st = self.engine.stats();
        let cpu_ns = sys::process_cpu_ns().saturating_sub(self.cpu0);
        let report = RunReport {
            sent: st.sent,
            received: st.received,
            frames: self.outputs.frames,
            cpu_ns,
            late_p99_us: self.engine.lateness().quantile_us(0.99),
            tx_stamped: st.tx_stamped,
            finite: self.duration_reached,
            never_answered: self.engine.never_answered(),
            unresolved: self
                .targets
                .iter()
                .filter(|t| t.id.is_none())
                .map(|t| t.cfg.label().to_string())
                .collect(),
            targets: self.targets.len(),
        };
        if self.outputs.unrecorded_events() > 0 {
            warn!(
                "{} context events could not be written",
                self.outputs.unrecorded_events()
            );
        }
        info!("stopped: {}", self.summary());
        report
    }

    /// After pinging stopped and every frame is final: keeps answering `/metrics` (with
    /// the final counts and `zzping_stopped 1`) for `for_ns`, or until a signal.
    fn linger(&mut self, for_ns: u64) {
        info!(
            "pinging stopped, counts final; serving /metrics for {:.1} s more (a signal ends it)",
            for_ns as f64 / 1e9
        );
        let start = clock::mono_ns();
        self.timers.disarm_all();
        self.timers
            .arm(Chore::LingerEnd, start.saturating_add(for_ns));
        if self.notifier.watchdog_interval_ns().is_some() {
            self.timers.arm(Chore::Watchdog, start);
        }
        let mut events = Events::with_capacity(16);
        loop {
            let now = clock::now();
            for ev in events.iter() {
                match ev.token() {
                    SIGNALS if self.signals.read().is_some() => {
                        info!("signal: stopping now");
                        return;
                    }
                    t => {
                        let h = self.health(true);
                        if let Some(m) = self.outputs.metrics.as_mut().filter(|m| m.owns(t)) {
                            m.on_event(t, now.mono_ns, &h);
                        }
                    }
                }
            }
            let Some(m) = &mut self.outputs.metrics else {
                return;
            };
            m.tick(now.mono_ns);
            let next = m.next_deadline().unwrap_or(u64::MAX);
            while let Some(chore) = self.timers.take_due(now.mono_ns) {
                match chore {
                    Chore::Watchdog => {
                        self.notifier.watchdog();
                        if let Some(every) = self.notifier.watchdog_interval_ns() {
                            self.timers.arm(chore, now.mono_ns + every);
                        }
                    }
                    _ => return,
                }
            }
            let next = next.min(self.timers.next().unwrap_or(u64::MAX));
            if let Err(e) = wait(&mut self.poll, next, &mut events) {
                warn!("{e:#}");
                return;
            }
        }
    }
}

/// Sleeps until monotonic `deadline_ns` or an event: `ppoll` on the epoll fd has ns
/// precision and leaves events queued, so a wakeup for a send costs no `epoll_wait` and
/// no timerfd round trip (two syscalls per ping instead of four). mio collects the events
/// only when some are pending; `events` is left empty otherwise (and when interrupted).
fn wait(poll: &mut Poll, deadline_ns: u64, events: &mut Events) -> Result<()> {
    events.clear();
    match sys::wait_readable_until(poll.as_raw_fd(), deadline_ns) {
        Ok(true) => match poll.poll(events, Some(std::time::Duration::ZERO)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                events.clear();
                Ok(())
            }
            Err(e) => Err(e).context("polling"),
        },
        Ok(false) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(()),
        Err(e) => Err(e).context("waiting for events"),
    }
}
