//! The main thread: one mio event loop.
//!
//! The loop sleeps until the next deadline (a send, a request expiry, a frame rotation, a
//! flush, a status line, a re-resolution, systemd's watchdog (see [`crate::notify`]), the
//! end of `--duration`) in `ppoll` on the
//! epoll fd, with ns precision and 1 ns timer slack, and collects events only when some
//! are pending: a send costs `ppoll` + `sendto`. Tokens: [`TIMER`] (a `CLOCK_MONOTONIC`
//! timerfd, used only while lingering for /metrics after the end), [`SIGNALS`] (signalfd: SIGINT/SIGTERM stop gracefully, SIGHUP reloads
//! the config), [`WAKER`] (the receive thread's queue is filling up), [`LIVE`] (the
//! live-stream UDP socket, see [`crate::live`]; [`Outputs::live`] gets every final frame),
//! [`METRICS`] (the Prometheus exporter's TCP listener, its connections use
//! `metrics::CONN_BASE..`; see [`crate::metrics`]; [`Outputs::metrics`] counts every
//! final frame).
//!
//! Each iteration: read the clocks, check for a wall-clock step, drain the reply queue,
//! send what is due, expire/rotate/finalize frames, do housekeeping, sleep until the next
//! deadline or event.
//!
//! Name re-resolution runs on this thread (the only other thread is the receiver): it is
//! a blocking `getaddrinfo` per named host every `resolve_interval_s` (default 5 min).
//! With a working resolver that takes well under a millisecond for cached or
//! `/etc/hosts` names; when DNS is down it can stall sends for the resolver's timeout.
//! Hosts given as IP addresses are never resolved. Replies keep their kernel timestamps
//! during such a stall, so RTTs stay exact; only send times slip (and are recorded as
//! lateness).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use tracing::{debug, error, info, warn};
use zzping_lib::file::{HostInfo, HostWriter, WriterConfig};
use zzping_lib::frame::{FLAG_RECV_OVERFLOW, Frame};

use crate::clock::{self, Now};
use crate::config::{self, Cli, Config, HostConfig};
use crate::engine::{Engine, EngineConfig, FrameOutput, HostId, Reply, SendOutcome};
use crate::icmp::{self, Family};
use crate::live::Live;
use crate::metrics::{Health, Metrics};
use crate::notify::Notifier;
use crate::recv::{self, Receiver, ReplyQueue};
use crate::sock::IcmpSocket;
use crate::sys::{self, SignalFd, TimerFd};

/// Timer token.
pub const TIMER: Token = Token(0);
/// Signal token.
pub const SIGNALS: Token = Token(1);
/// Receive-thread waker token.
pub const WAKER: Token = Token(2);
/// Reserved for the live-stream server.
pub const LIVE: Token = Token(3);
/// The Prometheus exporter's listener (connections: `metrics::CONN_BASE + slot`).
pub const METRICS: Token = Token(4);

/// How long after a request's timeout it is expected to be expired under ordinary
/// scheduling (the engine's grace: one receive batching window plus the loop's latency).
/// Sizes tables and the clean stop's wait; whether a request is lost is decided by the
/// receive frontier (`recv::frontier`), not by this.
pub const GRACE_NS: u64 = crate::recv::BATCH_NS + 5_000_000;
/// Replies the receive queue holds.
const QUEUE_CAPACITY: usize = 16_384;
const SEC: u64 = 1_000_000_000;
/// How often the totals are logged (info).
const STATS_EVERY_NS: u64 = 900 * SEC;
/// How often targets whose name did not resolve are retried.
const RETRY_UNRESOLVED_NS: u64 = 10 * SEC;

/// Where final frames go: one file writer per host, plus an optional live tap.
pub struct Outputs {
    writers: HashMap<HostId, HostWriter>,
    /// The live-stream server, when enabled: gets every final frame too.
    pub live: Option<Live>,
    /// The Prometheus exporter, when enabled: counts every final frame.
    pub metrics: Option<Metrics>,
    write_errors: u64,
    failing: bool,
    /// Frames handed over.
    pub frames: u64,
}

impl Outputs {
    fn new() -> Self {
        Outputs {
            writers: HashMap::new(),
            live: None,
            metrics: None,
            write_errors: 0,
            failing: false,
            frames: 0,
        }
    }

    fn note_error(&mut self, what: &str, label: &str, e: &dyn std::fmt::Display) {
        self.write_errors += 1;
        if !self.failing {
            error!("{label}: {what} failed: {e} (further write errors are counted, not logged)");
            self.failing = true;
        }
    }

    fn flush(&mut self, fsync: bool) {
        let mut errs = Vec::new();
        for w in self.writers.values_mut() {
            let r = if fsync { w.sync() } else { w.flush() };
            if let Err(e) = r {
                errs.push((w.host().label.clone(), e));
            }
        }
        if errs.is_empty() {
            if self.failing {
                info!(
                    "writes recovered ({} errors while failing)",
                    self.write_errors
                );
            }
            self.failing = false;
        }
        for (l, e) in errs {
            self.note_error("flush", &l, &e);
        }
    }
}

impl FrameOutput for Outputs {
    fn frame(&mut self, host: HostId, label: &str, frame: &Frame) {
        self.frames += 1;
        if let Some(w) = self.writers.get_mut(&host)
            && let Err(e) = w.append(frame)
        {
            self.note_error("append", label, &e);
        }
        if let Some(l) = &mut self.live {
            l.on_frame(host, frame, zzping_lib::file::wall_clock_us());
        }
        if let Some(m) = &mut self.metrics {
            m.exporter.on_frame(host, frame);
        }
    }

    fn host_retired(&mut self, host: HostId, label: &str) {
        if let Some(mut w) = self.writers.remove(&host)
            && let Err(e) = w.sync()
        {
            self.note_error("sync", label, &e);
        }
        if let Some(l) = &mut self.live {
            l.remove_host(host);
        }
        if let Some(m) = &mut self.metrics {
            m.exporter.remove_host(host);
        }
        info!("{label}: removed");
    }
}

/// What a run did (returned for tests and logged at exit).
#[derive(Debug, Clone, Copy, Default)]
pub struct RunReport {
    /// Requests sent.
    pub sent: u64,
    /// Replies received in time.
    pub received: u64,
    /// Frames written.
    pub frames: u64,
    /// Process CPU time, ns.
    pub cpu_ns: u64,
    /// Send lateness, 99th percentile upper bound, µs.
    pub late_p99_us: u64,
    /// Requests whose send time is the kernel's transmit stamp.
    pub tx_stamped: u64,
}

struct Target {
    cfg: HostConfig,
    id: Option<HostId>,
    addr: Option<IpAddr>,
    resolve_warned: bool,
}

struct Daemon {
    cfg: Config,
    cli: Cli,
    engine: Engine,
    outputs: Outputs,
    sockets: [Option<Arc<IcmpSocket>>; 2],
    targets: Vec<Target>,
    writer_cfg: WriterConfig,
    status_lines: usize,
}

fn engine_config(cfg: &Config) -> EngineConfig {
    EngineConfig {
        period_us: cfg.period_ms * 1000,
        timeout_ns: u64::from(cfg.timeout_ms) * 1_000_000,
        grace_ns: GRACE_NS,
    }
}

fn secs_ns(s: f64) -> u64 {
    (s * 1e9).clamp(1.0, 1e18) as u64
}

/// Opens the sockets of both families. Fails only when neither opens.
fn open_sockets(cfg: &Config) -> Result<[Option<Arc<IcmpSocket>>; 2]> {
    let mut socks = [None, None];
    let mut errors = Vec::new();
    for fam in [Family::V4, Family::V6] {
        match IcmpSocket::open(fam, cfg.socket) {
            Ok(s) => {
                info!(
                    "{fam:?}: {:?} ICMP socket, identifier {}",
                    s.kind(),
                    s.ident()
                );
                socks[fam.index()] = Some(Arc::new(s));
            }
            Err(e) => errors.push(e),
        }
    }
    if socks.iter().all(Option::is_none) {
        let msg = errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        bail!("{msg}");
    }
    for e in errors {
        warn!("{e}");
    }
    Ok(socks)
}

/// Deletes frame files (and sidecars) of every host whose day ended more than `days`
/// days ago (zzping-lib's retention). Errors are logged, never fatal.
pub fn apply_retention(data_dir: &Path, days: u32, now_us: u64) -> Vec<std::path::PathBuf> {
    match zzping_lib::store::remove_older_than(data_dir, days, now_us) {
        Ok(v) => v,
        Err(e) => {
            warn!("retention: {e}");
            Vec::new()
        }
    }
}

impl Daemon {
    /// Resolves and starts (or updates) a target. `index`/`count` stagger first sends.
    fn start_target(&mut self, i: usize, now: Now, index: usize, count: usize) {
        let t = &self.targets[i];
        if t.id.is_some() {
            return;
        }
        let addr = match config::resolve(&t.cfg.target) {
            Ok(a) => a,
            Err(e) => {
                if t.resolve_warned {
                    debug!("{}: cannot resolve {:?}: {e}", t.cfg.label(), t.cfg.target);
                } else {
                    warn!(
                        "{}: cannot resolve {:?}: {e}; retrying every {} s",
                        t.cfg.label(),
                        t.cfg.target,
                        RETRY_UNRESOLVED_NS / SEC
                    );
                }
                self.targets[i].resolve_warned = true;
                return;
            }
        };
        let rate = t.cfg.rate.unwrap_or(self.cfg.rate);
        let label = t.cfg.label().to_owned();
        if self.sockets[Family::of(&addr).index()].is_none() {
            warn!(
                "{label}: no {:?} socket; its sends count as errors",
                Family::of(&addr)
            );
        }
        let interval = crate::engine::interval_ns(rate);
        let offset = (interval as u128 * index as u128 / count.max(1) as u128) as u64;
        let id = self
            .engine
            .add_host(&label, addr, rate, now.mono_ns + offset, now);
        let info = HostInfo {
            label: label.clone(),
            address: addr,
            name: config::is_name(&t.cfg.target).then(|| t.cfg.target.clone()),
        };
        match HostWriter::open(&self.cfg.data_dir, info, self.writer_cfg.clone()) {
            Ok(w) => {
                self.outputs.writers.insert(id, w);
            }
            Err(e) => error!("{label}: cannot open frame files: {e}; frames are not recorded"),
        }
        if let Some(l) = &mut self.outputs.live {
            l.set_host(
                id,
                &label,
                addr,
                config::is_name(&t.cfg.target).then(|| t.cfg.target.clone()),
                self.writer_cfg.period_us,
                self.writer_cfg.precision,
            );
        }
        if let Some(m) = &mut self.outputs.metrics {
            m.exporter.set_host(id, &label, addr);
        }
        info!("{label}: pinging {addr} at {rate}/s");
        let t = &mut self.targets[i];
        t.id = Some(id);
        t.addr = Some(addr);
    }

    /// Resolves target `i` again and, if its address changed, re-points the host
    /// (engine, files, live stream).
    fn re_point(&mut self, i: usize) {
        let t = &self.targets[i];
        let Some(id) = t.id else { return };
        match config::resolve(&t.cfg.target) {
            Ok(a) if Some(a) != t.addr => {
                info!(
                    "{}: {} now resolves to {a} (was {:?})",
                    t.cfg.label(),
                    t.cfg.target,
                    t.addr
                );
                self.engine.set_address(id, a);
                if let Some(w) = self.outputs.writers.get_mut(&id)
                    && let Err(e) = w.set_address(a)
                {
                    warn!("{}: recording the new address failed: {e}", t.cfg.label());
                }
                let name = config::is_name(&t.cfg.target).then(|| t.cfg.target.clone());
                let label = t.cfg.label().to_owned();
                if let Some(l) = &mut self.outputs.live {
                    l.set_host(
                        id,
                        &label,
                        a,
                        name,
                        self.writer_cfg.period_us,
                        self.writer_cfg.precision,
                    );
                }
                if let Some(m) = &mut self.outputs.metrics {
                    m.exporter.set_host(id, &label, a);
                }
                self.targets[i].addr = Some(a);
            }
            Ok(_) => {}
            Err(e) => debug!("{}: re-resolution failed: {e}", t.cfg.label()),
        }
    }

    fn re_resolve(&mut self, now: Now) {
        let n = self.targets.len();
        for i in 0..n {
            let t = &self.targets[i];
            if !config::is_name(&t.cfg.target) {
                continue;
            }
            if t.id.is_none() {
                self.start_target(i, now, 0, 1);
                continue;
            }
            self.re_point(i);
        }
    }

    fn reload(&mut self, now: Now) {
        let new = match config::load(&self.cli) {
            Ok(c) => c,
            Err(e) => {
                error!("SIGHUP: keeping the current configuration: {e}");
                return;
            }
        };
        if new.period_ms != self.cfg.period_ms
            || new.timeout_ms != self.cfg.timeout_ms
            || new.data_dir != self.cfg.data_dir
            || new.socket != self.cfg.socket
            || new.precision != self.cfg.precision
            || new.metrics != self.cfg.metrics
        {
            warn!(
                "SIGHUP: period, timeout, data_dir, socket, precision and metrics changes need a restart"
            );
        }
        let new_labels: HashMap<&str, &HostConfig> =
            new.host.iter().map(|h| (h.label(), h)).collect();
        // Remove hosts gone. A label whose target changed keeps its host (and files): it
        // is re-pointed below, like a re-resolution (two writers must never share a
        // host directory).
        let mut keep = Vec::new();
        for t in std::mem::take(&mut self.targets) {
            if new_labels.contains_key(t.cfg.label()) {
                keep.push(t);
            } else {
                if let Some(id) = t.id {
                    self.engine.remove_host(id, &mut self.outputs);
                }
                info!("{}: removing", t.cfg.label());
            }
        }
        self.targets = keep;
        for i in 0..self.targets.len() {
            let label = self.targets[i].cfg.label().to_owned();
            let Some(h) = new_labels.get(label.as_str()) else {
                continue;
            };
            if h.target == self.targets[i].cfg.target {
                continue;
            }
            info!("{label}: target now {:?}", h.target);
            self.targets[i].cfg.target = h.target.clone();
            match self.targets[i].id {
                // Resolved and re-pointed by the periodic path (names) or here (IPs).
                Some(_) => self.re_point(i),
                None => self.start_target(i, now, 0, 1),
            }
        }
        // Update rates, add new ones.
        let mut added = Vec::new();
        for h in &new.host {
            match self.targets.iter_mut().find(|t| t.cfg.label() == h.label()) {
                Some(t) => {
                    if t.cfg.rate != h.rate {
                        if let (Some(id), Some(r)) = (t.id, h.rate) {
                            self.engine.set_rate(id, r);
                            info!("{}: rate now {r}/s", h.label());
                        }
                        t.cfg.rate = h.rate;
                    }
                }
                None => {
                    self.targets.push(Target {
                        cfg: h.clone(),
                        id: None,
                        addr: None,
                        resolve_warned: false,
                    });
                    added.push(self.targets.len() - 1);
                }
            }
        }
        let count = added.len();
        for (k, i) in added.into_iter().enumerate() {
            self.start_target(i, now, k, count);
        }
        self.cfg.host = new.host;
        self.cfg.rate = new.rate;
        self.cfg.retention_days = new.retention_days;
        info!(
            "SIGHUP: configuration reloaded, {} hosts",
            self.targets.len()
        );
    }

    fn print_status(&mut self, out: &mut impl Write, tty: bool) {
        self.status_lines = write_status(&mut self.engine, out, tty, self.status_lines);
    }

    /// Daemon-wide values for a scrape.
    fn health(&self, queue_drops: u64, stopped: bool) -> Health {
        Health {
            stats: self.engine.stats(),
            lateness: *self.engine.lateness(),
            rx_wait: *self.engine.rx_wait(),
            queue_drops,
            frames: self.outputs.frames,
            write_errors: self.outputs.write_errors,
            stopped,
        }
    }
}

/// Writes the status table (one line per host, totals since the previous call). On a
/// TTY it first moves the cursor up over the previous table (`prev_lines` lines) and
/// clears each line, so the table refreshes in place. Returns the lines written.
pub fn write_status(
    engine: &mut Engine,
    out: &mut impl Write,
    tty: bool,
    prev_lines: usize,
) -> usize {
    if tty && prev_lines > 0 {
        let _ = write!(out, "\x1b[{prev_lines}A");
    }
    let clear = if tty { "\x1b[2K" } else { "" };
    let h = *engine.lateness();
    let _ = writeln!(
        out,
        "{clear}{:<24} {:>7} {:>7} {:>6} {:>9} {:>9} {:>9} {:>6}   send late p50<{}µs p99<{}µs max {}µs",
        "host",
        "sent",
        "recv",
        "loss%",
        "rtt min",
        "avg",
        "max",
        "errors",
        h.quantile_us(0.5),
        h.quantile_us(0.99),
        h.max_ns / 1000
    );
    let mut lines = 1;
    engine.drain_status(|label, _addr, s| {
        let outcome = s.received + s.lost;
        let loss = if outcome > 0 {
            100.0 * s.lost as f64 / outcome as f64
        } else {
            0.0
        };
        let (min, avg, max) = if s.received > 0 {
            (
                f64::from(s.rtt_min_us) / 1000.0,
                s.rtt_sum_us as f64 / s.received as f64 / 1000.0,
                f64::from(s.rtt_max_us) / 1000.0,
            )
        } else {
            (0.0, 0.0, 0.0)
        };
        let _ = writeln!(
            out,
            "{clear}{label:<24} {:>7} {:>7} {loss:>6.2} {min:>7.3}ms {avg:>7.3}ms {max:>7.3}ms {:>6}",
            s.sent, s.received, s.errors
        );
        lines += 1;
    });
    if tty && lines < prev_lines {
        // Hosts were removed: blank the leftover lines of the previous table.
        for _ in lines..prev_lines {
            let _ = writeln!(out, "{clear}");
        }
        lines = prev_lines;
    }
    let _ = out.flush();
    lines
}

/// One-line totals since start (for the periodic and the exit log lines).
fn summary(engine: &Engine, outputs: &Outputs, cpu_ns: u64, queue_drops: u64) -> String {
    let st = engine.stats();
    let h = engine.lateness();
    let w = engine.rx_wait();
    format!(
        "{} sent, {} received, {} lost, {} errors, {} unmatched, {} frames, {} write errors; \
         CPU {:.1} ms ({:.2} ms per 1000 pings); send lateness p50<{}µs p99<{}µs max {}µs; \
         clock steps {}, RTTs clamped {} low / {} high, sends skipped {}, queue drops {}; \
         kernel send stamps {} ({} unmatched); RTTs timed by the kernel {}, in user space {} \
         (send {}, receive {}; receive stamps inside recvmsg {}); batched {}, socket wait \
         p50<{}µs p99<{}µs max {}µs",
        st.sent,
        st.received,
        st.lost,
        st.errors,
        st.unmatched,
        outputs.frames,
        outputs.write_errors,
        cpu_ns as f64 / 1e6,
        if st.sent > 0 {
            cpu_ns as f64 / 1e6 / st.sent as f64 * 1000.0
        } else {
            0.0
        },
        h.quantile_us(0.5),
        h.quantile_us(0.99),
        h.max_ns / 1000,
        st.clock_steps,
        st.rtt_clamped_low,
        st.rtt_clamped_high,
        st.skipped_sends,
        queue_drops,
        st.tx_stamped,
        st.tx_unmatched,
        st.rtt_kernel,
        st.received.saturating_sub(st.rtt_kernel),
        st.rtt_user_send,
        st.rtt_user_receive,
        st.rx_in_call,
        st.rtt_batched,
        w.quantile_us(0.5),
        w.quantile_us(0.99),
        w.max_ns / 1000,
    )
}

/// After pinging stopped and every frame is final: keeps answering /metrics (with the
/// final counts and `zzping_stopped 1`) for `for_ns`, or until a signal.
fn linger_metrics(
    poll: &mut Poll,
    timer: &TimerFd,
    signals: &SignalFd,
    outputs: &mut Outputs,
    h: &Health,
    for_ns: u64,
    notifier: &mut Notifier,
) {
    let Some(m) = &mut outputs.metrics else {
        return;
    };
    info!(
        "pinging stopped, counts final; serving /metrics for {:.1} s more (a signal ends it)",
        for_ns as f64 / 1e9
    );
    let end = clock::mono_ns().saturating_add(for_ns);
    let mut events = Events::with_capacity(16);
    loop {
        let now = clock::mono_ns();
        m.tick(now);
        notifier.tick(now);
        if now >= end {
            return;
        }
        let next = m
            .next_deadline()
            .unwrap_or(end)
            .min(end)
            .min(notifier.next_deadline().unwrap_or(u64::MAX));
        if let Err(e) = timer.arm(next.max(1)) {
            error!("arming the timer failed: {e}");
            return;
        }
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                error!("polling: {e}");
                return;
            }
        }
        for ev in events.iter() {
            match ev.token() {
                TIMER => timer.drain(),
                SIGNALS if signals.read().is_some() => {
                    info!("signal: stopping now");
                    return;
                }
                t if m.owns(t) => m.on_event(t, clock::mono_ns(), h),
                _ => {}
            }
        }
    }
}

/// Opens the live-stream socket, if `live` is not `off`.
fn open_live(cfg: &Config, registry: &mio::Registry) -> Result<Option<Live>> {
    let Some(addr) = cfg.live_addr() else {
        return Ok(None);
    };
    let secret = match &cfg.live_secret_file {
        Some(p) => Some(crate::live::read_secret(p).context("live stream")?),
        None => None,
    };
    let l = Live::open(addr, secret, &cfg.data_dir, registry, LIVE).with_context(|| {
        format!(
            "cannot serve the live stream on {addr} (live = {:?}; `off` disables it)",
            cfg.live
        )
    })?;
    info!(
        "live stream on {}",
        l.local_addr().map_or(addr.to_string(), |a| a.to_string())
    );
    Ok(Some(l))
}

/// Opens the Prometheus exporter's listener, if `metrics` is not `off`.
fn open_metrics(
    cfg: &Config,
    registry: &mio::Registry,
    sockets: &[Option<Arc<IcmpSocket>>; 2],
) -> Result<Option<Metrics>> {
    let Some(addr) = cfg.metrics_addr() else {
        return Ok(None);
    };
    let start_s = clock::now().real_ns as f64 / 1e9;
    let mut m = Metrics::open(addr, registry, METRICS, start_s).with_context(|| {
        format!(
            "cannot serve /metrics on {addr} (metrics = {:?}; `off` disables it)",
            cfg.metrics
        )
    })?;
    let bound = m.local_addr().map_or(addr.to_string(), |a| a.to_string());
    info!("metrics on http://{bound}/metrics");
    for (f, s) in [Family::V4, Family::V6].iter().zip(sockets) {
        m.exporter.set_socket(*f, s.as_ref().map(|s| s.kind()));
    }
    Ok(Some(m))
}

/// Runs the daemon until SIGINT/SIGTERM or the end of `--duration`.
pub fn run(cli: Cli, cfg: Config) -> Result<RunReport> {
    let cpu0 = sys::process_cpu_ns();
    // Block the signals before any thread exists, so only the signalfd sees them.
    let signals = SignalFd::new().context("creating the signalfd")?;
    let sockets = open_sockets(&cfg)?;
    match sys::drop_all_capabilities() {
        Ok(true) => info!("sockets open; all capabilities dropped"),
        Ok(false) => {}
        Err(e) => warn!("could not drop capabilities: {e}"),
    }
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating the data directory {}", cfg.data_dir.display()))?;

    let mut poll = Poll::new().context("creating the event loop")?;
    let timer = TimerFd::new().context("creating the timerfd")?;
    poll.registry()
        .register(&mut SourceFd(&timer.as_raw_fd()), TIMER, Interest::READABLE)?;
    poll.registry().register(
        &mut SourceFd(&signals.as_raw_fd()),
        SIGNALS,
        Interest::READABLE,
    )?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    // A live stream or exporter that was asked for and cannot start is fatal: a service
    // that runs without it looks healthy while its dashboards stay empty.
    let live = open_live(&cfg, poll.registry())?;
    let metrics = open_metrics(&cfg, poll.registry(), &sockets)?;
    let queue = Arc::new(ReplyQueue::new(QUEUE_CAPACITY));
    let recv_sockets: Vec<Arc<IcmpSocket>> = sockets.iter().flatten().cloned().collect();
    let receiver = Receiver::spawn(recv_sockets.clone(), queue.clone(), waker.clone(), false)
        .context("starting the receive thread")?;

    let mut engine = Engine::new(engine_config(&cfg));
    for s in sockets.iter().flatten() {
        engine.set_ident(s.family(), s.ident());
    }
    let seed = clock::now();
    engine.set_token_base(seed.real_ns ^ (u64::from(std::process::id()) << 40));

    let writer_cfg = WriterConfig {
        period_us: cfg.period_ms * 1000,
        precision: cfg.precision,
        writer: format!("zzping-daemon {}", env!("CARGO_PKG_VERSION")),
    };
    let mut outputs = Outputs::new();
    outputs.live = live;
    outputs.metrics = metrics;
    let mut d = Daemon {
        targets: cfg
            .host
            .iter()
            .map(|h| Target {
                cfg: h.clone(),
                id: None,
                addr: None,
                resolve_warned: false,
            })
            .collect(),
        cfg,
        cli,
        engine,
        outputs,
        sockets,
        writer_cfg,
        status_lines: 0,
    };
    let now = clock::now();
    if let Some(days) = d.cfg.retention_days {
        for p in apply_retention(&d.cfg.data_dir, days, now.real_us()) {
            info!("retention: removed {}", p.display());
        }
    }
    let count = d.targets.len();
    for i in 0..count {
        d.start_target(i, now, i, count);
    }
    // Every socket is open and every target started: tell systemd (Type=notify).
    let mut notifier = Notifier::from_env();
    notifier.ready(&format!("pinging {count} hosts"));

    let start = now.mono_ns;
    let flush_every = secs_ns(d.cfg.flush_interval_s);
    let resolve_every = secs_ns(d.cfg.resolve_interval_s);
    let mut flush_at = start + flush_every;
    let mut status_at = start + SEC;
    let mut resolve_at = start + resolve_every;
    let mut retry_at = start + RETRY_UNRESOLVED_NS;
    let mut stats_at = start + STATS_EVERY_NS;
    let mut retention_at = start + 3600 * SEC;
    let end_at = d.cfg.duration_s.map(|s| start + secs_ns(s));
    let mut stopping: Option<u64> = None;
    // Wake for sends on time: the default timer slack lets the kernel add 50 µs.
    sys::set_timer_slack_ns(1);
    let mut events = Events::with_capacity(16);
    let mut batch: Vec<Reply> = Vec::with_capacity(queue.capacity());
    let mut packet = [0u8; icmp::PACKET_LEN];
    let mut seen_dropped = 0u64;
    let tty = std::io::stdout().is_terminal();

    loop {
        let now = clock::now();
        if let Some(step) = d.engine.observe_clock(now) {
            warn!(
                "wall clock stepped by {:.3} s; frames flagged",
                step as f64 / 1e9
            );
        }
        // Before draining: how far the receive thread has handed everything over (only
        // needed when a request in flight is due to be declared lost).
        let received_through = if d.engine.expiry_due(now.mono_ns) {
            recv::frontier(&queue, &recv_sockets, GRACE_NS)
        } else {
            0
        };
        batch.clear();
        queue.drain_into(&mut batch);
        for r in &batch {
            d.engine.on_reply(r, &mut d.outputs);
        }
        if let Some(m) = &mut d.outputs.metrics {
            m.exporter.note_replies(&batch);
        }
        let dropped = queue.dropped();
        if dropped != seen_dropped {
            warn!(
                "receive queue overflow: {} replies dropped",
                dropped - seen_dropped
            );
            seen_dropped = dropped;
            d.engine.flag_all(FLAG_RECV_OVERFLOW);
        }
        if stopping.is_none() {
            while let Some(p) = d.engine.poll_send(now) {
                let sock = d.sockets[p.family.index()].as_deref();
                let mut err = None;
                let tx;
                let mut span_ns = 0;
                match sock {
                    Some(s) if p.sendable => {
                        let _ = icmp::emit_echo_request(
                            p.family,
                            &mut packet,
                            s.ident(),
                            p.seq,
                            p.token,
                        );
                        tx = clock::now();
                        if let Err(e) = s.send_to(&packet, p.addr) {
                            err = Some(e);
                        }
                        // The bracket a kernel transmit stamp of this send must fall in.
                        span_ns = u32::try_from(clock::mono_ns().saturating_sub(tx.mono_ns))
                            .unwrap_or(u32::MAX);
                    }
                    _ => tx = clock::now(),
                }
                let ok = err.is_none() && sock.is_some() && p.sendable;
                let stamps = ok && sock.is_some_and(|s| s.tx_stamps());
                match d
                    .engine
                    .commit_send_timed(&p, tx, span_ns, stamps, ok, &mut d.outputs)
                {
                    SendOutcome::Failed {
                        consecutive: 1,
                        seq_exhausted,
                    } => {
                        let label = d.engine.label(p.host).unwrap_or("?");
                        match (&err, seq_exhausted) {
                            (Some(e), _) => warn!(
                                "{label}: sending to {} failed: {e} (counting errors until it recovers)",
                                p.addr
                            ),
                            (None, true) => {
                                warn!("{label}: sequence space full, send refused")
                            }
                            (None, false) => warn!("{label}: no socket for {}", p.addr),
                        }
                    }
                    SendOutcome::Sent { recovered_after } if recovered_after > 0 => {
                        let label = d.engine.label(p.host).unwrap_or("?");
                        info!("{label}: sending works again after {recovered_after} errors");
                    }
                    _ => {}
                }
            }
        }
        d.engine.tick(now, received_through, &mut d.outputs);
        if let Some(l) = &mut d.outputs.live {
            l.pump(now.real_us());
        }
        if let Some(m) = &mut d.outputs.metrics {
            m.tick(now.mono_ns);
        }
        notifier.tick(now.mono_ns);

        if now.mono_ns >= flush_at {
            d.outputs.flush(false);
            flush_at = now.mono_ns.max(flush_at) + flush_every;
        }
        if now.mono_ns >= status_at {
            status_at += SEC;
            if d.cfg.status {
                d.print_status(&mut std::io::stdout().lock(), tty);
            }
        }
        if now.mono_ns >= resolve_at {
            resolve_at = now.mono_ns + resolve_every;
            d.re_resolve(now);
        }
        // Targets that could not be resolved yet are retried more often.
        if now.mono_ns >= retry_at {
            retry_at = now.mono_ns + RETRY_UNRESOLVED_NS;
            let n = d.targets.len();
            for i in 0..n {
                if d.targets[i].id.is_none() {
                    d.start_target(i, now, 0, 1);
                }
            }
        }
        let any_unresolved = d.targets.iter().any(|t| t.id.is_none());
        if now.mono_ns >= stats_at {
            stats_at = now.mono_ns + STATS_EVERY_NS;
            info!(
                "running: {}",
                summary(
                    &d.engine,
                    &d.outputs,
                    sys::process_cpu_ns().saturating_sub(cpu0),
                    seen_dropped
                )
            );
        }
        if now.mono_ns >= retention_at {
            retention_at = now.mono_ns + 3600 * SEC;
            if let Some(days) = d.cfg.retention_days {
                for p in apply_retention(&d.cfg.data_dir, days, now.real_us()) {
                    info!("retention: removed {}", p.display());
                }
            }
        }
        if stopping.is_none() && end_at.is_some_and(|e| now.mono_ns >= e) {
            info!("duration reached, stopping");
            notifier.stopping();
            d.engine.stop_sending();
            stopping =
                Some(now.mono_ns + d.engine.config().timeout_ns + d.engine.config().grace_ns);
        }
        if let Some(deadline) = stopping
            && (d.engine.unresolved() == 0 || now.mono_ns >= deadline)
        {
            break;
        }

        let mut next = d
            .engine
            .next_deadline(now)
            .min(flush_at)
            .min(status_at)
            .min(resolve_at)
            .min(stats_at)
            .min(if any_unresolved { retry_at } else { u64::MAX })
            .min(retention_at);
        if let Some(t) = d
            .outputs
            .live
            .as_ref()
            .and_then(|l| l.next_deadline_us(now.real_us()))
        {
            // Wall-clock µs to monotonic ns.
            let mono = i128::from(t) * 1000 - now.offset_ns();
            next = next.min(mono.clamp(0, i128::from(u64::MAX)) as u64);
        }
        if let Some(t) = d.outputs.metrics.as_ref().and_then(Metrics::next_deadline) {
            next = next.min(t);
        }
        if let Some(t) = notifier.next_deadline() {
            next = next.min(t);
        }
        if let (Some(e), None) = (end_at, stopping) {
            next = next.min(e);
        }
        if let Some(s) = stopping {
            next = next.min(s);
        }
        // Sleep until the deadline or an event: ppoll on the epoll fd has ns precision and
        // leaves events queued, so a wakeup for a send costs no epoll_wait and no timerfd
        // round trip (two syscalls per ping instead of four). mio collects events only
        // when some are pending.
        match sys::wait_readable_until(poll.as_raw_fd(), next) {
            Ok(true) => match poll.poll(&mut events, Some(std::time::Duration::ZERO)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("polling"),
            },
            Ok(false) => events.clear(),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("waiting for events"),
        }
        for ev in events.iter() {
            match ev.token() {
                TIMER => {
                    // Only armed while lingering for /metrics (see linger_metrics).
                    timer.drain();
                }
                SIGNALS => {
                    while let Some(sig) = signals.read() {
                        match sig {
                            libc::SIGHUP => d.reload(clock::now()),
                            _ if stopping.is_some() => {
                                info!("second signal: stopping now");
                                stopping = Some(0);
                            }
                            _ => {
                                info!("signal {sig}: stopping (waiting for replies in flight)");
                                notifier.stopping();
                                d.engine.stop_sending();
                                let n = clock::mono_ns();
                                stopping = Some(
                                    n + d.engine.config().timeout_ns + d.engine.config().grace_ns,
                                );
                            }
                        }
                    }
                }
                LIVE => {
                    if let Some(l) = &mut d.outputs.live {
                        l.on_readable(clock::now().real_us());
                    }
                }
                t if d.outputs.metrics.as_ref().is_some_and(|m| m.owns(t)) => {
                    let h = d.health(seen_dropped, false);
                    if let Some(m) = &mut d.outputs.metrics {
                        m.on_event(t, clock::mono_ns(), &h);
                    }
                }
                _ => {}
            }
        }
    }

    d.engine.finish(&mut d.outputs);
    if let Some(l) = &mut d.outputs.live {
        // Let subscribers have the last frames.
        l.pump(clock::now().real_us());
    }
    d.outputs.flush(true);
    receiver.stop();
    if d.outputs.metrics.is_some() && d.cfg.metrics_linger_s > 0.0 && stopping != Some(0) {
        let h = d.health(queue.dropped(), true);
        linger_metrics(
            &mut poll,
            &timer,
            &signals,
            &mut d.outputs,
            &h,
            secs_ns(d.cfg.metrics_linger_s),
            &mut notifier,
        );
    }
    let st = d.engine.stats();
    let cpu_ns = sys::process_cpu_ns().saturating_sub(cpu0);
    let h = d.engine.lateness();
    let report = RunReport {
        sent: st.sent,
        received: st.received,
        frames: d.outputs.frames,
        cpu_ns,
        late_p99_us: h.quantile_us(0.99),
        tx_stamped: st.tx_stamped,
    };
    info!(
        "stopped: {}",
        summary(&d.engine, &d.outputs, cpu_ns, seen_dropped)
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Probe, Reply, RxStamp};
    use crate::icmp::Message;

    struct Nothing;
    impl FrameOutput for Nothing {
        fn frame(&mut self, _: HostId, _: &str, _: &Frame) {}
    }

    #[test]
    fn status_table_lists_hosts_and_refreshes_in_place_on_a_tty() {
        let mut e = Engine::new(EngineConfig::default());
        e.set_ident(Family::V4, 9);
        let t0 = Now {
            mono_ns: 1_000_000_000,
            real_ns: 1_767_225_600_000_000_000,
        };
        let later = |ms: u64| Now {
            mono_ns: t0.mono_ns + ms * 1_000_000,
            real_ns: t0.real_ns + ms * 1_000_000,
        };
        e.add_host("gw", "198.18.0.1".parse().unwrap(), 10.0, t0.mono_ns, t0);
        e.add_host("dead", "198.18.0.2".parse().unwrap(), 10.0, t0.mono_ns, t0);
        let mut out = Nothing;
        for ms in 0..1500 {
            let now = later(ms);
            while let Some(p) = e.poll_send(now) {
                let p: Probe = p;
                e.commit_send(&p, now, true, &mut out);
                if p.addr.to_string() == "198.18.0.1" {
                    let r = Reply {
                        family: Family::V4,
                        src: p.addr,
                        msg: Message::EchoReply {
                            ident: 9,
                            seq: p.seq,
                            token: Some(p.token),
                        },
                        kernel_real_ns: Some(later(ms + 2).real_ns),
                        rx_stamp: RxStamp::Kernel,
                        batched: false,
                        user: later(ms + 2),
                    };
                    e.on_reply(&r, &mut out);
                }
            }
            e.tick(now, now.mono_ns, &mut out);
        }
        let mut plain = Vec::new();
        let n = write_status(&mut e, &mut plain, false, 0);
        let text = String::from_utf8(plain).unwrap();
        assert_eq!(n, 3);
        assert!(!text.contains('\x1b'));
        let gw = text.lines().find(|l| l.starts_with("gw ")).unwrap();
        let dead = text.lines().find(|l| l.starts_with("dead ")).unwrap();
        assert!(gw.contains("0.00") && gw.contains("2.000ms"), "{gw}");
        assert!(dead.contains("100.00"), "{dead}");
        // Totals were reset; on a TTY the table moves the cursor up over the old one.
        let mut tty = Vec::new();
        assert_eq!(write_status(&mut e, &mut tty, true, 5), 5);
        let text = String::from_utf8(tty).unwrap();
        assert!(text.starts_with("\x1b[5A\x1b[2K"), "{text:?}");
    }
}
